// The policy: a small vision-language model, its batched KV-cache decoder,
// sampling, and checkpoints. Includes LibTorch: only for actor/learner code.
//
//   pixels [N,3,S,S] -> encode_images -> [N, image_tokens, d]
//   tokens (kImage slots filled with image rows) -> causal decoder -> logits
//
// Vision encoder (parameter names start with "vision."): a CNN stem
// (conv_stem: 3x3 conv, then stride-2 3x3 convs down to the patch grid) or a
// linear patch embed (kernel = stride = patch_size), learned per-patch position embedding,
// `vision_layers` bidirectional pre-RMSNorm blocks (attention, SwiGLU), final
// RMSNorm, [summary_token: the max over the patches appended as one more
// token], projector Linear-GELU-Linear to d_model. Output rows: the
// patch_tokens() patches in row-major order, then the summary.
// Decoder: token embedding (+ image_slot_pos: a learned embedding per image
// slot; + image_query: on image slots, a projection of the mean text
// embedding of their user turn; + image_context: a projection of the latest image's summary row on
// every later text token), n_layers pre-RMSNorm blocks (multi-head attention
// with RoPE at explicit positions, SwiGLU), final RMSNorm, untied LM head.
//
// Two paths compute the same function and agree to float rounding: forward()
// over whole (possibly right-padded) sequences, used by the learner, and
// DecodeSession, used by the actor to sample chunk by chunk.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/options.h"
#include "common/status.h"

namespace gr1 {

namespace detail {
class VisionEncoderImpl;
class BlockImpl;
class RMSNormImpl;
struct TreeAttention;
}  // namespace detail

class PolicyImpl : public torch::nn::Module {
 public:
  // Throws std::invalid_argument on inconsistent options (d_model % n_heads,
  // odd head size, image_size % patch_size, non-positive sizes).
  // Initialisation draws from the global torch generator: deterministic
  // given torch::manual_seed.
  PolicyImpl(const ModelOptions& options, int64_t vocab_size);

  // pixels [N,3,S,S] float in [0,1] -> [N, image_tokens, d_model].
  torch::Tensor encode_images(const torch::Tensor& pixels);

  // tokens [B,T] int64; image_embeds [M,d] (undefined or empty when M = 0)
  // fills the kImage tokens at key_mask==true entries in row-major order over
  // [B,T] (M must equal their number, else std::invalid_argument);
  // positions [B,T] int64 (RoPE; valid entries must lie in [0, max_seq_len));
  // key_mask [B,T] bool, false = padding, never attended by any other query.
  // Returns logits [B,T,V]; entries at padding are meaningless. The <image>
  // logit is always -1e9: a slot placeholder is never sampled.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& image_embeds,
                        const torch::Tensor& positions, const torch::Tensor& key_mask);

  // forward() in two halves: the last block's output [B,T,d] (before the
  // final norm), and the logits of such hidden states. Pretraining puts
  // auxiliary heads on hidden_states(); forward() == logits(hidden_states()).
  // With `layer_outputs`, it also receives every block's output, in order
  // (the last one is the return value).
  torch::Tensor hidden_states(const torch::Tensor& tokens, const torch::Tensor& image_embeds,
                              const torch::Tensor& positions, const torch::Tensor& key_mask,
                              std::vector<torch::Tensor>* layer_outputs = nullptr);
  torch::Tensor logits(const torch::Tensor& hidden);

