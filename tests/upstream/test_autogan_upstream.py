"""AutoGAN adapter against a real checkout (``GAN_OPTIM_AUTOGAN_DIR``), on CPU at width 8.

Run: ``GAN_OPTIM_AUTOGAN_DIR=/path/to/AutoGAN pytest -m upstream tests/upstream``.
``functions.py`` imports TF1 metric modules at import time and builds tensors
with ``torch.cuda.FloatTensor``; the shims stub the former and map the latter
to CPU. The networks are AutoGAN's ``models.autogan_cifar10_a`` at width 8,
trained on a synthetic 32x32 loader through ``functions.train`` (the function
the adapter replaces), with AutoGAN's ``LinearLrDecay`` and moving average.
"""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import torch

from upstream._shims import (RecordingWriter, autogan_networks, autogan_stubs, cuda_float_tensor_on_cpu,
                             real_checkout, repo_on_path, synthetic_loader)

REPO, pytestmark = real_checkout("autogan")


def _args(n_critic: int):
    return types.SimpleNamespace(latent_dim=16, gf_dim=8, df_dim=8, bottom_width=4, d_spectral_norm=True,
                                 gen_batch_size=6, dis_batch_size=4, n_critic=n_critic, print_freq=1000,
                                 max_epoch=2, g_lr=2e-4, d_lr=2e-4, beta1=0.0, beta2=0.9, init_type="xavier_uniform")


def _run(n_critic: int, epochs: int, technique: str | None = None, **options):
    with repo_on_path(REPO, autogan_stubs()), cuda_float_tensor_on_cpu():
        import functions
        import models
        from gan_optim.adapters import autogan

        handle = autogan.patch(technique, namespaces=[], **options) if technique is not None else None
        args = _args(n_critic)
        G, D, opt_g, opt_d = autogan_networks(models, args)
        loader = synthetic_loader(20, args.dis_batch_size)  # 5 batches per epoch
        total = epochs * len(loader)
        scheds = (functions.LinearLrDecay(opt_g, args.g_lr, 0.0, 0, total),
                  functions.LinearLrDecay(opt_d, args.d_lr, 0.0, 0, total))
        avg = functions.copy_params(G)
        writer = RecordingWriter()
        wd = {"writer": writer, "train_global_steps": 0}
        for epoch in range(epochs):
            functions.train(args, G, D, opt_g, opt_d, avg, loader, epoch, wd, scheds)
        comps = dict(handle.components) if handle is not None else {}
        return {"G": copy.deepcopy(G.state_dict()), "D": copy.deepcopy(D.state_dict()), "avg": avg,
                "scalars": writer.scalars, "steps": wd["train_global_steps"], "components": comps}


@pytest.mark.parametrize("n_critic", [1, 5])
def test_none_is_bit_identical_to_autogans_train(n_critic):
    ref = _run(n_critic, epochs=2)  # 10 iterations
    ours = _run(n_critic, epochs=2, technique="none")
    for net in ("G", "D"):
        for k in ref[net]:
            assert torch.equal(ref[net][k], ours[net][k]), (net, k)
    for a, b in zip(ref["avg"], ours["avg"]):
        assert torch.equal(a, b)
    assert ref["scalars"] == ours["scalars"]
    assert ref["steps"] == ours["steps"] == 10


@pytest.mark.parametrize("technique,options", [
    ("aw", {}), ("wegan", {"eta": 0.05}), ("adaptive", {}), ("ttur", {"lr_g": 1e-4, "lr_d": 4e-4}),
    ("freeadv", {"epsilon": 0.01}),
])
def test_every_technique_runs_on_autogan(technique, options):
    out = _run(2, epochs=1, technique=technique, **options)
    assert out["steps"] == 5
    tags = {t for t, _, _ in out["scalars"]}
    assert "d_loss" in tags and "g_loss" in tags
    assert all(v == v for _, v, _ in out["scalars"])


