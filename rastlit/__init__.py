"""rastlit: a differentiable triangle rasterizer for PyTorch, with nvdiffrast's conventions.

The torch ops are imported on first attribute access (``rastlit.rasterize`` etc.), so that
``import rastlit.jax`` needs neither torch nor the torch extension.
"""

import importlib

_OPS = (
    "MAX_FACES_PER_PIXEL",
    "MAX_RESOLUTION",
    "MAX_TRIANGLES",
    "DepthPeeler",
    "SoftRasterOutput",
    "antialias",
    "antialias_construct_topology_hash",
    "interpolate",
    "rasterize",
    "rasterize_soft",
    "soft_blur_radius",
    "texture",
    "texture_construct_mip",
)


def __getattr__(name):
    if name in _OPS:
        value = getattr(importlib.import_module(".ops", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rastlit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_OPS))

__all__ = [
    "rasterize",
    "interpolate",
    "texture",
    "texture_construct_mip",
    "antialias",
    "antialias_construct_topology_hash",
    "rasterize_soft",
    "SoftRasterOutput",
    "soft_blur_radius",
    "DepthPeeler",
    "MAX_RESOLUTION",
    "MAX_TRIANGLES",
    "MAX_FACES_PER_PIXEL",
]
__version__ = "0.1.0"
