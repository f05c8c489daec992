// The GRPO loss on token log-probabilities (LibTorch).
//
// Per policy token t of trajectory i with advantage A_i:
//   ratio = exp(logp - logp_old)     (logp_old: the ACTOR's sampled log-prob,
//                                     which corrects both staleness and any
//                                     actor/learner mismatch)
//   pg    = -min(ratio * A, clip(ratio, 1-eps, 1+eps) * A)
//   d     = clamp(logp_ref - logp, -kl_clamp, kl_clamp)
//   kl    = exp(d) - d - 1            (k3 estimator)
//   loss_t = pg + beta * kl
// Reduction: mean over a trajectory's policy tokens, then mean over
// trajectories (the caller averages across micro-batches by weight).
#pragma once

#include <torch/torch.h>

namespace gr1 {

struct GrpoLossOptions {
  double clip_eps = 0.2;
  double beta_kl = 0.04;
  double kl_clamp = 10.0;
};

struct GrpoLoss {
  torch::Tensor loss;     // scalar: mean over trajectories of per-trajectory token means
  double pg = 0;          // policy-gradient part (same reduction)
  double kl = 0;          // mean token KL (same reduction)
  double clip_frac = 0;   // fraction of policy tokens whose ratio was clipped
  double ratio_max = 0;   // largest ratio seen
  int64_t tokens = 0;     // policy tokens
};

// logp, logp_old, logp_ref, mask: [B, T] (mask 1.0 on policy tokens);
// advantages: [B]. Rows with no policy token contribute zero.
GrpoLoss grpo_loss(const torch::Tensor& logp, const torch::Tensor& logp_old,
                   const torch::Tensor& logp_ref, const torch::Tensor& mask,
                   const torch::Tensor& advantages, const GrpoLossOptions& opt);

}  // namespace gr1
