"""``gan-optim bench``: each component's step time and peak memory against a hand-written plain step.

For every (component, model) pair the runner builds two closures on the *same*
models, optimizers and batch:

- ``plain``: the step a user would write without the component, spelled out
  here by hand (hinge D loss, non-saturating G loss, Adam);
- ``candidate``: the same step with the component dropped in.

They are timed interleaved in one process (plain, candidate, plain, candidate,
...), each sample with :func:`time.perf_counter`, after a warm-up; a sample is
one call, or for millisecond steps enough consecutive calls to last
``min_sample_seconds`` (see :func:`time_interleaved`). The reported ``ratio``
is the median over the repeats of the per-pair ratio ``t_candidate / t_plain``
(a pair is two adjacent samples, so a slow spell of a shared machine slows both
and cancels out), divided by the number of work units the candidate does per
call (free-adv replays). ``cpu_ratio`` is the same from the thread's CPU time
(``time.thread_time``), which does not count time spent waiting for a core.

Memory (``memory_ratio``) is the peak of tensor memory *allocated during one
step above what was live when the step started*, candidate over plain (per
call: for free-adv, the whole ``step`` with all its replays):

- CPU: tracemalloc does not see tensor storage (PyTorch's CPU allocator calls
  ``posix_memalign`` directly, not Python's allocator), so the runner records
  the allocator's allocation and free events with
  ``torch.profiler.profile(profile_memory=True)`` over two consecutive steps
  and replays them in order; the peak of the running total during the second
  step, minus the total at its start, is the step's working set. (Two steps,
  because a free of a block allocated before profiling began carries no size;
  everything the second step frees was allocated inside the profile.)
- GPU: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` at
  the step's start, after ``reset_peak_memory_stats()``.

Python-object memory (the scheduler's floats, AWStats) is not counted; it is
bytes, not megabytes. The fake batch is generated once: D-step rows time D's
step on a fixed ``x_fake``, as in a loop that computes ``G(z).detach()`` once
for the D step (the same ``G`` forward on both sides would only dilute the
ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as nnf

from gan_optim.adaptive import AdaptiveScheduler
from gan_optim.aw import AWDiscriminatorLoss
from gan_optim.freeadv import FreeAdvDiscriminator
from gan_optim.ttur import TwoTimescale
from gan_optim.wegan import WeightedGeneratorLoss

__all__ = [
    "BenchResult",
    "BenchSizes",
    "COMPONENTS",
    "FULL",
    "MODELS",
    "QUICK",
    "Timing",
    "build_models",
    "format_table",
    "main",
    "peak_step_memory",
    "run_bench",
    "time_interleaved",
]

Step = Callable[[], None]

#: Component rows, in table order.
COMPONENTS = (
    "aw",                # AWDiscriminatorLoss(x_real, x_fake) vs a plain D step (two half forwards)
    "aw-concat",         # aw.from_outputs on one forward over cat([fake, real]) vs the plain concatenated step
    "aw-original-ref",   # reference: two retain_graph backward passes on the shared graph (not library code)
    "wegan",             # WeightedGeneratorLoss vs softplus(-D(G(z))).mean()
    "scheduler-D",       # AdaptiveScheduler bookkeeping on a D iteration
    "scheduler-G",       # ... on a G iteration, the no-grad D(x_real) forward excluded (precomputed)
    "scheduler-G+fwd",   # ... on a G iteration, that forward included
    "ttur",              # TwoTimescale.zero_grad/step_d vs opt_d.zero_grad/step
    "free-adv-r1",       # FreeAdvDiscriminator.step, replays=1, per replay, vs a plain D step
    "free-adv-r2",       # replays=2, per replay
    "free-adv-r2-nonatomic",  # replays=2, atomic=False (no snapshot for the rollback), per replay
    "null",              # control: the plain D step against itself; its distance from 1 is the noise floor
)

#: Model rows, in table order.
MODELS = ("mlp", "dcgan32", "resnet-sn")

#: The issue's targets (ratio to plain), for the table's verdict column.
TIME_TARGETS = {
    "aw": 1.05, "aw-concat": 1.05, "wegan": 1.02, "scheduler-D": 1.02, "scheduler-G": 1.02,
    "free-adv-r1": 1.10, "free-adv-r2": 1.10, "free-adv-r2-nonatomic": 1.10,
}
#: AW's extra peak memory over plain may be at most this many times D's parameter bytes.
AW_EXTRA_MEMORY_TARGET = 2.0


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


#: ``--quick``: small models, few repeats (seconds).
QUICK = BenchSizes(batch=16, mlp_hidden=64, dcgan_width=8, resnet_width=8, repeats=5, warmup=2,
                   min_sample_seconds=0.005)
#: The default: DCGAN-32 at its usual width 64, the ResNet D at width 64 (SNGAN uses 128; 64 keeps a
#: CPU run within minutes), batch 32 per half, 21 timed pairs after 3 warm-up pairs, samples >= 50 ms.
FULL = BenchSizes(batch=32, mlp_hidden=256, dcgan_width=64, resnet_width=64, repeats=21, warmup=3,
                  min_sample_seconds=0.05)


@dataclass
class BenchResult:
    """One table row. ``ratio`` and ``memory_ratio`` are candidate over plain."""

    component: str
    model: str
    ratio: float                   #: wall-clock time, per work unit (per replay for free-adv)
    memory_ratio: float
    cpu_ratio: float               #: this thread's CPU time, per work unit (see :func:`time_interleaved`)
    plain_seconds: float           #: median plain step time
    candidate_seconds: float       #: median candidate time per work unit (per replay for free-adv)
    extra_bytes: int               #: candidate's peak step memory minus plain's (may be negative)
    d_param_bytes: int             #: bytes of D's parameters, the unit of the AW memory target

    def to_json(self) -> dict[str, object]:
        return {"component": self.component, "model": self.model, "ratio": self.ratio,
                "memory_ratio": self.memory_ratio, "cpu_ratio": self.cpu_ratio, "plain_seconds": self.plain_seconds,
                "candidate_seconds": self.candidate_seconds, "extra_bytes": self.extra_bytes,
                "d_param_bytes": self.d_param_bytes}


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
    elif name in ("dcgan32", "resnet-sn"):
        width = sizes.dcgan_width if name == "dcgan32" else sizes.resnet_width
        G = DCGANGenerator32(sizes.z_dim, width)
        D = DCGANDiscriminator32(width) if name == "dcgan32" else ResNetSNDiscriminator32(width)
        x_real = torch.rand(n, 3, 32, 32, generator=gen) * 2 - 1
    else:
        raise ValueError(f"Invalid model: {name!r} (one of {', '.join(MODELS)})")
    G, D = G.to(device), D.to(device)
    z = torch.randn(n, sizes.z_dim, generator=gen).to(device)
    with torch.no_grad():
        x_fake = G(z).detach()
    # A small learning rate: the steps run hundreds of times on one batch and must not diverge.
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.999))
    return _Setup(name, G, D, opt_g, opt_d, x_real.to(device), x_fake, z)


# ----------------------------------------------------------------------- steps
def _scores(out: torch.Tensor) -> torch.Tensor:
    return out.reshape(-1)


def _hinge_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return torch.relu(1.0 - _scores(d_real)).mean() + torch.relu(1.0 + _scores(d_fake)).mean()


def _plain_d_step(s: _Setup) -> Step:
    """The usual D step: a forward per half, the summed hinge loss, one backward, Adam."""
    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        _hinge_d(s.D(s.x_real), s.D(s.x_fake)).backward()
        s.opt_d.step()
    return step


def _plain_concat_d_step(s: _Setup) -> Step:
    """BigGAN's D step: one forward over cat([fake, real]), split, hinge loss, one backward, Adam."""
    n_fake = s.x_fake.shape[0]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        out = _scores(s.D(torch.cat([s.x_fake, s.x_real])))
        _hinge_d(out[n_fake:], out[:n_fake]).backward()
        s.opt_d.step()
    return step


