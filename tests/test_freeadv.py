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
    """Algorithm 1, lines 7-13, written out: hinge loss, L-inf ball; D sees clamp(x + delta, -1, 1)."""
    for _ in range(replays):
        opt.zero_grad()
        x = torch.clamp(xr + delta, -1, 1).requires_grad_(True)
        torch.relu(1 - D(x)).mean().backward()
        g_x = x.grad
        if two_steps:
            opt.step()
            opt.zero_grad()
        delta = torch.clamp(delta + alpha * torch.sign(g_x), -eps, eps)
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
                              steps_per_replay=steps_per_replay, delta_init="zero")
    delta = torch.zeros_like(xr)
    for _ in range(3):  # delta persists across calls
        fa.step(xr, xf)
        delta = reference_step(D_ref, opt_ref, xr, xf, delta, 0.05, 0.02, replays, steps_per_replay == 2)
    torch.testing.assert_close(fa.delta, delta, atol=0, rtol=0)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)


def test_delta_stays_in_ball_and_d_input_in_data_range_on_every_replay():
    D, xr, xf = make(n=16)
    xr[0, 0], xr[1, 1], xr[2] = 0.999, -1.0, 1.0  # at and near the edges of the data range
    seen = []
    # The real half's input is the one that needs an input gradient.
    D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()) if args[0].requires_grad
                                else None)
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.1), epsilon=0.03, step_size=0.05)
    for n in (16, 16, 9, 16):  # a new batch shape draws a fresh delta: its first replay is clamped too
        fa.step(xr[:n], xf[:n])
        assert float(fa.delta.abs().max()) <= 0.03 + 1e-15
    assert len(seen) == 8 and max(float(x.abs().max()) for x in seen) <= 1.0
    # delta lives in the ball only: at x = 1 it keeps its size (the input clamp does the rest).
    assert float(fa.delta[2].abs().max()) > 0


def test_delta_moves_to_make_the_real_loss_worse():
    D, xr, xf = make()
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.0), epsilon=0.1, replays=1,
                              delta_init="zero")
    with torch.no_grad():
        before = float(torch.relu(1 - D(xr)).mean())
    fa.step(xr, xf)
    with torch.no_grad():
        after = float(torch.relu(1 - D(xr + fa.delta)).mean())
    assert after > before


def test_delta_reinitialised_on_shape_change():
    D, xr, xf = make(n=8)
    opt = torch.optim.SGD(D.parameters(), lr=0.01)
    fa = FreeAdvDiscriminator(D, opt, delta_init="zero")
    fa.step(xr, xf)
    assert fa.delta.shape == (8, 4) and float(fa.delta.abs().max()) > 0
    # The same weights with no delta at all: what a short last batch must look like.
    D2 = copy.deepcopy(D)
    fa2 = FreeAdvDiscriminator(D2, torch.optim.SGD(D2.parameters(), lr=0.01), delta_init="zero")
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
    fa = FreeAdvDiscriminator(D, opt, loss="hinge_ac", replays=1, epsilon=0.01, alpha_f=0.5, kl="p||u",
                              delta_init="zero")
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
    assert float(stats.loss_real) == pytest.approx(float(real.detach()), abs=1e-12)
    assert float(stats.loss_fake) == pytest.approx(float(fake.detach()), abs=1e-12)
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
                              step_size=0.08, data_range=None, delta_init="zero")
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
    assert float(last.loss_real + last.loss_fake) < 0.5 * float(first.loss_real + first.loss_fake)


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
    FreeAdvDiscriminator(D, opt, replays=1, delta_init="zero").step(xr, xf, y_r, fake_args=(y_f,))
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
    fa = FreeAdvDiscriminator(D, tt, epsilon=0.05, replays=2, delta_init="zero")
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
    fa = FreeAdvDiscriminator(D, tt, replays=2, atomic=True)
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


