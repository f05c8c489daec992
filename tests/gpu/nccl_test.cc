// NCCL communicator on a real GPU: one process, one rank. Every test skips
// itself when no CUDA device is visible (CI machines, CPU-only hosts).
#include "common/gpu/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace gr1::gpu {
namespace {

#define CUDA_OK(expr)                                                        \
  do {                                                                       \
    cudaError_t e_ = (expr);                                                 \
    ASSERT_EQ(e_, cudaSuccess) << #expr << ": " << cudaGetErrorString(e_);  \
  } while (0)

class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<int> n = cuda_device_count();
    if (!n.ok()) GTEST_SKIP() << "no CUDA device: " << n.error();
    if (*n == 0) GTEST_SKIP() << "no CUDA device";
    CUDA_OK(cudaSetDevice(0));
    CUDA_OK(cudaStreamCreate(&stream_));
  }
  void TearDown() override {
    if (buf_) cudaFree(buf_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::unique_ptr<NcclCommunicator> single_rank() {
    Result<NcclId> id = NcclCommunicator::new_unique_id();
    EXPECT_TRUE(id.ok()) << id.error();
    if (!id.ok()) return nullptr;
    auto comm = NcclCommunicator::create(*id, /*nranks=*/1, /*rank=*/0, /*device=*/0);
    EXPECT_TRUE(comm.ok()) << comm.error();
    return comm.ok() ? std::move(comm).value() : nullptr;
  }

  cudaStream_t stream_ = nullptr;
  void* buf_ = nullptr;
};

TEST_F(NcclTest, SingleRankAllReduceSumKeepsValues) {
  auto comm = single_rank();
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->nranks(), 1);
  EXPECT_EQ(comm->rank(), 0);
  std::vector<float> host(4099);
  for (size_t i = 0; i < host.size(); ++i) host[i] = 0.5f * static_cast<float>(i) - 7.0f;
  const size_t bytes = host.size() * sizeof(float);
  CUDA_OK(cudaMalloc(&buf_, bytes));
  CUDA_OK(cudaMemcpy(buf_, host.data(), bytes, cudaMemcpyHostToDevice));

  for (int round = 0; round < 3; ++round) {
    Status s = comm->all_reduce_sum(static_cast<float*>(buf_), host.size(), stream_);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  std::vector<float> back(host.size(), -1.0f);
  CUDA_OK(cudaMemcpy(back.data(), buf_, bytes, cudaMemcpyDeviceToHost));
  EXPECT_EQ(back, host);  // the sum over one rank is the rank's own values
}

TEST_F(NcclTest, SingleRankBroadcastFromRootKeepsBytes) {
  auto comm = single_rank();
  ASSERT_NE(comm, nullptr);
  std::vector<uint8_t> host(1 << 20);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<uint8_t>(i * 31 + 7);
  CUDA_OK(cudaMalloc(&buf_, host.size()));
  CUDA_OK(cudaMemcpy(buf_, host.data(), host.size(), cudaMemcpyHostToDevice));

  Status s = comm->broadcast(buf_, host.size(), /*root=*/0, stream_);
  ASSERT_TRUE(s.ok()) << s.message();
  std::vector<uint8_t> back(host.size(), 0);
  CUDA_OK(cudaMemcpy(back.data(), buf_, host.size(), cudaMemcpyDeviceToHost));
  EXPECT_EQ(back, host);
}

TEST_F(NcclTest, BroadcastFromARootOutsideTheGroupIsAnError) {
  auto comm = single_rank();
  ASSERT_NE(comm, nullptr);
  CUDA_OK(cudaMalloc(&buf_, 64));
  Status s = comm->broadcast(buf_, 64, /*root=*/1, stream_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("root 1"), std::string::npos) << s.message();
  EXPECT_FALSE(comm->aborted());  // a bad argument does not break the communicator
  EXPECT_TRUE(comm->all_reduce_sum(static_cast<float*>(buf_), 16, stream_).ok());
}

TEST_F(NcclTest, InitTimesOutAndAbortsWhenOtherRanksNeverJoin) {
  Result<NcclId> id = NcclCommunicator::new_unique_id();
  ASSERT_TRUE(id.ok()) << id.error();
  NcclOptions opt;
  opt.timeout_ms = 3000;
  auto comm = NcclCommunicator::create(*id, /*nranks=*/2, /*rank=*/0, /*device=*/0, opt);
  ASSERT_FALSE(comm.ok());
  EXPECT_NE(comm.error().find("timed out"), std::string::npos) << comm.error();
}

}  // namespace
}  // namespace gr1::gpu
