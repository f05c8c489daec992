// `gr1 pretrain` with pretrain.processes: 2 (rank 0 starts rank 1 of the same
// binary) against one process, on configs/tests.yaml.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/config.h"
#include "common/policy.h"
#include "common/tokenizer.h"
#include "tests/test_util.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;

using test_util::CliRun;
using test_util::TempDir;
CliRun gr1(const std::string& args, const TempDir& tmp) { return test_util::run_gr1(args, tmp); }

std::string config() { return std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml"; }

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// The largest |a - b| over the parameters of two checkpoints.
double max_difference(const std::string& a, const std::string& b) {
  auto pa = load_policy(a), pb = load_policy(b);
  EXPECT_TRUE(pa.ok() && pb.ok());
  if (!pa.ok() || !pb.ok()) return 1e9;
  auto nb = pb->policy->named_parameters();
  double m = 0;
  for (const auto& np : pa->policy->named_parameters())
    m = std::max(m, (np.value() - nb[np.key()]).abs().max().item<double>());
  return m;
}

TEST(DataParallelPretrain, TwoRanksTakeTheOneProcessStepsWithoutJitterOrObjectness) {
  TempDir tmp;
  // Without position jitter and the objectness loss every step's gradient is
  // the batch's token-loss gradient, however the batch is shared out.
  const std::string common = "pretrain --config " + config() +
                             " --steps 6 --set pretrain.vision_steps=0 --set pretrain.report_items=0"
                             " --set pretrain.position_jitter=0 --set pretrain.objectness_weight=0"
                             " --set pretrain.log_every=3 --set pretrain.warmup_steps=1";
  const std::string one = (tmp.dir / "one.safetensors").string();
  const std::string two = (tmp.dir / "two.safetensors").string();
  CliRun r1 = gr1(common + " --out " + one, tmp);
  ASSERT_EQ(r1.rc, 0) << r1.err;
  CliRun r2 = gr1(common + " --set pretrain.processes=2 --out " + two, tmp);
  ASSERT_EQ(r2.rc, 0) << r2.out << r2.err;
  EXPECT_NE(r2.out.find("shared out over 2 processes"), std::string::npos) << r2.out;
  // Only rank 0 prints progress: steps 3 and 6, once each.
  EXPECT_EQ(count(r2.out, "pretrain step"), 2) << r2.out;
  EXPECT_EQ(count(r1.out, "pretrain step"), 2) << r1.out;
  EXPECT_NE(r2.err.find("pretrain-rank-1"), std::string::npos) << r2.err;  // its exit, reported

  auto cfg = load_config(config());
  ASSERT_TRUE(cfg.ok()) << cfg.error();
  torch::manual_seed(cfg->run.seed);
  Policy init(cfg->model, Tokenizer::kVocabSize);  // what both runs started from
  const std::string init_path = (tmp.dir / "init.safetensors").string();
  ASSERT_TRUE(save_policy(init_path, init, cfg->model).ok());
  const double moved = max_difference(init_path, one);
  EXPECT_GT(moved, 1e-3);  // training changed the weights...
  EXPECT_LT(max_difference(one, two), 1e-5) << "moved " << moved;  // ...the same way on 2 ranks
}

TEST(DataParallelPretrain, FullRecipeOnTwoRanksEndsInSyncWithAReport) {
  TempDir tmp;
  // Vision stage (gradients averaged), position jitter and the objectness
  // loss: the ranks' steps differ from one process's, but every rank must
  // end with the same weights (checked by the ranks themselves, exit 2).
  const std::string out = (tmp.dir / "base.safetensors").string();
  CliRun r = gr1("pretrain --config " + config() +
                  " --steps 4 --set pretrain.vision_steps=4 --set pretrain.objectness_weight=1"
                  " --set pretrain.processes=2 --set pretrain.report_items=2 --out " + out,
              tmp);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("vision pretrain: "), std::string::npos) << r.out;
  EXPECT_EQ(count(r.out, "vision pretrain: "), 1) << r.out;
  EXPECT_TRUE(fs::exists(out + ".report.json"));
  EXPECT_TRUE(fs::exists(out));
}

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(test_util::read_text(p), nullptr, /*allow_exceptions=*/false);
}

