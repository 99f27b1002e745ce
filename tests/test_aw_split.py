"""AW's from_outputs on one pass over cat([fake, real]): both parts' gradients from one backward.

The reference is a plain loop of torch.autograd.grad per part, in float64, on a
copy of D made before the pass, and Algorithm 1 written out in tests/_reference.py.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gan_optim import AWDiscriminatorLoss, _grad_split
from _reference import algorithm1, aw_hinge_gradients

ATOL = 1e-10  # float64 throughout


def _sn(m: nn.Module) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(m)


class BigGANStyleSN(nn.Module):
    """A conv with BigGAN's own spectral norm: W / sigma, sigma = v W^T u with u, v from a no-grad power step."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3) * 0.2)
        self.bias = nn.Parameter(torch.randn(c_out) * 0.1)
        self.register_buffer("u", torch.randn(1, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_mat = self.weight.view(self.weight.shape[0], -1)
        with torch.no_grad():
            v = F.normalize(self.u @ w_mat)
            u = F.normalize(v @ w_mat.t())
            if self.training:
                self.u.copy_(u)
        sigma = torch.squeeze((v @ w_mat.t()) @ u.t())
        return F.conv2d(x, self.weight / sigma, self.bias, 1, 1)


class BigGANLikeD(nn.Module):
    """Pre-activation residual blocks, SN convs (both kinds), an attention-style gain, SN linear + projection."""

    def __init__(self, ch: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = BigGANStyleSN(3, ch)
        self.conv2 = _sn(nn.Conv2d(ch, ch, 3, 1, 1))
        self.shortcut = _sn(nn.Conv2d(3, ch, 1))
        self.gamma = nn.Parameter(torch.tensor(0.3))
        self.linear = _sn(nn.Linear(ch, 1))
        self.embed = _sn(nn.Embedding(classes, ch))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x)))
        h = F.avg_pool2d(h, 2) + F.avg_pool2d(self.shortcut(x), 2)
        h = h + self.gamma * torch.tanh(h)
        h = torch.sum(F.relu(h), [2, 3])
        return self.linear(h) + torch.sum(self.embed(y) * h, 1, keepdim=True)


