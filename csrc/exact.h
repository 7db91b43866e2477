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

}  // namespace rastlit
