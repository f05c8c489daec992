#include "learner/learner.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <atomic>
#include <csignal>
#include <deque>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "common/config.h"
#include "common/log.h"
#include "common/threads.h"
#include "common/weights_torch.h"
#include "learner/coordinator.h"
#include "learner/run_pictures.h"
#include "learner/trainer.h"

namespace gr1 {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int run_learner(const Config& cfg) {
  namespace fs = std::filesystem;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const auto t_start = std::chrono::steady_clock::now();

  std::error_code ec;
  fs::create_directories(cfg.run.run_dir, ec);
  if (ec) {
    log_error("learner", "cannot create run.run_dir '" + cfg.run.run_dir + "': " + ec.message());
    return 1;
  }
  {
    std::ofstream out(fs::path(cfg.run.run_dir) / "config.yaml");
    out << config_to_yaml(cfg);
  }
  configure_compute_threads(cfg.learner.threads);

  std::unique_ptr<Trainer> trainer;
  try {
    trainer = std::make_unique<Trainer>(cfg);
  } catch (const std::exception& e) {
    log_error("learner", std::string("cannot build the trainer: ") + e.what());
    return 1;
  }
  Coordinator coord(cfg);
  if (Status s = coord.start(); !s.ok()) {
    log_error("learner", s.message());
    return 1;
  }
  // Saves the current policy to `path`; a failure is logged through `log`
  // (a warning for intermediate checkpoints, an error for the final one).
  auto save_checkpoint = [&](const std::string& path,
                             void (*log)(const std::string&, const std::string&)) {
    if (Status s = save_policy(path, trainer->policy(), cfg.model); !s.ok())
      log("learner", "cannot save " + path + ": " + s.message());
    else
      log_info("learner", "saved " + path);
  };
  const int64_t param_bytes = count_parameters(trainer->policy()) * 4;
  log_info("learner", "policy " + std::to_string(count_parameters(trainer->policy())) +
                          " parameters (" + std::to_string(param_bytes) + " bytes); waiting for actors on " +
                          cfg.bus.control_endpoint);
  double publish_ms = 0;
  {
    const auto t = std::chrono::steady_clock::now();
    coord.publish_weights(pack_weights(trainer->policy(), 0, cfg.bus.bucket_bytes));
    publish_ms = seconds_since(t) * 1e3;
  }

  std::ofstream metrics(fs::path(cfg.run.run_dir) / "metrics.jsonl", std::ios::trunc);
  auto t_prev = std::chrono::steady_clock::now();
  auto counters_prev = coord.counters();
  double wait_total = 0;
  // Throughput over a sliding window of recent steps (>= 10 s when possible):
  // per-step intervals alternate between bursts and gaps, a window does not.
  std::deque<std::pair<std::chrono::steady_clock::time_point, CoordinatorCounters>> window;
  window.emplace_back(t_prev, counters_prev);
  int exit_code = 0;
  std::vector<TrajectoryGroup> last_batch;  // drawn into gallery.png at the end
  const bool exact = cfg.learner.reproducible;
  std::map<uint64_t, TrajectoryGroup> pending;  // reproducible: groups of later steps, by prompt
  uint64_t inexact_total = 0;                   // reproducible: groups not of their prompt's version

