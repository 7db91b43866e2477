// Texture: filtered lookups into a texture and its mip pyramid, at per-pixel (u, v), with the
// level of detail from the uv pixel derivatives (uv_da) and/or a per-pixel bias. Math shared by
// the CPU and CUDA backends.
//
// Conventions (nvdiffrast's): u runs along the width, v along the height; texel (i, j) of a
// level of size h x w has its centre at ((j + 0.5) / w, (i + 0.5) / h). Bilinear filtering is
// that of grid_sample(align_corners=False). Boundary modes: wrap (repeat), clamp (coordinate
// clamped to the centres of the edge texels, as grid_sample's 'border'), zero (texels outside
// read as zero, as grid_sample's 'zeros').
//
// Level of detail (isotropic, as nvdiffrast): with J = [[du/dX, du/dY], [dv/dX, dv/dY]] scaled to
// texels of level 0 (rows by w0 and h0), lod = 0.5 * log2(largest eigenvalue of J^T J) + bias,
// clamped to [0, num_levels - 1]. linear-mipmap-nearest samples level floor(lod) (nvdiffrast
// rounds down too); linear-mipmap-linear blends floor(lod) and floor(lod) + 1 by the fraction.
#pragma once

#include "../common.h"

namespace rastlit {

enum TextureFilter : int {
  kTexNearest = 0,
  kTexLinear = 1,
  kTexLinearMipmapNearest = 2,
  kTexLinearMipmapLinear = 3,
};

enum TextureBoundary : int {
  kTexWrap = 0,
  kTexClamp = 1,
  kTexZero = 2,
};

// Level 0 (the texture) plus at most 15 reduced levels: a full pyramid of a 32768-texel side.
constexpr int kMaxTextureLevels = 16;

template <typename T>
struct TextureLevel {
  const T* data;  // [tex_batch, height, width, channels]
  int height, width;
};

template <typename T>
struct TextureFwdParams {
  TextureLevel<T> levels[kMaxTextureLevels];  // levels[0] is the texture
  int num_levels;                             // 1 + number of mip levels given
  int64_t tex_batch;                          // 1 (shared by all views) or num_views
  int64_t channels;
  const T* uv;     // [B,H,W,2]
  const T* uv_da;  // [B,H,W,4] or null
  const T* bias;   // [B,H,W] or null
  int64_t num_views;
  int height, width;
  int filter, boundary;
  T* out;  // [B,H,W,C]
  int num_threads;
};

template <typename T>
struct TextureBwdParams {
  TextureFwdParams<T> fwd;  // out unused
  const T* grad_out;        // [B,H,W,C]
  T* grad_levels[kMaxTextureLevels];  // each shaped as its level, zero-initialized by the caller
  T* grad_uv;                         // [B,H,W,2]
  T* grad_uv_da;                      // [B,H,W,4] or null
  T* grad_bias;                       // [B,H,W] or null
};

// floor through an integer conversion (libm's floor is a call without SSE4.1): exact for every
// |x| < 2^62; larger values (integers already in float32/float64) are returned as they are.
template <typename T>
RL_HD T tex_floor(T x) {
  if (!(x > T(-4.0e18) && x < T(4.0e18))) return x;
  const int64_t k = int64_t(x);
  return T(k) - (T(k) > x ? T(1) : T(0));
}
RL_HD float tex_sqrt(float x) { return sqrtf(x); }
RL_HD double tex_sqrt(double x) { return sqrt(x); }
RL_HD float tex_log2(float x) { return log2f(x); }
RL_HD double tex_log2(double x) { return log2(x); }
template <typename T>
RL_HD bool tex_finite(T x) {
  return x - x == T(0);  // false for NaN and +-Inf
}

// One axis of a bilinear lookup: texel indices i0, i1 (already wrapped or clamped), their
// validity (zero mode), the fraction f (weight of i1) and df/du.
template <typename T>
struct TexAxis {
  int i0, i1;
  bool ok0, ok1;
  T f, dfdu;
};

template <typename T>
RL_HD TexAxis<T> tex_axis_linear(T u, int n, int boundary) {
  TexAxis<T> a;
  a.dfdu = T(n);
  if (boundary == kTexWrap) u = u - tex_floor(u);  // [0, 1]
  T x = u * T(n) - T(0.5);
  if (boundary == kTexClamp) {
    if (x <= T(0)) {
      x = T(0);
      a.dfdu = T(0);
    } else if (x >= T(n - 1)) {
      x = T(n - 1);
      a.dfdu = T(0);
    }
  } else if (boundary == kTexZero) {
    // Beyond one texel outside, both taps are outside: clamping keeps the int conversion safe
    // and changes neither the value (zero) nor the gradient (zero).
    if (x < T(-2)) x = T(-2);
    if (x > T(n + 1)) x = T(n + 1);
  }
  const T x0 = tex_floor(x);
  a.f = x - x0;
  a.i0 = int(x0);
  a.i1 = a.i0 + 1;
  a.ok0 = a.ok1 = true;
  if (boundary == kTexWrap) {  // x in [-0.5, n - 0.5]
    if (a.i0 < 0) a.i0 += n;
    if (a.i1 >= n) a.i1 -= n;
  } else if (boundary == kTexClamp) {  // x in [0, n - 1]
    if (a.i1 > n - 1) a.i1 = n - 1;
  } else {
    a.ok0 = a.i0 >= 0 && a.i0 < n;
    a.ok1 = a.i1 >= 0 && a.i1 < n;
  }
  return a;
}

// Nearest: the texel containing the point; false when it is outside (zero mode).
template <typename T>
RL_HD bool tex_axis_nearest(T u, int n, int boundary, int* i) {
  if (boundary == kTexWrap) u = u - tex_floor(u);
  T x = u * T(n);
  if (x < T(-1)) x = T(-1);
  if (x > T(n)) x = T(n);
  const int k = int(tex_floor(x));
  if (boundary == kTexZero && (k < 0 || k >= n)) return false;
  *i = k < 0 ? 0 : (k > n - 1 ? n - 1 : k);  // wrap: u = 1 after rounding lands on n
  return true;
}

// The texels one pixel reads: up to two levels of four taps each, with their weights and the
// weights' derivatives with respect to u and v.
template <typename T>
struct TexTaps {
  int num_levels;  // 0 (no lookup: non-finite uv), 1 or 2
  int level[2];
  T level_weight[2];
  int64_t offset[2][4];  // element offset of the texel's channel 0 in its level buffer; -1: none
  T w[2][4], dwdu[2][4], dwdv[2][4];
  bool lod_grad;  // the output depends smoothly on lod here (trilinear, lod inside the range)
  T dlod_dda[4];  // d lod / d uv_da (zero without uv_da)
};

template <typename T>
RL_HD void tex_level_quad(const TextureLevel<T>& L, int64_t tb, int64_t C, int boundary, T u, T v, int64_t* off,
                          T* w, T* dwdu, T* dwdv) {
  const TexAxis<T> ax = tex_axis_linear(u, L.width, boundary);
  const TexAxis<T> ay = tex_axis_linear(v, L.height, boundary);
  const int xs[2] = {ax.i0, ax.i1}, ys[2] = {ay.i0, ay.i1};
  const bool okx[2] = {ax.ok0, ax.ok1}, oky[2] = {ay.ok0, ay.ok1};
  const T wx[2] = {T(1) - ax.f, ax.f}, wy[2] = {T(1) - ay.f, ay.f};
  const T dwx[2] = {-ax.dfdu, ax.dfdu}, dwy[2] = {-ay.dfdu, ay.dfdu};
  const int64_t base = tb * int64_t(L.height) * L.width;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int k = 2 * a + b;
      off[k] = (oky[a] && okx[b]) ? (base + int64_t(ys[a]) * L.width + xs[b]) * C : int64_t(-1);
      w[k] = wy[a] * wx[b];
      dwdu[k] = wy[a] * dwx[b];
      dwdv[k] = dwy[a] * wx[b];
    }
}

