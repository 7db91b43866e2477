// CUDA registration of the rastlit ops. The op functions (checks, allocation, dispatch) are the
// device-generic ones in csrc/<op>/<op>_torch.cpp; this file supplies the CUDA launch environment: the current
// stream, a device guard, scratch memory from torch's caching allocator, and the deterministic
// flag (torch.use_deterministic_algorithms).
#include <torch/extension.h>

#include <ATen/Context.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <functional>
#include <vector>

#include "cuda_common.cuh"
#include "torch_ops.h"

namespace rastlit {

namespace {

struct TorchScratch {
  at::Device device;
  std::vector<at::Tensor> blocks;  // freed (stream-ordered) when the op returns
};

void* torch_scratch_alloc(void* ctx, size_t bytes) {
  auto* s = static_cast<TorchScratch*>(ctx);
  s->blocks.push_back(at::empty({int64_t(bytes)}, at::TensorOptions().dtype(at::kByte).device(s->device)));
  return s->blocks.back().data_ptr();
}

}  // namespace

void run_cuda(const at::Device& device, const char* op, const std::function<int(const CudaWorkspace&)>& launch) {
  const c10::cuda::CUDAGuard guard(device);
  TorchScratch scratch{device, {}};
  CudaWorkspace ws{&torch_scratch_alloc, &scratch, c10::cuda::getCurrentCUDAStream(device.index()).stream(),
                   at::globalContext().deterministicAlgorithms()};
  const int status = launch(ws);
  TORCH_CHECK_VALUE(status != kTooManyBinned, op, ": the scene needs more than ", kMaxBinEntries,
                    " (triangle, tile) bin entries or (view, triangle) pairs; split the batch");
  TORCH_CHECK(status == 0, op, ": CUDA kernel failed (status ", status, "): ", cudaGetErrorString(cudaGetLastError()));
}

TORCH_LIBRARY_IMPL(rastlit, CUDA, m) {
  m.impl("rasterize_fwd", &rasterize_fwd_op);
  m.impl("rasterize_bwd", &rasterize_bwd_op);
  m.impl("interpolate_fwd", &interpolate_fwd_op);
  m.impl("interpolate_bwd", &interpolate_bwd_op);

  m.impl("texture_fwd", &texture_fwd_op);
  m.impl("texture_bwd", &texture_bwd_op);

  m.impl("antialias_fwd", &antialias_fwd_op);
  m.impl("antialias_bwd", &antialias_bwd_op);

  m.impl("rasterize_soft_fwd", &rasterize_soft_fwd_op);
  m.impl("rasterize_soft_bwd", &rasterize_soft_bwd_op);
}

}  // namespace rastlit
