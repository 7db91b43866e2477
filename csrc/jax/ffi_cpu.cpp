// The JAX boundary: XLA FFI handlers (CPU) over the same framework-free kernels as the torch ops.
// Shapes and dtypes are checked in Python at trace time (rastlit/jax/_ops.py), where the message
// can name the caller's argument; what needs values (vertex indices in tri, ids in rast, ranges)
// is checked here and returned as INVALID_ARGUMENT with the torch ops' own text (messages.h).
//
// Conventions of every handler: float buffers are F32 or F64 (all of one call alike); optional
// inputs are passed as zero-size buffers; outputs are written in full (gradient outputs are
// zeroed here, since XLA hands over uninitialised memory).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "xla/ffi/api/ffi.h"

#include "../antialias/antialias.h"
#include "../interpolate/interpolate.h"
#include "../messages.h"
#include "../rasterize/rasterize.h"
#include "../texture/texture.h"

namespace ffi = xla::ffi;

namespace rastlit {
namespace {

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

template <typename T>
T* data(ffi::AnyBuffer b) {
  return b.element_count() ? static_cast<T*>(b.untyped_data()) : nullptr;
}
template <typename T>
T* data(ffi::Result<ffi::AnyBuffer>& b) {
  return b->element_count() ? static_cast<T*>(b->untyped_data()) : nullptr;
}
template <typename T>
T* zeroed(ffi::Result<ffi::AnyBuffer>& b) {
  T* p = data<T>(b);
  if (p) std::memset(p, 0, b->size_bytes());
  return p;
}

ffi::Error invalid(const std::string& msg) { return ffi::Error::InvalidArgument(msg); }

ffi::Error from_status(int status, const char* op) {
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

ffi::Error check_tri(ffi::AnyBuffer tri, int64_t num_vertices) {
  const int64_t n = tri.element_count();
  if (n / 3 > kMaxTriangles) return invalid(msg_too_many_triangles(n / 3, kMaxTriangles));
  if (n == 0) return ffi::Error::Success();
  const int32_t* t = static_cast<const int32_t*>(tri.untyped_data());
  const auto mm = std::minmax_element(t, t + n);
  if (*mm.first < 0 || *mm.second >= num_vertices) return invalid(msg_tri_range(*mm.first, *mm.second, num_vertices));
  return ffi::Error::Success();
}

ffi::Error check_ranges(ffi::AnyBuffer ranges, int64_t num_triangles) {
  const int32_t* r = data<int32_t>(ranges);
  for (int64_t b = 0; b < int64_t(ranges.element_count() / 2); ++b) {
    const int64_t start = r[2 * b], count = r[2 * b + 1];
    if (start < 0 || count < 0 || start + count > num_triangles)
      return invalid(msg_range_outside(b, start, count, num_triangles));
  }
  return ffi::Error::Success();
}

// Triangle ids in a rast that did not come from this handler's own forward (depth peeling's
// previous layer): 0 or an integer in [1, T].
template <typename T>
bool rast_ids_ok(const T* rast, int64_t pixels, int64_t num_triangles) {
  for (int64_t i = 0; i < pixels; ++i) {
    const T id = rast[4 * i + 3];
    if (!(id >= T(0) && id <= T(num_triangles)) || id != T(int64_t(id))) return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------ rasterize
// pos [B,V,4] (instanced; ranges empty) or [V,4] (range mode, ranges [B,2]); the view count is
// rast's leading dimension.

template <typename P, typename T>
ffi::Error rasterize_geometry(P& p, ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer ranges, int64_t views,
                              int64_t height, int64_t width) {
  const auto d = pos.dimensions();
  const bool range_mode = ranges.element_count() > 0 || d.size() == 2;
  p.pos = static_cast<const T*>(pos.untyped_data());
  p.tri = data<int32_t>(tri);
  p.ranges = range_mode ? data<int32_t>(ranges) : nullptr;
  p.num_views = views;
  p.num_vertices = range_mode ? d[0] : d[1];
  p.num_triangles = tri.element_count() / 3;
  p.height = int(height);
  p.width = int(width);
  p.num_threads = num_threads();
  if (auto e = check_tri(tri, p.num_vertices); e.failure()) return e;
  return check_ranges(ranges, p.num_triangles);
}

ffi::Error rasterize_fwd(ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer ranges, ffi::AnyBuffer peel,
                         ffi::Result<ffi::AnyBuffer> rast, ffi::Result<ffi::AnyBuffer> rast_db) {
  const auto rd = rast->dimensions();
  return dispatch(pos, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    RasterizeFwdParams<T> p{};
    if (auto e = rasterize_geometry<RasterizeFwdParams<T>, T>(p, pos, tri, ranges, rd[0], rd[1], rd[2]); e.failure())
      return e;
    p.peel = data<T>(peel);
    if (p.peel && !rast_ids_ok(p.peel, rd[0] * rd[1] * rd[2], p.num_triangles))
      return invalid(msg_bad_rast_ids("rasterize (depth peeling)"));
    p.rast = data<T>(rast);
    p.rast_db = data<T>(rast_db);
    return from_status(rasterize_fwd_cpu(p), "rasterize");
  });
}

ffi::Error rasterize_bwd(ffi::AnyBuffer pos, ffi::AnyBuffer tri, ffi::AnyBuffer ranges, ffi::AnyBuffer rast,
                         ffi::AnyBuffer grad_rast, ffi::AnyBuffer grad_rast_db, ffi::Result<ffi::AnyBuffer> grad_pos) {
  const auto rd = rast.dimensions();
  return dispatch(pos, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    RasterizeBwdParams<T> p{};
    if (auto e = rasterize_geometry<RasterizeBwdParams<T>, T>(p, pos, tri, ranges, rd[0], rd[1], rd[2]); e.failure())
      return e;
    p.rast = data<T>(rast);
    p.grad_rast = data<T>(grad_rast);
    p.grad_rast_db = data<T>(grad_rast_db);
    p.grad_pos = zeroed<T>(grad_pos);
    return from_status(rasterize_bwd_cpu(p), "rasterize backward");
  });
}

// ---------------------------------------------------------------------------------- interpolate
// attr [B,V,A], [1,V,A] or [V,A]; rast_db empty unless diff_attrs is.

template <typename T>
ffi::Error interpolate_params(InterpolateFwdParams<T>& p, ffi::AnyBuffer attr, ffi::AnyBuffer rast,
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
  p.diff_attrs = diff.size() ? diff.begin() : nullptr;
  p.num_diff = int(diff.size());
  p.num_threads = num_threads();
  return check_tri(tri, p.num_vertices);
}

ffi::Error interpolate_fwd(ffi::AnyBuffer attr, ffi::AnyBuffer rast, ffi::AnyBuffer tri, ffi::AnyBuffer rast_db,
                           ffi::Span<const int32_t> diff, ffi::Result<ffi::AnyBuffer> out,
                           ffi::Result<ffi::AnyBuffer> out_da) {
  return dispatch(attr, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    InterpolateFwdParams<T> p{};
    if (auto e = interpolate_params(p, attr, rast, tri, rast_db, diff); e.failure()) return e;
    p.out = data<T>(out);
    p.out_da = data<T>(out_da);
    return from_status(interpolate_fwd_cpu(p), "interpolate");
  });
}

ffi::Error interpolate_bwd(ffi::AnyBuffer attr, ffi::AnyBuffer rast, ffi::AnyBuffer tri, ffi::AnyBuffer rast_db,
                           ffi::AnyBuffer grad_out, ffi::AnyBuffer grad_out_da, ffi::Span<const int32_t> diff,
                           ffi::Result<ffi::AnyBuffer> grad_attr, ffi::Result<ffi::AnyBuffer> grad_rast,
                           ffi::Result<ffi::AnyBuffer> grad_rast_db) {
  return dispatch(attr, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    InterpolateBwdParams<T> q{};
    if (auto e = interpolate_params(q.fwd, attr, rast, tri, rast_db, diff); e.failure()) return e;
    q.grad_out = data<T>(grad_out);
    q.grad_out_da = data<T>(grad_out_da);
    q.grad_attr = zeroed<T>(grad_attr);
    q.grad_rast = zeroed<T>(grad_rast);
    q.grad_rast_db = zeroed<T>(grad_rast_db);
    return from_status(interpolate_bwd_cpu(q), "interpolate backward");
  });
}

// -------------------------------------------------------------------------------------- texture
// tex [TB,Ht,Wt,C], uv [B,H,W,2], uv_da [B,H,W,4] or empty, bias [B,H,W] or empty, then the mip
// levels below tex (built by the caller) as the remaining arguments.

template <typename T>
ffi::Error texture_params(TextureFwdParams<T>& p, ffi::AnyBuffer tex, ffi::AnyBuffer uv, ffi::AnyBuffer uv_da,
                          ffi::AnyBuffer bias, ffi::RemainingArgs mips, int64_t filter, int64_t boundary) {
  if (mips.size() + 1 > size_t(kMaxTextureLevels)) return invalid("texture: too many mip levels");
  const auto td = tex.dimensions();
  const auto ud = uv.dimensions();
  p.num_levels = 1 + int(mips.size());
  for (int k = 0; k < p.num_levels; ++k) {
    ffi::AnyBuffer level = tex;
    if (k > 0) {
      auto m = mips.get<ffi::AnyBuffer>(k - 1);
      if (m.has_error()) return m.error();
      level = *m;
    }
    const auto ld = level.dimensions();
    p.levels[k].data = static_cast<const T*>(level.untyped_data());
    p.levels[k].height = int(ld[1]);
    p.levels[k].width = int(ld[2]);
  }
  p.tex_batch = td[0];
  p.channels = td[3];
  p.uv = data<T>(uv);
  p.uv_da = data<T>(uv_da);
  p.bias = data<T>(bias);
  p.num_views = ud[0];
  p.height = int(ud[1]);
  p.width = int(ud[2]);
  p.filter = int(filter);
  p.boundary = int(boundary);
  p.num_threads = num_threads();
  return ffi::Error::Success();
}

ffi::Error texture_fwd(ffi::AnyBuffer tex, ffi::AnyBuffer uv, ffi::AnyBuffer uv_da, ffi::AnyBuffer bias,
                       ffi::RemainingArgs mips, int64_t filter, int64_t boundary, ffi::Result<ffi::AnyBuffer> out) {
  return dispatch(tex, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    TextureFwdParams<T> p{};
    if (auto e = texture_params(p, tex, uv, uv_da, bias, mips, filter, boundary); e.failure()) return e;
    p.out = data<T>(out);
    return from_status(texture_fwd_cpu(p), "texture");
  });
}

