"""Light a glossy sphere with an environment map (a lat-long sky turned into a cube map) and save a PNG."""
import math
import torch
from rastlit.camera import PerspectiveCamera
from rastlit.image import save_image
from rastlit.mesh import Mesh, uv_sphere
from rastlit.nn import MeshRenderer
from rastlit.shading import EnvironmentLight, equirect_to_cube

# A procedural lat-long sky, row 0 at the top (+y): blue above, a warm sun, a checkered floor below.
v, u = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 512), indexing="ij")
theta, phi = math.pi * v, 2 * math.pi * (u - 0.5)        # polar angle from +y, azimuth (0 along -z)
sky = torch.stack([0.3 + 0.3 * v, 0.5 + 0.3 * v, torch.ones_like(v)], -1)
sun = torch.exp(-((theta - 0.8) ** 2 + (phi - 1.2) ** 2) / 0.01)[..., None] * torch.tensor([8.0, 6.0, 3.0])
floor = 0.2 + 0.5 * (((u * 24).floor() + (v * 12).floor()) % 2)[..., None].expand(-1, -1, 3)
latlong = torch.where((v > 0.5)[..., None], floor, sky + sun)
env = EnvironmentLight(equirect_to_cube(latlong, 64), glossy_level=1.0)

sphere = uv_sphere(48, 96)
mesh = Mesh(sphere.verts, sphere.faces)
cameras = PerspectiveCamera.orbit(4, radius=3.0, elevation_deg=15.0, resolution=(256, 256))
renderer = MeshRenderer((256, 256), shading="phong", specular=0.6, ambient=0.0, default_color=(0.5, 0.5, 0.5),
                        background=1.0)
images = renderer(mesh, cameras, lights=env)
save_image(images.rgb.clamp(0, 1), "env_lit_sphere.png")              # 4 views side by side
