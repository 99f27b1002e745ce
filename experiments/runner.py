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

Losses: ``losses="plain"`` (default) runs every technique with the task's D
loss and the non-saturating G loss; ``losses="paper"`` gives each technique
its paper's loss (:data:`PAPER_LOSSES`, combinations by
:data:`PAPER_PRECEDENCE`); a :class:`LossSetting` sets them by hand. The
setting that ran is kept in :attr:`RunResult.setting`.

Every technique of one seed starts from the same initial weights and draws
from the same seeded data and noise streams. Wall-clock time counts training
only (evaluation excluded).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from gan_optim import (
    AdaptiveScheduler,
    AWDiscriminatorLoss,
    FreeAdvDiscriminator,
    TwoTimescale,
    WeightedGeneratorLoss,
)
from gan_optim._checks import check_choice, check_real
from gan_optim.functional.losses import D_LOSSES, G_LOSSES, d_loss_fake, d_loss_real, g_loss_per_sample
from .pools import pool_context, resolve_device
from .stats import N_RESAMPLES, NO_DIFFERENCE, RULE_TEXT, Interval, bootstrap_ci, decide, metric_tolerance
from .tasks import GANTask, make_task

__all__ = [
    "COMPONENTS",
    "LOSS_MODES",
    "LossSetting",
    "OPTIMIZERS",
    "PAPER_LOSSES",
    "PAPER_PRECEDENCE",
    "RunResult",
    "TechniqueSpec",
    "parse_technique",
    "default_workers",
    "resolve_losses",
    "run_compare",
    "summarize",
    "summary_markdown",
    "verdict_markdown",
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


OPTIMIZERS = ("adam", "rmsprop")
LOSS_MODES = ("plain", "paper")


@dataclass(frozen=True)
class LossSetting:
    """The losses and optimiser of one run.

    ``d_loss`` is one of :data:`~gan_optim.functional.losses.D_LOSSES`, ``g_loss`` one of
    :data:`~gan_optim.functional.losses.G_LOSSES`; ``clip`` clamps every D parameter to
    ``[-clip, clip]`` after each D step (WGAN weight clipping); ``optimizer`` is ``"adam"``
    (with ``betas``) or ``"rmsprop"`` (PyTorch's defaults besides the rate), for both networks;
    ``source`` says where the setting comes from.
    """

    d_loss: str = "bce"
    g_loss: str = "ns"
    clip: float | None = None
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.5, 0.999)
    source: str = "plain"

    def __post_init__(self) -> None:
        check_choice("losses.d_loss", self.d_loss, D_LOSSES)
        check_choice("losses.g_loss", self.g_loss, G_LOSSES)
        check_choice("losses.optimizer", self.optimizer, OPTIMIZERS)
        if self.clip is not None:
            check_real("losses.clip", self.clip, low=0.0, low_open=True)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise TypeError(f"Invalid losses.betas: expected a pair of floats, got {self.betas!r}")
        for b in self.betas:
            check_real("losses.betas", b, low=0.0, high=1.0, high_open=True)
        if not isinstance(self.source, str):
            raise TypeError(f"Invalid losses.source: expected a str, got {type(self.source).__name__}")

    def describe(self) -> str:
        """One line: ``D hinge / G hinge, Adam (β 0, 0.9)``."""
        clip = f" + clip {self.clip:g}" if self.clip is not None else ""
        opt = (f"Adam (β {self.betas[0]:g}, {self.betas[1]:g})" if self.optimizer == "adam" else "RMSprop")
        return f"D {self.d_loss}{clip} / G {self.g_loss}, {opt}"


