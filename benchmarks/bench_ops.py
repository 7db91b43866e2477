#!/usr/bin/env python
"""Benchmark rastlit.rasterize + rastlit.interpolate against a vectorized pure-PyTorch rasterizer.

Scene: an icosphere (subdivided icosahedron, 20 * 4**k triangles) seen through an OpenGL
perspective camera that orbits it, so the sphere fills most of the image; batch views are
instanced (one clip-space ``pos`` per view, shared ``tri``), each from a different orbit angle.

For every (mesh, resolution, batch, pass) configuration this reports the median wall time of
several repeats after a warm-up (the repeat count shrinks, down to one, when a call is slow), the
pixel throughput ``B*H*W / time`` and the triangle throughput ``B*T / time``. Passes:

* ``fwd``: ``rasterize`` + ``interpolate`` of a 3-channel vertex attribute, no ``diff_attrs``.
* ``fwd+bwd``: the same with ``pos`` and ``attr`` requiring grad, then
  ``loss = (out * weight).sum()`` and ``loss.backward()``.

The baseline (:func:`torch_rasterize` / :func:`torch_interpolate`) is written with plain tensor
ops only: per-triangle screen bounding boxes, candidate pixels generated chunk by chunk, edge
functions in homogeneous 2D coordinates, a z-buffer by ``scatter_reduce(amin)``, and
perspective-correct barycentrics recomputed for the winning triangles under autograd. It runs in
the same process where it is fast enough (``--baseline auto``) and its triangle ids are checked
against rastlit's on one small configuration before timing (the script exits with an error if
fewer than 99% of the covered pixels agree).

Timings are wall-clock and sensitive to other load on the machine (the header prints the load
average). On a small shared CPU box, libgomp's default spin-waiting turns competing processes into
large, erratic slowdowns of every OpenMP region (rastlit's and torch's); ``OMP_WAIT_POLICY=passive``
(set in the environment before starting Python) gives much steadier numbers there.

Examples::

    python benchmarks/bench_ops.py --quick
    python benchmarks/bench_ops.py --sizes 20k,80k --res 512 --batch 8 --markdown
    python benchmarks/bench_ops.py --device cuda
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import platform
import sys
import time
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Timing, time_call  # noqa: E402  (the one benchmark timer)

# The scenes (icospheres, orbit cameras) come from benchmarks/bench_scenes.py, shared by the scripts.
from bench_scenes import SIZES, icosphere, orbit_clip_positions  # noqa: E402


# -------------------------------------------------------------------------------------------------
# Baseline: a vectorized rasterizer in plain PyTorch ops.


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product along the last dim, written term by term (so cross(a,b) == -cross(b,a))."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def _edge_passes(e: torch.Tensor, nx: torch.Tensor, ny: torch.Tensor) -> torch.Tensor:
    """Inside test for one signed edge value, with a fixed tie rule for e == 0 (the side that
    the direction (1, epsilon) points into wins), so a pixel on a shared edge has one owner."""
    return (e > 0) | ((e == 0) & ((nx > 0) | ((nx == 0) & (ny > 0))))


def _pixel_edges(v: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalized perspective-correct barycentrics ``e`` ``[n,3]`` and z/w ``[n]`` of triangles
    ``v`` ``[n,3,4]`` (clip space) at NDC points (X, Y) ``[n]``.

    e_i = det[p; a_j; a_k] with a = (x, y, w) and p = (X, Y, 1), (i, j, k) cyclic. Evaluated in a
    frame centred on the pixel (shear a -> (x - X w, y - Y w, w), which keeps every determinant and
    maps p to (0, 0, 1)), where it is a 2x2 determinant: much better conditioned in float32 than
    (a_j x a_k) . p for triangles that are small compared with their distance from the centre.
    """
    w = v[..., 3]
    xs = v[..., 0] - X[:, None] * w
    ys = v[..., 1] - Y[:, None] * w
    x0, x1, x2 = xs.unbind(-1)
    y0, y1, y2 = ys.unbind(-1)
    e = torch.stack([x1 * y2 - y1 * x2, x2 * y0 - y2 * x0, x0 * y1 - y0 * x1], dim=-1)
    # Perspective-correct interpolation of clip z and w: z/w = sum(e z) / sum(e w).
    zw = (e * v[..., 2]).sum(-1) / (e * w).sum(-1)
    return e, zw


