"""rastlit.data: the batch contract, SyntheticDataModule, export to the Blender format and back
through BlenderDataModule, the export CLI, and the scene estimation (optical axes, visual hull).

The file format itself (reader/writer, intrinsics, masks) is covered by tests/test_blender_io.py.
Everything here renders tiny images (24-48 px) of small procedural targets into tmp folders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rastlit import mesh as rl_mesh
from rastlit.camera import look_at, ndc_to_pixel, perspective, transform_points
from rastlit.data import (
    BATCH_KEYS,
    BlenderDataModule,
    SyntheticDataModule,
    load_target,
    optical_axes_centre,
    render_target,
    scene_bounds,
)
from rastlit.data.blender import c2w_from_view, intrinsics_from_projection, write_blender_split
from rastlit.data.export import export_blender

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"bumpy_sphere": {"subdivisions": 2}}
RES = 32


def _synthetic(**kw) -> SyntheticDataModule:
    args = dict(target="bumpy_sphere", procedural=SMALL, num_views=4, num_val_views=2, num_test_views=2,
                resolution=RES, batch_size=3, seed=0)
    args.update(kw)
    return SyntheticDataModule(**args)


def _splits(dm):
    return {"train": dm.train_set, "val": dm.val_set, "test": dm.test_set}


def _pixels(mvp: torch.Tensor, pts: torch.Tensor, resolution) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous pixel positions [B,V,2] and clip w [B,V] of world points [V,3], in float64."""
    clip = transform_points(mvp.to(torch.float64), pts.to(torch.float64))
    return ndc_to_pixel(clip[..., :2] / clip[..., 3:], resolution), clip[..., 3]


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def _rigid_view(rot: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """World-to-eye [N,4,4] float64 with rotations ``rot [N,3,3]`` and camera centres ``eye [N,3]``."""
    n = rot.shape[0]
    v = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    v[:, :3, :3] = rot.to(torch.float64)
    v[:, :3, 3] = -(rot.to(torch.float64) @ eye.to(torch.float64).unsqueeze(-1)).squeeze(-1)
    return v


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The workloads here are tiny; on a loaded 2-core machine torch's intra-op threads spin
    against each other (the visual hull took 10x longer with 2 threads). Restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def synth():
    dm = _synthetic()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def exported(synth, tmp_path_factory):
    """The synthetic module written as a Blender-format folder (read-only for the tests: copy
    it before changing anything)."""
    root = str(tmp_path_factory.mktemp("exported"))
    paths = export_blender(synth, root)
    return root, paths


@pytest.fixture(scope="module")
def cube_dm():
    dm = SyntheticDataModule(target="cube", procedural={"cube": {"size": 1.3}}, num_views=12, num_val_views=1,
                             num_test_views=1, resolution=32)
    dm.setup()
    return dm


# ------------------------------------------------------------------------ SyntheticDataModule

def test_synthetic_batches_hold_exactly_the_contract(synth):
    h, w = synth.resolution
    assert (h, w) == (RES, RES)
    for name, loader in (("train", synth.train_dataloader()), ("val", synth.val_dataloader()),
                         ("test", synth.test_dataloader())):
        for batch in loader:
            assert set(batch) == set(BATCH_KEYS), name
            b = batch["index"].shape[0]
            assert batch["index"].dtype == torch.int64
            shapes = {"mvp": (b, 4, 4), "view": (b, 4, 4), "proj": (b, 4, 4), "eye": (b, 3),
                      "rgb": (b, h, w, 3), "alpha": (b, h, w, 1)}
            for k, shape in shapes.items():
                assert tuple(batch[k].shape) == shape, (name, k)
                assert batch[k].dtype == torch.float32, (name, k)
                assert bool(torch.isfinite(batch[k]).all()), (name, k)
            torch.testing.assert_close(batch["mvp"], batch["proj"] @ batch["view"], atol=1e-6, rtol=1e-6)
            # eye is the camera centre: view @ [eye, 1] = [0, 0, 0, 1]
            eh = torch.cat([batch["eye"], torch.ones(b, 1)], -1).unsqueeze(-1)
            centre = (batch["view"].double() @ eh.double()).squeeze(-1)
            torch.testing.assert_close(centre, torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(b, 4),
                                       atol=1e-5, rtol=0)
            assert float(batch["rgb"].min()) >= 0 and float(batch["rgb"].max()) <= 1
            assert float(batch["alpha"].min()) >= 0 and float(batch["alpha"].max()) <= 1


def test_synthetic_no_ground_truth_in_batches(synth):
    for ds in _splits(synth).values():
        assert set(ds.tensors) == set(BATCH_KEYS)
        assert set(ds[0]) == set(BATCH_KEYS)
    # the ground truth is kept on the module, for evaluation only
    gt = synth.gt_mesh
    assert gt is not None and gt.texture is None and gt.vertex_colors is None
    target = load_target("bumpy_sphere", SMALL)
    assert torch.equal(gt.verts, target.verts) and torch.equal(gt.faces, target.faces)


def test_synthetic_renders_are_deterministic():
    a, b = _synthetic(), _synthetic()
    a.setup()
    b.setup()
    for name in ("train", "val", "test"):
        ta, tb = _splits(a)[name].tensors, _splits(b)[name].tensors
        for k in BATCH_KEYS:
            assert torch.equal(ta[k], tb[k]), (name, k)


def test_synthetic_splits_have_different_cameras(synth):
    eyes = {n: ds.tensors["eye"] for n, ds in _splits(synth).items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        d = torch.cdist(eyes[a].double(), eyes[b].double())
        assert float(d.min()) > 1e-3, (a, b)
    # every camera at the configured radius, looking at the origin (its -z axis through it)
    for ds in _splits(synth).values():
        e, v = ds.tensors["eye"].double(), ds.tensors["view"].double()
        torch.testing.assert_close(e.norm(dim=-1), torch.full((e.shape[0],), 3.0, dtype=torch.float64),
                                   atol=1e-5, rtol=0)
        origin_cam = v[:, :3, 3]  # the origin in camera space
        torch.testing.assert_close(origin_cam, torch.tensor([0, 0, -3.0], dtype=torch.float64).expand_as(origin_cam),
                                   atol=1e-5, rtol=0)


def test_synthetic_orbit_held_out_cameras_differ_from_training():
    dm = _synthetic(cameras="orbit", val_cameras="orbit", test_cameras="orbit", num_views=8, num_val_views=4,
                    num_test_views=4)
    eyes = {split: dm.cameras_for(split)[2].double() for split in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert float(torch.cdist(eyes[a], eyes[b]).min()) > 1e-3, (a, b)


def test_synthetic_target_covers_part_of_each_image(synth):
    for name, ds in _splits(synth).items():
        alpha, rgb = ds.tensors["alpha"], ds.tensors["rgb"]
        cover = alpha.mean(dim=(1, 2, 3))
        assert bool(((cover > 0.1) & (cover < 0.9)).all()), (name, cover)
        # background pixels are black (the default background)
        assert bool((alpha == 0).any()), name
        assert float(rgb[(alpha == 0).expand_as(rgb)].abs().max()) == 0.0, name
        # lit: covered pixels are not black
        assert float(rgb[(alpha == 1).expand_as(rgb)].mean()) > 0.1, name


def test_synthetic_setup_twice_does_not_rerender(monkeypatch):
    dm = _synthetic(num_views=1, num_val_views=1, num_test_views=1, resolution=24)
    dm.setup("fit")
    sets = (dm.train_set, dm.val_set, dm.test_set)

    def fail(*a, **k):
        raise AssertionError("render_target called again")

    monkeypatch.setattr("rastlit.data.synthetic.render_target", fail)
    dm.setup("fit")
    dm.setup("test")
    assert (dm.train_set, dm.val_set, dm.test_set) == sets
    assert all(a is b for a, b in zip((dm.train_set, dm.val_set, dm.test_set), sets))


def test_synthetic_loader_batch_sizes(synth):
    assert [b["index"].shape[0] for b in synth.train_dataloader()] == [3, 1]
    seen = torch.cat([b["index"] for b in synth.train_dataloader()])
    assert sorted(seen.tolist()) == [0, 1, 2, 3]
    # val / test: min(batch_size, len), in order
    val = list(synth.val_dataloader())
    assert [b["index"].tolist() for b in val] == [[0, 1]]
    assert [b["index"].shape[0] for b in synth.test_dataloader()] == [2]


@pytest.mark.parametrize("kwargs, name", [
    ({"cameras": "spiral"}, "data.cameras"),
    ({"val_cameras": "spiral"}, "data.val_cameras"),
    ({"test_cameras": "grid"}, "data.test_cameras"),
    ({"num_views": 0}, "data.num_views"),
    ({"num_val_views": -1}, "data.num_val_views"),
    ({"num_test_views": True}, "data.num_test_views"),
    ({"num_views": 2.0}, "data.num_views"),
    ({"background": "red"}, "background"),
    ({"background": [0.0, 1.0]}, "background"),
    ({"batch_size": 0}, "data.batch_size"),
])
def test_synthetic_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        _synthetic(**kwargs)


def test_synthetic_texture_needs_uvs():
    dm = _synthetic(texture="procedural", num_views=1, num_val_views=1, num_test_views=1, resolution=24)
    with pytest.raises(ValueError, match=r"data\.texture.*UVs"):
        dm.setup()


def test_synthetic_mesh_file_target_is_normalised(tmp_path):
    cube = rl_mesh.cube(size=2.0)
    verts = cube.verts * torch.tensor([3.0, 1.5, 1.0]) + torch.tensor([5.0, -2.0, 1.0])
    path = str(tmp_path / "box.obj")
    rl_mesh.save_mesh(dataclasses.replace(cube, verts=verts, uv=None, uv_faces=None), path)
    dm = SyntheticDataModule(target=path, num_views=2, num_val_views=1, num_test_views=1, resolution=24)
    dm.setup()
    v = dm.gt_mesh.verts
    torch.testing.assert_close(v.min(0).values, torch.tensor([-1.0, -0.5, -1 / 3]), atol=1e-6, rtol=0)
    torch.testing.assert_close(v.max(0).values, torch.tensor([1.0, 0.5, 1 / 3]), atol=1e-6, rtol=0)
    cover = dm.train_set.tensors["alpha"].mean(dim=(1, 2, 3))
    assert bool((cover > 0.02).all()) and bool((cover < 0.9).all())
    # without normalisation the box stays where the file put it
    assert torch.equal(load_target(path, normalize=False).verts, verts)
    with pytest.raises(FileNotFoundError, match="no_such_mesh"):
        load_target(str(tmp_path / "no_such_mesh.obj"))


def test_synthetic_texture_image_file_is_used(tmp_path):
    colour = np.array([204, 51, 102], np.uint8)  # exactly (0.8, 0.2, 0.4)
    path = str(tmp_path / "tex.png")
    Image.fromarray(np.broadcast_to(colour, (16, 16, 3)).copy()).save(path)
    dm = SyntheticDataModule(target="uv_sphere", procedural={"uv_sphere": {"rows": 8, "cols": 16}}, texture=path,
                             render={"shading": "unlit"}, num_views=2, num_val_views=1, num_test_views=1,
                             resolution=24)
    dm.setup()
    expected = torch.tensor([0.8, 0.2, 0.4])
    torch.testing.assert_close(dm.gt_texture, expected.expand(16, 16, 3), atol=1e-6, rtol=0)
    assert dm.gt_mesh.texture is None  # kept apart from the geometry
    for ds in _splits(dm).values():
        rgb, alpha = ds.tensors["rgb"], ds.tensors["alpha"][..., 0]
        covered = alpha == 1
        assert int(covered.sum()) > 50
        torch.testing.assert_close(rgb[covered], expected.expand(int(covered.sum()), 3), atol=1e-5, rtol=0)
        # edge pixels are the colour premultiplied by their coverage (black background)
        edge = (alpha > 0) & (alpha < 1)
        torch.testing.assert_close(rgb[edge], alpha[edge].unsqueeze(-1) * expected, atol=1e-5, rtol=0)


# ------------------------------------------------------------- export -> BlenderDataModule

def test_export_writes_the_splits_and_mesh(exported, synth):
    root, paths = exported
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        assert paths[split] == os.path.join(root, f"transforms_{split}.json")
        with open(paths[split]) as fh:
            meta = json.load(fh)
        assert len(meta["frames"]) == n
    assert paths["mesh"] == os.path.join(root, "mesh_gt.obj") and os.path.isfile(paths["mesh"])


def test_export_round_trip_images_and_cameras(exported, synth):
    root, _ = exported
    bm = BlenderDataModule(root=root)
    bm.setup()
    assert bm.split_sources == {"train": "train", "val": "val", "test": "test"}
    assert bm.resolution == synth.resolution
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.9, -0.4, 0.3], [-0.7, 0.8, -0.5], [0.2, 0.6, 0.95], [-1.0, -1.0, 1.0]])
    for name in ("train", "val", "test"):
        s, b = _splits(synth)[name].tensors, _splits(bm)[name].tensors
        assert set(b) == set(BATCH_KEYS)
        assert torch.equal(b["index"], s["index"])
        torch.testing.assert_close(b["alpha"], s["alpha"], atol=0.5 / 255 + 1e-6, rtol=0)
        torch.testing.assert_close(b["rgb"], s["rgb"], atol=1 / 255 + 1e-6, rtol=0)
        torch.testing.assert_close(b["view"], s["view"], atol=1e-5, rtol=0)
        torch.testing.assert_close(b["eye"], s["eye"], atol=1e-5, rtol=0)
        torch.testing.assert_close(b["mvp"], b["proj"] @ b["view"], atol=1e-6, rtol=1e-6)
        # the intrinsics rows of the projections agree; only the clip planes differ
        torch.testing.assert_close(b["proj"][:, [0, 1, 3]], s["proj"][:, [0, 1, 3]], atol=1e-6, rtol=0)
        px_s, w_s = _pixels(s["mvp"], pts, synth.resolution)
        px_b, w_b = _pixels(b["mvp"], pts, bm.resolution)
        torch.testing.assert_close(px_b, px_s, atol=1e-3, rtol=0)
        torch.testing.assert_close(w_b, w_s, atol=1e-5, rtol=0)


def test_export_round_trip_non_square(tmp_path):
    dm = _synthetic(num_views=2, num_val_views=1, num_test_views=1, resolution=[24, 40])
    export_blender(dm, str(tmp_path))
    bm = BlenderDataModule(root=str(tmp_path), near=0.5, far=10.0)
    bm.setup()
    assert bm.resolution == (24, 40)
    for name in ("train", "val", "test"):
        s, b = _splits(dm)[name].tensors, _splits(bm)[name].tensors
        # same clip planes as the synthetic cameras: the whole mvp agrees
        torch.testing.assert_close(b["proj"], s["proj"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b["mvp"], s["mvp"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b["alpha"], s["alpha"], atol=0.5 / 255 + 1e-6, rtol=0)


def test_export_round_trip_white_background(tmp_path):
    dm = _synthetic(num_views=2, num_val_views=1, num_test_views=1, resolution=24, background="white")
    export_blender(dm, str(tmp_path))
    bm = BlenderDataModule(root=str(tmp_path), background="white")
    bm.setup()
    torch.testing.assert_close(bm.train_set.tensors["alpha"], dm.train_set.tensors["alpha"],
                               atol=0.5 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(bm.train_set.tensors["rgb"], dm.train_set.tensors["rgb"], atol=1 / 255 + 1e-6, rtol=0)


def test_export_gt_mesh_loads_and_equals_target(exported, synth):
    root, paths = exported
    bm = BlenderDataModule(root=root, gt_mesh=os.path.join(root, "mesh_gt.obj"))
    bm.setup()
    gt = bm.gt_mesh
    assert gt is not None
    assert torch.equal(gt.faces, synth.gt_mesh.faces)
    torch.testing.assert_close(gt.verts, synth.gt_mesh.verts, atol=1e-6, rtol=0)
    # never in a batch
    assert set(bm.train_set.tensors) == set(BATCH_KEYS)
    assert BlenderDataModule(root=root).gt_mesh is None


def test_export_mesh_rerendered_reproduces_masks(exported):
    root, paths = exported
    bm = BlenderDataModule(root=root, gt_mesh=paths["mesh"])
    bm.setup()
    for name, ds in _splits(bm).items():
        t = ds.tensors
        _, alpha = render_target(bm.gt_mesh, t["view"], t["proj"], ds.resolution, {"shading": "unlit"})
        for i in range(alpha.shape[0]):
            assert _iou(alpha[i], t["alpha"][i]) > 0.98, (name, i)


# --------------------------------------------------------------------------------- the CLI

def test_export_cli(tmp_path):
    out = tmp_path / "torus_set"
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "rastlit.data.export", "--out", str(out), "--num-views", "3",
                           "--num-val-views", "1", "--num-test-views", "1", "--resolution", "24", "--target", "torus"],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote" in proc.stdout
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        path = out / f"transforms_{split}.json"
        assert path.is_file(), split
        meta = json.loads(path.read_text())
        assert len(meta["frames"]) == n
        for fr in meta["frames"]:
            with Image.open(out / (fr["file_path"] + ".png")) as im:
                assert im.size == (24, 24) and im.mode == "RGBA"
    assert (out / "mesh_gt.obj").is_file()
    bm = BlenderDataModule(root=str(out), gt_mesh=str(out / "mesh_gt.obj"))
    bm.setup()
    assert bm.resolution == (24, 24) and len(bm.train_set) == 3
    # the geometry is the torus (UV seams may duplicate vertices)
    torus = rl_mesh.torus()
    assert bm.gt_mesh.num_faces == torus.num_faces
    got = {tuple(np.round(p, 5)) for p in bm.gt_mesh.verts.tolist()}
    want = {tuple(np.round(p, 5)) for p in torus.verts.tolist()}
    assert got == want


# ------------------------------------------------------------------ BlenderDataModule behaviour

def _copy(exported, tmp_path, drop=()) -> str:
    root = str(tmp_path / "data")
    shutil.copytree(exported[0], root)
    for split in drop:
        os.remove(os.path.join(root, f"transforms_{split}.json"))
    return root


def _bigger_export(tmp_path_factory, n=10) -> str:
    dm = _synthetic(num_views=n, num_val_views=1, num_test_views=1, resolution=24)
    root = str(tmp_path_factory.mktemp("ten"))
    export_blender(dm, root)
    return root


@pytest.fixture(scope="module")
def ten_views(tmp_path_factory):
    return _bigger_export(tmp_path_factory)


@pytest.mark.parametrize("fallback, k, idx", [(3, 3, [0, 3, 6]), (4, 2, [0, 2, 4, 6]), (8, 1, list(range(8))),
                                              (20, 1, list(range(10)))])
def test_blender_val_fallback_slice_of_train(ten_views, tmp_path, fallback, k, idx):
    root = str(tmp_path / "data")
    shutil.copytree(ten_views, root)
    os.remove(os.path.join(root, "transforms_val.json"))
    bm = BlenderDataModule(root=root, val_fallback_views=fallback)
    bm.setup()  # a test split exists: no warning expected about it
    assert len(bm.train_set) == 10
    assert bm.split_sources["val"] == f"train[::{k}][:{len(idx)}]"
    assert bm.split_sources["test"] == "test"
    assert len(bm.val_set) == len(idx)
    tr, va = bm.train_set.tensors, bm.val_set.tensors
    for key in ("rgb", "alpha", "mvp", "view", "proj", "eye"):
        assert torch.equal(va[key], tr[key][idx]), key
    assert set(va) == set(BATCH_KEYS)


def test_blender_test_falls_back_to_val_with_warning(exported, tmp_path):
    root = _copy(exported, tmp_path, drop=("test",))
    bm = BlenderDataModule(root=root)
    with pytest.warns(UserWarning, match=r"transforms_test\.json"):
        bm.setup()
    assert bm.split_sources == {"train": "train", "val": "val", "test": "val"}
    assert bm.test_set is bm.val_set


def test_blender_no_val_no_test(exported, tmp_path):
    root = _copy(exported, tmp_path, drop=("val", "test"))
    bm = BlenderDataModule(root=root, val_fallback_views=2)
    with pytest.warns(UserWarning, match=r"validation split.*train\[::2\]\[:2\]"):
        bm.setup()
    assert bm.split_sources == {"train": "train", "val": "train[::2][:2]", "test": "train[::2][:2]"}
    assert torch.equal(bm.test_set.tensors["rgb"], bm.train_set.tensors["rgb"][[0, 2]])


def _assert_between_clip_planes(ds, verts, near, far, name=""):
    """Every vertex lies between the clip planes: eye depth in (near, far), and z/w in (-1, 1)
    both exactly (float64) and as the float32 rasterizer input sees it."""
    t = ds.tensors
    depth = -transform_points(t["view"].double(), verts.double())[..., 2]
    assert float(depth.min()) > near and float(depth.max()) < far, (name, near, far, depth.min(), depth.max())
    for dtype in (torch.float64, torch.float32):
        clip = transform_points(t["mvp"].to(dtype), verts.to(dtype))
        zw = clip[..., 2] / clip[..., 3]
        assert bool((clip[..., 3] > 0).all()), (name, dtype)
        assert float(zw.min()) > -1 and float(zw.max()) < 1, (name, dtype, zw.min(), zw.max())


def test_blender_auto_clip_planes_contain_the_object(exported):
    root, paths = exported
    bm = BlenderDataModule(root=root, gt_mesh=paths["mesh"])
    bm.setup()
    # the cameras are 3 from the point their axes meet (the origin)
    assert 0 < bm.near < 1.0 < 5.0 < bm.far
    assert bm.near == pytest.approx(0.05 * 3.0, rel=1e-4)
    assert bm.far >= 3.0 * 3.0
    verts = bm.gt_mesh.verts
    for name, ds in _splits(bm).items():
        _assert_between_clip_planes(ds, verts, bm.near, bm.far, name)
        # one pair of clip planes for every split
        p = ds.tensors["proj"].double()
        n, f = bm.near, bm.far
        torch.testing.assert_close(p[:, 2, 2], torch.full_like(p[:, 2, 2], (f + n) / (n - f)), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(p[:, 2, 3], torch.full_like(p[:, 2, 3], 2 * f * n / (n - f)), atol=1e-6, rtol=1e-6)


def test_blender_explicit_clip_planes_are_used(exported, synth):
    root, _ = exported
    bm = BlenderDataModule(root=root, near=0.5, far=10.0)
    bm.setup()
    assert (bm.near, bm.far) == (0.5, 10.0)
    for name in ("train", "val", "test"):
        b, s = _splits(bm)[name].tensors, _splits(synth)[name].tensors
        torch.testing.assert_close(b["proj"], s["proj"], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(b["mvp"], s["mvp"], atol=1e-5, rtol=1e-5)
    bm2 = BlenderDataModule(root=root, near=1.25, far="auto")
    bm2.setup()
    assert bm2.near == 1.25 and bm2.far > 9.0
    with pytest.raises(ValueError, match=r"data\.near and data\.far"):
        BlenderDataModule(root=root, near=5.0, far=2.0).setup()


def test_blender_auto_clip_planes_single_training_view(tmp_path):
    dm = _synthetic(num_views=1, num_val_views=1, num_test_views=1, resolution=24)
    export_blender(dm, str(tmp_path))
    bm = BlenderDataModule(root=str(tmp_path), gt_mesh=str(tmp_path / "mesh_gt.obj"))
    bm.setup()
    _assert_between_clip_planes(bm.train_set, bm.gt_mesh.verts, bm.near, bm.far)


def test_blender_auto_clip_planes_forward_facing(tmp_path):
    target = load_target("bumpy_sphere", SMALL)
    eyes = torch.tensor([[-1.0, 0.0, 4.0], [0.0, 0.0, 4.0], [1.0, 0.0, 4.0]])
    view = look_at(eyes, eyes - torch.tensor([0.0, 0.0, 1.0]))
    proj = perspective(50.0, 1.0, 0.5, 10.0)
    rgb, alpha = render_target(target, view, proj.expand(3, 4, 4), (24, 24))
    write_blender_split(tmp_path, "train", rgb, alpha, c2w_from_view(view), intrinsics_from_projection(proj, 24, 24))
    write_blender_split(tmp_path, "test", rgb, alpha, c2w_from_view(view), intrinsics_from_projection(proj, 24, 24))
    bm = BlenderDataModule(root=str(tmp_path))
    bm.setup()
    _assert_between_clip_planes(bm.train_set, target.verts, bm.near, bm.far)


def test_blender_downscale_halves_resolution(exported):
    root, _ = exported
    full = BlenderDataModule(root=root)
    full.setup()
    half = BlenderDataModule(root=root, downscale=2)
    half.setup()
    assert half.resolution == (RES // 2, RES // 2)
    for name in ("train", "val", "test"):
        f, h = _splits(full)[name].tensors, _splits(half)[name].tensors
        assert tuple(h["rgb"].shape[1:3]) == (RES // 2, RES // 2)
        n = f["alpha"].shape[0]
        pooled = f["alpha"].reshape(n, RES // 2, 2, RES // 2, 2, 1).mean(dim=(2, 4))
        torch.testing.assert_close(h["alpha"], pooled, atol=1e-6, rtol=0)
        pooled_rgb = f["rgb"].reshape(n, RES // 2, 2, RES // 2, 2, 3).mean(dim=(2, 4))
        torch.testing.assert_close(h["rgb"], pooled_rgb, atol=1e-5, rtol=0)
        # the same cameras: NDC intrinsics do not change with the pixel size
        torch.testing.assert_close(h["proj"], f["proj"], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(h["view"], f["view"])


def test_blender_white_background(exported):
    root, _ = exported
    black = BlenderDataModule(root=root)
    black.setup()
    white = BlenderDataModule(root=root, background="white")
    white.setup()
    for name in ("train", "val", "test"):
        b, w = _splits(black)[name].tensors, _splits(white)[name].tensors
        assert torch.equal(w["alpha"], b["alpha"])
        empty = (w["alpha"] == 0).expand_as(w["rgb"])
        assert bool(empty.any()) and bool((w["rgb"][empty] == 1).all()), name
        torch.testing.assert_close(w["rgb"], b["rgb"] + (1 - b["alpha"]), atol=1e-6, rtol=0)


# ------------------------------------------------------------------ bad input, module level

@pytest.mark.parametrize("root", [None, "???", ""])
def test_blender_root_unset(root):
    with pytest.raises(ValueError, match=r"data\.root"):
        BlenderDataModule(root=root)


def test_blender_missing_folder(tmp_path):
    missing = str(tmp_path / "no_such_dataset")
    bm = BlenderDataModule(root=missing)
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        bm.setup()


def test_blender_missing_train_split(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"transforms_train\.json"):
        BlenderDataModule(root=str(tmp_path)).setup()


def test_blender_empty_split(tmp_path):
    (tmp_path / "transforms_train.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": []}))
    with pytest.raises(ValueError, match=r"transforms_train\.json.*no frames"):
        BlenderDataModule(root=str(tmp_path)).setup()


def test_blender_empty_val_split(exported, tmp_path):
    root = _copy(exported, tmp_path)
    with open(os.path.join(root, "transforms_val.json"), "w") as fh:
        json.dump({"camera_angle_x": 0.8, "frames": []}, fh)
    with pytest.raises(ValueError, match=r"transforms_val\.json.*no frames"):
        BlenderDataModule(root=root).setup()


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_blender_unreadable_gt_mesh(exported, tmp_path, kind):
    root, _ = exported
    path = tmp_path / ("nothing.obj" if kind == "missing" else "garbage.ply")
    if kind == "garbage":
        path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n\x00\x01\x02garbage")
    bm = BlenderDataModule(root=root, gt_mesh=str(path))
    with pytest.raises(ValueError, match=r"data\.gt_mesh=.*" + path.name.replace(".", r"\.")):
        bm.setup()


@pytest.mark.parametrize("split", ["val", "test"])
def test_blender_image_sizes_differ_between_splits(exported, tmp_path, split):
    root = _copy(exported, tmp_path)
    n, res = 1, 16
    view = look_at(torch.tensor([[0.0, 0.0, 3.0]]))
    proj = perspective(45.0, 1.0, 0.5, 10.0)
    write_blender_split(root, split, torch.zeros(n, res, res, 3), torch.ones(n, res, res, 1), c2w_from_view(view),
                        intrinsics_from_projection(proj, res, res))
    with pytest.raises(ValueError, match=f"{split} images are 16x16 but the training images {RES}x{RES}"):
        BlenderDataModule(root=root).setup()


@pytest.mark.parametrize("downscale", [0, 1.5, -2, True, "2"])
def test_blender_bad_downscale(exported, downscale):
    with pytest.raises(ValueError, match=r"data\.downscale"):
        BlenderDataModule(root=exported[0], downscale=downscale)


def test_blender_downscale_must_divide(exported):
    with pytest.raises(ValueError, match="downscale=3 does not divide"):
        BlenderDataModule(root=exported[0], downscale=3).setup()


def test_blender_resolution_before_setup(exported):
    with pytest.raises(RuntimeError, match="not set up"):
        BlenderDataModule(root=exported[0]).resolution


# ---------------------------------------------------------------------------- scene estimation

def test_optical_axes_centre_recovers_point():
    g = torch.Generator().manual_seed(3)
    target = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    eyes = target + (torch.rand(7, 3, generator=g, dtype=torch.float64) * 2 - 1) * 5
    view = look_at(eyes, target)
    assert view.dtype == torch.float64
    c = optical_axes_centre(view)
    assert c.dtype == torch.float64 and tuple(c.shape) == (3,)
    torch.testing.assert_close(c, target, atol=1e-9, rtol=0)
    # float32 views: still close
    torch.testing.assert_close(optical_axes_centre(view.float()), target, atol=1e-4, rtol=0)


def test_optical_axes_centre_parallel_axes():
    eyes = torch.tensor([[-1.0, 0.0, 4.0], [0.0, 0.5, 4.0], [1.0, 0.0, 4.0]], dtype=torch.float64)
    view = look_at(eyes, eyes - torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="parallel"):
        optical_axes_centre(view)
    with pytest.raises(ValueError, match="parallel"):
        optical_axes_centre(view[:1])  # one camera: a line, not a point


def _voxel(points: torch.Tensor) -> float:
    xs = points[:, 0].unique().sort().values
    return float((xs[1:] - xs[:-1]).min())


def test_scene_bounds_of_a_cube(cube_dm):
    t = cube_dm.train_set.tensors
    sb = scene_bounds(t["view"], t["mvp"], t["alpha"])
    vox = _voxel(sb.hull_points)
    assert 0 < vox < 0.1
    torch.testing.assert_close(sb.axes_centre, torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    assert float(sb.centre.abs().max()) <= vox + 1e-9
    torch.testing.assert_close(sb.half_extents, torch.full((3,), 0.65, dtype=torch.float64), atol=0, rtol=0.15)
    assert float(sb.hull_points.abs().max()) <= 0.65 + 3 * vox
    # the hull contains the cube: its corners' neighbourhoods survive
    assert float(sb.hull_points.abs().max(0).values.min()) >= 0.65 - vox
    assert sb.radius >= 0.65 * 3**0.5 - vox
    for f in ("centre", "half_extents", "axes_centre", "hull_points"):
        assert getattr(sb, f).dtype == torch.float64, f


def test_scene_bounds_follow_a_moved_world(cube_dm):
    t = cube_dm.train_set.tensors
    rot, eye, proj, alpha = t["view"][:, :3, :3], t["eye"].double(), t["proj"].double(), t["alpha"]
    view0 = _rigid_view(rot, eye)
    sb0 = scene_bounds(view0, proj @ view0, alpha)
    s, d = 2.5, torch.tensor([10.0, -4.0, 3.0], dtype=torch.float64)
    view1 = _rigid_view(rot, eye * s + d)  # same rotations, same images
    sb1 = scene_bounds(view1, proj @ view1, alpha)
    vox = _voxel(sb0.hull_points)
    torch.testing.assert_close(sb1.axes_centre, s * sb0.axes_centre + d, atol=1e-6, rtol=0)
    torch.testing.assert_close(sb1.centre, s * sb0.centre + d, atol=1e-5 * s, rtol=0)
    torch.testing.assert_close(sb1.half_extents, s * sb0.half_extents, atol=1e-5 * s, rtol=0)
    assert sb1.radius == pytest.approx(s * sb0.radius, rel=1e-5)
    assert abs(sb1.hull_points.shape[0] - sb0.hull_points.shape[0]) <= 0.01 * sb0.hull_points.shape[0]
    assert abs(_voxel(sb1.hull_points) - s * vox) <= 1e-6 * s


def test_scene_bounds_empty_hull(cube_dm):
    t = cube_dm.train_set.tensors
    with pytest.raises(ValueError, match=r"visual hull.*is empty"):
        scene_bounds(t["view"], t["mvp"], torch.zeros_like(t["alpha"]))
    # masks that disagree (each view sees the object somewhere else) carve everything away too
    alpha = torch.zeros_like(t["alpha"])
    alpha[0, :4, :4] = 1
    alpha[1:, -4:, -4:] = 1
    with pytest.raises(ValueError, match=r"visual hull.*is empty"):
        scene_bounds(t["view"], t["mvp"], alpha)
