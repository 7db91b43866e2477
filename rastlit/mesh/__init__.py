"""Meshes: the :class:`Mesh` container, primitives, normals, point sampling, file IO and
vertex-colour baking.

Pure PyTorch (file IO through ``trimesh``, imported only inside the IO functions; images through
Pillow, in :mod:`rastlit.image`). The package's modules:

- :mod:`rastlit.mesh.structures`: :class:`Mesh`, normals, areas, signed volume,
  :func:`normalize_to_unit_box`, :func:`sample_points`.
- :mod:`rastlit.mesh.primitives`: :func:`icosphere`, :func:`uv_sphere`, :func:`cube`,
  :func:`torus`, :func:`plane`, :func:`bumpy_sphere`, :func:`torus_knot`.
- :mod:`rastlit.mesh.io`: :func:`load_mesh`, :func:`save_mesh`, :func:`load_texture`,
  :func:`save_texture`, :func:`triangle_atlas`, :func:`atlas_size`, :func:`bake_vertex_colors`.

Everything public is importable from ``rastlit.mesh`` itself. Conventions:

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

from .io import atlas_size, bake_vertex_colors, load_mesh, load_texture, save_mesh, save_texture, triangle_atlas
from .primitives import bumpy_sphere, cube, icosphere, plane, torus, torus_knot, uv_sphere
from .structures import (
    Mesh,
    face_areas,
    face_normals,
    normalize_to_unit_box,
    sample_points,
    signed_volume,
    vertex_normals,
)

__all__ = [
    "Mesh", "icosphere", "uv_sphere", "cube", "torus", "plane", "bumpy_sphere", "torus_knot",
    "face_normals", "vertex_normals", "face_areas", "signed_volume", "normalize_to_unit_box",
    "sample_points", "load_mesh", "save_mesh", "load_texture", "save_texture",
    "triangle_atlas", "atlas_size", "bake_vertex_colors",
]
