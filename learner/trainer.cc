#include "learner/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/crop.h"
#include "common/image_tensor.h"
#include "common/scoring.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "learner/advantages.h"
#include "learner/grpo.h"
#include "learner/packing.h"

namespace gr1 {

namespace {
// The encoder's rows of every image in `pixels` [N,3,S,S], flattened to
// [N * rows, d_model]; undefined when there are no images.
torch::Tensor image_rows(Policy& p, const torch::Tensor& pixels) {
  if (!pixels.defined()) return {};
  auto e = p->encode_images(pixels);
  return e.reshape({-1, e.size(2)});
}
}  // namespace

Result<std::vector<TrajectoryScore>> score_group(const TrajectoryGroup& g, const Sample& sample,
                                                 int shown_size) {
  std::vector<TrajectoryScore> out;
  out.reserve(g.trajectories.size());
  for (const auto& t : g.trajectories) {
    const auto last = last_box_shown(t);
    auto rb = score_turns(turn_texts(t, shown_size), last, sample.solution, sample.dataset, sample.bboxs,
                          sample.width, sample.height, shown_size, shown_size);
    if (!rb.ok()) return rb.status();
    TrajectoryScore s;
    s.format = rb->format;
    s.accuracy = rb->accuracy;
    s.reward = rb->reward;
    s.box_score = rb->box_score;
    s.policy_tokens = policy_token_count(t);
    s.turns = static_cast<int>(t.turns.size());
    s.has_box = last.has_value();
    if (last) {
      const Box o = shown_to_original(*last, shown_size, shown_size, sample.width, sample.height);
      s.scale = std::max(1e-9, double(o.area()) / (double(sample.width) * sample.height));
    }
    out.push_back(s);
  }
  return out;
}

struct Trainer::Batch {
  torch::Tensor tokens, positions, key_mask, targets, policy_mask, old_logp;  // [B,T] / [B,T-1]
  torch::Tensor pixels;  // [M,3,S,S]
  torch::Tensor floors;  // [B,T-1] location_floor() of each target (rollout.box_order), else undefined
};

// One packed forward over several groups (learner/packing.h): row g holds
// group g's prefix tree; the trajectories of all groups, in order, are
// gathered back to a padded [N, L-1] layout like Batch's.
struct Trainer::PackedBatch {
  torch::Tensor tokens, positions, valid, slot_index, context_node, parent;  // [G,T]
  torch::Tensor pixels;        // [M,3,S,S]
  torch::Tensor gather_index;  // [N, L-1] flat index into [G*T] of token j+1's node (0 on padding)
  torch::Tensor policy_mask, old_logp;  // [N, L-1]
  torch::Tensor floors;        // [G,T] location_floor() of each node's token (rollout.box_order)
  int64_t nodes = 0;           // real nodes in all rows
};

Result<Trainer::PackedBatch> Trainer::make_packed_batch(
    const std::vector<std::vector<const Trajectory*>>& groups,
    const std::vector<const Sample*>& samples) const {
  const int S = cfg_.model.image_size;
  std::vector<PackedGroup> packs;
  int64_t T = 0, N = 0, L = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::string err;
    packs.push_back(pack_group(groups[g], Tokenizer::kImage, cfg_.model.image_tokens(), &err));
    if (!err.empty()) return Status::Error(err);
    T = std::max<int64_t>(T, packs.back().size());
    for (auto* t : groups[g]) {
      ++N;
      L = std::max<int64_t>(L, t->tokens.size());
    }
  }
  const int64_t G = static_cast<int64_t>(groups.size());
  PackedBatch b;
  b.tokens = torch::full({G, T}, Tokenizer::kPad, torch::kInt64);
  b.positions = torch::zeros({G, T}, torch::kInt64);
  b.valid = torch::zeros({G, T}, torch::kBool);
  b.slot_index = torch::full({G, T}, -1, torch::kInt64);
  b.context_node = torch::full({G, T}, -1, torch::kInt64);
  b.parent = torch::zeros({G, T}, torch::kInt64);
  auto ta = b.tokens.accessor<int64_t, 2>();
  auto pa = b.positions.accessor<int64_t, 2>();
  auto va = b.valid.accessor<bool, 2>();
  auto sa = b.slot_index.accessor<int64_t, 2>();
  auto ca = b.context_node.accessor<int64_t, 2>();
  auto ra = b.parent.accessor<int64_t, 2>();
  b.gather_index = torch::zeros({N, std::max<int64_t>(0, L - 1)}, torch::kInt64);
  auto pm = torch::zeros({N, std::max<int64_t>(0, L - 1)}, torch::kFloat32);
  auto old = torch::zeros({N, std::max<int64_t>(0, L - 1)}, torch::kFloat32);
  auto ga = b.gather_index.accessor<int64_t, 2>();
  auto pma = pm.accessor<float, 2>();
  auto oa = old.accessor<float, 2>();
  // A node's floor depends only on its ancestors' tokens, which every
  // trajectory through it shares: written once per trajectory, all equal.
  const bool box_order = cfg_.rollout.box_order;
  auto floors = torch::full({box_order ? G : 1, box_order ? T : 1}, -1, torch::kInt64);
  auto fla = floors.accessor<int64_t, 2>();
  if (box_order) b.floors = floors;
  std::vector<torch::Tensor> pixels;
  int64_t n = 0;
  for (int64_t g = 0; g < G; ++g) {
    const PackedGroup& pk = packs[g];
    const int64_t Tg = static_cast<int64_t>(pk.size());
    b.nodes += Tg;
    for (int64_t i = 0; i < Tg; ++i) {
      ta[g][i] = pk.tokens[i];
      pa[g][i] = pk.depth[i];
      va[g][i] = true;
      sa[g][i] = pk.slot_index[i];
      // PolicyImpl::add_image_terms' rule: no context in answer spans unless
      // model.answer_image_context.
      ca[g][i] = (!cfg_.model.answer_image_context && pk.in_answer[i]) ? -1 : pk.context_node[i];
      ra[g][i] = std::max(0, pk.parent[i]);
    }
    for (const auto& src : pk.images)
      pixels.push_back(image_block_tensor(samples[g]->image,
                                          groups[g][src.trajectory]->images[src.image], S));
    for (size_t k = 0; k < groups[g].size(); ++k, ++n) {
      const Trajectory& t = *groups[g][k];
      for (size_t j = 1; j < t.tokens.size(); ++j) {
        ga[n][j - 1] = g * T + pk.node_of[k][j];
        pma[n][j - 1] = t.policy_mask[j];
        oa[n][j - 1] = t.logprobs[j];
        if (box_order) fla[g][pk.node_of[k][j]] = location_floor(t.tokens.data(), j);
      }
    }
  }
  b.policy_mask = pm;
  b.old_logp = old;
  b.pixels = pixels.empty() ? torch::Tensor() : torch::stack(pixels);
  return b;
}

