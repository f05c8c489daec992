// Run pictures (common/pictures.h) and the learner's conversion of
// trajectories into gallery items (learner/run_pictures.h).
#include "common/pictures.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/task.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "learner/run_pictures.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class PicturesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("gr1-pictures-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

bool near_colour(const cv::Vec3b& p, const cv::Scalar& c, int tol = 12) {
  for (int k = 0; k < 3; ++k)
    if (std::abs(int(p[k]) - int(c[k])) > tol) return false;
  return true;
}

bool same_colour(const cv::Vec3b& p, const cv::Scalar& c) { return near_colour(p, c, 0); }

// Rows in column x, between y0 and y1 (exclusive), whose pixel is near `c`.
std::vector<int> rows_with(const cv::Mat& img, int x, int y0, int y1, const cv::Scalar& c) {
  std::vector<int> out;
  for (int y = y0; y < y1; ++y)
    if (near_colour(img.at<cv::Vec3b>(y, x), c)) out.push_back(y);
  return out;
}

int count_in(const cv::Mat& img, const cv::Rect& r, const cv::Scalar& c, int tol = 12) {
  int n = 0;
  for (int y = r.y; y < r.y + r.height; ++y)
    for (int x = r.x; x < r.x + r.width; ++x) n += near_colour(img.at<cv::Vec3b>(y, x), c, tol);
  return n;
}

nlohmann::json row(int step, double format, double acc, nlohmann::json tokens, nlohmann::json box) {
  nlohmann::json m;
  m["step"] = step;
  m["format_reward_mean"] = format;
  m["accuracy_reward_mean"] = acc;
  if (!tokens.is_null()) m["policy_tokens_mean"] = tokens;
  m["box_score_mean"] = box;
  return m;
}

// ---- read_metrics_jsonl -----------------------------------------------------------

TEST_F(PicturesTest, ReadMetricsSkipsAndCountsBadLines) {
  {
    std::ofstream out(path("metrics.jsonl"));
    out << R"({"step": 1, "accuracy_reward_mean": 0.5})"
        << "\n"
        << "{not json\n"  // bad
        << "\n"           // blank: ignored, not counted
        << "[1, 2, 3]\n"  // valid JSON, not an object: bad
        << R"({"step": 2})"
        << "\n"
        << R"({"step": 3, "accuracy_re)";  // half-written last line: bad
  }
  int skipped = -1;
  auto rows = read_metrics_jsonl(path("metrics.jsonl"), &skipped);
  ASSERT_TRUE(rows.ok()) << rows.error();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0]["step"], 1);
  EXPECT_EQ((*rows)[1]["step"], 2);
  EXPECT_EQ(skipped, 3);
}

TEST_F(PicturesTest, ReadMetricsOfAMissingFileNamesIt) {
  auto rows = read_metrics_jsonl(path("absent.jsonl"));
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.error().find("absent.jsonl"), std::string::npos) << rows.error();
}

// ---- curves -------------------------------------------------------------------------

TEST(CurvesLayout, PlotRectsFollowTheDocumentedGrid) {
  EXPECT_EQ(curves_plot_rect(0), cv::Rect(80, 70, 490, 310));
  EXPECT_EQ(curves_plot_rect(1), cv::Rect(680, 70, 490, 310));
  EXPECT_EQ(curves_plot_rect(2), cv::Rect(80, 470, 490, 310));
  EXPECT_EQ(curves_plot_rect(3), cv::Rect(680, 470, 490, 310));
  EXPECT_EQ(curves_smoothing(3), 1);
  EXPECT_EQ(curves_smoothing(55), 5);
  EXPECT_EQ(curves_smoothing(5000), 50);
}

TEST_F(PicturesTest, CurvesPngDecodesAtTheDocumentedSize) {
  std::vector<nlohmann::json> rows;
  for (int s = 1; s <= 5; ++s) rows.push_back(row(s, 1.0, 0.5, 40.0, 0.5));
  ASSERT_TRUE(write_curves_png(rows, path("c.png")).ok());
  const cv::Mat img = cv::imread(path("c.png"));
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, kCurvesWidth);
  EXPECT_EQ(img.rows, kCurvesHeight);
  EXPECT_FALSE(fs::exists(path("c.png.tmp")));  // written via a temporary, then renamed
}

