"""Free adversarial perturbation of D's real inputs (Zhong, Liu & Hsieh 2020), pure functions."""

from __future__ import annotations

import torch

NORMS = ("linf", "l2")


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1).view(-1, *([1] * (t.dim() - 1)))


def ascent_direction(grad_x: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    """Steepest-ascent unit step for the loss: sign(g) for L-inf, g/|g| per sample for L2."""
    if norm == "linf":
        return grad_x.sign()
    return grad_x / _per_sample_norm(grad_x).clamp_min(torch.finfo(grad_x.dtype).tiny)


def project(delta: torch.Tensor, epsilon: float, norm: str = "linf", *, x: torch.Tensor | None = None,
            data_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Keep ``x + delta`` inside ``data_range``, then project ``delta`` onto the epsilon-ball.

    The ball is applied last, so ``|delta| <= epsilon`` always holds (for L-inf
    both are boxes and the result lies in their intersection whenever ``x``
    itself is inside the data range).
    """
    if data_range is not None and x is not None:
        low, high = data_range
        delta = (x + delta).clamp(low, high) - x
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    scale = (epsilon / _per_sample_norm(delta).clamp_min(torch.finfo(delta.dtype).tiny)).clamp(max=1.0)
    return delta * scale


def perturbation_step(delta: torch.Tensor, grad_x: torch.Tensor, step_size: float, epsilon: float,
                      norm: str = "linf", *, x: torch.Tensor | None = None,
                      data_range: tuple[float, float] | None = None) -> torch.Tensor:
    r"""One free-adversarial update of the real-input perturbation.

    .. math::
        \delta \leftarrow \Pi_{\|\delta\| \le \epsilon,\ x + \delta \in [lo, hi]}
            \big(\delta + \alpha \cdot \operatorname{sign}(\nabla_x L_{real})\big)

    ``grad_x`` is the gradient of D's real loss (a loss to minimise) w.r.t. the
    perturbed input, so the step makes that loss worse: the inner ``min log D``
    of Zhong et al. eq. 4 (their Algorithm 1, line 10, with the step
    ``c_max`` there).
    """
    return project(delta + step_size * ascent_direction(grad_x, norm), epsilon, norm, x=x,
                   data_range=data_range)
