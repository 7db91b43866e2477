"""Make ``rastlit.tasks`` / ``rastlit.conf`` resolve to the ``tasks/`` and ``conf/`` folders of the
source tree that this ``rastlit`` package was imported from.

Installed, setuptools maps them (``package-dir`` in pyproject.toml). Run from a source checkout
without installing it (``PYTHONPATH=/path/to/checkout``), or from a second checkout while another
one is installed in editable mode, those names would otherwise be missing or resolve to the other
checkout's folders. A source tree is recognised by ``csrc/ops.cpp`` beside the package, as
``rastlit._build`` does; in a regular install nothing happens.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def use_source_tree_subpackages() -> None:
    pkg = Path(__file__).resolve().parent
    root = pkg.parent
    if not (root / "csrc" / "ops.cpp").is_file():
        return
    import rastlit

    for name in ("conf", "tasks"):
        full = f"rastlit.{name}"
        folder = root / name
        init = folder / "__init__.py"
        mod = sys.modules.get(full)
        if mod is not None or not init.is_file():
            continue
        spec = importlib.util.spec_from_file_location(full, init, submodule_search_locations=[str(folder)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[full]
            raise
        setattr(rastlit, name, mod)