class ResNetSNLikeD(nn.Module):
    def __init__(self, ch: int = 4) -> None:
        super().__init__()
        self.c1, self.c2 = _sn(nn.Conv2d(3, ch, 3, 1, 1)), _sn(nn.Conv2d(ch, ch, 3, 1, 1))
        self.c3 = _sn(nn.Conv2d(ch, ch, 4, 2, 1))
        self.out = _sn(nn.Linear(ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c1(x))
        h = h + self.c2(F.relu(h))
        h = F.leaky_relu(self.c3(h), 0.2)
        return self.out(h.sum([2, 3]))


class PlainD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(3, 16), nn.Linear(16, 16), nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(F.leaky_relu(self.l2(torch.tanh(self.l1(x))), 0.2))


def _data(model: str, n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if model == "plain":
        xr, xf = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
    else:
        xr, xf = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1, torch.randn(n, 3, 8, 8, generator=g)
    return xr.double(), xf.double(), torch.randint(0, 5, (2 * n,), generator=g)


def _build(model: str) -> nn.Module:
    torch.manual_seed(0)
    return {"biggan": BigGANLikeD, "resnet": ResNetSNLikeD, "plain": PlainD}[model]().double()


def _forward(D, model, xr, xf, y):
    args = (y,) if model == "biggan" else ()
    out = D(torch.cat([xf, xr]), *args)  # BigGAN's order: fakes first
    return torch.split(out, [len(xf), len(xr)])


def _reference(D, model, xr, xf, y, loss="hinge"):
    """Per-part gradients by two autograd.grad calls, Algorithm 1 weights, the weighted sum."""
    d_fake, d_real = _forward(D, model, xr, xf, y)
    params = [p for p in D.parameters() if p.requires_grad]
    if loss == "hinge":
        l_r, l_f = torch.relu(1 - d_real).mean(), torch.relu(1 + d_fake).mean()
    else:
        l_r, l_f = F.softplus(-d_real).mean(), F.softplus(d_fake).mean()
    g_r = torch.autograd.grad(l_r, params, retain_graph=True)
    g_f = torch.autograd.grad(l_f, params)
    flat = lambda gs: np.concatenate([g.detach().reshape(-1).numpy() for g in gs])  # noqa: E731
    w_r, w_f, case = algorithm1(flat(g_r), flat(g_f), float(torch.sigmoid(d_real).mean().detach()),
                                float(torch.sigmoid(d_fake).mean().detach()))
    return [w_r * a + w_f * b for a, b in zip(g_r, g_f)], case


@pytest.mark.parametrize("loss", ["hinge", "bce"])
@pytest.mark.parametrize("model", ["biggan", "resnet", "plain"])
def test_split_equals_two_backward_passes_in_float64(model, loss):
    D = _build(model)
    aw = AWDiscriminatorLoss(D, loss=loss)
    for step in range(3):  # the first call checks the split once; later calls use it alone
        xr, xf, y = _data(model, seed=step)
        D_ref = copy.deepcopy(D)  # before the pass: power iterations move u the same way in both
        expected, case = _reference(D_ref, model, xr, xf, y, loss)
        for p in D.parameters():
            p.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback here
            d_fake, d_real = _forward(D, model, xr, xf, y)
            aw.from_outputs(d_real, d_fake).backward()
        assert int(aw.last.case) == case
        for p, e in zip(D.parameters(), expected):
            torch.testing.assert_close(p.grad, e, atol=ATOL, rtol=0)
        for b, b_ref in zip(D.buffers(), D_ref.buffers()):
            torch.testing.assert_close(b, b_ref, atol=0, rtol=0)


def test_split_forms_no_full_weight_gradient():
    """One backward: autograd never forms a plain Linear's weight gradient (only the deposit hands it over)."""
    D = _build("plain")
    aw = AWDiscriminatorLoss(D)
    xr, xf, _ = _data("plain")
    d_fake, d_real = _forward(D, "plain", xr, xf, None)
    aw.from_outputs(d_real, d_fake).backward()  # the first call also checks against two passes
    formed = []
    handles = [p.register_hook(lambda g, n=n: formed.append(n)) for n, p in D.named_parameters()]
    d_fake, d_real = _forward(D, "plain", xr, xf, None)
    loss = aw.from_outputs(d_real, d_fake)
    assert formed == []  # two backward passes would have formed each parameter's gradient twice here
    loss.backward()
    assert sorted(formed) == sorted(n for n, _ in D.named_parameters())  # once each, by the deposit
    for h in handles:
        h.remove()


class _BatchNormD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.bn, self.l2 = nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)

    def forward(self, x):
        return self.l2(F.relu(self.bn(self.l1(x))))


class _MinibatchStdD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(9, 1)

    def forward(self, x):
        h = F.relu(self.l1(x))
        std = h.std(0).mean().expand(len(x), 1)  # ProGAN's minibatch standard deviation
        return self.l2(torch.cat([h, std], 1))


class _MixingD(nn.Module):
    """Mixes samples with an operation no static rule knows (the first call's check must catch it)."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(8, 1)

    def forward(self, x):
        h = F.relu(self.l1(x))
        return self.l2(0.5 * h + 0.5 * h.roll(1, 0))


class _LooseParameterD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(8, 1)
        self.shift = nn.Parameter(torch.full((8,), 0.1))

    def forward(self, x):
        return self.l2(F.relu(self.l1(x) + self.shift))


class _PairingD(nn.Module):
    """Folds two samples into one row inside: its middle layer's rows are not the outputs' rows."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(3, 8), nn.Linear(16, 16), nn.Linear(8, 1)

    def forward(self, x):
        h = self.l2(torch.tanh(self.l1(x)).reshape(-1, 16)).reshape(-1, 8)
        return self.l3(torch.tanh(h))


class _FoldedOutputD(nn.Module):
    """Its scores are a reshape of fewer rows: the slices do not pick D's samples."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(16, 2)

    def forward(self, x):
        return self.l2(torch.tanh(self.l1(x)).reshape(-1, 16)).reshape(-1, 1)


@pytest.mark.parametrize("cls, names", [
    (_PairingD, ["batch (6 rows) is not the outputs' (12)"]),
    (_FoldedOutputD, ["a reshape of 6 rows into the 12 scored ones"]),
    (_BatchNormD, ["layer 'bn'", "batch normalisation in training mode"]),
    (_MinibatchStdD, ["batch"]),
    (_MixingD, ["batch", "RollBackward0"]),
    (_LooseParameterD, ["parameter 'shift'"]),
])
def test_fallback_warns_once_naming_the_cause_and_stays_exact(cls, names):
    torch.manual_seed(0)
    D = cls().double()
    aw = AWDiscriminatorLoss(D)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            xr, xf, _ = _data("plain", seed=step)
            D_ref = copy.deepcopy(D)
            expected, _ = _reference(D_ref, "plain", xr, xf, None)
            for p in D.parameters():
                p.grad = None
            d_fake, d_real = _forward(D, "plain", xr, xf, None)
            aw.from_outputs(d_real, d_fake).backward()
            for p, e in zip(D.parameters(), expected):
                torch.testing.assert_close(p.grad, e, atol=ATOL, rtol=0)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    for name in names:
        assert name in messages[0]


def test_split_with_retain_graph_lets_other_terms_backpropagate():
    D = _build("resnet")
    aw = AWDiscriminatorLoss(D)
    xr, xf, y = _data("resnet")
    D_ref, D_extra = copy.deepcopy(D), copy.deepcopy(D)
    expected, _ = _reference(D_ref, "resnet", xr, xf, y)
    d_fake, d_real = _forward(D, "resnet", xr, xf, y)
    aw.from_outputs(d_real, d_fake, retain_graph=True).backward()
    extra = (d_real ** 2).mean()
    extra.backward()  # still possible: the graph was kept
    d_fake_r, d_real_r = _forward(D_extra, "resnet", xr, xf, y)
    params = list(D_extra.parameters())
    g_extra = torch.autograd.grad((d_real_r ** 2).mean(), params)
    for p, e, g in zip(D.parameters(), expected, g_extra):
        torch.testing.assert_close(p.grad, e + g, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model", ["biggan", "resnet"])
def test_split_under_autocast_and_a_grad_scaler(model):
    """bfloat16 autocast with a GradScaler: the split carries the parts through the dtype casts."""
    torch.manual_seed(0)
    D = {"biggan": BigGANLikeD, "resnet": ResNetSNLikeD}[model]()
    D_ref = copy.deepcopy(D)
    xr, xf, y = (t.float() if t.is_floating_point() else t for t in _data(model))
    args = (y,) if model == "biggan" else ()
    scale = 1024.0
    scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    aw = AWDiscriminatorLoss(D, scaler=scaler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            d_fake, d_real = torch.split(D(torch.cat([xf, xr]), *args), [len(xf), len(xr)])
        scaler.scale(aw.from_outputs(d_real, d_fake)).backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d_fake, d_real = torch.split(D_ref(torch.cat([xf, xr]), *args), [len(xf), len(xr)])
    params = list(D_ref.parameters())
    g_r = torch.autograd.grad(torch.relu(1 - d_real.float()).mean() * scale, params, retain_graph=True)
    g_f = torch.autograd.grad(torch.relu(1 + d_fake.float()).mean() * scale, params)
    w_r, w_f = aw.last.w_real.float(), aw.last.w_fake.float()
    for p, a, b in zip(D.parameters(), g_r, g_f):
        expected = w_r * a + w_f * b  # still scaled, as the deposit is
        torch.testing.assert_close(p.grad, expected, atol=1e-2 * float(expected.abs().max()) + 1e-6, rtol=0)


def test_an_overflowing_first_step_does_not_decide_the_split():
    """Under a GradScaler the first steps often overflow: that step is no evidence of mixing."""
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(3, 8), nn.Linear(8, 1))  # linear: gradients grow with the input
    D_ref = copy.deepcopy(D).double()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)  # float32 gradients overflow
    aw = AWDiscriminatorLoss(D, scaler=scaler)
    xr, xf, _ = _data("plain")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d_fake, d_real = _forward(D, "plain", 1e4 * xr.float(), 1e4 * xf.float(), None)  # large input gradients
        scaler.scale(aw.from_outputs(d_real, d_fake)).backward()  # non-finite: left for the scaler to skip
        assert not all(bool(torch.isfinite(p.grad).all()) for p in D.parameters())
        assert not aw._split.checked and not aw._split.refused  # nothing decided on that step
        scaler.update(1.0)  # as after a skipped step, with a scale that fits
        for p in D.parameters():
            p.grad = None
        d_fake, d_real = _forward(D, "plain", xr.float(), xf.float(), None)
        aw.from_outputs(d_real, d_fake).backward()  # checked now, and split: no warning
    expected, _ = _reference(D_ref, "plain", xr, xf, None)
    for p, e in zip(D.parameters(), expected):
        torch.testing.assert_close(p.grad.double(), e, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------- issue fixes
def _steps(D, aw, steps, pick=None, before_step=None):
    """``steps`` calls of from_outputs on a float64 D, each compared with the float64 reference loop.

    Returns the RuntimeWarnings' messages. ``pick(out, n)`` takes (d_fake, d_real) from D's output.
    """
    pick = pick or (lambda out, n: torch.split(out, [n, n]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(steps):
            if before_step is not None:
                before_step(D, step)
            xr, xf, _ = _data("plain", seed=step)
            D_ref = copy.deepcopy(D)
            d_fake, d_real = pick(D_ref(torch.cat([xf, xr])), len(xr))
            params = [p for p in D_ref.parameters() if p.requires_grad]
            g_r = torch.autograd.grad(torch.relu(1 - d_real).mean(), params, retain_graph=True, allow_unused=True)
            g_f = torch.autograd.grad(torch.relu(1 + d_fake).mean(), params, allow_unused=True)
            for p in D.parameters():
                p.grad = None
            d_fake, d_real = pick(D(torch.cat([xf, xr])), len(xr))
            aw.from_outputs(d_real, d_fake).backward()
            w_r, w_f = float(aw.last.w_real), float(aw.last.w_fake)
            trainable = [p for p in D.parameters() if p.requires_grad]
            for p, a, b in zip(trainable, g_r, g_f):
                expected = w_r * (0 if a is None else a) + w_f * (0 if b is None else b)
                torch.testing.assert_close(p.grad, torch.as_tensor(expected, dtype=p.dtype).expand_as(p),
                                           atol=ATOL, rtol=0)
            # The weights themselves are Algorithm 1's on the reference gradients.
            flat = lambda gs, ps: np.concatenate(  # noqa: E731
                [(torch.zeros_like(p) if g is None else g).detach().reshape(-1).numpy() for g, p in zip(gs, ps)])
            w_r_ref, w_f_ref, _ = algorithm1(flat(g_r, params), flat(g_f, params),
                                             float(torch.sigmoid(d_real).mean()), float(torch.sigmoid(d_fake).mean()))
            assert (w_r, w_f) == pytest.approx((w_r_ref, w_f_ref), abs=1e-9)
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


class _GatedRollD(nn.Module):
    """A sample-mixing branch behind a gain that starts at 0 (as self-attention's gamma does)."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(8, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        h = torch.tanh(self.l1(x))
        return self.l2(h + self.gamma * h.roll(1, 0))


class _GatedBatchAttentionD(nn.Module):
    """Attention across the batch (``h @ h.T``) behind a gain that starts at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(3, 8), nn.Linear(8, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        h = self.l1(x)
        attended = torch.softmax(h @ h.t(), 1) @ h
        return self.l2(torch.tanh(h + self.gamma * attended))


def _open_the_gate(D, step):
    if step == 1:
        with torch.no_grad():
            D.gamma.fill_(0.7)


@pytest.mark.parametrize("cls, op", [(_GatedRollD, "RollBackward0"), (_GatedBatchAttentionD, "MmBackward0")])
def test_a_mixing_branch_behind_a_zero_gain_is_refused_from_the_structure(cls, op):
    """The gain is 0 at the first call (the numerical check cannot see the mixing), then moves."""
    torch.manual_seed(0)
    D = cls().double()
    messages = _steps(D, AWDiscriminatorLoss(D), 3, before_step=_open_the_gate)
    assert len(messages) == 1 and op in messages[0], messages


def test_a_linear_with_a_frozen_weight_and_a_trainable_bias():
    torch.manual_seed(0)
    D = PlainD().double()
    D.l2.weight.requires_grad_(False)
    aw = AWDiscriminatorLoss(D)
    assert _steps(D, aw, 2) == []  # split (no fallback) and exact
    assert aw._split.checked


def test_a_conv_with_a_frozen_weight_and_a_trainable_bias():
    torch.manual_seed(0)
    D = ResNetSNLikeD().double()
    D.c2.parametrizations.weight.original.requires_grad_(False)
    aw = AWDiscriminatorLoss(D)
    for step in range(2):
        xr, xf, y = _data("resnet", seed=step)
        D_ref = copy.deepcopy(D)
        d_fake, d_real = _forward(D_ref, "resnet", xr, xf, y)
        params = [p for p in D_ref.parameters() if p.requires_grad]
        g_r = torch.autograd.grad(torch.relu(1 - d_real).mean(), params, retain_graph=True)
        g_f = torch.autograd.grad(torch.relu(1 + d_fake).mean(), params)
        for p in D.parameters():
            p.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d_fake, d_real = _forward(D, "resnet", xr, xf, y)
            aw.from_outputs(d_real, d_fake).backward()
        w_r, w_f = float(aw.last.w_real), float(aw.last.w_fake)
        for p, a, b in zip([p for p in D.parameters() if p.requires_grad], g_r, g_f):
            torch.testing.assert_close(p.grad, w_r * a + w_f * b, atol=ATOL, rtol=0)
    assert aw._split.checked


class _InstanceNormD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.norm, self.l2 = nn.Linear(3, 8), nn.InstanceNorm1d(2), nn.Linear(8, 1)

    def forward(self, x):
        return self.l2(F.relu(self.norm(self.l1(x).view(len(x), 2, 4)).flatten(1)))


def test_instance_norm_is_not_called_batch_normalisation():
    torch.manual_seed(0)
    D = _InstanceNormD().double()
    messages = _steps(D, AWDiscriminatorLoss(D), 2)
    assert len(messages) <= 1, messages
    assert not any("batch normalisation in training mode" in m for m in messages)
    assert all("instance normalisation" in m for m in messages)


@pytest.mark.parametrize("pick, op", [
    (lambda out, n: (out.index_select(0, torch.arange(n)), out.index_select(0, torch.arange(n, 2 * n))),
     "IndexSelectBackward0"),
    (lambda out, n: (out[0::2], out[1::2]), "SliceBackward0"),
    (lambda out, n: (out.t()[0, :n], out.t()[0, n:]), "SliceBackward0"),
])
def test_outputs_picked_from_one_pass_otherwise_than_by_row_slices_warn_once(pick, op):
    torch.manual_seed(0)
    D = PlainD().double()
    messages = _steps(D, AWDiscriminatorLoss(D), 3, pick=pick)
    assert len(messages) == 1 and op in messages[0], messages


@pytest.mark.parametrize("pick", [
    lambda out, n: (out[:-n], out[-n:]),  # negative bounds
    lambda out, n: (out[:n].view(-1), out[n:].view(-1)),
    lambda out, n: out.split(n),
], ids=["negative-bounds", "views", "split"])
def test_row_slices_of_one_pass_are_split(pick):
    torch.manual_seed(0)
    D = PlainD().double()
    aw = AWDiscriminatorLoss(D)
    assert _steps(D, aw, 2, pick=pick) == []
    assert aw._split.checked


def test_two_separate_passes_take_two_backward_passes_without_a_warning():
    torch.manual_seed(0)
    D = PlainD().double()
    aw = AWDiscriminatorLoss(D)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr, xf, _ = _data("plain")
        aw.from_outputs(D(xr), D(xf)).backward()
    assert not aw._split.checked and not aw._split.refused


# ------------------------------------------- autograd internals not as expected
def _rename_saved(kind_name, key, attribute):
    def apply(monkeypatch):
        kind = _grad_split._NODES[kind_name]
        monkeypatch.setitem(_grad_split._NODES, kind_name,
                            dataclasses.replace(kind, saved={**kind.saved, key: attribute}))
    return apply


def _saved_tensor_is_none(monkeypatch):
    real_getattr = getattr

    def getattr_with_mat1_none(obj, name, *default):
        return None if name == "_saved_mat1" else real_getattr(obj, name, *default)
    monkeypatch.setattr(_grad_split, "getattr", getattr_with_mat1_none, raising=False)


@pytest.mark.parametrize("simulate", [
    _rename_saved("AddmmBackward0", "input", "_saved_mat1_renamed"),  # a torch release renames it
    _rename_saved("AddmmBackward0", "alpha", "_saved_alpha_renamed"),
    _saved_tensor_is_none,
    lambda mp: mp.setattr(_grad_split, "_OUTPUT_METADATA", "_output_metadata_renamed"),
    lambda mp: mp.setattr(_grad_split, "_VARIABLE", "variable_renamed"),
    lambda mp: mp.delitem(_grad_split._NODES, "TanhBackward0"),  # a node kind the table does not know
], ids=["saved-tensor-renamed", "saved-scalar-renamed", "saved-tensor-none", "metadata-renamed",
        "variable-renamed", "unknown-node"])
def test_an_unexpected_autograd_graph_falls_back_with_one_warning(simulate, monkeypatch):
    simulate(monkeypatch)
    torch.manual_seed(0)
    D = PlainD().double()
    aw = AWDiscriminatorLoss(D)
    messages = _steps(D, aw, 3)
    assert len(messages) == 1, messages
    assert not aw._split.checked


# ------------------------------------------------------ the check's precision
def _rounding_noise(monkeypatch, relative):
    """Each split part off by ``relative`` per entry (signs at random): another kernel's rounding."""
    weight_parts = _grad_split._weight_parts
    gen = torch.Generator().manual_seed(0)

    def noisy(layer, gy, groups):
        parts = weight_parts(layer, gy, groups)
        return [tuple(p * (1 + relative * (2 * torch.randint(0, 2, p.shape, generator=gen) - 1)).to(p.dtype)
                      for p in pair) for pair in parts]
    monkeypatch.setattr(_grad_split, "_weight_parts", noisy)


def _bf16_run(D, seeds, args_for=lambda y: (y,), model="biggan", autocast=True):
    """from_outputs on ``seeds`` batches (float32 D, bf16 autocast): the RuntimeWarnings' messages."""
    aw = AWDiscriminatorLoss(D)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in range(seeds):
            xr, xf, y = (t.float() if t.is_floating_point() else t for t in _data(model, seed=seed))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                d_fake, d_real = torch.split(D(torch.cat([xf, xr]), *args_for(y)), [len(xf), len(xr)])
            aw.from_outputs(d_real, d_fake).backward()
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)], aw


