"""The training entry point: ``python -m rastlit.train [overrides]`` (Hydra).

Examples::

    python -m rastlit.train                                   # task=mesh_fit, W&B offline
    python -m rastlit.train data=blender data.root=/path/to/dataset   # your posed images
    python -m rastlit.train experiment=texture_recovery_synthetic logger=csv
    python -m rastlit.train -m optimizer.lr=0.01,0.03           # basic multirun
    python -m rastlit.train -m hparams_search=mesh_fit_optuna   # Optuna, maximizing val/psnr
    python -m rastlit.train trainer=ddp trainer.devices=2       # DDP (gloo on the CPU)
    python -m rastlit.train ckpt_path=/path/to/last.ckpt       # resume

The configs live in the package (``rastlit.conf``, found from any working directory); print the
composed one with ``--cfg job``. After fitting, ``trainer.test`` evaluates the task on the test
split; the ``ArtefactWriter`` callback writes the artefacts (meshes, textures, the test-view grid)
and ``metrics.json`` (test metrics, per view too, and wall time) into the run directory. The return
value is ``metrics[optimized_metric]`` (a test metric or a last ``val/...`` value) for sweepers.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from rastlit._source_tree import use_source_tree_subpackages

use_source_tree_subpackages()

__all__ = ["main", "train"]


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    out = []
    if not group:
        return out
    for _, c in group.items():
        if isinstance(c, DictConfig) and "_target_" in c:
            out.append(hydra.utils.instantiate(c))
    return out


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit ``cfg.task`` on ``cfg.data``; returns the final metrics (rank 0; ``{}`` on other ranks)."""
    import lightning.pytorch as pl
    import torch

    t0 = time.perf_counter()
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)

    # _convert_="all": plain dicts/lists in the modules' hparams, so checkpoints load with
    # torch.load(weights_only=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    optimizer = hydra.utils.instantiate(cfg.optimizer, _convert_="all") if cfg.get("optimizer") else None
    model = hydra.utils.instantiate(cfg.task, optimizer=optimizer, _convert_="all")
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_time = time.perf_counter() - t0
    # last validation values, e.g. for sweeps (which must not tune on the test split)
    last_val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
    # the final evaluation: the test split (the ArtefactWriter callback writes files and metrics.json)
    trainer.test(model=model, datamodule=datamodule, verbose=False)

    metrics: dict[str, Any] = {}
    if trainer.is_global_zero:
        metrics = {k: v for k, v in model.test_results.items() if k != "per_view"}
        metrics.update(last_val)
        metrics.update(wall_time_s=time.perf_counter() - t0, fit_time_s=fit_time, epochs=trainer.current_epoch,
                       global_step=trainer.global_step, task=cfg.get("task_name"))
        out_dir = cfg.paths.output_dir
        path = os.path.join(out_dir, "metrics.json")
        if os.path.exists(path):  # written by the ArtefactWriter: add the timing
            from rastlit.tasks.base import write_metrics_json

            with open(path) as f:
                stored = json.load(f)
            stored.update(wall_time_s=metrics["wall_time_s"], fit_time_s=fit_time, task=cfg.get("task_name"))
            write_metrics_json(path, stored)
        numeric = {f"final/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        for lg in loggers:
            lg.log_metrics(numeric, step=trainer.global_step)
            lg.save()
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        print(f"[rastlit.train] {cfg.get('task_name')}: {summary}; artefacts in {out_dir}")
    for lg in loggers:
        lg.finalize("success")
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://rastlit.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if not name or not metrics:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} is not among the final metrics {sorted(metrics)}")
    return float(metrics[name])


if __name__ == "__main__":
    main()
