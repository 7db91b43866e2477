// The torch binding of texture: input checks, output allocation and the launch of the CPU or CUDA
// kernel (csrc/texture/texture_cpu.cpp, texture_cuda.cu). ops.cpp and ops_cuda.cpp register these functions.
#include "../torch_common.h"
#include "../torch_ops.h"
#include "../texture/texture.h"

namespace rastlit {

namespace {

struct TextureShape {
  int64_t num_views, height, width, tex_batch, channels;
};

// tex [TB,Ht,Wt,C] with TB = 1 or B; mips[k] the k+1-th halving of tex (each side > 1 halved,
// exactly); uv [B,H,W,2]; uv_da [B,H,W,4]; mip_level_bias [B,H,W].
TextureShape check_texture_inputs(const at::Tensor& tex, at::TensorList mips, const at::Tensor& uv,
                                  const c10::optional<at::Tensor>& uv_da, const c10::optional<at::Tensor>& bias,
                                  int64_t filter_mode, int64_t boundary_mode) {
  check_device_supported(tex, "tex");
  check_float(tex, "tex");
  TORCH_CHECK_VALUE(filter_mode >= kTexNearest && filter_mode <= kTexLinearMipmapLinear,
                    "filter_mode must be 0 (nearest), 1 (linear), 2 (linear-mipmap-nearest) or 3 "
                    "(linear-mipmap-linear), got ", filter_mode);
  TORCH_CHECK_VALUE(boundary_mode >= kTexWrap && boundary_mode <= kTexZero,
                    "boundary_mode must be 0 (wrap), 1 (clamp) or 2 (zero), got ", boundary_mode);
  TORCH_CHECK_VALUE(tex.dim() == 4 && tex.size(1) >= 1 && tex.size(2) >= 1 && tex.size(3) >= 1,
                    "tex must have shape [B,Ht,Wt,C] (or [1,Ht,Wt,C]) with Ht, Wt, C >= 1, got ", shape_str(tex));
  TORCH_CHECK_VALUE(tex.size(1) <= kMaxResolution * 2 && tex.size(2) <= kMaxResolution * 2,
                    "tex sides must be at most ", kMaxResolution * 2, ", got ", shape_str(tex));
  TORCH_CHECK_VALUE(uv.dim() == 4 && uv.size(3) == 2, "uv must have shape [B,H,W,2], got ", shape_str(uv));
  check_same_dtype(uv, tex, "uv", "tex");
  check_same_device(uv, tex, "uv", "tex");
  TextureShape s{uv.size(0), uv.size(1), uv.size(2), tex.size(0), tex.size(3)};
  TORCH_CHECK_VALUE(s.tex_batch == 1 || s.tex_batch == s.num_views, "tex must have shape [1,Ht,Wt,C] or [B,Ht,Wt,C] with B = uv.shape[0] = ",
                    s.num_views, ", got ", shape_str(tex));
  TORCH_CHECK_VALUE(int64_t(mips.size()) < kMaxTextureLevels, "at most ", kMaxTextureLevels - 1,
                    " mip levels are supported, got ", mips.size(), "; pass max_mip_level");
  int64_t h = tex.size(1), w = tex.size(2);
  for (size_t k = 0; k < mips.size(); ++k) {
    const at::Tensor& m = mips[k];
    TORCH_CHECK_VALUE(h > 1 || w > 1, "mip level ", k + 1, " is one too many: level ", k, " is already 1x1");
    TORCH_CHECK_VALUE(h == 1 || h % 2 == 0, "mip level ", k, " has height ", h, ", which cannot be halved");
    TORCH_CHECK_VALUE(w == 1 || w % 2 == 0, "mip level ", k, " has width ", w, ", which cannot be halved");
    h = h > 1 ? h / 2 : 1;
    w = w > 1 ? w / 2 : 1;
    TORCH_CHECK_VALUE(m.dim() == 4 && m.size(0) == s.tex_batch && m.size(1) == h && m.size(2) == w && m.size(3) == s.channels,
                      "mip level ", k + 1, " must have shape [", s.tex_batch, ",", h, ",", w, ",", s.channels,
                      "] (each side > 1 of the previous level halved), got ", shape_str(m),
                      "; build it with texture_construct_mip(tex)");
    check_same_dtype(m, tex, "mip levels", "tex");
    check_same_device(m, tex, "mip levels", "tex");
  }
  if (uv_da.has_value()) {
    check_image(*uv_da, "uv_da", s.num_views, s.height, s.width, 4);
    check_same_dtype(*uv_da, tex, "uv_da", "tex");
    check_same_device(*uv_da, tex, "uv_da", "tex");
  }
  if (bias.has_value()) {
    const at::Tensor& b = *bias;
    TORCH_CHECK_VALUE(b.dim() == 3 && b.size(0) == s.num_views && b.size(1) == s.height && b.size(2) == s.width,
                      "mip_level_bias must have shape [", s.num_views, ",", s.height, ",", s.width, "], got ",
                      shape_str(b));
    check_same_dtype(b, tex, "mip_level_bias", "tex");
    check_same_device(b, tex, "mip_level_bias", "tex");
  }
  return s;
}

struct TextureInputs {
  at::Tensor tex, uv, uv_da, bias;
  std::vector<at::Tensor> mips;
};

TextureInputs texture_contiguous(const at::Tensor& tex, at::TensorList mips, const at::Tensor& uv,
                                 const c10::optional<at::Tensor>& uv_da, const c10::optional<at::Tensor>& bias) {
  TextureInputs in;
  in.tex = tex.contiguous();
  in.uv = uv.contiguous();
  if (uv_da.has_value()) in.uv_da = uv_da->contiguous();
  if (bias.has_value()) in.bias = bias->contiguous();
  for (const at::Tensor& m : mips) in.mips.push_back(m.contiguous());
  return in;
}

template <typename scalar_t>
TextureFwdParams<scalar_t> texture_params(const TextureShape& s, const TextureInputs& in, int64_t filter_mode,
                                          int64_t boundary_mode) {
  TextureFwdParams<scalar_t> p{};
  p.num_levels = 1 + int(in.mips.size());
  for (int k = 0; k < p.num_levels; ++k) {
    const at::Tensor& t = k == 0 ? in.tex : in.mips[k - 1];
    p.levels[k].data = t.data_ptr<scalar_t>();
    p.levels[k].height = int(t.size(1));
    p.levels[k].width = int(t.size(2));
  }
  p.tex_batch = s.tex_batch;
  p.channels = s.channels;
  p.uv = in.uv.data_ptr<scalar_t>();
  p.uv_da = in.uv_da.defined() ? in.uv_da.data_ptr<scalar_t>() : nullptr;
  p.bias = in.bias.defined() ? in.bias.data_ptr<scalar_t>() : nullptr;
  p.num_views = s.num_views;
  p.height = int(s.height);
  p.width = int(s.width);
  p.filter = int(filter_mode);
  p.boundary = int(boundary_mode);
  p.num_threads = at::get_num_threads();
  return p;
}

}  // namespace

at::Tensor texture_fwd_op(const at::Tensor& tex_in, at::TensorList mips_in, const at::Tensor& uv_in,
                          const c10::optional<at::Tensor>& uv_da_in, const c10::optional<at::Tensor>& bias_in,
                          int64_t filter_mode, int64_t boundary_mode) {
  const TextureShape s = check_texture_inputs(tex_in, mips_in, uv_in, uv_da_in, bias_in, filter_mode, boundary_mode);
  const TextureInputs in = texture_contiguous(tex_in, mips_in, uv_in, uv_da_in, bias_in);
  at::Tensor out = host_pool().empty({s.num_views, s.height, s.width, s.channels}, in.tex.options());
  AT_DISPATCH_FLOATING_TYPES(in.tex.scalar_type(), "texture_fwd", [&] {
    auto p = texture_params<scalar_t>(s, in, filter_mode, boundary_mode);
    p.out = out.data_ptr<scalar_t>();
    launch(in.tex, "texture", [&] { return texture_fwd_cpu(p); },
           [&](const auto& ws) { return texture_fwd_cuda(p, ws); });
  });
  return out;
}

std::tuple<at::Tensor, std::vector<at::Tensor>, at::Tensor, at::Tensor, at::Tensor> texture_bwd_op(
    const at::Tensor& tex_in, at::TensorList mips_in, const at::Tensor& uv_in, const c10::optional<at::Tensor>& uv_da_in,
    const c10::optional<at::Tensor>& bias_in, int64_t filter_mode, int64_t boundary_mode, const at::Tensor& grad_out_in) {
  const TextureShape s = check_texture_inputs(tex_in, mips_in, uv_in, uv_da_in, bias_in, filter_mode, boundary_mode);
  check_image(grad_out_in, "grad_out", s.num_views, s.height, s.width, s.channels);
  check_same_dtype(grad_out_in, tex_in, "grad_out", "tex");
  check_same_device(grad_out_in, tex_in, "grad_out", "tex");
  if (tex_in.is_cuda())
    at::globalContext().alertNotDeterministic("rastlit texture backward on CUDA (texel gradients use atomics)");
  const TextureInputs in = texture_contiguous(tex_in, mips_in, uv_in, uv_da_in, bias_in);
  const at::Tensor grad_out = grad_out_in.contiguous();
  at::Tensor grad_tex = at::zeros_like(in.tex);
  std::vector<at::Tensor> grad_mips;
  for (const at::Tensor& m : in.mips) grad_mips.push_back(at::zeros_like(m));
  at::Tensor grad_uv = host_pool().empty(in.uv.sizes(), in.uv.options());
  at::Tensor grad_uv_da = in.uv_da.defined() ? at::empty_like(in.uv_da) : at::empty({0}, in.tex.options());
  at::Tensor grad_bias = in.bias.defined() ? at::empty_like(in.bias) : at::empty({0}, in.tex.options());
  AT_DISPATCH_FLOATING_TYPES(in.tex.scalar_type(), "texture_bwd", [&] {
    TextureBwdParams<scalar_t> q{};
    q.fwd = texture_params<scalar_t>(s, in, filter_mode, boundary_mode);
    q.grad_out = grad_out.data_ptr<scalar_t>();
    q.grad_levels[0] = grad_tex.data_ptr<scalar_t>();
    for (size_t k = 0; k < grad_mips.size(); ++k) q.grad_levels[k + 1] = grad_mips[k].data_ptr<scalar_t>();
    q.grad_uv = grad_uv.data_ptr<scalar_t>();
    q.grad_uv_da = in.uv_da.defined() ? grad_uv_da.data_ptr<scalar_t>() : nullptr;
    q.grad_bias = in.bias.defined() ? grad_bias.data_ptr<scalar_t>() : nullptr;
    launch(in.tex, "texture backward", [&] { return texture_bwd_cpu(q); },
           [&](const auto& ws) { return texture_bwd_cuda(q, ws); });
  });
  return {grad_tex, grad_mips, grad_uv, grad_uv_da, grad_bias};
}

}  // namespace rastlit
