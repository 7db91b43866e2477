"""Cameras: view and projection matrices, orbit and random views, pixel/NDC conversion.

Conventions (OpenGL, as nvdiffrast and the rest of rastlit):

- World and eye spaces are right-handed. The camera sits at the eye-space origin looking down
  ``-z`` with ``+y`` up and ``+x`` to the right of the image.
- Matrices act on column vectors: ``clip = P @ V @ [x, y, z, 1]``. With row-vector point arrays
  ``[..., N, 4]`` that is ``points @ (P @ V).transpose(-1, -2)`` (see :func:`transform_points`).
- Clip space keeps ``-w <= x, y, z <= w``: NDC ``z = -1`` at the near plane and ``+1`` at the far
  plane; NDC ``y = -1`` is image row 0 (the bottom row), ``x = -1`` column 0.
- Pixel ``(i, j)`` (row, column) is sampled at its centre, NDC
  ``((2j + 1) / W - 1, (2i + 1) / H - 1)``; :func:`ndc_to_pixel` / :func:`pixel_to_ndc` convert.
- Orbit/random views use a y-up world: azimuth turns about ``+y`` starting at ``+z`` towards
  ``+x``; elevation is the angle above the ``xz`` plane.

Every function is written with torch ops only, so it is differentiable and batched: tensor
arguments may carry leading batch dimensions (broadcast against each other) and the matrices come
out as ``[..., 4, 4]``. The dtype and device follow tensor arguments; with only Python numbers the
result is float32 (or ``dtype``) and is computed in float64 first. Invalid arguments raise
``ValueError``/``TypeError`` naming the argument.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch

__all__ = [
    "look_at", "perspective", "orthographic", "transform_points", "orbit_views", "random_views",
    "Camera", "PerspectiveCamera", "OrthographicCamera",
    "ndc_to_pixel", "pixel_to_ndc", "clip_to_ndc",
]


# ---------------------------------------------------------------------------------------------
# Argument helpers
# ---------------------------------------------------------------------------------------------

def _target_dtype_device(args, dtype, device):
    """(result dtype, device, compute dtype). Compute in the promoted dtype of the floating tensor
    arguments (float64 when there are none); the result takes ``dtype`` if given, else the compute
    dtype of tensor arguments, else float32. The device is ``device`` or the first tensor's."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if device is None and tensors:
        device = tensors[0].device
    floats = [t.dtype for t in tensors if t.is_floating_point()]
    compute = floats[0] if floats else torch.float64
    for d in floats[1:]:
        compute = torch.promote_types(compute, d)
    if dtype is None:
        dtype = compute if floats else torch.float32
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    return dtype, device, compute


