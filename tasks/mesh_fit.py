"""Mesh fitting: deform a source mesh until its renders match multi-view images of a target.

The learnable parameters are per-vertex offsets of the source (an icosphere by default, or a mesh
file), optimized with Adam (or any ``_partial_`` optimizer) against the data module's views:

``loss = w_silhouette * |alpha - alpha*|^2 + w_rgb * |rgb - rgb*|^2 + w_normals * |n - n*|^2
+ w_laplacian * laplacian + w_normal_consistency * normal_consistency + w_edge * edge_length``

(image terms are means over pixels). Silhouette gradients come from ``rastlit.antialias``
(``silhouette=antialias``, default) or soft rasterization (``silhouette=soft``).

Coarse-to-fine (``coarse_to_fine=[e1, ..., en]``): the offsets are the sum of ``n + 1`` levels,
the coarsest on the source subdivided ``n`` times fewer, each level linearly upsampled (edge
midpoints) to the finest mesh; level ``k`` starts learning at epoch ``e_k`` (level 0 at once).
Early epochs move the shape only smoothly; the finest level adds the detail last. All levels are
parameters from the start (shapes never change), so checkpoints and DDP work unchanged. Geometry metrics
(Chamfer distance and F-score on points sampled from both surfaces, silhouette IoU) and image
metrics (PSNR, SSIM) are computed on the held-out validation views.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from rastlit import losses as rl_losses
from rastlit import mesh as rl_mesh

from .base import RenderTask, image_grid
from .render import Render, render_shaded

__all__ = ["MeshFitTask", "subdivide"]


def _split_edges(faces: torch.Tensor, nv: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(midpoint_edges [E,2], new_faces [4F,3])`` of one midpoint subdivision (the same vertex
    order as :func:`rastlit.mesh.icosphere`'s: the old vertices, then one per unique edge)."""
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


