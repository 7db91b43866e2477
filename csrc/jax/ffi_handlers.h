// The XLA FFI handlers' bodies, written once for the CPU (ffi_cpu.cpp) and CUDA (ffi_cuda.cu)
// registrations. Each body takes a backend `be` that knows where buffers live:
//   be.zero(ptr, bytes)                 zero an output (XLA hands over uninitialised memory);
//   be.host_ints(buf, &store)           an int32 buffer readable on the host (the CPU: as is;
//                                       CUDA: copied back, a stream sync), for checks and ranges;
//   be.device_ints(host, n)             host int32s where the kernel reads them (CUDA: copied to
//                                       scratch memory), for diff_attrs;
//   be.rast_ids_ok(rast, pixels, T)     ids in a caller's rast are 0 or integers in [1, T];
//   be.launch(op, cpu, cuda)            run the kernel (the CPU backend never instantiates `cuda`);
//   be.threads()                        OpenMP threads for the CPU kernels.
// Shapes and dtypes are checked in Python at trace time (rastlit/jax/_ops.py), where the message
// can name the caller's argument; what needs values (vertex indices in tri, ids in rast, ranges,
// topology) is checked here and returned as INVALID_ARGUMENT with the torch ops' own text
// (messages.h). Float buffers are F32 or F64 (all of one call alike); optional inputs are
// zero-size buffers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

#include "../antialias/antialias.h"
#include "../interpolate/interpolate.h"
#include "../messages.h"
#include "../rasterize/rasterize.h"
#include "../texture/texture.h"

