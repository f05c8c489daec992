#include "actors/rollout.h"

#include <algorithm>
#include <map>

#include "common/crop.h"
#include "common/image_tensor.h"
#include "common/prompt.h"
#include "common/tokenizer.h"
#include "common/turns.h"

namespace gr1 {
namespace {

struct Row {
  Trajectory traj;
  bool done = false;     // trajectory finished (answer turn, turn limit or length limit)
  bool in_turn = false;  // currently sampling an assistant turn
  int turn_len = 0;
};

torch::Tensor to_tensor(const std::vector<std::vector<int32_t>>& chunks, torch::Tensor* valid) {
  size_t n = 0;
  for (const auto& c : chunks) n = std::max(n, c.size());
  const int64_t B = static_cast<int64_t>(chunks.size());
  auto tokens = torch::full({B, static_cast<int64_t>(n)}, Tokenizer::kPad, torch::kInt64);
  *valid = torch::zeros({B, static_cast<int64_t>(n)}, torch::kBool);
  auto ta = tokens.accessor<int64_t, 2>();
  auto va = valid->accessor<bool, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t j = 0; j < chunks[b].size(); ++j) {
      ta[b][j] = chunks[b][j];
      va[b][j] = true;
    }
  return tokens;
}

}  // namespace

RolloutEngine::RolloutEngine(Policy policy, const ModelOptions& model, const RolloutOptions& rollout)
    : policy_(std::move(policy)), model_(model), opt_(rollout) {}

TrajectoryGroup RolloutEngine::rollout(const Sample& sample, torch::Generator gen, bool greedy,
                                       RolloutStats* stats) {
  return rollout_tree(sample, opt_.g1, opt_.g2, gen, greedy, stats);
}

