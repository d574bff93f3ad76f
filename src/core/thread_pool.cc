#include "core/thread_pool.h"

#include <atomic>
#include <memory>

namespace s3db {

ThreadPool::ThreadPool(std::size_t threads) {
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void ThreadPool::Work() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void ThreadPool::ParallelFor(std::size_t count, const std::function<void(std::size_t)>& fn) {
  if (count == 0) return;
  struct Shared {
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> done{0};
    std::mutex mutex;
    std::condition_variable finished;
  };
  auto shared = std::make_shared<Shared>();
  auto run = [shared, count, &fn] {
    while (true) {
      std::size_t i = shared->next.fetch_add(1);
      if (i >= count) return;
      fn(i);
      if (shared->done.fetch_add(1) + 1 == count) {
        std::lock_guard lock(shared->mutex);
        shared->finished.notify_all();
      }
    }
  };
  std::size_t helpers = std::min(threads_.size(), count - 1);
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < helpers; ++i) tasks_.push_back(run);
  }
  wake_.notify_all();
  run();
  std::unique_lock lock(shared->mutex);
  shared->finished.wait(lock, [&] { return shared->done.load() == count; });
}

}  // namespace s3db
