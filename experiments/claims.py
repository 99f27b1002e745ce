"""Paper claims for ``gan-optim reproduce CLAIM``: each runs its setting, writes its plot, returns a verdict.

Settings are the papers' where the papers give them, scaled down for a CPU;
every choice the papers leave open is stated in the claim's docstring, in
:data:`SETTINGS` and in ``docs/RESULTS.md``. Each claim measures its
quantities per seed and reports them as the mean over seeds with a bootstrap
95% interval (:mod:`.stats`). Each part of a claim is decided by the verdict
rule (:data:`.stats.RULE_TEXT`): exact rank-sum tests between settings and
exact sign tests against thresholds, Holm-corrected within the claim, with a
minimum effect; otherwise "no difference shown". The verdict: ``reproduced``
(every part yes), ``not reproduced`` (every part no), ``no difference shown``
(no part no, some not shown), else ``partly``.

Every claim writes its raw data (``<claim>.raw.csv.gz``: per seed, and per
evaluation for the GAN runs); the claims whose functions take ``raw`` decide
again from those rows alone (``gan-optim reproduce --from-csv``).

Protocols: the full one (``reduced=False``, iterations in :data:`FULL_STEPS`),
a reduced one (``reduced=True``, :data:`REDUCED_STEPS`, for a CPU budget of
minutes) and ``quick=True`` (a few steps, for tests: its verdict means nothing).
Seeds default to :data:`DEFAULT_SEEDS`.
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import plots
from .runner import (RunResult, default_workers, resolve_losses, run_compare, summarize, summary_markdown,
                     write_csv)
from .stats import (ALPHA, MODES_TOLERANCE, NO_DIFFERENCE, Interval, bootstrap_ci, decide, metric_tolerance,
                    min_rank_sum_p)
from .tasks import make_task
from .toys import SADDLE_SETTINGS, angles_run, dirac_run, saddle_run

__all__ = ["CLAIMS", "DEFAULT_SEEDS", "FULL_STEPS", "OLD_ROW_FIELDS", "RAW_CLAIMS", "RAW_SUFFIX", "REDUCED_STEPS",
           "ROW_FIELDS", "SETTINGS", "VERDICTS", "ClaimResult", "claim_from_raw", "read_raw", "run_claim", "verdict_of",
           "write_raw", "write_rows"]

VERDICTS = ("reproduced", "partly", "not reproduced", "no difference shown")

#: seeds per claim (the Dirac toy has no randomness: one run)
DEFAULT_SEEDS = {"dirac": 1, "saddle": 10, "angles": 10, "gaussians8-aw": 10, "gaussians8-wegan": 10,
                 "freeadv": 10, "digits": 10, "gaussians8-aw-paper": 10, "gaussians8-protocols": 3}
#: iterations of our full protocol (toys: updates/steps; angles: D iterations)
FULL_STEPS = {"dirac": 20000, "saddle": 3000, "angles": 50, "gaussians8-aw": 3000, "gaussians8-wegan": 1000,
              "freeadv": 3000, "digits": 3000, "gaussians8-aw-paper": 25000, "gaussians8-protocols": 25000}
#: iterations of the reduced protocol (the toys run in full)
REDUCED_STEPS = {"dirac": 20000, "saddle": 3000, "angles": 50, "gaussians8-aw": 1000, "gaussians8-wegan": 500,
                 "freeadv": 1000, "digits": 1000, "gaussians8-aw-paper": 5000, "gaussians8-protocols": 10000}
#: claim 7's equal tuning: G learning rates tried by every technique, the baseline and the combination (TTUR's
#: D at 3x G; the others D at G's rate), from adaptive's paper rate 5e-5 doubling to 1.28e-2, on the pilot seeds
TUNING_GRID = (5e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3, 6.4e-3, 1.28e-2)
PILOT_SEEDS = (100, 101)
#: the techniques of claim 4 under [33]'s protocol
CLAIM4_PAPER = ("plain", "aw")
QUICK_STEPS = {"dirac": 60, "saddle": 50, "angles": 3, "gaussians8-aw": 20, "gaussians8-wegan": 10,
               "freeadv": 20, "digits": 10, "gaussians8-aw-paper": 20, "gaussians8-protocols": 20}

#: per claim: the paper's setting, and ours where it differs
SETTINGS: dict[str, tuple[str, str]] = {
    "dirac": ("Ouyang & Agam Fig. 2: Dirac-WGAN, start (1.5, 0.5), |ψ| ≤ 0.5; step size and horizon not given.",
              "Alternating gradient steps with α = 0.05, 20 000 updates; converged = distance to (1, 0) below "
              "0.05 over the last 10% of updates. Deterministic: one run."),
    "saddle": ("Heusel et al. (TTUR) saddle toy (1 + x²)(100 − y²); start, noise and horizon not given.",
               "SGD from (1, 1), gradient noise N(0, 1), 3000 steps; diverged = blew up or final ‖(x, y)‖ above "
               "the start's; converged = final norm < 0.01; speed = first step with norm < 0.05 (a seed that "
               "never gets there counts as the run length)."),
    "angles": ("Zadorozhnyy et al. Fig. 4: first 50 D iterations, DCGAN on CIFAR-10, hinge loss.",
               "MLP G and D (2 × 256) on 8×8 digits, Adam 2e-4, batch 64, hinge loss, 50 iterations; "
               "\"most steps\" read as ≥ 80% of iterations, per seed."),
    "gaussians8-aw": ("Zadorozhnyy et al. §5.3: unrolled-GAN ring of 8 Gaussians, snapshots to 25 000 "
                      "iterations; mode width, learning rate and noise size not given.",
                      "Unit circle, std 0.05, BCE loss, MLPs 2 × 128, z 16-d, Adam 1e-3 (β 0.5, 0.999), batch "
                      "256; 3000 iterations in our full protocol. Modes covered: a mode holds at least half the data's "
                      "share of samples within 3.03σ (the radius that holds 99% of a mode's own samples); the "
                      "smallest and largest share per mode beside it, and the standard 3σ rule (20 per 2500) and "
                      "our 2% rule as secondary columns."),
    "gaussians8-wegan": ("Pantazis et al. §4.1: 8 Gaussians radius 3, identity covariance, MLPs 2 × 32, 2-d "
                         "noise; η ∈ {0.01, 0.1, 0.5}, k ∈ {1, 5}; optimiser and horizon as per their code.",
                         "Adam 1e-3, batch 256, 1000 iterations in our full protocol; MMD (Gaussian kernel, "
                         "bandwidth 2, 2000 reference samples) averaged over the evaluation points after step 0. "
                         "Every setting runs the task's plain losses (the \"loss and optimiser that ran\" rows): "
                         "WeGAN with the non-saturating G loss, not Algorithm 1's saturating one."),
    "freeadv": ("Zhong, Liu & Hsieh: free adversarial D training (replays on one batch), CIFAR-scale GANs.",
                "8 Gaussians on the unit circle (claim 4's setting), 2 replays, ε 0.02, 3000 iterations in our "
                "full protocol; the control is plain D with free-adv's D-update count (2 D steps per G step, "
                "nd:2), plain D beside it; target MMD ≤ 0.02 in training seconds, as the paper (iterations "
                "beside)."),
    "digits": ("Each technique's paper on its own CIFAR/ImageNet-scale setting; no paper compares them. Their "
               "losses: aw hinge (eq. 7); WeGAN the original GAN's BCE D and saturating G loss (Algorithm 1); "
               "adaptive WGAN with weight clipping, RMSprop lr 5e-5 (Algorithm 1; the clip value is not given, "
               "they follow WGAN, whose default is 0.01); TTUR DCGAN's BCE D and non-saturating G, Adam; FastGAN "
               "hinge D and -D for G with class terms, Adam (0, 0.9).",
               "8×8 digits, MLP G/D (2 × 256), batch 64, 3000 iterations in our full protocol; target FID-digits "
               "≤ 150 in iterations (seconds secondary). Each technique runs with its paper's loss (as under the "
               "paper's setting; adaptive's clip 0.01; FastGAN's without the class terms, as digits is run "
               "unconditional; optimiser Adam (0.5, 0.999) where the paper leaves it to the base model); the "
               "baseline is the plain GAN (BCE D, non-saturating G, Adam (0.5, 0.999)). A combination runs with "
               "the setting of its first component in the order aw, freeadv, adaptive, wegan, ttur. Equal "
               "tuning: every technique, the baseline and the combination try the G learning rates 5e-5, 1e-4, "
               "…, 1.28e-2 (9 rates, ×2 steps; TTUR's D at 3× G, the others' D at G's rate) on two pilot seeds "
               "(100, 101) with the protocol's iterations, and run with the rate of the lowest mean final "
               "FID-digits; every technique is judged against the baseline tuned the same way. The combination "
               "joins the two singles with the fewest mean iterations to target (aw and freeadv are not "
               "combined)."),
    "gaussians8-aw-paper": ("Zadorozhnyy et al. §5.3 train \"a plain GAN as in [33]\" (Metz et al.'s unrolled-GAN "
                            "demo with 0 unrolling steps) on 8 Gaussians on the unit circle and show samples every "
                            "5000 iterations to 25 000. [33]'s demo: std 0.01, z ~ N(0, I_256), G and D 2 × 128 "
                            "tanh, orthogonal init (gain 1.4), BCE D loss and the saturating G loss, Adam D 1e-4 / "
                            "G 1e-3 (β1 0.5, eps 1e-8), batch 512, simultaneous updates; its centres come from "
                            "linspace(0, 2π, 8), so two coincide (7 distinct modes).",
                            "The same, with 8 distinct centres (angles 2πk/8), β2 0.999, aw = Algorithm 1 on the "
                            "BCE D loss (ε 0.05, α1 0.5, α2 0.75, δ 0.05); 2500 samples per snapshot; both mode "
                            "rules at 3σ = 0.03 of the component std 0.01."),
    "gaussians8-protocols": ("[33]'s plain-GAN protocol of claim 4 (Zadorozhnyy et al. §5.3): batch 512, 25 000 "
                             "iterations. Each technique's own paper: aw on this protocol (its §5.3); WeGAN on 8 "
                             "Gaussians of radius 3 with η ∈ {0.01, 0.1, 0.5}, best 0.01, saturating G loss "
                             "(Algorithm 1); the adaptive schedule on WGAN losses (λ 1 to 10); TTUR with D faster "
                             "than G (WGAN-GP 3e-4 / 1e-4); free-adv with 2 replays, L∞ ε 6e-3 for images in "
                             "[-1, 1], hinge loss.",
                             "Every technique of `gan-optim compare` on [33]'s protocol (claim 4's, with 8 distinct "
                             "centres): `paper` = 25 000 iterations, `quick` = the same runs' first 4000 (same "
                             "seeds, data and noise streams; the default of `gan-optim compare`), read from the "
                             "paper runs' snapshot at 4000 rather than trained twice. aw: Algorithm 1 "
                             "on the BCE D loss; wegan: η 0.01 on the saturating G loss; adaptive: λ 1, one network "
                             "per iteration (so not simultaneous), BCE D and saturating G losses (its paper's scope "
                             "is WGAN losses); ttur: G at [33]'s 1e-3, D at 3× (3e-3) — [33]'s own rates (D 1e-4, G "
                             "1e-3) already differ, the other way round; freeadv: 2 replays, L∞ ε 6e-3 (the data "
                             "range is the summary's \"data range\" row), BCE ([33]'s loss, the log form of its eq. 4) instead of hinge. "
                             "Final evaluation 2500 samples (both mode rules), MMD and Fréchet distance on the "
                             "first 1000. Each technique vs the baseline per metric by the verdict rule (one Holm family "
                             "per protocol), on each run's metric averaged over the last fifth of its run (evaluations "
                             "every 1/25 of quick's length, so both windows hold several); a part per verdict where "
                             "paper shows a difference (yes when quick's is the same), and one part for the verdicts "
                             "where paper shows none (yes when quick shows none for every one)."),
}

ROW_FIELDS = ["claim", "kind", "item", "group", "n", "mean", "ci_low", "ci_high", "text", "p", "p_holm", "effect",
              "effect_low", "effect_high", "min_effect", "detectable"]
#: the columns of summaries written before the verdict rule (claims not recomputed from raw data keep them)
OLD_ROW_FIELDS = ROW_FIELDS[:9]
#: a part's outcome when the rule shows no difference
NO_DIFF = NO_DIFFERENCE
PART_OUTCOMES = ("yes", "no", NO_DIFF)


@dataclass
class ClaimResult:
    """Outcome of one claim: verdict (one of :data:`VERDICTS`), one line, numbers, files and the summary rows
    (mean and bootstrap interval of every quantity, the protocol, each part's outcome with its test:
    ``ROW_FIELDS``)."""

    claim: str
    verdict: str
    line: str
    numbers: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Test:
    description: str
    a: list[float]
    b: list[float] | float
    min_effect: float
    yes_if: str  # "lower" or "higher": the outcome of a vs b that supports the claim
    why: str


class _Summary:
    """Collects a claim's summary rows and decides its verdict from the parts.

    A part is either a test (:meth:`test`: per-seed values against another setting's or a threshold, decided
    by :func:`.stats.decide` over all the claim's tests together, Holm-corrected) or, for a deterministic
    run, a value against a threshold (:meth:`part`)."""

    def __init__(self, claim: str, steps: int, seeds: int, protocol: str) -> None:
        self.claim = claim
        self.rows: list[dict[str, Any]] = []
        self.parts: list[tuple[str, str]] = []
        self.tests: list[_Test] = []
        self._add("protocol", "protocol", "", text=protocol)
        self._add("protocol", "iterations", "", mean=steps)
        self._add("protocol", "seeds", "", mean=seeds)

    def _add(self, kind: str, item: str, group: str, *, n: int | str = "", mean: float | str = "",
             low: float | str = "", high: float | str = "", text: str = "", **test: float | str) -> None:
        row = {"claim": self.claim, "kind": kind, "item": item, "group": group, "n": n, "mean": _num(mean),
               "ci_low": _num(low), "ci_high": _num(high), "text": text}
        row.update({k: _num(test.get(k, "")) for k in ROW_FIELDS[9:]})
        self.rows.append(row)

    def stat(self, item: str, group: str, ci: Interval, text: str = "") -> Interval:
        self._add("stat", item, group, n=ci.n, mean=ci.mean, low=ci.low, high=ci.high, text=text)
        return ci

    def point(self, item: str, group: str, value: float, text: str) -> None:
        """A number derived from the means (no seeds, no interval)."""
        self._add("stat", item, group, mean=value, text=text)

    def note(self, item: str, group: str, text: str) -> None:
        """A setting written out (no number)."""
        self._add("stat", item, group, text=text)

    def values(self, item: str, group: str, values: list[float], text: str = "") -> Interval:
        return self.stat(item, group, bootstrap_ci(values), text)

    def part(self, description: str, outcome: str, why: str) -> None:
        """A part decided without a test (a deterministic run against a threshold)."""
        assert outcome in PART_OUTCOMES
        self.parts.append((description, outcome))
        self._add("part", description, outcome, text=why)

    def test(self, description: str, a: list[float], b: list[float] | float, *, min_effect: float,
             yes_if: str, why: str) -> None:
        """A part decided by the verdict rule: ``a`` vs ``b`` (per-seed values, or a threshold); yes when the
        rule says ``yes_if`` (``"lower"``/``"higher"``), no when it says the opposite, else no difference
        shown."""
        assert yes_if in ("lower", "higher")
        self.tests.append(_Test(description, [float(v) for v in a],
                                b if isinstance(b, (int, float)) else [float(v) for v in b],
                                float(min_effect), yes_if, why))

    def _decide_tests(self) -> None:
        if not self.tests:
            return
        decided = decide([(t.a, t.b, t.min_effect) for t in self.tests])
        for t, c in zip(self.tests, decided):
            outcome = ("yes" if c.outcome == t.yes_if else NO_DIFF if c.outcome == NO_DIFFERENCE else "no")
            self.parts.append((t.description, outcome))
            seeds = f"{c.a_n}" if c.b_n == 0 else f"{c.a_n} vs {c.b_n}"
            self._add("part", t.description, outcome, n=seeds, text=t.why, p=c.p, p_holm=c.p_holm,
                      effect=c.effect.mean, effect_low=c.effect.low, effect_high=c.effect.high,
                      min_effect=c.min_effect, detectable=c.detectable)
        self.tests = []

    def result(self, files: list[Path], numbers: dict[str, Any] | None = None) -> ClaimResult:
        self._decide_tests()
        verdict = verdict_of([o for _, o in self.parts])
        self._add("verdict", "verdict", verdict)
        line = f"{verdict}: {self.claim}: " + "; ".join(f"{d}: {o}" for d, o in self.parts)
        return ClaimResult(self.claim, verdict, line, numbers or {}, files, self.rows)


def verdict_of(outcomes: list[str]) -> str:
    """``reproduced`` (every part yes), ``not reproduced`` (every part no), ``no difference shown`` (no part
    no, some not shown), else ``partly``."""
    if outcomes and all(o == "yes" for o in outcomes):
        return "reproduced"
    if outcomes and all(o == "no" for o in outcomes):
        return "not reproduced"
    if "no" not in outcomes:
        return NO_DIFF
    return "partly"


def _num(v: float | str) -> float | str:
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return "" if math.isnan(v) else float(f"{v:.6g}")


def _values(results: list[RunResult], tech: str, fn: Callable[[RunResult], float]) -> list[float]:
    return [float(fn(r)) for r in results if r.technique == tech]


def _ci_text(ci: Interval, digits: int = 3) -> str:
    if ci.n == 0:
        return "—"
    return f"{ci.mean:.{digits}g} [{ci.low:.{digits}g}, {ci.high:.{digits}g}]"


def _protocol(claim: str, quick: bool, reduced: bool) -> tuple[int, str]:
    if quick:
        return QUICK_STEPS[claim], "quick"
    if reduced and REDUCED_STEPS[claim] != FULL_STEPS[claim]:
        return REDUCED_STEPS[claim], "reduced"
    return FULL_STEPS[claim], "full"


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """A claim's summary rows as CSV (``ROW_FIELDS``)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_FIELDS)
        w.writeheader()
        w.writerows(rows)
    return path


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows of a toy run as CSV."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


#: where a claim's raw data go, beside its summary: per seed (toys) or per seed and evaluation (GAN runs)
RAW_SUFFIX = ".raw.csv.gz"
def write_raw(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Raw rows as gzip-compressed CSV (columns: the union of the rows' keys, in first-seen order)."""
    path = Path(path)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with gzip.open(path, "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def read_raw(path: str | Path) -> list[dict[str, Any]]:
    """Rows of :func:`write_raw`, numbers parsed (``int`` where integral text, else ``float``; other text kept)."""
    def parse(v: str) -> Any:
        try:
            return int(v)
        except ValueError:
            pass
        try:
            return float(v)
        except ValueError:
            return v

    with gzip.open(Path(path), "rt", newline="") as f:
        return [{k: parse(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _results_from_rows(rows: list[dict[str, Any]]) -> list[RunResult]:
    """Compare runs rebuilt from their per-evaluation rows (:func:`.runner.write_csv`), in first-seen order."""
    runs: dict[tuple[str, int], RunResult] = {}
    for r in rows:
        key = (str(r["technique"]), int(r["seed"]))
        if key not in runs:
            runs[key] = RunResult(key[0], key[1])
        runs[key].rows.append(r)
    for res in runs.values():
        last = res.rows[-1]
        res.d_updates, res.g_updates = int(last["d_updates"]), int(last["g_updates"])
        res.backward_calls = int(last.get("backward_calls", 0) or 0)
    return list(runs.values())


def _protocol_of(claim: str, steps: int) -> str:
    """The protocol a raw file ran, from its length."""
    for name, table in (("full", FULL_STEPS), ("reduced", REDUCED_STEPS), ("quick", QUICK_STEPS)):
        if table[claim] == steps:
            return name
    return f"custom ({steps} iterations)"


def _relative(values: list[float]) -> float:
    """The tolerance of a metric without a fixed one: a share of the reference's mean magnitude."""
    return metric_tolerance("", values)


def claim_dirac(out: Path, quick: bool = False, reduced: bool = False, raw: list[dict[str, Any]] | None = None,
                **_: Any) -> ClaimResult:
    """Claim 1 (Ouyang & Agam Fig. 2): fixed n_d=5 does not converge; adaptive (lambda=1) converges to (1, 0).

    Setting: start (1.5, 0.5), |psi| <= 0.5, alternating gradient steps with
    alpha = 0.05 (not given in the paper), 20000 updates. Converged means the
    distance to (1, 0) stays below 0.05 over the last 10% of updates. The toy
    has no randomness: one run per schedule, decided by its value (no test).
    ``raw``: the rows of a previous run's raw file (one per schedule) instead of running.
    """
    files: list[Path] = []
    if raw is None:
        steps, protocol = _protocol("dirac", quick, reduced)
        runs = [dirac_run("fixed", steps=steps), dirac_run("adaptive", steps=steps)]
        tail = max(1, steps // 10)
        raw = [{"mode": r["mode"], "updates": steps, "tail_updates": tail,
                "tail_max_distance": max(r["distance"][-tail:]), "final_theta": r["final"][0],
                "final_psi": r["final"][1], "d_updates": r["d_updates"], "g_updates": r["g_updates"]}
               for r in runs]
        files += [plots.plot_dirac(runs, out / "dirac.png"), write_raw(out / f"dirac{RAW_SUFFIX}", raw)]
    steps = int(raw[0]["updates"])
    sm = _Summary("dirac", steps, 1, _protocol_of("dirac", steps))
    tails = []
    for r in raw:
        name = "fixed n_d=5" if r["mode"] == "fixed" else "adaptive λ=1"
        tails.append(float(r["tail_max_distance"]))
        sm.values("max distance to (1, 0) over the last 10%", name, [r["tail_max_distance"]])
        sm.values("final θ", name, [r["final_theta"]])
        sm.values("final ψ", name, [r["final_psi"]])
        sm.values("D updates", name, [r["d_updates"]])
        sm.values("G updates", name, [r["g_updates"]])
    sm.part("fixed n_d=5 does not converge", "yes" if tails[0] >= 0.05 else "no",
            f"max distance over the last 10% {tails[0]:.3g} (converged: < 0.05); deterministic, one run, no test")
    sm.part("adaptive converges to (1, 0)", "yes" if tails[1] < 0.05 else "no",
            f"max distance over the last 10% {tails[1]:.3g} (converged: < 0.05); deterministic, one run, no test")
    return sm.result(files, {"fixed_tail": tails[0], "adaptive_tail": tails[1]})


def _first_below(values: list[float], threshold: float) -> float:
    for i, v in enumerate(values):
        if v < threshold:
            return float(i)
    return math.inf


def claim_saddle(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["saddle"], reduced: bool = False,
                 raw: list[dict[str, Any]] | None = None, **_: Any) -> ClaimResult:
    """Claim 2 (Heusel et al., saddle toy): lr 0.01 diverges, 0.001 converges, TTUR (1e-4 x / 1e-2 y) fastest.

    Setting (start, noise and horizon are not given in the paper): start (1, 1),
    gradient noise N(0, 1) (seeds 0..seeds-1), plain SGD, 3000 steps.
    Diverged: blew up (counted as norm 1e6), or final ||(x,y)|| above the
    start's; converged: final norm < 0.01; speed: first step with norm < 0.05,
    a seed that never gets there counted as the run length. Parts by the verdict rule: sign tests of the final
    norms against the start's and against 0.01, rank-sum tests of TTUR's speed against each other setting
    (minimum effect one step). ``raw``: a previous run's per-seed rows instead of running.
    """
    files: list[Path] = []
    if raw is None:
        steps, _kind = _protocol("saddle", quick, reduced)
        runs = {name: [saddle_run(a, b, steps=steps, seed=s) for s in range(seeds)]
                for name, (a, b) in SADDLE_SETTINGS.items()}
        raw = [{"setting": n, "seed": s, "lr_x": r["lr_x"], "lr_y": r["lr_y"], "steps": steps,
                "steps_run": len(r["norm"]) - 1, "start_norm": r["norm"][0], "diverged": int(r["diverged"]),
                "final_norm": r["final_norm"], "first_below_0.05": min(_first_below(r["norm"], 0.05), float(steps))}
               for n, rs in runs.items() for s, r in enumerate(rs)]
        files += [plots.plot_saddle({n: rs[0] for n, rs in runs.items()}, out / "saddle.png"),
                  write_raw(out / f"saddle{RAW_SUFFIX}", raw)]
    steps = int(raw[0]["steps"])
    names = list(dict.fromkeys(str(r["setting"]) for r in raw))
    by = {n: [r for r in raw if r["setting"] == n] for n in names}
    n_seeds = len(by[names[0]])
    sm = _Summary("saddle", steps, n_seeds, _protocol_of("saddle", steps))
    start = float(raw[0]["start_norm"])
    final = {n: [1e6 if r["diverged"] else float(r["final_norm"]) for r in rs] for n, rs in by.items()}
    speed = {n: [float(r["first_below_0.05"]) for r in rs] for n, rs in by.items()}
    for n, rs in by.items():
        sm.values("final ‖(x, y)‖", n, final[n], text="a blown-up run counts as 1e6")
        sm.values("seeds diverged (share)", n, [float(r["diverged"] or r["final_norm"] > start) for r in rs])
        sm.values("first step with ‖(x, y)‖ < 0.05", n, speed[n])
    sm.test(f"{names[0]} diverges (final norm above the start's {start:.3g})", final[names[0]], start,
            min_effect=0.0, yes_if="higher", why=f"final norm {_ci_text(bootstrap_ci(final[names[0]]))}")
    sm.test(f"{names[1]} converges (final norm below 0.01)", final[names[1]], 0.01, min_effect=0.0,
            yes_if="lower", why=f"final norm {_ci_text(bootstrap_ci(final[names[1]]))}")
    for n in names:
        if n != names[2]:
            sm.test(f"{names[2]} faster to ‖(x, y)‖ < 0.05 than {n}", speed[names[2]], speed[n], min_effect=1.0,
                    yes_if="lower", why=f"first step {_ci_text(bootstrap_ci(speed[names[2]]), 4)} vs "
                                        f"{_ci_text(bootstrap_ci(speed[n]), 4)}")
    return sm.result(files)


def claim_angles(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["angles"], reduced: bool = False,
                 raw: list[dict[str, Any]] | None = None, device: str = "cpu", **_: Any) -> ClaimResult:
    """Claim 3 (Zadorozhnyy et al. Fig. 4, on 8x8 digits instead of CIFAR-10): first 50 D iterations.

    Original loss: angle(grad L_r, grad L_f) > 90 deg; aw loss: angle(grad L_r,
    grad L_D) and angle(grad L_f, grad L_D) < 90 deg, "in most steps", read as
    in at least 80% of the iterations: per seed, the share of such iterations; a part is yes when the sign
    test of the seeds' shares against 0.8 says higher. ``raw``: a previous run's per-iteration rows.
    """
    files: list[Path] = []
    if raw is None:
        iters, _kind = _protocol("angles", quick, reduced)
        orig = [angles_run(False, iterations=iters, seed=s, device=device) for s in range(seeds)]
        aw = [angles_run(True, iterations=iters, seed=s, device=device) for s in range(seeds)]
        raw = [{"loss": name, "seed": seed, "iteration": i + 1, "angle_rf": a, "angle_rD": b, "angle_fD": c}
               for name, runs_ in (("original", orig), ("aw", aw)) for seed, r in enumerate(runs_)
               for i, (a, b, c) in enumerate(zip(r["rf"], r["rD"], r["fD"]))]
        files += [plots.plot_angles(orig[0], aw[0], out / "angles.png"), write_raw(out / f"angles{RAW_SUFFIX}", raw)]
    iters = max(int(r["iteration"]) for r in raw)

    def per_seed(loss: str) -> list[list[dict[str, Any]]]:
        seeds_ = list(dict.fromkeys(int(r["seed"]) for r in raw if r["loss"] == loss))
        return [[r for r in raw if r["loss"] == loss and r["seed"] == s] for s in seeds_]

    orig_runs, aw_runs = per_seed("original"), per_seed("aw")
    sm = _Summary("angles", iters, len(orig_runs), _protocol_of("angles", iters))
    rf = [float(np.mean([r["angle_rf"] > 90 for r in run])) for run in orig_runs]
    sm.values("share of iterations with ∠(∇L_r,∇L_f) > 90°", "original loss", rf)
    sm.values("mean ∠(∇L_r,∇L_f) (degrees)", "original loss", [float(np.mean([r["angle_rf"] for r in run]))
                                                                for run in orig_runs])
    sm.values("share of iterations with ∠(∇L_r,∇L_D) > 90°", "original loss",
              [float(np.mean([r["angle_rD"] > 90 for r in run])) for run in orig_runs])
    sm.values("share of iterations with ∠(∇L_f,∇L_D) > 90°", "original loss",
              [float(np.mean([r["angle_fD"] > 90 for r in run])) for run in orig_runs])
    both = [float(np.mean([r["angle_rD"] < 90 and r["angle_fD"] < 90 for r in run])) for run in aw_runs]
    sm.values("share of iterations with both ∠(∇L_r,∇L_D), ∠(∇L_f,∇L_D) < 90°", "aw loss", both)
    sm.values("largest of the two angles to ∇L_D (degrees, mean over iterations)", "aw loss",
              [float(np.mean([max(r["angle_rD"], r["angle_fD"]) for r in run])) for run in aw_runs])
    sm.test("original loss: ∠(∇L_r,∇L_f) > 90° in most (≥ 80%) iterations", rf, 0.8, min_effect=0.0,
            yes_if="higher", why=f"share {_ci_text(bootstrap_ci(rf))} vs 0.8")
    sm.test("aw loss: both angles to ∇L_D < 90° in most (≥ 80%) iterations", both, 0.8, min_effect=0.0,
            yes_if="higher", why=f"share {_ci_text(bootstrap_ci(both))} vs 0.8")
    return sm.result(files)


def _compare_files(results: list[RunResult], task, out: Path, stem: str, *, steps: int, seeds: list[int],
                   target=None, title: str | None = None) -> tuple[dict[str, Any], list[Path]]:
    summary = summarize(results, task, target)
    write_csv(results, out / f"{stem}.csv")
    (out / f"{stem}.md").write_text(summary_markdown(summary, task, steps=steps, seeds=seeds, target=target,
                                                     title=title, results=results))
    files = [plots.plot_curves(results, task, out / f"{stem}_curves.png"),
             plots.plot_samples(results, task, out / f"{stem}_samples.png")]
    return summary, files


def _final(results: list[RunResult], tech: str, metric: str) -> list[float]:
    return [float(r.rows[-1].get(metric, math.nan)) for r in results if r.technique == tech]


def _to_target(results: list[RunResult], tech: str, metric: str, value: float, column: str) -> list[float]:
    """``column`` (``"step"`` or ``"wall_s"``) at the first evaluation with ``metric <= value``, per seed;
    a seed that never got there counts its whole run (its last row's ``column``)."""
    out = []
    for r in results:
        if r.technique == tech:
            hit = next((row[column] for row in r.rows if float(row.get(metric, math.nan)) <= value), None)
            out.append(float(hit if hit is not None else r.rows[-1][column]))
    return out


def _target_steps(results: list[RunResult], tech: str, metric: str, value: float) -> list[float]:
    """Iterations to ``metric <= value`` per seed."""
    return _to_target(results, tech, metric, value, "step")


def _target_seconds(results: list[RunResult], tech: str, metric: str, value: float) -> list[float]:
    """Training seconds to ``metric <= value`` per seed."""
    return _to_target(results, tech, metric, value, "wall_s")


def _eval_step(results: list[RunResult]) -> int:
    rows = results[0].rows
    return int(rows[1]["step"] - rows[0]["step"]) if len(rows) > 1 else int(rows[-1]["step"])


def _run_files(results: list[RunResult], task, out: Path, claim: str, stem: str, *, steps: int, seeds: list[int],
               title: str) -> list[Path]:
    """A claim's compare files (CSV, summary.md, curves, samples) and its raw file (every evaluation row)."""
    _, files = _compare_files(results, task, out, stem, steps=steps, seeds=seeds, title=title)
    files.append(write_raw(out / f"{claim}{RAW_SUFFIX}", [row for r in results for row in r.rows]))
    return files


def _summary_of(claim: str, results: list[RunResult], reference: str) -> _Summary:
    """A claim's summary for runs read back or just run: its length and ``reference``'s seed count."""
    steps = int(results[0].rows[-1]["step"])
    n_seeds = len({r.seed for r in results if r.technique == reference})
    return _Summary(claim, steps, n_seeds, _protocol_of(claim, steps))


def claim_gaussians8_aw(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["gaussians8-aw"],
                        reduced: bool = False, raw: list[dict[str, Any]] | None = None, device: str = "cpu",
                        **_: Any) -> ClaimResult:
    """Claim 4 (Zadorozhnyy et al. §5.3): plain GAN collapses onto few modes; aw-GAN covers all eight.

    Unit circle, BCE loss (the paper's third study), MLPs 2 x 128, Adam lr 1e-3;
    3000 iterations instead of 25000. Modes at the last evaluation by
    :func:`.metrics.mode_shares` (a mode is covered when it holds at least half the data's share within 3.03σ,
    the radius holding 99% of a mode's own samples): "collapses" = sign test of the plain GAN's seeds below
    7.5 covered modes, "covers all eight" = aw's above 7.5, and aw covers more modes than the plain GAN
    (rank-sum test, minimum effect one mode). The standard 3σ rule and our 2% rule are reported beside it.
    ``raw``: a previous run's per-evaluation rows instead of running.
    """
    task = make_task("gaussians8", radius=1.0)
    files: list[Path] = []
    if raw is None:
        steps, _kind = _protocol("gaussians8-aw", quick, reduced)
        seed_list = list(range(seeds))
        results = run_compare(task, ["baseline", "aw"], seed_list, steps, eval_every=max(steps // 30, 1),
                              progress=False, device=device)
        files = _run_files(results, task, out, "gaussians8-aw", "gaussians8_aw", steps=steps, seeds=seed_list,
                           title="Claim 4: 8 Gaussians on the unit circle, GAN vs aw-GAN")
    else:
        results = _results_from_rows(raw)
    sm = _summary_of("gaussians8-aw", results, "baseline")
    cov: dict[str, list[float]] = {}
    for tech, label in (("baseline", "plain GAN"), ("aw", "aw-GAN")):
        cov[tech] = _final(results, tech, "coverage")
        for m, name in (("coverage", "modes covered (≥ half the data's share within 3.03σ)"),
                        ("share_min", "smallest share of samples at a mode (within 3.03σ)"),
                        ("share_max", "largest share of samples at a mode (within 3.03σ)"),
                        ("modes_veegan", "modes, standard rule (3σ, 20 per 2500; secondary)"),
                        ("modes", "modes, our 2% rule (secondary)"), ("hq", "high-quality share"), ("mmd", "MMD")):
            sm.values(name, label, _final(results, tech, m))
    sm.test("plain GAN collapses (fewer than 8 modes covered)", cov["baseline"], 7.5, min_effect=0.5,
            yes_if="lower", why=f"modes covered {_ci_text(bootstrap_ci(cov['baseline']))} vs 7.5")
    sm.test("aw-GAN covers all 8 modes", cov["aw"], 7.5, min_effect=0.5, yes_if="higher",
            why=f"modes covered {_ci_text(bootstrap_ci(cov['aw']))} vs 7.5")
    sm.test("aw-GAN covers more modes than the plain GAN", cov["aw"], cov["baseline"], min_effect=MODES_TOLERANCE,
            yes_if="higher", why=f"{_ci_text(bootstrap_ci(cov['aw']))} vs {_ci_text(bootstrap_ci(cov['baseline']))}")
    return sm.result(files)


def claim_gaussians8_wegan(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["gaussians8-wegan"],
                           reduced: bool = False, raw: list[dict[str, Any]] | None = None, device: str = "cpu",
                           **_: Any) -> ClaimResult:
    """Claim 5 (Pantazis et al. §4.1): WeGAN has lower MMD than plain GAN, best at eta = 0.01, for k = 1 and 5.

    Radius 3, identity covariance, MLPs 2 x 32, z 2-d; Adam lr 1e-3, batch 256;
    1000 iterations; eta in {0.01, 0.1, 0.5}; 10 seeds. Every setting runs the task's plain losses (BCE D,
    non-saturating G), written in the summary from :func:`.runner.resolve_losses`; the paper's Algorithm 1
    uses the saturating G loss. Per seed, MMD is averaged over the evaluation points after step 0 (the paper
    plots relative improvement per epoch). Parts by the verdict rule (rank-sum tests, minimum effect
    :func:`.stats.metric_tolerance`: 5% of the reference's mean). ``raw``: a previous run's per-evaluation rows.
    """
    task = make_task("gaussians8", radius=3.0, std=1.0, hidden=32, layers=2, z_dim=2)
    etas = [0.01, 0.1, 0.5]
    files: list[Path] = []
    if raw is None:
        steps, _kind = _protocol("gaussians8-wegan", quick, reduced)
        seed_list = list(range(seeds))
        results = []
        for k in (1, 5):
            techs = [f"nd:{k}"] + [f"wegan:{e}+nd:{k}" for e in etas]
            res = run_compare(task, techs, seed_list, steps, eval_every=max(steps // 20, 1), progress=False,
                              device=device)
            _, f = _compare_files(res, task, out, f"gaussians8_wegan_k{k}", steps=steps, seeds=seed_list,
                                  title=f"Claim 5: 8 Gaussians radius 3, WeGAN vs GAN, k={k}")
            files += f
            results += res
        files.append(write_raw(out / f"gaussians8-wegan{RAW_SUFFIX}", [row for r in results for row in r.rows]))
    else:
        results = _results_from_rows(raw)
    sm = _summary_of("gaussians8-wegan", results, "nd:1")
    for t in dict.fromkeys(r.technique for r in results):
        setting = resolve_losses(t, "plain", d_loss=str(task.defaults["loss"]))
        sm.note("loss and optimiser that ran", t, setting.describe())
    for k in (1, 5):
        techs = [f"nd:{k}"] + [f"wegan:{e}+nd:{k}" for e in etas]
        mmd: dict[str, list[float]] = {}
        for t, label in zip(techs, ["plain GAN"] + [f"WeGAN η={e}" for e in etas]):
            mmd[t] = _values(results, t, lambda r: float(np.mean([row["mmd"] for row in r.rows[1:]])))
            sm.values(f"k={k}: mean MMD over the run", label, mmd[t])
        base = float(np.mean(mmd[techs[0]]))
        for t, e in zip(techs[1:], etas):
            sm.point(f"k={k}: relative improvement of the mean MMD over plain GAN", f"WeGAN η={e}",
                     (base - float(np.mean(mmd[t]))) / base, "from the means over seeds (no interval)")
        sm.test(f"k={k}: WeGAN η=0.01 lower MMD than plain GAN", mmd[techs[1]], mmd[techs[0]],
                min_effect=_relative(mmd[techs[0]]), yes_if="lower",
                why=f"{_ci_text(bootstrap_ci(mmd[techs[1]]))} vs {_ci_text(bootstrap_ci(mmd[techs[0]]))}")
        for t, e in zip(techs[2:], etas[1:]):
            sm.test(f"k={k}: η=0.01 lower MMD than η={e}", mmd[techs[1]], mmd[t], min_effect=_relative(mmd[t]),
                    yes_if="lower",
                    why=f"{_ci_text(bootstrap_ci(mmd[techs[1]]))} vs {_ci_text(bootstrap_ci(mmd[t]))}")
    return sm.result(files)


def claim_freeadv(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["freeadv"], reduced: bool = False,
                  raw: list[dict[str, Any]] | None = None, device: str = "cpu", **_: Any) -> ClaimResult:
    """Claim 6 (Zhong et al.): free adversarial D has no extra backward per replay and reaches a target sooner.

    On 8 Gaussians (unit circle), plain D training vs FreeAdvDiscriminator
    (2 replays, eps 0.02), and the control with free-adv's D-update count: plain D with 2 D steps per G step
    (``nd:2``). Backward passes through D are counted with a hook (an exact count, no test). The paper's
    claim is wall-clock: training seconds to MMD <= 0.02 (a seed that never gets there counts its whole run),
    free-adv against the equal-D-updates control and against plain D, by the verdict rule (rank-sum tests,
    minimum effect the control's seconds per evaluation step). Iterations to target are reported beside.
    ``raw``: a previous run's per-evaluation rows instead of running.
    """
    from .runner import train_run

    task = make_task("gaussians8", radius=1.0)
    techs = {"baseline": "plain D", "nd:2": "control: plain D, 2 D steps per G step", "freeadv": "free-adv D"}
    files: list[Path] = []
    if raw is None:
        steps, _kind = _protocol("freeadv", quick, reduced)
        seed_list = list(range(seeds))
        results = [train_run(task, tech, s, steps, eval_every=max(steps // 30, 1), count_backward=True,
                             device=device) for tech in techs for s in seed_list]
        files = _run_files(results, task, out, "freeadv", "freeadv", steps=steps, seeds=seed_list,
                           title="Claim 6: free adversarial D vs plain D, 8 Gaussians")
    else:
        results = _results_from_rows(raw)
    sm = _summary_of("freeadv", results, "baseline")
    steps = int(results[0].rows[-1]["step"])
    metric, value = task.target
    every = _eval_step(results)
    per_update: dict[str, list[float]] = {}
    secs: dict[str, list[float]] = {}
    for tech, label in techs.items():
        runs = [r for r in results if r.technique == tech]
        per_update[tech] = [(r.backward_calls - r.g_updates) / max(r.d_updates, 1) for r in runs]
        sm.values("backward passes through D per D update", label, per_update[tech], text="counted, no test")
        secs[tech] = _target_seconds(results, tech, metric, value)
        reached = sum(any(float(row[metric]) <= value for row in r.rows) for r in runs)
        sm.values(f"training seconds to MMD ≤ {value:g}", label, secs[tech],
                  text=f"{reached}/{len(runs)} seeds reached it; a seed that did not counts its whole run")
        sm.values(f"iterations to MMD ≤ {value:g}", label, _target_steps(results, tech, metric, value),
                  text=f"evaluations every {every} iterations")
        sm.values("training seconds per iteration", label, [r.rows[-1]["wall_s"] / steps for r in runs],
                  text="the machine was shared")
        sm.values("final MMD", label, _final(results, tech, "mmd"))
        sm.values("modes covered (≥ half the data's share within 3.03σ)", label, _final(results, tech, "coverage"))
        sm.values("D updates", label, [r.d_updates for r in runs])
    pb, pf = per_update["baseline"], per_update["freeadv"]
    same = bool(pb) and len(set(pb + pf)) == 1
    sm.part("no extra backward pass per replay", "yes" if same else "no",
            f"plain {_ci_text(bootstrap_ci(pb))}, free-adv {_ci_text(bootstrap_ci(pf))} per D update (counted)")
    # one evaluation step, in the control's seconds
    step_s = float(np.mean([r.rows[-1]["wall_s"] for r in results if r.technique == "nd:2"])) / steps * every
    for ref, name in (("nd:2", "the equal-D-updates control (nd:2)"), ("baseline", "plain D")):
        sm.test(f"free-adv reaches MMD ≤ {value:g} in fewer training seconds than {name}", secs["freeadv"],
                secs[ref], min_effect=step_s, yes_if="lower",
                why=f"seconds {_ci_text(bootstrap_ci(secs['freeadv']))} vs {_ci_text(bootstrap_ci(secs[ref]))}; "
                    f"minimum effect one evaluation step ({every} iterations of nd:2)")
    return sm.result(files)


def _combine(a: str, b: str) -> str | None:
    d_step = {"aw", "freeadv"}
    if a in d_step and b in d_step:
        return None
    order = ("aw", "wegan", "adaptive", "ttur", "freeadv")
    return "+".join(sorted((a, b), key=order.index))


def claim_digits(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["digits"],
                 classifier_path: str | None = None, reduced: bool = False, device: str = "cpu",
                 raw: list[dict[str, Any]] | None = None, **_: Any) -> ClaimResult:
    """Claim 7: each technique and the best combination vs baseline on digits, to an FID-digits target.

    MLP G/D (2 x 256), batch 64, 3000 iterations. Each technique runs with its
    paper's loss and optimiser (``losses="paper"``, :data:`.runner.PAPER_LOSSES`;
    a combination takes its first component's in :data:`.runner.PAPER_PRECEDENCE`);
    the baseline is the plain GAN (BCE D, non-saturating G, Adam (0.5, 0.999)).
    Equal tuning: every technique, the baseline and the combination pick their
    G learning rate from :data:`TUNING_GRID` (every third rate with ``quick``) by the lowest
    mean final FID-digits on :data:`PILOT_SEEDS` (same iterations as the protocol), then run on the
    evaluation seeds at that rate, evaluated every hundredth of the run. Iterations to FID-digits <= 150
    (a seed that never reaches it counts as the run length; seconds secondary). The
    combination is the two singles with the fewest mean iterations to target
    (ties by final FID) joined by ``+`` (aw and freeadv both replace the D step,
    so they are not combined). Each technique against the baseline by the verdict rule (rank-sum tests,
    Holm, minimum effect one evaluation step). ``raw``: a previous run's rows (the pilots' final rows,
    ``phase`` ``pilot``, and every evaluation of the runs, ``phase`` ``run``) instead of running.
    """
    files: list[Path] = []
    if raw is None:
        raw, files = _run_digits(out, quick, seeds, classifier_path, reduced, device)
    pilots = [r for r in raw if r["phase"] == "pilot"]
    results = _results_from_rows([r for r in raw if r["phase"] == "run"])
    techs = list(dict.fromkeys(r.technique for r in results))
    combo = techs[-1]
    sm = _summary_of("digits", results, "baseline")
    n_seeds = len({r.seed for r in results if r.technique == "baseline"})
    metric, value = DIGITS_TARGET
    every = _eval_step(results)
    for tech in techs:
        setting = resolve_losses(tech, _digits_losses(tech), d_loss="bce")
        sm.note("loss and optimiser", tech, setting.describe() + f" — {setting.source}")
        for lr in dict.fromkeys(float(r["lr"]) for r in pilots if r["technique"] == tech):
            sm.values("pilot: final FID-digits", f"{tech}, G lr {lr:g}",
                      [r["fid"] for r in pilots if r["technique"] == tech and float(r["lr"]) == lr],
                      text=f"pilot seeds {sorted({int(r['seed']) for r in pilots if r['technique'] == tech})}")
        run_lr = next(float(row["lr"]) for r in results if r.technique == tech for row in r.rows)
        sm.point("chosen G learning rate", tech, run_lr, text="lowest pilot mean final FID-digits, from the means")
    steps_to: dict[str, list[float]] = {}
    for tech in techs:
        label = tech + (" (the rule's combination)" if tech == combo else "")
        steps_to[tech] = _target_steps(results, tech, metric, value)
        reached = [any(float(row[metric]) <= value for row in r.rows) for r in results if r.technique == tech]
        sm.values(f"iterations to FID-digits ≤ {value:g}", label, steps_to[tech],
                  text=f"{sum(reached)}/{n_seeds} seeds reached it; evaluations every {every} iterations")
        sm.values("seconds to target (seeds that reached it)", label,
                  [s for s, ok in zip(_target_seconds(results, tech, metric, value), reached) if ok],
                  text="the machine was shared")
        sm.values("final FID-digits", label, _final(results, tech, "fid"))
        sm.values("final KID", label, _final(results, tech, "kid"))
        sm.values("D updates", label, [r.d_updates for r in results if r.technique == tech])
        sm.values("G updates", label, [r.g_updates for r in results if r.technique == tech])
    base = steps_to["baseline"]
    for tech in techs[1:]:
        # a difference smaller than one evaluation step is below the measurement's resolution
        sm.test(f"{tech} reaches the target in fewer iterations than the baseline (both tuned)", steps_to[tech],
                base, min_effect=float(every), yes_if="lower",
                why=f"{_ci_text(bootstrap_ci(steps_to[tech]), 4)} vs {_ci_text(bootstrap_ci(base), 4)}; "
                    f"evaluations every {every} iterations")
    return sm.result(files, {"combination": combo})


#: claim 7's target (the digits task's: FID-digits <= 150), kept here so that deciding from raw data needs no
#: classifier
DIGITS_TARGET = ("fid", 150.0)


def _digits_losses(tech: str) -> str:
    # the baseline is the plain GAN; every technique brings its paper's loss
    return "plain" if tech == "baseline" else "paper"


def _run_digits(out: Path, quick: bool, seeds: int, classifier_path: str | None, reduced: bool,
                device: str) -> tuple[list[dict[str, Any]], list[Path]]:
    """Claim 7's runs: per technique the pilots of the equal search, then the evaluation seeds at the chosen
    rate; the singles first, then the combination. Returns the raw rows and the files written."""
    steps, _kind = _protocol("digits", quick, reduced)
    task = make_task("digits", classifier_path=classifier_path)
    assert task.target == DIGITS_TARGET
    seed_list = list(range(seeds))
    singles = ["baseline", "adaptive", "aw", "wegan", "ttur", "freeadv"]
    # every 1/100 of the run (30 iterations in full): fine enough to resolve the one-step differences of an
    # earlier run evaluated every 100 iterations; the rule's minimum effect is one such step
    every = max(steps // 100, 1)
    # the quick protocol (a smoke test) tries every third rate only, to stay seconds long
    grid = TUNING_GRID[::3] if quick else TUNING_GRID
    pilot_rows: list[dict[str, Any]] = []

    def tune_and_run(tech: str) -> list[RunResult]:
        """The equal search on the pilot seeds, then the evaluation seeds at the chosen rate."""
        scores = []
        for lr in grid:
            pilot = run_compare(task, [tech], list(PILOT_SEEDS), steps, eval_every=steps, progress=False,
                                workers=default_workers(), lr=lr, losses=_digits_losses(tech), device=device)
            pilot_rows.extend({**r.rows[-1], "phase": "pilot", "lr": lr} for r in pilot)
            mean = float(np.mean([r.rows[-1]["fid"] for r in pilot]))
            scores.append((mean if math.isfinite(mean) else math.inf, lr))  # a diverged pilot ranks last
        lr_best = min(scores)[1]
        runs = run_compare(task, [tech], seed_list, steps, eval_every=every, progress=False,
                           workers=default_workers(), lr=lr_best, losses=_digits_losses(tech), device=device)
        for r in runs:
            r.rows = [{**row, "phase": "run", "lr": lr_best} for row in r.rows]
        return runs

    results: list[RunResult] = []
    for tech in singles:
        results += tune_and_run(tech)
    summary = summarize(results, task)
    ranked = sorted(singles[1:], key=lambda t: (summary[t]["target_step"].mean, summary[t]["fid"].mean))
    combo = next(c for c in (_combine(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]) if c)
    results += tune_and_run(combo)
    _, files = _compare_files(results, task, out, "digits", steps=steps, seeds=seed_list,
                              title="Claim 7: techniques vs baseline on 8x8 digits (FID-digits)")
    raw = pilot_rows + [row for r in results for row in r.rows]
    files.append(write_raw(out / f"digits{RAW_SUFFIX}", raw))
    return raw, files


def claim_gaussians8_aw_paper(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["gaussians8-aw-paper"],
                              reduced: bool = False, runs: list[dict[str, Any]] | None = None,
                              device: str = "cpu", raw: list[dict[str, Any]] | None = None,
                              **_: Any) -> ClaimResult:
    """Claim 4 under the paper's own protocol (:mod:`gan_optim_experiments.paper_gaussians8`).

    Modes covered at the last snapshot (:func:`.metrics.mode_shares`): "collapses" = sign test of the plain
    GAN's seeds below 7.5, "covers all eight" = aw's above 7.5; every snapshot's coverage and the standard
    3σ rule (secondary) are reported. ``runs`` (from :func:`paper_gaussians8.load`) summarises saved runs
    instead of running again; ``raw`` (a previous run's per-snapshot rows) decides without the samples.
    """
    files: list[Path] = []
    if raw is None:
        raw, files = _run_aw_paper(out, quick, seeds, reduced, runs, device)
    steps = max(int(r["iteration"]) for r in raw)
    seed_count = len({r["seed"] for r in raw})
    sm = _Summary("gaussians8-aw-paper", steps, seed_count, _protocol_of("gaussians8-aw-paper", steps))
    labels = {"plain": "plain GAN", "aw": "aw-GAN"}

    def per_seed(tech: str, it: int, column: str) -> list[float]:
        return [float(r[column]) for r in raw if r["technique"] == tech and int(r["iteration"]) == it]

    for it in sorted({int(r["iteration"]) for r in raw}):
        for tech in CLAIM4_PAPER:
            sm.values(f"modes covered (≥ half the data's share within 3.03σ), iteration {it}", labels[tech],
                      per_seed(tech, it, "coverage"))
            sm.values(f"modes, standard rule (3σ, 20 per 2500; secondary), iteration {it}", labels[tech],
                      per_seed(tech, it, "modes_standard"))
    for tech in CLAIM4_PAPER:
        sm.values(f"smallest share of samples at a mode, iteration {steps}", labels[tech],
                  per_seed(tech, steps, "share_min"))
        sm.values(f"modes, our rule (2%), iteration {steps}", labels[tech], per_seed(tech, steps, "modes_ours"))
        sm.values(f"high-quality share, iteration {steps}", labels[tech], per_seed(tech, steps, "hq"))
    cov = {tech: per_seed(tech, steps, "coverage") for tech in CLAIM4_PAPER}
    sm.test("plain GAN collapses (fewer than 8 modes covered)", cov["plain"], 7.5, min_effect=0.5, yes_if="lower",
            why=f"modes covered at iteration {steps} {_ci_text(bootstrap_ci(cov['plain']))} vs 7.5")
    sm.test("aw-GAN covers all 8 modes", cov["aw"], 7.5, min_effect=0.5, yes_if="higher",
            why=f"modes covered at iteration {steps} {_ci_text(bootstrap_ci(cov['aw']))} vs 7.5")
    return sm.result(files)


def _run_aw_paper(out: Path, quick: bool, seeds: int, reduced: bool, runs: list[dict[str, Any]] | None,
                  device: str) -> tuple[list[dict[str, Any]], list[Path]]:
    """Claim 8's runs (or ``runs`` saved before): the snapshots (``.npz``), their picture, and the raw rows
    (per technique, seed and snapshot: both mode rules, hq and the shares per mode)."""
    from . import paper_gaussians8 as paper
    from .metrics import mode_shares

    steps, _kind = _protocol("gaussians8-aw-paper", quick, reduced)
    small: dict[str, Any] = {"iterations": steps, "every": max(steps // 5, 1)}
    if quick:
        small.update({"batch": 64, "n_samples": 500})
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if runs is None:
        runs = paper.run_all(CLAIM4_PAPER, range(seeds), small, workers=default_workers(), device=device)
        files.append(paper.save(runs, out / "gaussians8_aw_paper.npz"))
    std = float(paper.PROTOCOL["std"])
    raw = [{"technique": r["technique"], "seed": r["seed"], "iteration": it,
            **{q: v for q, v in zip(paper.QUANTITIES, paper.snapshot_values(samples))},
            **mode_shares(torch.as_tensor(samples), paper.centres(), std)}
           for r in runs for it, samples in sorted(r["snapshots"].items())]
    files.append(write_raw(out / f"gaussians8-aw-paper{RAW_SUFFIX}", raw))
    files.append(plots.plot_snapshots(runs, paper.centres(), out / "gaussians8_aw_paper.png"))
    return raw, files


#: the metrics compared between protocols: (column, name in the summary)
PROTOCOL_METRICS = (("coverage", "modes covered (≥ half the data's share within 3.03σ)"),
                    ("modes_veegan", "modes, standard rule (3σ, 20 per 2500; secondary)"),
                    ("modes", "modes, our rule (2%; secondary)"),
                    ("hq", "high-quality share"), ("mmd", "MMD"), ("frechet", "Fréchet distance"))
PROTOCOL_TECHNIQUES = ("baseline", "aw", "wegan", "adaptive", "ttur", "freeadv")
#: the share of a run's evaluations, at its end, that the averaged verdicts use
WINDOW_FRACTION = 0.2


def _rule_verdicts(per_seed: dict[tuple[str, str], list[float]], lower_better: dict[str, bool]
                   ) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], float]]:
    """Each technique vs the baseline per metric by the verdict rule (one Holm family): better, worse, or no
    difference shown (minimum effect by :func:`.stats.metric_tolerance`), and each comparison's smallest
    detectable effect."""
    def tolerance(m: str) -> float:
        return metric_tolerance(m, per_seed[("baseline", m)])

    keys = [(t, m) for (t, m) in per_seed if t != "baseline"]
    decided = decide([(per_seed[k], per_seed[("baseline", k[1])], tolerance(k[1])) for k in keys])
    out = {}
    for (t, m), c in zip(keys, decided):
        out[(t, m)] = c.outcome if c.outcome == NO_DIFFERENCE else (
            "better" if (c.outcome == "lower") == lower_better[m] else "worse")
    return out, {k: c.detectable for k, c in zip(keys, decided)}


def _verdicts(results: list[RunResult], lower_better: dict[str, bool], row: int = -1,
              ) -> dict[tuple[str, str], tuple[str, Interval]]:
    """``{(technique, metric): (verdict vs baseline, interval)}`` from each run's ``row``-th evaluation (the
    baseline's verdict is empty)."""
    per_seed = {(t, m): [float(r.rows[row].get(m, math.nan)) for r in results if r.technique == t]
                for t in dict.fromkeys(r.technique for r in results) for m, _ in PROTOCOL_METRICS}
    verdicts, _ = _rule_verdicts(per_seed, lower_better)
    return {k: (verdicts.get(k, ""), bootstrap_ci(v)) for k, v in per_seed.items()}


def _window_verdicts(results: list[RunResult], lower_better: dict[str, bool], start: float,
                     ) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], float]]:
    """Verdicts vs the baseline from each run's metric averaged over its evaluations at iteration >= ``start``,
    and each comparison's smallest detectable effect."""
    def value(r: RunResult, m: str) -> float:
        return float(np.mean([float(row.get(m, math.nan)) for row in r.rows if row["step"] >= start]))

    per_seed = {(t, m): [value(r, m) for r in results if r.technique == t]
                for t in dict.fromkeys(r.technique for r in results) for m, _ in PROTOCOL_METRICS}
    return _rule_verdicts(per_seed, lower_better)


def _cache_name(name: str, protocol: dict[str, Any]) -> str:
    """A folder name per protocol, so that saved runs are reused only for the protocol they ran."""
    return f"{name}_runs_" + "_".join(f"{k}{v}" for k, v in sorted(protocol.items()))


def _ranks(means: dict[str, float], lower_better: bool) -> dict[str, float]:
    """Rank of each technique, 1 = best by its mean; tied means share their average rank."""
    key = {t: (v if lower_better else -v) for t, v in means.items()}
    return {t: 1 + sum(key[u] < key[t] for u in key) + (sum(key[u] == key[t] for u in key) - 1) / 2 for t in key}


def _order_text(ranks: dict[str, float]) -> str:
    """Best first; tied techniques joined by '='."""
    groups: dict[float, list[str]] = {}
    for t, r in ranks.items():
        groups.setdefault(r, []).append(t)
    return ", ".join(" = ".join(groups[r]) for r in sorted(groups))


def _spearman(a: dict[str, float], b: dict[str, float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the (tie-averaged) ranks; NaN when one side is all
    ties."""
    keys = list(a)
    x, y = np.array([a[k] for k in keys]), np.array([b[k] for k in keys])
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def claim_gaussians8_protocols(out: Path, quick: bool = False, seeds: int = DEFAULT_SEEDS["gaussians8-protocols"],
                               reduced: bool = False, device: str = "cpu", raw: list[dict[str, Any]] | None = None,
                               **_: Any) -> ClaimResult:
    """Does ``compare --protocol quick`` give ``--protocol paper``'s verdicts? Every technique, both protocols.

    ``quick`` is ``paper`` stopped early: the same seeds, weights, data and noise, so its runs are the
    paper runs' first iterations (tested: a run's state at iteration k does not depend on how long
    it goes on). They are read here from the paper runs' evaluations up to quick's length rather than
    trained twice. Each paper run is saved under ``out`` as it finishes and reused from there (an
    interrupted claim resumes). Per technique and metric, the verdict against the baseline by the verdict
    rule on each run's metric averaged over the last fifth of its run, quick's against paper's; the paper
    runs' evaluations show from which length on the single-evaluation verdicts are paper's. ``raw``: a
    previous run's per-evaluation rows (with the ``quick_iterations`` column) instead of running.
    """
    files: list[Path] = []
    if raw is None:
        raw, files = _run_protocols(out, quick, seeds, reduced, device)
    from . import paper_gaussians8 as paper

    q_steps, steps = int(raw[0]["quick_iterations"]), int(raw[0]["paper_iterations"])
    p_res = _results_from_rows(raw)
    q_res = [RunResult(r.technique, r.seed, [row for row in r.rows if row["step"] <= q_steps]) for r in p_res]
    p_last = int(p_res[0].rows[-1]["step"])
    n_seeds = len({r.seed for r in p_res if r.technique == "baseline"})
    sm = _Summary("gaussians8-protocols", steps, n_seeds, _protocol_of("gaussians8-protocols", steps))
    sm._add("protocol", "quick iterations", "", mean=q_steps)
    lower = paper.compare_task().lower_better
    names = dict(PROTOCOL_METRICS)
    vq, vp = _verdicts(q_res, lower), _verdicts(p_res, lower)
    sm.note("evaluations", "quick and paper", f"every {p_res[0].rows[1]['step'] - p_res[0].rows[0]['step']} "
            f"iterations; quick's last at iteration {q_res[0].rows[-1]['step']}, paper's at {p_last} (of {steps})")
    for m, label in PROTOCOL_METRICS:
        for t in PROTOCOL_TECHNIQUES:
            for v, name, n in ((vq, "quick", q_res[0].rows[-1]["step"]), (vp, "paper", p_last)):
                sm.stat(f"{label}, {name}, last evaluation (iteration {n})", t, v[(t, m)][1],
                        "" if t == "baseline" else f"vs baseline: {v[(t, m)][0]}")
    for t in PROTOCOL_TECHNIQUES:
        sm.values("training iterations per second (one thread)", t,
                  [steps / r.rows[-1]["run_seconds"] for r in p_res if r.technique == t],
                  f"paper runs, {steps} iterations over their training seconds (no evaluation); the machine was "
                  "shared")
    for m, label in PROTOCOL_METRICS:
        rq, rp = (_ranks({t: v[(t, m)][1].mean for t in PROTOCOL_TECHNIQUES}, lower[m]) for v in (vq, vp))
        sm.point(f"{label}: rank correlation of the techniques' means, quick vs paper", "Spearman",
                 _spearman(rq, rp), f"from the means; best first: quick {_order_text(rq)}; paper {_order_text(rp)}")
    pairs = [(t, m) for t in PROTOCOL_TECHNIQUES if t != "baseline" for m, _ in PROTOCOL_METRICS]
    for i, row in enumerate(p_res[0].rows):
        if row["step"] % q_steps and row["step"] != p_last:  # at each multiple of quick's length, and the last
            continue
        vi = _verdicts(p_res, lower, i)
        sm.point(f"single-evaluation verdicts equal to paper's last ones, at iteration {row['step']}", "paper runs",
                 sum(vi[k][0] == vp[k][0] for k in pairs), f"of {len(pairs)}, from the verdict rule at that evaluation")
    # A verdict read at one evaluation moves with [33]'s oscillation; each run's metric averaged over the
    # evaluations of its last WINDOW_FRACTION is steadier. Both windows are the same share of their run.
    q_start, p_start = (1 - WINDOW_FRACTION) * q_steps, (1 - WINDOW_FRACTION) * steps
    (wq, dq), (wp, dp) = _window_verdicts(q_res, lower, q_start), _window_verdicts(p_res, lower, p_start)
    counts = [sum(row["step"] >= start for row in res[0].rows)
              for res, start in ((q_res, q_start), (p_res, p_start))]
    window = (f"each run's metric averaged over its last {WINDOW_FRACTION:.0%}: iterations ≥ {q_start:g} "
              f"({counts[0]} evaluations, quick) and ≥ {p_start:g} ({counts[1]} evaluations, paper)")
    sm.note("averaged verdicts: the window", "quick and paper", window)
    family = len(pairs)
    needed = next(n for n in range(2, 100) if min_rank_sum_p(n, n) * family < ALPHA)
    sm.point("seeds a side at which one comparison of this claim can pass the rule", "verdict rule", needed,
             f"from the rule: the exact rank-sum test's smallest two-sided p at n vs n seeds, times the {family} "
             f"comparisons of one Holm family, below α = {ALPHA:g}")
    sm.point("data range: largest absolute coordinate of 100 000 samples of the data", "protocol",
             paper.data_range(), "from the protocol's data stream (seed 0's, as the runs draw it); free-adv's ε is "
             "set against it")
    for (t, m) in pairs:
        sm.note(f"averaged verdict vs baseline: {t}, {names[m]}", "quick vs paper",
                f"quick: {wq[(t, m)]}; paper: {wp[(t, m)]}")
    sm.point("averaged verdicts: quick's equal to paper's", "quick vs paper", sum(wq[k] == wp[k] for k in pairs),
             f"of {len(pairs)}, from the verdict rule on each run's window average")
    # Where no comparison at these seed counts can pass the rule (smallest detectable effect infinite),
    # "paper shows no difference and quick shows none" holds by construction: it is not a finding.
    if all(math.isinf(d) for d in list(dq.values()) + list(dp.values())):
        sm.part("quick gives paper's verdicts", NO_DIFF,
                f"at {n_seeds} seeds per technique no comparison of this claim's {len(pairs)} (one Holm family per "
                "protocol) can reach α = 0.05 with the exact rank-sum test (smallest detectable effect: none "
                "possible), so neither protocol can show a difference")
        return sm.result(files)
    diffs = [k for k in pairs if wp[k] != NO_DIFFERENCE]
    for t, m in diffs:
        sm.part(f"{t}, {names[m]}: paper's averaged verdict ({wp[(t, m)]}) is quick's",
                "yes" if wq[(t, m)] == wp[(t, m)] else "no", f"quick: {wq[(t, m)]}; paper: {wp[(t, m)]}")
    none = [k for k in pairs if wp[k] == NO_DIFFERENCE]
    if none:
        agree = sum(wq[k] == NO_DIFFERENCE for k in none)
        sm.part("where paper's averaged verdict shows no difference, quick's shows none",
                "yes" if agree == len(none) else "no", f"{agree} of {len(none)}")
    return sm.result(files)


def _run_protocols(out: Path, quick: bool, seeds: int, reduced: bool, device: str
                   ) -> tuple[list[dict[str, Any]], list[Path]]:
    """Claim 9's paper runs (every technique; each saved under ``out`` as it finishes), their summaries per
    protocol and curves. Returns the raw rows (every evaluation, with ``quick_iterations``) and the files."""
    from . import paper_gaussians8 as paper

    steps, _kind = _protocol("gaussians8-protocols", quick, reduced)
    q_steps = int(paper.PROTOCOLS["quick"]["iterations"])
    base: dict[str, Any] = {}
    if quick:  # a smoke test: tiny runs, meaningless verdicts
        q_steps = steps // 2
        base = {"batch": 64, "n_samples": 500}
    # evaluations every 1/25 of quick's length, so that the last fifth of either protocol holds several
    p_protocol = {**base, "iterations": steps, "every": math.gcd(max(q_steps // 25, 1), q_steps)}
    q_protocol = {**base, "iterations": q_steps}
    seed_list = list(range(seeds))
    cache = _cache_name("paper" if device == "cpu" else f"paper_{device.replace(':', '')}", p_protocol)
    p_runs = paper.run_all(PROTOCOL_TECHNIQUES, seed_list, p_protocol, workers=default_workers(), evaluate=True,
                           cache=out / cache, device=device)
    task = paper.compare_task(p_protocol)
    p_res = paper.to_results(p_runs, task)
    q_res = [RunResult(r.technique, r.seed, [row for row in r.rows if row["step"] <= q_steps]) for r in p_res]
    files = []
    for res, name, n in ((q_res, "quick", q_steps), (p_res, "paper", steps)):
        files.append(write_csv(res, out / f"gaussians8_protocol_{name}.csv"))
        (out / f"gaussians8_protocol_{name}.md").write_text(summary_markdown(
            summarize(res, task), task, steps=n, seeds=seed_list, title=f"8 Gaussians, protocol {name}",
            note=paper.describe(name, q_protocol if name == "quick" else p_protocol), results=res))
        files.append(out / f"gaussians8_protocol_{name}.md")
    files.append(plots.plot_curves(p_res, task, out / "gaussians8_protocols_curves.png"))
    # the protocol's lengths and each run's training seconds: the evaluation grid (1/25 of quick's length)
    # need not end on paper's last iteration
    seconds = {(r["technique"], r["seed"]): r["seconds"] for r in p_runs}
    raw = [{**row, "quick_iterations": q_steps, "paper_iterations": steps,
            "run_seconds": round(seconds[(r.technique, r.seed)], 4)} for r in p_res for row in r.rows]
    files.append(write_raw(out / f"gaussians8-protocols{RAW_SUFFIX}", raw))
    return raw, files


CLAIMS: dict[str, Callable[..., ClaimResult]] = {
    "dirac": claim_dirac,
    "saddle": claim_saddle,
    "angles": claim_angles,
    "gaussians8-aw": claim_gaussians8_aw,
    "gaussians8-wegan": claim_gaussians8_wegan,
    "freeadv": claim_freeadv,
    "digits": claim_digits,
    "gaussians8-aw-paper": claim_gaussians8_aw_paper,
    "gaussians8-protocols": claim_gaussians8_protocols,
}


#: the claims that decide again from their raw file alone (``raw=`` rows of ``<claim>.raw.csv.gz``)
RAW_CLAIMS = ("dirac", "saddle", "angles", "gaussians8-aw", "gaussians8-wegan", "freeadv", "digits",
              "gaussians8-aw-paper", "gaussians8-protocols")


def claim_from_raw(name: str, path: str | Path) -> ClaimResult:
    """Decide claim ``name`` again from its raw file (per seed / per evaluation), without running anything."""
    if name not in RAW_CLAIMS:
        raise ValueError(f"Invalid claim: {name!r} (decided from raw data: {', '.join(RAW_CLAIMS)})")
    return CLAIMS[name](Path(path).parent, raw=read_raw(path))


def run_claim(name: str, out: str | Path, **kwargs: Any) -> ClaimResult:
    """Run one claim by name, writing its files under ``out``."""
    if name not in CLAIMS:
        raise ValueError(f"Invalid claim: {name!r} (known: {', '.join(CLAIMS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return CLAIMS[name](out, **kwargs)
