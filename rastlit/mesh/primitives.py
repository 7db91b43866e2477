"""Procedural meshes: :func:`icosphere` (a ``(verts, faces)`` tuple) and the :class:`Mesh`
builders :func:`uv_sphere`, :func:`cube`, :func:`torus`, :func:`plane`, :func:`bumpy_sphere`
and :func:`torus_knot`. Closed ones are wound counter-clockwise seen from outside; UVs (where
present) are counter-clockwise too (not mirrored)."""

from __future__ import annotations

import math

import torch

from .structures import Mesh

__all__ = ["icosphere", "uv_sphere", "cube", "torus", "plane", "bumpy_sphere", "torus_knot"]


# ----------------------------------------------------------------------------------------------
# Primitives
# ----------------------------------------------------------------------------------------------

def icosphere(subdivisions: int = 3, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosphere: ``(verts [V,3], faces [F,3] int32)`` with ``F = 20 * 4**subdivisions``,
    faces wound counter-clockwise seen from outside. Each subdivision splits every triangle in
    four at its edge midpoints (shared midpoints deduplicated) and projects onto the sphere.
    (Returns a tuple, not a :class:`Mesh`, for compatibility: ``Mesh(*icosphere(3))``.)"""
    if subdivisions < 0 or subdivisions > 9:
        raise ValueError(f"subdivisions must be in [0, 9], got {subdivisions}")
    t = (1.0 + 5.0**0.5) / 2.0
    v = torch.tensor(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]],
        dtype=torch.float64,
    )
    f = torch.tensor(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
        dtype=torch.int64,
    )
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(subdivisions):
        nv = v.shape[0]
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
        key = edges.min(1).values * nv + edges.max(1).values
        uniq, inv = torch.unique(key, return_inverse=True)
        a, b = uniq // nv, uniq % nv
        mid = v[a] + v[b]
        v = torch.cat([v, mid / mid.norm(dim=1, keepdim=True)], 0)
        m = (inv + nv).view(3, -1)  # midpoints of edges (0,1), (1,2), (2,0) per face
        m01, m12, m20 = m[0], m[1], m[2]
        f = torch.cat(
            [torch.stack(x, 1) for x in (
                (f[:, 0], m01, m20), (f[:, 1], m12, m01), (f[:, 2], m20, m12), (m01, m12, m20))],
            0,
        )
    return v.to(dtype=dtype, device=device), f.to(dtype=torch.int32, device=device)


def _grid_quads(rows: int, cols: int, idx) -> torch.Tensor:
    """Two triangles per grid cell (i, j) -> (i+1, j+1) with corners given by ``idx(i, j)``,
    wound counter-clockwise when i grows along +v and j along +u (right-handed u, v, normal)."""
    i, j = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)
    a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j + 1), idx(i + 1, j)
    return torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)], 0)


def _uv_grid(rows: int, cols: int) -> torch.Tensor:
    v, u = torch.meshgrid(torch.linspace(0, 1, rows + 1, dtype=torch.float64),
                          torch.linspace(0, 1, cols + 1, dtype=torch.float64), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], 1)


def _mesh(v, f, uv=None, uvf=None, dtype=torch.float32, device=None) -> Mesh:
    return Mesh(v.to(dtype=dtype, device=device), f.to(dtype=torch.int32, device=device),
                uv=None if uv is None else uv.to(dtype=dtype, device=device),
                uv_faces=None if uvf is None else uvf.to(dtype=torch.int32, device=device))


def plane(n: int = 1, size: float = 2.0, dtype=torch.float32, device=None) -> Mesh:
    """A flat ``n x n`` grid of quads (``2 n^2`` triangles) in the z = 0 plane spanning
    ``[-size/2, size/2]^2``, normal +z (facing the default OpenGL camera), with UVs
    ``u = (x + size/2) / size``, ``v = (y + size/2) / size`` indexed like the vertices."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    uv = _uv_grid(n, n)
    v = torch.cat([(uv - 0.5) * size, torch.zeros(uv.shape[0], 1, dtype=torch.float64)], 1)
    f = _grid_quads(n, n, lambda i, j: i * (n + 1) + j)
    return _mesh(v, f, uv, f, dtype, device)


def uv_sphere(rows: int = 16, cols: int = 32, radius: float = 1.0, dtype=torch.float32,
              device=None) -> Mesh:
    """Latitude-longitude sphere (y up) with ``rows`` latitude bands and ``cols`` longitude
    segments: ``2 + (rows-1) cols`` vertices (one per pole), a closed watertight surface. UVs
    are equirectangular (``u`` = longitude / 2pi, ``v`` = 0 at the south pole, 1 at the north);
    the seam column u = 0 / 1 and the pole UVs are duplicated in ``uv`` / ``uv_faces`` only."""
    if rows < 2 or cols < 3:
        raise ValueError(f"uv_sphere needs rows >= 2 and cols >= 3, got rows={rows}, cols={cols}")
    uv = _uv_grid(rows, cols)  # (rows+1) x (cols+1), row i at v = i / rows
    theta = math.pi * (1 - uv[:, 1])           # polar angle from +y
    phi = 2 * math.pi * uv[:, 0]
    # u grows towards -z from +x: (cos phi, -sin phi) makes (u, v, outward) right-handed
    pts = torch.stack([theta.sin() * phi.cos(), theta.cos(), -theta.sin() * phi.sin()], 1) * radius
    # unique positions: south pole, rings 1..rows-1 (cols each), north pole
    ring = pts.view(rows + 1, cols + 1, 3)[1:rows, :cols].reshape(-1, 3)
    v = torch.cat([torch.tensor([[0.0, -radius, 0.0]], dtype=torch.float64), ring,
                   torch.tensor([[0.0, radius, 0.0]], dtype=torch.float64)], 0)
    north = v.shape[0] - 1

    def pidx(i, j):
        r = 1 + (i - 1) * cols + (j % cols)
        return torch.where(i == 0, torch.zeros_like(r), torch.where(i == rows, torch.full_like(r, north), r))

    f = _grid_quads(rows, cols, pidx)
    uvf = _grid_quads(rows, cols, lambda i, j: i * (cols + 1) + j)
    # drop the degenerate half of each pole quad (two corners on the pole)
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])
    return _mesh(v, f[keep], uv, uvf[keep], dtype, device)


