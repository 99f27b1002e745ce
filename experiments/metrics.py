"""Metrics for the experiment tasks.

Written here (and tested against independent computations in
``tests/test_experiments.py``): Gaussian-kernel MMD, mode coverage on a ring
of Gaussians, and the Fréchet distance between two sample sets. Image metrics
(FID and KID in a small digits classifier's feature space) use torchmetrics'
``FrechetInceptionDistance`` / ``KernelInceptionDistance`` with that classifier
as their ``feature`` module, so no Inception weights are downloaded.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "DigitsFeatures",
    "DigitsImageMetrics",
    "default_cache_dir",
    "frechet_distance",
    "frechet_from_moments",
    "load_digits_tensor",
    "load_or_train_digits_classifier",
    "mmd_rbf",
    "mode_coverage",
    "mode_shares",
    "modes_standard",
    "rbf_mean",
    "ring_centers",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- 2-D metrics
def ring_centers(n_modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """Centres of ``n_modes`` equally spaced modes on a circle, shape ``(n_modes, 2)``."""
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * np.pi / n_modes)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 1.0, *, kyy: float | None = None) -> float:
    r"""Squared maximum mean discrepancy with a Gaussian kernel (biased V-statistic).

    .. math::
        \mathrm{MMD}^2 = \overline{k(x, x')} + \overline{k(y, y')} - 2\,\overline{k(x, y)},\qquad
        k(a, b) = \exp\!\big(-\|a - b\|^2 / (2 h^2)\big)

    with the means over all pairs (diagonal included), so the value is >= 0.
    ``kyy`` may pass a precomputed :math:`\overline{k(y, y')}` (a fixed reference set).
    """
    x = torch.as_tensor(x, dtype=torch.float64).reshape(len(x), -1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
    if bandwidth <= 0:
        raise ValueError(f"Invalid bandwidth: {bandwidth} (must be > 0)")
    gamma = 1.0 / (2.0 * bandwidth ** 2)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-gamma * torch.cdist(a, b).pow(2)).mean()

    return float(k(x, x) + (k(y, y) if kyy is None else kyy) - 2 * k(x, y))


def rbf_mean(y: torch.Tensor, bandwidth: float = 1.0) -> float:
    """Mean Gaussian-kernel value over all pairs of ``y``: the reference term of :func:`mmd_rbf`."""
    y = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
    return float(torch.exp(-torch.cdist(y, y).pow(2) / (2.0 * bandwidth ** 2)).mean())


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float, *, n_sigma: float = 3.0,
                  min_share: float = 0.02) -> dict[str, float]:
    """Mode coverage of 2-D samples on a mixture of isotropic Gaussians (our rule; see also :func:`modes_standard`).

    A sample is *high quality* if it lies within ``n_sigma * std`` of its
    nearest centre. A mode is *covered* if at least ``min_share`` of all samples
    are high-quality samples assigned to it.

    Returns ``{"modes": covered modes, "hq": share of high-quality samples}``.
    """
    s = torch.as_tensor(samples, dtype=torch.float64)
    c = torch.as_tensor(centers, dtype=torch.float64)
    if s.numel() == 0:
        return {"modes": 0.0, "hq": 0.0}
    dist = torch.cdist(s, c)
    nearest = dist.argmin(dim=1)
    good = dist.gather(1, nearest[:, None])[:, 0] <= n_sigma * std
    counts = torch.bincount(nearest[good], minlength=len(c)).to(torch.float64)
    covered = int((counts >= min_share * len(s)).sum()) if good.any() else 0
    return {"modes": float(covered), "hq": float(good.double().mean())}


#: the share of a 2-D isotropic Gaussian's mass within ``MODE_RADIUS_SIGMAS`` standard deviations of its centre
MODE_MASS = 0.99
#: sqrt(-2 ln(1 - MODE_MASS)) = 3.035: the radius (in stds) that holds MODE_MASS of a component's samples
MODE_RADIUS_SIGMAS = float(np.sqrt(-2.0 * np.log(1.0 - MODE_MASS)))


def mode_shares(samples: torch.Tensor, centers: torch.Tensor, std: float) -> dict[str, float]:
    """Share of the samples at each mode, and how many modes hold a fair part of them.

    A sample belongs to mode ``k`` when it lies within ``r = sqrt(-2 ln 0.01) * std`` (3.03 std: the radius
    that holds 99% of a component's own samples) of centre ``k``. The data put ``0.99 / K`` of their
    samples at each of the ``K`` modes; a mode is *covered* when the generator puts at least half that
    there. Mode collapse shows as few covered modes and as unequal shares.

    Returns ``{"coverage": covered modes, "share_min": smallest share, "share_max": largest share,
    "share_0": ..., "share_{K-1}": the share at each mode}``.
    """
    s = torch.as_tensor(samples, dtype=torch.float64)
    c = torch.as_tensor(centers, dtype=torch.float64)
    k = len(c)
    if s.numel() == 0:
        return {"coverage": 0.0, "share_min": 0.0, "share_max": 0.0, **{f"share_{i}": 0.0 for i in range(k)}}
    within = torch.cdist(s, c) <= MODE_RADIUS_SIGMAS * std
    shares = within.double().mean(dim=0)
    data_share = MODE_MASS / k
    return {"coverage": float(int((shares >= data_share / 2).sum())), "share_min": float(shares.min()),
            "share_max": float(shares.max()), **{f"share_{i}": float(v) for i, v in enumerate(shares)}}


STANDARD_MODE_COUNT = (20, 2500)
"""The standard rule's threshold: a mode is captured with at least 20 high-quality samples per 2500."""


def modes_standard(samples: torch.Tensor, centers: torch.Tensor, std: float, *, n_sigma: float = 3.0,
                   per: tuple[int, int] = STANDARD_MODE_COUNT) -> float:
    """Modes captured under the standard rule of the 2-D mixture benchmarks (VEEGAN, Srivastava et al. 2017;
    the ring of 8 Gaussians of the unrolled GAN, Metz et al. 2017).

    A sample is *high quality* if it lies within ``n_sigma`` (3) times ``std`` (the standard deviation of
    the mixture's components) of a centre; a mode is *captured* if at least ``per[0]`` of every ``per[1]`` generated samples
    are high-quality samples within ``n_sigma * std`` of its centre: 20 of 2500 (0.8%), the count with
    which PacGAN (Lin et al. 2018) states this protocol, i.e. 8 of the 1000 samples we evaluate.
    :func:`mode_coverage` is our stricter rule (2% of the samples); both are reported side by side.
    """
    s = torch.as_tensor(samples, dtype=torch.float64)
    c = torch.as_tensor(centers, dtype=torch.float64)
    if s.numel() == 0:
        return 0.0
    near = torch.cdist(s, c) <= n_sigma * std  # (n, modes): within 3 sigma of that centre
    counts = near.sum(dim=0)
    need_num, need_den = per
    return float(int((counts * need_den >= need_num * len(s)).sum()))


def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_from_moments(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    r"""Fréchet distance between two Gaussians (squared, as FID reports it).

    :math:`\|\mu_1 - \mu_2\|^2 + \operatorname{Tr}(C_1 + C_2 - 2 (C_1^{1/2} C_2 C_1^{1/2})^{1/2})`;
    the trace term equals the textbook :math:`\operatorname{Tr}((C_1 C_2)^{1/2})` form.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    cov1, cov2 = (torch.as_tensor(c, dtype=torch.float64) for c in (cov1, cov2))
    s1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(s1 @ cov2 @ s1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * torch.trace(cross))


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sample sets (rows are samples)."""
    x = torch.as_tensor(x, dtype=torch.float64).reshape(len(x), -1)
    y = torch.as_tensor(y, dtype=torch.float64).reshape(len(y), -1)
    return frechet_from_moments(x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1]),
                                y.mean(0), torch.cov(y.T).reshape(y.shape[1], y.shape[1]))