torch::Tensor Trainer::packed_logprobs(Policy& p, const PackedBatch& b) const {
  const torch::Tensor emb = image_rows(p, b.pixels);
  // Block-sparse tree attention from the parents (each segment against its
  // ancestors only): no dense [T,T] mask is built.
  auto h = p->hidden_states_packed(b.tokens, emb, b.positions, b.valid, torch::Tensor(),
                                   b.slot_index, b.context_node, b.parent);
  // A node's token is predicted at its parent: the parent's hidden state.
  auto hp = h.gather(1, b.parent.unsqueeze(2).expand({h.size(0), h.size(1), h.size(2)}));
  auto lp = token_logprobs(p->logits(hp), b.tokens, cfg_.rollout.temperature,
                           cfg_.rollout.location_temperature, b.floors);  // [G,T]
  return lp.reshape({-1}).index_select(0, b.gather_index.reshape({-1})).view(b.gather_index.sizes());
}

Result<std::vector<std::vector<float>>> Trainer::recompute_logprobs_packed(
    const std::vector<const Trajectory*>& group, const Sample& sample) {
  torch::NoGradGuard ng;
  auto b = make_packed_batch({group}, {&sample});
  if (!b.ok()) return b.status();
  auto lp = packed_logprobs(policy_, *b);
  auto a = lp.accessor<float, 2>();
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < group.size(); ++i) {
    const Trajectory& t = *group[i];
    std::vector<float> v(t.tokens.size(), 0.f);
    for (size_t j = 1; j < t.tokens.size(); ++j)
      if (t.policy_mask[j]) v[j] = a[i][j - 1];
    out.push_back(std::move(v));
  }
  return out;
}

