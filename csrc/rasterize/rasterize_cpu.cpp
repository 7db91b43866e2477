// Rasterize on the CPU: per view, set up triangles, bin them into 16x16 pixel tiles, then
// z-buffer each tile independently. Parallel over triangles, chunks and tiles with OpenMP; every
// output element has one writer and every sum a fixed order, so results are bitwise identical
// for any thread count.
#include "rasterize.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RL_X86_SIMD 1
#endif

#include "../tile_binning.h"

namespace rastlit {
namespace {

// The box the binning reads for a triangle: its setup's pixel box, or an empty box (x0 > x1)
// when the setup found that it covers no pixel.
template <typename T>
PixelBox binned_box(bool valid, const TriangleSetup<T>& s) {
  return valid ? PixelBox{s.x0, s.y0, s.x1, s.y1} : PixelBox{1, 1, 0, 0};
}

// One candidate pixel of the z-buffer pass: `cov` is the fast coverage test's answer (1 inside,
// -1 undecided: decided exactly here); then the near/far test, depth peeling and the z-buffer
// (strict less: ties go to the lower id, which comes first in the bin).
template <typename T>
inline void zbuffer_pixel(const TriangleSetup<T>& s, const EdgeRow<T>& row, int cov, const TriangleVertices<T>& tv,
                          T pxx, T pyy, int x, int y, int W, const T* peel, int64_t global_id, int li, T* zbuf,
                          int32_t* ibuf, int32_t t) {
  if (cov < 0) cov = coverage_exact(s, tv, pxx, pyy);
  if (!cov) return;
  const T z = s.zplane.x * pxx + row.zr;
  if (!depth_in_range(z)) return;
  if (peel && !behind_peeled_layer(peel + (int64_t(y) * W + x) * 4, z, global_id)) return;
  if (ibuf[li] < 0 || z < zbuf[li]) {
    zbuf[li] = z;
    ibuf[li] = t;
  }
}

// The candidates of one triangle in one tile, a pixel at a time.
template <typename T>
void zbuffer_triangle_scalar(const TriangleSetup<T>& s, const TriangleVertices<T>& tv, int x0, int x1, int y0,
                             int y1, int tx0, int ty0, int TS, const T* px, const T* py, int W, const T* peel,
                             int64_t global_id, T* zbuf, int32_t* ibuf, int32_t t) {
  for (int y = y0; y <= y1; ++y) {
    EdgeRow<T> row;
    edge_row(s, py[y], &row);
    for (int x = x0; x <= x1; ++x) {
      const int cov = coverage_fast(s, row, px[x]);
      if (cov == 0) continue;
      zbuffer_pixel(s, row, cov, tv, px[x], py[y], x, y, W, peel, global_id, (y - ty0) * TS + (x - tx0), zbuf, ibuf, t);
    }
  }
}

#ifdef RL_X86_SIMD
// The same, with the fast coverage test on 4 pixels at once (AVX2, double: the same products and
// sums as coverage_fast, so the same answers bit for bit). `pxd` holds the pixel centres' NDC x
// in double, padded by 4 entries. For float32 without depth peeling the depth and z-buffer tests
// of the pixels found inside are done 4 at once as well (the same float products and sums as
// zbuffer_pixel, masked loads and stores within the pixel box); pixels within rounding distance of
// an edge, double input and depth peeling take zbuffer_pixel one by one.
template <typename T>
__attribute__((target("avx2"))) void zbuffer_triangle_avx2(const TriangleSetup<T>& s, const TriangleVertices<T>& tv,
                                                           int x0, int x1, int y0, int y1, int tx0, int ty0, int TS,
                                                           const T* px, const double* pxd, const T* py, int W,
                                                           const T* peel, int64_t global_id, T* zbuf, int32_t* ibuf,
                                                           int32_t t) {
  constexpr bool kVectorDepth = std::is_same<T, float>::value;
  const bool vector_depth = kVectorDepth && peel == nullptr;
  const __m256d cx0 = _mm256_set1_pd(s.c[0].x), cx1 = _mm256_set1_pd(s.c[1].x), cx2 = _mm256_set1_pd(s.c[2].x);
  const __m256d b0 = _mm256_set1_pd(s.bound[0]), b1 = _mm256_set1_pd(s.bound[1]), b2 = _mm256_set1_pd(s.bound[2]);
  const __m256d nb0 = _mm256_set1_pd(-s.bound[0]), nb1 = _mm256_set1_pd(-s.bound[1]), nb2 = _mm256_set1_pd(-s.bound[2]);
  const __m128 zx = _mm_set1_ps(float(s.zplane.x)), minus_one = _mm_set1_ps(-1.0f), one = _mm_set1_ps(1.0f);
  const __m128i tvec = _mm_set1_epi32(t);
  for (int y = y0; y <= y1; ++y) {
    EdgeRow<T> row;
    edge_row(s, py[y], &row);
    const __m256d r0 = _mm256_set1_pd(row.r[0]), r1 = _mm256_set1_pd(row.r[1]), r2 = _mm256_set1_pd(row.r[2]);
    const __m128 zr = _mm_set1_ps(float(row.zr));
    for (int x = x0; x <= x1; x += 4) {
      const __m256d X = _mm256_loadu_pd(pxd + x);
      const __m256d e0 = _mm256_add_pd(_mm256_mul_pd(cx0, X), r0);
      const __m256d e1 = _mm256_add_pd(_mm256_mul_pd(cx1, X), r1);
      const __m256d e2 = _mm256_add_pd(_mm256_mul_pd(cx2, X), r2);
      const __m256d in = _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(e0, b0, _CMP_GT_OQ), _mm256_cmp_pd(e1, b1, _CMP_GT_OQ)),
                                       _mm256_cmp_pd(e2, b2, _CMP_GT_OQ));
      const __m256d out = _mm256_or_pd(_mm256_or_pd(_mm256_cmp_pd(e0, nb0, _CMP_LT_OQ), _mm256_cmp_pd(e1, nb1, _CMP_LT_OQ)),
                                       _mm256_cmp_pd(e2, nb2, _CMP_LT_OQ));
      const int n = x1 - x + 1 < 4 ? x1 - x + 1 : 4;
      const int lanes = (1 << n) - 1;
      const int inside = _mm256_movemask_pd(in) & lanes;
      int todo = lanes & ~(_mm256_movemask_pd(out) | inside);  // undecided: the exact test
      if (vector_depth && inside) {  // (a compile-time false for double)
        const int li = (y - ty0) * TS + (x - tx0);
        // live: all ones in lane k where pixel x + k is inside (and within the box).
        const __m128i bits = _mm_setr_epi32(1, 2, 4, 8);
        const __m128i live_mask = _mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32(inside), bits), bits);
        const __m128 z = _mm_add_ps(_mm_mul_ps(zx, _mm_loadu_ps(reinterpret_cast<const float*>(px) + x)), zr);
        const __m128 zb = _mm_maskload_ps(reinterpret_cast<float*>(zbuf) + li, live_mask);
        const __m128i ib = _mm_maskload_epi32(ibuf + li, live_mask);
        const __m128 in_range = _mm_and_ps(_mm_cmp_ps(z, minus_one, _CMP_GE_OQ), _mm_cmp_ps(z, one, _CMP_LE_OQ));
        const __m128 nearer = _mm_or_ps(_mm_castsi128_ps(_mm_cmplt_epi32(ib, _mm_setzero_si128())),
                                        _mm_cmp_ps(z, zb, _CMP_LT_OQ));
        const __m128i win = _mm_and_si128(live_mask, _mm_castps_si128(_mm_and_ps(in_range, nearer)));
        _mm_maskstore_ps(reinterpret_cast<float*>(zbuf) + li, win, z);
        _mm_maskstore_epi32(ibuf + li, win, tvec);
      } else {
        todo |= inside;
      }
      while (todo) {
        const int k = __builtin_ctz(todo);
        todo &= todo - 1;
        zbuffer_pixel(s, row, ((inside >> k) & 1) ? 1 : -1, tv, px[x + k], py[y], x + k, y, W, peel, global_id,
                      (y - ty0) * TS + (x + k - tx0), zbuf, ibuf, t);
      }
    }
  }
}

