"""Scenes shared by the benchmark scripts (numpy only): icospheres of 20 * 4**k triangles, built
vectorized (1.3M triangles in about a second), and perspective cameras on an orbit around them.

The tests keep their own oracle scenes (tests/scenes.py), whose exact vertex order the OpenGL and
float64 agreement tests were written against.
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
    v /= np.linalg.norm(v, axis=1, keepdims=True)
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


def subdivide_sphere(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One loop of midpoint subdivision: every triangle becomes four, new vertices pushed to the
    unit sphere. Edges shared by two faces get one midpoint (deduplicated with ``np.unique`` on an
    integer edge key), so the result is a closed, watertight mesh. Orientation is preserved.
    """
    nv = vertices.shape[0]
    f = faces.astype(np.int64, copy=False)
    # Edges in face order: (0,1), (1,2), (2,0) of every face; key on the sorted pair.
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], axis=0)
    e.sort(axis=1)
    key = e[:, 0] * nv + e[:, 1]
    uniq, inv = np.unique(key, return_inverse=True)
    a, b = uniq // nv, uniq % nv
    mid = vertices[a] + vertices[b]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    m = (nv + inv.reshape(3, -1)).astype(np.int64)
    ab, bc, ca = m[0], m[1], m[2]
    v0, v1, v2 = f[:, 0], f[:, 1], f[:, 2]
    new_faces = np.concatenate(
        [
            np.stack([v0, ab, ca], axis=1),
            np.stack([v1, bc, ab], axis=1),
            np.stack([v2, ca, bc], axis=1),
            np.stack([ab, bc, ca], axis=1),
        ],
        axis=0,
    )
    return np.concatenate([vertices, mid], axis=0), new_faces


def icosphere(subdivisions: int, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Icosphere with ``20 * 4**subdivisions`` triangles and ``10 * 4**subdivisions + 2`` vertices.

    Returns ``(vertices [V,3] float32, faces [T,3] int32)``, faces counter-clockwise from outside.
    """
    if subdivisions < 0:
        raise ValueError(f"subdivisions must be >= 0, got {subdivisions}")
    v, f = icosahedron()
    for _ in range(subdivisions):
        v, f = subdivide_sphere(v, f)
    return (v * radius).astype(np.float32), f.astype(np.int32)


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


def clip_positions(vertices: np.ndarray, mvps: np.ndarray) -> np.ndarray:
    """Transform ``[V,3]`` vertices by ``[B,4,4]`` matrices: clip-space ``[B,V,4]`` float32."""
    vh = np.concatenate([vertices.astype(np.float64), np.ones((vertices.shape[0], 1))], axis=1)
    return np.einsum("bij,vj->bvi", mvps, vh).astype(np.float32)


def orbit_clip_positions(
    vertices: np.ndarray, num_views: int, distance: float = 3.0, fovy_deg: float = 42.0, aspect: float = 1.0
) -> np.ndarray:
    """Clip-space ``[B,V,4]`` positions of a mesh centred at the origin seen from ``num_views``
    orbit cameras. With the unit sphere, distance 3 and fovy 42 deg the silhouette's radius is
    about 0.92 of the half-image, i.e. the sphere covers about two thirds of the pixels."""
    proj = perspective(fovy_deg, aspect, 0.1, 10.0)
    mvps = np.stack([proj @ look_at(eye) for eye in orbit_eyes(num_views, distance)])
    return clip_positions(vertices, mvps)