Trainer::Trainer(const Config& cfg)
    : cfg_(cfg), task_(cfg.task), policy_(nullptr), reference_(nullptr) {
  torch::manual_seed(cfg.run.seed);
  policy_ = Policy(cfg.model, Tokenizer().vocab_size());
  if (!cfg.learner.init_checkpoint.empty()) {
    auto loaded = load_policy(cfg.learner.init_checkpoint);
    if (!loaded.ok()) throw std::runtime_error("learner.init_checkpoint: " + loaded.error());
    if (Status v = check_vocab_size(loaded->vocab_size); !v.ok())
      throw std::runtime_error("learner.init_checkpoint " + cfg.learner.init_checkpoint + ": " +
                               v.message());
    policy_ = loaded->policy;
    const ModelOptions& a = loaded->options;
    const ModelOptions& m = cfg.model;
    if (a.d_model != m.d_model || a.n_layers != m.n_layers || a.n_heads != m.n_heads ||
        a.ffn_hidden != m.ffn_hidden || a.image_size != m.image_size ||
        a.patch_size != m.patch_size || a.vision_layers != m.vision_layers ||
        a.summary_token != m.summary_token || a.conv_stem != m.conv_stem ||
        a.stem_grid_convs != m.stem_grid_convs ||
        a.image_context != m.image_context || a.answer_image_context != m.answer_image_context ||
        a.image_slot_pos != m.image_slot_pos ||
        a.image_query != m.image_query)
      throw std::runtime_error("learner.init_checkpoint: its model architecture differs from the "
                               "config's model section (actors build the config's)");
  }
  reference_ = Policy(cfg.model, Tokenizer().vocab_size());
  if (Status s = copy_parameters(policy_, reference_); !s.ok())
    throw std::runtime_error("reference policy: " + s.message());
  reference_->eval();
  for (auto& p : reference_->parameters()) p.set_requires_grad(false);
  for (auto& np : policy_->named_parameters()) {
    const bool vision = np.key().rfind("vision", 0) == 0;
    if (cfg.learner.freeze_vision && vision) {
      np.value().set_requires_grad(false);
    } else {
      trainable_.push_back(np.value());
    }
  }
  const auto& l = cfg.learner;
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      trainable_, torch::optim::AdamWOptions(l.lr)
                      .betas({l.adam_beta1, l.adam_beta2})
                      .eps(l.adam_eps)
                      .weight_decay(l.weight_decay));
}

Trainer::~Trainer() = default;

