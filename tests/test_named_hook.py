"""``gan-optim run`` / NamedHooks on a small training-script codebase written here, never seen by the hooks.

The codebase (a package with its loss file and a ``train.py`` that binds the
losses both ways: ``from ganlib.losses import d_hinge`` and ``losses.g_hinge``)
records every D and G gradient and the states they were taken at; the tests
recompute them independently: Algorithm 1 (tests/_reference.py) on per-half
gradients of a float64 copy of D, WeGAN's weights written out, Ouyang & Agam's
ratio rule written out, plain SGD for the rates.
"""

from __future__ import annotations

import copy
import csv
import math
import sys
import textwrap

import numpy as np
import pytest
import torch

from _reference import algorithm1
from gan_optim import cli
from gan_optim.adapters.named import NamedHookError, NamedHooks

LOSSES = '''
import torch
import torch.nn.functional as F


def d_hinge(d_out_real, d_out_fake, reduction="mean"):
    return F.relu(1.0 - d_out_real).mean() + F.relu(1.0 + d_out_fake).mean()


def d_hinge_parts(d_out_real, d_out_fake):  # BigGAN's form: the parts, summed by the training code
    return F.relu(1.0 - d_out_real).mean(), F.relu(1.0 + d_out_fake).mean()


def g_hinge(d_out_fake):
    return -d_out_fake.mean()


def d_negated(d_out_real, d_out_fake):  # a D that scores fakes high
    return F.relu(1.0 + d_out_real).mean() + F.relu(1.0 - d_out_fake).mean()


def d_relativistic(d_out_real, d_out_fake):
    return (F.relu(1.0 - (d_out_real - d_out_fake.mean())).mean()
            + F.relu(1.0 + (d_out_fake - d_out_real.mean())).mean())


def d_per_sample(d_out_real, d_out_fake):
    return F.relu(1.0 - d_out_real) + F.relu(1.0 + d_out_fake)
'''

TRAIN = '''
import argparse

import torch

from ganlib import losses
from ganlib.losses import d_hinge

p = argparse.ArgumentParser()
p.add_argument("--iters", type=int, default=4)
p.add_argument("--out", required=True)
p.add_argument("--r1", type=float, default=0.0)
p.add_argument("--acc", type=int, default=1)
p.add_argument("--opt", default="adam")
p.add_argument("--dloss", default="")
p.add_argument("--mode", default="")
args = p.parse_args()
torch.manual_seed(0)
d_loss = getattr(losses, args.dloss) if args.dloss else d_hinge

G = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
D = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1))
if args.opt == "sgd":
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.01), torch.optim.SGD(D.parameters(), lr=0.02)
else:
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
if args.mode == "spawn":
    import torch.multiprocessing as mp
    mp.spawn(print, nprocs=1)

log = []
for it in range(args.iters):
    rec = {"D": {k: v.clone() for k, v in D.state_dict().items()},
           "G": {k: v.clone() for k, v in G.state_dict().items()}, "real": [], "fake": []}
    opt_d.zero_grad()
    loss_d = None
    for _ in range(args.acc):
        real = torch.randn(8, 2) * 0.5 + torch.tensor([1.0, -1.0])
        fake = G(torch.randn(8, 2)).detach()
        rec["real"].append(real)
        rec["fake"].append(fake)
        x = real.clone().requires_grad_(args.r1 > 0)
        out_r, out_f = D(x), D(fake)
        if args.mode == "nograd":
            with torch.no_grad():
                d_loss(out_r, out_f)
            loss = (out_r.mean() - out_f.mean()) * 0 + out_f.pow(2).mean()
        else:
            loss = d_loss(out_r, out_f)
            if isinstance(loss, tuple):
                loss = loss[0] + loss[1]
        if args.r1 > 0:
            (grad_x,) = torch.autograd.grad(out_r.sum(), x, create_graph=True)
            loss = loss + args.r1 * grad_x.pow(2).sum(1).mean()
        (loss / args.acc).backward()
        loss_d = loss.detach()
    rec["d_grad"] = [p.grad.clone() for p in D.parameters()]
    rec["loss_d"] = float(loss_d)
    opt_d.step()
    rec["D_after"] = {k: v.clone() for k, v in D.state_dict().items()}
    rec["lr_d_after"] = opt_d.param_groups[0]["lr"]
    opt_g.zero_grad()
    z = torch.randn(8, 2)
    rec["z"] = z
    loss_g = losses.g_hinge(D(G(z)))
    loss_g.backward()
    rec["g_grad"] = [p.grad.clone() for p in G.parameters()]
    rec["loss_g"] = float(loss_g.detach())
    D.zero_grad()
    opt_g.step()
    rec["G_after"] = {k: v.clone() for k, v in G.state_dict().items()}
    rec["lr_g_after"] = opt_g.param_groups[0]["lr"]
    rec["adam_d_steps"] = sum(int(s["step"]) for s in opt_d.state.values()) if args.opt == "adam" else 0
    log.append(rec)
torch.save(log, args.out)
'''


