"""TwoTimescale: learning rates, schedules, the (A2) warning, stepping and composition."""

import copy
import warnings

import pytest
import torch
import torch.nn as nn
from hypothesis import given, strategies as st

import gan_optim.functional as F
from gan_optim import AdaptiveScheduler, TwoTimescale, TwoTimescaleWarning


def nets():
    torch.manual_seed(0)
    return nn.Linear(2, 2), nn.Linear(2, 1)


def test_defaults_are_the_papers_wgan_gp_rates():
    G, D = nets()
    tt = TwoTimescale(G, D)
    assert (tt.lr_g, tt.lr_d) == (1e-4, 3e-4)
    assert isinstance(tt.g_optimizer, torch.optim.Adam)
    assert tt.g_optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    assert {id(p) for p in tt.d_optimizer.param_groups[0]["params"]} == {id(p) for p in D.parameters()}


def test_wraps_existing_optimizers_and_overrides_rates():
    G, D = nets()
    og, od = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.2)
    tt = TwoTimescale(og, od)
    assert tt.g_optimizer is og and (tt.lr_g, tt.lr_d) == (0.1, 0.2)
    with pytest.warns(UserWarning, match="set lr and initial_lr of the wrapped generator"):
        TwoTimescale(og, od, lr_g=0.01)
    assert og.param_groups[0]["lr"] == 0.01 and og.param_groups[0]["initial_lr"] == 0.01


def test_steps_are_plain_optimizer_steps_on_each_side():
    G, D = nets()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_g=0.1, lr_d=0.5)
    x = torch.randn(4, 2)
    for step, net in (("G", G), ("D", D)):
        tt.zero_grad()
        net(x).sum().backward()
        before = [p.detach().clone() for p in net.parameters()]
        tt.step(step)
        lr = 0.1 if step == "G" else 0.5
        for p, b in zip(net.parameters(), before):
            torch.testing.assert_close(p.detach(), b - lr * p.grad, atol=1e-7, rtol=0)
    assert (tt.steps_g, tt.steps_d) == (1, 1)


def test_polynomial_schedules_follow_each_networks_own_count():
    G, D = nets()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_g=1.0, lr_d=1.0, g_schedule=0.75, d_schedule=0.6)
    for _ in range(3):
        tt.step_d()
    tt.step_g()
    assert tt.lr_d == pytest.approx(F.polynomial_rate(3, 1.0, 0.6))
    assert tt.lr_g == pytest.approx(F.polynomial_rate(1, 1.0, 0.75))


@pytest.mark.parametrize("g,d,bad", [
    (0.75, 0.6, False),
    (0.6, 0.75, True),     # a(n) is not o(b(n))
    (0.4, 0.3, True),      # sum a^2 diverges
    (1.5, 0.75, True),     # sum a finite
    (None, 0.75, True),    # a constant G rate
])
def test_warning_when_polynomial_schedules_break_a2(g, d, bad):
    G, D = nets()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TwoTimescale(G, D, g_schedule=g, d_schedule=d)
    assert any(issubclass(w.category, TwoTimescaleWarning) for w in caught) == bad


def test_warning_for_known_breaking_scheduler_and_none_without_schedules():
    G, D = nets()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TwoTimescale(G, D)
    assert not caught
    og = torch.optim.SGD(G.parameters(), lr=0.1)
    with pytest.warns(TwoTimescaleWarning, match="ExponentialLR"):
        TwoTimescale(og, torch.optim.SGD(D.parameters(), lr=0.1),
                     g_schedule=torch.optim.lr_scheduler.ExponentialLR(og, 0.9))


@given(st.floats(0, 2), st.floats(0, 2))
def test_a2_conditions_for_polynomial_powers(pg, pd):
    violations = F.two_timescale_violations(pg, pd)
    holds = 0.5 < pg <= 1 and 0.5 < pd <= 1 and pg > pd
    assert (not violations) == holds


def test_composes_with_adaptive_scheduler():
    G, D = nets()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD)
    sched = AdaptiveScheduler()
    x = torch.randn(8, 2)
    for i in range(6):
        which = sched.next_update()
        tt.zero_grad()
        (D(G(x)).mean() * (1 if which == "D" else -1)).backward()
        tt.step(which)
        sched.observe(loss_g=1.0 + 0.1 * i, loss_d=2.0 + 0.3 * (i % 2))
    assert tt.steps_g == sched.counts["G"] and tt.steps_d == sched.counts["D"]


