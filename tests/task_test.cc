// The synthetic grounded-reasoning task and the JSON record (common/task.h).
#include "common/task.h"
#include "common/record.h"
#include "common/dataset.h"
#include "common/synth_data.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "actors/eval.h"
#include "common/config.h"
#include "common/crop.h"
#include "common/reward.h"
#include "common/scoring.h"
#include "common/tokenizer.h"

namespace gr1 {
namespace {

constexpr int kShown = 64;  // the policy's view (ModelOptions::image_size default)
constexpr std::string_view kAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0.0;
}

// Glyph strokes against their shape, measured on grey levels: the shape is
// the median of a glyph box (strokes are thin), the stroke contrast the
// largest deviation from it at full resolution.
cv::Mat grey(const cv::Mat& bgr) {
  cv::Mat g;
  cv::cvtColor(bgr, g, cv::COLOR_BGR2GRAY);
  return g;
}
double median(const cv::Mat& g) {
  std::vector<uchar> v(g.begin<uchar>(), g.end<uchar>());
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}
double max_deviation(const cv::Mat& g, double ref) {
  double m = 0;
  for (auto it = g.begin<uchar>(); it != g.end<uchar>(); ++it) m = std::max(m, std::abs(*it - ref));
  return m;
}
// Pixels at least `at` grey levels away from `ref`.
int count_deviating(const cv::Mat& g, double ref, double at) {
  int n = 0;
  for (auto it = g.begin<uchar>(); it != g.end<uchar>(); ++it) n += std::abs(*it - ref) >= at;
  return n;
}

cv::Rect to_rect(const Box& b) {
  return cv::Rect(static_cast<int>(b.x1), static_cast<int>(b.y1), static_cast<int>(b.width()),
                  static_cast<int>(b.height()));
}

TEST(SyntheticTask, SamplesArePureFunctionsOfSeedAndIndex) {
  TaskOptions o;
  SyntheticTask a(o), b(o);
  for (uint64_t i : {0ull, 1ull, 7ull, 123456789ull}) {
    const Sample x = a.get(i), y = b.get(i);
    EXPECT_EQ(x.problem, y.problem);
    EXPECT_EQ(x.solution, y.solution);
    EXPECT_EQ(x.bboxs, y.bboxs);
    EXPECT_TRUE(same_pixels(x.image, y.image)) << "index " << i;
  }
  // Order of calls does not matter.
  const Sample late = a.get(7);
  EXPECT_TRUE(same_pixels(late.image, b.get(7).image));
}

TEST(SyntheticTask, IndicesAndSeedsGiveDifferentScenes) {
  TaskOptions o;
  SyntheticTask t(o);
  std::set<std::string> problems_and_answers;
  int distinct_images = 0;
  cv::Mat prev;
  for (uint64_t i = 0; i < 40; ++i) {
    const Sample s = t.get(i);
    problems_and_answers.insert(s.problem + "|" + s.solution);
    if (prev.empty() || !same_pixels(prev, s.image)) ++distinct_images;
    prev = s.image;
  }
  EXPECT_EQ(distinct_images, 40);
  EXPECT_GT(problems_and_answers.size(), 30u);
  TaskOptions o2 = o;
  o2.seed = o.seed + 1;
  EXPECT_FALSE(same_pixels(t.get(3).image, SyntheticTask(o2).get(3).image));
}

TEST(SyntheticTask, AFiniteTrainSplitCyclesAndTheTestSplitNever) {
  TaskOptions o;
  o.train_questions = 3;
  SyntheticTask cycled(o), open_ended(TaskOptions{});
  for (uint64_t i : {0ull, 1ull, 2ull}) {
    const Sample a = cycled.get(i), b = cycled.get(i + 3), c = cycled.get(i + 300);
    EXPECT_EQ(a.problem, b.problem);
    EXPECT_EQ(a.solution, c.solution);
    EXPECT_TRUE(same_pixels(a.image, b.image) && same_pixels(a.image, c.image)) << "index " << i;
    // The first N questions are the unbounded split's own.
    EXPECT_TRUE(same_pixels(a.image, open_ended.get(i).image));
  }
  EXPECT_FALSE(same_pixels(open_ended.get(0).image, open_ended.get(3).image));
  TaskOptions test = o;
  test.split = "test";
  SyntheticTask t(test);
  EXPECT_FALSE(same_pixels(t.get(0).image, t.get(3).image));
  TaskOptions bad;
  bad.train_questions = -1;
  EXPECT_NE(SyntheticTask::validate(bad).message().find("task.train_questions: must be >= 0"),
            std::string::npos);
}

TEST(SyntheticTask, FillsTheRecordFields) {
  TaskOptions o;
  o.image_width = 320;
  o.image_height = 240;
  SyntheticTask t(o);
  const Sample s = t.get(5);
  EXPECT_EQ(s.problem_id, 5u);
  EXPECT_TRUE(s.image_path.empty());
  EXPECT_EQ(s.width, 320);
  EXPECT_EQ(s.height, 240);
  EXPECT_EQ(s.image.cols, 320);
  EXPECT_EQ(s.image.rows, 240);
  EXPECT_EQ(s.image.type(), CV_8UC3);
  EXPECT_EQ(s.dataset.rfind("synth_", 0), 0u) << s.dataset;
  EXPECT_TRUE(accuracy_rule_for(s.dataset).ok()) << s.dataset;
  EXPECT_EQ(s.split, "train");
  ASSERT_EQ(s.bboxs.size(), 1u);
}

TEST(SyntheticTask, QuestionNamesAColouredShapeAndTheAnswerIsOneCharacter) {
  SyntheticTask t(TaskOptions{});
  for (uint64_t i = 0; i < 50; ++i) {
    const Sample s = t.get_family(i, Family::kText, false, "train");
    EXPECT_EQ(s.dataset, "synth_text");
    ASSERT_EQ(s.solution.size(), 1u) << s.solution;
    EXPECT_NE(kAlphabet.find(s.solution[0]), std::string_view::npos) << s.solution;
    const bool names_shape = s.problem.find("circle") != std::string::npos ||
                             s.problem.find("square") != std::string::npos ||
                             s.problem.find("triangle") != std::string::npos;
    EXPECT_TRUE(names_shape) << s.problem;
    // The question never gives the answer away.
    EXPECT_EQ(s.problem.find(" " + s.solution + " "), std::string::npos) << s.problem;
  }
}

TEST(SyntheticTask, EvidenceBoxIsInsideTheImageAndHoldsTheGlyph) {
  TaskOptions o;
  SyntheticTask t(o);
  for (uint64_t i = 0; i < 100; ++i) {
    const Sample s = t.get_family(i, i % 2 ? Family::kText : Family::kSpatial, false, "train");
    const Box& b = s.bboxs[0];
    ASSERT_GE(b.x1, 0);
    ASSERT_GE(b.y1, 0);
    ASSERT_LE(b.x2, s.width);
    ASSERT_LE(b.y2, s.height);
    ASSERT_GT(b.area(), 0.f);
    // Tight around a glyph of the configured height (anti-aliasing may cost a row).
    EXPECT_GE(b.height(), o.min_glyph_px - 1) << "index " << i;
    EXPECT_LE(b.height(), o.max_glyph_px) << "index " << i;
    // It holds glyph strokes: strong contrast against the shape, on many pixels.
    const cv::Mat g = grey(s.image(to_rect(b)));
    const double shape = median(g), contrast = max_deviation(g, shape);
    EXPECT_GE(contrast, 80) << "index " << i;
    EXPECT_GE(count_deviating(g, shape, contrast / 2), 15) << "index " << i;
  }
}

TEST(SyntheticTask, GlyphIsTinyAtTheShownScaleButLargeInItsCrop) {
  TaskOptions o;
  RolloutOptions ro;
  SyntheticTask t(o);
  for (uint64_t i = 0; i < 100; ++i) {
    const Sample s = t.get_family(i, Family::kText, false, "test");
    const Box& b = s.bboxs[0];
    const double shown_h = b.height() * kShown / s.height;
    const double shown_w = b.width() * kShown / s.width;
    EXPECT_LT(shown_h, 6.0) << "index " << i;
    EXPECT_LT(shown_w, 6.0) << "index " << i;
    // A policy that points at the evidence (in the shown frame) gets a crop
    // in which the glyph is several times taller.
    const Box shown{b.x1 * kShown / s.width, b.y1 * kShown / s.height, b.x2 * kShown / s.width,
                    b.y2 * kShown / s.height};
    auto crop = shown_box_to_crop(shown, kShown, kShown, s.width, s.height, ro.min_crop_px,
                                  ro.max_aspect);
    ASSERT_TRUE(crop.ok()) << crop.error();
    EXPECT_LE(crop->x1, b.x1 + 1e-3);
    EXPECT_GE(crop->x2, b.x2 - 1e-3);
    const double in_crop_h = b.height() * kShown / crop->height();
    EXPECT_GE(in_crop_h, 16.0) << "index " << i;
    // Pixels: strokes keep their contrast on many pixels of the crop, and
    // blend into the shape in the full view (no pixel reaches 3/4 of the
    // stroke contrast, only a handful reach half of it).
    const cv::Mat g = grey(s.image(to_rect(b)));
    const double shape = median(g), contrast = max_deviation(g, shape);
    const cv::Mat cropped = grey(crop_and_resize(s.image, *crop, kShown, kShown));
    const cv::Mat full = grey(resize_for_policy(s.image, kShown));
    const cv::Rect r(static_cast<int>(shown.x1), static_cast<int>(shown.y1),
                     static_cast<int>(std::ceil(shown.x2)) - static_cast<int>(shown.x1),
                     static_cast<int>(std::ceil(shown.y2)) - static_cast<int>(shown.y1));
    EXPECT_GE(count_deviating(cropped, shape, contrast / 2), 80) << "index " << i;
    EXPECT_LT(max_deviation(full(r), shape), 0.75 * contrast) << "index " << i;
    EXPECT_LE(count_deviating(full(r), shape, contrast / 2), 6) << "index " << i;
  }
}

TEST(SyntheticTask, MultipleChoiceVariantListsOptionsOverTheSameScene) {
  SyntheticTask t(TaskOptions{});
  for (Family f : {Family::kText, Family::kAttribute, Family::kSpatial, Family::kCounting}) {
    for (uint64_t i = 0; i < 15; ++i) {
      const Sample a = t.get_family(i, f, false, "train"), b = t.get_family(i, f, true, "train");
      EXPECT_TRUE(same_pixels(a.image, b.image));
      EXPECT_EQ(b.dataset, a.dataset + "_mc");
      EXPECT_EQ(*accuracy_rule_for(b.dataset), AccuracyRule::kMultipleChoice);
      EXPECT_EQ(*accuracy_rule_for(a.dataset), AccuracyRule::kShortAnswer);
      ASSERT_EQ(b.solution.size(), std::string("<answer>X</answer>").size()) << b.solution;
      const char letter = b.solution[8];
      ASSERT_TRUE(letter >= 'A' && letter <= 'D') << b.solution;
      // The option of that letter is the open variant's answer, and there
      // are exactly four distinct options.
      const std::string line = "\n" + std::string(1, letter) + ". " + a.solution + "\n";
      EXPECT_NE((b.problem + "\n").find(line), std::string::npos) << b.problem;
      std::set<std::string> options;
      for (char k : std::string("ABCD")) {
        const std::string tag = "\n" + std::string(1, k) + ". ";
        const size_t p = b.problem.find(tag);
        ASSERT_NE(p, std::string::npos) << b.problem;
        options.insert(b.problem.substr(p + 4, b.problem.find('\n', p + 1) - p - 4));
      }
      EXPECT_EQ(options.size(), 4u) << b.problem;
      EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, std::string(1, letter),
                                       b.solution),
                       1.0);
    }
  }
}