@pytest.fixture
def codebase(tmp_path, monkeypatch):
    """The codebase in a fresh folder; its modules are forgotten afterwards (the next test has its own)."""
    root = tmp_path / "proj"
    (root / "ganlib").mkdir(parents=True)
    (root / "ganlib" / "__init__.py").write_text("")
    (root / "ganlib" / "losses.py").write_text(LOSSES)
    (root / "train.py").write_text(TRAIN)
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name == "ganlib" or name.startswith("ganlib."):
            del sys.modules[name]


def _run(root, technique: str | None, *flags: str, script_flags: tuple = (), dloss: str = "d_hinge",
         g_loss: bool = True) -> tuple[int, list]:
    out = root.parent / f"log_{technique}_{abs(hash((flags, script_flags, dloss))) % 10**8}.pt"
    command = ["--", "python", str(root / "train.py"), "--out", str(out), *script_flags]
    if technique is None:  # the codebase alone, no hooks
        argv = list(sys.argv)
        sys.path.insert(0, str(root))
        sys.argv = [str(root / "train.py"), *command[3:]]
        try:
            import runpy

            runpy.run_path(str(root / "train.py"), run_name="__main__")
        finally:
            sys.argv = argv
            sys.path.remove(str(root))
            for name in [n for n in sys.modules if n == "ganlib" or n.startswith("ganlib.")]:
                del sys.modules[name]
        return 0, torch.load(out)
    argv = ["run", "--technique", technique, "--d-loss", f"{root}/ganlib/losses.py:{dloss}",
            "--real", "d_out_real", "--fake", "d_out_fake", "--telemetry", str(root.parent / f"{technique}.csv")]
    if g_loss:
        argv += ["--g-loss", f"{root}/ganlib/losses.py:g_hinge"]
    code = cli.main([*argv, *flags, *command])
    for name in [n for n in sys.modules if n == "ganlib" or n.startswith("ganlib.")]:
        del sys.modules[name]
    return code, (torch.load(out) if code == 0 and out.exists() else [])


def _networks():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    D = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1))
    return G.double(), D.double()


def _loaded(net, state):
    net = copy.deepcopy(net)
    net.load_state_dict({k: v.double() for k, v in state.items()})
    return net