namespace rastlit {
namespace jaxffi {

namespace ffi = xla::ffi;

template <typename T>
T* data(ffi::AnyBuffer b) {
  return b.element_count() ? static_cast<T*>(b.untyped_data()) : nullptr;
}
template <typename T>
T* data(ffi::Result<ffi::AnyBuffer>& b) {
  return b->element_count() ? static_cast<T*>(b->untyped_data()) : nullptr;
}
template <typename T, typename B>
T* zeroed(B& be, ffi::Result<ffi::AnyBuffer>& b) {
  T* p = data<T>(b);
  if (p) be.zero(p, b->size_bytes());
  return p;
}

inline ffi::Error invalid(const std::string& msg) { return ffi::Error::InvalidArgument(msg); }

inline ffi::Error from_status(int status, const char* op) {
  if (status == kOk) return ffi::Error::Success();
  if (status == kBadTriangleId) return invalid(msg_bad_rast_ids(op));
  return ffi::Error::Internal(std::string(op) + ": kernel failed with status " + std::to_string(status));
}

// Float dispatch on the element type of `ref`.
template <typename F>
ffi::Error dispatch(ffi::AnyBuffer ref, F&& f) {
  switch (ref.element_type()) {
    case ffi::DataType::F32:
      return f(float());
    case ffi::DataType::F64:
      return f(double());
    default:
      return invalid("rastlit: float32 or float64 buffers expected");
  }
}

template <typename B>
ffi::Error check_tri(B& be, ffi::AnyBuffer tri, int64_t num_vertices) {
  const int64_t n = tri.element_count();
  if (n / 3 > kMaxTriangles) return invalid(msg_too_many_triangles(n / 3, kMaxTriangles));
  if (n == 0) return ffi::Error::Success();
  std::vector<int32_t> store;
  const int32_t* t = be.host_ints(tri, &store);
  if (!t) return ffi::Error::Internal("rastlit: could not read tri back for its index check");
  const auto mm = std::minmax_element(t, t + n);
  if (*mm.first < 0 || *mm.second >= num_vertices) return invalid(msg_tri_range(*mm.first, *mm.second, num_vertices));
  return ffi::Error::Success();
}

inline ffi::Error check_ranges(const int32_t* r, int64_t views, int64_t num_triangles) {
  for (int64_t b = 0; b < views; ++b) {
    const int64_t start = r[2 * b], count = r[2 * b + 1];
    if (start < 0 || count < 0 || start + count > num_triangles)
      return invalid(msg_range_outside(b, start, count, num_triangles));
  }
  return ffi::Error::Success();
}

// ------------------------------------------------------------------------------------ rasterize
// pos [B,V,4] (instanced; ranges empty) or [V,4] (range mode, ranges [B,2]); the view count is
// rast's leading dimension. `ranges` is read on the host (as the torch op's CPU tensor).

template <typename T, typename P, typename B>
ffi::Error rasterize_geometry(B& be, P& p, ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer ranges,
                              std::vector<int32_t>* ranges_store, int64_t views, int64_t height, int64_t width) {
  const auto d = pos.dimensions();
  const bool range_mode = d.size() == 2;
  p.pos = static_cast<const T*>(pos.untyped_data());
  p.tri = data<int32_t>(tri);
  p.ranges = nullptr;
  p.num_views = views;
  p.num_vertices = range_mode ? d[0] : d[1];
  p.num_triangles = tri.element_count() / 3;
  p.height = int(height);
  p.width = int(width);
  p.num_threads = be.threads();
  if (auto e = check_tri(be, tri, p.num_vertices); e.failure()) return e;
  if (range_mode) {
    if (int64_t(ranges.element_count()) != 2 * views) return invalid("range mode needs ranges [B,2]");
    p.ranges = be.host_ints(ranges, ranges_store);
    if (views && !p.ranges) return ffi::Error::Internal("rastlit: could not read ranges back");
    return check_ranges(p.ranges, views, p.num_triangles);
  }
  return ffi::Error::Success();
}

template <typename B>
ffi::Error rasterize_fwd(B& be, ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer ranges, ffi::AnyBuffer peel,
                         ffi::Result<ffi::AnyBuffer> rast, ffi::Result<ffi::AnyBuffer> rast_db) {
  const auto rd = rast->dimensions();
  return dispatch(pos, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    RasterizeFwdParams<T> p{};
    std::vector<int32_t> store;
    if (auto e = rasterize_geometry<T>(be, p, pos, tri, ranges, &store, rd[0], rd[1], rd[2]); e.failure()) return e;
    p.peel = data<T>(peel);
    if (p.peel && !be.rast_ids_ok(p.peel, rd[0] * rd[1] * rd[2], p.num_triangles))
      return invalid(msg_bad_rast_ids("rasterize (depth peeling)"));
    p.rast = data<T>(rast);
    p.rast_db = data<T>(rast_db);
    return be.launch("rasterize", [&] { return rasterize_fwd_cpu(p); },
                     [&](const auto& ws) { return rasterize_fwd_cuda(p, ws); });
  });
}

// The backward trusts its own forward's outputs (rast): no id check on any device.
template <typename B>
ffi::Error rasterize_bwd(B& be, ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer ranges, ffi::AnyBuffer rast,
                         ffi::AnyBuffer grad_rast, ffi::AnyBuffer grad_rast_db,
                         ffi::Result<ffi::AnyBuffer> grad_pos) {
  const auto rd = rast.dimensions();
  return dispatch(pos, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    RasterizeBwdParams<T> p{};
    std::vector<int32_t> store;
    if (auto e = rasterize_geometry<T>(be, p, pos, tri, ranges, &store, rd[0], rd[1], rd[2]); e.failure()) return e;
    p.rast = data<T>(rast);
    p.grad_rast = data<T>(grad_rast);
    p.grad_rast_db = data<T>(grad_rast_db);
    p.grad_pos = zeroed<T>(be, grad_pos);
    return be.launch("rasterize backward", [&] { return rasterize_bwd_cpu(p); },
                     [&](const auto& ws) { return rasterize_bwd_cuda(p, ws); });
  });
}

// ---------------------------------------------------------------------------------- interpolate
// attr [B,V,A], [1,V,A] or [V,A]; rast_db empty unless diff_attrs is.