// The levels a pixel reads and the blend fraction (weight of l1); with kGrad, whether the output
// depends smoothly on lod there and d lod / d uv_da (zero otherwise).
template <typename T, bool kGrad>
RL_HD void tex_choose_levels(const TextureFwdParams<T>& p, int64_t pix, int* l0_out, int* l1_out, T* frac_out,
                             bool* lod_grad, T* dlod_dda) {
  int l0 = 0, l1 = 0;
  T frac = T(0);
  bool grad = false;
  const bool mip = p.filter == kTexLinearMipmapNearest || p.filter == kTexLinearMipmapLinear;
  if (mip) {
    T lod = T(0);
    if (p.uv_da) {
      const T* d = p.uv_da + 4 * pix;
      const T W0 = T(p.levels[0].width), H0 = T(p.levels[0].height);
      const T sx = d[0] * W0, sy = d[1] * W0, tx = d[2] * H0, ty = d[3] * H0;
      const T A = sx * sx + tx * tx, B = sy * sy + ty * ty, Cc = sx * sy + tx * ty;
      const T hd = T(0.5) * (A - B);
      const T r = tex_sqrt(hd * hd + Cc * Cc);
      const T M = T(0.5) * (A + B) + r;  // largest eigenvalue of J^T J
      lod = T(0.5) * tex_log2(M);        // -inf for M = 0, NaN for NaN input: clamped below
      if (kGrad) {
        const T k = T(0.72134752044448170368) / M;  // d lod / d M = 1 / (2 ln 2 M)
        const T dA = r > T(0) ? T(0.5) + T(0.5) * hd / r : T(0.5);
        const T dB = r > T(0) ? T(0.5) - T(0.5) * hd / r : T(0.5);
        const T dC = r > T(0) ? Cc / r : T(0);
        dlod_dda[0] = k * W0 * (dA * T(2) * sx + dC * sy);
        dlod_dda[1] = k * W0 * (dB * T(2) * sy + dC * sx);
        dlod_dda[2] = k * H0 * (dA * T(2) * tx + dC * ty);
        dlod_dda[3] = k * H0 * (dB * T(2) * ty + dC * tx);
      }
    }
    if (p.bias) lod += p.bias[pix];
    const T max_lod = T(p.num_levels - 1);
    const bool inside = lod > T(0) && lod < max_lod;  // false for NaN
    if (!(lod > T(0))) lod = T(0);
    if (lod > max_lod) lod = max_lod;
    l0 = int(tex_floor(lod));
    if (p.filter == kTexLinearMipmapLinear) {
      l1 = l0 + 1 < p.num_levels ? l0 + 1 : l0;
      frac = lod - T(l0);
      grad = inside;
      if (kGrad)
        for (int j = 0; j < 4; ++j) grad = grad && tex_finite(dlod_dda[j]);
    } else {
      l1 = l0;
    }
  }
  if (kGrad) {
    *lod_grad = grad;
    if (!grad)
      for (int j = 0; j < 4; ++j) dlod_dda[j] = T(0);
  }
  *l0_out = l0;
  *l1_out = l1;
  *frac_out = frac;
}

