r"""Adaptive weights of Zadorozhnyy, Cheng & Ye (CVPR 2021), Algorithm 1: pure functions.

Algorithm 1, one discriminator step (losses written to *minimise*; the paper
maximises, which changes no inner product below):

1. compute :math:`\nabla\mathcal{L}_r, \nabla\mathcal{L}_f` over :math:`\theta_D` and the mean
   scores :math:`s_r = \frac1n\sum_i\sigma(D(x_i))`, :math:`s_f = \frac1n\sum_j\sigma(D(y_j))`
   (line 4);
2. choose :math:`(w_r, w_f)` by the table of :func:`aw_weights_from_geometry` (lines 5-19);
3. train along :math:`\nabla\mathcal{L}_D^{aw} = w_r\nabla\mathcal{L}_r + w_f\nabla\mathcal{L}_f`,
   the gradient of eq. (2), :math:`\mathcal{L}_D^{aw} = w_r\mathcal{L}_r + w_f\mathcal{L}_f`.

:func:`aw_weights` does step 2 on two flat vectors; :func:`aw_combine_` does
steps 2 and 3 on per-parameter gradient lists, in place (the one formula
``AWDiscriminatorLoss`` calls). Both compute the weights with the code of
:func:`aw_weights_from_geometry`.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

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


# ------------------------------------------------------------------ Algorithm 1
def aw_weights_from_geometry(norm_real: torch.Tensor, norm_fake: torch.Tensor, cos: torch.Tensor,
                             score_real: torch.Tensor, score_fake: torch.Tensor, *,
                             alpha1: float = 0.5, alpha2: float = 0.75, eps: float = 0.05,
                             delta: float = 0.05, tiny: float = torch.finfo(torch.float64).tiny,
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Algorithm 1's weights from :math:`\|g_r\|, \|g_f\|` and :math:`c = \cos\angle_2(g_r, g_f)`.

    :math:`g_r = \nabla\mathcal{L}_r`, :math:`g_f = \nabla\mathcal{L}_f`. Written with the cosine,
    :math:`\langle g_r, g_f\rangle / (\|g_f\|^2\|g_r\|) = c/\|g_f\|`, so nothing over- or underflows.
    The paper's five cases (Algorithm 1's line numbers; Theorem 2's part)::

        case  line  scores                                angle    w_r - eps      w_f - eps
        1     7     favour real:                          > 90°    1/|g_r|        -c/|g_f|   (Thm 2.2: orthogonal to g_f)
        2     9       s_r < s_f - delta  or  s_r < alpha1  <= 90°   1/|g_r|        0
        3     13    favour fake:                          > 90°    -c/|g_r|       1/|g_f|    (Thm 2.3: orthogonal to g_r)
        4     15      s_r > s_f - delta and s_r > alpha2  <= 90°   0              1/|g_f|
        5     18    otherwise                             any      1/|g_r|        1/|g_f|    (Thm 2.1: the bisector)

    Written branch-free (``torch.where``), so it never synchronises a GPU: with
    the projection coefficient :math:`p = \max(-c, 0)` (:math:`-c` when the
    angle is obtuse, 0 when not), cases 1-2 are :math:`(1/\|g_r\|,\ p/\|g_f\|)`
    and cases 3-4 :math:`(p/\|g_r\|,\ 1/\|g_f\|)`.

    A norm below ``tiny`` (zero included) means the gradient has no direction:
    its :math:`1/\|\cdot\|` term and the projection are taken as 0, so that
    part's weight is ``eps`` alone and every weight stays finite.

    Returns ``(w_real, w_fake, case)`` with ``case`` in 1..5 (see ``CASE_NAMES``).
    """
    w, case = _algorithm1(torch.stack([norm_real, norm_fake]), cos, score_real, score_fake,
                          alpha1=alpha1, alpha2=alpha2, eps=eps, delta=delta, tiny=tiny)
    w_real, w_fake = w.unbind()
    return w_real, w_fake, case


