"""Deterministic test scenes for the rasterizer oracles.

Every generator returns a ``Scene(pos, tri, ranges, H, W, name)`` (a
NamedTuple, so it also unpacks as a plain 6-tuple):

* ``pos``: float32 clip-space positions, [B,V,4] (instanced) or [V,4] (range
  mode).  Values are float32 so that GL, the float64 reference and a float32 or
  float64 kernel all see exactly the same numbers.
* ``tri``: int32 [T,3]; ``ranges``: int32 [B,2] (start, count) or None.

``DESCRIPTIONS[name]`` says what each scene is meant to exercise,
``all_scenes()`` returns them all (cached), ``get_scene(name)`` one of them.

The geometry (icospheres, cameras, clip transforms, random soups) comes from the one scene module
shared with the benchmarks, ``benchmarks/bench_scenes.py`` (pytest puts ``benchmarks/`` on
``sys.path``: ``pythonpath`` in ``pyproject.toml``); it is re-exported here. Its icosphere is the
loop-based construction these scenes were written against, vectorized, bit for bit the same; here
``icosphere(subdiv)`` returns float64 vertices. What stays here builds the oracle scenes only.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import numpy as np
from bench_scenes import icosphere as _icosphere
from bench_scenes import soup as _soup
from bench_scenes import (  # noqa: F401  (re-exported for the tests)
    clip_positions, look_at, orbit_clip_positions, perspective, rotation, soup, to_clip, translation,
)


class Scene(NamedTuple):
    pos: np.ndarray
    tri: np.ndarray
    ranges: Optional[np.ndarray]
    H: int
    W: int
    name: str


# ---------------------------------------------------------------------------
# small geometry toolkit
# ---------------------------------------------------------------------------

def icosphere(subdiv):
    """Unit icosphere, ``(verts [V,3] float64, faces [F,3] int32)``, F = 20 * 4**subdiv, faces wound
    counter-clockwise seen from outside (``bench_scenes.icosphere`` in float64)."""
    return _icosphere(subdiv, dtype=np.float64)


def _pix_ndc(j, n):
    """NDC coordinate of pixel centre j along an axis of n pixels."""
    return (2.0 * np.asarray(j, np.float64) + 1.0) / n - 1.0


def _grid(H, W, step, first, rng, random_w, zfun):
    """Triangulated grid whose vertices lie exactly on pixel centres.

    Each cell is split along one of its two diagonals (checkerboard or random)
    so both diagonal directions occur; diagonals of square cells pass exactly
    through pixel centres too.  Some triangles get reversed winding.
    """
    cols = np.arange(first, W + step, step)
    rows = np.arange(first, H + step, step)
    nr, nc = len(rows), len(cols)
    X, Y = np.meshgrid(_pix_ndc(cols, W), _pix_ndc(rows, H))  # [nr, nc]
    Z = zfun(X, Y)
    if random_w:
        w = rng.choice([0.5, 1.0, 2.0, 4.0], size=X.shape)  # powers of two: exact
    else:
        w = np.ones_like(X)
    pos = np.stack([X * w, Y * w, Z * w, w], axis=-1).reshape(-1, 4)
    idx = np.arange(nr * nc).reshape(nr, nc)
    tris = []
    for r in range(nr - 1):
        for c in range(nc - 1):
            v00, v01, v10, v11 = idx[r, c], idx[r, c + 1], idx[r + 1, c], idx[r + 1, c + 1]
            diag = rng.integers(2) if random_w else (r + c) % 2
            if diag == 0:  # "/" diagonal
                pair = [(v00, v01, v11), (v00, v11, v10)]
            else:  # "\" diagonal
                pair = [(v00, v01, v10), (v01, v11, v10)]
            for t in pair:
                if rng.random() < 0.3:
                    t = (t[0], t[2], t[1])
                tris.append(t)
    return pos.astype(np.float32), np.array(tris, dtype=np.int32)


def _concat(parts):
    """Concatenate (pos [V,4], tri [T,3]) meshes into one indexed mesh."""
    pos, tri, off = [], [], 0
    for p, t in parts:
        pos.append(np.asarray(p, np.float32).reshape(-1, 4))
        tri.append(np.asarray(t, np.int64).reshape(-1, 3) + off)
        off += len(pos[-1])
    return np.concatenate(pos).astype(np.float32), np.concatenate(tri).astype(np.int32)


def _tri_list(verts):
    """A list of explicit triangles [[v0, v1, v2], ...] (each v in clip space)."""
    v = np.asarray(verts, np.float64).reshape(-1, 4)
    return v.astype(np.float32), np.arange(len(v), dtype=np.int32).reshape(-1, 3)


def _ndc_tri(pts, w=(1.0, 1.0, 1.0)):
    """Clip-space triangle from NDC points (x, y, z) and per-vertex w."""
    return [[x * wi, y * wi, z * wi, wi] for (x, y, z), wi in zip(pts, w)]


# ---------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------

DESCRIPTIONS = {}


def _scene(desc):
    def deco(fn):
        DESCRIPTIONS[fn.__name__] = desc
        return fn
    return deco


@_scene("triangulated 5-px grid, every vertex exactly on a pixel centre, checkerboard of "
        "'/' and '\\' diagonals (which also pass through pixel centres), w=1, non-planar "
        "z field, 30% reversed winding; shared edges/vertices must be covered once")
def grid_pixel_centres():
    rng = np.random.default_rng(1)
    pos, tri = _grid(64, 64, 5, -3, rng, False, lambda x, y: 0.1 + 0.3 * x * y + 0.2 * x)
    return Scene(pos[None], tri, None, 64, 64, "grid_pixel_centres")


@_scene("6-px grid with vertices projecting exactly onto pixel centres but w in "
        "{0.5,1,2,4} per vertex (perspective-correct barycentrics), random diagonal per cell")
def grid_perspective():
    rng = np.random.default_rng(2)
    zf = lambda x, y: rng.uniform(-0.5, 0.5, size=x.shape)  # noqa: E731
    pos, tri = _grid(64, 64, 6, -2, rng, True, zf)
    return Scene(pos[None], tri, None, 64, 64, "grid_perspective")


@_scene("12 large random tilted triangles (w in [0.7,1.5]) overlapping at different "
        "depths, many interpenetrating pairs (depth crossings inside triangles)")
def overlap_depth():
    rng = np.random.default_rng(3)
    pos, tri = _soup(rng, 12, xy=1.3, zr=0.8, wr=(0.7, 1.5))
    return Scene(pos[None], tri, None, 64, 64, "overlap_depth")


@_scene("exact depth ties: a stack of overlapping constant-depth (z/w=0.25) triangles with "
        "w powers of two, both windings, a permuted-vertex duplicate, an identical duplicate "
        "of a sloped triangle, over a z/w=0.5 background: the smaller index must win")
def depth_ties():
    c = 0.25
    tris = []
    # 0: sloped triangle; 4: identical duplicate (larger index must lose)
    sloped = _ndc_tri([(-0.9, -0.9, 0.1), (0.8, -0.7, 0.3), (-0.2, 0.9, 0.2)], w=(1.0, 1.5, 0.8))
    tris.append(sloped)
    # 1..3: constant depth c, overlapping each other and the sloped one
    tris.append(_ndc_tri([(-0.7, -0.3, c), (0.9, 0.1, c), (0.0, 0.95, c)], w=(1.0, 2.0, 0.5)))
    tris.append(_ndc_tri([(-0.95, 0.6, c), (0.3, -0.95, c), (0.7, 0.8, c)], w=(4.0, 1.0, 2.0)))
    tris.append(_ndc_tri([(0.6, -0.8, c), (-0.6, -0.1, c), (0.95, 0.5, c)], w=(0.5, 0.5, 1.0)))
    tris.append(sloped)
    # 5: permuted (reversed winding) duplicate of triangle 2
    t2 = tris[2]
    tris.append([t2[0], t2[2], t2[1]])
    # 6: background
    tris.append(_ndc_tri([(-3, -3, 0.5), (3, -3, 0.5), (0, 3, 0.5)]))
    pos, tri = _tri_list(tris)
    return Scene(pos[None], tri, None, 64, 64, "depth_ties")


@_scene("perspective camera (near 0.1) with a floor and a wall extending behind the camera "
        "(vertices with w<0), triangles with one and with two vertices behind the camera, "
        "a triangle entirely behind whose x/w,y/w land on screen (must not draw)")
def behind_camera():
    P = perspective(70.0, 1.0, 0.1, 20.0)
    world = [
        # floor y=-1, z from -15 (front) to +4 (behind)
        [(-6, -1, -15), (6, -1, -15), (6, -1, 4)],
        [(-6, -1, -15), (6, -1, 4), (-6, -1, 4)],
        # wall x=1.2, from z=-10 to z=+5
        [(1.2, -1, -10), (1.2, 2, -10), (1.2, 2, 5)],
        [(1.2, -1, -10), (1.2, 2, 5), (1.2, -1, 5)],
        # one vertex behind (upper left)
        [(-0.9, 0.2, -2.0), (-0.2, 0.6, -2.5), (-0.5, 0.4, 1.0)],
        # two vertices behind (lower right)
        [(0.3, -0.5, -1.5), (0.2, 0.3, 1.0), (0.9, -0.2, 2.0)],
        # all behind, projecting onto the screen (x/w, y/w in range)
        [(-0.3, -0.3, 2.0), (0.3, -0.3, 2.0), (0.0, 0.4, 3.0)],
        # ceiling strip passing over the camera
        [(-3, 0.8, -6), (3, 0.8, -6), (0, 0.8, 6)],
    ]
    pos, tri = _tri_list([to_clip(P, t) for t in world])
    return Scene(pos[None], tri, None, 64, 64, "behind_camera")


@_scene("clip-space triangles crossing the near plane, the far plane, both; entirely "
        "beyond far / before near; all-w<0 'ghost' with |z|<|w| (x/w,y/w on screen, must not "
        "draw); constant z/w=-1 exactly on the near plane (inclusive); far-plane background")
def near_far_clip():
    tris = [
        _ndc_tri([(-0.9, -0.8, -1.6), (0.7, -0.6, 0.3), (-0.1, 0.8, -0.2)], w=(1.0, 1.5, 0.8)),
        _ndc_tri([(-0.8, 0.9, 1.4), (0.9, 0.5, 0.6), (0.2, -0.9, 0.9)], w=(0.7, 1.0, 2.0)),
        _ndc_tri([(-1.5, 0.0, -1.5), (1.5, 0.2, 1.5), (0.0, -1.4, 0.0)], w=(1.0, 2.5, 1.2)),
        _ndc_tri([(-0.5, -0.5, 1.1), (0.5, -0.5, 1.2), (0.0, 0.5, 1.3)]),
        _ndc_tri([(-0.5, -0.5, -1.1), (0.5, -0.5, -1.2), (0.0, 0.5, -1.3)]),
        # ghost: every w < 0, |z| < |w|; GL clips it away entirely (z < -w)
        [[0.3, 0.3, 0.5, -1.0], [-0.5, 0.2, 0.2, -1.2], [0.1, -0.6, -0.3, -0.9]],
        # exactly on the near plane, z = -w
        _ndc_tri([(0.3, 0.2, -1.0), (0.95, 0.4, -1.0), (0.5, 0.95, -1.0)], w=(1.0, 2.0, 0.5)),
        # huge w range, crossing the near plane with w from negative to positive
        [[-4.0, -4.0, -5.0, -4.0], [3.0, -1.0, 4.0, 5.0], [-1.0, 5.0, 2.0, 3.0]],
        # background just inside the far plane
        _ndc_tri([(-3, -3, 0.98), (3, -3, 0.98), (0, 3, 0.98)]),
    ]
    pos, tri = _tri_list(tris)
    return Scene(pos[None], tri, None, 64, 64, "near_far_clip")


@_scene("off-screen triangles (each side, and one whose bbox covers the screen but not its "
        "pixels), guard-band-size coordinates (|x/w| up to 500), degenerate triangles in front "
        "of a background: collinear through pixel centres, repeated vertex, all-equal vertices, "
        "projectively degenerate (plane through the eye), zero-area along a pixel row")
def offscreen_degenerate():
    z = -0.5
    px = lambda j: _pix_ndc(j, 64)  # noqa: E731
    tris = [
        _ndc_tri([(-1.8, -0.5, 0.0), (-1.1, 0.0, 0.1), (-1.5, 0.6, 0.2)]),   # left
        _ndc_tri([(1.1, -0.5, 0.0), (1.8, 0.0, 0.1), (1.5, 0.6, 0.2)]),      # right
        _ndc_tri([(-0.5, 1.2, 0.0), (0.5, 1.1, 0.1), (0.0, 1.9, 0.2)]),      # top
        _ndc_tri([(-0.5, -1.2, 0.0), (0.5, -1.1, 0.1), (0.0, -1.9, 0.2)]),   # bottom
        _ndc_tri([(-3.0, 0.9, 0.0), (0.9, -3.0, 0.0), (-3.0, -3.0, 0.0)]),   # around a corner, misses
        # huge: edge through the screen, vertices hundreds of viewports away
        _ndc_tri([(-500.0, -499.9, 0.3), (500.0, 500.1, 0.3), (-500.0, 500.1, 0.3)]),
        # collinear, line through pixel centres (diagonal)
        _ndc_tri([(px(2), px(4), z), (px(20), px(22), z), (px(40), px(42), z)]),
        # repeated vertex
        _ndc_tri([(px(5), px(50), z), (px(5), px(50), z), (px(30), px(60), z)]),
        # all equal
        _ndc_tri([(px(10), px(10), z)] * 3),
        # zero-area along pixel row 33
        _ndc_tri([(px(1), px(33), z), (px(60), px(33), z), (px(30), px(33), z)]),
    ]
    # projectively degenerate: v1 = 3 * v0 in clip space (same ray), plane through the eye
    v0 = np.array([0.2, -0.3, -0.1, 1.0])
    tris.append([v0, 3.0 * v0, [-0.6, 0.5, 0.1, 1.5]])
    tris.append(_ndc_tri([(-0.9, -0.4, z), (0.6, -0.35, z), (0.6, -0.33, z)]))  # legit sliver
    tris.append(_ndc_tri([(-3, -3, 0.8), (3, -3, 0.8), (0, 3, 0.8)], w=(1.0, 1.0, 1.0)))  # background
    pos, tri = _tri_list(tris)
    return Scene(pos[None], tri, None, 64, 64, "offscreen_degenerate")


@_scene("300 random triangles of all sizes, w in [0.5,2], z/w in [-0.9,0.9], some "
        "partly off-screen")
def random_soup():
    rng = np.random.default_rng(5)
    a = _soup(rng, 200, xy=1.2)
    b = _soup(rng, 100, xy=1.1, size=(0.02, 0.3))
    pos, tri = _concat([a, b])
    return Scene(pos[None], tri, None, 64, 64, "random_soup")


@_scene("400 tiny triangles (0.05-2 px) scattered around pixel centres: some cover one "
        "centre, most cover none")
def tiny_triangles():
    rng = np.random.default_rng(6)
    pos, tri = _soup(rng, 400, xy=0.95, size=(0.0015, 0.03), wr=(0.8, 1.2), zspread=0.01)
    return Scene(pos[None], tri, None, 64, 64, "tiny_triangles")


@_scene("icosphere (subdivision 3, 1280 faces) intersecting a coarser icosphere (80 faces), "
        "perspective projection + look-at camera, 96x96")
def icosphere_scene():
    v1, f1 = icosphere(3)
    v2, f2 = icosphere(1)
    v2 = 0.55 * v2 + np.array([0.7, 0.5, 0.4])
    mvp = perspective(40.0, 1.0, 0.5, 10.0) @ look_at((2.2, 1.3, 2.6), (0.1, 0.0, 0.0))
    pos, tri = _concat([(to_clip(mvp, v1), f1), (to_clip(mvp, v2), f2)])
    return Scene(pos[None], tri, None, 96, 96, "icosphere")


def _batch_views():
    v, f = icosphere(2)
    cams = [
        perspective(45.0, 1.0, 0.5, 10.0) @ look_at((2.5, 1.0, 2.0), (0, 0, 0)),
        # close: the near plane cuts the sphere
        perspective(60.0, 1.0, 0.6, 10.0) @ look_at((0.9, 0.8, 0.9), (0, 0, 0)) @ rotation((1, 2, 3), 0.7),
        # inside the sphere, close to its surface, wide angle: many visible triangles
        # have a vertex behind the camera (w < 0)
        perspective(110.0, 1.0, 0.05, 5.0) @ look_at((0.8, 0.1, 0.3), (1.0, 0.8, 0.0)),
    ]
    return v, f, cams


@_scene("instanced batch B=3 sharing the icosphere topology (320 faces) with different "
        "vertex positions per view: outside, near-plane cutting the sphere, camera inside")
def batch_instanced():
    v, f, cams = _batch_views()
    pos = np.stack([to_clip(m, v) for m in cams])
    return Scene(pos, f, None, 64, 64, "batch_instanced")


@_scene("range mode: pos [V,4]; tri = icosphere (320) + 60-triangle soup; ranges "
        "[[0,320],[320,60],[150,200]] (the last overlaps both), ids are global")
def range_mode():
    v, f, cams = _batch_views()
    rng = np.random.default_rng(8)
    soup = _soup(rng, 60, xy=1.1, size=(0.05, 0.5))
    pos, tri = _concat([(to_clip(cams[0], v), f), soup])
    ranges = np.array([[0, 320], [320, 60], [150, 200]], dtype=np.int32)
    return Scene(pos, tri, ranges, 64, 64, "range_mode")


@_scene("range mode corner cases: an empty range (count 0), a single-triangle range in the "
        "middle of tri, and a range covering all triangles; 32x32")
def range_small():
    tris = [
        _ndc_tri([(-0.9, -0.9, 0.2), (0.9, -0.8, 0.1), (0.0, 0.9, 0.3)]),
        _ndc_tri([(-0.5, 0.9, -0.2), (0.9, 0.7, 0.4), (0.1, -0.7, 0.0)], w=(1.0, 2.0, 0.5)),
        _ndc_tri([(-0.8, -0.1, -0.5), (0.3, -0.9, -0.4), (0.7, 0.8, -0.3)]),
    ]
    pos, tri = _tri_list(tris)
    ranges = np.array([[0, 0], [1, 1], [0, 3]], dtype=np.int32)
    return Scene(pos, tri, ranges, 32, 32, "range_small")


@_scene("non-square 48x80 (H x W): perspective soup with aspect-corrected projection plus "
        "an axis-aligned grid near pixel centres; catches swapped X/Y or H/W")
def nonsquare():
    H, W = 48, 80
    rng = np.random.default_rng(9)
    soup = _soup(rng, 120, xy=1.1, size=(0.05, 0.6))
    grid = _grid(H, W, 8, 2, rng, False, lambda x, y: 0.7 + 0.1 * x - 0.05 * y)
    v, f = icosphere(1)
    mvp = perspective(50.0, W / H, 0.5, 10.0) @ look_at((0.0, 0.5, 3.0), (0.5, 0.0, 0.0))
    pos, tri = _concat([soup, grid, (to_clip(mvp, 0.8 * v), f)])
    return Scene(pos[None], tri, None, H, W, "nonsquare")


_GENERATORS = [
    grid_pixel_centres, grid_perspective, overlap_depth, depth_ties, behind_camera,
    near_far_clip, offscreen_degenerate, random_soup, tiny_triangles, icosphere_scene,
    batch_instanced, range_mode, range_small, nonsquare,
]
# key descriptions by scene name (icosphere_scene -> "icosphere")
DESCRIPTIONS["icosphere"] = DESCRIPTIONS.pop("icosphere_scene")


@functools.lru_cache(maxsize=1)
def _all():
    out = []
    for g in _GENERATORS:
        s = g()
        assert s.tri.dtype == np.int32 and s.pos.dtype == np.float32
        if s.ranges is not None:
            assert s.ranges.dtype == np.int32 and s.pos.ndim == 2
        out.append(s)
    return tuple(out)


def all_scenes():
    return list(_all())


def scene_names():
    return [s.name for s in _all()]


def get_scene(name):
    for s in _all():
        if s.name == name:
            return s
    raise KeyError(name)
