"""Deform a sphere until its antialiased silhouettes match those of a bumpy target."""
import torch
from rastlit.camera import PerspectiveCamera
from rastlit.losses import laplacian_smoothing
from rastlit.mesh import Mesh, bumpy_sphere, icosphere
from rastlit.nn import MeshRenderer

target = bumpy_sphere(3, seed=1)
cameras = PerspectiveCamera.orbit(8, radius=3.0, elevation_deg=20.0, resolution=(96, 96))
renderer = MeshRenderer((96, 96), silhouette="antialias", shading="unlit")
with torch.no_grad():
    target_alpha = renderer(target, cameras).alpha
verts, faces = icosphere(3)
offsets = torch.zeros_like(verts, requires_grad=True)
opt = torch.optim.Adam([offsets], lr=0.005)
for step in range(150):
    mesh = Mesh(verts + offsets, faces)
    alpha = renderer(mesh, cameras).alpha
    loss = (alpha - target_alpha).square().mean() + 0.5 * laplacian_smoothing(mesh.verts, faces)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == 149:
        print(f"step {step}: silhouette MSE {(alpha - target_alpha).square().mean().item():.5f}")