def _flat_grad(loss, params):
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def _aw_reference(rec, r1: float, acc: int, sign: float = 1.0) -> tuple[torch.Tensor, list]:
    """Algorithm 1 on each accumulation's per-half gradients of a float64 copy of D, plus R1, averaged."""
    _, D0 = _networks()
    D = _loaded(D0, rec["D"])
    params = list(D.parameters())
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64)
    cases = []
    for real, fake in zip(rec["real"], rec["fake"]):
        x = real.double().requires_grad_(True)
        out_r, out_f = D(x), D(fake.double())
        if sign > 0:
            loss_r, loss_f = torch.relu(1 - out_r).mean(), torch.relu(1 + out_f).mean()
        else:
            loss_r, loss_f = torch.relu(1 + out_r).mean(), torch.relu(1 - out_f).mean()
        g_r, g_f = _flat_grad(loss_r, params), _flat_grad(loss_f, params)
        s_r = float(torch.sigmoid(sign * out_r).mean())
        s_f = float(torch.sigmoid(sign * out_f).mean())
        w_r, w_f, case = algorithm1(g_r.numpy(), g_f.numpy(), s_r, s_f)
        cases.append(case)
        grad = w_r * g_r + w_f * g_f
        if r1 > 0:
            (gx,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            grad = grad + _flat_grad(r1 * gx.pow(2).sum(1).mean(), params)
        total += grad / acc
    return total, cases


def _flat(tensors):
    return torch.cat([t.reshape(-1).double() for t in tensors])


@pytest.mark.parametrize("r1,acc,dloss", [(0.0, 1, "d_hinge"), (0.5, 2, "d_hinge"), (0.0, 1, "d_hinge_parts")])
def test_aw_gives_algorithm_1s_gradient_plus_the_codebases_own_terms(codebase, r1, acc, dloss):
    code, log = _run(codebase, "aw", dloss=dloss,
                     script_flags=("--iters", "5", "--r1", str(r1), "--acc", str(acc), "--dloss", dloss))
    assert code == 0
    seen_cases = set()
    for rec in log:
        expected, cases = _aw_reference(rec, r1, acc)
        seen_cases.update(cases)
        got = _flat(rec["d_grad"])
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()
    # The plain sum is not what the hook gives (the weights are not 1).
    plain = _flat(_run(codebase, None, script_flags=("--iters", "1", "--r1", str(r1), "--acc", str(acc)))[1][0]
                  ["d_grad"])
    assert not torch.allclose(plain, _flat(log[0]["d_grad"]), rtol=1e-3)
    rows = list(csv.DictReader(open(codebase.parent / "aw.csv")))
    aw_rows = [r for r in rows if r["component"] == "aw"]
    assert len(aw_rows) == 5 * acc
    assert {int(r["case"]) for r in aw_rows} == seen_cases
    # The loss the codebase logs is its own (unweighted) value.
    rec = log[-1]
    _, D0 = _networks()
    D = _loaded(D0, rec["D"])
    real, fake = rec["real"][-1].double(), rec["fake"][-1].double()
    own = torch.relu(1 - D(real)).mean() + torch.relu(1 + D(fake)).mean()
    if r1 == 0:
        assert rec["loss_d"] == pytest.approx(float(own), rel=1e-5)


def test_d_sign_minus_one_reads_scores_of_a_negated_d(codebase):
    code, _ = _run(codebase, "aw", dloss="d_negated", script_flags=("--iters", "1", "--dloss", "d_negated"))
    assert code == 2
    code, log = _run(codebase, "aw", "--d-sign", "-1", dloss="d_negated",
                     script_flags=("--iters", "3", "--dloss", "d_negated"))
    assert code == 0
    for rec in log:
        expected, _ = _aw_reference(rec, 0.0, 1, sign=-1.0)
        assert torch.allclose(_flat(rec["d_grad"]), expected, rtol=1e-5, atol=1e-6)


def test_none_is_bit_identical_to_the_codebase_alone(codebase):
    flags = ("--iters", "3", "--r1", "0.5", "--acc", "2")
    _, plain = _run(codebase, None, script_flags=flags)
    code, hooked = _run(codebase, "none", script_flags=flags)
    assert code == 0
    for a, b in zip(plain, hooked):
        for key in ("d_grad", "g_grad"):
            assert all(torch.equal(x, y) for x, y in zip(a[key], b[key]))
        for key in ("D_after", "G_after"):
            assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])


@pytest.mark.parametrize("eta", [0.01, 0.3])
def test_wegan_g_gradient_is_the_weighted_one(codebase, eta):
    code, log = _run(codebase, "wegan", "--eta", str(eta), script_flags=("--iters", "4", "--opt", "sgd"))
    assert code == 0
    G0, D0 = _networks()
    for rec in log:
        G, D = _loaded(G0, rec["G"]), _loaded(D0, rec["D_after"])
        d = D(G(rec["z"].double())).reshape(-1)
        p = torch.sigmoid(d.detach()).numpy()
        w = eta ** (1 - p) / np.sum(eta ** (1 - p))  # Pantazis et al., Algorithm 1
        loss = (torch.as_tensor(w) * (-d)).sum()  # per-sample hinge G loss: -d_i
        expected = _flat_grad(loss, list(G.parameters()))
        assert torch.allclose(_flat(rec["g_grad"]), expected, rtol=1e-5, atol=1e-7)
        # D's step is the plain one.
        D_before = _loaded(D0, rec["D"])
        plain = _flat_grad(sum(torch.relu(1 - D_before(r.double())).mean() + torch.relu(1 + D_before(f.double())).mean()
                               for r, f in zip(rec["real"], rec["fake"])), list(D_before.parameters()))
        assert torch.allclose(_flat(rec["d_grad"]), plain, rtol=1e-5, atol=1e-7)
    rows = [r for r in csv.DictReader(open(codebase.parent / "wegan.csv")) if r["component"] == "wegan"]
    assert len(rows) == 4 and all(1.0 <= float(r["effective_sample_size"]) <= 8.0 for r in rows)


