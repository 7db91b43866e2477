"""rastlit.mesh.triangle_atlas / bake_vertex_colors: a per-triangle UV atlas (in [0,1], no two
triangles covering or bilinearly reading the same texel, a >= 1.5 texel gutter) and vertex
colours baked into a texture that renders like the vertex colours and survives OBJ (+ MTL + PNG)
and GLB round trips, read back by rastlit and by trimesh itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rastlit
from rastlit import mesh as M
from rastlit.camera import look_at, perspective, transform_points


def _clip(uv: torch.Tensor) -> torch.Tensor:
    return torch.cat([uv * 2 - 1, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])], 1).contiguous()


def _sample(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear lookups of ``tex [H,W,C]`` (row 0 at v = 0) at ``uv [N,2]``."""
    return rastlit.texture(tex[None].float().contiguous(), uv.float().view(1, 1, -1, 2).contiguous(),
                           filter_mode="linear", boundary_mode="clamp")[0, 0]


def _point_segment_distance(p, a, b):
    ab = b - a
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
    return (p - (a + t[..., None] * ab)).norm(dim=-1)


def _min_gap(tri: torch.Tensor) -> float:
    """Smallest distance between two distinct triangles ``tri [F,3,2]`` that do not intersect:
    the least vertex-to-edge distance in either direction."""
    F = tri.shape[0]
    a, b = tri, tri.roll(-1, 1)                      # edges (a_k, b_k) of each triangle
    p = tri[:, None, :, None, :]                     # vertices of i
    d = _point_segment_distance(p, a[None, :, None], b[None, :, None])  # [i, j, vertex, edge]
    d = d.amin((2, 3))
    d = torch.minimum(d, d.T) + torch.eye(F, dtype=d.dtype) * 1e9
    return float(d.min())


# ---------------------------------------------------------------------------------------------
# The atlas
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("F, size", [(1, 7), (2, 7), (37, 64), (99, 75)])
def test_triangle_atlas_layout(F, size):
    uv, uvf = M.triangle_atlas(F, size)
    assert uv.dtype == torch.float32 and uvf.dtype == torch.int32
    assert uv.shape == (3 * F, 2) and uvf.shape == (F, 3)
    assert uv.min() >= 0 and uv.max() <= 1
    tri = uv.double()[uvf.long()] * size             # texel units
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    assert (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0).all(), "counter-clockwise in (u, v)"
    sides = (tri - tri.roll(-1, 1)).norm(dim=-1)
    assert sides.min() >= 3.0
    if F > 1:
        assert _min_gap(tri) >= 1.5
    # each triangle alone (range mode): no texel centre is covered twice, and covered texels of
    # different triangles are never 8-neighbours (bilinear lookups cannot mix two triangles)
    ranges = torch.stack([torch.arange(F), torch.ones(F, dtype=torch.int64)], 1).to(torch.int32)
    rast, _ = rastlit.rasterize(_clip(uv), uvf, (size, size), ranges=ranges)
    cov = rast[..., 3] > 0                            # [F,size,size]
    assert (cov.sum(0) <= 1).all()
    assert (cov.sum((1, 2)) >= 2).all(), "every triangle covers texels"
    near = torch.nn.functional.max_pool2d(cov[:, None].float(), 3, 1, 1)[:, 0]
    assert (near.sum(0)[cov.any(0)] == 1).all()
    # the texels a bilinear lookup reads (weight > 0) at points all over a triangle, edges and
    # corners included, are never read from another triangle
    n = 24
    a, b = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = a + b <= n
    w = torch.stack([a[keep], b[keep], n - a[keep] - b[keep]], 1).double() / n
    p = torch.einsum("sk,fkd->fsd", w, tri).reshape(-1, 2) - 0.5   # texel-centre coordinates
    lo, fr = p.floor().long(), p - p.floor()
    owner = torch.arange(F).repeat_interleave(w.shape[0])
    keys = []
    for dx in (0, 1):
        for dy in (0, 1):
            wt = (fr[:, 0] if dx else 1 - fr[:, 0]) * (fr[:, 1] if dy else 1 - fr[:, 1])
            t = (lo[:, 1] + dy) * size + lo[:, 0] + dx
            keys.append((t * F + owner)[wt > 1e-9])
    texel_owner = torch.unique(torch.cat(keys))       # (texel, triangle) pairs
    texel = texel_owner.div(F, rounding_mode="floor")
    assert len(torch.unique(texel)) == len(texel), "a texel read by two triangles"
    assert texel.min() >= 0 and texel.max() < size * size
    # drawn together, each texel keeps the id of the one triangle covering it
    rast1, _ = rastlit.rasterize(_clip(uv)[None], uvf, (size, size))
    ids = (cov * torch.arange(1, F + 1)[:, None, None]).sum(0)
    assert torch.equal(rast1[0, ..., 3].round().long(), ids)


