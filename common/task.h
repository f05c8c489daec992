// The synthetic grounded visual reasoning benchmark, and the sample record
// shared with the real VisCoT-format data (common/sample.h, common/record.h).
//
// A scene is a plain background with a few filled shapes (circle, square,
// triangle) in distinct named colours; each shape may carry one small DETAIL
// whose size (the evidence size) is drawn log-uniformly in
// [min_glyph_px, max_glyph_px] original pixels: tiny details vanish when the
// whole image is shrunk to the policy's view and reappear in a crop.
// Question families mirror VisCoT's categories:
//   text       "What character is on the red circle?"     detail: a glyph (A-Z, 2-9)
//   attribute  "What colour is the small mark on ...?"    detail: a coloured badge
//   spatial    "What character is on the shape just left of the red circle?"
//              (the answer's shape is found through a relation to another)
//   counting   "How many dots are on the blue square?"    detail: 1-5 dots
// Each has a multiple-choice variant (options A-D, solution
// "<answer>X</answer>"), asked for a `mc_fraction` share of questions. The
// record's dataset is "<prefix>_<family>" or "<prefix>_<family>_mc", so the
// accuracy rule (short answer / multiple choice) and the per-family
// evaluation follow from the record alone. The evidence box (bboxs[0]) is the
// tight box of the answer detail's pixels.
//
// Splits: `train` and `test` draw from disjoint index streams of the same
// seed (sample i of the test split is not sample i of train), and scene()
// serves generic-skill pretraining from streams of its own, so no benchmark
// question is ever seen before evaluation.
//
// Sample i is a pure function of (TaskOptions, i): same bytes in every
// process and on every machine with the same OpenCV (own splitmix64 PRNG and
// integer draws, no std:: distributions, whose output is library-defined).
// Thread-safe: get() and scene() are const and touch no shared state.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "common/options.h"
#include "common/record.h"
#include "common/reward.h"
#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

enum class Family { kText = 0, kAttribute = 1, kSpatial = 2, kCounting = 3 };
std::string_view family_name(Family f);
// "text,attribute" -> families; unknown or repeated names are errors naming them.
Result<std::vector<Family>> parse_families(const std::string& list);

enum class DetailKind { kNone, kGlyph, kBadge, kDots };

// One drawn object, for curricula and tests (all boxes ORIGINAL pixels).
struct SceneObject {
  std::string colour;  // "red"
  std::string shape;   // "circle" | "square" | "triangle"
  Box box;             // the shape's bounding box
  DetailKind detail = DetailKind::kNone;
  std::string value;  // glyph character, badge colour name, or dot count ("3")
  Box detail_box;     // tight box of the detail's pixels (empty when none)
  cv::Point centre;   // the shape's centre, which spatial relations compare
  std::string description() const { return colour + " " + shape; }
};

struct Scene {
  cv::Mat image;  // BGR uint8
  std::vector<SceneObject> objects;
};

// The benchmark's multiple-choice suffix ("\nA. x\nB. y\nC. z\nD. w") for
// `truth`, a detail value of `kind`: the truth, then `confusions` (e.g. the
// scene's other details of that kind), then random values of the kind, in an
// order drawn from `seed`; *letter gets the truth's letter. For generic-skill
// pretraining (learner/pretrain.cc): the same option form as the benchmark's
// multiple-choice questions, never their wording.
std::string multiple_choice_suffix(DetailKind kind, const std::string& truth,
                                   const std::vector<std::string>& confusions, uint64_t seed,
                                   char* letter);

// The options of a question in that form: every line "L. text" (L in A-Z) as
// (L, text), in order; empty when the question lists none.
std::vector<std::pair<std::string, std::string>> multiple_choice_options(const std::string& question);

// The benchmark's spatial relation (dir 0 left of, 1 right of, 2 above, 3
// below): among the objects whose centre lies in the 90-degree cone of `dir`
// around the anchor's centre, the nearest; -1 unless it is unique (the
// runner-up at least 25% farther) or no object is in the cone.
int related_object(const std::vector<cv::Point>& centres, int anchor, int dir);

class SyntheticTask {
 public:
  // Checks ranges: image sides in [32, 8192]; 4 <= min_glyph_px <=
  // max_glyph_px; 4 * max_glyph_px <= min(image sides) (the target shape must
  // fit); distractors in [0, 16]; families known and non-empty; mc_fraction
  // in [0, 1]; split train|test; non-empty dataset. Errors name the field.
  static Status validate(const TaskOptions& opts);

  // validate(), then registers the accuracy rule of every dataset name this
  // task writes ("<prefix>_<family>" short answer, "..._mc" multiple
  // choice); a name already bound to another rule is an error.
  static Result<SyntheticTask> create(const TaskOptions& opts);

  // Same as create(), for callers that already validated `opts`; throws
  // std::invalid_argument with create()'s message otherwise.
  explicit SyntheticTask(const TaskOptions& opts);

  // Question `index` of the configured split.
  Sample get(uint64_t index) const;
  // Question `index` of one family (multiple choice or not) in `split`: what
  // get() returns when its draws pick that family / variant.
  Sample get_family(uint64_t index, Family family, bool mc, const std::string& split) const;

  // A question-free scene of `family`'s detail kind (spatial scenes carry
  // glyphs on every object) from stream `stream` >= 1, disjoint from the
  // train and test questions; for generic-skill pretraining.
  Scene scene(uint64_t index, Family family, uint64_t stream) const;

  const TaskOptions& options() const { return opts_; }
  const std::vector<Family>& families() const { return families_; }
  static std::string dataset_name(const std::string& prefix, Family family, bool mc);

 private:
  TaskOptions opts_;
  std::vector<Family> families_;
};

}  // namespace gr1