def _tensor(x, name, compute, device, last=None):
    """``x`` as a floating tensor (differentiable when it already is a tensor)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor, got dtype {x.dtype}")
        t = x.to(device=device, dtype=compute)
    else:
        try:
            t = torch.as_tensor(x, dtype=compute, device=device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be a number, a sequence of numbers or a tensor, "
                            f"got {type(x).__name__}") from e
    if last is not None and (t.dim() == 0 or t.shape[-1] != last):
        raise ValueError(f"{name} must have shape [..., {last}], got {tuple(t.shape)}")
    return t


def _check(cond: torch.Tensor | bool, msg: str) -> None:
    ok = bool(cond.all()) if isinstance(cond, torch.Tensor) else bool(cond)
    if not ok:
        raise ValueError(msg)


def _finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (got NaN or Inf)")


# ---------------------------------------------------------------------------------------------
# Matrices
# ---------------------------------------------------------------------------------------------

def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), dtype=None, device=None) -> torch.Tensor:
    """World-to-eye matrix ``[..., 4, 4]`` of a camera at ``eye`` looking at ``target``.

    ``eye``, ``target``, ``up``: ``[..., 3]`` tensors (broadcast against each other; gradients
    flow to all three) or 3-sequences. The result maps ``eye`` to the origin and ``target`` onto
    the ``-z`` axis (at depth ``-|target - eye|``), with ``up`` projected into the ``+y`` half of
    the image plane. Its rotation is orthonormal, so the camera centre is ``-R^T t``.

    Raises ``ValueError`` when ``eye == target`` (no viewing direction) or ``up`` is parallel to
    it, or on NaN/Inf. dtype/device follow tensor arguments (float32 for plain numbers,
    computed in float64 then rounded).
    """
    dtype, device, compute = _target_dtype_device((eye, target, up), dtype, device)
    eye_t = _tensor(eye, "eye", compute, device, last=3)
    tgt_t = _tensor(target, "target", compute, device, last=3)
    up_t = _tensor(up, "up", compute, device, last=3)
    for t, n in ((eye_t, "eye"), (tgt_t, "target"), (up_t, "up")):
        _finite(t, n)
    eye_t, tgt_t, up_t = torch.broadcast_tensors(eye_t, tgt_t, up_t)
    fwd = tgt_t - eye_t
    fwd_len = torch.linalg.vector_norm(fwd, dim=-1, keepdim=True)
    _check(fwd_len > 0, "look_at: eye and target coincide (zero-length viewing direction)")
    fwd = fwd / fwd_len
    right = torch.linalg.cross(fwd, up_t, dim=-1)
    right_len = torch.linalg.vector_norm(right, dim=-1, keepdim=True)
    up_len = torch.linalg.vector_norm(up_t, dim=-1, keepdim=True)
    tol = 1e-6 if compute == torch.float64 else 1e-4
    _check(right_len > tol * up_len,
           "look_at: up must be non-zero and not parallel to the viewing direction (target - eye)")
    right = right / right_len
    true_up = torch.linalg.cross(right, fwd, dim=-1)
    rot = torch.stack([right, true_up, -fwd], dim=-2)  # [..., 3, 3]
    trans = -(rot @ eye_t.unsqueeze(-1))  # [..., 3, 1]
    top = torch.cat([rot, trans], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom = torch.cat([bottom[..., :3], torch.ones_like(bottom[..., 3:])], dim=-1)
    return torch.cat([top, bottom], dim=-2).to(dtype=dtype)


def _assemble(rows, like: torch.Tensor) -> torch.Tensor:
    """``[..., 4, 4]`` from a 4x4 nested list of broadcastable tensors / Python numbers."""
    flat = [torch.as_tensor(v, dtype=like.dtype, device=like.device) if not isinstance(v, torch.Tensor) else v
            for row in rows for v in row]
    flat = torch.broadcast_tensors(*flat)
    return torch.stack(flat, dim=-1).unflatten(-1, (4, 4))


def perspective(fovy_deg, aspect=1.0, near=0.1, far=100.0, dtype=None, device=None) -> torch.Tensor:
    """OpenGL perspective projection ``[..., 4, 4]`` (``gluPerspective``).

    ``fovy_deg``: vertical field of view in degrees, in (0, 180). ``aspect``: width / height of the
    image (``W / H`` for a resolution ``(H, W)``). ``near``, ``far``: positive distances to the
    clipping planes, ``near < far``; eye-space ``z = -near`` maps to NDC ``z = -1`` and
    ``z = -far`` to ``+1``. Each argument is a number or a tensor; tensors broadcast to batch
    dimensions (``[...]`` -> ``[..., 4, 4]``) and receive gradients. With plain numbers the result
    is ``[4, 4]`` float32 (or ``dtype``).
    """
    dtype, device, compute = _target_dtype_device((fovy_deg, aspect, near, far), dtype, device)
    fov = _tensor(fovy_deg, "fovy_deg", compute, device)
    asp = _tensor(aspect, "aspect", compute, device)
    n = _tensor(near, "near", compute, device)
    f = _tensor(far, "far", compute, device)
    for t, name in ((fov, "fovy_deg"), (asp, "aspect"), (n, "near"), (f, "far")):
        _finite(t, name)
    _check((fov > 0) & (fov < 180), f"perspective: fovy_deg must be in (0, 180) degrees, got {_show(fovy_deg)}")
    _check(asp > 0, f"perspective: aspect must be > 0, got {_show(aspect)}")
    _check(n > 0, f"perspective: near must be > 0, got {_show(near)}")
    _check(n < f, f"perspective: need near < far, got near={_show(near)}, far={_show(far)}")
    cot = 1.0 / torch.tan(torch.deg2rad(fov) / 2)
    z = torch.zeros((), dtype=compute, device=device)
    m = _assemble([[cot / asp, z, z, z],
                   [z, cot, z, z],
                   [z, z, (f + n) / (n - f), 2 * f * n / (n - f)],
                   [z, z, -1.0, z]], z)
    return m.to(dtype=dtype)


def orthographic(height=2.0, aspect=1.0, near=0.1, far=100.0, *, left=None, right=None, bottom=None,
                 top=None, dtype=None, device=None) -> torch.Tensor:
    """OpenGL orthographic projection ``[..., 4, 4]`` (``glOrtho``).

    Either a centred view volume of ``height`` (world units, eye-space ``y`` in
    ``[-height/2, height/2]``) and ``aspect`` = width / height, or explicit ``left``, ``right``,
    ``bottom``, ``top`` (all four; they override ``height``/``aspect``). ``near`` < ``far`` are
    the distances to the clipping planes along ``-z`` (negative values allowed, as in glOrtho):
    ``z = -near`` maps to NDC ``-1``, ``z = -far`` to ``+1``. Tensors broadcast and get gradients.
    """
    explicit = [left, right, bottom, top]
    args = tuple(a for a in (height, aspect, near, far, *explicit) if a is not None)
    dtype, device, compute = _target_dtype_device(args, dtype, device)
    if any(a is not None for a in explicit):
        if any(a is None for a in explicit):
            raise ValueError("orthographic: give all of left, right, bottom, top (or none and use height/aspect)")
        l, r, b, t = (_tensor(a, nm, compute, device) for a, nm in zip(explicit, ("left", "right", "bottom", "top")))
        _check(l < r, f"orthographic: need left < right, got {_show(left)}, {_show(right)}")
        _check(b < t, f"orthographic: need bottom < top, got {_show(bottom)}, {_show(top)}")
    else:
        h = _tensor(height, "height", compute, device)
        a = _tensor(aspect, "aspect", compute, device)
        _finite(h, "height")
        _finite(a, "aspect")
        _check(h > 0, f"orthographic: height must be > 0, got {_show(height)}")
        _check(a > 0, f"orthographic: aspect must be > 0, got {_show(aspect)}")
        t, r = h / 2, h * a / 2
        b, l = -t, -r
    n = _tensor(near, "near", compute, device)
    f = _tensor(far, "far", compute, device)
    for x, name in ((l, "left"), (r, "right"), (b, "bottom"), (t, "top"), (n, "near"), (f, "far")):
        _finite(x, name)
    _check(n < f, f"orthographic: need near < far, got near={_show(near)}, far={_show(far)}")
    z = torch.zeros((), dtype=compute, device=device)
    m = _assemble([[2 / (r - l), z, z, -(r + l) / (r - l)],
                   [z, 2 / (t - b), z, -(t + b) / (t - b)],
                   [z, z, -2 / (f - n), -(f + n) / (f - n)],
                   [z, z, z, 1.0]], z)
    return m.to(dtype=dtype)


def _show(x):
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)}" if x.numel() > 4 else str(x.detach().cpu().tolist())
    return repr(x)


def transform_points(mvp: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``[..., 4, 4]`` matrices to ``[..., V, 3]`` points: homogeneous ``[..., V, 4]``
    (batch dimensions broadcast, e.g. ``[B,4,4]`` with ``[V,3]`` gives ``[B,V,4]``)."""
    ones = torch.ones_like(points[..., :1])
    return torch.cat([points, ones], -1) @ mvp.transpose(-1, -2)


