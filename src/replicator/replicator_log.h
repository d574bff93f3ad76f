// persistReplicatorLog: entries written to the replicator_log resource off the hot path.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "replicator/event_bus.h"
#include "s3db/database.h"

namespace s3db::replicator::internal {

// The definition the writer creates the log resource `name` with.
ResourceDefinition ReplicatorLogDefinition(std::string name);

// Whether `definition` is that of a log resource (its attributes are the log's fields), as
// opposed to a resource of the application that happens to have the name.
bool IsReplicatorLogDefinition(const ResourceDefinition& definition);

struct ReplicatorLogEntry {
  std::string replicator;
  std::string resource;
  std::string destination;
  std::string action;
  std::string record_id;
  std::string change_id;
  std::string status;  // "success" or "error"
  std::string error;
  int attempts = 0;
  bool dead_lettered = false;
  std::int64_t timestamp_ms = 0;
};

// Queues entries and inserts them in batches from its own thread. The queue is bounded:
// when full, new entries are dropped and counted (a "replicator_log_error" event says so).
// Thread-safe.
class ReplicatorLogWriter {
 public:
  ReplicatorLogWriter(Database& database, std::string resource, const EventBus& events);
  ~ReplicatorLogWriter();

  void Add(ReplicatorLogEntry entry);
  // Writes what is queued and stops the thread.
  void Stop();
  // Writes what is queued now (tests).
  void FlushNow();

 private:
  void Run();
  void WriteBatch(std::deque<ReplicatorLogEntry>& batch);
  bool EnsureResource();

  Database& database_;
  std::string resource_;
  const EventBus& events_;

  std::mutex mutex_;  // guards queue_, stopping_, dropped_, flush_requests_
  std::condition_variable wake_;
  std::condition_variable flushed_;
  std::deque<ReplicatorLogEntry> queue_;
  bool stopping_ = false;
  std::uint64_t dropped_ = 0;
  std::uint64_t flush_requests_ = 0;
  std::uint64_t flushes_done_ = 0;

  bool resource_ready_ = false;            // writer thread only
  std::int64_t next_creation_attempt_ms_ = 0;  // writer thread only
  std::thread thread_;
};

}  // namespace s3db::replicator::internal
