#include "orchestration/data_parallel_run.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>
#include <future>
#include <ostream>
#include <thread>

#include "orchestration/supervisor.h"

namespace gr1 {
namespace {

// The rendezvous directory, removed by a SIGINT/SIGTERM that ends rank 0
// (unlink and rmdir are async-signal-safe); then the default action.
char g_store_file[4096];
char g_store_dir[4096];
struct sigaction g_old_int, g_old_term;

void remove_rendezvous_and_die(int sig) {
  ::unlink(g_store_file);
  ::rmdir(g_store_dir);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_cleanup(const std::string& dir, const std::string& file) {
  std::strncpy(g_store_dir, dir.c_str(), sizeof g_store_dir - 1);
  std::strncpy(g_store_file, file.c_str(), sizeof g_store_file - 1);
  struct sigaction sa {};
  sa.sa_handler = remove_rendezvous_and_die;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &g_old_int);
  ::sigaction(SIGTERM, &sa, &g_old_term);
}

void remove_cleanup() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
}

}  // namespace

std::vector<std::string> data_parallel_child_argv(const std::string& exe,
                                                  const DataParallelRunOptions& o, int rank,
                                                  const std::string& store_path) {
  std::vector<std::string> a{exe};
  a.insert(a.end(), o.child_args.begin(), o.child_args.end());
  for (const std::string& s : {std::string("--dp-rank"), std::to_string(rank),
                               std::string("--dp-world"), std::to_string(o.world),
                               std::string("--dp-store"), store_path,
                               std::string("--dp-timeout"), std::to_string(o.timeout_s)})
    a.push_back(s);
  return a;
}

int run_data_parallel(const DataParallelRunOptions& o,
                      const std::function<int(const DataParallelOptions&)>& rank0,
                      std::ostream& err) {
  DataParallelOptions dp;
  dp.rank = 0;
  dp.world = o.world;
  dp.timeout_s = o.timeout_s;
  if (o.world <= 1) return rank0(dp);

  std::string exe = o.self_exe;
  if (exe.empty()) {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) {
      err << "data parallel: cannot find this binary (/proc/self/exe): " << ec.message() << "\n";
      return 2;
    }
    exe = p.string();
  }
  std::error_code ec;
  const auto tmp = std::filesystem::temp_directory_path(ec);
  std::string tmpl = (ec ? std::filesystem::path("/tmp") : tmp).string() + "/gr1-dp-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    err << "data parallel: cannot create a rendezvous directory " << tmpl << "\n";
    return 2;
  }
  const std::string dir = tmpl;
  dp.store_path = dir + "/store";
  if (o.remove_on_signal) install_cleanup(dir, dp.store_path);

  std::vector<ProcessSpec> specs;
  for (int r = 1; r < o.world; ++r) {
    ProcessSpec s;
    s.name = o.name_prefix + std::to_string(r);
    s.role = "rank";
    s.argv = data_parallel_child_argv(exe, o, r, dp.store_path);
    s.stream_to_terminal = true;
    specs.push_back(std::move(s));
  }

  // The supervisor lives in its own thread (its owner: start, wait and the
  // destructor happen there) while rank 0 runs here.
  std::promise<Supervisor*> started;
  std::promise<void> rank0_done;
  SupervisorSummary summary;
  Status start_status;
  std::thread owner([&] {
    SupervisorOptions so;
    so.grace_ms = o.grace_ms;
    so.handle_signals = false;  // Ctrl-C ends this process; PDEATHSIG ends the children
    so.err = &err;
    so.notice_tag = "data parallel";
    Supervisor sup(so);
    start_status = sup.start(specs);
    started.set_value(start_status.ok() ? &sup : nullptr);
    if (start_status.ok()) summary = sup.wait();
    rank0_done.get_future().wait();  // rank 0 may still call request_stop()
  });
  Supervisor* sup = started.get_future().get();
  int rc = 2;
  if (sup == nullptr) {
    err << "data parallel: " << start_status.message() << "\n";
  } else {
    rc = rank0(dp);
    if (rc != 0) sup->request_stop();
  }
  rank0_done.set_value();
  owner.join();
  for (const auto& p : summary.processes) {
    if (p.exited && p.exit_code == 0) continue;
    if (rc != 0 && p.expected) continue;  // stopped because rank 0 failed
    err << "data parallel: " << p.name << " " << p.describe() << "\n";
    if (rc == 0) rc = 2;
  }
  std::filesystem::remove_all(dir, ec);
  if (o.remove_on_signal) remove_cleanup();
  return rc;
}

}  // namespace gr1
