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
//
// Cube maps (boundary kTexCube): see the "cube maps" section below for face selection, face-local
// coordinates, seams and the corner rule; the level of detail is the same rule applied to the
// Jacobian of the face-local coordinates.
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
  kTexCube = 3,  // cube map: levels are [tex_batch, 6, size, size, channels], uv holds 3D directions
};

// Level 0 (the texture) plus at most 15 reduced levels: a full pyramid of a 32768-texel side.
constexpr int kMaxTextureLevels = 16;

// Buffer layouts by boundary mode, for the bindings (torch ops and XLA FFI handlers) that fill
// the params: a level is [TB, Ht, Wt, C] (cube: [TB, 6, S, S, C], the face before the rows), uv
// [B,H,W,2] (cube: 3) and uv_da [B,H,W,4] (cube: 6).
constexpr int tex_level_rank(int boundary) { return boundary == kTexCube ? 5 : 4; }
constexpr int tex_row_dim(int boundary) { return boundary == kTexCube ? 2 : 1; }  // rows; columns follow
constexpr int tex_uv_width(int boundary) { return boundary == kTexCube ? 3 : 2; }
constexpr int tex_uv_da_width(int boundary) { return boundary == kTexCube ? 6 : 4; }

template <typename T>
struct TextureLevel {
  const T* data;  // [tex_batch, height, width, channels] (cube: [tex_batch, 6, height, width, channels])
  int height, width;
};

template <typename T>
struct TextureFwdParams {
  TextureLevel<T> levels[kMaxTextureLevels];  // levels[0] is the texture
  int num_levels;                             // 1 + number of mip levels given
  int64_t tex_batch;                          // 1 (shared by all views) or num_views
  int64_t channels;
  const T* uv;     // [B,H,W,2] (cube: [B,H,W,3] directions)
  const T* uv_da;  // [B,H,W,4] or null (cube: [B,H,W,6])
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
  T* grad_uv;                         // [B,H,W,2] (cube: 3)
  T* grad_uv_da;                      // [B,H,W,4] or null (cube: 6)
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
  T dlod_dda[6];  // d lod / d uv_da (zero without uv_da); 4 used in 2D, 6 for cube maps
  // Cube maps only: d s / d dir and d t / d dir (face-local coordinates against the direction) and
  // d lod / d dir (the footprint depends on the direction too).
  T ds_dir[3], dt_dir[3], dlod_dir[3];
};

// Nearest filtering's taps: one texel of level 0 at `offset` with weight 1 (-1: none, weight 0).
template <typename T>
RL_HD void tex_taps_nearest(TexTaps<T>* t, int64_t offset) {
  t->num_levels = 1;
  t->level[0] = 0;
  t->level_weight[0] = T(1);
  for (int k = 0; k < 4; ++k) {
    t->offset[0][k] = -1;
    t->w[0][k] = t->dwdu[0][k] = t->dwdv[0][k] = T(0);
  }
  t->offset[0][0] = offset;
  t->w[0][0] = offset >= 0 ? T(1) : T(0);
}

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
// `d` is the pixel Jacobian (du/dX, du/dY, dv/dX, dv/dY) of the level-0 coordinates in [0, 1]
// units (null: no derivatives, lod = bias alone); dlod_dda receives d lod / d d.
template <typename T, bool kGrad>
RL_HD void tex_choose_levels_j(const TextureFwdParams<T>& p, int64_t pix, const T* d, int* l0_out, int* l1_out,
                               T* frac_out, bool* lod_grad, T* dlod_dda) {
  int l0 = 0, l1 = 0;
  T frac = T(0);
  bool grad = false;
  const bool mip = p.filter == kTexLinearMipmapNearest || p.filter == kTexLinearMipmapLinear;
  if (mip) {
    T lod = T(0);
    if (d) {
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

template <typename T, bool kGrad>
RL_HD void tex_choose_levels(const TextureFwdParams<T>& p, int64_t pix, int* l0_out, int* l1_out, T* frac_out,
                             bool* lod_grad, T* dlod_dda) {
  tex_choose_levels_j<T, kGrad>(p, pix, p.uv_da ? p.uv_da + 4 * pix : nullptr, l0_out, l1_out, frac_out, lod_grad,
                                dlod_dda);
}

// ------------------------------------------------------------------------------- cube maps
//
// Conventions (nvdiffrast's, which are OpenGL's): faces in the order +x, -x, +y, -y, +z, -z. A
// direction d selects the face of its major axis: z if |z| > max(|x|, |y|), else y if |y| > |x|,
// else x (ties go to the later test: x before y before z), the sign of that component choosing + or
// -. With c the major component and (a, b) the components below, the face-local coordinates are
// s = 0.5 + 0.5 * sa * a / |c| and t = 0.5 + 0.5 * sb * b / |c|, in [0, 1]:
//   face  major  a (s)  b (t)            face  major  a (s)  b (t)
//   +x    x      -z     -y               -y    y      +x     -z
//   -x    x      +z     -y               +z    z      +x     -y
//   +y    y      +x     +z               -z    z      -x     -y
// s runs along a face's width (columns) and t along its height (rows); texel (i, j) of an n x n
// face is centred at ((j + 0.5) / n, (i + 0.5) / n), as in 2D. Bilinear lookups are seamless: a tap
// one texel beyond a face edge reads the neighbouring face's texel that touches that edge at the
// same place along it (the face folded over the cube edge). At a cube corner the one tap outside
// both edges of its face has no texel: it takes the average of the other three taps (nvdiffrast's
// rule), i.e. its weight is shared equally among them. A direction that is zero or has a NaN or
// infinite component gives output 0 and zero gradients.

struct CubeFaceFrame {
  int major, axis_s, axis_t;  // component index of the major axis and of a (for s), b (for t)
  int sign_major, sign_s, sign_t;
};

RL_HD CubeFaceFrame cube_face_frame(int face) {
  CubeFaceFrame f;
  f.sign_major = (face & 1) ? -1 : 1;
  switch (face >> 1) {
    case 0:  // x faces: s along -+z, t along -y
      f.major = 0; f.axis_s = 2; f.axis_t = 1;
      f.sign_s = (face & 1) ? 1 : -1; f.sign_t = -1;
      break;
    case 1:  // y faces: s along +x, t along +-z
      f.major = 1; f.axis_s = 0; f.axis_t = 2;
      f.sign_s = 1; f.sign_t = (face & 1) ? -1 : 1;
      break;
    default:  // z faces: s along +-x, t along -y
      f.major = 2; f.axis_s = 0; f.axis_t = 1;
      f.sign_s = (face & 1) ? -1 : 1; f.sign_t = -1;
  }
  return f;
}

template <typename T>
RL_HD T tex_abs(T x) {
  return x < T(0) ? -x : x;
}

// The face a direction selects (-1 when it is zero or not finite).
template <typename T>
RL_HD int cube_select_face(const T* d) {
  if (!tex_finite(d[0]) || !tex_finite(d[1]) || !tex_finite(d[2])) return -1;
  const T ax = tex_abs(d[0]), ay = tex_abs(d[1]), az = tex_abs(d[2]);
  int face;
  T c;
  if (az > (ax > ay ? ax : ay)) {
    face = 4;
    c = d[2];
  } else if (ay > ax) {
    face = 2;
    c = d[1];
  } else {
    face = 0;
    c = d[0];
  }
  if (c == T(0)) return -1;  // the zero vector
  return c < T(0) ? face + 1 : face;
}

// Element offset (channel 0) of texel (i, j) of `face` in a cube level, where at most one of i, j
// may be one step outside [0, n - 1]: such a texel is read from the neighbouring face. -1 when both
// are outside (the corner tap, which has no texel). Integer math, always in bounds.
template <typename T>
RL_HD int64_t cube_texel_offset(const TextureLevel<T>& L, int64_t tb, int64_t C, int face, int i, int j) {
  const int n = L.width;
  const bool iout = i < 0 || i >= n, jout = j < 0 || j >= n;
  if (iout && jout) return -1;
  if (iout || jout) {
    // Texel centres on the cube [-n, n]^3 (scaled by n): the face plane at n along the major axis,
    // the centres at odd offsets 2k + 1 - n along s and t. The tap beyond an edge sits at n + 1
    // along that axis; folding it over the edge puts it at n on that axis (which becomes the new
    // face's major axis) and n - 1 along the old major axis: the edge texel of the neighbour.
    const CubeFaceFrame f = cube_face_frame(face);
    int q[3];
    q[f.major] = f.sign_major * n;
    q[f.axis_s] = f.sign_s * (2 * j + 1 - n);
    q[f.axis_t] = f.sign_t * (2 * i + 1 - n);
    const int k = jout ? f.axis_s : f.axis_t;
    const int sk = q[k] < 0 ? -1 : 1;
    q[k] = sk * n;
    q[f.major] = f.sign_major * (n - 1);
    face = 2 * k + (sk < 0 ? 1 : 0);
    const CubeFaceFrame g = cube_face_frame(face);
    j = (g.sign_s * q[g.axis_s] + n - 1) / 2;
    i = (g.sign_t * q[g.axis_t] + n - 1) / 2;
    j = j < 0 ? 0 : (j > n - 1 ? n - 1 : j);  // exact already; kept bounds-safe regardless
    i = i < 0 ? 0 : (i > n - 1 ? n - 1 : i);
  }
  return (((tb * 6 + face) * int64_t(n) + i) * n + j) * C;
}

// Four taps of a seamless bilinear lookup at (s, t) on `face` of level L: offsets (-1: none),
// weights and their derivatives with respect to s and t, with the corner rule applied.
template <typename T>
RL_HD void cube_level_quad(const TextureLevel<T>& L, int64_t tb, int64_t C, int face, T s, T t, int64_t* off, T* w,
                           T* dwds, T* dwdt) {
  const int n = L.width;
  const T x = s * T(n) - T(0.5), y = t * T(n) - T(0.5);  // in [-0.5, n - 0.5]
  const T x0 = tex_floor(x), y0 = tex_floor(y);
  const T fx = x - x0, fy = y - y0;
  int j0 = int(x0), i0 = int(y0);
  j0 = j0 < -1 ? -1 : (j0 > n - 1 ? n - 1 : j0);
  i0 = i0 < -1 ? -1 : (i0 > n - 1 ? n - 1 : i0);
  const T wx[2] = {T(1) - fx, fx}, wy[2] = {T(1) - fy, fy};
  const T dwx[2] = {-T(n), T(n)}, dwy[2] = {-T(n), T(n)};
  int missing = -1;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      const int k = 2 * a + b;
      off[k] = cube_texel_offset(L, tb, C, face, i0 + a, j0 + b);
      if (off[k] < 0) missing = k;
      w[k] = wy[a] * wx[b];
      dwds[k] = wy[a] * dwx[b];
      dwdt[k] = dwy[a] * wx[b];
    }
  if (missing >= 0) {  // corner: the missing texel is the mean of the other three
    const T third = T(1) / T(3);
    const T wm = w[missing] * third, dsm = dwds[missing] * third, dtm = dwdt[missing] * third;
    for (int k = 0; k < 4; ++k) {
      if (k == missing) {
        w[k] = dwds[k] = dwdt[k] = T(0);
      } else {
        w[k] += wm;
        dwds[k] += dsm;
        dwdt[k] += dtm;
      }
    }
  }
}

// Face-local (s, t) of direction d on `face`, with their gradients with respect to d (kGrad).
template <typename T, bool kGrad>
RL_HD void cube_face_coords(const T* d, int face, T* s, T* t, T* ds_dir, T* dt_dir) {
  const CubeFaceFrame f = cube_face_frame(face);
  const T c = d[f.major], a = d[f.axis_s], b = d[f.axis_t];
  // |c| = sign_major * c on the selected face
  const T ks = T(0.5) * T(f.sign_s * f.sign_major), kt = T(0.5) * T(f.sign_t * f.sign_major);
  T ss = T(0.5) + ks * (a / c), tt = T(0.5) + kt * (b / c);
  *s = ss < T(0) ? T(0) : (ss > T(1) ? T(1) : ss);  // rounding only: |a|, |b| <= |c|
  *t = tt < T(0) ? T(0) : (tt > T(1) ? T(1) : tt);
  if (kGrad) {
    const T ic = T(1) / c;
    for (int k = 0; k < 3; ++k) ds_dir[k] = dt_dir[k] = T(0);
    ds_dir[f.axis_s] = ks * ic;
    ds_dir[f.major] = -ks * a * ic * ic;
    dt_dir[f.axis_t] = kt * ic;
    dt_dir[f.major] = -kt * b * ic * ic;
  }
}

// The taps of one pixel of a cube-map lookup (all filter modes). With kGrad, also the derivative
// data the backward needs (ds_dir, dt_dir, dlod_dir, dlod_dda, lod_grad).
template <typename T, bool kGrad>
RL_HD void tex_cube_taps(const TextureFwdParams<T>& p, int64_t pix, TexTaps<T>* t) {
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t tb = p.tex_batch == 1 ? 0 : pix / npix;
  const T* d = p.uv + 3 * pix;
  t->num_levels = 0;
  t->lod_grad = false;
  if (kGrad) {
    for (int j = 0; j < 6; ++j) t->dlod_dda[j] = T(0);
    for (int k = 0; k < 3; ++k) t->ds_dir[k] = t->dt_dir[k] = t->dlod_dir[k] = T(0);
  }
  const int face = cube_select_face(d);
  if (face < 0) return;  // documented: output 0, zero gradients
  T s, tc;
  T ds_dir[3], dt_dir[3];
  cube_face_coords<T, true>(d, face, &s, &tc, ds_dir, dt_dir);

  if (p.filter == kTexNearest) {
    const TextureLevel<T>& L = p.levels[0];
    const int n = L.width;
    int j = int(tex_floor(s * T(n))), i = int(tex_floor(tc * T(n)));
    j = j < 0 ? 0 : (j > n - 1 ? n - 1 : j);
    i = i < 0 ? 0 : (i > n - 1 ? n - 1 : i);
    tex_taps_nearest(t, cube_texel_offset(L, tb, p.channels, face, i, j));
    return;
  }

  // Footprint: the pixel Jacobian of (s, t) is (ds/d dir, dt/d dir) times d dir / d(X, Y).
  T jac[4];
  const T* da = p.uv_da ? p.uv_da + 6 * pix : nullptr;
  if (da) {
    T sX = T(0), sY = T(0), tX = T(0), tY = T(0);
    for (int k = 0; k < 3; ++k) {
      sX += ds_dir[k] * da[2 * k];
      sY += ds_dir[k] * da[2 * k + 1];
      tX += dt_dir[k] * da[2 * k];
      tY += dt_dir[k] * da[2 * k + 1];
    }
    jac[0] = sX;
    jac[1] = sY;
    jac[2] = tX;
    jac[3] = tY;
  }
  int l0 = 0, l1 = 0;
  T frac = T(0);
  bool lod_grad = false;
  T dlod_dj[4] = {T(0), T(0), T(0), T(0)};
  tex_choose_levels_j<T, kGrad>(p, pix, da ? jac : nullptr, &l0, &l1, &frac, &lod_grad, dlod_dj);

  if (kGrad) {
    for (int k = 0; k < 3; ++k) {
      t->ds_dir[k] = ds_dir[k];
      t->dt_dir[k] = dt_dir[k];
    }
    if (lod_grad && da) {
      // d lod / d uv_da: uv_da[2k] = d dir_k / dX, uv_da[2k + 1] = d dir_k / dY.
      for (int k = 0; k < 3; ++k) {
        t->dlod_dda[2 * k] = dlod_dj[0] * ds_dir[k] + dlod_dj[2] * dt_dir[k];
        t->dlod_dda[2 * k + 1] = dlod_dj[1] * ds_dir[k] + dlod_dj[3] * dt_dir[k];
      }
      // d lod / d dir through the Jacobian's dependence on the direction: with s = 0.5 + ks a / c,
      // d2s/(da dc) = -ks / c^2 and d2s/dc2 = 2 ks a / c^3 (likewise t with kt, b).
      const CubeFaceFrame f = cube_face_frame(face);
      const T c = d[f.major], a = d[f.axis_s], b = d[f.axis_t];
      const T ks = T(0.5) * T(f.sign_s * f.sign_major), kt = T(0.5) * T(f.sign_t * f.sign_major);
      const T ic = T(1) / c, ic2 = ic * ic, ic3 = ic2 * ic;
      const T daX[3] = {da[0], da[2], da[4]}, daY[3] = {da[1], da[3], da[5]};
      // g = sum over the Jacobian entries of d lod / d entry times the second derivative
      // contracted with the matching uv_da column.
      const T gs_a = -ks * ic2 * (dlod_dj[0] * daX[f.major] + dlod_dj[1] * daY[f.major]);
      const T gs_c = -ks * ic2 * (dlod_dj[0] * daX[f.axis_s] + dlod_dj[1] * daY[f.axis_s]) +
                     T(2) * ks * a * ic3 * (dlod_dj[0] * daX[f.major] + dlod_dj[1] * daY[f.major]);
      const T gt_b = -kt * ic2 * (dlod_dj[2] * daX[f.major] + dlod_dj[3] * daY[f.major]);
      const T gt_c = -kt * ic2 * (dlod_dj[2] * daX[f.axis_t] + dlod_dj[3] * daY[f.axis_t]) +
                     T(2) * kt * b * ic3 * (dlod_dj[2] * daX[f.major] + dlod_dj[3] * daY[f.major]);
      t->dlod_dir[f.axis_s] = gs_a;
      t->dlod_dir[f.axis_t] = gt_b;
      t->dlod_dir[f.major] = gs_c + gt_c;
      bool finite = true;
      for (int j = 0; j < 6; ++j) finite = finite && tex_finite(t->dlod_dda[j]);
      for (int k = 0; k < 3; ++k) finite = finite && tex_finite(t->dlod_dir[k]);
      if (!finite) {  // huge footprints on tiny directions: no lod gradient, as where lod is clamped
        lod_grad = false;
        for (int j = 0; j < 6; ++j) t->dlod_dda[j] = T(0);
        for (int k = 0; k < 3; ++k) t->dlod_dir[k] = T(0);
      }
    }
    t->lod_grad = lod_grad;
  }

  t->num_levels = p.filter == kTexLinearMipmapLinear ? 2 : 1;
  t->level[0] = l0;
  t->level[1] = l1;
  t->level_weight[0] = T(1) - frac;
  t->level_weight[1] = frac;
  for (int lv = 0; lv < t->num_levels; ++lv)
    cube_level_quad(p.levels[t->level[lv]], tb, p.channels, face, s, tc, t->offset[lv], t->w[lv], t->dwdu[lv],
                    t->dwdv[lv]);
}

// Cube-map forward of one pixel: out[C] from the taps.
template <typename T>
RL_HD void texture_pixel_cube(const TextureFwdParams<T>& p, int64_t pix, T* out) {
  const int64_t C = p.channels;
  for (int64_t c = 0; c < C; ++c) out[c] = T(0);
  TexTaps<T> t;
  tex_cube_taps<T, false>(p, pix, &t);
  for (int lv = 0; lv < t.num_levels; ++lv) {
    const T lw = t.level_weight[lv];
    if (lv > 0 && lw == T(0)) continue;
    const T* tex = p.levels[t.level[lv]].data;
    for (int k = 0; k < 4; ++k) {
      if (t.offset[lv][k] < 0) continue;
      const T wk = lw * t.w[lv][k];
      const T* texel = tex + t.offset[lv][k];
      for (int64_t c = 0; c < C; ++c) out[c] += wk * texel[c];
    }
  }
}

// The upstream gradient g[C] through the taps: d out / d (the level-0 lookup coordinates, u and v
// or a cube face's s and t), and d out / d lod (zero where the output does not depend smoothly on
// it), shared by the 2D and cube-map backward.
template <typename T>
RL_HD void tex_tap_coordinate_grads(const TextureFwdParams<T>& p, const T* g, const TexTaps<T>& t, T* gu_out,
                                    T* gv_out, T* glod_out) {
  const int64_t C = p.channels;
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
  *gu_out = gu;
  *gv_out = gv;
  *glod_out = t.lod_grad ? glod : T(0);
}

// Cube-map per-pixel backward: gradients with respect to the direction, uv_da and the bias.
template <typename T>
RL_HD void texture_pixel_backward_cube(const TextureBwdParams<T>& q, int64_t pix, const TexTaps<T>& t) {
  const TextureFwdParams<T>& p = q.fwd;
  T gs, gt, glod;
  tex_tap_coordinate_grads(p, q.grad_out + pix * p.channels, t, &gs, &gt, &glod);
  T gd[3];
  bool finite = true;
  for (int k = 0; k < 3; ++k) {
    gd[k] = gs * t.ds_dir[k] + gt * t.dt_dir[k] + glod * t.dlod_dir[k];
    finite = finite && tex_finite(gd[k]);
  }
  for (int k = 0; k < 3; ++k) q.grad_uv[3 * pix + k] = finite ? gd[k] : T(0);
  if (q.grad_uv_da)
    for (int j = 0; j < 6; ++j) q.grad_uv_da[6 * pix + j] = glod * t.dlod_dda[j];
  if (q.grad_bias) q.grad_bias[pix] = glod;
}

template <typename T>
RL_HD void tex_pixel_taps(const TextureFwdParams<T>& p, int64_t pix, TexTaps<T>* t) {
  if (p.boundary == kTexCube) {
    tex_cube_taps<T, true>(p, pix, t);
    return;
  }
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
    tex_taps_nearest(t, ok ? (tb * int64_t(L.height) * L.width + int64_t(iy) * L.width + ix) * p.channels : -1);
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
  if (p.boundary == kTexCube) {
    texture_pixel_cube(p, pix, out);
    return;
  }
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
  if (q.fwd.boundary == kTexCube) {
    texture_pixel_backward_cube(q, pix, t);
    return;
  }
  const TextureFwdParams<T>& p = q.fwd;
  T gu, gv, glod;
  tex_tap_coordinate_grads(p, q.grad_out + pix * p.channels, t, &gu, &gv, &glod);
  q.grad_uv[2 * pix] = gu;
  q.grad_uv[2 * pix + 1] = gv;
  if (q.grad_uv_da)
    for (int j = 0; j < 4; ++j) q.grad_uv_da[4 * pix + j] = glod * t.dlod_dda[j];
  if (q.grad_bias) q.grad_bias[pix] = glod;
}

// The weight with which tap k of level slot s passes the output gradient on to its texel.
template <typename T>
RL_HD T tex_scatter_weight(const TexTaps<T>& t, int s, int k) {
  return t.level_weight[s] * t.w[s][k];
}

// Texel half of the backward: adds pixel `pix`'s output gradient, times each tap's weight, to the
// texels its taps read (levels of q.grad_levels). Many pixels share texels: see scatter_add. (The
// CPU backward schedules the same adds itself, in the same order per texel: texture_cpu.cpp.)
template <typename T>
RL_HD void tex_pixel_scatter(const TextureBwdParams<T>& q, int64_t pix, const TexTaps<T>& t) {
  const int64_t C = q.fwd.channels;
  const T* g = q.grad_out + pix * C;
  for (int s = 0; s < t.num_levels; ++s) {
    T* gl = q.grad_levels[t.level[s]];
    for (int k = 0; k < 4; ++k) {
      if (t.offset[s][k] < 0) continue;
      const T wk = tex_scatter_weight(t, s, k);
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