#: each component's loss in its paper (``baseline`` and ``nd`` have none of their own)
PAPER_LOSSES: dict[str, LossSetting] = {
    # Zadorozhnyy et al. eq. 7: hinge D loss; their G is SN-GAN's (-D); the optimiser is left to each base model.
    "aw": LossSetting("hinge", "hinge", source="aw: hinge (Zadorozhnyy et al. eq. 7)"),
    # Pantazis et al. Algorithm 1: the original GAN's D loss, G's saturating log(1 - D(G(z))) weighted.
    "wegan": LossSetting("bce", "saturating", source="wegan: BCE D, saturating G (Pantazis et al. Algorithm 1)"),
    # Ouyang & Agam Algorithm 1: WGAN with weight clipping and RMSprop; the clip value is WGAN's (c = 0.01),
    # whose setting they follow.
    "adaptive": LossSetting("wgan", "wgan", clip=0.01, optimizer="rmsprop",
                            source="adaptive: WGAN, clip 0.01, RMSprop (Ouyang & Agam Algorithm 1)"),
    # Heusel et al.'s DCGAN image experiments: the original GAN losses (non-saturating G), Adam.
    "ttur": LossSetting("bce", "ns", source="ttur: DCGAN's BCE D, non-saturating G (Heusel et al.)"),
    # Zhong et al. eq. 13-14 without the class terms (an unconditional task): hinge D, -D for G; Adam (0, 0.9).
    "freeadv": LossSetting("hinge", "hinge", betas=(0.0, 0.9),
                           source="freeadv: hinge D, -D for G, Adam (0, 0.9) (Zhong et al. eq. 13-14)"),
}
#: in a combination, the first component here brings its paper's setting: the D-loss methods (aw, freeadv)
#: first, then the scheduler built for WGAN losses, then the G weighting and the learning rates, which both
#: apply to any loss
PAPER_PRECEDENCE = ("aw", "freeadv", "adaptive", "wegan", "ttur")


def _components(spec: TechniqueSpec) -> list[str]:
    on = {"aw": spec.aw, "wegan": spec.wegan is not None, "adaptive": spec.adaptive is not None,
          "ttur": spec.ttur is not None, "freeadv": spec.freeadv is not None}
    return [c for c in PAPER_PRECEDENCE if on[c]]


def resolve_losses(spec: str | TechniqueSpec, losses: str | LossSetting = "plain", *, d_loss: str = "bce"
                   ) -> LossSetting:
    """The :class:`LossSetting` a technique runs with.

    ``"plain"``: ``d_loss`` for D, the non-saturating G loss, Adam (0.5, 0.999).
    ``"paper"``: the paper's setting of the technique's first component in
    :data:`PAPER_PRECEDENCE` (the plain setting with BCE for ``baseline`` / ``nd``).
    A :class:`LossSetting` is used as given.
    """
    spec = parse_technique(spec) if isinstance(spec, str) else spec
    if isinstance(losses, LossSetting):
        setting = losses
    else:
        check_choice("losses", losses, LOSS_MODES)
        comps = _components(spec)
        if losses == "paper" and comps:
            setting = PAPER_LOSSES[comps[0]]
        elif losses == "paper":
            setting = LossSetting("bce", "ns", source="plain GAN: BCE D, non-saturating G")
        else:
            setting = LossSetting(d_loss, "ns", source="plain GAN: the task's D loss, non-saturating G")
    if setting.clip is not None and spec.freeadv is not None:
        # free-adv steps D inside its replays: a clip after them would not bound the replays' weights
        raise ValueError("Invalid losses: weight clipping (clip) cannot be combined with freeadv")
    return setting


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
    setting: LossSetting | None = None



