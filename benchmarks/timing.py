"""Interleaved timing and per-step peak memory, on the CPU and on CUDA."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

__all__ = ["Timing", "peak_step_memory", "time_interleaved"]

Step = Callable[[], None]

# ---------------------------------------------------------------- measurement
def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass(frozen=True)
class Timing:
    """Medians of one interleaved comparison, per call (seconds) and as per-pair ratios."""

    plain_seconds: float
    candidate_seconds: float
    ratio: float                   #: median per-pair ratio of wall-clock times
    cpu_ratio: float               #: median per-pair ratio of this thread's CPU times (``time.thread_time``)
    calls_per_sample: int


def time_interleaved(plain: Step, candidate: Step, *, repeats: int, warmup: int, device: torch.device,
                     min_sample_seconds: float = 0.0) -> Timing:
    """Time ``plain`` and ``candidate`` interleaved, P C P C ..., after ``warmup`` pairs.

    Each sample is ``k`` consecutive calls of one closure, bracketed by a device
    synchronisation so that queued GPU work is charged to the call that queued
    it; ``k`` is the smallest count for which a plain sample lasts at least
    ``min_sample_seconds`` (1 for steps longer than that). Batching millisecond
    steps keeps a sample from being a single time slice of a shared CPU: with
    another process on the core, preemptions fall at the scheduler's period,
    which can alias with the pair's period and land on the same side of every
    pair.

    Besides wall time (``time.perf_counter``), the calling thread's CPU time
    (``time.thread_time``) is recorded: with ``torch.set_num_threads(1)`` all
    of a CPU step runs on this thread, and its CPU time does not count the time
    the thread waited for a core, so ``cpu_ratio`` is the steadier one on a
    loaded machine. On a GPU, wall time is the one that means something.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"Invalid repeats/warmup: {repeats}/{warmup}")
    sync = _synchronizer(device)
    for _ in range(warmup):
        plain()
        candidate()
    sync()
    start = time.perf_counter()
    plain()
    sync()
    one_call = max(time.perf_counter() - start, 1e-9)
    calls = max(1, math.ceil(min_sample_seconds / one_call))

    def sample(fn: Step) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        sync()
        return (time.perf_counter() - wall) / calls, (time.thread_time() - cpu) / calls

    plain_wall, plain_cpu, cand_wall, cand_cpu = [], [], [], []
    for _ in range(repeats):
        wall, cpu = sample(plain)
        plain_wall.append(wall)
        plain_cpu.append(cpu)
        wall, cpu = sample(candidate)
        cand_wall.append(wall)
        cand_cpu.append(cpu)
    wall_ratios = [c / p for p, c in zip(plain_wall, cand_wall)]
    # thread_time ticks coarsely on some systems; a zero reading gives no ratio.
    cpu_ratios = [c / p for p, c in zip(plain_cpu, cand_cpu) if p > 0 and c > 0]
    return Timing(statistics.median(plain_wall), statistics.median(cand_wall), statistics.median(wall_ratios),
                  statistics.median(cpu_ratios) if cpu_ratios else float("nan"), calls)


def _replayed_peak(events: list, boundary_ns: int) -> int:
    """Peak running total of allocator events after ``boundary_ns``, above the total at ``boundary_ns``."""
    total = at_boundary = peak = 0
    crossed = False
    for event in events:
        if not crossed and event.start_ns() >= boundary_ns:
            crossed, at_boundary, peak = True, total, total
        total += event.nbytes()
        if crossed:
            peak = max(peak, total)
    return (peak - at_boundary) if crossed else 0


_MEASURED_STEP = "gan_optim_benchmarks.bench.measured_step"


def peak_step_memory(step: Step, device: torch.device, *, quiet: bool = False) -> int:
    """Bytes of tensor memory allocated during one ``step()`` above what was live at its start, at the peak.

    ``quiet=True`` sends file descriptor 2 to /dev/null while the CPU profiler
    runs: Kineto writes its start/stop lines there from C++, past Python's
    ``sys.stderr``. (The step has already run many times by then, so nothing it
    would report is lost.)
    """
    if device.type == "cuda":
        step()  # so that what the previous step left behind is this step's starting state
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    from torch.profiler import ProfilerActivity, profile, record_function

    # Kineto's "gpuGetDeviceCount failed" error on a machine without a GPU is noise here.
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    with _native_stderr_silenced(quiet):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
            # A named range marks where the measured step starts, on the profiler's own clock.
            with record_function(_MEASURED_STEP):
                step()
    events = prof.profiler.kineto_results.events()
    boundary_ns = min(e.start_ns() for e in events if e.name() == _MEASURED_STEP)
    allocations = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    return _replayed_peak(allocations, boundary_ns)


@contextlib.contextmanager
def _native_stderr_silenced(active: bool) -> Iterator[None]:
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
