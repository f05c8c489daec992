#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/config.h"
#include "common/tokenizer.h"
#include "common/weights_torch.h"
#include "actors/rollout.h"
#include "learner/advantages.h"
#include "learner/grpo.h"
#include "learner/trainer.h"
#include "learner/validate.h"
#include "common/prompt.h"

namespace gr1 {
namespace {

TEST(AdvantagesTest, GrpoMatchesHandComputedGroup) {
  // rewards 0, 1, 2, 3: mean 1.5, unbiased std sqrt(5/3) = 1.290994.
  auto a = grpo_advantages({0, 1, 2, 3}, 1e-4);
  const double sd = std::sqrt(5.0 / 3.0);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_NEAR(a[0], -1.5 / (sd + 1e-4), 1e-12);
  EXPECT_NEAR(a[3], 1.5 / (sd + 1e-4), 1e-12);
  EXPECT_NEAR(a[1] + a[2], 0.0, 1e-12);
}

TEST(AdvantagesTest, FormatWeightScalesOnlyTheFormatTerm) {
  // Weight 1 is the paper's reward, format + accuracy, exactly.
  const double acc[] = {0.0, 1.0, 0.6, 0.0}, fmt[] = {2.0, 2.0, 1.0, 0.0};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(advantage_reward(acc[i], fmt[i], 1.0), fmt[i] + acc[i]);
  // Weight 0: a malformed wrong trajectory and a well-formed wrong one tie,
  // so the group is ranked by its answers alone.
  std::vector<double> r0, r1;
  for (int i = 0; i < 4; ++i) {
    r0.push_back(advantage_reward(acc[i], fmt[i], 0.0));
    r1.push_back(advantage_reward(acc[i], fmt[i], 1.0));
  }
  const auto a0 = grpo_advantages(r0, 1e-4), a1 = grpo_advantages(r1, 1e-4);
  EXPECT_DOUBLE_EQ(a0[0], a0[3]);
  EXPECT_GT(a1[0], a1[3]);
  EXPECT_GT(a0[1], a0[2]);
  EXPECT_GT(a0[2], a0[0]);
  EXPECT_DOUBLE_EQ(advantage_reward(0.5, 2.0, 0.25), 1.0);
}

TEST(AdvantagesTest, EqualRewardsGiveZeroAdvantage) {
  for (double x : grpo_advantages({2, 2, 2}, 1e-4)) EXPECT_EQ(x, 0.0);
  EXPECT_EQ(grpo_advantages({1.0}, 1e-4)[0], 0.0);
}

TEST(AdvantagesTest, SrpoMatchesHandComputedGroup) {
  // Two bins split at 0.1: small {3, 1} (scales .01, .02), large {2, 0}.
  // intra: +-1/sqrt(2) in each bin; bin means 2 and 1, group mean 1.5, std of
  // bin means sqrt(0.5): inter = +1/sqrt(2) (small), -1/sqrt(2) (large).
  // A = intra + 0.5 * inter.
  const double h = 1.0 / std::sqrt(2.0);
  auto a = srpo_advantages({3, 1, 2, 0}, {0.01, 0.02, 0.5, 1.0}, {0.1}, 0.5, 0.0);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_NEAR(a[0], h + 0.5 * h, 1e-12);
  EXPECT_NEAR(a[1], -h + 0.5 * h, 1e-12);
  EXPECT_NEAR(a[2], h - 0.5 * h, 1e-12);
  EXPECT_NEAR(a[3], -h - 0.5 * h, 1e-12);
}

TEST(AdvantagesTest, SrpoSingletonBinFallsBackToGroupStatistics) {
  // Small bin holds one trajectory: its intra term uses the group's mean 1/3
  // and unbiased std sqrt(1/3); lambda 0 leaves intra only.
  auto a = srpo_advantages({1, 0, 0}, {0.01, 0.5, 0.6}, {0.1}, 0.0, 1e-4);
  EXPECT_NEAR(a[0], (1.0 - 1.0 / 3) / (std::sqrt(1.0 / 3) + 1e-4), 1e-12);
  EXPECT_NEAR(a[1], 0.0, 1e-12);
  EXPECT_NEAR(a[2], 0.0, 1e-12);
  // With a single occupied bin SRPO's inter term vanishes and intra is GRPO.
  auto same = srpo_advantages({0, 1, 2, 3}, {1, 1, 1, 1}, {0.1}, 0.7, 1e-4);
  auto grpo = grpo_advantages({0, 1, 2, 3}, 1e-4);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(same[i], grpo[i], 1e-12);
}

TEST(AdvantagesTest, SrpoLogEdgesAreLogSpaced) {
  auto e = srpo_log_edges(4, 1e-3);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_NEAR(e[0], std::pow(10.0, -2.25), 1e-12);
  EXPECT_NEAR(e[1], std::pow(10.0, -1.5), 1e-12);
  EXPECT_NEAR(e[2], std::pow(10.0, -0.75), 1e-12);
}

TEST(GrpoLossTest, OnPolicyLossIsMinusMeanAdvantageAndKlZero) {
  // Same logp for policy, old and reference: ratio 1, KL 0.
  auto logp = torch::tensor({{-1.0f, -2.0f, -3.0f}, {-0.5f, -0.5f, -0.5f}}).requires_grad_(true);
  auto mask = torch::tensor({{1.f, 1.f, 0.f}, {0.f, 1.f, 1.f}});
  auto adv = torch::tensor({2.0f, -1.0f});
  auto l = grpo_loss(logp, logp.detach(), logp.detach(), mask, adv, {0.2, 0.04, 10.0});
  // per-trajectory token mean of -A: (-2 + 1) / 2 = -0.5
  EXPECT_NEAR(l.loss.item<double>(), -0.5, 1e-6);
  EXPECT_NEAR(l.kl, 0.0, 1e-7);
  EXPECT_EQ(l.tokens, 4);
  l.loss.backward();
  auto g = logp.grad();
  // d/dlogp of -(ratio*A)/n_i/B = -A/(n_i*B) on policy tokens, 0 elsewhere.
  EXPECT_NEAR(g[0][0].item<double>(), -2.0 / (2 * 2), 1e-6);
  EXPECT_NEAR(g[0][2].item<double>(), 0.0, 1e-9);
  EXPECT_NEAR(g[1][1].item<double>(), 1.0 / (2 * 2), 1e-6);
}

TEST(GrpoLossTest, RatioIsClippedForPositiveAdvantage) {
  // logp - old = log(2): ratio 2 > 1.2, A > 0 -> clipped objective, no gradient.
  auto old = torch::full({1, 2}, -2.0f);
  auto logp = (old + std::log(2.0f)).clone().requires_grad_(true);
  auto mask = torch::ones({1, 2});
  auto l = grpo_loss(logp, old, logp.detach(), mask, torch::tensor({1.0f}), {0.2, 0.0, 10.0});
  EXPECT_NEAR(l.loss.item<double>(), -1.2, 1e-5);
  EXPECT_NEAR(l.clip_frac, 1.0, 1e-9);
  l.loss.backward();
  EXPECT_NEAR(logp.grad().abs().sum().item<double>(), 0.0, 1e-9);
}

TEST(GrpoLossTest, K3KlMatchesHandValueAndIsClamped) {
  // d = ref - logp = 1: k3 = e - 1 - 1 = 0.718281828
  auto logp = torch::full({1, 1}, -2.0f);
  auto ref = torch::full({1, 1}, -1.0f);
  auto l = grpo_loss(logp, logp, ref, torch::ones({1, 1}), torch::zeros({1}), {0.2, 1.0, 10.0});
  EXPECT_NEAR(l.kl, std::exp(1.0) - 2.0, 1e-5);
  // d = 50 clamped to 3: e^3 - 3 - 1
  auto far = torch::full({1, 1}, 48.0f);
  auto l2 = grpo_loss(logp, logp, far, torch::ones({1, 1}), torch::zeros({1}), {0.2, 1.0, 3.0});
  EXPECT_NEAR(l2.kl, std::exp(3.0) - 4.0, 1e-3);
}

Config test_config() {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok()) << c.error();
  return *c;
}

TEST(WeightsTest, PackUnpackRoundTripAcrossBuckets) {
  Config cfg = test_config();
  torch::manual_seed(1);
  Policy a(cfg.model, Tokenizer().vocab_size());
  torch::manual_seed(2);
  Policy b(cfg.model, Tokenizer().vocab_size());
  auto snap = pack_weights(a, 7, 4096);
  EXPECT_GT(snap->buckets.size(), 3u);  // small buckets: tensors span them
  ASSERT_TRUE(verify_snapshot(*snap).ok());
  ASSERT_TRUE(unpack_weights(*snap, b).ok());
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
}

TEST(WeightsTest, CorruptionIsDetected) {
  Config cfg = test_config();
  Policy a(cfg.model, Tokenizer().vocab_size());
  auto snap = pack_weights(a, 1, 8192);
  WeightsSnapshot bad = *snap;
  bad.buckets[1][17] ^= 0x01;
  auto s = verify_snapshot(bad);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("checksum"), std::string::npos);
  WeightsSnapshot short_ = *snap;
  short_.buckets.pop_back();
  EXPECT_FALSE(verify_snapshot(short_).ok());
  WeightsSnapshot renamed = *snap;
  renamed.manifest[0].name = "nope";
  EXPECT_FALSE(unpack_weights(renamed, a).ok());
}

