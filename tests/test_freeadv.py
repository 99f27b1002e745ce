"""FreeAdvDiscriminator against a hand-written loop of the paper's Algorithm 1 (D part)."""

import copy

import pytest
import torch
import torch.nn as nn

import gan_optim.functional as F
from gan_optim import FreeAdvDiscriminator


def make(n=6, seed=0):
    torch.manual_seed(seed)
    D = nn.Sequential(nn.Linear(4, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).double()
    xr = (torch.rand(n, 4, dtype=torch.float64) * 1.6 - 0.8)
    xf = torch.randn(n, 4, dtype=torch.float64) * 0.5
    return D, xr, xf


def reference_step(D, opt, xr, xf, delta, eps, alpha, replays, two_steps=False):
    """Algorithm 1, lines 7-13, written out: hinge loss, L-inf ball, data range [-1, 1]."""
    for _ in range(replays):
        opt.zero_grad()
        x = (xr + delta).requires_grad_(True)
        torch.relu(1 - D(x)).mean().backward()
        g_x = x.grad
        if two_steps:
            opt.step()
            opt.zero_grad()
        delta = delta + alpha * torch.sign(g_x)
        delta = torch.clamp(xr + delta, -1, 1) - xr
        delta = torch.clamp(delta, -eps, eps)
        torch.relu(1 + D(xf)).mean().backward()
        opt.step()
    return delta


@pytest.mark.parametrize("replays", [1, 2, 3])
@pytest.mark.parametrize("steps_per_replay", [1, 2])
def test_matches_hand_written_algorithm(replays, steps_per_replay):
    D, xr, xf = make()
    D_ref = copy.deepcopy(D)
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    opt_ref = torch.optim.Adam(D_ref.parameters(), lr=1e-2)
    fa = FreeAdvDiscriminator(D, opt, epsilon=0.05, step_size=0.02, replays=replays,
                              steps_per_replay=steps_per_replay)
    delta = torch.zeros_like(xr)
    for _ in range(3):  # delta persists across calls
        fa.step(xr, xf)
        delta = reference_step(D_ref, opt_ref, xr, xf, delta, 0.05, 0.02, replays, steps_per_replay == 2)
    torch.testing.assert_close(fa.delta, delta, atol=0, rtol=0)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)


def test_delta_stays_in_ball_and_data_range():
    D, xr, xf = make(n=16)
    xr[0, 0] = 0.999  # near the edge of the data range
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.1), epsilon=0.03, step_size=0.05)
    for _ in range(5):
        fa.step(xr, xf)
        assert float(fa.delta.abs().max()) <= 0.03 + 1e-15
        assert float((xr + fa.delta).max()) <= 1.0 and float((xr + fa.delta).min()) >= -1.0
    assert float(fa.delta.abs().max()) > 0  # it did move


def test_delta_moves_to_make_the_real_loss_worse():
    D, xr, xf = make()
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.0), epsilon=0.1, replays=1)
    with torch.no_grad():
        before = float(torch.relu(1 - D(xr)).mean())
    fa.step(xr, xf)
    with torch.no_grad():
        after = float(torch.relu(1 - D(xr + fa.delta)).mean())
    assert after > before


def test_delta_reinitialised_on_shape_change():
    D, xr, xf = make(n=8)
    opt = torch.optim.SGD(D.parameters(), lr=0.01)
    fa = FreeAdvDiscriminator(D, opt)
    fa.step(xr, xf)
    assert fa.delta.shape == (8, 4) and float(fa.delta.abs().max()) > 0
    # The same weights with no delta at all: what a short last batch must look like.
    D2 = copy.deepcopy(D)
    fa2 = FreeAdvDiscriminator(D2, torch.optim.SGD(D2.parameters(), lr=0.01))
    fa.step(xr[:5], xf[:5])  # a short last batch: no crash, a fresh zero delta
    fa2.step(xr[:5], xf[:5])
    assert fa.delta.shape == (5, 4)
    torch.testing.assert_close(fa.delta, fa2.delta, atol=0, rtol=0)
    for p, q in zip(D.parameters(), D2.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_one_backward_per_half_per_replay():
    D, xr, xf = make()
    calls = []
    D[0].register_full_backward_hook(lambda m, gi, go: calls.append(1))
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.01), replays=2)
    fa.step(xr, xf)
    assert len(calls) == 4  # (real + fake) x 2 replays: the input gradient costs no extra pass


