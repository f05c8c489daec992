#include "learner/run_pictures.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/log.h"
#include "common/reward.h"
#include "common/scoring.h"
#include "common/task.h"
#include "common/turns.h"

namespace gr1 {

Result<GalleryItem> gallery_item(const Trajectory& t, const Sample& sample, int shown_size,
                                 const std::string& title) {
  GalleryItem it;
  it.image = sample.image;
  it.title = title;
  it.question = sample.problem;
  it.turns = turn_texts(t, shown_size);
  it.boxes_orig.resize(it.turns.size());
  for (size_t k = 0; k < it.turns.size(); ++k) {
    if (k + 1 < t.images.size()) {
      // A user turn followed turn k: its image block is what turn k's box
      // produced (a full image when the box was missing or unusable).
      if (t.images[k + 1].is_crop) it.boxes_orig[k] = t.images[k + 1].box_orig;
    } else if (k < t.boxes_shown.size() && t.boxes_shown[k]) {
      it.boxes_orig[k] =
          shown_to_original(*t.boxes_shown[k], shown_size, shown_size, sample.width, sample.height);
    }
  }
  it.evidence = sample.bboxs;
  if (!it.turns.empty()) it.answer = extract_answer(it.turns.back()).value_or("");
  it.truth = solution_truth(sample.solution);
  auto rb = score_turns(it.turns, last_box_shown(t), sample.solution, sample.dataset, sample.bboxs,
                        sample.width, sample.height, shown_size, shown_size);
  if (!rb.ok()) return rb.status();
  it.accuracy = rb->accuracy;
  return it;
}

std::vector<std::pair<size_t, size_t>> pick_gallery_trajectories(
    const std::vector<TrajectoryGroup>& groups, const std::vector<std::vector<double>>& accuracy,
    int max_items) {
  std::vector<std::pair<size_t, size_t>> out;
  std::set<uint64_t> seen;
  int right = 0, wrong = 0;
  for (size_t g = 0; g < groups.size() && static_cast<int>(out.size()) < max_items; ++g) {
    if (g >= accuracy.size() || !seen.insert(groups[g].prompt_id).second) continue;
    const auto& trajs = groups[g].trajectories;
    // Best of each kind: most turns, first on ties.
    std::optional<size_t> best[2];  // [0] right, [1] not right
    for (size_t j = 0; j < trajs.size() && j < accuracy[g].size(); ++j) {
      const int kind = accuracy[g][j] >= 1.0 - 1e-9 ? 0 : 1;
      if (!best[kind] || trajs[j].turns.size() > trajs[*best[kind]].turns.size()) best[kind] = j;
    }
    const int want = right <= wrong ? 0 : 1;
    const int kind = best[want] ? want : 1 - want;
    if (!best[kind]) continue;  // a group without trajectories
    out.emplace_back(g, *best[kind]);
    (kind == 0 ? right : wrong)++;
  }
  return out;
}

bool write_run_curves(const std::string& run_dir) {
  namespace fs = std::filesystem;
  const std::string metrics = (fs::path(run_dir) / "metrics.jsonl").string();
  const std::string png = (fs::path(run_dir) / "curves.png").string();
  try {
    int skipped = 0;
    auto rows = read_metrics_jsonl(metrics, &skipped);
    if (!rows.ok()) {
      log_warn("pictures", "no " + png + ": " + rows.error());
      return false;
    }
    if (skipped > 0)
      log_warn("pictures",
               metrics + ": skipped " + std::to_string(skipped) + " unreadable line(s)");
    if (Status s = write_curves_png(*rows, png); !s.ok()) {
      log_warn("pictures", s.message());
      return false;
    }
    return true;
  } catch (const std::exception& e) {  // drawing must never stop training
    log_warn("pictures", "no " + png + ": " + e.what());
    return false;
  }
}

bool write_run_gallery(const std::string& run_dir, const std::vector<TrajectoryGroup>& groups,
                       const SyntheticTask& task, int shown_size, int max_items) {
  namespace fs = std::filesystem;
  const std::string png = (fs::path(run_dir) / "gallery.png").string();
  try {
    std::vector<std::vector<GalleryItem>> items(groups.size());
    std::vector<std::vector<double>> accuracy(groups.size());
    for (size_t g = 0; g < groups.size(); ++g) {
      const Sample sample = task.get(groups[g].prompt_id);
      const auto& trajs = groups[g].trajectories;
      for (size_t j = 0; j < trajs.size(); ++j) {
        char title[256];
        std::snprintf(
            title, sizeof title, "question %llu (%s): trajectory %zu of %zu, weights v%llu%s",
            static_cast<unsigned long long>(groups[g].prompt_id), sample.dataset.c_str(), j + 1,
            trajs.size(), static_cast<unsigned long long>(groups[g].weights_version),
            trajs[j].finished ? "" : ", unfinished");
        auto it = gallery_item(trajs[j], sample, shown_size, title);
        if (!it.ok()) {
          log_warn("pictures", "no " + png + ": " + it.error());
          return false;
        }
        char fmt_reward[32];
        std::snprintf(fmt_reward, sizeof fmt_reward, ", format %.2f", format_reward(it->turns));
        it->title += fmt_reward;
        accuracy[g].push_back(it->accuracy);
        items[g].push_back(std::move(*it));
      }
    }
    std::vector<GalleryItem> chosen;
    for (const auto& [g, j] : pick_gallery_trajectories(groups, accuracy, max_items))
      chosen.push_back(std::move(items[g][j]));
    if (Status s = write_gallery_png(chosen, png); !s.ok()) {
      log_warn("pictures", s.message());
      return false;
    }
    return true;
  } catch (const std::exception& e) {  // drawing must never stop training
    log_warn("pictures", "no " + png + ": " + e.what());
    return false;
  }
}

}  // namespace gr1
