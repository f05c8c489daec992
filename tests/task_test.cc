// The synthetic grounded-reasoning task and the JSON record (common/task.h).
#include "common/task.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "common/crop.h"
#include "common/reward.h"

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
  EXPECT_EQ(s.dataset, "synth");
  ASSERT_EQ(s.bboxs.size(), 1u);
}

TEST(SyntheticTask, QuestionNamesAColouredShapeAndTheAnswerIsOneCharacter) {
  SyntheticTask t(TaskOptions{});
  for (uint64_t i = 0; i < 50; ++i) {
    const Sample s = t.get(i);
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
    const Sample s = t.get(i);
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
    const Sample s = t.get(i);
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
  TaskOptions open;
  TaskOptions mc = open;
  mc.dataset = "synth_mc";
  SyntheticTask t_open(open), t_mc(mc);
  EXPECT_EQ(t_mc.rule(), AccuracyRule::kMultipleChoice);
  for (uint64_t i = 0; i < 30; ++i) {
    const Sample a = t_open.get(i), b = t_mc.get(i);
    EXPECT_TRUE(same_pixels(a.image, b.image));
    ASSERT_EQ(b.solution.size(), std::string("<answer>X</answer>").size()) << b.solution;
    const char letter = b.solution[8];
    ASSERT_TRUE(letter >= 'A' && letter <= 'D') << b.solution;
    // The option of that letter is the open variant's answer.
    const std::string line = "\n" + std::string(1, letter) + ". " + a.solution;
    EXPECT_NE(b.problem.find(line), std::string::npos) << b.problem;
    EXPECT_NE(b.problem.find("\nD. "), std::string::npos) << b.problem;
    EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, std::string(1, letter),
                                     b.solution),
                     1.0);
  }
}

TEST(SyntheticTask, CreateRegistersACustomDatasetName) {
  TaskOptions o;
  o.dataset = "task_test_synth";
  ASSERT_FALSE(accuracy_rule_for(o.dataset).ok());
  auto t = SyntheticTask::create(o);
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(*accuracy_rule_for(o.dataset), AccuracyRule::kShortAnswer);
  EXPECT_EQ(t->get(0).dataset, "task_test_synth");
}

TEST(SyntheticTask, RejectsDatasetsWithOtherRulesAndBadOptions) {
  TaskOptions o;
  o.dataset = "docvqa";
  auto r = SyntheticTask::create(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("docvqa"), std::string::npos) << r.error();
  EXPECT_THROW(SyntheticTask{o}, std::invalid_argument);

  TaskOptions big;
  big.max_glyph_px = 100;  // cannot fit in 256 / 4
  auto e = SyntheticTask::validate(big);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("task.max_glyph_px"), std::string::npos) << e.message();
  TaskOptions neg;
  neg.distractors = -1;
  EXPECT_NE(SyntheticTask::validate(neg).message().find("task.distractors"), std::string::npos);
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
    for (uint64_t i = 0; i < 10; ++i) {
      const Sample s = t->get(i);
      const Box& b = s.bboxs[0];
      EXPECT_GE(b.x1, 0);
      EXPECT_LE(b.x2, w);
      EXPECT_GE(b.y1, 0);
      EXPECT_LE(b.y2, h);
      const cv::Mat g = grey(s.image(to_rect(b)));
      EXPECT_GE(max_deviation(g, median(g)), 60) << w << "x" << h << " index " << i;
    }
  }
}

// ---- JSON records ----------------------------------------------------------

TEST(Record, WritesTheReferenceSchemaAndReadsItBack) {
  SyntheticTask t(TaskOptions{});
  const Sample s = t.get(11);
  const nlohmann::json j = to_record(s);
  for (const char* key :
       {"image", "width", "height", "bboxs", "dataset", "problem", "solution", "problem_id"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["problem_id"], 11);
  EXPECT_EQ(j["dataset"], "synth");
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

}  // namespace
}  // namespace gr1
