#pragma once
// A bounded multi-thread queue: push blocks while full (backpressure on the producer side),
// try_push_all refuses instead, pop waits up to a timeout. close() wakes everyone for shutdown.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace telemetryd {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  /// False when the queue was closed (the item is not queued).
  bool push(T item) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  /// Queues every item or none, without waiting: for callers that must not block (the io
  /// thread) and answer "busy, retry" instead. False when closed or when the items do not fit;
  /// an empty queue takes any number (a batch larger than the capacity could never fit).
  bool try_push_all(std::vector<T>& items) {
    const std::lock_guard lock(mutex_);
    if (closed_ || (!items_.empty() && items_.size() + items.size() > capacity_)) return false;
    for (auto& item : items) items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  std::optional<T> pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); }) ||
        items_.empty()) {
      return std::nullopt;
    }
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void close() {
    const std::lock_guard lock(mutex_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  std::size_t size() const {
    const std::lock_guard lock(mutex_);
    return items_.size();
  }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace telemetryd