def cube(size: float = 2.0, dtype=torch.float32, device=None) -> Mesh:
    """Axis-aligned cube ``[-size/2, size/2]^3``: 8 vertices, 12 triangles, outward winding.
    UVs: a 3 x 2 atlas, one tile per face, faces in the order +x, -x, +y (top row: tiles
    0, 1, 2 at v in [0.5, 1]), -y, +z, -z (bottom row); each tile is the face seen from outside
    with its u axis to the right and v up."""
    h = size / 2
    v = torch.tensor([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (-h, h)], dtype=torch.float64)
    idx = lambda x, y, z: (x > 0) * 4 + (y > 0) * 2 + (z > 0) * 1  # noqa: E731
    # (outward normal, right axis, up axis) per face; right x up = normal
    frames = [((1, 0, 0), (0, 0, -1), (0, 1, 0)), ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
              ((0, 1, 0), (1, 0, 0), (0, 0, -1)), ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
              ((0, 0, 1), (1, 0, 0), (0, 1, 0)), ((0, 0, -1), (-1, 0, 0), (0, 1, 0))]
    faces, uv, uvf = [], [], []
    for k, (nrm, r, u) in enumerate(frames):
        tu, tv = k % 3, 1 - k // 3
        corners = []
        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):  # CCW in the (right, up) frame
            p = [nrm[d] + a * r[d] + b * u[d] for d in range(3)]
            corners.append(int(idx(*p)))
            uv.append([(tu + (a + 1) / 2) / 3, (tv + (b + 1) / 2) / 2])
        base = 4 * k
        faces += [[corners[0], corners[1], corners[2]], [corners[0], corners[2], corners[3]]]
        uvf += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return _mesh(v, torch.tensor(faces), torch.tensor(uv, dtype=torch.float64), torch.tensor(uvf),
                 dtype, device)


def torus(R: float = 1.0, r: float = 0.35, n: int = 32, m: int = 16, dtype=torch.float32,
          device=None) -> Mesh:
    """Torus around the y axis: major radius ``R``, tube radius ``r``, ``n`` segments around
    the ring and ``m`` around the tube (``n m`` vertices, ``2 n m`` triangles, watertight).
    UVs: ``u`` around the ring, ``v`` around the tube, seams duplicated in ``uv`` only."""
    if n < 3 or m < 3 or not (0 < r < R):
        raise ValueError(f"torus needs n >= 3, m >= 3 and 0 < r < R, got n={n}, m={m}, R={R}, r={r}")
    uv = _uv_grid(m, n)   # rows along v (tube), cols along u (ring)
    grid = uv.view(m + 1, n + 1, 2)[:m, :n].reshape(-1, 2)
    a = 2 * math.pi * grid[:, 0]  # ring angle
    b = 2 * math.pi * grid[:, 1]  # tube angle
    rad = R + r * b.cos()
    v = torch.stack([rad * a.cos(), r * b.sin(), -rad * a.sin()], 1)
    f = _grid_quads(m, n, lambda i, j: (i % m) * n + (j % n))
    uvf = _grid_quads(m, n, lambda i, j: i * (n + 1) + j)
    return _mesh(v, f, uv, uvf, dtype, device)


