#include "orchestration/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

extern char** environ;

namespace gr1 {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxLine = 64 * 1024;          // longer lines are split
constexpr size_t kMaxReadPerPump = 256 * 1024;  // per child, keeps the loop fair
constexpr int kExecReportTimeoutMs = 10000;     // child must exec or report within this

// --- signal plumbing: the handler only writes the signal number to a pipe ---
std::atomic<int> g_signal_fd{-1};

void on_signal(int sig) {
  const int saved = errno;
  const int fd = g_signal_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    unsigned char b = static_cast<unsigned char>(sig);
    ssize_t r = ::write(fd, &b, 1);
    (void)r;
  }
  errno = saved;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int ms_until(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return d < 0 ? 0 : static_cast<int>(d);
}

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#endif
  return -1;  // old kernel or seccomp: fall back to timed waitpid polling
}

// argv[0] with a '/' is used as is; otherwise searched in PATH like execvp,
// but here in the parent (execvp is not async-signal-safe after fork).
Result<std::string> resolve_binary(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return prog;
  const char* env = std::getenv("PATH");
  std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string cand = (dir.empty() ? std::string(".") : dir) + "/" + prog;
    struct stat st;
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0)
      return cand;
  }
  return Result<std::string>::Error("'" + prog + "' not found in PATH");
}

}  // namespace

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGCHLD: return "SIGCHLD";
    case SIGCONT: return "SIGCONT";
    case SIGSTOP: return "SIGSTOP";
    case SIGTSTP: return "SIGTSTP";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default: return "SIG" + std::to_string(sig);
  }
}

std::string ProcessOutcome::describe() const {
  if (pid < 0) return "not started";
  if (!reaped) return "not reaped";
  if (exited) return "exited with status " + std::to_string(exit_code);
  if (signal == 0) return "exit status unknown (reaped elsewhere)";
  std::string s = "killed by signal " + std::to_string(signal) + " (" + signal_name(signal) + ")";
  if (core_dumped) s += ", core dumped";
  return s;
}

const ProcessOutcome* SupervisorSummary::find(const std::string& name) const {
  for (const auto& p : processes)
    if (p.name == name) return &p;
  return nullptr;
}

// ---------------------------------------------------------------------------

struct Supervisor::Impl {
  struct Child {
    ProcessSpec spec;
    pid_t pid = -1;
    int out_fd = -1;   // read end of the child's stdout+stderr pipe (non-blocking)
    int log_fd = -1;   // O_APPEND
    int pidfd = -1;    // readable when the child exits; -1 if unsupported
    bool running = false;
    bool term_sent = false;
    bool log_broken = false;
    std::string partial;  // bytes after the last newline
    ProcessOutcome outcome;
  };

  enum class Phase { kIdle, kRun, kStopping, kDone };

  SupervisorOptions opt;
  std::vector<Child> children;  // never resized after start() returns
  int wake_r = -1, wake_w = -1;
  int sig_r = -1, sig_w = -1;
  bool own_signals = false;
  struct sigaction old_int {}, old_term {};
  std::atomic<bool> stop_requested{false};
  Phase phase = Phase::kIdle;
  bool kill_now = false;  // second signal during shutdown
  bool streamed = false;  // something was written to out() since the last flush
  SupervisorSummary summary;
  bool waited = false;

  explicit Impl(SupervisorOptions o) : opt(std::move(o)) {}

  std::ostream& out() { return opt.out ? *opt.out : std::cout; }
  std::ostream& err() { return opt.err ? *opt.err : std::cerr; }

  void notice(Child* c, const std::string& msg) {
    err() << "[" << opt.notice_tag << "] " << msg << std::endl;
    if (c && c->log_fd >= 0 && !c->log_broken) {
      std::string l = "[" + opt.notice_tag + "] " + msg + "\n";
      write_all(c->log_fd, l.data(), l.size());
    }
  }

  std::string who(const Child& c) const {
    return c.spec.name + " (pid " + std::to_string(c.pid) + ")";
  }

  // --- signals ---
  void install_signals() {
    if (!opt.handle_signals) return;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
    int expected = -1;
    if (!g_signal_fd.compare_exchange_strong(expected, fds[1])) {
      ::close(fds[0]);  // another Supervisor owns the process's signals
      ::close(fds[1]);
      return;
    }
    sig_r = fds[0];
    sig_w = fds[1];
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
    own_signals = true;
  }

