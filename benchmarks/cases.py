"""The benchmark's rows: for each component, a hand-written plain step and the same step with the component."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as nnf

import gan_optim.functional as F
from gan_optim.adaptive import AdaptiveScheduler
from gan_optim.aw import AWDiscriminatorLoss
from gan_optim.freeadv import FreeAdvDiscriminator
from gan_optim.ttur import TwoTimescale
from gan_optim.wegan import WeightedGeneratorLoss

from .models import _Setup

__all__ = ["COMPONENTS", "Step", "make_case"]

Step = Callable[[], None]

#: Component rows, in table order.
COMPONENTS = (
    "aw",                # AWDiscriminatorLoss(x_real, x_fake) vs a plain D step (two half forwards)
    "aw-concat",         # aw.from_outputs on one forward over cat([fake, real]) vs the plain concatenated step
    "aw-original-ref",   # reference: two retain_graph backward passes on the shared graph (not library code)
    "wegan",             # WeightedGeneratorLoss vs softplus(-D(G(z))).mean()
    "scheduler-D",       # AdaptiveScheduler bookkeeping on a D iteration
    "scheduler-G",       # ... on a G iteration, the no-grad D(x_real) forward excluded (precomputed)
    "scheduler-G+fwd",   # ... on a G iteration, that forward included
    "ttur",              # TwoTimescale.zero_grad/step_d vs opt_d.zero_grad/step
    "free-adv-r1",       # FreeAdvDiscriminator.step, replays=1, per replay, vs a plain D step
    "free-adv-r2",       # replays=2, per replay (the default: no per-call snapshot)
    "free-adv-r2-atomic",  # replays=2, atomic=True (a snapshot for the rollback), per replay
    "null",              # control: the plain D step against itself; its distance from 1 is the noise floor
)


# ----------------------------------------------------------------------- steps
def _scores(out: torch.Tensor) -> torch.Tensor:
    return out.reshape(-1)


def _hinge_d(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return torch.relu(1.0 - _scores(d_real)).mean() + torch.relu(1.0 + _scores(d_fake)).mean()


def _plain_d_step(s: _Setup) -> Step:
    """The usual D step: a forward per half, the summed hinge loss, one backward, Adam."""
    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        _hinge_d(s.D(s.x_real), s.D(s.x_fake)).backward()
        s.opt_d.step()
    return step


def _plain_concat_d_step(s: _Setup) -> Step:
    """BigGAN's D step: one forward over cat([fake, real]), split, hinge loss, one backward, Adam."""
    n_fake = s.x_fake.shape[0]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        out = _scores(s.D(torch.cat([s.x_fake, s.x_real])))
        _hinge_d(out[n_fake:], out[:n_fake]).backward()
        s.opt_d.step()
    return step


def _plain_g_step(s: _Setup) -> Step:
    """The usual non-saturating G step: softplus(-D(G(z))).mean(), one backward, Adam."""
    def step() -> None:
        s.opt_g.zero_grad(set_to_none=True)
        nnf.softplus(-_scores(s.D(s.G(s.z)))).mean().backward()
        s.opt_g.step()
    return step


def _aw_step(s: _Setup) -> Step:
    aw = AWDiscriminatorLoss(s.D, loss="hinge")

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        aw(s.x_real, s.x_fake).backward()
        s.opt_d.step()
    return step


def _aw_concat_step(s: _Setup) -> Step:
    aw = AWDiscriminatorLoss(s.D, loss="hinge")
    n_fake = s.x_fake.shape[0]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        out = _scores(s.D(torch.cat([s.x_fake, s.x_real])))
        aw.from_outputs(out[n_fake:], out[:n_fake]).backward()
        s.opt_d.step()
    return step


def _original_aw_weights(g_real: torch.Tensor, g_fake: torch.Tensor, score_real: float, score_fake: float,
                         ) -> tuple[float, float]:
    """Algorithm 1 with the host syncs the original code makes (its weights are Python floats).

    The formula is the library's (:mod:`gan_optim.functional`, written once); the
    ``.item()`` calls are what make this row cost what the original approach costs.
    """
    norm_r, norm_f, cos = F.gradient_geometry_foreach([g_real], [g_fake])
    w_r, w_f, _ = F.aw_weights_from_geometry(norm_r, norm_f, cos, torch.tensor(score_real, dtype=torch.float64),
                                             torch.tensor(score_fake, dtype=torch.float64))
    return w_r.item(), w_f.item()


