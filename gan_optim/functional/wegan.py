"""WeGAN sample weights of Pantazis et al. (ICASSP 2020), pure functions."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .._checks import check_real, check_tensor


def check_eta(eta: object) -> float:
    return check_real("eta", eta, low=0.0, high=1.0, low_open=True)


def wegan_logits(fake_prob: torch.Tensor, eta: float) -> torch.Tensor:
    """Unnormalised log-weights ``(1 - p_i) ln eta``."""
    check_tensor("fake_prob", fake_prob)
    return (1.0 - fake_prob) * math.log(check_eta(eta))


def wegan_weights(fake_prob: torch.Tensor, eta: float, *,
                  logsumexp: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  check_values: bool = True) -> torch.Tensor:
    r"""Normalised WeGAN weights (Pantazis et al., Algorithm 1).

    .. math::
        w_i = \frac{\eta^{1 - p_i}}{\sum_j \eta^{1 - p_j}}
            = \operatorname{softmax}_i\big((1 - p_i)\ln\eta\big),

    with :math:`p_i = D(G(z_i))` the discriminator's probability that sample
    :math:`i` is real. Computed as a softmax, so no power under- or overflows.
    For :math:`\eta < 1` the weights grow with :math:`p_i` (samples that fool D
    count more); :math:`\eta = 1` gives uniform weights.

    Args:
        fake_prob: 1-D tensor of probabilities in [0, 1], non-empty.
        eta: in (0, 1].
        logsumexp: the log of the normaliser, ``logits -> log sum_j exp(logits_j)``
            over the batch the weights are normalised on; ``None`` (default):
            this tensor (a softmax). Under ``torch.distributed`` a global one
            normalises over every rank's batch (the local weights then sum to
            this rank's share of 1).
        check_values: check that the probabilities are finite and in [0, 1]
            (a host sync). ``False`` lets non-finite values through into the
            weights (a GradScaler must see them).
    Returns:
        A tensor of the same shape and dtype, positive, summing to 1.
    """
    check_tensor("fake_prob", fake_prob)
    eta = check_eta(eta)
    if fake_prob.dim() != 1:
        raise ValueError(f"Invalid fake_prob: expected a 1-D tensor, got shape {tuple(fake_prob.shape)}")
    if fake_prob.numel() == 0:
        raise ValueError("Invalid fake_prob: empty batch (WeGAN weights need at least one sample)")
    if check_values:
        if not bool(torch.isfinite(fake_prob).all()):
            raise FloatingPointError("non-finite fake_prob")
        if bool(((fake_prob < 0) | (fake_prob > 1)).any()):
            raise ValueError("Invalid fake_prob: probabilities must lie in [0, 1]")
    logits = wegan_logits(fake_prob, eta)
    if logsumexp is None:
        return torch.softmax(logits, dim=0)
    return (logits - logsumexp(logits)).exp()


def _check_weights(weights: torch.Tensor) -> torch.Tensor:
    check_tensor("weights", weights)
    if weights.dim() != 1 or weights.numel() == 0:
        raise ValueError(f"Invalid weights: expected a non-empty 1-D tensor, got shape {tuple(weights.shape)}")
    return weights


def effective_sample_size(weights: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size ``1 / sum w_i^2`` of normalised weights (N when uniform)."""
    _check_weights(weights)
    return 1.0 / (weights * weights).sum()


def weight_variance(weights: torch.Tensor) -> torch.Tensor:
    """Population variance of the weights around ``1/N`` (0 when uniform: the paper's convergence monitor)."""
    _check_weights(weights)
    return ((weights - 1.0 / weights.numel()) ** 2).mean()
