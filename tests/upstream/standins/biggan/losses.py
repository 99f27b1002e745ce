"""Stand-in for BigGAN-PyTorch's losses module: hinge losses, looked up by name at call time."""
import torch


def hinge_d(dis_fake, dis_real):
    # Two separate terms, real first: the contract is (loss_real, loss_fake).
    real_term = torch.relu(1.0 - dis_real).mean()
    fake_term = torch.relu(1.0 + dis_fake).mean()
    return real_term, fake_term


def hinge_g(dis_fake):
    return -dis_fake.mean()


discriminator_loss = hinge_d
generator_loss = hinge_g
