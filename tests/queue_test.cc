// BoundedQueue (common/queue.h): back-pressure, close, drain, concurrency.
#include "common/queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

namespace gr1 {
namespace {

using namespace std::chrono_literals;

TEST(BoundedQueueTest, FullQueueBlocksTheProducerUntilAConsumerPops) {
  BoundedQueue<int> q(2);
  ASSERT_TRUE(q.push(1));
  ASSERT_TRUE(q.push(2));
  int item = 3;
  EXPECT_FALSE(q.push_for(std::move(item), 30ms));  // full: back-pressure, not a drop
  EXPECT_EQ(q.size(), 2u);

  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    EXPECT_TRUE(q.push(3));
    pushed = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(pushed.load());
  EXPECT_EQ(q.pop(), 1);
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), 3);
}

TEST(BoundedQueueTest, FailedTimedPushLeavesTheItemIntact) {
  BoundedQueue<std::unique_ptr<int>> q(1);
  ASSERT_TRUE(q.push(std::make_unique<int>(1)));
  auto item = std::make_unique<int>(2);
  EXPECT_FALSE(q.push_for(std::move(item), 10ms));
  ASSERT_NE(item, nullptr);
  EXPECT_EQ(*item, 2);
  EXPECT_FALSE(q.try_push(std::move(item)));
  ASSERT_NE(item, nullptr);
  ASSERT_TRUE(q.pop_for(0ms).has_value());
  EXPECT_TRUE(q.try_push(std::move(item)));
  EXPECT_EQ(item, nullptr);
}

TEST(BoundedQueueTest, PopForTimesOutOnAnEmptyQueue) {
  BoundedQueue<int> q(4);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.pop_for(40ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 35ms);
  EXPECT_FALSE(q.closed());
}

TEST(BoundedQueueTest, CloseWakesBlockedConsumersAndProducers) {
  BoundedQueue<int> empty(1);
  BoundedQueue<int> full(1);
  ASSERT_TRUE(full.push(0));
  std::atomic<int> woken{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      EXPECT_FALSE(empty.pop().has_value());
      ++woken;
    });
    waiters.emplace_back([&] {
      EXPECT_FALSE(full.push(1));
      ++woken;
    });
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(woken.load(), 0);
  empty.close();
  full.close();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 6);
}

TEST(BoundedQueueTest, PushAfterCloseFailsAndPopDrainsWhatIsLeft) {
  BoundedQueue<int> q(8);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.push(i));
  q.close();
  q.close();  // idempotent
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.push(99));
  int x = 100;
  EXPECT_FALSE(q.push_for(std::move(x), 10ms));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.pop(), i);
  EXPECT_FALSE(q.pop().has_value());
  EXPECT_FALSE(q.pop_for(10ms).has_value());
  EXPECT_EQ(q.size(), 0u);
}

TEST(BoundedQueueTest, PopUpToTakesWhatIsThereWithoutWaitingForMore) {
  BoundedQueue<int> q(10);
  EXPECT_TRUE(q.pop_up_to(3, 10ms).empty());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.push(i));
  EXPECT_EQ(q.pop_up_to(3, 1000ms), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(q.pop_up_to(3, 1000ms), (std::vector<int>{3, 4}));
}

TEST(BoundedQueueTest, ZeroCapacityMeansOne) {
  BoundedQueue<int> q(0);
  EXPECT_EQ(q.capacity(), 1u);
  EXPECT_TRUE(q.push(1));
  EXPECT_FALSE(q.try_push(2));
}

TEST(BoundedQueueTest, ManyProducersAndConsumersLoseAndDuplicateNothing) {
  constexpr int kProducers = 4, kConsumers = 3, kPerProducer = 20000;
  BoundedQueue<int64_t> q(8);
  std::atomic<int64_t> sum{0};
  std::atomic<int64_t> count{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.emplace_back([&] {
      while (auto v = q.pop()) {
        sum += *v;
        ++count;
      }
    });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) ASSERT_TRUE(q.push(int64_t{p} * kPerProducer + i));
    });
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  const int64_t n = int64_t{kProducers} * kPerProducer;
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
}

}  // namespace
}  // namespace gr1
