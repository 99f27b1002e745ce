"""``gan-optim compare --repo`` on the real checkouts: each run is the repository's own train.py, on the CPU, on
a local image folder, scored with local Inception weights; results.csv holds exactly what each run logged.

Run: ``GAN_OPTIM_BIGGAN_DIR=... GAN_OPTIM_AUTOGAN_DIR=... pytest tests/upstream/test_compare_repo.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _inception import random_inception_weights

BIGGAN = os.environ.get("GAN_OPTIM_BIGGAN_DIR")
AUTOGAN = os.environ.get("GAN_OPTIM_AUTOGAN_DIR")
pytestmark = [pytest.mark.upstream, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("torch_fidelity")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Inception weights (random, local), 64 digit images, and FID statistics of 8 of them."""
    from gan_optim.adapters.metrics import InceptionMetrics, load_images
    from gan_optim_experiments.baselines import write_digits_images

    root = tmp_path_factory.mktemp("compare_repo")
    weights = random_inception_weights(root / "pt_inception.pth")
    images = write_digits_images(root / "images", n=64)
    stats = InceptionMetrics(weights).pool_statistics(load_images(images / "0"))
    np.savez(root / "reference.npz", mu=stats[0], sigma=stats[1])
    return weights, images, root / "reference.npz"


def _compare(kind, repo, setup, out, script_args):
    weights, images, reference = setup
    cmd = [sys.executable, "-m", "gan_optim", "compare", "--repo", kind, repo, "--inception-weights", str(weights),
           "--image-folder", str(images), "--fid-reference", str(reference), "--techniques", "baseline,aw",
           "--seeds", "1", "--config", "tiny", "--out", str(out), "--", *script_args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return rows, (out / "summary.md").read_text()


def _check_launched_through_the_launcher(run_folder, kind, repo, technique):
    command = (run_folder / "output.log").read_text().splitlines()[0].split()
    assert command[1:6] == ["-m", "gan_optim", kind, "--repo", str(Path(repo).resolve())]
    assert command[command.index("--technique") + 1] == technique and "--cpu" in command


@pytest.mark.skipif(not BIGGAN, reason="GAN_OPTIM_BIGGAN_DIR is not set")
def test_compare_runs_biggans_train_py_per_technique_and_reads_its_own_log(setup, tmp_path):
    # 64 images, batch 16 x 2 D steps: 2 iterations an epoch; 3 epochs; IS/FID at iterations 3 and 6.
    rows, summary = _compare("biggan", BIGGAN, setup, tmp_path / "out",
                             ["--num_epochs", "3", "--test_every", "3", "--num_inception_images", "4"])
    for technique in ("none", "aw"):
        folder = tmp_path / "out" / "runs" / f"{technique}-seed0"
        _check_launched_through_the_launcher(folder, "biggan", BIGGAN, technique)
        logged = [json.loads(line) for line in (folder / "logs" / "run_log.jsonl").read_text().splitlines()]
        ours = [r for r in rows if r["technique"] == technique]
        assert [int(r["itr"]) for r in logged] == [3, 6]
        assert [(float(r["iteration"]), float(r["is_mean"]), float(r["fid"])) for r in ours] == [
            (float(r["itr"]), r["IS_mean"], r["FID"]) for r in logged]
        assert all(0 < float(r["seconds"]) for r in ours) and all(float(r["fid"]) != 9999.0 for r in ours)
        assert f"| {technique} | 1/1 | 6 |" in summary


@pytest.mark.skipif(not AUTOGAN, reason="GAN_OPTIM_AUTOGAN_DIR is not set")
def test_compare_runs_autogans_train_py_per_technique_and_reads_its_own_log(setup, tmp_path):
    # 64 images, D batch 16: 4 D batches an epoch; max_iter 6 G steps x n_critic 2 -> 3 epochs, scored after
    # epochs 1 and 2 (AutoGAN skips epoch 0), i.e. at 8 and 12 D batches.
    rows, summary = _compare("autogan", AUTOGAN, setup, tmp_path / "out",
                             ["--max_iter", "6", "--num_eval_imgs", "4", "--eval_batch_size", "4"])
    line = re.compile(r"Inception score: (\S+), FID score: (\S+) \|\| @ epoch (\d+)\.")
    for technique in ("none", "aw"):
        folder = tmp_path / "out" / "runs" / f"{technique}-seed0"
        _check_launched_through_the_launcher(folder, "autogan", AUTOGAN, technique)
        assert (folder / "fid_stat" / "fid_stats_cifar10_train.npz").read_bytes() == setup[2].read_bytes()
        (log,) = folder.glob("logs/*/Log/*.log")
        logged = [m.groups() for m in map(line.search, log.read_text().splitlines()) if m]
        ours = [r for r in rows if r["technique"] == technique]
        assert [int(epoch) for _, _, epoch in logged] == [1, 2]
        assert [(float(r["iteration"]), float(r["is_mean"]), float(r["fid"])) for r in ours] == [
            ((int(epoch) + 1) * 4.0, float(is_), float(fid)) for is_, fid, epoch in logged]
        assert f"| {technique} | 1/1 | 12 |" in summary
