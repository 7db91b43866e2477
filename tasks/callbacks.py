"""Callbacks of the tasks: :class:`ArtefactWriter` writes what a run leaves behind."""

from __future__ import annotations

import os
import shutil
import time

import lightning.pytorch as pl

from .base import write_metrics_json

__all__ = ["ArtefactWriter"]


class ArtefactWriter(pl.Callback):
    """After ``trainer.test`` (rank 0): the task's artefacts (``task.save_artefacts``: the fitted
    mesh, textures, render grids) and ``metrics.json`` (the test metrics, their per-view values,
    and the fit's wall time) in ``out_dir``.

    Files are first written into ``out_dir/.artefacts.tmp`` and then moved into place one by one,
    so an interrupted run leaves no half-written file behind.
    """

    def __init__(self, out_dir: str, metrics_file: str = "metrics.json"):
        self.out_dir = str(out_dir)
        self.metrics_file = metrics_file
        self._t0 = time.perf_counter()
        self.written: dict[str, str] = {}

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_test_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        tmp = os.path.join(self.out_dir, ".artefacts.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            paths = pl_module.save_artefacts(tmp)
            for name in sorted(os.listdir(tmp)):
                os.replace(os.path.join(tmp, name), os.path.join(self.out_dir, name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.written = {k: os.path.join(self.out_dir, os.path.basename(v)) for k, v in paths.items()}
        metrics = dict(pl_module.test_results)
        metrics.update(wall_time_s=time.perf_counter() - self._t0, epochs=trainer.current_epoch,
                       global_step=trainer.global_step)
        write_metrics_json(os.path.join(self.out_dir, self.metrics_file), metrics)
        for key in ("obj", "glb"):
            if key in self.written:
                pl_module.log_object3d(f"final/mesh_{key}", self.written[key])
                break
