"""Laplacian-preconditioned ("large steps") mesh optimisation.

After Nicolet, Jacobson & Jakob, *Large Steps in Inverse Rendering of Geometry* (SIGGRAPH Asia
2021). Instead of optimising the vertex positions ``v [V,3]`` directly, optimise
``u = M v`` with the sparse symmetric positive definite matrix

    M = I + lambda * L          (equivalently, up to a scale, (1 - alpha) I + alpha L)

where ``L`` is a mesh Laplacian. Positions are recovered with one sparse Cholesky solve per
evaluation, ``v = M^{-1} u``. Since ``dloss/du = M^{-1} dloss/dv``, a gradient-descent step of
size ``lr`` on ``u`` moves the vertices by ``-lr * M^{-2} dloss/dv``: gradients that live on a
few vertices (as from a rasterizer's silhouette) are spread smoothly over the surface, and large
steps stay free of spikes and tangles. Pair it with :class:`AdamUniform`, whose step size is
uniform over a tensor, so that the per-coordinate rescaling of Adam does not undo the smoothing.

Usage::

    ls = LargeSteps(verts, faces, lambda_=19.0)
    u = ls.to_differential(verts).detach().requires_grad_()
    opt = AdamUniform([u], lr=1e-2)
    for _ in range(n):
        v = ls.from_differential(u)          # differentiable, [V,3]
        loss = render_loss(v, faces)
        opt.zero_grad(); loss.backward(); opt.step()

Device-generic torch code: CPU and CUDA tensors alike. The sparse Cholesky factorisation and the
triangular solves come from ``cholespy`` (imported lazily by :class:`LargeSteps`; only ``torch``
is imported with this module).
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
import weakref

import torch

__all__ = ["laplacian_matrix", "LargeSteps", "AdamUniform"]

_KINDS = {"uniform": "uniform", "cotangent": "cotangent", "cot": "cotangent"}


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------

def _check_faces(faces, num_verts: int, fn: str) -> torch.Tensor:
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"{fn}: faces must be a torch.Tensor, got {type(faces).__name__}")
    if faces.dtype.is_floating_point or faces.dtype.is_complex or faces.dtype == torch.bool:
        raise TypeError(f"{fn}: faces must be an integer tensor, got {faces.dtype}")
    if faces.dim() != 2 or faces.shape[1] != 3:
        raise ValueError(f"{fn}: faces must have shape [F,3], got {list(faces.shape)}")
    if faces.numel() > 0:
        lo, hi = int(faces.min()), int(faces.max())
        if lo < 0 or hi >= num_verts:
            raise ValueError(f"{fn}: faces indices must be in [0, num_verts={num_verts}), "
                             f"got range [{lo}, {hi}]")
    return faces.long()


def _check_kind(kind, fn: str) -> str:
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"{fn}: kind must be 'uniform' or 'cotangent' (= 'cot'), got {kind!r}")
    return _KINDS[kind]


def _check_real(name: str, x, fn: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{fn}: {name} must be finite, got {x}")
    return x


# ----------------------------------------------------------------------------------------------
# Laplacian
# ----------------------------------------------------------------------------------------------

def _edge_weights(num_verts: int, f: torch.Tensor, kind: str, verts, dtype, device):
    """Unique undirected edges ``(i [E], j [E])`` with ``i < j`` and their weights ``w [E]``
    (uniform: 1; cotangent: half the sum of the cotangents of the opposite angles)."""
    V = num_verts
    if f.shape[0] == 0:
        e = torch.zeros(0, dtype=torch.long, device=device)
        return e, e, torch.zeros(0, dtype=dtype, device=device)
    if kind == "cotangent":
        # a face with a repeated vertex has no area: it adds nothing to the cotangent weights
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    # corner k's edge joins corners k+1 and k+2 (so that it is the edge opposite corner k)
    a = torch.cat([f[:, 1], f[:, 2], f[:, 0]])
    b = torch.cat([f[:, 2], f[:, 0], f[:, 1]])
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = lo * V + hi
    if kind == "uniform":
        uniq = torch.unique(key[lo != hi])  # a face with a repeated vertex adds no self-edge
        w = torch.ones(uniq.shape[0], dtype=dtype, device=device)
    else:
        p = verts.detach().to(device=device, dtype=torch.float64)
        p0, p1, p2 = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
        dbl_area = torch.linalg.cross(p1 - p0, p2 - p0, dim=-1).norm(dim=-1)
        if bool((dbl_area <= 0).any()):
            raise ValueError("laplacian_matrix: kind='cotangent' needs non-degenerate "
                             "triangles, got a face with zero area")
        corners = (p0, p1, p2)
        cots = []
        for k in range(3):  # cot of the angle at corner k = dot / |cross| of its two edges
            e1 = corners[(k + 1) % 3] - corners[k]
            e2 = corners[(k + 2) % 3] - corners[k]
            cots.append((e1 * e2).sum(-1) / dbl_area)
        cot = torch.cat(cots)  # aligned with (a, b): corner k's cotangent weighs edge (k+1, k+2)
        uniq, inv = torch.unique(key, return_inverse=True)
        w = torch.zeros(uniq.shape[0], dtype=torch.float64, device=device)
        w = w.index_add(0, inv, 0.5 * cot).to(dtype)
    return uniq // V, uniq % V, w


def laplacian_matrix(num_verts: int, faces: torch.Tensor, kind: str = "uniform", *,
                     verts: torch.Tensor | None = None, dtype: torch.dtype | None = None,
                     device=None) -> torch.Tensor:
    """Mesh Laplacian as a coalesced sparse COO tensor ``[V,V]``, symmetric positive
    semi-definite with zero row sums (``L @ 1 = 0``).

    - ``kind="uniform"`` (the default): the combinatorial graph Laplacian ``L = D - A`` of the
      unique undirected edges of ``faces``: ``L[i,j] = -1`` for each edge ``{i,j}`` and
      ``L[i,i]`` = the number of neighbours of ``i``.
    - ``kind="cotangent"`` (or ``"cot"``): ``L[i,j] = -(cot a_ij + cot b_ij) / 2`` with
      ``a_ij, b_ij`` the angles opposite edge ``{i,j}`` (one on a boundary), ``L[i,i] =
      -sum_j L[i,j]``; needs ``verts [V,3]`` (used without gradient) and non-degenerate faces.

    Faces with a repeated vertex add no self-edge; isolated vertices get an all-zero row.
    ``dtype`` defaults to ``verts.dtype`` if given, else float32; ``device`` defaults to that of
    ``verts`` if given, else that of ``faces``.
    """
    fn = "laplacian_matrix"
    if isinstance(num_verts, bool) or not isinstance(num_verts, numbers.Integral) or num_verts < 0:
        raise ValueError(f"{fn}: num_verts must be a non-negative int, got {num_verts!r}")
    V = int(num_verts)
    kind = _check_kind(kind, fn)
    f = _check_faces(faces, V, fn)
    if verts is not None:
        if not isinstance(verts, torch.Tensor) or not verts.dtype.is_floating_point:
            raise TypeError(f"{fn}: verts must be a floating-point torch.Tensor")
        if verts.dim() != 2 or verts.shape[0] != V or verts.shape[1] != 3:
            raise ValueError(f"{fn}: verts must have shape [num_verts={V},3], got {list(verts.shape)}")
    elif kind == "cotangent":
        raise ValueError(f"{fn}: kind='cotangent' needs verts")
    if dtype is None:
        dtype = verts.dtype if verts is not None else torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{fn}: dtype must be a floating-point torch.dtype, got {dtype!r}")
    if device is None:
        device = verts.device if verts is not None else faces.device
    device = torch.device(device)
    f = f.to(device)
    if kind == "cotangent" and not bool(torch.isfinite(verts).all()):
        raise ValueError(f"{fn}: verts must be finite")

    i, j, w = _edge_weights(V, f, kind, verts, dtype, device)
    diag = torch.zeros(V, dtype=dtype, device=device).index_add(0, i, w).index_add(0, j, w)
    ar = torch.arange(V, device=device)
    idx = torch.stack([torch.cat([i, j, ar]), torch.cat([j, i, ar])])
    val = torch.cat([-w, -w, diag])
    return torch.sparse_coo_tensor(idx, val, (V, V), dtype=dtype, device=device,
                                   check_invariants=False).coalesce()


# ----------------------------------------------------------------------------------------------
# The large-steps parameterisation
# ----------------------------------------------------------------------------------------------

def _import_cholespy():
    try:
        import cholespy
    except ImportError as e:  # pragma: no cover - exercised only without cholespy
        raise ImportError(
            "rastlit.largesteps.LargeSteps needs the sparse Cholesky solver 'cholespy': "
            "pip install cholespy (it is part of rastlit's 'train' extra: "
            "pip install 'rastlit[train]')") from e
    return cholespy


# cholespy's CUDA backend binds the first visible CUDA device (driver device 0).
_CUDA_SOLVER_DEVICE = 0
# cholespy's CUDA triangular solves take at most this many right-hand sides at once.
_CUDA_MAX_RHS = 128


class _SymmetricOperator(torch.autograd.Function):
    """``y = A x`` for a symmetric linear operator ``A`` of ``ls``: ``op`` is ``"_matvec"``
    (``A = M``, ``u = M v``) or ``"_solve"`` (``A = M^-1``, ``v = M^-1 u``). ``A`` is symmetric, so
    the backward applies ``A`` again."""

    @staticmethod
    def forward(ctx, x, ls, op):
        ctx.ls, ctx.op = ls, op
        return getattr(ls, op)(x.detach())

    @staticmethod
    def backward(ctx, grad):
        # applying the Function again (instead of a raw call) keeps higher derivatives exact
        return _apply(ctx.op, grad, ctx.ls), None, None


def _apply(op: str, x, ls):
    # Without a graph to record, skip the Function: its context object would otherwise sit in a
    # reference cycle holding ``ls`` (and cholespy's solver) until the next garbage collection.
    if torch.is_grad_enabled() and x.requires_grad:
        return _SymmetricOperator.apply(x, ls, op)
    return getattr(ls, op)(x.detach())


# Every LargeSteps alive, so that their cholespy solvers can be released at interpreter exit.
_LIVE: "weakref.WeakSet[LargeSteps]" = weakref.WeakSet()
_atexit_registered = False


def _release_solvers_at_exit():
    # An autograd graph still referenced at exit (a global tensor, a cycle not yet collected)
    # keeps its LargeSteps alive past nanobind's own teardown, which then prints "nanobind:
    # leaked instance ... CholeskySolverF" warnings. Nothing solves after this point.
    for ls in list(_LIVE):
        ls._solver = None


class LargeSteps:
    """The linear reparameterisation ``u = M v`` of *Large Steps in Inverse Rendering of
    Geometry*, with ``M`` factorised once by a sparse Cholesky decomposition.

    Args:
        verts: ``[V,3]`` float32 or float64 vertex positions (finite). They fix the dtype and
            device of everything here (and the cotangent weights for ``kind="cotangent"``); the
            values are not kept.
        faces: ``[F,3]`` integer vertex indices in ``[0, V)``.
        lambda_: smoothing strength ``lambda >= 0`` of ``M = I + lambda * L``. 0 gives the
            identity (plain vertex optimisation); larger values smooth more (gradients spread
            over about ``sqrt(lambda)`` rings of neighbours with the uniform Laplacian). The paper
            uses values of this order (``lambda = 19`` is ``alpha = 0.95`` below).
        alpha: alternative to ``lambda_``, the paper's form ``M = (1 - alpha) I + alpha L`` with
            ``0 <= alpha < 1``; it is ``(1 - alpha) (I + lambda L)`` with
            ``lambda = alpha / (1 - alpha)``: the same smoothing, ``u`` scaled by ``1 - alpha``.
            Give ``lambda_`` or ``alpha``, not both.
        kind: ``"uniform"`` (combinatorial Laplacian, the paper's choice) or ``"cotangent"``
            (weights from ``verts``), see :func:`laplacian_matrix`.

    Attributes: ``M`` (coalesced sparse COO ``[V,V]``, verts' dtype and device), ``L``,
    ``lambda_``, ``alpha`` (None unless given), ``num_verts``, ``dtype``, ``device``.

    ``M`` is symmetric positive definite for any mesh (the identity term keeps isolated vertices
    and disconnected pieces well posed). CUDA tensors are solved on the GPU by cholespy, which
    binds the first visible GPU: on another CUDA device the solves fall back to the CPU (a
    warning says so). Solves use a per-object lock (cholespy's solver keeps scratch buffers).
    Pickling and ``copy.deepcopy`` work (the factorisation is recomputed on load).
    """

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor, lambda_: float = 19.0, *,
                 alpha: float | None = None, kind: str = "uniform"):
        fn = "LargeSteps"
        if not isinstance(verts, torch.Tensor):
            raise TypeError(f"{fn}: verts must be a torch.Tensor, got {type(verts).__name__}")
        if verts.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{fn}: verts must be float32 or float64, got {verts.dtype}")
        if verts.dim() != 2 or verts.shape[1] != 3 or verts.shape[0] == 0:
            raise ValueError(f"{fn}: verts must have shape [V,3] with V >= 1, got {list(verts.shape)}")
        if not bool(torch.isfinite(verts).all()):
            raise ValueError(f"{fn}: verts must be finite (found NaN or inf)")
        if verts.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{fn}: verts must be on the CPU or a CUDA device, got {verts.device}")
        V = verts.shape[0]
        kind = _check_kind(kind, fn)
        _check_faces(faces, V, fn)
        lam = _check_real("lambda_", lambda_, fn)
        if alpha is not None:
            if lam != 19.0:
                raise ValueError(f"{fn}: give lambda_ or alpha, not both")
            a = _check_real("alpha", alpha, fn)
            if not 0.0 <= a < 1.0:
                raise ValueError(f"{fn}: alpha must be in [0, 1), got {a}")
            diag_scale, lap_scale = 1.0 - a, a
            self.alpha, self.lambda_ = a, a / (1.0 - a)
        else:
            if lam < 0:
                raise ValueError(f"{fn}: lambda_ must be >= 0, got {lam}")
            diag_scale, lap_scale = 1.0, lam
            self.alpha, self.lambda_ = None, lam

        self.num_verts = V
        self.dtype = verts.dtype
        self.device = verts.device
        self.kind = kind
        _import_cholespy()  # fail early, before any work, if it is missing

        # M is assembled in float64 (cholespy factorises in double whatever the solver type)
        L64 = laplacian_matrix(V, faces, kind, verts=verts, dtype=torch.float64, device=verts.device)
        # L64 is coalesced and stores every diagonal entry (zeros included), so M has its pattern
        idx = L64.indices()
        val = L64.values() * lap_scale + (idx[0] == idx[1]).to(torch.float64) * diag_scale
        M64 = torch.sparse_coo_tensor(idx, val, (V, V), is_coalesced=True, check_invariants=False)
        self.L = L64.to(self.dtype)
        self.M = M64.to(self.dtype)

        self._M64 = M64  # float64: what the factorisation is computed from
        self._factorize()

    def _factorize(self) -> None:
        """Build the cholespy solver of ``self._M64`` (and the other unpicklable members)."""
        cholespy = _import_cholespy()
        solver_device = self.device
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            if index != _CUDA_SOLVER_DEVICE:
                warnings.warn(f"LargeSteps: cholespy only solves on cuda:{_CUDA_SOLVER_DEVICE}; "
                              f"verts are on cuda:{index}, so the solves run on the CPU",
                              RuntimeWarning, stacklevel=3)
                solver_device = torch.device("cpu")
        self._solver_device = solver_device
        rows, cols = self._M64.indices().to(solver_device, torch.int32)
        Solver = cholespy.CholeskySolverF if self.dtype == torch.float32 else cholespy.CholeskySolverD
        self._solver = Solver(self.num_verts, rows.contiguous(), cols.contiguous(),
                              self._M64.values().to(solver_device).contiguous(),
                              cholespy.MatrixType.COO)
        self._lock = threading.Lock()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            self._M_csr = self.M.to_sparse_csr()
        global _atexit_registered
        if not _atexit_registered:
            import atexit
            atexit.register(_release_solvers_at_exit)
            _atexit_registered = True
        _LIVE.add(self)

    # pickling / copy.deepcopy: the cholespy solver is rebuilt (refactorised) from M
    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_solver", "_lock", "_M_csr", "_solver_device"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._factorize()

    # ---- checks and the raw solve -------------------------------------------------------------

    def _check_rhs(self, x, name: str, fn: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"LargeSteps.{fn}: {name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(f"LargeSteps.{fn}: {name} must be {self.dtype} like the verts given "
                            f"to LargeSteps, got {x.dtype}")
        if x.device != self.device:
            raise ValueError(f"LargeSteps.{fn}: {name} must be on {self.device} like the verts "
                             f"given to LargeSteps, got {x.device}")
        if x.dim() < 1 or x.shape[0] != self.num_verts:
            raise ValueError(f"LargeSteps.{fn}: {name} must have shape [V={self.num_verts}, ...], "
                             f"got {list(x.shape)}")

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``M @ v`` for ``v [V, ...]`` (no autograd)."""
        v2 = v.reshape(self.num_verts, -1)
        if v2.shape[1] == 0:
            return torch.zeros(v.shape, dtype=v.dtype, device=v.device)
        with torch.autocast(v.device.type, enabled=False):  # keep the verts' precision
            return (self._M_csr @ v2).reshape(v.shape)

    def _solve(self, b: torch.Tensor) -> torch.Tensor:
        """``M^{-1} b`` for ``b [V, ...]`` (no autograd)."""
        shape = b.shape
        b2 = b.reshape(self.num_verts, -1)
        k = b2.shape[1]
        if k == 0:
            return torch.zeros(shape, dtype=b.dtype, device=b.device)
        if self._solver is None:
            raise RuntimeError("LargeSteps: the solver was released at interpreter exit")
        b2 = b2.to(self._solver_device)
        on_cuda = b2.device.type == "cuda"
        step = _CUDA_MAX_RHS if on_cuda else k
        outs = []
        with self._lock:
            # cholespy launches on CUDA's (per-thread) default stream, which is ordered with the
            # legacy default stream torch uses, but not with torch's side streams
            side = on_cuda and torch.cuda.current_stream(b2.device) != torch.cuda.default_stream(b2.device)
            if side:
                torch.cuda.current_stream(b2.device).synchronize()
            for s in range(0, k, step):
                rhs = b2[:, s:s + step].contiguous()  # cholespy needs C-contiguous [V, n_rhs]
                x = torch.empty_like(rhs)
                self._solver.solve(rhs, x)
                outs.append(x)
            if side:
                torch.cuda.synchronize(b2.device)
        x = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
        return x.to(b.device).reshape(shape)

    # ---- public API ---------------------------------------------------------------------------

    def to_differential(self, v: torch.Tensor) -> torch.Tensor:
        """``u = M @ v`` for ``v [V, ...]`` (differentiable). Start the optimisation from
        ``u = ls.to_differential(verts).detach().requires_grad_()``."""
        self._check_rhs(v, "v", "to_differential")
        return _apply("_matvec", v, self)

    def from_differential(self, u: torch.Tensor) -> torch.Tensor:
        """``v = M^{-1} u`` for ``u [V, ...]`` by the Cholesky factor (differentiable, to any
        order; the backward is one more solve with the symmetric ``M``)."""
        self._check_rhs(u, "u", "from_differential")
        return _apply("_solve", u, self)

    def __repr__(self) -> str:
        form = f"alpha={self.alpha}" if self.alpha is not None else f"lambda_={self.lambda_}"
        return (f"LargeSteps(num_verts={self.num_verts}, {form}, kind={self.kind!r}, "
                f"dtype={self.dtype}, device={self.device})")


# ----------------------------------------------------------------------------------------------
# Optimizer
# ----------------------------------------------------------------------------------------------

class AdamUniform(torch.optim.Optimizer):
    """Adam with a *uniform* second moment, as in *Large Steps in Inverse Rendering of
    Geometry*: per parameter tensor, the (bias-corrected) second-moment estimate is replaced by
    its maximum over the tensor, a single scalar, so every coordinate of the tensor gets the same
    step scale and a preconditioned gradient (see :class:`LargeSteps`) keeps its direction
    instead of being rescaled coordinate by coordinate.

    Per tensor ``p`` with gradient ``g`` at step ``t`` (``t = 1, 2, ...``), entries ``i``::

        m_t = beta1 * m_{t-1} + (1 - beta1) * g                    (as Adam)
        v_t = beta2 * v_{t-1} + (1 - beta2) * g^2                  (as Adam)
        p  <- p - lr * (m_t / (1 - beta1^t)) / (sqrt(max_i v_t[i] / (1 - beta2^t)) + eps)

    Args: ``params`` (tensors or param groups), ``lr`` (default 1e-3), ``betas`` (default
    (0.9, 0.999)), ``eps`` (default 1e-8). A param group with ``uniform=False`` keeps Adam's
    per-entry second moment (for tensors beside the shape that are not preconditioned, such as
    per-vertex colours). Dense gradients only. ``state_dict`` /
    ``load_state_dict`` are the standard :class:`torch.optim.Optimizer` ones; the state per
    tensor is ``step`` (int), ``exp_avg`` and ``exp_avg_sq`` (both like ``p``).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if isinstance(lr, torch.Tensor) or not 0.0 <= float(lr) or not math.isfinite(float(lr)):
            raise ValueError(f"AdamUniform: lr must be a finite float >= 0, got {lr!r}")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or \
                not all(0.0 <= float(b) < 1.0 for b in betas):
            raise ValueError(f"AdamUniform: betas must be two floats in [0, 1), got {betas!r}")
        if not 0.0 <= float(eps) or not math.isfinite(float(eps)):
            raise ValueError(f"AdamUniform: eps must be a finite float >= 0, got {eps!r}")
        super().__init__(params, dict(lr=float(lr), betas=(float(betas[0]), float(betas[1])),
                                      eps=float(eps)))

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise RuntimeError("AdamUniform does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                if p.numel() == 0:
                    continue
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                bc1 = 1.0 - beta1 ** t
                bc2 = 1.0 - beta2 ** t
                # one scalar per tensor, kept on the device (no host synchronisation); a group
                # with uniform=False (e.g. colours beside a large-steps shape) is plain Adam
                if group.get("uniform", True):
                    denom = (v.amax() / bc2).sqrt_().add_(eps)
                else:
                    denom = (v / bc2).sqrt_().add_(eps)
                p.addcdiv_(m, denom, value=-lr / bc1)
        return loss