def torch_rasterize(
    pos: torch.Tensor, tri: torch.Tensor, resolution: Sequence[int], max_candidates: int = 1 << 22
) -> torch.Tensor:
    """Rasterize instanced triangles with tensor ops. Same output convention as rastlit's ``rast``.

    ``pos`` ``[B,V,4]`` clip space, ``tri`` ``[T,3]``. Returns ``rast`` ``[B,H,W,4]`` = (u, v, z/w,
    id + 1); u and v are differentiable with respect to ``pos`` through autograd (z/w and the id
    are not). Limitation: triangles with a vertex at w <= 0 are dropped (no clipping); the
    benchmark scenes have none. No ``rast_db``.

    Method: for triangle (a0, a1, a2), a_i = (x_i, y_i, w_i), and the NDC pixel centre
    p = (X, Y, 1), e_i = det[p; a_j; a_k] ((i, j, k) cyclic, see :func:`_pixel_edges`) are unnormalized
    perspective-correct barycentrics; the pixel is covered where all sign(det) * e_i >= 0 (with a
    tie rule on exact zeros from the edge normals a_j x a_k), and z/w = sum(e_i z_i) / sum(e_i w_i).
    """
    H, W = int(resolution[0]), int(resolution[1])
    B, T = pos.shape[0], tri.shape[0]
    dev = pos.device
    tri_l = tri.long()
    npix = B * H * W

    with torch.no_grad():
        v = pos.detach()[:, tri_l]  # [B,T,3,4]
        a = v[..., [0, 1, 3]]  # (x, y, w)
        a0, a1, a2 = a.unbind(-2)
        c = torch.stack([_cross(a1, a2), _cross(a2, a0), _cross(a0, a1)], dim=-2)  # [B,T,3(edge),3]
        det = (a0 * c[..., 0, :]).sum(-1)  # [B,T]
        w = v[..., 3]
        ok = torch.isfinite(v).all(-1).all(-1) & (w > 0).all(-1) & (det != 0)
        # Screen-space bounding boxes in pixel index units (pixel j has its centre at index j).
        wc = torch.where(ok[..., None], w, torch.ones_like(w))
        sx = (v[..., 0] / wc + 1.0) * (0.5 * W) - 0.5
        sy = (v[..., 1] / wc + 1.0) * (0.5 * H) - 0.5
        margin = 0.05
        x0 = torch.ceil(sx.amin(-1) - margin).clamp(0, W).long()
        x1 = torch.floor(sx.amax(-1) + margin).clamp(-1, W - 1).long()
        y0 = torch.ceil(sy.amin(-1) - margin).clamp(0, H).long()
        y1 = torch.floor(sy.amax(-1) + margin).clamp(-1, H - 1).long()
        bw = (x1 - x0 + 1).clamp(min=0)
        bh = (y1 - y0 + 1).clamp(min=0)
        count = torch.where(ok, bw * bh, torch.zeros_like(bw)).reshape(-1)  # [B*T]

        sign = torch.sign(det).reshape(-1)
        nrm = (c * torch.sign(det)[..., None, None])[..., :2].reshape(-1, 3, 2)  # inward edge normals
        vf = v.reshape(-1, 3, 4)
        x0f, y0f, bwf = x0.reshape(-1), y0.reshape(-1), bw.reshape(-1)

        # Candidate pixels chunk by chunk (whole triangles per chunk, about max_candidates each).
        ends = torch.cumsum(count, 0)
        starts = ends - count
        total = int(ends[-1]) if ends.numel() else 0
        bounds = [0]
        if total > max_candidates:
            cuts = torch.arange(max_candidates, total, max_candidates, device=dev)
            bounds += torch.searchsorted(ends, cuts, right=True).tolist()
        bounds.append(B * T)
        hit_pix, hit_z, hit_id = [], [], []
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e <= s:
                continue
            cnt = count[s:e]
            n = int(cnt.sum())
            if n == 0:
                continue
            t = torch.repeat_interleave(torch.arange(s, e, device=dev), cnt)  # flat (view, tri)
            off = torch.arange(n, device=dev) - (starts[t] - starts[s])
            bwt = bwf[t]
            px = x0f[t] + off % bwt
            py = y0f[t] + off // bwt
            X = (2.0 * px.to(pos.dtype) + 1.0) / W - 1.0
            Y = (2.0 * py.to(pos.dtype) + 1.0) / H - 1.0
            e_, zw = _pixel_edges(vf[t], X, Y)  # e_i and z/w at the pixel, [n,3] and [n]
            e_ = e_ * sign[t, None]
            nt = nrm[t]
            inside = _edge_passes(e_, nt[..., 0], nt[..., 1]).all(-1) & (e_.sum(-1) > 0)
            inside &= (zw >= -1.0) & (zw <= 1.0)
            z = zw
            idx = inside.nonzero().squeeze(1)
            tt = t[idx]
            hit_pix.append((tt // T) * (H * W) + py[idx] * W + px[idx])
            hit_z.append(z[idx])
            hit_id.append(tt % T)
        if hit_pix:
            hp, hz, hi = torch.cat(hit_pix), torch.cat(hit_z), torch.cat(hit_id)
        else:
            hp = torch.zeros(0, dtype=torch.long, device=dev)
            hz = torch.zeros(0, dtype=pos.dtype, device=dev)
            hi = torch.zeros(0, dtype=torch.long, device=dev)
        # Z-buffer: nearest z/w, exact ties to the lower triangle id.
        zbuf = torch.full((npix,), math.inf, dtype=pos.dtype, device=dev).scatter_reduce(0, hp, hz, "amin")
        front = hz == zbuf[hp]
        ibuf = torch.full((npix,), T, dtype=torch.long, device=dev).scatter_reduce(0, hp[front], hi[front], "amin")
        pix = (ibuf < T).nonzero().squeeze(1)
        win = ibuf[pix]
        zwin = zbuf[pix]

    # Differentiable part: barycentrics of the winners only.
    view = pix // (H * W)
    rem = pix % (H * W)
    X = (2.0 * (rem % W).to(pos.dtype) + 1.0) / W - 1.0
    Y = (2.0 * (rem // W).to(pos.dtype) + 1.0) / H - 1.0
    vw = pos[view[:, None], tri_l[win]]  # [M,3,4]
    ew, _ = _pixel_edges(vw, X, Y)
    e0, e1, e2 = ew.unbind(-1)
    s_ = e0 + e1 + e2
    vals = torch.stack([e0 / s_, e1 / s_, zwin, (win + 1).to(pos.dtype)], dim=-1)
    rast = torch.zeros((npix, 4), dtype=pos.dtype, device=dev).index_put((pix,), vals)
    return rast.reshape(B, H, W, 4)


def torch_interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Interpolate ``attr`` (``[B,V,A]``, ``[1,V,A]`` or ``[V,A]``) at every pixel of ``rast``;
    returns ``[B,H,W,A]``, zero on background. Differentiable in ``attr`` and ``rast``'s u, v."""
    B, H, W, _ = rast.shape
    if attr.dim() == 2:
        attr = attr[None]
    A = attr.shape[-1]
    flat = rast.reshape(-1, 4)
    ids = flat[:, 3].detach().long() - 1
    pix = (ids >= 0).nonzero().squeeze(1)
    view = pix // (H * W) if attr.shape[0] > 1 else torch.zeros_like(pix)
    vidx = tri.long()[ids[pix]]  # [M,3]
    av = attr[view[:, None], vidx]  # [M,3,A]
    u = flat[pix, 0:1]
    v = flat[pix, 1:2]
    vals = u * av[:, 0] + v * av[:, 1] + (1.0 - u - v) * av[:, 2]
    out = torch.zeros((B * H * W, A), dtype=attr.dtype, device=attr.device).index_put((pix,), vals)
    return out.reshape(B, H, W, A)


# -------------------------------------------------------------------------------------------------
# Benchmark harness.



class Row(NamedTuple):
    label: str
    tris: int
    res: int
    batch: int
    mode: str
    ours: Timing
    base: Timing | None  # None: skipped


class Scene(NamedTuple):
    pos: torch.Tensor  # [B,V,4] clip space, no grad
    tri: torch.Tensor  # [T,3] int32
    attr: torch.Tensor  # [1,V,3] vertex colours, no grad
    weight: torch.Tensor  # [B,H,W,3] loss weights


def make_scene(verts: np.ndarray, faces: np.ndarray, batch: int, res: int, device: torch.device) -> Scene:
    pos = torch.from_numpy(orbit_clip_positions(verts, batch)).to(device)
    tri = torch.from_numpy(faces).to(device)
    colours = torch.from_numpy(0.5 * verts + 0.5)[None].to(device)  # normal-derived colours
    gen = torch.Generator().manual_seed(1234 + res + batch)
    weight = torch.rand((batch, res, res, 3), generator=gen).to(device)
    return Scene(pos, tri, colours.contiguous(), weight)


def make_pass(scene: Scene, res: int, impl: str, mode: str) -> Callable[[], object]:
    """A zero-argument callable running one pass of ``impl`` ('rastlit' or 'torch')."""
    import rastlit

    if impl == "rastlit":
        def raster(pos, tri):
            return rastlit.rasterize(pos, tri, (res, res))[0]

        def interp(attr, rast, tri):
            return rastlit.interpolate(attr, rast, tri)[0]
    else:
        def raster(pos, tri):
            return torch_rasterize(pos, tri, (res, res))

        def interp(attr, rast, tri):
            return torch_interpolate(attr, rast, tri)

    if mode == "fwd":
        def fwd():
            with torch.no_grad():
                return interp(scene.attr, raster(scene.pos, scene.tri), scene.tri)
        return fwd

    pos = scene.pos.clone().requires_grad_(True)
    attr = scene.attr.clone().requires_grad_(True)

    def fwd_bwd():
        pos.grad = None
        attr.grad = None
        out = interp(attr, raster(pos, scene.tri), scene.tri)
        loss = (out * scene.weight).sum()
        loss.backward()
        return pos.grad, attr.grad

    return fwd_bwd


def check_agreement(device: torch.device, subdiv: int = 5, res: int = 256, batch: int = 2) -> float:
    """Compare triangle ids (and, for information, barycentrics, output and gradients) of rastlit
    and the baseline on one small scene. Returns the id agreement over pixels covered by either."""
    import rastlit

    verts, faces = icosphere(subdiv)
    sc = make_scene(verts, faces, batch, res, device)
    def run(raster, interp, weight):
        pos = sc.pos.clone().requires_grad_(True)
        attr = sc.attr.clone().requires_grad_(True)
        rast = raster(pos)
        out = interp(attr, rast)
        (out * weight).sum().backward()
        return rast.detach(), out.detach(), pos.grad, attr.grad

    ours = (lambda p: rastlit.rasterize(p, sc.tri, (res, res))[0], lambda a, r: rastlit.interpolate(a, r, sc.tri)[0])
    base = (lambda p: torch_rasterize(p, sc.tri, (res, res)), lambda a, r: torch_interpolate(a, r, sc.tri))
    rast_a, out_a, gpos_a, gattr_a = run(*ours, sc.weight)
    rast_b, out_b, gpos_b, gattr_b = run(*base, sc.weight)
    ids_a, ids_b = rast_a[..., 3], rast_b[..., 3]
    covered = (ids_a > 0) | (ids_b > 0)
    same = (ids_a == ids_b) & covered
    n_cov = int(covered.sum())
    frac = float(same.sum()) / max(n_cov, 1)
    cov_frac = float((ids_a > 0).float().mean())

    def rel(x: torch.Tensor, y: torch.Tensor) -> float:
        return float((x - y).norm() / y.norm().clamp_min(1e-30))

    def maxdiff(x: torch.Tensor, y: torch.Tensor) -> float:
        return float((x - y).abs()[same].max()) if bool(same.any()) else 0.0

    print(
        f"agreement check ({len(faces)} tris, {res}x{res}, batch {batch}, {device.type}): "
        f"rastlit covers {100 * cov_frac:.1f}% of pixels; triangle ids agree on {int(same.sum())}/{n_cov} "
        f"covered pixels = {100 * frac:.3f}%"
    )
    # Gradients again with the loss restricted to pixels where both chose the same triangle: a few
    # edge pixels won by different (often sliver-thin) triangles dominate the unrestricted pos grads.
    wmask = sc.weight * same[..., None].to(sc.weight.dtype)
    _, _, mgpos_a, mgattr_a = run(*ours, wmask)
    _, _, mgpos_b, mgattr_b = run(*base, wmask)
    print(
        f"  on agreeing pixels: max |du|,|dv| = {maxdiff(rast_a[..., :2], rast_b[..., :2]):.2e}, "
        f"max |d(z/w)| = {maxdiff(rast_a[..., 2], rast_b[..., 2]):.2e}, max |d out| = {maxdiff(out_a, out_b):.2e}; "
        f"grads (rel. L2), loss on agreeing pixels: attr {rel(mgattr_a, mgattr_b):.1e}, pos {rel(mgpos_a, mgpos_b):.1e}; "
        f"whole image: attr {rel(gattr_a, gattr_b):.1e}, pos {rel(gpos_a, gpos_b):.1e}"
    )
    return frac


def baseline_allowed(policy: str, tris: int, res: int, batch: int) -> bool:
    if policy == "none":
        return False
    if policy == "all":
        return True
    # auto: where one baseline call takes at most a few seconds on a 2-core CPU.
    return tris <= 20480 and batch * res * res <= 2 * 512 * 512


def _fmt(x: float | None, nd: int = 1) -> str:
    if x is None:
        return "skipped"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{nd + 1}f}" if x < 1 else f"{x:.{nd}f}"


def table(rows: Sequence[Row], markdown: bool) -> str:
    head = ["mesh", "tris", "res", "B", "pass", "reps", "rastlit ms", "(min)", "Mpix/s", "Mtri/s", "baseline ms",
            "base/rastlit"]
    body = []
    for r in rows:
        t = r.ours.median_ms / 1e3
        mpix = r.batch * r.res * r.res / t / 1e6
        mtri = r.batch * r.tris / t / 1e6
        base = r.base.median_ms if r.base is not None else None
        ratio = base / r.ours.median_ms if base is not None else None
        body.append(
            [
                r.label, str(r.tris), str(r.res), str(r.batch), r.mode,
                str(r.ours.reps) + (f"/{r.base.reps}" if r.base is not None else ""),
                _fmt(r.ours.median_ms, 2), _fmt(r.ours.min_ms, 2), _fmt(mpix), _fmt(mtri), _fmt(base, 2),
                "-" if ratio is None else f"{ratio:.1f}x",
            ]
        )
    if markdown:
        right = [False, True, True, True, False, True, True, True, True, True, True, True]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    fmt_row = lambda row: "  ".join(c.rjust(w) if i not in (0, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    lines = [fmt_row(head), "  ".join("-" * w for w in widths)] + [fmt_row(row) for row in body]
    return "\n".join(lines)


def _int_list(s: str) -> list[int]:
    return [int(x) for x in s.replace(" ", "").split(",") if x]


def _size_list(s: str) -> list[str]:
    out = []
    for tok in s.replace(" ", "").lower().split(","):
        if not tok:
            continue
        if tok not in SIZES:
            raise argparse.ArgumentTypeError(f"unknown mesh size {tok!r}; choose from {','.join(SIZES)}")
        out.append(tok)
    return out


def _loadavg() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every timing here."""
    try:
        l1, l5, l15 = os.getloadavg()
        return f"load average {l1:.2f} {l5:.2f} {l15:.2f} ({os.cpu_count()} cores)"
    except OSError:
        return "load average unavailable"


def _rastlit_revision() -> str:
    """``git describe``-like revision of the rastlit source tree, when it is a git checkout."""
    import subprocess

    import rastlit

    root = os.path.dirname(os.path.dirname(os.path.abspath(rastlit.__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "csrc", "rastlit"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (git {rev}{'+dirty' if dirty else ''})" if rev else ""


def header(device: torch.device) -> str:
    import rastlit

    if device.type == "cuda":
        dev = f"cuda ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    else:
        model = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        dev = f"cpu ({model}, {os.cpu_count()} logical cores)"
    return "\n".join(
        [
            "rastlit op benchmark",
            f"  torch {torch.__version__}, rastlit {getattr(rastlit, '__version__', '?')}{_rastlit_revision()}, "
            f"python {platform.python_version()}, numpy {np.__version__}",
            f"  device: {dev}",
            f"  torch threads: {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})",
            f"  env: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}; {_loadavg()}",
        ]
    )


class GLRasterizer:
    """Mesa's llvmpipe (OpenGL through EGL, via tests/gl_oracle.py's context and shaders) drawing
    the same scene into the same kind of buffer: per view, an RGBA32F target of (u, v, z/w,
    id + 1) with a 32-bit float depth buffer, read back to host memory. The vertex buffers are
    uploaded once; a timed call clears, draws and reads every view."""

    def __init__(self, pos: np.ndarray, tri: np.ndarray, res: int):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
        import gl_oracle

        st = gl_oracle.gl_available()
        if not st:
            raise RuntimeError(st.reason)
        self.go, self.st = gl_oracle, gl_oracle._STATE
        ctx, prog = self.st["ctx"], self.st["prog"]
        self.fbo, _, _ = gl_oracle._framebuffer(res, res)
        self.res = res
        bary = np.tile(np.array([[1, 0], [0, 1], [0, 0]], np.float32), (len(tri), 1))
        self.vaos = []
        for p in pos:
            data = np.ascontiguousarray(np.concatenate([p[tri.reshape(-1)], bary], 1), np.float32)
            vbo = ctx.buffer(data.tobytes())
            self.vaos.append((vbo, ctx.vertex_array(prog, [(vbo, "4f 2f", "in_pos", "in_bary")])))
        self.count = 3 * len(tri)
        self.out = np.empty((len(pos), res, res, 4), np.float32)

    def __call__(self) -> np.ndarray:
        go, st = self.go, self.st
        ctx, gl = st["ctx"], st["gl"]
        self.fbo.use()
        ctx.viewport = (0, 0, self.res, self.res)
        gl.glBindFramebuffer(go.GL_FRAMEBUFFER, self.fbo.glo)
        gl.glDepthMask(go.GL_TRUE)
        gl.glEnable(go.GL_DEPTH_TEST)
        gl.glDepthFunc(go.GL_LESS)
        gl.glDisable(go.GL_CULL_FACE)
        st["prog"]["id_offset"].value = 0
        for b, (_, vao) in enumerate(self.vaos):
            gl.glClearColor(*(ctypes.c_float(0),) * 4)
            gl.glClearDepth(ctypes.c_double(1.0))
            gl.glClear(go.GL_COLOR_BUFFER_BIT | go.GL_DEPTH_BUFFER_BIT)
            vao.render(mode=st["moderngl"].TRIANGLES, vertices=self.count)
            self.fbo.read_into(self.out[b], components=4, dtype="f4")
        return self.out


def gl_table(sizes: Sequence[str], resolutions: Sequence[int], batches: Sequence[int], budget: float,
             max_reps: int) -> list[str]:
    """rastlit against llvmpipe, side by side: rasterize forward (and rasterize + interpolate
    forward + backward) over llvmpipe's forward, same scene, same process."""
    import rastlit

    cpu = torch.device("cpu")
    lines = ["| mesh | res | B | llvmpipe fwd ms | rastlit fwd ms | fwd / llvmpipe | rastlit fwd+bwd ms | fwd+bwd / llvmpipe |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label in sizes:
        verts, faces = icosphere(SIZES[label])
        for res in resolutions:
            for batch in batches:
                scene = make_scene(verts, faces, batch, res, cpu)
                gl = GLRasterizer(scene.pos.numpy(), faces, res)
                # the same ids where both cover a pixel (exact vs GL's fixed-point edges differ
                # only at a few edge pixels)
                ours = rastlit.rasterize(scene.pos, scene.tri, (res, res))[0][..., 3].numpy()
                theirs = gl()[..., 3]
                covered = (ours > 0) | (theirs > 0)
                agree = float((ours == theirs)[covered].mean()) if covered.any() else 1.0
                t_gl = time_call(gl, cpu, budget, max_reps)
                t_fwd = time_call(lambda: rastlit.rasterize(scene.pos, scene.tri, (res, res), grad_db=False), cpu,
                                  budget, max_reps)
                t_fb = time_call(make_pass(scene, res, "rastlit", "fwd+bwd"), cpu, budget, max_reps)
                line = (f"| {label} | {res} | {batch} | {t_gl.median_ms:.2f} | {t_fwd.median_ms:.2f} | "
                        f"{t_fwd.median_ms / t_gl.median_ms:.2f} | {t_fb.median_ms:.2f} | "
                        f"{t_fb.median_ms / t_gl.median_ms:.2f} |")
                lines.append(line)
                print(line + f"  (ids agree on {100 * agree:.3f}% of covered pixels)", flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="smallest subset (smoke test, < 30 s)")
    ap.add_argument("--sizes", type=_size_list, default=None, help=f"meshes, comma-separated from {','.join(SIZES)}")
    ap.add_argument("--res", type=_int_list, default=None, help="square resolutions, e.g. 256,512,1024")
    ap.add_argument("--batch", type=_int_list, default=None, help="batch sizes (views), e.g. 1,8")
    ap.add_argument("--modes", default="fwd,fwd+bwd", help="passes to time: fwd, fwd+bwd (default both)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    ap.add_argument("--baseline", choices=["auto", "all", "none"], default="auto",
                    help="where to time the pure-PyTorch baseline (auto: 1k/20k meshes, B*H*W <= 2*512^2)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed repeats per configuration")
    ap.add_argument("--max-reps", type=int, default=None, help="most timed repeats per configuration")
    ap.add_argument("--markdown", action="store_true", help="print the final table as markdown")
    ap.add_argument("--vs-llvmpipe", action="store_true",
                    help="only the side-by-side table against Mesa's llvmpipe (OpenGL/EGL, CPU): default "
                         "20k and 80k triangles, 512 px, B 1 and 8")
    args = ap.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.vs_llvmpipe:
        print(header(torch.device("cpu")))
        lines = gl_table(args.sizes or ["20k", "80k"], args.res or [512], args.batch or [1, 8],
                         args.budget if args.budget is not None else 3.0, args.max_reps or 15)
        print("\n".join(lines))
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2

    if args.quick:
        sizes, resolutions, batches = ["1k", "20k"], [256], [1]
        budget, max_reps = 0.5, 5
    elif device.type == "cuda":
        # The GPU table of the CUDA issue: large meshes and images, short time budget per row.
        sizes, resolutions, batches = ["20k", "320k", "1.3M"], [512, 1024, 2048], [1, 8]
        budget, max_reps = 1.0, 20
    else:
        sizes, resolutions, batches = ["1k", "20k", "80k", "320k"], [256, 512, 1024], [1, 8]
        budget, max_reps = 4.0, 10
    sizes = args.sizes or sizes
    resolutions = args.res or resolutions
    batches = args.batch or batches
    budget = args.budget if args.budget is not None else budget
    max_reps = args.max_reps if args.max_reps is not None else max_reps
    modes = [m for m in args.modes.replace(" ", "").split(",") if m]
    for m in modes:
        if m not in ("fwd", "fwd+bwd"):
            ap.error(f"unknown mode {m!r}; choose from fwd, fwd+bwd")

    t_import = time.perf_counter()
    import rastlit  # noqa: F401  (JIT build / load happens here, outside the timings)

    t_start = time.perf_counter()
    t_import = t_start - t_import

    print(header(device))
    print(f"  rastlit import (including any JIT build): {t_import:.1f} s, from {os.path.dirname(rastlit.__file__)}")
    print(f"  configs: sizes {','.join(sizes)}; res {resolutions}; batch {batches}; passes {modes}; "
          f"baseline {args.baseline}; {budget:g} s / at most {max_reps} timed repeats per config")
    sys.stdout.flush()

    if args.baseline != "none":
        frac = check_agreement(device)
        if frac < 0.99:
            print(f"FAIL: baseline and rastlit triangle ids agree on only {100 * frac:.3f}% (< 99%) "
                  "of covered pixels", file=sys.stderr)
            return 1

    rows: list[Row] = []
    for label in sizes:
        t0 = time.perf_counter()
        verts, faces = icosphere(SIZES[label])
        print(f"mesh {label}: icosphere({SIZES[label]}) = {len(faces)} tris, {len(verts)} verts, "
              f"built in {time.perf_counter() - t0:.2f} s")
        sys.stdout.flush()
        for res in resolutions:
            for batch in batches:
                scene = make_scene(verts, faces, batch, res, device)
                for mode in modes:
                    ours = time_call(make_pass(scene, res, "rastlit", mode), device, budget, max_reps)
                    base = None
                    if baseline_allowed(args.baseline, len(faces), res, batch):
                        base = time_call(make_pass(scene, res, "torch", mode), device, budget, max_reps)
                    row = Row(label, len(faces), res, batch, mode, ours, base)
                    rows.append(row)
                    msg = (f"  {label:>4} {res:>4}px B={batch} {mode:<7} rastlit {ours.median_ms:9.2f} ms "
                           f"(x{ours.reps})")
                    if base is not None:
                        msg += (f"  baseline {base.median_ms:9.2f} ms (x{base.reps})  "
                                f"ratio {base.median_ms / ours.median_ms:.1f}x")
                    else:
                        msg += "  baseline skipped"
                    print(msg)
                    sys.stdout.flush()
                del scene

    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s, {_loadavg()}; times are medians; "
          "(min) = fastest rastlit repeat; reps = rastlit[/baseline] timed repeats; "
          "Mpix/s = B*H*W/time, Mtri/s = B*T/time (rastlit median)\n")
    print(table(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
