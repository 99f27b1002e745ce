"""Two time-scale update rule (Heusel et al., NeurIPS 2017)."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Union

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from ._checks import check_choice, check_real, check_state_keys
from .functional.ttur import two_timescale_violations

__all__ = ["TwoTimescale", "TwoTimescaleWarning"]

#: The paper's WGAN-GP settings (CIFAR-10, LSUN): D (b) 3e-4, G (a) 1e-4.
DEFAULT_LR_G = 1e-4
DEFAULT_LR_D = 3e-4

Schedule = Union[None, float, Callable[[int], float], LRScheduler]
# Schedules that decay geometrically (sum of rates finite) or end at a constant rate
# (sum of squares infinite): both break condition (A2).
_BREAKING = (torch.optim.lr_scheduler.ExponentialLR, torch.optim.lr_scheduler.StepLR,
             torch.optim.lr_scheduler.MultiStepLR, torch.optim.lr_scheduler.ConstantLR,
             torch.optim.lr_scheduler.LinearLR, torch.optim.lr_scheduler.CosineAnnealingLR,
             torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, torch.optim.lr_scheduler.CyclicLR,
             torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.PolynomialLR)


class TwoTimescaleWarning(UserWarning):
    """A learning-rate schedule breaks the two time-scale conditions (A2)."""


def _build_optimizer(name: str, source: Any, lr: float | None, default_lr: float, optimizer_cls, kwargs):
    if isinstance(source, torch.optim.Optimizer):
        if lr is not None:
            for group in source.param_groups:
                group["lr"] = lr
                group["initial_lr"] = lr
        return source
    if isinstance(source, torch.nn.Module):
        params = [p for p in source.parameters() if p.requires_grad]
    elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, torch.Tensor)):
        params = list(source)
    else:
        raise TypeError(f"Invalid {name}: expected an optimizer, a module or an iterable of parameters, "
                        f"got {type(source).__name__}")
    if not params:
        raise ValueError(f"Invalid {name}: no parameters to optimise")
    return optimizer_cls(params, lr=default_lr if lr is None else lr, **kwargs)


class TwoTimescale:
    r"""G and D optimizers on their own time scales (Heusel et al., TTUR).

    .. math::
        \theta_{n+1} = \theta_n - a(n)\,\tilde h(\theta_n, w_n), \qquad
        w_{n+1} = w_n + b(n)\,\tilde g(\theta_n, w_n),

    converging to a local Nash equilibrium when (A2) holds:
    :math:`\sum a = \sum b = \infty`, :math:`\sum a^2, \sum b^2 < \infty`,
    :math:`a(n) = o(b(n))`. With Adam the paper uses constant rates, D faster than
    G; the defaults are its WGAN-GP setting: ``lr_g = 1e-4`` (a),
    ``lr_d = 3e-4`` (b), Adam with ``betas=(0.5, 0.999)`` unless you pass others.

    Build from modules or parameter lists, or wrap optimizers you already have::

        tt = TwoTimescale(G, D)                          # Adam, lr 1e-4 / 3e-4
        tt = TwoTimescale(opt_g, opt_d)                  # wrap existing ones
        tt = TwoTimescale(G, D, g_schedule=0.75, d_schedule=0.6)  # a(n) ~ n^-0.75, b(n) ~ n^-0.6

    Schedules, per side: ``None`` (constant rate), a float power ``p``
    (``lr / (n+1)^p``, n that network's own update count), a callable
    ``n -> factor`` (as ``LambdaLR``), or an ``LRScheduler`` already built on
    that optimizer. When schedules are given, a :class:`TwoTimescaleWarning`
    names any condition of (A2) that known schedules break.

    Composes with :class:`~gan_optim.AdaptiveScheduler`:
    ``tt.step(sched.next_update())``.

    Under PyTorch Lightning, build it on ``self.optimizers()`` and let
    :class:`gan_optim.adapters.lightning.GanOptimCheckpoints` save and
    restore it: loading a state dict through Lightning's optimizer wrappers
    otherwise leaves the wrapper's learning rates detached from the optimizer
    Lightning steps (the mixin reconnects them).

    Args:
        check_finite: raise ``FloatingPointError`` (and skip the step) when a
            gradient is non-finite. Steps taken through a ``GradScaler`` are not
            checked: the scaler skips them itself.
    """

    def __init__(self, generator: Any, discriminator: Any, *, lr_g: float | None = None,
                 lr_d: float | None = None, optimizer: type = torch.optim.Adam, g_schedule: Schedule = None,
                 d_schedule: Schedule = None, check_finite: bool = True, **optimizer_kwargs: Any) -> None:
        if lr_g is not None:
            check_real("lr_g", lr_g, low=0.0, low_open=True)
        if lr_d is not None:
            check_real("lr_d", lr_d, low=0.0, low_open=True)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise TypeError(f"Invalid optimizer: expected a torch.optim.Optimizer class, got {optimizer!r}")
        wraps = [isinstance(x, torch.optim.Optimizer) for x in (generator, discriminator)]
        if all(wraps) and optimizer_kwargs:
            raise ValueError(f"Invalid optimizer_kwargs: {sorted(optimizer_kwargs)} apply only when building "
                             "optimizers, and both generator and discriminator are optimizers already")
        build_kwargs = dict(optimizer_kwargs)
        if optimizer is torch.optim.Adam:
            build_kwargs.setdefault("betas", (0.5, 0.999))
        self.g_optimizer = _build_optimizer("generator", generator, lr_g, DEFAULT_LR_G, optimizer, build_kwargs)
        self.d_optimizer = _build_optimizer("discriminator", discriminator, lr_d, DEFAULT_LR_D, optimizer,
                                            build_kwargs)
        self.check_finite = bool(check_finite)
        self.steps_g = 0
        self.steps_d = 0
        self.g_power, self.g_scheduler = self._make_schedule("g_schedule", g_schedule, self.g_optimizer)
        self.d_power, self.d_scheduler = self._make_schedule("d_schedule", d_schedule, self.d_optimizer)
        if g_schedule is not None or d_schedule is not None:
            self._warn_conditions(g_schedule, d_schedule)

    @staticmethod
    def _make_schedule(name: str, schedule: Schedule, optimizer) -> tuple[float | None, LRScheduler | None]:
        if schedule is None:
            return None, None
        if isinstance(schedule, LRScheduler):
            if schedule.optimizer is not optimizer:
                raise ValueError(f"Invalid {name}: the scheduler is built on another optimizer")
            return None, schedule
        if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
            power = check_real(name, schedule, low=0.0)
            return power, LambdaLR(optimizer, lambda n: 1.0 / float(n + 1) ** power)
        if callable(schedule):
            return None, LambdaLR(optimizer, schedule)
        raise TypeError(f"Invalid {name}: expected None, a float power, a callable or an LRScheduler, "
                        f"got {type(schedule).__name__}")

    def _warn_conditions(self, g_schedule: Schedule, d_schedule: Schedule) -> None:
        problems = []
        for side, sched in (("G", g_schedule), ("D", d_schedule)):
            if isinstance(sched, _BREAKING):
                problems.append(f"{side}: {type(sched).__name__} breaks sum a(n) = inf or sum a(n)^2 < inf")
        known = [s is None or isinstance(s, (int, float)) for s in (g_schedule, d_schedule)]
        if all(known):
            problems += two_timescale_violations(self.g_power, self.d_power)
        if problems:
            warnings.warn("TTUR conditions (A2) not met: " + "; ".join(problems), TwoTimescaleWarning,
                          stacklevel=3)

    # --------------------------------------------------------------- stepping
    @property
    def lr_g(self) -> float:
        return self.g_optimizer.param_groups[0]["lr"]

    @property
    def lr_d(self) -> float:
        return self.d_optimizer.param_groups[0]["lr"]

    def _step(self, which: str, scaler=None) -> None:
        opt = self.g_optimizer if which == "G" else self.d_optimizer
        if scaler is not None:
            scaler.step(opt)
        else:
            if self.check_finite:
                grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
                # One sync: a norm is finite iff every entry is.
                if grads and not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
                    raise FloatingPointError(f"TwoTimescale: non-finite {which} gradient; step skipped")
            opt.step()
        sched = self.g_scheduler if which == "G" else self.d_scheduler
        if sched is not None:
            sched.step()
        if which == "G":
            self.steps_g += 1
        else:
            self.steps_d += 1

    def step_g(self, scaler=None) -> None:
        """One generator step (through ``scaler.step`` if a GradScaler is given), then G's schedule."""
        self._step("G", scaler)

    def step_d(self, scaler=None) -> None:
        """One discriminator step, then D's schedule."""
        self._step("D", scaler)

    def step(self, which: str, scaler=None) -> None:
        """Step ``"G"`` or ``"D"``: composes with ``AdaptiveScheduler.next_update()``."""
        self._step(check_choice("which", which, ("G", "D")), scaler)

    def zero_grad(self, which: str = "both", set_to_none: bool = True) -> None:
        check_choice("which", which, ("both", "G", "D"))
        if which in ("both", "G"):
            self.g_optimizer.zero_grad(set_to_none=set_to_none)
        if which in ("both", "D"):
            self.d_optimizer.zero_grad(set_to_none=set_to_none)

    # ------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        return {
            "g_optimizer": self.g_optimizer.state_dict(), "d_optimizer": self.d_optimizer.state_dict(),
            "g_scheduler": None if self.g_scheduler is None else self.g_scheduler.state_dict(),
            "d_scheduler": None if self.d_scheduler is None else self.d_scheduler.state_dict(),
            "g_power": self.g_power, "d_power": self.d_power,
            "steps_g": self.steps_g, "steps_d": self.steps_d, "check_finite": self.check_finite,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_keys("state", state, ("g_optimizer", "d_optimizer", "g_scheduler", "d_scheduler",
                                          "g_power", "d_power", "steps_g", "steps_d"))
        for side in ("g", "d"):
            if (state[f"{side}_scheduler"] is None) != (getattr(self, f"{side}_scheduler") is None) \
                    and state[f"{side}_power"] is None:
                raise ValueError(f"Invalid state: {side.upper()} schedule presence differs and cannot be rebuilt "
                                 "(only float-power schedules are rebuilt from a state dict)")
        for side in ("g", "d"):
            power = state[f"{side}_power"]
            if power is not None:
                # Rebuild the polynomial schedule the state was saved with (before the
                # optimizer's state is loaded: building a scheduler resets the lr).
                opt = getattr(self, f"{side}_optimizer")
                setattr(self, f"{side}_power", float(power))
                setattr(self, f"{side}_scheduler", LambdaLR(opt, lambda n, p=float(power): 1.0 / float(n + 1) ** p))
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        for side in ("g", "d"):
            if state[f"{side}_scheduler"] is not None:
                getattr(self, f"{side}_scheduler").load_state_dict(state[f"{side}_scheduler"])
        self.steps_g, self.steps_d = int(state["steps_g"]), int(state["steps_d"])
        self.check_finite = bool(state.get("check_finite", self.check_finite))

    def __repr__(self) -> str:
        return f"TwoTimescale(lr_g={self.lr_g}, lr_d={self.lr_d}, steps_g={self.steps_g}, steps_d={self.steps_d})"
