"""rastlit.jax: the ops as jax.custom_vjp functions over XLA FFI handlers.

- parity: outputs and gradients (VJPs with random cotangents) equal the torch ops bitwise, on the
  oracle scenes and a shaded icosphere, float32 and float64;
- gradients: central differences in float64 for each op and a rasterize->interpolate->texture->
  antialias chain;
- transformations: jit(grad), vmap against a Python loop (nested too), vmap over attributes only
  and over positions only;
- bad input: shape, dtype, index and resolution errors, raised at trace time in Python or by the
  kernels with the torch ops' text;
- packaging: `import rastlit.jax` imports no torch.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)  # float64 for the gradient checks (float32 stays the default)
import jax.numpy as jnp  # noqa: E402

import rastlit.jax as rj  # noqa: E402
from scenes import all_scenes, clip_positions, icosphere, look_at, perspective  # noqa: E402

torch = pytest.importorskip("torch")
import rastlit  # noqa: E402


def _sphere(views=2, subdiv=2, seed=0, dtype=np.float32):
    """An icosphere seen by `views` perspective cameras (clip positions), with colours and UVs."""
    v, f = icosphere(subdiv)
    rng = np.random.default_rng(seed)
    mvps = []
    for b in range(views):
        a = 0.7 * b + 0.3
        eye = np.array([2.6 * np.sin(a), 0.4 + 0.2 * b, 2.6 * np.cos(a)])
        mvps.append(perspective(45, 1.0, 0.5, 10) @ look_at(eye, np.zeros(3)))
    col = rng.uniform(0, 1, (len(v), 3))
    uv = np.stack([np.arctan2(v[:, 0], v[:, 2]) / (2 * np.pi) + 0.5, v[:, 1] * 0.5 + 0.5], 1)
    return (clip_positions(v, mvps, dtype), f, col.astype(dtype), uv.astype(dtype))


def _t(x):
    return torch.from_numpy(np.asarray(x).copy())


def _eq(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert np.array_equal(a, b, equal_nan=True), (what, np.nanmax(np.abs(a - b)))


# ----------------------------------------------------------------------------------- parity

@pytest.mark.parametrize("scene", all_scenes(), ids=lambda s: s.name)
def test_rasterize_matches_torch_bitwise(scene):
    pos, tri, ranges, H, W, _ = scene
    rng = np.random.default_rng(1)
    rj_ranges = None if ranges is None else jnp.asarray(ranges)
    (rast, db), vjp = jax.vjp(lambda p: rj.rasterize(p, jnp.asarray(tri), (H, W), ranges=rj_ranges),
                              jnp.asarray(pos))
    pt = _t(pos).requires_grad_()
    rt, dbt = rastlit.rasterize(pt, _t(tri), (H, W), ranges=None if ranges is None else _t(ranges))
    _eq(rast, rt.detach(), "rast")
    _eq(db, dbt.detach(), "rast_db")
    # cotangents only where a triangle is (the backward's input is the forward's output)
    g1 = rng.standard_normal(rast.shape).astype(np.float32)
    g2 = rng.standard_normal(rast.shape).astype(np.float32)
    (gp,) = vjp((jnp.asarray(g1), jnp.asarray(g2)))
    (gpt,) = torch.autograd.grad([rt, dbt], [pt], [_t(g1), _t(g2)])
    _eq(gp, gpt, "grad pos")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chain_matches_torch_bitwise(dtype):
    """rasterize -> interpolate (with derivatives) -> texture (trilinear) -> antialias, outputs
    and every input's gradient."""
    pos, tri, col, uv = _sphere(dtype=dtype)
    rng = np.random.default_rng(2)
    tex = rng.uniform(0, 1, (1, 32, 32, 3)).astype(dtype)
    res = (48, 40)

    def chain_jax(pos, col, uv, tex):
        rast, db = rj.rasterize(pos, jnp.asarray(tri), res)
        c, _ = rj.interpolate(col, rast, jnp.asarray(tri))
        t, t_da = rj.interpolate(uv, rast, jnp.asarray(tri), rast_db=db, diff_attrs="all")
        s = rj.texture(tex, t, t_da, filter_mode="linear-mipmap-linear", boundary_mode="wrap")
        return rj.antialias(c * s, rast, pos, jnp.asarray(tri))

    def chain_torch(pos, col, uv, tex):
        trit = _t(tri)
        rast, db = rastlit.rasterize(pos, trit, res)
        c, _ = rastlit.interpolate(col, rast, trit)
        t, t_da = rastlit.interpolate(uv, rast, trit, rast_db=db, diff_attrs="all")
        s = rastlit.texture(tex, t, t_da, filter_mode="linear-mipmap-linear", boundary_mode="wrap")
        return rastlit.antialias(c * s, rast, pos, trit)

    args = (pos, col, uv, tex)
    out, vjp = jax.vjp(chain_jax, *map(jnp.asarray, args))
    targs = [_t(a).requires_grad_() for a in args]
    out_t = chain_torch(*targs)
    _eq(out, out_t.detach(), "chain output")
    g = rng.standard_normal(out.shape).astype(dtype)
    grads = vjp(jnp.asarray(g))
    grads_t = torch.autograd.grad(out_t, targs, _t(g))
    for name, a, b in zip(("pos", "col", "uv", "tex"), grads, grads_t):
        _eq(a, b, f"grad {name}")


