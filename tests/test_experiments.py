"""Experiments: metrics against independent computations, every task and claim for a few steps, CLI outputs."""

from __future__ import annotations

import csv
import math
import os
import re

import numpy as np
import pytest
import scipy.linalg
import torch

from gan_optim_experiments import metrics as M
from gan_optim_experiments.claims import CLAIMS, VERDICTS, run_claim
from gan_optim_experiments.runner import (
    parse_technique,
    run_compare,
    summarize,
    train_run,
)
from gan_optim_experiments.tasks import make_task
from gan_optim_experiments.toys import (
    SADDLE_SETTINGS,
    angles_run,
    dirac_run,
    saddle_run,
)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    """Keep the digits classifier cache inside the test's temporary folder."""
    old = os.environ.get("GAN_OPTIM_CACHE")
    os.environ["GAN_OPTIM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(1)
    yield
    if old is None:
        os.environ.pop("GAN_OPTIM_CACHE", None)
    else:
        os.environ["GAN_OPTIM_CACHE"] = old


# ------------------------------------------------------------------ metrics
def test_mmd_matches_double_loop():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(13, 2, generator=g), torch.randn(9, 2, generator=g) + 0.5
    h = 0.7

    def k(a, b):
        return math.exp(-sum((float(ai) - float(bi)) ** 2 for ai, bi in zip(a, b)) / (2 * h * h))

    kxx = sum(k(a, b) for a in x for b in x) / (len(x) ** 2)
    kyy = sum(k(a, b) for a in y for b in y) / (len(y) ** 2)
    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    ref = kxx + kyy - 2 * kxy
    assert M.mmd_rbf(x, y, h) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert M.mmd_rbf(x, y, h, kyy=M.rbf_mean(y, h)) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert M.mmd_rbf(x, x, h) == pytest.approx(0.0, abs=1e-12)


def test_frechet_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3))
    y = rng.normal(size=(40, 3)) * 2 + 1
    m1, m2 = x.mean(0), y.mean(0)
    c1, c2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    ref = float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))
    assert M.frechet_distance(torch.tensor(x), torch.tensor(y)) == pytest.approx(ref, rel=1e-8)
    assert M.frechet_distance(torch.tensor(x), torch.tensor(x)) == pytest.approx(0.0, abs=1e-8)


def test_mode_coverage_hand_built():
    c = M.ring_centers(8, 1.0)
    std = 0.05
    # 10 samples exactly on modes 0..4 (2 each), 2 on mode 5 just inside 3 std, 3 far off (0.5 from every centre?)
    on = torch.cat([c[i].repeat(2, 1) for i in range(5)])
    inside = c[5] + torch.tensor([[0.14, 0.0], [0.0, -0.14]], dtype=torch.float64)
    outside = torch.tensor([[0.0, 0.0], [3.0, 3.0], [0.0, 0.0]], dtype=torch.float64)
    samples = torch.cat([on, inside, outside])  # 15 samples
    out = M.mode_coverage(samples, c, std, min_share=0.1)  # a mode needs >= 1.5 hq samples
    assert out["hq"] == pytest.approx(12 / 15)
    assert out["modes"] == 6
    # 0.16 > 3 * 0.05: no longer high quality, mode 5 uncovered
    out2 = M.mode_coverage(torch.cat([on, c[5] + torch.tensor([[0.16, 0.0]], dtype=torch.float64)]), c, std,
                           min_share=0.1)
    assert out2 == {"modes": 5.0, "hq": pytest.approx(10 / 11)}
    assert M.mode_coverage(torch.zeros(0, 2), c, std) == {"modes": 0.0, "hq": 0.0}


def test_standard_mode_rule_hand_built_counts():
    c = M.ring_centers(8, 2.0)
    std = 0.1
    # 2500 samples: mode 0 holds 20 (exactly the threshold), mode 1 holds 19, mode 2 holds 500 spread inside
    # 3 std (0.29 away), mode 3 holds 30 just outside 3 std (0.31 away), the rest sits at the origin
    # (2 away from every centre): the standard rule counts modes 0 and 2 only.
    parts = [c[0].repeat(20, 1), c[1].repeat(19, 1),
             c[2] + torch.tensor([[0.29, 0.0], [0.0, -0.29]], dtype=torch.float64).repeat(250, 1),
             c[3] + torch.tensor([[0.31, 0.0]], dtype=torch.float64).repeat(30, 1)]
    rest = 2500 - sum(len(p) for p in parts)
    samples = torch.cat(parts + [torch.zeros(rest, 2, dtype=torch.float64)])
    assert len(samples) == 2500
    assert M.modes_standard(samples, c, std) == 2.0
    # our rule (2% of all samples = 50): only mode 2; its hq share counts samples within 3 std
    ours = M.mode_coverage(samples, c, std)
    assert ours == {"modes": 1.0, "hq": pytest.approx((20 + 19 + 500) / 2500)}
    # the threshold scales with the sample count: 1000 samples need 8 per mode (20 per 2500)
    small = torch.cat([c[i].repeat(8 if i % 2 == 0 else 7, 1) for i in range(8)]
                      + [torch.zeros(1000 - 60, 2, dtype=torch.float64)])
    assert len(small) == 1000 and M.modes_standard(small, c, std) == 4.0
    # every mode well covered: 8 under both rules; nothing: 0
    full = c.repeat(125, 1)
    assert M.modes_standard(full, c, std) == 8.0 and M.mode_coverage(full, c, std)["modes"] == 8.0
    assert M.modes_standard(torch.zeros(0, 2), c, std) == 0.0


def test_gaussians8_task_reports_both_mode_rules():
    task = make_task("gaussians8")
    centers, std = task.info["centers"], task.info["std"]
    real = task.sample_real(1000, torch.Generator().manual_seed(0))
    out = task.metrics(real)
    assert out["modes"] == out["modes_veegan"] == 8.0
    collapsed = centers[2] + std * torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    out = task.metrics(collapsed)
    assert out["modes"] == out["modes_veegan"] == 1.0
    assert task.lower_better["modes_veegan"] is False


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU features: singular covariances
def test_digits_fid_matches_independent_frechet_and_kid_near_zero():
    x, _ = M.load_digits_tensor()
    real, fake = x[:400], x[400:800]
    metric = M.DigitsImageMetrics(real, kid_subset_size=100)
    assert metric.accuracy > 0.85
    out = metric(fake)
    with torch.no_grad():
        fr, ff = metric.net(real).double().numpy(), metric.net(fake).double().numpy()
    c1, c2 = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    ref = float(((fr.mean(0) - ff.mean(0)) ** 2).sum() + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real))
    assert out["fid"] == pytest.approx(ref, rel=1e-3, abs=1e-3)
    noise = metric(torch.rand(400, 1, 8, 8) * 2 - 1)
    assert noise["fid"] > 10 * out["fid"]
    assert noise["kid"] > out["kid"]
    # cached: a second load reads the file
    net2, acc2 = M.load_or_train_digits_classifier()
    assert acc2 == metric.accuracy
    assert torch.equal(net2.head.weight, metric.net.head.weight)


# ------------------------------------------------------------------- runner
def test_parse_technique():
    s = parse_technique("aw+adaptive:2+wegan:0.1+ttur+nd:5+freeadv:3")
    assert (s.aw, s.adaptive, s.wegan, s.ttur, s.n_d, s.freeadv) == (True, 2.0, 0.1, 3.0, 5, 3)
    assert parse_technique("baseline") == parse_technique("baseline").__class__(name="baseline")
    for bad in ("", "nope", "nd:x", "aw+foo"):
        with pytest.raises(ValueError):
            parse_technique(bad)


@pytest.mark.parametrize("tech", ["baseline", "aw", "wegan", "adaptive", "ttur", "freeadv", "aw+adaptive",
                                  "wegan+ttur+nd:2", "freeadv+adaptive"])
