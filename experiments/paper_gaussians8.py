"""8 Gaussians under the paper's own protocol: the plain GAN of Metz et al., and every technique on it.

Zadorozhnyy et al. §5.3 train "a plain GAN as in [33]" (Metz et al., Unrolled GANs, with 0 unrolling
steps) on eight 2-D Gaussians on the unit circle and show the generator's samples every 5,000
iterations. The setting of [33]'s published demo, which this module follows:

============================  ==========================================  =============================
setting                       paper / reference code                      here
============================  ==========================================  =============================
data                          8 Gaussians on the unit circle (§5.3);      the same, 8 distinct centres
                              std 0.01 in [33]'s code (its centres come   at angles 2*pi*k/8, std 0.01
                              from ``linspace(0, 2*pi, 8)``: the first
                              and last coincide, 7 distinct modes)
G                             z ~ N(0, I_256), 2 x 128 tanh, linear 2     the same
D                             2 x 128 tanh, linear logit                  the same
initialisation                orthogonal, gain 1.4 (biases 0)             the same
loss                          D: BCE on logits; G: minimises the minus    the same (saturating G loss)
                              D loss (saturating)
optimisers                    Adam, D 1e-4, G 1e-3, beta1 0.5, eps 1e-8   the same, beta2 0.999
updates                       simultaneous (one batch, both step)         the same
batch, iterations             512, 25,000, snapshots every 5,000          the same (``paper``); ``quick``:
                                                                          the first 4,000
seeds                         one run shown                               ``--seeds``
============================  ==========================================  =============================

Each technique of ``gan-optim compare`` on this protocol (only what the technique changes; the rest
is the table above). Where its paper has no setting for this toy, the choice is ours and named:

============  ================================================  =============================================
technique     its paper / reference code                        here
============  ================================================  =============================================
``aw``        Algorithm 1 on D's loss (eps 0.05, alpha1 0.5,    ``AWDiscriminatorLoss("bce")``: this very
              alpha2 0.75, delta 0.05); this toy is its §5.3    protocol is the paper's
``wegan``     Algorithm 1: weights eta^(1 - D(G(z))) on the     ``WeightedGeneratorLoss(0.01, "saturating")``,
              saturating G loss; 8 Gaussians of radius 3 with   simultaneous with D's step; D unchanged
              eta in {0.01, 0.1, 0.5}, best 0.01, k = 1 or 5
``adaptive``  Algorithm 1: update D iff r_d > lambda r_g,       ``AdaptiveScheduler(1.0)``; one network per
              one network per iteration; WGAN losses only       iteration (so not simultaneous: an iteration
              (its scope), RMSProp/Adam, lambda 1 to 10         is one update), on [33]'s BCE/saturating
                                                                losses: outside its paper's scope
``ttur``      D faster than G (WGAN-GP: D 3e-4, G 1e-4; its     ``TwoTimescale``: G at [33]'s 1e-3, D at 3x
              DCGAN table lists other pairs); [33] already      (3e-3). [33]'s rates (D 10x slower) are
              runs two rates, D the slower                      the baseline's
``freeadv``   free adversarial D training, 2 replays           ``FreeAdvDiscriminator``: 2 replays, L-inf
              (MAX_ADV_STEP), L-inf c_max 6e-3 for images in    eps 6e-3 (these data lie in [-1.03, 1.03]),
              [-1, 1], random start, hinge loss (eq. 4 is      random start, no clamp, BCE: [33]'s loss (eq.
              written with log D)                               4's form), so only the D step differs
============  ================================================  =============================================

Every technique of one seed starts from the same weights and draws the same data and noise. At each
snapshot ``n_samples`` (2,500) samples are drawn; both mode rules are computed from them
(:mod:`gan_optim_experiments.metrics`), and for ``compare`` the MMD and Fréchet distance from the
first 1,000.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as nnf

from gan_optim import (
    AdaptiveScheduler,
    AWDiscriminatorLoss,
    FreeAdvDiscriminator,
    TwoTimescale,
    WeightedGeneratorLoss,
)

from .pools import pool_context, resolve_device
from .runner import RunResult, TechniqueSpec, parse_technique
from .tasks import GANTask, gaussians8

__all__ = ["PROTOCOL", "PROTOCOLS", "TECHNIQUES", "TECHNIQUE_NOTES", "centres", "compare_task", "describe", "load",
           "main", "per_seed_values", "run", "run_all", "save", "snapshot_metrics", "to_results",
           "summarize", "write_summary"]

#: The protocol of [33]'s demo (see the module docstring); ``iterations``/``every`` shrink for tests.
PROTOCOL: dict[str, Any] = {
    "radius": 1.0, "std": 0.01, "z_dim": 256, "hidden": 128, "layers": 2, "gain": 1.4,
    "lr_d": 1e-4, "lr_g": 1e-3, "betas": (0.5, 0.999), "eps": 1e-8, "batch": 512,
    "iterations": 25_000, "every": 5_000, "n_samples": 2_500, "freeadv_epsilon": 6e-3,
}
#: every technique of ``gan-optim compare``; ``plain`` (claim 4's name) is ``baseline``
TECHNIQUES = ("plain", "baseline", "aw", "wegan", "adaptive", "ttur", "freeadv")


def centres(radius: float = 1.0, n: int = 8) -> torch.Tensor:
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)).float()


def data_range(protocol: dict[str, Any] | None = None, n: int = 100_000, seed: int = 0) -> float:
    """The largest absolute coordinate of ``n`` samples of the protocol's data, drawn as :func:`run` draws them."""
    p = {**PROTOCOL, **(protocol or {})}
    mu = centres(p["radius"])
    gen = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randint(0, len(mu), (n,), generator=gen)
    return float((mu[idx] + p["std"] * torch.randn(n, 2, generator=gen)).abs().max())


