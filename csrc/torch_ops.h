// The op functions of the torch binding (checks, allocation, dispatch to the CPU or CUDA kernel),
// one file per op (csrc/<op>/<op>_torch.cpp); ops.cpp registers them for the CPU and ops_cuda.cpp
// for CUDA.
#pragma once

#include <torch/extension.h>

#include <tuple>
#include <vector>

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

int parallel_probe_threads(int num_threads);

}  // namespace rastlit
