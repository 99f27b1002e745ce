"""Two time-scale update rule (Heusel et al., NeurIPS 2017)."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Optional, Union

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from ._amp import all_finite, grads, scaler_step
from ._checks import check_choice, check_int, check_real, check_scaler
from ._component import Component
from ._transaction import Transaction
from .functional.ttur import PolynomialDecay, two_timescale_violations

__all__ = ["TTURStats", "TwoTimescale", "TwoTimescaleWarning"]

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


@dataclass(frozen=True)
class TTURStats:
    """One optimizer step taken by :class:`TwoTimescale` (host values: reading them never syncs)."""

    network: str  #: "G" or "D"
    lr: float  #: the learning rate the step used (first parameter group)
    steps: int  #: that network's step count after the step


def _check_source(name: str, source: Any) -> None:
    if isinstance(source, (torch.optim.Optimizer, torch.nn.Module)):
        return
    if not isinstance(source, Iterable) or isinstance(source, (str, bytes, torch.Tensor)):
        raise TypeError(f"Invalid {name}: expected an optimizer, a module or an iterable of parameters, "
                        f"got {type(source).__name__}")


def _build_optimizer(name: str, source: Any, lr: float | None, default_lr: float, optimizer_cls: type,
                     kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    """A new optimizer over a module's or a list's parameters; an optimizer given is returned as it is."""
    if isinstance(source, torch.optim.Optimizer):
        return source
    if isinstance(source, torch.nn.Module):
        params = [p for p in source.parameters() if p.requires_grad]
    else:
        params = list(source)
    if not params:
        raise ValueError(f"Invalid {name}: no parameters to optimise")
    return optimizer_cls(params, lr=default_lr if lr is None else lr, **kwargs)


def _check_schedule(name: str, schedule: Schedule, source: Any) -> None:
    if schedule is None or callable(schedule) and not isinstance(schedule, LRScheduler):
        return
    if isinstance(schedule, LRScheduler):
        if schedule.optimizer is not source:
            raise ValueError(f"Invalid {name}: the scheduler is built on another optimizer")
        return
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        check_real(name, schedule, low=0.0)
        return
    raise TypeError(f"Invalid {name}: expected None, a float power, a callable or an LRScheduler, "
                    f"got {type(schedule).__name__}")


def _check_optimizer_state(name: str, optimizer: torch.optim.Optimizer, state: Any) -> None:
    """The checks ``Optimizer.load_state_dict`` makes before it changes anything, made up front."""
    if not isinstance(state, dict) or not {"state", "param_groups"} <= set(state):
        raise ValueError(f"Invalid state[{name!r}]: expected an optimizer state dict")
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise ValueError(f"Invalid state[{name!r}]: {len(groups) if isinstance(groups, list) else groups!r} "
                         f"parameter groups, the optimizer has {len(optimizer.param_groups)}")
    for saved, group in zip(groups, optimizer.param_groups):
        if not isinstance(saved, dict) or len(saved.get("params", ())) != len(group["params"]):
            raise ValueError(f"Invalid state[{name!r}]: a parameter group's size differs from the optimizer's")
    if not isinstance(state["state"], dict):
        raise ValueError(f"Invalid state[{name!r}]['state']: expected a dict")


class TwoTimescale(Component[TTURStats]):
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
        tt = TwoTimescale(opt_g, opt_d)                  # wrap existing ones, rates unchanged
        tt = TwoTimescale(G, D, g_schedule=0.75, d_schedule=0.6)  # a(n) ~ n^-0.75, b(n) ~ n^-0.6

    What it changes in optimizers it wraps: nothing, unless you ask. ``lr_g`` /
    ``lr_d`` given with an optimizer set that optimizer's ``lr`` and
    ``initial_lr`` in every parameter group (with a warning); a schedule built
    here (a float power or a callable) is a ``LambdaLR``, which records
    ``initial_lr`` in the groups as every PyTorch scheduler does. Nothing is
    changed before every argument has been accepted.

    Schedules, per side: ``None`` (constant rate), a float power ``p``
    (``lr / (n+1)^p``, n that network's own update count, see
    :class:`gan_optim.functional.PolynomialDecay`), a callable ``n -> factor``
    (as ``LambdaLR``), or an ``LRScheduler`` already built on that optimizer.
    When schedules are given, a :class:`TwoTimescaleWarning` names any condition
    of (A2) that known schedules break.

    Composes with :class:`~gan_optim.AdaptiveScheduler`:
    ``tt.step(sched.next_update())``. A wrapper that steps D's optimizer itself
    (such as :class:`~gan_optim.FreeAdvDiscriminator`) calls :meth:`record_step`
    after each step it takes, so the counters and schedules follow.

    Mixed precision (the contract shared by every component, docs/DISTRIBUTED.md):
    pass the ``GradScaler`` here (``scaler=``); every step then goes through
    ``scaler.step``, and a step the scaler skips (non-finite gradients) advances
    no counter and no schedule. The component never calls ``scaler.update()``:
    you do, as in a plain loop.

    Under PyTorch Lightning, build it on ``self.optimizers()`` and let
    :class:`gan_optim.adapters.lightning.GanOptimCheckpoints` save and
    restore it: loading a state dict through Lightning's optimizer wrappers
    otherwise leaves the wrapper's learning rates detached from the optimizer
    Lightning steps (the mixin reconnects them).

    Args:
        check_finite: raise ``FloatingPointError`` (and skip the step) when a
            gradient is non-finite. Off by default: the check costs a host sync
            per step, and a plain optimizer does not make it. Not allowed with a
            ``scaler`` (which skips such steps itself).
    """

    def __init__(self, generator: Any, discriminator: Any, *, lr_g: float | None = None,
                 lr_d: float | None = None, optimizer: type = torch.optim.Adam, g_schedule: Schedule = None,
                 d_schedule: Schedule = None, check_finite: bool = False, scaler: Any = None,
                 **optimizer_kwargs: Any) -> None:
        super().__init__()
        # Every argument is checked before anything given is touched.
        if lr_g is not None:
            lr_g = check_real("lr_g", lr_g, low=0.0, low_open=True)
        if lr_d is not None:
            lr_d = check_real("lr_d", lr_d, low=0.0, low_open=True)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise TypeError(f"Invalid optimizer: expected a torch.optim.Optimizer class, got {optimizer!r}")
        _check_source("generator", generator)
        _check_source("discriminator", discriminator)
        if generator is discriminator:
            raise ValueError("Invalid discriminator: it is the same object as the generator")
        wraps = [isinstance(x, torch.optim.Optimizer) for x in (generator, discriminator)]
        if all(wraps) and optimizer_kwargs:
            raise ValueError(f"Invalid optimizer_kwargs: {sorted(optimizer_kwargs)} apply only when building "
                             "optimizers, and both generator and discriminator are optimizers already")
        _check_schedule("g_schedule", g_schedule, generator)
        _check_schedule("d_schedule", d_schedule, discriminator)
        if not isinstance(check_finite, bool):
            raise TypeError(f"Invalid check_finite: expected a bool, got {type(check_finite).__name__}")
        self.scaler = check_scaler("scaler", scaler)
        if self.scaler is not None and check_finite:
            raise ValueError("Invalid check_finite: True with a scaler (the scaler skips non-finite steps itself)")
        build_kwargs = dict(optimizer_kwargs)
        if optimizer is torch.optim.Adam:
            build_kwargs.setdefault("betas", (0.5, 0.999))
        # The optimizers built here check their own arguments; only then are the given ones touched,
        # and a schedule that raises while it is built puts their parameter groups back.
        self.g_optimizer = _build_optimizer("generator", generator, lr_g, DEFAULT_LR_G, optimizer, build_kwargs)
        self.d_optimizer = _build_optimizer("discriminator", discriminator, lr_d, DEFAULT_LR_D, optimizer,
                                            build_kwargs)
        changed = []
        with Transaction() as undo:
            for side, wrapped, opt, lr in (("generator", wraps[0], self.g_optimizer, lr_g),
                                           ("discriminator", wraps[1], self.d_optimizer, lr_d)):
                if wrapped:
                    undo.keep_param_groups(opt)
                    if lr is not None:
                        changed.append(side)
                        for group in opt.param_groups:
                            group["lr"] = group["initial_lr"] = lr
            self.g_power, self.g_scheduler = self._make_schedule(g_schedule, self.g_optimizer)
            self.d_power, self.d_scheduler = self._make_schedule(d_schedule, self.d_optimizer)
        if changed:
            warnings.warn(f"TwoTimescale set lr and initial_lr of the wrapped {' and '.join(changed)} optimizer "
                          "in every parameter group", UserWarning, stacklevel=2)
        self.check_finite = check_finite
        self.steps_g = 0
        self.steps_d = 0
        self.last: TTURStats | None = None
        if g_schedule is not None or d_schedule is not None:
            self._warn_conditions(g_schedule, d_schedule)

    @staticmethod
    def _make_schedule(schedule: Schedule, optimizer: torch.optim.Optimizer,
                       ) -> tuple[float | None, Optional[LRScheduler]]:
        if schedule is None:
            return None, None
        if isinstance(schedule, LRScheduler):
            return None, schedule
        if isinstance(schedule, (int, float)):
            decay = PolynomialDecay(schedule)
            return decay.power, LambdaLR(optimizer, decay)
        return None, LambdaLR(optimizer, schedule)

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
        return float(self.g_optimizer.param_groups[0]["lr"])

    @property
    def lr_d(self) -> float:
        return float(self.d_optimizer.param_groups[0]["lr"])

    def _optimizer(self, which: str) -> torch.optim.Optimizer:
        return self.g_optimizer if which == "G" else self.d_optimizer

    def _step(self, which: Literal["G", "D"]) -> bool:
        """theta <- theta - a(n) h~ (G) or w <- w + b(n) g~ (D): the optimizer's step at this network's own rate."""
        opt = self._optimizer(which)
        if self.scaler is not None:
            if not scaler_step(self.scaler, opt):
                return False  # the scaler skipped it (non-finite gradients): n does not advance
        else:
            if self.check_finite and not all_finite(grads(opt)):
                raise FloatingPointError(f"TwoTimescale: non-finite {which} gradient; step skipped")
            opt.step()
        self.record_step(which)
        return True

    def record_step(self, which: Literal["G", "D"]) -> None:
        """Count a step of ``which``'s optimizer taken outside this object and advance its schedule.

        For wrappers that step D's optimizer themselves
        (:class:`~gan_optim.FreeAdvDiscriminator`); :meth:`step_g` / :meth:`step_d` call it.
        """
        which = check_choice("which", which, ("G", "D"))  # type: ignore[assignment]
        sched = self.g_scheduler if which == "G" else self.d_scheduler
        if sched is not None:
            sched.step()  # n -> n + 1: a(n) or b(n) for the next step
        if which == "G":
            self.steps_g += 1
        else:
            self.steps_d += 1
        stats = TTURStats(network=which, lr=self.lr_g if which == "G" else self.lr_d,
                          steps=self.steps_g if which == "G" else self.steps_d)
        self.last = stats
        self._call_step_post_hooks(stats)

    def _undo_record_step_d(self) -> Callable[[], None]:
        """What puts back D's counter, schedule and rates as they are now (for a wrapper's rollback)."""
        steps_d, last = self.steps_d, self.last
        sched = None if self.d_scheduler is None else self.d_scheduler.state_dict()
        lrs = [g["lr"] for g in self.d_optimizer.param_groups]

        def put_back() -> None:
            self.steps_d, self.last = steps_d, last
            if sched is not None and self.d_scheduler is not None:
                self.d_scheduler.load_state_dict(sched)
            for group, lr in zip(self.d_optimizer.param_groups, lrs):
                group["lr"] = lr
        return put_back

    def step_g(self) -> bool:
        """One generator step (through the scaler if there is one), then G's schedule; False if the scaler skipped it."""
        return self._step("G")

    def step_d(self) -> bool:
        """One discriminator step, then D's schedule; False if the scaler skipped it."""
        return self._step("D")

    def step(self, which: Literal["G", "D"]) -> bool:
        """Step ``"G"`` or ``"D"``: composes with ``AdaptiveScheduler.next_update()``."""
        check_choice("which", which, ("G", "D"))
        return self._step(which)

    def zero_grad(self, which: Literal["both", "G", "D"] = "both", set_to_none: bool = True) -> None:
        check_choice("which", which, ("both", "G", "D"))
        if which in ("both", "G"):
            self.g_optimizer.zero_grad(set_to_none=set_to_none)
        if which in ("both", "D"):
            self.d_optimizer.zero_grad(set_to_none=set_to_none)

    # ------------------------------------------------------------ state dicts
    def state_dict(self, *, optimizers: bool = True) -> dict[str, Any]:
        """The state; ``optimizers=False`` leaves the two optimizers' states out (``None``) for code that
        checkpoints them itself (BigGAN-PyTorch does), so they are not saved twice."""
        return {
            **self._state_header(),
            "g_optimizer": self.g_optimizer.state_dict() if optimizers else None,
            "d_optimizer": self.d_optimizer.state_dict() if optimizers else None,
            "g_scheduler": None if self.g_scheduler is None else self.g_scheduler.state_dict(),
            "d_scheduler": None if self.d_scheduler is None else self.d_scheduler.state_dict(),
            "g_power": self.g_power, "d_power": self.d_power,
            "steps_g": self.steps_g, "steps_d": self.steps_d, "check_finite": self.check_finite,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; every field is checked first, so a bad state changes nothing.

        An optimizer state of ``None`` (``state_dict(optimizers=False)``) leaves that optimizer's
        state as it is (restored by whoever saved it); its learning rate is set from the schedule.
        """
        self._check_state(state, ("g_optimizer", "d_optimizer", "g_scheduler", "d_scheduler", "g_power",
                                  "d_power", "steps_g", "steps_d", "check_finite"))
        powers: dict[str, float | None] = {}
        for side in ("g", "d"):
            if state[f"{side}_optimizer"] is not None:
                _check_optimizer_state(f"{side}_optimizer", getattr(self, f"{side}_optimizer"),
                                       state[f"{side}_optimizer"])
            power = state[f"{side}_power"]
            powers[side] = None if power is None else check_real(f"state['{side}_power']", power, low=0.0)
            saved = state[f"{side}_scheduler"]
            if saved is not None and not isinstance(saved, dict):
                raise ValueError(f"Invalid state['{side}_scheduler']: expected a dict or None")
            if (saved is None) != (getattr(self, f"{side}_scheduler") is None) and powers[side] is None:
                raise ValueError(f"Invalid state: {side.upper()} schedule presence differs and cannot be rebuilt "
                                 "(only float-power schedules are rebuilt from a state dict)")
            if saved is None and powers[side] is not None:
                raise ValueError(f"Invalid state['{side}_scheduler']: None although {side}_power is set")
        steps = {k: check_int(f"state['{k}']", state[k], low=0) for k in ("steps_g", "steps_d")}
        check_finite = state["check_finite"]
        if not isinstance(check_finite, bool):
            raise TypeError(f"Invalid state['check_finite']: expected a bool, got {type(check_finite).__name__}")
        if check_finite and self.scaler is not None:
            raise ValueError("Invalid state['check_finite']: True, and this TwoTimescale has a scaler")
        # Everything checkable is accepted: apply. A scheduler's own state is checked only by its
        # load_state_dict, so whatever raises there puts the previous state back.
        previous = copy.deepcopy(self.state_dict())
        previous_schedules = (self.g_power, self.g_scheduler, self.d_power, self.d_scheduler)

        def put_back() -> None:
            self.g_power, self.g_scheduler, self.d_power, self.d_scheduler = previous_schedules
            self._apply(previous, {"g": None, "d": None})
        try:
            with Transaction() as undo:
                undo.on_error(put_back)
                self._apply(state, powers)
        except Exception as err:
            raise ValueError(f"Invalid state: {type(err).__name__}: {err}") from None
        self.steps_g, self.steps_d = steps["steps_g"], steps["steps_d"]
        self.check_finite = check_finite

    def _apply(self, state: dict[str, Any], powers: dict[str, float | None]) -> None:
        for side in ("g", "d"):
            opt = getattr(self, f"{side}_optimizer")
            power = powers[side]
            if power is not None:
                # Rebuild the polynomial schedule the state was saved with (before the
                # optimizer's state is loaded: building a scheduler resets the lr).
                decay = PolynomialDecay(power)
                setattr(self, f"{side}_power", decay.power)
                setattr(self, f"{side}_scheduler", LambdaLR(opt, decay))
            if state[f"{side}_optimizer"] is not None:
                opt.load_state_dict(state[f"{side}_optimizer"])
            if state[f"{side}_scheduler"] is not None:
                sched = getattr(self, f"{side}_scheduler")
                sched.load_state_dict(state[f"{side}_scheduler"])
                if state[f"{side}_optimizer"] is None:
                    for group, lr in zip(opt.param_groups, sched.get_last_lr()):
                        group["lr"] = lr

    def __repr__(self) -> str:
        return f"TwoTimescale(lr_g={self.lr_g}, lr_d={self.lr_d}, steps_g={self.steps_g}, steps_d={self.steps_d})"
