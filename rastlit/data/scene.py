"""Where the object is, from what the cameras saw: the point the optical axes meet and the visual
hull of the masks. Tasks use it to place and size their initial shape, so a new dataset needs no
hand-set centre or scale."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["camera_centres", "optical_axes_centre", "visual_hull", "SceneBounds", "scene_bounds", "hull_mesh"]


def camera_centres(view: torch.Tensor) -> torch.Tensor:
    """World positions ``[N,3]`` (float64) of rigid world-to-camera matrices ``view [N,4,4]``: ``-R^T t``."""
    v = view.detach().to(torch.float64)
    return -(v[:, :3, :3].transpose(1, 2) @ v[:, :3, 3:]).squeeze(-1)


def optical_axes_centre(view: torch.Tensor) -> torch.Tensor:
    """The point nearest (least squares) to every camera's optical axis; ``view [N,4,4]``
    world-to-camera matrices (OpenGL: the camera looks along its -z). Returns ``[3]`` float64.
    Raises ValueError when the axes are (nearly) parallel: no such point is defined then."""
    v = view.detach().to(torch.float64)
    centres = camera_centres(v)
    d = -v[:, 2, :3]  # the camera's -z axis in world space
    d = d / d.norm(dim=-1, keepdim=True)
    proj = torch.eye(3, dtype=torch.float64) - d.unsqueeze(-1) * d.unsqueeze(-2)  # onto each axis' normal plane
    a = proj.sum(0)
    b = (proj @ centres.unsqueeze(-1)).squeeze(-1).sum(0)
    evals = torch.linalg.eigvalsh(a)
    if evals[0] <= 1e-6 * max(float(evals[-1]), 1e-300):
        raise ValueError("the cameras' optical axes are (nearly) parallel: their meeting point, used to place "
                         "the initial shape, is undefined; start from a sphere of your own: task.init.source=sphere "
                         "task.init.centre=[x,y,z] task.init.radius=r")
    return torch.linalg.solve(a, b)


def _carve(mvp: torch.Tensor, alpha: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, res: int,
           threshold: float, tolerance: float, grid: bool = False):
    """Voxel centres of the box ``[lo, hi]`` (``res`` per axis) seen inside the masks in at least
    ``1 - tolerance`` of the views (outside an image counts as outside its mask)."""
    axes = [torch.linspace(0.0, 1.0, 2 * res + 1, dtype=torch.float64)[1::2] for _ in range(3)]
    g = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    pts = lo + g * (hi - lo)
    ph = torch.cat([pts, torch.ones_like(pts[:, :1])], -1)
    n, h, w = alpha.shape[0], alpha.shape[1], alpha.shape[2]
    votes = torch.zeros(pts.shape[0], dtype=torch.float64)
    for i in range(n):
        clip = ph @ mvp[i].to(torch.float64).T
        wc = clip[:, 3]
        front = wc > 1e-9
        x = clip[:, 0] / wc.clamp_min(1e-9)
        y = clip[:, 1] / wc.clamp_min(1e-9)
        col = torch.floor((x + 1) * 0.5 * w).long()
        row = torch.floor((y + 1) * 0.5 * h).long()  # row 0 at the bottom, as the images
        inside = front & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        a = torch.zeros_like(votes)
        a[inside] = alpha[i, row[inside], col[inside], 0].to(torch.float64)
        votes += (a > threshold).to(torch.float64)
    keep = votes >= (1.0 - tolerance) * n - 1e-9
    if grid:  # the occupancy [res,res,res] (x, y, z order) of the voxel centres
        return keep.reshape(res, res, res), (hi - lo) / res
    return pts[keep], (hi - lo) / res


@dataclass
class SceneBounds:
    """The object's place and size in world space: ``centre [3]`` (of the hull's bounding box),
    ``half_extents [3]`` (of that box), ``radius`` (bounding sphere about ``centre``), ``axes_centre``
    (where the optical axes meet) and ``hull_points [M,3]`` (the carved voxel centres), float64."""

    centre: torch.Tensor
    half_extents: torch.Tensor
    radius: float
    axes_centre: torch.Tensor
    hull_points: torch.Tensor


def visual_hull(mvp: torch.Tensor, alpha: torch.Tensor, centre: torch.Tensor, half_size: float, res: int = 40,
                threshold: float = 0.5, tolerance: float = 0.05, refine: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Carve the cube ``centre ± half_size`` against the masks ``alpha [N,H,W,1]`` (row 0 at the
    bottom) seen by ``mvp [N,4,4]``; then ``refine`` times again on the bounding box of what is
    left (one voxel of margin), so the voxels shrink to the object's size. Returns
    ``(points [M,3], voxel_size [3])`` float64; ValueError if nothing survives."""
    c = centre.to(torch.float64)
    lo, hi = c - half_size, c + half_size
    alpha = alpha.detach().cpu()
    mvp = mvp.detach().cpu()
    pts, vox = _carve(mvp, alpha, lo, hi, res, threshold, tolerance)
    for _ in range(refine):
        if pts.shape[0] == 0:
            break
        lo2, hi2 = pts.min(0).values - 1.5 * vox, pts.max(0).values + 1.5 * vox
        lo2, hi2 = torch.maximum(lo2, lo), torch.minimum(hi2, hi)
        pts, vox = _carve(mvp, alpha, lo2, hi2, res, threshold, tolerance)
    if pts.shape[0] == 0:
        raise ValueError("the visual hull of the masks is empty: no point in front of the cameras projects inside "
                         "the masks of all views. Check the camera convention (transform_matrix is camera-to-world, "
                         "OpenGL: the camera looks along -z, y up) and that the masks cover the object")
    return pts, vox


