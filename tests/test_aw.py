"""AWDiscriminatorLoss against an independent float64 reference built from torch.autograd.grad."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from gan_optim import AWDiscriminatorLoss

from test_functional_aw import algorithm1

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


def test_callback_receives_statistics():
    D, _, xr, xf = pair("mlp")
    seen = []
    aw = AWDiscriminatorLoss(D)
    aw.callback = seen.append
    aw(xr, xf)
    assert len(seen) == 1 and seen[0] is aw.last and aw.steps == 1
    assert 1 <= int(seen[0].case) <= 5 and isinstance(seen[0].case_name, str)