// The BGR of a named colour of the palette (the test's copy of the names).
bool near_colour(const cv::Vec3b& px, const cv::Scalar& bgr, double tol) {
  const double d0 = px[0] - bgr[0], d1 = px[1] - bgr[1], d2 = px[2] - bgr[2];
  return std::sqrt(d0 * d0 + d1 * d1 + d2 * d2) <= tol;
}

TEST(SyntheticTask, AttributeAnswerIsTheColourOfTheEvidencePixels) {
  const std::map<std::string, cv::Scalar> names = {
      {"red", {30, 30, 220}},    {"green", {40, 160, 30}},  {"blue", {220, 70, 40}},
      {"yellow", {40, 210, 235}}, {"orange", {20, 140, 240}}, {"purple", {180, 50, 140}},
      {"cyan", {210, 200, 40}},  {"brown", {40, 90, 140}},  {"black", {10, 10, 10}},
      {"white", {250, 250, 250}}};
  SyntheticTask t(TaskOptions{});
  for (uint64_t i = 0; i < 60; ++i) {
    const Sample s = t.get_family(i, Family::kAttribute, false, "train");
    EXPECT_EQ(s.dataset, "synth_attribute");
    ASSERT_TRUE(names.count(s.solution)) << s.solution;
    const Box& b = s.bboxs[0];
    // The badge is a filled square: its centre pixel has exactly the colour.
    const cv::Vec3b c = s.image.at<cv::Vec3b>(static_cast<int>((b.y1 + b.y2) / 2),
                                              static_cast<int>((b.x1 + b.x2) / 2));
    EXPECT_TRUE(near_colour(c, names.at(s.solution), 1.0)) << "index " << i << " " << s.solution;
    // ... and it is tiny in the 4x-reduced view.
    EXPECT_LT(b.width() * kShown / s.width, 5.0);
    EXPECT_NE(s.problem.find("colour"), std::string::npos) << s.problem;
  }
}

