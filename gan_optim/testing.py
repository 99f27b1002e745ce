"""Property-testing kit for GAN weight formulas and decision rules (needs ``hypothesis``).

Strategies that generate the inputs these formulas meet in training (gradient
pairs with a controlled angle and norms down to subnormal, exact zeros; mean
scores; loss sequences; per-sample D outputs), and the invariants of each
formula as reusable checks. A variant you write is property-tested in a few
lines::

    from hypothesis import given, settings
    from gan_optim import testing

    @settings(deadline=None)
    @given(testing.gradient_pairs(angle=(91, 179)))
    def test_my_variant_keeps_case1_orthogonality(pair):
        testing.check_case_direction(my_aw_weights, *pair, case=1)

Every check raises ``AssertionError`` with the numbers that broke it. The
library's own tests use this kit; docs/TESTING.md shows more.
``import gan_optim`` does not import this module.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - exercised only without hypothesis
    raise ImportError("gan_optim.testing needs hypothesis: pip install 'hypothesis>=6.80'") from err

from .functional.adaptive import RATIO_EPS, TIE_RTOL

__all__ = [
    "Algorithm1Scheduler",
    "check_aw_finite",
    "check_aw_scale_behaviour",
    "check_case_direction",
    "check_scheduler_follows_algorithm1",
    "check_wegan_monotone",
    "check_wegan_normalised",
    "check_wegan_theorem1",
    "d_outputs",
    "gradient_pairs",
    "loss_sequences",
    "scores",
]

WeightFn = Callable[..., "tuple[torch.Tensor, torch.Tensor]"]

#: Mean scores that select each case of Algorithm 1 with the paper's thresholds
#: (alpha1 = 0.5, alpha2 = 0.75, delta = 0.05), for obtuse (1, 3) or any (5) angles.
CASE_SCORES = {1: (0.3, 0.6), 2: (0.3, 0.6), 3: (0.9, 0.2), 4: (0.9, 0.2), 5: (0.6, 0.4)}


# ---------------------------------------------------------------- strategies
def gradient_pairs(*, dim: tuple[int, int] = (2, 8), angle: tuple[float, float] = (0.0, 180.0),
                   norm_exponent: tuple[int, int] = (-1070, 300), zeros: bool = True,
                   dtype: torch.dtype = torch.float64) -> st.SearchStrategy[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs ``(grad_real, grad_fake)`` of 1-D tensors with a controlled angle and norms.

    The angle (degrees) is drawn from ``angle``; each norm is ``m * 2**e`` with
    ``e`` drawn from ``norm_exponent`` (the default reaches float64 subnormals;
    it is clipped to what ``dtype`` represents). With ``zeros``, one vector in
    about ten is exactly zero.
    """
    info = torch.finfo(dtype)
    low_e = max(norm_exponent[0], math.frexp(info.smallest_normal)[1] - info.bits)
    high_e = min(norm_exponent[1], math.frexp(info.max)[1] - 4)
    if low_e > high_e:
        raise ValueError(f"Invalid norm_exponent: {norm_exponent} is outside what {dtype} represents")

    @st.composite
    def build(draw: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = draw(st.integers(dim[0], dim[1]))
        raw = draw(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=2 * n, max_size=2 * n))
        u = torch.tensor(raw[:n], dtype=torch.float64)
        w = torch.tensor(raw[n:], dtype=torch.float64)
        if float(u.norm()) < 1e-3:
            u = torch.zeros(n, dtype=torch.float64)
            u[0] = 1.0
        u = u / u.norm()
        w = w - (w @ u) * u  # the part of w orthogonal to u
        if float(w.norm()) < 1e-3:
            w = torch.zeros(n, dtype=torch.float64)
            w[1 if abs(float(u[0])) > 0.5 else 0] = 1.0
            w = w - (w @ u) * u
        w = w / w.norm()
        theta = math.radians(draw(st.floats(angle[0], angle[1])))
        v = math.cos(theta) * u + math.sin(theta) * w

        def scaled(x: torch.Tensor) -> torch.Tensor:
            # Hypothesis favours the ends of a range; a value inside it comes up about one time in ten.
            if zeros and draw(st.integers(0, 9)) == 5:
                return torch.zeros(n, dtype=dtype)
            mantissa = draw(st.floats(0.5, 1.0))
            exponent = draw(st.integers(low_e, high_e))
            return (x * math.ldexp(mantissa, exponent)).to(dtype)

        return scaled(u), scaled(v)

    return build()


def scores() -> st.SearchStrategy[float]:
    """Mean sigmoid scores: floats in [0, 1], the end points included."""
    return st.floats(0.0, 1.0)


def loss_sequences(*, min_size: int = 1, max_size: int = 50, magnitude: float = 1e6,
                   ) -> st.SearchStrategy[list[tuple[float, float]]]:
    """Sequences of ``(loss_g, loss_d)`` pairs: finite, crossing zero (WGAN losses do), with exact repeats."""
    value = st.one_of(st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False),
                      st.sampled_from([0.0, 1.0, -1.0]))
    return st.lists(st.tuples(value, value), min_size=min_size, max_size=max_size)