template <typename T>
RL_HD void tex_pixel_taps(const TextureFwdParams<T>& p, int64_t pix, TexTaps<T>* t) {
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t tb = p.tex_batch == 1 ? 0 : pix / npix;
  const T u = p.uv[2 * pix], v = p.uv[2 * pix + 1];
  t->num_levels = 0;
  t->lod_grad = false;
  for (int j = 0; j < 4; ++j) t->dlod_dda[j] = T(0);
  if (!tex_finite(u) || !tex_finite(v)) return;  // documented: output 0, zero gradients

  if (p.filter == kTexNearest) {
    const TextureLevel<T>& L = p.levels[0];
    int ix = 0, iy = 0;
    const bool ok = tex_axis_nearest(u, L.width, p.boundary, &ix) && tex_axis_nearest(v, L.height, p.boundary, &iy);
    t->num_levels = 1;
    t->level[0] = 0;
    t->level_weight[0] = T(1);
    for (int k = 0; k < 4; ++k) {
      t->offset[0][k] = -1;
      t->w[0][k] = t->dwdu[0][k] = t->dwdv[0][k] = T(0);
    }
    if (ok) {
      t->offset[0][0] = (tb * int64_t(L.height) * L.width + int64_t(iy) * L.width + ix) * p.channels;
      t->w[0][0] = T(1);
    }
    return;
  }

  int l0 = 0, l1 = 0;
  T frac = T(0);
  tex_choose_levels<T, true>(p, pix, &l0, &l1, &frac, &t->lod_grad, t->dlod_dda);

  t->num_levels = p.filter == kTexLinearMipmapLinear ? 2 : 1;
  t->level[0] = l0;
  t->level[1] = l1;
  t->level_weight[0] = T(1) - frac;
  t->level_weight[1] = frac;
  for (int s = 0; s < t->num_levels; ++s)
    tex_level_quad(p.levels[t->level[s]], tb, p.channels, p.boundary, u, v, t->offset[s], t->w[s], t->dwdu[s],
                   t->dwdv[s]);
}

