"""``data=synthetic``: a target mesh rendered by rastlit into the batch contract (demo and tests).

The target is a procedural mesh (no downloads) or any mesh file trimesh reads
(``data.target=path/to/mesh.obj``), optionally with a texture (its own, ``data.texture=path.png``
or ``procedural``). It is rendered through :class:`rastlit.nn.MeshRenderer` with the shading in
``data.render`` (by default Lambert under two coloured lights and an ambient term; ``unlit``
shows the albedo as is) from ``num_views`` training, ``num_val_views`` validation and
``num_test_views`` test cameras. The target mesh and texture are kept as ``gt_mesh`` /
``gt_texture`` for evaluation only: batches hold what the cameras saw, nothing more.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

import torch

from rastlit import mesh as rl_mesh
from rastlit.camera import Camera, orbit_views, perspective, random_views

from .base import PosedImagesDataModule, ViewDataset, background_rgb, make_views

__all__ = ["SyntheticDataModule", "PROCEDURAL_TARGETS", "procedural_texture", "load_target", "make_lights",
           "render_target"]

# Names accepted as data.target (functions of rastlit.mesh returning a Mesh, or icosphere).
PROCEDURAL_TARGETS = ("bumpy_sphere", "torus_knot", "torus", "cube", "uv_sphere", "icosphere")


def procedural_texture(size: int = 256, seed: int = 0) -> torch.Tensor:
    """A colourful ``[size, size, 3]`` pattern with detail at several scales (a coloured
    checkerboard, diagonal stripes and soft blobs), reproducible from ``seed``; row 0 at v = 0."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    v, u = torch.meshgrid(t, t, indexing="ij")
    cells = 8
    ci, cj = (v * cells).floor(), (u * cells).floor()
    palette = torch.rand(cells * cells, 3, generator=g, dtype=torch.float64) * 0.7 + 0.2
    base = palette[(ci * cells + cj).long()]
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * 6 * (u + v))
    img = base * (0.75 + 0.25 * stripes[..., None])
    centers = torch.rand(6, 2, generator=g, dtype=torch.float64)
    colors = torch.rand(6, 3, generator=g, dtype=torch.float64)
    for (cu, cv), col in zip(centers, colors):
        d2 = (u - cu) ** 2 + (v - cv) ** 2
        wgt = torch.exp(-d2 / (2 * 0.06**2))[..., None]
        img = img * (1 - 0.8 * wgt) + 0.8 * wgt * col
    return img.clamp(0, 1).to(torch.float32)


def load_target(target: str, procedural: dict | None = None, normalize: bool = True) -> "rl_mesh.Mesh":
    """A procedural target by name (one of :data:`PROCEDURAL_TARGETS`, built with the arguments
    ``procedural[target]``) or a mesh file; file meshes are centred and scaled into ``[-1,1]^3``
    (``normalize``) so the default cameras frame them."""
    kwargs = dict((procedural or {}).get(target) or {})
    if target in PROCEDURAL_TARGETS:
        if target == "icosphere":
            v, f = rl_mesh.icosphere(**kwargs)
            return rl_mesh.Mesh(verts=v, faces=f)
        return getattr(rl_mesh, target)(**kwargs)
    if not os.path.isfile(str(target)):
        raise FileNotFoundError(
            f"data.target={target!r} is neither a procedural target {PROCEDURAL_TARGETS} nor an existing file")
    m = rl_mesh.load_mesh(target)
    if normalize:
        v, _, _ = rl_mesh.normalize_to_unit_box(m.verts)
        m = dataclasses.replace(m, verts=v.contiguous())
    return m


