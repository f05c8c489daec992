// `gr1 pretrain`: supervised training of a base policy on GENERIC skills, so
// that RL starts from a policy that can ground at all (issue 4: grounding
// then emerges and improves under the answer reward alone).
//
//   held-out scene streams (SyntheticTask::scene, never a benchmark question)
//   -> skill examples: prompt + teacher turns, in exactly the token layout of
//      rollouts (common/prompt.h), crops cut by the rollout's own crop code
//   -> cross-entropy on the teacher turns' tokens only -> AdamW
//   -> checkpoint + held-out report (locate box score, zoom-read accuracy,
//      share of sampled first turns on benchmark questions that choose a box)
//
// Skills (pretrain.skills, "name:weight,..."):
//   locate     "Where is the red circle?" -> <box> of the whole shape
//   zoom_read  "Zoom in on the red circle and tell the character on it."
//              -> <box> of the shape -> crop -> <answer>
//   refine     the same question after a GIVEN first turn that boxed another
//              shape (context, not trained) -> <box> of the right shape ->
//              crop -> <answer>: recovering from a wrong crop
//   answer     the same question about a detail large enough to read in the
//              full view -> <answer> at once (grounding is a choice)
//   direct     the direct-mode prompt (rollout.mode: direct) -> <answer>
//   zoom_read_mc  zoom_read with four options "\nA. x\nB. y..." after the
//              question (the benchmark's multiple-choice form) -> ... ->
//              <answer> with the right option's letter
//   zoom_read_rel  zoom_read of a shape named by its relation to another
//   locate_rel  locate of a shape named by its relation to another ("Where is
//              the shape to the left of the red circle?" -> "<think>the blue
//              square</think><box>" of the blue square): the relation's
//              grounding in one short turn
//   zoom_read_chain  the zoom_read_rel question in two grounding turns: the
//              named anchor (<box> of it -> crop), then "below it: the red
//              square" (<box> of the shape in that direction -> crop) ->
//              <answer>
//   answer_lookup  text only, no image: the zoom-read question (with the four
//              options half of the time), then six answer turns
//              "<think>it shows V</think><answer>A</answer>" whose thoughts
//              are given; A (V, or V's option letter) alone is trained: the
//              step from a read value to the answer, cheaply and many times
// Supervised boxes are whole-shape boxes, never a detail's (evidence) box,
// and the wording differs from every benchmark template: nothing the
// benchmark asks, nor its evidence boxes, is ever supervised.
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/options.h"
#include "common/sample.h"
#include "common/status.h"
#include "common/task.h"
#include "common/trajectory.h"
#include "common/data_parallel_options.h"

namespace gr1 {

// "locate:3,zoom_read:4" -> {name: weight}; unknown names, repeated names,
// negative weights or an all-zero mix are errors naming `key`.
Result<std::map<std::string, double>> parse_skill_mix(const std::string& spec,
                                                      const std::string& key = "pretrain.skills");

// One supervised example: the exact token sequence (policy_mask = 1 on the
// teacher tokens that are trained), its image blocks, and the sample whose
// image those blocks refer to.
struct PretrainExample {
  std::string skill;
  Trajectory traj;     // logprobs all 0
  Sample sample;       // image + question; bboxs = {target shape box}
  std::string answer;  // the taught answer ("" for locate)
  std::vector<SceneObject> objects;  // the scene's objects (original pixels)
  int target = -1;                   // index of the named shape in `objects`
};

// Example `index` of `skill` from scene stream `stream` (1: training,
// 2: held-out report). Deterministic.
Result<PretrainExample> make_pretrain_example(const Config& cfg, const std::string& skill,
                                              uint64_t index, uint64_t stream);

// Targets of the pretraining-only per-patch objectness loss: the g x g
// patches (side model.patch_size) of the shown frame, row-major; 1 where the
// patch centre lies inside `shown` (the named object's box, shown-frame
// pixels), else 0. The loss puts a linear head on the decoder's last hidden
// state at the first image's patch slots (weight pretrain.objectness_weight):
// the question comes before the image, so image tokens can find the object
// it names, and that is what locating needs.
std::vector<float> patch_objectness(const Box& shown, const ModelOptions& m);

// The hard negatives of that loss: 1 for the patches (same layout) whose
// centre lies inside ANOTHER shape's box of ex's scene and not inside the
// named shape's box, else 0.
std::vector<float> patch_other_shapes(const PretrainExample& ex, const ModelOptions& m);

// Per-patch weights of the class-balanced objectness loss over n patches,
// pos of them the named shape's and other the other shapes': the named
// shape's patches carry half the total weight n; with share > 0 (and both
// negative classes present) the other shapes' patches carry share of the
// other half and background the rest, else every negative weighs alike
// (pretrain.objectness_hard_negative_share).
struct ObjectnessWeights {
  double target = 0, other = 0, background = 0;
};
ObjectnessWeights objectness_weights(double n, double pos, double other, double share);

// The decoder stage's learning rate at step `step` (1-based): see
// PretrainOptions::phase0_steps and final_steps.
double pretrain_lr(const PretrainOptions& po, int step);

// Trains cfg.pretrain.steps steps from cfg.run.seed's initialisation (or
// cfg.learner.init_checkpoint when set), after the vision stage
// (learner/vision_pretrain.h) when pretrain.vision_steps > 0, writes `out` (safetensors) and
// `out`.report.json, prints progress and the report. Returns the exit code.
// With `dp` of world W > 1 this process is rank dp.rank of W (the others run
// the same call; `gr1 pretrain` starts them, orchestration/pretrain_ranks.h):
// every rank draws the same batch, sorts it by length and runs every W-th
// sequence from its rank on, in micro-batches of its own; the gradients are
// summed over the ranks with one all-reduce per step. The token loss is
// normalised by the whole batch's tokens, so without position jitter and the
// objectness loss (whose class weights are per micro-batch) a step is the
// one-process step up to the order of float additions; with them it is the
// same in expectation. Only rank 0 prints, writes `out` and reports.
int run_pretrain(const Config& cfg, const std::string& out, const DataParallelOptions& dp = {});

// The held-out report of a policy checkpoint (also `gr1 pretrain` 's last
// step): {"locate_box_score", "locate_right_shape_rate" (locate boxes whose
// best-fitting shape of the scene is the named one), "zoom_read_accuracy",
// "read_given_box_accuracy" (the zoom-read items with the shape's box given
// as the first turn: reading apart from locating), "zoom_read_mc_accuracy"
// (zoom_read_mc items, letter answers), "zoom_read_rel_accuracy",
// "box_choice_rate", "locate_rel_box_score", "locate_rel_right_shape_rate"
// (the locate figures for shapes named by their relation to another),
// "items"}.
// `locate_only` measures the two locate figures alone (what `gr1 results`
// needs; `gr1 report --locate-only`).
Result<nlohmann::json> pretrain_report(const Config& cfg, const std::string& checkpoint,
                                       bool locate_only = false);

}  // namespace gr1
