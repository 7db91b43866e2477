"""antialias: values against a slow float64 reference (including the walk across sub-pixel
triangles to the silhouette and its step cap), visibility gradients against finite differences
(background silhouettes, occlusion edges, dense spheres), gradcheck, determinism, opcheck,
topology hash, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import rastlit
from rastlit.mesh import icosphere


# --------------------------------------------------------------------------------- scenes


def _perspective(verts, dist=3.0, f=1.8, near=1.0, far=10.0, shift=(0.0, 0.0)):
    """Clip-space positions [V,4] of verts [V,3] seen from (0, 0, dist) looking down -z."""
    xc, yc, zc = verts[:, 0] + shift[0], verts[:, 1] + shift[1], verts[:, 2] - dist
    z = -(far + near) / (far - near) * zc - 2 * far * near / (far - near)
    return torch.stack([f * xc, f * yc, z, -zc], 1)


def _sphere_scene(dtype=torch.float64, B=2, res=(20, 24)):
    """An icosphere (silhouettes between front- and back-facing triangles) plus a triangle in
    front of it (occlusion edges, a mesh boundary), in two views."""
    v, f = icosphere(1, dtype=torch.float64)
    views = []
    for b in range(B):
        ang = 0.4 + 0.9 * b
        rot = torch.tensor([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]],
                           dtype=torch.float64)
        sph = _perspective(v @ rot.T, shift=(0.1 * b, -0.05))
        front = _perspective(torch.tensor([[-0.9, -0.6, 1.3], [0.4, -0.8, 1.1], [-0.2, 0.5, 1.2]], dtype=torch.float64))
        views.append(torch.cat([sph, front], 0))
    pos = torch.stack(views, 0).to(dtype)
    nv = v.shape[0]
    tri = torch.cat([f, torch.tensor([[nv, nv + 1, nv + 2]], dtype=torch.int32)], 0)
    rast, _ = rastlit.rasterize(pos, tri, res)
    return pos, tri, rast


# ------------------------------------------------------------------------- float64 reference


_MAX_WALK_STEPS = 64  # kAaMaxWalkSteps in csrc/antialias/antialias.h


def _reference(color, rast, pos, tri, max_steps=_MAX_WALK_STEPS, stats=None):
    """A slow, direct evaluation of the definition: loop over pixel pairs; starting in the front
    pixel's triangle, intersect the pair's segment with the triangle's projected edges (as 2D
    segments) and take the nearest crossing (ignoring the edge the walk came in through); find
    the triangles of the crossed edge by searching tri and compare their facing (projected signed
    area). A silhouette (no other triangle, or opposite facing) ends the walk: the edge is used if
    it runs across the pair's axis (steep edges for horizontal pairs, flat ones for vertical
    pairs). Otherwise walk into the other triangle, unless it is the other pixel's triangle, or
    has a vertex behind the camera, or max_steps steps were taken. ``stats`` (a dict) counts the
    outcomes: 'found', 'walked' (found after at least one step), 'capped'."""
    color = color.double()
    rast = rast.double()
    pos = pos.double()
    B, H, W, C = color.shape
    out = color.clone()
    tl = tri.tolist()
    edge_tris = {}
    for t, (a, b, c) in enumerate(tl):
        for i, j in ((a, b), (b, c), (c, a)):
            edge_tris.setdefault(frozenset((i, j)), []).append(t)
    if stats is None:
        stats = {}
    for k in ("found", "walked", "capped"):
        stats.setdefault(k, 0)

    def centre(x, y):
        return ((2 * x + 1) / W - 1, (2 * y + 1) / H - 1)

    for bb in range(B):
        P = (pos[bb] if pos.dim() == 3 else pos).tolist()

        def proj(v):
            return (P[v][0] / P[v][3], P[v][1] / P[v][3])

        def area(t):
            (x0, y0), (x1, y1), (x2, y2) = (proj(v) for v in tl[t])
            return (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)

        def exit_edge(t, cf, co, dx, came_in):
            """Nearest crossing (s, vi, vj, edge_ok) of the segment cf -> co with an edge of t."""
            best = None
            for i, j in ((1, 2), (2, 0), (0, 1)):
                vi, vj = tl[t][i], tl[t][j]
                if frozenset((vi, vj)) == came_in:
                    continue
                if not (P[vi][3] > 0 and P[vj][3] > 0):
                    continue
                a, b = proj(vi), proj(vj)
                steep = abs(b[1] - a[1]) * H >= abs(b[0] - a[0]) * W  # in pixels: |dy| >= |dx|
                edge_ok = steep if dx == 1 else not steep
                # cf + s (co - cf) = a + u (b - a)
                d1 = (co[0] - cf[0], co[1] - cf[1])
                d2 = (b[0] - a[0], b[1] - a[1])
                den = d1[0] * (-d2[1]) - d1[1] * (-d2[0])
                if den == 0:
                    continue
                rx, ry = a[0] - cf[0], a[1] - cf[1]
                s = (rx * (-d2[1]) - ry * (-d2[0])) / den
                u = (d1[0] * ry - d1[1] * rx) / den
                if 0 <= s <= 1 and 0 <= u <= 1 and (best is None or s < best[0]):
                    best = (s, vi, vj, edge_ok)
            return best

        for y in range(H):
            for x in range(W):
                for dx, dy in ((1, 0), (0, 1)):
                    x1, y1 = x + dx, y + dy
                    if x1 >= W or y1 >= H:
                        continue
                    id0, id1 = int(rast[bb, y, x, 3]), int(rast[bb, y1, x1, 3])
                    if id0 == id1:
                        continue
                    if id0 == 0:
                        front = 1
                    elif id1 == 0:
                        front = 0
                    else:
                        front = 1 if rast[bb, y1, x1, 2] < rast[bb, y, x, 2] else 0
                    pf, po = ((x, y), (x1, y1)) if front == 0 else ((x1, y1), (x, y))
                    t = (id0 if front == 0 else id1) - 1
                    t_other = (id1 if front == 0 else id0) - 1
                    cf, co = centre(*pf), centre(*po)
                    came_in = None
                    steps = 0
                    while True:
                        best = exit_edge(t, cf, co, dx, came_in)
                        if best is None:
                            break  # the segment ends inside t
                        s, vi, vj, edge_ok = best
                        others = [o for o in edge_tris[frozenset((vi, vj))] if o != t]
                        if len(others) >= 2:
                            break  # non-manifold
                        if len(others) == 0 or (area(t) > 0) != (area(others[0]) > 0):
                            # a silhouette: used unless the edge runs along the pair's axis (the
                            # other kind of pair takes it)
                            if edge_ok:
                                stats["found"] += 1
                                stats["walked"] += steps > 0
                                d = s - 0.5
                                m = po if d >= 0 else pf
                                out[bb, m[1], m[0]] += d * (color[bb, pf[1], pf[0]] - color[bb, po[1], po[0]])
                            break
                        nxt = others[0]
                        if nxt == t_other:
                            break
                        if steps == max_steps:
                            stats["capped"] += 1
                            break
                        if any(P[v][3] <= 0 for v in tl[nxt]):
                            break
                        t, came_in, steps = nxt, frozenset((vi, vj)), steps + 1
    return out


def test_antialias_matches_reference_sphere_and_occluder():
    pos, tri, rast = _sphere_scene()
    color = torch.rand(*rast.shape[:3], 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = rastlit.antialias(color, rast, pos, tri)
    ref = _reference(color, rast, pos, tri)
    changed = (ref != color).any(-1)
    assert int(changed.sum()) > 40  # plenty of blended pixels: silhouettes and occlusion edges
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    # float32 follows the float64 result
    out32 = rastlit.antialias(color.float(), rast.float(), pos.float(), tri)
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=1e-5)


def test_antialias_range_mode_and_behind_camera():
    # Range mode: one vertex set, two views drawing different triangle ranges. One triangle has a
    # vertex behind the camera (w < 0): its edges through that vertex are skipped, the rest work.
    pos = torch.tensor(
        [[-0.7, -0.6, 0.1, 1.0], [0.6, -0.4, 0.1, 1.0], [0.0, 0.65, 0.1, 1.0],
         [-0.3, -0.2, 0.0, 1.0], [0.8, 0.3, 0.0, 1.0], [0.5, 0.4, -0.3, -0.5]],
        dtype=torch.float64,
    )
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    ranges = torch.tensor([[0, 2], [1, 1]], dtype=torch.int32)
    rast, _ = rastlit.rasterize(pos, tri, (18, 16), ranges=ranges)
    color = torch.rand(2, 18, 16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = rastlit.antialias(color, rast, pos, tri)
    ref = _reference(color, rast, pos, tri)
    assert int((ref != color).any(-1).sum()) > 10
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    # gradients with the shared vertex set (summed over the views)
    c = color.clone().requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c_, p_: rastlit.antialias(c_, rast, p_, tri), (c, p), eps=1e-7, atol=1e-6,
                                    rtol=1e-5)


def test_antialias_blend_values_of_a_vertical_edge():
    # A square whose left and right edges are vertical, 0.38 px and 0.62 px from the nearest
    # covered pixel centre: the covered column keeps 1 - 0.12, the uncovered one gets 0.12.
    W = H = 8
    pos = torch.tensor([[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0.5, 0.5, 0, 1], [-0.5, 0.5, 0, 1]],
                       dtype=torch.float64)[None]
    pos[..., 0] += 0.03
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    rast, _ = rastlit.rasterize(pos, tri, (H, W))
    color = (rast[..., 3:] > 0).double()
    out = rastlit.antialias(color, rast, pos, tri)[0, ..., 0]
    rows = [2, 3, 4]  # rows whose right neighbour pair lies in the triangle owning the right edge
    torch.testing.assert_close(out[2:6, 2], torch.full((4,), 0.88, dtype=torch.float64))
    torch.testing.assert_close(out[rows, 6], torch.full((3,), 0.12, dtype=torch.float64))
    # the top and bottom edges lie exactly on the midpoints between pixel centres: no blend
    torch.testing.assert_close(out[1], color[0, 1, :, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(out[6], color[0, 6, :, 0], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- visibility gradients


def _smooth_weights(H, W, C, seed):
    """Loss weights that vary slowly across the image (random phases): the antialiased image is
    piecewise linear in the edge position with kinks where an edge passes a pixel centre or a
    midpoint; with weights that differ little between neighbours those kinks are small, so a
    finite difference over a pixel-sized step measures the derivative."""
    g = torch.Generator().manual_seed(seed)
    ph = torch.rand(C, 2, generator=g, dtype=torch.float64) * 6.28
    y = torch.arange(H, dtype=torch.float64).view(H, 1, 1)
    x = torch.arange(W, dtype=torch.float64).view(1, W, 1)
    return (1 + 0.5 * torch.sin(0.21 * x + ph[:, 0]) * torch.cos(0.17 * y + ph[:, 1]))[None]


def _fd_check(pos0, tri, attr, res, vertex, coord, h, seed=0):
    """Analytic d loss / d pos[vertex, coord] through rasterize + interpolate + antialias against
    central differences with step h (a sizeable fraction of a pixel)."""
    H, W = res
    wts = _smooth_weights(H, W, attr.shape[-1], seed)

    def loss(p, aa=True):
        rast, _ = rastlit.rasterize(p, tri, res)
        col, _ = rastlit.interpolate(attr, rast, tri)
        if aa:
            col = rastlit.antialias(col, rast, p, tri)
        return (col * wts).sum()

    p = pos0.clone().requires_grad_(True)
    loss(p).backward()
    g = float(p.grad[0, vertex, coord])
    p2 = pos0.clone().requires_grad_(True)
    loss(p2, aa=False).backward()
    g_noaa = float(p2.grad[0, vertex, coord])
    d = torch.zeros_like(pos0)
    d[0, vertex, coord] = h
    with torch.no_grad():
        fd = float((loss(pos0 + d) - loss(pos0 - d)) / (2 * h))
    return g, fd, g_noaa


@pytest.mark.parametrize("coord", [0, 1])
def test_silhouette_gradient_matches_finite_differences(coord):
    # A flat-coloured triangle over a black background: the image depends on the vertex only
    # through coverage, so without antialias the gradient is zero; with it, it matches FD.
    pos = torch.tensor([[[-0.8, -0.7, 0.0, 1.0], [0.63, -0.45, 0.0, 1.0], [0.1, 0.77, 0.0, 1.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    attr = torch.tensor([[[0.9, 0.4]] * 3], dtype=torch.float64)
    res = (40, 40)
    for h in (0.02, 0.05):  # 0.4 and 1 pixel
        g, fd, g_noaa = _fd_check(pos, tri, attr, res, vertex=1, coord=coord, h=h)
        assert g_noaa == 0.0
        assert abs(fd) > 0.1
        assert g * fd > 0 and abs(g - fd) <= 0.15 * abs(fd), (h, g, fd)


def test_occlusion_gradient_matches_finite_differences():
    # A front triangle (colour A) over a larger back triangle (colour B) that fills the image:
    # moving a front vertex changes the image only through the occlusion edge.
    pos = torch.tensor(
        [[[-3.0, -3.0, 0.5, 1.0], [3.0, -3.0, 0.5, 1.0], [0.0, 3.0, 0.5, 1.0],
          [-0.6, -0.5, 0.0, 1.0], [0.55, -0.35, 0.0, 1.0], [-0.05, 0.62, 0.0, 1.0]]],
        dtype=torch.float64,
    )
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int32)
    attr = torch.tensor([[[0.2, 0.7]] * 3 + [[0.9, 0.1]] * 3], dtype=torch.float64)
    for vertex, coord in ((4, 1), (5, 0), (5, 1)):
        for h in (0.02, 0.05):
            g, fd, g_noaa = _fd_check(pos, tri, attr, (40, 40), vertex=vertex, coord=coord, h=h, seed=vertex)
            assert g_noaa == 0.0
            assert abs(fd) > 0.1
            assert g * fd > 0 and abs(g - fd) <= 0.15 * abs(fd), (vertex, coord, h, g, fd)


def _cube():
    v = torch.tensor([[x, y, z] for x in (-0.6, 0.6) for y in (-0.6, 0.6) for z in (-0.6, 0.6)], dtype=torch.float64)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    f = torch.tensor([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=torch.int32)
    ax, ay = 0.5, 0.7
    ry = torch.tensor([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]], dtype=torch.float64)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]], dtype=torch.float64)
    return v @ (rx @ ry).T, f


def test_closed_mesh_silhouette_gradient_matches_finite_differences():
    # A closed mesh (a cube seen obliquely): its outline is made of edges between front- and
    # back-facing triangles (the hash pairs every edge). Scale it about its centre and compare
    # the derivative of the loss with central differences.
    v, f = _cube()
    assert bool((rastlit.antialias_construct_topology_hash(f) >= 0).all())
    res = (48, 48)
    attr = torch.ones(1, v.shape[0], 1, dtype=torch.float64)
    wts = _smooth_weights(*res, 1, seed=3)

    def loss(scale, aa=True):
        p = _perspective(v * (1 + scale))[None]
        rast, _ = rastlit.rasterize(p, f, res)
        col, _ = rastlit.interpolate(attr, rast, f)
        if aa:
            col = rastlit.antialias(col, rast, p, f)
        return (col * wts).sum()

    s = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    loss(s).backward()
    s0 = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    loss(s0, aa=False).backward()
    assert float(s0.grad) == 0.0
    g = float(s.grad)
    for h in (0.02, 0.04):  # the outline moves by about 0.5 and 1 pixel
        with torch.no_grad():
            fd = float((loss(torch.tensor(h)) - loss(torch.tensor(-h))) / (2 * h))
        assert fd > 100
        assert abs(g - fd) <= 0.15 * fd, (h, g, fd)


# ------------------------------------------------------- dense meshes: the walk to the silhouette


def _dense_sphere(sub, res, scale=0.0, B=1, dtype=torch.float64):
    """An icosphere with ``20 * 4**sub`` triangles in B views (its rim triangles are thinner than
    a pixel on screen: the front pixel of an outline pair usually lies a few triangles inside)."""
    v, f = icosphere(sub, dtype=torch.float64)
    views = []
    for b in range(B):
        ang = 0.3 + 0.7 * b
        rot = torch.tensor([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]],
                           dtype=torch.float64)
        views.append(_perspective((v @ rot.T) * (1 + scale), shift=(0.05 + 0.1 * b, -0.03)))
    pos = torch.stack(views, 0).to(dtype)
    rast, _ = rastlit.rasterize(pos, f, res)
    return pos, f, rast


def _work(color, rast, pos, tri):
    hash_ = rastlit.antialias_construct_topology_hash(tri)
    _, work = torch.ops.rastlit.antialias_fwd(color, rast, pos, tri, hash_, 1.0)
    return work


def _walked_pairs(rast, work):
    """Pairs whose silhouette edge belongs to another triangle than the front pixel's."""
    n = 0
    ids = rast[..., 3].long() - 1
    for axis in (0, 1):
        code, found = work[..., 2 * axis], work[..., 2 * axis + 1]
        nb = torch.roll(ids, -1, dims=2 - axis)
        side = (code - 1) // 3
        front = torch.where(side == 1, nb, ids)
        n += int(((code > 0) & (found != front)).sum())
    return n


