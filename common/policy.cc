#include "common/policy.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>

#include "common/safetensors.h"
#include "common/tokenizer.h"

namespace gr1 {
namespace detail {

namespace F = torch::nn::functional;

class RMSNormImpl : public torch::nn::Module {
 public:
  explicit RMSNormImpl(int64_t dim) { weight = register_parameter("weight", torch::ones({dim})); }
  torch::Tensor forward(const torch::Tensor& x) {
    return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-6) * weight;
  }
  torch::Tensor weight;
};

// Rotate-half RoPE; x [B,H,T,hd], cos/sin [B,1,T,hd/2].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t h = x.size(-1) / 2;
  auto x1 = x.slice(-1, 0, h), x2 = x.slice(-1, h);
  return torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

// Block-sparse attention over packed prefix trees (hidden_states_packed with
// parents): per row, the segments in node order; each segment's queries are
// nodes [q0, q1) and its keys the nodes `keys` (its ancestors, then itself),
// with `mask` [q1-q0, keys] additive (0, or -inf above the diagonal of its
// own part). Built once per forward, shared by the layers.
struct TreeSegment {
  int64_t q0 = 0, q1 = 0;
  torch::Tensor keys;  // int64 [Lk]
  torch::Tensor mask;  // float [Ls, Lk], undefined when Ls == 1 (nothing to mask)
};
struct TreeAttention {
  std::vector<std::vector<TreeSegment>> rows;  // per batch row
  std::vector<int64_t> real;                   // per row: its real nodes (a prefix of T)
};

TreeAttention tree_attention_plan(const torch::Tensor& parent_in, const torch::Tensor& valid_in) {
  auto parent = parent_in.to(torch::kInt64).contiguous();
  auto valid = valid_in.to(torch::kBool).contiguous();
  const int64_t B = parent.size(0), T = parent.size(1);
  auto pa = parent.accessor<int64_t, 2>();
  auto va = valid.accessor<bool, 2>();
  TreeAttention plan;
  plan.rows.resize(static_cast<size_t>(B));
  plan.real.assign(static_cast<size_t>(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = 0;
    while (n < T && va[b][n]) ++n;
    for (int64_t i = n; i < T; ++i)
      if (va[b][i])
        throw std::invalid_argument("policy.hidden_states_packed: row " + std::to_string(b) +
                                    ": real nodes must precede the padding");
    plan.real[static_cast<size_t>(b)] = n;
    std::vector<int64_t> children(static_cast<size_t>(n), 0);
    for (int64_t i = 1; i < n; ++i) {
      const int64_t p = pa[b][i];
      if (p < 0 || p >= i)
        throw std::invalid_argument("policy.hidden_states_packed: row " + std::to_string(b) +
                                    ": node " + std::to_string(i) + " has parent " +
                                    std::to_string(p) + " (a parent precedes its child)");
      ++children[static_cast<size_t>(p)];
    }
    // Segment starts: the first node, a node that does not follow its
    // parent, and the first child of a branching node. (Cutting long runs
    // into query blocks too, as hidden_states does, made the learner step
    // slower: every piece copies its ancestors' keys; docs/benchmarks.md.)
    std::vector<int64_t> seg_of(static_cast<size_t>(n), 0), starts, parent_seg;
    for (int64_t i = 0; i < n; ++i) {
      const bool start = i == 0 || pa[b][i] != i - 1 || children[static_cast<size_t>(i - 1)] > 1;
      if (start) {
        starts.push_back(i);
        parent_seg.push_back(i == 0 ? -1 : seg_of[static_cast<size_t>(pa[b][i])]);
      }
      seg_of[static_cast<size_t>(i)] = static_cast<int64_t>(starts.size()) - 1;
    }
    auto& segs = plan.rows[static_cast<size_t>(b)];
    for (size_t s = 0; s < starts.size(); ++s) {
      TreeSegment seg;
      seg.q0 = starts[s];
      seg.q1 = s + 1 < starts.size() ? starts[s + 1] : n;
      // Ancestor segments, root first: each ends at the node its child
      // segment hangs from (a segment is cut after a branching node).
      std::vector<std::pair<int64_t, int64_t>> ranges;
      for (int64_t a = parent_seg[s]; a >= 0; a = parent_seg[static_cast<size_t>(a)]) {
        const int64_t a0 = starts[static_cast<size_t>(a)];
        const int64_t a1 = static_cast<size_t>(a) + 1 < starts.size() ? starts[static_cast<size_t>(a) + 1] : n;
        ranges.emplace_back(a0, a1);
      }
      std::vector<int64_t> keys;
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it)
        for (int64_t j = it->first; j < it->second; ++j) keys.push_back(j);
      const int64_t La = static_cast<int64_t>(keys.size()), Ls = seg.q1 - seg.q0;
      for (int64_t j = seg.q0; j < seg.q1; ++j) keys.push_back(j);
      seg.keys = torch::tensor(keys, torch::kInt64);
      if (Ls > 1) {
        seg.mask = torch::zeros({Ls, La + Ls}, torch::kFloat32);
        seg.mask.slice(1, La, La + Ls)
            .copy_(torch::full({Ls, Ls}, -std::numeric_limits<float>::infinity()).triu(1));
      }
      segs.push_back(std::move(seg));
    }
  }
  return plan;
}

// Pre-norm transformer block: attention (optionally RoPE + mask + cache) and SwiGLU.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t d, int64_t heads, int64_t ffn) : heads_(heads), hd_(d / heads) {
    attn_norm = register_module("attn_norm", std::make_shared<RMSNormImpl>(d));
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(d, 3 * d).bias(false)));
    out = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
    ffn_norm = register_module("ffn_norm", std::make_shared<RMSNormImpl>(d));
    gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(d, ffn).bias(false)));
    up = register_module("up", torch::nn::Linear(torch::nn::LinearOptions(d, ffn).bias(false)));
    down = register_module("down", torch::nn::Linear(torch::nn::LinearOptions(ffn, d).bias(false)));
  }

  // x [B,T,d]. cos/sin undefined = no RoPE; bias [B,1,T,Tk] additive (0 or
  // -inf), undefined = full attention.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, torch::Tensor* k_cache, torch::Tensor* v_cache,
                        int64_t past, const TreeAttention* tree = nullptr, int64_t query_chunk = 0) {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2);
    auto qkv_ = qkv(attn_norm->forward(x)).view({B, T, 3, heads_, hd_}).permute({2, 0, 3, 1, 4});
    auto q = qkv_[0], k = qkv_[1], v = qkv_[2];  // [B,H,T,hd]
    if (cos.defined()) {
      q = apply_rope(q, cos, sin);
      k = apply_rope(k, cos, sin);
    }
    if (k_cache) {
      k_cache->slice(2, past, past + T).copy_(k);
      v_cache->slice(2, past, past + T).copy_(v);
      k = k_cache->slice(2, 0, past + T);
      v = v_cache->slice(2, 0, past + T);
    }
    // Scale on q (small): the [B,H,T,Tk] scores are the big tensor, so they
    // take as few passes as possible.
    q = q * (1.0 / std::sqrt(static_cast<double>(hd_)));
    torch::Tensor a;
    if (tree) {
      a = tree_attention(q, k, v, *tree).transpose(1, 2).reshape({B, T, d});
    } else if (query_chunk > 0 && T > query_chunk) {
      // Causal, in query blocks: block [c0, c1) may attend no key after
      // past + c1 - 1, so the keys beyond are left out instead of masked.
      const int64_t past_k = k.size(2) - T;
      std::vector<torch::Tensor> parts;
      for (int64_t c0 = 0; c0 < T; c0 += query_chunk) {
        const int64_t c1 = std::min(T, c0 + query_chunk), kend = past_k + c1;
        auto s = torch::matmul(q.slice(2, c0, c1), k.slice(2, 0, kend).transpose(-2, -1));
        if (bias.defined()) s.add_(bias.slice(2, c0, c1).slice(3, 0, kend));
        parts.push_back(torch::matmul(torch::softmax(s, -1), v.slice(2, 0, kend)));
      }
      a = torch::cat(parts, 2).transpose(1, 2).reshape({B, T, d});
    } else {
      // The bias is added in place, for the same reason.
      auto s = torch::matmul(q, k.transpose(-2, -1));
      if (bias.defined()) s.add_(bias);
      a = torch::matmul(torch::softmax(s, -1), v).transpose(1, 2).reshape({B, T, d});
    }
    auto h = x + out(a);
    auto f = ffn_norm->forward(h);
    return h + down(torch::silu(gate(f)) * up(f));
  }

  std::shared_ptr<RMSNormImpl> attn_norm, ffn_norm;
  torch::nn::Linear qkv{nullptr}, out{nullptr}, gate{nullptr}, up{nullptr}, down{nullptr};

 private:
  // q (already scaled), k, v [B,H,T,hd] -> [B,H,T,hd]: every segment's
  // queries against its own keys only; padding rows are zeros.
  static torch::Tensor tree_attention(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v, const TreeAttention& tree) {
    const int64_t B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3);
    std::vector<torch::Tensor> rows;
    rows.reserve(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      const auto qb = q[b], kb = k[b], vb = v[b];  // [H,T,hd]
      std::vector<torch::Tensor> parts;
      for (const auto& seg : tree.rows[static_cast<size_t>(b)]) {
        auto s = torch::matmul(qb.slice(1, seg.q0, seg.q1), kb.index_select(1, seg.keys).transpose(-2, -1));
        if (seg.mask.defined()) s.add_(seg.mask);
        parts.push_back(torch::matmul(torch::softmax(s, -1), vb.index_select(1, seg.keys)));
      }
      const int64_t n = tree.real[static_cast<size_t>(b)];
      if (n < T) parts.push_back(torch::zeros({H, T - n, hd}, q.options()));
      rows.push_back(torch::cat(parts, 1));
    }
    return torch::stack(rows);
  }

  int64_t heads_, hd_;
};

