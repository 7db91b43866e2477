"""Write a synthetic target as a Blender-format dataset folder.

``python -m rastlit.data.export --out DIR [--target bumpy_sphere] [--texture procedural] ...``
renders the target like ``data=synthetic`` does and writes ``transforms_{train,val,test}.json``,
the RGBA images and ``mesh_gt.obj`` (the target's geometry, for ``data.gt_mesh``; with its UVs and
texture when it has them, for ``task=texture_recovery task.mesh=...``). Load it back with
``python -m rastlit.train data=blender data.root=DIR``.
"""

from __future__ import annotations

import argparse
import os

import torch

from .blender import c2w_from_view, intrinsics_from_projection, write_blender_split
from .synthetic import PROCEDURAL_TARGETS, SyntheticDataModule

__all__ = ["export_blender", "main"]


def export_blender(dm: SyntheticDataModule, out: str) -> dict[str, str]:
    """Write the data module's three splits and its target mesh into ``out``; returns the paths."""
    dm.setup()
    os.makedirs(out, exist_ok=True)
    paths = {}
    for split, ds in (("train", dm.train_set), ("val", dm.val_set), ("test", dm.test_set)):
        t = ds.tensors
        h, w = ds.resolution
        intr = [intrinsics_from_projection(p, w, h) for p in t["proj"]]
        paths[split] = write_blender_split(out, split, t["rgb"], t["alpha"], c2w_from_view(t["view"]), intr,
                                           background=dm.background)
    from rastlit import mesh as rl_mesh

    m = dm.target_mesh
    paths["mesh"] = os.path.join(out, "mesh_gt.obj")
    rl_mesh.save_mesh(m, paths["mesh"])
    return paths


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m rastlit.data.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the dataset folder to write")
    p.add_argument("--target", default="bumpy_sphere", help=f"one of {PROCEDURAL_TARGETS} or a mesh file")
    p.add_argument("--texture", default=None, help="procedural, an image path, or omit (the mesh's own)")
    p.add_argument("--num-views", type=int, default=64)
    p.add_argument("--num-val-views", type=int, default=8)
    p.add_argument("--num-test-views", type=int, default=16)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--shading", default="lambert", choices=["lambert", "phong", "unlit"])
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    render = {"shading": a.shading, "ambient": 0.25,
              "lights": [{"direction": [0.4, 1.0, 0.3], "color": [1.0, 0.9, 0.8], "intensity": 0.7},
                         {"direction": [-0.7, -0.3, 0.6], "color": [0.5, 0.6, 1.0], "intensity": 0.4}]}
    dm = SyntheticDataModule(target=a.target, texture=a.texture, num_views=a.num_views,
                             num_val_views=a.num_val_views, num_test_views=a.num_test_views, resolution=a.resolution,
                             render=render, seed=a.seed)
    paths = export_blender(dm, a.out)
    torch.set_printoptions(precision=4)
    print(f"wrote {a.out}: " + ", ".join(f"{k}={os.path.relpath(v, a.out)}" for k, v in paths.items()))


if __name__ == "__main__":
    main()
