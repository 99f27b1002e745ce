"""WeGAN: weighted generator loss (Pantazis, Paul, Fasoulakis & Stylianou, ICASSP 2020)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import _dist
from ._checks import check_choice, check_int, check_scaler, plain_tensor, require_finite, resolve_nonfinite
from ._component import Component
from .functional.losses import G_LOSSES, flatten_scores, g_loss_per_sample
from .functional.wegan import check_eta, effective_sample_size, wegan_weights, weight_variance

__all__ = ["WeGANStats", "WeightedGeneratorLoss"]


@dataclass(frozen=True)
class WeGANStats:
    """The weights of one WeGAN call, as tensors (no GPU sync until you read them)."""

    weights: torch.Tensor  #: the (local) normalised weights, shape (N,)
    effective_sample_size: torch.Tensor  #: Kish's 1 / sum w^2 (N at equilibrium)
    weight_variance: torch.Tensor  #: variance around 1/N (0 at equilibrium: the paper's monitor)


class WeightedGeneratorLoss(Component[WeGANStats]):
    r"""Generator loss with WeGAN's per-sample weights (Pantazis et al., Algorithm 1).

    .. math::
        \mathcal{L}_G = \sum_i w_i\,\ell_i, \qquad
        w_i = \frac{\eta^{1 - p_i}}{\sum_j \eta^{1 - p_j}}, \qquad p_i = \sigma(D(G(z_i))),

    with :math:`\ell_i` the per-sample base loss (``"ns"``: softplus(-d),
    ``"saturating"``: log(1 - sigma(d)), the loss of the paper's Algorithm 1,
    ``"hinge"``/``"wgan"``: -d). The weights are computed from detached scores:
    no gradient flows through them.

    Drop-in use, replacing ``loss_g = softplus(-D(G(z))).mean()``::

        wg = WeightedGeneratorLoss(eta=0.01, loss="ns")
        loss_g = wg(D(G(z)))
        loss_g.backward()

    ``eta = 1`` recovers the plain mean loss. After each call,
    :attr:`last_weights`, :attr:`effective_sample_size` (``1/sum w^2``, N at
    equilibrium) and :attr:`weight_variance` (0 at equilibrium: the paper's
    convergence monitor) describe the weights; step post-hooks receive them as
    :class:`WeGANStats`.

    Under ``torch.distributed`` the normaliser runs over the global batch and
    the local loss is scaled by the world size, so DDP's gradient averaging
    gives the gradient of the global weighted sum.

    Args:
        eta: in (0, 1].
        loss: the base loss, see above.
        scaler: a ``torch.amp.GradScaler`` (the contract shared by every
            component, docs/DISTRIBUTED.md): with one, non-finite scores
            propagate into the loss so that the scaler skips the step and backs
            off; you call ``scaler.scale(loss).backward()`` and
            ``scaler.update()`` as in a plain loop.
        nonfinite: ``None`` (default): ``"raise"`` without a scaler (a
            ``FloatingPointError`` naming D's outputs, one host sync per call),
            ``"propagate"`` with one. ``"raise"`` with a scaler is a ``ValueError``.
    """

    def __init__(self, eta: float = 0.01, loss: str = "ns", *, scaler: Any = None,
                 nonfinite: str | None = None) -> None:
        super().__init__()
        eta = check_eta(eta)
        loss = check_choice("loss", loss, G_LOSSES)
        scaler = check_scaler("scaler", scaler)
        self.nonfinite = resolve_nonfinite(nonfinite, scaler)
        self.eta, self.loss, self.scaler = eta, loss, scaler
        self.last_weights: torch.Tensor | None = None
        self.steps = 0

    def __call__(self, d_fake: torch.Tensor) -> torch.Tensor:
        """The weighted generator loss of D's outputs on a fake batch (Algorithm 1: weights, normalise, sum)."""
        d = plain_tensor(flatten_scores("d_fake", d_fake))
        if d.numel() == 0:
            raise ValueError("Invalid d_fake: empty batch (WeGAN weights need at least one sample)")
        if d.dtype in (torch.float16, torch.bfloat16):
            d = d.float()  # under autocast: weights and the weighted sum in float32
        scores = d.detach()
        if self.nonfinite == "raise":
            require_finite("d_fake (D's outputs on G(z))", scores)
        # Algorithm 1: w_i = eta^(1 - D(G(z_i))), normalised over the (global) batch; no gradient through them.
        weights = wegan_weights(torch.sigmoid(scores), self.eta, check_values=False,
                                logsumexp=_dist.global_logsumexp if _dist.active() else None)
        value = (weights * g_loss_per_sample(d, self.loss)).sum()
        if _dist.active():
            value = value * _dist.world_size()  # DDP averages gradients over ranks; the global sum needs their sum
        self.last_weights, self.steps = weights, self.steps + 1
        if self._step_post_hooks:  # the statistics cost operators of their own: only for a hook that reads them
            self._call_step_post_hooks(WeGANStats(weights=weights,
                                                  effective_sample_size=effective_sample_size(weights),
                                                  weight_variance=weight_variance(weights)))
        return value

    @property
    def effective_sample_size(self) -> torch.Tensor | None:
        """Kish's ``1/sum w_i^2`` of the last (local) weights."""
        return None if self.last_weights is None else effective_sample_size(self.last_weights)

    @property
    def weight_variance(self) -> torch.Tensor | None:
        """Variance of the last weights around ``1/N``."""
        return None if self.last_weights is None else weight_variance(self.last_weights)

    def state_dict(self) -> dict[str, Any]:
        return {**self._state_header(), "eta": self.eta, "loss": self.loss, "nonfinite": self.nonfinite,
                "steps": self.steps,
                "last_weights": None if self.last_weights is None else self.last_weights.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; every field is checked first, so a bad state changes nothing."""
        self._check_state(state, ("eta", "loss", "nonfinite", "steps", "last_weights"))
        eta = check_eta(state["eta"])
        loss = check_choice("state['loss']", state["loss"], G_LOSSES)
        nonfinite = check_choice("state['nonfinite']", state["nonfinite"], ("raise", "propagate"))
        steps = check_int("state['steps']", state["steps"], low=0)
        weights = state["last_weights"]
        if weights is not None:
            if not isinstance(weights, torch.Tensor) or not weights.is_floating_point() or weights.dim() != 1 \
                    or weights.numel() == 0:
                raise ValueError("Invalid state['last_weights']: expected None or a non-empty 1-D float tensor")
            w = weights.detach().double()
            # Locally the weights sum to 1; under DDP to this rank's share of 1, so: in [0, 1].
            if not (bool(torch.isfinite(w).all()) and bool((w >= 0).all()) and float(w.sum()) <= 1 + 1e-4):
                raise ValueError("Invalid state['last_weights']: weights must be finite, >= 0, summing to at most 1")
        self.eta, self.loss, self.steps = eta, loss, steps
        # With a GradScaler attached, non-finite values must reach it, whatever the state says.
        self.nonfinite = "propagate" if self.scaler is not None else nonfinite
        self.last_weights = None if weights is None else weights.detach().clone()

    def __repr__(self) -> str:
        return f"WeightedGeneratorLoss(eta={self.eta}, loss={self.loss!r})"
