#include "common/scoring.h"

#include <algorithm>

#include "common/turns.h"

namespace gr1 {

Box shown_to_original(const Box& b, int shown_w, int shown_h, int W, int H) {
  const float sx = static_cast<float>(W) / shown_w, sy = static_cast<float>(H) / shown_h;
  Box o{b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy};
  o.x1 = std::clamp(o.x1, 0.f, float(W));
  o.x2 = std::clamp(o.x2, 0.f, float(W));
  o.y1 = std::clamp(o.y1, 0.f, float(H));
  o.y2 = std::clamp(o.y2, 0.f, float(H));
  return o;
}

std::optional<Box> last_box_in_turns(const std::vector<std::string>& turns) {
  for (auto it = turns.rbegin(); it != turns.rend(); ++it)
    if (auto b = extract_box(*it)) return b;
  return std::nullopt;
}

Result<RewardBreakdown> score_turns(const std::vector<std::string>& turns,
                                    const std::optional<Box>& last_box_shown,
                                    std::string_view solution, std::string_view dataset,
                                    const std::vector<Box>& evidence, int W, int H, int shown_w,
                                    int shown_h) {
  auto rule = accuracy_rule_for(dataset);
  if (!rule.ok()) return rule.status();
  std::optional<Box> last_orig;
  if (last_box_shown && W > 0 && H > 0 && shown_w > 0 && shown_h > 0)
    last_orig = shown_to_original(*last_box_shown, shown_w, shown_h, W, H);
  return score_trajectory(turns, solution, *rule, last_orig, evidence);
}

}  // namespace gr1
