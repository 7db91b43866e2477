"""rastlit.losses: hand-computed cases, brute-force float64 references, gradcheck, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rastlit import losses as L
from rastlit import mesh as M

D = torch.float64


def _tri():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=D)
    return v, torch.tensor([[0, 1, 2]], dtype=torch.int32)


def _tet(jitter=0.0, seed=0):
    v = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=D)
    f = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]], dtype=torch.int32)
    if jitter:
        v = v + jitter * torch.randn(4, 3, generator=torch.Generator().manual_seed(seed), dtype=D)
    return v, f


def _flat_grid(n=5, jitter=0.15, seed=0):
    p = M.plane(n, dtype=D)
    v = p.verts.clone()
    g = torch.Generator().manual_seed(seed)
    inner = (v[:, :2].abs() < 1 - 1e-9).all(1)
    v[inner, :2] += jitter * (2 / n) * (torch.rand(int(inner.sum()), 2, generator=g, dtype=D) - 0.5)
    return v, p.faces, inner


# ---------------------------------------------------------------------------------------------
# Laplacian
# ---------------------------------------------------------------------------------------------

def test_mesh_tet_is_closed_and_outward():
    v, f = _tet()
    assert M.signed_volume(v, f) > 0


def test_laplacian_single_triangle_by_hand():
    v, f = _tri()
    # uniform: vertex 0 -> (.5,.5,0); vertex 1 -> (-1,.5,0); vertex 2 -> (.5,-1,0)
    assert float(L.laplacian_smoothing(v, f, "uniform")) == pytest.approx((math.sqrt(0.5) + 2 * math.sqrt(1.25)) / 3)
    # cot: right angle at v0 (cot 0, weighs edge 1-2), 45 degrees at v1 and v2 (cot 1)
    # vertex 0: ((v1-v0) + (v2-v0)) / 2; vertex 1: (v0 - v1) / 1; vertex 2: (v0 - v2) / 1
    lap = L.mesh_laplacian(v, f, "cot")
    torch.testing.assert_close(lap, torch.tensor([[0.5, 0.5, 0], [-1, 0, 0], [0, -1, 0]], dtype=D))
    assert float(L.laplacian_smoothing(v, f, "cotangent")) == pytest.approx((math.sqrt(0.5) + 2) / 3)
    # cotcurv: sum_j w_ij (v_j - v_i) / (4 * 0.5)
    torch.testing.assert_close(L.mesh_laplacian(v, f, "cotcurv"),
                               torch.tensor([[0.5, 0.5, 0], [-0.5, 0, 0], [0, -0.5, 0]], dtype=D))


def test_laplacian_flat_grid_interior_zero():
    v, f, inner = _flat_grid()
    lap = L.mesh_laplacian(v, f, "cot")
    assert lap[inner].abs().max() < 1e-12          # cotangent Laplacian vanishes on a flat mesh
    assert lap[~inner].norm(dim=1).min() > 1e-3     # but not on the boundary
    assert L.mesh_laplacian(v, f, "uniform")[inner].abs().max() > 1e-3  # uniform does not
    # unjittered regular grid: the uniform Laplacian is zero inside too (6 symmetric neighbours)
    v0, f0, inner0 = _flat_grid(jitter=0)
    assert L.mesh_laplacian(v0, f0, "uniform")[inner0].abs().max() < 1e-12


def _dense_reference(v, f, method):
    """PyTorch3D's matrix formulation in float64 numpy: Heron areas, cot = (B^2+C^2-A^2)/(4 area)."""
    v = v.detach().numpy().astype(np.float64)
    f = f.numpy().astype(np.int64)
    V = len(v)
    if method == "uniform":
        A = np.zeros((V, V))
        for a, b, c in f:
            for i, j in ((a, b), (b, c), (c, a)):
                A[i, j] = A[j, i] = 1
        deg = A.sum(1)
        return (A @ v) / np.maximum(deg, 1)[:, None] - v * (deg > 0)[:, None]
    W = np.zeros((V, V))
    area_v = np.zeros(V)
    for tri in f:
        p = v[tri]
        la, lb, lc = (np.linalg.norm(p[1] - p[2]), np.linalg.norm(p[0] - p[2]), np.linalg.norm(p[0] - p[1]))
        s = (la + lb + lc) / 2
        area = math.sqrt(s * (s - la) * (s - lb) * (s - lc))
        cot = [(lb**2 + lc**2 - la**2) / (4 * area), (la**2 + lc**2 - lb**2) / (4 * area),
               (la**2 + lb**2 - lc**2) / (4 * area)]
        for k in range(3):
            i, j = tri[(k + 1) % 3], tri[(k + 2) % 3]
            W[i, j] += cot[k]
            W[j, i] += cot[k]
        area_v[tri] += area
    lv = W @ v - W.sum(1)[:, None] * v
    if method == "cot":
        return lv / W.sum(1)[:, None]
    return lv / (4 * area_v)[:, None]


