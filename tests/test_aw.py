"""AWDiscriminatorLoss against an independent float64 reference built from torch.autograd.grad."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from gan_optim import AWDiscriminatorLoss

from _reference import algorithm1

ATOL = 1e-10


def mlp():
    return nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


def conv_bn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 1))


def sn_old():
    sn = nn.utils.spectral_norm
    return nn.Sequential(sn(nn.Conv2d(1, 4, 3)), nn.LeakyReLU(0.2), nn.Flatten(), sn(nn.Linear(64, 1)))


def sn_new():
    sn = nn.utils.parametrizations.spectral_norm
    return nn.Sequential(sn(nn.Conv2d(1, 4, 3)), nn.LeakyReLU(0.2), nn.Flatten(), sn(nn.Linear(64, 1)))


MODELS = {"mlp": (mlp, (3,)), "conv_bn": (conv_bn, (1, 6, 6)), "sn_old": (sn_old, (1, 6, 6)),
          "sn_new": (sn_new, (1, 6, 6))}
PARTS = {
    "hinge": (lambda d: torch.relu(1 - d).mean(), lambda d: torch.relu(1 + d).mean()),
    "bce": (lambda d: nn.functional.softplus(-d).mean(), lambda d: nn.functional.softplus(d).mean()),
    "wgan": (lambda d: (-d).mean(), lambda d: d.mean()),
}


def reference(D, xr, xf, loss):
    """Plain float64 autograd: one forward per half, torch.autograd.grad for each part, Algorithm 1 by hand."""
    params = [p for p in D.parameters() if p.requires_grad]
    lr_fn, lf_fn = PARTS[loss]
    out_r = D(xr)
    l_r = lr_fn(out_r)
    g_r = torch.autograd.grad(l_r, params)
    out_f = D(xf)
    l_f = lf_fn(out_f)
    g_f = torch.autograd.grad(l_f, params)
    flat_r = torch.cat([g.reshape(-1) for g in g_r]).numpy()
    flat_f = torch.cat([g.reshape(-1) for g in g_f]).numpy()
    s_r, s_f = float(torch.sigmoid(out_r.detach()).mean()), float(torch.sigmoid(out_f.detach()).mean())
    w_r, w_f, case = algorithm1(flat_r, flat_f, s_r, s_f)
    return dict(g_r=g_r, g_f=g_f, w_r=w_r, w_f=w_f, case=case, s_r=s_r, s_f=s_f,
                l_r=float(l_r.detach()), l_f=float(l_f.detach()),
                angle=float(np.degrees(np.arccos(np.clip(flat_r @ flat_f / np.linalg.norm(flat_r)
                                                         / np.linalg.norm(flat_f), -1, 1)))))


def pair(name, n=8):
    build, shape = MODELS[name]
    torch.manual_seed(1)
    D = build().double()
    D_ref = copy.deepcopy(D)
    xr = torch.randn(n, *shape, dtype=torch.float64) + 0.5
    xf = torch.randn(n, *shape, dtype=torch.float64) - 0.5
    return D, D_ref, xr, xf


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("loss", list(PARTS))
def test_gradient_and_statistics_match_float64_reference(name, loss):
    D, D_ref, xr, xf = pair(name)
    ref = reference(D_ref, xr, xf, loss)
    aw = AWDiscriminatorLoss(D, loss=loss)
    value = aw(xr, xf)
    value.backward()
    last = aw.last.to_dict()
    assert last["case"] == ref["case"]
    for key, ref_key in (("w_real", "w_r"), ("w_fake", "w_f"), ("score_real", "s_r"), ("score_fake", "s_f"),
                         ("loss_real", "l_r"), ("loss_fake", "l_f"), ("angle", "angle")):
        assert last[key] == pytest.approx(ref[ref_key], rel=1e-8, abs=ATOL), key
    assert float(value.detach()) == pytest.approx(ref["w_r"] * ref["l_r"] + ref["w_f"] * ref["l_f"], abs=ATOL)
    params = [p for p in D.parameters() if p.requires_grad]
    for p, a, b in zip(params, ref["g_r"], ref["g_f"]):
        torch.testing.assert_close(p.grad, ref["w_r"] * a + ref["w_f"] * b, atol=ATOL, rtol=0)
    # Buffers moved exactly as in one plain forward of each half.
    for (n, b), (_, b_ref) in zip(D.named_buffers(), D_ref.named_buffers()):
        torch.testing.assert_close(b, b_ref, atol=0, rtol=0, msg=n)


@pytest.mark.parametrize("name", list(MODELS))
def test_from_outputs_equals_call(name):
    D, D2, xr, xf = pair(name)
    aw1, aw2 = AWDiscriminatorLoss(D), AWDiscriminatorLoss(D2)
    aw1(xr, xf).backward()
    loss = aw2.from_outputs(D2(xr), D2(xf))
    loss.backward()
    assert aw1.last.to_dict() == pytest.approx(aw2.last.to_dict(), abs=ATOL)
    for p1, p2 in zip(D.parameters(), D2.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, atol=ATOL, rtol=0)


def test_from_outputs_on_one_concatenated_pass():
    D, D_ref, xr, xf = pair("mlp")  # no batch statistics, so one pass equals two
    ref = reference(D_ref, xr, xf, "hinge")
    aw = AWDiscriminatorLoss(D)
    out = D(torch.cat([xf, xr]))  # BigGAN's way: fakes first
    d_fake, d_real = torch.split(out, [len(xf), len(xr)])
    aw.from_outputs(d_real, d_fake).backward()
    for p, a, b in zip(D.parameters(), ref["g_r"], ref["g_f"]):
        torch.testing.assert_close(p.grad, ref["w_r"] * a + ref["w_f"] * b, atol=ATOL, rtol=0)


def test_from_outputs_accepts_tensor_subclass():
    class Distribution(torch.Tensor):  # stands in for BigGAN's utils.Distribution
        def to(self, *args, **kwargs):
            raise RuntimeError("Distribution.to")

    D, D2, xr, xf = pair("mlp")
    aw1, aw2 = AWDiscriminatorLoss(D), AWDiscriminatorLoss(D2)
    aw1.from_outputs(D(xr), D(xf)).backward()
    aw2.from_outputs(D2(xr).as_subclass(Distribution), D2(xf).as_subclass(Distribution)).backward()
    for p1, p2 in zip(D.parameters(), D2.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, atol=0, rtol=0)


def test_backward_adds_to_existing_gradients_and_composes_with_penalties():
    D, D_ref, xr, xf = pair("mlp")
    ref = reference(D_ref, xr, xf, "hinge")
    aw = AWDiscriminatorLoss(D)
    for p in D.parameters():
        p.grad = torch.full_like(p, 0.25)
    loss = aw(xr, xf)
    penalty = sum((p ** 2).sum() for p in D.parameters())  # backpropagated together with the aw loss
    (loss + penalty).backward()
    for p, a, b in zip(D.parameters(), ref["g_r"], ref["g_f"]):
        expected = 0.25 + ref["w_r"] * a + ref["w_f"] * b + 2 * p.detach()
        torch.testing.assert_close(p.grad, expected, atol=ATOL, rtol=0)


def test_loss_scale_multiplies_the_deposited_gradient():
    D, D2, xr, xf = pair("mlp")
    AWDiscriminatorLoss(D)(xr, xf).backward()
    (AWDiscriminatorLoss(D2)(xr, xf) * 128.0).backward()  # what GradScaler.scale does
    for p1, p2 in zip(D.parameters(), D2.parameters()):
        torch.testing.assert_close(p2.grad, 128.0 * p1.grad, atol=1e-9, rtol=0)


def test_frozen_parameters_are_skipped():
    D, D_ref, xr, xf = pair("mlp")
    D[0].weight.requires_grad_(False)
    D_ref[0].weight.requires_grad_(False)
    ref = reference(D_ref, xr, xf, "hinge")
    aw = AWDiscriminatorLoss(D)
    aw(xr, xf).backward()
    assert D[0].weight.grad is None
    trainable = [p for p in D.parameters() if p.requires_grad]
    for p, a, b in zip(trainable, ref["g_r"], ref["g_f"]):
        torch.testing.assert_close(p.grad, ref["w_r"] * a + ref["w_f"] * b, atol=ATOL, rtol=0)


class ProjectionD(nn.Module):
    """A conditional D: extra positional and keyword arguments must reach it on both halves."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 8)
        self.out = nn.Linear(8, 1)
        self.embed = nn.Embedding(4, 8)

    def forward(self, x, y, scale=1.0):
        h = torch.relu(self.body(x))
        return scale * (self.out(h) + (self.embed(y) * h).sum(1, keepdim=True))