  for (int step = 1; step <= cfg.learner.steps && !g_stop.load(); ++step) {
    // ---- gather groups_per_step fresh groups ----
    // Reproducible runs train step s on exactly the prompts (s-1)*G .. s*G-1,
    // in prompt order, whenever they arrive; groups of later steps wait in
    // `pending`. Otherwise a step takes the first G fresh groups to arrive.
    std::vector<TrajectoryGroup> batch;
    const uint64_t G = static_cast<uint64_t>(cfg.learner.groups_per_step);
    const uint64_t lo = static_cast<uint64_t>(step - 1) * G, hi = lo + G;
    const auto t_wait = std::chrono::steady_clock::now();
    auto last_notice = t_wait;
    auto have = [&] {
      if (!exact) return batch.size();
      return static_cast<size_t>(std::distance(pending.lower_bound(lo), pending.lower_bound(hi)));
    };
    while (have() < G && !g_stop.load()) {
      auto got = coord.take_groups(exact ? 4 * G : G - batch.size(), std::chrono::milliseconds(200));
      for (auto& g : got) {
        const int lag = static_cast<int>(trainer->version() - g.weights_version);
        if (lag > cfg.learner.max_staleness) {
          coord.complete(g, GroupOutcome::kDiscardedStale);
          continue;
        }
        // Consumed now: the actor gets its next prompt while we train.
        coord.complete(g, GroupOutcome::kConsumed);
        if (!exact) {
          batch.push_back(std::move(g));
        } else if (g.prompt_id < lo || pending.count(g.prompt_id)) {
          log_warn("learner", "group of prompt " + std::to_string(g.prompt_id) + " from " + g.actor_id +
                                  " arrived twice or after its step; not used");
        } else {
          pending.emplace(g.prompt_id, std::move(g));
        }
      }
      if (seconds_since(last_notice) > 10.0) {
        last_notice = std::chrono::steady_clock::now();
        log_info("learner", "step " + std::to_string(step) + ": waiting for groups (" +
                                std::to_string(have()) + "/" +
                                std::to_string(cfg.learner.groups_per_step) + ", actors alive: " +
                                std::to_string(coord.counters().actors_alive) + ")");
      }
    }
    int inexact = 0;
    if (exact && have() == G) {
      for (auto it = pending.lower_bound(lo); it != pending.end() && it->first < hi;) {
        if (it->second.weights_version != reproducible_version(cfg.learner, it->first)) ++inexact;
        batch.push_back(std::move(it->second));
        it = pending.erase(it);
      }
      inexact_total += inexact;
      if (inexact > 0)
        log_warn("learner", "step " + std::to_string(step) + ": " + std::to_string(inexact) +
                                " group(s) rolled out with other weights than their prompt's version: "
                                "this run is no longer reproducible");
    }
    int max_lag = 0;
    for (const auto& g : batch)
      max_lag = std::max(max_lag, static_cast<int>(trainer->version() - g.weights_version));
    if (g_stop.load()) break;
    const double wait_s = seconds_since(t_wait);
    wait_total += wait_s;

    // ---- train ----
    auto stats = trainer->step(batch);
    if (!stats.ok()) {
      log_error("learner", "step " + std::to_string(step) + " failed: " + stats.error());
      exit_code = 1;
      break;
    }
    const auto t_pub = std::chrono::steady_clock::now();
    coord.publish_weights(pack_weights(trainer->policy(), trainer->version(), cfg.bus.bucket_bytes));
    publish_ms = seconds_since(t_pub) * 1e3;

    // ---- metrics ----
    const auto now = std::chrono::steady_clock::now();
    const double interval = std::chrono::duration<double>(now - t_prev).count();
    const auto c = coord.counters();
    std::set<std::string> ids;
    for (const auto& g : batch) ids.insert(g.actor_id);
    nlohmann::json m;
    m["step"] = step;
    m["weights_version"] = trainer->version();
    m["wall_s"] = seconds_since(t_start);
    m["groups"] = stats->groups;
    m["trajectories"] = stats->trajectories;
    m["actor_ids"] = std::vector<std::string>(ids.begin(), ids.end());
    m["reward_mean"] = stats->reward_mean;
    m["format_reward_mean"] = stats->format_mean;
    m["accuracy_reward_mean"] = stats->accuracy_mean;
    m["box_score_mean"] = stats->box_score_mean ? nlohmann::json(*stats->box_score_mean) : nlohmann::json(nullptr);
    m["box_rate"] = stats->box_rate;
    m["loss"] = stats->loss;
    m["pg_loss"] = stats->pg;
    m["kl"] = stats->kl;
    m["clip_frac"] = stats->clip_frac;
    m["grad_norm"] = stats->grad_norm;
    m["lr"] = stats->lr;
    m["max_staleness"] = max_lag;
    m["reproducible"] = exact;
    if (exact) {
      m["prompts"] = {lo, hi - 1};
      m["inexact_groups"] = inexact_total;
    }
    m["learner_wait_frac"] = interval > 0 ? wait_s / interval : 0.0;
    m["learner_wait_frac_total"] = wait_total / seconds_since(t_start);
    window.emplace_back(now, c);
    while (window.size() > 2 && std::chrono::duration<double>(now - window[1].first).count() >= 10.0)
      window.pop_front();
    const double span = std::chrono::duration<double>(now - window.front().first).count();
    const auto& c0 = window.front().second;
    m["rollouts_per_s"] = span > 0 ? (c.trajectories_received - c0.trajectories_received) / span : 0.0;
    m["tokens_per_s"] = span > 0 ? (c.policy_tokens_received - c0.policy_tokens_received) / span : 0.0;
    m["train_tokens_per_s"] = stats->train_seconds > 0 ? stats->tokens / stats->train_seconds : 0.0;
    // Tokens the forward actually computed (packed: each shared prefix once).
    m["forward_tokens"] = stats->forward_tokens;
    m["policy_tokens_mean"] = stats->policy_tokens_mean;
    m["turns_mean"] = stats->turns_mean;
    m["logp_mismatch_max"] = stats->logp_mismatch_max;
    m["train_s"] = stats->train_seconds;
    m["wait_s"] = wait_s;
    m["weight_publish_ms"] = publish_ms;
    m["model_bytes"] = param_bytes;
    m["rejected_messages"] = c.rejected_messages;
    m["discarded_stale"] = c.discarded_stale;
    m["actors_alive"] = c.actors_alive;
    m["actors_lost"] = c.actors_lost;
    m["actors_refused"] = c.actors_refused;
    m["prompts_requeued"] = c.prompts_requeued;
    metrics << m.dump() << "\n";
    metrics.flush();

    char line[256];
    std::snprintf(line, sizeof line,
                  "step %d  v%llu  reward %.3f (fmt %.3f acc %.3f)  rollouts/s %.1f  wait %.0f%%  kl %.4f  actors %d",
                  step, static_cast<unsigned long long>(trainer->version()), stats->reward_mean,
                  stats->format_mean, stats->accuracy_mean, m["rollouts_per_s"].get<double>(),
                  100.0 * m["learner_wait_frac"].get<double>(), stats->kl, c.actors_alive);
    std::cout << line << std::endl;
    t_prev = now;
    counters_prev = c;
    // Pictures never stop training: failures are logged as warnings.
    if (step % 10 == 0) write_run_curves(cfg.run.run_dir);
    // Intermediate checkpoints never stop training either (the final one is
    // still written below).
    if (cfg.learner.checkpoint_every > 0 && step % cfg.learner.checkpoint_every == 0) {
      char name[64];
      std::snprintf(name, sizeof name, "step_%06d.safetensors", step);
      const auto dir = fs::path(cfg.run.run_dir) / "checkpoints";
      std::error_code ec;
      fs::create_directories(dir, ec);
      save_checkpoint((dir / name).string(), log_warn);
    }
    last_batch = std::move(batch);
  }

  coord.stop(g_stop.load() ? "learner interrupted" : "training finished");
  save_checkpoint((fs::path(cfg.run.run_dir) / "policy.safetensors").string(), log_error);
  if (!last_batch.empty()) {  // at least one step was trained and logged
    write_run_curves(cfg.run.run_dir);
    write_run_gallery(cfg.run.run_dir, last_batch, trainer->task(), cfg.model.image_size);
  }
  return exit_code;
}

}  // namespace gr1
