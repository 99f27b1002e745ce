"""Adaptive weighted discriminator loss (Zadorozhnyy, Cheng & Ye, CVPR 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch.func import functional_call, vjp

from . import _dist
from ._checks import check_choice, check_module, check_state_keys, check_tensor
from .functional.aw import CASE_NAMES, _check_hparams, angle_degrees, aw_weights_from_geometry
from .functional.losses import D_LOSSES, d_loss_fake, d_loss_real

__all__ = ["AWDiscriminatorLoss", "AWStats"]


@dataclass(frozen=True)
class AWStats:
    """Statistics of one aw step, as 0-d tensors (no GPU sync until you read them)."""

    w_real: torch.Tensor
    w_fake: torch.Tensor
    score_real: torch.Tensor
    score_fake: torch.Tensor
    angle: torch.Tensor  #: angle between grad L_r and grad L_f, degrees
    case: torch.Tensor  #: 1..5, the branch of Algorithm 1 that fired
    loss_real: torch.Tensor
    loss_fake: torch.Tensor

    def to_dict(self) -> dict[str, float]:
        out = {k: float(getattr(self, k)) for k in
               ("w_real", "w_fake", "score_real", "score_fake", "angle", "loss_real", "loss_fake")}
        out["case"] = int(self.case)
        return out

    @property
    def case_name(self) -> str:
        return CASE_NAMES[int(self.case)]


class _DepositGradients(torch.autograd.Function):
    """A scalar whose backward hands precomputed gradients to the parameters.

    Autograd accumulates what ``backward`` returns into ``.grad``, so the
    gradients are *added*: gradient penalties, R1 terms and accumulation keep
    working, and a loss scale (GradScaler) multiplies them as usual.
    """

    @staticmethod
    def forward(ctx, value: torch.Tensor, grads: Sequence[torch.Tensor], *params: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grads = ctx.grads
        ctx.grads = None  # free the stored gradients once they are handed over
        if grads is None:
            raise RuntimeError("AWDiscriminatorLoss: backward called twice on the same aw loss")
        # In place: the stored gradients are ours alone, so no second copy is allocated.
        torch._foreach_mul_(grads, grad_output.to(grads[0].dtype))
        return (None, None, *grads)


def _plain(t: torch.Tensor) -> torch.Tensor:
    # BigGAN-PyTorch hands D outputs around as a Tensor subclass whose .to() raises;
    # viewing them as plain tensors keeps the graph.
    return t if type(t) is torch.Tensor else t.as_subclass(torch.Tensor)


class AWDiscriminatorLoss:
    r"""Adaptive weighted discriminator loss (aw-loss), Zadorozhnyy, Cheng & Ye, CVPR 2021.

    .. math::
        \mathcal{L}_D^{aw} = w_r \mathcal{L}_r + w_f \mathcal{L}_f,

    with :math:`(w_r, w_f)` chosen every step by Algorithm 1 from the two
    gradients :math:`\nabla\mathcal{L}_r, \nabla\mathcal{L}_f` and the mean
    sigmoid scores (see :func:`gan_optim.functional.aw_weights`).

    Drop-in use, replacing ``loss = d_loss_real + d_loss_fake``::

        aw = AWDiscriminatorLoss(D, loss="hinge")
        opt_d.zero_grad()
        loss = aw(x_real, fake.detach(), y)   # extra arguments go to D
        loss.backward()                       # adds w_r*grad L_r + w_f*grad L_f to .grad
        opt_d.step()

    The two per-part gradients come from ``torch.func`` (``functional_call`` +
    ``vjp``): one forward and one backward per half, the work of one plain step.
    ``loss.backward()`` *adds* the weighted gradient to every trainable D
    parameter's ``.grad``, so penalty terms backpropagated separately and
    gradient accumulation keep working. The weights are constants.

    Buffers (BatchNorm running statistics, spectral-norm power-iteration
    vectors) change exactly as in one plain forward of the real half and then of
    the fake half, and only once both losses are known to be finite.

    Args:
        discriminator: D (a DDP wrapper is unwrapped for the per-part gradients).
        loss: ``"hinge"`` (the paper's eq. 7), ``"bce"`` or ``"wgan"``.
        alpha1, alpha2, eps, delta: Algorithm 1's thresholds (paper defaults).
        nonfinite: ``"raise"`` (default) raises ``FloatingPointError`` on a
            non-finite loss or gradient, with nothing changed; ``"propagate"``
            lets non-finite gradients through so that a ``GradScaler`` skips the
            step, as it does for a plain loss.
        scaler: a ``torch.amp.GradScaler`` for mixed precision. The per-part
            backward passes then run with the scaler's current scale (so float16
            gradients do not underflow) and are unscaled before the weights are
            chosen: the weights are those of the unscaled gradients. Non-finite
            values propagate (``nonfinite="propagate"``) so ``scaler.step`` skips
            the step. Use as usual: ``scaler.scale(aw(x_real, x_fake)).backward()``.
    """

    def __init__(self, discriminator: torch.nn.Module, loss: str = "hinge", *, alpha1: float = 0.5,
                 alpha2: float = 0.75, eps: float = 0.05, delta: float = 0.05,
                 nonfinite: str = "raise", scaler: Any = None) -> None:
        check_module("discriminator", discriminator)
        check_choice("loss", loss, D_LOSSES)
        check_choice("nonfinite", nonfinite, ("raise", "propagate"))
        _check_hparams(alpha1, alpha2, eps, delta)
        self.discriminator = discriminator
        self.loss = loss
        self.alpha1, self.alpha2, self.eps, self.delta = float(alpha1), float(alpha2), float(eps), float(delta)
        self.scaler = scaler
        self.nonfinite = "propagate" if scaler is not None else nonfinite
        self.last: AWStats | None = None
        self.steps = 0
        #: Optional callback ``fn(stats: AWStats)`` after every step (logging).
        self.callback: Callable[[AWStats], None] | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def module(self) -> torch.nn.Module:
        """The discriminator itself (inside a DistributedDataParallel wrapper if there is one)."""
        return _dist.unwrap(self.discriminator)

    def _trainable(self) -> tuple[list[str], list[torch.Tensor]]:
        named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("Invalid discriminator: it has no parameter with requires_grad=True")
        return [n for n, _ in named], [p for _, p in named]

    def _half(self, loss_fn, names, params, buffers: dict[str, torch.Tensor], x, args, kwargs):
        """Loss, output, updated buffers and gradient of one half, by ``torch.func.vjp``."""
        module = self.module

        def f(p):
            # Buffers are cloned inside the transform (mutating captured tensors is
            # not allowed there) and written back by the caller once all is finite.
            new_buffers = {n: b.clone() for n, b in buffers.items()}
            out = functional_call(module, (p, new_buffers), (x, *args), kwargs)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"AWDiscriminatorLoss: D must return a tensor of scores, got {type(out).__name__}")
            out = _plain(out)
            return loss_fn(out, self.loss), (out.detach(), new_buffers)

        # Detached primals: the gradients must not carry a graph back to the parameters.
        primals = {n: p.detach() for n, p in zip(names, params)}
        loss, pullback, (out, new_buffers) = vjp(f, primals, has_aux=True)
        scale = self._loss_scale()
        (grads,) = pullback(torch.full_like(loss, scale))
        grads = [grads[n] for n in names]
        if scale != 1.0:
            torch._foreach_div_(grads, scale)
        return loss.detach(), out, new_buffers, grads

    def _loss_scale(self) -> float:
        if self.scaler is None or not self.scaler.is_enabled():
            return 1.0
        return float(self.scaler.get_scale())

    # -------------------------------------------------------------------- steps
    def __call__(self, x_real: torch.Tensor, x_fake: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """aw loss from the two input batches; extra arguments are passed to D on both halves."""
        check_tensor("x_real", x_real)
        check_tensor("x_fake", x_fake)
        names, params = self._trainable()
        buffers = dict(self.module.named_buffers())
        loss_r, out_r, buffers_r, g_r = self._half(d_loss_real, names, params, buffers, x_real, args, kwargs)
        loss_f, out_f, buffers_f, g_f = self._half(d_loss_fake, names, params, buffers_r, x_fake, args, kwargs)
        result = self._combine(params, loss_r, loss_f, out_r, out_f, g_r, g_f)
        with torch.no_grad():
            for n, b in buffers.items():
                b.copy_(buffers_f[n])
        return result

    def from_outputs(self, d_real: torch.Tensor, d_fake: torch.Tensor, *, retain_graph: bool = False,
                     ) -> torch.Tensor:
        """aw loss from D's outputs already computed with their graph (e.g. one pass over cat([fake, real])).

        The per-part gradients are taken through that graph, so the result equals
        :meth:`__call__` on the same inputs. Pass ``retain_graph=True`` if you
        will backpropagate other terms through the same outputs.

        Cost: two backward passes through the shared graph (the first keeps it
        alive), about 1.6-1.8x a plain D step and the graph's activations held
        once more; :meth:`__call__` (one forward and backward per half) is the
        cheap path, about 1.04-1.08x. See docs/PERFORMANCE.md.
        """
        check_tensor("d_real", d_real)
        check_tensor("d_fake", d_fake)
        d_real, d_fake = _plain(d_real), _plain(d_fake)
        if not (d_real.requires_grad and d_fake.requires_grad):
            raise ValueError("Invalid d_real/d_fake: both need a graph back to D's parameters "
                             "(computed without torch.no_grad and not detached)")
        _, params = self._trainable()
        loss_r, loss_f = d_loss_real(d_real, self.loss), d_loss_fake(d_fake, self.loss)
        scale = self._loss_scale()
        g_r = torch.autograd.grad(loss_r * scale, params, retain_graph=True, allow_unused=True)
        g_f = torch.autograd.grad(loss_f * scale, params, retain_graph=retain_graph, allow_unused=True)
        g_r = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_r)]
        g_f = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_f)]
        if scale != 1.0:
            torch._foreach_div_(g_r, scale)
            torch._foreach_div_(g_f, scale)
        return self._combine(params, loss_r.detach(), loss_f.detach(), d_real.detach(), d_fake.detach(), g_r, g_f)

    def _combine(self, params, loss_r, loss_f, out_r, out_f, g_r, g_f) -> torch.Tensor:
        f64 = torch.float64
        score_r = torch.sigmoid(out_r.to(f64)).mean()
        score_f = torch.sigmoid(out_f.to(f64)).mean()
        if _dist.active():
            # Every rank must take the same branch: average the per-rank gradients,
            # scores and losses first, so the weights are those of the global batch.
            g_r, g_f, score_r, score_f, loss_r, loss_f = _dist.aw_all_reduce(
                g_r, g_f, score_r, score_f, loss_r, loss_f)
        # Three reductions over the gradients: |g_r|^2, |g_f|^2, <g_r, g_f> (one cast each).
        sq_r = torch.stack(torch._foreach_norm(g_r)).to(f64).square().sum()
        sq_f = torch.stack(torch._foreach_norm(g_f)).to(f64).square().sum()
        dot = torch.stack([torch.dot(a.reshape(-1), b.reshape(-1)) for a, b in zip(g_r, g_f)]).to(f64).sum()
        geometry = torch.stack([sq_r, sq_f, dot])
        finite = torch.isfinite(torch.stack([loss_r.to(f64), loss_f.to(f64), geometry[0], geometry[1]]))
        if self.nonfinite == "raise" and not bool(finite.all()):
            which = [name for name, ok in zip(("loss_real", "loss_fake", "grad_real", "grad_fake"), finite.tolist())
                     if not ok]
            raise FloatingPointError(f"AWDiscriminatorLoss: non-finite {', '.join(which)}")
        norm_r, norm_f = geometry[0].sqrt(), geometry[1].sqrt()
        denom = norm_r * norm_f
        cos = torch.where(denom > 0, geometry[2] / torch.where(denom > 0, denom, torch.ones_like(denom)),
                          torch.zeros_like(denom))
        w_r, w_f, case = aw_weights_from_geometry(
            norm_r, norm_f, cos, score_r, score_f, alpha1=self.alpha1, alpha2=self.alpha2, eps=self.eps,
            delta=self.delta, tiny=torch.finfo(params[0].dtype).tiny)
        grad_dtype = g_r[0].dtype
        # Combine in place into g_r: no third copy of the gradients.
        torch._foreach_mul_(g_r, w_r.to(grad_dtype))
        torch._foreach_mul_(g_f, w_f.to(grad_dtype))
        torch._foreach_add_(g_r, g_f)
        value = (w_r * loss_r.to(f64) + w_f * loss_f.to(f64)).to(loss_r.dtype)
        self.last = AWStats(w_real=w_r, w_fake=w_f, score_real=score_r, score_fake=score_f,
                            angle=angle_degrees(cos), case=case, loss_real=loss_r, loss_fake=loss_f)
        self.steps += 1
        if self.callback is not None:
            self.callback(self.last)
        return _DepositGradients.apply(value, g_r, *params)

    # -------------------------------------------------------------- state dicts
    def state_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss, "alpha1": self.alpha1, "alpha2": self.alpha2, "eps": self.eps,
            "delta": self.delta, "nonfinite": self.nonfinite, "steps": self.steps,
            "last": None if self.last is None else {k: v.detach().clone() for k, v in vars(self.last).items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_keys("state", state, ("loss", "alpha1", "alpha2", "eps", "delta", "steps", "last"))
        check_choice("loss", state["loss"], D_LOSSES)
        _check_hparams(state["alpha1"], state["alpha2"], state["eps"], state["delta"])
        self.loss = state["loss"]
        self.alpha1, self.alpha2 = float(state["alpha1"]), float(state["alpha2"])
        self.eps, self.delta = float(state["eps"]), float(state["delta"])
        # With a GradScaler attached, non-finite values must reach it (see ``scaler``).
        self.nonfinite = "propagate" if self.scaler is not None else state.get("nonfinite", self.nonfinite)
        self.steps = int(state["steps"])
        self.last = None if state["last"] is None else AWStats(**state["last"])

    def __repr__(self) -> str:
        return (f"AWDiscriminatorLoss(loss={self.loss!r}, alpha1={self.alpha1}, alpha2={self.alpha2}, "
                f"eps={self.eps}, delta={self.delta})")