def test_extra_arguments_reach_the_discriminator():
    torch.manual_seed(2)
    D = ProjectionD().double()
    D_ref = copy.deepcopy(D)
    xr, xf = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    aw = AWDiscriminatorLoss(D)
    aw(xr, xf, y, scale=0.5).backward()

    class Bound(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.d = d

        def forward(self, x):
            return self.d(x, y, scale=0.5)

    ref = reference(Bound(D_ref), xr, xf, "hinge")
    for p, a, b in zip(D.parameters(), ref["g_r"], ref["g_f"]):
        torch.testing.assert_close(p.grad, ref["w_r"] * a + ref["w_f"] * b, atol=ATOL, rtol=0)


def test_float32_model_trains():
    torch.manual_seed(3)
    D = mlp()
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    aw = AWDiscriminatorLoss(D)
    xr, xf = torch.randn(64, 3) + 2, torch.randn(64, 3) - 2
    scores = []
    for _ in range(30):
        opt.zero_grad()
        aw(xr, xf).backward()
        opt.step()
        scores.append(float(aw.last.score_real) - float(aw.last.score_fake))
    assert scores[-1] > scores[0] + 0.3  # D learns to separate the halves


def test_step_post_hook_receives_statistics_and_can_be_removed():
    D, _, xr, xf = pair("mlp")
    seen = []
    aw = AWDiscriminatorLoss(D)
    handle = aw.register_step_post_hook(lambda obj, stats: seen.append((obj, stats)))
    aw(xr, xf)
    assert len(seen) == 1 and seen[0][0] is aw and seen[0][1] is aw.last and aw.steps == 1
    assert 1 <= int(seen[0][1].case) <= 5 and isinstance(seen[0][1].case_name, str)
    handle.remove()
    aw(xr, xf)
    assert len(seen) == 1 and aw.steps == 2


def test_a_raising_hook_propagates_and_the_step_stays():
    """As torch.optim's post-hooks: they run once the step is committed; a raising hook does not undo it."""
    torch.manual_seed(0)
    D = conv_bn().double()
    D_ref = copy.deepcopy(D)
    xr, xf = torch.randn(4, 1, 6, 6, dtype=torch.float64), torch.randn(4, 1, 6, 6, dtype=torch.float64)
    aw = AWDiscriminatorLoss(D)
    seen = []

    def boom(obj, stats):
        seen.append(stats)
        raise RuntimeError("logging failed")

    aw.register_step_post_hook(boom)
    with pytest.raises(RuntimeError, match="logging failed"):
        aw(xr, xf)
    assert aw.steps == 1 and len(seen) == 1 and seen[0] is aw.last  # the step is committed
    # D's buffers moved as in a plain step's two forwards.
    D_ref(xr)
    D_ref(xf)
    for (n, b), b_ref in zip(D.named_buffers(), D_ref.buffers()):
        assert torch.equal(b, b_ref), n
    # The loss was never returned, so nothing reached .grad.
    assert all(p.grad is None for p in D.parameters())


def test_draws_as_many_random_numbers_as_a_plain_step():
    """Dropout in D: the per-part gradients (and the one-time probe for unused parameters) must leave the
    RNG where two plain forwards leave it, or a resumed run would draw differently."""
    D = nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5), nn.Linear(16, 1))
    xr, xf = torch.randn(4, 3), torch.randn(4, 3)
    torch.manual_seed(7)
    D(xr)
    D(xf)
    plain = torch.random.get_rng_state()
    torch.manual_seed(7)
    AWDiscriminatorLoss(D)(xr, xf)
    assert torch.equal(torch.random.get_rng_state(), plain)


class WithUnusedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 8)
        self.out = nn.Linear(8, 1)
        self.unused = nn.Linear(8, 4)  # e.g. a class head an unconditional loss never touches

    def forward(self, x):
        return self.out(torch.relu(self.body(x)))


@pytest.mark.parametrize("path", ["call", "from_outputs"])
def test_unused_parameters_keep_grad_none_like_a_plain_backward(path):
    torch.manual_seed(0)
    D = WithUnusedHead().double()
    xr, xf = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    aw = AWDiscriminatorLoss(D)
    loss = aw(xr, xf) if path == "call" else aw.from_outputs(D(xr), D(xf))
    loss.backward()
    assert D.unused.weight.grad is None and D.unused.bias.grad is None
    assert D.body.weight.grad is not None
    # AdamW's weight decay must not move what had no gradient.
    w = D.unused.weight.detach().clone()
    torch.optim.AdamW(D.parameters(), lr=0.1, weight_decay=0.5).step()
    assert torch.equal(D.unused.weight, w)


def test_from_outputs_refuses_outputs_with_no_path_to_d():
    torch.manual_seed(0)
    D, other = mlp().double(), mlp().double()
    xr, xf = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    aw = AWDiscriminatorLoss(D)
    with pytest.raises(ValueError, match="no path"):
        aw.from_outputs(other(xr), other(xf))
    assert aw.steps == 0 and aw.last is None


