// One dispatcher per replicator: reads the change log from its checkpoint, routes, filters and
// transforms each change, batches, delivers through the driver, retries, dead-letters and
// advances the checkpoint. It runs on its own thread, so a slow or failing target never holds
// up another replicator.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "replicator/change_log.h"
#include "replicator/event_bus.h"
#include "replicator/recent_revisions.h"
#include "replicator/replicator_log.h"
#include "s3db/replicator/driver.h"
#include "s3db/replicator/replicator_plugin.h"

namespace spdlog {
class logger;
}

namespace s3db::replicator::internal {

using Routes = std::map<std::string, std::vector<Destination>, std::less<>>;

// What every dispatcher shares; owned by the engine and outliving the dispatchers.
struct EngineContext {
  const ReplicatorPluginOptions* options = nullptr;
  ChangeLog* log = nullptr;
  Database* database = nullptr;
  const EventBus* events = nullptr;
  ReplicatorLogWriter* log_writer = nullptr;  // null unless persistReplicatorLog
  std::shared_ptr<spdlog::logger> logger;
};

struct DispatcherConfig {
  std::string id;
  std::string driver_name;
  Routes routes;
  // No "resources" given: every resource but `excluded_resource` (the replicator log), to the
  // same name with every action; `routes` is empty then.
  bool every_resource = false;
  std::string excluded_resource;
  bool enabled = true;
  std::unique_ptr<Driver> driver;
};

class Dispatcher {
 public:
  using Clock = std::chrono::steady_clock;
  // Called on the dispatcher thread when a change settles: "delivered", "filtered",
  // "dead_letter" or "skipped" (not for this replicator).
  using Observer = std::function<void(std::uint64_t sequence, std::string_view status)>;

  // `checkpoint`: every change at or below it is already settled.
  Dispatcher(DispatcherConfig config, const EngineContext& context, std::uint64_t checkpoint);
  ~Dispatcher();

  // Starts the driver (a retryable failure is retried on the dispatcher thread) and the thread.
  Status Start();
  // Finishes the batch in flight, flushes, saves the checkpoint, stops the driver.
  void Stop();

  // Started and not stopped.
  bool Running() const { return thread_.joinable() && !stopping_.load(); }

  void SetEnabled(bool enabled);
  bool enabled() const { return enabled_.load(); }
  const std::string& id() const { return config_.id; }
  const std::string& driver_name() const { return config_.driver_name; }
  const Routes& routes() const { return config_.routes; }
  bool every_resource() const { return config_.every_resource; }
  bool Maps(std::string_view resource) const {
    if (config_.every_resource) return resource != config_.excluded_resource;
    return config_.routes.count(resource) > 0;
  }

  // New changes are in the log.
  void Notify();

  ReplicatorStats Stats() const;
  ReplicatorState State() const;
  std::optional<ReplicatorError> LastError() const;
  std::uint64_t PersistedCheckpoint() const { return persisted_checkpoint_.load(); }
  // Settled in memory (may not be saved yet).
  std::uint64_t SettledThrough() const { return settled_through_.load(); }

  // Waits until the saved checkpoint reaches `sequence`; false on timeout or stop.
  bool WaitSettled(std::uint64_t sequence, Clock::time_point deadline) const;

  std::size_t AddObserver(Observer observer);
  void RemoveObserver(std::size_t handle);

 private:
  struct WorkItem {
    DeliveryItem item;
    std::string key;
    std::size_t destination_index = 0;
    int attempts = 0;                  // failed attempts counted against maxRetries
    int total_attempts = 0;            // every attempt
    std::string last_error;
  };
  struct KeyQueue {
    std::deque<WorkItem> items;  // by revision; the head is the next to deliver
    bool in_flight = false;
    bool scheduled = false;      // in ready_ or delayed_
  };
  struct WindowEntry {
    std::shared_ptr<const LoggedChange> logged;  // shared with the change log's tail
    int open_items = 0;
    bool delivered_any = false;
    bool dead_any = false;
  };
  enum class ItemOutcome { kDelivered, kFiltered, kDeadLettered };

