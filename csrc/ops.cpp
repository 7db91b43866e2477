// The torch boundary: op schemas, input checks, and the CPU registration. The only file (with
// ops_cuda.cpp) that includes torch headers; kernels get raw pointers and a params struct.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "antialias/antialias.h"
#include "messages.h"
#include "interpolate/interpolate.h"
#include "rasterize/rasterize.h"
#include "texture/texture.h"

#include "rasterize_soft/rasterize_soft.h"

#ifdef RASTLIT_WITH_CUDA
#include <functional>

#include "cuda_common.cuh"
#endif

namespace rastlit {

int parallel_probe_threads(int num_threads);

#ifdef RASTLIT_WITH_CUDA
// ops_cuda.cpp: runs `launch` on the device's current stream with a workspace from torch's
// caching allocator, and turns a non-zero status into an exception.
void run_cuda(const at::Device& device, const char* op, const std::function<int(const CudaWorkspace&)>& launch);
#endif

namespace {

std::string shape_str(const at::Tensor& t) {
  std::ostringstream ss;
  ss << t.sizes();
  return ss.str();
}

void check_device_supported(const at::Tensor& t, const char* name) {
#ifdef RASTLIT_WITH_CUDA
  TORCH_CHECK(t.device().is_cpu() || t.device().is_cuda(), name, " must be a CPU or CUDA tensor, got ", t.device());
#else
  TORCH_CHECK(t.device().is_cpu(), name, " is on ", t.device(),
              ", but this rastlit build has CPU kernels only (CUDA kernels are built when torch has CUDA "
              "and nvcc is installed); move the tensors to the CPU");
#endif
}

void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 (or float64 on the CPU), got ", t.scalar_type());
}

void check_int32(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kInt, name, " must be int32, got ", t.scalar_type(),
                   " (convert with .int())");
}

void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* name, const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), name, " must be on the same device as ", ref_name, " (",
              ref.device(), "), got ", t.device());
}

void check_same_dtype(const at::Tensor& t, const at::Tensor& ref, const char* name, const char* ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ", ref_name,
                   " (", ref.scalar_type(), "), got ", t.scalar_type());
}

void check_image(const at::Tensor& t, const char* name, int64_t b, int64_t h, int64_t w, int64_t c) {
  TORCH_CHECK_VALUE(t.dim() == 4 && t.size(0) == b && t.size(1) == h && t.size(2) == w && t.size(3) == c,
                    name, " must have shape [", b, ",", h, ",", w, ",", c, "], got ", shape_str(t));
}

// Value checks read a tensor's contents, which on CUDA is a device->host sync. For CUDA tensors
// what they find is remembered per tensor contents: its storage (held weakly), offset, dtype,
// size and version counter, which views, detach() and autograd's saved copies share.
// A training loop that passes the same tri (and topology hash) every step is checked once, and
// the rast that rasterize returned, or the work buffer of antialias, is known good without a
// look: a step runs without a sync, and can be captured in a CUDA graph after a warm-up step.
// An in-place change bumps the version, so the next call checks again. Writes that bypass the
// version counter (.data, DLPack, NumPy views) are not seen: RASTLIT_RECHECK=1 turns the memory
// off, so every call checks. CPU tensors are checked on every call (no sync to save).
enum CheckedKind : int { kCheckedTri = 0, kCheckedRastIds = 1, kCheckedTopology = 2, kCheckedWork = 3 };

class CheckedTensors {
 public:
  // The two numbers recorded for `t`'s contents under `kind`, if they are unchanged since.
  bool find(const at::Tensor& t, int kind, int64_t* a, int64_t* b) {
    if (!eligible(t)) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& e : entries_) {
      if (e.kind != kind || !e.same(t)) continue;
      auto alive = e.storage.lock();  // the same storage, not a new one at a reused address
      if (!alive || alive.get() != t.storage().unsafeGetStorageImpl()) continue;
      *a = e.a;
      *b = e.b;
      return true;
    }
    return false;
  }
  void add(const at::Tensor& t, int kind, int64_t a, int64_t b) {
    if (!eligible(t)) return;
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Entry> kept;  // drop the dead and older records of these contents; keep the newest 256
    for (Entry& e : entries_)
      if (!e.storage.expired() && !(e.kind == kind && e.same(t))) kept.push_back(std::move(e));
    if (kept.size() >= 256) kept.erase(kept.begin(), kept.begin() + (kept.size() - 255));
    kept.push_back(Entry{t.storage().getWeakStorageImpl(), t.storage().unsafeGetStorageImpl(), t.storage_offset(),
                         t.numel(), t.scalar_type(), t._version(), kind, a, b});
    entries_ = std::move(kept);
  }

 private:
  struct Entry {
    c10::weak_intrusive_ptr<c10::StorageImpl> storage;
    const c10::StorageImpl* storage_raw;
    int64_t offset, numel;
    at::ScalarType dtype;
    int64_t version;
    int kind;
    int64_t a, b;
    bool same(const at::Tensor& t) const {
      return storage_raw == t.storage().unsafeGetStorageImpl() && offset == t.storage_offset() &&
             numel == t.numel() && dtype == t.scalar_type() && version == t._version();
    }
  };
  static bool eligible(const at::Tensor& t) {
    static const bool off = [] {
      const char* v = std::getenv("RASTLIT_RECHECK");
      return v != nullptr && std::string(v) == "1";
    }();
    return !off && t.defined() && t.is_cuda() && t.has_storage() && t.is_contiguous();
  }
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

