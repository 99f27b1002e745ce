"""Adaptive weights of Zadorozhnyy, Cheng & Ye, Algorithm 1 (pure functions)."""

from __future__ import annotations

from typing import Sequence

import torch

from .._checks import check_real, check_tensor

#: Case numbers, in the order Algorithm 1 tests them.
CASE_NAMES = {
    1: "favour real, obtuse: orthogonal to grad L_f",
    2: "favour real, acute: along grad L_r",
    3: "favour fake, obtuse: orthogonal to grad L_r",
    4: "favour fake, acute: along grad L_f",
    5: "balanced: angle bisector",
}


def _check_hparams(alpha1: float, alpha2: float, eps: float, delta: float) -> None:
    a1 = check_real("alpha1", alpha1, low=0.0, high=1.0)
    a2 = check_real("alpha2", alpha2, low=0.0, high=1.0)
    if a1 > a2:
        raise ValueError(f"Invalid alpha2: {a2} (Algorithm 1 orders the thresholds: alpha1 <= alpha2, "
                         f"and alpha1 is {a1})")
    check_real("eps", eps, low=0.0)
    check_real("delta", delta, low=0.0)


def aw_weights_from_geometry(norm_real: torch.Tensor, norm_fake: torch.Tensor, cos: torch.Tensor,
                             score_real: torch.Tensor, score_fake: torch.Tensor, *,
                             alpha1: float = 0.5, alpha2: float = 0.75, eps: float = 0.05,
                             delta: float = 0.05, tiny: float = torch.finfo(torch.float64).tiny,
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 1 from the two gradient norms and the cosine between them.

    Branch-free (``torch.where``), so it never synchronises a GPU. Written with
    ``cos`` instead of the inner product so that nothing over- or underflows:
    ``<g_r, g_f> / (|g_f|^2 |g_r|) = cos / |g_f|``.

    A norm below ``tiny`` (zero included) means the gradient has no direction:
    its ``1/|g|`` term and its projection term are taken as 0, so that part's
    weight is ``eps`` alone and every weight stays finite.

    Returns ``(w_real, w_fake, case)`` with ``case`` in 1..5 (see ``CASE_NAMES``).
    """
    has_r = norm_real >= tiny
    has_f = norm_fake >= tiny
    one = torch.ones_like(norm_real)
    inv_r = torch.where(has_r, one / torch.where(has_r, norm_real, one), torch.zeros_like(norm_real))
    inv_f = torch.where(has_f, one / torch.where(has_f, norm_fake, one), torch.zeros_like(norm_fake))
    cos = torch.where(has_r & has_f, cos.clamp(-1.0, 1.0), torch.zeros_like(cos))
    obtuse = cos < 0

    favour_real = (score_real < score_fake - delta) | (score_real < alpha1)
    favour_fake = (~favour_real) & (score_real > score_fake - delta) & (score_real > alpha2)

    zero = torch.zeros_like(inv_r)
    # Case 1: w_r = 1/|g_r|, w_f = -<g_r,g_f>/(|g_f|^2 |g_r|) = -cos/|g_f|.
    # Case 3: w_r = -<g_r,g_f>/(|g_r|^2 |g_f|) = -cos/|g_r|, w_f = 1/|g_f|.
    w_r = torch.where(favour_real, inv_r,
                      torch.where(favour_fake, torch.where(obtuse, -cos * inv_r, zero), inv_r))
    w_f = torch.where(favour_real, torch.where(obtuse, -cos * inv_f, zero), inv_f)
    case = torch.where(favour_real, torch.where(obtuse, 1, 2),
                       torch.where(favour_fake, torch.where(obtuse, 3, 4), 5))
    return w_r + eps, w_f + eps, case


def aw_weights(grad_real: torch.Tensor, grad_fake: torch.Tensor, score_real, score_fake, *,
               alpha1: float = 0.5, alpha2: float = 0.75, eps: float = 0.05, delta: float = 0.05,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Weights ``(w_real, w_fake)`` of the aw-loss, Algorithm 1 of Zadorozhnyy et al. (CVPR 2021).

    With :math:`g_r, g_f` the gradients of the real and fake loss parts,
    :math:`s_r, s_f` the mean sigmoid scores and :math:`c = \cos\angle(g_r, g_f)`:

    .. math::
        (w_r, w_f) = \varepsilon + \begin{cases}
          (1/\|g_r\|,\ -\langle g_r, g_f\rangle / (\|g_f\|^2\|g_r\|)) & s_r < s_f-\delta \lor s_r<\alpha_1,\ c<0 \\
          (1/\|g_r\|,\ 0) & s_r < s_f-\delta \lor s_r<\alpha_1,\ c\ge 0 \\
          (-\langle g_r, g_f\rangle / (\|g_r\|^2\|g_f\|),\ 1/\|g_f\|) & s_r > s_f-\delta \land s_r>\alpha_2,\ c<0 \\
          (0,\ 1/\|g_f\|) & s_r > s_f-\delta \land s_r>\alpha_2,\ c\ge 0 \\
          (1/\|g_r\|,\ 1/\|g_f\|) & \text{otherwise}
        \end{cases}

    The formulas use only inner products, so they are the same whether the
    gradients are taken of losses to minimise (this library: hinge
    ``relu(1-D(x))`` / ``relu(1+D(G(z)))``, bce ``softplus(-D(x))`` /
    ``softplus(D(G(z)))``, wgan ``-D(x)`` / ``D(G(z))``) or of the paper's
    objectives to maximise.

    ``eps`` is not scale-free: it is added to weights of order ``1/|g|``. With
    gradient norms near 1 or above (small discriminators, digits-sized data),
    ``eps = 0.05`` tilts the combined direction noticeably: ``eps * (g_r + g_f)``
    is added to it, so when the angle is obtuse and one gradient is much
    larger than the other, the direction can end past 90 degrees from the
    smaller one (``docs/RESULTS.md``, claim 3); with the large networks of the
    paper, ``1/|g|`` dominates. Lower ``eps`` to stay closer to
    Theorem 2's geometry.

    Zero-norm gradients: a gradient whose norm is 0 (or below the smallest
    normal number of its dtype) has no direction; its ``1/|g|`` and projection
    terms are 0, so its weight is ``eps``. The weights are finite for every
    finite input.

    Args:
        grad_real, grad_fake: 1-D tensors of equal length, the flattened
            gradients of the real and fake parts over the same parameters.
        score_real, score_fake: mean sigmoid of D's raw outputs on each half
            (floats or 0-d tensors, in [0, 1]).
    Returns:
        Two 0-d tensors in the gradients' dtype.
    """
    check_tensor("grad_real", grad_real)
    check_tensor("grad_fake", grad_fake)
    if grad_real.dim() != 1 or grad_fake.dim() != 1:
        raise ValueError(f"Invalid grad_real/grad_fake: expected 1-D tensors, got shapes "
                         f"{tuple(grad_real.shape)} and {tuple(grad_fake.shape)}")
    if grad_real.shape != grad_fake.shape:
        raise ValueError(f"Invalid grad_fake: shape {tuple(grad_fake.shape)} differs from "
                         f"grad_real's {tuple(grad_real.shape)}")
    s_r = check_real("score_real", score_real, low=0.0, high=1.0)
    s_f = check_real("score_fake", score_fake, low=0.0, high=1.0)
    _check_hparams(alpha1, alpha2, eps, delta)
    for name, g in (("grad_real", grad_real), ("grad_fake", grad_fake)):
        if not bool(torch.isfinite(g).all()):
            raise FloatingPointError(f"non-finite {name}")

    out_dtype = torch.promote_types(grad_real.dtype, grad_fake.dtype)
    norm_r, norm_f, cos = gradient_geometry(grad_real, grad_fake)
    w_r, w_f, _ = aw_weights_from_geometry(
        norm_r, norm_f, cos, torch.tensor(s_r, dtype=torch.float64), torch.tensor(s_f, dtype=torch.float64),
        alpha1=alpha1, alpha2=alpha2, eps=eps, delta=delta, tiny=torch.finfo(out_dtype).tiny)
    return w_r.to(out_dtype), w_f.to(out_dtype)


def gradient_geometry_foreach(grads_real: Sequence[torch.Tensor], grads_fake: Sequence[torch.Tensor],
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r""":math:`\|g_r\|, \|g_f\|` and :math:`\cos\angle(g_r, g_f)` of two gradients given per parameter.

    ``grads_real[i]`` and ``grads_fake[i]`` are the two parts' gradients of
    parameter ``i``; the vectors are their concatenations. Three reductions,
    accumulated in float64 so that a finite gradient never has an infinite norm
    (float16 gradients above 65504, float32 gradients of 1e20): the results are
    0-d float64 tensors, and a non-finite result means a non-finite entry.
    """
    if len(grads_real) != len(grads_fake) or not grads_real:
        raise ValueError(f"Invalid grads_fake: {len(grads_fake)} tensors for {len(grads_real)} in grads_real "
                         "(expected the same, at least one)")
    for i, (a, b) in enumerate(zip(grads_real, grads_fake)):
        check_tensor(f"grads_real[{i}]", a)
        check_tensor(f"grads_fake[{i}]", b)
        if a.numel() != b.numel():
            raise ValueError(f"Invalid grads_fake[{i}]: {b.numel()} entries for {a.numel()} in grads_real[{i}]")
    f64 = torch.float64
    norm_r = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads_real), 2, dtype=f64)))
    norm_f = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads_fake), 2, dtype=f64)))
    dot = torch.stack([torch.dot(a.reshape(-1).to(f64), b.reshape(-1).to(f64))
                       for a, b in zip(grads_real, grads_fake)]).sum()
    denom = norm_r * norm_f
    cos = torch.where(denom > 0, dot / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(denom))
    return norm_r, norm_f, cos