// The outputs of one row of a tile, 4 pixels at a time (AVX2, float32): each lane does
// barycentrics_from_setup's arithmetic in the same order, so the bits are the same; the winners'
// edge vectors are gathered from their setups. ids: the z-buffer's winners (-1: background),
// zs: their depths, pxd: pixel centres' NDC x (double), y: the row's NDC y, id_base: the view's
// first triangle; n pixels from rast / db on. Returns how many pixels it wrote (a multiple of 4).
// (c_i - b sum_j c_j) / s * k, as barycentrics_from_setup writes it.
__attribute__((target("avx2"))) inline __m256d barycentric_derivative_avx2(__m256d ci, __m256d b, __m256d sum,
                                                                           __m256d inv_s, __m256d k) {
  return _mm256_mul_pd(_mm256_mul_pd(_mm256_sub_pd(ci, _mm256_mul_pd(b, sum)), inv_s), k);
}

static_assert(sizeof(TriangleSetup<float>) % sizeof(double) == 0, "setups are gathered in doubles");
__attribute__((target("avx2"))) int write_row_outputs_avx2(const TriangleSetup<float>* setups, const int32_t* ids,
                                                           const float* zs, int n, const double* pxd, double y,
                                                           double kx, double ky, int64_t id_base, float* rast,
                                                           float* db) {
  constexpr int kStride = int(sizeof(TriangleSetup<float>) / sizeof(double));
  const double* base = reinterpret_cast<const double*>(setups);
  const __m256d Y = _mm256_set1_pd(y), KX = _mm256_set1_pd(kx), KY = _mm256_set1_pd(ky), ONE = _mm256_set1_pd(1.0);
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m128i id = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ids + j));
    const __m128i valid = _mm_cmpgt_epi32(id, _mm_set1_epi32(-1));
    float* r = rast + 4 * j;
    float* d = db + 4 * j;
    if (_mm_testz_si128(valid, valid)) {
      const __m256 zero = _mm256_setzero_ps();
      _mm256_storeu_ps(r, zero);
      _mm256_storeu_ps(r + 8, zero);
      _mm256_storeu_ps(d, zero);
      _mm256_storeu_ps(d + 8, zero);
      continue;
    }
    // Background lanes read triangle 0's setup (any valid one would do): their results are masked.
    const __m128i row = _mm_mullo_epi32(_mm_and_si128(id, valid), _mm_set1_epi32(kStride));
    __m256d c[9];
    for (int k = 0; k < 9; ++k) c[k] = _mm256_i32gather_pd(base + k, row, 8);  // c[i].{x,y,z} at 3i + {0,1,2}
    const __m256d X = _mm256_loadu_pd(pxd + j);
    __m256d e[3];
    for (int i = 0; i < 3; ++i)
      e[i] = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(c[3 * i], X), _mm256_mul_pd(c[3 * i + 1], Y)), c[3 * i + 2]);
    const __m256d inv_s = _mm256_div_pd(ONE, _mm256_add_pd(_mm256_add_pd(e[0], e[1]), e[2]));
    const __m256d b0 = _mm256_mul_pd(e[0], inv_s), b1 = _mm256_mul_pd(e[1], inv_s);
    const __m256d sx = _mm256_add_pd(_mm256_add_pd(c[0], c[3]), c[6]);
    const __m256d sy = _mm256_add_pd(_mm256_add_pd(c[1], c[4]), c[7]);
    const __m128 mask = _mm_castsi128_ps(valid);
    __m128 u = _mm_and_ps(_mm256_cvtpd_ps(b0), mask), v = _mm_and_ps(_mm256_cvtpd_ps(b1), mask);
    __m128 z = _mm_and_ps(_mm_loadu_ps(zs + j), mask);
    __m128 id1 = _mm_and_ps(_mm_cvtepi32_ps(_mm_add_epi32(id, _mm_set1_epi32(int32_t(id_base + 1)))), mask);
    _MM_TRANSPOSE4_PS(u, v, z, id1);
    _mm_storeu_ps(r, u);
    _mm_storeu_ps(r + 4, v);
    _mm_storeu_ps(r + 8, z);
    _mm_storeu_ps(r + 12, id1);
    __m128 d0 = _mm_and_ps(_mm256_cvtpd_ps(barycentric_derivative_avx2(c[0], b0, sx, inv_s, KX)), mask);
    __m128 d1 = _mm_and_ps(_mm256_cvtpd_ps(barycentric_derivative_avx2(c[1], b0, sy, inv_s, KY)), mask);
    __m128 d2 = _mm_and_ps(_mm256_cvtpd_ps(barycentric_derivative_avx2(c[3], b1, sx, inv_s, KX)), mask);
    __m128 d3 = _mm_and_ps(_mm256_cvtpd_ps(barycentric_derivative_avx2(c[4], b1, sy, inv_s, KY)), mask);
    _MM_TRANSPOSE4_PS(d0, d1, d2, d3);
    _mm_storeu_ps(d, d0);
    _mm_storeu_ps(d + 4, d1);
    _mm_storeu_ps(d + 8, d2);
    _mm_storeu_ps(d + 12, d3);
  }
  return j;
}

