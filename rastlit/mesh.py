"""Mesh primitives. (Normals, UVs and IO arrive with the layers issue.)"""

from __future__ import annotations

import torch


def icosphere(subdivisions: int = 3, dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosphere: ``(verts [V,3], faces [F,3] int32)`` with ``F = 20 * 4**subdivisions``,
    faces wound counter-clockwise seen from outside. Each subdivision splits every triangle in
    four at its edge midpoints (shared midpoints deduplicated) and projects onto the sphere."""
    if subdivisions < 0 or subdivisions > 9:
        raise ValueError(f"subdivisions must be in [0, 9], got {subdivisions}")
    t = (1.0 + 5.0**0.5) / 2.0
    v = torch.tensor(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]],
        dtype=torch.float64,
    )
    f = torch.tensor(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
        dtype=torch.int64,
    )
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(subdivisions):
        nv = v.shape[0]
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
        key = edges.min(1).values * nv + edges.max(1).values
        uniq, inv = torch.unique(key, return_inverse=True)
        a, b = uniq // nv, uniq % nv
        mid = v[a] + v[b]
        v = torch.cat([v, mid / mid.norm(dim=1, keepdim=True)], 0)
        m = (inv + nv).view(3, -1)  # midpoints of edges (0,1), (1,2), (2,0) per face
        m01, m12, m20 = m[0], m[1], m[2]
        f = torch.cat(
            [torch.stack(x, 1) for x in (
                (f[:, 0], m01, m20), (f[:, 1], m12, m01), (f[:, 2], m20, m12), (m01, m12, m20))],
            0,
        )
    return v.to(dtype=dtype, device=device), f.to(dtype=torch.int32, device=device)
