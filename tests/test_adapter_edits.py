"""Users' edits to hooked upstream code: seen by the fingerprints (indentation included), named in one-line
refusals the launcher can be told to override, and kept by the loss hooks (AW on the codebase's own loss parts).

The stand-ins of tests/upstream/standins play the repositories; tests/upstream/test_user_edits.py does the same
on the real checkouts.
"""

from __future__ import annotations

import shutil
import textwrap
import types

import numpy as np
import pytest
import torch

from _reference import algorithm1
from gan_optim import AWDiscriminatorLoss
from gan_optim.adapters import _patching, launch
from upstream._shims import STANDINS, repo_on_path


def _fp(source: str) -> str:
    return _patching.fingerprint_of_source(textwrap.dedent(source))


# ---------------------------------------------------------------- fingerprints
BASE = """
def train(x):
    for i in range(3):
        x = x + 1
        step(x)
    return x
"""


def test_an_indentation_only_edit_changes_the_fingerprint():
    moved = BASE.replace("        step(x)", "    step(x)")  # out of the loop: once instead of three times
    assert _fp(moved) != _fp(BASE)


@pytest.mark.parametrize("same", [
    BASE.replace("    return x", "    # the result\n\n    return x  # done"),                       # comments, blanks
    BASE.replace("def train(x):\n", 'def train(x):\n    """Docstring."""\n'),                    # a docstring
    BASE.replace("x = x + 1", "x = x + \\\n            1"),                                       # a line break
    BASE.replace("    ", "  "),                                                                  # 2-space indentation
])
def test_what_cannot_change_behaviour_keeps_the_fingerprint(same):
    assert _fp(same) == _fp(BASE)


def _function(tmp_path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source).lstrip())
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["train"]


def test_the_refusal_names_the_changed_lines(tmp_path):
    tested = _patching.line_keys(_function(tmp_path, "tested", BASE))
    moved = _function(tmp_path, "mine", BASE.replace("        step(x)", "    step(x)").replace("+ 1", "+ 2"))
    assert _patching.changed_lines(moved, tested) == (
        "mine.py:3 `x = x + 2` changed; mine.py:4 `step(x)` indented differently (depth 1, tested 2)")
    with pytest.raises(_patching.AdapterError, match=r"^train is not the one in T 1 \(mine.py:3 `x = x \+ 2` changed;"
                                                     r".*--trust-fingerprint [0-9a-f]{16} \(gan-optim biggan\)"):
        _patching.check_unmodified(moved, set(), what="train", snapshot="T 1", adapter="biggan", technique="none",
                                   tested_lines=tested)
    removed = _function(tmp_path, "short", BASE.replace("        step(x)\n", ""))
    assert _patching.changed_lines(removed, tested) == "1 line(s) of the tested version removed before short.py:4"


# ---------------------------------------------------------------- does the calling code read D's outputs again?
def _frame_of(source: str, tmp_path, *args):
    """Run ``source``'s ``train`` and return what ``outputs_used_after_call`` says inside its call to ``loss``."""
    seen: list[bool] = []

    def loss(a, b):
        import sys

        seen.append(_patching.outputs_used_after_call(sys._getframe(1), "loss"))
        return a + b

    fn = _function(tmp_path, f"m{len(list(tmp_path.iterdir()))}", source)
    fn.__globals__["loss"] = loss
    fn(*args)
    return seen


@pytest.mark.parametrize("source,expected", [
    ("""
     def train(n):
         for i in range(n):
             real, fake = i, i
             l = loss(fake, real)
         fake = 0
         return fake
     """, False),                                                                     # rebound before any read
    ("""
     def train(n):
         for i in range(n):
             real, fake = i, i
             l = loss(fake, real) + real ** 2
     """, True),                                                                      # a drift term on real
    ("""
     def train(n):
         for i in range(n):
             real, fake = i, i
             l = loss(fake, real)
             print(fake)
     """, True),                                                                      # read later in the loop
    ("""
     def train(n):
         real, fake = 1, 2
         for i in range(n):
             l = loss(fake, real)
     """, True),                                                                      # read again on the next pass
])
def test_outputs_used_after_call(source, expected, tmp_path):
    assert _frame_of(source, tmp_path, 2) == [expected, expected]


# ---------------------------------------------------------------- AW on a codebase's own loss parts
def test_from_parts_is_algorithm1_on_the_given_parts():
    """Any per-part loss (a hinge with margin 3 here): D's gradient is w_r grad L_r + w_f grad L_f in float64,
    the weights from Algorithm 1 on those two gradients and the mean sigmoid scores."""
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    with torch.no_grad():
        D[2].weight.mul_(8.0)  # outputs of a few units: the margin decides which samples count
    x_real, x_fake = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64) + 1
    params = list(D.parameters())

    d_real, d_fake = D(x_real), D(x_fake)
    g_r = torch.autograd.grad(torch.relu(3 - d_real).mean(), params, retain_graph=True)
    g_f = torch.autograd.grad(torch.relu(3 + d_fake).mean(), params)
    flat = lambda gs: np.concatenate([g.reshape(-1).numpy() for g in gs])  # noqa: E731
    w_r, w_f, _ = algorithm1(flat(g_r), flat(g_f), float(torch.sigmoid(d_real).mean()),
                             float(torch.sigmoid(d_fake).mean()))

    aw = AWDiscriminatorLoss(D, loss="hinge")
    d_real, d_fake = D(x_real), D(x_fake)
    aw.from_parts(torch.relu(3 - d_real).mean(), torch.relu(3 + d_fake).mean(), d_real, d_fake).backward()
    for p, a, b in zip(params, g_r, g_f):
        torch.testing.assert_close(p.grad, w_r * a + w_f * b, rtol=1e-10, atol=1e-12)
    assert float(aw.last.loss_real) == pytest.approx(float(torch.relu(3 - d_real).mean()))
    with pytest.raises(ValueError, match="Invalid loss_real"):
        aw.from_parts(torch.tensor(1.0), torch.relu(3 + d_fake).mean(), d_real, d_fake)