def test_gaussians8_every_technique_runs(tech):
    task = make_task("gaussians8")
    r = train_run(task, tech, 0, 4, eval_every=2)
    assert [row["step"] for row in r.rows] == [0, 2, 4]
    assert {"modes", "hq", "mmd", "frechet", "d_updates", "g_updates", "wall_s"} <= set(r.rows[-1])
    assert r.d_updates + r.g_updates > 0


def test_same_initial_weights_and_data_per_technique():
    task = make_task("gaussians8")
    a = train_run(task, "baseline", 3, 0)
    b = train_run(task, "aw", 3, 0)
    assert a.rows[0]["mmd"] == b.rows[0]["mmd"]
    assert torch.equal(a.samples, b.samples)


def test_freeadv_no_extra_backward_per_replay():
    task = make_task("gaussians8")
    base = train_run(task, "baseline", 0, 3, count_backward=True)
    free = train_run(task, "freeadv:3", 0, 3, count_backward=True)
    per = [(r.backward_calls - r.g_updates) / r.d_updates for r in (base, free)]
    assert free.d_updates == 9
    assert per[0] == per[1] == 2  # real half + fake half, as a plain D step


def test_digits_task_runs_and_summary():
    task = make_task("digits")
    res = run_compare(task, ["baseline", "aw+ttur"], [0], 3, eval_every=3, progress=False)
    s = summarize(res, task, ("fid", 1e9))
    assert s["baseline"]["reached"] == 1 and s["baseline"]["target_step"].mean == 0
    assert math.isfinite(s["aw+ttur"]["fid"].mean)
    # a target nobody reaches: iterations count as the run length, seconds have no value
    s = summarize(res, task, ("fid", -1.0))
    assert s["baseline"]["reached"] == 0 and s["baseline"]["target_step"].mean == 3
    assert s["baseline"]["target_wall"].n == 0


# --------------------------------------------------------------------- toys
def test_dirac_runs_and_clips():
    for mode in ("fixed", "adaptive"):
        r = dirac_run(mode, steps=30)
        assert len(r["theta"]) == 31 and max(abs(p) for p in r["psi"]) <= 0.5
        assert r["d_updates"] + r["g_updates"] == 30
    fixed = dirac_run("fixed", steps=12)
    assert (fixed["d_updates"], fixed["g_updates"]) == (10, 2)
    with pytest.raises(ValueError):
        dirac_run("nope")


def test_saddle_runs_and_gradient_is_right():
    r = saddle_run(1e-3, 1e-3, steps=1, noise=0.0, start=(1.0, 1.0))
    # x <- 1 - 1e-3 * 2*1*(100-1); y <- 1 + 1e-3 * (-2*1*(1+1))
    assert r["norm"][-1] == pytest.approx(math.hypot(1 - 0.198, 1 - 0.004))
    for lr_x, lr_y in SADDLE_SETTINGS.values():
        assert len(saddle_run(lr_x, lr_y, steps=5)["norm"]) == 6
    assert saddle_run(1.0, 1.0, steps=50, start=(5.0, 5.0))["diverged"]


def test_angles_runs():
    for aw in (False, True):
        out = angles_run(aw, iterations=2)
        assert len(out["rf"]) == 2 and all(0 <= v <= 180 for v in out["rf"] + out["rD"] + out["fD"])


# ------------------------------------------------------------------- claims
@pytest.fixture(scope="module")
def quick_all(tmp_path_factory):
    """`gan-optim reproduce all --quick --seeds 2`: every claim's reduced-to-seconds protocol, once."""
    from gan_optim.cli import main

    out = tmp_path_factory.mktemp("reproduce_all")
    assert main(["reproduce", "all", "--quick", "--seeds", "2", "--out", str(out / "results"),
                 "--write-docs", str(out / "RESULTS.md")]) == 0
    return out


def _verdict_from_parts(outcomes):
    if all(o == "yes" for o in outcomes):
        return "reproduced"
    if all(o == "no" for o in outcomes):
        return "not reproduced"
    return "no difference shown" if "no" not in outcomes else "partly"


