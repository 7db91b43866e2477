"""rastlit.mesh: the Mesh container, primitives (closed, outward-wound, UV-consistent), normals,
point sampling, PNG textures (through Pillow) and file IO round trips through trimesh."""

from __future__ import annotations

import math
import os
import struct
import sys
import zlib

import numpy as np
import pytest
import torch

from rastlit import mesh as M

D = torch.float64


# ---------------------------------------------------------------------------------------------
# Mesh container
# ---------------------------------------------------------------------------------------------

def _tri():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=D)
    return v, torch.tensor([[0, 1, 2]], dtype=torch.int32)


def test_mesh_basic_and_to():
    v, f = _tri()
    m = M.Mesh(v, f.long(), vertex_colors=torch.rand(3, 3, dtype=D), uv=v[:, :2].clone(),
               uv_faces=f, texture=torch.rand(4, 5, 3, dtype=D))
    assert m.faces.dtype == torch.int32 and m.uv_faces.dtype == torch.int32
    assert (m.num_verts, m.num_faces) == (3, 1)
    m32 = m.to(dtype=torch.float32)
    assert m32.verts.dtype == torch.float32 and m32.texture.dtype == torch.float32
    assert m32.faces.dtype == torch.int32
    torch.testing.assert_close(m.vertex_normals(), torch.tensor([[0.0, 0, 1]] * 3, dtype=D))
    torch.testing.assert_close(m.face_normals(), torch.tensor([[0.0, 0, 1]], dtype=D))


@pytest.mark.parametrize("kw, msg", [
    (dict(verts=torch.zeros(3, 2)), r"Mesh.verts must have shape \[V,3\]"),
    (dict(verts=torch.zeros(3, 3, dtype=torch.int32)), r"Mesh.verts must be a floating-point"),
    (dict(faces=torch.zeros(1, 3)), r"Mesh.faces must be an integer tensor"),
    (dict(faces=torch.zeros(1, 4, dtype=torch.int32)), r"Mesh.faces must have shape \[F,3\]"),
    (dict(faces=torch.tensor([[0, 1, 3]])), r"Mesh.faces indices must be in \[0, num_verts=3\)"),
    (dict(faces=torch.tensor([[0, -1, 2]])), r"Mesh.faces indices must be in"),
    (dict(uv=torch.zeros(3, 2)), r"Mesh.uv and Mesh.uv_faces must be given together"),
    (dict(uv=torch.zeros(3, 3), uv_faces=torch.tensor([[0, 1, 2]])), r"Mesh.uv must have shape \[Vt,2\]"),
    (dict(uv=torch.zeros(2, 2), uv_faces=torch.tensor([[0, 1, 2]])),
     r"Mesh.uv_faces indices must be in \[0, num_uv=2\)"),
    (dict(uv=torch.zeros(3, 2), uv_faces=torch.tensor([[0, 1, 2], [0, 1, 2]])),
     r"Mesh.uv_faces must have shape \[F=1,3\]"),
    (dict(texture=torch.zeros(4, 4, 3)), r"Mesh.texture needs Mesh.uv"),
    (dict(uv=torch.zeros(3, 2), uv_faces=torch.tensor([[0, 1, 2]]), texture=torch.zeros(4, 4)),
     r"Mesh.texture must have shape \[Ht,Wt,C\]"),
    (dict(vertex_colors=torch.zeros(2, 3)), r"Mesh.vertex_colors must have shape \[V=3,C\]"),
    (dict(normals=torch.zeros(3, 2)), r"Mesh.normals must have shape \[V,3\]"),
    (dict(verts=np.zeros((3, 3))), r"Mesh.verts must be a torch.Tensor"),
])
def test_mesh_validation(kw, msg):
    v, f = _tri()
    args = dict(verts=v.float(), faces=f)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        M.Mesh(**args)