# ------------------------------------------------------------ digits metrics
def default_cache_dir() -> Path:
    """``$GAN_OPTIM_CACHE`` or ``~/.cache/gan_optim``."""
    return Path(os.environ.get("GAN_OPTIM_CACHE", Path.home() / ".cache" / "gan_optim"))


def load_digits_tensor() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits scaled to [-1, 1]: images ``(1797, 1, 8, 8)`` and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    return x, torch.tensor(d.target, dtype=torch.long)


class DigitsFeatures(nn.Module):
    """Small digits classifier; ``forward`` returns its penultimate features (the FID feature space).

    Takes images in [-1, 1] of shape ``(N, 1, 8, 8)`` or ``(N, 64)``.
    """

    num_features = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.float().reshape(len(x), 64))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.forward(x))


def load_or_train_digits_classifier(path: str | os.PathLike | None = None, *, epochs: int = 60,
                                    seed: int = 0) -> tuple[DigitsFeatures, float]:
    """The digits feature network, trained once (a few seconds) and cached at ``path``.

    ``path`` defaults to ``default_cache_dir() / "digits_classifier.pt"``.
    Returns the network in eval mode and its held-out accuracy.
    """
    path = Path(path) if path is not None else default_cache_dir() / "digits_classifier.pt"
    net = DigitsFeatures()
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(blob["state_dict"])
        return net.eval().requires_grad_(False), float(blob["accuracy"])
    x, y = load_digits_tensor()
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    test, train = perm[:300], perm[300:]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = DigitsFeatures()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(epochs):
            for idx in train[torch.randperm(len(train), generator=g)].split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(net.logits(x[idx]), y[idx]).backward()
                opt.step()
    with torch.no_grad():
        acc = float((net.logits(x[test]).argmax(1) == y[test]).float().mean())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": net.state_dict(), "accuracy": acc}, tmp)
    os.replace(tmp, path)
    log.info("trained digits classifier (held-out accuracy %.3f), cached at %s", acc, path)
    return net.eval().requires_grad_(False), acc


class DigitsImageMetrics:
    """FID-digits and KID in the digits classifier's feature space (torchmetrics, real features kept).

    Args:
        real: real images in [-1, 1], ``(N, 1, 8, 8)``.
        classifier_path: where the classifier is cached (see :func:`load_or_train_digits_classifier`).
        kid_subset_size: subset size of KID (at most the number of samples).
    """

    def __init__(self, real: torch.Tensor, classifier_path: str | os.PathLike | None = None,
                 kid_subset_size: int = 200) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.net, self.accuracy = load_or_train_digits_classifier(classifier_path)
        self.fid = FrechetInceptionDistance(feature=self.net, reset_real_features=False)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            self.kid = KernelInceptionDistance(feature=self.net, reset_real_features=False,
                                               subset_size=min(kid_subset_size, len(real)), subsets=20)
        with torch.no_grad():
            self.fid.update(real, real=True)
            self.kid.update(real, real=True)

    def __call__(self, fake: torch.Tensor) -> dict[str, Any]:
        """``{"fid": ..., "kid": ...}`` of a batch of generated images (same shape as the real ones)."""
        fake = fake.detach().float()
        self.fid.reset()
        self.kid.reset()
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)  # KID's random subsets
            self.fid.update(fake, real=False)
            self.kid.update(fake, real=False)
            fid = float(self.fid.compute())
            kid_mean, _ = self.kid.compute()
        return {"fid": fid, "kid": float(kid_mean)}
