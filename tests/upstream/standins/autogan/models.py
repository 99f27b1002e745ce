"""Tiny unconditional G and D for the AutoGAN stand-in."""
import torch.nn as nn


class Generator(nn.Module):
    def __init__(self, latent_dim=8, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, width * 16), nn.Unflatten(1, (width, 4, 4)),
                                 nn.BatchNorm2d(width), nn.ReLU(), nn.Upsample(scale_factor=2),
                                 nn.Conv2d(width, 3, 3, padding=1), nn.Tanh())

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(3, width, 3, 2, 1)), nn.ReLU(),
                                 nn.Flatten(), nn.utils.spectral_norm(nn.Linear(width * 16, 1)))

    def forward(self, x):
        return self.net(x)
