// The learner process (`gr1 learner`).
#pragma once

#include "common/options.h"

namespace gr1 {

// Runs the learner until cfg.learner.steps optimizer steps are done or
// SIGINT/SIGTERM; returns the process exit code. Writes into cfg.run.run_dir:
// config.yaml (effective config), metrics.jsonl (one line per step),
// policy.safetensors (final weights).
int run_learner(const Config& cfg);

}  // namespace gr1
