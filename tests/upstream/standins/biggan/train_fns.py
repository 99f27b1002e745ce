"""Stand-in for BigGAN-PyTorch's train_fns: the training-function factory contract."""
import torch

import losses
import utils


def GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config):
    bs = config["batch_size"]

    def train(x, y):
        G.optim.zero_grad()
        D.optim.zero_grad()
        x_parts, y_parts = torch.split(x, bs), torch.split(y, bs)
        part = 0
        if config["toggle_grads"]:
            utils.toggle_grad(D, True)
            utils.toggle_grad(G, False)
        for _ in range(config["num_D_steps"]):
            D.optim.zero_grad()
            for _ in range(config["num_D_accumulations"]):
                z_.sample_()
                y_.sample_()
                d_fake, d_real = GD(z_[:bs], y_[:bs], x_parts[part], y_parts[part], train_G=False,
                                    split_D=config["split_D"])
                l_real, l_fake = losses.discriminator_loss(d_fake, d_real)
                total = (l_real + l_fake) / float(config["num_D_accumulations"])
                total.backward()
                part += 1
            if config["D_ortho"] > 0.0:
                utils.ortho(D, config["D_ortho"])
            D.optim.step()
        if config["toggle_grads"]:
            utils.toggle_grad(D, False)
            utils.toggle_grad(G, True)
        G.optim.zero_grad()
        for _ in range(config["num_G_accumulations"]):
            z_.sample_()
            y_.sample_()
            g_loss = losses.generator_loss(GD(z_, y_, train_G=True, split_D=config["split_D"]))
            g_loss = g_loss / float(config["num_G_accumulations"])
            g_loss.backward()
        if config["G_ortho"] > 0.0:
            utils.ortho(G, config["G_ortho"], blacklist=list(G.shared.parameters()))
        G.optim.step()
        if config["ema"]:
            ema.update(state_dict["itr"])
        return {"G_loss": float(g_loss.item()), "D_loss_real": float(l_real.item()),
                "D_loss_fake": float(l_fake.item())}

    return train
