// Interpolate on the CPU. Forward and the per-pixel part of the backward are parallel over
// pixels; the attribute gradient is a scatter onto vertices, done by one thread per attribute
// slice in pixel order so it is bitwise reproducible.
#include "interpolate.h"

#include <algorithm>
#include <vector>

namespace rastlit {

namespace {

template <typename T, int kA>
int forward_pixels(const InterpolateFwdParams<T>& p) {
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t total = p.num_views * npix;
  const int64_t A = kA > 0 ? kA : p.num_attrs, nda = 2 * int64_t(p.num_diff);
  int status = kOk;
#pragma omp parallel for schedule(static) num_threads(p.num_threads) reduction(max : status)
  for (int64_t i = 0; i < total; ++i) {
    const T* r = p.rast + 4 * i;
    T* out = p.out + i * A;
    T* out_da = p.out_da ? p.out_da + i * nda : nullptr;
    const int64_t t = pixel_triangle(r, p.num_triangles);
    if (t < 0) {
      if (t == -2) status = kBadTriangleId;
      for (int64_t k = 0; k < A; ++k) out[k] = T(0);
      for (int64_t k = 0; k < nda; ++k) out_da[k] = T(0);
      continue;
    }
    const T* db = p.rast_db ? p.rast_db + 4 * i : nullptr;
    interpolate_pixel<T, kA>(p, attr_view(p, i / npix), p.tri + 3 * t, r, db, out, out_da);
  }
  return status;
}


// Image rows [r0, r1) of the batch (row r: view r / H, row r % H), in parallel: grad_rast (and
// grad_rast_db) per pixel, and the run records (triangle, 3A sums) of each row at
// acc / rtri + (r - r0) * W, their count in count[r - r0].
template <typename T, int kA>
int backward_rows(const InterpolateBwdParams<T>& q, int64_t r0, int64_t r1, T* acc_ptr, int32_t* tri_ptr,
                  int32_t* count_ptr) {
  const InterpolateFwdParams<T>& p = q.fwd;
  const int W = p.width;
  const int64_t A = kA > 0 ? kA : p.num_attrs, nda = 2 * int64_t(p.num_diff);
  int status = kOk;
#pragma omp parallel for schedule(dynamic, 4) num_threads(p.num_threads) reduction(max : status)
  for (int64_t row = r0; row < r1; ++row) {
    const T* attr = attr_view(p, row / p.height);
    T* acc = acc_ptr + size_t(row - r0) * W * 3 * A;
    int32_t* rtri = tri_ptr + size_t(row - r0) * W;
    int n = -1;  // index of the open run
    int64_t run_tri = -1;
    for (int64_t i = row * W, e = i + W; i < e; ++i) {
      const T* r = p.rast + 4 * i;
      T* gr = q.grad_rast + 4 * i;
      T* gdb = q.grad_rast_db ? q.grad_rast_db + 4 * i : nullptr;
      const int64_t t = pixel_triangle(r, p.num_triangles);
      if (t < 0) {
        if (t == -2) status = kBadTriangleId;
        gr[0] = gr[1] = gr[2] = gr[3] = T(0);
        if (gdb) gdb[0] = gdb[1] = gdb[2] = gdb[3] = T(0);
        run_tri = -1;
        continue;
      }
      const int32_t* ti = p.tri + 3 * t;
      const T* g = q.grad_out + i * A;
      const T* gda = q.grad_out_da ? q.grad_out_da + i * nda : nullptr;
      interpolate_pixel_backward_rast<T, kA>(p, attr + int64_t(ti[0]) * A, attr + int64_t(ti[1]) * A,
                                             attr + int64_t(ti[2]) * A, g, gda, gr, gdb);
      if (t != run_tri) {
        run_tri = t;
        ++n;
        rtri[n] = int32_t(t);
        std::fill(acc + size_t(n) * 3 * A, acc + size_t(n + 1) * 3 * A, T(0));
      }
      interpolate_pixel_backward_attr3<T, kA>(p, r, p.rast_db ? p.rast_db + 4 * i : nullptr, g, gda,
                                              acc + size_t(n) * 3 * A);
    }
    count_ptr[row - r0] = n + 1;
  }
  return status;
}

}  // namespace

template <typename T>
int interpolate_fwd_cpu(const InterpolateFwdParams<T>& p) {
  switch (p.num_attrs) {  // small attribute counts unrolled (uv, colours, normals)
    case 1: return forward_pixels<T, 1>(p);
    case 2: return forward_pixels<T, 2>(p);
    case 3: return forward_pixels<T, 3>(p);
    case 4: return forward_pixels<T, 4>(p);
    default: return forward_pixels<T, 0>(p);
  }
}

// Backward in one pass over the pixels, rows in parallel: each pixel writes its own grad_rast
// (and grad_rast_db), and each row is walked in runs of pixels of one triangle, summing the run's
// contributions to its three corners locally. The run records are then added to the vertices in
// image order by one thread, views in order, so the result is the same for any thread count. The
// batch's rows (all views) go in blocks, which bounds the records' memory (3A values per pixel at
// most).
template <typename T>
int interpolate_bwd_cpu(const InterpolateBwdParams<T>& q) {
  const InterpolateFwdParams<T>& p = q.fwd;
  const int64_t A = p.num_attrs;
  const int W = p.width, H = p.height;
  const int64_t rows = p.num_views * H;
  // Rows per block: about 64k pixels and at most ~32 MB of records (many attributes); at least a
  // row, whose records are at most 3x that row's grad_out.
  const int64_t row_record_bytes = int64_t(std::max(W, 1)) * 3 * std::max<int64_t>(A, 1) * int64_t(sizeof(T));
  const int64_t rows_per_block = std::max<int64_t>(
      1, std::min<int64_t>({rows, (1 << 16) / std::max(W, 1), (int64_t(32) << 20) / row_record_bytes}));
  thread_local std::vector<T> rec_acc;
  thread_local std::vector<int32_t> rec_tri, rec_count;
  const size_t block_pixels = size_t(rows_per_block) * size_t(W);
  if (rec_acc.size() < block_pixels * size_t(3 * A)) rec_acc.resize(block_pixels * size_t(3 * A));
  if (rec_tri.size() < block_pixels) rec_tri.resize(block_pixels);
  if (rec_count.size() < size_t(rows_per_block)) rec_count.resize(size_t(rows_per_block));
  T* const acc_ptr = rec_acc.data();
  int32_t* const tri_ptr = rec_tri.data();
  int32_t* const count_ptr = rec_count.data();
  for (int64_t r0 = 0; r0 < rows; r0 += rows_per_block) {
    const int64_t r1 = std::min(rows, r0 + rows_per_block);
    int status;
    switch (A) {  // small attribute counts unrolled (uv, colours, normals)
      case 1: status = backward_rows<T, 1>(q, r0, r1, acc_ptr, tri_ptr, count_ptr); break;
      case 2: status = backward_rows<T, 2>(q, r0, r1, acc_ptr, tri_ptr, count_ptr); break;
      case 3: status = backward_rows<T, 3>(q, r0, r1, acc_ptr, tri_ptr, count_ptr); break;
      case 4: status = backward_rows<T, 4>(q, r0, r1, acc_ptr, tri_ptr, count_ptr); break;
      default: status = backward_rows<T, 0>(q, r0, r1, acc_ptr, tri_ptr, count_ptr); break;
    }
    if (status != kOk) return status;
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / H;
      T* gattr = q.grad_attr + (p.attr_batch == 0 || p.attr_batch == 1 ? 0 : b) * p.num_vertices * A;
      const T* acc = acc_ptr + size_t(row - r0) * W * 3 * A;
      const int32_t* rtri = tri_ptr + size_t(row - r0) * W;
      for (int r = 0; r < count_ptr[row - r0]; ++r) {
        const int32_t* ti = p.tri + 3 * int64_t(rtri[r]);
        for (int c = 0; c < 3; ++c) {
          T* g = gattr + int64_t(ti[c]) * A;
          const T* a = acc + (size_t(r) * 3 + c) * A;
          for (int64_t k = 0; k < A; ++k) g[k] += a[k];
        }
      }
    }
  }
  return kOk;
}

template int interpolate_fwd_cpu<float>(const InterpolateFwdParams<float>&);
template int interpolate_fwd_cpu<double>(const InterpolateFwdParams<double>&);
template int interpolate_bwd_cpu<float>(const InterpolateBwdParams<float>&);
template int interpolate_bwd_cpu<double>(const InterpolateBwdParams<double>&);

}  // namespace rastlit
