// Exact sign of 3x3 determinants ("orientation" in homogeneous 2D), for watertight coverage.
//
// Shared edges and vertices are covered exactly once only if every triangle agrees on which
// side of an edge a pixel centre lies, including when it lies exactly on it. Rounded edge
// functions can disagree near a vertex (each edge is consistent, but the tie rule is only a
// valid partition when the zeros are exact), so coverage uses a filtered exact predicate in the
// manner of Shewchuk ("Adaptive Precision Floating-Point Arithmetic and Fast Robust Geometric
// Predicates", 1997): evaluate in the working precision with a forward error bound, and only when
// the value is within the bound recompute the sign exactly with floating-point expansions.
#pragma once

#include <cmath>

#include "common.h"

namespace rastlit {

RL_HD void two_sum(double a, double b, double& s, double& err) {
  s = a + b;
  const double bv = s - a;
  const double av = s - bv;
  err = (a - av) + (b - bv);
}

// Exact product a * b = p + err. With a hardware fused multiply-add (CUDA, or a host compiled
// for FMA) that is one instruction; otherwise Dekker's splitting (a software fma call costs ~50x).
RL_HD void two_prod(double a, double b, double& p, double& err) {
  p = a * b;
#if defined(__CUDA_ARCH__) || defined(__FMA__)
  err = fma(a, b, -p);
#else
  const double split = 134217729.0;  // 2^27 + 1
  double t = split * a;
  const double ahi = t - (t - a), alo = a - ahi;
  t = split * b;
  const double bhi = t - (t - b), blo = b - bhi;
  err = ((ahi * bhi - p) + ahi * blo + alo * bhi) + alo * blo;
#endif
}

// Sign of the exact sum of n doubles (n <= 32), by Shewchuk's grow-expansion with zero
// elimination: the result is a nonoverlapping expansion ordered by magnitude, whose largest
// component carries the sign.
RL_HD int exact_sum_sign(const double* x, int n) {
  double e[32];
  int m = 0;
  for (int i = 0; i < n; ++i) {
    double q = x[i];
    int k = 0;
    for (int j = 0; j < m; ++j) {
      double s, h;
      two_sum(q, e[j], s, h);
      if (h != 0.0) e[k++] = h;
      q = s;
    }
    if (q != 0.0) e[k++] = q;
    m = k;
  }
  return m == 0 ? 0 : (e[m - 1] > 0.0 ? 1 : -1);
}

// Appends the exact product s * a * b * c as four doubles.
RL_HD int push_triple_product(double s, double a, double b, double c, double* out, int n) {
  double h, l, h1, l1, h2, l2;
  two_prod(s * a, b, h, l);  // s is +-1: exact
  two_prod(h, c, h1, l1);
  two_prod(l, c, h2, l2);
  out[n] = h1;
  out[n + 1] = l1;
  out[n + 2] = h2;
  out[n + 3] = l2;
  return n + 4;
}

// Exact sign of det[a; b; c] = c . (a x b) for 3-vectors (x, y, w).
template <typename T>
RL_HD int orient_sign_exact(const Vec3<T>& a, const Vec3<T>& b, const Vec3<T>& c) {
  double t[24];
  int n = 0;
  n = push_triple_product(1.0, a.y, b.z, c.x, t, n);
  n = push_triple_product(-1.0, a.z, b.y, c.x, t, n);
  n = push_triple_product(1.0, a.z, b.x, c.y, t, n);
  n = push_triple_product(-1.0, a.x, b.z, c.y, t, n);
  n = push_triple_product(1.0, a.x, b.y, c.z, t, n);
  n = push_triple_product(-1.0, a.y, b.x, c.z, t, n);
  return exact_sum_sign(t, n);
}

// Exact sign of p * q - r * s. Float products are exact in double, and the sign of a rounded
// difference is exact; doubles go through a filter and then expansions.
RL_HD int diff_prod_sign_exact(float p, float q, float r, float s) {
  const double d = double(p) * double(q) - double(r) * double(s);
  return d > 0 ? 1 : (d < 0 ? -1 : 0);
}
RL_HD int diff_prod_sign_exact(double p, double q, double r, double s) {
  const double a = p * q, b = r * s, d = a - b;
  const double bound = 4.0 * 1.1102230246251565e-16 * (fabs(a) + fabs(b));
  if (d > bound) return 1;
  if (d < -bound) return -1;
  double t[4];
  two_prod(p, q, t[0], t[1]);
  two_prod(-r, s, t[2], t[3]);
  return exact_sum_sign(t, 4);
}

// Sign of det[a; b; c] = c . (a x b): evaluated in double with a forward error bound (float
// input: the 2x2 minors are exact in double, so the bound is tiny), exactly when within it.
template <typename T>
RL_HD int orient_sign(const Vec3<T>& a, const Vec3<T>& b, const Vec3<T>& c) {
  const double ax = a.x, ay = a.y, az = a.z, bx = b.x, by = b.y, bz = b.z;
  const double m0 = ay * bz - az * by, m1 = az * bx - ax * bz, m2 = ax * by - ay * bx;
  const double d = double(c.x) * m0 + double(c.y) * m1 + double(c.z) * m2;
  const double mag = fabs(double(c.x)) * (fabs(ay * bz) + fabs(az * by)) +
                     fabs(double(c.y)) * (fabs(az * bx) + fabs(ax * bz)) +
                     fabs(double(c.z)) * (fabs(ax * by) + fabs(ay * bx));
  const double bound = 8.0 * 1.1102230246251565e-16 * mag;
  if (d > bound) return 1;
  if (d < -bound) return -1;
  return orient_sign_exact(a, b, c);
}

// Unit roundoff of T, and a safe multiple of it bounding the rounding error of
// c . p with c = a x b evaluated in T (six roundings along the longest path).
template <typename T>
struct Roundoff;
template <>
struct Roundoff<float> {
  static constexpr double u = 5.9604644775390625e-08;  // 2^-24
};
template <>
struct Roundoff<double> {
  static constexpr double u = 1.1102230246251565e-16;  // 2^-53
};
template <typename T>
RL_HD T orient_error_factor() {
  return T(8.0 * Roundoff<T>::u);
}

}  // namespace rastlit
