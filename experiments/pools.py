"""Where compare's and reproduce's runs execute: worker processes that never fork the caller, and the device.

A process that has used CUDA or run autograd cannot be forked safely: CUDA refuses to initialise again in
a forked child, and autograd's worker threads do not survive a fork (and Python 3.14 no longer forks by
default on Linux). So every pool here starts its workers from a fork server where the platform has one
(a fresh interpreter that has imported torch and the experiments once and done no torch work, so each
worker starts in milliseconds), and as fresh interpreters (``spawn``) elsewhere. The caller is never
forked; a worker gets its job by pickle. As with any pool that does not fork, a script that starts one
(``run_compare(..., workers=2)``) needs the ``if __name__ == "__main__":`` guard: a worker imports the
script's main module again.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import sys

import torch

__all__ = ["DEVICE_HELP", "pool_context", "resolve_device"]

# What the fork server imports before it forks any worker (the modules whose functions the pools run).
_PRELOAD = ["gan_optim_experiments.runner", "gan_optim_experiments.paper_gaussians8"]

DEVICE_HELP = "cpu (default), cuda or cuda:N"


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method of every worker pool: ``forkserver`` on Linux, ``spawn`` elsewhere; never ``fork``."""
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Only read when the fork server starts (once per process): later calls change nothing.
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`: ``cpu``, ``cuda`` or ``cuda:N`` that exists here."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"Invalid device: expected a str or torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"Invalid device: {str(device)!r} (expected {DEVICE_HELP})") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"Invalid device: {str(device)!r} (expected {DEVICE_HELP})")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Invalid device: {str(device)!r} (CUDA is not available here)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"Invalid device: {str(device)!r} (this machine has {torch.cuda.device_count()} "
                             "CUDA device(s))")
    return dev
