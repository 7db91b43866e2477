"""Texture recovery: known geometry with UVs, learn its texture map from posed images.

As in nvdiffrast's earth sample: the texture is sampled with trilinear mipmapping
(``rastlit.texture`` with the UV derivatives from ``rastlit.interpolate``), so the gradient reaches
every mip level: coarse levels learn quickly while the fine level sharpens. The parameter is a
``[Ht,Wt,3]`` texture optimized against the images (L1 by default, ``loss=l2``) with antialiased
edges; ``w_smooth`` adds a total-variation prior (for texels seen only at grazing angles).

The geometry is ``task.mesh``: a mesh file with UVs in the dataset's world frame (``data=blender``:
the object the images show) or a procedural name (``data=synthetic``: the same target as the data,
normalised alike). Whatever lighting the images have is learned into the texture (unlit).

Evaluation (``trainer.test``): PSNR / SSIM / mask IoU per test view, and the texture PSNR against
the data module's ``gt_texture`` when it has one (synthetic data).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

import rastlit
from rastlit import mesh as rl_mesh
from rastlit.camera import transform_points
from rastlit.nn import Antialias

from .base import RenderTask, background_rgb, image_grid, view_metrics

__all__ = ["TextureRecoveryTask", "total_variation"]


def total_variation(tex: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring texels ``[Ht,Wt,C]`` (wrapping in u)."""
    du = (tex - tex.roll(1, dims=1)).abs().mean()
    dv = (tex[1:] - tex[:-1]).abs().mean()
    return du + dv


