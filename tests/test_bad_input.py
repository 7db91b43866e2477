"""Bad input, argument by argument, at every public entry point (issue 15).

Each case states the exception type and the argument its message must name. Then: the
normalisation layer under hypothesis (a value either round-trips exactly or raises), and the
valid inputs that used to be refused (float64 meshes, 1/2/4-channel colours, max_mip_level=0).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rastlit
import rastlit.compat.nvdiffrast as dr
from rastlit import _limits
from rastlit import nn as rnn
from rastlit.camera import PerspectiveCamera
from rastlit.mesh import Mesh, uv_sphere

# ----------------------------------------------------------------------------------- inputs


def _scene():
    pos = torch.tensor([[[-0.8, -0.7, 0.1, 1.0], [0.9, -0.6, 0.2, 1.5], [0.1, 0.8, 0.3, 1.2]]])
    tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
    rast, db = rastlit.rasterize(pos, tri, (8, 8))
    return pos, tri, rast, db


POS, TRI, RAST, DB = _scene()
RANGES = torch.tensor([[0, 1]], dtype=torch.int32)
TEX = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(0))
UV = torch.rand(1, 8, 8, 2, generator=torch.Generator().manual_seed(1))
UV_DA = torch.full((1, 8, 8, 4), 0.3)
COLOR = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(2))
CTX = dr.RasterizeCudaContext()


def _mesh():
    return uv_sphere(8, 12)


def _cams(dtype=torch.float32):
    return PerspectiveCamera.orbit(2, radius=3.0, resolution=(16, 16)).to(dtype=dtype)


def _peel(*args, **kw):
    with rastlit.DepthPeeler(*args, **kw) as p:
        return p.rasterize_next_layer()


def _dr_peel(*args, **kw):
    with dr.DepthPeeler(CTX, *args, **kw) as p:
        return p.rasterize_next_layer()


# Entry points taking a resolution, as functions of it.
RESOLUTION_ENTRIES = {
    "rasterize": lambda r: rastlit.rasterize(POS, TRI, r),
    "rasterize_soft": lambda r: rastlit.rasterize_soft(POS, TRI, r),
    "DepthPeeler": lambda r: rastlit.DepthPeeler(POS, TRI, r),
    "nn.Rasterize": lambda r: rnn.Rasterize(r),
    "nn.DepthPeel": lambda r: rnn.DepthPeel(r, 2),
    "nn.SoftRasterize": lambda r: rnn.SoftRasterize(r),
    "nn.MeshRenderer": lambda r: rnn.MeshRenderer(r),
    "compat.rasterize": lambda r: dr.rasterize(CTX, POS, TRI, r),
    "compat.DepthPeeler": lambda r: dr.DepthPeeler(CTX, POS, TRI, r),
}
BAD_RESOLUTIONS = [
    ("string", "64", TypeError),
    ("fraction", (32.5, 8), TypeError),
    ("almost int", (8, 8.000001), TypeError),
    ("float tensor", torch.tensor([8.5, 8.0]), TypeError),
    ("integral float", (8.0, 8), TypeError),
    ("inf", (math.inf, 8), TypeError),
    ("nan", (8, math.nan), TypeError),
    ("None", None, TypeError),
    ("bool", (True, 8), TypeError),
    ("one side", (8,), ValueError),
    ("three sides", (8, 8, 8), ValueError),
    ("zero", (0, 8), ValueError),
    ("too large", (8, 16385), ValueError),
]

# Entry points with tensor arguments: (entry, argument name, call with that argument replaced).
TENSOR_ARGS = [
    ("rasterize", "pos", lambda x: rastlit.rasterize(x, TRI, (8, 8))),
    ("rasterize", "tri", lambda x: rastlit.rasterize(POS, x, (8, 8))),
    ("rasterize", "ranges", lambda x: rastlit.rasterize(POS[0], TRI, (8, 8), ranges=x)),
    ("interpolate", "attr", lambda x: rastlit.interpolate(x, RAST, TRI)),
    ("interpolate", "rast", lambda x: rastlit.interpolate(POS, x, TRI)),
    ("interpolate", "tri", lambda x: rastlit.interpolate(POS, RAST, x)),
    ("interpolate", "rast_db", lambda x: rastlit.interpolate(POS, RAST, TRI, x, diff_attrs=[0])),
    ("texture", "tex", lambda x: rastlit.texture(x, UV)),
    ("texture", "uv", lambda x: rastlit.texture(TEX, x)),
    ("texture", "uv_da", lambda x: rastlit.texture(TEX, UV, uv_da=x, filter_mode="linear-mipmap-linear")),
    ("texture", "mip_level_bias", lambda x: rastlit.texture(TEX, UV, mip_level_bias=x,
                                                            filter_mode="linear-mipmap-nearest")),
    ("texture_construct_mip", "tex", lambda x: rastlit.texture_construct_mip(x)),
    ("antialias", "color", lambda x: rastlit.antialias(x, RAST, POS, TRI)),
    ("antialias", "rast", lambda x: rastlit.antialias(COLOR, x, POS, TRI)),
    ("antialias", "pos", lambda x: rastlit.antialias(COLOR, RAST, x, TRI)),
    ("antialias", "tri", lambda x: rastlit.antialias(COLOR, RAST, POS, x)),
    ("antialias", "topology_hash", lambda x: rastlit.antialias(COLOR, RAST, POS, TRI, topology_hash=x)),
    ("antialias_construct_topology_hash", "tri", lambda x: rastlit.antialias_construct_topology_hash(x)),
    ("rasterize_soft", "pos", lambda x: rastlit.rasterize_soft(x, TRI, (8, 8))),
    ("rasterize_soft", "tri", lambda x: rastlit.rasterize_soft(POS, x, (8, 8))),
    ("rasterize_soft", "ranges", lambda x: rastlit.rasterize_soft(POS[0], TRI, (8, 8), ranges=x)),
    ("DepthPeeler", "pos", lambda x: _peel(x, TRI, (8, 8))),
    ("DepthPeeler", "tri", lambda x: _peel(POS, x, (8, 8))),
    ("DepthPeeler", "ranges", lambda x: _peel(POS[0], TRI, (8, 8), ranges=x)),
    ("nn.Rasterize", "pos", lambda x: rnn.Rasterize((8, 8))(x, TRI)),
    ("nn.Interpolate", "attr", lambda x: rnn.Interpolate()(x, RAST, TRI)),
    ("nn.Texture", "tex", lambda x: rnn.Texture()(x, UV)),
    ("nn.Texture", "uv", lambda x: rnn.Texture()(TEX, x)),
    ("nn.Antialias", "color", lambda x: rnn.Antialias()(x, RAST, POS, TRI)),
    ("nn.SoftRasterize", "pos", lambda x: rnn.SoftRasterize((8, 8))(x, TRI)),
    ("nn.DepthPeel", "pos", lambda x: rnn.DepthPeel((8, 8), 2)(x, TRI)),
    ("compat.rasterize", "pos", lambda x: dr.rasterize(CTX, x, TRI, (8, 8))),
    ("compat.rasterize", "ranges", lambda x: dr.rasterize(CTX, POS[0], TRI, (8, 8), ranges=x)),
    ("compat.interpolate", "attr", lambda x: dr.interpolate(x, RAST, TRI)),
    ("compat.interpolate", "rast_db", lambda x: dr.interpolate(POS, RAST, TRI, rast_db=x, diff_attrs=[0])),
    ("compat.texture", "tex", lambda x: dr.texture(x, UV)),
    ("compat.texture_construct_mip", "tex", lambda x: dr.texture_construct_mip(x)),
    ("compat.antialias", "color", lambda x: dr.antialias(x, RAST, POS, TRI)),
    ("compat.antialias_construct_topology_hash", "tri", lambda x: dr.antialias_construct_topology_hash(x)),
    ("compat.DepthPeeler", "pos", lambda x: _dr_peel(x, TRI, (8, 8))),
    ("compat.DepthPeeler", "ranges", lambda x: _dr_peel(POS[0], TRI, (8, 8), ranges=x)),
]
NOT_TENSORS = [("list", [[0.0, 1.0]]), ("float", 1.0), ("ndarray", np.zeros((1, 3, 4), np.float32))]
OPTIONAL = {"ranges", "rast_db", "uv_da", "mip_level_bias", "topology_hash"}


def _cases():
    """(id, call, exception type, text the message must contain)."""
    out = []
    for entry, call in RESOLUTION_ENTRIES.items():
        for label, value, exc in BAD_RESOLUTIONS:
            out.append((f"resolution-{entry}-{label}", lambda c=call, v=value: c(v), exc, "resolution"))
    for entry, name, call in TENSOR_ARGS:
        values = NOT_TENSORS + ([] if name in OPTIONAL else [("None", None)])
        for label, value in values:
            out.append((f"tensor-{entry}-{name}-{label}", lambda c=call, v=value: c(v), TypeError,
                        f"{name} must be a torch.Tensor"))

    # mip levels
    mml = [("fraction", 1.5, TypeError), ("string", "1", TypeError), ("bool", True, TypeError),
           ("float tensor", torch.tensor(1.0), TypeError), ("negative", -1, ValueError)]
    mml_entries = {
        "texture": lambda v: rastlit.texture(TEX, UV, UV_DA, max_mip_level=v),
        "texture_construct_mip": lambda v: rastlit.texture_construct_mip(TEX, v),
        "nn.Texture": lambda v: rnn.Texture(max_mip_level=v),
        "compat.texture": lambda v: dr.texture(TEX, UV, UV_DA, max_mip_level=v),
        "compat.texture_construct_mip": lambda v: dr.texture_construct_mip(TEX, v),
    }
    for entry, call in mml_entries.items():
        for label, value, exc in mml:
            out.append((f"max_mip_level-{entry}-{label}", lambda c=call, v=value: c(v), exc, "max_mip_level"))

    # index lists
    diffs = [("fraction", [0.5], TypeError), ("None entry", [None], TypeError), ("int", 0, TypeError),
             ("float entry", [0, 1.0], TypeError), ("string", "some", ValueError), ("set", {0}, TypeError)]
    diff_entries = {
        "interpolate": lambda v: rastlit.interpolate(POS, RAST, TRI, DB, diff_attrs=v),
        "nn.Interpolate": lambda v: rnn.Interpolate(v),
        "compat.interpolate": lambda v: dr.interpolate(POS, RAST, TRI, DB, diff_attrs=v),
    }
    for entry, call in diff_entries.items():
        for label, value, exc in diffs:
            out.append((f"diff_attrs-{entry}-{label}", lambda c=call, v=value: c(v), exc, "diff_attrs"))

    # scalars
    bad_numbers = [("string", "x", TypeError), ("None", None, TypeError), ("bool", True, TypeError),
                   ("list", [1.0], TypeError), ("nan", math.nan, ValueError), ("inf", math.inf, ValueError)]
    scalar_entries = [
        ("rasterize_soft", "sigma", lambda v: rastlit.rasterize_soft(POS, TRI, (8, 8), sigma=v)),
        ("rasterize_soft", "blur_radius", lambda v: rastlit.rasterize_soft(POS, TRI, (8, 8), blur_radius=v)),
        ("soft_blur_radius", "sigma", lambda v: rastlit.ops.soft_blur_radius(v)),
        ("nn.SoftRasterize", "sigma", lambda v: rnn.SoftRasterize((8, 8), sigma=v)),
        ("nn.SoftRasterize", "blur_radius", lambda v: rnn.SoftRasterize((8, 8), blur_radius=v)),
        ("antialias", "pos_gradient_boost", lambda v: rastlit.antialias(COLOR, RAST, POS, TRI, pos_gradient_boost=v)),
        ("nn.Antialias", "pos_gradient_boost", lambda v: rnn.Antialias(v)),
        ("compat.antialias", "pos_gradient_boost", lambda v: dr.antialias(COLOR, RAST, POS, TRI, pos_gradient_boost=v)),
        ("nn.MeshRenderer", "ambient", lambda v: rnn.MeshRenderer((8, 8), ambient=v)),
        ("nn.MeshRenderer", "specular", lambda v: rnn.MeshRenderer((8, 8), specular=v)),
        ("nn.MeshRenderer", "shininess", lambda v: rnn.MeshRenderer((8, 8), shininess=v)),
        ("nn.MeshRenderer", "pos_gradient_boost", lambda v: rnn.MeshRenderer((8, 8), pos_gradient_boost=v)),
        ("nn.MeshRenderer(soft=)", "sigma", lambda v: rnn.MeshRenderer((8, 8), silhouette="soft", soft={"sigma": v})),
    ]
    for entry, name, call in scalar_entries:
        for label, value, exc in bad_numbers:
            if name == "blur_radius" and value is None:
                continue  # None: the default, soft_blur_radius(sigma)
            out.append((f"{name}-{entry}-{label}", lambda c=call, v=value: c(v), exc, name))
    for entry, call in [("rasterize_soft", lambda v: rastlit.rasterize_soft(POS, TRI, (8, 8), sigma=v)),
                        ("nn.SoftRasterize", lambda v: rnn.SoftRasterize((8, 8), sigma=v))]:
        out.append((f"sigma-{entry}-zero", lambda c=call: c(0.0), ValueError, "sigma"))
    out.append(("blur_radius-rasterize_soft-negative", lambda: rastlit.rasterize_soft(POS, TRI, (8, 8), blur_radius=-1),
                ValueError, "blur_radius"))

    # counts
    counts = [("fraction", 2.5, TypeError), ("string", "2", TypeError), ("zero", 0, ValueError)]
    count_entries = [
        ("rasterize_soft", "faces_per_pixel", lambda v: rastlit.rasterize_soft(POS, TRI, (8, 8), faces_per_pixel=v)),
        ("nn.SoftRasterize", "faces_per_pixel", lambda v: rnn.SoftRasterize((8, 8), faces_per_pixel=v)),
        ("nn.DepthPeel", "num_layers", lambda v: rnn.DepthPeel((8, 8), v)),
    ]
    for entry, name, call in count_entries:
        for label, value, exc in counts:
            out.append((f"{name}-{entry}-{label}", lambda c=call, v=value: c(v), exc, name))

    # flags
    flag_entries = [
        ("rasterize", lambda v: rastlit.rasterize(POS, TRI, (8, 8), grad_db=v)),
        ("DepthPeeler", lambda v: rastlit.DepthPeeler(POS, TRI, (8, 8), grad_db=v)),
        ("nn.Rasterize", lambda v: rnn.Rasterize((8, 8), grad_db=v)),
        ("compat.rasterize", lambda v: dr.rasterize(CTX, POS, TRI, (8, 8), grad_db=v)),
    ]
    for entry, call in flag_entries:
        for label, value in [("string", "no"), ("None", None), ("tensor", torch.tensor([1, 0]))]:
            out.append((f"grad_db-{entry}-{label}", lambda c=call, v=value: c(v), TypeError, "grad_db"))
    out.append(("perspective_correct-rasterize_soft-string",
                lambda: rastlit.rasterize_soft(POS, TRI, (8, 8), perspective_correct="yes"), TypeError,
                "perspective_correct"))

    # colours
    colors = [("two values", (1.0, 2.0), ValueError), ("four values", (1.0, 0.0, 0.0, 1.0), ValueError),
              ("name", "red", TypeError), ("None", None, TypeError), ("string entry", (1.0, "a", 0.0), TypeError),
              ("nan entry", (0.0, math.nan, 0.0), ValueError), ("matrix", torch.zeros(3, 3), ValueError)]
    for name in ("background", "default_color"):
        for label, value, exc in colors:
            out.append((f"{name}-nn.MeshRenderer-{label}", lambda n=name, v=value: rnn.MeshRenderer((8, 8), **{n: v}),
                        exc, name))

    # modes and settings
    modes = [
        ("silhouette", lambda v: rnn.MeshRenderer((8, 8), silhouette=v)),
        ("shading", lambda v: rnn.MeshRenderer((8, 8), shading=v)),
        ("layout", lambda v: rnn.MeshRenderer((8, 8), layout=v)),
        ("filter_mode", lambda v: rnn.MeshRenderer((8, 8), filter_mode=v)),
        ("boundary_mode", lambda v: rnn.MeshRenderer((8, 8), boundary_mode=v)),
        ("filter_mode", lambda v: rnn.Texture(filter_mode=v)),
        ("filter_mode", lambda v: rastlit.texture(TEX, UV, filter_mode=v)),
        ("boundary_mode", lambda v: rastlit.texture(TEX, UV, boundary_mode=v)),
    ]
    for k, (name, call) in enumerate(modes):
        for label, value in [("unknown", "fast"), ("None", None), ("int", 3)]:
            out.append((f"{name}-{k}-{label}", lambda c=call, v=value: c(v), ValueError, name))
    out += [
        ("soft-nn.MeshRenderer-string", lambda: rnn.MeshRenderer((8, 8), silhouette="soft", soft="fast"), TypeError,
         "soft must be a dict"),
        ("soft-nn.MeshRenderer-unknown key", lambda: rnn.MeshRenderer((8, 8), silhouette="soft", soft={"fast": 1}),
         TypeError, "'fast'"),
        ("mesh-nn.MeshRenderer-forward", lambda: rnn.MeshRenderer((8, 8))([POS], _cams()), TypeError, "mesh must be"),
        ("cameras-nn.MeshRenderer-forward", lambda: rnn.MeshRenderer((8, 8))(_mesh(), POS), TypeError,
         "cameras must be"),
    ]

    # dtypes and values
    for entry, call in [("texture_construct_mip", rastlit.texture_construct_mip),
                        ("compat.texture_construct_mip", dr.texture_construct_mip)]:
        for dt in (torch.int32, torch.int64, torch.bool, torch.uint8):
            out.append((f"tex dtype-{entry}-{dt}", lambda c=call, d=dt: c(torch.zeros(1, 4, 4, 1, dtype=d)), TypeError,
                        "tex must be a floating-point tensor"))
    huge = lambda: rastlit.rasterize_soft(POS.expand(64, 3, 4), TRI, (16384, 16384), faces_per_pixel=128)  # noqa: E731
    out.append(("size-rasterize_soft", huge, ValueError, "faces_per_pixel=128"))
    out.append(("size-rasterize_soft-names resolution", huge, ValueError, "resolution (16384, 16384)"))
    out.append(("tiny-rasterize_soft", lambda: rastlit.rasterize_soft(POS * 1e-35, TRI, (8, 8)), ValueError,
                "pos holds a vertex whose largest"))
    out.append(("nan verts-nn.MeshRenderer(soft)", _nan_soft_render, ValueError, "mesh.verts holds NaN"))
    nan_cams = lambda: PerspectiveCamera(_cams().view * math.nan)  # noqa: E731
    out.append(("nan cameras-nn.MeshRenderer", lambda: rnn.MeshRenderer((16, 16))(_mesh(), nan_cams()), ValueError,
                "cameras hold NaN"))
    out.append(("nan cameras-nn.MeshRenderer(soft)", lambda: rnn.MeshRenderer((16, 16), silhouette="soft")(
        _mesh(), nan_cams(), lights=[]), ValueError, "cameras (view or projection) hold"))
    out.append(("eye-PerspectiveCamera.look_at-empty", lambda: PerspectiveCamera.look_at(torch.zeros(0, 3)), ValueError,
                "eye must hold at least one camera"))
    out.append(("view-PerspectiveCamera-empty", lambda: PerspectiveCamera(torch.zeros(0, 4, 4)), ValueError,
                "view must hold at least one camera"))
    out.append(("soft-nn.MeshRenderer-unused but invalid", lambda: rnn.MeshRenderer((8, 8), soft={"sigma": "x"}),
                TypeError, "sigma"))
    return out


def _nan_soft_render():
    m = _mesh()
    verts = m.verts.clone()
    verts[3, 1] = math.nan
    return rnn.MeshRenderer((16, 16), silhouette="soft")(Mesh(verts, m.faces), _cams())


CASES = _cases()


@pytest.mark.parametrize("call,exc,text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_raises_and_names_it(call, exc, text):
    with pytest.raises(Exception) as info:
        call()
    assert type(info.value) is exc or (isinstance(info.value, exc) and not isinstance(info.value, RuntimeError)), \
        f"{type(info.value).__name__}: {info.value}"
    assert text in str(info.value), str(info.value)


def test_size_check_happens_before_allocating():
    """The refused call would need tens of TiB: the size is computed from the arguments, not found
    by the allocator (which raises a RuntimeError naming none of them)."""
    need = rastlit.ops._soft_output_bytes(64, 16384, 16384, 128)
    assert need > 2**44
    with pytest.raises(ValueError, match=r"GiB for its outputs alone, more than the"):
        rastlit.rasterize_soft(POS.expand(64, 3, 4), TRI, (16384, 16384), faces_per_pixel=128)
    # within the machine's memory, the same resolution check passes through to the op
    out = rastlit.rasterize_soft(POS, TRI, (4, 4), faces_per_pixel=2)
    assert out.face_ids.shape == (1, 4, 4, 2)


# ------------------------------------------------------------------------------------- jax

JAX_CASES = [
    ("rasterize-resolution-string", lambda rj, p, t: rj.rasterize(p, t, "64"), TypeError, "resolution"),
    ("rasterize-resolution-fraction", lambda rj, p, t: rj.rasterize(p, t, (32.5, 8)), TypeError, "resolution"),
    ("rasterize-resolution-inf", lambda rj, p, t: rj.rasterize(p, t, (math.inf, 8)), TypeError, "resolution"),
    ("rasterize-grad_db", lambda rj, p, t: rj.rasterize(p, t, (8, 8), grad_db="no"), TypeError, "grad_db"),
    ("rasterize-pos-list", lambda rj, p, t: rj.rasterize([1.0], t, (8, 8)), TypeError, "pos must be"),
    ("depth_peel-num_layers", lambda rj, p, t: rj.depth_peel(p, t, (8, 8), 1.5), TypeError, "num_layers"),
    ("depth_peel-num_layers-zero", lambda rj, p, t: rj.depth_peel(p, t, (8, 8), 0), ValueError, "num_layers"),
    ("interpolate-diff_attrs-fraction", lambda rj, p, t: rj.interpolate(p, p[:, :1, None, :].repeat(8, 1)
                                                                       .repeat(8, 2), t, diff_attrs=[0.5]),
     TypeError, "diff_attrs"),
    ("texture-max_mip_level", lambda rj, p, t: rj.texture_construct_mip(_jnp().zeros((1, 4, 4, 1), "float32"), 1.5), TypeError,
     "max_mip_level"),
    ("antialias-pos_gradient_boost", lambda rj, p, t: rj.antialias(_jnp().zeros((1, 8, 8, 3), "float32"), _jnp().zeros((1, 8, 8, 4), "float32"),
                                                                   p, t, pos_gradient_boost="x"), TypeError,
     "pos_gradient_boost"),
]


def _jnp():
    import jax.numpy as jnp
    return jnp


@pytest.mark.parametrize("call,exc,text", [c[1:] for c in JAX_CASES], ids=[c[0] for c in JAX_CASES])
def test_jax_bad_argument_raises_and_names_it(call, exc, text):
    pytest.importorskip("jax")
    import rastlit.jax as rj
    jnp = _jnp()
    p, t = jnp.asarray(POS.numpy()), jnp.asarray(TRI.numpy())
    with pytest.raises(exc) as info:
        call(rj, p, t)
    assert text in str(info.value), str(info.value)


# --------------------------------------------------------------------- normalisation layer

_any_value = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=3), st.binary(max_size=2), st.complex_numbers(max_magnitude=10),
    st.integers(-1000, 1000).map(np.int64), st.floats(width=32).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64), st.integers(-(2**63), 2**63 - 1).map(torch.tensor),
    st.integers(-1000, 1000).map(torch.tensor), st.floats(-1e6, 1e6).map(lambda f: torch.tensor(f)),
    st.integers(-5, 5).map(lambda i: torch.tensor([i])), st.lists(st.integers(0, 4), max_size=3),
    st.booleans().map(torch.tensor), st.sampled_from(["nhwc", "nchw", "NHWC"]),
)


def _same_int(out, value) -> bool:
    return type(out) is int and out == int(value) and not isinstance(value, (bool, float))


@settings(max_examples=300, deadline=None)
@given(_any_value)
def test_integer_round_trips_or_raises(value):
    try:
        out = _limits.integer(value, "n")
    except (TypeError, ValueError) as e:
        assert "n must be" in str(e)
        return
    assert _same_int(out, value)
    if isinstance(value, torch.Tensor):
        assert not value.is_floating_point()


@settings(max_examples=300, deadline=None)
@given(st.one_of(_any_value, st.tuples(_any_value, _any_value), st.lists(st.integers(-2, 20000), max_size=3)))
def test_resolution_round_trips_or_raises(value):
    try:
        h, w = _limits.resolution(value)
    except (TypeError, ValueError) as e:
        assert "resolution" in str(e)
        return
    assert len(value) == 2 and _same_int(h, value[0]) and _same_int(w, value[1])
    assert 1 <= h <= _limits.MAX_RESOLUTION and 1 <= w <= _limits.MAX_RESOLUTION


@settings(max_examples=300, deadline=None)
@given(_any_value)
def test_number_round_trips_or_raises(value):
    try:
        out = _limits.number(value, "sigma")
    except (TypeError, ValueError) as e:
        assert "sigma must be" in str(e)
        return
    assert type(out) is float and math.isfinite(out)
    assert not isinstance(value, (bool, str, bytes))
    if isinstance(value, numbers.Integral) or (isinstance(value, torch.Tensor) and not value.is_floating_point()):
        assert out.is_integer() and int(out) == int(value)  # exact: no rounding of a huge int
    else:
        assert out == float(value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_any_value, st.lists(_any_value, max_size=4), st.tuples(st.floats(), st.floats(), st.floats())))
def test_color_round_trips_or_raises(value):
    try:
        out = _limits.color(value, "background")
    except (TypeError, ValueError) as e:
        assert "background" in str(e)
        return
    assert len(out) == 3 and all(type(c) is float and math.isfinite(c) for c in out)
    given_ = list(value) if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) == 1 else [value]
    assert len(given_) in (1, 3)
    assert all(o == float(v) for o, v in zip(out, given_ * 3 if len(given_) == 1 else given_))


@settings(max_examples=300, deadline=None)
@given(st.one_of(_any_value, st.lists(_any_value, max_size=3)), st.sampled_from([None, 0, 3]))
def test_diff_attrs_and_max_mip_level_round_trip_or_raise(value, num_attrs):
    try:
        out = _limits.diff_attrs(value, num_attrs)
    except (TypeError, ValueError) as e:
        assert "diff_attrs" in str(e)
    else:
        if value is None:
            assert out == []
        elif value == "all":
            assert out == ("all" if num_attrs is None else list(range(num_attrs)))
        else:
            assert [type(i) for i in out] == [int] * len(out) and out == [int(v) for v in value]
            assert num_attrs is None or all(0 <= i < num_attrs for i in out)
    try:
        lvl = _limits.max_mip_level(value)
    except (TypeError, ValueError) as e:
        assert "max_mip_level" in str(e)
    else:
        assert lvl is None if value is None else (_same_int(lvl, value) and lvl >= 0)


@settings(max_examples=300, deadline=None)
@given(_any_value)
def test_count_flag_and_choice_round_trip_or_raise(value):
    try:
        k = _limits.count(value, "faces_per_pixel", 1, 128)
    except (TypeError, ValueError) as e:
        assert "faces_per_pixel must be" in str(e)
    else:
        assert _same_int(k, value) and 1 <= k <= 128
    try:
        f = _limits.flag(value, "grad_db")
    except TypeError as e:
        assert "grad_db must be True or False" in str(e)
    else:
        assert f is bool(value) and (isinstance(value, bool) or value.dtype == torch.bool)
    try:
        c = _limits.choice(value, "layout", ("nhwc", "nchw"))
    except ValueError as e:
        assert "layout must be one of 'nhwc', 'nchw'" in str(e)
    else:
        assert c == value and type(c) is str


# ------------------------------------------------------ valid input that used to be refused


def test_max_mip_level_zero_is_linear_without_uv_da():
    for filt in ("linear-mipmap-linear", "linear-mipmap-nearest"):
        for bound in ("wrap", "clamp", "zero"):
            want = rastlit.texture(TEX, UV * 3 - 1, filter_mode="linear", boundary_mode=bound)
            got = rastlit.texture(TEX, UV * 3 - 1, filter_mode=filt, boundary_mode=bound, max_mip_level=0)
            assert torch.equal(got, want)
            assert torch.equal(dr.texture(TEX, UV * 3 - 1, filter_mode=filt, boundary_mode=bound, max_mip_level=0), want)
            layer = rnn.Texture(filter_mode=filt, boundary_mode=bound, max_mip_level=0)
            assert torch.equal(layer(TEX, UV * 3 - 1), want)
            # and with uv_da given, the level is 0 all the same
            assert torch.equal(rastlit.texture(TEX, UV * 3 - 1, UV_DA * 50, filter_mode=filt, boundary_mode=bound,
                                               max_mip_level=0), want)
    # the gradient reaches tex as in 'linear'
    t1, t2 = TEX.clone().requires_grad_(), TEX.clone().requires_grad_()
    rastlit.texture(t1, UV, filter_mode="linear-mipmap-linear", max_mip_level=0).sum().backward()
    rastlit.texture(t2, UV, filter_mode="linear").sum().backward()
    assert torch.equal(t1.grad, t2.grad)


def test_float64_mesh_renders_like_float32():
    m32 = _mesh()
    m64 = m32.to(dtype=torch.float64)
    verts = m64.verts.clone().requires_grad_(True)
    for silhouette in ("antialias", "soft", "none"):
        r = rnn.MeshRenderer((16, 16), silhouette=silhouette)
        o32 = r(m32, _cams())
        o64 = r(Mesh(verts, m64.faces, uv=m64.uv, uv_faces=m64.uv_faces), _cams())  # float32 cameras
        assert o64.rgb.dtype == torch.float64 and o64.alpha.dtype == torch.float64
        for k in ("rgb", "alpha", "depth", "normals", "mask"):
            torch.testing.assert_close(o64[k].float(), o32[k], atol=2e-4, rtol=1e-4, msg=k)
        verts.grad = None
        o64.rgb.sum().backward()
        assert verts.grad.dtype == torch.float64 and bool(torch.isfinite(verts.grad).all())
        assert verts.grad.abs().sum() > 0
    # float64 cameras with a float32 mesh: the mesh's dtype wins
    assert rnn.MeshRenderer((16, 16))(m32, _cams(torch.float64)).rgb.dtype == torch.float32


@pytest.mark.parametrize("where", ["vertex_colors", "texture"])
def test_colour_channels_1_2_3_4_render_consistently(where):
    m = _mesh()
    g = torch.Generator().manual_seed(3)
    n = m.num_verts if where == "vertex_colors" else None
    base = torch.rand((n, 4) if n else (8, 8, 4), generator=g)

    def render(c):
        kw = {"vertex_colors": c} if where == "vertex_colors" else {"texture": c}
        mesh = Mesh(m.verts, m.faces, uv=m.uv, uv_faces=m.uv_faces, **kw)
        return rnn.MeshRenderer((16, 16), shading="unlit")(mesh, _cams()).rgb

    grey = base[..., :1]
    rgb_of_grey = render(grey.expand(*grey.shape[:-1], 3).contiguous())
    assert torch.equal(render(grey.contiguous()), rgb_of_grey)  # 1: grey
    assert torch.equal(render(base[..., :2].contiguous()), rgb_of_grey)  # 2: grey + alpha
    rgb = render(base[..., :3].contiguous())
    assert torch.equal(render(base), rgb)  # 4: RGBA, alpha not drawn
    assert not torch.equal(rgb, rgb_of_grey)


def test_mesh_rejects_colours_without_channels():
    m = _mesh()
    with pytest.raises(ValueError, match=r"Mesh.vertex_colors must have shape \[V=\d+,C\] with C >= 1"):
        Mesh(m.verts, m.faces, vertex_colors=torch.zeros(m.num_verts, 0))
    with pytest.raises(ValueError, match="Mesh.texture must be non-empty"):
        Mesh(m.verts, m.faces, uv=m.uv, uv_faces=m.uv_faces, texture=torch.zeros(4, 4, 0))


def test_integer_valued_arguments_are_still_accepted():
    """Exact integers in any integer form: numpy ints, 0-d integer tensors."""
    a, _ = rastlit.rasterize(POS, TRI, (np.int64(8), torch.tensor(8)))
    assert torch.equal(a, RAST)
    a, _ = rastlit.rasterize(POS, TRI, torch.tensor([8, 8], dtype=torch.int32))
    assert torch.equal(a, RAST)
    out, da = rastlit.interpolate(POS, RAST, TRI, DB, diff_attrs=[np.int32(0), torch.tensor(2)])
    assert da.shape[-1] == 4
    assert len(rastlit.texture_construct_mip(TEX, np.int64(2))) == 2
    assert rnn.SoftRasterize((8, 8), faces_per_pixel=np.int16(3), sigma=np.float32(0.5)).sigma == 0.5


# ------------------------------------------------------------------- finite extreme input

SCALES = [10.0**e for e in (-29, -25, -20, -15, -10, 0, 10, 20, 30, 36, 38)]


@pytest.mark.parametrize("scale", SCALES)
def test_extreme_position_scales_inside_the_documented_range_stay_finite(scale):
    """Clip-space positions are homogeneous: pos * c renders the same image. Inside the documented
    range (every vertex's largest |component| 0 or >= 1e-30, below float32's max) the outputs of
    rasterize, interpolate, antialias and rasterize_soft and their gradients are finite."""
    g = torch.Generator().manual_seed(4)
    pos0 = torch.rand(1, 6, 4, generator=g) * 2 - 1
    pos0[..., 3] = pos0[..., 3].abs() + 0.5
    tri = torch.tensor([[0, 1, 2], [3, 4, 5], [0, 2, 4]], dtype=torch.int32)
    attr = torch.rand(1, 6, 3, generator=g)
    rast0, _ = rastlit.rasterize(pos0, tri, (12, 12))
    pos = (pos0 * scale).requires_grad_(True)
    rast, db = rastlit.rasterize(pos, tri, (12, 12))
    assert torch.equal(rast[..., 3], rast0[..., 3])  # the same coverage at every scale
    out, da = rastlit.interpolate(attr, rast, tri, db, diff_attrs="all")
    aa = rastlit.antialias(out.contiguous(), rast, pos, tri)
    soft = rastlit.rasterize_soft(pos, tri, (12, 12), faces_per_pixel=3, sigma=1e-3)
    for t in (rast, db, out, da, aa, soft.zbuf, soft.bary, soft.dists, soft.alpha):
        assert bool(torch.isfinite(t).all())
    (aa.sum() + db.sum() + da.sum() + soft.alpha.sum() + soft.zbuf.sum() + soft.dists.sum()).backward()
    assert bool(torch.isfinite(pos.grad).all()) and pos.grad.abs().sum() > 0


@pytest.mark.parametrize("value", [1e30, 1e36, 1e37])
def test_large_values_inside_the_documented_range_stay_finite(value):
    """Attributes, texels and colours up to 1e37 in magnitude: finite outputs and gradients."""
    g = torch.Generator().manual_seed(5)
    pos = torch.rand(1, 6, 4, generator=g) * 2 - 1
    pos[..., 3] = pos[..., 3].abs() + 0.5
    pos.requires_grad_(True)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5], [0, 2, 4]], dtype=torch.int32)
    attr = ((torch.rand(1, 6, 3, generator=g) * 2 - 1) * value).requires_grad_(True)
    tex = ((torch.rand(1, 8, 8, 3, generator=g) * 2 - 1) * value).requires_grad_(True)
    rast, db = rastlit.rasterize(pos, tri, (12, 12))
    out, da = rastlit.interpolate(attr, rast, tri, db, diff_attrs="all")
    aa = rastlit.antialias(out.contiguous(), rast, pos, tri)
    uv = torch.rand(1, 12, 12, 2, generator=g)
    lin = rastlit.texture(tex, uv, filter_mode="linear")
    tri_lin = rastlit.texture(tex, uv, torch.full((1, 12, 12, 4), 0.5), filter_mode="linear-mipmap-linear")
    mips = rastlit.texture_construct_mip(tex)
    for t in (out, da, aa, lin, tri_lin, *mips):
        assert bool(torch.isfinite(t).all())
    (aa.mean() + lin.mean() + tri_lin.mean() + da.mean() / value).backward()
    for t in (attr, tex, pos):
        assert bool(torch.isfinite(t.grad).all())