class VisionEncoderImpl : public torch::nn::Module {
 public:
  explicit VisionEncoderImpl(const ModelOptions& o) : opt_(o) {
    const int64_t d = o.d_model, P = o.patch_tokens();
    if (o.conv_stem) {
      // 3x3 conv at full resolution, then one stride-2 3x3 conv per halving
      // down to the patch grid; channels double from 32 and end at d.
      stem = register_module("stem", torch::nn::ModuleList());
      int64_t c = std::min<int64_t>(32, d);
      stem->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c, 3).padding(1)));
      for (int p = o.patch_size; p > 1; p /= 2) {
        const int64_t next = p == 2 ? d : std::min<int64_t>(2 * c, d);
        stem->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, next, 3).stride(2).padding(1)));
        c = next;
      }
      if (o.patch_size == 1) stem->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, d, 1)));
      if (o.stem_grid_convs > 0) {
        grid_convs = register_module("grid_convs", torch::nn::ModuleList());
        for (int i = 0; i < o.stem_grid_convs; ++i)
          grid_convs->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(d, d, 3).padding(1)));
      }
    } else {
      patch_embed = register_module(
          "patch_embed", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, d, o.patch_size).stride(o.patch_size)));
    }
    pos_embed = register_parameter("pos_embed", torch::zeros({P, d}));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int i = 0; i < o.vision_layers; ++i) {
      auto b = std::make_shared<BlockImpl>(d, o.n_heads, o.ffn_hidden);
      layers->push_back(b);
      blocks.push_back(b);
    }
    norm = register_module("norm", std::make_shared<RMSNormImpl>(d));
    proj_in = register_module("proj_in", torch::nn::Linear(d, d));
    proj_out = register_module("proj_out", torch::nn::Linear(d, d));
  }

  torch::Tensor forward(const torch::Tensor& pixels) {
    const int64_t S = opt_.image_size;
    if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) != S || pixels.size(3) != S)
      throw std::invalid_argument("encode_images: pixels must be [N,3," + std::to_string(S) + "," +
                                  std::to_string(S) + "], got " + c10::str(pixels.sizes()));
    auto x = (pixels.to(torch::kFloat32) - 0.5) * 2.0;
    if (stem) {
      for (size_t i = 0; i < stem->size(); ++i) {
        x = stem[i]->as<torch::nn::Conv2d>()->forward(x);
        if (i + 1 < stem->size()) x = torch::gelu(x);
      }
      if (grid_convs)
        for (size_t i = 0; i < grid_convs->size(); ++i)
          x = x + grid_convs[i]->as<torch::nn::Conv2d>()->forward(torch::gelu(x));
    } else {
      x = patch_embed(x);
    }  // [N,d,g,g]
    x = x.flatten(2).transpose(1, 2) + pos_embed;                    // [N,P,d]
    for (auto& b : blocks) x = b->forward(x, {}, {}, {}, nullptr, nullptr, 0);
    x = norm->forward(x);
    // Summary token: the max over the patches (after the norm), projected
    // like a patch, appended after them.
    if (opt_.summary_token) x = torch::cat({x, std::get<0>(x.max(1, /*keepdim=*/true))}, 1);
    return proj_out(torch::gelu(proj_in(x)));
  }

  torch::nn::Conv2d patch_embed{nullptr};
  torch::nn::ModuleList stem{nullptr};
  torch::nn::ModuleList grid_convs{nullptr};  // stem_grid_convs
  torch::Tensor pos_embed;
  torch::nn::ModuleList layers{nullptr};
  std::vector<std::shared_ptr<BlockImpl>> blocks;
  std::shared_ptr<RMSNormImpl> norm;
  torch::nn::Linear proj_in{nullptr}, proj_out{nullptr};

 private:
  ModelOptions opt_;
};

}  // namespace detail

