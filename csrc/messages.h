// Error messages for checks that need the values of the inputs, shared by the two bindings (the
// torch ops in ops.cpp and the XLA FFI handlers in jax/ffi_cpu.cpp), so a user sees the same text
// from either framework. Header-only, no framework headers.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

namespace rastlit {

inline std::string msg_tri_range(int64_t lo, int64_t hi, int64_t num_vertices) {
  std::ostringstream s;
  s << "tri holds vertex indices in [" << lo << ", " << hi << "], but there are " << num_vertices
    << " vertices (valid indices are [0, " << num_vertices - 1 << "])";
  return s.str();
}

inline std::string msg_too_many_triangles(int64_t num_triangles, int64_t max_triangles) {
  std::ostringstream s;
  s << "tri has " << num_triangles << " triangles; at most " << max_triangles
    << " are supported (ids must be exact in float32)";
  return s.str();
}

inline std::string msg_bad_rast_ids(const char* op) {
  return std::string(op) +
         ": rast[..., 3] holds a triangle id + 1 outside [0, T] (T = number of triangles in tri); "
         "pass the rast that rasterize() returned for this tri";
}

inline std::string msg_range_outside(int64_t b, int64_t start, int64_t count, int64_t num_triangles) {
  std::ostringstream s;
  s << "ranges[" << b << "] = (" << start << ", " << count << ") is outside tri, which has " << num_triangles
    << " triangles (need start >= 0, count >= 0, start + count <= " << num_triangles << ")";
  return s.str();
}

inline std::string msg_topology_range(const char* what, int64_t lo, int64_t hi, int64_t limit) {
  std::ostringstream s;
  s << "topology_hash holds " << what << " in [" << lo << ", " << hi << "], but they must lie in [0, " << limit
    << ") or be -1 / -2: build it with antialias_construct_topology_hash(tri) for this tri";
  return s.str();
}

}  // namespace rastlit
