"""The :class:`Mesh` container and differentiable geometry helpers: face / vertex normals, face
areas, signed volume, :func:`normalize_to_unit_box` and area-uniform :func:`sample_points`.

Geometry helpers take ``verts [V,3]`` (or ``[B,V,3]`` where noted, with shared faces) and
``faces [F,3]`` integer indices; conventions are described in :mod:`rastlit.mesh`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

__all__ = [
    "Mesh", "face_normals", "vertex_normals", "face_areas", "signed_volume",
    "normalize_to_unit_box", "sample_points",
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
    - ``vertex_colors [V,C]`` optional per-vertex colours in [0,1], C >= 1 channels read as image
      files' modes are: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA (more: RGB first, then any extra
      attributes). :class:`rastlit.nn.MeshRenderer` shades with the colour part (grey repeated to
      RGB) and ignores alpha and extras.
    - ``uv [Vt,2]`` and ``uv_faces [F,3]`` optional texture coordinates with their own indexing
      (face ``f`` corner ``k`` uses ``uv[uv_faces[f,k]]``); both or neither.
    - ``texture [Ht,Wt,C]`` optional float texture in [0,1], **row 0 = v≈0** (bottom row, the
      flip of an image file); needs ``uv``. ``texture[None]`` is what ``rastlit.texture`` takes.
      Its C >= 1 channels are read as ``vertex_colors``' are.
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
            if self.vertex_colors.shape[0] != V or self.vertex_colors.shape[1] == 0:
                raise ValueError(f"Mesh.vertex_colors must have shape [V={V},C] with C >= 1, got "
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
