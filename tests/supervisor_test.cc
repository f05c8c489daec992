// Supervisor tests: real child processes (/bin/sh -c scripts). Timeouts here
// are hang guards only; no test asserts how long anything took.
#include "orchestration/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace gr1 {
namespace {

namespace fs = std::filesystem;

// Aborts the test binary (a failure, not a hang) if a test runs far too long.
class HangGuard {
 public:
  explicit HangGuard(std::chrono::seconds limit = std::chrono::seconds(120))
      : thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "hang guard: test still running after %lld s\n",
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~HangGuard() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gr1_supervisor_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Shell snippet that waits until `file` exists.
  std::string await(const std::string& file) const {
    return "while [ ! -e " + path(file) + " ]; do sleep 0.02; done; ";
  }
  // Shell snippet: loop forever (until signalled).
  static std::string forever() { return "while :; do sleep 0.05; done"; }

  static ProcessSpec sh(const std::string& name, const std::string& script, bool essential) {
    ProcessSpec s;
    s.name = name;
    s.role = essential ? "learner" : "actor";
    s.argv = {"/bin/sh", "-c", script};
    s.essential = essential;
    return s;
  }

  SupervisorOptions options(int grace_ms = 10000) {
    SupervisorOptions o;
    o.grace_ms = grace_ms;
    o.out = &out_;
    o.err = &err_;
    o.handle_signals = false;
    return o;
  }

