// The reference-format JSON-lines loader (common/dataset.h, common/record.h)
// and `gr1 data check`. Expected values are computed by hand (derivations in
// the comments) or counted once from the fixture file.
#include "common/dataset.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/record.h"
#include "tests/test_util.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSampleFile =
    std::string(GR1_SOURCE_DIR) + "/tests/data/viscot_eval_sample.jsonl";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("gr1_dataset_test_" + std::to_string(::getpid()) + "_" +
                                         info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream out(file(name), std::ios::binary);
    out << bytes;
    return file(name);
  }

 private:
  fs::path path_;
};

// A valid record of the reference schema; tests change one field at a time.
json record(uint64_t id, const std::string& dataset = "gqa", const std::string& image = "img.png") {
  return json{{"image", image},          {"width", 500},
              {"height", 333},           {"bboxs", json::parse("[[303, 96, 486, 289]]")},
              {"dataset", dataset},      {"split", "val"},
              {"problem", "Which one?"}, {"solution", "<answer>A</answer>"},
              {"problem_id", id}};
}

LoadReport load_string(const std::string& text, const std::string& base_dir = "",
                       const LoadOptions& opts = {}) {
  std::istringstream in(text);
  return load_jsonl(in, base_dir, opts);
}

// ---- The real sample -------------------------------------------------------

TEST(LoadJsonl, RealVisCoTSampleLoadsFullyValidWithPerDatasetCounts) {
  Result<LoadReport> r = load_jsonl_file(kSampleFile, LoadOptions{});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->lines, 26);
  EXPECT_EQ(r->samples.size(), 26u);
  EXPECT_TRUE(r->errors.empty()) << report_json(*r).dump(1);
  // Counted once with a script over the file: 13 datasets, 2 lines each.
  const std::map<std::string, int64_t> expected = {{"cub", 2},
                                                   {"docvqa", 2},
                                                   {"dude", 2},
                                                   {"emotic", 2},
                                                   {"flickr30k", 2},
                                                   {"gqa", 2},
                                                   {"infographicsvqa", 2},
                                                   {"openimages", 2},
                                                   {"sroie", 2},
                                                   {"textcap", 2},
                                                   {"textvqa", 2},
                                                   {"v7w", 2},
                                                   {"vsr", 2}};
  EXPECT_EQ(r->per_dataset, expected);

  // Line 1: flickr30k 500x333, no input_* -> smart_resize: round(500/28)=18 -> 504,
  // round(333/28)=12 -> 336.
  const Sample& first = r->samples[0];
  EXPECT_EQ(
      first.image_path,
      "/home/meng/data/Visual-CoT/cot_image_data/flickr30k/1021439420.jpg");  // absolute: kept
  EXPECT_EQ(first.width, 500);
  EXPECT_EQ(first.height, 333);
  EXPECT_EQ(first.shown_width, 504);
  EXPECT_EQ(first.shown_height, 336);
  EXPECT_EQ(first.split, "val");
  EXPECT_EQ(first.dataset, "flickr30k");
  EXPECT_EQ(first.problem_id, 2u);
  EXPECT_EQ(first.bboxs, (std::vector<Box>{Box{303, 96, 486, 289}}));
  EXPECT_TRUE(first.image.empty());

  // Line 10: docvqa 2156x1695, evidence [2112,1623,2142,1654] near the corner.
  // round(2156/28)=77 -> 2156; 1695/28=60.54 -> 61 -> 1708; 2156*1708 < max_pixels.
  const Sample& doc = r->samples[9];
  EXPECT_EQ(doc.dataset, "docvqa");
  EXPECT_EQ(doc.shown_width, 2156);
  EXPECT_EQ(doc.shown_height, 1708);

  const json j = report_json(*r);
  EXPECT_EQ(j["lines"], 26);
  EXPECT_EQ(j["valid"], 26);
  EXPECT_EQ(j["per_dataset"]["textcap"], 2);
  EXPECT_EQ(j["errors"], json::array());
}

// ---- Bad lines -------------------------------------------------------------