// Adds weight * (bilinear lookup of level L at (u, v)) to out[C]. kC > 0: C known at compile
// time (the common 1, 2, 3, 4 channels), so the loops unroll and out stays in registers.
template <typename T, int kC>
RL_HD void tex_sample_add(const TextureLevel<T>& L, int64_t tb, int64_t C_rt, int boundary, T u, T v, T weight,
                          T* out) {
  const int64_t C = kC > 0 ? int64_t(kC) : C_rt;
  const TexAxis<T> ax = tex_axis_linear(u, L.width, boundary);
  const TexAxis<T> ay = tex_axis_linear(v, L.height, boundary);
  const T* base = L.data + tb * int64_t(L.height) * L.width * C;
  const int64_t r0 = int64_t(ay.i0) * L.width, r1 = int64_t(ay.i1) * L.width;
  const T wy0 = weight * (T(1) - ay.f), wy1 = weight * ay.f;
  const T wx0 = T(1) - ax.f, wx1 = ax.f;
  if (ax.ok0 && ax.ok1 && ay.ok0 && ay.ok1) {
    const T* t00 = base + (r0 + ax.i0) * C;
    const T* t01 = base + (r0 + ax.i1) * C;
    const T* t10 = base + (r1 + ax.i0) * C;
    const T* t11 = base + (r1 + ax.i1) * C;
    for (int64_t c = 0; c < C; ++c)
      out[c] += wy0 * (wx0 * t00[c] + wx1 * t01[c]) + wy1 * (wx0 * t10[c] + wx1 * t11[c]);
    return;
  }
  const int64_t rows[2] = {r0, r1};
  const int xs[2] = {ax.i0, ax.i1};
  const bool okx[2] = {ax.ok0, ax.ok1}, oky[2] = {ay.ok0, ay.ok1};
  const T wy[2] = {wy0, wy1}, wx[2] = {wx0, wx1};
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      if (!oky[a] || !okx[b]) continue;
      const T* texel = base + (rows[a] + xs[b]) * C;
      const T w = wy[a] * wx[b];
      for (int64_t c = 0; c < C; ++c) out[c] += w * texel[c];
    }
}

template <typename T, int kC>
RL_HD void texture_pixel_c(const TextureFwdParams<T>& p, int64_t pix, T* out) {
  const int64_t C = kC > 0 ? int64_t(kC) : p.channels;
  T local[kC > 0 ? kC : 1];
  T* acc = kC > 0 ? local : out;  // accumulate in registers when C is known
  for (int64_t c = 0; c < C; ++c) acc[c] = T(0);
  const T u = p.uv[2 * pix], v = p.uv[2 * pix + 1];
  if (tex_finite(u) && tex_finite(v)) {  // else (documented) output 0
    const int64_t tb = p.tex_batch == 1 ? 0 : pix / (int64_t(p.height) * p.width);
    if (p.filter == kTexNearest) {
      const TextureLevel<T>& L = p.levels[0];
      int ix = 0, iy = 0;
      if (tex_axis_nearest(u, L.width, p.boundary, &ix) && tex_axis_nearest(v, L.height, p.boundary, &iy)) {
        const T* texel = L.data + (tb * int64_t(L.height) * L.width + int64_t(iy) * L.width + ix) * C;
        for (int64_t c = 0; c < C; ++c) acc[c] = texel[c];
      }
    } else {
      int l0 = 0, l1 = 0;
      T frac = T(0);
      tex_choose_levels<T, false>(p, pix, &l0, &l1, &frac, nullptr, nullptr);
      tex_sample_add<T, kC>(p.levels[l0], tb, C, p.boundary, u, v, T(1) - frac, acc);
      if (frac > T(0)) tex_sample_add<T, kC>(p.levels[l1], tb, C, p.boundary, u, v, frac, acc);
    }
  }
  if (kC > 0)
    for (int64_t c = 0; c < C; ++c) out[c] = acc[c];
}

