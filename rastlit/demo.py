"""Render something real: ``python -m rastlit.demo [out.png]``.

A shaded icosphere floating over a checkered floor, seen in perspective, written as a PNG with
no imaging library (:func:`rastlit.image.save_image`).
"""

from __future__ import annotations

import sys
import time

import torch

from . import interpolate, rasterize
from .camera import look_at, perspective, transform_points
from .image import save_image
from .mesh import icosphere


def write_png(path: str, image: torch.Tensor) -> None:
    """Write ``[H,W,3]`` floats in [0, 1], row 0 at the bottom (rastlit's convention), as a PNG."""
    save_image(image.clamp(0, 1), path)


def render_demo(height: int = 384, width: int = 512) -> torch.Tensor:
    sv, sf = icosphere(4)
    sv = sv * 0.8 + torch.tensor([0.0, 0.9, 0.0])
    fv = torch.tensor([[-3.0, 0.0, -3.0], [3.0, 0.0, -3.0], [3.0, 0.0, 3.0], [-3.0, 0.0, 3.0]])
    ff = torch.tensor([[0, 2, 1], [0, 3, 2]], dtype=torch.int32)
    verts = torch.cat([sv, fv], 0)
    faces = torch.cat([sf, ff + sv.shape[0]], 0)
    normals = torch.cat([(sv - torch.tensor([0.0, 0.9, 0.0])) / 0.8, torch.tensor([[0.0, 1.0, 0.0]]).expand(4, 3)], 0)
    is_floor = torch.cat([torch.zeros(sv.shape[0], 1), torch.ones(4, 1)], 0)
    mvp = perspective(40.0, width / height, 0.5, 20.0) @ look_at((2.2, 2.0, 3.6), (0.0, 0.6, 0.0))
    pos = transform_points(mvp, verts)[None].contiguous()
    rast, rast_db = rasterize(pos, faces, (height, width))
    attr = torch.cat([normals, verts, is_floor], 1)[None].contiguous()
    feat, _ = interpolate(attr, rast, faces)
    n = torch.nn.functional.normalize(feat[..., 0:3], dim=-1)
    p, floor = feat[..., 3:6], feat[..., 6:7]
    light = torch.nn.functional.normalize(torch.tensor([0.5, 1.0, 0.4]), dim=0)
    diffuse = (n @ light).clamp(min=0)[..., None]
    checker = ((torch.floor(p[..., 0] * 2) + torch.floor(p[..., 2] * 2)) % 2)[..., None]
    albedo = floor * (0.35 + 0.45 * checker) + (1 - floor) * torch.tensor([0.85, 0.35, 0.2])
    color = albedo * (0.25 + 0.75 * diffuse)
    covered = (rast[..., 3:4] > 0).float()
    sky = torch.linspace(0.9, 0.6, height).view(1, height, 1, 1).expand(1, height, width, 1) * torch.tensor([0.6, 0.75, 1.0])
    return (color * covered + sky * (1 - covered))[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else "rastlit_demo.png"
    t0 = time.perf_counter()
    image = render_demo()
    write_png(out, image)
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, rendered in {time.perf_counter() - t0:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
