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

# Small problems: 32x32 images, a few views, a coarse source; a run takes a few seconds, most of
# it interpreter start-up.
TINY = ["data.resolution=32", "data.num_views=4", "data.num_val_views=2", "data.batch_size=2",
        "num_threads=1"]
TINY_MESH = TINY + ["task.source_subdivisions=2", "task.eval_points=500", "data.procedural.bumpy_sphere.subdivisions=2"]
TINY_TEX = TINY + ["task=texture_recovery", "task.texture_size=32", "data.texture_size=32",
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


# ----------------------------------------------------------------------------------------------
# Config composition (in-process, Hydra's compose API)
# ----------------------------------------------------------------------------------------------

GROUP_OPTIONS = {
    "task": ["mesh_fit", "texture_recovery"],
    "data": ["multiview", "orbit"],
    "optimizer": ["adam", "sgd"],
    "trainer": ["default", "cpu", "gpu", "ddp"],
    "logger": ["wandb", "csv", "none"],
    "callbacks": ["default", "none"],
    "paths": ["default"],
    "experiment": ["mesh_fit_detailed", "mesh_fit_soft", "texture_recovery_cube"],
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
    # everything outside hydra's own node resolves (interpolations between groups included)
    job = cfg.copy()
    with open_dict(job):
        del job["hydra"]
    OmegaConf.to_container(job, resolve=True)
    task = cfg.hydra.runtime.choices["task"]
    assert cfg.task_name == task
    assert cfg.data.mode == {"mesh_fit": "shaded", "texture_recovery": "textured"}[task]
    assert cfg.optimized_metric == {"mesh_fit": "chamfer", "texture_recovery": "psnr"}[task]
    assert cfg.data.render == cfg.render
    opt = instantiate(cfg.optimizer)
    assert opt.func in (torch.optim.Adam, torch.optim.SGD)  # a partial (_partial_: true)
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
    if group == "hparams_search":
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
        assert cfg.hydra.sweeper.direction == "minimize" and cfg.optimized_metric == "chamfer"
        assert "task.lr" in cfg.hydra.sweeper.params
    if group == "launcher":
        assert cfg.hydra.launcher._target_.endswith(
            {"joblib": "JoblibLauncher", "slurm": "SlurmLauncher"}[option]), cfg.hydra.launcher._target_
    if group == "data":
        assert cfg.data.cameras == {"multiview": "random", "orbit": "orbit"}[option]
    if group == "experiment" and option == "mesh_fit_soft":
        assert cfg.task.silhouette == "soft"


def test_task_and_data_instantiate_from_config():
    from hydra.utils import instantiate

    cfg = _compose(["paths.output_dir=/tmp/unused", "data.resolution=16", "data.num_views=2", "data.num_val_views=1",
                    "task.source_subdivisions=1", "data.procedural.bumpy_sphere.subdivisions=1"])
    dm = instantiate(cfg.data)
    task = instantiate(cfg.task, optimizer=instantiate(cfg.optimizer))
    assert type(task).__name__ == "MeshFitTask" and task.offsets.shape == (42, 3)
    opt = task.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == cfg.task.lr
    dm.setup("fit")
    assert dm.train_set.tensors["rgb"].shape == (2, 16, 16, 3)


# ----------------------------------------------------------------------------------------------
# Data module and helpers (in-process)
# ----------------------------------------------------------------------------------------------

def test_datamodule_renders_views_once_and_deterministically():
    from rastlit.data import MultiViewDataModule

    kw = dict(resolution=(24, 32), num_views=5, num_val_views=3, batch_size=2, procedural={"bumpy_sphere": {"subdivisions": 2}})
    a, b = MultiViewDataModule(**kw), MultiViewDataModule(**kw)
    a.setup("fit")
    b.setup("fit")
    tr = a.train_set.tensors
    assert tr["rgb"].shape == (5, 24, 32, 3) and tr["alpha"].shape == (5, 24, 32, 1)
    assert tr["normals"].shape == (5, 24, 32, 3) and tr["mvp"].shape == (5, 4, 4) and tr["eye"].shape == (5, 3)
    for k in tr:
        assert torch.equal(tr[k], b.train_set.tensors[k]), k
    # held-out views are other cameras; the target covers part of every image
    assert not any(torch.allclose(v, a.val_set.tensors["mvp"][0]) for v in tr["mvp"])
    cover = tr["alpha"].mean((1, 2, 3))
    assert (cover > 0.05).all() and (cover < 0.9).all()
    lit = tr["rgb"][tr["alpha"][..., 0] > 0.99]
    assert lit.min() >= 0 and lit.max() <= 1 and lit.std() > 0.01
    before = a.train_set
    a.setup("validate")  # no re-render
    assert a.train_set is before
    batch = next(iter(a.train_dataloader()))
    assert batch["rgb"].shape == (2, 24, 32, 3)
    assert len(a.val_dataloader()) == 2


def test_datamodule_own_mesh_and_texture_files(tmp_path):
    from rastlit.data import MultiViewDataModule, load_texture_image, save_png

    m = rl_mesh.torus(n=12, m=8)
    m = rl_mesh.Mesh(verts=m.verts * 5 + 2, faces=m.faces, uv=m.uv, uv_faces=m.uv_faces)  # off-centre, big
    rl_mesh.save_mesh(m, tmp_path / "t.obj")
    img = torch.rand(8, 16, 3)
    save_png(img, str(tmp_path / "tex.png"))
    back = load_texture_image(str(tmp_path / "tex.png"))
    assert back.shape == (8, 16, 3) and (back - img).abs().max() < 1 / 255 + 1e-6
    dm = MultiViewDataModule(mode="textured", target=str(tmp_path / "t.obj"), texture=str(tmp_path / "tex.png"),
                             resolution=16, num_views=2, num_val_views=1)
    dm.setup("fit")
    v = dm.target_mesh.verts
    assert v.abs().max() <= 1 + 1e-5 and v.abs().max() > 0.99  # normalised into the unit box
    assert torch.equal(dm.target_texture, back)
    assert dm.train_set.tensors["alpha"].sum() > 0
    with pytest.raises(FileNotFoundError, match="neither a procedural target"):
        MultiViewDataModule(target=str(tmp_path / "missing.obj")).setup("fit")
    with pytest.raises(ValueError, match="needs a target with UVs"):
        MultiViewDataModule(mode="textured", target="bumpy_sphere", procedural={"bumpy_sphere": {"subdivisions": 1}},
                            resolution=8, num_views=1, num_val_views=1).setup("fit")
    with pytest.raises(ValueError, match="data.mode"):
        MultiViewDataModule(mode="wireframe")
    with pytest.raises(ValueError, match="data.cameras"):
        MultiViewDataModule(cameras="spiral")


def test_epoch_shuffle_sampler_depends_only_on_seed_and_epoch():
    from rastlit.data import EpochShuffleSampler

    s, t = EpochShuffleSampler(10, seed=3), EpochShuffleSampler(10, seed=3)
    orders = []
    for e in range(3):
        s.set_epoch(e)
        orders.append(list(s))
        assert sorted(orders[-1]) == list(range(10))
    t.set_epoch(2)
    assert list(t) == orders[2] and orders[0] != orders[1]
    assert list(EpochShuffleSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_image_grid_and_png_are_top_down(tmp_path):
    from PIL import Image
    import numpy as np

    from rastlit.data import save_png
    from rastlit.tasks.base import image_grid

    img = torch.zeros(1, 4, 3, 3)
    img[0, 0] = 1.0  # rastlit row 0 = the BOTTOM row
    grid = image_grid([img, img * 0.5], pad=1)
    assert grid.shape == (9, 3, 3)
    assert torch.all(grid[3] == 1) and torch.all(grid[0:3] == 0)   # first tile: white row at its bottom
    assert torch.all(grid[4] == 1)                                   # padding
    assert torch.all(grid[8] == 0.5)
    save_png(img[0], str(tmp_path / "a.png"))
    arr = np.asarray(Image.open(tmp_path / "a.png"))
    assert arr.shape == (4, 3, 3) and (arr[3] == 255).all() and (arr[:3] == 0).all()


def test_subdivide_and_total_variation():
    from rastlit.tasks.mesh_fit import subdivide
    from rastlit.tasks.texture_recovery import total_variation

    v, f = rl_mesh.icosphere(1)
    v2, f2 = subdivide(v, f)
    assert f2.shape[0] == 4 * f.shape[0] and v2.shape[0] == v.shape[0] + 120  # + one vertex per edge
    assert f2.dtype == torch.int32 and torch.equal(v2[: v.shape[0]], v)
    # watertight: every edge in exactly two faces
    e = torch.cat([f2[:, [0, 1]], f2[:, [1, 2]], f2[:, [2, 0]]]).long().sort(1).values
    _, counts = torch.unique(e, dim=0, return_counts=True)
    assert (counts == 2).all()
    assert total_variation(torch.ones(4, 4, 3)) == 0
    t = torch.zeros(4, 4, 1)
    t[:, 0] = 1
    assert torch.isclose(total_variation(t), torch.tensor(0.5))  # 2 of 4 columns differ in u, v none


@pytest.mark.parametrize("silhouette", ["antialias", "soft"])
def test_mesh_fit_loss_reaches_the_vertices(silhouette):
    from rastlit.data import MultiViewDataModule
    from rastlit.tasks.mesh_fit import MeshFitTask

    dm = MultiViewDataModule(resolution=24, num_views=2, num_val_views=1, procedural={"bumpy_sphere": {"subdivisions": 2}})
    dm.setup("fit")
    task = MeshFitTask(source_subdivisions=2, w_normals=1.0, silhouette=silhouette)
    torch.manual_seed(0)
    task.offsets.data.normal_(0, 0.01)
    batch = dm.train_set[0]
    batch = {k: v[None] for k, v in batch.items()}
    verts = task.verts()
    r = task.render(verts, batch["mvp"], batch["eye"], (24, 24))
    terms = task.compute_losses(verts, r, batch)
    assert set(terms) == {"silhouette", "rgb", "normals", "laplacian", "normal_consistency", "edge", "loss"}
    # the silhouette term alone moves vertices (visibility gradients from antialias / soft raster)
    (g_sil,) = torch.autograd.grad(terms["silhouette"], task.offsets, retain_graph=True)
    assert torch.isfinite(g_sil).all() and (g_sil.norm(dim=1) > 0).sum() >= 4
    terms["loss"].backward()
    assert torch.isfinite(task.offsets.grad).all() and task.offsets.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# The CLI
# ----------------------------------------------------------------------------------------------

def test_cli_fast_dev_run_mesh_fit(tmp_path):
    run_cli(["trainer.fast_dev_run=true", "logger=csv", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH],
            cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    m = read_metrics(run)
    for k in ("chamfer", "fscore", "silhouette_iou", "psnr", "ssim", "wall_time_s"):
        assert isinstance(m[k], float), k
    assert m["global_step"] == 1 and m["wall_time_s"] > 0
    for f in ("mesh.obj", "mesh.ply", "renders.png", ".hydra/config.yaml", "csv/metrics.csv"):
        assert (run / f).is_file(), f
    fitted = rl_mesh.load_mesh(run / "mesh.obj")
    assert fitted.faces.shape == (320, 3)
    assert rl_mesh.load_mesh(run / "mesh.ply").verts.shape == fitted.verts.shape


def test_cli_fast_dev_run_texture_recovery_own_files(tmp_path):
    from rastlit.data import save_png

    rl_mesh.save_mesh(rl_mesh.uv_sphere(8, 16), tmp_path / "sphere.obj")
    save_png(torch.rand(16, 16, 3), str(tmp_path / "target.png"))
    run_cli(["trainer.fast_dev_run=true", "logger=none", f"paths.log_dir={tmp_path / 'logs'}",
             *TINY_TEX[:-2], "data.target=sphere.obj", "data.texture=target.png"], cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "texture_recovery")
    m = read_metrics(run)
    for k in ("texture_psnr", "psnr", "ssim", "wall_time_s"):
        assert isinstance(m[k], float), k
    for f in ("texture.png", "mesh.obj", "mesh.ply", "renders.png"):
        assert (run / f).is_file(), f
    tex = rl_mesh.load_mesh(run / "mesh.obj").texture
    assert tex is not None and tex.shape[:2] == (32, 32)


def test_cli_wandb_offline_files(tmp_path):
    run_cli(["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1", "task.log_images_every_n_epochs=1",
             f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    (wb,) = glob.glob(str(run / "wandb" / "offline-run-*"))
    assert glob.glob(os.path.join(wb, "run-*.wandb"))
    media = glob.glob(os.path.join(wb, "files", "media", "**", "*"), recursive=True)
    assert any(p.endswith(".png") for p in media), media      # image grids
    assert any("object3D" in p for p in media), media         # the fitted mesh
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_cli_basic_multirun(tmp_path):
    p = run_cli(["-m", "task.lr=1e-3,1e-2", "trainer.fast_dev_run=true", "logger=none",
                 f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    runs = run_dirs(tmp_path / "logs", "mesh_fit")
    assert [r.name for r in runs] == ["0", "1"], p.stdout
    lrs = sorted(float(__import__("yaml").safe_load((r / ".hydra" / "config.yaml").read_text())["task"]["lr"])
                 for r in runs)
    assert lrs == [1e-3, 1e-2]


def test_cli_joblib_launcher_multirun(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    run_cli(["-m", "launcher=joblib", "task.lr=1e-3,1e-2", "trainer.fast_dev_run=true", "logger=none",
             "num_threads=1", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    runs = run_dirs(tmp_path / "logs", "mesh_fit")
    assert [r.name for r in runs] == ["0", "1"]
    hydra_cfg = __import__("yaml").safe_load((runs[0] / ".hydra" / "hydra.yaml").read_text())
    assert hydra_cfg["hydra"]["launcher"]["_target_"].endswith("JoblibLauncher")


def test_cli_optuna_sweep_two_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    run_cli(["-m", "hparams_search=mesh_fit_optuna", "hydra.sweeper.n_trials=2",
             "hydra.sweeper.sampler.n_startup_trials=2", "trainer.max_epochs=1", "logger=none", "callbacks=none",
             f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    runs = run_dirs(tmp_path / "logs", "mesh_fit")
    assert len(runs) == 2
    (res,) = glob.glob(str(tmp_path / "logs" / "mesh_fit" / "multiruns" / "*" / "optimization_results.yaml"))
    import yaml

    out = yaml.safe_load(Path(res).read_text())
    assert out["name"] == "optuna" and "task.lr" in out["best_params"]
    chamfers = [read_metrics(r)["chamfer"] for r in runs]
    assert out["best_value"] == pytest.approx(min(chamfers))


@pytest.mark.slow
def test_cli_resume_reaches_the_uninterrupted_result(tmp_path):
    common = ["logger=none", "trainer.check_val_every_n_epoch=1", *TINY_MESH]
    run_cli(["trainer.max_epochs=4", f"paths.log_dir={tmp_path / 'full'}", *common], cwd=tmp_path)
    # "killed" after 2 epochs, then resumed from its last checkpoint in a new run
    run_cli(["trainer.max_epochs=2", f"paths.log_dir={tmp_path / 'part'}", *common], cwd=tmp_path)
    (part,) = run_dirs(tmp_path / "part", "mesh_fit")
    ckpt = part / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    run_cli(["trainer.max_epochs=4", f"ckpt_path={ckpt}", f"paths.log_dir={tmp_path / 'resumed'}", *common],
            cwd=tmp_path)
    (full,) = run_dirs(tmp_path / "full", "mesh_fit")
    (resumed,) = run_dirs(tmp_path / "resumed", "mesh_fit")
    a, b = read_metrics(full), read_metrics(resumed)
    assert a["global_step"] == b["global_step"] == 8
    assert read_metrics(part)["chamfer"] != a["chamfer"]
    for k in ("chamfer", "fscore", "silhouette_iou", "psnr"):
        assert a[k] == b[k], k
    assert rl_mesh.load_mesh(full / "mesh.obj").verts.equal(rl_mesh.load_mesh(resumed / "mesh.obj").verts)


def test_cli_ddp_two_cpu_processes(tmp_path):
    p = run_cli(["trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1",
                 "logger=csv", f"paths.log_dir={tmp_path / 'logs'}", *TINY_MESH], cwd=tmp_path)
    out = p.stdout + p.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out and "GLOBAL_RANK: 0, MEMBER: 1/2" in out
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")  # rank 0 writes the artefacts, into the same run dir
    m = read_metrics(run)
    # 4 views sharded over 2 ranks at batch 2: one step per epoch
    assert m["global_step"] == 2
    assert (run / "mesh.obj").is_file() and (run / "checkpoints" / "last.ckpt").is_file()


# ----------------------------------------------------------------------------------------------
# Quality of the defaults (minutes each; need the real antialias / texture ops)
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_default_mesh_fit_quality(tmp_path):
    run_cli(["logger=none", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path, timeout=1200)
    (run,) = run_dirs(tmp_path / "logs", "mesh_fit")
    m = read_metrics(run)
    assert m["fscore"] >= 0.8 and m["silhouette_iou"] >= 0.97, m


@pytest.mark.slow
def test_default_texture_recovery_quality(tmp_path):
    run_cli(["task=texture_recovery", "logger=none", f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path,
            timeout=1200)
    (run,) = run_dirs(tmp_path / "logs", "texture_recovery")
    m = read_metrics(run)
    assert m["psnr"] >= 30.0, m


def test_mesh_fit_coarse_to_fine_levels():
    from rastlit.tasks.mesh_fit import MeshFitTask

    plain = MeshFitTask(source_subdivisions=3)
    c2f = MeshFitTask(source_subdivisions=3, coarse_to_fine=[5, 10])
    assert torch.allclose(c2f.source_verts, plain.source_verts, atol=1e-6)
    assert torch.equal(c2f.faces, rl_mesh.icosphere(3)[1])
    assert [p.shape[0] for p in c2f.coarse_offsets] == [42, 162] and c2f.offsets.shape == (642, 3)
    # a coarse offset moves its vertex fully and the new edge midpoints around it by half
    with torch.no_grad():
        c2f.coarse_offsets[0][0] = torch.tensor([0.0, 0.0, 0.3])
    d = (c2f.verts() - c2f.source_verts).detach()
    assert torch.allclose(d[0], torch.tensor([0.0, 0.0, 0.3]))
    moved = (d[:, 2] > 0).sum().item()
    assert 1 + 5 < moved < 162  # the vertex, its ring of midpoints, their midpoints; not everything
    assert torch.all(d[:, :2] == 0) and d[:, 2].max() == pytest.approx(0.3)
    # epoch 7: levels 0 and 1 learn, the finest not yet
    c2f._trainer = type("T", (), {"current_epoch": 7})()
    assert c2f.level_active() == [1.0, 1.0, 0.0]
    c2f.verts().square().sum().backward()
    assert c2f.coarse_offsets[0].grad.abs().sum() > 0 and c2f.coarse_offsets[1].grad.abs().sum() > 0
    assert c2f.offsets.grad is not None and c2f.offsets.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="increasing"):
        MeshFitTask(source_subdivisions=3, coarse_to_fine=[10, 5])
    with pytest.raises(ValueError, match="source_subdivisions >= 2"):
        MeshFitTask(source_subdivisions=1, coarse_to_fine=[1, 2])
