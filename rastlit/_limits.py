"""Limits and argument parsing shared by the torch ops and ``rastlit.jax`` (no torch import here).

Integers must be integers: anything without ``__index__`` (floats, strings) is refused with a
message naming the argument, never truncated or unpacked.
"""

from __future__ import annotations

import operator

MAX_RESOLUTION = 16384
"""Largest image side, in pixels, that rasterize accepts."""
MAX_TRIANGLES = 2**24 - 1
"""Most triangles in ``tri``: ``triangle_id + 1`` must be exact in float32."""
MAX_MIP_LEVELS = 15
"""Most mip levels below the texture (a full pyramid of a 32768-texel side)."""


def integer(value, name: str, expected: str = "an int") -> int:
    """``value`` as an int: ints, numpy integers, 0-d integer arrays (anything with
    ``__index__``); bools, floats and strings raise ``TypeError`` naming ``name``."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})") from None


def resolution(value, name: str = "resolution") -> tuple[int, int]:
    """``(height, width)`` from a pair of ints, each in ``[1, MAX_RESOLUTION]``."""
    expected = "a pair (height, width) of ints"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    h, w = (integer(v, name, expected) for v in value)
    if not (1 <= h <= MAX_RESOLUTION and 1 <= w <= MAX_RESOLUTION):
        raise ValueError(f"{name} must be (height, width) with each side in [1, {MAX_RESOLUTION}], got ({h}, {w})")
    return h, w


def max_mip_level(value, name: str = "max_mip_level") -> int | None:
    if value is None:
        return None
    v = integer(value, name, "an int >= 0 or None")
    if v < 0:
        raise ValueError(f"{name} must be >= 0 or None, got {v}")
    return v


def diff_attrs(value, num_attrs: int, name: str = "diff_attrs") -> list[int]:
    """Attribute indices in ``[0, num_attrs)``, from a list of ints, ``'all'`` or None."""
    if value is None:
        return []
    if isinstance(value, str):
        if value != "all":
            raise ValueError(f"{name} must be a list of attribute indices or 'all', got {value!r}")
        return list(range(num_attrs))
    if not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list of attribute indices or 'all', got {value!r}")
    out = [integer(v, name, "a list of int attribute indices or 'all'") for v in value]
    for i in out:
        if not 0 <= i < num_attrs:
            raise ValueError(f"{name} holds {i}, outside [0, {num_attrs}) (attr has {num_attrs} attributes)")
    return out


def msg_mip_not_halvable(k: int, h: int, w: int) -> str:
    return (f"texture_construct_mip: mip level {k} has size {h}x{w} (height x width), which cannot be "
            f"halved (each side > 1 must be even); pass max_mip_level={k} to stop there, or use a "
            f"texture whose sides are powers of two")


def msg_too_many_mip_levels(size) -> str:
    return (f"tex of size {tuple(size)} needs more than {MAX_MIP_LEVELS} mip levels to reach 1x1; "
            f"pass max_mip_level <= {MAX_MIP_LEVELS}")