CheckedTensors& checked_tensors() {
  static CheckedTensors* c = new CheckedTensors();  // never destroyed: used until process exit
  return *c;
}

// Per-pixel outputs on the CPU come from a small pool of buffers that stay mapped between calls.
// A fresh multi-MB allocation is an mmap whose pages fault in one by one as the kernel writes
// them (about a third of rasterize's time at B = 8, 512^2); a training loop asks for the same
// sizes every step, so a freed buffer is kept (up to 512 MB in all, $RASTLIT_HOST_POOL_MB) and
// handed out again for the same size. Small outputs go through the normal allocator.
class HostBufferPool {
 public:
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    int64_t numel = 1;
    for (int64_t d : sizes) numel *= d;
    const size_t bytes = size_t(numel) * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
    if (bytes < (size_t(1) << 20) || !options.device().is_cpu()) return at::empty(sizes, options);
    void* p = take(bytes);
    if (!p) return at::empty(sizes, options);
    return at::from_blob(p, sizes, [this, bytes](void* q) { give_back(q, bytes); }, options);
  }

 private:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end()) {
        void* p = it->second;
        free_.erase(it);
        held_ -= bytes;
        return p;
      }
    }
    return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  void give_back(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (held_ + bytes > capacity() && !free_.empty()) {  // make room: drop the largest first
      auto last = std::prev(free_.end());
      std::free(last->second);
      held_ -= last->first;
      free_.erase(last);
    }
    if (held_ + bytes > capacity()) {
      std::free(p);
      return;
    }
    free_.emplace(bytes, p);
    held_ += bytes;
  }
  static size_t capacity() {
    static const size_t cap = [] {
      const char* v = std::getenv("RASTLIT_HOST_POOL_MB");
      return size_t(v ? std::max(0L, std::atol(v)) : 512L) << 20;
    }();
    return cap;
  }
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  size_t held_ = 0;
};

HostBufferPool& host_pool() {
  static HostBufferPool* pool = new HostBufferPool();  // never destroyed: tensors may outlive statics
  return *pool;
}

// tri: [T,3] int32 with every index in [0, num_vertices).
void check_tri(const at::Tensor& tri, int64_t num_vertices) {
  check_int32(tri, "tri");
  TORCH_CHECK_VALUE(tri.dim() == 2 && tri.size(1) == 3, "tri must have shape [T,3], got ", shape_str(tri));
  TORCH_CHECK_VALUE(tri.size(0) <= kMaxTriangles, msg_too_many_triangles(tri.size(0), kMaxTriangles));
  if (tri.numel() == 0) return;
  int64_t lo = 0, hi = 0;
  if (!checked_tensors().find(tri, kCheckedTri, &lo, &hi)) {
    const auto mm = at::aminmax(tri);
    lo = std::get<0>(mm).item<int64_t>();
    hi = std::get<1>(mm).item<int64_t>();
    checked_tensors().add(tri, kCheckedTri, lo, hi);
  }
  TORCH_CHECK_INDEX(lo >= 0 && hi < num_vertices, msg_tri_range(lo, hi, num_vertices));
}

void check_resolution(int64_t height, int64_t width) {
  TORCH_CHECK_VALUE(height >= 1 && width >= 1 && height <= kMaxResolution && width <= kMaxResolution,
                    "resolution must be (height, width) with each side in [1, ", kMaxResolution,
                    "], got (", height, ", ", width, ")");
}

struct RasterizeShape {
  int64_t num_views, num_vertices;
};

