#include "common/threads.h"

#include <dlfcn.h>
#include <torch/torch.h>

namespace gr1 {

void configure_compute_threads(int n) {
  torch::set_num_threads(n);
  // OpenBLAS (libopenblas0-pthread) is loaded as libblas.so.3; its pool size
  // is separate from LibTorch's. Found at run time so other BLAS still work.
  using SetFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

}  // namespace gr1
