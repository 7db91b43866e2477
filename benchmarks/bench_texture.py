#!/usr/bin/env python
"""Benchmark rastlit.texture against torch.nn.functional.grid_sample (bilinear), same process.

Scene: an RGB texture of ``--tex`` texels a side sampled at a ``--res`` output image through a
smooth, slightly perspective uv field that covers about 1.3 texture tiles (so the footprint of a
pixel is ~2-3 texels: level of detail ~1-1.6 in trilinear mode), with its analytic uv_da.

For batch 1 and 4 (``--batch``) it prints the median wall time of ``fwd`` and ``fwd+bwd``
(``loss = (out * weight).sum()``, gradients to the texture and uv) of:

* ``linear``: ``rastlit.texture(filter_mode='linear')``;
* ``trilinear``: ``rastlit.texture(uv_da=...)`` (linear-mipmap-linear), pyramid built in the call
  (as when the texture is being optimized);
* ``grid_sample``: ``F.grid_sample(tex_nchw, 2*uv-1, 'bilinear', align_corners=False)`` on a
  texture already in NCHW layout (the baseline's favourite layout; no permute timed),

and the ratios ``linear / grid_sample`` and ``trilinear / grid_sample`` (lower is better for
rastlit). The linear output is checked against grid_sample (wrap disabled: 'zero' boundary vs
padding 'zeros') before timing. Set ``OMP_WAIT_POLICY=passive`` on a shared CPU box.

Examples::

    python benchmarks/bench_texture.py
    python benchmarks/bench_texture.py --res 1024 --batch 1,8 --device cuda
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import rastlit  # noqa: E402
from timing import time_call  # noqa: E402  (the one benchmark timer: benchmarks/timing.py)


def uv_field(B: int, H: int, W: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uv = a projective map of the pixel grid, per view slightly rotated; and (du/dX, du/dY,
    dv/dX, dv/dY) by autograd-free finite formulas (analytic derivatives of the map)."""
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                          indexing="ij")
    uvs, das = [], []
    for b in range(B):
        a = 0.3 * b
        c, s = torch.cos(torch.tensor(a, dtype=torch.float64)), torch.sin(torch.tensor(a, dtype=torch.float64))
        X, Y = x / W, y / H
        q = 1.0 + 0.3 * X  # perspective denominator
        u0 = (1.3 * (c * X - s * Y) + 0.05) / q
        v0 = (1.3 * (s * X + c * Y) + 0.05) / q
        # d/dX of pixel index: dX/dx = 1/W, dY/dy = 1/H.
        dq_dx = 0.3 / W
        du_dx = (1.3 * c / W) / q - u0 * dq_dx / q
        du_dy = (-1.3 * s / H) / q
        dv_dx = (1.3 * s / W) / q - v0 * dq_dx / q
        dv_dy = (1.3 * c / H) / q
        uvs.append(torch.stack([u0, v0], -1))
        das.append(torch.stack([du_dx, du_dy, dv_dx, dv_dy], -1))
    return torch.stack(uvs).float().to(device), torch.stack(das).float().to(device)


def timeit(fn, device, budget_s: float, max_reps: int = 15) -> float:
    return time_call(fn, device, budget_s, max_reps, min_reps=3).median_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tex", type=int, default=1024, help="texture side (power of two)")
    ap.add_argument("--res", type=int, default=512, help="output image side")
    ap.add_argument("--batch", default="1,4", help="comma-separated batch sizes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of repeats per measurement")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"# rastlit.texture vs grid_sample | device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''} | torch {torch.__version__} | "
          f"threads {torch.get_num_threads()} | OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')} | "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"# texture {args.tex}^2 RGB float32, output {args.res}^2; times in ms (median); ratio = rastlit / grid_sample")
    g = torch.Generator().manual_seed(0)
    tex0 = torch.rand(1, args.tex, args.tex, 3, generator=g).to(device)

    # Agreement check (zero boundary == padding 'zeros').
    uv, _ = uv_field(1, 64, 64, device)
    a = rastlit.texture(tex0, uv, filter_mode="linear", boundary_mode="zero")
    b = F.grid_sample(tex0.permute(0, 3, 1, 2), 2 * uv - 1, mode="bilinear", padding_mode="zeros",
                      align_corners=False).permute(0, 2, 3, 1)
    err = (a - b).abs().max().item()
    if err > 1e-4:
        sys.exit(f"rastlit linear disagrees with grid_sample: max abs error {err:.3g}")
    print(f"# check: max |rastlit linear - grid_sample| = {err:.2e}")

    header = f"{'B':>2} {'pass':>8} {'linear':>9} {'trilinear':>10} {'grid_sample':>12} {'lin/gs':>7} {'tri/gs':>7}"
    print(header)
    for B in [int(s) for s in args.batch.split(",")]:
        uv, uv_da = uv_field(B, args.res, args.res, device)
        weight = torch.rand(B, args.res, args.res, 3, generator=g).to(device)
        tex_nchw = tex0.permute(0, 3, 1, 2).contiguous().expand(B, -1, -1, -1)
        grid = 2 * uv - 1
        for pass_ in ("fwd", "fwd+bwd"):
            bwd = pass_ == "fwd+bwd"
            t = tex0.clone().requires_grad_(bwd)
            u = uv.clone().requires_grad_(bwd)
            tn = tex_nchw.clone().requires_grad_(bwd) if bwd else tex_nchw
            gr = grid.clone().requires_grad_(bwd)

            def run(f):
                def go():
                    if bwd:
                        t.grad = u.grad = gr.grad = None
                        if tn.requires_grad:
                            tn.grad = None
                        (f() * weight).sum().backward()
                    else:
                        with torch.no_grad():
                            f()
                return go

            t_lin = timeit(run(lambda: rastlit.texture(t, u, filter_mode="linear")), device, args.budget)
            t_tri = timeit(run(lambda: rastlit.texture(t, u, uv_da)), device, args.budget)
            t_gs = timeit(run(lambda: F.grid_sample(tn, gr, mode="bilinear", padding_mode="zeros",
                                                    align_corners=False).permute(0, 2, 3, 1)), device, args.budget)
            print(f"{B:>2} {pass_:>8} {t_lin * 1e3:>9.2f} {t_tri * 1e3:>10.2f} {t_gs * 1e3:>12.2f} "
                  f"{t_lin / t_gs:>7.2f} {t_tri / t_gs:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
