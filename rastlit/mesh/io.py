"""Mesh and texture files, and baking per-vertex colours into a texture atlas.

- :func:`load_texture` / :func:`save_texture`: image files <-> float textures with row 0 at
  v = 0 (through :func:`rastlit.image.load_image` / :func:`rastlit.image.save_image`, Pillow).
- :func:`load_mesh` / :func:`save_mesh`: OBJ (+ MTL + PNG) with rastlit's own writer, and PLY,
  GLB / glTF, STL, OFF through ``trimesh`` (imported only inside these functions).
- :func:`triangle_atlas` / :func:`bake_vertex_colors`: a per-triangle UV atlas and a texture
  holding the vertex colours, so that a mesh coloured per vertex can be saved as a textured
  OBJ / GLB that other tools display.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch

from ..image import _pil_to_array, _to_pil, load_image, save_image
from .structures import Mesh

__all__ = ["load_mesh", "save_mesh", "load_texture", "save_texture", "triangle_atlas", "bake_vertex_colors"]


# ----------------------------------------------------------------------------------------------
# Textures
# ----------------------------------------------------------------------------------------------

def save_texture(texture: torch.Tensor, path) -> None:
    """Write a ``[Ht,Wt,C]`` (C in 1..4) float texture in [0,1] as an 8-bit PNG (values clamped
    and rounded; NaN / Inf refused). Row 0 of the tensor (v = 0) becomes the **bottom** row of
    the image file (rows are flipped). Written atomically (:func:`rastlit.image.save_image`)."""
    if texture.dim() == 2:
        texture = texture[..., None]
    if texture.dim() != 3 or not 1 <= texture.shape[2] <= 4:
        raise ValueError(f"texture must have shape [Ht,Wt,C] with C in 1..4, got {list(texture.shape)}")
    save_image(texture, path)


def load_texture(path) -> torch.Tensor:
    """Read an image file as a float32 ``[Ht,Wt,C]`` texture in [0,1] with **row 0 = the bottom
    row of the image** (v = 0): :func:`rastlit.image.load_image`. Raises ``FileNotFoundError``
    for a missing file, ``ValueError`` naming the path for an unreadable or corrupt one."""
    return load_image(path)


# ----------------------------------------------------------------------------------------------
# Per-triangle atlas and vertex-colour baking
# ----------------------------------------------------------------------------------------------

# Layout, in texels, of one square cell of side c holding faces 2k (lower left) and 2k + 1
# (upper right), relative to the cell's lower-left corner:
#   lower: (m, m), (c - m - s, m), (m, c - m - s)    hypotenuse on x + y = c - s
#   upper: (c - m, c - m), (m + s, c - m), (c - m, m + s)    hypotenuse on x + y = c + s
# A bilinear lookup at p reads the texels whose centres lie less than one texel from p along
# both axes. For the texels read inside two triangles never to overlap, the triangles must be
# 2 texels apart in that (Chebyshev) distance: legs lie m = 1 texel inside the cell (2 across a
# border) and the hypotenuses are s = 2 texels off the diagonal x + y = c (Chebyshev 2 apart,
# Euclidean 2 sqrt(2)). Each triangle's texels are then all on its side of the cell's diagonal,
# the zone that the baking dilates it into. Both triangles are counter-clockwise in (u, v).
_ATLAS_MARGIN = 1.0
_ATLAS_SHIFT = 2.0
_ATLAS_MIN_LEG = 3.0


def _atlas_grid(num_faces: int, size: int) -> tuple[int, int]:
    """``(g, c)``: the atlas is ``g x g`` cells of ``c x c`` texels (row-major from the bottom
    left, cell k holds faces 2k and 2k + 1). Raises ``ValueError`` when ``size`` is too small."""
    if isinstance(num_faces, bool) or int(num_faces) != num_faces or num_faces < 0:
        raise ValueError(f"num_faces must be an int >= 0, got {num_faces!r}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    num_faces, size = int(num_faces), int(size)
    g = max(1, math.isqrt(max(0, (num_faces + 1) // 2 - 1)) + 1)  # ceil(sqrt(cells))
    c = size // g
    if num_faces > 0 and c - 2 * _ATLAS_MARGIN - _ATLAS_SHIFT < _ATLAS_MIN_LEG:
        need = g * math.ceil(2 * _ATLAS_MARGIN + _ATLAS_SHIFT + _ATLAS_MIN_LEG)
        raise ValueError(
            f"triangle_atlas: size={size} is too small for {num_faces} faces ({g}x{g} cells of {c} "
            f"texels leave triangles under {_ATLAS_MIN_LEG:g} texels per side beside their "
            f"gutters); use size >= {need}")
    return g, c


def atlas_size(num_faces: int, cell: int, name: str = "cell") -> int:
    """The :func:`triangle_atlas` texture size that gives ``num_faces`` faces square cells of
    ``cell`` texels (two faces per cell; ``cell >= 8`` leaves each triangle legs of
    ``cell - 4`` texels beside its gutters). ``name``: how an error message calls ``cell``."""
    if isinstance(cell, bool) or int(cell) != cell or cell < 8:
        raise ValueError(f"{name} must be an int >= 8 (texels per atlas cell), got {cell!r}")
    g, _ = _atlas_grid(num_faces, 10**9)
    return g * int(cell)


def triangle_atlas(num_faces: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A per-triangle UV atlas for a ``size x size`` texture: ``(uv [3F,2] float32, uv_faces [F,3]
    int32)``, corner ``k`` of face ``f`` at ``uv[3f + k]``.

    Faces are packed two per square cell of a ``g x g`` grid (``g = ceil(sqrt(ceil(F/2)))``,
    cells of ``size // g`` texels, starting at the bottom left, row by row): face ``2k`` is the
    lower-left and face ``2k+1`` the upper-right right isosceles triangle of cell ``k``, both
    counter-clockwise in (u, v). Triangles are at least 2 texels apart along each axis (their
    legs 1 texel inside the cell, the hypotenuses 2 texels off the cell's diagonal: a gutter of
    2 texels across cell borders and 2 sqrt(2) across the diagonal), so the texels that a
    bilinear lookup inside one triangle reads (its own and its gutter's) are never read inside
    another, and the texel centres covered by different triangles are never neighbours. All UVs
    lie in [0, 1] (``u, v = texel position / size``).

    Raises ``ValueError`` if ``size`` leaves a triangle under 3 texels per side (the message
    gives the smallest size that fits)."""
    g, c = _atlas_grid(num_faces, size)
    F = int(num_faces)
    f = torch.arange(F, dtype=torch.int64)
    k = f // 2
    x0 = (k % g).to(torch.float64) * c
    y0 = (k // g).to(torch.float64) * c
    m, s = _ATLAS_MARGIN, _ATLAS_SHIFT
    lower = torch.tensor([[m, m], [c - m - s, m], [m, c - m - s]], dtype=torch.float64)
    upper = torch.tensor([[c - m, c - m], [m + s, c - m], [c - m, m + s]], dtype=torch.float64)
    corners = torch.where((f % 2 == 0)[:, None, None], lower, upper)  # [F,3,2]
    corners = corners + torch.stack([x0, y0], 1)[:, None, :]
    uv = (corners / size).reshape(-1, 2).to(torch.float32)
    uv_faces = torch.arange(3 * F, dtype=torch.int32).view(F, 3)
    return uv, uv_faces


def _atlas_owner(num_faces: int, size: int, device=None) -> torch.Tensor:
    """``[size,size]`` int64: the face whose zone holds each texel (its cell's lower or upper half,
    split on the cell's diagonal x + y = c, i.e. the nearer of the two triangles), -1 outside."""
    g, c = _atlas_grid(num_faces, size)
    t = torch.arange(size, device=device)
    cell = t // c                          # cell row (of texel row i) or column (of texel column j)
    rel = (t % c).to(torch.float64) + 0.5  # texel centre within its cell
    row, col = cell[:, None], cell[None, :]
    upper = (rel[:, None] + rel[None, :]) >= c
    face = 2 * (row * g + col) + upper.long()
    inside = (row < g) & (col < g) & (face < num_faces)
    return torch.where(inside, face, torch.full_like(face, -1))


def _dilate_zones(tex: torch.Tensor, filled: torch.Tensor, owner: torch.Tensor,
                  max_iterations: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow the filled texels of each zone into the empty texels of the same zone: at each step,
    every empty texel with filled 8-neighbours of its own zone takes their mean (all texels of a
    step read the previous step). Stops when nothing changes or after ``max_iterations``;
    returns ``(tex, filled)``. Works on the list of empty texels only (the gutters)."""
    H, W, C = tex.shape
    flat, done = tex.reshape(H * W, C), filled.reshape(-1).clone()
    own = owner.reshape(-1)
    idx = torch.nonzero(~done & (own >= 0)).squeeze(1)
    d = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], device=tex.device)
    for _ in range(max_iterations):
        if idx.numel() == 0:
            break
        y = idx[:, None] // W + d[:, 0]
        x = idx[:, None] % W + d[:, 1]
        inb = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        nb = y.clamp(0, H - 1) * W + x.clamp(0, W - 1)  # [N,8]
        ok = inb & done[nb] & (own[nb] == own[idx][:, None])
        cnt = ok.sum(1)
        new = cnt > 0
        if not bool(new.any()):
            break
        vals = (flat[nb] * ok[..., None].to(flat.dtype)).sum(1) / cnt.clamp_min(1)[:, None].to(flat.dtype)
        flat = flat.index_put((idx[new],), vals[new])
        done[idx[new]] = True
        idx = idx[~new]
    return flat.view(H, W, C), done.view(H, W)


def bake_vertex_colors(verts: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor,
                       size: int = 1024) -> Mesh:
    """Bake per-vertex colours into a ``size x size`` texture on a :func:`triangle_atlas`.

    Returns ``Mesh(verts, faces, uv=..., uv_faces=..., texture=[size,size,C])`` (no vertex
    colours: the texture carries them; row 0 at v = 0): rendering it with
    ``texture(mesh.texture[None], interpolate(uv, rast, uv_faces), filter_mode='linear')``
    reproduces rendering the colours with ``interpolate(colors, rast, faces)`` up to the
    texture's resolution, and :func:`save_mesh` writes it as OBJ + MTL + PNG or GLB.

    The atlas triangles are rasterized by rastlit itself (clip positions ``(2u-1, 2v-1, 0, 1)``
    at ``(size, size)``: texel (i, j) is sampled at UV ((j+0.5)/size, (i+0.5)/size), where
    :func:`rastlit.texture` puts its centre), and ``colors`` are interpolated through ``faces``,
    so each covered texel holds the barycentric interpolation of its face's vertex colours.
    Gutter texels are then dilated from the nearest covered texels of the same face (each face
    owns the half of its cell on its side of the diagonal), so bilinear lookups at a triangle's
    border see that triangle's colours; texels still empty get their face's mean colour, and
    texels of no face (unused cells) the mean vertex colour.

    ``colors [V,C]`` is any float tensor (C >= 1; C <= 4 to save as an image); the texture has
    its dtype, the UVs have ``verts``' dtype. Differentiable with respect to ``colors``.
    Raises ``ValueError`` for invalid inputs and a ``size`` too small for the faces."""
    from ..ops import interpolate, rasterize

    mesh = Mesh(verts, faces, vertex_colors=colors)  # validates shapes, dtypes, indices, devices
    F, dev = mesh.num_faces, verts.device
    uv, uv_faces = triangle_atlas(F, size)
    uv, uv_faces = uv.to(dev), uv_faces.to(dev)
    cdt = colors.dtype if colors.dtype in (torch.float32, torch.float64) and dev.type == "cpu" else torch.float32
    col = colors.to(cdt)
    C = colors.shape[1]
    mean = col.mean(0) if col.shape[0] else col.new_zeros(C)
    if F == 0:
        tex = mean.expand(size, size, C).clone()
    else:
        pos = torch.cat([uv.to(cdt) * 2 - 1, torch.zeros_like(uv[:, :1], dtype=cdt),
                         torch.ones_like(uv[:, :1], dtype=cdt)], 1)[None].contiguous()
        with torch.no_grad():
            rast, _ = rasterize(pos, uv_faces, (size, size), grad_db=False)
        tex, _ = interpolate(col[None].contiguous(), rast, mesh.faces)
        tex = tex[0]
        owner = _atlas_owner(F, size, dev)
        tid = rast[0, ..., 3].round().long() - 1  # -1 on empty texels
        filled = (tid >= 0) & (tid == owner)
        tex = torch.where(filled[..., None], tex, torch.zeros((), dtype=cdt, device=dev))
        tex, filled = _dilate_zones(tex, filled, owner)
        face_mean = col[mesh.faces.long()].mean(1)  # [F,C]
        fallback = torch.where((owner >= 0)[..., None], face_mean[owner.clamp_min(0)], mean)
        tex = torch.where(filled[..., None], tex, fallback)
    return Mesh(verts, mesh.faces, uv=uv.to(verts.dtype), uv_faces=uv_faces,
                texture=tex.to(colors.dtype).contiguous())


# ----------------------------------------------------------------------------------------------
# Mesh IO through trimesh
# ----------------------------------------------------------------------------------------------

def _trimesh():
    try:
        import trimesh
    except ImportError:
        raise ImportError("rastlit mesh file IO needs trimesh: pip install trimesh") from None
    return trimesh


def _material_image(material) -> np.ndarray | None:
    """The base-colour image of a trimesh material as a top-down float32 ``[H,W,C]`` array."""
    if material is None:
        return None
    for attr in ("image", "baseColorTexture"):
        try:
            img = getattr(material, attr, None)
        except Exception:  # trimesh raises its wrapped errors for images it could not load
            img = None
        if img is not None:
            try:
                if hasattr(img, "mode"):  # a Pillow image (trimesh's usual)
                    return _pil_to_array(img)
                arr = np.asarray(img)
                if arr.ndim == 2:
                    arr = arr[..., None]
                if arr.ndim != 3 or not 1 <= arr.shape[2] <= 4:
                    return None
                scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype, 1.0)
                return np.clip(arr.astype(np.float64) / scale, 0, 1).astype(np.float32)
            except Exception:
                return None
    return None


def _obj_texture_path(path: str) -> str | None:
    """The first ``map_Kd`` image of the first ``mtllib`` of an OBJ file (read directly when
    trimesh did not load it, e.g. for map options it does not parse)."""
    base = os.path.dirname(path)
    try:
        with open(path, "r", errors="replace") as fh:
            mtl = next((ln.split(None, 1)[1].strip() for ln in fh if ln.startswith("mtllib ")), None)
        if mtl is None:
            return None
        with open(os.path.join(base, mtl), "r", errors="replace") as fh:
            tex = next((ln.split(None, 1)[1].strip() for ln in fh if ln.strip().startswith("map_Kd ")), None)
    except (OSError, IndexError):
        return None
    if tex is None:
        return None
    tex = tex.split()[-1]  # drop map options such as -s / -o (the file name comes last)
    full = os.path.join(base, tex)
    return full if os.path.exists(full) else None


def load_mesh(path, dtype=torch.float32, device=None) -> Mesh:
    """Read a mesh file (OBJ, PLY, GLB/GLTF, STL, OFF, anything trimesh reads) into a :class:`Mesh`.

    Positions and faces always (polygons are triangulated by trimesh); UVs, the base-colour
    texture image and vertex colours where the file has them. trimesh indexes UVs per vertex,
    so vertices on a UV seam come back duplicated (``uv_faces == faces``). Scenes with several
    meshes (GLB, multi-object OBJ) are flattened with their transforms and concatenated; their
    textures are kept only if they all share one image (otherwise dropped with a warning).
    Textures come back with row 0 = v≈0 (file rows flipped), read by Pillow as
    :func:`rastlit.image.load_image` reads them (16-bit grey scaled, palettes expanded).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the path and the
    reason for a file trimesh cannot read or that has no faces (e.g. a point cloud)."""
    trimesh = _trimesh()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mesh file not found: {path!r}")
    # maintain_order keeps the file's vertex order (and unreferenced vertices), but trimesh 4-5
    # then skips splitting vertices at UV seams of OBJ files (their UVs come back wrong): use it
    # only for OBJ files without texture coordinates
    keep_order = True
    if path.lower().endswith(".obj"):
        with open(path, "rb") as fh:
            head = fh.read()
        keep_order = not (head.startswith(b"vt ") or b"\nvt " in head or b"\nvt\t" in head)
    try:
        obj = trimesh.load(path, process=False, maintain_order=keep_order)
    except Exception as e:
        raise ValueError(f"could not read mesh file {path!r}: {type(e).__name__}: {e}") from e
    if isinstance(obj, trimesh.Scene):
        try:
            geoms = list(obj.dump()) if len(obj.geometry) else []
        except Exception as e:
            raise ValueError(f"could not read mesh file {path!r}: {type(e).__name__}: {e}") from e
    else:
        geoms = [obj]
    parts = [g for g in geoms if isinstance(g, trimesh.Trimesh) and len(g.faces) > 0]
    if not parts:
        kinds = sorted({type(g).__name__ for g in geoms}) or ["nothing"]
        raise ValueError(f"mesh file {path!r} has no triangle faces (found {', '.join(kinds)}; "
                         "a point cloud or an unreadable file?)")

    verts, faces, uvs, colors, images = [], [], [], [], []
    off = 0
    for g in parts:
        verts.append(np.asarray(g.vertices, np.float64))
        faces.append(np.asarray(g.faces, np.int64) + off)
        off += len(g.vertices)
        vis = g.visual
        kind = getattr(vis, "kind", None)
        uv = getattr(vis, "uv", None) if kind == "texture" else None
        uvs.append(None if uv is None or len(uv) != len(g.vertices) else np.asarray(uv, np.float64))
        img = _material_image(getattr(vis, "material", None)) if uvs[-1] is not None else None
        images.append(img)
        col = vis.vertex_colors if kind == "vertex" else None
        if col is None:  # colours beside a texture visual (OBJ "v x y z r g b" with UVs)
            col = getattr(g, "vertex_attributes", {}).get("color")
        col = None if col is None or len(col) != len(g.vertices) else np.asarray(col)
        if col is not None:
            col = col.astype(np.float64) / (255.0 if col.dtype.kind in "ui" else 1.0)
            if col.shape[1] == 3:
                col = np.concatenate([col, np.ones((len(col), 1))], 1)
        colors.append(col)

    V = np.concatenate(verts)
    F = np.concatenate(faces)
    uv = np.concatenate(uvs) if all(u is not None for u in uvs) else None
    if uv is None and any(u is not None for u in uvs):
        warnings.warn(f"{path!r}: only some meshes have UVs; UVs dropped")
    col = None
    if all(c is not None for c in colors):
        col = np.concatenate(colors)
        if np.all(col[:, 3] == 1.0):
            col = col[:, :3]
    elif any(c is not None for c in colors):
        warnings.warn(f"{path!r}: only some meshes have vertex colours; colours dropped")

    tex = None
    if uv is not None:
        imgs = [i for i in images if i is not None]
        if not imgs and len(parts) == 1 and path.lower().endswith(".obj"):
            tp = _obj_texture_path(path)
            if tp is not None:
                try:
                    imgs = [load_image(tp).numpy()[::-1]]
                except ValueError as e:
                    warnings.warn(f"{path!r}: texture not loaded: {e}")
        if imgs:
            if len(imgs) == len(parts) and all(i.shape == imgs[0].shape and np.array_equal(i, imgs[0]) for i in imgs):
                tex = torch.from_numpy(imgs[0][::-1].copy())  # row 0 = v = 0
            else:
                warnings.warn(f"{path!r}: meshes with different textures; textures dropped (UVs kept)")

    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    Ft = torch.as_tensor(F, dtype=torch.int32, device=device)
    return Mesh(t(V), Ft, None if col is None else t(col),
                None if uv is None else t(uv), None if uv is None else Ft,
                None if tex is None else tex.to(dtype=dtype, device=device))


def _fmt(a: np.ndarray, digits: int) -> list[str]:
    return [" ".join(f"{x:.{digits}g}" for x in row) for row in a]


def _save_obj(mesh: Mesh, path: str) -> None:
    digits = 17 if mesh.verts.dtype == torch.float64 else 9  # exact round trip
    v = mesh.verts.detach().cpu().double().numpy()
    lines = ["# written by rastlit"]
    stem = os.path.splitext(os.path.basename(path))[0]
    if mesh.texture is not None:
        lines.append(f"mtllib {stem}.mtl")
    rows = _fmt(v, digits)
    if mesh.vertex_colors is not None and mesh.vertex_colors.shape[1] >= 3:
        c = mesh.vertex_colors[:, :3].detach().cpu().double().numpy()
        rows = [a + " " + b for a, b in zip(rows, _fmt(c, digits))]
    lines += ["v " + r for r in rows]
    f = mesh.faces.cpu().numpy().astype(np.int64) + 1
    if mesh.uv is not None:
        lines += ["vt " + r for r in _fmt(mesh.uv.detach().cpu().double().numpy(), digits)]
        if mesh.texture is not None:
            lines.append("usemtl material0")
        ft = mesh.uv_faces.cpu().numpy().astype(np.int64) + 1
        lines += [f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(f, ft)]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in f]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    if mesh.texture is not None:
        base = os.path.dirname(path)
        with open(os.path.join(base, stem + ".mtl"), "w") as fh:
            fh.write("# written by rastlit\nnewmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\n"
                     f"illum 1\nmap_Kd {stem}.png\n")
        save_texture(mesh.texture, os.path.join(base, stem + ".png"))


def save_mesh(mesh: Mesh, path) -> None:
    """Write ``mesh`` to ``path``; the format follows the extension.

    - ``.obj`` (rastlit's own writer, exact float round trip, separate UV indices kept): ``v``
      lines (with ``r g b`` appended when the mesh has vertex colours, the common OBJ
      extension that trimesh, MeshLab and Blender read), ``vt`` and ``f v/vt``; with a texture,
      also ``<stem>.mtl`` and ``<stem>.png`` beside it (the PNG written top-down).
    - ``.ply``, ``.glb``, ``.gltf``, ``.stl``, ``.off`` through trimesh: UV seams are split first
      (per-vertex UVs); vertex colours are stored as 8-bit RGBA (quantized to 1/255), and only
      when the mesh has no UVs (trimesh keeps one visual per mesh). A texture is embedded in
      GLB / glTF as an 8-bit PNG; PLY keeps no texture (dropped with a warning). PLY stores
      positions as float32.
    """
    if not isinstance(mesh, Mesh):
        raise ValueError(f"save_mesh needs a rastlit.mesh.Mesh, got {type(mesh).__name__}")
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".obj":
        return _save_obj(mesh, path)
    if ext not in (".ply", ".glb", ".gltf", ".stl", ".off"):
        raise ValueError(f"save_mesh: unsupported extension {ext!r} of {path!r} "
                         "(use .obj, .ply, .glb, .gltf, .stl or .off)")
    trimesh = _trimesh()
    m = mesh.split_uv_seams()
    v = m.verts.detach().cpu().double().numpy()
    f = m.faces.cpu().numpy().astype(np.int64)
    visual = None
    if m.uv is not None and ext in (".ply", ".glb", ".gltf"):
        from trimesh.visual.material import PBRMaterial
        img = None
        if m.texture is not None and ext != ".ply":
            img = _to_pil(m.texture)
        elif m.texture is not None:
            warnings.warn(f"save_mesh({path!r}): PLY keeps no texture image; saved UVs only")
        visual = trimesh.visual.TextureVisuals(
            uv=m.uv.detach().cpu().double().numpy(), material=PBRMaterial(baseColorTexture=img))
        if m.vertex_colors is not None:
            warnings.warn(f"save_mesh({path!r}): vertex colours dropped (the mesh has UVs)")
    elif m.vertex_colors is not None:
        c = m.vertex_colors.detach().cpu().double().clamp(0, 1).numpy()
        if c.shape[1] == 1:
            c = np.repeat(c, 3, 1)
        c8 = np.round(c[:, :4] * 255).astype(np.uint8)
        visual = trimesh.visual.ColorVisuals(vertex_colors=c8)
    tm = trimesh.Trimesh(v, f, visual=visual, process=False)
    if ext == ".gltf":  # one self-contained file (buffers as data URIs), not loose .bin files
        tm.export(path, embed_buffers=True)
    else:
        tm.export(path)
