"""Posed-image datasets in the NeRF-synthetic ("Blender") format, in rastlit's conventions.

The format (used by NeRF, instant-ngp, nerfstudio's ``blender-data`` and nerfstudio-data
parsers, nvdiffrec) is a folder ``root`` holding one ``transforms_<split>.json`` per split
(``train``, ``val``, ``test``, ...) and the images they name. Pure functions on torch, numpy,
Pillow and json; nothing here imports Lightning or Hydra.

The JSON file
-------------
``{"camera_angle_x": ..., "frames": [{"file_path": ..., "transform_matrix": [[...] x4]}, ...]}``

- ``frames[i].transform_matrix``: 4x4 **camera-to-world** matrix (row-major nested lists), in
  the OpenGL camera convention: the camera looks along its ``-z`` axis, ``+y`` is up in the
  image and ``+x`` to the right. This is rastlit's eye-space convention too, so the world-to-eye
  ("view") matrix is simply ``inverse(c2w)`` and the camera centre is ``c2w[:3, 3]``. It must be
  finite, affine (bottom row ``[0, 0, 0, 1]``) and invertible.
- ``frames[i].file_path``: relative to the JSON file's folder (absolute paths are used as they
  are), with or without an extension: NeRF-synthetic writes ``"./train/r_0"``; the path as given
  is tried first, then with ``.png`` and other common image extensions appended.
- Intrinsics, in one of two forms. Each key may sit at the top level or in a frame; a key in the
  frame wins over the same key at the top level, and a frame holding ``fl_x`` or
  ``camera_angle_x`` itself uses that form even when the top level has the other one. When both
  forms are at the same level, ``fl_x`` wins.

  * ``camera_angle_x``: the horizontal field of view in radians (optional ``camera_angle_y``):
    ``fx = 0.5 W / tan(0.5 camera_angle_x)``, ``fy = 0.5 H / tan(0.5 camera_angle_y)`` or
    ``fy = fx`` without it, principal point at the image centre ``(W/2, H/2)``.
  * nerfstudio / instant-ngp pixels: ``fl_x`` (required), ``fl_y`` (default ``fl_x``), ``cx``,
    ``cy`` (default the image centre), ``w``, ``h`` (default the image size). ``cx`` is measured
    from the LEFT edge and ``cy`` from the TOP edge of the image, in pixel units in which the
    image spans ``[0, W] x [0, H]`` (so pixel ``j``'s centre is at ``j + 0.5``). Distortion
    coefficients (``k1..k4``, ``p1``, ``p2``) must be absent or zero and ``camera_model``, if
    given, a pinhole one: rastlit only rasterizes pinhole cameras.

  Whenever ``w``/``h`` are given (in either form), the image must have that size.
- Images: an RGBA image holds the colour with a **straight** (not premultiplied) coverage alpha.
  An image without alpha needs a mask: the frame's ``mask_path`` (nerfstudio; relative to the
  JSON folder) or else, next to the image, ``<stem>_mask.png`` or ``masks/<image name>`` (also
  looked for under the JSON folder). A mask file is single channel; for a multi-channel mask the
  alpha channel is used when it is not fully opaque, else the first channel. Mask files are
  binary: a value ``> 0.5`` (of the [0, 1] range) is the object (alpha 1), anything else
  background (alpha 0); only an image's own alpha channel gives fractional coverage. A frame's
  explicit ``mask_path`` wins over the image's own alpha. 8-bit and 16-bit greyscale files are read.

rastlit's side
--------------
- Images are ``[N, H, W, C]`` float32 in [0, 1] with **row 0 the BOTTOM row** of the picture
  (OpenGL / nvdiffrast order); files are top-down, so rows are flipped on read and on write.
- ``rgb`` comes composited over ``background``: ``rgb = straight_rgb * alpha + bg * (1 - alpha)``
  with ``background`` one of ``"black"`` (the default; ``rgb`` is then premultiplied by alpha, as
  rastlit's antialiased renders are), ``"white"`` (NeRF-synthetic's usual choice) or three
  numbers in [0, 1].
- :meth:`Intrinsics.projection` is the OpenGL projection ``P`` whose clip space follows
  :mod:`rastlit.camera`: a camera-space point ``(X, Y, Z)``, ``Z < 0``, lands at
  ``u = fx X / (-Z) + cx`` (from the left), ``v = -fy Y / (-Z) + cy`` (from the top), i.e.
  NDC ``x = 2u/W - 1``, NDC ``y = 1 - 2v/H``; NDC ``z = -1`` at ``Z = -near`` and ``+1`` at
  ``Z = -far``. With ``clip = P @ [X, Y, Z, 1]``::

      P = [[2 fx / W, 0,        1 - 2 cx / W,         0                    ],
           [0,        2 fy / H, 2 cy / H - 1,         0                    ],
           [0,        0,        (far+near)/(near-far), 2 far near/(near-far)],
           [0,        0,        -1,                   0                    ]]

  For ``cx = W/2, cy = H/2, fx = fy`` this is :func:`rastlit.camera.perspective` with
  ``fovy = 2 atan(H / (2 fy))`` and ``aspect = W / H``. Pixel ``(i, j)`` (row ``i`` from the
  bottom) is sampled at NDC ``((2j+1)/W - 1, (2i+1)/H - 1)``, i.e. ``u = j + 0.5``,
  ``v = H - i - 0.5``, so :func:`rastlit.camera.ndc_to_pixel` applies unchanged.
- ``mvp = P @ inverse(c2w)`` (world to clip) and ``eye = c2w[:3, 3]``.
- ``downscale = d`` box-filters the images by ``d x d`` (``W`` and ``H`` must be divisible by
  ``d``): premultiplied colour and alpha are averaged, colour is un-premultiplied where the
  averaged alpha is > 0, then composited. Intrinsics become ``fx/d, fy/d, cx/d, cy/d`` (exact for
  the ``[0, W]`` pixel units above).

Errors: a missing folder, JSON file or image raises ``FileNotFoundError`` naming the path (and
the frame); anything malformed (bad JSON, corrupt or truncated image, bad matrix, sizes that
disagree, no mask, no frames, no intrinsics) raises ``ValueError`` naming the file and, where it
applies, the frame index and ``file_path``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rastlit.image import background_rgb, save_image, write_atomic

__all__ = [
    "Intrinsics",
    "BlenderSplit",
    "read_blender_split",
    "has_split",
    "write_blender_split",
    "c2w_from_view",
    "intrinsics_from_projection",
    "transforms_path",
    "IMAGE_EXTENSIONS",
]

# Extensions tried, in this order, when a frame's file_path names no existing file.
IMAGE_EXTENSIONS = (".png", ".PNG", ".jpg", ".jpeg", ".JPG", ".JPEG", ".webp", ".bmp", ".tif", ".tiff")

# camera_model values that describe a pinhole camera (nerfstudio / COLMAP names).
_PINHOLE_MODELS = {"OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE", "SIMPLE_RADIAL", "RADIAL"}
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


# ----------------------------------------------------------------------------------------------
# Intrinsics
# ----------------------------------------------------------------------------------------------

def _number(x: Any, what: str) -> float:
    """``x`` as a finite float, else ValueError naming ``what``."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {x!r}")
    return v


