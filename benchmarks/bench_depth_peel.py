#!/usr/bin/env python
"""Benchmark DepthPeeler: time per depth layer against one plain rasterize call (the baseline,
run in the same process). Scene: icospheres (bench_scenes.py) seen from outside (two layers where the sphere
covers: front and back), so layers 0 and 1 do full work and later ones find nothing.

    python benchmarks/bench_depth_peel.py [--sizes 1,3,5] [--res 512] [--layers 4] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch

import rastlit
from bench_scenes import clip_positions, icosphere, look_at, perspective  # noqa: E402  (the shared scenes)
from timing import time_call  # noqa: E402  (the one benchmark timer: benchmarks/timing.py)


def timed(fn, device, repeats):
    return time_call(fn, device, budget_s=float("inf"), max_reps=repeats, min_reps=repeats).median_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="3,5", help="icosphere subdivision levels (20*4^k triangles)")
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = args.device
    print(f"device {dev}, threads {torch.get_num_threads()}, {args.res}x{args.res}, {args.layers} layers")
    print(f"{'triangles':>10} {'rasterize ms':>13} {'peel ms/layer':>14} {'ratio':>6}  pixels per layer")
    for k in (int(s) for s in args.sizes.split(",")):
        v, f = icosphere(k)
        mvp = perspective(45.0, 1.0, 0.1, 100.0) @ look_at((0.0, 0.0, 3.0))
        pos = torch.from_numpy(clip_positions(v, [mvp])).to(dev)
        tri = torch.from_numpy(f).to(dev)
        res = (args.res, args.res)
        t_r = timed(lambda: rastlit.rasterize(pos, tri, res), dev, args.repeats)
        counts = []

        def peel():
            counts.clear()
            with rastlit.DepthPeeler(pos, tri, res) as peeler:
                for _ in range(args.layers):
                    r, _ = peeler.rasterize_next_layer()
                    counts.append(int((r[..., 3] > 0).sum()))

        t_p = timed(peel, dev, args.repeats) / args.layers
        print(f"{f.shape[0]:>10} {1e3 * t_r:>13.2f} {1e3 * t_p:>14.2f} {t_p / t_r:>6.2f}  {counts}")


if __name__ == "__main__":
    main()