template <typename T, typename B>
ffi::Error interpolate_params(B& be, InterpolateFwdParams<T>& p, ffi::AnyBuffer attr, ffi::AnyBuffer rast,
                              ffi::AnyBuffer tri, ffi::AnyBuffer rast_db, ffi::Span<const int32_t> diff) {
  const auto ad = attr.dimensions();
  const auto rd = rast.dimensions();
  p.attr = static_cast<const T*>(attr.untyped_data());
  p.attr_batch = ad.size() == 2 ? 0 : ad[0];
  p.num_vertices = ad[ad.size() - 2];
  p.num_attrs = ad[ad.size() - 1];
  p.rast = data<T>(rast);
  p.rast_db = data<T>(rast_db);
  p.tri = data<int32_t>(tri);
  p.num_triangles = tri.element_count() / 3;
  p.num_views = rd[0];
  p.height = int(rd[1]);
  p.width = int(rd[2]);
  p.num_diff = int(diff.size());
  p.diff_attrs = diff.size() ? be.device_ints(diff.begin(), diff.size()) : nullptr;
  if (diff.size() && !p.diff_attrs) return ffi::Error::Internal("rastlit: no scratch memory for diff_attrs");
  p.num_threads = be.threads();
  return check_tri(be, tri, p.num_vertices);
}

template <typename B>
ffi::Error interpolate_fwd(B& be, ffi::AnyBuffer attr, ffi::AnyBuffer rast, ffi::AnyBuffer tri,
                           ffi::AnyBuffer rast_db, ffi::Span<const int32_t> diff, ffi::Result<ffi::AnyBuffer> out,
                           ffi::Result<ffi::AnyBuffer> out_da) {
  return dispatch(attr, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    InterpolateFwdParams<T> p{};
    if (auto e = interpolate_params(be, p, attr, rast, tri, rast_db, diff); e.failure()) return e;
    // the CPU kernel reports bad ids itself; the CUDA one skips them, so they are checked first
    if (!be.kernel_checks_ids() && !be.rast_ids_ok(p.rast, p.num_views * p.height * p.width, p.num_triangles))
      return invalid(msg_bad_rast_ids("interpolate"));
    p.out = data<T>(out);
    p.out_da = data<T>(out_da);
    return be.launch("interpolate", [&] { return interpolate_fwd_cpu(p); },
                     [&](const auto& ws) { return interpolate_fwd_cuda(p, ws); });
  });
}

template <typename B>
ffi::Error interpolate_bwd(B& be, ffi::AnyBuffer attr, ffi::AnyBuffer rast, ffi::AnyBuffer tri,
                           ffi::AnyBuffer rast_db, ffi::AnyBuffer grad_out, ffi::AnyBuffer grad_out_da,
                           ffi::Span<const int32_t> diff, ffi::Result<ffi::AnyBuffer> grad_attr,
                           ffi::Result<ffi::AnyBuffer> grad_rast, ffi::Result<ffi::AnyBuffer> grad_rast_db) {
  return dispatch(attr, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    InterpolateBwdParams<T> q{};
    if (auto e = interpolate_params(be, q.fwd, attr, rast, tri, rast_db, diff); e.failure()) return e;
    q.grad_out = data<T>(grad_out);
    q.grad_out_da = data<T>(grad_out_da);
    q.grad_attr = zeroed<T>(be, grad_attr);
    q.grad_rast = data<T>(grad_rast);  // written at every pixel by the kernel (as in the torch op)
    q.grad_rast_db = data<T>(grad_rast_db);
    return be.launch("interpolate backward", [&] { return interpolate_bwd_cpu(q); },
                     [&](const auto& ws) { return interpolate_bwd_cuda(q, ws); });
  });
}

// -------------------------------------------------------------------------------------- texture
// tex [TB,Ht,Wt,C], uv [B,H,W,2], uv_da [B,H,W,4] or empty, bias [B,H,W] or empty, then the mip
// levels below tex (built by the caller) as the remaining arguments. Cube maps (boundary 3): tex
// and the levels [TB,6,S,S,C], uv [B,H,W,3], uv_da [B,H,W,6] (texture.h's layout helpers, as the
// torch op). The shapes are checked in Python; the ranks and widths that the kernel's indexing
// relies on are checked again here, so a mismatched call fails instead of reading out of bounds.

