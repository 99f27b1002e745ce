"""Mixed precision, the contract every component shares (docs/DISTRIBUTED.md): losses are scaled
for backward, a ``torch.amp.GradScaler`` decides whether an optimizer step happens, and the
component never calls ``scaler.update()`` (you do, once per iteration, as in a plain loop)."""

from __future__ import annotations

from typing import Any, Sequence

import torch


def backward(loss: torch.Tensor, scaler: Any) -> None:
    """``loss.backward()``, scaled by ``scaler`` when there is one."""
    (scaler.scale(loss) if scaler is not None else loss).backward()


def unscaled(grad: torch.Tensor | None, scaler: Any) -> torch.Tensor:
    """A gradient of a scaled loss, divided back by the scale (a new tensor)."""
    assert grad is not None, "the loss does not depend on this tensor"
    return grad if scaler is None else grad / scaler.get_scale()


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether every entry of every tensor is finite: one host sync. Max-norms, so that finite values
    whose 2-norm would overflow their dtype are no false alarm."""
    if not tensors:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(list(tensors), ord=float("inf")))).all())


def grads(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


def scaler_step(scaler: Any, optimizer: torch.optim.Optimizer) -> bool:
    """``scaler.step(optimizer)``; whether the optimizer stepped (the scaler skips non-finite gradients)."""
    taken: list[bool] = []
    handle = optimizer.register_step_post_hook(lambda *_: taken.append(True))
    try:
        scaler.step(optimizer)
    finally:
        handle.remove()
    return bool(taken)


def unscale_and_step(scaler: Any, optimizer: torch.optim.Optimizer) -> bool:
    """A step between two ``scaler.update()`` calls that the scaler does not take itself (it steps an
    optimizer once per update): unscale the gradients here and step if they are finite. If they are not,
    the scaler is shown the overflow (it skips and ``update()`` backs off) and False is returned."""
    g = grads(optimizer)
    inv_scale = 1.0 / float(scaler.get_scale())
    if not all_finite(g):
        scaler.step(optimizer)
        return False
    torch._foreach_mul_(g, inv_scale)
    optimizer.step()
    return True
