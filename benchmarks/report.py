"""The benchmark's rows as results, verdicts against the targets, and the Markdown table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["AW_EXTRA_MEMORY_TARGET", "CSV_FIELDS", "OPS_TARGETS", "TIME_TARGETS", "BenchResult", "format_table", "time_target",
           "write_csv"]

#: The targets (ratio to plain) for the table's verdict column, at full size.
TIME_TARGETS = {
    "aw": 1.05, "aw-concat": 1.10, "wegan": 1.02, "scheduler-D": 1.02, "scheduler-G": 1.02,
    "free-adv-r1": 1.10, "free-adv-r2": 1.10, "free-adv-r2-atomic": 1.10,
}
#: Where a model or the ``--quick`` size has its own target: (component, model, quick) -> ratio;
#: ``None`` as the model means every model. Small models show the fixed cost per call.
_TARGET_OVERRIDES = {
    ("aw", "mlp", False): 1.6, ("aw", "mlp", True): 1.6, ("aw", None, True): 1.15,
    ("aw-concat", "biggan", False): 1.15, ("aw-concat", "biggan", True): 1.15,
    ("free-adv-r1", None, True): 1.15, ("free-adv-r2", None, True): 1.15, ("free-adv-r2-atomic", None, True): 1.15,
}


def time_target(component: str, model: str, quick: bool) -> float | None:
    """The time target of one row, or ``None`` where there is none (references, control, MLP concat)."""
    for key in ((component, model, quick), (component, None, quick)):
        if key in _TARGET_OVERRIDES:
            return _TARGET_OVERRIDES[key]
    if component == "aw-concat" and (quick or model == "mlp"):
        return None  # set for the full-size convolutional Ds (and BigGAN's, above) only
    return TIME_TARGETS.get(component)
#: AW's extra peak memory over plain may be at most this many times D's parameter bytes.
AW_EXTRA_MEMORY_TARGET = 2.0
#: Operator-count targets (aten ops per step, ratio to plain): (component, model) -> ratio.
OPS_TARGETS = {
    ("aw", "mlp"): 1.3, ("aw", "dcgan32"): 1.3, ("aw", "resnet-sn"): 1.15, ("aw", "biggan-like"): 1.15,
    ("aw", "biggan"): 1.15,
    ("aw-concat", "mlp"): 1.3, ("aw-concat", "dcgan32"): 1.3, ("aw-concat", "resnet-sn"): 1.15,
    ("aw-concat", "biggan-like"): 1.15, ("aw-concat", "biggan"): 1.15,
}



@dataclass
class BenchResult:
    """One table row. ``ratio`` and ``memory_ratio`` are candidate over plain."""

    component: str
    model: str
    ratio: float                   #: wall-clock time, per work unit (per replay for free-adv)
    memory_ratio: float
    cpu_ratio: float               #: this thread's CPU time, per work unit (see :func:`time_interleaved`)
    plain_seconds: float           #: median plain step time
    candidate_seconds: float       #: median candidate time per work unit (per replay for free-adv)
    extra_bytes: int               #: candidate's peak step memory minus plain's (may be negative)
    d_param_bytes: int             #: bytes of D's parameters, the unit of the AW memory target
    quick: bool = False            #: measured at the ``--quick`` size
    plain_ops: int = 0             #: aten operators one plain step dispatches (forward, backward, optimizer)
    candidate_ops: int = 0         #: the same for one candidate call (all its replays for free-adv)
    units: int = 1                 #: work units per candidate call (replays for free-adv)

    @property
    def ops_ratio(self) -> float:
        """Candidate operators per work unit over the plain step's."""
        return self.candidate_ops / self.units / self.plain_ops if self.plain_ops else float("nan")

    def to_json(self) -> dict[str, object]:
        return {"component": self.component, "model": self.model, "ratio": self.ratio,
                "memory_ratio": self.memory_ratio, "cpu_ratio": self.cpu_ratio, "plain_seconds": self.plain_seconds,
                "candidate_seconds": self.candidate_seconds, "extra_bytes": self.extra_bytes,
                "d_param_bytes": self.d_param_bytes, "quick": self.quick, "plain_ops": self.plain_ops,
                "candidate_ops": self.candidate_ops, "units": self.units, "ops_ratio": self.ops_ratio}


