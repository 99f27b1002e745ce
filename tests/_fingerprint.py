"""A full before/after picture of a training setup: parameters, buffers, gradients, optimizer and component state."""

import copy

import torch


def fingerprint(modules=(), optimizers=(), components=()):
    """Deep copies of everything an error must leave unchanged, plus the global RNG state."""
    return copy.deepcopy({
        "modules": [m.state_dict() for m in modules],
        "grads": [[None if p.grad is None else p.grad.clone() for p in m.parameters()] for m in modules],
        "optimizers": [o.state_dict() for o in optimizers],
        "components": [c.state_dict() for c in components],
        "rng": torch.random.get_rng_state(),
    })


def same(a, b):
    """Exact equality of nested fingerprints (NaN equal to NaN, dtypes and shapes checked)."""
    if isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype):
            return False
        return torch.equal(a, b) if not a.is_floating_point() else bool(
            torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return a == b