def _original_aw_reference_step(s: _Setup) -> Step:
    """The original aw-loss approach on the shared concatenated graph, written from its description.

    Backward of L_r with ``retain_graph=True``, copy the gradients, zero them,
    backward of L_f, copy again, choose the weights from the flattened copies,
    write ``w_r g_r + w_f g_f`` into ``.grad``, step. Two full backward passes
    through the whole concatenated graph. (Backpropagating the weighted loss
    once more instead of writing ``.grad`` would add a third.)
    """
    n_fake = s.x_fake.shape[0]
    params = [p for p in s.D.parameters() if p.requires_grad]

    def step() -> None:
        s.opt_d.zero_grad(set_to_none=True)
        out = _scores(s.D(torch.cat([s.x_fake, s.x_real])))
        d_fake, d_real = out[:n_fake], out[n_fake:]
        loss_real, loss_fake = torch.relu(1.0 - d_real).mean(), torch.relu(1.0 + d_fake).mean()
        loss_real.backward(retain_graph=True)
        g_real = [p.grad.clone() for p in params]
        s.opt_d.zero_grad(set_to_none=True)
        loss_fake.backward()
        g_fake = [p.grad.clone() for p in params]
        w_r, w_f = _original_aw_weights(torch.cat([g.reshape(-1) for g in g_real]),
                                        torch.cat([g.reshape(-1) for g in g_fake]),
                                        torch.sigmoid(d_real.detach()).mean().item(),
                                        torch.sigmoid(d_fake.detach()).mean().item())
        with torch.no_grad():
            for p, gr, gf in zip(params, g_real, g_fake):
                p.grad = w_r * gr + w_f * gf
        s.opt_d.step()
    return step


def _wegan_step(s: _Setup) -> Step:
    wg = WeightedGeneratorLoss(eta=0.01, loss="ns")

    def step() -> None:
        s.opt_g.zero_grad(set_to_none=True)
        wg(s.D(s.G(s.z))).backward()
        s.opt_g.step()
    return step


def _scheduler_d_step(s: _Setup) -> Step:
    """A D iteration with the scheduler: the plain D step plus next_update/observe.

    The idle loss (G's) comes from D's outputs on the fake batch, already there.
    The scheduler's choice is computed and recorded but the step is always a D
    step, so both sides do the same work and the difference is the bookkeeping.
    """
    sched = AdaptiveScheduler(lam=1.0)

    def step() -> None:
        sched.next_update()
        s.opt_d.zero_grad(set_to_none=True)
        d_fake = s.D(s.x_fake)
        loss_d = _hinge_d(s.D(s.x_real), d_fake)
        loss_d.backward()
        s.opt_d.step()
        loss_g = nnf.softplus(-_scores(d_fake.detach())).mean()
        sched.observe(loss_g=loss_g, loss_d=loss_d)
    return step


def _scheduler_g_step(s: _Setup, *, include_forward: bool) -> Step:
    """A G iteration with the scheduler: the plain G step plus the idle D loss and next_update/observe.

    The D loss needs D(x_real) under no_grad; with ``include_forward=False``
    it is computed once outside the timed step (the issue's target excludes
    that forward), with ``True`` every step.
    """
    sched = AdaptiveScheduler(lam=1.0)
    with torch.no_grad():
        precomputed_d_real = s.D(s.x_real)

    def step() -> None:
        sched.next_update()
        s.opt_g.zero_grad(set_to_none=True)
        d_gen = s.D(s.G(s.z))
        loss_g = nnf.softplus(-_scores(d_gen)).mean()
        loss_g.backward()
        s.opt_g.step()
        if include_forward:
            with torch.no_grad():
                d_real = s.D(s.x_real)
        else:
            d_real = precomputed_d_real
        sched.observe(loss_g=loss_g, loss_d=_hinge_d(d_real, d_gen.detach()))
    return step


def _ttur_d_step(s: _Setup) -> Step:
    """The plain D step with TwoTimescale's zero_grad/step_d in place of the optimizer's."""
    tt = TwoTimescale(s.opt_g, s.opt_d)

    def step() -> None:
        tt.zero_grad("D")
        _hinge_d(s.D(s.x_real), s.D(s.x_fake)).backward()
        tt.step_d()
    return step


def _free_adv_step(s: _Setup, replays: int, atomic: bool = False) -> Step:
    fa = FreeAdvDiscriminator(s.D, s.opt_d, loss="hinge", epsilon=6e-3, replays=replays, atomic=atomic)

    def step() -> None:
        fa.step(s.x_real, s.x_fake)
    return step


def make_case(component: str, s: _Setup) -> tuple[Step, Step, int]:
    """``(plain, candidate, work units per candidate call)`` for one row."""
    if component == "aw":
        return _plain_d_step(s), _aw_step(s), 1
    if component == "aw-concat":
        return _plain_concat_d_step(s), _aw_concat_step(s), 1
    if component == "aw-original-ref":
        return _plain_concat_d_step(s), _original_aw_reference_step(s), 1
    if component == "wegan":
        return _plain_g_step(s), _wegan_step(s), 1
    if component == "scheduler-D":
        return _plain_d_step(s), _scheduler_d_step(s), 1
    if component == "scheduler-G":
        return _plain_g_step(s), _scheduler_g_step(s, include_forward=False), 1
    if component == "scheduler-G+fwd":
        return _plain_g_step(s), _scheduler_g_step(s, include_forward=True), 1
    if component == "ttur":
        return _plain_d_step(s), _ttur_d_step(s), 1
    if component in ("free-adv-r1", "free-adv-r2"):
        replays = int(component[-1])
        return _plain_d_step(s), _free_adv_step(s, replays), replays
    if component == "free-adv-r2-atomic":
        return _plain_d_step(s), _free_adv_step(s, 2, atomic=True), 2
    if component == "null":
        # Two closures of the same step, so that nothing (not even the function object) is shared.
        return _plain_d_step(s), _plain_d_step(s), 1
    raise ValueError(f"Invalid component: {component!r} (one of {', '.join(COMPONENTS)})")

