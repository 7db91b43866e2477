"""What both tasks share: the optimizer, image grids, logging helpers and the artefact files."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger

__all__ = ["RenderTask", "image_grid", "write_metrics_json"]


def image_grid(rows: list[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """Tile images into a grid: ``rows`` is a list of ``[N,H,W,3]`` batches (one grid row each,
    e.g. targets then predictions), row 0 of every image at the bottom (rastlit's convention).
    Returns ``[H',W',3]`` TOP-DOWN (ready for a PNG or W&B), white padding between tiles."""
    tiles = []
    for batch in rows:
        b = batch.detach().float().cpu().clamp(0, 1)
        if b.shape[-1] == 1:
            b = b.expand(*b.shape[:-1], 3)
        b = b[..., :3].flip(1)  # top-down
        n, h, w, _ = b.shape
        row = torch.ones(h, n * (w + pad) - pad, 3)
        for i in range(n):
            row[:, i * (w + pad):i * (w + pad) + w] = b[i]
        tiles.append(row)
    width = max(t.shape[1] for t in tiles)
    out = torch.ones(sum(t.shape[0] for t in tiles) + pad * (len(tiles) - 1), width, 3)
    y = 0
    for t in tiles:
        out[y:y + t.shape[0], :t.shape[1]] = t
        y += t.shape[0] + pad
    return out


def _to_uint8(img: torch.Tensor):
    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def write_metrics_json(path: str, metrics: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    def plain(v):
        if isinstance(v, torch.Tensor):
            v = v.item()
        return v if isinstance(v, (int, str, type(None))) else float(v)

    clean = {k: plain(v) for k, v in metrics.items()}
    with open(path, "w") as f:
        json.dump(clean, f, indent=2, sort_keys=True)


class RenderTask(pl.LightningModule):
    """Base of the tasks: builds the optimizer from a ``functools.partial`` (Hydra's
    ``_partial_: true``) with ``lr``, logs image grids to W&B every ``log_images_every_n_epochs``
    validation epochs, and leaves ``evaluate`` / ``save_artefacts`` to the subclasses (the
    entry point calls them on rank 0 after fitting)."""

    def __init__(self, optimizer: Callable | None = None, lr: float = 1e-2, log_images_every_n_epochs: int = 5,
                 num_grid_views: int = 4):
        super().__init__()
        self._optimizer_factory = optimizer
        self.lr = lr
        self.log_images_every_n_epochs = log_images_every_n_epochs
        self.num_grid_views = num_grid_views

    # -- optimizer -------------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if self._optimizer_factory is None:
            return torch.optim.Adam(params, lr=self.lr)
        return self._optimizer_factory(params, lr=self.lr)

    # -- data access -----------------------------------------------------------------------------
    @property
    def datamodule(self):
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            raise RuntimeError(f"{type(self).__name__} needs a rastlit.data.MultiViewDataModule passed to trainer.fit")
        return dm

    # -- logging ---------------------------------------------------------------------------------
    def log_train_terms(self, terms: dict, batch_size: int) -> None:
        """Log a training step's loss terms: ``terms["loss"]`` through the subclass's
        ``self.train_loss`` (MeanMetric, per epoch, on the progress bar), the others per step."""
        self.train_loss(terms["loss"].detach())
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}, on_step=True,
                      on_epoch=False, batch_size=batch_size)

    def _wandb(self) -> WandbLogger | None:
        for lg in (self.loggers or []):
            if isinstance(lg, WandbLogger):
                return lg
        return None

    def log_image_grid(self, key: str, grid: torch.Tensor, caption: str | None = None) -> None:
        """Log a top-down ``[H,W,3]`` grid to W&B (no-op for other loggers)."""
        lg = self._wandb()
        if lg is None or not self.trainer.is_global_zero:
            return
        lg.log_image(key=key, images=[_to_uint8(grid)], caption=[caption] if caption else None,
                     step=self.global_step)

    def log_object3d(self, key: str, path: str) -> None:
        """Log a mesh file (OBJ/GLB) to W&B as a ``wandb.Object3D``."""
        lg = self._wandb()
        if lg is None or not self.trainer.is_global_zero:
            return
        import wandb

        lg.experiment.log({key: wandb.Object3D(path)})

    def should_log_images(self) -> bool:
        n = self.log_images_every_n_epochs
        if not n or n <= 0 or self.trainer.sanity_checking:
            return False
        last = self.trainer.max_epochs is not None and self.current_epoch + 1 >= self.trainer.max_epochs
        return (self.current_epoch + 1) % n == 0 or last

    # -- subclasses ------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def save_artefacts(self, out_dir: str) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError
