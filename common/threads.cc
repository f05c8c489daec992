#include "common/threads.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

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

namespace {

constexpr const char* kPortableBlasCore = "Haswell";
constexpr const char* kPortableAtenCapability = "avx2";

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string kernel_mode() {
  const std::string m = env_or_empty("GR1_KERNELS");
  return m.empty() ? "native" : m;
}

}  // namespace

std::string select_kernels(char** argv) {
  const std::string mode = kernel_mode();
  if (mode == "native") return "";
  if (mode != "portable")
    return "GR1_KERNELS: unknown mode \"" + mode + "\" (known: native, portable)";
#if !defined(__x86_64__)
  return "GR1_KERNELS=portable is defined for x86-64 CPUs only: run with GR1_KERNELS=native";
#else
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    return "GR1_KERNELS=portable needs a CPU with AVX2 and FMA (x86-64-v3); this one lacks " +
           std::string(__builtin_cpu_supports("avx2") ? "FMA" : "AVX2") +
           ": run with GR1_KERNELS=native (its floats, and a base pretrained with them, then differ "
           "from portable runs)";
  if (env_or_empty("OPENBLAS_CORETYPE") != kPortableBlasCore ||
      env_or_empty("ATEN_CPU_CAPABILITY") != kPortableAtenCapability) {
    // OpenBLAS chose its kernel when it loaded: start again with both set.
    setenv("OPENBLAS_CORETYPE", kPortableBlasCore, 1);
    setenv("ATEN_CPU_CAPABILITY", kPortableAtenCapability, 1);
    execv("/proc/self/exe", argv);
    return std::string("GR1_KERNELS=portable: could not re-execute /proc/self/exe with "
                       "OPENBLAS_CORETYPE and ATEN_CPU_CAPABILITY set: ") +
           std::strerror(errno);
  }
  // oneDNN's convolutions follow the CPU (its ISA, perhaps its cache sizes:
  // no variable tried pinned them to another machine's, docs/results.md,
  // "Kernels"); LibTorch's own (im2col + BLAS gemm) depend only on the BLAS
  // kernel.
  at::globalContext().setUserEnabledMkldnn(false);
  return "";
#endif
}

std::string kernels_json() {
  using CoreFn = char* (*)();
  std::string core;
  if (auto fn = reinterpret_cast<CoreFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) core = fn();
  // LibTorch's vector width, as its build summary names it ("CPU capability
  // usage: AVX2").
  std::string cap;
  const std::string config = at::show_config();
  const std::string tag = "CPU capability usage: ";
  if (const size_t at = config.find(tag); at != std::string::npos)
    cap = config.substr(at + tag.size(), config.find('\n', at) - at - tag.size());
  nlohmann::json j = {{"mode", kernel_mode()},
                      {"openblas_core", core},
                      {"aten_cpu_capability", cap},
                      {"onednn_convolutions", at::globalContext().userEnabledMkldnn()}};
  return j.dump();
}

}  // namespace gr1