TEST(SyntheticTask, CountingAnswerIsTheNumberOfDotsInTheEvidence) {
  SyntheticTask t(TaskOptions{});
  std::set<std::string> answers;
  for (uint64_t i = 0; i < 60; ++i) {
    const Sample s = t.get_family(i, Family::kCounting, false, "train");
    answers.insert(s.solution);
    const Box& b = s.bboxs[0];
    // Dots: connected blobs of pixels that deviate strongly from the shape
    // around them (the evidence box is tight, so pad it by 2 px).
    const cv::Rect r = to_rect(Box{b.x1 - 2, b.y1 - 2, b.x2 + 2, b.y2 + 2}) &
                       cv::Rect(0, 0, s.width, s.height);
    const cv::Mat g = grey(s.image(r));
    const double shape = median(g);
    cv::Mat ink = cv::Mat::zeros(g.size(), CV_8U);
    for (int y = 0; y < g.rows; ++y)
      for (int x = 0; x < g.cols; ++x) ink.at<uchar>(y, x) = std::abs(g.at<uchar>(y, x) - shape) > 40 ? 255 : 0;
    cv::Mat labels;
    const int blobs = cv::connectedComponents(ink, labels, 8) - 1;
    EXPECT_EQ(std::to_string(blobs), s.solution) << "index " << i << " " << s.problem << "\n" << g << "\nmedian " << shape;
  }
  EXPECT_EQ(answers, (std::set<std::string>{"1", "2", "3", "4", "5"}));
}

