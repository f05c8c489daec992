// Rollouts and the learner's recomputation agree on every sampled token.
#include <gtest/gtest.h>

#include "actors/rollout.h"
#include "common/config.h"
#include "common/crop.h"
#include "common/prompt.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "learner/trainer.h"
#include "learner/validate.h"
#include "tests/scripted_policy.h"

namespace gr1 {
namespace {

Config test_config() {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok()) << c.error();
  return *c;
}

TEST(RolloutTest, GroupHasTheG1xG2TreeShape) {
  Config cfg = test_config();
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 3;
  cfg.rollout.max_turns = 3;
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(11);
  Sample s = trainer.task().get(5);
  TrajectoryGroup g = engine.rollout(s, gen);
  ASSERT_EQ(g.trajectories.size(), 6u);
  for (size_t i = 0; i < g.trajectories.size(); ++i) {
    const Trajectory& t = g.trajectories[i];
    EXPECT_EQ(t.root, static_cast<int>(i / 3));
    ASSERT_EQ(t.tokens.size(), t.logprobs.size());
    ASSERT_EQ(t.tokens.size(), t.policy_mask.size());
    ASSERT_GE(t.turns.size(), 1u);
    ASSERT_LE(t.turns.size(), 3u);
    EXPECT_EQ(t.boxes_shown.size(), t.turns.size());
    EXPECT_EQ(t.tokens[0], Tokenizer::kBos);
    // One image block per user turn, each image_tokens long.
    int images = 0;
    for (auto tok : t.tokens) images += tok == Tokenizer::kImage;
    EXPECT_EQ(images, static_cast<int>(t.images.size()) * cfg.model.image_tokens());
    EXPECT_EQ(t.images.size(), t.turns.size());
    EXPECT_FALSE(t.images[0].is_crop);
    // Policy tokens are exactly the turn spans.
    std::vector<uint8_t> in_span(t.tokens.size(), 0);
    for (const auto& sp : t.turns)
      for (int j = sp.begin; j < sp.end; ++j) in_span[j] = 1;
    EXPECT_EQ(in_span, t.policy_mask);
    for (size_t j = 0; j < t.tokens.size(); ++j)
      if (t.policy_mask[j]) {
        EXPECT_LE(t.logprobs[j], 0.f);
      } else {
        EXPECT_EQ(t.logprobs[j], 0.f);
      }
  }
  // The G2 continuations of a root share its first turn exactly.
  for (int r = 0; r < 2; ++r) {
    const auto& a = g.trajectories[r * 3];
    for (int j = 1; j < 3; ++j) {
      const auto& b = g.trajectories[r * 3 + j];
      ASSERT_GE(b.tokens.size(), static_cast<size_t>(a.turns[0].end));
      EXPECT_TRUE(std::equal(a.tokens.begin(), a.tokens.begin() + a.turns[0].end, b.tokens.begin()));
    }
  }
}

TEST(RolloutTest, ActorLogprobsMatchLearnerRecomputation) {
  Config cfg = test_config();
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 2;
  cfg.rollout.max_turns = 3;
  cfg.rollout.max_new_tokens = 16;
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  double max_diff = 0;
  int compared = 0;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    auto gen = torch::make_generator<torch::CPUGeneratorImpl>(100 + seed);
    Sample s = trainer.task().get(seed);
    TrajectoryGroup g = engine.rollout(s, gen);
    for (const auto& t : g.trajectories) {
      auto lp = trainer.recompute_logprobs(t, s);
      for (size_t j = 0; j < t.tokens.size(); ++j)
        if (t.policy_mask[j]) {
          max_diff = std::max(max_diff, std::abs(double(lp[j]) - double(t.logprobs[j])));
          ++compared;
        }
    }
  }
  EXPECT_GT(compared, 50);
  EXPECT_LE(max_diff, 1e-4);
}

TEST(RolloutTest, ForcedBoxTurnProducesACropOfTheMappedRegion) {
  // A box written in the shown frame maps to original pixels for the crop.
  Trajectory t;
  Tokenizer tok(32);
  t.tokens = tok.encode("<think>look</think><box>[8,8,16,16]</box>");
  t.turns.push_back(TurnSpan{0, static_cast<int32_t>(t.tokens.size())});
  auto box = extract_box(turn_text(t.tokens, t.turns[0], 32));
  ASSERT_TRUE(box.has_value());
  EXPECT_EQ(*box, (Box{8, 8, 16, 16}));
}