def _plain_g_step(s: _Setup) -> Step:
    """The usual non-saturating G step: softplus(-D(G(z))).mean(), one backward, Adam."""
    def step() -> None:
        s.opt_g.zero_grad(set_to_none=True)
        nnf.softplus(-_scores(s.D(s.G(s.z)))).mean().backward()
        s.opt_g.step()
    return step


def _aw_step(s: _Setup) -> Step:
    aw = AWDiscriminatorLoss(s.D, loss="hinge")

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        aw(s.x_real, s.x_fake).backward()
        s.opt_d.step()
    return step


def _aw_concat_step(s: _Setup) -> Step:
    aw = AWDiscriminatorLoss(s.D, loss="hinge")
    n_fake = s.x_fake.shape[0]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        out = _scores(s.D(torch.cat([s.x_fake, s.x_real])))
        aw.from_outputs(out[n_fake:], out[:n_fake]).backward()
        s.opt_d.step()
    return step


def _original_aw_weights(g_real: torch.Tensor, g_fake: torch.Tensor, score_real: float, score_fake: float,
                         alpha1: float = 0.5, alpha2: float = 0.75, eps: float = 0.05,
                         delta: float = 0.05) -> tuple[float, float]:
    """Algorithm 1 of Zadorozhnyy et al. in Python floats, as the paper's own code computes it.

    Written here from the paper, independently of :mod:`gan_optim.functional`,
    because this row must cost what the original approach costs (``.item()``
    syncs and all), not what the library's branch-free version costs.
    """
    rr = torch.dot(g_real, g_real).item()
    ff = torch.dot(g_fake, g_fake).item()
    rf = torch.dot(g_real, g_fake).item()
    norm_r, norm_f = math.sqrt(rr) or 1.0, math.sqrt(ff) or 1.0
    if score_real < score_fake - delta or score_real < alpha1:
        w_r, w_f = 1.0 / norm_r, (-rf / (ff * norm_r) if rf < 0 else 0.0)
    elif score_real > score_fake - delta and score_real > alpha2:
        w_r, w_f = (-rf / (rr * norm_f) if rf < 0 else 0.0), 1.0 / norm_f
    else:
        w_r, w_f = 1.0 / norm_r, 1.0 / norm_f
    return w_r + eps, w_f + eps


