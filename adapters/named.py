r"""One hook for any GAN codebase: name its loss functions, keep its code.

::

    gan-optim run --technique aw --d-loss src/utils/losses.py:d_hinge --real d_logit_real --fake d_logit_fake \
                  -- python src/main.py <its own flags>

or from Python, around anything that runs the codebase::

    from gan_optim.adapters.named import NamedHooks

    with NamedHooks("aw", d_loss="src/utils/losses.py:d_hinge", real="d_logit_real", fake="d_logit_fake"):
        runpy.run_path("src/main.py", run_name="__main__")

The named function is wrapped wherever it is bound: in every module object
loaded from that file (now or later: an import hook patches each one right
after it executes) and in every module namespace that already holds it (a
``from losses import d_hinge`` that ran before). The codebase's files are never
edited and the named function itself still runs, so your edits to it are kept.

What each technique does through the hooks:

- ``aw``: each call of the D loss with gradients enabled returns a tensor
  whose value is the codebase's own loss and whose gradient is
  :math:`w_r \nabla\mathcal{L}_r + w_f \nabla\mathcal{L}_f` (Zadorozhnyy et al.,
  Algorithm 1). The parts are the codebase's own function with the fake
  (resp. real) argument detached; D's parameters are those of the optimizer
  that holds the leaves under the real output. Terms the codebase adds to the
  loss (R1, LeCam, consistency) keep their weight 1. The per-call work is
  :class:`AWOnNamedLoss` over an :class:`~gan_optim.aw.AWDiscriminatorLoss`
  (the BigGAN-PyTorch adapter's ``aw`` is the same, on its loss's two parts).
- ``wegan`` (needs ``g_loss``): the G loss's gradient with respect to each
  sample's output is multiplied by :math:`N w_i` (Pantazis et al.), so for a
  loss that is a mean over samples the gradient is
  :math:`\sum_i w_i \nabla\ell_i`; :math:`\eta = 1` changes nothing
  (:class:`WeGANOnNamedLoss`, as the BigGAN-PyTorch adapter's ``wegan``).
- ``adaptive`` (needs ``g_loss``): each iteration (one D and one G optimizer
  step, in either order) the scheduler (Ouyang & Agam) picks the network to
  update; the other one's optimizer step is vetoed in a step pre-hook (its
  gradients dropped, so its optimizer state is untouched). The losses it
  observes are the codebase's own D and G loss values.
- ``ttur``: around each D / G optimizer step the learning rates are set to
  ``lr_d`` / ``lr_g`` (times ``1/(n+1)^p`` with a schedule power) and restored
  afterwards, so the codebase's own schedulers and logs see their own rates.
- ``none``: the hooks count calls and run every check, and change nothing.
- ``freeadv`` is refused: it replays whole D steps, which naming a loss
  cannot do.

Refusals are :class:`NamedHookError` (the launcher prints one line and exits
2): a missing file, name or argument at start; at the first wrapped call a
loss that is not a scalar, not separable into a real and a fake part (checked
numerically once), or of inverted sign; during the run a D optimizer step with
no wrapped call before it (something still holds the original: it is named),
child processes started by ``torch.multiprocessing.spawn``; at exit, zero
wrapped calls.

Every decision is written to a CSV (``telemetry``) and, with ``tensorboard``,
as TensorBoard scalars.
"""

from __future__ import annotations

import ast
import csv
import functools
import gc
import importlib.abc
import inspect
import math
import os
import sys
import types
import warnings
import weakref
from typing import Any, Callable, Iterable, Iterator

import torch

from gan_optim import _dist
from gan_optim._checks import plain_tensor
from gan_optim.adaptive import AdaptiveScheduler
from gan_optim.aw import AWDiscriminatorLoss, AWStats
from gan_optim.functional.aw import _check_hparams, angle_degrees, aw_weights_from_geometry, gradient_geometry_foreach
from gan_optim.functional.wegan import check_eta, effective_sample_size, weight_variance
from gan_optim.wegan import WeightedGeneratorLoss

__all__ = ["NamedHookError", "NamedHooks", "LossTarget", "TECHNIQUES", "parse_target", "AWOnNamedLoss",
           "WeGANOnNamedLoss", "bind_call"]

TECHNIQUES = ("none", "aw", "wegan", "adaptive", "ttur", "freeadv")
#: Attribute set on every wrapper this module installs (its value: the wrapped original).
TAG = "_gan_optim_named"


class NamedHookError(RuntimeError):
    """A refusal of the named-loss hooks: what is wrong, in one line."""


# --------------------------------------------------------------------------- targets
class LossTarget:
    """``path/to/file.py:name`` (``name`` may be ``Class.method``), checked without importing the file."""

    def __init__(self, option: str, text: str, *, root: str | None = None) -> None:
        self.option = option
        self.text = text
        file, sep, qualname = text.rpartition(":")
        if not sep or not file or not qualname:
            raise NamedHookError(f"Invalid {option}: {text!r} (expected path/to/file.py:function_name)")
        path = os.path.expanduser(file)
        if not os.path.isabs(path):
            path = os.path.join(root or os.getcwd(), path)
        self.path = os.path.realpath(path)
        self.qualname = qualname
        if not os.path.isfile(self.path):
            raise NamedHookError(f"Invalid {option}: no file {file!r} (looked for {self.path})")
        with open(self.path, encoding="utf-8-sig") as f:  # a byte-order mark is allowed (NVlabs files have one)
            source = f.read()
        try:
            tree = ast.parse(source, filename=self.path)
        except SyntaxError as err:
            raise NamedHookError(f"Invalid {option}: {file} does not parse ({err.msg}, line {err.lineno})") from None
        node = _find_def(tree, qualname.split("."))
        if node is None:
            raise NamedHookError(f"Invalid {option}: {file} defines no function {qualname!r}")
        self.lineno = node.lineno
        a = node.args
        self.arguments = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]

    def require_argument(self, option: str, name: str) -> None:
        if name not in self.arguments:
            raise NamedHookError(f"Invalid {option}: {self.qualname} ({os.path.basename(self.path)}:{self.lineno}) "
                                 f"has no argument {name!r} (its arguments: {', '.join(self.arguments) or 'none'})")

    def __repr__(self) -> str:
        return f"{os.path.basename(self.path)}:{self.qualname}"


