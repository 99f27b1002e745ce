"""Bad input: a typed error naming the argument (FloatingPointError for non-finite values),
and no parameter, buffer, gradient or component state changed."""

import copy

import pytest
import torch
import torch.nn as nn

import gan_optim.functional as F
from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss

from _fingerprint import fingerprint as full_fingerprint, same

NAN = float("nan")


def setup():
    torch.manual_seed(0)
    G = nn.Linear(2, 2)
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    aw = AWDiscriminatorLoss(D)
    wg = WeightedGeneratorLoss(0.1)
    sched = AdaptiveScheduler()
    tt = TwoTimescale(G, D)
    fa = FreeAdvDiscriminator(D, opt, data_range=None, atomic=True)
    x = torch.randn(8, 2)
    # Give every component some history first, so "unchanged" is a real claim.
    aw(x + 1, x - 1).backward()
    opt.step()
    wg(D(G(x)))
    sched.next_update()
    sched.observe(loss_g=1.0, loss_d=2.0)
    fa.step(x + 1, x - 1)
    for p in D.parameters():
        p.grad = torch.ones_like(p)
    return dict(G=G, D=D, opt=opt, aw=aw, wg=wg, sched=sched, tt=tt, fa=fa, x=x)


def fingerprint(env):
    return full_fingerprint((env["G"], env["D"]), (env["opt"], env["tt"].g_optimizer),
                            [env[k] for k in ("aw", "wg", "sched", "tt", "fa")])


def nan_d(env):
    env["D"][0].weight.data[0, 0] = NAN  # state change made by the case itself, undone below


