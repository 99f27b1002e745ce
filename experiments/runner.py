"""Training loop composing the five components, and the ``compare`` runner.

A technique is a ``+``-joined list of components (``"aw+adaptive"``), each
optionally with a value after a colon:

- ``baseline``: plain GAN (BCE D loss, non-saturating G loss, Adam(0.5, 0.999)),
- ``aw``: :class:`~gan_optim.AWDiscriminatorLoss` for the D step,
- ``wegan[:eta]``: :class:`~gan_optim.WeightedGeneratorLoss` (eta 0.01) for the G step,
- ``adaptive[:lambda]``: :class:`~gan_optim.AdaptiveScheduler` picks D or G each iteration,
- ``ttur[:ratio]``: :class:`~gan_optim.TwoTimescale`, D learning rate ``ratio`` (3) times G's,
- ``freeadv[:replays]``: :class:`~gan_optim.FreeAdvDiscriminator` (2 replays) for the D step,
- ``nd:k``: k D steps per G step (ignored with ``adaptive``).

Every technique of one seed starts from the same initial weights and draws
from the same seeded data and noise streams. Wall-clock time counts training
only (evaluation excluded).
"""

from __future__ import annotations

import csv
import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as nnf

from gan_optim import (
    AdaptiveScheduler,
    AWDiscriminatorLoss,
    FreeAdvDiscriminator,
    TwoTimescale,
    WeightedGeneratorLoss,
)
from gan_optim.functional.losses import d_loss_fake, d_loss_real
from .stats import N_RESAMPLES, Interval, bootstrap_ci
from .tasks import GANTask

__all__ = [
    "COMPONENTS",
    "RunResult",
    "TechniqueSpec",
    "parse_technique",
    "default_workers",
    "run_compare",
    "summarize",
    "summary_markdown",
    "train_run",
    "write_csv",
]

log = logging.getLogger(__name__)

COMPONENTS = ("baseline", "aw", "wegan", "adaptive", "ttur", "freeadv", "nd")


@dataclass(frozen=True)
class TechniqueSpec:
    """A parsed technique: which components are on, and their values."""

    name: str
    aw: bool = False
    wegan: float | None = None
    adaptive: float | None = None
    ttur: float | None = None
    freeadv: int | None = None
    n_d: int = 1


def parse_technique(name: str) -> TechniqueSpec:
    """Parse ``"aw+adaptive"``, ``"wegan:0.1+nd:5"``, ... into a :class:`TechniqueSpec`."""
    kw: dict[str, Any] = {}
    parts = [p.strip() for p in name.split("+") if p.strip()]
    if not parts:
        raise ValueError(f"Invalid technique: {name!r}")
    for part in parts:
        comp, _, value = part.partition(":")
        if comp not in COMPONENTS:
            raise ValueError(f"Invalid technique component {comp!r} in {name!r} (known: {', '.join(COMPONENTS)})")
        try:
            if comp == "aw":
                kw["aw"] = True
            elif comp == "wegan":
                kw["wegan"] = float(value) if value else 0.01
            elif comp == "adaptive":
                kw["adaptive"] = float(value) if value else 1.0
            elif comp == "ttur":
                kw["ttur"] = float(value) if value else 3.0
            elif comp == "freeadv":
                kw["freeadv"] = int(value) if value else 2
            elif comp == "nd":
                kw["n_d"] = int(value)
        except ValueError:
            raise ValueError(f"Invalid value {value!r} for component {comp!r} in {name!r}") from None
    return TechniqueSpec(name=name, **kw)


@dataclass
class RunResult:
    """Rows of one (technique, seed) run, its final samples and update counts."""

    technique: str
    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    samples: torch.Tensor | None = None
    d_updates: int = 0
    g_updates: int = 0
    backward_calls: int = 0


def _g_loss_plain(d_fake: torch.Tensor) -> torch.Tensor:
    return nnf.softplus(-d_fake.reshape(-1)).mean()


