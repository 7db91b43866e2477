"""Slow, float64 NumPy reference rasterizer used as a test oracle.

This deliberately works in a different way from a fast scanline or tile
rasterizer:

* every triangle is clipped in homogeneous clip space against the near plane
  (z >= -w) and the far plane (z <= w) with Sutherland-Hodgman,
* the clipped polygon is projected to the screen, and pixel centres are tested
  against it with edge functions, in pixel units, over the polygon's bounding
  box,
* perspective-correct barycentrics come from intersecting each pixel's ray
  with the ORIGINAL (unclipped) triangle: solve ``M b' = (x, y, 1)`` with
  ``M = [[x0 x1 x2], [y0 y1 y2], [w0 w1 w2]]`` and normalise ``b = b' / sum(b')``,
* ``rast_db`` uses the ANALYTIC derivative of that closed form (quotient
  rule on ``b'(x, y)``, which is affine in x and y), then the chain rule
  dx/dX = 2/W and dy/dY = 2/H.  ``test_reference_db_matches_finite_differences``
  checks it against (Richardson-extrapolated) central finite differences.
* a clipped vertex at w = 0 (possible only where z = 0 too, where the near
  and far planes meet) is a point at infinity; the polygon is additionally cut
  at w = 1e-9 * scale, ~1e9 viewports away, so on-screen edges keep their
  exact directions (GL agrees: it draws such unbounded projections).

Conventions match rastlit / nvdiffrast: ``rast[..., :] = (u, v, z/w, id + 1)``
with u = b0 and v = b1, row 0 = bottom row (y_ndc = -1), pixel centre
``x_ndc = (2j + 1)/W - 1`` and ``y_ndc = (2i + 1)/H - 1``, global triangle ids,
the smallest z/w wins, exact depth ties go to the smaller triangle index, no
culling, degenerate triangles cover nothing.

Ambiguity
---------
Where the right answer depends on rounding or on the fill rule, the pixel is
flagged in the returned ``ambiguous`` mask and oracles must not compare its
triangle id.  For every triangle, each pixel of its bounding box is one of:

* *definite*: the centre lies inside the clipped projected polygon by more than
  ``edge_tol_px`` pixels from every edge, using the polygon clipped with the
  clip planes that the triangle crosses tightened by ``clip_tol``
  (|z| <= (1 - clip_tol) w), and its depth is below 1 - clip_tol;
* *maybe*: not definite, but within ``edge_tol_px`` of the polygon clipped with
  the crossed planes loosened by ``clip_tol`` (|z| <= (1 + clip_tol) w), or of
  the segment(s) of a degenerate triangle, or at depth >= 1 - clip_tol (GL's
  GL_LESS test against the cleared depth 1.0 drops fragments on the far plane);
* *out*: neither.

This is sound: if every vertex of the projected polygon moves by at most
``edge_tol_px`` (fixed-point snapping in GPU rasterizers moves them by about
1/512 px), then no centre more than ``edge_tol_px`` away from the boundary
changes side.  The ideal winner is the definite candidate of smallest depth
(ties exactly equal in float64 go to the smaller index).  A pixel is ambiguous
when

* some *maybe* candidate could win (depth <= best + tol; exact ties with a
  larger index cannot win), including the case that there is no definite
  candidate at all, or
* another definite candidate has a depth within ``depth_tol * max(1, |best|)``
  of the best one without being exactly equal to it.

A triangle whose visible part reaches the eye point x = y = z = w = 0 (only
possible with raw clip-space input whose z is 0 where w is 0) has an
ill-defined projection; every pixel it may touch is ambiguous (``touches_eye``).

Exact equality of float64 depths happens for duplicated triangles and for
triangles whose three vertices have the same z/w (a constant-depth plane: its
depth is returned as exactly that constant); those ties are resolved by index
and are not ambiguous.
"""

from __future__ import annotations

import math

import numpy as np

try:  # the cube-map reference at the end is in torch; the rasterizer oracles need only NumPy
    import torch
except ImportError:  # pragma: no cover
    torch = None

__all__ = [
    "reference_rasterize",
    "reference_interpolate",
    "clip_polygon",
    "touches_eye",
    "triangle_pixels",
    "compare_rast",
    "exact_at",
    "compare_values",
    "to_numpy",
    "views_of",
    "reference_texture_cube",
    "cube_lookup",
]


def to_numpy(x, dtype=None):
    """Accept numpy arrays, lists or torch tensors."""
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    return x


def views_of(pos, tri, ranges=None):
    """Yield (vertex_positions [V,4] float64, first_global_triangle_index, triangles)."""
    pos = to_numpy(pos, np.float64)
    tri = to_numpy(tri, np.int64).reshape(-1, 3)
    ranges = to_numpy(ranges, np.int64)
    if pos.ndim == 3:
        if ranges is not None:
            raise ValueError("ranges are only allowed with pos of shape [V, 4]")
        for b in range(pos.shape[0]):
            yield pos[b], 0, tri
    elif pos.ndim == 2:
        if ranges is None:
            yield pos, 0, tri
        else:
            ranges = ranges.reshape(-1, 2)
            for start, count in ranges:
                start, count = int(start), int(count)
                yield pos, start, tri[start:start + count]
    else:
        raise ValueError("pos must be [B,V,4] or [V,4]")


