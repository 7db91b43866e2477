"""Limits and argument parsing shared by the torch ops, the layers, the compat module and
``rastlit.jax`` (no torch import here; the tensor checks live in ``rastlit._args``).

Every parser takes the value and the caller's name for it, and either returns the value in its
one normal form or raises, naming the argument and the form expected:

- ``TypeError`` when the value is of the wrong kind (a float or string where an int belongs, a
  string or None where a number belongs, ...);
- ``ValueError`` when it is of the right kind but out of range (a side of 0, a NaN sigma, a
  colour of 2 components where 3 are needed, ...).

Nothing is truncated, rounded or unpacked: integers must have ``__index__`` (ints, numpy
integers, 0-d integer arrays and tensors), numbers must be real and convert to float exactly.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
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
    if isinstance(value, (bool, str, bytes)) or "bool" in str(getattr(value, "dtype", "")):
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})") from None


def _is_sequence(value) -> bool:
    """An ordered sequence: a list, tuple or other ``Sequence`` that is not a string, or an array
    or tensor of at least one dimension (sets, mappings and iterators are refused: unordered or
    single-use)."""
    if isinstance(value, (str, bytes, bytearray)):
        return False
    if isinstance(value, collections.abc.Sequence):
        return True
    return hasattr(value, "__len__") and getattr(value, "ndim", 0) >= 1


def count(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An int in ``[minimum, maximum]`` (a number of layers, faces per pixel, ...)."""
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    v = integer(value, name, f"an int {rng}")
    if v < minimum or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {rng}, got {v}")
    return v


def resolution(value, name: str = "resolution") -> tuple[int, int]:
    """``(height, width)`` from a pair of ints, each in ``[1, MAX_RESOLUTION]``."""
    expected = "a pair (height, width) of ints"
    if not _is_sequence(value):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if len(value) != 2:
        raise ValueError(f"{name} must be {expected}, got {len(value)} values: {value!r}")
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


def diff_attrs(value, num_attrs: int | None, name: str = "diff_attrs"):
    """Attribute indices in ``[0, num_attrs)``, from a sequence of ints, ``'all'`` or None
    (-> ``[]``). With ``num_attrs=None`` (not known yet, e.g. in a layer's constructor) the
    kinds are checked, ``'all'`` is returned as is and the range check is left to the op."""
    expected = "a list of int attribute indices, 'all' or None"
    if value is None:
        return []
    if isinstance(value, str):
        if value != "all":
            raise ValueError(f"{name} must be {expected}, got {value!r}")
        return "all" if num_attrs is None else list(range(num_attrs))
    if not _is_sequence(value):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    out = [integer(v, f"{name}[{k}]", "an int attribute index") for k, v in enumerate(value)]
    for i in out if num_attrs is not None else ():
        if not 0 <= i < num_attrs:
            raise ValueError(f"{name} holds {i}, outside [0, {num_attrs}) (attr has {num_attrs} attributes)")
    return out


def number(value, name: str, *, minimum: float | None = None, positive: bool = False,
           expected: str | None = None) -> float:
    """A finite real number as a float: ints, floats, numpy scalars, 0-d real arrays and
    tensors. Bools, strings, None and complex numbers raise ``TypeError``; NaN, infinity, an
    int too large to be a float exactly, or a value below ``minimum`` (or <= 0 when
    ``positive``) raise ``ValueError``."""
    rng = " > 0" if positive else ("" if minimum is None else f" >= {minimum:g}")
    expected = expected or f"a finite number{rng}"
    if isinstance(value, (bool, str, bytes)) or value is None or isinstance(value, numbers.Complex) and not \
            isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if isinstance(value, numbers.Integral):
        try:
            out = float(value)
        except OverflowError:
            out = math.inf
        if not math.isfinite(out) or int(out) != int(value):  # never round a caller's integer
            raise ValueError(f"{name} must be {expected}, got {value!r}, which a float cannot hold exactly")
    elif isinstance(value, numbers.Real):
        out = float(value)
    else:  # a 0-d array or tensor: its dtype must be real (bool and complex refused)
        dtype = str(getattr(value, "dtype", ""))
        if not dtype or "bool" in dtype or "complex" in dtype or getattr(value, "ndim", 1) != 0:
            raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
        try:
            out = float(value)
            exact = "float" in dtype or out == int(value)  # an integer array: exactly, as an int
        except (TypeError, ValueError, RuntimeError, OverflowError):
            raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})") from None
        if not exact:
            raise ValueError(f"{name} must be {expected}, got {value!r}, which a float cannot hold exactly")
    if not math.isfinite(out):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if (positive and not out > 0) or (minimum is not None and out < minimum):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return out


def color(value, name: str, channels: int = 3) -> tuple[float, ...]:
    """A colour of ``channels`` components as a tuple of floats: one number (grey, repeated), or a
    sequence of 1 or ``channels`` numbers. Each component must be a finite number."""
    expected = f"a number or a sequence of 1 or {channels} numbers"
    if isinstance(value, (numbers.Real,)) and not isinstance(value, bool) or getattr(value, "ndim", None) == 0:
        return (number(value, name, expected=expected),) * channels
    if not _is_sequence(value):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if getattr(value, "ndim", 1) != 1 or len(value) not in (1, channels):
        shape = tuple(value.shape) if hasattr(value, "shape") else len(value)
        raise ValueError(f"{name} must be {expected}, got {value!r} (size {shape})")
    out = tuple(number(v, f"{name}[{k}]", expected="a finite number") for k, v in enumerate(value))
    return out * channels if len(out) == 1 else out


def choice(value, name: str, options) -> str:
    """One of the strings ``options``; anything else (another string, None, a number) raises
    ``ValueError`` listing the options (as ``texture``'s mode arguments always have)."""
    listed = ", ".join(map(repr, options))
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def flag(value, name: str) -> bool:
    """True or False (also numpy bools and 0-d bool arrays/tensors); anything else raises
    ``TypeError`` instead of counting as truthy or falsy."""
    if isinstance(value, bool):
        return value
    if getattr(value, "ndim", None) == 0 and "bool" in str(getattr(value, "dtype", "")):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def msg_mip_not_halvable(k: int, h: int, w: int) -> str:
    return (f"texture_construct_mip: mip level {k} has size {h}x{w} (height x width), which cannot be "
            f"halved (each side > 1 must be even); pass max_mip_level={k} to stop there, or use a "
            f"texture whose sides are powers of two")


def msg_too_many_mip_levels(size) -> str:
    return (f"tex of size {tuple(size)} needs more than {MAX_MIP_LEVELS} mip levels to reach 1x1; "
            f"pass max_mip_level <= {MAX_MIP_LEVELS}")