// Triangle setup of 4 triangles at once (AVX2, float32 input): setup_triangle's arithmetic lane by
// lane, in the same order, for the common case: finite vertices inside the near/far slab, with a
// det whose sign the rounded value decides. Lanes outside that case (clipping, exact det signs)
// go through setup_triangle itself, so every setup is the one setup_triangle makes, bit for bit.
// Products and sums are written out as setup_triangle, ndc_pixel_box and depth_plane write them;
// min/max follow their `x < m ? x : m` order, which _mm256_min_pd(x, m) is.
__attribute__((target("avx2"))) void setup_triangles4_avx2(const float* pos, const int32_t* tri, int height, int width,
                                                           TriangleSetup<float>* out, PixelBox* boxes) {
  // Vertex k of the four triangles, lanes = triangles: a = (x, y, w) and z, in double.
  __m256d ax[3], ay[3], aw[3], az[3];
  for (int k = 0; k < 3; ++k) {
    __m256d r[4];
    for (int l = 0; l < 4; ++l) r[l] = _mm256_cvtps_pd(_mm_loadu_ps(pos + 4 * int64_t(tri[3 * l + k])));
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]);  // x0 x1 z0 z1
    const __m256d t1 = _mm256_unpackhi_pd(r[0], r[1]);  // y0 y1 w0 w1
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]);
    const __m256d t3 = _mm256_unpackhi_pd(r[2], r[3]);
    ax[k] = _mm256_permute2f128_pd(t0, t2, 0x20);
    az[k] = _mm256_permute2f128_pd(t0, t2, 0x31);
    ay[k] = _mm256_permute2f128_pd(t1, t3, 0x20);
    aw[k] = _mm256_permute2f128_pd(t1, t3, 0x31);
  }
  const __m256d sign_bit = _mm256_set1_pd(-0.0), inf = _mm256_set1_pd(HUGE_VAL), zero = _mm256_setzero_pd();
#define RL_ABS(v) _mm256_andnot_pd(sign_bit, (v))
  __m256d finite = _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), slab = finite;
  for (int k = 0; k < 3; ++k) {
    finite = _mm256_and_pd(finite, _mm256_and_pd(_mm256_cmp_pd(RL_ABS(ax[k]), inf, _CMP_LT_OQ),
                                                 _mm256_cmp_pd(RL_ABS(ay[k]), inf, _CMP_LT_OQ)));
    finite = _mm256_and_pd(finite, _mm256_and_pd(_mm256_cmp_pd(RL_ABS(az[k]), inf, _CMP_LT_OQ),
                                                 _mm256_cmp_pd(RL_ABS(aw[k]), inf, _CMP_LT_OQ)));
    slab = _mm256_and_pd(slab, _mm256_and_pd(_mm256_cmp_pd(aw[k], zero, _CMP_GT_OQ),
                                             _mm256_cmp_pd(RL_ABS(az[k]), aw[k], _CMP_LE_OQ)));
  }
  const int finite_lanes = _mm256_movemask_pd(finite);
  // The projected box (ndc_pixel_box), for every lane; only the fast lanes' results are used.
  __m256d xmin = _mm256_set1_pd(1e300), xmax = _mm256_set1_pd(-1e300), ymin = xmin, ymax = xmax;
  for (int k = 0; k < 3; ++k) {
    const __m256d iw = _mm256_div_pd(_mm256_set1_pd(1.0), aw[k]);
    const __m256d x = _mm256_mul_pd(ax[k], iw), y = _mm256_mul_pd(ay[k], iw);
    xmin = _mm256_min_pd(x, xmin);
    xmax = _mm256_max_pd(x, xmax);
    ymin = _mm256_min_pd(y, ymin);
    ymax = _mm256_max_pd(y, ymax);
  }
  __m256d extent = _mm256_max_pd(_mm256_xor_pd(xmin, sign_bit), xmax);
  extent = _mm256_max_pd(_mm256_xor_pd(ymin, sign_bit), extent);
  extent = _mm256_max_pd(ymax, extent);
  const __m256d margin = _mm256_add_pd(_mm256_set1_pd(1.0 / 256),
                                       _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(1e-13), extent),
                                                     _mm256_set1_pd(double(width > height ? width : height))));
  const __m256d half = _mm256_set1_pd(0.5), one = _mm256_set1_pd(1.0), minus_one = _mm256_set1_pd(-1.0);
  const __m256d wd = _mm256_set1_pd(double(width)), hd = _mm256_set1_pd(double(height));
  // (v + 1) * 0.5 * n - 0.5, as ndc_pixel_box (macros: lambdas do not inherit the target attribute)