def test_triangle_atlas_too_small():
    with pytest.raises(ValueError, match=r"size=6 is too small for 2 faces.*use size >= 7"):
        M.triangle_atlas(2, 6)
    with pytest.raises(ValueError, match=r"size=64 is too small for 1000 faces.*use size >= (\d+)") as e:
        M.triangle_atlas(1000, 64)
    need = int(str(e.value).rsplit(">= ", 1)[1])
    M.triangle_atlas(1000, need)
    for F, size in ((1, 0), (-1, 8), (2, 7.5)):
        with pytest.raises(ValueError, match="must be an int"):
            M.triangle_atlas(F, size)
    uv, uvf = M.triangle_atlas(0, 4)
    assert uv.shape == (0, 2) and uvf.shape == (0, 3)
    with pytest.raises(ValueError, match="too small"):
        M.bake_vertex_colors(*M.icosphere(2), torch.rand(162, 3), size=64)


# ---------------------------------------------------------------------------------------------
# Baking
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def baked():
    v, f = M.icosphere(1)
    col = torch.rand(v.shape[0], 3, generator=torch.Generator().manual_seed(0))
    return v, f, col, M.bake_vertex_colors(v, f, col, size=128)


def test_bake_values_and_no_bleeding(baked):
    v, f, col, m = baked
    assert m.texture.shape == (128, 128, 3) and m.texture.dtype == torch.float32
    assert torch.equal(m.verts, v) and torch.equal(m.faces, f) and m.vertex_colors is None
    assert torch.isfinite(m.texture).all() and m.texture.min() >= 0 and m.texture.max() <= 1
    # random points in every atlas triangle, edges and corners included: bilinear lookups give
    # the barycentric interpolation, and never leave the range of the face's own colours
    g = torch.Generator().manual_seed(1)
    w = torch.rand(f.shape[0], 64, 3, generator=g) ** 3
    w[:, :3] = torch.eye(3)                                   # the corners
    w[:, 3:6] = torch.tensor([[0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]])  # edge midpoints
    w = w / w.sum(-1, keepdim=True)
    uvt = m.uv[m.uv_faces.long()]                             # [F,3,2]
    ct = col[f.long()]                                        # [F,3,3]
    got = _sample(m.texture, torch.einsum("fnk,fkd->fnd", w, uvt).reshape(-1, 2)).view(f.shape[0], 64, 3)
    want = torch.einsum("fnk,fkd->fnd", w, ct)
    lo, hi = ct.amin(1, keepdim=True), ct.amax(1, keepdim=True)
    assert ((got >= lo - 1e-5) & (got <= hi + 1e-5)).all(), "a neighbouring triangle's colour bled in"
    # one texel is ~1/10 of a leg: the dilated border is off by about that much at most
    assert (got - want).abs().max() < 0.15 and (got - want).abs().mean() < 0.01
    # at the centroids (deep inside) the lookups are exact
    torch.testing.assert_close(_sample(m.texture, uvt.mean(1)), ct.mean(1), atol=1e-5, rtol=0)


def test_bake_gradients_and_channels():
    v, f = M.icosphere(0)
    col = torch.rand(v.shape[0], 1, dtype=torch.float64, requires_grad=True)
    m = M.bake_vertex_colors(v, f, col, size=40)
    assert m.texture.shape == (40, 40, 1) and m.texture.dtype == torch.float64
    m.texture.sum().backward()
    assert col.grad is not None and (col.grad > 0).all()
    with pytest.raises(ValueError, match=r"Mesh.vertex_colors must have shape \[V=12,C\]"):
        M.bake_vertex_colors(v, f, torch.rand(11, 3), size=40)


