// Interpolate: vertex attributes at each pixel from the rasterizer's barycentrics, and their
// image-space derivatives from rast_db. Math shared by the CPU and CUDA backends.
//   out[a]     = u * A0[a] + v * A1[a] + (1 - u - v) * A2[a]
//   out_da[2j] = du/dX (A0 - A2)[k] + dv/dX (A1 - A2)[k],  k = diff_attrs[j]  (and likewise dY)
#pragma once

#include "../common.h"

namespace rastlit {

template <typename T>
struct InterpolateFwdParams {
  const T* attr;       // [V,A] when attr_batch == 0, else [attr_batch,V,A]
  int64_t attr_batch;  // 0 (shared), 1 (broadcast over views) or num_views
  int64_t num_vertices, num_attrs;
  const T* rast;        // [B,H,W,4]
  const T* rast_db;     // [B,H,W,4] or null (then num_diff must be 0)
  const int32_t* tri;   // [T,3], indices already checked to lie in [0, V)
  int64_t num_triangles;
  int64_t num_views;
  int height, width;
  const int32_t* diff_attrs;  // [num_diff], each in [0, A)
  int num_diff;
  T* out;     // [B,H,W,A]
  T* out_da;  // [B,H,W,2*num_diff] or null
  int num_threads;
};

template <typename T>
struct InterpolateBwdParams {
  InterpolateFwdParams<T> fwd;  // inputs as in the forward; its out/out_da are unused
  const T* grad_out;            // [B,H,W,A]
  const T* grad_out_da;         // [B,H,W,2*num_diff] or null
  T* grad_attr;                 // shape of attr, zero-initialized by the caller
  T* grad_rast;                 // [B,H,W,4]
  T* grad_rast_db;              // [B,H,W,4] or null
};

// Triangle index for a pixel: -1 for background, -2 for an id outside [0, num_triangles].
template <typename T>
RL_HD int64_t pixel_triangle(const T* r, int64_t num_triangles) {
  const T idf = r[3];
  if (idf == T(0)) return -1;
  if (!(idf >= T(1)) || !(idf < T(num_triangles) + T(1))) return -2;
  return int64_t(idf) - 1;
}

template <typename T>
RL_HD const T* attr_view(const InterpolateFwdParams<T>& p, int64_t b) {
  const int64_t ab = p.attr_batch == 0 ? 0 : (p.attr_batch == 1 ? 0 : b);
  return p.attr + ab * p.num_vertices * p.num_attrs;
}

// kA > 0: the number of attributes as a compile-time constant (== p.num_attrs), which lets the
// compiler unroll the attribute loops for the common small counts; 0: read p.num_attrs.
template <typename T, int kA = 0>
RL_HD void interpolate_pixel(const InterpolateFwdParams<T>& p, const T* attr, const int32_t* ti,
                             const T* r, const T* db, T* out, T* out_da) {
  const int64_t A = kA > 0 ? kA : p.num_attrs;
  const T u = r[0], v = r[1], w = T(1) - r[0] - r[1];
  const T* a0 = attr + int64_t(ti[0]) * A;
  const T* a1 = attr + int64_t(ti[1]) * A;
  const T* a2 = attr + int64_t(ti[2]) * A;
  for (int64_t k = 0; k < A; ++k) out[k] = u * a0[k] + v * a1[k] + w * a2[k];
  for (int j = 0; j < p.num_diff; ++j) {
    const int64_t k = p.diff_attrs[j];
    const T d0 = a0[k] - a2[k], d1 = a1[k] - a2[k];
    out_da[2 * j] = db[0] * d0 + db[2] * d1;
    out_da[2 * j + 1] = db[1] * d0 + db[3] * d1;
  }
}

// Per-pixel backward, part 1: gradients with respect to the pixel's (u, v) and, when gdb is not
// null, its rast_db, from grad_out g[A] and grad_out_da gda[2*num_diff] (or null). Writes all four
// channels of gr (z/w and id get zero) and of gdb.
// kA as in interpolate_pixel.
template <typename T, int kA = 0>
RL_HD void interpolate_pixel_backward_rast(const InterpolateFwdParams<T>& p, const T* a0, const T* a1, const T* a2,
                                           const T* g, const T* gda, T* gr, T* gdb) {
  const int64_t A = kA > 0 ? kA : p.num_attrs;
  T gu = 0, gv = 0;
  for (int64_t k = 0; k < A; ++k) {
    gu += g[k] * (a0[k] - a2[k]);
    gv += g[k] * (a1[k] - a2[k]);
  }
  gr[0] = gu;
  gr[1] = gv;
  gr[2] = gr[3] = T(0);
  if (!gdb) return;
  gdb[0] = gdb[1] = gdb[2] = gdb[3] = T(0);
  if (!gda) return;
  for (int j = 0; j < p.num_diff; ++j) {
    const int64_t k = p.diff_attrs[j];
    const T d0 = a0[k] - a2[k], d1 = a1[k] - a2[k];
    gdb[0] += gda[2 * j] * d0;
    gdb[1] += gda[2 * j + 1] * d0;
    gdb[2] += gda[2 * j] * d1;
    gdb[3] += gda[2 * j + 1] * d1;
  }
}

// Per-pixel backward, part 2: the pixel's contribution to the attribute gradient of corner
// `corner` (0, 1, 2) of its triangle, added to out[A]: weight * g plus the derivative terms.
template <typename T>
RL_HD void interpolate_pixel_backward_attr(const InterpolateFwdParams<T>& p, int corner, const T* r, const T* db,
                                           const T* g, const T* gda, T* out) {
  const T wgt = corner == 0 ? r[0] : (corner == 1 ? r[1] : T(1) - r[0] - r[1]);
  for (int64_t k = 0; k < p.num_attrs; ++k) out[k] += wgt * g[k];
  if (!gda || !db) return;
  for (int j = 0; j < p.num_diff; ++j) {
    const T s0 = gda[2 * j] * db[0] + gda[2 * j + 1] * db[1];
    const T s1 = gda[2 * j] * db[2] + gda[2 * j + 1] * db[3];
    out[p.diff_attrs[j]] += corner == 0 ? s0 : (corner == 1 ? s1 : -(s0 + s1));
  }
}

// The same for all three corners at once: acc[3*A], corner c's gradient at acc + c*A (each entry
// gets the same terms in the same order as three calls of interpolate_pixel_backward_attr). kA as
// in interpolate_pixel_backward_rast.
template <typename T, int kA = 0>
RL_HD void interpolate_pixel_backward_attr3(const InterpolateFwdParams<T>& p, const T* r, const T* db, const T* g,
                                            const T* gda, T* acc) {
  const int64_t A = kA > 0 ? kA : p.num_attrs;
  const T w[3] = {r[0], r[1], T(1) - r[0] - r[1]};
  for (int c = 0; c < 3; ++c)
    for (int64_t k = 0; k < A; ++k) acc[c * A + k] += w[c] * g[k];
  if (!gda || !db) return;
  for (int j = 0; j < p.num_diff; ++j) {
    const T s0 = gda[2 * j] * db[0] + gda[2 * j + 1] * db[1];
    const T s1 = gda[2 * j] * db[2] + gda[2 * j + 1] * db[3];
    const int64_t k = p.diff_attrs[j];
    acc[k] += s0;
    acc[A + k] += s1;
    acc[2 * A + k] += -(s0 + s1);
  }
}

template <typename T>
int interpolate_fwd_cpu(const InterpolateFwdParams<T>& p);
template <typename T>
int interpolate_bwd_cpu(const InterpolateBwdParams<T>& p);

struct CudaWorkspace;  // cuda_common.cuh
template <typename T>
int interpolate_fwd_cuda(const InterpolateFwdParams<T>& p, const CudaWorkspace& ws);
template <typename T>
int interpolate_bwd_cuda(const InterpolateBwdParams<T>& p, const CudaWorkspace& ws);

}  // namespace rastlit