# ---------------------------------------------------------------- the launcher on AutoGAN's own train.py
SCRIPT_ARGS = ["--dataset", "cifar10", "--img_size", "32", "--bottom_width", "4", "-gen_bs", "4", "-dis_bs", "4",
               "--gen_model", "autogan_cifar10_a", "--dis_model", "autogan_cifar10_a", "--latent_dim", "16",
               "--gf_dim", "8", "--df_dim", "8", "--d_spectral_norm", "True", "--g_spectral_norm", "False",
               "--init_type", "xavier_uniform", "--beta1", "0.0", "--beta2", "0.9", "--lr_decay",
               "--val_freq", "100", "--print_freq", "1000", "--random_seed", "0"]


def _run_script(tmp_path, monkeypatch, exp_name: str, n_critic: int, technique: str | None, *options: str):
    """AutoGAN's unmodified train.py, plainly (runpy) or through the launcher; returns its checkpoint and scalars."""
    import random

    from gan_optim.adapters import launch
    from upstream._shims import (StubSummaryWriter, run_unmodified_script, autogan_dataset_stub, modules_stay_on_cpu,
                                 root_logging_restored)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fid_stat").mkdir(exist_ok=True)
    (tmp_path / "fid_stat" / "fid_stats_cifar10_train.npz").write_bytes(b"")  # train.py only checks it exists
    # 12 images in batches of 4: 3 iterations per epoch; max_iter * n_critic iterations in all.
    max_iter = 10 if n_critic == 1 else 2
    args = SCRIPT_ARGS + ["--n_critic", str(n_critic), "--max_iter", str(max_iter), "--exp_name", exp_name]
    stubs = {**autogan_stubs(), "datasets": autogan_dataset_stub()}
    StubSummaryWriter.instances.clear()
    with repo_on_path(REPO, stubs), cuda_float_tensor_on_cpu(), modules_stay_on_cpu(), root_logging_restored():
        import functions

        # IS/FID need TF1's Inception graph: the end-of-training validation reports fixed numbers.
        monkeypatch.setattr(functions, "validate", lambda *a, **k: (1.0, 100.0))
        if technique is None:
            random.seed(0)
            np.random.seed(0)
            torch.manual_seed(0)
            run_unmodified_script(REPO, args)
        else:
            code = launch.main("autogan", ["--repo", REPO, "--seed", "0", "--technique", technique, *options,
                                           "--", *args])
            assert code == 0
    (run_dir,) = [p for p in (tmp_path / "logs").iterdir() if p.name.startswith(exp_name + "_")]
    ckpt = torch.load(run_dir / "Model" / "checkpoint.pth", weights_only=False)
    return ckpt, StubSummaryWriter.instances[-1].scalars


@pytest.mark.parametrize("n_critic", [1, 5])
def test_launcher_with_none_matches_autogans_train_py_bitwise(tmp_path, monkeypatch, n_critic):
    ref, ref_scalars = _run_script(tmp_path, monkeypatch, "base", n_critic, None)
    ours, our_scalars = _run_script(tmp_path, monkeypatch, "none", n_critic, "none")
    for key in ("gen_state_dict", "dis_state_dict", "avg_gen_state_dict"):
        for k in ref[key]:
            assert torch.equal(ref[key][k], ours[key][k]), (key, k)
    assert ref["epoch"] == ours["epoch"] == 4  # 12 iterations
    assert ref_scalars == our_scalars
    assert ours.keys() == ref.keys()  # "none" has no state to add to the checkpoint


def test_launcher_applies_a_technique_to_autogans_train_py(tmp_path, monkeypatch):
    ckpt, scalars = _run_script(tmp_path, monkeypatch, "aw", 1, "aw")
    assert ckpt["gan_optim"]["technique"] == "aw"
    assert ckpt["gan_optim"]["components"]["aw"]["steps"] == 12
    assert {t for t, _, _ in scalars} >= {"d_loss", "g_loss", "LR/g_lr", "LR/d_lr"}
