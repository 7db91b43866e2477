// Soft rasterization on the CPU. Per view: triangle setup (parallel), binning into 16x16 pixel
// tiles with exact counts (count pass per fixed-size chunk of triangles, prefix sum, fill pass:
// no bin ever overflows), then per tile (parallel) a K-nearest insertion sort per pixel over the
// tile's triangles in ascending id order. Backward: per triangle (parallel) the gradient of the
// slots holding it, summed in pixel order, then added to the vertices in triangle order by one
// thread: bitwise identical for any thread count.
#include "rasterize_soft.h"

#include <algorithm>
#include <vector>

#include "../tile_binning.h"

namespace rastlit {
namespace {

struct ViewRange {
  int64_t first, count;
};

inline ViewRange view_range(const int32_t* ranges, int64_t num_triangles, int64_t b) {
  if (ranges) return {ranges[2 * b], ranges[2 * b + 1]};
  return {0, num_triangles};
}

template <typename T>
void setup_view(const T* pos, const int32_t* tri, int64_t n, double blur, int H, int W, int num_threads,
                std::vector<SoftTriangle>& setups, std::vector<unsigned char>& valid) {
  setups.resize(size_t(n));
  valid.assign(size_t(n), 0);
#pragma omp parallel for schedule(static) num_threads(num_threads)
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* ti = tri + 3 * t;
    valid[t] = soft_setup(pos + 4 * int64_t(ti[0]), pos + 4 * int64_t(ti[1]), pos + 4 * int64_t(ti[2]), blur, H, W,
                          &setups[t]);
  }
}

template <typename T>
void soft_view(const SoftRasterizeFwdParams<T>& p, int64_t b, std::vector<SoftTriangle>& setups,
               std::vector<unsigned char>& valid, std::vector<int64_t>& counts, std::vector<int32_t>& bins) {
  const int H = p.height, W = p.width, K = p.K;
  const ViewRange vr = view_range(p.ranges, p.num_triangles, b);
  const T* pos = p.ranges ? p.pos : p.pos + b * p.num_vertices * 4;
  const int32_t* tri = p.tri + vr.first * 3;
  const int64_t n = vr.count;
  setup_view(pos, tri, n, p.blur_radius, H, W, p.num_threads, setups, valid);

  // Binning into 16x16 pixel tiles (tile_binning.h): exact counts, every bin lists its
  // triangles in ascending index order, independently of the thread count.
  const TileGrid<kSoftTileSize> grid(H, W);
  const int TS = grid.tile_size;
  const int64_t num_tiles = grid.num_tiles;
  std::vector<int64_t> tile_begin;
  bin_setups_to_tiles(n, grid, p.num_threads, setups.data(), valid.data(), counts, tile_begin, bins);

  const int64_t npix = int64_t(H) * W;
  int32_t* face_ids = p.face_ids + b * npix * K;
  T* zbuf = p.zbuf + b * npix * K;
  T* bary = p.bary + b * npix * K * 3;
  T* dists = p.dists + b * npix * K;
#pragma omp parallel num_threads(p.num_threads)
  {
    std::vector<double> zs(size_t(TS * TS * K));
    std::vector<int32_t> ids(size_t(TS * TS * K));
    int cnt[kSoftTileSize * kSoftTileSize];
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < num_tiles; ++tile) {
      const PixelBox tb = grid.tile_pixels(tile);
      const int tx0 = tb.x0, ty0 = tb.y0, tx1 = tb.x1, ty1 = tb.y1;
      for (int i = 0; i < TS * TS; ++i) cnt[i] = 0;
      for (int64_t e = tile_begin[tile]; e < tile_begin[tile + 1]; ++e) {
        const int32_t t = bins[e];
        const SoftTriangle& s = setups[t];
        const int x0 = std::max(s.x0, tx0), x1 = std::min(s.x1, tx1);
        const int y0 = std::max(s.y0, ty0), y1 = std::min(s.y1, ty1);
        for (int y = y0; y <= y1; ++y) {
          const double py = pixel_center_ndc<double>(y, H);
          for (int x = x0; x <= x1; ++x) {
            const int li = (y - ty0) * TS + (x - tx0);
            const double zr = cnt[li] == K ? zs[li * K + K - 1] : 1.0;
            SoftSample smp;
            if (!soft_sample(s, pixel_center_ndc<double>(x, W), py, p.blur_radius, p.clip_barycentric_coords, &smp,
                             nullptr, zr))
              continue;
            soft_insert(zs.data() + li * K, ids.data() + li * K, nullptr, &cnt[li], K, smp.z, t, 0);
          }
        }
      }
      for (int y = ty0; y <= ty1; ++y) {
        const double py = pixel_center_ndc<double>(y, H);
        for (int x = tx0; x <= tx1; ++x) {
          const int li = (y - ty0) * TS + (x - tx0);
          const int64_t o = (int64_t(y) * W + x) * K;
          for (int k = 0; k < K; ++k) {
            if (k >= cnt[li]) {
              face_ids[o + k] = -1;
              zbuf[o + k] = dists[o + k] = T(-1);
              bary[3 * (o + k)] = bary[3 * (o + k) + 1] = bary[3 * (o + k) + 2] = T(-1);
              continue;
            }
            const int32_t t = ids[li * K + k];
            SoftSample smp;
            double dist = 0;
            soft_sample(setups[t], pixel_center_ndc<double>(x, W), py, p.blur_radius, p.clip_barycentric_coords, &smp,
                        &dist);
            soft_outputs(setups[t], smp, dist, p.perspective_correct, p.clip_barycentric_coords, zbuf + o + k,
                         bary + 3 * (o + k), dists + o + k);
            face_ids[o + k] = int32_t(vr.first + t);
          }
        }
      }
    }
  }
}

}  // namespace

