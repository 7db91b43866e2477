"""The one scene module of the benchmarks and the tests (numpy only): icospheres, cameras (look-at,
perspective, orbits, clip-space transforms) and random triangle soups.

- Icospheres of 20 * 4**k triangles, built vectorized (1.3M triangles in about a second), in the
  same vertex and face order, bit for bit, as the loop-based construction that the oracle scenes
  were first written with: midpoints numbered in order of first use (faces in order, edges ab, bc,
  ca), the four children of a face consecutive, vertices normalized like ``np.linalg.norm`` of one
  vector (``matmul`` of each row with itself: the same BLAS dot product).
- Cameras: OpenGL ``look_at`` / ``perspective`` matrices, ``rotation`` / ``translation``,
  ``to_clip`` (one matrix) and ``clip_positions`` (a batch of them), ``orbit_eyes`` and
  ``orbit_clip_positions`` (a mesh seen from B cameras on an orbit).
- ``soup``: random clip-space triangles (all in front of the camera).

Who imports it: the benchmark scripts put their own folder on ``sys.path`` and ``import
bench_scenes``; the tests get ``benchmarks/`` on ``sys.path`` from pytest's ``pythonpath`` setting
in ``pyproject.toml``, and ``tests/scenes.py`` builds the oracle scenes out of these helpers (it
re-exports them, so tests may import them from either module).
"""

from __future__ import annotations

import math

import numpy as np

SIZES = {"1k": 3, "20k": 5, "80k": 6, "320k": 7, "1.3M": 8}  # label -> icosphere subdivision level


