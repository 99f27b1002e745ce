"""A plain PyTorch GAN loop on a ring of 8 Gaussians, with any of gan_optim's five components.

    python examples/train_gaussians.py --technique aw --steps 2000

Each technique changes only the lines marked ``# gan_optim``; everything else
is the hand-written baseline loop.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as nnf

from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss
from gan_optim_experiments.metrics import mmd_rbf as mmd  # squared MMD, Gaussian kernel

TECHNIQUES = ("baseline", "aw", "wegan", "adaptive", "ttur", "freeadv")


def ring(n: int, generator: torch.Generator, radius: float = 2.0, std: float = 0.05) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=generator)
    angle = k.float() * (2 * math.pi / 8)
    centers = torch.stack([angle.cos(), angle.sin()], 1) * radius
    return centers + std * torch.randn(n, 2, generator=generator)


def mlp(inp: int, out: int, width: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(inp, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


def train(technique: str = "baseline", steps: int = 1000, batch: int = 128, seed: int = 0) -> dict[str, float]:
    """Train and return the MMD to the data before and after, and the D/G update counts."""
    if technique not in TECHNIQUES:
        raise ValueError(f"Invalid technique: {technique!r} (expected one of {TECHNIQUES})")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = mlp(2, 2), mlp(2, 1)
    z_eval = torch.randn(1000, 2, generator=gen)
    data_eval = ring(1000, gen)
    with torch.no_grad():
        before = mmd(G(z_eval), data_eval)

    lr_g, lr_d = (1e-4, 3e-4) if technique == "ttur" else (2e-4, 2e-4)
    tt = TwoTimescale(G, D, lr_g=lr_g, lr_d=lr_d)                       # gan_optim (plain Adam pair otherwise)
    aw = AWDiscriminatorLoss(D, loss="hinge") if technique == "aw" else None           # gan_optim
    wg = WeightedGeneratorLoss(eta=0.1, loss="ns") if technique == "wegan" else None  # gan_optim
    sched = AdaptiveScheduler(lam=1.0) if technique == "adaptive" else None           # gan_optim
    fa = FreeAdvDiscriminator(D, tt.d_optimizer, epsilon=0.02, data_range=None) if technique == "freeadv" else None
    counts = {"D": 0, "G": 0}

    for _ in range(steps):
        x_real = ring(batch, gen)
        z = torch.randn(batch, 2, generator=gen)
        which = sched.next_update() if sched else "DG"                  # gan_optim: D or G this iteration
        if "D" in which:
            fake = G(z).detach()
            if fa is not None:
                fa.step(x_real, fake)                                   # gan_optim: free adversarial D step
            else:
                tt.zero_grad()
                if aw is not None:
                    loss_d = aw(x_real, fake)                           # gan_optim: adaptive weights
                else:
                    loss_d = torch.relu(1 - D(x_real)).mean() + torch.relu(1 + D(fake)).mean()
                loss_d.backward()
                tt.step_d()
            counts["D"] += 1
        if "G" in which:
            tt.zero_grad()
            d_fake = D(G(z))
            loss_g = wg(d_fake) if wg is not None else nnf.softplus(-d_fake).mean()  # gan_optim: WeGAN weights
            loss_g.backward()
            tt.step_g()
            counts["G"] += 1
        if sched is not None:
            # The idle network's loss: at most one no-grad forward.
            with torch.no_grad():
                fake = G(z)
                d_fake, d_real = D(fake), D(x_real)
                sched.observe(loss_g=nnf.softplus(-d_fake).mean(),
                              loss_d=torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean())
    with torch.no_grad():
        after = mmd(G(z_eval), data_eval)
    return {"mmd_before": before, "mmd_after": after, "d_updates": counts["D"], "g_updates": counts["G"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--technique", choices=TECHNIQUES, default="baseline")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = train(args.technique, args.steps, seed=args.seed)
    print(f"{args.technique}: MMD {result['mmd_before']:.4f} -> {result['mmd_after']:.4f}  "
          f"(D updates {result['d_updates']}, G updates {result['g_updates']})")


if __name__ == "__main__":
    main()