def test_split_uv_seams():
    m = M.uv_sphere(4, 6, dtype=D)
    s = m.split_uv_seams()
    assert torch.equal(s.uv_faces, s.faces) and s.num_verts > m.num_verts
    torch.testing.assert_close(s.verts[s.faces.long()], m.verts[m.faces.long()], rtol=0, atol=0)
    torch.testing.assert_close(s.uv[s.uv_faces.long()], m.uv[m.uv_faces.long()], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------

def _closed_manifold(f):
    """Every directed edge exactly once and its reverse present: closed, consistently wound."""
    f = f.long()
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = int(f.max()) + 1
    k, kr = e[:, 0] * n + e[:, 1], e[:, 1] * n + e[:, 0]
    return len(torch.unique(k)) == len(k) and torch.equal(torch.sort(k).values, torch.sort(kr).values)


CLOSED = {
    "icosphere": lambda: M.Mesh(*M.icosphere(2, dtype=D)),
    "uv_sphere": lambda: M.uv_sphere(8, 12, dtype=D),
    "cube": lambda: M.cube(dtype=D),
    "torus": lambda: M.torus(1.0, 0.3, 24, 12, dtype=D),
    "bumpy_sphere": lambda: M.bumpy_sphere(3, seed=3, dtype=D),
    "torus_knot": lambda: M.torus_knot(2, 3, n=96, m=8, dtype=D),
    "torus_knot35": lambda: M.torus_knot(3, 5, n=160, m=8, dtype=D),
}


@pytest.mark.parametrize("name", list(CLOSED))
def test_closed_primitives_outward(name):
    m = CLOSED[name]()
    assert m.faces.dtype == torch.int32 and m.verts.dtype == D
    assert _closed_manifold(m.faces), "not closed or not consistently wound"
    assert M.signed_volume(m.verts, m.faces) > 0
    assert (M.face_areas(m.verts, m.faces) > 0).all()
    n = M.face_normals(m.verts, m.faces)
    cen = m.verts[m.faces.long()].mean(1)
    if name in ("icosphere", "uv_sphere", "cube", "bumpy_sphere"):  # star-shaped about the origin
        assert ((n * cen).sum(1) > 0).all()
    if name == "torus":  # away from the tube's centre circle (radius R in the xz plane)
        ring = torch.nn.functional.pad(cen[:, [0, 2]], (0, 0))
        ring = ring / ring.norm(dim=1, keepdim=True)
        c = torch.stack([ring[:, 0], torch.zeros_like(ring[:, 0]), ring[:, 1]], 1)
        assert ((n * (cen - c)).sum(1) > 0).all()
    if name.startswith("torus_knot"):  # away from the centre of each ring of m vertices
        vn = M.vertex_normals(m.verts, m.faces)
        c = m.verts.view(-1, 8, 3).mean(1, keepdim=True)
        assert ((vn.view(-1, 8, 3) * (m.verts.view(-1, 8, 3) - c)).sum(-1) > 0).all()


def test_primitive_sizes_and_volumes():
    assert M.icosphere(3)[1].shape == (1280, 3)
    s = M.uv_sphere(16, 32, dtype=D)
    assert s.num_verts == 2 + 15 * 32 and s.num_faces == 2 * 16 * 32 - 2 * 32
    assert s.uv.shape == (17 * 33, 2)
    assert abs(M.signed_volume(M.uv_sphere(64, 128, dtype=D).verts, M.uv_sphere(64, 128, dtype=D).faces)
               - 4 / 3 * math.pi) < 0.01
    c = M.cube(dtype=D)
    assert (c.num_verts, c.num_faces) == (8, 12) and float(M.signed_volume(c.verts, c.faces)) == pytest.approx(8.0)
    t = M.torus(1.0, 0.25, 96, 48, dtype=D)
    assert float(M.signed_volume(t.verts, t.faces)) == pytest.approx(2 * math.pi**2 * 0.25**2, rel=0.01)
    p = M.plane(3, dtype=D)
    assert (p.num_verts, p.num_faces) == (16, 18)
    torch.testing.assert_close(p.uv, (p.verts[:, :2] + 1) / 2)
    assert (M.face_normals(p.verts, p.faces)[:, 2] == 1).all()
    k = M.torus_knot(2, 3, n=64, m=6)
    assert (k.num_verts, k.num_faces) == (384, 768)


def test_bumpy_sphere_seeded():
    a, b, c = M.bumpy_sphere(2, seed=1), M.bumpy_sphere(2, seed=1), M.bumpy_sphere(2, seed=2)
    assert torch.equal(a.verts, b.verts) and not torch.equal(a.verts, c.verts)
    r = a.verts.norm(dim=1)
    assert r.max() > 1.05 and r.min() < 0.99  # bumps and dents


def _uv_area(m):
    t = m.uv.double()[m.uv_faces.long()]
    a, b = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    return 0.5 * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


@pytest.mark.parametrize("name", ["uv_sphere", "cube", "torus", "plane"])
def test_uvs_not_mirrored_and_cover(name):
    m = {"uv_sphere": lambda: M.uv_sphere(6, 8, dtype=D), "cube": lambda: M.cube(dtype=D),
         "torus": lambda: M.torus(n=8, m=6, dtype=D), "plane": lambda: M.plane(4, dtype=D)}[name]()
    area = _uv_area(m)
    assert (area > 0).all(), "UV triangles must be counter-clockwise like the faces seen from outside"
    expect = {"uv_sphere": 1.0, "cube": 1.0, "torus": 1.0, "plane": 1.0}[name]
    # sphere: the pole triangles cover half of their UV quad
    if name == "uv_sphere":
        expect = 1.0 - 2 * 8 * (1 / 8 * 1 / 6) / 2
    assert float(area.sum()) == pytest.approx(expect)
    assert m.uv.min() >= 0 and m.uv.max() <= 1


def test_uv_sphere_and_torus_uv_match_positions():
    s = M.uv_sphere(6, 8, dtype=D)
    uv = s.uv[s.uv_faces.long()].reshape(-1, 2)
    p = s.verts[s.faces.long()].reshape(-1, 3)
    th, ph = math.pi * (1 - uv[:, 1]), 2 * math.pi * uv[:, 0]
    q = torch.stack([th.sin() * ph.cos(), th.cos(), -th.sin() * ph.sin()], 1)
    torch.testing.assert_close(p, q)  # at the poles sin(theta) = 0 hides the arbitrary u
    t = M.torus(1.0, 0.3, 8, 6, dtype=D)
    uv = t.uv[t.uv_faces.long()].reshape(-1, 2)
    p = t.verts[t.faces.long()].reshape(-1, 3)
    a, b = 2 * math.pi * uv[:, 0], 2 * math.pi * uv[:, 1]
    rad = 1 + 0.3 * b.cos()
    torch.testing.assert_close(p, torch.stack([rad * a.cos(), 0.3 * b.sin(), -rad * a.sin()], 1))


def test_cube_atlas_tiles():
    c = M.cube(dtype=D)
    n = M.face_normals(c.verts, c.faces)
    uvc = c.uv[c.uv_faces.long()].mean(1)
    tile = (uvc[:, 0] * 3).floor() + 3 * (1 - (uvc[:, 1] * 2).floor())
    axes = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=D)
    torch.testing.assert_close(n, axes[tile.long()])


