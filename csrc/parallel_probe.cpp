// Reports how many OpenMP threads a kernel-file parallel region really gets. A build without
// -fopenmp in both compile and link flags silently runs kernels on one thread; the test suite
// uses this probe to catch that.
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rastlit {

int parallel_probe_threads(int num_threads) {
#ifdef _OPENMP
  int seen = 0;
#pragma omp parallel num_threads(num_threads)
  {
#pragma omp single
    seen = omp_get_num_threads();
  }
  return seen;
#else
  (void)num_threads;
  return 1;
#endif
}

}  // namespace rastlit
