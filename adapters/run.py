"""``gan-optim run``: any GAN codebase, unmodified, with a technique applied through its named loss functions.

::

    gan-optim run --technique aw --d-loss src/utils/losses.py:d_hinge --real d_logit_real --fake d_logit_fake \\
                  [--g-loss src/utils/losses.py:g_hinge] -- python src/main.py <its own flags>

Everything after ``--`` is the command you would run: ``python script.py
args`` (or ``python -m package.module args``). The script runs in this process
through ``runpy`` as ``__main__``, its folder first on ``sys.path`` as Python
puts it; the hooks of :mod:`gan_optim.adapters.named` are installed first and
removed afterwards. A refusal prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from typing import Any, Callable, Sequence

import torch
from torch.overrides import TorchFunctionMode

from .named import TECHNIQUES, NamedHookError, NamedHooks

__all__ = ["main", "parse"]

_TECHNIQUE_OPTIONS = ("alpha1", "alpha2", "eps", "delta", "eta", "lam", "max_consecutive", "lr_g", "lr_d",
                      "g_schedule", "d_schedule")


def _number(text: str) -> Any:
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a number")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gan-optim run",
        description="Run a GAN codebase's own command, unmodified, with a gan_optim technique applied through "
                    "the loss functions you name.",
        epilog="Options per technique: aw: --alpha1 --alpha2 --eps --delta; wegan: --eta (needs --g-loss); "
               "adaptive: --lam --max-consecutive (needs --g-loss); ttur: --lr-g --lr-d --g-schedule --d-schedule. "
               "The command after `--` is `python script.py args` or `python -m module args`.")
    p.add_argument("--technique", required=True, choices=TECHNIQUES)
    p.add_argument("--d-loss", default=None, metavar="FILE:FUNCTION", help="the D loss function, e.g. "
                   "src/utils/losses.py:d_hinge")
    p.add_argument("--real", default=None, metavar="ARG", help="its argument holding D's output on real samples")
    p.add_argument("--fake", default=None, metavar="ARG", help="its argument holding D's output on fake samples")
    p.add_argument("--g-loss", default=None, metavar="FILE:FUNCTION", help="the G loss function (wegan, adaptive)")
    p.add_argument("--g-fake", default=None, metavar="ARG",
                   help="the G loss's argument holding D's output on fakes (default: --fake's name if it has it, "
                        "else its first argument)")
    p.add_argument("--d-sign", type=int, default=1, choices=(1, -1),
                   help="-1 for a codebase whose D scores fakes high (its hinge is negated)")
    p.add_argument("--allow-bare-d-steps", action="store_true",
                   help="accept D optimizer steps with no D-loss call before them (lazy regularization steps); "
                        "refused by default")
    p.add_argument("--d-step", default=None, metavar="FILE:FUNCTION",
                   help="for a D loss written inline (aw only): the function whose main D phase backpropagates the "
                        "two halves separately, e.g. training/loss.py:StyleGAN2Loss.accumulate_gradients")
    p.add_argument("--d-order", default="fake,real", metavar="HALVES",
                   help="with --d-step: the order of the halves' backward passes (default: fake,real)")
    p.add_argument("--d-phase", default="phase=Dmain", metavar="ARG=VALUE",
                   help="with --d-step: its argument and value that mark the main D phase (default: phase=Dmain); "
                        "phase Dboth (R1 inside the real half) is refused")
    p.add_argument("--telemetry", default="gan_optim_run.csv", metavar="CSV",
                   help="CSV of the components' step statistics (default: gan_optim_run.csv in the working "
                        "directory; 'none' to write none)")
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="also write them as TensorBoard scalars")
    p.add_argument("--cpu", action="store_true",
                   help="run CUDA-only code on the CPU (CUDA devices, .cuda() and torch.cuda.FloatTensor go to the "
                        "CPU)")
    p.add_argument("--seed", type=int, default=None, help="seed Python's, NumPy's and torch's generators first")
    group = p.add_argument_group("technique options")
    for name in _TECHNIQUE_OPTIONS:
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=_number, default=argparse.SUPPRESS,
                           metavar="VALUE")
    return p


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any], list[str]]:
    """Our arguments, the technique options given, and the command after ``--``."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    ns = _parser().parse_args(argv[:cut])
    options = {k: v for k, v in vars(ns).items() if k in _TECHNIQUE_OPTIONS}
    return ns, options, argv[cut + 1:]


def _command(command: list[str]) -> tuple[str, str, list[str]]:
    """``("path", script, args)`` or ``("module", name, args)`` from ``python ...`` (the interpreter is ours)."""
    if not command:
        raise NamedHookError("no command after `--` (expected: -- python script.py <its arguments>)")
    if os.path.basename(command[0]).startswith("python") or command[0] == sys.executable:
        command = command[1:]
    if command[:1] == ["-m"] and len(command) > 1:
        return "module", command[1], command[2:]
    if not command or command[0].startswith("-"):
        raise NamedHookError(f"cannot run {' '.join(command) or 'python'}: expected a script path or -m module")
    script = command[0]
    if not os.path.isfile(script):
        raise NamedHookError(f"no script {script!r}")
    return "path", script, command[1:]