@pytest.mark.parametrize("method", ["uniform", "cot", "cotcurv"])
def test_laplacian_against_dense_reference(method):
    m = M.bumpy_sphere(1, bumps=5, seed=1, dtype=D)
    v = m.verts + 0.02 * torch.randn(m.verts.shape, generator=torch.Generator().manual_seed(0), dtype=D)
    ref = _dense_reference(v, m.faces, method)
    lap = L.mesh_laplacian(v, m.faces, method)
    np.testing.assert_allclose(lap.numpy(), ref, rtol=1e-9, atol=1e-12)
    loss = L.laplacian_smoothing(v, m.faces, method)
    assert float(loss) == pytest.approx(np.linalg.norm(ref, axis=1).mean(), rel=1e-10)
    # batched: the mean over the batch
    lb = L.laplacian_smoothing(torch.stack([v, 2 * v]), m.faces, method)
    lb_ref = (float(loss) + float(L.laplacian_smoothing(2 * v, m.faces, method))) / 2
    assert float(lb) == pytest.approx(lb_ref, rel=1e-12)
    # gradient: the weights are constants (PyTorch3D's no_grad), so d loss / d v is that of
    # mean_i |(Lmat v)_i| with Lmat the fixed-weight operator at v (built here independently)
    vv = v.clone().requires_grad_(True)
    L.laplacian_smoothing(vv, m.faces, method).backward()
    Lmat = _fixed_operator(v, m.faces, method)
    np.testing.assert_allclose((Lmat @ v).numpy(), ref, rtol=1e-9, atol=1e-12)
    v2 = v.clone().requires_grad_(True)
    (Lmat @ v2).norm(dim=1).mean().backward()
    torch.testing.assert_close(vv.grad, v2.grad, rtol=1e-9, atol=1e-12)


def _fixed_operator(v, f, method):
    """[V,V] matrix of the Laplacian with weights evaluated at v (dot/cross cotangents)."""
    vn = v.detach().numpy()
    fn = f.numpy().astype(np.int64)
    Vn = len(vn)
    W = np.zeros((Vn, Vn))
    area_v = np.zeros(Vn)
    for tri in fn:
        p = vn[tri]
        if method == "uniform":
            for i, j in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
                W[i, j] = W[j, i] = 1
            continue
        for k in range(3):
            a, b = p[(k + 1) % 3] - p[k], p[(k + 2) % 3] - p[k]
            c = a @ b / np.linalg.norm(np.cross(a, b))
            i, j = tri[(k + 1) % 3], tri[(k + 2) % 3]
            W[i, j] += c
            W[j, i] += c
        area_v[tri] += 0.5 * np.linalg.norm(np.cross(p[1] - p[0], p[2] - p[0]))
    den = 4 * area_v if method == "cotcurv" else W.sum(1)
    return torch.from_numpy((W - np.diag(W.sum(1))) / den[:, None])


def test_laplacian_uniform_gradcheck():
    v, f = _tet(0.1)
    vv = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.laplacian_smoothing(x, f, "uniform"), (vv,))
    vb = torch.stack([v, _tet(0.2, seed=1)[0]]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.laplacian_smoothing(x, f, "uniform"), (vb,))


