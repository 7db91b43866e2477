"""Custom-op registration: opcheck for every op, torch.compile(fullgraph=True) against eager."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

import rastlit
from rastlit import _build


def _inputs(dtype=torch.float32, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    B, V, T = 2, 12, 4
    pos = torch.rand(B, V, 4, generator=g, dtype=dtype) * 1.6 - 0.8
    pos[..., 3] = 1.0 + 0.3 * torch.rand(B, V, generator=g, dtype=dtype)
    pos[..., :2] *= 1.5
    tri = torch.arange(V, dtype=torch.int32).view(T, 3)
    return pos.requires_grad_(requires_grad), tri


def test_opcheck_rasterize():
    pos, tri = _inputs(torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.rastlit.rasterize_fwd.default, (pos, tri, 9, 11, None, True))
    ranges = torch.tensor([[0, 2], [1, 3]], dtype=torch.int32)
    torch.library.opcheck(torch.ops.rastlit.rasterize_fwd.default, (pos[0].detach().requires_grad_(), tri, 9, 11, ranges, False))
    # depth peeling: the previous layer as the optional last argument
    prev, _ = rastlit.rasterize(pos.detach(), tri, (9, 11))
    torch.library.opcheck(torch.ops.rastlit.rasterize_fwd.default, (pos, tri, 9, 11, None, True, prev))


def test_opcheck_interpolate():
    pos, tri = _inputs(torch.float64)
    rast, db = rastlit.rasterize(pos, tri, (9, 11))
    attr = torch.randn(2, 12, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.rastlit.interpolate_fwd.default, (attr, rast, tri, db.requires_grad_(), [0, 2]))
    torch.library.opcheck(torch.ops.rastlit.interpolate_fwd.default, (attr[0].detach().requires_grad_(), rast, tri, None, []))


def test_opcheck_backward_ops():
    pos, tri = _inputs(torch.float64)
    rast, db = rastlit.rasterize(pos, tri, (9, 11))
    g = torch.randn_like(rast)
    torch.library.opcheck(torch.ops.rastlit.rasterize_bwd.default, (pos, tri, rast, None, g, g.clone()))
    attr = torch.randn(2, 12, 3, dtype=torch.float64)
    go = torch.randn(2, 9, 11, 3, dtype=torch.float64)
    gda = torch.randn(2, 9, 11, 2, dtype=torch.float64)
    torch.library.opcheck(torch.ops.rastlit.interpolate_bwd.default, (attr, rast, tri, db, [1], go, gda))


def _render_loss(pos, tri, attr, target):
    rast, db = rastlit.rasterize(pos, tri, (16, 20))
    color, dcolor = rastlit.interpolate(attr, rast, tri, db, diff_attrs=[0])
    return ((color - target) ** 2).mean() + 0.1 * dcolor.abs().mean()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_matches_eager(backend):
    torch._dynamo.reset()
    pos, tri = _inputs()
    attr = torch.rand(1, 12, 3, generator=torch.Generator().manual_seed(1))
    target = torch.rand(2, 16, 20, 3, generator=torch.Generator().manual_seed(2))

    p1 = pos.clone().requires_grad_()
    a1 = attr.clone().requires_grad_()
    loss1 = _render_loss(p1, tri, a1, target)
    loss1.backward()

    compiled = torch.compile(_render_loss, fullgraph=True, backend=backend)
    p2 = pos.clone().requires_grad_()
    a2 = attr.clone().requires_grad_()
    loss2 = compiled(p2, tri, a2, target)
    loss2.backward()
    torch.testing.assert_close(loss2, loss1)
    torch.testing.assert_close(p2.grad, p1.grad)
    torch.testing.assert_close(a2.grad, a1.grad)
    assert p1.grad.abs().sum() > 0


def test_regular_install_ships_every_kernel_source():
    """A non-editable install carries csrc/ as package data: every header, .cpp and .cu the
    build needs must be matched by the package-data globs in pyproject.toml."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = cfg["package-data"]
    for src in (root / "csrc").rglob("*"):
        if not src.is_file() or src.suffix not in (".h", ".cuh", ".cpp", ".cu"):
            continue
        rel = src.relative_to(root / "csrc")
        pkg = ".".join(["rastlit.csrc", *rel.parts[:-1]])
        assert pkg in cfg["packages"], f"{pkg} is not listed in [tool.setuptools] packages"
        assert any(rel.name.endswith(g.lstrip("*")) for g in globs.get(pkg, [])), f"{rel} not in package-data of {pkg}"