TEST_F(PicturesTest, ConstantSeriesIsDrawnAtTheRowItsValueMapsTo) {
  // Steps 1..20, accuracy 0.25 and format 2.0 throughout.
  std::vector<nlohmann::json> rows;
  for (int s = 1; s <= 20; ++s) rows.push_back(row(s, 2.0, 0.25, 40.0, nullptr));
  ASSERT_TRUE(write_curves_png(rows, path("c.png")).ok());
  const cv::Mat img = cv::imread(path("c.png"));
  ASSERT_FALSE(img.empty());

  // Accuracy panel: plot (680, 70, 490 x 310), y range [0, 1].
  // row(0.25) = 70 + round(0.75 * 309) = 70 + 232 = 302;
  // step 10 -> column 680 + round(9 / 19 * 489) = 680 + 232 = 912.
  const auto acc = rows_with(img, 912, 70, 380, curves_colour(1));
  ASSERT_FALSE(acc.empty());
  // The thick line is centred on that row (OpenCV's anti-aliased 3-pixel
  // line covers 5 rows fully) and is not smeared further.
  EXPECT_EQ(acc.front() + acc.back(), 2 * 302) << acc.front() << ".." << acc.back();
  EXPECT_LE(acc.back() - acc.front(), 4);
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(302, 912), curves_colour(1)));

  // Format panel: plot (80, 70), y range [0, 2]: 2.0 is the top row, 70.
  // step 10 -> column 80 + 232 = 312.
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(70, 312), curves_colour(0)));

  // Box score is null everywhere: no purple in its plot area.
  EXPECT_EQ(count_in(img, curves_plot_rect(3), curves_colour(3)), 0);
  // Tokens are drawn (orange present) in theirs.
  EXPECT_GT(count_in(img, curves_plot_rect(2), curves_colour(2)), 400);
}

TEST_F(PicturesTest, NullValuesLeaveAGap) {
  // Box score 0.75 at steps 1-3 and 8-10, null at 4-7. Panel 3's plot is
  // (680, 470, 490 x 310): row(0.75) = 470 + round(0.25 * 309) = 547;
  // step s -> column 680 + round((s - 1) / 9 * 489).
  std::vector<nlohmann::json> rows;
  for (int s = 1; s <= 10; ++s)
    rows.push_back(row(s, 1.0, 0.5, 40.0,
                       (s >= 4 && s <= 7) ? nlohmann::json(nullptr) : nlohmann::json(0.75)));
  ASSERT_TRUE(write_curves_png(rows, path("c.png")).ok());
  const cv::Mat img = cv::imread(path("c.png"));
  ASSERT_FALSE(img.empty());
  const cv::Scalar purple = curves_colour(3);
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(547, 734), purple));   // step 2: 680 + 54
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(547, 1113), purple));  // step 9: 680 + 433
  // Steps 4 (843), 5.5 (925) and 7 (1005): inside the gap, nothing drawn.
  for (int x : {843, 925, 1005}) EXPECT_TRUE(rows_with(img, x, 470, 780, purple).empty()) << x;
}

TEST_F(PicturesTest, AutoRangeForTokensPadsTheData) {
  // Tokens 100..200 over steps 1..11: padded 8% -> [92, 208], tick step 20,
  // widened to [80, 220]. Panel 2's plot is (80, 470, 490 x 310):
  // row(200) = 470 + round(20 / 140 * 309) = 514 (step 11 -> column 569);
  // row(100) = 470 + round(120 / 140 * 309) = 735 (step 1 -> column 80).
  std::vector<nlohmann::json> rows;
  for (int s = 1; s <= 11; ++s) rows.push_back(row(s, 1.0, 0.5, 100.0 + 10 * (s - 1), nullptr));
  ASSERT_TRUE(write_curves_png(rows, path("c.png")).ok());
  const cv::Mat img = cv::imread(path("c.png"));
  ASSERT_FALSE(img.empty());
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(514, 569), curves_colour(2)));
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(735, 80), curves_colour(2)));
}

