"""Experiments behind ``gan-optim compare`` and ``gan-optim reproduce``.

Small CPU tasks (``dirac``, ``saddle``, ``gaussians8``, ``digits``, ``angles``),
their metrics, a training loop that composes the five components, plots, the
statistics over seeds (:mod:`.stats`), the paper claims and the renderer of
``docs/RESULTS.md`` (:mod:`.results_doc`). Nothing here downloads anything.
"""

from .metrics import frechet_distance, mmd_rbf, mode_coverage, modes_standard

__all__ = ["frechet_distance", "mmd_rbf", "mode_coverage", "modes_standard"]