template <typename T, typename B>
ffi::Error texture_params(B& be, TextureFwdParams<T>& p, ffi::AnyBuffer tex, ffi::AnyBuffer uv, ffi::AnyBuffer uv_da,
                          ffi::AnyBuffer bias, ffi::RemainingArgs mips, int64_t filter, int64_t boundary) {
  if (mips.size() + 1 > size_t(kMaxTextureLevels)) return invalid("texture: too many mip levels");
  if (filter < kTexNearest || filter > kTexLinearMipmapLinear)
    return invalid("filter_mode must be 0 (nearest), 1 (linear), 2 (linear-mipmap-nearest) or 3 "
                   "(linear-mipmap-linear), got " + std::to_string(filter));
  if (boundary < kTexWrap || boundary > kTexCube)
    return invalid("boundary_mode must be 0 (wrap), 1 (clamp), 2 (zero) or 3 (cube), got " +
                   std::to_string(boundary));
  const int bm = int(boundary);
  const int row = tex_row_dim(bm);
  const auto td = tex.dimensions();
  const auto ud = uv.dimensions();
  if (int(td.size()) != tex_level_rank(bm))
    return invalid(bm == kTexCube ? "texture: tex must have shape [B,6,S,S,C] for boundary_mode='cube'"
                                  : "texture: tex must have shape [B,Ht,Wt,C]");
  if (bm == kTexCube && (td[1] != 6 || td[2] != td[3]))
    return invalid("texture: tex must have six square cube faces (shape [B,6,S,S,C])");
  if (ud.size() != 4 || ud[3] != tex_uv_width(bm))
    return invalid("texture: uv must have shape [B,H,W," + std::to_string(tex_uv_width(bm)) + "]");
  if (uv_da.element_count() &&
      (uv_da.dimensions().size() != 4 || uv_da.dimensions()[3] != tex_uv_da_width(bm)))
    return invalid("texture: uv_da must have shape [B,H,W," + std::to_string(tex_uv_da_width(bm)) + "]");
  p.num_levels = 1 + int(mips.size());
  for (int k = 0; k < p.num_levels; ++k) {
    ffi::AnyBuffer level = tex;
    if (k > 0) {
      auto m = mips.get<ffi::AnyBuffer>(k - 1);
      if (m.has_error()) return m.error();
      level = *m;
    }
    const auto ld = level.dimensions();
    if (int(ld.size()) != tex_level_rank(bm)) return invalid("texture: a mip level has the wrong rank");
    p.levels[k].data = static_cast<const T*>(level.untyped_data());
    p.levels[k].height = int(ld[row]);
    p.levels[k].width = int(ld[row + 1]);
  }
  p.tex_batch = td[0];
  p.channels = td[row + 2];
  p.uv = data<T>(uv);
  p.uv_da = data<T>(uv_da);
  p.bias = data<T>(bias);
  p.num_views = ud[0];
  p.height = int(ud[1]);
  p.width = int(ud[2]);
  p.filter = int(filter);
  p.boundary = int(boundary);
  p.num_threads = be.threads();
  return ffi::Error::Success();
}

template <typename B>
ffi::Error texture_fwd(B& be, ffi::AnyBuffer tex, ffi::AnyBuffer uv, ffi::AnyBuffer uv_da, ffi::AnyBuffer bias,
                       ffi::RemainingArgs mips, int64_t filter, int64_t boundary, ffi::Result<ffi::AnyBuffer> out) {
  return dispatch(tex, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    TextureFwdParams<T> p{};
    if (auto e = texture_params(be, p, tex, uv, uv_da, bias, mips, filter, boundary); e.failure()) return e;
    p.out = data<T>(out);
    return be.launch("texture", [&] { return texture_fwd_cpu(p); },
                     [&](const auto& ws) { return texture_fwd_cuda(p, ws); });
  });
}

