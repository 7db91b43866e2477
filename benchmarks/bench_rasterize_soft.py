#!/usr/bin/env python
"""Benchmark rastlit.rasterize_soft against rastlit.rasterize in the same process.

Scene: an icosphere (20 * 4**k triangles; k = 5 gives 20480) seen through an OpenGL perspective
camera so the sphere fills most of the image (both from ``bench_scenes.py``, the shared scenes).
Soft rasterization uses PyTorch3D's tutorial settings: ``sigma = 1e-4``,
``blur_radius = log(1/1e-4 - 1) * sigma`` (``rastlit.soft_blur_radius``), K = 8 by default.

Passes:
* ``fwd``: ``rasterize_soft`` (all outputs, alpha included) vs ``rasterize``.
* ``fwd+bwd``: ``loss = (alpha * w).sum() + (zbuf * w2).sum()`` with ``pos`` requiring grad, then
  ``loss.backward()``; the baseline is ``rasterize`` with ``(rast[..., :2] * w).sum()``.

Reports the median wall time of several repeats after a warm-up, and the ratio soft / hard.
Set ``OMP_WAIT_POLICY=passive`` on a shared CPU box for steadier numbers.

    python benchmarks/bench_rasterize_soft.py                 # default: 20k tris, 256^2, K=8 (< 1 min)
    python benchmarks/bench_rasterize_soft.py --subdiv 4 --res 128,256,512 --k 8,50
"""

from __future__ import annotations

import argparse
import math
import os

import torch

import rastlit
from bench_scenes import clip_positions, icosphere, look_at, perspective  # noqa: E402  (the shared scenes)
from timing import time_call  # noqa: E402  (the one benchmark timer: benchmarks/timing.py)


def scene(subdiv: int, batch: int, device: str, aspect: float = 1.0):
    verts, faces = icosphere(subdiv)
    eyes = [(2.6 * math.sin(0.7 * b), 0.5, 2.6 * math.cos(0.7 * b)) for b in range(batch)]
    mvps = [perspective(50.0, aspect, 0.1, 100.0) @ look_at(eye) for eye in eyes]
    pos = torch.from_numpy(clip_positions(verts, mvps))
    return pos.to(device).contiguous(), torch.from_numpy(faces).to(device)


def timeit(fn, repeats: int, device: str) -> float:
    return time_call(fn, device, budget_s=8.0, max_reps=repeats).median_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subdiv", type=int, default=5, help="icosphere subdivisions (5: 20480 triangles)")
    ap.add_argument("--res", default="256", help="comma-separated square resolutions")
    ap.add_argument("--k", default="8", help="comma-separated faces_per_pixel values")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--sigma", type=float, default=1e-4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()

    pos, tri = scene(args.subdiv, args.batch, args.device)
    blur = rastlit.soft_blur_radius(args.sigma)
    print(f"device={args.device} threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} "
          f"triangles={tri.shape[0]} batch={args.batch} sigma={args.sigma:g} blur_radius={blur:.3e}")
    print(f"{'res':>5} {'K':>3} {'pass':>8} {'soft ms':>9} {'hard ms':>9} {'ratio':>6} {'covered':>8} {'mean faces':>10}")
    for res in [int(r) for r in args.res.split(",")]:
        g = torch.Generator().manual_seed(0)
        w_hard = torch.randn(args.batch, res, res, 2, generator=g).to(args.device)
        p_hard = pos.clone().requires_grad_()

        def hard_fwd():
            with torch.no_grad():
                rastlit.rasterize(pos, tri, (res, res))

        def hard_bwd():
            rast, _ = rastlit.rasterize(p_hard, tri, (res, res), grad_db=False)
            (rast[..., :2] * w_hard).sum().backward()
            p_hard.grad = None

        t_hard_f = timeit(hard_fwd, args.repeats, args.device)
        t_hard_b = timeit(hard_bwd, args.repeats, args.device)
        for K in [int(k) for k in args.k.split(",")]:
            w_a = torch.randn(args.batch, res, res, generator=g).to(args.device)
            w_z = torch.randn(args.batch, res, res, K, generator=g).to(args.device)
            p_soft = pos.clone().requires_grad_()

            def soft_fwd():
                with torch.no_grad():
                    return rastlit.rasterize_soft(pos, tri, (res, res), faces_per_pixel=K, sigma=args.sigma)

            def soft_bwd():
                o = rastlit.rasterize_soft(p_soft, tri, (res, res), faces_per_pixel=K, sigma=args.sigma)
                ((o.alpha * w_a).sum() + (o.zbuf * w_z).sum()).backward()
                p_soft.grad = None

            out = soft_fwd()
            valid = out.face_ids >= 0
            covered = valid[..., 0].float().mean().item()
            mean_faces = valid.sum(-1).float()[valid[..., 0]].mean().item()
            t_soft_f = timeit(soft_fwd, args.repeats, args.device)
            t_soft_b = timeit(soft_bwd, args.repeats, args.device)
            for name, ts, th in (("fwd", t_soft_f, t_hard_f), ("fwd+bwd", t_soft_b, t_hard_b)):
                print(f"{res:>5} {K:>3} {name:>8} {ts * 1e3:>9.2f} {th * 1e3:>9.2f} {ts / th:>6.2f} "
                      f"{covered:>8.1%} {mean_faces:>10.2f}")


if __name__ == "__main__":
    main()
