#!/usr/bin/env python
"""Training throughput: optimizer steps per second of the real CLI (`python -m rastlit.train`).

For each task (mesh_fit on the synthetic demo target, texture_recovery on its synthetic experiment)
this runs the CLI for ``--steps`` steps without validation, checkpoints or a logger, and prints the
steps per second of the fit (Lightning's fit loop, from ``metrics.json``'s ``fit_time_s``; the
test pass and the artefacts are outside it). ``--root`` runs another checkout's code (its own
build cache under ``--build-dir``), so a before/after pair comes from one command each::

    python benchmarks/bench_train_steps.py                     # this checkout, CPU
    python benchmarks/bench_train_steps.py -- trainer=gpu      # on a GPU
    python benchmarks/bench_train_steps.py --root ../old --build-dir /tmp/old-build
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS = {
    "mesh_fit": [],
    "texture_recovery": ["experiment=texture_recovery_synthetic"],
}


def run(root: Path, task: str, steps: int, extra: list[str], build_dir: str | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_WAIT_POLICY", "passive")
    if build_dir:
        env["RASTLIT_BUILD_DIR"] = build_dir
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "rastlit.train", *TASKS[task], "logger=none", "callbacks=none",
               f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps + 1}", "+trainer.limit_val_batches=0",
               f"paths.log_dir={d}", *extra]
        p = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"failed: {' '.join(cmd)}")
        (path,) = glob.glob(os.path.join(d, "**", "metrics.json"), recursive=True)
        return json.loads(Path(path).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose code runs (default: this one)")
    ap.add_argument("--build-dir", default=None, help="RASTLIT_BUILD_DIR for that checkout's extension")
    ap.add_argument("extra", nargs="*", help="overrides for every run (after --)")
    args = ap.parse_args()
    rev = subprocess.run(["git", "-C", str(args.root), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"# {args.root} (git {rev or '?'}), {args.steps} steps, load {os.getloadavg()[0]:.2f}, "
          f"overrides {args.extra}")
    print("| task | steps | fit s | steps/s |")
    print("|---|---:|---:|---:|")
    for task in args.tasks:
        m = run(args.root, task, args.steps, args.extra, args.build_dir)
        steps, fit = int(m["global_step"]), float(m["fit_time_s"])
        print(f"| {task} | {steps} | {fit:.1f} | {steps / fit:.1f} |", flush=True)


if __name__ == "__main__":
    main()
