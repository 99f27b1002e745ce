"""gan_optim: drop-in PyTorch components that make GAN training faster and steadier.

Five techniques, each a stateful class over a pure formula in
:mod:`gan_optim.functional`:

- :class:`AdaptiveScheduler` (Ouyang & Agam): update D or G by loss change ratios.
- :class:`AWDiscriminatorLoss` (Zadorozhnyy, Cheng & Ye): adaptive weighted D loss.
- :class:`WeightedGeneratorLoss` (Pantazis et al., WeGAN): per-sample G weights.
- :class:`TwoTimescale` (Heusel et al., TTUR): G and D on their own time scales.
- :class:`FreeAdvDiscriminator` (Zhong, Liu & Hsieh, FastGAN): free adversarial D training.
"""

from . import functional
from .adaptive import AdaptiveScheduler
from .aw import AWDiscriminatorLoss, AWStats
from .freeadv import FreeAdvDiscriminator
from .ttur import TwoTimescale, TwoTimescaleWarning
from .wegan import WeightedGeneratorLoss

__version__ = "0.2.0"

__all__ = [
    "AWDiscriminatorLoss",
    "AWStats",
    "AdaptiveScheduler",
    "FreeAdvDiscriminator",
    "TwoTimescale",
    "TwoTimescaleWarning",
    "WeightedGeneratorLoss",
    "functional",
]