namespace {

[[noreturn]] void bad(const std::string& m) { throw std::invalid_argument(m); }

void check_options(const ModelOptions& o, int64_t vocab) {
  if (o.d_model <= 0 || o.n_layers < 0 || o.n_heads <= 0 || o.ffn_hidden <= 0 || o.image_size <= 0 ||
      o.patch_size <= 0 || o.vision_layers < 0 || o.max_seq_len <= 0 || !(o.rope_theta > 0) || vocab <= 0)
    bad("policy: model sizes must be positive");
  if (o.d_model % o.n_heads != 0) bad("policy: d_model must be a multiple of n_heads");
  if ((o.d_model / o.n_heads) % 2 != 0) bad("policy: head size d_model/n_heads must be even (RoPE)");
  if (o.image_size % o.patch_size != 0) bad("policy: image_size must be a multiple of patch_size");
  if (o.conv_stem && (o.patch_size & (o.patch_size - 1)) != 0)
    bad("policy: patch_size must be a power of 2 with conv_stem");
  if (o.stem_grid_convs < 0 || (o.stem_grid_convs > 0 && !o.conv_stem))
    bad("policy: stem_grid_convs needs conv_stem");
  if (o.image_context && !o.summary_token) bad("policy: image_context needs summary_token");
  if (!o.answer_image_context && !o.image_context)
    bad("policy: answer_image_context false needs image_context");
}

// Additive attention bias [B,1,Tq,Tk] (0 = may attend, -inf = masked):
// causal by column, keys restricted to `key_valid`, and every query may
// always see itself (so padding queries never get an empty row; their
// outputs are unused).
//   key_valid [B,Tk]; queries are columns [past, past+Tq) of the keys.
torch::Tensor attention_bias(const torch::Tensor& key_valid, int64_t past, int64_t Tq) {
  const int64_t Tk = key_valid.size(1);
  auto kcol = torch::arange(Tk, torch::kInt64).unsqueeze(0);          // [1,Tk]
  auto qcol = torch::arange(past, past + Tq, torch::kInt64).unsqueeze(1);  // [Tq,1]
  auto causal = kcol.le(qcol);                                         // [Tq,Tk]
  auto self = kcol.eq(qcol);
  auto allowed = (key_valid.unsqueeze(1) & causal.unsqueeze(0)).logical_or(self.unsqueeze(0)).unsqueeze(1);
  return torch::zeros(allowed.sizes(), torch::kFloat32)
      .masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
}

int64_t item_i64(const torch::Tensor& t) { return t.item<int64_t>(); }

constexpr double kNeverLogit = -1e9;

}  // namespace

// ---------------------------------------------------------------- PolicyImpl

PolicyImpl::PolicyImpl(const ModelOptions& options, int64_t vocab_size) : opt_(options), vocab_(vocab_size) {
  check_options(opt_, vocab_);
  const int64_t d = opt_.d_model;
  vision_ = register_module("vision", std::make_shared<detail::VisionEncoderImpl>(opt_));
  tok_embed_ = register_module("tok_embed", torch::nn::Embedding(vocab_, d));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < opt_.n_layers; ++i) {
    auto b = std::make_shared<detail::BlockImpl>(d, opt_.n_heads, opt_.ffn_hidden);
    layers_->push_back(b);
    blocks_.push_back(b);
  }
  norm_ = register_module("norm", std::make_shared<detail::RMSNormImpl>(d));
  lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(d, vocab_).bias(false)));
  if (opt_.image_slot_pos)
    image_slot_pos_ = register_parameter("image_slot_pos", torch::zeros({opt_.image_tokens(), d}));
  if (opt_.image_query)
    image_query_ = register_module("image_query", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
  if (opt_.image_context)
    image_ctx_ = register_module("image_ctx", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));

  // GPT-2 style init: N(0, 0.02); residual output projections scaled by
  // 1/sqrt(2 * blocks); norms one, biases zero. Convolutions of the vision
  // front end get He init, N(0, 2 / fan_in): at N(0, 0.02) a stack of convs
  // shrinks its signal layer by layer, and the measured vision stage then
  // learned to read crop details several times slower (docs/results.md).
  torch::NoGradGuard ng;
  const double resid_std = 0.02 / std::sqrt(2.0 * std::max(1, opt_.n_layers + opt_.vision_layers));
  for (auto& np : named_parameters()) {
    const std::string& name = np.key();
    auto& p = np.value();
    auto ends = [&](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (p.dim() == 4) {  // conv kernels [out, in, kh, kw]
      p.normal_(0.0, std::sqrt(2.0 / static_cast<double>(p[0].numel())));
    } else if (ends("norm.weight")) {
      p.fill_(1.0);
    } else if (ends(".bias")) {
      p.zero_();
    } else if (ends(".out.weight") || ends(".down.weight")) {
      p.normal_(0.0, resid_std);
    } else {
      p.normal_(0.0, 0.02);
    }
  }

  // RoPE tables, computed in double.
  const int64_t half = d / opt_.n_heads / 2;
  auto inv = torch::pow(opt_.rope_theta,
                        -torch::arange(half, torch::kFloat64) * 2.0 / static_cast<double>(2 * half));
  auto ang = torch::arange(opt_.max_seq_len, torch::kFloat64).unsqueeze(1) * inv.unsqueeze(0);
  rope_cos_ = ang.cos().to(torch::kFloat32);
  rope_sin_ = ang.sin().to(torch::kFloat32);
}

torch::Tensor PolicyImpl::encode_images(const torch::Tensor& pixels) { return vision_->forward(pixels); }

torch::Tensor PolicyImpl::embed(const torch::Tensor& tokens, const torch::Tensor& slots,
                                const torch::Tensor& image_embeds) {
  const int64_t B = tokens.size(0), T = tokens.size(1), d = opt_.d_model;
  if (tokens.numel() > 0) {
    const int64_t lo = item_i64(tokens.min()), hi = item_i64(tokens.max());
    if (lo < 0 || hi >= vocab_)
      bad("policy: token id out of range [0," + std::to_string(vocab_) + "): " +
          std::to_string(lo < 0 ? lo : hi));
  }
  const int64_t n_slots = tokens.numel() > 0 ? item_i64(slots.sum()) : 0;
  const int64_t M = (image_embeds.defined() && image_embeds.numel() > 0) ? image_embeds.size(0) : 0;
  if (n_slots != M)
    bad("policy: " + std::to_string(n_slots) + " <image> tokens but " + std::to_string(M) +
        " image embedding rows");
  auto x = tok_embed_(tokens);
  if (M == 0) return x;
  if (image_embeds.dim() != 2 || image_embeds.size(1) != d)
    bad("policy: image_embeds must be [M," + std::to_string(d) + "], got " + c10::str(image_embeds.sizes()));
  auto idx = slots.reshape({-1}).nonzero().squeeze(1);
  return x.reshape({B * T, d}).index_put({idx}, image_embeds.to(x.dtype())).view({B, T, d});
}

PolicyImpl::ImageTermsState PolicyImpl::ImageTermsState::zeros(int64_t B, int64_t d) {
  return {torch::zeros({B}, torch::kInt64), torch::zeros({B, d}), torch::zeros({B, d}),
          torch::zeros({B}), torch::zeros({B}, torch::kBool)};
}

PolicyImpl::ImageTermsState PolicyImpl::ImageTermsState::select(const torch::Tensor& index) const {
  return {slots.index_select(0, index), ctx.index_select(0, index), qsum.index_select(0, index),
          qcount.index_select(0, index), in_answer.index_select(0, index)};
}

