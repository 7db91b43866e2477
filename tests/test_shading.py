"""shading.py: hand-computed values, a per-point float64 reference, gradcheck, an end-to-end
render of a lit icosphere, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from rastlit import shading as S

D = torch.float64


def _t(*v):
    return torch.tensor(v, dtype=D)


# ------------------------------------------------------------------------- hand-computed values

def test_lambertian_light_along_normal_gives_albedo_times_intensity_plus_ambient():
    n = _t(0.0, 0.0, 1.0)
    albedo = _t(0.2, 0.4, 0.6)
    light = S.DirectionalLight(_t(0.0, 0.0, 1.0), color=_t(1.0, 1.0, 1.0), intensity=2.0)
    out = S.lambertian(n, albedo, light, ambient=0.1)
    torch.testing.assert_close(out, albedo * 2.0 + albedo * 0.1, atol=1e-15, rtol=0)
    # unnormalised normal and light direction give the same result
    out2 = S.lambertian(n * 7.0, albedo, S.DirectionalLight(_t(0.0, 0.0, 0.25), intensity=2.0), ambient=0.1)
    torch.testing.assert_close(out2, out, atol=1e-15, rtol=0)


def test_lambertian_cosine_law_and_clamp():
    n = _t(0.0, 0.0, 1.0)
    a = math.radians(60)
    light = S.DirectionalLight(_t(math.sin(a), 0.0, math.cos(a)))
    torch.testing.assert_close(S.lambertian(n, 1.0, light), torch.full((3,), 0.5, dtype=D), atol=1e-15, rtol=0)
    # light behind the surface: n.l < 0 clamps to 0, only ambient remains
    back = S.DirectionalLight(_t(0.0, 0.3, -1.0), color=_t(1.0, 0.5, 0.25))
    torch.testing.assert_close(S.lambertian(n, _t(0.5, 0.5, 0.5), back, ambient=_t(0.2, 0.0, 0.4)),
                               _t(0.1, 0.0, 0.2), atol=1e-15, rtol=0)
    # coloured light and two lights add
    l1 = S.DirectionalLight(_t(0.0, 0.0, 1.0), color=_t(1.0, 0.0, 0.0))
    l2 = S.DirectionalLight(_t(0.0, 1.0, 1.0), color=_t(0.0, 1.0, 0.0), intensity=2.0)
    torch.testing.assert_close(S.lambertian(n, 1.0, [l1, l2]), _t(1.0, math.sqrt(2.0), 0.0), atol=1e-12, rtol=0)


def test_point_light_direction_and_inverse_square():
    n = _t(0.0, 1.0, 0.0)
    p = _t(1.0, 0.0, 0.0)
    light = S.PointLight(_t(1.0, 0.0, 0.0) + _t(0.0, 3.0, 4.0), intensity=5.0)  # distance 5, cos = 3/5
    torch.testing.assert_close(S.lambertian(n, 1.0, light, positions=p), torch.full((3,), 3.0, dtype=D))
    sq = S.PointLight(light.position, intensity=5.0, attenuation="inverse_square")
    torch.testing.assert_close(S.lambertian(n, 1.0, sq, positions=p), torch.full((3,), 3.0 / 25.0, dtype=D))


def test_ambient_light_object_and_in_light_list():
    n = _t(0.0, 0.0, 1.0)
    amb = S.AmbientLight(color=_t(0.5, 1.0, 1.0), intensity=0.4)
    torch.testing.assert_close(S.lambertian(n, 0.5, [], ambient=amb), _t(0.1, 0.2, 0.2), atol=1e-15, rtol=0)
    torch.testing.assert_close(S.lambertian(n, 0.5, [amb]), _t(0.1, 0.2, 0.2), atol=1e-15, rtol=0)


def test_blinn_phong_hand_computed():
    n = _t(0.0, 0.0, 1.0)
    p = _t(0.0, 0.0, 0.0)
    # light and viewer both along the normal: h = n, specular = peak
    light = S.DirectionalLight(_t(0.0, 0.0, 1.0), intensity=1.5)
    out = S.blinn_phong(n, p, _t(0.0, 0.0, 10.0), _t(0.2, 0.3, 0.4), light, specular=0.5, shininess=20.0, ambient=0.1)
    torch.testing.assert_close(out, _t(0.2, 0.3, 0.4) * (1.5 + 0.1) + 1.5 * 0.5, atol=1e-14, rtol=0)
    # light at 60 deg on one side, viewer at 60 deg on the other side: mirror direction, h = n
    a = math.radians(60)
    light = S.DirectionalLight(_t(math.sin(a), 0.0, math.cos(a)))
    view = _t(-math.sin(a), 0.0, math.cos(a)) * 3
    out = S.blinn_phong(n, p, view, 1.0, light, specular=_t(1.0, 0.0, 0.0), shininess=8.0)
    torch.testing.assert_close(out, _t(1.5, 0.5, 0.5), atol=1e-12, rtol=0)
    # light and viewer at 60 deg on the same side: h = l, n.h = 0.5, lobe = 0.5^s
    view = _t(math.sin(a), 0.0, math.cos(a)) * 3
    out = S.blinn_phong(n, p, view, 0.0, light, specular=1.0, shininess=3.0)
    torch.testing.assert_close(out, torch.full((3,), 0.125, dtype=D), atol=1e-12, rtol=0)
    # light behind the surface: no diffuse, no specular even though the viewer is on the light's side
    behind = S.DirectionalLight(_t(0.0, 0.0, -1.0))
    out = S.blinn_phong(n, p, _t(0.0, 0.0, -5.0), 1.0, behind, specular=1.0, shininess=1.0, ambient=0.25)
    torch.testing.assert_close(out, torch.full((3,), 0.25, dtype=D), atol=1e-15, rtol=0)


# -------------------------------------------------------------------- reference on random data

def _reference_blinn_phong(n, p, eye, albedo, dirs, cols, spec, shin, amb):
    """Point by point in plain Python floats."""
    out = torch.zeros_like(n)
    for k in range(n.shape[0]):
        nn_ = n[k] / n[k].norm()
        v = (eye - p[k]) / (eye - p[k]).norm()
        c = albedo[k] * amb
        for d, col in zip(dirs, cols):
            l = d / d.norm()
            ndl = float(nn_ @ l)
            if ndl > 0:
                h = (l + v) / (l + v).norm()
                c = c + col * (albedo[k] * ndl + spec * max(float(nn_ @ h), 0.0) ** shin)
        out[k] = c
    return out


def test_blinn_phong_and_lambertian_match_reference_on_random_points():
    g = torch.Generator().manual_seed(0)
    N = 50
    n = torch.randn(N, 3, generator=g, dtype=D)
    p = torch.randn(N, 3, generator=g, dtype=D)
    albedo = torch.rand(N, 3, generator=g, dtype=D)
    eye = _t(0.5, 2.0, 4.0)
    dirs = [torch.randn(3, generator=g, dtype=D) for _ in range(2)]
    cols = [torch.rand(3, generator=g, dtype=D) for _ in range(2)]
    lights = [S.DirectionalLight(d, color=c) for d, c in zip(dirs, cols)]
    ref = _reference_blinn_phong(n, p, eye, albedo, dirs, cols, 0.3, 7.0, 0.05)
    out = S.blinn_phong(n, p, eye, albedo, lights, specular=0.3, shininess=7.0, ambient=0.05)
    torch.testing.assert_close(out, ref, atol=1e-13, rtol=0)
    ref_l = _reference_blinn_phong(n, p, eye, albedo, dirs, cols, 0.0, 7.0, 0.05)
    torch.testing.assert_close(S.lambertian(n, albedo, lights, ambient=0.05), ref_l, atol=1e-13, rtol=0)


def test_batched_lights_align_with_leading_dims():
    g = torch.Generator().manual_seed(1)
    B, H, W = 2, 3, 4
    n = torch.randn(B, H, W, 3, generator=g, dtype=D)
    p = torch.randn(B, H, W, 3, generator=g, dtype=D)
    dirs = torch.randn(B, 3, generator=g, dtype=D)
    inten = _t(1.0, 2.0)
    eyes = torch.randn(B, 3, generator=g, dtype=D) * 5
    out = S.blinn_phong(n, p, eyes, 0.7, S.DirectionalLight(dirs, intensity=inten), shininess=5.0)
    assert out.shape == (B, H, W, 3)
    for b in range(B):
        ref = S.blinn_phong(n[b], p[b], eyes[b], 0.7, S.DirectionalLight(dirs[b], intensity=inten[b]), shininess=5.0)
        torch.testing.assert_close(out[b], ref, atol=1e-14, rtol=0)
    # per-view point lights too
    pos = torch.randn(B, 3, generator=g, dtype=D) * 3
    out = S.lambertian(n, 1.0, S.PointLight(pos), positions=p)
    for b in range(B):
        ref = S.lambertian(n[b], 1.0, S.PointLight(pos[b]), positions=p[b])
        torch.testing.assert_close(out[b], ref, atol=1e-14, rtol=0)


def test_zero_normals_give_ambient_and_finite_gradients():
    n = torch.zeros(4, 3, dtype=D, requires_grad=True)
    p = torch.zeros(4, 3, dtype=D)
    out = S.blinn_phong(n, p, _t(0.0, 0.0, 3.0), 0.5, S.DirectionalLight(_t(0.0, 0.0, 1.0)), ambient=0.2)
    torch.testing.assert_close(out, torch.full((4, 3), 0.1, dtype=D))
    out.sum().backward()
    assert torch.isfinite(n.grad).all() and float(n.grad.abs().max()) == 0.0


def test_dtype_and_device_follow_normals():
    n = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float32)
    out = S.lambertian(n, _t(1.0, 1.0, 1.0), S.DirectionalLight((0.0, 0.0, 1.0)))
    assert out.dtype == torch.float32
    light = S.DirectionalLight((0.0, 1.0, 0.0)).to(dtype=D)
    assert light.direction.dtype == D and light.color.dtype == D


# --------------------------------------------------------------------------------- gradcheck

def test_lambertian_gradcheck():
    g = torch.Generator().manual_seed(2)
    n = torch.randn(6, 3, generator=g, dtype=D).requires_grad_()
    p = torch.randn(6, 3, generator=g, dtype=D).requires_grad_()
    albedo = torch.rand(6, 3, generator=g, dtype=D).requires_grad_()
    d = torch.randn(3, generator=g, dtype=D).requires_grad_()
    lp = (torch.randn(3, generator=g, dtype=D) * 3).requires_grad_()
    inten = torch.tensor(1.3, dtype=D, requires_grad=True)

    def f(n, p, albedo, d, lp, inten):
        lights = [S.DirectionalLight(d, intensity=inten), S.PointLight(lp, attenuation="inverse_square")]
        return S.lambertian(n, albedo, lights, ambient=0.1, positions=p)

    assert torch.autograd.gradcheck(f, (n, p, albedo, d, lp, inten))


def test_blinn_phong_gradcheck():
    g = torch.Generator().manual_seed(3)
    n = torch.randn(6, 3, generator=g, dtype=D).requires_grad_()
    p = torch.randn(6, 3, generator=g, dtype=D).requires_grad_()
    albedo = torch.rand(6, 3, generator=g, dtype=D).requires_grad_()
    d = torch.randn(3, generator=g, dtype=D).requires_grad_()
    lp = (torch.randn(3, generator=g, dtype=D) * 3).requires_grad_()
    eye = (torch.randn(3, generator=g, dtype=D) * 4).requires_grad_()
    spec = torch.tensor([0.2, 0.5, 0.3], dtype=D, requires_grad=True)
    shin = torch.tensor(9.0, dtype=D, requires_grad=True)

    def f(n, p, albedo, d, lp, eye, spec, shin):
        lights = [S.DirectionalLight(d), S.PointLight(lp, intensity=2.0)]
        return S.blinn_phong(n, p, eye, albedo, lights, specular=spec, shininess=shin, ambient=0.05)

    # the directional light lights some points and misses others, so both branches are exercised
    ndl = (S.safe_normalize(n) * S.safe_normalize(d)).sum(-1)
    assert bool((ndl > 0.05).any()) and bool((ndl < -0.05).any())
    assert torch.autograd.gradcheck(f, (n, p, albedo, d, lp, eye, spec, shin))


# ------------------------------------------------------------------------------ end to end

def test_render_lit_icosphere_from_orbit_view():
    import rastlit
    from rastlit.camera import PerspectiveCamera, orbit_views
    from rastlit.mesh import icosphere

    verts, faces = icosphere(2)
    H = W = 32
    view, eye = orbit_views(2, radius=3.0, elevation_deg=20.0)
    cam = PerspectiveCamera(view, fovy_deg=45.0, near=0.5, far=10.0, resolution=(H, W))
    rast, _ = rastlit.rasterize(cam.project(verts), faces, (H, W))
    normals, _ = rastlit.interpolate(verts, rast, faces)  # unit sphere: normal = position
    alpha = rast[..., 3:] > 0
    assert 0.2 * H * W < int(alpha[0].sum()) < 0.9 * H * W
    # light from world +x: the lit half of the sphere is x > 0
    img = S.lambertian(normals, _t(0.8, 0.6, 0.4).float() * alpha, S.DirectionalLight((1.0, 0.0, 0.0)), ambient=0.05)
    assert img.shape == (2, H, W, 3)
    assert float(img[~alpha.expand_as(img)].abs().max()) == 0.0  # background stays 0
    lit = alpha[..., 0] & (normals[..., 0] > 0.3)
    unlit = alpha[..., 0] & (normals[..., 0] < -0.3)
    for b in range(2):
        assert int(lit[b].sum()) > 0 and int(unlit[b].sum()) > 0
        assert float(img[b][lit[b]].mean()) > 3 * float(img[b][unlit[b]].mean())
        torch.testing.assert_close(img[b][unlit[b]], (0.05 * _t(0.8, 0.6, 0.4).float()).expand(int(unlit[b].sum()), 3))
    # camera centres from the Camera helper agree with orbit_views; Blinn-Phong with a point light
    torch.testing.assert_close(cam.eye, eye, atol=1e-5, rtol=0)
    pos, _ = rastlit.interpolate(verts, rast, faces)
    bp = S.blinn_phong(normals, pos, cam.eye, _t(0.8, 0.6, 0.4).float() * alpha, S.PointLight((4.0, 1.0, 0.0)),
                       specular=0.4 * alpha, shininess=16.0)
    assert float(bp[~alpha.expand_as(bp)].abs().max()) == 0.0
    assert float(bp[0][lit[0]].mean()) > float(bp[0][unlit[0]].mean())
    # gradients from the shaded image reach the vertices and the light
    verts_p = verts.clone().requires_grad_()
    d = torch.tensor([1.0, 0.2, 0.0], requires_grad=True)
    rast, _ = rastlit.rasterize(cam.project(verts_p), faces, (H, W))
    nrm, _ = rastlit.interpolate(verts_p, rast, faces)
    S.lambertian(nrm, 1.0, S.DirectionalLight(d)).sum().backward()
    assert torch.isfinite(verts_p.grad).all() and float(verts_p.grad.abs().sum()) > 0
    assert torch.isfinite(d.grad).all() and float(d.grad.abs().sum()) > 0
    rgb = S.normal_to_rgb(S.safe_normalize(normals), mask=alpha)
    assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    assert float(rgb[~alpha.expand_as(rgb)].abs().max()) == 0.0


def test_normal_to_rgb():
    torch.testing.assert_close(S.normal_to_rgb(torch.tensor([[1.0, -1.0, 0.0]])), torch.tensor([[1.0, 0.0, 0.5]]))
    m = torch.tensor([True, False])
    torch.testing.assert_close(S.normal_to_rgb(torch.zeros(2, 3), mask=m), torch.tensor([[0.5] * 3, [0.0] * 3]))


# --------------------------------------------------------------------------------- bad input

def test_bad_input():
    n = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="direction must be non-zero"):
        S.DirectionalLight((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="direction must be non-zero"):
        S.DirectionalLight(torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"direction must have shape \[\.\.\., 3\]"):
        S.DirectionalLight((0.0, 1.0))
    with pytest.raises(ValueError, match="position must be finite"):
        S.PointLight((0.0, float("nan"), 0.0))
    with pytest.raises(ValueError, match="attenuation must be"):
        S.PointLight((0.0, 1.0, 0.0), attenuation="linear")
    with pytest.raises(ValueError, match="color must be a number or have shape"):
        S.DirectionalLight((0.0, 1.0, 0.0), color=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"normals must have shape \[\.\.\., 3\]"):
        S.lambertian(torch.zeros(2, 4), 1.0, S.DirectionalLight((0.0, 1.0, 0.0)))
    with pytest.raises(TypeError, match="normals must be a floating-point tensor"):
        S.lambertian(torch.zeros(2, 3, dtype=torch.int32), 1.0, S.DirectionalLight((0.0, 1.0, 0.0)))
    with pytest.raises(TypeError, match="lights must be a light or a sequence"):
        S.lambertian(n, 1.0, 3.0)
    with pytest.raises(TypeError, match=r"lights\[1\] must be"):
        S.lambertian(n, 1.0, [S.DirectionalLight((0.0, 1.0, 0.0)), "sun"])
    with pytest.raises(ValueError, match="positions .* are required to shade with a PointLight"):
        S.lambertian(n, 1.0, S.PointLight((0.0, 1.0, 0.0)))
    with pytest.raises(ValueError, match="shininess must be > 0"):
        S.blinn_phong(n, n, (0.0, 0.0, 1.0), 1.0, S.DirectionalLight((0.0, 1.0, 0.0)), shininess=0.0)
    with pytest.raises(ValueError, match="albedo must be a number or have shape"):
        S.lambertian(n, torch.ones(2, 2), S.DirectionalLight((0.0, 1.0, 0.0)))
    with pytest.raises(ValueError, match="more dimensions than the shaded tensors"):
        S.lambertian(n, 1.0, S.DirectionalLight(torch.ones(2, 2, 3)))


@pytest.mark.cuda
def test_cuda_shading_matches_cpu_with_cpu_lights():
    g = torch.Generator().manual_seed(5)
    n, p, alb = (torch.randn(2, 8, 8, 3, generator=g) for _ in range(3))
    lights = [S.DirectionalLight((0.3, 1.0, 0.2)), S.PointLight((2.0, 1.0, 3.0), attenuation="inverse_square")]
    cpu = S.blinn_phong(n, p, (0.0, 0.0, 4.0), alb, lights, ambient=0.1)
    gpu = S.blinn_phong(n.cuda(), p.cuda(), (0.0, 0.0, 4.0), alb.cuda(), lights, ambient=0.1)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------ environment lighting


def _latlong_dirs(H, W):
    """Directions of the pixel centres of an H x W lat-long image, from the documented convention
    (row 0 at the top: theta = pi v from +y; phi = 2 pi (u - 0.5); d = (sin t sin p, cos t, -sin t cos p))."""
    v = (torch.arange(H, dtype=D) + 0.5) / H
    u = (torch.arange(W, dtype=D) + 0.5) / W
    th, ph = torch.meshgrid(math.pi * v, 2 * math.pi * (u - 0.5), indexing="ij")
    return torch.stack([th.sin() * ph.sin(), th.cos(), -th.sin() * ph.cos()], -1)


def test_cube_directions_read_back_texel_centres():
    import rastlit

    d = S.cube_directions(4, dtype=D)
    assert d.shape == (6, 4, 4, 3)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(6, 4, 4, dtype=D))
    # a cube map holding 100 f + 10 i + j reads back its own index at each texel's direction
    f, i, j = torch.meshgrid(torch.arange(6), torch.arange(4), torch.arange(4), indexing="ij")
    tex = (100 * f + 10 * i + j).to(D)[None, ..., None]
    out = rastlit.texture(tex, d.reshape(1, 24, 4, 3), filter_mode="nearest", boundary_mode="cube")
    assert torch.equal(out.reshape(6, 4, 4), tex[0, ..., 0])
    # face centres: +x, -x, +y, -y, +z, -z
    centre = S.cube_directions(2, dtype=D)[:, 0, 0] + S.cube_directions(2, dtype=D)[:, 1, 1]
    torch.testing.assert_close(S.safe_normalize(centre), torch.tensor(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=D), atol=1e-12, rtol=0)


def test_equirect_to_cube_follows_the_documented_convention():
    H, W = 128, 256
    img = _latlong_dirs(H, W)  # every pixel holds its own direction
    cube = S.equirect_to_cube(img, 8)
    assert cube.shape == (6, 8, 8, 3)
    err = (cube - S.cube_directions(8, dtype=D)).abs().max().item()
    assert err < 2e-3, err  # bilinear resampling of a smooth function; a wrong axis or flip gives ~1
    # landmarks: the image centre looks along -z, u = 0.75 along +x, the top row along +y
    marks = torch.zeros(H, W, 1, dtype=D)
    marks[H // 2 - 20:H // 2 + 20, W // 2 - 20:W // 2 + 20] = 1.0  # 28 degrees around -z
    marks[H // 2 - 20:H // 2 + 20, 3 * W // 4 - 20:3 * W // 4 + 20] = 2.0  # around +x
    c = S.equirect_to_cube(marks, 4)
    assert c[5, 1:3, 1:3].eq(1.0).all() and c[0, 1:3, 1:3].eq(2.0).all()
    img_p = img.clone().requires_grad_()
    S.equirect_to_cube(img_p, 4).sum().backward()
    assert img_p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"image must be a floating-point tensor \[H,W,C\]"):
        S.equirect_to_cube(torch.zeros(4, 8), 4)


def test_environment_light_uniform_and_directional_values():
    import rastlit

    n = S.safe_normalize(torch.randn(5, 7, 3, dtype=D, generator=torch.Generator().manual_seed(0)))
    alb = torch.rand(5, 7, 3, dtype=D, generator=torch.Generator().manual_seed(1))
    L = _t(0.5, 1.5, 2.0)
    env = S.EnvironmentLight(L.expand(6, 8, 8, 3).clone(), intensity=2.0)
    # a uniform environment: diffuse = albedo * radiance (as an AmbientLight), glossy = specular * radiance
    torch.testing.assert_close(S.lambertian(n, alb, env), alb * 2 * L, rtol=1e-12, atol=1e-12)
    pos = n.clone()
    bp = S.blinn_phong(n, pos, _t(0.0, 0.0, 5.0), alb, env, specular=0.25)
    torch.testing.assert_close(bp, alb * 2 * L + 0.25 * 2 * L, rtol=1e-12, atol=1e-12)
    # a varying one: the terms are the documented lookups (diffuse at the normal, coarse level;
    # glossy at the mirrored view direction, glossy_level)
    cm = torch.rand(6, 8, 8, 3, dtype=D, generator=torch.Generator().manual_seed(2))
    env = S.EnvironmentLight(cm, glossy_level=1.0)
    assert env.diffuse_level == 2.0
    view = _t(0.3, -0.2, 6.0)
    v = S.safe_normalize(view - pos)
    r = 2 * (n * v).sum(-1, keepdim=True) * n - v

    def look(dirs, level):
        b = torch.full((1, 5, 7), level, dtype=D)
        return rastlit.texture(cm[None], dirs[None], mip_level_bias=b, boundary_mode="cube")[0]

    torch.testing.assert_close(S.lambertian(n, alb, env), alb * look(n, 2.0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S.blinn_phong(n, pos, view, alb, env, specular=0.5),
                               alb * look(n, 2.0) + 0.5 * look(r, 1.0), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"cube_map must have shape \[6,S,S,3\]"):
        S.EnvironmentLight(torch.zeros(6, 8, 4, 3))
    with pytest.raises(ValueError, match="power of two"):
        S.EnvironmentLight(torch.zeros(6, 6, 6, 3))
    with pytest.raises(ValueError, match="glossy_level must be in"):
        S.EnvironmentLight(cm, glossy_level=4.0)


def test_mesh_renderer_with_an_environment_light():
    from rastlit import nn as rnn
    from rastlit.camera import PerspectiveCamera, orbit_views
    from rastlit.mesh import Mesh, icosphere

    mesh = Mesh(*icosphere(2))
    view, _ = orbit_views(2, radius=3.0, elevation_deg=20.0)
    cam = PerspectiveCamera(view, fovy_deg=45.0, near=0.5, far=10.0, resolution=(24, 24))
    cm = torch.rand(6, 8, 8, 3, generator=torch.Generator().manual_seed(3)).requires_grad_()
    env = S.EnvironmentLight(cm, glossy_level=0.5)
    for shading in ("lambert", "phong"):
        out = rnn.MeshRenderer((24, 24), shading=shading)(mesh, cam, env)
        assert torch.isfinite(out["rgb"]).all()
        inside = out["mask"][..., 0] > 0
        assert out["rgb"][inside].abs().sum() > 0
        cm.grad = None
        out["rgb"].sum().backward()
        assert cm.grad is not None and cm.grad.abs().sum() > 0