# ---------------------------------------------------------------------------------------------
# Normals, volume, normalization, sampling
# ---------------------------------------------------------------------------------------------

def test_vertex_normals_area_weighted():
    # two faces at vertex 0: one in z=0 (area 2), one in x=0 (area 0.5)
    v = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 1], [0, -1, 0]], dtype=D)
    f = torch.tensor([[0, 1, 2], [0, 3, 4]], dtype=torch.int32)
    n = M.vertex_normals(v, f)
    # face 1: cross((0,0,1), (0,-1,0)) = (1,0,0) with length 1 = 2*area
    expect0 = torch.tensor([1.0, 0, 4.0], dtype=D) / math.sqrt(17)
    torch.testing.assert_close(n[0], expect0)
    torch.testing.assert_close(n[1], torch.tensor([0.0, 0, 1], dtype=D))
    torch.testing.assert_close(n[3], torch.tensor([1.0, 0, 0], dtype=D))
    # unused vertex -> 0; batched
    v2 = torch.cat([v, torch.ones(1, 3, dtype=D)])
    nb = M.vertex_normals(torch.stack([v2, 2 * v2]), f)
    assert (nb[:, 5] == 0).all()
    torch.testing.assert_close(nb[0, :5], n)
    torch.testing.assert_close(nb[1, :5], n)


