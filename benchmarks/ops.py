"""Count the aten operators a step dispatches: a deterministic measure of per-call overhead.

A step's wall-clock time on a shared machine is noisy; the number of aten
operators it dispatches is not. Each dispatched operator costs a fixed amount
of host work (Python, the dispatcher, on a GPU a kernel launch), so for small
and medium models, where that fixed cost is a large part of a step, the count
is a good proxy for the overhead a component adds, and it is the same on every
run and every machine::

    from gan_optim_benchmarks.ops import count_ops, op_counts

    count_ops(step)            # 355: every aten op of forward, backward and optimizer step
    op_counts(step).most_common(5)

Counted with a :class:`torch.utils._python_dispatch.TorchDispatchMode`, which
sees every operator that reaches the dispatcher's Python key: those of the
forward, of the backward (the autograd engine carries the mode into its
work), of ``torch.func`` transforms and of the optimizer's step, after
composite operators have been decomposed into the aten operators that run.
``aten._local_scalar_dense`` is the operator behind ``.item()``, ``float()``
and ``bool()`` of a tensor: on a GPU each is a host synchronisation, so
:func:`host_syncs` counts them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["count_ops", "host_syncs", "op_counts"]

#: The operator every tensor-to-Python-scalar conversion goes through (a host sync on a GPU).
SYNC_OP = "aten._local_scalar_dense"


class _OpCounter(TorchDispatchMode):
    """Counts each aten operator dispatched while it is active, by overload packet name (``aten.mm``)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func.overloadpacket)] += 1  # e.g. "aten.mm"
        return func(*args, **(kwargs or {}))


def op_counts(fn: Callable[[], Any]) -> Counter[str]:
    """Run ``fn()`` once and return how often it dispatched each aten operator (``{"aten.mm": 12, ...}``)."""
    counter = _OpCounter()
    with counter:
        fn()
    return counter.counts


def count_ops(fn: Callable[[], Any]) -> int:
    """Run ``fn()`` once and return the number of aten operators it dispatched (forward, backward, step)."""
    return sum(op_counts(fn).values())


def host_syncs(fn: Callable[[], Any]) -> int:
    """Run ``fn()`` once and return how many tensor-to-host scalar reads it made (each a sync on a GPU)."""
    return op_counts(fn)[SYNC_OP]
