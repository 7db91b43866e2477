"""Lights and local shading (Lambert, Blinn-Phong) on per-pixel or per-vertex tensors.

Conventions:

- **Light directions point from the surface TOWARDS the light** (the ``L`` of ``n . l``), as in
  PyTorch3D: a sun straight overhead in a y-up world is ``DirectionalLight(direction=(0, 1, 0))``.
  A :class:`PointLight`'s direction at a surface point is ``normalize(position - point)``.
- Normals, positions, light directions/positions and the viewer position must all be in the same
  space (usually world space; eye space works just as well).
- Shaded tensors are ``[..., 3]`` with any leading shape: a G-buffer ``[B,H,W,3]`` from
  :func:`rastlit.interpolate` or per-vertex arrays ``[V,3]`` / ``[B,V,3]``. Normals are
  renormalised inside; a zero normal (background pixels of an interpolated G-buffer) receives
  only the ambient term and a zero gradient, never NaN.
- Light fields are tensors with optional *leading* batch dimensions, which line up with the
  LEADING dimensions of the shaded tensors: a ``[3]`` direction lights every point, a ``[B,3]``
  direction lights view ``b`` of a ``[B,H,W,3]`` G-buffer with row ``b`` (singleton dimensions are
  inserted before the channel). The same rule applies to ``view_pos`` (e.g. ``Camera.eye``
  ``[B,3]``), ``albedo`` and ``specular`` when they have fewer dimensions than the normals.
- Radiance: ``color * intensity`` per light; ``n . l`` is clamped at 0. :class:`PointLight` has no
  distance attenuation by default; ``attenuation="inverse_square"`` divides by the squared
  distance (clamped below at 1e-12).
- :class:`EnvironmentLight` is image-based light from a cube map (see :func:`rastlit.texture` for
  the cube-map conventions): diffuse from a heavily prefiltered (coarse mip) lookup at the normal,
  glossy reflection from a lookup at the reflected view direction (:func:`blinn_phong` only).
  :func:`equirect_to_cube` turns the usual lat-long HDR image into such a cube map.
- Everything is torch ops: differentiable w.r.t. normals, positions, albedo, light parameters and
  the viewer; dtype/device follow ``normals``. Light fields given as Python numbers are stored in
  float64 on the CPU and cast to the normals' dtype/device when shading (tensors are kept as given,
  with their autograd history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Union

import torch

__all__ = [
    "DirectionalLight", "PointLight", "AmbientLight", "EnvironmentLight", "lambertian", "blinn_phong",
    "normal_to_rgb", "safe_normalize", "equirect_to_cube", "cube_directions", "reflect",
]


def _field(x, name, last=None, check_finite=True) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {x.dtype}")
        t = x if x.is_floating_point() else x.to(torch.get_default_dtype())
    else:
        try:
            t = torch.as_tensor(x, dtype=torch.float64)  # exact; cast to the normals' dtype when shading
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be a number, a sequence of numbers or a tensor, "
                            f"got {type(x).__name__}") from e
    if last is not None and (t.dim() == 0 or t.shape[-1] != last):
        raise ValueError(f"{name} must have shape [..., {last}], got {tuple(t.shape)}")
    if check_finite and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (got NaN or Inf)")
    return t


def _color(x, name, check_finite=True) -> torch.Tensor:
    """RGB ``[..., 3]``; a scalar or a ``[..., 1]`` grey is expanded to 3 channels."""
    t = _field(x, name, check_finite=check_finite)
    if t.dim() == 0 or t.shape[-1] == 1:
        t = t.unsqueeze(-1) if t.dim() == 0 else t
        return t.expand(*t.shape[:-1], 3)
    if t.shape[-1] != 3:
        raise ValueError(f"{name} must be a number or have shape [..., 3] (or [..., 1]), got {tuple(t.shape)}")
    return t


class _Light:
    def to(self, device=None, dtype=None):
        """A copy with every tensor field moved / cast."""
        kw = {k: (v.to(device=device, dtype=dtype) if isinstance(v, torch.Tensor) else v)
              for k, v in vars(self).items()}
        return type(self)(**kw)

    def radiance(self) -> torch.Tensor:
        """``color * intensity`` as ``[..., 3]``."""
        return self.color * self.intensity.unsqueeze(-1)


@dataclass
class DirectionalLight(_Light):
    """A light at infinity. ``direction [..., 3]`` points from the surface TOWARDS the light (it
    need not be unit length; it is normalised when shading; zero length raises ValueError).
    ``color [..., 3]`` (or a number), ``intensity [...]`` (or a number): radiance
    ``color * intensity``."""

    direction: torch.Tensor
    color: torch.Tensor = field(default_factory=lambda: torch.ones(3, dtype=torch.float64))
    intensity: torch.Tensor = field(default_factory=lambda: torch.tensor(1.0, dtype=torch.float64))

    def __post_init__(self):
        self.direction = _field(self.direction, "direction", last=3)
        if not bool((torch.linalg.vector_norm(self.direction.detach(), dim=-1) > 0).all()):
            raise ValueError("DirectionalLight: direction must be non-zero (it points towards the light)")
        self.color = _color(self.color, "color")
        self.intensity = _field(self.intensity, "intensity")


@dataclass
class PointLight(_Light):
    """A point light at ``position [..., 3]``; the light direction at a surface point ``p`` is
    ``normalize(position - p)`` (towards the light). ``attenuation``: ``"none"`` (default, the
    radiance ``color * intensity`` does not fall off) or ``"inverse_square"`` (divided by
    ``|position - p|^2``, clamped below at 1e-12)."""

    position: torch.Tensor
    color: torch.Tensor = field(default_factory=lambda: torch.ones(3, dtype=torch.float64))
    intensity: torch.Tensor = field(default_factory=lambda: torch.tensor(1.0, dtype=torch.float64))
    attenuation: str = "none"

    def __post_init__(self):
        self.position = _field(self.position, "position", last=3)
        self.color = _color(self.color, "color")
        self.intensity = _field(self.intensity, "intensity")
        if self.attenuation not in ("none", "inverse_square"):
            raise ValueError(f"PointLight: attenuation must be 'none' or 'inverse_square', got {self.attenuation!r}")


@dataclass
class AmbientLight(_Light):
    """Uniform ambient light: adds ``albedo * color * intensity`` everywhere (no specular)."""

    color: torch.Tensor = field(default_factory=lambda: torch.ones(3, dtype=torch.float64))
    intensity: torch.Tensor = field(default_factory=lambda: torch.tensor(1.0, dtype=torch.float64))

    def __post_init__(self):
        self.color = _color(self.color, "color")
        self.intensity = _field(self.intensity, "intensity")


@dataclass
class EnvironmentLight(_Light):
    """Image-based light: a cube map of incoming radiance by world direction.

    ``cube_map`` ``[6,S,S,3]`` or ``[1,6,S,S,3]`` (faces +x, -x, +y, -y, +z, -z; OpenGL's and
    nvdiffrast's face conventions, see :func:`rastlit.texture`), linear radiance (HDR values are
    fine); it may require grad (a learned environment). ``intensity`` scales it.

    - Diffuse: ``albedo * E(n)`` where ``E`` is the cube map filtered down to mip level
      ``diffuse_level`` (default: the 2x2-per-face level, a crude stand-in for the cosine-weighted
      irradiance; a uniform environment of radiance L gives exactly ``albedo * L``, as an
      :class:`AmbientLight` does).
    - Glossy (in :func:`blinn_phong`): ``specular * R(r)`` with ``r`` the view direction mirrored
      about the normal, looked up at mip level ``glossy_level`` (0: a mirror; higher: rougher).

    The pyramid is rebuilt per call (differentiable), so ``S`` must be a power of two. Lookups
    are trilinear with a fixed level (``mip_level_bias``) and seamless across cube edges.
    """

    cube_map: torch.Tensor
    intensity: torch.Tensor = field(default_factory=lambda: torch.tensor(1.0, dtype=torch.float64))
    diffuse_level: float | None = None
    glossy_level: float = 0.0

    def __post_init__(self):
        if not isinstance(self.cube_map, torch.Tensor):
            raise TypeError(f"EnvironmentLight: cube_map must be a tensor [6,S,S,3], got {type(self.cube_map).__name__}")
        cm = self.cube_map if self.cube_map.dim() == 5 else self.cube_map.unsqueeze(0)
        if (cm.dim() != 5 or cm.shape[0] != 1 or cm.shape[1] != 6 or cm.shape[2] != cm.shape[3] or cm.shape[4] != 3):
            raise ValueError(f"EnvironmentLight: cube_map must have shape [6,S,S,3] (or [1,6,S,S,3]), got "
                             f"{tuple(self.cube_map.shape)}")
        size = cm.shape[2]
        if size & (size - 1):
            raise ValueError(f"EnvironmentLight: the cube map's faces must be a power of two on a side, got {size}")
        if not cm.is_floating_point():
            raise TypeError(f"EnvironmentLight: cube_map must be a floating-point tensor, got {cm.dtype}")
        self.cube_map = cm
        self.intensity = _field(self.intensity, "intensity")
        top = float(size.bit_length() - 1)  # the 1x1 level
        if self.diffuse_level is None:
            self.diffuse_level = max(top - 1.0, 0.0)
        for name in ("diffuse_level", "glossy_level"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= top:
                raise ValueError(f"EnvironmentLight: {name} must be in [0, {top:g}] (log2 of the face size), got {v}")
            setattr(self, name, v)

    def radiance(self) -> torch.Tensor:  # for _Light.to; an environment has no single radiance
        raise TypeError("EnvironmentLight has no single radiance; use lookup(directions, level)")

    def lookup(self, directions: torch.Tensor, level: float) -> torch.Tensor:
        """Radiance ``[..., 3]`` arriving from ``directions [..., 3]`` (any length; zero gives 0),
        filtered to mip ``level`` (trilinear). dtype/device follow ``directions``."""
        from . import ops

        lead = directions.shape[:-1]
        d = directions.reshape(1, 1, -1, 3).contiguous()
        env = self.cube_map.to(device=d.device, dtype=d.dtype)
        bias = torch.full(d.shape[:3], float(level), dtype=d.dtype, device=d.device)
        out = ops.texture(env.contiguous(), d, mip_level_bias=bias, filter_mode="linear-mipmap-linear",
                          boundary_mode="cube")
        scale = self.intensity.to(device=d.device, dtype=d.dtype)
        return (out * scale).reshape(*lead, 3)


LightLike = Union[DirectionalLight, PointLight, AmbientLight, EnvironmentLight]
_LIGHT_TYPES = (DirectionalLight, PointLight, AmbientLight, EnvironmentLight)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def safe_normalize(v: torch.Tensor, eps: float = 1e-20) -> torch.Tensor:
    """``v / |v|`` along the last dimension; vectors with ``|v|^2 <= eps`` become 0 with a zero
    gradient (no NaN, no 1/eps blow-up as with ``F.normalize`` at 0)."""
    sq = (v * v).sum(-1, keepdim=True)
    # the scale is 0 (not 1/sqrt(eps)) below eps and the clamp stops the gradient through sq there
    scale = torch.where(sq > eps, torch.rsqrt(sq.clamp_min(eps)), torch.zeros_like(sq))
    return v * scale


def _align(t: torch.Tensor, ndim: int, name: str) -> torch.Tensor:
    """Line up the leading (batch) dims of ``t`` ``[*L, C]`` with those of an ``ndim``-dim
    tensor by inserting singleton dims before the channel."""
    if t.dim() > ndim:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, more dimensions than the shaded tensors ({ndim})")
    if t.dim() == 0:
        return t
    return t.reshape(*t.shape[:-1], *([1] * (ndim - t.dim())), t.shape[-1])


def _prep(t, name, like: torch.Tensor, color=False) -> torch.Tensor:
    """A per-point input (albedo, specular, ambient, view_pos) aligned to ``like``. Not checked for
    NaN/Inf: these may be whole G-buffers, and a check would cost a pass and a device sync."""
    t = _color(t, name, check_finite=False) if color else _field(t, name, last=3, check_finite=False)
    return _align(t.to(device=like.device, dtype=like.dtype), like.dim(), name)


def _as_light_list(lights) -> list:
    if lights is None:
        return []
    if isinstance(lights, _LIGHT_TYPES):
        return [lights]
    if isinstance(lights, Iterable) and not isinstance(lights, (str, torch.Tensor)):
        out = list(lights)
        for i, l in enumerate(out):
            if not isinstance(l, _LIGHT_TYPES):
                raise TypeError(f"lights[{i}] must be a DirectionalLight, PointLight, AmbientLight or "
                                f"EnvironmentLight, got {type(l).__name__}")
        return out
    raise TypeError(f"lights must be a light or a sequence of lights, got {type(lights).__name__}")


def _check_normals(normals) -> None:
    if not isinstance(normals, torch.Tensor):
        raise TypeError(f"normals must be a tensor [..., 3], got {type(normals).__name__}")
    if not normals.is_floating_point():
        raise TypeError(f"normals must be a floating-point tensor, got {normals.dtype}")
    if normals.dim() == 0 or normals.shape[-1] != 3:
        raise ValueError(f"normals must have shape [..., 3], got {tuple(normals.shape)}")


def _ambient_term(ambient, lights, like) -> torch.Tensor:
    """Total ambient radiance ``[..., 3]`` aligned to ``like``."""
    total = torch.zeros((), dtype=like.dtype, device=like.device)
    if isinstance(ambient, AmbientLight):
        total = total + _align(ambient.radiance().to(like), like.dim(), "ambient")
    elif ambient is not None:
        total = total + _prep(ambient, "ambient", like, color=True)
    for l in lights:
        if isinstance(l, AmbientLight):
            total = total + _align(l.radiance().to(like), like.dim(), "ambient light")
    return total


def _light_dir_radiance(light, positions, like):
    """(unit direction towards the light, radiance) for a directional or point light."""
    rad = _align(light.radiance().to(like), like.dim(), "light color/intensity")
    if isinstance(light, DirectionalLight):
        d = _align(light.direction.to(like), like.dim(), "light direction")
        return safe_normalize(d), rad
    if positions is None:
        raise ValueError("positions [..., 3] are required to shade with a PointLight")
    to_light = _align(light.position.to(like), like.dim(), "light position") - positions
    if light.attenuation == "inverse_square":
        rad = rad / (to_light * to_light).sum(-1, keepdim=True).clamp_min(1e-12)
    return safe_normalize(to_light), rad


# ---------------------------------------------------------------------------------------------
# Shading models
# ---------------------------------------------------------------------------------------------

def lambertian(normals: torch.Tensor, albedo, lights, ambient=0.0,
               positions: torch.Tensor | None = None) -> torch.Tensor:
    """Diffuse (Lambert) shading ``albedo * (ambient + sum_lights radiance * max(n . l, 0))``.

    ``normals [..., 3]`` (renormalised; zero normals get ambient only), ``albedo`` ``[..., 3]`` /
    ``[..., 1]`` / number, ``lights`` a light or a sequence of :class:`DirectionalLight`,
    :class:`PointLight` and :class:`AmbientLight` (directions point TOWARDS the light),
    ``ambient`` a number, RGB ``[..., 3]`` or an :class:`AmbientLight`. ``positions [..., 3]``
    (same shape as ``normals``) are needed only for point lights. Returns ``[..., 3]`` with the
    broadcast shape, dtype/device of ``normals``.
    """
    _check_normals(normals)
    lights = _as_light_list(lights)
    n = safe_normalize(normals)
    if positions is not None:
        positions = _check_positions(positions, normals)
    alb = _prep(albedo, "albedo", normals, color=True)
    irr = _ambient_term(ambient, lights, normals)
    for l in lights:
        if isinstance(l, AmbientLight):
            continue
        if isinstance(l, EnvironmentLight):
            irr = irr + l.lookup(n, l.diffuse_level)
            continue
        d, rad = _light_dir_radiance(l, positions, normals)
        irr = irr + rad * (n * d).sum(-1, keepdim=True).clamp_min(0)
    return alb * irr


def _check_positions(positions, normals) -> torch.Tensor:
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a tensor [..., 3], got {type(positions).__name__}")
    if positions.dim() == 0 or positions.shape[-1] != 3:
        raise ValueError(f"positions must have shape [..., 3], got {tuple(positions.shape)}")
    return positions.to(dtype=normals.dtype, device=normals.device)


def _safe_pow(x: torch.Tensor, p) -> torch.Tensor:
    """``x ** p`` for ``x >= 0``, 0 (with zero gradient) where ``x == 0`` even for ``p < 1``."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)) ** p, torch.zeros_like(x))


