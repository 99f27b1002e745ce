"""Adaptive D/G update choice by loss change ratios (Ouyang & Agam, 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch

from . import _dist
from ._checks import check_int, check_real, require_finite
from ._component import Component
from .functional.adaptive import RATIO_EPS, TIE_RTOL, choose_update, loss_change_ratio

__all__ = ["AdaptiveScheduler", "SchedulerStats"]

Network = Literal["D", "G"]


@dataclass(frozen=True)
class SchedulerStats:
    """One :meth:`AdaptiveScheduler.observe` (host floats: the losses were read to decide, nothing syncs again)."""

    choice: Optional[str]  #: the network updated in the iteration just observed ("D", "G", or None)
    ratio_d: float  #: r_d after this observation
    ratio_g: float  #: r_g after this observation
    loss_d: float  #: the (global mean) D loss observed
    loss_g: float  #: the (global mean) G loss observed
    iteration: int  #: iterations observed so far


_FLOAT64_EPS = float(torch.finfo(torch.float64).eps)


def _as_float(name: str, value: Any) -> tuple[float, float]:
    """The loss as a float, and the relative precision it was computed in (its dtype's eps)."""
    eps = _FLOAT64_EPS
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"Invalid {name}: expected a scalar loss, got shape {tuple(value.shape)}")
        if value.is_floating_point():
            eps = float(torch.finfo(value.dtype).eps)
        value = value.detach().item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name}: expected a float or a 0-d tensor, got {type(value).__name__}")
    value = float(value)
    require_finite(name, value)
    return value, eps