@pytest.mark.parametrize("sub,res", [(2, (40, 36)), (3, (36, 40))])
def test_walk_matches_reference_on_dense_spheres(sub, res):
    pos, tri, rast = _dense_sphere(sub, res, B=2)
    color = torch.rand(*rast.shape[:3], 2, generator=torch.Generator().manual_seed(sub), dtype=torch.float64)
    out = rastlit.antialias(color, rast, pos, tri)
    stats = {}
    ref = _reference(color, rast, pos, tri, stats=stats)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    work = _work(color, rast, pos, tri)
    assert int((work[..., 0::2] > 0).sum()) == stats["found"]
    # most silhouettes are found by walking, none hits the cap
    assert stats["walked"] > stats["found"] // 2 and _walked_pairs(rast, work) == stats["walked"]
    assert stats["capped"] == 0 and int((work[..., 0::2] == -1).sum()) == 0
    out32 = rastlit.antialias(color.float(), rast.float(), pos.float(), tri)
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=1e-5)


def test_walk_step_cap_on_a_sliver_strip():
    # A flat strip of 2 x 400 vertical slivers, 100 per pixel across: walks towards its left and
    # right boundaries (and between distant slivers) cross more triangles than the cap allows.
    # The kernel records those pairs as capped (code -1, no blend), exactly as the reference does.
    n = 400
    xs = torch.linspace(-0.5, 0.5, n + 1, dtype=torch.float64) + 0.00037  # no pixel centre on an edge
    verts = [[float(x), yv, 0.1, 1.0] for x in xs for yv in (-0.45, 0.45)]
    pos = torch.tensor(verts, dtype=torch.float64)[None]
    tri = torch.tensor([t for i in range(n) for t in ((2 * i, 2 * i + 2, 2 * i + 3), (2 * i, 2 * i + 3, 2 * i + 1))],
                       dtype=torch.int32)
    rast, _ = rastlit.rasterize(pos, tri, (16, 16))
    color = torch.rand(1, 16, 16, 1, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    stats = {}
    ref = _reference(color, rast, pos, tri, stats=stats)
    out = rastlit.antialias(color, rast, pos, tri)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    work = _work(color, rast, pos, tri)
    capped = int((work[..., 0::2] == -1).sum())
    assert capped == stats["capped"] > 10
    assert stats["found"] > 10 and stats["walked"] > 0  # top and bottom edges, and near the sides
    # capped pairs carry no gradient and the backward accepts their code
    c = color.clone().requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    rastlit.antialias(c, rast, p, tri).sum().backward()
    assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("sub,res", [(2, 64), (3, 96)])
def test_dense_sphere_scale_gradient_matches_finite_differences(sub, res):
    # The key test of the walk: with only the front pixel's own triangle examined, the scaling
    # gradient was 73% (icosphere(2)) and 91% (icosphere(3)) under finite differences at 64 px;
    # the walk finds the silhouette behind the sub-pixel rim triangles (now within ~1%).
    wts = _smooth_weights(res, res, 1, seed=11)

    def loss(scale, aa=True):
        p, f, rast = _dense_sphere(sub, (res, res), scale=scale)
        attr = torch.ones(1, p.shape[1], 1, dtype=torch.float64)
        col, _ = rastlit.interpolate(attr, rast, f)
        if aa:
            col = rastlit.antialias(col, rast, p, f)
        return (col * wts).sum()

    s = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    loss(s).backward()
    g = float(s.grad)
    for h in (0.01, 0.02):  # the outline moves by about 0.3 and 0.6 pixel
        with torch.no_grad():
            fd = float((loss(torch.tensor(h, dtype=torch.float64)) - loss(torch.tensor(-h, dtype=torch.float64)))
                       / (2 * h))
        assert fd > 1000
        assert abs(g - fd) <= 0.1 * fd, (sub, res, h, g, fd)


@pytest.mark.parametrize("sub", [3, 4])
def test_dense_sphere_outline_pairs_are_antialiased(sub):
    # Outline pairs (one pixel covered, one background) whose silhouette edge runs across them:
    # with one axis per edge, a circle's outline crosses ~1/sqrt(2) = 71% of them. Before the walk
    # 9% (icosphere(3)) and 3% (icosphere(4)) were antialiased here.
    pos, tri, rast = _dense_sphere(sub, (128, 128), dtype=torch.float32)
    work = _work(torch.zeros(1, 128, 128, 1), rast, pos, tri)[0]
    cov = rast[0, ..., 3] > 0
    edge_h, edge_v = cov[:, 1:] != cov[:, :-1], cov[1:] != cov[:-1]
    outline = int(edge_h.sum() + edge_v.sum())
    aa = int((work[:, :-1, 0] > 0)[edge_h].sum() + (work[:-1, :, 2] > 0)[edge_v].sum())
    assert outline > 300 and aa > 0.6 * outline, (aa, outline)
    assert int((work[..., 0::2] == -1).sum()) == 0  # the step cap is never hit


def test_gradcheck_antialias_color_and_pos():
    pos, tri, rast = _sphere_scene(B=2, res=(12, 14))
    hash_ = rastlit.antialias_construct_topology_hash(tri)
    color = torch.rand(*rast.shape[:3], 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    color.requires_grad_(True)
    p = pos.clone().requires_grad_(True)

    def f(c, q):
        return rastlit.antialias(c, rast, q, tri, hash_)

    with torch.no_grad():
        assert not torch.equal(f(color, p), color)
    assert torch.autograd.gradcheck(f, (color, p), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_gradcheck_antialias_dense_patch():
    # icosphere(3) at 16 px: triangles about a pixel wide, silhouettes found by walking.
    pos, tri, rast = _dense_sphere(3, (16, 16))
    hash_ = rastlit.antialias_construct_topology_hash(tri)
    color = torch.rand(1, 16, 16, 1, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    assert _walked_pairs(rast, _work(color, rast, pos, tri)) > 5
    color.requires_grad_(True)
    p = pos.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c, q: rastlit.antialias(c, rast, q, tri, hash_), (color, p), eps=1e-7,
                                    atol=1e-6, rtol=1e-5)


def test_pos_gradient_boost_scales_pos_gradient_only():
    pos, tri, rast = _sphere_scene(B=1, res=(16, 16))
    color = torch.rand(*rast.shape[:3], 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grads = []
    for boost in (1.0, 2.5):
        c = color.clone().requires_grad_(True)
        p = pos.clone().requires_grad_(True)
        rastlit.antialias(c, rast, p, tri, pos_gradient_boost=boost).square().sum().backward()
        grads.append((c.grad, p.grad))
    assert grads[0][1].abs().sum() > 0
    assert torch.equal(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[1][1], 2.5 * grads[0][1], rtol=1e-15, atol=0)
    assert torch.all(grads[0][1][..., 2] == 0)  # z carries no gradient


@pytest.mark.parametrize("boost", [float("nan"), float("inf"), "x"])
def test_pos_gradient_boost_must_be_a_finite_number(boost):
    pos, tri, rast = _sphere_scene(B=1, res=(8, 8))
    color = torch.zeros(*rast.shape[:3], 3, dtype=torch.float64)
    with pytest.raises(TypeError if boost == "x" else ValueError, match="pos_gradient_boost"):
        rastlit.antialias(color, rast, pos, tri, pos_gradient_boost=boost)


def test_backward_is_bitwise_deterministic_across_thread_counts():
    v, f = icosphere(2)
    pos = torch.stack([_perspective(v.double(), shift=(s, 0.0)) for s in (0.0, 0.2)], 0).float()
    shared = pos[0]
    rast, _ = rastlit.rasterize(pos, f, (64, 64))
    rast_r, _ = rastlit.rasterize(shared, f, (64, 64), ranges=torch.tensor([[0, f.shape[0]]] * 2, dtype=torch.int32))
    color = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(5))
    go = torch.randn(2, 64, 64, 3, generator=torch.Generator().manual_seed(6))
    old = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            res = []
            for p, r in ((pos, rast), (shared, rast_r)):
                c = color.clone().requires_grad_(True)
                q = p.clone().requires_grad_(True)
                out = rastlit.antialias(c, r, q, f)
                out.backward(go)
                res += [out, c.grad, q.grad]
            results.append(res)
    finally:
        torch.set_num_threads(old)
    assert results[0][2].abs().sum() > 0 and results[0][5].abs().sum() > 0
    for a, b in zip(*results):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- topology hash


def test_topology_hash_boundary_shared_and_non_manifold_edges():
    # Two triangles sharing edge (0, 2); then a third on (0, 2) makes it non-manifold, and a
    # degenerate triangle (repeated vertex) pairs with nothing.
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]], dtype=torch.int32)
    h = rastlit.antialias_construct_topology_hash(tri)
    # edge k of a triangle runs from its vertex k+1 to k+2
    assert h.dtype == torch.int32 and h.tolist() == [[-1, 3, -1, -1, 1, -1], [-1, -1, 1, -1, -1, 0]]
    tri3 = torch.tensor([[0, 1, 2], [0, 2, 3], [2, 0, 4], [5, 5, 1], [1, 5, 0]], dtype=torch.int32)
    h3 = rastlit.antialias_construct_topology_hash(tri3)
    assert h3[0, 1] == -2 and h3[1, 2] == -2 and h3[2, 2] == -2  # edge (0, 2): three triangles
    assert h3[0, 4] == -2 and h3[1, 5] == -2 and h3[2, 5] == -2
    assert h3[3].tolist() == [-2] * 6  # degenerate
    assert h3[4].tolist() == [-1, 2, -1, -1, 0, -1]  # edge (5, 1) is not shared with the degenerate triangle
    assert rastlit.antialias_construct_topology_hash(torch.zeros(0, 3, dtype=torch.int32)).shape == (0, 6)


