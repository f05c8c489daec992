#include "actors/actor.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>

#include "actors/actor_link.h"
#include "actors/rollout.h"
#include "common/log.h"
#include "common/threads.h"
#include "common/task.h"
#include "common/tokenizer.h"
#include "common/weights_torch.h"

namespace gr1 {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t hash_id(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace

int run_actor(const Config& cfg, const std::string& actor_id) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  configure_compute_threads(cfg.actor.threads);
  const std::string who = actor_id;

  Policy policy(cfg.model, Tokenizer().vocab_size());
  policy->eval();
  RolloutEngine engine(policy, cfg.model, cfg.rollout);
  SyntheticTask task(cfg.task);

  ActorLink link(cfg, actor_id);
  if (Status s = link.start(&g_stop); !s.ok()) {
    log_error(who, s.message());
    return 1;
  }
  log_info(who, "registered with the learner at " + cfg.bus.control_endpoint);

  uint64_t version = 0;
  bool have_weights = false;
  uint64_t group_id = 0;
  double gen_total = 0, fetch_ms_last = 0;
  int64_t tokens_total = 0, trajectories_total = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(mix(cfg.run.seed ^ hash_id(actor_id)));

  while (!g_stop.load() && !link.closed()) {
    // Switch weights only between groups, and only to verified ones.
    if (auto w = link.take_new_weights()) {
      if (Status s = unpack_weights(*w, policy); !s.ok()) {
        log_error(who, "rejected weights v" + std::to_string(w->version) + ": " + s.message());
      } else {
        version = w->version;
        have_weights = true;
        fetch_ms_last = w->fetch_ms;
      }
    }
    if (!have_weights) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    auto prompt = link.next_prompt(std::chrono::milliseconds(100));
    if (!prompt) continue;

    const auto tg = std::chrono::steady_clock::now();
    Sample sample = task.get(*prompt);
    RolloutStats rs;
    TrajectoryGroup g = engine.rollout(sample, gen, /*greedy=*/false, &rs);
    g.actor_id = actor_id;
    g.group_id = ++group_id;
    g.prompt_id = *prompt;
    g.weights_version = version;
    g.gen_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tg).count();
    gen_total += g.gen_seconds;
    tokens_total += rs.policy_tokens;
    trajectories_total += static_cast<int64_t>(g.trajectories.size());
    if (!link.send_group(std::move(g))) break;

    const double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    link.report({{"groups", double(group_id)},
                 {"trajectories", double(trajectories_total)},
                 {"policy_tokens", double(tokens_total)},
                 {"gen_seconds", gen_total},
                 {"busy_frac", up > 0 ? gen_total / up : 0.0},
                 {"weights_version", double(version)},
                 {"weight_fetch_ms", fetch_ms_last}});
    if (cfg.actor.max_groups > 0 && group_id >= static_cast<uint64_t>(cfg.actor.max_groups)) break;
  }
  const bool lost = link.learner_lost();
  link.stop();
  // The first reason the link closed for: the learner's word when it came
  // before (or together with) the launcher's signal.
  std::string reason = link.close_reason();
  if (g_stop.load() && reason == "stopped") reason = "signal";
  const int undelivered = link.undelivered_groups();
  log_info(who, "stopping after " + std::to_string(group_id) + " groups (" + reason + ")" +
                    (undelivered > 0 ? "; " + std::to_string(undelivered) + " not delivered" : ""));
  return lost ? 3 : 0;
}

}  // namespace gr1
