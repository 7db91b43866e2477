// Soft rasterization on CUDA, all views in one pass, over the same header math as the CPU path:
//   1. setup: one thread per (view, triangle) slot -> SoftTriangle and its count of 16x16 tiles
//      (box grown by sqrt(blur_radius))
//   2. exact binning: exclusive scan of the counts, each slot emits (view * tiles + tile, slot)
//      pairs into its own range, stable radix sort by key: every bin lists its triangles in
//      ascending index order and nothing is ever truncated (tile_binning_cuda.cuh, shared with
//      rasterize, as is the slot layout)
//   3. one 16x16 thread block per (view, tile): each thread keeps the K nearest (z, id) of its
//      pixel by insertion sort over the bin (setups staged in shared memory), then writes them.
// Backward: by default one thread per output slot adds its gradient to the face's vertices with
// float atomics. Under torch.use_deterministic_algorithms, one thread per (view, triangle) sums
// the triangle's gradient over its pixel box in a fixed order (rasterize_soft.h), then one
// thread adds all triangles to the vertices in slot order: bitwise reproducible, slower.
#include "../cuda_common.cuh"
#include "../tile_binning_cuda.cuh"
#include "rasterize_soft.h"

namespace rastlit {
namespace {

constexpr int kTS = kSoftTileSize;
constexpr int kChunk = 32;  // triangle setups staged in shared memory at a time

template <typename T>
__global__ void soft_setup_kernel(const T* pos_all, const int32_t* tri_all, bool range_mode, int64_t num_vertices,
                                  SlotMap m, int64_t num_slots, double blur, int height, int width,
                                  SoftTriangle* setups, unsigned char* valid, int64_t* tile_counts) {
  const int64_t slot = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (slot >= num_slots) return;
  int64_t view, t;
  slot_to_view(m, slot, &view, &t);
  const T* pos = view_pos(pos_all, range_mode, view, num_vertices);
  const int32_t* ti = tri_all + 3 * t;
  SoftTriangle s;
  const bool ok = soft_setup(pos + 4 * int64_t(ti[0]), pos + 4 * int64_t(ti[1]), pos + 4 * int64_t(ti[2]), blur,
                             height, width, &s);
  setups[slot] = s;
  valid[slot] = ok;
  if (tile_counts) tile_counts[slot] = ok ? tile_span_count<kTS>(s) : 0;
}

template <typename T>
__global__ void soft_raster_kernel(SoftRasterizeFwdParams<T> p, SlotMap m, const SoftTriangle* setups,
                                   const int32_t* bin_slots, const int64_t* bin_begin, const int64_t* bin_end,
                                   int tiles_x, int64_t num_tiles) {
  __shared__ SoftTriangle s_setup[kChunk];
  __shared__ int32_t s_tri[kChunk];
  const int64_t key = blockIdx.x;
  const int64_t view = key / num_tiles, tile = key % num_tiles;
  const int x = int(tile % tiles_x) * kTS + int(threadIdx.x % kTS);
  const int y = int(tile / tiles_x) * kTS + int(threadIdx.x / kTS);
  const bool inside = x < p.width && y < p.height;
  const double px = pixel_center_ndc<double>(x, p.width), py = pixel_center_ndc<double>(y, p.height);
  const int K = p.K;
  double zs[kMaxFacesPerPixel];
  int32_t ids[kMaxFacesPerPixel];
  int32_t slots_k[kMaxFacesPerPixel];
  int n = 0;
  const int64_t b0 = bin_begin[key], b1 = bin_end[key];
  for (int64_t base = b0; base < b1; base += kChunk) {
    const int cnt = int(min(int64_t(kChunk), b1 - base));
    __syncthreads();
    if (int(threadIdx.x) < cnt) {
      const int32_t slot = bin_slots[base + threadIdx.x];
      s_setup[threadIdx.x] = setups[slot];
      s_tri[threadIdx.x] = slot;
    }
    __syncthreads();
    if (!inside) continue;
    for (int j = 0; j < cnt; ++j) {
      const SoftTriangle& s = s_setup[j];
      if (x < s.x0 || x > s.x1 || y < s.y0 || y > s.y1) continue;
      SoftSample smp;
      if (!soft_sample(s, px, py, p.blur_radius, p.clip_barycentric_coords, &smp, nullptr, n == K ? zs[K - 1] : 1.0))
        continue;
      int64_t v, t;
      slot_to_view(m, s_tri[j], &v, &t);
      soft_insert(zs, ids, slots_k, &n, K, smp.z, int32_t(t), s_tri[j]);
    }
  }
  if (!inside) return;
  const int64_t o = ((view * p.height + y) * int64_t(p.width) + x) * K;
  for (int k = 0; k < K; ++k) {
    if (k >= n) {
      p.face_ids[o + k] = -1;
      p.zbuf[o + k] = p.dists[o + k] = T(-1);
      p.bary[3 * (o + k)] = p.bary[3 * (o + k) + 1] = p.bary[3 * (o + k) + 2] = T(-1);
      continue;
    }
    const SoftTriangle& s = setups[slots_k[k]];
    SoftSample smp;
    double dist = 0;
    soft_sample(s, px, py, p.blur_radius, p.clip_barycentric_coords, &smp, &dist);
    soft_outputs(s, smp, dist, p.perspective_correct, p.clip_barycentric_coords, p.zbuf + o + k, p.bary + 3 * (o + k),
                 p.dists + o + k);
    p.face_ids[o + k] = ids[k];
  }
}

// Deterministic mode: one thread per slot sums its triangle's gradient over its pixel box in a
// fixed order (rasterize_soft.h).
template <typename T>
__global__ void soft_backward_triangle_kernel(SoftRasterizeBwdParams<T> p, SlotMap m, int64_t num_slots,
                                              const SoftTriangle* setups, const unsigned char* valid,
                                              double* tri_grad) {
  const int64_t slot = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (slot >= num_slots) return;
  double* g = tri_grad + 12 * slot;
  if (!valid[slot]) {
    for (int k = 0; k < 12; ++k) g[k] = 0.0;
    return;
  }
  int64_t view, t;
  slot_to_view(m, slot, &view, &t);
  soft_triangle_backward(p, setups[slot], view, int32_t(t), g);
}

// Default mode: one thread per output slot [B,H,W,K], vertex gradients added with atomics
// (fast, scales with covered area whatever the triangle sizes, not bitwise reproducible).
template <typename T>
__global__ void soft_backward_slot_kernel(SoftRasterizeBwdParams<T> p, SlotMap m, const SoftTriangle* setups,
                                          const unsigned char* valid, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int32_t id = p.face_ids[i];
  if (id < 0) return;
  const int64_t pix = i / p.K, npix = int64_t(p.height) * p.width;
  const int64_t view = pix / npix, rem = pix % npix;
  const int x = int(rem % p.width), y = int(rem / p.width);
  int64_t slot;
  if (!m.view_offset) {
    if (id >= p.num_triangles) return;
    slot = view * p.num_triangles + id;
  } else {
    const int64_t start = m.view_start[view], count = m.view_offset[view + 1] - m.view_offset[view];
    if (id < start || id >= start + count) return;
    slot = m.view_offset[view] + (id - start);
  }
  if (!valid[slot]) return;
  const SoftTriangle& s = setups[slot];
  if (x < s.x0 || x > s.x1 || y < s.y0 || y > s.y1) return;  // as the per-triangle walk
  double g[12];
  for (int k = 0; k < 12; ++k) g[k] = 0.0;
  soft_slot_backward(p, s, x, y, i, g);
  T* grad = p.ranges ? p.grad_pos : p.grad_pos + view * p.num_vertices * 4;
  const int32_t* ti = p.tri + 3 * int64_t(id);
  for (int k = 0; k < 3; ++k) {
    T* gp = grad + 4 * int64_t(ti[k]);
    for (int c = 0; c < 4; ++c)
      if (g[4 * k + c] != 0.0) atomicAdd(gp + c, T(g[4 * k + c]));
  }
}

// Deterministic mode: one thread adds every triangle's gradient in slot order (double sums).
template <typename T>
__global__ void soft_serial_scatter_kernel(SoftRasterizeBwdParams<T> p, SlotMap m, int64_t num_slots,
                                           const unsigned char* valid, const double* tri_grad, double* acc,
                                           int64_t acc_size) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  for (int64_t slot = 0; slot < num_slots; ++slot) {
    if (!valid[slot]) continue;
    int64_t view, t;
    slot_to_view(m, slot, &view, &t);
    double* a = p.ranges ? acc : acc + view * p.num_vertices * 4;
    const int32_t* ti = p.tri + 3 * t;
    for (int k = 0; k < 3; ++k)
      for (int c = 0; c < 4; ++c) a[4 * int64_t(ti[k]) + c] += tri_grad[12 * slot + 4 * k + c];
  }
  (void)acc_size;
}

template <typename T>
__global__ void soft_cast_kernel(const double* acc, int64_t n, T* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = T(acc[i]);
}

}  // namespace

