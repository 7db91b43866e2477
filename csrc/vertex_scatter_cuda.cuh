// Deterministic per-vertex sums on the GPU. Backward passes add per-pixel contributions onto
// the vertices of the pixel's triangle; float atomics make that order-dependent. In
// deterministic mode the (vertex, pixel, corner) incidences are sorted by vertex with a stable
// radix sort (pixel order kept within a vertex), and one thread per vertex adds its
// contributions in that order: the same bits every run.
#pragma once

#include <cub/cub.cuh>

#include "cuda_common.cuh"

namespace rastlit {

struct VertexIncidence {
  const uint64_t* keys;  // sorted vertex keys; kNoVertex marks padding (background pixels)
  const int64_t* items;  // pixel * 3 + corner, in pixel order within a key
  int64_t count;         // entries (3 per pixel, padding included)
};

constexpr uint64_t kNoVertex = ~uint64_t(0);

// keys[3 * pixel + k] = vertex key of corner k of the pixel's triangle, or kNoVertex.
template <typename T>
__global__ void incidence_keys_kernel(const T* rast, const int32_t* tri, int64_t num_triangles, int64_t npix_view,
                                      int64_t total_pix, int64_t keys_per_view, uint64_t* keys, int64_t* items) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total_pix) return;
  const T idf = rast[4 * i + 3];
  const int64_t b = i / npix_view;
  const bool ok = idf >= T(1) && idf < T(num_triangles) + T(1);
  const int64_t t = ok ? int64_t(idf) - 1 : 0;
  for (int k = 0; k < 3; ++k) {
    keys[3 * i + k] = ok ? uint64_t(b * keys_per_view + tri[3 * t + k]) : kNoVertex;
    items[3 * i + k] = 3 * i + k;
  }
}

// keys_per_view: V when each view has its own vertex slice (keys b * V + v), 0 when the views
// share one (keys v).
template <typename T>
int build_vertex_incidence(const T* rast, const int32_t* tri, int64_t num_triangles, int64_t npix_view,
                           int64_t total_pix, int64_t keys_per_view, const CudaWorkspace& ws, VertexIncidence* out) {
  const int64_t n = 3 * total_pix;
  uint64_t* keys_in = ws.get<uint64_t>(n);
  uint64_t* keys_out = ws.get<uint64_t>(n);
  int64_t* items_in = ws.get<int64_t>(n);
  int64_t* items_out = ws.get<int64_t>(n);
  if (n == 0) {
    *out = {keys_out, items_out, 0};
    return 0;
  }
  incidence_keys_kernel<T><<<unsigned(div_up(total_pix, 256)), 256, 0, ws.stream>>>(
      rast, tri, num_triangles, npix_view, total_pix, keys_per_view, keys_in, items_in);
  RL_CUDA_TRY(cudaGetLastError());
  size_t temp_bytes = 0;
  RL_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, items_in, items_out, n, 0, 64,
                                              ws.stream));
  void* temp = ws.alloc(ws.ctx, temp_bytes);
  RL_CUDA_TRY(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, items_in, items_out, n, 0, 64,
                                              ws.stream));
  *out = {keys_out, items_out, n};
  return 0;
}

// True for the first entry of a key's run (the thread that owns that vertex's sum).
__device__ inline bool incidence_head(const VertexIncidence& inc, int64_t i) {
  return inc.keys[i] != kNoVertex && (i == 0 || inc.keys[i - 1] != inc.keys[i]);
}

}  // namespace rastlit
