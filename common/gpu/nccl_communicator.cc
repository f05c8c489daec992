#include "common/gpu/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>

static_assert(sizeof(gr1::gpu::NcclId::bytes) == NCCL_UNIQUE_ID_BYTES, "NCCL unique id size");
static_assert(std::is_same_v<gr1::gpu::CudaStream, cudaStream_t>, "CudaStream must be cudaStream_t");
static_assert(std::is_same_v<ncclComm*, ncclComm_t>, "ncclComm_t must be ncclComm*");

namespace gr1::gpu {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollSleep = std::chrono::microseconds(50);

std::string nccl_error(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) s += std::string(" (") + last + ")";
  return s;
}

std::string cuda_error(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

// Polls until the communicator leaves ncclInProgress: its state, or
// ncclInProgress when the deadline passed first.
ncclResult_t wait_comm(ncclComm_t comm, Clock::time_point deadline) {
  for (;;) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess) return r;
    if (state != ncclInProgress) return state;
    if (Clock::now() >= deadline) return ncclInProgress;
    std::this_thread::sleep_for(kPollSleep);
  }
}

Clock::time_point deadline_in(int ms) { return Clock::now() + std::chrono::milliseconds(ms); }

}  // namespace

Result<int> cuda_device_count() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return Result<int>::Error("cudaGetDeviceCount: " + cuda_error(e));
  return n;
}

Result<NcclId> NcclCommunicator::new_unique_id() {
  ncclUniqueId uid;
  ncclResult_t r = ncclGetUniqueId(&uid);
  if (r != ncclSuccess) return Result<NcclId>::Error("ncclGetUniqueId failed: " + nccl_error(r, nullptr));
  NcclId id;
  std::memcpy(id.bytes.data(), uid.internal, NCCL_UNIQUE_ID_BYTES);
  return id;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create(const NcclId& id, int nranks,
                                                                   int rank, int device,
                                                                   NcclOptions options) {
  using R = Result<std::unique_ptr<NcclCommunicator>>;
  const std::string where = "NCCL init (rank " + std::to_string(rank) + " of " +
                            std::to_string(nranks) + ", device " + std::to_string(device) + "): ";
  if (nranks < 1 || rank < 0 || rank >= nranks) return R::Error(where + "bad rank or group size");
  if (cudaError_t e = cudaSetDevice(device); e != cudaSuccess)
    return R::Error(where + "cudaSetDevice: " + cuda_error(e));

  ncclUniqueId uid;
  std::memcpy(uid.internal, id.bytes.data(), NCCL_UNIQUE_ID_BYTES);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // init and calls return ncclInProgress; we poll with a deadline
  ncclComm_t comm = nullptr;
  const auto deadline = deadline_in(options.timeout_ms);
  ncclResult_t r = ncclCommInitRankConfig(&comm, nranks, uid, rank, &config);
  if ((r == ncclSuccess || r == ncclInProgress) && comm) r = wait_comm(comm, deadline);
  if (r != ncclSuccess) {
    std::string msg = r == ncclInProgress
                          ? "timed out after " + std::to_string(options.timeout_ms) +
                                " ms waiting for all ranks to join (same id on every rank?)"
                          : "ncclCommInitRankConfig failed: " + nccl_error(r, comm);
    if (comm) ncclCommAbort(comm);
    return R::Error(where + msg);
  }
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, nranks, rank, device, options));
}

NcclCommunicator::~NcclCommunicator() {
  if (!comm_) return;
  cudaSetDevice(device_);
  // Every collective was already waited for, so finalizing is quick; bound it anyway.
  ncclResult_t r = ncclCommFinalize(comm_);
  if (r == ncclSuccess || r == ncclInProgress)
    r = wait_comm(comm_, deadline_in(std::min(options_.timeout_ms, 30000)));
  if (r == ncclSuccess)
    ncclCommDestroy(comm_);
  else
    ncclCommAbort(comm_);
  comm_ = nullptr;
}

Status NcclCommunicator::fail(const std::string& message) {
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
  return Status::Error("NCCL rank " + std::to_string(rank_) + ": " + message +
                       "; communicator aborted");
}

// Completes a collective that returned `result`: waits for the enqueue (non-
// blocking communicators may return ncclInProgress), then for the stream.
Status NcclCommunicator::finish(int result, const char* what, CudaStream stream) {
  const auto deadline = deadline_in(options_.timeout_ms);
  auto r = static_cast<ncclResult_t>(result);
  if (r != ncclSuccess && r != ncclInProgress)  // argument errors: the communicator is still fine
    return Status::Error("NCCL rank " + std::to_string(rank_) + ": " + what + " failed: " +
                         nccl_error(r, comm_));
  if (r == ncclInProgress) r = wait_comm(comm_, deadline);
  if (r == ncclInProgress)
    return fail(std::string(what) + " was not enqueued within " +
                std::to_string(options_.timeout_ms) + " ms");
  if (r != ncclSuccess) return fail(std::string(what) + " failed: " + nccl_error(r, comm_));
  for (;;) {
    cudaError_t e = cudaStreamQuery(stream);
    if (e == cudaSuccess) return Status::Ok();
    if (e != cudaErrorNotReady) return fail(std::string(what) + ": CUDA error " + cuda_error(e));
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress)
      return fail(std::string(what) + " failed: " + nccl_error(state, comm_));
    if (Clock::now() >= deadline)
      return fail(std::string(what) + " did not complete within " +
                  std::to_string(options_.timeout_ms) +
                  " ms (a rank missing, or collectives called in a different order?)");
    std::this_thread::sleep_for(kPollSleep);
  }
}

Status NcclCommunicator::all_reduce_sum(float* buf, size_t count, CudaStream stream) {
  if (!comm_) return Status::Error("NCCL all_reduce_sum: communicator was aborted earlier");
  if (count == 0) return Status::Ok();
  if (cudaError_t e = cudaSetDevice(device_); e != cudaSuccess)
    return Status::Error("NCCL all_reduce_sum: cudaSetDevice: " + cuda_error(e));
  ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, comm_, stream);
  return finish(r, "all_reduce_sum", stream);
}

Status NcclCommunicator::broadcast(void* buf, size_t bytes, int root, CudaStream stream) {
  if (!comm_) return Status::Error("NCCL broadcast: communicator was aborted earlier");
  if (root < 0 || root >= nranks_)
    return Status::Error("NCCL broadcast: root " + std::to_string(root) + " is not a rank of " +
                         std::to_string(nranks_));
  if (bytes == 0) return Status::Ok();
  if (cudaError_t e = cudaSetDevice(device_); e != cudaSuccess)
    return Status::Error("NCCL broadcast: cudaSetDevice: " + cuda_error(e));
  ncclResult_t r = ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm_, stream);
  return finish(r, "broadcast", stream);
}

}  // namespace gr1::gpu