def _tanh_mlp(n_in: int, n_out: int, hidden: int, layers: int, gain: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = n_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.Tanh()]
        d = hidden
    mods.append(nn.Linear(d, n_out))
    for m in mods:
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*mods)


def _spec(technique: str) -> TechniqueSpec:
    """The technique as the runner parses it; ``plain`` is the baseline under its [33] name."""
    if not isinstance(technique, str):
        raise TypeError(f"Invalid technique: expected a str, got {type(technique).__name__}")
    spec = TechniqueSpec(name="plain") if technique == "plain" else parse_technique(technique)
    if spec.n_d != 1:
        raise ValueError(f"Invalid technique: {technique!r} (nd:k is not part of [33]'s simultaneous protocol)")
    if spec.aw and spec.freeadv is not None:
        raise ValueError(f"Invalid technique: {technique!r} (aw and freeadv both replace the D step)")
    return spec


def run(technique: str, seed: int, protocol: dict[str, Any] | None = None, *, models: bool = False,
        device: str | torch.device = "cpu") -> dict[str, Any]:
    """One run of ``technique`` (see :data:`TECHNIQUES`; compositions such as ``aw+ttur`` too).

    Returns the snapshots' samples ``{iteration: (n, 2) array}``, per snapshot the D and G optimizer
    steps so far and the training seconds so far (``log``: ``{iteration: (d_updates, g_updates, wall_s)}``),
    and the total seconds; with ``models`` the trained ``"G"`` and ``"D"`` too.

    ``device`` (``cpu``, ``cuda``, ``cuda:N``) holds G, D and their steps; the networks are initialised and
    the data and noise drawn on the CPU from the same seeded streams on every device, and the snapshots
    come back to the CPU.
    """
    spec = _spec(technique)
    dev = resolve_device(device)
    p = {**PROTOCOL, **(protocol or {})}
    torch.manual_seed(seed)
    G = _tanh_mlp(p["z_dim"], 2, p["hidden"], p["layers"], p["gain"]).to(dev)
    D = _tanh_mlp(2, 1, p["hidden"], p["layers"], p["gain"]).to(dev)
    tt: TwoTimescale | None = None
    if spec.ttur is not None:
        # TTUR's direction (D faster than G) at G's rate of [33]: see the module docstring.
        tt = TwoTimescale(G, D, lr_g=p["lr_g"], lr_d=p["lr_g"] * spec.ttur, betas=p["betas"], eps=p["eps"])
        opt_g, opt_d = tt.g_optimizer, tt.d_optimizer
    else:
        opt_d = torch.optim.Adam(D.parameters(), lr=p["lr_d"], betas=p["betas"], eps=p["eps"])
        opt_g = torch.optim.Adam(G.parameters(), lr=p["lr_g"], betas=p["betas"], eps=p["eps"])
    aw = AWDiscriminatorLoss(D, loss="bce") if spec.aw else None
    wg = WeightedGeneratorLoss(eta=spec.wegan, loss="saturating") if spec.wegan is not None else None
    fa = None
    if spec.freeadv is not None:
        fa = FreeAdvDiscriminator(D, tt if tt is not None else opt_d, loss="bce", epsilon=p["freeadv_epsilon"],
                                  replays=spec.freeadv, data_range=None)
    sched = AdaptiveScheduler(lam=spec.adaptive) if spec.adaptive is not None else None
    mu = centres(p["radius"])
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    eval_gen = torch.Generator().manual_seed(20_000 + seed)
    g_params = list(G.parameters())
    counts = {"D": 0, "G": 0}
    snapshots: dict[int, np.ndarray] = {}
    log: dict[int, tuple[int, int, float]] = {}

    def g_loss(d_fake: torch.Tensor) -> torch.Tensor:
        # [33]'s saturating loss: minus the fake part of D's BCE loss; WeGAN weights it per sample.
        return wg(d_fake) if wg is not None else -nnf.softplus(d_fake).mean()

    def d_step(x: torch.Tensor, fake: torch.Tensor) -> None:
        if fa is not None:
            fa.step(x, fake)
            counts["D"] += fa.replays
            return
        opt_d.zero_grad(set_to_none=True)
        if aw is not None:
            aw(x, fake).backward()
        else:
            (nnf.softplus(-D(x)).mean() + nnf.softplus(D(fake)).mean()).backward()
        tt.step("D") if tt is not None else opt_d.step()
        counts["D"] += 1

    def g_step(grads: Sequence[torch.Tensor]) -> None:
        for param, grad in zip(g_params, grads):
            param.grad = grad
        tt.step("G") if tt is not None else opt_g.step()
        counts["G"] += 1

    wall = 0.0
    stopped = False
    for it in range(1, p["iterations"] + 1):
        if not stopped:
            t0 = time.perf_counter()
            idx = torch.randint(0, len(mu), (p["batch"],), generator=data_gen)
            x = (mu[idx] + p["std"] * torch.randn(p["batch"], 2, generator=data_gen)).to(dev)
            z = torch.randn(p["batch"], p["z_dim"], generator=data_gen).to(dev)
            try:
                fake = G(z)
                if sched is None:
                    # Simultaneous updates: both gradients at the same parameters, then both steps.
                    g_grads = torch.autograd.grad(g_loss(D(fake)), g_params)
                    d_step(x, fake.detach())
                    g_step(g_grads)
                elif sched.next_update() == "D":
                    # Algorithm 1 updates one network per iteration; the idle one's loss comes from this batch.
                    with torch.no_grad():
                        d_fake = D(fake)
                        loss_g = float(g_loss(d_fake))
                        loss_d = float(nnf.softplus(-D(x)).mean() + nnf.softplus(d_fake).mean())
                    d_step(x, fake.detach())
                    sched.observe(loss_g=loss_g, loss_d=loss_d)
                else:
                    d_fake = D(fake)
                    loss = g_loss(d_fake)
                    g_step(torch.autograd.grad(loss, g_params))
                    with torch.no_grad():
                        loss_d = float(nnf.softplus(-D(x)).mean() + nnf.softplus(d_fake).mean())
                    sched.observe(loss_g=float(loss.detach()), loss_d=loss_d)
            except FloatingPointError:  # a diverged run: its later snapshots are NaN
                stopped = True
            wall += time.perf_counter() - t0
        if it % p["every"] == 0:
            with torch.no_grad():
                samples = G(torch.randn(p["n_samples"], p["z_dim"], generator=eval_gen).to(dev)).cpu().numpy()
            snapshots[it] = np.full_like(samples, np.nan) if stopped else samples
            log[it] = (counts["D"], counts["G"], wall)
    out = {"technique": technique, "seed": seed, "snapshots": snapshots, "log": log, "seconds": wall}
    if models:
        out.update(G=G, D=D)
    return out


