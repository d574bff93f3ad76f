#include "cli/http_thread_pool.h"

#include <algorithm>
#include <utility>

namespace s3db::cli {

HttpThreadPool::HttpThreadPool(std::size_t max_threads) : max_threads_(max_threads) {}

HttpThreadPool::~HttpThreadPool() { shutdown(); }

void HttpThreadPool::enqueue(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  if (!idle_.empty()) {
    Worker* worker = idle_.back();
    idle_.pop_back();
    worker->task = std::move(task);
    worker->wake.notify_one();
    return;
  }
  if (threads_.size() < max_threads_) {
    auto worker = std::make_unique<Worker>();
    worker->task = std::move(task);
    Worker& started = *worker;
    workers_.push_back(std::move(worker));
    threads_.emplace_back([this, &started] { Run(started); });
    return;
  }
  waiting_.push_back(std::move(task));
}

void HttpThreadPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
    for (Worker* worker : idle_) worker->wake.notify_one();
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) thread.join();
}

std::size_t HttpThreadPool::threads_started() const {
  std::lock_guard lock(mutex_);
  return workers_.size();
}

std::size_t HttpThreadPool::idle_threads() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

void HttpThreadPool::Run(Worker& worker) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!worker.task && !waiting_.empty()) {
      worker.task = std::move(waiting_.front());
      waiting_.pop_front();
    }
    if (!worker.task) {
      if (shutting_down_) return;
      idle_.push_back(&worker);
      worker.wake.wait(lock, [&] { return worker.task || shutting_down_; });
      if (!worker.task) {
        // Woken by shutdown() while idle: enqueue() will not pick this worker any more.
        idle_.erase(std::find(idle_.begin(), idle_.end(), &worker));
        continue;  // runs what is still waiting, then returns
      }
    }
    std::function<void()> task = std::exchange(worker.task, nullptr);
    lock.unlock();
    task();
    task = nullptr;  // what the task holds is released outside the lock
    lock.lock();
  }
}

}  // namespace s3db::cli
