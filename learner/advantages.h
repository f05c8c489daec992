// Group-relative advantages (torch-free).
#pragma once

#include <vector>

namespace gr1 {

// GRPO: A_i = (r_i - mean(r)) / (std(r) + eps) over the whole group, with the
// unbiased std (as the reference trainer). A group of one gets A = 0.
std::vector<double> grpo_advantages(const std::vector<double>& rewards, double eps);

}  // namespace gr1
