#include "common/config.h"

#include "common/task.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace gr1 {
namespace {

// One configurable field: how to set it from a YAML scalar and print it.
struct Field {
  std::string doc;
  std::function<Status(Config&, const YAML::Node&)> set;
  std::function<void(const Config&, YAML::Emitter&)> emit;
};

template <typename T>
Status read_scalar(const YAML::Node& n, T* out, const std::string& key) {
  if (!n.IsScalar()) return Status::Error(key + ": expected a scalar value");
  try {
    *out = n.as<T>();
  } catch (const YAML::Exception&) {
    return Status::Error(key + ": cannot parse '" + n.Scalar() + "' as the expected type");
  }
  return Status::Ok();
}

// Binds a member reachable through `get` (non-const) for the given key.
template <typename T>
Field bind(const std::string& key, std::function<T&(Config&)> get, std::string doc) {
  Field f;
  f.doc = std::move(doc);
  f.set = [key, get](Config& c, const YAML::Node& n) { return read_scalar<T>(n, &get(c), key); };
  f.emit = [get](const Config& c, YAML::Emitter& e) {
    const T& v = get(const_cast<Config&>(c));
    if constexpr (std::is_same_v<T, bool>) {
      e << (v ? "true" : "false");
    } else {
      e << v;
    }
  };
  return f;
}

#define GR1_FIELD(sec, name, type, doc)                                                        \
  {                                                                                            \
    #sec "." #name, bind<type>(#sec "." #name, [](Config& c) -> type& { return c.sec.name; }, \
                               doc)                                                            \
  }

using FieldTable = std::vector<std::pair<std::string, Field>>;

