// The policy: shapes, masks, the KV-cache decoder against the full forward,
// sampling, and safetensors checkpoints.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "common/policy.h"
#include "common/safetensors.h"
#include "common/tokenizer.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;

ModelOptions small_model() {
  ModelOptions o;
  o.d_model = 32;
  o.n_layers = 2;
  o.n_heads = 2;
  o.ffn_hidden = 64;
  o.image_size = 16;
  o.patch_size = 8;  // 4 image tokens
  o.vision_layers = 1;
  o.summary_token = false;  // the tests below count 4 slots per image
  o.max_seq_len = 256;
  return o;
}

const int64_t kV = Tokenizer().vocab_size();

// The default init is small (near-uniform logits), which would hide a wrong
// position or mask under the tolerance. Tests use unit-scale weights so
// every mistake moves the log-probs visibly.
Policy sharp_policy(uint64_t seed, const ModelOptions& o = small_model()) {
  torch::manual_seed(seed);
  Policy p(o, kV);
  torch::NoGradGuard ng;
  for (auto& t : p->parameters()) {
    if (t.dim() >= 2) {
      t.normal_(0.0, 1.5 / std::sqrt(static_cast<double>(t[0].numel())));
    } else {
      t.normal_(1.0, 0.2);
    }
  }
  return p;
}

fs::path temp_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return fs::temp_directory_path() /
         (std::string("gr1_policy_test_") + std::to_string(::getpid()) + "_" + info->name() + "_" + name);
}

std::vector<int64_t> text_ids(const std::string& s) {
  std::vector<int64_t> out;
  for (int32_t id : Tokenizer().encode(s)) out.push_back(id);
  return out;
}

torch::Tensor row_tensor(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kInt64).view({1, static_cast<int64_t>(ids.size())});
}

// [1,T] full-sequence log-prob of every token given its prefix, via forward().
torch::Tensor full_logprobs(Policy& p, const std::vector<int64_t>& ids, const torch::Tensor& emb,
                            double temperature) {
  const int64_t T = static_cast<int64_t>(ids.size());
  auto tokens = row_tensor(ids);
  auto logits = p->forward(tokens, emb, torch::arange(T, torch::kInt64).view({1, T}),
                           torch::ones({1, T}, torch::kBool));
  return token_logprobs(logits.slice(1, 0, T - 1), tokens.slice(1, 1), temperature);
}

TEST(PolicyTest, SummaryTokenIsAppendedAfterUnchangedPatchRows) {
  ModelOptions with = small_model();
  with.summary_token = true;
  ASSERT_EQ(with.image_tokens(), 5);
  ASSERT_EQ(with.patch_tokens(), 4);
  torch::manual_seed(3);
  Policy a(with, kV);
  Policy b(small_model(), kV);  // same parameters, no summary token
  ASSERT_TRUE(copy_parameters(a, b).ok());
  torch::NoGradGuard ng;
  auto px = torch::rand({2, 3, 16, 16});
  auto ea = a->encode_images(px), eb = b->encode_images(px);
  ASSERT_EQ(ea.sizes(), (std::vector<int64_t>{2, 5, 32}));
  EXPECT_TRUE(torch::allclose(ea.slice(1, 0, 4), eb, 1e-6, 1e-6));
  // The summary is a function of all patches: it is not any patch's row, and
  // it changes when only one patch's pixels change.
  for (int64_t j = 0; j < 4; ++j) EXPECT_FALSE(torch::allclose(ea.select(1, 4), ea.select(1, j)));
  auto px2 = px.clone();
  px2.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(8, 16),
                  torch::indexing::Slice(8, 16)},
                 1.0);
  auto ea2 = a->encode_images(px2);
  EXPECT_FALSE(torch::allclose(ea2.select(1, 4), ea.select(1, 4), 1e-4, 1e-4));
  // The flag survives a checkpoint round trip.
  const auto path = std::filesystem::temp_directory_path() / "gr1_summary_token.safetensors";
  ASSERT_TRUE(save_policy(path.string(), a, with).ok());
  auto loaded = load_policy(path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->options.summary_token);
  EXPECT_TRUE(torch::equal(loaded->policy->encode_images(px), ea));
  std::filesystem::remove(path);
}

TEST(PolicyTest, ConvStemGivesThePatchGridAndSurvivesACheckpoint) {
  ModelOptions o = small_model();
  o.conv_stem = true;
  torch::manual_seed(5);
  Policy p(o, kV);
  bool has_stem = false;
  for (const auto& np : p->named_parameters()) {
    has_stem |= np.key().rfind("vision.stem.", 0) == 0;
    EXPECT_NE(np.key().rfind("vision.patch_embed", 0), 0u) << np.key();
  }
  EXPECT_TRUE(has_stem);
  torch::NoGradGuard ng;
  auto px = torch::rand({2, 3, 16, 16});
  auto e = p->encode_images(px);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 4, 32}));
  // Each patch row depends on its own pixels: changing one corner changes
  // the encoding (the stem is not a constant).
  auto px2 = px.clone();
  px2.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, 8),
                  torch::indexing::Slice(0, 8)},
                 0.0);
  EXPECT_FALSE(torch::allclose(p->encode_images(px2), e, 1e-5, 1e-5));
  const auto path = std::filesystem::temp_directory_path() / "gr1_conv_stem.safetensors";
  ASSERT_TRUE(save_policy(path.string(), p, o).ok());
  auto loaded = load_policy(path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->options.conv_stem);
  EXPECT_TRUE(torch::equal(loaded->policy->encode_images(px), e));
  std::filesystem::remove(path);
  ModelOptions bad = o;
  bad.image_size = 24;
  bad.patch_size = 6;  // not a power of 2
  EXPECT_THROW(Policy(bad, kV), std::invalid_argument);
}

TEST(PolicyTest, ShapesAndImageSlotCountIsChecked) {
  torch::manual_seed(0);
  ModelOptions o = small_model();
  Policy p(o, kV);
  EXPECT_GT(count_parameters(p), 10000);
  auto emb = p->encode_images(torch::rand({3, 3, 16, 16}));
  ASSERT_EQ(emb.sizes(), (std::vector<int64_t>{3, 4, 32}));
  std::vector<int64_t> ids = {Tokenizer::kBos, Tokenizer::kUser};
  for (int i = 0; i < 8; ++i) ids.push_back(Tokenizer::kImage);
  ids.push_back(Tokenizer::kEnd);
  auto tokens = row_tensor(ids).repeat({3, 1});  // 24 slots, but only 12 image rows
  const int64_t T = tokens.size(1);
  auto pos = torch::arange(T).repeat({3, 1});
  auto mask = torch::ones({3, T}, torch::kBool);
  mask[2].fill_(false);
  mask[2][0] = true;  // row 2: only <bos> is real, so 16 slots remain
  EXPECT_THROW(p->forward(tokens, emb.reshape({12, 32}), pos, mask), std::invalid_argument);
  auto emb16 = p->encode_images(torch::rand({4, 3, 16, 16})).reshape({16, 32});
  auto logits = p->forward(tokens, emb16, pos, mask);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, T, kV}));
  EXPECT_FALSE(logits.isnan().any().item<bool>());
  EXPECT_THROW(p->encode_images(torch::rand({1, 3, 8, 8})), std::invalid_argument);
  // <image> is never a prediction.
  EXPECT_LT(logits.select(2, Tokenizer::kImage).max().item<float>(), -1e8);
}