TEST(LoadJsonl, EveryBadLineIsReportedWithItsPhysicalLineNumberAndSkipped) {
  json missing = record(10);
  missing.erase("solution");
  json ill_typed = record(11);
  ill_typed["width"] = "500";
  json negative = record(12);
  negative["height"] = -3;
  json negative_box = record(14);
  negative_box["bboxs"] = json::parse("[[-1, 0, 10, 10]]");
  json given_size = record(3);
  given_size["width"] = 640;
  given_size["height"] = 480;
  given_size["bboxs"] = json::parse("[[392, 316, 467, 414]]");
  given_size["input_width"] = 640;   // smart_resize would give 644x476:
  given_size["input_height"] = 480;  // the record's values win
  // Valid JSON with an extra key nested 100000 deep: extra keys are ignored,
  // and neither parsing nor destroying it may exhaust the stack.
  json deep = record(4);
  const std::string deep_line = deep.dump().substr(0, deep.dump().size() - 1) +
                                ", \"x\": " + std::string(100000, '[') + std::string(100000, ']') +
                                "}";

  const std::vector<std::string> physical = {
      record(1).dump(),                                // 1 valid
      "",                                              // 2 blank
      "   \t",                                         // 3 blank
      "{not json",                                     // 4
      "[1, 2, 3]",                                     // 5 not an object
      missing.dump(),                                  // 6
      ill_typed.dump(),                                // 7
      negative.dump(),                                 // 8
      record(13, "nope").dump(),                       // 9 unknown dataset
      negative_box.dump(),                             // 10
      record(2, "vsr").dump() + "\r",                  // 11 valid, CRLF
      std::string("\x00\xff\xfe\x01garbage", 11),      // 12 binary
      "{\"image\": \"\xff\xfe\", \"width\": 1}",       // 13 invalid UTF-8
      "{\"problem\": \"" + std::string(4 << 20, 'a'),  // 14 4 MiB, unterminated
      deep_line,                                       // 15 valid
      "1e400",                                         // 16 overflows a double
      given_size.dump(),                               // 17 valid, no final '\n'
  };
  std::string text;
  for (size_t i = 0; i < physical.size(); ++i) {
    text += physical[i];
    if (i + 1 < physical.size()) text += "\n";
  }

  const LoadReport r = load_string(text);
  EXPECT_EQ(r.lines, 15);  // 17 physical lines, 2 blank
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.samples[0].problem_id, 1u);
  EXPECT_EQ(r.samples[1].problem_id, 2u);
  EXPECT_EQ(r.samples[1].dataset, "vsr");
  EXPECT_EQ(r.samples[2].problem_id, 4u);
  EXPECT_EQ(r.samples[3].problem_id, 3u);
  EXPECT_EQ(r.samples[3].shown_width, 640);
  EXPECT_EQ(r.samples[3].shown_height, 480);
  EXPECT_EQ(r.per_dataset, (std::map<std::string, int64_t>{{"gqa", 3}, {"vsr", 1}}));

  struct Expected {
    int64_t line;
    std::vector<std::string> parts;  // each must occur in the error text
  };
  const std::vector<Expected> expected = {
      {4, {"not JSON"}},
      {5, {"not a JSON object", "array"}},
      {6, {"record.solution", "missing"}},
      {7, {"record.width", "not an integer"}},
      {8, {"record.height", "-3"}},
      {9, {"record.dataset", "\"nope\""}},
      {10, {"record.bboxs[0]", "negative"}},
      {12, {"not JSON"}},
      {13, {"not JSON"}},
      {14, {"not JSON"}},
      {16, {"not JSON"}},
  };
  ASSERT_EQ(r.errors.size(), expected.size()) << report_json(r).dump(1);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.errors[i].line, expected[i].line) << r.errors[i].error;
    for (const std::string& part : expected[i].parts) {
      EXPECT_TRUE(contains(r.errors[i].error, part))
          << "line " << expected[i].line << ": " << r.errors[i].error << " lacks " << part;
    }
  }
  // The 4 MiB line's error quotes a bounded part of it.
  EXPECT_LT(r.errors[9].error.size(), 1000u);
  // Binary input must not make the report unprintable (dump throws on invalid UTF-8).
  std::string dumped;
  ASSERT_NO_THROW(dumped = report_json(r).dump());
  const json back = json::parse(dumped);
  EXPECT_EQ(back["lines"], 15);
  EXPECT_EQ(back["valid"], 4);
  EXPECT_EQ(back["errors"].size(), 11u);
  EXPECT_EQ(back["errors"][0]["line"], 4);
  EXPECT_EQ(back["errors"][10]["line"], 16);
}