TEST_F(PicturesTest, CurvesErrorsNameTheProblem) {
  auto s = write_curves_png({}, path("c.png"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("step"), std::string::npos) << s.message();

  nlohmann::json no_step;
  no_step["accuracy_reward_mean"] = 1.0;
  s = write_curves_png({no_step, nlohmann::json("text")}, path("c.png"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("step"), std::string::npos) << s.message();

  const std::string bad = path("no/such/dir/c.png");
  s = write_curves_png({row(1, 1.0, 0.5, 40.0, 0.5)}, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no/such/dir/c.png"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(path("c.png")));
}

// ---- text helpers -------------------------------------------------------------------

TEST(AsciiForDrawing, ReplacesEachNonAsciiCharacterByOneQuestionMark) {
  EXPECT_EQ(ascii_for_drawing("h\xC3\xA9llo\t<b>\r\n"), "h?llo <b>\n");
  EXPECT_EQ(ascii_for_drawing("a\xF0\x9F\x98\x80z"), "a?z");  // 4-byte emoji
  EXPECT_EQ(ascii_for_drawing(std::string("x\x01y\x7f", 4)), "x?y?");
  EXPECT_EQ(ascii_for_drawing("\x80\x80"), "??");  // stray continuation bytes
}

TEST(WrapForDrawing, BreaksAtWordsNewlinesAndInsideLongWords) {
  int base = 0;
  const int w = cv::getTextSize("aaa bbb", cv::FONT_HERSHEY_SIMPLEX, 0.5, 1, &base).width;
  EXPECT_EQ(wrap_for_drawing("aaa bbb ccc", w, 0.5, 1),
            (std::vector<std::string>{"aaa bbb", "ccc"}));
  EXPECT_EQ(wrap_for_drawing("a\nb", 1000, 0.5, 1), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(wrap_for_drawing("", 1000, 0.5, 1).empty());

  const std::string word(200, 'x');
  const auto lines = wrap_for_drawing(word, 100, 0.5, 1);
  ASSERT_GT(lines.size(), 1u);
  std::string joined;
  for (const auto& l : lines) {
    EXPECT_LE(cv::getTextSize(l, cv::FONT_HERSHEY_SIMPLEX, 0.5, 1, &base).width, 100) << l;
    joined += l;
  }
  EXPECT_EQ(joined, word);
}

// ---- gallery ------------------------------------------------------------------------

// A 100 x 50 grey image with a red 5x5 block at the bottom-left and a blue
// region where turn 1's box is.
GalleryItem test_item() {
  GalleryItem it;
  it.image = cv::Mat(50, 100, CV_8UC3, cv::Scalar(128, 128, 128));
  it.image(cv::Rect(0, 45, 5, 5)).setTo(cv::Scalar(0, 0, 255));
  it.image(cv::Rect(10, 10, 50, 30)).setTo(cv::Scalar(255, 0, 0));
  it.title = "#1 synth";
  it.question = "What character is on the red circle?";
  it.turns = {"<think>look</think><box>[3,3,19,13]</box>",
              "<think>it is K</think>\n<answer>K</answer>"};
  it.boxes_orig = {Box{10, 10, 60, 40}, Box{70, 5, 95, 45}};
  it.evidence = {Box{20, 20, 40, 30}};
  it.answer = "K";
  it.truth = "K";
  it.accuracy = 1.0;
  return it;
}

TEST_F(PicturesTest, GalleryDrawsTheImageAndBoxesAtTheScaledPositions) {
  ASSERT_TRUE(write_gallery_png({test_item()}, path("g.png")).ok());
  const cv::Mat img = cv::imread(path("g.png"));
  ASSERT_FALSE(img.empty());
  // s = 320 / 100 = 3.2; the image's top-left is at (12, 40 + 12 = 52).
  // The red block (x 0-4, y 45-49) covers x 12..27, y 52 + 144 = 196..211.
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(204, 20), cv::Scalar(0, 0, 255)));
  // Turn 1's box [10,10,60,40] -> corners (12 + 32, 52 + 32) = (44, 84) and
  // (12 + 192, 52 + 128) = (204, 180): its left edge at x 44, top edge at y 84.
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(132, 44), gallery_turn_colour(0)));
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(84, 124), gallery_turn_colour(0)));
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(130, 204), gallery_turn_colour(0)));
  // Turn 2's box [70,5,95,45] -> (236, 68)-(316, 196): left edge x 236.
  EXPECT_TRUE(same_colour(img.at<cv::Vec3b>(130, 236), gallery_turn_colour(1)));
  // Evidence [20,20,40,30] -> (76, 116)-(140, 148), drawn 2 pixels outside:
  // a dashed top edge at y 114, both yellow and black along it, and the
  // evidence's own top row (y 116) left uncovered (the image's blue).
  const int yellow = count_in(img, cv::Rect(76, 114, 60, 1), kGalleryEvidence, 0);
  const int black = count_in(img, cv::Rect(76, 114, 60, 1), cv::Scalar(0, 0, 0), 0);
  EXPECT_GT(yellow, 15);
  EXPECT_GT(black, 15);
  EXPECT_EQ(count_in(img, cv::Rect(78, 116, 60, 1), cv::Scalar(255, 0, 0), 0), 60);
  // Turn 1's crop is its blue 50x30 region enlarged x3 to 150 x 90; nothing
  // else right of the image column is pure blue.
  EXPECT_EQ(
      count_in(img, cv::Rect(340, 40, img.cols - 340, img.rows - 40), cv::Scalar(255, 0, 0), 0),
      150 * 90);
}

