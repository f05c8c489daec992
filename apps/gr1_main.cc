// gr1: the single entry point. Subcommands are thin wrappers over the
// libraries: learner (learner/), actor (actors/), launch (orchestration/).
#include <CLI/CLI.hpp>

#include <iostream>

#include "actors/actor.h"
#include "actors/eval.h"
#include "common/dataset.h"
#include "common/synth_data.h"
#include "apps/bench.h"
#include "learner/score_tool.h"
#include "common/config.h"
#include "common/threads.h"
#include "learner/grid_report.h"
#include "learner/learner.h"
#include "learner/pretrain.h"
#include "learner/results.h"
#include "orchestration/data_parallel_run.h"
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
  // GR1_KERNELS (common/threads.h): may start this program again with the
  // portable kernels' variables set, before any kernel has run.
  if (const std::string err = gr1::select_kernels(argv); !err.empty()) {
    std::cerr << "gr1: " << err << "\n";
    return 2;
  }
  gr1::keep_freed_memory();
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

  std::string pretrain_out;
  auto* pretrain = app.add_subcommand("pretrain", "supervised base policy on generic skills (never the benchmark's questions)");
  add_common(pretrain);
  pretrain->add_option("--out", pretrain_out, "checkpoint to write (.safetensors); its report goes to OUT.report.json")->required();
  pretrain->add_option("--steps", steps, "pretraining steps (overrides pretrain.steps)")->check(CLI::PositiveNumber);
  // Set by a data-parallel rank 0 on the ranks it starts (pretrain.processes > 1).
  gr1::DataParallelOptions dp_rank;
  pretrain->add_option("--dp-rank", dp_rank.rank, "internal: this process's data-parallel rank")
      ->group("")->check(CLI::NonNegativeNumber);
  pretrain->add_option("--dp-world", dp_rank.world, "internal: data-parallel world size")
      ->group("")->check(CLI::PositiveNumber);
  pretrain->add_option("--dp-store", dp_rank.store_path, "internal: data-parallel rendezvous file")->group("");
  pretrain->add_option("--dp-timeout", dp_rank.timeout_s, "internal: data-parallel timeout (s)")
      ->group("")->check(CLI::PositiveNumber);

  std::string report_ckpt;
  auto* report = app.add_subcommand(
      "report", "the held-out skill report of a checkpoint (what gr1 pretrain writes to CKPT.report.json)");
  add_common(report);
  report->add_option("--checkpoint", report_ckpt, "policy checkpoint (.safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  bool report_locate_only = false;
  report->add_flag("--locate-only", report_locate_only,
                   "only the locate items (locate_box_score, locate_right_shape_rate)");

  gr1::EvalCli ev;
  auto* eval = app.add_subcommand(
      "eval", "greedy evaluation of a checkpoint on a dataset (and K sampled tries with --samples)");
  eval->add_option("--checkpoint", ev.checkpoint, "policy checkpoint (.safetensors)")->required()->check(CLI::ExistingFile);
  eval->add_option("--data", ev.data, "dataset directory (with data.jsonl) or JSON-lines file")->required()->check(CLI::ExistingPath);
  eval->add_option("--mode", ev.mode, "grounded (boxes and crops) or direct (one answer turn)")
      ->check(CLI::IsMember({"grounded", "direct"}));
  eval->add_option("--out", ev.out, "output JSON file")->required();
  eval->add_option("--gallery", ev.gallery, "also draw the first items into this PNG");
  eval->add_option("--config", ev.config, "config whose rollout section (max_turns, ...) applies")->check(CLI::ExistingFile);
  eval->add_option("--set", ev.sets, "override a config key: section.key=value (repeatable)");
  eval->add_option("--batch", ev.batch, "questions decoded together")->check(CLI::PositiveNumber);
  eval->add_option("--limit", ev.limit, "evaluate only the first N questions (0 = all)")->check(CLI::NonNegativeNumber);
  eval->add_option("--threads", ev.threads, "LibTorch threads")->check(CLI::PositiveNumber);
  eval->add_option("--forced-box", ev.forced_box,
                   "box-precision probe: give the first turn's box as the evidence box scaled by this factor, then decode one answer turn")
      ->check(CLI::PositiveNumber);
  eval->add_option("--samples", ev.samples,
                   "also sample K trajectories per question (rollout.temperature/top_k/top_p): "
                   "pass@k, sampled accuracy, box choice (summary \"sampled\")")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--seed", ev.seed, "seed of the --samples draws");

  auto* data = app.add_subcommand("data", "benchmark data: write the synthetic benchmark, check a JSON-lines file");
  data->require_subcommand(1);
  std::string check_in;
  std::vector<std::string> prefixes;
  bool check_images = false;
  auto* check = data->add_subcommand("check", "validate a reference-format JSON-lines file; prints a JSON report");
  check->add_option("--in", check_in, "JSON-lines file")->required();
  check->add_option("--image-prefix", prefixes, "rewrite an image path prefix: OLD=NEW (repeatable)");
  check->add_flag("--check-images", check_images, "decode every image and compare its size with the record");

  std::string synth_split = "train", synth_out, synth_config;
  std::vector<std::string> synth_sets;
  int64_t synth_n = 0;
  auto* synth = data->add_subcommand("synth", "write N questions of a benchmark split as images + data.jsonl");
  synth->add_option("--split", synth_split, "train or test")->check(CLI::IsMember({"train", "test"}));
  synth->add_option("--n", synth_n, "number of questions")->required()->check(CLI::PositiveNumber);
  synth->add_option("--out", synth_out, "output directory (data.jsonl, images/)")->required();
  synth->add_option("--config", synth_config, "config whose task section describes the benchmark (default: built-in)")
      ->check(CLI::ExistingFile);
  synth->add_option("--set", synth_sets, "override a config key: task.key=value (repeatable)");

  std::string grid_config;
  std::vector<std::string> grid_sets;
  std::vector<int> grid_cells = {16, 32, 64};
  int grid_locate_items = 200, grid_questions = 500;
  auto* grid = data->add_subcommand(
      "grid", "the best box score location grids of N cells can write for the locate targets and the "
              "test split's evidence (JSON)");
  grid->add_option("--config", grid_config, "config (task and model sections)")->required()->check(CLI::ExistingFile);
  grid->add_option("--cells", grid_cells, "cell counts per axis to compare")
      ->delimiter(',')->check(CLI::Range(1, 4096));
  grid->add_option("--locate-items", grid_locate_items, "held-out locate items (as gr1 report)")
      ->check(CLI::NonNegativeNumber);
  grid->add_option("--questions", grid_questions, "test-split questions")->check(CLI::NonNegativeNumber);
  grid->add_option("--set", grid_sets, "override a config key: section.key=value (repeatable)");

  auto* results = app.add_subcommand("results", "the issue-4 experiment's summary; two evaluations side by side");
  results->require_subcommand(1);
  gr1::ResultsSummarizeCli rs;
  auto* summarize = results->add_subcommand(
      "summarize", "DIR/<arm>.eval.json + checkpoints -> DIR/summary.json (targets, timings) and a table");
  summarize->add_option("--dir", rs.dir, "results directory (orchestration/results.sh writes it)")
      ->required()->check(CLI::ExistingDirectory);
  summarize->add_option("--config", rs.config, "config of the experiment (locate-skill report)")
      ->required()->check(CLI::ExistingFile);
  summarize->add_option("--set", rs.sets, "override a config key: section.key=value (repeatable)");
  summarize->add_option("--locate-items", rs.locate_items, "held-out locate items per checkpoint")
      ->check(CLI::PositiveNumber);
  summarize->add_option("--out", rs.out, "summary file (default DIR/summary.json)");
  std::string compare_base, compare_trained;
  auto* compare = results->add_subcommand("compare", "two gr1 eval outputs side by side");
  compare->add_option("--base", compare_base, "gr1 eval output of the base policy")->required();
  compare->add_option("--trained", compare_trained, "gr1 eval output of the trained policy")->required();

  app.add_subcommand("kernels",
                     "the compute kernels in force (GR1_KERNELS: native or portable), as JSON");

  CLI11_PARSE(app, argc, argv);
  if (app.got_subcommand("kernels")) {
    std::cout << gr1::kernels_json() << "\n";
    return 0;
  }
  if (summarize->parsed()) return gr1::run_results_summarize(rs);
  if (compare->parsed()) return gr1::run_results_compare(compare_base, compare_trained);
  if (score->parsed()) return gr1::run_score(score_in);
  if (grid->parsed()) {
    gr1::Config c;
    if (!load(grid_config, grid_sets, "", 0, &c)) return 2;
    auto rep = gr1::grid_report(c, grid_cells, grid_locate_items, grid_questions);
    if (!rep.ok()) {
      std::cerr << "gr1 data grid: " << rep.error() << "\n";
      return 2;
    }
    std::cout << rep->dump(2) << "\n";
    return 0;
  }
  if (synth->parsed()) {
    gr1::Config c;
    if (!synth_config.empty()) {
      auto cfg = gr1::load_config(synth_config, synth_sets);
      if (!cfg.ok()) {
        std::cerr << "gr1: config error: " << cfg.error() << "\n";
        return 2;
      }
      c = *cfg;
    } else {
      for (const auto& a : synth_sets) {
        if (gr1::Status s = gr1::apply_override(c, a); !s.ok()) {
          std::cerr << "gr1: config error: " << s.message() << "\n";
          return 2;
        }
      }
      if (gr1::Status s = gr1::validate_config(c); !s.ok()) {
        std::cerr << "gr1: config error: " << s.message() << "\n";
        return 2;
      }
    }
    if (gr1::Status s = gr1::write_synthetic_split(c.task, synth_split, synth_n, synth_out); !s.ok()) {
      std::cerr << "gr1 data synth: " << s.message() << "\n";
      return 2;
    }
    std::cout << "wrote " << synth_n << " " << synth_split << " questions to " << synth_out << "/data.jsonl\n";
    return 0;
  }
  if (eval->parsed()) return gr1::run_eval(ev);
  if (check->parsed()) return gr1::run_data_check(check_in, prefixes, check_images);

  gr1::Config cfg;
  if (pretrain->parsed()) {
    if (steps > 0) sets.push_back("pretrain.steps=" + std::to_string(steps));
    if (!load(config_path, sets, run_dir, 0, &cfg)) return 2;
    if (!dp_rank.store_path.empty()) {
      // A rank started by rank 0 below: the config is the same, the world is rank 0's.
      if (dp_rank.world != cfg.pretrain.processes) {
        std::cerr << "gr1 pretrain: --dp-world " << dp_rank.world
                  << " differs from pretrain.processes " << cfg.pretrain.processes << "\n";
        return 2;
      }
      return gr1::run_pretrain(cfg, pretrain_out, dp_rank);
    }
    // One process: run_data_parallel runs rank 0 here and starts nothing.
    gr1::DataParallelRunOptions dpo;
    dpo.world = cfg.pretrain.processes;
    dpo.name_prefix = "pretrain-rank-";
    dpo.child_args = {"pretrain", "--config", config_path, "--out", pretrain_out};
    for (const auto& kv : sets) dpo.child_args.insert(dpo.child_args.end(), {"--set", kv});
    if (!run_dir.empty()) dpo.child_args.insert(dpo.child_args.end(), {"--run-dir", run_dir});
    return gr1::run_data_parallel(
        dpo, [&](const gr1::DataParallelOptions& dp) { return gr1::run_pretrain(cfg, pretrain_out, dp); },
        std::cerr);
  }
  if (report->parsed()) {
    if (!load(config_path, sets, run_dir, 0, &cfg)) return 2;
    gr1::configure_compute_threads(cfg.pretrain.threads);
    auto rep = gr1::pretrain_report(cfg, report_ckpt, report_locate_only);
    if (!rep.ok()) {
      std::cerr << "gr1 report: " << rep.error() << "\n";
      return 2;
    }
    std::cout << rep->dump(2) << "\n";
    return 0;
  }
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
