"""What AW's all-reduces cost under DDP: 2 CPU processes (gloo), a DCGAN-32 discriminator.

    python benchmarks/distributed_aw.py [--repeats 20]

Times, interleaved in each process, (A) a plain DDP D step (forward of both halves, one
backward with DDP's own all-reduce) and (B) an aw step under DDP (two per-part gradients,
one flat all-reduce of 2 x #params, then the weighted gradient deposited by backward).
Prints the median of each, their ratio, and the bytes AW all-reduces per step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gan_optim import AWDiscriminatorLoss


def dcgan_d() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 256, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(256 * 4 * 4, 1))


def worker(rank: int, init_file: str, repeats: int, batch: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    D = dcgan_d()
    ddp = DDP(D)
    aw = AWDiscriminatorLoss(ddp)
    xr, xf = torch.randn(batch, 3, 32, 32), torch.randn(batch, 3, 32, 32)

    def plain():
        D.zero_grad(set_to_none=True)
        (torch.relu(1 - ddp(xr)).mean() + torch.relu(1 + ddp(xf)).mean()).backward()

    def aw_step():
        D.zero_grad(set_to_none=True)
        aw(xr, xf).backward()

    times = {"plain": [], "aw": []}
    for i in range(repeats + 3):
        for name, fn in (("plain", plain), ("aw", aw_step)):
            dist.barrier()
            t = time.perf_counter()
            fn()
            dist.barrier()
            if i >= 3:
                times[name].append(time.perf_counter() - t)
    if rank == 0:
        n_params = sum(p.numel() for p in D.parameters())
        p, a = statistics.median(times["plain"]), statistics.median(times["aw"])
        with open(out, "w") as f:
            f.write(f"params {n_params}  per-rank batch {batch} (real) + {batch} (fake)\n"
                    f"plain DDP D step  median {p * 1e3:.1f} ms\n"
                    f"aw DDP D step     median {a * 1e3:.1f} ms  ratio {a / p:.3f}\n"
                    f"aw all-reduce per step: {2 * n_params * 4 / 1e6:.2f} MB (2 x params, float32) + 4 scalars; "
                    f"DDP's own: {n_params * 4 / 1e6:.2f} MB\n")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.txt")
        mp.spawn(worker, args=(os.path.join(tmp, "init"), args.repeats, args.batch, out), nprocs=2)
        with open(out) as f:
            print(f.read(), end="")


if __name__ == "__main__":
    main()
