"""Functional API: rasterize, interpolate and texture, with nvdiffrast's conventions (no context argument).

Each op is a PyTorch custom op (``torch.ops.rastlit.*``): the schema, input checks and kernels
live in C++ (``csrc/ops.cpp``); this module registers the fake (meta) kernels used by
``torch.compile`` and the autograd formulas, and offers the user-facing functions.

Conventions (same as nvdiffrast):

* Images are NHWC, float32 (float64 accepted on the CPU for gradient checks); index tensors int32.
* Row 0 of every image is the bottom row (y = -1 in NDC), as in OpenGL. Pixel (i, j) is sampled
  at its centre, NDC ((2j+1)/W - 1, (2i+1)/H - 1).
* ``rast[..., :]`` = (u, v, z/w, triangle_id + 1): perspective-correct barycentrics with vertex 0
  at (u, v) = (1, 0), vertex 1 at (0, 1), vertex 2 at (0, 0); background pixels are all zero.

Supported range of finite input (float32; measured by tests/test_bad_input.py and by a sweep of
2,000 random scenes through rasterize, interpolate, antialias and rasterize_soft with backward,
vertex scales 1e-45 to 1e38, attribute scales to 1e37: no inf or NaN inside the range):

* ``pos``: any finite values give finite outputs (clip space is homogeneous: ``pos * c`` renders
  the same image for any c > 0), except ``rast_db`` of a sliver whose projected area is below
  about 1e-30 pixel (a denormal width): its barycentric derivatives, ~ 1 / area, exceed float32
  (the xfail in tests/test_fuzz.py). Gradients to ``pos`` grow as 1 / (vertex scale), a vertex's
  largest ``|x|, |y|, |z|, |w|``: they are finite while every vertex scale is 0 or >= 1e-30 and the
  incoming gradients (of the loss w.r.t. rast, rast_db, attributes' derivatives or antialiased
  colours) times 1 / scale stay below float32's maximum, 3.4e38. :func:`rasterize_soft` checks
  the vertex scale (in the reduction of its NaN check) and raises ``ValueError`` below 1e-30;
  :func:`rasterize` and :func:`antialias` do not (on CUDA that would be a device sync per call).
* Values (``attr``, ``tex``, ``color``): finite results up to 1e37 in magnitude; beyond, sums of
  several values (a mip level's 2x2 average, an attribute difference times ``rast_db``) can
  overflow float32 as any float arithmetic does. float64 inputs (CPU) take the whole range.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple, Sequence

import torch

from . import _build

_build.load()

from ._limits import MAX_RESOLUTION, MAX_TRIANGLES  # noqa: E402,F401  (public; shared with rastlit.jax)

_ops = torch.ops.rastlit

# argument parsing shared with the layers, compat and rastlit.jax: ints only (no truncation, no
# string unpacking), finite numbers, and tensors checked before the dispatcher sees them
from . import _args  # noqa: E402
from ._limits import resolution as _resolution  # noqa: E402

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
    carry none. Any finite ``pos`` gives finite outputs (but ``rast_db`` of slivers below ~1e-30
    pixel of area); gradients are finite for vertex scales >= 1e-30 (see "Supported range" in
    :mod:`rastlit.ops`).
    """
    h, w = _resolution(resolution)
    _rasterize_tensors(pos, tri, ranges)
    _check_device_supported(pos.device, "pos")
    return _ops.rasterize_fwd(pos, tri, h, w, ranges, _args.flag(grad_db, "grad_db"))

