"""rasterize_soft: forward against a brute-force float64 reference (every pixel x every face),
with and without clipped barycentrics (which also set the depth used for ordering), agreement with
rasterize at blur_radius=0 and near silhouettes of a dense mesh, gradcheck, opcheck, determinism,
bad input, and a small silhouette-fitting sanity check."""

from __future__ import annotations

import math

import pytest
import torch

import rastlit
from rastlit import camera, mesh


# ------------------------------------------------------------------------------------ reference


def _seg_dist2(px, py, ax, ay, bx, by):
    """Squared distance from points (px, py) to segments a-b (broadcast), plain torch."""
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    t = ((px - ax) * dx + (py - ay) * dy) / torch.where(l2 > 0, l2, torch.ones_like(l2))
    t = torch.where(l2 > 0, t, torch.zeros_like(t)).clamp(0, 1)
    qx, qy = ax + t * dx, ay + t * dy
    return (px - qx) ** 2 + (py - qy) ** 2


def _clip_bary(b):
    """PyTorch3D's clipped barycentrics: clamp to >= 0, renormalize."""
    c = b.clamp(min=0)
    return c / c.sum(-1, keepdim=True).clamp(min=1e-5)


def reference_soft(pos, tri, H, W, K, blur, perspective_correct=True, ranges=None, clip=False, with_lambda=False):
    """All pixels x all faces in float64: signed squared distances, K-nearest selection by
    (depth, id). The depth is z/w of the face's plane at the pixel (clip=False) or at the clipped
    screen-space barycentrics, sum_i clip(lambda)_i z_i/w_i (clip=True), and the same depth is
    tested against [-1, 1]. Returns face_ids, zbuf, bary, dists like rasterize_soft (bary clipped
    when clip), and with_lambda: also the screen-space barycentrics lambda of every slot."""
    pos = pos.detach().double()
    B = pos.shape[0] if pos.dim() == 3 else ranges.shape[0]
    X = ((2 * torch.arange(W, dtype=torch.float64) + 1) / W - 1).view(1, W).expand(H, W).reshape(-1, 1)
    Y = ((2 * torch.arange(H, dtype=torch.float64) + 1) / H - 1).view(H, 1).expand(H, W).reshape(-1, 1)
    ids_o = torch.full((B, H * W, K), -1, dtype=torch.int32)
    z_o = torch.full((B, H * W, K), -1.0, dtype=torch.float64)
    b_o = torch.full((B, H * W, K, 3), -1.0, dtype=torch.float64)
    d_o = torch.full((B, H * W, K), -1.0, dtype=torch.float64)
    l_o = torch.full((B, H * W, K, 3), math.nan, dtype=torch.float64)
    for b in range(B):
        if ranges is None:
            p, first, count = pos[b], 0, tri.shape[0]
        else:
            p, first, count = pos, int(ranges[b, 0]), int(ranges[b, 1])
        t = tri[first:first + count].long()
        v = p[t]  # [F,3,4]
        w = v[..., 3]
        ok = (w > 0).all(-1)
        Xs, Ys, Zs = v[..., 0] / w, v[..., 1] / w, v[..., 2] / w  # [F,3]
        x0, x1, x2 = Xs[:, 0], Xs[:, 1], Xs[:, 2]
        y0, y1, y2 = Ys[:, 0], Ys[:, 1], Ys[:, 2]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        ok = ok & (area != 0)
        area = torch.where(area != 0, area, torch.ones_like(area))
        # barycentrics as area ratios, [P,F]
        l0 = ((x1 - X) * (y2 - Y) - (y1 - Y) * (x2 - X)) / area
        l1 = ((x2 - X) * (y0 - Y) - (y2 - Y) * (x0 - X)) / area
        l2 = 1 - l0 - l1
        lam = torch.stack([l0, l1, l2], -1)  # [P,F,3]
        inside = (lam > 0).all(-1)
        d = torch.minimum(torch.minimum(_seg_dist2(X, Y, x0, y0, x1, y1), _seg_dist2(X, Y, x1, y1, x2, y2)),
                          _seg_dist2(X, Y, x2, y2, x0, y0))
        z = ((_clip_bary(lam) if clip else lam) * Zs).sum(-1)
        q = (lam / w).sum(-1)
        keep = ok & (inside | (d < blur)) & (z >= -1) & (z <= 1) & (q > 0)
        sd = torch.where(inside, -d, d)
        bary = lam / w / q.unsqueeze(-1) if perspective_correct else lam
        if clip:
            bary = _clip_bary(bary)
        for pix in range(H * W):
            cand = [(z[pix, f].item(), first + f, f) for f in range(count) if keep[pix, f]]
            cand.sort()
            for k, (zz, gid, f) in enumerate(cand[:K]):
                ids_o[b, pix, k] = gid
                z_o[b, pix, k] = zz
                b_o[b, pix, k] = bary[pix, f]
                d_o[b, pix, k] = sd[pix, f]
                l_o[b, pix, k] = lam[pix, f]
    shp = (B, H, W, K)
    out = (ids_o.view(shp), z_o.view(shp), b_o.view(shp + (3,)), d_o.view(shp))
    return out + (l_o.view(shp + (3,)),) if with_lambda else out


