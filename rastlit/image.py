"""Image files through Pillow: ``save_image(img, "out.png")``, ``load_image("in.png")``, and
``image_grid`` to tile a batch.

Rendered images and textures follow rastlit's convention (NHWC, **row 0 at the bottom**: NDC
y = -1 for renders, v = 0 for textures); image files are top-down, so rows are flipped on the way
out and on the way in. ``rastlit.mesh``'s ``save_texture`` / ``load_texture`` go through here.
"""

from __future__ import annotations

import math
import os
import uuid

import numpy as np
import torch

__all__ = ["image_grid", "save_image", "load_image", "write_atomic", "background_rgb"]


def image_grid(images: torch.Tensor, ncols: int | None = None, pad: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile ``[B,H,W,C]`` images (row 0 at the bottom) into one ``[H',W',C]`` image, first image
    at the top left, ``ncols`` per row (default: all in one row)."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape [B,H,W,C], got {list(images.shape)}")
    b, h, w, c = images.shape
    ncols = b if ncols is None else max(1, min(int(ncols), b))
    nrows = (b + ncols - 1) // ncols
    out = images.new_full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value)
    for k in range(b):
        r, q = divmod(k, ncols)
        y0 = (nrows - 1 - r) * (h + pad) + pad  # row 0 at the bottom: the first grid row is the highest
        x0 = q * (w + pad) + pad
        out[y0:y0 + h, x0:x0 + w] = images[k]
    return out


# ----------------------------------------------------------------------------------------------
# Conversions between rastlit images (float, row 0 at the bottom) and Pillow images (top-down)
# ----------------------------------------------------------------------------------------------

def _to_uint8(img: torch.Tensor) -> np.ndarray:
    """Floats in [0, 1] (clamped) to uint8, rounded to nearest; same shape, rows untouched."""
    return (img.detach().to("cpu", torch.float64).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _to_pil(image: torch.Tensor):
    """A ``[H,W,C]`` (C in 1..4) float image, row 0 at the bottom, as an 8-bit top-down Pillow
    image of mode L, LA, RGB or RGBA."""
    from PIL import Image

    arr = _to_uint8(image)[::-1].copy()  # a copy: positive strides even for one row
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)  # mode from the shape


def _pil_to_array(im) -> np.ndarray:
    """A Pillow image as a top-down float32 ``[H,W,C]`` array in [0, 1]. L / LA / RGB / RGBA
    keep their channels (8 bits: / 255); 16-bit grey (``I;16*``, and ``I``, the mode of some
    16-bit files) is / 65535 with one channel; float (``F``) is clamped; bilevel becomes L;
    palette images become RGB, or RGBA when they have transparency; other modes (CMYK, YCbCr,
    premultiplied alpha...) become RGB or RGBA."""
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im, dtype=np.uint8).astype(np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        arr = np.clip(np.asarray(im).astype(np.float64) / 65535.0, 0.0, 1.0).astype(np.float32)
    elif mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    else:
        alpha = "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info
        arr = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.uint8).astype(np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def background_rgb(background) -> tuple[float, float, float]:
    """The colour images are composited over: ``black`` | ``white`` | a number | an RGB triple,
    each channel finite and in [0, 1]; ValueError otherwise."""
    msg = f"background must be 'black', 'white' or three numbers in [0, 1], got {background!r}"
    if isinstance(background, str):
        named = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0)}
        if background not in named:
            raise ValueError(msg)
        return named[background]
    if isinstance(background, (int, float)) and not isinstance(background, bool):
        background = (background,) * 3
    try:
        vals = tuple(float(x) for x in background)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if len(vals) != 3 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in vals):
        raise ValueError(msg)
    return vals


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def write_atomic(path: str, write) -> None:
    """``write(file_object)`` into a new temporary file beside ``path`` (same folder, so the same
    file system), then ``os.replace`` it onto ``path``: readers see the old file or the whole new
    one, never a half-written one. The temporary file is removed if anything fails."""
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: folder {folder!r} does not exist")
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as fh:  # created with the usual permissions (umask), unlike mkstemp's 0600
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def save_image(image: torch.Tensor, path) -> None:
    """Write ``[H,W,C]`` (C in 1..4) or a batch ``[B,H,W,C]`` (tiled in one row) of floats in
    [0, 1] as an 8-bit PNG (grey, grey + alpha, RGB or RGBA; values clamped and rounded); row 0
    of the tensor becomes the bottom row of the file. The file is written under a temporary
    name in the same folder and then renamed, so ``path`` never holds a partial image."""
    image = image.detach().float().cpu()
    if image.dim() == 4:
        image = image_grid(image)
    if image.dim() == 2:
        image = image[..., None]
    if image.dim() != 3 or not 1 <= image.shape[2] <= 4:
        raise ValueError(f"image must have shape [H,W,C] or [B,H,W,C] with C in 1..4, got {list(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError("image holds NaN or Inf values")
    im = _to_pil(image)
    write_atomic(os.fspath(path), lambda fh: im.save(fh, format="PNG"))


def load_image(path) -> torch.Tensor:
    """Read an image file (PNG, JPEG, anything Pillow reads; the first frame of an animation) as
    a float32 ``[H,W,C]`` tensor in [0, 1] with **row 0 = the bottom row of the image**
    (rastlit's convention, the flip of the file). Channels as in the file: 1 (grey), 2 (grey +
    alpha), 3 (RGB) or 4 (RGBA); 16-bit grey is scaled by 1/65535, palette images become RGB
    (RGBA with transparency).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the path for a file
    that is not a readable image (unknown format, truncated or corrupt data)."""
    from PIL import Image

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path!r}")
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated / corrupt data raises here, not later
            arr = _pil_to_array(im)
    except Exception as e:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, zlib.error...
        raise ValueError(f"could not read image file {path!r}: {type(e).__name__}: {e}") from e
    return torch.from_numpy(arr[::-1].copy())  # a copy: ascontiguousarray keeps a one-row flip strided
