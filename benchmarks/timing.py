"""The one timer of the benchmark scripts: warm-up, then the median of repeated calls.

CPU: wall time (``time.perf_counter``). CUDA: CUDA events recorded around each call on the current
stream, read after a synchronize (the GPU time of the call, launch gaps included).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, NamedTuple


class Timing(NamedTuple):
    median_ms: float
    reps: int
    min_ms: float

    @property
    def median_s(self) -> float:
        return self.median_ms / 1e3


def _device_type(device) -> str:
    return device if isinstance(device, str) else getattr(device, "type", str(device))


def time_call(fn: Callable[[], object], device="cpu", budget_s: float = 2.0, max_reps: int = 15,
              min_reps: int = 1) -> Timing:
    """Median time of ``fn()`` after warm-up (one call, two if it is quick). The repeat count is
    as many as fit in ``budget_s``, between ``min_reps`` and ``max_reps``: a slow configuration is
    still measured, just fewer times. ``device``: ``"cpu"``, ``"cuda"`` or a ``torch.device``."""
    if _device_type(device) == "cuda":
        import torch

        def once() -> float:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1e3

        torch.cuda.synchronize()
    else:
        def once() -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

    t_warm = once()
    if t_warm < 0.2:
        t_warm = once()
    fit = budget_s / max(t_warm, 1e-6)
    reps = max(min_reps, min(max_reps, int(fit) if fit < max_reps else max_reps))
    times = [once() for _ in range(max(1, reps))]
    return Timing(1e3 * statistics.median(times), len(times), 1e3 * min(times))
