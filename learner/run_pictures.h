// Pictures of a training run (common/pictures.h) made from the learner's own
// data: curves.png from metrics.jsonl, gallery.png from the last step's
// trajectory groups. Torch-free; called from the learner's main thread.
//
//   metrics.jsonl -> read_metrics_jsonl -> write_curves_png -> <run-dir>/curves.png
//   last step's groups -> pick_gallery_trajectories -> gallery_item -> <run-dir>/gallery.png
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "common/pictures.h"
#include "common/sample.h"
#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

class SyntheticTask;

// One trajectory of `sample`'s group as a gallery item. Turn texts are the
// decoded policy tokens (turn_texts). boxes_orig[k], for turn k: the crop the
// policy was shown after that turn (images[k + 1].box_orig, widened and
// clamped as the rollout cut it) when that block is a crop; else the box the
// turn wrote, mapped from the shown_size x shown_size frame to original
// pixels (shown_to_original: a final turn's box is never cropped); else none.
// Evidence = sample.bboxs; answer = extract_answer of the final turn ("" when
// none); truth = solution_truth(sample.solution); accuracy as the learner
// scores it (score_turns). Error only on an unknown dataset name.
Result<GalleryItem> gallery_item(const Trajectory& t, const Sample& sample, int shown_size,
                                 const std::string& title);

// Which trajectories to draw: (group index, trajectory index) pairs, at most
// max_items, one per distinct prompt_id in group order. accuracy[g][j] is
// trajectory j of group g's accuracy reward. For each question the pick
// prefers a right answer (accuracy 1) while fewer right than wrong ones are
// picked so far and a not-right one otherwise, falling back to the other
// kind; within a kind the trajectory with the most turns wins (it shows the
// most grounding), ties going to the first.
std::vector<std::pair<size_t, size_t>> pick_gallery_trajectories(
    const std::vector<TrajectoryGroup>& groups, const std::vector<std::vector<double>>& accuracy,
    int max_items);

// Learner hooks: write <run_dir>/curves.png from <run_dir>/metrics.jsonl, and
// <run_dir>/gallery.png from up to max_items trajectories of `groups` (their
// samples regenerated with task.get(prompt_id)). A failure is logged as a
// warning naming the file and the reason; it never throws and never stops
// training. Return whether the file was written.
bool write_run_curves(const std::string& run_dir);
bool write_run_gallery(const std::string& run_dir, const std::vector<TrajectoryGroup>& groups,
                       const SyntheticTask& task, int shown_size, int max_items = 4);

}  // namespace gr1