def test_bf16_autocast_keeps_the_split_over_seeds(monkeypatch):
    """Rounding at bf16's precision (simulated: CPU kernels round both ways alike) is not mixing."""
    _rounding_noise(monkeypatch, 2.0 ** -8)  # half a bf16 spacing at 1: one rounding
    for seed in range(8):
        torch.manual_seed(seed)
        messages, aw = _bf16_run(BigGANLikeD(ch=8), 1)
        assert messages == [] and aw._split.checked, (seed, messages)


def test_float32_judges_the_same_disagreement_at_float32_precision(monkeypatch):
    _rounding_noise(monkeypatch, 2.0 ** -8)
    torch.manual_seed(0)
    messages, _ = _bf16_run(BigGANLikeD(ch=8), 1, autocast=False)
    assert len(messages) == 1 and "mixes samples" in messages[0], messages


def test_bf16_autocast_check_still_catches_a_roll_the_table_trusted(monkeypatch):
    """A mixing operation the structure missed (simulated: roll listed as elementwise) is caught under bf16."""
    monkeypatch.setitem(_grad_split._NODES, "RollBackward0", _grad_split._k("elementwise"))
    _rounding_noise(monkeypatch, 2.0 ** -8)
    torch.manual_seed(0)
    messages, aw = _bf16_run(_MixingD(), 3, args_for=lambda y: (), model="plain")
    assert len(messages) == 1 and "mixes samples" in messages[0] and "'l1.weight'" in messages[0], messages
    assert aw._split.refused and not aw._split.checked


