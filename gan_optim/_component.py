"""What every stateful component shares: step post-hooks and versioned, validated state dicts.

The conventions follow ``torch.optim.Optimizer``:

- ``register_step_post_hook(hook) -> RemovableHandle``; the hook is called as
  ``hook(component, stats)`` after every step, once the step is committed,
  with ``stats`` one frozen dataclass type per component. A hook that raises
  propagates, and the step stays taken (as in ``torch.optim``).
- ``state_dict()`` returns a plain dict with a ``"component"`` name and a
  ``"version"``; ``load_state_dict`` validates *every* field first and applies
  the state only when all of it is accepted, so a bad state changes nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Generic, Iterable, TypeVar

from torch.utils.hooks import RemovableHandle

StatsT = TypeVar("StatsT")

#: Version of the state-dict layout written by this release.
STATE_VERSION = 1


class Component(Generic[StatsT]):
    """Base of the five components: step post-hooks and the state-dict header."""

    def __init__(self) -> None:
        self._step_post_hooks: OrderedDict[int, Callable[[Any, StatsT], None]] = OrderedDict()

    def register_step_post_hook(self, hook: Callable[[Any, StatsT], None]) -> RemovableHandle:
        """Call ``hook(component, stats)`` after every step; returns a handle whose ``remove()`` unregisters it.

        Hooks run in the order they were registered, after the step is
        committed (parameters, optimizer and the component's state all
        updated). As with ``torch.optim.Optimizer.register_step_post_hook``, a
        hook that raises propagates to the caller and the step stays taken; the
        hooks after it do not run. ``stats`` holds tensors where the component
        computes on tensors (no GPU sync until you read them).
        """
        if not callable(hook):
            raise TypeError(f"Invalid hook: expected a callable, got {type(hook).__name__}")
        handle = RemovableHandle(self._step_post_hooks)
        self._step_post_hooks[handle.id] = hook
        return handle

    def _call_step_post_hooks(self, stats: StatsT) -> None:
        """Run the hooks; call it after the step is committed."""
        for hook in list(self._step_post_hooks.values()):
            hook(self, stats)

    # ------------------------------------------------------------ state dicts
    def _state_header(self) -> dict[str, Any]:
        return {"component": type(self).__name__, "version": STATE_VERSION}

    def _check_state(self, state: Any, required: Iterable[str]) -> dict[str, Any]:
        """Check the header and the presence of ``required`` keys; returns ``state``. Changes nothing."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"Invalid state: expected a dict, got {type(state).__name__}")
        component = state.get("component")
        if component != name:
            raise ValueError(f"Invalid state: it is a state of {component!r}, not of {name!r}")
        version = state.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"Invalid state: version {version!r} (expected an int >= 1)")
        if version > STATE_VERSION:
            raise ValueError(f"Invalid state: version {version} was written by a newer gan_optim "
                             f"(this one reads up to version {STATE_VERSION})")
        required = tuple(required)
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(f"Invalid state: missing keys {missing}")
        unknown = sorted(set(state) - set(required) - {"component", "version"})
        if unknown:
            raise ValueError(f"Invalid state: unknown keys {unknown}")
        return state
