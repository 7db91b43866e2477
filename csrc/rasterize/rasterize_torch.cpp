// The torch binding of rasterize: input checks, output allocation and the launch of the CPU or CUDA
// kernel (csrc/rasterize/rasterize_cpu.cpp, rasterize_cuda.cu). ops.cpp and ops_cuda.cpp register these functions.
#include "../torch_common.h"
#include "../torch_ops.h"
#include "../rasterize/rasterize.h"

namespace rastlit {

std::tuple<at::Tensor, at::Tensor> rasterize_fwd_op(const at::Tensor& pos_in, const at::Tensor& tri_in,
                                                        int64_t height, int64_t width,
                                                        const c10::optional<at::Tensor>& ranges_in, bool grad_db,
                                                        const c10::optional<at::Tensor>& peel_in) {
  (void)grad_db;  // only changes what the backward propagates
  const RasterizeShape s = check_rasterize_inputs(pos_in, tri_in, height, width, ranges_in);
  const at::Tensor pos = pos_in.contiguous(), tri = tri_in.contiguous();
  at::Tensor ranges;
  if (ranges_in.has_value()) ranges = ranges_in->contiguous();
  at::Tensor peel;
  if (peel_in.has_value()) {
    check_image(*peel_in, "peel (the previous depth layer's rast)", s.num_views, height, width, 4);
    check_same_dtype(*peel_in, pos_in, "peel", "pos");
    check_same_device(*peel_in, pos_in, "peel", "pos");
    peel = peel_in->contiguous();
    check_rast_ids(peel, tri.size(0), "rasterize (depth peeling)");
  }
  at::Tensor rast = host_pool().empty({s.num_views, height, width, 4}, pos.options());
  at::Tensor rast_db = host_pool().empty({s.num_views, height, width, 4}, pos.options());
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_fwd", [&] {
    RasterizeFwdParams<scalar_t> p{};
    set_geometry(p, s, pos, tri, ranges, height, width);
    p.rast = rast.data_ptr<scalar_t>();
    p.rast_db = rast_db.data_ptr<scalar_t>();
    p.peel = peel.defined() ? peel.data_ptr<scalar_t>() : nullptr;
    p.num_threads = at::get_num_threads();
    launch(pos, "rasterize", [&] { return rasterize_fwd_cpu(p); },
           [&](const auto& ws) { return rasterize_fwd_cuda(p, ws); });
  });
  checked_tensors().add(rast, kCheckedRastIds, tri.size(0), 0);  // ids in [0, T] by construction
  return {rast, rast_db};
}

at::Tensor rasterize_bwd_op(const at::Tensor& pos_in, const at::Tensor& tri_in, const at::Tensor& rast_in,
                                const c10::optional<at::Tensor>& ranges_in, const at::Tensor& grad_rast_in,
                                const c10::optional<at::Tensor>& grad_rast_db_in) {
  const int64_t height = rast_in.dim() == 4 ? rast_in.size(1) : 0;
  const int64_t width = rast_in.dim() == 4 ? rast_in.size(2) : 0;
  TORCH_CHECK_VALUE(rast_in.dim() == 4, "rast must have shape [B,H,W,4], got ", shape_str(rast_in));
  const RasterizeShape s = check_rasterize_inputs(pos_in, tri_in, height, width, ranges_in);
  check_image(rast_in, "rast", s.num_views, height, width, 4);
  check_image(grad_rast_in, "grad_rast", s.num_views, height, width, 4);
  for (const at::Tensor* t : {&rast_in, &grad_rast_in}) {
    check_same_dtype(*t, pos_in, "rast and grad_rast", "pos");
    check_same_device(*t, pos_in, "rast and grad_rast", "pos");
  }
  at::Tensor grad_rast_db;
  if (grad_rast_db_in.has_value()) {
    check_image(*grad_rast_db_in, "grad_rast_db", s.num_views, height, width, 4);
    check_same_dtype(*grad_rast_db_in, pos_in, "grad_rast_db", "pos");
    check_same_device(*grad_rast_db_in, pos_in, "grad_rast_db", "pos");
    grad_rast_db = grad_rast_db_in->contiguous();
  }
  const at::Tensor pos = pos_in.contiguous(), tri = tri_in.contiguous(), rast = rast_in.contiguous();
  const at::Tensor grad_rast = grad_rast_in.contiguous();
  at::Tensor ranges;
  if (ranges_in.has_value()) ranges = ranges_in->contiguous();
  at::Tensor grad_pos = at::zeros_like(pos);
  if (pos.is_cuda()) check_rast_ids(rast, tri.size(0), "rasterize backward");
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_bwd", [&] {
    RasterizeBwdParams<scalar_t> p{};
    set_geometry(p, s, pos, tri, ranges, height, width);
    p.rast = rast.data_ptr<scalar_t>();
    p.grad_rast = grad_rast.data_ptr<scalar_t>();
    p.grad_rast_db = grad_rast_db.defined() ? grad_rast_db.data_ptr<scalar_t>() : nullptr;
    p.grad_pos = grad_pos.data_ptr<scalar_t>();
    p.num_threads = at::get_num_threads();
    launch(pos, "rasterize backward", [&] { return rasterize_bwd_cpu(p); },
           [&](const auto& ws) { return rasterize_bwd_cuda(p, ws); });
  });
  return grad_pos;
}

}  // namespace rastlit