def _rasterize_tensors(pos, tri, ranges) -> None:
    _args.tensor(pos, "pos")
    _args.tensor(tri, "tri")
    _args.optional_tensor(ranges, "ranges")

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
        self._args = (pos, tri, _resolution(resolution), ranges, _args.flag(grad_db, "grad_db"))
        _rasterize_tensors(pos, tri, ranges)
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

    Finite for ``attr`` values up to 1e37 in magnitude in float32 (``out_da`` multiplies attribute
    differences by ``rast_db`` and can overflow beyond; see "Supported range" in :mod:`rastlit.ops`).
    """
    _args.tensor(attr, "attr")
    _args.tensor(rast, "rast")
    _args.tensor(tri, "tri")
    _args.optional_tensor(rast_db, "rast_db")
    # kinds checked here, the index range by the op (IndexError naming the entry)
    diff = _args.diff_attrs(diff_attrs, None)
    if diff == "all":
        diff = list(range(attr.shape[-1])) if attr.dim() > 0 else []
    _check_device_supported(attr.device, "attr")
    return _ops.interpolate_fwd(attr, rast, tri, rast_db, diff)

_TEXTURE_FILTERS = {"nearest": 0, "linear": 1, "linear-mipmap-nearest": 2, "linear-mipmap-linear": 3}
_TEXTURE_BOUNDARIES = {"wrap": 0, "clamp": 1, "zero": 2, "cube": 3}
from ._limits import MAX_MIP_LEVELS, msg_mip_not_halvable, msg_too_many_mip_levels  # noqa: E402

def texture_construct_mip(tex: torch.Tensor, max_mip_level: int | None = None,
                          cube_mode: bool | None = None) -> list[torch.Tensor]:
    """Build the mip pyramid of ``tex`` once, to pass as ``texture(..., mip=...)``.

    Args:
        tex: ``[B,Ht,Wt,C]`` texture, or ``[B,6,S,S,C]`` cube map (``cube_mode``).
        max_mip_level: build at most this many levels below ``tex`` (None: down to 1x1).
        cube_mode: True for a cube map (each face is reduced on its own, as nvdiffrast); None
            (default) takes it from the shape (5 dimensions: cube map).

    Returns:
        A list of tensors, level 1 first: level k+1 is the 2x2 average of level k (a side of 1
        stays 1 and the other side is averaged in pairs); for a cube map ``[B,6,S/2^k,S/2^k,C]``.
        It is built with differentiable torch ops, so gradients that reach the levels flow on to
        ``tex`` through autograd.

    Raises ``ValueError`` when a side > 1 of a level to be halved is odd (say 6x6 -> 3x3 -> ?):
    pass ``max_mip_level`` to stop before it, and ``TypeError`` when ``tex`` is not a
    floating-point tensor (texel averages of integers or bools would be truncated). Levels are
    finite for texel values up to 1e37 in magnitude in float32.
    """
    _args.floating_tensor(tex, "tex")
    if cube_mode is None:
        cube_mode = tex.dim() == 5
    max_mip_level = _args.max_mip_level(max_mip_level)
    if cube_mode:
        if tex.dim() != 5 or tex.shape[1] != 6 or tex.shape[2] != tex.shape[3]:
            raise ValueError(f"tex must have shape [B,6,S,S,C] (six square faces) with cube_mode=True, got {tuple(tex.shape)}")
        b, _, sz, _, c = tex.shape
        flat = texture_construct_mip(tex.reshape(b * 6, sz, sz, c), max_mip_level, cube_mode=False)
        return [m.reshape(b, 6, m.shape[1], m.shape[2], c) for m in flat]
    if tex.dim() != 4:
        raise ValueError(f"tex must have shape [B,Ht,Wt,C], got {tuple(tex.shape)}")
    limit = MAX_MIP_LEVELS if max_mip_level is None else max_mip_level
    levels: list[torch.Tensor] = []
    cur = tex
    h, w = int(tex.shape[1]), int(tex.shape[2])
    while len(levels) < limit and (h > 1 or w > 1):
        if (h > 1 and h % 2) or (w > 1 and w % 2):
            k = len(levels)
            raise ValueError(msg_mip_not_halvable(k, h, w))
        kh, kw = (2 if h > 1 else 1), (2 if w > 1 else 1)
        # 2x2 (or 2x1, 1x2) box average as sums of views of the NHWC tensor: differentiable, and
        # several times faster on the CPU (forward and backward) than avg_pool2d or a strided mean.
        b, c = cur.shape[0], cur.shape[3]
        if kh == 2:
            rows = cur.reshape(b, h // 2, 2, w * c)
            cur = (rows[:, :, 0] + rows[:, :, 1]).view(b, h // 2, w, c)
        if kw == 2:
            cols = cur.reshape(b, h // kh, w // 2, 2, c)
            cur = cols[..., 0, :] + cols[..., 1, :]
        cur = cur * (1.0 / (kh * kw))
        h, w = h // kh, w // kw
        levels.append(cur)
    if max_mip_level is None and (h > 1 or w > 1):
        raise ValueError(msg_too_many_mip_levels(tex.shape[1:3]))
    return levels

def texture(
    tex: torch.Tensor,
    uv: torch.Tensor,
    uv_da: torch.Tensor | None = None,
    mip_level_bias: torch.Tensor | None = None,
    mip: Sequence[torch.Tensor] | None = None,
    filter_mode: str = "auto",
    boundary_mode: str = "wrap",
    max_mip_level: int | None = None,
) -> torch.Tensor:
    """Sample a texture at per-pixel texture coordinates, with optional mipmapping.

    Args:
        tex: ``[B,Ht,Wt,C]`` or ``[1,Ht,Wt,C]`` (shared by all views); with
            ``boundary_mode='cube'`` a cube map ``[B,6,S,S,C]`` or ``[1,6,S,S,C]``, faces in the
            order +x, -x, +y, -y, +z, -z.
        uv: ``[B,H,W,2]`` texture coordinates: u along the width, v along the height; texel
            (i, j) has its centre at ((j + 0.5) / Wt, (i + 0.5) / Ht), so row 0 of ``tex`` is at
            v ~ 0. Typically the output of :func:`interpolate` on a uv attribute. Cube maps:
            ``[B,H,W,3]`` lookup directions (any length; see below).
        uv_da: ``[B,H,W,4]`` = (du/dX, du/dY, dv/dX, dv/dY), the image-space derivatives of uv
            (``interpolate(..., diff_attrs=...)``'s ``out_da``); sets the level of detail. Cube
            maps: ``[B,H,W,6]`` = (dx/dX, dx/dY, dy/dX, dy/dY, dz/dX, dz/dY) of the direction.
        mip_level_bias: ``[B,H,W]``, added to the level of detail (alone, it is the level).
        mip: the pyramid from :func:`texture_construct_mip` (levels below ``tex``), to reuse it
            across calls; built here when needed and not given.
        filter_mode: ``'nearest'`` (texel containing the point, level 0), ``'linear'``
            (bilinear on level 0, as ``grid_sample(align_corners=False)``),
            ``'linear-mipmap-nearest'`` (bilinear on level floor(lod)),
            ``'linear-mipmap-linear'`` (trilinear), or ``'auto'``: trilinear when ``uv_da`` or
            ``mip_level_bias`` is given, else linear (as nvdiffrast). The mipmap modes need
            ``uv_da`` or ``mip_level_bias`` (as nvdiffrast, which asserts it).
        boundary_mode: ``'wrap'`` (repeat), ``'clamp'`` (to the edge texels' centres),
            ``'zero'`` (outside texels read as zero) or ``'cube'`` (cube map, below).
        max_mip_level: use at most this many levels below ``tex`` (0 turns the mipmap modes
            into ``'linear'``, as nvdiffrast).

    Returns:
        ``[B,H,W,C]``. Level of detail (nvdiffrast's isotropic rule): with J the Jacobian of
        (u*Wt, v*Ht) with respect to pixel (X, Y), lod = 0.5 * log2(largest eigenvalue of
        J^T J) + bias, clamped to [0, number of levels - 1].

    Cube maps (nvdiffrast's and OpenGL's conventions): a direction picks the face of its
    largest component by magnitude (ties: x before y before z), and the face-local coordinates
    are s = 0.5 + 0.5 a / |c|, t = 0.5 + 0.5 b / |c| with c the major component and (a, b) =
    (-z, -y) on +x, (z, -y) on -x, (x, z) on +y, (x, -z) on -y, (x, -y) on +z, (-x, -y) on -z;
    s runs along a face's columns and t along its rows, texel centres as in 2D. Bilinear
    lookups are seamless: taps beyond a face edge read the adjacent face's edge texels, and at a
    cube corner the one tap with no texel takes the mean of the other three (as nvdiffrast).
    The level of detail uses the Jacobian of (s*S, t*S) obtained from ``uv_da`` through the
    face projection, so its gradient reaches ``uv`` as well. A zero direction, or one with a
    NaN or infinite component, gives output 0 and zero gradients.

    Gradients reach ``tex`` (through the pyramid, by autograd, in the mipmap modes), ``uv``
    (linear modes), and in trilinear mode ``uv_da`` and ``mip_level_bias`` (through the level
    blend; zero where lod is clamped). A pixel with a NaN or infinite u or v gets output 0 and
    zero gradients. On the CPU the backward is bitwise reproducible for any thread count; on
    CUDA the texel gradient uses atomics (refused under ``torch.use_deterministic_algorithms``).
    """
    if filter_mode == "auto":
        filter_mode = "linear-mipmap-linear" if (uv_da is not None or mip_level_bias is not None) else "linear"
    if filter_mode not in _TEXTURE_FILTERS:
        raise ValueError(f"filter_mode must be one of 'auto', {', '.join(map(repr, _TEXTURE_FILTERS))}; got {filter_mode!r}")
    if boundary_mode not in _TEXTURE_BOUNDARIES:
        raise ValueError(f"boundary_mode must be one of {', '.join(map(repr, _TEXTURE_BOUNDARIES))}; got {boundary_mode!r}")
    max_mip_level = _args.max_mip_level(max_mip_level)
    for t, name in ((tex, "tex"), (uv, "uv"), (uv_da, "uv_da"), (mip_level_bias, "mip_level_bias")):
        _args.tensor(t, name) if name in ("tex", "uv") else _args.optional_tensor(t, name)
    mipmapped = "mipmap" in filter_mode
    if mipmapped and max_mip_level == 0:  # no levels: 'linear', as documented (and as nvdiffrast)
        filter_mode, mipmapped = "linear", False
    if mipmapped and uv_da is None and mip_level_bias is None:
        raise ValueError(f"filter_mode={filter_mode!r} needs uv_da or mip_level_bias to choose the mip level")
    _check_device_supported(tex.device, "tex")
    if not mipmapped:
        mips: list[torch.Tensor] = []
        uv_da = mip_level_bias = None
    elif mip is None:
        if boundary_mode == "cube" and not (isinstance(tex, torch.Tensor) and tex.dim() == 5):
            shape = tuple(tex.shape) if isinstance(tex, torch.Tensor) else type(tex).__name__
            raise ValueError(f"tex must have shape [B,6,S,S,C] (or [1,6,S,S,C]) for boundary_mode='cube', got {shape}")
        mips = texture_construct_mip(tex, max_mip_level, cube_mode=boundary_mode == "cube")
    else:
        if isinstance(mip, torch.Tensor) or not all(isinstance(m, torch.Tensor) for m in mip):
            raise TypeError("mip must be the list of tensors that texture_construct_mip(tex) returns")
        mips = list(mip)
        if max_mip_level is not None:
            mips = mips[:max_mip_level]
    return _ops.texture_fwd(
        tex, mips, uv, uv_da, mip_level_bias, _TEXTURE_FILTERS[filter_mode], _TEXTURE_BOUNDARIES[boundary_mode]
    )

def antialias_construct_topology_hash(tri: torch.Tensor) -> torch.Tensor:
    """The edge topology of a mesh, for :func:`antialias`.

    Args:
        tri: ``[T,3]`` int32 vertex indices (vertices must be welded: triangles that share an edge
            must share its two vertex indices, or the edge counts as a mesh boundary).

    Returns:
        ``[T,6]`` int32 on ``tri``'s device. Entry ``[t, k]`` (``k`` in 0..2) is the vertex opposite
        edge ``k`` of triangle ``t`` (the edge from vertex ``k+1`` to ``k+2``) in the other triangle
        that shares the edge, and ``[t, 3 + k]`` is that other triangle's index (antialias walks
        across it towards the silhouette). Both are ``-1`` if no other triangle shares the edge (a
        mesh boundary, always a silhouette) and ``-2`` if two or more others do (non-manifold: never
        a silhouette, never walked across) or the triangle is degenerate (a repeated vertex index;
        such a triangle covers nothing and pairs with no other).
    """
    if not isinstance(tri, torch.Tensor):
        raise TypeError(f"tri must be a torch.Tensor, got {type(tri).__name__}")
    if tri.dtype != torch.int32:
        raise TypeError(f"tri must be int32, got {tri.dtype} (convert with .int())")
    if tri.dim() != 2 or tri.shape[1] != 3:
        raise ValueError(f"tri must have shape [T,3], got {list(tri.shape)}")
    t = tri.long()
    n = t.shape[0]
    if n == 0:
        return torch.empty((0, 6), dtype=torch.int32, device=tri.device)
    if int(t.min()) < 0:
        raise IndexError(f"tri holds a negative vertex index ({int(t.min())})")
    a = t[:, [1, 2, 0]].reshape(-1)  # edge k runs from vertex k+1 to vertex k+2
    b = t[:, [2, 0, 1]].reshape(-1)
    own = t.reshape(-1)  # the vertex opposite edge k in its own triangle is vertex k
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = lo * 2**31 + hi  # indices are int32
    # Degenerate triangles (a repeated vertex) cover nothing: their edges pair with no other.
    deg = ((t[:, 0] == t[:, 1]) | (t[:, 1] == t[:, 2]) | (t[:, 0] == t[:, 2])).repeat_interleave(3)
    key = torch.where(deg, -1 - torch.arange(key.numel(), device=key.device), key)
    order = torch.argsort(key, stable=True)
    ks = key[order]
    first = torch.ones_like(ks, dtype=torch.bool)
    first[1:] = ks[1:] != ks[:-1]
    run = torch.cumsum(first.long(), 0) - 1
    count = torch.bincount(run)[run]
    # In a run of two, each edge's partner is the other one.
    idx = torch.arange(ks.numel(), device=ks.device)
    partner = torch.where(first, idx + 1, idx - 1).clamp(0, ks.numel() - 1)
    opp_sorted = torch.full_like(ks, -1)
    nbr_sorted = torch.full_like(ks, -1)
    pair = count == 2
    opp_sorted[pair] = own[order[partner[pair]]]
    nbr_sorted[pair] = torch.div(order[partner[pair]], 3, rounding_mode="floor")  # edge slot 3t+k -> triangle t
    bad = (count >= 3) | deg[order]
    opp_sorted[bad] = -2
    nbr_sorted[bad] = -2
    opp = torch.empty_like(opp_sorted)
    opp[order] = opp_sorted
    nbr = torch.empty_like(nbr_sorted)
    nbr[order] = nbr_sorted
    return torch.cat([opp.view(n, 3), nbr.view(n, 3)], 1).to(torch.int32)

def antialias(
    color: torch.Tensor,
    rast: torch.Tensor,
    pos: torch.Tensor,
    tri: torch.Tensor,
    topology_hash: torch.Tensor | None = None,
    pos_gradient_boost: float = 1.0,
) -> torch.Tensor:
    """Analytic antialiasing of silhouette and occlusion edges, with visibility gradients to ``pos``.

    Method of Laine et al. 2020 (nvdiffrast, sec. 3.4), extended by a walk across the mesh. Every
    pair of horizontally or vertically adjacent pixels with different triangle ids is examined.
    Its front pixel is the covered one (the other is background) or the one with the smaller z/w.
    Starting in the front pixel's triangle, the segment between the two pixel centres is followed
    across edges between same-facing triangles (at most 64 steps; never into the other pixel's
    triangle or a triangle with a vertex at w <= 0) until it leaves through a silhouette edge — a
    mesh boundary, or an edge whose other triangle folds over to the same side on screen (one
    faces the camera, one faces away) — or ends inside a triangle. If a silhouette edge is found
    and its two vertices have w > 0, its crossing point ``s`` (0 at the front pixel's centre, 1 at
    the other's) sets the blend: with ``d = s - 1/2``, the pixel in whose half the edge crosses
    gets ``out += d * (color[front] - color[other])`` (so the other pixel takes up to half of the
    front colour when ``d > 0``, and the front pixel up to half of the other colour when
    ``d < 0``). All blends read the input colours and add up.

    Args:
        color: ``[B,H,W,C]`` shaded image.
        rast: ``[B,H,W,4]``, the first output of :func:`rasterize` for ``pos`` and ``tri``.
        pos: the clip-space positions given to :func:`rasterize`: ``[B,V,4]`` or ``[V,4]`` (range
            mode: the same vertices for every view).
        tri: ``[T,3]`` int32, the triangles given to :func:`rasterize`.
        topology_hash: the output of :func:`antialias_construct_topology_hash` for ``tri``; built
            on every call when None (pass it in to skip that).
        pos_gradient_boost: factor applied to the gradient sent to ``pos``.

    Returns:
        ``[B,H,W,C]``. Gradients reach ``color`` and the x, y, w of ``pos`` (through the edge
        crossings: to the found silhouette edge's two vertices only; the triangles walked
        through carry none); z, ``rast`` and the ids carry none.

    Gradients to ``pos`` grow as 1 / (vertex scale) like :func:`rasterize`'s (finite for vertex
    scales >= 1e-30, see "Supported range" in :mod:`rastlit.ops`).

    Each edge is handled along one axis only (horizontal pairs take edges steeper than 45 degrees
    on screen, vertical pairs the others). Thanks to the walk, silhouettes of finely tessellated
    smooth surfaces, whose rim triangles are thinner than a pixel on screen, are found too (the
    paper examines only the front pixel's own triangle). Vertices must be welded (see
    :func:`antialias_construct_topology_hash`): the walk crosses shared edges only. Under
    ``torch.compile(fullgraph=True)`` pass a precomputed ``topology_hash``.
    """
    for t, name in ((color, "color"), (rast, "rast"), (pos, "pos"), (tri, "tri")):
        _args.tensor(t, name)
    _args.optional_tensor(topology_hash, "topology_hash")
    _check_device_supported(color.device, "color")
    boost = _args.number(pos_gradient_boost, "pos_gradient_boost")
    if topology_hash is None:
        topology_hash = antialias_construct_topology_hash(tri)
    out, _work = _ops.antialias_fwd(color, rast, pos, tri, topology_hash, boost)
    return out

# ------------------------------------------------------------------------------ rasterize_soft

MAX_FACES_PER_PIXEL = 128
"""Largest ``faces_per_pixel`` that :func:`rasterize_soft` accepts."""

class SoftRasterOutput(NamedTuple):
    """Outputs of :func:`rasterize_soft` (K = ``faces_per_pixel``, slots sorted by increasing depth).

    * ``face_ids`` ``[B,H,W,K]`` int32: global triangle ids, -1 where a slot is empty.
    * ``zbuf`` ``[B,H,W,K]``: z/w of the face at the pixel centre, -1 where empty: with
      ``clip_barycentric_coords`` the z/w of the point of the triangle at the clipped screen-space
      barycentrics (equal to the plane's z/w inside the projected face, within the face's own depth
      range outside it); without, the face's plane extrapolated to the pixel centre.
    * ``bary`` ``[B,H,W,K,3]``: barycentrics of the pixel centre w.r.t. the face (weights of
      vertices 0, 1, 2), clipped to >= 0 and renormalized with ``clip_barycentric_coords``, -1
      where empty.
    * ``dists`` ``[B,H,W,K]``: signed squared NDC distance from the pixel centre to the face's
      projected edges (negative inside), -1 where empty.
    * ``alpha`` ``[B,H,W]``: soft silhouette ``1 - prod_k (1 - sigmoid(-dists_k / sigma))``.
    """

    face_ids: torch.Tensor
    zbuf: torch.Tensor
    bary: torch.Tensor
    dists: torch.Tensor
    alpha: torch.Tensor

def _memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device`` (physical RAM for the CPU), or None where unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        pass
    return None

def _soft_output_bytes(num_views: int, height: int, width: int, faces_per_pixel: int, dtype=torch.float32) -> int:
    """Bytes of the tensors :func:`rasterize_soft` returns for these sizes (``face_ids``,
    ``zbuf``, ``bary``, ``dists``, ``alpha``); its backward needs about as much again."""
    elem = torch.empty((), dtype=dtype).element_size()
    pixels = num_views * height * width
    return pixels * faces_per_pixel * (4 + 5 * elem) + pixels * elem

def _check_soft_size(pos, ranges, h: int, w: int, K: int) -> None:
    """Refuse, before allocating, outputs larger than the device's memory (torch's allocator
    would raise a RuntimeError naming no argument, or the system start swapping)."""
    if pos.dim() == 3:
        views = pos.shape[0]
    elif isinstance(ranges, torch.Tensor) and ranges.dim() == 2:
        views = ranges.shape[0]
    else:
        return  # the op names what is wrong with the shapes
    need = _soft_output_bytes(views, h, w, K, pos.dtype if pos.is_floating_point() else torch.float32)
    if need < 2**30:
        return
    have = _memory_bytes(pos.device)
    if have is not None and need > have:
        raise ValueError(
            f"rasterize_soft: {views} views x resolution ({h}, {w}) x faces_per_pixel={K} needs "
            f"{need / 2**30:.1f} GiB for its outputs alone, more than the {have / 2**30:.1f} GiB of "
            f"{pos.device} memory; lower faces_per_pixel or the resolution, or render fewer views per call")

def soft_blur_radius(sigma: float, eps: float = 1e-4) -> float:
    """The blur radius (a squared NDC distance) beyond which a face's silhouette probability
    ``sigmoid(-d / sigma)`` falls below ``eps``: ``log(1 / eps - 1) * sigma``, as in PyTorch3D's
    tutorials."""
    sigma = _args.number(sigma, "sigma", positive=True)
    eps = _args.number(eps, "eps", positive=True)
    if eps >= 0.5:
        raise ValueError(f"eps must be a probability in (0, 0.5), got {eps}")
    return math.log(1.0 / eps - 1.0) * sigma

def rasterize_soft(
    pos: torch.Tensor,
    tri: torch.Tensor,
    resolution: Sequence[int],
    faces_per_pixel: int = 8,
    blur_radius: float | None = None,
    sigma: float = 1e-4,
    ranges: torch.Tensor | None = None,
    perspective_correct: bool = True,
    clip_barycentric_coords: bool | None = None,
) -> SoftRasterOutput:
    """Soft rasterization in the manner of SoftRas and PyTorch3D's ``rasterize_meshes`` with a
    ``SoftSilhouetteShader``: the K nearest faces per pixel, their signed distances and a soft
    silhouette whose gradients reach ``pos`` from outside the hard coverage too.

    Args:
        pos: clip-space positions ``[B,V,4]`` (instanced) or ``[V,4]`` with ``ranges`` (range
            mode), as in :func:`rasterize`; must be finite, and each vertex's largest
            ``|x|, |y|, |z|, |w|`` 0 or >= 1e-30 (below, the gradients, which grow as 1 / that
            scale, would overflow): ``ValueError`` otherwise. Scale such ``pos`` up: ``pos * c``
            renders the same for any c > 0.
        tri: ``[T,3]`` int32.
        resolution: ``(H, W)``. Pixel (i, j) is sampled at NDC ((2j+1)/W - 1, (2i+1)/H - 1), row 0
            at the bottom, and both axes span [-1, 1] even for non-square images (PyTorch3D
            instead scales the longer axis and points +X left).
        faces_per_pixel: K in ``[1, 128]``: the K nearest faces (by ``zbuf``) are kept per pixel.
        blur_radius: a SQUARED NDC distance, compared as PyTorch3D does: a face counts for a pixel
            when the pixel centre is strictly inside its projection or its squared distance to it
            is ``< blur_radius``. ``None`` (default) uses ``soft_blur_radius(sigma)`` =
            ``log(1/1e-4 - 1) * sigma``, the setting of PyTorch3D's tutorials. 0 gives hard edges.
        sigma: > 0, the sharpness of the silhouette: ``prob_k = sigmoid(-dists_k / sigma)``
            (PyTorch3D's ``BlendParams.sigma``).
        ranges: range mode only, ``[B,2]`` int32 CPU tensor of ``(start, count)`` into ``tri``.
        perspective_correct: ``bary`` perspective-correct (True, default) or screen-space.
        clip_barycentric_coords: as PyTorch3D's flag: clamp ``bary`` to >= 0 and renormalize, and
            take the depth (``zbuf``, the K-nearest order and the near/far test) at the clipped
            barycentrics ``c = max(l, 0) / sum_j max(l_j, 0)`` of the screen-space barycentrics
            ``l``: ``zbuf = sum_i c_i z_i/w_i``, the z/w of a point of the triangle (z/w is affine
            in screen space), never the plane extrapolated far outside a nearly edge-on face.
            ``None`` (default) turns it on when ``blur_radius > 0``, like PyTorch3D's
            ``MeshRasterizer``. ``False``: the plane's z/w extrapolated to the pixel centre.

    Returns:
        :class:`SoftRasterOutput` ``(face_ids, zbuf, bary, dists, alpha)``; slots sorted by
        increasing ``zbuf``, exact ties to the lower triangle id.

    Per pixel and face, a ``zbuf`` value outside [-1, 1] rejects the pair (near and far planes, as
    :func:`rasterize`). Triangles with a vertex at w <= 0 (at or behind the camera plane) are
    skipped entirely (not clipped): split or cull such geometry first. Zero-area triangles (projected
    area below 1e-30 pixel, whose gradients would overflow) are skipped. Gradients reach ``pos`` (x, y, z, w) through ``zbuf``, ``bary``, ``dists`` and
    ``alpha``; on the CPU they are bitwise reproducible for any thread count, on CUDA they are
    added to vertices with float atomics unless ``torch.use_deterministic_algorithms(True)``.
    """
    h, w = _resolution(resolution)
    K = _args.count(faces_per_pixel, "faces_per_pixel", 1, MAX_FACES_PER_PIXEL)
    sigma = _args.number(sigma, "sigma", positive=True)
    blur = soft_blur_radius(sigma) if blur_radius is None else _args.number(
        blur_radius, "blur_radius", minimum=0.0, expected="a finite squared NDC distance >= 0 or None")
    _rasterize_tensors(pos, tri, ranges)
    perspective_correct = _args.flag(perspective_correct, "perspective_correct")
    clip_barycentric_coords = blur > 0 if clip_barycentric_coords is None else _args.flag(
        clip_barycentric_coords, "clip_barycentric_coords")
    _check_device_supported(pos.device, "pos")
    _check_soft_size(pos, ranges, h, w, K)
    zbuf, bary, dists, face_ids = _ops.rasterize_soft_fwd(pos, tri, h, w, K, blur, perspective_correct,
                                                          clip_barycentric_coords, ranges)
    valid = face_ids >= 0
    # alpha = 1 - prod_k (1 - sigmoid(-d_k / sigma)) = 1 - exp(sum_k logsigmoid(d_k / sigma)): the same
    # value, evaluated without cancellation, and with finite gradients where a factor underflows
    # to 0 (deep inside a face), which also keeps torch.prod's slow zero-handling backward away.
    log_t = torch.where(valid, torch.nn.functional.logsigmoid(dists / sigma), torch.zeros_like(dists))
    alpha = -torch.expm1(log_t.sum(-1))
    return SoftRasterOutput(face_ids, zbuf, bary, dists, alpha)

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

@torch.library.register_fake("rastlit::texture_fwd")
def _texture_fwd_fake(tex, mips, uv, uv_da, mip_level_bias, filter_mode, boundary_mode):
    return tex.new_empty((uv.shape[0], uv.shape[1], uv.shape[2], tex.shape[-1]))  # cube maps: [B,6,S,S,C]

@torch.library.register_fake("rastlit::texture_bwd")
def _texture_bwd_fake(tex, mips, uv, uv_da, mip_level_bias, filter_mode, boundary_mode, grad_out):
    grad_uv_da = torch.empty_like(uv_da) if uv_da is not None else tex.new_empty((0,))
    grad_bias = torch.empty_like(mip_level_bias) if mip_level_bias is not None else tex.new_empty((0,))
    return torch.empty_like(tex), [torch.empty_like(m) for m in mips], torch.empty_like(uv), grad_uv_da, grad_bias

def _texture_setup(ctx, inputs, output):
    tex, mips, uv, uv_da, bias, filter_mode, boundary_mode = inputs
    ctx.modes = (filter_mode, boundary_mode)
    ctx.num_mips = len(mips)
    ctx.has_da = uv_da is not None
    ctx.has_bias = bias is not None
    ctx.save_for_backward(tex, uv, uv_da, bias, *mips)

def _texture_backward(ctx, grad_out):
    tex, uv, uv_da, bias, *mips = ctx.saved_tensors
    grad_tex, grad_mips, grad_uv, grad_uv_da, grad_bias = _ops.texture_bwd(
        tex, mips, uv, uv_da, bias, ctx.modes[0], ctx.modes[1], grad_out
    )
    return (
        grad_tex,
        list(grad_mips),
        grad_uv,
        grad_uv_da if ctx.has_da else None,
        grad_bias if ctx.has_bias else None,
        None,
        None,
    )

torch.library.register_autograd("rastlit::texture_fwd", _texture_backward, setup_context=_texture_setup)

@torch.library.register_fake("rastlit::antialias_fwd")
def _antialias_fwd_fake(color, rast, pos, tri, topology_hash, pos_gradient_boost):
    b, h, w = color.shape[0], color.shape[1], color.shape[2]
    return torch.empty_like(color, memory_format=torch.contiguous_format), color.new_empty((b, h, w, 4), dtype=torch.int32)

@torch.library.register_fake("rastlit::antialias_bwd")
def _antialias_bwd_fake(color, rast, pos, tri, topology_hash, work, grad_out):
    return torch.empty_like(color, memory_format=torch.contiguous_format), torch.empty_like(pos)

def _antialias_setup(ctx, inputs, output):
    color, rast, pos, tri, topology_hash, boost = inputs
    _out, work = output
    ctx.boost = float(boost)
    ctx.mark_non_differentiable(work)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(color, rast, pos, tri, topology_hash, work)

def _antialias_backward(ctx, grad_out, _grad_work):
    color, rast, pos, tri, topology_hash, work = ctx.saved_tensors
    if grad_out is None:
        return None, None, None, None, None, None
    grad_color, grad_pos = _ops.antialias_bwd(color, rast, pos, tri, topology_hash, work, grad_out)
    if ctx.boost != 1.0:
        grad_pos = grad_pos * ctx.boost
    return (
        grad_color if ctx.needs_input_grad[0] else None,
        None,
        grad_pos if ctx.needs_input_grad[2] else None,
        None,
        None,
        None,
    )

torch.library.register_autograd("rastlit::antialias_fwd", _antialias_backward, setup_context=_antialias_setup)

# ------------------------------------------------------------------ rasterize_soft: fake, autograd

@torch.library.register_fake("rastlit::rasterize_soft_fwd")
def _rasterize_soft_fwd_fake(pos, tri, height, width, faces_per_pixel, blur_radius, perspective_correct,
                             clip_barycentric_coords, ranges):
    num_views = pos.shape[0] if pos.dim() == 3 else ranges.shape[0]
    shape = (num_views, height, width, faces_per_pixel)
    return (pos.new_empty(shape), pos.new_empty(shape + (3,)), pos.new_empty(shape),
            pos.new_empty(shape, dtype=torch.int32))

@torch.library.register_fake("rastlit::rasterize_soft_bwd")
def _rasterize_soft_bwd_fake(pos, tri, face_ids, blur_radius, perspective_correct, clip_barycentric_coords, ranges,
                             grad_zbuf, grad_bary, grad_dists):
    return torch.empty_like(pos)

def _rasterize_soft_setup(ctx, inputs, output):
    pos, tri, _h, _w, _k, blur_radius, perspective_correct, clip_barycentric_coords, ranges = inputs
    face_ids = output[3]
    ctx.blur_radius = blur_radius
    ctx.perspective_correct = perspective_correct
    ctx.clip_barycentric_coords = clip_barycentric_coords
    ctx.set_materialize_grads(False)
    ctx.mark_non_differentiable(face_ids)
    ctx.save_for_backward(pos, tri, face_ids, ranges)

def _rasterize_soft_backward(ctx, g_zbuf, g_bary, g_dists, _g_ids):
    pos, tri, face_ids, ranges = ctx.saved_tensors
    none = (None,) * 9
    if not ctx.needs_input_grad[0] or (g_zbuf is None and g_bary is None and g_dists is None):
        return none
    shape = face_ids.shape
    if g_zbuf is None:
        g_zbuf = pos.new_zeros(shape)
    if g_dists is None:
        g_dists = pos.new_zeros(shape)
    if g_bary is None:
        g_bary = pos.new_zeros(tuple(shape) + (3,))
    grad_pos = _ops.rasterize_soft_bwd(pos, tri, face_ids, ctx.blur_radius, ctx.perspective_correct,
                                       ctx.clip_barycentric_coords, ranges, g_zbuf, g_bary, g_dists)
    return (grad_pos,) + none[1:]

torch.library.register_autograd(
    "rastlit::rasterize_soft_fwd", _rasterize_soft_backward, setup_context=_rasterize_soft_setup
)
