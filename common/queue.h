// BoundedQueue<T>: a bounded, closable, thread-safe FIFO between threads
// (e.g. learner bus thread -> trainer, actor rollout thread -> bus thread).
//
// Contract:
//  - capacity >= 1 items (0 is treated as 1). A full queue BLOCKS the producer
//    (back-pressure); nothing is ever dropped by the queue.
//  - push() blocks until there is room or the queue is closed; push_for()
//    waits at most `timeout`. Both return false if the item was not queued
//    (closed, or timed out); push_for() then leaves the item untouched.
//  - pop() blocks until an item is available or the queue is closed AND empty;
//    pop_for() waits at most `timeout`. An empty optional means "timed out" or
//    "closed and drained" (closed() tells them apart).
//  - close() is idempotent and wakes every waiter. After close, push fails,
//    and pop keeps returning the remaining items in order until empty.
//  - All methods are thread-safe; any number of producers and consumers.
//    The destructor must not race with other calls (join users first).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace gr1 {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity ? capacity : 1) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Blocks while full. False (item dropped) if the queue is or becomes closed.
  bool push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  // Waits at most `timeout` for room. On false the item is NOT moved from.
  template <class Rep, class Period>
  bool push_for(T&& item, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!not_full_.wait_for(lock, timeout,
                            [&] { return closed_ || items_.size() < capacity_; }) ||
        closed_)
      return false;
    items_.push_back(std::move(item));
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  // Never blocks. On false the item is NOT moved from.
  bool try_push(T&& item) { return push_for(std::move(item), std::chrono::milliseconds(0)); }

  // Blocks until an item arrives; empty only when closed and drained.
  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    return take_locked(lock);
  }

  // Waits at most `timeout`; empty on timeout or when closed and drained.
  template <class Rep, class Period>
  std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
    return take_locked(lock);
  }

  // Waits at most `timeout` for at least one item, then takes up to `max_items`
  // without waiting further. Empty on timeout or when closed and drained.
  template <class Rep, class Period>
  std::vector<T> pop_up_to(size_t max_items, std::chrono::duration<Rep, Period> timeout) {
    std::vector<T> out;
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); });
    while (out.size() < max_items && !items_.empty()) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    lock.unlock();
    if (!out.empty()) not_full_.notify_all();
    return out;
  }

  // Wakes all waiters; later pushes fail; pops drain what is left.
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  std::optional<T> take_locked(std::unique_lock<std::mutex>& lock) {
    if (items_.empty()) return std::nullopt;
    std::optional<T> v(std::move(items_.front()));
    items_.pop_front();
    lock.unlock();
    not_full_.notify_one();
    return v;
  }

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace gr1
