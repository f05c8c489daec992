// Typed options of every component, filled once from YAML by config.cc and
// validated there. Each field: meaning, unit, default. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>

namespace gr1 {

// The policy network (a small vision-language model).
struct ModelOptions {
  int d_model = 128;        // hidden size
  int n_layers = 4;         // decoder blocks
  int n_heads = 4;          // attention heads (d_model % n_heads == 0)
  int ffn_hidden = 352;     // SwiGLU inner size
  int image_size = 64;      // shown image side in pixels (every image and crop is resized to this)
  int patch_size = 8;       // vision patch side in pixels; image tokens = (image_size/patch_size)^2
  int vision_layers = 1;    // transformer layers in the vision encoder after the conv patch embed
  int max_seq_len = 1024;   // longest trajectory in tokens (RoPE table size)
  double rope_theta = 10000.0;
  // One extra image token per image after the patch tokens: the max over
  // the patch features, projected like them (a global view of the image).
  bool summary_token = true;
  // Vision front end: true = a small CNN (3x3 conv, then one stride-2 3x3
  // conv per halving down to the patch grid; patch_size a power of 2), false
  // = one patch_size x patch_size linear patch embedding. Either gives the
  // same g x g grid of tokens. Measured on the vision stage (docs/results.md):
  // the CNN labels patches better but read details worse at 1000 steps.
  bool conv_stem = false;
  // conv_stem only: residual 3x3 convolutions at the patch grid after the
  // stem (x + conv(gelu(x))), each widening a patch's receptive field by
  // two patches: a detail larger than a patch is seen whole by one token.
  int stem_grid_convs = 0;
  // Image context: every text token after an image block gets, added to its
  // embedding, a learned projection of that block's summary row (the latest
  // image before it), so that a token reads the newest image without having
  // to find it by attention. Needs summary_token.
  bool image_context = false;
  // image_context only: false = the tokens of an answer span (from <answer>
  // up to, not including, </answer>) get no image context, so the answer
  // cannot re-read the newest image through its summary; it must take what
  // its thought read (or find it by attention). true = every later text
  // token gets it (the earlier bases).
  bool answer_image_context = true;
  // A learned embedding per slot of an image block (patch index in the grid,
  // then the summary) added to each image row at the decoder's input: the
  // decoder's 1-D positions do not say which grid row and column a patch
  // is, and boxes need exactly that.
  bool image_slot_pos = false;
  // Instruction-aware image tokens: each image slot gets a learned
  // projection of the mean embedding of its user turn's text so far (the
  // question comes before the image), so that a patch can tell whether it
  // is what the question names without first learning to find the words by
  // attention (cf. InstructBLIP's instruction-aware visual queries).
  bool image_query = false;
  int patch_tokens() const { return (image_size / patch_size) * (image_size / patch_size); }
  int image_tokens() const { return patch_tokens() + (summary_token ? 1 : 0); }
};

// The synthetic grounded-reasoning task.
// The synthetic benchmark (common/task.h): question families that mirror
// VisCoT's categories, multiple-choice variants, evidence from tiny to large,
// and fixed train/test splits.
struct TaskOptions {
  std::string dataset = "synth";  // name prefix: records are "<dataset>_<family>[_mc]"
  std::string families = "text,attribute,spatial,counting";  // comma-separated, drawn uniformly
  double mc_fraction = 0.25;      // share of questions asked as multiple choice (A-D)
  std::string split = "train";    // train | test: disjoint index streams of the same seed
  int image_width = 256;          // original image size in pixels
  int image_height = 256;
  uint64_t seed = 1234;           // base seed; sample i is a pure function of (seed, i)
  int min_glyph_px = 14;          // evidence detail size (glyph height) in original pixels,
  int max_glyph_px = 20;          //   drawn log-uniformly in [min, max]
  int distractors = 3;            // other objects in the scene
  double near_distractors = 0.0;  // share of distractors placed touching the subject
  // Share of scenes whose shapes are all the subject's kind, so that only the
  // colour word tells them apart (pretraining's colour-binding curriculum,
  // set from pretrain.locate_same_shape_share; not a benchmark setting).
  // 0 draws nothing, so default scenes are unchanged by it.
  double same_shape_scenes = 0.0;
  // Size of the train split: train question i is question i % train_questions,
  // so RL cycles over a fixed set (epochs, as over a real dataset's file);
  // 0 = every index a new question. The test split is never cycled.
  int64_t train_questions = 0;
};

// Rollouts: the G1 x G2 tree and sampling.
struct RolloutOptions {
  std::string mode = "grounded";  // grounded (boxes and crops) | direct (one answer turn, no crops)
  int g1 = 2;                  // grounding roots per question
  int g2 = 4;                  // continuations per root
  int max_turns = 5;           // assistant turns per trajectory (at most max_turns-1 crops)
  int max_new_tokens = 48;     // tokens per assistant turn
  double temperature = 1.0;    // > 0
  int top_k = 0;               // 0 = off
  double top_p = 1.0;          // (0, 1]
  double location_temperature = 0.0;  // the box coordinates' (<loc_k>) temperature; 0 = temperature
  // A box's x2 and y2 only from the location tokens past x1 and y1 (no empty
  // boxes), in sampling, greedy decoding and the learner's log-probs alike
  // (location_floor() in common/policy.h).
  bool box_order = false;
  int min_crop_px = 28;        // crop sides shorter than this (original pixels) are widened
  double max_aspect = 200.0;   // boxes with aspect ratio >= this are rejected
};

// ZeroMQ endpoints and liveness. See docs/bus.md.
struct BusOptions {
  std::string control_endpoint = "tcp://127.0.0.1:5701";     // learner ROUTER <- actor DEALER
  std::string trajectory_endpoint = "tcp://127.0.0.1:5702";  // learner PULL <- actor PUSH
  std::string weights_endpoint = "tcp://127.0.0.1:5703";     // learner ROUTER <- actor DEALER
  int heartbeat_interval_ms = 500;  // both directions
  int peer_timeout_ms = 5000;       // a peer silent this long is reported missing
  int send_timeout_ms = 5000;       // every blocking send/recv has a timeout
  int64_t max_message_bytes = 256LL << 20;  // larger messages are rejected unread
  int bucket_bytes = 1 << 20;       // weight broadcast bucket size
};

// The learner: GRPO and optimisation.
struct LearnerOptions {
  int steps = 50;                // optimizer steps, then shutdown
  int groups_per_step = 4;       // question groups per step
  double lr = 1e-4;              // AdamW learning rate
  double lr_final_frac = 1.0;    // linear decay to lr * this at the last step
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  double grad_clip = 5.0;        // max global grad norm
  double beta_kl = 0.04;         // k3 KL coefficient against the frozen reference
  // Weight of the format reward in the reward the advantages are computed
  // from: accuracy + format_weight * format. 1 is the paper's r = accuracy +
  // format; other values are ablations (metrics still log both rewards).
  double format_weight = 1.0;
  double clip_eps = 0.2;         // PPO ratio clip
  double kl_clamp = 10.0;        // d = logp_ref - logp clamped to [-kl_clamp, kl_clamp]
  double adv_eps = 1e-4;         // std epsilon in the advantage
  std::string advantage = "grpo";  // grpo | srpo (scale-relative, see learner/advantages.h)
  int srpo_bins = 4;             // SRPO: scale bins, log-spaced edges between srpo_min_scale and 1
  double srpo_min_scale = 1e-3;  // SRPO: lowest bin edge's anchor (fraction of the image area)
  double srpo_lambda = 0.5;      // SRPO: weight of the inter-bin term
  int max_staleness = 4;         // groups older than this many versions are discarded (counted)
  int max_inflight_groups = 2;   // per actor: granted + sent but not consumed
  // Reproducible RL: step s trains on exactly the prompts (s-1)*G .. s*G-1
  // (G = groups_per_step), in prompt order, each rolled out with the weights
  // after step s-2 (s-1 when max_staleness is 0) and sampled from a seed of
  // (run.seed, prompt id, weights version): the same run gives the same
  // policy whichever actor rolls out what, with any number of actors.
  bool reproducible = false;
  bool freeze_vision = false;    // freeze the vision encoder
  int threads = 1;               // LibTorch intra-op threads
  int micro_batch = 16;          // trajectories per forward/backward chunk (unpacked)
  // One forward per group over its prefix tree (learner/packing.h): shared
  // prompts and crop turns computed once; same loss. Not with image_query.
  bool packed_forward = true;
  std::string init_checkpoint;   // optional safetensors to start from (else random init by seed)
  // Also save run_dir/checkpoints/step_<N>.safetensors after every this many
  // steps (0: only the final run_dir/policy.safetensors).
  int checkpoint_every = 0;
};

// learner.reproducible: how many versions behind the trainer a step's
// rollouts are made (1, so rollouts overlap training; 0 when max_staleness is 0).
inline uint64_t reproducible_lag(const LearnerOptions& l) { return l.max_staleness > 0 ? 1 : 0; }
// learner.reproducible: the weights version prompt `p` (0-based; step
// p / groups_per_step + 1 trains on it) is rolled out with.
inline uint64_t reproducible_version(const LearnerOptions& l, uint64_t p) {
  const uint64_t step0 = p / static_cast<uint64_t>(l.groups_per_step > 0 ? l.groups_per_step : 1);
  const uint64_t lag = reproducible_lag(l);
  return step0 > lag ? step0 - lag : 0;
}

struct ActorOptions {
  int threads = 1;               // LibTorch intra-op threads per actor
  int max_groups = 0;            // stop after this many groups (0 = until shutdown)
};

// `gr1 pretrain`: supervised training of the base policy on generic skills
// (learner/pretrain.h). The benchmark's composed questions are never used.
struct PretrainOptions {
  int steps = 3000;               // optimizer steps
  int batch = 16;                 // sequences per step
  double lr = 1e-3;               // AdamW learning rate, linear warm-up then decay
  double lr_final_frac = 0.1;     // final lr as a fraction of lr
  int warmup_steps = 100;
  double weight_decay = 0.01;
  double grad_clip = 1.0;
  int position_jitter = 10;       // random 0..N offset added to all positions of a sequence
  // Skills and their weights: "name:weight,...". Known: locate, zoom_read,
  // refine, answer, direct, zoom_read_mc, zoom_read_rel, answer_lookup,
  // zoom_read_chain, locate_rel (see learner/pretrain.h).
  std::string skills = "locate:3,zoom_read:4,refine:1.5,answer:1,direct:0.5";
  // A first phase of the decoder stage: its first phase1_steps steps (of
  // `steps`) draw from phase1_skills instead (e.g. locate only: short
  // sequences, ~2.7x cheaper steps, and the binding of words to image
  // patches that every other skill starts with).
  int phase1_steps = 0;
  std::string phase1_skills = "locate:1";
  // A second phase right after phase 1: the next phase2_steps steps draw
  // from phase2_skills (e.g. locate_rel: shapes named by their relation to
  // another, once the words are bound to patches). Its lr is the schedule's
  // (phase 1, phase 2 and the mix share one warm-up and decay).
  int phase2_steps = 0;
  std::string phase2_skills = "locate_rel:2,locate:1";
  // A phase before it: the first phase0_steps steps (of `steps`; phase 1
  // then follows) draw from phase0_skills, at pretrain.lr after its own
  // warm-up; the lr schedule of the steps after it is the one they would
  // have without it (warm-up, then decay over steps - phase0_steps). Meant
  // for text-only skills (answer_lookup): many cheap steps before the decoder
  // sees an image.
  int phase0_steps = 0;
  std::string phase0_skills = "answer_lookup:1";
  // A phase after the rest: the last final_steps steps (of `steps`) draw from
  // final_skills (empty: `skills`) with a schedule of their own: a linear
  // warm-up of final_warmup_steps to final_lr, then linear decay to
  // final_lr * lr_final_frac at the last step (the optimizer's state is
  // kept). The steps before it decay over steps - phase0_steps - final_steps.
  // Meant to take the answer-lookup skill out of the last steps again and
  // re-warm the lr once (docs/results.md, "A text-only phase 0").
  // Drop the optimizer's state (AdamW moments and step counts) at the first
  // step after phase 0: the next phase starts as from a fresh optimizer
  // instead of with moments of text-only gradients. Needs phase0_steps > 0.
  bool reset_optimizer_after_phase0 = false;
  int final_steps = 0;
  std::string final_skills;
  double final_lr = 3e-4;
  int final_warmup_steps = 20;
  int log_every = 50;             // steps between progress lines
  int report_items = 200;         // held-out items per skill in the final report
  // Decoder stage: a held-out locate report (report_items items, greedy: box
  // score and right-shape rate) every locate_curve_every steps and at the
  // last step of phase 0, phase 1 and the mix before the final phase; the
  // rows go to the report's "locate_curve". Their time is kept out of the
  // logged wall_s and train_seconds (reported as locate_curve_seconds). The
  // reports draw no training randomness: the weights come out the same as
  // without them. 0 = none.
  int locate_curve_every = 0;
  // Decoder stage: the weights at the end of phase 0, phase 1, phase 2 and
  // the mix before the final phase, written beside the checkpoint as
  // <out>.phase0.safetensors, <out>.phase1.safetensors,
  // <out>.phase2.safetensors, <out>.mix.safetensors
  // (for probes that start from a phase boundary).
  bool phase_checkpoints = false;
  int threads = 1;                // LibTorch intra-op threads (per process)
  // Data-parallel processes (learner/data_parallel.h): `gr1 pretrain` starts
  // processes - 1 more ranks of itself; each step's batch is shared out and
  // the gradients are summed with c10d/Gloo over loopback TCP. 1 = one process.
  int processes = 1;
  // Weight of the pretraining-only per-patch loss: on the first image's patch
  // tokens, the decoder's last hidden state predicts whether the patch
  // overlaps the object the question names (0 = off).
  double objectness_weight = 1.0;
  // Share of the objectness loss's negative weight on patches of the
  // scene's OTHER shapes (the rest on background); 0 = every negative patch
  // weighs alike. Background is most of the image and trivially "no", so
  // with 0 a head that flags every shape of the named kind scores well.
  double objectness_hard_negative_share = 0.0;
  // Decoder block whose output the objectness head reads (1..n_layers; 0 =
  // the last). Later blocks' attention reads earlier blocks' outputs, so a
  // block before the last lets the box tokens see where the named shape is.
  int objectness_layer = 0;
  // With learner.init_checkpoint: take only its encoder (vision.*); the
  // decoder starts from the seeded init.
  bool init_vision_only = false;
  // Question wording of the pretraining skills: "basic" (one phrasing per
  // detail kind and relation, few templates) or "varied" (several
  // phrasings, some naming the mark by a shape word; sentences naming
  // another shape of the scene; closings). Neither uses the benchmark's.
  std::string wording = "basic";
  // Vision stage before the decoder stage (learner/vision_pretrain.h): the
  // encoder alone learns per-patch colour/shape/objectness and the detail
  // of a zoomed-in object (0 steps = skipped).
  int vision_steps = 600;
  // Freeze the vision encoder during the decoder stage (after the vision
  // stage): the decoder learns to use the encoder instead of reshaping it.
  bool freeze_vision = false;
  int vision_batch = 32;          // images per vision step
  double vision_crop_fraction = 0.5;  // share of a vision step's images that are object crops
  double vision_box_weight = 0.25;    // weight of the per-patch box loss (grid units, smooth L1)
  // Share of object crops cut around the detail instead of the whole shape:
  // a box drawn uniformly between the detail's own box and the shape's,
  // snapped outward to the location grid (a box the policy can write). In
  // the vision stage and in the crops the decoder's zoom-read skills show
  // after their box turn; the box the decoder is taught to write stays the
  // shape's (unless tight_box_text), so no detail box is ever supervised.
  // 0 = shape crops only.
  double tight_crop_share = 0.0;
  bool tight_box_text = false;     // read skills write the tight crop's box, not the shape's
  // Share of the decoder stage's locate examples drawn from scenes whose
  // shapes are all the named one's kind (colours stay distinct): the shape
  // word alone then finds nothing, so the box must bind the colour word.
  double locate_same_shape_share = 0.0;
  // Share of the zoom-read skills' read crops whose edges are each moved in
  // or out by up to crop_jitter_cells location-grid cells (the detail kept
  // whole inside, the frame's edges respected), as the policy's own boxes
  // frame a shape: the reader learns to read crops that are not the
  // teacher's exact box. The taught box text is unchanged (unless
  // crop_jitter_text). 0 = none.
  double crop_jitter_share = 0.0;
  int crop_jitter_cells = 3;
  // Where a read crop is jittered, the read skill's grounding turn writes the
  // jittered crop's box: the written box and the crop agree, as in a rollout,
  // and the read skills' box prior spreads around the shape's box. Locate
  // keeps the shape's box.
  bool crop_jitter_text = false;
  // Jittered read crops only in the final phase (final_steps): the phases
  // before it are as without them, bit for bit.
  bool crop_jitter_final_only = false;
  // Decoder stage: the encoder's learning rate as a fraction of pretrain.lr
  // (1 = the same; freeze_vision: true freezes it outright).
  double encoder_lr_scale = 1.0;
  double vision_lr = 2e-3;
};

struct RunOptions {
  std::string run_dir = "runs/demo";  // metrics.jsonl, config.yaml, logs, checkpoints
  uint64_t seed = 1;                  // model init and sampling seed
  std::string name = "demo";
};

struct Config {
  RunOptions run;
  ModelOptions model;
  TaskOptions task;
  RolloutOptions rollout;
  BusOptions bus;
  LearnerOptions learner;
  ActorOptions actor;
  PretrainOptions pretrain;
};

}  // namespace gr1
