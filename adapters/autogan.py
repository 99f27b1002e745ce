"""Adapter for AutoGAN (VITA-Group/AutoGAN): every technique without editing its code.

Two lines in AutoGAN's ``train.py`` / ``train_derived.py`` (anywhere after
``import``s is fine: names already imported from ``functions`` are rebound),
or the launcher ``gan-optim autogan --repo PATH --technique aw -- <train.py arguments>``::

    from gan_optim.adapters import autogan
    autogan.patch("aw")                     # or "wegan", "adaptive", "ttur", "freeadv", "none"

AutoGAN writes its hinge losses inline in ``functions.train``, so every
technique goes through our replacement ``train`` with the identical signature
``train(args, gen_net, dis_net, gen_optimizer, dis_optimizer, gen_avg_param,
train_loader, epoch, writer_dict, schedulers=None)`` and the same side effects:
a D step per batch, a G step when ``step % args.n_critic == 0``, the
linear LR decay and G's moving average (0.999) after each G step, the
``d_loss`` / ``g_loss`` / ``LR/g_lr`` / ``LR/d_lr`` scalars at the same global
steps, the progress bar and verbose line, and
``writer_dict["train_global_steps"]`` advanced once per batch. With ``none``
it is bit-identical to AutoGAN's.

Where AutoGAN used ``torch.cuda.FloatTensor``, the batch and the noise go to
D's device in float32 (the same values: numpy's float64 noise rounded once).

Our components' state is added to AutoGAN's checkpoints (``utils.utils.save_checkpoint``
is wrapped to store it under ``"gan_optim"``) and read back when
``args.load_path`` resumes a run.
"""

from __future__ import annotations

import logging
import os
import types
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import _patching
from ._techniques import build_components, check_options

__all__ = ["patch", "unpatch", "make_train", "active_patch"]

logger = logging.getLogger(__name__)

_REGISTRY = _patching.Registry("autogan")
active_patch = _REGISTRY.active_patch
unpatch = _REGISTRY.unpatch
_STATE_KEY = "gan_optim"
#: The snapshot the adapter is written against.
TESTED_SNAPSHOT = "AutoGAN a5eeef05"
#: Code fingerprints (``_patching.source_fingerprint``) of ``functions.train`` that the adapter may replace
#: (it replaces it for every technique): the tested snapshot's. Add yours (the launcher's
#: ``--trust-fingerprint``) once our replacement does what your edited copy does.
TRUSTED_FINGERPRINTS: set[str] = {"5776146fc28e7346"}
#: The tested ``functions.train``'s statement lines (``_patching.line_keys``), to name the lines you changed.
_TESTED_LINES = (
    "0:19f00363 1:7e774f7f 1:3af536d6 1:2314161f 1:759f4e38 1:7865f297 2:13231355 2:560fd3c7 2:e4c362f8 2:9ea29b60 "
    "2:7307efb6 2:659ba4f2 2:ab5dfaab 2:8fd269d6 2:ab93d5c1 2:1fc7c999 2:14d7d05d 2:93231dba 2:8f16d8ff 3:bc647b76 "
    "3:0fec940b 3:e67accf4 3:b7343288 3:ae3b6086 3:757f6223 3:16506cad 3:61a94ebd 4:2f919c82 4:b5c0d5e9 4:3ec140d8 "
    "4:b8d37068 4:8c68fca5 3:1cf2cd0f 4:f6bab6f3 3:20f52ece 3:d8f147ae 2:b69564b0 3:1ec9e51d 2:455927f5")


def _hinge_d(d_real: torch.Tensor, fake_validity: torch.Tensor) -> torch.Tensor:
    # AutoGAN's inline D loss, term for term (same order of operations, so the same bits).
    return torch.mean(F.relu(1.0 - d_real)) + torch.mean(F.relu(1 + fake_validity))


