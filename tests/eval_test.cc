// `gr1 eval`: summaries on hand-built items, items from hand-built
// trajectories, and end-to-end runs of small policies on a dataset on disk.
#include "actors/eval.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/config.h"
#include "common/dataset.h"
#include "common/policy.h"
#include "common/record.h"
#include "common/reward.h"
#include "common/task.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "tests/scripted_policy.h"

namespace gr1 {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// ---- summaries ----------------------------------------------------------------

EvalItem item(const std::string& dataset, double correct, double format, int turns,
              std::optional<double> evidence_frac, std::optional<double> box_score,
              std::optional<double> iou, int boxes) {
  EvalItem it;
  it.dataset = dataset;
  it.correct = correct;
  it.format = format;
  it.turns = turns;
  if (evidence_frac) {
    it.evidence = Box{0, 0, 1, 1};
    it.evidence_frac = *evidence_frac;
  }
  it.box_score = box_score;
  it.iou = iou;
  it.boxes.assign(boxes, Box{0, 0, 1, 1});
  return it;
}

// A: evidence and a good box; B: evidence, no box; C: a box, no evidence;
// D: evidence and a poor box (two boxes written).
std::vector<EvalItem> four_items() {
  return {item("x", 1.0, 2.0, 2, 0.10, 0.8, 0.6, 1),
          item("x", 0.0, 1.0, 1, 0.30, std::nullopt, std::nullopt, 0),
          item("y", 0.5, 2.0, 3, std::nullopt, std::nullopt, std::nullopt, 1),
          item("y", 0.6, 2.0, 1, 0.05, 0.4, 0.3, 2)};
}

TEST(EvalSummaryTest, SummarizeItemsMatchesHandComputedValues) {
  json s = summarize_items(four_items());
  EXPECT_EQ(s["n"], 4);
  EXPECT_NEAR(s["accuracy"].get<double>(), (1.0 + 0.0 + 0.5 + 0.6) / 4, 1e-12);
  EXPECT_NEAR(s["format_rate"].get<double>(), 3.0 / 4, 1e-12);  // A, C, D have format 2
  EXPECT_NEAR(s["mean_turns"].get<double>(), 7.0 / 4, 1e-12);
  // Over A, B, D (evidence); B's missing box counts 0; C has no evidence.
  EXPECT_NEAR(s["box_score"].get<double>(), (0.8 + 0.0 + 0.4) / 3, 1e-12);
  EXPECT_NEAR(s["box_score_given"].get<double>(), (0.8 + 0.4) / 2, 1e-12);  // B excluded
  EXPECT_NEAR(s["box_rate"].get<double>(), 3.0 / 4, 1e-12);                 // A, C, D wrote boxes
  EXPECT_NEAR(s["acc_at_05"].get<double>(), 1.0 / 3, 1e-12);                // A (0.6) of A, B, D
}

TEST(EvalSampledTest, PassAtKIsTheChanceThatKOfTheNTriesHoldARightOne) {
  EXPECT_DOUBLE_EQ(pass_at_k(4, 1, 2), 1.0 - 3.0 / 6.0);      // 1 - C(3,2) / C(4,2)
  EXPECT_DOUBLE_EQ(pass_at_k(5, 2, 3), 1.0 - 1.0 / 10.0);     // 1 - C(3,3) / C(5,3)
  EXPECT_NEAR(pass_at_k(8, 3, 2), 1.0 - 10.0 / 28.0, 1e-12);  // 1 - C(5,2) / C(8,2)
  for (int c = 0; c <= 8; ++c) EXPECT_NEAR(pass_at_k(8, c, 1), c / 8.0, 1e-12);
  EXPECT_EQ(pass_at_k(8, 0, 8), 0.0);
  EXPECT_EQ(pass_at_k(8, 1, 8), 1.0);
  EXPECT_EQ(pass_at_k(8, 7, 2), 1.0);  // only one wrong try: any two hold a right one
  EXPECT_THROW(pass_at_k(4, 5, 1), std::invalid_argument);
  EXPECT_THROW(pass_at_k(4, 1, 5), std::invalid_argument);
  EXPECT_THROW(pass_at_k(4, 1, 0), std::invalid_argument);
}

TEST(EvalSampledTest, SummaryOfTheTriesMatchesHandComputedValues) {
  std::vector<EvalItem> items = four_items();
  EXPECT_FALSE(summarize_items(items).contains("sampled"));  // greedy only: no such key
  using Try = EvalItem::Try;
  // A (greedy right): tries right, wrong, wrong, right. B (greedy wrong):
  // tries half right, wrong, right (5 tries: K is the fewest, 4), wrong, wrong.
  // C (greedy 0.5, not right): one right try. D (greedy 0.6): none right.
  items[0].sampled = {Try{"a", 1, 2, true}, Try{"b", 0, 2, true}, Try{"c", 0, 1, false},
                      Try{"a", 1, 2, true}};
  items[1].sampled = {Try{"x", 0.5, 2, false}, Try{"y", 0, 0, false}, Try{"z", 1, 2, true},
                      Try{"y", 0, 2, true}, Try{"y", 0, 2, true}};
  items[2].sampled = {Try{"q", 0, 2, true}, Try{"q", 0, 2, true}, Try{"r", 1, 2, true},
                      Try{"q", 0, 2, true}};
  items[3].sampled = {Try{"w", 0, 2, false}, Try{"w", 0, 2, false}, Try{"w", 0.2, 2, false},
                      Try{"w", 0, 2, false}};
  const json s = summarize_items(items)["sampled"];
  EXPECT_EQ(s["k"], 4);
  EXPECT_EQ(s["items"], 4);
  EXPECT_NEAR(s["accuracy"].get<double>(), (2 + 1.5 + 1 + 0.2) / 17.0, 1e-12);
  // pass@1 = right / tries per item; pass@2 by the formula; pass@4 = any.
  EXPECT_NEAR(s["pass_at"]["1"].get<double>(), (0.5 + 0.2 + 0.25 + 0) / 4, 1e-12);
  EXPECT_NEAR(s["pass_at"]["2"].get<double>(),
              (pass_at_k(4, 2, 2) + pass_at_k(5, 1, 2) + pass_at_k(4, 1, 2) + 0) / 4, 1e-12);
  EXPECT_NEAR(s["pass_at"]["4"].get<double>(), (1 + pass_at_k(5, 1, 4) + 1 + 0) / 4, 1e-12);
  EXPECT_EQ(s["pass_at"].size(), 3u);  // 1, 2, 4
  EXPECT_NEAR(s["best_of_k"].get<double>(), (1 + 1 + 1 + 0.2) / 4, 1e-12);
  EXPECT_NEAR(s["format_rate"].get<double>(), 15.0 / 17, 1e-12);  // all but "c" and B's "y" (0)
  EXPECT_NEAR(s["box_choice_rate"].get<double>(), 10.0 / 17, 1e-12);
  // B and C: greedy not right, some try right. A was right; D has no right try.
  EXPECT_NEAR(s["greedy_wrong_sampled_right"].get<double>(), 2.0 / 4, 1e-12);
  // Families and thirds carry their own: family "y" is C and D.
  const json fam = summarize(items)["per_family"]["y"]["sampled"];
  EXPECT_NEAR(fam["pass_at"]["4"].get<double>(), 0.5, 1e-12);
}

TEST(EvalSummaryTest, BoxOnEvidenceSplitsAccuracyByWhereTheLastBoxLands) {
  auto items = four_items();  // A and D: evidence {0,0,1,1} and boxes {0,0,1,1}
  // D's last box misses the evidence's centre (0.5, 0.5); its first did not.
  items[3].boxes.back() = Box{0.6f, 0.6f, 1.0f, 1.0f};
  json s = summarize_items(items);
  // Over A and D (evidence and a box); B gave no box, C has no evidence.
  EXPECT_NEAR(s["box_on_evidence_rate"].get<double>(), 1.0 / 2, 1e-12);
  EXPECT_NEAR(s["accuracy_box_on_evidence"].get<double>(), 1.0, 1e-12);   // A
  EXPECT_NEAR(s["accuracy_box_off_evidence"].get<double>(), 0.6, 1e-12);  // D
  // A box whose edge passes through the centre contains it.
  items[3].boxes.back() = Box{0.5f, 0.5f, 1.0f, 1.0f};
  s = summarize_items(items);
  EXPECT_NEAR(s["box_on_evidence_rate"].get<double>(), 1.0, 1e-12);
  EXPECT_TRUE(s["accuracy_box_off_evidence"].is_null());
}

TEST(EvalSummaryTest, EmptyAndEvidenceFreeSetsGiveNulls) {
  json e = summarize_items({});
  EXPECT_EQ(e["n"], 0);
  for (const char* k : {"accuracy", "format_rate", "mean_turns", "box_score", "box_score_given",
                        "box_rate", "acc_at_05", "box_on_evidence_rate", "accuracy_box_on_evidence",
                        "accuracy_box_off_evidence"})
    EXPECT_TRUE(e[k].is_null()) << k;
  json c = summarize_items({four_items()[2]});  // a box but no evidence
  EXPECT_NEAR(c["accuracy"].get<double>(), 0.5, 1e-12);
  EXPECT_TRUE(c["box_score"].is_null());
  EXPECT_TRUE(c["acc_at_05"].is_null());
  EXPECT_TRUE(c["box_on_evidence_rate"].is_null());
  EXPECT_NEAR(c["box_rate"].get<double>(), 1.0, 1e-12);
}

TEST(EvalSummaryTest, PerFamilyAndEvidenceThirds) {
  json s = summarize(four_items());
  EXPECT_NEAR(s["accuracy"].get<double>(), 0.525, 1e-12);
  ASSERT_EQ(s["per_family"].size(), 2u);
  const json& x = s["per_family"]["x"];
  EXPECT_EQ(x["n"], 2);
  EXPECT_NEAR(x["accuracy"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(x["box_score"].get<double>(), 0.4, 1e-12);  // (0.8 + 0) / 2
  EXPECT_NEAR(x["box_score_given"].get<double>(), 0.8, 1e-12);
  EXPECT_NEAR(x["acc_at_05"].get<double>(), 0.5, 1e-12);
  const json& y = s["per_family"]["y"];
  EXPECT_NEAR(y["accuracy"].get<double>(), 0.55, 1e-12);
  EXPECT_NEAR(y["box_score"].get<double>(), 0.4, 1e-12);  // D only: C has no evidence
  EXPECT_NEAR(y["acc_at_05"].get<double>(), 0.0, 1e-12);
  // Evidence items sorted by fraction: D (0.05), A (0.10), B (0.30).
  const json& t = s["per_evidence_third"];
  EXPECT_EQ(t["small"]["n"], 1);
  EXPECT_NEAR(t["small"]["frac_min"].get<double>(), 0.05, 1e-12);
  EXPECT_NEAR(t["small"]["box_score"].get<double>(), 0.4, 1e-12);
  EXPECT_NEAR(t["medium"]["frac_max"].get<double>(), 0.10, 1e-12);
  EXPECT_NEAR(t["medium"]["acc_at_05"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(t["large"]["box_score"].get<double>(), 0.0, 1e-12);
  EXPECT_TRUE(t["large"]["box_score_given"].is_null());
}

TEST(EvalSummaryTest, ThirdsGiveTheRemainderToTheFirstParts) {
  std::vector<EvalItem> items;
  for (double f : {0.5, 0.1, 0.4, 0.2, 0.3})
    items.push_back(item("x", f, 2.0, 1, f, std::nullopt, std::nullopt, 0));
  items.push_back(item("x", 1.0, 2.0, 1, std::nullopt, std::nullopt, std::nullopt, 0));
  const json t = summarize(items)["per_evidence_third"];
  // Five evidence items -> 2, 2, 1; the evidence-free item is in none.
  EXPECT_EQ(t["small"]["n"], 2);
  EXPECT_EQ(t["medium"]["n"], 2);
  EXPECT_EQ(t["large"]["n"], 1);
  EXPECT_NEAR(t["small"]["frac_min"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(t["small"]["frac_max"].get<double>(), 0.2, 1e-12);
  EXPECT_NEAR(t["medium"]["accuracy"].get<double>(), 0.35, 1e-12);  // items 0.3, 0.4
  EXPECT_NEAR(t["large"]["frac_min"].get<double>(), 0.5, 1e-12);

  // One evidence item -> 1, 0, 0: empty parts have n 0 and null fractions.
  const json one = summarize({items[0]})["per_evidence_third"];
  EXPECT_EQ(one["small"]["n"], 1);
  EXPECT_EQ(one["large"]["n"], 0);
  EXPECT_TRUE(one["large"]["frac_min"].is_null());
  EXPECT_TRUE(one["large"]["accuracy"].is_null());
}

// ---- items from trajectories -----------------------------------------------------

// A trajectory whose assistant turns are `turns` (no prompt or image tokens:
// make_eval_item reads turn spans, boxes_shown and images only).
Trajectory trajectory_of(const std::vector<std::string>& turns) {
  Trajectory t;
  Tokenizer tok;
  t.tokens.push_back(Tokenizer::kBos);
  for (const auto& text : turns) {
    const auto ids = tok.encode(text);
    t.turns.push_back(TurnSpan{int32_t(t.tokens.size()), int32_t(t.tokens.size() + ids.size())});
    t.tokens.insert(t.tokens.end(), ids.begin(), ids.end());
    t.boxes_shown.push_back(extract_box(text));
  }
  t.policy_mask.assign(t.tokens.size(), 1);
  t.logprobs.assign(t.tokens.size(), 0.f);
  return t;
}

TEST(EvalItemTest, MapsEveryBoxToOriginalPixelsAndScoresTheLastAgainstTheFirstEvidence) {
  Sample s;
  s.problem_id = 42;
  s.width = 200;
  s.height = 100;
  s.dataset = "vsr";  // short answer
  s.solution = "left";
  s.bboxs = {Box{100, 50, 150, 100}, Box{0, 0, 10, 10}};
  // Shown frame 50 x 50: x * 4, y * 2.
  Trajectory t = trajectory_of({"<think>x</think><box>[25,25,50,50]</box>",
                                "<think>y</think><box>[0,0,2.5,5]</box>",
                                "<think>z</think><answer> left </answer>"});
  t.images = {ImageRef{false, {}}, ImageRef{true, Box{100, 50, 200, 100}},
              ImageRef{true, Box{0, 0, 28, 28}}};
  t.finished = true;
  auto it = make_eval_item(s, t, 50);
  ASSERT_TRUE(it.ok()) << it.error();
  EXPECT_EQ(it->problem_id, 42u);
  EXPECT_EQ(it->answer, "left");
  EXPECT_DOUBLE_EQ(it->correct, 1.0);
  EXPECT_DOUBLE_EQ(it->format, 2.0);
  EXPECT_EQ(it->turns, 3);
  EXPECT_TRUE(it->finished);
  ASSERT_EQ(it->boxes.size(), 2u);
  EXPECT_EQ(it->boxes[0], (Box{100, 50, 200, 100}));
  EXPECT_EQ(it->boxes[1], (Box{0, 0, 10, 10}));
  // The last box equals the SECOND evidence box, but the score is against the
  // first: GIoU = 0 - (15000 - 2600) / 15000 (enclosing [0,0,150,100], union
  // 100 + 2500), so (GIoU + 1) / 2 = 2600 / 30000.
  ASSERT_TRUE(it->box_score.has_value());
  EXPECT_NEAR(*it->box_score, 2600.0 / 30000.0, 1e-6);
  ASSERT_TRUE(it->iou.has_value());
  EXPECT_DOUBLE_EQ(*it->iou, 0.0);
  ASSERT_TRUE(it->evidence.has_value());
  EXPECT_EQ(*it->evidence, (Box{100, 50, 150, 100}));
  EXPECT_NEAR(it->evidence_frac, 2500.0 / 20000.0, 1e-12);
  // Crops: after turn 0 and turn 1; none after the final turn.
  ASSERT_EQ(it->crops.size(), 3u);
  EXPECT_EQ(it->crops[0], (std::optional<Box>(Box{100, 50, 200, 100})));
  EXPECT_EQ(it->crops[1], (std::optional<Box>(Box{0, 0, 28, 28})));
  EXPECT_FALSE(it->crops[2].has_value());

  json j = item_json(*it);
  EXPECT_EQ(j["boxes"], json::parse("[[100,50,200,100],[0,0,10,10]]"));
  EXPECT_EQ(j["correct"], 1.0);
  EXPECT_EQ(j["turns"], 3);
  EXPECT_EQ(j["problem_id"], 42);
}

TEST(EvalItemTest, LocationTokenBoxesAreReadInTheItemsShownFrame) {
  Sample s;
  s.width = 96;
  s.height = 48;
  s.dataset = "vsr";
  s.solution = "left";
  s.bboxs = {Box{48, 0, 96, 24}};
  // Shown frame 48 x 48 (1.5-pixel cells): [24,0,48,24] is <loc_16> <loc_0>
  // <loc_32> <loc_16>; original pixels are x * 2, y * 1.
  const std::string box_turn = "<think>x</think><box>[24,0,48,24]</box>";
  Trajectory t;
  t.tokens = Tokenizer(48).encode(box_turn, BoxCoordinates::kLocationTokens);
  int locations = 0;
  for (auto id : t.tokens) locations += Tokenizer::is_location(id);
  ASSERT_EQ(locations, 4);
  t.turns.push_back(TurnSpan{0, int32_t(t.tokens.size())});
  t.boxes_shown.push_back(Box{24, 0, 48, 24});  // as the rollout parsed it
  t.policy_mask.assign(t.tokens.size(), 1);
  t.logprobs.assign(t.tokens.size(), 0.f);
  t.images = {ImageRef{false, {}}};
  auto it = make_eval_item(s, t, 48);
  ASSERT_TRUE(it.ok()) << it.error();
  EXPECT_EQ(it->turn_texts, std::vector<std::string>{box_turn});
  ASSERT_EQ(it->boxes.size(), 1u);
  EXPECT_EQ(it->boxes[0], (Box{48, 0, 96, 24}));
  ASSERT_TRUE(it->box_score.has_value());
  EXPECT_DOUBLE_EQ(*it->box_score, 1.0);
  // The tokens decode with the frame the item is made for.
  auto in32 = make_eval_item(s, t, 32);
  ASSERT_TRUE(in32.ok()) << in32.error();
  EXPECT_EQ(in32->turn_texts, std::vector<std::string>{"<think>x</think><box>[16,0,32,16]</box>"});
}

TEST(EvalItemTest, NoBoxNoAnswerAndAnUnknownDataset) {
  Sample s;
  s.width = s.height = 64;
  s.dataset = "vsr";
  s.solution = "yes";
  s.bboxs = {Box{0, 0, 8, 8}};
  Trajectory t = trajectory_of({"<think>hm</think>yes"});
  t.images = {ImageRef{false, {}}};
  auto it = make_eval_item(s, t, 32);
  ASSERT_TRUE(it.ok());
  EXPECT_EQ(it->answer, "");  // no <answer> pair
  EXPECT_DOUBLE_EQ(it->correct, 0.0);
  EXPECT_DOUBLE_EQ(it->format, 0.0);
  EXPECT_TRUE(it->boxes.empty());
  EXPECT_FALSE(it->box_score.has_value());
  EXPECT_TRUE(item_json(*it)["box_score"].is_null());
  EXPECT_TRUE(it->evidence.has_value());  // so it counts 0 in box_score

  s.dataset = "no_such_dataset";
  auto bad = make_eval_item(s, t, 32);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("no_such_dataset"), std::string::npos) << bad.error();
}

TEST(EvalItemTest, BoxIou) {
  EXPECT_DOUBLE_EQ(box_iou(Box{0, 0, 10, 10}, Box{5, 0, 15, 10}), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(box_iou(Box{0, 0, 10, 10}, Box{20, 20, 30, 30}), 0.0);
  EXPECT_DOUBLE_EQ(box_iou(Box{0, 0, 0, 0}, Box{0, 0, 0, 0}), 0.0);
}

// ---- end to end -----------------------------------------------------------------

Config eval_config() {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok()) << c.error();
  Config cfg = *c;
  cfg.model.max_seq_len = 1024;  // two user turns of the grounded prompt
  cfg.rollout.max_new_tokens = 24;
  cfg.rollout.max_turns = 3;
  return cfg;
}

// A dataset directory: data.jsonl with relative image paths, PNGs beside it.
struct DiskData {
  fs::path dir;
  std::vector<Sample> samples;  // as written (with pixels)
  ~DiskData() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::unique_ptr<DiskData> write_dataset(const Config& cfg, int n, const std::string& name,
                                        bool add_bad_line) {
  auto task = SyntheticTask::create(cfg.task);  // registers synth_<family>[_mc]
  EXPECT_TRUE(task.ok()) << task.error();
  auto d = std::make_unique<DiskData>();
  d->dir = fs::temp_directory_path() / ("gr1_eval_test_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(d->dir);
  std::ofstream f(d->dir / "data.jsonl");
  for (int i = 0; i < n; ++i) {
    Sample s = task->get(i);
    s.image_path = "img_" + std::to_string(i) + ".png";
    EXPECT_TRUE(cv::imwrite((d->dir / s.image_path).string(), s.image));
    if (i == 1) {
      // A short-answer record whose truth is the scripted answer: one item
      // scores 1 whatever the drawn question was.
      s.dataset = SyntheticTask::dataset_name(cfg.task.dataset, Family::kText, false);
      s.solution = "A";
    }
    f << to_record(s).dump() << "\n";
    if (add_bad_line && i == 0) f << "{\"image\": \"img_0.png\", truncated\n";
    d->samples.push_back(s);
  }
  return d;
}

// A checkpoint in the temporary directory, removed with the object.
struct TempCheckpoint {
  std::string path;
  TempCheckpoint(const Policy& p, const ModelOptions& m, const std::string& name)
      : path((fs::temp_directory_path() /
              ("gr1_eval_test_" + name + "_" + std::to_string(::getpid()) + ".safetensors"))
                 .string()) {
    Status s = save_policy(path, p, m);
    EXPECT_TRUE(s.ok()) << s.message();
  }
  ~TempCheckpoint() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

double expected_accuracy(const Sample& s, const std::string& answer) {
  auto rule = accuracy_rule_for(s.dataset);
  EXPECT_TRUE(rule.ok()) << rule.error();
  return accuracy_reward(*rule, answer, s.solution);
}

// An untrained policy (weights from `seed`) in a temporary checkpoint, and
// `n` questions on disk; turns of at most 16 tokens.
struct RandomPolicySetup {
  Config cfg;
  std::unique_ptr<DiskData> data;
  std::unique_ptr<TempCheckpoint> ckpt;
};

RandomPolicySetup random_policy_setup(int n, const std::string& name, uint64_t seed) {
  RandomPolicySetup r;
  r.cfg = eval_config();
  r.cfg.rollout.max_new_tokens = 16;
  r.data = write_dataset(r.cfg, n, name, false);
  torch::manual_seed(seed);
  Policy policy(r.cfg.model, Tokenizer().vocab_size());
  r.ckpt = std::make_unique<TempCheckpoint>(policy, r.cfg.model, name);
  return r;
}

TEST(EvalEndToEndTest, ScriptedPolicyItemsCarryItsBoxesAnswersAndRewards) {
  Config cfg = eval_config();
  auto data = write_dataset(cfg, 4, "scripted", /*add_bad_line=*/true);
  // Fitted on the questions it is evaluated on, so the script is replayed
  // exactly (a tiny policy does not reliably carry it to unseen questions).
  Policy policy = testing::fit_scripted_policy(cfg.model, cfg.rollout, data->samples);
  const TempCheckpoint tmp(policy, cfg.model, "scripted");
  const std::string& ckpt = tmp.path;

  LoadOptions lo;
  lo.keep_images = true;
  auto report = load_jsonl_file((data->dir / "data.jsonl").string(), lo);
  ASSERT_TRUE(report.ok()) << report.error();
  ASSERT_EQ(report->samples.size(), 4u);
  EXPECT_EQ(report->errors.size(), 1u);

  EvalOptions eo;
  eo.batch = 3;  // a full batch and a remainder of one
  auto res = evaluate_checkpoint(ckpt, report->samples, cfg.rollout, eo);
  ASSERT_TRUE(res.ok()) << res.error();
  ASSERT_EQ(res->items.size(), 4u);
  EXPECT_TRUE(res->skipped.empty());
  double acc = 0;
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE("item " + std::to_string(i));
    const EvalItem& it = res->items[i];
    const Sample& s = report->samples[i];
    EXPECT_EQ(it.index, int64_t(i));
    EXPECT_EQ(it.problem_id, s.problem_id);
    EXPECT_EQ(it.dataset, s.dataset);
    ASSERT_EQ(it.turn_texts,
              (std::vector<std::string>{testing::kScriptBoxTurn, testing::kScriptAnswerTurn}));
    EXPECT_EQ(it.turns, 2);
    EXPECT_EQ(it.answer, "A");
    EXPECT_DOUBLE_EQ(it.correct, expected_accuracy(s, "A"));
    EXPECT_DOUBLE_EQ(it.format, 2.0);
    // [0,0,16,16] of the 32x32 frame is the top-left quarter of 128x128.
    ASSERT_EQ(it.boxes.size(), 1u);
    EXPECT_EQ(it.boxes[0], (Box{0, 0, 64, 64}));
    EXPECT_EQ(it.crops[0], (std::optional<Box>(Box{0, 0, 64, 64})));
    ASSERT_FALSE(s.bboxs.empty());
    ASSERT_TRUE(it.box_score.has_value());
    EXPECT_NEAR(*it.box_score, box_score(Box{0, 0, 64, 64}, s.bboxs[0]), 1e-9);
    acc += it.correct;
  }
  EXPECT_DOUBLE_EQ(res->items[1].correct, 1.0);  // the record whose truth is "A"
  const json& sum = res->summary;
  EXPECT_EQ(sum["n"], 4);
  EXPECT_NEAR(sum["accuracy"].get<double>(), acc / 4, 1e-12);
  EXPECT_NEAR(sum["format_rate"].get<double>(), 1.0, 1e-12);
  EXPECT_NEAR(sum["mean_turns"].get<double>(), 2.0, 1e-12);
  EXPECT_NEAR(sum["box_rate"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(sum["mode"], "grounded");
  EXPECT_TRUE(sum["questions_per_s"].get<double>() > 0);

  // Direct mode: one turn from the whole image. The policy still writes its
  // box turn, so there is a box but no crop, no answer and format 0.
  eo.mode = "direct";
  auto direct = evaluate_checkpoint(ckpt, report->samples, cfg.rollout, eo);
  ASSERT_TRUE(direct.ok()) << direct.error();
  ASSERT_EQ(direct->items.size(), 4u);
  for (const auto& it : direct->items) {
    EXPECT_EQ(it.turn_texts, std::vector<std::string>{testing::kScriptBoxTurn});
    EXPECT_EQ(it.answer, "");
    EXPECT_DOUBLE_EQ(it.correct, 0.0);
    EXPECT_DOUBLE_EQ(it.format, 0.0);
    EXPECT_EQ(it.boxes.size(), 1u);
    ASSERT_EQ(it.crops.size(), 1u);
    EXPECT_FALSE(it.crops[0].has_value());
  }
  EXPECT_EQ(direct->summary["mode"], "direct");
  EXPECT_NEAR(direct->summary["mean_turns"].get<double>(), 1.0, 1e-12);

  // The CLI entry point on the directory: JSON file, summary extras, gallery.
  EvalCli cli;
  cli.checkpoint = ckpt;
  cli.data = data->dir.string();
  cli.out = (data->dir / "eval.json").string();
  cli.gallery = (data->dir / "gallery.png").string();
  cli.batch = 2;
  ASSERT_EQ(run_eval(cli), 0);
  std::ifstream in(cli.out);
  json out = json::parse(in);
  ASSERT_EQ(out["items"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const json& j = out["items"][i];
    EXPECT_EQ(j["problem_id"], res->items[i].problem_id);
    EXPECT_EQ(j["answer"], "A");
    EXPECT_EQ(j["correct"].get<double>(), res->items[i].correct);
    EXPECT_EQ(j["boxes"], json::parse("[[0,0,64,64]]"));
    EXPECT_EQ(j["turns"], 2);
  }
  const json& s = out["summary"];
  EXPECT_NEAR(s["accuracy"].get<double>(), acc / 4, 1e-12);
  EXPECT_EQ(s["skipped"]["bad_lines"], 1);
  EXPECT_EQ(s["data"], (data->dir / "data.jsonl").string());
  EXPECT_EQ(s["checkpoint"], ckpt);
  for (const char* k : {"format_rate", "mean_turns", "box_score", "acc_at_05", "per_family",
                        "per_evidence_third", "seconds", "questions_per_s"})
    EXPECT_TRUE(s.contains(k)) << k;
  EXPECT_FALSE(cv::imread(cli.gallery).empty());
}

TEST(EvalEndToEndTest, RandomPolicyItemsAreConsistentWithTheirTurns) {
  const RandomPolicySetup setup = random_policy_setup(5, "random", 17);
  const Config& cfg = setup.cfg;
  const auto& data = setup.data;
  const TempCheckpoint& tmp = *setup.ckpt;
  const std::string& ckpt = tmp.path;
  EvalOptions eo;
  eo.batch = 2;
  eo.limit = 4;
  auto res = evaluate_checkpoint(ckpt, data->samples, cfg.rollout, eo);
  ASSERT_TRUE(res.ok()) << res.error();
  ASSERT_EQ(res->items.size(), 4u);  // limit
  for (size_t i = 0; i < 4; ++i) {
    const EvalItem& it = res->items[i];
    const Sample& s = data->samples[i];
    ASSERT_EQ(it.turn_texts.size(), size_t(it.turns));
    ASSERT_GE(it.turns, 1);
    ASSERT_LE(it.turns, cfg.rollout.max_turns);
    const auto a = extract_answer(it.turn_texts.back());
    EXPECT_EQ(it.answer, a.value_or(""));
    EXPECT_DOUBLE_EQ(it.correct, a ? expected_accuracy(s, *a) : 0.0);
    EXPECT_DOUBLE_EQ(it.format, format_reward(it.turn_texts));
    size_t with_box = 0;
    for (const auto& t : it.turn_texts) with_box += extract_box(t).has_value();
    EXPECT_EQ(it.boxes.size(), with_box);
  }
}

TEST(EvalEndToEndTest, ForcedBoxGivesTheScaledEvidenceBoxThenDecodesOneTurn) {
  const RandomPolicySetup setup = random_policy_setup(4, "forced", 23);
  const Config& cfg = setup.cfg;
  const auto& data = setup.data;
  const TempCheckpoint& tmp = *setup.ckpt;
  std::vector<Sample> samples = data->samples;
  samples[3].bboxs.clear();  // nothing to force: skipped, named
  const int S = cfg.model.image_size;
  for (double scale : {1.0, 2.0}) {
    SCOPED_TRACE("scale " + std::to_string(scale));
    EvalOptions eo;
    eo.batch = 2;
    eo.forced_box_scale = scale;
    auto res = evaluate_checkpoint(tmp.path, samples, cfg.rollout, eo);
    ASSERT_TRUE(res.ok()) << res.error();
    ASSERT_EQ(res->items.size(), 3u);
    ASSERT_EQ(res->skipped.size(), 1u);
    EXPECT_NE(res->skipped[0].find("no evidence box"), std::string::npos) << res->skipped[0];
    EXPECT_EQ(res->summary["forced_box_scale"].get<double>(), scale);
    for (size_t i = 0; i < 3; ++i) {
      const EvalItem& it = res->items[i];
      const Sample& s = samples[i];
      // Expected box: evidence in the shown frame (128 -> 32: /4), sides
      // times `scale` about the centre, clamped, snapped outward to the grid's cells.
      const Box& e = s.bboxs[0];
      const double k = double(S) / s.width;
      const double cx = (e.x1 + e.x2) / 2 * k, cy = (e.y1 + e.y2) / 2 * k;
      const double hw = (e.x2 - e.x1) * k * scale / 2, hh = (e.y2 - e.y1) * k * scale / 2;
      const double cell = static_cast<double>(S) / Tokenizer::kLocationCells;
      auto lo = [&](double v) {
        return std::floor(std::clamp(v, 0.0, double(S)) / cell + 1e-4) * cell;
      };
      auto hi = [&](double v) {
        return std::ceil(std::clamp(v, 0.0, double(S)) / cell - 1e-4) * cell;
      };
      const Box shown{float(lo(cx - hw)), float(lo(cy - hh)), float(hi(cx + hw)),
                      float(hi(cy + hh))};
      ASSERT_GE(it.turns, 2);
      EXPECT_EQ(it.turns, 2);
      ASSERT_FALSE(it.boxes.empty());
      const Box want{shown.x1 / float(k), shown.y1 / float(k), shown.x2 / float(k),
                     shown.y2 / float(k)};
      EXPECT_EQ(it.boxes[0], want);
      EXPECT_EQ(extract_box(it.turn_texts[0]), std::optional<Box>(shown)) << it.turn_texts[0];
      ASSERT_TRUE(it.crops[0].has_value());  // the crop of the given box was shown
      // The decoded turn is scored like any other.
      const auto a = extract_answer(it.turn_texts.back());
      EXPECT_DOUBLE_EQ(it.correct, a ? expected_accuracy(s, *a) : 0.0);
      EXPECT_DOUBLE_EQ(it.format, format_reward(it.turn_texts));
    }
  }
  EvalOptions bad;
  bad.forced_box_scale = 1.5;
  bad.mode = "direct";
  EXPECT_FALSE(evaluate_checkpoint(tmp.path, samples, cfg.rollout, bad).ok());
  bad.mode = "grounded";
  bad.forced_box_scale = -1;
  EXPECT_FALSE(evaluate_checkpoint(tmp.path, samples, cfg.rollout, bad).ok());
}

TEST(EvalEndToEndTest, SampledTriesAreScoredLikeTheGreedyOneAndLeaveItUnchanged) {
  const RandomPolicySetup setup = random_policy_setup(4, "sampled", 29);
  const Config& cfg = setup.cfg;
  const auto& data = setup.data;
  const TempCheckpoint& tmp = *setup.ckpt;
  EvalOptions greedy;
  greedy.batch = 2;
  auto g = evaluate_checkpoint(tmp.path, data->samples, cfg.rollout, greedy);
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_FALSE(g->summary.contains("sampled"));
  EvalOptions eo = greedy;
  eo.samples = 3;
  eo.seed = 5;
  auto res = evaluate_checkpoint(tmp.path, data->samples, cfg.rollout, eo);
  ASSERT_TRUE(res.ok()) << res.error();
  ASSERT_EQ(res->items.size(), 4u);
  size_t distinct = 0, any_right = 0;
  for (size_t i = 0; i < 4; ++i) {
    const EvalItem& it = res->items[i];
    const Sample& s = data->samples[i];
    // The greedy part is what a greedy-only run gives.
    EXPECT_EQ(it.turn_texts, g->items[i].turn_texts);
    EXPECT_EQ(it.correct, g->items[i].correct);
    ASSERT_EQ(it.sampled.size(), 3u);
    bool right = false;
    for (const auto& t : it.sampled) {
      // Each try is scored by the learner's code, like the greedy answer.
      EXPECT_DOUBLE_EQ(t.correct, expected_accuracy(s, t.answer));
      EXPECT_GE(t.format, 0.0);
      EXPECT_LE(t.format, 2.0);
      distinct += t.turn_texts != it.turn_texts;
      EXPECT_EQ(t.answer, extract_answer(t.turn_texts.back()).value_or(""));
      right = right || t.correct >= 1.0;
    }
    any_right += right;
    const json j = item_json(it);
    ASSERT_EQ(j["sampled"].size(), 3u);
    EXPECT_EQ(j["sampled"][0]["answer"], it.sampled[0].answer);
    EXPECT_EQ(j["sampled"][2]["turn_texts"], it.sampled[2].turn_texts);
  }
  // An untrained policy at temperature 1 does not repeat its greedy turns
  // every time.
  EXPECT_GT(distinct, 0u);
  const json& sm = res->summary["sampled"];
  EXPECT_EQ(sm["k"], 3);
  EXPECT_NEAR(sm["pass_at"]["3"].get<double>(), any_right / 4.0, 1e-12);
  EXPECT_EQ(res->summary["sampling"]["samples"], 3);
  EXPECT_EQ(res->summary["sampling"]["temperature"].get<double>(), cfg.rollout.temperature);
  // The same seed draws the same tries; another seed other ones.
  auto again = evaluate_checkpoint(tmp.path, data->samples, cfg.rollout, eo);
  ASSERT_TRUE(again.ok()) << again.error();
  eo.seed = 6;
  auto other = evaluate_checkpoint(tmp.path, data->samples, cfg.rollout, eo);
  ASSERT_TRUE(other.ok()) << other.error();
  bool same = true, differs = false;
  for (size_t i = 0; i < 4; ++i)
    for (size_t k = 0; k < 3; ++k) {
      same = same && again->items[i].sampled[k].turn_texts == res->items[i].sampled[k].turn_texts;
      differs =
          differs || other->items[i].sampled[k].turn_texts != res->items[i].sampled[k].turn_texts;
    }
  EXPECT_TRUE(same);
  EXPECT_TRUE(differs);
  // Refused: a negative count, and sampling with the forced-box probe.
  EvalOptions bad = greedy;
  bad.samples = -1;
  auto neg = evaluate_checkpoint(tmp.path, data->samples, cfg.rollout, bad);
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.error().find("samples"), std::string::npos) << neg.error();
  bad.samples = 2;
  bad.forced_box_scale = 1.0;
  auto both = evaluate_checkpoint(tmp.path, data->samples, cfg.rollout, bad);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.error().find("--forced-box"), std::string::npos) << both.error();
}

TEST(EvalEndToEndTest, BadInputsExitWithTwo) {
  Config cfg = eval_config();
  auto data = write_dataset(cfg, 1, "bad", false);
  torch::manual_seed(1);
  Policy policy(cfg.model, Tokenizer().vocab_size());
  const TempCheckpoint tmp(policy, cfg.model, "bad");
  const std::string& ckpt = tmp.path;
  EvalCli cli;
  cli.checkpoint = ckpt;
  cli.out = (data->dir / "out.json").string();

  // Only bad lines: nothing to evaluate.
  const fs::path only_bad = data->dir / "bad.jsonl";
  std::ofstream(only_bad) << "not json\n{\"image\": 3}\n";
  cli.data = only_bad.string();
  EXPECT_EQ(run_eval(cli), 2);

  // A file that is not a checkpoint.
  cli.data = data->dir.string();
  cli.checkpoint = only_bad.string();
  EXPECT_EQ(run_eval(cli), 2);
  EXPECT_FALSE(fs::exists(cli.out));

  // An unknown dataset name is skipped and named, not a crash.
  Sample odd = data->samples[0];
  odd.dataset = "no_such_dataset";
  EvalOptions eo;
  auto res = evaluate_checkpoint(ckpt, {odd, data->samples[0]}, cfg.rollout, eo);
  ASSERT_TRUE(res.ok()) << res.error();
  EXPECT_EQ(res->items.size(), 1u);
  ASSERT_EQ(res->skipped.size(), 1u);
  EXPECT_NE(res->skipped[0].find("no_such_dataset"), std::string::npos);
  EXPECT_EQ(res->items[0].index, 1);

  eo.mode = "zoom";
  EXPECT_FALSE(evaluate_checkpoint(ckpt, data->samples, cfg.rollout, eo).ok());

  // A checkpoint from before location tokens (vocabulary 109) is refused
  // with both sizes and what to do.
  Policy old(cfg.model, Tokenizer::kVocabSizeWithoutLocations);
  const TempCheckpoint old_ckpt(old, cfg.model, "old_vocab");
  auto refused = evaluate_checkpoint(old_ckpt.path, data->samples, cfg.rollout, EvalOptions{});
  ASSERT_FALSE(refused.ok());
  for (const char* part : {"vocabulary size 109", "155", "gr1 pretrain"})
    EXPECT_NE(refused.error().find(part), std::string::npos) << refused.error();
}

}  // namespace
}  // namespace gr1
