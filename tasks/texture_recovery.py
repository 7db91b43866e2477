"""Texture recovery: known geometry with UVs, learn the texture map from renders of a target.

As in nvdiffrast's earth sample: the texture is sampled with trilinear mipmapping
(``rastlit.texture`` with the UV derivatives from ``rastlit.interpolate``), so the gradient reaches
every mip level and the coarse levels learn quickly while the fine level sharpens. The parameter is
a ``[Ht,Wt,3]`` texture (initialised to grey) optimized with Adam against the data module's
views; ``w_smooth`` adds a total-variation prior (useful where views are sparse).

Metrics: render PSNR/SSIM on the held-out views, texture PSNR of the learned map against the
target texture (resampled to the learned resolution when they differ).
"""

from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from rastlit import mesh as rl_mesh

from .base import RenderTask, image_grid
from .render import Render, render_textured

__all__ = ["TextureRecoveryTask", "total_variation"]


def total_variation(tex: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring texels ``[Ht,Wt,C]`` (wrapping in u)."""
    du = (tex - tex.roll(1, dims=1)).abs().mean()
    dv = (tex[1:] - tex[:-1]).abs().mean()
    return du + dv


class TextureRecoveryTask(RenderTask):
    """Learn a texture from renders (see the module docstring).

    Args:
        texture_size: side of the learned (square) texture; a power of two keeps every mip level.
        init: initial texel value.
        lr, optimizer: learning rate and a ``functools.partial`` optimizer (default Adam).
        w_smooth: weight of the total-variation prior.
        filter_mode: ``rastlit.texture`` filter (``linear-mipmap-linear`` as nvdiffrast's sample).
        max_mip_level: mip levels used below the base (None: all).
        render: renderer keyword arguments, the same as the data module's (``antialias``, ...).
    """

    def __init__(self, texture_size: int = 256, init: float = 0.5, lr: float = 3e-2,
                 optimizer: Callable | None = None, w_smooth: float = 0.0,
                 filter_mode: str = "linear-mipmap-linear", max_mip_level: int | None = None,
                 render: dict | None = None, log_images_every_n_epochs: int = 5, num_grid_views: int = 4):
        super().__init__(optimizer=optimizer, lr=lr, log_images_every_n_epochs=log_images_every_n_epochs,
                         num_grid_views=num_grid_views)
        self.save_hyperparameters(ignore=["optimizer"], logger=True)
        self.w_smooth = w_smooth
        self.render_kwargs = dict(render or {})
        self.render_kwargs.setdefault("filter_mode", filter_mode)
        self.render_kwargs.setdefault("max_mip_level", max_mip_level)
        self.texture = torch.nn.Parameter(torch.full((texture_size, texture_size, 3), float(init)))
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    def setup(self, stage: str) -> None:
        dm = self.datamodule
        dm.setup(stage)
        m = dm.target_mesh
        if m.uv is None:
            raise ValueError("texture_recovery needs a target mesh with UVs")
        self.register_buffer("verts", m.verts.float().contiguous(), persistent=False)
        self.register_buffer("faces", m.faces.to(torch.int32).contiguous(), persistent=False)
        self.register_buffer("uv", m.uv.float().contiguous(), persistent=False)
        self.register_buffer("uv_faces", m.uv_faces.to(torch.int32).contiguous(), persistent=False)
        self.register_buffer("target_texture", dm.target_texture.float().contiguous(), persistent=False)

    def render(self, mvp: torch.Tensor, resolution, texture: torch.Tensor | None = None) -> Render:
        tex = self.texture if texture is None else texture
        return render_textured(self.verts, self.faces, self.uv, self.uv_faces, tex, mvp, resolution,
                               **self.render_kwargs)

    def compute_losses(self, r: Render, batch: dict) -> dict[str, torch.Tensor]:
        terms = {"rgb": (r.rgb - batch["rgb"]).square().mean()}
        if self.w_smooth:
            terms["smooth"] = total_variation(self.texture)
        terms["loss"] = terms["rgb"] + self.w_smooth * terms.get("smooth", 0.0)
        return terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        r = self.render(batch["mvp"], batch["rgb"].shape[1:3])
        terms = self.compute_losses(r, batch)
        self.log_train_terms(terms, batch["mvp"].shape[0])
        return terms["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        with torch.no_grad():
            self.texture.clamp_(0, 1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        r = self.render(batch["mvp"], batch["rgb"].shape[1:3])
        terms = self.compute_losses(r, batch)
        bs = batch["mvp"].shape[0]
        pred = r.rgb.clamp(0, 1).permute(0, 3, 1, 2)
        tgt = batch["rgb"].permute(0, 3, 1, 2)
        self.val_loss(terms["loss"])
        self.val_psnr(pred, tgt)
        self.val_ssim(pred, tgt)
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=bs)
        self.log("val/psnr", self.val_psnr, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("val/ssim", self.val_ssim, on_epoch=True, batch_size=bs)
        if batch_idx == 0 and self.should_log_images():
            k = self.num_grid_views
            self.log_image_grid("val/renders", image_grid([batch["rgb"][:k], r.rgb[:k]]),
                                caption="rows: target, learned")

    def on_validation_epoch_end(self) -> None:
        self.log("val/texture_psnr", self.texture_psnr(), prog_bar=True, sync_dist=True)
        if self.should_log_images():
            self.log_image_grid("val/texture", image_grid([self.texture.detach()[None],
                                                           self._target_at_size()[None]]),
                                caption="learned | target")

    def _target_at_size(self) -> torch.Tensor:
        t = self.target_texture[..., :3]
        if t.shape[:2] != self.texture.shape[:2]:
            t = F.interpolate(t.permute(2, 0, 1)[None], size=tuple(self.texture.shape[:2]), mode="area"
                              if t.shape[0] >= self.texture.shape[0] else "bilinear")[0].permute(1, 2, 0)
        return t

    @torch.no_grad()
    def texture_psnr(self) -> float:
        mse = (self.texture.detach().clamp(0, 1) - self._target_at_size()).square().mean()
        return float(-10 * torch.log10(mse.clamp_min(1e-12)))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Final metrics: texture_psnr, and psnr / ssim of the renders on all held-out views."""
        vs = self.datamodule.val_set.tensors
        dev = self.texture.device
        r = self.render(vs["mvp"].to(dev), vs["rgb"].shape[1:3])
        pred = r.rgb.clamp(0, 1).permute(0, 3, 1, 2).float().cpu()
        tgt = vs["rgb"].permute(0, 3, 1, 2).float()
        return {"texture_psnr": self.texture_psnr(),
                "psnr": float(PeakSignalNoiseRatio(data_range=1.0)(pred, tgt)),
                "ssim": float(StructuralSimilarityIndexMeasure(data_range=1.0)(pred, tgt))}

    def save_artefacts(self, out_dir: str) -> dict[str, str]:
        """Write ``texture.png`` (the learned map, top-down as image files are), ``mesh.obj`` (the
        geometry with the learned texture: ``mesh.mtl`` + ``mesh.png`` beside it), ``mesh.ply``
        and ``renders.png`` (validation targets vs learned, top-down)."""
        from rastlit.data import save_png

        os.makedirs(out_dir, exist_ok=True)
        paths = {"texture": os.path.join(out_dir, "texture.png"), "obj": os.path.join(out_dir, "mesh.obj"),
                 "ply": os.path.join(out_dir, "mesh.ply"), "renders": os.path.join(out_dir, "renders.png")}
        tex = self.texture.detach().clamp(0, 1).float().cpu()
        save_png(tex, paths["texture"])
        m = rl_mesh.Mesh(verts=self.verts.cpu(), faces=self.faces.cpu(), uv=self.uv.cpu(),
                         uv_faces=self.uv_faces.cpu(), texture=tex)
        rl_mesh.save_mesh(m, paths["obj"])
        rl_mesh.save_mesh(m, paths["ply"])
        vs = self.datamodule.val_set.tensors
        k = self.num_grid_views
        with torch.no_grad():
            r = self.render(vs["mvp"][:k].to(self.texture.device), vs["rgb"].shape[1:3])
        grid = image_grid([vs["rgb"][:k], r.rgb])
        save_png(grid.flip(0), paths["renders"])
        self.log_image_grid("final/renders", grid, caption="rows: target, learned")
        self.log_object3d("final/mesh", paths["obj"])
        return paths