TEST(LoadJsonl, EmptyAndBlankOnlyInputHasNoLines) {
  const LoadReport r = load_string("\n  \r\n\t\n");
  EXPECT_EQ(r.lines, 0);
  EXPECT_TRUE(r.samples.empty());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(report_json(r).dump(), R"({"errors":[],"lines":0,"per_dataset":{},"valid":0})");
}

TEST(LoadJsonl, MissingFileIsAnErrorNamingIt) {
  Result<LoadReport> r = load_jsonl_file("/nonexistent/gr1/data.jsonl", LoadOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), "/nonexistent/gr1/data.jsonl")) << r.error();
  TempDir dir;
  Result<LoadReport> d = load_jsonl_file(dir.str(), LoadOptions{});
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.error(), "directory")) << d.error();
}

// ---- Image paths -----------------------------------------------------------

TEST(LoadJsonl, PrefixRewriteFirstMatchWinsThenRelativePathsResolveAgainstBaseDir) {
  LoadOptions opts;
  opts.prefix_rewrites = {{"/home/meng/data/Visual-CoT/", "/mnt/vc/"},
                          {"/home/", "/other/"},
                          {"s3://bucket/", "imgs/"}};
  const std::string text =
      record(1, "gqa", "/home/meng/data/Visual-CoT/cot_image_data/gqa/1.jpg").dump() + "\n" +
      record(2, "gqa", "/home/x/2.jpg").dump() + "\n" + record(3, "gqa", "/srv/3.jpg").dump() +
      "\n" + record(4, "gqa", "s3://bucket/4.jpg").dump() + "\n" +
      record(5, "gqa", "sub/5.jpg").dump() + "\n";
  const LoadReport r = load_string(text, "/data/set", opts);
  ASSERT_EQ(r.samples.size(), 5u) << report_json(r).dump(1);
  EXPECT_EQ(r.samples[0].image_path, "/mnt/vc/cot_image_data/gqa/1.jpg");  // not /other/meng/...
  EXPECT_EQ(r.samples[1].image_path, "/other/x/2.jpg");
  EXPECT_EQ(r.samples[2].image_path, "/srv/3.jpg");            // no rule matches
  EXPECT_EQ(r.samples[3].image_path, "/data/set/imgs/4.jpg");  // rewritten, then relative
  EXPECT_EQ(r.samples[4].image_path, "/data/set/sub/5.jpg");

  // No base directory: relative paths stay as written.
  const LoadReport plain = load_string(record(6, "gqa", "sub/6.jpg").dump(), "", LoadOptions{});
  ASSERT_EQ(plain.samples.size(), 1u);
  EXPECT_EQ(plain.samples[0].image_path, "sub/6.jpg");
}

TEST(LoadJsonl, FileLoaderResolvesRelativePathsAgainstTheFilesDirectory) {
  TempDir dir;
  const std::string path = dir.write("data.jsonl", record(1, "gqa", "images/a.png").dump() + "\n");
  Result<LoadReport> r = load_jsonl_file(path, LoadOptions{});
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->samples.size(), 1u);
  EXPECT_EQ(r->samples[0].image_path, dir.file("images/a.png"));
}

// ---- smart_resize ----------------------------------------------------------

std::pair<int, int> shown(int w, int h, const LoadOptions& opts = {}) {
  Result<std::pair<int, int>> r = reference_shown_size(w, h, opts);
  EXPECT_TRUE(r.ok()) << w << "x" << h << ": " << r.error();
  return r.ok() ? *r : std::make_pair(-1, -1);
}

TEST(ReferenceShownSize, RoundsEachSideToTheFactor) {
  // 500/28 = 17.86 -> 18 -> 504; 333/28 = 11.89 -> 12 -> 336.
  EXPECT_EQ(shown(500, 333), std::make_pair(504, 336));
  // 969/28 = 34.6 -> 35 -> 980; 2221/28 = 79.3 -> 79 -> 2212.
  EXPECT_EQ(shown(969, 2221), std::make_pair(980, 2212));
}