def test_vertex_normals_sphere_and_gradcheck():
    v, f = M.icosphere(0, dtype=D)
    assert (M.vertex_normals(v, f) - v).norm(dim=1).max() < 1e-12  # symmetric fans
    v, f = M.icosphere(3, dtype=D)
    assert (M.vertex_normals(v, f) - v).norm(dim=1).max() < 0.02
    vt = torch.tensor([[0.0, 0, 0], [1, 0.1, 0], [0.2, 1, 0], [0.1, 0.3, 1]], dtype=D, requires_grad=True)
    ft = torch.tensor([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]], dtype=torch.int32)
    assert torch.autograd.gradcheck(lambda x: M.vertex_normals(x, ft), (vt,))
    assert torch.autograd.gradcheck(lambda x: M.face_normals(x, ft), (vt,))
    assert torch.autograd.gradcheck(lambda x: M.signed_volume(x, ft), (vt,))


def test_normalize_to_unit_box():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(50, 3, generator=g, dtype=D) * torch.tensor([4.0, 1.0, 2.0], dtype=D) + 7
    vn, c, s = M.normalize_to_unit_box(v)
    lo, hi = vn.min(0).values, vn.max(0).values
    torch.testing.assert_close(lo + hi, torch.zeros(3, dtype=D), atol=1e-12, rtol=0)
    assert float((hi - lo).max()) == pytest.approx(2.0)
    torch.testing.assert_close(vn / s + c, v)
    # aspect ratio kept
    ext = v.max(0).values - v.min(0).values
    torch.testing.assert_close((hi - lo) / (hi - lo)[0], ext / ext[0])
    vn1, _, s1 = M.normalize_to_unit_box(torch.ones(4, 3, dtype=D))
    assert float(s1) == 1.0 and (vn1 == 0).all()
    with pytest.raises(ValueError, match=r"verts must have shape \[V,3\]"):
        M.normalize_to_unit_box(torch.zeros(0, 3))