def test_non_finite_gradient_raises_and_skips_the_step():
    G, D = nets()
    tt = TwoTimescale(G, D, check_finite=True)
    for p in D.parameters():
        p.grad = torch.full_like(p, float("nan"))
    before = [p.detach().clone() for p in D.parameters()]
    state = tt.d_optimizer.state_dict()
    with pytest.raises(FloatingPointError, match="D gradient"):
        tt.step_d()
    assert all(torch.equal(p, b) for p, b in zip(D.parameters(), before))
    assert tt.steps_d == 0 and tt.d_optimizer.state_dict() == state


def test_finite_gradient_with_an_overflowing_norm_is_no_alarm():
    G, D = nets()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_d=1e-30, check_finite=True)
    for p in D.parameters():
        p.grad = torch.full_like(p, 3e38)  # finite; its float32 norm is not
    tt.step_d()
    assert tt.steps_d == 1


def test_a_step_the_scaler_skips_advances_no_counter_or_schedule():
    G, D = nets()
    sc = torch.amp.GradScaler("cpu", init_scale=1024.0)
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_d=3e-4, d_schedule=0.6, g_schedule=0.75, scaler=sc)
    x = torch.randn(4, 2)
    sc.scale(D(x).mean()).backward()
    assert tt.step_d() is True and sc.update() is None
    assert tt.steps_d == 1 and tt.lr_d == pytest.approx(3e-4 / 2 ** 0.6)
    before = [p.detach().clone() for p in D.parameters()]
    tt.zero_grad()
    sc.scale(D(x * float("inf")).mean()).backward()
    assert tt.step_d() is False  # skipped: no counter, no schedule, no parameter change
    sc.update()  # the user's update works and backs off
    assert tt.steps_d == 1 and tt.lr_d == pytest.approx(3e-4 / 2 ** 0.6) and sc.get_scale() == 512.0
    assert all(torch.equal(p, b) for p, b in zip(D.parameters(), before))


def test_constructor_touches_nothing_until_every_argument_is_accepted():
    G, D = nets()
    og, od = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.2)
    def settings():
        return [{k: v for k, v in o.param_groups[0].items() if k != "params"} for o in (og, od)]

    before = settings()
    with pytest.raises(TypeError, match="Invalid d_schedule"):
        TwoTimescale(og, od, lr_g=0.01, lr_d=0.02, d_schedule="bogus")
    with pytest.raises(ValueError, match="Invalid check_finite"):
        TwoTimescale(og, od, lr_g=0.01, check_finite=True, scaler=torch.amp.GradScaler("cpu"))
    assert settings() == before


@pytest.mark.parametrize("make_d", [
    lambda D: D,                                    # a module: the D optimizer is built here and refuses the betas
    lambda D: list(D.parameters()),
])
def test_a_wrapped_optimizers_rate_is_untouched_when_building_the_other_side_fails(make_d):
    """lr_g given with an optimizer, and D's optimizer (built here) refusing its arguments: opt_g keeps its rate."""
    G, D = nets()
    og = torch.optim.SGD(G.parameters(), lr=0.1)
    before = [dict((k, v) for k, v in g.items() if k != "params") for g in og.param_groups]
    with pytest.raises(ValueError, match="beta"):
        TwoTimescale(og, make_d(D), lr_g=0.01, betas=(2.0, 0.999))
    assert [dict((k, v) for k, v in g.items() if k != "params") for g in og.param_groups] == before
    assert "initial_lr" not in og.param_groups[0]


def test_a_schedule_that_fails_while_built_puts_the_wrapped_optimizers_back():
    G, D = nets()
    og, od = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.2)

    def broken(n):
        raise ZeroDivisionError("schedule")

    with pytest.raises(ZeroDivisionError):
        TwoTimescale(og, od, lr_g=0.01, lr_d=0.02, d_schedule=broken)
    assert [{k: v for k, v in o.param_groups[0].items() if k != "params"} for o in (og, od)] == [
        {**og.defaults, "lr": 0.1}, {**od.defaults, "lr": 0.2}]


