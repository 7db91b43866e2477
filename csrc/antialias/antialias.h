// Antialias: analytic antialiasing of silhouette and occlusion edges (Laine et al. 2020, "Modular
// Primitives for High-Performance Differentiable Rendering", sec. 3.4), with a walk across the
// mesh to the silhouette. Math shared by the CPU and CUDA backends.
//
// Every pair of horizontally or vertically adjacent pixels whose triangle ids differ is examined.
// The "front" pixel f of the pair is the covered one (one is background) or the one with the
// smaller z/w; the other is o. In clip space the three edges of a triangle are homogeneous 2D
// lines: edge k (vertices k+1, k+2) has E_k(q) = q . (P_{k+1} x P_{k+2}) for a pixel centre
// q = (X, Y, 1) in NDC and vertices P = (x, y, w) (Olano and Greer's homogeneous edge functions:
// no division by w, correct for any w). E is linear in q, so along the segment
// q(s) = f + s (o - f), s in [0, 1], it is linear in s: the segment leaves a triangle through the
// edge with the smallest crossing s = E(f) / (E(f) - E(o)) among the edges that decrease along
// it and that o lies outside of (none: the segment ends inside the triangle).
//
// The walk starts in f's triangle. At the exit edge of the current triangle:
//   * if it is a silhouette (the topology hash gives no neighbour across it, a mesh boundary, or
//     the neighbour's opposite vertex lies on the same side of it as the triangle's own third
//     vertex: the two fold over each other on screen, one faces the camera, one faces away),
//     that edge is the pair's edge;
//   * if it is non-manifold, the walk stops without an edge;
//   * otherwise the walk steps into the neighbour (which faces the same way) and continues from
//     the crossing, unless the neighbour is o's triangle (the pair lies on one connected surface),
//     the neighbour has a vertex with w <= 0, or kAaMaxWalkSteps steps were already taken
//     (work code kAaWalkCapped: no edge).
// So on a finely tessellated smooth surface, whose rim triangles are thinner than a pixel on
// screen, the pair still finds the silhouette a few triangles away. (Walking from f's triangle
// alone, kAaMaxWalkSteps = 0, is the paper's rule.) The found edge is used when both its vertices
// have w > 0 and it runs across the pair: horizontal pairs take edges at least as steep as 45
// degrees on screen, vertical pairs the flatter ones (each edge is counted along one axis only).
// With delta = clamp(s, 0, 1) - 1/2 the pair then blends
//   delta >= 0 (crossing in o's half):  out[o] += delta * (color[f] - color[o])
//   delta <  0 (crossing in f's half):  out[f] += delta * (color[f] - color[o])
// i.e. the pixel whose half of the segment the edge crosses takes the other surface's colour in
// proportion to how far past the midpoint the edge lies (at most one half). The blends of the up to
// four pairs of a pixel are added to its input colour (all read the input colours, none another
// blend). Gradients reach both colours and, through s, the x, y, w of the found edge's two
// vertices (the triangles walked through carry none: the edge's crossing does not depend on them).
#pragma once

#include "../common.h"

