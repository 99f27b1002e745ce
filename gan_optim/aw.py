"""Adaptive weighted discriminator loss (Zadorozhnyy, Cheng & Ye, CVPR 2021)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch.func import functional_call, vjp

from . import _dist, _grad_split
from ._checks import (check_choice, check_int, check_module, check_scaler, check_tensor, plain_tensor,
                      resolve_nonfinite)
from ._component import Component
from .functional.aw import (
    CASE_NAMES,
    _check_hparams,
    angle_degrees,
    aw_weights_from_geometry,
    gradient_geometry_foreach,
)
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
        present = [g for g in grads if g is not None]
        # In place: the stored gradients are ours alone, so no second copy is allocated.
        torch._foreach_mul_(present, grad_output.to(present[0].dtype))
        # None for a parameter D did not use: its .grad stays as a plain backward leaves it.
        return (None, None, *grads)


_STATS_FIELDS = ("w_real", "w_fake", "score_real", "score_fake", "angle", "case", "loss_real", "loss_fake")


def _differing_gradients(split: Sequence[torch.Tensor | None], reference: Sequence[torch.Tensor | None],
                    ) -> list[int]:
    """Indices where the split gradients differ from the reference beyond rounding (relative to each tensor)."""
    scales = [float(b.abs().max()) for b in reference if b is not None and b.numel()]
    floor = 1e-6 * max(scales, default=0.0)
    bad = []
    for k, (a, b) in enumerate(zip(split, reference)):
        if a is None or b is None:
            if (a is None) != (b is None):
                bad.append(k)
            continue
        if not a.numel():
            continue
        rtol = 1e-3 if a.dtype in (torch.float32, torch.float64) else 3e-2
        diff = (a.double() - b.double()).abs().nan_to_num(0.0)
        if float(diff.max()) > rtol * max(float(b.abs().max()), floor):
            bad.append(k)
    return bad


class AWDiscriminatorLoss(Component[AWStats]):
    r"""Adaptive weighted discriminator loss (aw-loss), Zadorozhnyy, Cheng & Ye, CVPR 2021.

    .. math::
        \mathcal{L}_D^{aw} = w_r \mathcal{L}_r + w_f \mathcal{L}_f,

    with :math:`(w_r, w_f)` chosen every step by Algorithm 1 from the two
    gradients :math:`\nabla\mathcal{L}_r, \nabla\mathcal{L}_f` and the mean
    sigmoid scores (see :func:`gan_optim.functional.aw_weights`; the class calls
    :func:`~gan_optim.functional.gradient_geometry_foreach` and
    :func:`~gan_optim.functional.aw_weights_from_geometry`, the same formulas).

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
    gradient accumulation keep working. The weights are constants. A parameter
    D does not use keeps ``.grad`` as a plain backward leaves it (``None``).

    Buffers (BatchNorm running statistics, spectral-norm power-iteration
    vectors) change exactly as in one plain forward of the real half and then of
    the fake half, and only once both losses are known to be finite. If anything
    raises (D, our checks, a step post-hook), nothing is changed.

    Args:
        discriminator: D (a DDP wrapper is unwrapped for the per-part gradients).
        loss: ``"hinge"`` (the paper's eq. 7), ``"bce"`` or ``"wgan"``.
        alpha1, alpha2, eps, delta: Algorithm 1's thresholds (paper defaults;
            ``alpha1 <= alpha2``).
        scaler: a ``torch.amp.GradScaler`` (the contract shared by every
            component, docs/DISTRIBUTED.md). The per-part backward passes run
            with the scaler's current scale (so float16 gradients do not
            underflow) and are unscaled before the weights are chosen: the
            weights are those of the unscaled gradients. Non-finite values
            propagate so ``scaler.step`` skips the step and ``scaler.update()``
            (yours: the component never calls it) backs off. Use as usual:
            ``scaler.scale(aw(x_real, x_fake)).backward()``.
        nonfinite: ``None`` (default): ``"raise"`` without a scaler,
            ``"propagate"`` with one. ``"raise"`` raises ``FloatingPointError``
            on a non-finite loss or gradient, with nothing changed; it is a
            ``ValueError`` together with a scaler.
    """

    def __init__(self, discriminator: torch.nn.Module, loss: str = "hinge", *, alpha1: float = 0.5,
                 alpha2: float = 0.75, eps: float = 0.05, delta: float = 0.05,
                 nonfinite: str | None = None, scaler: Any = None) -> None:
        super().__init__()
        check_module("discriminator", discriminator)
        check_choice("loss", loss, D_LOSSES)
        _check_hparams(alpha1, alpha2, eps, delta)
        self.scaler = check_scaler("scaler", scaler)
        self.nonfinite = resolve_nonfinite(nonfinite, self.scaler)
        self.discriminator = discriminator
        self.loss = loss
        self.alpha1, self.alpha2, self.eps, self.delta = float(alpha1), float(alpha2), float(eps), float(delta)
        self.last: AWStats | None = None
        self.steps = 0
        self._used: tuple[tuple[int, ...], list[bool]] | None = None
        # One-backward split of from_outputs: graph structures checked once, refused ones, warnings given.
        self._split_checked: set[tuple] = set()
        self._split_refused: dict[tuple, str] = {}
        self._warned: set[str] = set()

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
            out = functional_call(module, (p, new_buffers), (x, *args), kwargs, tie_weights=False)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"AWDiscriminatorLoss: D must return a tensor of scores, got {type(out).__name__}")
            out = plain_tensor(out)
            return loss_fn(out, self.loss), (out.detach(), new_buffers)

        # Detached primals: the gradients must not carry a graph back to the parameters.
        primals = {n: p.detach() for n, p in zip(names, params)}
        loss, pullback, (out, new_buffers) = vjp(f, primals, has_aux=True)  # type: ignore[misc]
        scale = self._loss_scale()
        (grads,) = pullback(torch.full_like(loss, scale))
        grads = [grads[n] for n in names]
        if scale != 1.0:
            torch._foreach_div_(grads, scale)
        return loss.detach(), out, new_buffers, grads

    def _used_parameters(self, params: list[torch.Tensor], x, args, kwargs) -> list[bool]:
        """Which trainable parameters D's forward uses (torch.func returns zeros for the others).

        Found once per set of parameters with one plain forward and backward of
        the real half; D's buffers are put back afterwards.
        """
        key = tuple(id(p) for p in params)
        if self._used is not None and self._used[0] == key:
            return self._used[1]
        module = self.module
        saved = [(b, b.clone()) for b in module.buffers()]
        # The probe must not consume random numbers (dropout): a run resumed into a new object
        # would otherwise draw differently from an uninterrupted one.
        devices = [x.device] if x.is_cuda else []
        try:
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                out = plain_tensor(module(x, *args, **kwargs))
                grads = torch.autograd.grad(d_loss_real(out, self.loss), params, allow_unused=True)
        finally:
            with torch.no_grad():
                for b, kept in saved:
                    b.copy_(kept)
        used = [g is not None for g in grads]
        self._used = (key, used)
        return used

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
        used = self._used_parameters(params, x_real, args, kwargs)
        value, grads, stats = self._combine(params, loss_r, loss_f, out_r, out_f, g_r, g_f)
        deposit = [g if u else None for g, u in zip(grads, used)]
        self._commit(stats, lambda: self._write_buffers(buffers, buffers_f, keep=bool(self._step_post_hooks)))
        return _DepositGradients.apply(value, deposit, *params)

    @staticmethod
    def _write_buffers(buffers: dict[str, torch.Tensor], new: dict[str, torch.Tensor], *, keep: bool,
                       ) -> Callable[[], None] | None:
        """Write the new buffer values; with ``keep`` (hooks may raise afterwards) return how to undo it."""
        saved = {n: b.clone() for n, b in buffers.items()} if keep else {}
        with torch.no_grad():
            for n, b in buffers.items():
                b.copy_(new[n])
        if not keep:
            return None

        def undo() -> None:
            with torch.no_grad():
                for n, b in buffers.items():
                    b.copy_(saved[n])
        return undo

    def _commit(self, stats: AWStats, apply: Callable[[], Callable[[], None] | None] | None = None) -> None:
        """Make the step visible (buffers, ``last``, ``steps``), then run the hooks; undo all if a hook raises."""
        previous = (self.last, self.steps)
        undo = apply() if apply is not None else None
        self.last, self.steps = stats, self.steps + 1
        try:
            self._call_step_post_hooks(stats)
        except BaseException:
            self.last, self.steps = previous
            if undo is not None:
                undo()
            raise

    def from_outputs(self, d_real: torch.Tensor, d_fake: torch.Tensor, *, retain_graph: bool = False,
                     ) -> torch.Tensor:
        """aw loss from D's outputs already computed with their graph (e.g. one pass over cat([fake, real])).

        The per-part gradients are taken through that graph, so the result equals
        :meth:`__call__` on the same inputs. Pass ``retain_graph=True`` if you
        will backpropagate other terms through the same outputs. Outputs with no
        path to D's parameters are refused (``ValueError``).

        One pass over ``cat([fake, real])`` (BigGAN's way; ``d_real`` and
        ``d_fake`` are row slices of its output, by slicing or ``torch.split``):
        both per-part gradients come from **one** backward of
        :math:`\mathcal{L}_r + \mathcal{L}_f`. Samples do not mix, so each
        Linear / Conv / Embedding layer's output gradient splits by rows, and its
        two weight gradients are formed with the work of the one a plain backward
        forms (spectral norm and other parametrizations included): about the cost
        of a plain step. The first call on each new graph structure checks the
        split against two backward passes. The split does not apply, and this
        falls back to two backward passes through the shared graph (about 1.7x a
        plain step) with a one-time warning that says why, when a layer mixes
        samples (BatchNorm in training mode, a statistic over the batch) or a
        parameter is used outside such a layer. Two separate passes cost no more
        with two backward passes, which is what they get. See docs/PERFORMANCE.md.
        """
        check_tensor("d_real", d_real)
        check_tensor("d_fake", d_fake)
        d_real, d_fake = plain_tensor(d_real), plain_tensor(d_fake)
        if not (d_real.requires_grad and d_fake.requires_grad):
            raise ValueError("Invalid d_real/d_fake: both need a graph back to D's parameters "
                             "(computed without torch.no_grad and not detached)")
        names, params = self._trainable()
        loss_r, loss_f = d_loss_real(d_real, self.loss), d_loss_fake(d_fake, self.loss)
        scale = self._loss_scale()
        g_r, g_f = self._per_part_gradients(d_real, d_fake, loss_r, loss_f, names, params, scale, retain_graph)
        used = [a is not None or b is not None for a, b in zip(g_r, g_f)]
        if not any(used):
            raise ValueError("Invalid d_real/d_fake: no path from these outputs to the discriminator's "
                             "parameters (outputs of another model?)")
        part_r = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_r)]
        part_f = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_f)]
        if scale != 1.0:
            torch._foreach_div_(part_r, scale)
            torch._foreach_div_(part_f, scale)
        value, grads, stats = self._combine(params, loss_r.detach(), loss_f.detach(), d_real.detach(),
                                            d_fake.detach(), part_r, part_f)
        self._commit(stats)
        return _DepositGradients.apply(value, [g if u else None for g, u in zip(grads, used)], *params)

    def _per_part_gradients(self, d_real, d_fake, loss_r, loss_f, names, params, scale: float,
                            retain_graph: bool) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
        """The two parts' (scaled) gradients: one split backward where it is exact, else two backward passes."""
        def two_passes() -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
            g_r = torch.autograd.grad(loss_r * scale, params, retain_graph=True, allow_unused=True)
            g_f = torch.autograd.grad(loss_f * scale, params, retain_graph=retain_graph, allow_unused=True)
            return list(g_r), list(g_f)

        split = _grad_split.plan(d_real, d_fake, list(zip(names, params)))
        if isinstance(split, _grad_split.SplitPlan) and split.key in self._split_refused:
            split = self._split_refused[split.key]
        if not isinstance(split, _grad_split.SplitPlan):
            if split is not None:
                self._warn_fallback(split)
            return two_passes()
        total = (loss_r + loss_f) * scale
        if split.key in self._split_checked:
            return _grad_split.split_gradients(split, total, params, retain_graph=retain_graph)
        # A graph structure seen for the first time: check the split against two backward passes once.
        parts = _grad_split.split_gradients(split, total, params, retain_graph=True)
        ref_r, ref_f = two_passes()
        present = [g for g in (*ref_r, *ref_f) if g is not None]
        if present and not bool(torch.isfinite(torch.stack(torch._foreach_norm(present))).all()):
            return ref_r, ref_f  # an overflowing step (AMP) decides nothing: check on the next one
        mismatch = [names[k] for k in sorted(set(_differing_gradients(parts[0], ref_r))
                                             | set(_differing_gradients(parts[1], ref_f)))]
        if len(self._split_checked) + len(self._split_refused) >= 32:  # bounded: shapes may vary forever
            self._split_checked.clear()
            self._split_refused.clear()
        if mismatch:
            self._split_refused[split.key] = (
                f"an operation in D's graph mixes samples across the batch (the split gradients of "
                f"{', '.join(repr(n) for n in mismatch[:3])} differ from two backward passes)")
            self._warn_fallback(self._split_refused[split.key])
            return ref_r, ref_f
        self._split_checked.add(split.key)
        return parts

    def _warn_fallback(self, why: str) -> None:
        if why in self._warned:
            return
        self._warned.add(why)
        warnings.warn(f"AWDiscriminatorLoss.from_outputs: one backward pass cannot give both parts' gradients "
                      f"here: {why}; using two backward passes through the shared graph (slower, same result)",
                      RuntimeWarning, stacklevel=4)

    def _combine(self, params, loss_r, loss_f, out_r, out_f, g_r, g_f,
                 ) -> tuple[torch.Tensor, list[torch.Tensor], AWStats]:
        """The weights (Algorithm 1) and the weighted gradient; changes no state of ours."""
        f64 = torch.float64
        score_r = torch.sigmoid(out_r.to(f64)).mean()
        score_f = torch.sigmoid(out_f.to(f64)).mean()
        if _dist.active():
            # Every rank must take the same branch: average the per-rank gradients,
            # scores and losses first, so the weights are those of the global batch.
            g_r, g_f, score_r, score_f, loss_r, loss_f = _dist.aw_all_reduce(
                g_r, g_f, score_r, score_f, loss_r, loss_f)
        norm_r, norm_f, cos = gradient_geometry_foreach(g_r, g_f)
        if self.nonfinite == "raise":
            # Norms are float64: only a truly non-finite entry makes them non-finite.
            finite = torch.isfinite(torch.stack([loss_r.to(f64), loss_f.to(f64), norm_r, norm_f]))
            if not bool(finite.all()):
                which = [name for name, ok in zip(("loss_real", "loss_fake", "grad_real", "grad_fake"),
                                                  finite.tolist()) if not ok]
                raise FloatingPointError(f"AWDiscriminatorLoss: non-finite {', '.join(which)}")
        w_r, w_f, case = aw_weights_from_geometry(
            norm_r, norm_f, cos, score_r, score_f, alpha1=self.alpha1, alpha2=self.alpha2, eps=self.eps,
            delta=self.delta, tiny=torch.finfo(params[0].dtype).tiny)
        grad_dtype = g_r[0].dtype
        # Combine in place into g_r: no third copy of the gradients.
        torch._foreach_mul_(g_r, w_r.to(grad_dtype))
        torch._foreach_mul_(g_f, w_f.to(grad_dtype))
        torch._foreach_add_(g_r, g_f)
        value = (w_r * loss_r.to(f64) + w_f * loss_f.to(f64)).to(loss_r.dtype)
        stats = AWStats(w_real=w_r, w_fake=w_f, score_real=score_r, score_fake=score_f, angle=angle_degrees(cos),
                        case=case, loss_real=loss_r, loss_fake=loss_f)
        return value, list(g_r), stats

    # -------------------------------------------------------------- state dicts
    def state_dict(self) -> dict[str, Any]:
        return {
            **self._state_header(),
            "loss": self.loss, "alpha1": self.alpha1, "alpha2": self.alpha2, "eps": self.eps,
            "delta": self.delta, "nonfinite": self.nonfinite, "steps": self.steps,
            "last": None if self.last is None else {k: getattr(self.last, k).detach().clone() for k in _STATS_FIELDS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; every field is checked first, so a bad state changes nothing."""
        self._check_state(state, ("loss", "alpha1", "alpha2", "eps", "delta", "nonfinite", "steps", "last"))
        check_choice("state['loss']", state["loss"], D_LOSSES)
        _check_hparams(state["alpha1"], state["alpha2"], state["eps"], state["delta"])
        nonfinite = check_choice("state['nonfinite']", state["nonfinite"], ("raise", "propagate"))
        steps = check_int("state['steps']", state["steps"], low=0)
        last = state["last"]
        if last is not None:
            if not isinstance(last, dict) or set(last) != set(_STATS_FIELDS):
                raise ValueError(f"Invalid state['last']: expected None or a dict with keys {list(_STATS_FIELDS)}")
            for k, v in last.items():
                if not isinstance(v, torch.Tensor) or v.dim() != 0:
                    raise ValueError(f"Invalid state['last'][{k!r}]: expected a 0-d tensor")
        self.loss = state["loss"]
        self.alpha1, self.alpha2 = float(state["alpha1"]), float(state["alpha2"])
        self.eps, self.delta = float(state["eps"]), float(state["delta"])
        # With a GradScaler attached, non-finite values must reach it, whatever the state says.
        self.nonfinite = "propagate" if self.scaler is not None else nonfinite
        self.steps = steps
        self.last = None if last is None else AWStats(**{k: v.detach().clone() for k, v in last.items()})

    def __repr__(self) -> str:
        return (f"AWDiscriminatorLoss(loss={self.loss!r}, alpha1={self.alpha1}, alpha2={self.alpha2}, "
                f"eps={self.eps}, delta={self.delta})")

    def from_parts(self, loss_real: torch.Tensor, loss_fake: torch.Tensor, d_real: torch.Tensor,
                   d_fake: torch.Tensor, *, retain_graph: bool = False) -> torch.Tensor:
        r"""aw loss from the two parts of a D loss computed elsewhere: :math:`w_r \mathcal{L}_r + w_f \mathcal{L}_f`
        with ``loss_real`` and ``loss_fake`` as :math:`\mathcal{L}_r, \mathcal{L}_f`.

        For a codebase's own loss function (its margins, its terms): the parts
        are its two return values, ``d_real`` / ``d_fake`` the D outputs they were
        computed from (for the scores of Algorithm 1, and the gradient split of
        :meth:`from_outputs`, whose rules and ``retain_graph`` apply here too).
        ``self.loss`` is not used.
        """
        for name, value in (("loss_real", loss_real), ("loss_fake", loss_fake)):
            check_tensor(name, value)
            if value.dim() != 0 or not value.requires_grad:
                raise ValueError(f"Invalid {name}: expected a scalar with a graph back to D's parameters")
        check_tensor("d_real", d_real)
        check_tensor("d_fake", d_fake)
        d_real, d_fake = plain_tensor(d_real), plain_tensor(d_fake)
        loss_r, loss_f = plain_tensor(loss_real), plain_tensor(loss_fake)
        names, params = self._trainable()
        scale = self._loss_scale()
        g_r, g_f = self._per_part_gradients(d_real, d_fake, loss_r, loss_f, names, params, scale, retain_graph)
        used = [a is not None or b is not None for a, b in zip(g_r, g_f)]
        if not any(used):
            raise ValueError("Invalid loss_real/loss_fake: no path to the discriminator's parameters")
        part_r = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_r)]
        part_f = [torch.zeros_like(p) if g is None else g for p, g in zip(params, g_f)]
        if scale != 1.0:
            torch._foreach_div_(part_r, scale)
            torch._foreach_div_(part_f, scale)
        value, grads, stats = self._combine(params, loss_r.detach(), loss_f.detach(), d_real.detach(),
                                            d_fake.detach(), part_r, part_f)
        self._commit(stats)
        return _DepositGradients.apply(value, [g if u else None for g, u in zip(grads, used)], *params)
