// Antialias on CUDA: one thread per pixel classifies its two pairs (right, up; each a walk of at
// most kAaMaxWalkSteps triangles towards the silhouette), then one thread per pixel gathers its
// output (forward) or its colour gradient (backward) from the pairs touching it.
// The position gradient goes to the edge vertices with atomics (not bitwise reproducible); with
// torch.use_deterministic_algorithms(True) the pixels with work are compacted in pixel order (CUB
// select, order-preserving) and a single thread adds their pairs in that order instead: bitwise
// reproducible, and cheap since silhouette pixels are a small fraction of the image.
#include <cub/cub.cuh>

#include "../cuda_common.cuh"
#include "antialias.h"

namespace rastlit {
namespace {

template <typename T>
__global__ void antialias_classify_kernel(AntialiasParams<T> p, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t b = i / npix;
  const int y = int((i % npix) / p.width), x = int(i % p.width);
  bool bad = false;  // ids were range-checked by the binding
  int32_t* w = p.work + kAaWorkPerPixel * i;
  int32_t found_h = -1, found_v = -1;
  const int code_h = x + 1 < p.width ? aa_classify_pair(p, b, x, y, 0, &bad, &found_h) : kAaNoWork;
  const int code_v = y + 1 < p.height ? aa_classify_pair(p, b, x, y, 1, &bad, &found_v) : kAaNoWork;
  w[0] = code_h;
  w[1] = found_h;
  w[2] = code_v;
  w[3] = found_v;
}

template <typename T>
__global__ void antialias_forward_kernel(AntialiasParams<T> p, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t npix = int64_t(p.height) * p.width;
  aa_forward_pixel(p, i / npix, int(i % p.width), int((i % npix) / p.width));
}

template <typename T>
__global__ void antialias_backward_color_kernel(AntialiasParams<T> p, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t npix = int64_t(p.height) * p.width;
  aa_backward_color_pixel(p, i / npix, int(i % p.width), int((i % npix) / p.width));
}

template <typename T>
__device__ void aa_add_pair_pos_grad(const AntialiasParams<T>& p, int64_t i, int axis, bool atomic) {
  const int64_t npix = int64_t(p.height) * p.width;
  const int64_t b = i / npix;
  const int y = int((i % npix) / p.width), x = int(i % p.width);
  const int32_t* w = p.work + kAaWorkPerPixel * i + 2 * axis;
  if (w[0] <= kAaNoWork || (axis == 0 ? x + 1 >= p.width : y + 1 >= p.height)) return;
  const AaPair r = aa_pair(p, b, x, y, axis, w[0], w[1]);
  double gi[3], gj[3];
  if (!aa_pair_pos_grad(p, r, gi, gj)) return;
  T* a = p.grad_pos + aa_grad_pos_offset(p, b, r.vi);
  T* c = p.grad_pos + aa_grad_pos_offset(p, b, r.vj);
  const int comp[3] = {0, 1, 3};
  for (int k = 0; k < 3; ++k) {
    if (atomic) {
      atomicAdd(a + comp[k], T(gi[k]));
      atomicAdd(c + comp[k], T(gj[k]));
    } else {
      a[comp[k]] += T(gi[k]);
      c[comp[k]] += T(gj[k]);
    }
  }
}

template <typename T>
__global__ void antialias_backward_pos_kernel(AntialiasParams<T> p, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  aa_add_pair_pos_grad(p, i, 0, true);
  aa_add_pair_pos_grad(p, i, 1, true);
}

__global__ void antialias_work_flags_kernel(const int32_t* work, int64_t total, uint8_t* flags, int64_t* ids) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  flags[i] = (work[kAaWorkPerPixel * i] > kAaNoWork || work[kAaWorkPerPixel * i + 2] > kAaNoWork) ? 1 : 0;
  ids[i] = i;
}

// Deterministic mode: the pixels with work, in pixel order, by one thread.
template <typename T>
__global__ void antialias_backward_pos_serial_kernel(AntialiasParams<T> p, const int64_t* pixels, const int64_t* count) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const int64_t n = *count;
  for (int64_t j = 0; j < n; ++j) {
    aa_add_pair_pos_grad(p, pixels[j], 0, false);
    aa_add_pair_pos_grad(p, pixels[j], 1, false);
  }
}

}  // namespace

template <typename T>
int antialias_fwd_cuda(const AntialiasParams<T>& p, const CudaWorkspace& ws) {
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
  if (total == 0) return 0;
  const unsigned blocks = unsigned(div_up(total, 256));
  antialias_classify_kernel<T><<<blocks, 256, 0, ws.stream>>>(p, total);
  RL_CUDA_TRY(cudaGetLastError());
  antialias_forward_kernel<T><<<blocks, 256, 0, ws.stream>>>(p, total);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

template <typename T>
int antialias_bwd_cuda(const AntialiasParams<T>& p, const CudaWorkspace& ws) {
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
  if (total == 0) return 0;
  const unsigned blocks = unsigned(div_up(total, 256));
  antialias_backward_color_kernel<T><<<blocks, 256, 0, ws.stream>>>(p, total);
  RL_CUDA_TRY(cudaGetLastError());
  if (!ws.deterministic) {
    antialias_backward_pos_kernel<T><<<blocks, 256, 0, ws.stream>>>(p, total);
    RL_CUDA_TRY(cudaGetLastError());
    return 0;
  }
  uint8_t* flags = ws.get<uint8_t>(size_t(total));
  int64_t* ids = ws.get<int64_t>(size_t(total));
  int64_t* pixels = ws.get<int64_t>(size_t(total));
  int64_t* count = ws.get<int64_t>(1);
  antialias_work_flags_kernel<<<blocks, 256, 0, ws.stream>>>(p.work, total, flags, ids);
  RL_CUDA_TRY(cudaGetLastError());
  size_t temp_bytes = 0;
  RL_CUDA_TRY(cub::DeviceSelect::Flagged(nullptr, temp_bytes, ids, flags, pixels, count, total, ws.stream));
  void* temp = ws.alloc(ws.ctx, temp_bytes);
  RL_CUDA_TRY(cub::DeviceSelect::Flagged(temp, temp_bytes, ids, flags, pixels, count, total, ws.stream));
  antialias_backward_pos_serial_kernel<T><<<1, 1, 0, ws.stream>>>(p, pixels, count);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

template int antialias_fwd_cuda<float>(const AntialiasParams<float>&, const CudaWorkspace&);
template int antialias_fwd_cuda<double>(const AntialiasParams<double>&, const CudaWorkspace&);
template int antialias_bwd_cuda<float>(const AntialiasParams<float>&, const CudaWorkspace&);
template int antialias_bwd_cuda<double>(const AntialiasParams<double>&, const CudaWorkspace&);

}  // namespace rastlit
