"""How "nothing changes on error" works, in one place: an undo log.

A call that changes several things (D's parameters, buffers and ``.grad``, an
optimizer's state, the RNG, a component's own counters) opens a
:class:`Transaction`, records with ``keep_*`` what it is about to change, and
does its work inside the ``with`` block. If anything raises there (our checks,
D, the optimizer), every recorded undo runs, newest first, and the exception
propagates; if the block ends normally, nothing is undone and the log is
dropped. Components assign their own state only after the block (their
commit), and call their step post-hooks after that, as ``torch.optim`` does.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

Undo = Callable[[], None]


class Transaction:
    """An undo log: ``with Transaction() as undo: undo.keep_buffers(D); ...``."""

    def __init__(self) -> None:
        self._undo: list[Undo] = []

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        undo, self._undo = self._undo, []
        if exc_type is not None:  # the exception propagates
            for put_back in reversed(undo):
                put_back()

    def on_error(self, undo: Undo) -> Undo:
        """Run ``undo()`` if the block raises; returns it (for :meth:`release`)."""
        self._undo.append(undo)
        return undo

    def release(self, *undos: Undo) -> None:
        """Stop undoing these: what they kept is no longer put back on error."""
        self._undo = [u for u in self._undo if not any(u is r for r in undos)]

    # --------------------------------------------------------------- what to keep
    def keep_grads(self, params: Iterable[torch.Tensor]) -> Undo:
        """The ``.grad`` references (no copy: ``zero_grad(set_to_none=True)`` only drops them)."""
        saved = [(p, p.grad) for p in {id(p): p for p in params}.values()]

        def put_back() -> None:
            for p, g in saved:
                p.grad = g
        return self.on_error(put_back)

    def keep_buffers(self, module: torch.nn.Module) -> Undo:
        """Copies of the buffers (BatchNorm statistics and spectral-norm vectors move in every forward)."""
        saved = [(b, b.clone()) for b in module.buffers()]

        def put_back() -> None:
            with torch.no_grad():
                for b, kept in saved:
                    b.copy_(kept)
        return self.on_error(put_back)

    def keep_rng(self, device: torch.device) -> Undo:
        """The global RNG (and ``device``'s CUDA generator): a draw inside the block is undone."""
        cpu = torch.random.get_rng_state()
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

        def put_back() -> None:
            torch.random.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, device)
        return self.on_error(put_back)

    def keep_values(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, store: TensorStore) -> Undo:
        """The values of ``module``'s parameters and of ``optimizer``'s state, copied into ``store``."""
        return self.on_error(store.snapshot(module, optimizer))

    def keep_param_groups(self, optimizer: torch.optim.Optimizer) -> Undo:
        """The hyperparameters of every parameter group (``lr``, ``initial_lr``, ...), keys added later removed."""
        saved = [(group, {k: v for k, v in group.items() if k != "params"}) for group in optimizer.param_groups]

        def put_back() -> None:
            for group, kept in saved:
                for k in [k for k in group if k != "params" and k not in kept]:
                    del group[k]
                group.update(kept)
        return self.on_error(put_back)


class TensorStore:
    """Buffers for :meth:`Transaction.keep_values`, kept between calls so that a snapshot allocates once."""

    def __init__(self) -> None:
        self._kept: dict[tuple, torch.Tensor] = {}

    def snapshot(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Undo:
        """Copy the parameters and the optimizer state now; returns what puts them back."""
        sources: dict[tuple, torch.Tensor] = {("param", i): p.detach() for i, p in enumerate(module.parameters())}
        sources.update({("opt", id(p), k): v for p, state in optimizer.state.items() for k, v in state.items()
                        if isinstance(v, torch.Tensor)})
        scalars = {(id(p), k): v for p, state in optimizer.state.items() for k, v in state.items()
                   if not isinstance(v, torch.Tensor)}
        with_state = {id(p) for p in optimizer.state}
        for key, t in sources.items():
            old = self._kept.get(key)
            if old is None or old.shape != t.shape or old.dtype != t.dtype or old.device != t.device:
                self._kept[key] = torch.empty_like(t, memory_format=torch.preserve_format)
        if sources:
            torch._foreach_copy_([self._kept[k] for k in sources], list(sources.values()))
        kept, keys = self._kept, set(sources)

        def put_back() -> None:
            with torch.no_grad():
                for i, param in enumerate(module.parameters()):
                    param.copy_(kept[("param", i)])
                for p in list(optimizer.state.keys()):
                    if id(p) not in with_state:
                        del optimizer.state[p]  # the failed call created it
                        continue
                    state = optimizer.state[p]
                    for k in list(state.keys()):
                        if ("opt", id(p), k) in keys:
                            state[k].copy_(kept[("opt", id(p), k)])
                        elif (id(p), k) in scalars:
                            state[k] = scalars[(id(p), k)]
        return put_back
