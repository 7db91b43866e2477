"""Shared test setup.

- `import rastlit` is lazy about its torch parts (so that `import rastlit.jax` needs no torch): the
  `torch.ops.rastlit` ops are registered when `rastlit.ops` is imported. Several test files call
  `torch.ops.rastlit.*` directly, so the ops are loaded once here, where torch is installed.
- Tests marked `cuda` are skipped, in one place, when there is no CUDA GPU.
- pytest puts this folder on sys.path (rootdir-relative "prepend" imports), so the oracles and
  scenes (`reference`, `gl_oracle`, `scenes`) import as plain modules.
"""

import importlib.util

import pytest

HAVE_TORCH = importlib.util.find_spec("torch") is not None

if HAVE_TORCH:
    import rastlit.ops  # noqa: F401  (registers torch.ops.rastlit)


def _have_cuda() -> bool:
    if not HAVE_TORCH:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _have_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
