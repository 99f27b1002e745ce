"""Mixed precision on CPU: GradScaler("cpu") and autocast(bfloat16)."""

import copy

import pytest
import torch
import torch.nn as nn

from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, WeightedGeneratorLoss


def disc(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=g) + 1, torch.randn(16, 4, generator=g) - 1


def scaler(init_scale=2.0 ** 12):
    return torch.amp.GradScaler("cpu", init_scale=init_scale)


def test_aw_weights_come_from_unscaled_gradients():
    xr, xf = batch()
    D1, D2 = disc(), disc()
    opt1, opt2 = torch.optim.SGD(D1.parameters(), lr=0.1), torch.optim.SGD(D2.parameters(), lr=0.1)
    plain = AWDiscriminatorLoss(D1)
    plain(xr, xf).backward()
    opt1.step()
    sc = scaler()
    scaled = AWDiscriminatorLoss(D2, scaler=sc)
    sc.scale(scaled(xr, xf)).backward()
    sc.step(opt2)
    sc.update()
    for key in ("w_real", "w_fake", "angle"):
        assert float(getattr(scaled.last, key)) == pytest.approx(float(getattr(plain.last, key)), abs=1e-5)
    assert int(scaled.last.case) == int(plain.last.case)
    for p, q in zip(D1.parameters(), D2.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_aw_non_finite_gradient_skips_the_step_like_gradscaler():
    xr, xf = batch()
    D = disc()
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    sc = scaler()
    aw = AWDiscriminatorLoss(D, scaler=sc)
    before = copy.deepcopy(D.state_dict())
    xr = xr.clone()
    xr[0, 0] = float("inf")
    sc.scale(aw(xr, xf)).backward()  # no FloatingPointError: the scaler decides
    sc.step(opt)
    sc.update()
    for k, v in D.state_dict().items():
        assert torch.equal(v, before[k]), k  # step skipped
    assert sc.get_scale() < 2.0 ** 12  # and the scale backed off


def test_aw_under_bfloat16_autocast_trains():
    xr, xf = batch()
    D = disc()
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    sc = scaler()
    aw = AWDiscriminatorLoss(D, scaler=sc)
    ref = AWDiscriminatorLoss(copy.deepcopy(D))
    ref(xr, xf)
    gaps = []
    for _ in range(20):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = aw(xr, xf)
        sc.scale(loss).backward()
        sc.step(opt)
        sc.update()
        gaps.append(float(aw.last.score_real - aw.last.score_fake))
    assert gaps[-1] > gaps[0] + 0.2
    # bfloat16 keeps ~3 significant digits; the weights still track the float32 ones.
    aw2 = AWDiscriminatorLoss(copy.deepcopy(ref.discriminator), scaler=scaler())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        aw2(xr, xf)
    assert float(aw2.last.w_real) == pytest.approx(float(ref.last.w_real), rel=0.05)
    assert float(aw2.last.w_fake) == pytest.approx(float(ref.last.w_fake), rel=0.05)


def test_wegan_under_autocast_matches_float32_weights():
    torch.manual_seed(0)
    G, D = nn.Linear(4, 4), disc()
    z = torch.randn(32, 4)
    wg32, wg16 = WeightedGeneratorLoss(0.05), WeightedGeneratorLoss(0.05)
    loss32 = wg32(D(G(z)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d16 = D(G(z))
        loss16 = wg16(d16)
    assert d16.dtype == torch.bfloat16 and loss16.dtype == torch.float32
    assert float(loss16.detach()) == pytest.approx(float(loss32.detach()), rel=2e-2)
    torch.testing.assert_close(wg16.last_weights, wg32.last_weights, rtol=2e-2, atol=1e-4)
    loss16.backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters())


def test_scheduler_accepts_low_precision_losses():
    s = AdaptiveScheduler()
    s.next_update()
    s.observe(loss_g=torch.tensor(1.5, dtype=torch.bfloat16), loss_d=torch.tensor(-0.5, dtype=torch.float16))
    s.next_update()
    s.observe(loss_g=torch.tensor(1.0, dtype=torch.bfloat16), loss_d=torch.tensor(-0.5, dtype=torch.float16))
    assert s.ratio_g == pytest.approx(1 / 3) and s.ratio_d == 0.0 and s.next_update() == "G"


def test_freeadv_with_scaler_and_autocast():
    xr, xf = batch()
    xr, xf = xr.clamp(-1, 1), xf.clamp(-1, 1)
    D = disc()
    D_ref = copy.deepcopy(D)
    opt, opt_ref = torch.optim.SGD(D.parameters(), lr=0.1), torch.optim.SGD(D_ref.parameters(), lr=0.1)
    sc = scaler()
    fa = FreeAdvDiscriminator(D, opt, epsilon=0.05, scaler=sc, delta_init="zero")
    ref = FreeAdvDiscriminator(D_ref, opt_ref, epsilon=0.05, delta_init="zero")
    fa.step(xr, xf)  # float32 with a scale: identical to no scaler
    sc.update()
    ref.step(xr, xf)
    torch.testing.assert_close(fa.delta, ref.delta, atol=0, rtol=0)
    for p, q in zip(D.parameters(), D_ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        stats = fa.step(xr, xf)
    sc.update()
    assert float(fa.delta.abs().max()) <= 0.05 + 1e-7  # float32 rounding of epsilon
    assert bool(torch.isfinite(stats.loss_real))


# ---------------------------------------------------------------------------------------------
# One GradScaler loop for every component: an overflow skips the step, the scale halves, the
# user's own scaler.update() works, and the next (finite) iteration steps again.

def _loop_aw(sc):
    D = disc()
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    aw = AWDiscriminatorLoss(D, scaler=sc)

    def iteration(poison):
        xr, xf = batch()
        opt.zero_grad()
        sc.scale(aw(xr * (float("inf") if poison else 1.0), xf)).backward()
        sc.step(opt)
    return D, iteration


def _loop_wegan(sc):
    D, G = disc(), nn.Linear(4, 4)
    opt = torch.optim.SGD(G.parameters(), lr=0.1)
    wg = WeightedGeneratorLoss(0.1, scaler=sc)

    def iteration(poison):
        _, xf = batch()
        opt.zero_grad()
        out = D(G(xf))
        sc.scale(wg(out * (float("inf") if poison else 1.0))).backward()
        sc.step(opt)
    return G, iteration


def _loop_ttur(sc):
    from gan_optim import TwoTimescale

    D, G = disc(), nn.Linear(4, 4)
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_g=0.1, lr_d=0.1, d_schedule=0.6, g_schedule=0.75,
                      scaler=sc)

    def iteration(poison):
        xr, xf = batch()
        tt.zero_grad()
        sc.scale(torch.relu(1 - D(xr * (float("inf") if poison else 1.0))).mean()).backward()
        taken = tt.step_d()
        assert taken is (not poison) and tt.steps_d == iteration.steps + (0 if poison else 1)
        iteration.steps = tt.steps_d
    iteration.steps = 0
    return D, iteration


def _loop_freeadv(sc):
    D = disc()
    fa = FreeAdvDiscriminator(D, torch.optim.SGD(D.parameters(), lr=0.1), scaler=sc, data_range=None)

    def iteration(poison):
        xr, xf = batch()
        delta_before = None if fa.delta is None else fa.delta.clone()
        fa.step(xr, xf * (float("inf") if poison else 1.0))
        if poison and delta_before is not None:
            assert bool(torch.isfinite(fa.delta).all())
    return D, iteration


@pytest.mark.parametrize("make", [_loop_aw, _loop_wegan, _loop_ttur, _loop_freeadv],
                         ids=["aw", "wegan", "ttur", "freeadv"])
def test_every_component_passes_the_same_gradscaler_loop(make):
    sc = scaler(2.0 ** 10)
    model, iteration = make(sc)
    iteration(poison=False)
    sc.update()  # the user's update: works (inf checks were recorded)
    assert sc.get_scale() == 2.0 ** 10
    before = copy.deepcopy(model.state_dict())
    iteration(poison=True)  # no exception: the scaler decides
    sc.update()
    assert sc.get_scale() == 2.0 ** 9  # backed off
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the step was skipped
    iteration(poison=False)
    sc.update()
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())  # and training goes on


@pytest.mark.parametrize("build", [
    lambda sc: AWDiscriminatorLoss(disc(), nonfinite="raise", scaler=sc),
    lambda sc: WeightedGeneratorLoss(0.1, nonfinite="raise", scaler=sc),
    lambda sc: FreeAdvDiscriminator(disc(), torch.optim.SGD(disc().parameters(), lr=0.1), nonfinite="raise",
                                    scaler=sc),
], ids=["aw", "wegan", "freeadv"])
def test_raise_together_with_a_scaler_is_a_value_error(build):
    with pytest.raises(ValueError, match="Invalid nonfinite"):
        build(scaler())