def bumpy_sphere(subdivisions: int = 4, bumps: int = 8, amplitude: float = 0.2, width: float = 0.35,
                 seed: int = 0, dtype=torch.float32, device=None) -> Mesh:
    """A procedural target: the unit icosphere displaced along its normal by ``bumps`` smooth
    gaussian bumps, ``r(p) = 1 + sum_k a_k exp(-|p - d_k|^2 / (2 width^2))`` with random
    directions ``d_k`` and heights ``a_k`` uniform in ``[-amplitude/2, amplitude]`` (bumps and a few
    dents), reproducible from ``seed``. Star-shaped, so it stays closed and outward-wound."""
    if bumps < 0 or amplitude < 0 or width <= 0:
        raise ValueError("bumpy_sphere needs bumps >= 0, amplitude >= 0 and width > 0")
    if amplitude * 0.5 * bumps >= 1:
        raise ValueError("bumpy_sphere: amplitude * bumps / 2 must be < 1 (the radius must stay > 0)")
    v, f = icosphere(subdivisions, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(bumps, 3, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=1, keepdim=True)
    a = (torch.rand(bumps, generator=g, dtype=torch.float64) * 1.5 - 0.5) * amplitude
    d2 = ((v[:, None, :] - d[None]) ** 2).sum(-1)
    r = 1 + (a * torch.exp(-d2 / (2 * width**2))).sum(1)
    return _mesh(v * r[:, None], f, dtype=dtype, device=device)


def torus_knot(p: int = 2, q: int = 3, R: float = 1.0, r: float = 0.4, tube: float = 0.15,
               n: int = 256, m: int = 16, dtype=torch.float32, device=None) -> Mesh:
    """A tube of radius ``tube`` around the (p, q) torus knot curve
    ``c(t) = ((R + r cos qt) cos pt, r sin qt, -(R + r cos qt) sin pt)``, t in [0, 2pi) (winding
    p times around the y axis and q times through the hole; p, q coprime for a knot).
    ``n`` segments along the curve, ``m`` around the tube (vertex ``k m + i`` is on the ring
    around ``c(2 pi k / n)``); watertight, outward-wound. No UVs."""
    if n < 3 or m < 3 or tube <= 0 or not (0 < r < R):
        raise ValueError("torus_knot needs n >= 3, m >= 3, tube > 0 and 0 < r < R")
    if math.gcd(p, q) != 1:
        raise ValueError(f"torus_knot needs coprime p and q, got p={p}, q={q}")
    t = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)

    def curve(t):
        rad = R + r * torch.cos(q * t)
        return torch.stack([rad * torch.cos(p * t), r * torch.sin(q * t), -rad * torch.sin(p * t)], -1)

    c = curve(t)
    rad, drad = R + r * torch.cos(q * t), -r * q * torch.sin(q * t)
    T = torch.stack([drad * torch.cos(p * t) - p * rad * torch.sin(p * t), r * q * torch.cos(q * t),
                     -drad * torch.sin(p * t) - p * rad * torch.cos(p * t)], -1)
    T = T / T.norm(dim=1, keepdim=True)
    # normal: the direction from the torus' centre circle (radius R in the xz plane) to the
    # curve, made orthogonal to T; periodic in t, so the tube closes without a twist seam
    centre = torch.stack([R * torch.cos(p * t), torch.zeros_like(t), -R * torch.sin(p * t)], -1)
    N = (c - centre) - ((c - centre) * T).sum(1, keepdim=True) * T
    N = N / N.norm(dim=1, keepdim=True)
    B = torch.linalg.cross(T, N, dim=1)
    ang = torch.arange(m, dtype=torch.float64) * (2 * math.pi / m)
    # ring k of m vertices around c[k], counter-clockwise seen along +T (from N towards B)
    v = c[:, None] + tube * (ang.cos()[None, :, None] * N[:, None] + ang.sin()[None, :, None] * B[:, None])
    v = v.reshape(-1, 3)
    # quads between consecutive rings; the flip makes them counter-clockwise seen from outside
    # (checked by the signed-volume and normal-direction tests)
    f = _grid_quads(m, n, lambda i, j: (j % n) * m + (i % m))
    return _mesh(v, f.flip(1), dtype=dtype, device=device)
