"""Meshes: the :class:`Mesh` container, primitives, normals, point sampling and file IO.

Pure PyTorch (file IO through ``trimesh``, imported only inside the IO functions). Conventions:

- ``verts [V,3]`` floating point, ``faces [F,3]`` int32 (rastlit's index dtype).
- Closed primitives are wound **counter-clockwise seen from outside**, so
  ``cross(v1 - v0, v2 - v0)`` points outwards (positive signed volume).
- UVs have their own index buffer (``uv [Vt,2]`` + ``uv_faces [F,3]``, as OBJ's ``f v/vt`` and
  nvdiffrast's ``pos_idx`` / ``uv_idx``), so a texture seam duplicates UVs, never positions.
- ``texture [Ht,Wt,C]`` is float in [0,1] with **row 0 at v = 0** (the bottom of the image,
  OpenGL / nvdiffrast convention; rastlit's ``texture`` op samples it directly). Image files are
  stored top-down, so :func:`load_texture` / :func:`load_mesh` flip rows on load and
  :func:`save_texture` / :func:`save_mesh` flip them back on save.
- y is up; the default camera (OpenGL) looks down -z, so :func:`plane` faces +z.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Mesh", "icosphere", "uv_sphere", "cube", "torus", "plane", "bumpy_sphere", "torus_knot",
    "face_normals", "vertex_normals", "face_areas", "signed_volume", "normalize_to_unit_box",
    "sample_points", "load_mesh", "save_mesh", "load_texture", "save_texture",
]


# ----------------------------------------------------------------------------------------------
# Mesh container
# ----------------------------------------------------------------------------------------------

def _check_index(name: str, t: torch.Tensor, n: int, n_name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"Mesh.{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"Mesh.{name} must be an integer tensor (int32), got {t.dtype}")
    if t.dim() != 2 or t.shape[1] != 3:
        raise ValueError(f"Mesh.{name} must have shape [F,3], got {list(t.shape)}")
    if t.numel() > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n:
            raise ValueError(f"Mesh.{name} indices must be in [0, {n_name}={n}), got range [{lo}, {hi}]")
    if n >= 2**31:
        raise ValueError(f"Mesh.{name}: {n_name}={n} does not fit int32 indices")
    return t.to(torch.int32).contiguous()


def _check_float(name: str, t: torch.Tensor, shape: str, ndim: int, last: int | None) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"Mesh.{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise ValueError(f"Mesh.{name} must be a floating-point tensor, got {t.dtype}")
    if t.dim() != ndim or (last is not None and t.shape[-1] != last):
        raise ValueError(f"Mesh.{name} must have shape {shape}, got {list(t.shape)}")


@dataclass(eq=False)
class Mesh:
    """A triangle mesh.

    Fields (all on one device):

    - ``verts [V,3]`` float positions.
    - ``faces [F,3]`` int32 vertex indices (any integer dtype is accepted and converted to int32).
    - ``vertex_colors [V,C]`` optional per-vertex attributes (colours in [0,1], C usually 3 or 4).
    - ``uv [Vt,2]`` and ``uv_faces [F,3]`` optional texture coordinates with their own indexing
      (face ``f`` corner ``k`` uses ``uv[uv_faces[f,k]]``); both or neither.
    - ``texture [Ht,Wt,C]`` optional float texture in [0,1], **row 0 = v≈0** (bottom row, the
      flip of an image file); needs ``uv``. ``texture[None]`` is what ``rastlit.texture`` takes.
    - ``normals [V,3]`` optional per-vertex normals as given (e.g. authored); they are not kept
      in sync with ``verts``: :meth:`vertex_normals` always recomputes from the geometry.

    Construction validates shapes, dtypes, devices and index ranges and raises ``ValueError``
    naming the field. ``dataclasses.replace(mesh, verts=new_verts)`` re-validates.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    vertex_colors: torch.Tensor | None = None
    uv: torch.Tensor | None = None
    uv_faces: torch.Tensor | None = None
    texture: torch.Tensor | None = None
    normals: torch.Tensor | None = None

    def __post_init__(self):
        _check_float("verts", self.verts, "[V,3]", 2, 3)
        V = self.verts.shape[0]
        self.faces = _check_index("faces", self.faces, V, "num_verts")
        F = self.faces.shape[0]
        dev = self.verts.device
        if self.vertex_colors is not None:
            _check_float("vertex_colors", self.vertex_colors, "[V,C]", 2, None)
            if self.vertex_colors.shape[0] != V:
                raise ValueError(f"Mesh.vertex_colors must have shape [V={V},C], got "
                                 f"{list(self.vertex_colors.shape)}")
        if (self.uv is None) != (self.uv_faces is None):
            raise ValueError("Mesh.uv and Mesh.uv_faces must be given together "
                             "(use uv_faces=faces when the UVs are indexed like the vertices)")
        if self.uv is not None:
            _check_float("uv", self.uv, "[Vt,2]", 2, 2)
            self.uv_faces = _check_index("uv_faces", self.uv_faces, self.uv.shape[0], "num_uv")
            if self.uv_faces.shape[0] != F:
                raise ValueError(f"Mesh.uv_faces must have shape [F={F},3] like faces, got "
                                 f"{list(self.uv_faces.shape)}")
        if self.texture is not None:
            _check_float("texture", self.texture, "[Ht,Wt,C]", 3, None)
            if self.uv is None:
                raise ValueError("Mesh.texture needs Mesh.uv and Mesh.uv_faces")
            if min(self.texture.shape) == 0:
                raise ValueError(f"Mesh.texture must be non-empty, got {list(self.texture.shape)}")
        if self.normals is not None:
            _check_float("normals", self.normals, "[V,3]", 2, 3)
            if self.normals.shape[0] != V:
                raise ValueError(f"Mesh.normals must have shape [V={V},3], got {list(self.normals.shape)}")
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            if t is not None and t.device != dev:
                raise ValueError(f"Mesh.{f.name} is on {t.device} but Mesh.verts is on {dev}")

    @property
    def num_verts(self) -> int:
        return self.verts.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    def to(self, device=None, dtype=None) -> "Mesh":
        """A copy on ``device``; ``dtype`` (if given) applies to the float fields only."""
        kw = {}
        for f in dataclasses.fields(self):
            t = getattr(self, f.name)
            if t is not None:
                t = t.to(device=device, dtype=dtype if t.dtype.is_floating_point else None)
            kw[f.name] = t
        return Mesh(**kw)

    def vertex_normals(self) -> torch.Tensor:
        """Area-weighted unit vertex normals of the current ``verts`` (differentiable)."""
        return vertex_normals(self.verts, self.faces)

    def face_normals(self) -> torch.Tensor:
        return face_normals(self.verts, self.faces)

    def split_uv_seams(self) -> "Mesh":
        """Equivalent mesh whose UVs are indexed like the vertices (``uv_faces == faces``):
        a vertex used with several UVs is duplicated. File formats and trimesh need this."""
        if self.uv is None or torch.equal(self.uv_faces, self.faces):
            return self
        key = torch.stack([self.faces.reshape(-1).long(), self.uv_faces.reshape(-1).long()], 1)
        uniq, inv = torch.unique(key, dim=0, return_inverse=True)
        faces = inv.view(-1, 3).to(torch.int32)
        vi, ti = uniq[:, 0], uniq[:, 1]
        return Mesh(self.verts[vi], faces,
                    None if self.vertex_colors is None else self.vertex_colors[vi],
                    self.uv[ti], faces, self.texture,
                    None if self.normals is None else self.normals[vi])