TEST(SyntheticTask, SpatialAnswerIsOnTheShapeInTheNamedDirection) {
  const std::map<std::string, cv::Scalar> palette = {
      {"red", {30, 30, 220}},    {"green", {40, 160, 30}},  {"blue", {220, 70, 40}},
      {"yellow", {40, 210, 235}}, {"orange", {20, 140, 240}}, {"purple", {180, 50, 140}},
      {"cyan", {210, 200, 40}},  {"brown", {40, 90, 140}}};
  SyntheticTask t(TaskOptions{});  // 3 distractors: 4 distinct colours per scene
  int spatial = 0;
  for (uint64_t i = 0; i < 60; ++i) {
    const Sample s = t.get_family(i, Family::kSpatial, false, "train");
    if (s.dataset == "synth_text") continue;  // no unique relation in this scene
    ASSERT_EQ(s.dataset, "synth_spatial");
    ++spatial;
    // "... <relation> the <colour> <shape>?"
    std::string rel, colour;
    for (const char* r : {"left of", "right of", "above", "below"})
      if (s.problem.find(std::string(r) + " the ") != std::string::npos) rel = r;
    ASSERT_FALSE(rel.empty()) << s.problem;
    const size_t p = s.problem.find(rel + " the ") + rel.size() + 5;
    colour = s.problem.substr(p, s.problem.find(' ', p) - p);
    ASSERT_TRUE(palette.count(colour)) << s.problem;
    // The anchor: centroid of the pixels of exactly that colour.
    double sx = 0, sy = 0, n = 0;
    for (int y = 0; y < s.height; ++y)
      for (int x = 0; x < s.width; ++x)
        if (near_colour(s.image.at<cv::Vec3b>(y, x), palette.at(colour), 1.0)) sx += x, sy += y, ++n;
    ASSERT_GT(n, 20) << s.problem;
    const double ax = sx / n, ay = sy / n;
    const Box& b = s.bboxs[0];
    const double ex = (b.x1 + b.x2) / 2, ey = (b.y1 + b.y2) / 2;
    if (rel == "left of") {
      EXPECT_LT(ex, ax) << s.problem;
    }
    if (rel == "right of") {
      EXPECT_GT(ex, ax) << s.problem;
    }
    if (rel == "above") {
      EXPECT_LT(ey, ay) << s.problem;
    }
    if (rel == "below") {
      EXPECT_GT(ey, ay) << s.problem;
    }
    // The answer glyph is not on the anchor itself.
    const cv::Vec3b around = s.image.at<cv::Vec3b>(static_cast<int>(b.y1) - 2, static_cast<int>(ex));
    EXPECT_FALSE(near_colour(around, palette.at(colour), 1.0)) << s.problem;
    ASSERT_EQ(s.solution.size(), 1u);
  }
  EXPECT_GT(spatial, 40);
}

TEST(SyntheticTask, SplitsFamiliesAndVariantsFollowTheOptions) {
  TaskOptions train;
  train.min_glyph_px = 8;
  train.max_glyph_px = 32;
  TaskOptions test = train;
  test.split = "test";
  SyntheticTask tr(train), te(test);
  std::map<std::string, int> per_dataset;
  int mc = 0, small = 0, large = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    const Sample a = tr.get(i), b = te.get(i);
    EXPECT_FALSE(same_pixels(a.image, b.image)) << "index " << i;
    EXPECT_EQ(b.split, "test");
    ++per_dataset[a.dataset];
    mc += a.dataset.size() > 3 && a.dataset.substr(a.dataset.size() - 3) == "_mc";
    const float side = std::max(a.bboxs[0].width(), a.bboxs[0].height());
    small += side < 12;
    large += side > 22;
  }
  // Four families x two variants all occur; about a quarter multiple choice.
  EXPECT_EQ(per_dataset.size(), 8u);
  EXPECT_GT(mc, 60);
  EXPECT_LT(mc, 140);
  // Log-uniform evidence sizes: both ends of [8, 32] are common.
  EXPECT_GT(small, 60);
  EXPECT_GT(large, 60);

  TaskOptions only = train;
  only.families = "counting";
  only.mc_fraction = 0;
  SyntheticTask c(only);
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(c.get(i).dataset, "synth_counting");
}

