"""gan_optim: drop-in PyTorch components that make GAN training faster and steadier.

Five techniques, each a stateful class over a pure formula in
:mod:`gan_optim.functional`:

- :class:`AdaptiveScheduler` (Ouyang & Agam): update D or G by loss change ratios.
- :class:`AWDiscriminatorLoss` (Zadorozhnyy, Cheng & Ye): adaptive weighted D loss.
- :class:`WeightedGeneratorLoss` (Pantazis et al., WeGAN): per-sample G weights.
- :class:`TwoTimescale` (Heusel et al., TTUR): G and D on their own time scales.
- :class:`FreeAdvDiscriminator` (Zhong, Liu & Hsieh, FastGAN): free adversarial D training.

Every component has ``register_step_post_hook(hook) -> RemovableHandle`` (``hook(component,
stats)``, one stats type each) and a versioned ``state_dict()`` / validated, all-or-nothing
``load_state_dict()``. :mod:`gan_optim.testing` (needs hypothesis) is a property-testing kit.
"""

from . import functional
from .adaptive import AdaptiveScheduler, SchedulerStats
from .aw import AWDiscriminatorLoss, AWStats
from .freeadv import FreeAdvDiscriminator, FreeAdvStats
from .ttur import TTURStats, TwoTimescale, TwoTimescaleWarning
from .wegan import WeGANStats, WeightedGeneratorLoss

__version__ = "0.2.0"

__all__ = [
    "AWDiscriminatorLoss",
    "AWStats",
    "AdaptiveScheduler",
    "FreeAdvDiscriminator",
    "FreeAdvStats",
    "SchedulerStats",
    "TTURStats",
    "TwoTimescale",
    "TwoTimescaleWarning",
    "WeGANStats",
    "WeightedGeneratorLoss",
    "functional",
]