TEST(PolicyTest, InitIsDeterministicGivenTheSeed) {
  torch::manual_seed(5);
  Policy a(small_model(), kV);
  torch::manual_seed(5);
  Policy b(small_model(), kV);
  torch::manual_seed(6);
  Policy c(small_model(), kV);
  auto pa = ordered_parameters(a), pb = ordered_parameters(b), pc = ordered_parameters(c);
  ASSERT_EQ(pa.size(), pb.size());
  bool any_diff = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].first, pb[i].first);
    EXPECT_TRUE(torch::equal(pa[i].second, pb[i].second)) << pa[i].first;
    any_diff |= !torch::equal(pa[i].second, pc[i].second);
  }
  EXPECT_TRUE(any_diff);
  EXPECT_EQ(pa.front().first.rfind("vision.", 0), 0u);  // vision parameters are named vision.*
}

TEST(PolicyTest, CopyParametersMakesAnIdenticalPolicy) {
  Policy a = sharp_policy(1), b = sharp_policy(2);
  ASSERT_TRUE(copy_parameters(a, b).ok());
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  ModelOptions other = small_model();
  other.ffn_hidden = 48;
  torch::manual_seed(3);
  Policy c(other, kV);
  EXPECT_FALSE(copy_parameters(a, c).ok());
}

TEST(PolicyTest, CopySharedParametersFillsALargerArchitectureAndListsTheRest) {
  ModelOptions small = small_model();
  small.summary_token = true;
  ModelOptions big = small;
  big.image_context = true;
  big.image_slot_pos = true;
  Policy a = sharp_policy(1, small), b = sharp_policy(2, big);
  const auto before = b->named_parameters()["image_slot_pos"].clone();
  auto kept = copy_shared_parameters(a, b);
  ASSERT_TRUE(kept.ok()) << kept.error();
  EXPECT_EQ(*kept, (std::vector<std::string>{"image_slot_pos", "image_ctx.weight"}));
  for (const auto& np : a->named_parameters())
    EXPECT_TRUE(torch::equal(np.value(), b->named_parameters()[np.key()])) << np.key();
  EXPECT_TRUE(torch::equal(before, b->named_parameters()["image_slot_pos"]));
  // The other way round: the source has parameters the target lacks.
  EXPECT_FALSE(copy_shared_parameters(b, a).ok());
  ModelOptions wide = small;
  wide.ffn_hidden = 48;
  auto bad = copy_shared_parameters(a, sharp_policy(3, wide));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("shape"), std::string::npos) << bad.error();
}

// Right or left padding, garbage in the padding, and explicit positions:
// the valid logits equal those of each sequence alone.
TEST(PolicyTest, PaddingIsInvisibleToValidTokens) {
  Policy p = sharp_policy(3);
  torch::NoGradGuard ng;
  std::vector<std::vector<int64_t>> seqs = {text_ids("<|user|>ab<image><image><image><image>c<|end|>"),
                                            text_ids("<think>hello world</think>"),
                                            text_ids("x<image><image><image><image>yz")};
  auto emb = p->encode_images(torch::rand({2, 3, 16, 16}));
  std::vector<torch::Tensor> row_emb = {emb[0], torch::Tensor(), emb[1]};
  const int64_t B = 3, T = 30;
  for (bool left : {false, true}) {
    auto tokens = torch::randint(0, kV, {B, T}, torch::kInt64);  // garbage, incl. <image>
    auto positions = torch::randint(0, 300, {B, T}, torch::kInt64);
    auto mask = torch::zeros({B, T}, torch::kBool);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = seqs[b].size(), off = left ? T - L : 0;
      for (int64_t j = 0; j < L; ++j) {
        tokens[b][off + j] = seqs[b][j];
        positions[b][off + j] = j;
        mask[b][off + j] = true;
      }
    }
    auto logits = p->forward(tokens, emb.reshape({8, 32}), positions, mask);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = seqs[b].size(), off = left ? T - L : 0;
      auto alone = p->forward(row_tensor(seqs[b]), row_emb[b], torch::arange(L).view({1, L}),
                              torch::ones({1, L}, torch::kBool));
      auto diff = (logits[b].slice(0, off, off + L) - alone[0]).abs().max().item<double>();
      EXPECT_LE(diff, 1e-4) << "row " << b << (left ? " left" : " right") << " padding";
    }
  }
}

// Causal attention in query blocks (attention_query_chunk) leaves out the
// keys after each block instead of masking them: values and gradients equal
// the full score matrix's, with left and right padding and image terms.
TEST(PolicyTest, QueryBlockedAttentionEqualsTheFullScoreMatrix) {
  ModelOptions o = small_model();
  o.summary_token = true;  // image_context reads the summary row: 5 slots per image
  o.image_context = true;
  o.image_slot_pos = true;
  Policy p = sharp_policy(5, o);
  std::string img;
  for (int i = 0; i < o.image_tokens(); ++i) img += "<image>";
  std::vector<std::vector<int64_t>> seqs = {
      text_ids("<|user|>ab" + img + "c<|end|><think>hello world</think>"),
      text_ids("<think>hello world, a longer thought</think>"),
      text_ids("x" + img + "yz<answer>q</answer>")};
  torch::Tensor pixels;
  {
    torch::NoGradGuard ng;
    pixels = torch::rand({2, 3, 16, 16});
  }
  const int64_t B = 3, T = 48;
  const auto w = torch::randn({B, T, kV});
  for (bool left : {false, true}) {
    auto tokens = torch::zeros({B, T}, torch::kInt64);
    auto positions = torch::zeros({B, T}, torch::kInt64);
    auto mask = torch::zeros({B, T}, torch::kBool);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = seqs[b].size(), off = left ? T - L : 0;
      ASSERT_LE(L, T);
      for (int64_t j = 0; j < L; ++j) {
        tokens[b][off + j] = seqs[b][j];
        positions[b][off + j] = j;
        mask[b][off + j] = true;
      }
    }
    auto run = [&](int64_t chunk) {
      p->set_attention_query_chunk(chunk);
      p->zero_grad();
      auto emb = p->encode_images(pixels);
      auto logits = p->forward(tokens, emb.reshape({-1, emb.size(2)}), positions, mask);
      (logits * w * mask.unsqueeze(2)).sum().backward();
      std::vector<torch::Tensor> grads;
      for (const auto& t : p->parameters()) grads.push_back(t.grad().clone());
      return std::make_pair(logits.detach().masked_fill(mask.logical_not().unsqueeze(2), 0), grads);
    };
    const auto [full, full_grads] = run(0);
    for (int64_t chunk : {1, 5, 16, 47}) {
      const auto [blocked, grads] = run(chunk);
      EXPECT_LE((blocked - full).abs().max().item<double>(), 1e-4)
          << "chunk " << chunk << (left ? " left" : " right") << " padding";
      double worst = 0;
      for (size_t i = 0; i < grads.size(); ++i)
        worst = std::max(worst, ((grads[i] - full_grads[i]).abs().max() /
                                 (full_grads[i].abs().max() + 1e-6)).item<double>());
      EXPECT_LE(worst, 1e-4) << "gradients, chunk " << chunk << (left ? " left" : " right");
    }
  }

  torch::NoGradGuard ng;
  p->set_attention_query_chunk(PolicyImpl::default_attention_query_chunk());
  EXPECT_THROW(p->set_attention_query_chunk(-1), std::invalid_argument);
}

