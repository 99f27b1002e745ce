"""Per-part discriminator losses and per-sample generator losses.

All are written as losses to *minimise* (the usual PyTorch convention); the
papers' "maximise L_r + L_f" is the same problem with the sign flipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from .._checks import check_choice, check_real, check_tensor

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


KL_DIRECTIONS = ("u||p", "p||u")


def kl_to_uniform(class_logits: torch.Tensor, kl: str = "p||u") -> torch.Tensor:
    r"""Per-sample KL divergence between the class posterior :math:`p = \operatorname{softmax}(\text{logits})` and uniform.

    ``"p||u"``: :math:`KL(p\|U) = \sum_c p_c \log p_c + \log C` (Zhong et al.'s eq. 13 as printed);
    ``"u||p"``: :math:`KL(U\|p) = -\log C - \frac{1}{C}\sum_c \log p_c` (what the official code computes,
    ``kl_div(log_softmax(logits), uniform)``).
    """
    check_tensor("class_logits", class_logits)
    if class_logits.dim() != 2:
        raise ValueError(f"Invalid class_logits: expected shape (N, C), got {tuple(class_logits.shape)}")
    if class_logits.shape[1] < 1:
        raise ValueError("Invalid class_logits: at least one class is needed")
    check_choice("kl", kl, KL_DIRECTIONS)
    logp = torch.log_softmax(class_logits, dim=1)
    log_c = torch.log(torch.tensor(float(class_logits.shape[1]), dtype=logp.dtype, device=logp.device))
    if kl == "p||u":
        return (logp.exp() * logp).sum(dim=1) + log_c
    return -log_c - logp.mean(dim=1)


def fastgan_d_loss_real(d_adv: torch.Tensor, class_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """FastGAN's conditional real loss (Zhong et al. eq. 13, as a loss to minimise).

    relu(1 - D(x_r)) + CE(class_logits, y_r). The printed eq. 13 writes the class
    term as Pr(y_r | D(x_r)); we use its log-likelihood, the ACGAN term (eq. 11)
    it is derived from.
    """
    return torch.relu(1.0 - flatten_scores("d_adv", d_adv)).mean() + nnf.cross_entropy(class_logits, y)


def fastgan_d_loss_fake(d_adv: torch.Tensor, class_logits: torch.Tensor, alpha_f: float = 1.0,
                        kl: str = "u||p") -> torch.Tensor:
    """FastGAN's conditional fake loss (eq. 13): relu(1 + D(x_f)) + alpha_f * KL.

    ``kl="u||p"`` (default) is the official code's KL(U || p(y|x_f)), which produced
    the paper's numbers; ``kl="p||u"`` is eq. 13 as printed, KL(p(y|x_f) || U).
    """
    check_real("alpha_f", alpha_f, low=0.0)
    return (torch.relu(1.0 + flatten_scores("d_adv", d_adv)).mean()
            + alpha_f * kl_to_uniform(class_logits, kl).mean())


def fastgan_g_loss(d_adv: torch.Tensor, class_logits: torch.Tensor, y: torch.Tensor,
                   alpha_g: float = 1.0) -> torch.Tensor:
    """FastGAN's generator loss (eq. 14): -D(x_f) + alpha_g * CE(class_logits, y_f).

    No KL term appears here, in eq. 14 or in the official code.
    """
    check_real("alpha_g", alpha_g, low=0.0)
    return -flatten_scores("d_adv", d_adv).mean() + alpha_g * nnf.cross_entropy(class_logits, y)
