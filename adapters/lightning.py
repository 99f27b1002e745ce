"""PyTorch Lightning support: checkpoint our components with the LightningModule.

gan_optim's components are plain objects with ``state_dict()`` /
``load_state_dict()``, so Lightning does not know about them. The mixin below
adds their state to every Lightning checkpoint and restores it when a fit
resumes from one. It needs nothing from ``lightning`` itself (it only defines
hook methods), so importing it does not import Lightning.

Use with manual optimization (GAN training steps two optimizers)::

    import lightning as L
    from gan_optim import AWDiscriminatorLoss, TwoTimescale
    from gan_optim.adapters.lightning import GanOptimCheckpoints

    class GAN(GanOptimCheckpoints, L.LightningModule):   # the mixin first
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.G, self.D = ..., ...
            self.aw = AWDiscriminatorLoss(self.D)          # components built from modules: here

        def configure_optimizers(self):
            return [torch.optim.Adam(self.G.parameters(), 1e-4), torch.optim.Adam(self.D.parameters(), 3e-4)]

        def build_gan_optim(self):
            # Components built on optimizers: here, on Lightning's wrappers, so that
            # their steps go through Lightning (precision plugins, step counting).
            self.tt = TwoTimescale(*self.optimizers())

See ``examples/lightning_gan.py`` for a complete module.
"""

from __future__ import annotations

import copy
from typing import Any

from gan_optim.adaptive import AdaptiveScheduler
from gan_optim.aw import AWDiscriminatorLoss
from gan_optim.freeadv import FreeAdvDiscriminator
from gan_optim.ttur import TwoTimescale
from gan_optim.wegan import WeightedGeneratorLoss

__all__ = ["COMPONENT_TYPES", "CHECKPOINT_KEY", "GanOptimCheckpoints"]

COMPONENT_TYPES = (AdaptiveScheduler, AWDiscriminatorLoss, FreeAdvDiscriminator, TwoTimescale,
                   WeightedGeneratorLoss)
#: Key of our entry in Lightning's checkpoint dict.
CHECKPOINT_KEY = "gan_optim"


class GanOptimCheckpoints:
    """Mixin for a ``LightningModule``: our components' state in its checkpoints.

    - ``on_save_checkpoint`` stores ``{attribute: component.state_dict()}`` under
      ``checkpoint["gan_optim"]``.
    - ``on_load_checkpoint`` keeps that entry, and ``on_train_start`` (after
      Lightning has restored the weights and optimizers and after
      :meth:`build_gan_optim`) loads it into the components. Components built
      on optimizers can only exist once Lightning has set the optimizers up,
      which happens after ``on_load_checkpoint``; hence the deferral.

    Put the mixin before ``LightningModule`` in the bases. If you override
    one of these hooks, call ``super()``.
    """

    def gan_optim_components(self) -> dict[str, Any]:
        """The components to checkpoint: by default every attribute holding one."""
        return {name: value for name, value in vars(self).items() if isinstance(value, COMPONENT_TYPES)}

    def build_gan_optim(self) -> None:
        """Override to build components that need ``self.optimizers()`` (called at ``on_train_start``)."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super_hook = getattr(super(), "on_save_checkpoint", None)
        if super_hook is not None:
            super_hook(checkpoint)
        checkpoint[CHECKPOINT_KEY] = {name: comp.state_dict() for name, comp in self.gan_optim_components().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super_hook = getattr(super(), "on_load_checkpoint", None)
        if super_hook is not None:
            super_hook(checkpoint)
        self._gan_optim_pending = checkpoint.get(CHECKPOINT_KEY)

    def on_train_start(self) -> None:
        super_hook = getattr(super(), "on_train_start", None)
        if super_hook is not None:
            super_hook()
        self.build_gan_optim()
        pending = getattr(self, "_gan_optim_pending", None)
        if pending:
            components = self.gan_optim_components()
            missing = sorted(set(pending) - set(components))
            if missing:
                raise RuntimeError(f"gan_optim: the checkpoint has state for {', '.join(missing)}, which this "
                                   "module does not have (build them in __init__ or build_gan_optim)")
            # All or nothing: each component validates its own state before changing
            # anything; if a later one refuses, the ones already loaded are put back.
            saved = {name: copy.deepcopy(components[name].state_dict()) for name in pending}
            loaded: list[str] = []
            try:
                for name, state in pending.items():
                    components[name].load_state_dict(state)
                    loaded.append(name)
            except BaseException:
                for name in loaded:
                    components[name].load_state_dict(saved[name])
                raise
            self._realias_optimizers()
        self._gan_optim_pending = None

    def _realias_optimizers(self) -> None:
        """Point Lightning's optimizers back at the state their wrappers now hold.

        A Lightning optimizer wrapper copies the wrapped optimizer's ``__dict__``
        (so both share ``param_groups`` and ``state``), but ``load_state_dict`` on
        the wrapper (which ``TwoTimescale.load_state_dict`` does) rebinds those
        two entries on the wrapper only. Our schedules then set the wrapper's
        rates while Lightning steps the wrapped optimizer with the old ones.
        The loaded values equal what Lightning restored (saved at the same
        time), so sharing the wrapper's objects again is exact.
        """
        try:
            wrappers = self.optimizers()  # type: ignore[attr-defined]  # a LightningModule's
        except RuntimeError:  # no trainer attached (called outside fit)
            return
        for wrapper in wrappers if isinstance(wrappers, (list, tuple)) else [wrappers]:
            inner = getattr(wrapper, "optimizer", None)
            if inner is None or inner is wrapper:
                continue
            if inner.param_groups is not wrapper.param_groups or inner.state is not wrapper.state:
                inner.__dict__["param_groups"] = wrapper.param_groups
                inner.__dict__["state"] = wrapper.state
