"""rasterize: coverage rules, gradients, determinism, limits and bad input.

Pixel-by-pixel agreement with the float64 reference and with OpenGL lives in
test_rasterize_oracles.py; this file checks the properties those comparisons cannot see.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import rastlit


def _grid_mesh(nx, ny, H, W, step_px, origin_px=(2, 2), w=1.0, flip=False):
    """A triangulated grid whose vertices sit exactly on pixel centres (in range mode layout)."""
    js = origin_px[0] + step_px * np.arange(nx + 1)
    is_ = origin_px[1] + step_px * np.arange(ny + 1)
    X = (2 * js + 1) / W - 1
    Y = (2 * is_ + 1) / H - 1
    xx, yy = np.meshgrid(X, Y)  # [ny+1, nx+1]
    V = np.stack([xx.ravel() * w, yy.ravel() * w, np.full(xx.size, 0.3 * w), np.full(xx.size, w)], 1)
    tris = []
    for r in range(ny):
        for c in range(nx):
            a = r * (nx + 1) + c
            b, d, e = a + 1, a + nx + 1, a + nx + 2
            if (r + c + flip) % 2 == 0:
                tris += [[a, b, e], [a, e, d]]
            else:
                tris += [[a, b, d], [b, e, d]]
    return torch.tensor(V, dtype=torch.float64), torch.tensor(tris, dtype=torch.int32)


def _per_triangle_coverage(pos, tri, H, W):
    """[T,H,W] coverage masks, one view per triangle through range mode."""
    T = tri.shape[0]
    ranges = torch.stack([torch.arange(T), torch.ones(T, dtype=torch.long)], 1).int()
    rast, _ = rastlit.rasterize(pos, tri, (H, W), ranges=ranges)
    ids = rast[..., 3]
    assert torch.equal(ids[ids > 0], (torch.arange(T) + 1).view(T, 1, 1).expand(T, H, W)[ids > 0].double())
    return ids > 0


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shared_edges_and_vertices_on_pixel_centres_covered_exactly_once(flip, dtype):
    H, W = 40, 44
    pos, tri = _grid_mesh(6, 5, H, W, step_px=6, flip=flip)
    cov = _per_triangle_coverage(pos.to(dtype), tri, H, W).sum(0)
    # Interior pixels of the grid (strictly inside its outer boundary) are covered exactly once,
    # including the pixel centres that lie exactly on shared edges and vertices.
    inner = cov[2 + 1 : 2 + 5 * 6, 2 + 1 : 2 + 6 * 6]
    assert inner.numel() > 0
    assert int(inner.min()) == 1 and int(inner.max()) == 1, torch.nonzero(inner != 1)[:5]
    assert int(cov.max()) == 1  # nothing anywhere is covered twice
    # The full render agrees: every interior pixel has an id.
    rast, _ = rastlit.rasterize(pos.to(dtype)[None], tri, (H, W))
    assert bool((rast[0, 3:32, 3:38, 3] > 0).all())


def test_fan_around_vertex_on_pixel_centre_covers_it_once():
    H = W = 21
    cx = cy = (2 * 10 + 1) / 21 - 1  # centre of pixel (10, 10)
    n = 7
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.3
    ring = np.stack([cx + 0.7 * np.cos(ang), cy + 0.7 * np.sin(ang)], 1)
    V = np.concatenate([[[cx, cy]], ring], 0)
    pos = torch.tensor(np.concatenate([V, np.full((n + 1, 1), 0.5), np.ones((n + 1, 1))], 1))
    tri = torch.tensor([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)], dtype=torch.int32)
    cov = _per_triangle_coverage(pos, tri, H, W).sum(0)
    assert int(cov[10, 10]) == 1
    assert int(cov.max()) == 1
    # The same fan with reversed winding (back-facing) covers the same pixels: no culling.
    cov_rev = _per_triangle_coverage(pos, tri.flip(1).contiguous(), H, W).sum(0)
    assert torch.equal(cov, cov_rev)


def test_perspective_closed_mesh_has_no_holes_or_double_coverage():
    # A random height-field grid seen in perspective: every pixel inside the projected outline is
    # covered exactly once across triangles (it is a single-layer surface).
    g = torch.Generator().manual_seed(3)
    n = 10
    u = torch.linspace(-1, 1, n + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    zz = 0.1 * torch.rand(xx.shape, generator=g, dtype=torch.float64)
    xx = xx + 0.04 * torch.rand(xx.shape, generator=g, dtype=torch.float64)
    world = torch.stack([xx.ravel(), yy.ravel(), zz.ravel() - 3.0], 1)
    f = 1.0 / np.tan(np.radians(25))
    near, far = 0.1, 10.0
    proj = torch.tensor(
        [[f, 0, 0, 0], [0, f, 0, 0], [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]],
        dtype=torch.float64,
    )
    pos = torch.cat([world, torch.ones(world.shape[0], 1, dtype=torch.float64)], 1) @ proj.T
    _, tri = _grid_mesh(n, n, 8, 8, 1)
    H = W = 64
    cov = _per_triangle_coverage(pos, tri, H, W).sum(0)
    assert int(cov.max()) == 1
    rast, _ = rastlit.rasterize(pos[None], tri, (H, W))
    assert torch.equal(rast[0, ..., 3] > 0, cov == 1)
    # No holes: covered pixels form one region without gaps inside the bounding rows.
    rows = cov.sum(1)
    covered_rows = torch.nonzero(rows).ravel()
    for r in covered_rows.tolist():
        cols = torch.nonzero(cov[r]).ravel()
        assert int(cols.max() - cols.min() + 1) == cols.numel(), f"gap in row {r}"


def test_background_is_zero_and_depth_test_nearest_wins_ties_to_lower_id():
    pos = torch.tensor(
        [[[-0.9, -0.9, 0.5, 1], [0.9, -0.9, 0.5, 1], [0, 0.9, 0.5, 1],
          [-0.9, -0.9, 0.1, 1], [0.9, -0.9, 0.1, 1], [0, 0.9, 0.1, 1]]],
        dtype=torch.float32,
    )
    # Same depth twice (ids 0 and 1), then a nearer copy (id 2): the nearer one wins everywhere.
    tri = torch.tensor([[0, 1, 2], [0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, db = rastlit.rasterize(pos, tri, (16, 16))
    ids = rast[0, ..., 3]
    assert set(ids.unique().tolist()) == {0.0, 3.0}
    # Without the nearer copy the exact tie goes to the lower id.
    rast2, _ = rastlit.rasterize(pos, tri[:2].contiguous(), (16, 16))
    assert set(rast2[0, ..., 3].unique().tolist()) == {0.0, 1.0}
    bg = ids == 0
    assert bg.any() and bool((rast[0][bg] == 0).all()) and bool((db[0][bg] == 0).all())


def test_vertex_behind_camera_matches_clipped_geometry():
    # One vertex has w < 0. The visible part is the part with w > 0 and -w <= z <= w; compare
    # against the same scene where that edge is pre-clipped at the near plane by hand (the
    # pre-clipped triangle pair covers the same pixels with the same depths and barycentrics).
    v0 = np.array([-0.5, -0.6, 0.2, 1.0])
    v1 = np.array([0.6, -0.4, 0.3, 1.0])
    v2 = np.array([0.1, 0.5, -1.5, -0.5])  # behind the camera
    pos = torch.tensor(np.stack([v0, v1, v2])[None])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    H = W = 48
    rast, _ = rastlit.rasterize(pos, tri, (H, W))
    cov = rast[0, ..., 3] > 0
    assert cov.sum() > 50

    def near_cross(a, b):  # point on segment a-b where z = -w
        da, db_ = a[2] + a[3], b[2] + b[3]
        t = da / (da - db_)
        return a + t * (b - a), t

    p02, t02 = near_cross(v0, v2)
    p12, t12 = near_cross(v1, v2)
    # Evaluate the original triangle's barycentrics analytically at the covered pixels.
    jj, ii = np.meshgrid(np.arange(W), np.arange(H))
    X, Y = (2 * jj + 1) / W - 1, (2 * ii + 1) / H - 1
    M = np.stack([v0[[0, 1, 3]], v1[[0, 1, 3]], v2[[0, 1, 3]]], 1)
    b = np.einsum("ij,hwj->hwi", np.linalg.inv(M), np.stack([X, Y, np.ones_like(X)], -1))
    b = b / b.sum(-1, keepdims=True)
    zw = (b @ np.array([v0[2], v1[2], v2[2]])) / (b @ np.array([v0[3], v1[3], v2[3]]))
    wpt = b @ np.array([v0[3], v1[3], v2[3]])
    inside = (b >= -1e-9).all(-1) & (wpt > 0) & (zw >= -1) & (zw <= 1)
    # Pixels whose centre is far from the boundary must agree exactly.
    margin = (b > 2e-2).all(-1) & (zw > -1 + 2e-2) & (wpt > 0)
    cov_np = cov.numpy()
    assert (cov_np[margin & inside]).all()
    assert not (cov_np & ~inside & (b < -2e-2).any(-1)).any()
    np.testing.assert_allclose(rast[0, ..., 0].numpy()[margin], b[..., 0][margin], atol=1e-9)
    np.testing.assert_allclose(rast[0, ..., 2].numpy()[margin], zw[margin], atol=1e-9)
    assert 0 < t02 < 1 and 0 < t12 < 1 and p02[3] > 0


def test_triangle_entirely_behind_camera_or_beyond_far_plane_covers_nothing():
    pos = torch.tensor(
        [[[-0.5, -0.5, 0.5, -1], [0.5, -0.5, 0.5, -1], [0, 0.5, 0.5, -1],  # behind the eye
          [-0.5, -0.5, 2.0, 1], [0.5, -0.5, 2.0, 1], [0, 0.5, 2.0, 1]]],  # beyond far
        dtype=torch.float32,
    )
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    rast, _ = rastlit.rasterize(pos, tri, (16, 16))
    assert int((rast[..., 3] > 0).sum()) == 0


def test_degenerate_and_nonfinite_triangles_cover_nothing():
    nan = float("nan")
    pos = torch.tensor(
        [[[-0.5, -0.5, 0.5, 1], [0.5, 0.5, 0.5, 1], [0.0, 0.0, 0.5, 1],  # collinear
          [nan, 0.0, 0.5, 1], [0.5, -0.5, 0.5, 1], [0.0, 0.8, 0.5, 1],   # NaN vertex
          [float("inf"), 0.0, 0.5, 1]]],
        dtype=torch.float32,
    )
    tri = torch.tensor([[0, 1, 2], [0, 0, 1], [3, 4, 5], [6, 4, 5]], dtype=torch.int32)
    rast, db = rastlit.rasterize(pos, tri, (16, 16))
    assert int((rast[..., 3] > 0).sum()) == 0
    assert bool(torch.isfinite(rast).all() and torch.isfinite(db).all())
    p = pos.clone().requires_grad_()
    r, d = rastlit.rasterize(p, tri, (16, 16))
    (r[..., :2].sum() + d.sum()).backward()
    assert bool((p.grad == 0).all())


def test_range_mode_matches_instanced_mode_with_global_ids():
    g = torch.Generator().manual_seed(0)
    V, T, B = 30, 40, 3
    pos = torch.rand(V, 4, generator=g) * 2 - 1
    pos[:, 3] = 1 + torch.rand(V, generator=g)
    pos[:, 2] *= 0.5
    tri = torch.randint(0, V, (T, 3), generator=g, dtype=torch.int32)
    ranges = torch.tensor([[0, 10], [10, 25], [5, 35]], dtype=torch.int32)
    rast, db = rastlit.rasterize(pos, tri, (24, 20), ranges=ranges)
    for b in range(B):
        s, c = ranges[b].tolist()
        sub = tri[s : s + c].contiguous()
        r1, d1 = rastlit.rasterize(pos[None], sub, (24, 20))
        ids = r1[0, ..., 3]
        expect = torch.where(ids > 0, ids + s, ids)
        assert torch.equal(rast[b, ..., 3], expect)
        assert torch.equal(rast[b, ..., :3], r1[0, ..., :3])
        assert torch.equal(db[b], d1[0])


def test_rast_db_matches_finite_differences_of_barycentrics():
    # du/dX etc. are derivatives along the image: compare with the closed form evaluated at
    # neighbouring subpixel offsets (float64).
    v = np.array([[-0.7, -0.6, 0.1, 1.0], [0.8, -0.5, 0.4, 2.0], [0.1, 0.9, 0.3, 1.4]])
    pos = torch.tensor(v[None])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    H, W = 16, 14
    rast, db = rastlit.rasterize(pos, tri, (H, W))
    M = np.stack([v[i, [0, 1, 3]] for i in range(3)], 1)
    Minv = np.linalg.inv(M)

    def bary(X, Y):
        b = Minv @ np.array([X, Y, 1.0])
        return b / b.sum()

    cov = torch.nonzero(rast[0, ..., 3] > 0).tolist()
    assert len(cov) > 25
    h = 1e-5
    for i, j in cov:
        X, Y = (2 * j + 1) / W - 1, (2 * i + 1) / H - 1
        dX = (bary(X + h * 2 / W, Y) - bary(X - h * 2 / W, Y)) / (2 * h)
        dY = (bary(X, Y + h * 2 / H) - bary(X, Y - h * 2 / H)) / (2 * h)
        np.testing.assert_allclose(db[0, i, j].numpy(), [dX[0], dY[0], dX[1], dY[1]], rtol=1e-6, atol=1e-9)


def _scene_away_from_edges(seed, B=2, T=3, H=14, W=12, min_px=0.02):
    """Random scene whose pixel centres all lie at least min_px from every triangle edge, so a
    small perturbation of pos changes no coverage decision (needed for finite differences)."""
    rng = np.random.default_rng(seed)
    for _ in range(2000):
        pos = rng.uniform(-1, 1, (B, 3 * T, 4))
        pos[..., 3] = rng.uniform(0.8, 1.6, (B, 3 * T))
        pos[..., 2] = rng.uniform(-0.5, 0.5, (B, 3 * T)) * pos[..., 3]
        pos[..., :2] *= pos[..., 3:4]
        tri = np.arange(3 * T, dtype=np.int32).reshape(T, 3)
        jj, ii = np.meshgrid(np.arange(W), np.arange(H))
        P = np.stack([(2 * jj + 1) / W - 1, (2 * ii + 1) / H - 1], -1)
        ok = True
        for b in range(B):
            s = pos[b, :, :2] / pos[b, :, 3:4]
            for t in range(T):
                for k in range(3):
                    a, c = s[tri[t, k]], s[tri[t, (k + 1) % 3]]
                    d = c - a
                    tt = np.clip(((P - a) @ d) / (d @ d), 0, 1)
                    dist = np.linalg.norm((a + tt[..., None] * d - P) * np.array([W / 2, H / 2]), axis=-1)
                    if dist.min() < min_px:
                        ok = False
        if ok:
            return torch.tensor(pos), torch.tensor(tri), H, W
    raise RuntimeError("no scene found")


@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_rasterize_uv_and_db_wrt_pos(seed):
    pos, tri, H, W = _scene_away_from_edges(seed)
    pos.requires_grad_(True)

    def f(p):
        rast, db = rastlit.rasterize(p, tri, (H, W))
        return rast[..., :2], db

    r, _ = f(pos)
    assert int((r.detach()[..., 0] != 0).sum()) > 30
    assert torch.autograd.gradcheck(f, (pos,), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_gradcheck_rasterize_range_mode_and_grad_db_false():
    pos, tri, H, W = _scene_away_from_edges(5, B=1)
    pos = pos[0].clone().requires_grad_(True)
    ranges = torch.tensor([[0, 2], [1, 2]], dtype=torch.int32)

    def f(p):
        rast, db = rastlit.rasterize(p, tri, (H, W), ranges=ranges, grad_db=False)
        return rast[..., :2]

    assert torch.autograd.gradcheck(f, (pos,), eps=1e-7, atol=1e-6, rtol=1e-5)
    # grad_db=False: rast_db carries no gradient to pos.
    rast, db = rastlit.rasterize(pos, tri, (H, W), ranges=ranges, grad_db=False)
    (g,) = torch.autograd.grad(db.sum(), pos, allow_unused=True, materialize_grads=True)
    assert bool((g == 0).all())


def _random_scene(seed, B=2, V=200, T=300, H=64, W=48, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(B, V, 4, generator=g, dtype=dtype) * 2.4 - 1.2
    pos[..., 3] = 0.5 + torch.rand(B, V, generator=g, dtype=dtype)
    pos[..., 2] = (torch.rand(B, V, generator=g, dtype=dtype) * 2 - 1) * pos[..., 3]
    tri = torch.randint(0, V, (T, 3), generator=g, dtype=torch.int32)
    return pos, tri, H, W


def test_deterministic_across_runs_and_thread_counts():
    # B = 5 views: on 2 threads the forward spreads the views over the threads (>= 2 per
    # thread), on 1 thread it runs them in turn; both must give the same bits.
    pos, tri, H, W = _random_scene(7, B=5, V=500, T=2000, H=96, W=80)
    attr = torch.randn(5, pos.shape[1], 5, generator=torch.Generator().manual_seed(1))
    shared_attr = torch.randn(pos.shape[1], 5, generator=torch.Generator().manual_seed(2))
    wgt = torch.randn(5, H, W, 5, generator=torch.Generator().manual_seed(3))
    old = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 2, 1):
            torch.set_num_threads(threads)
            p = pos.clone().requires_grad_()
            a = attr.clone().requires_grad_()
            s = shared_attr.clone().requires_grad_()
            rast, db = rastlit.rasterize(p, tri, (H, W))
            out, da = rastlit.interpolate(a, rast, tri, db, diff_attrs="all")
            out2, _ = rastlit.interpolate(s, rast, tri)
            ((out * wgt).sum() + da.square().sum() + (out2 * wgt).sum()).backward()
            results.append([rast, db, out, da, p.grad, a.grad, s.grad])
    finally:
        torch.set_num_threads(old)
    assert int((results[0][0][..., 3] > 0).sum()) > 1000
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(x, y)


def test_a_batch_equals_its_views_one_by_one():
    """A batch of 8 views (spread over the threads, one view per thread at a time) gives, bit for
    bit, what each view gives alone (all threads on one view), in instanced and range mode."""
    pos, tri, H, W = _random_scene(11, B=8, V=400, T=1500, H=72, W=88)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        rast, db = rastlit.rasterize(pos, tri, (H, W))
        for b in range(8):
            r1, d1 = rastlit.rasterize(pos[b : b + 1].contiguous(), tri, (H, W))
            assert torch.equal(rast[b : b + 1], r1) and torch.equal(db[b : b + 1], d1)
        # range mode: view b draws triangles [100 b, 100 b + 700) of one shared vertex list
        flat = pos[0].contiguous()
        ranges = torch.tensor([[100 * b, 700] for b in range(8)], dtype=torch.int32)
        rast, db = rastlit.rasterize(flat, tri, (H, W), ranges=ranges)
        for b in range(8):
            r1, d1 = rastlit.rasterize(flat, tri, (H, W), ranges=ranges[b : b + 1].contiguous())
            assert torch.equal(rast[b : b + 1], r1) and torch.equal(db[b : b + 1], d1)
    finally:
        torch.set_num_threads(old)
    assert int((rast[..., 3] > 0).sum()) > 8 * H * W // 4


def test_kernels_run_on_two_threads():
    # cpp_extension passes no -fopenmp by default; a build without it runs kernels on one thread.
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert torch.ops.rastlit.parallel_probe(0) == 2
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- limits, bad input


def _ok_inputs():
    pos = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    return pos, tri


@pytest.mark.parametrize(
    "mutate, exc, match",
    [
        (lambda p, t: (p[..., :3], t), ValueError, r"pos must have shape \[B,V,4\]"),
        (lambda p, t: (p[0, 0], t), ValueError, r"pos must have shape"),
        (lambda p, t: (p.half(), t), TypeError, r"pos must be float32"),
        (lambda p, t: (p.int(), t), TypeError, r"pos must be float32"),
        (lambda p, t: (p, t.long()), TypeError, r"tri must be int32"),
        (lambda p, t: (p, t[:, :2]), ValueError, r"tri must have shape \[T,3\]"),
        (lambda p, t: (p, t.view(-1)), ValueError, r"tri must have shape \[T,3\]"),
        (lambda p, t: (p, t + 1), IndexError, r"tri holds vertex indices in \[1, 3\], but there are 3 vertices"),
        (lambda p, t: (p, t - 1), IndexError, r"tri holds vertex indices"),
        (lambda p, t: (p, torch.tensor([[0, 1, 2**31 - 1]], dtype=torch.int32)), IndexError, r"tri holds"),
        (lambda p, t: (p[:, :0], t), IndexError, r"there are 0 vertices"),
    ],
)
def test_rasterize_rejects_bad_inputs(mutate, exc, match):
    pos, tri = mutate(*_ok_inputs())
    with pytest.raises(exc, match=match):
        rastlit.rasterize(pos, tri, (8, 8))


@pytest.mark.parametrize("res", [(0, 8), (8, -1), (16385, 8), (8, 10**9), (8,), "big", None])
def test_rasterize_rejects_bad_resolution(res):
    pos, tri = _ok_inputs()
    # a string or None is the wrong kind of value (TypeError); a pair out of range, or a sequence
    # of the wrong length, a wrong value (ValueError)
    with pytest.raises(TypeError if res in ("big", None) else ValueError, match="resolution"):
        rastlit.rasterize(pos, tri, res)
    if isinstance(res, tuple) and len(res) == 2:  # the C++ boundary checks too
        with pytest.raises(ValueError, match="resolution"):
            torch.ops.rastlit.rasterize_fwd(pos, tri, res[0], res[1], None, True)


def test_rasterize_ranges_checks():
    pos, tri = _ok_inputs()
    p2 = pos[0]
    with pytest.raises(ValueError, match="needs ranges"):
        rastlit.rasterize(p2, tri, (8, 8))
    with pytest.raises(ValueError, match="ranges is only used in range mode"):
        rastlit.rasterize(pos, tri, (8, 8), ranges=torch.tensor([[0, 1]], dtype=torch.int32))
    with pytest.raises(TypeError, match="ranges must be int32"):
        rastlit.rasterize(p2, tri, (8, 8), ranges=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=r"ranges must have shape \[B,2\]"):
        rastlit.rasterize(p2, tri, (8, 8), ranges=torch.tensor([0, 1], dtype=torch.int32))
    for bad in ([[0, 2]], [[-1, 1]], [[1, 1]], [[0, -1]], [[2**31 - 1, 2**31 - 1]]):
        with pytest.raises(IndexError, match="ranges"):
            rastlit.rasterize(p2, tri, (8, 8), ranges=torch.tensor(bad, dtype=torch.int32))


def test_rasterize_non_contiguous_inputs_give_same_result():
    pos, tri, H, W = _random_scene(2, B=2, V=50, T=60)
    ref, ref_db = rastlit.rasterize(pos, tri, (H, W))
    pos_nc = torch.cat([pos, pos], -1)[..., ::2]  # same values, stride 2 in the last dim
    pos_nc.copy_(pos)
    tri_nc = tri.t().contiguous().t()
    assert not pos_nc.is_contiguous() and not tri_nc.is_contiguous()
    r, d = rastlit.rasterize(pos_nc, tri_nc, (H, W))
    assert torch.equal(r, ref) and torch.equal(d, ref_db)


def test_rasterize_empty_inputs_give_valid_empty_outputs():
    pos, tri = _ok_inputs()
    r, d = rastlit.rasterize(pos, tri[:0], (5, 7))
    assert r.shape == (1, 5, 7, 4) and bool((r == 0).all()) and bool((d == 0).all())
    r, d = rastlit.rasterize(pos[:0], tri, (5, 7))
    assert r.shape == (0, 5, 7, 4) and d.shape == (0, 5, 7, 4)
    r, d = rastlit.rasterize(pos[0], tri, (5, 7), ranges=torch.zeros(0, 2, dtype=torch.int32))
    assert r.shape == (0, 5, 7, 4)
    r, d = rastlit.rasterize(pos[0], tri, (5, 7), ranges=torch.tensor([[0, 0]], dtype=torch.int32))
    assert bool((r == 0).all())
    # Backward through an empty render is a zero gradient.
    p = pos.clone().requires_grad_()
    r, _ = rastlit.rasterize(p, tri[:0], (5, 7))
    r.sum().backward()
    assert bool((p.grad == 0).all())


def test_rasterize_nonfinite_positions_documented_behaviour():
    # A NaN/Inf vertex drops the triangles that use it; the rest render normally.
    pos, tri = _ok_inputs()
    pos = torch.cat([pos, pos + torch.tensor([0.0, 0.0, 0.1, 0.0])], 1)
    pos[0, 4, 0] = float("nan")
    tri2 = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    r, d = rastlit.rasterize(pos, tri2, (16, 16))
    ids = set(r[..., 3].unique().tolist())
    assert ids == {0.0, 1.0}
    assert bool(torch.isfinite(r).all())


def test_rasterize_backward_checks_grad_shapes():
    pos, tri = _ok_inputs()
    rast, _ = rastlit.rasterize(pos, tri, (8, 8))
    with pytest.raises(ValueError, match=r"grad_rast must have shape \[1,8,8,4\]"):
        torch.ops.rastlit.rasterize_bwd(pos, tri, rast, None, torch.zeros(1, 8, 8, 3), None)
    bad = rast.clone()
    bad[0, 4, 4, 3] = 7.0
    with pytest.raises(IndexError, match="triangle id"):
        torch.ops.rastlit.rasterize_bwd(pos, tri, bad, None, torch.zeros_like(rast), None)


def test_simd_and_scalar_coverage_paths_agree_bitwise(tmp_path):
    """On x86-64 with AVX2 the CPU rasterizer sets up 4 triangles, tests 4 pixels and writes 4
    pixels at once; RASTLIT_NO_SIMD=1 selects the scalar loops (what CPUs without AVX2 run). Both
    give the same rast and rast_db, bit for bit, on the oracle scenes, a dense icosphere, and random
    soups built to hit the SIMD paths' edges: vertices snapped to pixel centres and pixel edges
    (axis-aligned edges, centres exactly on edges), w over 2^-10..2^10, vertices outside the slab,
    behind the camera, NaN and inf, and tiny triangles (the 4-pixel box path)."""
    import subprocess
    import sys

    code = f"""
