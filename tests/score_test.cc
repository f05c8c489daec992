// `gr1 score`: the learner's reward code on given turn texts.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "learner/score_tool.h"

namespace gr1 {
namespace {

std::vector<nlohmann::json> score(const std::string& input, int* bad = nullptr) {
  std::istringstream in(input);
  std::ostringstream out;
  const int b = score_stream(in, out);
  if (bad) *bad = b;
  std::vector<nlohmann::json> v;
  std::istringstream lines(out.str());
  std::string l;
  while (std::getline(lines, l)) v.push_back(nlohmann::json::parse(l));
  return v;
}

TEST(ScoreTest, GroundedThenCorrectAnswerScoresFullRewardAndBoxScore) {
  // Shown 64x64 of a 256x256 original: [8,8,16,16] -> [32,32,64,64] = the evidence.
  auto v = score(R"({"turns": ["<think>look</think><box>[8,8,16,16]</box>",)"
                 R"( "<think>it is K</think><answer>K</answer>"], "solution": "K", "dataset": "synth",)"
                 R"( "bboxs": [[32,32,64,64]], "width": 256, "height": 256, "shown_width": 64, "shown_height": 64})");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_DOUBLE_EQ(v[0]["format"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(v[0]["accuracy"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(v[0]["reward"].get<double>(), 3.0);
  EXPECT_NEAR(v[0]["box_score"].get<double>(), 1.0, 1e-9);  // identical boxes: GIoU 1
}

TEST(ScoreTest, WrongFormatAndNoBoxGiveHandComputedValues) {
  // Turn 1 has text after </box> (format fail), turn 2 is a valid answer turn:
  // format = 2 * 1/2 = 1; answer "B" vs truth "K": 0; no evidence -> null.
  auto v = score(R"({"turns": ["<think>a</think><box>[1,2,3,4]</box> extra", "<think>b</think><answer>B</answer>"],)"
                 R"( "solution": "K", "dataset": "synth"})");
  ASSERT_EQ(v.size(), 1u);
  EXPECT_DOUBLE_EQ(v[0]["format"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(v[0]["accuracy"].get<double>(), 0.0);
  EXPECT_TRUE(v[0]["box_score"].is_null());
}

TEST(ScoreTest, BadLinesAreReportedWithLineNumbersAndSkipped) {
  int bad = 0;
  auto v = score("not json\n"
                 "[1,2]\n"
                 R"({"turns": [], "solution": "K", "dataset": "synth"})" "\n"
                 R"({"turns": ["<think>x</think><answer>K</answer>"], "solution": "K", "dataset": "nope"})" "\n"
                 R"({"turns": ["<think>x</think><answer>K</answer>"], "solution": "K", "dataset": "synth"})" "\n",
                 &bad);
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(bad, 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(v[i]["line"].get<int>(), i + 1);
    EXPECT_TRUE(v[i].contains("error"));
  }
  EXPECT_NE(v[2]["error"].get<std::string>().find("turns"), std::string::npos);
  EXPECT_NE(v[3]["error"].get<std::string>().find("nope"), std::string::npos);
  EXPECT_DOUBLE_EQ(v[4]["reward"].get<double>(), 3.0);
}

}  // namespace
}  // namespace gr1