def test_build_stamp_covers_every_kernel_source(tmp_path):
    """The build stamps decide whether a library is recompiled: editing any source or header
    (.cuh included: tile_binning_cuda.cuh, cuda_common.cuh, ...) must change the torch extension's
    stamp; csrc/jax/ is the JAX library's binding, which feeds the JAX stamp (and not the torch one),
    as does every kernel and header it is built from."""
    import shutil
    from pathlib import Path

    from rastlit import _build

    jax_build = None
    try:
        from rastlit.jax import _build as jax_build
    except ImportError:
        pass
    csrc = Path(__file__).resolve().parent.parent / "csrc"
    root = tmp_path / "csrc"
    shutil.copytree(csrc, root)
    base = _build._stamp(root)
    jax_base = jax_build._stamp(root) if jax_build else None
    edited = 0
    for src in sorted(root.rglob("*")):
        if not src.is_file() or src.suffix not in (".h", ".cuh", ".cpp", ".cu"):
            continue
        rel = src.relative_to(root)
        text = src.read_bytes()
        src.write_bytes(text + b"\n// edit\n")
        if rel.parts[0] == "jax":
            assert _build._stamp(root) == base, f"{rel} (the JAX binding) rebuilds the torch extension"
        else:
            assert _build._stamp(root) != base, f"{rel} does not feed the build stamp"
        if jax_build and (rel.parts[0] == "jax" or src in jax_build._sources(root, True) or src.suffix in (".h", ".cuh")):
            assert jax_build._stamp(root) != jax_base, f"{rel} does not feed the JAX build stamp"
        src.write_bytes(text)
        edited += 1
    assert edited > 0 and any(root.rglob("*.cuh"))
    assert _build._stamp(root) == base


def test_sanitize_flag_gets_its_own_build_dir_and_stamp(monkeypatch, tmp_path):
    """RASTLIT_SANITIZE=address builds an instrumented library into its own cache folder (it must
    never be loaded by a normal process, nor a normal library by an ASan run); nothing is compiled."""
    from pathlib import Path

    import pytest

    from rastlit import _build

    monkeypatch.setenv("RASTLIT_BUILD_DIR", str(tmp_path))
    root = Path(__file__).resolve().parent.parent / "csrc"
    monkeypatch.delenv("RASTLIT_SANITIZE", raising=False)
    plain_dir, plain_stamp = _build.build_dir(), _build._stamp(root)
    assert _build.sanitize() is None and "-fsanitize=address" not in _build._cflags()
    monkeypatch.setenv("RASTLIT_SANITIZE", "address")
    asan_dir = _build.build_dir()
    assert asan_dir != plain_dir and asan_dir.name == plain_dir.name + "-asan" and asan_dir.parent == plain_dir.parent
    assert _build._stamp(root) != plain_stamp
    for flags in (_build._cflags(), _build._ldflags()):
        assert {"-fsanitize=address", "-fno-omit-frame-pointer", "-g"} <= set(flags)
    if "libasan" not in Path("/proc/self/maps").read_text():  # a clear error, not an ASan abort
        with pytest.raises(RuntimeError, match="LD_PRELOAD"):
            _build._check_sanitizer_runtime()
    monkeypatch.setenv("RASTLIT_SANITIZE", "thread")
    with pytest.raises(ValueError, match="RASTLIT_SANITIZE"):
        _build.build_dir()


def _fake_compiler(tmp_path, name, extra):
    real = shutil.which("c++")
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\nexec {real} {extra} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_a_compiler_that_links_libstdcxx_statically_is_replaced(monkeypatch, tmp_path):
    """An extension carrying its own static libstdc++ segfaults inside torch on the first error
    message that formats a number (seen on a GPU image whose CXX was such a GCC). The build probes
    CXX first and falls back to the system c++."""
    static = _fake_compiler(tmp_path, "static-g++", "-static-libstdc++")
    assert _build._links_libstdcxx_dynamically(shutil.which("c++")) is True
    assert _build._links_libstdcxx_dynamically(static) is False
    assert _build._links_libstdcxx_dynamically(str(tmp_path / "no-such-compiler")) is None
    monkeypatch.setenv("CXX", static)
    monkeypatch.setenv("CC", "/nonexistent/gcc")
    with _build._compiler_env():
        assert os.environ["CXX"] == shutil.which("c++")
        assert os.environ["CC"] != "/nonexistent/gcc"
    assert os.environ["CXX"] == static and os.environ["CC"] == "/nonexistent/gcc"
    # a good CXX is left alone
    monkeypatch.setenv("CXX", shutil.which("c++"))
    with _build._compiler_env():
        assert os.environ["CXX"] == shutil.which("c++")


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_no_dynamic_compiler_at_all_raises_clearly(monkeypatch, tmp_path):
    static = _fake_compiler(tmp_path, "static-g++", "-static-libstdc++")
    monkeypatch.setenv("CXX", static)
    from rastlit import _compiler  # the probe shared with rastlit.jax's build

    monkeypatch.setattr(_compiler, "_links_libstdcxx_dynamically", lambda cxx: False)
    with pytest.raises(RuntimeError, match="links libstdc\\+\\+ statically"):
        with _build._compiler_env():
            pass


def test_elf_needed_reads_the_extension():
    rastlit.ops  # loads (building if needed) the extension
    lib = _build.build_dir() / "rastlit_ext.so"
    needed = _build._elf_needed(lib)
    assert needed is not None and any(n.startswith("libstdc++") for n in needed), needed
    assert _build._elf_needed(Path(_build.__file__)) is None
