// CUDA registration of the rastlit ops. The op functions (checks, allocation, dispatch) are the
// device-generic ones in ops.cpp; this file supplies the CUDA launch environment: the current
// stream, a device guard, scratch memory from torch's caching allocator, and the deterministic
// flag (torch.use_deterministic_algorithms).
#include <torch/extension.h>

#include <ATen/Context.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <functional>
#include <vector>

#include "cuda_common.cuh"

namespace rastlit {

std::tuple<at::Tensor, at::Tensor> rasterize_fwd_op(const at::Tensor& pos, const at::Tensor& tri, int64_t height,
                                                    int64_t width, const c10::optional<at::Tensor>& ranges,
                                                    bool grad_db, const c10::optional<at::Tensor>& peel);
at::Tensor rasterize_bwd_op(const at::Tensor& pos, const at::Tensor& tri, const at::Tensor& rast,
                            const c10::optional<at::Tensor>& ranges, const at::Tensor& grad_rast,
                            const c10::optional<at::Tensor>& grad_rast_db);
std::tuple<at::Tensor, at::Tensor> interpolate_fwd_op(const at::Tensor& attr, const at::Tensor& rast,
                                                      const at::Tensor& tri, const c10::optional<at::Tensor>& rast_db,
                                                      at::IntArrayRef diff_attrs);
std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_bwd_op(const at::Tensor& attr, const at::Tensor& rast,
                                                                  const at::Tensor& tri,
                                                                  const c10::optional<at::Tensor>& rast_db,
                                                                  at::IntArrayRef diff_attrs,
                                                                  const at::Tensor& grad_out,
                                                                  const c10::optional<at::Tensor>& grad_out_da);

at::Tensor texture_fwd_op(const at::Tensor& tex, at::TensorList mips, const at::Tensor& uv,
                          const c10::optional<at::Tensor>& uv_da, const c10::optional<at::Tensor>& mip_level_bias,
                          int64_t filter_mode, int64_t boundary_mode);
std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor, at::Tensor, at::Tensor> texture_bwd_op(
    const at::Tensor& tex, at::TensorList mips, const at::Tensor& uv, const c10::optional<at::Tensor>& uv_da,
    const c10::optional<at::Tensor>& mip_level_bias, int64_t filter_mode, int64_t boundary_mode,
    const at::Tensor& grad_out);

std::tuple<at::Tensor, at::Tensor> antialias_fwd_op(const at::Tensor& color, const at::Tensor& rast,
                                                    const at::Tensor& pos, const at::Tensor& tri,
                                                    const at::Tensor& topology_hash, double pos_gradient_boost);
std::tuple<at::Tensor, at::Tensor> antialias_bwd_op(const at::Tensor& color, const at::Tensor& rast,
                                                    const at::Tensor& pos, const at::Tensor& tri,
                                                    const at::Tensor& topology_hash, const at::Tensor& work,
                                                    const at::Tensor& grad_out);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_soft_fwd_op(
    const at::Tensor& pos, const at::Tensor& tri, int64_t height, int64_t width, int64_t faces_per_pixel,
    double blur_radius, bool perspective_correct, bool clip_barycentric_coords,
    const c10::optional<at::Tensor>& ranges);
at::Tensor rasterize_soft_bwd_op(const at::Tensor& pos, const at::Tensor& tri, const at::Tensor& face_ids,
                                 double blur_radius, bool perspective_correct, bool clip_barycentric_coords,
                                 const c10::optional<at::Tensor>& ranges,
                                 const at::Tensor& grad_zbuf, const at::Tensor& grad_bary,
                                 const at::Tensor& grad_dists);

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
