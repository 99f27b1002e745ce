"""Time this gan_optim's AW step against another source tree's, interleaved in one process.

    git worktree add /tmp/old <revision>      # or any directory holding a gan_optim/ package
    python -m gan_optim_benchmarks.versus /tmp/old --models mlp,dcgan32 --csv versus.csv

The other tree's ``gan_optim`` is imported under another name, so both versions
run on the same models (built alike from the same seed), the same batch and the
same thread, sample by sample: ``ratio`` is the median per-pair ratio of this
tree's step to the other's (below 1: this one is faster), for
``aw(x_real, x_fake)`` (``aw``) and ``aw.from_outputs`` on one concatenated pass
(``aw-concat``), each with its optimizer step.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Sequence

import torch

from gan_optim.aw import AWDiscriminatorLoss

from .models import MODELS, QUICK, FULL, BenchSizes, build_models, _Setup
from .timing import time_interleaved

__all__ = ["main"]


def _load_other(tree: str) -> Any:
    """The ``AWDiscriminatorLoss`` class of the ``gan_optim`` package in ``tree``, imported as another package."""
    source = os.path.join(tree, "gan_optim")
    if not os.path.isfile(os.path.join(source, "aw.py")):
        raise ValueError(f"Invalid tree: {tree!r} has no gan_optim/aw.py")
    target = tempfile.mkdtemp(prefix="gan_optim_versus_")
    shutil.copytree(source, os.path.join(target, "gan_optim_other"))
    sys.path.insert(0, target)
    return importlib.import_module("gan_optim_other.aw").AWDiscriminatorLoss


def _step(s: _Setup, cls: Any, concat: bool) -> Callable[[], None]:
    aw = cls(s.D, loss="hinge")
    n_fake = s.x_fake.shape[0]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        if concat:
            out = s.D(torch.cat([s.x_fake, s.x_real])).reshape(-1)
            aw.from_outputs(out[n_fake:], out[:n_fake]).backward()
        else:
            aw(s.x_real, s.x_fake).backward()
        s.opt_d.step()
    return step


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gan_optim_benchmarks.versus",
                                description="AW's step time, this gan_optim against another source tree's.")
    p.add_argument("tree", help="a directory holding the other gan_optim/ package")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--rows", default="aw,aw-concat")
    p.add_argument("--full", action="store_true", help="the full sizes (default --quick's)")
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--csv", default=None, metavar="PATH")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        other = _load_other(args.tree)
    except ValueError as e:
        print(f"versus: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    sizes: BenchSizes = FULL if args.full else QUICK
    rows = []
    for model in args.models.split(","):
        for row in args.rows.split(","):
            a, b = build_models(model, sizes, torch.device("cpu")), build_models(model, sizes, torch.device("cpu"))
            t = time_interleaved(_step(a, other, row == "aw-concat"), _step(b, AWDiscriminatorLoss, row == "aw-concat"),
                                 repeats=args.repeats, warmup=3, device=torch.device("cpu"),
                                 min_sample_seconds=sizes.min_sample_seconds)
            rows.append({"row": row, "model": model, "size": "full" if args.full else "quick",
                         "other_ms": round(1e3 * t.plain_seconds, 3), "this_ms": round(1e3 * t.candidate_seconds, 3),
                         "ratio": round(t.ratio, 3), "cpu_ratio": round(t.cpu_ratio, 3)})
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
