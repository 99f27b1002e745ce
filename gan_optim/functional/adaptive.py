"""Loss-change-ratio rule of Ouyang & Agam (pure functions)."""

from __future__ import annotations

from typing import Literal

import torch

from .._checks import check_real, check_tensor

#: Default floor on |previous| in :func:`loss_change_ratio`.
RATIO_EPS = 1e-8

#: Default relative tolerance under which ``r_d`` and ``lam * r_g`` are a tie (see :func:`choose_update`).
TIE_RTOL = 1e-6


def loss_change_ratio(current, previous, *, eps: float = RATIO_EPS):
    r"""Relative loss change :math:`r = |(L^c - L^p) / L^p|` (Ouyang & Agam, eq. 4).

    Guard: WGAN losses cross zero, so the denominator is
    :math:`\max(|L^p|, \epsilon)` (``eps = 1e-8`` by default). For
    :math:`|L^p| \ge \epsilon` this is exactly eq. 4; near zero the ratio is
    large but finite, which reads correctly as "this loss changed a lot".

    Floats give a float; tensors give a tensor (their values are not checked:
    that would synchronise a GPU).
    """
    eps = check_real("eps", eps, low=0.0, low_open=True)
    if isinstance(current, torch.Tensor) or isinstance(previous, torch.Tensor):
        for name, value in (("current", current), ("previous", previous)):
            if isinstance(value, torch.Tensor):
                check_tensor(name, value)
            else:
                check_real(name, value)
        shapes = [tuple(v.shape) for v in (current, previous) if isinstance(v, torch.Tensor)]
        try:
            torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ValueError(f"Invalid previous: shapes {shapes} do not broadcast") from None
        current = torch.as_tensor(current)
        previous = torch.as_tensor(previous, dtype=current.dtype, device=current.device)
        return (current - previous).abs() / previous.abs().clamp_min(eps)
    current, previous = check_real("current", current), check_real("previous", previous)
    return abs(current - previous) / max(abs(previous), eps)


def choose_update(ratio_d: float, ratio_g: float, lam: float = 1.0, *, tie_rtol: float = TIE_RTOL,
                  loss_eps: float = 0.0) -> Literal["D", "G"]:
    r"""``"D"`` iff :math:`r_d > \lambda r_g`, else ``"G"`` (Ouyang & Agam, Algorithm 1, line 4).

    The comparison is made in float64, and ratios that cannot be told apart
    are a tie, which goes to G ("D iff :math:`r_d > \lambda r_g`"):

    .. math::
        \text{D} \iff r_d - \lambda r_g > \text{tie\_rtol}\cdot\max(r_d, \lambda r_g)
            + 2\,\text{loss\_eps}\,\big((2 + r_d) + \lambda (2 + r_g)\big).

    Why: ratios that are equal analytically differ in their last bits when the
    two losses are computed by different float operations. On the
    Dirac-WGAN, for instance, :math:`r_d = r_g = |\Delta\psi/\psi|` after every
    D step; without a tolerance the choice would be decided by rounding. A
    ratio :math:`|L^c - L^p|/|L^p|` computed from losses rounded to relative
    precision ``loss_eps`` (float32: 1.2e-7) is off by at most about
    :math:`2\,\text{loss\_eps}\,(2 + r)`: the second term (for losses in their dtype's
    normal range; subnormal losses are coarser). ``tie_rtol = 0`` and
    ``loss_eps = 0`` compare exactly.
    """
    ratio_d = check_real("ratio_d", ratio_d, low=0.0)
    ratio_g = check_real("ratio_g", ratio_g, low=0.0)
    lam = check_real("lam", lam, low=0.0, low_open=True)
    tie_rtol = check_real("tie_rtol", tie_rtol, low=0.0, high=1.0, high_open=True)
    loss_eps = check_real("loss_eps", loss_eps, low=0.0, high=1.0, high_open=True)
    scaled_g = lam * ratio_g
    tolerance = tie_rtol * max(ratio_d, scaled_g) + 2.0 * loss_eps * ((2.0 + ratio_d) + lam * (2.0 + ratio_g))
    return "D" if ratio_d - scaled_g > tolerance else "G"
