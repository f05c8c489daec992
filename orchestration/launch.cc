#include "orchestration/launch.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "orchestration/supervisor.h"

namespace gr1 {
namespace {

std::vector<std::string> common_args(const LaunchOptions& o) {
  std::vector<std::string> a{"--config", o.config_path};
  for (const auto& s : o.overrides) {
    a.push_back("--set");
    a.push_back(s);
  }
  return a;
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("gr1") : p.string();
}

}  // namespace

std::string actor_name(int index) { return "actor-" + std::to_string(index); }

std::vector<std::string> learner_argv(const std::string& exe, const LaunchOptions& o) {
  std::vector<std::string> a{exe, "learner"};
  for (auto& s : common_args(o)) a.push_back(s);
  return a;
}

std::vector<std::string> actor_argv(const std::string& exe, const LaunchOptions& o, int index) {
  std::vector<std::string> a{exe, "actor", "--id", actor_name(index)};
  for (auto& s : common_args(o)) a.push_back(s);
  return a;
}

int run_launch(const Config& cfg, const LaunchOptions& o) {
  namespace fs = std::filesystem;
  const std::string exe = o.self_exe.empty() ? self_exe() : o.self_exe;
  const fs::path logs = fs::path(cfg.run.run_dir) / "logs";
  std::error_code ec;
  fs::create_directories(logs, ec);
  if (ec) {
    std::cerr << "[launch] cannot create " << logs << ": " << ec.message() << "\n";
    return 1;
  }
  // Children size their own compute pools from the config; keep OpenMP and
  // OpenBLAS from each starting one thread per core before that happens.
  setenv("OMP_NUM_THREADS", "1", 0);
  setenv("OPENBLAS_NUM_THREADS", "1", 0);
  std::vector<ProcessSpec> specs;
  ProcessSpec learner;
  learner.name = "learner";
  learner.role = "learner";
  learner.argv = learner_argv(exe, o);
  learner.log_path = (logs / "learner.log").string();
  learner.stream_to_terminal = true;
  learner.essential = true;
  specs.push_back(learner);
  for (int i = 0; i < o.actors; ++i) {
    ProcessSpec a;
    a.name = actor_name(i);
    a.role = "actor";
    a.argv = actor_argv(exe, o, i);
    a.log_path = (logs / (a.name + ".log")).string();
    a.stream_to_terminal = false;
    a.essential = false;
    specs.push_back(a);
  }
  std::cout << "[launch] run dir " << cfg.run.run_dir << ": learner + " << o.actors
            << " actors (logs in " << logs.string() << ")" << std::endl;
  Supervisor sup(SupervisorOptions{o.grace_ms});
  if (Status s = sup.start(specs); !s.ok()) {
    std::cerr << "[launch] " << s.message() << "\n";
    return 1;
  }
  auto summary = sup.wait();
  std::cout << "[launch] done: exit code " << summary.exit_code << std::endl;
  return summary.exit_code;
}

}  // namespace gr1