def test_no_fallback_on_bf16_autocast_over_eight_seeds():
    for seed in range(8):
        torch.manual_seed(seed)
        messages, aw = _bf16_run(BigGANLikeD(ch=8), 2)
        assert messages == [] and aw._split.checked, (seed, messages)


class _OpD(nn.Module):
    def __init__(self, op) -> None:
        super().__init__()
        self.l1, self.l2, self.op = nn.Linear(3, 8), nn.Linear(8, 1), op

    def forward(self, x):
        return self.l2(self.op(self.l1(x)))


@pytest.mark.parametrize("op", [
    lambda h: F.leaky_relu(h, 0.2, inplace=True),  # DCGAN's nn.LeakyReLU(0.2, True)
    lambda h: F.elu(h, inplace=True),
    lambda h: F.layer_norm(h, (8,)),
    lambda h: F.group_norm(h.view(len(h), 4, 2), 2).flatten(1),
    lambda h: torch.cat(h.chunk(2, 1)[::-1], 1),
    lambda h: torch.bmm(h.view(-1, 2, 4), h.view(-1, 2, 4).transpose(1, 2).softmax(-1).repeat(1, 1, 2)).flatten(1),
    lambda h: h - h.amax(1, keepdim=True) + h.std(1, keepdim=True),
    lambda h: h.masked_fill(h > 1, 0.0).clamp(-2, 2) ** 2,
], ids=["leaky_relu_", "elu_", "layer_norm", "group_norm", "chunk", "per-sample-bmm", "row-statistics", "masked"])
def test_per_sample_operations_keep_the_split(op):
    torch.manual_seed(0)
    D = _OpD(op).double()
    aw = AWDiscriminatorLoss(D)
    assert _steps(D, aw, 2) == []
    assert aw._split.checked


