"""The benchmark's models: an MLP pair, DCGAN-32, a ResNet-SN discriminator and, from a BigGAN-PyTorch
checkout, BigGAN's own CIFAR discriminator, with their settings."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as nnf

__all__ = ["BIGGAN_DIR_ENV", "FULL", "GPU", "MODELS", "OPTIONAL_MODELS", "QUICK", "SIZES", "BenchSizes", "build_models"]

#: Model rows, in table order.
MODELS = ("mlp", "dcgan32", "resnet-sn", "biggan-like")
#: Rows that need a local checkout: ``biggan`` is BigGAN-PyTorch's own ``BigGAN.Discriminator``.
OPTIONAL_MODELS = ("biggan",)
#: Where the ``biggan`` row finds its checkout (``gan-optim bench --biggan-dir`` sets it).
BIGGAN_DIR_ENV = "GAN_OPTIM_BIGGAN_DIR"


@dataclass(frozen=True)
class BenchSizes:
    """Model widths, batch size and repeat counts of one benchmark setting."""

    batch: int
    mlp_hidden: int
    dcgan_width: int
    resnet_width: int
    repeats: int
    warmup: int
    min_sample_seconds: float = 0.0  #: see :func:`time_interleaved`
    z_dim: int = 64
    mlp_data_dim: int = 2
    biggan_width: int = 8  #: BigGAN's D_ch; its CIFAR D has 4 * D_ch channels
    quick: bool = False


#: ``--quick``: small models, few repeats (seconds).
QUICK = BenchSizes(batch=16, mlp_hidden=64, dcgan_width=8, resnet_width=8, repeats=5, warmup=2,
                   min_sample_seconds=0.005, biggan_width=2, quick=True)
#: The default: DCGAN-32 at its usual width 64, the ResNet D at width 64 (SNGAN uses 128; 64 keeps a
#: CPU run within minutes), batch 32 per half, 21 timed pairs after 3 warm-up pairs, samples >= 50 ms.
FULL = BenchSizes(batch=32, mlp_hidden=256, dcgan_width=64, resnet_width=64, repeats=21, warmup=3,
                  min_sample_seconds=0.05, biggan_width=16)
#: ``--size gpu``: the sizes people train at on one GPU, where a step is bound by launches rather than
#: arithmetic: DCGAN-32 width 64, the ResNet-SN D at SNGAN's width 128, BigGAN's D_ch 64, the MLP;
#: batch 64 and 256 per half (one table each).
GPU = tuple(BenchSizes(batch=batch, mlp_hidden=256, dcgan_width=64, resnet_width=128, repeats=21, warmup=3,
                       min_sample_seconds=0.05, biggan_width=64) for batch in (64, 256))
#: ``--size`` name -> the settings it runs, in order.
SIZES = {"quick": (QUICK,), "full": (FULL,), "gpu": GPU}


# ---------------------------------------------------------------------- models
def _mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class DCGANGenerator32(nn.Module):
    """DCGAN generator for 32x32 images (Radford et al.): 4x4 -> 8 -> 16 -> 32, BatchNorm + ReLU, tanh."""

    def __init__(self, z_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 4 * width, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * width), nn.ReLU(True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator32(nn.Module):
    """DCGAN discriminator for 32x32 images: 32 -> 16 -> 8 -> 4, BatchNorm + LeakyReLU, one raw score."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * width),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * width, 1, 4, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


def _sn(module: nn.Module) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module)


