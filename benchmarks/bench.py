"""``gan-optim bench``: each component's step time and peak memory against a hand-written plain step.

For every (component, model) pair the runner builds two closures on the *same*
models, optimizers and batch:

- ``plain``: the step a user would write without the component, spelled out
  here by hand (hinge D loss, non-saturating G loss, Adam);
- ``candidate``: the same step with the component dropped in.

They are timed interleaved in one process (plain, candidate, plain, candidate,
...), each sample with :func:`time.perf_counter`, after a warm-up; a sample is
one call, or for millisecond steps enough consecutive calls to last
``min_sample_seconds`` (see :func:`time_interleaved`). The reported ``ratio``
is the median over the repeats of the per-pair ratio ``t_candidate / t_plain``
(a pair is two adjacent samples, so a slow spell of a shared machine slows both
and cancels out), divided by the number of work units the candidate does per
call (free-adv replays). ``cpu_ratio`` is the same from the thread's CPU time
(``time.thread_time``), which does not count time spent waiting for a core.

Memory (``memory_ratio``) is the peak of tensor memory *allocated during one
step above what was live when the step started*, candidate over plain (per
call: for free-adv, the whole ``step`` with all its replays):

- CPU: tracemalloc does not see tensor storage (PyTorch's CPU allocator calls
  ``posix_memalign`` directly, not Python's allocator), so the runner records
  the allocator's allocation and free events with
  ``torch.profiler.profile(profile_memory=True)`` over two consecutive steps
  and replays them in order; the peak of the running total during the second
  step, minus the total at its start, is the step's working set. (Two steps,
  because a free of a block allocated before profiling began carries no size;
  everything the second step frees was allocated inside the profile.)
- GPU: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` at
  the step's start, after ``reset_peak_memory_stats()``.

Python-object memory (the scheduler's floats, AWStats) is not counted; it is
bytes, not megabytes. The fake batch is generated once: D-step rows time D's
step on a fixed ``x_fake``, as in a loop that computes ``G(z).detach()`` once
for the D step (the same ``G`` forward on both sides would only dilute the
ratio).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Callable, Sequence

import torch

from gan_optim.cli import non_negative_float, positive_int as _positive_int

from .cases import COMPONENTS, make_case
from .models import BIGGAN_DIR_ENV, FULL, GPU, MODELS, OPTIONAL_MODELS, QUICK, SIZES, BenchSizes, build_models
from .ops import count_ops
from .report import BenchResult, format_table, write_csv
from .timing import Timing, peak_step_memory, time_interleaved

__all__ = [
    "BenchResult",
    "BenchSizes",
    "COMPONENTS",
    "FULL",
    "GPU",
    "MODELS",
    "QUICK",
    "SIZES",
    "Timing",
    "build_models",
    "count_ops",
    "format_table",
    "main",
    "peak_step_memory",
    "run_bench",
    "steady_state_ops",
    "time_interleaved",
    "write_csv",
]

def run_bench(sizes: BenchSizes, *, models: Sequence[str] = MODELS, components: Sequence[str] = COMPONENTS,
              device: str | torch.device = "cpu", measure_memory: bool = True, measure_time: bool = True,
              progress: Callable[[str], None] | None = None, quiet_profiler: bool = False,
              ) -> list[BenchResult]:
    """Time (and measure the memory and count the operators of) every component on every model.

    One :class:`BenchResult` per pair. The operator counts are those of one
    step in the steady state (after one call of each closure, so that Adam's
    state exists and one-time work is done): deterministic, see
    :mod:`gan_optim_benchmarks.ops`. ``measure_time=False`` leaves the time
    fields NaN (``--ops-only``). ``progress(message)`` is called as each row
    starts; ``quiet_profiler`` is passed to :func:`peak_step_memory` as ``quiet``.
    """
    device = torch.device(device)
    results = []
    for model in models:
        for component in components:
            if progress is not None:
                progress(f"{component} on {model}")
            # Fresh models per row: optimizer state and BatchNorm statistics of one row do not leak into the next.
            s = build_models(model, sizes, device)
            plain, candidate, units = make_case(component, s)
            plain_ops, candidate_ops = steady_state_ops(plain, candidate)
            if measure_time:
                timing = time_interleaved(plain, candidate, repeats=sizes.repeats, warmup=sizes.warmup,
                                          device=device, min_sample_seconds=sizes.min_sample_seconds)
            else:
                timing = Timing(*(float("nan"),) * 4, calls_per_sample=0)
            if measure_memory:
                plain_peak = peak_step_memory(plain, device, quiet=quiet_profiler)
                candidate_peak = peak_step_memory(candidate, device, quiet=quiet_profiler)
                memory_ratio = candidate_peak / plain_peak if plain_peak > 0 else float("nan")
            else:
                plain_peak = candidate_peak = 0
                memory_ratio = float("nan")
            results.append(BenchResult(component, model, timing.ratio / units, memory_ratio, timing.cpu_ratio / units,
                                       timing.plain_seconds, timing.candidate_seconds / units,
                                       candidate_peak - plain_peak, s.d_param_bytes, quick=sizes.quick,
                                       plain_ops=plain_ops, candidate_ops=candidate_ops, units=units))
    return results


def steady_state_ops(plain: Callable[[], None], candidate: Callable[[], None]) -> tuple[int, int]:
    """Operators of one plain step and one candidate call, each counted on its second call."""
    plain()
    candidate()
    return count_ops(plain), count_ops(candidate)


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark runs on cpu or cuda")
    return device


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Time each gan_optim component against a hand-written "
                                "plain step on the same model and batch (ratio = component / plain).")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", choices=tuple(SIZES), default=None,
                      help="quick: small models, few repeats (seconds); full (default): the CPU sizes; gpu: the "
                           "sizes trained on one GPU (DCGAN width 64, ResNet-SN 128, BigGAN D_ch 64, the MLP), "
                           "batch 64 and then 256 per half, rows named model@batch")
    size.add_argument("--quick", action="store_true", help="the same as --size quick")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of the table")
    p.add_argument("--device", type=_device, default="cpu", help="torch device (default cpu); on cuda memory is measured "
                   "with torch.cuda.max_memory_allocated")
    p.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(MODELS + OPTIONAL_MODELS)} "
                   "(default: all; biggan only with --biggan-dir)")
    p.add_argument("--biggan-dir", default=None, metavar="PATH",
                   help=f"a BigGAN-PyTorch checkout: adds the biggan row, its own CIFAR D (or set {BIGGAN_DIR_ENV})")
    p.add_argument("--components", default=",".join(COMPONENTS), help="comma-separated subset of %(default)s")
    p.add_argument("--repeats", type=_positive_int, default=None,
                   help="timed pairs per row (default 5 quick, 21 full)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="torch CPU threads (default 1: steadier timings on a shared machine)")
    p.add_argument("--min-sample-ms", type=non_negative_float, default=None,
                   help="repeat short steps within a sample until it lasts this long (default 5 quick, 50 full)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--ops-only", action="store_true", help="only count the aten operators per step (no timing, "
                   "no memory): deterministic, seconds")
    p.add_argument("--csv", default=None, metavar="PATH", help="also write the rows to this CSV file")
    p.add_argument("--progress", action="store_true", help="name each row on stderr as it starts")
    return p


def _split_choices(name: str, text: str, allowed: Sequence[str]) -> list[str]:
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        print(f"gan-optim bench: invalid --{name} {text!r}; choose from {', '.join(allowed)}", file=sys.stderr)
        raise SystemExit(2)
    return chosen


def main(command: str = "bench", argv: Sequence[str] | None = None) -> int:
    """``gan-optim bench [--quick] [--json] [--device DEV] ...``: prints the table (or JSON) on stdout."""
    args = _parser(f"gan-optim {command}").parse_args(list(sys.argv[1:] if argv is None else argv))
    size_name = "quick" if args.quick else (args.size or "full")
    settings = list(SIZES[size_name])
    if args.repeats is not None:
        settings = [dataclasses.replace(s, repeats=args.repeats) for s in settings]
    if args.min_sample_ms is not None:
        settings = [dataclasses.replace(s, min_sample_seconds=args.min_sample_ms / 1e3) for s in settings]
    sizes = settings[0]
    device = args.device
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gan-optim bench: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    if args.biggan_dir is not None:
        if not os.path.isfile(os.path.join(args.biggan_dir, "BigGAN.py")):
            print(f"gan-optim bench: --biggan-dir {args.biggan_dir!r} is not a BigGAN-PyTorch checkout "
                  "(no BigGAN.py there)", file=sys.stderr)
            return 2
        os.environ[BIGGAN_DIR_ENV] = os.path.abspath(args.biggan_dir)
    has_biggan = bool(os.environ.get(BIGGAN_DIR_ENV))
    default_models = MODELS + (OPTIONAL_MODELS if has_biggan else ())
    if args.models and "biggan" in args.models.split(",") and not has_biggan:
        print("gan-optim bench: the biggan row needs a BigGAN-PyTorch checkout: pass --biggan-dir PATH "
              f"(or set {BIGGAN_DIR_ENV})", file=sys.stderr)
        return 2
    models = _split_choices("models", args.models or ",".join(default_models), default_models)
    torch.set_num_threads(max(1, args.threads))
    progress = (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)) if args.progress else None
    components = _split_choices("components", args.components, COMPONENTS)
    results = []
    for setting in settings:
        rows = run_bench(setting, models=models, components=components, device=device,
                         measure_memory=not (args.no_memory or args.ops_only), measure_time=not args.ops_only,
                         progress=progress, quiet_profiler=True)
        if len(settings) > 1:  # one table of several batch sizes: the batch goes with the model's name
            rows = [dataclasses.replace(r, model=f"{r.model}@{setting.batch}") for r in rows]
        results += rows
    if args.csv is not None:
        try:
            write_csv(results, args.csv)
        except OSError as e:
            print(f"gan-optim bench: cannot write --csv {args.csv!r}: {e.strerror}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        where = f"{device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                    f", {torch.get_num_threads()} thread(s)")
        timed = ("operator counts only" if args.ops_only else
                 f"median of {sizes.repeats} interleaved pairs after {sizes.warmup} warm-up, "
                 f"samples >= {1e3 * sizes.min_sample_seconds:g} ms")
        batches = " and ".join(str(s.batch) for s in settings)
        print(f"gan-optim bench ({size_name}, {where}, batch {batches} per half, {timed})")
        print(format_table(results))
    return 0