TEST_F(PicturesTest, GalleryGrowsByOneRowPerItem) {
  ASSERT_TRUE(write_gallery_png({test_item()}, path("one.png")).ok());
  ASSERT_TRUE(write_gallery_png({test_item(), test_item()}, path("two.png")).ok());
  const cv::Mat one = cv::imread(path("one.png")), two = cv::imread(path("two.png"));
  ASSERT_FALSE(one.empty());
  ASSERT_FALSE(two.empty());
  const int row = one.rows - kGalleryHeader;
  EXPECT_GE(row, kGalleryImageSide + 2 * kGalleryPad);
  EXPECT_EQ(two.rows, kGalleryHeader + 2 * row);
  EXPECT_EQ(two.cols, one.cols);
}

TEST_F(PicturesTest, LongTurnsAreCappedAtTheLineLimit) {
  // Three turns of n one-word lines each; the text column decides the row
  // height for n >= 5, so a cap at 6 lines makes 6 and 50 equally tall.
  auto height_with = [&](int n) {
    GalleryItem it = test_item();
    std::string t;
    for (int i = 0; i < n; ++i) t += "line" + std::to_string(i) + "\n";
    t.pop_back();
    it.turns = {t, t, t};
    it.boxes_orig = {std::nullopt, std::nullopt, std::nullopt};
    EXPECT_TRUE(write_gallery_png({it}, path("g.png")).ok());
    return cv::imread(path("g.png")).rows;
  };
  EXPECT_EQ(kGalleryMaxLinesPerTurn, 6);
  const int five = height_with(5), six = height_with(6), fifty = height_with(50);
  EXPECT_LT(five, six);
  EXPECT_EQ(six, fifty);
}

