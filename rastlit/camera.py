"""Camera matrices (OpenGL conventions: right-handed eye space looking down -z, clip space
with -w <= x, y, z <= w). Matrices act on column vectors: ``clip = P @ V @ world``."""

from __future__ import annotations

import math

import torch


def perspective(fovy_deg: float, aspect: float = 1.0, near: float = 0.1, far: float = 100.0,
                dtype=torch.float32, device=None) -> torch.Tensor:
    """``[4,4]`` OpenGL perspective projection (vertical field of view in degrees)."""
    if not (0 < fovy_deg < 180 and aspect > 0 and 0 < near < far):
        raise ValueError(f"need 0 < fovy_deg < 180, aspect > 0, 0 < near < far; got {fovy_deg}, {aspect}, {near}, {far}")
    f = 1.0 / math.tan(math.radians(fovy_deg) / 2)
    return torch.tensor(
        [[f / aspect, 0, 0, 0], [0, f, 0, 0],
         [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]],
        dtype=dtype, device=device,
    )


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), dtype=torch.float32, device=None) -> torch.Tensor:
    """``[4,4]`` world-to-eye matrix of a camera at ``eye`` looking at ``target``."""
    eye_t = torch.as_tensor(eye, dtype=torch.float64)
    fwd = torch.as_tensor(target, dtype=torch.float64) - eye_t
    if fwd.norm() == 0:
        raise ValueError("look_at: eye and target coincide")
    fwd = fwd / fwd.norm()
    right = torch.linalg.cross(fwd, torch.as_tensor(up, dtype=torch.float64))
    if right.norm() < 1e-12:
        raise ValueError("look_at: up is parallel to the viewing direction")
    right = right / right.norm()
    true_up = torch.linalg.cross(right, fwd)
    m = torch.eye(4, dtype=torch.float64)
    m[0, :3], m[1, :3], m[2, :3] = right, true_up, -fwd
    m[:3, 3] = -m[:3, :3] @ eye_t
    return m.to(dtype=dtype, device=device)


def transform_points(mvp: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply ``[..., 4, 4]`` matrices to ``[..., V, 3]`` points: homogeneous ``[..., V, 4]``."""
    ones = torch.ones_like(points[..., :1])
    return torch.cat([points, ones], -1) @ mvp.transpose(-1, -2)