// Returns grad_tex, grad_uv, grad_uv_da (empty without uv_da), grad_bias (empty without bias),
// then one gradient per mip level.
template <typename B>
ffi::Error texture_bwd(B& be, ffi::AnyBuffer tex, ffi::AnyBuffer uv, ffi::AnyBuffer uv_da, ffi::AnyBuffer bias,
                       ffi::AnyBuffer grad_out, ffi::RemainingArgs mips, int64_t filter, int64_t boundary,
                       ffi::Result<ffi::AnyBuffer> grad_tex, ffi::Result<ffi::AnyBuffer> grad_uv,
                       ffi::Result<ffi::AnyBuffer> grad_uv_da, ffi::Result<ffi::AnyBuffer> grad_bias,
                       ffi::RemainingRets grad_mips) {
  return dispatch(tex, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    TextureBwdParams<T> q{};
    if (auto e = texture_params(be, q.fwd, tex, uv, uv_da, bias, mips, filter, boundary); e.failure()) return e;
    if (grad_mips.size() != mips.size()) return invalid("texture backward: one gradient per mip level expected");
    q.grad_out = data<T>(grad_out);
    q.grad_levels[0] = zeroed<T>(be, grad_tex);
    for (size_t k = 0; k < grad_mips.size(); ++k) {
      auto g = grad_mips.get<ffi::AnyBuffer>(k);
      if (g.has_error()) return g.error();
      q.grad_levels[k + 1] = zeroed<T>(be, *g);
    }
    q.grad_uv = data<T>(grad_uv);  // per-pixel outputs, written in full by the kernel
    q.grad_uv_da = data<T>(grad_uv_da);
    q.grad_bias = data<T>(grad_bias);
    return be.launch("texture backward", [&] { return texture_bwd_cpu(q); },
                     [&](const auto& ws) { return texture_bwd_cuda(q, ws); });
  });
}

// ------------------------------------------------------------------------------------ antialias
// color [B,H,W,C], rast [B,H,W,4], pos [B,V,4] or [V,4], tri [T,3], topology_hash [T,6];
// work [B,H,W,4] int32 passes from the forward to the backward.

template <typename B>
ffi::Error check_topology(B& be, ffi::AnyBuffer hash, int64_t num_vertices, int64_t num_triangles) {
  if (!hash.element_count()) return ffi::Error::Success();
  std::vector<int32_t> store;
  const int32_t* h = be.host_ints(hash, &store);
  if (!h) return ffi::Error::Internal("rastlit: could not read topology_hash back for its check");
  const char* what[2] = {"vertex indices (columns 0-2)", "triangle indices (columns 3-5)"};
  const int64_t limit[2] = {num_vertices, num_triangles};
  for (int c = 0; c < 2; ++c) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int64_t t = 0; t < num_triangles; ++t)
      for (int k = 0; k < 3; ++k) {
        lo = std::min<int64_t>(lo, h[6 * t + 3 * c + k]);
        hi = std::max<int64_t>(hi, h[6 * t + 3 * c + k]);
      }
    if (lo < kAaNonManifold || hi >= limit[c]) return invalid(msg_topology_range(what[c], lo, hi, limit[c]));
  }
  return ffi::Error::Success();
}

template <typename T, typename B>
ffi::Error antialias_params(B& be, AntialiasParams<T>& p, ffi::AnyBuffer color, ffi::AnyBuffer rast,
                            ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer hash, bool check) {
  const auto cd = color.dimensions();
  const auto pd = pos.dimensions();
  p.color = data<T>(color);
  p.rast = data<T>(rast);
  p.pos = data<T>(pos);
  p.pos_batched = pd.size() == 3;
  p.tri = data<int32_t>(tri);
  p.opp = data<int32_t>(hash);
  p.num_vertices = pd[pd.size() - 2];
  p.num_triangles = tri.element_count() / 3;
  p.num_views = cd[0];
  p.height = int(cd[1]);
  p.width = int(cd[2]);
  p.num_channels = cd[3];
  p.num_threads = be.threads();
  if (!check) return ffi::Error::Success();  // the backward: its forward checked these
  if (auto e = check_tri(be, tri, p.num_vertices); e.failure()) return e;
  return check_topology(be, hash, p.num_vertices, p.num_triangles);
}