// p.ranges, when set, points to HOST memory (the binding passes the CPU tensor).
template <typename T>
int rasterize_soft_fwd_cuda(const SoftRasterizeFwdParams<T>& p_in, const CudaWorkspace& ws) {
  SoftRasterizeFwdParams<T> p = p_in;
  int status = 0;
  int64_t num_slots = 0;
  const SlotMap m = make_slot_map(p.ranges, p.num_views, p.num_triangles, ws, &num_slots, &status);
  if (status) return status;
  const bool range_mode = p.ranges != nullptr;
  p.ranges = nullptr;  // host memory: never read on the device
  const int tiles_x = int(div_up(p.width, kTS)), tiles_y = int(div_up(p.height, kTS));
  const int64_t num_tiles = int64_t(tiles_x) * tiles_y;
  const int64_t num_keys = p.num_views * num_tiles;
  if (num_slots > kMaxBinEntries || num_keys > 2147483647) return kTooManyBinned;
  if (num_keys == 0) return 0;

  SoftTriangle* setups = ws.get<SoftTriangle>(size_t(num_slots) + 1);
  unsigned char* valid = ws.get<unsigned char>(size_t(num_slots) + 1);
  int64_t* counts = ws.get<int64_t>(size_t(num_slots) + 1);
  int64_t* offsets = ws.get<int64_t>(size_t(num_slots) + 1);
  RL_CUDA_TRY(cudaMemsetAsync(counts, 0, sizeof(int64_t) * size_t(num_slots + 1), ws.stream));
  if (num_slots > 0) {
    soft_setup_kernel<T><<<unsigned(div_up(num_slots, 128)), 128, 0, ws.stream>>>(
        p.pos, p.tri, range_mode, p.num_vertices, m, num_slots, p.blur_radius, p.height, p.width, setups, valid,
        counts);
    RL_CUDA_TRY(cudaGetLastError());
  }
  TileBins<int64_t> bins;
  const int st = bin_slots_to_tiles<kTS>(setups, valid, counts, offsets, m, num_slots, tiles_x, num_tiles, num_keys,
                                         ws, &bins);
  if (st) return st;
  soft_raster_kernel<T><<<unsigned(num_keys), kTS * kTS, 0, ws.stream>>>(p, m, setups, bins.slots, bins.begin, bins.end,
                                                                         tiles_x, num_tiles);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

template <typename T>
int rasterize_soft_bwd_cuda(const SoftRasterizeBwdParams<T>& p_in, const CudaWorkspace& ws) {
  SoftRasterizeBwdParams<T> p = p_in;
  int status = 0;
  int64_t num_slots = 0;
  const SlotMap m = make_slot_map(p.ranges, p.num_views, p.num_triangles, ws, &num_slots, &status);
  if (status) return status;
  const bool range_mode = p.ranges != nullptr;
  // Only tested for null on the device from here on (shared vertex set in range mode).
  p.ranges = range_mode ? reinterpret_cast<const int32_t*>(m.view_offset) : nullptr;
  if (num_slots == 0) return 0;
  if (num_slots > kMaxBinEntries) return kTooManyBinned;
  SoftTriangle* setups = ws.get<SoftTriangle>(size_t(num_slots));
  unsigned char* valid = ws.get<unsigned char>(size_t(num_slots));
  const unsigned blocks = unsigned(div_up(num_slots, 128));
  soft_setup_kernel<T><<<blocks, 128, 0, ws.stream>>>(p.pos, p.tri, range_mode, p.num_vertices, m, num_slots,
                                                      p.blur_radius, p.height, p.width, setups, valid, nullptr);
  RL_CUDA_TRY(cudaGetLastError());
  if (!ws.deterministic) {
    const int64_t total = p.num_views * int64_t(p.height) * p.width * p.K;
    if (total > 0) {
      soft_backward_slot_kernel<T><<<unsigned(div_up(total, 256)), 256, 0, ws.stream>>>(p, m, setups, valid, total);
      RL_CUDA_TRY(cudaGetLastError());
    }
    return 0;
  }
  double* tri_grad = ws.get<double>(size_t(num_slots) * 12);
  soft_backward_triangle_kernel<T><<<blocks, 128, 0, ws.stream>>>(p, m, num_slots, setups, valid, tri_grad);
  RL_CUDA_TRY(cudaGetLastError());
  const int64_t acc_size = (range_mode ? 1 : p.num_views) * p.num_vertices * 4;
  double* acc = ws.get<double>(size_t(acc_size) + 1);
  RL_CUDA_TRY(cudaMemsetAsync(acc, 0, sizeof(double) * size_t(acc_size), ws.stream));
  soft_serial_scatter_kernel<T><<<1, 1, 0, ws.stream>>>(p, m, num_slots, valid, tri_grad, acc, acc_size);
  RL_CUDA_TRY(cudaGetLastError());
  if (acc_size > 0) {
    soft_cast_kernel<T><<<unsigned(div_up(acc_size, 256)), 256, 0, ws.stream>>>(acc, acc_size, p.grad_pos);
    RL_CUDA_TRY(cudaGetLastError());
  }
  return 0;
}

template int rasterize_soft_fwd_cuda<float>(const SoftRasterizeFwdParams<float>&, const CudaWorkspace&);
template int rasterize_soft_fwd_cuda<double>(const SoftRasterizeFwdParams<double>&, const CudaWorkspace&);
template int rasterize_soft_bwd_cuda<float>(const SoftRasterizeBwdParams<float>&, const CudaWorkspace&);
template int rasterize_soft_bwd_cuda<double>(const SoftRasterizeBwdParams<double>&, const CudaWorkspace&);

}  // namespace rastlit
