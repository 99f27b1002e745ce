"""Two time-scale learning-rate conditions of Heusel et al. (NeurIPS 2017), pure functions."""

from __future__ import annotations

from .._checks import check_int, check_real


def polynomial_rate(step: int, base_lr: float, power: float) -> float:
    """``a(n) = base_lr / (n + 1) ** power``: the classic stochastic-approximation schedule."""
    check_int("step", step, low=0)
    base_lr = check_real("base_lr", base_lr, low=0.0)
    power = check_real("power", power, low=0.0)
    return base_lr / float(step + 1) ** power


def two_timescale_violations(power_g: float | None, power_d: float | None) -> list[str]:
    r"""Which of the conditions (A2) fail for polynomial schedules ``a(n) ~ n^-p_g`` (G), ``b(n) ~ n^-p_d`` (D).

    (A2): :math:`\sum a(n) = \infty,\ \sum a(n)^2 < \infty` (same for b) and
    :math:`a(n) = o(b(n))`. A power of ``None`` means a constant rate (power 0).
    With :math:`n^{-p}`: :math:`\sum = \infty` iff :math:`p \le 1`,
    :math:`\sum^2 < \infty` iff :math:`p > 1/2`, and :math:`a = o(b)` iff
    :math:`p_g > p_d`. Returns human-readable failures, empty when all hold.
    """
    for name, p in (("power_g", power_g), ("power_d", power_d)):
        if p is not None:
            check_real(name, p, low=0.0)
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


class PolynomialDecay:
    r"""The schedule factor :math:`n \mapsto 1/(n+1)^p` as a picklable callable (for ``LambdaLR``).

    ``polynomial_rate(n, base_lr, p) = base_lr * PolynomialDecay(p)(n)``.
    """

    def __init__(self, power: float) -> None:
        self.power = check_real("power", power, low=0.0)

    def __call__(self, step: int) -> float:
        return polynomial_rate(step, 1.0, self.power)

    def __repr__(self) -> str:
        return f"PolynomialDecay(power={self.power})"