def scene_bounds(view: torch.Tensor, mvp: torch.Tensor, alpha: torch.Tensor, res: int = 40,
                 tolerance: float = 0.05) -> SceneBounds:
    """:class:`SceneBounds` from cameras (``view``, ``mvp`` ``[N,4,4]``) and masks ``alpha [N,H,W,1]``:
    the visual hull is carved in a cube about the optical axes' meeting point whose half size is
    the distance to the nearest camera (the object lies between the cameras)."""
    axes_centre = optical_axes_centre(view)
    eyes = camera_centres(view)
    half = float((eyes - axes_centre).norm(dim=-1).min())
    pts, vox = visual_hull(mvp, alpha, axes_centre, half, res=res, tolerance=tolerance)
    lo, hi = pts.min(0).values - 0.5 * vox, pts.max(0).values + 0.5 * vox
    centre = 0.5 * (lo + hi)
    radius = float(((pts - centre).norm(dim=-1).max() + 0.5 * vox.norm()))
    return SceneBounds(centre=centre, half_extents=0.5 * (hi - lo), radius=radius, axes_centre=axes_centre,
                       hull_points=pts)


def hull_mesh(view: torch.Tensor, mvp: torch.Tensor, alpha: torch.Tensor, res: int = 48, tolerance: float = 0.05,
              bounds: SceneBounds | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A closed triangle mesh of the masks' visual hull: carved at ``res`` voxels per axis in the
    box of :func:`scene_bounds` (grown by two voxels), lightly blurred, and extracted with marching
    cubes (scikit-image) at the half level. It has the topology the masks show (a torus stays a
    torus), which no deformed sphere can reach. Returns ``(verts [V,3] float64, faces [F,3] int32)``,
    wound counter-clockwise seen from outside."""
    try:
        from skimage.measure import marching_cubes
    except ImportError:  # pragma: no cover - in the train extra
        raise ImportError("the visual-hull start (task.init.source=hull) needs scikit-image: pip install "
                          "scikit-image (it is in rastlit's train extra)") from None
    import torch.nn.functional as F

    b = bounds if bounds is not None else scene_bounds(view, mvp, alpha, tolerance=tolerance)
    vox = 2.0 * b.half_extents / max(res - 4, 1)
    lo, hi = b.centre - b.half_extents - 2 * vox, b.centre + b.half_extents + 2 * vox
    occ, vox = _carve(mvp.detach().cpu(), alpha.detach().cpu(), lo, hi, res, 0.5, tolerance, grid=True)
    field = occ.to(torch.float32)[None, None]
    k = torch.tensor([0.25, 0.5, 0.25])
    for dim in range(3):  # a separable [1,2,1]/4 blur: smooth staircases, keep thin parts
        shape = [1, 1, 1, 1, 1]
        shape[2 + dim] = 3
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = 1
        field = F.conv3d(F.pad(field, pad, mode="replicate"), k.reshape(shape))
    field = F.pad(field[0, 0], (1, 1, 1, 1, 1, 1))  # empty border: a closed surface
    if float(field.max()) <= 0.5:
        raise ValueError("the visual hull is too thin to mesh at this resolution; raise task.init.hull_resolution")
    import numpy as np

    v, f, _, _ = marching_cubes(field.numpy(), level=0.5, spacing=tuple(float(x) for x in vox),
                                allow_degenerate=False)
    verts = torch.from_numpy(np.ascontiguousarray(v)).to(torch.float64) + (lo + 0.5 * vox - vox)
    faces = torch.from_numpy(np.ascontiguousarray(f)).long()
    # drop zero-area faces and unreferenced vertices
    a, b2, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    area = torch.linalg.cross(b2 - a, c - a).norm(dim=-1)
    faces = faces[area > 1e-12 * float(vox.norm()) ** 2]
    used, inv = torch.unique(faces.flatten(), return_inverse=True)
    verts, faces = verts[used], inv.reshape(-1, 3)
    a, b2, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    if float((a * torch.linalg.cross(b2, c)).sum()) < 0:  # signed volume < 0: wound inwards
        faces = faces[:, [0, 2, 1]]
    return verts, faces.to(torch.int32).contiguous()
