// Texture on the CPU. Forward and the per-pixel part of the backward (uv, uv_da, bias) are
// parallel over pixels. The texel gradient is a scatter, added to every texel in pixel order (and
// in tap order within a pixel), so it is bitwise reproducible for any thread count: the pixels'
// taps are found in parallel and recorded, block by block, and then each thread adds the records
// that land in its own share of the texels, walking them in pixel order.
#include "texture.h"

#include <algorithm>
#include <vector>

namespace rastlit {

template <typename T>
int texture_fwd_cpu(const TextureFwdParams<T>& p) {
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
#pragma omp parallel for schedule(static) num_threads(p.num_threads)
  for (int64_t i = 0; i < total; ++i) texture_pixel(p, i, p.out + i * p.channels);
  return kOk;
}

namespace {

template <typename T>
struct ScatterTap {
  int64_t offset;  // element offset of the texel's channel 0 in its level
  T weight;        // tex_scatter_weight
  int32_t level;
};

constexpr int kTapsPerPixel = 8;         // two levels of four taps at most
constexpr int64_t kBlockPixels = 1 << 16;  // pixels whose taps are recorded at a time

}  // namespace

template <typename T>
int texture_bwd_cpu(const TextureBwdParams<T>& q) {
  const TextureFwdParams<T>& p = q.fwd;
  const int64_t C = p.channels;
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
  const int parts = std::max(1, p.num_threads);
  // Each thread's share of every level: element offsets [share[l][j], share[l][j + 1]), in whole
  // texels. Any split gives the same bits (each texel's adds keep their order).
  std::vector<int64_t> share(size_t(p.num_levels) * size_t(parts + 1));
  for (int l = 0; l < p.num_levels; ++l) {
    const int64_t faces = p.boundary == kTexCube ? 6 : 1;
    const int64_t texels = p.tex_batch * faces * int64_t(p.levels[l].height) * p.levels[l].width;
    for (int j = 0; j <= parts; ++j) share[size_t(l) * (parts + 1) + j] = texels * j / parts * C;
  }
  thread_local std::vector<ScatterTap<T>> taps;
  thread_local std::vector<unsigned char> tap_count;
  const int64_t block = std::min(total, kBlockPixels);
  if (taps.size() < size_t(block) * kTapsPerPixel) taps.resize(size_t(block) * kTapsPerPixel);
  if (tap_count.size() < size_t(block)) tap_count.resize(size_t(block));
  ScatterTap<T>* const taps_ptr = taps.data();  // (a thread_local name in the region is each thread's own)
  unsigned char* const count_ptr = tap_count.data();
  const int64_t* const share_ptr = share.data();
  for (int64_t i0 = 0; i0 < total; i0 += block) {
    const int64_t i1 = std::min(total, i0 + block);
#pragma omp parallel num_threads(p.num_threads)
    {
#pragma omp for schedule(static)
      for (int64_t i = i0; i < i1; ++i) {
        TexTaps<T> t;
        tex_pixel_taps(p, i, &t);
        texture_pixel_backward(q, i, t);
        ScatterTap<T>* rec = taps_ptr + (i - i0) * kTapsPerPixel;
        int n = 0;
        for (int s = 0; s < t.num_levels; ++s)
          for (int k = 0; k < 4; ++k) {
            if (t.offset[s][k] < 0) continue;
            const T wk = tex_scatter_weight(t, s, k);
            if (wk == T(0)) continue;
            rec[n++] = ScatterTap<T>{t.offset[s][k], wk, t.level[s]};
          }
        count_ptr[i - i0] = (unsigned char)n;
      }
#pragma omp for schedule(static, 1)
      for (int j = 0; j < parts; ++j) {
        for (int64_t i = i0; i < i1; ++i) {
          const T* g = q.grad_out + i * C;
          const ScatterTap<T>* rec = taps_ptr + (i - i0) * kTapsPerPixel;
          for (int r = 0; r < count_ptr[i - i0]; ++r) {
            const int64_t* sh = share_ptr + size_t(rec[r].level) * (parts + 1);
            if (rec[r].offset < sh[j] || rec[r].offset >= sh[j + 1]) continue;
            T* dst = q.grad_levels[rec[r].level] + rec[r].offset;
            for (int64_t c = 0; c < C; ++c) dst[c] += rec[r].weight * g[c];
          }
        }
      }
    }
  }
  return kOk;
}

template int texture_fwd_cpu<float>(const TextureFwdParams<float>&);
template int texture_fwd_cpu<double>(const TextureFwdParams<double>&);
template int texture_bwd_cpu<float>(const TextureBwdParams<float>&);
template int texture_bwd_cpu<double>(const TextureBwdParams<double>&);

}  // namespace rastlit