class _PaddedEmbeddingD(nn.Module):
    def __init__(self, padding_idx) -> None:
        super().__init__()
        self.embed, self.l1, self.l2 = nn.Embedding(5, 3, padding_idx=padding_idx), nn.Linear(3, 8), nn.Linear(8, 1)

    def forward(self, x, y):
        return self.l2(torch.tanh(self.l1(x + self.embed(y))))


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_with_a_padding_row(padding_idx):
    torch.manual_seed(0)
    D = _PaddedEmbeddingD(padding_idx).double()
    aw = AWDiscriminatorLoss(D)
    for step in range(2):
        xr, xf, y = _data("plain", seed=step)
        y[:4] = torch.tensor([2, 4, 2, 4])  # the padding rows are used
        D_ref = copy.deepcopy(D)
        d_fake, d_real = torch.split(D_ref(torch.cat([xf, xr]), y), [6, 6])
        expected = aw_hinge_gradients(d_real, d_fake, list(D_ref.parameters()))
        for p in D.parameters():
            p.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d_fake, d_real = torch.split(D(torch.cat([xf, xr]), y), [6, 6])
            aw.from_outputs(d_real, d_fake).backward()
        for p, want in zip(D.parameters(), expected):
            torch.testing.assert_close(p.grad, want, atol=ATOL, rtol=0)
    assert aw._split.checked