# --------------------------------------------------------------------------------------------------
# The authors' official training step (julightzhong10/fastgan: train_free.py, tools/adv_tools/pgd_free.py,
# tools/metric.py), written out here from reading it, with num_bp = 1 and hinge losses
# (b_metric="hinge"; c_metric="ce_kl" for the conditional variant). Not their code: a transcription.

def official_delta_init(shape, eps, pgd_type):
    delta = torch.zeros(shape, dtype=torch.float64).normal_()
    if pgd_type == "linf":
        return delta.clamp(-eps, eps)
    norm = delta.view(shape[0], -1).norm(dim=1).add(1e-8).view(-1, *([1] * (len(shape) - 1)))
    return delta / norm * torch.min(norm, torch.tensor(eps, dtype=torch.float64))


def official_d_update(D, opt_d, x_r, y_r, x_f, y_f, delta, *, eps, tau, free_steps, pgd_type, conditional,
                      c_alph_f=1.0):
    for _ in range(free_steps):
        D.zero_grad()
        adverse = x_r.clone().requires_grad_(True)
        adverse.data.copy_((delta + adverse.data).clamp_(-1, 1))
        o_b, o_c = D(adverse, y_r)
        loss = torch.mean(torch.relu(1.0 - o_b))
        if conditional:
            loss = loss + torch.nn.functional.cross_entropy(o_c, y_r)
        loss.backward()
        g = adverse.grad
        if pgd_type == "linf":
            delta = (delta + g.sign() * tau).clamp(-eps, eps)
        else:
            delta = delta + g * tau / g.view(g.size(0), -1).norm(dim=1).add(1e-8).view(-1, 1, 1, 1)
            norm = delta.view(delta.size(0), -1).norm(dim=1).add(1e-8).view(-1, 1, 1, 1)
            delta = delta / norm * torch.min(norm, torch.tensor(eps, dtype=delta.dtype))
        o_b, o_c = D(x_f, y_f)
        loss_f = torch.mean(torch.relu(1.0 + o_b))
        if conditional:
            uniform = torch.softmax(torch.ones(o_c.size(), dtype=o_c.dtype), 1)
            loss_f = loss_f + c_alph_f * torch.nn.functional.kl_div(torch.log_softmax(o_c, dim=1), uniform,
                                                                    reduction="batchmean")
        loss_f.backward()
        opt_d.step()
    return delta


def official_g_update(G, D, opt_g, z, y, conditional):
    D.zero_grad()
    G.zero_grad()
    o_b, o_c = D(G(z, y), y)
    loss = -torch.mean(o_b)
    if conditional:
        loss = loss + torch.nn.functional.cross_entropy(o_c, y)
    loss.backward()
    opt_g.step()