torch::Tensor PolicyImpl::add_image_terms(const torch::Tensor& x_in, const torch::Tensor& tokens,
                                          const torch::Tensor& valid, ImageTermsState& st) {
  if (!has_image_terms()) return x_in;
  const int64_t B = x_in.size(0), T = x_in.size(1), d = x_in.size(2), n = opt_.image_tokens();
  if (T == 0) return x_in;
  const auto slots = tokens.eq(Tokenizer::kImage) & valid;
  const auto slot_f = slots.unsqueeze(2).to(x_in.dtype());
  auto count = st.slots.unsqueeze(1) + slots.to(torch::kInt64).cumsum(1);  // [B,T] slots up to j
  auto col = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto x = x_in;
  if (opt_.image_slot_pos) {
    auto k = (count - 1).remainder(n).clamp_min(0);  // slot index within its block
    auto pos = image_slot_pos_.index_select(0, k.reshape({-1})).view({B, T, d});
    x = x + pos * slot_f;
  }
  if (opt_.image_query) {
    // Running sums of the text embeddings, restarted at each <|user|>.
    const auto text = (valid & slots.logical_not()).unsqueeze(2).to(x_in.dtype());  // [B,T,1]
    auto csum = (x_in * text).cumsum(1);                                          // [B,T,d]
    auto ccnt = text.squeeze(2).cumsum(1);                                        // [B,T]
    const auto user = tokens.eq(Tokenizer::kUser) & valid;
    auto u = std::get<0>(torch::where(user, col, torch::full_like(col, -1)).cummax(1));  // [B,T]
    auto uc = u.clamp_min(0);
    // Sum over [u, j] = csum[j] - csum[u] + e[u]; no <|user|> yet in this
    // chunk: carried sum + csum[j].
    auto at_u = csum.gather(1, uc.unsqueeze(2).expand({B, T, d})) -
                (x_in * text).gather(1, uc.unsqueeze(2).expand({B, T, d}));
    auto cnt_u = ccnt.gather(1, uc) - text.squeeze(2).gather(1, uc);
    const auto has_u = u.ge(0);
    auto qsum = torch::where(has_u.unsqueeze(2), csum - at_u, st.qsum.unsqueeze(1) + csum);
    auto qcnt = torch::where(has_u, ccnt - cnt_u, st.qcount.unsqueeze(1) + ccnt);
    x = x + image_query_(qsum / qcnt.clamp_min(1).unsqueeze(2)) * slot_f;
    st.qsum = qsum.select(1, T - 1).detach();
    st.qcount = qcnt.select(1, T - 1).detach();
  }
  if (opt_.image_context) {
    auto ends = slots & count.remainder(n).eq(0);  // block-closing slots
    auto last = std::get<0>(torch::where(ends, col, torch::full_like(col, -1)).cummax(1));  // [B,T]
    // The summary row as the encoder gave it (x_in), without its slot terms.
    auto at = x_in.gather(1, last.clamp_min(0).unsqueeze(2).expand({B, T, d}));
    auto ctx = torch::where(last.ge(0).unsqueeze(2), at, st.ctx.to(x.dtype()).unsqueeze(1));  // [B,T,d]
    auto use = slots.logical_not();
    if (!opt_.answer_image_context) {
      // Answer spans: the latest <answer> at or before j is later than the
      // latest </answer> at or before j; with neither in this chunk yet, the
      // state the earlier chunks left.
      auto latest = [&](int32_t tag) {
        return std::get<0>(
            torch::where(tokens.eq(tag) & valid, col, torch::full_like(col, -1)).cummax(1));
      };
      const auto open = latest(Tokenizer::kAnswer), close = latest(Tokenizer::kAnswerEnd);
      const auto in_answer =
          torch::where(open.ge(0) | close.ge(0), open.gt(close), st.in_answer.unsqueeze(1));  // [B,T]
      use = use & in_answer.logical_not();
      st.in_answer = in_answer.select(1, T - 1);
    }
    x = x + image_ctx_(ctx) * use.unsqueeze(2).to(x.dtype());
    st.ctx = ctx.select(1, T - 1).detach();
  }
  st.slots = count.select(1, T - 1);
  return x;
}

std::pair<torch::Tensor, torch::Tensor> PolicyImpl::rope(const torch::Tensor& positions) const {
  const int64_t B = positions.size(0), T = positions.size(1), half = rope_cos_.size(1);
  auto p = positions.reshape({-1}).clamp(0, opt_.max_seq_len - 1);
  auto c = rope_cos_.index_select(0, p).view({B, 1, T, half});
  auto s = rope_sin_.index_select(0, p).view({B, 1, T, half});
  return {c, s};
}

torch::Tensor PolicyImpl::run_layers(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& bias, std::vector<torch::Tensor>* k_cache,
                                     std::vector<torch::Tensor>* v_cache, int64_t past,
                                     std::vector<torch::Tensor>* layer_outputs,
                                     const detail::TreeAttention* tree, bool causal) {
  if (layer_outputs) layer_outputs->clear();
  const int64_t chunk = causal ? query_chunk_ : 0;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    x = blocks_[l]->forward(x, cos, sin, bias, k_cache ? &(*k_cache)[l] : nullptr,
                            v_cache ? &(*v_cache)[l] : nullptr, past, tree, chunk);
    if (layer_outputs) layer_outputs->push_back(x);
  }
  return x;
}

// <image> is a slot placeholder, never an output: its logit is pinned far
// below the others (finite, so a target of <image> gives a finite log-prob
// that masks can zero without NaN), identically on every path.
torch::Tensor PolicyImpl::head(const torch::Tensor& h) {
  return lm_head_(norm_->forward(h)).index_fill(-1, torch::tensor({int64_t{Tokenizer::kImage}}), kNeverLogit);
}

// Measured (docs/benchmarks.md, "Query-blocked attention"): forward and
// backward at d_model 128, T 256-1024, blocks of 64-256 rows.
int64_t PolicyImpl::default_attention_query_chunk() { return 128; }

void PolicyImpl::set_attention_query_chunk(int64_t rows) {
  if (rows < 0) bad("policy.set_attention_query_chunk: rows must be >= 0 (0 = one block), got " +
                    std::to_string(rows));
  query_chunk_ = rows;
}

torch::Tensor PolicyImpl::hidden_states(const torch::Tensor& tokens_in, const torch::Tensor& image_embeds,
                                        const torch::Tensor& positions_in, const torch::Tensor& key_mask_in,
                                        std::vector<torch::Tensor>* layer_outputs) {
  if (!tokens_in.defined() || tokens_in.dim() != 2) bad("policy.forward: tokens must be [B,T]");
  const int64_t B = tokens_in.size(0), T = tokens_in.size(1);
  auto tokens = tokens_in.to(torch::kInt64);
  auto key_mask = key_mask_in.defined() ? key_mask_in.to(torch::kBool) : torch::ones({B, T}, torch::kBool);
  auto positions = positions_in.defined()
                       ? positions_in.to(torch::kInt64)
                       : torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  if (key_mask.sizes() != tokens.sizes() || positions.sizes() != tokens.sizes())
    bad("policy.forward: tokens " + c10::str(tokens.sizes()) + ", positions " + c10::str(positions.sizes()) +
        " and key_mask " + c10::str(key_mask.sizes()) + " must have the same shape");
  if (B * T > 0) {
    auto vp = positions.masked_select(key_mask);
    if (vp.numel() > 0 && (item_i64(vp.min()) < 0 || item_i64(vp.max()) >= opt_.max_seq_len))
      bad("policy.forward: positions must lie in [0, max_seq_len=" + std::to_string(opt_.max_seq_len) + ")");
  }
  // Padding may hold any id; only valid entries are looked up as given.
  tokens = tokens.masked_fill(key_mask.logical_not(), Tokenizer::kPad);
  const auto slots = tokens.eq(Tokenizer::kImage) & key_mask;
  auto x = embed(tokens, slots, image_embeds);
  if (has_image_terms()) {
    auto state = ImageTermsState::zeros(B, opt_.d_model);
    x = add_image_terms(x, tokens, key_mask, state);
  }
  auto [cos, sin] = rope(positions);
  return run_layers(x, cos, sin, attention_bias(key_mask, 0, T), nullptr, nullptr, 0, layer_outputs,
                    nullptr, /*causal=*/true);
}

