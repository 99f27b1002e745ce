"""Claim 4's paper protocol (the plain GAN of Metz et al.'s demo): settings and one step written out."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_optim_experiments import paper_gaussians8 as P


def test_protocol_is_the_reference_demos():
    # Metz et al.'s demo: batch 512, D 1e-4, G 1e-3, beta1 0.5, eps 1e-8, 25k iterations, every 5k,
    # z of 256, two tanh layers of 128, orthogonal init with gain 1.4, mixture std 0.01 on the unit circle.
    expected = {"batch": 512, "lr_d": 1e-4, "lr_g": 1e-3, "eps": 1e-8, "iterations": 25_000, "every": 5_000,
                "z_dim": 256, "hidden": 128, "layers": 2, "gain": 1.4, "std": 0.01, "radius": 1.0}
    assert {k: P.PROTOCOL[k] for k in expected} == expected
    assert P.PROTOCOL["betas"][0] == 0.5
    c = P.centres().double()
    assert torch.allclose(c.norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-6)
    assert len({(round(float(a), 4), round(float(b), 4)) for a, b in c}) == 8  # eight distinct modes


def test_one_simultaneous_step_by_hand():
    small = {"z_dim": 3, "hidden": 4, "layers": 2, "batch": 5, "iterations": 1, "every": 1, "n_samples": 7}
    out = P.run("plain", 0, small)
    # The same step written out: both gradients at the initial parameters, then one Adam step each.
    p = {**P.PROTOCOL, **small}
    torch.manual_seed(0)
    G = P._tanh_mlp(3, 2, 4, 2, 1.4)
    D = P._tanh_mlp(2, 1, 4, 2, 1.4)
    gen = torch.Generator().manual_seed(10_000)
    idx = torch.randint(0, 8, (5,), generator=gen)
    x = P.centres()[idx] + 0.01 * torch.randn(5, 2, generator=gen)
    z = torch.randn(5, 3, generator=gen)
    loss = F.softplus(-D(x)).mean() + F.softplus(D(G(z))).mean()  # BCE on logits, real 1 / fake 0
    g_d = torch.autograd.grad(loss, list(D.parameters()), retain_graph=True)
    g_g = torch.autograd.grad(-loss, list(G.parameters()))  # G minimises minus D's loss
    with torch.no_grad():
        for params, grads, lr in ((G.parameters(), g_g, 1e-3), (D.parameters(), g_d, 1e-4)):
            for w, g in zip(params, grads):
                # Adam's first step: lr * g / (|g| + eps) after bias correction
                w -= lr * g / (g.abs() + 1e-8)
        expected = G(torch.randn(7, 3, generator=torch.Generator().manual_seed(20_000))).numpy()
    np.testing.assert_allclose(out["snapshots"][1], expected, atol=1e-6)


def test_aw_changes_the_run_and_runs_are_reproducible():
    small = {"z_dim": 8, "hidden": 8, "batch": 32, "iterations": 20, "every": 10, "n_samples": 50}
    a, b = P.run("plain", 1, small), P.run("plain", 1, small)
    c = P.run("aw", 1, small)
    assert sorted(a["snapshots"]) == [10, 20] and a["snapshots"][20].shape == (50, 2)
    np.testing.assert_array_equal(a["snapshots"][20], b["snapshots"][20])
    assert not np.allclose(a["snapshots"][20], c["snapshots"][20])
    with pytest.raises(ValueError, match="technique"):
        P.run("wgan", 0, small)


def test_parallel_runs_equal_serial_runs(tmp_path):
    small = {"z_dim": 4, "hidden": 4, "batch": 16, "iterations": 6, "every": 3, "n_samples": 10}
    serial = P.run_all(["plain", "aw"], [0, 1], small, workers=1)
    parallel = P.run_all(["plain", "aw"], [0, 1], small, workers=2)
    for s, q in zip(serial, parallel):
        assert (s["technique"], s["seed"]) == (q["technique"], q["seed"])
        for it in s["snapshots"]:
            np.testing.assert_array_equal(s["snapshots"][it], q["snapshots"][it])
    path = P.save(serial, tmp_path / "runs.npz")
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["aw_s1_it6"], serial[3]["snapshots"][6])
    assert math.isfinite(float(np.load(path)["plain_s0_seconds"]))
