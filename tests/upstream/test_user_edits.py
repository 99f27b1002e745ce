"""A researcher's edits to the hooked upstream code are kept, or refused in one line; never silently dropped.

Each test edits a scratch copy of the real checkout (``GAN_OPTIM_BIGGAN_DIR``,
``GAN_OPTIM_AUTOGAN_DIR``) as a user would, then runs the adapter on it: an edit is either
refused (the message names the changed line) or kept, and then shown to act. A technique
that never acts fails the run; the launcher's errors are one line with exit status 2.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from upstream._observe import GradAtStep, Recorder, assert_grads_close, aw_hinge_expected, grads
from upstream._shims import biggan_stubs, real_checkout, repo_on_path

BIGGAN, biggan_mark = real_checkout("biggan")
AUTOGAN, autogan_mark = real_checkout("autogan")


def edited_copy(src: str, dest: Path, filename: str, edits: list[tuple[str, str]]) -> str:
    """A copy of the checkout ``src`` with ``filename``'s text edited (each ``old`` must occur once)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    path = dest / filename
    text = path.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    return str(dest)


# BigGAN's D step moved one level out of the num_D_steps loop: one D step per iteration, whatever num_D_steps.
ONE_D_STEP = [("      D.optim.step()\n", "    D.optim.step()\n")]
# A hinge margin of 10 (D's outputs here are of that size: it decides which samples count), and a print.
HALF_MARGIN = [("  loss_real = torch.mean(F.relu(1. - dis_real))\n",
                "  print('my hinge loss')\n  loss_real = torch.mean(F.relu(10. - dis_real))\n"),
               ("  loss_fake = torch.mean(F.relu(1. + dis_fake))\n",
                "  loss_fake = torch.mean(F.relu(10. + dis_fake))\n")]
# D's loss switched to the DCGAN one by calling it directly: aw's hook on discriminator_loss is never called.
DCGAN_BY_NAME = [("losses.discriminator_loss(D_fake, D_real)", "losses.loss_dcgan_dis(D_fake, D_real)")]
# A drift term on the D_real the training function already has.
DRIFT = [("D_loss = (D_loss_real + D_loss_fake) / float(config['num_D_accumulations'])",
          "D_loss = (D_loss_real + D_loss_fake) / float(config['num_D_accumulations']) "
          "+ 1e-3 * torch.mean(D_real ** 2)")]


# ---------------------------------------------------------------- indentation is behaviour
@biggan_mark[0]
@biggan_mark[1]
@pytest.mark.parametrize("technique", ["none", "adaptive", "ttur", "freeadv"])
def test_biggan_indentation_only_edit_is_refused_naming_the_line(technique, tmp_path):
    from gan_optim.adapters._patching import AdapterError

    repo = edited_copy(BIGGAN, tmp_path / "biggan", "train_fns.py", ONE_D_STEP)
    with repo_on_path(repo, biggan_stubs()):
        from gan_optim.adapters import biggan

        with pytest.raises(AdapterError, match=r"train_fns.GAN_training_function is not the one in BigGAN-PyTorch "
                                               r"98459431 \(train_fns.py:57 `D.optim.step\(\)` indented "
                                               r"differently \(depth 2, tested 3\)\)"
                                               r".*--trust-fingerprint [0-9a-f]{16}"):
            biggan.patch(technique)


@biggan_mark[0]
@biggan_mark[1]
def test_biggan_indentation_only_edit_is_kept_under_aw_and_acts(tmp_path):
    from upstream.test_biggan_behaviour import biggan

    repo = edited_copy(BIGGAN, tmp_path / "biggan", "train_fns.py", ONE_D_STEP)
    with biggan("aw", ["--num_D_steps", "2"], repo=repo) as s:
        at = GradAtStep(s.D.optim, s.D)
        for _ in range(2):
            s.step()
        assert len(at.steps) == 2  # the edit acts: one D step per iteration (the unedited code takes two)
        assert s.handle.components["aw"].steps == 4  # aw weighed both accumulated passes of each iteration


@autogan_mark[0]
@autogan_mark[1]
@pytest.mark.parametrize("technique", ["aw", "freeadv"])
def test_autogan_indentation_only_edit_is_refused_naming_the_line(technique, tmp_path):
    from gan_optim.adapters._patching import AdapterError

    # The LR decay and the moving average moved out of the G branch: every iteration, not every n_critic-th.
    src = (Path(AUTOGAN) / "functions.py").read_text()
    start, end = src.index("            # adjust learning rate\n"), src.index('            writer.add_scalar("g_loss"')
    block = src[start:end]
    dedented = "".join(line[4:] if line.startswith("    ") else line for line in block.splitlines(keepends=True))
    repo = edited_copy(AUTOGAN, tmp_path / "autogan", "functions.py", [(block, dedented)])
    from upstream._shims import autogan_stubs

    with repo_on_path(repo, autogan_stubs()):
        from gan_optim.adapters import autogan

        with pytest.raises(AdapterError, match=r"functions.train is not the one in AutoGAN a5eeef05 "
                                               r"\(functions.py:210 `if schedulers:` indented differently "
                                               r"\(depth 2, tested 3\);"):
            autogan.patch(technique, namespaces=[])


