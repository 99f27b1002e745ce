"""``gan-optim run --d-step`` on a real stylegan2-ada-pytorch checkout (d72cc7d): its unmodified ``train.py``.

Set ``GAN_OPTIM_STYLEGAN2ADA_DIR`` to the checkout to run these; they are skipped
otherwise. stylegan2-ada writes its D loss inline, so the hook names the
function that backpropagates it: ``training/loss.py:StyleGAN2Loss.accumulate_gradients``
(phase ``Dmain``: the fake half's backward, then the real half's; lazy R1 in
its own ``Dreg`` phase).

The run is ``train.py --cfg auto --gpus 1 --batch 4 --aug noaug --fp32 1
--metrics none`` on a folder of eight 32-px PNGs, on the CPU (``--cpu``). Its
CLI has no option for network width or a run shorter than one kimg, so the
tiny configuration is set where ``train.py`` hands its options to
``training_loop`` (channels 256 / 32, two mapping layers, 12 images = three
iterations): the codebase's training loop, loss and networks run unmodified.

The test watches the run from outside (a global forward pre-hook records D's
inputs and state, a global optimizer step post-hook the gradient each step
used: Adam leaves ``.grad`` as it is) and recomputes every D step on a copy of
D: Algorithm 1 (tests/_reference.py) on the per-half gradients for ``Dmain``,
R1 at stylegan2-ada's ``r1_gamma`` for ``Dreg``.

Shims, test-only, for today's torch: ``torch_utils.misc.InfiniteSampler`` calls
``Sampler.__init__(dataset)``, which today's torch no longer accepts (older
torch ignored the argument), so the test gives ``Sampler`` that old
constructor; without lazy regularization its Adam betas ``[0, 0.99]`` (an int
beside a float) are made floats. Two runs in one process reset its statistics
module's set-up flag between them.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _reference import algorithm1
from upstream._shims import _under, real_checkout, run_script_on_cpu
from gan_optim import cli

REPO, pytestmark = real_checkout("stylegan2-ada")
STEP = "training/loss.py:StyleGAN2Loss.accumulate_gradients"
TRAIN_FLAGS = ["--outdir", "out", "--data", "data", "--gpus", "1", "--batch", "4", "--kimg", "1", "--snap", "1",
               "--metrics", "none", "--aug", "noaug", "--fp32", "1", "--seed", "0", "--workers", "1"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Eight 32-px PNGs, the repository on sys.path, the tiny configuration; its modules forgotten afterwards."""
    pytest.importorskip("click")  # what its train.py and dnnlib import beyond torch
    pytest.importorskip("psutil")
    pytest.importorskip("requests")
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(REPO)
    monkeypatch.setattr(torch.utils.data.Sampler, "__init__", lambda self, *args, **kwargs: None, raising=False)
    # its Logger replaces sys.stdout / sys.stderr for good; its main sets the start method once per process
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    monkeypatch.setattr(torch.multiprocessing, "set_start_method", lambda *a, **k: None)
    before = set(sys.modules)
    import training.training_loop as loop

    original = loop.training_loop
    settings = {"D_reg_interval": 16}

    def tiny(**kwargs):
        kwargs["G_kwargs"].synthesis_kwargs.update(channel_base=256, channel_max=32)
        kwargs["G_kwargs"].mapping_kwargs.num_layers = 2
        kwargs["D_kwargs"].update(channel_base=256, channel_max=32)
        kwargs.update(total_kimg=12 / 1000, kimg_per_tick=4 / 1000, image_snapshot_ticks=None, **settings)
        # without lazy regularization its betas [0, 0.99] reach Adam as given: today's Adam wants both floats
        kwargs["D_opt_kwargs"].betas = [float(b) for b in kwargs["D_opt_kwargs"].betas]
        return original(**kwargs)

    monkeypatch.setattr(loop, "training_loop", tiny)
    yield tmp_path, settings
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if module is not None and _under(module, REPO):
            sys.modules.pop(name, None)


class Watch:
    """D's forward inputs and states, and the gradient each D optimizer step used (from outside the run)."""

    def __init__(self) -> None:
        from torch.nn.modules.module import register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.forwards: list[tuple[torch.nn.Module, dict, tuple]] = []
        self.steps: list[dict] = []
        self._handles = [register_module_forward_pre_hook(self._forward),
                         register_optimizer_step_post_hook(self._stepped)]

    def _forward(self, module, args):
        # its networks are subclasses made by a persistence decorator: the class below it is the module's own
        if any(c.__name__ == "Discriminator" and c.__module__ == "training.networks" for c in type(module).__mro__):
            state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            self.forwards.append((module, state, tuple(a.detach().clone() for a in args)))

    def _stepped(self, opt, args, kwargs):
        params = [p for g in opt.param_groups for p in g["params"]]
        nets = {id(m): m for m, *_ in self.forwards}
        D = next((m for m in nets.values() if {id(p) for p in m.parameters()} == {id(p) for p in params}), None)
        if D is not None:
            self.steps.append({"forwards": [f for f in self.forwards if f[0] is D],
                               "grads": [None if p.grad is None else p.grad.detach().clone() for p in params]})
        self.forwards = []

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _run(technique: str | None, *flags: str) -> tuple[int, list[dict]]:
    train = str(Path(REPO) / "train.py")
    stats = sys.modules.get("torch_utils.training_stats")
    if stats is not None:  # a second run in this process: its statistics may be set up again
        stats._sync_called = False
    watch = Watch()
    try:
        if technique is None:
            run_script_on_cpu(train, TRAIN_FLAGS)
            code = 0
        else:
            code = cli.main(["run", "--cpu", "--technique", technique, "--d-step", f"{Path(REPO) / STEP}",
                             "--telemetry", f"{technique}.csv", *flags, "--", "python", train, *TRAIN_FLAGS])
    finally:
        watch.close()
    return code, watch.steps


