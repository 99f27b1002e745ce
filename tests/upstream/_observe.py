"""What the behaviour tests observe of a real training step, from the outside: hooks on D, G and the optimizers.

Nothing here reads our components' results: the tests compare what the networks and the
optimizers saw and did against references they compute themselves.
"""

from __future__ import annotations

import copy
from typing import Any

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