class _ResBlockDown(nn.Module):
    """SNGAN/BigGAN discriminator block: (ReLU) conv3 ReLU conv3 (avg-pool) + a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, *, downsample: bool, preactivation: bool) -> None:
        super().__init__()
        self.conv1 = _sn(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = _sn(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.shortcut = _sn(nn.Conv2d(c_in, c_out, 1)) if (c_in != c_out or downsample) else None
        self.downsample = downsample
        self.preactivation = preactivation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nnf.relu(x) if self.preactivation else x
        h = self.conv2(nnf.relu(self.conv1(h)))
        skip = x
        if self.downsample:
            h = nnf.avg_pool2d(h, 2)
        if self.shortcut is not None:
            # BigGAN's order: shortcut conv before the pool on preactivated blocks, after it on the first.
            skip = self.shortcut(skip) if self.preactivation else skip
            skip = nnf.avg_pool2d(skip, 2) if self.downsample else skip
            skip = skip if self.preactivation else self.shortcut(skip)
        elif self.downsample:
            skip = nnf.avg_pool2d(skip, 2)
        return h + skip


class ResNetSNDiscriminator32(nn.Module):
    """SNGAN/BigGAN-style 32x32 ResNet discriminator, spectral norm on every layer, no BatchNorm."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            _ResBlockDown(3, width, downsample=True, preactivation=False),
            _ResBlockDown(width, width, downsample=True, preactivation=True),
            _ResBlockDown(width, width, downsample=False, preactivation=True),
            _ResBlockDown(width, width, downsample=False, preactivation=True),
        )
        self.linear = _sn(nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nnf.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling, as in SNGAN/BigGAN
        return self.linear(h).view(-1)


class _PowerIterationSN:
    """Spectral norm the way BigGAN's own layers do it (Miyato et al.): one power iteration per forward.

    The layer keeps its left singular vector estimate ``u`` and the last
    estimate of the largest singular value ``sv`` as buffers, updated in place
    in training mode, and uses ``weight / sv``: several small operators per
    layer and per forward, and buffers that change on every forward.
    """

    weight: torch.Tensor
    u: torch.Tensor
    sv: torch.Tensor
    training: bool

    def _init_sn(self, out_features: int) -> None:
        self.register_buffer("u", nnf.normalize(torch.randn(1, out_features), dim=1))  # type: ignore[attr-defined]
        self.register_buffer("sv", torch.ones(1))  # type: ignore[attr-defined]

    def normalized_weight(self) -> torch.Tensor:
        w = self.weight.view(self.weight.shape[0], -1)
        with torch.no_grad():
            v = nnf.normalize(self.u @ w, dim=1, eps=1e-8)
            u = nnf.normalize(v @ w.t(), dim=1, eps=1e-8)
            if self.training:
                self.u.copy_(u)
        sv = (u @ w @ v.t()).squeeze()
        if self.training:
            with torch.no_grad():
                self.sv.copy_(sv.detach())
        return self.weight / sv


class _SNConv2d(nn.Conv2d, _PowerIterationSN):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sn(self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class _SNLinear(nn.Linear, _PowerIterationSN):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sn(self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.linear(x, self.normalized_weight(), self.bias)


class _SNEmbedding(nn.Embedding, _PowerIterationSN):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_sn(self.num_embeddings)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return nnf.embedding(y, self.normalized_weight())


class _ProjectionBlock(nn.Module):
    """A BigGAN D block: (ReLU) conv3 ReLU conv3 (avg-pool), plus a 1x1 conv shortcut where the shape changes."""

    def __init__(self, c_in: int, c_out: int, *, downsample: bool, preactivation: bool) -> None:
        super().__init__()
        self.conv1 = _SNConv2d(c_in, c_out, 3, padding=1)
        self.conv2 = _SNConv2d(c_out, c_out, 3, padding=1)
        self.shortcut = _SNConv2d(c_in, c_out, 1) if (c_in != c_out or downsample) else None
        self.downsample, self.preactivation = downsample, preactivation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(nnf.relu(self.conv1(nnf.relu(x) if self.preactivation else x)))
        if self.downsample:
            h = nnf.avg_pool2d(h, 2)
        skip = x
        if self.shortcut is not None:
            skip = self.shortcut(skip) if self.preactivation else skip
            skip = nnf.avg_pool2d(skip, 2) if self.downsample else skip
            skip = skip if self.preactivation else self.shortcut(skip)
        return h + skip


class BigGANLikeDiscriminator32(nn.Module):
    """A class-conditional 32x32 projection discriminator with BigGAN's structure, written for this benchmark.

    Four blocks of width ``4 * width`` (the first two downsample), global sum
    pooling, a linear score plus the projection ``<embed(y), h>``; every layer
    (10 convolutions, the linear layer, the embedding) has its own
    power-iteration spectral norm with ``u``/``sv`` buffers, as BigGAN-PyTorch's
    CIFAR discriminator without attention. It needs no checkout.
    """

    def __init__(self, width: int, classes: int = 10) -> None:
        super().__init__()
        c = 4 * width
        self.blocks = nn.Sequential(
            _ProjectionBlock(3, c, downsample=True, preactivation=False),
            _ProjectionBlock(c, c, downsample=True, preactivation=True),
            _ProjectionBlock(c, c, downsample=False, preactivation=True),
            _ProjectionBlock(c, c, downsample=False, preactivation=True),
        )
        self.linear = _SNLinear(c, 1)
        self.embed = _SNEmbedding(classes, c)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = nnf.relu(self.blocks(x)).sum(dim=(2, 3))
        return (self.linear(h) + (self.embed(y) * h).sum(1, keepdim=True)).view(-1)


class LabelledDiscriminator(nn.Module):
    """BigGAN's ``D(x, y)`` seen as ``D(x)``: the labels of a batch of n are ``arange(n) % classes``."""

    def __init__(self, discriminator: nn.Module, classes: int) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.arange(x.shape[0], device=x.device) % self.classes
        return self.discriminator(x, y)


def biggan_discriminator(width: int, repo: str | None = None) -> nn.Module:
    """BigGAN-PyTorch's CIFAR discriminator (resolution 32, 10 classes, no attention, its own SN layers).

    ``repo`` (default: the ``GAN_OPTIM_BIGGAN_DIR`` environment variable) is a local checkout; only its
    ``BigGAN.py``, ``layers.py`` and ``sync_batchnorm`` are imported.
    """
    repo = repo or os.environ.get(BIGGAN_DIR_ENV)
    if not repo or not os.path.isfile(os.path.join(repo, "BigGAN.py")):
        raise ValueError(f"Invalid model 'biggan': needs a BigGAN-PyTorch checkout; pass --biggan-dir PATH "
                         f"or set {BIGGAN_DIR_ENV} (got {repo!r})")
    if repo not in sys.path:
        sys.path.insert(0, repo)
    module = importlib.import_module("BigGAN")
    with contextlib.redirect_stdout(io.StringIO()):  # its constructor prints a parameter count
        D = module.Discriminator(D_ch=width, resolution=32, D_attn="0", n_classes=10)
    return LabelledDiscriminator(D, classes=10)


@dataclass
class _Setup:
    """G, D, their Adam optimizers and one fixed batch (real, fake, z) for one model row."""

    name: str
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    x_real: torch.Tensor
    x_fake: torch.Tensor
    z: torch.Tensor
    d_param_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.d_param_bytes = sum(p.numel() * p.element_size() for p in self.D.parameters() if p.requires_grad)


def build_models(name: str, sizes: BenchSizes, device: torch.device, seed: int = 0) -> _Setup:
    """The G/D pair, Adam optimizers (lr 1e-4, betas (0.5, 0.999)) and a fixed batch for model ``name``.

    ``resnet-sn`` pairs the ResNet D with the DCGAN generator: its rows are about D's
    step, and on the G-step rows the G is the same as ``dcgan32``'s.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = sizes.batch
    if name == "mlp":
        G = _mlp(sizes.z_dim, sizes.mlp_data_dim, sizes.mlp_hidden)
        D = _mlp(sizes.mlp_data_dim, 1, sizes.mlp_hidden)
        x_real = torch.randn(n, sizes.mlp_data_dim, generator=gen).clamp(-1, 1)
    elif name in ("dcgan32", "resnet-sn", "biggan", "biggan-like"):
        width = sizes.resnet_width if name == "resnet-sn" else sizes.dcgan_width
        G = DCGANGenerator32(sizes.z_dim, width)
        D = {"dcgan32": lambda: DCGANDiscriminator32(width), "resnet-sn": lambda: ResNetSNDiscriminator32(width),
             "biggan": lambda: biggan_discriminator(sizes.biggan_width),
             "biggan-like": lambda: LabelledDiscriminator(BigGANLikeDiscriminator32(sizes.biggan_width), 10),
             }[name]()
        x_real = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    else:
        raise ValueError(f"Invalid model: {name!r} (one of {', '.join(MODELS + OPTIONAL_MODELS)})")
    G, D = G.to(device), D.to(device)
    z = torch.randn(n, sizes.z_dim, generator=gen).to(device)
    with torch.no_grad():
        x_fake = G(z).detach()
    # A small learning rate: the steps run hundreds of times on one batch and must not diverge.
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    return _Setup(name, G, D, opt_g, opt_d, x_real.to(device), x_fake, z)


