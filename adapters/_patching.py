"""Reversible, tagged monkey-patches shared by the adapters.

A patch replaces attributes (module functions) with our wrappers. Every wrapper
carries the tag :data:`TAG` (as ``torch.optim.lr_scheduler`` tags the optimizer
methods it wraps with ``_with_counter``), so a second ``patch()`` sees that the
function is already ours and never wraps it twice. The handle remembers the
originals and puts them back on :meth:`Patch.undo`.
"""

from __future__ import annotations

import ast
import collections
import difflib
import hashlib
import importlib
import inspect
import io
import os
import sys
import textwrap
import tokenize
import types
import warnings
from typing import Any, Callable, Iterable

from gan_optim.ttur import TwoTimescale

__all__ = ["TAG", "AdapterError", "Patch", "Registry", "TechniqueInactive", "changed_lines", "check_unmodified",
           "checkout_differences", "fingerprint_of_source", "is_patched", "line_keys", "outputs_used_after_call",
           "resolve_module", "source_fingerprint", "tag"]

#: Attribute set on every function we install; its value is the owning :class:`Patch`.
TAG = "_gan_optim_patch"


def tag(fn: Callable, handle: "Patch", original: Callable | None) -> Callable:
    """Mark ``fn`` as installed by ``handle`` (and remember what it replaces)."""
    setattr(fn, TAG, handle)
    if original is not None:
        fn.__wrapped__ = original  # type: ignore[attr-defined]
    return fn


class AdapterError(ValueError):
    """A refusal of the adapters (an edited hooked function, a configuration a technique cannot run,
    a technique that did not act): the launcher prints it as one line and exits with status 2."""


class TechniqueInactive(AdapterError):
    """The technique's component was never called during the iterations that ran."""


def _logical_lines(source: str, first_line: int = 1) -> list[tuple[int, int, str, str]]:
    """``(file line, indentation depth, tokens, the line as written)`` of each statement line of ``source``.

    Comments, blank lines, line continuations and bare string statements
    (docstrings) are left out: they cannot change what the code does. The
    indentation depth stays in: in Python it decides which block a line is in.
    """
    lines: list[tuple[int, int, str, str]] = []
    depth = 0
    tokens: list[str] = []
    start, written = 0, ""
    only_strings = True
    for tok in tokenize.generate_tokens(io.StringIO(textwrap.dedent(source)).readline):
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.NEWLINE:
            if tokens and not only_strings:
                lines.append((start + first_line - 1, depth, " ".join(tokens), written))
            tokens, only_strings = [], True
        elif tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER):
            if not tokens:
                start, written = tok.start[0], tok.line.strip()
            tokens.append(tok.string)
            only_strings = only_strings and tok.type == tokenize.STRING
    return lines


def _line_key(depth: int, text: str) -> str:
    return f"{depth}:{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def fingerprint_of_source(source: str) -> str:
    """The fingerprint of a function's source text (see :func:`source_fingerprint`)."""
    keys = " ".join(_line_key(depth, text) for _, depth, text, _ in _logical_lines(source))
    return hashlib.sha256(keys.encode()).hexdigest()[:16]


def line_keys(fn: Any) -> str:
    """One short key per statement line of ``fn`` (indentation depth and a hash of its tokens), space-separated:
    what an adapter stores of the tested version, to name the lines a user changed."""
    source, first = inspect.getsourcelines(fn)
    return " ".join(_line_key(depth, text) for _, depth, text, _ in _logical_lines("".join(source), first))


