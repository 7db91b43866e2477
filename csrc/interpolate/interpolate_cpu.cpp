// Interpolate on the CPU. Forward and the per-pixel part of the backward are parallel over
// pixels; the attribute gradient is a scatter onto vertices, done by one thread per attribute
// slice in pixel order so it is bitwise reproducible.
#include "interpolate.h"

#include <algorithm>
#include <vector>

namespace rastlit {

template <typename T>
int interpolate_fwd_cpu(const InterpolateFwdParams<T>& p) {
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t total = p.num_views * npix;
  const int64_t nda = 2 * int64_t(p.num_diff);
  int status = kOk;
#pragma omp parallel for schedule(static) num_threads(p.num_threads) reduction(max : status)
  for (int64_t i = 0; i < total; ++i) {
    const T* r = p.rast + 4 * i;
    T* out = p.out + i * p.num_attrs;
    T* out_da = p.out_da ? p.out_da + i * nda : nullptr;
    const int64_t t = pixel_triangle(r, p.num_triangles);
    if (t < 0) {
      if (t == -2) status = kBadTriangleId;
      for (int64_t k = 0; k < p.num_attrs; ++k) out[k] = T(0);
      for (int64_t k = 0; k < nda; ++k) out_da[k] = T(0);
      continue;
    }
    const T* db = p.rast_db ? p.rast_db + 4 * i : nullptr;
    interpolate_pixel(p, attr_view(p, i / npix), p.tri + 3 * t, r, db, out, out_da);
  }
  return status;
}

template <typename T>
int interpolate_bwd_cpu(const InterpolateBwdParams<T>& q) {
  const InterpolateFwdParams<T>& p = q.fwd;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t total = p.num_views * npix;
  const int64_t A = p.num_attrs, nda = 2 * int64_t(p.num_diff);
  int status = kOk;
  // Gradients with respect to rast (u, v) and rast_db: one writer per pixel.
#pragma omp parallel for schedule(static) num_threads(p.num_threads) reduction(max : status)
  for (int64_t i = 0; i < total; ++i) {
    T* gr = q.grad_rast + 4 * i;
    T* gdb = q.grad_rast_db ? q.grad_rast_db + 4 * i : nullptr;
    const int64_t t = pixel_triangle(p.rast + 4 * i, p.num_triangles);
    if (t < 0) {
      if (t == -2) status = kBadTriangleId;
      gr[0] = gr[1] = gr[2] = gr[3] = T(0);
      if (gdb) gdb[0] = gdb[1] = gdb[2] = gdb[3] = T(0);
      continue;
    }
    const T* attr = attr_view(p, i / npix);
    const int32_t* ti = p.tri + 3 * t;
    const T* a0 = attr + int64_t(ti[0]) * A;
    const T* a1 = attr + int64_t(ti[1]) * A;
    const T* a2 = attr + int64_t(ti[2]) * A;
    interpolate_pixel_backward_rast(p, a0, a1, a2, q.grad_out + i * A, q.grad_out_da ? q.grad_out_da + i * nda : nullptr,
                                    gr, gdb);
  }
  if (status != kOk) return status;

  // Gradient with respect to attr: scatter in pixel order, summing runs of pixels of the same
  // triangle locally and adding each run to its three vertices once. With one attribute slice per
  // view the views are independent; a shared slice is summed over the views in order.
  auto scatter_view = [&](int64_t b) {
    T* gattr = q.grad_attr + (p.attr_batch == 0 || p.attr_batch == 1 ? 0 : b) * p.num_vertices * A;
    std::vector<T> acc(size_t(3 * A));
    int64_t run_tri = -1;
    auto flush = [&]() {
      if (run_tri < 0) return;
      const int32_t* ti = p.tri + 3 * run_tri;
      for (int c = 0; c < 3; ++c) {
        T* g = gattr + int64_t(ti[c]) * A;
        for (int64_t k = 0; k < A; ++k) g[k] += acc[c * A + k];
      }
      run_tri = -1;
    };
    for (int64_t i = b * npix; i < (b + 1) * npix; ++i) {
      const T* r = p.rast + 4 * i;
      const int64_t t = pixel_triangle(r, p.num_triangles);
      if (t < 0) {
        flush();
        continue;
      }
      if (t != run_tri) {
        flush();
        run_tri = t;
        std::fill(acc.begin(), acc.end(), T(0));
      }
      const T* db = p.rast_db ? p.rast_db + 4 * i : nullptr;
      const T* gda = q.grad_out_da ? q.grad_out_da + i * nda : nullptr;
      for (int c = 0; c < 3; ++c)
        interpolate_pixel_backward_attr(p, c, r, db, q.grad_out + i * A, gda, acc.data() + c * A);
    }
    flush();
  };
  if (p.attr_batch == p.num_views && p.num_views > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(p.num_threads)
    for (int64_t b = 0; b < p.num_views; ++b) scatter_view(b);
  } else {
    for (int64_t b = 0; b < p.num_views; ++b) scatter_view(b);
  }
  return status;
}

template int interpolate_fwd_cpu<float>(const InterpolateFwdParams<float>&);
template int interpolate_fwd_cpu<double>(const InterpolateFwdParams<double>&);
template int interpolate_bwd_cpu<float>(const InterpolateBwdParams<float>&);
template int interpolate_bwd_cpu<double>(const InterpolateBwdParams<double>&);

}  // namespace rastlit
