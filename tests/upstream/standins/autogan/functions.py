"""Stand-in for AutoGAN's functions module: one epoch of training, hinge losses written inline."""
import numpy as np
import torch


class tqdm:
    """Stand-in for the progress bar AutoGAN wraps its loader in; ``write`` lines are kept in ``lines``."""

    lines = []

    def __init__(self, iterable, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    @staticmethod
    def write(line):
        tqdm.lines.append(line)


def train(args, gen_net, dis_net, gen_optimizer, dis_optimizer, gen_avg_param, train_loader, epoch, writer_dict,
          schedulers=None):
    # The contract: one epoch; a hinge D step every batch with the losses written inline
    # (d_loss = ..., g_loss = ...); a G step, the LR schedules and the moving average of G
    # every n_critic global steps; scalars and the step counter in writer_dict.
    log = writer_dict["writer"]
    g_updates = 0
    gen_net, dis_net = gen_net.train(), dis_net.train()
    for batch_index, (images, _labels) in enumerate(tqdm(train_loader)):
        step = writer_dict["train_global_steps"]
        x = images.float()
        noise = torch.from_numpy(np.random.normal(0, 1, (images.shape[0], args.latent_dim))).float()

        dis_optimizer.zero_grad()
        scores_real = dis_net(x)
        scores_fake = dis_net(gen_net(noise).detach())
        d_loss = torch.relu(1.0 - scores_real).mean() + torch.relu(1 + scores_fake).mean()
        d_loss.backward()
        dis_optimizer.step()
        log.add_scalar("d_loss", d_loss.item(), step)

        if step % args.n_critic == 0:
            gen_optimizer.zero_grad()
            noise_g = torch.from_numpy(np.random.normal(0, 1, (args.gen_batch_size, args.latent_dim))).float()
            g_loss = -dis_net(gen_net(noise_g)).mean()
            g_loss.backward()
            gen_optimizer.step()
            if schedulers:
                rates = [sched.step(step) for sched in schedulers]
                log.add_scalar("LR/g_lr", rates[0], step)
                log.add_scalar("LR/d_lr", rates[1], step)
            with torch.no_grad():
                for param, average in zip(gen_net.parameters(), gen_avg_param):
                    average.mul_(0.999).add_(param, alpha=0.001)
            log.add_scalar("g_loss", g_loss.item(), step)
            g_updates += 1

        if g_updates and batch_index % args.print_freq == 0:
            n = len(train_loader)
            tqdm.write("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]"
                       % (epoch, args.max_epoch, batch_index % n, n, d_loss.item(), g_loss.item()))

        writer_dict["train_global_steps"] = step + 1


class LinearLrDecay:
    """The scheduler contract the adapter relies on: the class name, ``step(global_step)`` that
    sets and returns the rate, and the attributes ``start_lr``, ``end_lr``, ``decay_start_step``,
    ``decay_end_step`` and ``delta`` (the rate falls by ``delta`` per step in between)."""

    def __init__(self, optimizer, start_lr, end_lr, decay_start_step, decay_end_step):
        self.optimizer = optimizer
        self.start_lr, self.end_lr = start_lr, end_lr
        self.decay_start_step, self.decay_end_step = decay_start_step, decay_end_step
        self.delta = (self.start_lr - self.end_lr) / (self.decay_end_step - self.decay_start_step)

    def step(self, global_step):
        elapsed = min(max(global_step - self.decay_start_step, 0), self.decay_end_step - self.decay_start_step)
        if elapsed == 0:
            return self.start_lr
        rate = self.end_lr if global_step >= self.decay_end_step else self.start_lr - self.delta * elapsed
        if global_step < self.decay_end_step:
            for group in self.optimizer.param_groups:
                group["lr"] = rate
        return rate


def copy_params(model):
    return [p.detach().clone() for p in model.parameters()]
