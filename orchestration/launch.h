// `gr1 launch`: a local cluster of one learner and N actors as processes.
#pragma once

#include <string>
#include <vector>

#include "common/options.h"

namespace gr1 {

struct LaunchOptions {
  std::string config_path;             // passed to every child
  std::vector<std::string> overrides;  // "section.key=value", passed to every child
  int actors = 2;
  int grace_ms = 10000;                // SIGTERM -> SIGKILL grace at shutdown
  std::string self_exe;                // gr1 binary; empty = /proc/self/exe
};

// Builds the child command lines (exposed for tests).
std::vector<std::string> learner_argv(const std::string& exe, const LaunchOptions& o);
std::vector<std::string> actor_argv(const std::string& exe, const LaunchOptions& o, int index);
std::string actor_name(int index);  // "actor-<index>"

// Starts the learner (streamed to stdout, logged to <run_dir>/logs/learner.log)
// and N actors (logged to <run_dir>/logs/actor-<i>.log), runs until the
// learner exits or Ctrl-C, then stops everything cleanly. An actor that dies
// is reported by name; training goes on with the others. Returns the
// learner's exit code (130 on Ctrl-C).
int run_launch(const Config& cfg, const LaunchOptions& o);

}  // namespace gr1
