"""AutoGAN adapter, against our stand-in of its contracts (tests/upstream/standins/autogan).

The real-checkout tests are in tests/upstream/test_autogan_upstream.py.
"""

from __future__ import annotations

import copy
import runpy
import sys
import types

import numpy as np
import pytest
import torch

from gan_optim import AWDiscriminatorLoss
from gan_optim.adapters import TAG, is_patched, launch
from upstream._shims import STANDINS, RecordingWriter, repo_on_path

REPO = STANDINS / "autogan"


def _args(n_critic: int = 1) -> types.SimpleNamespace:
    return types.SimpleNamespace(latent_dim=8, gen_batch_size=6, n_critic=n_critic, print_freq=2, max_epoch=2)


def _run(n_critic: int, epochs: int = 2, technique: str | None = None, lr_decay: bool = True, **options):
    """Epochs of the stand-in's functions.train (patched if technique); 5 batches per epoch."""
    with repo_on_path(REPO):
        import functions
        import models
        from gan_optim.adapters import autogan

        handle = autogan.patch(technique, namespaces=[], **options) if technique is not None else None
        torch.manual_seed(0)
        np.random.seed(0)
        G, D = models.Generator(), models.Discriminator()
        opt_g = torch.optim.Adam(G.parameters(), 2e-4, (0.0, 0.9))
        opt_d = torch.optim.Adam(D.parameters(), 2e-4, (0.0, 0.9))
        scheds = (functions.LinearLrDecay(opt_g, 2e-4, 0.0, 0, 5 * epochs),
                  functions.LinearLrDecay(opt_d, 2e-4, 0.0, 0, 5 * epochs))
        data = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, torch.zeros(20)), batch_size=4)
        avg = functions.copy_params(G)
        writer = RecordingWriter()
        wd = {"writer": writer, "train_global_steps": 0}
        args = _args(n_critic)
        functions.tqdm.lines.clear()
        for epoch in range(epochs):
            functions.train(args, G, D, opt_g, opt_d, avg, loader, epoch, wd, scheds if lr_decay else None)
        comps = dict(handle.components) if handle is not None else {}
        return {"G": copy.deepcopy(G.state_dict()), "D": copy.deepcopy(D.state_dict()), "avg": avg,
                "scalars": writer.scalars, "steps": wd["train_global_steps"], "components": comps,
                "lr": (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]),
                "verbose": list(functions.tqdm.lines)}


