// The request threads of `s3db run`: started as connections need them, the last idle one
// reused, so that the threads a steady set of clients touches (and the memory they keep
// resident) stay as many as the clients, however often they reconnect.
#include "cli/http_thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace s3db::cli {
namespace {

using namespace std::chrono_literals;

// Tasks that block until released, and count what ran where.
class Tasks {
 public:
  std::function<void()> Blocking() {
    return [this] {
      std::unique_lock lock(mutex_);
      threads_.insert(std::this_thread::get_id());
      ++running_;
      changed_.notify_all();
      changed_.wait(lock, [&] { return released_ > 0; });
      --released_;
      --running_;
      ++done_;
      changed_.notify_all();
    };
  }
  // Waits until `count` tasks run at once (or 5 s).
  bool WaitRunning(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return running_ == count; });
  }
  void Release(int count) {
    std::lock_guard lock(mutex_);
    released_ += count;
    changed_.notify_all();
  }
  // Waits until `count` tasks finished in all (or 5 s).
  bool WaitDone(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return done_ == count; });
  }
  std::size_t distinct_threads() {
    std::lock_guard lock(mutex_);
    return threads_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::thread::id> threads_;
  int running_ = 0;
  int released_ = 0;
  int done_ = 0;
};

bool WaitIdle(const HttpThreadPool& pool, std::size_t count) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pool.idle_threads() != count) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(HttpThreadPoolTest, StartsNoThreadBeforeTheFirstTask) {
  HttpThreadPool pool(64);
  EXPECT_EQ(pool.threads_started(), 0u);
}

TEST(HttpThreadPoolTest, ClientsReconnectingOneAtATimeUseOneThread) {
  HttpThreadPool pool(64);
  Tasks tasks;
  for (int i = 0; i < 50; ++i) {
    pool.enqueue(tasks.Blocking());
    ASSERT_TRUE(tasks.WaitRunning(1));
    tasks.Release(1);
    ASSERT_TRUE(tasks.WaitDone(i + 1));
    // Until the worker is idle again, a new task would (rightly) get a second thread.
    ASSERT_TRUE(WaitIdle(pool, 1));
  }
  EXPECT_EQ(pool.threads_started(), 1u);
  EXPECT_EQ(tasks.distinct_threads(), 1u);
}

// The soak's pattern: 16 clients open at once, all reconnecting now and then. The threads
// that ever served a connection must stay 16, not go round the whole pool.
TEST(HttpThreadPoolTest, ReconnectingClientsReuseTheSameThreads) {
  constexpr int kClients = 16;
  HttpThreadPool pool(64);
  Tasks tasks;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < kClients; ++i) pool.enqueue(tasks.Blocking());
    ASSERT_TRUE(tasks.WaitRunning(kClients)) << "round " << round;
    tasks.Release(kClients);
    ASSERT_TRUE(tasks.WaitDone((round + 1) * kClients));
    ASSERT_TRUE(WaitIdle(pool, kClients));
  }
  EXPECT_EQ(pool.threads_started(), static_cast<std::size_t>(kClients));
  EXPECT_EQ(tasks.distinct_threads(), static_cast<std::size_t>(kClients));
}

TEST(HttpThreadPoolTest, TasksBeyondTheLimitWaitForAnIdleThread) {
  HttpThreadPool pool(2);
  Tasks tasks;
  for (int i = 0; i < 5; ++i) pool.enqueue(tasks.Blocking());
  ASSERT_TRUE(tasks.WaitRunning(2));
  EXPECT_EQ(pool.threads_started(), 2u);

  tasks.Release(5);
  EXPECT_TRUE(tasks.WaitDone(5));
  EXPECT_EQ(pool.threads_started(), 2u);
}

TEST(HttpThreadPoolTest, ShutdownRunsWaitingTasksAndJoins) {
  std::atomic<int> ran{0};
  {
    HttpThreadPool pool(1);
    Tasks tasks;
    pool.enqueue(tasks.Blocking());
    ASSERT_TRUE(tasks.WaitRunning(1));
    for (int i = 0; i < 3; ++i) pool.enqueue([&] { ++ran; });
    std::thread releaser([&] {
      std::this_thread::sleep_for(20ms);
      tasks.Release(1);
    });
    pool.shutdown();
    releaser.join();
    EXPECT_EQ(ran.load(), 3);
    pool.shutdown();  // idempotent; the destructor calls it again
  }
  EXPECT_EQ(ran.load(), 3);
}

}  // namespace
}  // namespace s3db::cli