def _scene(seed, B=2, T=6, dtype=torch.float64, size=0.7):
    """Overlapping random triangles, all vertices in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    V = 3 * T
    c = (torch.rand(B, T, 1, 2, generator=g, dtype=torch.float64) - 0.5) * 1.2
    ang = torch.rand(B, T, 1, generator=g, dtype=torch.float64) * 6.28 + torch.tensor([0.0, 2.0, 4.3], dtype=torch.float64)
    rad = size * (0.5 + torch.rand(B, T, 3, generator=g, dtype=torch.float64))
    xy = c + rad.unsqueeze(-1) * torch.stack([ang.cos(), ang.sin()], -1)
    pos = torch.zeros(B, V, 4, dtype=torch.float64)
    pos[..., 3] = 0.6 + torch.rand(B, V, generator=g, dtype=torch.float64)
    pos[..., :2] = xy.reshape(B, V, 2) * pos[..., 3:4]
    pos[..., 2] = (torch.rand(B, V, generator=g, dtype=torch.float64) * 1.6 - 0.8) * pos[..., 3]
    tri = torch.arange(V, dtype=torch.int32).view(T, 3)
    return pos.to(dtype), tri


def _assert_matches_reference(out, ref, atol):
    ids, z, bary, d = ref
    assert torch.equal(out.face_ids, ids), f"{(out.face_ids != ids).sum().item()} slots differ"
    torch.testing.assert_close(out.zbuf.double(), z, rtol=0, atol=atol)
    torch.testing.assert_close(out.dists.double(), d, rtol=0, atol=atol)
    torch.testing.assert_close(out.bary.double(), bary, rtol=0, atol=atol * 10)


# -------------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("perspective_correct", [True, False])
@pytest.mark.parametrize("seed,K,blur,res", [(0, 3, 0.01, (12, 16)), (1, 8, 0.05, (16, 16)), (2, 1, 2e-3, (9, 13))])
def test_forward_matches_bruteforce_reference(seed, K, blur, res, perspective_correct, clip):
    pos, tri = _scene(seed)
    H, W = res
    out = rastlit.rasterize_soft(pos, tri, res, faces_per_pixel=K, blur_radius=blur, sigma=1e-3,
                                 perspective_correct=perspective_correct, clip_barycentric_coords=clip)
    ref = reference_soft(pos, tri, H, W, K, blur, perspective_correct, clip=clip)
    assert (ref[0][..., 0] >= 0).float().mean() > 0.3  # the scene covers the image well
    if K <= 3:
        assert (ref[0][..., -1] >= 0).any()  # K is reached somewhere: truncation is tested
    _assert_matches_reference(out, ref, 1e-12)
    # the alpha definition
    prob = torch.sigmoid(-ref[3] / 1e-3) * (ref[0] >= 0)
    torch.testing.assert_close(out.alpha, 1 - (1 - prob).prod(-1), rtol=0, atol=1e-12)


def test_forward_float32_and_range_mode_match_reference():
    pos, tri = _scene(3, B=1, T=8)
    ref = reference_soft(pos, tri, 14, 14, 4, 0.02)
    out = rastlit.rasterize_soft(pos.float(), tri, (14, 14), 4, blur_radius=0.02, clip_barycentric_coords=False)
    # float32 input: ids can only differ where a depth or distance is within rounding of a
    # decision; this scene has none.
    _assert_matches_reference(out, ref, 2e-6)
    out = rastlit.rasterize_soft(pos.float(), tri, (14, 14), 4, blur_radius=0.02, clip_barycentric_coords=True)
    _assert_matches_reference(out, reference_soft(pos, tri, 14, 14, 4, 0.02, clip=True), 2e-6)
    ranges = torch.tensor([[0, 5], [3, 5]], dtype=torch.int32)
    for clip in (False, True):
        out = rastlit.rasterize_soft(pos[0], tri, (10, 12), 3, blur_radius=0.02, ranges=ranges,
                                     clip_barycentric_coords=clip)
        _assert_matches_reference(out, reference_soft(pos[0], tri, 10, 12, 3, 0.02, ranges=ranges, clip=clip), 1e-12)
    assert out.face_ids[1][out.face_ids[1] >= 0].min() >= 3  # ids stay global


def test_tutorial_settings_and_defaults():
    sigma = 1e-4
    pos, tri = _scene(4, B=1, T=10)
    out = rastlit.rasterize_soft(pos, tri, (16, 16), faces_per_pixel=50, sigma=sigma,
                                 blur_radius=math.log(1.0 / 1e-4 - 1.0) * sigma)
    assert out.face_ids.shape == (1, 16, 16, 50) and out.bary.shape == (1, 16, 16, 50, 3)
    assert out.face_ids.dtype == torch.int32 and out.alpha.shape == (1, 16, 16)
    assert rastlit.soft_blur_radius(sigma) == pytest.approx(9.21e-4, rel=1e-3)
    dflt = rastlit.rasterize_soft(pos, tri, (16, 16), faces_per_pixel=50, sigma=sigma)
    assert torch.equal(dflt.face_ids, out.face_ids) and torch.equal(dflt.alpha, out.alpha)
    ref = reference_soft(pos, tri, 16, 16, 50, rastlit.soft_blur_radius(sigma), clip=True)  # blur > 0: clipped
    _assert_matches_reference(out, ref, 1e-12)
    # sorted by depth, empty slots at the end with -1 everywhere
    valid = out.face_ids >= 0
    z = torch.where(valid, out.zbuf, torch.full_like(out.zbuf, math.inf))
    assert (z[..., 1:] >= z[..., :-1]).all()
    assert (valid[..., 1:] <= valid[..., :-1]).all()
    assert (out.zbuf[~valid] == -1).all() and (out.dists[~valid] == -1).all() and (out.bary[~valid] == -1).all()
    # clipped barycentrics (default with blur > 0): non-negative, summing to one
    bv = out.bary[valid]
    assert (bv >= 0).all()
    torch.testing.assert_close(bv.sum(-1), torch.ones_like(bv[:, 0]))
    assert ((out.alpha >= 0) & (out.alpha <= 1)).all()


def test_blur_zero_agrees_with_rasterize():
    pos, tri = _scene(5, B=2, T=12)
    H, W = 24, 20
    out = rastlit.rasterize_soft(pos, tri, (H, W), faces_per_pixel=4, blur_radius=0.0)
    rast, _ = rastlit.rasterize(pos, tri, (H, W))
    ids_hard = rast[..., 3].long() - 1
    # Unambiguous pixels: no pixel centre within 1e-9 (squared 1e-18) of any edge of a face.
    ref = reference_soft(pos, tri, H, W, 12, 1e-18)
    ambiguous = ((ref[3].abs() < 1e-18) & (ref[0] >= 0)).any(-1)
    ok = ~ambiguous
    assert ok.float().mean() > 0.99
    assert torch.equal(out.face_ids[..., 0].long()[ok], ids_hard[ok])
    assert (out.dists[out.face_ids >= 0] < 0).all()  # blur 0: only strictly inside
    # zbuf of the nearest face is rasterize's z/w
    cov = ok & (ids_hard >= 0)
    torch.testing.assert_close(out.zbuf[..., 0][cov], rast[..., 2][cov], rtol=0, atol=1e-12)
    # and the perspective-correct barycentrics are rasterize's (u, v)
    torch.testing.assert_close(out.bary[..., 0, :2][cov], rast[..., :2][cov], rtol=0, atol=1e-12)


def test_near_far_and_behind_camera():
    pos = torch.tensor([[[-0.9, -0.9, 0.0, 1.0], [0.9, -0.9, 0.0, 1.0], [0.0, 0.9, 0.0, 1.0],
                         [-0.9, -0.9, 1.5, 1.0], [0.9, -0.9, 1.5, 1.0], [0.0, 0.9, 1.5, 1.0],  # beyond far
                         [-0.9, -0.9, 0.0, 1.0], [0.9, -0.9, 0.0, 1.0], [0.0, 0.9, 0.0, -1.0]]],  # w < 0
                       dtype=torch.float64)
    tri = torch.arange(9, dtype=torch.int32).view(3, 3)
    out = rastlit.rasterize_soft(pos, tri, (8, 8), faces_per_pixel=3, blur_radius=0.01)
    ids = out.face_ids[out.face_ids >= 0]
    assert ids.numel() > 0 and (ids == 0).all()


def test_clipped_depth_is_a_point_of_the_face_and_decides_near_far():
    # With clipping the depth of every kept sample lies within its face's vertex depths; at
    # blur 0 (only strictly inside samples) clipping changes nothing.
    pos, tri = _scene(6, B=1, T=10)
    out = rastlit.rasterize_soft(pos, tri, (16, 16), faces_per_pixel=10, blur_radius=0.05)
    valid = out.face_ids >= 0
    zv = (pos[0, :, 2] / pos[0, :, 3])[tri.long()]  # [T,3]
    zf = zv[out.face_ids[valid].long()]
    assert ((out.zbuf[valid] >= zf.min(-1).values - 1e-12) & (out.zbuf[valid] <= zf.max(-1).values + 1e-12)).all()
    a = rastlit.rasterize_soft(pos, tri, (16, 16), faces_per_pixel=4, blur_radius=0.0, clip_barycentric_coords=True)
    b = rastlit.rasterize_soft(pos, tri, (16, 16), faces_per_pixel=4, blur_radius=0.0, clip_barycentric_coords=False)
    for name in ("face_ids", "zbuf", "dists", "alpha"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    torch.testing.assert_close(a.bary, b.bary, rtol=0, atol=1e-15)  # (renormalized: last bits)
    # Near/far uses the same depth: a triangle inside the frustum (z/w in [0.5, 0.9]) whose plane
    # extrapolates beyond the far plane right of it is kept there only when clipping.
    pos = torch.tensor([[[-0.5, -0.5, 0.5, 1.0], [0.0, -0.5, 0.9, 1.0], [-0.5, 0.5, 0.5, 1.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    kw = dict(faces_per_pixel=1, blur_radius=0.3)
    on = rastlit.rasterize_soft(pos, tri, (8, 8), clip_barycentric_coords=True, **kw)
    off = rastlit.rasterize_soft(pos, tri, (8, 8), clip_barycentric_coords=False, **kw)
    assert (on.zbuf[on.face_ids >= 0] <= 0.9 + 1e-12).all()
    assert (off.zbuf[off.face_ids >= 0] <= 1.0).all()
    assert ((on.face_ids >= 0) & (off.face_ids < 0)).sum() > 3  # plane beyond far, face itself not
    assert not ((off.face_ids >= 0) & (on.face_ids < 0)).any()
    for clip, o in ((True, on), (False, off)):
        _assert_matches_reference(o, reference_soft(pos, tri, 8, 8, 1, 0.3, clip=clip), 1e-12)


def _sphere_views(res, subdivisions=2):
    m = mesh.bumpy_sphere(subdivisions, seed=0)
    cams = camera.PerspectiveCamera.orbit(2, radius=3.0, elevation_deg=15.0, resolution=res)
    return cams.project(m.verts), m.faces


@pytest.mark.parametrize("res,sigma,min_alpha", [((24, 32), 1e-3, 0.5), ((24, 32), 1e-4, 0.5), ((48, 64), 3e-4, 0.5)])
def test_dense_sphere_silhouette_keeps_the_covering_face(res, sigma, min_alpha):
    # Nearly edge-on faces next to a silhouette: their planes extrapolate to depths far in front
    # of the surface (z/w ~ -0.75 for faces at ~0.92), which crowded the covering face out of the
    # K list (alpha ~0.1 at covered pixels) before depths were taken at clipped barycentrics.
    pos, tri = _sphere_views(res)
    rast, _ = rastlit.rasterize(pos, tri, res)
    covered = rast[..., 3] > 0
    hard_id = rast[..., 3].long() - 1
    out = rastlit.rasterize_soft(pos, tri, res, faces_per_pixel=8, sigma=sigma)
    assert out.alpha[covered].min() >= min_alpha
    old = rastlit.rasterize_soft(pos, tri, res, faces_per_pixel=8, sigma=sigma, clip_barycentric_coords=False)
    if sigma == 1e-3:
        assert old.alpha[covered].min() < 0.3  # the reproduction: the plane order loses coverage
    # The covering face is in the K list wherever the blur reaches fewer than K other faces with
    # a nearer point: true here for sigma <= 3e-4 (blur radius <= 0.5 pixel); at sigma = 1e-3
    # (1.5 pixels at 32 wide) up to 9 other faces of this 320-face sphere legitimately are nearer.
    in_list = (out.face_ids.long() == hard_id.unsqueeze(-1)).any(-1)
    if sigma <= 3e-4:
        assert in_list[covered].all()
    big = rastlit.rasterize_soft(pos, tri, res, faces_per_pixel=16, sigma=sigma)
    assert (big.face_ids.long() == hard_id.unsqueeze(-1)).any(-1)[covered].all()
    # and at the pixels it is in the list, it is rasterize's face at rasterize's depth
    k = (out.face_ids.long() == hard_id.unsqueeze(-1)).float().argmax(-1, keepdim=True)
    sel = covered & in_list
    torch.testing.assert_close(out.zbuf.gather(-1, k)[..., 0][sel], rast[..., 2][sel], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------ gradients


def _grad_scene():
    pos = torch.tensor([[[-0.71, -0.63, 0.21, 1.1], [0.62, -0.52, -0.13, 0.9], [0.07, 0.69, 0.33, 1.25],
                         [-0.33, -0.21, -0.4, 1.0], [0.77, 0.13, 0.1, 1.3], [-0.18, 0.83, -0.2, 0.8]]],
                       dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    return pos, tri


def _assert_away_from_clip_kinks(pos, tri, res, K, blur, clip, ranges=None):
    """Clipping is piecewise smooth with kinks where a screen-space barycentric of a kept sample
    crosses 0 (the sign of the perspective-correct one is the same, w > 0): finite differences
    need every kept sample's |lambda_i| away from 0. Returns the number of kept samples with one
    and with two negative (clamped) coordinates."""
    ref = reference_soft(pos, tri, res[0], res[1], K, blur, clip=clip, ranges=ranges, with_lambda=True)
    lam = ref[4][ref[0] >= 0]
    assert lam.abs().min() > 1e-4
    neg = (lam < 0).sum(-1)
    return (neg == 1).sum().item(), (neg == 2).sum().item()


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("perspective_correct", [True, False])
def test_gradcheck_all_outputs(perspective_correct, clip):
    pos, tri = _grad_scene()
    res, K, blur, sigma = (7, 8), 2, 0.03, 0.02
    kw = dict(faces_per_pixel=K, blur_radius=blur, sigma=sigma, perspective_correct=perspective_correct,
              clip_barycentric_coords=clip)
    base = rastlit.rasterize_soft(pos, tri, res, **kw)
    # The selection must not change under the finite-difference step (no pixel at the blur
    # boundary, on an edge, or at a depth tie).
    for s in (1e-5, -1e-5):
        assert torch.equal(rastlit.rasterize_soft(pos + s, tri, res, **kw).face_ids, base.face_ids)
    assert (base.face_ids[..., 1] >= 0).sum() > 5  # both faces overlap somewhere
    assert ((base.dists > 0) & (base.face_ids >= 0)).sum() > 5  # blur region samples present
    # outside samples in both clipped regimes: next to an edge (one coordinate clamped, depth
    # along the edge) and next to a vertex (two clamped, the vertex's depth)
    one, two = _assert_away_from_clip_kinks(pos, tri, res, K, blur, clip)
    assert one > 5 and two >= 1

    def f(p):
        o = rastlit.rasterize_soft(p, tri, res, **kw)
        return o.zbuf, o.bary, o.dists, o.alpha

    assert torch.autograd.gradcheck(f, (pos.clone().requires_grad_(),), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_gradcheck_clipped_bary_and_range_mode():
    pos, tri = _grad_scene()
    ranges = torch.tensor([[0, 2], [1, 1]], dtype=torch.int32)
    kw = dict(faces_per_pixel=2, blur_radius=0.02, sigma=0.03, ranges=ranges, clip_barycentric_coords=True)
    base = rastlit.rasterize_soft(pos[0], tri, (6, 6), **kw)
    for s in (1e-5, -1e-5):
        assert torch.equal(rastlit.rasterize_soft(pos[0] + s, tri, (6, 6), **kw).face_ids, base.face_ids)
    one, two = _assert_away_from_clip_kinks(pos[0], tri, (6, 6), 2, 0.02, True, ranges=ranges)
    assert one + two > 5

    def f(p):
        o = rastlit.rasterize_soft(p, tri, (6, 6), **kw)
        return o.zbuf, o.bary, o.dists, o.alpha

    assert torch.autograd.gradcheck(f, (pos[0].clone().requires_grad_(),), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_opcheck():
    pos, tri = _grad_scene()
    pos = pos.requires_grad_()
    for clip in (True, False):
        torch.library.opcheck(torch.ops.rastlit.rasterize_soft_fwd.default,
                              (pos, tri, 7, 9, 3, 0.02, True, clip, None))
    ranges = torch.tensor([[0, 1], [0, 2]], dtype=torch.int32)
    torch.library.opcheck(torch.ops.rastlit.rasterize_soft_fwd.default,
                          (pos[0].detach().requires_grad_(), tri, 5, 6, 2, 0.0, False, False, ranges))
    z, b, d, ids = torch.ops.rastlit.rasterize_soft_fwd(pos.detach(), tri, 7, 9, 3, 0.02, True, True, None)
    torch.library.opcheck(torch.ops.rastlit.rasterize_soft_bwd.default,
                          (pos.detach(), tri, ids, 0.02, True, True, None, torch.randn_like(z), torch.randn_like(b),
                           torch.randn_like(d)))


def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    pos, tri = _grad_scene()
    pos = pos.float()

    def f(p):
        o = rastlit.rasterize_soft(p, tri, (12, 10), faces_per_pixel=3, sigma=1e-3)
        return o.alpha.square().sum() + o.zbuf.sum() + o.bary.sum()

    p1, p2 = pos.clone().requires_grad_(), pos.clone().requires_grad_()
    l1 = f(p1)
    l1.backward()
    l2 = torch.compile(f, fullgraph=True, backend="aot_eager")(p2)
    l2.backward()
    torch.testing.assert_close(l2, l1)
    torch.testing.assert_close(p2.grad, p1.grad)
    assert p1.grad.abs().sum() > 0


def test_deterministic_across_thread_counts():
    verts, faces = mesh.icosphere(3)  # 1280 faces
    mvp = camera.perspective(45.0) @ camera.look_at((0.3, 0.4, 2.8))
    pos = camera.transform_points(mvp, verts).unsqueeze(0).repeat(2, 1, 1)
    pos[1, :, 0] += 0.1
    g = torch.Generator().manual_seed(0)
    wz, wd = torch.randn(2, 48, 40, 6, generator=g), torch.randn(2, 48, 40, 6, generator=g)
    wa = torch.randn(2, 48, 40, generator=g)

    def run(n):
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            p = pos.clone().requires_grad_()
            o = rastlit.rasterize_soft(p, faces, (48, 40), faces_per_pixel=6, sigma=1e-4)
            loss = (o.zbuf * wz).sum() + (o.dists * wd).sum() * 100 + (o.alpha * wa).sum() + o.bary.sum()
            loss.backward()
            return o, p.grad
        finally:
            torch.set_num_threads(old)

    o1, g1 = run(1)
    o2, g2 = run(2)
    for a, b in zip(o1, o2):
        assert torch.equal(a, b)
    assert torch.equal(g1, g2) and g1.abs().sum() > 0


def test_silhouette_optimisation_reduces_loss():
    # Move (and resize) a triangle towards a target silhouette using only alpha's gradient.
    target_pos = torch.tensor([[[-0.5, -0.4, 0.0, 1.0], [0.6, -0.3, 0.0, 1.0], [0.1, 0.6, 0.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    kw = dict(faces_per_pixel=4, sigma=1e-3)
    target = rastlit.rasterize_soft(target_pos, tri, (32, 32), **kw).alpha.detach()
    xy = (target_pos[..., :2] + torch.tensor([0.25, -0.2])).clone().requires_grad_()
    opt = torch.optim.Adam([xy], lr=0.02)
    losses = []
    for _ in range(30):
        pos = torch.cat([xy, target_pos[..., 2:]], -1)
        loss = (rastlit.rasterize_soft(pos, tri, (32, 32), **kw).alpha - target).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    assert (xy.detach() - target_pos[..., :2]).abs().max() < 0.15


# ------------------------------------------------------------------------------------ bad input


def test_rejects_bad_inputs():
    pos, tri = _grad_scene()
    with pytest.raises(ValueError, match=r"faces_per_pixel must be in \[1, 128\]"):
        rastlit.rasterize_soft(pos, tri, (8, 8), faces_per_pixel=0)
    with pytest.raises(ValueError, match="faces_per_pixel must be in"):
        rastlit.rasterize_soft(pos, tri, (8, 8), faces_per_pixel=10**6)
    with pytest.raises(TypeError, match="faces_per_pixel must be an int"):
        rastlit.rasterize_soft(pos, tri, (8, 8), faces_per_pixel=2.5)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        rastlit.rasterize_soft(pos, tri, (8, 8), sigma=-1e-4)
    with pytest.raises(ValueError, match="sigma must be"):
        rastlit.rasterize_soft(pos, tri, (8, 8), sigma=float("nan"))
    with pytest.raises(ValueError, match="blur_radius must be a finite squared NDC distance >= 0"):
        rastlit.rasterize_soft(pos, tri, (8, 8), blur_radius=-0.1)
    with pytest.raises(ValueError, match="blur_radius must be"):
        rastlit.rasterize_soft(pos, tri, (8, 8), blur_radius=float("inf"))
    with pytest.raises(ValueError, match="resolution must be"):
        rastlit.rasterize_soft(pos, tri, (0, 8))
    with pytest.raises(ValueError, match=r"pos must have shape \[B,V,4\]"):
        rastlit.rasterize_soft(pos[..., :3], tri, (8, 8))
    with pytest.raises(ValueError, match="range mode .* needs ranges"):
        rastlit.rasterize_soft(pos[0], tri, (8, 8))
    with pytest.raises(TypeError, match="pos must be float32"):
        rastlit.rasterize_soft(pos.long(), tri, (8, 8))
    with pytest.raises(TypeError, match="tri must be int32"):
        rastlit.rasterize_soft(pos, tri.long(), (8, 8))
    with pytest.raises(ValueError, match=r"tri must have shape \[T,3\]"):
        rastlit.rasterize_soft(pos, tri[:, :2], (8, 8))
    with pytest.raises(IndexError, match="tri holds vertex indices"):
        rastlit.rasterize_soft(pos, tri + 4, (8, 8))
    with pytest.raises(IndexError, match=r"ranges\[0\]"):
        rastlit.rasterize_soft(pos[0], tri, (8, 8), ranges=torch.tensor([[1, 5]], dtype=torch.int32))
    bad = pos.clone()
    bad[0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="pos holds NaN or Inf"):
        rastlit.rasterize_soft(bad, tri, (8, 8))
    bad[0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="pos holds NaN or Inf"):
        rastlit.rasterize_soft(bad, tri, (8, 8))
    # backward op checks
    z, b, d, ids = torch.ops.rastlit.rasterize_soft_fwd(pos, tri, 5, 6, 2, 0.01, True, True, None)
    with pytest.raises(ValueError, match=r"grad_bary must have shape \[1,5,6,2,3\]"):
        torch.ops.rastlit.rasterize_soft_bwd(pos, tri, ids, 0.01, True, True, None, z, b[..., :2], d)
    with pytest.raises(TypeError, match="face_ids must be int32"):
        torch.ops.rastlit.rasterize_soft_bwd(pos, tri, ids.float(), 0.01, True, True, None, z, b, d)
    with pytest.raises(TypeError, match="must have the dtype of pos"):
        torch.ops.rastlit.rasterize_soft_bwd(pos, tri, ids, 0.01, True, True, None, z.float(), b, d)


def test_empty_inputs_and_noncontiguous():
    pos, tri = _grad_scene()
    out = rastlit.rasterize_soft(pos, tri[:0], (5, 4), faces_per_pixel=2)
    assert (out.face_ids == -1).all() and (out.alpha == 0).all()
    out = rastlit.rasterize_soft(pos[:0], tri, (5, 4), faces_per_pixel=2)
    assert out.face_ids.shape == (0, 5, 4, 2)
    ref = rastlit.rasterize_soft(pos, tri, (9, 7), faces_per_pixel=2, sigma=1e-2)
    pos_nc = pos.transpose(1, 2).contiguous().transpose(1, 2)
    assert not pos_nc.is_contiguous()
    out = rastlit.rasterize_soft(pos_nc, tri, (9, 7), faces_per_pixel=2, sigma=1e-2)
    for a, b in zip(out, ref):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------- CUDA



@pytest.mark.cuda
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype, clip):
    verts, faces = mesh.icosphere(4)
    mvp = camera.perspective(45.0) @ camera.look_at((0.3, 0.4, 2.8))
    pos = camera.transform_points(mvp, verts).unsqueeze(0).repeat(2, 1, 1).to(dtype)
    pos[1, :, 1] += 0.2
    kw = dict(faces_per_pixel=8, sigma=1e-4, clip_barycentric_coords=clip)
    g = torch.Generator().manual_seed(0)
    wa = torch.randn(2, 64, 80, generator=g, dtype=dtype)
    wz = torch.randn(2, 64, 80, 8, generator=g, dtype=dtype)

    def run(device, ranges=None):
        p = pos.detach().to(device).requires_grad_()
        o = rastlit.rasterize_soft(p, faces.to(device), (64, 80), **kw)
        ((o.alpha * wa.to(device)).sum() + (o.zbuf * wz.to(device)).sum() + o.bary.sum()).backward()
        return [t.detach().cpu() for t in o], p.grad.cpu()

    oc, gc = run("cpu")
    og, gg = run("cuda")
    assert torch.equal(oc[0], og[0])
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, b in zip(oc[1:], og[1:]):
        torch.testing.assert_close(b, a, rtol=0, atol=tol)
    torch.testing.assert_close(gg, gc, rtol=1e-4, atol=1e-4 * gc.abs().max().item())
    old = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        _, g1 = run("cuda")
        _, g2 = run("cuda")
        assert torch.equal(g1, g2)
    finally:
        torch.use_deterministic_algorithms(old)
    # range mode
    ranges = torch.tensor([[0, 3000], [1000, 4120]], dtype=torch.int32)
    oc = rastlit.rasterize_soft(pos[0], faces, (32, 48), ranges=ranges, **kw)
    og = rastlit.rasterize_soft(pos[0].cuda(), faces.cuda(), (32, 48), ranges=ranges, **kw)
    assert torch.equal(oc.face_ids, og.face_ids.cpu())
    torch.testing.assert_close(og.dists.cpu(), oc.dists, rtol=0, atol=tol)
