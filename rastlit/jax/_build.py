"""Build the JAX library (``csrc/jax/ffi_cpu.cpp`` plus the CPU kernels) on first use, with ninja
and the C++ compiler directly: no torch, no ``cpp_extension``.

The cache (``~/.cache/rastlit/jax-<jaxlib>-ffi<major>.<minor>-py<ver>/``, or under
``RASTLIT_BUILD_DIR``) is keyed by a stamp of the sources, the flags, the jaxlib version and the
XLA FFI API version of the headers it was compiled against, so a new jaxlib rebuilds. Only the
handler symbols are exported (``-fvisibility=hidden``): the torch extension and this library load
into one process without their kernels clashing.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .._compiler import _compiler_env, cache_root, find_csrc

_LIB_NAME = "rastlit_jax.so"
# -ffp-contract=off as in the torch build (bitwise equal kernels); -fopenmp for the kernels'
# parallel loops; hidden visibility so that only the handlers are exported.
_CFLAGS = ["-O3", "-std=c++17", "-fPIC", "-fopenmp", "-ffp-contract=off", "-fvisibility=hidden",
           "-fvisibility-inlines-hidden"]
_LDFLAGS = ["-shared", "-fopenmp"]
_KERNELS = ["rasterize/rasterize_cpu.cpp", "interpolate/interpolate_cpu.cpp", "texture/texture_cpu.cpp",
            "antialias/antialias_cpu.cpp"]
_CUDA_KERNELS = ["jax/ffi_cuda.cu", "rasterize/rasterize_cuda.cu", "interpolate/interpolate_cuda.cu",
                 "texture/texture_cuda.cu", "antialias/antialias_cuda.cu"]
# -fmad=false: the CUDA twin of -ffp-contract=off (see rastlit/_build.py)
_NVCC_FLAGS = ["-O3", "-std=c++17", "-fmad=false", "-Xcompiler", "-fPIC,-fvisibility=hidden"]


def cuda_enabled() -> bool:
    """Build the CUDA handlers too: JAX sees a GPU and nvcc is found (RASTLIT_NO_CUDA=1: never)."""
    if os.environ.get("RASTLIT_NO_CUDA") == "1" or shutil.which("nvcc") is None:
        return False
    import jax

    try:
        return any(d.platform == "gpu" for d in jax.devices())
    except RuntimeError:
        return False


def _cuda_arch_flags() -> list[str]:
    """-gencode flags for the visible GPUs (or $TORCH_CUDA_ARCH_LIST-style $RASTLIT_CUDA_ARCH, e.g. "8.0;9.0")."""
    archs = os.environ.get("RASTLIT_CUDA_ARCH")
    if archs:
        caps = [a.strip().replace(".", "") for a in archs.replace(",", ";").split(";") if a.strip()]
    else:
        import jax

        caps = sorted({str(getattr(d, "compute_capability", "")).replace(".", "") for d in jax.devices()
                       if d.platform == "gpu"} - {""}) or ["80", "90"]
    return [f"-gencode=arch=compute_{c},code=sm_{c}" for c in caps]


def csrc_dir() -> Path:
    return find_csrc("jax/ffi_cpu.cpp")


def ffi_include_dir() -> Path:
    import jax.ffi

    return Path(jax.ffi.include_dir())


def ffi_api_version() -> tuple[int, int]:
    """The XLA FFI API version (major, minor) that the installed jaxlib's headers declare."""
    text = (ffi_include_dir() / "xla" / "ffi" / "api" / "c_api.h").read_text()
    major = re.search(r"#define XLA_FFI_API_MAJOR (\d+)", text)
    minor = re.search(r"#define XLA_FFI_API_MINOR (\d+)", text)
    if not (major and minor):
        raise RuntimeError("rastlit.jax: cannot read the XLA FFI API version from jaxlib's c_api.h")
    return int(major.group(1)), int(minor.group(1))


def _sources(root: Path, with_cuda: bool = False) -> list[Path]:
    cpu = [root / "jax" / "ffi_cpu.cpp"] + [root / k for k in _KERNELS]
    return cpu + ([root / k for k in _CUDA_KERNELS] if with_cuda else [])


