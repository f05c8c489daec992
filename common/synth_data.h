// `gr1 data synth`: writes a split of the synthetic benchmark to disk in the
// reference's format, so that every tool (eval, data check, other trainers)
// reads it like real data.
#pragma once

#include <cstdint>
#include <string>

#include "common/options.h"
#include "common/status.h"

namespace gr1 {

// Writes questions 0..n-1 of `split` ("train" | "test") of the benchmark
// described by `task` into `dir`: dir/data.jsonl (one reference record per
// line, image paths relative to dir: "images/<split>_<id>.png") and the PNGs.
// Existing files of the same names are overwritten. Errors name the option
// or the path that failed.
Status write_synthetic_split(const TaskOptions& task, const std::string& split, int64_t n,
                             const std::string& dir);

}  // namespace gr1