  void uninstall_signals() {
    if (!own_signals) return;
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    g_signal_fd.store(-1);
    own_signals = false;
    close_fd(sig_r);
    close_fd(sig_w);
  }

  // --- spawning ---
  Status spawn(Child& c) {
    const ProcessSpec& s = c.spec;
    const std::string pre = "cannot start " + s.name + ": ";
    Result<std::string> exe = resolve_binary(s.argv[0]);
    if (!exe.ok()) return Status::Error(pre + exe.error());

    if (!s.log_path.empty()) {
      c.log_fd = ::open(s.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (c.log_fd < 0)
        return Status::Error(pre + "cannot open log file '" + s.log_path + "': " + std::strerror(errno));
    }
    int outp[2], errp[2];
    if (::pipe2(outp, O_CLOEXEC) != 0)
      return Status::Error(pre + "pipe: " + std::strerror(errno));
    if (::pipe2(errp, O_CLOEXEC) != 0) {
      int e = errno;
      ::close(outp[0]);
      ::close(outp[1]);
      return Status::Error(pre + "pipe: " + std::strerror(e));
    }
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

    // Everything the child needs is prepared before fork: after fork only
    // async-signal-safe calls are made.
    std::vector<char*> argv;
    for (const auto& a : s.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const char* path = exe->c_str();
    const pid_t parent = ::getpid();

    // Block signals across fork so our handler never runs in the child.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // launcher already gone
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      ::sigaction(SIGTERM, &dfl, nullptr);
      ::sigaction(SIGINT, &dfl, nullptr);
      ::sigaction(SIGPIPE, &dfl, nullptr);
      sigset_t none;
      sigemptyset(&none);
      ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(outp[1], 1);
      ::dup2(outp[1], 2);
#if defined(SYS_close_range) && defined(CLOSE_RANGE_CLOEXEC)
      ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);  // don't leak the launcher's fds
#endif
      ::execve(path, argv.data(), environ);
      int e = errno;
      ssize_t w = ::write(errp[1], &e, sizeof e);
      (void)w;
      ::_exit(127);
    }
    const int fork_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    ::close(outp[1]);
    ::close(errp[1]);
    if (devnull >= 0) ::close(devnull);
    if (pid < 0) {
      ::close(outp[0]);
      ::close(errp[0]);
      return Status::Error(pre + "fork: " + std::strerror(fork_errno));
    }
    ::setpgid(pid, pid);  // also done in the child; whichever runs first wins
    c.pid = pid;
    c.running = true;
    c.out_fd = outp[0];
    ::fcntl(c.out_fd, F_SETFL, ::fcntl(c.out_fd, F_GETFL) | O_NONBLOCK);
    c.pidfd = open_pidfd(pid);
    c.outcome.pid = pid;

    // The error pipe closes on a successful exec, or carries exec's errno.
    int exec_errno = 0;
    pollfd pfd{errp[0], POLLIN, 0};
    int pr;
    do {
      pr = ::poll(&pfd, 1, kExecReportTimeoutMs);
    } while (pr < 0 && errno == EINTR);
    if (pr == 0) {
      exec_errno = ETIMEDOUT;
    } else {
      ssize_t r;
      do {
        r = ::read(errp[0], &exec_errno, sizeof exec_errno);
      } while (r < 0 && errno == EINTR);
      if (r != static_cast<ssize_t>(sizeof exec_errno)) exec_errno = 0;
    }
    ::close(errp[0]);
    if (exec_errno != 0) {
      c.term_sent = true;  // its end is our doing from here on
      return Status::Error(pre + "cannot execute '" + *exe + "': " + std::strerror(exec_errno));
    }
    return Status::Ok();
  }

  // --- output ---
  void emit_line(Child& c, std::string_view line) {
    if (c.log_fd >= 0 && !c.log_broken) {
      std::string l(line);
      l.push_back('\n');
      if (!write_all(c.log_fd, l.data(), l.size())) {
        c.log_broken = true;
        notice(nullptr, "cannot write log file '" + c.spec.log_path + "' of " + c.spec.name + ": " +
                            std::strerror(errno));
      }
    }
    if (c.spec.stream_to_terminal) {
      out() << '[' << c.spec.name << "] " << line << '\n';
      streamed = true;
    }
  }

  void consume(Child& c, const char* data, size_t n) {
    c.partial.append(data, n);
    size_t start = 0;
    for (;;) {
      size_t nl = c.partial.find('\n', start);
      if (nl == std::string::npos) break;
      emit_line(c, std::string_view(c.partial).substr(start, nl - start));
      start = nl + 1;
    }
    while (c.partial.size() - start >= kMaxLine) {
      emit_line(c, std::string_view(c.partial).substr(start, kMaxLine));
      start += kMaxLine;
    }
    c.partial.erase(0, start);
  }

  void close_output(Child& c) {
    if (!c.partial.empty()) emit_line(c, c.partial);
    c.partial.clear();
    close_fd(c.out_fd);
  }

  void read_output(Child& c) {
    char buf[16384];
    size_t total = 0;
    while (c.out_fd >= 0 && total < kMaxReadPerPump) {
      ssize_t r = ::read(c.out_fd, buf, sizeof buf);
      if (r > 0) {
        consume(c, buf, static_cast<size_t>(r));
        total += static_cast<size_t>(r);
      } else if (r == 0) {
        close_output(c);
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else {
        close_output(c);
      }
    }
  }

  // --- one poll round: output, wake-ups, signals ---
  void pump(int timeout_ms) {
    std::vector<pollfd> fds;
    std::vector<Child*> owner;
    fds.push_back({wake_r, POLLIN, 0});
    owner.push_back(nullptr);
    if (sig_r >= 0) {
      fds.push_back({sig_r, POLLIN, 0});
      owner.push_back(nullptr);
    }
    for (auto& c : children) {
      if (c.out_fd >= 0) {
        fds.push_back({c.out_fd, POLLIN, 0});
        owner.push_back(&c);
      }
      if (c.running && c.pidfd >= 0) {
        fds.push_back({c.pidfd, POLLIN, 0});
        owner.push_back(nullptr);  // reap() looks at every running child anyway
      }
    }
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n <= 0) return;  // timeout or EINTR
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == wake_r) {
        char b[64];
        while (::read(wake_r, b, sizeof b) > 0) {
        }
      } else if (fds[i].fd == sig_r) {
        unsigned char b[64];
        ssize_t r;
        while ((r = ::read(sig_r, b, sizeof b)) > 0)
          for (ssize_t k = 0; k < r; ++k) on_launcher_signal(b[k]);
      } else if (owner[i]) {
        read_output(*owner[i]);
      }
    }
    if (streamed) {
      out().flush();
      streamed = false;
    }
  }

  void on_launcher_signal(int sig) {
    if (phase == Phase::kRun) {
      notice(nullptr, "received " + signal_name(sig) + ": stopping all processes (again to kill now)");
      summary.reason = StopReason::kSignal;
      summary.stop_signal = sig;
      phase = Phase::kStopping;
    } else if (!kill_now) {
      notice(nullptr, "received " + signal_name(sig) + " again: killing all processes now");
      kill_now = true;
    }
  }

  // --- reaping ---
  void record(Child& c, int status, bool known) {
    read_output(c);  // its last words go before the report of its end
    c.running = false;
    close_fd(c.pidfd);
    ProcessOutcome& o = c.outcome;
    o.reaped = true;
    if (known && WIFEXITED(status)) {
      o.exited = true;
      o.exit_code = WEXITSTATUS(status);
    } else if (known && WIFSIGNALED(status)) {
      o.signal = WTERMSIG(status);
#ifdef WCOREDUMP
      o.core_dumped = WCOREDUMP(status);
#endif
    }
    o.expected = c.term_sent || (o.exited && o.exit_code == 0);
    if (phase == Phase::kRun) {
      if (!o.expected)
        notice(&c, who(c) + " died: " + o.describe());
      else
        notice(&c, who(c) + " " + o.describe());
    }
  }

  void reap() {
    for (auto& c : children) {
      if (!c.running) continue;
      int status = 0;
      pid_t r = ::waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid) {
        record(c, status, true);
      } else if (r < 0 && errno == ECHILD) {
        record(c, 0, false);  // someone else reaped it (SIGCHLD ignored?)
      }
    }
  }

  bool any_running() const {
    for (const auto& c : children)
      if (c.running) return true;
    return false;
  }
  bool any_output_open() const {
    for (const auto& c : children)
      if (c.out_fd >= 0) return true;
    return false;
  }
  bool all_have_pidfds() const {
    for (const auto& c : children)
      if (c.running && c.pidfd < 0) return false;
    return true;
  }

  // Signals the child's whole process group (its grandchildren too).
  void send(Child& c, int sig) {
    if (c.pid <= 0) return;
    if (::kill(-c.pid, sig) != 0 && c.running) ::kill(c.pid, sig);
  }

  // --- the run ---
  void run_phase() {
    bool any_essential = false;
    for (const auto& c : children) any_essential |= c.spec.essential;
    bool warned_alone = false;
    while (phase == Phase::kRun) {
      if (stop_requested.load()) {
        summary.reason = StopReason::kRequested;
        phase = Phase::kStopping;
        break;
      }
      pump(all_have_pidfds() ? 1000 : 50);
      reap();
      if (phase != Phase::kRun) break;  // a signal arrived
      for (const auto& c : children) {
        if (c.spec.essential && !c.running) {
          summary.reason = StopReason::kEssentialExited;
          summary.stopped_by = c.spec.name;
          phase = Phase::kStopping;
          break;
        }
      }
      if (phase != Phase::kRun) break;
      if (!any_essential && !any_running()) {
        summary.reason = StopReason::kAllExited;
        phase = Phase::kStopping;
        break;
      }
      if (any_essential && !warned_alone) {
        bool others_exist = false, others_running = false;
        for (const auto& c : children) {
          if (c.spec.essential) continue;
          others_exist = true;
          others_running |= c.running;
        }
        if (others_exist && !others_running) {
          notice(nullptr, "warning: every non-essential process has exited; the run goes on");
          warned_alone = true;
        }
      }
    }
  }

  // Bounded: grace_ms + kill_timeout_ms + drain_timeout_ms (plus poll slack).
  void stop_phase() {
    phase = Phase::kStopping;
    for (auto& c : children) {
      if (c.running) {
        c.term_sent = true;
        send(c, SIGTERM);
      } else if (c.out_fd >= 0) {
        send(c, SIGTERM);  // exited, but descendants still hold its pipe
      }
    }
    auto deadline = Clock::now() + std::chrono::milliseconds(opt.grace_ms);
    while (any_running() && !kill_now && Clock::now() < deadline) {
      pump(std::min(ms_until(deadline), all_have_pidfds() ? 1000 : 50));
      reap();
    }
    if (any_running()) {
      for (auto& c : children) {
        if (!c.running) continue;
        if (!kill_now)
          notice(&c, who(c) + " did not stop within " + std::to_string(opt.grace_ms) +
                         " ms of SIGTERM; sending SIGKILL");
        c.outcome.killed_after_grace = true;
        send(c, SIGKILL);
      }
      deadline = Clock::now() + std::chrono::milliseconds(opt.kill_timeout_ms);
      while (any_running() && Clock::now() < deadline) {
        pump(std::min(ms_until(deadline), 50));
        reap();
      }
      for (auto& c : children)
        if (c.running) notice(&c, who(c) + " could not be reaped after SIGKILL");
    }
    // A reaped child whose pipe is still open has live descendants: end them.
    for (auto& c : children)
      if (!c.running && c.out_fd >= 0) send(c, SIGKILL);
    deadline = Clock::now() + std::chrono::milliseconds(opt.drain_timeout_ms);
    while (any_output_open() && Clock::now() < deadline) pump(std::min(ms_until(deadline), 50));
    for (auto& c : children) {
      close_output(c);
      close_fd(c.pidfd);
    }
    out().flush();
  }

  void finish() {
    summary.processes.clear();
    for (const auto& c : children) summary.processes.push_back(c.outcome);
    if (summary.reason == StopReason::kSignal) {
      summary.exit_code = 128 + summary.stop_signal;
    } else if (summary.reason == StopReason::kNotStarted) {
      summary.exit_code = 1;
    } else {
      summary.exit_code = 0;
      for (const auto& c : children) {
        if (!c.spec.essential) continue;
        int code = c.outcome.shell_code();
        if (code != 0) {
          summary.exit_code = code < 0 ? 1 : code;
          break;
        }
      }
    }
    for (auto& c : children) close_fd(c.log_fd);
    uninstall_signals();
    phase = Phase::kDone;
    waited = true;
  }
};