// The tokenizer's word list (common/tokenizer.h, kWords) is written apart
// from the task's palettes: every colour, shape and badge colour a scene can
// name must be one word token, or the policy would spell it letter by letter.
TEST(SyntheticTask, EveryColourShapeAndBadgeNameIsOneWordToken) {
  TaskOptions o;
  o.distractors = 7;  // all eight shape colours in a scene
  SyntheticTask t(o);
  const Tokenizer tok;
  std::set<std::string> names;
  for (uint64_t i = 0; i < 200; ++i) {
    for (const SceneObject& ob : t.scene(i, Family::kAttribute, 1).objects) {
      names.insert(ob.colour);
      names.insert(ob.shape);
      if (ob.detail == DetailKind::kBadge) names.insert(ob.value);
    }
  }
  EXPECT_GE(names.size(), 8u + 3u + 2u);  // shape colours, shapes, black and white badges
  for (const std::string& name : names) {
    const auto ids = tok.encode(name);
    ASSERT_EQ(ids.size(), 1u) << name;
    EXPECT_TRUE(Tokenizer::is_word(ids[0])) << name;
  }
}

TEST(SyntheticTask, ScenesForPretrainingComeFromTheirOwnStream) {
  TaskOptions o;
  SyntheticTask t(o);
  for (uint64_t i = 0; i < 20; ++i) {
    const Scene sc = t.scene(i, Family::kText, 1);
    EXPECT_FALSE(same_pixels(sc.image, t.get(i).image));
    EXPECT_FALSE(same_pixels(sc.image, t.scene(i, Family::kText, 2).image));
    ASSERT_GE(sc.objects.size(), 1u);
    std::set<std::string> descriptions;
    for (const SceneObject& ob : sc.objects) {
      descriptions.insert(ob.description());
      EXPECT_GT(ob.box.area(), 0.f);
      if (ob.detail == DetailKind::kNone) continue;
      // The detail lies within its shape's box.
      EXPECT_GE(ob.detail_box.x1, ob.box.x1 - 1);
      EXPECT_LE(ob.detail_box.x2, ob.box.x2 + 1);
      EXPECT_GE(ob.detail_box.y1, ob.box.y1 - 1);
      EXPECT_LE(ob.detail_box.y2, ob.box.y2 + 1);
      EXPECT_EQ(ob.value.size(), 1u);
    }
    EXPECT_EQ(descriptions.size(), sc.objects.size());  // descriptions are unique
  }
}

// Gap between two axis-aligned boxes (0 when they overlap).
double box_gap(const Box& a, const Box& b) {
  const double dx = std::max({0.f, a.x1 - b.x2, b.x1 - a.x2});
  const double dy = std::max({0.f, a.y1 - b.y2, b.y1 - a.y2});
  return std::sqrt(dx * dx + dy * dy);
}

TEST(SyntheticTask, NearDistractorsTouchTheSubject) {
  TaskOptions spread;
  TaskOptions near = spread;
  near.near_distractors = 1.0;
  SyntheticTask a(spread), b(near);
  double gap_spread = 0, gap_near = 0;
  int n_spread = 0, n_near = 0, far_near = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    const Scene s = a.scene(i, Family::kText, 1), t = b.scene(i, Family::kText, 1);
    for (size_t k = 1; k < s.objects.size(); ++k, ++n_spread)
      gap_spread += box_gap(s.objects[0].box, s.objects[k].box);
    for (size_t k = 1; k < t.objects.size(); ++k, ++n_near) {
      const double g = box_gap(t.objects[0].box, t.objects[k].box);
      gap_near += g;
      // Bounding circles 4-10 px apart; a square's box corner lies inside
      // its bounding circle, so allow its box some more room.
      far_near += g > 12;
    }
    // Details stay unique per shape description.
    std::set<std::string> d;
    for (const auto& o : t.objects) d.insert(o.description());
    EXPECT_EQ(d.size(), t.objects.size());
  }
  ASSERT_GT(n_near, 60);
  // Most distractors found room next to the subject (with three, the last
  // often finds none and falls back to a free place anywhere), and on
  // average they sit far closer than usual.
  EXPECT_LT(far_near, n_near / 2) << far_near << " of " << n_near;
  EXPECT_LT(gap_near / n_near, 0.3 * gap_spread / n_spread)
      << gap_near / n_near << " vs " << gap_spread / n_spread;
  TaskOptions bad;
  bad.near_distractors = 1.5;
  EXPECT_NE(SyntheticTask::validate(bad).message().find("task.near_distractors"), std::string::npos);
}

