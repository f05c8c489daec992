// orchestration/results.sh (`make results`) end to end on configs/tests.yaml
// with a few questions and steps: every step runs and is timed (the four
// evaluations, which run in two lanes, each and all together), summary.json
// holds every arm, a second run with other RL settings reuses the cached
// base, and a failing evaluation stops the script naming it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/test_util.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;
using test_util::CliRun;
using test_util::TempDir;
using test_util::free_port;
using test_util::read_text;

// configs/tests.yaml with the bus on free ports (other tests may hold 5711-5713).
std::string test_config(const TempDir& tmp) {
  std::string text = read_text(fs::path(GR1_SOURCE_DIR) / "configs/tests.yaml");
  for (const char* old_port : {"5711", "5712", "5713"}) {
    const std::string from = std::string("127.0.0.1:") + old_port;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), "127.0.0.1:" + std::to_string(free_port()));
  }
  return tmp.write("results_test.yaml", text);
}

CliRun run_results(const TempDir& tmp, const std::string& config, const std::string& bin,
                   const std::string& steps) {
  const std::string cmd = "cd " + std::string(GR1_SOURCE_DIR) + " && GR1_BIN=" + bin +
                          " RESULTS_CONFIG=" + config + " RESULTS_N=8 RESULTS_STEPS=" + steps +
                          " RESULTS_PRETRAIN_STEPS=4 RESULTS_LOCATE_ITEMS=3 RESULTS_DIR=" +
                          (tmp.dir / "results").string() + " RESULTS_CACHE=" +
                          (tmp.dir / "cache").string() + " ./orchestration/results.sh 2>&1";
  return test_util::run_shell(cmd);
}

TEST(ResultsScript, RunsEveryStepEvaluatesInLanesAndStopsOnAFailingEvaluation) {
  TempDir tmp("gr1_results_script");
  const std::string config = test_config(tmp);
  const std::string gr1 = std::string(GR1_BINARY_DIR) + "/bin/gr1";
  // An unknown kernel mode is refused, naming the variable, before any step.
  CliRun bad = test_util::run_shell("cd " + std::string(GR1_SOURCE_DIR) + " && GR1_BIN=" + gr1 +
                                    " RESULTS_CONFIG=" + config + " RESULTS_KERNELS=fastest RESULTS_DIR=" +
                                    (tmp.dir / "bad").string() + " ./orchestration/results.sh 2>&1");
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_NE(bad.out.find("RESULTS_KERNELS must be portable or native (got \"fastest\")"), std::string::npos)
      << bad.out;
  EXPECT_FALSE(fs::exists(tmp.dir / "bad" / "logs")) << "a refused run started";
  CliRun r = run_results(tmp, config, gr1, "2");
  ASSERT_EQ(r.rc, 0) << r.out;
  const fs::path dir = tmp.dir / "results";
  const auto timings = nlohmann::json::parse(read_text(dir / "timings.json"), nullptr, false);
  ASSERT_TRUE(timings.is_object()) << read_text(dir / "timings.json");
  for (const char* step : {"base", "synth", "rl_ground_r1", "rl_direct_grpo", "rl_srpo", "eval_base",
                           "eval_ground_r1", "eval_direct_grpo", "eval_srpo", "evals_wall", "summarize"})
    EXPECT_TRUE(timings.contains(step) && timings[step].is_number()) << step << ": " << timings.dump();
  EXPECT_EQ(timings["base_cached"], false);
  // The machine it ran on: its CPU and core count (the BLAS kernel's name
  // is empty where OpenBLAS does not report one).
  ASSERT_TRUE(timings.contains("machine") && timings["machine"].is_object()) << timings.dump();
  EXPECT_TRUE(timings["machine"]["cpu"].is_string());
  EXPECT_TRUE(timings["machine"]["openblas_core"].is_string());
  EXPECT_GE(timings["machine"]["cores"].get<int>(), 1);
  // ... and the kernels: portable by default (RESULTS_KERNELS), the BLAS
  // kernel the one portable mode names (common/threads.h).
  const auto& kernels = timings["machine"]["kernels"];
  ASSERT_TRUE(kernels.is_object()) << timings.dump();
  EXPECT_EQ(kernels["mode"], "portable");
  EXPECT_EQ(kernels["openblas_core"], "Haswell");
  EXPECT_EQ(timings["machine"]["openblas_core"], "Haswell");
  EXPECT_EQ(kernels["onednn_convolutions"], false);
  const auto summary = nlohmann::json::parse(read_text(dir / "summary.json"), nullptr, false);
  ASSERT_TRUE(summary.is_object());
  for (const char* arm : {"base", "ground_r1", "direct_grpo", "srpo"}) {
    ASSERT_TRUE(summary.contains(arm) && summary[arm].is_object()) << arm;
    EXPECT_EQ(summary[arm]["n"], 8) << arm;
    EXPECT_TRUE(summary[arm]["locate_skill"].is_number()) << arm;
    EXPECT_TRUE(fs::exists(dir / (std::string(arm) + ".gallery.png"))) << arm;
  }
  EXPECT_EQ(summary["direct_grpo"]["mode"], "direct");
  EXPECT_EQ(summary["ground_r1"]["mode"], "grounded");
  // Every pairing matches all 8 questions: the arms were evaluated on one split.
  for (const char* pair : {"ground_r1_vs_base", "srpo_vs_base", "direct_grpo_vs_base",
                           "ground_r1_vs_direct_grpo", "srpo_vs_ground_r1"}) {
    ASSERT_TRUE(summary["paired"][pair].is_object()) << pair << " " << summary["paired"];
    EXPECT_EQ(summary["paired"][pair]["items"], 8) << pair;
    EXPECT_EQ(summary["paired"][pair]["only_in_one"], 0) << pair;
  }

  // Again, with srpo's evaluation failing and the RL-only settings changed
  // (other bus ports, rollout.g1, learner.lr): the cached base is still used,
  // the script stops with exit 1 and names the step and its log's tail.
  std::string rl_changed = read_text(test_config(tmp));
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"  g1: 2\n", "  g1: 1\n"},
                                 {"  lr: 1.0e-3\n", "  lr: 5.0e-4\n"}}) {
    const size_t at = rl_changed.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    rl_changed.replace(at, from.size(), to);
  }
  const std::string config2 = tmp.write("results_test_rl_changed.yaml", rl_changed);
  const std::string wrapper = tmp.write(
      "gr1_failing_srpo_eval.sh",
      "#!/bin/sh\ncase \"$*\" in *srpo/policy.safetensors*) echo 'injected eval failure' >&2; "
      "exit 7;; esac\nexec " + gr1 + " \"$@\"\n");
  fs::permissions(wrapper, fs::perms::owner_all);
  CliRun f = run_results(tmp, config2, wrapper, "1");
  EXPECT_EQ(f.rc, 1) << f.out;
  EXPECT_NE(f.out.find("using the cached base"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("step eval_srpo failed (exit 7)"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("injected eval failure"), std::string::npos) << f.out;
  EXPECT_FALSE(fs::exists(dir / "summary.json")) << "a failed run left a summary";
}

}  // namespace
}  // namespace gr1