// Returns grad_tex, grad_uv, grad_uv_da (empty without uv_da), grad_bias (empty without bias),
// then one gradient per mip level.
ffi::Error texture_bwd(ffi::AnyBuffer tex, ffi::AnyBuffer uv, ffi::AnyBuffer uv_da, ffi::AnyBuffer bias,
                       ffi::AnyBuffer grad_out, ffi::RemainingArgs mips, int64_t filter, int64_t boundary,
                       ffi::Result<ffi::AnyBuffer> grad_tex, ffi::Result<ffi::AnyBuffer> grad_uv,
                       ffi::Result<ffi::AnyBuffer> grad_uv_da, ffi::Result<ffi::AnyBuffer> grad_bias,
                       ffi::RemainingRets grad_mips) {
  return dispatch(tex, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    TextureBwdParams<T> q{};
    if (auto e = texture_params(q.fwd, tex, uv, uv_da, bias, mips, filter, boundary); e.failure()) return e;
    if (grad_mips.size() != mips.size()) return invalid("texture backward: one gradient per mip level expected");
    q.grad_out = data<T>(grad_out);
    q.grad_levels[0] = zeroed<T>(grad_tex);
    for (size_t k = 0; k < grad_mips.size(); ++k) {
      auto g = grad_mips.get<ffi::AnyBuffer>(k);
      if (g.has_error()) return g.error();
      q.grad_levels[k + 1] = zeroed<T>(*g);
    }
    q.grad_uv = zeroed<T>(grad_uv);
    q.grad_uv_da = zeroed<T>(grad_uv_da);
    q.grad_bias = zeroed<T>(grad_bias);
    return from_status(texture_bwd_cpu(q), "texture backward");
  });
}

