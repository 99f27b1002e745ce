"""Worker pools never fork the caller, tasks rebuild in a worker, and --device is checked and passed on."""

import dataclasses
import logging
import math
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from gan_optim.cli import main as cli_main
from gan_optim_experiments import paper_gaussians8 as P
from gan_optim_experiments.pools import pool_context, resolve_device
from gan_optim_experiments.runner import run_compare, train_run
from gan_optim_experiments.tasks import make_task

# A parent that has run autograd (as on a GPU machine before a pool starts) and cannot fork at all: both
# compare runners with 2 workers must still succeed. With fork-based pools os.fork is the first thing called.
FORKLESS = textwrap.dedent("""
    import os, sys
    import torch
    from gan_optim.cli import main

    w = torch.ones(3, requires_grad=True)
    (w * 2).sum().backward()

    def no_fork():
        raise RuntimeError("this process must not fork")

    os.fork = no_fork
    out = sys.argv[1]
    tiny = ["--steps", "2", "--eval-every", "2", "--seeds", "1", "--techniques", "baseline,aw", "--workers", "2",
            "--no-progress", "--device", "cpu"]
    assert main(["compare", "--protocol", "short", *tiny, "--out", out + "/short"]) == 0
    assert main(["compare", "--protocol", "quick", "--batch", "16", *tiny, "--out", out + "/quick"]) == 0
""")


def test_compare_runs_its_workers_in_a_process_that_cannot_fork(tmp_path):
    done = subprocess.run([sys.executable, "-c", FORKLESS, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for protocol, evaluations in (("short", 2), ("quick", 1)):  # short evaluates at 0 and 2, quick at 2
        rows = (tmp_path / protocol / "results.csv").read_text().splitlines()
        assert len(rows) == 1 + 2 * evaluations


def test_the_start_method_is_never_fork():
    assert pool_context().get_start_method() in ("forkserver", "spawn")


def _rows(results):
    return [[{k: v for k, v in r.items() if k != "wall_s"} for r in res.rows] for res in results]


def _same(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all((math.isnan(x[k]) and math.isnan(y[k])) if isinstance(x[k], float)
                                     and math.isnan(x[k]) else x[k] == y[k] for k in x)
        for ra, rb in zip(a, b) for x, y in zip(ra, rb))


@pytest.mark.parametrize("options", [{}, {"radius": 3.0, "std": 1.0, "hidden": 32, "layers": 2, "z_dim": 2}])
def test_a_recipe_rebuilds_the_same_task(options):
    task = make_task("gaussians8", **options)
    name, kwargs = pickle.loads(pickle.dumps(task.recipe))
    again = make_task(name, **kwargs)
    assert again.info["std"] == task.info["std"] and again.z_dim == task.z_dim
    torch.testing.assert_close(again.info["ref"], task.info["ref"], atol=0, rtol=0)
    torch.manual_seed(0)
    g1 = task.make_g()
    torch.manual_seed(0)
    g2 = again.make_g()
    for p1, p2 in zip(g1.parameters(), g2.parameters(), strict=True):
        torch.testing.assert_close(p1, p2, atol=0, rtol=0)
    paper_task = P.compare_task({"iterations": 4})
    assert make_task(paper_task.recipe[0], **paper_task.recipe[1]).info["std"] == P.PROTOCOL["std"]


def test_a_task_without_recipe_that_does_not_pickle_runs_serially(caplog):
    task = make_task("gaussians8")
    custom = dataclasses.replace(task, recipe=None)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(custom)
    with caplog.at_level(logging.WARNING):
        got = run_compare(custom, ["baseline"], [0, 1], 3, eval_every=3, progress=False, workers=2)
    assert "one after another" in caplog.text
    want = run_compare(task, ["baseline"], [0, 1], 3, eval_every=3, progress=False, workers=1)
    assert _same(_rows(got), _rows(want))


def test_device_cpu_is_the_default_run():
    task = make_task("gaussians8")
    a = train_run(task, "aw+ttur", 0, 3, eval_every=3)
    b = train_run(task, "aw+ttur", 0, 3, eval_every=3, device="cpu")
    c = train_run(task, "aw+ttur", 0, 3, eval_every=3, device=torch.device("cpu"))
    assert _same(_rows([a]), _rows([b])) and _same(_rows([a]), _rows([c]))
    small = {"iterations": 4, "every": 2, "batch": 16, "n_samples": 50}
    r1, r2 = P.run("aw", 0, small), P.run("aw", 0, small, device="cpu")
    for it in r1["snapshots"]:
        assert (r1["snapshots"][it] == r2["snapshots"][it]).all()


@pytest.mark.parametrize("device, message", [("tpu", "expected cpu"), ("cuda:x", "expected cpu"),
                                             ("gpu", "expected cpu")])
def test_a_bad_device_is_a_value_error_naming_it(device, message):
    with pytest.raises(ValueError, match=f"Invalid device: '{device}'.*{message}"):
        resolve_device(device)
    with pytest.raises(TypeError, match="Invalid device"):
        resolve_device(0)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line_and_exit_2(tmp_path, capsys):
    for command in (["compare", "--steps", "2", "--out", str(tmp_path / "out")],
                    ["reproduce", "dirac", "--out", str(tmp_path / "out")]):
        with pytest.raises(SystemExit) as exc:
            cli_main([*command, "--device", "cuda"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="CUDA is not available"):
        run_compare(make_task("gaussians8"), ["baseline"], [0], 2, progress=False, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        P.run_all(["baseline"], [0], {"iterations": 2, "every": 2}, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runs_in_workers_after_the_parent_used_cuda():
    """The failure of fork-based pools on a GPU machine: the parent has used CUDA and autograd, then a pool
    runs on the GPU; the parallel runs equal the serial ones on the same device."""
    w = torch.ones(3, device="cuda", requires_grad=True)
    (w * 2).sum().backward()
    task = make_task("gaussians8")
    serial = run_compare(task, ["baseline", "aw"], [0], 6, eval_every=3, progress=False, workers=1, device="cuda")
    parallel = run_compare(task, ["baseline", "aw"], [0], 6, eval_every=3, progress=False, workers=2,
                           device="cuda")
    for a, b in zip(serial, parallel, strict=True):
        assert a.samples is not None and a.samples.device.type == "cpu"
        torch.testing.assert_close(a.samples, b.samples)
    small = {"iterations": 4, "every": 2, "batch": 16, "n_samples": 50}
    runs = P.run_all(["baseline", "aw"], [0], small, workers=2, evaluate=True, device="cuda")
    assert [r["technique"] for r in runs] == ["baseline", "aw"] and all(r["metrics"] for r in runs)