// A one-turn trajectory whose policy tokens are `text` (encoded with
// `coords`), its log-probs zero.
Trajectory one_turn(const Sample& s, const std::string& text, const ModelOptions& m,
                    BoxCoordinates coords = BoxCoordinates::kText) {
  Trajectory t;
  t.tokens = first_user_turn(s.problem, m.image_size, m.image_size, m.image_tokens());
  t.policy_mask.assign(t.tokens.size(), 0);
  const auto body = Tokenizer(m.image_size).encode(text, coords);
  t.turns.push_back(TurnSpan{int32_t(t.tokens.size()), int32_t(t.tokens.size() + body.size())});
  for (auto id : body) t.tokens.push_back(id), t.policy_mask.push_back(1);
  t.logprobs.assign(t.tokens.size(), 0.f);
  t.images.push_back(ImageRef{false, {}});
  t.boxes_shown.push_back(std::nullopt);
  t.finished = true;
  return t;
}

// The same, with the actor's log-probs filled in by the learner's own
// recomputation (on-policy).
Trajectory scripted(Trainer& trainer, const Sample& s, const std::string& text, const ModelOptions& m) {
  Trajectory t = one_turn(s, text, m);
  t.logprobs = trainer.recompute_logprobs(t, s);
  return t;
}

// rollout.box_order in the learner: a box's third and fourth coordinates
// are scored against the location tokens past x1 / y1 only (renormalised),
// every other token as without it; packed and one-by-one agree; a box the
// order forbids scores -inf (an actor with the option never writes one).
TEST(TrainerTest, BoxOrderRenormalisesOnlyABoxsThirdAndFourthCoordinate) {
  Config cfg = test_config();
  const int S = cfg.model.image_size;
  const Tokenizer tok(S);
  auto box_turn = [&](int a, int b, int c, int d) {
    return "<think>the red circle</think><box>[" + tok.location_text(a) + "," + tok.location_text(b) +
           "," + tok.location_text(c) + "," + tok.location_text(d) + "]</box>";
  };
  Trainer plain(cfg);
  Config ordered_cfg = cfg;
  ordered_cfg.rollout.box_order = true;
  Trainer ordered(ordered_cfg);
  const Sample s = plain.task().get(0);
  auto trajectory = [&](const std::string& text) {
    return one_turn(s, text, cfg.model, BoxCoordinates::kLocationTokens);
  };
  const Trajectory t = trajectory(box_turn(4, 6, 20, 24));
  std::vector<size_t> locs;
  for (size_t j = 0; j < t.tokens.size(); ++j)
    if (Tokenizer::is_location(t.tokens[j])) locs.push_back(j);
  ASSERT_EQ(locs.size(), 4u);
  const auto off = plain.recompute_logprobs(t, s);
  const auto on = ordered.recompute_logprobs(t, s);
  ASSERT_EQ(off.size(), on.size());
  for (size_t j = 0; j < t.tokens.size(); ++j) {
    if (j == locs[2] || j == locs[3]) {
      // Mass of <loc_0..4> (resp. <loc_0..6>) removed: the target gains.
      EXPECT_GT(on[j], off[j] + 1e-6) << j;
      EXPECT_LT(on[j], 0.f);
    } else {
      EXPECT_EQ(on[j], off[j]) << j;  // the same weights (one seed), the same distribution
    }
  }
  auto packed = ordered.recompute_logprobs_packed({&t}, s);
  ASSERT_TRUE(packed.ok()) << packed.error();
  for (size_t j = 1; j < t.tokens.size(); ++j)
    if (t.policy_mask[j]) EXPECT_NEAR((*packed)[0][j], on[j], 1e-4) << j;
  // x2 below x1: impossible under the option, possible without it.
  const Trajectory bad = trajectory(box_turn(20, 6, 4, 24));
  const auto bad_on = ordered.recompute_logprobs(bad, s);
  const auto bad_off = plain.recompute_logprobs(bad, s);
  size_t third = 0;
  for (size_t j = 0, seen = 0; j < bad.tokens.size(); ++j)
    if (Tokenizer::is_location(bad.tokens[j]) && ++seen == 3) third = j;
  ASSERT_GT(third, 0u);
  EXPECT_EQ(bad_on[third], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isfinite(bad_off[third]));
}

