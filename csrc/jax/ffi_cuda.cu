// The JAX boundary on CUDA: the same handler bodies (ffi_handlers.h) and operands as the CPU
// registration, over the existing .cu kernels, unchanged. The kernels run on XLA's stream with
// scratch memory from XLA's allocator. Checks that need values read them back (a stream sync):
// tri and the topology for their index ranges, ranges (the kernels read it on the host, as the
// torch op's CPU tensor), and the ids of a caller's rast (one reduction kernel), which the CUDA
// kernels would otherwise skip as background. Backward handlers trust their forward's outputs.
#include <cuda_runtime.h>

#include <cstdio>

#include "../cuda_common.cuh"
#include "ffi_handlers.h"

namespace rastlit {
namespace jaxffi {
namespace {

template <typename T>
__global__ void count_bad_ids(const T* rast, int64_t pixels, int64_t num_triangles, int* bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels; i += int64_t(gridDim.x) * blockDim.x) {
    const T id = rast[4 * i + 3];
    if (!(id >= T(0) && id <= T(num_triangles)) || id != T(int64_t(id))) atomicAdd(bad, 1);
  }
}

void* xla_scratch_alloc(void* ctx, size_t bytes) {
  auto r = static_cast<ffi::ScratchAllocator*>(ctx)->Allocate(bytes, 256);
  return r.has_value() ? *r : nullptr;
}

struct CudaBackend {
  cudaStream_t stream;
  ffi::ScratchAllocator* scratch;
  CudaBackend(cudaStream_t s, ffi::ScratchAllocator* a) : stream(s), scratch(a) {}

  void zero(void* p, size_t bytes) { cudaMemsetAsync(p, 0, bytes, stream); }
  const int32_t* host_ints(ffi::AnyBuffer b, std::vector<int32_t>* store) {
    store->resize(b.element_count());
    if (store->empty()) return store->data();
    if (cudaMemcpyAsync(store->data(), b.untyped_data(), b.size_bytes(), cudaMemcpyDeviceToHost, stream) != cudaSuccess ||
        cudaStreamSynchronize(stream) != cudaSuccess)
      return nullptr;
    return store->data();
  }
  const int32_t* device_ints(const int32_t* host, size_t n) {
    void* d = xla_scratch_alloc(scratch, n * sizeof(int32_t));
    if (!d || cudaMemcpyAsync(d, host, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream) != cudaSuccess) return nullptr;
    return static_cast<const int32_t*>(d);
  }
  bool kernel_checks_ids() const { return false; }
  template <typename T>
  bool rast_ids_ok(const T* rast, int64_t pixels, int64_t num_triangles) {
    if (pixels == 0) return true;
    int* bad = static_cast<int*>(xla_scratch_alloc(scratch, sizeof(int)));
    if (!bad) return false;
    cudaMemsetAsync(bad, 0, sizeof(int), stream);
    const int blocks = int(div_up(pixels, 256) < 4096 ? div_up(pixels, 256) : 4096);
    count_bad_ids<T><<<blocks, 256, 0, stream>>>(rast, pixels, num_triangles, bad);
    int host = 1;
    cudaMemcpyAsync(&host, bad, sizeof(int), cudaMemcpyDeviceToHost, stream);
    return cudaStreamSynchronize(stream) == cudaSuccess && host == 0;
  }
  int threads() const { return 1; }
  template <typename Cpu, typename Cuda>
  ffi::Error launch(const char* op, const Cpu&, const Cuda& cuda) {
    const CudaWorkspace ws{&xla_scratch_alloc, scratch, stream, false};
    const int status = cuda(ws);
    if (status == kTooManyBinned)
      return invalid(std::string(op) + ": the scene needs more than 2147483647 (triangle, tile) bin entries or "
                     "(view, triangle) pairs; split the batch");
    if (status >= kCudaError)
      return ffi::Error::Internal(std::string(op) + ": CUDA kernel failed (status " + std::to_string(status) +
                                  "): " + cudaGetErrorString(cudaGetLastError()));
    return from_status(status, op);
  }
};

}  // namespace
}  // namespace jaxffi
}  // namespace rastlit

// rastlit_<op>_cuda: the handler of <op> for platform "CUDA" (same target name and operands).
#define RL_CUDA_HANDLER(op, BIND)                                                                          \
  RL_FFI_EXPORT(rastlit_##op##_cuda);                                                                      \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(                                                                           \
      rastlit_##op##_cuda,                                                                                 \
      [](cudaStream_t stream, ::xla::ffi::ScratchAllocator scratch, auto... args) {                        \
        rastlit::jaxffi::CudaBackend be(stream, &scratch);                                                 \
        return rastlit::jaxffi::op(be, std::move(args)...);                                                \
      },                                                                                                   \
      BIND(::xla::ffi::Ffi::Bind()                                                                         \
               .Ctx<::xla::ffi::PlatformStream<cudaStream_t>>()                                            \
               .Ctx<::xla::ffi::ScratchAllocator>()));

RL_FFI_FOR_EACH_HANDLER(RL_CUDA_HANDLER)