torch::Tensor PolicyImpl::hidden_states_packed(const torch::Tensor& tokens_in,
                                               const torch::Tensor& image_embeds,
                                               const torch::Tensor& positions_in,
                                               const torch::Tensor& valid_in,
                                               const torch::Tensor& allowed_in,
                                               const torch::Tensor& slot_index_in,
                                               const torch::Tensor& context_node_in,
                                               const torch::Tensor& parent_in) {
  if (opt_.image_query) bad("policy.hidden_states_packed: model.image_query is not supported packed");
  if (!tokens_in.defined() || tokens_in.dim() != 2) bad("policy.hidden_states_packed: tokens must be [B,T]");
  const int64_t B = tokens_in.size(0), T = tokens_in.size(1), d = opt_.d_model;
  const std::vector<int64_t> bt{B, T}, btt{B, T, T};
  if (positions_in.sizes() != bt || valid_in.sizes() != bt || slot_index_in.sizes() != bt ||
      context_node_in.sizes() != bt ||
      (!parent_in.defined() && (!allowed_in.defined() || allowed_in.sizes() != btt)))
    bad("policy.hidden_states_packed: positions, valid, slot_index, context_node must be [B,T] and "
        "allowed [B,T,T] (unless parent is given)");
  auto valid = valid_in.to(torch::kBool);
  auto positions = positions_in.to(torch::kInt64);
  if (B * T > 0) {
    auto vp = positions.masked_select(valid);
    if (vp.numel() > 0 && (item_i64(vp.min()) < 0 || item_i64(vp.max()) >= opt_.max_seq_len))
      bad("policy.hidden_states_packed: positions must lie in [0, max_seq_len=" +
          std::to_string(opt_.max_seq_len) + ")");
  }
  auto tokens = tokens_in.to(torch::kInt64).masked_fill(valid.logical_not(), Tokenizer::kPad);
  const auto slots = tokens.eq(Tokenizer::kImage) & valid;
  auto x_in = embed(tokens, slots, image_embeds);
  auto x = x_in;
  auto slot_index = slot_index_in.to(torch::kInt64);
  if (opt_.image_slot_pos) {
    auto pos = image_slot_pos_.index_select(0, slot_index.clamp_min(0).reshape({-1})).view({B, T, d});
    x = x + pos * slots.unsqueeze(2).to(x.dtype());
  }
  if (opt_.image_context) {
    auto ctx_node = context_node_in.to(torch::kInt64);
    auto at = x_in.gather(1, ctx_node.clamp_min(0).unsqueeze(2).expand({B, T, d}));
    auto use = (ctx_node.ge(0) & slots.logical_not() & valid).unsqueeze(2).to(x.dtype());
    x = x + image_ctx_(at) * use;
  }
  auto [cos, sin] = rope(positions);
  if (parent_in.defined()) {
    if (parent_in.sizes() != bt) bad("policy.hidden_states_packed: parent must be [B,T]");
    const detail::TreeAttention tree = detail::tree_attention_plan(parent_in, valid);
    return run_layers(x, cos, sin, torch::Tensor(), nullptr, nullptr, 0, nullptr, &tree);
  }
  auto allowed = allowed_in.to(torch::kBool) & valid.unsqueeze(1);
  allowed = allowed.logical_or(torch::eye(T, torch::kBool).unsqueeze(0));  // every query sees itself
  auto bias = torch::zeros({B, 1, T, T}, torch::kFloat32)
                  .masked_fill_(allowed.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
  return run_layers(x, cos, sin, bias, nullptr, nullptr, 0);
}

torch::Tensor PolicyImpl::forward(const torch::Tensor& tokens, const torch::Tensor& image_embeds,
                                  const torch::Tensor& positions, const torch::Tensor& key_mask) {
  return head(hidden_states(tokens, image_embeds, positions, key_mask));
}

torch::Tensor PolicyImpl::logits(const torch::Tensor& hidden) { return head(hidden); }

// ------------------------------------------------------------- DecodeSession

DecodeSession::DecodeSession(Policy policy, int64_t batch) : policy_(std::move(policy)), batch_(batch) {
  if (batch < 0) bad("DecodeSession: negative batch");
  const int64_t L = policy_->opt_.n_layers;
  k_.assign(L, torch::Tensor());
  v_.assign(L, torch::Tensor());
  counter_ = torch::zeros({batch_}, torch::kInt64);
  last_ = torch::zeros({batch_, policy_->vocab_}, torch::kFloat32);
  terms_ = PolicyImpl::ImageTermsState::zeros(batch_, policy_->opt_.d_model);
  reserve(64);
}

void DecodeSession::reserve(int64_t columns) {
  if (columns <= cap_) return;
  const int64_t cap = std::max<int64_t>({columns, 2 * cap_, 64});
  const ModelOptions& o = policy_->opt_;
  const int64_t H = o.n_heads, hd = o.d_model / o.n_heads;
  for (size_t l = 0; l < k_.size(); ++l) {
    auto k = torch::zeros({batch_, H, cap, hd}, torch::kFloat32);
    auto v = torch::zeros({batch_, H, cap, hd}, torch::kFloat32);
    if (len_ > 0) {
      k.slice(2, 0, len_).copy_(k_[l].slice(2, 0, len_));
      v.slice(2, 0, len_).copy_(v_[l].slice(2, 0, len_));
    }
    k_[l] = k;
    v_[l] = v;
  }
  auto kv = torch::zeros({batch_, cap}, torch::kBool);
  if (len_ > 0) kv.slice(1, 0, len_).copy_(key_valid_.slice(1, 0, len_));
  key_valid_ = kv;
  cap_ = cap;
}

torch::Tensor DecodeSession::append(const torch::Tensor& tokens_in, const torch::Tensor& valid_in,
                                    const torch::Tensor& image_embeds) {
  torch::NoGradGuard no_grad;
  if (!tokens_in.defined() || !valid_in.defined() || tokens_in.dim() != 2 ||
      tokens_in.sizes() != valid_in.sizes() || tokens_in.size(0) != batch_)
    bad("DecodeSession.append: tokens and valid must both be [" + std::to_string(batch_) + ",n]");
  auto tokens = tokens_in.to(torch::kInt64);
  auto valid = valid_in.to(torch::kBool);
  const int64_t n_in = tokens.size(1);
  if (batch_ == 0 || n_in == 0) {
    if (image_embeds.defined() && image_embeds.numel() > 0)
      bad("DecodeSession.append: image embeddings given for an empty chunk");
    return last_;
  }
  if (n_in > 1 && (valid.slice(1, 1) & valid.slice(1, 0, n_in - 1).logical_not()).any().item<bool>())
    bad("DecodeSession.append: valid entries must be a prefix of each row's chunk");
  auto counts = valid.sum(1);  // [B] int64
  const int64_t n = item_i64(counts.max());
  if (n == 0) {
    if (image_embeds.defined() && image_embeds.numel() > 0)
      bad("DecodeSession.append: image embeddings given but no valid tokens");
    return last_;
  }
  tokens = tokens.slice(1, 0, n);
  valid = valid.slice(1, 0, n);
  const ModelOptions& o = policy_->opt_;
  auto positions = counter_.unsqueeze(1) + torch::arange(n, torch::kInt64).unsqueeze(0);  // [B,n]
  if (item_i64((counter_ + counts).max()) > o.max_seq_len)
    bad("DecodeSession.append: sequence longer than max_seq_len=" + std::to_string(o.max_seq_len));

  tokens = tokens.masked_fill(valid.logical_not(), Tokenizer::kPad);
  const auto slots = tokens.eq(Tokenizer::kImage) & valid;
  auto x = policy_->embed(tokens, slots, image_embeds);
  x = policy_->add_image_terms(x, tokens, valid, terms_);
  auto [cos, sin] = policy_->rope(positions);
  reserve(len_ + n);
  key_valid_.slice(1, len_, len_ + n).copy_(valid);
  auto bias = attention_bias(key_valid_.slice(1, 0, len_ + n), len_, n);
  // One block: prompt appends in query blocks made rollouts slower
  // (docs/benchmarks.md, "Query-blocked causal attention").
  auto h = policy_->run_layers(x, cos, sin, bias, &k_, &v_, len_);  // [B,n,d]
  len_ += n;

  auto last_idx = (counts - 1).clamp_min(0);                                         // [B]
  auto h_last = h.gather(1, last_idx.view({batch_, 1, 1}).expand({batch_, 1, h.size(2)})).squeeze(1);
  auto logits = policy_->head(h_last);                                               // [B,V]
  last_ = torch::where(counts.gt(0).unsqueeze(1), logits, last_);
  counter_ = counter_ + counts;
  return last_;
}

void DecodeSession::select_rows(const torch::Tensor& index_in) {
  torch::NoGradGuard no_grad;
  if (!index_in.defined() || index_in.dim() != 1) bad("DecodeSession.select_rows: index must be [B']");
  auto index = index_in.to(torch::kInt64);
  const int64_t nb = index.size(0);
  if (nb > 0 && (item_i64(index.min()) < 0 || item_i64(index.max()) >= batch_))
    bad("DecodeSession.select_rows: index out of range [0," + std::to_string(batch_) + ")");
  auto kv = key_valid_.slice(1, 0, len_).index_select(0, index);  // [B',len]
  // Columns that are padding in every remaining row never matter again.
  torch::Tensor cols;
  int64_t keep = len_;
  if (len_ > 0) {
    auto any = nb > 0 ? kv.any(0) : torch::zeros({len_}, torch::kBool);
    keep = item_i64(any.sum());
    if (keep < len_) cols = any.nonzero().squeeze(1);
  }
  for (size_t l = 0; l < k_.size(); ++l) {
    auto k = k_[l].slice(2, 0, len_).index_select(0, index);
    auto v = v_[l].slice(2, 0, len_).index_select(0, index);
    if (cols.defined()) {
      k = k.index_select(2, cols);
      v = v.index_select(2, cols);
    }
    k_[l] = k;
    v_[l] = v;
  }
  key_valid_ = cols.defined() ? kv.index_select(1, cols) : kv;
  counter_ = counter_.index_select(0, index);
  last_ = last_.index_select(0, index);
  terms_ = terms_.select(index);
  batch_ = nb;
  len_ = keep;
  cap_ = keep;  // the next append grows the cache (doubling)
}

// ------------------------------------------------------------------ sampling

torch::Tensor temper_logits(const torch::Tensor& logits, double temperature,
                            double location_temperature) {
  if (!(temperature > 0)) bad("temperature must be > 0, got " + std::to_string(temperature));
  if (!(location_temperature >= 0))
    bad("location temperature must be >= 0 (0 = the temperature), got " +
        std::to_string(location_temperature));
  auto x = logits.to(torch::kFloat32);
  const int64_t V = x.size(-1);
  const int64_t lo = Tokenizer::kFirstLocation;
  const int64_t hi = std::min<int64_t>(V, lo + Tokenizer::kNumLocations);
  if (location_temperature == 0 || location_temperature == temperature || hi <= lo) return x / temperature;
  // Two levels: whether the token is a location token at all keeps its
  // probability at `temperature` (so text positions sample no more
  // coordinates than before); which location token, at location_temperature.
  // Scaling the two kinds' logits apart instead is not shift-invariant: a
  // position whose logits are all negative then favours the less-cooled kind.
  auto logp = torch::log_softmax(x / temperature, -1);
  auto loc_mass = logp.slice(-1, lo, hi).logsumexp(-1, /*keepdim=*/true);
  auto within = torch::log_softmax(x.slice(-1, lo, hi) / location_temperature, -1);
  return torch::cat({logp.slice(-1, 0, lo), loc_mass + within, logp.slice(-1, hi, V)}, -1);
}

int location_floor(const int32_t* tokens, size_t n) {
  constexpr int32_t kOpen = Tokenizer::kFirstPrintable + ('[' - 32);
  constexpr int32_t kComma = Tokenizer::kFirstPrintable + (',' - 32);
  auto loc = [&](size_t i) { return Tokenizer::is_location(tokens[i]); };
  // "<box>[" a "," b "," -> x2 > a; "<box>[" a "," b "," c "," -> y2 > b.
  for (const size_t coords : {size_t{2}, size_t{3}}) {
    const size_t len = 2 + 2 * coords;  // <box> [ then (loc ,) per coordinate
    if (n < len) continue;
    const size_t p = n - len;
    if (tokens[p] != Tokenizer::kBox || tokens[p + 1] != kOpen) continue;
    bool exact = true;
    for (size_t c = 0; c < coords; ++c) exact &= loc(p + 2 + 2 * c) && tokens[p + 3 + 2 * c] == kComma;
    if (exact) return tokens[p + 2 + 2 * (coords - 2)] - Tokenizer::kFirstLocation + 1;
  }
  return -1;
}

torch::Tensor apply_location_floor(const torch::Tensor& scaled, const torch::Tensor& floors) {
  if (!floors.defined()) return scaled;
  if (floors.dim() + 1 != scaled.dim() || floors.sizes() != scaled.sizes().slice(0, floors.dim()))
    bad("apply_location_floor: floors must be the logits' shape less the last dimension");
  const int64_t V = scaled.size(-1);
  auto k = torch::arange(V, torch::kInt64) - Tokenizer::kFirstLocation;  // grid index of <loc_k>
  auto is_loc = k.ge(0).logical_and(k.lt(Tokenizer::kNumLocations));
  auto below = is_loc.logical_and(k.lt(floors.to(torch::kInt64).unsqueeze(-1)));  // [..., V]
  return scaled.masked_fill(below, -std::numeric_limits<float>::infinity());
}

Sampled sample_tokens(const torch::Tensor& logits, const SamplingOptions& opt, torch::Generator gen,
                      const torch::Tensor& floors) {
  torch::NoGradGuard no_grad;
  if (!logits.defined() || logits.dim() != 2) bad("sample_tokens: logits must be [B,V]");
  if (!(opt.temperature > 0)) bad("sample_tokens: temperature must be > 0");
  const int64_t V = logits.size(1);
  auto scaled =
      apply_location_floor(temper_logits(logits, opt.temperature, opt.location_temperature), floors);
  auto logp = torch::log_softmax(scaled, -1);
  auto filtered = scaled;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (opt.top_k > 0 && opt.top_k < V) {
    auto kth = std::get<0>(scaled.topk(opt.top_k, -1)).slice(1, opt.top_k - 1, opt.top_k);  // [B,1]
    filtered = filtered.masked_fill(scaled.lt(kth), neg_inf);
  }
  if (opt.top_p < 1.0) {
    auto [sorted, order] = filtered.sort(-1, /*descending=*/true);
    auto probs = torch::softmax(sorted, -1);
    auto before = probs.cumsum(-1) - probs;  // mass strictly above each token
    auto remove_sorted = before.ge(opt.top_p);
    remove_sorted.select(1, 0).fill_(false);  // always keep the most likely token
    auto remove = torch::zeros_like(remove_sorted).scatter(1, order, remove_sorted);
    filtered = filtered.masked_fill(remove, neg_inf);
  }
  auto probs = torch::softmax(filtered, -1);
  auto tokens = torch::multinomial(probs, 1, /*replacement=*/false, gen);  // [B,1]
  return Sampled{tokens.squeeze(1), logp.gather(1, tokens).squeeze(1)};
}

Sampled greedy_tokens(const torch::Tensor& logits, double temperature, double location_temperature,
                      const torch::Tensor& floors) {
  torch::NoGradGuard no_grad;
  if (!logits.defined() || logits.dim() != 2) bad("greedy_tokens: logits must be [B,V]");
  if (!(temperature > 0)) bad("greedy_tokens: temperature must be > 0");
  auto logp = torch::log_softmax(
      apply_location_floor(temper_logits(logits, temperature, location_temperature), floors), -1);
  auto tokens = apply_location_floor(logits.to(torch::kFloat32), floors).argmax(-1, /*keepdim=*/true);
  return Sampled{tokens.squeeze(1), logp.gather(1, tokens).squeeze(1)};
}

torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets, double temperature,
                             double location_temperature, const torch::Tensor& floors) {
  if (!(temperature > 0)) bad("token_logprobs: temperature must be > 0");
  auto logp = torch::log_softmax(
      apply_location_floor(temper_logits(logits, temperature, location_temperature), floors), -1);
  return logp.gather(-1, targets.to(torch::kInt64).unsqueeze(-1)).squeeze(-1);
}