@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e20), (torch.float64, 1e30)])
def test_finite_gradients_whose_norm_overflows_are_no_alarm(dtype, scale):
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)).to(dtype)
    with torch.no_grad():
        D[2].weight.mul_(scale)  # logits and gradients of the first layer far beyond 1e19
    xr, xf = torch.randn(4, 3, dtype=dtype), torch.randn(4, 3, dtype=dtype)
    aw = AWDiscriminatorLoss(D, loss="wgan")
    aw(xr, xf).backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in D.parameters())
    assert bool(torch.isfinite(aw.last.w_real)) and bool(torch.isfinite(aw.last.w_fake))


def test_float16_gradients_whose_norm_exceeds_float16_range_get_the_float64_weights():
    """Every gradient entry is a finite float16 but both norms are above 65504: the weights are still
    Algorithm 1's on the float64 values of those float16 gradients."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(3, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)).half()
    with torch.no_grad():
        D[2].weight.mul_(1e5)
        D[0].weight.mul_(0.01)
        D[0].bias.mul_(0.01)
    xr, xf = (torch.randn(16, 3) + 1).half(), (torch.randn(16, 3) - 1).half()
    params = list(D.parameters())
    out_r, out_f = D(xr), D(xf)
    g_r = torch.autograd.grad((-out_r).mean(), params)
    g_f = torch.autograd.grad(out_f.mean(), params)
    flat_r = np.concatenate([g.double().reshape(-1).numpy() for g in g_r])
    flat_f = np.concatenate([g.double().reshape(-1).numpy() for g in g_f])
    assert np.linalg.norm(flat_r) > 65504 and np.linalg.norm(flat_f) > 65504
    w_r, w_f, case = algorithm1(flat_r, flat_f, float(torch.sigmoid(out_r.detach().float()).mean()),
                                float(torch.sigmoid(out_f.detach().float()).mean()))
    aw = AWDiscriminatorLoss(D, loss="wgan")
    aw(xr, xf).backward()
    assert int(aw.last.case) == case
    assert float(aw.last.w_real) == pytest.approx(w_r, rel=1e-6)
    assert float(aw.last.w_fake) == pytest.approx(w_f, rel=1e-6)
    for p, a, b in zip(params, g_r, g_f):
        # float16 arithmetic: each term and the sum rounded to about 3 significant digits
        terms = (w_r * a.double()).abs() + (w_f * b.double()).abs()
        error = (p.grad.double() - (w_r * a.double() + w_f * b.double())).abs()
        assert bool((error <= 2e-3 * terms + 1e-7).all()), float((error / (terms + 1e-30)).max())


def test_argument_checks():
    D = mlp()
    with pytest.raises(ValueError, match="Invalid alpha2"):
        AWDiscriminatorLoss(D, alpha1=0.9, alpha2=0.5)
    with pytest.raises(TypeError, match="Invalid scaler"):
        AWDiscriminatorLoss(D, scaler="yes")
    with pytest.raises(ValueError, match="Invalid nonfinite"):
        AWDiscriminatorLoss(D, nonfinite="raise", scaler=torch.amp.GradScaler("cpu"))
    assert AWDiscriminatorLoss(D, scaler=torch.amp.GradScaler("cpu")).nonfinite == "propagate"


def test_load_state_dict_validates_everything_and_changes_nothing_on_error():
    D, _, xr, xf = pair("mlp")
    aw = AWDiscriminatorLoss(D)
    aw(xr, xf)
    good = aw.state_dict()
    target = AWDiscriminatorLoss(D, loss="bce", eps=0.1)
    before = target.state_dict()
    broken = [{**good, "loss": "wgan", "nonfinite": "bogus"}, {**good, "steps": -3}, {**good, "alpha1": 0.9},
              {**good, "last": "garbage"}, {**good, "component": "FreeAdvDiscriminator"}, {**good, "version": 2},
              {k: v for k, v in good.items() if k != "eps"}]
    for state in broken:
        with pytest.raises((ValueError, TypeError)):
            target.load_state_dict(state)
        assert target.state_dict() == before
    target.load_state_dict(good)
    assert target.loss == "hinge" and target.steps == 1


# ------------------------------------------- bugs: tied weights, per-call graph, no extra forward
def plain_parts(D, xr, xf, loss="hinge", **kwargs):
    """The reference: a plain step's two forwards, torch.autograd.grad of each part (float64), Algorithm 1."""
    params = [p for p in D.parameters() if p.requires_grad]
    lr_fn, lf_fn = PARTS[loss]
    out_r = D(xr, **kwargs)
    g_r = torch.autograd.grad(lr_fn(out_r), params, allow_unused=True)
    out_f = D(xf, **kwargs)
    g_f = torch.autograd.grad(lf_fn(out_f), params, allow_unused=True)
    flat = lambda gs: np.concatenate([(torch.zeros_like(p) if g is None else g).reshape(-1).numpy()  # noqa: E731
                                      for p, g in zip(params, gs)])
    w_r, w_f, _ = algorithm1(flat(g_r), flat(g_f), float(torch.sigmoid(out_r.detach()).mean()),
                             float(torch.sigmoid(out_f.detach()).mean()))
    expected = [None if a is None and b is None else
                w_r * (0 if a is None else a) + w_f * (0 if b is None else b) for a, b in zip(g_r, g_f)]
    return params, expected


