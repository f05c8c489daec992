// Compute thread budget of a process (LibTorch intra-op and OpenBLAS).
#pragma once

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

}  // namespace gr1