def subdivide(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split every triangle in four at its edge midpoints (shared midpoints deduplicated, no
    projection): the upsampling step of coarse-to-fine fitting. On an icosphere it gives the
    next level's faces and (after projection onto the sphere) vertices exactly."""
    mid, nf = _split_edges(faces, verts.shape[0])
    return _upsample(verts, mid), nf


class MeshFitTask(RenderTask):
    """Fit a mesh to multi-view renders (see the module docstring).

    Args:
        source: ``"icosphere"`` or a mesh file path (centred and scaled into the unit box).
        source_subdivisions: icosphere level of the source.
        source_scale: radius of the source sphere (or scale of the file mesh).
        source_upsample: midpoint-subdivide the source this many times before fitting (coarse
            meshes from files get the resolution the fit needs).
        coarse_to_fine: epochs at which successively finer offset levels start learning (see the
            module docstring); ``None`` or ``[]``: one level, the finest.
        lr, optimizer: learning rate and a ``functools.partial`` optimizer (default Adam).
        silhouette: ``"antialias"`` or ``"soft"`` (``soft`` = kwargs of ``rastlit.rasterize_soft``).
        w_*: loss weights (0 disables a term); ``laplacian_method``: ``uniform`` or ``cotangent``.
        render: renderer keyword arguments (lights, albedo), the same as the data module's.
        eval_points: points sampled on each surface for Chamfer / F-score.
        fscore_threshold: F-score distance as a fraction of the target's bounding-box diagonal.
    """

    def __init__(self, source: str = "icosphere", source_subdivisions: int = 4, source_scale: float = 1.0,
                 source_upsample: int = 0, coarse_to_fine: list[int] | None = None, lr: float = 5e-3, optimizer: Callable | None = None,
                 silhouette: str = "antialias", soft: dict | None = None, w_silhouette: float = 1.0,
                 w_rgb: float = 1.0, w_normals: float = 0.0, w_laplacian: float = 1.0,
                 w_normal_consistency: float = 0.01, w_edge: float = 0.1, laplacian_method: str = "uniform",
                 render: dict | None = None, eval_points: int = 20000, fscore_threshold: float = 0.01,
                 log_images_every_n_epochs: int = 5, num_grid_views: int = 4, seed: int = 0):
        super().__init__(optimizer=optimizer, lr=lr, log_images_every_n_epochs=log_images_every_n_epochs,
                         num_grid_views=num_grid_views)
        self.save_hyperparameters(ignore=["optimizer"], logger=True)
        if silhouette not in ("antialias", "soft"):
            raise ValueError(f"task.silhouette must be 'antialias' or 'soft', got {silhouette!r}")
        self.silhouette, self.soft = silhouette, dict(soft or {})
        self.weights = {"silhouette": w_silhouette, "rgb": w_rgb, "normals": w_normals, "laplacian": w_laplacian,
                        "normal_consistency": w_normal_consistency, "edge": w_edge}
        self.laplacian_method = laplacian_method
        self.render_kwargs = {k: v for k, v in dict(render or {}).items() if k not in ("silhouette", "soft")}
        self.eval_points, self.fscore_threshold, self.seed = eval_points, fscore_threshold, seed

        self.c2f_epochs = [int(e) for e in (coarse_to_fine or [])]
        if self.c2f_epochs != sorted(self.c2f_epochs) or any(e < 0 for e in self.c2f_epochs):
            raise ValueError(f"task.coarse_to_fine must be increasing epochs >= 0, got {coarse_to_fine}")
        n_c2f = len(self.c2f_epochs)
        if source == "icosphere":
            if source_subdivisions < n_c2f:
                raise ValueError(f"coarse_to_fine with {n_c2f} coarser levels needs source_subdivisions >= {n_c2f}")
            v, f = rl_mesh.icosphere(source_subdivisions - n_c2f)
            v = v * source_scale
            n_up = n_c2f
        else:
            m = rl_mesh.load_mesh(source)
            v, _, _ = rl_mesh.normalize_to_unit_box(m.verts.float())
            v, f = v * source_scale, m.faces
            n_up = source_upsample + n_c2f
        # subdivide to the finest level, remembering the last n_c2f levels' edge midpoints
        level_sizes, mids = [], []
        for i in range(n_up):
            if i >= n_up - n_c2f:
                level_sizes.append(v.shape[0])
            mid, f = _split_edges(f, v.shape[0])
            v = _upsample(v, mid)
            if i >= n_up - n_c2f:
                mids.append(mid)
        if source == "icosphere":  # projected onto the sphere at every level; same vertex order and faces
            v = rl_mesh.icosphere(source_subdivisions)[0] * source_scale
        self.register_buffer("source_verts", v.float().contiguous())
        self.register_buffer("faces", f.to(torch.int32).contiguous())
        for k, mid in enumerate(mids):
            self.register_buffer(f"_c2f_mid{k}", mid, persistent=False)
        self.coarse_offsets = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(n, 3)) for n in level_sizes])
        self.offsets = torch.nn.Parameter(torch.zeros_like(self.source_verts))

        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_iou = MeanMetric()
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    # -- model -----------------------------------------------------------------------------------
    def level_active(self) -> list[float]:
        """1.0 for each offset level (coarsest first, the finest last) that learns this epoch."""
        if not self.c2f_epochs:
            return [1.0]
        epoch = self.current_epoch if self._trainer is not None else float("inf")
        return [1.0] + [1.0 if epoch >= e else 0.0 for e in self.c2f_epochs]

    def verts(self) -> torch.Tensor:
        """The current mesh: source + the offsets of every active level, upsampled to the finest."""
        active = self.level_active()
        total = None
        for k, o in enumerate(self.coarse_offsets):
            d = o * active[k]  # inactive levels stay in the graph (zero gradient): DDP-safe
            total = d if total is None else total + d
            total = _upsample(total, getattr(self, f"_c2f_mid{k}"))
        d = self.offsets * active[-1]
        return self.source_verts + (d if total is None else total + d)

    def render(self, verts: torch.Tensor, mvp: torch.Tensor, eye: torch.Tensor, resolution) -> Render:
        return render_shaded(verts, self.faces, mvp, eye, resolution, silhouette=self.silhouette, soft=self.soft,
                             **self.render_kwargs)

    def setup(self, stage: str) -> None:
        dm = self.datamodule
        dm.setup(stage)
        t = dm.target_mesh
        self.register_buffer("target_verts", t.verts.float().contiguous(), persistent=False)
        self.register_buffer("target_faces", t.faces.to(torch.int32).contiguous(), persistent=False)
        self.resolution = dm.resolution

    # -- losses ----------------------------------------------------------------------------------
    def compute_losses(self, verts: torch.Tensor, r: Render, batch: dict) -> dict[str, torch.Tensor]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        if w["silhouette"]:
            terms["silhouette"] = (r.alpha - batch["alpha"]).square().mean()
        if w["rgb"]:
            terms["rgb"] = (r.rgb - batch["rgb"]).square().mean()
        if w["normals"]:
            terms["normals"] = (r.normals - batch["normals"]).square().mean()
        if w["laplacian"]:
            terms["laplacian"] = rl_losses.laplacian_smoothing(verts, self.faces, method=self.laplacian_method)
        if w["normal_consistency"]:
            terms["normal_consistency"] = rl_losses.normal_consistency(verts, self.faces)
        if w["edge"]:
            terms["edge"] = rl_losses.edge_length_loss(verts, self.faces)
        terms["loss"] = sum(w[k] * v for k, v in terms.items())
        return terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        verts = self.verts()
        r = self.render(verts, batch["mvp"], batch["eye"], batch["rgb"].shape[1:3])
        terms = self.compute_losses(verts, r, batch)
        self.log_train_terms(terms, batch["mvp"].shape[0])
        return terms["loss"]

    # -- validation ------------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        verts = self.verts()
        r = self.render(verts, batch["mvp"], batch["eye"], batch["rgb"].shape[1:3])
        terms = self.compute_losses(verts, r, batch)
        bs = batch["mvp"].shape[0]
        self.val_loss(terms["loss"])
        self.val_iou(rl_losses.silhouette_iou(r.alpha, batch["alpha"], threshold=0.5, batch_reduction=None))
        pred = r.rgb.clamp(0, 1).permute(0, 3, 1, 2)
        tgt = batch["rgb"].permute(0, 3, 1, 2)
        self.val_psnr(pred, tgt)
        self.val_ssim(pred, tgt)
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=False, batch_size=bs)
        self.log("val/silhouette_iou", self.val_iou, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("val/psnr", self.val_psnr, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("val/ssim", self.val_ssim, on_epoch=True, batch_size=bs)
        if batch_idx == 0 and self.should_log_images():
            k = self.num_grid_views
            grid = image_grid([batch["rgb"][:k], r.rgb[:k], batch["alpha"][:k], r.alpha[:k]])
            self.log_image_grid("val/renders", grid, caption="rows: target, fit, target alpha, fit alpha")

    def on_validation_epoch_end(self) -> None:
        geo = self.geometry_metrics(n=min(self.eval_points, 5000))
        # the same value on every rank (the parameters are synchronised): sync_dist averages equals
        self.log("val/chamfer", geo["chamfer"], prog_bar=True, sync_dist=True)
        self.log("val/fscore", geo["fscore"], prog_bar=True, sync_dist=True)

    @torch.no_grad()
    def geometry_metrics(self, n: int | None = None) -> dict[str, float]:
        """Chamfer distance (squared, PyTorch3D's convention) and F-score at ``fscore_threshold``
        of the target's bounding-box diagonal, on ``n`` points sampled from each surface (a fixed
        seed, so the numbers are comparable across epochs and runs)."""
        n = n or self.eval_points
        g = torch.Generator().manual_seed(self.seed + 12345)
        verts = self.verts().detach().float().cpu()
        tv, tf = self.target_verts.float().cpu(), self.target_faces.cpu()
        p, _ = rl_mesh.sample_points(verts, self.faces.cpu(), n, generator=g)
        q, _ = rl_mesh.sample_points(tv, tf, n, generator=g)
        cd, _ = rl_losses.chamfer_distance(p, q)
        diag = float((tv.max(0).values - tv.min(0).values).norm())
        f, prec, rec = rl_losses.fscore(p, q, threshold=self.fscore_threshold * diag)
        return {"chamfer": float(cd), "fscore": float(f), "precision": float(prec), "recall": float(rec)}

    # -- final evaluation and artefacts (called by rastlit.train on rank 0) ------------------------
    @torch.no_grad()
    def render_val(self) -> tuple[Render, dict]:
        vs = self.datamodule.val_set.tensors
        dev = self.offsets.device
        batch = {k: v.to(dev) for k, v in vs.items()}
        r = self.render(self.verts(), batch["mvp"], batch["eye"], batch["rgb"].shape[1:3])
        return r, batch

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Final metrics on all held-out views: chamfer, fscore (+ precision, recall),
        silhouette_iou, psnr, ssim."""
        r, batch = self.render_val()
        pred = r.rgb.clamp(0, 1).permute(0, 3, 1, 2).float().cpu()
        tgt = batch["rgb"].permute(0, 3, 1, 2).float().cpu()
        out = self.geometry_metrics()
        out["silhouette_iou"] = float(rl_losses.silhouette_iou(r.alpha.float().cpu(), batch["alpha"].float().cpu(),
                                                               threshold=0.5))
        out["psnr"] = float(PeakSignalNoiseRatio(data_range=1.0)(pred, tgt))
        out["ssim"] = float(StructuralSimilarityIndexMeasure(data_range=1.0)(pred, tgt))
        return out

    def fitted_mesh(self) -> "rl_mesh.Mesh":
        return rl_mesh.Mesh(verts=self.verts().detach().float().cpu().contiguous(), faces=self.faces.cpu())

    def save_artefacts(self, out_dir: str) -> dict[str, str]:
        """Write ``mesh.obj``, ``mesh.ply`` and ``renders.png`` (validation targets vs fit,
        top-down) into ``out_dir``; log the mesh to W&B as an Object3D."""
        from rastlit.data import save_png

        os.makedirs(out_dir, exist_ok=True)
        paths = {"obj": os.path.join(out_dir, "mesh.obj"), "ply": os.path.join(out_dir, "mesh.ply"),
                 "renders": os.path.join(out_dir, "renders.png")}
        m = self.fitted_mesh()
        rl_mesh.save_mesh(m, paths["obj"])
        rl_mesh.save_mesh(m, paths["ply"])
        r, batch = self.render_val()
        k = self.num_grid_views
        grid = image_grid([batch["rgb"][:k], r.rgb[:k], batch["normals"][:k], r.normals[:k]])
        save_png(grid.flip(0), paths["renders"])  # image_grid is top-down already; save_png flips back
        self.log_image_grid("final/renders", grid, caption="rows: target, fit, target normals, fit normals")
        self.log_object3d("final/mesh", paths["obj"])
        return paths