  static std::string slurp(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  static void wait_for_file(const std::string& p) {
    while (!fs::exists(p)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  static bool process_gone(pid_t pid) {
    Result<ProcStat> st = read_proc_stat(pid);
    return !st.ok() || st->state == 'Z' || st->state == 'X';
  }

  fs::path dir_;
  std::ostringstream out_, err_;
  HangGuard guard_;
};

TEST_F(SupervisorTest, EssentialExitEndsRunAndSigtermsTheOthers) {
  Supervisor sup(options());
  ASSERT_TRUE(sup.start({
      sh("learner", await("ready") + "exit 0", true),
      sh("actor-0", "trap 'echo got-term > " + path("term") + "; exit 0' TERM; touch " +
                        path("ready") + "; " + forever(), false),
  }).ok());
  SupervisorSummary s = sup.wait();

  EXPECT_EQ(s.exit_code, 0);
  EXPECT_EQ(s.reason, StopReason::kEssentialExited);
  EXPECT_EQ(s.stopped_by, "learner");
  EXPECT_EQ(slurp(path("term")), "got-term\n");  // the actor's TERM trap ran
  const ProcessOutcome* actor = s.find("actor-0");
  ASSERT_NE(actor, nullptr);
  EXPECT_TRUE(actor->reaped);
  EXPECT_TRUE(actor->exited);
  EXPECT_EQ(actor->exit_code, 0);
  EXPECT_TRUE(actor->expected);
  EXPECT_FALSE(actor->killed_after_grace);
  EXPECT_EQ(err_.str().find("died"), std::string::npos) << err_.str();
}

TEST_F(SupervisorTest, KilledActorIsReportedByNameAndLearnerRunsToCompletion) {
  Supervisor sup(options());
  ASSERT_TRUE(sup.start({
      sh("learner", await("actor1_started") + "sleep 0.3; echo learner-done; exit 0", true),
      sh("actor-0", forever(), false),
      sh("actor-1", "touch " + path("actor1_started") + "; kill -9 $$", false),
  }).ok());
  const pid_t actor1 = sup.pid("actor-1");
  SupervisorSummary s = sup.wait();

  const std::string report = "[launch] actor-1 (pid " + std::to_string(actor1) +
                             ") died: killed by signal 9 (SIGKILL)";
  EXPECT_NE(err_.str().find(report), std::string::npos) << err_.str();
  const ProcessOutcome* a1 = s.find("actor-1");
  ASSERT_NE(a1, nullptr);
  EXPECT_EQ(a1->pid, actor1);
  EXPECT_FALSE(a1->exited);
  EXPECT_EQ(a1->signal, SIGKILL);
  EXPECT_FALSE(a1->expected);

  // The learner was not stopped: it finished its script and exited 0.
  const ProcessOutcome* l = s.find("learner");
  ASSERT_NE(l, nullptr);
  EXPECT_TRUE(l->exited);
  EXPECT_EQ(l->exit_code, 0);
  EXPECT_TRUE(l->expected);
  EXPECT_EQ(s.reason, StopReason::kEssentialExited);
  EXPECT_EQ(s.exit_code, 0);
  // The surviving actor was stopped at the end, as expected.
  const ProcessOutcome* a0 = s.find("actor-0");
  ASSERT_NE(a0, nullptr);
  EXPECT_TRUE(a0->reaped);
  EXPECT_TRUE(a0->expected);
}

TEST_F(SupervisorTest, ChildIgnoringSigtermIsKilledAfterGrace) {
  Supervisor sup(options(/*grace_ms=*/300));
  ASSERT_TRUE(sup.start({
      sh("learner", await("ready") + "exit 0", true),
      sh("actor-0", "trap '' TERM; touch " + path("ready") + "; " + forever(), false),
  }).ok());
  SupervisorSummary s = sup.wait();

  const ProcessOutcome* a = s.find("actor-0");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->reaped);
  EXPECT_FALSE(a->exited);
  EXPECT_EQ(a->signal, SIGKILL);
  EXPECT_TRUE(a->killed_after_grace);
  EXPECT_TRUE(a->expected);
  EXPECT_NE(err_.str().find("actor-0 (pid " + std::to_string(a->pid) +
                            ") did not stop within 300 ms of SIGTERM; sending SIGKILL"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(s.exit_code, 0);
}

TEST_F(SupervisorTest, OutputLinesGoToLogFileAndPrefixedStream) {
  {
    std::ofstream pre(path("learner.log"));
    pre << "old\n";  // logs are appended to, never truncated
  }
  ProcessSpec learner = sh("learner",
                           await("actor_done") +
                               "echo hello; echo to-stderr >&2; printf 'no-newline'; exit 0",
                           true);
  learner.log_path = path("learner.log");
  learner.stream_to_terminal = true;
  ProcessSpec actor = sh("actor-0", "echo actor-line; touch " + path("actor_done"), false);
  actor.log_path = path("actor-0.log");
  actor.stream_to_terminal = false;

  Supervisor sup(options());
  ASSERT_TRUE(sup.start({learner, actor}).ok());
  SupervisorSummary s = sup.wait();
  EXPECT_EQ(s.exit_code, 0);

  const std::string out = out_.str();
  EXPECT_NE(out.find("[learner] hello\n"), std::string::npos) << out;
  EXPECT_NE(out.find("[learner] to-stderr\n"), std::string::npos) << out;
  EXPECT_NE(out.find("[learner] no-newline\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("actor-line"), std::string::npos) << out;  // not streamed
  // The log may end with the supervisor's own "[launch] learner ... exited" line.
  EXPECT_EQ(slurp(path("learner.log")).rfind("old\nhello\nto-stderr\nno-newline\n", 0), 0u)
      << slurp(path("learner.log"));
  EXPECT_EQ(slurp(path("actor-0.log")).rfind("actor-line\n", 0), 0u);
}

TEST_F(SupervisorTest, LongLinesFromConcurrentChildrenNeverInterleave) {
  const int kLines = 40;
  const std::string la(5000, 'a'), lb(5000, 'b');  // longer than PIPE_BUF
  auto writer = [&](const std::string& name, const std::string& line) {
    ProcessSpec p = sh(name,
                       "i=0; while [ $i -lt " + std::to_string(kLines) + " ]; do printf '%s\\n' " +
                           line + "; i=$((i+1)); done",
                       false);
    p.stream_to_terminal = true;
    return p;
  };
  Supervisor sup(options());
  ASSERT_TRUE(sup.start({writer("a", la), writer("b", lb)}).ok());
  SupervisorSummary s = sup.wait();  // no essential process: ends when all exited
  EXPECT_EQ(s.reason, StopReason::kAllExited);
  EXPECT_EQ(s.exit_code, 0);

  std::istringstream in(out_.str());
  int na = 0, nb = 0;
  for (std::string line; std::getline(in, line);) {
    if (line == "[a] " + la) {
      ++na;
    } else if (line == "[b] " + lb) {
      ++nb;
    } else {
      ADD_FAILURE() << "mixed or damaged line: " << line.substr(0, 80) << "...";
    }
  }
  EXPECT_EQ(na, kLines);
  EXPECT_EQ(nb, kLines);
}

TEST_F(SupervisorTest, MissingBinaryIsANamedErrorAndStartedProcessesAreStopped) {
  ProcessSpec bad;
  bad.name = "actor-3";
  bad.role = "actor";
  bad.argv = {"/nonexistent/dir/gr1-no-such-binary", "--flag"};
  Supervisor sup(options());
  Status st = sup.start({sh("learner", forever(), true), bad});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("actor-3"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("/nonexistent/dir/gr1-no-such-binary"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("No such file"), std::string::npos) << st.message();

  // The learner that did start was stopped and reaped (no orphan, no zombie).
  SupervisorSummary s = sup.wait();
  EXPECT_EQ(s.reason, StopReason::kNotStarted);
  EXPECT_NE(s.exit_code, 0);
  const ProcessOutcome* l = s.find("learner");
  ASSERT_NE(l, nullptr);
  ASSERT_GT(l->pid, 0);
  EXPECT_TRUE(l->reaped);
  EXPECT_TRUE(l->expected);
  EXPECT_EQ(::kill(l->pid, 0), -1);
}

TEST_F(SupervisorTest, BinaryMissingFromPathIsANamedError) {
  ProcessSpec bad;
  bad.name = "learner";
  bad.argv = {"gr1-no-such-binary-in-path"};
  bad.essential = true;
  Supervisor sup(options());
  Status st = sup.start({bad});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("learner"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("gr1-no-such-binary-in-path"), std::string::npos) << st.message();
}

TEST_F(SupervisorTest, RequestStopFromAnotherThreadStopsEverything) {
  Supervisor sup(options());
  ASSERT_TRUE(sup.start({
      sh("learner", "trap 'echo stopped > " + path("learner_term") + "; exit 0' TERM; touch " +
                        path("ready") + "; " + forever(), true),
      sh("actor-0", "trap 'echo stopped > " + path("actor_term") + "; exit 0' TERM; " + forever(),
         false),
  }).ok());
  std::thread stopper([&] {
    wait_for_file(path("ready"));
    sup.request_stop();
  });
  SupervisorSummary s = sup.wait();
  stopper.join();

  EXPECT_EQ(s.reason, StopReason::kRequested);
  EXPECT_EQ(s.exit_code, 0);  // the learner handled SIGTERM and exited 0
  EXPECT_EQ(slurp(path("learner_term")), "stopped\n");
  for (const auto& p : s.processes) {
    EXPECT_TRUE(p.reaped) << p.name;
    EXPECT_TRUE(p.expected) << p.name;
    EXPECT_FALSE(p.killed_after_grace) << p.name;
  }
}

TEST_F(SupervisorTest, SigintToLauncherStopsChildrenAndReturns130) {
  SupervisorOptions o = options();
  o.handle_signals = true;
  Supervisor sup(o);
  ASSERT_TRUE(sup.start({
      sh("learner", "trap 'echo stopped > " + path("learner_term") + "; exit 0' TERM; touch " +
                        path("ready") + "; " + forever(), true),
      sh("actor-0", forever(), false),
  }).ok());
  std::thread ctrl_c([&] {
    wait_for_file(path("ready"));
    ::kill(::getpid(), SIGINT);  // handled by the supervisor, not fatal to this test
  });
  SupervisorSummary s = sup.wait();
  ctrl_c.join();

  EXPECT_EQ(s.reason, StopReason::kSignal);
  EXPECT_EQ(s.stop_signal, SIGINT);
  EXPECT_EQ(s.exit_code, 130);
  EXPECT_EQ(slurp(path("learner_term")), "stopped\n");  // forwarded as SIGTERM
  for (const auto& p : s.processes) EXPECT_TRUE(p.reaped) << p.name;
}

TEST_F(SupervisorTest, FailingLearnerGivesItsExitCodeAndIsReported) {
  Supervisor sup(options());
  ASSERT_TRUE(sup.start({sh("learner", "exit 3", true), sh("actor-0", forever(), false)}).ok());
  const pid_t learner = sup.pid("learner");
  SupervisorSummary s = sup.wait();
  EXPECT_EQ(s.exit_code, 3);
  EXPECT_NE(err_.str().find("[launch] learner (pid " + std::to_string(learner) +
                            ") died: exited with status 3"),
            std::string::npos)
      << err_.str();
  ASSERT_NE(s.find("actor-0"), nullptr);
  EXPECT_TRUE(s.find("actor-0")->reaped);
}

TEST_F(SupervisorTest, StopReachesGrandchildren) {
  Supervisor sup(options());
  ASSERT_TRUE(sup.start({
      sh("learner", await("gc_pid") + "exit 0", true),
      sh("actor-0", "sleep 1000 & echo $! > " + path("gc_pid.tmp") + "; mv " + path("gc_pid.tmp") +
                        " " + path("gc_pid") + "; wait", false),
  }).ok());
  sup.wait();
  const pid_t gc = static_cast<pid_t>(std::stol(slurp(path("gc_pid"))));
  ASSERT_GT(gc, 0);
  for (int i = 0; i < 1500 && !process_gone(gc); ++i)  // generous hang guard, not a limit
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(process_gone(gc)) << "grandchild " << gc << " outlived the run";
}

TEST(ProcStatTest, ReadsOwnProcess) {
  Result<ProcStat> st = read_proc_stat(::getpid());
  ASSERT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(st->state, 'R');
  EXPECT_GE(st->threads, 1);
  EXPECT_GT(st->rss_bytes, 0);
  EXPECT_FALSE(read_proc_stat(-5).ok());
}

}  // namespace
}  // namespace gr1
