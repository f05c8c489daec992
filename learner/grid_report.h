// How well a location grid can write the boxes the project scores: the best
// box score (and IoU >= 0.5 share) of the tightest outward-snapped grid box
// of each held-out locate target (the shape's box) and each benchmark
// question's evidence box, for several cell counts. A box vocabulary
// coarser than the evidence caps box_score and acc_at_05 whatever the
// policy learns (docs/results.md, "The location grid").
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace gr1 {

// For each entry of `cells` (each in [1, 4096]): over the first
// `locate_items` held-out locate items (pretraining's stream 2, as gr1
// report) and the first `questions` of the configured benchmark's test
// split: {"cells", "locate_ceiling", "evidence_ceiling",
// "evidence_ceiling_by_third" (small, medium, large evidence area),
// "evidence_iou50_share"}. Also "location_cells" (the tokenizer's grid).
// Errors name a bad argument or a task that cannot be built.
Result<nlohmann::json> grid_report(const Config& cfg, const std::vector<int>& cells,
                                   int locate_items, int questions);

}  // namespace gr1
