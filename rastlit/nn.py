"""``torch.nn.Module`` layers over the functional ops.

Each layer holds its op's settings (resolution, filter and boundary modes, sigma, K...) as
constructor arguments, shows them in ``repr`` and takes the tensors in ``forward`` in the order of
the functional op, so a model reads like nvdiffrast code with the settings moved out::

    raster = rastlit.nn.Rasterize((256, 256))
    interp = rastlit.nn.Interpolate()
    aa = rastlit.nn.Antialias()

    rast, rast_db = raster(pos_clip, tri)
    color, _ = interp(vertex_colors, rast, tri)
    color = aa(color, rast, pos_clip, tri)

Derived state that only depends on an input which usually stays fixed is cached: the mip pyramid
of a texture that does not require grad (``Texture``) and the edge topology of the triangle
tensor (``Antialias``). A cache entry is keyed on the tensor's identity, shape, device, dtype and
in-place version counter, so it is rebuilt whenever the input changes (a new tensor, an in-place
edit, ``.to(device)``), never silently reused. Caches are plain attributes, not state-dict entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Sequence

import torch
from torch import nn

from . import _args, ops

__all__ = ["Rasterize", "Interpolate", "Texture", "Antialias", "SoftRasterize", "DepthPeel", "MeshRenderer", "RenderOutput"]


def _tensor_key(t: torch.Tensor) -> tuple:
    """Identity of a tensor's current contents: storage, view, device, dtype and version."""
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.device, t.dtype, t._version)


class Rasterize(nn.Module):
    """:func:`rastlit.rasterize` with a fixed ``resolution`` and ``grad_db``.

    ``forward(pos, tri, ranges=None) -> (rast, rast_db)``: pos ``[B,V,4]`` clip space (or ``[V,4]``
    with ``ranges`` ``[B,2]``), tri ``[T,3]`` int32; outputs ``[B,H,W,4]`` each.
    """

    def __init__(self, resolution: Sequence[int], grad_db: bool = True):
        super().__init__()
        self.resolution = ops._resolution(resolution)
        self.grad_db = _args.flag(grad_db, "grad_db")

    def forward(self, pos, tri, ranges=None):
        return ops.rasterize(pos, tri, self.resolution, ranges=ranges, grad_db=self.grad_db)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, grad_db={self.grad_db}"


class DepthPeel(nn.Module):
    """The first ``num_layers`` depth layers (:class:`rastlit.DepthPeeler`) as lists.

    ``forward(pos, tri, ranges=None) -> (rasts, rast_dbs)``, each a list of ``num_layers``
    tensors ``[B,H,W,4]``, nearest layer first.
    """

    def __init__(self, resolution: Sequence[int], num_layers: int, grad_db: bool = True):
        super().__init__()
        self.resolution = ops._resolution(resolution)
        self.num_layers = _args.count(num_layers, "num_layers", 1)
        self.grad_db = _args.flag(grad_db, "grad_db")

    def forward(self, pos, tri, ranges=None):
        rasts, dbs = [], []
        with ops.DepthPeeler(pos, tri, self.resolution, ranges=ranges, grad_db=self.grad_db) as peeler:
            for _ in range(self.num_layers):
                r, d = peeler.rasterize_next_layer()
                rasts.append(r)
                dbs.append(d)
        return rasts, dbs

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, num_layers={self.num_layers}, grad_db={self.grad_db}"


class Interpolate(nn.Module):
    """:func:`rastlit.interpolate` with fixed ``diff_attrs``.

    ``forward(attr, rast, tri, rast_db=None) -> (out, out_da)``; ``rast_db`` is required when
    ``diff_attrs`` is set.
    """

    def __init__(self, diff_attrs: Sequence[int] | str | None = None):
        super().__init__()
        # kinds checked now; the index range once forward sees attr (the op raises IndexError)
        self.diff_attrs = None if diff_attrs is None else _args.diff_attrs(diff_attrs, None)

    def forward(self, attr, rast, tri, rast_db=None):
        return ops.interpolate(attr, rast, tri, rast_db=rast_db, diff_attrs=self.diff_attrs)

    def extra_repr(self) -> str:
        return f"diff_attrs={self.diff_attrs!r}"