def _fake(gen_net: torch.nn.Module, z: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    x_fake = gen_net(z).detach()
    if x_fake.size() != x_real.size():
        raise AssertionError(f"fake batch {tuple(x_fake.size())} != real batch {tuple(x_real.size())}")
    return x_fake


def _retarget_linear_decay(scheduler: Any, lr: float | None) -> None:
    """Make AutoGAN's ``LinearLrDecay`` decay from ``lr`` (it would reset the rate to its own start)."""
    if lr is None or scheduler is None or not hasattr(scheduler, "start_lr"):
        return
    span = scheduler.decay_end_step - scheduler.decay_start_step
    scheduler.start_lr = lr
    scheduler.delta = (lr - scheduler.end_lr) / span


def _resume_components(handle: _patching.Patch, args: Any) -> None:
    load_path = getattr(args, "load_path", None)
    if not load_path:
        return
    path = os.path.join(load_path, "Model", "checkpoint.pth")
    if not os.path.exists(path):
        return
    # The user's own checkpoint; it holds AutoGAN's path_helper dict besides tensors.
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if _STATE_KEY in saved:
        handle.load_state_dict(saved[_STATE_KEY])
        logger.info("gan_optim: restored %s state from %s", handle.technique, path)


def make_train(handle: _patching.Patch, tqdm: Any = None):
    """Our ``functions.train`` for ``handle.technique`` (``tqdm``: AutoGAN's progress bar, if any)."""
    technique = handle.technique

    def train(args, gen_net, dis_net, gen_optimizer, dis_optimizer, gen_avg_param, train_loader, epoch,
              writer_dict, schedulers=None):
        # Components persist across epochs (train runs once per epoch): build them once per G/D pair.
        key = (id(gen_net), id(dis_net), id(gen_optimizer), id(dis_optimizer))
        if handle.bound_to != key:
            handle.components = build_components(technique, handle.options, gen_net, dis_net, gen_optimizer,
                                                 dis_optimizer)
            handle.bound_to = key
            _resume_components(handle, args)
            if technique == "ttur" and schedulers:
                if handle.options["g_schedule"] is not None or handle.options["d_schedule"] is not None:
                    raise _patching.AdapterError("ttur: AutoGAN's --lr_decay and our --g-schedule/--d-schedule both "
                                                 "set the learning rates: use one of them")
                _retarget_linear_decay(schedulers[0], handle.options["lr_g"])
                _retarget_linear_decay(schedulers[1], handle.options["lr_d"])
        comps = handle.components
        aw, wg, sched = comps.get("aw"), comps.get("wegan"), comps.get("adaptive")
        tt, fa = comps.get("ttur"), comps.get("freeadv")

        def opt_step(which: str) -> None:
            if tt is not None:
                tt.step(which)
                handle.acted("ttur")
            else:
                (dis_optimizer if which == "D" else gen_optimizer).step()

        log = writer_dict["writer"]
        g_updates = 0
        gen_net = gen_net.train()
        dis_net = dis_net.train()
        device = next(dis_net.parameters()).device
        d_loss = g_loss = None
        batches = tqdm(train_loader) if tqdm is not None else train_loader
        for batch_index, (imgs, _) in enumerate(batches):
            step = writer_dict["train_global_steps"]
            x_real = imgs.to(device=device, dtype=torch.float32)
            z = torch.as_tensor(np.random.normal(0, 1, (imgs.shape[0], args.latent_dim)), dtype=torch.float32,
                                device=device)
            choice = sched.next_update() if sched is not None else None
            if sched is not None:
                handle.acted("adaptive")
            do_d = choice in (None, "D")
            # The adaptive scheduler replaces n_critic: it alone decides when G steps.
            do_g = step % args.n_critic == 0 if choice is None else choice == "G"

            # ---- discriminator
            d_fake = None
            if do_d:
                if fa is not None:
                    x_fake = _fake(gen_net, z, x_real)
                    stats = fa.step(x_real, x_fake)
                    handle.acted("freeadv")
                    d_loss = (stats.loss_real + stats.loss_fake).detach()
                else:
                    # AutoGAN's order: zero_grad, D(real), G(z), D(fake).
                    dis_optimizer.zero_grad()
                    d_real = dis_net(x_real)
                    x_fake = _fake(gen_net, z, x_real)
                    d_fake = dis_net(x_fake)
                    if aw is not None:
                        aw.from_outputs(d_real, d_fake).backward()
                        handle.acted("aw")
                        # Log the unweighted hinge loss, comparable with a baseline run's d_loss.
                        d_loss = aw.last.loss_real + aw.last.loss_fake
                    else:
                        d_loss = _hinge_d(d_real, d_fake)
                        d_loss.backward()
                    opt_step("D")
                log.add_scalar("d_loss", d_loss.item(), step)

            # ---- generator
            d_fake_g = None
            if do_g:
                gen_optimizer.zero_grad()
                z_g = torch.as_tensor(np.random.normal(0, 1, (args.gen_batch_size, args.latent_dim)),
                                        dtype=torch.float32, device=device)
                d_fake_g = dis_net(gen_net(z_g))
                g_loss = wg(d_fake_g) if wg is not None else -torch.mean(d_fake_g)
                if wg is not None:
                    handle.acted("wegan")
                g_loss.backward()
                opt_step("G")
                if schedulers:
                    rates = [scheduler.step(step) for scheduler in schedulers]  # G's, then D's
                    log.add_scalar("LR/g_lr", rates[0], step)
                    log.add_scalar("LR/d_lr", rates[1], step)
                with torch.no_grad():
                    for param, average in zip(gen_net.parameters(), gen_avg_param):
                        average.mul_(0.999).add_(param, alpha=0.001)
                log.add_scalar("g_loss", g_loss.item(), step)
                g_updates += 1

            # ---- adaptive: the idle network's loss, from outputs already at hand
            if sched is not None:
                with torch.no_grad():
                    if choice == "D":
                        g_loss = -torch.mean(d_fake)
                    else:
                        d_loss = _hinge_d(dis_net(x_real), d_fake_g.detach())
                        log.add_scalar("d_loss", d_loss.item(), step)
                sched.observe(loss_g=g_loss, loss_d=d_loss)

            if g_updates and batch_index % args.print_freq == 0 and tqdm is not None:
                tqdm.write("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]" % (
                    epoch, args.max_epoch, batch_index % len(train_loader), len(train_loader), d_loss.item(),
                    g_loss.item()))
            writer_dict["train_global_steps"] = step + 1
            handle.iterations += 1
            handle.acts_within = max(1, int(args.n_critic))
            handle.check_acted()

    return train


def patch(technique: str = "none", *, functions: types.ModuleType | str | None = None,
          checkpoints: types.ModuleType | str | None = "utils.utils", namespaces: list[dict] | None = None,
          **options: Any) -> _patching.Patch:
    """Apply ``technique`` to AutoGAN's ``functions.train``; returns a handle with ``.undo()``.

    Args:
        technique: ``"aw"``, ``"wegan"``, ``"adaptive"``, ``"ttur"``, ``"freeadv"`` or ``"none"``.
        functions: AutoGAN's ``functions`` module (default: ``import functions`` from ``sys.path``).
        checkpoints: the module with ``save_checkpoint`` (AutoGAN's ``utils.utils``), wrapped to store
            our components' state; ``None`` to leave checkpoints alone.
        namespaces: dicts whose names bound to the original functions are rebound
            (default: the caller's globals, for ``from functions import train`` before the patch).
        **options: the technique's options, e.g. ``patch("wegan", eta=0.01)``,
            ``patch("ttur", lr_g=1e-4, lr_d=4e-4)``, ``patch("freeadv", epsilon=0.01)``.
    """
    options = check_options(technique, options)
    if namespaces is None:
        namespaces = [_patching.caller_globals()]
    functions_mod = _patching.resolve_module(functions, "functions")
    found = _patching.existing(functions_mod.train, "autogan", technique, options)
    if found is not None:
        return found
    _patching.check_unmodified(functions_mod.train, TRUSTED_FINGERPRINTS, what="functions.train",
                               snapshot=TESTED_SNAPSHOT, adapter="autogan", technique=technique,
                               tested_lines=_TESTED_LINES)
    original = functions_mod.train
    handle = _patching.Patch("autogan", technique, options)
    handle.called_through = "functions.train"
    replacement = make_train(handle, tqdm=original.__globals__.get("tqdm"))
    replacement.__doc__ = original.__doc__
    handle.replace(functions_mod, "train", replacement)
    handle.rebind(namespaces, original, replacement)

    if checkpoints is not None:
        try:
            ckpt_mod = _patching.resolve_module(checkpoints, "utils.utils")
        except ImportError:
            ckpt_mod = None
            logger.warning("gan_optim: %s not importable; our components' state will not be checkpointed",
                           checkpoints)
        if ckpt_mod is not None and hasattr(ckpt_mod, "save_checkpoint"):
            original_save = ckpt_mod.save_checkpoint

            def save_checkpoint(states, is_best, output_dir, filename="checkpoint.pth"):
                if handle.active and handle.components:
                    states = {**states, _STATE_KEY: handle.state_dict()}
                return original_save(states, is_best, output_dir, filename)

            handle.replace(ckpt_mod, "save_checkpoint", save_checkpoint)
            handle.rebind(namespaces, original_save, save_checkpoint)

    return _REGISTRY.add(handle)
