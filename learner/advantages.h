// Group-relative advantages (torch-free).
#pragma once

#include <vector>

namespace gr1 {

// GRPO: A_i = (r_i - mean(r)) / (std(r) + eps) over the whole group, with the
// unbiased std (as the reference trainer). A group of one gets A = 0.
std::vector<double> grpo_advantages(const std::vector<double>& rewards, double eps);

// SRPO (scale-relative; the paper's later version, exact formulas not public,
// so this is the clearly labelled version of docs/ground-r1-algorithm.md):
// each trajectory has a scale s = area(last box) / area(image) (no box: 1),
// binned by `edges` (ascending; bin k holds edges[k-1] <= s < edges[k], the
// last bin everything >= edges.back()).
//   intra_i = (r_i - mean_bin) / (std_bin + eps)   if the bin has >= 2 members,
//             (r_i - mean_group) / (std_group + eps) otherwise;
//   inter_i = (mean_bin - mean_group) / (std over non-empty bins of their means + eps)
//             (0 when fewer than 2 bins are occupied);
//   A_i = intra_i + lambda * inter_i.   Stds are unbiased, as in GRPO.
std::vector<double> srpo_advantages(const std::vector<double>& rewards,
                                    const std::vector<double>& scales,
                                    const std::vector<double>& edges, double lambda, double eps);

// The reward the advantages are computed from: accuracy + format_weight *
// format. format_weight 1 is the paper's r = accuracy + format (bit for bit:
// the same two terms summed); 0 ranks a group by its answers alone (an
// ablation: learner.format_weight).
inline double advantage_reward(double accuracy, double format, double format_weight) {
  return accuracy + format_weight * format;
}

// `bins` log-spaced edges between min_scale and 1 (exclusive of both ends):
// bins = 4, min_scale = 1e-3 -> {~5.6e-3, ~3.2e-2, ~1.8e-1}.
std::vector<double> srpo_log_edges(int bins, double min_scale);

}  // namespace gr1
