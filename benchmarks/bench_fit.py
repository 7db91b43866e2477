"""Fitting quality and time on datasets that rastlit did not render: the default CLI, per object.

    pip install mitsuba                                     # benchmark-only, not a test dependency
    python benchmarks/make_blender_dataset.py --object all --out /tmp/rastlit_bench   # path-traced
    python benchmarks/bench_fit.py --root /tmp/rastlit_bench [--task both] [-- extra overrides]

For every object folder under ``--root`` (a Blender-format dataset with ``mesh_gt.*`` beside it)
this runs, as a user would,

- ``python -m rastlit.train data=blender data.root=<obj> data.gt_mesh=<obj>/mesh_gt.*``
  (``task=mesh_fit``, all defaults), and
- ``python -m rastlit.train task=texture_recovery data=blender data.root=<obj> task.mesh=<obj>/mesh_gt.obj``
  where the ground-truth mesh has UVs,

each in its own process, and prints one table row per run from its ``metrics.json``: the test-split
means (PSNR, SSIM, mask IoU), the geometry against the ground truth (F-score at 1% of the bounding
box diagonal, precision, recall, chamfer) and the wall time. The bar (issue 11): F >= 0.96,
PSNR >= 35 dB, IoU >= 0.99 in <= 180 s for mesh_fit; PSNR >= 37 dB in <= 180 s for
texture_recovery, on 2 CPU cores. Extra arguments after ``--`` go to every run (e.g.
``-- trainer=gpu`` or ``-- trainer.max_steps=3000``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gt_mesh(folder: Path) -> Path | None:
    for ext in ("obj", "ply", "glb"):
        p = folder / f"mesh_gt.{ext}"
        if p.is_file():
            return p
    return None


def has_uv(path: Path) -> bool:
    if path.suffix != ".obj":
        return False
    with open(path, "rb") as f:
        return b"\nvt " in f.read()


def run(args: list[str], log_dir: Path) -> tuple[dict, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_WAIT_POLICY", "passive")
    cmd = [sys.executable, "-m", "rastlit.train", "logger=none", f"paths.log_dir={log_dir}", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        print(p.stdout[-3000:], p.stderr[-5000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    (metrics,) = glob.glob(str(log_dir / "**" / "metrics.json"), recursive=True)
    return json.loads(Path(metrics).read_text()), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="folder of Blender-format object folders")
    ap.add_argument("--objects", nargs="*", help="object folder names (default: all under --root)")
    ap.add_argument("--task", choices=["mesh_fit", "texture_recovery", "both"], default="both")
    ap.add_argument("extra", nargs="*", help="overrides for every run (after --)")
    a = ap.parse_args()
    root = Path(a.root)
    objects = a.objects or sorted(p.name for p in root.iterdir() if (p / "transforms_train.json").is_file())
    if not objects:
        raise SystemExit(f"no Blender-format folders under {root} (make them with make_blender_dataset.py)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in objects:
            folder = root / name
            gt = gt_mesh(folder)
            if a.task in ("mesh_fit", "both"):
                args = ["data=blender", f"data.root={folder}"] + ([f"data.gt_mesh={gt}"] if gt else []) + a.extra
                m, wall = run(args, Path(tmp) / f"{name}_mesh_fit")
                rows.append(("mesh_fit", name, m, wall))
            if a.task in ("texture_recovery", "both") and gt is not None and has_uv(gt):
                args = ["task=texture_recovery", "data=blender", f"data.root={folder}", f"task.mesh={gt}"] + a.extra
                m, wall = run(args, Path(tmp) / f"{name}_texture_recovery")
                rows.append(("texture_recovery", name, m, wall))
            print(f"done: {name}", file=sys.stderr, flush=True)

    def f(m, k, fmt="{:.3f}"):
        return fmt.format(m[k]) if isinstance(m.get(k), (int, float)) else "-"

    print("| task | object | F@1% | precision | recall | chamfer | PSNR dB | SSIM | mask IoU | steps | verts | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for task, name, m, wall in rows:
        print(f"| {task} | {name} | {f(m, 'fscore')} | {f(m, 'precision')} | {f(m, 'recall')} | "
              f"{f(m, 'chamfer', '{:.2e}')} | {f(m, 'psnr', '{:.2f}')} | {f(m, 'ssim')} | {f(m, 'mask_iou', '{:.4f}')} | "
              f"{m.get('global_step', '-')} | {f(m, 'num_verts', '{:.0f}')} | {wall:.0f} |")


if __name__ == "__main__":
    main()
