// The request threads of `s3db run`'s HTTP server (cpp-httplib): one task per connection,
// held for as long as the client keeps the connection alive.
//
// cpp-httplib's own pool starts all its threads at once and hands each new connection to the
// thread that has waited longest, so under a steady set of clients that reconnect now and then
// (a keep-alive connection ends after 1,000 requests) every thread of the pool gets used in
// turn. Each thread that ever served a connection keeps what it touched resident for good:
// its stack pages, its malloc thread cache and its share of an arena. The process's RSS then
// climbs for as long as it takes to go round the whole pool (with 16 clients at 5 requests/s
// and 64 threads: about 13 minutes), although nothing leaks.
//
// This pool gives a new connection to the thread that became idle last, and starts a thread
// only when none is idle, up to `max_threads`: the threads in use, and the memory they keep,
// follow the number of connections open at once, not the age of the process. When all
// `max_threads` are busy, connections wait in order for the next thread to become idle.
//
// Thread-safe. Threads that were started stay until shutdown().
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace s3db::cli {

class HttpThreadPool final : public httplib::TaskQueue {
 public:
  // REQUIRES: max_threads > 0.
  explicit HttpThreadPool(std::size_t max_threads);
  // Calls shutdown() if it was not called.
  ~HttpThreadPool() override;
  HttpThreadPool(const HttpThreadPool&) = delete;
  HttpThreadPool& operator=(const HttpThreadPool&) = delete;

  // Runs `task` on the thread that became idle last, on a new thread when none is idle, or,
  // with `max_threads` busy, on the first one to become idle. REQUIRES: not shut down.
  void enqueue(std::function<void()> task) override;

  // Runs the tasks still waiting, then stops and joins every thread. Idempotent.
  void shutdown() override;

  // Threads started so far (at most `max_threads`).
  std::size_t threads_started() const;
  // Threads waiting for a task.
  std::size_t idle_threads() const;

 private:
  struct Worker {
    std::condition_variable wake;
    std::function<void()> task;  // handed over by enqueue(); empty while idle
  };
  void Run(Worker& worker);

  const std::size_t max_threads_;
  mutable std::mutex mutex_;                   // guards every member below and the workers' tasks
  std::vector<Worker*> idle_;                  // the last one became idle last
  std::deque<std::function<void()>> waiting_;  // tasks that came while all threads were busy
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  bool shutting_down_ = false;
};

}  // namespace s3db::cli
