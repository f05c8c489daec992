#include "learner/advantages.h"

#include <cmath>

namespace gr1 {

std::vector<double> grpo_advantages(const std::vector<double>& r, double eps) {
  const size_t n = r.size();
  std::vector<double> a(n, 0.0);
  if (n < 2) return a;
  double mean = 0;
  for (double x : r) mean += x;
  mean /= static_cast<double>(n);
  double var = 0;
  for (double x : r) var += (x - mean) * (x - mean);
  const double std = std::sqrt(var / static_cast<double>(n - 1));
  for (size_t i = 0; i < n; ++i) a[i] = (r[i] - mean) / (std + eps);
  return a;
}

}  // namespace gr1