def d_outputs(*, min_size: int = 1, max_size: int = 64, magnitude: float = 40.0,
              dtype: torch.dtype = torch.float64) -> st.SearchStrategy[torch.Tensor]:
    """Raw per-sample D outputs (logits), shape (N,), saturated values included."""
    return st.lists(st.floats(-magnitude, magnitude, allow_nan=False), min_size=min_size, max_size=max_size).map(
        lambda v: torch.tensor(v, dtype=dtype))


# ------------------------------------------------------------------ AW checks
def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float64)


def check_aw_finite(weights_fn: WeightFn, grad_real: torch.Tensor, grad_fake: torch.Tensor, score_real: float,
                    score_fake: float, **hparams: Any) -> None:
    """Finite weights for finite input, and each at least ``eps`` (every branch adds eps to a term >= 0)."""
    w_r, w_f = weights_fn(grad_real, grad_fake, score_real, score_fake, **hparams)
    eps = hparams.get("eps", 0.05)
    for name, w in (("w_real", w_r), ("w_fake", w_f)):
        value = float(w)
        assert math.isfinite(value), f"{name} = {value} for finite gradients"
        assert value >= eps * (1 - 1e-6), f"{name} = {value} < eps = {eps}"


def _combined(weights_fn: WeightFn, g_r: torch.Tensor, g_f: torch.Tensor, s_r: float, s_f: float,
              **hparams: Any) -> torch.Tensor:
    w_r, w_f = weights_fn(g_r, g_f, s_r, s_f, **{**hparams, "eps": 0.0})
    return float(w_r) * _f64(g_r) + float(w_f) * _f64(g_f)


def check_case_direction(weights_fn: WeightFn, grad_real: torch.Tensor, grad_fake: torch.Tensor, *, case: int,
                         scores: tuple[float, float] | None = None, rtol: float = 1e-9, **hparams: Any) -> None:
    """Theorem 2's geometry of the combined direction ``d = w_r g_r + w_f g_f`` (with ``eps = 0``).

    - case 1 (favour real, obtuse): ``d`` is orthogonal to ``g_f`` and acute with ``g_r``;
    - case 3 (favour fake, obtuse): ``d`` is orthogonal to ``g_r`` and acute with ``g_f``;
    - case 5 (balanced): ``d`` bisects the angle between ``g_r`` and ``g_f``.

    Degenerate pairs (a zero vector, an angle that is not obtuse for cases 1 and
    3, exactly opposite vectors for case 5) pass trivially: filter them with
    ``hypothesis.assume`` to keep the test meaningful.
    """
    if case not in (1, 3, 5):
        raise ValueError(f"Invalid case: {case} (1, 3 or 5)")
    g_r, g_f = _f64(grad_real), _f64(grad_fake)
    n_r, n_f = float(g_r.norm()), float(g_f.norm())
    if n_r == 0 or n_f == 0 or not (math.isfinite(n_r) and math.isfinite(n_f)):
        return
    u_r, u_f = g_r / n_r, g_f / n_f
    cos = float(u_r @ u_f)
    s_r, s_f = scores if scores is not None else CASE_SCORES[case]
    d = _combined(weights_fn, grad_real, grad_fake, s_r, s_f, **hparams)
    n_d = float(d.norm())
    if case in (1, 3):
        if cos >= 0 or n_d == 0:
            return
        along, across = (u_r, u_f) if case == 1 else (u_f, u_r)
        unit = d / n_d
        assert abs(float(unit @ across)) <= rtol * 10 + 1e-12, \
            f"case {case}: cos(d, {'g_f' if case == 1 else 'g_r'}) = {float(unit @ across)}, expected 0"
        assert float(unit @ along) > 0, f"case {case}: d is not acute with the favoured gradient"
    else:
        if cos <= -1 + 1e-9 or n_d == 0:
            return
        unit = d / n_d
        a_r, a_f = float(unit @ u_r), float(unit @ u_f)
        assert abs(a_r - a_f) <= 1e-7, f"case 5: cos(d, g_r) = {a_r} but cos(d, g_f) = {a_f}"


def check_aw_scale_behaviour(weights_fn: WeightFn, grad_real: torch.Tensor, grad_fake: torch.Tensor,
                             score_real: float, score_fake: float, *, factor: float = 8.0, **hparams: Any) -> None:
    """With ``eps = 0`` the weights are homogeneous of degree -1: scaling both gradients by c divides them by c.

    So the combined direction does not depend on the gradients' scale (a GradScaler
    or a learning-rate change leaves it alone).
    """
    if factor <= 0:
        raise ValueError(f"Invalid factor: {factor} (must be > 0)")
    base = weights_fn(grad_real, grad_fake, score_real, score_fake, **{**hparams, "eps": 0.0})
    scaled = weights_fn(grad_real * factor, grad_fake * factor, score_real, score_fake, **{**hparams, "eps": 0.0})
    for name, w_a, w_b in (("w_real", base[0], scaled[0]), ("w_fake", base[1], scaled[1])):
        a, b = float(w_a), float(w_b)
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        assert math.isclose(b * factor, a, rel_tol=1e-6, abs_tol=1e-300), \
            f"{name}: {a} at scale 1 but {b} x {factor} = {b * factor} at scale {factor}"