def _assert_bitwise(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        a, b = list(a.values()), [b[k] for k in a]
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("n_critic", [1, 5])
@pytest.mark.parametrize("lr_decay", [True, False])
def test_none_is_bit_identical_to_the_unpatched_train(n_critic, lr_decay):
    ref = _run(n_critic, epochs=3, lr_decay=lr_decay)  # 15 iterations
    ours = _run(n_critic, epochs=3, technique="none", lr_decay=lr_decay)
    _assert_bitwise(ref["G"], ours["G"])
    _assert_bitwise(ref["D"], ours["D"])
    _assert_bitwise(ref["avg"], ours["avg"])
    assert ref["scalars"] == ours["scalars"]  # same tags, values and global steps
    assert ref["steps"] == ours["steps"] == 15
    assert ref["lr"] == ours["lr"]
    assert ref["verbose"] == ours["verbose"] and ref["verbose"]  # AutoGAN's verbose lines, via its tqdm


def test_aw_uses_the_aw_gradient_and_logs_the_plain_hinge_loss():
    with repo_on_path(REPO):
        import functions
        import models
        from gan_optim.adapters import autogan

        autogan.patch("aw", namespaces=[])
        torch.manual_seed(0)
        G, D = models.Generator(), models.Discriminator()
        D.eval()  # no power iteration, so the reference sees the same outputs
        G.eval()
        opt_g = torch.optim.SGD(G.parameters(), lr=0.0)
        opt_d = torch.optim.SGD(D.parameters(), lr=1.0)
        x = torch.rand(4, 3, 8, 8) * 2 - 1
        loader = [(x, torch.zeros(4))]
        D_ref = copy.deepcopy(D)
        writer = RecordingWriter()
        np.random.seed(3)
        z = torch.as_tensor(np.random.normal(0, 1, (4, 8)), dtype=torch.float32)
        np.random.seed(3)
        # train() puts the nets in train mode; keep them in eval mode for a deterministic reference.
        G.train, D.train = (lambda mode=True: G), (lambda mode=True: D)
        functions.train(_args(), G, D, opt_g, opt_d, [p.detach().clone() for p in G.parameters()], loader, 0,
                        {"writer": writer, "train_global_steps": 1})  # G also steps, but with lr 0
        aw = AWDiscriminatorLoss(D_ref)
        d_real, d_fake = D_ref(x), D_ref(G(z).detach())
        aw.from_outputs(d_real, d_fake).backward()
        with torch.no_grad():
            for p in D_ref.parameters():
                p -= p.grad  # SGD, lr 1
        for a, b in zip(D.parameters(), D_ref.parameters()):
            assert torch.allclose(a, b, atol=1e-7, rtol=0)
        d_loss = [v for tag, v, _ in writer.scalars if tag == "d_loss"][0]
        plain = (torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean()).item()
        assert d_loss == pytest.approx(plain, rel=1e-6)


@pytest.mark.parametrize("technique,options", [
    ("aw", {}), ("wegan", {"eta": 0.05}), ("adaptive", {"lam": 1.0}),
    ("ttur", {"lr_g": 1e-4, "lr_d": 4e-4}), ("freeadv", {"epsilon": 0.01, "replays": 2}),
])
@pytest.mark.parametrize("n_critic", [1, 5])
def test_every_technique_trains_with_autogans_side_effects(technique, options, n_critic):
    out = _run(n_critic, epochs=2, technique=technique, **options)
    tags = {t for t, _, _ in out["scalars"]}
    assert {"d_loss", "g_loss", "LR/g_lr", "LR/d_lr"} <= tags
    assert all(v == v for _, v, _ in out["scalars"])
    assert out["steps"] == 10
    d_steps = [s for t, _, s in out["scalars"] if t == "d_loss"]
    assert d_steps == list(range(10))  # one d_loss per batch, at AutoGAN's global steps
    comps = out["components"]
    if technique == "adaptive":
        sched = comps["adaptive"]
        assert sched.iteration == 10
        g_steps = [s for t, _, s in out["scalars"] if t == "g_loss"]
        assert len(g_steps) == sched.counts["G"]
    else:
        g_steps = [s for t, _, s in out["scalars"] if t == "g_loss"]
        assert g_steps == [s for s in range(10) if s % n_critic == 0]
    if technique == "ttur":
        # AutoGAN's own linear decay now starts from our rates.
        tt = comps["ttur"]
        assert tt.steps_d == 10
        g_lr = [v for t, v, _ in out["scalars"] if t == "LR/g_lr"]
        d_lr = [v for t, v, _ in out["scalars"] if t == "LR/d_lr"]
        assert g_lr[0] == pytest.approx(1e-4) and d_lr[0] == pytest.approx(4e-4)
    if technique == "freeadv":
        assert comps["freeadv"].steps == 10


def test_components_persist_across_epochs():
    out = _run(1, epochs=2, technique="wegan")
    assert out["components"]["wegan"].steps == 10  # one object over both epochs


def test_patch_rebinds_names_imported_before_it_and_undoes_cleanly():
    with repo_on_path(REPO):
        import functions
        import utils.utils as uu
        from gan_optim.adapters import autogan

        original, original_save = functions.train, uu.save_checkpoint
        ns = {"train": functions.train, "save_checkpoint": uu.save_checkpoint, "other": 1}
        h = autogan.patch("aw", namespaces=[ns])
        assert ns["train"] is functions.train and is_patched(ns["train"]) and getattr(ns["train"], TAG) is h
        assert ns["save_checkpoint"] is uu.save_checkpoint and is_patched(uu.save_checkpoint)
        assert autogan.patch("aw", namespaces=[ns]) is h
        with pytest.raises(RuntimeError, match="already patched"):
            autogan.patch("none", namespaces=[])
        autogan.unpatch()
        assert functions.train is original and ns["train"] is original
        assert uu.save_checkpoint is original_save and ns["save_checkpoint"] is original_save


def _script(out, *extra):
    return ["--out", str(out), "--epochs", "2", *extra]


@pytest.mark.parametrize("n_critic", ["1", "5"])
def test_launcher_runs_the_unmodified_script_bit_identically_with_none(tmp_path, n_critic):
    with repo_on_path(REPO):
        saved_argv = list(sys.argv)
        sys.argv = [str(REPO / "train.py"), *_script(tmp_path / "ref" / "out.pt", "--n_critic", n_critic,
                                                     "--lr_decay")]
        (tmp_path / "ref").mkdir()
        try:
            runpy.run_path(str(REPO / "train.py"), run_name="__main__")
        finally:
            sys.argv = saved_argv
    (tmp_path / "ours").mkdir()
    with repo_on_path(REPO):
        code = launch.main("autogan", ["--repo", str(REPO), "--technique", "none", "--",
                                       *_script(tmp_path / "ours" / "out.pt", "--n_critic", n_critic, "--lr_decay")])
        assert code == 0
    ref, ours = torch.load(tmp_path / "ref" / "out.pt"), torch.load(tmp_path / "ours" / "out.pt")
    _assert_bitwise(ref["G"], ours["G"])
    _assert_bitwise(ref["D"], ours["D"])
    _assert_bitwise(ref["avg"], ours["avg"])
    assert ref["scalars"] == ours["scalars"]


def test_launcher_checkpoints_and_resumes_component_state(tmp_path):
    (tmp_path / "a").mkdir()
    with repo_on_path(REPO):
        assert launch.main("autogan", ["--repo", str(REPO), "--technique", "adaptive", "--lam", "1.5", "--",
                                       "--out", str(tmp_path / "a" / "out.pt"), "--epochs", "1"]) == 0
    ckpt = torch.load(tmp_path / "a" / "ckpt" / "Model" / "checkpoint.pth", weights_only=False)
    saved = ckpt["gan_optim"]
    assert saved["technique"] == "adaptive" and saved["components"]["adaptive"]["iteration"] == 5
    with repo_on_path(REPO):
        import functions
        import models
        from gan_optim.adapters import autogan

        h = autogan.patch("adaptive", lam=1.5, namespaces=[])
        G, D = models.Generator(), models.Discriminator()
        opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
        args = _args()
        args.load_path = str(tmp_path / "a" / "ckpt")
        functions.train(args, G, D, opt_g, opt_d, functions.copy_params(G), [], 0,
                        {"writer": RecordingWriter(), "train_global_steps": 5})
        assert h.components["adaptive"].state_dict() == saved["components"]["adaptive"]


def test_a_modified_train_function_is_refused_not_silently_replaced(tmp_path):
    import shutil

    from upstream._shims import STANDINS, repo_on_path

    repo = tmp_path / "autogan"
    shutil.copytree(STANDINS / "autogan", repo)
    source = (repo / "functions.py").read_text()
    start = source.index("def train(")
    body_start = source.index("):\n", start) + 3  # after the (two-line) signature
    (repo / "functions.py").write_text(source[:body_start] + "    print('my own change')\n" + source[body_start:])
    with repo_on_path(repo):
        from gan_optim.adapters import autogan

        with pytest.raises(ValueError, match=r"functions.train is not the one in AutoGAN a5eeef05"):
            autogan.patch("none", namespaces=[])
