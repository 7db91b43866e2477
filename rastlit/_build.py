"""Compile the C++ (and later CUDA) sources in ``csrc/`` on first use and cache the result.

The build goes through ``torch.utils.cpp_extension.load`` (ninja, incremental: a kernel edit only
recompiles that file). A stamp of the sources, flags and torch version lets later processes load
the cached library directly without invoking ninja at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
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


# ------------------------------------------------------------------------------ the C++ compiler
# The extension must use the libstdc++ that torch runs with. A compiler that links libstdc++
# statically (some images put such a GCC first, e.g. through CXX) embeds a second copy in the
# extension; the two copies' locale state then clashes and the first error message that formats a
# number segfaults (seen on a GPU image whose CXX was a GCC in /opt/gcc). A tiny probe library
# shows which kind a compiler is before anything is built.


def _elf_needed(path: Path) -> list[str] | None:
    """The DT_NEEDED entries of a 64-bit little-endian ELF shared object; None if not such a file."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQII", data, shoff + i * shentsize) for i in range(shnum)]
    needed = []
    for _name, sh_type, _flags, _addr, offset, size, link, _info in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        str_off = sections[link][4]
        for k in range(0, size, 16):
            tag, val = struct.unpack_from("<qQ", data, offset + k)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", str_off + val)
                needed.append(data[str_off + val:end].decode())
    return needed


def _links_libstdcxx_dynamically(cxx: str) -> bool | None:
    """Whether ``cxx`` links C++ shared objects against a shared libstdc++/libc++ (None: the probe
    could not run, e.g. no such compiler; the build then reports the compiler's own error)."""
    src = "#include <sstream>\n#include <string>\nstd::string rastlit_probe(long x) { std::ostringstream s; s << x; return s.str(); }\n"
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "probe.cpp").write_text(src)
        out = Path(d) / "probe.so"
        try:
            r = subprocess.run([*shlex.split(cxx), "-shared", "-fPIC", str(Path(d) / "probe.cpp"), "-o", str(out)],
                               capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0 or not out.is_file():
            return None
        needed = _elf_needed(out)
    if needed is None:
        return None
    return any(n.startswith(("libstdc++", "libc++")) for n in needed)


@contextlib.contextmanager
def _compiler_env():
    """Run the build with a compiler that links libstdc++ dynamically: ``CXX`` (default ``c++``) if
    it does, else the system ``c++`` (and ``cc`` for nvcc's host compiler), else a clear error."""
    cxx = os.environ.get("CXX", "c++")
    if _links_libstdcxx_dynamically(cxx) is not False:
        yield
        return
    fallback = shutil.which("c++")
    if fallback is None or _links_libstdcxx_dynamically(fallback) is not True:
        raise RuntimeError(
            f"rastlit: the C++ compiler {cxx!r} links libstdc++ statically, and no other 'c++' on PATH "
            "links it dynamically; an extension with its own libstdc++ crashes inside torch. Set CXX to a "
            "compiler that links the shared libstdc++ (the one torch uses), e.g. the system g++."
        )
    print(f"rastlit: CXX={cxx} links libstdc++ statically (unsafe inside torch); building with {fallback}",
          file=sys.stderr, flush=True)
    saved = {k: os.environ.get(k) for k in ("CXX", "CC")}
    os.environ["CXX"] = fallback
    if "CC" in os.environ:  # nvcc's host compiler (-ccbin), from the same toolchain as CXX
        cc = shutil.which("cc")
        if cc:
            os.environ["CC"] = cc
        else:
            del os.environ["CC"]
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cflags() -> list[str]:
    san = sanitize()
    return _CFLAGS + (_SANITIZE_FLAGS[san] if san else [])


def _ldflags() -> list[str]:
    san = sanitize()
    return _LDFLAGS + (_SANITIZE_FLAGS[san] if san else [])


def csrc_dir() -> Path:
    """The kernel sources: ``csrc/`` beside the package (source tree, editable install) or the
    copy installed inside the package (regular install)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "csrc", here / "csrc"):
        if (cand / "ops.cpp").is_file():
            return cand
    raise RuntimeError(
        f"rastlit: cannot find the C++ sources (looked for csrc/ops.cpp beside {here} and inside it); "
        "reinstall rastlit with `pip install .`"
    )


def cuda_enabled() -> bool:
    """Build the CUDA kernels too: torch has CUDA, nvcc is found, and there is a GPU to target
    (or TORCH_CUDA_ARCH_LIST names the architectures). RASTLIT_NO_CUDA=1 forces a CPU build."""
    if os.environ.get("RASTLIT_NO_CUDA") == "1" or not torch.version.cuda:
        return False
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        return False
    return torch.cuda.is_available() or bool(os.environ.get("TORCH_CUDA_ARCH_LIST"))


def _sources(root: Path, with_cuda: bool) -> list[Path]:
    cpp = [p for p in root.rglob("*.cpp") if with_cuda or p.name != "ops_cuda.cpp"]
    cu = list(root.rglob("*.cu")) if with_cuda else []
    return sorted(cpp + cu)


def _stamp(root: Path) -> str:
    h = hashlib.sha256()
    # Every source and header: a change to any of them (.cuh included) rebuilds.
    for p in sorted(list(root.rglob("*.cpp")) + list(root.rglob("*.h")) + list(root.rglob("*.cu")) +
                    list(root.rglob("*.cuh"))):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    h.update(repr((_cflags(), _CUDA_CFLAGS, _ldflags(), torch.__version__, sys.version_info[:2], cuda_enabled(),
                   os.environ.get("TORCH_CUDA_ARCH_LIST"))).encode())
    if sanitize():
        h.update(f"sanitize={sanitize()}".encode())
    return h.hexdigest()


def build_dir() -> Path:
    base = os.environ.get("RASTLIT_BUILD_DIR")
    if base:
        root = Path(base)
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        root = cache / "rastlit"
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
