// learner/data_parallel.h (two ranks as two threads of this process, a
// FileStore in a temporary directory) and orchestration/data_parallel_run.h
// (child ranks as processes).
#include "learner/data_parallel.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "orchestration/data_parallel_run.h"
#include "tests/test_util.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;

using test_util::TempDir;

// Runs body(rank, dp) on `world` threads, each joined to one group; the
// Status of each rank's body, in rank order.
std::vector<Status> on_ranks(int world, const std::function<Status(int, DataParallel&)>& body) {
  TempDir tmp;
  std::vector<Status> out(world, Status::Ok());
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      DataParallelOptions o;
      o.rank = r;
      o.world = world;
      o.store_path = (tmp.dir / "store").string();
      o.timeout_s = 60;
      auto dp = DataParallel::connect(o);
      out[r] = dp.ok() ? body(r, **dp) : dp.status();
    });
  for (auto& t : threads) t.join();
  return out;
}

TEST(DataParallel, GradientsAreSummedAndAGradientUndefinedEverywhereStaysUndefined) {
  std::vector<std::vector<torch::Tensor>> seen(2);
  const auto st = on_ranks(2, [&](int r, DataParallel& dp) {
    EXPECT_EQ(dp.world(), 2);
    EXPECT_EQ(dp.leader(), r == 0);
    // a: a gradient on both ranks; b: on rank 1 only; c: on neither.
    auto a = torch::zeros({2, 3}, torch::requires_grad());
    auto b = torch::zeros({4}, torch::requires_grad());
    auto c = torch::zeros({1}, torch::requires_grad());
    a.mutable_grad() = torch::full({2, 3}, static_cast<float>(r + 1));
    if (r == 1) b.mutable_grad() = torch::arange(4, torch::kFloat32);
    if (Status s = dp.sum_gradients({a, b, c}, 0.5); !s.ok()) return s;
    seen[r] = {a.grad(), b.grad(), c.grad()};
    return Status::Ok();
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].message();
    ASSERT_TRUE(seen[r][0].defined());
    EXPECT_TRUE(torch::allclose(seen[r][0], torch::full({2, 3}, 1.5f)));  // (1 + 2) * 0.5
    ASSERT_TRUE(seen[r][1].defined()) << "rank " << r;
    EXPECT_TRUE(torch::allclose(seen[r][1], torch::arange(4, torch::kFloat32) * 0.5));
    EXPECT_FALSE(seen[r][2].defined()) << "rank " << r;
  }
}

TEST(DataParallel, SumBroadcastAndTheSyncCheck) {
  std::vector<std::vector<double>> sums(2);
  std::vector<torch::Tensor> after(2);
  std::vector<Status> diverged(2, Status::Ok());
  const auto st = on_ranks(2, [&](int r, DataParallel& dp) {
    std::vector<double> v{1.0 + r, 10.0 * r};
    if (Status s = dp.sum(v); !s.ok()) return s;
    sums[r] = v;
    auto w = torch::full({3}, 7.0f + r);  // rank 0: 7, rank 1: 8
    auto other = torch::full({2}, 1.0f);
    if (Status s = dp.check_in_sync({other}, "equal tensors"); !s.ok()) return s;
    diverged[r] = dp.check_in_sync({w, other}, "test weights");
    if (Status s = dp.broadcast({w}); !s.ok()) return s;
    after[r] = w;
    return dp.check_in_sync({w, other}, "test weights after the broadcast");
  });
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(st[r].ok()) << st[r].message();
    EXPECT_EQ(sums[r], (std::vector<double>{3.0, 10.0}));
    // Before the broadcast the ranks differ, and the check says so by name.
    ASSERT_FALSE(diverged[r].ok());
    EXPECT_NE(diverged[r].message().find("test weights"), std::string::npos) << diverged[r].message();
    EXPECT_TRUE(torch::equal(after[r], torch::full({3}, 7.0f)));  // rank 0's values
  }
}

TEST(DataParallel, TheFingerprintSeesASwapAndOneChangedElement) {
  auto a = torch::arange(6, torch::kFloat32), b = torch::ones({4});
  const auto base = tensor_fingerprint({a, b});
  EXPECT_EQ(base, tensor_fingerprint({a.clone(), b.clone()}));
  EXPECT_NE(base, tensor_fingerprint({b, a}));
  auto c = a.clone();
  c[5] = 5.001f;
  EXPECT_NE(base, tensor_fingerprint({c, b}));
  auto d = a.clone();
  d[1] = 2.0f;  // a swap inside one tensor
  d[2] = 1.0f;
  EXPECT_NE(base, tensor_fingerprint({d, b}));
}

