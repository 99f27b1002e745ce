"""Tiny conditional G and projection D, and the G_D wrapper, per BigGAN-PyTorch's contracts."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Generator(nn.Module):
    def __init__(self, dim_z=8, classes=4, width=8, lr=5e-5):
        super().__init__()
        self.dim_z, self.fp16 = dim_z, False
        self.shared = nn.Embedding(classes, 4)
        self.fc = nn.Linear(dim_z + 4, width * 4 * 4)
        self.bn = nn.BatchNorm2d(width)
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        self.width = width
        self.optim = torch.optim.Adam(self.parameters(), lr=lr, betas=(0.0, 0.999), eps=1e-6)

    def forward(self, z, y_emb):
        h = self.fc(torch.cat([z, y_emb], 1)).view(z.shape[0], self.width, 4, 4)
        h = F.interpolate(F.relu(self.bn(h)), scale_factor=2)
        return torch.tanh(self.out(h))


class Discriminator(nn.Module):
    def __init__(self, classes=4, width=8, lr=2e-4):
        super().__init__()
        self.fp16 = False
        self.conv = nn.utils.spectral_norm(nn.Conv2d(3, width, 3, stride=2, padding=1))
        self.linear = nn.utils.spectral_norm(nn.Linear(width, 1))
        self.embed = nn.utils.spectral_norm(nn.Embedding(classes, width))
        self.optim = torch.optim.Adam(self.parameters(), lr=lr, betas=(0.0, 0.999), eps=1e-6)

    def forward(self, x, y):
        h = F.leaky_relu(self.conv(x), 0.2).sum([2, 3])
        return self.linear(h) + (self.embed(y) * h).sum(1, keepdim=True)


class G_D(nn.Module):
    """G then D; with real data, one D pass over cat([G(z), x]) unless split_D."""

    def __init__(self, G, D):
        super().__init__()
        self.G, self.D = G, D

    def forward(self, z, gy, x=None, dy=None, train_G=False, return_G_z=False, split_D=False):
        with torch.set_grad_enabled(train_G):
            fake = self.G(z, self.G.shared(gy))
        if x is None:
            out = self.D(fake, gy)
            return (out, fake) if return_G_z else out
        if split_D:
            return self.D(fake, gy), self.D(x, dy)
        both = self.D(torch.cat([fake, x], 0), torch.cat([gy, dy], 0))
        return torch.split(both, [fake.shape[0], x.shape[0]])