template <typename B>
ffi::Error antialias_fwd(B& be, ffi::AnyBuffer color, ffi::AnyBuffer rast, ffi::AnyBuffer pos, ffi::AnyBuffer tri,
                         ffi::AnyBuffer hash, ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> work) {
  return dispatch(color, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    AntialiasParams<T> p{};
    if (auto e = antialias_params(be, p, color, rast, pos, tri, hash, true); e.failure()) return e;
    if (!be.kernel_checks_ids() && !be.rast_ids_ok(p.rast, p.num_views * p.height * p.width, p.num_triangles))
      return invalid(msg_bad_rast_ids("antialias"));
    p.work = data<int32_t>(work);
    p.out = data<T>(out);
    return be.launch("antialias", [&] { return antialias_fwd_cpu(p); },
                     [&](const auto& ws) { return antialias_fwd_cuda(p, ws); });
  });
}

template <typename B>
ffi::Error antialias_bwd(B& be, ffi::AnyBuffer color, ffi::AnyBuffer rast, ffi::AnyBuffer pos, ffi::AnyBuffer tri,
                         ffi::AnyBuffer hash, ffi::AnyBuffer work, ffi::AnyBuffer grad_out,
                         ffi::Result<ffi::AnyBuffer> grad_color, ffi::Result<ffi::AnyBuffer> grad_pos) {
  return dispatch(color, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    AntialiasParams<T> p{};
    if (auto e = antialias_params(be, p, color, rast, pos, tri, hash, false); e.failure()) return e;
    p.work = const_cast<int32_t*>(data<int32_t>(work));  // read only in the backward
    p.grad_out = data<T>(grad_out);
    p.grad_color = data<T>(grad_color);
    p.grad_pos = zeroed<T>(be, grad_pos);
    return be.launch("antialias backward", [&] { return antialias_bwd_cpu(p); },
                     [&](const auto& ws) { return antialias_bwd_cuda(p, ws); });
  });
}

}  // namespace jaxffi
}  // namespace rastlit

// The handlers' operand lists, shared by both registrations (same target names, same operands):
// RL_FFI_<op>(BIND) expands to the binding after the backend's context arguments.
#define RL_BUF ::xla::ffi::AnyBuffer
#define RL_FFI_RASTERIZE_FWD(b) b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>()
#define RL_FFI_RASTERIZE_BWD(b) \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Ret<RL_BUF>()
#define RL_FFI_INTERPOLATE_FWD(b)                                                                     \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Attr<::xla::ffi::Span<const int32_t>>( \
       "diff_attrs").Ret<RL_BUF>().Ret<RL_BUF>()
#define RL_FFI_INTERPOLATE_BWD(b)                                                                     \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()               \
      .Attr<::xla::ffi::Span<const int32_t>>("diff_attrs").Ret<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>()
#define RL_FFI_TEXTURE_FWD(b)                                                                      \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().RemainingArgs().Attr<int64_t>("filter") \
      .Attr<int64_t>("boundary").Ret<RL_BUF>()
#define RL_FFI_TEXTURE_BWD(b)                                                                              \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().RemainingArgs().Attr<int64_t>( \
       "filter").Attr<int64_t>("boundary").Ret<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>().RemainingRets()
#define RL_FFI_ANTIALIAS_FWD(b) \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>()
#define RL_FFI_ANTIALIAS_BWD(b) \
  b.Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Ret<RL_BUF>() \
      .Ret<RL_BUF>()

// Every handler once, as (op, operand list): each backend expands this list with its own
// registration macro, so the CPU and CUDA libraries export the same set.
#define RL_FFI_FOR_EACH_HANDLER(X)                \
  X(rasterize_fwd, RL_FFI_RASTERIZE_FWD)         \
  X(rasterize_bwd, RL_FFI_RASTERIZE_BWD)         \
  X(interpolate_fwd, RL_FFI_INTERPOLATE_FWD)     \
  X(interpolate_bwd, RL_FFI_INTERPOLATE_BWD)     \
  X(texture_fwd, RL_FFI_TEXTURE_FWD)             \
  X(texture_bwd, RL_FFI_TEXTURE_BWD)             \
  X(antialias_fwd, RL_FFI_ANTIALIAS_FWD)         \
  X(antialias_bwd, RL_FFI_ANTIALIAS_BWD)

// Declares an exported handler symbol (everything else is hidden: -fvisibility=hidden, so the
// kernels here never clash with the torch extension's in one process).
#define RL_FFI_EXPORT(name) \
  extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* name(XLA_FFI_CallFrame*)
