"""Saving rendered images: ``save_image(img, "out.png")`` with no imaging library.

Rendered images follow rastlit's convention (NHWC, **row 0 at the bottom**, NDC y = -1); image
files are top-down, so rows are flipped on the way out, as for textures (``rastlit.mesh``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .mesh import _png_encode, _to_uint8

__all__ = ["image_grid", "save_image"]


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


def save_image(image: torch.Tensor, path) -> None:
    """Write ``[H,W,C]`` (C in 1..4) or a batch ``[B,H,W,C]`` (tiled in one row) of floats in
    [0, 1] as an 8-bit PNG; row 0 of the tensor becomes the bottom row of the file."""
    image = image.detach().float().cpu()
    if image.dim() == 4:
        image = image_grid(image)
    if image.dim() == 2:
        image = image[..., None]
    if image.dim() != 3 or not 1 <= image.shape[2] <= 4:
        raise ValueError(f"image must have shape [H,W,C] or [B,H,W,C] with C in 1..4, got {list(image.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError("image holds NaN or Inf values")
    arr = np.ascontiguousarray(_to_uint8(image)[::-1])
    with open(os.fspath(path), "wb") as fh:
        fh.write(_png_encode(arr))
