// Interpolate on CUDA: one thread per pixel for the forward and for the gradients with respect to
// rast and rast_db; the attribute gradient goes to the vertices with atomics, or (deterministic
// mode) gathered per vertex in pixel order (vertex_scatter_cuda.cuh).
#include "../cuda_common.cuh"
#include "../vertex_scatter_cuda.cuh"
#include "interpolate.h"

namespace rastlit {
namespace {

template <typename T>
__global__ void interpolate_fwd_kernel(InterpolateFwdParams<T> p, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t nda = 2 * int64_t(p.num_diff);
  const T* r = p.rast + 4 * i;
  T* out = p.out + i * p.num_attrs;
  T* out_da = p.out_da ? p.out_da + i * nda : nullptr;
  const int64_t t = pixel_triangle(r, p.num_triangles);
  if (t < 0) {  // ids were range-checked by the binding; background here
    for (int64_t k = 0; k < p.num_attrs; ++k) out[k] = T(0);
    for (int64_t k = 0; k < nda; ++k) out_da[k] = T(0);
    return;
  }
  interpolate_pixel(p, attr_view(p, i / npix), p.tri + 3 * t, r, p.rast_db ? p.rast_db + 4 * i : nullptr, out, out_da);
}

// Gradients with respect to rast (u, v) and rast_db, one writer per pixel; in atomic mode the
// attribute gradient too.
template <typename T>
__global__ void interpolate_bwd_pixel_kernel(InterpolateBwdParams<T> q, int64_t total, bool atomic_attr) {
  const InterpolateFwdParams<T>& p = q.fwd;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t A = p.num_attrs, nda = 2 * int64_t(p.num_diff);
  T* gr = q.grad_rast + 4 * i;
  T* gdb = q.grad_rast_db ? q.grad_rast_db + 4 * i : nullptr;
  gr[0] = gr[1] = gr[2] = gr[3] = T(0);
  if (gdb) gdb[0] = gdb[1] = gdb[2] = gdb[3] = T(0);
  const T* r = p.rast + 4 * i;
  const int64_t t = pixel_triangle(r, p.num_triangles);
  if (t < 0) return;
  const int64_t b = i / npix;
  const T* attr = attr_view(p, b);
  const int32_t* ti = p.tri + 3 * t;
  const T* a0 = attr + int64_t(ti[0]) * A;
  const T* a1 = attr + int64_t(ti[1]) * A;
  const T* a2 = attr + int64_t(ti[2]) * A;
  const T* g = q.grad_out + i * A;
  T gu = 0, gv = 0;
  for (int64_t k = 0; k < A; ++k) {
    gu += g[k] * (a0[k] - a2[k]);
    gv += g[k] * (a1[k] - a2[k]);
  }
  gr[0] = gu;
  gr[1] = gv;
  const T* gda = q.grad_out_da ? q.grad_out_da + i * nda : nullptr;
  if (gdb && gda) {
    for (int j = 0; j < p.num_diff; ++j) {
      const int64_t k = p.diff_attrs[j];
      const T d0 = a0[k] - a2[k], d1 = a1[k] - a2[k];
      gdb[0] += gda[2 * j] * d0;
      gdb[1] += gda[2 * j + 1] * d0;
      gdb[2] += gda[2 * j] * d1;
      gdb[3] += gda[2 * j + 1] * d1;
    }
  }
  if (!atomic_attr) return;
  T* gattr = q.grad_attr + (p.attr_batch > 1 ? b : 0) * p.num_vertices * A;
  T* g0 = gattr + int64_t(ti[0]) * A;
  T* g1 = gattr + int64_t(ti[1]) * A;
  T* g2 = gattr + int64_t(ti[2]) * A;
  const T u = r[0], v = r[1], w = T(1) - r[0] - r[1];
  for (int64_t k = 0; k < A; ++k) {
    atomicAdd(g0 + k, u * g[k]);
    atomicAdd(g1 + k, v * g[k]);
    atomicAdd(g2 + k, w * g[k]);
  }
  if (gda && p.rast_db) {
    const T* db = p.rast_db + 4 * i;
    for (int j = 0; j < p.num_diff; ++j) {
      const int64_t k = p.diff_attrs[j];
      const T s0 = gda[2 * j] * db[0] + gda[2 * j + 1] * db[1];
      const T s1 = gda[2 * j] * db[2] + gda[2 * j + 1] * db[3];
      atomicAdd(g0 + k, s0);
      atomicAdd(g1 + k, s1);
      atomicAdd(g2 + k, -(s0 + s1));
    }
  }
}

// Deterministic attribute gradient: the owner thread of each vertex adds, in pixel order, the
// contribution of every pixel whose triangle uses it.
template <typename T>
__global__ void interpolate_bwd_gather_kernel(InterpolateBwdParams<T> q, VertexIncidence inc) {
  const InterpolateFwdParams<T>& p = q.fwd;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= inc.count || !incidence_head(inc, i)) return;
  const uint64_t key = inc.keys[i];
  const int64_t A = p.num_attrs, nda = 2 * int64_t(p.num_diff);
  T* out = q.grad_attr + int64_t(key) * A;  // key = b * V + v (attr per view) or v (shared)
  for (int64_t j = i; j < inc.count && inc.keys[j] == key; ++j) {
    const int64_t pix = inc.items[j] / 3;
    const int corner = int(inc.items[j] % 3);
    const T* r = p.rast + 4 * pix;
    const T wgt = corner == 0 ? r[0] : (corner == 1 ? r[1] : T(1) - r[0] - r[1]);
    const T* g = q.grad_out + pix * A;
    for (int64_t k = 0; k < A; ++k) out[k] += wgt * g[k];
    if (q.grad_out_da && p.rast_db) {
      const T* db = p.rast_db + 4 * pix;
      const T* gda = q.grad_out_da + pix * nda;
      for (int d = 0; d < p.num_diff; ++d) {
        const T s0 = gda[2 * d] * db[0] + gda[2 * d + 1] * db[1];
        const T s1 = gda[2 * d] * db[2] + gda[2 * d + 1] * db[3];
        out[p.diff_attrs[d]] += corner == 0 ? s0 : (corner == 1 ? s1 : -(s0 + s1));
      }
    }
  }
}

}  // namespace