// RoPE sees relative positions: a uniform shift changes nothing, a gap
// changes the log-probs far beyond the tolerance the cache test uses (so
// that test can fail on a per-row position mistake).
TEST(PolicyTest, OnlyRelativePositionsMatter) {
  Policy p = sharp_policy(4);
  torch::NoGradGuard ng;
  auto ids = text_ids("<think>abc def</think>");
  const int64_t L = ids.size();
  auto t = row_tensor(ids);
  auto m = torch::ones({1, L}, torch::kBool);
  auto lsm = [&](const torch::Tensor& pos) { return torch::log_softmax(p->forward(t, {}, pos.view({1, L}), m), -1); };
  auto base = lsm(torch::arange(L));
  EXPECT_LE((base - lsm(torch::arange(7, L + 7))).abs().max().item<double>(), 1e-4);
  auto gap = torch::arange(L);
  gap.slice(0, L / 2).add_(3);
  EXPECT_GT((base - lsm(gap)).abs().max().item<double>(), 1e-2);
  EXPECT_THROW(p->forward(t, {}, torch::arange(250, 250 + L).view({1, L}), m), std::invalid_argument);
}

// One row's history as the test tracks it: exactly what was fed and sampled.
struct Track {
  std::vector<int64_t> tokens;
  std::vector<float> logprobs;  // per token; sampled tokens only
  std::vector<uint8_t> sampled;
  std::vector<torch::Tensor> images;  // [4,d] each, in order
};

// Multi-chunk decoding with forks, inactive rows, a second image turn on some
// rows, shrinking, and top-k/top-p sampling: the actor-side log-probs equal
// the full-sequence recomputation at compact positions 0..L-1.
// Samples a branching, forking multi-turn batch through DecodeSession and
// recomputes every sampled token's log-prob with forward(), per row and
// batched. The first image block is split over two appends.
void check_decode_matches_forward(const ModelOptions& o) {
  Policy p = sharp_policy(7, o);
  const int n_img = o.image_tokens();
  p->eval();
  torch::NoGradGuard ng;
  const SamplingOptions so{0.8, 40, 0.95};
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(1234);
  std::vector<Track> rows(1);
  DecodeSession sess(p, 1);

  auto append_chunks = [&](const std::vector<std::vector<int64_t>>& chunks,
                           const std::vector<std::vector<torch::Tensor>>& imgs) {
    const int64_t B = rows.size();
    size_t n = 0;
    for (auto& c : chunks) n = std::max(n, c.size());
    auto tokens = torch::full({B, (int64_t)n}, Tokenizer::kImage, torch::kInt64);  // padding garbage
    auto valid = torch::zeros({B, (int64_t)n}, torch::kBool);
    std::vector<torch::Tensor> all;
    for (int64_t b = 0; b < B; ++b) {
      for (size_t j = 0; j < chunks[b].size(); ++j) {
        tokens[b][j] = chunks[b][j];
        valid[b][j] = true;
        rows[b].tokens.push_back(chunks[b][j]);
        rows[b].logprobs.push_back(0.f);
        rows[b].sampled.push_back(0);
      }
      for (auto& im : imgs[b]) {
        rows[b].images.push_back(im);
        all.push_back(im);
      }
    }
    return sess.append(tokens, valid, all.empty() ? torch::Tensor() : torch::cat(all, 0));
  };
  // Samples `steps[b]` tokens for row b (0 = inactive), one batched step at a time.
  auto sample_steps = [&](torch::Tensor last, const std::vector<int>& steps) {
    const int64_t B = rows.size();
    const int max_steps = *std::max_element(steps.begin(), steps.end());
    for (int s = 0; s < max_steps; ++s) {
      Sampled smp = sample_tokens(last, so, gen);
      auto valid = torch::zeros({B, 1}, torch::kBool);
      for (int64_t b = 0; b < B; ++b) {
        if (s >= steps[b]) continue;
        const int64_t tok = smp.tokens[b].item<int64_t>();
        EXPECT_NE(tok, Tokenizer::kImage);
        rows[b].tokens.push_back(tok);
        rows[b].logprobs.push_back(smp.logprobs[b].item<float>());
        rows[b].sampled.push_back(1);
        valid[b][0] = true;
      }
      last = sess.append(smp.tokens.view({B, 1}), valid, torch::Tensor());
    }
    return last;
  };
  auto fork = [&](const std::vector<int64_t>& index) {
    std::vector<Track> next;
    for (auto i : index) next.push_back(rows[i]);
    rows = next;
    sess.select_rows(torch::tensor(index, torch::kInt64));
  };
  auto image = [&]() { return p->encode_images(torch::rand({1, 3, 16, 16}))[0]; };
  auto user_turn = [&](const std::string& q) {
    auto ids = text_ids("<|user|>" + q);
    for (int i = 0; i < n_img; ++i) ids.push_back(Tokenizer::kImage);
    for (auto t : text_ids("<|end|><|assistant|>")) ids.push_back(t);
    return ids;
  };

  // Prompt with an image, split over two appends inside the image block.
  auto prompt = user_turn("What is on the sign?");
  prompt.insert(prompt.begin(), Tokenizer::kBos);
  const auto first_slot = std::find(prompt.begin(), prompt.end(), Tokenizer::kImage) - prompt.begin();
  const int64_t split = first_slot + 2;
  std::vector<int64_t> head(prompt.begin(), prompt.begin() + split), tail(prompt.begin() + split, prompt.end());
  auto im0 = image();
  append_chunks({head}, {{im0.slice(0, 0, 2)}});
  auto last = append_chunks({tail}, {{im0.slice(0, 2)}});

  // Fork into 3 roots; turns of different lengths.
  fork({0, 0, 0});
  last = sess.last_logits();
  last = sample_steps(last, {6, 3, 9});

  // Second user turn with a new image for rows 0 and 2 only; row 1 idles.
  auto q0 = user_turn("Zoom in."), q2 = user_turn("Look again, closer please.");
  q0.insert(q0.begin(), Tokenizer::kEnd);
  last = append_chunks({q0, {}, q2}, {{image()}, {}, {image()}});
  last = sample_steps(last, {5, 4, 2});
  // An answer span opened in a chunk and continued by sampled tokens (with
  // model.answer_image_context false they get no image context; the span
  // state crosses appends and forks).
  last = append_chunks({text_ids("<think>it</think><answer>"), {}, text_ids("<answer>")}, {{}, {}, {}});
  last = sample_steps(last, {3, 2, 4});

  // Fork row 2, reorder, then drop the longest row (its columns compact away).
  fork({2, 0, 1, 2});
  const int64_t cols_before = sess.columns();
  last = sample_steps(sess.last_logits(), {3, 7, 2, 1});
  fork({0, 2, 3});
  EXPECT_LT(sess.columns(), cols_before + 7);
  last = sample_steps(sess.last_logits(), {4, 2, 5});

  // Counters are the compact lengths.
  auto pos = sess.positions();
  ASSERT_EQ(sess.batch(), 3);
  for (int64_t b = 0; b < 3; ++b) EXPECT_EQ(pos[b].item<int64_t>(), (int64_t)rows[b].tokens.size());

  // Recompute each row alone, and all rows right-padded in one batch.
  double max_diff = 0, max_diff_batch = 0;
  int compared = 0;
  const int64_t B = rows.size();
  int64_t T = 0;
  for (auto& r : rows) T = std::max<int64_t>(T, r.tokens.size());
  auto bt = torch::full({B, T}, Tokenizer::kPad, torch::kInt64);
  auto bm = torch::zeros({B, T}, torch::kBool);
  std::vector<torch::Tensor> all_imgs;
  std::vector<torch::Tensor> alone;
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[b];
    for (size_t j = 0; j < r.tokens.size(); ++j) bt[b][j] = r.tokens[j], bm[b][j] = true;
    for (auto& im : r.images) all_imgs.push_back(im);
    alone.push_back(full_logprobs(p, r.tokens, torch::cat(r.images, 0), so.temperature)[0]);
  }
  auto blogits = p->forward(bt, torch::cat(all_imgs, 0), torch::arange(T).repeat({B, 1}), bm);
  auto blp = token_logprobs(blogits.slice(1, 0, T - 1), bt.slice(1, 1), so.temperature);
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[b];
    for (size_t j = 1; j < r.tokens.size(); ++j) {
      if (!r.sampled[j]) continue;
      max_diff = std::max(max_diff, std::abs(alone[b][j - 1].item<double>() - r.logprobs[j]));
      max_diff_batch = std::max(max_diff_batch, std::abs(blp[b][j - 1].item<double>() - r.logprobs[j]));
      ++compared;
    }
  }
  EXPECT_GE(compared, 30);
  EXPECT_LE(max_diff, 1e-4);
  EXPECT_LE(max_diff_batch, 1e-4);
  // The session's last logits are those of the final position.
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = rows[b].tokens.size();
    auto full = p->forward(row_tensor(rows[b].tokens), torch::cat(rows[b].images, 0),
                           torch::arange(L).view({1, L}), torch::ones({1, L}, torch::kBool));
    EXPECT_LE((full[0][L - 1] - last[b]).abs().max().item<double>(), 1e-3);
  }
}

