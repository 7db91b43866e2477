"""The ops as ``jax.custom_vjp`` functions over XLA FFI calls into rastlit's CPU kernels.

Each op is a pair of FFI targets (``rastlit_<op>_fwd`` / ``_bwd``, ``csrc/jax/ffi_cpu.cpp``):
the forward's custom_vjp rule saves what the backward kernel needs, and the backward returns
cotangents for the float inputs only (``None`` for index arrays). Static arguments (resolution,
modes, ``diff_attrs``) are ``nondiff_argnums``, passed to the kernels as FFI attributes.
Optional inputs travel as zero-size arrays. Shapes and dtypes are checked here, at trace time,
with messages that name the argument; the kernels check what needs values (indices, ids) and
fail the call with the torch ops' own text.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _build
from .. import _limits

MAX_RESOLUTION = _limits.MAX_RESOLUTION
MAX_TRIANGLES = _limits.MAX_TRIANGLES
MAX_MIP_LEVELS = _limits.MAX_MIP_LEVELS

_TARGETS = ["rasterize_fwd", "rasterize_bwd", "interpolate_fwd", "interpolate_bwd", "texture_fwd", "texture_bwd",
            "antialias_fwd", "antialias_bwd"]
_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    lib = _build.load()
    cuda = _build.cuda_enabled()
    for name in _TARGETS:
        # one target name, the same operands, a handler per platform
        jax.ffi.register_ffi_target(f"rastlit_{name}", jax.ffi.pycapsule(getattr(lib, f"rastlit_{name}")),
                                    platform="cpu")
        if cuda:
            jax.ffi.register_ffi_target(f"rastlit_{name}", jax.ffi.pycapsule(getattr(lib, f"rastlit_{name}_cuda")),
                                        platform="CUDA")
    _registered = True


def _ffi(name: str, outs, *args, **attrs):
    _register()
    # vmap of a kernel call is handled by _folding (a fallback that vmap_method covers: a loop)
    return jax.ffi.ffi_call(f"rastlit_{name}", outs, vmap_method="sequential")(*args, **attrs)


# ------------------------------------------------------------------------------------- vmap
# Every kernel takes a batch of views. Under vmap, the mapped axis is folded into the view axis,
# so one kernel call renders all of them: each argument has a kind,
#   "V": per view (leading axis = the B views);
#   "P": per view or shared by all views (rank `full` with a leading B or 1, or rank full - 1);
#        when the call is batched it is broadcast to [N,B,...] and folded;
#   "E": an optional input, a zero-size placeholder when absent (else as "V");
#   "S": shared and never folded (tri, ranges, topology): when it is batched, the call falls back
#        to lax.map over the mapped axis.
# Each output is "V" (per view: unfolded to [N,B,...]) or ("G", i): the gradient of "P" argument
# i, unfolded and summed back over the views that shared it.

def _folding(call, kinds: tuple, out_kinds: tuple, fulls: tuple):
    """``call(*arrays) -> tuple`` made a custom_vmap function that folds a vmapped axis into the
    kernels' view axis (see above). ``fulls[i]``: the full rank of "P" argument i."""

    @jax.custom_batching.custom_vmap
    def fn(*args):
        return call(*args)

    @fn.def_vmap
    def rule(axis_size, in_batched, *args):
        n = axis_size
        if any(b for b, k in zip(in_batched, kinds) if k == "S"):
            def one(xs):
                it = iter(xs)
                return fn(*[next(it) if b else a for a, b in zip(args, in_batched)])
            outs = jax.lax.map(one, tuple(a for a, b in zip(args, in_batched) if b))
            return outs, tuple(True for _ in outs)
        views = None
        for a, b, k in zip(args, in_batched, kinds):
            if k in ("V", "E") and a.size:
                views = a.shape[1] if b else a.shape[0]
                break
        folded, orig = [], {}
        for i, (a, b, k) in enumerate(zip(args, in_batched, kinds)):
            if k == "S" or (k == "E" and a.size == 0):
                folded.append(a)
                continue
            if k == "P":
                r = a.ndim - (1 if b else 0)
                orig[i] = (r, a.shape[1] if b and r == fulls[i] else (a.shape[0] if r == fulls[i] else None))
                per = a if r == fulls[i] else (a[:, None] if b else a[None])  # [(N,)lead,...]
                if not b:
                    per = per[None]
                per = jnp.broadcast_to(per, (n, views, *per.shape[2:]))
                folded.append(per.reshape(n * views, *per.shape[2:]))
                continue
            full = a if b else jnp.broadcast_to(a[None], (n, *a.shape))
            folded.append(full.reshape(n * full.shape[1], *full.shape[2:]))
        outs = call(*folded)
        res = []
        for o, ok in zip(outs, out_kinds):
            o = o.reshape(n, o.shape[0] // n, *o.shape[1:])
            if ok != "V":
                r, lead = orig[ok[1]]
                if r < fulls[ok[1]]:
                    o = o.sum(1)                   # shared by all views: [N,...]
                elif lead == 1:
                    o = o.sum(1, keepdims=True)    # broadcast over views: [N,1,...]
            res.append(o)
        return tuple(res), tuple(True for _ in res)

    return fn


def _call(name: str, outs_for, *args, kinds: tuple, out_kinds: tuple | None = None, fulls: tuple | None = None,
          **attrs):
    """The kernel ``name`` on ``args`` (output shapes from ``outs_for(*args)``), vmapping by
    folding (see :func:`_folding`)."""
    n_out = len(outs_for(*args))
    call = lambda *a: tuple(_ffi(name, outs_for(*a), *a, **attrs))  # noqa: E731
    return _folding(call, kinds, out_kinds or ("V",) * n_out, fulls or (0,) * len(kinds))(*args)


def _sds(shape, dtype):
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), dtype)