def _stamp(root: Path) -> str:
    import jaxlib

    h = hashlib.sha256()
    files = sorted(set(_sources(root, True)) | set(root.rglob("*.h")) | set(root.rglob("*.cuh")))
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    cuda = cuda_enabled()
    h.update(repr((_CFLAGS, _LDFLAGS, jaxlib.__version__, ffi_api_version(), os.environ.get("CXX", "c++"), cuda,
                   _NVCC_FLAGS + _cuda_arch_flags() if cuda else None)).encode())
    return h.hexdigest()


def build_dir() -> Path:
    import jaxlib

    root = cache_root()
    major, minor = ffi_api_version()
    tag = f"jax{jaxlib.__version__}-ffi{major}.{minor}-py{sys.version_info[0]}{sys.version_info[1]}"
    return root / (tag + ("-cuda" if cuda_enabled() else ""))


def _ninja_file(root: Path, bdir: Path, with_cuda: bool) -> str:
    cxx = os.environ.get("CXX", "c++")
    inc = [f"-I{root}", f"-isystem {ffi_include_dir()}"]
    ldflags = list(_LDFLAGS)
    if with_cuda:
        cuda_home = Path(shutil.which("nvcc")).resolve().parent.parent
        ldflags += [f"-L{cuda_home / 'lib64'}", "-lcudart"]
    lines = [
        "ninja_required_version = 1.3",
        f"cxx = {cxx}",
        f"cflags = {' '.join(_CFLAGS + inc)}",
        f"ldflags = {' '.join(ldflags)}",
        f"nvcc = {shutil.which('nvcc') or 'nvcc'}",
        f"nvflags = {' '.join(_NVCC_FLAGS + (_cuda_arch_flags() if with_cuda else []) + inc)} -ccbin {cxx}",
        "rule cxx",
        "  command = $cxx -MMD -MF $out.d $cflags -c $in -o $out",
        "  depfile = $out.d",
        "  deps = gcc",
        "rule nvcc",
        "  command = $nvcc $nvflags -c $in -o $out",
        "rule link",
        "  command = $cxx $in $ldflags -o $out",
    ]
    objs = []
    for src in _sources(root, with_cuda):
        obj = src.relative_to(root).with_suffix(".o").as_posix().replace("/", "_")
        objs.append(obj)
        lines.append(f"build {obj}: {'nvcc' if src.suffix == '.cu' else 'cxx'} {src}")
    lines.append(f"build {_LIB_NAME}.tmp: link {' '.join(objs)}")
    lines.append(f"default {_LIB_NAME}.tmp")
    return "\n".join(lines) + "\n"


def library_path(verbose: bool = False) -> Path:
    """Build the library if its stamp is stale and return its path."""
    root = csrc_dir()
    bdir = build_dir()
    bdir.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(root)
    lib, stamp_file = bdir / _LIB_NAME, bdir / "stamp"
    if lib.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return lib
    with open(bdir / "rastlit.lock", "w") as lock:  # one builder at a time across processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
            return lib
        ninja = shutil.which("ninja")
        if ninja is None:
            raise RuntimeError("rastlit.jax: building the JAX library needs ninja on PATH (pip install ninja)")
        what = "CPU and CUDA, ~2 min" if cuda_enabled() else "CPU, ~15 s"
        print(f"compiling rastlit's JAX library ({what}), once (cache: {bdir})", file=sys.stderr, flush=True)
        t0 = time.time()
        stamp_file.unlink(missing_ok=True)
        with _compiler_env():
            (bdir / "build.ninja").write_text(_ninja_file(root, bdir, cuda_enabled()))
            r = subprocess.run([ninja, "-C", str(bdir)] + (["-v"] if verbose else []), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"rastlit.jax: building the JAX library failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}")
        os.replace(bdir / f"{_LIB_NAME}.tmp", lib)
        stamp_file.write_text(stamp)
        if verbose:
            print(f"rastlit.jax: built in {time.time() - t0:.1f} s: {shlex.quote(str(lib))}", file=sys.stderr)
    return lib


_lib = None


def load(verbose: bool = False) -> ctypes.CDLL:
    """Build (if needed) and load the library; returns the ``ctypes`` handle."""
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(str(library_path(verbose)), mode=ctypes.RTLD_LOCAL)
    return _lib
