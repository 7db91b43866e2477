"""Mesh fitting: recover shape and appearance from posed images and masks.

What is learned:

- **Shape**: a triangle mesh, initialised from the data (:mod:`rastlit.data.scene`): the visual
  hull of the training masks meshed by marching cubes (``init.source=hull``: it has the topology
  the masks show, so a torus is fitted by a torus), an ellipsoid fitted to the hull's box
  (``ellipsoid``), its bounding sphere (``sphere``) or a mesh file placed in the hull's box. No
  hand-set centre or scale.
- **Appearance**: learned radiance, unlit (whatever lighting the images have is learned into
  it): per-vertex colours (``appearance.kind=vertex_color``), or per-vertex colours first and a
  texture later (``texture``): at the fraction ``appearance.texture_from`` of the steps, once the
  mesh has its final faces, the colours are baked into a per-triangle atlas
  (:func:`rastlit.mesh.triangle_atlas`, ``appearance.atlas_cell`` texels per cell of two faces,
  about the pixel density of the hull's triangles in the images), which then learns the detail
  that vertex colours cannot hold. Or a per-vertex albedo under known lights
  (``appearance.kind=shaded``, Lambert, ``appearance.lights``).

How (``geometry``, ``schedule``):

- **Large steps** (Nicolet et al. 2021, ``geometry.parameterization=largesteps``): the parameter is
  ``u = (I + lambda L) v`` and the vertices ``v = (I + lambda L)^-1 u`` (a sparse Cholesky solve,
  :mod:`rastlit.largesteps`), optimised with ``AdamUniform``: gradients reach the surface smoothed,
  so it moves without tangling and needs no hand-weighted regularizers. ``offsets`` is the plain
  per-vertex parameterization (with the ``losses.laplacian`` etc. regularizers).
- **Coarse to fine**: at the fractions ``schedule.subdivide_at`` of the training steps the mesh
  is subdivided (edge midpoints; colours too) and the optimizer restarts on the finer mesh.
- **Coarse images**: the first ``schedule.coarse_images`` of the steps compare renders at half the
  resolution with box-filtered targets (4x fewer pixels while the shape is still far off).
- **Learning rate**: exponential decay to ``schedule.final_lr_factor`` over each stage.
- **Stopping**: after the last subdivision, when the epoch's training loss has not improved by a
  relative ``schedule.stop_min_delta`` for ``schedule.stop_patience`` epochs (0 disables).

Loss: ``losses.rgb * |rgb - rgb*| + losses.alpha * |alpha - alpha*|`` (L1, or ``losses.norm=l2``)
on antialiased renders (``silhouette=antialias``: visibility gradients through
``rastlit.antialias``) or with a soft silhouette (``silhouette=soft``), plus optional Laplacian,
normal-consistency and edge-length terms.

Evaluation is ``trainer.test`` on the test split (PSNR, SSIM, mask IoU per view) plus chamfer and
F-score against the data module's ``gt_mesh`` when it has one.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import torch
from torchmetrics import MeanMetric

import rastlit
from rastlit import losses as rl_losses
from rastlit import mesh as rl_mesh
from rastlit.camera import transform_points
from rastlit.nn import Antialias

from .base import RenderTask, background_rgb, image_grid, view_metrics

__all__ = ["MeshFitTask", "subdivide", "INIT", "GEOMETRY", "APPEARANCE", "LOSSES", "SCHEDULE", "EVAL"]

INIT = {"source": "hull", "subdivisions": 0, "scale": 1.1, "centre": None, "radius": None,
        "hull_resolution": "auto"}
GEOMETRY = {"parameterization": "largesteps", "lambda_": 19.0}
APPEARANCE = {"kind": "texture", "init": 0.5, "lr_scale": 1.0, "texture_from": 0.5, "atlas_cell": 8,
              "ambient": 0.2, "lights": None}
LOSSES = {"rgb": 1.0, "alpha": 1.0, "norm": "l1", "laplacian": 0.0, "normal_consistency": 0.0, "edge": 0.0}
SCHEDULE = {"subdivide_at": [], "coarse_images": 0.5, "final_lr_factor": 0.3, "stop_patience": 0,
            "stop_min_delta": 1e-3}
EVAL = {"points": 20000, "fscore_threshold": 0.01}


def _merge(name: str, defaults: dict, given: dict | None) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"task.{name} has unknown keys {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def _split_edges(faces: torch.Tensor, nv: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(midpoint_edges [E,2], new_faces [4F,3])`` of one midpoint subdivision (the old vertices,
    then one per unique edge)."""
    f = faces.long()
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
    key = edges.min(1).values * nv + edges.max(1).values
    uniq, inv = torch.unique(key, return_inverse=True)
    m = (inv + nv).view(3, -1)
    m01, m12, m20 = m[0], m[1], m[2]
    nf = torch.cat([torch.stack(x, 1) for x in ((f[:, 0], m01, m20), (f[:, 1], m12, m01), (f[:, 2], m20, m12),
                                                (m01, m12, m20))], 0)
    return torch.stack([uniq // nv, uniq % nv], 1), nf.to(torch.int32)


def _upsample(x: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
    """Per-vertex values on the subdivided mesh: the old ones, then edge midpoints."""
    return torch.cat([x, 0.5 * (x[mid[:, 0]] + x[mid[:, 1]])], 0)


def subdivide(verts: torch.Tensor, faces: torch.Tensor, *attrs: torch.Tensor):
    """Split every triangle in four at its edge midpoints (shared midpoints deduplicated, no
    smoothing): returns ``(verts, faces, *attrs)`` with per-vertex ``attrs`` interpolated alike."""
    mid, nf = _split_edges(faces, verts.shape[0])
    return (_upsample(verts, mid), nf, *(_upsample(a, mid) for a in attrs))


class MeshFitTask(RenderTask):
    """Fit shape and appearance to posed images (see the module docstring).

    Config nodes (dicts; unknown keys raise): ``init`` (:data:`INIT`), ``geometry``
    (:data:`GEOMETRY`), ``appearance`` (:data:`APPEARANCE`), ``losses`` (:data:`LOSSES`),
    ``schedule`` (:data:`SCHEDULE`), ``eval`` (:data:`EVAL`). ``silhouette``: ``antialias`` or
    ``soft`` (``soft``: kwargs of ``rastlit.rasterize_soft``). ``background``: the colour the data
    composited its images over. The learning rate is the optimizer's (config group ``optimizer``).
    """

    def __init__(self, init: dict | None = None, geometry: dict | None = None, appearance: dict | None = None,
                 losses: dict | None = None, schedule: dict | None = None, eval: dict | None = None,
                 silhouette: str = "antialias", soft: dict | None = None, background: Any = "black",
                 optimizer: Callable | None = None, log_images_every_n_val: int = 2, num_grid_views: int = 4,
                 seed: int = 0):
        super().__init__(optimizer=optimizer, log_images_every_n_val=log_images_every_n_val,
                         num_grid_views=num_grid_views)
        self.save_hyperparameters(ignore=["optimizer"], logger=True)
        self.init_cfg = _merge("init", INIT, init)
        self.geo_cfg = _merge("geometry", GEOMETRY, geometry)
        self.app_cfg = _merge("appearance", APPEARANCE, appearance)
        self.loss_cfg = _merge("losses", LOSSES, losses)
        self.sched_cfg = _merge("schedule", SCHEDULE, schedule)
        self.eval_cfg = _merge("eval", EVAL, eval)
        if silhouette not in ("antialias", "soft"):
            raise ValueError(f"task.silhouette must be 'antialias' or 'soft', got {silhouette!r}")
        if self.geo_cfg["parameterization"] not in ("largesteps", "offsets"):
            raise ValueError("task.geometry.parameterization must be 'largesteps' or 'offsets', got "
                             f"{self.geo_cfg['parameterization']!r}")
        if self.app_cfg["kind"] not in ("vertex_color", "texture", "shaded"):
            raise ValueError("task.appearance.kind must be 'vertex_color', 'texture' or 'shaded', got "
                             f"{self.app_cfg['kind']!r}")
        if self.loss_cfg["norm"] not in ("l1", "l2"):
            raise ValueError(f"task.losses.norm must be 'l1' or 'l2', got {self.loss_cfg['norm']!r}")
        fr = [float(x) for x in (self.sched_cfg["subdivide_at"] or [])]
        if fr != sorted(fr) or any(not 0 < x < 1 for x in fr):
            raise ValueError(f"task.schedule.subdivide_at must be increasing fractions of the steps in (0, 1), got {fr}")
        self.subdivide_at = fr
        tf = float(self.app_cfg["texture_from"])
        if self.app_cfg["kind"] == "texture" and not (0 <= tf < 1 and all(x <= tf for x in fr)):
            raise ValueError("task.appearance.texture_from must be a fraction of the steps in [0, 1) at or after "
                             f"the last of task.schedule.subdivide_at {fr} (the atlas is made for the final "
                             f"faces), got {tf}")
        rl_mesh.atlas_size(1, self.app_cfg["atlas_cell"], name="task.appearance.atlas_cell")  # validates it
        self.silhouette, self.soft = silhouette, dict(soft or {})
        self.background = background_rgb(background)
        self.register_buffer("background_color", torch.tensor(self.background), persistent=False)
        self.seed = seed
        self.antialias_layer = Antialias()
        self._solver = None
        self._solver_key = None
        self._stage_start_step = 0
        self._best_loss = math.inf
        self._stale_epochs = 0
        self._epoch_loss = [None, 0]  # (sum on the device, views): no host sync per step
        self._lights = None
        self.register_buffer("level", torch.zeros((), dtype=torch.long))
        # the shape and colours are made in setup(), from the data (or restored from a checkpoint)
        self.register_buffer("faces", torch.zeros(0, 3, dtype=torch.int32))
        self.register_buffer("base_verts", torch.zeros(0, 3))
        self.shape_param = torch.nn.Parameter(torch.zeros(0, 3))
        self.colors = torch.nn.Parameter(torch.zeros(0, 3))
        # appearance.kind=texture: the atlas texture [S,S,3] is made when the colours are baked into
        # it (empty before; the colours are frozen after). Frozen parameters stay out of the
        # optimizer and out of DDP's gradient reduction (which requires a gradient for every
        # parameter that requires one).
        self.texture = torch.nn.Parameter(torch.zeros(0, 0, 3), requires_grad=False)
        self._atlas = None
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()

    # -- the shape -----------------------------------------------------------------------------------
    def initial_mesh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The starting mesh, placed and sized from the training cameras and masks."""
        c = self.init_cfg
        src = c["source"]
        explicit = c["centre"] is not None and c["radius"] is not None
        b = None
        res = c["hull_resolution"]
        if res == "auto":
            # about one voxel per 5 pixels of the image: the hull's triangles then cover several
            # pixels each (at small resolutions rasterization is bound by the triangle count)
            h, w = self.datamodule.resolution
            res = int(min(48, max(16, round(min(h, w) / 5.3))))
        res = int(res)
        if not explicit:
            from rastlit.data.scene import scene_bounds

            t = self.datamodule.train_set.tensors
            b = scene_bounds(t["view"], t["mvp"], t["alpha"], res=res)
            self.scene = b
        if src == "hull":
            if explicit:
                raise ValueError("task.init.source=hull is made from the data; drop task.init.centre/radius")
            from rastlit.data.scene import hull_mesh

            t = self.datamodule.train_set.tensors
            v, f = hull_mesh(t["view"], t["mvp"], t["alpha"], res=res, bounds=b)
            for _ in range(int(c["subdivisions"])):
                v, f = subdivide(v, f)
            return v.float().contiguous(), f.to(torch.int32).contiguous()
        if src in ("ellipsoid", "sphere"):
            v, f = rl_mesh.icosphere(int(c["subdivisions"]), dtype=torch.float64)
        else:
            m = rl_mesh.load_mesh(src, dtype=torch.float64)
            v, f = m.verts, m.faces
            for _ in range(int(c["subdivisions"])):
                v, f = subdivide(v, f)
            lo, hi = v.min(0).values, v.max(0).values
            v = (v - 0.5 * (lo + hi)) / (0.5 * (hi - lo)).clamp_min(1e-12)  # into [-1,1]^3 per axis
        if explicit:
            centre = torch.as_tensor(c["centre"], dtype=torch.float64)
            half = torch.full((3,), float(c["radius"]), dtype=torch.float64)
        else:
            centre = b.centre if c["centre"] is None else torch.as_tensor(c["centre"], dtype=torch.float64)
            if c["radius"] is not None:
                half = torch.full((3,), float(c["radius"]), dtype=torch.float64)
            elif src == "sphere":
                half = torch.full((3,), b.radius, dtype=torch.float64)
            else:
                half = b.half_extents
        v = centre + v * half * float(c["scale"])
        return v.float().contiguous(), f.to(torch.int32).contiguous()

    def _set_mesh(self, verts: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor | None) -> None:
        """(Re)build the parameters for the mesh ``(verts, faces)`` and per-vertex ``colors``."""
        dev = self.faces.device
        verts, faces = verts.detach().float().to(dev).contiguous(), faces.to(dev, torch.int32).contiguous()
        self.faces = faces
        self.base_verts = verts.clone()
        self._solver, self._solver_key = None, None
        if self.geo_cfg["parameterization"] == "largesteps":
            u = self.solver().to_differential(verts)
        else:
            u = torch.zeros_like(verts)
        self.shape_param = torch.nn.Parameter(u.detach().contiguous())
        if colors is None:
            colors = torch.full_like(verts, float(self.app_cfg["init"]))
        self.colors = torch.nn.Parameter(colors.detach().float().to(dev).contiguous())

    def solver(self):
        """The factorised ``I + lambda L`` of the current faces (rebuilt when they change)."""
        key = (self.faces.data_ptr(), tuple(self.faces.shape), self.faces.device)
        if self._solver is None or self._solver_key != key:
            from rastlit.largesteps import LargeSteps

            self._solver = LargeSteps(self.base_verts, self.faces, lambda_=float(self.geo_cfg["lambda_"]))
            self._solver_key = key
        return self._solver

    def verts(self) -> torch.Tensor:
        """The current vertices ``[V,3]`` (differentiable in the parameters)."""
        if self.geo_cfg["parameterization"] == "largesteps":
            return self.solver().from_differential(self.shape_param)
        return self.base_verts + self.shape_param

    def setup(self, stage: str) -> None:
        if self.faces.shape[0] == 0:
            v, f = self.initial_mesh()
            self._set_mesh(v, f, None)
        dm = self.datamodule
        self.gt_mesh = getattr(dm, "gt_mesh", None)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # the mesh may have been subdivided: take the checkpoint's sizes before its tensors load
        sd = checkpoint["state_dict"]
        if "faces" in sd and sd["faces"].shape != self.faces.shape:
            self._set_mesh(sd["base_verts"], sd["faces"], sd["colors"])
        if "texture" in sd and sd["texture"].shape != self.texture.shape:
            self._set_texture(torch.zeros_like(sd["texture"]))

    # -- the optimizer and the schedule ------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        app = self.texture if self.texture.requires_grad else self.colors
        return [{"params": [self.shape_param], "name": "shape"},
                {"params": [app], "name": "appearance", "lr_scale": float(self.app_cfg["lr_scale"]), "uniform": False}]

    def _stage_bounds(self) -> tuple[int, int]:
        """(first, last) global step of the current stage (between subdivisions)."""
        total = max(1, int(self.trainer.estimated_stepping_batches))
        cuts = [0] + [int(round(x * total)) for x in self.subdivide_at] + [total]
        k = int(self.level)
        return cuts[min(k, len(cuts) - 2)], cuts[min(k + 1, len(cuts) - 1)]

    def configure_optimizers(self):
        opt = self.build_optimizer()
        final = float(self.sched_cfg["final_lr_factor"])

        def factor(_):
            if self._trainer is None:
                return 1.0
            a, b = self._stage_bounds()
            t = min(max((self.global_step - a) / max(1, b - a), 0.0), 1.0)
            return final ** t

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _subdivision_steps(self) -> list[int]:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return [max(1, int(round(x * total))) for x in self.subdivide_at]

    def on_train_batch_start(self, batch, batch_idx) -> None:
        changed = False
        due = sum(1 for s in self._subdivision_steps() if self.global_step >= s)
        if due > int(self.level):
            with torch.no_grad():
                v, f, c = subdivide(self.verts().detach(), self.faces, self.colors.detach())
            self._set_mesh(v, f, c)
            self.level.fill_(due)
            changed = True
        if (self.app_cfg["kind"] == "texture" and not self.textured
                and self.global_step >= self._texture_step()):
            self.bake_texture()
            changed = True
        if changed:
            self._best_loss, self._stale_epochs = math.inf, 0
            self._restart_optimizer()

    def _restart_optimizer(self) -> None:
        """A new optimizer for the current parameters (the training loop reads trainer.optimizers
        after on_train_batch_start); parameters that carry over keep their Adam state, and the LR
        schedule is a function of the global step, so it carries over too."""
        strategy = self.trainer.strategy
        old = dict(self.trainer.optimizers[0].state) if self.trainer.optimizers else {}
        strategy.setup_optimizers(self.trainer)
        new = self.trainer.optimizers[0]
        for group in new.param_groups:
            for p in group["params"]:
                if p in old:
                    new.state[p] = old[p]
        if self.trainer.world_size > 1:  # DDP registered the old parameters: wrap the new ones
            strategy.model = strategy._setup_model(strategy.lightning_module)
            strategy._register_ddp_hooks()

    def _texture_step(self) -> int:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return int(round(float(self.app_cfg["texture_from"]) * total))

    def atlas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uv [3F,2], uv_faces [F,3])`` of the texture's per-triangle atlas for the current faces."""
        key = (self.faces.shape[0], self.texture.shape[0], self.faces.device)
        if self._atlas is None or self._atlas[0] != key:
            uv, uvf = rl_mesh.triangle_atlas(self.faces.shape[0], self.texture.shape[0])
            self._atlas = (key, uv.to(self.faces.device), uvf.to(self.faces.device))
        return self._atlas[1], self._atlas[2]

    @torch.no_grad()
    def bake_texture(self) -> None:
        """Start learning the texture: the vertex colours baked into an atlas for the current
        faces (``appearance.atlas_cell`` texels per cell), which replaces them as the learned
        appearance. The caller restarts the optimizer."""
        size = rl_mesh.atlas_size(self.faces.shape[0], self.app_cfg["atlas_cell"])
        baked = rl_mesh.bake_vertex_colors(self.verts().detach(), self.faces, self.colors.detach(), size=size)
        self._set_texture(baked.texture)

    @property
    def textured(self) -> bool:
        """Whether the appearance is the atlas texture (baked; a host-side test, no device sync)."""
        return self.texture.numel() > 0

    def _set_texture(self, tex: torch.Tensor) -> None:
        self.texture = torch.nn.Parameter(tex.detach().float().to(self.faces.device).contiguous())
        self.colors.requires_grad_(False)

    # -- rendering ---------------------------------------------------------------------------------
    def render_batch(self, batch: dict, verts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        verts = self.verts() if verts is None else verts
        mvp = batch["mvp"]
        res = tuple(batch["rgb"].shape[1:3])
        faces = self.faces
        clip = transform_points(mvp, verts.to(mvp.dtype).unsqueeze(0)).contiguous()
        rast, _ = rastlit.rasterize(clip, faces, res, grad_db=False)
        mask = (rast[..., 3:4] > 0).to(verts.dtype)
        if self.textured:
            uv, uv_faces = self.atlas()
            uvi, _ = rastlit.interpolate(uv[None], rast, uv_faces)
            col = rastlit.texture(self.texture[None], uvi, filter_mode="linear", boundary_mode="clamp")
        elif self.app_cfg["kind"] in ("vertex_color", "texture"):
            col, _ = rastlit.interpolate(self.colors.unsqueeze(0).contiguous(), rast, faces)
        else:
            from rastlit.data.synthetic import make_lights
            from rastlit.shading import lambertian, safe_normalize

            attr = torch.cat([rl_mesh.vertex_normals(verts, faces), self.colors], -1)
            feat, _ = rastlit.interpolate(attr.unsqueeze(0).contiguous(), rast, faces)
            if self._lights is None or self._lights[0].direction.device != verts.device:  # built once
                self._lights = make_lights(self.app_cfg["lights"] or [{"direction": [0.4, 1.0, 0.3]}],
                                           device=verts.device)
            col = lambertian(safe_normalize(feat[..., :3]), feat[..., 3:6], self._lights,
                             ambient=float(self.app_cfg["ambient"]))
        bg = self.background_color.to(col.dtype)
        rgb = col * mask + bg * (1 - mask)
        if self.silhouette == "antialias":
            out = self.antialias_layer(torch.cat([rgb, mask], -1).contiguous(), rast, clip, faces)
            return out[..., :3], out[..., 3:4]
        alpha = rastlit.rasterize_soft(clip, faces, res, **self.soft).alpha.unsqueeze(-1)
        return rgb, alpha

    # -- losses --------------------------------------------------------------------------------------
    def compute_losses(self, verts: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor,
                       batch: dict) -> dict[str, torch.Tensor]:
        w = self.loss_cfg
        dist = (lambda a, b: (a - b).abs().mean()) if w["norm"] == "l1" else (lambda a, b: (a - b).square().mean())
        terms: dict[str, torch.Tensor] = {}
        if w["rgb"]:
            terms["rgb"] = dist(rgb, batch["rgb"])
        if w["alpha"]:
            terms["alpha"] = dist(alpha, batch["alpha"])
        if w["laplacian"]:
            terms["laplacian"] = rl_losses.laplacian_smoothing(verts, self.faces)
        if w["normal_consistency"]:
            terms["normal_consistency"] = rl_losses.normal_consistency(verts, self.faces)
        if w["edge"]:
            terms["edge"] = rl_losses.edge_length_loss(verts, self.faces)
        terms["loss"] = sum(float(w[k]) * v for k, v in terms.items())
        return terms

    def image_scale(self) -> int:
        """The factor the images are reduced by at this step (``schedule.coarse_images``: the
        fraction of the steps trained at half resolution, where the shape is still coarse)."""
        frac = float(self.sched_cfg["coarse_images"])
        if frac <= 0 or self._trainer is None:
            return 1
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return 2 if self.global_step < frac * total else 1

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        k = self.image_scale()
        if k > 1 and batch["rgb"].shape[1] % k == 0 and batch["rgb"].shape[2] % k == 0:
            # box-filtered targets match the antialiased (area-coverage) renders at the lower size
            pool = lambda x: torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), k).permute(0, 2, 3, 1)  # noqa: E731
            batch = {**batch, "rgb": pool(batch["rgb"]).contiguous(), "alpha": pool(batch["alpha"]).contiguous()}
        verts = self.verts()
        rgb, alpha = self.render_batch(batch, verts)
        terms = self.compute_losses(verts, rgb, alpha, batch)
        self.log_train_terms(terms, batch["mvp"].shape[0])
        b = batch["mvp"].shape[0]
        s = terms["loss"].detach() * b
        self._epoch_loss = [s if self._epoch_loss[0] is None else self._epoch_loss[0] + s, self._epoch_loss[1] + b]
        return terms["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        with torch.no_grad():
            self.colors.clamp_(0, 1)
            self.texture.clamp_(0, 1)

    def on_train_epoch_end(self) -> None:
        total, n = self._epoch_loss
        self._epoch_loss = [None, 0]
        patience = int(self.sched_cfg["stop_patience"])
        if not patience or n == 0 or int(self.level) < len(self.subdivide_at):
            return
        loss = float(total) / n  # one host sync per epoch, only with the stopping rule on
        if loss < self._best_loss * (1 - float(self.sched_cfg["stop_min_delta"])):
            self._best_loss, self._stale_epochs = loss, 0
        else:
            self._stale_epochs += 1
            if self._stale_epochs >= patience:
                self.trainer.should_stop = True

    # -- validation ----------------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        verts = self.verts()
        rgb, alpha = self.render_batch(batch, verts)
        terms = self.compute_losses(verts, rgb, alpha, batch)
        bs = batch["mvp"].shape[0]
        m = view_metrics(rgb, alpha, batch["rgb"], batch["alpha"])
        self.val_loss(terms["loss"])
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=bs)
        self.log("val/psnr", m["psnr"].mean(), on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("val/ssim", m["ssim"].mean(), on_epoch=True, batch_size=bs)
        self.log("val/mask_iou", m["mask_iou"].mean(), on_epoch=True, prog_bar=True, batch_size=bs)
        if batch_idx == 0 and self.should_log_images():
            k = self.num_grid_views
            grid = image_grid([batch["rgb"][:k], rgb[:k], batch["alpha"][:k], alpha[:k]])
            self.log_image_grid("val/renders", grid, caption="rows: target, fit, target alpha, fit alpha")

    def on_validation_epoch_end(self) -> None:
        if self.gt_mesh is not None and not self.trainer.sanity_checking:
            geo = self.geometry_metrics(n=min(int(self.eval_cfg["points"]), 5000))
            self.log("val/chamfer", geo["chamfer"], sync_dist=True)
            self.log("val/fscore", geo["fscore"], prog_bar=True, sync_dist=True)

    # -- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def geometry_metrics(self, n: int | None = None) -> dict[str, float]:
        """Chamfer distance (squared, PyTorch3D's convention) and F-score at
        ``eval.fscore_threshold`` of the ground truth's bounding-box diagonal, on ``n`` points
        sampled from each surface (a fixed seed: comparable across epochs and runs)."""
        n = int(n or self.eval_cfg["points"])
        g = torch.Generator().manual_seed(self.seed + 12345)
        verts = self.verts().detach().float().cpu()
        tv, tf = self.gt_mesh.verts.float().cpu(), self.gt_mesh.faces.cpu()
        p, _ = rl_mesh.sample_points(verts, self.faces.cpu(), n, generator=g)
        q, _ = rl_mesh.sample_points(tv, tf, n, generator=g)
        cd, _ = rl_losses.chamfer_distance(p, q)
        diag = float((tv.max(0).values - tv.min(0).values).norm())
        f, prec, rec = rl_losses.fscore(p, q, threshold=float(self.eval_cfg["fscore_threshold"]) * diag)
        return {"chamfer": float(cd), "fscore": float(f), "precision": float(prec), "recall": float(rec)}

    def extra_test_metrics(self) -> dict[str, float]:
        out = {"num_verts": float(self.faces.max().item() + 1), "num_faces": float(self.faces.shape[0])}
        if self.gt_mesh is not None:
            out.update(self.geometry_metrics())
        return out

    # -- artefacts -----------------------------------------------------------------------------------
    def fitted_mesh(self) -> "rl_mesh.Mesh":
        """The fitted mesh with its per-vertex colours, and its atlas texture once it is learned
        (the vertex colours are then the texture's mean over each vertex's corners)."""
        verts, faces = self.verts().detach().float().cpu().contiguous(), self.faces.cpu()
        colors = self.colors.detach().float().cpu().clamp(0, 1)
        if not self.textured:
            return rl_mesh.Mesh(verts=verts, faces=faces, vertex_colors=colors.contiguous())
        uv, uv_faces = (x.cpu() for x in self.atlas())
        tex = self.texture.detach().float().cpu().clamp(0, 1).contiguous()
        corner = rastlit.texture(tex[None], uv[None, None], filter_mode="linear", boundary_mode="clamp")[0, 0]
        idx = faces.reshape(-1).long()
        acc = torch.zeros_like(colors).index_add_(0, idx, corner)
        cnt = torch.zeros(colors.shape[0]).index_add_(0, idx, torch.ones(idx.shape[0]))
        colors = torch.where(cnt[:, None] > 0, acc / cnt.clamp_min(1)[:, None], colors)
        return rl_mesh.Mesh(verts=verts, faces=faces, vertex_colors=colors.contiguous(), uv=uv.contiguous(),
                            uv_faces=uv_faces.contiguous(), texture=tex)

    def save_artefacts(self, out_dir: str) -> dict[str, str]:
        """``mesh.ply`` (vertex colours), ``mesh.obj`` + ``mesh.mtl`` + ``mesh.png`` and
        ``mesh.glb`` (the learned atlas texture, or the colours baked into one) and
        ``test_views.png`` (rows: test targets, renders of the fit, error x4)."""
        from rastlit.image import save_image

        paths = {"ply": os.path.join(out_dir, "mesh.ply"), "obj": os.path.join(out_dir, "mesh.obj"),
                 "glb": os.path.join(out_dir, "mesh.glb")}
        m = self.fitted_mesh()
        rl_mesh.save_mesh(rl_mesh.Mesh(m.verts, m.faces, vertex_colors=m.vertex_colors), paths["ply"])
        if m.texture is not None:
            textured = rl_mesh.Mesh(m.verts, m.faces, uv=m.uv, uv_faces=m.uv_faces, texture=m.texture)
        else:
            textured = rl_mesh.bake_vertex_colors(m.verts, m.faces, m.vertex_colors, size=1024)
        rl_mesh.save_mesh(textured, paths["obj"])
        rl_mesh.save_mesh(textured, paths["glb"])
        paths.update(mtl=os.path.join(out_dir, "mesh.mtl"), texture=os.path.join(out_dir, "mesh.png"))
        grid = self.test_grid()
        if grid is not None:
            paths["test_views"] = os.path.join(out_dir, "test_views.png")
            save_image(grid, paths["test_views"])
            self.log_image_grid("test/views", grid, caption="rows: target, fit, |error| x4")
        return paths