# ------------------------------------------------------------------- reporting
def _verdict(r: BenchResult) -> str:
    notes = []
    model = r.model.split("@")[0]  # ``--size gpu`` names rows model@batch
    target = time_target(r.component, model, r.quick)
    if target is not None and not math.isnan(r.ratio):
        # Judged on both clocks: a row meets the target only if wall and CPU time do.
        met = r.ratio <= target and not (r.cpu_ratio > target)
        notes.append(f"time {'met' if met else 'MISSED'} (<= {target:.2f})")
    if r.component in ("aw", "aw-concat") and not r.quick and r.d_param_bytes > 0 and math.isfinite(r.memory_ratio):
        extra = r.extra_bytes / r.d_param_bytes
        notes.append(f"extra mem {extra:.2f}x D params, "
                     f"{'met' if extra <= AW_EXTRA_MEMORY_TARGET else 'MISSED'} (<= {AW_EXTRA_MEMORY_TARGET:.0f}x)")
    ops_target = OPS_TARGETS.get((r.component, model))
    if ops_target is not None and r.plain_ops:
        notes.append(f"ops {'met' if r.ops_ratio <= ops_target else 'MISSED'} (<= {ops_target:.2f})")
    return "; ".join(notes)


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table of the results, one row per (component, model)."""
    lines = ["| component | model | ratio | cpu ratio | plain ms | candidate ms | memory ratio | extra MiB "
             "| plain ops | ops | ops ratio | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.component} | {r.model} | {r.ratio:.3f} | {r.cpu_ratio:.3f} | {1e3 * r.plain_seconds:.2f} | "
                     f"{1e3 * r.candidate_seconds:.2f} | {r.memory_ratio:.2f} | "
                     f"{r.extra_bytes / 2 ** 20:.2f} | {r.plain_ops} | {_ops_per_unit(r)} | {r.ops_ratio:.3f} | "
                     f"{_verdict(r)} |")
    return "\n".join(lines)


def _ops_per_unit(r: BenchResult) -> str:
    return str(r.candidate_ops) if r.units == 1 else f"{r.candidate_ops / r.units:g}"


#: Columns of :func:`write_csv`, in order.
CSV_FIELDS = ("component", "model", "ratio", "cpu_ratio", "memory_ratio", "plain_seconds", "candidate_seconds",
              "extra_bytes", "d_param_bytes", "quick", "plain_ops", "candidate_ops", "units", "ops_ratio")


def write_csv(results: Sequence[BenchResult], path: str) -> None:
    """Write one CSV row per result (``CSV_FIELDS``); ratios not measured (``--ops-only``) are empty."""
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for r in results:
            row = r.to_json()
            writer.writerow(["" if isinstance(row[k], float) and math.isnan(row[k]) else row[k]  # type: ignore[arg-type]
                             for k in CSV_FIELDS])


# ------------------------------------------------ tables from the CSV files
def read_csv(path: str) -> list[dict[str, str]]:
    """The rows of a CSV written by :func:`write_csv` (``gan-optim bench --csv``)."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ops_comparison_table(before: Sequence[dict[str, str]], after: Sequence[dict[str, str]],
                         components: Sequence[str] = ("aw", "aw-concat", "wegan", "scheduler-D", "scheduler-G",
                                                      "free-adv-r2")) -> str:
    """A Markdown table of operators per step, before and after, for the rows both CSV files have."""
    old = {(r["component"], r["model"]): r for r in before}
    lines = ["| component | model | plain ops | ops before | ratio before | ops after | ratio after | extra ops after |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in after:
        if r["component"] not in components or (r["component"], r["model"]) not in old:
            continue
        b = old[(r["component"], r["model"])]
        units = int(r["units"])
        plain, ops_b, ops_a = int(r["plain_ops"]), int(b["candidate_ops"]) / units, int(r["candidate_ops"]) / units
        lines.append(f"| {r['component']} | {r['model']} | {plain} | {ops_b:g} | {ops_b / int(b['plain_ops']):.3f} | "
                     f"{ops_a:g} | {ops_a / plain:.3f} | {ops_a - plain:+g} |")
    return "\n".join(lines)


def time_comparison_table(before: Sequence[dict[str, str]], after: Sequence[dict[str, str]],
                          components: Sequence[str]) -> str:
    """A Markdown table of the time ratios (wall, CPU) of two benchmark runs, row by row."""
    old = {(r["component"], r["model"]): r for r in before}
    lines = ["| component | model | ratio before | cpu ratio before | ratio after | cpu ratio after |",
             "|---|---|---:|---:|---:|---:|"]
    for r in after:
        key = (r["component"], r["model"])
        if r["component"] in components and key in old and r["ratio"]:
            b = old[key]
            lines.append(f"| {r['component']} | {r['model']} | {float(b['ratio']):.3f} | {float(b['cpu_ratio']):.3f} | "
                         f"{float(r['ratio']):.3f} | {float(r['cpu_ratio']):.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gan_optim_benchmarks.report {ops,time} BEFORE.csv AFTER.csv [COMPONENT,...]``: a comparison."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (3, 4) or args[0] not in ("ops", "time"):
        print("usage: python -m gan_optim_benchmarks.report {ops,time} BEFORE.csv AFTER.csv [COMPONENT,...]",
              file=sys.stderr)
        return 2
    try:
        before, after = read_csv(args[1]), read_csv(args[2])
    except OSError as e:
        print(f"gan_optim_benchmarks.report: cannot read {e.filename!r}: {e.strerror}", file=sys.stderr)
        return 2
    components = args[3].split(",") if len(args) == 4 else None
    if args[0] == "ops":
        print(ops_comparison_table(before, after, *([components] if components else [])))
    else:
        print(time_comparison_table(before, after, components or [r["component"] for r in after]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
