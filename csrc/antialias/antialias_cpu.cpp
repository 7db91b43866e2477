// Antialias on the CPU. Pair classification and the per-pixel gathers (forward output, colour
// gradient) are parallel over rows with one writer per value. The position gradient is a scatter
// onto vertices: each row lists its pairs' contributions in parallel, then one thread adds the
// lists in row order, so the result is bitwise the same for any thread count.
#include "antialias.h"

#include <vector>

namespace rastlit {

template <typename T>
int antialias_fwd_cpu(const AntialiasParams<T>& p) {
  const int64_t rows = p.num_views * p.height;
  int status = kOk;
#pragma omp parallel for schedule(static) num_threads(p.num_threads) reduction(max : status)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t b = row / p.height;
    const int y = int(row % p.height);
    bool bad = false;
    for (int x = 0; x < p.width; ++x) {
      int32_t* w = p.work + kAaWorkPerPixel * (row * p.width + x);
      w[1] = w[3] = -1;
      w[0] = x + 1 < p.width ? aa_classify_pair(p, b, x, y, 0, &bad, &w[1]) : kAaNoWork;
      w[2] = y + 1 < p.height ? aa_classify_pair(p, b, x, y, 1, &bad, &w[3]) : kAaNoWork;
    }
    if (bad) status = kBadTriangleId;
  }
  if (status != kOk) return status;
#pragma omp parallel for schedule(static) num_threads(p.num_threads)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t b = row / p.height;
    const int y = int(row % p.height);
    for (int x = 0; x < p.width; ++x) aa_forward_pixel(p, b, x, y);
  }
  return status;
}

namespace {

struct AaPosItem {
  int64_t off_i, off_j;  // offsets into grad_pos
  double gi[3], gj[3];
};

}  // namespace

template <typename T>
int antialias_bwd_cpu(const AntialiasParams<T>& p) {
  const int64_t rows = p.num_views * p.height;
  std::vector<std::vector<AaPosItem>> items(size_t(rows > 0 ? rows : 0));
#pragma omp parallel for schedule(static) num_threads(p.num_threads)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t b = row / p.height;
    const int y = int(row % p.height);
    for (int x = 0; x < p.width; ++x) {
      aa_backward_color_pixel(p, b, x, y);
      const int32_t* w = p.work + kAaWorkPerPixel * (row * p.width + x);
      for (int axis = 0; axis < 2; ++axis) {
        if (w[2 * axis] <= kAaNoWork || (axis == 0 ? x + 1 >= p.width : y + 1 >= p.height)) continue;
        const AaPair r = aa_pair(p, b, x, y, axis, w[2 * axis], w[2 * axis + 1]);
        AaPosItem it;
        if (!aa_pair_pos_grad(p, r, it.gi, it.gj)) continue;
        it.off_i = aa_grad_pos_offset(p, b, r.vi);
        it.off_j = aa_grad_pos_offset(p, b, r.vj);
        items[size_t(row)].push_back(it);
      }
    }
  }
  // Ordered scatter: rows in order, pairs in pixel order within a row.
  for (const auto& list : items) {
    for (const AaPosItem& it : list) {
      T* a = p.grad_pos + it.off_i;
      T* c = p.grad_pos + it.off_j;
      a[0] += T(it.gi[0]);
      a[1] += T(it.gi[1]);
      a[3] += T(it.gi[2]);
      c[0] += T(it.gj[0]);
      c[1] += T(it.gj[1]);
      c[3] += T(it.gj[2]);
    }
  }
  return kOk;
}

template int antialias_fwd_cpu<float>(const AntialiasParams<float>&);
template int antialias_fwd_cpu<double>(const AntialiasParams<double>&);
template int antialias_bwd_cpu<float>(const AntialiasParams<float>&);
template int antialias_bwd_cpu<double>(const AntialiasParams<double>&);

}  // namespace rastlit
