"""Technique names, their options, and the components each one builds for a G/D pair."""

from __future__ import annotations

from typing import Any

import torch

from gan_optim.adaptive import AdaptiveScheduler
from gan_optim.aw import AWDiscriminatorLoss
from gan_optim.freeadv import FreeAdvDiscriminator
from gan_optim.ttur import TwoTimescale
from gan_optim.wegan import WeightedGeneratorLoss

__all__ = ["OPTIONS", "TECHNIQUES", "build_components", "check_options"]

#: technique -> its options and their defaults (``None``: the component's own default).
OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "aw": {"loss": "hinge", "alpha1": 0.5, "alpha2": 0.75, "eps": 0.05, "delta": 0.05},
    "wegan": {"eta": 0.01, "loss": "hinge"},
    "adaptive": {"lam": 1.0, "max_consecutive": None},
    "ttur": {"lr_g": None, "lr_d": None, "g_schedule": None, "d_schedule": None},
    "freeadv": {"loss": "hinge", "epsilon": 6e-3, "step_size": None, "replays": 2, "norm": "linf",
                "data_range": (-1.0, 1.0)},
}
TECHNIQUES = tuple(OPTIONS)


def check_options(technique: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate the technique name and option names; returns the options with defaults filled in."""
    if technique not in OPTIONS:
        raise ValueError(f"Invalid technique: {technique!r} (expected one of {', '.join(TECHNIQUES)})")
    unknown = set(options) - set(OPTIONS[technique])
    if unknown:
        allowed = ", ".join(OPTIONS[technique]) or "none"
        raise TypeError(f"Invalid options for technique {technique!r}: {', '.join(sorted(unknown))} "
                        f"(allowed: {allowed})")
    full = {**OPTIONS[technique], **options}
    # The values are checked by the components themselves, built once on a stand-in pair, so that
    # a bad value stops the launcher before the upstream script starts (and no check is written twice).
    G, D = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    build_components(technique, full, G, D, torch.optim.SGD(G.parameters(), lr=0.1),
                     torch.optim.SGD(D.parameters(), lr=0.1))
    return full


def build_components(technique: str, options: dict[str, Any], G: torch.nn.Module, D: torch.nn.Module,
                     opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> dict[str, Any]:
    """The gan_optim objects that ``technique`` needs, bound to this G/D pair and their optimizers.

    Built when the upstream code hands us its networks (not at patch time),
    because the patch is applied before the script builds them.
    """
    o = options
    if technique == "aw":
        return {"aw": AWDiscriminatorLoss(D, loss=o["loss"], alpha1=o["alpha1"], alpha2=o["alpha2"], eps=o["eps"],
                                          delta=o["delta"])}
    if technique == "wegan":
        return {"wegan": WeightedGeneratorLoss(eta=o["eta"], loss=o["loss"])}
    if technique == "adaptive":
        return {"adaptive": AdaptiveScheduler(lam=o["lam"], max_consecutive=o["max_consecutive"])}
    if technique == "ttur":
        # The technique is the two rates: set them on the baseline's optimizers (TwoTimescale
        # would warn that it does so).
        for opt, lr in ((opt_g, o["lr_g"]), (opt_d, o["lr_d"])):
            if lr is not None:
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] = lr
        return {"ttur": TwoTimescale(opt_g, opt_d, g_schedule=o["g_schedule"], d_schedule=o["d_schedule"])}
    if technique == "freeadv":
        return {"freeadv": FreeAdvDiscriminator(D, opt_d, loss=o["loss"], epsilon=o["epsilon"],
                                                step_size=o["step_size"], replays=o["replays"], norm=o["norm"],
                                                data_range=o["data_range"])}
    return {}
