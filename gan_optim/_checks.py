"""Argument checks shared by the components.

Every check raises before any state is touched, so a bad call leaves the
caller's models, optimizers and our components exactly as they were.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Iterable

import torch


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float after checking type, finiteness and range."""
    if isinstance(value, bool) or not isinstance(value, (Real, torch.Tensor)):
        raise TypeError(f"Invalid {name}: expected a real number, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"Invalid {name}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value} (must be finite)")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"Invalid {name}: {value} (must be {'>' if low_open else '>='} {low})")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"Invalid {name}: {value} (must be {'<' if high_open else '<='} {high})")
    return value


def check_int(name: str, value: Any, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Invalid {name}: expected an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"Invalid {name}: {value} (must be >= {low})")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"Invalid {name}: expected one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"Invalid {name}: {value!r} (expected one of {choices})")
    return value


def check_tensor(name: str, value: Any, *, floating: bool = True) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"Invalid {name}: expected a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"Invalid {name}: expected a floating-point tensor, got {value.dtype}")
    return value


def check_module(name: str, value: Any) -> torch.nn.Module:
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"Invalid {name}: expected a torch.nn.Module, got {type(value).__name__}")
    return value


def check_optimizer(name: str, value: Any) -> torch.optim.Optimizer:
    if not isinstance(value, torch.optim.Optimizer):
        raise TypeError(f"Invalid {name}: expected a torch.optim.Optimizer, got {type(value).__name__}")
    return value


def require_finite(name: str, value: torch.Tensor | float) -> None:
    """Raise FloatingPointError naming ``name`` if ``value`` holds a nan or inf."""
    finite = (bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor)
              else math.isfinite(value))
    if not finite:
        shown = value.detach().flatten()[:4].tolist() if isinstance(value, torch.Tensor) else value
        raise FloatingPointError(f"non-finite {name}: {shown}")


_SCALER_METHODS = ("scale", "step", "unscale_", "get_scale", "is_enabled", "update")


def check_scaler(name: str, value: Any) -> Any:
    """``None`` or a ``torch.amp.GradScaler`` (anything with its methods)."""
    if value is None:
        return None
    missing = [m for m in _SCALER_METHODS if not callable(getattr(value, m, None))]
    if missing:
        raise TypeError(f"Invalid {name}: expected a torch.amp.GradScaler, got {type(value).__name__} "
                        f"(it has no {', '.join(missing)})")
    return value


def resolve_nonfinite(nonfinite: Any, scaler: Any) -> str:
    """The mixed-precision contract: ``None`` means "raise" without a scaler and "propagate" with one."""
    if nonfinite is None:
        return "propagate" if scaler is not None else "raise"
    check_choice("nonfinite", nonfinite, ("raise", "propagate"))
    if nonfinite == "raise" and scaler is not None:
        raise ValueError("Invalid nonfinite: 'raise' together with a scaler (the scaler must see non-finite "
                         "gradients to skip the step and back off); leave nonfinite unset")
    return str(nonfinite)


def plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """``t`` viewed as a plain tensor (keeping its graph): BigGAN-PyTorch hands D outputs and samples
    around as a Tensor subclass whose ``.to()`` raises, and they flow into saved tensors."""
    return t if type(t) is torch.Tensor else t.as_subclass(torch.Tensor)
