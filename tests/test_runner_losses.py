"""The runner's loss settings against hand-written formulas: one iteration of a linear G and D in float64.

D(x) = x·w + b and G(z) = z·A + a, so every gradient is written out here by hand: with
c_i = dL/dD_i the per-sample derivative of the loss, dL/dw = sum_i c_i x_i, dL/db = sum_i c_i, and
for G, dL/dA = sum_i z_i (c_i w)^T, dL/da = sum_i c_i w. The optimiser steps are written out too
(first Adam / RMSprop step, PyTorch's eps), then WGAN's clamp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gan_optim_experiments.runner import LossSetting, resolve_losses, train_run
from gan_optim_experiments.tasks import GANTask

ATOL = 1e-12
BATCH, N_EVAL, DIM, Z_DIM = 6, 3, 3, 2
LR = 0.05


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


class _Recorder:
    """A tiny float64 task that records what the runner draws and the gradients it backpropagates."""

    def __init__(self) -> None:
        self.real: list[np.ndarray] = []
        self.z: list[np.ndarray] = []
        self.init: dict[str, dict[str, np.ndarray]] = {}
        self.grads: dict[str, list[dict[str, np.ndarray]]] = {"G": [], "D": []}
        self.nets: dict[str, nn.Module] = {}

    def _net(self, which: str, n_in: int, n_out: int) -> nn.Module:
        net = nn.Linear(n_in, n_out).double()
        self.init[which] = {k: v.detach().numpy().copy() for k, v in net.named_parameters()}
        self.nets[which] = net
        calls = self.grads[which]

        def hook(name: str):
            def record(grad: torch.Tensor) -> None:
                # one dict per backward through this net; both parameters fire once per backward
                if not calls or name in calls[-1]:
                    calls.append({})
                calls[-1][name] = grad.detach().numpy().copy()
            return record

        for name, p in net.named_parameters():
            p.register_hook(hook(name))
        return net

    def task(self) -> GANTask:
        def sample_real(n: int, gen: torch.Generator) -> torch.Tensor:
            x = torch.randn(n, DIM, generator=gen, dtype=torch.float64)
            self.real.append(x.numpy().copy())
            return x

        t = GANTask(name="linear", z_dim=Z_DIM, make_g=lambda: self._net("G", Z_DIM, DIM),
                    make_d=lambda: self._net("D", DIM, 1), sample_real=sample_real,
                    metrics=lambda fake: {"m": 0.0}, lower_better={"m": True}, target=("m", 0.0), n_eval=N_EVAL,
                    defaults={"lr": LR, "batch": BATCH, "loss": "bce", "freeadv_epsilon": 0.01})

        def sample_z(n: int, gen: torch.Generator) -> torch.Tensor:
            z = torch.randn(n, Z_DIM, generator=gen, dtype=torch.float64)
            self.z.append(z.numpy().copy())
            return z

        t.sample_z = sample_z  # type: ignore[method-assign]
        return t


# per-sample dL/dD for the real half, the fake half (D step) and G's fake (G step), with m the batch size
D_REAL = {"bce": lambda d, m: -_sigmoid(-d) / m,                  # softplus(-d)
          "hinge": lambda d, m: -(d < 1.0).astype(float) / m,     # relu(1 - d)
          "wgan": lambda d, m: -np.ones_like(d) / m}              # -d
D_FAKE = {"bce": lambda d, m: _sigmoid(d) / m,                    # softplus(d)
          "hinge": lambda d, m: (d > -1.0).astype(float) / m,     # relu(1 + d)
          "wgan": lambda d, m: np.ones_like(d) / m}               # d
G_FAKE = {"ns": lambda d, m: -_sigmoid(-d) / m,                   # softplus(-d)
          "saturating": lambda d, m: -_sigmoid(d) / m,            # log(1 - sigmoid(d)) = -softplus(d)
          "hinge": lambda d, m: -np.ones_like(d) / m,             # -d
          "wgan": lambda d, m: -np.ones_like(d) / m}


def _first_step(setting: LossSetting, p: np.ndarray, g: np.ndarray, lr: float) -> np.ndarray:
    if setting.optimizer == "adam":
        b1, b2 = setting.betas
        m_hat = (1 - b1) * g / (1 - b1)
        v_hat = (1 - b2) * g * g / (1 - b2)
        return p - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    v = (1 - 0.99) * g * g  # RMSprop, alpha 0.99
    return p - lr * g / (np.sqrt(v) + 1e-8)


SETTINGS = [
    ("baseline", LossSetting("bce", "ns")),
    ("baseline", LossSetting("bce", "saturating")),
    ("baseline", LossSetting("hinge", "hinge", betas=(0.0, 0.9))),
    ("baseline", LossSetting("wgan", "wgan", clip=0.05, optimizer="rmsprop")),
    ("ttur:3", LossSetting("wgan", "wgan", clip=0.05, optimizer="rmsprop")),
    ("ttur:3", LossSetting("hinge", "saturating", betas=(0.0, 0.9))),
]


@pytest.mark.parametrize("tech,setting", SETTINGS, ids=[f"{t}-{s.describe()}" for t, s in SETTINGS])
def test_one_iteration_matches_hand_written_losses_and_steps(tech, setting):
    rec = _Recorder()
    res = train_run(rec.task(), tech, 0, 1, eval_every=1, losses=setting)
    assert res.setting == setting
    lr_d = LR * (3.0 if tech.startswith("ttur") else 1.0)
    w0, b0 = rec.init["D"]["weight"][0], rec.init["D"]["bias"]
    A0, a0 = rec.init["G"]["weight"].T, rec.init["G"]["bias"]  # G(z) = z A + a with A = weight^T
    # draws: z_eval, then the D step's real batch and noise, then the G step's noise
    assert [z.shape[0] for z in rec.z] == [N_EVAL, BATCH, BATCH]
    x, z_d, z_g = rec.real[0], rec.z[1], rec.z[2]

    fake = z_d @ A0 + a0
    c_r = D_REAL[setting.d_loss](x @ w0 + b0, BATCH)
    c_f = D_FAKE[setting.d_loss](fake @ w0 + b0, BATCH)
    gw = c_r @ x + c_f @ fake
    gb = np.array([c_r.sum() + c_f.sum()])
    np.testing.assert_allclose(rec.grads["D"][0]["weight"][0], gw, rtol=0, atol=ATOL)
    np.testing.assert_allclose(rec.grads["D"][0]["bias"], gb, rtol=0, atol=ATOL)
    w1, b1 = _first_step(setting, w0, gw, lr_d), _first_step(setting, b0, gb, lr_d)
    if setting.clip is not None:
        assert np.abs(w1).max() > setting.clip  # the clamp acts in this test
        w1, b1 = np.clip(w1, -setting.clip, setting.clip), np.clip(b1, -setting.clip, setting.clip)
    np.testing.assert_allclose(rec.nets["D"].weight.detach().numpy()[0], w1, rtol=0, atol=ATOL)
    np.testing.assert_allclose(rec.nets["D"].bias.detach().numpy(), b1, rtol=0, atol=ATOL)

    c_g = G_FAKE[setting.g_loss]((z_g @ A0 + a0) @ w1 + b1, BATCH)
    gA = z_g.T @ np.outer(c_g, w1)
    ga = c_g.sum() * w1
    np.testing.assert_allclose(rec.grads["G"][0]["weight"], gA.T, rtol=0, atol=ATOL)
    np.testing.assert_allclose(rec.grads["G"][0]["bias"], ga, rtol=0, atol=ATOL)
    np.testing.assert_allclose(rec.nets["G"].weight.detach().numpy(), _first_step(setting, A0, gA, LR).T,
                               rtol=0, atol=ATOL)


def test_wegan_paper_loss_is_algorithm_1():
    """G's gradient is that of sum_i w_i log(1 - sigmoid(d_i)), w_i = eta^(1 - sigmoid(d_i)) / sum_j (...)."""
    rec = _Recorder()
    eta = 0.1
    res = train_run(rec.task(), f"wegan:{eta}", 0, 1, eval_every=1, losses="paper")
    assert (res.setting.d_loss, res.setting.g_loss) == ("bce", "saturating")
    w1, b1 = rec.nets["D"].weight.detach().numpy()[0], rec.nets["D"].bias.detach().numpy()
    A0, a0, z_g = rec.init["G"]["weight"].T, rec.init["G"]["bias"], rec.z[2]
    d = (z_g @ A0 + a0) @ w1 + b1
    p = _sigmoid(d)
    weights = eta ** (1.0 - p)
    weights = weights / weights.sum()
    c_g = weights * -p  # weights are constants in the gradient; d/dd log(1 - sigmoid(d)) = -sigmoid(d)
    np.testing.assert_allclose(rec.grads["G"][0]["weight"], (z_g.T @ np.outer(c_g, w1)).T, rtol=0, atol=ATOL)


