"""GAN tasks for ``gan-optim compare``: data, networks, default hyper-parameters and metrics.

``gaussians8`` (ring of 8 Gaussians, MLP G and D) and ``digits`` (sklearn's 8x8
digits, MLP G and D) are neural GAN tasks trained by :mod:`.runner`. The toy
problems ``dirac`` and ``saddle`` and the ``angles`` study live in :mod:`.toys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .metrics import (
    DigitsImageMetrics,
    frechet_distance,
    load_digits_tensor,
    mmd_rbf,
    mode_coverage,
    mode_shares,
    modes_standard,
    rbf_mean,
    ring_centers,
)

__all__ = ["GAN_TASKS", "GANTask", "make_task"]


def mlp(n_in: int, n_out: int, hidden: int, layers: int, act: Callable[[], nn.Module] = nn.ReLU,
        out: nn.Module | None = None) -> nn.Sequential:
    """A plain MLP with ``layers`` hidden layers of ``hidden`` units."""
    mods: list[nn.Module] = []
    d = n_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), act()]
        d = hidden
    mods.append(nn.Linear(d, n_out))
    if out is not None:
        mods.append(out)
    return nn.Sequential(*mods)


@dataclass
class GANTask:
    """A neural GAN task: how to sample data and noise, build G and D, and evaluate samples.

    ``metrics`` maps a batch of generated samples to a dict of floats;
    ``lower_better`` names the direction of each metric; ``target`` is the
    (metric, value) pair that "time to target" refers to. ``recipe``,
    ``(name, options)`` for :func:`make_task`, rebuilds the task in a worker
    process (a task holds closures, which do not pickle); a task without one
    runs its compare serially unless it pickles.
    """

    name: str
    z_dim: int
    make_g: Callable[[], nn.Module]
    make_d: Callable[[], nn.Module]
    sample_real: Callable[[int, torch.Generator], torch.Tensor]
    metrics: Callable[[torch.Tensor], dict[str, float]]
    lower_better: dict[str, bool]
    target: tuple[str, float]
    n_eval: int
    defaults: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    recipe: tuple[str, dict[str, Any]] | None = None

    def sample_z(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """Standard normal noise, ``(n, z_dim)``."""
        return torch.randn(n, self.z_dim, generator=gen)


def gaussians8(radius: float = 1.0, std: float | None = None, hidden: int = 128, layers: int = 2,
               z_dim: int = 16, **_: Any) -> GANTask:
    """Ring of 8 Gaussians.

    ``radius=1`` (default) is the aw paper's §5.3 setting (unit circle, the
    unrolled-GAN MLPs of 2 x 128 units; std 0.05 here, the paper gives none);
    ``radius=3`` with ``std=1, hidden=32, z_dim=2`` is WeGAN's §4.1 setting.
    """
    std = (0.05 * radius if radius <= 1.5 else 1.0) if std is None else float(std)
    centers = ring_centers(8, radius).float()
    eval_gen = torch.Generator().manual_seed(12345)
    ref = centers[torch.randint(0, 8, (2000,), generator=eval_gen)] + std * torch.randn(2000, 2, generator=eval_gen)
    bandwidth = max(std, 0.1 * radius) * 2.0
    kyy = rbf_mean(ref, bandwidth)

    def sample_real(n: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, 8, (n,), generator=gen)
        return centers[idx] + std * torch.randn(n, 2, generator=gen)

    def metrics(fake: torch.Tensor) -> dict[str, float]:
        fake = fake.detach()
        out = mode_coverage(fake, centers, std)
        out["modes_veegan"] = modes_standard(fake, centers, std)
        out.update(mode_shares(fake, centers, std))
        out["mmd"] = mmd_rbf(fake, ref, bandwidth, kyy=kyy)
        out["frechet"] = frechet_distance(fake, ref)
        return out

    return GANTask(
        name="gaussians8", z_dim=z_dim,
        make_g=lambda: mlp(z_dim, 2, hidden, layers),
        make_d=lambda: mlp(2, 1, hidden, layers),
        sample_real=sample_real, metrics=metrics,
        lower_better={"coverage": False, "share_min": False, "modes": False, "modes_veegan": False, "hq": False,
                      "mmd": True, "frechet": True},
        target=("mmd", 0.02 if radius <= 1.5 else 0.01), n_eval=1000,
        defaults={"lr": 1e-3, "batch": 256, "loss": "bce", "freeadv_epsilon": 0.02 * radius},
        info={"centers": centers, "std": std, "radius": radius, "ref": ref, "bandwidth": bandwidth},
        recipe=("gaussians8", {"radius": radius, "std": std, "hidden": hidden, "layers": layers, "z_dim": z_dim}),
    )


def digits(classifier_path: str | None = None, hidden: int = 256, **_: Any) -> GANTask:
    """sklearn's 8x8 digits as a small image GAN (MLP G and D, images in [-1, 1])."""
    x, _y = load_digits_tensor()
    image_metrics: list[DigitsImageMetrics] = []  # built lazily (trains the classifier once)

    def sample_real(n: int, gen: torch.Generator) -> torch.Tensor:
        return x[torch.randint(0, len(x), (n,), generator=gen)]

    def metrics(fake: torch.Tensor) -> dict[str, float]:
        if not image_metrics:
            image_metrics.append(DigitsImageMetrics(x, classifier_path))
        return image_metrics[0](fake.reshape(-1, 1, 8, 8))

    return GANTask(
        name="digits", z_dim=32,
        make_g=lambda: nn.Sequential(mlp(32, 64, hidden, 2, out=nn.Tanh()), nn.Unflatten(1, (1, 8, 8))),
        make_d=lambda: nn.Sequential(nn.Flatten(), mlp(64, 1, hidden, 2, act=lambda: nn.LeakyReLU(0.2))),
        sample_real=sample_real, metrics=metrics,
        lower_better={"fid": True, "kid": True},
        target=("fid", 150.0), n_eval=1000,
        defaults={"lr": 2e-4, "batch": 64, "loss": "bce", "freeadv_epsilon": 6e-3},
        info={"images": x},
        recipe=("digits", {"classifier_path": classifier_path, "hidden": hidden}),
    )


GAN_TASKS: dict[str, Callable[..., GANTask]] = {"gaussians8": gaussians8, "digits": digits}


def make_task(name: str, **options: Any) -> GANTask:
    """Build a neural GAN task by name (``gaussians8`` or ``digits``)."""
    if name not in GAN_TASKS:
        raise ValueError(f"Invalid task: {name!r} (neural GAN tasks: {', '.join(GAN_TASKS)})")
    return GAN_TASKS[name](**options)