def _copy(D: torch.nn.Module, state: dict) -> torch.nn.Module:
    net = copy.deepcopy(D)
    net.load_state_dict(state)
    return net.requires_grad_(True)


def _flat_grad(loss, params, **kwargs):
    grads = torch.autograd.grad(loss, params, allow_unused=True, **kwargs)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]).double()


def _flat(grads, like):
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).double() for p, g in zip(like, grads)])


def _options(workdir) -> dict:
    (run_dir,) = (workdir / "out").iterdir()
    return json.loads((run_dir / "training_options.json").read_text())


def test_aw_gives_algorithm_1s_gradient_and_leaves_lazy_r1(workdir):
    root, _ = workdir
    code, steps = _run("aw")
    assert code == 0
    gamma = _options(root)["loss_kwargs"]["r1_gamma"]
    kinds = []
    for step in steps:
        D = step["forwards"][-1][0]
        params = list(D.parameters())
        got = _flat(step["grads"], params)
        if len(step["forwards"]) == 2:  # Dmain: fake half, then real half (gain 1)
            (_, state, (fake, c_f)), (_, _, (real, c_r)) = step["forwards"]
            Dc = _copy(D, state)
            out_f, out_r = Dc(fake, c_f), Dc(real, c_r)
            g_f = _flat_grad(F.softplus(out_f).mean(), list(Dc.parameters()))  # stylegan2-ada's loss_Dgen
            g_r = _flat_grad(F.softplus(-out_r).mean(), list(Dc.parameters()))  # loss_Dreal
            w_r, w_f, _ = algorithm1(g_r.numpy(), g_f.numpy(), float(torch.sigmoid(out_r.double()).mean()),
                                     float(torch.sigmoid(out_f.double()).mean()))
            assert not (np.isclose(w_r, 1.0) and np.isclose(w_f, 1.0))
            expected = w_r * g_r + w_f * g_f
            kinds.append("Dmain")
        else:  # Dreg: lazy R1 at gain 16 (its interval), untouched
            ((_, state, (real, c_r)),) = step["forwards"]
            Dc = _copy(D, state)
            x = real.requires_grad_(True)
            (gx,) = torch.autograd.grad(Dc(x, c_r).sum(), x, create_graph=True)
            expected = _flat_grad((gx.square().sum([1, 2, 3]) * (gamma / 2)).mean() * 16, list(Dc.parameters()))
            kinds.append("Dreg")
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7), (kinds[-1], float((got - expected).abs().max()))
    assert kinds == ["Dmain", "Dreg", "Dmain", "Dmain"]
    assert (root / "aw.csv").read_text().count("\naw,") == 3


def test_none_is_bit_identical_to_stylegan2ada_alone(workdir):
    root, _ = workdir
    _, plain = _run(None)
    code, hooked = _run("none")
    assert code == 0 and len(plain) == len(hooked) == 4
    for a, b in zip(plain, hooked):
        assert all(torch.equal(x, y) for x, y in zip(a["grads"], b["grads"]))


def test_snapshots_pickle_and_load_without_the_hooks(workdir):
    """stylegan2-ada pickles its networks every snapshot: nothing of ours rides along."""
    root, _ = workdir
    code, _ = _run("aw")
    assert code == 0
    (run_dir,) = (root / "out").iterdir()
    (snapshot,) = run_dir.glob("network-snapshot-*.pkl")
    data = snapshot.read_bytes()
    assert b"gan_optim" not in data
    loaded = pickle.loads(data)
    assert type(loaded["D"]).__name__ == "Discriminator" and loaded["D"].b32 is not None


def test_r1_inside_the_real_half_is_refused(workdir, capsys):
    root, settings = workdir
    settings["D_reg_interval"] = None  # R1 in every D step: stylegan2-ada's Dboth phase
    code, steps = _run("aw")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "Dboth" in err and "regularizer" in err
    assert steps == []  # refused before D's first step


@pytest.mark.parametrize("technique,words", [("freeadv", ("freeadv", "replays")), ("wegan", ("only aw and none",)),
                                             ("ttur", ("only aw and none",))])
def test_techniques_that_need_a_named_loss_are_refused(workdir, capsys, technique, words):
    code, steps = _run(technique, *(("--lr-d", "1e-3") if technique == "ttur" else ()))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and steps == []
    line = [x for x in err.splitlines() if x.startswith("gan-optim run:")][-1]
    assert all(w in line for w in words), line