#define RL_PIXEL(v, n) _mm256_sub_pd(_mm256_mul_pd(_mm256_mul_pd(_mm256_add_pd(v, one), half), n), half)
  // Clamp to [-1, n] (fx > -1 ? min(fx, n) : -1 for finite fx), then ceil / floor, then to the image.
  __m256d bx0 = _mm256_max_pd(_mm256_min_pd(_mm256_sub_pd(RL_PIXEL(xmin, wd), margin), wd), minus_one);
  __m256d bx1 = _mm256_max_pd(_mm256_min_pd(_mm256_add_pd(RL_PIXEL(xmax, wd), margin), wd), minus_one);
  __m256d by0 = _mm256_max_pd(_mm256_min_pd(_mm256_sub_pd(RL_PIXEL(ymin, hd), margin), hd), minus_one);
  __m256d by1 = _mm256_max_pd(_mm256_min_pd(_mm256_add_pd(RL_PIXEL(ymax, hd), margin), hd), minus_one);
  bx0 = _mm256_max_pd(_mm256_round_pd(bx0, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC), zero);
  by0 = _mm256_max_pd(_mm256_round_pd(by0, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC), zero);
  bx1 = _mm256_min_pd(_mm256_round_pd(bx1, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), _mm256_set1_pd(width - 1));
  by1 = _mm256_min_pd(_mm256_round_pd(by1, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), _mm256_set1_pd(height - 1));
  const int box_lanes = _mm256_movemask_pd(
      _mm256_and_pd(_mm256_cmp_pd(bx0, bx1, _CMP_LE_OQ), _mm256_cmp_pd(by0, by1, _CMP_LE_OQ)));
  const int slab_lanes = _mm256_movemask_pd(slab) & finite_lanes;
  // Edge vectors c_i = a_{i+1} x a_{i+2} and their rounding bounds.
  const __m256d K = _mm256_set1_pd(8.0 * 1.1102230246251565e-16);
  __m256d cx[3], cy[3], cz[3], bound[3];
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    const __m256d yz = _mm256_mul_pd(ay[j], aw[k]), zy = _mm256_mul_pd(aw[j], ay[k]);
    const __m256d zx = _mm256_mul_pd(aw[j], ax[k]), xz = _mm256_mul_pd(ax[j], aw[k]);
    const __m256d xy = _mm256_mul_pd(ax[j], ay[k]), yx = _mm256_mul_pd(ay[j], ax[k]);
    cx[i] = _mm256_sub_pd(yz, zy);
    cy[i] = _mm256_sub_pd(zx, xz);
    cz[i] = _mm256_sub_pd(xy, yx);
    __m256d b = _mm256_add_pd(RL_ABS(yz), RL_ABS(zy));
    b = _mm256_add_pd(b, RL_ABS(zx));
    b = _mm256_add_pd(b, RL_ABS(xz));
    b = _mm256_add_pd(b, RL_ABS(xy));
    b = _mm256_add_pd(b, RL_ABS(yx));
    bound[i] = _mm256_mul_pd(K, b);
  }
  const __m256d det =
      _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(ax[0], cx[0]), _mm256_mul_pd(ay[0], cy[0])), _mm256_mul_pd(aw[0], cz[0]));
#define RL_ABS_SUM(p, q, r, t) _mm256_add_pd(RL_ABS(_mm256_mul_pd(p, q)), RL_ABS(_mm256_mul_pd(r, t)))  // |p q| + |r t|
  __m256d det_bound = _mm256_mul_pd(RL_ABS(ax[0]), RL_ABS_SUM(ay[1], aw[2], aw[1], ay[2]));
  det_bound = _mm256_add_pd(det_bound, _mm256_mul_pd(RL_ABS(ay[0]), RL_ABS_SUM(aw[1], ax[2], ax[1], aw[2])));
  det_bound = _mm256_add_pd(det_bound, _mm256_mul_pd(RL_ABS(aw[0]), RL_ABS_SUM(ax[1], ay[2], ay[1], ax[2])));
  det_bound = _mm256_mul_pd(K, det_bound);
  const __m256d negative = _mm256_cmp_pd(det, _mm256_xor_pd(det_bound, sign_bit), _CMP_LT_OQ);
  const int decided_lanes =
      _mm256_movemask_pd(_mm256_or_pd(_mm256_cmp_pd(det, det_bound, _CMP_GT_OQ), negative));
  // The depth plane (depth_plane's all-w > 0 branch), from the raw edge vectors.
  const __m256d d0 = _mm256_div_pd(az[0], aw[0]), d1 = _mm256_div_pd(az[1], aw[1]), d2 = _mm256_div_pd(az[2], aw[2]);
  const __m256d k0 = _mm256_div_pd(_mm256_mul_pd(_mm256_sub_pd(d0, d2), aw[0]), det);
  const __m256d k1 = _mm256_div_pd(_mm256_mul_pd(_mm256_sub_pd(d1, d2), aw[1]), det);
  const __m128 zpx = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(k0, cx[0]), _mm256_mul_pd(k1, cx[1])));
  const __m128 zpy = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(k0, cy[0]), _mm256_mul_pd(k1, cy[1])));
  const __m128 zpz =
      _mm256_cvtpd_ps(_mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(k0, cz[0]), _mm256_mul_pd(k1, cz[1])), d2));
  // Orient the edge vectors (times sign(det)) and the tie rule: edge i keeps pixel centres on it
  // when its inward normal has n.x > 0, or n.x == 0 and n.y > 0.
  const __m256d flip = _mm256_and_pd(negative, sign_bit);
  int tie[4] = {0, 0, 0, 0};
  alignas(32) double c_out[9][4], b_out[3][4];
  for (int i = 0; i < 3; ++i) {
    cx[i] = _mm256_xor_pd(cx[i], flip);
    cy[i] = _mm256_xor_pd(cy[i], flip);
    cz[i] = _mm256_xor_pd(cz[i], flip);
    const int keep = _mm256_movemask_pd(_mm256_or_pd(
        _mm256_cmp_pd(cx[i], zero, _CMP_GT_OQ),
        _mm256_and_pd(_mm256_cmp_pd(cx[i], zero, _CMP_EQ_OQ), _mm256_cmp_pd(cy[i], zero, _CMP_GT_OQ))));
    for (int l = 0; l < 4; ++l) tie[l] |= ((keep >> l) & 1) << i;
    _mm256_store_pd(c_out[3 * i], cx[i]);
    _mm256_store_pd(c_out[3 * i + 1], cy[i]);
    _mm256_store_pd(c_out[3 * i + 2], cz[i]);
    _mm256_store_pd(b_out[i], bound[i]);
  }
