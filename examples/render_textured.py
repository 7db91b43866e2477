"""Render a textured, shaded sphere from four sides with the layers and save a PNG."""
import torch
from rastlit.camera import PerspectiveCamera
from rastlit.image import save_image
from rastlit.mesh import Mesh, uv_sphere
from rastlit.nn import MeshRenderer
from rastlit.shading import DirectionalLight

sphere = uv_sphere(32, 64)
v, u = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 512), indexing="ij")
checker = ((u * 16).floor() + (v * 8).floor()) % 2                     # 16 x 8 squares
texture = torch.stack([0.9 - 0.6 * checker, 0.3 + 0.5 * checker, 0.2 + 0.6 * v], -1)
mesh = Mesh(sphere.verts, sphere.faces, uv=sphere.uv, uv_faces=sphere.uv_faces, texture=texture)
cameras = PerspectiveCamera.orbit(4, radius=3.0, elevation_deg=25.0, resolution=(256, 256))
renderer = MeshRenderer((256, 256), shading="phong", background=1.0)
images = renderer(mesh, cameras, lights=[DirectionalLight((1.0, 2.0, 1.5))])
save_image(images.rgb, "textured_sphere.png")                         # 4 views side by side
