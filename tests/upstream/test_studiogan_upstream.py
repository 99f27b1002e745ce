"""``gan-optim run`` on a real PyTorch-StudioGAN checkout (947b35e): its unmodified ``src/main.py`` on the CPU.

Set ``GAN_OPTIM_STUDIOGAN_DIR`` to the checkout to run these; they are skipped
otherwise. The run is tiny: a folder of 32-px PNGs (two classes), the
``deep_conv`` backbone, batch 4, three iterations, ``-metrics none``. What the
hooks name: ``src/utils/losses.py:d_hinge`` (``d_logit_real``,
``d_logit_fake``) and ``src/utils/losses.py:g_hinge`` (``d_logit_fake``).

The test watches the run from outside (a global forward pre-hook records D's
and G's inputs and states, a global optimizer step pre-hook D's and G's
gradients) and recomputes every step on float64 copies: Algorithm 1
(tests/_reference.py) on the per-half gradients plus StudioGAN's own R1 term,
WeGAN's weights written out.

Shims, test-only: StudioGAN imports ``wandb``, ``seaborn``, ``timm``,
``kornia`` and ``pkg_resources`` at import time (none used by this run: stubs
stand in when they are missing), and with ``-metrics none`` its ``main.py``
ends by loading a "best" checkpoint that only an evaluation writes, so
``utils.ckpt.load_best_model`` returns at once after training.
"""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from _reference import algorithm1
from upstream._shims import _under, real_checkout, run_script_on_cpu
from gan_optim import cli

REPO, pytestmark = real_checkout("studiogan")

CONFIG = """DATA:
  name: "Tiny"
  img_size: 32
  num_classes: 2
MODEL:
  backbone: "deep_conv"
  g_cond_mtd: "W/O"
  d_cond_mtd: "W/O"
  g_conv_dim: "N/A"
  d_conv_dim: "N/A"
LOSS:
  adv_loss: "hinge"
  apply_r1_reg: {r1}
  r1_lambda: {r1_lambda}
OPTIMIZATION:
  batch_size: 4
  d_updates_per_step: 1
  total_steps: {steps}
"""
R1_LAMBDA = 0.2


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # type: ignore[attr-defined]

    def nothing(*args, **kwargs):
        return None
    def attribute(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return nothing
    module.__getattr__ = attribute  # type: ignore[method-assign]
    return module


def _stubs() -> dict[str, types.ModuleType]:
    stubs: dict[str, types.ModuleType] = {}
    for name in ("wandb", "seaborn"):
        try:
            __import__(name)
        except ImportError:
            stubs[name] = _stub(name)
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        for name in ("timm", "timm.models", "timm.models.layers"):
            stubs[name] = _stub(name)
    try:
        import kornia.filters  # noqa: F401
    except ImportError:
        for name in ("kornia", "kornia.filters"):
            stubs[name] = _stub(name)
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        from packaging.version import parse

        stubs["pkg_resources"] = types.ModuleType("pkg_resources")
        stubs["pkg_resources"].parse_version = parse  # type: ignore[attr-defined]
    return stubs


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A 32-px PNG folder, the tiny configs, StudioGAN's src on sys.path; its modules forgotten afterwards."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        folder = tmp_path / "data" / "train" / label
        folder.mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "plain.yaml").write_text(CONFIG.format(r1="False", r1_lambda='"N/A"', steps=2))
    (tmp_path / "r1.yaml").write_text(CONFIG.format(r1="True", r1_lambda=R1_LAMBDA, steps=2))
    (tmp_path / "long.yaml").write_text(CONFIG.format(r1="False", r1_lambda='"N/A"', steps=5))
    monkeypatch.chdir(tmp_path)
    src = str(Path(REPO) / "src")
    monkeypatch.syspath_prepend(src)
    for name, module in _stubs().items():
        monkeypatch.setitem(sys.modules, name, module)
    before = set(sys.modules)
    import utils.ckpt

    monkeypatch.setattr(utils.ckpt, "load_best_model", lambda **kwargs: 0)
    yield tmp_path
    # Namespace packages too (StudioGAN's `models`, `sync_batchnorm` have no __init__): left behind, they
    # shadow BigGAN's and AutoGAN's packages of the same names in the tests that run after these.
    for name in set(sys.modules) - before | {"utils", "utils.ckpt"}:
        module = sys.modules.get(name)
        if module is not None and _under(module, src) or name in ("utils", "utils.ckpt"):
            sys.modules.pop(name, None)


