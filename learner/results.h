// `gr1 results`: the issue-4 experiment's summary (`make results`) and a
// side-by-side comparison of two evaluations (`make demo`).
//
//   DIR/<arm>.eval.json (gr1 eval)          -> the arm's eval summary
//   DIR/<arm checkpoint> (pretrain_report)  -> the arm's locate skill
//   DIR/timings.json (orchestration/results.sh)
//   -> DIR/summary.json: {arm: summary + box_score_given + locate_skill,
//                         "targets": the checks, "paired": arm
//                         against arm on the same questions, "timings",
//                         "warnings"}
//   -> an aligned table on stdout
//
// Arms (columns, in this order): base (the pretrained policy), ground_r1
// (Ground-R1 GRPO from base), direct_grpo (GRPO on direct answers from base,
// evaluated in direct mode), srpo (Ground-R1 with the SRPO advantage).
// The JSON assembly and the table are pure functions of parsed inputs (tested
// in tests/results_test.cc); run_results_* do the file and checkpoint work.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/status.h"

namespace gr1 {

// "base", "ground_r1", "direct_grpo", "srpo".
const std::vector<std::string>& results_arms();

// Checkpoint of `arm` under `dir`: DIR/base.safetensors for base, else
// DIR/<arm>/policy.safetensors (the run directory's final weights).
std::string arm_checkpoint(const std::string& dir, const std::string& arm);

// Checks that `eval` has the shape `gr1 eval --out` writes: an object with a
// "summary" object whose fields used here (accuracy, format_rate,
// mean_turns, box_score, box_score_given, box_rate, acc_at_05) are numbers or
// null when present, and, when present, an "items" array of objects. The
// error names the offending field; callers prefix the file name.
Status check_eval_json(const nlohmann::json& eval);

// box_score_given of an evaluation: the summary's "box_score_given" when the
// key is present (a number, or null when no item had a box and evidence),
// else the mean item "box_score" over items whose "boxes" is a non-empty
// array and whose box_score is a number; null when there is none.
nlohmann::json eval_box_score_given(const nlohmann::json& eval);

// How the first grounding thought of each synthetic-benchmark item names
// its shape, against the question (`questions`: problem_id -> problem
// text, DIR/test/data.jsonl). The benchmark's questions name a shape as
// "the <colour> <shape>" (the last such phrase of the first line; a
// spatial family's is the anchor the target is named by), and the
// pretrained grounding thought is "<think>the <colour> <shape></think>".
// Items of datasets not named synth_* are not counted. Returns
//   {"items": n, "no_box": share whose first turn wrote no box,
//    "names_target": share whose thought names the question's shape
//                    (non-spatial families),
//    "colour_wrong", "shape_wrong", "other": shares naming another colour of
//                    that shape, another shape of that colour, anything else,
//    "names_anchor": share of spatial items naming the anchor instead of
//                    resolving the relation,
//    "accuracy_when_named": mean accuracy where the thought names the target,
//    "per_family": {family: the same fields}}
// with shares over the items counted (null where a share has no items).
nlohmann::json thought_naming(const nlohmann::json& eval,
                              const std::vector<std::pair<uint64_t, std::string>>& questions);

// Whether the final answer says what the answer turn's own thought read.
// The pretrained answer turn is "<think>it shows V</think><answer>A</answer>",
// where A is V, or for a question with options ("\nX. text" lines) the
// letter of the option whose text is V. For each synthetic-benchmark item
// (datasets synth_*) whose last turn has such a thought, the answer the
// thought implies is compared with the one written (trimmed,
// case-insensitive) and scored by the dataset's accuracy rule. `questions`
// holds problem_id -> (problem, solution), as in DIR/test/data.jsonl.
// Returns
//   {"items": n items with an "it shows" thought,
//    "follows_thought": share whose answer is the one the thought implies,
//    "accuracy": their mean accuracy as evaluated,
//    "accuracy_from_thought": mean accuracy of the implied answers (0 where
//        the value is none of the options),
//    "value_not_an_option": share of items with options whose value is none
//        of them,
//    "letter_without_options": share of items without options answered with
//        a lone letter A-D that is not the value,
//    "per_family": {family: the same fields}}
// or null when no item has such a thought.
nlohmann::json answer_vs_thought(
    const nlohmann::json& eval,
    const std::map<uint64_t, std::pair<std::string, std::string>>& questions);

// What summary.json is built from, per arm.
struct ArmResult {
  std::string arm;
  std::optional<nlohmann::json> eval;  // the parsed eval file; nullopt: missing
  nlohmann::json locate_skill;         // number, or null (no checkpoint / report failed)
  nlohmann::json thought_naming;       // thought_naming(), or null (not measured)
  nlohmann::json answer_vs_thought;    // answer_vs_thought(), or null (not measured)
};

// The target checks from the per-arm objects of summary.json
// ({arm: object or null}). Each check is {"value", "target", "comparison",
// "met"}; value is null and met false when an input is missing (a target that
// was not measured is not met). Comparisons allow 1e-9 of rounding.
//   accuracy_gain_over_base         ground_r1.accuracy - base.accuracy >= 0.40
//   accuracy_gain_over_direct_grpo  ground_r1.accuracy - direct_grpo.accuracy >= 0.30
//   box_score_given_gain_over_base  ground_r1.box_score_given - base.box_score_given >= 0.05
//   box_score_gain_over_base        ground_r1.box_score - base.box_score >= 0.30
//   format_rate                     ground_r1.format_rate >= 0.97
//   locate_skill_drift              |ground_r1.locate_skill - base.locate_skill| <= 0.05
// plus srpo_vs_grpo_smallest_third: {"srpo", "ground_r1"} = accuracy on the
// smallest evidence third (per_evidence_third.small), "value" = srpo -
// ground_r1, and "target"/"met" null: a measurement, the issue sets no bar.
nlohmann::json results_targets(const nlohmann::json& arms);

// Two-sided exact McNemar p-value of b discordant pairs one way and c the
// other: 2 * P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), capped at 1;
// 1 when b + c = 0. Computed in log space (exact to double rounding for any
// count a test split holds).
double mcnemar_exact_p(int64_t b, int64_t c);

// Paired comparison of two evaluations of the same questions: items[]
// matched by problem_id (items without a numeric problem_id or correct are
// skipped). An item is right when its correct is 1 (full credit). Returns
//   {"items": questions in both, "only_in_one": questions in one of them,
//    "right_to_wrong": right in `base`, not in `other`,
//    "wrong_to_right": the reverse,
//    "mcnemar_p": mcnemar_exact_p of those two counts,
//    "accuracy_gain": mean of other.correct - base.correct over the shared
//                     items (partial credit included),
//    "accuracy_gain_ci95": [lo, hi], its normal-approximation 95% interval
//                          over the paired differences}
// or null when either has no items array or they share no question. Pure.
nlohmann::json paired_comparison(const nlohmann::json& base_eval, const nlohmann::json& other_eval);

// The paired comparisons summary.json reports ("paired"), as
// (key, other arm, base arm): ground_r1_vs_base, srpo_vs_base,
// direct_grpo_vs_base, ground_r1_vs_direct_grpo, srpo_vs_ground_r1.
const std::vector<std::tuple<std::string, std::string, std::string>>& results_pairs();

// summary.json: for each arm of `arms` (in order), key = arm, value = the
// eval's "summary" plus "box_score_given" (eval_box_score_given) and
// "locate_skill", or null when its eval is missing; plus "targets"
// (results_targets), "paired" ({key: paired_comparison of the pair's
// evaluations, or null when one is missing} for each of results_pairs()),
// "timings" (as given; null when none) and "warnings" (as given). Pure.
nlohmann::json assemble_results(const std::vector<ArmResult>& arms, const nlohmann::json& timings,
                                const std::vector<std::string>& warnings = {});

// The table rows of `gr1 results`: accuracy, format_rate, mean_turns,
// box_score, box_score_given, acc_at_05, locate_skill.
const std::vector<std::string>& results_table_rows();

// An aligned text table: one row per name in `rows`, one column per
// (title, object) pair, each cell the object's field with 3 decimals ("-"
// for a null object, "n/a" for a missing or null field). With `delta`, a
// last column "change" = last column - first column (signed; "n/a" when
// either is not a number).
std::string render_results_table(const std::vector<std::pair<std::string, nlohmann::json>>& columns,
                                 const std::vector<std::string>& rows, bool delta = false);

// Seconds a `gr1 pretrain` report (CKPT.report.json) took to train:
// train_seconds plus the vision stage's seconds (vision.seconds,
// vision.train_seconds or vision.wall_s, the first that is a number); null
// when train_seconds is missing.
nlohmann::json pretrain_report_seconds(const nlohmann::json& report);

// Reads and checks one eval file. Missing file: nullopt. Unreadable,
// not JSON or not an eval (check_eval_json): an error naming the file.
Result<std::optional<nlohmann::json>> load_eval_file(const std::string& path);

// `gr1 results summarize --dir DIR --config FILE [--locate-items N]
// [--out FILE] [--set k=v ...]`: reads DIR/<arm>.eval.json for every arm
// (missing -> null and a warning on stderr; malformed -> error, exit 2), the
// locate skill of each present arm's checkpoint (arm_checkpoint; pretrain_report
// of FILE's config with pretrain.report_items = N; a missing checkpoint or a
// failed report -> null and a warning), DIR/timings.json when present, and
// DIR/base.safetensors.report.json for timings.base_pretrain_seconds
// (pretrain_report_seconds). Adds timings.summarize_seconds, adds it to
// timings.total_seconds (the script's steps) when present, and with
// timings.base_cached true sets timings.total_with_base_pretrain_seconds =
// total_seconds + base_pretrain_seconds. Writes summary.json (default DIR/summary.json;
// tmp + rename) and prints the table and the targets. Returns 0, or 2 on bad
// arguments, a malformed input or an unwritable output.
struct ResultsSummarizeCli {
  std::string dir;
  std::string config;
  std::vector<std::string> sets;
  int locate_items = 200;
  std::string out;  // default DIR/summary.json
};
int run_results_summarize(const ResultsSummarizeCli& cli);

// `gr1 results compare --base A.eval.json --trained B.eval.json`: both
// summaries side by side (plus box_score_given and a change column). Returns
// 0, or 2 when a file is missing or malformed (named on stderr).
int run_results_compare(const std::string& base, const std::string& trained);

}  // namespace gr1