def test_adaptive_paper_setting_clips_and_uses_rmsprop():
    rec = _Recorder()
    res = train_run(rec.task(), "adaptive", 0, 3, eval_every=3, losses="paper")
    assert res.setting == LossSetting("wgan", "wgan", clip=0.01, optimizer="rmsprop", source=res.setting.source)
    assert res.d_updates >= 1
    assert np.abs(rec.nets["D"].weight.detach().numpy()).max() <= 0.01 + 1e-15
    assert np.abs(rec.nets["D"].bias.detach().numpy()).max() <= 0.01 + 1e-15


# --------------------------------------------------------------- resolution
PAPER = {"aw": ("hinge", "hinge", None, "adam", (0.5, 0.999)),
         "wegan": ("bce", "saturating", None, "adam", (0.5, 0.999)),
         "adaptive": ("wgan", "wgan", 0.01, "rmsprop", (0.5, 0.999)),
         "ttur": ("bce", "ns", None, "adam", (0.5, 0.999)),
         "freeadv": ("hinge", "hinge", None, "adam", (0.0, 0.9))}
ORDER = ["aw", "freeadv", "adaptive", "wegan", "ttur"]


def _fields(s: LossSetting) -> tuple:
    return (s.d_loss, s.g_loss, s.clip, s.optimizer, s.betas)


