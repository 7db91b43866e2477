// Rasterize on CUDA, all views in one pass, sort-based binning:
//   1. setup: one thread per (view, triangle) slot -> TriangleSetup and its count of 16x16 tiles
//   2. exclusive scan of the counts, then each slot emits (view * tiles + tile, slot) pairs
//   3. stable radix sort by key: each tile's bin lists its triangles in ascending index order
//      (steps 2-3 and the slot layout: tile_binning_cuda.cuh, shared with rasterize_soft)
//   4. one 16x16 thread block per (view, tile): every thread z-buffers its pixel over the bin,
//      reading triangle setups through shared memory, then writes barycentrics for the winner.
// The winner is the nearest z/w, exact ties to the lower id, so the result does not depend on
// scheduling; coverage uses the same exact predicates (rasterize.h) as the CPU path.
#include "../cuda_common.cuh"
#include "../tile_binning_cuda.cuh"
#include "../vertex_scatter_cuda.cuh"
#include "rasterize.h"

namespace rastlit {
namespace {

constexpr int kTS = kRasterTileSize;
constexpr int kChunk = 64;  // triangle setups staged in shared memory at a time

template <typename T>
__global__ void setup_kernel(RasterizeFwdParams<T> p, SlotMap m, int64_t num_slots, int tiles_x,
                             TriangleSetup<T>* setups, int64_t* tile_counts) {
  const int64_t slot = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (slot >= num_slots) return;
  int64_t view, t;
  slot_to_view(m, slot, &view, &t);
  const T* pos = view_pos(p.pos, p.ranges != nullptr, view, p.num_vertices);
  const int32_t* ti = p.tri + 3 * t;
  TriangleSetup<T> s;
  const bool ok = setup_triangle(pos + 4 * int64_t(ti[0]), pos + 4 * int64_t(ti[1]), pos + 4 * int64_t(ti[2]),
                                 p.height, p.width, &s);
  if (!ok) s.x0 = 1, s.x1 = 0;  // empty box marks an invalid slot
  setups[slot] = s;
  tile_counts[slot] = ok ? tile_span_count<kTS>(s) : 0;
  (void)tiles_x;
}

template <typename T>
__global__ void raster_kernel(RasterizeFwdParams<T> p, SlotMap m, const TriangleSetup<T>* setups,
                              const int32_t* bin_slots, const int32_t* bin_begin, const int32_t* bin_end,
                              int tiles_x, int64_t num_tiles) {
  __shared__ TriangleSetup<T> s_setup[kChunk];
  __shared__ int64_t s_tri[kChunk];
  __shared__ int32_t s_slot[kChunk];
  const int64_t key = blockIdx.x;
  const int64_t view = key / num_tiles, tile = key % num_tiles;
  const int x = int(tile % tiles_x) * kTS + int(threadIdx.x % kTS);
  const int y = int(tile / tiles_x) * kTS + int(threadIdx.x / kTS);
  const bool inside = x < p.width && y < p.height;
  const T px = pixel_center_ndc<T>(x, p.width), py = pixel_center_ndc<T>(y, p.height);
  const T* pos = view_pos(p.pos, p.ranges != nullptr, view, p.num_vertices);
  T best_z = T(0);
  int64_t best_t = -1;
  int32_t best_slot = -1;
  const T* peel = (p.peel && inside) ? p.peel + ((view * p.height + y) * int64_t(p.width) + x) * 4 : nullptr;
  const int32_t b0 = bin_begin[key], b1 = bin_end[key];
  for (int32_t base = b0; base < b1; base += kChunk) {
    const int n = min(kChunk, int(b1 - base));
    __syncthreads();
    if (int(threadIdx.x) < n) {
      const int64_t slot = bin_slots[base + threadIdx.x];
      int64_t v, t;
      slot_to_view(m, slot, &v, &t);
      s_setup[threadIdx.x] = setups[slot];
      s_tri[threadIdx.x] = t;
      s_slot[threadIdx.x] = int32_t(slot);
    }
    __syncthreads();
    if (!inside) continue;
    for (int j = 0; j < n; ++j) {
      const TriangleSetup<T>& s = s_setup[j];
      if (x < s.x0 || x > s.x1 || y < s.y0 || y > s.y1) continue;
      const int64_t t = s_tri[j];
      if (!covers(s, TriangleVertices<T>{pos, p.tri + 3 * t}, px, py)) continue;
      const T z = edge_eval(s.zplane, px, py);
      if (!depth_in_range(z)) continue;
      if (peel && !behind_peeled_layer(peel, z, t)) continue;
      if (best_t < 0 || z < best_z || (z == best_z && t < best_t)) {
        best_z = z;
        best_t = t;
        best_slot = s_slot[j];
      }
    }
  }
  if (!inside) return;
  const int64_t o = ((view * p.height + y) * int64_t(p.width) + x) * 4;
  T* r = p.rast + o;
  T* d = p.rast_db + o;
  if (best_t < 0) {
    r[0] = r[1] = r[2] = r[3] = T(0);
    d[0] = d[1] = d[2] = d[3] = T(0);
    return;
  }
  barycentrics_from_setup(setups[best_slot], px, py, 2.0 / p.width, 2.0 / p.height, r, d);
  r[2] = best_z;
  r[3] = T(best_t + 1);
}

template <typename T>
__global__ void backward_pixel_kernel(RasterizeBwdParams<T> p, int64_t total_pix, T* gbuf) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total_pix) return;
  const T idf = p.rast[4 * i + 3];
  if (!(idf >= T(1) && idf < T(p.num_triangles) + T(1))) return;  // background (ids checked before)
  const int64_t t = int64_t(idf) - 1;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t view = i / npix, pix = i % npix;
  const T* pos = view_pos(p.pos, p.ranges != nullptr, view, p.num_vertices);
  const int32_t* ti = p.tri + 3 * t;
  T ga[9];
  pixel_backward(pos + 4 * int64_t(ti[0]), pos + 4 * int64_t(ti[1]), pos + 4 * int64_t(ti[2]),
                 pixel_center_ndc<T>(int(pix % p.width), p.width), pixel_center_ndc<T>(int(pix / p.width), p.height),
                 T(2) / T(p.width), T(2) / T(p.height), p.grad_rast + 4 * i,
                 p.grad_rast_db ? p.grad_rast_db + 4 * i : nullptr, ga);
  if (gbuf) {  // deterministic mode: keep per-pixel values, summed per vertex in pixel order later
    for (int k = 0; k < 9; ++k) gbuf[9 * i + k] = ga[k];
    return;
  }
  T* grad = p.ranges ? p.grad_pos : p.grad_pos + view * p.num_vertices * 4;
  for (int k = 0; k < 3; ++k) {
    T* g = grad + 4 * int64_t(ti[k]);
    atomicAdd(g + 0, ga[3 * k]);
    atomicAdd(g + 1, ga[3 * k + 1]);
    atomicAdd(g + 3, ga[3 * k + 2]);
  }
}