TEST(DataParallelPretrain, TheReportIsSharedOutOverTheRanksAndMatchesOneProcess) {
  TempDir tmp;
  // 7 held-out items per section over 2 ranks: rank 0 measures 4, rank 1
  // measures 3, and the shares are over all 7.
  const std::string out = (tmp.dir / "base.safetensors").string();
  CliRun r = gr1("pretrain --config " + config() +
                     " --steps 6 --set pretrain.vision_steps=0 --set pretrain.processes=2"
                     " --set pretrain.report_items=7 --out " + out,
                 tmp);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const auto two = read_json(out + ".report.json");
  ASSERT_TRUE(two.is_object());
  EXPECT_EQ(two["items"], 7);
  EXPECT_EQ(two["items_per_rank"], nlohmann::json::array({4.0, 3.0})) << two.dump();
  // One process (gr1 report) on the same checkpoint measures all 7 itself;
  // greedy figures are the same whoever measured which item.
  CliRun o = gr1("report --config " + config() + " --checkpoint " + out +
                     " --set pretrain.report_items=7",
                 tmp);
  ASSERT_EQ(o.rc, 0) << o.out << o.err;
  const auto one = nlohmann::json::parse(o.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(one.is_object()) << o.out;
  EXPECT_EQ(one["items_per_rank"], nlohmann::json::array({7.0})) << one.dump();
  for (const char* key : {"locate_box_score", "locate_right_shape_rate", "zoom_read_accuracy",
                          "read_given_box_accuracy", "zoom_read_mc_accuracy",
                          "zoom_read_rel_accuracy", "locate_rel_box_score",
                          "locate_rel_right_shape_rate"}) {
    ASSERT_TRUE(two.contains(key) && one.contains(key)) << key;
    EXPECT_NEAR(two[key].get<double>(), one[key].get<double>(), 1e-9) << key;
  }
  ASSERT_TRUE(two.contains("box_choice_rate"));  // sampled: rank-seeded, not compared
}

TEST(DataParallelPretrain, SigtermEndsEveryRankAndRemovesTheRendezvousDirectory) {
  TempDir tmp;
  const fs::path scratch = tmp.dir / "tmp";  // TMPDIR of the run: where its rendezvous lives
  fs::create_directories(scratch);
  const std::string out = (tmp.dir / "x.safetensors").string();
  // Start a long run, wait until rank 1 has printed its first step's worth
  // (the progress line of rank 0 at step 1), then SIGTERM rank 0.
  const std::string cmd =
      "cd " + tmp.dir.string() + "; TMPDIR=" + scratch.string() + " " + GR1_BINARY_DIR +
      "/bin/gr1 pretrain --config " + config() +
      " --steps 5000 --set pretrain.vision_steps=0 --set pretrain.report_items=0"
      " --set pretrain.log_every=1 --set pretrain.processes=2 --out " + out +
      " > log.txt 2>&1 & pid=$!; "
      "for i in $(seq 1 600); do grep -q 'pretrain step' log.txt && break; sleep 0.1; done; "
      "kill -TERM $pid; wait $pid; echo rc=$?; sleep 1; "
      "pgrep -f '[d]p-store " + scratch.string() + "' > /dev/null && echo left-behind; ls " +
      scratch.string();  // ([d]: this shell's own command line does not match)
  const CliRun r = test_util::run_shell(cmd);
  const std::string log = test_util::read_text(tmp.dir / "log.txt");
  EXPECT_NE(log.find("pretrain step"), std::string::npos) << log;
  EXPECT_NE(r.out.find("rc=143"), std::string::npos) << r.out << log;  // 128 + SIGTERM
  EXPECT_EQ(r.out.find("left-behind"), std::string::npos) << r.out;            // rank 1 is gone
  EXPECT_EQ(r.out.find("gr1-dp-"), std::string::npos) << r.out;                // and the directory
  EXPECT_FALSE(fs::exists(out));
}

TEST(DataParallelPretrain, ABadProcessCountIsAConfigErrorNamingTheKey) {
  TempDir tmp;
  CliRun r = gr1("pretrain --config " + config() + " --set pretrain.processes=0 --out " +
                  (tmp.dir / "x.safetensors").string(),
              tmp);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("pretrain.processes"), std::string::npos) << r.err;
  CliRun w = gr1("pretrain --config " + config() + " --dp-world 3 --dp-rank 1 --dp-store " +
                  (tmp.dir / "s").string() + " --out " + (tmp.dir / "x.safetensors").string(),
              tmp);
  EXPECT_EQ(w.rc, 2);
  EXPECT_NE(w.err.find("--dp-world 3"), std::string::npos) << w.err;
}

}  // namespace
}  // namespace gr1