# ---------------------------------------------------------------- losses.py edits
@biggan_mark[0]
@biggan_mark[1]
def test_biggan_losses_edit_runs_under_aw(tmp_path, capsys):
    """The user's margin-10 hinge (and its print) run; D steps on Algorithm 1's weighing of *its* two parts."""
    from upstream.test_biggan_behaviour import biggan

    repo = edited_copy(BIGGAN, tmp_path / "biggan", "losses.py", HALF_MARGIN)
    with biggan("aw", ["--num_D_steps", "1"], repo=repo) as s:
        rec, at = Recorder(s.D), GradAtStep(s.D.optim, s.D)
        bs = s.config["batch_size"]
        for _ in range(2):
            rec.clear()
            at.steps.clear()
            capsys.readouterr()
            s.step()
            assert capsys.readouterr().out.count("my hinge loss") == 1  # the D step's loss (G's is its own)
            call = rec.calls[0]
            out = rec.replay(call)(*call["args"], **call["kwargs"]).reshape(-1)
            params = list(rec.template.parameters())
            expected, _ = aw_hinge_expected(out[bs:], out[:bs], params, margin=10.0)
            unedited, _ = aw_hinge_expected(out[bs:], out[:bs], params, margin=1.0)
            assert_grads_close(at.steps[0], expected, other=unedited)


@biggan_mark[0]
@biggan_mark[1]
def test_biggan_losses_edit_is_refused_under_freeadv_naming_the_line(tmp_path):
    from gan_optim.adapters._patching import AdapterError

    repo = edited_copy(BIGGAN, tmp_path / "biggan", "losses.py", HALF_MARGIN)
    with repo_on_path(repo, biggan_stubs()):
        from gan_optim.adapters import biggan

        with pytest.raises(AdapterError, match=r"losses.discriminator_loss is not the one in BigGAN-PyTorch 98459431 "
                                               r"\(losses.py:18 `print\('my hinge loss'\)` changed; losses.py:19 "
                                               r"`loss_real = torch.mean\(F.relu\(10. - dis_real\)\)` changed"):
            biggan.patch("freeadv")


# ---------------------------------------------------------------- a technique that does not act
@biggan_mark[0]
@biggan_mark[1]
def test_biggan_aw_that_never_acts_fails_the_run(tmp_path):
    from gan_optim.adapters._patching import TechniqueInactive
    from upstream.test_biggan_behaviour import biggan

    repo = edited_copy(BIGGAN, tmp_path / "biggan", "train_fns.py", DCGAN_BY_NAME)
    with biggan("aw", ["--num_D_steps", "1"], repo=repo) as s:
        with pytest.raises(TechniqueInactive, match=r"technique 'aw' did not act: 1 training iteration\(s\) ran and "
                                                    r"biggan's code never called losses.discriminator_loss"):
            s.step()


@biggan_mark[0]
@biggan_mark[1]
def test_biggan_launcher_fails_a_run_where_aw_never_acts(tmp_path, monkeypatch, capsys):
    repo = edited_copy(BIGGAN, tmp_path / "biggan", "train_fns.py", DCGAN_BY_NAME)
    code, err = _launch_biggan(repo, tmp_path, monkeypatch, capsys, ["--technique", "aw"], [])
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("gan-optim biggan: technique 'aw' did not act")


# ---------------------------------------------------------------- the graph the user's code still needs
@biggan_mark[0]
@biggan_mark[1]
def test_biggan_drift_term_on_d_real_works_under_aw(tmp_path):
    """D steps on aw's weighing of the hinge parts plus the drift term's own gradient, and aw keeps
    D's graph only because the edited code reads D_real again."""
    from upstream.test_biggan_behaviour import biggan

    repo = edited_copy(BIGGAN, tmp_path / "biggan", "train_fns.py", DRIFT)
    with biggan("aw", ["--num_D_steps", "1"], repo=repo) as s:
        rec, at = Recorder(s.D), GradAtStep(s.D.optim, s.D)
        bs = s.config["batch_size"]
        retained = _record_retain_graph(s.handle.components["aw"])
        for _ in range(2):
            rec.clear()
            at.steps.clear()
            s.step()
            call = rec.calls[0]
            out = rec.replay(call)(*call["args"], **call["kwargs"]).reshape(-1)
            params = list(rec.template.parameters())
            weighted, _ = aw_hinge_expected(out[bs:], out[:bs], params)
            drift = grads(1e-3 * torch.mean(out[bs:] ** 2), params)
            assert_grads_close(at.steps[0], [w + d.double() for w, d in zip(weighted, drift)], other=weighted)
        assert retained == [True, True]


