"""rastlit: a differentiable triangle rasterizer for PyTorch, with nvdiffrast's conventions."""

from .ops import (
    MAX_RESOLUTION,
    MAX_TRIANGLES,
    DepthPeeler,
    antialias,
    antialias_construct_topology_hash,
    interpolate,
    rasterize,
    texture,
    texture_construct_mip,
)

__all__ = [
    "rasterize",
    "interpolate",
    "texture",
    "texture_construct_mip",
    "antialias",
    "antialias_construct_topology_hash",
    "DepthPeeler",
    "MAX_RESOLUTION",
    "MAX_TRIANGLES",
]
__version__ = "0.1.0"