def test_laplacian_isolated_vertex_and_errors():
    v, f = _tri()
    v4 = torch.cat([v, torch.tensor([[5.0, 5, 5]], dtype=D)])
    lap = L.mesh_laplacian(v4, f, "uniform")
    assert (lap[3] == 0).all()
    assert (L.mesh_laplacian(v4, f, "cot")[3] == 0).all()
    with pytest.raises(ValueError, match="method must be 'uniform', 'cot'"):
        L.laplacian_smoothing(v, f, "bogus")
    with pytest.raises(ValueError, match=r"verts must have shape \[V,3\] or \[B,V,3\]"):
        L.laplacian_smoothing(v[:, :2], f)
    with pytest.raises(ValueError, match=r"faces must have shape \[F,3\]"):
        L.laplacian_smoothing(v, f[:, :2])
    with pytest.raises(ValueError, match=r"faces indices must be in \[0, V=3\)"):
        L.edge_length_loss(v, f + 1)
    with pytest.raises(ValueError, match="faces must be an integer tensor"):
        L.normal_consistency(v, f.double())


# ---------------------------------------------------------------------------------------------
# Normal consistency, edge length
# ---------------------------------------------------------------------------------------------

def test_normal_consistency_by_hand():
    v, f, _ = _flat_grid()
    assert float(L.normal_consistency(v, f)) == pytest.approx(0.0, abs=1e-15)
    # regular tetrahedron: adjacent outward normals have cos = -1/3
    v, f = _tet()
    assert float(L.normal_consistency(v, f)) == pytest.approx(4 / 3)
    # two triangles folded at 90 degrees along the x axis: one interior edge
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=D)
    f = torch.tensor([[0, 1, 2], [1, 0, 3]], dtype=torch.int32)
    assert float(L.normal_consistency(v, f)) == pytest.approx(1.0)
    # a single triangle: no shared edge -> 0
    assert float(L.normal_consistency(*_tri())) == 0.0
    # non-manifold edge (0,1) shared by three faces: normals +z, +y... pairs averaged
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0]], dtype=D)
    f = torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]], dtype=torch.int32)
    n = M.face_normals(v, f)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expect = np.mean([1 - float(n[a] @ n[b]) for a, b in pairs])
    assert float(L.normal_consistency(v, f)) == pytest.approx(expect)


def test_normal_consistency_many_faces_on_one_edge():
    # 6 faces fanned around edge (0,1): all 15 pairs
    ang = torch.arange(6, dtype=D) * (2 * math.pi / 6) + 0.3
    wing = torch.stack([0.5 * torch.ones(6, dtype=D), ang.cos(), ang.sin()], 1)
    v = torch.cat([torch.tensor([[0.0, 0, 0], [1, 0, 0]], dtype=D), wing])
    f = torch.tensor([[0, 1, 2 + k] for k in range(6)], dtype=torch.int32)
    n = M.face_normals(v, f)
    expect = np.mean([1 - float(n[a] @ n[b]) for a in range(6) for b in range(a + 1, 6)])
    assert float(L.normal_consistency(v, f)) == pytest.approx(expect)


def test_normal_consistency_gradcheck_and_batch():
    v, f = _tet(0.2)
    vv = v.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.normal_consistency(x, f), (vv,))
    vb = torch.stack([v, _tet(0.3, seed=1)[0]])
    expect = (L.normal_consistency(vb[0], f) + L.normal_consistency(vb[1], f)) / 2
    torch.testing.assert_close(L.normal_consistency(vb, f), expect)


def test_edge_length_loss():
    v, f = _tri()
    assert float(L.edge_length_loss(v, f)) == pytest.approx(4 / 3)
    assert float(L.edge_length_loss(v, f, target_length=1.0)) == pytest.approx((math.sqrt(2) - 1) ** 2 / 3)
    # shared edges count once: a square of two triangles has 5 edges (4 of length 1, one sqrt2)
    p = M.plane(1, size=1.0, dtype=D)
    assert float(L.edge_length_loss(p.verts, p.faces)) == pytest.approx(6 / 5)
    vv, ff = _tet(0.1)
    vv = vv.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.edge_length_loss(x, ff, 0.7), (vv,))
    assert torch.autograd.gradcheck(lambda x: L.edge_length_loss(x, ff), (vv,))
    vb = torch.stack([v, 3 * v])
    assert float(L.edge_length_loss(vb, f)) == pytest.approx((4 / 3 + 9 * 4 / 3) / 2)


# ---------------------------------------------------------------------------------------------
# Chamfer, F-score
# ---------------------------------------------------------------------------------------------

def _brute(x, y):
    """float64 numpy: (squared nn distance of each x in y, nn index)."""
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return d.min(1), d.argmin(1)


