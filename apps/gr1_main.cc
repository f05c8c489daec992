// gr1: the single entry point. Subcommands are thin wrappers over the
// libraries: learner (learner/), actor (actors/), launch (orchestration/).
#include <CLI/CLI.hpp>

#include <iostream>

#include "actors/actor.h"
#include "apps/bench.h"
#include "learner/score_tool.h"
#include "common/config.h"
#include "learner/learner.h"
#include "orchestration/launch.h"

namespace {

// Loads the config with --set overrides and the common flags applied.
bool load(const std::string& path, std::vector<std::string> sets, const std::string& run_dir,
          int steps, gr1::Config* out) {
  if (!run_dir.empty()) sets.push_back("run.run_dir=" + run_dir);
  if (steps > 0) sets.push_back("learner.steps=" + std::to_string(steps));
  auto cfg = gr1::load_config(path, sets);
  if (!cfg.ok()) {
    std::cerr << "gr1: config error: " << cfg.error() << "\n";
    return false;
  }
  *out = *cfg;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gr1: Ground-R1 actor/learner training system"};
  app.require_subcommand(1);

  std::string config_path, run_dir, actor_id;
  std::vector<std::string> sets;
  int steps = 0, actors = 2;

  auto add_common = [&](CLI::App* sub) {
    sub->add_option("--config", config_path, "YAML configuration file")->required()->check(CLI::ExistingFile);
    sub->add_option("--set", sets, "override a config key: section.key=value (repeatable)");
    sub->add_option("--run-dir", run_dir, "run directory (overrides run.run_dir)");
  };

  auto* learner = app.add_subcommand("learner", "run the learner process");
  add_common(learner);
  learner->add_option("--steps", steps, "optimizer steps (overrides learner.steps)")->check(CLI::PositiveNumber);

  auto* actor = app.add_subcommand("actor", "run one rollout actor process");
  add_common(actor);
  actor->add_option("--id", actor_id, "actor id (unique in the cluster)")->required();

  auto* launch = app.add_subcommand("launch", "start one learner and N actors locally");
  add_common(launch);
  launch->add_option("--actors", actors, "number of actor processes")->check(CLI::Range(1, 256));
  launch->add_option("--steps", steps, "optimizer steps (overrides learner.steps)")->check(CLI::PositiveNumber);

  int iters = 3;
  auto* bench = app.add_subcommand("bench", "micro-benchmarks of rollout, train step and weight sync");
  add_common(bench);
  bench->add_option("--iters", iters, "repetitions after one warm-up")->check(CLI::PositiveNumber);

  std::string score_in;
  auto* score = app.add_subcommand("score", "rewards of given turn texts (JSON lines), by the learner's code");
  score->add_option("--in", score_in, "JSON-lines file, or - for stdin")->required();

  CLI11_PARSE(app, argc, argv);
  if (score->parsed()) return gr1::run_score(score_in);

  gr1::Config cfg;
  if (!load(config_path, sets, run_dir, steps, &cfg)) return 2;
  if (learner->parsed()) return gr1::run_learner(cfg);
  if (bench->parsed()) return gr1::run_bench(cfg, iters);
  if (actor->parsed()) return gr1::run_actor(cfg, actor_id);
  if (launch->parsed()) {
    gr1::LaunchOptions lo;
    lo.config_path = config_path;
    lo.overrides = sets;
    if (!run_dir.empty()) lo.overrides.push_back("run.run_dir=" + run_dir);
    if (steps > 0) lo.overrides.push_back("learner.steps=" + std::to_string(steps));
    lo.actors = actors;
    return gr1::run_launch(cfg, lo);
  }
  return 2;
}