class TextureRecoveryTask(RenderTask):
    """Learn a texture from posed images (see the module docstring).

    Args:
        mesh: a mesh file with UVs (the dataset's world frame) or a procedural target name.
        mesh_normalize: centre and scale a mesh file into ``[-1,1]^3`` first (as ``data=synthetic``
            does with its targets; off for real datasets).
        texture_size: side of the learned (square) texture; a power of two keeps every mip level.
        init: initial texel value.
        w_smooth: weight of the total-variation prior.
        loss: ``l1`` or ``l2``.
        filter_mode, max_mip_level: the ``rastlit.texture`` sampling.
        antialias: antialias the edges (as the images are).
        background: the colour the data composited its images over.
    """

    def __init__(self, mesh: str = "uv_sphere", mesh_normalize: bool = True, procedural: dict | None = None,
                 texture_size: int = 256, init: float = 0.5, w_smooth: float = 0.0, loss: str = "l1",
                 filter_mode: str = "linear-mipmap-linear", max_mip_level: int | None = None, antialias: bool = True,
                 background: Any = "black", optimizer: Callable | None = None, log_images_every_n_val: int = 2,
                 num_grid_views: int = 4):
        super().__init__(optimizer=optimizer, log_images_every_n_val=log_images_every_n_val,
                         num_grid_views=num_grid_views)
        self.save_hyperparameters(ignore=["optimizer"], logger=True)
        if loss not in ("l1", "l2"):
            raise ValueError(f"task.loss must be 'l1' or 'l2', got {loss!r}")
        self.mesh_arg, self.mesh_normalize, self.procedural = mesh, bool(mesh_normalize), dict(procedural or {})
        self.w_smooth, self.loss_kind = float(w_smooth), loss
        self.filter_mode, self.max_mip_level, self.use_antialias = filter_mode, max_mip_level, bool(antialias)
        self.background = background_rgb(background)
        self.register_buffer("background_color", torch.tensor(self.background), persistent=False)
        self.texture = torch.nn.Parameter(torch.full((texture_size, texture_size, 3), float(init)))
        self.antialias_layer = Antialias()
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.gt_texture = None
        m = self._load_mesh()
        self.register_buffer("verts", m.verts.float().contiguous(), persistent=False)
        self.register_buffer("faces", m.faces.to(torch.int32).contiguous(), persistent=False)
        self.register_buffer("uv", m.uv.float().contiguous(), persistent=False)
        self.register_buffer("uv_faces", m.uv_faces.to(torch.int32).contiguous(), persistent=False)

    def _load_mesh(self) -> "rl_mesh.Mesh":
        from rastlit.data.synthetic import load_target

        if self.mesh_arg in (None, "", "???"):
            raise ValueError("task.mesh must name the known geometry: a mesh file with UVs (task.mesh=path.obj)")
        m = load_target(self.mesh_arg, self.procedural, normalize=self.mesh_normalize)
        if m.uv is None:
            raise ValueError(f"task.mesh={self.mesh_arg!r} has no UVs: texture recovery needs texture coordinates")
        return m

    def setup(self, stage: str) -> None:
        gt = getattr(self.datamodule, "gt_texture", None)
        self.gt_texture = None if gt is None else gt[..., :3].float()

    # -- rendering -----------------------------------------------------------------------------------
    def render_batch(self, batch: dict, texture: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tex = self.texture if texture is None else texture
        mvp = batch["mvp"]
        res = tuple(batch["rgb"].shape[1:3])
        clip = transform_points(mvp, self.verts.unsqueeze(0)).contiguous()
        rast, rast_db = rastlit.rasterize(clip, self.faces, res)
        uvi, uv_da = rastlit.interpolate(self.uv.unsqueeze(0).contiguous(), rast, self.uv_faces, rast_db,
                                         diff_attrs="all")
        mask = (rast[..., 3:4] > 0).to(tex.dtype)
        col = rastlit.texture(tex.unsqueeze(0).contiguous(), uvi, uv_da, filter_mode=self.filter_mode,
                              max_mip_level=self.max_mip_level)
        bg = self.background_color.to(tex.dtype)
        img = torch.cat([col[..., :3] * mask + bg * (1 - mask), mask], -1)
        if self.use_antialias:
            img = self.antialias_layer(img.contiguous(), rast, clip, self.faces)
        return img[..., :3], img[..., 3:4]

    def compute_losses(self, rgb: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        d = rgb - batch["rgb"]
        terms = {"rgb": d.abs().mean() if self.loss_kind == "l1" else d.square().mean()}
        if self.w_smooth:
            terms["smooth"] = total_variation(self.texture)
        terms["loss"] = terms["rgb"] + self.w_smooth * terms.get("smooth", 0.0)
        return terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rgb, _ = self.render_batch(batch)
        terms = self.compute_losses(rgb, batch)
        self.log_train_terms(terms, batch["mvp"].shape[0])
        return terms["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        with torch.no_grad():
            self.texture.clamp_(0, 1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        rgb, alpha = self.render_batch(batch)
        terms = self.compute_losses(rgb, batch)
        bs = batch["mvp"].shape[0]
        m = view_metrics(rgb, alpha, batch["rgb"], batch["alpha"])
        self.val_loss(terms["loss"])
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=bs)
        self.log("val/psnr", m["psnr"].mean(), on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("val/ssim", m["ssim"].mean(), on_epoch=True, batch_size=bs)
        if batch_idx == 0 and self.should_log_images():
            k = self.num_grid_views
            self.log_image_grid("val/renders", image_grid([batch["rgb"][:k], rgb[:k]]), caption="rows: target, learned")

    def on_validation_epoch_end(self) -> None:
        if self.gt_texture is not None:
            self.log("val/texture_psnr", self.texture_psnr(), prog_bar=True, sync_dist=True)

    # -- evaluation ----------------------------------------------------------------------------------
    def _gt_at_size(self) -> torch.Tensor:
        t = self.gt_texture.to(self.texture.device)
        if t.shape[:2] != self.texture.shape[:2]:
            t = F.interpolate(t.permute(2, 0, 1)[None], size=tuple(self.texture.shape[:2]), mode="area"
                              if t.shape[0] >= self.texture.shape[0] else "bilinear")[0].permute(1, 2, 0)
        return t

    @torch.no_grad()
    def texture_psnr(self) -> float:
        mse = (self.texture.detach().clamp(0, 1) - self._gt_at_size()).square().mean()
        return float(-10 * torch.log10(mse.clamp_min(1e-12)))

    def extra_test_metrics(self) -> dict[str, float]:
        return {} if self.gt_texture is None else {"texture_psnr": self.texture_psnr()}

    def save_artefacts(self, out_dir: str) -> dict[str, str]:
        """``texture.png`` (the learned map, top-down as image files are), ``mesh.obj`` (+
        ``mesh.mtl``, ``mesh.png``), ``mesh.glb`` and ``test_views.png`` (rows: test targets,
        renders, error x4)."""
        from rastlit.image import save_image

        paths = {"texture": os.path.join(out_dir, "texture.png"), "obj": os.path.join(out_dir, "mesh.obj"),
                 "glb": os.path.join(out_dir, "mesh.glb")}
        tex = self.texture.detach().clamp(0, 1).float().cpu()
        save_image(tex, paths["texture"])
        m = rl_mesh.Mesh(verts=self.verts.cpu(), faces=self.faces.cpu(), uv=self.uv.cpu(),
                         uv_faces=self.uv_faces.cpu(), texture=tex)
        rl_mesh.save_mesh(m, paths["obj"])
        rl_mesh.save_mesh(m, paths["glb"])
        grid = self.test_grid()
        if grid is not None:
            paths["test_views"] = os.path.join(out_dir, "test_views.png")
            save_image(grid, paths["test_views"])
            self.log_image_grid("test/views", grid, caption="rows: target, learned, |error| x4")
        return paths
