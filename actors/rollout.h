// Two-phase Ground-R1 rollouts for one question (the G1 x G2 tree).
//
//   question + image -> prefill once -> fork G1 roots -> grounding turn
//   -> fork each root G2 times -> [crop of the root's box | full image]
//   -> answer / refine turns ... until an answer turn or the turn limit.
//
// All rows of the tree are decoded together in one batched DecodeSession
// (KV cache); finished rows are masked. Records the exact tokens fed and
// sampled, each sampled token's log-probability, every box and every image
// block, so that the learner trains on exactly what was sampled.
#pragma once

#include <torch/torch.h>

#include "common/options.h"
#include "common/policy.h"
#include "common/task.h"
#include "common/trajectory.h"

namespace gr1 {

struct RolloutStats {
  int64_t decode_steps = 0;     // batched sampling steps
  int64_t policy_tokens = 0;    // tokens sampled (sum over trajectories, counting copies once)
  int64_t images_encoded = 0;   // vision encoder inputs
};

class RolloutEngine {
 public:
  // `policy` is shared, not copied: load new weights into it between groups.
  RolloutEngine(Policy policy, const ModelOptions& model, const RolloutOptions& rollout);

  // Samples the G1 x G2 trajectories of one question. `greedy` decodes with
  // argmax (evaluation); otherwise samples with rollout options and `gen`.
  TrajectoryGroup rollout(const Sample& sample, torch::Generator gen, bool greedy = false,
                          RolloutStats* stats = nullptr);

  // Same tree code with explicit G1/G2 (evaluation uses 1 x 1).
  TrajectoryGroup rollout_tree(const Sample& sample, int g1, int g2, torch::Generator gen,
                               bool greedy, RolloutStats* stats);

 private:
  Policy policy_;
  ModelOptions model_;
  RolloutOptions opt_;
};

}  // namespace gr1
