"""Stand-in for AutoGAN's train.py: epochs of functions.train, a checkpoint per epoch.

Usage: python train.py --out FILE [--epochs N] [--n_critic K] [--lr_decay] [--load_path DIR]
"""
import argparse
import os

import numpy as np
import torch

import models
from functions import LinearLrDecay, copy_params, train
from utils.utils import save_checkpoint


class Writer:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, float(value), int(step)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n_critic", type=int, default=1)
    p.add_argument("--lr_decay", action="store_true")
    p.add_argument("--load_path", default="")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.latent_dim, args.gen_batch_size, args.print_freq, args.max_epoch = 8, 6, 1000, args.epochs
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen_net, dis_net = models.Generator(), models.Discriminator()
    gen_opt = torch.optim.Adam(gen_net.parameters(), 2e-4, (0.0, 0.9))
    dis_opt = torch.optim.Adam(dis_net.parameters(), 2e-4, (0.0, 0.9))
    total = 5 * args.epochs
    scheds = (LinearLrDecay(gen_opt, 2e-4, 0.0, 0, total), LinearLrDecay(dis_opt, 2e-4, 0.0, 0, total))
    data = torch.rand(20, 3, 8, 8) * 2 - 1
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, torch.zeros(20)), batch_size=4)
    gen_avg = copy_params(gen_net)
    start = 0
    if args.load_path:
        ck = torch.load(os.path.join(args.load_path, "Model", "checkpoint.pth"), weights_only=False)
        gen_net.load_state_dict(ck["gen_state_dict"])
        dis_net.load_state_dict(ck["dis_state_dict"])
        gen_opt.load_state_dict(ck["gen_optimizer"])
        dis_opt.load_state_dict(ck["dis_optimizer"])
        start = ck["epoch"]
    writer = Writer()
    writer_dict = {"writer": writer, "train_global_steps": start * len(loader)}
    for epoch in range(start, args.epochs):
        train(args, gen_net, dis_net, gen_opt, dis_opt, gen_avg, loader, epoch, writer_dict,
              scheds if args.lr_decay else None)
        save_checkpoint({"epoch": epoch + 1, "gen_state_dict": gen_net.state_dict(),
                         "dis_state_dict": dis_net.state_dict(), "gen_optimizer": gen_opt.state_dict(),
                         "dis_optimizer": dis_opt.state_dict()}, False, os.path.join(os.path.dirname(args.out),
                                                                                     "ckpt", "Model"))
    torch.save({"G": gen_net.state_dict(), "D": dis_net.state_dict(), "avg": gen_avg, "scalars": writer.scalars,
                "steps": writer_dict["train_global_steps"]}, args.out)


if __name__ == "__main__":
    main()