def test_depth_peel_matches_torch():
    pos, tri, _, _ = _sphere(views=1)
    layers = rj.depth_peel(jnp.asarray(pos), jnp.asarray(tri), (32, 32), 3)
    with rastlit.DepthPeeler(_t(pos), _t(tri), (32, 32)) as peeler:
        for k, (rast, db) in enumerate(layers):
            rt, dbt = peeler.rasterize_next_layer()
            _eq(rast, rt, f"layer {k}")
            _eq(db, dbt, f"layer {k} db")
    assert (np.asarray(layers[1])[0][..., 3] > 0).any()  # the back of the sphere


def test_topology_hash_matches_torch():
    _, tri, _, _ = _sphere(subdiv=1)
    tri = np.concatenate([tri, tri[:3], [[0, 0, 1]]]).astype(np.int32)  # non-manifold edges, a degenerate face
    _eq(rj.antialias_construct_topology_hash(jnp.asarray(tri)), rastlit.antialias_construct_topology_hash(_t(tri)))
    # under jit (traced tri) too
    _eq(jax.jit(rj.antialias_construct_topology_hash)(jnp.asarray(tri)),
        rastlit.antialias_construct_topology_hash(_t(tri)))


def test_texture_construct_mip_matches_torch():
    tex = np.random.default_rng(3).uniform(0, 1, (2, 16, 8, 3))
    for a, b in zip(rj.texture_construct_mip(jnp.asarray(tex)), rastlit.texture_construct_mip(_t(tex))):
        _eq(a, b)


# ----------------------------------------------------------------------------------- cube maps

CUBE_FILTERS = ["nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear"]


def _cube_dirs(n, rng, dtype):
    """n directions: a third random (lengths 0.1 to 10), a third on face edges (two components of
    equal magnitude, the largest), a third on cube corners (all three equal), each exactly scaled
    by a power of two so the ties stay ties; shuffled."""
    k = n // 3
    rand = rng.standard_normal((n - 2 * k, 3)) * 10 ** rng.uniform(-1, 1, (n - 2 * k, 1))
    edge = np.empty((k, 3))
    for i in range(k):
        a, b = rng.choice(3, 2, replace=False)
        c = 3 - a - b
        edge[i, a], edge[i, b] = rng.choice([-1.0, 1.0], 2)
        edge[i, c] = rng.uniform(-1, 1)
    corner = rng.choice([-1.0, 1.0], (k, 3))
    d = np.concatenate([rand, np.concatenate([edge, corner]) * 2.0 ** rng.integers(-3, 4, (2 * k, 1))])
    return d[rng.permutation(n)].astype(dtype)


def _cube_case(dtype, tb=1, views=2, h=6, w=5, size=8, seed=0):
    rng = np.random.default_rng(seed)
    tex = rng.uniform(0, 1, (tb, 6, size, size, 3)).astype(dtype)
    uv = _cube_dirs(views * h * w, rng, dtype).reshape(views, h, w, 3)
    lengths = np.linalg.norm(uv, axis=-1, keepdims=True)
    uv_da = (rng.standard_normal((views, h, w, 6)) * 10 ** rng.uniform(-1.5, 0.5, (views, h, w, 1)) * lengths)
    bias = rng.uniform(-1, 1, (views, h, w))
    return tex, uv, uv_da.astype(dtype), bias.astype(dtype), rng


