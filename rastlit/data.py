"""Multi-view data for the training tasks: a target rendered once from many cameras.

:class:`MultiViewDataModule` builds the target (a procedural mesh by default, no downloads, or any
mesh file trimesh reads: ``data.target=path/to/mesh.obj``; a texture image with
``data.texture=path.png``), renders it from ``num_views`` training cameras and ``num_val_views``
held-out validation cameras (random on a band of the view sphere, or an orbit), and serves the
views as batches of dicts:

``{"index": [B], "mvp": [B,4,4], "eye": [B,3], "rgb": [B,H,W,3], "alpha": [B,H,W,1],
"normals": [B,H,W,3]}`` (``normals`` only in ``mode="shaded"``); images follow rastlit's
convention (row 0 at the bottom).

``mode="shaded"`` (mesh fitting) renders the target with :func:`rastlit.tasks.render.render_shaded`;
``mode="textured"`` (texture recovery) with :func:`rastlit.tasks.render.render_textured`, which
needs a mesh with UVs (the default target in that mode is ``uv_sphere``) and a texture (the
mesh's own, the file ``texture``, or a procedural pattern).

Under DDP every rank renders the same views (they are deterministic in ``seed``) and Lightning's
distributed sampler shards them across ranks.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rastlit import mesh as rl_mesh
from rastlit._source_tree import use_source_tree_subpackages
from rastlit.camera import orbit_views, perspective, random_views

use_source_tree_subpackages()

__all__ = ["MultiViewDataModule", "ViewDataset", "EpochShuffleSampler", "procedural_texture", "load_target",
           "load_texture_image", "save_png", "PROCEDURAL_TARGETS"]

# Names accepted as data.target (functions of rastlit.mesh returning a Mesh, or icosphere).
PROCEDURAL_TARGETS = ("bumpy_sphere", "torus_knot", "torus", "cube", "uv_sphere", "icosphere")


# ----------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------

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


def load_texture_image(path: str) -> torch.Tensor:
    """An image file as ``[H,W,3]`` float32 in [0,1], flipped so that row 0 is at v = 0 (the
    bottom of the picture, as OBJ/glTF UVs and ``rastlit.texture`` expect)."""
    from PIL import Image
    import numpy as np

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).flip(0).contiguous()


def save_png(image: torch.Tensor, path: str) -> None:
    """Write ``[H,W,C]`` floats in [0,1] with row 0 at the BOTTOM (rastlit's convention) as a
    top-down PNG (:func:`rastlit.image.save_image`), creating the folder if needed."""
    from rastlit.image import save_image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_image(image.detach().float().clamp(0, 1), path)


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
    if not os.path.isfile(target):
        raise FileNotFoundError(
            f"data.target={target!r} is neither a procedural target {PROCEDURAL_TARGETS} nor an existing file")
    m = rl_mesh.load_mesh(target)
    if normalize:
        v, _, _ = rl_mesh.normalize_to_unit_box(m.verts)
        m = dataclasses.replace(m, verts=v.contiguous())
    return m


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------

class ViewDataset(Dataset):
    """Pre-rendered views: each item a dict of tensors (see the module docstring)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        n = {t.shape[0] for t in tensors.values()}
        if len(n) != 1:
            raise ValueError(f"all view tensors need the same length, got {sorted(n)}")
        self.tensors = tensors
        self.n = n.pop()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``seed + epoch``: reproducible, and a run resumed
    from a checkpoint sees the same order as an uninterrupted one (Lightning calls
    :meth:`set_epoch` every epoch)."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


# ----------------------------------------------------------------------------------------------
# The data module
# ----------------------------------------------------------------------------------------------

class MultiViewDataModule(pl.LightningDataModule):
    """Renders ``target`` once from ``num_views`` training and ``num_val_views`` validation cameras.

    Args:
        mode: ``"shaded"`` (mesh fitting: RGB, normal map, silhouette) or ``"textured"``
            (texture recovery: the texture seen through the mesh's UVs).
        target: a procedural target name (:data:`PROCEDURAL_TARGETS`) or a mesh file path.
        procedural: ``{name: kwargs}``, the arguments of each procedural target's function (so
            switching ``target`` picks that target's own settings).
        texture: ``"procedural"``, an image path, or ``None`` (the mesh's own texture if it has
            one, else procedural). Used in ``"textured"`` mode only.
        texture_size: side of the procedural texture (a power of two keeps all mip levels).
        num_views, num_val_views: training / held-out validation camera counts.
        cameras, val_cameras: ``"random"`` (uniform on the elevation band; training draws with
            ``seed``, validation with ``seed + 1``) or ``"orbit"`` (evenly spaced in azimuth at
            ``val_elevation_deg``; validation orbits are offset by half a step so they are new views).
        resolution: image side (square) or ``[H, W]``.
        radius, fov_deg, near, far: the perspective cameras, all looking at the origin.
        elevation_range_deg: the band for random cameras.
        batch_size: views per training step (validation uses the same).
        render: keyword arguments of the renderer (e.g. ``silhouette``, lights), shared with the
            task so targets and predictions are rendered alike.
    """

    def __init__(self, mode: str = "shaded", target: str = "bumpy_sphere", procedural: dict | None = None,
                 texture: str | None = None, texture_size: int = 256, num_views: int = 24, num_val_views: int = 8,
                 cameras: str = "random", val_cameras: str = "orbit", resolution: Any = 128, radius: float = 3.0,
                 fov_deg: float = 45.0, near: float = 0.5, far: float = 10.0,
                 elevation_range_deg: Sequence[float] = (-60.0, 60.0), val_elevation_deg: float = 20.0,
                 batch_size: int = 8, seed: int = 0, render: dict | None = None, num_workers: int = 0):
        super().__init__()
        if mode not in ("shaded", "textured"):
            raise ValueError(f"data.mode must be 'shaded' or 'textured', got {mode!r}")
        for name, val in (("cameras", cameras), ("val_cameras", val_cameras)):
            if val not in ("random", "orbit"):
                raise ValueError(f"data.{name} must be 'random' or 'orbit', got {val!r}")
        if num_views < 1 or num_val_views < 1:
            raise ValueError("data.num_views and data.num_val_views must be >= 1")
        self.save_hyperparameters(logger=False)
        self.mode, self.target, self.procedural = mode, target, dict(procedural or {})
        self.texture_arg, self.texture_size = texture, texture_size
        self.num_views, self.num_val_views = num_views, num_val_views
        self.cameras, self.val_cameras = cameras, val_cameras
        res = [resolution, resolution] if isinstance(resolution, int) else [int(r) for r in resolution]
        self.resolution = (res[0], res[1])
        self.radius, self.fov_deg, self.near, self.far = radius, fov_deg, near, far
        self.elevation_range_deg = tuple(float(x) for x in elevation_range_deg)
        self.val_elevation_deg = val_elevation_deg
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.render_kwargs = dict(render or {})
        self.target_mesh: rl_mesh.Mesh | None = None
        self.target_texture: torch.Tensor | None = None
        self.train_set: ViewDataset | None = None
        self.val_set: ViewDataset | None = None

    # -- cameras --------------------------------------------------------------------------------
    def _views(self, n: int, kind: str, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "random":
            g = torch.Generator().manual_seed(self.seed + (1 if validation else 0))
            view, eye = random_views(n, self.radius, elevation_range_deg=self.elevation_range_deg, generator=g)
        else:
            offset = (180.0 / n) if validation else 0.0
            view, eye = orbit_views(n, self.radius, self.val_elevation_deg, azimuth_offset_deg=offset)
        proj = perspective(self.fov_deg, self.resolution[1] / self.resolution[0], self.near, self.far)
        return (proj @ view).float().contiguous(), eye.float().contiguous()

    # -- rendering -------------------------------------------------------------------------------
    def _load(self) -> None:
        target = self.target
        if target is None:
            target = "bumpy_sphere" if self.mode == "shaded" else "uv_sphere"
        m = load_target(target, self.procedural)
        if self.mode == "textured":
            if m.uv is None:
                raise ValueError(f"data.mode=textured needs a target with UVs; {target!r} has none")
            if self.texture_arg not in (None, "procedural"):
                tex = load_texture_image(self.texture_arg)
            elif self.texture_arg is None and m.texture is not None:
                tex = m.texture[..., :3].float()
            else:
                tex = procedural_texture(self.texture_size, self.seed)
            self.target_texture = tex.contiguous()
        self.target_mesh = m

    @torch.no_grad()
    def render_views(self, mvp: torch.Tensor, eye: torch.Tensor, chunk: int = 8) -> dict[str, torch.Tensor]:
        """Render the target from the cameras ``mvp [N,4,4]`` (in chunks of ``chunk`` views)."""
        from rastlit.tasks.render import render_shaded, render_textured

        m = self.target_mesh
        outs: dict[str, list[torch.Tensor]] = {}
        for s in range(0, mvp.shape[0], chunk):
            if self.mode == "shaded":
                kw = dict(self.render_kwargs)
                kw["silhouette"] = "antialias" if kw.get("silhouette", "antialias") != "none" else "none"
                kw.pop("soft", None)
                vc = None if m.vertex_colors is None else m.vertex_colors[:, :3]
                r = render_shaded(m.verts, m.faces, mvp[s:s + chunk], eye[s:s + chunk], self.resolution,
                                  vertex_colors=vc, **kw)
                parts = {"rgb": r.rgb, "alpha": r.alpha, "normals": r.normals}
            else:
                r = render_textured(m.verts, m.faces, m.uv, m.uv_faces, self.target_texture, mvp[s:s + chunk],
                                    self.resolution, **self.render_kwargs)
                parts = {"rgb": r.rgb, "alpha": r.alpha}
            for k, v in parts.items():
                outs.setdefault(k, []).append(v.float().clamp(0, 1))
        return {k: torch.cat(v, 0).contiguous() for k, v in outs.items()}

    def _make_set(self, n: int, kind: str, validation: bool) -> ViewDataset:
        mvp, eye = self._views(n, kind, validation)
        imgs = self.render_views(mvp, eye)
        return ViewDataset({"index": torch.arange(n), "mvp": mvp, "eye": eye, **imgs})

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._load()
        self.train_set = self._make_set(self.num_views, self.cameras, validation=False)
        self.val_set = self._make_set(self.num_val_views, self.val_cameras, validation=True)

    # -- loaders ---------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=min(self.batch_size, len(self.train_set)),
                          sampler=EpochShuffleSampler(len(self.train_set), self.seed),
                          num_workers=self.num_workers, drop_last=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=min(self.batch_size, len(self.val_set)), shuffle=False,
                          num_workers=self.num_workers)
