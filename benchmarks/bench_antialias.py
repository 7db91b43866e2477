#!/usr/bin/env python
"""Benchmark rastlit.antialias against rasterize + interpolate run in the same process.

Scene: the icosphere of ``bench_ops.py`` (orbit cameras, the sphere covers about two thirds of
the image), a 3-channel vertex colour. For each (mesh, resolution, batch) this times

* ``rast+interp``: ``rasterize`` + ``interpolate`` (the baseline: what a render costs without
  antialias), forward, and forward+backward with ``pos`` and ``attr`` requiring grad;
* ``antialias``: ``antialias`` alone on the precomputed colour and ``rast`` (topology hash built
  once outside the timing), forward, and forward+backward with ``color`` and ``pos`` requiring grad;

and prints each antialias time with its ratio to the baseline: how much antialias costs on top of
a render. It also prints the share of pixels that antialias blends and the number of pixel pairs
whose walk to the silhouette hit the step cap (``kAaMaxWalkSteps``; should be 0). The default run (1k and 20k
triangles at 512^2, batch 1 and 4) takes well under a minute on a 2-core CPU.

Examples::

    python benchmarks/bench_antialias.py
    python benchmarks/bench_antialias.py --sizes 20k,80k --res 512,1024 --batch 1,8
    python benchmarks/bench_antialias.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_ops  # noqa: E402  (helpers: scene tensors, passes, timing, header)
from bench_scenes import SIZES, icosphere  # noqa: E402  (the shared scene module)


def _int_list(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--sizes", default="1k,20k", help=f"meshes, comma-separated from {','.join(SIZES)}")
    ap.add_argument("--res", type=_int_list, default=[512])
    ap.add_argument("--batch", type=_int_list, default=[1, 4])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timed repeats per measurement")
    ap.add_argument("--max-reps", type=int, default=10)
    args = ap.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    import rastlit

    print(bench_ops.header(device).replace("rastlit op benchmark", "rastlit antialias benchmark"))
    print()
    cols = ["mesh", "tris", "res", "B", "pass", "rast+interp ms", "antialias ms", "ratio", "blended px",
            "capped pairs"]
    rows = []
    for label in args.sizes.split(","):
        verts, faces = icosphere(SIZES[label])
        for res in args.res:
            for batch in args.batch:
                scene = bench_ops.make_scene(verts, faces, batch, res, device)
                tri = scene.tri
                topo = rastlit.antialias_construct_topology_hash(tri)
                with torch.no_grad():
                    rast, _ = rastlit.rasterize(scene.pos, tri, (res, res))
                    color, _ = rastlit.interpolate(scene.attr, rast, tri)
                    out, work = torch.ops.rastlit.antialias_fwd(color, rast, scene.pos, tri, topo, 1.0)
                blended = float((out != color).any(-1).float().mean())
                capped = int((work[..., 0::2] == -1).sum())  # work: (code, triangle) per pair, -1 = capped
                for mode in ("fwd", "fwd+bwd"):
                    base = bench_ops.time_call(bench_ops.make_pass(scene, res, "rastlit", mode), device, args.budget,
                                               args.max_reps)
                    if mode == "fwd":
                        def aa():
                            with torch.no_grad():
                                return rastlit.antialias(color, rast, scene.pos, tri, topo)
                    else:
                        c = color.clone().requires_grad_(True)
                        p = scene.pos.clone().requires_grad_(True)

                        def aa():
                            c.grad = None
                            p.grad = None
                            o = rastlit.antialias(c, rast, p, tri, topo)
                            (o * scene.weight).sum().backward()
                            return c.grad, p.grad
                    t = bench_ops.time_call(aa, device, args.budget, args.max_reps)
                    rows.append([label, str(len(faces)), str(res), str(batch), mode, f"{base.median_ms:.2f}",
                                 f"{t.median_ms:.2f}", f"{t.median_ms / base.median_ms:.2f}x", f"{100 * blended:.2f}%",
                                 str(capped)])
                    print("  ".join(rows[-1]), flush=True)
    print()
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(x.rjust(w) for x, w in zip(r, widths)))
    print("\nratio = antialias time / (rasterize + interpolate) time for the same pass, same process.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