#undef RL_ABS
#undef RL_PIXEL
#undef RL_ABS_SUM
  alignas(16) float zp_out[3][4];
  _mm_store_ps(zp_out[0], zpx);
  _mm_store_ps(zp_out[1], zpy);
  _mm_store_ps(zp_out[2], zpz);
  alignas(16) int32_t box_out[4][4];
  _mm_store_si128(reinterpret_cast<__m128i*>(box_out[0]), _mm256_cvttpd_epi32(bx0));
  _mm_store_si128(reinterpret_cast<__m128i*>(box_out[1]), _mm256_cvttpd_epi32(by0));
  _mm_store_si128(reinterpret_cast<__m128i*>(box_out[2]), _mm256_cvttpd_epi32(bx1));
  _mm_store_si128(reinterpret_cast<__m128i*>(box_out[3]), _mm256_cvttpd_epi32(by1));
  const int negative_lanes = _mm256_movemask_pd(negative);
  for (int l = 0; l < 4; ++l) {
    const int bit = 1 << l;
    if (!(finite_lanes & bit) || ((slab_lanes & bit) && !(box_lanes & bit))) {
      boxes[l] = binned_box(false, out[l]);  // not finite, or no pixel centre in the box
    } else if (!(slab_lanes & bit) || !(decided_lanes & bit)) {  // clipping or an exact det sign: scalar
      const bool valid = setup_triangle(pos + 4 * int64_t(tri[3 * l]), pos + 4 * int64_t(tri[3 * l + 1]),
                                        pos + 4 * int64_t(tri[3 * l + 2]), height, width, &out[l]);
      boxes[l] = binned_box(valid, out[l]);
    } else {
      TriangleSetup<float>& s = out[l];
      for (int i = 0; i < 3; ++i) {
        s.c[i] = make_vec3<double>(c_out[3 * i][l], c_out[3 * i + 1][l], c_out[3 * i + 2][l]);
        s.bound[i] = b_out[i][l];
      }
      s.zplane = make_vec3<float>(zp_out[0][l], zp_out[1][l], zp_out[2][l]);
      s.sign = (negative_lanes & bit) ? -1 : 1;
      s.tie_pass = tie[l];
      s.x0 = box_out[0][l];
      s.y0 = box_out[1][l];
      s.x1 = box_out[2][l];
      s.y1 = box_out[3][l];
      boxes[l] = binned_box(true, s);
    }
  }
}

// A box of at most 4 pixels (most triangles of a dense mesh at a low resolution) in one 4-wide
// step: lane k is pixel (x0 + k % w, y0 + k / w), its edge values c.x X + (c.y Y + c.z) as
// coverage_fast forms them (the row part per lane instead of per row), so the same answers;
// then zbuffer_pixel for the pixels found inside or undecided.
template <typename T>
__attribute__((target("avx2"))) void zbuffer_small_box_avx2(const TriangleSetup<T>& s, const TriangleVertices<T>& tv,
                                                            int x0, int x1, int y0, int y1, int tx0, int ty0, int TS,
                                                            const T* px, const double* pxd, const T* py, int W,
                                                            const T* peel, int64_t global_id, T* zbuf, int32_t* ibuf,
                                                            int32_t t) {
  const int w = x1 - x0 + 1, n = w * (y1 - y0 + 1);
  // Lane k -> pixel, for the box widths 1..4 (lanes past n repeat a pixel and are masked off).
  static const unsigned char kDx[4][4] = {{0, 0, 0, 0}, {0, 1, 0, 1}, {0, 1, 2, 0}, {0, 1, 2, 3}};
  static const unsigned char kDy[4][4] = {{0, 1, 2, 3}, {0, 0, 1, 1}, {0, 0, 0, 1}, {0, 0, 0, 0}};
  int lx[4], ly[4];
  alignas(32) double X[4], Y[4];
  for (int k = 0; k < 4; ++k) {
    lx[k] = x0 + kDx[w - 1][k];
    ly[k] = std::min(y0 + int(kDy[w - 1][k]), y1);
    X[k] = pxd[lx[k]];
    Y[k] = double(py[ly[k]]);
  }
  const __m256d Xv = _mm256_load_pd(X), Yv = _mm256_load_pd(Y);
  __m256d in = _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), out = _mm256_setzero_pd();
  for (int i = 0; i < 3; ++i) {
    const __m256d r = _mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(s.c[i].y), Yv), _mm256_set1_pd(s.c[i].z));
    const __m256d e = _mm256_add_pd(_mm256_mul_pd(_mm256_set1_pd(s.c[i].x), Xv), r);
    in = _mm256_and_pd(in, _mm256_cmp_pd(e, _mm256_set1_pd(s.bound[i]), _CMP_GT_OQ));
    out = _mm256_or_pd(out, _mm256_cmp_pd(e, _mm256_set1_pd(-s.bound[i]), _CMP_LT_OQ));
  }
  const int inside = _mm256_movemask_pd(in);
  int todo = ((1 << n) - 1) & ~(_mm256_movemask_pd(out) & ~inside);
  while (todo) {
    const int k = __builtin_ctz(todo);
    todo &= todo - 1;
    EdgeRow<T> row;
    edge_row(s, py[ly[k]], &row);
    zbuffer_pixel(s, row, ((inside >> k) & 1) ? 1 : -1, tv, px[lx[k]], py[ly[k]], lx[k], ly[k], W, peel, global_id,
                  (ly[k] - ty0) * TS + (lx[k] - tx0), zbuf, ibuf, t);
  }
}