class TinyConvD(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.adv = nn.Linear(4 * 16, 1)
        self.cls = nn.Linear(4 * 16, classes)

    def forward(self, x, y):
        h = torch.relu(self.conv(x)).flatten(1)
        return self.adv(h), self.cls(h)


class TinyG(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.embed = nn.Embedding(classes, 8)
        self.fc = nn.Linear(8, 16)

    def forward(self, z, y):
        return torch.tanh(self.fc(z + self.embed(y))).view(-1, 1, 4, 4)


class AdvHead(nn.Module):
    """An unconditional view of a two-headed D: its adversarial scores only (shared parameters)."""

    def __init__(self, D):
        super().__init__()
        self.D = D

    def forward(self, x, y):
        return self.D(x, y)[0]


@pytest.mark.parametrize("pgd_type", ["linf", "l2"])
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("data", ["interior", "saturated"])
def test_follows_the_official_fastgan_update(pgd_type, conditional, data):
    torch.manual_seed(0)
    D, G = TinyConvD().double(), TinyG().double()
    D_ref, G_ref = copy.deepcopy(D), copy.deepcopy(G)

    def adam(m):
        return torch.optim.Adam(m.parameters(), lr=2e-3, betas=(0.0, 0.9))

    opt_d, opt_g, opt_d_ref, opt_g_ref = adam(D), adam(G), adam(D_ref), adam(G_ref)
    n, eps, tau = 6, (0.05 if pgd_type == "linf" else 0.5), (0.03 if pgd_type == "linf" else 0.3)
    fa = FreeAdvDiscriminator(D if conditional else AdvHead(D), opt_d, loss="hinge_ac" if conditional else "hinge",
                              epsilon=eps, step_size=tau, replays=2, norm=pgd_type)
    delta_ref = official_delta_init((n, 1, 4, 4), eps, pgd_type)
    fa.delta = delta_ref.clone()  # seeded as the official script seeds it
    gen = torch.Generator().manual_seed(1)
    for _ in range(25):
        if data == "saturated":
            x_r = torch.randint(0, 2, (n, 1, 4, 4), generator=gen).double() * 2 - 1
        else:
            x_r = torch.rand(n, 1, 4, 4, generator=gen, dtype=torch.float64) * 1.8 - 0.9
        y_r, y_f = torch.randint(0, 3, (n,), generator=gen), torch.randint(0, 3, (n,), generator=gen)
        z = torch.randn(n, 8, generator=gen, dtype=torch.float64)
        # Ours: the library's D step, then the user's G step.
        x_f = G(z, y_f).detach()
        fa.step(x_r, x_f, y_r, y_real=y_r if conditional else None, fake_args=(y_f,))
        opt_g.zero_grad()
        adv, logits = D(G(z, y_f), y_f)
        (F.fastgan_g_loss(adv, logits, y_f) if conditional else F.g_loss_per_sample(adv, "hinge").mean()).backward()
        opt_g.step()
        # The official update.
        x_f_ref = G_ref(z, y_f).detach()
        delta_ref = official_d_update(D_ref, opt_d_ref, x_r, y_r, x_f_ref, y_f, delta_ref, eps=eps, tau=tau,
                                      free_steps=2, pgd_type=pgd_type, conditional=conditional)
        official_g_update(G_ref, D_ref, opt_g_ref, z, y_f, conditional)
    assert float(fa.delta.abs().max()) > 0
    torch.testing.assert_close(fa.delta, delta_ref, atol=1e-6, rtol=0)
    for p, q in zip([*D.parameters(), *G.parameters()], [*D_ref.parameters(), *G_ref.parameters()]):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_kl_directions_match_the_issue_example():
    logits = torch.tensor([[3.0, 0.0, -2.0]], dtype=torch.float64)
    adv = torch.zeros(1, 1, dtype=torch.float64)
    official = float(F.fastgan_d_loss_fake(adv, logits, 1.0))  # default: the official code's KL(U || p)
    printed = float(F.fastgan_d_loss_fake(adv, logits, 1.0, kl="p||u"))
    p = torch.softmax(logits, 1)[0]
    assert printed == pytest.approx(1 + float((p * torch.log(p * 3)).sum()), abs=1e-12)
    assert official == pytest.approx(1 + float((torch.log(1 / (3 * p))).sum() / 3), abs=1e-12)
    assert (round(printed, 4), round(official, 4)) == (1.8704, 2.6230)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_normal_noise_projected_onto_the_ball(norm):
    D, xr, xf = make(n=64)
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.0), epsilon=0.2, replays=1, norm=norm,
                              step_size=0.0)
    torch.manual_seed(5)
    fa.step(xr, xf)
    torch.manual_seed(5)
    noise = torch.randn(64, 4, dtype=torch.float64)
    if norm == "linf":
        expected = noise.clamp(-0.2, 0.2)
    else:
        expected = noise
        for _ in range(2):  # the start, then the (zero-size) replay's own projection
            n = expected.norm(dim=1, keepdim=True) + 1e-8
            expected = expected / n * n.clamp(max=0.2)
    torch.testing.assert_close(fa.delta, expected, atol=1e-15, rtol=0)