RasterizeShape check_rasterize_inputs(const at::Tensor& pos, const at::Tensor& tri, int64_t height,
                                      int64_t width, const c10::optional<at::Tensor>& ranges) {
  check_device_supported(pos, "pos");
  check_float(pos, "pos");
  check_same_device(tri, pos, "tri", "pos");
  check_resolution(height, width);
  RasterizeShape s{};
  if (pos.dim() == 3) {
    TORCH_CHECK_VALUE(pos.size(2) == 4, "pos must have shape [B,V,4] (instanced mode) or [V,4] (range mode), got ",
                      shape_str(pos));
    TORCH_CHECK_VALUE(!ranges.has_value(), "ranges is only used in range mode, with pos of shape [V,4]; got pos ",
                      shape_str(pos), " and ranges");
    s.num_views = pos.size(0);
    s.num_vertices = pos.size(1);
  } else {
    TORCH_CHECK_VALUE(pos.dim() == 2 && pos.size(1) == 4,
                      "pos must have shape [B,V,4] (instanced mode) or [V,4] (range mode), got ", shape_str(pos));
    TORCH_CHECK_VALUE(ranges.has_value(), "range mode (pos of shape [V,4]) needs ranges, an int32 tensor [B,2] of (start, count)");
    const at::Tensor& r = *ranges;
    check_int32(r, "ranges");
    TORCH_CHECK(r.device().is_cpu(), "ranges must be a CPU tensor (as in nvdiffrast), got ", r.device());
    TORCH_CHECK_VALUE(r.dim() == 2 && r.size(1) == 2, "ranges must have shape [B,2] of (start, count), got ",
                      shape_str(r));
    s.num_views = r.size(0);
    s.num_vertices = pos.size(0);
  }
  check_tri(tri, s.num_vertices);
  if (ranges.has_value() && ranges->numel() > 0) {
    const at::Tensor r = ranges->contiguous();
    const int32_t* rp = r.data_ptr<int32_t>();
    const int64_t T = tri.size(0);
    for (int64_t b = 0; b < s.num_views; ++b) {
      const int64_t start = rp[2 * b], count = rp[2 * b + 1];
      TORCH_CHECK_INDEX(start >= 0 && count >= 0 && start + count <= T, msg_range_outside(b, start, count, T));
    }
  }
  return s;
}

// Triangle ids in rast must be 0 (background) or in [1, T]. The CPU kernels of interpolate and
// rasterize's backward report bad ids themselves; on the GPU (and for depth peeling's previous
// layer on any device) they are checked here first.
// Known good without a look: the rast that rasterize returned (for up to `bound` triangles), or
// one checked before and unchanged since.
void check_rast_ids(const at::Tensor& rast, int64_t num_triangles, const char* op) {
  if (rast.numel() == 0) return;
  int64_t bound = 0, unused = 0;
  if (checked_tensors().find(rast, kCheckedRastIds, &bound, &unused) && bound <= num_triangles) return;
  const at::Tensor ids = rast.select(-1, 3);
  const bool bad = (ids.lt(0) | ids.gt(double(num_triangles)) | ids.isnan() | ids.ne(ids.floor())).any().item<bool>();
  TORCH_CHECK_INDEX(!bad, msg_bad_rast_ids(op));
  checked_tensors().add(rast, kCheckedRastIds, num_triangles, 0);
}

void raise_status(int status, const char* op) {
  TORCH_CHECK_INDEX(status != kBadTriangleId, msg_bad_rast_ids(op));
  TORCH_CHECK(status == kOk, op, ": kernel failed with status ", status);
}

// Runs the CPU kernel or, for CUDA tensors, the CUDA one, and raises on a bad status. The CUDA
// launcher is a generic lambda so that CPU-only builds never instantiate it.
template <typename CpuLaunch, typename CudaLaunch>
void launch(const at::Tensor& t, const char* op, const CpuLaunch& cpu, const CudaLaunch& cuda) {
  if (!t.is_cuda()) {
    raise_status(cpu(), op);
    return;
  }
#ifdef RASTLIT_WITH_CUDA
  run_cuda(t.device(), op, cuda);
#else
  (void)cuda;
  TORCH_CHECK(false, op, ": this rastlit build has no CUDA kernels");
#endif
}

// The geometry fields that RasterizeFwdParams and RasterizeBwdParams share.
template <typename P, typename scalar_t = std::remove_const_t<std::remove_pointer_t<decltype(P::pos)>>>
void set_geometry(P& p, const RasterizeShape& s, const at::Tensor& pos, const at::Tensor& tri, const at::Tensor& ranges,
                  int64_t height, int64_t width) {
  p.pos = pos.data_ptr<scalar_t>();
  p.tri = tri.data_ptr<int32_t>();
  p.ranges = ranges.defined() ? ranges.data_ptr<int32_t>() : nullptr;
  p.num_views = s.num_views;
  p.num_vertices = s.num_vertices;
  p.num_triangles = tri.size(0);
  p.height = int(height);
  p.width = int(width);
}

}  // namespace