// ------------------------------------------------------ parameters, checkpoints

int64_t count_parameters(const Policy& policy) {
  int64_t n = 0;
  for (const auto& p : policy->parameters()) n += p.numel();
  return n;
}

std::vector<std::pair<std::string, torch::Tensor>> ordered_parameters(const Policy& policy) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& np : policy->named_parameters()) out.emplace_back(np.key(), np.value());
  return out;
}

Status copy_parameters(const Policy& src, const Policy& dst) {
  auto s = src->named_parameters();
  auto d = dst->named_parameters();
  if (s.size() != d.size())
    return Status::Error("copy_parameters: " + std::to_string(s.size()) + " vs " + std::to_string(d.size()) +
                         " parameters");
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i].key() != d[i].key()) return Status::Error("copy_parameters: " + s[i].key() + " vs " + d[i].key());
    if (s[i].value().sizes() != d[i].value().sizes())
      return Status::Error("copy_parameters: " + s[i].key() + " has a different shape");
  }
  torch::NoGradGuard ng;
  for (size_t i = 0; i < s.size(); ++i) d[i].value().copy_(s[i].value());
  return Status::Ok();
}

Result<std::vector<std::string>> copy_shared_parameters(const Policy& src, const Policy& dst) {
  auto s = src->named_parameters();
  auto d = dst->named_parameters();
  for (const auto& np : s) {
    const auto* t = d.find(np.key());
    if (!t) return Status::Error("copy_shared_parameters: the target has no parameter " + np.key());
    if (t->sizes() != np.value().sizes())
      return Status::Error("copy_shared_parameters: " + np.key() + " has shape " +
                           c10::str(np.value().sizes()) + " in the source, " + c10::str(t->sizes()) +
                           " in the target");
  }
  std::vector<std::string> kept;
  torch::NoGradGuard ng;
  for (auto& np : d) {
    const auto* t = s.find(np.key());
    if (t) {
      np.value().copy_(*t);
    } else {
      kept.push_back(np.key());
    }
  }
  return kept;
}

