"""``docs/RESULTS.md`` rendered from the raw data and per-claim CSVs that ``gan-optim reproduce all`` writes.

A claim with a raw file (``raw/<claim>.raw.csv.gz``: per seed, and per evaluation for the GAN runs) is
decided again from it (:func:`~gan_optim_experiments.claims.claim_from_raw`) by the verdict rule, and its
summary CSV (``<claim>.csv``, columns :data:`~gan_optim_experiments.claims.ROW_FIELDS`) must equal what
the raw data give (a stale summary is an error). A claim without a raw file is shown from its stored
summary and marked so. The prose around the numbers is fixed text: the papers' settings and ours
(:data:`~gan_optim_experiments.claims.SETTINGS`) and the rule (:data:`~gan_optim_experiments.stats.RULE_TEXT`).
``render(folder)`` is a pure function of the files, so a test can check that the page and the data agree.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .claims import (CLAIMS, FULL_STEPS, OLD_ROW_FIELDS, QUICK_STEPS, RAW_CLAIMS, RAW_SUFFIX, REDUCED_STEPS,
                     ROW_FIELDS, SETTINGS, claim_from_raw)
from .stats import ALPHA, RULE_TEXT

__all__ = ["TITLES", "raw_path", "read_rows", "render"]

TITLES = {
    "dirac": ("Dirac-WGAN (Ouyang & Agam, Fig. 2)",
              "fixed n_d = 5 does not converge; the adaptive schedule (λ = 1) converges to (1, 0)"),
    "saddle": ("TTUR saddle toy (Heusel et al.)", "lr 0.01 diverges, lr 0.001 converges, TTUR is fastest"),
    "angles": ("Gradient angles (Zadorozhnyy et al., Fig. 4)",
               "∠(∇L_r, ∇L_f) > 90° with the original loss; with aw both angles to ∇L_D < 90°"),
    "gaussians8-aw": ("8 Gaussians, GAN vs aw-GAN (Zadorozhnyy et al. §5.3)",
                      "plain GAN collapses onto few modes, aw-GAN covers all eight"),
    "gaussians8-wegan": ("8 Gaussians radius 3, WeGAN vs GAN (Pantazis et al. §4.1)",
                         "WeGAN has a lower MMD than plain GAN, best at η = 0.01, for k = 1 and 5"),
    "freeadv": ("Free adversarial D (Zhong, Liu & Hsieh)",
                "no extra backward pass per replay; reaches a target sooner than plain D training"),
    "digits": ("Techniques vs baseline on digits (FID-digits)",
               "each technique, and the best combination, reaches the target sooner than the baseline"),
    "gaussians8-aw-paper": ("8 Gaussians under the paper's protocol (claim 4 as in Zadorozhnyy et al. §5.3)",
                            "plain GAN collapses onto few modes, aw-GAN covers all eight (25 000 iterations)"),
    "gaussians8-protocols": ("8 Gaussians, every technique: `compare --protocol quick` vs `paper`",
                             "quick (4000 iterations) gives paper's (25 000) verdicts of each technique vs the "
                             "baseline"),
}


#: what a reader should keep in mind beyond the setting (fixed text: no measured number)
CAVEATS = {
    "saddle": "Start, noise and horizon are our choices; the paper's \"diverges\" may need a longer horizon, a "
              "larger start or larger noise than ours.",
    "angles": "Reading \"most steps\" as at least 80% of the iterations is ours.",
    "gaussians8-aw": "Our full protocol stops at 3000 of the paper's 25 000 iterations, possibly inside aw's early "
                     "phase: a \"no\" here is not evidence against the paper's claim at its horizon.",
    "gaussians8-wegan": "The paper reports its largest k = 5 gain closer to convergence, later than our horizon.",
    "freeadv": "The paper's claim is wall-clock time; seconds were measured on a machine shared with other jobs, "
               "so they carry that noise (iterations to target are reported beside them); the runs of one "
               "setting ran one after another, so a change of load falls on one setting more than on another. A "
               "seed that never reached the target counts its whole run's seconds, a lower bound: the \"seeds "
               "reached it\" note says how many did. The control with free-adv's D-update count (`nd:2`) "
               "separates the replays' effect from that of more D updates.",
    "gaussians8-aw-paper": "This is claim 4 at the paper's horizon and with [33]'s networks, losses and "
                           "optimisers; the paper shows one run and judges by eye, we count modes over seeds. "
                           "With a component std of 0.01 the 3σ rule asks for samples within 0.03 of a centre: "
                           "a low count means few modes captured that tightly, not necessarily modes dropped. "
                           "The snapshots of seed 0 (`gan-optim reproduce gaussians8-aw-paper` writes them; "
                           "![snapshots](img/gaussians8_aw_paper.png)) show both generators spread over eight "
                           "blobs around the ring, wider than 0.03 and often beside the centre. Coverage (a mode "
                           "holds half the data's share within 3.03σ, the radius of 99% of a component's own "
                           "samples) measures that same tightness, and floors near 0 for both generators: "
                           "\"collapses\" and \"covers\" here mean \"reproduces the components at their std "
                           "of 0.01\", which neither does in 25 000 iterations; the pictures show no mode "
                           "dropped by either, so the paper's contrast (one mode against eight) is not seen.",
    "gaussians8-protocols": "A verdict here is one technique against the baseline on one metric; all of them form "
                            "one Holm family per protocol, so a difference can pass the rule only from the seed "
                            "count in the \"seeds a side at which one comparison of this claim can pass\" row "
                            "on. At fewer seeds neither protocol can show a difference and the claim cannot be "
                            "decided: the 25 000-iteration runs of every technique are what limits the seed "
                            "count on a CPU (`--seeds N --device cuda` on a GPU). `quick`'s numbers are the paper "
                            "runs' evaluations up to quick's length (the same iterations: same seeds, data and "
                            "noise); `gan-optim compare --protocol quick` trains those iterations again and draws "
                            "its own evaluation noise. [33]'s plain GAN keeps oscillating (the aw paper's \"moving "
                            "off\"), so a verdict read at a single evaluation is noisy under either protocol; the "
                            "averaged verdicts use each run's last fifth. The adaptive schedule runs outside its "
                            "paper's scope (WGAN losses), free-adv with BCE instead of its hinge loss. Iterations "
                            "per second were measured on a shared machine.",
    "digits": "Each technique runs with its paper's loss and optimiser (the \"loss and optimiser\" rows), so "
              "the techniques differ from the baseline in their loss as well as in the technique itself: a "
              "difference is the paper's whole recipe against the plain GAN, not the technique alone. FastGAN's "
              "loss runs without its class terms (digits is run unconditional). Claim 7 is ours, not a paper's: "
              "each paper compares its technique with its own base model (adaptive: WGAN with n_d = 5; aw: the "
              "hinge GAN; TTUR: one time scale), not with the plain GAN, so a \"no\" here says that the paper's "
              "recipe is slower than the tuned plain GAN on this task, not that the paper's claim fails. Every "
              "technique, the baseline and the combination had the same learning-rate search (the pilot rows), "
              "on pilot seeds apart from the evaluation seeds; a rate chosen at the grid's top end means the "
              "search may have stopped short of that technique's best. The FID-digits target was set from a "
              "baseline pilot run. Time to target is read at the evaluations, every hundredth of the run (the "
              "\"evaluations every\" note); the verdict rule's minimum effect is one such step, the resolution of "
              "the measurement.",
}


def raw_path(folder: str | Path, claim: str) -> Path:
    """Where ``reproduce all`` puts a claim's raw data under its output folder."""
    return Path(folder) / "raw" / f"{claim}{RAW_SUFFIX}"


