"""Per-part discriminator losses and per-sample generator losses.

All are written as losses to *minimise* (the usual PyTorch convention); the
papers' "maximise L_r + L_f" is the same problem with the sign flipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .._checks import check_choice, check_tensor

D_LOSSES = ("hinge", "bce", "wgan")
G_LOSSES = ("ns", "saturating", "hinge", "wgan")


def d_loss_real(d_real: torch.Tensor, loss: str = "hinge") -> torch.Tensor:
    """Mean real part of the discriminator loss.

    hinge: relu(1 - D(x)); bce: softplus(-D(x)) = -log sigmoid(D(x)); wgan: -D(x).
    """
    check_choice("loss", loss, D_LOSSES)
    check_tensor("d_real", d_real)
    if loss == "hinge":
        return torch.relu(1.0 - d_real).mean()
    if loss == "bce":
        return nnf.softplus(-d_real).mean()
    return (-d_real).mean()


def d_loss_fake(d_fake: torch.Tensor, loss: str = "hinge") -> torch.Tensor:
    """Mean fake part of the discriminator loss.

    hinge: relu(1 + D(G(z))); bce: softplus(D(G(z))) = -log(1 - sigmoid(D(G(z)))); wgan: D(G(z)).
    """
    check_choice("loss", loss, D_LOSSES)
    check_tensor("d_fake", d_fake)
    if loss == "hinge":
        return torch.relu(1.0 + d_fake).mean()
    if loss == "bce":
        return nnf.softplus(d_fake).mean()
    return d_fake.mean()


def g_loss_per_sample(d_fake: torch.Tensor, loss: str = "ns") -> torch.Tensor:
    """Per-sample generator loss from D's raw outputs on G(z), shape (N,).

    ns (non-saturating): softplus(-d) = -log sigmoid(d);
    saturating: -softplus(d) = log(1 - sigmoid(d)) (Goodfellow et al.'s original, WeGAN's Alg. 1);
    hinge and wgan: -d.
    """
    check_choice("loss", loss, G_LOSSES)
    d = flatten_scores("d_fake", d_fake)
    if loss == "ns":
        return nnf.softplus(-d)
    if loss == "saturating":
        return -nnf.softplus(d)
    return -d


def flatten_scores(name: str, scores: torch.Tensor) -> torch.Tensor:
    """Accept D outputs of shape (N,) or (N, 1); return shape (N,)."""
    check_tensor(name, scores)
    if scores.dim() == 2 and scores.shape[1] == 1:
        return scores[:, 0]
    if scores.dim() != 1:
        raise ValueError(f"Invalid {name}: expected shape (N,) or (N, 1), got {tuple(scores.shape)}")
    return scores


def kl_to_uniform(class_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(softmax(logits) || uniform) = sum p log p + log C."""
    logp = torch.log_softmax(class_logits, dim=1)
    num_classes = class_logits.shape[1]
    return (logp.exp() * logp).sum(dim=1) + torch.log(torch.tensor(float(num_classes), dtype=logp.dtype,
                                                                    device=logp.device))


def fastgan_d_loss_real(d_adv: torch.Tensor, class_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FastGAN's conditional real loss (Zhong et al. eq. 13, as a loss to minimise).

    relu(1 - D(x_r)) + CE(class_logits, y_r). The printed eq. 13 writes the class
    term as Pr(y_r | D(x_r)); we use its log-likelihood, the ACGAN term (eq. 11)
    it is derived from.
    """
    return torch.relu(1.0 - flatten_scores("d_adv", d_adv)).mean() + nnf.cross_entropy(class_logits, y)


def fastgan_d_loss_fake(d_adv: torch.Tensor, class_logits: torch.Tensor, alpha_f: float = 1.0) -> torch.Tensor:
    """FastGAN's conditional fake loss (eq. 13): relu(1 + D(x_f)) + alpha_f * KL(p(y|x_f) || U)."""
    return (torch.relu(1.0 + flatten_scores("d_adv", d_adv)).mean()
            + alpha_f * kl_to_uniform(class_logits).mean())


def fastgan_g_loss(d_adv: torch.Tensor, class_logits: torch.Tensor, y: torch.Tensor,
                   alpha_g: float = 1.0) -> torch.Tensor:
    """FastGAN's generator loss (eq. 14): -D(x_f) + alpha_g * CE(class_logits, y_f)."""
    return -flatten_scores("d_adv", d_adv).mean() + alpha_g * nnf.cross_entropy(class_logits, y)