# ---------------------------------------------------------------- the launcher on the stand-in
def _standin(tmp_path, edit: tuple[str, str] | None = None):
    repo = tmp_path / "biggan"
    shutil.copytree(STANDINS / "biggan", repo, ignore=shutil.ignore_patterns("__pycache__"))
    if edit is not None:
        text = (repo / "train_fns.py").read_text()
        assert text.count(edit[0]) == 1
        (repo / "train_fns.py").write_text(text.replace(edit[0], edit[1]))
    return repo


def _launch(repo, capsys, *ours: str, out=None):
    capsys.readouterr()
    with repo_on_path(repo):
        code = launch.main("biggan", ["--repo", str(repo), *ours, "--", "--out", str(out or repo / "o.pt"),
                                      "--iters", "2"])
    return code, capsys.readouterr().err


def test_the_launcher_refuses_an_edit_in_one_line_and_trust_fingerprint_proceeds(tmp_path, capsys):
    repo = _standin(tmp_path, ("            D.optim.step()\n", "        D.optim.step()\n"))  # out of the D-step loop
    code, err = _launch(repo, capsys, "--technique", "adaptive")
    assert code == 2 and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("gan-optim biggan: train_fns.GAN_training_function is not the one in BigGAN-PyTorch "
                           "98459431 (train_fns.py:")  # the stand-in is not BigGAN's code: every line differs
    fingerprint = line.split("--trust-fingerprint ")[1].split()[0]
    code, err = _launch(repo, capsys, "--technique", "adaptive", "--trust-fingerprint", fingerprint)
    assert code == 0, err
    from gan_optim.adapters import biggan

    assert fingerprint not in biggan.TRUSTED_FINGERPRINTS  # trusted for that run only


def test_the_launcher_fails_a_run_where_the_technique_never_acts(tmp_path, capsys):
    repo = _standin(tmp_path, ("losses.discriminator_loss(d_fake, d_real)", "losses.hinge_d(d_fake, d_real)"))
    code, err = _launch(repo, capsys, "--technique", "aw")
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        "gan-optim biggan: technique 'aw' did not act: 1 training iteration(s) ran and biggan's code never called "
        "losses.discriminator_loss, through which aw works. Call losses.discriminator_loss in your training code "
        "(name your own function there), or run without the technique")
    code, err = _launch(repo, capsys, "--technique", "wegan")  # its hook, generator_loss, is still called
    assert code == 0, err


def test_inception_weights_that_are_not_inception_weights_are_one_line(tmp_path, capsys):
    bad = tmp_path / "weights.pth"
    torch.save({"not": torch.zeros(2)}, bad)
    code, err = _launch(_standin(tmp_path), capsys, "--technique", "none", "--inception-weights", str(bad))
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"gan-optim biggan: Invalid inception weights: {str(bad)!r} is not the torch-fidelity "
                           "pt_inception-2015-12-05 state dict (")


@pytest.mark.parametrize("command", ["biggan", "autogan"])
def test_every_technique_option_has_help(command):
    parser = launch._parser(command)
    (group,) = [g for g in parser._action_groups if g.title == "technique options"]
    for action in group._group_actions:
        name = action.dest
        assert action.help and action.help.startswith(launch.OPTION_HELP[name]), name
        for technique, options in launch.OPTIONS.items():
            if name in options:
                assert f"{technique}: " in action.help, (name, technique)
    assert {a.dest for a in group._group_actions} == set(launch.OPTION_HELP)
    parser.format_help()  # the help texts format (no stray %)


def test_autogan_wegan_is_not_called_inactive_before_g_first_steps():
    """A run resumed at step 1 with n_critic 5 steps G first at step 5: no error before, wegan acted by then."""
    with repo_on_path(STANDINS / "autogan"):
        import functions
        import models
        from gan_optim.adapters import autogan

        handle = autogan.patch("wegan", namespaces=[])
        G, D = models.Generator(), models.Discriminator()
        opt_g, opt_d = torch.optim.SGD(G.parameters(), 1e-3), torch.optim.SGD(D.parameters(), 1e-3)
        data = torch.rand(20, 3, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, torch.zeros(20)), batch_size=4)
        args = types.SimpleNamespace(latent_dim=8, gen_batch_size=6, n_critic=5, print_freq=2, max_epoch=1)
        from upstream._shims import RecordingWriter

        wd = {"writer": RecordingWriter(), "train_global_steps": 1}
        functions.train(args, G, D, opt_g, opt_d, functions.copy_params(G), loader, 0, wd, None)
        assert handle.iterations == 5 and handle.calls["wegan"] == 1