def gradient_geometry(grad_real: torch.Tensor, grad_fake: torch.Tensor,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Norms of two 1-D vectors and the cosine between them, safe from overflow in every dtype.

    Each vector is divided by its largest magnitude first (so float64 vectors of
    1e300 work too), then :func:`gradient_geometry_foreach` does the reductions.
    """
    check_tensor("grad_real", grad_real)
    check_tensor("grad_fake", grad_fake)
    if grad_real.dim() != 1 or grad_real.shape != grad_fake.shape:
        raise ValueError(f"Invalid grad_fake: expected two 1-D tensors of the same length, got shapes "
                         f"{tuple(grad_real.shape)} and {tuple(grad_fake.shape)}")
    scale_r = grad_real.abs().max().double() if grad_real.numel() else grad_real.new_zeros((), dtype=torch.float64)
    scale_f = grad_fake.abs().max().double() if grad_fake.numel() else grad_fake.new_zeros((), dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64, device=grad_real.device)
    unit_r = grad_real.double() / torch.where(scale_r > 0, scale_r, one)
    unit_f = grad_fake.double() / torch.where(scale_f > 0, scale_f, one)
    n_r, n_f, cos = gradient_geometry_foreach([unit_r], [unit_f])
    return scale_r * n_r, scale_f * n_f, cos


def angle_degrees(cos: torch.Tensor) -> torch.Tensor:
    """Angle in degrees from a cosine (clamped to [-1, 1])."""
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
