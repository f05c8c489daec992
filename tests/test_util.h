// Helpers shared by test files: a temporary directory, and running a shell
// command or the built `gr1` binary with its output captured.
#pragma once

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

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
  std::ifstream f(err);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  return r;
}

}  // namespace gr1::test_util
