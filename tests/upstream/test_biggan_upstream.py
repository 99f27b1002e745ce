"""BigGAN-PyTorch adapter against a real checkout (``GAN_OPTIM_BIGGAN_DIR``), on CPU at width 8.

Run: ``GAN_OPTIM_BIGGAN_DIR=/path/to/BigGAN-PyTorch pytest -m upstream tests/upstream``.
``train.run`` hard-codes 'cuda' and downloads Inception weights, so these tests
build G, D, G_D, the EMA and z_/y_ the way it does, on CPU, and drive
``train_fns.GAN_training_function`` (the function the adapter patches) with
synthetic batches.
"""

from __future__ import annotations


import pytest
import torch

from upstream._shims import biggan_stubs, real_checkout, repo_on_path

REPO, pytestmark = real_checkout("biggan")

ARGS = ["--dataset", "C10", "--G_ch", "8", "--D_ch", "8", "--batch_size", "8", "--G_attn", "0", "--D_attn", "0",
        "--ema", "--ema_start", "2", "--toggle_grads", "--seed", "0"]


def _run(iters: int, num_d_steps: int, technique: str | None = None, extra: list[str] | None = None, **options):
    with repo_on_path(REPO, biggan_stubs()):
        import BigGAN
        import train_fns
        import utils
        from gan_optim.adapters import biggan

        handle = biggan.patch(technique, **options) if technique is not None else None
        config = vars(utils.prepare_parser().parse_args(ARGS + ["--num_D_steps", str(num_d_steps)] + (extra or [])))
        # The derived entries train.run adds before building the models.
        config["resolution"] = utils.imsize_dict[config["dataset"]]
        config["n_classes"] = utils.nclass_dict[config["dataset"]]
        config["G_activation"] = utils.activation_dict[config["G_nl"]]
        config["D_activation"] = utils.activation_dict[config["D_nl"]]
        torch.manual_seed(config["seed"])
        G, D = BigGAN.Generator(**config), BigGAN.Discriminator(**config)
        G_ema = BigGAN.Generator(**{**config, "skip_init": True, "no_optim": True})
        ema = utils.ema(G, G_ema, config["ema_decay"], config["ema_start"])
        GD = BigGAN.G_D(G, D)
        state_dict = {"itr": 0, "epoch": 0, "save_num": 0, "save_best_num": 0, "best_IS": 0, "best_FID": 999999,
                      "config": config}
        z_, y_ = utils.prepare_z_y(max(config["G_batch_size"], config["batch_size"]), G.dim_z,
                                   config["n_classes"], device="cpu")
        train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config)
        data = torch.Generator().manual_seed(99)
        per_call = config["batch_size"] * num_d_steps * config["num_D_accumulations"]
        logs = []
        for _ in range(iters):
            state_dict["itr"] += 1
            G.train()
            D.train()
            G_ema.train()
            x = torch.rand(per_call, 3, 32, 32, generator=data) * 2 - 1
            y = torch.randint(0, config["n_classes"], (per_call,), generator=data)
            logs.append(train(x, y))
        comps = dict(handle.components) if handle is not None else {}
        return {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(), "logs": logs,
                "components": comps, "state_dict": state_dict}


@pytest.mark.parametrize("num_d_steps", [1, 2])
def test_none_is_bit_identical_to_biggans_training_function(num_d_steps):
    ref = _run(10, num_d_steps)
    ours = _run(10, num_d_steps, technique="none")
    for net in ("G", "D", "G_ema"):
        assert ref[net].keys() == ours[net].keys()
        for k in ref[net]:
            assert torch.equal(ref[net][k], ours[net][k]), (net, k)
    assert ref["logs"] == ours["logs"]