def make_lights(lights: Sequence[dict] | None, dtype=torch.float32, device=None) -> list:
    """:class:`rastlit.shading.DirectionalLight` objects from config dicts
    ``{direction: [x,y,z], color: [r,g,b], intensity: s}`` (directions point towards the light)."""
    from rastlit.shading import DirectionalLight

    out = []
    for i, spec in enumerate(lights or []):
        spec = dict(spec)
        if "direction" not in spec:
            raise ValueError(f"data.render.lights[{i}] needs a direction (towards the light), got {spec}")
        out.append(DirectionalLight(
            direction=torch.as_tensor(spec["direction"], dtype=dtype, device=device),
            color=torch.as_tensor(spec.get("color", (1.0, 1.0, 1.0)), dtype=dtype, device=device),
            intensity=torch.as_tensor(float(spec.get("intensity", 1.0)), dtype=dtype, device=device)))
    return out


@torch.no_grad()
def render_target(mesh: "rl_mesh.Mesh", view: torch.Tensor, proj: torch.Tensor, resolution: Sequence[int],
                  render: dict | None = None, chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``mesh`` from the cameras ``(view [N,4,4], proj [N,4,4])`` through
    :class:`rastlit.nn.MeshRenderer`; ``render`` holds its settings (``shading``, ``ambient``,
    ``specular``, ``shininess``, ``filter_mode``, ``default_color``) and ``lights`` (a list of
    directional-light dicts, see :func:`make_lights`; none: a headlight). Returns
    ``(rgb [N,H,W,3], alpha [N,H,W,1])`` in [0, 1], black background, antialiased edges."""
    from rastlit.nn import MeshRenderer

    kw = dict(render or {})
    lights = make_lights(kw.pop("lights", None))
    renderer = MeshRenderer(tuple(int(r) for r in resolution), silhouette="antialias", **kw)
    rgbs, alphas = [], []
    for s in range(0, view.shape[0], chunk):
        cams = Camera(view[s:s + chunk].float(), proj[s:s + chunk].float())
        out = renderer(mesh, cams, lights or None)
        rgbs.append(out.rgb.float().clamp(0, 1))
        alphas.append(out.alpha.float().clamp(0, 1))
    return torch.cat(rgbs).contiguous(), torch.cat(alphas).contiguous()


class SyntheticDataModule(PosedImagesDataModule):
    """Renders ``target`` once from training, validation and test cameras (see the module docstring).

    Args:
        target: a procedural target name (:data:`PROCEDURAL_TARGETS`) or a mesh file path.
        procedural: ``{name: kwargs}``, the arguments of each procedural target's function (so
            switching ``target`` picks that target's own settings).
        normalize_target: centre and scale a mesh file into ``[-1,1]^3`` (the default cameras
            frame that box).
        texture: ``None`` (the mesh file's own texture if it has one), ``"procedural"`` or an
            image path; a texture needs a target with UVs.
        texture_size: side of the procedural texture (a power of two keeps all mip levels).
        num_views, num_val_views, num_test_views: camera counts of the three splits.
        cameras, val_cameras, test_cameras: ``"random"`` (uniform on the elevation band; the
            splits draw with ``seed``, ``seed + 1`` and ``seed + 2``) or ``"orbit"`` (evenly spaced
            in azimuth at ``val_elevation_deg``; held-out orbits are offset by half a step).
        resolution: image side (square) or ``[H, W]``.
        radius, fov_deg, near, far: the perspective cameras, all looking at the origin.
        elevation_range_deg: the band for random cameras.
        render: the target's renderer settings (:func:`render_target`).
        background: ``black``, ``white`` or an RGB triple behind the target.
        batch_size, seed, num_workers: the loaders.
    """

    def __init__(self, target: str = "bumpy_sphere", procedural: dict | None = None, normalize_target: bool = True,
                 texture: str | None = None,
                 texture_size: int = 256, num_views: int = 24, num_val_views: int = 8, num_test_views: int = 8,
                 cameras: str = "random", val_cameras: str = "orbit", test_cameras: str = "random",
                 resolution: Any = 128, radius: float = 3.0, fov_deg: float = 45.0, near: float = 0.5,
                 far: float = 10.0, elevation_range_deg: Sequence[float] = (-60.0, 60.0),
                 val_elevation_deg: float = 20.0, render: dict | None = None, background: Any = "black",
                 batch_size: int = 8, seed: int = 0, num_workers: int = 0):
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        for name, val in (("cameras", cameras), ("val_cameras", val_cameras), ("test_cameras", test_cameras)):
            if val not in ("random", "orbit"):
                raise ValueError(f"data.{name} must be 'random' or 'orbit', got {val!r}")
        for name, val in (("num_views", num_views), ("num_val_views", num_val_views),
                          ("num_test_views", num_test_views)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"data.{name} must be an int >= 1, got {val!r}")
        self.save_hyperparameters(logger=False)
        self.target, self.procedural = target, dict(procedural or {})
        self.normalize_target = bool(normalize_target)
        self.texture_arg, self.texture_size = texture, int(texture_size)
        self.counts = {"train": num_views, "val": num_val_views, "test": num_test_views}
        self.kinds = {"train": cameras, "val": val_cameras, "test": test_cameras}
        res = [resolution, resolution] if isinstance(resolution, int) else [int(r) for r in resolution]
        self._resolution = (res[0], res[1])
        self.radius, self.fov_deg, self.near, self.far = radius, fov_deg, near, far
        self.elevation_range_deg = tuple(float(x) for x in elevation_range_deg)
        self.val_elevation_deg = val_elevation_deg
        self.render_kwargs = dict(render or {})
        self.background = background_rgb(background)

    # -- target -----------------------------------------------------------------------------------
    def load_target_mesh(self) -> "rl_mesh.Mesh":
        """The target with the appearance it is rendered with (texture, vertex colours or none)."""
        m = load_target(self.target, self.procedural, normalize=self.normalize_target)
        tex = None
        if self.texture_arg not in (None, "procedural"):
            tex = rl_mesh.load_texture(self.texture_arg)[..., :3]
        elif self.texture_arg == "procedural":
            tex = procedural_texture(self.texture_size, self.seed)
        if tex is not None:
            if m.uv is None:
                raise ValueError(f"data.texture={self.texture_arg!r} needs a target with UVs; {self.target!r} has none")
            m = dataclasses.replace(m, texture=tex.contiguous())
        if m.texture is not None:
            m = dataclasses.replace(m, texture=m.texture[..., :3].float().contiguous())
        return m

    # -- cameras ----------------------------------------------------------------------------------
    def cameras_for(self, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(view [N,4,4], proj [4,4], eye [N,3])`` of a split."""
        n, kind = self.counts[split], self.kinds[split]
        k = {"train": 0, "val": 1, "test": 2}[split]
        if kind == "random":
            g = torch.Generator().manual_seed(self.seed + k)
            view, eye = random_views(n, self.radius, elevation_range_deg=self.elevation_range_deg, generator=g)
        else:
            # held-out orbits sit between the training orbit's azimuths (half / a quarter of its step)
            step = 360.0 / self.counts["train"]
            offset = {"train": 0.0, "val": 0.5 * step, "test": 0.25 * step}[split]
            view, eye = orbit_views(n, self.radius, self.val_elevation_deg, azimuth_offset_deg=offset)
        h, w = self._resolution
        proj = perspective(self.fov_deg, w / h, self.near, self.far)
        return view.float(), proj.float(), eye.float()

    def load_splits(self) -> tuple[ViewDataset, ViewDataset, ViewDataset]:
        m = self.load_target_mesh()
        # evaluation only (and the known geometry of texture recovery): shape and UVs, no appearance
        self.gt_mesh = dataclasses.replace(m, texture=None, vertex_colors=None)
        self.gt_texture = m.texture
        self.target_mesh = m  # the textured target (evaluation and export only)
        sets = []
        for split in ("train", "val", "test"):
            view, proj, eye = self.cameras_for(split)
            rgb, alpha = render_target(m, view, proj.expand(view.shape[0], 4, 4), self._resolution,
                                       {"background": self.background, **self.render_kwargs})
            sets.append(make_views((view, proj), eye, rgb, alpha))
        return tuple(sets)
