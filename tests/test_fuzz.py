"""Property-based abuse: random shapes, dtypes, indices and values thrown at the ops must give
either a clean Python exception (ValueError, TypeError, IndexError, RuntimeError) or a valid
output. A crash or an out-of-bounds read would take the test process down."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rastlit

CLEAN = (ValueError, TypeError, IndexError, RuntimeError)

special_floats = st.sampled_from([0.0, 1.0, -1.0, 1e-30, -1e-30, 1e30, -1e30, math.inf, -math.inf, math.nan, 0.5])


@st.composite
def rasterize_args(draw):
    mode = draw(st.sampled_from(["instanced", "range"]))
    V = draw(st.integers(0, 12))
    B = draw(st.integers(0, 3))
    T = draw(st.integers(0, 10))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int32]))
    shape = (B, V, 4) if mode == "instanced" else (V, 4)
    if draw(st.booleans()):
        shape = shape[:-1] + (draw(st.integers(0, 5)),)
    n = math.prod(shape)
    vals = draw(st.lists(st.one_of(st.floats(-3, 3, allow_nan=False, width=32), special_floats), min_size=n, max_size=n))
    pos = torch.tensor(vals, dtype=torch.float64).reshape(shape)
    pos = pos.to(dtype) if dtype.is_floating_point else pos.round().to(dtype)
    idx_lo, idx_hi = draw(st.sampled_from([(0, max(V - 1, 0)), (-3, V + 3), (-(2**31), 2**31 - 1)]))
    tri_cols = draw(st.sampled_from([3, 3, 3, 2, 4]))
    tri_vals = draw(st.lists(st.integers(idx_lo, idx_hi), min_size=T * tri_cols, max_size=T * tri_cols))
    tri_dtype = draw(st.sampled_from([torch.int32, torch.int32, torch.int64]))
    tri = torch.tensor(tri_vals, dtype=torch.int64).reshape(T, tri_cols).to(tri_dtype)
    ranges = None
    if mode == "range" or draw(st.integers(0, 9)) == 0:
        nb = draw(st.integers(0, 3))
        rv = draw(st.lists(st.integers(-2, T + 2), min_size=2 * nb, max_size=2 * nb))
        ranges = torch.tensor(rv, dtype=torch.int32).reshape(nb, 2)
    H = draw(st.sampled_from([1, 2, 7, 16, 33, 0, -4, 20000]))
    W = draw(st.sampled_from([1, 3, 8, 17, 0, 20000]))
    return pos, tri, ranges, H, W


def _check_valid_rast(rast, db, tri_count):
    assert rast.shape == db.shape and rast.shape[-1] == 4
    ids = rast[..., 3]
    assert bool((ids >= 0).all()) and bool((ids <= tri_count).all())
    assert bool((ids == ids.round()).all())
    cov = ids > 0
    assert bool(torch.isfinite(rast[..., :3][cov]).all())
    assert bool((rast[~cov] == 0).all()) and bool((db[~cov] == 0).all())
    z = rast[..., 2][cov]
    assert bool((z >= -1).all() and (z <= 1).all())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rasterize_args())
def test_rasterize_fuzz_clean_error_or_valid_output(args):
    pos, tri, ranges, H, W = args
    try:
        rast, db = rastlit.rasterize(pos, tri, (H, W), ranges=ranges)
    except CLEAN as e:
        assert str(e)  # a message, naming what was wrong
        return
    _check_valid_rast(rast, db, tri.shape[0])
    # The accepted call also interpolates and backpropagates cleanly.
    attr = torch.ones(pos.shape[-2], 2, dtype=pos.dtype)
    out, _ = rastlit.interpolate(attr, rast, tri)
    assert out.shape == rast.shape[:-1] + (2,)
    covered = rast[..., 3] > 0
    if covered.any():
        finite_uv = torch.isfinite(rast[..., :2][covered]).all()
        if finite_uv:
            torch.testing.assert_close(out[covered], torch.ones_like(out[covered]), rtol=1e-3, atol=1e-3)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 3),  # B
    st.integers(1, 6),  # H
    st.integers(1, 6),  # W
    st.lists(st.one_of(st.floats(-5, 5, allow_nan=False), special_floats), min_size=4, max_size=4),
    st.integers(-3, 6),  # id written into one pixel
    st.sampled_from([None, [0], [0, 1], [5], [-1]]),
    st.booleans(),
)
def test_interpolate_fuzz_clean_error_or_valid_output(B, H, W, vals, bad_id, diff, with_db):
    T, V = 3, 5
    tri = torch.tensor([[0, 1, 2], [2, 3, 4], [0, 2, 4]], dtype=torch.int32)
    rast = torch.zeros(B, H, W, 4)
    if B > 0:
        rast[0, 0, 0] = torch.tensor(vals[:2] + [0.0, float(bad_id)])
    db = torch.full((B, H, W, 4), vals[2]) if with_db else None
    attr = torch.randn(V, 2)
    try:
        out, da = rastlit.interpolate(attr, rast, tri, db, diff_attrs=diff)
    except CLEAN as e:
        assert str(e)
        return
    assert out.shape == (B, H, W, 2)
    assert B == 0 or 0 <= bad_id <= T