@pytest.mark.parametrize("technique,options", [
    ("aw", {}), ("wegan", {"eta": 0.05}), ("adaptive", {}), ("ttur", {"lr_g": 1e-4, "lr_d": 4e-4}),
    ("freeadv", {"epsilon": 0.01}),
])
def test_every_technique_runs_on_biggan(technique, options):
    out = _run(3, 2, technique=technique, **options)
    for log in out["logs"]:
        assert set(log) == {"G_loss", "D_loss_real", "D_loss_fake"}
        assert all(v == v and abs(v) < 1e6 for v in log.values())
    assert out["state_dict"]["gan_optim"]["technique"] == technique
    if technique == "aw":
        assert out["components"]["aw"].steps == 6
        # The logged D losses stay the plain hinge values (non-negative, O(1)).
        assert all(log["D_loss_real"] >= 0 and log["D_loss_fake"] >= 0 for log in out["logs"])


# ---------------------------------------------------------------- the launcher on BigGAN's own train.py
def _run_script(tmp_path, monkeypatch, name: str, num_d_steps: int, technique: str | None, *options: str):
    """BigGAN's unmodified train.py, plainly (runpy) or through the launcher, for 10 iterations.

    Returns the final G and D (recorded through G_D) and BigGAN's own training-metric files.
    """

    from gan_optim.adapters import launch
    from upstream._shims import biggan_loaders_stub, cuda_device_on_cpu, run_unmodified_script

    args = ["--dataset", "C10", "--G_ch", "8", "--D_ch", "8", "--batch_size", "8", "--G_attn", "0",
            "--D_attn", "0", "--ema", "--ema_start", "2", "--seed", "0", "--num_epochs", "1",
            "--num_D_steps", str(num_d_steps), "--save_every", "100000", "--test_every", "100000",
            "--base_root", str(tmp_path), "--experiment_name", name]
    with repo_on_path(REPO, biggan_stubs()), cuda_device_on_cpu():
        import BigGAN
        import inception_utils
        import utils

        recorded = []
        forward = BigGAN.G_D.forward

        def recording_forward(self, *a, **k):
            # G_D's class is looked up by name inside its own __init__ (super(G_D, self)), so the
            # instance is recorded from its forward instead of by substituting the class.
            if not recorded:
                recorded.append(self)
            return forward(self, *a, **k)

        monkeypatch.setattr(BigGAN.G_D, "forward", recording_forward)
        monkeypatch.setattr(utils, "get_data_loaders", biggan_loaders_stub(iterations=10))
        # Inception metrics download weights; test_every is beyond the run, so they are never computed.
        monkeypatch.setattr(inception_utils, "prepare_inception_metrics", lambda *a, **k: None)
        if technique is None:
            run_unmodified_script(REPO, args)
        else:
            assert launch.main("biggan", ["--repo", REPO, "--technique", technique, *options, "--", *args]) == 0
    (gd,) = recorded
    logs = {p.name: p.read_text() for p in (tmp_path / "logs" / name).iterdir() if p.suffix == ".log"}
    return gd.G.state_dict(), gd.D.state_dict(), logs


@pytest.mark.parametrize("num_d_steps", [1, 2])
def test_launcher_with_none_matches_biggans_train_py_bitwise(tmp_path, monkeypatch, num_d_steps):
    G_ref, D_ref, logs_ref = _run_script(tmp_path, monkeypatch, "base", num_d_steps, None)
    G, D, logs = _run_script(tmp_path, monkeypatch, "none", num_d_steps, "none")
    for ref, ours in ((G_ref, G), (D_ref, D)):
        for k in ref:
            assert torch.equal(ref[k], ours[k]), k
    assert {"G_loss.log", "D_loss_real.log", "D_loss_fake.log"} <= set(logs_ref)
    assert logs == logs_ref  # BigGAN's own metric files, line for line (10 iterations)
    assert len(logs["G_loss.log"].splitlines()) == 10


