// Shared helpers for rastlit kernels. No torch/ATen/c10 headers here or in any kernel file:
// kernels take raw pointers, sizes and a params struct, so they rebuild in seconds and every .cu
// compile-checks with a plain `nvcc -c`.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RL_HD __host__ __device__ __forceinline__
#else
#define RL_HD inline
#endif

namespace rastlit {

// Status codes a kernel returns to its binding, which turns them into Python exceptions.
enum KernelStatus : int {
  kOk = 0,
  kBadTriangleId = 1,  // rast[..., 3] holds an id outside [0, num_triangles]
};

template <typename T>
struct Vec3 {
  T x, y, z;
};

template <typename T>
RL_HD Vec3<T> make_vec3(T x, T y, T z) {
  Vec3<T> r;
  r.x = x;
  r.y = y;
  r.z = z;
  return r;
}

// Written out term by term (no FMA-friendly rearrangement) so that cross(a, b) == -cross(b, a)
// bit for bit: the exact antisymmetry is what makes shared edges watertight.
template <typename T>
RL_HD Vec3<T> cross(const Vec3<T>& a, const Vec3<T>& b) {
  return make_vec3<T>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

template <typename T>
RL_HD T dot(const Vec3<T>& a, const Vec3<T>& b) {
  return a.x * b.x + a.y * b.y + a.z * b.z;
}

template <typename T>
RL_HD Vec3<T> operator+(const Vec3<T>& a, const Vec3<T>& b) {
  return make_vec3<T>(a.x + b.x, a.y + b.y, a.z + b.z);
}

template <typename T>
RL_HD Vec3<T> operator*(T s, const Vec3<T>& a) {
  return make_vec3<T>(s * a.x, s * a.y, s * a.z);
}

template <typename T>
RL_HD bool all_finite4(const T* p) {
  return std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3]);
}

// dst += v for a scatter whose destinations threads may share: atomicAdd on the GPU; on the CPU
// the callers give each destination range to one thread in a fixed order, so a plain add.
template <typename T>
RL_HD void scatter_add(T* dst, T v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(dst, v);
#else
  *dst += v;
#endif
}

// NDC coordinate of the centre of pixel `i` along an axis of `n` pixels (row 0 at -1).
template <typename T>
RL_HD T pixel_center_ndc(int i, int n) {
  return (T(2) * T(i) + T(1)) / T(n) - T(1);
}

}  // namespace rastlit
