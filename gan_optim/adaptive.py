"""Adaptive D/G update choice by loss change ratios (Ouyang & Agam, 2021)."""

from __future__ import annotations

from typing import Any

import torch

from . import _dist
from ._checks import check_int, check_real, check_state_keys, require_finite
from .functional.adaptive import RATIO_EPS, TIE_RTOL, choose_update, loss_change_ratio

__all__ = ["AdaptiveScheduler"]


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"Invalid {name}: expected a scalar loss, got shape {tuple(value.shape)}")
        value = value.detach().item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name}: expected a float or a 0-d tensor, got {type(value).__name__}")
    value = float(value)
    require_finite(name, value)
    return value


class AdaptiveScheduler:
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
            rounding.

    Under ``torch.distributed``, :meth:`observe` averages the losses over ranks
    first, so every rank makes the same choice.
    """

    def __init__(self, lam: float = 1.0, *, max_consecutive: int | None = None, eps: float = RATIO_EPS,
                 tie_rtol: float = TIE_RTOL) -> None:
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
        self.last_choice: str | None = None
        self.run_length = 0
        self.iteration = 0
        self._pending: str | None = None

    def next_update(self) -> str:
        """``"D"`` or ``"G"``: which network to update in this iteration."""
        if self._pending is None:
            choice = choose_update(self.ratio_d, self.ratio_g, self.lam, tie_rtol=self.tie_rtol)
            if (self.max_consecutive is not None and choice == self.last_choice
                    and self.run_length >= self.max_consecutive):
                choice = "G" if choice == "D" else "D"
            self.run_length = self.run_length + 1 if choice == self.last_choice else 1
            self.last_choice = choice
            self.counts[choice] += 1
            self._pending = choice
        return self._pending

    def observe(self, *, loss_g: float | torch.Tensor, loss_d: float | torch.Tensor) -> None:
        """Record this iteration's generator and discriminator losses (paper eq. 3) and update the ratios."""
        current_g = _as_float("loss_g", loss_g)
        current_d = _as_float("loss_d", loss_d)
        if _dist.active():
            current_g, current_d = (float(v) for v in _dist.mean_scalars(torch.tensor(current_g, dtype=torch.float64),
                                                                         torch.tensor(current_d, dtype=torch.float64)))
        if self.prev_loss_g is None or self.prev_loss_d is None:
            self.prev_loss_g, self.prev_loss_d = current_g, current_d
        self.ratio_g = loss_change_ratio(current_g, self.prev_loss_g, eps=self.eps)
        self.ratio_d = loss_change_ratio(current_d, self.prev_loss_d, eps=self.eps)
        self.prev_loss_g, self.prev_loss_d = current_g, current_d
        self.iteration += 1
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "max_consecutive": self.max_consecutive, "eps": self.eps, "tie_rtol": self.tie_rtol,
                "ratio_d": self.ratio_d, "ratio_g": self.ratio_g, "prev_loss_d": self.prev_loss_d,
                "prev_loss_g": self.prev_loss_g, "counts": dict(self.counts), "last_choice": self.last_choice,
                "run_length": self.run_length, "iteration": self.iteration, "pending": self._pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("lam", "max_consecutive", "eps", "ratio_d", "ratio_g", "prev_loss_d", "prev_loss_g", "counts",
                "last_choice", "run_length", "iteration", "pending")
        check_state_keys("state", state, keys)
        lam = check_real("lam", state["lam"], low=0.0, low_open=True)
        eps = check_real("eps", state["eps"], low=0.0, low_open=True)
        mc = state["max_consecutive"]
        mc = None if mc is None else check_int("max_consecutive", mc, low=1)
        tie_rtol = check_real("tie_rtol", state.get("tie_rtol", TIE_RTOL), low=0.0, high=1.0, high_open=True)
        self.lam, self.eps, self.max_consecutive, self.tie_rtol = lam, eps, mc, tie_rtol
        self.ratio_d, self.ratio_g = float(state["ratio_d"]), float(state["ratio_g"])
        self.prev_loss_d, self.prev_loss_g = state["prev_loss_d"], state["prev_loss_g"]
        self.counts = {"D": int(state["counts"]["D"]), "G": int(state["counts"]["G"])}
        self.last_choice, self.run_length = state["last_choice"], int(state["run_length"])
        self.iteration, self._pending = int(state["iteration"]), state["pending"]

    def __repr__(self) -> str:
        return (f"AdaptiveScheduler(lam={self.lam}, max_consecutive={self.max_consecutive}, "
                f"counts={self.counts})")
