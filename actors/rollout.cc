#include "actors/rollout.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <tuple>

#include "common/crop.h"
#include "common/image_tensor.h"
#include "common/prompt.h"
#include "common/tokenizer.h"
#include "common/turns.h"

namespace gr1 {
namespace {

// One row of the batched decode: one trajectory of one question.
struct Row {
  Trajectory traj;
  int question = 0;      // index into the batch's samples
  bool done = false;     // trajectory finished (answer turn, turn limit or length limit)
  bool in_turn = false;  // currently sampling an assistant turn
  int turn_len = 0;
};

// Right-pads chunks into [B, max len]; `valid` marks the real entries.
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

// User turns are appended in column pieces of this many tokens (see
// append_in_pieces).
constexpr size_t kPrefillPiece = 64;

// Appends one chunk per row (image rows of `emb` in DecodeSession's
// row-major order) in column pieces of at most `piece` tokens. The result
// equals one append up to float rounding, and the cache gets the same
// columns. Why: a single append of a ~250-token user turn for B rows
// materialises attention scores of [B, heads, 250, columns] at once; for
// B = 32 those are ~100 MB per layer, fresh pages every time, and page
// faults and cache misses then cost more than the arithmetic (measured:
// batch 32 was slower per question than batch 1). Pieces keep it small.
torch::Tensor append_in_pieces(DecodeSession& sess, const std::vector<std::vector<int32_t>>& chunks,
                               const torch::Tensor& emb, size_t piece) {
  const size_t B = chunks.size();
  size_t n = 0;
  std::vector<int64_t> next_image(B);  // index in `emb` of row b's next image row
  int64_t images = 0;
  for (size_t b = 0; b < B; ++b) {
    n = std::max(n, chunks[b].size());
    next_image[b] = images;
    images += std::count(chunks[b].begin(), chunks[b].end(), Tokenizer::kImage);
  }
  torch::Tensor last = sess.last_logits();
  for (size_t p0 = 0; p0 < n; p0 += piece) {
    const size_t p1 = std::min(n, p0 + piece);
    std::vector<std::vector<int32_t>> part(B);
    std::vector<int64_t> rows;
    for (size_t b = 0; b < B; ++b)
      for (size_t j = p0; j < std::min(p1, chunks[b].size()); ++j) {
        part[b].push_back(chunks[b][j]);
        if (chunks[b][j] == Tokenizer::kImage) rows.push_back(next_image[b]++);
      }
    torch::Tensor valid;
    auto tokens = to_tensor(part, &valid);
    auto e =
        rows.empty() ? torch::Tensor() : emb.index_select(0, torch::tensor(rows, torch::kInt64));
    last = sess.append(tokens, valid, e);
  }
  return last;
}

PromptMode mode_or_throw(const std::string& name) {
  auto m = prompt_mode_from_name(name);
  if (!m)
    throw std::invalid_argument("rollout.mode: unknown mode '" + name +
                                "' (known: grounded, direct)");
  return *m;
}

}  // namespace

RolloutEngine::RolloutEngine(Policy policy, const ModelOptions& model,
                             const RolloutOptions& rollout)
    : policy_(std::move(policy)),
      model_(model),
      opt_(rollout),
      mode_(mode_or_throw(rollout.mode)) {}

TrajectoryGroup RolloutEngine::rollout(const Sample& sample, torch::Generator gen, bool greedy,
                                       RolloutStats* stats) {
  return rollout_tree(sample, opt_.g1, opt_.g2, gen, greedy, stats);
}

TrajectoryGroup RolloutEngine::rollout_tree(const Sample& sample, int g1, int g2,
                                            torch::Generator gen, bool greedy,
                                            RolloutStats* stats) {
  return std::move(rollout_batch({sample}, g1, g2, gen, greedy, stats).front());
}

size_t RolloutEngine::first_prompt_tokens(const Sample& sample) const {
  const int S = model_.image_size;
  return first_user_turn(sample.problem, S, S, model_.image_tokens(), mode_).size();
}

std::vector<TrajectoryGroup> RolloutEngine::rollout_batch(const std::vector<Sample>& samples,
                                                          int g1, int g2, torch::Generator gen,
                                                          bool greedy, RolloutStats* stats) {
  torch::NoGradGuard no_grad;
  if (g1 < 1 || g2 < 1)
    throw std::invalid_argument("rollout: g1 and g2 must be >= 1, got " + std::to_string(g1) +
                                " x " + std::to_string(g2));
  RolloutStats local;
  RolloutStats& st = stats ? *stats : local;
  const int S = model_.image_size;
  const int n_img = model_.image_tokens();
  const bool direct = mode_ == PromptMode::kDirect;
  const int max_turns = direct ? 1 : opt_.max_turns;
  const int64_t Q = static_cast<int64_t>(samples.size());
  SamplingOptions sampling{opt_.temperature, opt_.top_k, opt_.top_p, opt_.location_temperature};
  if (Q == 0) return {};

  // ---- prompts, once per question ----
  std::vector<std::vector<int32_t>> prompts(Q);
  std::vector<torch::Tensor> full_pixels(Q);  // [3,S,S] per question
  for (int64_t q = 0; q < Q; ++q) {
    const Sample& s = samples[q];
    if (s.image.empty())
      throw std::invalid_argument("rollout: sample " + std::to_string(s.problem_id) +
                                  " has no pixels (Sample::image is empty)");
    prompts[q] = first_user_turn(s.problem, S, S, n_img, mode_);
    if (static_cast<int>(prompts[q].size()) >= model_.max_seq_len)
      throw std::invalid_argument("rollout: sample " + std::to_string(s.problem_id) +
                                  ": its prompt has " + std::to_string(prompts[q].size()) +
                                  " tokens, model.max_seq_len is " +
                                  std::to_string(model_.max_seq_len));
    full_pixels[q] = to_policy_tensor(s.image, S);
  }
  // Every prompt holds exactly one image block, so the image rows in the
  // row-major order DecodeSession expects are simply question after question.
  auto full_emb = policy_->encode_images(torch::stack(full_pixels));  // [Q, n, d]
  st.images_encoded += Q;
  DecodeSession sess(policy_, Q);
  auto last = append_in_pieces(sess, prompts, full_emb.reshape({Q * n_img, -1}), kPrefillPiece);

  std::vector<Row> rows(Q);
  for (int64_t q = 0; q < Q; ++q) {
    Row& r = rows[q];
    r.question = static_cast<int>(q);
    r.traj.tokens = prompts[q];
    r.traj.logprobs.assign(prompts[q].size(), 0.f);
    r.traj.policy_mask.assign(prompts[q].size(), 0);
    r.traj.images.push_back(ImageRef{false, {}});
  }

  // New row i = old row index[i], in the session and in `rows` alike.
  auto fork = [&](const std::vector<int64_t>& index) {
    std::vector<Row> next;
    next.reserve(index.size());
    for (auto i : index) next.push_back(rows[i]);
    rows = std::move(next);
    auto idx = torch::tensor(index, torch::kInt64);
    sess.select_rows(idx);
    last = last.index_select(0, idx);
  };

  // Samples one assistant turn for every row with in_turn set; the others
  // get padding columns.
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
      torch::Tensor floors;  // rollout.box_order: each row's location_floor()
      if (opt_.box_order) {
        floors = torch::full({B}, -1, torch::kInt64);
        auto fa = floors.accessor<int64_t, 1>();
        for (int64_t b = 0; b < B; ++b)
          if (active[b]) fa[b] = location_floor(rows[b].traj.tokens.data(), rows[b].traj.tokens.size());
      }
      Sampled s =
          greedy ? greedy_tokens(last, opt_.temperature, opt_.location_temperature, floors)
                 : sample_tokens(last, sampling, gen, floors);
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
  auto close_turn = [&](Row& r, int turn_index) {
    const std::string text = turn_text(r.traj.tokens, r.traj.turns.back(), S);
    r.traj.boxes_shown.push_back(extract_box(text));
    if (is_answer_turn(text)) {
      r.done = true;
      r.traj.finished = true;
    } else if (turn_index + 1 >= max_turns) {
      r.done = true;  // turn limit
    }
  };

  // ---- grounding phase: G1 roots per question (direct: all G1 x G2) ----
  const int roots = direct ? g1 * g2 : g1;
  {
    std::vector<int64_t> index;
    for (int64_t q = 0; q < Q; ++q) index.insert(index.end(), roots, q);
    fork(index);
  }
  for (auto& r : rows) r.in_turn = true;
  sample_turn();
  for (auto& r : rows) close_turn(r, 0);

  // ---- answering phase: G2 continuations per root ----
  // Appends the next user turn (the crop of the row's last box, or the full
  // image) to every unfinished row; false when no row takes one.
  auto append_user_turns = [&]() {
    std::vector<std::vector<int32_t>> chunks(rows.size());
    std::vector<torch::Tensor> images;  // in row order: DecodeSession's row-major image order
    // Rows of one root ask for the same crop: cut and resize it once.
    std::map<std::tuple<int, float, float, float, float>, torch::Tensor> crop_cache;
    bool any = false;
    for (size_t b = 0; b < rows.size(); ++b) {
      Row& r = rows[b];
      if (r.done) continue;
      const Sample& sample = samples[r.question];
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
        auto crop = shown_box_to_crop(*box, S, S, sample.image.cols, sample.image.rows,
                                      opt_.min_crop_px, opt_.max_aspect);
        if (crop.ok()) ref = ImageRef{true, *crop};
      }
      torch::Tensor pix;
      if (ref.is_crop) {
        auto key = std::make_tuple(r.question, ref.box_orig.x1, ref.box_orig.y1, ref.box_orig.x2,
                                   ref.box_orig.y2);
        auto it = crop_cache.find(key);
        if (it == crop_cache.end())
          it = crop_cache.emplace(key, image_block_tensor(sample.image, ref, S)).first;
        pix = it->second;
      } else {
        pix = full_pixels[r.question];
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
    if (!any) return false;
    auto emb = policy_->encode_images(torch::stack(images));  // [k, n, d]
    st.images_encoded += static_cast<int64_t>(images.size());
    last = append_in_pieces(sess, chunks, emb.reshape({-1, emb.size(2)}), kPrefillPiece);
    return true;
  };
  auto sample_and_close = [&](int turn) {
    sample_turn();
    for (auto& r : rows)
      if (!r.in_turn && !r.done && r.traj.turns.size() == static_cast<size_t>(turn + 1))
        close_turn(r, turn);
  };
  // The second user turn of a root (its crop) is the same for all G2
  // continuations: it is prefilled once per root, before the fork, so the
  // cache holds it once and the encoder sees each crop once.
  bool second = false;
  if (!direct && max_turns > 1) second = append_user_turns();
  if (!direct) {
    std::vector<int64_t> expand;
    for (int64_t i = 0; i < static_cast<int64_t>(rows.size()); ++i)
      expand.insert(expand.end(), g2, i);
    fork(expand);
  }
  // Rows are question-major: question q owns rows [q*G, (q+1)*G).
  const int G = g1 * g2;
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) rows[i].traj.root = (i % G) / g2;

  if (second) {
    sample_and_close(1);
    for (int turn = 2; turn < max_turns; ++turn) {
      if (!append_user_turns()) break;
      sample_and_close(turn);
    }
  }

  std::vector<TrajectoryGroup> groups(Q);
  for (int64_t q = 0; q < Q; ++q) {
    groups[q].dataset = samples[q].dataset;
    groups[q].trajectories.reserve(G);
  }
  for (auto& r : rows) groups[r.question].trajectories.push_back(std::move(r.traj));
  return groups;
}

namespace {

// The given grounding turn of a forced-box evaluation: the first evidence
// box in the shown frame, its sides scaled by `scale` about its centre,
// clamped to the frame and snapped outward to the location grid.
Box forced_box(const Sample& s, int S, double scale) {
  const int W = s.width > 0 ? s.width : s.image.cols, H = s.height > 0 ? s.height : s.image.rows;
  const Box& e = s.bboxs.front();
  const double sx = double(S) / W, sy = double(S) / H;
  const double cx = (e.x1 + e.x2) / 2 * sx, cy = (e.y1 + e.y2) / 2 * sy;
  const double hw = (e.x2 - e.x1) * sx * scale / 2, hh = (e.y2 - e.y1) * sy * scale / 2;
  auto clampf = [&](double v) { return static_cast<float>(std::clamp(v, 0.0, double(S))); };
  return snap_box_to_location_grid(
      Box{clampf(cx - hw), clampf(cy - hh), clampf(cx + hw), clampf(cy + hh)}, S);
}

}  // namespace

// Prompt, the given grounding turn (context, never sampled), the crop the
// rollout would cut for it, then ONE greedily decoded assistant turn, for a
// batch of samples with evidence. Decoded together in one DecodeSession.
std::vector<Trajectory> forced_box_trajectories(Policy& policy, const ModelOptions& model,
                                                const RolloutOptions& ro,
                                                const std::vector<Sample>& samples, double scale) {
  torch::NoGradGuard ng;
  const int S = model.image_size;
  const Tokenizer tok(S);
  const int64_t B = static_cast<int64_t>(samples.size());
  std::vector<Trajectory> out(samples.size());
  std::vector<torch::Tensor> pixels;
  int64_t T = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    Trajectory& t = out[i];
    auto add = [&t](const std::vector<int32_t>& ids) {
      t.tokens.insert(t.tokens.end(), ids.begin(), ids.end());
      t.logprobs.insert(t.logprobs.end(), ids.size(), 0.f);
      t.policy_mask.insert(t.policy_mask.end(), ids.size(), 0);
    };
    add(first_user_turn(s.problem, S, S, model.image_tokens(), PromptMode::kGrounded));
    t.images.push_back(ImageRef{false, {}});
    const Box b = forced_box(s, S, scale);
    std::string text = "<think>the evidence is here</think><box>[";
    const float c[4] = {b.x1, b.y1, b.x2, b.y2};
    for (int k = 0; k < 4; ++k)
      text += (k ? "," : "") + tok.location_text(*tok.location_index(c[k]));
    text += "]</box>";
    TurnSpan span;
    span.begin = static_cast<int32_t>(t.tokens.size());
    add(tok.encode(text, BoxCoordinates::kLocationTokens));
    span.end = static_cast<int32_t>(t.tokens.size());
    t.turns.push_back(span);
    t.boxes_shown.push_back(b);
    add(later_user_turn(s.problem, S, S, model.image_tokens(), /*close_assistant=*/true));
    const int W = s.width > 0 ? s.width : s.image.cols, H = s.height > 0 ? s.height : s.image.rows;
    ImageRef ref{false, {}};
    if (auto crop = shown_box_to_crop(b, S, S, W, H, ro.min_crop_px, ro.max_aspect); crop.ok())
      ref = ImageRef{true, *crop};
    t.images.push_back(ref);
    for (const auto& r : t.images) pixels.push_back(image_block_tensor(s.image, r, S));
    T = std::max<int64_t>(T, static_cast<int64_t>(t.tokens.size()));
  }
  if (B == 0) return out;
  if (T + ro.max_new_tokens > model.max_seq_len)
    throw std::invalid_argument("forced-box prefix of " + std::to_string(T) +
                                " tokens leaves no room for the answer in model.max_seq_len");
  auto tokens = torch::full({B, T}, Tokenizer::kPad, torch::kInt64);
  auto valid = torch::zeros({B, T}, torch::kBool);
  for (int64_t i = 0; i < B; ++i) {
    const auto& ids = out[i].tokens;
    for (size_t j = 0; j < ids.size(); ++j) {
      tokens[i][static_cast<int64_t>(j)] = ids[j];
      valid[i][static_cast<int64_t>(j)] = true;
    }
  }
  auto emb = policy->encode_images(torch::stack(pixels));
  DecodeSession session(policy, B);
  auto logits = session.append(tokens, valid, emb.reshape({-1, emb.size(2)}));
  std::vector<bool> done(samples.size(), false);
  for (size_t i = 0; i < samples.size(); ++i)
    out[i].turns.push_back(TurnSpan{static_cast<int32_t>(out[i].tokens.size()),
                                    static_cast<int32_t>(out[i].tokens.size())});
  for (int step = 0; step < ro.max_new_tokens; ++step) {
    torch::Tensor floors;  // rollout.box_order, as in rollout_batch
    if (ro.box_order) {
      floors = torch::full({B}, -1, torch::kInt64);
      auto fa = floors.accessor<int64_t, 1>();
      for (int64_t i = 0; i < B; ++i)
        if (!done[i]) fa[i] = location_floor(out[i].tokens.data(), out[i].tokens.size());
    }
    Sampled g = greedy_tokens(logits, ro.temperature, ro.location_temperature, floors);
    auto next = torch::full({B, 1}, Tokenizer::kPad, torch::kInt64);
    auto nv = torch::zeros({B, 1}, torch::kBool);
    bool any = false;
    for (int64_t i = 0; i < B; ++i) {
      if (done[i]) continue;
      const int32_t id = static_cast<int32_t>(g.tokens[i].item<int64_t>());
      Trajectory& t = out[i];
      t.tokens.push_back(id);
      t.logprobs.push_back(g.logprobs[i].item<float>());
      t.policy_mask.push_back(1);
      t.turns.back().end = static_cast<int32_t>(t.tokens.size());
      if (is_stop_token(id)) {
        done[i] = true;
        continue;
      }
      next[i][0] = id;
      nv[i][0] = true;
      any = true;
    }
    if (!any) break;
    logits = session.append(next, nv, torch::Tensor());
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    Trajectory& t = out[i];
    const auto texts = turn_texts(t, S);
    t.boxes_shown.push_back(extract_box(texts.back()));
    t.finished = extract_answer(texts.back()).has_value();
  }
  return out;
}

}  // namespace gr1
