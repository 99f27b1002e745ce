"""Plots for ``compare`` and ``reproduce`` (matplotlib, small PNGs written to files; no window is opened)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .runner import RunResult
from .tasks import GANTask

__all__ = ["DPI", "plot_angles", "plot_curves", "plot_dirac", "plot_saddle", "plot_samples"]

DPI = 60


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(runs: Sequence[RunResult], key: str,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x (step), wall (mean over seeds), metric mean, min and max over seeds; truncated to the shortest run."""
    n = min(len(r.rows) for r in runs)
    steps = np.array([row["step"] for row in runs[0].rows[:n]], dtype=float)
    wall = np.array([[row["wall_s"] for row in r.rows[:n]] for r in runs], dtype=float).mean(0)
    vals = np.array([[row.get(key, np.nan) for row in r.rows[:n]] for r in runs], dtype=float)
    with np.errstate(all="ignore"):
        return steps, wall, np.nanmean(vals, 0), np.nanmin(vals, 0), np.nanmax(vals, 0)


def plot_curves(results: Sequence[RunResult], task: GANTask, path: str | Path,
                metrics: Sequence[str] | None = None, wall_label: str = "training wall-clock (s)") -> Path:
    """Every metric vs iteration (left) and vs training wall-clock (right); mean line, min-max band over seeds.

    A min-max band (as in the TTUR paper's figures) stays inside the metric's range,
    where mean +- std would dip below zero for distances near 0.
    """
    metrics = list(metrics or task.lower_better)
    names = list(dict.fromkeys(r.technique for r in results))
    fig, axes = plt.subplots(len(metrics), 2, figsize=(9, 2.2 * len(metrics)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, name in enumerate(names):
        runs = [r for r in results if r.technique == name]
        for i, m in enumerate(metrics):
            steps, wall, mean, low, high = _series(runs, m)
            c = colors[j % len(colors)]
            for k, x in enumerate((steps, wall)):
                ax = axes[i][k]
                ax.plot(x, mean, color=c, label=name if i == 0 and k == 0 else None, lw=1.3)
                ax.fill_between(x, low, high, color=c, alpha=0.15, lw=0)
    for i, m in enumerate(metrics):
        for k, xl in enumerate(("iteration", wall_label)):
            ax = axes[i][k]
            ax.set_xlabel(xl)
            ax.set_ylabel(m + (" (lower is better)" if task.lower_better[m] else " (higher is better)"))
            if task.lower_better[m] and m in ("mmd", "frechet", "fid", "kid"):
                ax.set_yscale("symlog", linthresh=1e-3)
            ax.grid(alpha=0.3)
    # The legend gets its own strip above the panels, so it covers no axis label.
    strip = 0.45 / (2.2 * len(metrics))
    fig.tight_layout(rect=(0, 0, 1, 1 - strip))
    fig.legend(loc="upper center", ncol=min(len(names), 6), bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _save(fig, path)


def plot_samples(results: Sequence[RunResult], task: GANTask, path: str | Path) -> Path:
    """Final samples of the first seed of each technique: scatters (gaussians8) or image grids (digits)."""
    names = list(dict.fromkeys(r.technique for r in results))
    first = {name: next(r for r in results if r.technique == name) for name in names}
    ncol = min(len(names), 4)
    nrow = (len(names) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 3 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        s = first[name].samples
        ax.set_title(name, fontsize=9)
        if s is None:
            continue
        if task.name == "gaussians8":
            ax.axis("on")
            c = task.info["centers"].numpy()
            pts = s[:1000].numpy()
            ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
            ax.scatter(c[:, 0], c[:, 1], s=25, c="red", marker="x")
            lim = 1.6 * task.info["radius"] + 2 * task.info["std"]
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
        else:
            imgs = s[:64].reshape(-1, 8, 8).clamp(-1, 1).numpy()
            grid = np.zeros((8 * 9, 8 * 9))
            for k, im in enumerate(imgs):
                r, q = divmod(k, 8)
                grid[r * 9:r * 9 + 8, q * 9:q * 9 + 8] = (im + 1) / 2
            ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    fig.tight_layout()
    return _save(fig, path)


def plot_dirac(runs: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Dirac-WGAN trajectories in the (theta, psi) plane and distance to (1, 0) per update."""
    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(4 * (len(runs) + 1), 3.6))
    for ax, r in zip(axes, runs):
        ax.axhspan(-0.5, 0.5, color="0.9")
        ax.plot(r["theta"], r["psi"], lw=0.6)
        ax.plot(*r["theta"][:1], *r["psi"][:1], "o", color="red")
        ax.plot(r["theta"][-1], r["psi"][-1], "o", mfc="none", mec="red")
        ax.plot(1, 0, "k+", ms=12)
        ax.set_xlabel("θ (generator)")
        ax.set_ylabel("ψ (discriminator)")
        ax.set_title(f"{r['mode']}: D {r['d_updates']} / G {r['g_updates']}", fontsize=9)
    ax = axes[-1]
    for r in runs:
        ax.plot(r["distance"], lw=0.8, label=r["mode"])
    ax.set_xlabel("update")
    ax.set_ylabel("distance to (1, 0)")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_saddle(runs: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """TTUR saddle toy: objective and ||(x, y)|| per step, one line per setting."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, r in runs.items():
        axes[0].plot(r["objective"], lw=0.8, label=name + (" (diverged)" if r["diverged"] else ""))
        axes[1].plot(r["norm"], lw=0.8, label=name)
    axes[0].axhline(100, color="k", lw=0.5, ls="--")
    axes[0].set_ylabel("objective (1+x²)(100−y²)")
    axes[0].set_yscale("symlog", linthresh=100)
    axes[1].set_ylabel("‖(x, y)‖")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_angles(orig: dict[str, list[float]], aw: dict[str, list[float]], path: str | Path) -> Path:
    """Angles between D-loss gradients per D iteration: original loss (left), aw loss (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    labels = {"rf": "∠(∇L_r, ∇L_f)", "rD": "∠(∇L_r, ∇L_D)", "fD": "∠(∇L_f, ∇L_D)"}
    for ax, data, title in ((axes[0], orig, "original loss"), (axes[1], aw, "aw loss")):
        for key, color in (("rf", "tab:blue"), ("rD", "tab:green"), ("fD", "tab:orange")):
            ax.plot(np.arange(1, len(data[key]) + 1), data[key], color=color, label=labels[key], lw=1.2)
        ax.axhline(90, color="k", lw=0.6, ls="--")
        ax.set_title(title)
        ax.set_xlabel("D iteration")
        ax.set_ylim(0, 180)
    axes[0].set_ylabel("degrees")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)



def plot_snapshots(runs: Sequence[dict[str, Any]], centres: Any, path: str | Path, *, seed: int = 0) -> Path:
    """Generator samples at every snapshot (columns) for each technique (rows), one seed: the paper's Fig. 6."""
    chosen = [r for r in runs if r["seed"] == seed] or list(runs[:1])
    its = sorted(chosen[0]["snapshots"])
    fig, axes = plt.subplots(len(chosen), len(its), figsize=(2.2 * len(its), 2.2 * len(chosen)), squeeze=False)
    c = np.asarray(centres)
    for row, r in zip(axes, chosen):
        for ax, it in zip(row, its):
            s = np.asarray(r["snapshots"][it])
            ax.scatter(s[:, 0], s[:, 1], s=1, alpha=0.3)
            ax.scatter(c[:, 0], c[:, 1], s=12, marker="+", color="k")
            ax.set_xlim(-1.6, 1.6)
            ax.set_ylim(-1.6, 1.6)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{r['technique']}, it {it}", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
