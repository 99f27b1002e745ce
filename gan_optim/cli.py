"""The ``gan-optim`` command (also ``python -m gan_optim``).

Subcommands live in their own modules and are imported only when used, so
``import gan_optim`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from typing import Sequence

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "compare": ("gan_optim_experiments.cli", "run techniques side by side on a small task"),
    "reproduce": ("gan_optim_experiments.cli", "run one paper claim's exact setting and print a verdict"),
    "bench": ("gan_optim_benchmarks.bench", "time each component against a hand-written plain step"),
    "biggan": ("gan_optim.adapters.launch", "run BigGAN-PyTorch's train.py patched with a technique"),
    "autogan": ("gan_optim.adapters.launch", "run AutoGAN's train.py patched with a technique"),
    "run": ("gan_optim.adapters.run", "run any GAN codebase with a technique, by naming its loss functions"),
}


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} (must be >= 1)")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{value} (must be a finite number > 0)")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{value} (must be a finite number >= 0)")
    return value


def _usage() -> str:
    lines = ["usage: gan-optim <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`gan-optim COMMAND --help` describes each command; `gan-optim --version` prints the version.",
              "The main job, every technique on the eight Gaussians: gan-optim compare"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A bare command prints help instead of starting a multi-minute run.
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__
        print(f"gan-optim {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        print(f"gan-optim: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return int(module.main(command, rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