const FieldTable& fields() {
  static const FieldTable table = {
      GR1_FIELD(run, run_dir, std::string, "directory for metrics.jsonl, config.yaml, logs"),
      GR1_FIELD(run, seed, uint64_t, "model init and sampling seed"),
      GR1_FIELD(run, name, std::string, "run name"),

      GR1_FIELD(model, d_model, int, "hidden size"),
      GR1_FIELD(model, n_layers, int, "decoder blocks"),
      GR1_FIELD(model, n_heads, int, "attention heads"),
      GR1_FIELD(model, ffn_hidden, int, "SwiGLU inner size"),
      GR1_FIELD(model, image_size, int, "shown image side in pixels"),
      GR1_FIELD(model, patch_size, int, "vision patch side in pixels"),
      GR1_FIELD(model, vision_layers, int, "vision transformer layers"),
      GR1_FIELD(model, summary_token, bool, "append a max-pooled summary token to each image's tokens"),
      GR1_FIELD(model, conv_stem, bool, "CNN vision front end (else one linear patch embedding)"),
      GR1_FIELD(model, stem_grid_convs, int, "conv_stem: residual 3x3 convs at the patch grid after the stem"),
      GR1_FIELD(model, image_context, bool, "add the latest image's projected summary to every later text token (needs summary_token)"),
      GR1_FIELD(model, answer_image_context, bool, "image_context: false = answer spans (<answer> up to </answer>) get no image context, so the answer takes what its thought read"),
      GR1_FIELD(model, image_query, bool, "image slots get a projection of their user turn's mean text embedding"),
      GR1_FIELD(model, image_slot_pos, bool, "learned per-slot (grid cell) embedding added to image rows at the decoder input"),
      GR1_FIELD(model, max_seq_len, int, "longest trajectory in tokens"),
      GR1_FIELD(model, rope_theta, double, "RoPE base"),

      GR1_FIELD(task, dataset, std::string, "dataset name prefix of generated records"),
      GR1_FIELD(task, families, std::string, "question families: text,attribute,spatial,counting"),
      GR1_FIELD(task, mc_fraction, double, "share of multiple-choice questions in [0, 1]"),
      GR1_FIELD(task, split, std::string, "train | test"),
      GR1_FIELD(task, image_width, int, "original image width in pixels"),
      GR1_FIELD(task, image_height, int, "original image height in pixels"),
      GR1_FIELD(task, seed, uint64_t, "task seed"),
      GR1_FIELD(task, min_glyph_px, int, "smallest evidence detail in original pixels"),
      GR1_FIELD(task, max_glyph_px, int, "largest evidence detail in original pixels"),
      GR1_FIELD(task, distractors, int, "distractor objects per scene"),
      GR1_FIELD(task, near_distractors, double, "share of distractors placed touching the subject"),
      GR1_FIELD(task, train_questions, int64_t, "train split size: train question i is i % N (0 = every index a new question)"),

      GR1_FIELD(rollout, mode, std::string, "grounded | direct (one answer turn, no crops)"),
      GR1_FIELD(rollout, g1, int, "grounding roots per question"),
      GR1_FIELD(rollout, g2, int, "continuations per root"),
      GR1_FIELD(rollout, max_turns, int, "assistant turns per trajectory"),
      GR1_FIELD(rollout, max_new_tokens, int, "tokens per assistant turn"),
      GR1_FIELD(rollout, temperature, double, "sampling temperature"),
      GR1_FIELD(rollout, top_k, int, "top-k (0 = off)"),
      GR1_FIELD(rollout, top_p, double, "top-p (1 = off)"),
      GR1_FIELD(rollout, location_temperature, double,
                "sampling temperature of the location tokens (a box's coordinates) alone; 0 = rollout.temperature"),
      GR1_FIELD(rollout, box_order, bool,
                "a box's x2 and y2 drawn only from the location tokens past x1 and y1 (no empty boxes), in the actors' decoding and the learner's log-probs alike"),
      GR1_FIELD(rollout, min_crop_px, int, "minimum crop side in original pixels"),
      GR1_FIELD(rollout, max_aspect, double, "boxes with this aspect ratio or more are rejected"),

      GR1_FIELD(bus, control_endpoint, std::string, "learner ROUTER for control"),
      GR1_FIELD(bus, trajectory_endpoint, std::string, "learner PULL for trajectory groups"),
      GR1_FIELD(bus, weights_endpoint, std::string, "learner ROUTER serving weights"),
      GR1_FIELD(bus, heartbeat_interval_ms, int, "heartbeat period"),
      GR1_FIELD(bus, peer_timeout_ms, int, "silence before a peer is reported missing"),
      GR1_FIELD(bus, send_timeout_ms, int, "timeout of every blocking send/recv"),
      GR1_FIELD(bus, max_message_bytes, int64_t, "largest accepted message"),
      GR1_FIELD(bus, bucket_bytes, int, "weight broadcast bucket size"),

      GR1_FIELD(pretrain, steps, int, "supervised pretraining steps"),
      GR1_FIELD(pretrain, batch, int, "sequences per pretraining step"),
      GR1_FIELD(pretrain, lr, double, "pretraining learning rate"),
      GR1_FIELD(pretrain, lr_final_frac, double, "final pretraining lr as a fraction of lr"),
      GR1_FIELD(pretrain, warmup_steps, int, "linear warm-up steps"),
      GR1_FIELD(pretrain, weight_decay, double, "pretraining AdamW weight decay"),
      GR1_FIELD(pretrain, grad_clip, double, "pretraining max gradient norm"),
      GR1_FIELD(pretrain, position_jitter, int, "random position offset 0..N per sequence"),
      GR1_FIELD(pretrain, skills, std::string, "skill mix name:weight,... (locate, zoom_read, refine, answer, direct, zoom_read_mc, zoom_read_rel, answer_lookup, zoom_read_chain, locate_rel)"),
      GR1_FIELD(pretrain, phase1_steps, int, "the first N decoder steps (after phase 0) draw from phase1_skills"),
      GR1_FIELD(pretrain, phase1_skills, std::string, "skill mix of the first phase1_steps steps"),
      GR1_FIELD(pretrain, phase2_steps, int, "the N decoder steps right after phase 1 draw from phase2_skills"),
      GR1_FIELD(pretrain, phase2_skills, std::string, "skill mix of the phase2_steps steps (e.g. locate_rel:2,locate:1)"),
      GR1_FIELD(pretrain, phase0_steps, int, "the first N decoder steps (before phase 1) draw from phase0_skills"),
      GR1_FIELD(pretrain, phase0_skills, std::string, "skill mix of the phase0_steps steps (e.g. answer_lookup:1, text only)"),
      GR1_FIELD(pretrain, reset_optimizer_after_phase0, bool, "drop the AdamW state at the first step after phase 0 (needs pretrain.phase0_steps > 0)"),
      GR1_FIELD(pretrain, final_steps, int, "the last N decoder steps draw from final_skills with their own lr schedule"),
      GR1_FIELD(pretrain, final_skills, std::string, "skill mix of the final_steps steps (empty: pretrain.skills)"),
      GR1_FIELD(pretrain, final_lr, double, "peak lr of the final_steps steps (warm-up, then decay to it x lr_final_frac)"),
      GR1_FIELD(pretrain, final_warmup_steps, int, "linear warm-up steps of the final phase"),
      GR1_FIELD(pretrain, log_every, int, "steps between progress lines"),
      GR1_FIELD(pretrain, report_items, int, "held-out items per skill in the report"),
      GR1_FIELD(pretrain, locate_curve_every, int, "decoder stage: a held-out locate report every N steps and at each phase's end, in the report's locate_curve (0 = none)"),
      GR1_FIELD(pretrain, phase_checkpoints, bool, "decoder stage: write the weights at the end of phase 0, phase 1, phase 2 and the mix beside the checkpoint (<out>.phase0/.phase1/.phase2/.mix.safetensors)"),
      GR1_FIELD(pretrain, threads, int, "LibTorch threads per process"),
      GR1_FIELD(pretrain, processes, int, "data-parallel pretraining processes (gradients summed with c10d/Gloo; 1 = one process)"),
      GR1_FIELD(pretrain, objectness_weight, double, "weight of the per-patch named-object loss (0 = off)"),
      GR1_FIELD(pretrain, init_vision_only, bool, "take only the encoder (vision.*) from learner.init_checkpoint"),
      GR1_FIELD(pretrain, wording, std::string, "question wording of the pretraining skills: basic or varied"),
      GR1_FIELD(pretrain, objectness_layer, int, "decoder block (1..model.n_layers) whose output the objectness head reads (0 = the last)"),
      GR1_FIELD(pretrain, objectness_hard_negative_share, double, "share of that loss's negative weight on the other shapes' patches (0 = all negatives alike)"),
      GR1_FIELD(pretrain, vision_steps, int, "vision-encoder pretraining steps before the decoder stage (0 = none)"),
      GR1_FIELD(pretrain, vision_batch, int, "images per vision pretraining step"),
      GR1_FIELD(pretrain, vision_box_weight, double, "weight of the vision stage's per-patch box loss"),
      GR1_FIELD(pretrain, vision_crop_fraction, double, "share of a vision step's images that are object crops"),
      GR1_FIELD(pretrain, tight_crop_share, double, "share of object crops (vision stage, decoder zoom-read skills) cut between the detail's box and the shape's (the taught box stays the shape's unless tight_box_text)"),
      GR1_FIELD(pretrain, tight_box_text, bool, "the read skills' grounding turn writes the tight crop's box (drawn for tight_crop_share of them) instead of the shape's; locate keeps the shape's"),
      GR1_FIELD(pretrain, locate_same_shape_share, double, "share of the decoder stage's locate examples whose scene's shapes are all the named one's kind (only the colour word tells them apart)"),
      GR1_FIELD(pretrain, crop_jitter_share, double, "share of the zoom-read skills' read crops whose edges move by up to crop_jitter_cells grid cells each (the detail kept inside; the taught box is unchanged)"),
      GR1_FIELD(pretrain, crop_jitter_cells, int, "largest move of a jittered read crop's edge, in location-grid cells"),
      GR1_FIELD(pretrain, crop_jitter_text, bool, "where a read crop is jittered, the read skill's grounding turn writes the jittered crop's box (locate keeps the shape's)"),
      GR1_FIELD(pretrain, crop_jitter_final_only, bool, "jittered read crops (and crop_jitter_text) only in the final phase's steps"),
      GR1_FIELD(pretrain, encoder_lr_scale, double, "decoder stage: the vision encoder's lr as a fraction of pretrain.lr"),
      GR1_FIELD(pretrain, freeze_vision, bool, "freeze the vision encoder in the decoder stage"),
      GR1_FIELD(pretrain, vision_lr, double, "vision pretraining learning rate"),

      GR1_FIELD(learner, steps, int, "optimizer steps"),
      GR1_FIELD(learner, groups_per_step, int, "question groups per step"),
      GR1_FIELD(learner, lr, double, "AdamW learning rate"),
      GR1_FIELD(learner, lr_final_frac, double, "final lr as a fraction of lr (linear decay)"),
      GR1_FIELD(learner, weight_decay, double, "AdamW weight decay"),
      GR1_FIELD(learner, adam_beta1, double, "AdamW beta1"),
      GR1_FIELD(learner, adam_beta2, double, "AdamW beta2"),
      GR1_FIELD(learner, adam_eps, double, "AdamW epsilon"),
      GR1_FIELD(learner, grad_clip, double, "max global gradient norm"),
      GR1_FIELD(learner, beta_kl, double, "k3 KL coefficient"),
      GR1_FIELD(learner, format_weight, double, "advantages from accuracy + format_weight * format (1 = the paper; other values are ablations)"),
      GR1_FIELD(learner, clip_eps, double, "PPO ratio clip epsilon"),
      GR1_FIELD(learner, kl_clamp, double, "clamp of logp_ref - logp"),
      GR1_FIELD(learner, adv_eps, double, "advantage std epsilon"),
      GR1_FIELD(learner, advantage, std::string, "advantage estimator: grpo | srpo"),
      GR1_FIELD(learner, srpo_bins, int, "SRPO scale bins (log-spaced)"),
      GR1_FIELD(learner, srpo_min_scale, double, "SRPO smallest scale anchor (fraction of image area)"),
      GR1_FIELD(learner, srpo_lambda, double, "SRPO inter-bin weight"),
      GR1_FIELD(learner, max_staleness, int, "max versions a group may lag"),
      GR1_FIELD(learner, max_inflight_groups, int, "per-actor granted + unconsumed groups"),
      GR1_FIELD(learner, reproducible, bool,
                "step s trains on prompts (s-1)*G..s*G-1, each rolled out with the weights after step s-2 "
                "and a seed of (run.seed, prompt, version): the same policy with any number of actors"),
      GR1_FIELD(learner, freeze_vision, bool, "freeze the vision encoder"),
      GR1_FIELD(learner, threads, int, "LibTorch threads in the learner"),
      GR1_FIELD(learner, micro_batch, int, "trajectories per forward/backward chunk"),
      GR1_FIELD(learner, packed_forward, bool, "one forward per group over its prefix tree (shared prefixes once)"),
      GR1_FIELD(learner, init_checkpoint, std::string, "safetensors checkpoint to start from"),
      GR1_FIELD(learner, checkpoint_every, int,
                "also save checkpoints/step_<N>.safetensors every this many steps (0 = final only)"),

      GR1_FIELD(actor, threads, int, "LibTorch threads per actor"),
      GR1_FIELD(actor, max_groups, int, "stop after this many groups (0 = until shutdown)"),
  };
  return table;
}

