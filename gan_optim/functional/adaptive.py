"""Loss-change-ratio rule of Ouyang & Agam (pure functions)."""

from __future__ import annotations

import torch

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

    Floats give a float; tensors give a tensor.
    """
    if isinstance(current, torch.Tensor) or isinstance(previous, torch.Tensor):
        current = torch.as_tensor(current)
        previous = torch.as_tensor(previous, dtype=current.dtype, device=current.device)
        return (current - previous).abs() / previous.abs().clamp_min(eps)
    return abs(float(current) - float(previous)) / max(abs(float(previous)), eps)


def choose_update(ratio_d: float, ratio_g: float, lam: float = 1.0, *, tie_rtol: float = TIE_RTOL) -> str:
    r"""``"D"`` iff :math:`r_d > \lambda r_g`, else ``"G"`` (Ouyang & Agam, Algorithm 1, line 4).

    The comparison is made in float64, and ratios within a relative
    ``tie_rtol`` of each other are a tie, which goes to G ("D iff
    :math:`r_d > \lambda r_g`"):

    .. math::
        \text{D} \iff r_d - \lambda r_g > \text{tie\_rtol}\cdot\max(r_d, \lambda r_g).

    Why: ratios that are equal analytically often differ in their last bits
    because the two losses are computed by different float operations. On the
    Dirac-WGAN, for instance, :math:`r_d = r_g = |\Delta\psi/\psi|` after every
    D step; without the tolerance the choice would be decided by rounding.
    ``tie_rtol = 0`` compares exactly.
    """
    excess = float(ratio_d) - float(lam) * float(ratio_g)
    return "D" if excess > tie_rtol * max(abs(float(ratio_d)), abs(float(lam) * float(ratio_g))) else "G"
