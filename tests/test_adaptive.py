"""AdaptiveScheduler as a hypothesis state machine against a plain-Python model of Algorithm 1."""

import math

import pytest
import torch
from hypothesis import assume, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import gan_optim.functional as F
from gan_optim import AdaptiveScheduler


class Algorithm1Model:
    """Ouyang & Agam, Algorithm 1, as written: ratios start at 1; the first iteration copies L into L^p;
    D iff r_d > lam * r_g, where ratios within rounding of each other (1e-6 relative, plus what float64
    rounding of the losses can change a ratio by) are equal, so a tie goes to G."""

    def __init__(self, lam, cap=None):
        self.lam, self.cap = lam, cap
        self.r_g = self.r_d = 1.0
        self.lp_g = self.lp_d = None
        self.history = []

    def choose(self):
        a, b = self.r_d, self.lam * self.r_g
        rounding = 2 * 2.0 ** -52 * ((2 + self.r_d) + self.lam * (2 + self.r_g)) if self.lp_g is not None else 0.0
        c = "D" if a - b > 1e-6 * max(a, b) + rounding else "G"
        if self.cap is not None and len(self.history) >= self.cap and all(h == c for h in self.history[-self.cap:]):
            c = "G" if c == "D" else "D"
        return c

    def observe(self, lg, ld):
        if self.lp_g is None:
            self.lp_g, self.lp_d = lg, ld
        self.r_g = abs((lg - self.lp_g) / self.lp_g) if abs(self.lp_g) >= 1e-8 else abs(lg - self.lp_g) / 1e-8
        self.r_d = abs((ld - self.lp_d) / self.lp_d) if abs(self.lp_d) >= 1e-8 else abs(ld - self.lp_d) / 1e-8
        self.lp_g, self.lp_d = lg, ld


losses = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-300)


class SchedulerMachine(RuleBasedStateMachine):
    @initialize(lam=st.floats(0.01, 10.0), cap=st.one_of(st.none(), st.integers(1, 4)))
    def setup(self, lam, cap):
        self.sched = AdaptiveScheduler(lam, max_consecutive=cap)
        self.model = Algorithm1Model(lam, cap)
        self.pending = None

    @rule()
    def ask(self):
        choice = self.sched.next_update()
        if self.pending is None:
            self.pending = self.model.choose()
        assert choice == self.pending

    @precondition(lambda self: self.pending is not None)
    @rule(lg=losses, ld=losses)
    def observe(self, lg, ld):
        self.model.history.append(self.pending)
        self.sched.observe(loss_g=lg, loss_d=ld)
        self.model.observe(lg, ld)
        self.pending = None

    @rule(lg=losses, ld=losses)
    def observe_without_asking(self, lg, ld):
        if self.pending is not None:
            self.model.history.append(self.pending)
        self.sched.observe(loss_g=torch.tensor(lg, dtype=torch.float64), loss_d=ld)
        self.model.observe(lg, ld)
        self.pending = None

    @rule(data=st.data())
    def save_and_resume(self, data):
        fresh = AdaptiveScheduler(data.draw(st.floats(0.01, 10.0)), max_consecutive=None)
        fresh.load_state_dict(self.sched.state_dict())
        self.sched = fresh

    @invariant()
    def ratios_and_counts_agree(self):
        if not hasattr(self, "sched"):
            return
        assert self.sched.ratio_g == pytest.approx(self.model.r_g, rel=1e-12)
        assert self.sched.ratio_d == pytest.approx(self.model.r_d, rel=1e-12)
        hist = self.model.history + ([self.pending] if self.pending else [])
        assert self.sched.counts == {"D": hist.count("D"), "G": hist.count("G")}


TestSchedulerMachine = SchedulerMachine.TestCase


def test_first_choice_is_g_and_first_observe_zeroes_ratios():
    s = AdaptiveScheduler()
    assert s.next_update() == "G"
    s.observe(loss_g=3.0, loss_d=-2.0)
    assert (s.ratio_g, s.ratio_d) == (0.0, 0.0)
    assert s.next_update() == "G"  # 0 > 0 is false
    s.observe(loss_g=3.0, loss_d=-1.0)  # r_d = 0.5, r_g = 0
    assert s.next_update() == "D"
    assert s.counts == {"D": 1, "G": 2}