class Texture(nn.Module):
    """:func:`rastlit.texture` with fixed filter and boundary modes.

    ``forward(tex, uv, uv_da=None, mip_level_bias=None) -> color`` with tex ``[B,Ht,Wt,C]``, uv
    ``[B,H,W,2]``, uv_da ``[B,H,W,4]``, mip_level_bias ``[B,H,W]``; color ``[B,H,W,C]``. With
    ``boundary_mode='cube'``: tex is a cube map ``[B,6,S,S,C]``, uv ``[B,H,W,3]`` directions and
    uv_da ``[B,H,W,6]`` (see :func:`rastlit.texture`).

    For mipmapped filter modes the pyramid of ``tex`` is cached while ``tex`` does not require
    grad and stays the same tensor with the same contents; a texture being optimized (requires
    grad) gets its pyramid rebuilt on every call, so gradients flow through it.
    """

    _MIPMAPPED = ("linear-mipmap-nearest", "linear-mipmap-linear")

    def __init__(self, filter_mode: str = "auto", boundary_mode: str = "wrap", max_mip_level: int | None = None):
        super().__init__()
        self.filter_mode = _args.choice(filter_mode, "filter_mode", ("auto", *ops._TEXTURE_FILTERS))
        self.boundary_mode = _args.choice(boundary_mode, "boundary_mode", tuple(ops._TEXTURE_BOUNDARIES))
        self.max_mip_level = _args.max_mip_level(max_mip_level)
        self._mip_key = None
        self._mip = None

    def _uses_mip(self, uv_da, mip_level_bias) -> bool:
        if self.filter_mode == "auto":
            return uv_da is not None or mip_level_bias is not None
        return self.filter_mode in self._MIPMAPPED

    def mip(self, tex: torch.Tensor):
        """The (cached) mip pyramid of ``tex``, or None when ``tex`` requires grad."""
        if tex.requires_grad and torch.is_grad_enabled():
            return None
        key = (_tensor_key(tex), self.max_mip_level)
        if self._mip_key != key:
            self._mip = ops.texture_construct_mip(tex, max_mip_level=self.max_mip_level,
                                                  cube_mode=self.boundary_mode == "cube")
            self._mip_key = key
        return self._mip

    def forward(self, tex, uv, uv_da=None, mip_level_bias=None):
        mip = self.mip(tex) if self._uses_mip(uv_da, mip_level_bias) else None
        return ops.texture(tex, uv, uv_da=uv_da, mip_level_bias=mip_level_bias, mip=mip,
                           filter_mode=self.filter_mode, boundary_mode=self.boundary_mode,
                           max_mip_level=self.max_mip_level)

    def extra_repr(self) -> str:
        return (f"filter_mode={self.filter_mode!r}, boundary_mode={self.boundary_mode!r}, "
                f"max_mip_level={self.max_mip_level}")


class Antialias(nn.Module):
    """:func:`rastlit.antialias` with a fixed ``pos_gradient_boost``.

    ``forward(color, rast, pos, tri) -> color``. The edge topology of ``tri`` is built once and
    reused while ``tri`` stays the same tensor with the same contents.
    """

    def __init__(self, pos_gradient_boost: float = 1.0):
        super().__init__()
        self.pos_gradient_boost = _args.number(pos_gradient_boost, "pos_gradient_boost")
        self._hash_key = None
        self._hash = None

    def topology_hash(self, tri: torch.Tensor) -> torch.Tensor:
        key = _tensor_key(tri)
        if self._hash_key != key:
            self._hash = ops.antialias_construct_topology_hash(tri)
            self._hash_key = key
        return self._hash

    def forward(self, color, rast, pos, tri):
        return ops.antialias(color, rast, pos, tri, topology_hash=self.topology_hash(tri),
                             pos_gradient_boost=self.pos_gradient_boost)

    def extra_repr(self) -> str:
        return f"pos_gradient_boost={self.pos_gradient_boost}"


