// The torch boundary: the op schemas and their CPU registration. Each op's checks, allocation and
// launch live beside its kernels (csrc/<op>/<op>_torch.cpp); ops_cuda.cpp registers the same
// functions for CUDA.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include "torch_ops.h"

namespace rastlit {

int64_t parallel_probe_op(int64_t requested) {
  return parallel_probe_threads(int(requested > 0 ? requested : at::get_num_threads()));
}

TORCH_LIBRARY(rastlit, m) {
  m.def("rasterize_fwd(Tensor pos, Tensor tri, int height, int width, Tensor? ranges, bool grad_db, Tensor? peel=None) -> (Tensor, Tensor)");
  m.def("rasterize_bwd(Tensor pos, Tensor tri, Tensor rast, Tensor? ranges, Tensor grad_rast, Tensor? grad_rast_db) -> Tensor");
  m.def("interpolate_fwd(Tensor attr, Tensor rast, Tensor tri, Tensor? rast_db, int[] diff_attrs) -> (Tensor, Tensor)");
  m.def("interpolate_bwd(Tensor attr, Tensor rast, Tensor tri, Tensor? rast_db, int[] diff_attrs, Tensor grad_out, Tensor? grad_out_da) -> (Tensor, Tensor, Tensor)");
  m.def("parallel_probe(int requested) -> int", &parallel_probe_op);

  m.def("texture_fwd(Tensor tex, Tensor[] mips, Tensor uv, Tensor? uv_da, Tensor? mip_level_bias, int filter_mode, int boundary_mode) -> Tensor");
  m.def("texture_bwd(Tensor tex, Tensor[] mips, Tensor uv, Tensor? uv_da, Tensor? mip_level_bias, int filter_mode, int boundary_mode, Tensor grad_out) -> (Tensor, Tensor[], Tensor, Tensor, Tensor)");

  m.def("antialias_fwd(Tensor color, Tensor rast, Tensor pos, Tensor tri, Tensor topology_hash, float pos_gradient_boost) -> (Tensor, Tensor)");
  m.def("antialias_bwd(Tensor color, Tensor rast, Tensor pos, Tensor tri, Tensor topology_hash, Tensor work, Tensor grad_out) -> (Tensor, Tensor)");

  m.def("rasterize_soft_fwd(Tensor pos, Tensor tri, int height, int width, int faces_per_pixel, float blur_radius, bool perspective_correct, bool clip_barycentric_coords, Tensor? ranges) -> (Tensor zbuf, Tensor bary, Tensor dists, Tensor face_ids)");
  m.def("rasterize_soft_bwd(Tensor pos, Tensor tri, Tensor face_ids, float blur_radius, bool perspective_correct, bool clip_barycentric_coords, Tensor? ranges, Tensor grad_zbuf, Tensor grad_bary, Tensor grad_dists) -> Tensor");
}

TORCH_LIBRARY_IMPL(rastlit, CPU, m) {
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