def _positive_int(x: Any, what: str) -> int:
    bad_float = isinstance(x, float) and not x.is_integer()
    if isinstance(x, bool) or not isinstance(x, (int, np.integer, float)) or bad_float:
        raise ValueError(f"{what} must be a positive integer, got {x!r}")
    v = int(x)
    if v < 1:
        raise ValueError(f"{what} must be a positive integer, got {x!r}")
    return v


@dataclass
class Intrinsics:
    """Pinhole intrinsics in pixels at the loaded (possibly downscaled) resolution.

    ``cx`` is measured from the left edge, ``cy`` from the TOP edge, in units where the image
    spans ``[0, width] x [0, height]`` (pixel centres at half-integers): the nerfstudio /
    instant-ngp convention. See the module docstring for the projection they define.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        self.fx = _number(self.fx, "Intrinsics.fx")
        self.fy = _number(self.fy, "Intrinsics.fy")
        self.cx = _number(self.cx, "Intrinsics.cx")
        self.cy = _number(self.cy, "Intrinsics.cy")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"Intrinsics: fx and fy must be > 0, got fx={self.fx}, fy={self.fy}")
        self.width = _positive_int(self.width, "Intrinsics.width")
        self.height = _positive_int(self.height, "Intrinsics.height")

    def scaled(self, factor: int) -> "Intrinsics":
        """The intrinsics of the image box-filtered by an integer ``factor`` (``width`` and
        ``height`` must be divisible by it): every parameter divided by ``factor``."""
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"downscale factor must be an integer >= 1, got {factor!r}")
        factor = int(factor)
        if self.width % factor or self.height % factor:
            raise ValueError(f"downscale={factor} does not divide the image size {self.width}x{self.height} (WxH)")
        return Intrinsics(self.fx / factor, self.fy / factor, self.cx / factor, self.cy / factor,
                          self.width // factor, self.height // factor)

    def projection(self, near: float, far: float, dtype=torch.float32) -> torch.Tensor:
        """The OpenGL projection ``[4, 4]`` (module docstring) for clip planes at distances
        ``0 < near < far``; computed in float64, returned as ``dtype``."""
        n, f = _near_far(near, far)
        w, h = float(self.width), float(self.height)
        p = torch.zeros(4, 4, dtype=torch.float64)
        p[0, 0] = 2.0 * self.fx / w
        p[0, 2] = 1.0 - 2.0 * self.cx / w
        p[1, 1] = 2.0 * self.fy / h
        p[1, 2] = 2.0 * self.cy / h - 1.0
        p[2, 2] = (f + n) / (n - f)
        p[2, 3] = 2.0 * f * n / (n - f)
        p[3, 2] = -1.0
        return p.to(dtype)

    def _close(self, other: "Intrinsics", rtol: float = 1e-9) -> bool:
        if (self.width, self.height) != (other.width, other.height):
            return False
        scale = max(self.width, self.height, self.fx, self.fy)
        return all(abs(a - b) <= rtol * scale for a, b in
                   ((self.fx, other.fx), (self.fy, other.fy), (self.cx, other.cx), (self.cy, other.cy)))


def _near_far(near, far) -> tuple[float, float]:
    n = _number(near, "near")
    f = _number(far, "far")
    if not (0 < n < f):
        raise ValueError(f"need 0 < near < far, got near={n}, far={f}")
    return n, f


def intrinsics_from_projection(proj: torch.Tensor, width, height) -> Intrinsics:
    """Intrinsics at ``width x height`` of an OpenGL perspective projection such as
    :func:`rastlit.camera.perspective` (or :meth:`Intrinsics.projection`, which this inverts):
    ``fx = W P[0,0] / 2``, ``fy = H P[1,1] / 2``, ``cx = W (1 - P[0,2]) / 2``,
    ``cy = H (1 + P[1,2]) / 2``. ``proj`` is ``[4, 4]`` (or ``[1, 4, 4]``); a matrix that is
    not of that form (skew, translation in x/y, a non-perspective last row) raises ValueError."""
    if not isinstance(proj, torch.Tensor):
        proj = torch.as_tensor(proj)
    if proj.dim() == 3 and proj.shape[0] == 1:
        proj = proj[0]
    if proj.shape != (4, 4):
        raise ValueError(f"intrinsics_from_projection: proj must be [4,4], got {tuple(proj.shape)}")
    p = proj.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(p).all()):
        raise ValueError("intrinsics_from_projection: proj holds NaN or Inf")
    w = _positive_int(width, "width")
    h = _positive_int(height, "height")
    tol = 1e-6 * float(p.abs().max())
    zero_entries = [(0, 1), (0, 3), (1, 0), (1, 3), (2, 0), (2, 1), (3, 0), (3, 1), (3, 3)]
    if any(abs(float(p[i, j])) > tol for i, j in zero_entries) or abs(float(p[3, 2]) + 1.0) > 1e-6:
        raise ValueError("intrinsics_from_projection: proj is not an OpenGL pinhole perspective matrix "
                         f"(expected rastlit.camera.perspective's form), got {p.tolist()}")
    if float(p[0, 0]) <= 0 or float(p[1, 1]) <= 0:
        raise ValueError(f"intrinsics_from_projection: proj[0,0] and proj[1,1] must be > 0, got {p.tolist()}")
    return Intrinsics(fx=0.5 * w * float(p[0, 0]), fy=0.5 * h * float(p[1, 1]),
                      cx=0.5 * w * (1.0 - float(p[0, 2])), cy=0.5 * h * (1.0 + float(p[1, 2])), width=w, height=h)


def c2w_from_view(view: torch.Tensor) -> torch.Tensor:
    """Camera-to-world ``[..., 4, 4]`` (OpenGL camera axes, as the Blender format stores it) of
    rastlit world-to-eye matrices ``view [..., 4, 4]`` (e.g. :func:`rastlit.camera.look_at`):
    both use the OpenGL eye space, so this is the matrix inverse (computed in float64, returned
    in ``view``'s dtype)."""
    if not isinstance(view, torch.Tensor) or not view.is_floating_point():
        raise TypeError("c2w_from_view: view must be a floating-point tensor [..., 4, 4]")
    if view.dim() < 2 or view.shape[-2:] != (4, 4):
        raise ValueError(f"c2w_from_view: view must have shape [..., 4, 4], got {tuple(view.shape)}")
    v = view.detach().to(torch.float64)
    if not bool(torch.isfinite(v).all()):
        raise ValueError("c2w_from_view: view holds NaN or Inf")
    try:
        return torch.linalg.inv(v).to(view.dtype)
    except RuntimeError as e:  # torch.linalg.LinAlgError: singular
        raise ValueError(f"c2w_from_view: view is not invertible ({e})") from e


# ----------------------------------------------------------------------------------------------
# The split
# ----------------------------------------------------------------------------------------------

@dataclass
class BlenderSplit:
    """One split of a dataset, in rastlit's conventions (module docstring).

    ``rgb [N,H,W,3]`` float32 composited over the ``background`` it was read with; ``alpha
    [N,H,W,1]`` float32 coverage; rows bottom-up. ``c2w [N,4,4]`` float32 as in the file
    (OpenGL). ``intrinsics``: one per frame, at the loaded resolution. ``files``: the resolved
    image paths.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor
    c2w: torch.Tensor
    intrinsics: list[Intrinsics]
    files: list[str]
    json_path: str = ""
    file_paths: list[str] = field(default_factory=list)  # frames' file_path as written in the JSON

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def resolution(self) -> tuple[int, int]:
        """``(H, W)`` of the loaded images."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])

    def view(self) -> torch.Tensor:
        """World-to-eye matrices ``inverse(c2w)``, ``[N,4,4]`` float32."""
        return torch.linalg.inv(self.c2w.to(torch.float64)).to(torch.float32)

    def projection(self, near: float, far: float) -> torch.Tensor:
        """Per-frame projections ``[N,4,4]`` float32 (:meth:`Intrinsics.projection`)."""
        return torch.stack([k.projection(near, far, torch.float64) for k in self.intrinsics]).to(torch.float32)

    def mvp(self, near: float, far: float) -> torch.Tensor:
        """World-to-clip ``P @ inverse(c2w)``, ``[N,4,4]`` float32 (computed in float64)."""
        _near_far(near, far)
        proj = torch.stack([k.projection(near, far, torch.float64) for k in self.intrinsics])
        return (proj @ torch.linalg.inv(self.c2w.to(torch.float64))).to(torch.float32)

    def eye(self) -> torch.Tensor:
        """Camera centres ``c2w[:, :3, 3]``, ``[N,3]`` float32."""
        return self.c2w[:, :3, 3].clone()


def transforms_path(root, split: str) -> str:
    """``<root>/transforms_<split>.json``."""
    return os.path.join(os.fspath(root), f"transforms_{split}.json")


def has_split(root, split: str) -> bool:
    """Whether ``root`` holds ``transforms_<split>.json``."""
    return os.path.isfile(transforms_path(root, split))


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------

def _frame_name(json_path: str, index: int, frame: Any) -> str:
    fp = frame.get("file_path") if isinstance(frame, dict) else None
    return f"{json_path}, frame {index}" + (f" (file_path {fp!r})" if fp is not None else "")


def _background(background) -> np.ndarray:
    return np.asarray(background_rgb(background), np.float32)


def _load_json(path: str) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            meta = json.load(fh)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text file ({e})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'frames' list, got {type(meta).__name__}")
    return meta


def _c2w(frame: dict, where: str) -> np.ndarray:
    if "transform_matrix" not in frame:
        raise ValueError(f"{where}: no 'transform_matrix'")
    raw = frame["transform_matrix"]
    ok = (isinstance(raw, list) and len(raw) == 4
          and all(isinstance(r, list) and len(r) == 4 for r in raw))
    if not ok:
        try:
            shape = list(np.shape(raw)) if isinstance(raw, list) else type(raw).__name__
        except ValueError:
            shape = "a ragged list"
        raise ValueError(f"{where}: transform_matrix must be a 4x4 nested list, got {shape}")
    try:
        m = np.array([[_number(x, "entry") for x in r] for r in raw], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{where}: transform_matrix must hold finite numbers ({e}): {raw!r}") from e
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise ValueError(f"{where}: transform_matrix is not affine (bottom row {m[3].tolist()}, "
                         "expected [0, 0, 0, 1])")
    sv = np.linalg.svd(m[:3, :3], compute_uv=False)
    if not (sv[0] > 0 and sv[-1] > 1e-6 * sv[0]):
        raise ValueError(f"{where}: transform_matrix is singular (its 3x3 rotation part has "
                         f"determinant {float(np.linalg.det(m[:3, :3])):.3g}), so the camera has no view matrix")
    return m


def _lookup(key: str, frame: dict, meta: dict):
    if key in frame:
        return frame[key]
    return meta.get(key)


def _intrinsics(frame: dict, meta: dict, width: int, height: int, where: str) -> Intrinsics:
    """The frame's intrinsics at the full image size ``width x height`` (module docstring)."""
    if "fl_x" in frame:
        form = "pixels"
    elif "camera_angle_x" in frame:
        form = "angle"
    elif "fl_x" in meta:
        form = "pixels"
    elif "camera_angle_x" in meta:
        form = "angle"
    else:
        raise ValueError(f"{where}: no camera intrinsics: give 'camera_angle_x' (horizontal field of view, "
                         "radians) or 'fl_x' (with 'fl_y', 'cx', 'cy', 'w', 'h', in pixels), at the top level "
                         "or per frame")
    model = _lookup("camera_model", frame, meta)
    if model is not None and str(model).upper() not in _PINHOLE_MODELS:
        raise ValueError(f"{where}: camera_model {model!r} is not a pinhole camera; rastlit rasterizes "
                         "pinhole cameras only")
    for key in _DISTORTION_KEYS:
        val = _lookup(key, frame, meta)
        if val is not None and _number(val, f"{where}: {key}") != 0.0:
            raise ValueError(f"{where}: lens distortion {key}={val} is not supported (undistort the images "
                             "first; rastlit rasterizes pinhole cameras only)")
    for key, actual in (("w", width), ("h", height)):
        val = _lookup(key, frame, meta)
        if val is not None and _number(val, f"{where}: {key}") != actual:
            raise ValueError(f"{where}: the image is {width}x{height} (WxH) but the intrinsics say "
                             f"{key}={val}")
    try:
        if form == "angle":
            ax = _number(_lookup("camera_angle_x", frame, meta), "camera_angle_x")
            if not 0.0 < ax < math.pi:
                raise ValueError(f"camera_angle_x must be in (0, pi) radians, got {ax}")
            fx = 0.5 * width / math.tan(0.5 * ax)
            ay = _lookup("camera_angle_y", frame, meta)
            if ay is None:
                fy = fx
            else:
                ay = _number(ay, "camera_angle_y")
                if not 0.0 < ay < math.pi:
                    raise ValueError(f"camera_angle_y must be in (0, pi) radians, got {ay}")
                fy = 0.5 * height / math.tan(0.5 * ay)
            cx, cy = 0.5 * width, 0.5 * height
        else:
            fx = _number(_lookup("fl_x", frame, meta), "fl_x")
            fy_raw = _lookup("fl_y", frame, meta)
            fy = fx if fy_raw is None else _number(fy_raw, "fl_y")
            cx_raw, cy_raw = _lookup("cx", frame, meta), _lookup("cy", frame, meta)
            cx = 0.5 * width if cx_raw is None else _number(cx_raw, "cx")
            cy = 0.5 * height if cy_raw is None else _number(cy_raw, "cy")
        return Intrinsics(fx, fy, cx, cy, width, height)
    except ValueError as e:
        raise ValueError(f"{where}: bad intrinsics: {e}") from e


def _resolve_image(base: str, file_path: str) -> str | None:
    path = os.path.normpath(os.path.join(base, file_path))
    if os.path.isfile(path):
        return path
    for ext in IMAGE_EXTENSIONS:
        if os.path.isfile(path + ext):
            return path + ext
    return None


def _open_image(path: str, where: str):
    """Open and fully decode ``path`` with Pillow; corrupt / truncated files raise ValueError."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(path)
    except UnidentifiedImageError as e:
        raise ValueError(f"{path} ({where}): not a readable image file (corrupt or unknown format)") from e
    except OSError as e:
        raise ValueError(f"{path} ({where}): cannot read the image: {e}") from e
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        im.close()
        raise ValueError(f"{path} ({where}): corrupt or truncated image: {e}") from e
    return im


def _has_alpha(im) -> bool:
    return "A" in im.getbands() or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)


def _to_float(im, channels: str) -> np.ndarray:
    """Pillow image -> ``[H, W, C]`` float32 in [0, 1], top-down. ``channels``: "RGB", "RGBA" or
    "mask" (one channel: alpha when present and not fully opaque, else the first channel)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im, dtype=np.float64)
        grey = grey / (65535.0 if grey.max(initial=0) > 255 or im.mode.startswith("I;16") else 255.0)
        grey = np.clip(grey, 0.0, 1.0).astype(np.float32)[..., None]
        if channels == "mask":
            return grey
        out = np.repeat(grey, 3, axis=-1)
        return np.concatenate([out, np.ones_like(grey)], -1) if channels == "RGBA" else out
    if im.mode == "F":
        grey = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)[..., None]
        if channels == "mask":
            return grey
        out = np.repeat(grey, 3, axis=-1)
        return np.concatenate([out, np.ones_like(grey)], -1) if channels == "RGBA" else out
    if channels == "mask":
        if _has_alpha(im):
            a = np.asarray(im.convert("RGBA"), dtype=np.float32)[..., 3:] / 255.0
            if (a < 1.0).any():
                return a
        first = im.convert("RGB") if im.mode not in ("L", "1") else im.convert("L")
        arr = np.asarray(first, dtype=np.float32) / 255.0
        return arr[..., :1] if arr.ndim == 3 else arr[..., None]
    return np.asarray(im.convert(channels), dtype=np.float32) / 255.0


