"""The training framework: configs, data module, tasks, and the real CLI (`python -m rastlit.train`)
run as subprocesses from a temporary working directory (fast_dev_run, multirun, Optuna sweep,
DDP with 2 CPU processes over gloo, resume, W&B offline files).

Subprocesses, not in-process calls: Lightning's DDP launcher re-runs the command line for rank 1
(inside pytest it would re-launch pytest), and Hydra's entry point owns sys.argv and logging.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("hydra")
pytest.importorskip("torchmetrics")

import rastlit  # noqa: E402
import rastlit.train  # noqa: E402,F401  (makes rastlit.tasks / rastlit.conf this checkout's)
from rastlit import mesh as rl_mesh  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# Small problems: 32x32 images, a few views, a coarse start; a run takes a few seconds, most of
# it interpreter start-up.
TINY = ["data.resolution=32", "data.num_views=4", "data.num_val_views=2", "data.num_test_views=2",
        "data.batch_size=2", "num_threads=1"]
# an icosphere start (fixed sizes: 80 faces, 320 after the subdivision halfway)
TINY_MESH = TINY + ["task.init.source=ellipsoid", "task.init.subdivisions=1", "task.init.hull_resolution=16",
                    "task.schedule.subdivide_at=[0.5]", "task.eval.points=500",
                    "data.procedural.bumpy_sphere.subdivisions=2"]
TINY_TEX = TINY + ["experiment=texture_recovery_synthetic", "task.texture_size=32", "data.texture_size=32",
                   "data.procedural.uv_sphere.rows=8", "data.procedural.uv_sphere.cols=16"]


def run_cli(args: list[str], cwd: Path, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    pp = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(pp)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    env["WANDB_SILENT"] = "true"
    env["HYDRA_FULL_ERROR"] = "1"
    cmd = [sys.executable, "-m", "rastlit.train", *args]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}")
    return p


def run_dirs(log_dir: Path, task: str) -> list[Path]:
    return sorted(Path(p).parent for p in glob.glob(str(log_dir / task / "**" / "metrics.json"), recursive=True))


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def tiny_blender_dataset(root: Path, target: str = "bumpy_sphere", texture: str | None = None, res: int = 32) -> dict:
    """A small Blender-format folder written by rastlit.data.export (shaded differently from any
    task's model: Phong under two coloured lights)."""
    from rastlit.data import SyntheticDataModule
    from rastlit.data.export import export_blender

    render = {"shading": "phong", "ambient": 0.2,
              "lights": [{"direction": [0.3, 1.0, 0.5], "color": [1.0, 0.85, 0.7], "intensity": 0.8},
                         {"direction": [-0.8, -0.2, 0.4], "color": [0.4, 0.6, 1.0], "intensity": 0.5}]}
    proc = {"bumpy_sphere": {"subdivisions": 2}, "uv_sphere": {"rows": 8, "cols": 16}}
    dm = SyntheticDataModule(target=target, procedural=proc, texture=texture, texture_size=32, num_views=4,
                             num_val_views=2, num_test_views=2, resolution=res, render=render)
    return export_blender(dm, str(root))


# ----------------------------------------------------------------------------------------------
# Config composition (in-process, Hydra's compose API)
# ----------------------------------------------------------------------------------------------

GROUP_OPTIONS = {
    "task": ["mesh_fit", "texture_recovery"],
    "data": ["synthetic", "blender"],
    "optimizer": ["adam", "adam_uniform", "sgd"],
    "trainer": ["default", "cpu", "gpu", "ddp"],
    "logger": ["wandb", "csv", "none"],
    "callbacks": ["default", "none"],
    "paths": ["default"],
    "experiment": ["mesh_fit_detailed", "mesh_fit_soft", "texture_recovery_synthetic", "texture_recovery_cube"],
    "hparams_search": ["mesh_fit_optuna"],
    "launcher": ["joblib", "slurm"],
}


def _compose(overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module("rastlit.conf", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_config_dir_is_this_checkout():
    import rastlit.conf
    import rastlit.tasks

    if Path(rastlit.__file__).resolve().parent.parent != ROOT:
        pytest.skip("rastlit is imported from an installed copy, not from this checkout")

    assert Path(rastlit.conf.__file__).resolve().parent == ROOT / "conf"
    assert Path(rastlit.tasks.__file__).resolve().parent == ROOT / "tasks"


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUP_OPTIONS.items() for o in opts])
def test_compose_every_group_option(group, option):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    cfg = _compose([f"{group}={option}", "paths.output_dir=/tmp/unused"])
    assert cfg.hydra.runtime.choices[group] == option
    task = cfg.hydra.runtime.choices["task"]
    data = cfg.hydra.runtime.choices["data"]
    # everything outside hydra's own node resolves (interpolations between groups included), once
    # the mandatory values (data.root for blender data, the known mesh of texture recovery) are set
    job = cfg.copy()
    with open_dict(job):
        del job["hydra"]
        if data == "blender":
            assert OmegaConf.is_missing(job.data, "root")
            job.data.root = "/some/dataset"
        if task == "texture_recovery" and data == "blender":
            job.task.mesh = "/some/mesh.obj"
    OmegaConf.to_container(job, resolve=True)
    assert cfg.task_name == task
    # the task configures the task only: the data source stays the data group's choice
    assert cfg.data._target_.endswith({"blender": "BlenderDataModule", "synthetic": "SyntheticDataModule"}[data])
    assert job.task.background == job.data.background
    opt = instantiate(cfg.optimizer)
    assert opt.func.__name__ in ("Adam", "SGD", "AdamUniform") and opt.keywords["lr"] > 0  # the lr lives here
    if task == "mesh_fit" and group != "optimizer":
        assert opt.func.__name__ == "AdamUniform"
    if group == "trainer":
        assert cfg.trainer.accelerator == {"default": "cpu", "cpu": "cpu", "gpu": "gpu", "ddp": "cpu"}[option]
        if option == "ddp":
            assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 2
    if group == "logger":
        assert list(cfg.logger or {}) == {"wandb": ["wandb"], "csv": ["csv"], "none": []}[option]
        if option == "wandb":
            assert cfg.logger.wandb.offline is True
    if group == "callbacks":
        assert ("model_checkpoint" in (cfg.callbacks or {})) == (option == "default")
        assert cfg.callbacks.artefacts._target_.endswith("ArtefactWriter")
    if group == "hparams_search":
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
        assert cfg.hydra.sweeper.direction == "maximize" and cfg.optimized_metric == "val/psnr"
        assert "optimizer.lr" in cfg.hydra.sweeper.params
    else:
        assert cfg.optimized_metric == "psnr"
    if group == "launcher":
        assert cfg.hydra.launcher._target_.endswith(
            {"joblib": "JoblibLauncher", "slurm": "SlurmLauncher"}[option]), cfg.hydra.launcher._target_
    if group == "experiment" and option == "mesh_fit_soft":
        assert cfg.task.silhouette == "soft" and cfg.task.geometry.parameterization == "offsets"
    if group == "experiment" and option.startswith("texture_recovery"):
        assert cfg.data.texture == "procedural" and cfg.task.mesh == cfg.data.target


def test_task_and_data_instantiate_from_config():
    from hydra.utils import instantiate

    cfg = _compose(["paths.output_dir=/tmp/unused", "data.resolution=16", "data.num_views=2", "data.num_val_views=1",
                    "data.num_test_views=1", "data.procedural.bumpy_sphere.subdivisions=1"])
    dm = instantiate(cfg.data, _convert_="all")
    task = instantiate(cfg.task, optimizer=instantiate(cfg.optimizer, _convert_="all"), _convert_="all")
    assert type(task).__name__ == "MeshFitTask" and task.init_cfg["source"] == "hull"
    dm.setup("fit")
    assert dm.train_set.tensors["rgb"].shape == (2, 16, 16, 3)
    from hydra.errors import InstantiationException

    with pytest.raises((ValueError, InstantiationException), match="unknown keys"):
        instantiate(cfg.task, init={"sourse": "sphere"}, _convert_="all")


# ----------------------------------------------------------------------------------------------
# Tasks (in-process)
# ----------------------------------------------------------------------------------------------

def _setup_task(task, dm):
    """What Lightning does before training: set the data module up, then the task."""
    dm.setup("fit")
    task._trainer = type("T", (), {"datamodule": dm, "current_epoch": 0})()
    task.setup("fit")
    return task


def test_image_grid_and_png_are_top_down(tmp_path):
    from PIL import Image
    import numpy as np

    from rastlit.image import save_image
    from rastlit.tasks.base import image_grid

    img = torch.zeros(1, 4, 3, 3)
    img[0, 0] = 1.0  # rastlit row 0 = the BOTTOM row
    grid = image_grid([img, img[..., :1] * 0.5, img[:0]], pad=1)  # a grey row; an empty row fills white
    assert grid.shape == (3 * 5 + 1, 5, 3)
    save_image(grid, str(tmp_path / "a.png"))
    arr = np.asarray(Image.open(tmp_path / "a.png"))  # top-down, as image files are
    assert (arr[0] == 255).all() and (arr[5] == 255).all()             # padding
    assert (arr[1:4, 1:4] == 0).all() and (arr[4, 1:4] == 255).all()   # first row on top, its row 0 at its bottom
    assert (arr[6:9, 1:4] == 0).all() and (arr[9, 1:4] == 128).all()   # the grey row, expanded to RGB
    assert (arr[11:15, 1:4] == 255).all()                              # the empty row: white


def test_subdivide_and_total_variation():
    from rastlit.tasks.mesh_fit import subdivide
    from rastlit.tasks.texture_recovery import total_variation

    v, f = rl_mesh.icosphere(1)
    c = torch.rand(v.shape[0], 3)
    v2, f2, c2 = subdivide(v, f, c)
    assert f2.shape[0] == 4 * f.shape[0] and v2.shape[0] == v.shape[0] + 120  # + one vertex per edge
    assert f2.dtype == torch.int32 and torch.equal(v2[: v.shape[0]], v) and torch.equal(c2[: v.shape[0]], c)
    # a new vertex is the midpoint of an old edge, its colour the mean of the edge's colours
    e = f[0, :2].long()
    k = ((v2 - 0.5 * (v[e[0]] + v[e[1]])).norm(dim=1) < 1e-6).nonzero().flatten()
    assert k.numel() == 1 and torch.allclose(c2[k[0]], 0.5 * (c[e[0]] + c[e[1]]))
    # watertight: every edge in exactly two faces
    e = torch.cat([f2[:, [0, 1]], f2[:, [1, 2]], f2[:, [2, 0]]]).long().sort(1).values
    _, counts = torch.unique(e, dim=0, return_counts=True)
    assert (counts == 2).all()
    assert total_variation(torch.ones(4, 4, 3)) == 0
    t = torch.zeros(4, 4, 1)
    t[:, 0] = 1
    assert torch.isclose(total_variation(t), torch.tensor(0.5))  # 2 of 4 columns differ in u, v none


def test_mesh_fit_starts_from_the_data():
    """The start is placed and sized from the cameras and masks, wherever the object is."""
    from rastlit.data import SyntheticDataModule, make_views
    from rastlit.tasks.mesh_fit import MeshFitTask

    dm = SyntheticDataModule(target="cube", procedural={"cube": {"size": 1.3}}, resolution=48, num_views=12,
                             num_val_views=1, num_test_views=1)
    dm.setup("fit")
    # move and scale the world: the same images seen by rigid cameras at centres s * c + d (a
    # perspective image does not change when the object and the camera centres scale together)
    t = dict(dm.train_set.tensors)
    s, d = 2.5, torch.tensor([3.0, -1.0, 2.0])
    view = t["view"].clone()
    rot = view[:, :3, :3]
    view[:, :3, 3] = -(rot @ (t["eye"] * s + d).unsqueeze(-1)).squeeze(-1)
    moved = make_views((view, t["proj"]), t["eye"] * s + d, t["rgb"], t["alpha"])
    dm.train_set = moved
    task = _setup_task(MeshFitTask(init={"source": "ellipsoid", "subdivisions": 2, "hull_resolution": 24}), dm)
    v = task.verts().detach()
    centre = 0.5 * (v.min(0).values + v.max(0).values)
    half = 0.5 * (v.max(0).values - v.min(0).values)
    assert torch.allclose(centre, d, atol=0.1 * s), centre
    # the cube's half size 0.65, times the world scale, times init.scale 1.1 (the hull is a bit larger)
    assert ((half / (0.65 * s * 1.1)) - 1).abs().max() < 0.2, half


def test_mesh_fit_hull_start_has_the_topology_of_the_masks():
    """The default start is the masks' visual hull: for a torus target it is a closed genus-1
    surface (Euler characteristic 0), which no deformed sphere is, close to the torus."""
    from rastlit.data import SyntheticDataModule
    from rastlit.tasks.mesh_fit import MeshFitTask

    dm = SyntheticDataModule(target="torus", procedural={"torus": {"n": 24, "m": 12}}, resolution=64, num_views=16,
                             num_val_views=1, num_test_views=1, elevation_range_deg=(-70, 70))
    task = _setup_task(MeshFitTask(init={"hull_resolution": 32}), dm)
    f = task.faces.long()
    v = task.verts().detach()
    e = torch.unique(torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values, dim=0)
    assert v.shape[0] - e.shape[0] + f.shape[0] == 0
    # every edge in exactly two faces: closed and manifold
    _, counts = torch.unique(torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values, dim=0,
                             return_counts=True)
    assert (counts == 2).all()
    # around the true surface (a visual hull from 16 views at 64 px is a loose superset): a torus
    # R=1, r=0.35 normalised into the unit box (scale 1 / 1.35), tube radius 0.26
    s = 1 / 1.35
    ring = torch.sqrt(v[:, 0] ** 2 + v[:, 2] ** 2) - 1.0 * s
    dist = (torch.sqrt(ring ** 2 + v[:, 1] ** 2) - 0.35 * s).abs()
    assert dist.median() < 0.2 and dist.max() < 0.4, (dist.median(), dist.max())


@pytest.mark.parametrize("silhouette", ["antialias", "soft"])
@pytest.mark.parametrize("parameterization", ["largesteps", "offsets"])
def test_mesh_fit_loss_reaches_shape_and_colours(silhouette, parameterization):
    from rastlit.data import SyntheticDataModule
    from rastlit.tasks.mesh_fit import MeshFitTask

    dm = SyntheticDataModule(resolution=24, num_views=2, num_val_views=1, num_test_views=1,
                             procedural={"bumpy_sphere": {"subdivisions": 2}})
    task = _setup_task(MeshFitTask(init={"source": "ellipsoid", "subdivisions": 2, "hull_resolution": 16},
                                   silhouette=silhouette,
                                   geometry={"parameterization": parameterization},
                                   losses={"laplacian": 0.1, "normal_consistency": 0.01, "edge": 0.01}), dm)
    batch = {k: v[None] for k, v in dm.train_set[0].items()}
    verts = task.verts()
    rgb, alpha = task.render_batch(batch, verts)
    terms = task.compute_losses(verts, rgb, alpha, batch)
    assert set(terms) == {"rgb", "alpha", "laplacian", "normal_consistency", "edge", "loss"}
    # the silhouette term alone moves the shape (visibility gradients from antialias / soft raster)
    (g_sil,) = torch.autograd.grad(terms["alpha"], task.shape_param, retain_graph=True)
    assert torch.isfinite(g_sil).all() and (g_sil.norm(dim=1) > 0).sum() >= 4
    terms["loss"].backward()
    assert torch.isfinite(task.shape_param.grad).all() and task.shape_param.grad.abs().sum() > 0
    assert task.colors.grad.abs().sum() > 0


def test_mesh_fit_subdivision_keeps_the_surface_and_resizes_from_checkpoints():
    from rastlit.data import SyntheticDataModule
    from rastlit.tasks.mesh_fit import MeshFitTask

    dm = SyntheticDataModule(resolution=24, num_views=3, num_val_views=1, num_test_views=1,
                             procedural={"bumpy_sphere": {"subdivisions": 2}})
    task = _setup_task(MeshFitTask(init={"source": "ellipsoid", "subdivisions": 1, "hull_resolution": 16}), dm)
    with torch.no_grad():
        task.colors.uniform_(0, 1)
    v0, f0 = task.verts().detach(), task.faces.clone()
    from rastlit.tasks.mesh_fit import subdivide

    v1, f1, c1 = subdivide(v0, f0, task.colors.detach())
    task._set_mesh(v1, f1, c1)
    # the large-steps parameter of the finer mesh reproduces its vertices
    assert torch.allclose(task.verts().detach(), v1, atol=1e-4)
    assert task.shape_param.shape == (v1.shape[0], 3) and task.colors.shape == (v1.shape[0], 3)
    # a checkpoint of the finer mesh loads into a task set up at the coarse level
    sd = {k: v.clone() for k, v in task.state_dict().items()}
    fresh = _setup_task(MeshFitTask(init={"source": "ellipsoid", "subdivisions": 1, "hull_resolution": 16}), dm)
    assert fresh.faces.shape == f0.shape
    fresh.on_load_checkpoint({"state_dict": sd})
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.faces, f1) and torch.allclose(fresh.verts().detach(), v1, atol=1e-4)