def _empty(dtype):
    return jnp.zeros((0,), dtype)


# The custom_vjp rules use symbolic zeros: the forward rule gets CustomVJPPrimal wrappers, and a
# cotangent that is known to be zero arrives as a SymbolicZero, so an unused rast_db (or out_da)
# costs the backward kernel nothing, as an undefined gradient does in the torch ops.
def _primal(x):
    return x.value if isinstance(x, jax.custom_derivatives.CustomVJPPrimal) else x


def _is_zero(ct) -> bool:
    return isinstance(ct, jax.custom_derivatives.SymbolicZero)


def _dense(ct, like):
    return jnp.zeros(like.shape, like.dtype) if _is_zero(ct) else ct


# ------------------------------------------------------------------------------------- checks

def _array(x, name: str):
    if not isinstance(x, (jax.Array, np.ndarray)) and not hasattr(x, "aval"):
        raise TypeError(f"{name} must be a JAX array, got {type(x).__name__}")
    return jnp.asarray(x)


def _float(x, name: str):
    x = _array(x, name)
    if x.dtype not in (jnp.float32, jnp.float64):
        raise TypeError(f"{name} must be float32 (or float64 with jax_enable_x64), got {x.dtype}")
    return x


def _int32(x, name: str):
    x = _array(x, name)
    if x.dtype != jnp.int32:
        raise TypeError(f"{name} must be int32, got {x.dtype} (convert with .astype(jnp.int32))")
    return x


def _same_dtype(x, ref, name: str, ref_name: str):
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {x.dtype}")


def _image(x, name: str, b, h, w, c):
    if x.ndim != 4 or tuple(x.shape) != (b, h, w, c):
        raise ValueError(f"{name} must have shape [{b},{h},{w},{c}], got {list(x.shape)}")


def _tri(tri):
    tri = _int32(tri, "tri")
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"tri must have shape [T,3], got {list(tri.shape)}")
    if tri.shape[0] > MAX_TRIANGLES:
        raise ValueError(f"tri has {tri.shape[0]} triangles; at most {MAX_TRIANGLES} are supported "
                         "(ids must be exact in float32)")
    return tri


# ---------------------------------------------------------------------------------- rasterize