def train_run(task: GANTask, technique: str | TechniqueSpec, seed: int, steps: int, *, eval_every: int = 100,
              lr: float | None = None, batch: int | None = None, loss: str | None = None,
              losses: str | LossSetting = "plain", progress: Callable[[int], None] | None = None,
              count_backward: bool = False, device: str | torch.device = "cpu") -> RunResult:
    """Train one technique on one task for ``steps`` iterations; evaluate every ``eval_every``.

    One iteration is ``n_d`` D updates and one G update, or with ``adaptive``
    one update of the network the scheduler picks. Rows hold ``step``,
    ``d_updates``, ``g_updates`` (optimizer steps so far; free-adversarial
    replays each count), ``wall_s`` (training time only) and every metric.
    ``losses`` picks the losses and optimiser (:func:`resolve_losses`; ``loss``,
    the task's D loss by default, applies to ``"plain"`` only).

    ``device`` (``cpu``, ``cuda``, ``cuda:N``) holds G, D and their steps. The networks are initialised and
    the data and noise drawn on the CPU, from the same seeded streams on every device, and moved there;
    samples come back to the CPU for the metrics, so every metric is computed on the CPU whatever the device.
    """
    dev = resolve_device(device)
    spec = parse_technique(technique) if isinstance(technique, str) else technique
    lr = float(task.defaults["lr"] if lr is None else lr)
    batch = int(task.defaults["batch"] if batch is None else batch)
    loss = str(task.defaults["loss"] if loss is None else loss)
    setting = resolve_losses(spec, losses, d_loss=loss)
    loss = setting.d_loss
    torch.manual_seed(seed)
    G, D = task.make_g().to(dev), task.make_d().to(dev)
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    z_gen = torch.Generator().manual_seed(20_000 + seed)
    z_eval = task.sample_z(task.n_eval, torch.Generator().manual_seed(30_000 + seed)).to(dev)

    def real_batch() -> torch.Tensor:
        return task.sample_real(batch, data_gen).to(dev)

    def noise_batch() -> torch.Tensor:
        return task.sample_z(batch, z_gen).to(dev)

    tt: TwoTimescale | None = None
    opt_cls: type[torch.optim.Optimizer] = torch.optim.Adam if setting.optimizer == "adam" else torch.optim.RMSprop
    opt_kw: dict[str, Any] = {"betas": setting.betas} if setting.optimizer == "adam" else {}
    if spec.ttur is not None:
        tt = TwoTimescale(G, D, lr_g=lr, lr_d=lr * spec.ttur, optimizer=opt_cls, **opt_kw)
        opt_g, opt_d = tt.g_optimizer, tt.d_optimizer
    else:
        opt_g = opt_cls(G.parameters(), lr=lr, **opt_kw)
        opt_d = opt_cls(D.parameters(), lr=lr, **opt_kw)
    aw = AWDiscriminatorLoss(D, loss=loss) if spec.aw else None
    wg = WeightedGeneratorLoss(eta=spec.wegan, loss=setting.g_loss) if spec.wegan is not None else None

    def g_loss(d_fake: torch.Tensor) -> torch.Tensor:
        return g_loss_per_sample(d_fake, setting.g_loss).mean()

    def clip_d() -> None:
        if setting.clip is not None:
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-setting.clip, setting.clip)

    fa = None
    if spec.freeadv is not None:
        images = task.name == "digits"
        # Given the TwoTimescale, free-adv's steps count as its D steps.
        fa = FreeAdvDiscriminator(D, tt if tt is not None else opt_d, loss=loss,
                                  epsilon=float(task.defaults["freeadv_epsilon"]), replays=spec.freeadv,
                                  data_range=(-1.0, 1.0) if images else None, atomic=False)
    sched = AdaptiveScheduler(lam=spec.adaptive) if spec.adaptive is not None else None
    result = RunResult(technique=spec.name, seed=seed, setting=setting)

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
        x = real_batch()
        with torch.no_grad():
            fake = G(noise_batch())
        loss_g = math.nan
        if fa is not None:
            stats = fa.step(x, fake)
            result.d_updates += fa.replays
            loss_d = float(stats.loss_real + stats.loss_fake)
            if need_g_loss:
                with torch.no_grad():
                    loss_g = float(g_loss(D(fake)))
            return loss_d, loss_g
        opt_d.zero_grad(set_to_none=True)
        if aw is not None:
            if need_g_loss:
                with torch.no_grad():
                    loss_g = float(g_loss(D(fake)))
            aw(x, fake).backward()
            assert aw.last is not None
            loss_d = float(aw.last.loss_real + aw.last.loss_fake)
        else:
            d_real, d_fake = D(x), D(fake)
            total = d_loss_real(d_real, loss) + d_loss_fake(d_fake, loss)
            total.backward()
            loss_d = float(total.detach())
            loss_g = float(g_loss(d_fake.detach()))
        step_opt("D")
        clip_d()
        result.d_updates += 1
        return loss_d, loss_g

    def g_step(need_d_loss: bool) -> tuple[float, float]:
        opt_g.zero_grad(set_to_none=True)
        d_fake = D(G(noise_batch()))
        loss_g = wg(d_fake) if wg is not None else g_loss(d_fake)
        loss_g.backward()
        step_opt("G")
        result.g_updates += 1
        loss_d = math.nan
        if need_d_loss:
            with torch.no_grad():
                x = real_batch()
                loss_d = float(d_loss_real(D(x), loss) + d_loss_fake(d_fake.detach(), loss))
        return loss_d, float(loss_g.detach())

    def evaluate(step: int, wall: float) -> None:
        G.eval()
        with torch.no_grad():
            fake = G(z_eval).cpu()
        G.train()
        row: dict[str, Any] = {"task": task.name, "technique": spec.name, "seed": seed, "step": step,
                               "d_updates": result.d_updates, "g_updates": result.g_updates,
                               "wall_s": round(wall, 4)}
        if count_backward:
            row["backward_calls"] = result.backward_calls
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


