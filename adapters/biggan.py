"""Adapter for BigGAN-PyTorch (ajbrock/BigGAN-PyTorch): every technique without editing its code.

Two lines in BigGAN's ``train.py`` (after its imports), or the launcher
``gan-optim biggan --repo PATH --technique aw -- <train.py arguments>``::

    from gan_optim.adapters import biggan
    biggan.patch("aw")                      # or "wegan", "adaptive", "ttur", "freeadv", "none"

What is replaced, and why:

- ``train_fns.GAN_training_function`` (looked up by ``train.run`` at call time)
  becomes a factory with the same signature that builds our components for
  the G/D it receives, then returns

  * for ``aw`` / ``wegan``: BigGAN's own ``train(x, y)``, unchanged. These
    techniques only need D's outputs, so the hooks sit one level lower, on
    ``losses.discriminator_loss`` / ``losses.generator_loss`` (also looked up at
    call time). The hooks wrap the codebase's own loss functions: yours run
    (margins, prints and all), and the technique reweights what they return,
    through the same per-call pieces as ``gan-optim run``'s named-loss hook
    (:mod:`gan_optim.adapters.named`).
  * for ``none`` / ``adaptive`` / ``ttur`` / ``freeadv``: our ``train(x, y)``,
    which does what BigGAN's does (D steps with accumulation, optional
    ``toggle_grads`` and ortho regularisation, the G step, EMA, the same
    returned keys ``G_loss``, ``D_loss_real``, ``D_loss_fake``) and changes only
    the schedule (adaptive), the optimizer steps (ttur) or the D step
    (freeadv). With ``none`` it is bit-identical to BigGAN's.

Our components' state is written into BigGAN's ``state_dict`` under
``"gan_optim"`` after every iteration, so ``utils.save_weights`` checkpoints it;
on ``--resume`` the factory reads it back from the checkpoint file.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from typing import Any, Callable

import torch

from gan_optim._checks import plain_tensor

from . import _patching
from ._techniques import build_components, check_options
from .named import AWOnNamedLoss, WeGANOnNamedLoss, bind_call

__all__ = ["patch", "unpatch", "make_training_function", "active_patch"]

logger = logging.getLogger(__name__)

_REGISTRY = _patching.Registry("biggan")
active_patch = _REGISTRY.active_patch
unpatch = _REGISTRY.unpatch
_STATE_KEY = "gan_optim"
#: The snapshot the adapter is written against.
TESTED_SNAPSHOT = "BigGAN-PyTorch 98459431"
#: Code fingerprints (``_patching.source_fingerprint``) of the upstream functions the adapter may set aside:
#: the tested snapshot's ``train_fns.GAN_training_function`` (replaced by ``none``, ``adaptive``, ``ttur`` and
#: ``freeadv``). Add yours (the launcher's ``--trust-fingerprint``) once our replacement does what your
#: edited copy does.
TRUSTED_FINGERPRINTS: set[str] = {"6adb3421ce27591c"}
#: The tested ``GAN_training_function``'s statement lines (``_patching.line_keys``), to name the lines you changed.
_TESTED_LINES = (
    "0:b93437f7 1:5d77f4e3 2:2eb52793 2:08c09fab 2:a6b10ffd 2:5ec592b8 2:9480d6f9 2:e4b7cecd 3:bd924e61 3:023b87d8 "
    "2:24443d29 3:08c09fab 3:7604d9ef 4:11f6ff02 4:59058c7d 4:089f040f 4:bc8222ac 4:debdd24d 4:882a0908 4:5dd567aa "
    "3:73a14a10 4:7310a995 4:410c2c1b 3:8d93517e 2:e4b7cecd 3:41b2a8bf 3:0ff63675 2:2eb52793 2:5b5c8eea 3:11f6ff02 "
    "3:59058c7d 3:ce441aee 3:0b14d834 3:2de00f3d 2:56ae2567 3:2e682083 3:7b115ad2 2:1a45dacc 2:9ed3bde8 3:258b2e7e "
    "2:c2d2aa9e 2:df048c36 1:d3955936")
#: ``freeadv`` computes D's loss itself: the tested snapshot's D losses it stands for (fingerprint -> its
#: ``loss`` option), and their statement lines.
_D_LOSSES = {"446192fb7e294be2": ("hinge", "0:aa6e9fa5 1:70e53b6d 1:78806dea 1:7ac75f87"),
             "28b9bffd226bf11a": ("bce", "0:4d0bcdb9 1:55fa3b85 1:0f750174 1:f90ebf83")}


# --------------------------------------------------------------------------- training function
def make_training_function(G, D, GD, z_, y_, ema, state_dict: dict, config: dict, *,
                           components: dict[str, Any] | None = None, losses: types.ModuleType,
                           utils: types.ModuleType, acted: Callable[[str], None] | None = None,
                           ) -> Callable[[torch.Tensor, torch.Tensor], dict[str, float]]:
    """Our ``train(x, y)`` for BigGAN, following ``train_fns.GAN_training_function``'s contract.

    ``components`` (from :func:`~gan_optim.adapters._techniques.build_components`)
    decide what changes: ``"adaptive"`` picks the D or the G part per call,
    ``"ttur"`` steps the optimizers, ``"freeadv"`` replaces the D step; with
    none of them this is BigGAN's training function, bit for bit.
    ``losses`` and ``utils`` are BigGAN's modules; their functions are looked
    up at call time, as BigGAN does, so loss hooks apply here too.
    ``acted(name)`` is told each time a component acts.
    """
    components = components or {}
    acted = acted or (lambda name: None)
    sched = components.get("adaptive")
    tt = components.get("ttur")
    fa = components.get("freeadv")
    bs = config["batch_size"]
    n_d_acc = config["num_D_accumulations"]
    n_g_acc = config["num_G_accumulations"]
    if fa is not None and (n_d_acc != 1 or config["D_ortho"] > 0.0):
        # Free adversarial training steps the optimizer itself, once per replay:
        # there is no single gradient to accumulate into or to regularise.
        raise _patching.AdapterError(
            f"freeadv steps D once per replay, so BigGAN's --num_D_accumulations must be 1 and --D_ortho 0 "
            f"(got {n_d_acc} and {config['D_ortho']})")

    def opt_step(which: str) -> None:
        if tt is not None:
            tt.step(which)
            acted("ttur")
        else:
            (D if which == "D" else G).optim.step()

    def toggle(d_on: bool) -> None:
        if config["toggle_grads"]:
            utils.toggle_grad(D, d_on)
            utils.toggle_grad(G, not d_on)

    def fake_batch() -> tuple[torch.Tensor, torch.Tensor]:
        # G's output for the free adversarial D step, cast as G_D does.
        with torch.no_grad():
            z, y = plain_tensor(z_[:bs]), plain_tensor(y_[:bs])
            G_z = G(z, G.shared(y))
            if getattr(G, "fp16", False) and not getattr(D, "fp16", False):
                G_z = G_z.float()
            if getattr(D, "fp16", False) and not getattr(G, "fp16", False):
                G_z = G_z.half()
        return G_z, y

    def d_part(xs, ys):
        counter = 0
        loss_real = loss_fake = d_fake = None
        for _ in range(config["num_D_steps"]):
            D.optim.zero_grad()
            for _ in range(n_d_acc):
                z_.sample_()
                y_.sample_()
                if fa is not None:
                    G_z, y_fake = fake_batch()
                    stats = fa.step(xs[counter], G_z, ys[counter], fake_args=(y_fake,))
                    acted("freeadv")
                    loss_real, loss_fake = stats.loss_real, stats.loss_fake
                    d_fake = None
                else:
                    d_fake, d_real = GD(z_[:bs], y_[:bs], xs[counter], ys[counter], train_G=False,
                                        split_D=config["split_D"])
                    loss_real, loss_fake = losses.discriminator_loss(d_fake, d_real)
                    d_loss = (loss_real + loss_fake) / float(n_d_acc)
                    d_loss.backward()
                counter += 1
            if fa is None:
                if config["D_ortho"] > 0.0:
                    logger.debug("using modified ortho reg in D")
                    utils.ortho(D, config["D_ortho"])
                opt_step("D")
        return loss_real, loss_fake, d_fake

    def g_part():
        G.optim.zero_grad()
        g_loss = d_fake = None
        g_loss_mean = 0.0  # over the accumulations, undivided: the scale of a D iteration's G loss
        for _ in range(n_g_acc):
            z_.sample_()
            y_.sample_()
            d_fake = GD(z_, y_, train_G=True, split_D=config["split_D"])
            g_loss = losses.generator_loss(d_fake) / float(n_g_acc)
            g_loss.backward()
            g_loss_mean = g_loss_mean + plain_tensor(g_loss).detach()
        if config["G_ortho"] > 0.0:
            logger.debug("using modified ortho reg in G")
            utils.ortho(G, config["G_ortho"], blacklist=[p for p in G.shared.parameters()])
        opt_step("G")
        return g_loss, d_fake, g_loss_mean

    def train(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        G.optim.zero_grad()
        D.optim.zero_grad()
        xs = torch.split(x, bs)
        ys = torch.split(y, bs)
        choice = sched.next_update() if sched is not None else "both"
        if sched is not None:
            acted("adaptive")
        if choice in ("both", "D"):
            toggle(True)
            loss_real, loss_fake, d_fake_d = d_part(xs, ys)
            toggle(False)
        if choice in ("both", "G"):
            if choice == "G":
                toggle(False)
            g_loss, d_fake_g, g_loss_mean = g_part()  # zeroes G's gradients first, as BigGAN does
            if sched is not None:
                # BigGAN logs the last accumulation's loss / n; the scheduler (and the log of an
                # adaptive run, whose D iterations report an undivided loss) needs the mean.
                g_loss = g_loss_mean
        if choice == "D":
            # The idle network's loss from outputs we already have (AdaptiveScheduler's contract).
            with torch.no_grad():
                g_loss = losses.generator_loss(d_fake_d.detach())
        elif choice == "G":
            # The D loss needs D on the real batch: one no-grad forward.
            with torch.no_grad():
                d_real = D(xs[0], ys[0])
                loss_real, loss_fake = losses.discriminator_loss(d_fake_g.detach(), d_real)
        if config["ema"]:
            ema.update(state_dict["itr"])
        if sched is not None:
            sched.observe(loss_g=plain_tensor(g_loss).detach().float(),
                          loss_d=(plain_tensor(loss_real) + plain_tensor(loss_fake)).detach().float())
        return {"G_loss": float(g_loss.item()), "D_loss_real": float(loss_real.item()),
                "D_loss_fake": float(loss_fake.item())}

    return train


# --------------------------------------------------------------------------- patching
def _resume_components(handle: _patching.Patch, state_dict: dict, config: dict, utils: types.ModuleType) -> None:
    """On ``--resume``, read our components' state from BigGAN's checkpoint file.

    ``utils.load_weights`` restores only the keys the fresh ``state_dict``
    already has, and ours is added later (at the first iteration), so we read
    the file ourselves, from the path ``utils.save_weights`` writes.
    """
    if not config.get("resume") or not config.get("weights_root"):
        return
    name = config.get("experiment_name") or utils.name_from_config(config)
    suffix = config.get("load_weights") or ""
    path = os.path.join(config["weights_root"], name, "state_dict" + (f"_{suffix}" if suffix else "") + ".pth")
    if not os.path.exists(path):
        return
    # The file is the user's own checkpoint and holds BigGAN's config (functions, modules).
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if _STATE_KEY in saved:
        handle.load_state_dict(saved[_STATE_KEY])
        state_dict[_STATE_KEY] = saved[_STATE_KEY]
        logger.info("gan_optim: restored %s state from %s", handle.technique, path)


def todays_pytorch_fixes(utils: types.ModuleType | str | None = None) -> _patching.Patch:
    """Two breakages of BigGAN-PyTorch (98459431) on today's PyTorch, fixed without editing the checkout.

    - ``utils.Distribution.to`` assumes every tensor of the class carries a
      ``dist_type``; tensors *computed from* one (G's samples from ``fixed_z``)
      are of the class but do not, so torchvision's ``save_image`` fails at the
      first ``--save_every``. Such a tensor now converts as a plain tensor.
    - ``utils.load_weights`` reads the files ``utils.save_weights`` wrote with
      ``torch.load``, whose default became ``weights_only=True`` (PyTorch 2.6):
      ``state_dict.pth`` holds BigGAN's config and ``--resume`` fails. Inside
      ``load_weights`` only, and only for files under the ``weights_root`` it is
      given, ``torch.load`` now defaults to ``weights_only=False``: those are the
      files the run itself wrote (trust them as you trust your checkout).

    The launcher applies these (``gan-optim biggan ... --no-compat`` leaves them out);
    ``.undo()`` restores both.
    """
    utils_mod = _patching.resolve_module(utils, "utils")
    handle = _patching.Patch("biggan", "compat", {})
    Distribution = getattr(utils_mod, "Distribution", None)
    original_to = getattr(Distribution, "to", None)

    def to(self, *args, **kwargs):
        if not hasattr(self, "dist_type"):  # computed from a Distribution, not one itself
            return torch.Tensor.to(self.as_subclass(torch.Tensor), *args, **kwargs)
        return original_to(self, *args, **kwargs)

    original_load_weights = getattr(utils_mod, "load_weights", None)
    torch_module = getattr(original_load_weights, "__globals__", {}).get("torch", torch)

    def load_weights(G, D, state_dict, weights_root, experiment_name, *args, **kwargs):
        root = os.path.abspath(os.path.join(weights_root, experiment_name))
        real_load = torch_module.load

        def load(f, *a, **k):
            if isinstance(f, (str, os.PathLike)) and os.path.abspath(f).startswith(root + os.sep):
                k.setdefault("weights_only", False)
            return real_load(f, *a, **k)

        torch_module.load = load
        try:
            assert original_load_weights is not None
            return original_load_weights(G, D, state_dict, weights_root, experiment_name, *args, **kwargs)
        finally:
            torch_module.load = real_load

    # A checkout without these pieces (another snapshot, a stand-in) needs no fix for them.
    if Distribution is not None and hasattr(Distribution, "init_distribution"):
        handle.replace(Distribution, "to", to)
    if original_load_weights is not None:
        handle.replace(utils_mod, "load_weights", load_weights)
    return handle


def patch(technique: str = "none", *, losses: types.ModuleType | str | None = None,
          train_fns: types.ModuleType | str | None = None, **options: Any) -> _patching.Patch:
    """Apply ``technique`` to BigGAN-PyTorch's training; returns a handle with ``.undo()``.

    Args:
        technique: ``"aw"``, ``"wegan"``, ``"adaptive"``, ``"ttur"``, ``"freeadv"`` or ``"none"``.
        losses, train_fns: BigGAN's modules (default: ``import losses`` / ``import train_fns``
            from ``sys.path``, i.e. the repository you run from).
        **options: the technique's options (see ``gan_optim.adapters.OPTIONS``), e.g.
            ``patch("aw", loss="bce")`` for BigGAN's DCGAN losses, ``patch("wegan", eta=0.01)``,
            ``patch("ttur", lr_g=1e-4, lr_d=4e-4)``, ``patch("freeadv", epsilon=0.01)``.

    Applying the same technique and options again returns the active handle;
    a different one raises until :func:`unpatch` is called.
    """
    options = check_options(technique, options)
    losses_mod = _patching.resolve_module(losses, "losses")
    train_fns_mod = _patching.resolve_module(train_fns, "train_fns")
    found = _patching.existing(train_fns_mod.GAN_training_function, "biggan", technique, options)
    if found is not None:
        return found
    if technique not in ("aw", "wegan"):  # these hook the losses and keep BigGAN's training function
        _patching.check_unmodified(train_fns_mod.GAN_training_function, TRUSTED_FINGERPRINTS,
                                   what="train_fns.GAN_training_function", snapshot=TESTED_SNAPSHOT,
                                   adapter="biggan", technique=technique, tested_lines=_TESTED_LINES)
    if technique == "freeadv":
        _check_freeadv_loss(losses_mod.discriminator_loss, options["loss"])
    original_factory = train_fns_mod.GAN_training_function
    utils_mod = original_factory.__globals__.get("utils") or _patching.resolve_module(None, "utils")
    handle = _patching.Patch("biggan", technique, options)
    handle.called_through = {"aw": "losses.discriminator_loss", "wegan": "losses.generator_loss"}.get(
        technique, "train_fns.GAN_training_function")

    def GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config):
        handle.components = build_components(technique, options, G, D, G.optim, D.optim)
        _resume_components(handle, state_dict, config, utils_mod)
        if technique in ("aw", "wegan"):
            # Loss-level techniques: BigGAN's own training function, our loss hooks.
            inner = original_factory(G, D, GD, z_, y_, ema, state_dict, config)
        else:
            inner = make_training_function(G, D, GD, z_, y_, ema, state_dict, config,
                                           components=handle.components, losses=losses_mod, utils=utils_mod,
                                           acted=handle.acted)

        def train(x, y):
            out = inner(x, y)
            handle.iterations += 1
            handle.check_acted()  # a technique that never acts must not report a run as its own
            if handle.components:
                # save_weights pickles state_dict: our state rides along in BigGAN's checkpoints.
                state_dict[_STATE_KEY] = handle.state_dict()
            return out

        return train

    GAN_training_function.__doc__ = original_factory.__doc__
    handle.replace(train_fns_mod, "GAN_training_function", GAN_training_function)

    if technique == "aw":
        handle.replace(losses_mod, "discriminator_loss", _aw_discriminator_loss(handle, losses_mod.discriminator_loss))
    elif technique == "wegan":
        handle.replace(losses_mod, "generator_loss", _wegan_generator_loss(handle, losses_mod.generator_loss))

    return _REGISTRY.add(handle)


def _check_freeadv_loss(discriminator_loss: Callable, loss: str) -> None:
    """``freeadv`` computes D's loss itself: refuse a ``losses.discriminator_loss`` it would not stand for."""
    found = _patching.source_fingerprint(discriminator_loss)
    if found in TRUSTED_FINGERPRINTS:
        return
    known = _D_LOSSES.get(found or "")
    if known is None:
        tested = _D_LOSSES["446192fb7e294be2" if loss == "hinge" else "28b9bffd226bf11a"][1]
        _patching.check_unmodified(
            discriminator_loss, TRUSTED_FINGERPRINTS, what="losses.discriminator_loss", snapshot=TESTED_SNAPSHOT,
            adapter="biggan", technique="freeadv", tested_lines=tested,
            consequence=f"freeadv computes D's loss itself (--loss {loss}), so your loss would not run")
    elif known[0] != loss:
        raise _patching.AdapterError(
            f"losses.discriminator_loss is BigGAN's {getattr(discriminator_loss, '__name__', '?')} ({known[0]}), "
            f"but freeadv would train D with --loss {loss}: pass --loss {known[0]}")