TEST(RolloutTest, LocationTokenBoxesReadAsShownFramePixels) {
  // <loc_k> is k * S / 32 shown pixels: the same four tokens are a different
  // box in a 32- and a 48-pixel frame, and the turn text stays parseable.
  Trajectory t;
  t.tokens = Tokenizer(32).encode("<think>look</think><box>[", BoxCoordinates::kLocationTokens);
  for (int k : {4, 8, 16, 32}) {
    if (k != 4) t.tokens.push_back(Tokenizer::char_id(','));
    t.tokens.push_back(Tokenizer::location_id(k));
  }
  t.tokens.push_back(Tokenizer::char_id(']'));
  t.tokens.push_back(Tokenizer::kBoxEnd);
  t.tokens.push_back(Tokenizer::kEnd);  // a stop token is not turn text
  t.turns.push_back(TurnSpan{0, static_cast<int32_t>(t.tokens.size())});
  EXPECT_EQ(turn_text(t.tokens, t.turns[0], 32), "<think>look</think><box>[4,8,16,32]</box>");
  EXPECT_EQ(extract_box(turn_text(t.tokens, t.turns[0], 32)), (Box{4, 8, 16, 32}));
  EXPECT_EQ(extract_box(turn_text(t.tokens, t.turns[0], 48)), (Box{6, 12, 24, 48}));
}

// ---- batched rollouts and direct mode ----

// Tests that decode several turns need room for two user turns.
Config long_config() {
  Config cfg = test_config();
  cfg.model.max_seq_len = 1024;
  cfg.rollout.max_new_tokens = 24;
  cfg.rollout.max_turns = 3;
  return cfg;
}

std::vector<Sample> task_samples(const Config& cfg, int n) {
  SyntheticTask task(cfg.task);
  std::vector<Sample> out;
  for (int i = 0; i < n; ++i) out.push_back(task.get(i));
  return out;
}

// The scripted policy is fitted once per test binary (a few seconds).
struct Scripted {
  Config cfg;
  std::vector<Sample> samples;
  Policy policy{nullptr};
};
const Scripted& scripted() {
  static const Scripted* s = [] {
    auto* x = new Scripted;
    x->cfg = long_config();
    x->samples = task_samples(x->cfg, 3);
    // Fitted on every question it is used with: a tiny policy does not
    // reliably carry the script to unseen questions.
    x->policy = testing::fit_scripted_policy(x->cfg.model, x->cfg.rollout, x->samples);
    return x;
  }();
  return *s;
}

std::vector<std::string> texts(const Trajectory& t) {
  return turn_texts(t, scripted().cfg.model.image_size);
}

void expect_same_trajectory(const Trajectory& a, const Trajectory& b, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.policy_mask, b.policy_mask);
  EXPECT_EQ(a.root, b.root);
  EXPECT_EQ(a.finished, b.finished);
  ASSERT_EQ(a.turns.size(), b.turns.size());
  for (size_t k = 0; k < a.turns.size(); ++k) {
    EXPECT_EQ(a.turns[k].begin, b.turns[k].begin);
    EXPECT_EQ(a.turns[k].end, b.turns[k].end);
  }
  EXPECT_EQ(a.boxes_shown, b.boxes_shown);
  ASSERT_EQ(a.images.size(), b.images.size());
  for (size_t k = 0; k < a.images.size(); ++k) {
    EXPECT_EQ(a.images[k].is_crop, b.images[k].is_crop);
    EXPECT_EQ(a.images[k].box_orig, b.images[k].box_orig);
  }
  // Padded batches round differently: equal to float rounding, not bitwise.
  ASSERT_EQ(a.logprobs.size(), b.logprobs.size());
  for (size_t j = 0; j < a.logprobs.size(); ++j) EXPECT_NEAR(a.logprobs[j], b.logprobs[j], 1e-4) << j;
}