TEST(DataParallel, OneRankNeedsNoGroupAndBadRanksAreNamed) {
  DataParallelOptions o;  // world 1
  auto dp = DataParallel::connect(o);
  ASSERT_TRUE(dp.ok()) << dp.error();
  auto p = torch::zeros({2}, torch::requires_grad());
  p.mutable_grad() = torch::ones({2});
  ASSERT_TRUE((*dp)->sum_gradients({p}, 2.0).ok());
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({2}, 2.0f)));
  std::vector<double> v{4.0};
  ASSERT_TRUE((*dp)->sum(v).ok());
  EXPECT_EQ(v[0], 4.0);
  EXPECT_TRUE((*dp)->check_in_sync({p}, "x").ok());

  o.world = 2;
  o.rank = 2;
  auto bad = DataParallel::connect(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("rank 2"), std::string::npos) << bad.error();
  o.rank = 1;
  auto no_store = DataParallel::connect(o);
  ASSERT_FALSE(no_store.ok());
  EXPECT_NE(no_store.error().find("store"), std::string::npos) << no_store.error();
}

// ---- orchestration/data_parallel_run.h: children are /bin/sh here ---------------

TEST(DataParallelRun, ChildArgvCarryTheRankWorldStoreAndTimeout) {
  DataParallelRunOptions o;
  o.world = 3;
  o.timeout_s = 77;
  o.child_args = {"pretrain", "--config", "c.yaml"};
  const auto a = data_parallel_child_argv("/x/gr1", o, 2, "/tmp/s");
  EXPECT_EQ(a, (std::vector<std::string>{"/x/gr1", "pretrain", "--config", "c.yaml", "--dp-rank", "2",
                                         "--dp-world", "3", "--dp-store", "/tmp/s", "--dp-timeout",
                                         "77"}));
}

TEST(DataParallelRun, AChildThatFailsIsNamedAndFailsTheRun) {
  DataParallelRunOptions o;
  o.world = 3;
  o.self_exe = "/bin/sh";
  // sh -c SCRIPT sh --dp-rank R ...: $2 is the rank; rank 1 exits 0, rank 2 exits 3.
  o.child_args = {"-c", "[ \"$2\" = 2 ] && exit 3; exit 0", "sh"};
  std::ostringstream err;
  DataParallelOptions given;
  const int rc = run_data_parallel(
      o,
      [&](const DataParallelOptions& dp) {
        given = dp;
        return 0;
      },
      err);
  EXPECT_EQ(rc, 2) << err.str();
  EXPECT_EQ(given.rank, 0);
  EXPECT_EQ(given.world, 3);
  EXPECT_FALSE(given.store_path.empty());
  EXPECT_NE(err.str().find("rank-2"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("status 3"), std::string::npos) << err.str();
  EXPECT_EQ(err.str().find("rank-1 exited with"), std::string::npos) << err.str();
  // The rendezvous directory is gone.
  EXPECT_FALSE(fs::exists(fs::path(given.store_path).parent_path()));
}

TEST(DataParallelRun, AFailedRankZeroStopsTheChildrenAndKeepsItsExitCode) {
  DataParallelRunOptions o;
  o.world = 2;
  o.self_exe = "/bin/sh";
  o.child_args = {"-c", "sleep 60", "sh"};
  o.grace_ms = 2000;
  std::ostringstream err;
  const int rc = run_data_parallel(o, [](const DataParallelOptions&) { return 5; }, err);
  EXPECT_EQ(rc, 5) << err.str();
  // Stopped on purpose: not reported as a failure of its own.
  EXPECT_EQ(err.str().find("data parallel: rank-1"), std::string::npos) << err.str();
}

TEST(DataParallelRun, OneRankRunsInThisProcessOnly) {
  DataParallelRunOptions o;
  o.world = 1;
  o.self_exe = "/nonexistent";
  std::ostringstream err;
  int calls = 0;
  EXPECT_EQ(run_data_parallel(o, [&](const DataParallelOptions& dp) {
              ++calls;
              EXPECT_EQ(dp.world, 1);
              return 0;
            }, err), 0);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace gr1