class Watch:
    """Records D's and G's forward inputs and states, and each optimizer step's gradients (from outside)."""

    def __init__(self) -> None:
        self.forwards: list[tuple[str, torch.nn.Module, dict, tuple, dict]] = []
        self.steps: list[dict] = []
        from torch.nn.modules.module import register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._before: list[torch.Tensor] = []
        self._handles = [register_module_forward_pre_hook(self._forward),
                         register_optimizer_step_pre_hook(self._step),
                         register_optimizer_step_post_hook(self._stepped)]

    def _forward(self, module, args, kwargs=None):
        kind = type(module).__name__
        if kind in ("Discriminator", "Generator") and type(module).__module__.startswith("models."):
            state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            self.forwards.append((kind, module, state, tuple(a.detach().clone() if isinstance(a, torch.Tensor)
                                                             else a for a in args), {}))

    def _step(self, opt, args, kwargs):
        params = [p for g in opt.param_groups for p in g["params"]]
        kinds = {kind for kind, module, *_ in self.forwards
                 if {id(p) for p in module.parameters()} == {id(p) for p in params}}
        self.steps.append({"net": kinds.pop() if kinds else "?", "forwards": list(self.forwards),
                           "grads": [None if p.grad is None else p.grad.detach().clone() for p in params]})
        self.forwards = []
        self._before = [p.detach().clone() for p in params]

    def _stepped(self, opt, args, kwargs):
        params = [p for g in opt.param_groups for p in g["params"]]
        self.steps[-1]["moved"] = any(not torch.equal(a, p) for a, p in zip(self._before, params))
        self.steps[-1]["adam_steps"] = sum(int(s["step"]) for s in opt.state.values() if "step" in s)

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _run(workdir, technique: str | None, config: str = "plain.yaml", *flags: str) -> tuple[int, list[dict]]:
    main = str(Path(REPO) / "src" / "main.py")
    script = ["-t", "-metrics", "none", "-cfg", config, "-data", "data", "-save", f"out_{technique}",
              "--num_workers", "1", "--seed", "0", "--print_freq", "1", "--save_freq", "1000"]
    watch = Watch()
    try:
        if technique is None:
            run_script_on_cpu(main, script)
            code = 0
        else:
            losses = str(Path(REPO) / "src" / "utils" / "losses.py")
            code = cli.main(["run", "--cpu", "--technique", technique, "--d-loss", f"{losses}:d_hinge",
                             "--real", "d_logit_real", "--fake", "d_logit_fake", "--telemetry",
                             f"{technique}.csv", *flags, "--", "python", main, *script])
    finally:
        watch.close()
    return code, watch.steps


def _copy(module: torch.nn.Module, state: dict, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    net = copy.deepcopy(module).to(dtype)
    net.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()})
    for p in net.parameters():  # StudioGAN toggles requires_grad per phase: the copy trains every parameter
        p.requires_grad_(True)
    return net


def _flat_grad(loss, params):
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def _flat(grads, like):
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).double() for p, g in zip(like, grads)])


def _d_steps(steps):
    return [s for s in steps if s["net"] == "Discriminator"]


def _aw_reference(step, r1_lambda: float) -> torch.Tensor:
    """Algorithm 1 on per-half gradients of a float64 copy of D (real forward, then fake, as StudioGAN), plus R1."""
    d_forwards = [f for f in step["forwards"] if f[0] == "Discriminator"]
    (_, D, state, real_args, _), (_, _, _, fake_args, _) = d_forwards[-2:]
    Dc = _copy(D, state)
    params = list(Dc.parameters())
    x_real = real_args[0].double().requires_grad_(True)
    out_r = Dc(x_real, *real_args[1:])["adv_output"]
    out_f = Dc(fake_args[0].double(), *fake_args[1:])["adv_output"]
    loss_r, loss_f = torch.relu(1 - out_r).mean(), torch.relu(1 + out_f).mean()  # StudioGAN's d_hinge, by part
    g_r, g_f = _flat_grad(loss_r, params), _flat_grad(loss_f, params)
    w_r, w_f, _ = algorithm1(g_r.numpy(), g_f.numpy(), float(torch.sigmoid(out_r).mean()),
                             float(torch.sigmoid(out_f).mean()))
    grad = w_r * g_r + w_f * g_f
    if r1_lambda:
        # StudioGAN's R1 (non-StyleGAN, inside the loop): 0.5 * mean_i |d D(x_i) / d x_i|^2, unweighted.
        (gx,) = torch.autograd.grad(out_r.sum(), x_real, create_graph=True)
        grad = grad + _flat_grad(r1_lambda * 0.5 * gx.pow(2).reshape(len(gx), -1).sum(1).mean(), params)
    return grad