TEST(RolloutBatchTest, ScriptedPolicyWritesABoxThenAnswersFromTheCropOfItsMappedRegion) {
  const Scripted& sc = scripted();
  RolloutEngine engine(sc.policy, sc.cfg.model, sc.cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1);
  TrajectoryGroup g = engine.rollout_tree(sc.samples[0], 1, 1, gen, /*greedy=*/true, nullptr);
  ASSERT_EQ(g.trajectories.size(), 1u);
  const Trajectory& t = g.trajectories[0];
  ASSERT_EQ(texts(t), (std::vector<std::string>{testing::kScriptBoxTurn, testing::kScriptAnswerTurn}));
  EXPECT_TRUE(t.finished);
  ASSERT_EQ(t.images.size(), 2u);
  ASSERT_TRUE(t.images[1].is_crop);
  // [0,0,16,16] in the 32x32 shown frame of a 128x128 original is
  // [0,0,64,64]: no side shorter than min_crop_px 28, so no widening.
  EXPECT_EQ(t.images[1].box_orig, (Box{0, 0, 64, 64}));
}

TEST(RolloutBatchTest, EachRootsCropIsPrefilledOnceForItsG2Continuations) {
  // Greedy 2 x 3 tree: both roots box the same region, every continuation
  // answers from the crop. The encoder sees the full image once and each
  // root's crop once (not once per continuation), and every continuation
  // carries the crop turn in its own tokens all the same.
  const Scripted& sc = scripted();
  RolloutEngine engine(sc.policy, sc.cfg.model, sc.cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1);
  RolloutStats stats;
  TrajectoryGroup g = engine.rollout_tree(sc.samples[0], 2, 3, gen, /*greedy=*/true, &stats);
  ASSERT_EQ(g.trajectories.size(), 6u);
  EXPECT_EQ(stats.images_encoded, 1 + 2);
  for (const auto& t : g.trajectories) {
    EXPECT_EQ(texts(t), (std::vector<std::string>{testing::kScriptBoxTurn, testing::kScriptAnswerTurn}));
    ASSERT_EQ(t.images.size(), 2u);
    EXPECT_TRUE(t.images[1].is_crop);
    EXPECT_EQ(t.tokens, g.trajectories[0].tokens);
  }
}

TEST(RolloutBatchTest, BatchedGreedyEqualsPerQuestionGreedyWithCrops) {
  const Scripted& sc = scripted();
  RolloutEngine engine(sc.policy, sc.cfg.model, sc.cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1);
  for (auto [g1, g2] : {std::pair{1, 1}, std::pair{2, 2}}) {
    auto batched = engine.rollout_batch(sc.samples, g1, g2, gen, true, nullptr);
    ASSERT_EQ(batched.size(), sc.samples.size());
    for (size_t q = 0; q < sc.samples.size(); ++q) {
      auto single = engine.rollout_tree(sc.samples[q], g1, g2, gen, true, nullptr);
      EXPECT_EQ(batched[q].dataset, sc.samples[q].dataset);
      ASSERT_EQ(batched[q].trajectories.size(), size_t(g1 * g2));
      ASSERT_EQ(single.trajectories.size(), size_t(g1 * g2));
      for (size_t i = 0; i < single.trajectories.size(); ++i) {
        // Every row takes the crop path: box turn, crop, answer turn.
        EXPECT_EQ(texts(single.trajectories[i]),
                  (std::vector<std::string>{testing::kScriptBoxTurn, testing::kScriptAnswerTurn}));
        expect_same_trajectory(batched[q].trajectories[i], single.trajectories[i],
                               "question " + std::to_string(q) + " row " + std::to_string(i));
      }
    }
  }
}