import sys, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
sys.path.insert(0, {str(Path(__file__).parent.parent / "benchmarks")!r})
import rastlit, scenes
out = {{}}
for s in scenes.all_scenes():
    r = None if s.ranges is None else torch.from_numpy(s.ranges)
    out[s.name] = torch.cat(rastlit.rasterize(torch.from_numpy(s.pos), torch.from_numpy(s.tri), (s.H, s.W), ranges=r), -1)
g = torch.Generator().manual_seed(0)
for case in range(24):
    H, W = [(16, 16), (37, 23), (64, 128), (128, 128)][case % 4]
    n, kind = 300, case % 6
    xy = torch.rand(n * 3, 2, generator=g) * 2.4 - 1.2
    if kind == 5:  # tiny triangles (boxes of a few pixels), corners snapped to pixel centres
        step = torch.tensor([2.0 / W, 2.0 / H])
        centre = torch.round(xy[0::3] / step) * step + step / 2
        off = torch.randint(-2, 3, (n * 3, 2), generator=g) * step / 2
        xy = centre.repeat_interleave(3, 0) + off
    if kind in (1, 2):
        step = torch.tensor([2.0 / W, 2.0 / H]) / (2 if kind == 2 else 1)
        xy = torch.round(xy / step) * step + (step / 2 if kind == 1 else 0)
    if kind == 3:
        w = 2.0 ** torch.randint(-10, 10, (n * 3, 1), generator=g).float()
    else:
        w = torch.rand(n * 3, 1, generator=g) * 1.5 + 0.5
    z = (torch.rand(n * 3, 1, generator=g) * 2 - 1) * (1.05 if kind == 4 else 0.9)
    pos = torch.cat([xy * w, z * w, w], 1).float().reshape(1, -1, 4)
    if kind == 4:
        pos[0, ::7, 3] *= -1
        pos[0, 5, 0] = float("nan")
        pos[0, 9, 1] = float("inf")
    tri = torch.arange(n * 3, dtype=torch.int32).reshape(n, 3)
    if case % 2:
        tri = torch.stack([torch.arange(n), torch.arange(n) + 1, torch.arange(n) + 2], 1).int()
    out["soup" + str(case)] = torch.cat(rastlit.rasterize(pos.contiguous(), tri, (H, W)), -1)
torch.save(out, sys.argv[1])
"""
    paths = []
    for flag in ("0", "1"):
        env = dict(os.environ)
        env.pop("RASTLIT_NO_SIMD", None)
        if flag == "1":
            env["RASTLIT_NO_SIMD"] = "1"
        path = tmp_path / f"rast_{flag}.pt"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env, timeout=300)
        paths.append(path)
    a, b = (torch.load(p) for p in paths)
    assert a.keys() == b.keys() and len(a) > 30
    assert sum(int((a[k][..., 3] > 0).sum()) for k in a if k.startswith("soup")) > 50000  # the soups cover pixels
    for k in a:
        assert torch.equal(a[k], b[k]), k