// The op functions have external linkage: ops_cuda.cpp registers the same ones for CUDA.
// ------------------------------------------------------------------------------------ rasterize

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

// ---------------------------------------------------------------------------------- interpolate

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

// ------------------------------------------------------------------------------------ texture

namespace {

struct TextureShape {
  int64_t num_views, height, width, tex_batch, channels;
};

// tex [TB,Ht,Wt,C] with TB = 1 or B; mips[k] the k+1-th halving of tex (each side > 1 halved,
// exactly); uv [B,H,W,2]; uv_da [B,H,W,4]; mip_level_bias [B,H,W]. Cube maps (boundary_mode 3):
// tex [TB,6,S,S,C], mips [TB,6,S/2^k,S/2^k,C], uv [B,H,W,3] directions, uv_da [B,H,W,6].
TextureShape check_texture_inputs(const at::Tensor& tex, at::TensorList mips, const at::Tensor& uv,
                                  const c10::optional<at::Tensor>& uv_da, const c10::optional<at::Tensor>& bias,
                                  int64_t filter_mode, int64_t boundary_mode) {
  check_device_supported(tex, "tex");
  check_float(tex, "tex");
  TORCH_CHECK_VALUE(filter_mode >= kTexNearest && filter_mode <= kTexLinearMipmapLinear,
                    "filter_mode must be 0 (nearest), 1 (linear), 2 (linear-mipmap-nearest) or 3 "
                    "(linear-mipmap-linear), got ", filter_mode);
  TORCH_CHECK_VALUE(boundary_mode >= kTexWrap && boundary_mode <= kTexCube,
                    "boundary_mode must be 0 (wrap), 1 (clamp), 2 (zero) or 3 (cube), got ", boundary_mode);
  const bool cube = boundary_mode == kTexCube;
  const int64_t fd = tex_row_dim(int(boundary_mode)) - 1;  // dimensions before the texel rows: the cube face
  if (cube) {
    TORCH_CHECK_VALUE(tex.dim() == 5 && tex.size(1) == 6 && tex.size(4) >= 1,
                      "tex must have shape [B,6,S,S,C] (or [1,6,S,S,C]) for boundary_mode='cube': six square "
                      "faces in the order +x,-x,+y,-y,+z,-z, C >= 1; got ", shape_str(tex));
    TORCH_CHECK_VALUE(tex.size(2) == tex.size(3) && tex.size(2) >= 1,
                      "tex must have square cube faces (shape [B,6,S,S,C] with S >= 1), got ", shape_str(tex));
    TORCH_CHECK_VALUE(tex.size(2) <= kMaxResolution * 2, "tex faces must be at most ", kMaxResolution * 2,
                      " texels on a side, got ", shape_str(tex));
    TORCH_CHECK_VALUE(uv.dim() == 4 && uv.size(3) == 3,
                      "uv must have shape [B,H,W,3] (direction vectors) for boundary_mode='cube', got ", shape_str(uv));
  } else {
    TORCH_CHECK_VALUE(tex.dim() == 4 && tex.size(1) >= 1 && tex.size(2) >= 1 && tex.size(3) >= 1,
                      "tex must have shape [B,Ht,Wt,C] (or [1,Ht,Wt,C]) with Ht, Wt, C >= 1, got ", shape_str(tex),
                      tex.dim() == 5 ? " (a [B,6,S,S,C] cube map needs boundary_mode='cube')" : "");
    TORCH_CHECK_VALUE(tex.size(1) <= kMaxResolution * 2 && tex.size(2) <= kMaxResolution * 2,
                      "tex sides must be at most ", kMaxResolution * 2, ", got ", shape_str(tex));
    TORCH_CHECK_VALUE(uv.dim() == 4 && uv.size(3) == 2, "uv must have shape [B,H,W,2], got ", shape_str(uv));
  }
  check_same_dtype(uv, tex, "uv", "tex");
  check_same_device(uv, tex, "uv", "tex");
  TextureShape s{uv.size(0), uv.size(1), uv.size(2), tex.size(0), tex.size(3 + fd)};
  TORCH_CHECK_VALUE(s.tex_batch == 1 || s.tex_batch == s.num_views,
                    cube ? "tex must have shape [1,6,S,S,C] or [B,6,S,S,C]" : "tex must have shape [1,Ht,Wt,C] or [B,Ht,Wt,C]",
                    " with B = uv.shape[0] = ", s.num_views, ", got ", shape_str(tex));
  TORCH_CHECK_VALUE(int64_t(mips.size()) < kMaxTextureLevels, "at most ", kMaxTextureLevels - 1,
                    " mip levels are supported, got ", mips.size(), "; pass max_mip_level");
  int64_t h = tex.size(1 + fd), w = tex.size(2 + fd);
  for (size_t k = 0; k < mips.size(); ++k) {
    const at::Tensor& m = mips[k];
    TORCH_CHECK_VALUE(h > 1 || w > 1, "mip level ", k + 1, " is one too many: level ", k, " is already 1x1");
    TORCH_CHECK_VALUE(h == 1 || h % 2 == 0, "mip level ", k, " has height ", h, ", which cannot be halved");
    TORCH_CHECK_VALUE(w == 1 || w % 2 == 0, "mip level ", k, " has width ", w, ", which cannot be halved");
    h = h > 1 ? h / 2 : 1;
    w = w > 1 ? w / 2 : 1;
    if (cube) {
      TORCH_CHECK_VALUE(m.dim() == 5 && m.size(0) == s.tex_batch && m.size(1) == 6 && m.size(2) == h &&
                            m.size(3) == w && m.size(4) == s.channels,
                        "mip level ", k + 1, " must have shape [", s.tex_batch, ",6,", h, ",", w, ",", s.channels,
                        "] (each face of the previous level halved), got ", shape_str(m),
                        "; build it with texture_construct_mip(tex, cube_mode=True)");
    } else {
      TORCH_CHECK_VALUE(m.dim() == 4 && m.size(0) == s.tex_batch && m.size(1) == h && m.size(2) == w && m.size(3) == s.channels,
                        "mip level ", k + 1, " must have shape [", s.tex_batch, ",", h, ",", w, ",", s.channels,
                        "] (each side > 1 of the previous level halved), got ", shape_str(m),
                        "; build it with texture_construct_mip(tex)");
    }
    check_same_dtype(m, tex, "mip levels", "tex");
    check_same_device(m, tex, "mip levels", "tex");
  }
  if (uv_da.has_value()) {
    check_image(*uv_da, "uv_da", s.num_views, s.height, s.width, tex_uv_da_width(int(boundary_mode)));
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
    p.levels[k].height = int(t.size(tex_row_dim(int(boundary_mode))));  // cube levels are [TB,6,S,S,C]
    p.levels[k].width = int(t.size(tex_row_dim(int(boundary_mode)) + 1));
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

// ---------------------------------------------------------------------------------- antialias

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

// ----------------------------------------------------------------------------- rasterize_soft

namespace {

void check_soft_options(int64_t faces_per_pixel, double blur_radius) {
  TORCH_CHECK_VALUE(faces_per_pixel >= 1 && faces_per_pixel <= kMaxFacesPerPixel, "faces_per_pixel must be in [1, ",
                    kMaxFacesPerPixel, "], got ", faces_per_pixel);
  TORCH_CHECK_VALUE(std::isfinite(blur_radius) && blur_radius >= 0.0,
                    "blur_radius must be a finite squared NDC distance >= 0, got ", blur_radius);
}

// Smallest nonzero vertex scale (largest |x|, |y|, |z|, |w| of a vertex) that rasterize_soft
// accepts: its gradients grow as 1 / scale and overflow float32 below ~1e-37 (measured).
constexpr double kMinSoftVertexScale = 1e-30;

// One reduction, one sync (as the NaN check it replaces): every vertex finite, and its scale 0
// (a vertex at the origin: w = 0, skipped like any w <= 0) or >= kMinSoftVertexScale.
void check_soft_pos_values(const at::Tensor& pos) {
  if (pos.numel() == 0) return;
  const at::Tensor scale = pos.abs().amax(-1);
  const at::Tensor ok = at::isfinite(scale) & ((scale == 0) | (scale >= kMinSoftVertexScale));
  if (ok.all().item<bool>()) return;
  TORCH_CHECK_VALUE(at::isfinite(pos).all().item<bool>(),
                    "pos holds NaN or Inf; rasterize_soft needs finite clip-space positions");
  TORCH_CHECK_VALUE(false, "pos holds a vertex whose largest |x|, |y|, |z|, |w| is ",
                    scale.masked_fill(scale == 0, 1.0).min().item<double>(), ", below ", kMinSoftVertexScale,
                    ": rasterize_soft's gradients grow as 1 / that scale and would overflow; scale pos up "
                    "(clip-space positions are homogeneous: pos * c renders the same image for any c > 0)");
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
  check_soft_pos_values(pos_in);
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

// --------------------------------------------------------------------------------------- misc

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
