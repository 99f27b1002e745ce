r"""Adaptive weighted discriminator loss (Zadorozhnyy, Cheng & Ye, CVPR 2021).

The paper's Algorithm 1, one discriminator step, and where each line is here::

    given alpha1 = 0.5, alpha2 = 0.75, eps = 0.05, delta = 0.05          AWDiscriminatorLoss(...)
    sample x_1..x_n ~ P_d, y_1..y_n ~ P_g                                  aw(x_real, x_fake)
    compute grad L_r, grad L_f, s_r = mean sigmoid D(x_i),                 AWDiscriminatorLoss._part,
            s_f = mean sigmoid D(y_j)                          (line 4)    once per half
    choose (w_r, w_f), five cases by s_r, s_f and the angle   (lines 5-19) functional.aw_combine_, the table
                                                                           in functional.aw_weights_from_geometry
    train along w_r grad L_r + w_f grad L_f, the gradient of               loss.backward(); opt.step()
            L_D^aw = w_r L_r + w_f L_f                          (eq. 2)

``AWDiscriminatorLoss.__call__`` is that step; everything it needs beyond the
algorithm (unused parameters, a GradScaler, DDP, putting D's buffers back on
an error, handing the gradient to ``.grad``) is in the named helpers below it.

Each part's gradient is taken with ``torch.autograd.grad`` through a plain forward of D, not
with ``torch.func`` (releases up to 0.2 used ``functional_call`` + ``vjp``): the transform layer
dispatched every operator again (1.15-3.6x the work of a half, docs/PERFORMANCE.md), untied
shared weights, and returned zeros for a parameter the forward did not use, which a probe
forward then had to tell apart. ``autograd.grad`` gives ``None`` for those, per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from . import _dist, _grad_split
from ._checks import (check_choice, check_int, check_module, check_scaler, check_tensor, plain_tensor,
                      resolve_nonfinite)
from ._component import Component
from .functional.aw import CASE_NAMES, AWStep, _check_hparams, aw_combine_
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


_STATS_FIELDS = ("w_real", "w_fake", "score_real", "score_fake", "angle", "case", "loss_real", "loss_fake")


class AWDiscriminatorLoss(Component[AWStats]):
    r"""Adaptive weighted discriminator loss (aw-loss), Zadorozhnyy, Cheng & Ye, CVPR 2021.

    .. math::
        \mathcal{L}_D^{aw} = w_r \mathcal{L}_r + w_f \mathcal{L}_f \qquad \text{(eq. 2)},

    with :math:`(w_r, w_f)` chosen every step by Algorithm 1 from the two
    gradients over :math:`\theta_D` and the mean sigmoid scores:

    1. :math:`\nabla\mathcal{L}_r, \nabla\mathcal{L}_f`, :math:`s_r, s_f` (line 4): one forward
       and one ``torch.autograd.grad`` per half, the work of one plain step;
    2. the weights (lines 5-19: five cases by the scores and the angle);
    3. ``loss.backward()`` adds :math:`w_r\nabla\mathcal{L}_r + w_f\nabla\mathcal{L}_f` to
       every trainable parameter's ``.grad``; the optimizer steps as usual.

    Steps 2 and 3 are one call of :func:`gan_optim.functional.aw_combine_`, the
    only formula of Algorithm 1 the class calls. Its weights are computed by the
    code of :func:`~gan_optim.functional.aw_weights_from_geometry` (which shows
    the five cases as the paper's table) and its geometry equals
    :func:`~gan_optim.functional.gradient_geometry_foreach`'s;
    :func:`~gan_optim.functional.aw_weights` is the same Algorithm 1 on two flat
    vectors.

    Drop-in use, replacing ``loss = d_loss_real + d_loss_fake``::

        aw = AWDiscriminatorLoss(D, loss="hinge")
        opt_d.zero_grad()
        loss = aw(x_real, fake.detach(), y)   # extra arguments go to D
        loss.backward()                       # adds w_r*grad L_r + w_f*grad L_f to .grad
        opt_d.step()

    ``loss.backward()`` *adds* to ``.grad``, so penalty terms backpropagated
    separately and gradient accumulation keep working. The weights are
    constants. Which parameters D uses is read from each call's graph: a
    parameter this call's forward does not reach keeps ``.grad`` as a plain
    backward leaves it (``None``). Tied weights are one parameter, as in a plain
    step.

    D runs exactly as in a plain step: one forward of the real half, then one of
    the fake half (forward hooks, buffers such as BatchNorm statistics and
    spectral-norm vectors, random numbers). If anything raises before the step is
    done (D, our checks, a non-finite loss), D's buffers are put back and nothing
    else changed. Step post-hooks run after the step is committed, as
    ``torch.optim``'s do: a hook that raises propagates, and the step stays.

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
            on a non-finite loss or gradient, with nothing changed (one host
            synchronisation per step); it is a ``ValueError`` together with a
            scaler.
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
        self._ones: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._split = _grad_split.SplitBackward()  # from_outputs' one-backward split, checked once per graph

    @property
    def module(self) -> torch.nn.Module:
        """The discriminator itself (inside a DistributedDataParallel wrapper if there is one)."""
        return _dist.unwrap(self.discriminator)

    # -------------------------------------------------------------------- steps
    def __call__(self, x_real: torch.Tensor, x_fake: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        r"""Algorithm 1: the aw loss of the two input batches (extra arguments go to D on both halves).

        ``loss.backward()`` adds :math:`w_r\nabla\mathcal{L}_r + w_f\nabla\mathcal{L}_f` to ``.grad``.
        """
        check_tensor("x_real", x_real)
        check_tensor("x_fake", x_fake)
        _, params = self._trainable()
        scale = self._loss_scale_tensor(x_real.device)
        with _BufferSnapshot(self.module):  # D's buffers go back if anything below raises
            # Line 4: grad L_r, grad L_f and the scores, one forward and one backward per half.
            loss_r, score_r, g_r = self._part(d_loss_real, params, scale, x_real, args, kwargs)
            loss_f, score_f, g_f = self._part(d_loss_fake, params, scale, x_fake, args, kwargs)
            # Lines 5-19 and eq. (2): the weights and w_r grad L_r + w_f grad L_f.
            value, grads, stats = self._weigh(params, loss_r, loss_f, score_r, score_f, g_r, g_f, scale)
        loss = _DepositGradients.apply(value, loss_r.dtype, grads, *params)
        self._commit(stats)
        return loss

    def from_outputs(self, d_real: torch.Tensor, d_fake: torch.Tensor, *, retain_graph: bool = False,
                     ) -> torch.Tensor:
        r"""aw loss from D's outputs already computed with their graph (e.g. one pass over cat([fake, real])).

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
        loss_r, loss_f = d_loss_real(d_real, self.loss), d_loss_fake(d_fake, self.loss)
        return self._weighted_parts(loss_r, loss_f, d_real, d_fake, retain_graph)

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
        return self._weighted_parts(plain_tensor(loss_real), plain_tensor(loss_fake), plain_tensor(d_real),
                                    plain_tensor(d_fake), retain_graph)

    def _weighted_parts(self, loss_r: torch.Tensor, loss_f: torch.Tensor, d_real: torch.Tensor,
                        d_fake: torch.Tensor, retain_graph: bool) -> torch.Tensor:
        """Lines 3-19 on parts whose graphs exist: per-part gradients through them, the weights, the deposit."""
        names, params = self._trainable()
        scale = self._loss_scale()
        g_r, g_f = self._per_part_gradients(d_real, d_fake, loss_r, loss_f, names, params, scale, retain_graph)
        with torch.no_grad():
            score_r, score_f = _mean_score(d_real), _mean_score(d_fake)
        value, grads, stats = self._weigh(params, loss_r, loss_f, score_r, score_f, list(g_r), list(g_f),
                                          None if scale == 1.0 else scale)
        loss = _DepositGradients.apply(value, loss_r.dtype, grads, *params)
        self._commit(stats)
        return loss

    # ------------------------------------------------------------------ helpers
    def _trainable(self) -> tuple[list[str], list[torch.Tensor]]:
        named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("Invalid discriminator: it has no parameter with requires_grad=True")
        return [n for n, _ in named], [p for _, p in named]

    def _part(self, loss_fn: Callable[..., torch.Tensor], params: list[torch.Tensor], scale: torch.Tensor | None,
              x: torch.Tensor, args: tuple, kwargs: dict,
              ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        """One half: D's forward, its loss part, its mean score and that part's gradient.

        The gradient is ``None`` for a parameter this forward did not use. The
        loss keeps ``requires_grad`` (its graph is freed): read it under no_grad.
        """
        with torch.enable_grad():
            out = self.module(x, *args, **kwargs)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"AWDiscriminatorLoss: D must return a tensor of scores, got {type(out).__name__}")
            out = plain_tensor(out)
            loss = loss_fn(out, self.loss)
            if not loss.requires_grad:
                raise ValueError("Invalid discriminator: its output does not depend on its trainable parameters")
            seed = self._one(loss) if scale is None else scale.to(loss.dtype)
            grads = torch.autograd.grad(loss, params, grad_outputs=seed, allow_unused=True)
        with torch.no_grad():
            score = _mean_score(out)
        return loss, score, list(grads)

    def _one(self, like: torch.Tensor) -> torch.Tensor:
        """A 1 of ``like``'s dtype and device, made once: the seed of each part's backward pass."""
        key = (like.device, like.dtype)
        one = self._ones.get(key)
        if one is None:
            one = self._ones[key] = torch.ones((), device=like.device, dtype=like.dtype)
        return one

    def _loss_scale(self) -> float:
        if self.scaler is None or not self.scaler.is_enabled():
            return 1.0
        return float(self.scaler.get_scale())

    def _loss_scale_tensor(self, device: torch.device) -> torch.Tensor | None:
        """The scaler's current scale as a tensor (no host synchronisation), ``None`` without one."""
        if self.scaler is None or not self.scaler.is_enabled():
            return None
        return self.scaler.scale(torch.ones((), device=device))

    def _per_part_gradients(self, d_real, d_fake, loss_r, loss_f, names, params, scale: float,
                            retain_graph: bool) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
        """The two parts' (scaled) gradients: one split backward where it is exact, else two backward passes."""
        return self._split.per_part_gradients(d_real, d_fake, loss_r, loss_f, names, params, scale, retain_graph)

    def _weigh(self, params: list[torch.Tensor], loss_r: torch.Tensor, loss_f: torch.Tensor, score_r: torch.Tensor,
               score_f: torch.Tensor, g_r: list[torch.Tensor | None], g_f: list[torch.Tensor | None],
               scale: torch.Tensor | float | None) -> tuple[torch.Tensor, list[torch.Tensor | None], AWStats]:
        """Lines 5-19 and eq. (2): the weights and the weighted gradient; changes no state of ours.

        Returns the loss value (float64), the gradient per parameter (``None``
        for one neither half used, in ``g_r``'s tensors) and the statistics.
        """
        used, parts_r, parts_f = _parts(params, g_r, g_f, every=_dist.active())
        if scale is not None:  # a GradScaler's scale, off both parts before the weights are chosen
            torch._foreach_div_(parts_r + parts_f, scale)
        with torch.no_grad():
            if _dist.active():
                # Every rank must take the same branch: average the per-rank gradients,
                # scores and losses first, so the weights are those of the global batch.
                parts_r, parts_f, score_r, score_f, loss_r, loss_f = _dist.aw_all_reduce(
                    parts_r, parts_f, score_r, score_f, loss_r, loss_f)
            step = aw_combine_(parts_r, parts_f, score_r, score_f, alpha1=self.alpha1, alpha2=self.alpha2,
                               eps=self.eps, delta=self.delta)   # parts_r is now w_r g_r + w_f g_f
            losses = torch.stack([loss_r, loss_f])
            losses64 = losses.to(torch.float64)
            if self.nonfinite == "raise":
                _raise_if_nonfinite(step, losses64)
            value = torch.dot(step.weights, losses64)           # eq. (2)
            (w_r, w_f), (loss_r, loss_f) = step.weights.unbind(), losses.unbind()
            angle = torch.rad2deg(torch.arccos(step.cos))
        stats = AWStats(w_real=w_r, w_fake=w_f, score_real=score_r, score_fake=score_f, angle=angle,
                        case=step.case, loss_real=loss_r, loss_fake=loss_f)
        return value, _per_parameter(parts_r, used), stats

    def _commit(self, stats: AWStats) -> None:
        """Make the step visible (``last``, ``steps``), then run the step post-hooks (a raising hook propagates)."""
        self.last, self.steps = stats, self.steps + 1
        self._call_step_post_hooks(stats)

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


def _mean_score(out: torch.Tensor) -> torch.Tensor:
    """Algorithm 1's mean score, the mean of sigmoid(D(.)) over the half, in float64."""
    if out.dtype not in (torch.float32, torch.float64):
        out = out.float()  # half-precision outputs: the sigmoid in float32
    return torch.sigmoid(out).mean(dtype=torch.float64)


def _parts(params: list[torch.Tensor], g_r: list[torch.Tensor | None], g_f: list[torch.Tensor | None], *,
           every: bool) -> tuple[list[bool], list[torch.Tensor], list[torch.Tensor]]:
    """Which parameters this step's graph reached, and the two parts' gradients of those.

    A parameter only one half reaches gets zeros for the other; with ``every``
    (DDP: every rank must reduce the same list) one neither reached gets zeros
    too. A tensor autograd handed to two parameters is copied, because the
    combination works in place.
    """
    used = [a is not None or b is not None for a, b in zip(g_r, g_f)]
    if not any(used):
        raise ValueError("Invalid d_real/d_fake: no path from these outputs to the discriminator's "
                         "parameters (outputs of another model?)")
    parts_r: list[torch.Tensor] = []
    parts_f: list[torch.Tensor] = []
    seen: set[int] = set()
    for p, a, b, u in zip(params, g_r, g_f, used):
        if not (u or every):
            continue
        pair = []
        for g in (a, b):
            if g is None:
                g = torch.zeros_like(p)
            elif id(g) in seen:
                g = g.clone()
            seen.add(id(g))
            pair.append(g)
        parts_r.append(pair[0])
        parts_f.append(pair[1])
    return used, parts_r, parts_f


def _per_parameter(combined: list[torch.Tensor], used: list[bool]) -> list[torch.Tensor | None]:
    """The combined gradient per trainable parameter, ``None`` where the step did not reach it."""
    if len(combined) == len(used):  # every parameter is in the list (DDP)
        return [g if u else None for g, u in zip(combined, used)]
    grads = iter(combined)
    return [next(grads) if u else None for u in used]


def _raise_if_nonfinite(step: AWStep, losses64: torch.Tensor) -> None:
    """One host synchronisation: both norms and both losses (float64: only a non-finite entry is not finite)."""
    if math.isfinite(float(torch.dot(step.norms, losses64))):
        return
    checked = torch.cat([losses64, step.norms])
    which = [name for name, ok in zip(("loss_real", "loss_fake", "grad_real", "grad_fake"),
                                      torch.isfinite(checked).tolist()) if not ok]
    raise FloatingPointError(f"AWDiscriminatorLoss: non-finite {', '.join(which) or 'weights'}")


class _DepositGradients(torch.autograd.Function):
    """The aw loss as a scalar whose backward hands the precomputed gradient to the parameters.

    Autograd accumulates what ``backward`` returns into ``.grad``, so the
    gradients are *added*: gradient penalties, R1 terms and accumulation keep
    working, and a loss scale (GradScaler) multiplies them as usual.
    """

    @staticmethod
    def forward(ctx, value: torch.Tensor, dtype: torch.dtype, grads: Sequence[torch.Tensor | None],
                *params: torch.Tensor) -> torch.Tensor:
        ctx.grads = grads
        return value.to(dtype, copy=True)

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
        return (None, None, None, *grads)


class _BufferSnapshot:
    """Puts D's buffers back (values and objects) if the step raises; one ``_foreach_clone`` per step."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.owners = [(m, name, b) for m in module.modules() for name, b in m._buffers.items() if b is not None]
        with torch.no_grad():
            self.saved = torch._foreach_clone([b for _, _, b in self.owners]) if self.owners else []

    def __enter__(self) -> _BufferSnapshot:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            return
        with torch.no_grad():
            for (owner, name, buffer), saved in zip(self.owners, self.saved):
                owner._buffers[name] = buffer  # a forward that rebinds a buffer is undone too
                buffer.copy_(saved)
