// Compute thread budget of a process (LibTorch intra-op and OpenBLAS).
#pragma once

namespace gr1 {

// Sets LibTorch's intra-op threads and OpenBLAS's own pool (which LibTorch's
// setting does not reach) to `n`. Several processes share this machine's
// cores; oversubscribing them costs more than it gains.
void configure_compute_threads(int n);

}  // namespace gr1