def train_run(task: GANTask, technique: str | TechniqueSpec, seed: int, steps: int, *, eval_every: int = 100,
              lr: float | None = None, batch: int | None = None, loss: str | None = None,
              progress: Callable[[int], None] | None = None, count_backward: bool = False) -> RunResult:
    """Train one technique on one task for ``steps`` iterations; evaluate every ``eval_every``.

    One iteration is ``n_d`` D updates and one G update, or with ``adaptive``
    one update of the network the scheduler picks. Rows hold ``step``,
    ``d_updates``, ``g_updates`` (optimizer steps so far; free-adversarial
    replays each count), ``wall_s`` (training time only) and every metric.
    """
    spec = parse_technique(technique) if isinstance(technique, str) else technique
    lr = float(task.defaults["lr"] if lr is None else lr)
    batch = int(task.defaults["batch"] if batch is None else batch)
    loss = str(task.defaults["loss"] if loss is None else loss)
    torch.manual_seed(seed)
    G, D = task.make_g(), task.make_d()
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    z_gen = torch.Generator().manual_seed(20_000 + seed)
    z_eval = task.sample_z(task.n_eval, torch.Generator().manual_seed(30_000 + seed))

    tt: TwoTimescale | None = None
    if spec.ttur is not None:
        tt = TwoTimescale(G, D, lr_g=lr, lr_d=lr * spec.ttur)
        opt_g, opt_d = tt.g_optimizer, tt.d_optimizer
    else:
        opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    aw = AWDiscriminatorLoss(D, loss=loss) if spec.aw else None
    wg = WeightedGeneratorLoss(eta=spec.wegan, loss="ns") if spec.wegan is not None else None
    fa = None
    if spec.freeadv is not None:
        images = task.name == "digits"
        # Given the TwoTimescale, free-adv's steps count as its D steps.
        fa = FreeAdvDiscriminator(D, tt if tt is not None else opt_d, loss=loss,
                                  epsilon=float(task.defaults["freeadv_epsilon"]), replays=spec.freeadv,
                                  data_range=(-1.0, 1.0) if images else None, atomic=False)
    sched = AdaptiveScheduler(lam=spec.adaptive) if spec.adaptive is not None else None
    result = RunResult(technique=spec.name, seed=seed)

    hooks = []
    if count_backward:
        # every forward of D whose output is backpropagated counts one backward pass through D
        def _count(_grad: torch.Tensor) -> None:
            result.backward_calls += 1

        def _on_forward(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(_count)

        hooks.append(D.register_forward_hook(_on_forward))

    def step_opt(which: Literal["G", "D"]) -> None:
        if tt is not None:
            tt.step(which)
        else:
            (opt_d if which == "D" else opt_g).step()

    def d_step(need_g_loss: bool) -> tuple[float, float]:
        x = task.sample_real(batch, data_gen)
        with torch.no_grad():
            fake = G(task.sample_z(batch, z_gen))
        loss_g = math.nan
        if fa is not None:
            stats = fa.step(x, fake)
            result.d_updates += fa.replays
            loss_d = float(stats.loss_real + stats.loss_fake)
            if need_g_loss:
                with torch.no_grad():
                    loss_g = float(_g_loss_plain(D(fake)))
            return loss_d, loss_g
        opt_d.zero_grad(set_to_none=True)
        if aw is not None:
            if need_g_loss:
                with torch.no_grad():
                    loss_g = float(_g_loss_plain(D(fake)))
            aw(x, fake).backward()
            assert aw.last is not None
            loss_d = float(aw.last.loss_real + aw.last.loss_fake)
        else:
            d_real, d_fake = D(x), D(fake)
            total = d_loss_real(d_real, loss) + d_loss_fake(d_fake, loss)
            total.backward()
            loss_d = float(total.detach())
            loss_g = float(_g_loss_plain(d_fake.detach()))
        step_opt("D")
        result.d_updates += 1
        return loss_d, loss_g

    def g_step(need_d_loss: bool) -> tuple[float, float]:
        opt_g.zero_grad(set_to_none=True)
        d_fake = D(G(task.sample_z(batch, z_gen)))
        loss_g = wg(d_fake) if wg is not None else _g_loss_plain(d_fake)
        loss_g.backward()
        step_opt("G")
        result.g_updates += 1
        loss_d = math.nan
        if need_d_loss:
            with torch.no_grad():
                x = task.sample_real(batch, data_gen)
                loss_d = float(d_loss_real(D(x), loss) + d_loss_fake(d_fake.detach(), loss))
        return loss_d, float(loss_g.detach())

    def evaluate(step: int, wall: float) -> None:
        G.eval()
        with torch.no_grad():
            fake = G(z_eval)
        G.train()
        row: dict[str, Any] = {"task": task.name, "technique": spec.name, "seed": seed, "step": step,
                               "d_updates": result.d_updates, "g_updates": result.g_updates,
                               "wall_s": round(wall, 4)}
        metrics = task.metrics(fake) if torch.isfinite(fake).all() else {k: math.nan for k in task.lower_better}
        row.update(metrics)
        result.rows.append(row)
        result.samples = fake

    wall = 0.0
    evaluate(0, 0.0)
    try:
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            if sched is not None:
                which = sched.next_update()
                if which == "D":
                    loss_d, loss_g = d_step(need_g_loss=True)
                else:
                    loss_d, loss_g = g_step(need_d_loss=True)
                sched.observe(loss_g=loss_g, loss_d=loss_d)
            else:
                for _ in range(spec.n_d):
                    d_step(need_g_loss=False)
                g_step(need_d_loss=False)
            wall += time.perf_counter() - t0
            if step % eval_every == 0 or step == steps:
                evaluate(step, wall)
            if progress is not None:
                progress(1)
    except FloatingPointError as err:  # a diverged run: record it and stop
        log.warning("%s seed %d stopped: %s", spec.name, seed, err)
        row = {k: math.nan for k in result.rows[-1]} | {"task": task.name, "technique": spec.name, "seed": seed,
                                                       "step": step, "d_updates": result.d_updates,
                                                       "g_updates": result.g_updates, "wall_s": wall}
        result.rows.append(row)
    finally:
        for h in hooks:
            h.remove()
    return result


# The task of a parallel compare, inherited by forked workers (tasks hold closures: not picklable).
_WORKER_TASK: GANTask | None = None


def _worker_run(spec: TechniqueSpec, seed: int, steps: int, eval_every: int, threads: int,
                kwargs: dict[str, Any]) -> RunResult:
    # First thing in the child: one intra-op thread, so no OpenMP pool inherited through fork is used.
    torch.set_num_threads(threads)
    assert _WORKER_TASK is not None
    return train_run(_WORKER_TASK, spec, seed, steps, eval_every=eval_every, **kwargs)


def default_workers() -> int:
    """The CPU cores this process may use (each run is one thread)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_compare(task: GANTask, techniques: Sequence[str], seeds: Sequence[int], steps: int, *,
                eval_every: int = 100, progress: bool = True, workers: int = 1, **kwargs: Any) -> list[RunResult]:
    """Run every technique for every seed (one tqdm bar over the whole run).

    ``workers > 1`` runs the (technique, seed) runs in that many forked
    processes, one thread each; every run is seeded on its own, so the rows
    equal a serial run's (wall-clock columns aside). Results keep the serial
    order: technique by technique, seed by seed.
    """
    specs = [parse_technique(t) for t in techniques]
    jobs = [(spec, seed) for spec in specs for seed in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs) * steps, desc=f"compare {task.name}", unit="it", mininterval=0.5)
    workers = min(max(1, int(workers)), len(jobs))
    results: list[RunResult] = []
    try:
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            global _WORKER_TASK
            _WORKER_TASK = task
            try:
                ctx = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                    futures = [pool.submit(_worker_run, spec, seed, steps, eval_every, 1, kwargs)
                               for spec, seed in jobs]
                    for done in as_completed(futures):
                        done.result()  # raise a worker's error here, first come
                        if bar is not None:
                            bar.update(steps)
                    results = [f.result() for f in futures]
            finally:
                _WORKER_TASK = None
        else:
            for spec, seed in jobs:
                if bar is not None:
                    bar.set_postfix_str(f"{spec.name} seed {seed}")
                results.append(train_run(task, spec, seed, steps, eval_every=eval_every,
                                         progress=None if bar is None else bar.update, **kwargs))
    finally:
        if bar is not None:
            bar.close()
    return results


def write_csv(results: Sequence[RunResult], path: str | Path) -> Path:
    """All rows of all runs as one CSV (one row per technique x seed x evaluation point)."""
    path = Path(path)
    rows = [r for res in results for r in res.rows]
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def _first_reach(rows: list[dict[str, Any]], metric: str, value: float, lower: bool) -> tuple[float, float] | None:
    for r in rows:
        v = r.get(metric, math.nan)
        if not math.isnan(v) and (v <= value if lower else v >= value):
            return float(r["step"]), float(r["wall_s"])
    return None


def summarize(results: Sequence[RunResult], task: GANTask, target: tuple[str, float] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Per technique: final metrics, time to target and update counts, each as an
    :class:`~gan_optim_experiments.stats.Interval` (mean over seeds, bootstrap 95% interval).

    ``target_step`` counts iterations to the target with a seed that never reached it counted as its run
    length (so the mean is a lower bound when ``reached < seeds``); ``target_wall`` (seconds, secondary)
    averages only the seeds that reached it.
    """
    metric_t, value_t = target or task.target
    lower = task.lower_better[metric_t]
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.technique for r in results):
        runs = [r for r in results if r.technique == name]
        s: dict[str, Any] = {"seeds": len(runs)}
        for m in task.lower_better:
            s[m] = bootstrap_ci([r.rows[-1].get(m, math.nan) for r in runs])
        reached = [_first_reach(r.rows, metric_t, value_t, lower) for r in runs]
        s["reached"] = sum(x is not None for x in reached)
        s["target_step"] = bootstrap_ci([x[0] if x is not None else float(r.rows[-1]["step"])
                                         for x, r in zip(reached, runs)])
        s["target_wall"] = bootstrap_ci([x[1] for x in reached if x is not None])
        s["d_updates"] = bootstrap_ci([r.d_updates for r in runs])
        s["g_updates"] = bootstrap_ci([r.g_updates for r in runs])
        s["wall_s"] = bootstrap_ci([r.rows[-1]["wall_s"] for r in runs])
        out[name] = s
    return out