def _checked_nonzero(*arrays):
    for a in arrays:  # a parity check of all-zero arrays would prove nothing
        assert np.abs(np.asarray(a)).sum() > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filter_mode", CUBE_FILTERS)
@pytest.mark.parametrize("tb", [1, 2])
def test_texture_cube_matches_torch_bitwise(filter_mode, dtype, tb):
    """Cube-map output and the VJP (random cotangent) to tex, uv, uv_da and the bias, against the
    torch op with autograd through its pyramid: bitwise, directions on face edges and corners
    included."""
    tex, uv, uv_da, bias, rng = _cube_case(dtype, tb=tb, seed=10 + tb)
    mipmapped = "mipmap" in filter_mode
    args = (tex, uv, uv_da, bias) if mipmapped else (tex, uv)
    kw = dict(filter_mode=filter_mode, boundary_mode="cube")

    def f_jax(*a):
        return rj.texture(*a, **kw)

    out, vjp = jax.vjp(f_jax, *map(jnp.asarray, args))
    targs = [_t(a).requires_grad_() for a in args]
    out_t = rastlit.texture(*targs, **kw)
    _eq(out, out_t.detach(), "cube output")
    g = rng.standard_normal(out.shape).astype(dtype)
    grads = vjp(jnp.asarray(g))
    grads_t = torch.autograd.grad(out_t, targs, _t(g), allow_unused=True)
    names = ("tex", "uv", "uv_da", "mip_level_bias")
    for name, a, b in zip(names, grads, grads_t):
        b = np.zeros(a.shape, a.dtype) if b is None else b.numpy()
        _eq(a, b, f"grad {name}")
    _checked_nonzero(out, grads[0])
    if filter_mode != "nearest":
        _checked_nonzero(grads[1])  # the direction gets a gradient in the filtered modes
    if filter_mode == "linear-mipmap-linear":
        _checked_nonzero(grads[2], grads[3])
    # jit == eager, forward and VJP
    out_j, vjp_j = jax.jit(lambda *a: jax.vjp(f_jax, *a))(*map(jnp.asarray, args))
    _eq(out_j, out, "jit output")
    for name, a, b in zip(names, jax.jit(vjp_j)(jnp.asarray(g)), grads):
        _eq(a, b, f"jit grad {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_texture_cube_with_a_given_pyramid_and_bias_only(dtype):
    """mip= from texture_construct_mip (per face), mip_level_bias alone, max_mip_level."""
    tex, uv, _, bias, rng = _cube_case(dtype, size=16, seed=3)
    for kw in (dict(filter_mode="linear-mipmap-linear"), dict(filter_mode="linear-mipmap-nearest", max_mip_level=2)):
        mip_j = rj.texture_construct_mip(jnp.asarray(tex), cube_mode=True)
        mip_t = rastlit.texture_construct_mip(_t(tex), cube_mode=True)
        out = rj.texture(jnp.asarray(tex), jnp.asarray(uv), mip_level_bias=jnp.asarray(bias * 3), mip=mip_j,
                         boundary_mode="cube", **kw)
        out_t = rastlit.texture(_t(tex), _t(uv), mip_level_bias=_t(bias * 3), mip=mip_t, boundary_mode="cube", **kw)
        _eq(out, out_t, str(kw))
        _checked_nonzero(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_texture_construct_mip_cube_matches_torch(dtype):
    tex = np.random.default_rng(4).uniform(0, 1, (2, 6, 16, 16, 3)).astype(dtype)
    for kw in (dict(), dict(cube_mode=True), dict(max_mip_level=2)):
        a = rj.texture_construct_mip(jnp.asarray(tex), **kw)
        b = rastlit.texture_construct_mip(_t(tex), **kw)
        assert len(a) == len(b) == kw.get("max_mip_level", 4)
        for k, (x, y) in enumerate(zip(a, b)):
            assert x.shape == (2, 6, 16 >> (k + 1), 16 >> (k + 1), 3)
            _eq(x, y, f"cube level {k + 1} {kw}")
    # each face on its own: face 2's pyramid is the 2D pyramid of face 2
    for x, y in zip(rj.texture_construct_mip(jnp.asarray(tex)), rj.texture_construct_mip(jnp.asarray(tex[:, 2]))):
        _eq(x[:, 2], y)


def test_vmap_texture_cube():
    """vmap over a cube map (shared by the views) and over the directions, with mipmaps: one
    kernel call, equal to a loop."""
    tex, uv, uv_da, _, rng = _cube_case(np.float32, seed=7)
    TEX = jnp.asarray(rng.uniform(0, 1, (3, *tex.shape)).astype(np.float32))
    UV = jnp.asarray(np.stack([uv, -uv, uv[..., ::-1]]))

    def f(tex, uv):
        return jnp.sum(rj.texture(tex, uv, jnp.asarray(uv_da), filter_mode="linear-mipmap-linear",
                                  boundary_mode="cube") ** 2)

    vals, grads = jax.vmap(jax.value_and_grad(f, argnums=(0, 1)))(TEX, UV)
    text = str(jax.make_jaxpr(jax.vmap(jax.grad(f, argnums=(0, 1))))(TEX, UV))
    assert "while" not in text and text.count("rastlit_texture_bwd") == 1
    for i in range(3):
        v, (gt, gu) = jax.value_and_grad(f, argnums=(0, 1))(TEX[i], UV[i])
        np.testing.assert_allclose(vals[i], v, rtol=1e-6)
        _eq(grads[1][i], gu, "vmap grad uv")  # per view: the same kernel arithmetic
        # the shared cube map's gradient: the views' parts summed after the kernel (another order)
        np.testing.assert_allclose(grads[0][i], gt, rtol=1e-5, atol=1e-6 * float(jnp.abs(gt).max()))
        _checked_nonzero(gt, gu)


def test_texture_cube_bad_input_is_named_at_trace_time():
    tex, uv, uv_da, bias, _ = _cube_case(np.float32)
    T, U, D, Bi = map(jnp.asarray, (tex, uv, uv_da, bias))
    cube = dict(boundary_mode="cube")
    bad = [
        (dict(tex=T[:, :5]), r"tex must have shape \[B,6,S,S,C\] \(or \[1,6,S,S,C\]\) for boundary_mode='cube'"),
        (dict(tex=T[0]), r"tex must have shape \[B,6,S,S,C\]"),
        (dict(tex=T[:, :, :, :4]), r"tex must have square cube faces \(shape \[B,6,S,S,C\] with S >= 1\), got "
                                   r"\[1, 6, 8, 4, 3\]"),
        (dict(uv=U[..., :2]), r"uv must have shape \[B,H,W,3\] \(direction vectors\) for boundary_mode='cube'"),
        (dict(uv_da=D[..., :4], filter_mode="linear-mipmap-linear"), r"uv_da must have shape \[2,6,5,6\]"),
        (dict(tex=jnp.concatenate([T] * 3)), r"tex must have shape \[1,6,S,S,C\] or \[B,6,S,S,C\] with B = "
                                             r"uv.shape\[0\] = 2"),
        (dict(mip=rj.texture_construct_mip(T[:, :, :4, :4]), filter_mode="linear-mipmap-linear", uv_da=D),
         r"mip level 1 must have shape \[1,6,4,4,3\] \(each face of the previous level halved\)"),
        (dict(uv=U.astype(jnp.float64)), "uv must have the dtype of tex"),
    ]
    for over, msg in bad:
        kw = dict(tex=T, uv=U, **cube)
        kw.update(over)
        with pytest.raises(ValueError if "dtype" not in msg else TypeError, match=msg):
            rj.texture(**kw)
        # the torch op says the same
        tkw = {k: ([_t(np.asarray(m)) for m in v] if k == "mip" else _t(np.asarray(v))) if not isinstance(v, str)
               else v for k, v in kw.items()}
        with pytest.raises((ValueError, TypeError), match=msg.replace("\\[1, 6, 8, 4, 3\\]", "")):
            rastlit.texture(**tkw)
    # a cube map without boundary_mode='cube', and uv directions with a 2D texture
    with pytest.raises(ValueError, match=r"a \[B,6,S,S,C\] cube map needs boundary_mode='cube'"):
        rj.texture(T, U)
    with pytest.raises(ValueError, match=r"uv must have shape \[B,H,W,2\]"):
        rj.texture(T[:, 0], U)
    with pytest.raises(ValueError, match=r"with cube_mode=True, got \(1, 6, 8, 4, 3\)"):
        rj.texture_construct_mip(T[:, :, :, :4])
    with pytest.raises(ValueError, match=r"with cube_mode=True"):
        rj.texture_construct_mip(T[:, 0], cube_mode=True)


def test_texture_handler_checks_the_cube_layout():
    """The FFI handler itself refuses buffers that do not fit the boundary mode (what the Python
    checks guarantee, checked again where the kernel indexes), and bad modes with the torch text."""
    from rastlit.jax import _ops

    def call(tex, uv, boundary, filter_mode=1):
        out = _ops._sds((*uv.shape[:3], tex.shape[-1]), tex.dtype)
        e = _ops._empty(tex.dtype)
        return jax.block_until_ready(_ops._ffi("texture_fwd", (out,), tex, uv, e, e, filter=np.int64(filter_mode),
                                               boundary=np.int64(boundary)))

    t5, t4 = jnp.ones((1, 6, 4, 4, 2), jnp.float32), jnp.ones((1, 4, 4, 2), jnp.float32)
    u3, u2 = jnp.ones((1, 3, 3, 3), jnp.float32), jnp.ones((1, 3, 3, 2), jnp.float32)
    _eq(call(t5, u3, 3)[0], np.ones((1, 3, 3, 2), np.float32))  # the layout it accepts
    with pytest.raises(Exception, match=r"tex must have shape \[B,6,S,S,C\] for boundary_mode='cube'"):
        call(t4, u3, 3)
    with pytest.raises(Exception, match=r"uv must have shape \[B,H,W,3\]"):
        call(t5, u2, 3)
    with pytest.raises(Exception, match=r"tex must have shape \[B,Ht,Wt,C\]"):
        call(t5, u2, 0)
    with pytest.raises(Exception, match=r"boundary_mode must be 0 \(wrap\), 1 \(clamp\), 2 \(zero\) or 3 \(cube\), "
                                        r"got 4"):
        call(t4, u2, 4)
    with pytest.raises(Exception, match=r"filter_mode must be 0 \(nearest\).* got 7"):
        call(t4, u2, 0, filter_mode=7)


# -------------------------------------------------------------------------------- gradients

def _central_diff_check(f, x, n=12, eps=1e-6, seed=0, rtol=1e-5, atol=1e-8):
    """Directional derivatives of the scalar f at x along random directions: JAX's VJP against
    float64 central differences."""
    g = jax.grad(f)(x)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        d = jnp.asarray(rng.standard_normal(x.shape))
        fd = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.vdot(g, d)), float(fd), rtol=rtol, atol=atol)