// ------------------------------------------------------------------------------------ antialias
// color [B,H,W,C], rast [B,H,W,4], pos [B,V,4] or [V,4], tri [T,3], topology_hash [T,6];
// work [B,H,W,4] int32 passes from the forward to the backward.

ffi::Error check_topology(ffi::AnyBuffer hash, int64_t num_vertices, int64_t num_triangles) {
  const int32_t* h = data<int32_t>(hash);
  const char* what[2] = {"vertex indices (columns 0-2)", "triangle indices (columns 3-5)"};
  const int64_t limit[2] = {num_vertices, num_triangles};
  for (int c = 0; c < 2 && h; ++c) {
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

template <typename T>
ffi::Error antialias_params(AntialiasParams<T>& p, ffi::AnyBuffer color, ffi::AnyBuffer rast, ffi::AnyBuffer pos,
                            ffi::AnyBuffer tri, ffi::AnyBuffer hash) {
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
  p.num_threads = num_threads();
  if (auto e = check_tri(tri, p.num_vertices); e.failure()) return e;
  return check_topology(hash, p.num_vertices, p.num_triangles);
}

ffi::Error antialias_fwd(ffi::AnyBuffer color, ffi::AnyBuffer rast, ffi::AnyBuffer pos, ffi::AnyBuffer tri,
                         ffi::AnyBuffer hash, ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> work) {
  return dispatch(color, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    AntialiasParams<T> p{};
    if (auto e = antialias_params(p, color, rast, pos, tri, hash); e.failure()) return e;
    p.work = data<int32_t>(work);
    p.out = data<T>(out);
    return from_status(antialias_fwd_cpu(p), "antialias");
  });
}

ffi::Error antialias_bwd(ffi::AnyBuffer color, ffi::AnyBuffer rast, ffi::AnyBuffer pos, ffi::AnyBuffer tri,
                         ffi::AnyBuffer hash, ffi::AnyBuffer work, ffi::AnyBuffer grad_out,
                         ffi::Result<ffi::AnyBuffer> grad_color, ffi::Result<ffi::AnyBuffer> grad_pos) {
  return dispatch(color, [&](auto zero) -> ffi::Error {
    using T = decltype(zero);
    AntialiasParams<T> p{};
    if (auto e = antialias_params(p, color, rast, pos, tri, hash); e.failure()) return e;
    p.work = const_cast<int32_t*>(data<int32_t>(work));  // read only in the backward
    p.grad_out = data<T>(grad_out);
    p.grad_color = data<T>(grad_color);
    p.grad_pos = zeroed<T>(grad_pos);
    return from_status(antialias_bwd_cpu(p), "antialias backward");
  });
}

}  // namespace
}  // namespace rastlit