TEST(DecodeSessionTest, SampledLogprobsMatchFullForwardRecomputation) {
  check_decode_matches_forward(small_model());
}

// With and without the image context in answer spans (the check forces one
// mid-rollout).
TEST(DecodeSessionTest, SampledLogprobsMatchFullForwardRecomputationWithImageTerms) {
  for (bool answer_ctx : {true, false}) {
    SCOPED_TRACE(answer_ctx ? "answer_image_context true" : "answer_image_context false");
    ModelOptions o = small_model();
    o.summary_token = true;
    o.image_context = true;
    o.answer_image_context = answer_ctx;
    o.image_slot_pos = true;
    o.image_query = true;
    check_decode_matches_forward(o);
  }
}

// model.answer_image_context false: the tokens from <answer> up to, not
// including, </answer> get no image context, in one chunk or several; every
// other text token after an image still gets it.
TEST(PolicyTest, AnswerSpansGetNoImageContextWhenAnswerImageContextIsOff) {
  for (bool answer_ctx : {true, false}) {
    ModelOptions o = small_model();
    o.summary_token = true;
    o.image_context = true;  // 5 slots per image, the 5th the summary row
    o.answer_image_context = answer_ctx;
    torch::manual_seed(4);
    Policy p(o, kV);
    torch::NoGradGuard ng;
    for (auto& np : p->named_parameters())
      if (np.key() == "image_ctx.weight") np.value().copy_(torch::eye(o.d_model));
    // a [5 slots] <think> b </think> <answer> c d </answer> e <answer> f
    std::vector<int64_t> ids = text_ids("a");
    for (int i = 0; i < o.image_tokens(); ++i) ids.push_back(Tokenizer::kImage);
    for (auto t : text_ids("<think>b</think><answer>cd</answer>e<answer>f")) ids.push_back(t);
    const int64_t T = static_cast<int64_t>(ids.size());
    ASSERT_EQ(T, 16);
    const std::vector<int> span_cols = {9, 10, 11, 14, 15};  // <answer> c d, <answer> f
    auto tokens = row_tensor(ids);
    auto valid = torch::ones({1, T}, torch::kBool);
    auto x = torch::randn({1, T, o.d_model});
    for (int64_t split : {int64_t{0}, int64_t{10}, int64_t{13}}) {  // 10: inside the first span
      auto st = PolicyImpl::ImageTermsState::zeros(1, o.d_model);
      std::vector<torch::Tensor> parts;
      if (split > 0)
        parts.push_back(p->add_image_terms(x.slice(1, 0, split), tokens.slice(1, 0, split),
                                           valid.slice(1, 0, split), st));
      if (split == 10) {
        EXPECT_EQ(st.in_answer[0].item<bool>(), !answer_ctx);
      }
      if (split == 13) {
        EXPECT_FALSE(st.in_answer[0].item<bool>());  // after </answer>
      }
      parts.push_back(p->add_image_terms(x.slice(1, split), tokens.slice(1, split), valid.slice(1, split), st));
      EXPECT_EQ(st.in_answer[0].item<bool>(), !answer_ctx);  // the last <answer> is open
      auto d = torch::cat(parts, 1)[0] - x[0];
      for (int64_t c = 0; c < T; ++c) {
        const bool text_after_image = c > 5;
        const bool in_span = std::count(span_cols.begin(), span_cols.end(), c) > 0;
        const bool gets = text_after_image && (answer_ctx || !in_span);
        const auto want = gets ? x[0][5] : torch::zeros({o.d_model});
        EXPECT_TRUE(torch::allclose(d[c], want, 1e-5, 1e-5))
            << "column " << c << " split " << split << " answer_image_context " << answer_ctx;
      }
    }
    const auto path = temp_path("answer_ctx.safetensors");
    ASSERT_TRUE(save_policy(path.string(), p, o).ok());
    auto loaded = load_policy(path.string());
    ASSERT_TRUE(loaded.ok()) << loaded.error();
    EXPECT_EQ(loaded->options.answer_image_context, answer_ctx);
    fs::remove(path);
  }
  EXPECT_THROW(
      [] {
        ModelOptions bad = small_model();
        bad.answer_image_context = false;  // without an image context
        Policy q(bad, kV);
      }(),
      std::invalid_argument);
}