def test_adaptive_vetoes_the_idle_networks_step(codebase):
    code, log = _run(codebase, "adaptive", script_flags=("--iters", "8"))
    assert code == 0
    # Ouyang & Agam, Algorithm 1, written out: ratios start at 1 (tie -> G); r = |(L_c - L_p) / L_p|.
    r_d = r_g = 1.0
    prev = None
    choices = []
    for rec in log:
        choice = "D" if r_d > 1.0 * r_g * (1 + 1e-9) else "G"
        choices.append(choice)
        d_moved = any(not torch.equal(rec["D"][k], rec["D_after"][k]) for k in rec["D"])
        g_moved = any(not torch.equal(rec["G"][k], rec["G_after"][k]) for k in rec["G"])
        assert (d_moved, g_moved) == (choice == "D", choice == "G")
        cur = (rec["loss_d"], rec["loss_g"])
        prev = cur if prev is None else prev
        r_d, r_g = abs((cur[0] - prev[0]) / prev[0]), abs((cur[1] - prev[1]) / prev[1])
        prev = cur
    assert {"D", "G"} <= set(choices)
    # The vetoed optimizer's Adam state is untouched: D's step count is the number of D iterations.
    assert log[-1]["adam_d_steps"] == sum(c == "D" for c in choices) * 4  # 4 parameter tensors


def test_ttur_sets_the_rates_around_each_step_and_restores_them(codebase):
    code, log = _run(codebase, "ttur", "--lr-d", "0.05", "--lr-g", "0.003", "--d-schedule", "0.5",
                     g_loss=False, script_flags=("--iters", "3", "--opt", "sgd"))
    assert code == 0
    for n, rec in enumerate(log):
        for which, lr, own in (("D", 0.05 / math.sqrt(n + 1), 0.02), ("G", 0.003, 0.01)):
            before, after = rec[which], rec[f"{which}_after"]
            grads = rec["d_grad"] if which == "D" else rec["g_grad"]
            for (k, v), g in zip(before.items(), grads):
                assert torch.allclose(v - lr * g, after[k], rtol=0, atol=1e-7)
            assert rec[f"lr_{which.lower()}_after"] == own  # the codebase's own rate, restored


# ------------------------------------------------------------------------ refusals
def _refused(capsys, code: int, *words: str) -> None:
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("gan-optim run:") and "with technique" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("d_loss,real,words", [
    ("ganlib/nothere.py:d_hinge", "d_out_real", ("no file",)),
    ("ganlib/losses.py:d_nothere", "d_out_real", ("no function", "d_nothere")),
    ("ganlib/losses.py:d_hinge", "logits_real", ("no argument", "logits_real", "d_out_real")),
])
def test_refuses_at_start_what_does_not_exist(codebase, capsys, d_loss, real, words):
    code = cli.main(["run", "--technique", "aw", "--d-loss", str(codebase / d_loss), "--real", real, "--fake",
                     "d_out_fake", "--", "python", str(codebase / "train.py"), "--out", "x.pt"])
    _refused(capsys, code, *words)


@pytest.mark.parametrize("dloss,words", [("d_per_sample", ("scalar",)),
                                         ("d_relativistic", ("not separable",)),
                                         ("d_negated", ("sign", "--d-sign -1"))])
def test_refuses_at_the_first_call(codebase, capsys, dloss, words):
    code, _ = _run(codebase, "aw", dloss=dloss, script_flags=("--iters", "1", "--dloss", dloss))
    _refused(capsys, code, *words)


def test_refuses_freeadv_and_techniques_without_their_g_loss(codebase, capsys):
    code, _ = _run(codebase, "freeadv")
    _refused(capsys, code, "freeadv", "replays whole D steps")
    for technique in ("wegan", "adaptive"):
        code, _ = _run(codebase, technique, g_loss=False)
        _refused(capsys, code, technique, "--g-loss")


def test_refuses_a_run_with_no_wrapped_call(codebase, capsys):
    code, _ = _run(codebase, "aw", script_flags=("--iters", "2", "--mode", "nograd"))
    _refused(capsys, code, "no call of", "d_hinge")


def test_refuses_child_processes(codebase, capsys):
    code, _ = _run(codebase, "aw", script_flags=("--iters", "1", "--mode", "spawn"))
    _refused(capsys, code, "child processes", "spawn")


def test_a_d_step_without_a_wrapped_call_names_what_holds_the_original(codebase):
    """From Python: an object that took the function before the hooks keeps the original."""
    sys.path.insert(0, str(codebase))
    try:
        from ganlib import losses

        class Config:
            d_loss = None

        cfg = Config()
        cfg.d_loss = losses.d_hinge  # bound before the hooks
        D = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(D.parameters(), lr=0.1)
        with pytest.raises(NamedHookError, match="attribute 'd_loss' of Config object"):
            with NamedHooks("aw", d_loss=f"{codebase}/ganlib/losses.py:d_hinge", real="d_out_real",
                            fake="d_out_fake"):
                assert losses.d_hinge is not cfg.d_loss  # the module's name now holds the wrapper
                for step in range(2):
                    opt.zero_grad()
                    fn = losses.d_hinge if step == 0 else cfg.d_loss
                    fn(D(torch.randn(4, 2)), D(torch.randn(4, 2))).backward()
                    opt.step()
        assert losses.d_hinge is cfg.d_loss  # undone
    finally:
        sys.path.remove(str(codebase))