# ---------------------------------------------------------------------------------------------
# View sets
# ---------------------------------------------------------------------------------------------

def _spherical_eyes(azim, elev, radius, target):
    """Eye positions on a sphere about ``target`` (y-up; azimuth from +z towards +x)."""
    ce = torch.cos(elev)
    off = torch.stack([ce * torch.sin(azim), torch.sin(elev), ce * torch.cos(azim)], dim=-1)
    return target + radius.unsqueeze(-1) * off


def orbit_views(n: int, radius=3.0, elevation_deg=30.0, *, azimuth_offset_deg=0.0, target=(0.0, 0.0, 0.0),
                dtype=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` cameras evenly spaced in azimuth around ``target``, all looking at it.

    View ``k`` sits at azimuth ``azimuth_offset_deg + 360 k / n`` degrees (about ``+y``, from
    ``+z`` towards ``+x``), elevation ``elevation_deg`` above the ``xz`` plane (in (-90, 90)), at
    distance ``radius`` from ``target``, with ``+y`` as up. Azimuth 0 and elevation 0 is the
    camera on the ``+z`` axis looking down ``-z`` (the identity rotation).

    Returns ``(view [n, 4, 4], eye [n, 3])``: world-to-eye matrices and camera centres. ``radius``,
    ``elevation_deg`` and ``azimuth_offset_deg`` may be tensors (scalars or ``[n]``; gradients flow).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"orbit_views: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"orbit_views: n must be >= 1, got {n}")
    dtype, device, compute = _target_dtype_device((radius, elevation_deg, azimuth_offset_deg, target), dtype, device)
    r = _tensor(radius, "radius", compute, device)
    el = _tensor(elevation_deg, "elevation_deg", compute, device)
    off = _tensor(azimuth_offset_deg, "azimuth_offset_deg", compute, device)
    tgt = _tensor(target, "target", compute, device, last=3)
    for t, name in ((r, "radius"), (el, "elevation_deg"), (off, "azimuth_offset_deg"), (tgt, "target")):
        _finite(t, name)
    _check(r > 0, f"orbit_views: radius must be > 0, got {_show(radius)}")
    _check(el.abs() < 90, f"orbit_views: elevation_deg must be in (-90, 90), got {_show(elevation_deg)}")
    az = torch.deg2rad(off + torch.arange(n, dtype=compute, device=device) * (360.0 / n))
    az, el_b, r_b = torch.broadcast_tensors(az, torch.deg2rad(el), r)
    eye = _spherical_eyes(az, el_b, r_b, tgt)
    view = look_at(eye, tgt, torch.tensor([0.0, 1.0, 0.0], dtype=compute, device=device))
    return view.to(dtype), eye.to(dtype)


def random_views(n: int, radius=3.0, *, elevation_range_deg: Sequence[float] = (-60.0, 60.0),
                 generator: torch.Generator | None = None, target=(0.0, 0.0, 0.0), dtype=None,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` cameras uniformly distributed on the band of the sphere of ``radius`` about
    ``target`` between the elevations ``elevation_range_deg = (lo, hi)`` degrees (uniform by area:
    azimuth uniform in [0, 360), sin(elevation) uniform in [sin lo, sin hi]); all look at
    ``target`` with ``+y`` as up. ``-90 < lo <= hi < 90``.

    The draws are made with ``generator`` (on its device) in float64 and then moved, so the same
    seed gives the same views on any ``device``/``dtype``. Returns ``(view [n,4,4], eye [n,3])``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"random_views: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"random_views: n must be >= 1, got {n}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"random_views: generator must be a torch.Generator, got {type(generator).__name__}")
    try:
        lo, hi = (float(v) for v in elevation_range_deg)
    except (TypeError, ValueError) as e:
        raise TypeError("random_views: elevation_range_deg must be a pair of numbers, "
                        f"got {elevation_range_deg!r}") from e
    if not (-90.0 < lo <= hi < 90.0):
        raise ValueError(f"random_views: elevation_range_deg must satisfy -90 < lo <= hi < 90, got ({lo}, {hi})")
    dtype, device, compute = _target_dtype_device((radius, target), dtype, device)
    r = _tensor(radius, "radius", compute, device)
    tgt = _tensor(target, "target", compute, device, last=3)
    _finite(r, "radius")
    _finite(tgt, "target")
    _check(r > 0, f"random_views: radius must be > 0, got {_show(radius)}")
    gdev = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(2, n, generator=generator, dtype=torch.float64, device=gdev).to(device=device)
    az = u[0] * (2 * math.pi)
    s_lo, s_hi = math.sin(math.radians(lo)), math.sin(math.radians(hi))
    el = torch.asin((s_lo + u[1] * (s_hi - s_lo)).clamp(-1.0, 1.0)).to(compute)
    az, el, r = torch.broadcast_tensors(az.to(compute), el, r)
    eye = _spherical_eyes(az, el, r, tgt)
    view = look_at(eye, tgt, torch.tensor([0.0, 1.0, 0.0], dtype=compute, device=device))
    return view.to(dtype), eye.to(dtype)


