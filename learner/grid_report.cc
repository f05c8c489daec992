#include "learner/grid_report.h"

#include <algorithm>
#include <string>
#include <utility>

#include "actors/eval.h"
#include "common/reward.h"
#include "common/scoring.h"
#include "common/task.h"
#include "common/tokenizer.h"
#include "learner/pretrain.h"

namespace gr1 {
namespace {

// `b` (original pixels of a W x H image) -> the shown frame -> the tightest
// grid box covering it -> original pixels: the best box a policy writing
// `cells` location values per axis can give for it.
Box best_grid_box(const Box& b, int W, int H, int S, int cells) {
  const Box shown{b.x1 * S / W, b.y1 * S / H, b.x2 * S / W, b.y2 * S / H};
  return shown_to_original(snap_box_to_grid(shown, S, cells), S, S, W, H);
}

}  // namespace

Result<nlohmann::json> grid_report(const Config& cfg, const std::vector<int>& cells,
                                   int locate_items, int questions) {
  if (cells.empty()) return Status::Error("grid report: no cell count given");
  for (int c : cells)
    if (c < 1 || c > 4096)
      return Status::Error("grid report: cell count " + std::to_string(c) + " not in [1, 4096]");
  if (locate_items < 0 || questions < 0)
    return Status::Error("grid report: item counts must be >= 0");
  TaskOptions opts = cfg.task;
  opts.split = "test";
  auto task = SyntheticTask::create(opts);
  if (!task.ok()) return Status::Error("grid report: task: " + task.error());
  const int S = cfg.model.image_size;

  // The targets once: locate shapes and benchmark evidence (original pixels).
  struct Target {
    Box box;
    int W, H;
  };
  std::vector<Target> shapes, evidence;
  for (int i = 0; i < locate_items; ++i) {
    auto ex = make_pretrain_example(cfg, "locate", static_cast<uint64_t>(i), 2);
    if (!ex.ok()) return Status::Error("grid report: locate item " + std::to_string(i) + ": " +
                                       ex.error());
    shapes.push_back({ex->sample.bboxs.at(0), ex->sample.image.cols, ex->sample.image.rows});
  }
  for (int i = 0; i < questions; ++i) {
    const Sample s = task->get(static_cast<uint64_t>(i));
    if (s.bboxs.empty()) continue;
    evidence.push_back({s.bboxs.front(), s.image.cols, s.image.rows});
  }
  // Evidence thirds by area, as gr1 eval's per_evidence_third.
  std::vector<size_t> order(evidence.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return evidence[a].box.area() < evidence[b].box.area();
  });

  nlohmann::json out;
  out["location_cells"] = Tokenizer::kLocationCells;
  out["image_size"] = S;
  out["locate_items"] = shapes.size();
  out["questions"] = evidence.size();
  out["grids"] = nlohmann::json::array();
  for (int c : cells) {
    double locate = 0, all = 0, third[3] = {0, 0, 0};
    size_t third_n[3] = {0, 0, 0}, iou50 = 0;
    for (const Target& t : shapes) locate += box_score(best_grid_box(t.box, t.W, t.H, S, c), t.box);
    for (size_t r = 0; r < order.size(); ++r) {
      const Target& t = evidence[order[r]];
      const Box g = best_grid_box(t.box, t.W, t.H, S, c);
      const double v = box_score(g, t.box);
      const size_t k = r * 3 / order.size();
      all += v;
      third[k] += v;
      ++third_n[k];
      iou50 += box_iou(g, t.box) >= 0.5;
    }
    auto mean = [](double sum, size_t n) {
      return n ? nlohmann::json(sum / double(n)) : nlohmann::json(nullptr);
    };
    out["grids"].push_back({{"cells", c},
                            {"cell_original_px", double(opts.image_width) / c},
                            {"locate_ceiling", mean(locate, shapes.size())},
                            {"evidence_ceiling", mean(all, evidence.size())},
                            {"evidence_ceiling_by_third",
                             {mean(third[0], third_n[0]), mean(third[1], third_n[1]),
                              mean(third[2], third_n[2])}},
                            {"evidence_iou50_share", mean(double(iou50), evidence.size())}});
  }
  return out;
}

}  // namespace gr1
