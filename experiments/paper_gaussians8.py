"""Claim 4 under the paper's own protocol: the plain GAN of Metz et al. on 8 Gaussians, with and without aw.

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
batch, iterations             512, 25,000, snapshots every 5,000          the same
aw                            Algorithm 1 on D's loss (eps 0.05, ...)     ``AWDiscriminatorLoss("bce")``
seeds                         one run shown                               5 (``--seeds``)
============================  ==========================================  =============================

At each snapshot 2,500 samples are drawn; both mode rules are computed from them afterwards
(:mod:`gan_optim_experiments.metrics`).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as nnf

from gan_optim import AWDiscriminatorLoss

__all__ = ["PROTOCOL", "TECHNIQUES", "centres", "load", "main", "per_seed_values", "run", "run_all", "save",
           "summarize", "write_summary"]

#: The protocol of [33]'s demo (see the module docstring); ``iterations``/``every`` shrink for tests.
PROTOCOL: dict[str, Any] = {
    "radius": 1.0, "std": 0.01, "z_dim": 256, "hidden": 128, "layers": 2, "gain": 1.4,
    "lr_d": 1e-4, "lr_g": 1e-3, "betas": (0.5, 0.999), "eps": 1e-8, "batch": 512,
    "iterations": 25_000, "every": 5_000, "n_samples": 2_500,
}
TECHNIQUES = ("plain", "aw")


def centres(radius: float = 1.0, n: int = 8) -> torch.Tensor:
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)).float()


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


def run(technique: str, seed: int, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run; returns the snapshots' samples ``{iteration: (n, 2) array}`` and the seconds it took."""
    if technique not in TECHNIQUES:
        raise ValueError(f"Invalid technique: {technique!r} (one of {', '.join(TECHNIQUES)})")
    p = {**PROTOCOL, **(protocol or {})}
    torch.manual_seed(seed)
    G = _tanh_mlp(p["z_dim"], 2, p["hidden"], p["layers"], p["gain"])
    D = _tanh_mlp(2, 1, p["hidden"], p["layers"], p["gain"])
    opt_d = torch.optim.Adam(D.parameters(), lr=p["lr_d"], betas=p["betas"], eps=p["eps"])
    opt_g = torch.optim.Adam(G.parameters(), lr=p["lr_g"], betas=p["betas"], eps=p["eps"])
    aw = AWDiscriminatorLoss(D, loss="bce") if technique == "aw" else None
    mu = centres(p["radius"])
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    eval_gen = torch.Generator().manual_seed(20_000 + seed)
    g_params = list(G.parameters())
    snapshots: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    for it in range(1, p["iterations"] + 1):
        idx = torch.randint(0, len(mu), (p["batch"],), generator=data_gen)
        x = mu[idx] + p["std"] * torch.randn(p["batch"], 2, generator=data_gen)
        z = torch.randn(p["batch"], p["z_dim"], generator=data_gen)
        fake = G(z)
        # Simultaneous updates: both gradients at the same parameters, then both steps.
        d_fake = D(fake)
        g_loss = -nnf.softplus(d_fake).mean()  # minus the D loss's fake part: the saturating G loss
        g_grads = torch.autograd.grad(g_loss, g_params)
        opt_d.zero_grad(set_to_none=True)
        if aw is None:
            (nnf.softplus(-D(x)).mean() + nnf.softplus(D(fake.detach())).mean()).backward()
        else:
            aw(x, fake.detach()).backward()
        opt_d.step()
        for param, grad in zip(g_params, g_grads):
            param.grad = grad
        opt_g.step()
        if it % p["every"] == 0:
            with torch.no_grad():
                snapshots[it] = G(torch.randn(p["n_samples"], p["z_dim"], generator=eval_gen)).numpy()
    return {"technique": technique, "seed": seed, "snapshots": snapshots, "seconds": time.perf_counter() - t0}


def _job(args: tuple[str, int, dict[str, Any]]) -> dict[str, Any]:
    torch.set_num_threads(1)
    return run(*args)


def run_all(techniques: Sequence[str], seeds: Sequence[int], protocol: dict[str, Any] | None = None, *,
            workers: int = 1) -> list[dict[str, Any]]:
    """Every (technique, seed) run, in that order, on ``workers`` forked processes."""
    jobs = [(t, s, dict(protocol or {})) for t in techniques for s in seeds]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_job, jobs))
    return [_job(j) for j in jobs]


def save(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """All snapshots as one ``.npz``: ``<technique>_s<seed>_it<iteration>`` arrays, plus seconds."""
    arrays = {f"{r['technique']}_s{r['seed']}_it{it}": a for r in results for it, a in r["snapshots"].items()}
    arrays.update({f"{r['technique']}_s{r['seed']}_seconds": np.array(r["seconds"]) for r in results})
    np.savez_compressed(path, **arrays)
    return path


def load(path: Path) -> list[dict[str, Any]]:
    """The runs saved by :func:`save`, back as :func:`run`'s dicts."""
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    with np.load(path) as saved:
        for key in saved.files:
            technique, seed_part, rest = key.split("_", 2)
            run_ = runs.setdefault((technique, int(seed_part[1:])),
                                   {"technique": technique, "seed": int(seed_part[1:]), "snapshots": {}})
            if rest == "seconds":
                run_["seconds"] = float(saved[key])
            else:
                run_["snapshots"][int(rest[2:])] = saved[key]
    return [runs[k] for k in sorted(runs, key=lambda k: (TECHNIQUES.index(k[0]), k[1]))]


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
    for (it, technique, q), values in sorted(per_seed.items(), key=lambda kv: (kv[0][0], QUANTITIES.index(kv[0][2]),
                                                                               TECHNIQUES.index(kv[0][1]))):
        ci = bootstrap_ci(values)
        row = {"iteration": it, "technique": technique, "quantity": q, "mean": ci.mean, "low": ci.low,
               "high": ci.high, "seeds": ci.n, "vs_plain": ""}
        if technique != "plain":
            row["vs_plain"] = compare(ci, bootstrap_ci(per_seed[(it, "plain", q)]))
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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gan_optim_experiments.paper_gaussians8",
                                 description="Claim 4 under [33]'s protocol: snapshots of plain GAN and aw-GAN.")
    ap.add_argument("--out", required=True, help="the .npz file to write (its summary CSV goes beside it)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=PROTOCOL["iterations"])
    ap.add_argument("--every", type=int, default=PROTOCOL["every"])
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.iterations < 1 or args.every < 1 or args.workers < 1:
        print("paper_gaussians8: --seeds, --iterations, --every and --workers must be positive", file=sys.stderr)
        return 2
    results = run_all(TECHNIQUES, range(args.seeds), {"iterations": args.iterations, "every": args.every},
                      workers=args.workers)
    out = save(results, Path(args.out))
    write_summary(summarize(results, {"iterations": args.iterations, "every": args.every}),
                  out.with_name(out.stem + "_summary.csv"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