# ------------------------------------- the structural rule, on random graphs
from hypothesis import given, strategies as st  # noqa: E402

_PER_SAMPLE_OPS = {
    "tanh": torch.tanh,
    "leaky_relu_": lambda h: F.leaky_relu(h.clone(), 0.2, inplace=True),
    "scale": lambda h: 2.0 * h - 1.0,
    "row-mean": lambda h: h - h.mean(1, keepdim=True),
    "softmax": lambda h: torch.softmax(h, 1),
    "reshape": lambda h: h.reshape(len(h), 2, 4).transpose(1, 2).reshape(len(h), 8),
    "chunk-swap": lambda h: torch.cat(h.chunk(2, 1)[::-1], 1),
    "layer-norm": lambda h: F.layer_norm(h, (8,)),
    "square-gain": lambda h: h * h.detach().abs().mean(),  # a constant factor: no gradient path across rows
}
_MIXING_OPS = {
    "roll": lambda h: h.roll(1, 0),
    "batch-mean": lambda h: h - h.mean(0),
    "flip": lambda h: h.flip(0),
    "permute-rows": lambda h: h[torch.arange(len(h) - 1, -1, -1)],
    "batch-attention": lambda h: torch.softmax(h @ h.t(), 1) @ h,
    "transposes": lambda h: h.t().contiguous().t(),  # refused: the batch leaves dimension 0 (conservative)
    "batch-sum": lambda h: h + h.sum(0, keepdim=True),
}