def test_gradients_match_central_differences_float64():
    pos, tri, col, uv = _sphere(views=1, dtype=np.float64)
    tri_j = jnp.asarray(tri)
    res = (24, 24)
    rng = np.random.default_rng(4)
    w_img = jnp.asarray(rng.standard_normal((1, 24, 24, 3)))
    tex = jnp.asarray(rng.uniform(0, 1, (1, 16, 16, 3)))
    rast, db = rj.rasterize(jnp.asarray(pos), tri_j, res)

    # interpolate: in attr, and in rast's (u, v) where a triangle is
    _central_diff_check(lambda a: jnp.sum(rj.interpolate(a, rast, tri_j)[0] * w_img), jnp.asarray(col))
    mask = (rast[..., 3:] > 0).astype(jnp.float64)
    _central_diff_check(lambda uv_: jnp.sum(rj.interpolate(jnp.asarray(col), jnp.concatenate(
        [uv_ * mask + rast[..., :2] * (1 - mask), rast[..., 2:]], -1), tri_j)[0] * w_img), rast[..., :2])
    # texture (bilinear, clamp): in tex and in uv (away from texel-centre kinks: smooth in between)
    t, _ = rj.interpolate(jnp.asarray(uv), rast, tri_j)
    _central_diff_check(lambda x: jnp.sum(rj.texture(x, t, boundary_mode="clamp") * w_img), tex)
    _central_diff_check(lambda u: jnp.sum(rj.texture(tex, u, boundary_mode="clamp") * w_img), t, eps=1e-7,
                        rtol=1e-4, atol=1e-6)
    # rasterize -> interpolate -> antialias in pos (coverage fixed for small steps)
    def chain(p):
        r, _ = rj.rasterize(p, tri_j, res)
        c, _ = rj.interpolate(jnp.asarray(col), r, tri_j)
        return jnp.sum(rj.antialias(c, r, p, tri_j) * w_img)

    _central_diff_check(chain, jnp.asarray(pos), eps=1e-7, rtol=1e-4, atol=1e-7)


