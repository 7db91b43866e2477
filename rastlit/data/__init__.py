"""Data for the training tasks: posed images, from a dataset folder or rendered from a synthetic target.

**The batch contract.** A batch is what a camera saw, and nothing more (a dict of tensors, B views):

========== ============ ===============================================================
key        shape        meaning
========== ============ ===============================================================
``rgb``    [B,H,W,3]    colour in [0, 1], composited over the data's background colour
``alpha``  [B,H,W,1]    coverage mask in [0, 1]
``mvp``    [B,4,4]      world to clip (OpenGL; ``proj @ view``)
``view``   [B,4,4]      world to camera (the camera looks along -z, y up)
``proj``   [B,4,4]      camera to clip: the intrinsics (and clip planes)
``eye``    [B,3]        camera centre in world space
``index``  [B]          frame index within its split
========== ============ ===============================================================

Images follow rastlit's convention: row 0 is the BOTTOM row (NDC y = -1); pixel centres sample
the scene. Ground truth that a camera cannot see (normals, the mesh, the texture) never enters a
batch; a ground-truth mesh may be handed to the data module (``gt_mesh``) for evaluation only.

**Sources** (Lightning DataModules with train / val / test splits, ``conf/data/``):

- :class:`BlenderDataModule` (``data=blender data.root=...``): a NeRF-synthetic / Blender-format
  folder (``transforms_{train,val,test}.json``, camera-to-world OpenGL matrices, RGBA images or
  RGB + masks), read by :mod:`rastlit.data.blender`.
- :class:`SyntheticDataModule` (``data=synthetic``): a procedural or mesh-file target rendered by
  rastlit (the demo default and quick tests). ``python -m rastlit.data.export`` writes one as a
  Blender-format folder.

:mod:`rastlit.data.scene` estimates where the object is from the cameras and masks (the tasks
place their initial shape with it).
"""

from __future__ import annotations

from rastlit._source_tree import use_source_tree_subpackages

from .base import BATCH_KEYS, EpochShuffleSampler, PosedImagesDataModule, ViewDataset, make_views
from .blender_module import BlenderDataModule
from .scene import SceneBounds, optical_axes_centre, scene_bounds, visual_hull
from .synthetic import PROCEDURAL_TARGETS, SyntheticDataModule, load_target, procedural_texture, render_target

use_source_tree_subpackages()

__all__ = ["BATCH_KEYS", "ViewDataset", "EpochShuffleSampler", "PosedImagesDataModule", "make_views",
           "BlenderDataModule", "SyntheticDataModule", "PROCEDURAL_TARGETS", "load_target", "procedural_texture",
           "render_target", "SceneBounds", "optical_axes_centre", "scene_bounds", "visual_hull"]
