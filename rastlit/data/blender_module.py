"""``data=blender``: posed images from a NeRF-synthetic / Blender-format folder as a Lightning
DataModule (the file format itself: :mod:`rastlit.data.blender`)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from .base import PosedImagesDataModule, ViewDataset, make_views
from .blender import has_split, read_blender_split
from .scene import camera_centres, optical_axes_centre

__all__ = ["BlenderDataModule"]


class BlenderDataModule(PosedImagesDataModule):
    """``root/transforms_{train,val,test}.json`` and their images as the batch contract.

    Args:
        root: the dataset folder.
        downscale: integer factor the images (and intrinsics) are reduced by on load.
        background: what transparent pixels are composited over: ``black``, ``white`` or an RGB
            triple (the renders of the tasks use the same colour).
        gt_mesh: optional ground-truth mesh file in the dataset's world frame, for evaluation
            only (chamfer, F-score); it never enters a batch.
        near, far: clip planes; ``auto`` puts them at 0.05x the nearest and 3x the farthest camera
            distance from the point where the optical axes meet (where they do not meet, as for one
            camera or a forward-facing rig: 0.01 and 1000 times the cameras' spread, at least 1).
        val_fallback_views: without ``transforms_val.json`` the validation split is every k-th
            training frame (k = N // this, at most this many frames; they stay in training, so
            validation then monitors the fit, not generalisation). Without a test split, the
            test split is the validation split (with a warning).
    """

    def __init__(self, root: str, downscale: int = 1, background: Any = "black", gt_mesh: str | None = None,
                 near: Any = "auto", far: Any = "auto", val_fallback_views: int = 8, batch_size: int = 8,
                 seed: int = 0, num_workers: int = 0):
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        if root is None or str(root) in ("", "???"):
            raise ValueError("data.root must be the dataset folder (holding transforms_train.json), got "
                             f"{root!r}; e.g. data.root=/path/to/nerf_synthetic/lego")
        self.save_hyperparameters(logger=False)
        self.root = os.path.expanduser(str(root))
        if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
            raise ValueError(f"data.downscale must be an int >= 1, got {downscale!r}")
        self.downscale, self.background = downscale, background
        self.gt_mesh_path = gt_mesh
        self.near, self.far = near, far
        self.val_fallback_views = int(val_fallback_views)
        self.split_sources: dict[str, str] = {}

    def _clip_planes(self, view: torch.Tensor) -> tuple[float, float]:
        near, far = self.near, self.far
        if near == "auto" or far == "auto":
            eyes = camera_centres(view)
            try:
                d = (eyes - optical_axes_centre(view)).norm(dim=-1)
                lo, hi = 0.05 * float(d.min()), 3.0 * float(d.max())
            except ValueError:
                # the optical axes do not meet (one camera, forward-facing rigs): no object distance
                # to go by, so a wide range in the units of the cameras' spread
                spread = float((eyes - eyes.mean(0)).norm(dim=-1).max()) if eyes.shape[0] > 1 else 0.0
                scale = max(spread, 1.0)
                lo, hi = 0.01 * scale, 1000.0 * scale
            if near == "auto":
                near = max(lo, 1e-6)
            if far == "auto":
                far = max(hi, 2.0 * float(near))
        near, far = float(near), float(far)
        if not (0 < near < far):
            raise ValueError(f"data.near and data.far must satisfy 0 < near < far, got {near}, {far}")
        return near, far

    def _views(self, split) -> ViewDataset:
        view = torch.linalg.inv(split.c2w.to(torch.float64)).float()
        near, far = self._clip_planes(view)
        proj = torch.stack([k.projection(near, far) for k in split.intrinsics]).float()
        return make_views((view, proj), split.eye(), split.rgb, split.alpha)

    def load_splits(self) -> tuple[ViewDataset, ViewDataset, ViewDataset]:
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"data.root={self.root!r}: no such dataset folder")
        read = lambda s: read_blender_split(self.root, s, downscale=self.downscale,  # noqa: E731
                                            background=self.background)
        train_split = read("train")
        # one pair of clip planes for every split, from the training cameras
        view = torch.linalg.inv(train_split.c2w.to(torch.float64)).float()
        self.near, self.far = self._clip_planes(view)
        train = self._views(train_split)
        self.split_sources = {"train": "train"}
        if has_split(self.root, "val"):
            val = self._views(read("val"))
            self.split_sources["val"] = "val"
        else:
            n = len(train)
            k = max(1, n // max(1, self.val_fallback_views))
            idx = list(range(0, n, k))[: self.val_fallback_views]
            val = train.subset(idx)
            self.split_sources["val"] = f"train[::{k}][:{len(idx)}]"
        if has_split(self.root, "test"):
            test = self._views(read("test"))
            self.split_sources["test"] = "test"
        else:
            warnings.warn(f"{self.root}: no transforms_test.json; trainer.test evaluates on the validation split "
                          f"({self.split_sources['val']})")
            test = val
            self.split_sources["test"] = self.split_sources["val"]
        for name, ds in (("val", val), ("test", test)):
            if ds.resolution != train.resolution:
                raise ValueError(f"{self.root}: the {name} images are {ds.resolution[1]}x{ds.resolution[0]} but the "
                                 f"training images {train.resolution[1]}x{train.resolution[0]}; all splits need one size")
        if self.gt_mesh_path:
            from rastlit import mesh as rl_mesh

            try:
                self.gt_mesh = rl_mesh.load_mesh(self.gt_mesh_path)
            except (OSError, ValueError) as e:
                raise ValueError(f"data.gt_mesh={self.gt_mesh_path!r} could not be read: {e}") from e
        return train, val, test