@pytest.mark.parametrize("comp", list(PAPER))
def test_each_paper_setting(comp):
    assert _fields(resolve_losses(comp, "paper")) == PAPER[comp]


def test_plain_and_baseline_settings():
    assert _fields(resolve_losses("aw+wegan", "plain", d_loss="hinge")) == ("hinge", "ns", None, "adam",
                                                                            (0.5, 0.999))
    assert _fields(resolve_losses("baseline", "paper")) == ("bce", "ns", None, "adam", (0.5, 0.999))
    assert _fields(resolve_losses("nd:5", "paper")) == ("bce", "ns", None, "adam", (0.5, 0.999))


@settings(deadline=None, max_examples=60)
@given(st.sets(st.sampled_from(ORDER), min_size=1), st.sampled_from(["", "+nd:2"]))
def test_a_combination_takes_its_first_components_paper_setting(comps, nd):
    name = "+".join(sorted(comps)) + nd
    first = next(c for c in ORDER if c in comps)
    assert _fields(resolve_losses(name, "paper")) == PAPER[first]


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"d_loss": "l2"}, ValueError, "losses.d_loss"),
    ({"g_loss": "bce"}, ValueError, "losses.g_loss"),
    ({"optimizer": "sgd"}, ValueError, "losses.optimizer"),
    ({"clip": 0.0}, ValueError, "losses.clip"),
    ({"clip": -1.0}, ValueError, "losses.clip"),
    ({"clip": math.inf}, ValueError, "losses.clip"),
    ({"clip": "0.01"}, TypeError, "losses.clip"),
    ({"betas": (0.5, 1.0)}, ValueError, "losses.betas"),
    ({"betas": [0.5, 0.9]}, TypeError, "losses.betas"),
    ({"source": 3}, TypeError, "losses.source"),
])
def test_loss_setting_rejects_bad_values(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LossSetting(**kwargs)


def test_bad_losses_argument():
    rec = _Recorder()
    with pytest.raises(ValueError, match="losses"):
        train_run(rec.task(), "aw", 0, 1, losses="papers")
    with pytest.raises(TypeError, match="losses"):
        resolve_losses("aw", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clip"):
        resolve_losses("freeadv", LossSetting("wgan", "wgan", clip=0.01))
