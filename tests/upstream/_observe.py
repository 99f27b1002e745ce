"""What the behaviour tests observe of a real training step, from the outside: hooks on D, G and the optimizers.

Nothing here reads our components' results: the tests compare what the networks and the
optimizers saw and did against references they compute themselves.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch


def plain(t: Any) -> Any:
    """A detached plain-tensor copy (BigGAN's z_/y_ and what is computed from them are a Tensor subclass)."""
    if isinstance(t, torch.Tensor):
        return t.detach().as_subclass(torch.Tensor).clone()
    return t


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: plain(v) for k, v in module.state_dict().items()}


def params_of(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, p) for a, p in zip(before, module.parameters()))


class Recorder:
    """Records every forward of ``module``: its state just before, its inputs, and its output."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.template = copy.deepcopy(module)  # a copy to replay forwards on (made before any hook exists)
        self.calls: list[dict[str, Any]] = []
        self._pre = module.register_forward_pre_hook(self._before, with_kwargs=True)
        self._post = module.register_forward_hook(self._after, with_kwargs=True)

    def _before(self, mod, args, kwargs):
        self.calls.append({"state": state_of(mod), "args": tuple(plain(a) for a in args),
                           "kwargs": {k: plain(v) for k, v in kwargs.items()}})

    def _after(self, mod, args, kwargs, out):
        self.calls[-1]["out"] = tuple(plain(o) for o in out) if isinstance(out, (tuple, list)) else plain(out)

    def replay(self, call: dict[str, Any]) -> torch.nn.Module:
        """The template, loaded with the state ``call`` started from, in training mode, every parameter trainable."""
        self.template.load_state_dict(call["state"])
        self.template.train()
        for p in self.template.parameters():
            p.requires_grad_(True)
        return self.template

    def clear(self) -> None:
        self.calls.clear()

    def remove(self) -> None:
        self._pre.remove()
        self._post.remove()


class GradAtStep:
    """Each parameter's ``.grad`` (copied) just before every ``optimizer.step()``."""

    def __init__(self, optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> None:
        self.module = module
        self.steps: list[list[torch.Tensor | None]] = []
        self._hook = optimizer.register_step_pre_hook(self._record)

    def _record(self, opt, args, kwargs):
        self.steps.append([None if p.grad is None else p.grad.detach().clone() for p in self.module.parameters()])

    def remove(self) -> None:
        self._hook.remove()


def assert_grads_close(actual: list[torch.Tensor | None], expected: list[torch.Tensor], *, rel: float = 1e-5,
                       other: list[torch.Tensor] | None = None) -> None:
    """``actual`` equals ``expected`` entrywise within ``atol = rel * max|expected|`` (``None``: zero).

    ``other`` (the gradient a broken technique would give) must differ from ``expected`` by more
    than 100 atol somewhere: the comparison can tell the two apart.
    """
    assert len(actual) == len(expected)
    exp = torch.cat([e.reshape(-1).double() for e in expected])
    act = torch.cat([(torch.zeros_like(e) if a is None else a).reshape(-1).double() for a, e in zip(actual, expected)])
    atol = rel * float(exp.abs().max())
    err = float((act - exp).abs().max())
    assert err <= atol, f"gradient differs from the reference by {err:.3g} (atol {atol:.3g})"
    if other is not None:
        alt = torch.cat([o.reshape(-1).double() for o in other])
        gap = float((alt - exp).abs().max())
        assert gap > 100 * atol, f"the reference cannot tell the broken gradient apart (gap {gap:.3g})"


def grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Plain autograd gradients of ``loss`` (zeros for unused parameters), the graph kept."""
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def flat(gs: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([g.reshape(-1) for g in gs]).double().numpy()


def aw_hinge_expected(d_real: torch.Tensor, d_fake: torch.Tensor, params: list[torch.Tensor], margin: float = 1.0,
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The aw gradient of one pass by hand (hinge parts with ``margin``, Algorithm 1 in tests/_reference.py),
    and the plain sum."""
    from _reference import algorithm1

    g_r = grads(torch.relu(margin - d_real).mean(), params)
    g_f = grads(torch.relu(margin + d_fake).mean(), params)
    s_r = float(torch.sigmoid(d_real.detach().double()).mean())
    s_f = float(torch.sigmoid(d_fake.detach().double()).mean())
    w_r, w_f, _ = algorithm1(flat(g_r), flat(g_f), s_r, s_f)
    return [w_r * a.double() + w_f * b.double() for a, b in zip(g_r, g_f)], [a + b for a, b in zip(g_r, g_f)]


def algorithm1_schedule(losses: list[tuple[float, float]], lam: float = 1.0) -> list[tuple[str, float, float]]:
    """Ouyang & Agam, Algorithm 1: ratios start at 1; update D iff r_d > lam r_g (a tie goes to G);
    after each iteration r = |(L_cur - L_prev) / L_prev| (the first iteration's previous loss is its own)."""
    r_d = r_g = 1.0
    prev: tuple[float, float] | None = None
    out = []
    for l_g, l_d in losses:
        out.append(("D" if r_d > lam * r_g else "G", r_d, lam * r_g))
        p_g, p_d = prev if prev is not None else (l_g, l_d)
        r_g, r_d = abs((l_g - p_g) / p_g), abs((l_d - p_d) / p_d)
        prev = (l_g, l_d)
    return out


def assert_schedule(decisions: list[str], losses: list[tuple[float, float]], lam: float = 1.0) -> None:
    """The decisions equal the replay's, except where r_d and lam r_g are within 1e-4 of each other
    (float32 losses: the component may call those either way); both networks must have been chosen."""
    expected = algorithm1_schedule(losses, lam)
    compared = 0
    for t, (got, (want, r_d, r_g)) in enumerate(zip(decisions, expected)):
        if r_d != r_g and abs(r_d - r_g) <= 1e-4 * max(r_d, r_g):
            continue
        compared += 1
        assert got == want, f"iteration {t}: updated {got}, Algorithm 1 says {want} (r_d={r_d:.6g}, lam r_g={r_g:.6g})"
    assert compared >= len(decisions) - 1
    assert set(decisions) == {"D", "G"}, f"the run must exercise both choices: {decisions}"