  // Running state of the image terms across chunks of one batch of rows
  // (DecodeSession keeps one; a whole-sequence forward starts from zeros).
  struct ImageTermsState {
    torch::Tensor slots;   // [B] int64: image slots in earlier chunks
    torch::Tensor ctx;     // [B,d]: summary row in effect (zeros: none yet)
    torch::Tensor qsum;    // [B,d]: sum of the current user turn's text embeddings
    torch::Tensor qcount;  // [B]: their number
    torch::Tensor in_answer;  // [B] bool: the last token so far lies in an answer span
    static ImageTermsState zeros(int64_t B, int64_t d);
    ImageTermsState select(const torch::Tensor& index) const;
  };
  // The image terms of the decoder input, on x [B,T,d] (token embeddings
  // with image rows in their slots); `tokens`/`valid` [B,T] give the slots
  // (<image> at valid entries). Slot k of a block (k = the row's slot count
  // minus one, mod image_tokens()) gets image_slot_pos[k]
  // (model.image_slot_pos) and image_query(mean embedding of the text of its
  // user turn so far: the valid non-slot tokens since the latest <|user|>)
  // (model.image_query: image tokens that know the question); every
  // non-slot token gets image_ctx(summary row of the latest complete block
  // before it) (model.image_context; a block ends at the slot that makes the
  // row's slot count a multiple of image_tokens()), except, with
  // model.answer_image_context false, the tokens of an answer span: from a
  // <answer> token up to, not including, the next </answer> (an <answer>
  // with no </answer> after it opens a span to the end). `state` holds what
  // earlier chunks left and is updated to the state after this chunk, so a
  // sequence appended in pieces gets exactly what one forward() gives.
  torch::Tensor add_image_terms(const torch::Tensor& x, const torch::Tensor& tokens,
                                const torch::Tensor& valid, ImageTermsState& state);
  bool has_image_terms() const {
    return opt_.image_context || opt_.image_slot_pos || opt_.image_query;
  }

  // The last block's output over a PACKED sequence (learner/packing.h): each
  // row holds the prefix tree of several trajectories. tokens, positions
  // [B,T]; valid [B,T] bool (false = padding); allowed [B,T,T] bool (query
  // i may attend key j: its ancestors and itself); slot_index [B,T] int64
  // (an image slot's index within its block, else -1); context_node [B,T]
  // int64 (the summary slot of the latest image block on the node's path,
  // else -1; the caller gives -1 for answer-span nodes when
  // model.answer_image_context is false: PackedGroup::in_answer); image_embeds [M,d] for the slots in row-major order. The
  // image terms follow the same rules as add_image_terms along each path.
  // Throws std::invalid_argument with model.image_query (its per-turn text
  // mean is not supported packed) or on inconsistent shapes.
  //
  // With `parent` ([B,T] int64: each real node's parent node, the first
  // node's own index or -1; padding follows the real nodes) attention is
  // block-sparse instead: the tree is cut into segments (runs of nodes that
  // are each their predecessor's only child) and every segment attends to
  // its ancestor segments and causally to itself, so only the allowed
  // scores are computed (to float rounding the dense result; `allowed` is
  // then not used and may be undefined). Padding rows' outputs are undefined.
  torch::Tensor hidden_states_packed(const torch::Tensor& tokens, const torch::Tensor& image_embeds,
                                     const torch::Tensor& positions, const torch::Tensor& valid,
                                     const torch::Tensor& allowed, const torch::Tensor& slot_index,
                                     const torch::Tensor& context_node,
                                     const torch::Tensor& parent = {});

  const ModelOptions& options() const { return opt_; }
  int64_t vocab_size() const { return vocab_; }

  // Causal attention over a whole sequence (hidden_states, forward; not a
  // DecodeSession append nor the block-sparse packed forward, where it was
  // measured slower) runs in query blocks of this many rows: block [c0, c1)
  // scores only the keys [0, c1), so the masked half above the diagonal is
  // mostly never computed. The result is
  // the full-matrix one to float rounding (masked keys weigh exactly 0
  // either way). 0 = one block (the full [Tq, Tk] scores). Not a model
  // option: it changes no weights and no checkpoint.
  void set_attention_query_chunk(int64_t rows);
  int64_t attention_query_chunk() const { return query_chunk_; }
  static int64_t default_attention_query_chunk();  // 128 (docs/benchmarks.md)

 private:
  friend class DecodeSession;

  // Token embeddings with image rows scattered into `slots` ([B,T] bool).
  torch::Tensor embed(const torch::Tensor& tokens, const torch::Tensor& slots,
                      const torch::Tensor& image_embeds);
  // RoPE cos/sin [B,1,T,head_dim/2] for positions [B,T] (clamped into the table).
  std::pair<torch::Tensor, torch::Tensor> rope(const torch::Tensor& positions) const;
  // The decoder blocks. bias [B,1,Tq,Tk] additive mask (0 or -inf). With a
  // cache, each layer writes its keys/values of x at columns [past, past+Tq)
  // of k_cache[l]/v_cache[l] ([B,H,cap,hd]) and attends over [0, past+Tq).
  // `causal`: the bias allows query i no key after past + i, so attention
  // may run in query blocks (attention_query_chunk()).
  torch::Tensor run_layers(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                           const torch::Tensor& bias, std::vector<torch::Tensor>* k_cache,
                           std::vector<torch::Tensor>* v_cache, int64_t past,
                           std::vector<torch::Tensor>* layer_outputs = nullptr,
                           const detail::TreeAttention* tree = nullptr, bool causal = false);
  // Final norm + LM head.
  torch::Tensor head(const torch::Tensor& h);

