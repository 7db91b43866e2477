"""nvdiffrast's public API over rastlit, so that a program written for nvdiffrast runs by changing
its import line::

    import rastlit.compat.nvdiffrast as dr      # instead of: import nvdiffrast.torch as dr

    glctx = dr.RasterizeCudaContext()           # or dr.RasterizeGLContext(); both work on any device
    rast, rast_db = dr.rasterize(glctx, pos, tri, resolution=[256, 256])
    color, _ = dr.interpolate(col, rast, tri)
    color = dr.antialias(color, rast, pos, tri)

Signatures and conventions are nvdiffrast's (context first for ``rasterize`` and ``DepthPeeler``;
NHWC images with row 0 at the bottom; ``rast`` = (u, v, z/w, triangle_id + 1)). Unlike nvdiffrast
the tensors may live on the CPU: the device is taken from the inputs. The context objects hold no
graphics state; they keep nvdiffrast's options (``output_db``) and its one-peeler-at-a-time rule.
Cube-map textures work as in nvdiffrast: ``texture(tex, dirs, boundary_mode='cube')`` with ``tex``
``[B,6,S,S,C]`` and ``texture_construct_mip(tex, cube_mode=True)``.
"""

from __future__ import annotations

import logging

import torch

from .. import _args
from .. import ops as _ops

__all__ = [
    "RasterizeCudaContext",
    "RasterizeGLContext",
    "rasterize",
    "interpolate",
    "texture",
    "texture_construct_mip",
    "antialias",
    "antialias_construct_topology_hash",
    "DepthPeeler",
    "get_log_level",
    "set_log_level",
]

_logger = logging.getLogger("rastlit")
_LEVELS = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}
_log_level = 1


def get_log_level() -> int:
    """Current log level: 0 = info, 1 = warning (default), 2 = error, 3 = fatal."""
    return _log_level


def set_log_level(level: int) -> None:
    """Set the level of rastlit's messages (the ``rastlit`` logger): 0 = info, 1 = warning,
    2 = error, 3 = fatal, as nvdiffrast."""
    global _log_level
    if level not in _LEVELS:
        raise ValueError(f"level must be 0 (info), 1 (warning), 2 (error) or 3 (fatal), got {level!r}")
    _log_level = int(level)
    _logger.setLevel(_LEVELS[_log_level])


class _Context:
    """Common part of the two context types: options and the active-peeler check."""

    def __init__(self, output_db: bool = True, device=None):
        if output_db is not True and output_db is not False:
            raise TypeError(f"output_db must be True or False, got {output_db!r}")
        self.output_db = output_db
        self.device = None if device is None else torch.device(device)
        self.active_depth_peeler = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(output_db={self.output_db}, device={self.device})"


class RasterizeCudaContext(_Context):
    """Stand-in for nvdiffrast's CUDA rasterizer context. Accepted with tensors on any device
    (rastlit rasterizes on the device of ``pos``); ``device`` is recorded only."""

    def __init__(self, device=None):
        super().__init__(output_db=True, device=device)


class RasterizeGLContext(_Context):
    """Stand-in for nvdiffrast's OpenGL context: no OpenGL is involved. ``output_db=False`` makes
    :func:`rasterize` return an empty ``[B,H,W,0]`` derivative tensor, as nvdiffrast does."""

    def __init__(self, output_db: bool = True, mode: str = "automatic", device=None):
        if mode not in ("automatic", "manual"):
            raise ValueError(f"mode must be 'automatic' or 'manual', got {mode!r}")
        super().__init__(output_db=output_db, device=device)
        self.mode = mode

    def set_context(self) -> None:
        if self.mode != "manual":
            raise RuntimeError("set_context() is only available for contexts created with mode='manual'")

    def release_context(self) -> None:
        if self.mode != "manual":
            raise RuntimeError("release_context() is only available for contexts created with mode='manual'")


def _check_ctx(glctx) -> None:
    if not isinstance(glctx, _Context):
        raise TypeError(
            "the first argument must be a RasterizeCudaContext or RasterizeGLContext "
            f"(nvdiffrast's context-first signature), got {type(glctx).__name__}"
        )