def _points(B, N, M_, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, 3, generator=g, dtype=D)
    y = torch.rand(B, M_, 3, generator=g, dtype=D) * 1.2 - 0.1
    nx = torch.randn(B, N, 3, generator=g, dtype=D)
    ny = torch.randn(B, M_, 3, generator=g, dtype=D)
    return x, y, nx, ny


def test_chamfer_against_brute_force():
    x, y, nx, ny = _points(3, 57, 41, 0)
    dist, nterm = L.chamfer_distance(x, y, nx, ny, chunk=8, batch_reduction=None)
    for b in range(3):
        xn, yn = x[b].numpy(), y[b].numpy()
        dx, ix = _brute(xn, yn)
        dy, iy = _brute(yn, xn)
        assert float(dist[b]) == pytest.approx(dx.mean() + dy.mean(), rel=1e-12)

        def ncos(a, bb):
            return np.abs((a * bb).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(bb, axis=1)))

        ref_n = ((1 - ncos(nx[b].numpy(), ny[b].numpy()[ix])).mean()
                 + (1 - ncos(ny[b].numpy(), nx[b].numpy()[iy])).mean())
        assert float(nterm[b]) == pytest.approx(ref_n, rel=1e-12)
    d_mean, n_mean = L.chamfer_distance(x, y, nx, ny)
    assert float(d_mean) == pytest.approx(float(dist.mean()), rel=1e-14)
    assert float(n_mean) == pytest.approx(float(nterm.mean()), rel=1e-14)
    d1, n1 = L.chamfer_distance(x[0], y[0], single_directional=True)
    assert n1 is None and float(d1) == pytest.approx(_brute(x[0].numpy(), y[0].numpy())[0].mean(), rel=1e-12)
    # unbatched inputs give a scalar; a batch of 1 broadcasts
    assert L.chamfer_distance(x[0], y[0])[0].shape == ()
    db, _ = L.chamfer_distance(x[:1], y, batch_reduction=None)
    assert float(db[2]) == pytest.approx(float(L.chamfer_distance(x[0], y[2])[0]), rel=1e-14)
    # float32 agrees with the float64 result
    d32, _ = L.chamfer_distance(x.float(), y.float(), batch_reduction=None)
    torch.testing.assert_close(d32.double(), dist, rtol=1e-5, atol=1e-7)


def test_chamfer_identical_and_gradcheck():
    x, y, nx, ny = _points(1, 6, 5, 1)
    assert float(L.chamfer_distance(x, x)[0]) == 0.0
    xx, yy = x[0].clone().requires_grad_(True), y[0].clone().requires_grad_(True)
    nxx, nyy = nx[0].clone().requires_grad_(True), ny[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: L.chamfer_distance(a, b, chunk=2)[0], (xx, yy))
    assert torch.autograd.gradcheck(lambda a, b, na, nb: L.chamfer_distance(a, b, na, nb)[1], (xx, yy, nxx, nyy))


def test_chamfer_errors():
    x = torch.rand(5, 3)
    with pytest.raises(ValueError, match=r"x must have shape \[N,3\] or \[B,N,3\]"):
        L.chamfer_distance(torch.rand(5, 2), x)
    with pytest.raises(ValueError, match=r"batch sizes of x \[2, 5, 3\] and y \[3, 5, 3\] differ"):
        L.chamfer_distance(torch.rand(2, 5, 3), torch.rand(3, 5, 3))
    with pytest.raises(ValueError, match="at least one point"):
        L.chamfer_distance(torch.rand(0, 3), x)
    with pytest.raises(ValueError, match="both x_normals and y_normals"):
        L.chamfer_distance(x, x, x_normals=x)
    with pytest.raises(ValueError, match=r"x_normals \[1, 4, 3\] must match its points \[1, 5, 3\]"):
        L.chamfer_distance(x, x, x_normals=x[:4], y_normals=x)
    with pytest.raises(ValueError, match="batch_reduction must be"):
        L.chamfer_distance(x, x, batch_reduction="max")
    with pytest.raises(ValueError, match="threshold must be > 0"):
        L.fscore(x, x, 0.0)