  ModelOptions opt_;
  int64_t vocab_;
  int64_t query_chunk_ = default_attention_query_chunk();
  torch::nn::Embedding tok_embed_{nullptr};
  std::shared_ptr<detail::VisionEncoderImpl> vision_;
  torch::nn::ModuleList layers_{nullptr};
  std::vector<std::shared_ptr<detail::BlockImpl>> blocks_;  // the same modules, typed
  std::shared_ptr<detail::RMSNormImpl> norm_;
  torch::nn::Linear lm_head_{nullptr};
  torch::nn::Linear image_ctx_{nullptr};  // model.image_context only
  torch::Tensor image_slot_pos_;          // [image_tokens, d], model.image_slot_pos only
  torch::nn::Linear image_query_{nullptr};  // model.image_query only
  torch::Tensor rope_cos_, rope_sin_;  // [max_seq_len, head_dim/2]; constants, not parameters
};
TORCH_MODULE(Policy);

// Batched incremental decoding with a KV cache.
//
// The cache is column-aligned: every append() adds the same number of
// columns to every row; entries marked invalid are padding, masked from
// every later query forever. Each row keeps its own position counter (its
// number of valid tokens), so a row's tokens get positions 0,1,2,... exactly
// as in the compacted, unpadded sequence the learner recomputes.
// Runs under torch::NoGradGuard. One thread at a time; the policy is shared,
// not copied (do not change its weights while a session is in use).
class DecodeSession {
 public:
  DecodeSession(Policy policy, int64_t batch);

  // Appends one chunk per row. tokens [B,n] int64; valid [B,n] bool whose
  // true entries are a prefix of each row (a row may have none);
  // image_embeds [M,d] for the kImage tokens among valid entries, row-major
  // (undefined/empty when M = 0). Valid token j of a row gets position
  // counter + j. Returns logits [B,V] at each row's last valid token of this
  // chunk; rows without valid entries return their previous last logits
  // (zeros before the first valid token). Throws std::invalid_argument on bad
  // shapes, a non-prefix valid mask, an image count mismatch or a position
  // beyond max_seq_len.
  torch::Tensor append(const torch::Tensor& tokens, const torch::Tensor& valid,
                       const torch::Tensor& image_embeds);

  // New row i = old row index[i] (fork, reorder, shrink): cache, masks,
  // counters and last logits. Cache columns that became padding in every row
  // are dropped.
  void select_rows(const torch::Tensor& index);

  int64_t batch() const { return batch_; }
  torch::Tensor positions() const { return counter_.clone(); }  // [B] valid tokens per row
  int64_t columns() const { return len_; }                      // cache columns in use
  torch::Tensor last_logits() const { return last_; }            // [B,V]

 private:
  void reserve(int64_t columns);

  Policy policy_;
  int64_t batch_;
  int64_t len_ = 0;  // columns in use
  int64_t cap_ = 0;  // columns allocated
  std::vector<torch::Tensor> k_, v_;  // per layer [B,H,cap,hd]
  torch::Tensor key_valid_;           // [B,cap] bool
  torch::Tensor counter_;             // [B] int64
  torch::Tensor last_;                // [B,V] float32
  PolicyImpl::ImageTermsState terms_;  // image terms carried across appends
};

// ---- sampling ----

struct SamplingOptions {
  double temperature = 1.0;  // > 0
  int top_k = 0;             // 0 = off
  double top_p = 1.0;        // 1 = off
  // The temperature of the location tokens (<loc_k>, a box's coordinates)
  // alone; 0 = `temperature`. See temper_logits().
  double location_temperature = 0.0;
};