namespace {

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::map<std::string, std::string> model_metadata(const ModelOptions& o, int64_t vocab) {
  return {{"format", "gr1-policy"},
          {"format_version", "1"},
          {"d_model", std::to_string(o.d_model)},
          {"n_layers", std::to_string(o.n_layers)},
          {"n_heads", std::to_string(o.n_heads)},
          {"ffn_hidden", std::to_string(o.ffn_hidden)},
          {"image_size", std::to_string(o.image_size)},
          {"patch_size", std::to_string(o.patch_size)},
          {"vision_layers", std::to_string(o.vision_layers)},
          {"summary_token", o.summary_token ? "1" : "0"},
          {"conv_stem", o.conv_stem ? "1" : "0"},
          {"stem_grid_convs", std::to_string(o.stem_grid_convs)},
          {"image_context", o.image_context ? "1" : "0"},
          {"answer_image_context", o.answer_image_context ? "1" : "0"},
          {"image_slot_pos", o.image_slot_pos ? "1" : "0"},
          {"image_query", o.image_query ? "1" : "0"},
          {"max_seq_len", std::to_string(o.max_seq_len)},
          {"rope_theta", format_double(o.rope_theta)},
          {"vocab_size", std::to_string(vocab)}};
}

bool same_model(const ModelOptions& a, const ModelOptions& b) {
  return a.d_model == b.d_model && a.n_layers == b.n_layers && a.n_heads == b.n_heads &&
         a.ffn_hidden == b.ffn_hidden && a.image_size == b.image_size && a.patch_size == b.patch_size &&
         a.vision_layers == b.vision_layers && a.summary_token == b.summary_token && a.conv_stem == b.conv_stem &&
         a.stem_grid_convs == b.stem_grid_convs &&
         a.image_context == b.image_context && a.answer_image_context == b.answer_image_context &&
         a.image_slot_pos == b.image_slot_pos &&
         a.image_query == b.image_query && a.max_seq_len == b.max_seq_len && a.rope_theta == b.rope_theta;
}

// Strict integer in [lo, hi] from metadata.
Status meta_int(const std::map<std::string, std::string>& m, const std::string& key, int64_t lo, int64_t hi,
                int64_t* out) {
  auto it = m.find(key);
  if (it == m.end()) return Status::Error("metadata lacks " + key);
  const std::string& s = it->second;
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (...) {
    used = 0;
  }
  if (s.empty() || used != s.size() || v < lo || v > hi)
    return Status::Error("metadata " + key + "='" + s + "' is not an integer in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
  *out = v;
  return Status::Ok();
}

}  // namespace

Status save_policy(const std::string& path, const Policy& policy, const ModelOptions& options) {
  if (!policy) return Status::Error("save_policy: no policy");
  if (!same_model(options, policy->options()))
    return Status::Error("save_policy: options differ from the policy's own model options");
  SafeTensorsFile f;
  f.metadata = model_metadata(options, policy->vocab_size());
  for (const auto& np : policy->named_parameters()) {
    auto t = np.value().detach().to(torch::kFloat32).contiguous();
    SafeTensor st;
    st.name = np.key();
    st.dtype = "F32";
    st.shape = t.sizes().vec();
    st.data.assign(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * sizeof(float));
    f.tensors.push_back(std::move(st));
  }
  return write_safetensors(path, f);
}

Result<LoadedPolicy> load_policy(const std::string& path) {
  using R = Result<LoadedPolicy>;
  auto file = read_safetensors(path);
  if (!file.ok()) return file.status();
  const auto& m = file->metadata;
  auto fmt = m.find("format");
  if (fmt == m.end() || fmt->second != "gr1-policy") return R::Error(path + ": not a gr1-policy checkpoint");
  // Bounds keep a corrupt config from allocating an absurd model.
  ModelOptions o;
  int64_t v[9];
  const struct {
    const char* key;
    int64_t lo, hi;
  } fields[] = {{"d_model", 1, 1 << 14},     {"n_layers", 0, 1024},    {"n_heads", 1, 1024},
                {"ffn_hidden", 1, 1 << 16},  {"image_size", 1, 1 << 13}, {"patch_size", 1, 1 << 13},
                {"vision_layers", 0, 1024},  {"max_seq_len", 1, 1 << 22}, {"vocab_size", 1, 1 << 22}};
  for (int i = 0; i < 9; ++i)
    if (Status s = meta_int(m, fields[i].key, fields[i].lo, fields[i].hi, &v[i]); !s.ok())
      return R::Error(path + ": " + s.message());
  o.d_model = static_cast<int>(v[0]);
  o.n_layers = static_cast<int>(v[1]);
  o.n_heads = static_cast<int>(v[2]);
  o.ffn_hidden = static_cast<int>(v[3]);
  o.image_size = static_cast<int>(v[4]);
  o.patch_size = static_cast<int>(v[5]);
  o.vision_layers = static_cast<int>(v[6]);
  o.max_seq_len = static_cast<int>(v[7]);
  const int64_t vocab = v[8];
  {
    // Absent in checkpoints written before the summary token existed.
    int64_t st = 0;
    if (m.count("summary_token")) {
      if (Status s = meta_int(m, "summary_token", 0, 1, &st); !s.ok()) return R::Error(path + ": " + s.message());
    }
    o.summary_token = st == 1;
    int64_t cs = 0;  // likewise for the conv stem
    if (m.count("conv_stem")) {
      if (Status s = meta_int(m, "conv_stem", 0, 1, &cs); !s.ok()) return R::Error(path + ": " + s.message());
    }
    o.conv_stem = cs == 1;
    int64_t gc = 0;  // likewise for the grid convolutions
    if (m.count("stem_grid_convs")) {
      if (Status s = meta_int(m, "stem_grid_convs", 0, 16, &gc); !s.ok()) return R::Error(path + ": " + s.message());
    }
    o.stem_grid_convs = static_cast<int>(gc);
    int64_t ic = 0;  // likewise for the image context
    if (m.count("image_context")) {
      if (Status s = meta_int(m, "image_context", 0, 1, &ic); !s.ok()) return R::Error(path + ": " + s.message());
    }
    o.image_context = ic == 1;
    int64_t ac = 1;  // absent (checkpoints before answer_image_context): every text token got it
    if (m.count("answer_image_context")) {
      if (Status s = meta_int(m, "answer_image_context", 0, 1, &ac); !s.ok())
        return R::Error(path + ": " + s.message());
    }
    o.answer_image_context = ac == 1;
    if (!o.answer_image_context && !o.image_context)
      return R::Error(path + ": answer_image_context 0 needs image_context 1");
    int64_t sp = 0;  // likewise for the image slot embedding
    if (m.count("image_slot_pos")) {
      if (Status s = meta_int(m, "image_slot_pos", 0, 1, &sp); !s.ok()) return R::Error(path + ": " + s.message());
    }
    o.image_slot_pos = sp == 1;
    int64_t iq = 0;  // likewise for the image query
    if (m.count("image_query")) {
      if (Status s = meta_int(m, "image_query", 0, 1, &iq); !s.ok()) return R::Error(path + ": " + s.message());
    }
    o.image_query = iq == 1;
  }
  {
    auto it = m.find("rope_theta");
    if (it == m.end()) return R::Error(path + ": metadata lacks rope_theta");
    char* end = nullptr;
    o.rope_theta = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end != '\0' || !(o.rope_theta > 0) || !std::isfinite(o.rope_theta))
      return R::Error(path + ": metadata rope_theta='" + it->second + "' is not a positive number");
  }
  // The total size must match the file before anything is allocated.
  uint64_t file_floats = 0;
  for (const auto& t : file->tensors) file_floats += t.data.size() / 4;