@pytest.mark.parametrize("claim", list(CLAIMS))
def test_every_claim_runs_quick(claim, quick_all):
    from gan_optim_experiments.claims import ROW_FIELDS

    raw = quick_all / "results" / claim
    assert list(raw.glob("*.csv*"))  # the numbers behind the plot
    pngs = list(raw.glob("*.png"))
    assert pngs and all(f.read_bytes()[:4] == b"\x89PNG" for f in pngs)
    with (quick_all / "results" / f"{claim}.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ROW_FIELDS
        rows = list(reader)
    protocol = {r["item"]: r for r in rows if r["kind"] == "protocol"}
    assert protocol["protocol"]["text"] == "quick"
    assert int(float(protocol["seeds"]["mean"])) == (1 if claim == "dirac" else 2)
    parts = [r["group"] for r in rows if r["kind"] == "part"]
    assert parts and set(parts) <= {"yes", "no", "no difference shown"}
    (verdict,) = [r["group"] for r in rows if r["kind"] == "verdict"]
    assert verdict in VERDICTS and verdict == _verdict_from_parts(parts)
    for r in rows:
        if r["kind"] == "part" and r["p"] != "":  # a tested part: p <= Holm's p <= 1, the effect in its interval
            assert 0 <= float(r["p"]) <= float(r["p_holm"]) <= 1
            assert float(r["effect_low"]) <= float(r["effect"]) <= float(r["effect_high"])
            assert r["n"] != "" and float(r["min_effect"]) >= 0
    from gan_optim_experiments.claims import RAW_CLAIMS, claim_from_raw
    from gan_optim_experiments.results_doc import raw_path

    raw_file = raw_path(quick_all / "results", claim)
    assert raw_file.is_file()  # every claim writes its raw data
    if claim in RAW_CLAIMS:  # ... and these decide again from them alone, to the same rows
        again = claim_from_raw(claim, raw_file)
        assert [{k: str(v) for k, v in r.items()} for r in again.rows] == rows
    for r in rows:
        if r["kind"] == "stat" and r["ci_low"] != "":
            assert int(r["n"]) >= 1
            assert float(r["ci_low"]) <= float(r["mean"]) + 1e-9 <= float(r["ci_high"]) + 2e-9
        elif r["kind"] == "stat" and r["mean"] != "":  # a number derived (from the means, the rule, the protocol)
            assert r["n"] == "" and r["ci_high"] == "" and "from the " in r["text"]


def test_claim_summary_matches_its_raw_runs(quick_all):
    """The summary CSV's modes interval is the bootstrap of the final evaluation rows of the raw CSV."""
    from gan_optim_experiments.stats import bootstrap_ci

    with (quick_all / "results" / "gaussians8-aw" / "gaussians8_aw.csv").open() as f:
        raw = list(csv.DictReader(f))
    last = {}
    for r in raw:
        last[(r["technique"], r["seed"])] = r  # rows are in step order per run
    with (quick_all / "results" / "gaussians8-aw.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "stat"]
    for tech, label in (("baseline", "plain GAN"), ("aw", "aw-GAN")):
        values = [float(last[(tech, str(s))]["modes_veegan"]) for s in range(2)]
        ci = bootstrap_ci(values)
        (row,) = [r for r in rows if r["group"] == label and r["item"].startswith("modes, standard")]
        assert int(row["n"]) == 2
        assert float(row["mean"]) == pytest.approx(sum(values) / 2)
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((ci.low, ci.high))


def test_results_page_from_quick_run_says_so(quick_all):
    from gan_optim_experiments.results_doc import render

    text = (quick_all / "RESULTS.md").read_text()
    assert text == render(quick_all / "results")
    assert "`--quick` protocol" in text and "the verdicts mean nothing" in text
    for claim in CLAIMS:
        assert f"`gan-optim reproduce {claim}`" in text


DOCS = os.path.join(os.path.dirname(__file__), "..", "docs")


def test_results_doc_agrees_with_checked_in_csvs():
    """docs/RESULTS.md is exactly what the checked-in docs/results/*.csv render to (regenerate with
    `gan-optim reproduce all --from-csv docs/results --write-docs docs/RESULTS.md`)."""
    from gan_optim_experiments.results_doc import render

    with open(os.path.join(DOCS, "RESULTS.md"), encoding="utf-8") as f:
        assert f.read() == render(os.path.join(DOCS, "results"))


def test_results_doc_check_catches_a_changed_number(tmp_path):
    import gzip
    import shutil

    from gan_optim_experiments.results_doc import render

    shutil.copytree(os.path.join(DOCS, "results"), tmp_path / "r")
    before = render(tmp_path / "r")
    # a summary that no longer matches its raw data is an error
    path = tmp_path / "r" / "freeadv.csv"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    stat = next(r for r in rows if r["kind"] == "stat" and r["mean"] != "" and float(r["mean"]) != 0)
    stat["mean"] = str(float(stat["mean"]) * 1.5)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ValueError, match="differs from what"):
        render(tmp_path / "r")
    # a changed raw value changes the page once the summaries are written again from the raw data
    shutil.copy(os.path.join(DOCS, "results", "freeadv.csv"), path)
    raw = tmp_path / "r" / "raw" / "freeadv.raw.csv.gz"
    with gzip.open(raw, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["technique"] == "freeadv":
            r["mmd"] = str(float(r["mmd"]) * 3)
    with gzip.open(raw, "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from gan_optim.cli import main

    assert main(["reproduce", "all", "--from-csv", str(tmp_path / "r"), "--write-summaries", "--write-docs",
                 str(tmp_path / "R.md")]) == 0
    assert (tmp_path / "R.md").read_text() != before
    (tmp_path / "r" / "dirac.csv").unlink()
    with pytest.raises(FileNotFoundError, match="dirac.csv"):
        render(tmp_path / "r")


# ---------------------------------------------------------------------- CLI
def test_compare_cli_writes_csv_md_png(tmp_path, capsys):
    from gan_optim.cli import main

    out = tmp_path / "cmp"
    rc = main(["compare", "--protocol", "short", "--steps", "4", "--seeds", "2", "--eval-every", "2",
               "--no-progress", "--techniques", "baseline,aw+adaptive", "--out", str(out)])
    assert rc == 0
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 3  # techniques x seeds x evaluation points
    assert {"technique", "seed", "step", "d_updates", "g_updates", "wall_s", "mmd", "modes", "modes_veegan", "hq",
            "frechet"} <= set(
        rows[0])
    md = (out / "summary.md").read_text()
    assert "`aw+adaptive`" in md and "modes_veegan ↑" in md and "bootstrap 95% interval" in md
    assert re.search(r"\d \[-?[\d.e+-]+, -?[\d.e+-]+\] \|", md)  # mean [low, high] cells
    assert "Target: mmd ≤ 0.02;" in md and not re.search(r"\{\w+[:}]", md)  # no unformatted placeholder
    for png in ("curves.png", "samples.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert "results.csv" in capsys.readouterr().out


def test_compare_cli_losses_flag(tmp_path, capsys):
    """--losses paper runs each technique as train_run(..., losses="paper") does; the default is plain."""
    from gan_optim.cli import main

    task = make_task("gaussians8")
    for flag in ("plain", "paper"):
        out = tmp_path / flag
        assert main(["compare", "--protocol", "short", "--steps", "4", "--seeds", "1", "--eval-every", "4",
                     "--no-progress", "--workers", "1", "--techniques", "adaptive", "--losses", flag, "--out",
                     str(out)]) == 0
        source = train_run(task, "adaptive", 0, 1, eval_every=1, losses=flag).setting.source
        assert f"`adaptive`: {source}" in (out / "summary.md").read_text()
        with (out / "results.csv").open() as f:
            last = list(csv.DictReader(f))[-1]
        ref = train_run(task, "adaptive", 0, 4, eval_every=4, losses=flag).rows[-1]
        assert float(last["mmd"]) == pytest.approx(ref["mmd"], rel=1e-6, abs=1e-9)
        assert int(last["d_updates"]) == ref["d_updates"]
    plain = train_run(task, "adaptive", 0, 4, eval_every=4).rows[-1]["mmd"]
    paper = train_run(task, "adaptive", 0, 4, eval_every=4, losses="paper").rows[-1]["mmd"]
    assert plain != pytest.approx(paper, rel=1e-6)  # the flag matters
    capsys.readouterr()
    with pytest.raises(SystemExit) as err:
        main(["compare", "--losses", "papers", "--out", str(tmp_path / "bad")])
    assert err.value.code == 2 and "--losses" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:  # quick/paper fix each technique's loss themselves
        main(["compare", "--losses", "paper", "--out", str(tmp_path / "bad2")])
    assert err.value.code == 2 and "--protocol quick fixes" in capsys.readouterr().err


def test_reproduce_cli_prints_verdict(tmp_path, capsys):
    from gan_optim.cli import main

    assert main(["reproduce", "dirac", "--quick", "--out", str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.split(":")[0] in VERDICTS
    assert (tmp_path / "dirac.png").exists()
    with (tmp_path / "dirac_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    (verdict,) = [r["group"] for r in rows if r["kind"] == "verdict"]
    assert line.startswith(verdict + ": dirac")


def test_compare_cli_rejects_bad_input(tmp_path, capsys):
    from gan_optim_experiments.cli import main

    assert main("compare", ["--techniques", "bogus", "--steps", "1", "--no-progress", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as exit_:
        main("compare", ["--target", "nope=1", "--steps", "1", "--out", str(tmp_path / "new")])
    assert exit_.value.code == 2 and "unknown metric 'nope'" in capsys.readouterr().err


def test_digits_quick_tunes_every_technique_with_its_paper_loss(quick_all):
    """Claim 7: every technique (and the combination) has pilot rows over the same grid, the chosen rate is the
    pilot minimum, each runs with its paper's loss, and every part compares with the tuned baseline."""
    from gan_optim_experiments.claims import TUNING_GRID

    with (quick_all / "results" / "digits.csv").open() as f:
        rows = list(csv.DictReader(f))
    chosen = {r["group"]: float(r["mean"]) for r in rows if r["item"] == "chosen G learning rate"}
    singles = {"baseline", "adaptive", "aw", "wegan", "ttur", "freeadv"}
    combos = set(chosen) - singles
    assert singles <= set(chosen) and len(combos) == 1 and "+" in next(iter(combos))
    grid = TUNING_GRID[::3]
    for tech, lr in chosen.items():
        pilots = {}
        for g in grid:
            (r,) = [r for r in rows if r["item"] == "pilot: final FID-digits" and r["group"] == f"{tech}, G lr {g:g}"]
            pilots[g] = float(r["mean"])
        best = grid[0]
        for g in grid:
            if pilots[g] < pilots[best]:
                best = g
        assert lr == pytest.approx(best)
    losses = {r["group"]: r["text"] for r in rows if r["item"] == "loss and optimiser"}
    assert losses["baseline"].startswith("D bce / G ns, Adam (β 0.5, 0.999)")
    assert losses["aw"].startswith("D hinge / G hinge, Adam (β 0.5, 0.999)")
    assert losses["wegan"].startswith("D bce / G saturating, Adam (β 0.5, 0.999)")
    assert losses["adaptive"].startswith("D wgan + clip 0.01 / G wgan, RMSprop")
    assert losses["ttur"].startswith("D bce / G ns, Adam (β 0.5, 0.999)")
    assert losses["freeadv"].startswith("D hinge / G hinge, Adam (β 0, 0.9)")
    parts = [r["item"] for r in rows if r["kind"] == "part"]
    assert len(parts) == 6 and all(p.endswith("than the baseline (both tuned)") for p in parts)
