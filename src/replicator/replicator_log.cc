#include "replicator/replicator_log.h"

#include <algorithm>
#include <chrono>

#include "replicator/engine_util.h"

namespace s3db::replicator::internal {
namespace {

constexpr std::size_t kMaxQueued = 100000;
constexpr std::size_t kBatch = 500;
constexpr auto kFlushInterval = std::chrono::milliseconds(200);
constexpr std::int64_t kCreationRetryMs = 5000;

JsonObject ToRecord(const ReplicatorLogEntry& entry) {
  JsonObject record;
  record["replicator"] = entry.replicator;
  record["resource"] = entry.resource;
  record["destination"] = entry.destination;
  record["action"] = entry.action;
  record["recordId"] = entry.record_id;
  record["changeId"] = entry.change_id;
  record["status"] = entry.status;
  record["error"] = entry.error;
  record["attempts"] = entry.attempts;
  record["deadLettered"] = entry.dead_lettered;
  record["timestamp"] = entry.timestamp_ms;
  return record;
}

}  // namespace

ResourceDefinition ReplicatorLogDefinition(std::string name) {
  ResourceDefinition definition;
  definition.name = std::move(name);
  for (const char* field : {"replicator", "resource", "destination", "action", "recordId",
                            "changeId", "status", "error"}) {
    definition.attributes[field] = "string";
  }
  definition.attributes["attempts"] = "number";
  definition.attributes["deadLettered"] = "boolean";
  definition.attributes["timestamp"] = "number";
  return definition;
}

bool IsReplicatorLogDefinition(const ResourceDefinition& definition) {
  const JsonObject expected = ReplicatorLogDefinition(definition.name).attributes;
  if (definition.attributes.size() != expected.size()) return false;
  return std::all_of(expected.begin(), expected.end(), [&](const auto& field) {
    return definition.attributes.contains(field.key());
  });
}

ReplicatorLogWriter::ReplicatorLogWriter(Database& database, std::string resource,
                                         const EventBus& events)
    : database_(database), resource_(std::move(resource)), events_(events) {
  thread_ = std::thread([this] { Run(); });
}

ReplicatorLogWriter::~ReplicatorLogWriter() { Stop(); }

void ReplicatorLogWriter::Add(ReplicatorLogEntry entry) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= kMaxQueued) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(entry));
    wake = queue_.size() >= kBatch;
  }
  if (wake) wake_.notify_one();
}

void ReplicatorLogWriter::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ReplicatorLogWriter::FlushNow() {
  std::unique_lock lock(mutex_);
  if (!thread_.joinable() || stopping_) return;
  std::uint64_t request = ++flush_requests_;
  wake_.notify_all();
  flushed_.wait(lock, [&] { return flushes_done_ >= request || stopping_; });
}

void ReplicatorLogWriter::Run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait_for(lock, kFlushInterval, [&] {
      return stopping_ || queue_.size() >= kBatch || flush_requests_ > flushes_done_;
    });
    std::uint64_t requests = flush_requests_;
    std::uint64_t dropped = dropped_;
    dropped_ = 0;
    std::deque<ReplicatorLogEntry> batch;
    batch.swap(queue_);
    bool stop = stopping_;
    lock.unlock();

    if (dropped) {
      JsonObject event;
      event["logError"] = std::to_string(dropped) +
                          " replicator log entries dropped: the log queue is full";
      event["resource"] = resource_;
      events_.Emit("replicator_log_error", Json(std::move(event)));
    }
    while (!batch.empty()) {
      std::deque<ReplicatorLogEntry> part;
      while (!batch.empty() && part.size() < kBatch) {
        part.push_back(std::move(batch.front()));
        batch.pop_front();
      }
      WriteBatch(part);
    }

    lock.lock();
    flushes_done_ = requests;
    flushed_.notify_all();
    if (stop && queue_.empty()) return;
  }
}

bool ReplicatorLogWriter::EnsureResource() {
  if (resource_ready_) return true;
  if (database_.FindResource(resource_)) {
    resource_ready_ = true;
    return true;
  }
  std::int64_t now = NowMs();
  if (now < next_creation_attempt_ms_) return false;
  auto created = database_.CreateResource(ReplicatorLogDefinition(resource_));
  if (!created) {
    next_creation_attempt_ms_ = now + kCreationRetryMs;
    JsonObject event;
    event["resource"] = resource_;
    event["error"] = created.error().message;
    events_.Emit("replicator_log_resource_creation_error", Json(std::move(event)));
    return false;
  }
  resource_ready_ = true;
  return true;
}

void ReplicatorLogWriter::WriteBatch(std::deque<ReplicatorLogEntry>& batch) {
  if (batch.empty()) return;
  if (!EnsureResource()) {
    JsonObject event;
    event["logError"] = std::to_string(batch.size()) + " replicator log entries dropped: "
                        "the resource '" + resource_ + "' is not available";
    event["resource"] = resource_;
    events_.Emit("replicator_log_error", Json(std::move(event)));
    return;
  }
  Resource* resource = database_.FindResource(resource_);
  if (!resource) {
    resource_ready_ = false;
    return;
  }
  std::vector<JsonObject> records;
  records.reserve(batch.size());
  for (const auto& entry : batch) records.push_back(ToRecord(entry));
  auto results = resource->InsertMany(std::move(records));
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i]) continue;
    JsonObject event;
    event["logError"] = results[i].error().message;
    event["replicator"] = batch[i].replicator;
    event["resource"] = batch[i].resource;
    event["recordId"] = batch[i].record_id;
    event["changeId"] = batch[i].change_id;
    events_.Emit("replicator_log_error", Json(std::move(event)));
  }
}

}  // namespace s3db::replicator::internal
