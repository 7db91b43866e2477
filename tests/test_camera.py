"""camera.py: hand-computed matrices, view sets, pixel/NDC conversion, gradients and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from rastlit import camera as C


def _apply(m, p):
    """``m [...,4,4]`` on a point ``[...,3]``, returning homogeneous ``[...,4]``."""
    return C.transform_points(m, p.unsqueeze(-2)).squeeze(-2)


# --------------------------------------------------------------------------------- look_at

def test_look_at_maps_eye_to_origin_and_target_onto_minus_z():
    eye = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    target = torch.tensor([-0.5, 0.25, 1.0], dtype=torch.float64)
    m = C.look_at(eye, target)
    assert m.shape == (4, 4) and m.dtype == torch.float64
    torch.testing.assert_close(_apply(m, eye), torch.tensor([0, 0, 0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0)
    dist = float((target - eye).norm())
    torch.testing.assert_close(_apply(m, target), torch.tensor([0, 0, -dist, 1.0], dtype=torch.float64),
                               atol=1e-12, rtol=0)
    r = m[:3, :3]
    torch.testing.assert_close(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert float(torch.linalg.det(r)) == pytest.approx(1.0)
    # world up lands in the upper half of the image: +y component positive
    assert float((r @ torch.tensor([0, 1.0, 0], dtype=torch.float64))[1]) > 0


def test_look_at_hand_computed_axis_aligned():
    # camera on +x looking at the origin: world -x is the view direction (-z), world +z is image left
    m = C.look_at((2.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), dtype=torch.float64)
    expected = torch.tensor([[0, 0, -1, 0], [0, 1, 0, 0], [1, 0, 0, -2], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(m, expected, atol=1e-15, rtol=0)


def test_look_at_tuples_keep_old_behaviour():
    m = C.look_at((2.2, 2.0, 3.6), (0.0, 0.6, 0.0))
    assert m.dtype == torch.float32 and m.shape == (4, 4)
    m64 = C.look_at((2.2, 2.0, 3.6), (0.0, 0.6, 0.0), dtype=torch.float64)
    torch.testing.assert_close(m.double(), m64, atol=1e-7, rtol=0)


def test_look_at_batched_matches_loop():
    g = torch.Generator().manual_seed(0)
    eye = torch.randn(2, 3, 3, generator=g, dtype=torch.float64) * 3
    target = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.1
    m = C.look_at(eye, target)
    assert m.shape == (2, 3, 4, 4)
    for a in range(2):
        for b in range(3):
            torch.testing.assert_close(m[a, b], C.look_at(eye[a, b], target[b]), atol=1e-14, rtol=0)


def test_look_at_gradcheck():
    eye = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 1.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    up = torch.tensor([0.1, 1.0, 0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e, t, u: C.look_at(e, t, u), (eye, target, up))


@pytest.mark.parametrize("eye,target,up,msg", [
    ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (0.0, 1.0, 0.0), "eye and target coincide"),
    ((0.0, 3.0, 0.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), "up must be non-zero and not parallel"),
    ((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), "up must be non-zero"),
    ((0.0, 0.0, float("nan")), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), "eye must be finite"),
])
def test_look_at_bad_input(eye, target, up, msg):
    with pytest.raises(ValueError, match=msg):
        C.look_at(eye, target, up)


def test_look_at_bad_shape_and_batch_with_one_degenerate():
    with pytest.raises(ValueError, match=r"eye must have shape \[\.\.\., 3\]"):
        C.look_at(torch.zeros(4), (0.0, 0.0, 0.0))
    eye = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="coincide"):
        C.look_at(eye)
    with pytest.raises(TypeError, match="eye must be"):
        C.look_at("abc")


# ----------------------------------------------------------------------------- perspective

def test_perspective_near_far_and_frustum_edges():
    fov, aspect, near, far = 60.0, 1.5, 0.5, 20.0
    p = C.perspective(fov, aspect, near, far, dtype=torch.float64)
    t = math.tan(math.radians(fov) / 2)
    for z, zndc in ((-near, -1.0), (-far, 1.0)):
        # top-right corner of the frustum at this depth
        pt = torch.tensor([aspect * t * -z, t * -z, z], dtype=torch.float64)
        c = _apply(p, pt)
        ndc = c[:3] / c[3]
        torch.testing.assert_close(ndc, torch.tensor([1.0, 1.0, zndc], dtype=torch.float64), atol=1e-12, rtol=0)
        assert float(c[3]) == pytest.approx(-z)  # w is the distance in front of the camera
        pt2 = torch.tensor([-aspect * t * -z, -t * -z, z], dtype=torch.float64)
        c2 = _apply(p, pt2)
        torch.testing.assert_close(c2[:3] / c2[3], torch.tensor([-1.0, -1.0, zndc], dtype=torch.float64),
                                   atol=1e-12, rtol=0)


def test_perspective_scalar_matches_closed_form_and_float32_default():
    p = C.perspective(90.0, 2.0, 1.0, 3.0)
    assert p.dtype == torch.float32 and p.shape == (4, 4)
    expected = torch.tensor([[0.5, 0, 0, 0], [0, 1, 0, 0], [0, 0, -2, -3], [0, 0, -1, 0]])
    torch.testing.assert_close(p, expected, atol=1e-6, rtol=0)


def test_perspective_batched_tensors():
    fov = torch.tensor([30.0, 45.0, 90.0], dtype=torch.float64)
    near = torch.tensor([[0.1], [1.0]], dtype=torch.float64)
    p = C.perspective(fov, 1.25, near, 50.0)
    assert p.shape == (2, 3, 4, 4) and p.dtype == torch.float64
    for a in range(2):
        for b in range(3):
            ref = C.perspective(float(fov[b]), 1.25, float(near[a]), 50.0, dtype=torch.float64)
            torch.testing.assert_close(p[a, b], ref,
                                       atol=1e-12, rtol=1e-12)


def test_perspective_gradcheck():
    fov = torch.tensor([40.0, 70.0], dtype=torch.float64, requires_grad=True)
    aspect = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    near = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, a, n: C.perspective(f, a, n, 10.0), (fov, aspect, near))


@pytest.mark.parametrize("args,msg", [
    ((0.0, 1.0, 0.1, 10.0), "fovy_deg must be in \\(0, 180\\)"),
    ((180.0, 1.0, 0.1, 10.0), "fovy_deg must be in \\(0, 180\\)"),
    ((60.0, 0.0, 0.1, 10.0), "aspect must be > 0"),
    ((60.0, 1.0, 0.0, 10.0), "near must be > 0"),
    ((60.0, 1.0, 2.0, 2.0), "need near < far"),
    ((60.0, 1.0, 3.0, 2.0), "need near < far"),
    ((float("inf"), 1.0, 0.1, 10.0), "fovy_deg must be finite"),
])
def test_perspective_bad_input(args, msg):
    with pytest.raises(ValueError, match=msg):
        C.perspective(*args)
    with pytest.raises(ValueError, match=msg):
        C.perspective(*(torch.tensor([a, a]) for a in args))


# ---------------------------------------------------------------------------- orthographic

def test_orthographic_matches_glortho_and_maps_box_corners():
    l, r, b, t, n, f = -1.0, 3.0, -0.5, 1.5, 0.5, 4.0
    m = C.orthographic(left=l, right=r, bottom=b, top=t, near=n, far=f, dtype=torch.float64)
    expected = torch.tensor([[2 / (r - l), 0, 0, -(r + l) / (r - l)], [0, 2 / (t - b), 0, -(t + b) / (t - b)],
                             [0, 0, -2 / (f - n), -(f + n) / (f - n)], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(m, expected, atol=1e-15, rtol=0)
    for x, y, z, want in ((l, b, -n, (-1, -1, -1)), (r, t, -f, (1, 1, 1)), (r, b, -n, (1, -1, -1))):
        c = _apply(m, torch.tensor([x, y, z], dtype=torch.float64))
        assert float(c[3]) == 1.0
        torch.testing.assert_close(c[:3], torch.tensor(want, dtype=torch.float64), atol=1e-12, rtol=0)


def test_orthographic_height_aspect():
    m = C.orthographic(4.0, 2.0, 1.0, 9.0, dtype=torch.float64)
    c = _apply(m, torch.tensor([4.0, 2.0, -1.0], dtype=torch.float64))  # half width 4, half height 2
    torch.testing.assert_close(c, torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0)
    c = _apply(m, torch.tensor([-4.0, -2.0, -9.0], dtype=torch.float64))
    torch.testing.assert_close(c, torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0)
    h = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert C.orthographic(h).shape == (2, 4, 4)
    assert torch.autograd.gradcheck(lambda h: C.orthographic(h, 1.5, 0.1, 5.0), (h,))


def test_orthographic_bad_input():
    with pytest.raises(ValueError, match="need near < far"):
        C.orthographic(2.0, 1.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="height must be > 0"):
        C.orthographic(0.0)
    with pytest.raises(ValueError, match="need left < right"):
        C.orthographic(left=1.0, right=1.0, bottom=0.0, top=1.0)
    with pytest.raises(ValueError, match="give all of left, right, bottom, top"):
        C.orthographic(left=-1.0, right=1.0)


# ------------------------------------------------------------------------------- view sets

def _looks_at_origin(view, eye):
    """Each view maps its eye to the origin and the origin onto -z at distance |eye|."""
    o = torch.zeros(3, dtype=view.dtype)
    at_o = _apply(view, o.expand(view.shape[0], 3))
    torch.testing.assert_close(at_o[:, :2], torch.zeros_like(at_o[:, :2]), atol=1e-6, rtol=0)
    torch.testing.assert_close(-at_o[:, 2], eye.norm(dim=-1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(_apply(view, eye)[:, :3], torch.zeros_like(eye), atol=1e-6, rtol=0)


def test_orbit_views_radius_elevation_azimuth_and_look_at_origin():
    n, radius, elev = 8, 2.5, 35.0
    view, eye = C.orbit_views(n, radius, elev, dtype=torch.float64)
    assert view.shape == (n, 4, 4) and eye.shape == (n, 3) and view.dtype == torch.float64
    torch.testing.assert_close(eye.norm(dim=-1), torch.full((n,), radius, dtype=torch.float64))
    torch.testing.assert_close(torch.rad2deg(torch.asin(eye[:, 1] / radius)),
                               torch.full((n,), elev, dtype=torch.float64))
    az = torch.rad2deg(torch.atan2(eye[:, 0], eye[:, 2])) % 360
    torch.testing.assert_close(az, torch.arange(n, dtype=torch.float64) * 45.0, atol=1e-9, rtol=0)
    _looks_at_origin(view, eye)
    # azimuth 0, elevation 0: the camera on +z, identity rotation
    v0, e0 = C.orbit_views(1, 3.0, 0.0, dtype=torch.float64)
    expected = torch.eye(4, dtype=torch.float64)
    expected[2, 3] = -3.0
    torch.testing.assert_close(v0[0], expected, atol=1e-15, rtol=0)
    torch.testing.assert_close(e0[0], torch.tensor([0, 0, 3.0], dtype=torch.float64))
    # float32 default, target offset
    v32, e32 = C.orbit_views(3, 2.0, -20.0, target=(1.0, 2.0, 3.0))
    assert v32.dtype == torch.float32
    torch.testing.assert_close((e32 - torch.tensor([1.0, 2.0, 3.0])).norm(dim=-1), torch.full((3,), 2.0))


def test_orbit_views_gradients_reach_radius_and_elevation():
    r = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    el = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, el: C.orbit_views(3, r, el), (r, el))


def test_random_views_reproducible_and_inside_band():
    band = (-10.0, 40.0)
    v1, e1 = C.random_views(64, 1.7, elevation_range_deg=band, generator=torch.Generator().manual_seed(3))
    v2, e2 = C.random_views(64, 1.7, elevation_range_deg=band, generator=torch.Generator().manual_seed(3))
    v3, _ = C.random_views(64, 1.7, elevation_range_deg=band, generator=torch.Generator().manual_seed(4))
    assert torch.equal(v1, v2) and torch.equal(e1, e2)
    assert not torch.equal(v1, v3)
    assert v1.shape == (64, 4, 4) and v1.dtype == torch.float32
    torch.testing.assert_close(e1.norm(dim=-1), torch.full((64,), 1.7))
    el = torch.rad2deg(torch.asin((e1[:, 1] / 1.7).clamp(-1, 1)))
    assert float(el.min()) >= band[0] - 1e-3 and float(el.max()) <= band[1] + 1e-3
    _looks_at_origin(v1, e1)
    # float64 from the same seed: same draws
    v64, e64 = C.random_views(64, 1.7, elevation_range_deg=band, generator=torch.Generator().manual_seed(3),
                              dtype=torch.float64)
    torch.testing.assert_close(e64.float(), e1)


def test_random_views_uniform_by_area():
    # sin(elevation) is uniform on [sin lo, sin hi]; the azimuth is uniform on the circle
    _, e = C.random_views(4000, 1.0, elevation_range_deg=(-90 + 1e-6, 90 - 1e-6),
                          generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(e[:, 1].mean())) < 0.05 and abs(float(e[:, 1].square().mean()) - 1 / 3) < 0.03
    assert abs(float(e[:, 0].mean())) < 0.05 and abs(float(e[:, 2].mean())) < 0.05


def test_view_sets_bad_input():
    with pytest.raises(ValueError, match="elevation_deg must be in \\(-90, 90\\)"):
        C.orbit_views(4, 2.0, 90.0)
    with pytest.raises(ValueError, match="radius must be > 0"):
        C.orbit_views(4, 0.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        C.orbit_views(0)
    with pytest.raises(TypeError, match="n must be an int"):
        C.orbit_views(2.0)
    with pytest.raises(ValueError, match="elevation_range_deg"):
        C.random_views(4, elevation_range_deg=(30.0, 10.0))
    with pytest.raises(ValueError, match="elevation_range_deg"):
        C.random_views(4, elevation_range_deg=(-90.0, 10.0))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        C.random_views(4, generator=3)


# ------------------------------------------------------------------------------ pixel / NDC

def test_ndc_pixel_conversion_matches_pixel_centre_convention():
    H, W = 4, 6
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    ndc = torch.stack([(2 * j + 1) / W - 1, (2 * i + 1) / H - 1], -1)
    pix = C.ndc_to_pixel(ndc, (H, W))
    torch.testing.assert_close(pix, torch.stack([j, i], -1), atol=1e-12, rtol=0)
    torch.testing.assert_close(C.pixel_to_ndc(torch.stack([j, i], -1), (H, W)), ndc, atol=1e-15, rtol=0)
    ndc_int = C.pixel_to_ndc(torch.stack([j, i], -1).long(), (H, W))  # integer pixel indices accepted
    torch.testing.assert_close(ndc_int, ndc.float())
    # image corners: NDC (-1,-1) is the bottom-left corner of pixel (0,0), i.e. (-0.5,-0.5)
    torch.testing.assert_close(C.ndc_to_pixel(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), (H, W)),
                               torch.tensor([[-0.5, -0.5], [W - 0.5, H - 0.5]]))
    with pytest.raises(ValueError, match=r"ndc must have shape \[\.\.\., 2\]"):
        C.ndc_to_pixel(torch.zeros(3), (H, W))
    with pytest.raises(ValueError, match="resolution must be positive"):
        C.pixel_to_ndc(torch.zeros(2), (0, 4))


def test_pixel_convention_agrees_with_rasterize():
    import rastlit

    H, W = 16, 24
    cam = C.PerspectiveCamera.look_at((0.3, 0.2, 4.0), (0.0, 0.0, 0.0), fovy_deg=40.0, resolution=(H, W),
                                      near=0.5, far=10.0)
    row, col = 5, 17
    ndc = C.pixel_to_ndc(torch.tensor([float(col), float(row)]), (H, W))
    # unproject the pixel centre at w = 4, then project the world point back through the camera
    w = 4.0
    z_ndc = float(cam.projection[0, 2, 2]) * -w / w + float(cam.projection[0, 2, 3]) / w
    clip = torch.cat([ndc * w, torch.tensor([z_ndc * w, w])])
    world = torch.linalg.solve(cam.mvp[0].double(), clip.double())
    back = cam.project(world[:3].float()[None])[0, 0]
    torch.testing.assert_close(C.ndc_to_pixel(C.clip_to_ndc(back)[:2], (H, W)), torch.tensor([float(col), float(row)]),
                               atol=1e-3, rtol=0)
    # a triangle smaller than a pixel around that point covers exactly pixel (row, col)
    d = 0.4 * 2 / max(H, W) * w
    tri_pos = torch.stack([back + torch.tensor([-d, -d, 0, 0]), back + torch.tensor([d, -d, 0, 0]),
                           back + torch.tensor([0, d, 0, 0])])
    rast, _ = rastlit.rasterize(tri_pos[None].contiguous(), torch.tensor([[0, 1, 2]], dtype=torch.int32), (H, W))
    assert (rast[0, ..., 3] > 0).nonzero().tolist() == [[row, col]]


# ---------------------------------------------------------------------------------- Camera

def test_camera_mvp_project_eye_and_to():
    view, eye = C.orbit_views(3, 2.0, 15.0)
    cam = C.PerspectiveCamera(view, fovy_deg=50.0, near=0.2, far=8.0, resolution=(32, 64))
    assert cam.aspect == 2.0 and len(cam) == 3 and cam.resolution == (32, 64)
    torch.testing.assert_close(cam.projection[0], C.perspective(50.0, 2.0, 0.2, 8.0))
    torch.testing.assert_close(cam.mvp, C.perspective(50.0, 2.0, 0.2, 8.0) @ view)
    torch.testing.assert_close(cam.eye, eye, atol=1e-5, rtol=0)
    pts = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    clip = cam.project(pts)
    assert clip.shape == (3, 5, 4) and clip.is_contiguous()
    torch.testing.assert_close(clip, C.transform_points(cam.mvp, pts))
    clip_b = cam.project(pts.expand(3, 5, 3))
    torch.testing.assert_close(clip_b, clip)
    model = torch.eye(4)
    model[:3, 3] = torch.tensor([0.1, 0.2, 0.3])
    torch.testing.assert_close(cam.project(pts, model=model), cam.project(pts + model[:3, 3]), atol=1e-5, rtol=0)
    c64 = cam.to(dtype=torch.float64)
    assert c64.view.dtype == torch.float64 and c64.projection.dtype == torch.float64 and cam.view.dtype == torch.float32
    assert cam.to("cpu").device == torch.device("cpu")
    sub = cam[1]
    assert len(sub) == 1
    torch.testing.assert_close(sub.eye[0], eye[1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="points must have shape"):
        cam.project(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="does not match the camera batch"):
        cam.project(torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="view must have shape"):
        C.Camera(torch.eye(3), torch.eye(4))


def test_orthographic_camera_and_differentiable_eye():
    eye = torch.tensor([[0.0, 0.0, 5.0], [3.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    cam = C.OrthographicCamera.look_at(eye, height=2.0, near=1.0, far=9.0, resolution=(8, 16))
    assert cam.aspect == 2.0 and cam.view.dtype == torch.float64
    torch.testing.assert_close(cam.eye, eye.detach())
    clip = cam.project(torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(clip[0, 0], torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64))
    clip.sum().backward()
    assert eye.grad is not None and torch.isfinite(eye.grad).all()


@pytest.mark.cuda
def test_cuda_device_follows_inputs_and_matches_cpu():
    dev = torch.device("cuda")
    eye = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 1.0]], device=dev)
    m = C.look_at(eye, torch.zeros(3, device=dev))
    assert m.device.type == "cuda"
    torch.testing.assert_close(m.cpu(), C.look_at(eye.cpu()), atol=1e-6, rtol=0)
    p = C.perspective(torch.tensor([40.0, 60.0], device=dev), 1.5, 0.1, 10.0)
    assert p.device.type == "cuda"
    v, e = C.random_views(8, 2.0, generator=torch.Generator().manual_seed(0), device=dev)
    v_cpu, e_cpu = C.random_views(8, 2.0, generator=torch.Generator().manual_seed(0))
    assert v.device.type == "cuda"
    torch.testing.assert_close(v.cpu(), v_cpu, atol=1e-6, rtol=0)
    cam = C.PerspectiveCamera.orbit(3, resolution=(16, 16)).to(dev)
    assert cam.project(torch.zeros(5, 3, device=dev)).device.type == "cuda"
