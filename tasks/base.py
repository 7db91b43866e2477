"""What both tasks share: the optimizer, logging helpers, the test-split evaluation and the files.

A task is a LightningModule over the data contract of :mod:`rastlit.data`: it renders a batch's
cameras (``render_batch``) and compares with what they saw. ``trainer.test`` evaluates on the test
split: PSNR, SSIM and mask IoU per view and their means, plus the task's own metrics
(``extra_test_metrics``, e.g. chamfer and F-score against a ground-truth mesh); the results land in
``task.test_results`` and :class:`rastlit.tasks.callbacks.ArtefactWriter` writes them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger

from rastlit import losses as rl_losses
from rastlit.image import _to_uint8, background_rgb, write_atomic

__all__ = ["RenderTask", "image_grid", "write_metrics_json", "background_rgb", "view_metrics"]


def image_grid(rows: list[torch.Tensor], pad: int = 2) -> torch.Tensor:
    """One grid row per batch in ``rows`` (``[N,H,W,C]`` each, e.g. targets then predictions; grey
    images become RGB, short rows are filled with white), through :func:`rastlit.image.image_grid`:
    ``[H',W',3]`` in rastlit's convention (row 0 at the bottom, the first grid row on top), ready
    for :func:`rastlit.image.save_image`."""
    from rastlit.image import image_grid as tile

    n = max(int(r.shape[0]) for r in rows)
    batches = []
    for r in rows:
        b = r.detach().float().cpu().clamp(0, 1)
        b = b.expand(*b.shape[:-1], 3) if b.shape[-1] == 1 else b[..., :3]
        if b.shape[0] < n:
            b = torch.cat([b, torch.ones(n - b.shape[0], *b.shape[1:])])
        batches.append(b)
    return tile(torch.cat(batches), ncols=n, pad=pad)


def _plain(v):
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if isinstance(v, (int, str, bool, type(None))) else float(v)


def write_metrics_json(path: str, metrics: dict[str, Any]) -> None:
    """Write ``metrics`` as JSON through a temporary file (never half-written)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(_plain(metrics), indent=2, sort_keys=True)
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