def test_mesh_fit_texture_appearance_starts_from_the_colours_and_learns():
    """appearance.kind=texture: the vertex colours baked into the atlas render as the colours did
    (bilinear in the atlas vs barycentric interpolation: equal up to the texel grid), the texture
    then gets the gradients and the colours none; the atlas survives a checkpoint round trip."""
    from rastlit.data import SyntheticDataModule
    from rastlit.tasks.mesh_fit import MeshFitTask

    dm = SyntheticDataModule(resolution=32, num_views=2, num_val_views=1, num_test_views=1,
                             procedural={"bumpy_sphere": {"subdivisions": 2}})
    cfg = dict(init={"source": "ellipsoid", "subdivisions": 2, "hull_resolution": 16},
               appearance={"kind": "texture", "atlas_cell": 16})
    task = _setup_task(MeshFitTask(**cfg), dm)
    assert not task.textured and [g["params"][0] is task.colors for g in task.param_groups()] == [False, True]
    with torch.no_grad():  # a smooth colour field (a texture holds it up to its bilinear error)
        v = task.verts()
        task.colors.copy_(0.5 + 0.4 * torch.sin(2.0 * v))
    batch = {k: v[None] for k, v in dm.train_set[0].items()}
    rgb0, a0 = task.render_batch(batch)
    task.bake_texture()
    assert task.textured and task.texture.shape == (16 * 13, 16 * 13, 3)  # 320 faces: 160 cells, 13 x 13
    assert not task.colors.requires_grad and task.param_groups()[1]["params"][0] is task.texture
    rgb1, a1 = task.render_batch(batch)
    assert torch.equal(a0, a1)
    cov = batch["alpha"][0, ..., 0] > 0  # inside the silhouette (its edge pixels blend the background)
    err = (rgb1 - rgb0)[0][(a0[0, ..., 0] == 1) & cov].abs()
    assert err.numel() > 100 and err.mean() < 0.004 and err.max() < 0.04, (err.mean(), err.max())
    loss = (rgb1 - batch["rgb"]).abs().mean()
    loss.backward()
    assert task.texture.grad.abs().sum() > 0 and task.colors.grad is None
    # a checkpoint with the atlas loads into a task that has none yet
    sd = {k: v.detach().clone() for k, v in task.state_dict().items()}
    fresh = _setup_task(MeshFitTask(**cfg), dm)
    fresh.on_load_checkpoint({"state_dict": sd})
    fresh.load_state_dict(sd)
    assert fresh.textured and torch.equal(fresh.texture, task.texture) and not fresh.colors.requires_grad
    torch.testing.assert_close(fresh.render_batch(batch)[0], rgb1)
    # the exported mesh carries the atlas, and vertex colours close to the baked ones
    m = fresh.fitted_mesh()
    assert m.texture.shape == task.texture.shape and m.uv.shape == (3 * 320, 2)
    torch.testing.assert_close(m.vertex_colors, task.colors.detach().clamp(0, 1), atol=0.02, rtol=0)