const Field* find_field(const std::string& key) {
  for (const auto& [k, f] : fields())
    if (k == key) return &f;
  return nullptr;
}

std::string join_sections() {
  std::string s;
  std::map<std::string, int> seen;
  for (const auto& [k, f] : fields()) {
    auto sec = k.substr(0, k.find('.'));
    if (seen[sec]++ == 0) s += (s.empty() ? "" : ", ") + sec;
  }
  return s;
}

Status apply_node(Config& cfg, const YAML::Node& root) {
  if (!root || root.IsNull()) return Status::Ok();
  if (!root.IsMap()) return Status::Error("config: top level must be a mapping of sections");
  for (const auto& sec : root) {
    const std::string sname = sec.first.as<std::string>();
    if (!sec.second.IsMap()) {
      if (find_field(sname + ".") == nullptr && !sec.second.IsNull())
        return Status::Error(sname + ": unknown section or not a mapping (sections: " +
                             join_sections() + ")");
      continue;
    }
    for (const auto& kv : sec.second) {
      const std::string key = sname + "." + kv.first.as<std::string>();
      const Field* f = find_field(key);
      if (!f) return Status::Error(key + ": unknown key");
      if (Status s = f->set(cfg, kv.second); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

bool is_endpoint(const std::string& e) {
  return e.rfind("tcp://", 0) == 0 || e.rfind("ipc://", 0) == 0 || e.rfind("inproc://", 0) == 0;
}

}  // namespace

Status validate_config(const Config& c) {
  auto err = [](const std::string& key, const std::string& what) {
    return Status::Error(key + ": " + what);
  };
  const auto& m = c.model;
  if (m.d_model <= 0) return err("model.d_model", "must be > 0");
  if (m.n_heads <= 0 || m.d_model % m.n_heads != 0)
    return err("model.n_heads", "must be > 0 and divide model.d_model");
  if ((m.d_model / m.n_heads) % 2 != 0) return err("model.n_heads", "head size must be even (RoPE)");
  if (m.n_layers <= 0) return err("model.n_layers", "must be > 0");
  if (m.ffn_hidden <= 0) return err("model.ffn_hidden", "must be > 0");
  if (m.patch_size <= 0) return err("model.patch_size", "must be > 0");
  if (m.image_size <= 0 || m.image_size % m.patch_size != 0)
    return err("model.image_size", "must be > 0 and a multiple of model.patch_size");
  if (m.vision_layers < 0) return err("model.vision_layers", "must be >= 0");
  if (m.stem_grid_convs < 0 || m.stem_grid_convs > 16)
    return err("model.stem_grid_convs", "must be in [0, 16]");
  if (m.stem_grid_convs > 0 && !m.conv_stem)
    return err("model.stem_grid_convs", "needs model.conv_stem: true");
  if (m.image_context && !m.summary_token)
    return err("model.image_context", "needs model.summary_token: true (the context is the summary row)");
  if (!m.answer_image_context && !m.image_context)
    return err("model.answer_image_context", "false needs model.image_context: true (there is no image context to withhold)");
  if (m.conv_stem && (m.patch_size < 1 || (m.patch_size & (m.patch_size - 1)) != 0))
    return err("model.patch_size", "must be a power of 2 with model.conv_stem");
  if (m.max_seq_len < 64) return err("model.max_seq_len", "must be >= 64");
  if (!(m.rope_theta > 0)) return err("model.rope_theta", "must be > 0");

  const auto& t = c.task;
  if (t.dataset.empty()) return err("task.dataset", "must not be empty");
  if (t.image_width < 32 || t.image_width > 8192) return err("task.image_width", "must be in [32, 8192]");
  if (t.image_height < 32 || t.image_height > 8192)
    return err("task.image_height", "must be in [32, 8192]");
  if (t.min_glyph_px < 4) return err("task.min_glyph_px", "must be >= 4");
  if (t.max_glyph_px < t.min_glyph_px) return err("task.max_glyph_px", "must be >= task.min_glyph_px");
  if (t.distractors < 0 || t.distractors > 16) return err("task.distractors", "must be in [0, 16]");
  if (Status s = SyntheticTask::validate(t); !s.ok()) return Status::Error("task: " + s.message());

  const auto& r = c.rollout;
  if (r.mode != "grounded" && r.mode != "direct")
    return err("rollout.mode", "unknown mode '" + r.mode + "' (known: grounded, direct)");
  if (r.g1 < 1) return err("rollout.g1", "must be >= 1");
  if (r.g2 < 1) return err("rollout.g2", "must be >= 1");
  if (r.g1 * r.g2 < 2) return err("rollout.g2", "a group needs at least 2 trajectories (g1*g2 >= 2)");
  if (r.max_turns < 1 || r.max_turns > 16) return err("rollout.max_turns", "must be in [1, 16]");
  if (r.max_new_tokens < 4) return err("rollout.max_new_tokens", "must be >= 4");
  if (!(r.temperature > 0)) return err("rollout.temperature", "must be > 0");
  if (r.top_k < 0) return err("rollout.top_k", "must be >= 0");
  if (!(r.top_p > 0 && r.top_p <= 1)) return err("rollout.top_p", "must be in (0, 1]");
  if (!(r.location_temperature >= 0) || !std::isfinite(r.location_temperature))
    return err("rollout.location_temperature", "must be >= 0 (0 = rollout.temperature)");
  if (r.min_crop_px < 1) return err("rollout.min_crop_px", "must be >= 1");
  if (!(r.max_aspect > 1)) return err("rollout.max_aspect", "must be > 1");

  const auto& b = c.bus;
  if (!is_endpoint(b.control_endpoint))
    return err("bus.control_endpoint", "must start with tcp://, ipc:// or inproc://");
  if (!is_endpoint(b.trajectory_endpoint))
    return err("bus.trajectory_endpoint", "must start with tcp://, ipc:// or inproc://");
  if (!is_endpoint(b.weights_endpoint))
    return err("bus.weights_endpoint", "must start with tcp://, ipc:// or inproc://");
  if (b.control_endpoint == b.trajectory_endpoint || b.control_endpoint == b.weights_endpoint ||
      b.trajectory_endpoint == b.weights_endpoint)
    return err("bus.weights_endpoint", "the three endpoints must differ");
  if (b.heartbeat_interval_ms < 10) return err("bus.heartbeat_interval_ms", "must be >= 10");
  if (b.peer_timeout_ms < 2 * b.heartbeat_interval_ms)
    return err("bus.peer_timeout_ms", "must be >= 2 * bus.heartbeat_interval_ms");
  if (b.send_timeout_ms < 10) return err("bus.send_timeout_ms", "must be >= 10");
  if (b.max_message_bytes < (1 << 16)) return err("bus.max_message_bytes", "must be >= 65536");
  if (b.bucket_bytes < 4096) return err("bus.bucket_bytes", "must be >= 4096");
  if (b.bucket_bytes > b.max_message_bytes / 2)
    return err("bus.bucket_bytes", "must be <= bus.max_message_bytes / 2");

  const auto& pt = c.pretrain;
  if (pt.steps < 1) return err("pretrain.steps", "must be >= 1");
  if (pt.batch < 1) return err("pretrain.batch", "must be >= 1");
  if (!(pt.lr > 0) || !std::isfinite(pt.lr)) return err("pretrain.lr", "must be > 0");
  if (!(pt.lr_final_frac >= 0 && pt.lr_final_frac <= 1))
    return err("pretrain.lr_final_frac", "must be in [0, 1]");
  if (pt.warmup_steps < 0) return err("pretrain.warmup_steps", "must be >= 0");
  if (!(pt.weight_decay >= 0)) return err("pretrain.weight_decay", "must be >= 0");
  if (!(pt.grad_clip > 0)) return err("pretrain.grad_clip", "must be > 0");
  if (pt.position_jitter < 0) return err("pretrain.position_jitter", "must be >= 0");
  if (pt.log_every < 1) return err("pretrain.log_every", "must be >= 1");
  if (pt.report_items < 0) return err("pretrain.report_items", "must be >= 0");
  if (pt.threads < 1) return err("pretrain.threads", "must be >= 1");
  if (pt.processes < 1 || pt.processes > 64) return err("pretrain.processes", "must be in 1..64");
  if (!(pt.objectness_weight >= 0) || !std::isfinite(pt.objectness_weight))
    return err("pretrain.objectness_weight", "must be >= 0");
  if (pt.wording != "basic" && pt.wording != "varied")
    return err("pretrain.wording", "must be basic or varied (got \"" + pt.wording + "\")");
  if (!(pt.objectness_hard_negative_share >= 0 && pt.objectness_hard_negative_share < 1))
    return err("pretrain.objectness_hard_negative_share", "must be in [0, 1)");
  if (pt.objectness_layer < 0 || pt.objectness_layer > c.model.n_layers)
    return err("pretrain.objectness_layer", "must be in [0, model.n_layers=" +
                                                std::to_string(c.model.n_layers) + "]");
  if (pt.vision_steps < 0) return err("pretrain.vision_steps", "must be >= 0");
  if (pt.vision_batch < 1) return err("pretrain.vision_batch", "must be >= 1");
  if (pt.phase1_steps < 0 || pt.phase1_steps > pt.steps)
    return err("pretrain.phase1_steps", "must be in [0, pretrain.steps]");
  if (pt.phase0_steps < 0 || pt.phase0_steps + pt.phase1_steps > pt.steps)
    return err("pretrain.phase0_steps", "must be >= 0 and with pretrain.phase1_steps at most pretrain.steps");
  if (pt.phase2_steps < 0 || pt.phase0_steps + pt.phase1_steps + pt.phase2_steps > pt.steps)
    return err("pretrain.phase2_steps",
               "must be >= 0 and with pretrain.phase0_steps and phase1_steps at most pretrain.steps");
  if (pt.final_steps < 0 ||
      pt.phase0_steps + pt.phase1_steps + pt.phase2_steps + pt.final_steps > pt.steps)
    return err("pretrain.final_steps",
               "must be >= 0 and with pretrain.phase0_steps, phase1_steps and phase2_steps at most "
               "pretrain.steps");
  if (pt.final_steps > 0 && !(pt.final_lr > 0 && std::isfinite(pt.final_lr)))
    return err("pretrain.final_lr", "must be > 0 when pretrain.final_steps > 0");
  if (pt.final_warmup_steps < 0) return err("pretrain.final_warmup_steps", "must be >= 0");
  if (pt.reset_optimizer_after_phase0 && pt.phase0_steps <= 0)
    return err("pretrain.reset_optimizer_after_phase0", "needs pretrain.phase0_steps > 0");
  if (pt.locate_curve_every < 0) return err("pretrain.locate_curve_every", "must be >= 0");
  if (!(pt.vision_box_weight >= 0) || !std::isfinite(pt.vision_box_weight))
    return err("pretrain.vision_box_weight", "must be >= 0");
  if (!(pt.vision_crop_fraction >= 0 && pt.vision_crop_fraction <= 1))
    return err("pretrain.vision_crop_fraction", "must be in [0, 1]");
  if (!(pt.tight_crop_share >= 0 && pt.tight_crop_share <= 1))
    return err("pretrain.tight_crop_share", "must be in [0, 1]");
  if (pt.tight_box_text && !(pt.tight_crop_share > 0))
    return err("pretrain.tight_box_text", "needs pretrain.tight_crop_share > 0 (it writes the tight crops' boxes)");
  if (!(pt.locate_same_shape_share >= 0 && pt.locate_same_shape_share <= 1))
    return err("pretrain.locate_same_shape_share", "must be in [0, 1]");
  if (!(pt.crop_jitter_share >= 0 && pt.crop_jitter_share <= 1))
    return err("pretrain.crop_jitter_share", "must be in [0, 1]");
  if (pt.crop_jitter_cells < 0 || pt.crop_jitter_cells > 32)
    return err("pretrain.crop_jitter_cells", "must be in [0, 32]");
  if (pt.crop_jitter_text && !(pt.crop_jitter_share > 0 && pt.crop_jitter_cells > 0))
    return err("pretrain.crop_jitter_text",
               "needs pretrain.crop_jitter_share > 0 and crop_jitter_cells > 0 (it writes the jittered crops' boxes)");
  if (pt.crop_jitter_final_only && !(pt.crop_jitter_share > 0 && pt.final_steps > 0))
    return err("pretrain.crop_jitter_final_only",
               "needs pretrain.crop_jitter_share > 0 and pretrain.final_steps > 0");
  if (pt.processes > 1 && pt.vision_steps > 0) {
    // Each rank takes whole scenes of a vision step (see learner/vision_pretrain.cc).
    const int crops = static_cast<int>(std::floor(pt.vision_batch * pt.vision_crop_fraction));
    if (std::max(crops, pt.vision_batch - crops) < pt.processes)
      return err("pretrain.processes", "must be <= the scenes of a vision step (" +
                                           std::to_string(std::max(crops, pt.vision_batch - crops)) +
                                           " with pretrain.vision_batch " +
                                           std::to_string(pt.vision_batch) + ")");
  }
  if (!(pt.encoder_lr_scale >= 0) || !std::isfinite(pt.encoder_lr_scale))
    return err("pretrain.encoder_lr_scale", "must be >= 0");
  if (!(pt.vision_lr > 0) || !std::isfinite(pt.vision_lr)) return err("pretrain.vision_lr", "must be > 0");

  const auto& l = c.learner;
  if (l.steps < 1) return err("learner.steps", "must be >= 1");
  if (l.groups_per_step < 1) return err("learner.groups_per_step", "must be >= 1");
  if (l.checkpoint_every < 0) return err("learner.checkpoint_every", "must be >= 0 (0 = final checkpoint only)");
  if (!(l.lr > 0) || !std::isfinite(l.lr)) return err("learner.lr", "must be > 0");
  if (!(l.lr_final_frac >= 0 && l.lr_final_frac <= 1))
    return err("learner.lr_final_frac", "must be in [0, 1]");
  if (l.weight_decay < 0) return err("learner.weight_decay", "must be >= 0");
  if (!(l.adam_beta1 >= 0 && l.adam_beta1 < 1)) return err("learner.adam_beta1", "must be in [0, 1)");
  if (!(l.adam_beta2 >= 0 && l.adam_beta2 < 1)) return err("learner.adam_beta2", "must be in [0, 1)");
  if (!(l.adam_eps > 0)) return err("learner.adam_eps", "must be > 0");
  if (!(l.grad_clip > 0)) return err("learner.grad_clip", "must be > 0");
  if (l.beta_kl < 0) return err("learner.beta_kl", "must be >= 0");
  if (!(l.format_weight >= 0) || !std::isfinite(l.format_weight))
    return err("learner.format_weight", "must be a finite number >= 0");
  if (!(l.clip_eps > 0 && l.clip_eps < 1)) return err("learner.clip_eps", "must be in (0, 1)");
  if (!(l.kl_clamp > 0)) return err("learner.kl_clamp", "must be > 0");
  if (!(l.adv_eps > 0)) return err("learner.adv_eps", "must be > 0");
  if (l.advantage != "grpo" && l.advantage != "srpo")
    return err("learner.advantage", "unknown estimator '" + l.advantage + "' (known: grpo, srpo)");
  if (l.srpo_bins < 1 || l.srpo_bins > 64) return err("learner.srpo_bins", "must be in [1, 64]");
  if (!(l.srpo_min_scale > 0 && l.srpo_min_scale < 1))
    return err("learner.srpo_min_scale", "must be in (0, 1)");
  if (!(l.srpo_lambda >= 0)) return err("learner.srpo_lambda", "must be >= 0");
  if (l.max_staleness < 0) return err("learner.max_staleness", "must be >= 0");
  if (l.max_inflight_groups < 1) return err("learner.max_inflight_groups", "must be >= 1");
  if (l.threads < 1 || l.threads > 256) return err("learner.threads", "must be in [1, 256]");
  if (l.micro_batch < 1) return err("learner.micro_batch", "must be >= 1");

  if (c.actor.threads < 1 || c.actor.threads > 256) return err("actor.threads", "must be in [1, 256]");
  if (c.actor.max_groups < 0) return err("actor.max_groups", "must be >= 0");
  if (c.run.run_dir.empty()) return err("run.run_dir", "must not be empty");
  return Status::Ok();
}

Result<Config> parse_config_yaml(const std::string& text) {
  Config cfg;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::Error(std::string("config: invalid YAML: ") + e.what());
  }
  if (Status s = apply_node(cfg, root); !s.ok()) return s;
  if (Status s = validate_config(cfg); !s.ok()) return s;
  return cfg;
}

Status apply_override(Config& cfg, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return Status::Error("override '" + assignment + "': expected section.key=value");
  const std::string key = assignment.substr(0, eq);
  const Field* f = find_field(key);
  if (!f) return Status::Error(key + ": unknown key");
  YAML::Node n;
  try {
    n = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return Status::Error(key + ": invalid value: " + e.what());
  }
  if (n.IsNull()) n = YAML::Node(std::string());
  return f->set(cfg, n);
}

Result<Config> load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) return Status::Error("config: cannot open '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  Config cfg;
  YAML::Node root;
  try {
    root = YAML::Load(ss.str());
  } catch (const YAML::Exception& e) {
    return Status::Error("config " + path + ": invalid YAML: " + e.what());
  }
  if (Status s = apply_node(cfg, root); !s.ok()) return Status::Error(path + ": " + s.message());
  for (const auto& o : overrides)
    if (Status s = apply_override(cfg, o); !s.ok()) return s;
  if (Status s = validate_config(cfg); !s.ok()) return Status::Error(path + ": " + s.message());
  return cfg;
}

std::string config_to_yaml(const Config& cfg) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  std::string cur;
  for (const auto& [key, f] : fields()) {
    const auto dot = key.find('.');
    const std::string sec = key.substr(0, dot);
    if (sec != cur) {
      if (!cur.empty()) e << YAML::EndMap;
      e << YAML::Key << sec << YAML::Value << YAML::BeginMap;
      cur = sec;
    }
    e << YAML::Key << key.substr(dot + 1) << YAML::Value;
    f.emit(cfg, e);
    e << YAML::Comment(f.doc);
  }
  if (!cur.empty()) e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::vector<std::string> config_values(const Config& cfg, const std::vector<std::string>& sections) {
  std::vector<std::string> out;
  for (const auto& [key, f] : fields()) {
    const std::string sec = key.substr(0, key.find('.'));
    if (std::find(sections.begin(), sections.end(), sec) == sections.end()) continue;
    YAML::Emitter e;
    f.emit(cfg, e);
    out.push_back(key + "=" + e.c_str());
  }
  return out;
}

std::vector<std::string> rollout_contract(const Config& cfg) {
  return config_values(cfg, {"task", "rollout"});
}

std::vector<std::string> contract_differences(const std::vector<std::string>& actor,
                                              const std::vector<std::string>& learner) {
  auto as_map = [](const std::vector<std::string>& v) {
    std::map<std::string, std::string> m;
    for (const auto& kv : v) {
      const auto eq = kv.find('=');
      m[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    return m;
  };
  const auto a = as_map(actor), l = as_map(learner);
  std::vector<std::string> out;
  auto note = [&](const std::string& key) {
    const auto ai = a.find(key), li = l.find(key);
    const std::string av = ai == a.end() ? "(none)" : ai->second;
    const std::string lv = li == l.end() ? "(none)" : li->second;
    if (ai == a.end() || li == l.end() || av != lv)
      out.push_back(key + ": actor " + av + ", learner " + lv);
  };
  for (const auto& [k, v] : l) note(k);
  for (const auto& [k, v] : a)
    if (!l.count(k)) note(k);
  return out;
}

}  // namespace gr1
