// Two-phase Ground-R1 rollouts (the G1 x G2 tree), for one question or many.
//
//   questions + images -> prefill once -> fork G1 roots per question
//   -> grounding turn -> fork each root G2 times
//   -> [crop of the root's box | full image] -> answer / refine turns ...
//   until an answer turn or the turn limit.
//
// All rows of all trees are decoded together in one batched DecodeSession
// (KV cache): rows of different lengths are right-padded per appended chunk
// and the padding is masked from every later query (DecodeSession keeps a
// per-row position counter, so a row's tokens get exactly the positions of
// its unpadded sequence). Finished rows take no further tokens. Records the
// exact tokens fed and sampled, each sampled token's log-probability, every
// box and every image block, so that the learner trains on exactly what was
// sampled.
//
// RolloutOptions::mode == "direct" (the no-grounding baseline): the direct
// instruction (common/prompt.h) and exactly one assistant turn per
// trajectory, no crops. Its G1 x G2 rows are independent samples of that one
// turn (a copied root would make the group degenerate for GRPO); `root` is
// still i / G2 so the group keeps the grounded shape the learner checks.
#pragma once

#include <torch/torch.h>

#include "common/options.h"
#include "common/policy.h"
#include "common/prompt.h"
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
  // Throws std::invalid_argument on an unknown rollout.mode (config
  // validation rejects it earlier).
  RolloutEngine(Policy policy, const ModelOptions& model, const RolloutOptions& rollout);

  // Samples the G1 x G2 trajectories of one question. `greedy` decodes with
  // argmax (evaluation); otherwise samples with rollout options and `gen`.
  TrajectoryGroup rollout(const Sample& sample, torch::Generator gen, bool greedy = false,
                          RolloutStats* stats = nullptr);

  // Same tree code with explicit G1/G2 (evaluation uses 1 x 1): a batch of
  // one question.
  TrajectoryGroup rollout_tree(const Sample& sample, int g1, int g2, torch::Generator gen,
                               bool greedy, RolloutStats* stats);

  // The trees of several questions decoded in one DecodeSession: group i
  // belongs to samples[i] (its `dataset` set; ids left 0). Every sample needs
  // its pixels in Sample::image. With `greedy`, each group equals what
  // rollout_tree gives for that sample alone (same tokens; log-probs equal to
  // float rounding, since padded batches round differently). Sampling draws
  // from `gen` for all rows at once, so sampled results depend on the batch.
  // Throws std::invalid_argument when g1 or g2 < 1, an image is empty, or a
  // question's first prompt leaves no room for a token in model.max_seq_len.
  std::vector<TrajectoryGroup> rollout_batch(const std::vector<Sample>& samples, int g1, int g2,
                                             torch::Generator gen, bool greedy,
                                             RolloutStats* stats);

  // Tokens of a question's first user turn under this engine's mode (the
  // first prompt a trajectory starts with).
  size_t first_prompt_tokens(const Sample& sample) const;

  PromptMode mode() const { return mode_; }

 private:
  Policy policy_;
  ModelOptions model_;
  RolloutOptions opt_;
  PromptMode mode_;
};

// The box-precision probe (gr1 eval --forced-box; the base's reading
// measure): for each sample WITH evidence, the prompt, then a GIVEN grounding
// turn (context, policy_mask 0) whose box is the first evidence box in the
// shown frame with its sides scaled by `scale` about its centre, clamped and
// snapped outward to the location grid, then the crop the rollout would cut
// for it, then ONE greedily decoded assistant turn. All samples are decoded
// together in one DecodeSession. turns = {given, decoded}; boxes_shown =
// {given box, the decoded turn's box if any}; finished = the decoded turn
// holds an answer. Throws std::invalid_argument when a prefix leaves no room
// for max_new_tokens in model.max_seq_len.
std::vector<Trajectory> forced_box_trajectories(Policy& policy, const ModelOptions& model,
                                                const RolloutOptions& rollout,
                                                const std::vector<Sample>& samples, double scale);

}  // namespace gr1
