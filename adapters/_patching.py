"""Reversible, tagged monkey-patches shared by the adapters.

A patch replaces attributes (module functions) with our wrappers. Every wrapper
carries the tag :data:`TAG` (as ``torch.optim.lr_scheduler`` tags the optimizer
methods it wraps with ``_with_counter``), so a second ``patch()`` sees that the
function is already ours and never wraps it twice. The handle remembers the
originals and puts them back on :meth:`Patch.undo`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
import types
import warnings
from typing import Any, Callable, Iterable

from gan_optim.ttur import TwoTimescale

__all__ = ["TAG", "Patch", "check_unmodified", "checkout_differences", "is_patched", "resolve_module",
           "source_fingerprint", "tag"]

#: Attribute set on every function we install; its value is the owning :class:`Patch`.
TAG = "_gan_optim_patch"


def tag(fn: Callable, handle: "Patch", original: Callable | None) -> Callable:
    """Mark ``fn`` as installed by ``handle`` (and remember what it replaces)."""
    setattr(fn, TAG, handle)
    if original is not None:
        fn.__wrapped__ = original  # type: ignore[attr-defined]
    return fn


def source_fingerprint(fn: Any) -> str | None:
    """A short hash of ``fn``'s source, blank lines, comments and indentation aside (None without source)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    lines = [line.strip() for line in source.splitlines()]
    kept = "\n".join(line for line in lines if line and not line.startswith("#"))
    return hashlib.sha256(kept.encode()).hexdigest()[:16]


def check_unmodified(fn: Any, trusted: set[str], *, what: str, snapshot: str, adapter: str,
                     technique: str) -> None:
    """Refuse to replace an upstream function whose source is not one we know: the user's edits would be lost."""
    found = source_fingerprint(fn)
    if found in trusted:
        return
    raise ValueError(
        f"{what} is not the one in {snapshot} (fingerprint {found}): technique {technique!r} replaces it, so "
        f"your changes to it would be silently lost. Port them, use a technique that hooks the losses "
        f"instead, or, if our replacement does what yours does, trust it with "
        f"gan_optim.adapters.{adapter}.TRUSTED_FINGERPRINTS.add({found!r})")


def _git_head(repo: str) -> str | None:
    """The commit a git checkout is at, read from ``.git`` without running git (None if not a checkout)."""
    git = os.path.join(repo, ".git")
    try:
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        path = os.path.join(git, ref)
        if os.path.isfile(path):
            with open(path) as f:
                return f.read().strip()
        with open(os.path.join(git, "packed-refs")) as f:
            for line in f:
                if line.strip().endswith(" " + ref):
                    return line.split()[0]
    except OSError:
        return None
    return None


def checkout_differences(repo: str, commit: str, file_hashes: dict[str, str]) -> str | None:
    """Why ``repo`` is not the tested checkout (``commit``), or None when it is.

    A git checkout is judged by its HEAD; an exported copy (no ``.git``) by the
    files the adapter hooks, whose SHA-256 prefixes are ``file_hashes``.
    """
    head = _git_head(repo)
    if head is not None:
        return None if head.startswith(commit) else f"it is at commit {head[:8]}"
    changed = []
    for name, expected in file_hashes.items():
        try:
            with open(os.path.join(repo, name), "rb") as f:
                found = hashlib.sha256(f.read()).hexdigest()[:len(expected)]
        except OSError:
            found = None
        if found != expected:
            changed.append(name)
    return f"its {', '.join(changed)} differ(s) from that commit's" if changed else None


def is_patched(fn: Any) -> bool:
    """True if ``fn`` is one of our wrappers."""
    return getattr(fn, TAG, None) is not None


def resolve_module(module: types.ModuleType | str | None, default_name: str) -> types.ModuleType:
    """The upstream module to patch: the one given, or ``import default_name`` from ``sys.path``.

    The upstream repositories are flat script folders (``import losses``), so the
    user's ``sys.path`` (their repo first) decides which file that is.
    """
    if module is None:
        module = default_name
    if isinstance(module, str):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"Cannot import the upstream module {module!r}: put the repository on sys.path "
                              "(run from its folder, or use the `gan-optim` launcher with --repo)") from exc
    if not isinstance(module, types.ModuleType):
        raise TypeError(f"Invalid {default_name}: expected a module or a module name, got {type(module).__name__}")
    return module


