// `gr1 eval`: greedy multi-turn evaluation of a checkpoint on a dataset
// (and, with --samples K, K sampled trajectories per question beside it).
//
//   checkpoint -> policy; DIR/data.jsonl or FILE.jsonl -> samples (+ images)
//   -> batched greedy rollouts (1 x 1 tree per question, many questions per
//      batch) in `grounded` mode (boxes, crops, up to rollout.max_turns) or
//      `direct` mode (one answer turn from the whole image)
//   -> per item: answer, accuracy reward, boxes in original pixels, turns
//   -> summary (overall, per family = dataset name, per evidence-size third).
// Items are scored by the learner's code (common/scoring.h).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>  // EvalResult holds a json by value
#include <optional>
#include <string>
#include <vector>

#include "common/options.h"
#include "common/sample.h"
#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

struct EvalItem {
  uint64_t problem_id = 0;
  std::string dataset;                  // the family in summaries
  std::string answer;                   // extracted from the final turn ("" when none)
  double correct = 0;                   // the accuracy reward in [0, 1]
  double format = 0;                    // the format reward in [0, 2]
  std::vector<Box> boxes;               // every box, ORIGINAL pixels, turn order
  int turns = 0;                        // assistant turns
  std::vector<std::string> turn_texts;  // each assistant turn's text
  std::optional<Box> evidence;          // the first evidence box, if any
  double evidence_frac = 0;             // evidence area / image area (0 without evidence)
  std::optional<double> box_score;      // (GIoU+1)/2 of the last box vs evidence; nullopt: no box
  std::optional<double> iou;            // IoU of the last box vs evidence; nullopt: no box
  // Per assistant turn: the crop region cut from the original after that turn
  // (ORIGINAL pixels, after clamping and widening), nullopt when the next
  // image was the full image or there was no next turn (gallery drawing).
  std::vector<std::optional<Box>> crops;
  bool finished = false;  // ended with an answer turn
  int64_t index = -1;     // position in the evaluated sample list
  // --samples K: K trajectories of the same question sampled with the
  // rollout options (temperature, top_k, top_p), each scored like the greedy
  // one. Empty without it.
  struct Try {
    std::string answer;                   // "" when none
    double correct = 0;                   // accuracy reward in [0, 1]
    double format = 0;                    // format reward in [0, 2]
    bool boxed = false;                   // its first turn emitted a box
    std::vector<std::string> turn_texts;  // each assistant turn's text
  };
  std::vector<Try> sampled;
};

// The unbiased pass@k estimate from n tries of which c were right (Chen et
// al. 2021): 1 - C(n-c, k) / C(n, k), the chance that k tries drawn without
// replacement from the n hold at least one right one. Requires 0 <= c <= n
// and 1 <= k <= n (else throws std::invalid_argument).
double pass_at_k(int n, int c, int k);

// One greedy trajectory of `sample` (shown frame: shown_size square) as an
// item, scored by the learner's code (score_turns): `correct` and `format`
// are the training rewards; box_score is (GIoU+1)/2 of the last box any turn
// wrote (last_box_shown, the box the learner logs) mapped to original pixels,
// against the FIRST evidence box (sample.bboxs[0]); iou likewise. Fails only
// on an unknown dataset name (naming it).
Result<EvalItem> make_eval_item(const Sample& sample, const Trajectory& trajectory, int shown_size);

// IoU of two boxes in the same frame (0 when either is empty or they do not
// overlap).
double box_iou(const Box& a, const Box& b);

// JSON of one item: problem_id, dataset, answer, correct, format, boxes
// ([[x1,y1,x2,y2], ...]), turns, turn_texts, box_score, iou (null when no
// box or no evidence), evidence (null when none), evidence_frac, finished.
nlohmann::json item_json(const EvalItem& item);

// Summary of a set of items: {"n", "accuracy", "format_rate" (share of items
// whose format reward is 2), "mean_turns", "box_score" (mean over items with
// evidence, a missing box counting 0; null when no item has evidence),
// "box_score_given" (mean over items with evidence AND a box; null if none),
// "box_rate" (share of items that emitted a box), "acc_at_05" (share of items
// with evidence whose last box has IoU >= 0.5, a missing box failing; null
// when no item has evidence), "box_on_evidence_rate" (share of items with
// evidence AND a box whose last box contains the evidence box's centre),
// "accuracy_box_on_evidence" / "accuracy_box_off_evidence" (mean accuracy
// of those items and of the others with evidence and a box; null when
// empty)}. With no items every mean is null.
// When the items carry sampled tries (--samples K; K = the fewest any item
// has), also "sampled": {"k", "accuracy" (mean accuracy reward over all
// tries: the sampled policy's expected accuracy), "pass_at" {"1", "2", "4",
// ..., "K"} (mean pass_at_k over items, a try counting right when its
// accuracy reward is 1), "best_of_k" (mean over items of the best try's
// reward), "format_rate" and "box_choice_rate" (shares of tries with a
// perfect format / a box in the first turn), "greedy_wrong_sampled_right"
// (share of items the greedy answer got wrong and some try right: what
// selecting among the policy's own samples could add)}.
nlohmann::json summarize_items(const std::vector<EvalItem>& items);