# --------------------------------------------------------------- WeGAN checks
def check_wegan_normalised(weights_fn: Callable[[torch.Tensor, float], torch.Tensor], fake_prob: torch.Tensor,
                           eta: float) -> None:
    """Weights are positive-or-zero, finite, and sum to 1."""
    w = _f64(weights_fn(fake_prob, eta))
    assert bool(torch.isfinite(w).all()), f"non-finite weights {w.tolist()}"
    assert bool((w >= 0).all()), f"negative weights {w.tolist()}"
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-9), f"weights sum to {float(w.sum())}"


def check_wegan_monotone(weights_fn: Callable[[torch.Tensor, float], torch.Tensor], fake_prob: torch.Tensor,
                         eta: float) -> None:
    """For ``eta < 1``, a sample D finds more real never gets a smaller weight (``eta = 1``: all equal)."""
    w = _f64(weights_fn(fake_prob, eta))
    p = _f64(fake_prob)
    order = torch.argsort(p)
    w_sorted, p_sorted = w[order], p[order]
    for i in range(len(p) - 1):
        if p_sorted[i + 1] > p_sorted[i]:
            assert w_sorted[i + 1] >= w_sorted[i] * (1 - 1e-12), \
                f"p {float(p_sorted[i])} -> {float(p_sorted[i + 1])} but w {float(w_sorted[i])} -> " \
                f"{float(w_sorted[i + 1])}"


def check_wegan_theorem1(weights_fn: Callable[[torch.Tensor, float], torch.Tensor], d_fake: torch.Tensor,
                         eta: float) -> None:
    r"""Pantazis et al., Theorem 1, per batch: the weighted saturating loss is not above the plain mean.

    With :math:`\ell_i = \log(1 - \sigma(d_i))`, :math:`\sum_i w_i \ell_i \le \frac1N \sum_i \ell_i`
    for :math:`\eta \le 1`: the weights move mass to the samples whose loss is lower.
    """
    d = _f64(d_fake)
    w = _f64(weights_fn(torch.sigmoid(d), eta))
    ell = -torch.nn.functional.softplus(d)  # log(1 - sigmoid(d))
    weighted, mean = float((w * ell).sum()), float(ell.mean())
    assert weighted <= mean + 1e-9 * max(1.0, abs(mean)), f"weighted loss {weighted} > mean loss {mean}"


# ----------------------------------------------------------- scheduler checks
class Algorithm1Scheduler:
    """Ouyang & Agam's Algorithm 1 as a reference state machine, in plain Python.

    Ratios start at 1; the first observation copies the losses into the
    previous ones; D is chosen iff ``r_d > lam * r_g`` beyond the rounding
    tolerance (a tie goes to G): ``tie_rtol`` relative, plus what losses of
    precision ``loss_eps`` can change a ratio by; the denominator is floored at ``eps``.
    """

    def __init__(self, lam: float = 1.0, *, tie_rtol: float = TIE_RTOL, eps: float = RATIO_EPS,
                 loss_eps: float = 2.0 ** -52) -> None:
        self.lam, self.tie_rtol, self.eps, self.loss_eps = lam, tie_rtol, eps, loss_eps
        self.r_g = self.r_d = 1.0
        self.prev: tuple[float, float] | None = None
        self.observed = 0

    def choose(self) -> str:
        a, b = self.r_d, self.lam * self.r_g
        slack = 2 * self.loss_eps * ((2 + self.r_d) + self.lam * (2 + self.r_g)) if self.observed else 0.0
        return "D" if a - b > self.tie_rtol * max(a, b) + slack else "G"

    def observe(self, loss_g: float, loss_d: float) -> None:
        prev_g, prev_d = self.prev if self.prev is not None else (loss_g, loss_d)
        self.r_g = abs(loss_g - prev_g) / max(abs(prev_g), self.eps)
        self.r_d = abs(loss_d - prev_d) / max(abs(prev_d), self.eps)
        self.prev = (loss_g, loss_d)
        self.observed += 1


def check_scheduler_follows_algorithm1(make_scheduler: Callable[[], Any], losses: Sequence[tuple[float, float]],
                                       *, lam: float = 1.0, tie_rtol: float = TIE_RTOL) -> list[str]:
    """Drive ``make_scheduler()`` (an object with ``next_update()`` and ``observe(loss_g=, loss_d=)``) and the
    reference side by side over ``losses``; assert every choice agrees. Returns the choices."""
    sched, ref = make_scheduler(), Algorithm1Scheduler(lam, tie_rtol=tie_rtol)
    choices = []
    for i, (loss_g, loss_d) in enumerate(losses):
        got, want = sched.next_update(), ref.choose()
        assert got == want, f"iteration {i}: scheduler chose {got}, Algorithm 1 chooses {want} " \
                            f"(r_d = {ref.r_d}, r_g = {ref.r_g}, lam = {lam})"
        choices.append(got)
        sched.observe(loss_g=loss_g, loss_d=loss_d)
        ref.observe(loss_g, loss_d)
    return choices
