"""Functional API: rasterize and interpolate, with nvdiffrast's conventions (no context argument).

Each op is a PyTorch custom op (``torch.ops.rastlit.*``): the schema, input checks and kernels
live in C++ (``csrc/ops.cpp``); this module registers the fake (meta) kernels used by
``torch.compile`` and the autograd formulas, and offers the user-facing functions.

Conventions (same as nvdiffrast):

* Images are NHWC, float32 (float64 accepted on the CPU for gradient checks); index tensors int32.
* Row 0 of every image is the bottom row (y = -1 in NDC), as in OpenGL. Pixel (i, j) is sampled
  at its centre, NDC ((2j+1)/W - 1, (2i+1)/H - 1).
* ``rast[..., :]`` = (u, v, z/w, triangle_id + 1): perspective-correct barycentrics with vertex 0
  at (u, v) = (1, 0), vertex 1 at (0, 1), vertex 2 at (0, 0); background pixels are all zero.
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import _build

_build.load()

MAX_RESOLUTION = 16384
"""Largest image side, in pixels, that rasterize accepts."""
MAX_TRIANGLES = 2**24 - 1
"""Most triangles in ``tri``: ``triangle_id + 1`` must be exact in float32."""

_ops = torch.ops.rastlit


def _resolution(resolution) -> tuple[int, int]:
    try:
        h, w = resolution
        h, w = int(h), int(w)
    except (TypeError, ValueError):
        raise ValueError(f"resolution must be a pair (height, width) of ints, got {resolution!r}") from None
    if not (1 <= h <= MAX_RESOLUTION and 1 <= w <= MAX_RESOLUTION):
        raise ValueError(
            f"resolution must be (height, width) with each side in [1, {MAX_RESOLUTION}], got ({h}, {w})"
        )
    return h, w


def _check_device_supported(device: torch.device, name: str) -> None:
    """A clear message for tensors on a device this build has no kernels for (the dispatcher's
    own error names no cause)."""
    if device.type in ("cpu", "meta"):
        return
    if not torch._C._dispatch_has_kernel_for_dispatch_key("rastlit::rasterize_fwd", device.type.upper()):
        raise RuntimeError(
            f"{name} is on {device}, but this rastlit build has no {device.type.upper()} kernels "
            "(CUDA kernels are built when torch has CUDA and nvcc is found); move the tensors to the CPU"
        )


def rasterize(
    pos: torch.Tensor,
    tri: torch.Tensor,
    resolution: Sequence[int],
    ranges: torch.Tensor | None = None,
    grad_db: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterize triangles into a z-buffered image of barycentrics, depth and triangle ids.

    Args:
        pos: clip-space vertex positions, ``[B,V,4]`` (instanced mode: one set per view) or
            ``[V,4]`` (range mode, with ``ranges``). Triangles are clipped to the near and far
            planes (-w <= z <= w) as in OpenGL; vertices behind the camera are fine.
        tri: ``[T,3]`` int32 vertex indices; every index must lie in ``[0, V)``.
        resolution: ``(H, W)``, each in ``[1, 16384]``.
        ranges: range mode only, ``[B,2]`` int32 CPU tensor of ``(start, count)`` into ``tri``:
            view ``b`` draws ``tri[start:start+count]``. Triangle ids stay global.
        grad_db: propagate gradients through ``rast_db`` to ``pos``.

    Returns:
        ``rast`` ``[B,H,W,4]`` = (u, v, z/w, triangle_id + 1), zero on background, and
        ``rast_db`` ``[B,H,W,4]`` = (du/dX, du/dY, dv/dX, dv/dY) in pixels.

    Nearest z/w wins; an exact depth tie goes to the lower triangle id. Pixel centres exactly
    on a shared edge or vertex are covered by exactly one triangle. Zero-area triangles and
    triangles with a NaN or Inf coordinate cover nothing (and get zero gradient). Gradients
    flow from u, v (and rast_db when ``grad_db``) to the x, y, w of ``pos``; z/w and the id
    carry none.
    """
    h, w = _resolution(resolution)
    if isinstance(pos, torch.Tensor):
        _check_device_supported(pos.device, "pos")
    return _ops.rasterize_fwd(pos, tri, h, w, ranges, bool(grad_db))


