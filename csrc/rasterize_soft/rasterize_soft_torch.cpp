// The torch binding of rasterize_soft: input checks, output allocation and the launch of the CPU or CUDA
// kernel (csrc/rasterize_soft/rasterize_soft_cpu.cpp, rasterize_soft_cuda.cu). ops.cpp and ops_cuda.cpp register these functions.
#include "../torch_common.h"
#include "../torch_ops.h"
#include "../rasterize_soft/rasterize_soft.h"

namespace rastlit {

namespace {

void check_soft_options(int64_t faces_per_pixel, double blur_radius) {
  TORCH_CHECK_VALUE(faces_per_pixel >= 1 && faces_per_pixel <= kMaxFacesPerPixel, "faces_per_pixel must be in [1, ",
                    kMaxFacesPerPixel, "], got ", faces_per_pixel);
  TORCH_CHECK_VALUE(std::isfinite(blur_radius) && blur_radius >= 0.0,
                    "blur_radius must be a finite squared NDC distance >= 0, got ", blur_radius);
}

void check_soft_pos_finite(const at::Tensor& pos) {
  if (pos.numel() == 0) return;
  TORCH_CHECK_VALUE(at::isfinite(pos).all().item<bool>(),
                    "pos holds NaN or Inf; rasterize_soft needs finite clip-space positions");
}

template <typename P, typename scalar_t>
void set_soft_geometry(P& p, const RasterizeShape& s, const at::Tensor& pos, const at::Tensor& tri,
                       const at::Tensor& ranges, int64_t height, int64_t width, int64_t K, double blur_radius,
                       bool perspective_correct, bool clip_barycentric_coords) {
  p.pos = pos.data_ptr<scalar_t>();
  p.tri = tri.data_ptr<int32_t>();
  p.ranges = ranges.defined() ? ranges.data_ptr<int32_t>() : nullptr;
  p.num_views = s.num_views;
  p.num_vertices = s.num_vertices;
  p.num_triangles = tri.size(0);
  p.height = int(height);
  p.width = int(width);
  p.K = int(K);
  p.blur_radius = blur_radius;
  p.perspective_correct = perspective_correct;
  p.clip_barycentric_coords = clip_barycentric_coords;
  p.num_threads = at::get_num_threads();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_soft_fwd_op(
    const at::Tensor& pos_in, const at::Tensor& tri_in, int64_t height, int64_t width, int64_t faces_per_pixel,
    double blur_radius, bool perspective_correct, bool clip_barycentric_coords,
    const c10::optional<at::Tensor>& ranges_in) {
  check_soft_options(faces_per_pixel, blur_radius);
  const RasterizeShape s = check_rasterize_inputs(pos_in, tri_in, height, width, ranges_in);
  check_soft_pos_finite(pos_in);
  const at::Tensor pos = pos_in.contiguous(), tri = tri_in.contiguous();
  at::Tensor ranges;
  if (ranges_in.has_value()) ranges = ranges_in->contiguous();
  const int64_t K = faces_per_pixel;
  at::Tensor face_ids = at::empty({s.num_views, height, width, K}, pos.options().dtype(at::kInt));
  at::Tensor zbuf = at::empty({s.num_views, height, width, K}, pos.options());
  at::Tensor bary = at::empty({s.num_views, height, width, K, 3}, pos.options());
  at::Tensor dists = at::empty({s.num_views, height, width, K}, pos.options());
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_soft_fwd", [&] {
    SoftRasterizeFwdParams<scalar_t> p{};
    set_soft_geometry<SoftRasterizeFwdParams<scalar_t>, scalar_t>(p, s, pos, tri, ranges, height, width, K,
                                                                  blur_radius, perspective_correct,
                                                                  clip_barycentric_coords);
    p.face_ids = face_ids.data_ptr<int32_t>();
    p.zbuf = zbuf.data_ptr<scalar_t>();
    p.bary = bary.data_ptr<scalar_t>();
    p.dists = dists.data_ptr<scalar_t>();
    launch(pos, "rasterize_soft", [&] { return rasterize_soft_fwd_cpu(p); },
           [&](const auto& ws) { return rasterize_soft_fwd_cuda(p, ws); });
  });
  return {zbuf, bary, dists, face_ids};  // float outputs first (opcheck sums outputs in order)
}

at::Tensor rasterize_soft_bwd_op(const at::Tensor& pos_in, const at::Tensor& tri_in, const at::Tensor& face_ids_in,
                                 double blur_radius, bool perspective_correct, bool clip_barycentric_coords,
                                 const c10::optional<at::Tensor>& ranges_in, const at::Tensor& grad_zbuf_in,
                                 const at::Tensor& grad_bary_in, const at::Tensor& grad_dists_in) {
  TORCH_CHECK_VALUE(face_ids_in.dim() == 4, "face_ids must have shape [B,H,W,K], got ", shape_str(face_ids_in));
  const int64_t height = face_ids_in.size(1), width = face_ids_in.size(2), K = face_ids_in.size(3);
  check_soft_options(K, blur_radius);
  const RasterizeShape s = check_rasterize_inputs(pos_in, tri_in, height, width, ranges_in);
  check_int32(face_ids_in, "face_ids");
  check_same_device(face_ids_in, pos_in, "face_ids", "pos");
  check_image(face_ids_in, "face_ids", s.num_views, height, width, K);
  check_image(grad_zbuf_in, "grad_zbuf", s.num_views, height, width, K);
  check_image(grad_dists_in, "grad_dists", s.num_views, height, width, K);
  TORCH_CHECK_VALUE(grad_bary_in.dim() == 5 && grad_bary_in.size(0) == s.num_views && grad_bary_in.size(1) == height &&
                        grad_bary_in.size(2) == width && grad_bary_in.size(3) == K && grad_bary_in.size(4) == 3,
                    "grad_bary must have shape [", s.num_views, ",", height, ",", width, ",", K, ",3], got ",
                    shape_str(grad_bary_in));
  for (const at::Tensor* t : {&grad_zbuf_in, &grad_bary_in, &grad_dists_in}) {
    check_same_dtype(*t, pos_in, "grad_zbuf, grad_bary and grad_dists", "pos");
    check_same_device(*t, pos_in, "grad_zbuf, grad_bary and grad_dists", "pos");
  }
  const at::Tensor pos = pos_in.contiguous(), tri = tri_in.contiguous(), face_ids = face_ids_in.contiguous();
  const at::Tensor gz = grad_zbuf_in.contiguous(), gb = grad_bary_in.contiguous(), gd = grad_dists_in.contiguous();
  at::Tensor ranges;
  if (ranges_in.has_value()) ranges = ranges_in->contiguous();
  at::Tensor grad_pos = at::zeros_like(pos);
  AT_DISPATCH_FLOATING_TYPES(pos.scalar_type(), "rasterize_soft_bwd", [&] {
    SoftRasterizeBwdParams<scalar_t> p{};
    set_soft_geometry<SoftRasterizeBwdParams<scalar_t>, scalar_t>(p, s, pos, tri, ranges, height, width, K,
                                                                  blur_radius, perspective_correct,
                                                                  clip_barycentric_coords);
    p.face_ids = face_ids.data_ptr<int32_t>();
    p.grad_zbuf = gz.data_ptr<scalar_t>();
    p.grad_bary = gb.data_ptr<scalar_t>();
    p.grad_dists = gd.data_ptr<scalar_t>();
    p.grad_pos = grad_pos.data_ptr<scalar_t>();
    launch(pos, "rasterize_soft backward", [&] { return rasterize_soft_bwd_cpu(p); },
           [&](const auto& ws) { return rasterize_soft_bwd_cuda(p, ws); });
  });
  return grad_pos;
}

}  // namespace rastlit