# -------------------------------------------------------------------------- transformations

def test_jit_grad_equals_eager_grad():
    pos, tri, col, _ = _sphere()
    tri_j = jnp.asarray(tri)

    def loss(p, c):
        rast, _ = rj.rasterize(p, tri_j, (32, 32))
        out, _ = rj.interpolate(c, rast, tri_j)
        return jnp.sum(rj.antialias(out, rast, p, tri_j) ** 2)

    args = (jnp.asarray(pos), jnp.asarray(col))
    eager = jax.grad(loss, argnums=(0, 1))(*args)
    jitted = jax.jit(jax.grad(loss, argnums=(0, 1)))(*args)
    for a, b in zip(eager, jitted):
        _eq(a, b)
    assert float(jnp.abs(eager[0]).sum()) > 0 and float(jnp.abs(eager[1]).sum()) > 0


def _render(p, c, tri):
    rast, db = rj.rasterize(p, tri, (24, 20))
    out, _ = rj.interpolate(c, rast, tri)
    return rj.antialias(out, rast, p, tri)


def test_vmap_matches_a_loop_and_nests():
    pos, tri, col, _ = _sphere(views=2)
    tri_j = jnp.asarray(tri)
    rng = np.random.default_rng(5)
    P = jnp.asarray(pos[None] * rng.uniform(0.9, 1.1, (3, 1, 1, 1)).astype(np.float32))  # [3,B,V,4]
    C = jnp.asarray(rng.uniform(0, 1, (3, *col.shape)).astype(np.float32))                # [3,V,3]
    f = lambda p, c: _render(p, c, tri_j)  # noqa: E731
    batched = jax.vmap(f)(P, C)
    for i in range(3):
        _eq(batched[i], f(P[i], C[i]), f"vmap element {i}")
    # nested: [2,3,...]
    P2, C2 = jnp.stack([P, P * 1.01]), jnp.stack([C, 1 - C])
    nested = jax.vmap(jax.vmap(f))(P2, C2)
    _eq(nested[1, 2], f(P2[1, 2], C2[1, 2]))
    # gradients under vmap
    gl = jax.vmap(jax.grad(lambda p, c: jnp.sum(f(p, c))))(P, C)
    _eq(gl[1], jax.grad(lambda p: jnp.sum(f(p, C[1])))(P[1]))