TEST(TrainerTest, StepRaisesTheLikelihoodOfTheRewardedAnswer) {
  Config cfg = test_config();
  cfg.learner.lr = 1e-2;
  cfg.learner.beta_kl = 0.0;
  Trainer trainer(cfg);
  const Sample s = trainer.task().get(3);
  TrajectoryGroup g;
  g.actor_id = "a";
  g.prompt_id = 3;
  g.weights_version = 0;
  const std::string right = "<think>read</think><answer>" + s.solution + "</answer>";
  const std::string wrong = "<think>read</think><answer>#</answer>";
  for (int i = 0; i < 2; ++i) g.trajectories.push_back(scripted(trainer, s, right, cfg.model));
  for (int i = 0; i < 2; ++i) g.trajectories.push_back(scripted(trainer, s, wrong, cfg.model));
  auto sum_lp = [](const Trajectory& t, const std::vector<float>& lp) {
    double x = 0;
    for (size_t j = 0; j < lp.size(); ++j) x += t.policy_mask[j] ? lp[j] : 0.0;
    return x;
  };
  const double before = sum_lp(g.trajectories[0], g.trajectories[0].logprobs);
  auto st = trainer.step({g});
  ASSERT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(trainer.version(), 1u);
  EXPECT_EQ(st->trajectories, 4);
  EXPECT_NEAR(st->accuracy_mean, 0.5, 1e-9);
  EXPECT_NEAR(st->format_mean, 2.0, 1e-9);
  EXPECT_LE(st->logp_mismatch_max, 1e-4);  // on-policy: actor == learner
  const double after = sum_lp(g.trajectories[0], trainer.recompute_logprobs(g.trajectories[0], s));
  EXPECT_GT(after, before);
}

}  // namespace
}  // namespace gr1

