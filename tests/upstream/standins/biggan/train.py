"""Stand-in for BigGAN-PyTorch's train.py: builds G, D, G_D and runs train_fns' training function.

Usage: python train.py --out FILE [--iters N] [--num_D_steps K] [--seed S]
Writes G/D parameters, the logged metrics and BigGAN's state_dict to FILE.
"""
import argparse

import torch

import model
import train_fns
import utils


def run(config):
    torch.manual_seed(config["seed"])
    G, D = model.Generator(), model.Discriminator()
    G_ema = model.Generator()
    ema = utils.ema(G, G_ema, 0.999, 0)
    GD = model.G_D(G, D)
    state_dict = {"itr": 0, "epoch": 0}
    z_, y_ = utils.make_z_y(config["batch_size"], G.dim_z, 4)
    train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config)
    per_call = config["batch_size"] * config["num_D_steps"] * config["num_D_accumulations"]
    log = []
    for _ in range(config["iters"]):
        state_dict["itr"] += 1
        x = torch.rand(per_call, 3, 8, 8) * 2 - 1
        y = torch.randint(0, 4, (per_call,))
        log.append(train(x, y))
    torch.save({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(), "log": log,
                "state_dict": state_dict}, config["out"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--num_D_steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    config = vars(p.parse_args())
    config.update(batch_size=4, num_D_accumulations=1, num_G_accumulations=1, toggle_grads=True, split_D=False,
                  D_ortho=0.0, G_ortho=0.0, ema=True)
    run(config)


if __name__ == "__main__":
    main()