def _algorithm1(norms: torch.Tensor, cos: torch.Tensor, score_real: torch.Tensor, score_fake: torch.Tensor, *,
                alpha1: float, alpha2: float, eps: float, delta: float, tiny: float,
                has_direction: torch.Tensor | None = None, scale: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`aw_weights_from_geometry` on ``norms = [|g_r|, |g_f|]``: returns ``([w_r, w_f], case)``.

    A caller that passes ``has_direction = norms >= tiny`` has zeroed ``cos``
    already where it is False, and passes ``scale = norms.clamp_min(tiny)``.
    """
    # Lines 5 and 11. With alpha1 <= alpha2 the two tests exclude each other.
    threshold = score_fake - delta
    favour_real = score_real < threshold.clamp_min(alpha1)   # s_r < s_f - delta  or  s_r < alpha1
    favour_fake = score_real > threshold.clamp_min(alpha2)   # s_r > s_f - delta and s_r > alpha2
    if has_direction is None or scale is None:
        has_direction, scale = norms >= tiny, norms.clamp_min(tiny)
        cos = cos * has_direction.all()
    # The table, [w_r, w_f] - eps = [1/|g_r|, 1/|g_f|] * factor, with p = max(-c, 0) (0 when acute):
    #   cases 1, 2 (lines 7, 9)    favour real   factor = [1, p]
    #   cases 3, 4 (lines 13, 15)  favour fake   factor = [p, 1]
    #   case 5 (line 18)           otherwise     factor = [1, 1]
    projection = cos.clamp(-1.0, 0.0).neg()
    factor = torch.where(torch.stack([favour_fake, favour_real]), projection, 1.0)
    weights = has_direction / scale * factor + eps   # 1/|g| is 0 for a gradient with no direction
    obtuse = cos < 0
    case = 5 - (3 * favour_real + favour_fake + (obtuse & (favour_real | favour_fake)))  # 2, 4 or 5; 1, 3 if obtuse
    return weights, case


# ------------------------------------------------------------------- geometry
def _norms(grads_real: Sequence[torch.Tensor], grads_fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[|g_r|, |g_f|]`` in float64: per-tensor norms accumulated in float64, then combined."""
    per_tensor = torch.stack(torch._foreach_norm([*grads_real, *grads_fake], 2, dtype=torch.float64))
    return torch.linalg.vector_norm(per_tensor.view(2, len(grads_real)), dim=1)


def _cos_from_sum(total: list[torch.Tensor]) -> torch.Tensor:
    r"""The cosine between two unit vectors from their sum: :math:`\|u_r+u_f\|^2 = 2 + 2\cos`.

    The sum of unit vectors never overflows and its rounding errors are relative
    to a vector of norm <= 2: the cosine is accurate to a few units of the
    gradients' dtype whatever their norms (the squares are summed in float64).
    """
    square = torch.stack(torch._foreach_powsum(total, 2, dtype=torch.float64)).sum()
    return (square * 0.5 - 1.0).clamp(-1.0, 1.0)


def _unit_sum(grads_real: list[torch.Tensor], grads_fake: list[torch.Tensor], norm_real: torch.Tensor,
              norm_fake: torch.Tensor) -> list[torch.Tensor]:
    """``g_r/|g_r| + g_f/|g_f|`` in new tensors (the gradients are not changed)."""
    total = list(torch._foreach_div(grads_real, norm_real))
    torch._foreach_add_(total, torch._foreach_div(grads_fake, norm_fake))
    return total


def gradient_geometry_foreach(grads_real: Sequence[torch.Tensor], grads_fake: Sequence[torch.Tensor],
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r""":math:`\|g_r\|, \|g_f\|` and :math:`\cos\angle(g_r, g_f)` of two gradients given per parameter.

    ``grads_real[i]`` and ``grads_fake[i]`` are the two parts' gradients of
    parameter ``i``; the vectors are their concatenations. The norms are
    accumulated in float64 (a finite gradient never has an infinite norm: float16
    gradients above 65504, float32 gradients of 1e20); the cosine is that of the
    two gradients scaled to unit norm, from the norm of their sum, so no product
    overflows and no gradient is copied to float64. A constant number of
    ``torch._foreach_*`` calls, none per parameter. The results are 0-d float64
    tensors (the cosine is 0 if a gradient is zero); a non-finite result means a
    non-finite entry. The inputs are not changed.
    """
    if len(grads_real) != len(grads_fake) or not grads_real:
        raise ValueError(f"Invalid grads_fake: {len(grads_fake)} tensors for {len(grads_real)} in grads_real "
                         "(expected the same, at least one)")
    for i, (a, b) in enumerate(zip(grads_real, grads_fake)):
        check_tensor(f"grads_real[{i}]", a)
        check_tensor(f"grads_fake[{i}]", b)
        if a.numel() != b.numel():
            raise ValueError(f"Invalid grads_fake[{i}]: {b.numel()} entries for {a.numel()} in grads_real[{i}]")
    grads_real = [a.reshape(-1) for a in grads_real]
    grads_fake = [b.reshape(-1) for b in grads_fake]
    norms = _norms(grads_real, grads_fake)
    nonzero = norms > 0
    scale_r, scale_f = torch.where(nonzero, norms, 1.0).unbind()
    cos = _cos_from_sum(_unit_sum(grads_real, grads_fake, scale_r, scale_f)) * nonzero.all()
    norm_r, norm_f = norms.unbind()
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


# ------------------------------------------------------ the weighted gradient
class AWStep(NamedTuple):
    """What :func:`aw_combine_` computed, as tensors (no GPU sync until you read them)."""

    weights: torch.Tensor   #: ``[w_r, w_f]``, float64
    norms: torch.Tensor     #: ``[|grad L_r|, |grad L_f|]``, float64
    cos: torch.Tensor       #: cosine of the angle between the two gradients, float64, in [-1, 1]
    case: torch.Tensor      #: 1..5, the row of Algorithm 1 that fired


def aw_combine_(grads_real: list[torch.Tensor], grads_fake: list[torch.Tensor], score_real: torch.Tensor,
                score_fake: torch.Tensor, *, alpha1: float = 0.5, alpha2: float = 0.75, eps: float = 0.05,
                delta: float = 0.05, tiny: float | None = None) -> AWStep:
    r"""Algorithm 1 on per-parameter gradients: ``grads_real`` becomes :math:`w_r g_r + w_f g_f`, in place.

    The geometry is :func:`gradient_geometry_foreach`'s and the weights
    :func:`aw_weights_from_geometry`'s, with a constant number of
    ``torch._foreach_*`` calls over the whole parameter list (none per
    parameter) and no float64 copy of a gradient: the norms accumulated in
    float64; each part divided by its norm *in place* (no copy); the cosine from
    the norm of their sum; then

    .. math::
        w_r g_r + w_f g_f = (w_r\|g_r\|)\,\frac{g_r}{\|g_r\|} + (w_f\|g_f\|)\,\frac{g_f}{\|g_f\|}.

    float16's exponent range cannot hold ``g / |g|`` for the small entries of a
    large gradient, so float16 gradients are divided into temporaries instead
    and combined as they are. ``grads_fake`` is left scaled. ``tiny`` (default:
    the smallest normal number of the gradients' dtype) is the norm below which
    a gradient has no direction. Returns an :class:`AWStep`; no host
    synchronisation.
    """
    dtype = grads_real[0].dtype
    if tiny is None:
        tiny = torch.finfo(dtype).tiny
    norms = _norms(grads_real, grads_fake)
    has_direction = norms >= tiny
    scale = norms.clamp_min(tiny)  # g = scale * (g / scale), also for an all-zero gradient
    scale_r, scale_f = scale.unbind()
    if dtype == torch.float16:
        total = _unit_sum(grads_real, grads_fake, scale_r, scale_f)
    else:
        torch._foreach_div_(grads_real, scale_r)
        torch._foreach_div_(grads_fake, scale_f)
        total = list(torch._foreach_add(grads_real, grads_fake))
    cos = _cos_from_sum(total) * has_direction.all()
    del total
    weights, case = _algorithm1(norms, cos, score_real, score_fake, alpha1=alpha1, alpha2=alpha2, eps=eps,
                                delta=delta, tiny=tiny, has_direction=has_direction, scale=scale)
    multiplier_r, multiplier_f = (weights if dtype == torch.float16 else weights * scale).to(dtype).unbind()
    torch._foreach_mul_(grads_real, multiplier_r)
    torch._foreach_mul_(grads_fake, multiplier_f)
    torch._foreach_add_(grads_real, grads_fake)
    return AWStep(weights, norms, cos, case)


# --------------------------------------------------------- on two flat vectors
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

    (the table with Algorithm 1's line numbers: :func:`aw_weights_from_geometry`,
    which this calls after :func:`gradient_geometry`).

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