def test_vmap_over_attributes_only_and_positions_only():
    pos, tri, col, _ = _sphere(views=2)
    tri_j, pos_j, col_j = jnp.asarray(tri), jnp.asarray(pos), jnp.asarray(col)
    C = jnp.stack([col_j, 1 - col_j, 0.5 * col_j])
    only_attr = jax.vmap(lambda c: _render(pos_j, c, tri_j))(C)
    P = jnp.stack([pos_j, pos_j * jnp.asarray([1.05, 1, 1, 1], jnp.float32)])
    only_pos = jax.vmap(lambda p: _render(p, col_j, tri_j))(P)
    for i in range(3):
        _eq(only_attr[i], _render(pos_j, C[i], tri_j))
    for i in range(2):
        _eq(only_pos[i], _render(P[i], col_j, tri_j))
    # and the VJP of the attribute-only map
    g = jax.grad(lambda c: jnp.sum(jax.vmap(lambda x: _render(pos_j, x, tri_j))(c) ** 2))(C)
    # a shared attribute's gradient: the folded call sums the views' parts after the kernel, the
    # unbatched one inside it (another order of additions: equal to the last ulps)
    np.testing.assert_allclose(g[2], jax.grad(lambda x: jnp.sum(_render(pos_j, x, tri_j) ** 2))(C[2]),
                               rtol=4e-7, atol=4e-7 * float(jnp.abs(g[2]).max()))


def test_vmap_folds_into_one_kernel_call():
    """The mapped axis becomes more views of one kernel call: no loop in the program."""
    pos, tri, col, _ = _sphere(views=2)
    tri_j = jnp.asarray(tri)
    P = jnp.stack([jnp.asarray(pos)] * 3)
    C = jnp.stack([jnp.asarray(col)] * 3)
    text = str(jax.make_jaxpr(jax.vmap(jax.grad(lambda p, c: jnp.sum(_render(p, c, tri_j)), argnums=(0, 1))))(P, C))
    assert "while" not in text and "scan" not in text
    assert text.count("rastlit_rasterize_fwd") == 1 and text.count("rastlit_antialias_bwd") == 1