class _ChainD(nn.Module):
    def __init__(self, ops) -> None:
        super().__init__()
        self.l1, self.l2, self.ops = nn.Linear(3, 8), nn.Linear(8, 1), ops

    def forward(self, x):
        h = self.l1(x)
        for op in self.ops:
            h = op(h)
        return self.l2(h)


@given(st.lists(st.sampled_from(sorted(_PER_SAMPLE_OPS) + sorted(_MIXING_OPS)), min_size=1, max_size=4),
       st.integers(0, 2 ** 16))
def test_the_split_applies_exactly_when_no_operation_mixes_samples(names, seed):
    """On chains of operations: the plan is made iff none mixes samples, and then equals the float64 loop."""
    torch.manual_seed(seed)
    D = _ChainD([{**_PER_SAMPLE_OPS, **_MIXING_OPS}[n] for n in names]).double()
    xr, xf, _ = _data("plain", seed=seed)
    d_fake, d_real = torch.split(D(torch.cat([xf, xr])), [6, 6])
    params = list(D.parameters())
    split = _grad_split.plan(d_real, d_fake, list(D.named_parameters()))
    mixes = any(n in _MIXING_OPS for n in names)
    assert isinstance(split, _grad_split.SplitPlan) != mixes, (names, split)
    if mixes:
        assert isinstance(split, str)
        return
    l_r, l_f = torch.relu(1 - d_real).mean(), torch.relu(1 + d_fake).mean()
    part_r, part_f = _grad_split.split_gradients(split, l_r + l_f, params, retain_graph=True)
    g_r = torch.autograd.grad(l_r, params, retain_graph=True)
    g_f = torch.autograd.grad(l_f, params)
    for a, b in zip([*part_r, *part_f], [*g_r, *g_f]):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
