"""The two renderers the tasks (and the data module, for the targets) use, composed from rastlit's ops.

Both take world-space geometry and a batch of cameras given as ``mvp [B,4,4]`` (world to clip)
and ``eye [B,3]`` (camera centres) and return NHWC images with rastlit's convention (row 0 is the
bottom row; ``image.flip(1)`` shows them top-down):

- :func:`render_shaded`: Lambert shading of a grey (or per-vertex coloured) mesh under a headlight
  (a directional light from each camera) plus a fixed key light and an ambient term; also the
  normal map (``(n + 1) / 2``) and the silhouette ``alpha``.
- :func:`render_textured`: the texture sampled through the mesh's UVs (trilinear mipmapping from
  the UV derivatives, as nvdiffrast's earth sample), unlit.

Silhouette gradients (what makes geometry learnable from images) come from
``rastlit.antialias`` (``silhouette="antialias"``) or from soft rasterization
(``silhouette="soft"``: ``alpha`` is ``rastlit.rasterize_soft(...).alpha``, the colours still come
from the hard rasterizer). With ``silhouette="none"`` the images carry no visibility gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

import rastlit
from rastlit import mesh as rl_mesh
from rastlit.camera import transform_points
from rastlit.shading import AmbientLight, DirectionalLight, lambertian, normal_to_rgb, safe_normalize

__all__ = ["Render", "project", "render_shaded", "render_textured", "SILHOUETTE_MODES"]

SILHOUETTE_MODES = ("antialias", "soft", "none")


@dataclass
class Render:
    """Images of one batch of views, all ``[B,H,W,C]`` (row 0 at the bottom)."""

    rgb: torch.Tensor       # [B,H,W,3] colour on a black background
    alpha: torch.Tensor     # [B,H,W,1] coverage (antialiased or soft; in [0, 1])
    normals: torch.Tensor | None = None  # [B,H,W,3] normal map (n + 1) / 2, zero background
    rast: torch.Tensor | None = None     # [B,H,W,4] the hard rasterizer's output


def project(verts: torch.Tensor, mvp: torch.Tensor) -> torch.Tensor:
    """World points ``[V,3]`` to clip space ``[B,V,4]`` (contiguous) for the cameras ``mvp [B,4,4]``."""
    return transform_points(mvp, verts.to(mvp.dtype).unsqueeze(0)).contiguous()


def _check_silhouette(silhouette: str) -> None:
    if silhouette not in SILHOUETTE_MODES:
        raise ValueError(f"silhouette must be one of {SILHOUETTE_MODES}, got {silhouette!r}")


def _soft_alpha(clip, faces, resolution, soft: dict | None) -> torch.Tensor:
    out = rastlit.rasterize_soft(clip, faces, resolution, **(soft or {}))
    return out.alpha.unsqueeze(-1)


def render_shaded(verts: torch.Tensor, faces: torch.Tensor, mvp: torch.Tensor, eye: torch.Tensor,
                  resolution: Sequence[int], *, albedo=(0.75, 0.75, 0.75), vertex_colors: torch.Tensor | None = None,
                  key_light: Sequence[float] = (0.4, 1.0, 0.3), key_intensity: float = 0.5,
                  headlight_intensity: float = 0.6, ambient: float = 0.15, silhouette: str = "antialias",
                  soft: dict | None = None) -> Render:
    """Shaded renders of the mesh ``(verts [V,3], faces [F,3] int32)`` from the cameras ``mvp``.

    Light: ``headlight_intensity`` from each camera's direction (``eye``), ``key_intensity`` from
    the fixed world direction ``key_light`` (towards the light) and ``ambient``; surface colour
    ``vertex_colors [V,3]`` when given, else the constant ``albedo``. Smooth (area-weighted vertex)
    normals. ``alpha`` and the colours are antialiased together when ``silhouette='antialias'``.
    """
    _check_silhouette(silhouette)
    h, w = int(resolution[0]), int(resolution[1])
    clip = project(verts, mvp)
    rast, _ = rastlit.rasterize(clip, faces, (h, w))
    vn = rl_mesh.vertex_normals(verts, faces)
    attrs = vn if vertex_colors is None else torch.cat([vn, vertex_colors.to(vn)], -1)
    feat, _ = rastlit.interpolate(attrs.unsqueeze(0).contiguous(), rast, faces)
    mask = (rast[..., 3:4] > 0).to(verts.dtype)
    n = safe_normalize(feat[..., :3])
    alb = albedo if vertex_colors is None else feat[..., 3:6]
    lights = [
        DirectionalLight(direction=eye.to(verts.dtype), intensity=headlight_intensity),
        DirectionalLight(direction=torch.tensor(key_light, dtype=verts.dtype, device=verts.device),
                         intensity=key_intensity),
    ]
    rgb = lambertian(n, alb, lights, ambient=AmbientLight(intensity=ambient)) * mask
    nrm = normal_to_rgb(n, mask)
    img = torch.cat([rgb, nrm, mask], -1)
    if silhouette == "antialias":
        img = rastlit.antialias(img.contiguous(), rast, clip, faces)
    alpha = img[..., 6:7]
    if silhouette == "soft":
        alpha = _soft_alpha(clip, faces, (h, w), soft)
    return Render(rgb=img[..., 0:3], alpha=alpha, normals=img[..., 3:6], rast=rast)


def render_textured(verts: torch.Tensor, faces: torch.Tensor, uv: torch.Tensor, uv_faces: torch.Tensor,
                    tex: torch.Tensor, mvp: torch.Tensor, resolution: Sequence[int], *,
                    filter_mode: str = "linear-mipmap-linear", max_mip_level: int | None = None,
                    antialias: bool = True) -> Render:
    """Unlit textured renders: ``tex [Ht,Wt,C]`` (row 0 at v = 0) sampled at the interpolated
    ``uv [Vt,2]`` (indexed by ``uv_faces [F,3]``, so UV seams need no duplicated vertices), with
    mipmapping from the UV screen-space derivatives. Background black; edges antialiased when
    ``antialias`` (the geometry is fixed, so this only smooths the target/prediction alike)."""
    h, w = int(resolution[0]), int(resolution[1])
    clip = project(verts, mvp)
    rast, rast_db = rastlit.rasterize(clip, faces, (h, w))
    uvi, uv_da = rastlit.interpolate(uv.to(tex.dtype).unsqueeze(0).contiguous(), rast, uv_faces, rast_db,
                                     diff_attrs="all")
    mask = (rast[..., 3:4] > 0).to(tex.dtype)
    col = rastlit.texture(tex.unsqueeze(0).contiguous(), uvi, uv_da, filter_mode=filter_mode,
                          max_mip_level=max_mip_level)
    img = torch.cat([col[..., :3] * mask, mask], -1)
    if antialias:
        img = rastlit.antialias(img.contiguous(), rast, clip, faces)
    return Render(rgb=img[..., 0:3], alpha=img[..., 3:4], rast=rast)