def test_vmap_falls_back_to_a_map_for_batched_triangles_and_range_mode():
    pos, tri, col, _ = _sphere(views=1)
    p, c = jnp.asarray(pos), jnp.asarray(col)
    T = jnp.stack([jnp.asarray(tri), jnp.asarray(tri[:, [0, 2, 1]])])  # the second flips the winding
    out = jax.vmap(lambda t: _render(p, c, t))(T)
    for i in range(2):
        _eq(out[i], _render(p, c, T[i]))
    # range mode: one vertex array, views drawing ranges of tri
    ranges = jnp.asarray([[0, 100], [100, 220]], jnp.int32)
    P2 = jnp.stack([p[0], p[0] * jnp.asarray([1.02, 1, 1, 1], jnp.float32)])

    def f(q):
        r, _ = rj.rasterize(q, jnp.asarray(tri), (16, 16), ranges=ranges)
        return rj.interpolate(c, r, jnp.asarray(tri))[0]

    batched = jax.vmap(f)(P2)
    g = jax.vmap(jax.grad(lambda q: jnp.sum(f(q) ** 2)))(P2)
    for i in range(2):
        _eq(batched[i], f(P2[i]))
        _eq(g[i], jax.grad(lambda q: jnp.sum(f(q) ** 2))(P2[i]))


def test_vmap_texture_with_mipmaps():
    pos, tri, _, uv = _sphere(views=2)
    tri_j = jnp.asarray(tri)
    rast, db = rj.rasterize(jnp.asarray(pos), tri_j, (24, 24))
    t, t_da = rj.interpolate(jnp.asarray(uv), rast, tri_j, rast_db=db, diff_attrs="all")
    rng = np.random.default_rng(6)
    TEX = jnp.asarray(rng.uniform(0, 1, (3, 1, 16, 16, 3)).astype(np.float32))  # one shared texture per element

    def f(tex):
        return jnp.sum(rj.texture(tex, t, t_da, filter_mode="linear-mipmap-linear") ** 2)

    vals, grads = jax.vmap(jax.value_and_grad(f))(TEX)
    for i in range(3):
        v, g = jax.value_and_grad(f)(TEX[i])
        np.testing.assert_allclose(vals[i], v, rtol=1e-6)
        np.testing.assert_allclose(grads[i], g, rtol=1e-5, atol=1e-6 * float(jnp.abs(g).max()))


# ------------------------------------------------------------------------------- bad input

def test_bad_input_is_named_at_trace_time():
    pos, tri, col, uv = _sphere(views=1)
    p, t = jnp.asarray(pos), jnp.asarray(tri)
    with pytest.raises(ValueError, match=r"pos must have shape \[B,V,4\]"):
        rj.rasterize(p[..., :3], t, (8, 8))
    with pytest.raises(TypeError, match="tri must be int32"):
        rj.rasterize(p, t.astype(jnp.int64), (8, 8))
    with pytest.raises(TypeError, match="pos must be float32"):
        rj.rasterize(p.astype(jnp.int32), t, (8, 8))
    with pytest.raises(TypeError, match="pos must be a JAX array, got list"):
        rj.rasterize(pos.tolist(), t, (8, 8))
    with pytest.raises(ValueError, match=r"resolution must be \(height, width\) with each side in \[1, 16384\]"):
        rj.rasterize(p, t, (100000, 8))
    with pytest.raises(TypeError, match="resolution must be a pair"):
        rj.rasterize(p, t, (8.5, 8))
    with pytest.raises(TypeError, match="resolution must be a pair"):
        rj.rasterize(p, t, "64")
    rast, db = rj.rasterize(p, t, (8, 8))
    with pytest.raises(ValueError, match=r"rast must have shape \[B,H,W,4\]"):
        rj.interpolate(jnp.asarray(col), rast[..., :3], t)
    with pytest.raises(ValueError, match="diff_attrs needs rast_db"):
        rj.interpolate(jnp.asarray(col), rast, t, diff_attrs=[0])
    with pytest.raises(ValueError, match=r"diff_attrs holds 5, outside \[0, 3\)"):
        rj.interpolate(jnp.asarray(col), rast, t, rast_db=db, diff_attrs=[5])
    with pytest.raises(TypeError, match="rast must have the dtype of attr"):
        rj.interpolate(jnp.asarray(col, jnp.float64), rast, t)
    with pytest.raises(ValueError, match=r"uv must have shape \[B,H,W,2\]"):
        rj.texture(jnp.ones((1, 4, 4, 3)), jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="needs uv_da or mip_level_bias"):
        rj.texture(jnp.ones((1, 4, 4, 3)), jnp.ones((1, 8, 8, 2)), filter_mode="linear-mipmap-linear")
    # max_mip_level=0 turns the mipmap modes into 'linear' (documented, as nvdiffrast)
    _eq(rj.texture(jnp.ones((1, 4, 4, 3)), jnp.full((1, 8, 8, 2), 0.3), filter_mode="linear-mipmap-linear",
                   max_mip_level=0), jnp.ones((1, 8, 8, 3)))
    with pytest.raises(ValueError, match=r"topology_hash must have shape \[T,6\]"):
        rj.antialias(jnp.zeros((1, 8, 8, 3), jnp.float32), rast, p, t, topology_hash=jnp.zeros((1, 6), jnp.int32))


