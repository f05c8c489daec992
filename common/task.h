// The synthetic grounded visual reasoning task, and the sample record shared
// with the real VisCoT-format data (docs: ground-r1-algorithm.md, "Data
// format of the reference").
//
// A scene is a plain background with a few filled shapes (circle, square,
// triangle) in distinct named colours. The target shape carries one small
// character (A-Z without I/O, 2-9) of min_glyph_px..max_glyph_px ORIGINAL
// pixels, unreadable once the whole image is shrunk to the policy's 64x64
// view (4x down for 256x256) but readable in a crop of its region. Distractor
// shapes usually carry other characters, so the policy must find the right
// shape first. The evidence box (bboxs[0]) is the tight box of the target
// character's pixels.
//
// Sample i is a pure function of (TaskOptions, i): same bytes in every
// process and on every machine with the same OpenCV (own splitmix64 PRNG and
// integer draws, no std:: distributions, whose output is library-defined).
// Thread-safe: get() is const and touches no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core.hpp>

#include "common/options.h"
#include "common/reward.h"
#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// One question. Field names follow the reference JSON-lines schema.
struct Sample {
  uint64_t problem_id = 0;
  std::string image_path;  // empty for synthetic samples (pixels are in `image`)
  int width = 0;           // original image size in pixels
  int height = 0;
  std::vector<Box> bboxs;  // evidence boxes, ORIGINAL pixels (evaluation/logging only)
  std::string dataset;     // selects the accuracy rule (accuracy_rule_for)
  std::string problem;     // the question
  std::string solution;    // short answer, or "<answer>X</answer>" for multiple choice
  cv::Mat image;           // BGR uint8, width x height; empty when not loaded
};

class SyntheticTask {
 public:
  // Checks ranges: image sides in [32, 4096]; 4 <= min_glyph_px <= max_glyph_px;
  // 4 * max_glyph_px <= min(image sides) (the target shape must fit);
  // distractors in [0, 7]; non-empty dataset. Errors name the field.
  static Status validate(const TaskOptions& opts);

  // validate(), then resolves the question style from the dataset's accuracy
  // rule: a multiple-choice name (e.g. "synth_mc") gives four options A-D and
  // solution "<answer>X</answer>"; a short-answer name (e.g. "synth") gives
  // the character itself as solution; an unknown name is registered as short
  // answer (register_accuracy_rule); a name bound to another rule is an error.
  static Result<SyntheticTask> create(const TaskOptions& opts);

  // Same as create(), for callers that already validated `opts`; throws
  // std::invalid_argument with create()'s message otherwise.
  explicit SyntheticTask(const TaskOptions& opts);

  Sample get(uint64_t index) const;

  const TaskOptions& options() const { return opts_; }
  AccuracyRule rule() const { return rule_; }

 private:
  SyntheticTask(const TaskOptions& opts, AccuracyRule rule) : opts_(opts), rule_(rule) {}
  TaskOptions opts_;
  AccuracyRule rule_ = AccuracyRule::kShortAnswer;
};

// The reference JSON-lines record: image (image_path), width, height, bboxs
// ([[x1,y1,x2,y2], ...], integral values written as integers), dataset,
// problem, solution, problem_id. Pixels are not written.
nlohmann::json to_record(const Sample& sample);

// Reads one record of that schema (extra keys such as "split" are ignored;
// "bboxs" may be absent). The image is not loaded. Errors name the key.
Result<Sample> sample_from_record(const nlohmann::json& record);

}  // namespace gr1