// The tempered logits every sampler and log-prob below uses; their softmax is
// the sampled distribution, so a token's log-prob is the same wherever it is
// computed (actor, learner, reference). [.., V] -> float32 [.., V].
// location_temperature 0 (or equal to temperature): logits / temperature.
// Otherwise log-probs of two levels: the total probability of the location
// tokens (<loc_k>) is softmax(logits / temperature)'s, and it is shared among
// them by softmax(their logits / location_temperature). Every other token
// keeps its softmax(logits / temperature) probability.
torch::Tensor temper_logits(const torch::Tensor& logits, double temperature,
                            double location_temperature = 0.0);

// ---- box order (rollout.box_order) ----
// A box written as location tokens, "<box>[" x1 "," y1 "," x2 "," y2 "]",
// is empty unless x2 > x1 and y2 > y1: no crop can be cut from it. With
// rollout.box_order, a box's third and fourth coordinates are drawn only
// from the location tokens that keep that order, in the actors' sampling and
// greedy decoding and in every log-prob the learner computes (the masked
// tokens get probability 0; the rest are renormalised), so both sides score
// the same distribution. location_floor() says where that applies: given the
// `n` tokens so far, the smallest grid index k the next <loc_k> may take
// when they end exactly in "<box>[" loc "," loc "," (x2: x1 + 1) or
// "<box>[" loc "," loc "," loc "," (y2: y1 + 1); -1 elsewhere. Other
// tokens are never masked, so a row whose floor is past the grid (x1 = 32)
// can still write a non-location token.
int location_floor(const int32_t* tokens, size_t n);

// `scaled` ([..., V]) with the location tokens below each row's floor
// (`floors`: int64 [...], -1 = none) set to -inf.
torch::Tensor apply_location_floor(const torch::Tensor& scaled, const torch::Tensor& floors);

struct Sampled {
  torch::Tensor tokens;    // [B] int64
  torch::Tensor logprobs;  // [B] float32
};

// Samples one token per row from softmax(temper_logits(logits, ...)) restricted to
// the top-k tokens and then to the smallest top-p nucleus, using `gen`.
// The returned log-prob is that log_softmax's [token] over the FULL
// distribution (before truncation): what token_logprobs() recomputes.
// `floors` ([B] int64, optional): apply_location_floor() before all of it.
Sampled sample_tokens(const torch::Tensor& logits, const SamplingOptions& options,
                      torch::Generator gen, const torch::Tensor& floors = {});

// Argmax of the raw logits per row (the temperatures never change which
// token is greedy; `floors` masks as in sample_tokens); log-prob computed
// as in sample_tokens.
Sampled greedy_tokens(const torch::Tensor& logits, double temperature = 1.0,
                      double location_temperature = 0.0, const torch::Tensor& floors = {});

// log_softmax(temper_logits(logits, ...)) gathered at targets: [B,T,V],
// [B,T] -> [B,T]; with `floors` ([B,T] int64), of the floored distribution.
// Differentiable.
torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets,
                             double temperature, double location_temperature = 0.0,
                             const torch::Tensor& floors = {});

// ---- parameters and checkpoints ----

int64_t count_parameters(const Policy& policy);

// Parameters in named_parameters() order (the order of weight sync and
// checkpoints).
std::vector<std::pair<std::string, torch::Tensor>> ordered_parameters(const Policy& policy);

// Copies every parameter of `src` into `dst` (e.g. the frozen reference).
// Names and shapes must match, else nothing is changed and an error names
// the first difference.
Status copy_parameters(const Policy& src, const Policy& dst);

// Copies every parameter of `src` whose name `dst` also has (shapes must
// match, else nothing is changed and the error names it). Parameters of
// `dst` that `src` lacks keep their values; their names are returned (e.g.
// starting pretraining from a checkpoint of a smaller architecture).
// Parameters of `src` that `dst` lacks are an error.
Result<std::vector<std::string>> copy_shared_parameters(const Policy& src, const Policy& dst);

struct LoadedPolicy {
  Policy policy{nullptr};
  ModelOptions options;
  int64_t vocab_size = 0;
};

// Writes all parameters as F32 safetensors with the model config (every
// ModelOptions field and vocab_size) in __metadata__. `options` must be the
// policy's own options.
Status save_policy(const std::string& path, const Policy& policy, const ModelOptions& options);

// Reads a checkpoint written by save_policy: validates the file, rebuilds
// the model from the stored config and requires exactly its parameter names,
// shapes and dtype F32. Never throws.
Result<LoadedPolicy> load_policy(const std::string& path);

}  // namespace gr1
