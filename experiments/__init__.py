"""Experiments behind ``gan-optim compare`` and ``gan-optim reproduce``.

Small CPU tasks (``dirac``, ``saddle``, ``gaussians8``, ``digits``, ``angles``),
their metrics, a training loop that composes the five components, plots, and
the paper claims of ``docs/RESULTS.md``. Nothing here downloads anything.
"""

from .metrics import frechet_distance, mmd_rbf, mode_coverage

__all__ = ["frechet_distance", "mmd_rbf", "mode_coverage"]
