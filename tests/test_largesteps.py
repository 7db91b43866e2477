"""rastlit.largesteps: Laplacians against loops, solves against dense linear algebra, gradients
against dense autograd and gradcheck, AdamUniform against its formula, an end-to-end comparison
with plain Adam, and bad input."""

from __future__ import annotations

import copy
import importlib.util
import io
import math
import pickle
import subprocess
import sys

import pytest
import torch

from rastlit.largesteps import AdamUniform, LargeSteps, laplacian_matrix
from rastlit.mesh import icosphere

D = torch.float64
chol = pytest.mark.skipif(importlib.util.find_spec("cholespy") is None, reason="needs cholespy")


def _rand(*shape, seed=0, dtype=D):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _dense_uniform(V, faces):
    """D - A from a Python set of undirected edges."""
    edges = set()
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            if i != j:
                edges.add((min(i, j), max(i, j)))
    L = [[0.0] * V for _ in range(V)]
    for i, j in edges:
        L[i][j] = L[j][i] = -1.0
        L[i][i] += 1.0
        L[j][j] += 1.0
    return torch.tensor(L, dtype=D)


def _dense_cotangent(verts, faces):
    """-(cot a + cot b) / 2 off the diagonal, angles from acos, one triangle at a time."""
    V = verts.shape[0]
    L = [[0.0] * V for _ in range(V)]
    p = verts.tolist()
    for tri in faces.tolist():
        for k in range(3):
            o, i, j = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
            e1 = [p[i][d] - p[o][d] for d in range(3)]
            e2 = [p[j][d] - p[o][d] for d in range(3)]
            cosang = sum(x * y for x, y in zip(e1, e2)) / (math.dist(p[i], p[o]) * math.dist(p[j], p[o]))
            w = 0.5 / math.tan(math.acos(cosang))
            L[i][j] -= w
            L[j][i] -= w
            L[i][i] += w
            L[j][j] += w
    return torch.tensor(L, dtype=D)


def _sphere(sub=2, dtype=D):
    return icosphere(sub, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# laplacian_matrix
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_laplacian_matches_loop(dtype):
    v, f = _sphere(2)
    V = v.shape[0]
    L = laplacian_matrix(V, f, dtype=dtype)
    assert L.layout == torch.sparse_coo and L.is_coalesced() and L.dtype == dtype
    assert L.shape == (V, V)
    Ld = L.to_dense().double()
    assert torch.equal(Ld, _dense_uniform(V, f))
    assert torch.equal(Ld, Ld.T)
    assert Ld.sum(1).abs().max() == 0
    # icosphere: 12 vertices of valence 5, the rest valence 6
    assert sorted(Ld.diagonal().unique().tolist()) == [5.0, 6.0]


def test_uniform_laplacian_degenerate_faces_and_isolated_vertices():
    # faces with a repeated vertex, a duplicated face with the other winding, vertex 5 unused
    f = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 2, 3], [3, 3, 4], [4, 4, 4]], dtype=torch.int32)
    L = laplacian_matrix(6, f, dtype=D).to_dense()
    assert torch.equal(L, _dense_uniform(6, f))
    assert torch.equal(L[5], torch.zeros(6, dtype=D))
    assert L[3, 4] == -1 and L[4, 4] == 1
    # no faces at all
    assert torch.equal(laplacian_matrix(3, torch.zeros(0, 3, dtype=torch.long)).to_dense(),
                       torch.zeros(3, 3))


def test_cotangent_laplacian_matches_loop():
    v, f = _sphere(1)
    v = v + 0.05 * _rand(*v.shape, seed=1)  # uneven angles, some obtuse
    f = f[:-7]  # an open surface: boundary edges have one opposite angle
    L = laplacian_matrix(v.shape[0], f, "cotangent", verts=v)
    assert L.dtype == D
    Ld = L.to_dense()
    torch.testing.assert_close(Ld, _dense_cotangent(v, f), atol=1e-12, rtol=1e-12)
    assert torch.equal(Ld, Ld.T)
    assert Ld.sum(1).abs().max() < 1e-12
    assert torch.linalg.eigvalsh(Ld).min() > -1e-12  # positive semi-definite
    # "cot" is an alias; dtype follows verts unless given
    assert laplacian_matrix(v.shape[0], f, "cot", verts=v.float()).dtype == torch.float32


