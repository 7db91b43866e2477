#!/usr/bin/env python
"""rastlit.jax (jitted) against the torch ops on the same scenes, in one process, CPU.

Scene: an icosphere (20 * 4**k triangles) seen by B orbiting perspective cameras at H x W, a
3-channel vertex colour, a 256^2 texture through a spherical UV. Rows (each forward, and forward
plus backward of a weighted sum):

* ``rasterize``;
* ``rast+interp``: rasterize + interpolate of the colour;
* ``chain``: rasterize + interpolate (colour, and UV with derivatives) + texture (trilinear) +
  antialias.

JAX runs ``jax.jit`` of the function (``jax.value_and_grad`` for the backward) after a warm-up
call that compiles it; torch runs the eager ops. The time is the median of ``--repeats`` runs;
the last column is JAX's time over torch's (the target: <= 1.1 at 512^2, B = 1 and 8).

    python benchmarks/bench_jax.py [--res 512] [--batch 1 8] [--subdiv 5] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from bench_scenes import icosphere, orbit_clip_positions  # noqa: E402  (shared scenes)
from timing import time_call  # noqa: E402  (the one benchmark timer: benchmarks/timing.py)



def scene(subdiv: int, views: int, res: int):
    v, f = icosphere(subdiv)
    pos = orbit_clip_positions(v, views)
    rng = np.random.default_rng(0)
    col = rng.uniform(0, 1, (len(v), 3))
    uv = np.stack([np.arctan2(v[:, 0], v[:, 2]) / (2 * np.pi) + 0.5, v[:, 1] * 0.5 + 0.5], 1)
    tex = rng.uniform(0, 1, (1, 256, 256, 3))
    w = rng.standard_normal((views, res, res, 3))
    f32 = lambda x: np.ascontiguousarray(x, np.float32)  # noqa: E731
    return f32(pos), f.astype(np.int32), f32(col), f32(uv), f32(tex), f32(w)


def timeit(fn, repeats: int) -> float:
    # the warm-up call compiles the jitted function
    return time_call(fn, "cpu", budget_s=float("inf"), max_reps=repeats, min_reps=repeats).median_s


def jax_fns(pos, tri, col, uv, tex, w, res):
    import jax
    import jax.numpy as jnp

    import rastlit.jax as rj

    tri_j, col_j, uv_j, tex_j, w_j = map(jnp.asarray, (tri, col, uv, tex, w))
    hash_j = rj.antialias_construct_topology_hash(tri_j)

    def rasterize(p):
        return jnp.sum(rj.rasterize(p, tri_j, (res, res))[0][..., :3] * w_j)

    def rast_interp(p, c):
        r, _ = rj.rasterize(p, tri_j, (res, res))
        return jnp.sum(rj.interpolate(c, r, tri_j)[0] * w_j)

    def chain(p, c, t):
        r, db = rj.rasterize(p, tri_j, (res, res))
        out, _ = rj.interpolate(c, r, tri_j)
        t_uv, t_da = rj.interpolate(uv_j, r, tri_j, rast_db=db, diff_attrs="all")
        s = rj.texture(t, t_uv, t_da, filter_mode="linear-mipmap-linear")
        return jnp.sum(rj.antialias(out * s, r, p, tri_j, topology_hash=hash_j) * w_j)

    p = jnp.asarray(pos)
    out = {}
    for name, f, args in (("rasterize", rasterize, (p,)), ("rast+interp", rast_interp, (p, col_j)),
                          ("chain", chain, (p, col_j, tex_j))):
        fwd = jax.jit(f)
        bwd = jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(args)))))
        out[name] = (lambda fwd=fwd, args=args: jax.block_until_ready(fwd(*args)),
                     lambda bwd=bwd, args=args: jax.block_until_ready(bwd(*args)))
    return out


def torch_fns(pos, tri, col, uv, tex, w, res):
    import torch

    import rastlit

    tri_t, uv_t, w_t = (torch.from_numpy(x) for x in (tri, uv, w))
    hash_t = rastlit.antialias_construct_topology_hash(tri_t)

    def rasterize(p):
        return (rastlit.rasterize(p, tri_t, (res, res))[0][..., :3] * w_t).sum()

    def rast_interp(p, c):
        r, _ = rastlit.rasterize(p, tri_t, (res, res))
        return (rastlit.interpolate(c, r, tri_t)[0] * w_t).sum()

    def chain(p, c, t):
        r, db = rastlit.rasterize(p, tri_t, (res, res))
        out, _ = rastlit.interpolate(c, r, tri_t)
        t_uv, t_da = rastlit.interpolate(uv_t, r, tri_t, rast_db=db, diff_attrs="all")
        s = rastlit.texture(t, t_uv, t_da, filter_mode="linear-mipmap-linear")
        return (rastlit.antialias(out * s, r, p, tri_t, topology_hash=hash_t) * w_t).sum()

    out = {}
    for name, f, arrays in (("rasterize", rasterize, (pos,)), ("rast+interp", rast_interp, (pos, col)),
                            ("chain", chain, (pos, col, tex))):
        def fwd(f=f, arrays=arrays):
            with torch.no_grad():
                return f(*(torch.from_numpy(a) for a in arrays))

        def bwd(f=f, arrays=arrays):
            args = [torch.from_numpy(a).requires_grad_() for a in arrays]
            loss = f(*args)
            return torch.autograd.grad(loss, args)

        out[name] = (fwd, bwd)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--subdiv", type=int, default=5, help="icosphere level (5: 20480 triangles)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import torch

    print(f"# rastlit.jax (jit) vs torch ops, CPU, {torch.get_num_threads()} torch threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.2f}")
    print(f"# icosphere level {args.subdiv} ({20 * 4 ** args.subdiv} triangles), {args.res}^2, median of "
          f"{args.repeats}")
    print("| op | B | pass | torch ms | jax ms | jax / torch |")
    print("|---|---:|---|---:|---:|---:|")
    for b in args.batch:
        data = scene(args.subdiv, b, args.res)
        jf, tf = jax_fns(*data, args.res), torch_fns(*data, args.res)
        for name in jf:
            for k, pas in enumerate(("fwd", "fwd+bwd")):
                tt = timeit(tf[name][k], args.repeats)
                tj = timeit(jf[name][k], args.repeats)
                print(f"| {name} | {b} | {pas} | {1e3 * tt:.1f} | {1e3 * tj:.1f} | {tj / tt:.2f} |", flush=True)


if __name__ == "__main__":
    main()
