"""The named-loss hook's per-call pieces (AWOnNamedLoss, WeGANOnNamedLoss), shared by ``gan-optim run`` and the
BigGAN-PyTorch adapter: checked against Algorithm 1 (tests/_reference.py) on per-part gradients taken here,
and WeGAN's weights written out."""

from __future__ import annotations

import math

import pytest
import torch

from _reference import algorithm1
from gan_optim import AWDiscriminatorLoss, WeightedGeneratorLoss
from gan_optim.adapters.named import AWOnNamedLoss, NamedHookError, WeGANOnNamedLoss, bind_call


def _d():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _outputs(D):
    x = torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = D(x)  # one pass over cat([fake, real]), as BigGAN scores them
    return out[:5], out[5:]


def _flat(gs, params):
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, gs)])


def _expected(D, fn_r, fn_f):
    """w_r grad L_r + w_f grad L_f from two plain backward passes and Algorithm 1 written out."""
    params = list(D.parameters())
    fake, real = _outputs(D)
    g_r = _flat(torch.autograd.grad(fn_r(real), params, retain_graph=True, allow_unused=True), params)
    g_f = _flat(torch.autograd.grad(fn_f(fake), params, allow_unused=True), params)
    w_r, w_f, _ = algorithm1(g_r.numpy(), g_f.numpy(), float(torch.sigmoid(real.detach()).mean()),
                             float(torch.sigmoid(fake.detach()).mean()))
    return w_r * g_r + w_f * g_f


def _hinge_r(d):
    return torch.relu(1 - d).mean()


def _hinge_f(d):
    return torch.relu(1 + d).mean()


@pytest.mark.parametrize("parts", ["returned", "detached"])
def test_both_ways_of_taking_the_parts_give_algorithm1s_gradient_and_the_codebases_values(parts):
    calls = []

    def pair(dis_fake, dis_real):  # BigGAN's form
        calls.append(1)
        return _hinge_r(dis_real), _hinge_f(dis_fake)

    D = _d()
    aw = AWDiscriminatorLoss(D)
    on_loss = AWOnNamedLoss("pair", "dis_real", "dis_fake", parts=parts)
    for step in range(2):
        calls.clear()
        D.zero_grad()
        fake, real = _outputs(D)
        out = on_loss(pair, bind_call(pair, (fake, real), {}), aw, retain_graph=False)
        assert isinstance(out, tuple) and len(out) == 2
        assert out[0].item() == _hinge_r(real).item() and out[1].item() == _hinge_f(fake).item()
        (out[0] + out[1]).backward()  # what BigGAN's training function does
        got = _flat([p.grad for p in D.parameters()], list(D.parameters()))
        torch.testing.assert_close(got, _expected(D, _hinge_r, _hinge_f), rtol=1e-10, atol=1e-12)
        # returned: one call, the user's prints run once; detached: two per call (the parts), and the first
        # call's checks call it on moved outputs under no_grad.
        if parts == "returned" or step > 0:
            assert len(calls) == (1 if parts == "returned" else 2)
    assert aw.steps == 2


def test_returned_parts_are_refused_when_coupled_inverted_or_not_a_pair():
    D = _d()

    def relativistic(dis_fake, dis_real):
        return (torch.relu(1 - (dis_real - dis_fake.mean())).mean(),
                torch.relu(1 + (dis_fake - dis_real.mean())).mean())

    def inverted(dis_fake, dis_real):
        return torch.relu(1 + dis_real).mean(), torch.relu(1 - dis_fake).mean()

    def total(dis_fake, dis_real):
        return _hinge_r(dis_real) + _hinge_f(dis_fake)

    for fn, words in ((relativistic, "not separable"), (inverted, "sign is inverted"),
                      (total, r"must return \(loss_real, loss_fake\), got Tensor")):
        on_loss = AWOnNamedLoss(fn.__name__, "dis_real", "dis_fake", parts="returned", error=ValueError)
        before = [p.detach().clone() for p in D.parameters()]
        fake, real = _outputs(D)
        with pytest.raises(ValueError, match=words):
            on_loss(fn, bind_call(fn, (fake, real), {}), AWDiscriminatorLoss(D))
        assert all(torch.equal(a, p) and p.grad is None for a, p in zip(before, D.parameters()))
    # With d_sign=-1 the inverted loss is the declared one: the scores are sigmoid(-output).
    on_loss = AWOnNamedLoss("inverted", "dis_real", "dis_fake", parts="returned", d_sign=-1)
    fake, real = _outputs(D)
    aw = AWDiscriminatorLoss(D)
    on_loss(inverted, bind_call(inverted, (fake, real), {}), aw)
    assert aw.last is not None
    assert float(aw.last.score_real) == pytest.approx(float(torch.sigmoid(-real.detach()).mean()), rel=1e-12)


@pytest.mark.parametrize("check", [True, False])
def test_wegan_scales_each_samples_gradient_by_n_w_i(check):
    calls = []

    def g_loss(dis_fake):
        calls.append(1)
        return torch.nn.functional.softplus(-dis_fake).mean()

    eta = 0.05
    wegan = WeightedGeneratorLoss(eta=eta)
    on_loss = WeGANOnNamedLoss("g_loss", "dis_fake", check=check)
    d = torch.randn(6, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    loss = on_loss(g_loss, bind_call(g_loss, (d,), {}), wegan)
    assert len(calls) == (5 if check else 1)  # the check calls it four times under no_grad, once
    assert loss.item() == pytest.approx(torch.nn.functional.softplus(-d).mean().item(), rel=1e-15)
    loss.backward()
    values = d.detach().reshape(-1).tolist()
    sig = [1 / (1 + math.exp(-v)) for v in values]
    w = [eta ** (1 - p) for p in sig]
    w = [x / sum(w) for x in w]  # Pantazis et al., Algorithm 1
    expected = torch.tensor([[-wi * (1 - p)] for wi, p in zip(w, sig)], dtype=torch.float64)
    torch.testing.assert_close(d.grad, expected, rtol=1e-12, atol=0)
    assert wegan.steps == 1


def test_wegan_check_refuses_a_loss_whose_samples_interact():
    def coupled(dis_fake):
        return (dis_fake - dis_fake.mean()).pow(2).mean()

    d = torch.randn(6, 1, dtype=torch.float64, requires_grad=True)
    with pytest.raises(NamedHookError, match="not a sum of per-sample terms"):
        WeGANOnNamedLoss("coupled", "dis_fake")(coupled, bind_call(coupled, (d,), {}), WeightedGeneratorLoss())