bool use_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && std::getenv("RASTLIT_NO_SIMD") == nullptr;
  return yes;
}
#endif

struct ViewTriangles {
  int64_t first, count;  // global triangle index range rasterized in this view
};

template <typename T>
ViewTriangles view_triangles(const T*, const int32_t* ranges, int64_t num_triangles, int64_t b) {
  if (ranges) return {ranges[2 * b], ranges[2 * b + 1]};
  return {0, num_triangles};
}

template <typename T>
void rasterize_view(const RasterizeFwdParams<T>& p, int64_t b, std::vector<TriangleSetup<T>>& setups,
                    std::vector<PixelBox>& boxes, std::vector<int64_t>& counts,
                    std::vector<int32_t>& bins, const std::vector<T>& px, const std::vector<T>& py,
                    const std::vector<double>& pxd, int num_threads) {
  const int H = p.height, W = p.width;
  const ViewTriangles vt = view_triangles<T>(p.pos, p.ranges, p.num_triangles, b);
  const T* pos = p.ranges ? p.pos : p.pos + b * p.num_vertices * 4;
  const int32_t* tri = p.tri + vt.first * 3;
  const int64_t n = vt.count;
  T* rast = p.rast + b * int64_t(H) * W * 4;
  T* rast_db = p.rast_db + b * int64_t(H) * W * 4;
  const T* peel = p.peel ? p.peel + b * int64_t(H) * W * 4 : nullptr;

  setups.resize(size_t(n));
  boxes.resize(size_t(n));
  const TileGrid<kRasterTileSize> grid(H, W);
  const int TS = grid.tile_size;
  const int64_t num_tiles = grid.num_tiles;
  std::vector<int64_t> tile_begin;
  // One parallel region for the three steps (setup, binning, tiles), so that the team is woken
  // once per view: the steps meet at the worksharing loops' barriers.
#pragma omp parallel num_threads(num_threads)
  {
  // 1. Triangle setup.
#pragma omp for schedule(static)
  for (int64_t g = 0; g < (n + 3) / 4; ++g) {  // groups of 4 triangles (the SIMD setup's width)
    int64_t t = 4 * g;
#ifdef RL_X86_SIMD
    if constexpr (std::is_same<T, float>::value) {
      if (t + 4 <= n && use_avx2()) {
        setup_triangles4_avx2(pos, tri + 3 * t, H, W, &setups[t], &boxes[t]);
        t = n;  // done: skip the scalar loop
      }
    }
#endif
    for (; t < 4 * g + 4 && t < n; ++t) {  // the setup, and the compact box the binning reads
      const int32_t* ti = tri + 3 * t;
      const bool valid = setup_triangle(pos + 4 * int64_t(ti[0]), pos + 4 * int64_t(ti[1]),
                                        pos + 4 * int64_t(ti[2]), H, W, &setups[t]);
      boxes[t] = binned_box(valid, setups[t]);
    }
  }

  // 2. Binning into 16x16 pixel tiles (tile_binning.h): every bin lists its triangles in
  //    ascending index order, independently of the thread count.
  bin_boxes_to_tiles_team(n, grid, boxes.data(), counts, tile_begin, bins);

  // 3. Per tile: z-buffer over the bin (ascending ids, strict less: ties go to the lower id),
  //    then barycentrics and derivatives for the winner only.
#pragma omp for schedule(dynamic, 1)
  for (int64_t tile = 0; tile < num_tiles; ++tile) {
    const PixelBox tb = grid.tile_pixels(tile);
    const int tx0 = tb.x0, ty0 = tb.y0, tx1 = tb.x1, ty1 = tb.y1;
    T zbuf[kRasterTileSize * kRasterTileSize];
    int32_t ibuf[kRasterTileSize * kRasterTileSize];
    for (int i = 0; i < TS * TS; ++i) {
      ibuf[i] = -1;
      zbuf[i] = T(0);  // read (and ignored) beside ibuf < 0 by the 4-wide depth test
    }
    const int64_t k_end = tile_begin[tile + 1];
    for (int64_t k = tile_begin[tile]; k < k_end; ++k) {
      const int32_t t = bins[k];
      if (k + 4 < k_end) {  // setups are read in bin order, scattered over MBs: fetch ahead
        const char* ahead = reinterpret_cast<const char*>(&setups[bins[k + 4]]);
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + 64);
        __builtin_prefetch(ahead + sizeof(TriangleSetup<T>) - 1);
      }
      const TriangleSetup<T>& s = setups[t];
      const int x0 = std::max(s.x0, tx0), x1 = std::min(s.x1, tx1);
      const int y0 = std::max(s.y0, ty0), y1 = std::min(s.y1, ty1);
      const TriangleVertices<T> tv{pos, tri + 3 * int64_t(t)};
#ifdef RL_X86_SIMD
      if (use_avx2()) {
        if ((x1 - x0 + 1) * (y1 - y0 + 1) <= 4)
          zbuffer_small_box_avx2(s, tv, x0, x1, y0, y1, tx0, ty0, TS, px.data(), pxd.data(), py.data(), W, peel,
                                 vt.first + t, zbuf, ibuf, t);
        else
          zbuffer_triangle_avx2(s, tv, x0, x1, y0, y1, tx0, ty0, TS, px.data(), pxd.data(), py.data(), W, peel,
                                vt.first + t, zbuf, ibuf, t);
        continue;
      }
#endif
      zbuffer_triangle_scalar(s, tv, x0, x1, y0, y1, tx0, ty0, TS, px.data(), py.data(), W, peel, vt.first + t, zbuf,
                              ibuf, t);
    }
    const double kx = 2.0 / W, ky = 2.0 / H;
    for (int y = ty0; y <= ty1; ++y) {
      int x = tx0;
#ifdef RL_X86_SIMD
      if constexpr (std::is_same<T, float>::value) {
        if (use_avx2()) {
          const int li = (y - ty0) * TS;
          x += write_row_outputs_avx2(setups.data(), ibuf + li, zbuf + li, tx1 - tx0 + 1, pxd.data() + tx0,
                                      double(py[y]), kx, ky, vt.first, rast + (int64_t(y) * W + tx0) * 4,
                                      rast_db + (int64_t(y) * W + tx0) * 4);
        }
      }
#endif
      for (; x <= tx1; ++x) {
        const int li = (y - ty0) * TS + (x - tx0);
        T* r = rast + (int64_t(y) * W + x) * 4;
        T* d = rast_db + (int64_t(y) * W + x) * 4;
        const int32_t t = ibuf[li];
        if (t < 0) {
          r[0] = r[1] = r[2] = r[3] = T(0);
          d[0] = d[1] = d[2] = d[3] = T(0);
          continue;
        }
        barycentrics_from_setup(setups[t], px[x], py[y], kx, ky, r, d);
        r[2] = zbuf[li];
        r[3] = T(vt.first + t + 1);
      }
    }
  }
  }  // omp parallel
}

}  // namespace

