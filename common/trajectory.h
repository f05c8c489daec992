// Plain data of one rollout group, shared by actor, bus codec and learner.
// No LibTorch here: this header is included widely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gr1 {

// Axis-aligned box [x1, y1, x2, y2] in pixels of some frame (the frame is
// always named by the field that holds it).
struct Box {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float width() const { return x2 - x1; }
  float height() const { return y2 - y1; }
  float area() const { return (x2 > x1 && y2 > y1) ? (x2 - x1) * (y2 - y1) : 0.f; }
  bool operator==(const Box& o) const {
    return x1 == o.x1 && y1 == o.y1 && x2 == o.x2 && y2 == o.y2;
  }
};

// Policy tokens of one assistant turn: tokens[begin, end).
struct TurnSpan {
  int32_t begin = 0;
  int32_t end = 0;
};

// One image block in a trajectory's token sequence: a run of
// ModelConfig::image_tokens() consecutive Tokenizer::kImage tokens.
// images[0] is always the full original image (is_crop == false).
struct ImageRef {
  bool is_crop = false;
  Box box_orig;  // crop region in ORIGINAL-image pixels (after clamp/widen); unused if !is_crop
};

// One trajectory: the exact token sequence the actor fed and sampled, with
// positions 0..tokens.size()-1 and no padding. The learner trains on exactly
// these tokens.
struct Trajectory {
  int32_t root = 0;                  // index of its G1 grounding root
  std::vector<int32_t> tokens;       // prompt + system-inserted + policy tokens
  std::vector<float> logprobs;       // actor's log-prob per token; 0 where policy_mask == 0
  std::vector<uint8_t> policy_mask;  // 1 = sampled by the policy (gets gradient)
  std::vector<TurnSpan> turns;       // assistant turns in order
  std::vector<ImageRef> images;      // image blocks in order of appearance
  // Per assistant turn: the box parsed from that turn, in the SHOWN frame of
  // the original image (what the policy wrote), if the turn had one.
  std::vector<std::optional<Box>> boxes_shown;
  bool finished = false;  // ended with an answer turn (false: turn limit / length limit)
};

struct TrajectoryGroup {
  std::string actor_id;
  uint64_t group_id = 0;   // unique per actor
  uint64_t prompt_id = 0;  // index of the question in the learner-assigned stream
  uint64_t weights_version = 0;
  std::string dataset;
  double gen_seconds = 0;  // wall time the actor spent generating this group
  std::vector<Trajectory> trajectories;
};

}  // namespace gr1
