"""Running a baseline's own ``train.py`` where it was not written to run: on the CPU, on a local image folder.

Both baselines hard-code CUDA (BigGAN-PyTorch's ``device = 'cuda'`` and sample
sheets built with ``device='cuda'``; AutoGAN's ``.cuda()`` and
``torch.cuda.FloatTensor``) and read datasets that are downloaded or converted
beforehand (CIFAR-10, ImageNet HDF5). For a small run on a machine without a
GPU or without those files, the launcher can (``--cpu``, ``--image-folder``):

- send every CUDA device argument and ``torch.cuda.FloatTensor`` to the CPU
  (:func:`on_cpu`), through a :class:`~torch.overrides.TorchFunctionMode`, so the
  script itself is not edited;
- serve the images of a local folder (one subfolder per class, any size) as the
  dataset the script asks for (:func:`biggan_image_folder`,
  :func:`autogan_image_folder`): the image size and number of classes still
  follow the script's ``--dataset`` / ``--img_size``.

Each returns a handle whose ``undo()`` puts everything back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from . import _patching
from .metrics import IMAGE_SUFFIXES

__all__ = ["ImageFolderData", "autogan_image_folder", "biggan_image_folder", "on_cpu"]

def _cpu(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("cuda"):
        return "cpu"
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    return value


class _CudaOnCpu(TorchFunctionMode):
    """Every ``device=`` / ``.to(...)`` naming CUDA goes to the CPU; ``.cuda()`` is the identity."""

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.to:
            args = tuple(_cpu(a) for a in args)
        if "device" in kwargs:
            kwargs = {**kwargs, "device": _cpu(kwargs["device"])}
        return func(*args, **kwargs)


class _Undo:
    """A handle with ``undo()`` (idempotent) over a list of restore callbacks."""

    def __init__(self) -> None:
        self._restore: list[Callable[[], None]] = []
        self.active = True

    def add(self, restore: Callable[[], None]) -> None:
        self._restore.append(restore)

    def undo(self) -> None:
        if not self.active:
            return
        for restore in reversed(self._restore):
            restore()
        self._restore.clear()
        self.active = False


def on_cpu() -> _Undo:
    """Run CUDA-only training code on the CPU until ``undo()``: device arguments naming CUDA mean the CPU,
    ``Tensor.cuda()`` / ``Module.cuda()`` keep tensors where they are, ``torch.cuda.FloatTensor`` /
    ``LongTensor`` are the CPU types."""
    handle = _Undo()
    mode = _CudaOnCpu()
    mode.__enter__()
    handle.add(lambda: mode.__exit__(None, None, None))
    for name in ("FloatTensor", "LongTensor"):
        handle.add(_swap(torch.cuda, name, getattr(torch, name)))
    return handle


def _swap(owner: Any, name: str, value: Any) -> Callable[[], None]:
    """``owner.name = value``; returns how to put the old value back."""
    saved = getattr(owner, name)
    setattr(owner, name, value)

    def restore() -> None:
        setattr(owner, name, saved)
    return restore


class ImageFolderData(torch.utils.data.Dataset):
    """The images under ``root/<class>/`` (sorted; classes numbered in sorted order) as ``(image, label)``.

    Each image is read as RGB and resized to ``size`` x ``size`` (when ``size`` is
    given), then ``transform`` applies; without a transform the image becomes a
    float tensor in [-1, 1], as the baselines' HDF5 datasets give.
    """

    def __init__(self, root: str | os.PathLike, size: int | None = None, transform: Callable | None = None,
                 n_classes: int | None = None) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ValueError(f"Invalid --image-folder: {str(root)!r} is not a folder")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [(f, label) for label, name in enumerate(classes)
                        for f in sorted((root / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.samples:
            raise ValueError(f"Invalid --image-folder: no images in class subfolders of {str(root)!r} "
                             f"(expected {root}/<class>/*.png)")
        if n_classes is not None and len(classes) > n_classes:
            raise ValueError(f"Invalid --image-folder: {len(classes)} class subfolders in {str(root)!r}, but the "
                             f"dataset the script asks for has {n_classes} classes")
        self.classes = classes
        self.size = size
        self.transform = transform
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[index]
        image: Any = Image.open(path).convert("RGB")
        if self.size is not None and image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
        if self.transform is not None:
            return self.transform(image), label
        import numpy as np

        array = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
        return array / 127.5 - 1.0, label


def biggan_image_folder(folder: str | os.PathLike, utils: Any = None) -> _patching.Patch:
    """BigGAN-PyTorch's ``utils.get_data_loaders`` reads ``folder`` instead of the dataset ``--dataset`` names.

    The size and class count are the named dataset's (``C10``: 32 x 32, 10
    classes); the loader, batch size, shuffling and transforms are BigGAN's own.
    """
    ImageFolderData(folder)  # a clear error now, not in the middle of the script
    utils_mod: Any = _patching.resolve_module(utils, "utils")
    handle = _patching.Patch("biggan", "image-folder", {"folder": str(folder)})
    original = utils_mod.get_data_loaders

    def get_data_loaders(*args: Any, **kwargs: Any) -> Any:
        dataset = kwargs["dataset"] if "dataset" in kwargs else args[0]
        size, n_classes = utils_mod.imsize_dict[dataset], utils_mod.nclass_dict[dataset]

        def which_dataset(root: str, transform: Callable | None = None, **_: Any) -> ImageFolderData:
            return ImageFolderData(folder, size, transform, n_classes)

        saved = utils_mod.dset_dict
        utils_mod.dset_dict = {**saved, dataset: which_dataset}
        try:
            return original(*args, **kwargs)
        finally:
            utils_mod.dset_dict = saved

    handle.replace(utils_mod, "get_data_loaders", get_data_loaders)
    return handle


def autogan_image_folder(folder: str | os.PathLike) -> _patching.Patch:
    """AutoGAN's CIFAR-10 / STL-10 (torchvision, downloaded) become the images in ``folder``.

    AutoGAN's own transform (resize to ``--img_size``, normalise to [-1, 1]),
    loader and batch sizes apply; nothing is downloaded.
    """
    import torchvision.datasets

    ImageFolderData(folder)

    def folder_dataset() -> Callable[..., ImageFolderData]:
        def dataset(root: str = "", train: Any = True, transform: Callable | None = None, *_: Any,
                    **__: Any) -> ImageFolderData:
            return ImageFolderData(folder, None, transform)
        return dataset

    handle = _patching.Patch("autogan", "image-folder", {"folder": str(folder)})
    for name in ("CIFAR10", "STL10"):
        handle.replace(torchvision.datasets, name, folder_dataset())
    return handle