class TiedD(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)
        self.b.weight = self.a.weight  # one parameter used by two layers
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.b(torch.tanh(self.a(x)))))


def test_tied_weights_get_the_gradient_of_a_plain_loop():
    torch.manual_seed(0)
    D = TiedD().double()
    D_ref = copy.deepcopy(D)
    assert D_ref.b.weight is D_ref.a.weight
    xr, xf = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    params, expected = plain_parts(D_ref, xr, xf)
    AWDiscriminatorLoss(D)(xr, xf).backward()
    assert len(list(D.parameters())) == len(params) == 5
    for p, e in zip(D.parameters(), expected):
        torch.testing.assert_close(p.grad, e, atol=ATOL, rtol=0)


class BranchingD(nn.Module):
    """A D whose forward uses an extra layer only when asked: which parameters a step reaches varies."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 8)
        self.out = nn.Linear(8, 1)
        self.extra = nn.Linear(8, 8)

    def forward(self, x, use_extra=False):
        h = torch.tanh(self.body(x))
        if use_extra:
            h = torch.tanh(self.extra(h))
        return self.out(h)


@pytest.mark.parametrize("first,second", [(False, True), (True, False)])
def test_the_parameters_a_step_reaches_are_read_from_each_call(first, second):
    torch.manual_seed(0)
    D = BranchingD().double()
    D_ref = copy.deepcopy(D)
    xr, xf = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    aw = AWDiscriminatorLoss(D)
    aw(xr, xf, use_extra=first).backward()
    for p in D.parameters():
        p.grad = None
    aw(xr, xf, use_extra=second).backward()
    _, expected = plain_parts(D_ref, xr, xf, use_extra=second)
    for (name, p), e in zip(D.named_parameters(), expected):
        if e is None:
            assert p.grad is None, name  # as a plain backward leaves it: AdamW must not decay it
        else:
            assert p.grad is not None, name
            torch.testing.assert_close(p.grad, e, atol=ATOL, rtol=0, msg=name)
    w = D.extra.weight.detach().clone()
    torch.optim.AdamW(D.parameters(), lr=0.1, weight_decay=0.5).step()
    assert torch.equal(D.extra.weight, w) == (not second)


class FeatureD(nn.Module):
    """Legacy spectral norm, a forward counter and features D keeps from its last forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.utils.spectral_norm(nn.Conv2d(1, 4, 3))
        self.head = nn.utils.spectral_norm(nn.Linear(16, 1))
        self.calls = 0
        self.features = None

    def forward(self, x):
        self.calls += 1
        h = torch.relu(self.conv(x)).flatten(1)
        self.features = h.detach()
        return self.head(h)