def test_laplacian_matrix_bad_input():
    v, f = _sphere(0)
    with pytest.raises(ValueError, match="num_verts"):
        laplacian_matrix(-1, f)
    with pytest.raises(ValueError, match="faces"):
        laplacian_matrix(5, f)  # indices out of range
    with pytest.raises(ValueError, match="faces"):
        laplacian_matrix(12, f[:, :2])
    with pytest.raises(TypeError, match="faces"):
        laplacian_matrix(12, f.float())
    with pytest.raises(ValueError, match="kind"):
        laplacian_matrix(12, f, "mean")
    with pytest.raises(ValueError, match="verts"):
        laplacian_matrix(12, f, "cotangent")
    with pytest.raises(ValueError, match="zero area"):
        vv = v.clone()
        vv[f[0, 1]] = vv[f[0, 0]]
        laplacian_matrix(12, f, "cotangent", verts=vv)
    with pytest.raises(TypeError, match="dtype"):
        laplacian_matrix(12, f, dtype=torch.int32)


# ----------------------------------------------------------------------------------------------
# LargeSteps: solves
# ----------------------------------------------------------------------------------------------

@chol
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_round_trip(dtype, tol):
    v, f = _sphere(3, dtype)
    v = v + 0.1 * _rand(*v.shape, seed=2, dtype=dtype)
    ls = LargeSteps(v, f, lambda_=19.0)
    u = ls.to_differential(v)
    assert u.dtype == dtype and u.shape == v.shape
    back = ls.from_differential(u)
    assert back.dtype == dtype and back.shape == v.shape
    assert (back - v).abs().max() < tol


