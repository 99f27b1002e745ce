"""Free adversarial training of the discriminator (FastGAN: Zhong, Liu & Hsieh, 2020)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._checks import (
    check_choice,
    check_int,
    check_module,
    check_optimizer,
    check_real,
    check_scaler,
    check_tensor,
    resolve_nonfinite,
)
from ._amp import backward, scaler_step, unscale_and_step, unscaled
from ._component import Component
from ._transaction import TensorStore, Transaction, Undo
from .functional.freeadv import DELTA_INITS, NORMS, initial_perturbation, perturbation_step, perturbed_input
from .functional.losses import (
    D_LOSSES,
    KL_DIRECTIONS,
    d_loss_fake,
    d_loss_real,
    fastgan_d_loss_fake,
    fastgan_d_loss_real,
)
from .ttur import TwoTimescale

__all__ = ["FreeAdvDiscriminator", "FreeAdvStats"]

FREEADV_LOSSES = D_LOSSES + ("hinge_ac",)


@dataclass(frozen=True)
class FreeAdvStats:
    """Statistics of one :meth:`FreeAdvDiscriminator.step`, as 0-d tensors (no GPU sync until you read them)."""

    loss_real: torch.Tensor  #: the last replay's real loss (at the perturbed input)
    loss_fake: torch.Tensor  #: the last replay's fake loss
    delta_max: torch.Tensor  #: max |delta| after the step

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("loss_real", "loss_fake", "delta_max")}


class FreeAdvDiscriminator(Component[FreeAdvStats]):
    r"""D steps with free adversarial training on the real batch (Zhong, Liu & Hsieh, "FastGAN", 2020).

    Algorithm 1 of the paper, D part, as the authors' official code runs it
    (``train_free.py`` with ``tools/adv_tools/pgd_free.py``): per replay
    ``r = 1..replays`` on the same batch,

    .. math::
        \tilde x &= \operatorname{clamp}(x_r + \delta,\ lo,\ hi) \\
        g_w, g_x &= \nabla_{w} L_r(D(\tilde x)),\ \nabla_{\tilde x} L_r(D(\tilde x))
            \quad\text{(one backward)} \\
        \delta &\leftarrow \Pi_{\|\delta\| \le \epsilon}\big(\delta + \alpha\,\operatorname{sign}(g_x)\big) \\
        g_w &\mathrel{+}= \nabla_w L_f(D(x_f)) \quad\text{(the same } x_f \text{ every replay)} \\
        w &\leftarrow \text{optimizer step}(g_w)

    with :math:`L_r, L_f` the real and fake losses to minimise, so :math:`\delta`
    moves to make D's real loss worse (eq. 4's inner minimisation of
    :math:`\log D(x_r + \epsilon)`). There is no extra backward: the weight and
    input gradients come from the same pass. :math:`\delta` persists across
    calls (warm start, "free" adversarial training) and lives in the
    :math:`\epsilon`-ball only; the data range clamps D's *input* on every replay.
    It is drawn afresh (``delta_init``) when the batch's shape, dtype or device
    changes (e.g. a short last batch).

    Where the paper's text and the official code differ, the defaults follow the
    official code, which produced the paper's numbers:

    - ``delta_init="random"``: :math:`\delta` starts as N(0, 1) projected onto the
      ball (the official ``pgd_rs``, always on); ``"zero"`` is Algorithm 1's text.
    - ``kl="u||p"``: the fake-class term of ``"hinge_ac"`` is the official
      KL(U‖p); eq. 13 prints KL(p‖U) (``kl="p||u"``).
    - ``steps_per_replay=1``: one optimizer step per replay on the sum of the
      two halves' gradients; the paper's Algorithm 1 takes a weight step after
      the real *and* after the fake half (lines 9 and 12): ``steps_per_replay=2``.
    - L2 steps and projections carry the official ``1e-8`` stabiliser.

    Use, replacing the D step of a plain loop::

        fa = FreeAdvDiscriminator(D, opt_d, loss="hinge", epsilon=6e-3)
        fake = G(z).detach()
        fa.step(x_real, fake)            # zero_grad, replays, optimizer steps

    Args:
        discriminator: D.
        optimizer: D's optimizer; :meth:`step` zeroes its gradients and steps it.
            A :class:`~gan_optim.TwoTimescale` works too: its D optimizer is
            stepped and :meth:`~gan_optim.TwoTimescale.record_step` is called for
            every step taken, so its counters and D's schedule follow the replays.
        loss: ``"hinge"``, ``"bce"``, ``"wgan"``, or ``"hinge_ac"``: the paper's
            conditional loss (eqs. 13-14: hinge + auxiliary classifier on reals,
            KL to uniform on fakes weighted by ``alpha_f``); then D returns
            ``(adv_scores, class_logits)`` and :meth:`step` takes ``y_real``.
        epsilon: radius :math:`c_{max}` of the perturbation ball (paper: 6e-3 on
            CIFAR, 1e-2 to 3e-2 on ImageNet, for images in [-1, 1]).
        step_size: perturbation step :math:`\alpha`; ``None`` means
            ``epsilon``, as in Algorithm 1 (line 10).
        replays: adversarial steps per batch (paper: MAX_ADV_STEP = 2).
        norm: ``"linf"`` (the paper's) or ``"l2"`` (per-sample normalised steps).
        data_range: D's real input is ``clamp(x + delta, *data_range)``; ``None``
            to skip the clamp.
        delta_init, kl: see above.
        scaler: a ``torch.amp.GradScaler`` (the contract shared by every
            component, docs/DISTRIBUTED.md): losses are scaled for backward, the
            input gradient is unscaled before its step, non-finite values
            propagate so the scaler skips and backs off, and :meth:`step` never
            calls ``scaler.update()``: you do, once per iteration, as in a plain
            loop. With several replays the scaler steps the last one; earlier
            replays are unscaled and checked here, and an overflow in one of them
            hands its gradients to the scaler at once (it skips, the remaining
            replays are not run, and ``update()`` backs off). :math:`\delta` never
            takes a non-finite step.
        nonfinite: ``None`` (default): ``"raise"`` without a scaler,
            ``"propagate"`` with one. ``"raise"`` raises ``FloatingPointError``
            naming the quantity before the optimizer step it would spoil.
        atomic: what an error (ours, D's, the optimizer's) leaves behind.
            Always: an error before the call's first optimizer step changes
            nothing (D's buffers and ``.grad`` are put back, at no copy cost for
            the gradients). ``atomic=True`` extends this to errors after earlier
            replays have stepped: D's parameters and the optimizer state (and a
            TwoTimescale's) are copied once per call and restored on error.
    """

    def __init__(self, discriminator: torch.nn.Module, optimizer: torch.optim.Optimizer | TwoTimescale, *,
                 loss: str = "hinge", epsilon: float = 6e-3, step_size: float | None = None, replays: int = 2,
                 norm: str = "linf", data_range: tuple[float, float] | None = (-1.0, 1.0),
                 steps_per_replay: int = 1, alpha_f: float = 1.0, delta_init: str = "random", kl: str = "u||p",
                 scaler: Any = None, nonfinite: str | None = None, atomic: bool = False) -> None:
        super().__init__()
        check_module("discriminator", discriminator)
        two_timescale = optimizer if isinstance(optimizer, TwoTimescale) else None
        d_optimizer = check_optimizer("optimizer", optimizer if two_timescale is None else two_timescale.d_optimizer)
        scaler = check_scaler("scaler", scaler)
        if two_timescale is not None and two_timescale.scaler is not None:
            if scaler is not None and scaler is not two_timescale.scaler:
                raise ValueError("Invalid scaler: the TwoTimescale given as optimizer has another scaler")
            scaler = two_timescale.scaler
        config = self._validated_config(loss=loss, epsilon=epsilon, step_size=step_size, replays=replays, norm=norm,
                                        data_range=data_range, steps_per_replay=steps_per_replay, alpha_f=alpha_f,
                                        delta_init=delta_init, kl=kl)
        self.nonfinite = resolve_nonfinite(nonfinite, scaler)
        if not isinstance(atomic, bool):
            raise TypeError(f"Invalid atomic: expected a bool, got {type(atomic).__name__}")
        self.discriminator = discriminator
        self.optimizer = d_optimizer
        self.two_timescale = two_timescale
        self.scaler = scaler
        self.atomic = atomic
        self._apply_config(config)
        self.delta: torch.Tensor | None = None
        self._values_store = TensorStore()
        self.steps = 0
        self.last: FreeAdvStats | None = None

    @staticmethod
    def _validated_config(*, loss: Any, epsilon: Any, step_size: Any, replays: Any, norm: Any, data_range: Any,
                          steps_per_replay: Any, alpha_f: Any, delta_init: Any, kl: Any) -> dict[str, Any]:
        loss = check_choice("loss", loss, FREEADV_LOSSES)
        epsilon = check_real("epsilon", epsilon, low=0.0)
        step_size = epsilon if step_size is None else check_real("step_size", step_size, low=0.0)
        replays = check_int("replays", replays, low=1)
        norm = check_choice("norm", norm, NORMS)
        if data_range is not None:
            if not (isinstance(data_range, (tuple, list)) and len(data_range) == 2):
                raise TypeError(f"Invalid data_range: expected (low, high) or None, got {data_range!r}")
            low, high = (check_real("data_range", v) for v in data_range)
            if not low < high:
                raise ValueError(f"Invalid data_range: {tuple(data_range)} (low must be < high)")
            data_range = (low, high)
        steps_per_replay = check_int("steps_per_replay", steps_per_replay, low=1)
        if steps_per_replay > 2:
            raise ValueError(f"Invalid steps_per_replay: {steps_per_replay} (1 or 2)")
        alpha_f = check_real("alpha_f", alpha_f, low=0.0)
        delta_init = check_choice("delta_init", delta_init, DELTA_INITS)
        kl = check_choice("kl", kl, KL_DIRECTIONS)
        return {"loss": loss, "epsilon": epsilon, "step_size": step_size, "replays": replays, "norm": norm,
                "data_range": data_range, "steps_per_replay": steps_per_replay, "alpha_f": alpha_f,
                "delta_init": delta_init, "kl": kl}

    def _apply_config(self, config: dict[str, Any]) -> None:
        self.loss: str = config["loss"]
        self.epsilon: float = config["epsilon"]
        self.step_size: float = config["step_size"]
        self.replays: int = config["replays"]
        self.norm: str = config["norm"]
        self.data_range: tuple[float, float] | None = config["data_range"]
        self.steps_per_replay: int = config["steps_per_replay"]
        self.alpha_f: float = config["alpha_f"]
        self.delta_init: str = config["delta_init"]
        self.kl: str = config["kl"]

    # ------------------------------------------------------------------ losses
    def _real_loss(self, out: Any, y_real: torch.Tensor | None) -> torch.Tensor:
        if self.loss == "hinge_ac":
            assert y_real is not None  # step() checks it
            adv, logits = out
            return fastgan_d_loss_real(adv, logits, y_real)
        return d_loss_real(out, self.loss)

    def _fake_loss(self, out: Any) -> torch.Tensor:
        if self.loss == "hinge_ac":
            adv, logits = out
            return fastgan_d_loss_fake(adv, logits, self.alpha_f, self.kl)
        return d_loss_fake(out, self.loss)

    # -------------------------------------------------------------------- step
    def step(self, x_real: torch.Tensor, x_fake: torch.Tensor, *d_args: Any, y_real: torch.Tensor | None = None,
             fake_args: tuple | None = None, fake_kwargs: dict | None = None, **d_kwargs: Any) -> FreeAdvStats:
        """Run the replays on one batch (Algorithm 1, lines 7-13); returns the last replay's statistics.

        Extra positional and keyword arguments go to D on both halves, unless
        ``fake_args`` / ``fake_kwargs`` give the fake half its own (a
        projection D: ``fa.step(x, fake, y_real_labels, fake_args=(y_fake,))``).
        ``y_real`` is the label target of the ``"hinge_ac"`` loss.
        """
        f_args, f_kwargs = self._check_step_args(x_real, x_fake, y_real, d_args, d_kwargs, fake_args, fake_kwargs)
        x_real, x_fake, D = x_real.detach(), x_fake.detach(), self.discriminator
        delta = self.delta
        fresh = delta is None or (delta.shape, delta.dtype, delta.device) != (x_real.shape, x_real.dtype,
                                                                                x_real.device)
        loss_r = loss_f = x_real.new_zeros(())
        with Transaction() as undo:
            undone_until_first_step = self._keep_for_rollback(undo, x_real, draws=fresh)
            if fresh:
                delta = initial_perturbation(x_real, self.epsilon, self.norm, self.delta_init)  # line 1
            assert delta is not None
            for replay in range(1, self.replays + 1):  # line 7: MAX_ADV_STEP replays on the same batch
                self.optimizer.zero_grad(set_to_none=True)
                # The official code's leaf: the clamped input itself, so a saturated pixel keeps its gradient.
                x_adv = perturbed_input(x_real, delta, self.data_range).requires_grad_(True)
                loss_r = self._real_loss(D(x_adv, *d_args, **d_kwargs), y_real)
                if self.steps_per_replay == 1:
                    # Line 8 (g_x, g_w from one backward) and line 11 together: D does not change between the
                    # halves, so one backward of the sum accumulates what the official two backwards do.
                    loss_f = self._fake_loss(D(x_fake, *f_args, **f_kwargs))
                    backward(loss_r + loss_f, self.scaler)
                    grad_x = unscaled(x_adv.grad, self.scaler)
                    delta = self._perturbation_step(delta, grad_x)  # line 10
                    self._require_finite(("loss_real", loss_r), ("input gradient", grad_x), ("loss_fake", loss_f))
                else:  # the paper's text: a weight step after each half
                    backward(loss_r, self.scaler)  # line 8
                    grad_x = unscaled(x_adv.grad, self.scaler)
                    self._require_finite(("loss_real", loss_r), ("input gradient", grad_x))
                    taken = self._weight_step(last=False)  # line 9
                    undo.release(*undone_until_first_step)
                    self.optimizer.zero_grad(set_to_none=True)
                    if not taken:
                        break
                    delta = self._perturbation_step(delta, grad_x)  # line 10
                    loss_f = self._fake_loss(D(x_fake, *f_args, **f_kwargs))  # line 11: the same x_f every replay
                    backward(loss_f, self.scaler)
                    self._require_finite(("loss_fake", loss_f))
                taken = self._weight_step(last=replay == self.replays)  # line 12
                undo.release(*undone_until_first_step)
                if not taken:
                    break
        self.delta, self.steps = delta, self.steps + 1  # delta persists: the warm start that makes it "free"
        self.last = FreeAdvStats(loss_real=loss_r.detach(), loss_fake=loss_f.detach(),
                                 delta_max=delta.abs().max() if delta.numel() else delta.new_zeros(()))
        self._call_step_post_hooks(self.last)
        return self.last

    def _perturbation_step(self, delta: torch.Tensor, grad_x: torch.Tensor) -> torch.Tensor:
        """delta <- Proj(delta + alpha sign(g_x)): Algorithm 1, line 10, moving D's real loss uphill."""
        with torch.no_grad():
            new_delta = perturbation_step(delta, grad_x, self.step_size, self.epsilon, self.norm)
            # A non-finite input gradient must not poison the persistent perturbation
            # (with "raise" the finiteness check raises and delta is not kept).
            return (new_delta if self.nonfinite == "raise"
                    else torch.where(torch.isfinite(new_delta).all(), new_delta, delta))

    def _weight_step(self, last: bool) -> bool:
        """w_D <- optimizer step (lines 9 and 12); False when the GradScaler skipped it (the call then ends).

        With a scaler, the last replay goes through ``scaler.step``; earlier ones are unscaled and
        checked here (the scaler steps once per ``update()``).
        """
        if self.scaler is None or not self.scaler.is_enabled():
            self.optimizer.step()
            taken = True
        elif last:
            taken = scaler_step(self.scaler, self.optimizer)
        else:
            taken = unscale_and_step(self.scaler, self.optimizer)
        if taken and self.two_timescale is not None:
            self.two_timescale.record_step("D")
        return taken

    # --------------------------------------------------------------- plumbing
    def _check_step_args(self, x_real: Any, x_fake: Any, y_real: Any, d_args: tuple, d_kwargs: dict,
                         fake_args: Any, fake_kwargs: Any) -> tuple[tuple, dict]:
        """Check :meth:`step`'s arguments; the fake half's D arguments."""
        check_tensor("x_real", x_real)
        check_tensor("x_fake", x_fake)
        if x_real.dim() < 2:
            raise ValueError(f"Invalid x_real: expected a batch of shape (N, ...), got {tuple(x_real.shape)}")
        if self.loss == "hinge_ac" and y_real is None:
            raise ValueError("Invalid y_real: the 'hinge_ac' loss needs the real batch's labels")
        if fake_args is not None and not isinstance(fake_args, (tuple, list)):
            raise TypeError(f"Invalid fake_args: expected a tuple, got {type(fake_args).__name__}")
        if fake_kwargs is not None and not isinstance(fake_kwargs, dict):
            raise TypeError(f"Invalid fake_kwargs: expected a dict, got {type(fake_kwargs).__name__}")
        return tuple(d_args if fake_args is None else fake_args), (d_kwargs if fake_kwargs is None else fake_kwargs)

    def _keep_for_rollback(self, undo: Transaction, x_real: torch.Tensor, draws: bool) -> tuple[Undo, ...]:
        """Record what an error in :meth:`step` puts back (the ``atomic`` contract); returns the undos that
        hold only until the call's first optimizer step (without ``atomic``, stepped replays stay applied)."""
        if draws and self.delta_init == "random":
            undo.keep_rng(x_real.device)  # a newly drawn delta is dropped, so its draw is undone too
        params = list(self.discriminator.parameters()) + [p for g in self.optimizer.param_groups
                                                           for p in g["params"]]
        until_step = (undo.keep_grads(params), undo.keep_buffers(self.discriminator))
        if not self.atomic:
            return until_step
        undo.keep_values(self.discriminator, self.optimizer, self._values_store)
        if self.two_timescale is not None:
            undo.on_error(self.two_timescale._undo_record_step_d())
        return ()

    def _require_finite(self, *named: tuple[str, torch.Tensor]) -> None:
        """With ``nonfinite="raise"``: one host sync for the values of a replay; raise naming the culprit."""
        if self.nonfinite != "raise":
            return
        finite = torch.stack([torch.isfinite(v.detach()).all() for _, v in named])
        if not bool(finite.all()):
            bad = ", ".join(name for (name, _), ok in zip(named, finite.tolist()) if not ok)
            raise FloatingPointError(f"FreeAdvDiscriminator: non-finite {bad}")

    # ------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        return {**self._state_header(),
                "loss": self.loss, "epsilon": self.epsilon, "step_size": self.step_size, "replays": self.replays,
                "norm": self.norm, "data_range": self.data_range, "steps_per_replay": self.steps_per_replay,
                "alpha_f": self.alpha_f, "delta_init": self.delta_init, "kl": self.kl, "nonfinite": self.nonfinite,
                "atomic": self.atomic, "steps": self.steps,
                "delta": None if self.delta is None else self.delta.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state from :meth:`state_dict`; every field is checked first, so a bad state changes nothing."""
        keys = ("loss", "epsilon", "step_size", "replays", "norm", "data_range", "steps_per_replay", "alpha_f",
                "delta_init", "kl", "nonfinite", "atomic", "steps", "delta")
        self._check_state(state, keys)
        data_range = state["data_range"]
        config = self._validated_config(
            loss=state["loss"], epsilon=state["epsilon"], step_size=state["step_size"], replays=state["replays"],
            norm=state["norm"], data_range=tuple(data_range) if isinstance(data_range, list) else data_range,
            steps_per_replay=state["steps_per_replay"], alpha_f=state["alpha_f"], delta_init=state["delta_init"],
            kl=state["kl"])
        # With a scaler attached, non-finite values must reach it, whatever the state says.
        nonfinite = check_choice("state['nonfinite']", state["nonfinite"], ("raise", "propagate"))
        if self.scaler is not None:
            nonfinite = "propagate"
        if not isinstance(state["atomic"], bool):
            raise TypeError(f"Invalid state['atomic']: expected a bool, got {type(state['atomic']).__name__}")
        steps = check_int("state['steps']", state["steps"], low=0)
        delta = state["delta"]
        if delta is not None:
            check_tensor("state['delta']", delta)
            if delta.dim() < 2:
                raise ValueError(f"Invalid state['delta']: expected a batch of shape (N, ...), got "
                                 f"{tuple(delta.shape)}")
            if not bool(torch.isfinite(delta).all()):
                raise ValueError("Invalid state['delta']: non-finite values")
            size = (delta.abs().amax() if config["norm"] == "linf"
                    else torch.linalg.vector_norm(delta.flatten(1), dim=1).amax()) if delta.numel() else 0.0
            # The L2 projection leaves norms a rounding error above epsilon.
            if float(size) > config["epsilon"] * (1 + 1e-5) + 1e-12:
                raise ValueError(f"Invalid state['delta']: its {config['norm']} size {float(size)} exceeds "
                                 f"epsilon {config['epsilon']}")
        self._apply_config(config)
        self.nonfinite = nonfinite
        self.atomic = state["atomic"]
        self.steps = steps
        self.delta = None if delta is None else delta.detach().clone()

    def __repr__(self) -> str:
        return (f"FreeAdvDiscriminator(loss={self.loss!r}, epsilon={self.epsilon}, step_size={self.step_size}, "
                f"replays={self.replays}, norm={self.norm!r}, delta_init={self.delta_init!r}, kl={self.kl!r})")