def test_sample_points():
    # two triangles with areas 1 and 3 in the z=0 plane, and a third tilted one of area 0
    v = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 0], [-3, 0, 0], [0, -2, 0], [5, 5, 5]], dtype=D)
    f = torch.tensor([[0, 1, 2], [3, 4, 5], [0, 0, 6]], dtype=torch.int32)
    g = torch.Generator().manual_seed(0)
    p, n = M.sample_points(v, f, 20000, generator=g)
    p2, _ = M.sample_points(v, f, 20000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(p, p2)
    assert p.shape == (20000, 3) and (p[:, 2] == 0).all()
    in1 = (p[:, 0] >= 0) & (p[:, 1] >= 0)
    assert float(in1.double().mean()) == pytest.approx(0.25, abs=0.015)
    # inside the triangles
    q = p[in1]
    assert (q[:, 0] / 2 + q[:, 1] <= 1 + 1e-12).all()
    r = p[~in1]
    assert (r[:, 0] <= 0).all() and (r[:, 1] <= 0).all() and (-r[:, 0] / 3 - r[:, 1] / 2 <= 1 + 1e-12).all()
    # uniform: the mean is the centroid
    torch.testing.assert_close(q.mean(0), torch.tensor([2 / 3, 1 / 3, 0], dtype=D), atol=0.02, rtol=0)
    torch.testing.assert_close(n, torch.tensor([0.0, 0, 1], dtype=D).expand_as(n))
    # gradient for fixed samples: linear in verts with barycentric weights
    vt = v.clone().requires_grad_(True)

    def fn(x):
        return M.sample_points(x, f, 7, generator=torch.Generator().manual_seed(3))

    assert torch.autograd.gradcheck(fn, (vt,))
    with pytest.raises(ValueError, match="positive total area"):
        M.sample_points(v, f[2:], 5)


# ---------------------------------------------------------------------------------------------
# PNG textures
# ---------------------------------------------------------------------------------------------

def _png_with_filters(img: np.ndarray) -> bytes:
    """Test-side PNG encoder that uses each of the five filter types in turn (row y: y % 5)."""
    h, w, c = img.shape
    a = img.reshape(h, w * c).astype(np.int32)
    rows = []
    for y in range(h):
        ft = y % 5
        cur, prev = a[y], (a[y - 1] if y else np.zeros(w * c, np.int32))
        left = np.concatenate([np.zeros(c, np.int32), cur[:-c]])
        ul = np.concatenate([np.zeros(c, np.int32), prev[:-c]])
        if ft == 0:
            pred = np.zeros_like(cur)
        elif ft == 1:
            pred = left
        elif ft == 2:
            pred = prev
        elif ft == 3:
            pred = (left + prev) >> 1
        else:
            pp = left + prev - ul
            pa, pb, pc = abs(pp - left), abs(pp - prev), abs(pp - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, ul))
        rows.append(bytes([ft]) + ((cur - pred) & 255).astype(np.uint8).tobytes())
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_png_decode_all_filters(tmp_path, c):
    img = np.random.default_rng(c).integers(0, 256, (11, 7, c), dtype=np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(_png_with_filters(img))
    tex = M.load_texture(path)
    assert tex.shape == (11, 7, c) and tex.dtype == torch.float32
    # row 0 of the texture is the bottom row of the file
    np.testing.assert_array_equal(np.round(tex.numpy() * 255).astype(np.uint8), img[::-1])


def test_texture_roundtrip_orientation(tmp_path):
    from PIL import Image

    tex = torch.randint(0, 256, (5, 6, 3)).double() / 255
    tex[0] = torch.tensor([1.0, 0, 0])  # v = 0 row red
    M.save_texture(tex, tmp_path / "t.png")
    back = M.load_texture(tmp_path / "t.png")
    torch.testing.assert_close(back.double(), tex, atol=1e-7, rtol=0)
    with Image.open(tmp_path / "t.png") as im:
        assert im.format == "PNG" and im.mode == "RGB"
        raw = np.asarray(im)
    assert (raw[-1] == [255, 0, 0]).all(), "the v = 0 row is the bottom row of the image file"
    with pytest.raises(ValueError, match=r"texture must have shape \[Ht,Wt,C\]"):
        M.save_texture(torch.zeros(2, 2, 5), tmp_path / "x.png")


@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_texture_roundtrip_channels(tmp_path, c):
    from PIL import Image

    tex = torch.randint(0, 256, (7, 5, c)).float() / 255
    M.save_texture(tex if c > 1 else tex[..., 0], tmp_path / "t.png")  # [H,W] is one channel
    with Image.open(tmp_path / "t.png") as im:
        assert im.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    back = M.load_texture(tmp_path / "t.png")
    assert back.shape == (7, 5, c) and back.dtype == torch.float32
    torch.testing.assert_close(back, tex, atol=1e-6, rtol=0)


def test_texture_16bit_and_palette_pngs_load(tmp_path):
    from PIL import Image

    g16 = np.random.default_rng(0).integers(0, 65536, (4, 6), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    t = M.load_texture(tmp_path / "g16.png")
    assert t.shape == (4, 6, 1)
    np.testing.assert_allclose(t[..., 0].numpy(), g16[::-1] / 65535.0, atol=1e-6)

    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    ids = np.random.default_rng(1).integers(0, 4, (5, 3), dtype=np.uint8)
    im = Image.new("P", (3, 5))
    im.putdata(ids.reshape(-1).tolist())
    im.putpalette(palette.reshape(-1).tolist())
    im.save(tmp_path / "p.png")
    t = M.load_texture(tmp_path / "p.png")
    assert t.shape == (5, 3, 3)
    np.testing.assert_array_equal(np.round(t.numpy() * 255).astype(np.uint8), palette[ids][::-1])
    im.save(tmp_path / "pa.png", transparency=1)  # palette entry 1 transparent: RGBA
    t = M.load_texture(tmp_path / "pa.png")
    assert t.shape == (5, 3, 4)
    np.testing.assert_array_equal(t[..., 3].numpy(), (ids != 1)[::-1].astype(np.float32))


def test_texture_corrupt_files(tmp_path):
    M.save_texture(torch.rand(16, 16, 3), tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    idat = data.index(b"IDAT") + 8
    (tmp_path / "bad.png").write_bytes(data[:idat] + bytes(64) + data[idat + 64:])  # zeroed deflate data
    for name in ("trunc.png", "junk.png", "bad.png"):
        with pytest.raises(ValueError, match=rf"could not read image file .*{name}"):
            M.load_texture(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        M.load_texture(tmp_path / "missing.png")


# ---------------------------------------------------------------------------------------------
# File IO through trimesh
# ---------------------------------------------------------------------------------------------

trimesh = pytest.importorskip("trimesh")


def _corners(m, field="verts", faces="faces"):
    return getattr(m, field)[getattr(m, faces).long()]


def test_obj_roundtrip_uv_and_colors(tmp_path):
    m = M.uv_sphere(5, 7)
    m = M.Mesh(m.verts, m.faces, vertex_colors=torch.rand(m.num_verts, 3), uv=m.uv, uv_faces=m.uv_faces)
    M.save_mesh(m, tmp_path / "s.obj")
    b = M.load_mesh(tmp_path / "s.obj")
    assert b.num_faces == m.num_faces
    # trimesh indexes UVs per vertex: seam vertices come back split; corners are exact
    torch.testing.assert_close(_corners(b), _corners(m), rtol=0, atol=0)
    torch.testing.assert_close(_corners(b, "uv", "uv_faces"), _corners(m, "uv", "uv_faces"), rtol=0, atol=0)
    torch.testing.assert_close(_corners(b, "vertex_colors"), _corners(m, "vertex_colors"), rtol=0, atol=1 / 255)


def test_obj_roundtrip_exact_positions_and_faces(tmp_path):
    v, f = M.icosphere(2)
    for dtype in (torch.float32, torch.float64):
        M.save_mesh(M.Mesh(v.to(dtype), f), tmp_path / "i.obj")
        b = M.load_mesh(tmp_path / "i.obj", dtype=dtype)
        assert torch.equal(b.verts, v.to(dtype)) and torch.equal(b.faces, f)
        assert b.uv is None and b.vertex_colors is None and b.texture is None


def test_obj_textured_roundtrip(tmp_path):
    c = M.cube()
    tex = torch.randint(0, 256, (6, 9, 3)).float() / 255
    m = M.Mesh(c.verts, c.faces, uv=c.uv, uv_faces=c.uv_faces, texture=tex)
    M.save_mesh(m, tmp_path / "cube.obj")
    assert {"cube.obj", "cube.mtl", "cube.png"} <= set(os.listdir(tmp_path))
    b = M.load_mesh(tmp_path / "cube.obj")
    assert b.texture is not None
    torch.testing.assert_close(b.texture, tex, rtol=0, atol=1e-6)
    torch.testing.assert_close(_corners(b), _corners(m), rtol=0, atol=0)
    torch.testing.assert_close(_corners(b, "uv", "uv_faces"), _corners(m, "uv", "uv_faces"), rtol=0, atol=0)


def test_ply_roundtrip(tmp_path):
    v, f = M.icosphere(1)
    col = torch.randint(0, 256, (v.shape[0], 4)).float() / 255
    M.save_mesh(M.Mesh(v, f, vertex_colors=col), tmp_path / "c.ply")
    b = M.load_mesh(tmp_path / "c.ply")
    assert torch.equal(b.verts, v) and torch.equal(b.faces, f)
    torch.testing.assert_close(b.vertex_colors, col, rtol=0, atol=1e-6)
    p = M.plane(2)
    M.save_mesh(p, tmp_path / "p.ply")
    b = M.load_mesh(tmp_path / "p.ply")
    assert torch.equal(b.verts, p.verts) and torch.equal(b.faces, p.faces) and torch.equal(b.uv, p.uv)


def test_glb_roundtrip_and_scene(tmp_path):
    s = M.uv_sphere(4, 6)
    M.save_mesh(s, tmp_path / "s.glb")
    b = M.load_mesh(tmp_path / "s.glb")
    torch.testing.assert_close(_corners(b), _corners(s), rtol=0, atol=0)
    torch.testing.assert_close(_corners(b, "uv", "uv_faces"), _corners(s, "uv", "uv_faces"), rtol=0, atol=0)
    (tmp_path / "g").mkdir()
    M.save_mesh(s, tmp_path / "g" / "s.gltf")
    assert os.listdir(tmp_path / "g") == ["s.gltf"]  # self-contained (embedded buffers)
    b = M.load_mesh(tmp_path / "g" / "s.gltf")
    torch.testing.assert_close(_corners(b), _corners(s), rtol=0, atol=0)
    v, f = M.icosphere(0)
    col = torch.rand(v.shape[0], 3)
    M.save_mesh(M.Mesh(v, f, vertex_colors=col), tmp_path / "c.glb")
    b = M.load_mesh(tmp_path / "c.glb")
    assert torch.equal(b.verts, v) and torch.equal(b.faces, f)
    torch.testing.assert_close(b.vertex_colors, col, rtol=0, atol=0.5 / 255 + 1e-6)
    # a scene of two meshes (one translated) is flattened and concatenated
    a = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    c = trimesh.Trimesh(v.numpy() * 0.5, f.numpy()[:5], process=False)
    sc = trimesh.Scene()
    sc.add_geometry(a, node_name="a")
    sc.add_geometry(c, node_name="c", transform=trimesh.transformations.translation_matrix([3, 0, 0]))
    sc.export(tmp_path / "two.glb")
    b = M.load_mesh(tmp_path / "two.glb")
    assert b.num_faces == f.shape[0] + 5 and b.num_verts == 2 * v.shape[0]
    assert float(b.verts[:, 0].max()) == pytest.approx(3 + 0.5 * float(v[:, 0].max()), abs=1e-6)


def test_obj_quads_triangulated(tmp_path):
    (tmp_path / "q.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nv 2 1 0\nf 1 2 3 4\nf 2 5 6 3\n")
    b = M.load_mesh(tmp_path / "q.obj")
    assert b.num_faces == 4 and b.num_verts == 6
    assert float(M.face_areas(b.verts, b.faces).sum()) == pytest.approx(2.0)
    assert (M.face_normals(b.verts, b.faces)[:, 2] == 1).all()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.obj"):
        M.load_mesh(tmp_path / "missing.obj")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00\x01")
    with pytest.raises(ValueError, match=r"could not read mesh file .*bad\.ply"):
        M.load_mesh(bad)
    junk = tmp_path / "junk.obj"
    junk.write_bytes(b"this is not \x00 an obj\n")
    with pytest.raises(ValueError, match=r"junk\.obj.*no triangle faces"):
        M.load_mesh(junk)
    pc = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.rand(20, 3)).export(pc)
    with pytest.raises(ValueError, match=r"cloud\.ply.*no triangle faces.*PointCloud"):
        M.load_mesh(pc)
    with pytest.raises(ValueError, match=r"unsupported extension '\.xyz'"):
        M.save_mesh(M.cube(), tmp_path / "a.xyz")


def test_io_import_error_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trimesh", None)
    with pytest.raises(ImportError, match="pip install trimesh"):
        M.load_mesh(tmp_path / "x.obj")


def test_library_imports_no_training_stack_nor_trimesh():
    """The rastlit.mesh modules, rastlit.image and losses.py import neither Lightning nor Hydra,
    and trimesh and Pillow only inside functions; rastlit.image does not import rastlit.mesh
    (static check: a subprocess import would cost seconds of torch start-up)."""
    import ast
    import importlib

    import rastlit.image as I
    import rastlit.losses as L

    mods = [importlib.import_module(f"rastlit.mesh.{n}") for n in ("structures", "primitives", "io")]
    for mod in (M, *mods, I, L):
        tree = ast.parse(open(mod.__file__).read())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name.split(".")[0] for n in top for a in n.names if isinstance(n, ast.Import)}
        names |= {(n.module or "").split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
        assert not names & {"trimesh", "lightning", "pytorch_lightning", "hydra", "omegaconf", "PIL"}, names
        every = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        every |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not every & {"lightning", "pytorch_lightning", "hydra", "omegaconf"}, every
    tree = ast.parse(open(I.__file__).read())
    froms = {(n.level, n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(mod.split(".")[0] == "mesh" or mod.startswith("rastlit.mesh") for _, mod in froms), froms


def test_package_exports():
    """Everything public (and what the rest of the repository uses) is importable from
    ``rastlit.mesh`` itself; __all__ names only what exists."""
    from rastlit.mesh import (Mesh, atlas_size, bake_vertex_colors, bumpy_sphere, cube, face_areas,  # noqa: F401
                              face_normals, icosphere, load_mesh, load_texture, normalize_to_unit_box,
                              plane, sample_points, save_mesh, save_texture, signed_volume, torus,
                              torus_knot, triangle_atlas, uv_sphere, vertex_normals)

    assert len(M.__all__) == len(set(M.__all__)) == 21
    assert all(hasattr(M, n) for n in M.__all__)
    assert M.Mesh.__module__ == "rastlit.mesh.structures" and M.torus.__module__ == "rastlit.mesh.primitives"