// The full summary: summarize_items over all items, plus "per_family"
// {dataset: summary} and "per_evidence_third" {"small", "medium", "large"}:
// items with evidence sorted by evidence_frac and cut into three equal-count
// parts (the first parts take the remainder), each with "frac_min"/"frac_max".
nlohmann::json summarize(const std::vector<EvalItem>& items);

struct EvalOptions {
  std::string mode = "grounded";  // grounded | direct
  int batch = 8;                  // questions decoded together (see EvalCli::batch)
  int limit = 0;                  // evaluate the first N questions only (0 = all)
  bool progress = false;          // one progress line per batch on stderr
  // > 0: the box-precision probe. The first assistant turn is GIVEN: a box
  // of the first evidence box scaled by this factor about its centre
  // (shown frame, clamped, snapped outward to the location grid), followed by
  // the crop the rollout would cut for it; the policy then decodes ONE turn
  // greedily. Accuracy as a function of the scale shows what a loose box
  // costs. Samples without evidence are skipped. Grounded mode only.
  double forced_box_scale = 0;
  // > 0: also sample this many trajectories per question (a G1 = samples,
  // G2 = 1 tree, the rollout's sampling options), scored into
  // EvalItem::sampled and the summary's "sampled". The greedy items are the
  // same with or without it. Not with forced_box_scale.
  int samples = 0;
  uint64_t seed = 0;  // the sampling generator's seed (draws depend on the batch)
};

// What an evaluation returns. The rollout options that apply are max_turns,
// max_new_tokens, min_crop_px and max_aspect; sampling options are ignored
// (greedy; temperature only scales the reported log-probs), and with
// options.samples also temperature, top_k and top_p.
struct EvalResult {
  std::vector<EvalItem> items;
  nlohmann::json
      summary;  // summarize(items) plus "mode", "checkpoint", "seconds", "questions_per_s"
  // Samples not evaluated, each "problem_id N (dataset D): reason" (unknown
  // dataset name, prompt longer than the model's max_seq_len, unreadable
  // image). They are not in `items` and not in the summary's counts.
  std::vector<std::string> skipped;
};

// Loads `checkpoint` (load_policy: the model options come from the file),
// then evaluates options.limit (0 = all) of `samples` in batches of
// options.batch questions, greedy, 1 x 1 tree each, in options.mode
// (overrides rollout.mode). Samples without pixels are loaded from
// image_path. Errors: unreadable checkpoint, a vocabulary that is not the
// tokenizer's, a bad mode or batch size. Never throws.
Result<EvalResult> evaluate_checkpoint(const std::string& checkpoint,
                                       const std::vector<Sample>& samples,
                                       const RolloutOptions& rollout, const EvalOptions& options);

// `gr1 eval --checkpoint CKPT --data DIR_OR_JSONL [--mode grounded|direct]
// --out FILE [--gallery FILE.png] [--config FILE] [--samples K [--seed S]]`:
// writes {"items": [...], "summary": {...}} to FILE; item fields: problem_id,
// dataset, answer, correct, format, boxes, turns, turn_texts, box_score (see
// item_json; with --samples also "sampled", and the summary's "sampled"); the
// summary also has "data" and "skipped" {"bad_lines", "samples"}. Rollout
// options come from --config (+ --set) when given, else RolloutOptions
// defaults (--set alone applies to the defaults); --mode overrides
// rollout.mode. The config's task section registers the synthetic dataset
// names ("synth_text", ...), so synthetic benchmark files score as in
// training. Returns 0 on success, 2 on bad arguments / unreadable inputs /
// no valid sample / an unwritable output (named on stderr).
struct EvalCli {
  std::string checkpoint;
  std::string data;
  std::string mode = "grounded";
  std::string out;
  std::string gallery;  // optional PNG
  std::string config;   // optional: rollout options (max_turns, ...) from this config
  std::vector<std::string> sets;
  // Questions decoded together. 8 measured best on a 2-core CPU for both the
  // tests-size and demo-size models (32 was 10-20% slower: its KV caches
  // and attention scores outgrow the CPU caches).
  int batch = 8;
  int limit = 0;
  int threads = 1;
  double forced_box = 0;  // EvalOptions::forced_box_scale
  int samples = 0;        // EvalOptions::samples (--samples)
  uint64_t seed = 0;      // EvalOptions::seed (--seed)
};
int run_eval(const EvalCli& cli);

}  // namespace gr1