class ACDiscriminator(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.adv = nn.Linear(8, 1)
        self.cls = nn.Linear(8, classes)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.adv(h), self.cls(h)


def test_conditional_hinge_ac_loss_matches_equations_13():
    torch.manual_seed(0)
    D = ACDiscriminator().double()
    D_ref = copy.deepcopy(D)
    xr, xf = torch.rand(5, 4, dtype=torch.float64) - 0.5, torch.rand(5, 4, dtype=torch.float64) - 0.5
    y = torch.tensor([0, 1, 2, 1, 0])
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(D_ref.parameters(), lr=0.1)
    fa = FreeAdvDiscriminator(D, opt, loss="hinge_ac", replays=1, epsilon=0.01, alpha_f=0.5)
    stats = fa.step(xr, xf, y_real=y)

    # Reference, eq. 13 as losses to minimise: real = relu(1 - a) - log p(y|x); fake = relu(1 + a) + a_f KL(p || U).
    x = xr.clone().requires_grad_(True)
    a, logits = D_ref(x)
    logp = torch.log_softmax(logits, 1)
    real = torch.relu(1 - a).mean() - logp[torch.arange(5), y].mean()
    real.backward()
    a_f, logits_f = D_ref(xf)
    p_f = torch.softmax(logits_f, 1)
    kl = (p_f * (torch.log(p_f) - torch.log(torch.tensor(1 / 3, dtype=torch.float64)))).sum(1)
    fake = torch.relu(1 + a_f).mean() + 0.5 * kl.mean()
    fake.backward()
    opt_ref.step()
    assert stats["loss_real"] == pytest.approx(float(real.detach()), abs=1e-12)
    assert stats["loss_fake"] == pytest.approx(float(fake.detach()), abs=1e-12)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)


def test_fastgan_generator_loss_eq14():
    a = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    expected = -a.mean() + 0.3 * -torch.log_softmax(logits, 1)[torch.arange(2), y].mean()
    assert float(F.fastgan_g_loss(a, logits, y, alpha_g=0.3)) == pytest.approx(float(expected))


def test_l2_norm_projection():
    D, xr, xf = make()
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.01), norm="l2", epsilon=0.1,
                              step_size=0.08, data_range=None)
    for _ in range(3):
        fa.step(xr, xf)
    norms = torch.linalg.vector_norm(fa.delta, dim=1)
    assert float(norms.max()) <= 0.1 + 1e-12 and float(norms.min()) > 0.09


def test_trains_a_discriminator():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    fa = FreeAdvDiscriminator(D, torch.optim.Adam(D.parameters(), lr=1e-2), epsilon=0.05)
    xr, xf = torch.rand(64, 2) * 0.5 + 0.4, torch.rand(64, 2) * 0.5 - 0.9
    first = fa.step(xr, xf)
    for _ in range(30):
        last = fa.step(xr, xf)
    assert last["loss_real"] + last["loss_fake"] < 0.5 * (first["loss_real"] + first["loss_fake"])


class ProjectionD(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.embed = nn.Embedding(3, 8)

    def forward(self, x, y):
        h = torch.relu(self.body(x))
        return (self.embed(y) * h).sum(1, keepdim=True)


def test_fake_half_gets_its_own_arguments():
    torch.manual_seed(0)
    D = ProjectionD().double()
    D_ref = copy.deepcopy(D)
    xr, xf = torch.rand(5, 4, dtype=torch.float64) - 0.5, torch.rand(5, 4, dtype=torch.float64) - 0.5
    y_r, y_f = torch.tensor([0, 1, 2, 1, 0]), torch.tensor([2, 2, 1, 0, 1])
    opt, opt_ref = torch.optim.SGD(D.parameters(), lr=0.1), torch.optim.SGD(D_ref.parameters(), lr=0.1)
    FreeAdvDiscriminator(D, opt, replays=1).step(xr, xf, y_r, fake_args=(y_f,))
    x = xr.clone().requires_grad_(True)
    torch.relu(1 - D_ref(x, y_r)).mean().backward()
    torch.relu(1 + D_ref(xf, y_f)).mean().backward()
    opt_ref.step()
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)


def test_steps_through_two_timescale():
    from gan_optim import TwoTimescale

    D, xr, xf = make()
    G = nn.Linear(4, 4).double()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_g=0.1, lr_d=1.0, g_schedule=0.75, d_schedule=0.6)
    D_ref = copy.deepcopy(D)
    opt_ref = torch.optim.SGD(D_ref.parameters(), lr=1.0)
    fa = FreeAdvDiscriminator(D, tt, epsilon=0.05, replays=2)
    assert fa.optimizer is tt.d_optimizer
    fa.step(xr, xf)
    assert tt.steps_d == 2 and tt.lr_d == pytest.approx(1.0 / 3 ** 0.6)  # D's schedule advanced per replay
    delta = torch.zeros_like(xr)
    for lr in (1.0, 1.0 / 2 ** 0.6):  # the reference, stepping with the same decayed rates
        for group in opt_ref.param_groups:
            group["lr"] = lr
        delta = reference_step(D_ref, opt_ref, xr, xf, delta, 0.05, 0.05, 1)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)


def test_rollback_restores_two_timescale_counters_and_schedule():
    from gan_optim import TwoTimescale

    D, xr, xf = make()
    tt = TwoTimescale(nn.Linear(4, 4).double(), D, optimizer=torch.optim.SGD, lr_d=1.0, g_schedule=0.75,
                      d_schedule=0.6)
    fa = FreeAdvDiscriminator(D, tt, replays=2)
    fa.step(xr, xf)
    before = (tt.steps_d, tt.lr_d, tt.d_scheduler.state_dict(), copy.deepcopy(D.state_dict()))
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] == 3 else output  # replay 2's real half

    handle = D.register_forward_hook(poison)
    with pytest.raises(FloatingPointError):
        fa.step(xr, xf)
    handle.remove()
    assert (tt.steps_d, tt.lr_d, tt.d_scheduler.state_dict()) == before[:3]
    for k, v in D.state_dict().items():
        assert torch.equal(v, before[3][k])
