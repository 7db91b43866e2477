// The torch boundary's shared helpers: input checks with messages that name the argument, the
// memory of value checks on CUDA, the CPU output buffer pool, and the CPU/CUDA launch. Included by
// every op's binding (csrc/<op>/<op>_torch.cpp); with ops.cpp and ops_cuda.cpp the only code that
// sees torch headers.
#pragma once

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "messages.h"
#include "rasterize/rasterize.h"

#ifdef RASTLIT_WITH_CUDA
#include <functional>

#include "cuda_common.cuh"
#endif

namespace rastlit {

#ifdef RASTLIT_WITH_CUDA
// ops_cuda.cpp: runs `launch` on the device's current stream with a workspace from torch's
// caching allocator, and turns a non-zero status into an exception.
void run_cuda(const at::Device& device, const char* op, const std::function<int(const CudaWorkspace&)>& launch);
#endif

inline std::string shape_str(const at::Tensor& t) {
  std::ostringstream ss;
  ss << t.sizes();
  return ss.str();
}

// A CPU-only build never sees a CUDA tensor here (the dispatcher has no CUDA kernel to call).
inline void check_device_supported(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() || t.device().is_cuda(), name, " must be a CPU or CUDA tensor, got ", t.device());
}

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 (or float64 on the CPU), got ", t.scalar_type());
}

inline void check_int32(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kInt, name, " must be int32, got ", t.scalar_type(),
                   " (convert with .int())");
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* name, const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), name, " must be on the same device as ", ref_name, " (",
              ref.device(), "), got ", t.device());
}

inline void check_same_dtype(const at::Tensor& t, const at::Tensor& ref, const char* name, const char* ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ", ref_name,
                   " (", ref.scalar_type(), "), got ", t.scalar_type());
}

inline void check_image(const at::Tensor& t, const char* name, int64_t b, int64_t h, int64_t w, int64_t c) {
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

inline CheckedTensors& checked_tensors() {
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

inline HostBufferPool& host_pool() {
  static HostBufferPool* pool = new HostBufferPool();  // never destroyed: tensors may outlive statics
  return *pool;
}

// tri: [T,3] int32 with every index in [0, num_vertices).
inline void check_tri(const at::Tensor& tri, int64_t num_vertices) {
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

inline void check_resolution(int64_t height, int64_t width) {
  TORCH_CHECK_VALUE(height >= 1 && width >= 1 && height <= kMaxResolution && width <= kMaxResolution,
                    "resolution must be (height, width) with each side in [1, ", kMaxResolution,
                    "], got (", height, ", ", width, ")");
}

struct RasterizeShape {
  int64_t num_views, num_vertices;
};

inline RasterizeShape check_rasterize_inputs(const at::Tensor& pos, const at::Tensor& tri, int64_t height,
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
inline void check_rast_ids(const at::Tensor& rast, int64_t num_triangles, const char* op) {
  if (rast.numel() == 0) return;
  int64_t bound = 0, unused = 0;
  if (checked_tensors().find(rast, kCheckedRastIds, &bound, &unused) && bound <= num_triangles) return;
  const at::Tensor ids = rast.select(-1, 3);
  const bool bad = (ids.lt(0) | ids.gt(double(num_triangles)) | ids.isnan() | ids.ne(ids.floor())).any().item<bool>();
  TORCH_CHECK_INDEX(!bad, msg_bad_rast_ids(op));
  checked_tensors().add(rast, kCheckedRastIds, num_triangles, 0);
}

inline void raise_status(int status, const char* op) {
  TORCH_CHECK_INDEX(status != kBadTriangleId, msg_bad_rast_ids(op));
  TORCH_CHECK(status == kOk, op, ": kernel failed with status ", status);
}

// Runs the CPU kernel or, for CUDA tensors, the CUDA one, and raises on a bad status. The CUDA
// launcher is a generic lambda so that CPU-only builds never instantiate it.
template <typename CpuLaunch, typename CudaLaunch>
inline void launch(const at::Tensor& t, const char* op, const CpuLaunch& cpu, const CudaLaunch& cuda) {
  if (!t.is_cuda()) {
    raise_status(cpu(), op);
    return;
  }
#ifdef RASTLIT_WITH_CUDA
  run_cuda(t.device(), op, cuda);
#else
  (void)cuda;  // unreachable: a CPU-only build registers no CUDA kernels
#endif
}

// The geometry fields that RasterizeFwdParams and RasterizeBwdParams share.
template <typename P, typename scalar_t = std::remove_const_t<std::remove_pointer_t<decltype(P::pos)>>>
inline void set_geometry(P& p, const RasterizeShape& s, const at::Tensor& pos, const at::Tensor& tri, const at::Tensor& ranges,
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

}  // namespace rastlit