def test_d_runs_exactly_as_in_a_plain_step():
    """Two forwards, real then fake: hooks, counters, stored features, spectral-norm vectors and RNG as plain."""
    torch.manual_seed(0)
    D = FeatureD().double()
    D_ref = copy.deepcopy(D)
    hooks = {"aw": 0, "plain": 0}
    D.register_forward_hook(lambda *a: hooks.__setitem__("aw", hooks["aw"] + 1))
    D_ref.register_forward_hook(lambda *a: hooks.__setitem__("plain", hooks["plain"] + 1))
    xr, xf = torch.randn(4, 1, 4, 4, dtype=torch.float64), torch.randn(4, 1, 4, 4, dtype=torch.float64)

    torch.manual_seed(5)
    params, expected = plain_parts(D_ref, xr, xf)
    rng_plain = torch.random.get_rng_state()
    torch.manual_seed(5)
    AWDiscriminatorLoss(D)(xr, xf).backward()
    assert torch.equal(torch.random.get_rng_state(), rng_plain)

    assert hooks == {"aw": 2, "plain": 2} and D.calls == D_ref.calls == 2
    torch.testing.assert_close(D.features, D_ref.features, atol=0, rtol=0)  # the fake half's, as plain
    for (name, b), b_ref in zip(D.named_buffers(), D_ref.buffers()):  # u advanced twice, as plain
        torch.testing.assert_close(b, b_ref, atol=0, rtol=0, msg=name)
    for p, e in zip(D.parameters(), expected):
        torch.testing.assert_close(p.grad, e, atol=ATOL, rtol=0)
    torch.testing.assert_close(D.conv.weight, D_ref.conv.weight, atol=0, rtol=0)


class RaisingBN(nn.Module):
    """BatchNorm (buffers that every forward moves) and an error in the fake half's forward."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
        self.poison = None

    def forward(self, x, fail=False):
        out = self.body(x)
        if fail and x.mean() < 0:  # the fake half
            raise IndexError("label out of range")
        return out * self.poison if (self.poison is not None and x.mean() < 0) else out


@pytest.mark.parametrize("failure", ["raise", "nan"])
def test_an_error_in_the_fake_half_puts_ds_buffers_back_and_changes_nothing(failure):
    torch.manual_seed(0)
    D = RaisingBN().double()
    aw = AWDiscriminatorLoss(D)
    xr, xf = torch.randn(6, 3, dtype=torch.float64) + 2, torch.randn(6, 3, dtype=torch.float64) - 2
    aw(xr, xf).backward()
    before = (copy.deepcopy(D.state_dict()), [p.grad.clone() for p in D.parameters()], aw.state_dict())
    if failure == "nan":
        D.poison = float("nan")
    with pytest.raises(IndexError if failure == "raise" else FloatingPointError):
        aw(xr, xf, fail=failure == "raise")
    for k, v in before[0].items():
        assert torch.equal(v, D.state_dict()[k]), k  # the real half had moved the running statistics
    assert all(torch.equal(a, p.grad) for a, p in zip(before[1], D.parameters()))
    assert aw.steps == before[2]["steps"] == 1 and torch.equal(aw.last.w_real, before[2]["last"]["w_real"])
