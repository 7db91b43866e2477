"""What the torch extension's build (``rastlit._build``) and the JAX library's
(``rastlit.jax._build``) share: the C++ compiler probe, where the sources are and the cache root.
Imports nothing but the standard library (no torch)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

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


def find_csrc(marker: str) -> Path:
    """The kernel sources: ``csrc/`` beside the package (source tree, editable install) or the copy
    installed inside it (regular install), recognised by the file ``marker`` (relative to csrc)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "csrc", here / "csrc"):
        if (cand / marker).is_file():
            return cand
    raise RuntimeError(
        f"rastlit: cannot find the C++ sources (looked for csrc/{marker} beside {here} and inside it); "
        "reinstall rastlit with `pip install .`"
    )


def cache_root() -> Path:
    """Where built libraries are cached: ``$RASTLIT_BUILD_DIR``, else ``$XDG_CACHE_HOME/rastlit``
    (``~/.cache/rastlit``); each build keys its own subfolder under it."""
    base = os.environ.get("RASTLIT_BUILD_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rastlit"
