#include "learner/grpo.h"

namespace gr1 {

GrpoLoss grpo_loss(const torch::Tensor& logp, const torch::Tensor& logp_old,
                   const torch::Tensor& logp_ref, const torch::Tensor& mask,
                   const torch::Tensor& advantages, const GrpoLossOptions& opt) {
  const auto adv = advantages.unsqueeze(1);  // [B,1]
  const auto ratio = torch::exp(logp - logp_old);
  const auto clipped = torch::clamp(ratio, 1.0 - opt.clip_eps, 1.0 + opt.clip_eps);
  const auto pg = -torch::min(ratio * adv, clipped * adv);
  const auto d = torch::clamp(logp_ref - logp, -opt.kl_clamp, opt.kl_clamp);
  const auto kl = torch::exp(d) - d - 1.0;
  const auto per_token = pg + opt.beta_kl * kl;

  const auto counts = mask.sum(1);                 // [B]
  const auto denom = counts.clamp_min(1.0);
  const auto per_traj = (per_token * mask).sum(1) / denom;
  const auto B = static_cast<double>(logp.size(0));

  GrpoLoss out;
  out.loss = per_traj.sum() / B;
  torch::NoGradGuard ng;
  out.pg = ((pg * mask).sum(1) / denom).sum().item<double>() / B;
  out.kl = ((kl * mask).sum(1) / denom).sum().item<double>() / B;
  const double ntok = mask.sum().item<double>();
  out.tokens = static_cast<int64_t>(ntok);
  if (ntok > 0) {
    const auto was_clipped = ((ratio - clipped).abs() > 1e-6).to(torch::kFloat32) * mask;
    out.clip_frac = was_clipped.sum().item<double>() / ntok;
    out.ratio_max = (ratio * mask).max().item<double>();
  }
  return out;
}

}  // namespace gr1
