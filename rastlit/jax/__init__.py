"""rastlit for JAX: the same kernels as the torch ops, as ``jax.custom_vjp`` functions over XLA FFI.

    import jax, jax.numpy as jnp
    import rastlit.jax as rj

    rast, rast_db = rj.rasterize(pos, tri, (256, 256))      # pos [B,V,4] float32, tri [T,3] int32
    color, _ = rj.interpolate(vtx_color, rast, tri)
    color = rj.antialias(color, rast, pos, tri)

Names, signatures and conventions are the torch API's (:mod:`rastlit`): row 0 at the bottom,
``rast = (u, v, z/w, id + 1)``, int32 indices. Static arguments (``resolution``, modes,
``diff_attrs``, ``grad_db``) must be Python values. Every op works under ``jax.jit`` and
``jax.grad``; under ``jax.vmap`` the mapped axis is folded into the kernels' view axis (one call
for all elements; ``lax.map`` when ``tri``, ``ranges`` or the topology is mapped). float64 works with
``jax.config.update("jax_enable_x64", True)``. CPU handlers always; CUDA handlers are built when
JAX sees a GPU and nvcc is found (compile-checked in CI, not yet run on a GPU).

Importing this module imports neither torch nor the torch extension; the first op call builds
``csrc/jax/ffi_cpu.cpp`` with the CPU kernels (ninja and the system C++ compiler, ~15 s, cached
under ``~/.cache/rastlit``).
"""

from ._ops import (
    MAX_MIP_LEVELS,
    MAX_RESOLUTION,
    MAX_TRIANGLES,
    antialias,
    antialias_construct_topology_hash,
    depth_peel,
    interpolate,
    rasterize,
    texture,
    texture_construct_mip,
)

__all__ = ["rasterize", "interpolate", "texture", "texture_construct_mip", "antialias",
           "antialias_construct_topology_hash", "depth_peel", "MAX_RESOLUTION", "MAX_TRIANGLES", "MAX_MIP_LEVELS"]
