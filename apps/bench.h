// `gr1 bench`: single-process micro-benchmarks of the parts of one step.
#pragma once
#include "common/options.h"
namespace gr1 {
// Prints one JSON object: rollout (groups/s, trajectories/s, policy tokens/s),
// train step (s, tokens/s), weights (bytes, pack ms, encode ms, decode+verify
// ms, unpack ms). `iters` repetitions of each, after one warm-up.
int run_bench(const Config& cfg, int iters);
}  // namespace gr1