@pytest.mark.parametrize("config,r1_lambda", [("plain.yaml", 0.0), ("r1.yaml", R1_LAMBDA)])
def test_aw_gives_algorithm_1s_gradient_on_studiogans_own_training(workdir, config, r1_lambda):
    code, steps = _run(workdir, "aw", config)
    assert code == 0
    d_steps = _d_steps(steps)
    assert len(d_steps) == 3
    for step in d_steps:
        D = step["forwards"][-1][1]
        expected = _aw_reference(step, r1_lambda)
        got = _flat(step["grads"], list(D.parameters()))
        # float32 against float64: the absolute tolerance is in units of the gradient's scale (a parameter whose
        # exact gradient is 0, a bias before a normalisation, gets float32 rounding noise times the aw weights).
        atol = 1e-5 * float(expected.abs().max())
        assert torch.allclose(got, expected, rtol=1e-4, atol=atol), float((got - expected).abs().max())
    assert (workdir / "aw.csv").read_text().count("\naw,") == 3


def test_none_is_bit_identical_to_studiogan_alone(workdir):
    _, plain = _run(workdir, None)
    code, hooked = _run(workdir, "none")
    assert code == 0 and len(plain) == len(hooked) == 6
    for a, b in zip(plain, hooked):
        assert a["net"] == b["net"]
        assert all(torch.equal(x, y) for x, y in zip(a["grads"], b["grads"]))
    # A float32 copy of G and D from the recorded states gives the run's G gradient bit for bit (what the
    # WeGAN test relies on).
    for step in [s for s in hooked if s["net"] == "Generator"]:
        (_, G, g_state, g_args, _) = [f for f in step["forwards"] if f[0] == "Generator"][-1]
        (_, D, d_state, d_args, _) = [f for f in step["forwards"] if f[0] == "Discriminator"][-1]
        Gc, Dc = _copy(G, g_state, torch.float32), _copy(D, d_state, torch.float32)
        d = Dc(Gc(*g_args), *d_args[1:])["adv_output"]
        grads = torch.autograd.grad(-d.mean(), list(Gc.parameters()))
        assert all(torch.equal(x, y) for x, y in zip(step["grads"], grads))


def test_wegan_g_gradient_is_the_weighted_one(workdir):
    eta = 0.05
    code, steps = _run(workdir, "wegan", "plain.yaml", "--eta", str(eta), "--g-loss",
                       f"{Path(REPO) / 'src' / 'utils' / 'losses.py'}:g_hinge")
    assert code == 0
    g_steps = [s for s in steps if s["net"] == "Generator"]
    assert len(g_steps) == 3
    for step in g_steps:
        (_, G, g_state, g_args, _) = [f for f in step["forwards"] if f[0] == "Generator"][-1]
        (_, D, d_state, d_args, _) = [f for f in step["forwards"] if f[0] == "Discriminator"][-1]
        # G's batch norm over 4 samples makes this float32 gradient differ from the exact (float64) one by
        # ~0.5% whatever the loss: the copies repeat the run's float32 arithmetic (bit for bit: see
        # test_none_is_bit_identical_to_studiogan_alone).
        Gc, Dc = _copy(G, g_state, torch.float32), _copy(D, d_state, torch.float32)
        d = Dc(Gc(*g_args), *d_args[1:])["adv_output"].reshape(-1)
        p = torch.sigmoid(d.detach().double()).numpy()
        w = eta ** (1 - p) / np.sum(eta ** (1 - p))  # Pantazis et al., Algorithm 1
        params = [q for q in Gc.parameters()]
        expected = _flat_grad((torch.as_tensor(w, dtype=torch.float32) * -d).sum(), params).double()
        plain = _flat_grad(-d.mean(), params).double()  # g_hinge: -mean(d)
        assert not torch.allclose(plain, expected, rtol=1e-2)  # the weights matter here
        got = _flat(step["grads"], list(G.parameters()))
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7), float((got - expected).abs().max())


