"""mode_shares: the share of samples within 3.03 std of each mode, and the modes holding half the data's share."""

from __future__ import annotations

import math

import pytest
import torch

from gan_optim_experiments.metrics import MODE_RADIUS_SIGMAS, mode_shares, ring_centers


def test_radius_holds_99_percent_of_a_2d_gaussian():
    # P(|N(0, I_2)| <= r) = 1 - exp(-r^2 / 2)
    assert 1 - math.exp(-MODE_RADIUS_SIGMAS ** 2 / 2) == pytest.approx(0.99)


def test_hand_built_samples():
    c = ring_centers(8, 1.0)
    std = 0.05
    r = MODE_RADIUS_SIGMAS * std
    # 100 samples: 60 at mode 0 (just inside r), 30 at mode 1, 6 at mode 2, 4 far from every mode
    inside = c[0] + torch.tensor([r * 0.99, 0.0], dtype=torch.float64)
    outside = c[3] + torch.tensor([r * 1.01, 0.0], dtype=torch.float64)
    s = torch.cat([inside.repeat(60, 1), c[1].repeat(30, 1), c[2].repeat(6, 1), outside.repeat(4, 1)])
    out = mode_shares(s, c, std)
    assert [out[f"share_{i}"] for i in range(8)] == pytest.approx([0.6, 0.3, 0.06, 0, 0, 0, 0, 0])
    # covered: at least half of 0.99 / 8 = 0.0619 -> modes 0 and 1 (6% at mode 2 is just short)
    assert out["coverage"] == 2
    assert out["share_min"] == 0 and out["share_max"] == pytest.approx(0.6)


def test_the_data_themselves_cover_every_mode():
    g = torch.Generator().manual_seed(0)
    c = ring_centers(8, 1.0)
    idx = torch.randint(0, 8, (8000,), generator=g)
    s = c[idx] + 0.05 * torch.randn(8000, 2, generator=g, dtype=torch.float64)
    out = mode_shares(s, c, 0.05)
    assert out["coverage"] == 8
    assert sum(out[f"share_{i}"] for i in range(8)) == pytest.approx(0.99, abs=0.01)
    assert mode_shares(torch.empty(0, 2), c, 0.05)["coverage"] == 0