def icosahedron() -> tuple[np.ndarray, np.ndarray]:
    """The regular icosahedron on the unit sphere: ``(vertices [12,3] float64, faces [20,3] int64)``.

    Faces are counter-clockwise seen from outside (outward normals).
    """
    phi = (1.0 + math.sqrt(5.0)) / 2.0
    v = np.array(
        [
            [-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0],
            [0, -1, phi], [0, 1, phi], [0, -1, -phi], [0, 1, -phi],
            [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1],
        ],
        dtype=np.float64,
    )
    v = _unit_rows(v)
    f = np.array(
        [
            [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
            [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
            [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
            [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
        ],
        dtype=np.int64,
    )
    # Make every face counter-clockwise from outside, whatever the listing above says.
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    f[inward] = f[inward][:, [0, 2, 1]]
    return v, f


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, each divided by ``np.linalg.norm`` of that row alone (a BLAS dot
    product: batched ``matmul`` of the row with itself rounds the same way; ``norm(axis=1)`` does
    not), so that the values match a per-vector loop bit for bit."""
    sq = np.matmul(x[:, None, :], x[:, :, None])[:, 0, 0]
    return x / np.sqrt(sq)[:, None]


def subdivide_sphere(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One loop of midpoint subdivision: every triangle becomes four, new vertices pushed to the
    unit sphere. Edges shared by two faces get one midpoint (deduplicated with ``np.unique`` on an
    integer edge key), so the result is a closed, watertight mesh. Orientation is preserved.

    Order (what the oracle scenes depend on): the midpoints are appended in order of first use,
    walking the faces in order and each face's edges ab, bc, ca; face ``(a, b, c)`` becomes the
    four consecutive faces ``(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)``.
    """
    nv = vertices.shape[0]
    f = faces.astype(np.int64, copy=False)
    e = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)  # ab, bc, ca of face 0, then of face 1, ...
    key = e.min(axis=1) * nv + e.max(axis=1)
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique edges in order of first use
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    ab, bc, ca = (nv + rank[inv.reshape(-1)].reshape(-1, 3)).T
    ends = e[first[order]]
    mid = _unit_rows(vertices[ends[:, 0]] + vertices[ends[:, 1]])
    v0, v1, v2 = f[:, 0], f[:, 1], f[:, 2]
    new_faces = np.stack([v0, ab, ca, v1, bc, ab, v2, ca, bc, ab, bc, ca], axis=1).reshape(-1, 3)
    return np.concatenate([vertices, mid], axis=0), new_faces


def icosphere(subdivisions: int, radius: float = 1.0, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Icosphere with ``20 * 4**subdivisions`` triangles and ``10 * 4**subdivisions + 2`` vertices.

    Returns ``(vertices [V,3] dtype, faces [T,3] int32)``, faces counter-clockwise from outside. The
    benchmarks take float32 vertices; the oracle scenes (``tests/scenes.py``) take float64.
    """
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    v, f = icosahedron()
    for _ in range(subdivisions):
        v, f = subdivide_sphere(v, f)
    return (v * radius).astype(dtype), f.astype(np.int32)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenGL-style world-to-camera matrix ``[4,4]`` (float64): the camera sits at ``eye``, looks
    at ``target`` down its -z axis, with +y as close to ``up`` as possible."""
    eye, target, up = (np.asarray(x, dtype=np.float64) for x in (eye, target, up))
    fwd = _normalize(target - eye)
    side = _normalize(np.cross(fwd, up))
    cam_up = np.cross(side, fwd)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = side, cam_up, -fwd
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fovy_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL perspective projection ``[4,4]`` (float64): camera space (looking down -z) to clip
    space; z_view = -near maps to z_ndc = -1 and z_view = -far to +1."""
    f = 1.0 / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array(
        [
            [f / aspect, 0.0, 0.0, 0.0],
            [0.0, f, 0.0, 0.0],
            [0.0, 0.0, (far + near) / (near - far), 2.0 * far * near / (near - far)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def orbit_eyes(num_views: int, distance: float, elevation_deg: float = 25.0, phase: float = 0.3) -> np.ndarray:
    """``[num_views,3]`` camera positions on a circle-ish orbit: evenly spaced azimuths, elevation
    swinging between +-``elevation_deg``."""
    k = np.arange(num_views, dtype=np.float64)
    az = phase + 2.0 * math.pi * k / max(num_views, 1)
    el = np.radians(elevation_deg) * np.cos(2.0 * math.pi * k / max(num_views, 1) + phase)
    return distance * np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=1)


def rotation(axis, angle: float) -> np.ndarray:
    """``[4,4]`` rotation by ``angle`` radians about ``axis`` (right-handed, float64)."""
    axis = np.asarray(axis, np.float64)
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    c, s = np.cos(angle), np.sin(angle)
    C = 1 - c
    R = np.eye(4)
    R[:3, :3] = [[c + x * x * C, x * y * C - z * s, x * z * C + y * s],
                 [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
                 [z * x * C - y * s, z * y * C + x * s, c + z * z * C]]
    return R


def translation(t) -> np.ndarray:
    """``[4,4]`` translation by ``t`` (float64)."""
    M = np.eye(4)
    M[:3, 3] = t
    return M


def to_clip(mvp: np.ndarray, xyz, dtype=np.float32) -> np.ndarray:
    """Transform ``[V,3]`` points by one ``[4,4]`` matrix: clip-space ``[V,4]`` (computed in float64,
    returned as ``dtype``)."""
    xyz = np.asarray(xyz, np.float64)
    h = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
    return (h @ mvp.T).astype(dtype)


def clip_positions(vertices: np.ndarray, mvps: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Transform ``[V,3]`` vertices by ``[B,4,4]`` matrices: clip-space ``[B,V,4]`` (``to_clip`` per
    view)."""
    return np.stack([to_clip(m, vertices, dtype) for m in mvps])


def orbit_clip_positions(
    vertices: np.ndarray, num_views: int, distance: float = 3.0, fovy_deg: float = 42.0, aspect: float = 1.0
) -> np.ndarray:
    """Clip-space ``[B,V,4]`` positions of a mesh centred at the origin seen from ``num_views``
    orbit cameras. With the unit sphere, distance 3 and fovy 42 deg the silhouette's radius is
    about 0.92 of the half-image, i.e. the sphere covers about two thirds of the pixels."""
    proj = perspective(fovy_deg, aspect, 0.1, 10.0)
    mvps = np.stack([proj @ look_at(eye) for eye in orbit_eyes(num_views, distance)])
    return clip_positions(vertices, mvps)


def soup(rng: np.random.Generator, n: int, xy=1.2, zr=0.9, wr=(0.5, 2.0), size=None, zspread=None):
    """``n`` random triangles in clip space, ``(pos [3n,4] float32, tri [n,3] int32)``, with w in
    ``wr`` (all in front of the camera) and x/w, y/w in [-xy, xy].

    Vertices are uniform in the square, or, with ``size=(lo, hi)``, within a random half-width in
    [lo, hi] of a random centre. z/w is uniform in [-zr, zr] per vertex, or, with ``zspread``, a
    random per-triangle base plus at most +-zspread per vertex."""
    if size is None:
        p = rng.uniform(-xy, xy, size=(n, 3, 2))
    else:
        c = rng.uniform(-xy, xy, size=(n, 1, 2))
        s = rng.uniform(size[0], size[1], size=(n, 1, 1))
        p = c + s * rng.uniform(-1, 1, size=(n, 3, 2))
    if zspread is None:
        z = rng.uniform(-zr, zr, size=(n, 3, 1))
    else:
        z = rng.uniform(-zr, zr, size=(n, 1, 1)) + rng.uniform(-zspread, zspread, size=(n, 3, 1))
    w = rng.uniform(wr[0], wr[1], size=(n, 3, 1))
    pos = np.concatenate([p * w, z * w, w], axis=-1).reshape(-1, 4)
    tri = np.arange(3 * n, dtype=np.int32).reshape(n, 3)
    return pos.astype(np.float32), tri