def rasterize(pos, tri, resolution: Sequence[int], ranges=None, grad_db: bool = True, peel=None):
    """Rasterize triangles: ``(rast, rast_db)``, as :func:`rastlit.rasterize`.

    ``pos`` ``[B,V,4]`` (instanced) or ``[V,4]`` with ``ranges`` ``[B,2]`` int32 (range mode);
    ``tri`` ``[T,3]`` int32; ``resolution`` ``(H, W)`` (static). ``rast`` ``[B,H,W,4]`` = (u, v, z/w,
    id + 1) with row 0 at the bottom; ``rast_db`` ``[B,H,W,4]``. ``peel``: the previous depth
    layer's ``rast`` (depth peeling; see :func:`depth_peel`). Differentiable in ``pos`` (through u,
    v, and ``rast_db`` when ``grad_db``)."""
    h, w = _limits.resolution(resolution)
    pos = _float(pos, "pos")
    tri = _tri(tri)
    if pos.ndim == 3:
        if pos.shape[2] != 4:
            raise ValueError(f"pos must have shape [B,V,4] (instanced mode) or [V,4] (range mode), got {list(pos.shape)}")
        if ranges is not None:
            raise ValueError(f"ranges is only used in range mode, with pos of shape [V,4]; got pos {list(pos.shape)} "
                             "and ranges")
        views = pos.shape[0]
        ranges = jnp.zeros((0, 2), jnp.int32)
    elif pos.ndim == 2 and pos.shape[1] == 4:
        if ranges is None:
            raise ValueError("range mode (pos of shape [V,4]) needs ranges, an int32 array [B,2] of (start, count)")
        ranges = _int32(ranges, "ranges")
        if ranges.ndim != 2 or ranges.shape[1] != 2:
            raise ValueError(f"ranges must have shape [B,2] of (start, count), got {list(ranges.shape)}")
        views = ranges.shape[0]
    else:
        raise ValueError(f"pos must have shape [B,V,4] (instanced mode) or [V,4] (range mode), got {list(pos.shape)}")
    if peel is None:
        peel = _empty(pos.dtype)
    else:
        peel = jax.lax.stop_gradient(_float(peel, "peel"))
        _image(peel, "peel (the previous depth layer's rast)", views, h, w, 4)
        _same_dtype(peel, pos, "peel", "pos")
    return _rasterize(pos, tri, ranges, peel, (h, w), _limits.flag(grad_db, "grad_db"), views)


@partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _rasterize(pos, tri, ranges, peel, res, grad_db, views):
    return _rasterize_fwd_call(pos, tri, ranges, peel, res, views)


def _rasterize_kinds(pos):
    # range mode: every view reads the one vertex array through its own range, nothing folds
    return ("V", "S", "S") if pos.ndim == 3 else ("S", "S", "S")


def _rasterize_fwd_call(pos, tri, ranges, peel, res, views):
    def outs(pos, tri, ranges, peel):
        v = pos.shape[0] if pos.ndim == 3 else ranges.shape[0]
        return (_sds((v, res[0], res[1], 4), pos.dtype),) * 2

    return _call("rasterize_fwd", outs, pos, tri, ranges, peel, kinds=_rasterize_kinds(pos) + ("E",))


def _rasterize_fwd(pos, tri, ranges, peel, res, grad_db, views):
    pos, tri, ranges, peel = map(_primal, (pos, tri, ranges, peel))
    rast, rast_db = _rasterize_fwd_call(pos, tri, ranges, peel, res, views)
    return (rast, rast_db), (pos, tri, ranges, rast)


def _rasterize_bwd(res, grad_db, views, saved, cts):
    pos, tri, ranges, rast = saved
    g_rast, g_db = cts
    g_rast = _dense(g_rast, rast)
    g_db = g_db if grad_db and not _is_zero(g_db) else _empty(pos.dtype)
    (g_pos,) = _call("rasterize_bwd", lambda pos, *_: (_sds(pos.shape, pos.dtype),), pos, tri, ranges, rast, g_rast,
                     g_db, kinds=_rasterize_kinds(pos) + ("V", "V", "E"))
    return g_pos, None, None, None


_rasterize.defvjp(_rasterize_fwd, _rasterize_bwd, symbolic_zeros=True)


def depth_peel(pos, tri, resolution: Sequence[int], num_layers: int, ranges=None, grad_db: bool = True):
    """The first ``num_layers`` depth layers, nearest first, as a list of ``(rast, rast_db)``
    (the functional form of :class:`rastlit.DepthPeeler`): layer k + 1 holds, at every pixel, the
    fragment after layer k's in the z-buffer's order. Each layer is differentiable in ``pos``."""
    num_layers = _limits.count(num_layers, "num_layers", 1)
    layers, prev = [], None
    for _ in range(num_layers):
        rast, rast_db = rasterize(pos, tri, resolution, ranges=ranges, grad_db=grad_db, peel=prev)
        layers.append((rast, rast_db))
        prev = rast
    return layers


# -------------------------------------------------------------------------------- interpolate

def interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
    """Interpolate vertex attributes: ``(out, out_da)``, as :func:`rastlit.interpolate`.

    ``attr`` ``[B,V,A]``, ``[1,V,A]`` or ``[V,A]``; ``rast`` ``[B,H,W,4]``; ``tri`` ``[T,3]``;
    ``rast_db`` needed for ``diff_attrs`` (a list of attribute indices or ``'all'``, static).
    ``out`` ``[B,H,W,A]``, ``out_da`` ``[B,H,W,2*len(diff_attrs)]``. Differentiable in ``attr``,
    ``rast`` and ``rast_db``."""
    attr = _float(attr, "attr")
    rast = _float(rast, "rast")
    tri = _tri(tri)
    if attr.ndim not in (2, 3):
        raise ValueError(f"attr must have shape [B,V,A], [1,V,A] or [V,A], got {list(attr.shape)}")
    if rast.ndim != 4 or rast.shape[3] != 4:
        raise ValueError(f"rast must have shape [B,H,W,4], got {list(rast.shape)}")
    _same_dtype(rast, attr, "rast", "attr")
    b, h, w = rast.shape[:3]
    if attr.ndim == 3 and attr.shape[0] not in (1, b):
        raise ValueError(f"attr must have shape [B,V,A] with B = rast.shape[0] = {b}, [1,V,A] or [V,A], got "
                         f"{list(attr.shape)}")
    num_attrs = attr.shape[-1]
    diff = _limits.diff_attrs(diff_attrs, num_attrs)
    if diff:
        if rast_db is None:
            raise ValueError("diff_attrs needs rast_db, the second output of rasterize")
        rast_db = _float(rast_db, "rast_db")
        _image(rast_db, "rast_db", b, h, w, 4)
        _same_dtype(rast_db, attr, "rast_db", "attr")
    else:
        rast_db = _empty(attr.dtype)
    return _interpolate(attr, rast, tri, rast_db, tuple(diff))


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _interpolate(attr, rast, tri, rast_db, diff):
    return _interpolate_fwd_call(attr, rast, tri, rast_db, diff)


def _interpolate_fwd_call(attr, rast, tri, rast_db, diff):
    def outs(attr, rast, *_):
        b, h, w = rast.shape[:3]
        return (_sds((b, h, w, attr.shape[-1]), attr.dtype), _sds((b, h, w, 2 * len(diff)), attr.dtype))

    return _call("interpolate_fwd", outs, attr, rast, tri, rast_db, kinds=("P", "V", "S", "E"), fulls=(3, 0, 0, 0),
                 diff_attrs=np.asarray(diff, np.int32))


def _interpolate_fwd(attr, rast, tri, rast_db, diff):
    attr, rast, tri, rast_db = map(_primal, (attr, rast, tri, rast_db))
    return _interpolate_fwd_call(attr, rast, tri, rast_db, diff), (attr, rast, tri, rast_db)


def _interpolate_bwd(diff, saved, cts):
    attr, rast, tri, rast_db = saved
    g_out, g_da = cts
    b, h, w = rast.shape[:3]
    g_out = jnp.zeros((b, h, w, attr.shape[-1]), attr.dtype) if _is_zero(g_out) else g_out
    g_da = _empty(attr.dtype) if _is_zero(g_da) else g_da
    def outs(attr, rast, tri, rast_db, *_):
        return (_sds(attr.shape, attr.dtype), _sds(rast.shape, rast.dtype), _sds(rast_db.shape, attr.dtype))

    g_attr, g_rast, g_db = _call("interpolate_bwd", outs, attr, rast, tri, rast_db, g_out,
                                 g_da if diff else _empty(attr.dtype), kinds=("P", "V", "S", "E", "V", "E"),
                                 out_kinds=(("G", 0), "V", "V"), fulls=(3, 0, 0, 0, 0, 0),
                                 diff_attrs=np.asarray(diff, np.int32))
    return g_attr, g_rast, None, g_db


_interpolate.defvjp(_interpolate_fwd, _interpolate_bwd, symbolic_zeros=True)


# ------------------------------------------------------------------------------------ texture

_TEXTURE_FILTERS = {"nearest": 0, "linear": 1, "linear-mipmap-nearest": 2, "linear-mipmap-linear": 3}
_TEXTURE_BOUNDARIES = {"wrap": 0, "clamp": 1, "zero": 2, "cube": 3}
_CUBE = _TEXTURE_BOUNDARIES["cube"]