// Pretraining's colour-binding curriculum: a same-shape scene has every
// shape of the subject's kind with distinct colours; share 1 makes every
// scene one. (That share 0, the default, leaves scenes as they were before
// the option is checked outside this suite: the results base pretrained
// again with it in the code came out byte-identical, docs/results.md.)
TEST(SyntheticTask, SameShapeScenesLeaveOnlyTheColourToTellShapesApart) {
  TaskOptions plain;
  TaskOptions all = plain;
  all.same_shape_scenes = 1.0;
  SyntheticTask a(plain), b(all);
  int mixed_plain = 0, same = 0, scenes = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    const Scene s = a.scene(i, Family::kText, 1), u = b.scene(i, Family::kText, 1);
    std::set<std::string> kinds_plain, kinds, colours;
    for (const auto& o : s.objects) kinds_plain.insert(o.shape);
    for (const auto& o : u.objects) {
      kinds.insert(o.shape);
      colours.insert(o.colour);
    }
    mixed_plain += kinds_plain.size() > 1;
    ++scenes;
    // The subject may fall back to a circle when too big for the image; the
    // distractors keep its drawn kind, so at most two kinds, and colours
    // stay unique (each description names one shape).
    same += kinds.size() == 1;
    EXPECT_LE(kinds.size(), 2u) << "scene " << i;
    EXPECT_EQ(colours.size(), u.objects.size()) << "scene " << i;
  }
  EXPECT_GT(mixed_plain, scenes / 2);  // ordinary scenes mix kinds
  EXPECT_GE(same, scenes - 2);         // same-shape scenes do not
  TaskOptions bad;
  bad.same_shape_scenes = -0.1;
  EXPECT_NE(SyntheticTask::validate(bad).message().find("task.same_shape_scenes"), std::string::npos);
}

TEST(SyntheticTask, CreateRegistersACustomDatasetName) {
  TaskOptions o;
  o.dataset = "task_test_synth";
  o.families = "text,counting";
  ASSERT_FALSE(accuracy_rule_for("task_test_synth_text").ok());
  auto t = SyntheticTask::create(o);
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(*accuracy_rule_for("task_test_synth_text"), AccuracyRule::kShortAnswer);
  EXPECT_EQ(*accuracy_rule_for("task_test_synth_counting_mc"), AccuracyRule::kMultipleChoice);
  EXPECT_FALSE(accuracy_rule_for("task_test_synth_spatial").ok());  // not configured
}

TEST(SyntheticTask, RejectsClashingRulesAndBadOptions) {
  ASSERT_TRUE(register_accuracy_rule("clash_text", AccuracyRule::kCaption).ok());
  TaskOptions o;
  o.dataset = "clash";
  auto r = SyntheticTask::create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("clash_text"), std::string::npos) << r.error();
  EXPECT_THROW(SyntheticTask{o}, std::invalid_argument);

  struct Case {
    const char* key;
    std::function<void(TaskOptions&)> set;
  };
  for (const Case& c : {Case{"task.max_glyph_px", [](TaskOptions& x) { x.max_glyph_px = 100; }},
                        Case{"task.distractors", [](TaskOptions& x) { x.distractors = -1; }},
                        Case{"task.families", [](TaskOptions& x) { x.families = "text,colour"; }},
                        Case{"task.families", [](TaskOptions& x) { x.families = "text,text"; }},
                        Case{"task.families", [](TaskOptions& x) { x.families = ""; }},
                        Case{"task.split", [](TaskOptions& x) { x.split = "val"; }},
                        Case{"task.mc_fraction", [](TaskOptions& x) { x.mc_fraction = 1.5; }}}) {
    TaskOptions bad;
    c.set(bad);
    const Status e = SyntheticTask::validate(bad);
    ASSERT_FALSE(e.ok()) << c.key;
    EXPECT_NE(e.message().find(c.key), std::string::npos) << e.message();
  }
  auto colour = SyntheticTask::validate([] { TaskOptions x; x.families = "text,colour"; return x; }());
  EXPECT_NE(colour.message().find("\"colour\""), std::string::npos) << colour.message();
  EXPECT_TRUE(SyntheticTask::validate(TaskOptions{}).ok());
}

TEST(SyntheticTask, CrowdedAndTinyScenesStillWork) {
  for (auto [w, h, lo, hi, d] : {std::tuple{32, 32, 6, 8, 16}, std::tuple{256, 256, 14, 20, 16},
                                 std::tuple{64, 512, 10, 16, 0}}) {
    TaskOptions o;
    o.image_width = w;
    o.image_height = h;
    o.min_glyph_px = lo;
    o.max_glyph_px = hi;
    o.distractors = d;
    auto t = SyntheticTask::create(o);
    ASSERT_TRUE(t.ok()) << t.error();
    for (uint64_t i = 0; i < 12; ++i) {
      const Sample s = t->get_family(i, static_cast<Family>(i % 4), i % 3 == 0, "train");
      const Box& b = s.bboxs[0];
      ASSERT_GT(b.area(), 0.f) << s.dataset;
      EXPECT_GE(b.x1, 0);
      EXPECT_LE(b.x2, w);
      EXPECT_GE(b.y1, 0);
      EXPECT_LE(b.y2, h);
      // The detail stands out: some two pixels of the box (padded by 2 px)
      // differ strongly in colour (stroke/badge/dot against its shape).
      const cv::Rect r = to_rect(Box{b.x1 - 2, b.y1 - 2, b.x2 + 2, b.y2 + 2}) & cv::Rect(0, 0, w, h);
      cv::Mat lab;
      cv::cvtColor(s.image(r), lab, cv::COLOR_BGR2Lab);
      double most = 0;
      for (auto p = lab.begin<cv::Vec3b>(); p != lab.end<cv::Vec3b>(); ++p)
        for (auto q = p; q != lab.end<cv::Vec3b>(); ++q) most = std::max(most, cv::norm(*p, *q));
      EXPECT_GE(most, 60) << s.dataset << " " << w << "x" << h << " index " << i;
    }
  }
}