TEST(PolicyTest, ImageTermsAddSlotEmbeddingsQueriesAndTheLatestSummaryRowToLaterText) {
  ModelOptions o = small_model();
  o.summary_token = true;
  o.image_context = true;  // 5 slots per image, the 5th the summary row
  o.image_slot_pos = true;
  o.image_query = true;
  torch::manual_seed(3);
  Policy p(o, kV);
  int has = 0;
  for (const auto& np : p->named_parameters())
    has += np.key() == "image_ctx.weight" || np.key() == "image_slot_pos" ||
           np.key() == "image_query.weight";
  ASSERT_EQ(has, 3);
  torch::NoGradGuard ng;
  torch::Tensor slot_pos;
  for (auto& np : p->named_parameters()) {
    if (np.key() == "image_ctx.weight" || np.key() == "image_query.weight")
      np.value().copy_(torch::eye(o.d_model));
    if (np.key() == "image_slot_pos") slot_pos = np.value();
  }
  slot_pos.normal_();
  // <|user|> a [5 slots] <|user|> b [5 slots] c <pad>, split into two chunks
  // after column 4 (inside the first block).
  const std::vector<int> slot_cols = {2, 3, 4, 5, 6, 9, 10, 11, 12, 13};
  const int64_t T = 16;
  auto tokens = torch::full({1, T}, int64_t{Tokenizer::kImage}, torch::kInt64);
  tokens[0][0] = Tokenizer::kUser;
  tokens[0][1] = text_ids("a")[0];
  tokens[0][7] = Tokenizer::kUser;
  tokens[0][8] = text_ids("b")[0];
  tokens[0][14] = text_ids("c")[0];
  tokens[0][15] = Tokenizer::kImage;  // padding: neither a slot nor text
  auto valid = torch::ones({1, T}, torch::kBool);
  valid[0][15] = false;
  auto x = torch::randn({1, T, o.d_model});
  auto st = PolicyImpl::ImageTermsState::zeros(1, o.d_model);
  auto y1 = p->add_image_terms(x.slice(1, 0, 5), tokens.slice(1, 0, 5), valid.slice(1, 0, 5), st);
  EXPECT_EQ(st.slots[0].item<int64_t>(), 3);
  EXPECT_EQ(st.ctx.abs().sum().item<double>(), 0.0);  // no block closed yet
  EXPECT_EQ(st.qcount[0].item<float>(), 2.f);
  auto y2 = p->add_image_terms(x.slice(1, 5), tokens.slice(1, 5), valid.slice(1, 5), st);
  EXPECT_EQ(st.slots[0].item<int64_t>(), 10);
  EXPECT_TRUE(torch::equal(st.ctx[0], x[0][13]));
  EXPECT_EQ(st.qcount[0].item<float>(), 3.f);  // <|user|> b c
  auto y = torch::cat({y1, y2}, 1)[0];
  auto d = y - x[0];
  const auto q1 = (x[0][0] + x[0][1]) / 2, q2 = (x[0][7] + x[0][8]) / 2;
  for (int64_t c = 0; c < 15; ++c) {
    const bool is_slot = std::count(slot_cols.begin(), slot_cols.end(), c) > 0;
    torch::Tensor want = torch::zeros({o.d_model});
    if (!is_slot && c > 6) want = c > 13 ? x[0][13] : x[0][6];  // summary rows of blocks 1, 2
    if (is_slot)  // slot embedding by index within its block, plus its turn's text mean
      want = slot_pos[c < 9 ? c - 2 : c - 9] + (c < 9 ? q1 : q2);
    EXPECT_TRUE(torch::allclose(d[c], want, 1e-5, 1e-5)) << "column " << c;
  }
  EXPECT_THROW(
      [] {
        ModelOptions bad = small_model();
        bad.image_context = true;  // without a summary token
        Policy q(bad, kV);
      }(),
      std::invalid_argument);
  const auto path = temp_path("ctx.safetensors");
  ASSERT_TRUE(save_policy(path.string(), p, o).ok());
  auto loaded = load_policy(path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->options.image_context);
  EXPECT_TRUE(loaded->options.image_slot_pos);
  EXPECT_TRUE(loaded->options.image_query);
  fs::remove(path);
}

TEST(DecodeSessionTest, RejectsBadChunks) {
  Policy p = sharp_policy(8);
  DecodeSession sess(p, 2);
  auto tokens = torch::full({2, 3}, 20, torch::kInt64);
  auto gap = torch::tensor({1, 0, 1, 1, 1, 1}, torch::kBool).view({2, 3});
  EXPECT_THROW(sess.append(tokens, gap, {}), std::invalid_argument);
  auto img_tokens = torch::full({2, 3}, Tokenizer::kImage, torch::kInt64);
  EXPECT_THROW(sess.append(img_tokens, torch::ones({2, 3}, torch::kBool), {}), std::invalid_argument);
  EXPECT_THROW(sess.select_rows(torch::tensor({0, 2}, torch::kInt64)), std::invalid_argument);
  // A rejected chunk leaves the session unchanged.
  EXPECT_EQ(sess.columns(), 0);
  EXPECT_EQ(sess.positions().sum().item<int64_t>(), 0);
  // Rows with no valid entry keep their previous logits.
  auto v = torch::tensor({1, 1, 1, 0, 0, 0}, torch::kBool).view({2, 3});
  auto l1 = sess.append(tokens, v, {});
  EXPECT_TRUE(torch::equal(l1[1], torch::zeros({kV})));
  auto v2 = torch::tensor({0, 0, 0, 1, 0, 0}, torch::kBool).view({2, 3});
  auto l2 = sess.append(tokens, v2, {});
  EXPECT_TRUE(torch::equal(l2[0], l1[0]));
  EXPECT_FALSE(torch::equal(l2[1], l1[1]));
  EXPECT_EQ(sess.positions()[0].item<int64_t>(), 3);
  EXPECT_EQ(sess.positions()[1].item<int64_t>(), 1);
}

