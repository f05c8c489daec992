// Rollouts and the learner's recomputation agree on every sampled token.
#include <gtest/gtest.h>

#include "actors/rollout.h"
#include "common/config.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "learner/trainer.h"

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
  Tokenizer tok;
  t.tokens = tok.encode("<think>look</think><box>[8,8,16,16]</box>");
  t.turns.push_back(TurnSpan{0, static_cast<int32_t>(t.tokens.size())});
  auto box = extract_box(turn_text(t.tokens, t.turns[0]));
  ASSERT_TRUE(box.has_value());
  EXPECT_EQ(*box, (Box{8, 8, 16, 16}));
}

}  // namespace
}  // namespace gr1
