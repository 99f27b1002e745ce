"""Free adversarial training of the discriminator (FastGAN: Zhong, Liu & Hsieh, 2020)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ._checks import (
    check_choice,
    check_int,
    check_module,
    check_optimizer,
    check_real,
    check_state_keys,
    check_tensor,
)
from .functional.freeadv import NORMS, perturbation_step
from .ttur import TwoTimescale
from .functional.losses import (
    D_LOSSES,
    d_loss_fake,
    d_loss_real,
    fastgan_d_loss_fake,
    fastgan_d_loss_real,
)

__all__ = ["FreeAdvDiscriminator"]

FREEADV_LOSSES = D_LOSSES + ("hinge_ac",)


class FreeAdvDiscriminator:
    r"""D steps with free adversarial training on the real batch (Zhong, Liu & Hsieh, "FastGAN", 2020).

    Algorithm 1 of the paper, D part: per replay ``r = 1..replays`` on the same
    batch,

    .. math::
        g_w, g_x &= \nabla_{w} L_r(D(x_r + \delta)),\ \nabla_{x} L_r(D(x_r + \delta))
            \quad\text{(one backward)} \\
        \delta &\leftarrow \Pi_{\|\delta\|_\infty \le \epsilon}\big(\delta + \alpha\,\operatorname{sign}(g_x)\big) \\
        g_w &\mathrel{+}= \nabla_w L_f(D(x_f)) \quad\text{(the same } x_f \text{ every replay)} \\
        w &\leftarrow \text{optimizer step}(g_w)

    with :math:`L_r, L_f` the real and fake losses to minimise, so :math:`\delta`
    moves to make D's real loss worse (eq. 4's inner minimisation of
    :math:`\log D(x_r + \epsilon)`). There is no extra backward: the weight and
    input gradients come from the same pass. :math:`\delta` persists across
    calls (warm start, "free" adversarial training) and is re-initialised to 0
    when the batch's shape, dtype or device changes (e.g. a short last batch).

    The paper's Algorithm 1 takes a weight step after the real half *and* after
    the fake half of each replay (lines 9 and 12); ``steps_per_replay=2``
    follows it literally. The default, 1, steps once per replay on the sum.

    Use, replacing the D step of a plain loop::

        fa = FreeAdvDiscriminator(D, opt_d, loss="hinge", epsilon=6e-3)
        fake = G(z).detach()
        fa.step(x_real, fake)            # zero_grad, replays, optimizer steps

    Args:
        discriminator: D.
        optimizer: D's optimizer; :meth:`step` zeroes its gradients and steps it.
            A :class:`~gan_optim.TwoTimescale` works too: its D optimizer is used
            and every step goes through ``step_d``, so its counters and D's
            schedule advance with the replays.
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
        data_range: keep ``x_real + delta`` inside it; ``None`` to skip.
        atomic: on a non-finite loss, restore D (parameters, gradients,
            buffers), the optimizer and :math:`\delta` to their state before the
            call. Costs one copy of the parameters, gradients and optimizer state
            per call; ``atomic=False`` skips it (then a failure in a later replay
            leaves the earlier replays' steps applied).
    """

    def __init__(self, discriminator: torch.nn.Module, optimizer: torch.optim.Optimizer | TwoTimescale, *,
                 loss: str = "hinge",
                 epsilon: float = 6e-3, step_size: float | None = None, replays: int = 2, norm: str = "linf",
                 data_range: tuple[float, float] | None = (-1.0, 1.0), steps_per_replay: int = 1,
                 alpha_f: float = 1.0, atomic: bool = True) -> None:
        check_module("discriminator", discriminator)
        self.two_timescale = optimizer if isinstance(optimizer, TwoTimescale) else None
        if self.two_timescale is not None:
            optimizer = self.two_timescale.d_optimizer
        check_optimizer("optimizer", optimizer)
        self.discriminator = discriminator
        self.optimizer = optimizer
        self._configure(loss=loss, epsilon=epsilon, step_size=step_size, replays=replays, norm=norm,
                        data_range=data_range, steps_per_replay=steps_per_replay, alpha_f=alpha_f)
        self.atomic = bool(atomic)
        self.delta: torch.Tensor | None = None
        self._snapshot_store: dict[tuple, torch.Tensor] = {}
        self.steps = 0
        self.last: dict[str, float] | None = None
        #: Optional callback ``fn(stats: dict)`` after every step (logging).
        self.callback: Callable[[dict[str, float]], None] | None = None

    def _configure(self, *, loss, epsilon, step_size, replays, norm, data_range, steps_per_replay, alpha_f) -> None:
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
                raise ValueError(f"Invalid data_range: {data_range} (low must be < high)")
            data_range = (low, high)
        steps_per_replay = check_int("steps_per_replay", steps_per_replay, low=1)
        if steps_per_replay > 2:
            raise ValueError(f"Invalid steps_per_replay: {steps_per_replay} (1 or 2)")
        alpha_f = check_real("alpha_f", alpha_f, low=0.0)
        self.loss, self.epsilon, self.step_size, self.replays = loss, epsilon, step_size, replays
        self.norm, self.data_range, self.steps_per_replay, self.alpha_f = norm, data_range, steps_per_replay, alpha_f

    # ------------------------------------------------------------------ losses
    def _real_loss(self, out, y_real):
        if self.loss == "hinge_ac":
            adv, logits = out
            return fastgan_d_loss_real(adv, logits, y_real)
        return d_loss_real(out, self.loss)

    def _fake_loss(self, out):
        if self.loss == "hinge_ac":
            adv, logits = out
            return fastgan_d_loss_fake(adv, logits, self.alpha_f)
        return d_loss_fake(out, self.loss)

    # -------------------------------------------------------------------- step
    def _snapshot(self) -> dict[str, Any]:
        """Copy D's parameters, gradients, buffers and the optimizer state into buffers kept between calls."""
        D, opt = self.discriminator, self.optimizer
        sources: list[torch.Tensor] = []
        keys: list[tuple] = []
        for i, p in enumerate(D.parameters()):
            sources.append(p.detach())
            keys.append(("param", i))
            if p.grad is not None:
                sources.append(p.grad.detach())
                keys.append(("grad", i))
        for i, b in enumerate(D.buffers()):
            sources.append(b)
            keys.append(("buffer", i))
        scalars = {}
        for p, state in opt.state.items():
            for k, v in state.items():
                if isinstance(v, torch.Tensor):
                    sources.append(v)
                    keys.append(("opt", id(p), k))
                else:
                    scalars[(id(p), k)] = v
        store = self._snapshot_store
        for key, t in zip(keys, sources):
            kept = store.get(key)
            if kept is None or kept.shape != t.shape or kept.dtype != t.dtype or kept.device != t.device:
                store[key] = torch.empty_like(t, memory_format=torch.preserve_format)
        if sources:
            torch._foreach_copy_([store[k] for k in keys], sources)
        tt = self.two_timescale
        ttur = None if tt is None else (tt.steps_d, None if tt.d_scheduler is None else tt.d_scheduler.state_dict(),
                                        [g["lr"] for g in opt.param_groups])
        return {"keys": set(keys), "scalars": scalars, "opt_params": {id(p) for p in opt.state},
                "delta": self.delta, "ttur": ttur}

    def _restore(self, snap: dict[str, Any]) -> None:
        store, keys = self._snapshot_store, snap["keys"]
        with torch.no_grad():
            for i, p in enumerate(self.discriminator.parameters()):
                p.copy_(store[("param", i)])
                p.grad = store[("grad", i)].clone() if ("grad", i) in keys else None
            for i, b in enumerate(self.discriminator.buffers()):
                b.copy_(store[("buffer", i)])
            for p in list(self.optimizer.state.keys()):
                if id(p) not in snap["opt_params"]:
                    del self.optimizer.state[p]  # the failed call created it
                    continue
                state = self.optimizer.state[p]
                for k in list(state.keys()):
                    if ("opt", id(p), k) in keys:
                        state[k].copy_(store[("opt", id(p), k)])
                    elif (id(p), k) in snap["scalars"]:
                        state[k] = snap["scalars"][(id(p), k)]
        self.delta = snap["delta"]
        if snap["ttur"] is not None:
            steps_d, sched_state, lrs = snap["ttur"]
            self.two_timescale.steps_d = steps_d
            if sched_state is not None:
                self.two_timescale.d_scheduler.load_state_dict(sched_state)
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr

    def _ensure_delta(self, x_real: torch.Tensor) -> torch.Tensor:
        d = self.delta
        if d is None or d.shape != x_real.shape or d.dtype != x_real.dtype or d.device != x_real.device:
            d = torch.zeros_like(x_real)
        return d

    def _backward(self, loss: torch.Tensor, scaler) -> None:
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def _opt_step(self, scaler) -> None:
        if self.two_timescale is not None:
            self.two_timescale.step_d(scaler=scaler)
            if scaler is not None:
                scaler.update()
        elif scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()

    def _check(self, named: list[tuple[str, torch.Tensor]], snap) -> None:
        """One host sync for all the values of a replay; on failure undo the call and name the culprit."""
        finite = torch.stack([torch.isfinite(v.detach()).all() for _, v in named])
        if bool(finite.all()):
            return
        bad = ", ".join(name for (name, _), ok in zip(named, finite.tolist()) if not ok)
        if snap is not None:
            self._restore(snap)
            raise FloatingPointError(f"FreeAdvDiscriminator: non-finite {bad}; D, optimizer and delta unchanged")
        raise FloatingPointError(f"FreeAdvDiscriminator: non-finite {bad}")

    def step(self, x_real: torch.Tensor, x_fake: torch.Tensor, *d_args: Any, y_real: torch.Tensor | None = None,
             fake_args: tuple | None = None, fake_kwargs: dict | None = None, scaler: Any = None,
             **d_kwargs: Any) -> dict[str, float]:
        """Run the replays on one batch; returns the last replay's statistics.

        Extra positional and keyword arguments go to D on both halves, unless
        ``fake_args`` / ``fake_kwargs`` give the fake half its own (a
        projection D: ``fa.step(x, fake, y_real_labels, fake_args=(y_fake,))``).
        ``y_real`` is the label target of the ``"hinge_ac"`` loss. With a ``GradScaler`` the losses are
        scaled for backward (the sign of the input gradient is unaffected) and
        the optimizer is stepped through it.
        """
        check_tensor("x_real", x_real)
        check_tensor("x_fake", x_fake)
        if self.loss == "hinge_ac" and y_real is None:
            raise ValueError("Invalid y_real: the 'hinge_ac' loss needs the real batch's labels")
        if fake_args is not None and not isinstance(fake_args, (tuple, list)):
            raise TypeError(f"Invalid fake_args: expected a tuple, got {type(fake_args).__name__}")
        if fake_kwargs is not None and not isinstance(fake_kwargs, dict):
            raise TypeError(f"Invalid fake_kwargs: expected a dict, got {type(fake_kwargs).__name__}")
        f_args = tuple(d_args if fake_args is None else fake_args)
        f_kwargs = d_kwargs if fake_kwargs is None else fake_kwargs
        x_fake = x_fake.detach()
        x_real = x_real.detach()
        delta = self._ensure_delta(x_real)
        # Forwards move BatchNorm statistics and earlier replays step D: keep a copy to undo them.
        snap = self._snapshot() if self.atomic else None
        D = self.discriminator
        loss_r = loss_f = None
        for _ in range(self.replays):
            self.optimizer.zero_grad(set_to_none=True)
            x_adv = (x_real + delta).requires_grad_(True)
            loss_r = self._real_loss(D(x_adv, *d_args, **d_kwargs), y_real)
            self._backward(loss_r, scaler)
            grad_x = x_adv.grad
            if scaler is not None:
                grad_x = grad_x / scaler.get_scale()
            if self.steps_per_replay == 2:
                self._check([("loss_real", loss_r), ("input gradient", grad_x)], snap)
                self._opt_step(scaler)
                self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                delta = perturbation_step(delta, grad_x, self.step_size, self.epsilon, self.norm, x=x_real,
                                          data_range=self.data_range)
            loss_f = self._fake_loss(D(x_fake, *f_args, **f_kwargs))
            self._backward(loss_f, scaler)
            checks = [("loss_fake", loss_f)]
            if self.steps_per_replay == 1:
                checks = [("loss_real", loss_r), ("input gradient", grad_x)] + checks
            self._check(checks, snap)
            self._opt_step(scaler)
        self.delta = delta
        self.steps += 1
        self.last = {"loss_real": float(loss_r.detach()), "loss_fake": float(loss_f.detach()),
                     "delta_max": float(delta.abs().max()) if delta.numel() else 0.0}
        if self.callback is not None:
            self.callback(self.last)
        return self.last

    # ------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "epsilon": self.epsilon, "step_size": self.step_size, "replays": self.replays,
                "norm": self.norm, "data_range": self.data_range, "steps_per_replay": self.steps_per_replay,
                "alpha_f": self.alpha_f, "atomic": self.atomic, "steps": self.steps,
                "delta": None if self.delta is None else self.delta.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_state_keys("state", state, ("loss", "epsilon", "step_size", "replays", "norm", "data_range",
                                          "steps_per_replay", "alpha_f", "steps", "delta"))
        delta = state["delta"]
        if delta is not None and not isinstance(delta, torch.Tensor):
            raise TypeError(f"Invalid state['delta']: expected a tensor or None, got {type(delta).__name__}")
        self._configure(loss=state["loss"], epsilon=state["epsilon"], step_size=state["step_size"],
                        replays=state["replays"], norm=state["norm"], data_range=state["data_range"],
                        steps_per_replay=state["steps_per_replay"], alpha_f=state["alpha_f"])
        self.atomic = bool(state.get("atomic", self.atomic))
        self.steps = int(state["steps"])
        self.delta = None if delta is None else delta.clone()

    def __repr__(self) -> str:
        return (f"FreeAdvDiscriminator(loss={self.loss!r}, epsilon={self.epsilon}, step_size={self.step_size}, "
                f"replays={self.replays}, norm={self.norm!r})")
