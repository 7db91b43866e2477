// Soft rasterization (SoftRas / PyTorch3D style): the math shared by the CPU and CUDA kernels.
//
// For every pixel centre p (NDC) and every triangle whose projected (x/w, y/w) triangle either
// contains p or lies within squared distance blur_radius of it, a "sample" is formed:
//   lambda_i  screen-space barycentrics of p (affine in NDC; may be negative outside),
//   inside    all lambda_i > 0 (strict, as PyTorch3D),
//   dist      squared euclidean NDC distance from p to the triangle's boundary, negated inside,
//   z         z/w at p. Without clipping: sum_i lambda_i z_i/w_i (the depth plane, extrapolated
//             outside the triangle). With clip_barycentric_coords: sum_i c_i z_i/w_i with the
//             clipped screen-space barycentrics c = clip(lambda) (see clip_bary3), i.e. the depth
//             of a point OF the triangle (z/w is affine in screen space over the triangle), as
//             PyTorch3D's pz with clipped barycentrics. Inside the triangle c = lambda.
//   bary      perspective-correct barycentrics (lambda_i / w_i) / sum_j (lambda_j / w_j), or
//             lambda itself when perspective_correct is false; then clip()ped when
//             clip_barycentric_coords is set.
// A sample is kept when inside || dist < blur_radius (PyTorch3D rejects dist >= blur_radius),
// -1 <= z <= 1 (near/far planes, per pixel, with the same z as the ordering), and
// sum_j lambda_j / w_j > 0 (the pixel ray meets the triangle's plane in front of the camera).
// Per pixel the K nearest samples by z are kept, exact z ties to the lower triangle id.
//
// Triangles with a vertex at w <= 0 (at or behind the camera plane), a non-finite coordinate
// or zero projected area (below 1e-30 pixel) produce no samples (documented: they are skipped,
// not clipped).
//
// Everything is evaluated in double whatever the input type, in a frame translated so the pixel
// sits at the origin (small numbers, little cancellation for small triangles).
#pragma once

#include "../common.h"

