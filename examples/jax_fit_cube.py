"""JAX: recover a coloured cube's vertices and colours from 8 antialiased views (jax.grad + optax)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

import rastlit.jax as rj

corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float32)
tri = jnp.asarray([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                   [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], jnp.int32)
colors = jnp.asarray((corners + 1) / 2)  # target: each corner its own colour


def mvp(azimuth, elevation, distance=5.0, fov=0.8):
    """World-to-clip (OpenGL) of a camera orbiting the origin."""
    ca, sa, ce, se = np.cos(azimuth), np.sin(azimuth), np.cos(elevation), np.sin(elevation)
    eye = distance * np.array([ce * sa, se, ce * ca])
    f = -eye / distance
    s = np.cross(f, [0, 1, 0]); s /= np.linalg.norm(s)
    u = np.cross(s, f)
    view = np.eye(4); view[0, :3], view[1, :3], view[2, :3] = s, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    t, n, far = 1 / np.tan(fov / 2), 1.0, 20.0
    proj = np.array([[t, 0, 0, 0], [0, t, 0, 0], [0, 0, (far + n) / (n - far), 2 * far * n / (n - far)], [0, 0, -1, 0]])
    return proj @ view


mvps = jnp.asarray(np.stack([mvp(0.8 * k, 0.5 * np.sin(k)) for k in range(8)]), jnp.float32)


def render(verts, cols):
    pos = jnp.einsum("bij,vj->bvi", mvps, jnp.concatenate([verts, jnp.ones_like(verts[:, :1])], 1))
    rast, _ = rj.rasterize(pos, tri, (64, 64))
    color, _ = rj.interpolate(cols, rast, tri)
    return rj.antialias(color, rast, pos, tri)


target = render(jnp.asarray(corners), colors)
rng = np.random.default_rng(0)
params = {"verts": jnp.asarray(corners + rng.uniform(-0.3, 0.3, corners.shape), jnp.float32),
          "cols": jnp.full((8, 3), 0.5, jnp.float32)}
opt = optax.adam(0.02)
state = opt.init(params)


@jax.jit
def step(params, state):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean((render(p["verts"], p["cols"]) - target) ** 2))(params)
    updates, state = opt.update(grads, state)
    return optax.apply_updates(params, updates), state, loss


for i in range(300):
    params, state, loss = step(params, state)
    if i % 100 == 0 or i == 299:
        err = float(jnp.abs(params["verts"] - corners).max())
        print(f"step {i}: image MSE {float(loss):.6f}, largest vertex error {err:.4f}")
