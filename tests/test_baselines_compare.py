"""``gan-optim compare --repo``: reading the baselines' own logs, the summary's claims, the CLI's errors.

The end-to-end runs on the real checkouts are in tests/upstream/test_compare_repo.py.
"""

import csv
import json
import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from gan_optim.cli import main as cli_main
from gan_optim_experiments import baselines
from gan_optim_experiments.baselines import BaselineRun


def test_biggan_log_rows_are_its_jsonl_records(tmp_path):
    (tmp_path / "logs").mkdir()
    records = [{"itr": 15, "IS_mean": 1.25, "IS_std": 0.5, "FID": 300.0, "_stamp": 1000.5},
               {"itr": 30, "IS_mean": 2.0, "IS_std": 0.25, "FID": 250.5, "_stamp": 1010.0}]
    (tmp_path / "logs" / "run_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    rows = baselines.read_biggan_log(tmp_path, "run", started=1000.0)
    assert rows == [{"iteration": 15.0, "seconds": 0.5, "is_mean": 1.25, "is_std": 0.5, "fid": 300.0},
                    {"iteration": 30.0, "seconds": 10.0, "is_mean": 2.0, "is_std": 0.25, "fid": 250.5}]
    assert baselines.read_biggan_log(tmp_path, "other", 0.0) == []


def test_autogan_log_rows_are_its_metric_lines_at_d_batch_counts(tmp_path):
    log = tmp_path / "logs" / "run_2026_11_30_07_00_00" / "Log"
    log.mkdir(parents=True)
    (log / "2026-11-30-07-00_train.log").write_text(
        "2026-11-30 07:00:01,000 Namespace(max_iter=40)\n"
        "2026-11-30 07:00:21,250 Inception score: 1.5, FID score: 310.25 || @ epoch 1.\n"
        "2026-11-30 07:00:22,000 => calculate fid score\n"
        "2026-11-30 07:00:41,500 Inception score: 2.5, FID score: 290.0 || @ epoch 2.\n")
    started = datetime(2026, 11, 30, 7, 0, 1).timestamp()
    rows = baselines.read_autogan_log(tmp_path, started, batches_per_epoch=32)
    assert [r["iteration"] for r in rows] == [64.0, 96.0]  # (epoch + 1) * 32 D batches
    assert [r["seconds"] for r in rows] == pytest.approx([20.25, 40.5], abs=1e-6)
    assert [(r["is_mean"], r["fid"]) for r in rows] == [(1.5, 310.25), (2.5, 290.0)]
    assert all(math.isnan(r["is_std"]) for r in rows)


def test_last_value_follows_argparse_where_the_last_flag_wins():
    args = ["-dis_bs", "16", "--max_iter", "4", "--dis_batch_size=24", "--x"]
    assert baselines._last_value(args, ("-dis_bs", "--dis_batch_size"), "64") == "24"
    assert baselines._last_value(["--x"], ("-dis_bs",), "64") == "64"


def _runs(finals, seeds=3, failed=()):
    runs = []
    for technique, fids in finals.items():
        for seed in range(seeds):
            rc = 1 if (technique, seed) in failed else 0
            rows = [] if rc else [{"iteration": 10.0, "seconds": 5.0, "is_mean": 1.0, "is_std": 0.0, "fid": 999.0},
                                  {"iteration": 20.0, "seconds": 9.0 + seed, "is_mean": 2.0 + seed, "is_std": 0.1,
                                   "fid": fids[seed]}]
            runs.append(BaselineRun(technique, seed, Path(f"runs/{technique}-seed{seed}"), rc, rows, 12.0 + seed))
    return runs


def _table(md):
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("technique",):
            rows[cells[0]] = cells
    return rows


def test_summary_claims_a_difference_only_by_the_verdict_rule():
    runs = _runs({"none": [100.0, 101.0, 102.0, 103.0, 104.0], "aw": [50.0, 51.0, 52.0, 53.0, 54.0],
                  "wegan": [99.0, 103.0, 150.0, 100.0, 101.0]}, seeds=5)
    md = baselines.summary_markdown(runs, "biggan", Path("/repo"), "tiny", ["--G_ch", "16"], list(range(5)), True)
    table = _table(md)
    # aw: 5 vs 5 fully separated, exact p = 2 / C(10, 5) = 0.0079, Holm over 2 comparisons: 0.0159
    assert table["aw"][6] == "lower (better)" and table["aw"][5].endswith("p 0.0159")
    assert table["wegan"][6] == "no difference shown"
    assert table["none"][4].startswith("102 [")  # mean of the last evaluation of each seed
    assert table["aw"][1] == "5/5" and table["aw"][2] == "20"
    assert "configuration **tiny**" in md and "`--G_ch 16`" in md and "Holm" in md
    # 3 vs 3 seeds cannot pass the rule (smallest exact p 0.1), however far apart
    runs = _runs({"none": [100.0, 101.0, 102.0], "aw": [50.0, 51.0, 52.0]})
    table = _table(baselines.summary_markdown(runs, "biggan", Path("/repo"), "tiny", [], [0, 1, 2], True))
    assert table["aw"][6] == "no difference shown"


def test_summary_makes_no_claim_from_one_seed_and_lists_failed_runs():
    runs = _runs({"none": [100.0], "aw": [10.0]}, seeds=1)
    runs += _runs({"ttur": [1.0, 2.0]}, seeds=2, failed={("ttur", 1)})
    md = baselines.summary_markdown(runs, "autogan", Path("/repo"), "published", [], [0, 1], True)
    table = _table(md)
    assert table["aw"][6] == "no difference shown" and table["ttur"][1] == "1/2"
    assert "- ttur, seed 1: exit 1" in md


def test_results_csv_has_one_row_per_evaluation(tmp_path):
    runs = _runs({"none": [100.0, 101.0], "aw": [50.0, 51.0]}, seeds=2)
    path = baselines.write_results(runs, "biggan", tmp_path / "results.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and rows[0]["repo"] == "biggan"
    assert [(r["technique"], r["seed"], r["iteration"], r["fid"]) for r in rows[2:4]] == [
        ("none", "1", "10.0", "999.0"), ("none", "1", "20.0", "101.0")]


def test_digits_images_are_sklearns_digits_by_class(tmp_path):
    from sklearn.datasets import load_digits
    from PIL import Image

    folder = baselines.write_digits_images(tmp_path / "images", n=30, size=16)
    digits = load_digits()
    files = sorted(folder.rglob("*.png"))
    assert len(files) == 30 and sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]
    for f in files:
        index = int(f.stem)
        assert int(f.parent.name) == digits.target[index]
        image = np.asarray(Image.open(f))
        assert image.shape == (16, 16, 3)
        # Each 2 x 2 block's centre follows the 8 x 8 source: bright where the digit is (0..16 -> 0..255).
        coarse = image[..., 0].reshape(8, 2, 8, 2).mean(axis=(1, 3))
        assert np.corrcoef(coarse.ravel(), digits.images[index].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("args, message", [
    (["--repo", "stylegan", "."], "invalid kind 'stylegan'"),
    (["--repo", "biggan", "/nonexistent/path"], "no train.py in"),
    (["--repo", "biggan", "{repo}"], "needs --inception-weights"),
    (["--repo", "biggan", "{repo}", "--inception-weights", "/no/file.pt"], "is not a file"),
    (["--repo", "biggan", "{repo}", "--inception-weights", "{weights}", "--techniques", "none,bogus"],
     "not bogus"),
    (["--repo", "autogan", "{repo}", "--inception-weights", "{weights}"], "not an autogan checkout"),
    (["--seeds", "1", "--", "--G_ch", "8"], "need --repo"),
])
def test_cli_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text("")
    (repo / "train_fns.py").write_text("")
    (tmp_path / "w.pt").write_text("")
    args = [a.format(repo=repo, weights=tmp_path / "w.pt") for a in args]
    with pytest.raises(SystemExit) as exc:
        cli_main(["compare", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_runs_are_launched_through_the_launcher_with_the_same_flags_and_seed(tmp_path, monkeypatch):
    """The command of every run: the launcher, the checkout, the technique, one seed for both generators."""
    seen = []

    def fake_run(cmd, cwd, stdout, stderr, env):
        seen.append((cmd, Path(cwd), env["OMP_NUM_THREADS"]))
        (Path(cwd) / "logs").mkdir()
        stamp = time.time()
        (Path(cwd) / "logs" / "run_log.jsonl").write_text(
            json.dumps({"itr": 5, "IS_mean": 1.0, "IS_std": 0.0, "FID": 7.0 + len(seen), "_stamp": stamp}) + "\n")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(baselines.subprocess, "run", fake_run)
    monkeypatch.setattr(baselines, "reference_statistics", lambda w, folder, out, limit: out)
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("train.py", "train_fns.py"):
        (repo / name).write_text("")
    (tmp_path / "w.pt").write_text("")
    code = cli_main(["compare", "--repo", "biggan", str(repo), "--inception-weights", str(tmp_path / "w.pt"),
                     "--techniques", "baseline,aw", "--seeds", "2", "--workers", "1", "--config", "tiny",
                     "--image-folder", str(tmp_path), "--fid-reference", str(tmp_path / "w.pt"),
                     "--out", str(tmp_path / "out"), "--", "--G_ch", "8"])
    assert code == 0 and len(seen) == 4
    for (cmd, cwd, threads), (technique, seed) in zip(seen, [("none", 0), ("none", 1), ("aw", 0), ("aw", 1)]):
        cut = cmd.index("--")
        ours, theirs = cmd[:cut], cmd[cut + 1:]
        assert ours[1:5] == ["-m", "gan_optim", "biggan", "--repo"] and ours[5] == str(repo)
        assert ours[ours.index("--technique") + 1] == technique and ours[ours.index("--seed") + 1] == str(seed)
        assert theirs[-4:] == ["--seed", str(seed), "--experiment_name", "run"]
        assert theirs[theirs.index("--G_ch", theirs.index("--G_ch") + 1) + 1] == "8"  # ours after the config's
        assert cwd == tmp_path / "out" / "runs" / f"{technique}-seed{seed}" and threads == "1"
    with open(tmp_path / "out" / "results.csv") as f:
        fids = [float(r["fid"]) for r in csv.DictReader(f)]
    assert fids == [8.0, 9.0, 10.0, 11.0]
    assert (tmp_path / "out" / "curves.png").is_file() and (tmp_path / "out" / "summary.md").is_file()


@pytest.mark.parametrize("device, config, cpu, visible", [
    (None, "published", False, None),  # a GPU machine's default
    ("cpu", "tiny", True, None),
    ("cuda", "published", False, None),
    ("cuda:1", "published", False, "1"),
])
def test_device_picks_the_runs_device_and_the_default_configuration(tmp_path, monkeypatch, device, config, cpu,
                                                                    visible):
    """On a machine with CUDA (faked here), --device decides where the baseline's runs train and so the
    default --config; cuda:N shows the runs that device alone."""
    import torch

    from gan_optim_experiments.cli import _compare_parser

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("train.py", "train_fns.py"):
        (repo / name).write_text("")
    (tmp_path / "w.pt").write_text("")
    parser = _compare_parser()
    argv = ["--repo", "biggan", str(repo), "--inception-weights", str(tmp_path / "w.pt")]
    args = parser.parse_args(argv + ([] if device is None else ["--device", device]))
    settings = baselines.check(args, parser)
    assert (settings.config, settings.cpu, settings.visible_devices) == (config, cpu, visible)
    if device == "cuda:1":  # counted among the devices this process sees, as torch counts them
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
        assert baselines.check(args, parser).visible_devices == "6"


def test_ttur_runs_with_d_at_three_times_gs_rate_of_the_flags_or_the_scripts_default():
    assert baselines.technique_options("biggan", "ttur", ["--G_lr", "1e-4", "--G_lr", "2e-4"]) == [
        "--lr-g", "0.0002", "--lr-d", "0.0006"]
    assert baselines.technique_options("biggan", "ttur", []) == ["--lr-g", "5e-05", "--lr-d", "0.00015"]
    assert baselines.technique_options("autogan", "ttur", ["--g_lr", "0.0001"]) == [
        "--lr-g", "0.0001", "--lr-d", "0.0003"]
    assert baselines.technique_options("biggan", "aw", ["--G_lr", "1e-4"]) == []