  void Run();
  bool StartDriver();
  bool FillWindow();  // false when the log could not be read
  void Route(std::shared_ptr<const LoggedChange> logged);
  void Enqueue(WorkItem item);
  void PromoteDueRetries(Clock::time_point now);
  void DeliverBatch();
  void SettleItem(std::uint64_t sequence, ItemOutcome outcome);
  void SettleEntry(std::uint64_t sequence, std::string_view status);
  void FinishHead(const std::string& key, bool delivered);
  // Saves a dead letter; false when the log refused it. `queue_if_unsaved`: keep it and save
  // it later (its change stays open until then).
  bool SaveDeadLetter(const LoggedChange& logged, const std::string& destination,
                      const std::string& reason, const std::string& error, int attempts,
                      bool queue_if_unsaved);
  void MaybeCheckpoint(Clock::duration min_interval);
  void UpdateSettledThrough();
  void Pause(std::string reason, std::chrono::milliseconds duration);
  std::chrono::milliseconds Backoff(int attempt);
  std::chrono::milliseconds PauseBackoff(int streak);
  void WaitForWork(Clock::time_point until);
  void RecordError(ReplicatorError error);
  void EmitSuccess(const DeliveryItem& item, int attempt, double duration_ms);
  void EmitFailure(const DeliveryItem& item, const JsonObject& data, int attempt,
                   double duration_ms, const std::string& error, const std::string& reason,
                   bool will_retry);
  JsonObject BasePayload(const DeliveryItem& item, int attempt, double duration_ms) const;
  void LogEntry(const DeliveryItem& item, std::string status, std::string error, int attempts,
                bool dead_lettered);

  // The driver call of one batch runs on caller_, so that the dispatcher can give up on it
  // when it exceeds the `timeout` option: the attempt then counts as failed (retryable) and
  // the dispatcher carries on (routing, stats, events, stop). The driver gets one call at a
  // time: the next batch waits until the abandoned call has returned.
  struct DriverCall {
    std::mutex mutex;  // guards every member below; pairs with changed
    std::condition_variable changed;
    bool has_job = false;  // a call is queued or running
    bool done = false;     // results are ready
    bool quit = false;
    std::vector<DeliveryItem> batch;  // read by the driver while the call runs
    std::chrono::milliseconds timeout{0};
    std::vector<DeliveryResult> results;
  };
  void CallerLoop();
  // Runs the batch through the driver and returns its results, or nullopt when the call did
  // not return within `timeout` (+ a short grace for the driver's own timeout answer). The
  // batch is handed back in both cases.
  std::optional<std::vector<DeliveryResult>> CallDriver(std::vector<DeliveryItem>& batch,
                                                        std::chrono::milliseconds timeout);
  // True when no abandoned call is running any more (its late answer is dropped); waits for
  // it until `until`.
  bool CollectAbandonedCall(Clock::time_point until);

  DispatcherConfig config_;
  EngineContext context_;
  DriverCall call_;
  std::thread caller_;
  bool call_abandoned_ = false;  // dispatcher thread only: a timed-out call is still running
  Clock::time_point call_started_{};  // dispatcher thread only: start of that call
  std::size_t batch_size_;
  std::size_t max_window_;
  // Per source resource and destination: the options given to the driver (never changed).
  std::map<std::string, std::vector<JsonObject>, std::less<>> destination_options_;
  const JsonObject no_options_;  // for every_resource destinations

  // Dispatcher thread only.
  std::uint64_t cursor_ = 0;  // last sequence read from the log
  std::map<std::uint64_t, WindowEntry> window_;  // unsettled changes
  std::unordered_map<std::string, KeyQueue> keys_;
  RecentRevisions recent_revisions_;  // key -> last delivered revision, for a while
  std::deque<std::string> ready_;
  std::multimap<Clock::time_point, std::string> delayed_;
  Clock::time_point ready_since_{};
  Clock::time_point paused_until_{};
  Clock::time_point last_checkpoint_time_{};
  int outage_streak_ = 0;
  bool last_batch_full_ = false;
  bool driver_started_ = false;
  int start_attempts_ = 0;
  std::vector<std::pair<LoggedChange, DeadLetter>> unsaved_dead_letters_;
  std::mt19937_64 random_{std::random_device{}()};
  Clock::time_point last_error_log_{};
  int suppressed_error_logs_ = 0;

  std::atomic<bool> enabled_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> persisted_checkpoint_;
  std::atomic<std::uint64_t> settled_through_;
  std::atomic<std::int64_t> oldest_unsettled_ms_{0};  // 0: none in memory
  std::atomic<int> state_{static_cast<int>(ReplicatorState::kStopped)};

  mutable std::mutex wake_mutex_;  // guards woken_; pairs with wake_ and settled_
  std::condition_variable wake_;
  mutable std::condition_variable settled_;
  bool woken_ = false;

  mutable std::mutex stats_mutex_;  // guards stats_, latencies_, last_error_, pause_reason_
  ReplicatorStats stats_;
  std::vector<double> latencies_;   // ring of recent write -> delivered latencies (ms)
  std::size_t latency_next_ = 0;
  std::optional<ReplicatorError> last_error_;
  std::string pause_reason_;

  std::mutex observers_mutex_;  // guards observers_ and next_observer_
  std::map<std::size_t, Observer> observers_;
  std::size_t next_observer_ = 1;

  std::thread thread_;
};

}  // namespace s3db::replicator::internal