Supervisor::Supervisor(SupervisorOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    impl_->wake_r = fds[0];
    impl_->wake_w = fds[1];
  }
}

Supervisor::~Supervisor() {
  if (impl_->phase == Impl::Phase::kRun) {
    request_stop();
    wait();
  }
  impl_->uninstall_signals();
  close_fd(impl_->wake_r);
  close_fd(impl_->wake_w);
}

Status Supervisor::start(const std::vector<ProcessSpec>& specs) {
  Impl& m = *impl_;
  if (m.phase != Impl::Phase::kIdle) return Status::Error("Supervisor::start called twice");
  m.phase = Impl::Phase::kDone;  // until everything is up
  if (m.wake_r < 0) return Status::Error("cannot create the supervisor's wake-up pipe");
  if (specs.empty()) return Status::Error("no processes to start");
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].name.empty()) return Status::Error("process #" + std::to_string(i) + " has no name");
    if (specs[i].argv.empty() || specs[i].argv[0].empty())
      return Status::Error("cannot start " + specs[i].name + ": empty command line");
    for (size_t j = 0; j < i; ++j)
      if (specs[j].name == specs[i].name)
        return Status::Error("two processes are named '" + specs[i].name + "'");
  }
  m.children.reserve(specs.size());
  for (const auto& s : specs) {
    m.children.emplace_back();
    m.children.back().spec = s;
    m.children.back().outcome.name = s.name;
    m.children.back().outcome.role = s.role;
  }
  m.install_signals();
  for (auto& c : m.children) {
    Status st = m.spawn(c);
    if (!st.ok()) {
      // All-or-nothing: stop what is already running; wait() reports it.
      m.stop_phase();
      m.summary.reason = StopReason::kNotStarted;
      m.finish();
      return st;
    }
  }
  m.phase = Impl::Phase::kRun;
  return Status::Ok();
}

