"""A PyTorch Lightning GAN (manual optimization) using gan_optim's components, on a ring of 8 Gaussians.

    python examples/lightning_gan.py --d-step aw --epochs 20

D: the aw loss (or free adversarial training with ``--d-step freeadv``, or the
plain loss); G: WeGAN's weighted loss; which network to update: the adaptive
scheduler (``--no-adaptive`` for one step of each per batch); optimizers:
TwoTimescale over Lightning's optimizers. The ``GanOptimCheckpoints`` mixin puts
every component's state in Lightning's checkpoints, so ``fit(ckpt_path=...)``
continues where the run stopped.
"""

from __future__ import annotations

import argparse
import math

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F

from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss
from gan_optim.adapters.lightning import GanOptimCheckpoints


def ring_dataset(n: int = 512, seed: int = 0, radius: float = 2.0, std: float = 0.05) -> torch.utils.data.Dataset:
    gen = torch.Generator().manual_seed(seed)
    angle = torch.randint(0, 8, (n,), generator=gen).float() * (2 * math.pi / 8)
    x = torch.stack([angle.cos(), angle.sin()], 1) * radius + std * torch.randn(n, 2, generator=gen)
    return torch.utils.data.TensorDataset(x)


def mlp(inp: int, out: int, width: int = 32) -> nn.Module:
    return nn.Sequential(nn.Linear(inp, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


class GAN(GanOptimCheckpoints, L.LightningModule):
    """G and D MLPs on 2-D data, trained with gan_optim's components under manual optimization."""

    def __init__(self, d_step: str = "aw", eta: float = 0.01, adaptive: bool = True, lam: float = 1.0,
                 lr_g: float = 1e-4, lr_d: float = 3e-4, g_schedule: float | None = None,
                 d_schedule: float | None = None, epsilon: float = 0.05) -> None:
        super().__init__()
        if d_step not in ("aw", "freeadv", "plain"):
            raise ValueError(f"Invalid d_step: {d_step!r} (aw, freeadv or plain)")
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimizers, our own step order
        self.G, self.D = mlp(2, 2), mlp(2, 1)
        # Components built from the modules alone.
        self.aw = AWDiscriminatorLoss(self.D, loss="bce") if d_step == "aw" else None
        self.wg = WeightedGeneratorLoss(eta=eta, loss="ns")
        self.sched = AdaptiveScheduler(lam=lam) if adaptive else None
        # Components built on the optimizers: in build_gan_optim.
        self.tt: TwoTimescale | None = None
        self.fa: FreeAdvDiscriminator | None = None

    def configure_optimizers(self):
        hp = self.hparams
        return [torch.optim.Adam(self.G.parameters(), lr=hp.lr_g, betas=(0.5, 0.999)),
                torch.optim.Adam(self.D.parameters(), lr=hp.lr_d, betas=(0.5, 0.999))]

    def build_gan_optim(self) -> None:
        # Lightning's optimizer wrappers are torch optimizers too: stepping through them keeps
        # Lightning's step counting and precision handling.
        opt_g, opt_d = self.optimizers()
        hp = self.hparams
        self.tt = TwoTimescale(opt_g, opt_d, g_schedule=hp.g_schedule, d_schedule=hp.d_schedule)
        if hp.d_step == "freeadv":
            self.fa = FreeAdvDiscriminator(self.D, opt_d, loss="bce", epsilon=hp.epsilon, data_range=None)

    def _noise(self, n: int, batch_idx: int) -> torch.Tensor:
        # Noise drawn from (epoch, batch): a run resumed from a checkpoint draws the same noise.
        gen = torch.Generator().manual_seed(1_000_003 * self.current_epoch + batch_idx)
        return torch.randn(n, 2, generator=gen).to(self.device)

    def training_step(self, batch, batch_idx):
        (x_real,) = batch
        z = self._noise(x_real.shape[0], batch_idx)
        which = self.sched.next_update() if self.sched is not None else "both"
        loss_d = loss_g = None
        if which in ("D", "both"):
            fake = self.G(z).detach()
            if self.fa is not None:
                stats = self.fa.step(x_real, fake)
                loss_d = (stats.loss_real + stats.loss_fake).detach()
            else:
                self.tt.zero_grad("D")
                if self.aw is not None:
                    loss_d = self.aw(x_real, fake)  # backward adds w_r*grad L_r + w_f*grad L_f
                else:
                    loss_d = F.softplus(-self.D(x_real)).mean() + F.softplus(self.D(fake)).mean()
                self.manual_backward(loss_d)
                self.tt.step("D")
        if which in ("G", "both"):
            self.tt.zero_grad("G")
            loss_g = self.wg(self.D(self.G(z)))
            self.manual_backward(loss_g)
            self.tt.step("G")
        if self.sched is not None:
            # The idle network's loss, without gradients (AdaptiveScheduler's contract).
            with torch.no_grad():
                if loss_g is None:
                    loss_g = F.softplus(-self.D(self.G(z))).mean()
                if loss_d is None:
                    loss_d = F.softplus(-self.D(x_real)).mean() + F.softplus(self.D(self.G(z))).mean()
            self.sched.observe(loss_g=loss_g, loss_d=loss_d)
        self.log_dict({"loss_d": loss_d.detach().item(), "loss_g": loss_g.detach().item()}, prog_bar=True,
                      on_step=True, on_epoch=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d-step", default="aw", choices=("aw", "freeadv", "plain"))
    p.add_argument("--no-adaptive", dest="adaptive", action="store_false")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--ckpt", default=None, help="resume from this Lightning checkpoint")
    args = p.parse_args()
    L.seed_everything(0)
    model = GAN(d_step=args.d_step, adaptive=args.adaptive)
    loader = torch.utils.data.DataLoader(ring_dataset(), batch_size=64, shuffle=False)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False)
    trainer.fit(model, loader, ckpt_path=args.ckpt)


if __name__ == "__main__":
    main()
