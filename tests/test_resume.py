"""Every stateful component saved mid-run and loaded into a fresh object built with other settings
continues exactly as the uninterrupted run."""

import copy
import io

import torch
import torch.nn as nn

from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss


def roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def gan(seed=0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.BatchNorm1d(16), nn.Linear(16, 1))
    return G, D


def batches(n):
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(16, 2, generator=g) + 2, torch.randn(16, 2, generator=g)) for _ in range(n)]


def train(components, G, D, data):
    """A training loop using all five components at once."""
    aw, wg, sched, tt, fa = components
    for x_real, z in data:
        which = sched.next_update()
        fake = G(z)
        if which == "D":
            tt.zero_grad()
            aw(x_real, fake.detach()).backward()  # an AW step, then a free-adv step on the same batch
            tt.step_d()
            fa.step(x_real, fake.detach())
            with torch.no_grad():
                loss_g = float(wg(D(fake)))
            loss_d = float(aw.last.loss_real + aw.last.loss_fake)
        else:
            tt.zero_grad()
            loss = wg(D(fake))
            loss.backward()
            tt.step_g()
            loss_g = float(loss.detach())
            with torch.no_grad():
                loss_d = float(torch.relu(1 - D(x_real)).mean() + torch.relu(1 + D(fake)).mean())
        sched.observe(loss_g=loss_g + 1.0, loss_d=loss_d)


def build(G, D, variant):
    if variant == "a":
        aw = AWDiscriminatorLoss(D)
        wg = WeightedGeneratorLoss(0.05)
        sched = AdaptiveScheduler(1.0)
        tt = TwoTimescale(G, D, lr_g=1e-3, lr_d=3e-3, g_schedule=0.75, d_schedule=0.6)
        fa = FreeAdvDiscriminator(D, tt.d_optimizer, epsilon=0.05, data_range=None)
    else:  # other settings everywhere: the state dicts must restore them
        aw = AWDiscriminatorLoss(D, loss="bce", alpha1=0.3, eps=0.2)
        wg = WeightedGeneratorLoss(0.9, loss="hinge")
        sched = AdaptiveScheduler(5.0, max_consecutive=3)
        tt = TwoTimescale(G, D, lr_g=0.5, lr_d=0.5, g_schedule=0.9, d_schedule=0.7)
        fa = FreeAdvDiscriminator(D, tt.d_optimizer, epsilon=0.5, replays=3)
    return aw, wg, sched, tt, fa


def snapshot(G, D, comps):
    return copy.deepcopy((G.state_dict(), D.state_dict(), [c.state_dict() for c in comps]))


def test_resumed_run_equals_uninterrupted_run():
    data = batches(24)
    G, D = gan()
    full = build(G, D, "a")
    train(full, G, D, data)

    G1, D1 = gan()
    first = build(G1, D1, "a")
    train(first, G1, D1, data[:12])
    saved = roundtrip(snapshot(G1, D1, first))

    G2, D2 = gan(seed=99)
    resumed = build(G2, D2, "b")
    G2.load_state_dict(saved[0])
    D2.load_state_dict(saved[1])
    for comp, state in zip(resumed, saved[2]):
        comp.load_state_dict(state)
    train(resumed, G2, D2, data[12:])

    for a, b in zip(list(G.parameters()) + list(D.parameters()), list(G2.parameters()) + list(D2.parameters())):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    for a, b in zip(D.buffers(), D2.buffers()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert full[2].counts == resumed[2].counts and full[2].counts["D"] > 0 and full[2].counts["G"] > 0
    torch.testing.assert_close(full[4].delta, resumed[4].delta, atol=0, rtol=0)
    assert full[0].last.to_dict() == resumed[0].last.to_dict()
    assert (full[3].lr_g, full[3].lr_d) == (resumed[3].lr_g, resumed[3].lr_d)
