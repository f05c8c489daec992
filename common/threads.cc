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
  // OpenBLAS (libopenblas0-pthread) is loaded as libblas.so.3; its pool size
  // is separate from LibTorch's. Found at run time so other BLAS still work.
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

}  // namespace gr1