template <typename T>
__global__ void backward_gather_kernel(VertexIncidence inc, const T* gbuf, T* grad_pos) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= inc.count || !incidence_head(inc, i)) return;
  const uint64_t key = inc.keys[i];
  T gx = 0, gy = 0, gw = 0;
  for (int64_t j = i; j < inc.count && inc.keys[j] == key; ++j) {
    const T* g = gbuf + 3 * inc.items[j];  // items = pixel * 3 + corner
    gx += g[0];
    gy += g[1];
    gw += g[2];
  }
  T* out = grad_pos + 4 * int64_t(key);  // key = view * V + v (instanced) or v (range mode)
  out[0] = gx;
  out[1] = gy;
  out[3] = gw;
}

}  // namespace

// p.ranges, when set, points to HOST memory here (the binding passes the CPU tensor).
template <typename T>
int rasterize_fwd_cuda(const RasterizeFwdParams<T>& p_in, const CudaWorkspace& ws) {
  RasterizeFwdParams<T> p = p_in;
  int status = 0;
  int64_t num_slots = 0;
  const SlotMap m = make_slot_map(p.ranges, p.num_views, p.num_triangles, ws, &num_slots, &status);
  if (status) return status;
  if (p.ranges) p.ranges = reinterpret_cast<const int32_t*>(m.view_offset);  // only tested for null on device
  const int tiles_x = int(div_up(p.width, kTS)), tiles_y = int(div_up(p.height, kTS));
  const int64_t num_tiles = int64_t(tiles_x) * tiles_y;
  const int64_t num_keys = p.num_views * num_tiles;
  if (num_slots > kMaxBinEntries) return kTooManyBinned;
  if (num_keys == 0) return 0;

  TriangleSetup<T>* setups = ws.get<TriangleSetup<T>>(size_t(num_slots) + 1);
  int64_t* counts = ws.get<int64_t>(size_t(num_slots) + 1);
  int64_t* offsets = ws.get<int64_t>(size_t(num_slots) + 1);
  RL_CUDA_TRY(cudaMemsetAsync(counts, 0, sizeof(int64_t) * size_t(num_slots + 1), ws.stream));
  if (num_slots > 0) {
    setup_kernel<T><<<unsigned(div_up(num_slots, 128)), 128, 0, ws.stream>>>(p, m, num_slots, tiles_x, setups, counts);
    RL_CUDA_TRY(cudaGetLastError());
  }
  TileBins<int32_t> bins;
  const int st = bin_slots_to_tiles<kTS>(setups, nullptr, counts, offsets, m, num_slots, tiles_x, num_tiles,
                                         num_keys, ws, &bins);
  if (st) return st;
  if (num_keys > 2147483647) return kTooManyBinned;
  raster_kernel<T><<<unsigned(num_keys), kTS * kTS, 0, ws.stream>>>(p, m, setups, bins.slots, bins.begin, bins.end,
                                                                    tiles_x, num_tiles);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

// Backward: per-pixel gradients with respect to the nine (x, y, w) of the pixel's triangle, added
// to grad_pos with atomics, or (ws.deterministic) gathered per vertex in pixel order.
template <typename T>
int rasterize_bwd_cuda(const RasterizeBwdParams<T>& p, const CudaWorkspace& ws) {
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t total_pix = p.num_views * npix;
  if (total_pix == 0) return 0;
  const unsigned blocks = unsigned(div_up(total_pix, 256));
  if (!ws.deterministic) {
    backward_pixel_kernel<T><<<blocks, 256, 0, ws.stream>>>(p, total_pix, nullptr);
    RL_CUDA_TRY(cudaGetLastError());
    return 0;
  }
  T* gbuf = ws.get<T>(size_t(total_pix) * 9);
  backward_pixel_kernel<T><<<blocks, 256, 0, ws.stream>>>(p, total_pix, gbuf);
  RL_CUDA_TRY(cudaGetLastError());
  VertexIncidence inc;
  const int st = build_vertex_incidence(p.rast, p.tri, p.num_triangles, npix, total_pix,
                                        p.ranges ? 0 : p.num_vertices, ws, &inc);
  if (st) return st;
  if (inc.count > 0) {
    backward_gather_kernel<T><<<unsigned(div_up(inc.count, 256)), 256, 0, ws.stream>>>(inc, gbuf, p.grad_pos);
    RL_CUDA_TRY(cudaGetLastError());
  }
  return 0;
}

template int rasterize_fwd_cuda<float>(const RasterizeFwdParams<float>&, const CudaWorkspace&);
template int rasterize_fwd_cuda<double>(const RasterizeFwdParams<double>&, const CudaWorkspace&);
template int rasterize_bwd_cuda<float>(const RasterizeBwdParams<float>&, const CudaWorkspace&);
template int rasterize_bwd_cuda<double>(const RasterizeBwdParams<double>&, const CudaWorkspace&);

}  // namespace rastlit
