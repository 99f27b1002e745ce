"""Test-only shims: put a repository (or a stand-in) on sys.path in isolation, and CPU stubs for upstream code.

Both upstream repositories are flat script folders with clashing top-level
module names (``utils``, ``train``, ``datasets``...), so every use goes through
:func:`repo_on_path`, which removes what it imported afterwards.

The CPU shims the real checkouts need live here, not in the library:
``h5py`` (BigGAN's datasets module imports it at import time), the TF1 metric
modules and ``imageio`` that AutoGAN's ``functions.py`` imports, and
``torch.cuda.FloatTensor`` (AutoGAN's tensors go to CPU instead).
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from pathlib import Path
from typing import Iterator

import torch

STANDINS = Path(__file__).parent / "standins"

#: the environment variable naming each real checkout, and how its skip reason names the repository
CHECKOUT_VARIABLES = {"biggan": ("GAN_OPTIM_BIGGAN_DIR", "a BigGAN-PyTorch", "BigGAN"),
                      "autogan": ("GAN_OPTIM_AUTOGAN_DIR", "an AutoGAN", "AutoGAN"),
                      "studiogan": ("GAN_OPTIM_STUDIOGAN_DIR", "a PyTorch-StudioGAN", "StudioGAN"),
                      "stylegan2-ada": ("GAN_OPTIM_STYLEGAN2ADA_DIR", "a stylegan2-ada-pytorch", "stylegan2-ada")}


def real_checkout(kind: str) -> tuple[str | None, list]:
    """``(path or None, pytestmark)`` for a test module run against the real ``kind`` checkout: marked
    ``upstream`` and skipped, with the reason, when its variable is not set."""
    import pytest

    variable, article, name = CHECKOUT_VARIABLES[kind]
    repo = os.environ.get(variable)
    return repo, [pytest.mark.upstream,
                  pytest.mark.skipif(not repo, reason=f"{variable} is not set: point it at {article} checkout "
                                                      f"to run the {name} integration tests")]


def autogan_networks(models, args):
    """AutoGAN's ``autogan_cifar10_a`` G and D and their Adam optimizers as its train.py builds them, seeded."""
    import numpy as np

    torch.manual_seed(0)
    np.random.seed(0)
    G = models.autogan_cifar10_a.Generator(args=args)
    D = models.autogan_cifar10_a.Discriminator(args=args)
    return (G, D, torch.optim.Adam(G.parameters(), args.g_lr, (args.beta1, args.beta2)),
            torch.optim.Adam(D.parameters(), args.d_lr, (args.beta1, args.beta2)))


def _under(module: types.ModuleType, root: str) -> bool:
    f = getattr(module, "__file__", None)
    if f is None:
        paths = list(getattr(module, "__path__", []) or [])
        return any(os.path.abspath(p).startswith(root) for p in paths)
    return os.path.abspath(f).startswith(root)


@contextlib.contextmanager
def repo_on_path(path: str | os.PathLike, stubs: dict[str, types.ModuleType] | None = None) -> Iterator[Path]:
    """``path`` first on sys.path (and ``stubs`` in sys.modules) for the block; both undone afterwards."""
    from gan_optim.adapters import autogan, biggan

    root = os.path.abspath(os.fspath(path))
    saved_path = list(sys.path)
    before = set(sys.modules)
    stubs = stubs or {}
    for name, mod in stubs.items():
        sys.modules.setdefault(name, mod)
    sys.path.insert(0, root)
    try:
        yield Path(root)
    finally:
        biggan.unpatch()
        autogan.unpatch()
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            mod = sys.modules.get(name)
            if mod is None or name in stubs or _under(mod, root):
                sys.modules.pop(name, None)


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def _unavailable(*_a, **_k):
    raise RuntimeError("metric stubbed out in the CPU test shims")


def biggan_stubs() -> dict[str, types.ModuleType]:
    """Stubs for BigGAN-PyTorch's optional imports missing here (h5py: only its HDF5 dataset uses it)."""
    stubs = {}
    try:
        import h5py  # noqa: F401
    except ImportError:
        stubs["h5py"] = _module("h5py", File=_unavailable)
    return stubs


class StubSummaryWriter:
    """tensorboardX's SummaryWriter, recording scalars in memory (every instance in ``instances``)."""

    instances: list["StubSummaryWriter"] = []

    def __init__(self, logdir: str = "", *args, **kwargs) -> None:
        self.logdir = logdir
        self.scalars: list[tuple[str, float, int]] = []
        StubSummaryWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, float(value), int(step)))

    def add_image(self, *args, **kwargs) -> None:
        pass