def _find_def(tree: ast.AST, parts: list[str]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    body = getattr(tree, "body", [])
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == parts[0] and len(parts) == 1:
            return node
        if isinstance(node, ast.ClassDef) and node.name == parts[0] and len(parts) > 1:
            return _find_def(node, parts[1:])
    return None


def parse_target(option: str, text: str) -> LossTarget:
    """Check ``file.py:name`` now: a missing file or name is a :class:`NamedHookError`."""
    return LossTarget(option, text)


# --------------------------------------------------------------------------- import hook
class _PatchingLoader(importlib.abc.Loader):
    """Delegates to the real loader, then wraps the named functions in the module it executed."""

    def __init__(self, loader: Any, hooks: "NamedHooks") -> None:
        self._loader = loader
        self._hooks = hooks

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        self._hooks._patch_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... (inspect, linecache)
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds specs with the other finders; those of a named file get a patching loader."""

    def __init__(self, hooks: "NamedHooks") -> None:
        self._hooks = hooks

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        origin = getattr(spec, "origin", None)
        if origin and spec.loader is not None and os.path.realpath(origin) in self._hooks._files:
            spec.loader = _PatchingLoader(spec.loader, self._hooks)
        return spec


# --------------------------------------------------------------------------- helpers
def _graph_leaves(output: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors (requires_grad) that ``output``'s graph accumulates gradients into, in graph order."""
    if output.grad_fn is None:
        return [output] if output.requires_grad else []
    seen: set[int] = set()
    leaves: list[torch.Tensor] = []
    stack: list[Any] = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None:
            leaves.append(variable)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return leaves


def _holders(original: Callable, ours: Iterable[Any] = ()) -> list[str]:
    """Human names of what still references ``original`` (module globals, object attributes, closures).

    ``ours``: the wrappers, whose own references (``__wrapped__``, closure cells) are left out.
    """
    modules = {id(m.__dict__): name for name, m in list(sys.modules.items()) if m is not None
               and hasattr(m, "__dict__")}
    ignored = set()
    for wrapper in ours:
        ignored.add(id(getattr(wrapper, "__dict__", None)))
        ignored.update(id(cell) for cell in (getattr(wrapper, "__closure__", None) or ()))
    out: list[str] = []
    for ref in gc.get_referrers(original):
        if id(ref) in ignored or isinstance(ref, (list, tuple, types.FrameType)):
            continue
        if isinstance(ref, dict):
            keys = [k for k, v in ref.items() if v is original]
            if id(ref) in modules:
                out += [f"{modules[id(ref)]}.{k}" for k in keys]
                continue
            owners = [o for o in gc.get_referrers(ref) if getattr(o, "__dict__", None) is ref]
            if owners and isinstance(owners[0], types.FunctionType):
                continue
            owner = type(owners[0]).__name__ + " object" if owners else "a dict"
            out += [f"attribute {k!r} of {owner}" for k in keys]
        elif type(ref).__name__ == "cell":
            closures = [t for t in gc.get_referrers(ref) if isinstance(t, tuple)]
            owners = [f for t in closures for f in gc.get_referrers(t) if isinstance(f, types.FunctionType)
                      and f.__closure__ is t]
            if owners and all(getattr(f, TAG, None) is not None for f in owners):
                continue  # our own wrappers' cells
            out.append("a closure or compiled function (torch.compile and functools.partial keep the original)")
        elif isinstance(getattr(ref, "__dict__", None), dict):  # an object whose attributes are stored inline
            keys = [k for k, v in vars(ref).items() if v is original]
            out += [f"attribute {k!r} of {type(ref).__name__} object" for k in keys]
    return sorted(set(out))


def _replace_arguments(bound: inspect.BoundArguments, **values: Any) -> tuple[tuple, dict]:
    arguments = dict(bound.arguments)
    arguments.update(values)
    ba = inspect.BoundArguments(bound.signature, arguments)  # type: ignore[arg-type]
    return ba.args, ba.kwargs


def _total(name: str, value: Any, error: type[Exception] | None = None) -> torch.Tensor:
    """The loss a call returned: a scalar, or the sum of a tuple of scalars (``(loss_real, loss_fake)``, as
    BigGAN's ``discriminator_loss`` returns and its training code sums). ``error``: what a refusal raises."""
    parts = list(value) if isinstance(value, (tuple, list)) else [value]
    if not parts or not all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in parts):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise (error or NamedHookError)(f"{name} must return a scalar loss (or a tuple of scalars), got {shape}")
    total = parts[0].reshape(())
    for v in parts[1:]:
        total = total + v.reshape(())
    return total


def _with_gradient(value: Any, carriers: list[torch.Tensor]) -> Any:
    """``value`` (a scalar or a tuple of scalars) with the same numbers, whose sum has the carriers' gradient.

    Each carrier is ``c - c.detach()``: zero, with ``c``'s gradient. With a tuple the first carrier goes to
    the first element and the last to the last (real and fake parts of ``(loss_real, loss_fake)``).
    """
    if isinstance(value, torch.Tensor):
        out = value.detach()
        for c in carriers:
            out = out + c.reshape(out.shape).to(out.dtype)
        return out
    items = [v.detach() for v in value]
    for k, c in enumerate(carriers):
        index = 0 if k == 0 else len(items) - 1
        items[index] = items[index] + c.reshape(items[index].shape).to(items[index].dtype)
    return type(value)(items)