# ---------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------

def clip_polygon(verts, slack=0.0, cut_infinity=True):
    """Sutherland-Hodgman clip of a triangle/polygon in homogeneous clip space.

    ``verts`` is [n, 4] (x, y, z, w).  Keeps the part with
    ``-w <= z <= w`` (both inclusive; together they imply w >= 0).  A plane
    that the input polygon actually crosses (some vertex strictly outside,
    some inside) is moved by ``slack``: ``-(1 + slack) w <= z <= (1 + slack) w``
    (slack > 0 loosens, slack < 0 tightens), to bracket the rounding of the
    intersection points computed by a float32 clipper.  A plane with every
    vertex inside (on it counts as inside) clips nothing, exactly; a plane with
    every vertex strictly outside discards the polygon, exactly: the sign of
    z + w and w - z of float32 inputs is computed exactly.
    Returns an [m, 4] array (m may be 0).
    """
    s = 1.0 + slack
    poly = np.asarray(verts, dtype=np.float64).reshape(-1, 4)
    planes = (
        (lambda p: p[..., 2] + p[..., 3], lambda p: p[..., 2] + s * p[..., 3]),  # near
        (lambda p: p[..., 3] - p[..., 2], lambda p: s * p[..., 3] - p[..., 2]),  # far
    )
    exact = [d(poly) for d, _ in planes]
    for (exact_d, slack_d), e in zip(planes, exact):
        if np.all(e >= 0):
            continue
        if np.all(e < 0):
            return np.zeros((0, 4))
    pts = list(poly)
    for (exact_d, dist), e in zip(planes, exact):
        if not pts:
            break
        if np.all(e >= 0):
            continue
        out = []
        n = len(pts)
        for k in range(n):
            a = pts[k]
            b = pts[(k + 1) % n]
            da = dist(a)
            db = dist(b)
            if da >= 0:
                out.append(a)
            if (da >= 0) != (db >= 0):
                t = da / (da - db)
                out.append(a + t * (b - a))
        pts = out
    poly_out = np.array(pts, dtype=np.float64).reshape(-1, 4)
    # The near and far planes only meet at z = w = 0, so a clipped vertex can lie
    # at w = 0 (x, y != 0): a point at infinity, e.g. a triangle with z = 0
    # everywhere and w changing sign.  Its projection is unbounded (GL draws it).
    # Cut it at w = eps, ~1e9 viewports away, which leaves the on-screen edges
    # (their directions) unchanged.
    eps = 1e-9 * max(float(np.abs(poly[:, [0, 1, 3]]).max()), 1e-300)
    if cut_infinity and len(poly_out) and np.any(poly_out[:, 3] < eps):
        d = poly_out[:, 3] - eps
        out = []
        n = len(poly_out)
        for k in range(n):
            a, b = poly_out[k], poly_out[(k + 1) % n]
            if d[k] >= 0:
                out.append(a)
            if (d[k] >= 0) != (d[(k + 1) % n] >= 0):
                t = d[k] / (d[k] - d[(k + 1) % n])
                out.append(a + t * (b - a))
        poly_out = np.array(out, dtype=np.float64).reshape(-1, 4)
    return poly_out


def _project(poly, H, W):
    """Clip-space polygon -> screen coordinates in pixels (pixel centre j+0.5)."""
    w = poly[:, 3]
    if np.any(w <= 0):
        # Only possible for a polygon touching the eye point (z = w = 0).
        return None
    X = (poly[:, 0] / w + 1.0) * (0.5 * W)
    Y = (poly[:, 1] / w + 1.0) * (0.5 * H)
    P = np.stack([X, Y], axis=1)
    # drop consecutive duplicates
    keep = []
    for k in range(len(P)):
        if not keep or not np.array_equal(P[k], P[keep[-1]]):
            keep.append(k)
    if len(keep) > 1 and np.array_equal(P[keep[0]], P[keep[-1]]):
        keep.pop()
    return P[keep]


def _segment_distance(P, cx, cy):
    """Distance from points (cx, cy) (arrays) to the closed polyline P [n,2]."""
    d = np.full(np.broadcast(cx, cy).shape, np.inf)
    n = len(P)
    if n == 1:
        return np.hypot(cx - P[0, 0], cy - P[0, 1])
    for k in range(n):
        a = P[k]
        b = P[(k + 1) % n]
        ex, ey = b[0] - a[0], b[1] - a[1]
        L2 = ex * ex + ey * ey
        if L2 == 0:
            dk = np.hypot(cx - a[0], cy - a[1])
        else:
            t = np.clip(((cx - a[0]) * ex + (cy - a[1]) * ey) / L2, 0.0, 1.0)
            dk = np.hypot(cx - (a[0] + t * ex), cy - (a[1] + t * ey))
        d = np.minimum(d, dk)
    return d


