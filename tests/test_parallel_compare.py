"""compare's runs in parallel processes give the rows of a serial run."""

import math

import pytest
import torch

from gan_optim_experiments.runner import run_compare
from gan_optim_experiments.tasks import make_task


def _without_clock(rows):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_parallel_runs_equal_serial_runs_in_serial_order():
    task = make_task("gaussians8")
    techniques, seeds = ["baseline", "aw", "adaptive"], [0, 1]
    serial = run_compare(task, techniques, seeds, 12, eval_every=6, progress=False, workers=1)
    parallel = run_compare(task, techniques, seeds, 12, eval_every=6, progress=False, workers=2)
    assert [(r.technique, r.seed) for r in parallel] == [(t, s) for t in techniques for s in seeds]
    for a, b in zip(serial, parallel):
        assert (a.technique, a.seed, a.d_updates, a.g_updates) == (b.technique, b.seed, b.d_updates, b.g_updates)
        for ra, rb in zip(_without_clock(a.rows), _without_clock(b.rows)):
            assert ra.keys() == rb.keys()
            for k in ra:
                va, vb = ra[k], rb[k]
                if isinstance(va, float) and math.isnan(va):
                    assert math.isnan(vb), k
                else:
                    assert va == vb, (k, va, vb)
        torch.testing.assert_close(a.samples, b.samples, atol=0, rtol=0)


def test_a_workers_error_reaches_the_caller():
    task = make_task("gaussians8")
    with pytest.raises(ValueError, match="learning rate"):  # raised by Adam inside a worker
        run_compare(task, ["baseline", "aw"], [0], 4, eval_every=2, progress=False, workers=2, lr=-1.0)