def source_fingerprint(fn: Any) -> str | None:
    """A short hash of ``fn``'s code as Python reads it: its tokens and each line's indentation depth
    (comments, blank lines, line breaks inside brackets and docstrings aside). None without source."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        return None
    return fingerprint_of_source(source)


def changed_lines(fn: Any, tested: str, limit: int = 3) -> str:
    """The lines of ``fn`` that differ from the tested version (its :func:`line_keys`), as a short diff."""
    try:
        source, first = inspect.getsourcelines(fn)
        filename = os.path.basename(inspect.getsourcefile(fn) or "?")
    except (OSError, TypeError):
        return "its source is not available"
    found = _logical_lines("".join(source), first)
    ours = [_line_key(depth, text) for _, depth, text, _ in found]
    theirs = tested.split()
    notes: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, theirs, ours, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if j1 == j2:  # lines of the tested version that are gone
            where = f"before {filename}:{found[j1][0]}" if j1 < len(found) else "at the end"
            notes.append(f"{i2 - i1} line(s) of the tested version removed {where}")
            continue
        for j in range(j1, j2):
            line, depth, text, written = found[j]
            hashed = _line_key(0, text).split(":")[1]
            moved = [int(k.split(":")[0]) for k in theirs[i1:i2] if k.split(":")[1] == hashed]
            what = (f"indented differently (depth {depth}, tested {moved[0]})" if moved
                    else "changed" if op == "replace" else "added")
            shown = written if len(written) <= 60 else written[:57] + "..."
            notes.append(f"{filename}:{line} `{shown}` {what}")
    if not notes:
        return "no line differs"
    more = f" (+{len(notes) - limit} more)" if len(notes) > limit else ""
    return "; ".join(notes[:limit]) + more


def check_unmodified(fn: Any, trusted: set[str], *, what: str, snapshot: str, adapter: str,
                     technique: str, tested_lines: str | None = None, consequence: str | None = None) -> None:
    """Refuse to replace an upstream function whose code is not one we know: the user's edits would be lost.

    ``trusted``: the fingerprints accepted; ``tested_lines``: the tested version's :func:`line_keys`, to
    name the changed lines in the message.
    """
    found = source_fingerprint(fn)
    if found in trusted:
        return
    diff = f" ({changed_lines(fn, tested_lines)})" if tested_lines else ""
    consequence = consequence or f"technique {technique!r} replaces it, so your changes to it would be silently lost"
    raise AdapterError(
        f"{what} is not the one in {snapshot}{diff}: {consequence}. Port your changes, use a technique that "
        f"keeps it, or run at your own risk with --trust-fingerprint {found} (gan-optim {adapter}) or "
        f"gan_optim.adapters.{adapter}.TRUSTED_FINGERPRINTS.add({found!r})")


def outputs_used_after_call(frame: types.FrameType, function_name: str) -> bool:
    """Whether the code running in ``frame`` reads an argument of its current call to ``function_name`` again
    after that call (a name passed to it, loaded later before being rebound; a loop's next pass counts).

    True when that cannot be told (no source, no such call on that line): the safe answer for a caller that
    frees a graph only when nothing else needs it.
    """
    key = (frame.f_code, frame.f_lineno, function_name)
    if key not in _USED_AFTER:
        try:
            _USED_AFTER[key] = _names_read_after_call(frame, function_name)
        except (OSError, TypeError, SyntaxError, LookupError):
            _USED_AFTER[key] = True
    return _USED_AFTER[key]


_USED_AFTER: dict[tuple[Any, int, str], bool] = {}


def _names_read_after_call(frame: types.FrameType, function_name: str) -> bool:
    source, first = inspect.getsourcelines(frame.f_code)
    tree = ast.parse(textwrap.dedent("".join(source)))
    line = frame.f_lineno - first + 1
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and (getattr(node.func, "attr", None) == function_name or getattr(node.func, "id", None) == function_name)
             and node.lineno <= line <= (node.end_lineno or node.lineno)]
    if not calls:
        raise LookupError(function_name)
    call = calls[0]
    after = (call.end_lineno or call.lineno, call.end_col_offset or 0)
    # A name stored by an assignment is rebound when the whole statement has run.
    store_at: dict[int, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.With)):
            end = (node.lineno, node.col_offset) if isinstance(node, (ast.For, ast.AsyncFor, ast.With)) else (
                node.end_lineno or node.lineno, node.end_col_offset or 0)
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [i.optional_vars for i in node.items if i.optional_vars is not None]
                       if isinstance(node, ast.With) else [node.target])
            for target in targets:
                for name in ast.walk(target):
                    store_at[id(name)] = end
    inside_call = {id(n) for n in ast.walk(call)}
    loops = [node for node in ast.walk(tree) if isinstance(node, (ast.For, ast.While, ast.AsyncFor))
             and node.lineno <= call.lineno <= (node.end_lineno or node.lineno)]
    innermost = max(loops, key=lambda n: n.lineno, default=None)
    for arg in call.args:
        if not isinstance(arg, ast.Name):
            return True
        uses = sorted(((store_at.get(id(n), (n.lineno, n.col_offset)), isinstance(n.ctx, ast.Load), n)
                       for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == arg.id), key=lambda u: u[0])
        later = [u for u in uses if u[0] > after and id(u[2]) not in inside_call]
        if not later and innermost is not None:  # the loop's next pass (this very call included)
            in_loop = {id(n) for n in ast.walk(innermost)}
            later = [u for u in uses if id(u[2]) in in_loop]
        if later and later[0][1]:
            return True
    return False


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

    A git checkout at another commit is named by its HEAD; otherwise (at that
    commit with uncommitted edits, or an exported copy without ``.git``) the
    files the adapter hooks are compared with ``file_hashes``, their SHA-256
    prefixes at that commit.
    """
    head = _git_head(repo)
    if head is not None and not head.startswith(commit):
        return f"it is at commit {head[:8]}"
    # At the commit, or an exported copy: the hooked files as they are now (uncommitted edits included).
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
        #: training iterations run under this patch, and how often each component acted in them
        self.iterations = 0
        self.calls: collections.Counter[str] = collections.Counter()
        #: what the technique's component is called through, for the message when it never is
        self.called_through = "the training function"
        #: iterations within which the component acts at least once when it is called at all (AutoGAN's
        #: n_critic: G, and so wegan, steps on one iteration in n_critic)
        self.acts_within = 1

    # --------------------------------------------------------------- activity
    def acted(self, component: str) -> None:
        """Count one call of ``component`` (a technique name) in the training step."""
        self.calls[component] += 1

    def check_acted(self) -> None:
        """Raise :class:`TechniqueInactive` when iterations ran and the technique's component was never called."""
        if self.technique in ("none", "compat") or self.iterations < self.acts_within or self.calls[self.technique]:
            return
        raise TechniqueInactive(
            f"technique {self.technique!r} did not act: {self.iterations} training iteration(s) ran and "
            f"{self.adapter}'s code never called {self.called_through}, through which {self.technique} works. "
            f"Call {self.called_through} in your training code (name your own function there), or run "
            f"without the technique")

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


class Registry:
    """The patches an adapter applied (``active_patch()``, ``unpatch()``), in the order they were applied."""

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self.patches: list[Patch] = []

    def add(self, handle: Patch) -> Patch:
        self.patches.append(handle)
        return handle

    def active_patch(self) -> Patch | None:
        """The patch in effect, if any."""
        live = [h for h in self.patches if h.active]
        return live[-1] if live else None

    def unpatch(self) -> None:
        """Undo every active patch of this adapter."""
        while self.patches:
            self.patches.pop().undo()


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