# ---------------------------------------------------------------------------------------------
# Pixel / NDC
# ---------------------------------------------------------------------------------------------

def _resolution(resolution) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in resolution)
    except (TypeError, ValueError) as e:
        raise TypeError(f"resolution must be a pair (H, W) of ints, got {resolution!r}") from e
    if h < 1 or w < 1:
        raise ValueError(f"resolution must be positive (H, W), got {resolution!r}")
    return h, w


def ndc_to_pixel(ndc: torch.Tensor, resolution) -> torch.Tensor:
    """NDC ``[..., 2]`` (x, y) to continuous pixel coordinates ``[..., 2]`` = (column, row) in
    which integers are pixel centres: pixel ``(i, j)``'s centre, NDC
    ``((2j+1)/W - 1, (2i+1)/H - 1)``, maps to ``(j, i)``. Row 0 is the bottom of the image
    (NDC y = -1), as in rastlit's images; ``round()`` gives the pixel index of a covered point.
    ``resolution`` is ``(H, W)``."""
    h, w = _resolution(resolution)
    if ndc.shape[-1:] != (2,):
        raise ValueError(f"ndc must have shape [..., 2], got {tuple(ndc.shape)}")
    size = torch.tensor([w, h], dtype=ndc.dtype, device=ndc.device)
    return ((ndc + 1) * size - 1) / 2