template <typename T>
int rasterize_fwd_cpu(const RasterizeFwdParams<T>& p) {
  std::vector<T> px(static_cast<size_t>(p.width) + 4, T(0)), py(static_cast<size_t>(p.height));  // px padded for 4-wide loads
  for (int j = 0; j < p.width; ++j) px[j] = pixel_center_ndc<T>(j, p.width);
  for (int i = 0; i < p.height; ++i) py[i] = pixel_center_ndc<T>(i, p.height);
  std::vector<double> pxd(static_cast<size_t>(p.width) + 4, 0.0);  // padded for 4-wide loads
  for (int j = 0; j < p.width; ++j) pxd[j] = double(px[j]);
  // Scratch kept per thread between calls: tens of MB for large meshes, which would otherwise be
  // page-faulted in afresh on every call.
  struct Scratch {
    std::vector<TriangleSetup<T>> setups;
    std::vector<PixelBox> boxes;
    std::vector<int64_t> counts;
    std::vector<int32_t> bins;
  };
  thread_local Scratch scratch;  // in the parallel loop below, each thread's own
  // With at least two views per thread, the views are spread over the threads (each view on one
  // thread: no barriers inside a view), when every thread's scratch fits a budget; otherwise the
  // views go one after the other, each on all threads. A view's result is the same either way.
  int64_t most_triangles = p.num_triangles;
  if (p.ranges) {
    most_triangles = 0;
    for (int64_t b = 0; b < p.num_views; ++b) most_triangles = std::max<int64_t>(most_triangles, p.ranges[2 * b + 1]);
  }
  const int64_t scratch_bytes = most_triangles * int64_t(sizeof(TriangleSetup<T>) + sizeof(PixelBox));
  if (p.num_threads > 1 && p.num_views >= 2 * p.num_threads && scratch_bytes * p.num_threads <= (int64_t(512) << 20)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(p.num_threads)
    for (int64_t b = 0; b < p.num_views; ++b) {
      Scratch& s = scratch;
      rasterize_view(p, b, s.setups, s.boxes, s.counts, s.bins, px, py, pxd, 1);
    }
  } else {
    Scratch& s = scratch;
    for (int64_t b = 0; b < p.num_views; ++b)
      rasterize_view(p, b, s.setups, s.boxes, s.counts, s.bins, px, py, pxd, p.num_threads);
  }
  return kOk;
}

