"""BigGAN-PyTorch adapter, against our stand-in of its contracts (tests/upstream/standins/biggan).

The real-checkout tests are in tests/upstream/test_biggan_upstream.py.
"""

from __future__ import annotations

import math
import runpy
import sys


import pytest
import torch

from gan_optim import AWDiscriminatorLoss, WeightedGeneratorLoss
from gan_optim.adapters import TAG, is_patched, launch
from upstream._shims import STANDINS, repo_on_path

REPO = STANDINS / "biggan"
BASE = dict(batch_size=4, num_D_steps=1, num_D_accumulations=1, num_G_accumulations=1, toggle_grads=True,
            split_D=False, D_ortho=0.0, G_ortho=0.0, ema=True)


def _run(config: dict, iters: int, technique: str | None = None, seed: int = 0, **options):
    """Build the stand-in's G/D as its train.py does and run ``iters`` iterations (patched if technique)."""
    with repo_on_path(REPO):
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        handle = biggan.patch(technique, **options) if technique is not None else None
        torch.manual_seed(seed)
        G, D, G_ema = model.Generator(), model.Discriminator(), model.Generator()
        ema = utils.ema(G, G_ema, 0.999, 0)
        GD = model.G_D(G, D)
        state_dict = {"itr": 0, "epoch": 0}
        z_, y_ = utils.make_z_y(config["batch_size"], G.dim_z, 4)
        train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config)
        data = torch.Generator().manual_seed(1234)
        per_call = config["batch_size"] * config["num_D_steps"] * config["num_D_accumulations"]
        logs, g_changed = [], []
        for _ in range(iters):
            state_dict["itr"] += 1
            x = torch.rand(per_call, 3, 8, 8, generator=data) * 2 - 1
            y = torch.randint(0, 4, (per_call,), generator=data)
            before = [p.detach().clone() for p in G.parameters()]
            logs.append(train(x, y))
            g_changed.append(any(not torch.equal(a, p) for a, p in zip(before, G.parameters())))
        comps = dict(handle.components) if handle is not None else {}
        return {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(), "logs": logs,
                "state_dict": state_dict, "components": comps, "g_changed": g_changed}


