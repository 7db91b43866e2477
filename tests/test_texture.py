"""texture: values against grid_sample and slow float64 references, the mip pyramid, gradients
by gradcheck, custom-op registration, determinism across thread counts, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rastlit

FILTERS = ["nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear"]
BOUNDARIES = ["wrap", "clamp", "zero"]


def _rand(*shape, seed=0, dtype=torch.float64, lo=0.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=dtype)


def _uv_da(B, H, W, seed, dtype=torch.float64, scale=0.2):
    """Random uv derivatives with footprints of about 0.3 to 8 texels of a 16-texel side."""
    g = torch.Generator().manual_seed(seed)
    mag = 0.02 + scale * torch.rand(B, H, W, 4, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(B, H, W, 4, generator=g) < 0.5, -1.0, 1.0).double()
    return (mag * sign).to(dtype)


def _grid_sample(tex, uv, padding):
    out = F.grid_sample(tex.permute(0, 3, 1, 2), 2 * uv - 1, mode="bilinear", padding_mode=padding, align_corners=False)
    return out.permute(0, 2, 3, 1)


# ------------------------------------------------------------------------------ references


def _ref_pyramid(tex: np.ndarray, levels: int) -> list[np.ndarray]:
    """Level k+1 by explicit 2x2 (or 1x2, 2x1) averaging loops, float64."""
    out = [tex]
    for _ in range(levels):
        t = out[-1]
        B, h, w, C = t.shape
        nh, nw = max(h // 2, 1), max(w // 2, 1)
        n = np.zeros((B, nh, nw, C))
        for i in range(nh):
            for j in range(nw):
                rows = [2 * i, 2 * i + 1] if h > 1 else [0]
                cols = [2 * j, 2 * j + 1] if w > 1 else [0]
                n[:, i, j] = sum(t[:, r, c] for r in rows for c in cols) / (len(rows) * len(cols))
        out.append(n)
    return out


def _fetch(t, i, j, boundary):
    h, w = t.shape[:2]
    if boundary == "wrap":
        return t[i % h, j % w]
    if boundary == "clamp":
        return t[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]
    return t[i, j] if (0 <= i < h and 0 <= j < w) else np.zeros(t.shape[2])


def _ref_bilinear(t, u, v, boundary):
    """One bilinear lookup in a [h,w,C] level, texel centres at (j+0.5)/w, (i+0.5)/h."""
    h, w = t.shape[:2]
    x, y = u * w - 0.5, v * h - 0.5
    if boundary == "clamp":
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    j0, i0 = math.floor(x), math.floor(y)
    fx, fy = x - j0, y - i0
    return ((1 - fy) * (1 - fx) * _fetch(t, i0, j0, boundary) + (1 - fy) * fx * _fetch(t, i0, j0 + 1, boundary)
            + fy * (1 - fx) * _fetch(t, i0 + 1, j0, boundary) + fy * fx * _fetch(t, i0 + 1, j0 + 1, boundary))


def _ref_texture(tex, uv, uv_da, bias, filter_mode, boundary, max_levels=None):
    """Slow per-pixel float64 reference: own pyramid, lod from the eigenvalues of J^T J."""
    tex, uv = tex.double().numpy(), uv.double().numpy()
    B, H, W, _ = uv.shape
    h0, w0 = tex.shape[1:3]
    nlev = 0
    h, w = h0, w0
    while (h > 1 or w > 1) and (max_levels is None or nlev < max_levels):
        h, w, nlev = max(h // 2, 1), max(w // 2, 1), nlev + 1
    pyr = _ref_pyramid(tex, nlev)
    out = np.zeros((B, H, W, tex.shape[3]))
    for b in range(B):
        tb = 0 if tex.shape[0] == 1 else b
        for i in range(H):
            for j in range(W):
                u, v = uv[b, i, j]
                if filter_mode == "nearest":
                    jj, ii = math.floor((u % 1.0 if boundary == "wrap" else u) * w0), math.floor((v % 1.0 if boundary == "wrap" else v) * h0)
                    out[b, i, j] = _fetch(pyr[0][tb], ii, jj, boundary)
                    continue
                lod = 0.0
                if filter_mode != "linear":
                    if uv_da is not None:
                        d = uv_da[b, i, j].double().numpy()
                        J = np.array([[d[0] * w0, d[1] * w0], [d[2] * h0, d[3] * h0]])
                        lod = 0.5 * math.log2(np.linalg.eigvalsh(J.T @ J).max())
                    if bias is not None:
                        lod += float(bias[b, i, j])
                    lod = min(max(lod, 0.0), float(nlev))
                l0 = math.floor(lod)
                s0 = _ref_bilinear(pyr[l0][tb], u, v, boundary)
                if filter_mode == "linear-mipmap-linear":
                    f = lod - l0
                    s1 = _ref_bilinear(pyr[min(l0 + 1, nlev)][tb], u, v, boundary)
                    out[b, i, j] = (1 - f) * s0 + f * s1
                else:
                    out[b, i, j] = s0
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------------- values


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("tex_batch", [1, 2])
def test_linear_matches_grid_sample(boundary, tex_batch):
    tex = _rand(tex_batch, 12, 20, 3, seed=1, dtype=torch.float32)
    uv = _rand(2, 17, 13, 2, seed=2, dtype=torch.float32, lo=-0.6, hi=1.6)
    out = rastlit.texture(tex, uv, filter_mode="linear", boundary_mode=boundary)
    texb = tex.expand(2, -1, -1, -1)
    if boundary == "wrap":  # a 5x5 tiling of the texture, uv mapped into its middle tile
        ref = _grid_sample(texb.repeat(1, 5, 5, 1), (uv + 2) / 5, "zeros")
    else:
        ref = _grid_sample(texb, uv, "zeros" if boundary == "zero" else "border")
    assert out.shape == (2, 17, 13, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    assert rastlit.texture(tex, uv, boundary_mode=boundary).equal(out)  # 'auto' without uv_da is linear


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_linear_and_nearest_match_the_float64_reference(boundary):
    tex = _rand(1, 6, 10, 2, seed=3)
    uv = _rand(2, 5, 7, 2, seed=4, lo=-0.7, hi=1.7)
    for mode in ("linear", "nearest"):
        out = rastlit.texture(tex, uv, filter_mode=mode, boundary_mode=boundary)
        torch.testing.assert_close(out, _ref_texture(tex, uv, None, None, mode, boundary), rtol=0, atol=1e-12)


def test_nearest_picks_the_texel_containing_the_point():
    tex = torch.arange(4 * 8, dtype=torch.float64).view(1, 4, 8, 1)
    # Points inside texel (row 2, col 5) and (row 0, col 7); then outside the unit square.
    uv = torch.tensor([[[[5.3 / 8, 2.9 / 4], [7.99 / 8, 0.01 / 4], [1.2, -0.1]]]], dtype=torch.float64)
    wrap = rastlit.texture(tex, uv, filter_mode="nearest", boundary_mode="wrap")[0, 0, :, 0]
    clamp = rastlit.texture(tex, uv, filter_mode="nearest", boundary_mode="clamp")[0, 0, :, 0]
    zero = rastlit.texture(tex, uv, filter_mode="nearest", boundary_mode="zero")[0, 0, :, 0]
    assert wrap.tolist() == [21.0, 7.0, 3 * 8 + 1]  # (1.2, -0.1) wraps to (0.2, 0.9): row 3, col 1
    assert clamp.tolist() == [21.0, 7.0, 0 * 8 + 7]
    assert zero.tolist() == [21.0, 7.0, 0.0]


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["linear-mipmap-nearest", "linear-mipmap-linear"])
@pytest.mark.parametrize("inputs", ["uv_da", "bias", "both"])
def test_mipmap_modes_match_the_float64_reference(mode, boundary, inputs):
    tex = _rand(2, 16, 8, 3, seed=5)
    uv = _rand(2, 5, 6, 2, seed=6, lo=-0.4, hi=1.4)
    uv_da = _uv_da(2, 5, 6, seed=7) if inputs != "bias" else None
    bias = _rand(2, 5, 6, seed=8, lo=-1.0, hi=4.5) if inputs != "uv_da" else None
    out = rastlit.texture(tex, uv, uv_da, bias, filter_mode=mode, boundary_mode=boundary)
    ref = _ref_texture(tex, uv, uv_da, bias, mode, boundary)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_mipmap_float32_and_options():
    tex = _rand(1, 16, 16, 4, seed=9)
    uv = _rand(2, 6, 5, 2, seed=10, lo=-0.2, hi=1.2)
    uv_da, bias = _uv_da(2, 6, 5, seed=11), _rand(2, 6, 5, seed=12, lo=-0.5, hi=0.5)
    ref = _ref_texture(tex, uv, uv_da, bias, "linear-mipmap-linear", "wrap")
    out32 = rastlit.texture(tex.float(), uv.float(), uv_da.float(), bias.float())  # auto: trilinear
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=2e-5)
    # A prebuilt pyramid gives the same result; max_mip_level limits the levels used.
    mip = rastlit.texture_construct_mip(tex)
    assert rastlit.texture(tex, uv, uv_da, bias, mip=mip).equal(rastlit.texture(tex, uv, uv_da, bias))
    lim = rastlit.texture(tex, uv, uv_da, bias, mip=mip, max_mip_level=2)
    torch.testing.assert_close(lim, _ref_texture(tex, uv, uv_da, bias, "linear-mipmap-linear", "wrap", max_levels=2),
                               rtol=0, atol=1e-12)
    # max_mip_level=0 turns the mipmap modes into linear (as nvdiffrast).
    lin = rastlit.texture(tex, uv, filter_mode="linear")
    assert rastlit.texture(tex, uv, uv_da, bias, max_mip_level=0).equal(lin)


def test_large_footprint_reads_the_average_and_tiny_one_the_texel():
    tex = _rand(1, 8, 8, 2, seed=13)
    uv = _rand(1, 3, 3, 2, seed=14)
    huge = torch.full((1, 3, 3, 4), 10.0, dtype=torch.float64)
    out = rastlit.texture(tex, uv, huge)
    torch.testing.assert_close(out, tex.mean((1, 2), keepdim=True).expand(1, 3, 3, 2), rtol=0, atol=1e-14)
    tiny = torch.zeros(1, 3, 3, 4, dtype=torch.float64)  # lod = -inf, clamped to 0: bilinear
    torch.testing.assert_close(rastlit.texture(tex, uv, tiny), rastlit.texture(tex, uv), rtol=0, atol=0)


# ---------------------------------------------------------------------------------- pyramid


def test_construct_mip_values_and_shapes():
    tex = _rand(2, 8, 32, 3, seed=15)
    mip = rastlit.texture_construct_mip(tex)
    assert [tuple(m.shape[1:3]) for m in mip] == [(4, 16), (2, 8), (1, 4), (1, 2), (1, 1)]
    for got, ref in zip(mip, _ref_pyramid(tex.numpy(), 5)[1:]):
        assert got.is_contiguous()
        torch.testing.assert_close(got, torch.from_numpy(ref), rtol=0, atol=1e-14)
    assert len(rastlit.texture_construct_mip(tex, max_mip_level=2)) == 2
    assert len(rastlit.texture_construct_mip(tex, max_mip_level=9)) == 5  # stops at 1x1
    assert rastlit.texture_construct_mip(tex[:, :1, :1], None) == []


def test_construct_mip_raises_on_sizes_it_cannot_halve():
    tex = torch.rand(1, 12, 12, 3)
    with pytest.raises(ValueError, match=r"mip level 2 has size 3x3 .* pass max_mip_level=2"):
        rastlit.texture_construct_mip(tex)
    assert len(rastlit.texture_construct_mip(tex, max_mip_level=2)) == 2
    with pytest.raises(ValueError, match=r"size 3x3"):
        rastlit.texture_construct_mip(tex, max_mip_level=3)
    with pytest.raises(ValueError, match=r"size 5x8"):  # texture() builds it the same way
        rastlit.texture(torch.rand(1, 5, 8, 1), torch.rand(1, 2, 2, 2), mip_level_bias=torch.ones(1, 2, 2))
    out = rastlit.texture(torch.rand(1, 5, 8, 1), torch.rand(1, 2, 2, 2), mip_level_bias=torch.ones(1, 2, 2),
                          max_mip_level=0)
    assert out.shape == (1, 2, 2, 1)


# -------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("mode", FILTERS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_gradcheck_texture(mode, boundary):
    tb = 1 if boundary == "clamp" else 2
    tex = _rand(tb, 8, 8, 2, seed=16).requires_grad_()
    uv = _rand(2, 3, 4, 2, seed=17, lo=-0.3, hi=1.3).requires_grad_()
    uv_da = _uv_da(2, 3, 4, seed=18, scale=0.3).requires_grad_()
    bias = _rand(2, 3, 4, seed=19, lo=-0.6, hi=0.6).requires_grad_()
    if "mipmap" in mode:
        fn = lambda t, u, d, b: rastlit.texture(t, u, d, b, filter_mode=mode, boundary_mode=boundary)
        args = (tex, uv, uv_da, bias)
    else:
        fn = lambda t, u: rastlit.texture(t, u, filter_mode=mode, boundary_mode=boundary)
        args = (tex, uv)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-5)
    if mode == "linear-mipmap-linear":  # the level of detail does carry gradient here
        fn(*args).sum().backward()
        assert uv_da.grad.abs().sum() > 0 and bias.grad.abs().sum() > 0


def test_gradcheck_bias_only_and_prebuilt_mip():
    tex = _rand(1, 8, 4, 3, seed=20).requires_grad_()
    uv = _rand(1, 4, 3, 2, seed=21).requires_grad_()
    bias = _rand(1, 4, 3, seed=22, lo=0.1, hi=2.9).requires_grad_()

    def fn(t, u, b):
        return rastlit.texture(t, u, mip_level_bias=b, mip=rastlit.texture_construct_mip(t), boundary_mode="clamp")

    assert torch.autograd.gradcheck(fn, (tex, uv, bias), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("tex_batch", [1, 2])
def test_backward_is_bitwise_identical_for_one_and_two_threads(tex_batch):
    tex = _rand(tex_batch, 32, 32, 3, seed=23, dtype=torch.float32)
    uv = _rand(2, 24, 24, 2, seed=24, dtype=torch.float32, lo=-0.5, hi=1.5)
    uv_da = _uv_da(2, 24, 24, seed=25, dtype=torch.float32, scale=0.1)
    go = _rand(2, 24, 24, 3, seed=26, dtype=torch.float32, lo=-1, hi=1)
    mips = rastlit.texture_construct_mip(tex)
    old = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = rastlit.texture(tex, uv, uv_da, mip=mips)
            grads = torch.ops.rastlit.texture_bwd(tex, mips, uv, uv_da, None, 3, 0, go)
            results.append([out, grads[0], *grads[1], grads[2], grads[3]])
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*results):
        assert torch.equal(a, b)
    assert results[0][1].abs().sum() > 0


def test_opcheck_texture():
    tex = _rand(2, 8, 4, 3, seed=27).requires_grad_()
    mips = [m.detach().requires_grad_() for m in rastlit.texture_construct_mip(tex.detach())]
    uv = _rand(2, 3, 5, 2, seed=28).requires_grad_()
    uv_da = _uv_da(2, 3, 5, seed=29).requires_grad_()
    bias = _rand(2, 3, 5, seed=30).requires_grad_()
    op = torch.ops.rastlit.texture_fwd.default
    torch.library.opcheck(op, (tex, mips, uv, uv_da, bias, 3, 0))
    torch.library.opcheck(op, (tex[:1].detach().requires_grad_(), [], uv, None, None, 1, 2))
    go = torch.randn(2, 3, 5, 3, dtype=torch.float64)
    torch.library.opcheck(torch.ops.rastlit.texture_bwd.default, (tex.detach(), [m.detach() for m in mips], uv.detach(),
                                                                  uv_da.detach(), None, 2, 1, go))


def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    tex = _rand(1, 8, 8, 3, seed=31, dtype=torch.float32)
    uv = _rand(2, 6, 6, 2, seed=32, dtype=torch.float32)
    uv_da = _uv_da(2, 6, 6, seed=33, dtype=torch.float32)

    def loss(t, u, d):
        return rastlit.texture(t, u, d, boundary_mode="clamp").square().mean()

    t1, t2 = tex.clone().requires_grad_(), tex.clone().requires_grad_()
    l1 = loss(t1, uv, uv_da)
    l1.backward()
    l2 = torch.compile(loss, fullgraph=True, backend="aot_eager")(t2, uv, uv_da)
    l2.backward()
    torch.testing.assert_close(l2, l1)
    torch.testing.assert_close(t2.grad, t1.grad)


# -------------------------------------------------------------------------------- bad input


def test_non_finite_uv_gives_zero_output_and_zero_gradient():
    tex = _rand(1, 8, 8, 2, seed=34).requires_grad_()
    uv = _rand(1, 2, 3, 2, seed=35)
    uv[0, 0, 0, 0] = float("nan")
    uv[0, 0, 1, 1] = float("inf")
    uv[0, 0, 2, 0] = -float("inf")
    uv[0, 1, 0] = torch.tensor([1e30, -1e30], dtype=torch.float64)  # huge but finite: valid lookups
    uv.requires_grad_()
    uv_da = _uv_da(1, 2, 3, seed=36)
    uv_da[0, 1, 1, 0] = float("nan")  # NaN lod: clamped to level 0, no lod gradient
    bias = torch.zeros(1, 2, 3, dtype=torch.float64)
    bias[0, 1, 2] = float("nan")
    ref = rastlit.texture(tex, uv, filter_mode="linear")
    for mode in FILTERS:
        for boundary in BOUNDARIES:
            out = rastlit.texture(tex, uv, uv_da, bias, filter_mode=mode, boundary_mode=boundary)
            if mode == "linear-mipmap-linear" and boundary == "wrap":  # NaN lod reads level 0
                torch.testing.assert_close(out[0, 1, 1:], ref[0, 1, 1:], rtol=0, atol=0)
            assert torch.isfinite(out).all()
            assert (out[0, 0] == 0).all()
            tex.grad = uv.grad = None
            out.sum().backward()
            assert torch.isfinite(tex.grad).all() and torch.isfinite(uv.grad).all()
            assert (uv.grad[0, 0] == 0).all()


def test_empty_and_noncontiguous_inputs():
    tex = torch.rand(1, 8, 8, 3)
    assert rastlit.texture(tex, torch.rand(0, 4, 4, 2)).shape == (0, 4, 4, 3)
    assert rastlit.texture(tex, torch.rand(2, 0, 4, 2), torch.rand(2, 0, 4, 4)).shape == (2, 0, 4, 3)
    uv = torch.rand(2, 5, 4, 2).transpose(1, 2)
    texn = torch.rand(1, 8, 8, 3).transpose(1, 2)
    assert rastlit.texture(texn, uv).equal(rastlit.texture(texn.contiguous(), uv.contiguous()))


def test_texture_rejects_bad_inputs():
    tex, uv = torch.rand(1, 8, 8, 3), torch.rand(2, 4, 5, 2)
    with pytest.raises(ValueError, match=r"tex must have shape \[B,Ht,Wt,C\]"):
        rastlit.texture(torch.rand(8, 8, 3), uv)
    with pytest.raises(ValueError, match=r"tex must have shape \[1,Ht,Wt,C\] or \[B,Ht,Wt,C\] with B = uv.shape\[0\] = 2"):
        rastlit.texture(torch.rand(3, 8, 8, 3), uv)
    with pytest.raises(ValueError, match=r"uv must have shape \[B,H,W,2\]"):
        rastlit.texture(tex, torch.rand(2, 4, 5, 3))
    with pytest.raises(ValueError, match=r"uv_da must have shape \[2,4,5,4\]"):
        rastlit.texture(tex, uv, torch.rand(2, 4, 5, 2))
    with pytest.raises(ValueError, match=r"mip_level_bias must have shape \[2,4,5\]"):
        rastlit.texture(tex, uv, mip_level_bias=torch.rand(2, 4, 5, 1))
    with pytest.raises(TypeError, match="uv must have the dtype of tex"):
        rastlit.texture(tex, uv.double())
    with pytest.raises(TypeError, match="tex must be float32"):
        rastlit.texture(tex.half(), uv.half())
    with pytest.raises(TypeError, match="mip_level_bias must have the dtype of tex"):
        rastlit.texture(tex, uv, mip_level_bias=torch.rand(2, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="filter_mode must be one of"):
        rastlit.texture(tex, uv, filter_mode="bilinear")
    with pytest.raises(ValueError, match="boundary_mode must be one of"):
        rastlit.texture(tex, uv, boundary_mode="mirror")
    with pytest.raises(ValueError, match=r"tex must have shape \[B,6,S,S,C\]"):  # cube maps: test_texture_cube.py
        rastlit.texture(tex, uv, boundary_mode="cube")
    with pytest.raises(ValueError, match="needs uv_da or mip_level_bias"):
        rastlit.texture(tex, uv, filter_mode="linear-mipmap-linear")
    with pytest.raises(ValueError, match="max_mip_level must be >= 0"):
        rastlit.texture(tex, uv, max_mip_level=-1)
    mip = rastlit.texture_construct_mip(tex)
    bias = torch.zeros(2, 4, 5)
    with pytest.raises(ValueError, match=r"mip level 1 must have shape \[1,4,4,3\]"):
        rastlit.texture(tex, uv, mip_level_bias=bias, mip=mip[1:])
    with pytest.raises(TypeError, match="mip must be the list"):
        rastlit.texture(tex, uv, mip_level_bias=bias, mip=mip[0])
    with pytest.raises(ValueError, match="one too many"):
        torch.ops.rastlit.texture_fwd(tex, mip + [mip[-1]], uv, None, bias, 3, 0)
    with pytest.raises(ValueError, match="filter_mode must be 0"):
        torch.ops.rastlit.texture_fwd(tex, [], uv, None, None, 7, 0)
    with pytest.raises(ValueError, match="boundary_mode must be 0"):
        torch.ops.rastlit.texture_fwd(tex, [], uv, None, None, 1, -1)
    with pytest.raises(ValueError, match=r"grad_out must have shape \[2,4,5,3\]"):
        torch.ops.rastlit.texture_bwd(tex, [], uv, None, None, 1, 0, torch.rand(2, 4, 5, 2))
    with pytest.raises(ValueError, match=r"tex must have shape .* Ht, Wt, C >= 1"):
        rastlit.texture(torch.rand(1, 0, 8, 3), uv)


# ------------------------------------------------------------------------------- GPU tests



@pytest.mark.cuda
@pytest.mark.parametrize("mode", FILTERS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_cuda_matches_cpu(mode, boundary):
    tex = _rand(2, 64, 32, 3, seed=40, dtype=torch.float32).requires_grad_()
    uv = _rand(2, 48, 40, 2, seed=41, dtype=torch.float32, lo=-0.5, hi=1.5).requires_grad_()
    uv_da = _uv_da(2, 48, 40, seed=42, dtype=torch.float32, scale=0.05).requires_grad_()
    bias = _rand(2, 48, 40, seed=43, dtype=torch.float32, lo=-1, hi=1).requires_grad_()
    go = _rand(2, 48, 40, 3, seed=44, dtype=torch.float32, lo=-1, hi=1)
    res = []
    for dev in ("cpu", "cuda"):
        leaves = [t.detach().to(dev).requires_grad_() for t in (tex, uv, uv_da, bias)]
        args = (leaves[2], leaves[3]) if "mipmap" in mode else (None, None)
        out = rastlit.texture(leaves[0], leaves[1], *args, filter_mode=mode, boundary_mode=boundary)
        out.backward(go.to(dev))
        res.append([out] + [lf.grad for lf in leaves if lf.grad is not None])
    assert len(res[0]) == len(res[1]) == (5 if "mipmap" in mode else 3)
    for c, g in zip(*res):
        torch.testing.assert_close(g.cpu(), c, rtol=1e-4, atol=1e-4)