// The exported symbols (everything else is hidden: -fvisibility=hidden, so the kernels here never
// clash with the torch extension's in one process). One handler per target name; rastlit/jax/_ffi.py
// registers them.

#define RL_BUF ffi::AnyBuffer
#define RL_EXPORT(name) extern "C" __attribute__((visibility("default"))) XLA_FFI_Error* name(XLA_FFI_CallFrame*)

RL_EXPORT(rastlit_rasterize_fwd);
RL_EXPORT(rastlit_rasterize_bwd);
RL_EXPORT(rastlit_interpolate_fwd);
RL_EXPORT(rastlit_interpolate_bwd);
RL_EXPORT(rastlit_texture_fwd);
RL_EXPORT(rastlit_texture_bwd);
RL_EXPORT(rastlit_antialias_fwd);
RL_EXPORT(rastlit_antialias_bwd);

XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_rasterize_fwd, rastlit::rasterize_fwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_rasterize_bwd, rastlit::rasterize_bwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()
                                  .Arg<RL_BUF>().Ret<RL_BUF>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_interpolate_fwd, rastlit::interpolate_fwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()
                                  .Attr<ffi::Span<const int32_t>>("diff_attrs").Ret<RL_BUF>().Ret<RL_BUF>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_interpolate_bwd, rastlit::interpolate_bwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()
                                  .Arg<RL_BUF>().Attr<ffi::Span<const int32_t>>("diff_attrs").Ret<RL_BUF>().Ret<RL_BUF>()
                                  .Ret<RL_BUF>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_texture_fwd, rastlit::texture_fwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().RemainingArgs()
                                  .Attr<int64_t>("filter").Attr<int64_t>("boundary").Ret<RL_BUF>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_texture_bwd, rastlit::texture_bwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()
                                  .RemainingArgs().Attr<int64_t>("filter").Attr<int64_t>("boundary").Ret<RL_BUF>().Ret<RL_BUF>()
                                  .Ret<RL_BUF>().Ret<RL_BUF>().RemainingRets());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_antialias_fwd, rastlit::antialias_fwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()
                                  .Ret<RL_BUF>().Ret<RL_BUF>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(rastlit_antialias_bwd, rastlit::antialias_bwd,
                              ffi::Ffi::Bind().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>().Arg<RL_BUF>()
                                  .Arg<RL_BUF>().Arg<RL_BUF>().Ret<RL_BUF>().Ret<RL_BUF>());