class _IndexedCudaOnCpu(TorchFunctionMode):
    """A CUDA device given by index (``.to(0)``, ``device=local_rank``) is the CPU too; pinning host memory
    for a copy to the GPU (``.pin_memory()``) keeps the tensor as it is."""

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.Tensor.pin_memory:
            return args[0]
        if func is torch.Tensor.to and len(args) > 1 and type(args[1]) is int:
            args = (args[0], "cpu", *args[2:])
        if type(kwargs.get("device")) is int:
            kwargs = {**kwargs, "device": "cpu"}
        return func(*args, **kwargs)


def _on_cpu() -> Callable[[], None]:
    """The launchers' CPU redirect, plus what codebases that address GPUs by index need: device indices
    mean the CPU, and ``torch.cuda`` answers one device (current 0) whose set/sync/cache calls do nothing
    (while ``is_available()`` stays False, for torch's own checks).
    Returns how to undo it all."""
    from . import _runtime

    base = _runtime.on_cpu()
    mode = _IndexedCudaOnCpu()
    mode.__enter__()
    saved = {name: getattr(torch.cuda, name) for name in _CUDA_QUERIES}
    for name, value in _CUDA_QUERIES.items():
        setattr(torch.cuda, name, value)

    def undo() -> None:
        for name, value in saved.items():
            setattr(torch.cuda, name, value)
        mode.__exit__(None, None, None)
        base.undo()
    return undo


def _nothing() -> Callable[..., None]:
    # One function object per name: torch._dynamo refuses one object under two torch names.
    def nothing(*args: Any, **kwargs: Any) -> None:
        return None
    return nothing


class _Event:
    """``torch.cuda.Event`` on the CPU: recording and waiting do nothing, and no time elapses between two."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, *args: Any, **kwargs: Any) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: Any) -> float:
        return 0.0


_CUDA_QUERIES: dict[str, Callable[..., Any]] = {
    # torch's own checks ask is_available (with PYTORCH_NVML_BASED_CUDA_CHECK=1, which Lightning sets, it
    # reads device_count): no CUDA, so an optimizer step does not look for a CUDA stream
    "is_available": lambda: False,
    "current_device": lambda: 0, "device_count": lambda: 1, "set_device": _nothing(), "synchronize": _nothing(),
    "empty_cache": _nothing(), "manual_seed": _nothing(), "manual_seed_all": _nothing(),
    # timing and memory statistics (stylegan2-ada's training loop reports them every tick)
    "Event": _Event, "current_stream": _nothing(), "max_memory_allocated": lambda *a, **k: 0,
    "reset_peak_memory_stats": _nothing(),
}


def _phase(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise NamedHookError(f"Invalid --d-phase: {text!r} (expected ARG=VALUE, e.g. phase=Dmain)")
    return name, value


def main(command: str, argv: Sequence[str]) -> int:
    """Entry point used by :mod:`gan_optim.cli`; returns the script's exit status (2 for a refusal)."""
    ns, options, rest = parse(argv)
    try:
        kind, target, script_args = _command(rest)
        hooks = NamedHooks(ns.technique, d_loss=ns.d_loss, real=ns.real, fake=ns.fake, g_loss=ns.g_loss,
                           g_fake=ns.g_fake, d_sign=ns.d_sign, d_step=ns.d_step, options=options,
                           allow_bare_d_steps=ns.allow_bare_d_steps,
                           d_order=tuple(ns.d_order.split(",")), d_phase=_phase(ns.d_phase),
                           telemetry=None if ns.telemetry.lower() == "none" else ns.telemetry,
                           tensorboard=ns.tensorboard)
    except NamedHookError as err:
        print(f"gan-optim run: {err}", file=sys.stderr)
        return 2
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    # A codebase's logger may take over sys.stdout / sys.stderr (stylegan2-ada's sends both to stdout and a
    # file); our one-line refusal goes to the stderr we were given.
    saved_streams = sys.stdout, sys.stderr
    cpu: Any = None
    code = 0
    try:
        if kind == "path":
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            sys.argv = [target, *script_args]
        else:
            sys.path.insert(0, os.getcwd())
            sys.argv = [target, *script_args]
        if ns.seed is not None:
            from .launch import _seed_everything

            _seed_everything(ns.seed)
        if ns.cpu:
            cpu = _on_cpu()
        print(f"gan-optim run: {' '.join(rest)} with technique {ns.technique} through {hooks.d_target!r}",
              file=sys.stderr)
        with hooks:
            try:
                if kind == "path":
                    runpy.run_path(target, run_name="__main__")
                else:
                    runpy.run_module(target, run_name="__main__", alter_sys=True)
            except SystemExit as exc:  # the script's own sys.exit()
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if code != 0:
                    raise
    except NamedHookError as err:
        sys.stdout, sys.stderr = saved_streams
        print(f"gan-optim run: {err}", file=sys.stderr)
        return 2
    except SystemExit:
        return code
    finally:
        if cpu is not None:
            cpu()
        sys.path[:] = saved_path
        sys.argv = saved_argv
    return code
