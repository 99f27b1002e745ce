"""Claims and compare summaries decided by the verdict rule, from raw rows built by hand."""

from __future__ import annotations

import math

import pytest

from gan_optim_experiments.claims import RAW_SUFFIX, claim_from_raw, read_raw, verdict_of, write_raw
from gan_optim_experiments.runner import RunResult, verdict_markdown
from gan_optim_experiments.tasks import make_task


def _freeadv_rows(seconds_to_target, per_iteration_s, seeds=10, steps=300, every=100):
    """Per-evaluation rows of claim 6: MMD falls below 0.02 at the given training second of each technique."""
    rows = []
    for tech, hit_s in seconds_to_target.items():
        for seed in range(seeds):
            for step in range(0, steps + 1, every):
                wall = step * per_iteration_s[tech] + 0.001 * seed
                d = step * (2 if tech in ("nd:2", "freeadv") else 1)
                rows.append({"task": "gaussians8", "technique": tech, "seed": seed, "step": step, "d_updates": d,
                             "g_updates": step, "wall_s": wall,
                             # every D update: one backward through D; each G update adds one
                             "backward_calls": d + step, "coverage": 8.0,
                             "mmd": 0.01 if wall >= hit_s[seed] else 0.5})
    return rows


def test_claim6_is_decided_in_seconds_against_the_equal_d_updates_control(tmp_path):
    # free-adv reaches the target at its first evaluation after 1 s, the nd:2 control after 2.5 s, plain D after 1 s
    fast = [1.0] * 10
    rows = _freeadv_rows({"baseline": fast, "nd:2": [2.5] * 10, "freeadv": fast},
                         {"baseline": 0.005, "nd:2": 0.01, "freeadv": 0.005})
    path = write_raw(tmp_path / f"freeadv{RAW_SUFFIX}", rows)
    assert read_raw(path) == rows
    res = claim_from_raw("freeadv", path)
    parts = {r["item"]: r for r in res.rows if r["kind"] == "part"}
    vs_control = parts["free-adv reaches MMD ≤ 0.02 in fewer training seconds than the equal-D-updates control (nd:2)"]
    vs_plain = parts["free-adv reaches MMD ≤ 0.02 in fewer training seconds than plain D"]
    assert parts["no extra backward pass per replay"]["group"] == "yes"
    # 10 vs 10 fully separated: exact p = 2 / C(20, 10); Holm over the two tests
    assert vs_control["group"] == "yes" and vs_control["p"] == pytest.approx(2 / math.comb(20, 10), rel=1e-5)
    assert vs_control["p_holm"] == pytest.approx(2 * 2 / math.comb(20, 10), rel=1e-5)
    assert vs_control["n"] == "10 vs 10"
    # the minimum effect is one evaluation step in the control's seconds: 100 iterations x 0.01 s
    assert vs_control["min_effect"] == pytest.approx(1.0, rel=1e-2)
    # free-adv and plain D reach it equally fast: no difference shown
    assert vs_plain["group"] == "no difference shown"
    assert res.verdict == "no difference shown" == verdict_of(["yes", "yes", "no difference shown"])


def test_claim4_coverage_parts_from_raw(tmp_path):
    rows = []
    for tech, cov in (("baseline", [3.0] * 10), ("aw", [8.0] * 10)):
        for seed in range(10):
            for step in (0, 100):
                rows.append({"task": "gaussians8", "technique": tech, "seed": seed, "step": step, "d_updates": step,
                             "g_updates": step, "wall_s": 0.0, "coverage": cov[seed] if step else 0.0,
                             "share_min": 0.0, "share_max": 0.5, "modes": 0.0, "modes_veegan": 0.0, "hq": 0.5,
                             "mmd": 0.1})
    res = claim_from_raw("gaussians8-aw", write_raw(tmp_path / f"gaussians8-aw{RAW_SUFFIX}", rows))
    parts = {r["item"]: r["group"] for r in res.rows if r["kind"] == "part"}
    assert parts == {"plain GAN collapses (fewer than 8 modes covered)": "yes", "aw-GAN covers all 8 modes": "yes",
                     "aw-GAN covers more modes than the plain GAN": "yes"}
    assert res.verdict == "reproduced"
    # five seeds: the sign tests' smallest p (2/32) cannot pass
    few = [r for r in rows if r["seed"] < 5]
    res = claim_from_raw("gaussians8-aw", write_raw(tmp_path / f"few{RAW_SUFFIX}", few))
    parts = {r["item"]: r for r in res.rows if r["kind"] == "part"}
    assert parts["aw-GAN covers all 8 modes"]["group"] == "no difference shown"
    assert parts["aw-GAN covers all 8 modes"]["p"] == pytest.approx(2 / 32)
    assert parts["aw-GAN covers all 8 modes"]["detectable"] == "inf"


def test_compare_summary_verdicts_follow_the_rule():
    task = make_task("gaussians8")

    def run(tech, seed, mmd, reach_step):
        rows = [{"step": s, "wall_s": s / 100, **{m: 1.0 for m in task.lower_better},
                 "mmd": (0.01 if s >= reach_step else 0.5) if s < 300 else mmd} for s in (0, 100, 200, 300)]
        return RunResult(tech, seed, rows)

    results = [run("baseline", s, 0.10 + s / 1000, 200) for s in range(6)]
    results += [run("aw", s, 0.01 + s / 1000, 100) for s in range(6)]
    md = verdict_markdown(results, task)
    lines = {(c[1].strip("` "), c[2].strip()): c for c in
             ([x.strip() for x in line.split("|")] for line in md.splitlines() if line.startswith("| `"))}
    mmd = lines[("aw", "mmd")]
    # 6 vs 6 fully separated: exact p = 2 / C(12, 6) = 0.00216; Holm over 8 quantities: the MMD and the target
    # both at 0.00216 are the two smallest (x 8, then x 7); the rest tie at p = 1
    assert mmd[5] == "0.0022" and mmd[6] == "0.017" and mmd[9] == "lower (better)"
    assert mmd[3] == "6 vs 6"
    target = lines[("aw", "iterations to mmd ≤ 0.02")]
    assert target[9] == "lower (better)" and target[7] == "100"  # minimum effect: one evaluation step
    assert lines[("aw", "hq")][9] == "no difference shown"
    assert "Holm" in md and "## Against `baseline`" in md