Trainer::Batch Trainer::make_batch(const std::vector<const Trajectory*>& trajs,
                                   const std::vector<const Sample*>& samples) const {
  const int64_t B = static_cast<int64_t>(trajs.size());
  int64_t T = 0;
  for (auto* t : trajs) T = std::max<int64_t>(T, t->tokens.size());
  Batch b;
  b.tokens = torch::full({B, T}, Tokenizer::kPad, torch::kInt64);
  b.key_mask = torch::zeros({B, T}, torch::kBool);
  auto pm = torch::zeros({B, T}, torch::kFloat32);
  auto old = torch::zeros({B, T}, torch::kFloat32);
  auto ta = b.tokens.accessor<int64_t, 2>();
  auto ka = b.key_mask.accessor<bool, 2>();
  auto pa = pm.accessor<float, 2>();
  auto oa = old.accessor<float, 2>();
  std::vector<torch::Tensor> pixels;
  const int S = cfg_.model.image_size;
  for (int64_t i = 0; i < B; ++i) {
    const Trajectory& t = *trajs[i];
    for (size_t j = 0; j < t.tokens.size(); ++j) {
      ta[i][j] = t.tokens[j];
      ka[i][j] = true;
      pa[i][j] = t.policy_mask[j];
      oa[i][j] = t.logprobs[j];
    }
    for (const auto& ref : t.images) pixels.push_back(image_block_tensor(samples[i]->image, ref, S));
  }
  if (cfg_.rollout.box_order) {
    b.floors = torch::full({B, std::max<int64_t>(0, T - 1)}, -1, torch::kInt64);
    auto fa = b.floors.accessor<int64_t, 2>();
    for (int64_t i = 0; i < B; ++i)
      for (size_t j = 1; j < trajs[i]->tokens.size(); ++j)
        fa[i][j - 1] = location_floor(trajs[i]->tokens.data(), j);
  }
  b.positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T}).contiguous();
  b.targets = b.tokens.slice(1, 1);
  b.policy_mask = pm.slice(1, 1);
  b.old_logp = old.slice(1, 1);
  b.pixels = pixels.empty() ? torch::Tensor() : torch::stack(pixels);
  return b;
}

// Log-prob of every token given its prefix: [B, T-1] (entry j is token j+1).
torch::Tensor Trainer::batch_logprobs(Policy& p, const Batch& b) const {
  const torch::Tensor emb = image_rows(p, b.pixels);
  auto logits = p->forward(b.tokens, emb, b.positions, b.key_mask);
  return token_logprobs(logits.slice(1, 0, logits.size(1) - 1), b.targets,
                        cfg_.rollout.temperature, cfg_.rollout.location_temperature, b.floors);
}

std::vector<float> Trainer::recompute_logprobs(const Trajectory& t, const Sample& sample) {
  torch::NoGradGuard ng;
  auto b = make_batch({&t}, {&sample});
  auto lp = batch_logprobs(policy_, b);
  std::vector<float> out(t.tokens.size(), 0.f);
  auto a = lp.accessor<float, 2>();
  for (size_t j = 1; j < t.tokens.size(); ++j)
    if (t.policy_mask[j]) out[j] = a[0][j - 1];
  return out;
}