TEST(RolloutBatchTest, BatchedGreedyEqualsPerQuestionGreedyForARandomPolicy) {
  // A random policy writes long, unstructured turns up to the token limit:
  // rows of different prompt lengths stay padded against each other for
  // every turn, the case a masking or position bug would show in.
  Config cfg = long_config();
  cfg.rollout.max_new_tokens = 16;
  torch::manual_seed(5);
  Policy policy(cfg.model, Tokenizer().vocab_size());
  policy->eval();
  RolloutEngine engine(policy, cfg.model, cfg.rollout);
  auto samples = task_samples(cfg, 4);
  ASSERT_NE(samples[0].problem.size(), samples[1].problem.size());  // different prompt lengths
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1);
  auto batched = engine.rollout_batch(samples, 1, 1, gen, true, nullptr);
  ASSERT_EQ(batched.size(), samples.size());
  for (size_t q = 0; q < samples.size(); ++q) {
    auto single = engine.rollout_tree(samples[q], 1, 1, gen, true, nullptr);
    expect_same_trajectory(batched[q].trajectories[0], single.trajectories[0], "question " + std::to_string(q));
  }
}

TEST(RolloutBatchTest, SampledBatchGivesValidGroupsWithMatchingLearnerLogprobs) {
  Config cfg = long_config();
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 2;
  cfg.rollout.max_new_tokens = 12;
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  std::vector<Sample> samples{trainer.task().get(0), trainer.task().get(1), trainer.task().get(2)};
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(9);
  auto groups = engine.rollout_batch(samples, 2, 2, gen, false, nullptr);
  ASSERT_EQ(groups.size(), 3u);
  double max_diff = 0;
  for (size_t q = 0; q < groups.size(); ++q) {
    Status v = validate_group(groups[q], cfg, Tokenizer().vocab_size());
    EXPECT_TRUE(v.ok()) << "question " << q << ": " << v.message();
    for (const auto& t : groups[q].trajectories) {
      // Each row was decoded against its own question's image.
      auto lp = trainer.recompute_logprobs(t, samples[q]);
      for (size_t j = 0; j < t.tokens.size(); ++j)
        if (t.policy_mask[j]) max_diff = std::max(max_diff, std::abs(double(lp[j]) - t.logprobs[j]));
    }
  }
  EXPECT_LE(max_diff, 1e-4);
}

// Sampled rollouts of two questions against the learner's recomputation:
// the largest log-prob difference over every sampled token.
double learner_parity(const Config& cfg, int* compared) {
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  std::vector<Sample> samples{trainer.task().get(0), trainer.task().get(1)};
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
  auto groups = engine.rollout_batch(samples, cfg.rollout.g1, cfg.rollout.g2, gen, false, nullptr);
  double max_diff = 0;
  *compared = 0;
  for (size_t q = 0; q < groups.size(); ++q)
    for (const auto& t : groups[q].trajectories) {
      auto lp = trainer.recompute_logprobs(t, samples[q]);
      for (size_t j = 0; j < t.tokens.size(); ++j)
        if (t.policy_mask[j]) {
          max_diff = std::max(max_diff, std::abs(double(lp[j]) - t.logprobs[j]));
          ++*compared;
        }
    }
  return max_diff;
}

TEST(RolloutBatchTest, LearnerParityHoldsWhenImageBlocksSpanPrefillPieces) {
  // User turns are appended in pieces of 64 tokens; a 64-token image block
  // (64 px shown, 8 px patches) always spans two pieces unless aligned, so
  // its embedding rows must be split between them in order.
  Config cfg = long_config();
  cfg.model.image_size = 64;
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 1;
  cfg.rollout.max_new_tokens = 8;
  int compared = 0;
  EXPECT_LE(learner_parity(cfg, &compared), 1e-4);
  EXPECT_GE(compared, 16);
}

TEST(RolloutBatchTest, LearnerParityHoldsWithImageTermsAndAConvStem) {
  // The image slot embeddings and the summary context carried across
  // prefill pieces and turns (crops), with the CNN front end.
  Config cfg = long_config();
  cfg.model.image_size = 64;
  cfg.model.summary_token = true;
  cfg.model.image_context = true;
  cfg.model.image_slot_pos = true;
  cfg.model.image_query = true;
  cfg.model.conv_stem = true;
  cfg.model.stem_grid_convs = 1;
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 2;
  cfg.rollout.max_turns = 3;
  cfg.rollout.max_new_tokens = 8;
  int compared = 0;
  EXPECT_LE(learner_parity(cfg, &compared), 1e-4);
  EXPECT_GE(compared, 32);
}