def _cost(technique: str) -> float:
    """A run's time relative to the baseline's (measured at batch 512: aw 1.4, two free-adv replays 1.7,
    adaptive 0.7)."""
    spec = _spec(technique)
    return 1.0 + 0.4 * spec.aw + 0.35 * (spec.freeadv or 0) - 0.3 * (spec.adaptive is not None)


def _job(args: tuple[str, int, dict[str, Any], bool, str]) -> dict[str, Any]:
    torch.set_num_threads(1)
    technique, seed, protocol, evaluate, device = args
    out = run(technique, seed, protocol, device=device)
    if evaluate:  # in the worker: the metrics are most of a short run's cost
        task = compare_task(protocol)
        out["metrics"] = {it: snapshot_metrics(a, task) for it, a in out["snapshots"].items()}
    return out


def run_all(techniques: Sequence[str], seeds: Sequence[int], protocol: dict[str, Any] | None = None, *,
            workers: int = 1, progress: bool = False, evaluate: bool = False,
            cache: Path | None = None, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Every (technique, seed) run, in that order, on ``workers`` processes (a bar over runs with
    ``progress``; with ``evaluate`` each run's :func:`snapshot_metrics` too, under ``"metrics"``, computed
    on the CPU). The workers never fork this process (:func:`~gan_optim_experiments.pools.pool_context`);
    each run is seeded on its own, so parallel runs equal serial ones. ``device``: see :func:`run`.

    ``cache``: a folder where each finished run is saved at once (``<technique>_s<seed>.npz``) and from
    which a run already there is loaded instead of run again, so a long job that stops loses the runs
    in flight only. The folder must hold runs of this same protocol.
    """
    for t in techniques:
        _spec(t)  # a bad name fails here, before any run
    device = str(resolve_device(device))  # and a bad device
    keys = [(t, s) for t in techniques for s in seeds]
    paths = {k: Path(cache) / f"{k[0]}_s{k[1]}.npz" for k in keys} if cache is not None else {}
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for k, path in paths.items():
        if path.is_file():
            (results[k],) = load(path)
    jobs = [(t, s, dict(protocol or {}), evaluate, device) for t, s in keys if (t, s) not in results]
    # Longest runs first, so the pool does not end on one long run with the other cores idle.
    jobs.sort(key=lambda j: -_cost(j[0]))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(keys), initial=len(results), desc="compare gaussians8", unit="run")

    def finished(r: dict[str, Any]) -> None:
        k = (r["technique"], r["seed"])
        results[k] = r
        if k in paths:
            save([r], paths[k])
        if bar is not None:
            bar.update(1)

    try:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=pool_context()) as pool:
                for done in as_completed([pool.submit(_job, j) for j in jobs]):
                    finished(done.result())  # a worker's error, first come
        else:
            for j in jobs:
                finished(_job(j))
    finally:
        if bar is not None:
            bar.close()
    if evaluate:  # runs loaded from the cache have no metrics yet
        task = compare_task(protocol)
        for r in results.values():
            if "metrics" not in r:
                r["metrics"] = {it: snapshot_metrics(a, task) for it, a in r["snapshots"].items()}
    return [results[k] for k in keys]


def save(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """All snapshots as one ``.npz``: ``<technique>_s<seed>_it<iteration>`` arrays, ``..._log`` rows
    (iteration, D steps, G steps, training seconds) and ``..._seconds``."""
    arrays = {f"{r['technique']}_s{r['seed']}_it{it}": a for r in results for it, a in r["snapshots"].items()}
    arrays.update({f"{r['technique']}_s{r['seed']}_seconds": np.array(r["seconds"]) for r in results})
    arrays.update({f"{r['technique']}_s{r['seed']}_log": np.array([[it, *v] for it, v in sorted(r["log"].items())],
                                                                  dtype=np.float64).reshape(-1, 4)
                   for r in results if "log" in r})
    np.savez_compressed(path, **arrays)
    return path


def load(path: Path) -> list[dict[str, Any]]:
    """The runs saved by :func:`save`, back as :func:`run`'s dicts."""
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    with np.load(path) as saved:
        for key in saved.files:
            technique, seed_part, rest = key.rsplit("_", 2)
            run_ = runs.setdefault((technique, int(seed_part[1:])),
                                   {"technique": technique, "seed": int(seed_part[1:]), "snapshots": {}})
            if rest == "seconds":
                run_["seconds"] = float(saved[key])
            elif rest == "log":
                run_["log"] = {int(row[0]): (int(row[1]), int(row[2]), float(row[3])) for row in saved[key]}
            else:
                run_["snapshots"][int(rest[2:])] = saved[key]
    return [runs[k] for k in sorted(runs, key=lambda k: (_order(k[0]), k[0], k[1]))]


def _order(technique: str) -> int:
    return TECHNIQUES.index(technique) if technique in TECHNIQUES else len(TECHNIQUES)


#: The per-snapshot quantities: both mode rules and the share of high-quality samples.
QUANTITIES = ("modes_standard", "modes_ours", "hq")


def snapshot_values(samples: Any, protocol: dict[str, Any] | None = None) -> tuple[float, float, float]:
    """:data:`QUANTITIES` of one snapshot: modes by the standard rule, modes by ours, high-quality share."""
    from .metrics import mode_coverage, modes_standard

    p = {**PROTOCOL, **(protocol or {})}
    mu = centres(p["radius"])
    s = torch.as_tensor(samples)
    ours = mode_coverage(s, mu, p["std"])
    return float(modes_standard(s, mu, p["std"])), float(ours["modes"]), float(ours["hq"])


def per_seed_values(runs: Sequence[dict[str, Any]], protocol: dict[str, Any] | None = None,
                    ) -> dict[tuple[int, str, str], list[float]]:
    """``{(iteration, technique, quantity): [one value per seed]}`` for :data:`QUANTITIES`."""
    out: dict[tuple[int, str, str], list[float]] = {}
    for r in runs:
        for it, samples in sorted(r["snapshots"].items()):
            for q, v in zip(QUANTITIES, snapshot_values(samples, protocol)):
                out.setdefault((it, r["technique"], q), []).append(v)
    return out


def summarize(runs: Sequence[dict[str, Any]], protocol: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per (snapshot, technique, quantity): mean over seeds and its bootstrap 95% interval,
    and, for aw, how it compares with the plain GAN (a difference only when the intervals separate)."""
    from .stats import bootstrap_ci, compare

    per_seed = per_seed_values(runs, protocol)
    rows = []
    base = "plain" if any(r["technique"] == "plain" for r in runs) else "baseline"
    for (it, technique, q), values in sorted(per_seed.items(), key=lambda kv: (kv[0][0], QUANTITIES.index(kv[0][2]),
                                                                               _order(kv[0][1]), kv[0][1])):
        ci = bootstrap_ci(values)
        row = {"iteration": it, "technique": technique, "quantity": q, "mean": ci.mean, "low": ci.low,
               "high": ci.high, "seeds": ci.n, "vs_plain": ""}
        if technique != base and (it, base, q) in per_seed:
            row["vs_plain"] = compare(ci, bootstrap_ci(per_seed[(it, base, q)]))
        rows.append(row)
    return rows


def write_summary(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    import csv

    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


#: ``gan-optim compare --protocol``: ``paper`` is [33]'s protocol, ``quick`` the same with fewer iterations
#: (sized so that six techniques x 3 seeds take under 5 minutes on 2 cores; docs/PERFORMANCE.md)
PROTOCOLS: dict[str, dict[str, Any]] = {"paper": {}, "quick": {"iterations": 4_000}}

#: what each technique is under these protocols (the module docstring's table, short)
TECHNIQUE_NOTES = {
    "baseline": "the plain GAN above",
    "aw": "Algorithm 1 on the BCE D loss",
    "wegan": "η 0.01, WeGAN's weights on the saturating G loss (its Algorithm 1)",
    "adaptive": "λ 1, one network per iteration (Algorithm 1; its paper's scope is WGAN losses, here BCE)",
    "ttur": "D at 3× G's rate (3e-3 / 1e-3)",
    "freeadv": "2 replays, L∞ ε 6e-3, BCE",
}


def describe(name: str, protocol: dict[str, Any] | None = None) -> str:
    """One paragraph naming the protocol and every setting, for ``summary.md``."""
    p = {**PROTOCOL, **(protocol or {})}
    length = (f"{p['iterations']} iterations" + (" (the paper's)" if p["iterations"] == PROTOCOL["iterations"]
                                                 else f" (the paper: {PROTOCOL['iterations']})"))
    return (f"Protocol `{name}`: the plain GAN of Metz et al.'s unrolled-GAN demo, which Zadorozhnyy et al. §5.3 "
            f"train on 8 Gaussians on the unit circle (std {p['std']:g}): G and D {p['layers']} × {p['hidden']} "
            f"tanh, z {p['z_dim']}, orthogonal init (gain {p['gain']:g}), BCE D loss, saturating G loss, Adam D "
            f"{p['lr_d']:g} / G {p['lr_g']:g} (β {p['betas'][0]:g}, {p['betas'][1]:g}), simultaneous updates, "
            f"batch {p['batch']}, {length}, {p['n_samples']} samples per evaluation. Techniques: "
            + "; ".join(f"`{t}` {note}" for t, note in TECHNIQUE_NOTES.items()) + ".")


def compare_task(protocol: dict[str, Any] | None = None) -> GANTask:
    """The metrics of ``gan-optim compare``'s gaussians8 task, at this protocol's radius and std."""
    p = {**PROTOCOL, **(protocol or {})}
    return gaussians8(radius=p["radius"], std=p["std"], hidden=p["hidden"], layers=p["layers"], z_dim=p["z_dim"])


def snapshot_metrics(samples: Any, task: GANTask) -> dict[str, float]:
    """The compare task's metrics of one snapshot: both mode rules and hq on all its samples, MMD and the
    Fréchet distance on the first ``task.n_eval`` (the cost of MMD grows with the square of the count)."""
    from .metrics import mode_coverage, mode_shares, modes_standard

    fake = torch.as_tensor(samples)
    if not bool(torch.isfinite(fake).all()):
        return {k: math.nan for k in task.lower_better}
    out = task.metrics(fake[:task.n_eval])
    out.update(mode_coverage(fake, task.info["centers"], task.info["std"]))
    out.update(mode_shares(fake, task.info["centers"], task.info["std"]))
    out["modes_veegan"] = modes_standard(fake, task.info["centers"], task.info["std"])
    return out


def to_results(runs: Sequence[dict[str, Any]], task: GANTask) -> list[RunResult]:
    """:func:`run`'s dicts as the runner's :class:`RunResult` (one row per snapshot, every task metric;
    ``run_all(..., evaluate=True)`` has computed them in its workers already)."""
    results = []
    for r in runs:
        res = RunResult(technique=r["technique"], seed=r["seed"])
        for it, samples in sorted(r["snapshots"].items()):
            d_updates, g_updates, wall = r["log"][it]
            metrics = r["metrics"][it] if "metrics" in r else snapshot_metrics(samples, task)
            res.rows.append({"task": task.name, "technique": r["technique"], "seed": r["seed"], "step": it,
                             "d_updates": d_updates, "g_updates": g_updates, "wall_s": round(wall, 4), **metrics})
            res.samples, res.d_updates, res.g_updates = torch.as_tensor(samples), d_updates, g_updates
        results.append(res)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gan_optim_experiments.paper_gaussians8",
                                 description="[33]'s protocol (claim 4): snapshots of each technique's generator.")
    ap.add_argument("--out", required=True, help="the .npz file to write (its summary CSV goes beside it)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=PROTOCOL["iterations"])
    ap.add_argument("--every", type=int, default=PROTOCOL["every"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--techniques", default="plain,aw", help="comma-separated (default %(default)s)")
    ap.add_argument("--device", default="cpu", help="where G and D train: cpu (default), cuda or cuda:N")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.iterations < 1 or args.every < 1 or args.workers < 1:
        print("paper_gaussians8: --seeds, --iterations, --every and --workers must be positive", file=sys.stderr)
        return 2
    techniques = [t.strip() for t in args.techniques.split(",") if t.strip()]
    try:
        for t in techniques:
            _spec(t)
        resolve_device(args.device)
    except ValueError as err:
        print(f"paper_gaussians8: {err}", file=sys.stderr)
        return 2
    results = run_all(techniques, range(args.seeds), {"iterations": args.iterations, "every": args.every},
                      workers=args.workers, device=args.device)
    out = save(results, Path(args.out))
    write_summary(summarize(results, {"iterations": args.iterations, "every": args.every}),
                  out.with_name(out.stem + "_summary.csv"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