class SoftRasterize(nn.Module):
    """:func:`rastlit.rasterize_soft` with fixed resolution, ``faces_per_pixel``, ``blur_radius``
    and ``sigma`` (PyTorch3D's meaning; the defaults are its silhouette-tutorial settings).

    ``forward(pos, tri) -> SoftRasterOutput`` (see :func:`rastlit.rasterize_soft`). Other
    keyword arguments are the flags of :func:`rastlit.rasterize_soft` (``perspective_correct``,
    ``clip_barycentric_coords``).
    """

    _OPTIONS = ("perspective_correct", "clip_barycentric_coords")

    def __init__(self, resolution: Sequence[int], faces_per_pixel: int = 50, sigma: float = 1e-4,
                 blur_radius: float | None = None, **kwargs):
        super().__init__()
        self.resolution = ops._resolution(resolution)
        self.faces_per_pixel = _args.count(faces_per_pixel, "faces_per_pixel", 1, ops.MAX_FACES_PER_PIXEL)
        self.sigma = _args.number(sigma, "sigma", positive=True)
        # default as PyTorch3D's tutorial: the squared distance at which a face's probability is 1e-4
        self.blur_radius = ops.soft_blur_radius(self.sigma) if blur_radius is None else _args.number(
            blur_radius, "blur_radius", minimum=0.0, expected="a finite squared NDC distance >= 0 or None")
        unknown = sorted(set(kwargs) - set(self._OPTIONS))
        if unknown:
            raise TypeError(f"SoftRasterize got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                            f"the options of rasterize_soft it passes on are {', '.join(map(repr, self._OPTIONS))}")
        self.kwargs = {k: _args.flag(v, k) if v is not None or k != "clip_barycentric_coords" else v
                       for k, v in kwargs.items()}

    def forward(self, pos, tri):
        return ops.rasterize_soft(pos, tri, self.resolution, faces_per_pixel=self.faces_per_pixel,
                                  blur_radius=self.blur_radius, sigma=self.sigma, **self.kwargs)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return (f"resolution={self.resolution}, faces_per_pixel={self.faces_per_pixel}, sigma={self.sigma}, "
                f"blur_radius={self.blur_radius:.6g}{extra}")


# ------------------------------------------------------------------------------------ renderer


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """The RGB of colours with C channels: grey (C = 1) and grey + alpha (C = 2) repeat their
    first channel; C >= 3 keeps the first three (RGBA drops the alpha)."""
    return x[..., :3] if x.shape[-1] >= 3 else x[..., :1].expand(*x.shape[:-1], 3)


class RenderOutput(dict):
    """The images :class:`MeshRenderer` returns, as a dict with attribute access:

    - ``rgb``: shaded colour composited over the background, ``[B,H,W,3]``;
    - ``alpha``: coverage, antialiased (``silhouette='antialias'``), soft
      (``silhouette='soft'``) or hard (``'none'``), ``[B,H,W,1]``;
    - ``depth``: eye-space depth (distance along the viewing axis, > 0 in front of the camera),
      0 on background, ``[B,H,W,1]``;
    - ``normals``: unit world-space normals, 0 on background, ``[B,H,W,3]``;
    - ``mask``: hard coverage (1 where a triangle is visible), ``[B,H,W,1]``;
    - ``rast``: the rasterizer output ``[B,H,W,4]`` (always NHWC, row 0 at the bottom).

    With ``layout='nchw'`` the images (not ``rast``) are ``[B,C,H,W]`` with row 0 at the TOP.
    """

    __getattr__ = dict.__getitem__


class MeshRenderer(nn.Module):
    """Mesh + cameras (+ lights) in, images out.

    ``forward(mesh, cameras, lights=None) -> RenderOutput``: ``mesh`` a :class:`rastlit.mesh.Mesh`
    (one mesh, drawn in every view; its ``verts`` may require grad, as may a texture), ``cameras``
    a :class:`rastlit.camera.Camera` batch of ``B`` views, ``lights`` a light or list of lights
    (:mod:`rastlit.shading`; directions point towards the light). Without lights, a headlight
    (a directional light from each camera's position) plus the ``ambient`` term is used.

    Settings:

    - ``resolution``: ``(H, W)``.
    - ``silhouette``: how ``alpha`` (and the colour at silhouette edges) is made: ``'antialias'``
      (analytic, nvdiffrast-style; gives geometry gradients at silhouettes), ``'soft'``
      (SoftRas/PyTorch3D soft silhouette from :func:`rastlit.rasterize_soft`, settings in
      ``soft``), or ``'none'`` (hard coverage, no silhouette gradients).
    - ``shading``: ``'lambert'``, ``'phong'`` (Blinn-Phong with ``specular``, ``shininess``) or
      ``'unlit'`` (the albedo as is).
    - Albedo comes from the texture (``mesh.texture`` sampled at ``mesh.uv`` with mipmapping
      from the UV derivatives), else the first three vertex colours, else ``default_color``.
    - ``background``: a number or RGB triple composited where nothing is drawn.
    - ``layout``: ``'nhwc'`` (rastlit's and nvdiffrast's convention: ``[B,H,W,C]``, row 0 at
      the bottom, NDC y = -1) or ``'nchw'`` (``[B,C,H,W]`` flipped so that row 0 is the top, as
      torchvision, torchmetrics and image files expect).
    """

    def __init__(self, resolution: Sequence[int], silhouette: str = "antialias", shading: str = "lambert",
                 background=0.0, ambient: float = 0.25, default_color=(0.7, 0.7, 0.7), specular: float = 0.3,
                 shininess: float = 32.0, filter_mode: str = "auto", boundary_mode: str = "wrap",
                 soft: dict | None = None, layout: str = "nhwc", pos_gradient_boost: float = 1.0):
        super().__init__()
        self.silhouette = _args.choice(silhouette, "silhouette", ("antialias", "soft", "none"))
        self.shading = _args.choice(shading, "shading", ("lambert", "phong", "unlit"))
        self.layout = _args.choice(layout, "layout", ("nhwc", "nchw"))
        self.resolution = ops._resolution(resolution)
        self.ambient = _args.number(ambient, "ambient")
        self.specular = _args.number(specular, "specular")
        self.shininess = _args.number(shininess, "shininess")
        self.register_buffer("background", torch.tensor(_args.color(background, "background"), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("default_color", torch.tensor(_args.color(default_color, "default_color"),
                                                           dtype=torch.float32), persistent=False)
        if soft is not None and not isinstance(soft, Mapping):
            raise TypeError(f"soft must be a dict of SoftRasterize settings (faces_per_pixel, sigma, blur_radius, "
                            f"perspective_correct, clip_barycentric_coords) or None, got {soft!r}")
        self.rasterize = Rasterize(self.resolution)
        self.texture = Texture(filter_mode=filter_mode, boundary_mode=boundary_mode)
        self.antialias = Antialias(pos_gradient_boost=pos_gradient_boost)
        soft = SoftRasterize(self.resolution, **(soft or {}))  # validates the settings even when unused
        self.soft = soft if silhouette == "soft" else None

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, silhouette={self.silhouette!r}, shading={self.shading!r}, "
                f"layout={self.layout!r}")

    def forward(self, mesh, cameras, lights=None) -> RenderOutput:
        from . import shading as sh
        from .camera import Camera
        from .mesh import Mesh

        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a rastlit.mesh.Mesh, got {type(mesh).__name__}")
        if not isinstance(cameras, Camera):
            raise TypeError(f"cameras must be a rastlit.camera.Camera (a batch of views), got {type(cameras).__name__}")
        # Everything follows the mesh's dtype: float64 meshes render in float64, other float types
        # (float16, bfloat16) in float32; cameras are cast along (differentiably), lights are cast
        # by the shading functions.
        dt = torch.float64 if mesh.verts.dtype == torch.float64 else torch.float32
        verts, faces = mesh.verts.to(dt), mesh.faces
        if cameras.dtype != dt:
            cameras = cameras.to(dtype=dt)
        B = len(cameras)
        clip = cameras.project(verts)  # [B,V,4]
        rast, rast_db = self.rasterize(clip, faces)
        mask = (rast[..., 3:4] > 0).to(dt)

        # One interpolate for everything per-vertex: normals, world position, eye depth, colours.
        normals = mesh.normals.to(dt) if mesh.normals is not None else mesh.vertex_normals().to(dt)
        view = cameras.view.to(dt)
        eye_depth = -(torch.einsum("vk,bk->bv", verts, view[:, 2, :3]) + view[:, 2, 3:4])  # [B,V]
        parts = [normals.expand(B, -1, -1), verts.expand(B, -1, -1), eye_depth.unsqueeze(-1)]
        use_vc = mesh.texture is None and mesh.vertex_colors is not None
        if use_vc:  # the colour channels only (see Mesh: 1 grey, 2 grey + alpha, 3+ RGB first)
            vc = mesh.vertex_colors
            parts.append((vc[:, :3] if vc.shape[1] >= 3 else vc[:, :1]).to(dt).expand(B, -1, -1))
        attr = torch.cat(parts, -1).contiguous()
        feat, _ = ops.interpolate(attr, rast, faces)
        n = sh.safe_normalize(feat[..., 0:3])
        p, depth = feat[..., 3:6], feat[..., 6:7]

        if mesh.texture is not None:
            uv, uv_da = ops.interpolate(mesh.uv[None].to(dt), rast, mesh.uv_faces, rast_db, diff_attrs="all")
            albedo = _rgb(self.texture(mesh.texture[None].to(dt), uv, uv_da))
        elif use_vc:
            albedo = _rgb(feat[..., 7:])
        else:
            albedo = self.default_color.to(dt).expand_as(n)

        if lights is None:
            try:
                lights = [sh.DirectionalLight(cameras.eye.to(dt))]
            except ValueError as e:  # the light's own check; name what the caller passed
                raise ValueError("MeshRenderer: cameras hold NaN or Inf (their eye positions are not finite), "
                                 "so the default headlight has no direction; check cameras.view") from e
        if self.shading == "lambert":
            color = sh.lambertian(n, albedo, lights, ambient=self.ambient, positions=p)
        elif self.shading == "phong":
            color = sh.blinn_phong(n, p, cameras.eye.to(dt), albedo, lights, specular=self.specular,
                                   shininess=self.shininess, ambient=self.ambient)
        else:
            color = albedo
        bg = self.background.to(dt)
        rgb = color * mask + bg * (1 - mask)

        if self.silhouette == "antialias":
            rgba = self.antialias(torch.cat([rgb, mask], -1).contiguous(), rast, clip, faces)
            rgb, alpha = rgba[..., :3], rgba[..., 3:4]
        elif self.silhouette == "soft":
            try:
                alpha = self.soft(clip, faces).alpha.unsqueeze(-1)
            except ValueError as e:
                if not str(e).startswith("pos "):
                    raise
                # The op names its own argument (pos, the clip-space positions); ours are the mesh
                # and the cameras, which make them.
                if "NaN or Inf" in str(e):
                    bad = "mesh.verts holds" if not bool(torch.isfinite(verts).all()) else \
                        "cameras (view or projection) hold"
                    raise ValueError(f"MeshRenderer(silhouette='soft'): {bad} NaN or Inf, which gives "
                                     "non-finite clip-space positions; the soft rasterizer needs finite ones") from e
                raise ValueError(f"MeshRenderer(silhouette='soft'): the clip-space positions "
                                 f"cameras.project(mesh.verts) are out of range: {e}") from e
        else:
            alpha = mask

        out = RenderOutput(rgb=rgb, alpha=alpha, depth=depth * mask, normals=n * mask, mask=mask)
        if self.layout == "nchw":
            out = RenderOutput({k: v.flip(1).permute(0, 3, 1, 2) for k, v in out.items()})
        out["rast"] = rast
        return out
