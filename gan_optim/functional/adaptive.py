"""Loss-change-ratio rule of Ouyang & Agam (pure functions)."""

from __future__ import annotations

import torch

#: Default floor on |previous| in :func:`loss_change_ratio`.
RATIO_EPS = 1e-8


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


def choose_update(ratio_d: float, ratio_g: float, lam: float = 1.0) -> str:
    """``"D"`` iff ``r_d > lam * r_g``, else ``"G"`` (Ouyang & Agam, Algorithm 1, line 4)."""
    return "D" if ratio_d > lam * ratio_g else "G"
