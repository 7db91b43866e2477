// The torch binding of antialias: input checks, output allocation and the launch of the CPU or CUDA
// kernel (csrc/antialias/antialias_cpu.cpp, antialias_cuda.cu). ops.cpp and ops_cuda.cpp register these functions.
#include "../torch_common.h"
#include "../torch_ops.h"
#include "../antialias/antialias.h"

namespace rastlit {

namespace {

struct AntialiasShape {
  int64_t num_views, height, width, num_channels, num_vertices;
  bool pos_batched;
};

AntialiasShape check_antialias_inputs(const at::Tensor& color, const at::Tensor& rast, const at::Tensor& pos,
                                      const at::Tensor& tri, const at::Tensor& topology_hash) {
  check_device_supported(color, "color");
  check_float(color, "color");
  TORCH_CHECK_VALUE(color.dim() == 4, "color must have shape [B,H,W,C], got ", shape_str(color));
  AntialiasShape s{};
  s.num_views = color.size(0);
  s.height = color.size(1);
  s.width = color.size(2);
  s.num_channels = color.size(3);
  check_image(rast, "rast", s.num_views, s.height, s.width, 4);
  for (const auto& [t, name] : {std::pair<const at::Tensor*, const char*>{&rast, "rast"}, {&pos, "pos"}}) {
    check_same_dtype(*t, color, name, "color");
    check_same_device(*t, color, name, "color");
  }
  check_same_device(tri, color, "tri", "color");
  check_same_device(topology_hash, color, "topology_hash", "color");
  if (pos.dim() == 3) {
    TORCH_CHECK_VALUE(pos.size(0) == s.num_views && pos.size(2) == 4,
                      "pos must have shape [B,V,4] with B = color.shape[0] = ", s.num_views,
                      " (instanced mode) or [V,4] (range mode: one vertex set for all views), got ", shape_str(pos));
    s.pos_batched = true;
    s.num_vertices = pos.size(1);
  } else {
    TORCH_CHECK_VALUE(pos.dim() == 2 && pos.size(1) == 4,
                      "pos must have shape [B,V,4] (instanced mode) or [V,4] (range mode), got ", shape_str(pos));
    s.pos_batched = false;
    s.num_vertices = pos.size(0);
  }
  check_tri(tri, s.num_vertices);
  check_int32(topology_hash, "topology_hash");
  TORCH_CHECK_VALUE(topology_hash.dim() == 2 && topology_hash.size(0) == tri.size(0) && topology_hash.size(1) == 6,
                    "topology_hash must have shape [T,6] = [", tri.size(0),
                    ",6] to match tri (opposite vertices, then neighbouring triangles); got ", shape_str(topology_hash),
                    ": build it with antialias_construct_topology_hash(tri) for this tri");
  if (topology_hash.numel() > 0) {
    const char* what[2] = {"vertex indices (columns 0-2)", "triangle indices (columns 3-5)"};
    const int64_t limit[2] = {s.num_vertices, tri.size(0)};
    int64_t hi_seen[2] = {0, 0};
    // recorded: the largest index of each kind, once both lower bounds held
    if (checked_tensors().find(topology_hash, kCheckedTopology, &hi_seen[0], &hi_seen[1])) {
      for (int c = 0; c < 2; ++c)
        TORCH_CHECK_INDEX(hi_seen[c] < limit[c], msg_topology_range(what[c], kAaNonManifold, hi_seen[c], limit[c]));
    } else {
      for (int c = 0; c < 2; ++c) {
        const auto mm = at::aminmax(topology_hash.narrow(1, 3 * c, 3));
        const int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
        TORCH_CHECK_INDEX(lo >= kAaNonManifold && hi < limit[c], msg_topology_range(what[c], lo, hi, limit[c]));
        hi_seen[c] = hi;
      }
      checked_tensors().add(topology_hash, kCheckedTopology, hi_seen[0], hi_seen[1]);
    }
  }
  return s;
}

template <typename scalar_t>
AntialiasParams<scalar_t> antialias_params(const AntialiasShape& s, const at::Tensor& color, const at::Tensor& rast,
                                           const at::Tensor& pos, const at::Tensor& tri, const at::Tensor& hash,
                                           const at::Tensor& work) {
  AntialiasParams<scalar_t> p{};
  p.color = color.data_ptr<scalar_t>();
  p.rast = rast.data_ptr<scalar_t>();
  p.pos = pos.data_ptr<scalar_t>();
  p.pos_batched = s.pos_batched;
  p.tri = tri.data_ptr<int32_t>();
  p.opp = hash.data_ptr<int32_t>();
  p.num_vertices = s.num_vertices;
  p.num_triangles = tri.size(0);
  p.num_views = s.num_views;
  p.num_channels = s.num_channels;
  p.height = int(s.height);
  p.width = int(s.width);
  p.work = work.data_ptr<int32_t>();
  p.num_threads = at::get_num_threads();
  return p;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> antialias_fwd_op(const at::Tensor& color_in, const at::Tensor& rast_in,
                                                    const at::Tensor& pos_in, const at::Tensor& tri_in,
                                                    const at::Tensor& hash_in, double pos_gradient_boost) {
  (void)pos_gradient_boost;  // scales the backward's position gradient only
  const AntialiasShape s = check_antialias_inputs(color_in, rast_in, pos_in, tri_in, hash_in);
  const at::Tensor color = color_in.contiguous(), rast = rast_in.contiguous(), pos = pos_in.contiguous();
  const at::Tensor tri = tri_in.contiguous(), hash = hash_in.contiguous();
  at::Tensor out = host_pool().empty(color.sizes(), color.options());
  at::Tensor work = host_pool().empty({s.num_views, s.height, s.width, kAaWorkPerPixel}, color.options().dtype(at::kInt));
  if (color.is_cuda()) check_rast_ids(rast, tri.size(0), "antialias");
  AT_DISPATCH_FLOATING_TYPES(color.scalar_type(), "antialias_fwd", [&] {
    auto p = antialias_params<scalar_t>(s, color, rast, pos, tri, hash, work);
    p.out = out.data_ptr<scalar_t>();
    launch(color, "antialias", [&] { return antialias_fwd_cpu(p); },
           [&](const auto& ws) { return antialias_fwd_cuda(p, ws); });
  });
  checked_tensors().add(work, kCheckedWork, tri.size(0), 0);  // written by the forward for T triangles
  return {out, work};
}

std::tuple<at::Tensor, at::Tensor> antialias_bwd_op(const at::Tensor& color_in, const at::Tensor& rast_in,
                                                    const at::Tensor& pos_in, const at::Tensor& tri_in,
                                                    const at::Tensor& hash_in, const at::Tensor& work_in,
                                                    const at::Tensor& grad_out_in) {
  const AntialiasShape s = check_antialias_inputs(color_in, rast_in, pos_in, tri_in, hash_in);
  check_int32(work_in, "work");
  check_image(work_in, "work", s.num_views, s.height, s.width, kAaWorkPerPixel);
  check_same_device(work_in, color_in, "work", "color");
  check_image(grad_out_in, "grad_out", s.num_views, s.height, s.width, s.num_channels);
  check_same_dtype(grad_out_in, color_in, "grad_out", "color");
  check_same_device(grad_out_in, color_in, "grad_out", "color");
  const at::Tensor color = color_in.contiguous(), rast = rast_in.contiguous(), pos = pos_in.contiguous();
  const at::Tensor tri = tri_in.contiguous(), hash = hash_in.contiguous(), work = work_in.contiguous();
  const at::Tensor grad_out = grad_out_in.contiguous();
  int64_t work_bound = 0, unused = 0;
  const bool work_known = checked_tensors().find(work_in, kCheckedWork, &work_bound, &unused) &&
                          work_bound == tri.size(0);
  if (work.numel() > 0 && !work_known) {
    const at::Tensor pairs = work.view({-1, 2});  // (code, found triangle) per pair
    const auto mc = at::aminmax(pairs.select(1, 0)), mt = at::aminmax(pairs.select(1, 1));
    TORCH_CHECK_VALUE(std::get<0>(mc).item<int>() >= kAaWalkCapped && std::get<1>(mc).item<int>() <= 6 &&
                          std::get<0>(mt).item<int64_t>() >= -1 && std::get<1>(mt).item<int64_t>() < tri.size(0),
                      "work must be the second output of antialias_fwd (codes in [-1, 6], triangle ids in [-1, ",
                      tri.size(0), "))");
  }
  if (color.is_cuda()) check_rast_ids(rast, tri.size(0), "antialias backward");
  at::Tensor grad_color = host_pool().empty(color.sizes(), color.options());
  at::Tensor grad_pos = at::zeros_like(pos);
  AT_DISPATCH_FLOATING_TYPES(color.scalar_type(), "antialias_bwd", [&] {
    auto p = antialias_params<scalar_t>(s, color, rast, pos, tri, hash, work);
    p.grad_out = grad_out.data_ptr<scalar_t>();
    p.grad_color = grad_color.data_ptr<scalar_t>();
    p.grad_pos = grad_pos.data_ptr<scalar_t>();
    launch(color, "antialias backward", [&] { return antialias_bwd_cpu(p); },
           [&](const auto& ws) { return antialias_bwd_cuda(p, ws); });
  });
  return {grad_color, grad_pos};
}

}  // namespace rastlit
