#include "learner/validate.h"

#include <cmath>

#include "common/tokenizer.h"

namespace gr1 {

Status validate_group(const TrajectoryGroup& g, const Config& cfg, int vocab_size) {
  const size_t want = static_cast<size_t>(cfg.rollout.g1) * cfg.rollout.g2;
  if (g.trajectories.size() != want)
    return Status::Error("group has " + std::to_string(g.trajectories.size()) +
                         " trajectories, expected g1*g2 = " + std::to_string(want));
  const int n_img = cfg.model.image_tokens();
  const float W = static_cast<float>(cfg.task.image_width), H = static_cast<float>(cfg.task.image_height);
  for (size_t i = 0; i < g.trajectories.size(); ++i) {
    const Trajectory& t = g.trajectories[i];
    auto bad = [&](const std::string& what) {
      return Status::Error("trajectory " + std::to_string(i) + ": " + what);
    };
    const size_t n = t.tokens.size();
    if (n < 2) return bad("fewer than 2 tokens");
    if (n > static_cast<size_t>(cfg.model.max_seq_len))
      return bad(std::to_string(n) + " tokens exceed model.max_seq_len " +
                 std::to_string(cfg.model.max_seq_len));
    if (t.logprobs.size() != n || t.policy_mask.size() != n) return bad("per-token vectors differ in length");
    if (t.root < 0 || t.root >= cfg.rollout.g1) return bad("root " + std::to_string(t.root) + " out of range");
    int images = 0;
    for (size_t j = 0; j < n; ++j) {
      if (t.tokens[j] < 0 || t.tokens[j] >= vocab_size)
        return bad("token id " + std::to_string(t.tokens[j]) + " at " + std::to_string(j) + " out of vocabulary");
      images += t.tokens[j] == Tokenizer::kImage;
      if (t.policy_mask[j] > 1) return bad("policy_mask value other than 0/1");
      if (t.policy_mask[j]) {
        if (!std::isfinite(t.logprobs[j]) || t.logprobs[j] > 1e-4f)
          return bad("log-prob " + std::to_string(t.logprobs[j]) + " at " + std::to_string(j) + " is not a log-probability");
        if (t.tokens[j] == Tokenizer::kImage) return bad("an image slot is marked as a policy token");
      }
    }
    if (t.policy_mask[0]) return bad("the first token cannot be a policy token");
    if (images != static_cast<int>(t.images.size()) * n_img)
      return bad(std::to_string(images) + " image slots for " + std::to_string(t.images.size()) +
                 " images of " + std::to_string(n_img) + " tokens");
    if (t.images.empty() || t.images[0].is_crop) return bad("the first image must be the full image");
    for (const auto& im : t.images)
      if (im.is_crop) {
        const Box& b = im.box_orig;
        if (!(b.x1 >= 0 && b.y1 >= 0 && b.x2 <= W && b.y2 <= H && b.x2 > b.x1 && b.y2 > b.y1))
          return bad("crop box outside the image");
      }
    if (t.turns.empty()) return bad("no assistant turn");
    if (t.boxes_shown.size() != t.turns.size()) return bad("boxes_shown count differs from turn count");
    std::vector<uint8_t> in_span(n, 0);
    int32_t prev_end = 0;
    for (const auto& s : t.turns) {
      if (s.begin < prev_end || s.end < s.begin || s.end > static_cast<int32_t>(n))
        return bad("turn spans out of order or out of range");
      for (int32_t j = s.begin; j < s.end; ++j) in_span[j] = 1;
      prev_end = s.end;
    }
    if (in_span != t.policy_mask) return bad("policy_mask differs from the turn spans");
  }
  return Status::Ok();
}

}  // namespace gr1