def test_bad_values_fail_in_the_kernel_with_the_torch_text():
    pos, tri, col, _ = _sphere(views=1)
    p = jnp.asarray(pos)
    bad = tri.copy()
    bad[3, 1] = len(pos[0]) + 7
    msg = f"tri holds vertex indices in \\[0, {len(pos[0]) + 7}\\], but there are {len(pos[0])} vertices"
    with pytest.raises(Exception, match=msg) as e:
        jax.block_until_ready(rj.rasterize(p, jnp.asarray(bad), (8, 8)))
    assert "INVALID_ARGUMENT" in str(e.value)
    with pytest.raises(IndexError, match=msg):  # the torch op's text
        rastlit.rasterize(_t(pos), _t(bad), (8, 8))
    rast, _ = rj.rasterize(p, jnp.asarray(tri), (8, 8))
    forged = rast.at[0, 4, 4, 3].set(1e6)
    with pytest.raises(Exception, match=r"interpolate: rast\[..., 3\] holds a triangle id \+ 1 outside \[0, T\]"):
        jax.block_until_ready(rj.interpolate(jnp.asarray(col), forged, jnp.asarray(tri)))
    with pytest.raises(Exception, match=r"ranges\[0\] = \(0, 99999\) is outside tri"):
        jax.block_until_ready(rj.rasterize(p[0], jnp.asarray(tri), (8, 8), ranges=jnp.asarray([[0, 99999]], jnp.int32)))
    # the same under jit
    with pytest.raises(Exception, match=msg):
        jax.block_until_ready(jax.jit(lambda x, t: rj.rasterize(x, t, (8, 8))[0])(p, jnp.asarray(bad)))


# ------------------------------------------------------------------------------- packaging

def test_import_rastlit_jax_imports_no_torch():
    code = ("import sys, rastlit.jax as rj, jax.numpy as jnp\n"
            "r, _ = rj.rasterize(jnp.asarray([[[-1., -1, 0, 1], [1, -1, 0, 1], [0, 1, 0, 1]]], jnp.float32),"
            " jnp.asarray([[0, 1, 2]], jnp.int32), (4, 4))\n"
            "assert float(r[..., 3].sum()) > 0\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'rastlit.ops']\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def test_only_the_handlers_are_exported():
    """-fvisibility=hidden: the torch extension and the JAX library load into one process (as
    in this file) without their kernel symbols clashing."""
    from rastlit.jax import _build

    out = subprocess.run(["nm", "-D", "--defined-only", str(_build.library_path())], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("nm not available")
    names = {line.split()[-1] for line in out.stdout.splitlines() if " T " in line}
    cpu = {f"rastlit_{n}" for n in ("rasterize_fwd", "rasterize_bwd", "interpolate_fwd", "interpolate_bwd",
                                    "texture_fwd", "texture_bwd", "antialias_fwd", "antialias_bwd")}
    expected = cpu | ({f"{n}_cuda" for n in cpu} if _build.cuda_enabled() else set())
    assert names == expected, names
