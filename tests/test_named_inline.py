"""``gan-optim run --d-step``: a D loss written inline (stylegan2-ada's form), on a codebase written here.

The codebase's ``loss.py`` has a ``Loss.accumulate_gradients(phase, ...)``
whose ``Dmain`` phase backpropagates the fake half, then the real half, each
on its own; ``Dreg`` is lazy R1 on the same optimizer; the training loop
accumulates two rounds per step, as stylegan2-ada does. The test recomputes
each D step on a float64 copy of D: Algorithm 1 (tests/_reference.py) on the
rounds' summed per-half gradients, and R1 for the regularization steps.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from _reference import algorithm1
from gan_optim import cli

LOSS = '''
import torch
import torch.nn.functional as F


class Loss:
    def __init__(self, G, D, r1_gamma):
        self.G, self.D, self.r1_gamma = G, D, r1_gamma

    def accumulate_gradients(self, phase, real, z, gain):
        if phase in ("Gmain", "Gboth"):
            F.softplus(-self.D(self.G(z))).mean().mul(gain).backward()
        loss_fake = 0
        if phase in ("Dmain", "Dboth"):
            logits = self.D(self.G(z))
            F.softplus(logits).mean().mul(gain).backward()
        if phase in ("Dmain", "Dreg", "Dboth"):
            x = real.detach().requires_grad_(phase in ("Dreg", "Dboth"))
            logits = self.D(x)
            loss_real = F.softplus(-logits) if phase in ("Dmain", "Dboth") else 0
            r1 = 0
            if phase in ("Dreg", "Dboth"):
                (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
                r1 = g.square().sum(1) * (self.r1_gamma / 2)
            (logits * 0 + loss_real + r1).mean().mul(gain).backward()
'''

TRAIN = '''
import argparse

import torch

from loss import Loss

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--iters", type=int, default=4)
p.add_argument("--both", action="store_true")
args = p.parse_args()
torch.manual_seed(0)
G = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).requires_grad_(False)
D = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1)).requires_grad_(False)
opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
loss = Loss(G, D, r1_gamma=1.0)
phases = [("Gmain", G, opt_g, 1), ("Dboth" if args.both else "Dmain", D, opt_d, 1)]
if not args.both:
    phases.append(("Dreg", D, opt_d, 2))
log = []
for it in range(args.iters):
    reals = [torch.randn(4, 2) * 0.5 + torch.tensor([1.0, -1.0]) for _ in range(2)]
    zs = [torch.randn(4, 2) for _ in range(2)]
    for name, module, opt, interval in phases:
        if it % interval:
            continue
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        state = {k: v.clone() for k, v in D.state_dict().items()}
        g_state = {k: v.clone() for k, v in G.state_dict().items()}
        for real, z in zip(reals, zs):  # two rounds, as stylegan2-ada's batch splits
            loss.accumulate_gradients(phase=name, real=real, z=z, gain=interval / 2)
        module.requires_grad_(False)
        opt.step()  # the gradient it stepped with (Adam leaves .grad as it is)
        log.append({"phase": name, "D": state, "G": g_state, "reals": reals, "zs": zs, "gain": interval / 2,
                    "grads": [p.grad.clone() for p in module.parameters()]})
torch.save(log, args.out)
'''


@pytest.fixture
def codebase(tmp_path, monkeypatch):
    root = tmp_path / "inline"
    root.mkdir()
    (root / "loss.py").write_text(LOSS)
    (root / "train.py").write_text(TRAIN)
    monkeypatch.chdir(tmp_path)
    yield root
    sys.modules.pop("loss", None)


def _run(root, *flags, script=()):
    out = root.parent / "log.pt"
    code = cli.main(["run", "--technique", "aw", "--d-step", f"{root}/loss.py:Loss.accumulate_gradients",
                     "--telemetry", str(root.parent / "aw.csv"), *flags, "--", "python", str(root / "train.py"),
                     "--out", str(out), *script])
    sys.modules.pop("loss", None)
    return code, (torch.load(out) if code == 0 else [])


def _nets(rec):
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    D = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1)).double()
    G.load_state_dict({k: v.double() for k, v in rec["G"].items()})
    D.load_state_dict({k: v.double() for k, v in rec["D"].items()})
    return G, D


def _flat_grad(loss, params):
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


@pytest.mark.parametrize("flags", [(), ("--cpu",)])
def test_inline_aw_replaces_dmain_by_algorithm_1_and_leaves_lazy_r1(codebase, flags):
    # --cpu runs the script under a TorchFunctionMode, through which Tensor.backward dispatches again
    code, log = _run(codebase, *flags)
    assert code == 0
    seen = {"Dmain": 0, "Dreg": 0}
    for rec in log:
        if rec["phase"] not in seen:
            continue
        seen[rec["phase"]] += 1
        G, D = _nets(rec)
        params = list(D.parameters())
        got = torch.cat([g.reshape(-1).double() for g in rec["grads"]])
        if rec["phase"] == "Dmain":
            g_r = sum(_flat_grad(torch.nn.functional.softplus(-D(r.double())).mean() * rec["gain"], params)
                      for r in rec["reals"])
            g_f = sum(_flat_grad(torch.nn.functional.softplus(D(G(z.double()))).mean() * rec["gain"], params)
                      for z in rec["zs"])
            s_r = float(torch.cat([torch.sigmoid(D(r.double())) for r in rec["reals"]]).mean())
            s_f = float(torch.cat([torch.sigmoid(D(G(z.double()))) for z in rec["zs"]]).mean())
            w_r, w_f, _ = algorithm1(g_r.detach().numpy(), g_f.detach().numpy(), s_r, s_f)
            expected = w_r * g_r + w_f * g_f
            assert not np.isclose(w_r, 1.0) or not np.isclose(w_f, 1.0)
        else:  # lazy R1: untouched
            expected = 0
            for r in rec["reals"]:
                x = r.double().requires_grad_(True)
                (gx,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
                expected = expected + _flat_grad((gx.square().sum(1) * 0.5).mean() * rec["gain"], params)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7), rec["phase"]
    assert seen == {"Dmain": 4, "Dreg": 2}
    rows = (codebase.parent / "aw.csv").read_text().splitlines()
    assert sum(r.startswith("aw,") for r in rows) == 4


def test_inline_refuses_r1_inside_the_real_half(codebase, capsys):
    code, _ = _run(codebase, script=("--both",))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "Dboth" in err and "regularizer" in err


def test_inline_refuses_a_wrong_order_and_other_techniques(codebase, capsys):
    code, _ = _run(codebase, "--d-order", "fake,fake")
    assert code == 2 and "--d-order" in capsys.readouterr().err
    code = cli.main(["run", "--technique", "wegan", "--d-step", f"{codebase}/loss.py:Loss.accumulate_gradients",
                     "--", "python", str(codebase / "train.py"), "--out", "x.pt"])
    assert code == 2 and "only aw and none" in capsys.readouterr().err


def test_inline_hooks_keep_instances_picklable(codebase):
    """stylegan2-ada pickles its networks and training objects: the hooks store nothing on instances."""
    import pickle

    from gan_optim.adapters.named import NamedHooks

    sys.path.insert(0, str(codebase))
    try:
        hooks = NamedHooks("aw", d_step=f"{codebase}/loss.py:Loss.accumulate_gradients")
        hooks.install()
        try:
            import loss

            assert getattr(loss.Loss.accumulate_gradients, "_gan_optim_named", None) is not None
            D = torch.nn.Linear(2, 1)
            obj = loss.Loss(None, D, 1.0)
            restored = pickle.loads(pickle.dumps(obj))
            assert isinstance(restored, loss.Loss) and not vars(restored).keys() - {"G", "D", "r1_gamma"}
            assert copy.deepcopy(obj).r1_gamma == 1.0
        finally:
            hooks.uninstall()
    finally:
        sys.path.remove(str(codebase))
        sys.modules.pop("loss", None)
