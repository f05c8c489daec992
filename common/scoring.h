// Scoring a finished trajectory from its turn texts: the ONE code path used by
// the learner (Trainer::step) and by `gr1 score`. Torch-free.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/reward.h"
#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// Maps a box from the shown frame to original pixels (x * W / shown_w,
// y * H / shown_h) and clamps it to the image. No widening: this is the box
// the policy named, as scored by the box score.
Box shown_to_original(const Box& b, int shown_w, int shown_h, int W, int H);

// The last box any turn requested (read as the rollout reads it, extract_box).
std::optional<Box> last_box_in_turns(const std::vector<std::string>& turns);

// Format + accuracy (+ box score when a box and evidence exist) of one
// trajectory. `last_box_shown` is in the shown frame (shown_w x shown_h) of a
// W x H original. Fails only on an unknown dataset name (naming it).
Result<RewardBreakdown> score_turns(const std::vector<std::string>& turns,
                                    const std::optional<Box>& last_box_shown,
                                    std::string_view solution, std::string_view dataset,
                                    const std::vector<Box>& evidence, int W, int H, int shown_w,
                                    int shown_h);

}  // namespace gr1