def _original_aw_reference_step(s: _Setup) -> Step:
    """The original aw-loss approach on the shared concatenated graph, written from its description.

    Backward of L_r with ``retain_graph=True``, copy the gradients, zero them,
    backward of L_f, copy again, choose the weights from the flattened copies,
    write ``w_r g_r + w_f g_f`` into ``.grad``, step. Two full backward passes
    through the whole concatenated graph. (Backpropagating the weighted loss
    once more instead of writing ``.grad`` would add a third.)
    """
    n_fake = s.x_fake.shape[0]
    params = [p for p in s.D.parameters() if p.requires_grad]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        out = _scores(s.D(torch.cat([s.x_fake, s.x_real])))
        d_fake, d_real = out[:n_fake], out[n_fake:]
        loss_real, loss_fake = torch.relu(1.0 - d_real).mean(), torch.relu(1.0 + d_fake).mean()
        loss_real.backward(retain_graph=True)
        g_real = [p.grad.clone() for p in params]
        s.opt_d.zero_grad(set_to_none=True)
        loss_fake.backward()
        g_fake = [p.grad.clone() for p in params]
        w_r, w_f = _original_aw_weights(torch.cat([g.reshape(-1) for g in g_real]),
                                        torch.cat([g.reshape(-1) for g in g_fake]),
                                        torch.sigmoid(d_real.detach()).mean().item(),
                                        torch.sigmoid(d_fake.detach()).mean().item())
        with torch.no_grad():
            for p, gr, gf in zip(params, g_real, g_fake):
                p.grad = w_r * gr + w_f * gf
        s.opt_d.step()
    return step


def _wegan_step(s: _Setup) -> Step:
    wg = WeightedGeneratorLoss(eta=0.01, loss="ns")

    def step() -> None:
        s.opt_g.zero_grad(set_to_none=True)
        wg(s.D(s.G(s.z))).backward()
        s.opt_g.step()
    return step


def _scheduler_d_step(s: _Setup) -> Step:
    """A D iteration with the scheduler: the plain D step plus next_update/observe.

    The idle loss (G's) comes from D's outputs on the fake batch, already there.
    The scheduler's choice is computed and recorded but the step is always a D
    step, so both sides do the same work and the difference is the bookkeeping.
    """
    sched = AdaptiveScheduler(lam=1.0)

    def step() -> None:
        sched.next_update()
        s.opt_d.zero_grad(set_to_none=True)
        d_fake = s.D(s.x_fake)
        loss_d = _hinge_d(s.D(s.x_real), d_fake)
        loss_d.backward()
        s.opt_d.step()
        loss_g = nnf.softplus(-_scores(d_fake.detach())).mean()
        sched.observe(loss_g=loss_g, loss_d=loss_d)
    return step


