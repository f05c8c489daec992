// A data-parallel run of one command on this machine (`gr1 pretrain` with
// pretrain.processes > 1): rank 0 is this process, ranks 1..W-1 are child
// processes of the same binary.
//
//   run_data_parallel(o, rank0)
//     rendezvous directory (mkdtemp) -> its FileStore path
//     Supervisor (in a helper thread): ranks 1..W-1 as
//       <exe> <child_args...> --dp-rank r --dp-world W --dp-store <path>
//       (own process groups, output streamed as "[<prefix>r] line")
//     rank0({0, W, path}) here
//     a failed rank 0 stops the children; a child that fails is named
//     -> exit code (0 only when every rank exited 0), directory removed
//
// Ctrl-C reaches this process only (the children have their own process
// groups); it removes the rendezvous directory and dies of the signal, and
// the children get SIGTERM (PR_SET_PDEATHSIG).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "common/data_parallel_options.h"

namespace gr1 {

struct DataParallelRunOptions {
  int world = 2;
  std::vector<std::string> child_args;  // after the binary, before the --dp-* flags
  std::string self_exe;                  // empty = /proc/self/exe
  std::string name_prefix = "rank-";    // children are named <prefix><r>
  int grace_ms = 5000;                   // SIGTERM -> SIGKILL when rank 0 failed
  int timeout_s = 300;                   // rendezvous and collective timeout of every rank
  // Catch SIGINT/SIGTERM while it runs: remove the rendezvous directory, then
  // die of the signal as before (the children follow by PDEATHSIG).
  bool remove_on_signal = true;
};

// The command line of rank r (exposed for tests).
std::vector<std::string> data_parallel_child_argv(const std::string& exe,
                                                  const DataParallelRunOptions& o, int rank,
                                                  const std::string& store_path);

// Runs as described above; rank0 returns rank 0's exit code. Errors about
// the children go to `err`.
int run_data_parallel(const DataParallelRunOptions& o,
                      const std::function<int(const DataParallelOptions&)>& rank0, std::ostream& err);

}  // namespace gr1