template <typename T>
int rasterize_soft_fwd_cpu(const SoftRasterizeFwdParams<T>& p) {
  thread_local std::vector<SoftTriangle> setups;
  thread_local std::vector<unsigned char> valid;
  thread_local std::vector<int64_t> counts;
  thread_local std::vector<int32_t> bins;
  for (int64_t b = 0; b < p.num_views; ++b) soft_view(p, b, setups, valid, counts, bins);
  return kOk;
}

template <typename T>
int rasterize_soft_bwd_cpu(const SoftRasterizeBwdParams<T>& p) {
  const int H = p.height, W = p.width;
  std::vector<SoftTriangle> setups;
  std::vector<unsigned char> valid;
  std::vector<double> tri_grad;
  // Vertex sums in double, converted once at the end.
  const int64_t acc_size = (p.ranges ? 1 : p.num_views) * p.num_vertices * 4;
  std::vector<double> acc(size_t(acc_size), 0.0);
  for (int64_t b = 0; b < p.num_views; ++b) {
    const ViewRange vr = view_range(p.ranges, p.num_triangles, b);
    const T* pos = p.ranges ? p.pos : p.pos + b * p.num_vertices * 4;
    double* gacc = p.ranges ? acc.data() : acc.data() + b * p.num_vertices * 4;
    const int32_t* tri = p.tri + vr.first * 3;
    const int64_t n = vr.count;
    setup_view(pos, tri, n, p.blur_radius, H, W, p.num_threads, setups, valid);
    tri_grad.assign(size_t(n * 12), 0.0);
    double* tg = tri_grad.data();
    const SoftTriangle* st = setups.data();
    const unsigned char* ok = valid.data();
#pragma omp parallel for schedule(dynamic, 16) num_threads(p.num_threads)
    for (int64_t t = 0; t < n; ++t) {
      if (!ok[t]) continue;
      soft_triangle_backward(p, st[t], b, int32_t(vr.first + t), tg + 12 * t);
    }
    for (int64_t t = 0; t < n; ++t) {
      if (!valid[t]) continue;
      const int32_t* ti = tri + 3 * t;
      for (int k = 0; k < 3; ++k) {
        double* g = gacc + 4 * int64_t(ti[k]);
        for (int c = 0; c < 4; ++c) g[c] += tg[12 * t + 4 * k + c];
      }
    }
  }
  for (int64_t i = 0; i < acc_size; ++i) p.grad_pos[i] = T(acc[i]);
  return kOk;
}

template int rasterize_soft_fwd_cpu<float>(const SoftRasterizeFwdParams<float>&);
template int rasterize_soft_fwd_cpu<double>(const SoftRasterizeFwdParams<double>&);
template int rasterize_soft_bwd_cpu<float>(const SoftRasterizeBwdParams<float>&);
template int rasterize_soft_bwd_cpu<double>(const SoftRasterizeBwdParams<double>&);

}  // namespace rastlit