# A worker's tasks, built once per process from their recipes (tasks hold closures: they do not pickle).
_WORKER_TASKS: dict[str, GANTask] = {}


def _task_for_workers(task: GANTask) -> GANTask | tuple[str, dict[str, Any]] | None:
    """What a worker process rebuilds ``task`` from: its recipe, else the task itself if it pickles."""
    if task.recipe is not None:
        return task.recipe
    try:
        pickle.dumps(task)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    return task


def _worker_run(task: GANTask | tuple[str, dict[str, Any]], spec: TechniqueSpec, seed: int, steps: int,
                eval_every: int, threads: int, kwargs: dict[str, Any]) -> RunResult:
    torch.set_num_threads(threads)
    if not isinstance(task, GANTask):
        key = repr(task)
        if key not in _WORKER_TASKS:
            _WORKER_TASKS[key] = make_task(task[0], **task[1])
        task = _WORKER_TASKS[key]
    return train_run(task, spec, seed, steps, eval_every=eval_every, **kwargs)


def default_workers() -> int:
    """The CPU cores this process may use (each run is one thread)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_compare(task: GANTask, techniques: Sequence[str], seeds: Sequence[int], steps: int, *,
                eval_every: int = 100, progress: bool = True, workers: int = 1, **kwargs: Any) -> list[RunResult]:
    """Run every technique for every seed (one tqdm bar over the whole run).

    ``workers > 1`` runs the (technique, seed) runs in that many worker
    processes, one thread each, started without forking this process
    (:func:`~gan_optim_experiments.pools.pool_context`; a task without a
    recipe that does not pickle runs serially); every run is seeded on its
    own, so the rows equal a serial run's (wall-clock columns aside). Results
    keep the serial order: technique by technique, seed by seed. ``kwargs``
    go to :func:`train_run` (``lr``, ``batch``, ``losses``, ``device``, ...).
    """
    specs = [parse_technique(t) for t in techniques]
    jobs = [(spec, seed) for spec in specs for seed in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs) * steps, desc=f"compare {task.name}", unit="it", mininterval=0.5)
    workers = min(max(1, int(workers)), len(jobs))
    if "device" in kwargs:
        kwargs["device"] = str(resolve_device(kwargs["device"]))  # a bad device fails here, before any run
    shipped = _task_for_workers(task) if workers > 1 else None
    if workers > 1 and shipped is None:
        log.warning("task %r has no recipe and does not pickle: its runs go one after another", task.name)
        workers = 1
    results: list[RunResult] = []
    try:
        if workers > 1:
            assert shipped is not None
            with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
                futures = [pool.submit(_worker_run, shipped, spec, seed, steps, eval_every, 1, kwargs)
                           for spec, seed in jobs]
                for done in as_completed(futures):
                    done.result()  # raise a worker's error here, first come
                    if bar is not None:
                        bar.update(steps)
                results = [f.result() for f in futures]
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


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "—"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def verdict_markdown(results: Sequence[RunResult], task: GANTask, target: tuple[str, float] | None = None,
                     baseline: str | None = None) -> str:
    """Every technique against the baseline (``baseline``, else the technique named ``baseline``, else the
    first) by the verdict rule (:data:`.stats.RULE_TEXT`): per final metric and iterations to target, one Holm
    family over the whole table. Minimum effects: one evaluation step for iterations,
    :func:`.stats.metric_tolerance` for metrics."""
    names = list(dict.fromkeys(r.technique for r in results))
    if not names:
        return ""
    base = baseline or ("baseline" if "baseline" in names else names[0])
    metric_t, value_t = target or task.target
    lower_t = task.lower_better[metric_t]

    def per_seed(name: str, what: str) -> list[float]:
        runs = [r for r in results if r.technique == name]
        if what != "target":
            return [float(r.rows[-1].get(what, math.nan)) for r in runs]
        out = []
        for r in runs:
            hit = _first_reach(r.rows, metric_t, value_t, lower_t)
            out.append(hit[0] if hit is not None else float(r.rows[-1]["step"]))
        return out

    rows0 = results[0].rows
    every = float(rows0[1]["step"] - rows0[0]["step"]) if len(rows0) > 1 else float(rows0[-1]["step"])
    quantities = [*task.lower_better, "target"]
    keys = [(n, q) for n in names if n != base for q in quantities]
    tests = [(per_seed(n, q), per_seed(base, q),
              every if q == "target" else metric_tolerance(q, per_seed(base, q))) for n, q in keys]
    decided = decide(tests)
    arrow = "≤" if lower_t else "≥"
    lines = [f"## Against `{base}`", "", "**The verdict rule.** " + RULE_TEXT
             + " Here the family is this whole table.", "",
             "| technique | quantity | seeds | difference of means vs " + f"`{base}` [95% interval] | p | p (Holm) | "
             "minimum effect | smallest detectable | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for (n, q), c in zip(keys, decided):
        lower_is_better = lower_t if q == "target" else task.lower_better[q]
        label = f"iterations to {metric_t} {arrow} {value_t:g}" if q == "target" else q
        verdict = c.outcome if c.outcome == NO_DIFFERENCE else (
            f"{c.outcome} (" + ("better" if (c.outcome == "lower") == lower_is_better else "worse") + ")")
        det = "none possible" if math.isinf(c.detectable) else f"{c.detectable:.3g}"
        lines.append(f"| `{n}` | {label} | {c.a_n} vs {c.b_n} | {_fmt(c.effect)} | {_p_text(c.p)} | "
                     f"{_p_text(c.p_holm)} | {c.min_effect:.3g} | {det} | {verdict} |")
    return "\n".join(lines) + "\n"


def summary_markdown(summary: dict[str, dict[str, Any]], task: GANTask, *, steps: int, seeds: Sequence[int],
                     target: tuple[str, float] | None = None, title: str | None = None,
                     note: str | None = None, results: Sequence[RunResult] | None = None) -> str:
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
              f"with its bootstrap 95% interval [low, high] ({N_RESAMPLES} resamples); the intervals describe "
              "the seeds, the verdicts against the baseline follow the rule stated below the table. "
              f"Target: {metric_t} {arrow} {value_t:g}; iterations to target count a seed that never reached it as its run length, seconds (secondary, training "
              "only) average the seeds that reached it." + notes), "",
             *([note, ""] if note else []),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        cells = [f"`{name}`", *[_fmt(s[m]) for m in metrics], _fmt(s["target_step"], 4),
                 f"{s['reached']}/{s['seeds']}", _fmt(s["target_wall"]), _fmt(s["d_updates"], 5),
                 _fmt(s["g_updates"], 5), _fmt(s["wall_s"])]
        lines.append("| " + " | ".join(cells) + " |")
    if results is not None:
        lines += ["", verdict_markdown(results, task, target).rstrip("\n")]
    return "\n".join(lines) + "\n"
