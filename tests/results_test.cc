// `gr1 results`: summary.json assembled from hand-made eval outputs (exact
// box_score_given, target deltas and flags, missing and malformed arms), the
// table, and the real executable on a tiny checkpoint.
#include "learner/results.h"
#include "learner/grid_report.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/config.h"
#include "common/policy.h"
#include "common/tokenizer.h"
#include "tests/test_util.h"

namespace gr1 {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using test_util::TempDir;

// An eval summary with the fields the table and targets read.
json summary(double accuracy, double format_rate, double box_score, json box_score_given,
             double small_third_accuracy) {
  json s = {{"n", 6},
            {"accuracy", accuracy},
            {"format_rate", format_rate},
            {"mean_turns", 2.0},
            {"box_score", box_score},
            {"box_rate", 0.5},
            {"acc_at_05", 0.25}};
  if (!box_score_given.is_discarded()) s["box_score_given"] = box_score_given;
  s["per_evidence_third"] = {{"small", {{"accuracy", small_third_accuracy}}},
                             {"medium", {{"accuracy", 0.5}}},
                             {"large", {{"accuracy", 0.9}}}};
  return s;
}

json item(json boxes, json box_score) {
  return {{"problem_id", 1}, {"dataset", "synth_text"}, {"answer", "A"},         {"correct", 1.0},
          {"format", 2.0},   {"boxes", boxes},          {"box_score", box_score}};
}

const json kBox = json::array({1, 2, 3, 4});
const json kNoKey = json(json::value_t::discarded);  // summary() leaves box_score_given out

// ---- box_score_given ----------------------------------------------------------

TEST(Results, BoxScoreGivenIsTheSummarysWhenPresent) {
  json e = {{"items", json::array({item(json::array({kBox}), 0.9)})},
            {"summary", summary(0.5, 1, 0.2, 0.25, 0.1)}};
  EXPECT_DOUBLE_EQ(eval_box_score_given(e).get<double>(), 0.25);
  e["summary"]["box_score_given"] = nullptr;  // present and null: no item had a box
  EXPECT_TRUE(eval_box_score_given(e).is_null());
}

TEST(Results, BoxScoreGivenIsComputedFromItemsThatEmittedABox) {
  json items = json::array({item(json::array({kBox}), 0.8),
                            item(json::array(), nullptr),  // no box: left out
                            item(json::array({kBox, kBox}), 0.4),
                            item(json::array({kBox}), nullptr),  // box, no evidence
                            item(json::array(), 0.0)});          // no box: left out
  json e = {{"items", items}, {"summary", summary(0.5, 1, 0.2, kNoKey, 0.1)}};
  EXPECT_DOUBLE_EQ(eval_box_score_given(e).get<double>(), (0.8 + 0.4) / 2);
  json none = {{"items", json::array({item(json::array(), nullptr)})},
               {"summary", summary(0.5, 1, 0.2, kNoKey, 0.1)}};
  EXPECT_TRUE(eval_box_score_given(none).is_null());
}

// ---- the first thought against the question ------------------------------------
json naming_item(uint64_t id, const std::string& ds, const std::string& first, double correct) {
  return json{{"problem_id", id},
              {"dataset", ds},
              {"correct", correct},
              {"turn_texts", json::array({first, "<think>it shows 2</think><answer>2</answer>"})}};
}

TEST(Results, ThoughtNamingComparesTheFirstThoughtWithTheQuestionsShape) {
  const std::string box = "<box>[1,2,3,4]</box>";
  const std::vector<std::pair<uint64_t, std::string>> q = {
      {0, "What character is on the red circle?"},
      // The mark named by a shape word: the shape is the LAST phrase.
      {1, "Which colour does the small square on the blue triangle have?"},
      {2, "Read the character on the green square.\nA. the red circle\nB. X"},
      {3, "Count the dots on the cyan circle."},
      {4, "Read the character on the nearest shape below the orange circle."},
      {5, "What character is on the shape just left of the brown square?"},
      {6, "What character is on the red circle?"},
      {7, "What is in the picture?"}};  // names no shape: not counted
  json items = json::array({
      naming_item(0, "synth_text", "<think>the red circle</think>" + box, 1.0),        // right
      naming_item(1, "synth_attribute", "<think>the green square</think>" + box, 0.0),  // other
      naming_item(2, "synth_text_mc", "<think>the red square</think>" + box, 0.0),  // colour wrong
      naming_item(3, "synth_counting", "<think>the cyan square</think>" + box, 0.0),  // shape wrong
      naming_item(4, "synth_spatial", "<think>the orange circle</think>" + box, 0.0),  // anchor
      naming_item(5, "synth_spatial", "<think>the blue circle</think>" + box, 1.0),    // resolved
      naming_item(6, "synth_text", "<think>it shows A</think><answer>A</answer>", 0.0),  // no box
      naming_item(7, "synth_text", "<think>the red circle</think>" + box, 0.0),
      naming_item(0, "viscot_docvqa", "<think>the red circle</think>" + box, 0.0),  // not synth
  });
  const json n = thought_naming(json{{"items", items}}, q);
  ASSERT_TRUE(n.is_object()) << n;
  EXPECT_EQ(n["items"], 7);
  EXPECT_DOUBLE_EQ(n["no_box"].get<double>(), 1.0 / 7);
  // Of the 4 non-spatial items with a box: 1 right, 1 colour, 1 shape, 1 other.
  EXPECT_DOUBLE_EQ(n["names_target"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(n["colour_wrong"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(n["shape_wrong"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(n["other"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(n["names_anchor"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(n["accuracy_when_named"].get<double>(), 1.0);
  const json& pf = n["per_family"];
  EXPECT_DOUBLE_EQ(pf["text"]["names_target"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(pf["text"]["no_box"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(pf["attribute"]["other"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(pf["text_mc"]["colour_wrong"].get<double>(), 1.0);
  EXPECT_TRUE(pf["spatial"]["names_target"].is_null());
  EXPECT_TRUE(pf["text"]["names_anchor"].is_null());
  EXPECT_FALSE(pf.contains("docvqa"));
  // Nothing to count: null.
  EXPECT_TRUE(thought_naming(json{{"items", json::array()}}, q).is_null());
  EXPECT_TRUE(thought_naming(json{{"summary", json::object()}}, q).is_null());
}

// ---- the answer against the answer turn's own thought ---------------------------
json answered_item(uint64_t id, const std::string& ds, const std::string& last,
                   const std::string& answer, double correct) {
  return json{{"problem_id", id},
              {"dataset", ds},
              {"answer", answer},
              {"correct", correct},
              {"turn_texts", json::array({"<think>the red circle</think><box>[1,2,3,4]</box>", last})}};
}

TEST(Results, AnswerVsThoughtComparesTheAnswerWithWhatTheThoughtRead) {
  const std::map<uint64_t, std::pair<std::string, std::string>> q = {
      {0, {"What character is on the red circle?", "W"}},
      {1, {"What character is on the red circle?", "4"}},
      {2, {"Read the character on the blue square.\nA. K\nB. U\nC. 8\nD. 7", "<answer>B</answer>"}},
      {3, {"How many dots are on the cyan square?\nA. 3\nB. 1\nC. 5\nD. 2", "<answer>B</answer>"}},
      {4, {"What colour is the small mark on the blue circle?\nA. yellow\nB. green", "<answer>A</answer>"}},
      {5, {"What character is on the red circle?", "Q"}}};
  json items = json::array({
      // Follows its (right) thought.
      answered_item(0, "synth_text", "<think>it shows W</think><answer>W</answer>", "W", 1.0),
      // Reads 4 right, answers a letter: the thought alone would have been right.
      answered_item(1, "synth_text", "<think>it shows 4</think><answer>A</answer>", "A", 0.0),
      // Reads U (option B) and answers D.
      answered_item(2, "synth_text_mc", "<think>it shows U</think><answer>D</answer>", "D", 0.0),
      // Reads 1 (option B) and answers b: follows (case-insensitive).
      answered_item(3, "synth_counting_mc", "<think>it shows 1</think><answer>b</answer>", "b", 1.0),
      // Reads a colour that is no option.
      answered_item(4, "synth_attribute_mc", "<think>it shows red</think><answer>A</answer>", "A", 1.0),
      // No "it shows" thought: not counted; nor a non-benchmark dataset.
      answered_item(5, "synth_text", "<answer>Q</answer>", "Q", 1.0),
      answered_item(0, "viscot_docvqa", "<think>it shows W</think><answer>W</answer>", "W", 1.0),
  });
  const json a = answer_vs_thought(json{{"items", items}}, q);
  ASSERT_TRUE(a.is_object()) << a;
  EXPECT_EQ(a["items"], 5);
  EXPECT_DOUBLE_EQ(a["follows_thought"].get<double>(), 2.0 / 5);
  EXPECT_DOUBLE_EQ(a["accuracy"].get<double>(), 3.0 / 5);
  // Implied answers W (right), 4 (right), B (right), B (right), none (0).
  EXPECT_DOUBLE_EQ(a["accuracy_from_thought"].get<double>(), 4.0 / 5);
  EXPECT_DOUBLE_EQ(a["value_not_an_option"].get<double>(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(a["letter_without_options"].get<double>(), 1.0 / 2);
  const json& pf = a["per_family"];
  EXPECT_EQ(pf["text"]["items"], 2);
  EXPECT_DOUBLE_EQ(pf["text"]["follows_thought"].get<double>(), 0.5);
  EXPECT_TRUE(pf["text"]["value_not_an_option"].is_null());
  EXPECT_DOUBLE_EQ(pf["text_mc"]["accuracy_from_thought"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(pf["text_mc"]["follows_thought"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(pf["counting_mc"]["follows_thought"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(pf["attribute_mc"]["value_not_an_option"].get<double>(), 1.0);
  EXPECT_FALSE(pf.contains("docvqa"));
  EXPECT_TRUE(answer_vs_thought(json{{"items", json::array()}}, q).is_null());
  EXPECT_TRUE(answer_vs_thought(json{{"summary", json::object()}}, q).is_null());
}

// ---- summary.json ---------------------------------------------------------------

struct Arms {
  TempDir tmp;
  // base and direct_grpo carry box_score_given in their summaries;
  // ground_r1's is computed from its items ((0.7 + 0.5 + 0.6) / 3 = 0.6).
  Arms() {
    write("base", {{"items", json::array()}, {"summary", summary(0.30, 0.50, 0.20, 0.52, 0.10)}});
    json gr_items = json::array({item(json::array({kBox}), 0.7), item(json::array({kBox}), 0.5),
                                 item(json::array(), nullptr), item(json::array({kBox}), 0.6)});
    write("ground_r1", {{"items", gr_items}, {"summary", summary(0.75, 0.98, 0.45, kNoKey, 0.30)}});
    write("direct_grpo",
          {{"items", json::array()}, {"summary", summary(0.50, 1.00, 0.00, nullptr, 0.20)}});
    write("srpo", {{"items", json::array()}, {"summary", summary(0.70, 0.99, 0.50, 0.64, 0.40)}});
  }
  void write(const std::string& arm, const json& j) const {
    tmp.write(arm + ".eval.json", j.dump(1));
  }
  std::string path(const std::string& arm) const {
    return (tmp.dir / (arm + ".eval.json")).string();
  }
  std::vector<ArmResult> load(const std::vector<double>& locate) const {
    std::vector<ArmResult> out;
    for (size_t i = 0; i < results_arms().size(); ++i) {
      ArmResult a;
      a.arm = results_arms()[i];
      auto ev = load_eval_file(path(a.arm));
      EXPECT_TRUE(ev.ok()) << ev.error();
      if (ev.ok()) a.eval = *ev;
      a.locate_skill = locate[i];
      out.push_back(a);
    }
    return out;
  }
};

TEST(Results, SummaryHoldsEachArmsEvalSummaryBoxScoreGivenAndLocateSkill) {
  Arms arms;
  const json s = assemble_results(arms.load({0.62, 0.60, 0.55, 0.70}), json{{"base", 12.5}});
  EXPECT_EQ(results_arms(), (std::vector<std::string>{"base", "ground_r1", "direct_grpo", "srpo"}));
  EXPECT_DOUBLE_EQ(s["base"]["accuracy"].get<double>(), 0.30);
  EXPECT_DOUBLE_EQ(s["base"]["box_score_given"].get<double>(), 0.52);
  EXPECT_DOUBLE_EQ(s["ground_r1"]["box_score_given"].get<double>(), (0.7 + 0.5 + 0.6) / 3);
  EXPECT_TRUE(s["direct_grpo"]["box_score_given"].is_null());
  EXPECT_DOUBLE_EQ(s["srpo"]["locate_skill"].get<double>(), 0.70);
  EXPECT_DOUBLE_EQ(s["ground_r1"]["locate_skill"].get<double>(), 0.60);
  EXPECT_DOUBLE_EQ(s["ground_r1"]["per_evidence_third"]["small"]["accuracy"].get<double>(), 0.30);
  EXPECT_DOUBLE_EQ(s["timings"]["base"].get<double>(), 12.5);
  EXPECT_TRUE(s["warnings"].is_array());
}

TEST(Results, TargetsAreTheIssuesDeltasWithTheirFlags) {
  Arms arms;
  const json t = assemble_results(arms.load({0.62, 0.60, 0.55, 0.70}), nullptr)["targets"];
  auto expect = [&](const std::string& name, double value, double target, bool met) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(t.contains(name));
    EXPECT_NEAR(t[name]["value"].get<double>(), value, 1e-12);
    EXPECT_DOUBLE_EQ(t[name]["target"].get<double>(), target);
    EXPECT_EQ(t[name]["met"].get<bool>(), met);
  };
  expect("accuracy_gain_over_base", 0.75 - 0.30, 0.40, true);
  expect("accuracy_gain_over_direct_grpo", 0.75 - 0.50, 0.30, false);
  expect("box_score_given_gain_over_base", (0.7 + 0.5 + 0.6) / 3 - 0.52, 0.05, true);
  expect("box_score_gain_over_base", 0.45 - 0.20, 0.30, false);
  expect("format_rate", 0.98, 0.97, true);
  expect("locate_skill_drift", 0.02, 0.05, true);  // |0.60 - 0.62|
  EXPECT_EQ(t["locate_skill_drift"]["comparison"], "<=");
  EXPECT_EQ(t["format_rate"]["comparison"], ">=");
  const json& third = t["srpo_vs_grpo_smallest_third"];
  EXPECT_DOUBLE_EQ(third["srpo"].get<double>(), 0.40);
  EXPECT_DOUBLE_EQ(third["ground_r1"].get<double>(), 0.30);
  EXPECT_NEAR(third["value"].get<double>(), 0.10, 1e-12);
  EXPECT_TRUE(third["met"].is_null());

  // Drift is an absolute difference: 0.70 vs 0.62 misses whichever way round.
  const json up = assemble_results(arms.load({0.62, 0.70, 0.55, 0.70}), nullptr)["targets"];
  EXPECT_NEAR(up["locate_skill_drift"]["value"].get<double>(), 0.08, 1e-12);
  EXPECT_FALSE(up["locate_skill_drift"]["met"].get<bool>());
  const json down = assemble_results(arms.load({0.70, 0.62, 0.55, 0.70}), nullptr)["targets"];
  EXPECT_NEAR(down["locate_skill_drift"]["value"].get<double>(), 0.08, 1e-12);
  EXPECT_FALSE(down["locate_skill_drift"]["met"].get<bool>());
}

TEST(Results, ATargetMetExactlyIsMetDespiteRounding) {
  Arms arms;
  // 0.7 - 0.3 is 0.39999999999999997 in double.
  arms.write("base", {{"summary", summary(0.3, 0.5, 0.2, 0.5, 0.1)}});
  arms.write("ground_r1", {{"summary", summary(0.7, 0.97, 0.5, 0.55, 0.1)}});
  const json t = assemble_results(arms.load({0.5, 0.55, 0.5, 0.5}), nullptr)["targets"];
  EXPECT_LT(0.7 - 0.3, 0.40);
  EXPECT_TRUE(t["accuracy_gain_over_base"]["met"].get<bool>());
  EXPECT_TRUE(t["format_rate"]["met"].get<bool>());
  EXPECT_TRUE(t["box_score_given_gain_over_base"]["met"].get<bool>());  // 0.55 - 0.5
  EXPECT_TRUE(t["locate_skill_drift"]["met"].get<bool>());              // |0.55 - 0.5|
  arms.write("ground_r1", {{"summary", summary(0.699, 0.969, 0.5, 0.549, 0.1)}});
  const json miss = assemble_results(arms.load({0.5, 0.5501, 0.5, 0.5}), nullptr)["targets"];
  EXPECT_FALSE(miss["accuracy_gain_over_base"]["met"].get<bool>());
  EXPECT_FALSE(miss["format_rate"]["met"].get<bool>());
  EXPECT_FALSE(miss["box_score_given_gain_over_base"]["met"].get<bool>());
  EXPECT_FALSE(miss["locate_skill_drift"]["met"].get<bool>());
}

TEST(Results, AMissingArmIsNullAndItsTargetsAreUnmet) {
  Arms arms;
  fs::remove(arms.path("direct_grpo"));
  auto ev = load_eval_file(arms.path("direct_grpo"));
  ASSERT_TRUE(ev.ok()) << ev.error();
  EXPECT_FALSE(ev->has_value());
  std::vector<ArmResult> in = arms.load({0.62, 0.60, 0.55, 0.70});
  EXPECT_FALSE(in[2].eval.has_value());
  const json s = assemble_results(in, nullptr, {"direct_grpo missing"});
  EXPECT_TRUE(s.contains("direct_grpo"));
  EXPECT_TRUE(s["direct_grpo"].is_null());
  EXPECT_TRUE(s["targets"]["accuracy_gain_over_direct_grpo"]["value"].is_null());
  EXPECT_FALSE(s["targets"]["accuracy_gain_over_direct_grpo"]["met"].get<bool>());
  EXPECT_TRUE(s["targets"]["accuracy_gain_over_base"]["met"].get<bool>());
  EXPECT_EQ(s["warnings"], json::array({"direct_grpo missing"}));
  EXPECT_TRUE(s["timings"].is_null());

  // A missing locate number (no checkpoint) is null and leaves the drift unmeasured.
  in[0].locate_skill = nullptr;
  const json n = assemble_results(in, nullptr);
  EXPECT_TRUE(n["base"]["locate_skill"].is_null());
  EXPECT_TRUE(n["targets"]["locate_skill_drift"]["value"].is_null());
  EXPECT_FALSE(n["targets"]["locate_skill_drift"]["met"].get<bool>());
}

// ---- paired comparisons ------------------------------------------------------

TEST(Results, McNemarPIsTheExactTwoSidedBinomialTail) {
  // References: 2 * sum_{i <= min} C(n, i) / 2^n in exact integer arithmetic
  // (Python's math.comb), capped at 1.
  EXPECT_NEAR(mcnemar_exact_p(37, 45), 0.4397054291858219, 1e-12);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(45, 37), mcnemar_exact_p(37, 45));
  EXPECT_NEAR(mcnemar_exact_p(0, 6), 0.03125, 1e-15);  // 2 / 2^6
  EXPECT_NEAR(mcnemar_exact_p(178, 11) / 5.557289418645107e-40, 1.0, 1e-9);
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(5, 5), 1.0);  // capped
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(0, 0), 1.0);  // no discordant pair
  EXPECT_NEAR(mcnemar_exact_p(250, 230), 0.3858381240222269, 1e-9);
}

// An eval item with only what a paired comparison reads.
json scored(json id, json correct) { return {{"problem_id", id}, {"correct", correct}}; }

TEST(Results, PairedComparisonMatchesQuestionsByIdAndCountsWhatTurned) {
  const json base = {{"items", json::array({scored(1, 1.0), scored(2, 0.0), scored(3, 1.0),
                                            scored(4, 0.6), scored(5, 0.0), scored(9, 1.0),
                                            scored("x", 1.0), scored(6, nullptr)})}};
  // Another order; 4 goes from partial to full credit; 7 is only here.
  const json other = {{"items", json::array({scored(3, 0.0), scored(7, 1.0), scored(1, 1.0),
                                             scored(2, 1.0), scored(4, 1.0), scored(5, 0.0)})}};
  const json p = paired_comparison(base, other);
  ASSERT_TRUE(p.is_object()) << p;
  EXPECT_EQ(p["items"], 5);        // 1-5 (x and 6 are not scored items)
  EXPECT_EQ(p["only_in_one"], 2);  // 9 and 7
  EXPECT_EQ(p["right_to_wrong"], 1);  // 3
  EXPECT_EQ(p["wrong_to_right"], 2);  // 2, and 4 (0.6 is not right)
  EXPECT_DOUBLE_EQ(p["mcnemar_p"].get<double>(), mcnemar_exact_p(1, 2));
  const std::vector<double> d = {0.0, 1.0, -1.0, 1.0 - 0.6, 0.0};  // ids 1-5
  double mean = 0, ss = 0;
  for (double x : d) mean += x / d.size();
  for (double x : d) ss += (x - mean) * (x - mean);
  const double half = 1.959963984540054 * std::sqrt(ss / (d.size() - 1) / d.size());
  EXPECT_NEAR(p["accuracy_gain"].get<double>(), mean, 1e-12);
  EXPECT_NEAR(p["accuracy_gain_ci95"][0].get<double>(), mean - half, 1e-12);
  EXPECT_NEAR(p["accuracy_gain_ci95"][1].get<double>(), mean + half, 1e-12);

  // The other way round: the turns swap and the gain changes sign.
  const json q = paired_comparison(other, base);
  EXPECT_EQ(q["right_to_wrong"], 2);
  EXPECT_EQ(q["wrong_to_right"], 1);
  EXPECT_NEAR(q["accuracy_gain"].get<double>(), -mean, 1e-12);

  // Nothing to pair: no items array, or no shared question.
  EXPECT_TRUE(paired_comparison(json{{"summary", json::object()}}, other).is_null());
  EXPECT_TRUE(paired_comparison(base, json{{"items", json::array({scored(8, 1.0)})}}).is_null());
}

TEST(Results, SummaryPairsEachArmWithTheBaseAndGroundR1WithTheBaselines) {
  Arms arms;
  arms.write("base", {{"items", json::array({scored(1, 1.0), scored(2, 0.0), scored(3, 0.0)})},
                      {"summary", summary(0.30, 0.50, 0.20, 0.52, 0.10)}});
  arms.write("ground_r1", {{"items", json::array({scored(1, 0.0), scored(2, 1.0), scored(3, 1.0)})},
                           {"summary", summary(0.75, 0.98, 0.45, 0.6, 0.30)}});
  arms.write("srpo", {{"items", json::array({scored(1, 1.0), scored(2, 1.0), scored(3, 0.0)})},
                      {"summary", summary(0.70, 0.99, 0.50, 0.64, 0.40)}});
  fs::remove(arms.path("direct_grpo"));
  const json s = assemble_results(arms.load({0.62, 0.60, 0.55, 0.70}), nullptr);
  const json& paired = s["paired"];
  std::vector<std::string> keys;
  for (const auto& [key, other, base] : results_pairs()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"ground_r1_vs_base", "srpo_vs_base", "direct_grpo_vs_base",
                                            "ground_r1_vs_direct_grpo", "srpo_vs_ground_r1"}));
  ASSERT_EQ(paired.size(), keys.size()) << paired;
  ASSERT_TRUE(paired["ground_r1_vs_base"].is_object()) << paired;
  EXPECT_EQ(paired["ground_r1_vs_base"]["right_to_wrong"], 1);
  EXPECT_EQ(paired["ground_r1_vs_base"]["wrong_to_right"], 2);
  EXPECT_EQ(paired["srpo_vs_base"]["wrong_to_right"], 1);
  EXPECT_EQ(paired["srpo_vs_base"]["right_to_wrong"], 0);
  // srpo against ground_r1 (ground_r1 is the reference): 1 turns right, 3 wrong.
  EXPECT_EQ(paired["srpo_vs_ground_r1"]["wrong_to_right"], 1);
  EXPECT_EQ(paired["srpo_vs_ground_r1"]["right_to_wrong"], 1);
  EXPECT_NEAR(paired["srpo_vs_ground_r1"]["accuracy_gain"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(paired["ground_r1_vs_base"]["accuracy_gain"].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_TRUE(paired["direct_grpo_vs_base"].is_null());  // no evaluation
  EXPECT_TRUE(paired["ground_r1_vs_direct_grpo"].is_null());
}

TEST(Results, AMalformedEvalFileIsAnErrorNamingIt) {
  TempDir tmp;
  struct Case {
    std::string name, text, names;
  } cases[] = {
      {"truncated.eval.json", "{\"summary\": {\"accuracy\": 0.5", "not JSON"},
      {"array.eval.json", "[1, 2]", "not a JSON object"},
      {"nosummary.eval.json", "{\"items\": []}", "summary"},
      {"badfield.eval.json", "{\"summary\": {\"accuracy\": \"high\"}}", "summary.accuracy"},
      {"baditems.eval.json", "{\"summary\": {}, \"items\": {}}", "items"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = tmp.write(c.name, c.text);
    auto ev = load_eval_file(path);
    ASSERT_FALSE(ev.ok());
    EXPECT_NE(ev.error().find(path), std::string::npos) << ev.error();
    EXPECT_NE(ev.error().find(c.names), std::string::npos) << ev.error();
  }
  // A well-formed one with null means loads.
  const std::string ok = tmp.write("ok.eval.json", "{\"summary\": {\"box_score\": null}}");
  auto ev = load_eval_file(ok);
  ASSERT_TRUE(ev.ok()) << ev.error();
  EXPECT_TRUE(ev->has_value());
}

// ---- table ----------------------------------------------------------------------------

TEST(Results, TableShowsEachArmsNumbersInAlignedColumns) {
  Arms arms;
  const json s = assemble_results(arms.load({0.62, 0.60, 0.55, 0.70}), nullptr);
  std::vector<std::pair<std::string, json>> cols;
  for (const auto& a : results_arms()) cols.emplace_back(a, s[a]);
  cols[3].second = nullptr;  // a missing arm
  const std::string table = render_results_table(cols, results_table_rows());
  std::istringstream in(table);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 1 + results_table_rows().size()) << table;
  for (const auto& l : lines) EXPECT_EQ(l.size(), lines[0].size()) << table;  // aligned
  EXPECT_NE(lines[0].find("ground_r1"), std::string::npos);
  EXPECT_NE(lines[0].find("direct_grpo"), std::string::npos);
  auto row = [&](const std::string& name) {
    for (const auto& l : lines)
      if (l.rfind(name + " ", 0) == 0) return l;
    ADD_FAILURE() << "no row " << name << " in\n" << table;
    return std::string();
  };
  std::istringstream acc(row("accuracy"));
  std::string name, c1, c2, c3, c4;
  acc >> name >> c1 >> c2 >> c3 >> c4;
  EXPECT_EQ(c1, "0.300");
  EXPECT_EQ(c2, "0.750");
  EXPECT_EQ(c3, "0.500");
  EXPECT_EQ(c4, "-");  // the missing arm
  std::istringstream given(row("box_score_given"));
  given >> name >> c1 >> c2 >> c3 >> c4;
  EXPECT_EQ(c1, "0.520");
  EXPECT_EQ(c2, "0.600");
  EXPECT_EQ(c3, "n/a");  // null
  std::istringstream loc(row("locate_skill"));
  loc >> name >> c1 >> c2;
  EXPECT_EQ(c1, "0.620");
  EXPECT_EQ(c2, "0.600");

  const std::string cmp = render_results_table({{"base", s["base"]}, {"trained", s["ground_r1"]}},
                                               {"accuracy", "mean_turns"}, /*delta=*/true);
  EXPECT_NE(cmp.find("change"), std::string::npos) << cmp;
  EXPECT_NE(cmp.find("+0.450"), std::string::npos) << cmp;  // 0.75 - 0.30
  EXPECT_NE(cmp.find("+0.000"), std::string::npos) << cmp;  // mean_turns 2 vs 2
}

TEST(Results, PretrainReportSecondsAddTheVisionStage) {
  EXPECT_DOUBLE_EQ(
      pretrain_report_seconds({{"train_seconds", 10.5}, {"vision", {{"seconds", 4.0}}}})
          .get<double>(),
      14.5);
  EXPECT_DOUBLE_EQ(pretrain_report_seconds({{"train_seconds", 10.5}}).get<double>(), 10.5);
  EXPECT_TRUE(pretrain_report_seconds({{"steps", 3}}).is_null());
}

// ---- the executable -------------------------------------------------------------

using test_util::CliRun;
CliRun run(const std::string& args, const TempDir& tmp) { return test_util::run_gr1(args, tmp); }

TEST(GridReport, FinerGridsWriteTighterBoxesUpToTheTargetsThemselves) {
  auto cfg = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  auto rep = grid_report(*cfg, {1, Tokenizer::kLocationCells, 4096}, 20, 30);
  ASSERT_TRUE(rep.ok()) << rep.error();
  EXPECT_EQ((*rep)["location_cells"].get<int>(), Tokenizer::kLocationCells);
  EXPECT_EQ((*rep)["locate_items"].get<int>(), 20);
  EXPECT_EQ((*rep)["questions"].get<int>(), 30);
  const auto& g = (*rep)["grids"];
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[1]["cells"].get<int>(), Tokenizer::kLocationCells);
  for (const char* key : {"locate_ceiling", "evidence_ceiling", "evidence_iou50_share"}) {
    // One cell is the whole image; each finer grid fits better ...
    EXPECT_LT(g[0][key].get<double>(), g[1][key].get<double>()) << key;
    EXPECT_LT(g[1][key].get<double>(), g[2][key].get<double>()) << key;
  }
  // ... and 4096 cells (under a pixel of the shown frame) nearly exactly.
  EXPECT_GT(g[2]["locate_ceiling"].get<double>(), 0.97);
  EXPECT_GT(g[2]["evidence_ceiling"].get<double>(), 0.97);
  EXPECT_DOUBLE_EQ(g[2]["evidence_iou50_share"].get<double>(), 1.0);
  // The whole-image box of a small evidence box: far below half the IoU.
  EXPECT_DOUBLE_EQ(g[0]["evidence_iou50_share"].get<double>(), 0.0);
  // Thirds by evidence area: smaller evidence is harder to fit on a grid.
  const auto& t = g[1]["evidence_ceiling_by_third"];
  ASSERT_EQ(t.size(), 3u);
  EXPECT_LT(t[0].get<double>(), t[2].get<double>());

  auto bad = grid_report(*cfg, {0}, 1, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("cell count 0"), std::string::npos) << bad.error();
  EXPECT_FALSE(grid_report(*cfg, {}, 1, 1).ok());
}

TEST(GridReport, TheCommandPrintsTheReportAndNamesABadCellCount) {
  const std::string gr1 = std::string(GR1_BINARY_DIR) + "/bin/gr1";
  if (!fs::exists(gr1)) GTEST_SKIP() << gr1 << " not built";
  TempDir tmp;
  const std::string config = std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml";
  const CliRun ok = run("data grid --config " + config + " --cells 16,32 --locate-items 5 --questions 9", tmp);
  ASSERT_EQ(ok.rc, 0) << ok.err;
  const json j = json::parse(ok.out);
  ASSERT_EQ(j["grids"].size(), 2u);
  EXPECT_EQ(j["grids"][0]["cells"].get<int>(), 16);
  EXPECT_EQ(j["grids"][1]["cells"].get<int>(), 32);
  EXPECT_EQ(j["questions"].get<int>(), 9);
  const CliRun bad = run("data grid --config " + config + " --cells 16,0", tmp);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.err.find("--cells"), std::string::npos) << bad.err;
}

TEST(ResultsCli, SummarizeWritesSummaryJsonWithLocateSkillAndTimings) {
  const std::string gr1 = std::string(GR1_BINARY_DIR) + "/bin/gr1";
  if (!fs::exists(gr1)) GTEST_SKIP() << gr1 << " not built";
  const std::string config = std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml";
  auto cfg = load_config(config);
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  TempDir tmp;
  // base: evaluated, with a (random) checkpoint and its pretraining report;
  // ground_r1: evaluated, no checkpoint; direct_grpo, srpo: not evaluated.
  torch::manual_seed(3);
  Policy policy(cfg->model, Tokenizer().vocab_size());
  ASSERT_TRUE(save_policy((tmp.dir / "base.safetensors").string(), policy, cfg->model).ok());
  tmp.write("base.safetensors.report.json",
            json{{"train_seconds", 30.0}, {"vision", {{"seconds", 5.0}}}}.dump());
  tmp.write("ground_r1.eval.json", json{{"summary", summary(0.70, 1.0, 0.5, 0.6, 0.2)}}.dump());
  tmp.write("timings.json",
            json{{"base", 1.0}, {"base_cached", true}, {"total_seconds", 100.0}}.dump());
  // base's items: one first thought naming the question's shape, one another colour.
  fs::create_directories(tmp.dir / "test");
  auto record = [](int id, const std::string& ds, const std::string& problem) {
    return json{{"problem_id", id}, {"dataset", ds},   {"problem", problem},
                {"solution", "2"},  {"image", "x.png"}, {"width", 256},
                {"height", 256},    {"bboxs", json::array({json::array({1, 2, 3, 4})})}}
               .dump() +
           "\n";
  };
  tmp.write("test/data.jsonl", record(0, "synth_text", "Read the character on the red circle.") +
                                   record(1, "synth_counting", "Count the dots on the blue square."));
  json base_eval = {{"summary", summary(0.25, 0.5, 0.1, 0.4, 0.1)},
                    {"items", json::array({naming_item(0, "synth_text",
                                                       "<think>the red circle</think><box>[1,2,3,4]</box>", 1.0),
                                           naming_item(1, "synth_counting",
                                                       "<think>the red square</think><box>[1,2,3,4]</box>", 0.0)})}};
  tmp.write("base.eval.json", base_eval.dump());

  const CliRun r = run(
      "results summarize --dir " + tmp.str() + " --config " + config + " --locate-items 3", tmp);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  std::ifstream f(tmp.dir / "summary.json");
  ASSERT_TRUE(f.good());
  const json s = json::parse(f);
  ASSERT_TRUE(s["base"]["locate_skill"].is_number()) << s.dump(1);
  EXPECT_GE(s["base"]["locate_skill"].get<double>(), 0.0);
  EXPECT_LE(s["base"]["locate_skill"].get<double>(), 1.0);
  EXPECT_TRUE(s["ground_r1"]["locate_skill"].is_null());  // no checkpoint
  ASSERT_TRUE(s["base"]["thought_naming"].is_object()) << s["base"];
  EXPECT_DOUBLE_EQ(s["base"]["thought_naming"]["names_target"].get<double>(), 0.5);
  EXPECT_FALSE(s["ground_r1"].contains("thought_naming"));  // no items
  EXPECT_NE(r.out.find("first thought names"), std::string::npos) << r.out;
  // Both answer turns read "it shows 2" and the solutions are "2"; the items
  // hold no written answer, so none follows its thought.
  ASSERT_TRUE(s["base"]["answer_vs_thought"].is_object()) << s["base"];
  EXPECT_EQ(s["base"]["answer_vs_thought"]["items"], 2);
  EXPECT_DOUBLE_EQ(s["base"]["answer_vs_thought"]["accuracy_from_thought"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s["base"]["answer_vs_thought"]["follows_thought"].get<double>(), 0.0);
  EXPECT_NE(r.out.find("answer follows the answer turn's thought"), std::string::npos) << r.out;
  EXPECT_TRUE(s["direct_grpo"].is_null());
  EXPECT_TRUE(s["srpo"].is_null());
  EXPECT_NEAR(s["targets"]["accuracy_gain_over_base"]["value"].get<double>(), 0.45, 1e-12);
  EXPECT_DOUBLE_EQ(s["timings"]["base_pretrain_seconds"].get<double>(), 35.0);
  const double own = s["timings"]["summarize_seconds"].get<double>();
  EXPECT_DOUBLE_EQ(s["timings"]["total_seconds"].get<double>(), 100.0 + own);
  EXPECT_DOUBLE_EQ(s["timings"]["total_with_base_pretrain_seconds"].get<double>(),
                   100.0 + own + 35.0);
  EXPECT_EQ(s["warnings"].size(), 3u) << s["warnings"];  // 2 missing evals, 1 missing checkpoint
  EXPECT_NE(r.err.find("srpo.eval.json"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("0.700"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("box_score_given"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp.dir / "summary.json.tmp"));

  // ground_r1's eval has no items: its pairings are not measured.
  EXPECT_TRUE(s["paired"]["ground_r1_vs_base"].is_null()) << s["paired"];
  EXPECT_NE(r.out.find("ground_r1_vs_base: not measured"), std::string::npos) << r.out;

  // compare: side by side with a change column.
  const CliRun c = run("results compare --base " + (tmp.dir / "base.eval.json").string() +
                           " --trained " + (tmp.dir / "ground_r1.eval.json").string(),
                       tmp);
  EXPECT_EQ(c.rc, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("+0.450"), std::string::npos) << c.out;
  // ... and, with items on both sides, the paired line: item 0 turns wrong,
  // item 1 right.
  json trained_eval = base_eval;
  trained_eval["items"][0]["correct"] = 0.0;
  trained_eval["items"][1]["correct"] = 1.0;
  const std::string trained = tmp.write("trained.eval.json", trained_eval.dump());
  const CliRun cp = run("results compare --base " + (tmp.dir / "base.eval.json").string() +
                            " --trained " + trained,
                        tmp);
  EXPECT_EQ(cp.rc, 0) << cp.out << cp.err;
  EXPECT_NE(cp.out.find("trained_vs_base:"), std::string::npos) << cp.out;
  EXPECT_NE(cp.out.find("2 items, 1 right->wrong, 1 wrong->right, McNemar p 1.000, accuracy +0.000"),
            std::string::npos)
      << cp.out;

  // A malformed arm stops the summary, naming the file.
  const std::string bad = tmp.write("srpo.eval.json", "{\"summary\": ");
  const CliRun m = run("results summarize --dir " + tmp.str() + " --config " + config, tmp);
  EXPECT_NE(m.rc, 0);
  EXPECT_NE(m.err.find(bad), std::string::npos) << m.err;
  const CliRun mc = run("results compare --base " + bad + " --trained " + bad, tmp);
  EXPECT_EQ(mc.rc, 2);
  EXPECT_NE(mc.err.find(bad), std::string::npos) << mc.err;
}

}  // namespace
}  // namespace gr1
