#include "common/threads.h"

#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>

namespace gr1 {

void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void configure_compute_threads(int n) {
  keep_freed_memory();
  torch::set_num_threads(n);
  // OpenBLAS (libopenblas0-pthread) is loaded as libblas.so.3; its pool is
  // separate from LibTorch's. It is kept at ONE thread: LibTorch already
  // runs n threads, and OpenBLAS threads inside them oversubscribe the
  // cores. Measured on 2 cores (docs/benchmarks.md): LibTorch 2 + OpenBLAS
  // 2 threads ran the vision stage at 140 images/s and the decoder stage at
  // 2,400 tokens/s; LibTorch 2 + OpenBLAS 1 at 244 and 5,950; one thread of
  // each at 168 and 5,500. Found at run time so other BLAS still work.
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(1);
}

}  // namespace gr1
