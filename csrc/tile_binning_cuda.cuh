// Tile binning on CUDA, shared by rasterize and rasterize_soft: all views in one pass.
//   - Slots: one per (view, triangle) that a view rasterizes; slot = view * T + t in instanced
//     mode, views laid out one after the other in range mode (SlotMap, make_slot_map).
//   - Each op's setup kernel writes one setup per slot (any struct with an inclusive pixel box
//     x0, y0, x1, y1) and its number of tiles (tile_span_count), 0 for an invalid slot.
//   - bin_slots_to_tiles: exclusive scan of the counts, each slot emits (view * tiles + tile, slot)
//     pairs into its own range, a stable radix sort by key; every (view, tile) bin then lists its
//     slots, hence its triangles, in ascending order, and nothing is ever truncated.
// Like every kernel file: no torch headers.
#pragma once

#include <cub/cub.cuh>

#include "cuda_common.cuh"

namespace rastlit {

struct SlotMap {
  const int64_t* view_offset;        // [B+1] first slot of each view (range mode), or null
  const int64_t* view_start;         // [B] first global triangle of each view (range mode)
  int64_t num_views, tris_per_view;  // instanced mode: slot = view * T + t
};

// The view of a slot and its global triangle index.
__device__ inline void slot_to_view(const SlotMap& m, int64_t slot, int64_t* view, int64_t* tri) {
  if (!m.view_offset) {
    *view = slot / m.tris_per_view;
    *tri = slot % m.tris_per_view;
    return;
  }
  int64_t lo = 0, hi = m.num_views - 1;  // last view whose offset <= slot
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (m.view_offset[mid] <= slot) lo = mid; else hi = mid - 1;
  }
  *view = lo;
  *tri = m.view_start[lo] + (slot - m.view_offset[lo]);
}

// The slot layout of a call. ranges_host: [B,2] (start, count) in HOST memory (as in nvdiffrast),
// or null in instanced mode. Range mode: lays the slots out view by view and copies the layout
// to the device (*status = kCudaError if that fails).
inline SlotMap make_slot_map(const int32_t* ranges_host, int64_t num_views, int64_t num_triangles,
                             const CudaWorkspace& ws, int64_t* num_slots, int* status) {
  SlotMap m{nullptr, nullptr, num_views, num_triangles};
  *status = 0;
  if (!ranges_host) {
    *num_slots = num_views * num_triangles;
    return m;
  }
  int64_t* host = new int64_t[2 * num_views + 1];
  host[0] = 0;
  for (int64_t b = 0; b < num_views; ++b) {
    host[b + 1] = host[b] + ranges_host[2 * b + 1];
    host[num_views + 1 + b] = ranges_host[2 * b];
  }
  *num_slots = host[num_views];
  int64_t* dev = ws.get<int64_t>(size_t(2 * num_views + 1));
  if (cudaMemcpyAsync(dev, host, sizeof(int64_t) * size_t(2 * num_views + 1), cudaMemcpyHostToDevice, ws.stream) !=
          cudaSuccess ||
      cudaStreamSynchronize(ws.stream) != cudaSuccess)
    *status = kCudaError;
  delete[] host;
  m.view_offset = dev;
  m.view_start = dev + num_views + 1;
  return m;
}

// The vertex positions of a view: one shared set in range mode, [B,V,4] in instanced mode.
template <typename T>
__device__ const T* view_pos(const T* pos, bool range_mode, int64_t view, int64_t num_vertices) {
  return range_mode ? pos : pos + view * num_vertices * 4;
}

// Number of TS x TS tiles that the inclusive pixel box of setup s touches.
template <int TS, typename S>
__device__ int64_t tile_span_count(const S& s) {
  return int64_t(s.y1 / TS - s.y0 / TS + 1) * (s.x1 / TS - s.x0 / TS + 1);
}

// One thread per slot writes its (key, slot) pairs from offsets[slot] on. A slot is valid when
// valid[slot] is set, or, without a valid array, when its box is not empty (x0 <= x1).
template <int TS, typename S>
__global__ void tile_emit_kernel(const S* setups, const unsigned char* valid, const int64_t* offsets, SlotMap m,
                                 int64_t num_slots, int tiles_x, int64_t num_tiles, uint64_t* keys, int32_t* slots) {
  const int64_t slot = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (slot >= num_slots) return;
  if (valid ? !valid[slot] : setups[slot].x0 > setups[slot].x1) return;
  const S& s = setups[slot];
  int64_t view, t;
  slot_to_view(m, slot, &view, &t);
  int64_t o = offsets[slot];
  for (int ty = s.y0 / TS; ty <= s.y1 / TS; ++ty)
    for (int tx = s.x0 / TS; tx <= s.x1 / TS; ++tx, ++o) {
      keys[o] = uint64_t(view * num_tiles + int64_t(ty) * tiles_x + tx);
      slots[o] = int32_t(slot);
    }
}

