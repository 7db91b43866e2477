"""Compile the C++ (and later CUDA) sources in ``csrc/`` on first use and cache the result.

The build goes through ``torch.utils.cpp_extension.load`` (ninja, incremental: a kernel edit only
recompiles that file). A stamp of the sources, flags and torch version lets later processes load
the cached library directly without invoking ninja at all.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import torch

_EXT_NAME = "rastlit_ext"
_loaded = False

# cpp_extension passes no OpenMP flags: without -fopenmp in both cflags and ldflags the kernels'
# parallel loops silently run on one thread. -ffp-contract=off keeps cross products exactly
# antisymmetric (watertight shared edges) even where the compiler could fuse multiply-adds.
_CFLAGS = ["-O3", "-fopenmp", "-ffp-contract=off"]
_LDFLAGS = ["-fopenmp"]
# -fmad=false is the CUDA twin of -ffp-contract=off: nvcc fuses a*b+c by default, which changes the
# rounding of the shared header math, so exact depth ties (a vertex shared by several faces)
# broke differently on the GPU and the CPU and the soft rasterizer's K-nearest lists differed.
# Explicit fma() calls (exact.h's error-free products) are unaffected.
_CUDA_CFLAGS = ["-O3", "-fmad=false", "-DRASTLIT_WITH_CUDA"]
# RASTLIT_SANITIZE=address: an AddressSanitizer build of the C++ kernels (opt-in, for fuzzing; the
# process must preload libasan, see README). It lives under its own build tag, never mixing with
# the normal cache.
_SANITIZE_FLAGS = {"address": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]}


def sanitize() -> str | None:
    """The sanitizer named by RASTLIT_SANITIZE (only ``address`` is supported), or None."""
    val = os.environ.get("RASTLIT_SANITIZE", "").strip().lower()
    if not val:
        return None
    if val not in _SANITIZE_FLAGS:
        raise ValueError(
            f"rastlit: RASTLIT_SANITIZE must be one of {sorted(_SANITIZE_FLAGS)} or unset, got {val!r}"
        )
    return val


def _check_sanitizer_runtime() -> None:
    """An ASan library loaded into a process without the ASan runtime preloaded kills it; say how
    to run it instead."""
    if sanitize() != "address":
        return
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return
    if "libasan" not in maps:
        raise RuntimeError(
            "rastlit: RASTLIT_SANITIZE=address needs the ASan runtime preloaded: run with "
            'LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" '
            "ASAN_OPTIONS=detect_leaks=0 (or unset RASTLIT_SANITIZE)"
        )


from ._compiler import _compiler_env, _elf_needed, _links_libstdcxx_dynamically  # noqa: E402,F401
from ._compiler import cache_root, find_csrc  # noqa: E402


def _cflags() -> list[str]:
    san = sanitize()
    return _CFLAGS + (_SANITIZE_FLAGS[san] if san else [])


def _ldflags() -> list[str]:
    san = sanitize()
    return _LDFLAGS + (_SANITIZE_FLAGS[san] if san else [])


def csrc_dir() -> Path:
    """The kernel sources: ``csrc/`` beside the package (source tree, editable install) or the
    copy installed inside the package (regular install)."""
    return find_csrc("ops.cpp")


def cuda_enabled() -> bool:
    """Build the CUDA kernels too: torch has CUDA, nvcc is found, and there is a GPU to target
    (or TORCH_CUDA_ARCH_LIST names the architectures). RASTLIT_NO_CUDA=1 forces a CPU build."""
    if os.environ.get("RASTLIT_NO_CUDA") == "1" or not torch.version.cuda:
        return False
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        return False
    return torch.cuda.is_available() or bool(os.environ.get("TORCH_CUDA_ARCH_LIST"))


def _torch_files(root: Path, pattern: str) -> list[Path]:
    """Kernel and binding files of the torch extension (``csrc/jax/`` is the JAX library's binding)."""
    return [p for p in root.rglob(pattern) if "jax" not in p.relative_to(root).parts[:-1]]


def _sources(root: Path, with_cuda: bool) -> list[Path]:
    cpp = [p for p in _torch_files(root, "*.cpp") if with_cuda or p.name != "ops_cuda.cpp"]
    cu = _torch_files(root, "*.cu") if with_cuda else []
    return sorted(cpp + cu)


def _stamp(root: Path) -> str:
    h = hashlib.sha256()
    # Every source and header: a change to any of them (.cuh included) rebuilds.
    for p in sorted(_torch_files(root, "*.cpp") + _torch_files(root, "*.h") + _torch_files(root, "*.cu") +
                    _torch_files(root, "*.cuh")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    h.update(repr((_cflags(), _CUDA_CFLAGS, _ldflags(), torch.__version__, sys.version_info[:2], cuda_enabled(),
                   os.environ.get("TORCH_CUDA_ARCH_LIST"))).encode())
    if sanitize():
        h.update(f"sanitize={sanitize()}".encode())
    return h.hexdigest()


def build_dir() -> Path:
    root = cache_root()
    tag = f"torch{torch.__version__.replace('+', '_')}-py{sys.version_info[0]}{sys.version_info[1]}"
    if cuda_enabled():
        tag += "-cuda"
    san = sanitize()
    if san == "address":
        tag += "-asan"
    return root / tag


def load(verbose: bool = False) -> None:
    """Build (if needed) and load the extension, registering the ``torch.ops.rastlit`` ops."""
    global _loaded
    if _loaded:
        return
    root = csrc_dir()
    _check_sanitizer_runtime()
    bdir = build_dir()
    bdir.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(root)
    stamp_file = bdir / "stamp"
    lib = bdir / f"{_EXT_NAME}.so"
    if lib.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        torch.ops.load_library(str(lib))
        _loaded = True
        return

    # One builder at a time across processes (pytest workers, DDP ranks): take an flock, then
    # look at the stamp again, since another process may have finished the build meanwhile.
    import fcntl

    with open(bdir / "rastlit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (lib.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp):
            _compile(root, bdir, lib, stamp_file, stamp, verbose)  # also loads it
        else:
            torch.ops.load_library(str(lib))
    _loaded = True


def _compile(root: Path, bdir: Path, lib: Path, stamp_file: Path, stamp: str, verbose: bool) -> None:
    from torch.utils import cpp_extension

    with_cuda = cuda_enabled()
    est = (60 if not lib.is_file() else 10) + (120 if with_cuda else 0)
    what = "CPU and CUDA" if with_cuda else "CPU"
    print(f"compiling rastlit {what} kernels, once, ~{est} s (cache: {bdir})", file=sys.stderr, flush=True)
    t0 = time.time()
    # We hold the flock, so a baton file left here is stale (a builder was killed); cpp_extension
    # would wait on it forever.
    (bdir / "lock").unlink(missing_ok=True)
    stamp_file.unlink(missing_ok=True)
    # cpp_extension.load builds and loads in one go.
    with _compiler_env():
        _build_and_load(cpp_extension, root, bdir, with_cuda, verbose)
    built = max(bdir.glob(f"{_EXT_NAME}*.so"), key=lambda p: p.stat().st_mtime)
    if built != lib:  # cpp_extension versioned the name within this process
        tmp = lib.with_suffix(".so.tmp")
        tmp.write_bytes(built.read_bytes())
        os.replace(tmp, lib)
    stamp_file.write_text(stamp)
    if verbose:
        print(f"rastlit: built in {time.time() - t0:.1f} s", file=sys.stderr)


def _build_and_load(cpp_extension, root: Path, bdir: Path, with_cuda: bool, verbose: bool) -> None:
    cpp_extension.load(
        name=_EXT_NAME,
        sources=[str(p) for p in _sources(root, with_cuda)],
        extra_cflags=_cflags() + (["-DRASTLIT_WITH_CUDA"] if with_cuda else []),
        extra_cuda_cflags=_CUDA_CFLAGS,
        with_cuda=with_cuda,
        extra_ldflags=_ldflags(),
        extra_include_paths=[str(root)],
        build_directory=str(bdir),
        is_python_module=False,
        verbose=verbose,
    )