TEST(ReferenceShownSize, TiesRoundHalfToEvenLikePython) {
  // 70/28 = 2.5 -> 2 (half-up would give 3 -> 84); 98/28 = 3.5 -> 4 -> 112.
  // 56*112 = 6272 >= min_pixels 3136, so no rescale.
  EXPECT_EQ(shown(70, 98), std::make_pair(56, 112));
  // 42/28 = 1.5 -> 2 -> 56; 70 -> 56; 56*56 = 3136 = min_pixels: not below it.
  EXPECT_EQ(shown(42, 70), std::make_pair(56, 56));
}

TEST(ReferenceShownSize, SmallImagesAreScaledUpToMinPixels) {
  // 20x50: 20/28 -> 0 -> max(28, 0) = 28; 50/28 = 1.79 -> 56; 28*56 = 1568 < 3136.
  // beta = sqrt(3136/1000) = 1.7709; ceil(20*beta/28 = 1.26) = 2 -> 56;
  // ceil(50*beta/28 = 3.16) = 4 -> 112.
  EXPECT_EQ(shown(20, 50), std::make_pair(56, 112));
  // 10x10: beta = sqrt(3136/100) = 5.6, 10*5.6/28 = 2.0 exactly in doubles -> 56.
  EXPECT_EQ(shown(10, 10), std::make_pair(56, 56));
}

TEST(ReferenceShownSize, LargeImagesAreScaledDownToMaxPixels) {
  // 5000x3000: 179*28 = 5012, 107*28 = 2996; 5012*2996 = 15015952 > 12845056.
  // beta = sqrt(15e6/12845056) = 1.08063; floor(5000/beta/28 = 165.25) = 165 -> 4620;
  // floor(3000/beta/28 = 99.15) = 99 -> 2772.
  EXPECT_EQ(shown(5000, 3000), std::make_pair(4620, 2772));
  // 4000x4000: beta = 4000/3584 since max_pixels = 3584^2; 4000/beta/28 = 128.
  EXPECT_EQ(shown(4000, 4000), std::make_pair(3584, 3584));
}

TEST(ReferenceShownSize, AspectRatioOver200AndBadSizesAreErrors) {
  // 200:1 is allowed: 1 -> 28, 200/28 = 7.14 -> 196; 28*196 = 5488.
  EXPECT_EQ(shown(1, 200), std::make_pair(28, 196));
  Result<std::pair<int, int>> r = reference_shown_size(1, 201, LoadOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), "1x201") && contains(r.error(), "aspect ratio")) << r.error();
  Result<std::pair<int, int>> zero = reference_shown_size(0, 5, LoadOptions{});
  ASSERT_FALSE(zero.ok());
  EXPECT_TRUE(contains(zero.error(), "0x5")) << zero.error();
  LoadOptions bad;
  bad.resize_factor = 0;
  EXPECT_FALSE(reference_shown_size(10, 10, bad).ok());
}

TEST(ReferenceShownSize, UsesTheConfiguredFactorAndLimits) {
  LoadOptions o;
  o.resize_factor = 14;
  o.min_pixels = 14 * 14;
  o.max_pixels = 100 * 14 * 14;  // 19600
  // 500x333 with f = 14: 36*14 = 504, 24*14 = 336 (333/14 = 23.8); 169344 > 19600.
  // beta = sqrt(166500/19600) = 2.9146; floor(500/beta/14 = 12.25) = 12 -> 168;
  // floor(333/beta/14 = 8.16) = 8 -> 112.
  EXPECT_EQ(shown(500, 333, o), std::make_pair(168, 112));
}

TEST(LoadJsonl, ShownSizeErrorsMakeTheLineBad) {
  json thin = record(1);
  thin["width"] = 1;
  thin["height"] = 300;
  thin["bboxs"] = json::array();
  const LoadReport r = load_string(thin.dump());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_TRUE(contains(r.errors[0].error, "1x300")) << r.errors[0].error;
  // The same record with input_* given does not need smart_resize.
  thin["input_width"] = 28;
  thin["input_height"] = 300;
  EXPECT_TRUE(load_string(thin.dump()).errors.empty());
}