def _scheduler_g_step(s: _Setup, *, include_forward: bool) -> Step:
    """A G iteration with the scheduler: the plain G step plus the idle D loss and next_update/observe.

    The D loss needs D(x_real) under no_grad; with ``include_forward=False``
    it is computed once outside the timed step (the issue's target excludes
    that forward), with ``True`` every step.
    """
    sched = AdaptiveScheduler(lam=1.0)
    with torch.no_grad():
        precomputed_d_real = s.D(s.x_real)

    def step() -> None:
        sched.next_update()
        s.opt_g.zero_grad(set_to_none=True)
        d_gen = s.D(s.G(s.z))
        loss_g = nnf.softplus(-_scores(d_gen)).mean()
        loss_g.backward()
        s.opt_g.step()
        if include_forward:
            with torch.no_grad():
                d_real = s.D(s.x_real)
        else:
            d_real = precomputed_d_real
        sched.observe(loss_g=loss_g, loss_d=_hinge_d(d_real, d_gen.detach()))
    return step


def _ttur_d_step(s: _Setup) -> Step:
    """The plain D step with TwoTimescale's zero_grad/step_d in place of the optimizer's."""
    tt = TwoTimescale(s.opt_g, s.opt_d)

    def step() -> None:
        tt.zero_grad("D")
        _hinge_d(s.D(s.x_real), s.D(s.x_fake)).backward()
        tt.step_d()
    return step


def _free_adv_step(s: _Setup, replays: int, atomic: bool = True) -> Step:
    fa = FreeAdvDiscriminator(s.D, s.opt_d, loss="hinge", epsilon=6e-3, replays=replays, atomic=atomic)

    def step() -> None:
        fa.step(s.x_real, s.x_fake)
    return step


def _case(component: str, s: _Setup) -> tuple[Step, Step, int]:
    """``(plain, candidate, work units per candidate call)`` for one row."""
    if component == "aw":
        return _plain_d_step(s), _aw_step(s), 1
    if component == "aw-concat":
        return _plain_concat_d_step(s), _aw_concat_step(s), 1
    if component == "aw-original-ref":
        return _plain_concat_d_step(s), _original_aw_reference_step(s), 1
    if component == "wegan":
        return _plain_g_step(s), _wegan_step(s), 1
    if component == "scheduler-D":
        return _plain_d_step(s), _scheduler_d_step(s), 1
    if component == "scheduler-G":
        return _plain_g_step(s), _scheduler_g_step(s, include_forward=False), 1
    if component == "scheduler-G+fwd":
        return _plain_g_step(s), _scheduler_g_step(s, include_forward=True), 1
    if component == "ttur":
        return _plain_d_step(s), _ttur_d_step(s), 1
    if component in ("free-adv-r1", "free-adv-r2"):
        replays = int(component[-1])
        return _plain_d_step(s), _free_adv_step(s, replays), replays
    if component == "free-adv-r2-nonatomic":
        return _plain_d_step(s), _free_adv_step(s, 2, atomic=False), 2
    if component == "null":
        # Two closures of the same step, so that nothing (not even the function object) is shared.
        return _plain_d_step(s), _plain_d_step(s), 1
    raise ValueError(f"Invalid component: {component!r} (one of {', '.join(COMPONENTS)})")


# ---------------------------------------------------------------- measurement
def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass(frozen=True)
class Timing:
    """Medians of one interleaved comparison, per call (seconds) and as per-pair ratios."""

    plain_seconds: float
    candidate_seconds: float
    ratio: float                   #: median per-pair ratio of wall-clock times
    cpu_ratio: float               #: median per-pair ratio of this thread's CPU times (``time.thread_time``)
    calls_per_sample: int