def autogan_stubs() -> dict[str, types.ModuleType]:
    """Stubs for AutoGAN's TF1 metric modules (no build for this Python), imageio and tensorboardX.

    Setting up the Inception graph does nothing; computing IS/FID raises (the
    tests replace ``functions.validate``).
    """
    stubs = {
        "utils.fid_score": _module("utils.fid_score", calculate_fid_given_paths=_unavailable,
                                   check_or_download_inception=lambda path=None: "stub-inception",
                                   create_inception_graph=lambda path: None),
        "utils.inception_score": _module("utils.inception_score", get_inception_score=_unavailable,
                                         _init_inception=lambda: None),
    }
    try:
        import imageio  # noqa: F401
    except ImportError:
        stubs["imageio"] = _module("imageio", imsave=_unavailable)
    stubs["tensorboardX"] = _module("tensorboardX", SummaryWriter=StubSummaryWriter)
    return stubs


def autogan_dataset_stub(n: int = 12, seed: int = 0) -> types.ModuleType:
    """AutoGAN's ``datasets`` module, with ``ImageDataset(args).train`` a synthetic loader (no CIFAR download)."""

    class ImageDataset:
        def __init__(self, args, cur_img_size=None):
            self.train = synthetic_loader(n, args.dis_batch_size, size=cur_img_size or args.img_size, seed=seed)

    return _module("datasets", ImageDataset=ImageDataset)


@contextlib.contextmanager
def modules_stay_on_cpu() -> Iterator[None]:
    """``Module.cuda()`` returns the module unchanged (AutoGAN's train.py calls it on both networks)."""
    saved = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, device=None: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = saved


@contextlib.contextmanager
def root_logging_restored() -> Iterator[None]:
    """AutoGAN's create_logger adds handlers to the root logger: take them off afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)


@contextlib.contextmanager
def cuda_float_tensor_on_cpu() -> Iterator[None]:
    """AutoGAN builds tensors with ``torch.cuda.FloatTensor``: make that the CPU float tensor type."""
    saved = torch.cuda.FloatTensor
    torch.cuda.FloatTensor = torch.FloatTensor
    try:
        yield
    finally:
        torch.cuda.FloatTensor = saved


class RecordingWriter:
    """The ``writer_dict["writer"]`` AutoGAN logs to (tensorboardX's add_scalar contract)."""

    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, float(value), int(step)))


def synthetic_loader(n: int, batch: int, size: int = 32, seed: int = 0):
    """A data loader of random images in [-1, 1] (AutoGAN's CIFAR loader yields (imgs, labels))."""
    g = torch.Generator().manual_seed(seed)
    data = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, torch.zeros(n)), batch_size=batch)


def _cpu_device(value):
    if isinstance(value, str) and value.startswith("cuda"):
        return "cpu"
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    return value


@contextlib.contextmanager
def cuda_device_on_cpu() -> Iterator[None]:
    """``.to('cuda')`` on tensors and modules goes to the CPU (BigGAN's ``train.run`` hard-codes 'cuda')."""
    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to

    def t_to(self, *args, **kwargs):
        return tensor_to(self, *[_cpu_device(a) for a in args], **{k: _cpu_device(v) for k, v in kwargs.items()})

    def m_to(self, *args, **kwargs):
        return module_to(self, *[_cpu_device(a) for a in args], **{k: _cpu_device(v) for k, v in kwargs.items()})

    torch.Tensor.to, torch.nn.Module.to = t_to, m_to
    try:
        yield
    finally:
        torch.Tensor.to, torch.nn.Module.to = tensor_to, module_to


def biggan_loaders_stub(iterations: int, n_classes: int = 10, size: int = 32, seed: int = 0):
    """``utils.get_data_loaders`` without a dataset: ``iterations`` batches of random images and labels."""

    def get_data_loaders(**config):
        batch = config["batch_size"]  # train.run passes the whole D batch
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(iterations * batch, 3, size, size, generator=g) * 2 - 1
        y = torch.randint(0, n_classes, (iterations * batch,), generator=g)
        return [torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)]

    return get_data_loaders


def run_unmodified_script(repo: str, args: list[str]) -> None:
    """Run ``repo/train.py`` as ``__main__`` with ``args``, as ``python train.py ARGS`` would."""
    import runpy

    script = os.path.join(repo, "train.py")
    saved_argv = list(sys.argv)
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = saved_argv


def run_script_on_cpu(script: str, args: list[str]) -> None:
    """``python SCRIPT ARGS`` in this process, without hooks, under ``gan-optim run --cpu``'s redirect (the
    reference run beside a hooked one); a non-zero exit fails."""
    import runpy

    from gan_optim.adapters.run import _on_cpu

    undo = _on_cpu()
    saved_argv = list(sys.argv)
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        assert not exc.code, f"{script} exited with {exc.code}"
    finally:
        sys.argv = saved_argv
        undo()