// ---- gr1 data synth -----------------------------------------------------------

TEST(SynthData, WritesASplitThatTheLoaderReadsBackPixelForPixel) {
  const auto dir = std::filesystem::temp_directory_path() / "gr1_synth_data_test";
  std::filesystem::remove_all(dir);
  TaskOptions o;
  o.image_width = 128;
  o.image_height = 96;
  o.min_glyph_px = 8;
  o.max_glyph_px = 16;
  ASSERT_TRUE(write_synthetic_split(o, "test", 24, dir.string()).ok());
  LoadOptions lo;
  lo.check_images = true;
  lo.keep_images = true;
  auto rep = load_jsonl_file((dir / "data.jsonl").string(), lo);
  ASSERT_TRUE(rep.ok()) << rep.error();
  EXPECT_EQ(rep->lines, 24);
  EXPECT_TRUE(rep->errors.empty()) << report_json(*rep).dump();
  ASSERT_EQ(rep->samples.size(), 24u);
  TaskOptions t = o;
  t.split = "test";
  SyntheticTask task(t);
  int64_t counted = 0;
  for (const auto& [name, n] : rep->per_dataset) counted += n;
  EXPECT_EQ(counted, 24);
  for (size_t i = 0; i < rep->samples.size(); ++i) {
    const Sample& got = rep->samples[i];
    const Sample want = task.get(i);
    EXPECT_EQ(got.problem_id, i);
    EXPECT_EQ(got.split, "test");
    EXPECT_EQ(got.problem, want.problem);
    EXPECT_EQ(got.solution, want.solution);
    EXPECT_EQ(got.dataset, want.dataset);
    EXPECT_EQ(got.bboxs, want.bboxs);
    EXPECT_TRUE(same_pixels(got.image, want.image)) << "index " << i;  // PNG is lossless
  }
  // Bad arguments are errors naming them; nothing is written.
  EXPECT_NE(write_synthetic_split(o, "val", 3, (dir / "x").string()).message().find("split"),
            std::string::npos);
  EXPECT_NE(write_synthetic_split(o, "train", 0, (dir / "x").string()).message().find("--n"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "x" / "data.jsonl"));
  std::filesystem::remove_all(dir);
}

// ---- JSON records ----------------------------------------------------------

TEST(Record, WritesTheReferenceSchemaAndReadsItBack) {
  SyntheticTask t(TaskOptions{});
  Sample s = t.get(11);
  s.image_path = "images/train_000011.png";
  const nlohmann::json j = to_record(s);
  for (const char* key :
       {"image", "width", "height", "bboxs", "dataset", "problem", "solution", "problem_id"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["problem_id"], 11);
  EXPECT_EQ(j["dataset"], s.dataset);
  ASSERT_EQ(j["bboxs"].size(), 1u);
  EXPECT_TRUE(j["bboxs"][0][0].is_number_integer());  // integral pixels written as integers

  auto back = sample_from_record(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->problem, s.problem);
  EXPECT_EQ(back->solution, s.solution);
  EXPECT_EQ(back->bboxs, s.bboxs);
  EXPECT_EQ(back->width, s.width);
  EXPECT_EQ(back->problem_id, s.problem_id);
  EXPECT_TRUE(back->image.empty());
}

TEST(Record, ReadsVisCoTLines) {
  // Two lines of the public VisCoT evaluation sample.
  const char* lines[] = {
      R"({"image": "/data/cot/gqa/2354786.jpg", "width": 500, "height": 333, "bboxs": [[303, 96, 486, 289]], "dataset": "gqa", "split": "val", "problem": "What are the tree branches in front of?\"  \nA. Door  \nB. Wall", "solution": "<answer>C</answer>", "problem_id": 2})",
      R"({"image": "/data/cot/vsr/000000287427.jpg", "width": 640, "height": 480, "bboxs": [[392, 316, 467, 414], [1.5, 2, 3, 4]], "dataset": "vsr", "problem": "What does the cake consist of?", "solution": "dog", "problem_id": 0})",
  };
  auto a = sample_from_record(nlohmann::json::parse(lines[0]));
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->dataset, "gqa");
  EXPECT_EQ(a->width, 500);
  EXPECT_EQ(a->bboxs, (std::vector<Box>{Box{303, 96, 486, 289}}));
  EXPECT_EQ(solution_truth(a->solution), "C");
  auto b = sample_from_record(nlohmann::json::parse(lines[1]));
  ASSERT_TRUE(b.ok()) << b.error();
  ASSERT_EQ(b->bboxs.size(), 2u);
  EXPECT_FLOAT_EQ(b->bboxs[1].x1, 1.5f);
  EXPECT_TRUE(accuracy_rule_for(b->dataset).ok());
}