TEST_F(PicturesTest, GalleryErrorsNameTheProblem) {
  auto s = write_gallery_png({}, path("g.png"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no items"), std::string::npos) << s.message();

  GalleryItem empty = test_item();
  empty.image = cv::Mat();
  s = write_gallery_png({test_item(), empty}, path("g.png"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("gallery item 1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.message();

  GalleryItem floats = test_item();
  floats.image = cv::Mat(10, 10, CV_32FC3, cv::Scalar(0.5, 0.5, 0.5));
  s = write_gallery_png({floats}, path("g.png"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("8-bit"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(path("g.png")));

  s = write_gallery_png({test_item()}, path("missing/g.png"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing/g.png"), std::string::npos) << s.message();
}

TEST_F(PicturesTest, NonAsciiAndGreyImagesAreDrawn) {
  GalleryItem it = test_item();
  cv::cvtColor(it.image, it.image, cv::COLOR_BGR2GRAY);
  it.title =
      "Gr\xC3\xB6\xC3\x9F"
      "e \xF0\x9F\x98\x80";
  it.question = "\xE2\x80\x9Cquoted\xE2\x80\x9D?\r\n\x01";
  it.turns = {"<think>caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87</think>\n\n<box>[1,2,3,4]</box>", [] {
                static const char kRaw[] = "<answer>\x00\xFF</answer>";
                return std::string(kRaw, sizeof kRaw - 1);
              }()};
  it.answer = "\xC3\xA9";
  it.accuracy = 0.6;
  ASSERT_TRUE(write_gallery_png({it}, path("g.png")).ok());
  EXPECT_FALSE(cv::imread(path("g.png")).empty());
}

// ---- learner conversion (learner/run_pictures.h) -------------------------------------

// A trajectory whose assistant turns are exactly `turns`, with a stand-in
// prompt before each (the conversion reads only turn spans and image refs).
Trajectory trajectory_of(const std::vector<std::string>& turns) {
  Tokenizer tok;
  Trajectory t;
  for (const auto& text : turns) {
    for (int32_t id : tok.encode("<|user|>q<|assistant|>")) {
      t.tokens.push_back(id);
      t.policy_mask.push_back(0);
    }
    TurnSpan span;
    span.begin = static_cast<int32_t>(t.tokens.size());
    for (int32_t id : tok.encode(text)) {
      t.tokens.push_back(id);
      t.policy_mask.push_back(1);
    }
    t.tokens.push_back(Tokenizer::kEnd);
    t.policy_mask.push_back(1);
    span.end = static_cast<int32_t>(t.tokens.size());
    t.turns.push_back(span);
    t.boxes_shown.push_back(extract_box(text));
  }
  t.logprobs.assign(t.tokens.size(), 0.f);
  t.images.push_back(ImageRef{false, {}});
  return t;
}

Sample sample_256() {
  Sample s;
  s.width = 256;
  s.height = 256;
  s.image = cv::Mat(256, 256, CV_8UC3, cv::Scalar(90, 90, 90));
  s.bboxs = {Box{32, 32, 64, 64}};
  s.dataset = "synth";  // short answer
  s.problem = "What character is on the red circle?";
  s.solution = "K";
  return s;
}

TEST(GalleryItemFromTrajectory, TakesCropBoxesFromImageBlocksAndReadsTheAnswer) {
  Trajectory t = trajectory_of(
      {"<think>look</think><box>[8,8,16,16]</box>", "<think>it is K</think><answer>K</answer>"});
  // The rollout widened turn 1's box [32,32,64,64] to this crop.
  t.images.push_back(ImageRef{true, Box{28, 28, 68, 68}});
  auto it = gallery_item(t, sample_256(), 64, "title");
  ASSERT_TRUE(it.ok()) << it.error();
  ASSERT_EQ(it->turns.size(), 2u);
  EXPECT_EQ(it->turns[1], "<think>it is K</think><answer>K</answer>");
  ASSERT_EQ(it->boxes_orig.size(), 2u);
  ASSERT_TRUE(it->boxes_orig[0].has_value());
  EXPECT_EQ(*it->boxes_orig[0], (Box{28, 28, 68, 68}));
  EXPECT_FALSE(it->boxes_orig[1].has_value());
  EXPECT_EQ(it->answer, "K");
  EXPECT_EQ(it->truth, "K");
  EXPECT_DOUBLE_EQ(it->accuracy, 1.0);
  ASSERT_EQ(it->evidence.size(), 1u);
  EXPECT_EQ(it->title, "title");
  EXPECT_EQ(it->image.cols, 256);
}

TEST(GalleryItemFromTrajectory, FinalTurnBoxIsMappedAndAnUnusableBoxIsNone) {
  // Turn 1's box was unusable (the full image was shown again); turn 2, the
  // last, wrote [16,16,32,32] in the 64x64 frame: x4 -> [64,64,128,128].
  Trajectory t = trajectory_of(
      {"<think>a</think><box>[5,5,5,5]</box>", "<think>b</think><box>[16,16,32,32]</box>"});
  t.images.push_back(ImageRef{false, {}});
  auto it = gallery_item(t, sample_256(), 64, "t");
  ASSERT_TRUE(it.ok()) << it.error();
  EXPECT_FALSE(it->boxes_orig[0].has_value());
  ASSERT_TRUE(it->boxes_orig[1].has_value());
  EXPECT_EQ(*it->boxes_orig[1], (Box{64, 64, 128, 128}));
  EXPECT_EQ(it->answer, "");
  EXPECT_DOUBLE_EQ(it->accuracy, 0.0);
}

TEST(GalleryItemFromTrajectory, UnknownDatasetIsAnError) {
  Sample s = sample_256();
  s.dataset = "no_such_dataset";
  auto it = gallery_item(trajectory_of({"<think>x</think><answer>K</answer>"}), s, 64, "t");
  ASSERT_FALSE(it.ok());
  EXPECT_NE(it.error().find("no_such_dataset"), std::string::npos) << it.error();
}

TrajectoryGroup group_with_turns(uint64_t prompt_id, const std::vector<int>& turns) {
  TrajectoryGroup g;
  g.prompt_id = prompt_id;
  for (int n : turns) {
    Trajectory t;
    t.turns.resize(n);
    g.trajectories.push_back(t);
  }
  return g;
}

TEST(PickGalleryTrajectories, OnePerQuestionAlternatingRightAndWrong) {
  const std::vector<TrajectoryGroup> groups = {
      group_with_turns(5, {1, 1}),     // 0: right j=1, wrong j=0
      group_with_turns(5, {3, 3}),     // 1: same question again: skipped
      group_with_turns(6, {1, 2, 3}),  // 2: right j=0; wrong j=1 (2 turns), j=2 (3 turns)
      group_with_turns(7, {2, 2}),     // 3: wrong only; tie -> first
      group_with_turns(8, {1, 2}),     // 4: right only; more turns -> j=1
      group_with_turns(9, {1}),        // 5: beyond max_items
  };
  const std::vector<std::vector<double>> acc = {{0, 1}, {1, 1}, {1, 0, 0.6}, {0, 0}, {1, 1}, {1}};
  // right <= wrong -> right (q5 j=1); 1 > 0 -> not right (q6 j=2, most
  // turns); 1 <= 1 -> right, q7 has none -> wrong (q7 j=0); 1 <= 2 -> right
  // (q8 j=1).
  const auto picks = pick_gallery_trajectories(groups, acc, 4);
  const std::vector<std::pair<size_t, size_t>> want = {{0, 1}, {2, 2}, {3, 0}, {4, 1}};
  EXPECT_EQ(picks, want);
  EXPECT_EQ(pick_gallery_trajectories(groups, acc, 1).size(), 1u);
}

TEST_F(PicturesTest, LearnerHooksWriteThePngsAndReportFailures) {
  // No metrics.jsonl yet: a warning and false, no exception.
  EXPECT_FALSE(write_run_curves(dir_.string()));
  {
    std::ofstream out(path("metrics.jsonl"));
    for (int s = 1; s <= 3; ++s) out << row(s, 1.5, 0.5, 30.0, 0.4).dump() << "\n";
  }
  EXPECT_TRUE(write_run_curves(dir_.string()));
  EXPECT_FALSE(cv::imread(path("curves.png")).empty());

  TaskOptions o;
  o.image_width = 128;
  o.image_height = 128;
  o.min_glyph_px = 10;
  o.max_glyph_px = 12;
  auto task = SyntheticTask::create(o);
  ASSERT_TRUE(task.ok()) << task.error();
  std::vector<TrajectoryGroup> groups;
  for (uint64_t q : {3u, 4u}) {
    TrajectoryGroup g;
    g.prompt_id = q;
    g.trajectories.push_back(trajectory_of(
        {"<think>x</think><box>[4,4,20,20]</box>", "<think>y</think><answer>Z</answer>"}));
    g.trajectories.back().images.push_back(ImageRef{true, Box{16, 16, 80, 80}});
    groups.push_back(g);
  }
  EXPECT_TRUE(write_run_gallery(dir_.string(), groups, *task, 32));
  const cv::Mat g = cv::imread(path("gallery.png"));
  ASSERT_FALSE(g.empty());
  EXPECT_GE(g.rows, kGalleryHeader + 2 * (kGalleryImageSide + 2 * kGalleryPad));
  // An unwritable run directory: false, no exception.
  EXPECT_FALSE(write_run_gallery(path("absent/dir"), groups, *task, 32));
}

}  // namespace
}  // namespace gr1