def test_launcher_applies_a_technique_to_biggans_train_py(tmp_path, monkeypatch):
    _, D_ref, logs_ref = _run_script(tmp_path, monkeypatch, "base", 1, None)
    _, D, logs = _run_script(tmp_path, monkeypatch, "aw", 1, "aw")
    assert set(logs) == set(logs_ref)  # same metric files
    assert any(not torch.equal(D_ref[k], D[k]) for k in D)


def test_launcher_saves_samples_and_resumes_on_todays_pytorch(tmp_path, monkeypatch):
    """BigGAN's save_every (torchvision's save_image on a Distribution-derived tensor) and --resume
    (torch.load of its own pickled state) both fail on today's PyTorch; the launcher's fixes make them run."""
    from gan_optim.adapters import launch
    from upstream._shims import biggan_loaders_stub, cuda_device_on_cpu

    args = ["--dataset", "C10", "--G_ch", "8", "--D_ch", "8", "--batch_size", "8", "--G_attn", "0",
            "--D_attn", "0", "--ema", "--ema_start", "2", "--seed", "0", "--num_epochs", "1",
            "--save_every", "5", "--test_every", "100000", "--num_best_copies", "0", "--num_save_copies", "0",
            "--base_root", str(tmp_path), "--experiment_name", "compat"]
    with repo_on_path(REPO, biggan_stubs()), cuda_device_on_cpu():
        import inception_utils
        import utils

        monkeypatch.setattr(utils, "get_data_loaders", biggan_loaders_stub(iterations=10))
        monkeypatch.setattr(inception_utils, "prepare_inception_metrics", lambda *a, **k: None)
        # The sample and interpolation sheets build tensors with device='cuda' themselves (no CPU run).
        monkeypatch.setattr(utils, "sample_sheet", lambda *a, **k: None)
        monkeypatch.setattr(utils, "interp_sheet", lambda *a, **k: None)
        assert launch.main("biggan", ["--repo", REPO, "--technique", "adaptive", "--", *args]) == 0
        weights = tmp_path / "weights" / "compat"
        assert (weights / "G.pth").exists() and (weights / "state_dict.pth").exists()
        assert list((tmp_path / "samples" / "compat").glob("*.jpg"))  # save_image ran
        saved = torch.load(weights / "state_dict.pth", map_location="cpu", weights_only=False)
        assert saved["itr"] == 10 and saved["gan_optim"]["technique"] == "adaptive"
        # --resume: BigGAN's own torch.load of the files it wrote, then 10 more iterations.
        assert launch.main("biggan", ["--repo", REPO, "--technique", "adaptive", "--", *args, "--resume"]) == 0
        resumed = torch.load(weights / "state_dict.pth", map_location="cpu", weights_only=False)
        assert resumed["itr"] == 20
        sched = resumed["gan_optim"]["components"]["adaptive"]
        assert sched["iteration"] == 20  # our scheduler's state rode along and was restored


def test_without_the_fixes_biggan_fails_at_its_first_save(tmp_path, monkeypatch):
    """--no-compat: the upstream breakage the fixes exist for (and proof that the switch switches)."""
    from gan_optim.adapters import launch
    from upstream._shims import biggan_loaders_stub, cuda_device_on_cpu

    args = ["--dataset", "C10", "--G_ch", "8", "--D_ch", "8", "--batch_size", "8", "--G_attn", "0",
            "--D_attn", "0", "--seed", "0", "--num_epochs", "1", "--save_every", "2", "--test_every", "100000",
            "--base_root", str(tmp_path), "--experiment_name", "nocompat"]
    with repo_on_path(REPO, biggan_stubs()), cuda_device_on_cpu():
        import inception_utils
        import utils

        monkeypatch.setattr(utils, "get_data_loaders", biggan_loaders_stub(iterations=3))
        monkeypatch.setattr(inception_utils, "prepare_inception_metrics", lambda *a, **k: None)
        with pytest.raises(AttributeError, match="dist_type"):
            launch.main("biggan", ["--repo", REPO, "--technique", "none", "--no-compat", "--", *args])
