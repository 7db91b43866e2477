// The torch binding of interpolate: input checks, output allocation and the launch of the CPU or CUDA
// kernel (csrc/interpolate/interpolate_cpu.cpp, interpolate_cuda.cu). ops.cpp and ops_cuda.cpp register these functions.
#include "../torch_common.h"
#include "../torch_ops.h"
#include "../interpolate/interpolate.h"

namespace rastlit {

namespace {

// diff_attrs as an int32 tensor on the op's device (the CUDA kernels read it there).
at::Tensor diff_tensor(at::IntArrayRef diff_attrs, const at::Device& device) {
  std::vector<int32_t> v(diff_attrs.begin(), diff_attrs.end());
  at::Tensor t = at::empty({int64_t(v.size())}, at::TensorOptions().dtype(at::kInt));
  std::copy(v.begin(), v.end(), t.data_ptr<int32_t>());
  return device.is_cpu() ? t : t.to(device);
}

struct InterpolateShape {
  int64_t num_views, height, width, attr_batch, num_vertices, num_attrs;
};

InterpolateShape check_interpolate_inputs(const at::Tensor& attr, const at::Tensor& rast, const at::Tensor& tri,
                                          const c10::optional<at::Tensor>& rast_db, at::IntArrayRef diff_attrs) {
  check_device_supported(attr, "attr");
  check_float(attr, "attr");
  TORCH_CHECK_VALUE(rast.dim() == 4 && rast.size(3) == 4, "rast must have shape [B,H,W,4], got ", shape_str(rast));
  check_same_dtype(rast, attr, "rast", "attr");
  check_same_device(rast, attr, "rast", "attr");
  check_same_device(tri, attr, "tri", "attr");
  InterpolateShape s{};
  s.num_views = rast.size(0);
  s.height = rast.size(1);
  s.width = rast.size(2);
  if (attr.dim() == 3) {
    TORCH_CHECK_VALUE(attr.size(0) == s.num_views || attr.size(0) == 1,
                      "attr must have shape [V,A], [1,V,A] or [B,V,A] with B = rast.shape[0] = ", s.num_views,
                      ", got ", shape_str(attr));
    s.attr_batch = attr.size(0);
    s.num_vertices = attr.size(1);
    s.num_attrs = attr.size(2);
  } else {
    TORCH_CHECK_VALUE(attr.dim() == 2, "attr must have shape [V,A], [1,V,A] or [B,V,A], got ", shape_str(attr));
    s.attr_batch = 0;
    s.num_vertices = attr.size(0);
    s.num_attrs = attr.size(1);
  }
  check_tri(tri, s.num_vertices);
  if (rast_db.has_value()) {
    check_image(*rast_db, "rast_db", s.num_views, s.height, s.width, 4);
    check_same_dtype(*rast_db, attr, "rast_db", "attr");
    check_same_device(*rast_db, attr, "rast_db", "attr");
  }
  for (size_t j = 0; j < diff_attrs.size(); ++j)
    TORCH_CHECK_INDEX(diff_attrs[j] >= 0 && diff_attrs[j] < s.num_attrs, "diff_attrs[", j, "] = ", diff_attrs[j],
                      " is not an attribute index in [0, ", s.num_attrs, ")");
  TORCH_CHECK_VALUE(diff_attrs.empty() || rast_db.has_value(),
                    "diff_attrs needs rast_db (the second output of rasterize) to compute derivatives");
  return s;
}

template <typename scalar_t>
InterpolateFwdParams<scalar_t> interpolate_params(const InterpolateShape& s, const at::Tensor& attr,
                                                  const at::Tensor& rast, const at::Tensor& tri,
                                                  const at::Tensor& rast_db, const at::Tensor& diff) {
  InterpolateFwdParams<scalar_t> p{};
  p.attr = attr.data_ptr<scalar_t>();
  p.attr_batch = s.attr_batch;
  p.num_vertices = s.num_vertices;
  p.num_attrs = s.num_attrs;
  p.rast = rast.data_ptr<scalar_t>();
  p.rast_db = rast_db.defined() ? rast_db.data_ptr<scalar_t>() : nullptr;
  p.tri = tri.data_ptr<int32_t>();
  p.num_triangles = tri.size(0);
  p.num_views = s.num_views;
  p.height = int(s.height);
  p.width = int(s.width);
  p.diff_attrs = diff.data_ptr<int32_t>();
  p.num_diff = int(diff.numel());
  p.num_threads = at::get_num_threads();
  return p;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> interpolate_fwd_op(const at::Tensor& attr_in, const at::Tensor& rast_in,
                                                          const at::Tensor& tri_in,
                                                          const c10::optional<at::Tensor>& rast_db_in,
                                                          at::IntArrayRef diff_attrs) {
  const InterpolateShape s = check_interpolate_inputs(attr_in, rast_in, tri_in, rast_db_in, diff_attrs);
  const at::Tensor attr = attr_in.contiguous(), rast = rast_in.contiguous(), tri = tri_in.contiguous();
  at::Tensor rast_db;
  if (rast_db_in.has_value()) rast_db = rast_db_in->contiguous();
  const at::Tensor diff = diff_tensor(diff_attrs, attr.device());
  at::Tensor out = host_pool().empty({s.num_views, s.height, s.width, s.num_attrs}, attr.options());
  at::Tensor out_da = host_pool().empty({s.num_views, s.height, s.width, 2 * diff.numel()}, attr.options());
  if (attr.is_cuda()) check_rast_ids(rast, tri.size(0), "interpolate");
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_fwd", [&] {
    auto p = interpolate_params<scalar_t>(s, attr, rast, tri, rast_db, diff);
    p.out = out.data_ptr<scalar_t>();
    p.out_da = diff.numel() == 0 ? nullptr : out_da.data_ptr<scalar_t>();
    launch(attr, "interpolate", [&] { return interpolate_fwd_cpu(p); },
           [&](const auto& ws) { return interpolate_fwd_cuda(p, ws); });
  });
  return {out, out_da};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> interpolate_bwd_op(
    const at::Tensor& attr_in, const at::Tensor& rast_in, const at::Tensor& tri_in,
    const c10::optional<at::Tensor>& rast_db_in, at::IntArrayRef diff_attrs, const at::Tensor& grad_out_in,
    const c10::optional<at::Tensor>& grad_out_da_in) {
  const InterpolateShape s = check_interpolate_inputs(attr_in, rast_in, tri_in, rast_db_in, diff_attrs);
  check_image(grad_out_in, "grad_out", s.num_views, s.height, s.width, s.num_attrs);
  check_same_dtype(grad_out_in, attr_in, "grad_out", "attr");
  check_same_device(grad_out_in, attr_in, "grad_out", "attr");
  at::Tensor grad_out_da;
  if (grad_out_da_in.has_value() && !diff_attrs.empty()) {
    check_image(*grad_out_da_in, "grad_out_da", s.num_views, s.height, s.width, 2 * int64_t(diff_attrs.size()));
    check_same_dtype(*grad_out_da_in, attr_in, "grad_out_da", "attr");
    check_same_device(*grad_out_da_in, attr_in, "grad_out_da", "attr");
    grad_out_da = grad_out_da_in->contiguous();
  }
  const at::Tensor attr = attr_in.contiguous(), rast = rast_in.contiguous(), tri = tri_in.contiguous();
  const at::Tensor grad_out = grad_out_in.contiguous();
  at::Tensor rast_db;
  if (rast_db_in.has_value()) rast_db = rast_db_in->contiguous();
  const at::Tensor diff = diff_tensor(diff_attrs, attr.device());
  if (attr.is_cuda()) check_rast_ids(rast, tri.size(0), "interpolate backward");
  at::Tensor grad_attr = at::zeros_like(attr);
  at::Tensor grad_rast = host_pool().empty(rast.sizes(), rast.options());
  at::Tensor grad_rast_db = rast_db.defined() ? at::empty_like(rast_db) : at::empty({0}, attr.options());
  AT_DISPATCH_FLOATING_TYPES(attr.scalar_type(), "interpolate_bwd", [&] {
    InterpolateBwdParams<scalar_t> q{};
    q.fwd = interpolate_params<scalar_t>(s, attr, rast, tri, rast_db, diff);
    q.grad_out = grad_out.data_ptr<scalar_t>();
    q.grad_out_da = grad_out_da.defined() ? grad_out_da.data_ptr<scalar_t>() : nullptr;
    q.grad_attr = grad_attr.data_ptr<scalar_t>();
    q.grad_rast = grad_rast.data_ptr<scalar_t>();
    q.grad_rast_db = rast_db.defined() ? grad_rast_db.data_ptr<scalar_t>() : nullptr;
    launch(attr, "interpolate backward", [&] { return interpolate_bwd_cpu(q); },
           [&](const auto& ws) { return interpolate_bwd_cuda(q, ws); });
  });
  return {grad_attr, grad_rast, grad_rast_db};
}

}  // namespace rastlit