TEST(SamplingTest, TopKAndTopPRestrictTheSupport) {
  // Row 0: distinct logits; row 1: probabilities 0.5, 0.3, 0.15, 0.05 on four tokens.
  auto logits = torch::full({2, 10}, -30.0f);
  for (int i = 0; i < 10; ++i) logits[0][i] = static_cast<float>(i) * 0.3f;
  const float p1[4] = {0.5f, 0.3f, 0.15f, 0.05f};
  for (int i = 0; i < 4; ++i) logits[1][2 * i] = std::log(p1[i]);
  auto support = [&](const SamplingOptions& so, int64_t row) {
    auto full_logp = torch::log_softmax(logits / so.temperature, -1);
    auto gen = torch::make_generator<torch::CPUGeneratorImpl>(99);
    std::set<int64_t> seen;
    for (int i = 0; i < 400; ++i) {
      Sampled s = sample_tokens(logits, so, gen);
      const int64_t t = s.tokens[row].item<int64_t>();
      seen.insert(t);
      EXPECT_NEAR(s.logprobs[row].item<float>(), full_logp[row][t].item<float>(), 1e-6);
    }
    return seen;
  };
  EXPECT_EQ(support({1.3, 3, 1.0}, 0), (std::set<int64_t>{7, 8, 9}));
  EXPECT_EQ(support({1.3, 0, 1.0}, 0).size(), 10u);
  // Temperature 1 keeps the row-1 probabilities as written.
  EXPECT_EQ(support({1.0, 0, 0.75}, 1), (std::set<int64_t>{0, 2}));
  EXPECT_EQ(support({1.0, 0, 0.85}, 1), (std::set<int64_t>{0, 2, 4}));
  EXPECT_EQ(support({1.0, 0, 0.01}, 1), (std::set<int64_t>{0}));
  EXPECT_EQ(support({1.0, 2, 0.85}, 1), (std::set<int64_t>{0, 2}));

  // Same generator seed, same samples.
  auto g1 = torch::make_generator<torch::CPUGeneratorImpl>(5), g2 = torch::make_generator<torch::CPUGeneratorImpl>(5);
  auto big = torch::randn({16, kV});
  EXPECT_TRUE(torch::equal(sample_tokens(big, {}, g1).tokens, sample_tokens(big, {}, g2).tokens));
}

TEST(SamplingTest, GreedyAndTokenLogprobs) {
  auto logits = torch::randn({3, 5, kV});
  auto g = greedy_tokens(logits.select(1, 4), 0.7);
  EXPECT_TRUE(torch::equal(g.tokens, logits.select(1, 4).argmax(-1)));
  auto ref = torch::log_softmax(logits.select(1, 4) / 0.7, -1).max(-1);
  EXPECT_LE((g.logprobs - std::get<0>(ref)).abs().max().item<float>(), 1e-6);

  auto x = logits.clone().requires_grad_(true);
  auto targets = torch::randint(0, kV, {3, 5}, torch::kInt64);
  auto lp = token_logprobs(x, targets, 2.0);
  ASSERT_EQ(lp.sizes(), (std::vector<int64_t>{3, 5}));
  const int64_t t = targets[1][2].item<int64_t>();
  EXPECT_NEAR(lp[1][2].item<float>(), torch::log_softmax(logits[1][2] / 2.0, -1)[t].item<float>(), 1e-6);
  lp.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
}

TEST(SamplingTest, LocationTemperatureReshapesOnlyWhichLocationTokenAndKeepsTheirTotal) {
  const int64_t lo = Tokenizer::kFirstLocation, hi = lo + Tokenizer::kNumLocations;
  ASSERT_LE(hi, kV);
  auto logits = torch::randn({4, kV}) * 3.0;
  logits[1] -= 40.0;  // all negative: a per-kind rescale of raw logits would tilt this row
  const double T = 0.4, TL = 1.5;

  // 0, or the temperature itself: plain logits / temperature, bit for bit.
  EXPECT_TRUE(torch::equal(temper_logits(logits, T, 0.0), logits / T));
  EXPECT_TRUE(torch::equal(temper_logits(logits, T, T), logits / T));

  auto lp = torch::log_softmax(temper_logits(logits, T, TL), -1);
  auto plain = torch::log_softmax(logits / T, -1);
  EXPECT_LE((lp.exp().sum(-1) - 1).abs().max().item<float>(), 1e-5);
  // Text tokens keep their probability at T; so does the location tokens' total.
  auto other = torch::cat({lp.slice(1, 0, lo), lp.slice(1, hi, kV)}, 1);
  auto other_plain = torch::cat({plain.slice(1, 0, lo), plain.slice(1, hi, kV)}, 1);
  EXPECT_LE((other - other_plain).abs().max().item<float>(), 1e-5);
  EXPECT_LE((lp.slice(1, lo, hi).logsumexp(-1) - plain.slice(1, lo, hi).logsumexp(-1)).abs().max().item<float>(),
            1e-5);
  // Among the location tokens: softmax(logits / TL), flatter than at T.
  auto within = lp.slice(1, lo, hi) - lp.slice(1, lo, hi).logsumexp(-1, true);
  EXPECT_LE((within - torch::log_softmax(logits.slice(1, lo, hi) / TL, -1)).abs().max().item<float>(), 1e-5);
  EXPECT_GT(torch::log_softmax(logits.slice(1, lo, hi) / TL, -1).exp().min().item<float>(),
            torch::log_softmax(logits.slice(1, lo, hi) / T, -1).exp().min().item<float>());

  // The sampler, greedy decoding and the learner's log-prob agree on it.
  const SamplingOptions so{T, 0, 1.0, TL};
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
  for (int i = 0; i < 50; ++i) {
    Sampled s = sample_tokens(logits, so, gen);
    auto ref = token_logprobs(logits.unsqueeze(1), s.tokens.unsqueeze(1), T, TL).squeeze(1);
    EXPECT_LE((s.logprobs - ref).abs().max().item<float>(), 1e-5);
  }
  // Greedy stays the raw argmax even where the tempered kinds would disagree.
  auto g = greedy_tokens(logits, T, TL);
  EXPECT_TRUE(torch::equal(g.tokens, logits.argmax(-1)));
  EXPECT_LE((g.logprobs - lp.gather(1, g.tokens.unsqueeze(1)).squeeze(1)).abs().max().item<float>(), 1e-5);

  // Differentiable, and a bad value is named.
  auto x = logits.clone().requires_grad_(true);
  auto t = torch::full({4, 1}, lo + 3, torch::kInt64);
  token_logprobs(x.unsqueeze(1), t, T, TL).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.f);
  try {
    temper_logits(logits, T, -1.0);
    ADD_FAILURE() << "a negative location temperature was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("location temperature"), std::string::npos) << e.what();
  }
}