// Backward. The barycentrics of a pixel depend on its triangle's vertices only through the edge
// vectors c (rasterize.h), so each image row is walked in runs of pixels of one triangle: the
// gradient with respect to c (9 numbers, double) is summed over the run, and turned into vertex
// gradients once per run. Rows are independent (parallel); their run records are then added to
// the vertices in image order by one thread, so the result is the same for any thread count.
namespace {

template <typename T>
struct RunRecord {
  int32_t tri;
  T ga[9];  // dL/d(x, y, w) of the triangle's three vertices, summed over the run
};

// One view on num_threads threads; records: at least H * W slots (each row owns W, written
// before read), row_count: H; cx: the pixel centres' NDC x.
template <typename T>
int backward_view(const RasterizeBwdParams<T>& p, int64_t b, RunRecord<T>* records, int32_t* row_count,
                  const double* cx, int num_threads) {
  const int H = p.height, W = p.width;
  const int64_t npix = int64_t(H) * W;
  const double kx = 2.0 / W, ky = 2.0 / H;
  const T* pos = p.ranges ? p.pos : p.pos + b * p.num_vertices * 4;
  T* grad_pos = p.ranges ? p.grad_pos : p.grad_pos + b * p.num_vertices * 4;
  const T* rast = p.rast + b * npix * 4;
  const T* grad_rast = p.grad_rast + b * npix * 4;
  const T* grad_db = p.grad_rast_db ? p.grad_rast_db + b * npix * 4 : nullptr;
  int view_status = kOk;
#pragma omp parallel for schedule(dynamic, 4) num_threads(num_threads) reduction(max : view_status)
  for (int y = 0; y < H; ++y) {
    RunRecord<T>* rec = records + int64_t(y) * W;
    int n = 0;
    int64_t run_tri = -1;
    Vec3<double> a[3], c[3], gc[3];
    auto flush = [&]() {
      if (run_tri < 0) return;
      Vec3<double> ga[3];
      edge_vectors_to_vertices(a, gc, ga);
      rec[n].tri = int32_t(run_tri);
      for (int k = 0; k < 3; ++k) {
        rec[n].ga[3 * k] = T(ga[k].x);
        rec[n].ga[3 * k + 1] = T(ga[k].y);
        rec[n].ga[3 * k + 2] = T(ga[k].z);
      }
      ++n;
      run_tri = -1;
    };
    const double py = pixel_center_ndc<double>(y, H);
    for (int x = 0; x < W; ++x) {
      const int64_t i = int64_t(y) * W + x;
      const T idf = rast[4 * i + 3];
      if (idf == T(0)) {
        flush();
        continue;
      }
      const int64_t t = int64_t(idf) - 1;
      if (!(idf >= T(1)) || t >= p.num_triangles) {
        view_status = kBadTriangleId;
        flush();
        continue;
      }
      if (t != run_tri) {
        flush();
        run_tri = t;
        const int32_t* ti = p.tri + 3 * t;
        for (int k = 0; k < 3; ++k) {
          const T* v = pos + 4 * int64_t(ti[k]);
          a[k] = make_vec3<double>(v[0], v[1], v[3]);
          gc[k] = make_vec3<double>(0, 0, 0);
        }
        c[0] = cross(a[1], a[2]);
        c[1] = cross(a[2], a[0]);
        c[2] = cross(a[0], a[1]);
      }
      const double g_uv[2] = {double(grad_rast[4 * i]), double(grad_rast[4 * i + 1])};
      double g_db[4];
      if (grad_db)
        for (int k = 0; k < 4; ++k) g_db[k] = double(grad_db[4 * i + k]);
      edge_vectors_backward(c, make_vec3<double>(cx[x], py, 1.0), kx, ky, g_uv, grad_db ? g_db : nullptr, gc);
    }
    flush();
    row_count[y] = n;
  }
  if (view_status != kOk) return view_status;
  for (int y = 0; y < H; ++y) {
    const RunRecord<T>* rec = records + int64_t(y) * W;
    for (int r = 0; r < row_count[y]; ++r) {
      const int32_t* ti = p.tri + 3 * int64_t(rec[r].tri);
      for (int k = 0; k < 3; ++k) {
        T* gp = grad_pos + 4 * int64_t(ti[k]);
        gp[0] += rec[r].ga[3 * k];
        gp[1] += rec[r].ga[3 * k + 1];
        gp[3] += rec[r].ga[3 * k + 2];
      }
    }
  }
  return kOk;
}

}  // namespace

template <typename T>
int rasterize_bwd_cpu(const RasterizeBwdParams<T>& p) {
  const int H = p.height, W = p.width;
  const int64_t npix = int64_t(H) * W;
  // Scratch kept per thread between calls, like the forward's.
  struct Scratch {
    std::vector<RunRecord<T>> records;
    std::vector<int32_t> row_count;
    RunRecord<T>* records_for(int64_t npix, int h) {
      if (records.size() < size_t(npix)) records.resize(size_t(npix));
      if (row_count.size() < size_t(h)) row_count.resize(size_t(h));
      return records.data();
    }
  };
  thread_local Scratch scratch;  // in the parallel loop below, each thread's own
  // Pixel centres' NDC x, once (the same values pixel_center_ndc gives; a division per pixel otherwise).
  std::vector<double> centre_x(static_cast<size_t>(W));
  for (int x = 0; x < W; ++x) centre_x[x] = pixel_center_ndc<double>(x, W);
  const double* const cx = centre_x.data();
  // Instanced views write separate gradient slices: with at least two views per thread they are
  // spread over the threads (each view on one thread) when every thread's records fit 512 MB.
  // Range-mode views share grad_pos and are summed in view order, one after the other.
  const int64_t scratch_bytes = npix * int64_t(sizeof(RunRecord<T>));
  if (!p.ranges && p.num_threads > 1 && p.num_views >= 2 * p.num_threads &&
      scratch_bytes * p.num_threads <= (int64_t(512) << 20)) {
    int status = kOk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(p.num_threads) reduction(max : status)
    for (int64_t b = 0; b < p.num_views; ++b) {
      Scratch& s = scratch;
      RunRecord<T>* records = s.records_for(npix, H);
      status = std::max(status, backward_view(p, b, records, s.row_count.data(), cx, 1));
    }
    return status;
  }
  Scratch& s = scratch;
  RunRecord<T>* records = s.records_for(npix, H);
  for (int64_t b = 0; b < p.num_views; ++b) {
    const int status = backward_view(p, b, records, s.row_count.data(), cx, p.num_threads);
    if (status != kOk) return status;
  }
  return kOk;
}

template int rasterize_fwd_cpu<float>(const RasterizeFwdParams<float>&);
template int rasterize_fwd_cpu<double>(const RasterizeFwdParams<double>&);
template int rasterize_bwd_cpu<float>(const RasterizeBwdParams<float>&);
template int rasterize_bwd_cpu<double>(const RasterizeBwdParams<double>&);

}  // namespace rastlit
