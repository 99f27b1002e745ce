"""Computations run both in 2 gloo processes and in one process on the concatenated batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gan_optim import AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale, WeightedGeneratorLoss

N = 8  # per-rank batch
WORLD = 2


def data():
    g = torch.Generator().manual_seed(7)
    xr = torch.rand(WORLD * N, 3, generator=g, dtype=torch.float64) * 1.6 - 0.8
    xf = torch.rand(WORLD * N, 3, generator=g, dtype=torch.float64) * 1.6 - 0.8 - 0.1
    z = torch.randn(WORLD * N, 3, generator=g, dtype=torch.float64)
    return xr, xf, z


def disc():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()


def part(t: torch.Tensor, rank: int | None) -> torch.Tensor:
    return t if rank is None else t[rank * N:(rank + 1) * N]


def wrap(module: nn.Module, rank: int | None) -> nn.Module:
    return module if rank is None else DDP(module)


def run_all(rank: int | None) -> dict:
    """rank None: one process, whole batch. rank 0/1: this rank's half under DDP."""
    xr, xf, z = data()
    out = {}

    # AW, through __call__ (torch.func on the module inside DDP).
    D = disc()
    aw = AWDiscriminatorLoss(wrap(D, rank))
    for _ in range(2):  # two iterations: DDP must not hang or double-count on the next one
        for p in D.parameters():
            p.grad = None
        aw(part(xr, rank), part(xf, rank)).backward()
    out["aw_grads"] = [p.grad.clone() for p in D.parameters()]
    out["aw_stats"] = aw.last.to_dict()

    # AW from outputs computed by the (DDP-wrapped) D in one concatenated pass.
    D = disc()
    Dw = wrap(D, rank)
    aw = AWDiscriminatorLoss(Dw)
    for _ in range(2):
        for p in D.parameters():
            p.grad = None
        d = Dw(torch.cat([part(xf, rank), part(xr, rank)]))
        aw.from_outputs(d[N if rank is not None else WORLD * N:], d[:N if rank is not None else WORLD * N]).backward()
    out["aw_outputs_grads"] = [p.grad.clone() for p in D.parameters()]
    out["aw_outputs_stats"] = aw.last.to_dict()

    # WeGAN: G under DDP, D fixed.
    torch.manual_seed(5)
    G = nn.Linear(3, 3).double()
    Gw = wrap(G, rank)
    D = disc()
    wg = WeightedGeneratorLoss(0.05)
    wg(D(Gw(part(z, rank)))).backward()
    out["wegan_grads"] = [p.grad.clone() for p in G.parameters()]
    out["wegan_weights"] = wg.last_weights.clone()

    # Scheduler: each rank sees its own losses; decisions follow the global means.
    sched = AdaptiveScheduler(1.0)
    decisions = []
    for i in range(100):
        decisions.append(sched.next_update())
        lg = [1.0 + 0.3 * ((i * 7) % 5), 2.0 - 0.1 * (i % 3)]
        ld = [-0.5 + 0.2 * ((i * 3) % 4), 0.7 + 0.05 * i]
        if rank is None:
            sched.observe(loss_g=sum(lg) / 2, loss_d=sum(ld) / 2)
        else:
            sched.observe(loss_g=lg[rank], loss_d=ld[rank])
    out["decisions"] = decisions

    # Free adversarial D: per-rank delta, weight gradients through DDP.
    D = disc()
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    fa = FreeAdvDiscriminator(wrap(D, rank), opt, epsilon=0.05, step_size=0.02, replays=2, delta_init="zero")
    for _ in range(2):
        fa.step(part(xr, rank), part(xf, rank))
    out["freeadv_params"] = [p.detach().clone() for p in D.parameters()]
    out["freeadv_delta"] = fa.delta.clone()

    # TTUR: nothing extra; the two optimizers step as usual.
    torch.manual_seed(5)
    G, D = nn.Linear(3, 3).double(), disc()
    Gw, Dw = wrap(G, rank), wrap(D, rank)
    tt = TwoTimescale(G, D, optimizer=torch.optim.SGD, lr_g=0.1, lr_d=0.2)
    tt.zero_grad()
    torch.relu(1 + Dw(Gw(part(z, rank)).detach())).mean().backward()
    tt.step_d()
    out["ttur_params"] = [p.detach().clone() for p in D.parameters()]
    return out


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save(run_all(rank), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
