// Prefix-tree packing of a group (learner/packing.h): the tree of hand-made
// trajectories, and that the packed learner forward gives the same
// log-probs, loss and update as the unpacked one on real rollout trees with
// crops.
#include "learner/packing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "actors/rollout.h"
#include "common/config.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "learner/trainer.h"
#include "tests/scripted_policy.h"

namespace gr1 {
namespace {

constexpr int32_t I = Tokenizer::kImage;

Trajectory traj(std::vector<int32_t> tokens, int images) {
  Trajectory t;
  t.tokens = std::move(tokens);
  t.logprobs.assign(t.tokens.size(), 0.f);
  t.policy_mask.assign(t.tokens.size(), 0);
  t.images.assign(images, ImageRef{false, {}});
  return t;
}

TEST(PackGroupTest, SharedPrefixesBecomeOneNodeWithAncestorsPositionsAndImageTerms) {
  // Blocks of 2 slots. a: 1 I I 5 7 | b: 1 I I 5 8 I I 9 | c: 1 I I 5 8 I I 10
  const Trajectory a = traj({1, I, I, 5, 7}, 1);
  const Trajectory b = traj({1, I, I, 5, 8, I, I, 9}, 2);
  const Trajectory c = traj({1, I, I, 5, 8, I, I, 10}, 2);
  std::string err;
  const PackedGroup p = pack_group({&a, &b, &c}, I, 2, &err);
  ASSERT_TRUE(err.empty()) << err;
  // Distinct prefixes: 1 I I 5 (4), then 7 | 8 I I, then 9 | 10: 4 + 1 + 3 + 2.
  ASSERT_EQ(p.size(), 10u);
  // Depth-first: the first-inserted child first.
  EXPECT_EQ(p.tokens, (std::vector<int32_t>{1, I, I, 5, 7, 8, I, I, 9, 10}));
  EXPECT_EQ(p.parent, (std::vector<int32_t>{-1, 0, 1, 2, 3, 3, 5, 6, 7, 7}));
  EXPECT_EQ(p.depth, (std::vector<int32_t>{0, 1, 2, 3, 4, 4, 5, 6, 7, 7}));
  EXPECT_EQ(p.slot_index, (std::vector<int32_t>{-1, 0, 1, -1, -1, -1, 0, 1, -1, -1}));
  // Text after a block sees its last slot: node 2 for the first block, 7 for
  // the second; the first token sees none.
  EXPECT_EQ(p.context_node, (std::vector<int32_t>{-1, -1, -1, 2, 2, 2, -1, -1, 7, 7}));
  ASSERT_EQ(p.images.size(), 2u);
  EXPECT_EQ(p.images[0].trajectory, 0);  // a created the first block
  EXPECT_EQ(p.images[0].image, 0);
  EXPECT_EQ(p.images[1].trajectory, 1);  // b created the second (b's image 1)
  EXPECT_EQ(p.images[1].image, 1);
  EXPECT_EQ(p.node_of[0], (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(p.node_of[1], (std::vector<int32_t>{0, 1, 2, 3, 5, 6, 7, 8}));
  EXPECT_EQ(p.node_of[2], (std::vector<int32_t>{0, 1, 2, 3, 5, 6, 7, 9}));

  // Bad input is an error, not a crash.
  const Trajectory odd = traj({1, I, 5}, 1);  // one slot for a 2-slot block
  EXPECT_EQ(pack_group({&a, &odd}, I, 2, &err).size(), 0u);
  EXPECT_NE(err.find("image slots"), std::string::npos) << err;
  const Trajectory other = traj({2, I, I}, 1);
  err.clear();
  EXPECT_EQ(pack_group({&a, &other}, I, 2, &err).size(), 0u);
  EXPECT_NE(err.find("different"), std::string::npos) << err;
}

// Answer spans (PolicyImpl::add_image_terms' rule) follow each path: from
// <answer> up to, not including, </answer>, and an open span goes on.
TEST(PackGroupTest, MarksAnswerSpansAlongEachPath) {
  constexpr int32_t A = Tokenizer::kAnswer, E = Tokenizer::kAnswerEnd;
  const Trajectory a = traj({1, I, I, A, 7, E, 8}, 1);
  const Trajectory b = traj({1, I, I, A, 7, 9}, 1);
  const Trajectory c = traj({1, I, I, 5, 9}, 1);
  std::string err;
  const PackedGroup p = pack_group({&a, &b, &c}, I, 2, &err);
  ASSERT_TRUE(err.empty()) << err;
  EXPECT_EQ(p.tokens, (std::vector<int32_t>{1, I, I, A, 7, E, 8, 9, 5, 9}));
  EXPECT_EQ(p.in_answer, (std::vector<uint8_t>{0, 0, 0, 1, 1, 0, 0, 1, 0, 0}));
}

Config packed_config() {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok()) << c.error();
  Config cfg = *c;
  cfg.model.summary_token = true;
  cfg.model.image_context = true;
  cfg.model.image_slot_pos = true;
  cfg.rollout.g1 = 2;
  cfg.rollout.g2 = 3;
  cfg.rollout.max_turns = 3;
  cfg.rollout.max_new_tokens = 16;  // the scripted box turn is 14 tokens
  cfg.rollout.temperature = 0.5;  // the fitted script is followed often, with some branching
  return cfg;
}

// Sampled groups of a policy fitted to write a box, then answer from the
// crop: roots share the prompt, continuations share the crop turn.
std::vector<TrajectoryGroup> sampled_groups(const Config& cfg, Trainer& trainer, int n) {
  std::vector<Sample> samples;
  for (int i = 0; i < n; ++i) samples.push_back(trainer.task().get(i));
  Policy fitted = testing::fit_scripted_policy(cfg.model, cfg.rollout, samples);
  EXPECT_TRUE(copy_parameters(fitted, trainer.policy()).ok());
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(11);
  auto groups = engine.rollout_batch(samples, cfg.rollout.g1, cfg.rollout.g2, gen, false, nullptr);
  for (int i = 0; i < n; ++i) {
    groups[i].prompt_id = static_cast<uint64_t>(i);
    groups[i].actor_id = "a";
    groups[i].weights_version = 0;
  }
  return groups;
}

TEST(PackedForwardTest, LogprobsEqualThePerTrajectoryRecomputation) {
  // With and without the image context in answer spans: the packed nodes,
  // the per-trajectory forward and the actor's decode apply the same rule.
  for (bool answer_ctx : {true, false}) {
  SCOPED_TRACE(answer_ctx ? "answer_image_context true" : "answer_image_context false");
  Config cfg = packed_config();
  cfg.model.answer_image_context = answer_ctx;
  Trainer trainer(cfg);
  auto groups = sampled_groups(cfg, trainer, 2);
  int crops = 0;
  for (size_t q = 0; q < groups.size(); ++q) {
    const Sample s = trainer.task().get(q);
    std::vector<const Trajectory*> g;
    int64_t tokens = 0;
    for (const auto& t : groups[q].trajectories) {
      g.push_back(&t);
      tokens += static_cast<int64_t>(t.tokens.size());
      for (const auto& im : t.images) crops += im.is_crop;
    }
    std::string err;
    const auto pk = pack_group(g, Tokenizer::kImage, cfg.model.image_tokens(), &err);
    ASSERT_TRUE(err.empty()) << err;
    EXPECT_LT(static_cast<int64_t>(pk.size()) * 2, tokens);  // the prompt alone is shared 6 ways
    EXPECT_GT(std::count(pk.in_answer.begin(), pk.in_answer.end(), 1), 0);  // answers were written
    auto packed = trainer.recompute_logprobs_packed(g, s);
    ASSERT_TRUE(packed.ok()) << packed.error();
    double max_diff = 0;
    int compared = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      const auto alone = trainer.recompute_logprobs(*g[i], s);
      for (size_t j = 0; j < alone.size(); ++j) {
        if (!g[i]->policy_mask[j]) continue;
        max_diff = std::max(max_diff, std::abs(double(alone[j]) - (*packed)[i][j]));
        max_diff = std::max(max_diff, std::abs(double(alone[j]) - g[i]->logprobs[j]));
        ++compared;
      }
    }
    EXPECT_GT(compared, 30);
    EXPECT_LE(max_diff, 1e-4);
  }
  EXPECT_GT(crops, 0) << "first trajectory's turns: "
                      << ::testing::PrintToString(turn_texts(groups[0].trajectories[0], cfg.model.image_size));  // the trees did branch after crops
  }
}

// Block-sparse tree attention (hidden_states_packed with parents) against the
// dense masked attention, on hand-made trees: a branch in the middle of a
// chain, a node with three children, rows of different lengths (padding).
TEST(PackedForwardTest, TreeAttentionEqualsTheDenseMaskedAttentionWithGradients) {
  Config cfg = packed_config();
  torch::manual_seed(3);
  Policy policy(cfg.model, Tokenizer::kVocabSize);
  // parent of each node; -1 for the first. Depth-first order.
  const std::vector<std::vector<int64_t>> parents = {
      {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 10, 11, 4, 13, 9, 15, 15},  // 4 branches 3 ways, 15 two
      {-1, 0, 1, 2, 3, 2, 5, 6}};                                     // shorter: padded
  const int64_t B = 2, T = 18;
  auto tokens = torch::full({B, T}, Tokenizer::kPad, torch::kInt64);
  auto positions = torch::zeros({B, T}, torch::kInt64);
  auto valid = torch::zeros({B, T}, torch::kBool);
  auto allowed = torch::zeros({B, T, T}, torch::kBool);
  auto parent = torch::zeros({B, T}, torch::kInt64);
  auto gen = at::detail::createCPUGenerator(5);
  auto random_tokens = torch::randint(10, Tokenizer::kVocabSize - 8, {B, T}, gen, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& pr = parents[static_cast<size_t>(b)];
    std::vector<int64_t> depth(pr.size(), 0);
    for (size_t i = 0; i < pr.size(); ++i) {
      tokens[b][static_cast<int64_t>(i)] = random_tokens[b][static_cast<int64_t>(i)];
      valid[b][static_cast<int64_t>(i)] = true;
      if (pr[i] >= 0) {
        depth[i] = depth[static_cast<size_t>(pr[i])] + 1;
        allowed[b][static_cast<int64_t>(i)].copy_(allowed[b][pr[i]]);
        parent[b][static_cast<int64_t>(i)] = pr[i];
      }
      allowed[b][static_cast<int64_t>(i)][static_cast<int64_t>(i)] = true;
      positions[b][static_cast<int64_t>(i)] = depth[i];
    }
  }
  const auto none = torch::full({B, T}, -1, torch::kInt64);
  const auto emb = torch::zeros({0, cfg.model.d_model});
  auto dense = policy->hidden_states_packed(tokens, emb, positions, valid, allowed, none, none);
  auto sparse = policy->hidden_states_packed(tokens, emb, positions, valid, allowed, none, none, parent);
  ASSERT_EQ(dense.sizes(), sparse.sizes());
  const auto real = valid.unsqueeze(2).to(torch::kFloat32);
  EXPECT_LE(((dense - sparse) * real).abs().max().item<double>(), 1e-5);
  // A node's state depends on its ancestors only: changing a token off the
  // path of node 12 (node 14, another branch of node 4) leaves node 12 alone.
  auto tokens2 = tokens.clone();
  tokens2[0][14] = (tokens[0][14].item<int64_t>() + 1) % (Tokenizer::kVocabSize - 8) + 10;
  auto sparse2 = policy->hidden_states_packed(tokens2, emb, positions, valid, allowed, none, none, parent);
  EXPECT_LE((sparse2[0][12] - sparse[0][12]).abs().max().item<double>(), 1e-6);
  EXPECT_GT((sparse2[0][14] - sparse[0][14]).abs().max().item<double>(), 1e-4);
  // Gradients of a loss over the real nodes are the dense ones.
  auto grads = [&](const torch::Tensor& h) {
    policy->zero_grad();
    (h * real).pow(2).sum().backward();
    std::vector<torch::Tensor> g;
    for (const auto& p : policy->parameters())
      if (p.grad().defined()) g.push_back(p.grad().clone());
    return g;
  };
  auto gd = grads(policy->hidden_states_packed(tokens, emb, positions, valid, allowed, none, none));
  auto gs = grads(policy->hidden_states_packed(tokens, emb, positions, valid, allowed, none, none, parent));
  ASSERT_EQ(gd.size(), gs.size());
  ASSERT_FALSE(gd.empty());
  for (size_t i = 0; i < gd.size(); ++i)
    EXPECT_LE((gd[i] - gs[i]).abs().max().item<double>(), 1e-4 * std::max(1.0, gd[i].abs().max().item<double>()));
  // A parent after its child is refused, naming the node.
  auto bad = parent.clone();
  bad[0][3] = 5;
  try {
    policy->hidden_states_packed(tokens, emb, positions, valid, allowed, none, none, bad);
    ADD_FAILURE() << "a parent after its child was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("node 3 has parent 5"), std::string::npos) << e.what();
  }
}

TEST(PackedForwardTest, StepMatchesTheUnpackedStepAndComputesFewerTokens) {
  Config cfg = packed_config();
  cfg.learner.lr = 1e-3;
  Config plain = cfg;
  plain.learner.packed_forward = false;
  Trainer a(cfg), b(plain);
  auto groups = sampled_groups(cfg, a, 3);
  ASSERT_TRUE(copy_parameters(a.policy(), b.policy()).ok());
  // Both references are the same seeded init (same seed and model); the
  // policies are both the fitted one.
  auto sa = a.step(groups);
  auto sb = b.step(groups);
  ASSERT_TRUE(sa.ok()) << sa.error();
  ASSERT_TRUE(sb.ok()) << sb.error();
  EXPECT_NEAR(sa->loss, sb->loss, 1e-5);
  EXPECT_NEAR(sa->kl, sb->kl, 1e-5);
  EXPECT_NEAR(sa->grad_norm, sb->grad_norm, 1e-4 * std::max(1.0, sb->grad_norm));
  EXPECT_EQ(sa->policy_tokens, sb->policy_tokens);
  EXPECT_LT(sa->forward_tokens * 2, sb->forward_tokens);
  double max_diff = 0;
  auto pa = a.policy()->named_parameters(), pb = b.policy()->named_parameters();
  for (const auto& np : pa)
    max_diff = std::max(max_diff, (np.value() - pb[np.key()]).abs().max().item<double>());
  EXPECT_LE(max_diff, 1e-5);
}

}  // namespace
}  // namespace gr1
