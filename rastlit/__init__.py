"""rastlit: a differentiable triangle rasterizer for PyTorch, with nvdiffrast's conventions."""

from .ops import (
    MAX_FACES_PER_PIXEL,
    MAX_RESOLUTION,
    MAX_TRIANGLES,
    DepthPeeler,
    SoftRasterOutput,
    antialias,
    antialias_construct_topology_hash,
    interpolate,
    rasterize,
    rasterize_soft,
    soft_blur_radius,
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
    "rasterize_soft",
    "SoftRasterOutput",
    "soft_blur_radius",
    "DepthPeeler",
    "MAX_RESOLUTION",
    "MAX_TRIANGLES",
    "MAX_FACES_PER_PIXEL",
]
__version__ = "0.1.0"