class AdaptiveScheduler(Component[SchedulerStats]):
    r"""Chooses each iteration whether to update D or G (Ouyang & Agam, Algorithm 1).

    .. math::
        r_g = \left|\frac{L_g^c - L_g^p}{L_g^p}\right|,\quad
        r_d = \left|\frac{L_d^c - L_d^p}{L_d^p}\right|,\qquad
        \text{update D iff } r_d > \lambda\, r_g \text{ else G}.

    Both ratios start at 1, so with :math:`\lambda = 1` the first choice is G.
    The first :meth:`observe` sets the previous losses to the current ones (so
    both ratios become 0), as Algorithm 1 does. A larger :math:`\lambda` trains
    G more often.

    Use::

        sched = AdaptiveScheduler(lam=1.0)
        for x_real in loader:
            if sched.next_update() == "D":
                ...  # D step; loss_g from D's outputs on the fake batch, no extra forward
            else:
                ...  # G step; loss_d needs one no-grad forward of D on x_real
            sched.observe(loss_g=loss_g, loss_d=loss_d)

    The idle network's loss costs at most one no-grad forward: on a D step the
    fake batch's outputs ``d_fake`` are already there, so
    ``loss_g = g_loss(d_fake)``; on a G step ``d_fake = D(G(z))`` is there and
    ``loss_d = d_loss_real(D(x_real)) + d_loss_fake(d_fake)`` needs only
    ``D(x_real)`` under ``torch.no_grad()``. (Paper eq. 3: the D loss is the
    full loss, real plus fake.)

    :meth:`next_update` is idempotent within an iteration: repeated calls
    before :meth:`observe` return the same choice and count it once.

    Args:
        lam: the coefficient :math:`\lambda > 0` (paper default 1).
        max_consecutive: optional starvation guard: after this many consecutive
            updates of one network the other one is updated. ``None`` (default)
            follows the paper exactly.
        eps: floor on :math:`|L^p|` in the ratio (WGAN losses cross zero), see
            :func:`gan_optim.functional.loss_change_ratio`.
        tie_rtol: ratios within this relative tolerance are a tie, and a tie
            goes to G (see :func:`gan_optim.functional.choose_update`): equal
            ratios reached by different float operations are not decided by
            rounding. The losses' own precision is added to the tolerance: it
            is read from the loss tensors' dtype (float64 for Python floats),
            so float32 or bfloat16 losses are compared as coarsely as they
            were computed.

    Under ``torch.distributed``, :meth:`observe` averages the losses over ranks
    first, so every rank makes the same choice.
    """

    def __init__(self, lam: float = 1.0, *, max_consecutive: int | None = None, eps: float = RATIO_EPS,
                 tie_rtol: float = TIE_RTOL) -> None:
        super().__init__()
        self.lam = check_real("lam", lam, low=0.0, low_open=True)
        self.max_consecutive = None if max_consecutive is None else check_int("max_consecutive", max_consecutive,
                                                                              low=1)
        self.eps = check_real("eps", eps, low=0.0, low_open=True)
        self.tie_rtol = check_real("tie_rtol", tie_rtol, low=0.0, high=1.0, high_open=True)
        self.ratio_d = 1.0
        self.ratio_g = 1.0
        self.prev_loss_d: float | None = None
        self.prev_loss_g: float | None = None
        self.counts = {"D": 0, "G": 0}
        self.last_choice: Network | None = None
        self.run_length = 0
        self.iteration = 0
        self._pending: Network | None = None
        self.last: SchedulerStats | None = None
        #: Relative precision of the losses behind the current ratios (their dtype's eps; float64 for floats).
        self.loss_eps = 0.0
        self._observed_eps = 0.0

    def next_update(self) -> Network:
        """``"D"`` or ``"G"``: which network to update in this iteration (Algorithm 1, line 4)."""
        if self._pending is None:
            choice: Network = choose_update(self.ratio_d, self.ratio_g, self.lam, tie_rtol=self.tie_rtol,
                                            loss_eps=self.loss_eps)  # "D" iff r_d > lam * r_g
            if (self.max_consecutive is not None and choice == self.last_choice
                    and self.run_length >= self.max_consecutive):
                choice = "G" if choice == "D" else "D"  # the optional starvation guard
            self.run_length = self.run_length + 1 if choice == self.last_choice else 1
            self.last_choice = choice
            self.counts[choice] += 1
            self._pending = choice
        return self._pending

    def observe(self, *, loss_g: float | torch.Tensor, loss_d: float | torch.Tensor) -> None:
        """Record this iteration's generator and discriminator losses (paper eq. 3) and update the ratios."""
        current_g, eps_g = _as_float("loss_g", loss_g)
        current_d, eps_d = _as_float("loss_d", loss_d)
        current_g, current_d = _dist.mean_floats(current_g, current_d)  # every rank makes the same choice
        # Algorithm 1, lines 13-17: L^p = L^c on the first iteration; r = |(L^c - L^p) / L^p| (eq. 4); L^p = L^c.
        prev_g = current_g if self.prev_loss_g is None else self.prev_loss_g
        prev_d = current_d if self.prev_loss_d is None else self.prev_loss_d
        ratio_g = loss_change_ratio(current_g, prev_g, eps=self.eps)
        ratio_d = loss_change_ratio(current_d, prev_d, eps=self.eps)
        # Commit (nothing above changed the scheduler), then the hooks.
        self.ratio_g, self.ratio_d = ratio_g, ratio_d
        self.prev_loss_g, self.prev_loss_d = current_g, current_d
        # A ratio mixes this observation and the previous one: it is as precise as the coarser.
        self.loss_eps, self._observed_eps = max(eps_g, eps_d, self._observed_eps), max(eps_g, eps_d)
        self.iteration += 1
        self.last = SchedulerStats(choice=self._pending, ratio_d=self.ratio_d, ratio_g=self.ratio_g,
                                   loss_d=current_d, loss_g=current_g, iteration=self.iteration)
        self._pending = None
        self._call_step_post_hooks(self.last)

    _KEYS = ("lam", "max_consecutive", "eps", "tie_rtol", "ratio_d", "ratio_g", "prev_loss_d", "prev_loss_g",
             "counts", "last_choice", "run_length", "iteration", "pending", "last", "loss_eps", "observed_eps")

    def state_dict(self) -> dict[str, Any]:
        return {**self._state_header(),
                "lam": self.lam, "max_consecutive": self.max_consecutive, "eps": self.eps, "tie_rtol": self.tie_rtol,
                "ratio_d": self.ratio_d, "ratio_g": self.ratio_g, "prev_loss_d": self.prev_loss_d,
                "prev_loss_g": self.prev_loss_g, "counts": dict(self.counts), "last_choice": self.last_choice,
                "run_length": self.run_length, "iteration": self.iteration, "pending": self._pending,
                "last": None if self.last is None else dict(vars(self.last)),
                "loss_eps": self.loss_eps, "observed_eps": self._observed_eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; every field is checked first, so a bad state changes nothing."""
        self._check_state(state, self._KEYS)
        checked = dict(state)
        checked["lam"] = check_real("state['lam']", state["lam"], low=0.0, low_open=True)
        checked["eps"] = check_real("state['eps']", state["eps"], low=0.0, low_open=True)
        checked["tie_rtol"] = check_real("state['tie_rtol']", state["tie_rtol"], low=0.0, high=1.0, high_open=True)
        mc = state["max_consecutive"]
        checked["max_consecutive"] = None if mc is None else check_int("state['max_consecutive']", mc, low=1)
        for k in ("ratio_d", "ratio_g"):
            checked[k] = check_real(f"state[{k!r}]", state[k], low=0.0)
        for k in ("prev_loss_d", "prev_loss_g"):
            checked[k] = None if state[k] is None else check_real(f"state[{k!r}]", state[k])
        if (checked["prev_loss_d"] is None) != (checked["prev_loss_g"] is None):
            raise ValueError("Invalid state: prev_loss_d and prev_loss_g must both be set or both be None")
        counts = state["counts"]
        if not isinstance(counts, dict) or set(counts) != {"D", "G"}:
            raise ValueError(f"Invalid state['counts']: expected {{'D': int, 'G': int}}, got {counts!r}")
        checked["counts"] = {k: check_int(f"state['counts'][{k!r}]", counts[k], low=0) for k in ("D", "G")}
        for k in ("last_choice", "pending"):
            if state[k] not in (None, "D", "G"):
                raise ValueError(f"Invalid state[{k!r}]: {state[k]!r} (expected None, 'D' or 'G')")
        for k in ("loss_eps", "observed_eps"):
            checked[k] = check_real(f"state[{k!r}]", state[k], low=0.0, high=1.0, high_open=True)
        checked["run_length"] = check_int("state['run_length']", state["run_length"], low=0)
        checked["iteration"] = check_int("state['iteration']", state["iteration"], low=0)
        last = state["last"]
        if last is not None:
            if not isinstance(last, dict) or set(last) != {f.name for f in SchedulerStats.__dataclass_fields__.values()}:
                raise ValueError("Invalid state['last']: expected None or the fields of SchedulerStats")
            try:
                checked["last"] = SchedulerStats(**last)
            except TypeError as err:  # pragma: no cover - guarded by the key check
                raise ValueError(f"Invalid state['last']: {err}") from None
        self._apply(checked)

    def _apply(self, state: dict[str, Any]) -> None:
        self.lam, self.eps, self.tie_rtol = state["lam"], state["eps"], state["tie_rtol"]
        self.max_consecutive = state["max_consecutive"]
        self.ratio_d, self.ratio_g = float(state["ratio_d"]), float(state["ratio_g"])
        self.prev_loss_d, self.prev_loss_g = state["prev_loss_d"], state["prev_loss_g"]
        self.counts = dict(state["counts"])
        self.last_choice, self.run_length = state["last_choice"], state["run_length"]
        self.iteration, self._pending = state["iteration"], state["pending"]
        self.loss_eps, self._observed_eps = float(state["loss_eps"]), float(state["observed_eps"])
        last = state["last"]
        self.last = SchedulerStats(**last) if isinstance(last, dict) else last

    def __repr__(self) -> str:
        return (f"AdaptiveScheduler(lam={self.lam}, max_consecutive={self.max_consecutive}, "
                f"counts={self.counts})")