def pixel_to_ndc(pixel: torch.Tensor, resolution) -> torch.Tensor:
    """Inverse of :func:`ndc_to_pixel`: (column, row) ``[..., 2]`` pixel coordinates (integers at
    pixel centres, row 0 at the bottom) to NDC (x, y). ``resolution`` is ``(H, W)``."""
    h, w = _resolution(resolution)
    if pixel.shape[-1:] != (2,):
        raise ValueError(f"pixel must have shape [..., 2], got {tuple(pixel.shape)}")
    if not pixel.is_floating_point():
        pixel = pixel.to(torch.get_default_dtype())
    size = torch.tensor([w, h], dtype=pixel.dtype, device=pixel.device)
    return (2 * pixel + 1) / size - 1


def clip_to_ndc(clip: torch.Tensor) -> torch.Tensor:
    """Perspective division: clip ``[..., 4]`` to NDC ``[..., 3]`` (x/w, y/w, z/w)."""
    if clip.shape[-1:] != (4,):
        raise ValueError(f"clip must have shape [..., 4], got {tuple(clip.shape)}")
    return clip[..., :3] / clip[..., 3:]


# ---------------------------------------------------------------------------------------------
# Camera objects
# ---------------------------------------------------------------------------------------------

def _as_batched_matrix(m, name) -> torch.Tensor:
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{name} must be a tensor [B,4,4] or [4,4], got {type(m).__name__}")
    if not m.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {m.dtype}")
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if m.dim() != 3 or m.shape[-2:] != (4, 4):
        raise ValueError(f"{name} must have shape [B,4,4] or [4,4], got {tuple(m.shape)}")
    return m