def _find_mask(base: str, image_path: str) -> str | None:
    folder, name = os.path.split(image_path)
    stem = os.path.splitext(name)[0]
    candidates = [os.path.join(folder, f"{stem}_mask.png"), os.path.join(folder, "masks", name),
                  os.path.join(folder, "masks", stem + ".png"), os.path.join(base, "masks", name),
                  os.path.join(base, "masks", stem + ".png")]
    for c in candidates:
        if os.path.isfile(c):
            return c
    return None


def _box_filter(rgb: np.ndarray, alpha: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Average ``d x d`` blocks of straight ``rgb [H,W,3]`` and ``alpha [H,W,1]``: premultiplied
    colour and alpha are averaged, the colour un-premultiplied where the alpha is > 0."""
    h, w = alpha.shape[:2]
    pre = (rgb * alpha).reshape(h // d, d, w // d, d, 3).mean(axis=(1, 3))
    a = alpha.reshape(h // d, d, w // d, d, 1).mean(axis=(1, 3))
    straight = np.where(a > 0, pre / np.maximum(a, 1e-12), 0.0)
    return np.clip(straight, 0.0, 1.0).astype(np.float32), a.astype(np.float32)


def read_blender_split(root, split: str, downscale: int = 1, background="black") -> BlenderSplit:
    """Read ``<root>/transforms_<split>.json`` and its images (module docstring for the format).

    Args:
        root: the dataset folder.
        split: ``"train"``, ``"val"``, ``"test"`` or any name with a ``transforms_<split>.json``.
        downscale: integer ``>= 1``; ``d x d`` box filter of the images (W and H must be divisible
            by it) and intrinsics divided by it.
        background: ``"black"`` | ``"white"`` | three numbers in [0, 1]; ``rgb`` is returned as
            ``straight_rgb * alpha + background * (1 - alpha)``.

    Returns a :class:`BlenderSplit` (images bottom-up, float32).
    """
    root = os.fspath(root)
    if isinstance(downscale, bool) or not isinstance(downscale, (int, np.integer)) or downscale < 1:
        raise ValueError(f"downscale must be an integer >= 1, got {downscale!r}")
    downscale = int(downscale)
    bg = _background(background)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset folder {root!r} does not exist (or is not a folder)")
    json_path = transforms_path(root, split)
    if not os.path.isfile(json_path):
        found = sorted(n[len("transforms_"):-len(".json")] for n in os.listdir(root)
                       if n.startswith("transforms_") and n.endswith(".json"))
        raise FileNotFoundError(f"split {split!r}: expected the file {json_path}, which does not exist "
                                f"(splits found in {root}: {found or 'none'})")
    meta = _load_json(json_path)
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise ValueError(f"{json_path}: expected a 'frames' list, got {type(frames).__name__}")
    if not frames:
        raise ValueError(f"{json_path}: the split {split!r} has no frames ('frames' is empty)")
    base = os.path.dirname(os.path.abspath(json_path))

    rgbs, alphas, c2ws, intrs, files, file_paths = [], [], [], [], [], []
    size0: tuple[int, int] | None = None
    for i, frame in enumerate(frames):
        where = _frame_name(json_path, i, frame)
        if not isinstance(frame, dict):
            raise ValueError(f"{where}: a frame must be a JSON object, got {type(frame).__name__}")
        fp = frame.get("file_path")
        if not isinstance(fp, str) or not fp:
            raise ValueError(f"{where}: no 'file_path' string")
        c2w = _c2w(frame, where)
        img_path = _resolve_image(base, fp)
        if img_path is None:
            tried = os.path.normpath(os.path.join(base, fp))
            raise FileNotFoundError(f"{where}: image {tried!r} not found (also tried the extensions "
                                    f"{', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
        with _open_image(img_path, where) as im:
            width, height = im.size
            alpha_in_image = _has_alpha(im)
            img = _to_float(im, "RGBA" if alpha_in_image else "RGB")
        mask_path = frame.get("mask_path")
        if mask_path is not None:
            if not isinstance(mask_path, str) or not mask_path:
                raise ValueError(f"{where}: mask_path must be a path string, got {mask_path!r}")
            mpath = os.path.normpath(os.path.join(base, mask_path))
            if not os.path.isfile(mpath):
                raise FileNotFoundError(f"{where}: mask {mpath!r} (its mask_path) not found")
        elif alpha_in_image:
            mpath = None
        else:
            mpath = _find_mask(base, img_path)
            if mpath is None:
                raise ValueError(
                    f"{img_path} ({where}): the image has no alpha channel and no mask was found. Provide the "
                    "coverage mask as an RGBA image (straight alpha), as a per-frame 'mask_path' in the JSON, "
                    f"or as a single-channel file named {os.path.splitext(os.path.basename(img_path))[0]}_mask.png "
                    "next to the image (or masks/<image name>)")
        rgb = img[..., :3]
        if mpath is not None:
            with _open_image(mpath, where + " mask") as mim:
                if mim.size != (width, height):
                    raise ValueError(f"{mpath} ({where}): the mask is {mim.size[0]}x{mim.size[1]} (WxH) "
                                     f"but the image {img_path} is {width}x{height}")
                alpha = (_to_float(mim, "mask") > 0.5).astype(np.float32)
        else:
            alpha = img[..., 3:4]
        if size0 is None:
            size0 = (width, height)
        elif (width, height) != size0:
            raise ValueError(f"{img_path} ({where}): the image is {width}x{height} (WxH) but frame 0's "
                             f"({files[0]}) is {size0[0]}x{size0[1]}; all images of a split must share one size")
        intr = _intrinsics(frame, meta, width, height, where)
        if downscale > 1:
            if width % downscale or height % downscale:
                raise ValueError(f"{img_path} ({where}): downscale={downscale} does not divide the image "
                                 f"size {width}x{height} (WxH)")
            rgb, alpha = _box_filter(rgb, alpha, downscale)
            intr = intr.scaled(downscale)
        comp = rgb * alpha + bg * (1.0 - alpha)
        rgbs.append(np.ascontiguousarray(comp[::-1], dtype=np.float32))
        alphas.append(np.ascontiguousarray(alpha[::-1], dtype=np.float32))
        c2ws.append(c2w)
        intrs.append(intr)
        files.append(img_path)
        file_paths.append(fp)

    return BlenderSplit(rgb=torch.from_numpy(np.stack(rgbs)), alpha=torch.from_numpy(np.stack(alphas)),
                        c2w=torch.from_numpy(np.stack(c2ws)).to(torch.float32), intrinsics=intrs, files=files,
                        json_path=json_path, file_paths=file_paths)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def _check_images(rgb, alpha, c2w) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(rgb, torch.Tensor) or rgb.dim() != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be a tensor [N,H,W,3], got {getattr(rgb, 'shape', type(rgb).__name__)}")
    n, h, w, _ = rgb.shape
    if n < 1:
        raise ValueError("rgb holds no images (N = 0)")
    rgb = rgb.detach().to("cpu", torch.float64)
    if alpha is None:
        alpha = torch.ones(n, h, w, 1, dtype=torch.float64)
    else:
        if not isinstance(alpha, torch.Tensor):
            raise ValueError(f"alpha must be a tensor [N,H,W,1] or [N,H,W], got {type(alpha).__name__}")
        if alpha.dim() == 3:
            alpha = alpha.unsqueeze(-1)
        if tuple(alpha.shape) != (n, h, w, 1):
            raise ValueError(f"alpha must have shape [N,H,W,1] = {[n, h, w, 1]}, got {list(alpha.shape)}")
        alpha = alpha.detach().to("cpu", torch.float64)
    for t, name in ((rgb, "rgb"), (alpha, "alpha")):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or Inf")
    if not isinstance(c2w, torch.Tensor) or tuple(c2w.shape) != (n, 4, 4):
        raise ValueError(f"c2w must be a tensor [N,4,4] = {[n, 4, 4]}, got {list(getattr(c2w, 'shape', []))}")
    c2w = c2w.detach().to("cpu", torch.float64)
    for i in range(n):
        _c2w({"transform_matrix": c2w[i].tolist()}, f"c2w[{i}]")
    return rgb.clamp(0, 1), alpha.clamp(0, 1), c2w


def write_blender_split(root, split: str, rgb: torch.Tensor, alpha: torch.Tensor | None, c2w: torch.Tensor,
                        intrinsics, camera_angle_x: bool = True, prefix: str | None = None, *,
                        background="black") -> str:
    """Write images and cameras as ``<root>/transforms_<split>.json`` plus RGBA PNGs.

    Args:
        rgb: ``[N,H,W,3]`` in [0, 1], rows bottom-up (rastlit order), composited over
            ``background`` (default black, i.e. premultiplied by ``alpha``, as rastlit renders
            are and as :func:`read_blender_split` returns them); it is un-composited to the
            straight colour stored in the PNG where ``alpha > 0``.
        alpha: ``[N,H,W,1]`` (or ``[N,H,W]``) coverage in [0, 1], or ``None`` for opaque images.
        c2w: ``[N,4,4]`` camera-to-world (OpenGL axes; e.g. :func:`c2w_from_view`).
        intrinsics: one :class:`Intrinsics` for all frames or a list of ``N``; their size must be
            the images' ``W x H``.
        camera_angle_x: write ``camera_angle_x`` at the top level when every frame shares the
            same intrinsics with the principal point at the image centre and square pixels
            (``fx == fy``); otherwise (or when False) ``fl_x, fl_y, cx, cy, w, h`` (with
            ``camera_model: OPENCV``) at the top level, or per frame when the frames differ.
        prefix: image file-name prefix (default ``"r_"``): images are
            ``<root>/<split>/<prefix><index>.png`` (index zero-padded to 3 digits or more) and
            each frame's ``file_path`` is ``"./<split>/<prefix><index>"`` without the extension,
            as NeRF-synthetic writes it.
        background: what ``rgb`` is composited over (as in :func:`read_blender_split`).

    Every file is written to a temporary name in its folder and moved into place with
    ``os.replace``; the JSON goes last. Returns the JSON path.
    """
    root = os.fspath(root)
    if not isinstance(split, str) or not split or os.sep in split or (os.altsep and os.altsep in split):
        raise ValueError(f"split must be a non-empty name without path separators, got {split!r}")
    prefix = "r_" if prefix is None else str(prefix)
    if os.sep in prefix or (os.altsep and os.altsep in prefix):
        raise ValueError(f"prefix must be a file-name prefix without path separators, got {prefix!r}")
    rgb, alpha, c2w = _check_images(rgb, alpha, c2w)
    n, h, w, _ = rgb.shape
    bg = torch.from_numpy(_background(background)).to(torch.float64)
    intr = [intrinsics] * n if isinstance(intrinsics, Intrinsics) else list(intrinsics)
    if len(intr) != n or not all(isinstance(k, Intrinsics) for k in intr):
        raise ValueError(f"intrinsics must be one Intrinsics or a list of {n}, got {intrinsics!r}")
    for i, k in enumerate(intr):
        if (k.width, k.height) != (w, h):
            raise ValueError(f"intrinsics[{i}] is for {k.width}x{k.height} (WxH) but the images are {w}x{h}")

    # Straight colour: undo the compositing where there is coverage.
    straight = torch.where(alpha > 0, (rgb - bg * (1 - alpha)) / alpha.clamp_min(1e-12), torch.zeros_like(rgb))
    rgba = torch.cat([straight.clamp(0, 1), alpha], -1)

    os.makedirs(os.path.join(root, split), exist_ok=True)
    digits = max(3, len(str(n - 1)))
    frames = []
    for i in range(n):
        name = f"{prefix}{i:0{digits}d}"
        # rastlit's one PNG writer: rows flipped to top-down, 8-bit, through a temporary file
        save_image(rgba[i], os.path.join(root, split, name + ".png"))
        frames.append({"file_path": f"./{split}/{name}", "transform_matrix": c2w[i].tolist()})

    def pixel_keys(k: Intrinsics) -> dict:
        return {"fl_x": k.fx, "fl_y": k.fy, "cx": k.cx, "cy": k.cy, "w": k.width, "h": k.height}

    shared = all(k._close(intr[0]) for k in intr)
    k0 = intr[0]
    centred_square = (abs(k0.cx - 0.5 * w) <= 1e-6 * max(w, h) and abs(k0.cy - 0.5 * h) <= 1e-6 * max(w, h)
                      and abs(k0.fx - k0.fy) <= 1e-6 * max(k0.fx, k0.fy))
    meta: dict[str, Any] = {}
    if camera_angle_x and shared and centred_square:
        meta["camera_angle_x"] = 2.0 * math.atan(0.5 * w / k0.fx)
    elif shared:
        meta["camera_model"] = "OPENCV"
        meta.update(pixel_keys(k0))
    else:
        meta["camera_model"] = "OPENCV"
        for f, k in zip(frames, intr):
            f.update(pixel_keys(k))
    meta["frames"] = frames

    json_path = transforms_path(root, split)

    text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
    write_atomic(json_path, lambda fh: fh.write(text.encode("utf-8")))
    return json_path
