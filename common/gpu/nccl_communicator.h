// NcclCommunicator: one rank of an NCCL group, with every call checked and
// every wait bounded.
//
// Collectives must be called in the same order on every rank (same kind,
// count, root and dtype), or the group deadlocks; the timeout then aborts it.
//
// Setup: rank 0 calls new_unique_id() and sends the 128 bytes to the others
// out of band (the bus); every rank then calls create(id, nranks, rank, device)
// within `timeout_ms` of the others. Membership is fixed: a new actor means a
// new communicator (rebuild at a version boundary).
//
// Each collective enqueues on `stream` and returns once it has completed there
// (the stream is synchronized), or fails. On a timeout or an asynchronous NCCL
// error the communicator is aborted (ncclCommAbort) and every later call fails
// at once; create a new one to recover. Not thread-safe: one thread per object.
//
// This header does not include CUDA or NCCL headers.
#pragma once

#include <array>
#include <cstddef>
#include <memory>

#include "common/status.h"

struct ncclComm;    // ncclComm_t is ncclComm*
struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace gr1::gpu {

using CudaStream = CUstream_st*;  // same type as cudaStream_t; nullptr = default stream

struct NcclId {
  std::array<unsigned char, 128> bytes{};  // NCCL_UNIQUE_ID_BYTES
};

struct NcclOptions {
  int timeout_ms = 300000;  // bound on create() and on each collective's completion
};

// Number of visible CUDA devices; an error (with CUDA's message) when there is
// no driver. Tests skip on error or 0.
Result<int> cuda_device_count();

class NcclCommunicator {
 public:
  static Result<NcclId> new_unique_id();
  // Joins the group; blocks until all nranks joined or timeout (then aborts).
  static Result<std::unique_ptr<NcclCommunicator>> create(const NcclId& id, int nranks, int rank,
                                                         int device, NcclOptions options = {});
  ~NcclCommunicator();  // finalizes (bounded by the timeout), aborts if that fails
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // In place: buf (device memory, `count` floats) becomes the sum over ranks.
  Status all_reduce_sum(float* buf, size_t count, CudaStream stream);
  // In place: `bytes` of device memory at buf take root's contents on every rank.
  Status broadcast(void* buf, size_t bytes, int root, CudaStream stream);

  int rank() const { return rank_; }
  int nranks() const { return nranks_; }
  int device() const { return device_; }
  bool aborted() const { return comm_ == nullptr; }

 private:
  NcclCommunicator(ncclComm* comm, int nranks, int rank, int device, NcclOptions options)
      : comm_(comm), nranks_(nranks), rank_(rank), device_(device), options_(options) {}
  Status finish(int result, const char* what, CudaStream stream);  // result: ncclResult_t
  Status fail(const std::string& message);                         // aborts, returns the error

  ncclComm* comm_;
  int nranks_, rank_, device_;
  NcclOptions options_;
};

}  // namespace gr1::gpu