def _fmt(ci: Interval, digits: int = 3) -> str:
    if ci.n == 0 or math.isnan(ci.mean):
        return "—"
    if ci.low == ci.high:
        return f"{ci.mean:.{digits}g}"
    return f"{ci.mean:.{digits}g} [{ci.low:.{digits}g}, {ci.high:.{digits}g}]"


def summary_markdown(summary: dict[str, dict[str, Any]], task: GANTask, *, steps: int, seeds: Sequence[int],
                     target: tuple[str, float] | None = None, title: str | None = None,
                     note: str | None = None) -> str:
    """The summary table of :func:`summarize` as Markdown; ``note`` (the protocol) goes above the table."""
    metric_t, value_t = target or task.target
    arrow = "≤" if task.lower_better[metric_t] else "≥"
    metrics = list(task.lower_better)
    head = ["technique", *[f"{m} {'↓' if task.lower_better[m] else '↑'}" for m in metrics],
            f"iterations to {metric_t} {arrow} {value_t:g}", "reached", "seconds to target", "D updates",
            "G updates", "train seconds"]
    notes = ""
    if "modes_veegan" in metrics:
        notes = (" Two mode rules: `modes_veegan` is the standard one (a sample is high quality within 3σ of a "
                 "centre; a mode counts with at least 20 high-quality samples per 2500 generated, as in "
                 "VEEGAN/PacGAN), `modes` is ours (at least 2% of the samples).")
    lines = [f"# {title or 'gan-optim compare: ' + task.name}", "",
             (f"Task `{task.name}`, {steps} iterations, seeds {list(seeds)}. Every cell is the mean over seeds "
              f"with its bootstrap 95% interval [low, high] ({N_RESAMPLES} resamples); two techniques differ "
              f"only where their intervals do not overlap. Target: {metric_t} {arrow} {value_t:g}; iterations "
              "to target count a seed that never reached it as its run length, seconds (secondary, training "
              "only) average the seeds that reached it." + notes), "",
             *([note, ""] if note else []),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        cells = [f"`{name}`", *[_fmt(s[m]) for m in metrics], _fmt(s["target_step"], 4),
                 f"{s['reached']}/{s['seeds']}", _fmt(s["target_wall"]), _fmt(s["d_updates"], 5),
                 _fmt(s["g_updates"], 5), _fmt(s["wall_s"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
