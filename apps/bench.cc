#include "apps/bench.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <iostream>

#include "actors/rollout.h"
#include "common/messages.h"
#include "common/threads.h"
#include "common/tokenizer.h"
#include "common/weights_torch.h"
#include "learner/trainer.h"

namespace gr1 {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int run_bench(const Config& cfg, int iters) {
  configure_compute_threads(cfg.learner.threads);
  Trainer trainer(cfg);
  RolloutEngine engine(trainer.policy(), cfg.model, cfg.rollout);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(cfg.run.seed);
  nlohmann::json out;
  out["threads"] = cfg.learner.threads;
  out["parameters"] = count_parameters(trainer.policy());

  // ---- rollouts ----
  std::vector<TrajectoryGroup> groups;
  double gen_s = 0;
  int64_t ptok = 0, traj = 0;
  for (int i = 0; i < iters + 1; ++i) {
    RolloutStats rs;
    const auto t = Clock::now();
    auto g = engine.rollout(trainer.task().get(i), gen, false, &rs);
    if (i > 0) {
      gen_s += since(t);
      ptok += rs.policy_tokens;
      traj += static_cast<int64_t>(g.trajectories.size());
    }
    g.prompt_id = i;
    g.actor_id = "bench";
    groups.push_back(std::move(g));
  }
  out["rollout_groups_per_s"] = iters / gen_s;
  out["rollout_trajectories_per_s"] = traj / gen_s;
  out["rollout_policy_tokens_per_s"] = ptok / gen_s;

  // ---- train steps on groups_per_step groups ----
  std::vector<TrajectoryGroup> batch;
  for (int i = 0; i < cfg.learner.groups_per_step; ++i) batch.push_back(groups[i % groups.size()]);
  double train_s = 0;
  int64_t tokens = 0;
  for (int i = 0; i < iters + 1; ++i) {
    for (auto& g : batch) g.weights_version = trainer.version();
    auto st = trainer.step(batch);
    if (!st.ok()) {
      std::cerr << "bench: " << st.error() << "\n";
      return 1;
    }
    if (i > 0) train_s += st->train_seconds, tokens += st->tokens;
  }
  out["train_step_s"] = train_s / iters;
  out["train_tokens_per_s"] = tokens / train_s;
  out["train_trajectories_per_step"] = static_cast<int>(batch.size()) * cfg.rollout.g1 * cfg.rollout.g2;

  // ---- weights: pack -> encode -> decode+verify -> unpack ----
  double pack = 0, enc = 0, dec = 0, unpack = 0;
  uint64_t bytes = 0;
  size_t buckets = 0;
  Policy other(cfg.model, Tokenizer().vocab_size());
  for (int i = 0; i < iters; ++i) {
    auto t = Clock::now();
    auto snap = pack_weights(trainer.policy(), i, cfg.bus.bucket_bytes);
    pack += since(t);
    t = Clock::now();
    auto frames = encode_weights_reply("learner", *snap);
    enc += since(t);
    t = Clock::now();
    std::vector<std::string_view> views(frames.begin(), frames.end());
    auto back = decode_weights_reply(views, cfg.bus.max_message_bytes);
    dec += since(t);
    if (!back.ok()) {
      std::cerr << "bench: " << back.error() << "\n";
      return 1;
    }
    t = Clock::now();
    if (Status s = unpack_weights(*back, other); !s.ok()) {
      std::cerr << "bench: " << s.message() << "\n";
      return 1;
    }
    unpack += since(t);
    bytes = snap->total_bytes;
    buckets = snap->buckets.size();
  }
  out["weights_bytes"] = bytes;
  out["weights_buckets"] = buckets;
  out["weights_pack_ms"] = 1e3 * pack / iters;
  out["weights_encode_ms"] = 1e3 * enc / iters;
  out["weights_decode_verify_ms"] = 1e3 * dec / iters;
  out["weights_unpack_ms"] = 1e3 * unpack / iters;
  std::cout << out.dump(2) << std::endl;
  return 0;
}

}  // namespace gr1