def test_next_update_is_idempotent_within_an_iteration():
    s = AdaptiveScheduler()
    assert [s.next_update() for _ in range(3)] == ["G"] * 3
    assert s.counts == {"D": 0, "G": 1}


def test_starvation_guard_caps_runs():
    s = AdaptiveScheduler(lam=1.0, max_consecutive=2)
    seq = []
    for _ in range(6):
        seq.append(s.next_update())
        s.observe(loss_g=1.0, loss_d=1.0)  # constant losses: the rule alone would always say G
    assert seq == ["G", "G", "D", "G", "G", "D"]


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6).filter(lambda v: abs(v) >= 1e-8))
def test_loss_change_ratio_formula(cur, prev):
    assert F.loss_change_ratio(cur, prev) == pytest.approx(abs((cur - prev) / prev), rel=1e-12)
    t = F.loss_change_ratio(torch.tensor(cur, dtype=torch.float64), torch.tensor(prev, dtype=torch.float64))
    assert float(t) == pytest.approx(abs((cur - prev) / prev), rel=1e-12)


@given(st.floats(-1e6, 1e6), st.floats(-1e-9, 1e-9))
def test_loss_change_ratio_guard_near_zero(cur, prev):
    r = F.loss_change_ratio(cur, prev)
    assert r == pytest.approx(abs(cur - prev) / 1e-8, rel=1e-12)


@given(st.floats(0, 1e6), st.floats(0, 1e6), st.floats(1e-3, 1e3))
def test_choose_update_rule(rd, rg, lam):
    tie = math.isclose(rd, lam * rg, rel_tol=1e-6)
    assert F.choose_update(rd, rg, lam) == ("D" if rd > lam * rg and not tie else "G")


@settings(deadline=None)
@given(psi=st.floats(-0.5, 0.5).filter(lambda v: abs(v) > 1e-3), theta=st.floats(-3.0, 3.0).filter(
    lambda v: abs(v) > 1e-3 and abs(1 - v) > 1e-3), step=st.floats(1e-3, 0.2),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16, torch.float16]))
def test_equal_ratios_from_different_float_paths_are_a_tie_that_goes_to_g(psi, theta, step, dtype):
    """Dirac-WGAN: after a D step, r_d = r_g = |dpsi/psi| analytically, though the losses are computed apart.

    The losses reach the scheduler rounded to ``dtype`` (0-d tensors): the tie must survive that rounding.
    (Cancellation inside a low-precision loss computation is beyond any fixed tolerance: raise
    ``tie_rtol`` for that.)
    """
    def losses(psi_):
        p, t = torch.tensor(psi_, dtype=torch.float64), torch.tensor(theta, dtype=torch.float64)
        return (p * t).to(dtype), (p - p * t).to(dtype)  # L_g = psi*theta, L_d = psi - psi*theta

    tiny = torch.finfo(dtype).tiny  # below it (subnormals) a dtype's relative precision no longer holds
    assume(all(abs(float(v)) >= tiny for v in (*losses(psi), *losses(psi + step))))
    sched = AdaptiveScheduler(1.0)
    lg, ld = losses(psi)
    sched.observe(loss_g=lg, loss_d=ld)
    lg, ld = losses(psi + step)  # a D step moved psi only
    sched.observe(loss_g=lg, loss_d=ld)
    assume(min(sched.ratio_d, sched.ratio_g) > 1e-3)  # float32 rounding: the change must be resolved
    assert sched.next_update() == "G"


def test_functional_argument_checks():
    with pytest.raises(ValueError, match="Invalid current"):
        F.loss_change_ratio(float("nan"), 1.0)
    with pytest.raises(ValueError, match="Invalid ratio_d"):
        F.choose_update(float("nan"), 1.0)
    with pytest.raises(ValueError, match="Invalid lam"):
        F.choose_update(1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="Invalid eps"):
        F.loss_change_ratio(1.0, 2.0, eps=0.0)
