// The JAX boundary on the CPU: XLA FFI handlers (bodies in ffi_handlers.h) over the same
// framework-free kernels as the torch ops, registered by rastlit/jax/_ops.py for platform "cpu".
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ffi_handlers.h"

namespace rastlit {
namespace jaxffi {
namespace {

// Buffers live in host memory: reads are direct, the kernels check triangle ids themselves.
struct CpuBackend {
  void zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }
  const int32_t* host_ints(ffi::AnyBuffer b, std::vector<int32_t>*) { return data<int32_t>(b); }
  const int32_t* device_ints(const int32_t* host, size_t) { return host; }
  bool kernel_checks_ids() const { return true; }
  template <typename T>
  bool rast_ids_ok(const T* rast, int64_t pixels, int64_t num_triangles) {
    for (int64_t i = 0; i < pixels; ++i) {
      const T id = rast[4 * i + 3];
      if (!(id >= T(0) && id <= T(num_triangles)) || id != T(int64_t(id))) return false;
    }
    return true;
  }
  int threads() const {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  }
  template <typename Cpu, typename Cuda>
  ffi::Error launch(const char* op, const Cpu& cpu, const Cuda&) {
    return from_status(cpu(), op);
  }
};

}  // namespace
}  // namespace jaxffi
}  // namespace rastlit

// rastlit_<op>: the handler of <op> for platform "cpu".
#define RL_CPU_HANDLER(op, BIND)                                                              \
  RL_FFI_EXPORT(rastlit_##op);                                                                \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(                                                              \
      rastlit_##op,                                                                           \
      [](auto... args) {                                                                      \
        rastlit::jaxffi::CpuBackend be;                                                       \
        return rastlit::jaxffi::op(be, std::move(args)...);                                   \
      },                                                                                      \
      BIND(::xla::ffi::Ffi::Bind()));

RL_FFI_FOR_EACH_HANDLER(RL_CPU_HANDLER)
