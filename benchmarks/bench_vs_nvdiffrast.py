#!/usr/bin/env python
"""Head-to-head on one CUDA GPU: rastlit against nvdiffrast, same scenes, same inputs, one process.

Scenes: icospheres of 20k, 320k and 1.3M triangles seen by B orbiting perspective cameras
(instanced ``pos [B,V,4]``), a 3-channel vertex colour, spherical UVs and a 1024^2 RGB texture.
Pipelines, each timed forward and forward + backward (a weighted sum of the output, gradients to
positions, colours and the texture):

* ``rast``:    rasterize;
* ``+interp``: rasterize, interpolate the colour;
* ``+tex``:    ... and the UVs with derivatives, trilinear mipmapped texture, times the colour;
* ``+aa``:     ... then antialias.

Times are CUDA-event medians after warm-up. Each row prints both times, rastlit's over
nvdiffrast's (the goal: <= 1.0 at 1024^2 and above), and the agreement of the two forward
outputs: the fraction of pixels whose triangle ids agree (nvdiffrast rasterizes with OpenGL-like
fixed-point rules, rastlit exactly, so edge pixels may differ) and the largest difference of the
final image on pixels whose ids agree.

Without ``nvdiffrast.torch`` (or without a GPU) it says so and exits 0. Runs unchanged on any CUDA
machine with both libraries::

    python benchmarks/bench_vs_nvdiffrast.py [--sizes 20k,320k,1.3M] [--res 512,1024,2048] [--batch 1,8]
        [--reps 20] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from bench_scenes import SIZES, icosphere, orbit_clip_positions  # noqa: E402  (shared scenes)
from timing import time_call  # noqa: E402  (the one benchmark timer: benchmarks/timing.py)

PIPELINES = ("rast", "+interp", "+tex", "+aa")


def make_pipeline(lib, ctx, pipeline: str, tri, uv, res):
    """f(pos, col, tex) -> (image, rast) through `lib` (rastlit.compat.nvdiffrast or nvdiffrast.torch,
    which share nvdiffrast's context-first signatures)."""
    def f(pos, col, tex):
        rast, rast_db = lib.rasterize(ctx, pos, tri, resolution=[res, res])
        if pipeline == "rast":
            return rast[..., :2], rast
        out, _ = lib.interpolate(col, rast, tri)
        if pipeline in ("+tex", "+aa"):
            t, t_da = lib.interpolate(uv, rast, tri, rast_db=rast_db, diff_attrs="all")
            out = out * lib.texture(tex, t, t_da, filter_mode="linear-mipmap-linear", max_mip_level=9)
        if pipeline == "+aa":
            out = lib.antialias(out.contiguous(), rast, pos, tri)
        return out, rast
    return f


def timed_call(fn, pas: str, pos, col, tex, weight):
    """A no-argument callable: the forward without autograd, or forward + backward of a weighted
    sum of the image with gradients to positions, colours and texture."""
    import torch

    if pas == "fwd":
        def forward():
            with torch.no_grad():
                fn(pos, col, tex)
        return forward
    p, c, t = (x.detach().requires_grad_() for x in (pos, col, tex))

    def step():
        out, _ = fn(p, c, t)
        k = min(out.shape[-1], weight.shape[-1])
        (out[..., :k] * weight[..., :k]).sum().backward()
    return step


def time_cuda(fn, reps: int) -> float:
    return time_call(fn, "cuda", budget_s=float("inf"), max_reps=reps, min_reps=reps).median_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20k,320k,1.3M")
    ap.add_argument("--res", default="512,1024,2048")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--markdown", default=None, help="also write the table to this file")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("bench_vs_nvdiffrast: torch is not installed; nothing to compare")
        return 0
    if not torch.cuda.is_available():
        print("bench_vs_nvdiffrast: no CUDA GPU; the comparison runs on CUDA only (skipped)")
        return 0
    try:
        import nvdiffrast.torch as dr
    except ImportError as e:
        print(f"bench_vs_nvdiffrast: nvdiffrast.torch is not installed ({e}); skipped. Install nvdiffrast "
              "(https://github.com/NVlabs/nvdiffrast) on this machine to run the comparison.")
        return 0
    import rastlit.compat.nvdiffrast as rl

    dev = torch.device("cuda")
    dr_ctx, rl_ctx = dr.RasterizeCudaContext(device=dev), rl.RasterizeCudaContext(device=dev)
    rows = ["| mesh | res | B | pipeline | pass | rastlit ms | nvdiffrast ms | ratio | id agreement | max diff |",
            "|---|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    print(f"# {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, CUDA events, median of {args.reps}")
    print("\n".join(rows), flush=True)
    rng = np.random.default_rng(0)
    tex = torch.tensor(rng.uniform(0, 1, (1, 1024, 1024, 3)), dtype=torch.float32, device=dev)
    for size in args.sizes.split(","):
        v, f = icosphere(SIZES[size])  # float32 vertices on the unit sphere, int32 faces
        tri = torch.tensor(f, dtype=torch.int32, device=dev)
        col = torch.tensor(rng.uniform(0, 1, (1, len(v), 3)), dtype=torch.float32, device=dev)
        uv_np = np.stack([np.arctan2(v[:, 0], v[:, 2]) / (2 * np.pi) + 0.5, v[:, 1] * 0.5 + 0.5], 1)
        uv = torch.tensor(uv_np[None], dtype=torch.float32, device=dev)
        for b in (int(x) for x in args.batch.split(",")):
            pos = torch.tensor(orbit_clip_positions(v, b), device=dev)
            for res in (int(x) for x in args.res.split(",")):
                weight = torch.randn(b, res, res, 3, device=dev)
                for pipe in args.pipelines.split(","):
                    fr = make_pipeline(rl, rl_ctx, pipe, tri, uv, res)
                    fd = make_pipeline(dr, dr_ctx, pipe, tri, uv, res)
                    with torch.no_grad():
                        (out_r, rast_r), (out_d, rast_d) = fr(pos, col, tex), fd(pos, col, tex)
                    same = rast_r[..., 3] == rast_d[..., 3]
                    agree = float(same.float().mean())
                    diff = float((out_r - out_d).abs().amax(-1)[same].max()) if bool(same.any()) else float("nan")
                    del out_r, rast_r, out_d, rast_d
                    for pas in ("fwd", "fwd+bwd"):
                        tr, td = (timed_call(fn, pas, pos, col, tex, weight) for fn in (fr, fd))
                        ms_r, ms_d = time_cuda(tr, args.reps), time_cuda(td, args.reps)
                        row = (f"| {size} | {res} | {b} | {pipe} | {pas} | {ms_r:.3f} | {ms_d:.3f} | "
                               f"{ms_r / ms_d:.2f} | {agree:.5f} | {diff:.2e} |")
                        rows.append(row)
                        print(row, flush=True)
                    torch.cuda.empty_cache()
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
