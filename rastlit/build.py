"""Build the rastlit extension ahead of time: ``python -m rastlit.build``."""

from __future__ import annotations

import sys


def main() -> int:
    from . import _build

    _build.load(verbose="-v" in sys.argv)
    import torch

    print(f"rastlit extension ready in {_build.build_dir()} "
          f"(ops: {', '.join(n for n in ('rasterize_fwd', 'interpolate_fwd') if hasattr(torch.ops.rastlit, n))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