def _read_summary(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """A summary CSV's rows (missing test columns filled with "") and whether it has the rule's columns."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames not in (ROW_FIELDS, OLD_ROW_FIELDS):
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {ROW_FIELDS}")
        new = reader.fieldnames == ROW_FIELDS
        return [{k: r.get(k, "") for k in ROW_FIELDS} for r in reader], new


def _as_text(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rows as a CSV reader gives them back (numbers as their CSV text)."""
    return [{k: "" if r.get(k, "") is None else str(r.get(k, "")) for k in ROW_FIELDS} for r in rows]


def read_rows(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every claim's summary rows: decided again from its raw file where there is one (which must agree with
    the stored ``<claim>.csv``), else the stored summary. Each claim's rows carry ``source``: ``"raw"``,
    ``"summary"`` (stored, with the rule's columns) or ``"old"`` (stored before the verdict rule).
    Raises ``FileNotFoundError`` naming a missing summary and ``ValueError`` for other columns or a stale
    summary."""
    folder = Path(folder)
    out = {}
    for claim in CLAIMS:
        path = folder / f"{claim}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (run `gan-optim reproduce all --out {folder}`)")
        stored, new = _read_summary(path)
        raw = raw_path(folder, claim)
        if claim in RAW_CLAIMS and raw.is_file():
            rows = _as_text(claim_from_raw(claim, raw).rows)
            if rows != stored:
                raise ValueError(f"{path}: differs from what {raw} gives (regenerate it with "
                                 f"`gan-optim reproduce all --from-csv {folder} --write-summaries`)")
            source = "raw"
        else:
            rows, source = stored, ("summary" if new else "old")
        out[claim] = [{**r, "source": source} for r in rows]
    return out


def _g(text: str, digits: int = 3) -> str:
    if text == "":
        return "—"
    return f"{float(text):.{digits}g}"


def _interval(row: dict[str, Any]) -> str:
    if row["mean"] == "":
        return "—"
    digits = 4 if row["item"].startswith(("iterations", "D updates", "G updates", "first step")) else 3
    if row["ci_low"] == row["ci_high"]:
        return f"{_g(row['mean'], digits)} (all seeds)" if row["n"] not in ("", "1") else _g(row["mean"], digits)
    return f"{_g(row['mean'], digits)} [{_g(row['ci_low'], digits)}, {_g(row['ci_high'], digits)}]"


def _protocol(rows: list[dict[str, Any]]) -> tuple[str, int, int]:
    p = {r["item"]: r for r in rows if r["kind"] == "protocol"}
    return p["protocol"]["text"], int(float(p["iterations"]["mean"])), int(float(p["seeds"]["mean"]))


SOURCE_TEXT = {
    "raw": "raw data, verdict rule",
    "summary": "stored summary, verdict rule",
    "old": "**old data, old rule** (interval overlap): not re-decided",
}


def _p(text: str) -> str:
    if text == "":
        return "—"
    v = float(text)
    return f"{v:.2g}" if v < 0.01 else f"{v:.3f}".rstrip("0").rstrip(".") if v < 1 else "1"


def _effect(row: dict[str, Any]) -> str:
    if row["effect"] == "":
        return "—"
    digits = 4 if "iterations" in row["item"] or "step" in row["item"] else 3
    return f"{_g(row['effect'], digits)} [{_g(row['effect_low'], digits)}, {_g(row['effect_high'], digits)}]"


def _detectable(text: str) -> str:
    if text == "":
        return "—"
    return "none possible" if text == "inf" else _g(text)


def render(folder: str | Path) -> str:
    """The Markdown of ``docs/RESULTS.md`` from the raw data and CSVs in ``folder``."""
    data = read_rows(folder)
    protocols = {c: _protocol(rows) for c, rows in data.items()}
    verdicts = {c: next(r["group"] for r in rows if r["kind"] == "verdict") for c, rows in data.items()}
    sources = {c: rows[0]["source"] for c, rows in data.items()}
    kinds = {p for p, _, _ in protocols.values()}
    lines = ["# Results: reproducing the papers' claims on a CPU", "",
             "<!-- Generated by `gan-optim reproduce all --out docs/results --write-docs docs/RESULTS.md` "
             "(or `--from-csv docs/results` to decide again from the raw data without running). Do not edit by "
             "hand: tests/test_experiments.py checks that this page, docs/results/*.csv and docs/results/raw/ "
             "agree. -->", ""]
    if "quick" in kinds:
        lines += ["> **Smoke-test numbers.** These come from the `--quick` protocol (a few steps per run); the "
                  "verdicts mean nothing.", ""]
    elif kinds != {"full"}:
        reduced = [c for c in CLAIMS if protocols[c][0] != "full"]
        lines += ["> **Not the full protocol for " + ", ".join(f"claim {list(CLAIMS).index(c) + 1} (`{c}`)"
                                                              for c in reduced)
                  + ".** The claims named here ran for fewer iterations than our full protocol (the table below "
                  "gives both); the others ran our full protocol. Neither is the papers' protocol (each claim "
                  "gives the paper's setting beside ours): read every verdict as \"in this run\". "
                  "`gan-optim reproduce all` runs our full protocol for every claim.", ""]
    old = [c for c in CLAIMS if sources[c] == "old"]
    if old:
        lines += ["> **Not re-decided: " + ", ".join(f"claim {list(CLAIMS).index(c) + 1} (`{c}`)" for c in old)
                  + ".** Their raw data are not in `docs/results/raw/`, so their rows are the stored summaries of "
                  "an earlier run, decided by the earlier rule (a difference counted when two bootstrap intervals "
                  "do not overlap, a threshold passed when the whole interval is on one side). That rule is more "
                  "lenient than the one below; read those verdicts as unconfirmed until the claim is run again "
                  "(`gan-optim reproduce CLAIM`).", ""]
    lines += [
        "Every number on this page is read from the files in `docs/results/` that `gan-optim reproduce all` "
        "writes: per claim its raw data (`raw/<claim>.raw.csv.gz`: every seed's values, per evaluation for the "
        "GAN runs) and its summary (`<claim>.csv`). Each claim keeps the structure of its paper's experiment at "
        "CPU scale (MLPs, 8×8 sklearn digits instead of CIFAR-10); the paper's setting and ours are given side "
        "by side under each claim, and the choices a paper leaves open are ours, fixed before the runs.",
        "",
        "**Statistics.** A quantity measured per seed is reported as its mean over seeds with a percentile "
        "bootstrap 95% interval [low, high]; \"(all seeds)\" marks a quantity that was the same on every seed. "
        "These intervals describe the seeds; they do not decide anything. **The verdict rule:** " + RULE_TEXT
        + f" Each part gives its seed counts, the raw and the Holm-corrected p-value, the effect with its "
        f"interval, the minimum effect and the smallest difference of means its seed counts could have shown "
        f"(α = {ALPHA:g} after Holm, power 0.8, from the seeds' spread; \"none possible\": no outcome of the "
        "exact test at these seed counts reaches α). A part is **yes** when the rule shows the difference the "
        "claim states, **no** when it shows the opposite, else **no difference shown**. A claim is "
        "**reproduced** when every part is yes, **not reproduced** when every part is no, **no difference "
        "shown** when no part is no but some show no difference, and **partly** otherwise.",
        "",
        "**Time to target** counts a seed that never reaches the target as its whole run, so that no seed is "
        "dropped and the mean is a lower bound.",
        "",
        "| # | claim | command | protocol | iterations (ours in full) | seeds | decided from | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, claim in enumerate(CLAIMS, 1):
        kind, steps, seeds = protocols[claim]
        lines.append(f"| {i} | {TITLES[claim][1]} | `gan-optim reproduce {claim}` | {kind} | {steps} "
                     f"({FULL_STEPS[claim]}) | {seeds} | {SOURCE_TEXT[sources[claim]]} | **{verdicts[claim]}** |")
    for i, claim in enumerate(CLAIMS, 1):
        rows = data[claim]
        kind, steps, seeds = protocols[claim]
        paper, ours = SETTINGS[claim]
        lines += ["", f"## {i}. {TITLES[claim][0]}", "", f"`gan-optim reproduce {claim}` — claim: "
                  f"{TITLES[claim][1]}.", "",
                  f"- **Paper's setting:** {paper}", f"- **Ours:** {ours}",
                  *([f"- **Keep in mind:** {CAVEATS[claim]}"] if claim in CAVEATS else []),
                  f"- **This run:** {kind} protocol, {steps} iterations (full: {FULL_STEPS[claim]}; reduced: "
                  f"{REDUCED_STEPS[claim]}; quick: {QUICK_STEPS[claim]}), {seeds} seed(s); decided from "
                  f"{SOURCE_TEXT[sources[claim]]}.", "",
                  "| quantity | setting | mean [95% interval] | seeds | note |", "|---|---|---|---|---|"]
        for r in rows:
            if r["kind"] == "stat":
                lines.append(f"| {r['item']} | {r['group']} | {_interval(r)} | {r['n'] or '—'} | {r['text']} |")
        lines += ["", "| part of the claim | outcome | seeds | p | p (Holm) | effect [95% interval] | minimum effect "
                  "| smallest detectable | from |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if r["kind"] == "part":
                lines.append(f"| {r['item']} | {r['group']} | {r['n'] or '—'} | {_p(r['p'])} | {_p(r['p_holm'])} | "
                             f"{_effect(r)} | {_g(r['min_effect'])} | {_detectable(r['detectable'])} | "
                             f"{r['text']} |")
        lines += ["", f"**Verdict: {verdicts[claim]}.**"]
    return "\n".join(lines) + "\n"