def test_mesh_fit_texture_needs_the_final_faces():
    from rastlit.tasks.mesh_fit import MeshFitTask

    with pytest.raises(ValueError, match=r"texture_from .* at or after the last of task.schedule.subdivide_at"):
        MeshFitTask(appearance={"texture_from": 0.3}, schedule={"subdivide_at": [0.5]})
    with pytest.raises(ValueError, match="atlas_cell must be an int >= 8"):
        MeshFitTask(appearance={"atlas_cell": 4})
    MeshFitTask(appearance={"kind": "vertex_color", "texture_from": 0.3}, schedule={"subdivide_at": [0.5]})


# ----------------------------------------------------------------------------------------------
# The CLI
# ----------------------------------------------------------------------------------------------

def test_cli_fast_dev_run_mesh_fit(tmp_path):
    run_cli(["trainer.fast_dev_run=true", "logger=csv", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH],
            cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    m = read_metrics(run)
    for k in ("chamfer", "fscore", "mask_iou", "psnr", "ssim", "wall_time_s"):
        assert isinstance(m[k], float), k
    assert m["global_step"] == 1 and m["wall_time_s"] > 0
    assert len(m["per_view"]) == 2 and set(m["per_view"][0]) == {"index", "psnr", "ssim", "mask_iou"}
    for f in ("mesh.obj", "mesh.mtl", "mesh.png", "mesh.glb", "mesh.ply", "test_views.png", ".hydra/config.yaml",
              "csv/metrics.csv"):
        assert (run / f).is_file(), f
    assert not (run / ".artefacts.tmp").exists()
    fitted = rl_mesh.load_mesh(run / "mesh.ply")
    assert fitted.faces.shape == (80, 3) and fitted.vertex_colors is not None
    obj = rl_mesh.load_mesh(run / "mesh.obj")
    assert obj.texture is not None and obj.uv is not None


def test_cli_fast_dev_run_texture_recovery_own_files(tmp_path):
    from rastlit.image import save_image

    rl_mesh.save_mesh(rl_mesh.uv_sphere(8, 16), tmp_path / "sphere.obj")
    save_image(torch.rand(16, 16, 3), str(tmp_path / "target.png"))
    run_cli(["trainer.fast_dev_run=true", "logger=none", f"paths.log_dir={tmp_path / 'logs'}",
             *TINY_TEX[:-2], "data.target=sphere.obj", "data.texture=target.png"], cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "texture_recovery")
    m = read_metrics(run)
    for k in ("texture_psnr", "psnr", "ssim", "mask_iou", "wall_time_s"):
        assert isinstance(m[k], float), k
    for f in ("texture.png", "mesh.obj", "mesh.glb", "test_views.png"):
        assert (run / f).is_file(), f
    tex = rl_mesh.load_mesh(run / "mesh.obj").texture
    assert tex is not None and tex.shape[:2] == (32, 32)


def test_cli_fast_dev_run_mesh_fit_on_blender_data(tmp_path):
    paths = tiny_blender_dataset(tmp_path / "ds")
    run_cli(["data=blender", f"data.root={tmp_path / 'ds'}", f"data.gt_mesh={paths['mesh']}",
             "trainer.fast_dev_run=true", "logger=none", f"paths.log_dir={tmp_path / 'logs'}",
             "task.init.subdivisions=1", "task.init.hull_resolution=16", "task.eval.points=500", "num_threads=1"],
            cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    m = read_metrics(run)
    assert len(m["per_view"]) == 2 and 0 < m["mask_iou"] <= 1 and 0 <= m["fscore"] <= 1
    assert (run / "mesh.glb").is_file() and (run / "test_views.png").is_file()


def test_cli_fast_dev_run_texture_recovery_on_blender_data(tmp_path):
    paths = tiny_blender_dataset(tmp_path / "ds", target="uv_sphere", texture="procedural")
    run_cli(["task=texture_recovery", "data=blender", f"data.root={tmp_path / 'ds'}", f"task.mesh={paths['mesh']}",
             "task.texture_size=32", "trainer.fast_dev_run=true", "logger=none", f"paths.log_dir={tmp_path / 'logs'}",
             "num_threads=1"], cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "texture_recovery")
    m = read_metrics(run)
    assert len(m["per_view"]) == 2 and "texture_psnr" not in m  # no ground-truth texture in a dataset
    assert (run / "texture.png").is_file()


def test_cli_wandb_offline_files(tmp_path):
    run_cli(["trainer.max_steps=4", "trainer.val_check_interval=2", "task.log_images_every_n_val=1",
             f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    (wb,) = glob.glob(str(run / "wandb" / "offline-run-*"))
    assert glob.glob(os.path.join(wb, "run-*.wandb"))
    media = glob.glob(os.path.join(wb, "files", "media", "**", "*"), recursive=True)
    assert any(p.endswith(".png") for p in media), media      # image grids
    assert any("object3D" in p for p in media), media         # the fitted mesh
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_cli_basic_multirun(tmp_path):
    p = run_cli(["-m", "optimizer.lr=0.01,0.02", "trainer.fast_dev_run=true", "logger=none",
                 f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    runs = run_dirs(tmp_path / "logs", "mesh_fit")
    assert [r.name for r in runs] == ["0", "1"], p.stdout
    lrs = sorted(float(__import__("yaml").safe_load((r / ".hydra" / "config.yaml").read_text())["optimizer"]["lr"])
                 for r in runs)
    assert lrs == [0.01, 0.02]


def test_cli_joblib_launcher_multirun(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    run_cli(["-m", "launcher=joblib", "optimizer.lr=0.01,0.02", "trainer.fast_dev_run=true", "logger=none",
             "num_threads=1", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    runs = run_dirs(tmp_path / "logs", "mesh_fit")
    assert [r.name for r in runs] == ["0", "1"]
    hydra_cfg = __import__("yaml").safe_load((runs[0] / ".hydra" / "hydra.yaml").read_text())
    assert hydra_cfg["hydra"]["launcher"]["_target_"].endswith("JoblibLauncher")


def test_cli_optuna_sweep_two_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    run_cli(["-m", "hparams_search=mesh_fit_optuna", "hydra.sweeper.n_trials=2",
             "hydra.sweeper.sampler.n_startup_trials=2", "trainer.max_steps=2", "trainer.val_check_interval=2",
             "logger=none", "callbacks=none", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    (res,) = glob.glob(str(tmp_path / "logs" / "mesh_fit" / "multiruns" / "*" / "optimization_results.yaml"))
    import yaml

    out = yaml.safe_load(Path(res).read_text())
    assert out["name"] == "optuna" and "optimizer.lr" in out["best_params"]
    runs = run_dirs(tmp_path / "logs", "mesh_fit")
    assert len(runs) == 2
    assert all("mask_iou" in read_metrics(r) for r in runs)


@pytest.mark.slow
def test_cli_resume_reaches_the_uninterrupted_result(tmp_path):
    # 8 steps (4 epochs of 2) with a subdivision at step 4, keeping a checkpoint every 2 steps
    common = ["logger=none", "trainer.val_check_interval=2", "trainer.max_steps=8", *TINY_MESH]
    run_cli(["callbacks.model_checkpoint.save_top_k=-1", "callbacks.model_checkpoint.every_n_train_steps=2",
             f"paths.log_dir={tmp_path / 'full'}", *common], cwd=tmp_path)
    (full,) = run_dirs(tmp_path / "full", "mesh_fit")
    # as if killed after step 6 (the subdivided mesh and its optimizer state), resumed in a new run
    ckpt = full / "checkpoints" / "step_000006.ckpt"
    state = torch.load(ckpt, weights_only=False)
    assert state["epoch"] == 2 and state["state_dict"]["faces"].shape == (320, 3)
    run_cli([f"ckpt_path={ckpt}", f"paths.log_dir={tmp_path / 'resumed'}", *common], cwd=tmp_path)
    (resumed,) = run_dirs(tmp_path / "resumed", "mesh_fit")
    a, b = read_metrics(full), read_metrics(resumed)
    assert a["global_step"] == b["global_step"] == 8 and a["num_faces"] == b["num_faces"] == 320
    # close, not bitwise: a resumed run differed from the uninterrupted one by ~3e-4 relative in
    # chamfer (cause not found; the restored parameters, optimizer and schedule states are equal)
    for k in ("chamfer", "fscore", "mask_iou", "psnr"):
        assert a[k] == pytest.approx(b[k], rel=2e-3), k


def test_cli_ddp_two_cpu_processes(tmp_path):
    p = run_cli(["trainer=ddp", "trainer.devices=2", "trainer.max_steps=2", "trainer.val_check_interval=1",
                 "logger=csv", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    out = p.stdout + p.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out and "GLOBAL_RANK: 0, MEMBER: 1/2" in out
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")  # rank 0 writes the artefacts, into the same run dir
    m = read_metrics(run)
    # 4 views sharded over 2 ranks at batch 2: one step per epoch; the subdivision at step 1
    assert m["global_step"] == 2 and m["num_faces"] == 320
    assert (run / "mesh.obj").is_file() and (run / "checkpoints" / "last.ckpt").is_file()


# ----------------------------------------------------------------------------------------------
# Quality of the defaults (minutes each)
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_default_mesh_fit_quality(tmp_path):
    run_cli(["logger=none", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path, timeout=1200)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    m = read_metrics(run)
    assert m["fscore"] >= 0.8 and m["mask_iou"] >= 0.97, m


@pytest.mark.slow
def test_default_texture_recovery_quality(tmp_path):
    run_cli(["experiment=texture_recovery_synthetic", "logger=none", f"paths.log_dir={tmp_path / 'logs'}"],
            cwd=tmp_path, timeout=1200)
    (run,) = run_dirs(tmp_path / "logs", "texture_recovery")
    m = read_metrics(run)
    assert m["psnr"] >= 30.0, m