def texture_construct_mip(tex, max_mip_level: int | None = None, cube_mode: bool | None = None) -> list:
    """The mip pyramid below ``tex`` ``[B,Ht,Wt,C]``, or below a cube map ``[B,6,S,S,C]``
    (``cube_mode``; None takes it from the shape, 5 dimensions: each face reduced on its own),
    level 1 first (2x2 box averages, as :func:`rastlit.texture_construct_mip`, bitwise), built with
    jnp ops so gradients flow to ``tex``."""
    tex = _float(tex, "tex")
    cube_mode = tex.ndim == 5 if cube_mode is None else _limits.flag(cube_mode, "cube_mode")
    limit = _limits.max_mip_level(max_mip_level)
    if cube_mode:
        if tex.ndim != 5 or tex.shape[1] != 6 or tex.shape[2] != tex.shape[3]:
            raise ValueError(f"tex must have shape [B,6,S,S,C] (six square faces) with cube_mode=True, got "
                             f"{tuple(tex.shape)}")
        b, _, size, _, c = tex.shape
        flat = texture_construct_mip(tex.reshape(b * 6, size, size, c), limit, cube_mode=False)
        return [m.reshape(b, 6, m.shape[1], m.shape[2], c) for m in flat]
    if tex.ndim != 4:
        raise ValueError(f"tex must have shape [B,Ht,Wt,C], got {list(tex.shape)}")
    limit = MAX_MIP_LEVELS if limit is None else limit
    levels, cur = [], tex
    h, w = tex.shape[1], tex.shape[2]
    while len(levels) < limit and (h > 1 or w > 1):
        if (h > 1 and h % 2) or (w > 1 and w % 2):
            k = len(levels)
            raise ValueError(_limits.msg_mip_not_halvable(k, h, w))
        kh, kw = (2 if h > 1 else 1), (2 if w > 1 else 1)
        # rows, then columns, then the scale: the torch op's order of additions (bitwise equal)
        if kh == 2:
            cur = cur[:, 0::2] + cur[:, 1::2]
        if kw == 2:
            cur = cur[:, :, 0::2] + cur[:, :, 1::2]
        cur = cur * jnp.asarray(1.0 / (kh * kw), cur.dtype)
        h, w = h // kh, w // kw
        levels.append(cur.astype(tex.dtype))
    if max_mip_level is None and (h > 1 or w > 1):
        raise ValueError(_limits.msg_too_many_mip_levels(tex.shape[1:3]))
    return levels


def _check_texture_shapes(tex, uv, cube: bool):
    """The torch op's shape checks of tex and uv (csrc/ops.cpp, check_texture_inputs), same texts."""
    if cube:
        if tex.ndim != 5 or tex.shape[1] != 6 or tex.shape[4] < 1:
            raise ValueError("tex must have shape [B,6,S,S,C] (or [1,6,S,S,C]) for boundary_mode='cube': six square "
                             f"faces in the order +x,-x,+y,-y,+z,-z, C >= 1; got {list(tex.shape)}")
        if tex.shape[2] != tex.shape[3] or tex.shape[2] < 1:
            raise ValueError(f"tex must have square cube faces (shape [B,6,S,S,C] with S >= 1), got {list(tex.shape)}")
        if tex.shape[2] > 2 * MAX_RESOLUTION:
            raise ValueError(f"tex faces must be at most {2 * MAX_RESOLUTION} texels on a side, got {list(tex.shape)}")
        if uv.ndim != 4 or uv.shape[3] != 3:
            raise ValueError(f"uv must have shape [B,H,W,3] (direction vectors) for boundary_mode='cube', got "
                             f"{list(uv.shape)}")
    else:
        if tex.ndim != 4 or min(tex.shape[1:]) < 1:
            hint = " (a [B,6,S,S,C] cube map needs boundary_mode='cube')" if tex.ndim == 5 else ""
            raise ValueError(f"tex must have shape [B,Ht,Wt,C] (or [1,Ht,Wt,C]) with Ht, Wt, C >= 1, got "
                             f"{list(tex.shape)}{hint}")
        if uv.ndim != 4 or uv.shape[3] != 2:
            raise ValueError(f"uv must have shape [B,H,W,2], got {list(uv.shape)}")
    _same_dtype(uv, tex, "uv", "tex")
    b = uv.shape[0]
    if tex.shape[0] not in (1, b):
        what = "[1,6,S,S,C] or [B,6,S,S,C]" if cube else "[1,Ht,Wt,C] or [B,Ht,Wt,C]"
        raise ValueError(f"tex must have shape {what} with B = uv.shape[0] = {b}, got {list(tex.shape)}")


