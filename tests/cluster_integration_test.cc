// A learner and two actors as real processes over loopback TCP (gr1 launch).
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/config.h"
#include "common/task.h"
#include "tests/scripted_policy.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace {

using gr1::test_util::free_port;
using gr1::test_util::read_text;

struct Cluster {
  fs::path dir;
  std::string endpoints[3];
  std::string cmd(int actors, int steps) const {
    std::ostringstream c;
    c << GR1_BINARY_DIR << "/bin/gr1 launch --config " << GR1_SOURCE_DIR << "/configs/tests.yaml"
      << " --actors " << actors << " --steps " << steps << " --run-dir " << dir.string()
      << " --set bus.control_endpoint=" << endpoints[0]
      << " --set bus.trajectory_endpoint=" << endpoints[1]
      << " --set bus.weights_endpoint=" << endpoints[2];
    return c.str();
  }
};

Cluster make_cluster(const std::string& name) {
  Cluster c;
  c.dir = fs::temp_directory_path() / ("gr1-it-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(c.dir);
  for (auto& e : c.endpoints) e = "tcp://127.0.0.1:" + std::to_string(free_port());
  return c;
}

std::vector<nlohmann::json> read_metrics(const fs::path& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Runs `cmd`, returns (exit status, combined output).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), f)) out += buf.data();
  int st = pclose(f);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(ClusterIntegrationTest, LearnerAndTwoActorsTrainAndWriteTheRunContract) {
  Cluster c = make_cluster("basic");
  // Meanwhile a hostile peer sends garbage to the learner's sockets: it must
  // be rejected and counted, and training must go on.
  std::atomic<bool> done{false};
  std::thread noise([&] {
    zmq::context_t ctx;
    zmq::socket_t push(ctx, zmq::socket_type::push);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    push.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::routing_id, "intruder");
    push.connect(c.endpoints[1]);
    dealer.connect(c.endpoints[0]);
    for (int i = 0; i < 20 && !done; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::string junk = "not a flatbuffer " + std::to_string(i);
      (void)push.send(zmq::buffer(junk), zmq::send_flags::dontwait);
      (void)dealer.send(zmq::buffer(junk), zmq::send_flags::dontwait);
    }
  });
  // Intermediate checkpoints every 2 steps as well as the final one.
  auto [code, out] = run(c.cmd(2, 4) + " --set learner.checkpoint_every=2");
  done = true;
  noise.join();
  ASSERT_EQ(code, 0) << out;

  auto m = read_metrics(c.dir);
  ASSERT_EQ(m.size(), 4u) << out;
  std::set<std::string> contributors;
  for (size_t i = 0; i < m.size(); ++i) {
    for (const char* k : {"step", "weights_version", "wall_s", "groups", "trajectories", "actor_ids",
                          "reward_mean", "format_reward_mean", "accuracy_reward_mean",
                          "box_score_mean", "loss", "kl", "max_staleness", "learner_wait_frac",
                          "rollouts_per_s", "tokens_per_s", "rejected_messages"})
      EXPECT_TRUE(m[i].contains(k)) << "missing " << k << " in " << m[i].dump();
    EXPECT_EQ(m[i]["step"].get<int>(), static_cast<int>(i + 1));
    EXPECT_EQ(m[i]["weights_version"].get<int>(), static_cast<int>(i + 1));
    EXPECT_EQ(m[i]["groups"].get<int>(), 2);
    EXPECT_EQ(m[i]["trajectories"].get<int>(), 2 * 2 * 2);  // groups x g1 x g2 (tests.yaml)
    EXPECT_LE(m[i]["max_staleness"].get<int>(), 4);
    EXPECT_GT(m[i]["rollouts_per_s"].get<double>(), 0.0);
    for (const auto& id : m[i]["actor_ids"]) contributors.insert(id.get<std::string>());
    if (i > 0) {
      EXPECT_GE(m[i]["rejected_messages"].get<int>(), m[i - 1]["rejected_messages"].get<int>());
    }
  }
  for (const auto& id : contributors) EXPECT_TRUE(id == "actor-0" || id == "actor-1") << id;
  EXPECT_FALSE(contributors.empty());

  const std::string cfg = read_text(c.dir / "config.yaml");
  for (const auto& e : c.endpoints) EXPECT_NE(cfg.find(e), std::string::npos) << cfg;
  EXPECT_TRUE(fs::exists(c.dir / "policy.safetensors"));
  std::set<std::string> ckpts;
  for (const auto& e : fs::directory_iterator(c.dir / "checkpoints")) ckpts.insert(e.path().filename());
  EXPECT_EQ(ckpts, (std::set<std::string>{"step_000002.safetensors", "step_000004.safetensors"}));
  // Step 4's checkpoint is the final policy; step 2's has the same layout.
  const std::string last = read_text(c.dir / "policy.safetensors");
  ASSERT_FALSE(last.empty());
  EXPECT_TRUE(read_text(c.dir / "checkpoints" / "step_000004.safetensors") == last);
  EXPECT_EQ(read_text(c.dir / "checkpoints" / "step_000002.safetensors").size(), last.size());
  const std::string llog = read_text(c.dir / "logs" / "learner.log");
  EXPECT_NE(llog.find("actor-0 registered"), std::string::npos) << llog;
  EXPECT_NE(llog.find("actor-1 registered"), std::string::npos) << llog;
  // The garbage was seen and rejected (if it arrived before the end).
  if (llog.find("rejected") != std::string::npos) {
    EXPECT_GT(m.back()["rejected_messages"].get<int>(), 0);
  }
  fs::remove_all(c.dir);
}

