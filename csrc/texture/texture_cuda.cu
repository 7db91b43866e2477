// Texture on CUDA: one thread per pixel for the forward and for the backward. The texel
// gradient is added with float atomics (not bitwise reproducible; the binding refuses the
// backward under torch.use_deterministic_algorithms(True), as torch does for index_add).
#include "../cuda_common.cuh"
#include "texture.h"

namespace rastlit {
namespace {

template <typename T>
__global__ void texture_fwd_kernel(TextureFwdParams<T> p, int64_t total) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  texture_pixel(p, i, p.out + i * p.channels);
}

template <typename T>
__global__ void texture_bwd_kernel(TextureBwdParams<T> q, int64_t total) {
  const TextureFwdParams<T>& p = q.fwd;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  TexTaps<T> t;
  tex_pixel_taps(p, i, &t);
  texture_pixel_backward(q, i, t);
  tex_pixel_scatter(q, i, t);
}

}  // namespace

template <typename T>
int texture_fwd_cuda(const TextureFwdParams<T>& p, const CudaWorkspace& ws) {
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
  if (total == 0) return 0;
  texture_fwd_kernel<T><<<unsigned(div_up(total, 256)), 256, 0, ws.stream>>>(p, total);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

template <typename T>
int texture_bwd_cuda(const TextureBwdParams<T>& q, const CudaWorkspace& ws) {
  const TextureFwdParams<T>& p = q.fwd;
  const int64_t total = p.num_views * int64_t(p.height) * p.width;
  if (total == 0) return 0;
  texture_bwd_kernel<T><<<unsigned(div_up(total, 256)), 256, 0, ws.stream>>>(q, total);
  RL_CUDA_TRY(cudaGetLastError());
  return 0;
}

template int texture_fwd_cuda<float>(const TextureFwdParams<float>&, const CudaWorkspace&);
template int texture_fwd_cuda<double>(const TextureFwdParams<double>&, const CudaWorkspace&);
template int texture_bwd_cuda<float>(const TextureBwdParams<float>&, const CudaWorkspace&);
template int texture_bwd_cuda<double>(const TextureBwdParams<double>&, const CudaWorkspace&);

}  // namespace rastlit