def time_interleaved(plain: Step, candidate: Step, *, repeats: int, warmup: int, device: torch.device,
                     min_sample_seconds: float = 0.0) -> Timing:
    """Time ``plain`` and ``candidate`` interleaved, P C P C ..., after ``warmup`` pairs.

    Each sample is ``k`` consecutive calls of one closure, bracketed by a device
    synchronisation so that queued GPU work is charged to the call that queued
    it; ``k`` is the smallest count for which a plain sample lasts at least
    ``min_sample_seconds`` (1 for steps longer than that). Batching millisecond
    steps keeps a sample from being a single time slice of a shared CPU: with
    another process on the core, preemptions fall at the scheduler's period,
    which can alias with the pair's period and land on the same side of every
    pair.

    Besides wall time (``time.perf_counter``), the calling thread's CPU time
    (``time.thread_time``) is recorded: with ``torch.set_num_threads(1)`` all
    of a CPU step runs on this thread, and its CPU time does not count the time
    the thread waited for a core, so ``cpu_ratio`` is the steadier one on a
    loaded machine. On a GPU, wall time is the one that means something.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"Invalid repeats/warmup: {repeats}/{warmup}")
    sync = _synchronizer(device)
    for _ in range(warmup):
        plain()
        candidate()
    sync()
    start = time.perf_counter()
    plain()
    sync()
    one_call = max(time.perf_counter() - start, 1e-9)
    calls = max(1, math.ceil(min_sample_seconds / one_call))

    def sample(fn: Step) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        sync()
        return (time.perf_counter() - wall) / calls, (time.thread_time() - cpu) / calls

    plain_wall, plain_cpu, cand_wall, cand_cpu = [], [], [], []
    for _ in range(repeats):
        wall, cpu = sample(plain)
        plain_wall.append(wall)
        plain_cpu.append(cpu)
        wall, cpu = sample(candidate)
        cand_wall.append(wall)
        cand_cpu.append(cpu)
    wall_ratios = [c / p for p, c in zip(plain_wall, cand_wall)]
    # thread_time ticks coarsely on some systems; a zero reading gives no ratio.
    cpu_ratios = [c / p for p, c in zip(plain_cpu, cand_cpu) if p > 0 and c > 0]
    return Timing(statistics.median(plain_wall), statistics.median(cand_wall), statistics.median(wall_ratios),
                  statistics.median(cpu_ratios) if cpu_ratios else float("nan"), calls)


def _replayed_peak(events: list, boundary_ns: int) -> int:
    """Peak running total of allocator events after ``boundary_ns``, above the total at ``boundary_ns``."""
    total = at_boundary = peak = 0
    crossed = False
    for event in events:
        if not crossed and event.start_ns() >= boundary_ns:
            crossed, at_boundary, peak = True, total, total
        total += event.nbytes()
        if crossed:
            peak = max(peak, total)
    return (peak - at_boundary) if crossed else 0


_MEASURED_STEP = "gan_optim_benchmarks.bench.measured_step"


def peak_step_memory(step: Step, device: torch.device, *, quiet: bool = False) -> int:
    """Bytes of tensor memory allocated during one ``step()`` above what was live at its start, at the peak.

    ``quiet=True`` sends file descriptor 2 to /dev/null while the CPU profiler
    runs: Kineto writes its start/stop lines there from C++, past Python's
    ``sys.stderr``. (The step has already run many times by then, so nothing it
    would report is lost.)
    """
    if device.type == "cuda":
        step()  # so that what the previous step left behind is this step's starting state
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    from torch.profiler import ProfilerActivity, profile, record_function

    # Kineto's "gpuGetDeviceCount failed" error on a machine without a GPU is noise here.
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    with _native_stderr_silenced(quiet):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
            # A named range marks where the measured step starts, on the profiler's own clock.
            with record_function(_MEASURED_STEP):
                step()
    events = prof.profiler.kineto_results.events()
    boundary_ns = min(e.start_ns() for e in events if e.name() == _MEASURED_STEP)
    allocations = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    return _replayed_peak(allocations, boundary_ns)


@contextlib.contextmanager
def _native_stderr_silenced(active: bool) -> Iterator[None]:
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def run_bench(sizes: BenchSizes, *, models: Sequence[str] = MODELS, components: Sequence[str] = COMPONENTS,
              device: str | torch.device = "cpu", measure_memory: bool = True,
              progress: Callable[[str], None] | None = None, quiet_profiler: bool = False,
              ) -> list[BenchResult]:
    """Time (and measure the memory of) every component on every model; one :class:`BenchResult` per pair.

    ``progress(message)`` is called as each row starts; ``quiet_profiler`` is
    passed to :func:`peak_step_memory` as ``quiet``.
    """
    device = torch.device(device)
    results = []
    for model in models:
        for component in components:
            if progress is not None:
                progress(f"{component} on {model}")
            # Fresh models per row: optimizer state and BatchNorm statistics of one row do not leak into the next.
            s = build_models(model, sizes, device)
            plain, candidate, units = _case(component, s)
            timing = time_interleaved(plain, candidate, repeats=sizes.repeats, warmup=sizes.warmup, device=device,
                                      min_sample_seconds=sizes.min_sample_seconds)
            if measure_memory:
                plain_peak = peak_step_memory(plain, device, quiet=quiet_profiler)
                candidate_peak = peak_step_memory(candidate, device, quiet=quiet_profiler)
                memory_ratio = candidate_peak / plain_peak if plain_peak > 0 else float("nan")
            else:
                plain_peak = candidate_peak = 0
                memory_ratio = float("nan")
            results.append(BenchResult(component, model, timing.ratio / units, memory_ratio, timing.cpu_ratio / units,
                                       timing.plain_seconds, timing.candidate_seconds / units,
                                       candidate_peak - plain_peak, s.d_param_bytes))
    return results


# ------------------------------------------------------------------- reporting
def _verdict(r: BenchResult) -> str:
    notes = []
    target = TIME_TARGETS.get(r.component)
    if target is not None:
        # Judged on both clocks: a row meets the target only if wall and CPU time do.
        met = r.ratio <= target and not (r.cpu_ratio > target)
        notes.append(f"time {'met' if met else 'MISSED'} (<= {target:.2f})")
    if r.component in ("aw", "aw-concat") and r.d_param_bytes > 0 and math.isfinite(r.memory_ratio):
        extra = r.extra_bytes / r.d_param_bytes
        notes.append(f"extra mem {extra:.2f}x D params, "
                     f"{'met' if extra <= AW_EXTRA_MEMORY_TARGET else 'MISSED'} (<= {AW_EXTRA_MEMORY_TARGET:.0f}x)")
    return "; ".join(notes)


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table of the results, one row per (component, model)."""
    lines = ["| component | model | ratio | cpu ratio | plain ms | candidate ms | memory ratio | extra MiB | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.component} | {r.model} | {r.ratio:.3f} | {r.cpu_ratio:.3f} | {1e3 * r.plain_seconds:.2f} | "
                     f"{1e3 * r.candidate_seconds:.2f} | {r.memory_ratio:.2f} | "
                     f"{r.extra_bytes / 2 ** 20:.2f} | {_verdict(r)} |")
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} (must be >= 1)")
    return value


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark runs on cpu or cuda")
    return device


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Time each gan_optim component against a hand-written "
                                "plain step on the same model and batch (ratio = component / plain).")
    p.add_argument("--quick", action="store_true", help="small models and few repeats (seconds)")
    p.add_argument("--json", action="store_true", help="print a JSON list of rows instead of the table")
    p.add_argument("--device", type=_device, default="cpu", help="torch device (default cpu); on cuda memory is measured "
                   "with torch.cuda.max_memory_allocated")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of %(default)s")
    p.add_argument("--components", default=",".join(COMPONENTS), help="comma-separated subset of %(default)s")
    p.add_argument("--repeats", type=_positive_int, default=None,
                   help="timed pairs per row (default 5 quick, 21 full)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="torch CPU threads (default 1: steadier timings on a shared machine)")
    p.add_argument("--min-sample-ms", type=float, default=None,
                   help="repeat short steps within a sample until it lasts this long (default 5 quick, 50 full)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--progress", action="store_true", help="name each row on stderr as it starts")
    return p


def _split_choices(name: str, text: str, allowed: Sequence[str]) -> list[str]:
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        print(f"gan-optim bench: invalid --{name} {text!r}; choose from {', '.join(allowed)}", file=sys.stderr)
        raise SystemExit(2)
    return chosen


def main(command: str = "bench", argv: Sequence[str] | None = None) -> int:
    """``gan-optim bench [--quick] [--json] [--device DEV] ...``: prints the table (or JSON) on stdout."""
    args = _parser(f"gan-optim {command}").parse_args(list(sys.argv[1:] if argv is None else argv))
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=args.repeats)
    if args.min_sample_ms is not None:
        sizes = dataclasses.replace(sizes, min_sample_seconds=max(0.0, args.min_sample_ms) / 1e3)
    device = args.device
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gan-optim bench: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    progress = (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True)) if args.progress else None
    results = run_bench(sizes, models=_split_choices("models", args.models, MODELS),
                        components=_split_choices("components", args.components, COMPONENTS),
                        device=device, measure_memory=not args.no_memory, progress=progress,
                        quiet_profiler=True)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        where = f"{device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                    f", {torch.get_num_threads()} thread(s)")
        print(f"gan-optim bench ({'quick' if args.quick else 'full'}, {where}, batch {sizes.batch}, "
              f"median of {sizes.repeats} interleaved pairs after {sizes.warmup} warm-up, "
              f"samples >= {1e3 * sizes.min_sample_seconds:g} ms)")
        print(format_table(results))
    return 0