TEST(Record, BadRecordsAreErrorsNamingTheKey) {
  auto base = nlohmann::json::parse(
      R"({"image": "x.jpg", "width": 10, "height": 10, "bboxs": [[0,0,5,5]], "dataset": "vsr", "problem": "q", "solution": "a", "problem_id": 1})");
  ASSERT_TRUE(sample_from_record(base).ok());
  struct Case {
    const char* key;
    nlohmann::json value;
  };
  for (const Case& c : {Case{"dataset", nullptr}, Case{"width", "10"}, Case{"height", 0},
                        Case{"problem_id", -1}, Case{"bboxs", nlohmann::json::parse("[[1, 2, 3]]")},
                        Case{"bboxs", "none"}}) {
    nlohmann::json j = base;
    j[c.key] = c.value;
    auto r = sample_from_record(j);
    ASSERT_FALSE(r.ok()) << c.key;
    EXPECT_NE(r.error().find(c.key), std::string::npos) << r.error();
  }
  nlohmann::json missing = base;
  missing.erase("solution");
  EXPECT_FALSE(sample_from_record(missing).ok());
  EXPECT_FALSE(sample_from_record(nlohmann::json::array()).ok());
}

// The location grid must be able to write the benchmark's evidence boxes:
// issue 4 scores boxes against the evidence (box_score, acc_at_05), and with
// 16 cells per axis only 7.8% of the results benchmark's evidence boxes had
// any grid box of IoU >= 0.5 (an 8 px detail is half a 16 px cell wide).
TEST(SyntheticTask, TheLocationGridCanWriteTheResultsBenchmarksEvidence) {
  auto cfg = load_config(std::string(GR1_SOURCE_DIR) + "/configs/results.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  TaskOptions opts = cfg->task;
  opts.split = "test";
  const SyntheticTask task(opts);
  const int S = cfg->model.image_size;
  constexpr int kItems = 300;
  int reachable = 0;
  for (int i = 0; i < kItems; ++i) {
    const Sample s = task.get(static_cast<uint64_t>(i));
    ASSERT_FALSE(s.bboxs.empty());
    const Box& e = s.bboxs.front();
    const int W = s.image.cols, H = s.image.rows;
    const Box shown{e.x1 * S / W, e.y1 * S / H, e.x2 * S / W, e.y2 * S / H};
    // The tightest grid box that covers the evidence (what a forced box is).
    const Box grid = shown_to_original(snap_box_to_location_grid(shown, S), S, S, W, H);
    EXPECT_LE(grid.x1, e.x1 + 1e-3f);
    EXPECT_GE(grid.x2, e.x2 - 1e-3f);
    reachable += box_iou(grid, e) >= 0.5;
  }
  // 32 cells: 0.43 of the test split (docs/results.md, "The location grid").
  EXPECT_GE(reachable, kItems * 3 / 10) << reachable << " of " << kItems;
}

}  // namespace
TEST(SyntheticTask, MultipleChoiceOptionsReadBackTheSuffixAndIgnoreOtherLines) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    char letter = '?';
    const std::string suffix =
        multiple_choice_suffix(DetailKind::kGlyph, "7", {"Q"}, seed, &letter);
    const auto options = multiple_choice_options("What is on the red circle?" + suffix);
    ASSERT_EQ(options.size(), 4u) << suffix;
    std::set<std::string> values;
    for (size_t k = 0; k < options.size(); ++k) {
      EXPECT_EQ(options[k].first, std::string(1, static_cast<char>('A' + k))) << suffix;
      values.insert(options[k].second);
      if (options[k].first[0] == letter) {
        EXPECT_EQ(options[k].second, "7") << suffix;
      }
    }
    EXPECT_EQ(values.size(), 4u) << suffix;
    EXPECT_TRUE(values.count("7") && values.count("Q")) << suffix;
  }
  // A line at the very start counts; lines not of the form "L. text" do not.
  const auto mixed = multiple_choice_options("B. first\nno option\nc. lower\nD.missing space\nE. ");
  ASSERT_EQ(mixed.size(), 2u);
  EXPECT_EQ(mixed[0], std::make_pair(std::string("B"), std::string("first")));
  EXPECT_EQ(mixed[1], std::make_pair(std::string("E"), std::string("")));
  EXPECT_TRUE(multiple_choice_options("How many dots are on the blue square?").empty());
}

}  // namespace gr1