// ---- Images ------------------------------------------------------------------

class CheckImages : public ::testing::Test {
 protected:
  void SetUp() override {
    cv::Mat img(20, 30, CV_8UC3, cv::Scalar(10, 20, 30));  // 30 wide, 20 high, BGR
    ASSERT_TRUE(cv::imwrite(dir_.file("good.png"), img));
    dir_.write("corrupt.png", "\x89PNG\r\n\x1a\n this is not a png body");
    auto rec = [](uint64_t id, const std::string& image, int w, int h) {
      json j = record(id, "gqa", image);
      j["width"] = w;
      j["height"] = h;
      j["bboxs"] = json::parse("[[1, 1, 5, 5]]");
      return j.dump() + "\n";
    };
    text_ = rec(1, "good.png", 30, 20) + rec(2, "missing.png", 30, 20) +
            rec(3, "corrupt.png", 30, 20) + rec(4, "good.png", 31, 20);
    file_ = dir_.write("data.jsonl", text_);
  }
  TempDir dir_;
  std::string text_, file_;
};

TEST_F(CheckImages, WithoutCheckingImagesAreNotOpened) {
  const LoadReport r = load_string(text_, dir_.str());
  EXPECT_EQ(r.samples.size(), 4u);
  EXPECT_TRUE(r.errors.empty());
}

TEST_F(CheckImages, MissingCorruptAndWrongSizeImagesAreBadLines) {
  LoadOptions opts;
  opts.check_images = true;
  const LoadReport r = load_string(text_, dir_.str(), opts);
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(r.samples[0].problem_id, 1u);
  EXPECT_TRUE(r.samples[0].image.empty());  // checked, not kept
  ASSERT_EQ(r.errors.size(), 3u) << report_json(r).dump(1);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_TRUE(contains(r.errors[0].error, dir_.file("missing.png")) &&
              contains(r.errors[0].error, "not found"))
      << r.errors[0].error;
  EXPECT_EQ(r.errors[1].line, 3);
  EXPECT_TRUE(contains(r.errors[1].error, dir_.file("corrupt.png")) &&
              contains(r.errors[1].error, "decoded"))
      << r.errors[1].error;
  EXPECT_EQ(r.errors[2].line, 4);
  EXPECT_TRUE(contains(r.errors[2].error, "30x20") && contains(r.errors[2].error, "31x20"))
      << r.errors[2].error;
}

TEST_F(CheckImages, KeepImagesKeepsTheDecodedBgrPixels) {
  LoadOptions opts;
  opts.keep_images = true;  // implies decoding
  const LoadReport r = load_string(text_, dir_.str(), opts);
  ASSERT_EQ(r.samples.size(), 1u);
  const cv::Mat& img = r.samples[0].image;
  ASSERT_EQ(img.type(), CV_8UC3);
  EXPECT_EQ(img.cols, 30);
  EXPECT_EQ(img.rows, 20);
  EXPECT_EQ(img.at<cv::Vec3b>(19, 29), cv::Vec3b(10, 20, 30));
  EXPECT_EQ(r.errors.size(), 3u);
}

TEST_F(CheckImages, LoadSampleImageNamesThePath) {
  Sample s;
  s.image_path = dir_.file("good.png");
  s.width = 30;
  s.height = 20;
  Result<cv::Mat> ok = load_sample_image(s);
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->size(), cv::Size(30, 20));
  s.image_path = dir_.str();  // a directory
  Result<cv::Mat> d = load_sample_image(s);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.error(), dir_.str())) << d.error();
}

// ---- Records -------------------------------------------------------------------

