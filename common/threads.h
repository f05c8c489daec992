// Compute thread budget of a process (LibTorch intra-op and OpenBLAS).
#pragma once

#include <string>

namespace gr1 {

// Sets LibTorch's intra-op threads to `n` and OpenBLAS's own pool (which
// LibTorch's setting does not reach) to 1: BLAS calls run inside LibTorch's
// threads. Several processes share this machine's cores; oversubscribing
// them costs more than it gains.
void configure_compute_threads(int n);

// Keeps freed heap memory for reuse (glibc mallopt): with the defaults every
// buffer over 128 KiB-32 MiB (attention scores, activations) is a fresh mmap
// whose pages fault and are zeroed on every use. Measured on `gr1 pretrain`
// with configs/tests.yaml: about half of the step time (docs/benchmarks.md).
// Called by configure_compute_threads and at the start of `gr1`.
void keep_freed_memory();

// The compute kernels of this process, chosen by the environment variable
// GR1_KERNELS:
//   native (or unset)  what each library picks for this CPU: OpenBLAS's
//                      kernel, LibTorch's vector width, oneDNN's convolutions
//                      (chosen by the CPU's ISA, and not pinnable to another
//                      machine's by any variable tried);
//   portable           the same floats on every x86-64 CPU with AVX2 and FMA:
//                      OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE), LibTorch's
//                      AVX2 kernels (ATEN_CPU_CAPABILITY) and convolutions by
//                      LibTorch's own im2col + BLAS path instead of oneDNN.
// A pretrained base depends on these bits (docs/results.md, "Kernels"):
// `make results` runs in portable mode. OpenBLAS reads its variable when it
// loads, so where the two variables are not yet set this re-executes the
// program (same pid, same arguments) with them; children inherit them.
// Call first thing in main. Returns "" when the mode is in force, else an
// error naming what was wrong (an unknown mode, a CPU without AVX2 or FMA).
std::string select_kernels(char** argv);

// The kernels in force, for reports: {"mode", "openblas_core",
// "aten_cpu_capability", "onednn_convolutions"}, as a one-line JSON object.
std::string kernels_json();

}  // namespace gr1
