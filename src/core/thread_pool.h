// A fixed pool of worker threads for the parallel *Many calls.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace s3db {

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();

  // Runs fn(i) for i in [0, count) on the pool and the calling thread; returns when all are done.
  // Safe to call from inside a pool task (the caller helps instead of waiting idle).
  void ParallelFor(std::size_t count, const std::function<void(std::size_t)>& fn);

 private:
  void Work();

  std::mutex mutex_;  // guards tasks_ and stopping_
  std::condition_variable wake_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace s3db