def test_topology_hash_of_a_closed_mesh_pairs_every_edge():
    v, f = icosphere(1)
    h = rastlit.antialias_construct_topology_hash(f)
    assert bool((h >= 0).all())
    # the opposite vertex across edge k of t is the vertex of the neighbour not on the edge
    fl = f.tolist()
    for t in range(0, len(fl), 7):
        for k in range(3):
            a, b = fl[t][(k + 1) % 3], fl[t][(k + 2) % 3]
            nb = [u for u in range(len(fl)) if u != t and a in fl[u] and b in fl[u]]
            assert len(nb) == 1 and h[t, k] == (set(fl[nb[0]]) - {a, b}).pop() and h[t, 3 + k] == nb[0]
    # the neighbour relation is symmetric
    nbr = h[:, 3:].long()
    assert bool((nbr[nbr] == torch.arange(len(fl)).view(-1, 1, 1)).any(-1).all())


def test_non_manifold_edges_are_never_silhouettes():
    # Triangles 0 and 1 are the two halves of a square; triangle 2 is a fin on their shared
    # diagonal: the diagonal becomes non-manifold. Edges of the square's outline stay silhouettes.
    pos = torch.tensor([[[-0.55, -0.56, 0.2, 1], [0.47, -0.56, 0.2, 1], [0.47, 0.46, 0.2, 1], [-0.55, 0.46, 0.2, 1],
                         [0.38, -0.42, -0.5, 1]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 2, 4]], dtype=torch.int32)
    assert rastlit.antialias_construct_topology_hash(tri).tolist() == [
        [-1, -2, -1, -1, -2, -1], [-1, -1, -2, -1, -1, -2], [-1, -1, -2, -1, -1, -2]]
    rast, _ = rastlit.rasterize(pos, tri, (16, 16))
    assert set(rast[..., 3].unique().int().tolist()) == {0, 1, 2, 3}
    color = torch.rand(1, 16, 16, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    out = rastlit.antialias(color, rast, pos, tri)
    torch.testing.assert_close(out, _reference(color, rast, pos, tri), rtol=0, atol=1e-12)
    assert int((out != color).sum()) > 10
    # Treating the diagonal as a boundary instead (-1) would blend across it: -2 is what keeps it out.
    h = rastlit.antialias_construct_topology_hash(tri)
    as_boundary = rastlit.antialias(color, rast, pos, tri, torch.where(h == -2, -1, h))
    assert not torch.equal(as_boundary, out)


# ------------------------------------------------------------------------- registration


def test_opcheck_antialias():
    pos, tri, rast = _sphere_scene(B=2, res=(9, 11))
    hash_ = rastlit.antialias_construct_topology_hash(tri)
    color = torch.rand(2, 9, 11, 3, dtype=torch.float64, requires_grad=True)
    p = pos.clone().requires_grad_(True)
    torch.library.opcheck(torch.ops.rastlit.antialias_fwd.default, (color, rast, p, tri, hash_, 1.0))
    torch.library.opcheck(torch.ops.rastlit.antialias_fwd.default, (color, rast, p[0].detach(), tri, hash_, 2.0))
    _, work = torch.ops.rastlit.antialias_fwd(color.detach(), rast, pos, tri, hash_, 1.0)
    go = torch.randn(2, 9, 11, 3, dtype=torch.float64)
    torch.library.opcheck(torch.ops.rastlit.antialias_bwd.default, (color.detach(), rast, pos, tri, hash_, work, go))


def test_antialias_under_torch_compile():
    torch._dynamo.reset()
    pos, tri, rast = _sphere_scene(dtype=torch.float32, B=1, res=(12, 12))
    hash_ = rastlit.antialias_construct_topology_hash(tri)
    color = torch.rand(1, 12, 12, 3)

    def f(c, p):
        return rastlit.antialias(c, rast, p, tri, hash_).square().sum()

    p1 = pos.clone().requires_grad_(True)
    p2 = pos.clone().requires_grad_(True)
    f(color, p1).backward()
    torch.compile(f, fullgraph=True, backend="aot_eager")(color, p2).backward()
    assert torch.equal(p1.grad, p2.grad)


# ------------------------------------------------------------------------------ bad input


def test_antialias_rejects_bad_inputs():
    pos, tri, rast = _sphere_scene(dtype=torch.float32, B=2, res=(10, 12))
    color = torch.rand(2, 10, 12, 3)
    h = rastlit.antialias_construct_topology_hash(tri)
    with pytest.raises(ValueError, match=r"color must have shape \[B,H,W,C\]"):
        rastlit.antialias(color[0], rast, pos, tri, h)
    with pytest.raises(ValueError, match=r"rast must have shape \[2,10,12,4\]"):
        rastlit.antialias(color, rast[:, :9], pos, tri, h)
    with pytest.raises(ValueError, match=r"pos must have shape \[B,V,4\] with B = color.shape\[0\] = 2"):
        rastlit.antialias(color, rast, pos[:1], tri, h)
    with pytest.raises(ValueError, match=r"pos must have shape"):
        rastlit.antialias(color, rast, pos[..., :3], tri, h)
    with pytest.raises(TypeError, match="color must be float32"):
        rastlit.antialias(color.long(), rast, pos, tri, h)
    with pytest.raises(TypeError, match="pos must have the dtype of color"):
        rastlit.antialias(color, rast, pos.double(), tri, h)
    with pytest.raises(TypeError, match="tri must be int32"):
        rastlit.antialias(color, rast, pos, tri.long(), h)
    with pytest.raises(IndexError, match="tri holds vertex indices"):
        rastlit.antialias(color, rast, pos[:, :10], tri, h)
    with pytest.raises(ValueError, match=r"topology_hash must have shape \[T,6\] = \[81,6\] to match tri"):
        rastlit.antialias(color, rast, pos, tri, h[:-1])
    with pytest.raises(ValueError, match=r"topology_hash must have shape \[T,6\]"):
        rastlit.antialias(color, rast, pos, tri, h[:, :3])  # the old [T,3] table
    with pytest.raises(TypeError, match="topology_hash must be int32"):
        rastlit.antialias(color, rast, pos, tri, h.long())
    bad = h.clone()
    bad[0, 0] = 1000
    with pytest.raises(IndexError, match=r"topology_hash holds vertex indices \(columns 0-2\)"):
        rastlit.antialias(color, rast, pos, tri, bad)
    bad = h.clone()
    bad[0, 4] = 81  # a triangle index out of range: caught before any walk reads it
    with pytest.raises(IndexError, match=r"topology_hash holds triangle indices \(columns 3-5\) in \[-1, 81\]"):
        rastlit.antialias(color, rast, pos, tri, bad)
    bad[0, 4] = -3
    with pytest.raises(IndexError, match=r"topology_hash holds triangle indices"):
        rastlit.antialias(color, rast, pos, tri, bad)
    bad_rast = rast.clone()
    bad_rast[0, 0, 0, 3] = 82.0
    with pytest.raises(IndexError, match="triangle id"):
        rastlit.antialias(color, bad_rast, pos, tri, h)
    bad_rast[0, 0, 0, 3] = float("nan")
    with pytest.raises(IndexError, match="triangle id"):
        rastlit.antialias(color, bad_rast, pos, tri, h)
    with pytest.raises(TypeError, match="tri must be int32"):
        rastlit.antialias_construct_topology_hash(tri.long())
    with pytest.raises(ValueError, match=r"tri must have shape \[T,3\]"):
        rastlit.antialias_construct_topology_hash(tri[:, :2])
    with pytest.raises(IndexError, match="negative vertex index"):
        rastlit.antialias_construct_topology_hash(tri - 1)
    _, work = torch.ops.rastlit.antialias_fwd(color, rast, pos, tri, h, 1.0)
    with pytest.raises(ValueError, match="work must be the second output of antialias_fwd"):
        torch.ops.rastlit.antialias_bwd(color, rast, pos, tri, h, work + 7, color)
    bad_work = work.clone()
    bad_work[0, 0, 0, 1] = 81  # a found-triangle id out of range
    with pytest.raises(ValueError, match=r"triangle ids in \[-1, 81\)"):
        torch.ops.rastlit.antialias_bwd(color, rast, pos, tri, h, bad_work, color)
    with pytest.raises(ValueError, match=r"work must have shape \[2,10,12,4\]"):
        torch.ops.rastlit.antialias_bwd(color, rast, pos, tri, h, work[..., :2], color)
    with pytest.raises(ValueError, match=r"grad_out must have shape \[2,10,12,3\]"):
        torch.ops.rastlit.antialias_bwd(color, rast, pos, tri, h, work, color[..., :2])


def test_antialias_empty_noncontiguous_and_nonfinite():
    pos, tri, rast = _sphere_scene(dtype=torch.float32, B=2, res=(10, 12))
    color = torch.rand(2, 10, 12, 3)
    ref = rastlit.antialias(color, rast, pos, tri)
    assert rastlit.antialias(color[:0], rast[:0], pos[:0], tri).shape == (0, 10, 12, 3)
    assert rastlit.antialias(color[..., :0], rast, pos, tri).shape == (2, 10, 12, 0)
    empty_rast = torch.zeros(1, 4, 4, 4)
    c = torch.rand(1, 4, 4, 2)
    assert torch.equal(rastlit.antialias(c, empty_rast, torch.zeros(1, 0, 4), torch.zeros(0, 3, dtype=torch.int32)), c)
    cnc = color.transpose(1, 2).contiguous().transpose(1, 2)
    assert not cnc.is_contiguous()
    assert torch.equal(rastlit.antialias(cnc, rast, pos, tri), ref)
    # A NaN vertex: pairs whose front triangle uses it are skipped, nothing crashes or spreads NaN.
    pn = pos.clone()
    pn[0, 0, 0] = float("nan")
    out = rastlit.antialias(color, rast, pn, tri)
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("scene", ["sphere_occluder", "dense_sphere"])
def test_cuda_antialias_matches_cpu(deterministic, scene):
    if scene == "dense_sphere":  # silhouettes found by walking across sub-pixel rim triangles
        pos, tri, rast = _dense_sphere(4, (40, 44), B=2, dtype=torch.float32)
    else:
        pos, tri, rast = _sphere_scene(dtype=torch.float32, B=2, res=(40, 44))
    color = torch.rand(2, 40, 44, 3, generator=torch.Generator().manual_seed(8))
    go = torch.randn(2, 40, 44, 3, generator=torch.Generator().manual_seed(9))

    def run(device):
        c = color.detach().to(device).requires_grad_(True)
        p = pos.detach().to(device).requires_grad_(True)
        out = rastlit.antialias(c, rast.to(device), p, tri.to(device))
        out.backward(go.to(device))
        return out.cpu(), c.grad.cpu(), p.grad.cpu()

    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        cpu, gpu = run("cpu"), run("cuda")
        if deterministic:
            assert all(torch.equal(a, b) for a, b in zip(run("cuda"), gpu))
    finally:
        torch.use_deterministic_algorithms(old)
    torch.testing.assert_close(gpu[0], cpu[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu[1], cpu[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu[2], cpu[2], rtol=1e-4, atol=1e-4)
    bad = rast.clone().cuda()
    bad[0, 0, 0, 3] = float(tri.shape[0] + 5)
    with pytest.raises(IndexError, match="triangle id"):
        rastlit.antialias(color.cuda(), bad, pos.cuda(), tri.cuda())