TEST(ClusterIntegrationTest, KilledActorIsReportedByNameAndTrainingGoesOn) {
  Cluster c = make_cluster("kill");
  const std::string cmd = c.cmd(2, 8);
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  ASSERT_NE(f, nullptr);
  // Kill actor-0 with SIGKILL as soon as the first step is logged.
  std::thread killer([&] {
    for (int i = 0; i < 600; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (read_metrics(c.dir).size() >= 1) break;
    }
    const std::string pk = "pkill -KILL -f 'gr1 actor --id actor-0 .*" + c.dir.string() + "'";
    (void)std::system(pk.c_str());
  });
  std::array<char, 4096> buf;
  while (fgets(buf.data(), buf.size(), f)) out += buf.data();
  const int st = pclose(f);
  killer.join();
  ASSERT_TRUE(WIFEXITED(st)) << out;
  EXPECT_EQ(WEXITSTATUS(st), 0) << out;
  EXPECT_NE(out.find("actor-0"), std::string::npos);
  EXPECT_NE(out.find("died"), std::string::npos) << out;
  auto m = read_metrics(c.dir);
  ASSERT_EQ(m.size(), 8u) << out;  // all steps done with the survivor
  // The last steps come from actor-1 only.
  for (const auto& id : m.back()["actor_ids"]) EXPECT_EQ(id.get<std::string>(), "actor-1");
  fs::remove_all(c.dir);
}

// learner.reproducible: the same run gives the same policy, bit for bit,
// with one actor, with three, and with two of which one is killed mid-run
// (its prompts are rolled out again by the survivor, with the weights
// version each prompt names). The runs start from a policy fitted to a
// script (a box turn, a crop, an answer), so sampled rewards differ within a
// group and every step moves the weights: a random policy earns no reward and
// would leave every run at its start.
TEST(ClusterIntegrationTest, ReproducibleRunIsTheSameWithOneThreeOrAKilledActor) {
  const int steps = 6;
  auto loaded = gr1::load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  gr1::Config cfg = *loaded;
  cfg.model.max_seq_len = 1024;  // room for the script's two turns
  cfg.rollout.max_new_tokens = 24;
  cfg.rollout.max_turns = 3;
  std::vector<gr1::Sample> samples;
  gr1::SyntheticTask task(cfg.task);
  for (int p = 0; p < steps * cfg.learner.groups_per_step; ++p) samples.push_back(task.get(p));
  const fs::path init = fs::temp_directory_path() / ("gr1-it-exact-init-" + std::to_string(getpid()) + ".safetensors");
  {
    gr1::Policy policy = gr1::testing::fit_scripted_policy(cfg.model, cfg.rollout, samples);
    ASSERT_TRUE(gr1::save_policy(init.string(), policy, cfg.model).ok());
  }
  const std::string start = read_text(init);

  struct Run {
    std::string name;
    int actors;
    bool kill;
  };
  std::vector<std::string> policies;
  std::vector<std::vector<nlohmann::json>> metrics;
  for (const Run& r : {Run{"one", 1, false}, Run{"three", 3, false}, Run{"killed", 2, true}}) {
    Cluster c = make_cluster("exact-" + r.name);
    const std::string cmd = c.cmd(r.actors, steps) + " --set learner.reproducible=true" +
                            " --set learner.init_checkpoint=" + init.string() +
                            " --set model.max_seq_len=1024 --set rollout.max_new_tokens=24" +
                            " --set rollout.max_turns=3";
    std::thread killer;
    if (r.kill)
      killer = std::thread([&] {
        for (int i = 0; i < 600 && read_metrics(c.dir).size() < 2; ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const std::string pk = "pkill -KILL -f 'gr1 actor --id actor-0 .*" + c.dir.string() + "'";
        (void)std::system(pk.c_str());
      });
    auto [code, out] = run(cmd);
    if (killer.joinable()) killer.join();
    ASSERT_EQ(code, 0) << r.name << "\n" << out;
    if (r.kill) EXPECT_NE(out.find("died"), std::string::npos) << out;
    policies.push_back(read_text(c.dir / "policy.safetensors"));
    metrics.push_back(read_metrics(c.dir));
    ASSERT_EQ(metrics.back().size(), static_cast<size_t>(steps)) << r.name << "\n" << out;
    fs::remove_all(c.dir);
  }
  fs::remove(init);
  ASSERT_FALSE(policies[0].empty());
  EXPECT_EQ(policies[0].size(), start.size());
  EXPECT_FALSE(policies[0] == start) << "training left the policy unchanged: the test shows nothing";
  EXPECT_TRUE(policies[1] == policies[0]) << "three actors gave another policy than one";
  EXPECT_TRUE(policies[2] == policies[0]) << "a killed actor changed the policy";
  double grad = 0;
  for (const auto& m : metrics[0]) grad += m["grad_norm"].get<double>();
  EXPECT_GT(grad, 0.0);
  for (size_t run = 0; run < metrics.size(); ++run)
    for (int i = 0; i < steps; ++i) {
      const auto& m = metrics[run][i];
      const auto& ref = metrics[0][i];
      EXPECT_TRUE(m["reproducible"].get<bool>());
      // tests.yaml: two groups per step, prompts in order.
      EXPECT_EQ(m["prompts"], nlohmann::json::array({2 * i, 2 * i + 1})) << m.dump();
      EXPECT_EQ(m["inexact_groups"].get<int>(), 0) << m.dump();
      EXPECT_EQ(m["max_staleness"].get<int>(), i == 0 ? 0 : 1) << m.dump();
      for (const char* k : {"reward_mean", "format_reward_mean", "accuracy_reward_mean", "loss", "kl",
                            "grad_norm"})
        EXPECT_EQ(m[k], ref[k]) << "run " << run << " step " << i + 1 << " " << k;
    }
}

}  // namespace