def _strip_db(glctx, rast_db: torch.Tensor) -> torch.Tensor:
    return rast_db if glctx.output_db else rast_db[..., :0]


def rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True):
    """nvdiffrast's ``rasterize(glctx, pos, tri, resolution, ranges=None, grad_db=True)``:
    see :func:`rastlit.rasterize`."""
    _check_ctx(glctx)
    if glctx.active_depth_peeler is not None:
        raise RuntimeError("cannot call rasterize() during depth peeling; use rasterize_next_layer() instead")
    if _args.optional_tensor(ranges, "ranges") is not None and ranges.numel() == 0:
        ranges = None  # nvdiffrast passes an empty [0,2] tensor for "no ranges"
    rast, rast_db = _ops.rasterize(pos, tri, resolution, ranges=ranges, grad_db=_args.flag(grad_db, "grad_db") and glctx.output_db)
    return rast, _strip_db(glctx, rast_db)


def interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
    """nvdiffrast's ``interpolate``: see :func:`rastlit.interpolate`."""
    if _args.optional_tensor(rast_db, "rast_db") is not None and rast_db.dim() > 0 and rast_db.shape[-1] == 0:
        rast_db = None  # what rasterize returns for output_db=False
    return _ops.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=diff_attrs)


def texture(tex, uv, uv_da=None, mip_level_bias=None, mip=None, filter_mode="auto", boundary_mode="wrap",
            max_mip_level=None):
    """nvdiffrast's ``texture``: see :func:`rastlit.texture`."""
    return _ops.texture(tex, uv, uv_da=uv_da, mip_level_bias=mip_level_bias, mip=mip, filter_mode=filter_mode,
                        boundary_mode=boundary_mode, max_mip_level=max_mip_level)


def texture_construct_mip(tex, max_mip_level=None, cube_mode=False):
    """nvdiffrast's ``texture_construct_mip``: see :func:`rastlit.texture_construct_mip`. As in
    nvdiffrast, a cube map ``[B,6,S,S,C]`` needs ``cube_mode=True``."""
    return _ops.texture_construct_mip(tex, max_mip_level=max_mip_level, cube_mode=bool(cube_mode))


def antialias(color, rast, pos, tri, topology_hash=None, pos_gradient_boost=1.0):
    """nvdiffrast's ``antialias``: see :func:`rastlit.antialias`."""
    return _ops.antialias(color, rast, pos, tri, topology_hash=topology_hash, pos_gradient_boost=pos_gradient_boost)


def antialias_construct_topology_hash(tri):
    """nvdiffrast's ``antialias_construct_topology_hash``: see :func:`rastlit.antialias_construct_topology_hash`."""
    return _ops.antialias_construct_topology_hash(tri)


class DepthPeeler:
    """nvdiffrast's ``DepthPeeler(glctx, pos, tri, resolution, ranges=None, grad_db=True)``:
    see :class:`rastlit.DepthPeeler`. One peeler may be active per context at a time."""

    def __init__(self, glctx, pos, tri, resolution, ranges=None, grad_db=True):
        _check_ctx(glctx)
        if _args.optional_tensor(ranges, "ranges") is not None and ranges.numel() == 0:
            ranges = None
        self._glctx = glctx
        self._peeler = _ops.DepthPeeler(pos, tri, resolution, ranges=ranges, grad_db=_args.flag(grad_db, "grad_db") and glctx.output_db)

    def __enter__(self):
        if self._glctx is None:
            raise RuntimeError("cannot re-enter a terminated depth peeling operation")
        if self._glctx.active_depth_peeler is not None:
            raise RuntimeError("cannot have multiple depth peelers active at once in one context")
        self._glctx.active_depth_peeler = self
        self._peeler.__enter__()
        return self

    def __exit__(self, *exc):
        self._peeler.__exit__(*exc)
        self._glctx.active_depth_peeler = None
        self._glctx = None
        return None

    def rasterize_next_layer(self):
        """The next depth layer, as :func:`rasterize` returns it."""
        if self._glctx is None or self._glctx.active_depth_peeler is not self:
            raise RuntimeError("rasterize_next_layer() must be called inside the peeler's `with` block")
        rast, rast_db = self._peeler.rasterize_next_layer()
        return rast, _strip_db(self._glctx, rast_db)
