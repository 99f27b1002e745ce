"""Inception Score and FID for the patched baselines, through torchmetrics, without TensorFlow.

BigGAN-PyTorch scores with torchvision's Inception (downloaded at run time) and
AutoGAN with TensorFlow 1.x, which cannot be installed beside today's PyTorch.
Both launchers can instead score with torchmetrics' ``InceptionScore`` and
``FrechetInceptionDistance`` on the torch-fidelity port of the FID Inception
network, loaded from an explicit local file (``--inception-weights PATH``,
nothing is downloaded), so a patched run and a baseline run are scored the
same way. The numbers are logged where each repository logs its own.

FID needs reference statistics of real images: ``--fid-reference PATH``, an
``.npz`` with ``mu`` and ``sigma`` of the 2048-d pool features (AutoGAN's
``fid_stat`` files are of this kind), or a folder of images, whose statistics
are computed with the same network on first use. Without a reference only IS
is computed and FID is reported as BigGAN's "no FID" value, 9999.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["IMAGE_SUFFIXES", "NO_FID", "InceptionMetrics", "autogan_metric_modules", "biggan_prepare_inception_metrics",
           "image_files", "install", "load_images"]

#: BigGAN-PyTorch's value for "FID not computed".
NO_FID = 9999.0
#: the image files read from folders (FID references, --image-folder)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _check_file(name: str, path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"Invalid {name}: {str(path)!r} is not a file")
    return p


class InceptionMetrics:
    """IS and FID of uint8 images ``(N, 3, H, W)`` with the Inception weights in ``weights``.

    Args:
        weights: the torch-fidelity ``pt_inception-2015-12-05`` state dict, a local file.
        reference: real-image statistics for FID (an ``.npz`` with ``mu``/``sigma``, or a
            folder of images), or ``None`` for IS only.
        device: where the network runs.
        fid_features: the pool layer FID uses: 2048 (the standard), or 64 / 192 / 768.
    """

    def __init__(self, weights: str | os.PathLike, reference: str | os.PathLike | None = None, *,
                 device: str | torch.device = "cpu", batch_size: int = 50, fid_features: int = 2048) -> None:
        from torchmetrics.image.fid import NoTrainInceptionV3

        path = _check_file("inception weights", weights)
        if fid_features not in (64, 192, 768, 2048):
            raise ValueError(f"Invalid fid_features: {fid_features!r} (one of 64, 192, 768, 2048)")
        if reference is not None and not Path(reference).expanduser().exists():
            raise ValueError(f"Invalid FID reference: {str(reference)!r} does not exist")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        try:
            self._logits = NoTrainInceptionV3(name="inception-v3-compat", features_list=["logits_unbiased"],
                                              feature_extractor_weights_path=str(path)).to(self.device)
            self._pool = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(fid_features)],
                                            feature_extractor_weights_path=str(path)).to(self.device)
        except (pickle.UnpicklingError, RuntimeError, KeyError, EOFError, ValueError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"Invalid inception weights: {str(path)!r} is not the torch-fidelity "
                             f"pt_inception-2015-12-05 state dict ({first})") from err
        self.reference = None if reference is None else Path(reference).expanduser()
        self._stats: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    # ---------------------------------------------------------------- pieces
    @staticmethod
    def _as_uint8(images: Any) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if t.dim() == 4 and t.shape[-1] == 3 and t.shape[1] != 3:
            t = t.permute(0, 3, 1, 2)  # HWC (AutoGAN's lists of numpy images) to CHW
        if t.dim() != 4 or t.shape[1] != 3 or t.dtype != torch.uint8:
            raise ValueError(f"Invalid images: expected uint8 (N, 3, H, W) or (N, H, W, 3), got "
                             f"{t.dtype} {tuple(t.shape)}")
        return t

    def _batches(self, images: torch.Tensor):
        for i in range(0, len(images), self.batch_size):
            yield images[i:i + self.batch_size].to(self.device)

    def inception_score(self, images: Any, splits: int = 10) -> tuple[float, float]:
        """Mean and std of IS over ``splits`` (torchmetrics ``InceptionScore``)."""
        from torchmetrics.image.inception import InceptionScore

        images = self._as_uint8(images)
        metric = InceptionScore(feature=self._logits, splits=splits).to(self.device)
        # Its split shuffle draws from the global generator: keep the training run's stream untouched.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), torch.no_grad():
            for batch in self._batches(images):
                metric.update(batch)
            mean, std = metric.compute()
        return float(mean), float(std)

    def pool_statistics(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance (float64) of the pool features (2048-d by default), the FID statistics."""
        images = self._as_uint8(images)
        with torch.no_grad():
            feats = torch.cat([self._pool(b).double().cpu() for b in self._batches(images)])
        return feats.mean(0).numpy(), np.cov(feats.numpy(), rowvar=False)

    def reference_statistics(self, reference: str | os.PathLike | None = None,
                             ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(mu, sigma)`` of ``reference`` (default: this object's), read or computed once; None without one."""
        path = self.reference if reference is None else Path(reference).expanduser()
        if path is None:
            return None
        if path not in self._stats:
            if path.is_dir():
                self._stats[path] = self.pool_statistics(load_images(path))
            else:
                with np.load(path) as stats:
                    if "mu" not in stats or "sigma" not in stats:
                        raise ValueError(f"Invalid FID reference: {str(path)!r} has no 'mu' and 'sigma'")
                    self._stats[path] = (np.asarray(stats["mu"], dtype=np.float64),
                                         np.asarray(stats["sigma"], dtype=np.float64))
        return self._stats[path]

    def fid(self, images: Any, reference: str | os.PathLike | None = None) -> float:
        """FID of ``images`` against a reference (torchmetrics ``FrechetInceptionDistance``); NO_FID without one."""
        stats = self.reference_statistics(reference)
        if stats is None:
            return NO_FID
        from torchmetrics.image.fid import FrechetInceptionDistance

        images = self._as_uint8(images)
        metric = FrechetInceptionDistance(feature=self._pool, reset_real_features=False).to(self.device)
        mu, sigma = (torch.as_tensor(a, dtype=torch.float64, device=self.device) for a in stats)
        # The metric keeps sums, not moments: n = 2 sums that give back mu and sigma exactly.
        n = 2
        metric.real_features_sum = mu * n
        metric.real_features_cov_sum = sigma * (n - 1) + n * torch.outer(mu, mu)
        metric.real_features_num_samples = torch.tensor(n, device=self.device)
        with torch.no_grad():
            for batch in self._batches(images):
                metric.update(batch, real=False)
            return float(metric.compute())


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder``, subfolders included, sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(folder: str | os.PathLike, limit: int | None = None) -> torch.Tensor:
    """The image files under ``folder`` (:func:`image_files`) as one uint8 ``(N, 3, H, W)`` tensor; with
    ``limit``, at most that many, evenly spaced over the sorted list."""
    from PIL import Image

    files = image_files(folder)
    if not files:
        raise ValueError(f"Invalid image folder: no {'/'.join(IMAGE_SUFFIXES)} files in {str(folder)!r}")
    if limit is not None and len(files) > limit:
        files = files[::len(files) // limit][:limit]
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return torch.as_tensor(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """BigGAN's samples in [-1, 1] to uint8, as its own image saving does."""
    return ((images.detach().float().cpu() + 1) * 127.5).clamp(0, 255).to(torch.uint8)


def biggan_prepare_inception_metrics(metrics: InceptionMetrics) -> Callable[..., Callable[..., tuple]]:
    """A drop-in for BigGAN-PyTorch's ``inception_utils.prepare_inception_metrics`` scoring with ``metrics``."""

    def prepare_inception_metrics(dataset: str, parallel: bool, no_fid: bool = False):
        def get_inception_metrics(sample: Callable[[], Sequence[torch.Tensor]], num_inception_images: int,
                                  num_splits: int = 10, prints: bool = True, use_torch: bool = True):
            chunks, count = [], 0
            with torch.no_grad():
                while count < num_inception_images:
                    images = sample()[0]
                    chunks.append(_to_uint8(images))
                    count += len(images)
            images = torch.cat(chunks)[:num_inception_images]
            is_mean, is_std = metrics.inception_score(images, splits=num_splits)
            fid = NO_FID if no_fid else metrics.fid(images)
            return is_mean, is_std, fid
        return get_inception_metrics
    return prepare_inception_metrics


def autogan_metric_modules(metrics: InceptionMetrics | None) -> dict[str, Any]:
    """Stand-ins for AutoGAN's TF1 modules ``utils.inception_score`` and ``utils.fid_score``.

    With ``metrics``, ``get_inception_score`` and ``calculate_fid_given_paths``
    score with it (the FID reference is the ``fid_stat`` file AutoGAN passes, or
    ``metrics``' own when that file is missing); without, they raise a clear
    error if validation runs. The TF graph set-up functions do nothing.
    """
    import types

    def unavailable(*_: Any, **__: Any) -> Any:
        raise RuntimeError("AutoGAN's IS/FID need TensorFlow 1.x; pass --inception-weights PATH to score with "
                           "torchmetrics instead")

    def get_inception_score(images: list, splits: int = 10) -> tuple[float, float]:
        assert metrics is not None
        return metrics.inception_score(np.stack(images), splits=splits)

    def calculate_fid_given_paths(paths: Sequence[str], inception_path: Any = None, **_: Any) -> float:
        assert metrics is not None
        generated, reference = paths
        # AutoGAN's own fid_stat file when it is there, else the launcher's --fid-reference.
        return metrics.fid(load_images(generated), reference if os.path.exists(reference) else None)

    inception = types.ModuleType("utils.inception_score")
    inception.get_inception_score = get_inception_score if metrics is not None else unavailable  # type: ignore
    inception._init_inception = lambda *a, **k: None  # type: ignore[attr-defined]
    fid = types.ModuleType("utils.fid_score")
    fid.calculate_fid_given_paths = calculate_fid_given_paths if metrics is not None else unavailable  # type: ignore
    fid.check_or_download_inception = lambda path=None: path  # type: ignore[attr-defined]
    fid.create_inception_graph = lambda *a, **k: None  # type: ignore[attr-defined]
    return {"utils.inception_score": inception, "utils.fid_score": fid}


def install(command: str, weights: str | os.PathLike | None, reference: str | os.PathLike | None = None,
            ) -> Callable[[], None]:
    """Score the launched run with :class:`InceptionMetrics`; returns how to undo it.

    ``biggan``: ``inception_utils.prepare_inception_metrics`` is replaced (only with
    ``weights``). ``autogan``: ``utils.inception_score`` / ``utils.fid_score`` are
    stood in for in ``sys.modules`` with ``weights``, and also without them when
    TensorFlow is not installed (training then runs; validation says what is missing).
    """
    import importlib
    import importlib.util
    import sys

    from . import _patching

    if reference is not None and weights is None:
        raise ValueError("Invalid --fid-reference: it needs --inception-weights PATH")
    metrics = None if weights is None else InceptionMetrics(weights, reference)
    if command == "biggan":
        if metrics is None:
            return lambda: None
        handle = _patching.Patch("biggan", "metrics", {})
        handle.replace(importlib.import_module("inception_utils"), "prepare_inception_metrics",
                       biggan_prepare_inception_metrics(metrics))
        return handle.undo
    if metrics is None and importlib.util.find_spec("tensorflow") is not None:
        return lambda: None  # AutoGAN's own TF metrics can run
    saved = {name: sys.modules.get(name) for name in ("utils.inception_score", "utils.fid_score")}
    sys.modules.update(autogan_metric_modules(metrics))

    def undo() -> None:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return undo