namespace rastlit {

constexpr int kSoftTileSize = 16;         // pixels per side of a binning tile
constexpr int kMaxFacesPerPixel = 128;    // largest faces_per_pixel (K) accepted

// Per (view, triangle) setup: projected vertices, inverse w, and the expanded pixel box.
struct SoftTriangle {
  double X[3], Y[3], Z[3];  // x/w, y/w, z/w
  double iw[3];             // 1/w
  double inv_l2[3];         // 1 / squared length of edge (i, i+1), 0 for a (near-)degenerate edge
  int x0, y0, x1, y1;       // inclusive pixel box (bbox grown by sqrt(blur_radius)), clamped
};

// Returns false when the triangle yields no sample anywhere in the image.
template <typename T>
RL_HD bool soft_setup(const T* v0, const T* v1, const T* v2, double blur_radius, int height, int width,
                      SoftTriangle* s) {
  const T* v[3] = {v0, v1, v2};
  for (int i = 0; i < 3; ++i) {
    if (!all_finite4(v[i])) return false;
    const double w = double(v[i][3]);
    if (!(w > 0.0)) return false;
    const double iw = 1.0 / w;
    s->iw[i] = iw;
    s->X[i] = double(v[i][0]) * iw;
    s->Y[i] = double(v[i][1]) * iw;
    s->Z[i] = double(v[i][2]) * iw;
    if (!std::isfinite(s->X[i]) || !std::isfinite(s->Y[i]) || !std::isfinite(s->Z[i])) return false;
  }
  const double area = (s->X[1] - s->X[0]) * (s->Y[2] - s->Y[0]) - (s->Y[1] - s->Y[0]) * (s->X[2] - s->X[0]);
  // Zero area, or so little (< 1e-30 pixel) that the derivatives of the barycentrics (~ 1 / area)
  // overflow float32: no sample (found by fuzzing: a denormal-thin sliver gave inf gradients).
  if (!(std::fabs(area) * (0.25 * double(width) * double(height)) >= 1e-30) || !std::isfinite(area)) return false;
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3;
    const double dx = s->X[j] - s->X[i], dy = s->Y[j] - s->Y[i], l2 = dx * dx + dy * dy;
    s->inv_l2[i] = l2 > 1e-290 ? 1.0 / l2 : 0.0;  // (no overflow to inf for subnormal lengths)
  }
  const double r = sqrt(blur_radius);
  double xmin = s->X[0], xmax = s->X[0], ymin = s->Y[0], ymax = s->Y[0];
  for (int i = 1; i < 3; ++i) {
    xmin = fmin(xmin, s->X[i]);
    xmax = fmax(xmax, s->X[i]);
    ymin = fmin(ymin, s->Y[i]);
    ymax = fmax(ymax, s->Y[i]);
  }
  // Pixel j has its centre at X = (2j + 1) / W - 1, i.e. j = (X + 1) W / 2 - 1/2; a small margin
  // absorbs rounding (the per-pixel test is exact about what it keeps).
  const double m = 1e-9;
  double fx0 = (xmin - r + 1.0) * 0.5 * width - 0.5 - m, fx1 = (xmax + r + 1.0) * 0.5 * width - 0.5 + m;
  double fy0 = (ymin - r + 1.0) * 0.5 * height - 0.5 - m, fy1 = (ymax + r + 1.0) * 0.5 * height - 0.5 + m;
  fx0 = fmin(fmax(fx0, -1.0), double(width));
  fx1 = fmin(fmax(fx1, -1.0), double(width));
  fy0 = fmin(fmax(fy0, -1.0), double(height));
  fy1 = fmin(fmax(fy1, -1.0), double(height));
  int ix0 = int(ceil(fx0)), ix1 = int(floor(fx1)), iy0 = int(ceil(fy0)), iy1 = int(floor(fy1));
  ix0 = ix0 < 0 ? 0 : ix0;
  iy0 = iy0 < 0 ? 0 : iy0;
  ix1 = ix1 > width - 1 ? width - 1 : ix1;
  iy1 = iy1 > height - 1 ? height - 1 : iy1;
  if (ix0 > ix1 || iy0 > iy1) return false;
  s->x0 = ix0;
  s->y0 = iy0;
  s->x1 = ix1;
  s->y1 = iy1;
  return true;
}

RL_HD double cross2(double ax, double ay, double bx, double by) { return ax * by - ay * bx; }

// Squared distance from the origin to the segment a-b; t = parameter of the closest point;
// inv_l2 = 1 / |b - a|^2 (0 for a degenerate segment).
RL_HD double segment_dist2(double ax, double ay, double bx, double by, double inv_l2, double* t_out) {
  const double dx = bx - ax, dy = by - ay;
  double t = -(ax * dx + ay * dy) * inv_l2;
  t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
  const double qx = ax + t * dx, qy = ay + t * dy;
  *t_out = t;
  return qx * qx + qy * qy;
}

// Clipped barycentrics (PyTorch3D's): c_i = max(b_i, 0) / max(sum_j max(b_j, 0), 1e-5). For
// barycentrics summing to 1 the denominator is >= 1 (no division blow-up); inside, c = b.
// Returns the denominator.
RL_HD double clip_bary3(const double* b, double* c) {
  double s = 0.0;
  for (int i = 0; i < 3; ++i) {
    c[i] = b[i] > 0.0 ? b[i] : 0.0;
    s += c[i];
  }
  s = s > 1e-5 ? s : 1e-5;
  const double is = 1.0 / s;
  for (int i = 0; i < 3; ++i) c[i] *= is;
  return s;
}

// Backward of clip_bary3: gc = dL/dc -> adds dL/db to gb. A clamped coordinate (b_i < 0) gets no
// gradient, the free ones that of the renormalization (b_i = 0 counts as free, as torch.clamp).
RL_HD void clip_bary3_backward(const double* b, const double* c, double s, const double* gc, double* gb) {
  const double dot = gc[0] * c[0] + gc[1] * c[1] + gc[2] * c[2];
  const double is = 1.0 / s;
  for (int i = 0; i < 3; ++i)
    if (b[i] >= 0.0) gb[i] += (gc[i] - dot) * is;
}

struct SoftSample {
  double ax[3], ay[3];  // vertices in the pixel frame (X_i - px, Y_i - py)
  double e[3], S;       // edge functions e_i and their sum (twice the signed area)
  double lambda[3];     // screen-space barycentrics e_i / S
  double q;             // sum_i lambda_i / w_i (> 0 for a kept sample)
  double z;             // z/w at the pixel (at the clipped barycentrics when clipping)
  bool inside;
};

// The part of a sample needed to decide whether it is kept and where it sorts: barycentrics,
// inside test, z and the perspective denominator. Returns false if the sample is rejected by
// z (outside [-1, 1] or > z_reject: a full per-pixel list keeps nothing deeper), the perspective
// denominator, or (outside only) the distance test. dist_out (or null) gets the signed distance.
// clip: z at the clipped barycentrics (clip_barycentric_coords) instead of the extrapolated plane.
RL_HD bool soft_sample(const SoftTriangle& s, double px, double py, double blur_radius, bool clip, SoftSample* o,
                       double* dist_out, double z_reject = 1.0) {
  for (int i = 0; i < 3; ++i) {
    o->ax[i] = s.X[i] - px;
    o->ay[i] = s.Y[i] - py;
  }
  o->e[0] = cross2(o->ax[1], o->ay[1], o->ax[2], o->ay[2]);
  o->e[1] = cross2(o->ax[2], o->ay[2], o->ax[0], o->ay[0]);
  o->e[2] = cross2(o->ax[0], o->ay[0], o->ax[1], o->ay[1]);
  o->S = o->e[0] + o->e[1] + o->e[2];
  if (!(o->S != 0.0)) return false;
  const double inv = 1.0 / o->S;
  for (int i = 0; i < 3; ++i) o->lambda[i] = o->e[i] * inv;
  if (clip && !(o->lambda[0] >= 0.0 && o->lambda[1] >= 0.0 && o->lambda[2] >= 0.0)) {
    double c[3];
    clip_bary3(o->lambda, c);
    o->z = c[0] * s.Z[0] + c[1] * s.Z[1] + c[2] * s.Z[2];
  } else {
    o->z = o->lambda[0] * s.Z[0] + o->lambda[1] * s.Z[1] + o->lambda[2] * s.Z[2];
  }
  if (!(o->z >= -1.0 && o->z <= 1.0 && o->z <= z_reject)) return false;
  o->inside = o->lambda[0] > 0.0 && o->lambda[1] > 0.0 && o->lambda[2] > 0.0;
  if (!o->inside) {
    // Quick reject: the distance to the triangle is at least the distance to the line of any
    // edge the pixel is outside of, e_i^2 / |edge|^2 (edge i is (i+1, i+2), stored at i+1).
    for (int i = 0; i < 3; ++i)
      if (o->lambda[i] < 0.0 && o->e[i] * o->e[i] * s.inv_l2[(i + 1) % 3] >= blur_radius) return false;
  }
  o->q = o->lambda[0] * s.iw[0] + o->lambda[1] * s.iw[1] + o->lambda[2] * s.iw[2];
  if (!(o->q > 0.0)) return false;
  if (!o->inside || dist_out) {
    double t;
    double dist = segment_dist2(o->ax[0], o->ay[0], o->ax[1], o->ay[1], s.inv_l2[0], &t);
    const double d1 = segment_dist2(o->ax[1], o->ay[1], o->ax[2], o->ay[2], s.inv_l2[1], &t);
    const double d2 = segment_dist2(o->ax[2], o->ay[2], o->ax[0], o->ay[0], s.inv_l2[2], &t);
    dist = d1 < dist ? d1 : dist;
    dist = d2 < dist ? d2 : dist;
    if (!o->inside && !(dist < blur_radius)) return false;
    if (dist_out) *dist_out = o->inside ? -dist : dist;
  }
  return true;
}

// Barycentrics of a sample before clipping: perspective-correct or screen-space.
RL_HD void soft_bary(const SoftTriangle& s, const SoftSample& o, bool perspective_correct, double* b) {
  if (perspective_correct) {
    const double iq = 1.0 / o.q;
    for (int i = 0; i < 3; ++i) b[i] = o.lambda[i] * s.iw[i] * iq;
  } else {
    for (int i = 0; i < 3; ++i) b[i] = o.lambda[i];
  }
}

// Outputs of a kept sample: signed distance, z and barycentrics (clipped when clip).
template <typename T>
RL_HD void soft_outputs(const SoftTriangle& s, const SoftSample& o, double signed_dist, bool perspective_correct,
                        bool clip, T* zbuf, T* bary, T* dist) {
  *zbuf = T(o.z);
  *dist = T(signed_dist);
  double b[3], c[3];
  soft_bary(s, o, perspective_correct, b);
  if (clip) clip_bary3(b, c);
  for (int i = 0; i < 3; ++i) bary[i] = T(clip ? c[i] : b[i]);
}

// Backward of one kept sample: adds dL/d(x, y, z, w) of the three clip-space vertices to g[12]
// (vertex i at g[4i..4i+3]). gz, gdist: upstream gradients of zbuf and dists; gb_out[3] of bary.
// clip: the forward clipped bary and took z at the clipped screen-space barycentrics. Piecewise:
// inside the triangle nothing changes; outside, a clamped coordinate passes no gradient.
RL_HD void soft_sample_backward(const SoftTriangle& s, const SoftSample& o, bool perspective_correct, bool clip,
                                double gz, double gdist, const double* gb_out, double* g) {
  double gl[3] = {0, 0, 0}, giw[3] = {0, 0, 0}, gZ[3] = {0, 0, 0}, gax[3] = {0, 0, 0}, gay[3] = {0, 0, 0};
  // bary = clip(b) or b
  double gb[3] = {gb_out[0], gb_out[1], gb_out[2]};
  if (clip && (gb[0] != 0.0 || gb[1] != 0.0 || gb[2] != 0.0)) {
    double b[3], c[3];
    soft_bary(s, o, perspective_correct, b);
    const double sc = clip_bary3(b, c);
    gb[0] = gb[1] = gb[2] = 0.0;
    clip_bary3_backward(b, c, sc, gb_out, gb);
  }
  // b
  if (perspective_correct) {
    const double iq = 1.0 / o.q;
    double b[3], dot = 0;
    for (int i = 0; i < 3; ++i) {
      b[i] = o.lambda[i] * s.iw[i] * iq;
      dot += gb[i] * b[i];
    }
    for (int i = 0; i < 3; ++i) {
      const double gq = (gb[i] - dot) * iq;  // dL/d(lambda_i / w_i)
      gl[i] += gq * s.iw[i];
      giw[i] += gq * o.lambda[i];
    }
  } else {
    for (int i = 0; i < 3; ++i) gl[i] += gb[i];
  }
  // z = sum c_i Z_i, c = clip(lambda) when clipping (and outside), else c = lambda
  if (gz != 0.0) {
    if (clip && !(o.lambda[0] >= 0.0 && o.lambda[1] >= 0.0 && o.lambda[2] >= 0.0)) {
      double c[3], gc[3];
      const double sc = clip_bary3(o.lambda, c);
      for (int i = 0; i < 3; ++i) {
        gc[i] = gz * s.Z[i];
        gZ[i] += gz * c[i];
      }
      clip_bary3_backward(o.lambda, c, sc, gc, gl);
    } else {
      for (int i = 0; i < 3; ++i) {
        gl[i] += gz * s.Z[i];
        gZ[i] += gz * o.lambda[i];
      }
    }
  }
  // lambda_i = e_i / S, S = sum e
  const double inv = 1.0 / o.S;
  const double dotl = gl[0] * o.lambda[0] + gl[1] * o.lambda[1] + gl[2] * o.lambda[2];
  double ge[3];
  for (int i = 0; i < 3; ++i) ge[i] = (gl[i] - dotl) * inv;
  // e_i = cross2(a_j, a_k) with (i, j, k) cyclic: d/da_j = (a_k.y, -a_k.x), d/da_k = (-a_j.y, a_j.x)
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    gax[j] += ge[i] * o.ay[k];
    gay[j] -= ge[i] * o.ax[k];
    gax[k] -= ge[i] * o.ay[j];
    gay[k] += ge[i] * o.ax[j];
  }
  // signed squared distance: the closest edge (first minimum), d = |a + t (b - a)|^2
  if (gdist != 0.0) {
    double best = 0, bt = 0;
    int be = -1;
    for (int i = 0; i < 3; ++i) {
      const int j = (i + 1) % 3;
      double t;
      const double d = segment_dist2(o.ax[i], o.ay[i], o.ax[j], o.ay[j], s.inv_l2[i], &t);
      if (be < 0 || d < best) {
        best = d;
        bt = t;
        be = i;
      }
    }
    const int i = be, j = (be + 1) % 3;
    const double qx = o.ax[i] + bt * (o.ax[j] - o.ax[i]), qy = o.ay[i] + bt * (o.ay[j] - o.ay[i]);
    const double gs = (o.inside ? -2.0 : 2.0) * gdist;
    gax[i] += gs * qx * (1.0 - bt);
    gay[i] += gs * qy * (1.0 - bt);
    gax[j] += gs * qx * bt;
    gay[j] += gs * qy * bt;
  }
  // (X, Y, Z) = (x, y, z) / w and iw = 1 / w
  for (int i = 0; i < 3; ++i) {
    const double iw = s.iw[i];
    g[4 * i + 0] += gax[i] * iw;
    g[4 * i + 1] += gay[i] * iw;
    g[4 * i + 2] += gZ[i] * iw;
    g[4 * i + 3] -= (gax[i] * s.X[i] + gay[i] * s.Y[i] + gZ[i] * s.Z[i]) * iw + giw[i] * iw * iw;
  }
}

// Insert (z, id) into a per-pixel list sorted by increasing (z, id), keeping at most K entries;
// extra (or null) holds a payload per entry that moves along with it.
RL_HD void soft_insert(double* zs, int32_t* ids, int32_t* extra, int* n, int K, double z, int32_t id, int32_t x) {
  const int m = *n;
  if (m == K && !(z < zs[m - 1] || (z == zs[m - 1] && id < ids[m - 1]))) return;
  int i = m == K ? m - 1 : m;
  while (i > 0 && (z < zs[i - 1] || (z == zs[i - 1] && id < ids[i - 1]))) {
    zs[i] = zs[i - 1];
    ids[i] = ids[i - 1];
    if (extra) extra[i] = extra[i - 1];
    --i;
  }
  zs[i] = z;
  ids[i] = id;
  if (extra) extra[i] = x;
  if (m < K) *n = m + 1;
}

// ---------------------------------------------------------------------------------------------
// Kernel entry points.

template <typename T>
struct SoftRasterizeFwdParams {
  const T* pos;           // [B,V,4] (instanced) or [V,4] (range mode)
  const int32_t* tri;     // [T,3], indices checked to lie in [0, V)
  const int32_t* ranges;  // [B,2] (start, count), or null in instanced mode (host memory on CUDA)
  int64_t num_views, num_vertices, num_triangles;
  int height, width, K;
  double blur_radius;
  bool perspective_correct;
  bool clip_barycentric_coords;  // clip bary, and depth (order, near/far, zbuf) at clipped barycentrics
  int32_t* face_ids;  // [B,H,W,K] out, global triangle ids, -1 where none
  T* zbuf;            // [B,H,W,K] out, z/w, -1 where none
  T* bary;            // [B,H,W,K,3] out, -1 where none
  T* dists;           // [B,H,W,K] out, signed squared NDC distance, -1 where none
  int num_threads;
};

template <typename T>
struct SoftRasterizeBwdParams {
  const T* pos;
  const int32_t* tri;
  const int32_t* ranges;
  int64_t num_views, num_vertices, num_triangles;
  int height, width, K;
  double blur_radius;
  bool perspective_correct;
  bool clip_barycentric_coords;
  const int32_t* face_ids;  // forward output
  const T* grad_zbuf;       // [B,H,W,K]
  const T* grad_bary;       // [B,H,W,K,3]
  const T* grad_dists;      // [B,H,W,K]
  T* grad_pos;              // same shape as pos, zero-initialized by the caller
  int num_threads;
};

// Backward of output slot o (a flat index into [B,H,W,K]) at pixel (x, y), whose face is s: adds
// dL/d(x, y, z, w) of the face's vertices to g[12]. Skips slots with zero upstream gradient.
template <typename T>
RL_HD void soft_slot_backward(const SoftRasterizeBwdParams<T>& p, const SoftTriangle& s, int x, int y, int64_t o,
                              double* g) {
  const double gz = double(p.grad_zbuf[o]), gd = double(p.grad_dists[o]);
  const double gb[3] = {double(p.grad_bary[3 * o]), double(p.grad_bary[3 * o + 1]), double(p.grad_bary[3 * o + 2])};
  if (gz == 0.0 && gd == 0.0 && gb[0] == 0.0 && gb[1] == 0.0 && gb[2] == 0.0) return;
  SoftSample smp;
  double dist;
  if (!soft_sample(s, pixel_center_ndc<double>(x, p.width), pixel_center_ndc<double>(y, p.height), p.blur_radius,
                   p.clip_barycentric_coords, &smp, &dist))
    return;
  soft_sample_backward(s, smp, p.perspective_correct, p.clip_barycentric_coords, gz, gd, gb, g);
}

// Backward for one triangle of one view: walks the triangle's pixel box in row-major order and
// the K slots of each pixel in order, adding the gradient of every slot that holds this
// triangle to g[12] (double). A fixed order per triangle: deterministic for any parallelism.
template <typename T>
RL_HD void soft_triangle_backward(const SoftRasterizeBwdParams<T>& p, const SoftTriangle& s, int64_t view,
                                  int32_t global_id, double* g) {
  for (int k = 0; k < 12; ++k) g[k] = 0.0;
  const int K = p.K;
  const int64_t npix = int64_t(p.height) * p.width;
  for (int y = s.y0; y <= s.y1; ++y) {
    for (int x = s.x0; x <= s.x1; ++x) {
      const int64_t base = (view * npix + int64_t(y) * p.width + x) * K;
      const int32_t* ids = p.face_ids + base;
      for (int k = 0; k < K; ++k) {
        const int32_t id = ids[k];
        if (id < 0) break;  // slots are filled front to back
        if (id == global_id) soft_slot_backward(p, s, x, y, base + k, g);
      }
    }
  }
}

template <typename T>
int rasterize_soft_fwd_cpu(const SoftRasterizeFwdParams<T>& p);
template <typename T>
int rasterize_soft_bwd_cpu(const SoftRasterizeBwdParams<T>& p);

struct CudaWorkspace;  // cuda_common.cuh
template <typename T>
int rasterize_soft_fwd_cuda(const SoftRasterizeFwdParams<T>& p, const CudaWorkspace& ws);
template <typename T>
int rasterize_soft_bwd_cuda(const SoftRasterizeBwdParams<T>& p, const CudaWorkspace& ws);

}  // namespace rastlit
