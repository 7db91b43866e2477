"""rastlit.nn layers and MeshRenderer."""

import pytest
import torch

import rastlit
from rastlit import nn as rnn
from rastlit.camera import PerspectiveCamera
from rastlit.mesh import Mesh, bumpy_sphere, cube, uv_sphere
from rastlit.shading import DirectionalLight


def _clip_scene(B=2):
    m = bumpy_sphere(2, seed=0)
    cams = PerspectiveCamera.orbit(B, radius=3.0, elevation_deg=15.0, resolution=(24, 32))
    return m, cams, cams.project(m.verts)


def test_layers_match_functional_ops_and_show_settings():
    m, cams, clip = _clip_scene()
    raster = rnn.Rasterize((24, 32), grad_db=False)
    interp = rnn.Interpolate(diff_attrs=[0])
    rast, db = raster(clip, m.faces)
    r2, d2 = rastlit.rasterize(clip, m.faces, (24, 32), grad_db=False)
    assert torch.equal(rast, r2) and torch.equal(db, d2)
    out, da = interp(m.verts, rast, m.faces, db)
    o2, a2 = rastlit.interpolate(m.verts, rast, m.faces, db, diff_attrs=[0])
    assert torch.equal(out, o2) and torch.equal(da, a2)
    assert "resolution=(24, 32)" in repr(raster) and "grad_db=False" in repr(raster)
    assert "diff_attrs=[0]" in repr(interp)
    peel = rnn.DepthPeel((24, 32), num_layers=2)
    rasts, _ = peel(clip, m.faces)
    assert torch.equal(rasts[0], rast)
    assert (rasts[1][..., 3] > 0).any()  # the back of the sphere
    with pytest.raises(ValueError, match="resolution"):
        rnn.Rasterize((0, 3))
    with pytest.raises(ValueError, match="diff_attrs"):
        rnn.Interpolate(diff_attrs="some")


def test_layers_compose_in_a_module_and_move_with_to():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.raster = rnn.Rasterize((16, 16))
            self.interp = rnn.Interpolate()
            self.colors = torch.nn.Parameter(torch.rand(42, 3))

        def forward(self, clip, faces):
            rast, _ = self.raster(clip, faces)
            return self.interp(self.colors, rast, faces)[0]

    m = bumpy_sphere(1, seed=0)
    cams = PerspectiveCamera.orbit(1, radius=3.0)
    net = Net().to(torch.float64)
    img = net(cams.to(dtype=torch.float64).project(m.verts.double()), m.faces)
    assert img.dtype == torch.float64
    img.sum().backward()
    assert net.colors.grad.abs().sum() > 0


def test_mesh_renderer_outputs_and_conventions():
    m, cams, _ = _clip_scene()
    r = rnn.MeshRenderer((24, 32), silhouette="none", background=(0.1, 0.2, 0.3))
    out = r(m, cams)
    for k, c in (("rgb", 3), ("alpha", 1), ("depth", 1), ("normals", 3), ("mask", 1)):
        assert out[k].shape == (2, 24, 32, c), k
    mask = out.mask[..., 0] > 0
    assert 0.2 < mask.float().mean() < 0.9
    # background colour where nothing is drawn; unit normals and positive depth where something is
    torch.testing.assert_close(out.rgb[~mask], torch.tensor([0.1, 0.2, 0.3]).expand(int((~mask).sum()), 3))
    torch.testing.assert_close(out.normals[mask].norm(dim=-1), torch.ones(int(mask.sum())), atol=1e-5, rtol=0)
    assert torch.all(out.depth[mask] > 1.5) and torch.all(out.depth[mask] < 3.0) and torch.all(out.depth[~mask] == 0)
    # the headlight faces the camera: normals on the sphere's silhouette-free centre point at it
    centre = out.normals[:, 12, 16]
    eye_dir = torch.nn.functional.normalize(cams.eye, dim=-1)
    assert torch.all((centre * eye_dir).sum(-1) > 0.8)
    # top-down NCHW layout is the flip of NHWC
    r2 = rnn.MeshRenderer((24, 32), silhouette="none", background=(0.1, 0.2, 0.3), layout="nchw")
    o2 = r2(m, cams)
    assert o2.rgb.shape == (2, 3, 24, 32)
    assert torch.equal(o2.rgb, out.rgb.flip(1).permute(0, 3, 1, 2))
    assert "silhouette='none'" in repr(r2)


def test_mesh_renderer_shading_modes_and_lights():
    m, cams, _ = _clip_scene(B=1)
    m = Mesh(m.verts, m.faces, vertex_colors=torch.tensor([[1.0, 0.0, 0.0]]).expand(m.num_verts, 3).contiguous())
    unlit = rnn.MeshRenderer((24, 32), silhouette="none", shading="unlit")(m, cams)
    mask = unlit.mask[..., 0] > 0
    torch.testing.assert_close(unlit.rgb[mask], torch.tensor([1.0, 0.0, 0.0]).expand(int(mask.sum()), 3))
    # light from behind the object: only ambient remains on the visible side
    behind = DirectionalLight(-cams.eye)
    lit = rnn.MeshRenderer((24, 32), silhouette="none", ambient=0.2)(m, cams, lights=[behind])
    centre = lit.rgb[0, 12, 16]
    torch.testing.assert_close(centre, torch.tensor([0.2, 0.0, 0.0]), atol=1e-6, rtol=0)


