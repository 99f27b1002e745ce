"""Pure formulas behind the components: no state, no side effects.

Each stateful class in :mod:`gan_optim` is a thin layer over one of these
(as ``torch.optim.Adam`` is over ``torch.optim.adam``), so they can be
property-tested and reused in any training loop.
"""

from .adaptive import choose_update, loss_change_ratio
from .aw import (
    CASE_NAMES,
    AWStep,
    angle_degrees,
    aw_combine_,
    aw_weights,
    aw_weights_from_geometry,
    gradient_geometry,
    gradient_geometry_foreach,
)
from .freeadv import ascent_direction, initial_perturbation, perturbation_step, perturbed_input, project
from .losses import (
    d_loss_fake,
    d_loss_real,
    fastgan_d_loss_fake,
    fastgan_d_loss_real,
    fastgan_g_loss,
    g_loss_per_sample,
    kl_to_uniform,
)
from .ttur import PolynomialDecay, polynomial_rate, two_timescale_violations
from .wegan import effective_sample_size, wegan_weights, weight_variance

__all__ = [
    "AWStep",
    "CASE_NAMES",
    "PolynomialDecay",
    "angle_degrees",
    "ascent_direction",
    "aw_combine_",
    "aw_weights",
    "aw_weights_from_geometry",
    "choose_update",
    "d_loss_fake",
    "d_loss_real",
    "effective_sample_size",
    "fastgan_d_loss_fake",
    "fastgan_d_loss_real",
    "fastgan_g_loss",
    "g_loss_per_sample",
    "gradient_geometry",
    "gradient_geometry_foreach",
    "kl_to_uniform",
    "loss_change_ratio",
    "initial_perturbation",
    "perturbation_step",
    "perturbed_input",
    "polynomial_rate",
    "project",
    "two_timescale_violations",
    "wegan_weights",
    "weight_variance",
]
