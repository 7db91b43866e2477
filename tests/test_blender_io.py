"""rastlit.data.blender: NeRF-synthetic / Blender posed-image datasets in rastlit's conventions.

Camera checks compare against pixel positions computed by hand in the test (u from the left,
v from the top, ``u = fx X / -Z + cx``, ``v = -fy Y / -Z + cy``), never through the code under test.
"""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

import rastlit
from rastlit import mesh as rl_mesh
from rastlit.camera import look_at, ndc_to_pixel, perspective, transform_points
from rastlit.data.blender import (
    BlenderSplit,
    Intrinsics,
    c2w_from_view,
    has_split,
    intrinsics_from_projection,
    read_blender_split,
    write_blender_split,
)

W, H = 8, 6  # the tiny hand-made images


# --------------------------------------------------------------------------------- helpers

def _save_png(path, arr_top_down: np.ndarray) -> None:
    """Write a top-down uint8 array ([H,W], [H,W,3] or [H,W,4]) with Pillow."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr_top_down)).save(path, format="PNG")


def _rgba(h=H, w=W, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(h, w, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def _write_json(root, split, meta) -> str:
    path = os.path.join(root, f"transforms_{split}.json")
    with open(path, "w") as fh:
        json.dump(meta, fh)
    return path


def _translate(x, y, z) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def _rot_y_90_at(x, y, z) -> np.ndarray:
    """Camera at (x, y, z) turned 90 degrees about +y: it looks along world -x."""
    m = np.array([[0.0, 0, 1, x], [0, 1, 0, y], [-1, 0, 0, z], [0, 0, 0, 1]])
    return m


def _generic_c2w() -> np.ndarray:
    """Rotation about x by 25 deg, then about y by -40 deg, camera at (1.5, -0.7, 3.2)."""
    a, b = math.radians(25), math.radians(-40)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    m = np.eye(4)
    m[:3, :3] = ry @ rx
    m[:3, 3] = (1.5, -0.7, 3.2)
    return m


def _dataset(root, frames_c2w, meta_extra=None, split="train", frame_extra=None, images=None) -> str:
    """Opaque RGBA images r_<i>.png and a transforms json with file_path without extension."""
    frames = []
    for i, c2w in enumerate(frames_c2w):
        img = _rgba(seed=i) if images is None else images[i]
        _save_png(os.path.join(root, split, f"r_{i}.png"), img)
        f = {"file_path": f"./{split}/r_{i}", "transform_matrix": np.asarray(c2w).tolist()}
        if frame_extra and i in frame_extra:
            f.update(frame_extra[i])
        frames.append(f)
    meta = dict(meta_extra or {})
    meta["frames"] = frames
    return _write_json(root, split, meta)


def _pixel_of(mvp: torch.Tensor, point, w, h) -> tuple[float, float, float]:
    """(u from left, v from top, ndc z) of a world point under ``mvp``: clip -> NDC -> pixels."""
    clip = mvp.double() @ torch.tensor([*point, 1.0], dtype=torch.float64)
    ndc = clip[:3] / clip[3]
    u = (float(ndc[0]) + 1.0) / 2.0 * w
    v = (1.0 - float(ndc[1])) / 2.0 * h
    return u, v, float(ndc[2])


def _kv(k: Intrinsics) -> tuple:
    return (k.fx, k.fy, k.cx, k.cy, k.width, k.height)


def _hand_pixel(c2w: np.ndarray, point, fx, fy, cx, cy) -> tuple[float, float]:
    """Independent arithmetic: camera coordinates R^T (p - t), then the pinhole formulas."""
    r, t = c2w[:3, :3], c2w[:3, 3]
    x, y, z = r.T @ (np.asarray(point, float) - t)
    assert z < 0
    return fx * x / -z + cx, -fy * y / -z + cy


# --------------------------------------------------------------------------------- camera conventions

GENERIC_POINT = (0.2, 0.1, -0.3)


@pytest.mark.parametrize("d", [1, 2])
def test_camera_angle_x_hand_computed_pixels(tmp_path, d):
    angle = 2 * math.atan(0.5)  # tan(angle/2) = 0.5, so fx = 0.5 W / 0.5 = W = 8
    frames = [_translate(0, 0, 4), _rot_y_90_at(3, 1, 2), _generic_c2w()]
    _dataset(tmp_path, frames, {"camera_angle_x": angle})
    s = read_blender_split(tmp_path, "train", downscale=d)
    assert s.rgb.shape == (3, H // d, W // d, 3) and s.alpha.shape == (3, H // d, W // d, 1)
    fx = fy = 8.0
    cx, cy = 4.0, 3.0
    for k in s.intrinsics:
        assert _kv(k) == pytest.approx((fx / d, fy / d, cx / d, cy / d, W // d, H // d))
    mvp = s.mvp(0.5, 20.0)
    assert mvp.shape == (3, 4, 4) and mvp.dtype == torch.float32
    # frame 0: camera at (0,0,4) looking at the origin; (0.5,-0.25,0) is at camera (0.5,-0.25,-4):
    # u = 8*0.5/4 + 4 = 5, v = -8*(-0.25)/4 + 3 = 3.5
    # frame 1: camera at (3,1,2) looking along -x; (1,1.5,2.5) is at camera (-0.5, 0.5, -2):
    # u = 8*(-0.5)/2 + 4 = 2, v = -8*0.5/2 + 3 = 1
    expected = [((0.5, -0.25, 0.0), (5.0, 3.5)), ((1.0, 1.5, 2.5), (2.0, 1.0)),
                (GENERIC_POINT, _hand_pixel(frames[2], GENERIC_POINT, fx, fy, cx, cy))]
    for i, (p, (u, v)) in enumerate(expected):
        pu, pv, _ = _pixel_of(mvp[i], p, W // d, H // d)
        assert pu == pytest.approx(u / d, abs=1e-4) and pv == pytest.approx(v / d, abs=1e-4), i
    # near plane at NDC z = -1, far at +1 (frame 0 looks down -z from z = 4)
    assert _pixel_of(mvp[0], (0.0, 0.0, 3.5), W, H)[2] == pytest.approx(-1.0, abs=1e-5)
    assert _pixel_of(mvp[0], (0.0, 0.0, -16.0), W, H)[2] == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(s.eye(), torch.tensor([[0, 0, 4.0], [3, 1, 2], [1.5, -0.7, 3.2]]))


def test_camera_angle_y_gives_fy(tmp_path):
    # tan(ax/2) = 0.5 -> fx = 8; tan(ay/2) = 0.25 -> fy = 0.5*6/0.25 = 12
    _dataset(tmp_path, [_translate(0, 0, 4)],
             {"camera_angle_x": 2 * math.atan(0.5), "camera_angle_y": 2 * math.atan(0.25)})
    s = read_blender_split(tmp_path, "train")
    pu, pv, _ = _pixel_of(s.mvp(0.1, 10)[0], (0.5, -0.25, 0.0), W, H)
    # u = 8*0.5/4 + 4 = 5, v = -12*(-0.25)/4 + 3 = 3.75
    assert (pu, pv) == pytest.approx((5.0, 3.75), abs=1e-4)


@pytest.mark.parametrize("d", [1, 2])
def test_pixel_intrinsics_off_centre_hand_computed_pixels(tmp_path, d):
    fx, fy, cx, cy = 10.0, 7.0, 3.0, 2.5
    frames = [_translate(0, 0, 4), _rot_y_90_at(3, 1, 2), _generic_c2w()]
    _dataset(tmp_path, frames, {"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": W, "h": H})
    s = read_blender_split(tmp_path, "train", downscale=d)
    for k in s.intrinsics:
        assert _kv(k) == pytest.approx((fx / d, fy / d, cx / d, cy / d, W // d, H // d))
    mvp = s.mvp(0.5, 20.0)
    # frame 0: u = 10*0.5/4 + 3 = 4.25, v = -7*(-0.25)/4 + 2.5 = 2.9375
    # frame 1: u = 10*(-0.5)/2 + 3 = 0.5, v = -7*0.5/2 + 2.5 = 0.75
    expected = [((0.5, -0.25, 0.0), (4.25, 2.9375)), ((1.0, 1.5, 2.5), (0.5, 0.75)),
                (GENERIC_POINT, _hand_pixel(frames[2], GENERIC_POINT, fx, fy, cx, cy))]
    for i, (p, (u, v)) in enumerate(expected):
        pu, pv, _ = _pixel_of(mvp[i], p, W // d, H // d)
        assert pu == pytest.approx(u / d, abs=1e-4) and pv == pytest.approx(v / d, abs=1e-4), i


def test_per_frame_intrinsics_win_over_top_level(tmp_path):
    frames = [_translate(0, 0, 4), _translate(0, 0, 4)]
    _dataset(tmp_path, frames, {"camera_angle_x": 2 * math.atan(0.5)},
             frame_extra={1: {"fl_x": 10.0, "fl_y": 7.0, "cx": 3.0, "cy": 2.5, "w": W, "h": H}})
    s = read_blender_split(tmp_path, "train")
    k0, k1 = s.intrinsics
    assert (k0.fx, k0.fy, k0.cx, k0.cy) == pytest.approx((8.0, 8.0, 4.0, 3.0))
    assert (k1.fx, k1.fy, k1.cx, k1.cy) == pytest.approx((10.0, 7.0, 3.0, 2.5))
    mvp = s.mvp(0.5, 20.0)
    assert _pixel_of(mvp[0], (0.5, -0.25, 0.0), W, H)[:2] == pytest.approx((5.0, 3.5), abs=1e-4)
    assert _pixel_of(mvp[1], (0.5, -0.25, 0.0), W, H)[:2] == pytest.approx((4.25, 2.9375), abs=1e-4)


def test_single_pixel_image_orientation_and_ray(tmp_path):
    row_top, col = 1, 6
    img = np.zeros((H, W, 4), np.uint8)
    img[row_top, col] = (255, 0, 0, 255)
    fx, fy, cx, cy = 10.0, 7.0, 3.0, 2.5
    c2w = _generic_c2w()
    _dataset(tmp_path, [c2w], {"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": W, "h": H}, images=[img])
    s = read_blender_split(tmp_path, "train")
    i = H - 1 - row_top  # rastlit rows count from the bottom
    assert float(s.alpha.sum()) == 1.0 and float(s.alpha[0, i, col, 0]) == 1.0
    assert s.rgb[0, i, col].tolist() == [1.0, 0.0, 0.0]
    assert float(s.rgb.sum()) == 1.0  # composited over black everywhere else
    # a world point on that pixel's ray: pixel centre u = col + 0.5, v = row_top + 0.5, depth 3
    u, v, depth = col + 0.5, row_top + 0.5, 3.0
    cam = np.array([(u - cx) * depth / fx, -(v - cy) * depth / fy, -depth])
    world = c2w[:3, :3] @ cam + c2w[:3, 3]
    clip = transform_points(s.mvp(0.5, 20.0)[0].double(), torch.tensor(world)[None])[0]
    px = ndc_to_pixel(clip[:2] / clip[3], (H, W))
    assert px.tolist() == pytest.approx([col, i], abs=1e-4)


def test_downscale_box_filter_and_background(tmp_path):
    img = np.zeros((2, 2, 4), np.uint8)
    img[0, 0] = (255, 0, 0, 255)
    img[0, 1] = (0, 255, 0, 0)  # transparent: its colour must not leak
    img[1, 0] = (0, 0, 255, 255)
    img[1, 1] = (0, 0, 0, 0)
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0}, images=[img])
    # premultiplied average (0.25, 0, 0.25), alpha 0.5 -> straight (0.5, 0, 0.5)
    black = read_blender_split(tmp_path, "train", downscale=2)
    assert black.alpha.shape == (1, 1, 1, 1) and float(black.alpha) == pytest.approx(0.5)
    assert black.rgb[0, 0, 0].tolist() == pytest.approx([0.25, 0.0, 0.25])
    white = read_blender_split(tmp_path, "train", downscale=2, background="white")
    assert white.rgb[0, 0, 0].tolist() == pytest.approx([0.75, 0.5, 0.75])
    grey = read_blender_split(tmp_path, "train", downscale=2, background=(0.2, 0.4, 0.6))
    assert grey.rgb[0, 0, 0].tolist() == pytest.approx([0.35, 0.2, 0.55])
    full = read_blender_split(tmp_path, "train", background="white")
    # row 0 is the bottom of the picture: file row 1 = (blue, transparent)
    assert full.rgb[0, 0].tolist() == [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    assert full.rgb[0, 1].tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


# --------------------------------------------------------------------------------- files, masks

def test_file_path_extensions_and_has_split(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0})
    assert has_split(tmp_path, "train") and not has_split(tmp_path, "val")
    s = read_blender_split(str(tmp_path), "train")
    assert s.files == [os.path.join(str(tmp_path), "train", "r_0.png")]
    # explicit extension and a JPEG fallback (with a mask, since JPEG has no alpha)
    Image.fromarray(_rgba()[..., :3]).save(tmp_path / "train" / "j_0.jpg", quality=95)
    _save_png(str(tmp_path / "train" / "j_0_mask.png"), np.full((H, W), 255, np.uint8))
    _write_json(tmp_path, "val", {"camera_angle_x": 1.0, "frames": [
        {"file_path": "./train/r_0.png", "transform_matrix": np.eye(4).tolist()},
        {"file_path": "train/j_0", "transform_matrix": np.eye(4).tolist()}]})
    v = read_blender_split(tmp_path, "val")
    assert [os.path.basename(f) for f in v.files] == ["r_0.png", "j_0.jpg"]
    assert float(v.alpha.min()) == 1.0


@pytest.mark.parametrize("where", ["sibling", "masks_dir", "mask_path", "root_masks_dir"])
def test_rgb_image_with_mask_file(tmp_path, where):
    rgb = _rgba()[..., :3]
    mask = np.zeros((H, W), np.uint8)
    mask[0:2, 0:3] = 255  # top-left block
    mask[5, 7] = 100  # below 0.5: background
    _save_png(str(tmp_path / "train" / "r_0.png"), rgb)
    frame = {"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}
    if where == "sibling":
        _save_png(str(tmp_path / "train" / "r_0_mask.png"), mask)
    elif where == "masks_dir":
        _save_png(str(tmp_path / "train" / "masks" / "r_0.png"), mask)
    elif where == "root_masks_dir":
        _save_png(str(tmp_path / "masks" / "r_0.png"), mask)
    else:  # nerfstudio: explicit mask_path, an RGBA mask whose alpha carries it
        rgba_mask = np.zeros((H, W, 4), np.uint8)
        rgba_mask[..., 3] = mask
        _save_png(str(tmp_path / "m" / "zero.png"), rgba_mask)
        frame["mask_path"] = "m/zero.png"
    _write_json(tmp_path, "train", {"camera_angle_x": 1.0, "frames": [frame]})
    s = read_blender_split(tmp_path, "train", background="white")
    expected = np.flipud(mask > 127).astype(np.float32)[..., None]
    assert np.array_equal(s.alpha[0].numpy(), expected)
    a = expected
    want = np.flipud(rgb).astype(np.float32) / 255 * a + (1 - a)
    np.testing.assert_allclose(s.rgb[0].numpy(), want, atol=1e-6)


# --------------------------------------------------------------------------------- round trips

def test_write_read_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 3
    alpha = torch.rand(n, H, W, 1, generator=g)
    alpha[:, :2] = 0.0
    alpha[:, -2:] = 1.0
    straight = torch.rand(n, H, W, 3, generator=g)
    rgb = straight * alpha  # composited over black, as read_blender_split returns by default
    c2w = torch.from_numpy(np.stack([_translate(0, 0, 4), _rot_y_90_at(3, 1, 2), _generic_c2w()])).float()
    k = Intrinsics(fx=9.0, fy=9.0, cx=W / 2, cy=H / 2, width=W, height=H)
    path = write_blender_split(tmp_path, "train", rgb, alpha, c2w, k)
    assert path == os.path.join(str(tmp_path), "transforms_train.json")
    meta = json.load(open(path))
    assert set(meta) == {"camera_angle_x", "frames"}
    assert meta["camera_angle_x"] == pytest.approx(2 * math.atan(0.5 * W / 9.0))
    assert [f["file_path"] for f in meta["frames"]] == ["./train/r_000", "./train/r_001", "./train/r_002"]
    assert sorted(os.listdir(tmp_path / "train")) == ["r_000.png", "r_001.png", "r_002.png"]  # no temporaries
    assert sorted(os.listdir(tmp_path)) == ["train", "transforms_train.json"]
    with Image.open(tmp_path / "train" / "r_000.png") as im:
        assert im.mode == "RGBA" and im.size == (W, H)
        file_alpha = np.asarray(im)[..., 3]
    assert (file_alpha[-2:] == 0).all() and (file_alpha[:2] == 255).all()  # top-down in the file

    s = read_blender_split(tmp_path, "train")
    assert isinstance(s, BlenderSplit) and len(s) == n and s.resolution == (H, W)
    torch.testing.assert_close(s.alpha, alpha, atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(s.rgb, rgb, atol=1 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(s.c2w, c2w, atol=0, rtol=0)
    for ki in s.intrinsics:
        assert (ki.fx, ki.fy, ki.cx, ki.cy, ki.width, ki.height) == pytest.approx((9.0, 9.0, W / 2, H / 2, W, H))

    # written over white, read over white
    rgb_w = straight * alpha + (1 - alpha)
    write_blender_split(tmp_path, "white", rgb_w, alpha, c2w, k, background="white")
    torch.testing.assert_close(read_blender_split(tmp_path, "white", background="white").rgb, rgb_w,
                               atol=1 / 255 + 1e-6, rtol=0)


def test_write_pixel_intrinsics_top_level_and_per_frame(tmp_path):
    rgb = torch.rand(2, H, W, 3)
    c2w = torch.from_numpy(np.stack([_translate(0, 0, 4), _generic_c2w()])).float()
    off = Intrinsics(10.0, 7.0, 3.0, 2.5, W, H)
    centred = Intrinsics(9.0, 9.0, W / 2, H / 2, W, H)
    for name, intr, cam_x, per_frame in (("off", off, True, False), ("nox", centred, False, False),
                                         ("mixed", [off, centred], True, True)):
        path = write_blender_split(tmp_path, name, rgb, None, c2w, intr, camera_angle_x=cam_x, prefix="img")
        meta = json.load(open(path))
        assert "camera_angle_x" not in meta
        holder = meta["frames"][0] if per_frame else meta
        assert holder["fl_x"] == (9.0 if name == "nox" else off.fx) and holder["w"] == W and holder["h"] == H
        assert ("fl_x" in meta) == (not per_frame) and ("fl_x" in meta["frames"][1]) == per_frame
        assert meta["frames"][1]["file_path"] == f"./{name}/img001"
        s = read_blender_split(tmp_path, name)
        want = intr if isinstance(intr, list) else [intr, intr]
        for a, b in zip(s.intrinsics, want):
            assert _kv(a) == pytest.approx(_kv(b))
        assert float(s.alpha.min()) == 1.0


def test_look_at_perspective_round_trip_mvp(tmp_path):
    h, w = 6, 10
    eyes = torch.tensor([[2.5, 1.8, 3.2], [-3.0, -1.2, 2.1], [0.3, 4.0, -0.5]], dtype=torch.float64)
    view = look_at(eyes, torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)).float()
    proj = perspective(40.0, w / h, 0.5, 20.0)
    c2w = c2w_from_view(view)
    torch.testing.assert_close(c2w[:, :3, 3], eyes.float())
    k = intrinsics_from_projection(proj, w, h)
    assert k.cx == pytest.approx(w / 2) and k.cy == pytest.approx(h / 2)
    assert k.fy == pytest.approx(0.5 * h / math.tan(math.radians(20.0)), rel=1e-6)
    torch.testing.assert_close(k.projection(0.5, 20.0), proj, rtol=1e-6, atol=1e-6)
    write_blender_split(tmp_path, "test", torch.zeros(3, h, w, 3), torch.ones(3, h, w, 1), c2w, k)
    s = read_blender_split(tmp_path, "test")
    want = (proj @ view).double()
    got = s.mvp(0.5, 20.0).double()
    scale = want.abs().amax(dim=(-2, -1), keepdim=True)
    assert float(((got - want).abs() / scale).max()) < 1e-5
    torch.testing.assert_close(s.eye(), eyes.float())
    # an off-centre projection survives too (per-frame pixel intrinsics)
    k_off = Intrinsics(11.0, 6.5, 4.2, 2.1, w, h)
    p_off = k_off.projection(0.5, 20.0)
    k_back = intrinsics_from_projection(p_off, w, h)
    assert (k_back.fx, k_back.fy, k_back.cx, k_back.cy) == pytest.approx((11.0, 6.5, 4.2, 2.1), rel=1e-6)


def _cube_render(mvp: torch.Tensor, res=32):
    m = rl_mesh.cube()
    clip = transform_points(mvp.float(), m.verts).contiguous()
    rast, _ = rastlit.rasterize(clip, m.faces.int().contiguous(), (res, res))
    cover = (rast[..., 3:] > 0).float()
    # flat colour per face (triangle id), so the images carry more than the silhouette
    tri = rast[..., 3].long()
    palette = torch.rand(13, 3, generator=torch.Generator().manual_seed(1))
    palette[0] = 0
    return palette[tri] * cover, cover


def test_render_round_trip_coverage(tmp_path):
    res, near, far = 32, 0.5, 20.0
    eyes = torch.tensor([[2.5, 1.8, 3.2], [-3.1, -1.3, 2.2]])
    view = look_at(eyes)
    proj = perspective(45.0, 1.0, near, far)
    rgb, cover = _cube_render(proj @ view, res)
    assert 50 < float(cover[0].sum()) < res * res - 50
    write_blender_split(tmp_path, "train", rgb, cover, c2w_from_view(view), intrinsics_from_projection(proj, res, res))
    s = read_blender_split(tmp_path, "train")
    assert torch.equal(s.alpha, cover)
    torch.testing.assert_close(s.rgb, rgb, atol=0.5 / 255 + 1e-6, rtol=0)
    rgb2, cover2 = _cube_render(s.mvp(near, far), res)
    assert torch.equal(cover2, cover)
    torch.testing.assert_close(rgb2, rgb)


# --------------------------------------------------------------------------------- bad input

def test_missing_dataset_folder(tmp_path):
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        read_blender_split(missing, "train")
    assert not has_split(missing, "train")


def test_missing_split_json(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0})
    with pytest.raises(FileNotFoundError) as e:
        read_blender_split(tmp_path, "val")
    assert os.path.join(str(tmp_path), "transforms_val.json") in str(e.value) and "train" in str(e.value)


def test_missing_image(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0})
    _write_json(tmp_path, "val", {"camera_angle_x": 1.0, "frames": [
        {"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()},
        {"file_path": "./val/r_7", "transform_matrix": np.eye(4).tolist()}]})
    with pytest.raises(FileNotFoundError) as e:
        read_blender_split(tmp_path, "val")
    msg = str(e.value)
    assert "transforms_val.json" in msg and "frame 1" in msg and "r_7" in msg


def _png_bytes(h=32, w=32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (h, w, 4), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["truncated", "random_bytes", "empty"])
def test_corrupt_png(tmp_path, kind):
    data = _png_bytes()
    payload = {"truncated": data[: len(data) // 2],
               "random_bytes": np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes(),
               "empty": b""}[kind]
    os.makedirs(tmp_path / "train")
    (tmp_path / "train" / "r_0.png").write_bytes(payload)
    _write_json(tmp_path, "train", {"camera_angle_x": 1.0, "frames": [
        {"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]})
    with pytest.raises(ValueError) as e:
        read_blender_split(tmp_path, "train")
    assert os.path.join("train", "r_0.png") in str(e.value) and "frame 0" in str(e.value)


def test_corrupt_mask_file(tmp_path):
    _save_png(str(tmp_path / "train" / "r_0.png"), _rgba()[..., :3])
    (tmp_path / "train" / "r_0_mask.png").write_bytes(_png_bytes(H, W)[:40])
    _write_json(tmp_path, "train", {"camera_angle_x": 1.0, "frames": [
        {"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}]})
    with pytest.raises(ValueError, match="r_0_mask.png"):
        read_blender_split(tmp_path, "train")


def _bad_matrices():
    eye = np.eye(4)
    rank2 = eye.copy()
    rank2[:3, 2] = rank2[:3, 0] + rank2[:3, 1]
    nan = eye.copy().tolist()
    nan[1][3] = float("nan")
    inf = eye.copy().tolist()
    inf[0][0] = float("inf")
    zero3 = eye.copy()
    zero3[:3, :3] = 0
    projective = eye.copy()
    projective[3, 2] = -1
    return {
        "3x4": eye[:3].tolist(),
        "4x3": eye[:, :3].tolist(),
        "ragged": [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "flat": list(range(16)),
        "string_entry": [[1, 0, 0, "x"], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        "nan": nan,
        "inf": inf,
        "singular_zero_rotation": zero3.tolist(),
        "singular_rank2": rank2.tolist(),
        "not_affine": projective.tolist(),
    }


@pytest.mark.parametrize("case", list(_bad_matrices()))
def test_bad_transform_matrix(tmp_path, case):
    bad = _bad_matrices()[case]
    _dataset(tmp_path, [_translate(0, 0, 4), np.eye(4)], {"camera_angle_x": 1.0})
    meta = json.load(open(tmp_path / "transforms_train.json"))
    meta["frames"][1]["transform_matrix"] = bad
    with open(tmp_path / "transforms_train.json", "w") as fh:
        json.dump(meta, fh)  # NaN / Infinity are valid for Python's json
    with pytest.raises(ValueError) as e:
        read_blender_split(tmp_path, "train")
    msg = str(e.value)
    assert "transforms_train.json" in msg and "frame 1" in msg and "r_1" in msg and "transform_matrix" in msg


def test_image_size_disagrees_with_intrinsics(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"fl_x": 10.0, "fl_y": 10.0, "cx": 4.0, "cy": 3.0, "w": W + 2, "h": H})
    with pytest.raises(ValueError, match=r"8x6.*w=10") as e:
        read_blender_split(tmp_path, "train")
    assert "frame 0" in str(e.value)


def test_image_sizes_disagree_with_each_other(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4), _translate(0, 0, 5)], {"camera_angle_x": 1.0},
             images=[_rgba(), _rgba(h=H + 2, seed=1)])
    with pytest.raises(ValueError) as e:
        read_blender_split(tmp_path, "train")
    msg = str(e.value)
    assert "r_1.png" in msg and "frame 1" in msg and "8x8" in msg and "8x6" in msg


def test_no_alpha_and_no_mask(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0}, images=[_rgba()[..., :3]])
    with pytest.raises(ValueError) as e:
        read_blender_split(tmp_path, "train")
    msg = str(e.value)
    assert "r_0.png" in msg and "no alpha" in msg and "mask_path" in msg and "r_0_mask.png" in msg


def test_missing_mask_path_file(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0}, frame_extra={0: {"mask_path": "m/r_0.png"}})
    with pytest.raises(FileNotFoundError, match="frame 0.*r_0.png"):
        read_blender_split(tmp_path, "train")


def test_empty_split(tmp_path):
    _write_json(tmp_path, "train", {"camera_angle_x": 1.0, "frames": []})
    with pytest.raises(ValueError, match=r"transforms_train\.json.*no frames"):
        read_blender_split(tmp_path, "train")


def test_missing_intrinsics(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {})
    with pytest.raises(ValueError, match=r"transforms_train\.json, frame 0.*camera_angle_x.*fl_x"):
        read_blender_split(tmp_path, "train")


@pytest.mark.parametrize("meta", [{"camera_angle_x": 0.0}, {"camera_angle_x": "wide"}, {"fl_x": -3.0},
                                  {"fl_x": 8.0, "k1": 0.1}, {"fl_x": 8.0, "camera_model": "OPENCV_FISHEYE"}])
def test_bad_intrinsics_values(tmp_path, meta):
    _dataset(tmp_path, [_translate(0, 0, 4)], meta)
    with pytest.raises(ValueError, match=r"transforms_train\.json, frame 0"):
        read_blender_split(tmp_path, "train")


def test_invalid_json(tmp_path):
    (tmp_path / "transforms_train.json").write_text('{"camera_angle_x": 1.0, "frames": [')
    with pytest.raises(ValueError, match=r"transforms_train\.json.*not valid JSON"):
        read_blender_split(tmp_path, "train")
    (tmp_path / "transforms_train.json").write_text('[1, 2]')
    with pytest.raises(ValueError, match=r"transforms_train\.json"):
        read_blender_split(tmp_path, "train")


def test_downscale_must_divide(tmp_path):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0})
    with pytest.raises(ValueError, match=r"downscale=4.*8x6"):
        read_blender_split(tmp_path, "train", downscale=4)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="downscale"):
            read_blender_split(tmp_path, "train", downscale=bad)
    with pytest.raises(ValueError, match="downscale=4"):
        Intrinsics(8.0, 8.0, 4.0, 3.0, 8, 6).scaled(4)


@pytest.mark.parametrize("bg", ["random", "grey", (0.1, 0.2), (0.0, 0.5, 2.0), None])
def test_bad_background(tmp_path, bg):
    _dataset(tmp_path, [_translate(0, 0, 4)], {"camera_angle_x": 1.0})
    with pytest.raises(ValueError, match="background"):
        read_blender_split(tmp_path, "train", background=bg)


def test_write_bad_input(tmp_path):
    k = Intrinsics(8.0, 8.0, 4.0, 3.0, W, H)
    rgb, c2w = torch.zeros(2, H, W, 3), torch.eye(4).repeat(2, 1, 1)
    with pytest.raises(ValueError, match="alpha"):
        write_blender_split(tmp_path, "a", rgb, torch.ones(2, H, W + 1, 1), c2w, k)
    with pytest.raises(ValueError, match="c2w"):
        write_blender_split(tmp_path, "b", rgb, None, torch.eye(4), k)
    singular = c2w.clone()
    singular[1, :3, :3] = 0
    with pytest.raises(ValueError, match=r"c2w\[1\].*singular"):
        write_blender_split(tmp_path, "c", rgb, None, singular, k)
    with pytest.raises(ValueError, match="intrinsics"):
        write_blender_split(tmp_path, "d", rgb, None, c2w, Intrinsics(8.0, 8.0, 4.0, 3.0, W * 2, H))
    with pytest.raises(ValueError, match="intrinsics"):
        write_blender_split(tmp_path, "e", rgb, None, c2w, [k])
    with pytest.raises(ValueError, match="perspective"):
        intrinsics_from_projection(torch.eye(4), W, H)
    assert not any(has_split(tmp_path, s) for s in "abcde")
