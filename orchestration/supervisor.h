// Process supervisor: the engine of `gr1 launch`.
//
//   start(specs) -> fork/exec each child (own process group, stdout+stderr -> one pipe)
//   wait()       -> poll loop: pipes -> whole lines -> log file (+ "[name] " stream)
//                   child exit -> reaped, recorded, reported by name
//                   essential exit | SIGINT/SIGTERM | request_stop() -> SIGTERM all,
//                   grace, SIGKILL stragglers, reap, drain, return summary
//
// Threads: start(), wait() and the destructor are called from one thread (the
// "owner"), which should outlive the children: children get SIGTERM when the
// thread that forked them exits (PR_SET_PDEATHSIG is per thread on Linux).
// request_stop() and pid() may be called from any thread once start() returned.
// All output (streamed child lines, "[launch] ..." notices) is written by the
// owner thread inside wait(), so lines never interleave.
//
// Children run in their own process group, so a terminal Ctrl-C reaches only
// the launcher, which forwards SIGTERM to each child's group (grandchildren
// included). A second SIGINT/SIGTERM during shutdown SIGKILLs at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace gr1 {

struct ProcessSpec {
  std::string name;               // "learner", "actor-0": used in every report
  std::string role;               // "learner" | "actor" (informational)
  std::vector<std::string> argv;  // argv[0]: path, or a name looked up in PATH
  std::string log_path;           // stdout+stderr appended here, line by line; empty = none
  bool stream_to_terminal = false;  // also write each line to the output sink as "[name] line"
  bool essential = false;           // its exit stops the whole cluster
};

struct SupervisorOptions {
  int grace_ms = 10000;           // SIGTERM -> SIGKILL grace at shutdown
  std::ostream* out = nullptr;    // streamed child lines; nullptr = std::cout
  std::ostream* err = nullptr;    // "[launch] ..." reports; nullptr = std::cerr
  bool handle_signals = true;     // catch SIGINT/SIGTERM from start() until wait() returns
  int kill_timeout_ms = 5000;     // after SIGKILL, how long to wait for the reap before giving up
  int drain_timeout_ms = 500;     // after the last reap, how long to read leftover output
  std::string notice_tag = "launch";  // reports are written as "[<tag>] ..."
};

// How one child ended.
struct ProcessOutcome {
  std::string name;
  std::string role;
  pid_t pid = -1;
  bool reaped = false;          // false: never started (pid -1) or not reaped even after SIGKILL
  bool exited = false;          // true: normal exit with exit_code
  int exit_code = -1;           // valid when exited
  int signal = 0;               // valid when !exited && reaped: the signal that killed it
  bool core_dumped = false;
  bool expected = false;        // exit 0, or after the supervisor asked it to stop
  bool killed_after_grace = false;  // ignored SIGTERM for grace_ms and got SIGKILL

  // Shell-style code: exit_code, or 128 + signal.
  int shell_code() const { return exited ? exit_code : (reaped ? 128 + signal : -1); }
  // "exited with status 3", "killed by signal 9 (SIGKILL)", "not started", "not reaped".
  std::string describe() const;
};

enum class StopReason {
  kNotStarted,        // start() was never called or failed (see outcomes for cleanup)
  kEssentialExited,   // an essential process exited (the normal end of a run)
  kAllExited,         // no essential processes were given and all children exited
  kSignal,            // SIGINT/SIGTERM to this process
  kRequested,         // request_stop()
};

struct SupervisorSummary {
  // 128 + signal when stopped by a signal (130 for Ctrl-C); otherwise the
  // shell_code() of the first essential process that did not exit 0, or 0.
  // 1 when start() failed or was never called.
  int exit_code = 1;
  StopReason reason = StopReason::kNotStarted;
  int stop_signal = 0;                     // for kSignal
  std::string stopped_by;                  // for kEssentialExited: that process's name
  std::vector<ProcessOutcome> processes;   // in spec order

  const ProcessOutcome* find(const std::string& name) const;
};

class Supervisor {
 public:
  explicit Supervisor(SupervisorOptions options = {});
  ~Supervisor();  // if started and not waited: stops and reaps everything (bounded)
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts every spec in order. All-or-nothing: on any failure (bad spec, log
  // file not writable, exec failure such as a missing binary) the children
  // already started are stopped and reaped, and the error names the process
  // and the binary. Call once.
  Status start(const std::vector<ProcessSpec>& specs);

  // Runs the cluster until an essential process exits (or, with none, until
  // all exit), a signal, or request_stop(); then stops and reaps everything.
  // Only the shutdown is bounded: about grace_ms + kill_timeout_ms +
  // drain_timeout_ms. Call once; later calls return the same summary.
  SupervisorSummary wait();

  // Thread-safe and async-signal-safe; returns at once. wait() begins the
  // graceful shutdown. Before wait() starts it is remembered.
  void request_stop();

  // Pid of a started child, -1 if unknown. Thread-safe after start().
  pid_t pid(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Cheap snapshot of /proc/<pid>/stat (one small read).
struct ProcStat {
  char state = '?';          // R, S, D, Z, T, ...
  double cpu_seconds = 0;    // user + system
  int64_t rss_bytes = 0;
  int64_t threads = 0;
};
Result<ProcStat> read_proc_stat(pid_t pid);

// "SIGKILL" for 9 etc.; "SIG<n>" for unknown numbers.
std::string signal_name(int sig);

}  // namespace gr1
