// Helpers shared by test files: a temporary directory, and running a shell
// command or the built `gr1` binary with its output captured.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/options.h"

namespace gr1::test_util {

// A fresh directory under the system temp directory, removed with everything
// in it when the object goes.
struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& prefix = "gr1_test") {
    std::string t = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    dir = ::mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Writes `text` to dir/name (parents created); returns the path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::filesystem::path p = dir / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string str() const { return dir.string(); }
};

// The ipc socket files use_ipc_endpoints handed out in this process, removed
// when it exits (a killed learner, or one whose socket is closed without an
// unbind, leaves them behind in the temp directory).
struct IpcFiles {
  std::vector<std::filesystem::path> paths;
  ~IpcFiles() {
    std::error_code ec;
    for (const auto& p : paths) std::filesystem::remove(p, ec);
  }
};
inline IpcFiles& ipc_files() {
  static IpcFiles files;
  return files;
}

// Points the bus's three endpoints at ipc sockets of their own under the
// temp directory ("gr1-<tag>-<pid>-ctl", "-traj", "-w"); the files go when
// the test process exits.
inline void use_ipc_endpoints(BusOptions& bus, const std::string& tag) {
  const std::filesystem::path base =
      std::filesystem::temp_directory_path() / ("gr1-" + tag + "-" + std::to_string(::getpid()));
  bus.control_endpoint = "ipc://" + base.string() + "-ctl";
  bus.trajectory_endpoint = "ipc://" + base.string() + "-traj";
  bus.weights_endpoint = "ipc://" + base.string() + "-w";
  for (const char* suffix : {"-ctl", "-traj", "-w"})
    ipc_files().paths.push_back(base.string() + suffix);
}

// The whole text of a file ("" when it cannot be read).
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A free loopback TCP port: bind to port 0, read it back, release it.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

struct CliRun {
  int rc = -1;  // exit status, -1 when not started or not exited normally
  std::string out, err;
};

// Runs `cmd` through the shell; stdout is captured (stderr as the command
// redirects it).
inline CliRun run_shell(const std::string& cmd) {
  CliRun r;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
  if (!pipe) return r;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0;) r.out.append(buf, n);
  const int status = ::pclose(pipe.release());
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs build/bin/gr1 with `args`; stdout and stderr captured apart (stderr
// through tmp/stderr.txt).
inline CliRun run_gr1(const std::string& args, const TempDir& tmp) {
  const std::string err = (tmp.dir / "stderr.txt").string();
  CliRun r = run_shell(std::string(GR1_BINARY_DIR) + "/bin/gr1 " + args + " 2>" + err);
  r.err = read_text(err);
  return r;
}

}  // namespace gr1::test_util