class DepthPeeler:
    """Depth peeling: successive depth layers of the same geometry, nearest first.

    Use as a context manager, as nvdiffrast's ``DepthPeeler``::

        with rastlit.DepthPeeler(pos, tri, (H, W)) as peeler:
            for _ in range(num_layers):
                rast, rast_db = peeler.rasterize_next_layer()

    Arguments are those of :func:`rasterize`. The first call returns what :func:`rasterize`
    returns; each later call returns, at every pixel, the fragment that comes next in the
    z-buffer's order (z/w ascending, then triangle id ascending) after the one the previous layer
    kept there, so coplanar duplicates come out one per layer and no fragment repeats. A pixel
    that was empty in a layer stays empty in all later ones. Each layer is differentiable like
    :func:`rasterize` (gradients from its u, v and rast_db flow to ``pos``); which fragment a
    layer holds is a discrete choice and carries no gradient.
    """

    def __init__(self, pos, tri, resolution, ranges=None, grad_db: bool = True):
        self._args = (pos, tri, _resolution(resolution), ranges, bool(grad_db))
        if isinstance(pos, torch.Tensor):
            _check_device_supported(pos.device, "pos")
        self._prev: torch.Tensor | None = None
        self._active = False

    def __enter__(self) -> "DepthPeeler":
        if self._active:
            raise RuntimeError("DepthPeeler is already active; nested use of the same peeler is not supported")
        self._active = True
        self._prev = None
        return self

    def __exit__(self, *exc) -> None:
        self._active = False
        self._prev = None

    def rasterize_next_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next depth layer as ``(rast, rast_db)``, shaped as :func:`rasterize`'s outputs."""
        if not self._active:
            raise RuntimeError("DepthPeeler.rasterize_next_layer() must be called inside a `with DepthPeeler(...)` block")
        pos, tri, (h, w), ranges, grad_db = self._args
        peel = None if self._prev is None else self._prev.detach()
        rast, rast_db = _ops.rasterize_fwd(pos, tri, h, w, ranges, grad_db, peel)
        self._prev = rast
        return rast, rast_db


