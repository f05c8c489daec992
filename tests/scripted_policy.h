// Test helper: a tiny policy fitted by teacher forcing to follow a fixed
// script, so rollout and evaluation tests can exercise boxes, crops and
// answers with outputs known in advance (a random policy never writes a box).
//
//   grounded prompt -> kScriptBoxTurn (a box) -> crop -> kScriptAnswerTurn
//   direct prompt   -> kScriptBoxTurn (a box the direct mode must not crop)
//
// The fit is checked by the tests that use it (they compare the decoded
// turns with the script), so a fit that fails shows up as a test failure
// naming the text the policy wrote instead.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/crop.h"
#include "common/image_tensor.h"
#include "common/options.h"
#include "common/policy.h"
#include "common/prompt.h"
#include "common/sample.h"
#include "common/tokenizer.h"

namespace gr1::testing {

// The box is in the shown frame of a 32 x 32 model image (configs/tests.yaml).
inline constexpr const char* kScriptBoxTurn = "<think>a</think><box>[0,0,16,16]</box>";
inline constexpr const char* kScriptAnswerTurn = "<think>b</think><answer>A</answer>";

inline Policy fit_scripted_policy(const ModelOptions& model, const RolloutOptions& rollout,
                                  const std::vector<Sample>& samples, int max_steps = 300,
                                  uint64_t seed = 3) {
  torch::manual_seed(seed);
  Tokenizer tok(model.image_size);
  Policy policy(model, tok.vocab_size());
  const int S = model.image_size, n_img = model.image_tokens();
  // The box as location tokens (0 and 16 are grid values at S = 32), as a
  // pretrained base writes it: every test using the script runs rollouts,
  // cropping and scoring through <loc_k> tokens that decode to this text.
  const auto box_turn = tok.encode(kScriptBoxTurn, BoxCoordinates::kLocationTokens);
  const auto answer_turn = tok.encode(kScriptAnswerTurn);

  // Rows: for each sample one grounded two-turn sequence and one direct
  // one-turn sequence. `learn` marks the tokens the policy must predict.
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<uint8_t>> learn;
  std::vector<torch::Tensor> pixels;  // row-major image order
  auto add = [&](std::vector<int32_t>& t, std::vector<uint8_t>& m, const std::vector<int32_t>& part,
                 bool policy_part) {
    t.insert(t.end(), part.begin(), part.end());
    m.insert(m.end(), part.size(), policy_part ? 1 : 0);
  };
  for (const Sample& s : samples) {
    const Box crop = *shown_box_to_crop(Box{0, 0, 16, 16}, S, S, s.image.cols, s.image.rows,
                                        rollout.min_crop_px, rollout.max_aspect);
    std::vector<int32_t> t;
    std::vector<uint8_t> m;
    add(t, m, first_user_turn(s.problem, S, S, n_img), false);
    add(t, m, box_turn, true);
    add(t, m, later_user_turn(s.problem, S, S, n_img, /*close_assistant=*/true), false);
    add(t, m, answer_turn, true);
    rows.push_back(t);
    learn.push_back(m);
    pixels.push_back(to_policy_tensor(s.image, S));
    pixels.push_back(image_block_tensor(s.image, ImageRef{true, crop}, S));

    t.clear();
    m.clear();
    add(t, m, first_user_turn(s.problem, S, S, n_img, PromptMode::kDirect), false);
    add(t, m, box_turn, true);
    rows.push_back(t);
    learn.push_back(m);
    pixels.push_back(to_policy_tensor(s.image, S));
  }
  int64_t T = 0;
  for (const auto& r : rows) T = std::max<int64_t>(T, r.size());
  const int64_t B = static_cast<int64_t>(rows.size());
  auto tokens = torch::full({B, T}, Tokenizer::kPad, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kBool);
  auto weight = torch::zeros({B, T}, torch::kFloat32);
  for (int64_t b = 0; b < B; ++b)
    for (size_t j = 0; j < rows[b].size(); ++j) {
      tokens[b][j] = rows[b][j];
      mask[b][j] = true;
      weight[b][j] = learn[b][j];
    }
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T}).contiguous();
  auto pix = torch::stack(pixels);
  auto targets = tokens.slice(1, 1);
  auto w = weight.slice(1, 1);
  torch::optim::Adam opt(policy->parameters(), torch::optim::AdamOptions(1e-2));
  policy->train();
  for (int step = 0; step < max_steps; ++step) {
    opt.zero_grad();
    auto e = policy->encode_images(pix);
    auto logits = policy->forward(tokens, e.reshape({-1, e.size(2)}), positions, mask);
    auto lp = token_logprobs(logits.slice(1, 0, T - 1), targets, 1.0);
    // Done once every script token has probability > 0.74 under teacher
    // forcing: then it is the argmax, and greedy decoding replays the script.
    if ((-lp * w).max().item<double>() < 0.3) break;
    auto loss = -(lp * w).sum() / w.sum();
    loss.backward();
    opt.step();
  }
  policy->eval();
  return policy;
}

}  // namespace gr1::testing