class Patch:
    """Handle of one applied patch: ``.undo()`` restores every replaced attribute.

    Attributes:
        adapter: ``"biggan"`` or ``"autogan"``.
        technique: the technique this patch applies.
        options: the technique's options.
        components: the gan_optim objects built for the current G/D pair
            (filled when the patched training function is first built/called).
    """

    def __init__(self, adapter: str, technique: str, options: dict[str, Any]) -> None:
        self.adapter = adapter
        self.technique = technique
        self.options = dict(options)
        self.components: dict[str, Any] = {}
        #: identity of the networks/optimizers the components were built for (rebuilt when they change)
        self.bound_to: tuple | None = None
        self._replaced: list[tuple[Any, str, Any, Any]] = []  # (owner, name, original, replacement)
        self.active = True

    # ---------------------------------------------------------------- install
    def replace(self, owner: Any, name: str, replacement: Callable) -> None:
        """Set ``owner.name = replacement`` (tagged), remembering the original."""
        original = getattr(owner, name)
        tag(replacement, self, original)
        setattr(owner, name, replacement)
        self._replaced.append((owner, name, original, replacement))

    def rebind(self, namespaces: Iterable[dict], original: Any, replacement: Any) -> None:
        """Rebind names that already hold ``original`` (``from functions import train`` ran before the patch)."""
        for ns in namespaces:
            for key, value in list(ns.items()):
                if value is original:
                    ns[key] = replacement
                    self._replaced.append((ns, key, original, replacement))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """State of every component (``state_dict()`` of each), for checkpoints."""
        # The baselines checkpoint their optimizers themselves: TwoTimescale's copies would double the file.
        return {"technique": self.technique,
                "components": {k: v.state_dict(optimizers=False) if isinstance(v, TwoTimescale) else v.state_dict()
                               for k, v in self.components.items() if hasattr(v, "state_dict")}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the components saved by :meth:`state_dict` (same technique only)."""
        if state.get("technique") != self.technique:
            raise ValueError(f"Invalid state: saved with technique {state.get('technique')!r}, "
                             f"this patch applies {self.technique!r}")
        for key, sub in state["components"].items():
            if key in self.components:
                self.components[key].load_state_dict(sub)

    # ------------------------------------------------------------------- undo
    def undo(self) -> None:
        """Put the originals back (idempotent). Attributes replaced since by someone else are left alone."""
        if not self.active:
            return
        for owner, name, original, replacement in reversed(self._replaced):
            if isinstance(owner, dict):
                if owner.get(name) is replacement:
                    owner[name] = original
            elif getattr(owner, name, None) is replacement:
                setattr(owner, name, original)
            else:
                warnings.warn(f"gan_optim: {getattr(owner, '__name__', owner)}.{name} was replaced after our patch; "
                              "left as it is", RuntimeWarning, stacklevel=2)
        self._replaced.clear()
        self.active = False

    def __enter__(self) -> "Patch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.undo()

    def __repr__(self) -> str:
        state = "active" if self.active else "undone"
        return f"Patch({self.adapter}, technique={self.technique!r}, {state})"


def existing(fn: Any, adapter: str, technique: str, options: dict[str, Any]) -> Patch | None:
    """The active patch already installed on ``fn``, if any; refuses a different configuration."""
    handle = getattr(fn, TAG, None)
    if handle is None or not handle.active:
        return None
    if handle.technique != technique or handle.options != options:
        raise RuntimeError(f"{adapter} is already patched with technique {handle.technique!r} "
                           f"{handle.options}; call gan_optim.adapters.{adapter}.unpatch() first")
    return handle


def caller_globals(depth: int = 2) -> dict:
    """Globals of the frame ``depth`` levels up (the user's train.py for ``patch()``)."""
    return sys._getframe(depth).f_globals