# (A2) for a(n) = n^-p: sum a = inf iff p <= 1 (harmonic series at p = 1), sum a^2 < inf iff 2p > 1,
# so p = 1/2 (sum 1/n) breaks the second condition and p = 1 meets the first; a = o(b) iff p_g > p_d.
@pytest.mark.parametrize("power,sum_diverges,squares_converge", [
    (0.5, True, False),
    (0.5 + 1e-9, True, True),
    (1.0, True, True),
    (1.0 + 1e-9, False, True),
    (0.0, True, False),
])
def test_a2_boundaries_of_polynomial_rates(power, sum_diverges, squares_converge):
    problems = F.two_timescale_violations(power + 0.25 if power < 1 else power, power)  # G's power above D's
    about_d = [p for p in problems if p.startswith("D:")]
    assert any("sum of learning rates is finite" in p for p in about_d) == (not sum_diverges)
    assert any("sum of squared learning rates diverges" in p for p in about_d) == (not squares_converge)


def test_a2_needs_g_strictly_slower_than_d():
    assert any("o(D's rate)" in p for p in F.two_timescale_violations(0.75, 0.75))
    assert not any("o(D's rate)" in p for p in F.two_timescale_violations(0.75 + 1e-9, 0.75))


def test_a2_warning_at_power_one_half_exactly():
    G, D = nets()
    with pytest.warns(TwoTimescaleWarning, match="squared"):
        TwoTimescale(G, D, g_schedule=0.75, d_schedule=0.5)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.filterwarnings("ignore::gan_optim.TwoTimescaleWarning")
def test_record_step_and_post_hooks():
    G, D = nets()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_d=1.0, d_schedule=1.0, g_schedule=1.0 + 1e-9)
    seen = []
    handle = tt.register_step_post_hook(lambda obj, stats: seen.append((obj is tt, stats.network, stats.steps,
                                                                        stats.lr)))
    tt.record_step("D")
    tt.record_step("D")
    handle.remove()
    tt.record_step("D")
    assert seen == [(True, "D", 1, 0.5), (True, "D", 2, pytest.approx(1 / 3))]


def test_load_state_dict_is_validated_and_all_or_nothing():
    G, D = nets()
    tt = TwoTimescale(G, D, g_schedule=0.75, d_schedule=0.6)
    good = copy.deepcopy(tt.state_dict())
    for p in D.parameters():
        p.grad = torch.ones_like(p)
    tt.step_d()
    before = copy.deepcopy(tt.state_dict())
    bad = copy.deepcopy(good)
    bad["d_optimizer"]["param_groups"] = []  # G's part is fine, D's is not: nothing may be applied
    bad["g_power"] = 0.9
    for broken in (bad, {**good, "steps_d": -3}, {**good, "component": "AdaptiveScheduler"},
                   {**good, "version": 99}, {**good, "extra": 1}, {**good, "check_finite": "yes"}):
        with pytest.raises((ValueError, TypeError)):
            tt.load_state_dict(broken)
        after = tt.state_dict()
        assert (after["steps_d"], after["g_power"], after["d_scheduler"]) == (
            before["steps_d"], before["g_power"], before["d_scheduler"])
        assert torch.equal(after["d_optimizer"]["state"][0]["exp_avg"], before["d_optimizer"]["state"][0]["exp_avg"])
    tt.load_state_dict(good)
    assert tt.steps_d == 0


def test_state_without_the_optimizers_restores_schedules_and_rates():
    G, D = nets()
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_g=0.1, lr_d=0.3, g_schedule=0.75, d_schedule=0.6)
    for _ in range(3):
        for p in D.parameters():
            p.grad = torch.ones_like(p)
        tt.step_d()
    saved = tt.state_dict(optimizers=False)
    assert saved["g_optimizer"] is None and saved["d_optimizer"] is None
    G2, D2 = nets()
    tt2 = TwoTimescale(G2, D2, optimizer=torch.optim.SGD, lr_g=0.1, lr_d=0.3, g_schedule=0.75, d_schedule=0.6)
    tt2.load_state_dict(saved)
    assert tt2.steps_d == 3 and tt2.lr_d == pytest.approx(0.3 / 4 ** 0.6) and tt2.lr_g == pytest.approx(0.1)