@chol
def test_matches_dense_solve():
    v, f = _sphere(2)
    V = v.shape[0]
    for kind in ("uniform", "cotangent"):
        ls = LargeSteps(v, f, lambda_=7.5, kind=kind)
        L = laplacian_matrix(V, f, kind, verts=v).to_dense()
        M = torch.eye(V, dtype=D) + 7.5 * L
        torch.testing.assert_close(ls.M.to_dense(), M, atol=1e-12, rtol=0)
        assert torch.equal(ls.L.to_dense(), L)
        u = _rand(V, 3, seed=3)
        torch.testing.assert_close(ls.from_differential(u), torch.linalg.solve(M, u), atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(ls.to_differential(u), M @ u, atol=1e-12, rtol=1e-12)


@chol
def test_alpha_form_and_identity():
    v, f = _sphere(1)
    V = v.shape[0]
    L = laplacian_matrix(V, f, dtype=D).to_dense()
    ls = LargeSteps(v, f, alpha=0.9)
    assert ls.alpha == 0.9 and math.isclose(ls.lambda_, 9.0)
    M = 0.1 * torch.eye(V, dtype=D) + 0.9 * L
    torch.testing.assert_close(ls.M.to_dense(), M, atol=1e-12, rtol=0)
    u = _rand(V, 3, seed=4)
    torch.testing.assert_close(ls.from_differential(u), torch.linalg.solve(M, u), atol=1e-11, rtol=1e-10)
    # same smoothing as lambda = alpha / (1 - alpha), u scaled by 1 - alpha
    torch.testing.assert_close(LargeSteps(v, f, lambda_=9.0).from_differential(u / 0.1),
                               ls.from_differential(u), atol=1e-12, rtol=1e-10)
    # lambda 0 / alpha 0: the identity
    for ls0 in (LargeSteps(v, f, lambda_=0.0), LargeSteps(v, f, alpha=0.0)):
        torch.testing.assert_close(ls0.from_differential(u), u, atol=1e-15, rtol=0)


@chol
def test_rhs_shapes():
    v, f = _sphere(1)
    V = v.shape[0]
    ls = LargeSteps(v, f, lambda_=3.0)
    M = ls.M.to_dense()
    for shape in [(V,), (V, 1), (V, 2, 3), (V, 7)]:
        u = _rand(*shape, seed=5)
        x = ls.from_differential(u)
        assert x.shape == u.shape
        ref = torch.linalg.solve(M, u.reshape(V, -1)).reshape(shape)
        torch.testing.assert_close(x, ref, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(ls.to_differential(x), u, atol=1e-12, rtol=1e-10)
    # a non-contiguous right-hand side
    u = _rand(3, V, seed=6).T
    torch.testing.assert_close(ls.from_differential(u), torch.linalg.solve(M, u), atol=1e-12, rtol=1e-10)
    # no columns
    assert ls.from_differential(torch.zeros(V, 0, dtype=D)).shape == (V, 0)
    assert ls.to_differential(torch.zeros(V, 0, dtype=D)).shape == (V, 0)


@chol
def test_isolated_vertices_and_pieces():
    # two disconnected triangles and two unused vertices: M is still SPD thanks to the identity
    v = _rand(8, 3, seed=7)
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    ls = LargeSteps(v, f, lambda_=100.0)
    u = _rand(8, 3, seed=8)
    x = ls.from_differential(u)
    torch.testing.assert_close(x, torch.linalg.solve(ls.M.to_dense(), u), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(x[6:], u[6:], atol=0, rtol=0)  # isolated: M row = identity row
    # no faces at all
    torch.testing.assert_close(LargeSteps(v, f[:0]).from_differential(u), u, atol=0, rtol=0)


@chol
def test_pickle_and_deepcopy():
    v, f = _sphere(1)
    ls = LargeSteps(v, f, alpha=0.5)
    u = _rand(v.shape[0], 3, seed=15)
    for other in (copy.deepcopy(ls), pickle.loads(pickle.dumps(ls))):
        assert other._solver is not ls._solver and other.alpha == 0.5
        assert torch.equal(other.from_differential(u), ls.from_differential(u))
        assert torch.equal(other.to_differential(u), ls.to_differential(u))


# ----------------------------------------------------------------------------------------------
# LargeSteps: gradients
# ----------------------------------------------------------------------------------------------

@chol
def test_gradient_matches_dense_autograd():
    v, f = _sphere(2)
    V = v.shape[0]
    ls = LargeSteps(v, f, lambda_=19.0)
    M = ls.M.to_dense()
    w = _rand(V, 3, seed=9)
    u0 = ls.to_differential(v + 0.1 * _rand(V, 3, seed=10))

    def loss(x):
        return (w * x).sum() + (x ** 3).sum()

    u = u0.clone().requires_grad_()
    loss(ls.from_differential(u)).backward()
    ud = u0.clone().requires_grad_()
    loss(torch.linalg.solve(M, ud)).backward()
    torch.testing.assert_close(u.grad, ud.grad, atol=1e-8, rtol=0)

    x = v.clone().requires_grad_()
    loss(ls.to_differential(x)).backward()
    xd = v.clone().requires_grad_()
    loss(M @ xd).backward()
    torch.testing.assert_close(x.grad, xd.grad, atol=1e-8, rtol=1e-10)


@chol
def test_gradcheck():
    v, f = _sphere(0)
    ls = LargeSteps(v, f, lambda_=2.0)
    u = _rand(12, 2, seed=11).requires_grad_()
    assert torch.autograd.gradcheck(ls.from_differential, (u,))
    assert torch.autograd.gradcheck(ls.to_differential, (u,))
    # higher order (the backward applies the Function again), in gradcheck's fast mode
    assert torch.autograd.gradgradcheck(ls.from_differential, (u,), fast_mode=True)
    assert torch.autograd.gradgradcheck(ls.to_differential, (u,), fast_mode=True)


@chol
def test_no_graph_without_grad():
    v, f = _sphere(0)
    ls = LargeSteps(v, f)
    assert ls.from_differential(v).grad_fn is None
    u = v.clone().requires_grad_()
    with torch.no_grad():
        assert ls.from_differential(u).grad_fn is None
    assert ls.from_differential(u).requires_grad


# ----------------------------------------------------------------------------------------------
# LargeSteps: bad input
# ----------------------------------------------------------------------------------------------

@chol
def test_largesteps_bad_input():
    v, f = _sphere(0)
    with pytest.raises(ValueError, match="faces"):
        LargeSteps(v, f + 1)  # index 12 out of range
    with pytest.raises(ValueError, match="faces"):
        LargeSteps(v, -f)
    with pytest.raises(ValueError, match="faces"):
        LargeSteps(v, f.reshape(-1, 2))
    with pytest.raises(TypeError, match="faces"):
        LargeSteps(v, f.double())
    with pytest.raises(TypeError, match="faces"):
        LargeSteps(v, f.tolist())
    bad = v.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="verts"):
        LargeSteps(bad, f)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="verts"):
        LargeSteps(bad, f)
    with pytest.raises(ValueError, match="verts"):
        LargeSteps(v[:, :2], f)
    with pytest.raises(TypeError, match="verts"):
        LargeSteps(v.half(), f)
    with pytest.raises(TypeError, match="verts"):
        LargeSteps(v.numpy(), f)
    with pytest.raises(ValueError, match="lambda_"):
        LargeSteps(v, f, lambda_=-1.0)
    with pytest.raises(ValueError, match="lambda_"):
        LargeSteps(v, f, lambda_=float("nan"))
    with pytest.raises(TypeError, match="lambda_"):
        LargeSteps(v, f, lambda_="19")
    with pytest.raises(ValueError, match="alpha"):
        LargeSteps(v, f, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        LargeSteps(v, f, alpha=-0.1)
    with pytest.raises(ValueError, match="not both"):
        LargeSteps(v, f, lambda_=3.0, alpha=0.5)
    with pytest.raises(ValueError, match="kind"):
        LargeSteps(v, f, kind="harmonic")

    ls = LargeSteps(v, f)
    with pytest.raises(ValueError, match="u"):
        ls.from_differential(torch.zeros(11, 3, dtype=D))  # cholespy itself does not check this
    with pytest.raises(ValueError, match="u"):
        ls.from_differential(torch.zeros((), dtype=D))
    with pytest.raises(TypeError, match="u"):
        ls.from_differential(torch.zeros(12, 3))  # float32 into a float64 LargeSteps
    with pytest.raises(ValueError, match="v"):
        ls.to_differential(torch.zeros(13, 3, dtype=D))
    with pytest.raises(TypeError, match="v"):
        ls.to_differential([[0.0] * 3] * 12)


def test_missing_cholespy_message(monkeypatch):
    v, f = _sphere(0)
    monkeypatch.setitem(sys.modules, "cholespy", None)  # makes `import cholespy` fail
    with pytest.raises(ImportError, match=r"pip install cholespy.*train"):
        LargeSteps(v, f)


@chol
def test_import_is_light():
    code = ("import sys, rastlit.largesteps as m; "
            "assert 'cholespy' not in sys.modules; "
            "m.LargeSteps(*__import__('rastlit.mesh', fromlist=['x']).icosphere(0)); "
            "assert 'cholespy' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the solver is released at exit: no nanobind "leaked instance" noise
    assert "leaked" not in out.stderr, out.stderr


# ----------------------------------------------------------------------------------------------
# AdamUniform
# ----------------------------------------------------------------------------------------------

def test_adam_uniform_steps_by_hand():
    p = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=D, requires_grad=True)
    g1 = torch.tensor([[0.5, -1.0], [0.25, 2.0]], dtype=D)
    g2 = torch.tensor([[-3.0, 0.0], [1.0, 1.0]], dtype=D)
    lr, b1, b2, eps = 0.1, 0.8, 0.9, 1e-3
    opt = AdamUniform([p], lr=lr, betas=(b1, b2), eps=eps)

    p.grad = g1.clone()
    opt.step()
    # step 1: m = 0.2 g1, v = 0.1 g1^2; bias-corrected m = g1, max v = 4, sqrt = 2
    expected1 = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=D) - lr * g1 / (2.0 + eps)
    torch.testing.assert_close(p.detach(), expected1, atol=1e-15, rtol=0)

    p.grad = g2.clone()
    opt.step()
    m = b1 * ((1 - b1) * g1) + (1 - b1) * g2
    v = b2 * ((1 - b2) * g1 ** 2) + (1 - b2) * g2 ** 2  # per entry, as Adam
    m_hat = m / (1 - b1 ** 2)
    s_hat = float(v.max()) / (1 - b2 ** 2)  # then one scalar: the largest entry
    expected2 = expected1 - lr * m_hat / (math.sqrt(s_hat) + eps)
    torch.testing.assert_close(p.detach(), expected2, atol=1e-15, rtol=0)
    st = opt.state[p]
    assert st["step"] == 2
    torch.testing.assert_close(st["exp_avg_sq"], v, atol=1e-15, rtol=0)
    # the largest per-entry average (0.9225), not an average of the largest squares (1.26)
    assert float(v.max()) != pytest.approx(b2 * (1 - b2) * 4.0 + (1 - b2) * 9.0)

    # a tensor without a gradient is left alone; one step moves every entry by the same scale
    q = torch.zeros(3, dtype=D, requires_grad=True)
    r = torch.zeros(4, dtype=D, requires_grad=True)
    opt = AdamUniform([q, r], lr=1.0, eps=0.0)
    q.grad = torch.tensor([1.0, -4.0, 2.0], dtype=D)
    opt.step()
    torch.testing.assert_close(q.detach(), torch.tensor([-0.25, 1.0, -0.5], dtype=D))
    assert torch.equal(r.detach(), torch.zeros(4, dtype=D)) and len(opt.state[r]) == 0


def test_adam_uniform_param_groups():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = AdamUniform([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, eps=0.0)
    a.grad = torch.tensor([1.0, 2.0, -4.0])
    b.grad = torch.tensor([-1.0, 1.0])
    opt.step()
    torch.testing.assert_close(a.detach(), 1 - 0.1 * torch.tensor([0.25, 0.5, -1.0]))
    torch.testing.assert_close(b.detach(), 1 - 0.5 * torch.tensor([-1.0, 1.0]))


def _grads(seed, n, shape):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(n)]


def test_adam_uniform_state_dict_round_trip():
    grads = _grads(12, 6, (5, 3))
    p = torch.zeros(5, 3, requires_grad=True)
    opt = AdamUniform([p], lr=0.05, betas=(0.7, 0.95))
    for g in grads[:3]:
        p.grad = g.clone()
        opt.step()
    buf = io.BytesIO()  # through a checkpoint file, as in training (load_state_dict itself
    torch.save(opt.state_dict(), buf)  # shares tensors with the dict it is given, as Adam's)
    buf.seek(0)
    sd = torch.load(buf)

    q = p.detach().clone().requires_grad_()
    opt2 = AdamUniform([q], lr=1.0)  # hyper-parameters come back with the state dict
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05 and opt2.param_groups[0]["betas"] == (0.7, 0.95)
    for g in grads[3:]:
        p.grad = g.clone()
        opt.step()
        q.grad = g.clone()
        opt2.step()
    assert torch.equal(p, q)
    assert opt2.state[q]["step"] == 6


def test_adam_uniform_closure_and_bad_args():
    p = torch.tensor([2.0], requires_grad=True)
    opt = AdamUniform([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 4.0
    assert float(p.detach()) < 2.0
    with pytest.raises(ValueError, match="lr"):
        AdamUniform([p], lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        AdamUniform([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        AdamUniform([p], eps=-1e-8)


# ----------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------

@chol
def test_large_steps_fit_is_smoother_than_adam():
    """Fit a sphere to a noisy, stretched target through from_differential with AdamUniform,
    and the vertices directly with Adam, same steps and lr: both reduce the loss; the large-steps
    result is far smoother (measured: ~20x lower Laplacian energy; asserted: 4x)."""
    v0, f = _sphere(3)
    V = v0.shape[0]
    target = v0 * (1.0 + 0.3 * v0[:, 1:2] ** 2) + 0.03 * _rand(V, 3, seed=13)
    start = 0.6 * v0
    L = laplacian_matrix(V, f, dtype=D)

    def loss_fn(x):
        return ((x - target) ** 2).sum(1).mean()

    def energy(x):
        return float((torch.sparse.mm(L, x) ** 2).sum())

    steps, lr = 50, 0.05
    ls = LargeSteps(start, f, lambda_=19.0)
    u = ls.to_differential(start).detach().requires_grad_()
    opt = AdamUniform([u], lr=lr)
    for _ in range(steps):
        loss = loss_fn(ls.from_differential(u))
        opt.zero_grad()
        loss.backward()
        opt.step()
    v_ls = ls.from_differential(u).detach()

    p = start.clone().requires_grad_()
    opt = torch.optim.Adam([p], lr=lr)
    for _ in range(steps):
        loss = loss_fn(p)
        opt.zero_grad()
        loss.backward()
        opt.step()
    v_adam = p.detach()

    loss0 = float(loss_fn(start))
    assert float(loss_fn(v_ls)) < 0.1 * loss0  # measured ~0.03 * loss0
    assert float(loss_fn(v_adam)) < 0.1 * loss0
    assert energy(v_ls) < 0.25 * energy(v_adam)
    assert energy(v_ls) < 0.25 * energy(target)


# ----------------------------------------------------------------------------------------------
# CUDA
# ----------------------------------------------------------------------------------------------

@chol
@pytest.mark.cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_cuda_matches_cpu(dtype, tol):
    v, f = _sphere(3, dtype)
    ls_cpu = LargeSteps(v, f)
    ls = LargeSteps(v.cuda(), f.cuda())
    assert ls.M.device.type == "cuda"
    u = _rand(v.shape[0], 300, seed=14, dtype=dtype)  # > 128 right-hand sides: chunked
    x = ls.from_differential(u.cuda())
    assert x.device.type == "cuda"
    torch.testing.assert_close(x.cpu(), ls_cpu.from_differential(u), atol=tol, rtol=tol)
    assert (ls.from_differential(ls.to_differential(v.cuda())) - v.cuda()).abs().max() < tol
    # gradients on the GPU, and from a side stream
    uu = u[:, :3].cuda().requires_grad_()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        (ls.from_differential(uu) ** 2).sum().backward()
    torch.cuda.synchronize()
    ref = u[:, :3].clone().requires_grad_()
    (ls_cpu.from_differential(ref) ** 2).sum().backward()
    torch.testing.assert_close(uu.grad.cpu(), ref.grad, atol=tol, rtol=tol)


def test_adam_uniform_group_without_uniform_scaling_is_adam():
    torch.manual_seed(0)
    a = torch.randn(7, 3, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    opt_u = AdamUniform([{"params": [a], "uniform": False}], lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    opt_a = torch.optim.Adam([b], lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    for _ in range(5):
        for p, o in ((a, opt_u), (b, opt_a)):
            o.zero_grad()
            (p * torch.linspace(-2, 3, 21).reshape(7, 3)).square().sum().backward()
            o.step()
    assert torch.allclose(a, b, atol=1e-6)
