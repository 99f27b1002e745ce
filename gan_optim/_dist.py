"""torch.distributed helpers: every data-dependent decision uses all-reduced values.

Outside an initialised process group (or with one process) nothing here issues
a collective.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while isinstance(module, (DistributedDataParallel, DataParallel)):
        module = module.module
    return module


def mean_scalars(*values: torch.Tensor) -> list[torch.Tensor]:
    """All-reduce-average 0-d tensors in one collective."""
    packed = torch.stack([v.detach().to(torch.float64) for v in values])
    if active():
        dist.all_reduce(packed)
        packed /= dist.get_world_size()
    return [packed[i].to(v.dtype) for i, v in enumerate(values)]


def mean_floats(*values: float) -> tuple[float, ...]:
    """All-reduce-average Python floats (in float64, one collective); the values themselves outside a group."""
    if not active():
        return values
    return tuple(float(v) for v in mean_scalars(*(torch.tensor(v, dtype=torch.float64) for v in values)))


def mean_tensors_(tensors: Sequence[torch.Tensor]) -> None:
    """All-reduce-average a list of tensors in place, in one flat collective."""
    if not active() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def aw_all_reduce(g_r, g_f, score_r, score_f, loss_r, loss_f):
    """Average AW's per-part gradients, scores and losses over ranks (equal per-rank batches)."""
    mean_tensors_(list(g_r) + list(g_f))
    score_r, score_f, loss_r, loss_f = mean_scalars(score_r, score_f, loss_r, loss_f)
    return g_r, g_f, score_r, score_f, loss_r, loss_f


def global_logsumexp(logits: torch.Tensor) -> torch.Tensor:
    """log sum_j exp(logits_j) over every rank's batch, for detached logits (two scalar collectives)."""
    logits = logits.detach()
    top = logits.max()
    if active():
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    total = (logits - top).exp().sum()
    if active():
        dist.all_reduce(total)
    return top + total.log()