TEST(Record, SplitAndInputSizeRoundTrip) {
  Sample s;
  s.problem_id = 7;
  s.image_path = "/x/a.jpg";
  s.width = 500;
  s.height = 333;
  s.shown_width = 504;
  s.shown_height = 336;
  s.bboxs = {Box{1, 2, 3.5f, 4}};
  s.dataset = "vsr";
  s.split = "train";
  s.problem = "q";
  s.solution = "dog";
  const json j = to_record(s);
  EXPECT_EQ(j["split"], "train");
  EXPECT_EQ(j["input_width"], 504);
  EXPECT_EQ(j["input_height"], 336);
  EXPECT_EQ(j["bboxs"], json::parse("[[1, 2, 3.5, 4]]"));
  Result<Sample> back = sample_from_record(json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->split, "train");
  EXPECT_EQ(back->shown_width, 504);
  EXPECT_EQ(back->shown_height, 336);
  EXPECT_EQ(back->bboxs, s.bboxs);
  EXPECT_EQ(back->problem_id, 7u);

  // Unset optional fields are not written.
  s.split.clear();
  s.shown_width = s.shown_height = 0;
  const json plain = to_record(s);
  EXPECT_FALSE(plain.contains("split"));
  EXPECT_FALSE(plain.contains("input_width"));
  EXPECT_FALSE(plain.contains("input_height"));
  Result<Sample> back2 = sample_from_record(plain);
  ASSERT_TRUE(back2.ok()) << back2.error();
  EXPECT_EQ(back2->shown_width, 0);
  EXPECT_EQ(back2->split, "");
}

TEST(Record, BadOptionalAndSizeFieldsAreErrorsNamingTheField) {
  struct Case {
    std::string key;
    json value;
    std::string named;  // must occur in the error
  };
  const std::vector<Case> cases = {
      {"width", -1, "record.width"},
      {"width", 0, "record.width"},
      {"height", 2.5, "record.height"},
      {"split", 3, "record.split"},
      {"input_width", 0, "record.input_width"},
      {"input_width", "504", "record.input_width"},
      {"input_height", -336, "record.input_height"},
      {"image", "", "record.image"},
      {"problem_id", -1, "record.problem_id"},
      {"problem_id", "7", "record.problem_id"},
  };
  for (const Case& c : cases) {
    json j = record(1);
    j["input_width"] = 504;
    j["input_height"] = 336;
    j[c.key] = c.value;
    Result<Sample> r = sample_from_record(j);
    ASSERT_FALSE(r.ok()) << c.key << " = " << c.value;
    EXPECT_TRUE(contains(r.error(), c.named)) << r.error();
  }
  // Both or neither.
  json half = record(1);
  half["input_width"] = 504;
  Result<Sample> r = sample_from_record(half);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error(), "record.input_height")) << r.error();
  // null counts as absent for optional fields.
  json nulls = record(1);
  nulls["split"] = nullptr;
  nulls["input_width"] = nullptr;
  nulls["input_height"] = nullptr;
  EXPECT_TRUE(sample_from_record(nulls).ok());
}

TEST(Record, EvidenceBoxesAreCheckedAndClampedToTheImage) {
  auto boxes = [](const std::string& b) {
    json j = record(1);  // 500 x 333
    j["bboxs"] = json::parse(b);
    return sample_from_record(j);
  };
  // Overshoot past the right/bottom edge is clamped.
  Result<Sample> over = boxes("[[10, 5, 501, 334], [0, 0, 500, 333]]");
  ASSERT_TRUE(over.ok()) << over.error();
  EXPECT_EQ(over->bboxs, (std::vector<Box>{Box{10, 5, 500, 333}, Box{0, 0, 500, 333}}));

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[[0, 0, 5, 5], [3, 2, 3, 9]]", "record.bboxs[1]"},     // x2 == x1
      {"[[0, 9, 5, 2]]", "record.bboxs[0]"},                   // y2 < y1
      {"[[0, 0, 5, 5], [0, -0.5, 5, 5]]", "record.bboxs[1]"},  // negative
      {"[[500, 0, 510, 5]]", "record.bboxs[0]"},               // wholly past the right edge
      {"[[0, 0, \"5\", 5]]", "record.bboxs[0]"},
      {"[[0, 0, 5]]", "record.bboxs[0]"},
  };
  for (const auto& [b, named] : bad) {
    Result<Sample> r = boxes(b);
    ASSERT_FALSE(r.ok()) << b;
    EXPECT_TRUE(contains(r.error(), named)) << b << ": " << r.error();
  }
}