namespace gr1 {
namespace {

// A structurally valid group built by real rollouts, then broken one field at a time.
class ValidateGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg = test_config();
    trainer = std::make_unique<Trainer>(cfg);
    RolloutEngine engine(trainer->policy(), cfg.model, cfg.rollout);
    auto gen = torch::make_generator<torch::CPUGeneratorImpl>(5);
    good = engine.rollout(trainer->task().get(1), gen);
  }
  std::string error_of(const TrajectoryGroup& g) {
    Status s = validate_group(g, cfg, Tokenizer().vocab_size());
    return s.ok() ? "<valid>" : s.message();
  }
  Config cfg;
  std::unique_ptr<Trainer> trainer;
  TrajectoryGroup good;
};

TEST_F(ValidateGroupTest, RealRolloutIsValid) { EXPECT_EQ(error_of(good), "<valid>"); }

TEST_F(ValidateGroupTest, EachCorruptionIsRejectedWithItsReason) {
  auto g = good;
  g.trajectories.pop_back();
  EXPECT_NE(error_of(g).find("expected g1*g2"), std::string::npos);
  g = good;
  g.trajectories[1].tokens[3] = 5000;
  EXPECT_NE(error_of(g).find("out of vocabulary"), std::string::npos);
  g = good;
  g.trajectories[0].logprobs.pop_back();
  EXPECT_NE(error_of(g).find("differ in length"), std::string::npos);
  g = good;
  {
    auto& t = g.trajectories[0];
    const int j = t.turns[0].begin;
    t.logprobs[j] = 3.0f;  // not a log-probability
  }
  EXPECT_NE(error_of(g).find("not a log-probability"), std::string::npos);
  g = good;
  g.trajectories[0].images.push_back(ImageRef{true, Box{0, 0, 10, 10}});
  EXPECT_NE(error_of(g).find("image slots"), std::string::npos);
  g = good;
  g.trajectories[0].policy_mask[1] = 1;
  g.trajectories[0].logprobs[1] = -1.f;
  EXPECT_NE(error_of(g).find("policy_mask differs"), std::string::npos);
  g = good;
  g.trajectories[0].turns[0].end = 1 << 20;
  EXPECT_NE(error_of(g).find("out of range"), std::string::npos);
  g = good;
  g.trajectories[0].root = 7;
  EXPECT_NE(error_of(g).find("root"), std::string::npos);
}

}  // namespace
}  // namespace gr1
