// The contract between the replication engine and a driver (the code for one kind of target).
//
// The engine owns retries, backoff, timeouts, ordering, dead letters, logs and events. A driver
// only delivers a batch and answers, per change: delivered, retryable (optionally after a
// delay), unauthorized (pause the replicator), or permanent failure with a reason.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/plugin.h"

namespace s3db {
class Database;
}

namespace s3db::replicator {

// One change, routed to one destination and transformed, ready for a driver.
struct DeliveryItem {
  std::string change_id;         // "resource:id:rev"; stable across retries and restarts
  std::uint64_t sequence = 0;    // position in the change log
  std::string source_resource;   // resource the change happened on
  std::string target;            // destination name (resource, table, queue key…) after mapping
  std::string id;                // record id (kept even when a transform drops it)
  std::uint64_t revision = 0;
  Action action = Action::kInsert;
  JsonObject data;                 // transformed record; for deletes the last stored record
  std::optional<JsonObject> before;  // real pre-image on updates (transformed likewise)
  std::int64_t timestamp_ms = 0;   // time of the write
  const JsonObject* destination_options = nullptr;  // extra per-destination keys (e.g. "table")
};

enum class Outcome {
  kDelivered,
  kRetryable,     // try again after backoff (or retry_after)
  kUnauthorized,  // 401/403-like: pause the whole replicator and probe until it recovers
  kPermanent,     // never succeeds: dead-letter queue with `reason`
};

struct DeliveryResult {
  Outcome outcome = Outcome::kDelivered;
  std::chrono::milliseconds retry_after{0};  // a hint from the target (Retry-After)
  bool pause_replicator = false;             // retry_after applies to the whole replicator
  // Retryable because the target as a whole did not answer (connection refused or lost, no
  // answer in time, 502/503/504): the engine pauses and probes instead of charging the
  // change a retry, so an outage never dead-letters a change, even when it is the only one.
  bool target_unreachable = false;
  std::string reason;   // short machine word for dead letters: "schema_mismatch", "http_400"…
  std::string error;    // human-readable, without secrets

  static DeliveryResult Delivered() { return {}; }
  static DeliveryResult Retryable(std::string error, std::chrono::milliseconds after = {}) {
    DeliveryResult r;
    r.outcome = Outcome::kRetryable;
    r.error = std::move(error);
    r.retry_after = after;
    return r;
  }
  static DeliveryResult Unreachable(std::string error) {
    DeliveryResult r = Retryable(std::move(error));
    r.target_unreachable = true;
    return r;
  }
  static DeliveryResult Permanent(std::string reason, std::string error) {
    DeliveryResult r;
    r.outcome = Outcome::kPermanent;
    r.reason = std::move(reason);
    r.error = std::move(error);
    return r;
  }
  static DeliveryResult Unauthorized(std::string error) {
    DeliveryResult r;
    r.outcome = Outcome::kUnauthorized;
    r.error = std::move(error);
    return r;
  }
};

// What a driver may use from its surroundings.
struct DriverContext {
  std::string replicator_id;
  Database* source = nullptr;   // the database whose changes are replicated
  std::string state_dir;        // a folder private to this replicator
  // Definition of a source resource ({"attributes":…}) or nullopt when unknown.
  std::function<std::optional<JsonObject>(std::string_view resource)> resource_definition;
  // Every destination of the replicator's mapping, so a driver can check at Start what its
  // config leaves to them (the BigQuery driver: a dataset named by every destination instead
  // of datasetId). Empty with every_resource: the replicator takes every resource, each to a
  // destination of its own name.
  struct DestinationInfo {
    std::string source;   // the source resource
    std::string target;   // the destination name (Destination::resource, or the source's)
    JsonObject options;   // the destination's driver keys ("table", "dataset", ...)
  };
  std::vector<DestinationInfo> destinations;
  bool every_resource = false;
  // The plugin's maxBackoffMs: the longest retry delay a driver that schedules its own retries
  // (the webhook's retryDelay) may ask for. Zero: no cap.
  std::chrono::milliseconds max_retry_delay{0};
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Connects and validates the target. Errors name the config option and the fix.
  virtual Status Start() = 0;

  // Delivers a batch in change-log order. A batch may hold several changes of one record, in
  // revision order: the driver must apply them in that order (or collapse them to the latest).
  // Returns exactly one result per item, in the same order. `timeout` bounds the whole call.
  virtual std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                              std::chrono::milliseconds timeout) = 0;

  // Makes everything delivered so far durable (file drivers finalize their files). The engine
  // moves the checkpoint past a change only after Deliver said delivered and Flush succeeded.
  virtual Status Flush() { return Ok(); }

  // The least time between two Flush calls (and so between two checkpoint moves) while the
  // engine has delivered changes to make durable; nullopt: the engine's default (10 ms when
  // idle, 200 ms under load). Stop() always flushes what is left.
  virtual std::optional<std::chrono::milliseconds> FlushInterval() const {
    return std::nullopt;
  }

  // The replicator's checkpoint was saved at `sequence` (after a successful Flush): no change
  // at or below it is delivered again, also not after a restart. Drivers may release what
  // they keep to recognise replays of those changes.
  virtual void CheckpointSaved(std::uint64_t /*sequence*/) {}

  virtual void Stop() {}

  // Driver-specific counters for the replicator's stats ("truncated_cells": …), by name.
  // Called from any thread, also while Deliver runs.
  virtual std::map<std::string, std::uint64_t> Counters() const { return {}; }
};

// Creates a driver from the replicator's "config" object.
using DriverFactory = std::function<Result<std::unique_ptr<Driver>>(const JsonObject& config,
                                                                    const DriverContext& context)>;

// Registers a driver under a name ("s3db", "webhook", …). Later registrations replace earlier.
void RegisterDriver(std::string name, DriverFactory factory);
std::optional<DriverFactory> FindDriver(std::string_view name);
std::vector<std::string> RegisteredDrivers();

// The keys a destination object in a replicator's "resources" may carry for this driver,
// besides the engine's own (resource, transform, actions, shouldReplicate): "table" and
// "schema" for postgresql, for instance. They reach the driver as
// DeliveryItem::destination_options. Any other key is refused at start with an error naming
// its path, so that a misspelt "tranform" never passes silently. Declarations replace earlier
// ones; a driver that declares nothing accepts only the engine's keys.
void DeclareDestinationKeys(std::string driver, std::vector<std::string> keys);
std::vector<std::string> DestinationKeys(std::string_view driver);

}  // namespace s3db::replicator