// begin[key], end[key]: the range of the sorted keys equal to key (untouched for absent keys).
template <typename I>
__global__ void tile_bin_ranges_kernel(const uint64_t* keys, int64_t n, I* begin, I* end) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const uint64_t k = keys[i];
  if (i == 0 || keys[i - 1] != k) begin[k] = I(i);
  if (i == n - 1 || keys[i + 1] != k) end[k] = I(i + 1);
}

// The bins of a call: key = view * num_tiles + tile holds slots[begin[key] .. end[key]), in
// ascending slot order (begin == end == 0 for an empty bin). I: the index type of begin/end.
template <typename I>
struct TileBins {
  const int32_t* slots;
  const I* begin;
  const I* end;
};

// Bins the slots, after the op's setup kernel: counts[num_slots + 1] holds each slot's tile count
// (tile_span_count; 0 for invalid slots and for the extra last entry), offsets[num_slots + 1] is
// scratch for their exclusive scan; valid as for tile_emit_kernel. Returns 0, kCudaError, or
// kTooManyBinned when there are more than kMaxBinEntries (slot, tile) pairs.
template <int TS, typename S, typename I>
int bin_slots_to_tiles(const S* setups, const unsigned char* valid, const int64_t* counts, int64_t* offsets,
                       const SlotMap& m, int64_t num_slots, int tiles_x, int64_t num_tiles, int64_t num_keys,
                       const CudaWorkspace& ws, TileBins<I>* bins) {
  size_t temp_bytes = 0;
  RL_CUDA_TRY(cub::DeviceScan::ExclusiveSum(nullptr, temp_bytes, counts, offsets, num_slots + 1, ws.stream));
  void* temp = ws.alloc(ws.ctx, temp_bytes);
  RL_CUDA_TRY(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, counts, offsets, num_slots + 1, ws.stream));
  int64_t total = 0;
  RL_CUDA_TRY(cudaMemcpyAsync(&total, offsets + num_slots, sizeof(int64_t), cudaMemcpyDeviceToHost, ws.stream));
  RL_CUDA_TRY(cudaStreamSynchronize(ws.stream));
  if (total > kMaxBinEntries) return kTooManyBinned;

  uint64_t* keys_in = ws.get<uint64_t>(size_t(total) + 1);
  uint64_t* keys_out = ws.get<uint64_t>(size_t(total) + 1);
  int32_t* slots_in = ws.get<int32_t>(size_t(total) + 1);
  int32_t* slots_out = ws.get<int32_t>(size_t(total) + 1);
  I* bin_begin = ws.get<I>(size_t(num_keys));
  I* bin_end = ws.get<I>(size_t(num_keys));
  RL_CUDA_TRY(cudaMemsetAsync(bin_begin, 0, sizeof(I) * size_t(num_keys), ws.stream));
  RL_CUDA_TRY(cudaMemsetAsync(bin_end, 0, sizeof(I) * size_t(num_keys), ws.stream));
  if (total > 0) {
    tile_emit_kernel<TS, S><<<unsigned(div_up(num_slots, 128)), 128, 0, ws.stream>>>(
        setups, valid, offsets, m, num_slots, tiles_x, num_tiles, keys_in, slots_in);
    RL_CUDA_TRY(cudaGetLastError());
    int end_bit = 1;
    while (end_bit < 64 && (uint64_t(1) << end_bit) < uint64_t(num_keys)) ++end_bit;
    temp_bytes = 0;
    RL_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, slots_in, slots_out, total, 0,
                                                end_bit, ws.stream));
    temp = ws.alloc(ws.ctx, temp_bytes);
    RL_CUDA_TRY(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, slots_in, slots_out, total, 0,
                                                end_bit, ws.stream));
    tile_bin_ranges_kernel<I><<<unsigned(div_up(total, 256)), 256, 0, ws.stream>>>(keys_out, total, bin_begin,
                                                                                  bin_end);
    RL_CUDA_TRY(cudaGetLastError());
  }
  bins->slots = slots_out;
  bins->begin = bin_begin;
  bins->end = bin_end;
  return 0;
}

}  // namespace rastlit
