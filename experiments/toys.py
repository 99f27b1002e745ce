"""The toy problems and the gradient-angle study.

- :func:`dirac_run`: Dirac-WGAN of Ouyang & Agam §3.2 (Fig. 2), fixed ``n_d`` vs
  :class:`~gan_optim.AdaptiveScheduler`.
- :func:`saddle_run`: Heusel et al.'s saddle-point toy ``min_x max_y (1+x^2)(100-y^2)``
  with Gaussian gradient noise, on :class:`~gan_optim.TwoTimescale` with SGD.
- :func:`angles_run`: Zadorozhnyy et al. §5.1 (Fig. 4) on digits: angles between
  the real, fake and total D-loss gradients, original vs aw loss.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as nnf

from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, TwoTimescale
from gan_optim.functional.losses import d_loss_fake, d_loss_real
from .pools import resolve_device
from .tasks import make_task

__all__ = ["SADDLE_SETTINGS", "angles_run", "dirac_run", "saddle_run"]


def dirac_run(mode: str = "fixed", *, steps: int = 2000, lr: float = 0.05, n_d: int = 5, lam: float = 1.0,
              clip: float = 0.5, start: tuple[float, float] = (1.5, 0.5)) -> dict[str, Any]:
    r"""Dirac-WGAN: :math:`G = \delta_\theta`, :math:`D(x) = \psi x`, data at 1, :math:`|\psi| \le` ``clip``.

    Alternating gradient steps (paper eqs. 6-7): a G step is
    :math:`\theta \leftarrow \theta + \alpha\psi`, a D step
    :math:`\psi \leftarrow \mathrm{clip}(\psi + \alpha(1 - \theta))`. ``mode="fixed"``
    cycles ``n_d`` D steps then one G step; ``mode="adaptive"`` lets
    :class:`~gan_optim.AdaptiveScheduler` (``lam``) choose, fed the losses of
    Algorithm 1, :math:`L_g = \psi\theta` and :math:`L_d = \psi - \psi\theta`, at
    the parameters of the step. ``steps`` counts updates of either network.

    Returns the trajectory (``theta``, ``psi``), the distance to (1, 0) per step,
    and the D/G update counts.
    """
    if mode not in ("fixed", "adaptive"):
        raise ValueError(f"Invalid mode: {mode!r} ('fixed' or 'adaptive')")
    theta, psi = float(start[0]), float(start[1])
    sched = AdaptiveScheduler(lam=lam) if mode == "adaptive" else None
    traj_t, traj_p, dist = [theta], [psi], [math.hypot(theta - 1, psi)]
    counts = {"D": 0, "G": 0}
    for i in range(steps):
        which = sched.next_update() if sched is not None else ("G" if i % (n_d + 1) == n_d else "D")
        loss_g, loss_d = psi * theta, psi - psi * theta
        if which == "D":
            psi = max(-clip, min(clip, psi + lr * (1.0 - theta)))
        else:
            theta = theta + lr * psi
        counts[which] += 1
        if sched is not None:
            sched.observe(loss_g=loss_g, loss_d=loss_d)
        traj_t.append(theta)
        traj_p.append(psi)
        dist.append(math.hypot(theta - 1, psi))
    return {"mode": mode, "theta": traj_t, "psi": traj_p, "distance": dist, "d_updates": counts["D"],
            "g_updates": counts["G"], "final": (theta, psi), "final_distance": dist[-1]}


#: The four rows of the TTUR saddle figure: name -> (lr_x, lr_y).
SADDLE_SETTINGS = {
    "one time-scale lr 0.01": (1e-2, 1e-2),
    "one time-scale lr 0.001": (1e-3, 1e-3),
    "TTUR x 1e-4, y 1e-2": (1e-4, 1e-2),
    "TTUR x 1e-2, y 1e-4": (1e-2, 1e-4),
}


def saddle_run(lr_x: float, lr_y: float, *, steps: int = 3000, noise: float = 1.0,
               start: tuple[float, float] = (1.0, 1.0), seed: int = 0, blowup: float = 1e6) -> dict[str, Any]:
    r"""Saddle toy of Heusel et al.: SGD descent in x, ascent in y on :math:`(1+x^2)(100-y^2)`.

    Both gradients get additive :math:`\mathcal N(0, \text{noise}^2)` noise; x is
    the "generator" (rate ``lr_x``) and y the "discriminator" (rate ``lr_y``)
    of a :class:`~gan_optim.TwoTimescale` with plain SGD. A run that leaves
    ``|(x, y)| < blowup`` or turns non-finite is marked diverged and stops.
    Returns per-step objective and norm ``|(x, y)|``.
    """
    x = torch.nn.Parameter(torch.tensor(float(start[0]), dtype=torch.float64))
    y = torch.nn.Parameter(torch.tensor(float(start[1]), dtype=torch.float64))
    tt = TwoTimescale([x], [y], lr_g=lr_x, lr_d=lr_y, optimizer=torch.optim.SGD)
    gen = torch.Generator().manual_seed(seed)
    objective, norm = [], []
    diverged = False

    def record() -> None:
        objective.append(float((1 + x.detach() ** 2) * (100 - y.detach() ** 2)))
        norm.append(math.hypot(float(x.detach()), float(y.detach())))

    record()
    for _ in range(steps):
        tt.zero_grad()
        f = (1 + x ** 2) * (100 - y ** 2)
        gx, gy = torch.autograd.grad(f, (x, y))
        eps = torch.randn(2, generator=gen, dtype=torch.float64) * noise
        x.grad = gx + eps[0]
        y.grad = -(gy + eps[1])  # ascent in y
        try:
            tt.step("G")
            tt.step("D")
        except FloatingPointError:
            diverged = True
            break
        record()
        if not (norm[-1] < blowup):
            diverged = True
            break
    return {"lr_x": lr_x, "lr_y": lr_y, "objective": objective, "norm": norm, "diverged": diverged,
            "final_norm": norm[-1]}


def _flat(grads) -> torch.Tensor:
    # on the CPU: the angles are computed there whatever the device of the run
    return torch.cat([g.reshape(-1) for g in grads]).cpu()


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30)
    return math.degrees(math.acos(max(-1.0, min(1.0, float(cos)))))


def angles_run(use_aw: bool, *, iterations: int = 50, seed: int = 0, batch: int = 64, lr: float = 2e-4,
               loss: str = "hinge", device: str | torch.device = "cpu") -> dict[str, list[float]]:
    r"""Angles between D-loss gradients over the first ``iterations`` D iterations on digits.

    Per iteration: :math:`\angle(\nabla L_r, \nabla L_f)`, :math:`\angle(\nabla L_r, \nabla L_D)`,
    :math:`\angle(\nabla L_f, \nabla L_D)`, with :math:`\nabla L_D` the gradient the D
    step actually takes (``L_r + L_f``, or the aw loss's). One D step then one
    G step per iteration (hinge loss, as the paper's §5.1). ``device`` holds G and D (initialised, and the
    data and noise drawn, on the CPU); the angles are computed on the CPU.
    """
    dev = resolve_device(device)
    task = make_task("digits")
    torch.manual_seed(seed)
    G, D = task.make_g().to(dev), task.make_d().to(dev)
    data_gen = torch.Generator().manual_seed(10_000 + seed)
    z_gen = torch.Generator().manual_seed(20_000 + seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    aw = AWDiscriminatorLoss(D, loss=loss) if use_aw else None
    params = [p for p in D.parameters()]
    out: dict[str, list[float]] = {"rf": [], "rD": [], "fD": [], "case": []}
    for _ in range(iterations):
        x = task.sample_real(batch, data_gen).to(dev)
        with torch.no_grad():
            fake = G(task.sample_z(batch, z_gen).to(dev))
        g_r = _flat(torch.autograd.grad(d_loss_real(D(x), loss), params))
        g_f = _flat(torch.autograd.grad(d_loss_fake(D(fake), loss), params))
        opt_d.zero_grad(set_to_none=True)
        if aw is not None:
            aw(x, fake).backward()
            assert aw.last is not None
            out["case"].append(float(aw.last.case))
        else:
            (d_loss_real(D(x), loss) + d_loss_fake(D(fake), loss)).backward()
        g_d = _flat([p.grad for p in params])
        opt_d.step()
        out["rf"].append(_angle(g_r, g_f))
        out["rD"].append(_angle(g_r, g_d))
        out["fD"].append(_angle(g_f, g_d))
        opt_g.zero_grad(set_to_none=True)
        d_fake = D(G(task.sample_z(batch, z_gen).to(dev))).reshape(-1)
        (nnf.softplus(-d_fake).mean() if loss == "bce" else (-d_fake).mean()).backward()
        opt_g.step()
    return out