def blinn_phong(normals: torch.Tensor, positions: torch.Tensor, view_pos, albedo, lights, specular=0.5,
                shininess=32.0, ambient=0.0) -> torch.Tensor:
    """Blinn-Phong shading: ``albedo * ambient + sum_lights radiance * (albedo * max(n.l, 0) +
    specular * max(n.h, 0) ** shininess * [n.l > 0])`` with ``h = normalize(l + v)`` and
    ``v = normalize(view_pos - position)`` (towards the viewer).

    ``normals``, ``positions`` ``[..., 3]`` (same space); ``view_pos`` the camera centre
    ``[3]``, ``[B,3]`` (aligned to the leading dims, e.g. ``Camera.eye``) or ``[..., 3]``;
    ``albedo`` and ``specular`` RGB ``[..., 3]`` / ``[..., 1]`` / numbers (specular colour is not
    multiplied by the albedo); an :class:`EnvironmentLight` adds ``albedo * E(n) + specular *
    R(reflect(v, n))`` (``shininess`` does not apply: its ``glossy_level`` sets the blur); ``shininess`` > 0, a number or a tensor broadcastable to
    ``[..., 1]``; ``lights`` and ``ambient`` as in :func:`lambertian`. The specular lobe is unnormalised
    (peak value ``specular * radiance``) and is switched off where ``n . l <= 0``.
    """
    _check_normals(normals)
    if positions is None:
        raise ValueError("blinn_phong: positions [..., 3] are required")
    positions = _check_positions(positions, normals)
    lights = _as_light_list(lights)
    if isinstance(shininess, torch.Tensor):
        if not bool((shininess > 0).all()):
            raise ValueError("blinn_phong: shininess must be > 0")
        shin = shininess.to(normals)
        if shin.dim() > 0:
            shin = _align(shin.unsqueeze(-1), normals.dim(), "shininess")
    else:
        if not float(shininess) > 0:
            raise ValueError(f"blinn_phong: shininess must be > 0, got {shininess!r}")
        shin = float(shininess)
    n = safe_normalize(normals)
    v = safe_normalize(_prep(view_pos, "view_pos", normals) - positions)
    alb = _prep(albedo, "albedo", normals, color=True)
    spec = _prep(specular, "specular", normals, color=True)
    irr = _ambient_term(ambient, lights, normals)  # diffuse irradiance, multiplied by the albedo
    spec_rad = None  # specular radiance, multiplied by the specular colour
    for l in lights:
        if isinstance(l, AmbientLight):
            continue
        if isinstance(l, EnvironmentLight):  # diffuse at the normal, glossy at the mirrored view direction
            irr = irr + l.lookup(n, l.diffuse_level)
            glossy = l.lookup(reflect(v, n), l.glossy_level)
            spec_rad = glossy if spec_rad is None else spec_rad + glossy
            continue
        d, rad = _light_dir_radiance(l, positions, normals)
        ndl = (n * d).sum(-1, keepdim=True)
        h = safe_normalize(d + v)
        ndh = (n * h).sum(-1, keepdim=True).clamp_min(0)
        lobe = torch.where(ndl > 0, _safe_pow(ndh, shin), torch.zeros_like(ndh))
        irr = irr + rad * ndl.clamp_min(0)
        spec_rad = rad * lobe if spec_rad is None else spec_rad + rad * lobe
    out = alb * irr
    return out if spec_rad is None else out + spec * spec_rad


