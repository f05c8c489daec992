#include "actors/actor.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>

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
  // Verified snapshots by version, the last few: a reproducible run's grants
  // name the version each prompt is rolled out with, not always the newest.
  std::map<uint64_t, std::shared_ptr<const WeightsSnapshot>> kept;
  bool exact = false;  // the learner's grants name versions (learner.reproducible)

  auto use = [&](const WeightsSnapshot& w) {
    if (Status s = unpack_weights(w, policy); !s.ok()) {
      log_error(who, "rejected weights v" + std::to_string(w.version) + ": " + s.message());
      kept.erase(w.version);
      return;
    }
    version = w.version;
    have_weights = true;
    fetch_ms_last = w.fetch_ms;
  };
  // Takes what the link fetched. Switch weights only between groups, and only
  // to verified ones: the newest, unless grants name their versions.
  auto absorb = [&] {
    auto fresh = link.take_new_weights();
    for (const auto& w : fresh) kept[w->version] = w;
    while (kept.size() > 8) kept.erase(kept.begin());
    if (!fresh.empty() && (!exact || !have_weights) && (!have_weights || fresh.back()->version > version))
      use(*fresh.back());
  };

  while (!g_stop.load() && !link.closed()) {
    absorb();
    if (!have_weights) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    auto grant = link.next_prompt(std::chrono::milliseconds(100));
    if (!grant) continue;
    const uint64_t prompt = grant->prompt_id;
    if (grant->weights_version) {
      exact = true;
      const uint64_t want = *grant->weights_version;
      if (version != want) {
        absorb();
        // Fetched exactly unless it is here already (usually it is: the
        // link fetches each version as it is announced).
        if (!kept.count(want)) link.want_weights(want);
        while (!kept.count(want) && !link.weights_unavailable(want) && !g_stop.load() && !link.closed()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          absorb();
        }
        link.want_weights(std::nullopt);
        if (auto k = kept.find(want); k != kept.end()) {
          use(*k->second);
        } else if (link.weights_unavailable(want)) {
          // Rolled out all the same (the group says which version it used):
          // the learner counts it as not reproducible.
          auto newest = kept.rbegin();
          if (newest != kept.rend() && newest->first > version) use(*newest->second);
          log_warn(who, "prompt " + std::to_string(prompt) + " asks for weights v" + std::to_string(want) +
                            ", which the learner no longer keeps; rolled out with v" + std::to_string(version));
        } else {
          break;  // stopping
        }
      }
    }

    // The sampling seed depends on the run, the prompt and the weights only,
    // never on which actor rolls it out or what it rolled out before.
    auto gen = torch::make_generator<torch::CPUGeneratorImpl>(
        mix(cfg.run.seed ^ mix(prompt ^ mix(version + 0x51ed270b27c0ffeeULL))));
    const auto tg = std::chrono::steady_clock::now();
    Sample sample = task.get(prompt);
    RolloutStats rs;
    TrajectoryGroup g = engine.rollout(sample, gen, /*greedy=*/false, &rs);
    g.actor_id = actor_id;
    g.group_id = ++group_id;
    g.prompt_id = prompt;
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
