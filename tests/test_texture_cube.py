"""texture(..., boundary_mode='cube'): values against the independent float64 reference in
reference.py (every filter mode, float32 and float64, random directions and directions on and
near face edges and corners), the face conventions from OpenGL's table, the cube pyramid,
gradients (gradcheck in float64, and against autograd through the reference), custom-op
registration, zero / non-finite directions, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import rastlit
from reference import CUBE_FACE_FRAMES, cube_pyramid, reference_texture_cube

FILTERS = ["nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear"]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _tex(tb, size, channels, seed, dtype=torch.float64):
    return torch.rand(tb, 6, size, size, channels, generator=_gen(seed), dtype=torch.float64).to(dtype)


def _random_dirs(n, seed):
    g = _gen(seed)
    d = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return d * 10 ** (2 * torch.rand(n, 1, generator=g, dtype=torch.float64) - 1)  # lengths 0.1 .. 10


def _face_points(n, seed, size, kind):
    """Directions N + sc U + tc V on random faces (frames from reference.py), scaled by random
    lengths: kind 'edge' puts one of sc, tc exactly on +-1; 'corner' both; 'near_edge' one of them
    within one texel of an edge (at least 1e-3 texel away from it); 'near_corner' both."""
    g = _gen(seed)
    frames = torch.tensor(CUBE_FACE_FRAMES, dtype=torch.float64)
    face = torch.randint(0, 6, (n,), generator=g)
    sc = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    tc = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    sign_s = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    sign_t = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    inset_s = (1e-3 + 0.998 * torch.rand(n, generator=g, dtype=torch.float64)) * 2 / size
    inset_t = (1e-3 + 0.998 * torch.rand(n, generator=g, dtype=torch.float64)) * 2 / size
    which = torch.rand(n, generator=g) < 0.5  # for the one-edge kinds: the s edge or the t edge
    if kind == "edge":
        sc, tc = torch.where(which, sign_s, sc), torch.where(which, tc, sign_t)
    elif kind == "corner":
        sc, tc = sign_s, sign_t
    elif kind == "near_edge":
        sc = torch.where(which, sign_s * (1 - inset_s), sc)
        tc = torch.where(which, tc, sign_t * (1 - inset_t))
    elif kind == "near_corner":
        sc, tc = sign_s * (1 - inset_s), sign_t * (1 - inset_t)
    N, U, V = frames[face, 0], frames[face, 1], frames[face, 2]
    d = N + sc[:, None] * U + tc[:, None] * V
    return d * 2.0 ** torch.randint(-3, 4, (n, 1), generator=g).double()  # exact scaling keeps ties


def _dirs(B, H, W, seed, size, kinds=("random", "edge", "corner", "near_edge", "near_corner")):
    n = B * H * W
    parts = [(_random_dirs(n, seed) if k == "random" else _face_points(n, seed + i, size, k)) for i, k in enumerate(kinds)]
    allp = torch.cat(parts)[torch.randperm(n * len(kinds), generator=_gen(seed + 99))[:n]]
    return allp.reshape(B, H, W, 3)


def _dirs_da(d, seed, lo=-1.5, hi=0.5):
    """Direction derivatives relative to the direction's length: footprints of about 0.1 to 10
    texels on an 8-texel face."""
    g = _gen(seed)
    mag = 10 ** (lo + (hi - lo) * torch.rand(*d.shape[:-1], 1, generator=g, dtype=torch.float64))
    return torch.randn(*d.shape[:-1], 6, generator=g, dtype=torch.float64) * mag * d.norm(dim=-1, keepdim=True)


def _bias(d, seed, lo=-1.0, hi=1.0):
    return lo + (hi - lo) * torch.rand(*d.shape[:-1], generator=_gen(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------ values


@pytest.mark.parametrize("mode", FILTERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("tex_batch", [1, 2])
def test_matches_the_float64_reference(mode, dtype, tex_batch):
    size = 8
    tex = _tex(tex_batch, size, 3, seed=1, dtype=dtype)
    d = _dirs(2, 16, 20, seed=2, size=size).to(dtype)
    da = _dirs_da(d.double(), seed=3).to(dtype) if "mipmap" in mode else None
    bias = _bias(d, seed=4).to(dtype) if "mipmap" in mode else None
    out = rastlit.texture(tex, d, da, bias, filter_mode=mode, boundary_mode="cube")
    assert out.dtype == dtype and out.shape == (2, 16, 20, 3)
    ref = reference_texture_cube(tex.double(), d.double(), None if da is None else da.double(),
                                 None if bias is None else bias.double(), filter_mode=mode)
    err = (out.double() - ref).abs().max().item()
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert err <= tol, f"{mode} {dtype}: max abs error {err:.3g}"


@pytest.mark.parametrize("size", [1, 2, 4])
def test_small_faces_and_every_level_match_the_reference(size):
    """Faces of 1 and 2 texels (every tap beyond an edge; corners on both sides) and mip levels
    down to 1x1, bias alone choosing the level."""
    tex = _tex(1, size, 2, seed=5)
    d = _dirs(1, 24, 24, seed=6, size=size)
    bias = _bias(d, seed=7, lo=-0.5, hi=math.log2(size) + 0.5)
    for mode in FILTERS:
        b = bias if "mipmap" in mode else None
        out = rastlit.texture(tex, d, mip_level_bias=b, filter_mode=mode, boundary_mode="cube")
        ref = reference_texture_cube(tex, d, None, b, filter_mode=mode)
        assert (out - ref).abs().max().item() <= 1e-12, mode


def test_face_conventions_follow_the_opengl_table():
    """Hand-derived lookups from OpenGL's cube-map table (major axis ma, sc, tc; s = (sc/|ma| +
    1)/2, t = (tc/|ma| + 1)/2), which nvdiffrast follows: +x: (-z, -y), -x: (+z, -y), +y: (+x, +z),
    -y: (+x, -z), +z: (+x, -y), -z: (-x, -y). On 4x4 faces, texel (i, j) of face f holds
    100 f + 10 i + j; nearest lookup."""
    size = 4
    f, i, j = torch.meshgrid(torch.arange(6), torch.arange(size), torch.arange(size), indexing="ij")
    tex = (100 * f + 10 * i + j).double()[None, ..., None]
    cases = [  # direction, (face, row i from t, column j from s)
        ((2.0, 0.5, -1.5), (0, 1, 3)),   # +x: sc = 1.5 -> s 0.875 (j 3); tc = -0.5 -> t 0.375 (i 1)
        ((-2.0, 0.5, -1.5), (1, 1, 0)),  # -x: sc = -1.5 -> s 0.125; tc = -0.5
        ((0.5, 2.0, -1.5), (2, 0, 2)),   # +y: sc = 0.5 -> s 0.625; tc = -1.5 -> t 0.125
        ((0.5, -2.0, -1.5), (3, 3, 2)),  # -y: sc = 0.5; tc = 1.5 -> t 0.875
        ((0.5, 1.5, 2.0), (4, 0, 2)),    # +z: sc = 0.5; tc = -1.5
        ((0.5, 1.5, -2.0), (5, 0, 1)),   # -z: sc = -0.5 -> s 0.375; tc = -1.5
        ((1.0, 1.0, 1.0), (0, 0, 0)),    # ties go to x, then y
        ((0.0, -1.0, 1.0), (3, 0, 2)),   # |y| = |z|: -y; sc = 0 -> s 0.5 (j 2); tc = -z = -1 -> t 0 (i 0)
    ]
    d = torch.tensor([c[0] for c in cases], dtype=torch.float64)[None, None]
    out = rastlit.texture(tex, d, filter_mode="nearest", boundary_mode="cube")[0, 0, :, 0]
    expect = torch.tensor([100 * f + 10 * i + j for _, (f, i, j) in cases], dtype=torch.float64)
    torch.testing.assert_close(out, expect, rtol=0, atol=0)


def test_seams_are_continuous_and_corners_average_three_texels():
    """Linear lookups just either side of a cube edge agree (seamless), and at a cube corner the
    lookup is the mean of the three texels that meet there."""
    tex = _tex(1, 4, 3, seed=8)
    # the +x / +z edge (x = z > 0) at height y = 0.3: approach from both faces
    eps = 1e-9
    d = torch.tensor([[1.0, 0.3, 1.0 - eps], [1.0 - eps, 0.3, 1.0]], dtype=torch.float64)[None, None]
    out = rastlit.texture(tex, d, boundary_mode="cube")[0, 0]
    assert (out[0] - out[1]).abs().max() < 1e-8
    # corner (+1, +1, +1): the +x face's corner texel (row 0: t = 0 at y = +1; column 0: s = 0 at
    # z = +1), +y's (s = 1 at x = +1, t = 1 at z = +1: row 3, column 3) and +z's (s = 1, t = 0:
    # row 0, column 3)
    corner = rastlit.texture(tex, torch.ones(1, 1, 1, 3, dtype=torch.float64), boundary_mode="cube")[0, 0, 0]
    expect = (tex[0, 0, 0, 0] + tex[0, 2, 3, 3] + tex[0, 4, 0, 3]) / 3
    torch.testing.assert_close(corner, expect, rtol=0, atol=1e-15)


def test_construct_mip_cube_and_prebuilt_mip():
    tex = _tex(2, 8, 3, seed=9)
    mips = rastlit.texture_construct_mip(tex, cube_mode=True)
    assert [tuple(m.shape) for m in mips] == [(2, 6, 4, 4, 3), (2, 6, 2, 2, 3), (2, 6, 1, 1, 3)]
    for a, b in zip(mips, cube_pyramid(tex, 3)[1:]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
    assert len(rastlit.texture_construct_mip(tex, max_mip_level=1)) == 1  # cube_mode from the shape
    d = _dirs(2, 6, 7, seed=10, size=8)
    da = _dirs_da(d, seed=11)
    a = rastlit.texture(tex, d, da, boundary_mode="cube")
    b = rastlit.texture(tex, d, da, mip=mips, boundary_mode="cube")
    assert torch.equal(a, b)
    c = rastlit.texture(tex, d, da, mip=mips, boundary_mode="cube", max_mip_level=1)
    torch.testing.assert_close(c, reference_texture_cube(tex, d, da, None, "linear-mipmap-linear", max_mip_level=1),
                               rtol=0, atol=1e-12)


def test_zero_and_non_finite_directions_give_zero_output_and_zero_gradient():
    tex = _tex(1, 4, 2, seed=12).requires_grad_()
    d = _random_dirs(6, seed=13).reshape(1, 1, 6, 3)
    d[0, 0, 0] = 0.0
    d[0, 0, 1, 1] = float("nan")
    d[0, 0, 2, 2] = float("inf")
    d[0, 0, 3] = torch.tensor([1e-300, 0.0, 0.0], dtype=torch.float64)  # tiny but valid: +x face centre
    d.requires_grad_()
    da = _dirs_da(d.detach(), seed=14)
    for mode in FILTERS:
        args = (da, _bias(d, seed=15)) if "mipmap" in mode else (None, None)
        out = rastlit.texture(tex, d, *args, filter_mode=mode, boundary_mode="cube")
        assert torch.isfinite(out).all()
        assert (out[0, 0, :3] == 0).all()
        assert (out[0, 0, 3] != 0).all()
        tex.grad = d.grad = None
        out.sum().backward()
        assert torch.isfinite(tex.grad).all() and torch.isfinite(d.grad).all()
        assert (d.grad[0, 0, :3] == 0).all()


# ------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("mode", FILTERS)
@pytest.mark.parametrize("kind", ["random", "near_edge", "near_corner"])
def test_gradcheck_cube(mode, kind):
    """float64 gradcheck for tex and the directions, near edges and corners too (at least 1e-3
    texel from them, so finite differences do not straddle a face switch), and in trilinear mode
    for uv_da and the bias."""
    size = 4
    tex = _tex(2, size, 2, seed=16).requires_grad_()
    d = _dirs(2, 3, 4, seed=17, size=size, kinds=(kind,)).requires_grad_()
    da = _dirs_da(d.detach(), seed=18).requires_grad_()
    bias = _bias(d, seed=19, lo=-0.6, hi=0.6).requires_grad_()
    if "mipmap" in mode:
        fn = lambda t, u, dd, b: rastlit.texture(t, u, dd, b, filter_mode=mode, boundary_mode="cube")
        args = (tex, d, da, bias)
    else:
        fn = lambda t, u: rastlit.texture(t, u, filter_mode=mode, boundary_mode="cube")
        args = (tex, d)
    assert torch.autograd.gradcheck(fn, args, eps=1e-7, atol=1e-6, rtol=1e-5)
    if mode == "linear-mipmap-linear":  # the level of detail does carry gradient here
        fn(*args).sum().backward()
        assert da.grad.abs().sum() > 0 and bias.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["linear", "linear-mipmap-nearest", "linear-mipmap-linear"])
def test_gradients_match_autograd_through_the_reference(mode):
    """tex and direction gradients against autograd through the (independently written)
    reference, over random, edge-adjacent and corner-adjacent directions."""
    size = 8
    tex = _tex(1, size, 3, seed=20)
    d = _dirs(2, 10, 12, seed=21, size=size, kinds=("random", "near_edge", "near_corner"))
    da = _dirs_da(d, seed=22) if "mipmap" in mode else None
    go = torch.randn(2, 10, 12, 3, generator=_gen(23), dtype=torch.float64)
    grads = []
    for f in (rastlit.texture, None):
        t, u = tex.clone().requires_grad_(), d.clone().requires_grad_()
        if f is None:
            out = reference_texture_cube(t, u, da, None, filter_mode=mode)
        else:
            out = f(t, u, da, filter_mode=mode, boundary_mode="cube")
        out.backward(go)
        grads.append((t.grad, u.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert grads[0][1].abs().sum() > 0


def test_backward_is_bitwise_identical_for_one_and_two_threads():
    tex = _tex(1, 16, 3, seed=24, dtype=torch.float32)
    d = _dirs(2, 24, 24, seed=25, size=16).float()
    da = _dirs_da(d.double(), seed=26).float()
    go = torch.rand(2, 24, 24, 3, generator=_gen(27)) - 0.5
    mips = rastlit.texture_construct_mip(tex, cube_mode=True)
    old = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = rastlit.texture(tex, d, da, mip=mips, boundary_mode="cube")
            grads = torch.ops.rastlit.texture_bwd(tex, mips, d, da, None, 3, 3, go)
            results.append([out, grads[0], *grads[1], grads[2], grads[3]])
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*results):
        assert torch.equal(a, b)
    assert results[0][1].abs().sum() > 0


def test_opcheck_texture_cube():
    tex = _tex(2, 4, 3, seed=28).requires_grad_()
    mips = [m.detach().requires_grad_() for m in rastlit.texture_construct_mip(tex.detach(), cube_mode=True)]
    d = _dirs(2, 3, 5, seed=29, size=4).requires_grad_()
    da = _dirs_da(d.detach(), seed=30).requires_grad_()
    bias = _bias(d, seed=31).requires_grad_()
    op = torch.ops.rastlit.texture_fwd.default
    torch.library.opcheck(op, (tex, mips, d, da, bias, 3, 3))
    torch.library.opcheck(op, (tex[:1].detach().requires_grad_(), [], d, None, None, 1, 3))
    go = torch.randn(2, 3, 5, 3, dtype=torch.float64)
    torch.library.opcheck(torch.ops.rastlit.texture_bwd.default,
                          (tex.detach(), [m.detach() for m in mips], d.detach(), da.detach(), None, 2, 3, go))


def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    tex = _tex(1, 8, 3, seed=32, dtype=torch.float32)
    d = _dirs(2, 6, 6, seed=33, size=8).float()
    da = _dirs_da(d.double(), seed=34).float()

    def loss(t, u, dd):
        return rastlit.texture(t, u, dd, boundary_mode="cube").square().mean()

    t1, t2 = tex.clone().requires_grad_(), tex.clone().requires_grad_()
    l1 = loss(t1, d, da)
    l1.backward()
    l2 = torch.compile(loss, fullgraph=True, backend="aot_eager")(t2, d, da)
    l2.backward()
    torch.testing.assert_close(l2, l1)
    torch.testing.assert_close(t2.grad, t1.grad)


def test_empty_and_noncontiguous_inputs():
    tex = torch.rand(1, 6, 8, 8, 3)
    assert rastlit.texture(tex, torch.rand(0, 4, 4, 3), boundary_mode="cube").shape == (0, 4, 4, 3)
    assert rastlit.texture(tex, torch.rand(2, 0, 4, 3), torch.rand(2, 0, 4, 6), boundary_mode="cube").shape == (2, 0, 4, 3)
    d = torch.randn(2, 5, 4, 3).transpose(1, 2)
    texn = torch.rand(1, 6, 8, 8, 3).transpose(2, 3)
    assert rastlit.texture(texn, d, boundary_mode="cube").equal(
        rastlit.texture(texn.contiguous(), d.contiguous(), boundary_mode="cube"))


# -------------------------------------------------------------------------------- bad input


def test_cube_rejects_bad_inputs():
    tex, d = torch.rand(1, 6, 4, 4, 3), torch.randn(2, 3, 5, 3)
    cases = [
        (dict(tex=torch.rand(1, 6, 4, 5, 3)), ValueError, r"tex must have square cube faces"),
        (dict(tex=torch.rand(1, 5, 4, 4, 3)), ValueError, r"tex must have shape \[B,6,S,S,C\]"),
        (dict(tex=torch.rand(6, 4, 4, 3)), ValueError, r"tex must have shape \[B,6,S,S,C\]"),
        (dict(tex=torch.rand(3, 6, 4, 4, 3)), ValueError, r"tex must have shape \[1,6,S,S,C\] or \[B,6,S,S,C\] with B = uv.shape\[0\] = 2"),
        (dict(uv=torch.randn(2, 3, 5, 2)), ValueError, r"uv must have shape \[B,H,W,3\]"),
        (dict(uv_da=torch.randn(2, 3, 5, 4)), ValueError, r"uv_da must have shape \[2,3,5,6\]"),
        (dict(uv=d.double()), TypeError, r"uv must have the dtype of tex"),
        (dict(tex=tex.half(), uv=d.half()), TypeError, r"tex must be float32"),
        (dict(uv_da=torch.randn(2, 3, 5, 6, dtype=torch.float64)), TypeError, r"uv_da must have the dtype of tex"),
        (dict(mip_level_bias=torch.rand(2, 3, 5, 1)), ValueError, r"mip_level_bias must have shape \[2,3,5\]"),
        (dict(mip=rastlit.texture_construct_mip(torch.rand(1, 8, 8, 3)), mip_level_bias=torch.zeros(2, 3, 5)),
         ValueError, r"mip level 1 must have shape \[1,6,2,2,3\]"),
    ]
    for kw, exc, msg in cases:
        args = dict(tex=tex, uv=d, boundary_mode="cube")
        args.update(kw)
        with pytest.raises(exc, match=msg):
            rastlit.texture(**args)
    with pytest.raises(ValueError, match=r"a \[B,6,S,S,C\] cube map needs boundary_mode='cube'"):
        rastlit.texture(tex, d[..., :2])
    with pytest.raises(ValueError, match=r"tex must have shape \[B,6,S,S,C\] \(six square faces\)"):
        rastlit.texture_construct_mip(torch.rand(1, 8, 8, 3), cube_mode=True)
    with pytest.raises(ValueError, match=r"tex must have shape \[B,6,S,S,C\].*boundary_mode='cube'"):
        rastlit.texture(torch.rand(1, 8, 8, 3), d, mip_level_bias=torch.zeros(2, 3, 5), boundary_mode="cube")
    with pytest.raises(ValueError, match="cannot be halved"):
        rastlit.texture_construct_mip(torch.rand(1, 6, 6, 6, 3))
    with pytest.raises(ValueError, match=r"grad_out must have shape \[2,3,5,3\]"):
        torch.ops.rastlit.texture_bwd(tex, [], d, None, None, 1, 3, torch.rand(2, 3, 5, 2))
    with pytest.raises(ValueError, match="boundary_mode must be 0"):
        torch.ops.rastlit.texture_fwd(tex, [], d, None, None, 1, 4)