class Telemetry:
    """The hooks' decisions, one CSV row each (flushed at once), and optionally TensorBoard scalars."""

    FIELDS = ("component", "step", "w_real", "w_fake", "case", "score_real", "score_fake", "angle",
              "effective_sample_size", "weight_variance", "max_weight", "choice", "ratio_d", "ratio_g", "loss_d",
              "loss_g", "network", "lr", "vetoed")

    def __init__(self, path: str | None, tensorboard: str | None = None) -> None:
        self.path = path
        self._file = None
        self._writer: Any = None
        self._tb: Any = None
        self.rows = 0
        if path is not None:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            self._file = open(path, "w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=self.FIELDS)
            self._writer.writeheader()
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:  # tensorboard is an optional dependency
                raise NamedHookError(f"Invalid --tensorboard: {err} (pip install tensorboard)") from None
            self._tb = SummaryWriter(tensorboard)

    def write(self, component: str, step: int, **values: Any) -> None:
        row = {"component": component, "step": step, **values}
        self.rows += 1
        if self._writer is not None:
            self._writer.writerow(row)
            self._file.flush()  # type: ignore[union-attr]
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"gan_optim/{component}/{key}", value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


# --------------------------------------------------------------------------- one call of a named loss
def bind_call(fn: Callable, args: tuple, kwargs: dict) -> inspect.BoundArguments | None:
    """A call's arguments by name, defaults filled in; ``None`` if they do not fit ``fn`` (it raises its own error)."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return bound


class _HeldParameters(torch.nn.Module):
    """D as a loss hook knows it: the parameters D's optimizer holds (the module itself is out of reach)."""

    def __init__(self, params: Iterable[torch.Tensor]) -> None:
        super().__init__()
        self._held = list(params)

    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter([(str(k), p) for k, p in enumerate(self._held)])


class AWOnNamedLoss:
    r"""AW through a codebase's own D loss function, one call at a time (Zadorozhnyy et al., Algorithm 1).

    A call runs the function and returns what it returns, with the same values, whose gradient (a tuple's:
    its sum's) is

    .. math::
        w_r \nabla\mathcal{L}_r + w_f \nabla\mathcal{L}_f,

    the weights chosen by ``aw``'s :meth:`~gan_optim.aw.AWDiscriminatorLoss.from_parts` (the per-part
    gradients, Algorithm 1, the gradient deposit; ``aw.steps`` and ``aw.last`` record each call). The
    parts :math:`\mathcal{L}_r, \mathcal{L}_f` are

    - ``parts="detached"`` (``gan-optim run``): the function with its fake (resp. real) output argument
      detached. Checked once, by calling it on moved outputs under ``no_grad``: a scalar (or a tuple of
      scalars, summed), separable into a real and a fake part, of the declared sign.
    - ``parts="returned"`` (BigGAN-PyTorch's ``losses.discriminator_loss``): the two scalars it returns,
      ``(loss_real, loss_fake)``; one call (its prints run once). Checked once through autograd: each part
      reads its own output only, with the declared sign.

    Args:
        name: the function, as refusals name it.
        real, fake: the names of its real- and fake-output arguments.
        d_sign: ``-1`` for a D that scores fakes high (the scores are then ``sigmoid(-output)``).
        parts: ``"detached"`` or ``"returned"``.
        error: the exception a refusal raises.
        d_sign_option: the option that sets ``d_sign``, named by the refusal of an inverted loss (None: none).
    """

    def __init__(self, name: str, real: str, fake: str, *, d_sign: int = 1, parts: str = "detached",
                 error: type[Exception] = NamedHookError, d_sign_option: str | None = "--d-sign") -> None:
        if parts not in ("detached", "returned"):
            raise ValueError(f"Invalid parts: {parts!r} (expected 'detached' or 'returned')")
        if d_sign not in (1, -1):
            raise ValueError(f"Invalid d_sign: {d_sign!r} (expected 1 or -1)")
        self.name, self.real, self.fake, self.d_sign, self.parts, self.error = name, real, fake, d_sign, parts, error
        self.d_sign_option = d_sign_option
        self.checked = False

    def __call__(self, fn: Callable, bound: inspect.BoundArguments, aw: AWDiscriminatorLoss, *,
                 retain_graph: bool = True) -> Any:
        """``fn``'s result for the arguments ``bound``, carrying AW's gradient. ``retain_graph``: keep D's graph
        after the per-part gradients (the codebase backpropagates other terms through D's outputs)."""
        real, fake = bound.arguments[self.real], bound.arguments[self.fake]
        if self.parts == "returned":
            result = fn(*bound.args, **bound.kwargs)
            part_r, part_f = self._returned_parts(result, real, fake)
        else:
            if not self.checked:
                self._check_detached(fn, bound, real, fake)
                self.checked = True
            a_r, k_r = _replace_arguments(bound, **{self.fake: fake.detach()})
            result = fn(*a_r, **k_r)  # the codebase's values (its fake argument detached changes none)
            part_r = _total(self.name, result, self.error)
            a_f, k_f = _replace_arguments(bound, **{self.real: real.detach()})
            part_f = _total(self.name, fn(*a_f, **k_f), self.error)
        for which, part in (("real", part_r), ("fake", part_f)):
            if not part.requires_grad:
                raise self.error(f"{self.name}: its {which} part has no graph back to D (aw weighs the gradients "
                                 "of both parts)")
        d_real, d_fake = (real, fake) if self.d_sign == 1 else (-real, -fake)
        loss = aw.from_parts(part_r, part_f, d_real, d_fake, retain_graph=retain_graph)
        # The values the codebase logs stay its own; the gradient is the weighted one (a tuple's first element
        # carries it all).
        return _with_gradient(result, [loss - loss.detach()])

    def _returned_parts(self, result: Any, real: torch.Tensor, fake: torch.Tensor,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        if not (isinstance(result, (tuple, list)) and len(result) == 2
                and all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in result)):
            raise self.error(f"aw weighs the real and the fake part of D's loss: {self.name} must return "
                             f"(loss_real, loss_fake), got {type(result).__name__}")
        part_r, part_f = (v.reshape(()) for v in result)
        if not self.checked:
            self._check_returned(part_r, part_f, real, fake)
            self.checked = True
        return part_r, part_f

    def _check_returned(self, part_r: torch.Tensor, part_f: torch.Tensor, real: torch.Tensor,
                        fake: torch.Tensor) -> None:
        """Once: each part reads its own output only, and falls as that output moves the declared way."""
        slopes = []
        for which, part, own, other in (("real", part_r, real, fake), ("fake", part_f, fake, real)):
            if not (part.requires_grad and own.requires_grad):
                slopes.append(0.0)
                continue
            wrt = [own, other] if other.requires_grad else [own]
            g = torch.autograd.grad(part, wrt, retain_graph=True, allow_unused=True)
            if len(g) == 2 and g[1] is not None and bool(g[1].ne(0).any()):
                raise self.error(f"{self.name} is not separable into a real and a fake part: its {which} part "
                                 f"reads the {'fake' if which == 'real' else 'real'} output (a relativistic or "
                                 "batch-coupled loss); aw needs L = L_real(real) + L_fake(fake)")
            slopes.append(0.0 if g[0] is None else float(g[0].sum()) * self.d_sign)
        self._check_sign(*slopes)

    def _check_detached(self, fn: Callable, bound: inspect.BoundArguments, real: torch.Tensor,
                        fake: torch.Tensor) -> None:
        """Once: a scalar, separable into a real and a fake part, of the declared sign."""
        name = self.name

        def value(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
            a, k = _replace_arguments(bound, **{self.real: r, self.fake: f})
            return _total(name, fn(*a, **k), self.error)

        with torch.no_grad():
            r0, f0 = real.detach(), fake.detach()
            r1, f1 = r0 * 0.5 + 0.75, f0 * 0.5 - 0.75
            corners = [value(r0, f0), value(r1, f1), value(r0, f1), value(r1, f0)]
            c = [float(v) for v in corners]
        interaction = abs(c[0] + c[1] - c[2] - c[3])
        if not math.isfinite(interaction) or interaction > 1e-4 * (1.0 + max(abs(v) for v in c)):
            raise self.error(
                f"{name} is not separable into a real and a fake part: L(r,f) + L(r',f') - L(r,f') - L(r',f) = "
                f"{interaction:.3g} (a relativistic or batch-coupled loss); aw needs L = L_real(real) + L_fake(fake)")
        for point in ("zero", "actual"):
            base_r = torch.zeros_like(r0) if point == "zero" else r0
            base_f = torch.zeros_like(f0) if point == "zero" else f0
            r = base_r.clone().requires_grad_(True)
            f = base_f.clone().requires_grad_(True)
            with torch.enable_grad():
                g_r, g_f = torch.autograd.grad(value(r, f), (r, f), allow_unused=True)
            slope_r = 0.0 if g_r is None else float(g_r.sum()) * self.d_sign
            slope_f = 0.0 if g_f is None else float(g_f.sum()) * self.d_sign
            self._check_sign(slope_r, slope_f)
            if slope_r < 0 or slope_f > 0:
                return

    def _check_sign(self, slope_r: float, slope_f: float) -> None:
        if slope_r > 0 or slope_f < 0:
            flag = "1" if self.d_sign == -1 else "-1"
            raise self.error(
                f"{self.name}: the sign is inverted (the loss {'grows' if slope_r > 0 else 'falls'} as the "
                f"{'real' if slope_r > 0 else 'fake'} output grows); "
                + (f"if this codebase's D scores fakes high, pass {self.d_sign_option} {flag}" if self.d_sign_option
                   else "aw reads D's outputs as scores of being real"))


class WeGANOnNamedLoss:
    r"""WeGAN through a codebase's own G loss function, one call at a time (Pantazis et al., Algorithm 1).

    A call runs the function once, on a fake-output argument with the same values whose gradient reaching
    sample :math:`i` is multiplied by :math:`N w_i`, with

    .. math::
        w_i = \frac{\eta^{1 - p_i}}{\sum_j \eta^{1 - p_j}}, \qquad p_i = \sigma(\text{output}_i)

    from ``wegan`` (a :class:`~gan_optim.wegan.WeightedGeneratorLoss`: its ``eta``, ``last_weights``,
    ``steps``, step post-hooks); an output of several entries per sample scores their mean. For a loss
    that is the mean of per-sample terms :math:`\ell_i` the gradient is :math:`\sum_i w_i \nabla\ell_i`;
    the value is the codebase's own. Under ``torch.distributed`` the weights are normalised over the global
    batch and :math:`N` is its size (DDP averages the ranks' gradients).

    Args:
        name: the function, as refusals name it.
        fake: the name of its fake-output argument.
        d_sign: ``-1`` for a D that scores fakes high (the scores are then ``sigmoid(-output)``).
        check: check once, by calling the function on moved outputs under ``no_grad``, that it is a sum of
            per-sample terms (off for a codebase whose G loss must run once per call).
        error: the exception a refusal raises.
    """

    def __init__(self, name: str, fake: str, *, d_sign: int = 1, check: bool = True,
                 error: type[Exception] = NamedHookError) -> None:
        if d_sign not in (1, -1):
            raise ValueError(f"Invalid d_sign: {d_sign!r} (expected 1 or -1)")
        self.name, self.fake, self.d_sign, self.check, self.error = name, fake, d_sign, check, error
        self.checked = False

    def __call__(self, fn: Callable, bound: inspect.BoundArguments, wegan: WeightedGeneratorLoss) -> Any:
        """``fn``'s result for the arguments ``bound``, its gradient carrying WeGAN's weights."""
        fake = bound.arguments[self.fake]
        if self.check and not self.checked:
            self._check_per_sample(fn, bound, fake)
            self.checked = True
        n = fake.shape[0]
        scores = self.d_sign * plain_tensor(fake).detach().reshape(n, -1).to(torch.float64).mean(1)
        wegan(scores)  # the weights (and wegan's statistics, step post-hooks, step count)
        weights = wegan.last_weights
        assert weights is not None
        scale = (weights * (n * _dist.world_size())).to(fake.dtype).reshape(n, *([1] * (fake.dim() - 1)))
        # Same values; the gradient reaching each sample's output is multiplied by N w_i.
        scaled = fake.detach() + (fake - fake.detach()) * scale
        a, k = _replace_arguments(bound, **{self.fake: scaled})
        value = fn(*a, **k)
        _total(self.name, value, self.error)
        return value

    def _check_per_sample(self, fn: Callable, bound: inspect.BoundArguments, fake: torch.Tensor) -> None:
        """Once: a scalar, and a sum of per-sample terms (the weights act per sample)."""
        n = fake.shape[0]

        def value(f: torch.Tensor) -> float:
            a, k = _replace_arguments(bound, **{self.fake: f})
            return float(_total(self.name, fn(*a, **k), self.error))

        if n < 2:
            return
        with torch.no_grad():
            a0 = fake.detach()
            b0 = a0 * 0.5 + 0.75
            h = n // 2
            c = [value(a0), value(b0), value(torch.cat([a0[:h], b0[h:]])), value(torch.cat([b0[:h], a0[h:]]))]
        interaction = abs(c[0] + c[1] - c[2] - c[3])
        if not math.isfinite(interaction) or interaction > 1e-4 * (1.0 + max(abs(v) for v in c)):
            raise self.error(f"{self.name} is not a sum of per-sample terms (samples interact: "
                             f"{interaction:.3g}); wegan weights each sample's term")


# --------------------------------------------------------------------------- the hooks
class NamedHooks:
    """Apply a technique to a codebase by naming its loss functions (see the module docstring).

    Args:
        technique: one of ``none``, ``aw``, ``wegan``, ``adaptive``, ``ttur`` (``freeadv`` is refused).
        d_loss: ``file.py:function`` computing D's loss from D's outputs on real and fake samples.
        real, fake: the names of that function's real-output and fake-output arguments.
        g_loss: ``file.py:function`` computing G's loss (needed by ``wegan`` and ``adaptive``).
        g_fake: the name of its fake-output argument (default: ``fake`` if it has one, else its first).
        d_sign: ``-1`` for a codebase whose D scores fakes high (its loss decreases as the real output
            decreases); the scores AW and WeGAN read are then ``sigmoid(-output)``.
        options: the technique's options (``alpha1``, ``alpha2``, ``eps``, ``delta``; ``eta``; ``lam``,
            ``max_consecutive``; ``lr_g``, ``lr_d``, ``g_schedule``, ``d_schedule``).
        telemetry: CSV file for the components' step statistics (None: none written).
        tensorboard: folder for TensorBoard scalars (None: none written).
        root: folder relative paths are read from (default: the working directory).
        allow_bare_d_steps: accept D optimizer steps with no D-loss call before them (a codebase's lazy
            regularization step, such as StudioGAN's R1 with ``r1_place: outside_loop``). Off by default:
            such a step usually means something still holds the original function.
    """

    def __init__(self, technique: str, *, d_loss: str | None = None, real: str | None = None,
                 fake: str | None = None, g_loss: str | None = None,
                 g_fake: str | None = None, d_sign: int = 1, d_step: str | None = None,
                 d_order: tuple[str, ...] = ("fake", "real"), d_phase: tuple[str, str] = ("phase", "Dmain"),
                 refused_phases: tuple[str, ...] = ("Dboth",), allow_bare_d_steps: bool = False,
                 options: dict[str, Any] | None = None, telemetry: str | None = None,
                 tensorboard: str | None = None, root: str | None = None) -> None:
        if technique not in TECHNIQUES:
            raise NamedHookError(f"Invalid technique: {technique!r} (expected one of {', '.join(TECHNIQUES)})")
        if technique == "freeadv":
            raise NamedHookError(
                "freeadv cannot be applied by naming a loss: it replays whole D steps (ascent on the inputs, "
                "then a D step per replay), which a loss hook cannot do"
                + ("; replaying a named --d-step is not supported yet" if d_step else ""))
        if d_sign not in (1, -1):
            raise NamedHookError(f"Invalid --d-sign: {d_sign} (expected 1 or -1)")
        self.technique = technique
        self.options = dict(options or {})
        self._check_options()
        self.inline = d_step is not None
        if self.inline:
            if d_loss is not None:
                raise NamedHookError("name either --d-loss (a loss function) or --d-step (a function that "
                                     "backpropagates an inline loss), not both")
            if technique not in ("aw", "none"):
                raise NamedHookError(f"technique {technique!r} needs the losses named (--d-loss, --g-loss); "
                                     "with --d-step only aw and none apply")
            if sorted(d_order) != ["fake", "real"]:
                raise NamedHookError(f"Invalid --d-order: {','.join(d_order)} (expected fake,real or real,fake)")
            self.d_order = tuple(d_order)
            self.phase_arg, self.main_phase = d_phase
            self.refused_phases = tuple(refused_phases)
            assert d_step is not None
            self.d_target = LossTarget("--d-step", d_step, root=root)
            self.d_target.require_argument("--d-phase", self.phase_arg)
            real, fake = "", "-"
        elif d_loss is None or real is None or fake is None:
            raise NamedHookError("name the D loss: --d-loss file.py:function --real ARG --fake ARG "
                                 "(or --d-step for a loss written inline)")
        else:
            self.d_target = LossTarget("--d-loss", d_loss, root=root)
            self.d_target.require_argument("--real", real)
            self.d_target.require_argument("--fake", fake)
        if real == fake:
            raise NamedHookError(f"Invalid --fake: {fake!r} is also --real")
        self.real, self.fake, self.d_sign = real, fake, d_sign
        self.allow_bare_d_steps = bool(allow_bare_d_steps)
        self.g_target: LossTarget | None = None
        self.g_fake: str | None = None
        if g_loss is not None:
            self.g_target = LossTarget("--g-loss", g_loss, root=root)
            if g_fake is None:
                args = self.g_target.arguments
                g_fake = fake if fake in args else (args[0] if args else "")
            self.g_target.require_argument("--g-fake", g_fake)
            self.g_fake = g_fake
        elif technique in ("wegan", "adaptive"):
            what = "weights G's loss" if technique == "wegan" else "observes G's loss"
            raise NamedHookError(f"technique {technique!r} {what}: name it with --g-loss file.py:function")
        self._files = {self.d_target.path} | ({self.g_target.path} if self.g_target else set())
        self._telemetry_args = (telemetry, tensorboard)
        self.telemetry: Telemetry | None = None
        # Run state.
        self.d_calls = 0  #: wrapped D-loss calls with gradients enabled
        self.g_calls = 0
        self._d_calls_since_step = 0
        self._originals: dict[int, Callable] = {}  # id(wrapper) -> original
        self._wrappers: dict[int, Callable] = {}  # id(original) -> wrapper
        self._keep: list[Callable] = []  # originals, kept alive so their ids stay unique
        self._replaced: list[tuple[Any, str, Any, Any]] = []
        self._handles: list[Any] = []
        self._optimizers: weakref.WeakSet = weakref.WeakSet()
        self._d_opt: Any = None
        self._g_opt: Any = None
        self._d_param_ids: set[int] = set()
        self.last_d_loss: float | None = None
        self.last_g_loss: float | None = None
        self.scheduler = (AdaptiveScheduler(lam=self.options.get("lam", 1.0),
                                            max_consecutive=self.options.get("max_consecutive"))
                          if technique == "adaptive" else None)
        self._choice: str | None = None
        self._stepped: set[str] = set()
        self._steps = {"D": 0, "G": 0}
        self._saved_lrs: dict[int, list[float]] = {}
        self.aw_stats: AWStats | None = None
        # The per-call techniques (shared with the BigGAN-PyTorch adapter) and their components.
        self._aw_on_loss = AWOnNamedLoss(repr(self.d_target), real, fake, d_sign=d_sign)
        self._aw: tuple[Any, AWDiscriminatorLoss] | None = None  # (weakref to D's optimizer, its component)
        self._wegan_on_loss = (WeGANOnNamedLoss(repr(self.g_target), self.g_fake or "", d_sign=d_sign)
                               if self.g_target is not None else None)
        self._wegan = WeightedGeneratorLoss(eta=self.options.get("eta", 1.0), loss="wgan")
        self.active = False
        # --d-step: the parts' gradients and scores captured since D's last optimizer step.
        self._parts: dict[str, list[torch.Tensor]] = {}
        self._scores: dict[str, list[float]] = {"real": [0.0, 0.0], "fake": [0.0, 0.0]}
        self._d_params: list[torch.Tensor] = []
        self._d_module_ids: dict[int, bool] = {}
        self._optimizer_sets: list[frozenset[int]] | None = None

    # ------------------------------------------------------------------ options
    _OPTIONS: dict[str, dict[str, Any]] = {"none": {}, "aw": {"alpha1": 0.5, "alpha2": 0.75, "eps": 0.05, "delta": 0.05},
                "wegan": {"eta": 0.01}, "adaptive": {"lam": 1.0, "max_consecutive": None},
                "ttur": {"lr_g": None, "lr_d": None, "g_schedule": None, "d_schedule": None}}

    def _check_options(self) -> None:
        allowed = self._OPTIONS[self.technique]
        wrong = sorted(set(self.options) - set(allowed))
        if wrong:
            raise NamedHookError(f"option(s) {', '.join('--' + w.replace('_', '-') for w in wrong)} do not apply "
                                 f"to technique {self.technique!r}")
        self.options = {**allowed, **self.options}
        o = self.options
        try:
            if self.technique == "aw":
                _check_hparams(o["alpha1"], o["alpha2"], o["eps"], o["delta"])
            elif self.technique == "wegan":
                o["eta"] = check_eta(o["eta"])
            elif self.technique == "adaptive":
                AdaptiveScheduler(lam=o["lam"], max_consecutive=o["max_consecutive"])
            elif self.technique == "ttur":
                if all(o[k] is None for k in o):
                    raise ValueError("technique 'ttur' needs --lr-g/--lr-d or --g-schedule/--d-schedule")
                for key in o:
                    value = o[key]
                    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)
                                                  and value > (0 if key.startswith("lr") else -1e-300)):
                        raise ValueError(f"Invalid --{key.replace('_', '-')}: {value!r}")
        except (ValueError, TypeError) as err:
            raise NamedHookError(str(err)) from None

    # ------------------------------------------------------------------ install
    def __enter__(self) -> "NamedHooks":
        self.install()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        clean = exc_type is None or (exc_type is SystemExit and exc.code in (None, 0))
        try:
            if clean:
                self.check_exit()
        finally:
            self.uninstall()

    def install(self) -> None:
        """Wrap the named functions (loaded modules now, later ones as they load) and add the step hooks."""
        if self.active:
            return
        self.telemetry = Telemetry(*self._telemetry_args)
        self.active = True
        finder = _Finder(self)
        sys.meta_path.insert(0, finder)
        self._replaced.append((sys.meta_path, "", finder, None))
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and os.path.realpath(file) in self._files:
                self._patch_module(module)
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._handles.append(register_optimizer_step_pre_hook(self._pre_step))
        self._handles.append(register_optimizer_step_post_hook(self._post_step))
        import torch.multiprocessing as tmp

        for name in ("spawn", "start_processes"):
            original = getattr(tmp, name, None)
            if original is not None:
                self._replace(tmp, name, self._refuse_children(name))

    def uninstall(self) -> None:
        """Put every original back (idempotent)."""
        if not self.active:
            return
        for owner, key, original, replacement in reversed(self._replaced):
            if owner is sys.meta_path:
                if original in sys.meta_path:
                    sys.meta_path.remove(original)
            elif isinstance(owner, dict):
                if owner.get(key) is replacement:
                    owner[key] = original
            elif getattr(owner, key, None) is replacement:
                setattr(owner, key, original)
        self._replaced.clear()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for opt_id, lrs in list(self._saved_lrs.items()):
            opt = next((o for o in self._optimizers if id(o) == opt_id), None)
            if opt is not None:
                self._restore_lrs(opt)
        if self.telemetry is not None:
            self.telemetry.close()
        self.active = False

    def _replace(self, owner: Any, key: str, replacement: Any) -> None:
        original = owner[key] if isinstance(owner, dict) else getattr(owner, key)
        if isinstance(owner, dict):
            owner[key] = replacement
        else:
            setattr(owner, key, replacement)
        self._replaced.append((owner, key, original, replacement))

    def _refuse_children(self, name: str) -> Callable:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise NamedHookError(f"the script starts child processes with torch.multiprocessing.{name}; the named-"
                                 "loss hooks do not reach them: run it as one process (no DDP flag)")
        return refuse

    def _patch_module(self, module: types.ModuleType) -> None:
        file = getattr(module, "__file__", None)
        file = os.path.realpath(file) if isinstance(file, str) else ""
        for target, kind in ((self.d_target, "d"), (self.g_target, "g")):
            if target is None or target.path != file:
                continue
            owner: Any = module
            parts = target.qualname.split(".")
            for part in parts[:-1]:
                owner = getattr(owner, part, None)
            original = getattr(owner, parts[-1], None) if owner is not None else None
            if original is None or getattr(original, TAG, None) is not None:
                continue
            if isinstance(owner, type):
                original = owner.__dict__[parts[-1]]
            wrapper = self._wrap(original, kind)
            self._replace(owner, parts[-1], wrapper)
            self._rebind(original, wrapper)

    def _rebind(self, original: Callable, wrapper: Callable) -> None:
        """Names that already hold ``original`` (``from losses import d_hinge`` ran before): now the wrapper."""
        for module in list(sys.modules.values()):
            ns = getattr(module, "__dict__", None)
            if not isinstance(ns, dict):
                continue
            for key, value in list(ns.items()):
                if value is original:
                    self._replace(ns, key, wrapper)

    def _wrap(self, original: Callable, kind: str) -> Callable:
        call = self._g_call if kind == "g" else self._step_call if self.inline else self._d_call

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return call(original, args, kwargs)

        setattr(wrapper, TAG, original)
        self._keep.append(original)
        return wrapper

    def _wrappers_list(self) -> list[Any]:
        return [r for _, _, _, r in self._replaced if getattr(r, TAG, None) is not None]

    # ------------------------------------------------------------------ identification
    def _all_optimizers(self) -> list[torch.optim.Optimizer]:
        with warnings.catch_warnings():  # isinstance on every object wakes deprecated lazy attributes
            warnings.simplefilter("ignore")
            found = [o for o in gc.get_objects() if isinstance(o, torch.optim.Optimizer)]
        for o in found:
            self._optimizers.add(o)
        return found

    def _optimizer_of(self, leaves: Iterable[torch.Tensor], exclude: Any = None) -> tuple[Any, list[torch.Tensor]]:
        """The optimizer holding most of ``leaves``, and the leaves it holds (in its order)."""
        ids = {id(t) for t in leaves}
        best: tuple[Any, list[torch.Tensor]] = (None, [])
        for opt in self._all_optimizers():
            if opt is exclude:
                continue
            held = [p for g in opt.param_groups for p in g["params"] if id(p) in ids]
            if len(held) > len(best[1]):
                best = (opt, held)
        return best

    def _identify_d(self, real: torch.Tensor) -> list[torch.Tensor]:
        """D's parameters: the leaves under the real output held by an optimizer (D's optimizer)."""
        leaves = _graph_leaves(real)
        if self._d_opt is not None:
            held = [p for p in leaves if id(p) in self._d_param_ids]
            if held:
                return held
        opt, held = self._optimizer_of(leaves)
        if opt is None:
            raise NamedHookError(f"{self.d_target!r}: no optimizer holds the parameters under the {self.real!r} "
                                 "output (create D's optimizer before the first D loss is computed)")
        self._d_opt = weakref.ref(opt)
        self._d_param_ids = {id(p) for g in opt.param_groups for p in g["params"]}
        return [p for p in leaves if id(p) in self._d_param_ids]

    def _identify_g(self, fake: torch.Tensor) -> None:
        if self._g_opt is not None:
            return
        leaves = [p for p in _graph_leaves(fake) if id(p) not in self._d_param_ids]
        d_opt = self._d_opt() if self._d_opt is not None else None
        opt, _ = self._optimizer_of(leaves, exclude=d_opt)
        if opt is not None:
            self._g_opt = weakref.ref(opt)

    def _role(self, opt: Any) -> str | None:
        if self._d_opt is not None and self._d_opt() is opt:
            return "D"
        if self._g_opt is None and self._d_opt is not None and self.g_target is None and self.technique == "ttur":
            # No G loss named: G's optimizer is the first other optimizer that steps.
            self._g_opt = weakref.ref(opt)
        elif (self.g_target is None and self.technique == "ttur" and self._g_opt is not None
              and self._g_opt() is not opt and self._d_opt is not None):
            raise NamedHookError("technique 'ttur': a third optimizer steps besides D's and G's; name G's loss "
                                 "with --g-loss so that G's optimizer is known")
        if self._g_opt is not None and self._g_opt() is opt:
            return "G"
        return None

    # ------------------------------------------------------------------ D loss
    def _d_call(self, original: Callable, args: tuple, kwargs: dict) -> Any:
        if not torch.is_grad_enabled():
            return original(*args, **kwargs)
        bound = bind_call(original, args, kwargs)
        if bound is None:
            return original(*args, **kwargs)  # its own error message
        real, fake = bound.arguments.get(self.real), bound.arguments.get(self.fake)
        if not (isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor) and real.requires_grad):
            return original(*args, **kwargs)  # no graph to D: not a training call
        self._identify_d(real)
        self.d_calls += 1
        self._d_calls_since_step += 1
        if self.technique != "aw":
            value = original(*args, **kwargs)
            self.last_d_loss = float(_total(repr(self.d_target), value).detach())
            return value
        aw = self._aw_component()
        # The codebase may backpropagate other terms (R1, LeCam) through D's outputs: D's graph is kept.
        out = self._aw_on_loss(original, bound, aw)
        stats = aw.last
        assert stats is not None
        self.aw_stats = stats
        self.last_d_loss = float(stats.loss_real)  # the part with the fake argument detached: the whole loss
        if self.telemetry is not None:
            self.telemetry.write("aw", self.d_calls, w_real=float(stats.w_real), w_fake=float(stats.w_fake),
                                 case=int(stats.case), score_real=float(stats.score_real),
                                 score_fake=float(stats.score_fake), angle=float(stats.angle),
                                 loss_d=self.last_d_loss)
        return out

    def _aw_component(self) -> AWDiscriminatorLoss:
        """Algorithm 1's component over the parameters D's optimizer holds (built again if that optimizer changes)."""
        opt = self._d_opt() if self._d_opt is not None else None
        if opt is None:
            raise NamedHookError(f"{self.d_target!r}: D's optimizer is gone")
        if self._aw is None or self._aw[0]() is not opt:
            o = self.options
            held = _HeldParameters(p for g in opt.param_groups for p in g["params"])
            self._aw = (weakref.ref(opt), AWDiscriminatorLoss(held, alpha1=o["alpha1"], alpha2=o["alpha2"],
                                                              eps=o["eps"], delta=o["delta"]))
        return self._aw[1]

    # ------------------------------------------------------------------ inline D loss (--d-step)
    def _step_call(self, original: Callable, args: tuple, kwargs: dict) -> Any:
        """The named step function; in its main D phase, each half's backward is captured (``d_order``)."""
        self.d_calls += 1
        self._d_calls_since_step += 1  # any phase of it computes D's gradients (lazy R1 included)
        bound = bind_call(original, args, kwargs)
        if bound is None:
            return original(*args, **kwargs)  # its own error message
        phase = bound.arguments.get(self.phase_arg)
        if phase in self.refused_phases and phase != self.main_phase:
            raise NamedHookError(
                f"{self.d_target!r} ran phase {phase!r}: its real half's backward also carries a regularizer "
                "(R1 not lazy), so the real part's gradient cannot be told apart; use lazy regularization "
                "(a separate regularization phase)")
        if phase != self.main_phase or not torch.is_grad_enabled() or self.technique != "aw":
            return original(*args, **kwargs)
        deltas: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        outputs: list[tuple[torch.nn.Module, torch.Tensor]] = []
        hooks = self
        tensor_backward = torch.Tensor.backward
        inside = [False]

        def backward(tensor: torch.Tensor, *b_args: Any, **b_kwargs: Any) -> Any:
            if inside[0]:
                # Under a TorchFunctionMode (--cpu's redirect, the user's own) Tensor.backward dispatches
                # through the mode back to this attribute: one backward pass, counted once.
                return tensor_backward(tensor, *b_args, **b_kwargs)
            params = hooks._inline_params(tensor)
            before = [None if p.grad is None else p.grad.detach().clone() for p in params]
            inside[0] = True
            try:
                result = tensor_backward(tensor, *b_args, **b_kwargs)
            finally:
                inside[0] = False
            delta = [torch.zeros_like(p) if p.grad is None else
                     (p.grad.detach().clone() if b is None else p.grad.detach() - b) for p, b in zip(params, before)]
            deltas.append((params, delta))
            return result

        def record(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and hooks._trained_whole(module):
                outputs.append((module, output.detach()))

        from torch.nn.modules.module import register_module_forward_hook

        self._optimizer_sets = None
        handle = register_module_forward_hook(record)
        torch.Tensor.backward = backward  # type: ignore[method-assign, assignment]
        try:
            result = original(*args, **kwargs)
        finally:
            torch.Tensor.backward = tensor_backward  # type: ignore[method-assign]
            handle.remove()
        if len(deltas) != len(self.d_order):
            raise NamedHookError(f"{self.d_target!r}: phase {phase!r} ran {len(deltas)} backward pass(es); "
                                 f"--d-order {','.join(self.d_order)} expects {len(self.d_order)} (one per half)")
        d_ids = {id(p) for p in self._d_params}
        d_outputs = [out for module, out in outputs if {id(p) for p in module.parameters()} == d_ids]
        if len(d_outputs) != len(self.d_order):
            raise NamedHookError(f"{self.d_target!r}: phase {phase!r} ran D {len(d_outputs)} time(s); "
                                 f"--d-order {','.join(self.d_order)} expects one forward per half")
        for half, (params, delta), out in zip(self.d_order, deltas, d_outputs):
            if half in self._parts:
                torch._foreach_add_(self._parts[half], delta)
            else:
                self._parts[half] = delta
            scores = torch.sigmoid(self.d_sign * out.to(torch.float64))
            self._scores[half][0] += float(scores.sum())
            self._scores[half][1] += scores.numel()
        return result

    def _inline_params(self, loss: torch.Tensor) -> list[torch.Tensor]:
        """D's parameters (the leaves of the first half's loss held by an optimizer); D's optimizer with them."""
        if not self._d_params:
            leaves = _graph_leaves(loss)
            opt, _ = self._optimizer_of(leaves)
            if opt is None:
                raise NamedHookError(f"{self.d_target!r}: no optimizer holds the parameters of the loss it "
                                     "backpropagates")
            self._d_opt = weakref.ref(opt)
            self._d_params = [p for g in opt.param_groups for p in g["params"]]
            self._d_param_ids = {id(p) for p in self._d_params}
        return self._d_params

    def _trained_whole(self, module: torch.nn.Module) -> bool:
        """Whether ``module``'s parameters are exactly one optimizer's (D, G: the networks, not their layers)."""
        known = self._d_module_ids.get(id(module))
        if known is None:
            ids = frozenset(id(p) for p in module.parameters())
            if self._optimizer_sets is None:  # one scan per call of the step function
                self._optimizer_sets = [frozenset(id(p) for g in o.param_groups for p in g["params"])
                                        for o in self._all_optimizers()]
            known = bool(ids) and ids in self._optimizer_sets
            self._d_module_ids[id(module)] = known
        return known

    def _combine_inline(self) -> None:
        """At D's optimizer step: grad = other + w_r g_r + w_f g_f (Algorithm 1 on the captured parts)."""
        g_r, g_f = self._parts.get("real"), self._parts.get("fake")
        self._parts = {}
        scores, self._scores = self._scores, {"real": [0.0, 0.0], "fake": [0.0, 0.0]}
        if g_r is None or g_f is None:
            return
        f64 = torch.float64
        score_r = torch.tensor(scores["real"][0] / max(scores["real"][1], 1), dtype=f64)
        score_f = torch.tensor(scores["fake"][0] / max(scores["fake"][1], 1), dtype=f64)
        norm_r, norm_f, cos = gradient_geometry_foreach(g_r, g_f)
        if not bool(torch.isfinite(torch.stack([norm_r, norm_f])).all()):
            raise FloatingPointError(f"{self.d_target!r}: non-finite D gradient (aw weights undefined)")
        o = self.options
        w_r, w_f, case = aw_weights_from_geometry(norm_r, norm_f, cos, score_r, score_f, alpha1=o["alpha1"],
                                                  alpha2=o["alpha2"], eps=o["eps"], delta=o["delta"],
                                                  tiny=torch.finfo(self._d_params[0].dtype).tiny)
        with torch.no_grad():
            for p, a, b in zip(self._d_params, g_r, g_f):
                if p.grad is None:
                    continue
                # Linear in the parts: accumulation rounds and a hand-written all-reduce stay correct.
                p.grad.add_(a, alpha=float(w_r) - 1.0).add_(b, alpha=float(w_f) - 1.0)
        self.aw_stats = AWStats(w_real=w_r, w_fake=w_f, score_real=score_r, score_fake=score_f,
                                angle=angle_degrees(cos), case=case, loss_real=torch.zeros((), dtype=f64),
                                loss_fake=torch.zeros((), dtype=f64))
        if self.telemetry is not None:
            self.telemetry.write("aw", self._steps["D"], w_real=float(w_r), w_fake=float(w_f), case=int(case),
                                 score_real=float(score_r), score_fake=float(score_f),
                                 angle=float(angle_degrees(cos)))

    # ------------------------------------------------------------------ G loss
    def _g_call(self, original: Callable, args: tuple, kwargs: dict) -> Any:
        if not torch.is_grad_enabled():
            return original(*args, **kwargs)
        bound = bind_call(original, args, kwargs)
        if bound is None:
            return original(*args, **kwargs)
        fake = bound.arguments.get(self.g_fake or "")
        if not (isinstance(fake, torch.Tensor) and fake.requires_grad):
            return original(*args, **kwargs)
        self._identify_g(fake)
        self.g_calls += 1
        if self.technique != "wegan":
            value = original(*args, **kwargs)
            self.last_g_loss = float(_total(repr(self.g_target), value).detach())
            return value
        assert self._wegan_on_loss is not None
        value = self._wegan_on_loss(original, bound, self._wegan)
        self.last_g_loss = float(_total(repr(self.g_target), value).detach())
        weights = self._wegan.last_weights
        if self.telemetry is not None and weights is not None:
            self.telemetry.write("wegan", self.g_calls, effective_sample_size=float(effective_sample_size(weights)),
                                 weight_variance=float(weight_variance(weights)), max_weight=float(weights.max()),
                                 loss_g=self.last_g_loss)
        return value

    # ------------------------------------------------------------------ optimizer steps
    def _pre_step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        role = self._role(opt)
        if role is None:
            return None
        if role == "D":
            if self._d_calls_since_step == 0 and not self.allow_bare_d_steps:
                original = self._keep[0] if self._keep else None
                held = _holders(original, self._wrappers_list()) if original is not None else []
                raise NamedHookError(
                    f"D's optimizer stepped with no call of {self.d_target!r} through the hook before it"
                    + (f"; the original is still held by: {', '.join(held)}" if held else
                       " (the original was bound before the hook, or torch.compile captured it)")
                    + "; if the codebase takes D steps without its D loss (lazy regularization), pass "
                      "--allow-bare-d-steps")
            self._d_calls_since_step = 0
            if self.inline:
                self._combine_inline()
        if self.scheduler is not None:
            if self._choice is None:
                self._choice = self.scheduler.next_update()
            vetoed = role != self._choice
            if vetoed:
                for group in opt.param_groups:
                    for p in group["params"]:
                        p.grad = None  # the optimizer skips parameters without a gradient: no state change
            self._stepped.add(role)
            if self.telemetry is not None:
                self.telemetry.write("adaptive", self.scheduler.iteration, network=role, vetoed=int(vetoed),
                                     choice=self._choice)
        if self.technique == "ttur":
            self._restore_lrs(opt)
            o = self.options
            base, power = (o["lr_d"], o["d_schedule"]) if role == "D" else (o["lr_g"], o["g_schedule"])
            factor = 1.0 / float(self._steps[role] + 1) ** power if power else 1.0
            self._saved_lrs[id(opt)] = [g["lr"] for g in opt.param_groups]
            for group in opt.param_groups:
                group["lr"] = (group["lr"] if base is None else base) * factor
            if self.telemetry is not None:
                self.telemetry.write("ttur", self._steps[role], network=role, lr=float(opt.param_groups[0]["lr"]))
        return None

    def _restore_lrs(self, opt: torch.optim.Optimizer) -> None:
        saved = self._saved_lrs.pop(id(opt), None)
        if saved is not None:
            for group, lr in zip(opt.param_groups, saved):
                group["lr"] = lr

    def _post_step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        role = self._role(opt)
        if role is None:
            return
        self._steps[role] += 1
        self._restore_lrs(opt)
        if self.scheduler is not None and self._stepped == {"D", "G"}:
            if self.last_d_loss is None or self.last_g_loss is None:
                raise NamedHookError("technique 'adaptive': an iteration ended without both a D and a G loss "
                                     "through the hooks")
            self.scheduler.observe(loss_g=self.last_g_loss, loss_d=self.last_d_loss)
            stats = self.scheduler.last
            assert stats is not None
            if self.telemetry is not None:
                self.telemetry.write("adaptive", stats.iteration, choice=stats.choice, ratio_d=stats.ratio_d,
                                     ratio_g=stats.ratio_g, loss_d=stats.loss_d, loss_g=stats.loss_g)
            self._choice = None
            self._stepped.clear()

    # ------------------------------------------------------------------ exit
    def check_exit(self) -> None:
        """Refuse a run in which no D-loss call went through the hook."""
        if self.d_calls == 0:
            held = _holders(self._keep[0], self._wrappers_list()) if self._keep else []
            where = (f"the original is held by: {', '.join(held)}" if held else
                     f"no module loaded {self.d_target.path} (is it the file the script imports?)")
            raise NamedHookError(f"no call of {self.d_target!r} with gradients went through the hook; {where}")
        if self.technique == "wegan" and self.g_calls == 0:
            raise NamedHookError(f"no call of {self.g_target!r} with gradients went through the hook")