TrajectoryGroup RolloutEngine::rollout_tree(const Sample& sample, int g1, int g2,
                                            torch::Generator gen, bool greedy,
                                            RolloutStats* stats) {
  torch::NoGradGuard no_grad;
  RolloutStats local;
  RolloutStats& st = stats ? *stats : local;
  const int S = model_.image_size;
  const int n_img = model_.image_tokens();
  const int W = sample.image.cols, H = sample.image.rows;
  SamplingOptions sampling{opt_.temperature, opt_.top_k, opt_.top_p};

  // ---- prompt, once ----
  const auto prompt = first_user_turn(sample.problem, S, S, n_img);
  auto full_pixels = to_policy_tensor(sample.image, S).unsqueeze(0);
  auto full_emb = policy_->encode_images(full_pixels);  // [1, n, d]
  st.images_encoded += 1;
  DecodeSession sess(policy_, 1);
  torch::Tensor valid;
  auto tok = to_tensor({prompt}, &valid);
  auto last = sess.append(tok, valid, full_emb.reshape({n_img, -1}));

  std::vector<Row> rows(1);
  rows[0].traj.tokens = prompt;
  rows[0].traj.logprobs.assign(prompt.size(), 0.f);
  rows[0].traj.policy_mask.assign(prompt.size(), 0);
  rows[0].traj.images.push_back(ImageRef{false, {}});

  auto fork = [&](const std::vector<int64_t>& index) {
    std::vector<Row> next;
    next.reserve(index.size());
    for (auto i : index) next.push_back(rows[i]);
    rows = std::move(next);
    auto idx = torch::tensor(index, torch::kInt64);
    sess.select_rows(idx);
    last = last.index_select(0, idx);
  };

  // Samples one assistant turn for every row with in_turn set.
  auto sample_turn = [&]() {
    for (auto& r : rows) {
      if (!r.in_turn) continue;
      r.turn_len = 0;
      r.traj.turns.push_back(TurnSpan{static_cast<int32_t>(r.traj.tokens.size()),
                                      static_cast<int32_t>(r.traj.tokens.size())});
    }
    const int64_t B = static_cast<int64_t>(rows.size());
    for (int step = 0; step < opt_.max_new_tokens; ++step) {
      std::vector<uint8_t> active(B, 0);
      bool any = false;
      for (int64_t b = 0; b < B; ++b) any |= (active[b] = rows[b].in_turn);
      if (!any) break;
      Sampled s = greedy ? greedy_tokens(last, opt_.temperature) : sample_tokens(last, sampling, gen);
      ++st.decode_steps;
      auto ta = s.tokens.accessor<int64_t, 1>();
      auto la = s.logprobs.accessor<float, 1>();
      auto step_valid = torch::zeros({B, 1}, torch::kBool);
      auto va = step_valid.accessor<bool, 2>();
      for (int64_t b = 0; b < B; ++b) {
        if (!active[b]) continue;
        Row& r = rows[b];
        const int32_t t = static_cast<int32_t>(ta[b]);
        r.traj.tokens.push_back(t);
        r.traj.logprobs.push_back(la[b]);
        r.traj.policy_mask.push_back(1);
        r.traj.turns.back().end = static_cast<int32_t>(r.traj.tokens.size());
        ++r.turn_len;
        ++st.policy_tokens;
        va[b][0] = true;
        if (is_stop_token(t) || r.turn_len >= opt_.max_new_tokens ||
            static_cast<int>(r.traj.tokens.size()) >= model_.max_seq_len)
          r.in_turn = false;
      }
      last = sess.append(s.tokens.view({B, 1}), step_valid, torch::Tensor());
    }
  };

  // Reads the turn just sampled: answer (done) or box (next image).
  auto close_turn = [&](Row& r, int turn_index, int max_turns) {
    const std::string text = turn_text(r.traj.tokens, r.traj.turns.back());
    auto box = extract_box(text);
    r.traj.boxes_shown.push_back(box);
    if (is_answer_turn(text)) {
      r.done = true;
      r.traj.finished = true;
    } else if (turn_index + 1 >= max_turns) {
      r.done = true;  // turn limit
    }
  };

  // ---- grounding phase: G1 roots ----
  fork(std::vector<int64_t>(g1, 0));
  for (auto& r : rows) r.in_turn = true;
  sample_turn();
  for (auto& r : rows) close_turn(r, 0, opt_.max_turns);

  // ---- answering phase: G2 continuations per root ----
  std::vector<int64_t> expand;
  for (int i = 0; i < g1; ++i)
    for (int j = 0; j < g2; ++j) expand.push_back(i);
  fork(expand);
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) rows[i].traj.root = i / g2;

  for (int turn = 1; turn < opt_.max_turns; ++turn) {
    std::vector<std::vector<int32_t>> chunks(rows.size());
    std::vector<torch::Tensor> images;
    std::map<std::tuple<float, float, float, float>, torch::Tensor> crop_cache;
    bool any = false;
    for (size_t b = 0; b < rows.size(); ++b) {
      Row& r = rows[b];
      if (r.done) continue;
      const bool close = r.traj.tokens.back() != Tokenizer::kEnd;
      auto chunk = later_user_turn(sample.problem, S, S, n_img, close);
      if (static_cast<int>(r.traj.tokens.size() + chunk.size()) + opt_.max_new_tokens >
          model_.max_seq_len) {
        r.done = true;  // length limit: ends unfinished
        continue;
      }
      // The image of this user turn: the crop of the last turn's box, or the
      // full image again when that turn had no usable box.
      ImageRef ref{false, {}};
      if (const auto& box = r.traj.boxes_shown.back(); box.has_value()) {
        auto crop = shown_box_to_crop(*box, S, S, W, H, opt_.min_crop_px, opt_.max_aspect);
        if (crop.ok()) ref = ImageRef{true, *crop};
      }
      torch::Tensor pix;
      if (ref.is_crop) {
        auto key = std::make_tuple(ref.box_orig.x1, ref.box_orig.y1, ref.box_orig.x2, ref.box_orig.y2);
        auto it = crop_cache.find(key);
        if (it == crop_cache.end())
          it = crop_cache.emplace(key, image_block_tensor(sample.image, ref, S)).first;
        pix = it->second;
      } else {
        pix = full_pixels[0];
      }
      images.push_back(pix);
      r.traj.images.push_back(ref);
      for (size_t j = 0; j < chunk.size(); ++j) {
        r.traj.tokens.push_back(chunk[j]);
        r.traj.logprobs.push_back(0.f);
        r.traj.policy_mask.push_back(0);
      }
      chunks[b] = std::move(chunk);
      r.in_turn = true;
      any = true;
    }
    if (!any) break;
    auto emb = policy_->encode_images(torch::stack(images));  // [k, n, d]
    st.images_encoded += static_cast<int64_t>(images.size());
    auto t = to_tensor(chunks, &valid);
    last = sess.append(t, valid, emb.reshape({-1, emb.size(2)}));
    sample_turn();
    for (auto& r : rows)
      if (r.in_turn == false && !r.done && r.traj.turns.size() == static_cast<size_t>(turn + 1))
        close_turn(r, turn, opt_.max_turns);
  }

  TrajectoryGroup g;
  g.dataset = sample.dataset;
  g.trajectories.reserve(rows.size());
  for (auto& r : rows) g.trajectories.push_back(std::move(r.traj));
  return g;
}

}  // namespace gr1