def test_fscore_against_brute_force():
    x, y, _, _ = _points(2, 80, 60, 2)
    thr = 0.12
    f, p, r = L.fscore(x, y, thr, batch_reduction=None, chunk=16)
    for b in range(2):
        dx = np.sqrt(_brute(x[b].numpy(), y[b].numpy())[0])
        dy = np.sqrt(_brute(y[b].numpy(), x[b].numpy())[0])
        pr, rc = (dx < thr).mean(), (dy < thr).mean()
        assert float(p[b]) == pytest.approx(pr) and float(r[b]) == pytest.approx(rc)
        assert float(f[b]) == pytest.approx(2 * pr * rc / (pr + rc))
    fm, pm, rm = L.fscore(x, y, thr)
    assert float(fm) == pytest.approx(float(f.mean()))
    # identical sets: 1; far apart: 0 (and no division by zero)
    assert [float(t) for t in L.fscore(x[0], x[0], 1e-6)] == [1.0, 1.0, 1.0]
    assert [float(t) for t in L.fscore(x[0], x[0] + 10, 0.5)] == [0.0, 0.0, 0.0]
    # a prediction covering half of the target: precision 1, recall 1/2
    tgt = torch.cat([x[0], x[0] + 5])
    f1, p1, r1 = L.fscore(x[0], tgt, 1e-3)
    assert (float(p1), float(r1), float(f1)) == pytest.approx((1.0, 0.5, 2 / 3))


# ---------------------------------------------------------------------------------------------
# Silhouette IoU
# ---------------------------------------------------------------------------------------------

def test_silhouette_iou():
    a = torch.zeros(2, 4, 4, 1, dtype=D)
    b = torch.zeros(2, 4, 4, 1, dtype=D)
    a[0, :2] = 1.0    # 8 pixels
    b[0, :, :2] = 1.0  # 8 pixels, 4 shared -> 4/12
    a[1, 1:3, 1:3] = 0.9
    b[1, 1:3, 1:3] = 1.0  # identical masks above threshold
    iou = L.silhouette_iou(a, b, batch_reduction=None)
    torch.testing.assert_close(iou, torch.tensor([1 / 3, 1.0], dtype=D))
    assert float(L.silhouette_iou(a, b)) == pytest.approx((1 / 3 + 1) / 2)
    # soft: sum(pt) / sum(p + t - pt); binary masks give the thresholded value
    soft = L.silhouette_iou(a, b, threshold=None, batch_reduction=None)
    assert float(soft[0]) == pytest.approx(1 / 3)
    assert float(soft[1]) == pytest.approx(4 * 0.9 / (4 * (0.9 + 1 - 0.9)))
    # [H,W] input, empty silhouettes -> 1
    z = torch.zeros(3, 3)
    assert float(L.silhouette_iou(z, z)) == 1.0 and float(L.silhouette_iou(z, z, threshold=None)) == 1.0
    p = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=D).requires_grad_(True)
    t = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(1), dtype=D)
    assert torch.autograd.gradcheck(lambda q: L.silhouette_iou(q, t, threshold=None), (p,))
    with pytest.raises(ValueError, match="must have the same shape"):
        L.silhouette_iou(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"pred_alpha must have shape \[H,W\], \[B,H,W\] or \[B,H,W,1\]"):
        L.silhouette_iou(torch.zeros(2, 3, 3, 3), torch.zeros(2, 3, 3, 3))


def test_bitwise_deterministic_across_thread_counts():
    m = M.bumpy_sphere(3, seed=2)
    x, y = torch.rand(3000, 3, generator=torch.Generator().manual_seed(0)), M.sample_points(
        m.verts, m.faces, 2000, torch.Generator().manual_seed(1))[0]
    old = torch.get_num_threads()
    outs = []
    try:
        for nt in (1, 2):
            torch.set_num_threads(nt)
            v = m.verts.clone().requires_grad_(True)
            xx = x.clone().requires_grad_(True)
            loss = (L.laplacian_smoothing(v, m.faces, "cot") + L.normal_consistency(v, m.faces)
                    + L.edge_length_loss(v, m.faces) + M.vertex_normals(v, m.faces).sum()
                    + L.chamfer_distance(xx, y)[0])
            loss.backward()
            outs.append((loss.detach(), v.grad, xx.grad))
    finally:
        torch.set_num_threads(old)
    for a, b in zip(*outs):
        assert torch.equal(a, b)