TEST(RolloutBatchTest, DirectModeGivesOneTurnAndNoCropEvenWhenThePolicyWritesABox) {
  const Scripted& sc = scripted();
  Config cfg = sc.cfg;
  cfg.rollout.mode = "direct";
  RolloutEngine engine(sc.policy, cfg.model, cfg.rollout);
  EXPECT_EQ(engine.mode(), PromptMode::kDirect);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1);
  auto groups = engine.rollout_batch(sc.samples, 2, 2, gen, true, nullptr);
  ASSERT_EQ(groups.size(), sc.samples.size());
  const int S = cfg.model.image_size;
  for (size_t q = 0; q < groups.size(); ++q) {
    ASSERT_EQ(groups[q].trajectories.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      const Trajectory& t = groups[q].trajectories[i];
      EXPECT_EQ(t.root, static_cast<int>(i / 2));
      const auto prompt = first_user_turn(sc.samples[q].problem, S, S, cfg.model.image_tokens(),
                                          PromptMode::kDirect);
      ASSERT_GE(t.tokens.size(), prompt.size());
      EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), t.tokens.begin()));
      // The fitted policy writes its box turn; direct mode ends there.
      EXPECT_EQ(texts(t), std::vector<std::string>{testing::kScriptBoxTurn});
      ASSERT_EQ(t.boxes_shown.size(), 1u);
      EXPECT_TRUE(t.boxes_shown[0].has_value());
      ASSERT_EQ(t.images.size(), 1u);
      EXPECT_FALSE(t.images[0].is_crop);
      EXPECT_FALSE(t.finished);  // not an answer turn
    }
  }
  // The direct instruction offers no box.
  const std::string direct = instruction_text("Q?", 32, 32, PromptMode::kDirect);
  EXPECT_EQ(direct.find("<box>"), std::string::npos);
  EXPECT_NE(direct.find("<answer>"), std::string::npos);
  EXPECT_NE(instruction_text("Q?", 32, 32).find("<box>"), std::string::npos);
}

TEST(RolloutBatchTest, DirectModeSamplesIndependentTrainableTrajectories) {
  Config cfg = test_config();
  cfg.rollout.mode = "direct";
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 3;
  cfg.rollout.max_new_tokens = 16;
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(21);
  Sample s = trainer.task().get(4);
  TrajectoryGroup g = engine.rollout(s, gen);
  Status v = validate_group(g, cfg, Tokenizer().vocab_size());
  ASSERT_TRUE(v.ok()) << v.message();
  ASSERT_EQ(g.trajectories.size(), 6u);
  double max_diff = 0;
  for (const auto& t : g.trajectories) {
    EXPECT_EQ(t.turns.size(), 1u);
    EXPECT_EQ(t.images.size(), 1u);
    auto lp = trainer.recompute_logprobs(t, s);
    for (size_t j = 0; j < t.tokens.size(); ++j)
      if (t.policy_mask[j]) max_diff = std::max(max_diff, std::abs(double(lp[j]) - t.logprobs[j]));
  }
  EXPECT_LE(max_diff, 1e-4);
  // Rows are sampled independently, not copies of g1 roots: with 16 random
  // tokens each, the two trajectories of one root differ.
  EXPECT_NE(g.trajectories[0].tokens, g.trajectories[1].tokens);
}

TEST(RolloutBatchTest, RejectsBadArgumentsByName) {
  Config cfg = test_config();
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1);
  Sample s = trainer.task().get(0);
  EXPECT_THROW(engine.rollout_batch({s}, 0, 1, gen, true, nullptr), std::invalid_argument);
  Sample no_pixels = s;
  no_pixels.image = cv::Mat();
  EXPECT_THROW(engine.rollout_batch({s, no_pixels}, 1, 1, gen, true, nullptr), std::invalid_argument);
  EXPECT_TRUE(engine.rollout_batch({}, 1, 1, gen, true, nullptr).empty());
  RolloutOptions bad = cfg.rollout;
  bad.mode = "zoom";
  EXPECT_THROW(RolloutEngine(trainer.policy(), cfg.model, bad), std::invalid_argument);
}

}  // namespace
}  // namespace gr1