def test_mesh_renderer_bad_settings():
    with pytest.raises(ValueError, match="silhouette"):
        rnn.MeshRenderer((8, 8), silhouette="blurry")
    with pytest.raises(ValueError, match="shading"):
        rnn.MeshRenderer((8, 8), shading="toon")
    with pytest.raises(ValueError, match="layout"):
        rnn.MeshRenderer((8, 8), layout="hwc")


def test_texture_layer_caches_the_pyramid_until_the_texture_changes():
    g = torch.Generator().manual_seed(0)
    tex = torch.rand(1, 16, 16, 3, generator=g)
    uv = torch.rand(1, 8, 8, 2, generator=g)
    uv_da = torch.full((1, 8, 8, 4), 0.3)
    layer = rnn.Texture(filter_mode="linear-mipmap-linear", boundary_mode="clamp")
    a = layer(tex, uv, uv_da)
    mip = layer._mip
    torch.testing.assert_close(a, rastlit.texture(tex, uv, uv_da, filter_mode="linear-mipmap-linear",
                                                  boundary_mode="clamp"))
    layer(tex, uv, uv_da)
    assert layer._mip is mip  # reused
    tex.mul_(0.5)  # in-place edit: the version counter changes, the pyramid is rebuilt
    b = layer(tex, uv, uv_da)
    assert layer._mip is not mip
    torch.testing.assert_close(b, 0.5 * a)
    # a texture being optimized gets no cached pyramid, and its gradient flows through the levels
    t = tex.clone().requires_grad_()
    layer(t, uv, uv_da).sum().backward()
    assert t.grad is not None and t.grad.abs().sum() > 0
    assert "linear-mipmap-linear" in repr(layer)


def test_texture_layer_with_a_cube_map():
    g = torch.Generator().manual_seed(1)
    tex = torch.rand(1, 6, 8, 8, 3, generator=g)
    d = torch.randn(2, 4, 5, 3, generator=g)
    d_da = 0.1 * torch.randn(2, 4, 5, 6, generator=g)
    layer = rnn.Texture(filter_mode="linear-mipmap-linear", boundary_mode="cube")
    a = layer(tex, d, d_da)
    assert [tuple(m.shape) for m in layer._mip] == [(1, 6, 4, 4, 3), (1, 6, 2, 2, 3), (1, 6, 1, 1, 3)]
    torch.testing.assert_close(a, rastlit.texture(tex, d, d_da, boundary_mode="cube"), rtol=0, atol=0)
    t = tex.clone().requires_grad_()  # optimized: no cached pyramid, gradient through the levels
    layer(t, d, d_da).sum().backward()
    assert t.grad is not None and t.grad.abs().sum() > 0


def test_mesh_renderer_samples_the_texture():
    m = uv_sphere(16, 32)
    # a texture that is red in its left half (u < 0.5) and blue in its right half
    tex = torch.zeros(32, 64, 3)
    tex[:, :32, 0] = 1.0
    tex[:, 32:, 2] = 1.0
    m = Mesh(m.verts, m.faces, uv=m.uv, uv_faces=m.uv_faces, texture=tex)
    cams = PerspectiveCamera.orbit(4, radius=3.0, elevation_deg=0.0, resolution=(32, 32))
    out = rnn.MeshRenderer((32, 32), silhouette="none", shading="unlit")(m, cams)
    mask = out.mask[..., 0] > 0
    rgb = out.rgb[mask]
    # every visible pixel is (a blend of) the two texture colours, and both appear
    torch.testing.assert_close(rgb[:, 1], torch.zeros_like(rgb[:, 1]))
    torch.testing.assert_close(rgb[:, 0] + rgb[:, 2], torch.ones_like(rgb[:, 0]), atol=1e-5, rtol=0)
    assert (rgb[:, 0] > 0.99).sum() > 50 and (rgb[:, 2] > 0.99).sum() > 50



@pytest.mark.parametrize("silhouette", ["antialias", "soft"])
def test_silhouette_modes_in_the_renderer(silhouette):
    m, cams, clip = _clip_scene(B=1)
    r = rnn.MeshRenderer((24, 32), silhouette=silhouette, soft=dict(faces_per_pixel=8, sigma=1e-3))
    verts = m.verts.clone().requires_grad_()
    out = r(Mesh(verts, m.faces), cams)
    mask = out.mask[..., 0] > 0
    alpha = out.alpha[..., 0]
    # inside: (mostly) covered; partial coverage along the silhouette
    assert torch.all(alpha[mask] > 0.45)
    assert ((alpha > 0.02) & (alpha < 0.98)).any()
    # silhouette gradients reach the vertices: growing the sphere grows the coverage
    out.alpha.sum().backward()
    radial = (verts.grad * torch.nn.functional.normalize(m.verts, dim=-1)).sum()
    assert radial > 0


def test_soft_rasterize_layer_matches_the_op():
    m, cams, clip = _clip_scene(B=1)
    soft = rnn.SoftRasterize((24, 32), faces_per_pixel=8, sigma=1e-3)
    assert "faces_per_pixel=8" in repr(soft)
    s = soft(clip, m.faces)
    ref = rastlit.rasterize_soft(clip, m.faces, (24, 32), faces_per_pixel=8, sigma=1e-3,
                                 blur_radius=rastlit.soft_blur_radius(1e-3))
    assert torch.equal(s.alpha, ref.alpha) and torch.equal(s.face_ids, ref.face_ids)
