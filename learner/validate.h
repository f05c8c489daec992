// Semantic checks of a received trajectory group, after the wire-level
// verification of the codec and before anything is trained on it. A group
// that fails is rejected (counted, logged, its prompt granted again); it never
// reaches the model, so a bad actor cannot crash the learner.
#pragma once

#include "common/options.h"
#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// `vocab_size`: token ids must lie in [0, vocab_size).
Status validate_group(const TrajectoryGroup& g, const Config& cfg, int vocab_size);

}  // namespace gr1
