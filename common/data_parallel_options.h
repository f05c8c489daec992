// Where a process sits in a data-parallel group (learner/data_parallel.h);
// a header of its own so that callers need not include LibTorch.
#pragma once

#include <string>

namespace gr1 {

struct DataParallelOptions {
  int rank = 0;
  int world = 1;
  std::string store_path;          // FileStore file shared by every rank (world > 1)
  std::string host = "127.0.0.1";  // interface the Gloo transport binds
  int timeout_s = 900;             // rendezvous and each collective
};

}  // namespace gr1