def test_exit_check_names_the_holder_when_nothing_went_through(codebase):
    sys.path.insert(0, str(codebase))
    try:
        from ganlib import losses

        held = {"fn": losses.d_hinge}
        keep = type("Trainer", (), {})()
        keep.loss_fn = held["fn"]
        D = torch.nn.Linear(2, 1)
        with pytest.raises(NamedHookError, match="no call of .*attribute 'loss_fn' of Trainer object"):
            with NamedHooks("none", d_loss=f"{codebase}/ganlib/losses.py:d_hinge", real="d_out_real",
                            fake="d_out_fake"):
                keep.loss_fn(D(torch.randn(4, 2)), D(torch.randn(4, 2))).backward()
    finally:
        sys.path.remove(str(codebase))


def test_the_hooks_leave_nothing_behind(codebase):
    import torch.multiprocessing as tmp

    spawn, meta = tmp.spawn, list(sys.meta_path)
    code, _ = _run(codebase, "aw", script_flags=("--iters", "1",))
    assert code == 0
    assert tmp.spawn is spawn and sys.meta_path == meta
    from torch.optim import optimizer

    assert not optimizer._global_optimizer_pre_hooks and not optimizer._global_optimizer_post_hooks


def test_bare_d_steps_are_accepted_when_asked(codebase):
    """A lazy-regularization D step (no D loss before it) passes with allow_bare_d_steps, and is refused without."""
    sys.path.insert(0, str(codebase))
    try:
        from ganlib import losses

        D = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(D.parameters(), lr=0.1)

        def train(**flags):
            with NamedHooks("aw", d_loss=f"{codebase}/ganlib/losses.py:d_hinge", real="d_out_real",
                            fake="d_out_fake", **flags):
                for _ in range(2):
                    opt.zero_grad()
                    losses.d_hinge(D(torch.randn(4, 2)), D(torch.randn(4, 2))).backward()
                    opt.step()
                    opt.zero_grad()
                    D(torch.randn(4, 2)).pow(2).mean().backward()  # a penalty on its own step
                    opt.step()

        train(allow_bare_d_steps=True)
        with pytest.raises(NamedHookError, match="--allow-bare-d-steps"):
            train()
    finally:
        sys.path.remove(str(codebase))


def test_a_loss_file_with_a_byte_order_mark_is_read(tmp_path):
    """NVlabs' files start with a UTF-8 byte-order mark; Python imports them, so the checks read them too."""
    from gan_optim.adapters.named import LossTarget

    path = tmp_path / "loss.py"
    path.write_bytes("\ufeffdef d_loss(real_logits, fake_logits):\n    return 0\n".encode("utf-8"))
    target = LossTarget("--d-loss", f"{path}:d_loss")
    assert target.arguments == ["real_logits", "fake_logits"]


def test_the_cpu_redirect_answers_what_a_training_loop_asks_of_cuda(monkeypatch):
    """``--cpu``: pinned host memory, CUDA events and memory statistics (stylegan2-ada's loop uses all three)
    work without a GPU, an optimizer step does not look for a CUDA stream (also with the NVML-based check
    that Lightning switches on), and undoing the redirect puts torch.cuda back."""
    from gan_optim.adapters.run import _on_cpu

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

    saved = (torch.cuda.Event, torch.cuda.max_memory_allocated, torch.cuda.current_stream)
    undo = _on_cpu()
    try:
        x = torch.ones(3)
        assert x.pin_memory() is x
        assert torch.ones(2, device="cuda").device.type == "cpu"
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(torch.cuda.current_stream(torch.device("cuda", 0)))
        end.record()
        end.synchronize()
        assert start.elapsed_time(end) == 0.0
        assert torch.cuda.max_memory_allocated(torch.device("cuda", 0)) == 0
        torch.cuda.reset_peak_memory_stats()
        w = torch.nn.Parameter(torch.ones(2))
        opt = torch.optim.Adam([w], lr=0.5)
        w.sum().backward()
        opt.step()
        assert torch.allclose(w.detach(), torch.full((2,), 0.5), atol=1e-6)  # Adam's first step: lr · sign
    finally:
        undo()
    assert (torch.cuda.Event, torch.cuda.max_memory_allocated, torch.cuda.current_stream) == saved