def _check_mips(tex, mips, cube: bool):
    """Each level the previous one halved (per face for cube maps), as the torch op checks."""
    if len(mips) > MAX_MIP_LEVELS:
        raise ValueError(f"at most {MAX_MIP_LEVELS} mip levels are supported, got {len(mips)}; pass max_mip_level")
    fd = 1 if cube else 0
    tb, c = tex.shape[0], tex.shape[-1]
    lh, lw = tex.shape[1 + fd], tex.shape[2 + fd]
    for k, m in enumerate(mips):
        m = _float(m, f"mip[{k}]")
        if lh == 1 and lw == 1:
            raise ValueError(f"mip level {k + 1} is one too many: level {k} is already 1x1")
        if lh > 1 and lh % 2:
            raise ValueError(f"mip level {k} has height {lh}, which cannot be halved")
        if lw > 1 and lw % 2:
            raise ValueError(f"mip level {k} has width {lw}, which cannot be halved")
        lh, lw = max(lh // 2, 1), max(lw // 2, 1)
        shape = (tb, 6, lh, lw, c) if cube else (tb, lh, lw, c)
        if tuple(m.shape) != shape:
            what, how = (("each face of the previous level halved", "texture_construct_mip(tex, cube_mode=True)")
                         if cube else ("each side > 1 of the previous level halved", "texture_construct_mip(tex)"))
            raise ValueError(f"mip level {k + 1} must have shape [{','.join(map(str, shape))}] ({what}), got "
                             f"{list(m.shape)}; build it with {how}")
        _same_dtype(m, tex, "mip levels", "tex")


def texture(tex, uv, uv_da=None, mip_level_bias=None, mip=None, filter_mode: str = "auto",
            boundary_mode: str = "wrap", max_mip_level: int | None = None):
    """Sample ``tex`` ``[B,Ht,Wt,C]`` or ``[1,Ht,Wt,C]`` at ``uv`` ``[B,H,W,2]``, as
    :func:`rastlit.texture` (same filter and boundary modes; the mipmap modes need ``uv_da``
    ``[B,H,W,4]`` or ``mip_level_bias`` ``[B,H,W]``). With ``boundary_mode='cube'``: ``tex`` a
    cube map ``[B,6,S,S,C]`` or ``[1,6,S,S,C]`` (faces +x, -x, +y, -y, +z, -z), ``uv`` ``[B,H,W,3]``
    lookup directions and ``uv_da`` ``[B,H,W,6]``, as the torch op. Differentiable in ``tex``
    (through the pyramid), ``uv``, and in trilinear mode ``uv_da`` and ``mip_level_bias``."""
    if filter_mode == "auto":
        filter_mode = "linear-mipmap-linear" if (uv_da is not None or mip_level_bias is not None) else "linear"
    if filter_mode not in _TEXTURE_FILTERS:
        raise ValueError(f"filter_mode must be one of 'auto', {', '.join(map(repr, _TEXTURE_FILTERS))}; got "
                         f"{filter_mode!r}")
    if boundary_mode not in _TEXTURE_BOUNDARIES:
        raise ValueError(f"boundary_mode must be one of {', '.join(map(repr, _TEXTURE_BOUNDARIES))}; got "
                         f"{boundary_mode!r}")
    cube = boundary_mode == "cube"
    max_mip_level = _limits.max_mip_level(max_mip_level)
    tex = _float(tex, "tex")
    uv = _float(uv, "uv")
    _check_texture_shapes(tex, uv, cube)
    b, h, w = uv.shape[:3]
    mipmapped = "mipmap" in filter_mode
    if mipmapped and max_mip_level == 0:
        filter_mode, mipmapped = "linear", False  # as documented (and as nvdiffrast): no levels
    if mipmapped and uv_da is None and mip_level_bias is None:
        raise ValueError(f"filter_mode={filter_mode!r} needs uv_da or mip_level_bias to choose the mip level")
    if not mipmapped:
        mips, uv_da, mip_level_bias = [], None, None
    elif mip is None:
        mips = texture_construct_mip(tex, max_mip_level, cube_mode=cube)
    else:
        if not isinstance(mip, (list, tuple)):
            raise TypeError("mip must be the list of arrays that texture_construct_mip(tex) returns")
        mips = list(mip)[:max_mip_level] if max_mip_level is not None else list(mip)
    _check_mips(tex, mips, cube)
    if uv_da is not None:
        uv_da = _float(uv_da, "uv_da")
        _image(uv_da, "uv_da", b, h, w, 6 if cube else 4)
        _same_dtype(uv_da, tex, "uv_da", "tex")
    else:
        uv_da = _empty(tex.dtype)
    if mip_level_bias is not None:
        mip_level_bias = _float(mip_level_bias, "mip_level_bias")
        if tuple(mip_level_bias.shape) != (b, h, w):
            raise ValueError(f"mip_level_bias must have shape [{b},{h},{w}], got {list(mip_level_bias.shape)}")
        _same_dtype(mip_level_bias, tex, "mip_level_bias", "tex")
    else:
        mip_level_bias = _empty(tex.dtype)
    modes = (_TEXTURE_FILTERS[filter_mode], _TEXTURE_BOUNDARIES[boundary_mode])
    return _texture(tex, uv, uv_da, mip_level_bias, tuple(mips), modes)


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _texture(tex, uv, uv_da, bias, mips, modes):
    return _texture_fwd_call(tex, uv, uv_da, bias, mips, modes)


def _texture_rank(modes) -> int:
    return 5 if modes[1] == _CUBE else 4  # the full rank of tex and its levels ("P" under vmap)


def _texture_fwd_call(tex, uv, uv_da, bias, mips, modes):
    r = _texture_rank(modes)
    (res,) = _call("texture_fwd", lambda tex, uv, *_: (_sds((*uv.shape[:3], tex.shape[-1]), tex.dtype),),
                   tex, uv, uv_da, bias, *mips, kinds=("P", "V", "E", "E") + ("P",) * len(mips),
                   fulls=(r, 0, 0, 0) + (r,) * len(mips), filter=np.int64(modes[0]), boundary=np.int64(modes[1]))
    return res


def _texture_fwd(tex, uv, uv_da, bias, mips, modes):
    tex, uv, uv_da, bias = map(_primal, (tex, uv, uv_da, bias))
    mips = tuple(map(_primal, mips))
    return _texture_fwd_call(tex, uv, uv_da, bias, mips, modes), (tex, uv, uv_da, bias, mips)


def _texture_bwd(modes, saved, g_out):
    tex, uv, uv_da, bias, mips = saved
    g_out = jnp.zeros((*uv.shape[:3], tex.shape[-1]), tex.dtype) if _is_zero(g_out) else g_out
    k, r = len(mips), _texture_rank(modes)

    def outs(tex, uv, uv_da, bias, g_out, *mips):
        return tuple(_sds(x.shape, x.dtype) for x in (tex, uv, uv_da, bias, *mips))

    g = _call("texture_bwd", outs, tex, uv, uv_da, bias, g_out, *mips, kinds=("P", "V", "E", "E", "V") + ("P",) * k,
              out_kinds=(("G", 0), "V", "V", "V") + tuple(("G", 5 + i) for i in range(k)),
              fulls=(r, 0, 0, 0, 0) + (r,) * k, filter=np.int64(modes[0]), boundary=np.int64(modes[1]))
    return g[0], g[1], g[2], g[3], tuple(g[4:])


_texture.defvjp(_texture_fwd, _texture_bwd, symbolic_zeros=True)


# ---------------------------------------------------------------------------------- antialias

def antialias_construct_topology_hash(tri):
    """``[T,6]`` int32 edge topology of ``tri`` for :func:`antialias` (as
    :func:`rastlit.antialias_construct_topology_hash`: opposite vertex, then the triangle across
    each edge; -1 on a boundary, -2 when non-manifold or degenerate). Works on concrete and
    traced ``tri``."""
    tri = _tri(tri)
    n = tri.shape[0]
    if n == 0:
        return jnp.zeros((0, 6), jnp.int32)
    t = tri.astype(jnp.int64) if jax.config.jax_enable_x64 else tri
    a = t[:, jnp.array([1, 2, 0])].reshape(-1)
    b = t[:, jnp.array([2, 0, 1])].reshape(-1)
    own = t.reshape(-1)
    lo, hi = jnp.minimum(a, b), jnp.maximum(a, b)
    deg = jnp.repeat((t[:, 0] == t[:, 1]) | (t[:, 1] == t[:, 2]) | (t[:, 0] == t[:, 2]), 3)
    m = 3 * n
    # sort the edges by (lo, hi), degenerate triangles' edges apart (each its own key)
    idx = jnp.arange(m)
    lo = jnp.where(deg, -1 - idx, lo)
    hi = jnp.where(deg, 0, hi)
    order = jnp.lexsort((idx, hi, lo))
    ls, hs = lo[order], hi[order]
    first = jnp.ones((m,), bool).at[1:].set((ls[1:] != ls[:-1]) | (hs[1:] != hs[:-1]))
    run = jnp.cumsum(first) - 1
    count = jnp.bincount(run, length=m)[run]
    partner = jnp.clip(jnp.where(first, idx + 1, idx - 1), 0, m - 1)
    p_edge = order[partner]
    opp_sorted = jnp.where(count == 2, own[p_edge], jnp.where(count == 1, -1, -2))
    nbr_sorted = jnp.where(count == 2, p_edge // 3, jnp.where(count == 1, -1, -2))
    bad = deg[order]
    opp_sorted = jnp.where(bad, -2, opp_sorted)
    nbr_sorted = jnp.where(bad, -2, nbr_sorted)
    opp = jnp.zeros((m,), opp_sorted.dtype).at[order].set(opp_sorted)
    nbr = jnp.zeros((m,), nbr_sorted.dtype).at[order].set(nbr_sorted)
    return jnp.concatenate([opp.reshape(n, 3), nbr.reshape(n, 3)], 1).astype(jnp.int32)


def antialias(color, rast, pos, tri, topology_hash=None, pos_gradient_boost: float = 1.0):
    """Analytic antialiasing of silhouette edges, as :func:`rastlit.antialias`: ``color``
    ``[B,H,W,C]``, ``rast`` from :func:`rasterize`, ``pos`` ``[B,V,4]`` or ``[V,4]``, ``tri``
    ``[T,3]``. Differentiable in ``color`` and ``pos`` (times ``pos_gradient_boost``)."""
    color = _float(color, "color")
    rast = _float(rast, "rast")
    pos = _float(pos, "pos")
    tri = _tri(tri)
    if color.ndim != 4:
        raise ValueError(f"color must have shape [B,H,W,C], got {list(color.shape)}")
    b, h, w, _ = color.shape
    _image(rast, "rast", b, h, w, 4)
    _same_dtype(rast, color, "rast", "color")
    _same_dtype(pos, color, "pos", "color")
    if not ((pos.ndim == 3 and pos.shape[0] == b and pos.shape[2] == 4) or (pos.ndim == 2 and pos.shape[1] == 4)):
        raise ValueError(f"pos must have shape [B,V,4] with B = color.shape[0] = {b} (instanced mode) or [V,4] "
                         f"(range mode), got {list(pos.shape)}")
    pos_gradient_boost = _limits.number(pos_gradient_boost, "pos_gradient_boost")
    if topology_hash is None:
        topology_hash = antialias_construct_topology_hash(tri)
    topology_hash = _int32(topology_hash, "topology_hash")
    if tuple(topology_hash.shape) != (tri.shape[0], 6):
        raise ValueError(f"topology_hash must have shape [T,6] = [{tri.shape[0]},6] to match tri, got "
                         f"{list(topology_hash.shape)}: build it with antialias_construct_topology_hash(tri)")
    return _antialias(color, rast, pos, tri, topology_hash, float(pos_gradient_boost))


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def _antialias(color, rast, pos, tri, topo, boost):
    return _antialias_fwd_call(color, rast, pos, tri, topo)[0]


def _antialias_fwd_call(color, rast, pos, tri, topo):
    def outs(color, *_):
        return (_sds(color.shape, color.dtype), _sds((*color.shape[:3], 4), jnp.int32))

    return _call("antialias_fwd", outs, color, rast, pos, tri, topo, kinds=("V", "V", "P", "S", "S"),
                 fulls=(0, 0, 3, 0, 0))


def _antialias_fwd(color, rast, pos, tri, topo, boost):
    color, rast, pos, tri, topo = map(_primal, (color, rast, pos, tri, topo))
    out, work = _antialias_fwd_call(color, rast, pos, tri, topo)
    return out, (color, rast, pos, tri, topo, work)


def _antialias_bwd(boost, saved, g_out):
    color, rast, pos, tri, topo, work = saved
    g_out = _dense(g_out, color)

    def outs(color, rast, pos, *_):
        return (_sds(color.shape, color.dtype), _sds(pos.shape, pos.dtype))

    g_color, g_pos = _call("antialias_bwd", outs, color, rast, pos, tri, topo, work, g_out,
                           kinds=("V", "V", "P", "S", "S", "V", "V"), out_kinds=("V", ("G", 2)), fulls=(0, 0, 3, 0, 0, 0, 0))
    if boost != 1.0:
        g_pos = g_pos * jnp.asarray(boost, g_pos.dtype)
    return g_color, None, g_pos, None, None


_antialias.defvjp(_antialias_fwd, _antialias_bwd, symbolic_zeros=True)
