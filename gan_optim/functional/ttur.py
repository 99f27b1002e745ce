"""Two time-scale learning-rate conditions of Heusel et al. (NeurIPS 2017), pure functions."""

from __future__ import annotations


def polynomial_rate(step: int, base_lr: float, power: float) -> float:
    """``a(n) = base_lr / (n + 1) ** power``: the classic stochastic-approximation schedule."""
    return base_lr / float(step + 1) ** power


def two_timescale_violations(power_g: float | None, power_d: float | None) -> list[str]:
    r"""Which of the conditions (A2) fail for polynomial schedules ``a(n) ~ n^-p_g`` (G), ``b(n) ~ n^-p_d`` (D).

    (A2): :math:`\sum a(n) = \infty,\ \sum a(n)^2 < \infty` (same for b) and
    :math:`a(n) = o(b(n))`. A power of ``None`` means a constant rate (power 0).
    With :math:`n^{-p}`: :math:`\sum = \infty` iff :math:`p \le 1`,
    :math:`\sum^2 < \infty` iff :math:`p > 1/2`, and :math:`a = o(b)` iff
    :math:`p_g > p_d`. Returns human-readable failures, empty when all hold.
    """
    out = []
    for name, p in (("G", power_g), ("D", power_d)):
        p = 0.0 if p is None else float(p)
        if p > 1.0:
            out.append(f"{name}: sum of learning rates is finite (power {p} > 1)")
        if p <= 0.5:
            out.append(f"{name}: sum of squared learning rates diverges (power {p} <= 1/2)")
    pg = 0.0 if power_g is None else float(power_g)
    pd = 0.0 if power_d is None else float(power_d)
    if not pg > pd:
        out.append(f"G's rate is not o(D's rate) (power_g {pg} <= power_d {pd})")
    return out
