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
  const T* r = p.rast + 4 * i;
  const int64_t t = pixel_triangle(r, p.num_triangles);
  if (t < 0) {
    gr[0] = gr[1] = gr[2] = gr[3] = T(0);
    if (gdb) gdb[0] = gdb[1] = gdb[2] = gdb[3] = T(0);
    return;
  }
  const int64_t b = i / npix;
  const T* attr = attr_view(p, b);
  const int32_t* ti = p.tri + 3 * t;
  const T* a0 = attr + int64_t(ti[0]) * A;
  const T* a1 = attr + int64_t(ti[1]) * A;
  const T* a2 = attr + int64_t(ti[2]) * A;
  const T* g = q.grad_out + i * A;
  const T* gda = q.grad_out_da ? q.grad_out_da + i * nda : nullptr;
  interpolate_pixel_backward_rast(p, a0, a1, a2, g, gda, gr, gdb);
  if (!atomic_attr) return;
  // One corner at a time through a small local buffer would need A registers per corner; add the
  // same terms as interpolate_pixel_backward_attr directly with atomics instead.
  T* gattr = q.grad_attr + (p.attr_batch > 1 ? b : 0) * p.num_vertices * A;
  const T* db = p.rast_db ? p.rast_db + 4 * i : nullptr;
  for (int c = 0; c < 3; ++c) {
    T* out = gattr + int64_t(ti[c]) * A;
    const T wgt = c == 0 ? r[0] : (c == 1 ? r[1] : T(1) - r[0] - r[1]);
    for (int64_t k = 0; k < A; ++k) atomicAdd(out + k, wgt * g[k]);
    if (!gda || !db) continue;
    for (int j = 0; j < p.num_diff; ++j) {
      const T s0 = gda[2 * j] * db[0] + gda[2 * j + 1] * db[1];
      const T s1 = gda[2 * j] * db[2] + gda[2 * j + 1] * db[3];
      atomicAdd(out + p.diff_attrs[j], c == 0 ? s0 : (c == 1 ? s1 : -(s0 + s1)));
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
    interpolate_pixel_backward_attr(p, int(inc.items[j] % 3), p.rast + 4 * pix, p.rast_db ? p.rast_db + 4 * pix : nullptr,
                                    q.grad_out + pix * A, q.grad_out_da ? q.grad_out_da + pix * nda : nullptr, out);
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