def normal_to_rgb(normals: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Map unit normals ``[..., 3]`` in [-1, 1] to RGB in [0, 1]: ``(n + 1) / 2``. With ``mask``
    (``[...]`` or ``[..., 1]``, e.g. ``rast[..., 3:] > 0``) pixels outside it are set to 0."""
    _check_normals(normals)
    rgb = (normals + 1) * 0.5
    if mask is not None:
        m = mask if mask.dim() == normals.dim() else mask.unsqueeze(-1)
        rgb = rgb * m.to(rgb.dtype)
    return rgb


def reflect(v: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``v`` mirrored about the unit normal ``n``: ``2 (n . v) n - v`` (``v`` points away from the
    surface, e.g. towards the viewer; the result is the direction light arrives from)."""
    return 2 * (n * v).sum(-1, keepdim=True) * n - v


def cube_directions(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """``[6,size,size,3]`` unit directions through the centres of a cube map's texels (face order
    +x, -x, +y, -y, +z, -z; texel (i, j) at s = (j + 0.5) / size, t = (i + 0.5) / size, with
    :func:`rastlit.texture`'s cube conventions), so ``texture(cube, cube_directions(S)[None])``
    reads texel centres back."""
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    c = (torch.arange(size, dtype=torch.float64, device=device) + 0.5) / size * 2 - 1  # s, t -> [-1, 1]
    t, s = torch.meshgrid(c, c, indexing="ij")
    one = torch.ones_like(s)
    # (x, y, z) on each face from (sc, tc) = (2s - 1, 2t - 1): the inverse of the face projection
    faces = [
        torch.stack([one, -t, -s], -1),   # +x: s <- -z, t <- -y
        torch.stack([-one, -t, s], -1),   # -x: s <- +z, t <- -y
        torch.stack([s, one, t], -1),     # +y: s <- +x, t <- +z
        torch.stack([s, -one, -t], -1),   # -y: s <- +x, t <- -z
        torch.stack([s, -t, one], -1),    # +z: s <- +x, t <- -y
        torch.stack([-s, -t, -one], -1),  # -z: s <- -x, t <- -y
    ]
    d = torch.stack(faces, 0)
    return (d / d.norm(dim=-1, keepdim=True)).to(dtype)


def equirect_to_cube(image: torch.Tensor, size: int) -> torch.Tensor:
    """A lat-long (equirectangular) environment image ``[H,W,C]`` as a cube map ``[6,size,size,C]``.

    Convention: ``image`` is as read from a file, row 0 at the TOP. Row coordinate v in [0, 1]
    (top to bottom) is the polar angle from +y: theta = pi * v; column coordinate u in [0, 1) is
    the azimuth phi = 2 pi (u - 0.5), with direction (sin theta sin phi, cos theta, -sin theta
    cos phi): the image centre looks along -z, u = 0.75 along +x, u = 0.25 along -x, and the left
    and right edges along +z (the seam). Each cube texel takes the bilinear sample (wrapping in u,
    clamped in v) at its centre's direction, so it is differentiable in ``image``; with ``size``
    much smaller than ``H``, prefilter (downscale) the image first to avoid aliasing.
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or not image.is_floating_point():
        desc = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a floating-point tensor [H,W,C], got {desc}")
    H, W, C = image.shape
    d = cube_directions(size, dtype=torch.float64, device=image.device)
    theta = torch.acos(d[..., 1].clamp(-1, 1))
    phi = torch.atan2(d[..., 0], -d[..., 2])  # 0 along -z, +pi/2 along +x
    u = phi / (2 * math.pi) + 0.5
    v = theta / math.pi
    x = u * W - 0.5
    y = (v * H - 0.5).clamp(0, H - 1)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).unsqueeze(-1).to(image.dtype), (y - y0).unsqueeze(-1).to(image.dtype)
    j0, i0 = x0.long() % W, y0.long().clamp(0, H - 1)
    j1, i1 = (j0 + 1) % W, (i0 + 1).clamp(max=H - 1)
    return ((1 - fy) * ((1 - fx) * image[i0, j0] + fx * image[i0, j1])
            + fy * ((1 - fx) * image[i1, j0] + fx * image[i1, j1]))