namespace rastlit {

// Per-pixel work, four int32 per pixel: [0], [1] the pair (x, y)-(x+1, y), [2], [3] the pair
// (x, y)-(x, y+1). Of each pair: a code and the triangle whose edge was found (-1 when none).
// Code 0: no blend; kAaWalkCapped: no blend, the walk hit kAaMaxWalkSteps; otherwise
// 1 + 3 * side + edge, side 1 when the second pixel of the pair is the front.
constexpr int kAaNoWork = 0;
constexpr int kAaWalkCapped = -1;
constexpr int kAaWorkPerPixel = 4;
// Most triangles the walk steps into beyond the front pixel's own. Walks are short: on
// icosphere(3) at 64 px the longest takes 5 steps, and on icospheres of up to 1.3M triangles at
// 256-512 px no walk reaches this cap (16 was reached by ~600 pairs at 320k triangles, 256 px).
// It bounds the cost on pathological meshes (many slivers per pixel) and inconsistent tables.
constexpr int kAaMaxWalkSteps = 64;
// Topology hash entries, [T,6]: columns 0-2 the vertex opposite edge k across it, columns 3-5 the
// triangle across edge k; either a valid index or one of these.
constexpr int32_t kAaBoundary = -1;     // no neighbour across the edge: always a silhouette
constexpr int32_t kAaNonManifold = -2;  // 3+ triangles, or a degenerate triangle: never a silhouette

template <typename T>
struct AntialiasParams {
  const T* color;       // [B,H,W,C]
  const T* rast;        // [B,H,W,4]
  const T* pos;         // [B,V,4] when pos_batched, else [V,4] shared by all views
  bool pos_batched;
  const int32_t* tri;   // [T,3], indices checked to lie in [0, V)
  const int32_t* opp;   // [T,6] topology hash: [t, k] the vertex opposite edge k across it, [t, 3 + k] the
                        // triangle across it; kAaBoundary / kAaNonManifold when none
  int64_t num_vertices, num_triangles, num_views, num_channels;
  int height, width;
  int32_t* work;        // [B,H,W,4]: written by the forward, read by the backward
  T* out;               // [B,H,W,C] (forward)
  const T* grad_out;    // [B,H,W,C] (backward)
  T* grad_color;        // [B,H,W,C] (backward)
  T* grad_pos;          // shape of pos, zero-initialized by the caller (backward)
  int num_threads;
};

// Triangle index of a pixel: -1 background, -2 an id outside [0, num_triangles].
template <typename T>
RL_HD int64_t aa_pixel_triangle(const T* r, int64_t num_triangles) {
  const T idf = r[3];
  if (idf == T(0)) return -1;
  if (!(idf >= T(1)) || !(idf < T(num_triangles) + T(1))) return -2;
  return int64_t(idf) - 1;
}

template <typename T>
RL_HD const T* aa_pos_view(const AntialiasParams<T>& p, int64_t b) {
  return p.pos + (p.pos_batched ? b * p.num_vertices * 4 : 0);
}

template <typename T>
RL_HD Vec3<double> aa_vertex(const T* pv, int64_t v) {
  const T* q = pv + 4 * v;
  return make_vec3<double>(double(q[0]), double(q[1]), double(q[3]));
}

// The pixel centre (X, Y, 1) in NDC.
RL_HD Vec3<double> aa_centre(int x, int y, int width, int height) {
  return make_vec3<double>(pixel_center_ndc<double>(x, width), pixel_center_ndc<double>(y, height), 1.0);
}

// Each edge is handled by one kind of pair only: horizontal pairs take edges that are at least as
// steep as 45 degrees on screen (in pixels), vertical pairs the flatter ones. Otherwise a slanted
// edge would be counted by both kinds and its coverage (and gradient) doubled. The line
// n . (X, Y, 1) = 0 has the pixel-space normal (n.x W / 2, n.y H / 2) (up to scale).
RL_HD bool aa_edge_along_axis(const Vec3<double>& n, int axis, int width, int height) {
  const bool steep = std::fabs(n.x) * double(height) >= std::fabs(n.y) * double(width);
  return axis == 0 ? steep : !steep;
}

// A triangle's homogeneous edges, oriented so that its inside is E >= 0.
struct AaTriangle {
  Vec3<double> P[3];  // (x, y, w) of its vertices
  Vec3<double> n[3];  // edge k: P[k+1] x P[k+2]
  double sg;          // sign of det[P0; P1; P2], the homogeneous orientation
};

// Loads triangle t of view b; false if it is degenerate (det 0) or not finite.
template <typename T>
RL_HD bool aa_load_triangle(const AntialiasParams<T>& p, const T* pv, int64_t t, AaTriangle* e) {
  const int32_t* ti = p.tri + 3 * t;
  for (int k = 0; k < 3; ++k) e->P[k] = aa_vertex(pv, ti[k]);
  for (int k = 0; k < 3; ++k) e->n[k] = cross(e->P[(k + 1) % 3], e->P[(k + 2) % 3]);
  const double D = dot(e->P[0], e->n[0]);
  if (!(D != 0.0) || !std::isfinite(D)) return false;
  e->sg = D > 0 ? 1.0 : -1.0;
  return true;
}

// Classifies the pair of pixel (x, y) of view b along `axis` (0: with x+1, 1: with y+1); the
// neighbour must exist. Returns its work code and sets *found to the triangle of the found edge
// (-1 when none); sets *bad for an out-of-range triangle id.
template <typename T>
RL_HD int aa_classify_pair(const AntialiasParams<T>& p, int64_t b, int x, int y, int axis, bool* bad,
                           int32_t* found) {
  *found = -1;
  const int64_t i0 = (b * p.height + y) * p.width + x;
  const int64_t i1 = i0 + (axis == 0 ? 1 : p.width);
  const int64_t t0 = aa_pixel_triangle(p.rast + 4 * i0, p.num_triangles);
  const int64_t t1 = aa_pixel_triangle(p.rast + 4 * i1, p.num_triangles);
  if (t0 == -2 || t1 == -2) {
    *bad = true;
    return kAaNoWork;
  }
  if (t0 == t1) return kAaNoWork;
  int side;
  if (t0 < 0)
    side = 1;
  else if (t1 < 0)
    side = 0;
  else
    side = p.rast[4 * i1 + 2] < p.rast[4 * i0 + 2] ? 1 : 0;  // nearer z/w is the front; a tie keeps the first
  const int64_t tf = side ? t1 : t0, to = side ? t0 : t1;
  const int xf = side && axis == 0 ? x + 1 : x, yf = side && axis == 1 ? y + 1 : y;
  const int xo = !side && axis == 0 ? x + 1 : x, yo = !side && axis == 1 ? y + 1 : y;
  const Vec3<double> qf = aa_centre(xf, yf, p.width, p.height), qo = aa_centre(xo, yo, p.width, p.height);
  const T* pv = aa_pos_view(p, b);
  int64_t t = tf;
  for (int step = 0;; ++step) {
    AaTriangle e;
    if (!aa_load_triangle(p, pv, t, &e)) return kAaNoWork;
    int best = -1;
    double best_s = 0;
    for (int k = 0; k < 3; ++k) {
      const double ef = e.sg * dot(e.n[k], qf), eo = e.sg * dot(e.n[k], qo);
      if (!(eo < 0.0) || !(ef > eo)) continue;  // o inside this edge's half-plane, or no exit through it
      const double s = ef / (ef - eo);
      if (best < 0 || s < best_s) {
        best = k;
        best_s = s;
      }
    }
    if (best < 0) return kAaNoWork;  // the segment ends inside t
    // f's centre well outside its own triangle: rast does not match pos (rounding alone gives tiny
    // negative s, clamped to 0 later).
    if (step == 0 && best_s < -0.0625) return kAaNoWork;
    const int32_t m = p.opp[6 * t + best];
    if (m == kAaNonManifold) return kAaNoWork;
    // Silhouette iff a boundary, or the neighbour folds onto the triangle's own side of the edge.
    if (m < 0 || e.sg * dot(e.n[best], aa_vertex(pv, m)) >= 0.0) {
      const Vec3<double>& Pi = e.P[(best + 1) % 3];
      const Vec3<double>& Pj = e.P[(best + 2) % 3];
      if (!(Pi.z > 0.0) || !(Pj.z > 0.0)) return kAaNoWork;  // w <= 0 (or NaN)
      if (!aa_edge_along_axis(e.n[best], axis, p.width, p.height)) return kAaNoWork;
      *found = int32_t(t);
      return 1 + 3 * side + best;
    }
    const int32_t nb = p.opp[6 * t + 3 + best];
    // No neighbour in the table (or out of range: checked by the binding), or o's own triangle.
    if (nb < 0 || nb >= p.num_triangles || nb == to) return kAaNoWork;
    if (step == kAaMaxWalkSteps) return kAaWalkCapped;
    const int32_t* tn = p.tri + 3 * int64_t(nb);
    for (int k = 0; k < 3; ++k)
      if (!(pv[4 * int64_t(tn[k]) + 3] > T(0))) return kAaNoWork;  // do not walk behind the camera
    t = nb;
  }
}

// The geometry of a pair with a positive work code.
struct AaPair {
  int64_t f, o;         // pixel indices (global, b * H * W + ...) of the front and the other pixel
  int64_t vi, vj;       // the edge's vertex indices (vertex k+1, k+2 of the found triangle)
  Vec3<double> Pi, Pj;  // their (x, y, w)
  Vec3<double> qf, qo;  // the two pixel centres
  double ef, eo;        // homogeneous edge function at the centres (unnormalized)
  double s;             // crossing parameter from f (0) to o (1), unclamped
  double delta;         // clamp(s, 0, 1) - 1/2
  bool clamped;         // s was outside [0, 1] (no gradient to pos)
  bool valid;           // the code and the triangle ids are in range (else skip the pair)
};

template <typename T>
RL_HD AaPair aa_pair(const AntialiasParams<T>& p, int64_t b, int x, int y, int axis, int code, int32_t found) {
  AaPair r;
  const int side = (code - 1) / 3, k = (code - 1) % 3;
  const int64_t i0 = (b * p.height + y) * p.width + x;
  const int64_t i1 = i0 + (axis == 0 ? 1 : p.width);
  r.f = side ? i1 : i0;
  r.o = side ? i0 : i1;
  const int xf = side && axis == 0 ? x + 1 : x, yf = side && axis == 1 ? y + 1 : y;
  const int xo = !side && axis == 0 ? x + 1 : x, yo = !side && axis == 1 ? y + 1 : y;
  r.qf = aa_centre(xf, yf, p.width, p.height);
  r.qo = aa_centre(xo, yo, p.width, p.height);
  const int64_t tf = aa_pixel_triangle(p.rast + 4 * r.f, p.num_triangles);
  // A work tensor that does not belong to rast: skipped.
  r.valid = code >= 1 && code <= 6 && tf >= 0 && found >= 0 && found < p.num_triangles;
  if (!r.valid) {
    r.vi = r.vj = 0;
    r.ef = r.eo = r.s = r.delta = 0.0;
    r.clamped = true;
    return r;
  }
  const int32_t* ti = p.tri + 3 * int64_t(found);
  r.vi = ti[(k + 1) % 3];
  r.vj = ti[(k + 2) % 3];
  const T* pv = aa_pos_view(p, b);
  r.Pi = aa_vertex(pv, r.vi);
  r.Pj = aa_vertex(pv, r.vj);
  const Vec3<double> n = cross(r.Pi, r.Pj);
  r.ef = dot(n, r.qf);
  r.eo = dot(n, r.qo);
  r.s = r.ef / (r.ef - r.eo);
  if (!std::isfinite(r.s)) {  // the edge runs along the pair (0 / 0): a work tensor that does not belong to rast
    r.valid = false;
    r.ef = r.eo = r.s = r.delta = 0.0;
    r.clamped = true;
    return r;
  }
  r.clamped = !(r.s >= 0.0 && r.s <= 1.0);
  const double sc = r.s < 0.0 ? 0.0 : (r.s > 1.0 ? 1.0 : r.s);
  r.delta = sc - 0.5;
  return r;
}

// The pixel a pair modifies.
RL_HD int64_t aa_modified(const AaPair& r) { return r.delta >= 0.0 ? r.o : r.f; }

// Visits the (up to four) pairs that touch pixel (x, y) of view b and have work, in a fixed order
// (left, right, below, above): fn(AaPair).
template <typename T, typename Fn>
RL_HD void aa_for_pixel_pairs(const AntialiasParams<T>& p, int64_t b, int x, int y, Fn&& fn) {
  const int64_t i = (b * p.height + y) * p.width + x;
  auto visit = [&](int px, int py, int axis, const int32_t* w) {
    if (w[0] <= kAaNoWork) return;
    const AaPair r = aa_pair(p, b, px, py, axis, w[0], w[1]);
    if (r.valid) fn(r);
  };
  constexpr int K = kAaWorkPerPixel;
  if (x > 0) visit(x - 1, y, 0, p.work + K * (i - 1));
  if (x + 1 < p.width) visit(x, y, 0, p.work + K * i);
  if (y > 0) visit(x, y - 1, 1, p.work + K * (i - p.width) + 2);
  if (y + 1 < p.height) visit(x, y, 1, p.work + K * i + 2);
}

// Forward output of pixel (x, y) of view b: its colour plus the blends of the pairs that modify it.
template <typename T>
RL_HD void aa_forward_pixel(const AntialiasParams<T>& p, int64_t b, int x, int y) {
  const int64_t C = p.num_channels;
  const int64_t i = (b * p.height + y) * p.width + x;
  T* out = p.out + i * C;
  const T* c = p.color + i * C;
  for (int64_t k = 0; k < C; ++k) out[k] = c[k];
  aa_for_pixel_pairs(p, b, x, y, [&](const AaPair& r) {
    if (aa_modified(r) != i) return;
    const T d = T(r.delta);
    const T* cf = p.color + r.f * C;
    const T* co = p.color + r.o * C;
    for (int64_t k = 0; k < C; ++k) out[k] += d * (cf[k] - co[k]);
  });
}

// Colour gradient of pixel (x, y) of view b: grad_out plus what its colour gave to blends.
template <typename T>
RL_HD void aa_backward_color_pixel(const AntialiasParams<T>& p, int64_t b, int x, int y) {
  const int64_t C = p.num_channels;
  const int64_t i = (b * p.height + y) * p.width + x;
  T* gc = p.grad_color + i * C;
  const T* g = p.grad_out + i * C;
  for (int64_t k = 0; k < C; ++k) gc[k] = g[k];
  aa_for_pixel_pairs(p, b, x, y, [&](const AaPair& r) {
    const T d = T(i == r.f ? r.delta : -r.delta);  // d out[m] / d color[i]
    const T* gm = p.grad_out + aa_modified(r) * C;
    for (int64_t k = 0; k < C; ++k) gc[k] += d * gm[k];
  });
}

// Gradient of the loss with respect to the (x, y, w) of the pair's edge vertices.
template <typename T>
RL_HD bool aa_pair_pos_grad(const AntialiasParams<T>& p, const AaPair& r, double gi[3], double gj[3]) {
  if (!r.valid || r.clamped) return false;
  const int64_t C = p.num_channels;
  const T* gm = p.grad_out + aa_modified(r) * C;
  const T* cf = p.color + r.f * C;
  const T* co = p.color + r.o * C;
  double gs = 0;  // dL/ds = dL/d delta = grad_out[m] . (color[f] - color[o])
  for (int64_t k = 0; k < C; ++k) gs += double(gm[k]) * (double(cf[k]) - double(co[k]));
  if (gs == 0.0) return false;
  // s = ef / (ef - eo): ds/def = -eo / den^2, ds/deo = ef / den^2; dE/dq-weighted direction G.
  const double den = r.ef - r.eo;
  const double a = -gs * r.eo / (den * den), c = gs * r.ef / (den * den);
  const Vec3<double> G = a * r.qf + c * r.qo;
  // E = q . (Pi x Pj): dE/dPi = Pj x q, dE/dPj = q x Pi.
  const Vec3<double> dPi = cross(r.Pj, G), dPj = cross(G, r.Pi);
  gi[0] = dPi.x;
  gi[1] = dPi.y;
  gi[2] = dPi.z;
  gj[0] = dPj.x;
  gj[1] = dPj.y;
  gj[2] = dPj.z;
  return true;
}

// Offset of vertex v of view b in grad_pos.
template <typename T>
RL_HD int64_t aa_grad_pos_offset(const AntialiasParams<T>& p, int64_t b, int64_t v) {
  return ((p.pos_batched ? b * p.num_vertices : 0) + v) * 4;
}

template <typename T>
int antialias_fwd_cpu(const AntialiasParams<T>& p);
template <typename T>
int antialias_bwd_cpu(const AntialiasParams<T>& p);

struct CudaWorkspace;  // cuda_common.cuh
template <typename T>
int antialias_fwd_cuda(const AntialiasParams<T>& p, const CudaWorkspace& ws);
template <typename T>
int antialias_bwd_cuda(const AntialiasParams<T>& p, const CudaWorkspace& ws);

}  // namespace rastlit
