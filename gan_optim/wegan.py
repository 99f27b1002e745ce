"""WeGAN: weighted generator loss (Pantazis, Paul, Fasoulakis & Stylianou, ICASSP 2020)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from . import _dist
from ._checks import check_choice, check_state_keys, require_finite
from .functional.losses import G_LOSSES, flatten_scores, g_loss_per_sample
from .functional.wegan import check_eta, effective_sample_size, wegan_logits, weight_variance

__all__ = ["WeightedGeneratorLoss"]


class WeightedGeneratorLoss:
    r"""Generator loss with WeGAN's per-sample weights (Pantazis et al., Algorithm 1).

    .. math::
        \mathcal{L}_G = \sum_i w_i\,\ell_i, \qquad
        w_i = \frac{\eta^{1 - p_i}}{\sum_j \eta^{1 - p_j}}, \qquad p_i = \sigma(D(G(z_i))),

    with :math:`\ell_i` the per-sample base loss (``"ns"``: softplus(-d),
    ``"saturating"``: log(1 - sigma(d)), ``"hinge"``/``"wgan"``: -d). The
    weights are computed from detached scores: no gradient flows through them.

    Drop-in use, replacing ``loss_g = softplus(-D(G(z))).mean()``::

        wg = WeightedGeneratorLoss(eta=0.01, loss="ns")
        loss_g = wg(D(G(z)))
        loss_g.backward()

    ``eta = 1`` recovers the plain mean loss. After each call,
    :attr:`last_weights`, :attr:`effective_sample_size` (``1/sum w^2``, N at
    equilibrium) and :attr:`weight_variance` (0 at equilibrium: the paper's
    convergence monitor) describe the weights.

    Under ``torch.distributed`` the normaliser runs over the global batch and
    the local loss is scaled by the world size, so DDP's gradient averaging
    gives the gradient of the global weighted sum.
    """

    def __init__(self, eta: float = 0.01, loss: str = "ns") -> None:
        self.eta = check_eta(eta)
        self.loss = check_choice("loss", loss, G_LOSSES)
        self.last_weights: torch.Tensor | None = None
        self.steps = 0
        #: Optional callback ``fn(loss_module)`` after every call (logging).
        self.callback: Callable[["WeightedGeneratorLoss"], None] | None = None

    def __call__(self, d_fake: torch.Tensor) -> torch.Tensor:
        d = flatten_scores("d_fake", d_fake)
        if type(d) is not torch.Tensor:
            d = d.as_subclass(torch.Tensor)
        if d.numel() == 0:
            raise ValueError("Invalid d_fake: empty batch (WeGAN weights need at least one sample)")
        require_finite("d_fake (D's outputs on G(z))", d.detach())
        if d.dtype in (torch.float16, torch.bfloat16):
            d = d.float()  # under autocast: weights and the weighted sum in float32
        logits = wegan_logits(torch.sigmoid(d.detach()), self.eta)
        per_sample = g_loss_per_sample(d, self.loss)
        if _dist.active():
            weights = (logits - _dist.global_logsumexp(logits)).exp()
            # DDP averages gradients over ranks; the global weighted sum needs their sum.
            value = (weights * per_sample).sum() * _dist.world_size()
        else:
            weights = torch.softmax(logits, dim=0)
            value = (weights * per_sample).sum()
        self.last_weights = weights
        self.steps += 1
        if self.callback is not None:
            self.callback(self)
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
        return {"eta": self.eta, "loss": self.loss, "steps": self.steps,
                "last_weights": None if self.last_weights is None else self.last_weights.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_keys("state", state, ("eta", "loss", "steps"))
        eta = check_eta(state["eta"])
        loss = check_choice("loss", state["loss"], G_LOSSES)
        self.eta, self.loss, self.steps = eta, loss, int(state["steps"])
        self.last_weights = state.get("last_weights")

    def __repr__(self) -> str:
        return f"WeightedGeneratorLoss(eta={self.eta}, loss={self.loss!r})"
