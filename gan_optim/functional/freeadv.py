"""Free adversarial perturbation of D's real inputs (Zhong, Liu & Hsieh 2020), pure functions.

Written as the authors' official code (``tools/adv_tools/pgd_free.py`` and
``train_free.py`` of julightzhong10/fastgan) computes it: the perturbation
``delta`` lives in the epsilon-ball only, D sees ``clamp(x + delta, lo, hi)``,
and the L2 normalisations carry the official ``1e-8`` stabiliser.
"""

from __future__ import annotations

import torch

from .._checks import check_choice, check_real, check_tensor

NORMS = ("linf", "l2")
DELTA_INITS = ("random", "zero")
#: Added to per-sample L2 norms before dividing by them, as the official code does.
L2_STABILISER = 1e-8


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1).view(-1, *([1] * (t.dim() - 1)))


def _check_batched(name: str, t: torch.Tensor) -> torch.Tensor:
    check_tensor(name, t)
    if t.dim() < 2:
        raise ValueError(f"Invalid {name}: expected a batch of shape (N, ...) with at least 2 dimensions, "
                         f"got shape {tuple(t.shape)}")
    return t


def ascent_direction(grad_x: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    r"""Steepest-ascent unit step for the loss: :math:`\operatorname{sign}(g)` for L-inf, :math:`g/(\|g\|+10^{-8})` per sample for L2."""
    _check_batched("grad_x", grad_x)
    check_choice("norm", norm, NORMS)
    if norm == "linf":
        return grad_x.sign()
    return grad_x / (_per_sample_norm(grad_x) + L2_STABILISER)


def project(delta: torch.Tensor, epsilon: float, norm: str = "linf") -> torch.Tensor:
    r"""Project ``delta`` onto the epsilon-ball.

    L-inf: ``clamp(delta, -epsilon, epsilon)``. L2, per sample, as the official
    ``l2_cliper``: :math:`\delta \cdot \min(\|\delta\|+10^{-8}, \epsilon) / (\|\delta\|+10^{-8})`.
    """
    _check_batched("delta", delta)
    epsilon = check_real("epsilon", epsilon, low=0.0)
    check_choice("norm", norm, NORMS)
    # A radius beyond the dtype's range is no constraint (and clamp() cannot take it).
    epsilon = min(epsilon, float(torch.finfo(delta.dtype).max))
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    n = _per_sample_norm(delta) + L2_STABILISER
    return delta / n * n.clamp(max=epsilon)


def perturbation_step(delta: torch.Tensor, grad_x: torch.Tensor, step_size: float, epsilon: float,
                      norm: str = "linf") -> torch.Tensor:
    r"""One free-adversarial update of the real-input perturbation (Zhong et al., Algorithm 1, line 10).

    .. math::
        \delta \leftarrow \Pi_{\|\delta\| \le \epsilon}\big(\delta + \alpha \cdot d(\nabla_x L_{real})\big),

    with :math:`d` = :func:`ascent_direction`. ``grad_x`` is the gradient of D's
    real loss (a loss to minimise) w.r.t. D's input, so the step makes that loss
    worse: the inner ``min log D`` of eq. 4. The data range is not applied here:
    it clamps D's *input* (:func:`perturbed_input`), as in the official code.
    """
    check_real("step_size", step_size, low=0.0)
    if grad_x.shape != getattr(delta, "shape", None):
        raise ValueError(f"Invalid grad_x: shape {tuple(grad_x.shape)} differs from delta's "
                         f"{tuple(getattr(delta, 'shape', ()))}")
    return project(delta + step_size * ascent_direction(grad_x, norm), epsilon, norm)


def perturbed_input(x: torch.Tensor, delta: torch.Tensor,
                    data_range: tuple[float, float] | None = (-1.0, 1.0)) -> torch.Tensor:
    """D's input on the real half: ``clamp(x + delta, *data_range)`` (no clamp when ``data_range`` is None)."""
    check_tensor("x", x)
    check_tensor("delta", delta)
    if data_range is None:
        return x + delta
    low, high = data_range
    return (x + delta).clamp(low, high)


def initial_perturbation(like: torch.Tensor, epsilon: float, norm: str = "linf", init: str = "random",
                         *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The perturbation a new batch shape starts from.

    ``"random"`` is the official start (``pgd_rs``, always on there): N(0, 1)
    projected onto the epsilon-ball (clamped for L-inf, ``l2_cliper`` for L2).
    ``"zero"`` starts at 0 (the paper's Algorithm 1 text).
    """
    _check_batched("like", like)
    check_choice("init", init, DELTA_INITS)
    if init == "zero":
        check_real("epsilon", epsilon, low=0.0)
        check_choice("norm", norm, NORMS)
        return torch.zeros_like(like)
    noise = torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)
    return project(noise, epsilon, norm)