// p.diff_attrs must point to device memory here.
template <typename T>
int interpolate_fwd_cuda(const InterpolateFwdParams<T>& p, const CudaWorkspace& ws) {
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
  if (total == 0) return 0;
  interpolate_fwd_kernel<T><<<unsigned(div_up(total, 256)), 256, 0, ws.stream>>>(p, total);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

template <typename T>
int interpolate_bwd_cuda(const InterpolateBwdParams<T>& q, const CudaWorkspace& ws) {
  const InterpolateFwdParams<T>& p = q.fwd;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t total = p.num_views * npix;
  if (total == 0) return 0;
  interpolate_bwd_pixel_kernel<T><<<unsigned(div_up(total, 256)), 256, 0, ws.stream>>>(q, total, !ws.deterministic);
  RL_CUDA_TRY(cudaGetLastError());
  if (!ws.deterministic) return 0;
  VertexIncidence inc;
  const int st = build_vertex_incidence(p.rast, p.tri, p.num_triangles, npix, total,
                                        p.attr_batch > 1 ? p.num_vertices : 0, ws, &inc);
  if (st) return st;
  if (inc.count > 0) {
    interpolate_bwd_gather_kernel<T><<<unsigned(div_up(inc.count, 256)), 256, 0, ws.stream>>>(q, inc);
    RL_CUDA_TRY(cudaGetLastError());
  }
  return 0;
}

template int interpolate_fwd_cuda<float>(const InterpolateFwdParams<float>&, const CudaWorkspace&);
template int interpolate_fwd_cuda<double>(const InterpolateFwdParams<double>&, const CudaWorkspace&);
template int interpolate_bwd_cuda<float>(const InterpolateBwdParams<float>&, const CudaWorkspace&);
template int interpolate_bwd_cuda<double>(const InterpolateBwdParams<double>&, const CudaWorkspace&);

}  // namespace rastlit
