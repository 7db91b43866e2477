// Helpers shared by the CUDA kernel files. Like every kernel file: no torch headers. Scratch
// memory comes from the binding through CudaWorkspace (torch's caching allocator there).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace rastlit {

struct CudaWorkspace {
  // Returns device memory that stays valid until the binding's call returns (freed after).
  void* (*alloc)(void* ctx, size_t bytes);
  void* ctx;
  cudaStream_t stream;
  bool deterministic;  // torch.use_deterministic_algorithms: no float atomics in backward passes

  template <typename U>
  U* get(size_t count) const {
    return static_cast<U*>(alloc(ctx, count * sizeof(U) + 16));
  }
};

// Status codes beyond KernelStatus (common.h), for CUDA failures.
enum CudaStatus : int {
  kCudaError = 100,    // a CUDA API call or launch failed; cudaGetLastError() tells which
  kTooManyBinned = 101 // more (triangle, tile) pairs than the 32-bit bin index supports
};

constexpr int64_t kMaxBinEntries = 2147483647;  // (triangle, tile) pairs per call

inline int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

#define RL_CUDA_TRY(expr)                   \
  do {                                      \
    if ((expr) != cudaSuccess) return kCudaError; \
  } while (0)

}  // namespace rastlit