template <typename T>
RL_HD void texture_pixel(const TextureFwdParams<T>& p, int64_t pix, T* out) {
  switch (p.channels) {
    case 1: texture_pixel_c<T, 1>(p, pix, out); break;
    case 2: texture_pixel_c<T, 2>(p, pix, out); break;
    case 3: texture_pixel_c<T, 3>(p, pix, out); break;
    case 4: texture_pixel_c<T, 4>(p, pix, out); break;
    default: texture_pixel_c<T, 0>(p, pix, out);
  }
}

// Per-pixel backward: gradients with respect to uv, uv_da and the bias (one writer per pixel).
// The texel gradients are scattered separately (tex_pixel_scatter).
template <typename T>
RL_HD void texture_pixel_backward(const TextureBwdParams<T>& q, int64_t pix, const TexTaps<T>& t) {
  const TextureFwdParams<T>& p = q.fwd;
  const int64_t C = p.channels;
  const T* g = q.grad_out + pix * C;
  T gu = T(0), gv = T(0), glod = T(0);
  for (int s = 0; s < t.num_levels; ++s) {
    const T* tex = p.levels[t.level[s]].data;
    T su = T(0), sv = T(0), val = T(0);
    for (int k = 0; k < 4; ++k) {
      if (t.offset[s][k] < 0) continue;
      const T* texel = tex + t.offset[s][k];
      T gt = T(0);
      for (int64_t c = 0; c < C; ++c) gt += g[c] * texel[c];
      su += t.dwdu[s][k] * gt;
      sv += t.dwdv[s][k] * gt;
      val += t.w[s][k] * gt;
    }
    gu += t.level_weight[s] * su;
    gv += t.level_weight[s] * sv;
    glod += s == 0 ? -val : val;  // d out / d frac = S1 - S0
  }
  if (!t.lod_grad) glod = T(0);
  q.grad_uv[2 * pix] = gu;
  q.grad_uv[2 * pix + 1] = gv;
  if (q.grad_uv_da)
    for (int j = 0; j < 4; ++j) q.grad_uv_da[4 * pix + j] = glod * t.dlod_dda[j];
  if (q.grad_bias) q.grad_bias[pix] = glod;
}

// Texel half of the backward: adds pixel `pix`'s output gradient, times each tap's weight, to the
// texels its taps read (levels of q.grad_levels). Many pixels share texels: see scatter_add.
template <typename T>
RL_HD void tex_pixel_scatter(const TextureBwdParams<T>& q, int64_t pix, const TexTaps<T>& t) {
  const int64_t C = q.fwd.channels;
  const T* g = q.grad_out + pix * C;
  for (int s = 0; s < t.num_levels; ++s) {
    T* gl = q.grad_levels[t.level[s]];
    for (int k = 0; k < 4; ++k) {
      if (t.offset[s][k] < 0) continue;
      const T wk = t.level_weight[s] * t.w[s][k];
      if (wk == T(0)) continue;
      T* dst = gl + t.offset[s][k];
      for (int64_t c = 0; c < C; ++c) scatter_add(dst + c, wk * g[c]);
    }
  }
}

template <typename T>
int texture_fwd_cpu(const TextureFwdParams<T>& p);
template <typename T>
int texture_bwd_cpu(const TextureBwdParams<T>& p);

struct CudaWorkspace;  // cuda_common.cuh
template <typename T>
int texture_fwd_cuda(const TextureFwdParams<T>& p, const CudaWorkspace& ws);
template <typename T>
int texture_bwd_cuda(const TextureBwdParams<T>& p, const CudaWorkspace& ws);

}  // namespace rastlit