# ----------------------------------------------------------------------------------------------
# Geometry helpers (differentiable; verts [V,3] or [B,V,3] with shared faces)
# ----------------------------------------------------------------------------------------------

def _face_verts(verts: torch.Tensor, faces: torch.Tensor):
    f = faces.long()
    return verts[..., f[:, 0], :], verts[..., f[:, 1], :], verts[..., f[:, 2], :]


def _face_cross(verts, faces):
    v0, v1, v2 = _face_verts(verts, faces)
    return torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)


def _safe_normalize(x: torch.Tensor, eps: float = 1e-20) -> torch.Tensor:
    # x / |x| with zero (not NaN) for zero vectors, in value and gradient
    n2 = (x * x).sum(-1, keepdim=True)
    return x * torch.rsqrt(n2.clamp_min(eps))


def face_normals(verts: torch.Tensor, faces: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Face normals ``[..., F, 3]`` = ``cross(v1 - v0, v2 - v0)``, unit length when ``normalize``
    (zero for degenerate faces); unnormalized their length is twice the face area."""
    n = _face_cross(verts, faces)
    return _safe_normalize(n) if normalize else n


def face_areas(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Triangle areas ``[..., F]``."""
    return 0.5 * _face_cross(verts, faces).norm(dim=-1)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals ``[..., V, 3]``: the normalized sum of the (unnormalized,
    so area-weighted) normals of the faces around each vertex; zero for unused vertices.
    Differentiable; deterministic (``index_add`` in face order on the CPU)."""
    n = _face_cross(verts, faces)
    f = faces.long()
    acc = torch.zeros_like(verts)
    for k in range(3):
        acc = acc.index_add(-2, f[:, k], n)
    return _safe_normalize(acc)


def signed_volume(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Signed volume enclosed by a closed mesh (positive when wound counter-clockwise seen from
    outside): ``sum over faces of dot(v0, cross(v1, v2)) / 6``."""
    v0, v1, v2 = _face_verts(verts, faces)
    return (v0 * torch.linalg.cross(v1, v2, dim=-1)).sum((-1, -2)) / 6.0


def normalize_to_unit_box(verts: torch.Tensor):
    """Centre the bounding box at the origin and scale uniformly so that its longest side spans
    [-1, 1] (the box fits ``[-1,1]^3``, aspect ratio kept).

    Returns ``(verts_n, center [3], scale [])`` with ``verts_n = (verts - center) * scale``
    (undo with ``verts_n / scale + center``). Differentiable. A single point (zero extent) gets
    ``scale = 1``."""
    if verts.dim() != 2 or verts.shape[1] != 3 or verts.shape[0] == 0:
        raise ValueError(f"verts must have shape [V,3] with V > 0, got {list(verts.shape)}")
    lo, hi = verts.min(0).values, verts.max(0).values
    center = 0.5 * (lo + hi)
    ext = (hi - lo).max()
    scale = torch.where(ext > 0, 2.0 / ext.clamp_min(torch.finfo(verts.dtype).tiny), torch.ones_like(ext))
    return (verts - center) * scale, center, scale


def sample_points(verts: torch.Tensor, faces: torch.Tensor, n: int,
                  generator: torch.Generator | None = None):
    """``n`` points uniformly distributed over the surface: ``(points [n,3], normals [n,3])``.

    Faces are drawn with probability proportional to their area, then a point uniform inside the
    triangle (``p = (1 - sqrt(r1)) v0 + sqrt(r1) (1 - r2) v1 + sqrt(r1) r2 v2``); ``normals`` are
    the unit face normals there. Reproducible for a seeded ``generator`` (the draws happen on
    the generator's device, default: the global RNG of ``verts``' device). Differentiable w.r.t.
    ``verts`` for the drawn samples (the face choice and barycentrics are constants)."""
    if verts.dim() != 2 or verts.shape[1] != 3:
        raise ValueError(f"verts must have shape [V,3], got {list(verts.shape)}")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces must have shape [F,3] with F > 0, got {list(faces.shape)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    dev = generator.device if generator is not None else verts.device
    with torch.no_grad():
        areas = face_areas(verts.detach(), faces).to(dev, torch.float64)
        if not torch.isfinite(areas).all() or areas.sum() <= 0:
            raise ValueError("sample_points needs finite vertices and a positive total area")
        fi = torch.multinomial(areas, n, replacement=True, generator=generator) if n > 0 else \
            torch.zeros(0, dtype=torch.long, device=dev)
        r = torch.rand(n, 2, generator=generator, device=dev, dtype=torch.float64)
        s = r[:, 0].sqrt()
        w = torch.stack([1 - s, s * (1 - r[:, 1]), s * r[:, 1]], 1)
        fi, w = fi.to(verts.device), w.to(verts.device, verts.dtype)
    f = faces.long()[fi]
    v0, v1, v2 = verts[f[:, 0]], verts[f[:, 1]], verts[f[:, 2]]
    p = w[:, :1] * v0 + w[:, 1:2] * v1 + w[:, 2:] * v2
    nrm = _safe_normalize(torch.linalg.cross(v1 - v0, v2 - v0, dim=-1))
    return p, nrm


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


# ----------------------------------------------------------------------------------------------
# Images (PNG) without a hard Pillow dependency
# ----------------------------------------------------------------------------------------------

def _png_encode(img: np.ndarray) -> bytes:
    """8-bit PNG (gray, gray+alpha, RGB, RGBA) of a top-down ``[H,W,C]`` uint8 array."""
    h, w, c = img.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), img.reshape(h, w * c)], 1).tobytes()

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _png_decode(data: bytes, path: str) -> np.ndarray | None:
    """Decode an 8-bit non-interlaced gray/RGB/GA/RGBA PNG to a top-down ``[H,W,C]`` uint8 array;
    ``None`` for other variants (palette, 16-bit, interlaced), which need Pillow."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path!r} is not a PNG file")
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        (ln,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + ln]
        pos += 12 + ln
        if tag == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
    if hdr is None:
        raise ValueError(f"{path!r}: PNG without IHDR")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or interlace != 0 or ctype not in (0, 2, 4, 6):
        return None
    c = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    stride = w * c
    if raw.size != h * (stride + 1):
        raise ValueError(f"{path!r}: truncated PNG data")
    raw = raw.reshape(h, stride + 1)
    out = np.zeros((h, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        ft, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ft == 0:
            cur = line
        elif ft == 2:
            cur = (line + prev) & 255
        else:  # Sub, Average, Paeth depend on the left neighbour: go pixel by pixel
            cur = np.zeros(stride, np.int32)
            for x in range(stride):
                left = cur[x - c] if x >= c else 0
                up, ul = prev[x], (prev[x - c] if x >= c else 0)
                if ft == 1:
                    pred = left
                elif ft == 3:
                    pred = (left + up) >> 1
                elif ft == 4:
                    pp = left + up - ul
                    pa, pb, pc = abs(pp - left), abs(pp - up), abs(pp - ul)
                    pred = left if (pa <= pb and pa <= pc) else (up if pb <= pc else ul)
                else:
                    raise ValueError(f"{path!r}: bad PNG filter type {ft}")
                cur[x] = (line[x] + pred) & 255
        out[y] = cur
        prev = cur
    return out.astype(np.uint8).reshape(h, w, c)


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.detach().to("cpu", torch.float64).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def save_texture(texture: torch.Tensor, path) -> None:
    """Write a ``[Ht,Wt,C]`` (C in 1..4) float texture in [0,1] as an 8-bit PNG. Row 0 of the
    tensor (v = 0) becomes the **bottom** row of the image file (rows are flipped)."""
    if texture.dim() == 2:
        texture = texture[..., None]
    if texture.dim() != 3 or not 1 <= texture.shape[2] <= 4:
        raise ValueError(f"texture must have shape [Ht,Wt,C] with C in 1..4, got {list(texture.shape)}")
    img = np.ascontiguousarray(_to_uint8(texture)[::-1])
    with open(path, "wb") as fh:
        fh.write(_png_encode(img))


def _image_to_tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = img[..., None]
    img = img[::-1]  # file rows are top-down; rastlit textures have row 0 at v = 0 (bottom)
    if img.dtype == np.uint16:
        return torch.from_numpy(img.astype(np.float32) / 65535.0)
    return torch.from_numpy(np.ascontiguousarray(img).astype(np.float32) / 255.0)


def _read_image(path: str) -> np.ndarray:
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        img = _png_decode(data, path)
        if img is not None:
            return img
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"reading {path!r} (not an 8-bit non-interlaced PNG) needs Pillow: "
                          "pip install pillow") from None
    with Image.open(path) as im:
        if im.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
            im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
        return np.asarray(im)


def load_texture(path) -> torch.Tensor:
    """Read an image file as a float32 ``[Ht,Wt,C]`` texture in [0,1] with **row 0 = the bottom
    row of the image** (v = 0). 8-bit PNGs are decoded without Pillow; other formats need it."""
    return _image_to_tensor(_read_image(os.fspath(path)))


# ----------------------------------------------------------------------------------------------
# Mesh IO through trimesh
# ----------------------------------------------------------------------------------------------

def _trimesh():
    try:
        import trimesh
    except ImportError:
        raise ImportError("rastlit mesh file IO needs trimesh: pip install trimesh") from None
    return trimesh


def _material_image(material):
    if material is None:
        return None
    for attr in ("image", "baseColorTexture"):
        try:
            img = getattr(material, attr, None)
        except Exception:  # trimesh raises its wrapped ImportError when Pillow is missing
            img = None
        if img is not None:
            try:
                if getattr(img, "mode", None) not in (None, "L", "LA", "RGB", "RGBA"):
                    img = img.convert("RGBA")  # palette / CMYK / 16-bit PIL images
                return np.asarray(img)
            except Exception:
                return None
    return None


def _obj_texture_path(path: str) -> str | None:
    """The first ``map_Kd`` image of the first ``mtllib`` of an OBJ file (for Pillow-free loads)."""
    base = os.path.dirname(path)
    try:
        with open(path, "r", errors="replace") as fh:
            mtl = next((ln.split(None, 1)[1].strip() for ln in fh if ln.startswith("mtllib ")), None)
        if mtl is None:
            return None
        with open(os.path.join(base, mtl), "r", errors="replace") as fh:
            tex = next((ln.split(None, 1)[1].strip() for ln in fh if ln.strip().startswith("map_Kd ")), None)
    except (OSError, IndexError):
        return None
    if tex is None:
        return None
    tex = tex.split()[-1]  # drop map options such as -s / -o (the file name comes last)
    full = os.path.join(base, tex)
    return full if os.path.exists(full) else None


def load_mesh(path, dtype=torch.float32, device=None) -> Mesh:
    """Read a mesh file (OBJ, PLY, GLB/GLTF, STL, OFF, anything trimesh reads) into a :class:`Mesh`.

    Positions and faces always (polygons are triangulated by trimesh); UVs, the base-colour
    texture image and vertex colours where the file has them. trimesh indexes UVs per vertex,
    so vertices on a UV seam come back duplicated (``uv_faces == faces``). Scenes with several
    meshes (GLB, multi-object OBJ) are flattened with their transforms and concatenated; their
    textures are kept only if they all share one image (otherwise dropped with a warning).
    Textures come back with row 0 = v≈0 (file rows flipped). Texture images other than 8-bit
    PNG (JPEG, and any image embedded in GLB) need Pillow.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the path and the
    reason for a file trimesh cannot read or that has no faces (e.g. a point cloud)."""
    trimesh = _trimesh()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mesh file not found: {path!r}")
    # maintain_order keeps the file's vertex order (and unreferenced vertices), but trimesh 4-5
    # then skips splitting vertices at UV seams of OBJ files (their UVs come back wrong): use it
    # only for OBJ files without texture coordinates
    keep_order = True
    if path.lower().endswith(".obj"):
        with open(path, "rb") as fh:
            head = fh.read()
        keep_order = not (head.startswith(b"vt ") or b"\nvt " in head or b"\nvt\t" in head)
    try:
        obj = trimesh.load(path, process=False, maintain_order=keep_order)
    except Exception as e:
        raise ValueError(f"could not read mesh file {path!r}: {type(e).__name__}: {e}") from e
    if isinstance(obj, trimesh.Scene):
        try:
            geoms = list(obj.dump()) if len(obj.geometry) else []
        except Exception as e:
            raise ValueError(f"could not read mesh file {path!r}: {type(e).__name__}: {e}") from e
    else:
        geoms = [obj]
    parts = [g for g in geoms if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not parts:
        kinds = sorted({type(g).__name__ for g in geoms}) or ["nothing"]
        raise ValueError(f"mesh file {path!r} has no triangle faces (found {', '.join(kinds)}; "
                         "a point cloud or an unreadable file?)")

    verts, faces, uvs, colors, images = [], [], [], [], []
    off = 0
    for g in parts:
        verts.append(np.asarray(g.vertices, np.float64))
        faces.append(np.asarray(g.faces, np.int64) + off)
        off += len(g.vertices)
        vis = g.visual
        kind = getattr(vis, "kind", None)
        uv = getattr(vis, "uv", None) if kind == "texture" else None
        uvs.append(None if uv is None or len(uv) != len(g.vertices) else np.asarray(uv, np.float64))
        img = _material_image(getattr(vis, "material", None)) if uvs[-1] is not None else None
        images.append(img)
        col = vis.vertex_colors if kind == "vertex" else None
        if col is None:  # colours beside a texture visual (OBJ "v x y z r g b" with UVs)
            col = getattr(g, "vertex_attributes", {}).get("color")
        col = None if col is None or len(col) != len(g.vertices) else np.asarray(col)
        if col is not None:
            col = col.astype(np.float64) / (255.0 if col.dtype.kind in "ui" else 1.0)
            if col.shape[1] == 3:
                col = np.concatenate([col, np.ones((len(col), 1))], 1)
        colors.append(col)

    V = np.concatenate(verts)
    F = np.concatenate(faces)
    uv = np.concatenate(uvs) if all(u is not None for u in uvs) else None
    if uv is None and any(u is not None for u in uvs):
        warnings.warn(f"{path!r}: only some meshes have UVs; UVs dropped")
    col = None
    if all(c is not None for c in colors):
        col = np.concatenate(colors)
        if np.all(col[:, 3] == 1.0):
            col = col[:, :3]
    elif any(c is not None for c in colors):
        warnings.warn(f"{path!r}: only some meshes have vertex colours; colours dropped")

    tex = None
    if uv is not None:
        imgs = [i for i in images if i is not None]
        if not imgs and len(parts) == 1 and path.lower().endswith(".obj"):
            tp = _obj_texture_path(path)
            if tp is not None:
                try:
                    imgs = [_read_image(tp)]
                except ImportError as e:
                    warnings.warn(f"{path!r}: texture not loaded: {e}")
        if imgs:
            if len(imgs) == len(parts) and all(i.shape == imgs[0].shape and np.array_equal(i, imgs[0]) for i in imgs):
                tex = _image_to_tensor(imgs[0])
            else:
                warnings.warn(f"{path!r}: meshes with different textures; textures dropped (UVs kept)")

    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    Ft = torch.as_tensor(F, dtype=torch.int32, device=device)
    return Mesh(t(V), Ft, None if col is None else t(col),
                None if uv is None else t(uv), None if uv is None else Ft,
                None if tex is None else tex.to(dtype=dtype, device=device))


def _fmt(a: np.ndarray, digits: int) -> list[str]:
    return [" ".join(f"{x:.{digits}g}" for x in row) for row in a]


def _save_obj(mesh: Mesh, path: str) -> None:
    digits = 17 if mesh.verts.dtype == torch.float64 else 9  # exact round trip
    v = mesh.verts.detach().cpu().double().numpy()
    lines = ["# written by rastlit"]
    stem = os.path.splitext(os.path.basename(path))[0]
    if mesh.texture is not None:
        lines.append(f"mtllib {stem}.mtl")
    rows = _fmt(v, digits)
    if mesh.vertex_colors is not None and mesh.vertex_colors.shape[1] >= 3:
        c = mesh.vertex_colors[:, :3].detach().cpu().double().numpy()
        rows = [a + " " + b for a, b in zip(rows, _fmt(c, digits))]
    lines += ["v " + r for r in rows]
    f = mesh.faces.cpu().numpy().astype(np.int64) + 1
    if mesh.uv is not None:
        lines += ["vt " + r for r in _fmt(mesh.uv.detach().cpu().double().numpy(), digits)]
        if mesh.texture is not None:
            lines.append("usemtl material0")
        ft = mesh.uv_faces.cpu().numpy().astype(np.int64) + 1
        lines += [f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(f, ft)]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in f]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    if mesh.texture is not None:
        base = os.path.dirname(path)
        with open(os.path.join(base, stem + ".mtl"), "w") as fh:
            fh.write("# written by rastlit\nnewmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\n"
                     f"illum 1\nmap_Kd {stem}.png\n")
        save_texture(mesh.texture, os.path.join(base, stem + ".png"))


def save_mesh(mesh: Mesh, path) -> None:
    """Write ``mesh`` to ``path``; the format follows the extension.

    - ``.obj`` (rastlit's own writer, exact float round trip, separate UV indices kept): ``v``
      lines (with ``r g b`` appended when the mesh has vertex colours, the common OBJ
      extension that trimesh, MeshLab and Blender read), ``vt`` and ``f v/vt``; with a texture,
      also ``<stem>.mtl`` and ``<stem>.png`` beside it (the PNG written top-down).
    - ``.ply``, ``.glb``, ``.gltf``, ``.stl``, ``.off`` through trimesh: UV seams are split first
      (per-vertex UVs); vertex colours are stored as 8-bit RGBA (quantized to 1/255), and only
      when the mesh has no UVs (trimesh keeps one visual per mesh). A texture is embedded in GLB
      only when Pillow is installed (otherwise dropped with a warning); PLY keeps no texture.
      PLY stores positions as float32.
    """
    if not isinstance(mesh, Mesh):
        raise ValueError(f"save_mesh needs a rastlit.mesh.Mesh, got {type(mesh).__name__}")
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".obj":
        return _save_obj(mesh, path)
    if ext not in (".ply", ".glb", ".gltf", ".stl", ".off"):
        raise ValueError(f"save_mesh: unsupported extension {ext!r} of {path!r} "
                         "(use .obj, .ply, .glb, .gltf, .stl or .off)")
    trimesh = _trimesh()
    m = mesh.split_uv_seams()
    v = m.verts.detach().cpu().double().numpy()
    f = m.faces.cpu().numpy().astype(np.int64)
    visual = None
    if m.uv is not None and ext in (".ply", ".glb", ".gltf"):
        from trimesh.visual.material import PBRMaterial
        img = None
        if m.texture is not None and ext != ".ply":
            try:
                from PIL import Image
                t8 = np.ascontiguousarray(_to_uint8(m.texture)[::-1])
                img = Image.fromarray(t8[..., 0] if t8.shape[2] == 1 else t8)
            except ImportError:
                warnings.warn(f"save_mesh({path!r}): embedding the texture needs Pillow "
                              "(pip install pillow); saved without it (or save as .obj)")
        elif m.texture is not None:
            warnings.warn(f"save_mesh({path!r}): PLY keeps no texture image; saved UVs only")
        visual = trimesh.visual.TextureVisuals(
            uv=m.uv.detach().cpu().double().numpy(), material=PBRMaterial(baseColorTexture=img))
        if m.vertex_colors is not None:
            warnings.warn(f"save_mesh({path!r}): vertex colours dropped (the mesh has UVs)")
    elif m.vertex_colors is not None:
        c = m.vertex_colors.detach().cpu().double().clamp(0, 1).numpy()
        if c.shape[1] == 1:
            c = np.repeat(c, 3, 1)
        c8 = np.round(c[:, :4] * 255).astype(np.uint8)
        visual = trimesh.visual.ColorVisuals(vertex_colors=c8)
    tm = trimesh.Trimesh(v, f, visual=visual, process=False)
    if ext == ".gltf":  # one self-contained file (buffers as data URIs), not loose .bin files
        tm.export(path, embed_buffers=True)
    else:
        tm.export(path)