def interpolate(
    attr: torch.Tensor,
    rast: torch.Tensor,
    tri: torch.Tensor,
    rast_db: torch.Tensor | None = None,
    diff_attrs: Sequence[int] | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate vertex attributes at every pixel.

    Args:
        attr: ``[B,V,A]``, ``[1,V,A]`` (broadcast over views) or ``[V,A]`` (shared, e.g. range mode).
        rast: ``[B,H,W,4]``, the first output of :func:`rasterize`.
        tri: ``[T,3]`` int32, the triangles given to :func:`rasterize`.
        rast_db: ``[B,H,W,4]``, the second output of :func:`rasterize`; needed for ``diff_attrs``.
        diff_attrs: attribute indices whose image-space derivatives to return, or ``'all'``.

    Returns:
        ``out`` ``[B,H,W,A]`` (zero on background) and ``out_da`` ``[B,H,W,2*len(diff_attrs)]``
        holding (d/dX, d/dY) in pixels for each selected attribute in turn (last dim 0 when
        ``diff_attrs`` is None). Gradients reach ``attr``, ``rast`` (u, v) and ``rast_db``.
    """
    if diff_attrs is None:
        diff = []
    elif isinstance(diff_attrs, str):
        if diff_attrs != "all":
            raise ValueError(f"diff_attrs must be a list of attribute indices or 'all', got {diff_attrs!r}")
        diff = list(range(attr.shape[-1]))
    else:
        diff = [int(i) for i in diff_attrs]
    if isinstance(attr, torch.Tensor):
        _check_device_supported(attr.device, "attr")
    return _ops.interpolate_fwd(attr, rast, tri, rast_db, diff)


# (texture: public functions)


# (antialias: public functions)


# (rasterize_soft: public functions)


# ----------------------------------------------------------------------------- fake kernels


@torch.library.register_fake("rastlit::rasterize_fwd")
def _rasterize_fwd_fake(pos, tri, height, width, ranges, grad_db, peel=None):
    num_views = pos.shape[0] if pos.dim() == 3 else ranges.shape[0]
    shape = (num_views, height, width, 4)
    return pos.new_empty(shape), pos.new_empty(shape)


@torch.library.register_fake("rastlit::rasterize_bwd")
def _rasterize_bwd_fake(pos, tri, rast, ranges, grad_rast, grad_rast_db):
    return torch.empty_like(pos)


@torch.library.register_fake("rastlit::interpolate_fwd")
def _interpolate_fwd_fake(attr, rast, tri, rast_db, diff_attrs):
    b, h, w = rast.shape[0], rast.shape[1], rast.shape[2]
    return attr.new_empty((b, h, w, attr.shape[-1])), attr.new_empty((b, h, w, 2 * len(diff_attrs)))


@torch.library.register_fake("rastlit::interpolate_bwd")
def _interpolate_bwd_fake(attr, rast, tri, rast_db, diff_attrs, grad_out, grad_out_da):
    grad_rast_db = torch.empty_like(rast_db) if rast_db is not None else attr.new_empty((0,))
    return torch.empty_like(attr), torch.empty_like(rast), grad_rast_db


# --------------------------------------------------------------------------------- autograd


def _rasterize_setup(ctx, inputs, output):
    pos, tri, _h, _w, ranges, grad_db, _peel = inputs
    rast, _rast_db = output
    ctx.grad_db = grad_db
    # Unused outputs (often rast_db) arrive as None instead of zero tensors: the backward then
    # skips their work.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(pos, tri, rast, ranges)


def _rasterize_backward(ctx, grad_rast, grad_rast_db):
    pos, tri, rast, ranges = ctx.saved_tensors
    if not ctx.grad_db:
        grad_rast_db = None
    if not ctx.needs_input_grad[0] or (grad_rast is None and grad_rast_db is None):
        return None, None, None, None, None, None, None
    if grad_rast is None:
        grad_rast = torch.zeros_like(rast)
    grad_pos = _ops.rasterize_bwd(pos, tri, rast, ranges, grad_rast, grad_rast_db)
    return grad_pos, None, None, None, None, None, None


torch.library.register_autograd("rastlit::rasterize_fwd", _rasterize_backward, setup_context=_rasterize_setup)


def _interpolate_setup(ctx, inputs, output):
    attr, rast, tri, rast_db, diff_attrs = inputs
    ctx.diff_attrs = list(diff_attrs)
    ctx.has_db = rast_db is not None
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(attr, rast, tri, rast_db)


def _interpolate_backward(ctx, grad_out, grad_out_da):
    attr, rast, tri, rast_db = ctx.saved_tensors
    if grad_out is None and grad_out_da is None:
        return None, None, None, None, None
    if grad_out is None:
        grad_out = attr.new_zeros(rast.shape[:3] + attr.shape[-1:])
    grad_attr, grad_rast, grad_rast_db = _ops.interpolate_bwd(
        attr, rast, tri, rast_db, ctx.diff_attrs, grad_out, grad_out_da if ctx.diff_attrs else None
    )
    return grad_attr, grad_rast, None, (grad_rast_db if ctx.has_db else None), None


torch.library.register_autograd(
    "rastlit::interpolate_fwd", _interpolate_backward, setup_context=_interpolate_setup
)


# (texture: fake kernels and autograd)


# (antialias: fake kernels and autograd)


# (rasterize_soft: fake kernels and autograd)