Result<StepStats> Trainer::step(const std::vector<TrajectoryGroup>& groups) {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats st;
  st.groups = static_cast<int>(groups.size());

  // ---- rewards and advantages, per group ----
  std::vector<Sample> samples;
  samples.reserve(groups.size());
  std::vector<const Trajectory*> trajs;
  std::vector<const Sample*> traj_samples;
  std::vector<float> advantages;
  std::vector<bool> current;  // generated at the current version
  double box_sum = 0;
  int box_n = 0, with_box = 0;
  for (const auto& g : groups) samples.push_back(task_.get(g.prompt_id));
  const bool srpo = cfg_.learner.advantage == "srpo";
  const std::vector<double> srpo_edges =
      srpo ? srpo_log_edges(cfg_.learner.srpo_bins, cfg_.learner.srpo_min_scale)
           : std::vector<double>();
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    auto scores = score_group(g, samples[gi], cfg_.model.image_size);
    if (!scores.ok()) return scores.status();
    std::vector<double> rewards, scales;
    for (const auto& s : *scores) {
      rewards.push_back(advantage_reward(s.accuracy, s.format, cfg_.learner.format_weight));
      scales.push_back(s.scale);
      st.reward_mean += s.reward;
      st.format_mean += s.format;
      st.accuracy_mean += s.accuracy;
      st.policy_tokens_mean += s.policy_tokens;
      st.turns_mean += s.turns;
      with_box += s.has_box;
      if (s.box_score) box_sum += *s.box_score, ++box_n;
    }
    const auto adv = srpo
                         ? srpo_advantages(rewards, scales, srpo_edges, cfg_.learner.srpo_lambda,
                                           cfg_.learner.adv_eps)
                         : grpo_advantages(rewards, cfg_.learner.adv_eps);
    for (double a : adv) advantages.push_back(static_cast<float>(a));
    for (const auto& t : g.trajectories) {
      trajs.push_back(&t);
      traj_samples.push_back(&samples[gi]);
      current.push_back(g.weights_version == version_);
      st.tokens += static_cast<int64_t>(t.tokens.size());
    }
  }
  const int64_t N = static_cast<int64_t>(trajs.size());
  st.trajectories = static_cast<int>(N);
  if (N == 0) return Status::Error("step called with no trajectories");
  st.reward_mean /= N;
  st.format_mean /= N;
  st.accuracy_mean /= N;
  st.policy_tokens_mean /= N;
  st.turns_mean /= N;
  st.box_rate = static_cast<double>(with_box) / N;
  if (box_n > 0) st.box_score_mean = box_sum / box_n;

  // ---- loss over micro-batches, gradients accumulated ----
  const auto& l = cfg_.learner;
  const double frac = cfg_.learner.steps > 1 ? double(version_) / (cfg_.learner.steps - 1) : 0.0;
  st.lr = l.lr * (1.0 - (1.0 - l.lr_final_frac) * std::min(1.0, frac));
  for (auto& group : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(st.lr);
  optimizer_->zero_grad();
  policy_->train();
  GrpoLossOptions lo{l.clip_eps, l.beta_kl, l.kl_clamp};
  // Micro-batches of similar lengths waste less compute on padding: walk the
  // trajectories in length order.
  std::vector<int64_t> order(N);
  for (int64_t i = 0; i < N; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return trajs[a]->tokens.size() < trajs[b]->tokens.size();
  });
  // At most micro_batch trajectories, and fewer when one attention score
  // buffer (rows x heads x T x T floats) would pass 24 MiB: below glibc's
  // largest mmap threshold (keep_freed_memory) freed buffers are reused
  // instead of being mapped, faulted and zeroed on every layer.
  const double heads = cfg_.model.n_heads;
  auto chunk_end = [&](int64_t s) {
    int64_t e = s + 1;
    while (e < std::min<int64_t>(N, s + l.micro_batch)) {
      const double t = static_cast<double>(trajs[order[e]]->tokens.size());
      if (static_cast<double>(e + 1 - s) * heads * t * t * 4 > 24.0 * (1 << 20)) break;
      ++e;
    }
    return e;
  };
  const bool packed = l.packed_forward && !cfg_.model.image_query;
  if (packed) {
    // Micro-batches of whole groups, each packed into its prefix tree, as
    // many per micro-batch as keep one attention score buffer
    // (groups x heads x T x T floats) under the same 24 MiB.
    std::vector<int64_t> first(groups.size() + 1, 0);
    std::vector<int64_t> nodes(groups.size(), 0);
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      first[gi + 1] = first[gi] + static_cast<int64_t>(groups[gi].trajectories.size());
      std::vector<const Trajectory*> gt(trajs.begin() + first[gi], trajs.begin() + first[gi + 1]);
      std::string err;
      nodes[gi] = static_cast<int64_t>(
          pack_group(gt, Tokenizer::kImage, cfg_.model.image_tokens(), &err).size());
      if (!err.empty()) return Status::Error("group " + std::to_string(gi) + ": " + err);
    }
    for (size_t g0 = 0, g1 = 0; g0 < groups.size(); g0 = g1) {
      g1 = g0 + 1;
      int64_t tmax = nodes[g0];
      while (g1 < groups.size()) {
        const double t = static_cast<double>(std::max(tmax, nodes[g1]));
        if (static_cast<double>(g1 + 1 - g0) * heads * t * t * 4 > 24.0 * (1 << 20)) break;
        tmax = std::max(tmax, nodes[g1]);
        ++g1;
      }
      std::vector<std::vector<const Trajectory*>> mg;
      std::vector<const Sample*> ms;
      std::vector<float> madv;
      for (size_t gi = g0; gi < g1; ++gi) {
        mg.emplace_back(trajs.begin() + first[gi], trajs.begin() + first[gi + 1]);
        ms.push_back(&samples[gi]);
        for (int64_t k = first[gi]; k < first[gi + 1]; ++k) madv.push_back(advantages[k]);
      }
      auto b = make_packed_batch(mg, ms);
      if (!b.ok()) return b.status();
      torch::Tensor ref;
      if (l.beta_kl > 0) {
        torch::NoGradGuard ng;
        ref = packed_logprobs(reference_, *b);
      }
      auto lp = packed_logprobs(policy_, *b);
      if (!ref.defined()) ref = lp.detach();
      auto loss = grpo_loss(lp, b->old_logp, ref, b->policy_mask, torch::tensor(madv), lo);
      const int64_t n_mb = first[g1] - first[g0];
      const double w = double(n_mb) / double(N);
      (loss.loss * w).backward();
      st.loss += loss.loss.item<double>() * w;
      st.pg += loss.pg * w;
      st.kl += loss.kl * w;
      st.clip_frac += loss.clip_frac * w;
      st.ratio_max = std::max(st.ratio_max, loss.ratio_max);
      st.policy_tokens += loss.tokens;
      st.forward_tokens += b->nodes;
      torch::NoGradGuard ng;
      auto diff = ((lp - b->old_logp).abs() * b->policy_mask);
      for (int64_t k = 0; k < n_mb; ++k)
        if (current[first[g0] + k])
          st.logp_mismatch_max = std::max(st.logp_mismatch_max, diff[k].max().item<double>());
    }
  }
  for (int64_t s = packed ? N : 0, e = s; s < N; s = e) {
    e = chunk_end(s);
    std::vector<const Trajectory*> mt;
    std::vector<const Sample*> ms;
    std::vector<float> madv;
    for (int64_t k = s; k < e; ++k) {
      mt.push_back(trajs[order[k]]);
      ms.push_back(traj_samples[order[k]]);
      madv.push_back(advantages[order[k]]);
    }
    auto b = make_batch(mt, ms);
    torch::Tensor ref;
    if (l.beta_kl > 0) {
      torch::NoGradGuard ng;
      ref = batch_logprobs(reference_, b);
    }
    auto lp = batch_logprobs(policy_, b);
    if (!ref.defined()) ref = lp.detach();  // beta_kl == 0: KL term is zero
    auto loss = grpo_loss(lp, b.old_logp, ref, b.policy_mask, torch::tensor(madv), lo);
    const double w = double(e - s) / double(N);
    (loss.loss * w).backward();
    st.loss += loss.loss.item<double>() * w;
    st.pg += loss.pg * w;
    st.kl += loss.kl * w;
    st.clip_frac += loss.clip_frac * w;
    st.ratio_max = std::max(st.ratio_max, loss.ratio_max);
    st.policy_tokens += loss.tokens;
    st.forward_tokens += b.key_mask.sum().item<int64_t>();
    {
      torch::NoGradGuard ng;
      auto diff = ((lp - b.old_logp).abs() * b.policy_mask);
      for (int64_t k = s; k < e; ++k)
        if (current[order[k]])
          st.logp_mismatch_max = std::max(st.logp_mismatch_max, diff[k - s].max().item<double>());
    }
  }
  st.grad_norm = torch::nn::utils::clip_grad_norm_(trainable_, l.grad_clip);
  optimizer_->step();
  ++version_;
  st.train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

}  // namespace gr1