class Camera:
    """A batch of ``B`` cameras: world-to-eye ``view [B,4,4]`` and ``projection [B,4,4]``.

    ``view`` / ``projection`` may also be ``[4,4]`` or ``[1,4,4]`` (broadcast to the other's batch).
    ``resolution = (H, W)`` is optional bookkeeping for renderers (the projection does not depend
    on it once built; the subclasses derive their aspect ratio ``W / H`` from it). Plain class, not
    an ``nn.Module``: the tensors keep their autograd history, so a view built from a learnable
    eye position is differentiable.
    """

    def __init__(self, view: torch.Tensor, projection: torch.Tensor, resolution=None):
        view = _as_batched_matrix(view, "view")
        projection = _as_batched_matrix(projection, "projection")
        for m, name in ((view, "view"), (projection, "projection")):
            if m.shape[0] == 0:
                raise ValueError(f"{name} must hold at least one camera ([B,4,4] with B >= 1), got shape "
                                 f"{tuple(m.shape)}")
        if view.shape[0] != projection.shape[0] and 1 not in (view.shape[0], projection.shape[0]):
            raise ValueError(f"view and projection batch sizes differ: {view.shape[0]} vs {projection.shape[0]}")
        if view.device != projection.device:
            raise ValueError(f"view and projection are on different devices: {view.device} vs {projection.device}")
        b = max(view.shape[0], projection.shape[0])
        self.view = view.expand(b, 4, 4)
        self.projection = projection.expand(b, 4, 4)
        self.resolution = None if resolution is None else _resolution(resolution)

    def __len__(self) -> int:
        return self.view.shape[0]

    @property
    def batch_size(self) -> int:
        return self.view.shape[0]

    @property
    def device(self) -> torch.device:
        return self.view.device

    @property
    def dtype(self) -> torch.dtype:
        return self.view.dtype

    @property
    def mvp(self) -> torch.Tensor:
        """``projection @ view``, ``[B,4,4]`` (world to clip)."""
        return self.projection @ self.view

    @property
    def eye(self) -> torch.Tensor:
        """Camera centres in world space, ``[B,3]`` (the point the view matrix maps to the
        origin; for a rigid view ``-R^T t``)."""
        rot, t = self.view[:, :3, :3], self.view[:, :3, 3:]
        return torch.linalg.solve(rot, -t).squeeze(-1)

    def project(self, points: torch.Tensor, model: torch.Tensor | None = None) -> torch.Tensor:
        """World points ``[V,3]`` (shared by all cameras) or ``[B,V,3]`` to clip space ``[B,V,4]``
        (contiguous, ready for :func:`rastlit.rasterize`). ``model``: optional object-to-world
        ``[4,4]`` or ``[B,4,4]`` applied first."""
        if not isinstance(points, torch.Tensor):
            raise TypeError(f"points must be a tensor [V,3] or [B,V,3], got {type(points).__name__}")
        if points.dim() not in (2, 3) or points.shape[-1] != 3:
            raise ValueError(f"points must have shape [V,3] or [B,V,3], got {tuple(points.shape)}")
        if points.dim() == 3 and points.shape[0] not in (1, self.batch_size):
            raise ValueError(f"points batch {points.shape[0]} does not match the camera batch {self.batch_size}")
        mvp = self.mvp
        if model is not None:
            mvp = mvp @ _as_batched_matrix(model, "model")
        if points.dim() == 2:
            points = points.unsqueeze(0)
        out = transform_points(mvp, points.to(mvp.dtype))
        return out.expand(self.batch_size, *out.shape[1:]).contiguous()

    def to(self, device=None, dtype=None) -> "Camera":
        """A copy with every tensor attribute moved to ``device`` / cast to ``dtype``."""
        new = copy.copy(self)
        for k, v in vars(self).items():
            if isinstance(v, torch.Tensor):
                setattr(new, k, v.to(device=device, dtype=dtype if v.is_floating_point() else None))
        return new

    def __getitem__(self, idx) -> "Camera":
        """The sub-batch ``idx`` (an int keeps a batch dimension of 1)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        new = copy.copy(self)
        for k, v in vars(self).items():
            if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == self.batch_size:
                setattr(new, k, v[idx])
        return new

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch={self.batch_size}, resolution={self.resolution}, "
                f"dtype={self.dtype}, device={self.device})")


def _aspect_from(aspect, resolution):
    if aspect is not None:
        return aspect
    if resolution is not None:
        h, w = _resolution(resolution)
        return w / h
    return 1.0


class _ViewConstructors:
    """``look_at`` and ``orbit`` constructors shared by the camera types whose ``__init__`` takes
    the view matrix first and their projection settings as keywords."""

    @classmethod
    def look_at(cls, eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), **kwargs):
        """Cameras at ``eye [B,3]`` (or ``[3]``) looking at ``target``; kwargs as ``__init__``."""
        if isinstance(eye, torch.Tensor) and eye.dim() >= 1 and eye.numel() == 0:
            raise ValueError(f"eye must hold at least one camera position ([B,3] with B >= 1, or [3]), got shape "
                             f"{tuple(eye.shape)}")
        return cls(look_at(eye, target, up), **kwargs)

    @classmethod
    def orbit(cls, n: int, radius=3.0, elevation_deg=30.0, azimuth_offset_deg=0.0, **kwargs):
        """``n`` cameras from :func:`orbit_views`; kwargs as ``__init__``."""
        view, _ = orbit_views(n, radius, elevation_deg, azimuth_offset_deg=azimuth_offset_deg)
        return cls(view, **kwargs)


class PerspectiveCamera(_ViewConstructors, Camera):
    """Perspective cameras: ``view [B,4,4]`` with :func:`perspective` ``(fovy_deg, aspect, near,
    far)``. ``aspect`` defaults to ``W / H`` of ``resolution = (H, W)`` (else 1), so square pixels
    stay square; a tensor ``fovy_deg`` (``[]`` or ``[B]``) is differentiable."""

    def __init__(self, view, fovy_deg=45.0, aspect=None, near=0.1, far=100.0, resolution=None):
        self.fovy_deg, self.near, self.far = fovy_deg, near, far
        self.aspect = _aspect_from(aspect, resolution)
        view = _as_batched_matrix(view, "view")
        proj = perspective(fovy_deg, self.aspect, near, far, dtype=view.dtype, device=view.device)
        super().__init__(view, proj.reshape(-1, 4, 4), resolution)


class OrthographicCamera(_ViewConstructors, Camera):
    """Orthographic cameras: ``view [B,4,4]`` with a centred :func:`orthographic` volume of
    ``height`` world units; ``aspect`` defaults to ``W / H`` of ``resolution`` (else 1)."""

    def __init__(self, view, height=2.0, aspect=None, near=0.1, far=100.0, resolution=None):
        self.height, self.near, self.far = height, near, far
        self.aspect = _aspect_from(aspect, resolution)
        view = _as_batched_matrix(view, "view")
        proj = orthographic(height, self.aspect, near, far, dtype=view.dtype, device=view.device)
        super().__init__(view, proj.reshape(-1, 4, 4), resolution)
