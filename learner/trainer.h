// The learner's training step: rewards -> group advantages -> GRPO loss on
// the exact sampled tokens -> AdamW. Owns the policy, the frozen reference
// policy and the optimizer. Called from the learner's main thread only.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <vector>

#include "common/options.h"
#include "common/policy.h"
#include "common/reward.h"
#include "common/task.h"
#include "common/trajectory.h"

namespace gr1 {

// Rewards of one trajectory, computed by the learner from decoded turns.
struct TrajectoryScore {
  double format = 0, accuracy = 0, reward = 0;
  std::optional<double> box_score;  // last box vs first evidence box; no box: none
  int policy_tokens = 0;
  int turns = 0;
  bool has_box = false;
  double scale = 1.0;  // area of the last box (original pixels) / image area; 1 without a box (SRPO)
};

// Scores every trajectory of a group against its sample (the code `gr1 score`
// will share). Fails only on an unknown dataset name.
Result<std::vector<TrajectoryScore>> score_group(const TrajectoryGroup& g, const Sample& sample,
                                                 int shown_size);

struct StepStats {
  int groups = 0, trajectories = 0;
  double loss = 0, pg = 0, kl = 0, clip_frac = 0, ratio_max = 0, grad_norm = 0, lr = 0;
  double reward_mean = 0, format_mean = 0, accuracy_mean = 0;
  std::optional<double> box_score_mean;
  double box_rate = 0;             // fraction of trajectories that emitted a box
  double policy_tokens_mean = 0;   // policy tokens per trajectory
  double turns_mean = 0;
  int64_t policy_tokens = 0, tokens = 0;
  int64_t forward_tokens = 0;      // tokens the policy forward computed (packed: distinct prefixes once)
  double logp_mismatch_max = 0;    // max |learner - actor| log-prob on groups of the current version
  double train_seconds = 0;
};

class Trainer {
 public:
  explicit Trainer(const Config& cfg);
  ~Trainer();

  // One optimizer step on these groups; increments version(). Each group's
  // prompt_id names its sample in the task (regenerated here).
  Result<StepStats> step(const std::vector<TrajectoryGroup>& groups);

  // Recomputes per-token log-probs of `t` at the current weights (no grad);
  // result has t.tokens.size() entries, 0 where policy_mask == 0.
  std::vector<float> recompute_logprobs(const Trajectory& t, const Sample& sample);

  // The same for every trajectory of a group through ONE packed
  // prefix-tree forward (learner/packing.h): what step() computes when
  // learner.packed_forward is on. [i][j] for trajectory i, token j.
  Result<std::vector<std::vector<float>>> recompute_logprobs_packed(
      const std::vector<const Trajectory*>& group, const Sample& sample);

  Policy policy() const { return policy_; }
  uint64_t version() const { return version_; }
  const SyntheticTask& task() const { return task_; }

 private:
  struct Batch;
  Batch make_batch(const std::vector<const Trajectory*>& trajs,
                   const std::vector<const Sample*>& samples) const;
  torch::Tensor batch_logprobs(Policy& p, const Batch& b) const;
  struct PackedBatch;
  // Groups (each a list of trajectories with its sample) -> one packed row
  // per group; error on malformed image slots.
  Result<PackedBatch> make_packed_batch(
      const std::vector<std::vector<const Trajectory*>>& groups,
      const std::vector<const Sample*>& samples) const;
  // [trajectories of the batch, L-1] log-prob of token j+1 given its prefix.
  torch::Tensor packed_logprobs(Policy& p, const PackedBatch& b) const;

  Config cfg_;
  SyntheticTask task_;
  Policy policy_;
  Policy reference_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> trainable_;
  uint64_t version_ = 0;
};

}  // namespace gr1