  LoadedPolicy out;
  try {
    check_options(o, vocab);
    // Cheap upper bound on the model size implied by the config.
    const double approx = double(o.d_model) * (double(vocab) * 2 + 3 * double(o.ffn_hidden) * (o.n_layers + o.vision_layers) +
                                               4.0 * o.d_model * (o.n_layers + o.vision_layers + 1) +
                                               double(o.image_tokens()) + 3.0 * o.patch_size * o.patch_size);
    if (approx > 4.0 * double(file_floats) + 1e6)
      return R::Error(path + ": config describes a model far larger than the file");
    torch::NoGradGuard ng;
    out.policy = Policy(o, vocab);
    std::map<std::string, const SafeTensor*> by_name;
    for (const auto& t : file->tensors) by_name[t.name] = &t;
    auto params = out.policy->named_parameters();
    for (const auto& np : params) {
      auto it = by_name.find(np.key());
      if (it == by_name.end()) return R::Error(path + ": parameter " + np.key() + " missing");
      const SafeTensor& t = *it->second;
      if (t.dtype != "F32") return R::Error(path + ": " + t.name + " has dtype " + t.dtype + ", expected F32");
      if (t.shape != np.value().sizes().vec())
        return R::Error(path + ": " + t.name + " has shape " + c10::str(c10::IntArrayRef(t.shape)) +
                        ", the model has " + c10::str(np.value().sizes()));
    }
    if (by_name.size() != params.size()) {
      for (const auto& t : file->tensors)
        if (!params.contains(t.name)) return R::Error(path + ": unexpected tensor " + t.name);
    }
    for (auto& np : params) {
      const SafeTensor& t = *by_name[np.key()];
      auto dst = np.value();
      std::memcpy(dst.data_ptr(), t.data.data(), t.data.size());
    }
  } catch (const std::exception& e) {
    return R::Error(path + ": cannot build the model: " + e.what());
  }
  out.options = o;
  out.vocab_size = vocab;
  return out;
}

}  // namespace gr1
