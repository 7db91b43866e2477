"""rastlit: a differentiable triangle rasterizer for PyTorch, with nvdiffrast's conventions."""

from .ops import MAX_RESOLUTION, MAX_TRIANGLES, interpolate, rasterize

__all__ = ["rasterize", "interpolate", "MAX_RESOLUTION", "MAX_TRIANGLES"]
__version__ = "0.1.0"