@pytest.mark.parametrize("flags,words", [
    (("--real", "logit_real"), ("no argument", "logit_real", "d_logit_real")),
    (("--d-loss", "{losses}:d_nothing"), ("no function", "d_nothing")),
    (("--d-sign", "-1"), ("sign is inverted", "--d-sign 1")),
])
def test_refusals_on_studiogans_loss_file(workdir, capsys, flags, words):
    losses = str(Path(REPO) / "src" / "utils" / "losses.py")
    argv = {"--d-loss": f"{losses}:d_hinge", "--real": "d_logit_real", "--fake": "d_logit_fake", "--d-sign": "1"}
    for key, value in zip(flags[::2], flags[1::2]):
        argv[key] = value.format(losses=losses)
    main = str(Path(REPO) / "src" / "main.py")
    command = ["-t", "-metrics", "none", "-cfg", "plain.yaml", "-data", "data", "-save", "out_refused",
               "--num_workers", "1", "--seed", "0", "--save_freq", "1000"]
    code = cli.main(["run", "--cpu", "--technique", "aw", *[x for kv in argv.items() for x in kv], "--",
                     "python", main, *command])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("gan-optim run:") and "with technique" not in x][-1]
    assert all(w in line for w in words), line


def _losses(step) -> float:
    """The loss StudioGAN computed at this step, from float32 copies (bit for bit the run's arithmetic)."""
    if step["net"] == "Discriminator":
        d_forwards = [f for f in step["forwards"] if f[0] == "Discriminator"]
        (_, D, state, real_args, _), (_, _, _, fake_args, _) = d_forwards[-2:]
        Dc = _copy(D, state, torch.float32)
        out_r = Dc(*real_args)["adv_output"]
        out_f = Dc(*fake_args)["adv_output"]
        return float(torch.relu(1 - out_r).mean() + torch.relu(1 + out_f).mean())
    (_, G, g_state, g_args, _) = [f for f in step["forwards"] if f[0] == "Generator"][-1]
    (_, D, d_state, d_args, _) = [f for f in step["forwards"] if f[0] == "Discriminator"][-1]
    Gc, Dc = _copy(G, g_state, torch.float32), _copy(D, d_state, torch.float32)
    return float(-Dc(Gc(*g_args), *d_args[1:])["adv_output"].mean())


def test_adaptive_vetoes_the_idle_networks_step(workdir):
    code, steps = _run(workdir, "adaptive", "long.yaml", "--g-loss",
                       f"{Path(REPO) / 'src' / 'utils' / 'losses.py'}:g_hinge")
    assert code == 0
    pairs = list(zip(steps[0::2], steps[1::2]))  # StudioGAN: D first, then G
    assert len(pairs) == 6 and all(d["net"] == "Discriminator" and g["net"] == "Generator" for d, g in pairs)
    # Ouyang & Agam, Algorithm 1: ratios start at 1 (a tie: G); r = |(L_c - L_p) / L_p|; D iff r_d > r_g.
    r_d = r_g = 1.0
    prev = None
    d_updates = 0
    choices = []
    for d_step, g_step in pairs:
        choice = "D" if r_d > r_g * (1 + 1e-9) else "G"
        assert (d_step["moved"], g_step["moved"]) == (choice == "D", choice == "G")
        d_updates += choice == "D"
        choices.append(choice)
        assert d_step["adam_steps"] == d_updates * len(d_step["grads"])  # a vetoed step leaves Adam's state
        cur = (_losses(d_step), _losses(g_step))
        prev = cur if prev is None else prev
        r_d, r_g = abs((cur[0] - prev[0]) / prev[0]), abs((cur[1] - prev[1]) / prev[1])
        prev = cur
    assert set(choices) == {"D", "G"}, choices  # both networks were picked, and each veto held