SupervisorSummary Supervisor::wait() {
  Impl& m = *impl_;
  if (m.waited || m.phase != Impl::Phase::kRun) return m.summary;
  m.run_phase();
  m.stop_phase();
  m.finish();
  return m.summary;
}

void Supervisor::request_stop() {
  impl_->stop_requested.store(true);
  if (impl_->wake_w >= 0) {
    char b = 1;
    ssize_t r = ::write(impl_->wake_w, &b, 1);  // EAGAIN: a wake-up is already pending
    (void)r;
  }
}

pid_t Supervisor::pid(const std::string& name) const {
  for (const auto& c : impl_->children)
    if (c.spec.name == name) return c.pid;
  return -1;
}

Result<ProcStat> read_proc_stat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::ifstream f(path);
  std::string text;
  if (!f || !std::getline(f, text)) return Result<ProcStat>::Error("cannot read " + path);
  size_t rp = text.rfind(')');  // the command name may hold spaces and parentheses
  if (rp == std::string::npos) return Result<ProcStat>::Error("malformed " + path);
  std::istringstream in(text.substr(rp + 1));
  std::vector<std::string> tok;  // tok[k] is field k + 3 of proc(5)
  for (std::string t; in >> t;) tok.push_back(t);
  if (tok.size() < 22) return Result<ProcStat>::Error("malformed " + path);
  ProcStat s;
  try {
    s.state = tok[0].empty() ? '?' : tok[0][0];
    const double tck = static_cast<double>(::sysconf(_SC_CLK_TCK));
    s.cpu_seconds = (std::stod(tok[11]) + std::stod(tok[12])) / (tck > 0 ? tck : 100.0);
    s.threads = std::stoll(tok[17]);
    s.rss_bytes = std::stoll(tok[21]) * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
  } catch (const std::exception&) {
    return Result<ProcStat>::Error("malformed " + path);
  }
  return s;
}

}  // namespace gr1