def _aw_discriminator_loss(handle: _patching.Patch, user_loss: Callable) -> Callable:
    """``losses.discriminator_loss`` under aw: the codebase's own loss, its two parts reweighted by aw
    (the named-loss hook's :class:`~gan_optim.adapters.named.AWOnNamedLoss` on the parts it returns)."""
    on_loss = AWOnNamedLoss(f"losses.discriminator_loss ({getattr(user_loss, '__name__', '?')})", "dis_real",
                            "dis_fake", parts="returned", error=_patching.AdapterError, d_sign_option=None)

    def discriminator_loss(dis_fake, dis_real):
        aw = _component(handle, "aw")
        # aw takes each part's gradient through D's graph; keep that graph when the calling code reads
        # D's outputs again (a drift term, a penalty), free it otherwise (the memory of a plain step).
        keep = _patching.outputs_used_after_call(sys._getframe(1), "discriminator_loss")
        bound = bind_call(discriminator_loss, (dis_fake, dis_real), {})
        assert bound is not None
        # BigGAN backpropagates loss_real + loss_fake: the pair keeps your loss's values, its sum has aw's gradient.
        out = on_loss(user_loss, bound, aw, retain_graph=keep)
        handle.acted("aw")
        return out

    return discriminator_loss


def _wegan_generator_loss(handle: _patching.Patch, user_loss: Callable) -> Callable:
    """``losses.generator_loss`` under wegan: the codebase's own loss, its samples reweighted by WeGAN
    (the named-loss hook's :class:`~gan_optim.adapters.named.WeGANOnNamedLoss`; your loss runs once per call)."""
    on_loss = WeGANOnNamedLoss(f"losses.generator_loss ({getattr(user_loss, '__name__', '?')})", "dis_fake",
                               check=False, error=_patching.AdapterError)

    def generator_loss(dis_fake):
        wegan = _component(handle, "wegan")
        bound = bind_call(generator_loss, (dis_fake,), {})
        assert bound is not None
        out = on_loss(user_loss, bound, wegan)
        handle.acted("wegan")
        return out

    return generator_loss


def _component(handle: _patching.Patch, key: str) -> Any:
    comp = handle.components.get(key)
    if comp is None:
        raise RuntimeError(f"gan_optim biggan patch ({handle.technique}): the loss hook was called before "
                           "train_fns.GAN_training_function built the components for your G and D")
    return comp