@torch.no_grad()
def view_metrics(pred_rgb: torch.Tensor, pred_alpha: torch.Tensor, rgb: torch.Tensor,
                 alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-view ``psnr``, ``ssim`` (on RGB in [0, 1]) and ``mask_iou`` (alpha > 0.5), each ``[B]``."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    p = pred_rgb.detach().float().clamp(0, 1)
    t = rgb.detach().float()
    mse = (p - t).square().flatten(1).mean(1)
    psnr = -10 * torch.log10(mse.clamp_min(1e-12))
    ssim = structural_similarity_index_measure(p.permute(0, 3, 1, 2), t.permute(0, 3, 1, 2), data_range=1.0,
                                               reduction="none")
    iou = rl_losses.silhouette_iou(pred_alpha.detach().float(), alpha.detach().float(), threshold=0.5,
                                   batch_reduction=None)
    return {"psnr": psnr.cpu(), "ssim": ssim.reshape(-1).cpu(), "mask_iou": iou.reshape(-1).cpu()}


class RenderTask(pl.LightningModule):
    """Base of the tasks: the optimizer (a ``functools.partial`` from the optimizer config group,
    which holds the learning rate; ``param_groups`` may scale it per group with ``lr_scale``), W&B
    image logging every ``log_images_every_n_val``-th validation run, and the test-split
    evaluation (see the module docstring)."""

    def __init__(self, optimizer: Callable | None = None, log_images_every_n_val: int = 2,
                 num_grid_views: int = 4):
        super().__init__()
        self._optimizer_factory = optimizer
        self.log_images_every_n_val = log_images_every_n_val
        self.num_grid_views = num_grid_views
        self.test_results: dict[str, Any] = {}
        self._test_views: dict[str, list] = {}
        self._test_grid: list[torch.Tensor] = []

    # -- optimizer -------------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """Parameter groups for the optimizer; ``lr_scale`` multiplies the configured learning rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def base_lr(self) -> float:
        f = self._optimizer_factory
        lr = getattr(f, "keywords", {}).get("lr") if f is not None else None
        return float(lr) if lr is not None else 1e-2

    def build_optimizer(self) -> torch.optim.Optimizer:
        lr = self.base_lr()
        groups = []
        for g in self.param_groups():
            g = dict(g)
            g["lr"] = lr * float(g.pop("lr_scale", 1.0))
            groups.append(g)
        if self._optimizer_factory is None:
            return torch.optim.Adam(groups, lr=lr)
        return self._optimizer_factory(groups)

    def configure_optimizers(self):
        return self.build_optimizer()

    # -- data access -----------------------------------------------------------------------------
    @property
    def datamodule(self):
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or getattr(dm, "train_set", None) is None:
            raise RuntimeError(f"{type(self).__name__} needs a rastlit.data data module passed to trainer.fit "
                               "(Lightning sets it up before the task)")
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
        """Log an ``[H,W,3]`` grid (row 0 at the bottom, as :func:`image_grid` makes it) to W&B
        (no-op for other loggers)."""
        lg = self._wandb()
        if lg is None or not self.trainer.is_global_zero:
            return
        lg.log_image(key=key, images=[_to_uint8(grid.flip(0))], caption=[caption] if caption else None,
                     step=self.global_step)

    def log_object3d(self, key: str, path: str) -> None:
        """Log a mesh file (OBJ/GLB) to W&B as a ``wandb.Object3D``."""
        lg = self._wandb()
        if lg is None or not self.trainer.is_global_zero:
            return
        import wandb

        lg.experiment.log({key: wandb.Object3D(path)})

    def should_log_images(self) -> bool:
        """Whether this validation run logs image grids: every ``log_images_every_n_val``-th
        validation run (0 disables)."""
        n = self.log_images_every_n_val
        if not n or n <= 0 or self.trainer.sanity_checking:
            return False
        return self._val_runs % n == 0

    def on_validation_epoch_start(self) -> None:
        self._val_runs = getattr(self, "_val_runs", 0) + 1

    # -- test split ------------------------------------------------------------------------------
    def render_batch(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        """``(rgb [B,H,W,3], alpha [B,H,W,1])`` of the current model seen by the batch's cameras."""
        raise NotImplementedError

    def extra_test_metrics(self) -> dict[str, float]:
        """Task-specific final metrics (e.g. geometry against a ground-truth mesh)."""
        return {}

    def on_test_epoch_start(self) -> None:
        self._test_views = {"index": [], "psnr": [], "ssim": [], "mask_iou": []}
        self._test_grid = []

    @torch.no_grad()
    def test_step(self, batch: dict, batch_idx: int) -> None:
        rgb, alpha = self.render_batch(batch)
        m = view_metrics(rgb, alpha, batch["rgb"], batch["alpha"])
        for k, v in m.items():
            self._test_views[k].extend(v.tolist())
        self._test_views["index"].extend(batch["index"].cpu().tolist())
        bs = batch["mvp"].shape[0]
        for k, v in m.items():
            self.log(f"test/{k}", v.mean(), batch_size=bs, on_epoch=True)
        have = sum(g.shape[0] for g in self._test_grid[::3])
        k = max(0, self.num_grid_views - have)
        if k:
            err = (rgb[:k].float() - batch["rgb"][:k].float()).abs().mean(-1, keepdim=True).mul(4).clamp(0, 1)
            self._test_grid += [batch["rgb"][:k].detach().cpu(), rgb[:k].detach().cpu(), err.cpu()]

    def on_test_epoch_end(self) -> None:
        views = self._test_views
        res: dict[str, Any] = {k: float(torch.tensor(views[k]).mean()) for k in ("psnr", "ssim", "mask_iou")}
        extra = self.extra_test_metrics()
        for k, v in extra.items():
            self.log(f"test/{k}", float(v), sync_dist=True)
        res.update(extra)
        res["per_view"] = [{"index": int(i), "psnr": p, "ssim": s, "mask_iou": u}
                           for i, p, s, u in zip(views["index"], views["psnr"], views["ssim"], views["mask_iou"])]
        self.test_results = res

    def test_grid(self) -> torch.Tensor | None:
        """Grid of the first test views (rastlit's row order): rows target | prediction | error (x4)."""
        if not self._test_grid:
            return None
        cols = [torch.cat(self._test_grid[i::3])[: self.num_grid_views] for i in range(3)]
        return image_grid(cols)

    # -- artefacts (the ArtefactWriter callback calls this on rank 0) --------------------------------
    def save_artefacts(self, out_dir: str) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError
