// Rasterize: the per-triangle and per-pixel math, written once for the CPU and CUDA backends.
//
// Method: homogeneous 2D rasterization (Olano & Greer, "Triangle Scan Conversion using 2D
// Homogeneous Coordinates", 1997). For a triangle with clip-space columns a_i = (x_i, y_i, w_i)
// the rows of adj([a0 a1 a2]) are the edge vectors c0 = a1 x a2, c1 = a2 x a0, c2 = a0 x a1. At a
// pixel centre p = (X, Y, 1) in NDC, e_i = c_i . p are unnormalized perspective-correct
// barycentrics: b_i = e_i / sum(e), and the point on the triangle that projects to p has
// w = det / sum(e). Hence the pixel sees the triangle in front of the camera exactly when every
// sign(det) * e_i >= 0. No geometric clipping is needed for coverage, so vertices behind the
// camera are handled exactly; near and far planes are a per-pixel test on z/w, which is affine in
// p: z/w = (sum_i z_i c_i / det) . p.
//
// Watertightness: the sign of e_i is the orientation det[a_j; a_k; p], which two triangles
// sharing the edge (a_j, a_k) see with opposite signs. Signs are taken exactly (exact.h: a
// rounded evaluation with an error bound, and exact expansion arithmetic when the value is
// within it), so a pixel centre exactly on an edge or a vertex gets exact zeros, and the tie rule
// below (a fixed infinitesimal nudge direction) gives it to exactly one triangle.
#pragma once

#include "../common.h"
#include "../exact.h"

namespace rastlit {

constexpr int kRasterTileSize = 16;          // pixels per side of a binning tile
constexpr int kMaxResolution = 16384;        // per side; checked by the binding
constexpr int64_t kMaxTriangles = 16777215;  // 2^24 - 1: id + 1 must be exact in float32

// Edge functions are evaluated in double whatever T is: for float32 input the products in the
// cross products are then exact and the rounding error bound is ~1e-15 of the magnitudes, so the
// exact fallback is only taken for pixel centres (almost) exactly on an edge.
template <typename T>
struct TriangleSetup {
  Vec3<double> c[3];  // edge vectors times sign(det): the triangle covers p where all c[i] . p >= 0
  double bound[3];    // |rounded - exact| of c[i] . p for any pixel centre (|X|, |Y| < 1)
  Vec3<T> zplane;     // z/w at p = dot(zplane, p)
  int sign;           // sign(det)
  int tie_pass;       // bit i: edge i keeps pixel centres lying exactly on it (tie rule)
  int x0, y0, x1, y1;  // inclusive pixel bounding box, clamped to the image
};

template <typename T>
RL_HD Vec3<T> clip_xyw(const T* v) {
  return make_vec3<T>(v[0], v[1], v[3]);
}

template <typename T>
RL_HD T edge_eval(const Vec3<T>& c, T px, T py) {
  return c.x * px + c.y * py + c.z;
}

// Where a triangle's vertices are, for the rare exact path: the view's positions and the
// triangle's row of indices.
template <typename T>
struct TriangleVertices {
  const T* pos;        // [V,4] of this view
  const int32_t* idx;  // 3 vertex indices
  RL_HD Vec3<T> operator[](int k) const { return clip_xyw(pos + 4 * int64_t(idx[k])); }
};

// Per-row part of the edge and depth functions at pixel-centre height py, so the per-pixel
// work is one multiply-add per edge.
template <typename T>
struct EdgeRow {
  double r[3];  // c[i].y * py + c[i].z
  T zr;         // zplane.y * py + zplane.z
};

template <typename T>
RL_HD void edge_row(const TriangleSetup<T>& s, T py, EdgeRow<T>* row) {
  for (int i = 0; i < 3; ++i) row->r[i] = s.c[i].y * double(py) + s.c[i].z;
  row->zr = s.zplane.y * py + s.zplane.z;
}

// Coverage where the rounded edge values clear their error bounds: 1 inside, 0 outside, -1
// undecided (a pixel centre on or within rounding distance of an edge: use coverage_exact).
template <typename T>
RL_HD int coverage_fast(const TriangleSetup<T>& s, const EdgeRow<T>& row, T px) {
  const double x = double(px);
  const double e0 = s.c[0].x * x + row.r[0], e1 = s.c[1].x * x + row.r[1], e2 = s.c[2].x * x + row.r[2];
  if (e0 > s.bound[0] && e1 > s.bound[1] && e2 > s.bound[2]) return 1;
  if (e0 < -s.bound[0] || e1 < -s.bound[1] || e2 < -s.bound[2]) return 0;
  return -1;
}

// Exact coverage with the tie rule: the sign of each e_i is det[a_j; a_k; p] (times sign(det)),
// recomputed from the vertices with expansion arithmetic when the rounded value is inconclusive.
template <typename T>
RL_HD bool coverage_exact(const TriangleSetup<T>& s, const TriangleVertices<T>& v, T px, T py) {
  const Vec3<T> p = make_vec3<T>(px, py, T(1));
  for (int i = 0; i < 3; ++i) {
    const double e = edge_eval(s.c[i], double(px), double(py));
    int sg;
    if (e > s.bound[i]) {
      sg = 1;
    } else if (e < -s.bound[i]) {
      sg = -1;
    } else {
      sg = s.sign * orient_sign_exact(v[(i + 1) % 3], v[(i + 2) % 3], p);
    }
    if (sg < 0 || (sg == 0 && !((s.tie_pass >> i) & 1))) return false;
  }
  return true;
}

// Coverage of one pixel centre, exact: the fast test, then the exact one where it is undecided.
template <typename T>
RL_HD bool covers(const TriangleSetup<T>& s, const TriangleVertices<T>& v, T px, T py) {
  EdgeRow<T> row;
  edge_row(s, py, &row);
  const int cov = coverage_fast(s, row, px);
  return cov < 0 ? coverage_exact(s, v, px, py) : cov == 1;
}

// Depth test against the near and far planes (inclusive); also rejects NaN.
template <typename T>
RL_HD bool depth_in_range(T z) {
  return z >= T(-1) && z <= T(1);
}

// z/w as an affine function of p, from the raw (unsigned) edge vectors c and det. With every
// w > 0 it interpolates the vertices' own z/w with screen-space weights lambda_i = e_i w_i / det,
// written as d2 + lambda0 (d0 - d2) + lambda1 (d1 - d2): a triangle of constant z/w gets exactly
// that value at every pixel, so exact depth ties (coplanar duplicates, geometry on the near
// plane) stay exact. Otherwise (some w <= 0) z/w = (sum_i z_i e_i) / det.
template <typename T>
RL_HD Vec3<T> depth_plane(const Vec3<double> a[3], const double z[3], const Vec3<double> c[3], double det) {
  double plane[3];
  if (a[0].z > 0 && a[1].z > 0 && a[2].z > 0) {
    const double d0 = z[0] / a[0].z, d1 = z[1] / a[1].z, d2 = z[2] / a[2].z;
    const double k0 = (d0 - d2) * a[0].z / det, k1 = (d1 - d2) * a[1].z / det;
    plane[0] = k0 * c[0].x + k1 * c[1].x;
    plane[1] = k0 * c[0].y + k1 * c[1].y;
    plane[2] = k0 * c[0].z + k1 * c[1].z + d2;
  } else {
    plane[0] = (z[0] * c[0].x + z[1] * c[1].x + z[2] * c[2].x) / det;
    plane[1] = (z[0] * c[0].y + z[1] * c[1].y + z[2] * c[2].y) / det;
    plane[2] = (z[0] * c[0].z + z[1] * c[1].z + z[2] * c[2].z) / det;
  }
  return make_vec3<T>(T(plane[0]), T(plane[1]), T(plane[2]));
}

// Sutherland-Hodgman against one plane d(v) = v . plane >= 0 on homogeneous 4-vectors.
RL_HD int clip_polygon_plane(const double (*in)[4], int n, double (*out)[4], double pz, double pw) {
  int m = 0;
  for (int i = 0; i < n; ++i) {
    const double* a = in[i];
    const double* b = in[(i + 1) % n];
    const double da = a[2] * pz + a[3] * pw;
    const double db = b[2] * pz + b[3] * pw;
    if (da >= 0) {
      for (int k = 0; k < 4; ++k) out[m][k] = a[k];
      ++m;
    }
    if ((da >= 0) != (db >= 0)) {
      const double t = da / (da - db);
      for (int k = 0; k < 4; ++k) out[m][k] = a[k] + t * (b[k] - a[k]);
      ++m;
    }
  }
  return m;
}

// Sign of p * q - r * s for edge-vector components: exact for float input (the products are
// exact in double and a rounded difference keeps its sign); filtered, then exact, for double.
RL_HD int product_difference_sign(double p, double q, double r, double s, bool inputs_are_float) {
  const double a = p * q, b = r * s, d = a - b;
  if (inputs_are_float) return d > 0 ? 1 : (d < 0 ? -1 : 0);
  const double bnd = 4.0 * 1.1102230246251565e-16 * (fabs(a) + fabs(b));
  if (d > bnd) return 1;
  if (d < -bnd) return -1;
  double t[4];
  two_prod(p, q, t[0], t[1]);
  two_prod(-r, s, t[2], t[3]);
  return exact_sum_sign(t, 4);
}

// The inclusive pixel box of the NDC box [xmin, xmax] x [ymin, ymax], clamped to the image; false
// when it holds no pixel centre. Pixel j has its centre at X = (2j + 1) / W - 1, i.e.
// j = (X + 1) W / 2 - 1/2. Coverage is exact, so the margin only absorbs the rounding of this
// double-precision projection.
RL_HD bool ndc_pixel_box(double xmin, double xmax, double ymin, double ymax, int height, int width, int* x0, int* y0,
                         int* x1, int* y1) {
  double extent = -xmin > xmax ? -xmin : xmax;
  extent = -ymin > extent ? -ymin : extent;
  extent = ymax > extent ? ymax : extent;
  const double margin = 1.0 / 256 + 1e-13 * extent * (width > height ? width : height);
  double fx0 = (xmin + 1.0) * 0.5 * width - 0.5 - margin;
  double fx1 = (xmax + 1.0) * 0.5 * width - 0.5 + margin;
  double fy0 = (ymin + 1.0) * 0.5 * height - 0.5 - margin;
  double fy1 = (ymax + 1.0) * 0.5 * height - 0.5 + margin;
  // Clamp in double before converting, so huge coordinates never overflow an int (a NaN becomes
  // -1, as fmin(fmax(x, -1), n) makes it). Comparisons and integer conversions instead of
  // fmin / fmax / ceil / floor, which are libm calls without SSE4.1: this runs for every triangle.
  const double wd = double(width), hd = double(height);
  fx0 = fx0 > -1.0 ? (fx0 < wd ? fx0 : wd) : -1.0;
  fx1 = fx1 > -1.0 ? (fx1 < wd ? fx1 : wd) : -1.0;
  fy0 = fy0 > -1.0 ? (fy0 < hd ? fy0 : hd) : -1.0;
  fy1 = fy1 > -1.0 ? (fy1 < hd ? fy1 : hd) : -1.0;
  int ix0 = int(fx0), ix1 = int(fx1), iy0 = int(fy0), iy1 = int(fy1);  // truncation, then ceil / floor
  ix0 += double(ix0) < fx0 ? 1 : 0;
  iy0 += double(iy0) < fy0 ? 1 : 0;
  ix1 -= double(ix1) > fx1 ? 1 : 0;
  iy1 -= double(iy1) > fy1 ? 1 : 0;
  ix0 = ix0 < 0 ? 0 : ix0;
  iy0 = iy0 < 0 ? 0 : iy0;
  ix1 = ix1 > width - 1 ? width - 1 : ix1;
  iy1 = iy1 > height - 1 ? height - 1 : iy1;
  if (ix0 > ix1 || iy0 > iy1) return false;
  *x0 = ix0;
  *y0 = iy0;
  *x1 = ix1;
  *y1 = iy1;
  return true;
}

// Per-triangle setup. Returns false when the triangle can cover no pixel: a non-finite vertex,
// zero area (det == 0), entirely outside the near/far slab, or a bounding box off the image.
template <typename T>
RL_HD bool setup_triangle(const T* v0, const T* v1, const T* v2, int height, int width,
                          TriangleSetup<T>* s) {
  if (!all_finite4(v0) || !all_finite4(v1) || !all_finite4(v2)) return false;
  const T* v[3] = {v0, v1, v2};
  Vec3<double> a[3];
  double z[3];
  for (int i = 0; i < 3; ++i) {
    a[i] = make_vec3<double>(v[i][0], v[i][1], v[i][3]);
    z[i] = v[i][2];
  }
  // Triangles entirely between the near (z >= -w) and far (z <= w) planes (the common case) need
  // no clipping: their box is that of the projected vertices. It is found first, so that the
  // many small triangles whose box holds no pixel centre (most of a dense mesh at a low
  // resolution) are rejected before the edge setup; the result is the same either way.
  const bool inside_slab = a[0].z > 0 && a[1].z > 0 && a[2].z > 0 && fabs(z[0]) <= a[0].z &&
                           fabs(z[1]) <= a[1].z && fabs(z[2]) <= a[2].z;
  int box[4] = {0, 0, 0, 0};
  if (inside_slab) {
    double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
    for (int i = 0; i < 3; ++i) {
      const double iw = 1.0 / a[i].z, x = a[i].x * iw, y = a[i].y * iw;
      xmin = x < xmin ? x : xmin;
      xmax = x > xmax ? x : xmax;
      ymin = y < ymin ? y : ymin;
      ymax = y > ymax ? y : ymax;
    }
    if (!ndc_pixel_box(xmin, xmax, ymin, ymax, height, width, &box[0], &box[1], &box[2], &box[3])) return false;
  }
  // Raw edge vectors and, per edge, the rounding error bound of c . p for |X|, |Y| <= 1.
  const bool exact_products = sizeof(T) == sizeof(float);
  const double K = 8.0 * 1.1102230246251565e-16;
  Vec3<double> c[3];
  for (int i = 0; i < 3; ++i) {
    const Vec3<double>& p = a[(i + 1) % 3];
    const Vec3<double>& q = a[(i + 2) % 3];
    c[i] = cross(p, q);
    s->bound[i] = K * (fabs(p.y * q.z) + fabs(p.z * q.y) + fabs(p.z * q.x) + fabs(p.x * q.z) + fabs(p.x * q.y) +
                       fabs(p.y * q.x));
  }
  // det = a0 . (a1 x a2) = a0 . c0, its sign exact: a wrong sign would turn the triangle inside out.
  const double det = dot(a[0], c[0]);
  const double det_bound = K * (fabs(a[0].x) * (fabs(a[1].y * a[2].z) + fabs(a[1].z * a[2].y)) +
                                fabs(a[0].y) * (fabs(a[1].z * a[2].x) + fabs(a[1].x * a[2].z)) +
                                fabs(a[0].z) * (fabs(a[1].x * a[2].y) + fabs(a[1].y * a[2].x)));
  int det_sign = det > det_bound ? 1 : (det < -det_bound ? -1 : 0);
  if (det_sign == 0) det_sign = orient_sign_exact(clip_xyw(v1), clip_xyw(v2), clip_xyw(v0));
  if (det_sign == 0 || !std::isfinite(det)) return false;
  s->sign = det_sign;
  // Tie rule for pixel centres exactly on edge i: keep them when the inward normal
  // sign * (c.x, c.y) has n.x > 0, or n.x == 0 and n.y > 0, i.e. when the nudge direction
  // (1, epsilon) points into the triangle. Neighbours see opposite normals, so exactly one
  // keeps the pixel; exact signs make this hold at vertices too.
  s->tie_pass = 0;
  for (int i = 0; i < 3; ++i) {
    const Vec3<double>& p = a[(i + 1) % 3];
    const Vec3<double>& q = a[(i + 2) % 3];
    // For float input c.x = p.y q.w - p.w q.y is a rounded difference of exact products, so its
    // sign is exact as computed.
    const int sx = c[i].x > 0 ? 1 : (c[i].x < 0 ? -1 : 0), sy = c[i].y > 0 ? 1 : (c[i].y < 0 ? -1 : 0);
    const int nx = det_sign * (exact_products ? sx : product_difference_sign(p.y, q.z, p.z, q.y, false));
    const int ny = det_sign * (exact_products ? sy : product_difference_sign(p.z, q.x, p.x, q.z, false));
    if (nx > 0 || (nx == 0 && ny > 0)) s->tie_pass |= 1 << i;
    s->c[i] = det_sign > 0 ? c[i] : make_vec3<double>(-c[i].x, -c[i].y, -c[i].z);
  }
  // z/w is a depth attribute only (no coverage decision rests on it but the near/far test), so
  // its plane may be rounded; a det that is not exactly zero but rounds to it covers nothing.
  if (det == 0.0) return false;
  s->zplane = depth_plane<T>(a, z, c, det);

  if (inside_slab) {
    s->x0 = box[0];
    s->y0 = box[1];
    s->x1 = box[2];
    s->y1 = box[3];
    return true;
  }
  // Conservative bounding box of the part between the near (z >= -w) and far (z <= w) planes.
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  bool unbounded = false;
  {
    double poly_a[9][4], poly_b[9][4];
    for (int i = 0; i < 3; ++i) {
      poly_a[i][0] = a[i].x;
      poly_a[i][1] = a[i].y;
      poly_a[i][2] = z[i];
      poly_a[i][3] = a[i].z;
    }
    int n = clip_polygon_plane(poly_a, 3, poly_b, 1.0, 1.0);  // z + w >= 0
    n = clip_polygon_plane(poly_b, n, poly_a, -1.0, 1.0);     // w - z >= 0
    if (n == 0) return false;
    for (int i = 0; i < n; ++i) {
      const double w = poly_a[i][3];
      if (!(w > 1e-30)) {
        unbounded = true;  // touches w == 0: projection is unbounded, use the whole image
        break;
      }
      const double x = poly_a[i][0] / w, y = poly_a[i][1] / w;
      xmin = x < xmin ? x : xmin;
      xmax = x > xmax ? x : xmax;
      ymin = y < ymin ? y : ymin;
      ymax = y > ymax ? y : ymax;
    }
  }
  if (unbounded) {
    s->x0 = 0;
    s->y0 = 0;
    s->x1 = width - 1;
    s->y1 = height - 1;
    return true;
  }
  return ndc_pixel_box(xmin, xmax, ymin, ymax, height, width, &s->x0, &s->y0, &s->x1, &s->y1);
}

// Perspective-correct barycentrics and their pixel-space derivatives at (px, py) from the winning
// triangle's setup: its edge vectors (double, times sign(det), which cancels in b = e / sum(e)).
// For float32 input the products in c are exact and c has one rounding, so u, v come out as the
// correctly rounded values even for sub-pixel triangles. uv = (u, v),
// db = (du/dX, du/dY, dv/dX, dv/dY); kx, ky = NDC per pixel step.
template <typename T>
RL_HD void barycentrics_from_setup(const TriangleSetup<T>& s, T px, T py, double kx, double ky, T* uv, T* db) {
  const double x = double(px), y = double(py);
  const double e0 = edge_eval(s.c[0], x, y), e1 = edge_eval(s.c[1], x, y), e2 = edge_eval(s.c[2], x, y);
  const double inv_s = 1.0 / (e0 + e1 + e2);
  const double b0 = e0 * inv_s, b1 = e1 * inv_s;
  uv[0] = T(b0);
  uv[1] = T(b1);
  const double sx = s.c[0].x + s.c[1].x + s.c[2].x, sy = s.c[0].y + s.c[1].y + s.c[2].y;
  db[0] = T((s.c[0].x - b0 * sx) * inv_s * kx);
  db[1] = T((s.c[0].y - b0 * sy) * inv_s * ky);
  db[2] = T((s.c[1].x - b1 * sx) * inv_s * kx);
  db[3] = T((s.c[1].y - b1 * sy) * inv_s * ky);
}

// Clip-space (x, y, w) of a vertex in a frame sheared so that pixel centre (px, py) sits at the
// origin: (x - px w, y - py w, w). The shear has determinant 1, so determinants (and hence the
// barycentrics) are unchanged, but for small triangles the numbers entering the cross products
// are small and nearly free of cancellation (used by the per-pixel backward).
template <typename T>
RL_HD Vec3<T> pixel_frame(const Vec3<T>& a, T px, T py) {
  return make_vec3<T>(a.x - px * a.z, a.y - py * a.z, a.z);
}

// Backward of the barycentrics with respect to the edge vectors c (in any frame where the pixel
// sits at p): adds dL/dc_i to gc[i]. g_uv = dL/d(u, v); g_db = dL/d(du/dX, du/dY, dv/dX, dv/dY)
// or null. With e_i = c_i . p, s = sum(e), b_i = e_i / s and D_ix = (c_i.x - b_i sum_j c_j.x) / s.
template <typename T>
RL_HD void edge_vectors_backward(const Vec3<T> c[3], const Vec3<T>& p, T kx, T ky, const T* g_uv, const T* g_db,
                                 Vec3<T> gc[3]) {
  const T e[3] = {dot(c[0], p), dot(c[1], p), dot(c[2], p)};
  const T inv_s = T(1) / (e[0] + e[1] + e[2]);
  const T b[3] = {e[0] * inv_s, e[1] * inv_s, e[2] * inv_s};
  T gb[3] = {g_uv[0], g_uv[1], T(0)};
  T gs = 0;
  if (g_db) {
    const T sx = c[0].x + c[1].x + c[2].x, sy = c[0].y + c[1].y + c[2].y;
    T gsx = 0, gsy = 0;
    for (int i = 0; i < 2; ++i) {
      const T dix = (c[i].x - b[i] * sx) * inv_s, diy = (c[i].y - b[i] * sy) * inv_s;
      const T gx = g_db[2 * i] * kx, gy = g_db[2 * i + 1] * ky;
      gc[i].x += gx * inv_s;
      gc[i].y += gy * inv_s;
      gb[i] -= (gx * sx + gy * sy) * inv_s;
      gsx -= gx * b[i] * inv_s;
      gsy -= gy * b[i] * inv_s;
      gs -= (gx * dix + gy * diy) * inv_s;
    }
    for (int j = 0; j < 3; ++j) {
      gc[j].x += gsx;
      gc[j].y += gsy;
    }
  }
  gs -= (gb[0] * b[0] + gb[1] * b[1] + gb[2] * b[2]) * inv_s;
  for (int i = 0; i < 3; ++i) gc[i] = gc[i] + (gb[i] * inv_s + gs) * p;
}

// c0 = a1 x a2, c1 = a2 x a0, c2 = a0 x a1 and d(G . (a x b)) = (b x G) . da + (G x a) . db.
template <typename T>
RL_HD void edge_vectors_to_vertices(const Vec3<T> a[3], const Vec3<T> gc[3], Vec3<T> ga[3]) {
  ga[0] = cross(gc[1], a[2]) + cross(a[1], gc[2]);
  ga[1] = cross(a[2], gc[0]) + cross(gc[2], a[0]);
  ga[2] = cross(gc[0], a[1]) + cross(a[0], gc[1]);
}

// Backward of the barycentrics with respect to the clip-space (x, y, w) of the three vertices, in
// the pixel frame (p = (0, 0, 1)), mapped back through the shear q = (x - px w, y - py w, w):
// dL/dx = dL/dq.x, dL/dy = dL/dq.y, dL/dw = dL/dq.w - px dL/dq.x - py dL/dq.y.
template <typename T>
RL_HD void barycentrics_backward(const Vec3<T> a_clip[3], T px, T py, T kx, T ky, const T* g_uv,
                                 const T* g_db, Vec3<T> ga[3]) {
  const Vec3<T> a[3] = {pixel_frame(a_clip[0], px, py), pixel_frame(a_clip[1], px, py), pixel_frame(a_clip[2], px, py)};
  const Vec3<T> c[3] = {cross(a[1], a[2]), cross(a[2], a[0]), cross(a[0], a[1])};
  Vec3<T> gc[3] = {make_vec3<T>(0, 0, 0), make_vec3<T>(0, 0, 0), make_vec3<T>(0, 0, 0)};
  edge_vectors_backward(c, make_vec3<T>(T(0), T(0), T(1)), kx, ky, g_uv, g_db, gc);
  edge_vectors_to_vertices(a, gc, ga);
  for (int i = 0; i < 3; ++i) ga[i].z -= px * ga[i].x + py * ga[i].y;
}

// Per-pixel backward as the kernels call it: vertex rows v[k] (x, y, z, w), upstream gradients
// g_uv[2] and g_db[4] (or null); out9 = dL/d(x, y, w) of the three vertices. Evaluated in double
// whatever T is, like barycentrics_from_setup.
template <typename T>
RL_HD void pixel_backward(const T* v0, const T* v1, const T* v2, T px, T py, T kx, T ky, const T* g_uv,
                          const T* g_db, T* out9) {
  using D = double;
  const Vec3<D> a[3] = {make_vec3<D>(v0[0], v0[1], v0[3]), make_vec3<D>(v1[0], v1[1], v1[3]),
                        make_vec3<D>(v2[0], v2[1], v2[3])};
  const D guv[2] = {D(g_uv[0]), D(g_uv[1])};
  D gdb[4];
  if (g_db)
    for (int k = 0; k < 4; ++k) gdb[k] = D(g_db[k]);
  Vec3<D> ga[3];
  barycentrics_backward<D>(a, D(px), D(py), D(kx), D(ky), guv, g_db ? gdb : nullptr, ga);
  for (int k = 0; k < 3; ++k) {
    out9[3 * k] = T(ga[k].x);
    out9[3 * k + 1] = T(ga[k].y);
    out9[3 * k + 2] = T(ga[k].z);
  }
}

// Depth peeling: with the previous layer's rast at a pixel, a fragment (z/w, triangle id) takes
// part in the z-test only if it comes strictly after the previous winner in the z-buffer's own
// order (nearer z/w first, then lower id). z is computed by the same expression in every pass,
// so the previous winner itself never passes and coplanar duplicates peel one by one in id
// order. A pixel that was empty in the previous layer stays empty.
template <typename T>
RL_HD bool behind_peeled_layer(const T* prev, T z, int64_t id) {
  const T prev_id1 = prev[3];
  if (!(prev_id1 > T(0))) return false;
  const T prev_z = prev[2];
  return z > prev_z || (z == prev_z && T(id + 1) > prev_id1);
}

// ---------------------------------------------------------------------------------------------
// Kernel entry points (raw pointers, one params struct per op and direction).

template <typename T>
struct RasterizeFwdParams {
  const T* pos;           // [B,V,4] (instanced) or [V,4] (range mode)
  const int32_t* tri;     // [T,3], indices already checked to lie in [0, V)
  const int32_t* ranges;  // [B,2] (start, count), or null in instanced mode
  int64_t num_views, num_vertices, num_triangles;
  int height, width;
  T* rast;     // [B,H,W,4] out: (u, v, z/w, id + 1)
  T* rast_db;  // [B,H,W,4] out: (du/dX, du/dY, dv/dX, dv/dY)
  const T* peel;  // [B,H,W,4] the previous depth layer's rast (depth peeling), or null
  int num_threads;
};

template <typename T>
struct RasterizeBwdParams {
  const T* pos;
  const int32_t* tri;
  const int32_t* ranges;
  int64_t num_views, num_vertices, num_triangles;
  int height, width;
  const T* rast;          // forward output (ids select the triangle)
  const T* grad_rast;     // [B,H,W,4]
  const T* grad_rast_db;  // [B,H,W,4] or null
  T* grad_pos;            // same shape as pos, zero-initialized by the caller
  int num_threads;
};

template <typename T>
int rasterize_fwd_cpu(const RasterizeFwdParams<T>& p);
template <typename T>
int rasterize_bwd_cpu(const RasterizeBwdParams<T>& p);

struct CudaWorkspace;  // cuda_common.cuh
template <typename T>
int rasterize_fwd_cuda(const RasterizeFwdParams<T>& p, const CudaWorkspace& ws);
template <typename T>
int rasterize_bwd_cuda(const RasterizeBwdParams<T>& p, const CudaWorkspace& ws);

}  // namespace rastlit
