// Texture on the CPU. Forward and the per-pixel part of the backward (uv, uv_da, bias) are
// parallel over pixels. The texel gradient is a scatter: it is added in pixel order, per texture
// slice, so it is bitwise reproducible for any thread count (views with their own texture
// slice run in parallel, one thread per view).
#include "texture.h"

namespace rastlit {

template <typename T>
int texture_fwd_cpu(const TextureFwdParams<T>& p) {
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
#pragma omp parallel for schedule(static) num_threads(p.num_threads)
  for (int64_t i = 0; i < total; ++i) texture_pixel(p, i, p.out + i * p.channels);
  return kOk;
}

template <typename T>
int texture_bwd_cpu(const TextureBwdParams<T>& q) {
  const TextureFwdParams<T>& p = q.fwd;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t total = p.num_views * npix;
#pragma omp parallel for schedule(static) num_threads(p.num_threads)
  for (int64_t i = 0; i < total; ++i) {
    TexTaps<T> t;
    tex_pixel_taps(p, i, &t);
    texture_pixel_backward(q, i, t);
  }

  auto scatter_view = [&](int64_t b) {
    for (int64_t i = b * npix; i < (b + 1) * npix; ++i) {
      TexTaps<T> t;
      tex_pixel_taps(p, i, &t);
      tex_pixel_scatter(q, i, t);
    }
  };
  if (p.tex_batch == p.num_views && p.num_views > 1) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(p.num_threads)
    for (int64_t b = 0; b < p.num_views; ++b) scatter_view(b);
  } else {
    for (int64_t b = 0; b < p.num_views; ++b) scatter_view(b);
  }
  return kOk;
}

template int texture_fwd_cpu<float>(const TextureFwdParams<float>&);
template int texture_fwd_cpu<double>(const TextureFwdParams<double>&);
template int texture_bwd_cpu<float>(const TextureBwdParams<float>&);
template int texture_bwd_cpu<double>(const TextureBwdParams<double>&);

}  // namespace rastlit