// ---- gr1 data check ------------------------------------------------------------

struct CheckRun {
  int rc;
  std::string out, err;
};

CheckRun check(const std::string& path, const std::vector<std::string>& prefixes = {},
               bool images = false) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int rc = run_data_check(path, prefixes, images);
  CheckRun run{rc, "", ""};
  run.out = ::testing::internal::GetCapturedStdout();
  run.err = ::testing::internal::GetCapturedStderr();
  return run;
}

TEST(DataCheck, ValidFilePrintsTheReportAndExitsZero) {
  TempDir dir;
  const std::string path =
      dir.write("d.jsonl", record(1).dump() + "\n\n" + record(2, "vsr").dump() + "\n");
  const CheckRun run = check(path);
  EXPECT_EQ(run.rc, 0) << run.err;
  EXPECT_EQ(run.out, R"({"errors":[],"lines":2,"per_dataset":{"gqa":1,"vsr":1},"valid":2})"
                     "\n");
}

TEST(DataCheck, BadLineExitsOneAndIsListed) {
  TempDir dir;
  const std::string path = dir.write("d.jsonl", record(1).dump() + "\n\nnot json\n");
  const CheckRun run = check(path);
  EXPECT_EQ(run.rc, 1);
  const json j = json::parse(run.out);
  EXPECT_EQ(j["lines"], 2);
  EXPECT_EQ(j["valid"], 1);
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["line"], 3);
  EXPECT_TRUE(contains(j["errors"][0]["error"].get<std::string>(), "not JSON"));
}

TEST(DataCheck, MalformedPrefixOrUnreadableFileExitsTwoWithAMessage) {
  const CheckRun no_eq = check(kSampleFile, {"/home/meng"});
  EXPECT_EQ(no_eq.rc, 2);
  EXPECT_EQ(no_eq.out, "");
  EXPECT_TRUE(contains(no_eq.err, "/home/meng")) << no_eq.err;
  EXPECT_EQ(check(kSampleFile, {"=/new"}).rc, 2);
  const CheckRun missing = check("/nonexistent/gr1/d.jsonl");
  EXPECT_EQ(missing.rc, 2);
  EXPECT_EQ(missing.out, "");
  EXPECT_TRUE(contains(missing.err, "/nonexistent/gr1/d.jsonl")) << missing.err;
}

TEST(DataCheck, CheckImagesAppliesThePrefixRewrite) {
  TempDir dir;
  ASSERT_TRUE(cv::imwrite(dir.file("a.png"), cv::Mat(20, 30, CV_8UC3, cv::Scalar::all(0))));
  json j = record(1, "gqa", "/old/root/a.png");
  j["width"] = 30;
  j["height"] = 20;
  j["bboxs"] = json::array();
  const std::string path = dir.write("d.jsonl", j.dump() + "\n");
  EXPECT_EQ(check(path).rc, 0);            // images not opened
  EXPECT_EQ(check(path, {}, true).rc, 1);  // /old/root/a.png does not exist
  const CheckRun run = check(path, {"/old/root=" + dir.str()}, true);
  EXPECT_EQ(run.rc, 0) << run.out << run.err;
  // Empty NEW strips the prefix; the relative rest resolves against the file's dir.
  EXPECT_EQ(check(path, {"/old/root/="}, true).rc, 0);
}

// The real executable, when it has been built: checks the wiring of
// `gr1 data check` in apps/gr1_main.cc.
TEST(DataCheck, Gr1ExecutableRunsTheCheck) {
  const std::string gr1 = std::string(GR1_BINARY_DIR) + "/bin/gr1";
  if (!fs::exists(gr1)) GTEST_SKIP() << gr1 << " not built";
  const test_util::CliRun r = test_util::run_shell(gr1 + " data check --in " + kSampleFile);
  ASSERT_NE(r.rc, -1);  // started and exited normally
  EXPECT_EQ(r.rc, 0);
  const json j = json::parse(r.out);
  EXPECT_EQ(j["lines"], 26);
  EXPECT_EQ(j["valid"], 26);
  EXPECT_EQ(j["per_dataset"].size(), 13u);
}

}  // namespace
}  // namespace gr1