def _signed_area(P):
    if len(P) < 3:
        return 0.0
    x, y = P[:, 0], P[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _inside_convex(P, cx, cy, area):
    """Strict inside test for a convex polygon with signed area ``area``."""
    sgn = 1.0 if area > 0 else -1.0
    inside = np.ones(np.broadcast(cx, cy).shape, dtype=bool)
    n = len(P)
    for k in range(n):
        a = P[k]
        b = P[(k + 1) % n]
        e = (b[0] - a[0]) * (cy - a[1]) - (b[1] - a[1]) * (cx - a[0])
        inside &= sgn * e > 0
    return inside


def _is_degenerate(P):
    if P is None or len(P) < 3:
        return True
    ext = max(float(np.ptp(P[:, 0])), float(np.ptp(P[:, 1])), 1.0)
    return abs(_signed_area(P)) <= 1e-12 * ext * ext


def touches_eye(v, rel=1e-3):
    """True if the part of the triangle between the near and far planes comes
    within ``rel`` (relative to the largest vertex coordinate) of the 4D origin
    x = y = z = w = 0, where the near and far planes meet.  Its projection is
    then ill-defined (points near the eye project anywhere) and float32
    clippers, GL included, produce garbage.  Never happens with a projection
    matrix whose z row has a non-zero offset (z_clip = B != 0 at w = 0).
    """
    v = np.asarray(v, np.float64).reshape(-1, 4)
    poly = clip_polygon(v, 0.0, cut_infinity=False)
    if len(poly) == 0:
        return False
    scale = float(np.abs(v).max())
    return bool(np.abs(poly).max(axis=1).min() <= rel * scale)


def triangle_pixels(v, H, W, edge_tol_px=0.02, clip_tol=1e-6):
    """Classify the pixels of one triangle.

    ``v`` is [3,4] clip-space vertices.  Returns None when no pixel can be
    touched, else a dict with the pixel index box (i0, i1, j0, j1; half-open),
    boolean arrays ``definite`` and ``maybe`` over that box, the pixel
    centres' screen coordinates, and whether the triangle is degenerate.
    """
    outer = clip_polygon(v, slack=+clip_tol)
    if len(outer) == 0:
        return None
    if touches_eye(v):
        # ill-defined projection: whatever it covers is ambiguous
        cy, cx = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
        return dict(i0=0, i1=H, j0=0, j1=W, cx=cx, cy=cy, definite=np.zeros((H, W), bool),
                    maybe=np.ones((H, W), bool), degenerate=True)
    P_out = _project(outer, H, W)
    if P_out is None or len(P_out) == 0:
        return None
    tol = edge_tol_px
    xmin, xmax = P_out[:, 0].min() - tol, P_out[:, 0].max() + tol
    ymin, ymax = P_out[:, 1].min() - tol, P_out[:, 1].max() + tol
    # pixel j has centre j + 0.5
    j0 = max(int(np.ceil(xmin - 0.5)), 0)
    j1 = min(int(np.floor(xmax - 0.5)), W - 1) + 1
    i0 = max(int(np.ceil(ymin - 0.5)), 0)
    i1 = min(int(np.floor(ymax - 0.5)), H - 1) + 1
    if j0 >= j1 or i0 >= i1:
        return None
    cy, cx = np.meshgrid(np.arange(i0, i1) + 0.5, np.arange(j0, j1) + 0.5, indexing="ij")

    # "maybe" region: within tol of the loosened polygon (or its segments).
    degenerate = _is_degenerate(P_out)
    d_out = _segment_distance(P_out, cx, cy)
    if degenerate:
        near_out = d_out <= tol
    else:
        near_out = _inside_convex(P_out, cx, cy, _signed_area(P_out)) | (d_out <= tol)

    # "definite" region: inside the tightened polygon by more than tol.
    definite = np.zeros_like(near_out)
    if not degenerate:
        inner = clip_polygon(v, slack=-clip_tol)
        P_in = _project(inner, H, W) if len(inner) else None
        if P_in is not None and not _is_degenerate(P_in):
            area = _signed_area(P_in)
            definite = _inside_convex(P_in, cx, cy, area) & (_segment_distance(P_in, cx, cy) > tol)
    maybe = near_out & ~definite
    if not (definite.any() or maybe.any()):
        return None
    return dict(i0=i0, i1=i1, j0=j0, j1=j1, cx=cx, cy=cy,
                definite=definite, maybe=maybe, degenerate=degenerate)


def _barycentrics(v, cx, cy, H, W):
    """Perspective-correct barycentrics, depth and analytic pixel derivatives.

    Returns (b [...,3], depth [...], db [...,3,2]) where db[..., i, 0] is
    d b_i / dX and db[..., i, 1] is d b_i / dY (X, Y in pixels).  Returns None
    if the triangle's plane passes through the eye (M singular).
    """
    M = np.array([[v[0, 0], v[1, 0], v[2, 0]],
                  [v[0, 1], v[1, 1], v[2, 1]],
                  [v[0, 3], v[1, 3], v[2, 3]]], dtype=np.float64)
    scale = np.abs(M).max()
    if scale == 0:
        return None
    det = np.linalg.det(M / scale)
    if abs(det) < 1e-14:
        return None
    Minv = np.linalg.inv(M)
    x = (2.0 * cx) / W - 1.0  # cx already includes the +0.5
    y = (2.0 * cy) / H - 1.0
    # b'_i = A_i0 x + A_i1 y + A_i2  (affine in x, y)
    bp = Minv[:, 0] * x[..., None] + Minv[:, 1] * y[..., None] + Minv[:, 2]
    S = bp.sum(-1)
    b = bp / S[..., None]
    # quotient rule: d(b'_i/S)/dx = (A_i0 S - b'_i sum_j A_j0) / S^2
    sx = Minv[:, 0].sum()
    sy = Minv[:, 1].sum()
    dbx = (Minv[:, 0] * S[..., None] - bp * sx) / (S * S)[..., None]
    dby = (Minv[:, 1] * S[..., None] - bp * sy) / (S * S)[..., None]
    db = np.stack([dbx * (2.0 / W), dby * (2.0 / H)], axis=-1)
    zw = v[:, 2] / v[:, 3] if np.all(v[:, 3] != 0) else None
    if zw is not None and zw[0] == zw[1] == zw[2]:
        depth = np.full(S.shape, zw[0])  # constant-depth plane: exact
    else:
        depth = (b @ v[:, 2]) / (b @ v[:, 3])
    return b, depth, db


# ---------------------------------------------------------------------------
# Public reference functions
# ---------------------------------------------------------------------------

def reference_rasterize(pos, tri, H, W, ranges=None, edge_tol_px=0.02, depth_tol=1e-6,
                        clip_tol=1e-6, return_possible=False):
    """Reference rasterization.

    Returns ``(rast, rast_db, ambiguous)``: float64 [B,H,W,4], float64
    [B,H,W,4] = (du/dX, du/dY, dv/dX, dv/dY), bool [B,H,W].  With
    ``return_possible`` also a list (one per view) of dicts mapping each
    ambiguous pixel (i, j) to the set of ids + 1 that may legitimately win
    there (0 = background, possible only without a definite candidate).
    """
    H, W = int(H), int(W)
    views = list(views_of(pos, tri, ranges))
    B = len(views)
    rast = np.zeros((B, H, W, 4))
    rast_db = np.zeros((B, H, W, 4))
    ambiguous = np.zeros((B, H, W), dtype=bool)
    possible = []
    for bi, (P, start, T) in enumerate(views):
        best_d = np.full((H, W), np.inf)
        best_id = np.full((H, W), -1, dtype=np.int64)
        cands = []
        for k, t in enumerate(T):
            gid = start + k
            v = P[t]
            info = triangle_pixels(v, H, W, edge_tol_px, clip_tol)
            if info is None:
                continue
            bc = _barycentrics(v, info["cx"], info["cy"], H, W)
            if bc is None:
                # plane through the eye: projects to a segment; only "maybe".
                info["definite"][:] = False
                depth = np.full(info["cx"].shape, -np.inf)  # could win anywhere
            else:
                b, depth, db = bc
                # GL compares window depth with GL_LESS against the cleared 1.0, so
                # fragments at (or within rounding of) the far plane may be dropped
                # although the far plane is inclusive for clipping: ambiguous.
                at_far = info["definite"] & ~(depth < 1.0 - clip_tol)
                if at_far.any():
                    info["maybe"] |= at_far
                    info["definite"] &= ~at_far
            sl = (slice(info["i0"], info["i1"]), slice(info["j0"], info["j1"]))
            cands.append((gid, sl, info["definite"], info["maybe"], depth))
            if bc is None:
                continue
            dm = info["definite"] & (depth < best_d[sl])
            if dm.any():
                bd = best_d[sl]
                bd[dm] = depth[dm]
                best_id[sl][dm] = gid
                r = rast[bi][sl]
                r[dm, 0] = b[dm, 0]
                r[dm, 1] = b[dm, 1]
                r[dm, 2] = depth[dm]
                r[dm, 3] = gid + 1
                g = rast_db[bi][sl]
                g[dm, 0] = db[dm, 0, 0]
                g[dm, 1] = db[dm, 0, 1]
                g[dm, 2] = db[dm, 1, 0]
                g[dm, 3] = db[dm, 1, 1]
        # second pass: ambiguity
        amb = ambiguous[bi]
        poss = {}
        for gid, sl, definite, maybe, depth in cands:
            bd = best_d[sl]
            bid = best_id[sl]
            tol = depth_tol * np.maximum(1.0, np.abs(np.where(np.isfinite(bd), bd, 0.0)))
            not_winner = bid != gid
            finite = np.isfinite(depth)
            exact_loser = (depth == bd) & (gid > bid) & (bid >= 0)
            can_win = ~finite | ((depth <= bd + tol) & ~exact_loser)
            a_maybe = maybe & not_winner & can_win
            a_def = definite & not_winner & (~finite | ((depth != bd) & (depth <= bd + tol)))
            amb[sl] |= a_maybe | a_def
            if return_possible:
                cand_pix = np.argwhere(a_maybe | a_def)
                for i, j in cand_pix:
                    poss.setdefault((i + sl[0].start, j + sl[1].start), set()).add(gid + 1)
        if return_possible:
            for (i, j), ids in poss.items():
                ids.add(int(best_id[i, j]) + 1)  # the definite winner, or 0 = background
            possible.append({(int(i), int(j)): ids for (i, j), ids in poss.items()})
    if return_possible:
        return rast, rast_db, ambiguous, possible
    return rast, rast_db, ambiguous


def reference_interpolate(attr, rast, tri, rast_db=None, diff_attrs=None):
    """Reference attribute interpolation.

    ``attr`` [B,V,A] or [V,A]; ``rast`` [B,H,W,4]; ``tri`` [T,3] (global ids).
    Returns (out [B,H,W,A], out_da [B,H,W,2*len(diff_attrs)] or None).
    ``diff_attrs`` is a list of attribute indices or 'all'.
    """
    attr = to_numpy(attr, np.float64)
    rast = to_numpy(rast, np.float64)
    tri = to_numpy(tri, np.int64).reshape(-1, 3)
    B, H, W, _ = rast.shape
    if attr.ndim == 2:
        attr = np.broadcast_to(attr, (B,) + attr.shape)
    A = attr.shape[-1]
    ids = np.rint(rast[..., 3]).astype(np.int64) - 1
    cov = ids >= 0
    u, v = rast[..., 0], rast[..., 1]
    out = np.zeros((B, H, W, A))
    a0 = np.zeros((B, H, W, A))
    a1 = np.zeros((B, H, W, A))
    a2 = np.zeros((B, H, W, A))
    for b in range(B):
        c = cov[b]
        t = tri[ids[b][c]]
        a0[b][c] = attr[b][t[:, 0]]
        a1[b][c] = attr[b][t[:, 1]]
        a2[b][c] = attr[b][t[:, 2]]
    out = u[..., None] * a0 + v[..., None] * a1 + (1.0 - u - v)[..., None] * a2
    out[~cov] = 0.0
    out_da = None
    if rast_db is not None and diff_attrs is not None:
        rast_db = to_numpy(rast_db, np.float64)
        idx = list(range(A)) if (isinstance(diff_attrs, str) and diff_attrs == "all") else list(diff_attrs)
        cols = []
        for k in idx:
            e0 = a0[..., k] - a2[..., k]
            e1 = a1[..., k] - a2[..., k]
            cols.append(rast_db[..., 0] * e0 + rast_db[..., 2] * e1)  # d/dX
            cols.append(rast_db[..., 1] * e0 + rast_db[..., 3] * e1)  # d/dY
        out_da = np.stack(cols, axis=-1) if cols else np.zeros((B, H, W, 0))
        out_da[~cov] = 0.0
    return out, out_da


# ---------------------------------------------------------------------------
# Comparison helper shared by the tests and the report script
# ---------------------------------------------------------------------------

def compare_rast(test, ref, ambiguous, test_db=None, ref_db=None, possible=None):
    """Compare a rasterization ``test`` against ``ref`` (both [B,H,W,4]).

    Ids are compared outside ``ambiguous``; u, v, z/w wherever both ids agree
    and are non-zero; rast_db (if given) where ids agree, are non-zero and the
    pixel is not ambiguous, as error relative to max(|ref_db| over the pixel's
    4 components, 1e-6).  With ``possible`` (from ``reference_rasterize(...,
    return_possible=True)``) also counts ambiguous pixels whose id in ``test``
    is none of the possible winners (``implausible``).
    Returns a dict of counts and maxima.
    """
    test = to_numpy(test, np.float64)
    ref = to_numpy(ref, np.float64)
    amb = to_numpy(ambiguous, bool)
    tid = np.rint(test[..., 3]).astype(np.int64)
    rid = np.rint(ref[..., 3]).astype(np.int64)
    same = tid == rid
    mism = (~same) & (~amb)
    both = same & (rid > 0)
    r = dict(
        pixels=int(rid.size),
        covered=int((rid > 0).sum()),
        ambiguous=int(amb.sum()),
        id_mismatch=int(mism.sum()),
        compared=int(both.sum()),
    )
    for name, c in (("du", 0), ("dv", 1), ("dz", 2)):
        r["max_" + name] = float(np.abs(test[..., c] - ref[..., c])[both].max()) if both.any() else 0.0
    r["nonfinite"] = int((~np.isfinite(test)).sum())
    if possible is not None:
        bad = []
        for b, poss in enumerate(possible):
            for (i, j), ids in poss.items():
                if amb[b, i, j] and int(tid[b, i, j]) not in ids:
                    bad.append(((b, i, j), int(tid[b, i, j]) - 1, sorted(k - 1 for k in ids)))
        r["implausible"] = len(bad)
        if bad:
            r["first_implausible"] = bad[:5]
    if mism.any():
        where = np.argwhere(mism)[:5]
        r["first_mismatches"] = [
            (tuple(int(q) for q in w), int(tid[tuple(w)]) - 1, int(rid[tuple(w)]) - 1) for w in where
        ]
    if test_db is not None and ref_db is not None:
        tdb = to_numpy(test_db, np.float64)
        rdb = to_numpy(ref_db, np.float64)
        m = both & ~amb
        scale = np.maximum(np.abs(rdb).max(-1, keepdims=True), 1e-6)
        rel = np.abs(tdb - rdb) / scale
        r["max_db_rel"] = float(rel[m].max()) if m.any() else 0.0
        r["db_compared"] = int(m.sum())
        r["db_nonzero_background"] = int((np.abs(tdb[tid == 0]) > 0).sum())
    return r


def exact_at(pos, tri, H, W, rast, ranges=None):
    """Exact values for the triangle each pixel CLAIMS.

    For every pixel whose id in ``rast`` (any rasterizer's output) is
    non-zero, evaluate in float64 the perspective-correct (u, v, z/w) and
    rast_db of that very triangle at the pixel centre, plus the magnitude of
    the screen gradients (max |rast_db| over the pixel, and
    max(|d(z/w)/dX|, |d(z/w)/dY|)).  This checks values also on ambiguous
    pixels, whichever triangle won there.

    Returns (vals [B,H,W,3], db [B,H,W,4], uv_grad [B,H,W], z_grad [B,H,W],
    invalid [B,H,W], undefined [B,H,W]); ``invalid`` marks claimed ids
    outside the view's triangle range (always an error), ``undefined`` claimed
    triangles whose plane contains the eye (degenerate on screen: no defined
    barycentrics; such a claim can only be right on an ambiguous pixel, which
    the id comparison checks); values there are NaN.
    """
    rast = to_numpy(rast, np.float64)
    B = rast.shape[0]
    vals = np.full((B, H, W, 3), np.nan)
    dbo = np.full((B, H, W, 4), np.nan)
    uvg = np.zeros((B, H, W))
    zg = np.zeros((B, H, W))
    invalid = np.zeros((B, H, W), dtype=bool)
    undefined = np.zeros((B, H, W), dtype=bool)
    views = list(views_of(pos, tri, ranges))
    assert len(views) == B, (len(views), B)
    for bi, (P, start, T) in enumerate(views):
        ids = np.rint(rast[bi, ..., 3]).astype(np.int64) - 1
        for gid in np.unique(ids[ids >= 0]):
            m = ids == gid
            if not (start <= gid < start + len(T)):
                invalid[bi][m] = True
                continue
            v = P[T[gid - start]]
            i, j = np.nonzero(m)
            with np.errstate(all="ignore"):
                out = _barycentrics(v, j + 0.5, i + 0.5, H, W)
            if out is None:
                undefined[bi][m] = True
                continue
            b, depth, db = out
            bw = b @ v[:, 3]
            bz = b @ v[:, 2]
            dzx = (db[:, :, 0] @ v[:, 2] * bw - bz * (db[:, :, 0] @ v[:, 3])) / (bw * bw)
            dzy = (db[:, :, 1] @ v[:, 2] * bw - bz * (db[:, :, 1] @ v[:, 3])) / (bw * bw)
            vals[bi, i, j] = np.stack([b[:, 0], b[:, 1], depth], -1)
            d4 = np.stack([db[:, 0, 0], db[:, 0, 1], db[:, 1, 0], db[:, 1, 1]], -1)
            dbo[bi, i, j] = d4
            uvg[bi, i, j] = np.abs(d4).max(-1)
            zg[bi, i, j] = np.maximum(np.abs(dzx), np.abs(dzy))
    return vals, dbo, uvg, zg, invalid, undefined


def compare_values(test, exact, test_db=None, tol=1e-4, grad_tol_px=2e-5, db_rel_tol=1e-3, mask=None):
    """Check a rasterizer's (u, v, z/w) [and rast_db] against ``exact_at``.

    A value passes when |test - exact| <= tol + grad_tol_px * |gradient| (the
    second term is what evaluating at a point ``grad_tol_px`` pixels away from
    the centre costs: float32 rasterizers lose that much on sub-pixel or
    nearly edge-on triangles).  rast_db passes when its error relative to
    max(|exact rast_db| over the pixel) is <= db_rel_tol.  ``mask`` (bool
    [B,H,W]) restricts the comparison to those pixels.
    Returns a dict with counts and maxima.
    """
    test = to_numpy(test, np.float64)
    vals, edb, uvg, zg, invalid, undefined = exact
    cov = (np.rint(test[..., 3]) > 0) & ~invalid & ~undefined
    if mask is not None:
        cov &= to_numpy(mask, bool)
    err = np.abs(test[..., :3] - vals)
    lim = np.stack([tol + grad_tol_px * uvg] * 2 + [tol + grad_tol_px * zg], -1)
    bad = (err > lim) | ~np.isfinite(err)
    bad &= cov[..., None]
    r = dict(values_compared=int(cov.sum()), invalid_claims=int(invalid.sum()),
             undefined_claims=int(undefined.sum()),
             max_du=float(err[..., 0][cov].max()) if cov.any() else 0.0,
             max_dv=float(err[..., 1][cov].max()) if cov.any() else 0.0,
             max_dz=float(err[..., 2][cov].max()) if cov.any() else 0.0,
             max_err_over_limit=float((err / lim)[cov].max()) if cov.any() else 0.0,
             values_bad=int(bad.any(-1).sum()))
    if bad.any():
        w = np.argwhere(bad.any(-1))[:3]
        r["first_bad_values"] = [(tuple(int(q) for q in p), test[tuple(p)][:3].tolist(), vals[tuple(p)].tolist())
                                 for p in w]
    if test_db is not None:
        tdb = to_numpy(test_db, np.float64)
        scale = np.maximum(np.abs(edb).max(-1, keepdims=True), 1e-6)
        rel = np.abs(tdb - edb) / scale
        relc = rel[cov]
        r["max_db_rel"] = float(relc.max()) if relc.size else 0.0
        r["db_bad"] = int(((relc > db_rel_tol) | ~np.isfinite(relc)).any(-1).sum())
    return r


# ------------------------------------------------------------------------------ cube-map texture
#
# An independent float64 reference for texture(..., boundary_mode='cube'), in torch (so that it is
# differentiable by autograd) and written differently from the kernel:
#
# * each face is described by vectors (outward normal N, s axis U, t axis V); a direction d selects
#   the face maximizing d.N (first maximum: x before y before z on ties) and has s = 0.5 + 0.5 d.U /
#   d.N, t = 0.5 + 0.5 d.V / d.N (OpenGL's table of sc, tc, ma, which nvdiffrast follows);
# * seams: each face is padded with a one-texel border. A border texel is found by putting its
#   centre on the face's plane (beyond the edge) and looking that 3D point up as a direction with
#   nearest filtering; a border corner is the mean of its three neighbours in the padded face (the
#   corner rule). Bilinear filtering then runs on the padded face with no special cases;
# * the level of detail takes d(s, t)/d dir from autograd and the largest eigenvalue of J^T J
#   from torch.linalg.eigvalsh.

CUBE_FACE_FRAMES = (  # (N, U, V) for +x, -x, +y, -y, +z, -z
    ((1, 0, 0), (0, 0, -1), (0, -1, 0)),
    ((-1, 0, 0), (0, 0, 1), (0, -1, 0)),
    ((0, 1, 0), (1, 0, 0), (0, 0, 1)),
    ((0, -1, 0), (1, 0, 0), (0, 0, -1)),
    ((0, 0, 1), (1, 0, 0), (0, -1, 0)),
    ((0, 0, -1), (-1, 0, 0), (0, -1, 0)),
)


def _cube_frames(dtype=torch.float64):
    f = torch.tensor(CUBE_FACE_FRAMES, dtype=dtype)  # [6, 3 (N, U, V), 3]
    return f[:, 0], f[:, 1], f[:, 2]


def cube_lookup(d):
    """(face, s, t) of directions ``d`` [..., 3]: face int64, s and t differentiable in d."""
    N, U, V = _cube_frames(d.dtype)
    dn = d @ N.T  # [..., 6]
    face = dn.argmax(-1)
    nsel, usel, vsel = N[face], U[face], V[face]
    den = (d * nsel).sum(-1)
    s = 0.5 + 0.5 * (d * usel).sum(-1) / den
    t = 0.5 + 0.5 * (d * vsel).sum(-1) / den
    return face, s, t


def _cube_border_index(n):
    """For an n x n face: [6, n+2, n+2, 3] (face, row, col) of the texel each padded-grid cell
    reads (-1 for the four corners)."""
    N, U, V = (x.numpy() for x in _cube_frames())
    idx = np.full((6, n + 2, n + 2, 3), -1, dtype=np.int64)
    for f in range(6):
        for pi in range(n + 2):
            for pj in range(n + 2):
                i, j = pi - 1, pj - 1
                iout, jout = not 0 <= i < n, not 0 <= j < n
                if iout and jout:
                    continue
                if not iout and not jout:
                    idx[f, pi, pj] = (f, i, j)
                    continue
                # the texel centre on the face's plane, beyond the edge, looked up as a direction
                p = N[f] + U[f] * (2 * (j + 0.5) / n - 1) + V[f] * (2 * (i + 0.5) / n - 1)
                face, s, t = cube_lookup(torch.tensor(p))
                jj = min(max(int(math.floor(float(s) * n)), 0), n - 1)
                ii = min(max(int(math.floor(float(t) * n)), 0), n - 1)
                idx[f, pi, pj] = (int(face), ii, jj)
    return idx


def cube_pad(level):
    """[B,6,n,n,C] -> [B,6,n+2,n+2,C] with the seam border and the corner rule."""
    n = level.shape[2]
    idx = torch.from_numpy(_cube_border_index(n))
    ok = idx[..., 0] >= 0
    safe = idx.clamp(min=0)
    padded = level[:, safe[..., 0], safe[..., 1], safe[..., 2]]  # [B,6,n+2,n+2,C]
    padded = padded * ok[None, ..., None].to(level.dtype)
    for ci, cj, di, dj in ((0, 0, 1, 1), (0, n + 1, 1, -1), (n + 1, 0, -1, 1), (n + 1, n + 1, -1, -1)):
        mean = (padded[:, :, ci + di, cj] + padded[:, :, ci, cj + dj] + padded[:, :, ci + di, cj + dj]) / 3
        padded = padded.clone()
        padded[:, :, ci, cj] = mean
    return padded


def cube_pyramid(tex, levels):
    out = [tex]
    for _ in range(levels):
        t = out[-1]
        B, _, n, _, C = t.shape
        out.append(t.reshape(B, 6, n // 2, 2, n // 2, 2, C).mean(dim=(3, 5)))
    return out


def _cube_bilinear(padded, tb, face, s, t):
    """Bilinear lookups in padded levels: padded [TB,6,n+2,n+2,C]; tb, face [P]; s, t [P]."""
    n = padded.shape[2] - 2
    x, y = s * n + 0.5, t * n + 0.5  # padded texel space (centre of texel j at j + 1)
    j0, i0 = x.detach().floor().long(), y.detach().floor().long()
    fx, fy = (x - j0)[:, None], (y - i0)[:, None]
    j0, i0 = j0.clamp(0, n), i0.clamp(0, n)

    def at(i, j):
        return padded[tb, face, i, j]

    return ((1 - fy) * ((1 - fx) * at(i0, j0) + fx * at(i0, j0 + 1))
            + fy * ((1 - fx) * at(i0 + 1, j0) + fx * at(i0 + 1, j0 + 1)))


def reference_texture_cube(tex, uv, uv_da=None, bias=None, filter_mode="linear", max_mip_level=None):
    """Cube-map lookup in float64: tex [TB,6,S,S,C], uv [B,H,W,3], uv_da [B,H,W,6], bias [B,H,W].
    Differentiable (autograd) in tex and uv (and uv_da, bias through the level blend)."""
    tex = tex.double()
    d = uv.double()
    B, H, W, _ = d.shape
    TB, _, S, _, C = tex.shape
    d = d.reshape(-1, 3)
    P = d.shape[0]
    tb = torch.arange(P) // (H * W) if TB > 1 else torch.zeros(P, dtype=torch.long)
    valid = torch.isfinite(d).all(-1) & (d != 0).any(-1)
    dsafe = torch.where(valid[:, None], d, torch.ones_like(d))
    face, s, t = cube_lookup(dsafe)
    out = tex.new_zeros(P, C)
    if filter_mode == "nearest":
        j = (s.detach() * S).floor().long().clamp(0, S - 1)
        i = (t.detach() * S).floor().long().clamp(0, S - 1)
        out = tex[tb, face, i, j]
        return torch.where(valid[:, None], out, torch.zeros_like(out)).reshape(B, H, W, C)
    num_levels = 1
    if "mipmap" in filter_mode:
        num_levels = int(math.log2(S)) + 1
        if max_mip_level is not None:
            num_levels = min(num_levels, max_mip_level + 1)
    levels = cube_pyramid(tex, num_levels - 1)
    lod = d.new_zeros(P)
    if "mipmap" in filter_mode:
        if uv_da is not None:
            da = uv_da.double().reshape(-1, 3, 2)  # [P, component, (X, Y)]
            # d(s, t)/d dir by autograd (pixels are independent, so the gradient of the sum is
            # per pixel), kept in the graph so that the lod is differentiable in the direction
            with torch.enable_grad():
                dd = dsafe if dsafe.requires_grad else dsafe.detach().requires_grad_()
                _, s2, t2 = cube_lookup(dd)
                gs = torch.autograd.grad(s2.sum(), dd, create_graph=True)[0]
                gt = torch.autograd.grad(t2.sum(), dd, create_graph=True)[0]
            J = torch.stack([(gs[:, :, None] * da).sum(1), (gt[:, :, None] * da).sum(1)], 1) * S  # [P, 2 (s,t), 2 (X,Y)]
            lam = torch.linalg.eigvalsh(J.transpose(1, 2) @ J)[:, -1]
            lod = 0.5 * torch.log2(lam)
        if bias is not None:
            lod = lod + bias.double().reshape(-1)
        lod = torch.nan_to_num(lod, nan=0.0, neginf=0.0).clamp(0, num_levels - 1)
    l0 = lod.detach().floor().long().clamp(0, num_levels - 1)
    samples = torch.stack([_cube_bilinear(cube_pad(L), tb, face, s, t) for L in levels], 0)  # [L, P, C]
    rows = torch.arange(P)
    a = samples[l0, rows]
    if filter_mode == "linear-mipmap-linear":
        l1 = (l0 + 1).clamp(max=num_levels - 1)
        frac = (lod - l0)[:, None]
        out = a + frac * (samples[l1, rows] - a)
    else:
        out = a
    return torch.where(valid[:, None], out, torch.zeros_like(out)).reshape(B, H, W, C)