def _render_views(verts, faces, attr_fn, res=64):
    """Two views of a unit-sized object; ``attr_fn(rast)`` gives ``[B,H,W,C]`` colours."""
    out = []
    for eye in ((2.4, 1.0, 1.6), (-1.2, -2.0, 1.8)):
        mvp = perspective(45.0, 1.0, 0.1, 10.0) @ look_at(eye, (0.0, 0.0, 0.0))
        rast, _ = rastlit.rasterize(transform_points(mvp, verts)[None].contiguous(), faces, (res, res))
        out.append((attr_fn(rast), rast[..., 3] > 0))
    return out


def _render_textured(m):
    def fn(rast):
        uv, _ = rastlit.interpolate(m.uv[None].float().contiguous(), rast, m.uv_faces)
        return rastlit.texture(m.texture[None].float().contiguous(), uv, filter_mode="linear")
    return _render_views(m.verts, m.faces, fn)


def _check_centroids(tex, uv_corners, col_corners, atol):
    got = _sample(tex, uv_corners.mean(1))
    assert (got - col_corners.mean(1)).abs().max() <= atol


def test_bake_roundtrip_obj_glb_and_renders(baked, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    v, f, col, m = baked
    # the baked mesh renders like the vertex colours
    ref = _render_views(v, f, lambda rast: rastlit.interpolate(col[None], rast, f)[0])
    for (a, cov), (b, cov_b) in zip(ref, _render_textured(m)):
        assert torch.equal(cov, cov_b) and cov.sum() > 500
        assert (a - b).abs()[cov].mean() < 0.01
    tol = 2 / 255 + 1e-5
    for ext in ("obj", "glb"):
        M.save_mesh(m, tmp_path / f"baked.{ext}")
        # rastlit's loader: per-vertex UVs (seams split), the same corners, the same texture
        b = M.load_mesh(tmp_path / f"baked.{ext}")
        assert b.texture is not None and b.texture.shape == (128, 128, 3)
        torch.testing.assert_close(b.texture, m.texture, atol=0.5 / 255 + 1e-6, rtol=0)
        torch.testing.assert_close(b.verts[b.faces.long()], v[f.long()], atol=0, rtol=0)
        torch.testing.assert_close(b.uv[b.uv_faces.long()], m.uv[m.uv_faces.long()], atol=1e-6, rtol=0)
        _check_centroids(b.texture, b.uv[b.uv_faces.long()], col[f.long()], tol)
        for (a, cov), (c, _) in zip(ref, _render_textured(b)):
            assert (a - c).abs()[cov].mean() < 0.01
        # trimesh on its own: its UVs and the PIL image of its material (top-down)
        t = trimesh.load(tmp_path / f"baked.{ext}", process=False, force="mesh")
        assert isinstance(t, trimesh.Trimesh) and t.visual.kind == "texture"
        tf = np.asarray(t.faces)
        np.testing.assert_allclose(np.asarray(t.vertices)[tf], v[f.long()].numpy(), atol=1e-6)
        mat = t.visual.material
        img = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
        arr = np.asarray(img.convert("RGB"), dtype=np.float32)[::-1].copy() / 255
        uvt = torch.from_numpy(np.asarray(t.visual.uv, dtype=np.float64)[tf])
        _check_centroids(torch.from_numpy(arr), uvt, col[f.long()], tol)


@pytest.mark.parametrize("F", [1, 2, 3, 10, 161, 320, 10000])
@pytest.mark.parametrize("cell", [8, 13])
def test_atlas_size_gives_cells_of_the_asked_size(F, cell):
    """atlas_size(F, cell) is the smallest triangle_atlas side whose grid of two-face cells holds F
    faces with cells of exactly `cell` texels."""
    size = M.atlas_size(F, cell)
    g = size // cell
    assert size == g * cell and 2 * g * g >= F and 2 * (g - 1) ** 2 < F
    uv, _ = M.triangle_atlas(F, size)
    # the first face's lower-left corner: one texel (the margin) inside its cell
    assert torch.allclose(uv[0], torch.tensor([1.0, 1.0]) / size)
    with pytest.raises(ValueError, match="cell must be an int >= 8"):
        M.atlas_size(F, 7)