CASES = [
    # (id, error type, message fragment, call)
    ("aw_weights 2-D grad", ValueError, "grad_real",
     lambda e: F.aw_weights(torch.ones(2, 2), torch.ones(2, 2), .5, .5)),
    ("aw_weights shape mismatch", ValueError, "grad_fake",
     lambda e: F.aw_weights(torch.ones(3), torch.ones(2), .5, .5)),
    ("aw_weights list grad", TypeError, "grad_real", lambda e: F.aw_weights([1.0], torch.ones(1), .5, .5)),
    ("aw_weights score > 1", ValueError, "score_real", lambda e: F.aw_weights(torch.ones(2), torch.ones(2), 1.5, .5)),
    ("aw_weights nan score", ValueError, "score_fake", lambda e: F.aw_weights(torch.ones(2), torch.ones(2), .5, NAN)),
    ("aw_weights nan grad", FloatingPointError, "grad_fake",
     lambda e: F.aw_weights(torch.ones(2), torch.tensor([1.0, NAN]), .5, .5)),
    ("aw_weights eps < 0", ValueError, "eps", lambda e: F.aw_weights(torch.ones(2), torch.ones(2), .5, .5, eps=-1)),
    ("AW unknown loss", ValueError, "loss", lambda e: AWDiscriminatorLoss(e["D"], loss="lsgan")),
    ("AW not a module", TypeError, "discriminator", lambda e: AWDiscriminatorLoss(lambda x: x)),
    ("AW alpha1 > 1", ValueError, "alpha1", lambda e: AWDiscriminatorLoss(e["D"], alpha1=2.0)),
    ("AW x_real not a tensor", TypeError, "x_real", lambda e: e["aw"]([[1.0, 2.0]], e["x"])),
    ("AW integer x_fake", TypeError, "x_fake", lambda e: e["aw"](e["x"], torch.ones(8, 2, dtype=torch.long))),
    ("AW non-finite input", FloatingPointError, "loss_real", lambda e: e["aw"](e["x"] * NAN, e["x"])),
    ("AW from_outputs detached", ValueError, "d_real",
     lambda e: e["aw"].from_outputs(torch.zeros(8, 1), torch.zeros(8, 1))),
    ("AW load bad state", ValueError, "Invalid state", lambda e: e["aw"].load_state_dict({"loss": "hinge"})),
    ("wegan eta 0", ValueError, "eta", lambda e: F.wegan_weights(torch.full((4,), 0.5), 0.0)),
    ("wegan eta > 1", ValueError, "eta", lambda e: WeightedGeneratorLoss(1.5)),
    ("wegan eta str", TypeError, "eta", lambda e: WeightedGeneratorLoss("0.1")),
    ("wegan empty batch", ValueError, "empty", lambda e: F.wegan_weights(torch.empty(0), 0.1)),
    ("wegan p out of range", ValueError, "fake_prob", lambda e: F.wegan_weights(torch.tensor([0.5, 1.2]), 0.1)),
    ("wegan loss empty batch", ValueError, "empty", lambda e: e["wg"](torch.empty(0))),
    ("wegan 3-D scores", ValueError, "d_fake", lambda e: e["wg"](torch.ones(2, 2, 2))),
    ("wegan nan scores", FloatingPointError, "d_fake", lambda e: e["wg"](torch.tensor([0.0, NAN]))),
    ("wegan unknown loss", ValueError, "loss", lambda e: WeightedGeneratorLoss(0.1, loss="mse")),
    ("sched lam 0", ValueError, "lam", lambda e: AdaptiveScheduler(0.0)),
    ("sched cap 0", ValueError, "max_consecutive", lambda e: AdaptiveScheduler(max_consecutive=0)),
    ("sched nan loss", FloatingPointError, "loss_d", lambda e: e["sched"].observe(loss_g=1.0, loss_d=NAN)),
    ("sched inf loss", FloatingPointError, "loss_g", lambda e: e["sched"].observe(loss_g=float("inf"), loss_d=1.0)),
    ("sched vector loss", TypeError, "loss_g", lambda e: e["sched"].observe(loss_g=torch.ones(3), loss_d=1.0)),
    ("sched str loss", TypeError, "loss_d", lambda e: e["sched"].observe(loss_g=1.0, loss_d="2")),
    ("ttur negative lr", ValueError, "lr_g", lambda e: TwoTimescale(e["G"], e["D"], lr_g=-1.0)),
    ("ttur bad generator", TypeError, "generator", lambda e: TwoTimescale(3, e["D"])),
    ("ttur bad optimizer class", TypeError, "optimizer", lambda e: TwoTimescale(e["G"], e["D"], optimizer=dict)),
    ("ttur bad schedule", TypeError, "g_schedule", lambda e: TwoTimescale(e["G"], e["D"], g_schedule="cosine")),
    ("ttur step which", ValueError, "which", lambda e: e["tt"].step("both")),
    ("ttur kwargs for two optimizers", ValueError, "optimizer_kwargs",
     lambda e: TwoTimescale(torch.optim.SGD(e["G"].parameters(), lr=0.1), e["opt"], betas=(0.0, 0.9))),
    ("freeadv negative epsilon", ValueError, "epsilon", lambda e: FreeAdvDiscriminator(e["D"], e["opt"], epsilon=-0.1)),
    ("freeadv replays 0", ValueError, "replays", lambda e: FreeAdvDiscriminator(e["D"], e["opt"], replays=0)),
    ("freeadv float replays", TypeError, "replays", lambda e: FreeAdvDiscriminator(e["D"], e["opt"], replays=2.0)),
    ("freeadv bad norm", ValueError, "norm", lambda e: FreeAdvDiscriminator(e["D"], e["opt"], norm="l1")),
    ("freeadv bad range", ValueError, "data_range",
     lambda e: FreeAdvDiscriminator(e["D"], e["opt"], data_range=(1, -1))),
    ("freeadv not an optimizer", TypeError, "optimizer", lambda e: FreeAdvDiscriminator(e["D"], "adam")),
    ("freeadv ac without labels", ValueError, "y_real",
     lambda e: FreeAdvDiscriminator(e["D"], e["opt"], loss="hinge_ac").step(e["x"], e["x"])),
    ("freeadv nan real", FloatingPointError, "loss_real", lambda e: e["fa"].step(e["x"] * NAN, e["x"])),
    ("freeadv overflowing fake batch", FloatingPointError, "loss_fake",
     lambda e: e["fa"].step(e["x"], torch.cat([e["x"][:7], torch.full((1, 2), 1e38)]) * 1e10)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_and_nothing_changes(case):
    _, error, fragment, call = case
    env = setup()
    before = fingerprint(env)
    with pytest.raises(error, match=fragment):
        call(env)
    assert same(fingerprint(env), before)


def test_aw_with_nan_weights_raises_and_leaves_buffers_and_grads():
    env = setup()
    nan_d(env)
    before = fingerprint(env)
    with pytest.raises(FloatingPointError, match="AWDiscriminatorLoss"):
        env["aw"](env["x"], env["x"])
    assert same(fingerprint(env), before)


def test_freeadv_failure_in_a_later_replay_rolls_back():
    """The first replay steps D; a non-finite loss in the second restores D, Adam's moments and delta."""
    env = setup()
    fa, D = env["fa"], env["D"]
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        return output * NAN if calls["n"] == 3 else output  # 3rd forward = real half of replay 2

    before = fingerprint(env)
    handle = D.register_forward_hook(poison)
    with pytest.raises(FloatingPointError, match="loss_real"):
        fa.step(env["x"] + 1, env["x"] - 1)
    handle.remove()
    assert calls["n"] == 4  # raised at the end of replay 2, whose real half was poisoned
    assert same(fingerprint(env), before)


class Picky(nn.Module):
    """A D with BatchNorm that raises on a label it does not know (an error inside D)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x, y=None):
        out = self.body(x)
        if y is not None and int(y.max()) > 2:
            raise IndexError("label out of range")
        return out


@pytest.mark.parametrize("steps_per_replay", [1, 2])
@pytest.mark.parametrize("where", ["real", "fake"])
def test_freeadv_default_mode_exception_inside_d_changes_nothing(steps_per_replay, where):
    torch.manual_seed(0)
    D = Picky()
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    fa = FreeAdvDiscriminator(D, opt, data_range=None, steps_per_replay=steps_per_replay)
    x = torch.randn(8, 2)
    fa.step(x + 1, x - 1)
    for p in D.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = copy.deepcopy({"D": D.state_dict(), "opt": opt.state_dict(), "fa": fa.state_dict(),
                            "grads": [p.grad.clone() for p in D.parameters()],
                            "rng": torch.random.get_rng_state()})
    bad = torch.full((8,), 7)
    fine = torch.zeros(8, dtype=torch.long)
    with pytest.raises(IndexError):
        if where == "real":
            fa.step(x + 1, x - 1, bad)
        else:  # the fake half of the first replay raises
            fa.step(x + 1, x - 1, fine, fake_args=(bad,))
    after = {"D": D.state_dict(), "opt": opt.state_dict(), "fa": fa.state_dict(),
             "grads": [p.grad for p in D.parameters()], "rng": torch.random.get_rng_state()}
    if steps_per_replay == 2 and where == "fake":
        # After the first weight step only atomic=True can put everything back.
        assert not same(after["D"], before["D"])
    else:
        assert same(after, before)


def test_freeadv_new_delta_draw_is_undone_on_error():
    torch.manual_seed(0)
    D = Picky()
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.1), data_range=None)
    xr, xf = torch.randn(4, 2), torch.randn(4, 2)
    rng = torch.random.get_rng_state()
    with pytest.raises(IndexError):
        fa.step(xr, xf, torch.full((4,), 9))
    assert fa.delta is None and torch.equal(torch.random.get_rng_state(), rng)