// location_floor: only a box's third and fourth location tokens, written
// exactly as "<box>[" loc "," loc "," (loc ","), get a floor.
TEST(SamplingTest, LocationFloorIsSetOnlyAtABoxsThirdAndFourthCoordinate) {
  const Tokenizer tok;
  auto ch = [&](char c) { return tok.encode(std::string(1, c)).at(0); };
  auto L = [](int k) { return Tokenizer::location_id(k); };
  auto floor_of = [](const std::vector<int32_t>& ids) { return location_floor(ids.data(), ids.size()); };
  std::vector<int32_t> ids = {Tokenizer::kAssistant, Tokenizer::kThink, ch('a'), Tokenizer::kThinkEnd};
  EXPECT_EQ(floor_of(ids), -1);
  ids.push_back(Tokenizer::kBox);
  EXPECT_EQ(floor_of(ids), -1);
  ids.push_back(ch('['));
  EXPECT_EQ(floor_of(ids), -1);  // x1: anything
  ids.insert(ids.end(), {L(5), ch(',')});
  EXPECT_EQ(floor_of(ids), -1);  // y1: anything
  ids.insert(ids.end(), {L(7), ch(',')});
  EXPECT_EQ(floor_of(ids), 6);  // x2 > x1 = 5
  ids.insert(ids.end(), {L(9), ch(',')});
  EXPECT_EQ(floor_of(ids), 8);  // y2 > y1 = 7
  ids.push_back(L(12));
  EXPECT_EQ(floor_of(ids), -1);  // the box is complete
  ids.insert(ids.end(), {ch(']'), Tokenizer::kBoxEnd});
  EXPECT_EQ(floor_of(ids), -1);
  // x1 at the last grid line: the floor is past the grid.
  EXPECT_EQ(floor_of({Tokenizer::kBox, ch('['), L(32), ch(','), L(0), ch(',')}), 33);
  // Not exactly the pattern: digits for a coordinate, a space, no <box>.
  EXPECT_EQ(floor_of({Tokenizer::kBox, ch('['), ch('5'), ch(','), L(7), ch(',')}), -1);
  EXPECT_EQ(floor_of({Tokenizer::kBox, ch(' '), ch('['), L(5), ch(','), L(7), ch(',')}), -1);
  EXPECT_EQ(floor_of({ch('['), L(5), ch(','), L(7), ch(',')}), -1);
  EXPECT_EQ(floor_of({Tokenizer::kBox, ch('['), L(5), ch(','), L(7), ch(','), ch('9'), ch(',')}), -1);
  // Location tokens as the encoder writes a box: the same floors.
  const Tokenizer t64(64);
  const auto enc = t64.encode("<box>[" + t64.location_text(3) + "," + t64.location_text(4) + "," +
                                  t64.location_text(20) + "," + t64.location_text(30) + "]</box>",
                              BoxCoordinates::kLocationTokens);
  ASSERT_EQ(std::count_if(enc.begin(), enc.end(), Tokenizer::is_location), 4);
  std::vector<int> floors;
  for (size_t n = 1; n <= enc.size(); ++n)
    if (n < enc.size() && Tokenizer::is_location(enc[n])) floors.push_back(location_floor(enc.data(), n));
  EXPECT_EQ(floors, (std::vector<int>{-1, -1, 4, 5}));
}

// apply_location_floor masks exactly the location tokens below each row's
// floor; the sampler, greedy decoding and token_logprobs all see the
// renormalised rest.
TEST(SamplingTest, BoxOrderMasksOnlyTheLocationTokensBelowTheFloorAndRenormalises) {
  const int64_t lo = Tokenizer::kFirstLocation;
  auto logits = torch::randn({3, kV}) * 2.0;
  logits[1][lo + 2] = 30.0;  // row 1's greedy token is <loc_2>, below its floor
  const auto floors = torch::tensor({int64_t{-1}, int64_t{5}, int64_t{33}});
  const double T = 0.8;
  auto masked = apply_location_floor(logits / T, floors);
  auto is_inf = torch::isinf(masked);
  EXPECT_EQ(is_inf[0].sum().item<int64_t>(), 0);
  EXPECT_EQ(is_inf[1].sum().item<int64_t>(), 5);  // <loc_0>..<loc_4>
  EXPECT_TRUE(is_inf[1].slice(0, lo, lo + 5).all().item<bool>());
  EXPECT_EQ(is_inf[2].sum().item<int64_t>(), Tokenizer::kNumLocations);  // every location token
  EXPECT_TRUE(torch::equal(masked[0], logits[0] / T));
  // No floors: unchanged.
  EXPECT_TRUE(torch::equal(apply_location_floor(logits, torch::Tensor()), logits));

  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(5);
  const SamplingOptions so{T, 0, 1.0, 0.0};
  auto expected = torch::log_softmax(masked, -1);
  for (int i = 0; i < 200; ++i) {
    Sampled s = sample_tokens(logits, so, gen, floors);
    const int64_t t1 = s.tokens[1].item<int64_t>(), t2 = s.tokens[2].item<int64_t>();
    EXPECT_FALSE(t1 >= lo && t1 < lo + 5) << t1;
    EXPECT_FALSE(Tokenizer::is_location(static_cast<int32_t>(t2))) << t2;
    EXPECT_LE((s.logprobs - expected.gather(1, s.tokens.unsqueeze(1)).squeeze(1)).abs().max().item<float>(),
              1e-5);
    auto ref = token_logprobs(logits.unsqueeze(1), s.tokens.unsqueeze(1), T, 0.0, floors.unsqueeze(1));
    EXPECT_LE((s.logprobs - ref.squeeze(1)).abs().max().item<float>(), 1e-5);
    EXPECT_TRUE(torch::isfinite(s.logprobs).all().item<bool>());
  }
  // Greedy: row 1 takes its best allowed token, not <loc_2>; row 0 as without floors.
  auto g = greedy_tokens(logits, T, 0.0, floors);
  EXPECT_EQ(g.tokens[0].item<int64_t>(), logits[0].argmax().item<int64_t>());
  EXPECT_EQ(g.tokens[1].item<int64_t>(), masked[1].argmax().item<int64_t>());
  EXPECT_NE(g.tokens[1].item<int64_t>(), lo + 2);
  EXPECT_TRUE(torch::equal(greedy_tokens(logits, T).tokens[1], torch::tensor(lo + 2)));
  // A masked target has log-prob -inf; gradients stay finite elsewhere.
  auto x = logits.clone().requires_grad_(true);
  auto targets = torch::tensor({{lo + 1}, {lo + 7}, {int64_t{0}}});
  auto lp = token_logprobs(x.unsqueeze(1), targets, T, 0.0, floors.unsqueeze(1)).squeeze(1);
  EXPECT_TRUE(std::isfinite(lp[0].item<float>()));
  EXPECT_TRUE(std::isfinite(lp[1].item<float>()));
  EXPECT_TRUE(std::isfinite(lp[2].item<float>()));
  lp.sum().backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  EXPECT_EQ(token_logprobs(logits.unsqueeze(1), torch::tensor({{lo + 1}}).expand({3, 1}), T, 0.0,
                           floors.unsqueeze(1))[1][0].item<float>(),
            -std::numeric_limits<float>::infinity());
}

