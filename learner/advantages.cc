#include "learner/advantages.h"

#include <cmath>

namespace gr1 {

namespace {
double mean_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  return v.empty() ? 0.0 : m / static_cast<double>(v.size());
}
double unbiased_std(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double var = 0;
  for (double x : v) var += (x - m) * (x - m);
  return std::sqrt(var / static_cast<double>(v.size() - 1));
}
}  // namespace

std::vector<double> grpo_advantages(const std::vector<double>& r, double eps) {
  std::vector<double> a(r.size(), 0.0);
  if (r.size() < 2) return a;
  const double mean = mean_of(r), std = unbiased_std(r);
  for (size_t i = 0; i < r.size(); ++i) a[i] = (r[i] - mean) / (std + eps);
  return a;
}

std::vector<double> srpo_log_edges(int bins, double min_scale) {
  std::vector<double> e;
  const double lo = std::log(min_scale);
  for (int k = 1; k < bins; ++k) e.push_back(std::exp(lo * (1.0 - double(k) / bins)));
  return e;
}

std::vector<double> srpo_advantages(const std::vector<double>& r, const std::vector<double>& scales,
                                    const std::vector<double>& edges, double lambda, double eps) {
  const size_t n = r.size();
  std::vector<double> a(n, 0.0);
  if (n < 2 || scales.size() != n) return a;
  std::vector<size_t> bin(n);
  const size_t nb = edges.size() + 1;
  std::vector<std::vector<double>> members(nb);
  for (size_t i = 0; i < n; ++i) {
    size_t b = 0;
    while (b < edges.size() && scales[i] >= edges[b]) ++b;
    bin[i] = b;
    members[b].push_back(r[i]);
  }
  const double mg = mean_of(r), sg = unbiased_std(r);
  std::vector<double> bin_means;
  for (const auto& m : members)
    if (!m.empty()) bin_means.push_back(mean_of(m));
  const double sb = unbiased_std(bin_means);
  std::vector<double> mean_b(nb), std_b(nb);
  for (size_t b = 0; b < nb; ++b) mean_b[b] = mean_of(members[b]), std_b[b] = unbiased_std(members[b]);
  for (size_t i = 0; i < n; ++i) {
    const size_t b = bin[i];
    const double mb = mean_b[b];
    const double intra = members[b].size() >= 2 ? (r[i] - mb) / (std_b[b] + eps) : (r[i] - mg) / (sg + eps);
    const double inter = bin_means.size() >= 2 ? (mb - mg) / (sb + eps) : 0.0;
    a[i] = intra + lambda * inter;
  }
  return a;
}

}  // namespace gr1