@biggan_mark[0]
@biggan_mark[1]
def test_biggan_aw_frees_the_graph_when_the_code_does_not_read_d_again():
    from upstream.test_biggan_behaviour import biggan

    with biggan("aw", ["--num_D_steps", "2"]) as s:
        retained = _record_retain_graph(s.handle.components["aw"])
        s.step()
        assert retained == [False, False]


def _record_retain_graph(aw) -> list[bool]:
    """The ``retain_graph`` of each ``aw.from_parts`` call, recorded on the instance."""
    seen: list[bool] = []
    from_parts = aw.from_parts

    def recording(*args, retain_graph=False, **kwargs):
        seen.append(retain_graph)
        return from_parts(*args, retain_graph=retain_graph, **kwargs)

    aw.from_parts = recording
    return seen


# ---------------------------------------------------------------- one line, exit 2
@biggan_mark[0]
@biggan_mark[1]
def test_biggan_launcher_freeadv_with_accumulation_is_one_line(tmp_path, monkeypatch, capsys):
    code, err = _launch_biggan(BIGGAN, tmp_path, monkeypatch, capsys, ["--technique", "freeadv"],
                               ["--num_D_accumulations", "2"])
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines()[-1] == ("gan-optim biggan: freeadv steps D once per replay, so BigGAN's "
                                    "--num_D_accumulations must be 1 and --D_ortho 0 (got 2 and 0.0)")


@autogan_mark[0]
@autogan_mark[1]
def test_autogan_launcher_ttur_with_lr_decay_and_a_schedule_is_one_line(tmp_path, monkeypatch, capsys):
    from upstream.test_autogan_upstream import SCRIPT_ARGS

    from gan_optim.adapters import launch
    from upstream._shims import (autogan_dataset_stub, autogan_stubs, cuda_float_tensor_on_cpu, modules_stay_on_cpu,
                                 root_logging_restored)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fid_stat").mkdir()
    (tmp_path / "fid_stat" / "fid_stats_cifar10_train.npz").write_bytes(b"")
    args = [*SCRIPT_ARGS, "--n_critic", "1", "--max_iter", "2", "--exp_name", "ttur"]
    assert "--lr_decay" in args
    stubs = {**autogan_stubs(), "datasets": autogan_dataset_stub()}
    with repo_on_path(AUTOGAN, stubs), cuda_float_tensor_on_cpu(), modules_stay_on_cpu(), root_logging_restored():
        capsys.readouterr()
        code = launch.main("autogan", ["--repo", AUTOGAN, "--technique", "ttur", "--g-schedule", "0.75", "--", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines()[-1] == ("gan-optim autogan: ttur: AutoGAN's --lr_decay and our --g-schedule/--d-schedule "
                                    "both set the learning rates: use one of them")


def _launch_biggan(repo: str, tmp_path: Path, monkeypatch, capsys, ours: list[str], theirs: list[str]):
    """``gan-optim biggan --repo REPO OURS -- <a 4-iteration CPU run> THEIRS``; returns (exit status, stderr)."""
    from gan_optim.adapters import launch
    from upstream._shims import biggan_loaders_stub, cuda_device_on_cpu

    args = ["--dataset", "C10", "--G_ch", "8", "--D_ch", "8", "--batch_size", "8", "--G_attn", "0", "--D_attn", "0",
            "--seed", "0", "--num_epochs", "1", "--num_D_steps", "1", "--save_every", "100000", "--test_every",
            "100000", "--base_root", str(tmp_path), "--experiment_name", "edit", *theirs]
    with repo_on_path(repo, biggan_stubs()), cuda_device_on_cpu():
        import inception_utils
        import utils

        monkeypatch.setattr(utils, "get_data_loaders", biggan_loaders_stub(iterations=4))
        monkeypatch.setattr(inception_utils, "prepare_inception_metrics", lambda *a, **k: None)
        capsys.readouterr()
        code = launch.main("biggan", ["--repo", repo, *ours, "--", *args])
    return code, capsys.readouterr().err


@pytest.mark.upstream
def test_the_scratch_copies_leave_the_checkouts_alone():
    """The edits above go to copies: the checkouts the other tests use are the tested commits' files."""
    from gan_optim.adapters.launch import TESTED_CHECKOUTS
    from gan_optim.adapters._patching import checkout_differences

    for kind, repo in (("biggan", BIGGAN), ("autogan", AUTOGAN)):
        if repo and os.path.isdir(repo):
            commit, hashes = TESTED_CHECKOUTS[kind]
            assert checkout_differences(repo, commit, hashes) is None
