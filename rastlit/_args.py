"""The torch-aware half of the argument-normalisation layer (the rest, which ``rastlit.jax``
shares, is ``rastlit._limits``): tensor arguments are checked to be tensors before torch's
dispatcher sees them, so a list, a number or None where a tensor belongs is a ``TypeError``
naming the caller's argument, not the dispatcher's "Expected a value of type 'Tensor'"."""

from __future__ import annotations

import torch

from ._limits import choice, color, count, diff_attrs, flag, integer, max_mip_level, number, resolution  # noqa: F401


def tensor(value, name: str, what: str = "a torch.Tensor"):
    """``value`` if it is a tensor, else ``TypeError("<name> must be a torch.Tensor, got list")``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def optional_tensor(value, name: str, what: str = "a torch.Tensor"):
    """None or a tensor (:func:`tensor`)."""
    if value is None:
        return None
    return tensor(value, name, f"{what} or None")


def floating_tensor(value, name: str):
    """A tensor with a floating-point dtype (``TypeError`` naming the dtype otherwise)."""
    tensor(value, name)
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32, or float64 on the CPU), got {value.dtype}")
    return value
