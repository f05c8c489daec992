// Data-parallel training over processes on one machine: c10d's Gloo process
// group over loopback TCP, rendezvous through a FileStore that every rank
// opens (roadmap 3 brings the learner and NCCL onto the same interface).
//
//   gr1 pretrain (rank 0) --spawns--> gr1 pretrain --dp-rank r (r = 1..W-1)
//   every step: each rank runs its share of the batch, then
//     sum_gradients()  one flat all-reduce of every trainable gradient
//   -> every rank takes the same optimizer step on the same numbers, so the
//      replicas stay equal; check_in_sync() proves it at stage ends.
//
// world 1 needs no Gloo: every call is a no-op. Calls are collective: every
// rank makes the same calls in the same order. A peer that dies makes the
// others' next call fail with an error naming this rank (the closed
// connection), or time out after `timeout_s`.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/data_parallel_options.h"

namespace gr1 {

class DataParallel {
 public:
  // Joins the group (blocks until every rank has joined, up to timeout_s).
  static Result<std::unique_ptr<DataParallel>> connect(const DataParallelOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const;
  int world() const;
  bool leader() const { return rank() == 0; }

  // For each tensor of `params`: its .grad() becomes the sum over ranks, times
  // `scale`. A gradient undefined on every rank stays undefined (the optimizer
  // skips that tensor, as in one process); one defined on some ranks only is
  // defined on all afterwards. One all-reduce for all tensors (float32).
  Status sum_gradients(const std::vector<at::Tensor>& params, double scale = 1.0);
  // Sums `values` over ranks, in place (float64).
  Status sum(std::vector<double>& values);
  // Every rank's tensors take rank 0's values (in place, no autograd).
  Status broadcast(const std::vector<at::Tensor>& tensors);
  // An error naming `what` unless every rank's tensors hold the same values
  // (a weighted float64 fingerprint; its min and max over ranks are compared).
  Status check_in_sync(const std::vector<at::Tensor>& tensors, const std::string& what);

 private:
  struct Impl;
  explicit DataParallel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Fingerprint of a tensor list: float64 sums of each tensor weighted by a
// fixed cosine sequence, so a swap or a single changed element shows.
std::vector<double> tensor_fingerprint(const std::vector<at::Tensor>& tensors);

}  // namespace gr1