TEST(CheckpointTest, SaveLoadRoundTripGivesIdenticalLogits) {
  ModelOptions o = small_model();
  o.rope_theta = 12345.678;
  Policy p = sharp_policy(9, o);
  const auto path = temp_path("ckpt.safetensors");
  ASSERT_TRUE(save_policy(path.string(), p, o).ok());
  auto loaded = load_policy(path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->vocab_size, kV);
  EXPECT_EQ(loaded->options.d_model, o.d_model);
  EXPECT_EQ(loaded->options.n_layers, o.n_layers);
  EXPECT_EQ(loaded->options.ffn_hidden, o.ffn_hidden);
  EXPECT_EQ(loaded->options.max_seq_len, o.max_seq_len);
  EXPECT_EQ(loaded->options.rope_theta, o.rope_theta);
  torch::NoGradGuard ng;
  auto ids = text_ids("<|user|>hi<image><image><image><image><|end|><|assistant|><think>ok");
  const int64_t L = ids.size();
  auto px = torch::rand({1, 3, 16, 16});
  auto run = [&](Policy& q) {
    return q->forward(row_tensor(ids), q->encode_images(px).reshape({4, 32}), torch::arange(L).view({1, L}),
                      torch::ones({1, L}, torch::kBool));
  };
  EXPECT_TRUE(torch::equal(run(p), run(loaded->policy)));

  // The file is real safetensors: LE length, JSON header with offsets and metadata.
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint64_t hl = 0;
  for (int i = 0; i < 8; ++i) hl |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  ASSERT_LE(8 + hl, bytes.size());
  auto header = nlohmann::json::parse(bytes.substr(8, hl));
  EXPECT_EQ(header["__metadata__"]["d_model"], "32");
  EXPECT_EQ(header["__metadata__"]["vocab_size"], std::to_string(kV));
  EXPECT_EQ(header["lm_head.weight"]["dtype"], "F32");
  EXPECT_EQ(header["lm_head.weight"]["shape"], nlohmann::json({kV, 32}));
  uint64_t total = 0;
  for (const auto& it : header.items())
    if (it.key() != "__metadata__")
      total += it.value()["data_offsets"][1].get<uint64_t>() - it.value()["data_offsets"][0].get<uint64_t>();
  EXPECT_EQ(8 + hl + total, bytes.size());
  EXPECT_EQ(total, static_cast<uint64_t>(count_parameters(p)) * 4);
  fs::remove(path);
}

TEST(CheckpointTest, WrongNamesOrShapesAreRejected) {
  torch::manual_seed(1);
  Policy p(small_model(), kV);
  const auto path = temp_path("ckpt.safetensors");
  ASSERT_TRUE(save_policy(path.string(), p, small_model()).ok());
  auto file = read_safetensors(path.string());
  ASSERT_TRUE(file.ok()) << file.error();

  SafeTensorsFile renamed = *file;
  renamed.tensors[0].name = "vision.nope";
  ASSERT_TRUE(write_safetensors(path.string(), renamed).ok());
  auto r1 = load_policy(path.string());
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().find("missing"), std::string::npos) << r1.error();

  SafeTensorsFile reshaped = *file;
  for (auto& t : reshaped.tensors)
    if (t.name == "lm_head.weight") t.shape = {32, kV};
  ASSERT_TRUE(write_safetensors(path.string(), reshaped).ok());
  auto r2 = load_policy(path.string());
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().find("lm_head.weight"), std::string::npos) << r2.error();

  SafeTensorsFile reconfigured = *file;
  reconfigured.metadata["n_heads"] = "3";  // 32 % 3 != 0
  ASSERT_TRUE(write_safetensors(path.string(), reconfigured).ok());
  EXPECT_FALSE(load_policy(path.string()).ok());
  reconfigured.metadata["n_heads"] = "two";
  ASSERT_TRUE(write_safetensors(path.string(), reconfigured).ok());
  EXPECT_FALSE(load_policy(path.string()).ok());
  fs::remove(path);
  EXPECT_FALSE(load_policy(path.string()).ok());  // missing file
}

// Header text + data -> file bytes.
std::string raw_file(const std::string& header, const std::string& data, int64_t length_override = -1) {
  const uint64_t hl = length_override >= 0 ? uint64_t(length_override) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((hl >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(SafetensorsTest, CorruptFilesGiveErrorsNotCrashes) {
  const std::string data(16, '\x01');
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
  ASSERT_TRUE(parse_safetensors(raw_file(good, data)).ok());

  struct Case {
    std::string name, bytes, expect;
  };
  const std::vector<Case> cases = {
      {"empty", "", "shorter"},
      {"short length", std::string(5, '\0'), "shorter"},
      {"header length beyond file", raw_file(good, data, good.size() + 100), "header length"},
      {"huge header length", raw_file(good, data, int64_t(1) << 62), "header length"},
      {"zero header length", raw_file(good, data, 0), "header length"},
      {"bad json", raw_file("{\"a\":{\"dtype\":\"F32\",", data), "JSON"},
      {"not an object", raw_file("[1,2,3]", data), "object"},
      {"offsets out of range",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", data), "out of range"},
      {"reversed offsets", raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data),
       "out of range"},
      {"overlap",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                data),
       "overlap"},
      {"unknown dtype", raw_file(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", data), "dtype"},
      {"size mismatch", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "bytes"},
      {"negative dim", raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "shape"},
      {"overflowing dims",
       raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", data), "bytes"},
      {"string offsets", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0","8"]}})", data),
       "data_offsets"},
      {"bad metadata", raw_file(R"({"__metadata__":{"k":3}})", data), "__metadata__"},
  };
  for (const auto& c : cases) {
    Result<SafeTensorsFile> r = SafeTensorsFile{};
    EXPECT_NO_THROW(r = parse_safetensors(c.bytes, "x.safetensors")) << c.name;
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.error().find(c.expect), std::string::npos) << c.name << ": " << r.error();
    EXPECT_EQ(r.error().rfind("x.safetensors", 0), 0u) << c.name;
  }
}

TEST(SafetensorsTest, TruncatedOrBitFlippedCheckpointsNeverCrashLoadPolicy) {
  torch::manual_seed(2);
  Policy p(small_model(), kV);
  const auto path = temp_path("ckpt.safetensors");
  ASSERT_TRUE(save_policy(path.string(), p, small_model()).ok());
  std::string bytes;
  {
    std::ifstream f(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  uint64_t hl = 0;
  for (int i = 0; i < 8; ++i) hl |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  auto write = [&](const std::string& b) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(b.data(), b.size());
  };
  for (size_t cut : {size_t(0), size_t(3), size_t(8), size_t(8 + hl / 2), size_t(8 + hl), bytes.size() - 1}) {
    write(bytes.substr(0, cut));
    Result<LoadedPolicy> r = Status::Error("unset");
    EXPECT_NO_THROW(r = load_policy(path.string())) << cut;
    EXPECT_FALSE(r.ok()) << "truncated at " << cut;
  }
  // Random byte flips in the header: an error or a valid load, never a crash.
  std::mt19937 rng(3);
  int errors = 0;
  for (int i = 0; i < 200; ++i) {
    std::string b = bytes;
    const size_t at = std::uniform_int_distribution<size_t>(0, 8 + hl - 1)(rng);
    b[at] = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
    write(b);
    Result<LoadedPolicy> r = Status::Error("unset");
    EXPECT_NO_THROW(r = load_policy(path.string()));
    errors += !r.ok();
  }
  EXPECT_GT(errors, 100);
  fs::remove(path);
}

}  // namespace
}  // namespace gr1
