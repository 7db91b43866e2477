"""interpolate: values against a direct evaluation, gradients by gradcheck, bad input."""

from __future__ import annotations

import pytest
import torch

import rastlit


def _scene(dtype=torch.float64, B=2, H=10, W=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    V, T = 9, 3
    centres = (torch.rand(B, T, 1, 2, generator=g, dtype=torch.float64) - 0.5).expand(B, T, 3, 2)
    ang = torch.rand(B, T, 1, generator=g, dtype=torch.float64) * 6.28 + torch.tensor([0.0, 2.1, 4.2], dtype=torch.float64)
    xy = centres + 0.7 * torch.stack([ang.cos(), ang.sin()], -1)
    pos = torch.zeros(B, V, 4, dtype=dtype)
    pos[..., :2] = xy.reshape(B, V, 2).to(dtype)
    pos[..., 3] = 1 + 0.5 * torch.rand(B, V, generator=g, dtype=dtype)
    pos[..., :2] *= pos[..., 3:4]
    pos[..., 2] = 0.2 * torch.rand(B, V, generator=g, dtype=dtype)
    tri = torch.arange(V, dtype=torch.int32).view(T, 3)
    rast, db = rastlit.rasterize(pos, tri, (H, W))
    assert int((rast[..., 3] > 0).sum()) > H * W // 8
    return pos, tri, rast, db


def _direct(attr, rast, rast_db, tri, diff):
    """Per-pixel evaluation of the definition in plain torch (float64)."""
    B, H, W, _ = rast.shape
    A = attr.shape[-1]
    out = torch.zeros(B, H, W, A, dtype=attr.dtype)
    da = torch.zeros(B, H, W, 2 * len(diff), dtype=attr.dtype)
    for b in range(B):
        at = attr if attr.dim() == 2 else attr[min(b, attr.shape[0] - 1)]
        for i in range(H):
            for j in range(W):
                tid = int(rast[b, i, j, 3])
                if tid == 0:
                    continue
                v0, v1, v2 = tri[tid - 1].tolist()
                u, v = rast[b, i, j, 0], rast[b, i, j, 1]
                out[b, i, j] = u * at[v0] + v * at[v1] + (1 - u - v) * at[v2]
                for n, k in enumerate(diff):
                    d0, d1 = at[v0, k] - at[v2, k], at[v1, k] - at[v2, k]
                    da[b, i, j, 2 * n] = rast_db[b, i, j, 0] * d0 + rast_db[b, i, j, 2] * d1
                    da[b, i, j, 2 * n + 1] = rast_db[b, i, j, 1] * d0 + rast_db[b, i, j, 3] * d1
    return out, da


@pytest.mark.parametrize("attr_shape", ["batched", "broadcast", "shared"])
def test_interpolate_matches_direct_evaluation(attr_shape):
    pos, tri, rast, db = _scene()
    g = torch.Generator().manual_seed(1)
    shape = {"batched": (2, 9, 3), "broadcast": (1, 9, 3), "shared": (9, 3)}[attr_shape]
    attr = torch.randn(*shape, generator=g, dtype=torch.float64)
    out, da = rastlit.interpolate(attr, rast, tri, db, diff_attrs=[2, 0])
    ref, ref_da = _direct(attr, rast, db, tri, [2, 0])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(da, ref_da, rtol=1e-12, atol=1e-12)
    out_all, da_all = rastlit.interpolate(attr, rast, tri, db, diff_attrs="all")
    assert da_all.shape[-1] == 6
    torch.testing.assert_close(da_all[..., 4:6], da[..., 0:2])
    out_none, da_none = rastlit.interpolate(attr, rast, tri)
    assert torch.equal(out_none, out) and da_none.shape == (2, 10, 12, 0)


def test_interpolating_vertex_positions_reproduces_the_pixel_ray():
    # Interpolating clip-space (x, y, w) with perspective-correct barycentrics gives a point whose
    # projection is the pixel centre: an end-to-end check of rasterize's u, v.
    pos, tri, rast, db = _scene()
    out, _ = rastlit.interpolate(pos, rast, tri)
    H, W = rast.shape[1:3]
    cov = rast[..., 3] > 0
    X = ((2 * torch.arange(W, dtype=torch.float64) + 1) / W - 1).view(1, 1, W).expand(2, H, W)
    Y = ((2 * torch.arange(H, dtype=torch.float64) + 1) / H - 1).view(1, H, 1).expand(2, H, W)
    torch.testing.assert_close((out[..., 0] / out[..., 3])[cov], X[cov], rtol=0, atol=1e-12)
    torch.testing.assert_close((out[..., 1] / out[..., 3])[cov], Y[cov], rtol=0, atol=1e-12)
    torch.testing.assert_close((out[..., 2] / out[..., 3])[cov], rast[..., 2][cov], rtol=0, atol=1e-12)


@pytest.mark.parametrize("attr_shape", ["batched", "shared"])
def test_gradcheck_interpolate_all_inputs(attr_shape):
    pos, tri, rast, db = _scene(B=2, H=6, W=7)
    g = torch.Generator().manual_seed(2)
    shape = (2, 9, 2) if attr_shape == "batched" else (9, 2)
    attr = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    uv = rast[..., :2].clone().requires_grad_(True)
    zid = rast[..., 2:]
    dbv = db.clone().requires_grad_(True)

    def f(a, uv_, db_):
        r = torch.cat([uv_, zid], -1)
        return rastlit.interpolate(a, r, tri, db_, diff_attrs=[1, 0])

    assert torch.autograd.gradcheck(f, (attr, uv, dbv), atol=1e-8)


def test_gradients_through_rasterize_and_interpolate_match_finite_differences():
    # End to end: a loss on interpolated attributes and their derivatives, differentiated to pos.
    pos, tri, rast, db = _scene(B=1, H=8, W=9, seed=4)
    ok_scene = pos.clone().requires_grad_(True)
    attr = torch.randn(1, 9, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def f(p):
        r, d = rastlit.rasterize(p, tri, (8, 9))
        out, da = rastlit.interpolate(attr, r, tri, d, diff_attrs="all")
        return out, da

    # Coverage must not change under the finite-difference step; check the step is safe.
    r1, _ = rastlit.rasterize(pos + 1e-6, tri, (8, 9))
    r2, _ = rastlit.rasterize(pos - 1e-6, tri, (8, 9))
    if not (torch.equal(r1[..., 3], rast[..., 3]) and torch.equal(r2[..., 3], rast[..., 3])):
        pytest.skip("scene has a pixel centre too close to an edge for finite differences")
    assert torch.autograd.gradcheck(f, (ok_scene,), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_interpolate_rejects_bad_inputs():
    pos, tri, rast, db = _scene(dtype=torch.float32)
    attr = torch.randn(2, 9, 3)
    with pytest.raises(ValueError, match=r"attr must have shape \[V,A\], \[1,V,A\] or \[B,V,A\]"):
        rastlit.interpolate(torch.randn(3, 9, 3), rast, tri)
    with pytest.raises(ValueError, match="attr must have shape"):
        rastlit.interpolate(torch.randn(9), rast, tri)
    with pytest.raises(TypeError, match="rast must have the dtype of attr"):
        rastlit.interpolate(attr.double(), rast, tri)
    with pytest.raises(TypeError, match="attr must be float32"):
        rastlit.interpolate(attr.long(), rast, tri)
    with pytest.raises(ValueError, match=r"rast must have shape \[B,H,W,4\]"):
        rastlit.interpolate(attr, rast[..., :3], tri)
    with pytest.raises(IndexError, match="tri holds vertex indices"):
        rastlit.interpolate(attr[:, :5], rast, tri)
    with pytest.raises(TypeError, match="tri must be int32"):
        rastlit.interpolate(attr, rast, tri.long())
    with pytest.raises(ValueError, match="diff_attrs needs rast_db"):
        rastlit.interpolate(attr, rast, tri, diff_attrs=[0])
    with pytest.raises(IndexError, match=r"diff_attrs\[1\] = 3 is not an attribute index in \[0, 3\)"):
        rastlit.interpolate(attr, rast, tri, db, diff_attrs=[0, 3])
    with pytest.raises(ValueError, match="diff_attrs must be a list"):
        rastlit.interpolate(attr, rast, tri, db, diff_attrs="some")
    with pytest.raises(ValueError, match=r"rast_db must have shape \[2,10,12,4\]"):
        rastlit.interpolate(attr, rast, tri, db[:1], diff_attrs=[0])
    bad = rast.clone()
    bad[0, 0, 0, 3] = 4.0  # only 3 triangles
    with pytest.raises(IndexError, match="triangle id"):
        rastlit.interpolate(attr, bad, tri)
    bad[0, 0, 0, 3] = float("nan")
    with pytest.raises(IndexError, match="triangle id"):
        rastlit.interpolate(attr, bad, tri)
    bad[0, 0, 0, 3] = -1.0
    with pytest.raises(IndexError, match="triangle id"):
        rastlit.interpolate(attr, bad, tri)


def test_interpolate_empty_and_noncontiguous():
    pos, tri, rast, db = _scene(dtype=torch.float32)
    attr = torch.randn(2, 9, 3)
    out, _ = rastlit.interpolate(attr[0], rast[:0], tri)
    assert out.shape == (0, 10, 12, 3)
    out, _ = rastlit.interpolate(attr[..., :0], rast, tri)
    assert out.shape == (2, 10, 12, 0)
    ref, ref_da = rastlit.interpolate(attr, rast, tri, db, diff_attrs="all")
    attr_nc = attr.transpose(0, 1).contiguous().transpose(0, 1)
    assert not attr_nc.is_contiguous()
    out, da = rastlit.interpolate(attr_nc, rast, tri, db, diff_attrs="all")
    assert torch.equal(out, ref) and torch.equal(da, ref_da)


@pytest.mark.parametrize("shared,A,H,W", [(True, 3, 40, 60), (False, 3, 40, 60), (True, 5, 300, 300)])
def test_attr_gradient_matches_autograd_gather_and_any_thread_count(shared, A, H, W):
    """The attribute gradient (a scatter of per-row run sums) against autograd through a gather
    formulation in float64, on images where triangles span rows and row ends; and bitwise the same
    on 1 and 2 threads. A = 3 takes the unrolled path, A = 5 the general one, and 300 x 300 is more
    than one block of rows."""
    import numpy as np
    from scenes import icosphere, look_at, perspective, to_clip

    verts, faces = icosphere(3)
    B = 3  # the sphere overflows the frame: runs reach the row ends
    mvps = [perspective(50.0, W / H, 0.1, 10.0) @ look_at((1.6 * np.cos(a), 0.4, 1.6 * np.sin(a)), (0, 0, 0))
            for a in (0.2, 1.9, 4.0)]
    pos = torch.from_numpy(np.stack([to_clip(m, verts) for m in mvps])).double()
    tri = torch.from_numpy(faces).int()
    rast, db = rastlit.rasterize(pos, tri, (H, W))
    g = torch.Generator().manual_seed(1)
    V = verts.shape[0]
    attr = torch.randn(V, A, generator=g, dtype=torch.float64) if shared else torch.randn(B, V, A, generator=g, dtype=torch.float64)
    gout = torch.randn(B, H, W, A, generator=g, dtype=torch.float64)
    gda = torch.randn(B, H, W, 4, generator=g, dtype=torch.float64)

    def ours():
        a = attr.clone().requires_grad_()
        out, da = rastlit.interpolate(a, rast, tri, rast_db=db, diff_attrs=[0, 2])
        ((out * gout).sum() + (da * gda).sum()).backward()
        return a.grad

    old = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(ours())
    finally:
        torch.set_num_threads(old)
    assert torch.equal(results[0], results[1])

    # Independent: gather the corners' attributes per pixel and let autograd scatter them back.
    a = attr.clone().requires_grad_()
    ab = a if not shared else a.unsqueeze(0).expand(B, V, A)
    tid = rast[..., 3].long()
    cov = tid > 0
    idx = tri.long()[(tid - 1).clamp(min=0)]  # [B,H,W,3]
    corners = torch.stack([torch.gather(ab, 1, idx[..., c].reshape(B, -1, 1).expand(-1, -1, A)).reshape(B, H, W, A)
                           for c in range(3)], -2)  # [B,H,W,3 corners,3 attrs]
    u, v = rast[..., 0:1], rast[..., 1:2]
    w = torch.cat([u, v, 1 - u - v], -1).unsqueeze(-1)
    out = (w * corners).sum(-2) * cov.unsqueeze(-1)
    d0 = corners[..., 0, :] - corners[..., 2, :]
    d1 = corners[..., 1, :] - corners[..., 2, :]
    dx = db[..., 0:1] * d0 + db[..., 2:3] * d1
    dy = db[..., 1:2] * d0 + db[..., 3:4] * d1
    da = torch.stack([dx[..., [0, 2]], dy[..., [0, 2]]], -1).reshape(B, H, W, 4) * cov.unsqueeze(-1)
    ((out * gout).sum() + (da * gda).sum()).backward()
    assert int(cov[:, :, -1].sum()) > 0 and int(cov.sum()) > B * H * W // 2
    torch.testing.assert_close(results[0], a.grad, rtol=1e-12, atol=1e-12)
