"""Shared test setup.

`import rastlit` is lazy about its torch parts (so that `import rastlit.jax` needs no torch): the
`torch.ops.rastlit` ops are registered when `rastlit.ops` is imported. Several test files call
`torch.ops.rastlit.*` directly, so load the ops once here, where torch is installed.
"""

import importlib.util

if importlib.util.find_spec("torch") is not None:
    import rastlit.ops  # noqa: F401  (registers torch.ops.rastlit)