def _assert_bitwise(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("overrides", [
    {"num_D_steps": 1},
    {"num_D_steps": 2},
    {"num_D_accumulations": 2, "num_G_accumulations": 2, "split_D": True, "D_ortho": 1e-3, "G_ortho": 1e-3,
     "toggle_grads": False},
], ids=["d_steps1", "d_steps2", "accum_split_ortho"])
def test_none_is_bit_identical_to_the_unpatched_training_function(overrides):
    config = {**BASE, **overrides}
    ref = _run(config, iters=10)
    ours = _run(config, iters=10, technique="none")
    for net in ("G", "D", "G_ema"):
        _assert_bitwise(ref[net], ours[net])
    assert ref["logs"] == ours["logs"]  # same keys, same values
    assert ref["state_dict"] == ours["state_dict"]  # "none" adds nothing to BigGAN's state_dict


def test_aw_hook_makes_biggans_backward_deposit_exactly_the_aw_gradient():
    with repo_on_path(REPO):
        import losses
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        biggan.patch("aw")
        torch.manual_seed(0)
        G, D = model.Generator(), model.Discriminator()
        D.eval()  # no power iteration: two forwards give the same outputs
        GD = model.G_D(G, D)
        z_, y_ = utils.make_z_y(4, G.dim_z, 4)
        train_fns.GAN_training_function(G, D, GD, z_, y_, None, {"itr": 0}, {**BASE, "ema": False})
        x, yx = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randint(0, 4, (4,))

        d_fake, d_real = GD(z_[:4], y_[:4], x, yx)
        assert type(d_fake) is not torch.Tensor  # the Distribution-like subclass reaches the hook
        loss_real, loss_fake = losses.discriminator_loss(d_fake, d_real)
        D.zero_grad()
        (loss_real + loss_fake).backward()  # what BigGAN's training function does
        hooked = [p.grad.clone() for p in D.parameters()]

        ref_aw = AWDiscriminatorLoss(D, loss="hinge")
        d_fake2, d_real2 = GD(z_[:4], y_[:4], x, yx)
        D.zero_grad()
        ref_aw.from_outputs(d_real2, d_fake2).backward()
        for a, p in zip(hooked, D.parameters()):
            assert torch.equal(a, p.grad)
        # The logged values stay BigGAN's unweighted hinge losses.
        plain_r = torch.relu(1 - d_real2.as_subclass(torch.Tensor)).mean()
        plain_f = torch.relu(1 + d_fake2.as_subclass(torch.Tensor)).mean()
        assert loss_real.item() == plain_r.item() and loss_fake.item() == plain_f.item()


def test_wegan_hook_is_the_weighted_generator_loss():
    with repo_on_path(REPO):
        import losses
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        biggan.patch("wegan", eta=0.05)
        G, D = model.Generator(), model.Discriminator()
        GD = model.G_D(G, D)
        z_, y_ = utils.make_z_y(4, G.dim_z, 4)
        train_fns.GAN_training_function(G, D, GD, z_, y_, None, {"itr": 0}, {**BASE, "ema": False})
        d = torch.randn(4, 1, dtype=torch.float64, requires_grad=True)
        loss = losses.generator_loss(d)
        assert loss.item() == pytest.approx(-d.mean().item())  # the value is the codebase's loss
        loss.backward()
        # WeGAN (Pantazis et al.): w = softmax((1 - sigmoid(d)) ln eta), G's loss sum_i w_i l(d_i), l(d) = -d here.
        logits = [(1 - 1 / (1 + math.exp(-v))) * math.log(0.05) for v in d.detach().reshape(-1).tolist()]
        total = sum(math.exp(v) for v in logits)
        expected = torch.tensor([[-math.exp(v) / total] for v in logits], dtype=torch.float64)
        torch.testing.assert_close(d.grad, expected, rtol=1e-12, atol=0)


def test_wegan_reweights_the_codebases_own_generator_loss():
    """An edited generator loss (softplus, a print) runs, and its per-sample gradients get WeGAN's weights."""
    with repo_on_path(REPO):
        import losses
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        printed = []

        def my_loss(dis_fake):
            printed.append("my G loss")
            return torch.nn.functional.softplus(-dis_fake).mean()

        losses.generator_loss = my_loss
        biggan.patch("wegan", eta=0.05)
        G, D = model.Generator(), model.Discriminator()
        z_, y_ = utils.make_z_y(4, G.dim_z, 4)
        train_fns.GAN_training_function(G, D, model.G_D(G, D), z_, y_, None, {"itr": 0}, {**BASE, "ema": False})
        d = torch.randn(5, 1, dtype=torch.float64, requires_grad=True)
        loss = losses.generator_loss(d)
        assert printed == ["my G loss"]
        assert loss.item() == pytest.approx(torch.nn.functional.softplus(-d).mean().item())
        loss.backward()
        values = d.detach().reshape(-1).tolist()
        sig = [1 / (1 + math.exp(-v)) for v in values]
        logits = [(1 - p) * math.log(0.05) for p in sig]
        total = sum(math.exp(v) for v in logits)
        # d/dd softplus(-d) = -sigmoid(-d) = -(1 - sigmoid(d))
        expected = torch.tensor([[-(math.exp(lg) / total) * (1 - p)] for lg, p in zip(logits, sig)],
                                dtype=torch.float64)
        torch.testing.assert_close(d.grad, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("technique,options", [
    ("aw", {}), ("wegan", {"eta": 0.05}), ("adaptive", {"lam": 1.0}),
    ("ttur", {"lr_g": 1e-4, "lr_d": 4e-4, "g_schedule": 0.75, "d_schedule": 0.6}),
    ("freeadv", {"epsilon": 0.01, "replays": 2}),
])
def test_every_technique_trains_and_logs_biggans_keys(technique, options):
    out = _run({**BASE, "num_D_steps": 2}, iters=4, technique=technique, **options)
    for log in out["logs"]:
        assert set(log) == {"G_loss", "D_loss_real", "D_loss_fake"}
        assert all(isinstance(v, float) and v == v for v in log.values())
    assert out["state_dict"]["gan_optim"]["technique"] == technique
    comps = out["components"]
    if technique == "aw":
        assert comps["aw"].steps == 4 * 2
    if technique == "wegan":
        assert comps["wegan"].steps == 4
    if technique == "adaptive":
        sched = comps["adaptive"]
        assert sched.counts["D"] + sched.counts["G"] == 4 and sched.iteration == 4
    if technique == "ttur":
        tt = comps["ttur"]
        assert tt.steps_g == 4 and tt.steps_d == 8
        assert tt.lr_g == pytest.approx(1e-4 / 5 ** 0.75) and tt.lr_d == pytest.approx(4e-4 / 9 ** 0.6)
    if technique == "freeadv":
        fa = comps["freeadv"]
        assert fa.steps == 8 and 0 < fa.delta.abs().max() <= 0.01 + 1e-7


def test_adaptive_updates_g_only_on_g_iterations():
    out = _run(BASE, iters=8, technique="adaptive")
    sched = out["components"]["adaptive"]
    assert sched.counts["D"] > 0 and sched.counts["G"] > 0
    # G moved in exactly as many iterations as the scheduler chose G.
    assert sum(out["g_changed"]) == sched.counts["G"]


def test_techniques_change_the_training():
    base = _run(BASE, iters=3, technique="none")
    for technique in ("aw", "wegan", "freeadv"):
        other = _run(BASE, iters=3, technique=technique)
        assert not all(torch.equal(base["D"][k], other["D"][k]) for k in base["D"]), technique


def test_patch_is_tagged_reversible_and_never_applied_twice():
    with repo_on_path(REPO):
        import losses
        import train_fns
        from gan_optim.adapters import biggan

        factory, d_loss = train_fns.GAN_training_function, losses.discriminator_loss
        h = biggan.patch("aw")
        assert is_patched(train_fns.GAN_training_function) and is_patched(losses.discriminator_loss)
        assert getattr(train_fns.GAN_training_function, TAG) is h
        assert train_fns.GAN_training_function.__wrapped__ is factory
        assert biggan.patch("aw") is h  # same config: the active handle, no second wrapper
        assert train_fns.GAN_training_function.__wrapped__ is factory
        with pytest.raises(RuntimeError, match="already patched"):
            biggan.patch("wegan")
        h.undo()
        assert train_fns.GAN_training_function is factory and losses.discriminator_loss is d_loss
        h.undo()  # idempotent
        h2 = biggan.patch("freeadv", epsilon=0.01)
        assert h2 is not h and biggan.active_patch() is h2
        biggan.unpatch()
        assert train_fns.GAN_training_function is factory and biggan.active_patch() is None
        with pytest.raises(TypeError, match="eta"):
            biggan.patch("aw", eta=0.1)
        with pytest.raises(ValueError, match="technique"):
            biggan.patch("fast")


def test_components_state_is_checkpointed_and_restored_on_resume(tmp_path):
    out = _run(BASE, iters=3, technique="adaptive")
    saved = out["state_dict"]["gan_optim"]
    (tmp_path / "exp").mkdir()
    torch.save({"itr": 3, "gan_optim": saved}, tmp_path / "exp" / "state_dict.pth")
    with repo_on_path(REPO):
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        h = biggan.patch("adaptive")
        G, D = model.Generator(), model.Discriminator()
        z_, y_ = utils.make_z_y(4, G.dim_z, 4)
        config = {**BASE, "resume": True, "weights_root": str(tmp_path), "experiment_name": "exp",
                  "load_weights": ""}
        train_fns.GAN_training_function(G, D, model.G_D(G, D), z_, y_, None, {"itr": 3}, config)
        assert h.components["adaptive"].state_dict() == saved["components"]["adaptive"]


def _script(out, *extra):
    return ["--out", str(out), "--iters", "10", *extra]


@pytest.mark.parametrize("d_steps", ["1", "2"])
def test_launcher_runs_the_unmodified_script_bit_identically_with_none(tmp_path, d_steps):
    with repo_on_path(REPO):
        saved_argv = list(sys.argv)
        sys.argv = [str(REPO / "train.py"), *_script(tmp_path / "ref.pt", "--num_D_steps", d_steps)]
        try:
            runpy.run_path(str(REPO / "train.py"), run_name="__main__")
        finally:
            sys.argv = saved_argv
    path_before = list(sys.path)
    with repo_on_path(REPO):
        from gan_optim.cli import main as cli_main
        code = cli_main(["biggan", "--repo", str(REPO), "--technique", "none", "--",
                         *_script(tmp_path / "ours.pt", "--num_D_steps", d_steps)])
        assert code == 0
        import train_fns
        assert not is_patched(train_fns.GAN_training_function)  # undone when the script ends
    assert sys.path == path_before
    ref, ours = torch.load(tmp_path / "ref.pt"), torch.load(tmp_path / "ours.pt")
    for net in ("G", "D", "G_ema"):
        _assert_bitwise(ref[net], ours[net])
    assert ref["log"] == ours["log"]


def test_launcher_passes_technique_options(tmp_path):
    with repo_on_path(REPO):
        code = launch.main("biggan", ["--repo", str(REPO), "--technique", "freeadv", "--epsilon", "0.02",
                                      "--data-range=-1,1", "--", "--out", str(tmp_path / "fa.pt"), "--iters", "2"])
        assert code == 0
    state = torch.load(tmp_path / "fa.pt", weights_only=False)["state_dict"]["gan_optim"]
    assert state["technique"] == "freeadv" and state["components"]["freeadv"]["epsilon"] == 0.02
    with pytest.raises(SystemExit):
        launch.parse("biggan", ["--repo", ".", "--technique", "aw", "--eta", "0.1"])  # wegan's option
    assert launch.main("biggan", ["--repo", str(tmp_path), "--technique", "aw"]) == 2  # no train.py there


def test_adaptive_with_g_accumulation_observes_the_mean_g_loss():
    """num_G_accumulations > 1: the scheduler sees the mean of the accumulated G losses (not the last / n)."""
    config = {**BASE, "num_G_accumulations": 3}
    with repo_on_path(REPO):
        import losses
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        recorded = []
        original = losses.generator_loss

        def recording(d_fake):
            value = original(d_fake)
            recorded.append(float(value.detach()))
            return value

        losses.generator_loss = recording
        handle = None
        try:
            handle = biggan.patch("adaptive")
            torch.manual_seed(0)
            G, D, G_ema = model.Generator(), model.Discriminator(), model.Generator()
            ema = utils.ema(G, G_ema, 0.999, 0)
            GD = model.G_D(G, D)
            z_, y_ = utils.make_z_y(4, G.dim_z, 4)
            state_dict = {"itr": 0, "epoch": 0}
            train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config)
            seen = []
            handle.components["adaptive"].register_step_post_hook(lambda s, stats: seen.append(stats))
            data = torch.Generator().manual_seed(5)
            checked = 0
            for _ in range(8):
                recorded.clear()
                log = train(torch.rand(4, 3, 8, 8, generator=data) * 2 - 1, torch.randint(0, 4, (4,), generator=data))
                if seen[-1].choice == "G":
                    assert len(recorded) == 3
                    expected = sum(recorded) / 3
                    assert seen[-1].loss_g == pytest.approx(expected, rel=1e-6)
                    assert log["G_loss"] == pytest.approx(expected, rel=1e-6)
                    checked += 1
            assert checked >= 1
        finally:
            losses.generator_loss = original
            if handle is not None:
                handle.undo()


@pytest.mark.parametrize("technique", ["none", "adaptive", "ttur", "freeadv"])
def test_a_modified_training_function_is_refused_not_silently_replaced(technique, tmp_path):
    import shutil

    repo = tmp_path / "biggan"
    shutil.copytree(REPO, repo)
    source = (repo / "train_fns.py").read_text()
    marker = "def GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config):\n"
    assert marker in source
    (repo / "train_fns.py").write_text(source.replace(marker, marker + "    print('my own change')\n"))
    with repo_on_path(repo):
        from gan_optim.adapters import biggan

        with pytest.raises(ValueError, match=r"train_fns.GAN_training_function is not the one in "
                                             r"BigGAN-PyTorch 98459431.*would be silently lost"):
            biggan.patch(technique)
        # The loss-level techniques keep the user's function: allowed.
        handle = biggan.patch("aw")
        handle.undo()


def test_aw_refuses_an_edited_discriminator_loss_of_inverted_sign():
    """The named-loss hook's once-check, on the two parts BigGAN's loss returns (no extra call of it)."""
    with repo_on_path(REPO):
        import losses
        import model
        import train_fns
        import utils
        from gan_optim.adapters import biggan
        from gan_optim.adapters._patching import AdapterError

        calls = []

        def flipped(dis_fake, dis_real):
            calls.append(1)
            return torch.relu(1. + dis_real).mean(), torch.relu(1. - dis_fake).mean()

        losses.discriminator_loss = flipped
        biggan.patch("aw")
        torch.manual_seed(0)
        G, D = model.Generator(), model.Discriminator()
        GD = model.G_D(G, D)
        z_, y_ = utils.make_z_y(4, G.dim_z, 4)
        train_fns.GAN_training_function(G, D, GD, z_, y_, None, {"itr": 0}, {**BASE, "ema": False})
        x, yx = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randint(0, 4, (4,))
        d_fake, d_real = GD(z_[:4], y_[:4], x, yx)
        with pytest.raises(AdapterError, match=r"^losses.discriminator_loss \(flipped\): the sign is inverted \(the "
                                               r"loss grows as the real output grows\); aw reads D's outputs as"):
            losses.discriminator_loss(d_fake, d_real)
        assert calls == [1]
        assert all(p.grad is None for p in D.parameters())
