// The ReplicatorPlugin: replicates every insert, update and delete of a database's resources
// to any number of targets ("replicators"), each with its own resource mapping, transforms,
// filters and driver. The option names, defaults, events and methods are those of
// spec/replicator-plugin.md.
//
// Delivery is durable, ordered per record and at-least-once: each change is appended to a
// change log on local disk before the write call returns; one dispatcher thread per
// replicator reads it from its checkpoint, routes, filters, transforms, batches and hands
// the changes to its driver; retries, backoff, dead letters, logs and events are the
// engine's. A restarted process resumes every replicator at its checkpoint.
//
//   auto plugin = std::make_shared<replicator::ReplicatorPlugin>(options);
//   S3DB_RETURN_IF_ERROR(database->UsePlugin(plugin));
//   plugin->On("replicated", [](const Json& event) { ... });
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/database.h"
#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/plugin.h"
#include "s3db/replicator/driver.h"

namespace s3db::replicator {

class ChangeLog;          // s3db/replicator/change_log.h
struct ChangeLogContext;  // s3db/replicator/change_log.h
// Opens the change log the plugin uses instead of the SQLite one (see change_log.h).
using ChangeLogFactory =
    std::function<Result<std::unique_ptr<ChangeLog>>(const ChangeLogContext& context)>;

// Transforms the record before delivery. Returning std::nullopt skips the change for this
// destination (counted as filtered, never delivered). An exception thrown by the function
// sends the change to the dead-letter queue with the error
// "Transform function failed for resource '<source resource>': <what()>".
// When the returned object has no "id", the engine puts the record's id back.
// Called on the replicator's dispatcher thread; it may run again for the same change (retries,
// restarts, replays), so it should not have side effects.
using Transform = std::function<std::optional<JsonObject>(const JsonObject& data)>;

// Returns false to skip the change for this destination (counted as filtered). `data` is the
// untransformed record (for deletes: the last stored record). Same threading as Transform.
using ShouldReplicate = std::function<bool(const JsonObject& data, Action action)>;

// One destination of a source resource.
struct Destination {
  std::string resource;              // destination name; empty = same as the source resource
  Transform transform;               // empty = deliver the record as it is
  std::vector<Action> actions;       // empty = insert, update and delete
  ShouldReplicate should_replicate;  // empty = every change
  JsonObject options;                // extra keys given to the driver (e.g. "table")
};

// Hooks that let a configuration format (YAML with Lua, for example) supply functions where
// JSON has none. Every member is optional.
struct MappingFunctions {
  // Compiles the value of a "transform" key (e.g. Lua source text). `path` names the key for
  // error messages, e.g. "replicators[0].resources.users.transform".
  std::function<Result<Transform>(const Json& code, const std::string& path)> compile_transform;
  // Compiles the value of a "shouldReplicate" key.
  std::function<Result<ShouldReplicate>(const Json& code, const std::string& path)>
      compile_should_replicate;
  // True when a destination value is a function-only transform (syntax 4), for instance a
  // string holding a Lua function; it is then compiled with compile_transform.
  std::function<bool(const Json& value)> is_function;
};

// A replicator's "resources" option in every syntax of the spec:
//   ["users", "orders"]                                   1. array of names
//   {"users": "people"}                                   2. name -> destination name
//   {"users": {"resource": "people", "transform": f,
//              "actions": ["insert"], "shouldReplicate": g}}  3. object
//   {"users": f}                                          4. function-only transform (C++)
//   {"users": ["people", {"resource": "audit", ...}]}     5. several destinations
//   {"users": true}                                       6. same name, everything
// A destination object may also carry the keys its driver declares (DeclareDestinationKeys:
// "table" for postgresql, ...); they are kept in Destination::options. Any other key is an
// error naming its path. Functions come from the C++ builders or from MappingFunctions.
class ResourceMapping {
 public:
  ResourceMapping() = default;

  // Parses the JSON form. `path` prefixes error messages, e.g.
  // "replicators[1].resources.users[2].actions: unknown action 'upsert'" (kInvalidArgument).
  // `driver_keys`: the destination keys the driver accepts besides the engine's (see
  // DestinationKeys); any other key fails, e.g. "resources.users.tranform: unknown key;
  // expected one of resource, transform, actions, shouldReplicate (did you mean 'transform'?)".
  static Result<ResourceMapping> FromJson(const Json& value, const std::string& path = "resources",
                                          const MappingFunctions* functions = nullptr,
                                          const std::vector<std::string>& driver_keys = {});

  // Builders. Repeat Add for the same source to get several destinations.
  ResourceMapping& Add(std::string source);                  // same name, everything
  ResourceMapping& Add(std::string source, std::string destination_resource);
  ResourceMapping& Add(std::string source, Destination destination);
  ResourceMapping& Add(std::string source, Transform transform);  // function-only

  bool empty() const { return entries_.empty(); }
  // True for a mapping that was never given (default-constructed, no Add, no FromJson): the
  // replicator then replicates every resource of the database, including resources created
  // later, except the replicator log resource, each to the same name with every action.
  bool every_resource() const { return !given_; }

  // Checks that every destination's options are among the engine's keys and `driver_keys`.
  // Errors (kInvalidArgument) name `path`, the source resource and the key.
  Status CheckDestinationKeys(const std::string& path,
                              const std::vector<std::string>& driver_keys) const;

  // Source resource -> its destinations, with defaults filled in (empty destination resource
  // becomes the source name, empty actions become all three). Errors (kInvalidArgument) name
  // `path`, e.g. an empty source name or a destination resource that is not a valid name.
  Result<std::map<std::string, std::vector<Destination>, std::less<>>> Normalize(
      const std::string& path = "resources") const;

 private:
  std::vector<std::pair<std::string, Destination>> entries_;  // in the order given
  bool given_ = false;  // FromJson or Add was called
};

// One configured target.
struct ReplicatorConfig {
  std::string id;          // empty = "<driver>-<index>" (index in the replicators array)
  std::string driver;      // a registered driver name: "s3db", "webhook", "postgresql", ...
  ResourceMapping resources;  // left as is (never given): every resource of the database
  JsonObject config;       // the driver's options, as in the spec
  bool enabled = true;     // false: configured but not running until EnableReplicator

  // C++ only: for driver "s3db", replicate into this open database instead of opening
  // config["connectionString"]. Not owned; must outlive the plugin.
  Database* target_database = nullptr;
  // C++ only: builds the driver instead of the registry entry named by `driver` (which is
  // still used in ids, events and logs). Lets a program plug in its own target.
  DriverFactory factory;
  // C++ only: destination keys accepted besides those the driver name declares
  // (DestinationKeys), for a custom factory that reads Destination::options.
  std::vector<std::string> destination_keys;
};

struct ReplicatorPluginOptions {
  bool enabled = true;                  // false: the plugin records and replicates nothing
  std::vector<ReplicatorConfig> replicators;
  bool verbose = false;                 // log every delivery (info) and every failure
  bool persist_replicator_log = false;  // write an entry per delivery/failure to a resource
  std::string replicator_log_resource = "replicator_log";
  bool log_errors = true;               // failures are logged and (if persisting) stored
  int batch_size = 100;                 // most changes handed to a driver in one call
  int max_retries = 3;                  // retries after the first attempt; 0 = one attempt
  int timeout_ms = 30000;               // limit for one delivery attempt (one batch)

  // Engine settings beyond the spec (camelCase keys in FromJson: fsync, lingerMs,
  // maxBackoffMs, probeMaxMs, retryBaseMs, stateDir).
  std::string fsync = "batch";  // change log durability: "always" (fsync every commit),
                                // "batch" (group commit, WAL fsynced every <= 100 ms), "off"
  int linger_ms = 5;            // longest wait to fill a batch once a change is ready; used
                                // only while batches are full (sustained load)
  int retry_base_ms = 100;      // first retry delay bound; doubles per attempt (full jitter)
  int max_backoff_ms = 30000;   // cap for retry delays
  int probe_max_ms = 5000;      // cap for the probes of a paused replicator (target down or
                                // unauthorized), so catching up after an outage takes seconds
  std::string state_dir;        // empty = Database::state_dir(); the log is
                                // <state_dir>/replicator/changes.db

  // C++ only: opens the change log at Install instead of the SQLite one at
  // <state_dir>/replicator/changes.db, e.g. NewMemoryChangeLog() or a clustered log. Empty =
  // SQLite. The log must keep the ChangeLog contract (durability is the factory's choice).
  ChangeLogFactory change_log;

  // Parses the spec's option names (enabled, replicators, verbose, persistReplicatorLog,
  // replicatorLogResource, logErrors, batchSize, maxRetries, timeout; per replicator id,
  // driver, resources, config, enabled) plus the engine keys above. Errors are
  // kInvalidArgument and name the path, e.g. "replicators[0].driver: unknown driver 'foo'
  // (known: s3db, webhook)". Unknown keys are errors too.
  static Result<ReplicatorPluginOptions> FromJson(const JsonObject& options,
                                                  const MappingFunctions* functions = nullptr);

  // Checks values (ranges, drivers, duplicate ids, mappings). Called by Install.
  Status Validate() const;
};

// The spec's ReplicatorError, as carried by events and LastError.
struct ReplicatorError {
  std::string name = "ReplicatorError";
  std::string message;      // brief, e.g. "Replicator not found: pg-1"
  std::string description;  // what happened and what to do
  JsonObject context;       // replicator, driver, resource, recordId, changeId, ...

  Json ToJson() const;
};

enum class ReplicatorState {
  kRunning,   // delivering or idle
  kPaused,    // waiting: target unauthorized, unavailable or asked to slow down
  kDisabled,  // not delivering (config enabled=false or DisableReplicator); backlog is kept
  kStopped,   // the plugin is stopped
};
std::string_view ReplicatorStateName(ReplicatorState state);  // "running", "paused", ...

struct ReplicatorInfo {
  std::string id;
  std::string driver;
  bool enabled = true;
  ReplicatorState state = ReplicatorState::kStopped;
  std::vector<std::string> resources;  // source resources it replicates
};

struct ReplicatorStats {
  std::string id;
  std::string driver;
  ReplicatorState state = ReplicatorState::kStopped;
  std::string pause_reason;              // why it is paused ("unauthorized", "unavailable", ...)
  std::uint64_t delivered = 0;           // destination deliveries confirmed by the driver
  std::uint64_t filtered = 0;            // skipped by actions, shouldReplicate or transform null
  std::uint64_t retried = 0;             // attempts scheduled again after a failure
  std::uint64_t failed = 0;              // failed attempts (any outcome but delivered)
  std::uint64_t dead_lettered = 0;       // sent to the dead-letter queue since start
  std::uint64_t dead_letter_count = 0;   // entries in the dead-letter queue now
  std::uint64_t checkpoint = 0;          // every change at or below it is settled
  std::uint64_t head = 0;                // last change appended to the log
  std::uint64_t lag_changes = 0;         // head - checkpoint
  double lag_seconds = 0;                // age of the oldest unsettled change
  double latency_p50_ms = 0;             // write -> delivered, over recent deliveries
  double latency_p99_ms = 0;
  std::optional<ReplicatorError> last_error;
  // The driver's own counters (Driver::Counters), e.g. the file drivers' "truncated_cells".
  std::map<std::string, std::uint64_t> driver_counters;
};

// An entry of the dead-letter queue: a change that failed for good at one destination.
struct DeadLetter {
  std::int64_t id = 0;            // entry id in the queue
  std::string replicator;
  std::uint64_t sequence = 0;     // the change's position in the log when it failed
  Change change;                  // the original change
  std::string destination;        // destination resource name
  std::string reason;             // "transform_error", "max_retries", driver reasons, ...
  std::string error;
  int attempts = 0;
  std::int64_t failed_at_ms = 0;
};

struct SyncProgress {
  std::string replicator;
  std::string resource;         // source resource being read
  std::uint64_t enqueued = 0;   // records queued so far (all resources)
  std::uint64_t settled = 0;    // of those, delivered, filtered or dead-lettered
  bool done = false;
};
using SyncProgressCallback = std::function<void(const SyncProgress& progress)>;

// Outcome of one record at one replicator (ReplicateBatch).
struct RecordOutcome {
  std::string replicator;
  std::string id;
  std::string status;  // "delivered", "filtered", "dead_letter" or "pending" (timed out)
};

struct ReplicateBatchResult {
  std::size_t records = 0;
  std::vector<RecordOutcome> outcomes;  // one per record and replicator mapping the resource
};

namespace internal {
class Engine;
}

// Plugin events (On): "replicated", "replicator_error", "replicator_log_error",
// "replicator_log_resource_creation_error", "replicator_cleanup_error", and
// "replicator_warning" ({replicator, driver, resource, warning: "missing_resource", message}:
// a mapped source resource does not exist at Start). Database events
// (Database::Emit): "replicator:success" and "replicator:error". Payloads are JSON objects
// with: replicator, driver, resource (and resourceName), destination, action (and
// operation), recordId, changeId, sequence, attempt, durationMs, and on failures error (a
// string in plugin events; {name, message, description, context} in "replicator:error",
// which also carries the record as "data"). Handlers run on dispatcher threads: keep them
// short, and do not call Stop from them.
//
// Thread safety: every method may be called from any thread after Install.
class ReplicatorPlugin : public Plugin {
 public:
  explicit ReplicatorPlugin(ReplicatorPluginOptions options);
  ~ReplicatorPlugin() override;

  std::string_view Name() const override { return "replicator"; }
  // Validates the options, opens the change log, creates the drivers (no connection yet).
  Status Install(Database& database) override;
  // Starts the drivers and dispatchers. A driver whose Start fails with a permanent error
  // (bad configuration) fails Start. Unauthorized, unavailable, timeout, I/O and conflict
  // errors keep retrying in the background: the replicator shows state paused and LastError.
  Status Start() override;
  // Stops dispatchers (in-flight batches finish), flushes drivers, saves checkpoints.
  Status Stop() override;
  // Appends the change to the change log (durable per the fsync option) when a replicator
  // maps its resource. Writes to the replicator_log resource are never replicated.
  Status OnChange(const Change& change) override;
  // Records the intent of a change about to be written (and forgets it when the write is
  // abandoned), so that a change stored by a process that dies before OnChange is still
  // replicated: the next start appends it when the source holds it.
  Status OnPrepare(const Change& change) override;
  void OnAbandon(const Change& change) override;
  // Resolves intents of a previous process that belong to the new resource.
  void OnResourceCreated(Resource& resource) override;

  std::size_t On(std::string event, EventHandler handler);
  void Off(std::size_t handle);

  // Called with each change a write appends to the change log and its sequence number there
  // (not for backfills or replays), on the writer's thread right after the append; keep it
  // short. Changes no replicator maps, and those of the replicator log resource, are never
  // appended. Used by `s3db replicators tail`.
  using AppendObserver = std::function<void(std::uint64_t sequence, const Change& change)>;
  std::size_t OnAppend(AppendObserver observer);
  void OffAppend(std::size_t handle);

  std::vector<ReplicatorInfo> ListReplicators() const;
  // Errors: kNotFound "Replicator not found: <id>".
  Result<ReplicatorStats> GetReplicatorStats(std::string_view id) const;
  Status DisableReplicator(std::string_view id);
  Status EnableReplicator(std::string_view id);

  // Reads every record of every source resource the replicator maps and sends each through
  // the same pipeline (as an insert carrying the record's current revision), only to this
  // replicator. Returns when all are settled or `timeout` passes (kTimeout; the rest is still
  // delivered later), or soon after `stop` is requested (kUnavailable; likewise). Resumable: a
  // sync interrupted by a timeout, a stop or a crash continues where it stopped when called
  // again. Progress is reported on the calling thread.
  Status SyncAllData(std::string_view id, SyncProgressCallback progress = {},
                     std::chrono::milliseconds timeout = std::chrono::hours(24),
                     std::stop_token stop = {});

  // Sends records (each with an "id") of `resource` through every enabled replicator that
  // maps it, as inserts, and waits until they are settled or `timeout` passes.
  Result<ReplicateBatchResult> ReplicateBatch(
      std::string_view resource, const std::vector<JsonObject>& records,
      std::chrono::milliseconds timeout = std::chrono::seconds(60));

  Result<std::vector<DeadLetter>> ListDeadLetters(std::string_view id, std::size_t limit = 100);
  // Sends every dead letter of the replicator through the pipeline again (and removes them
  // from the queue). Returns how many were requeued.
  Result<std::size_t> ReplayDeadLetters(std::string_view id);
  Result<std::size_t> PurgeDeadLetters(std::string_view id);

  // Waits until every enabled, running replicator has settled every change appended before
  // the call. kTimeout when it does not happen in time (e.g. a paused replicator);
  // kUnavailable soon after `stop` is requested (a service that shuts down).
  Status WaitIdle(std::chrono::milliseconds timeout, std::stop_token stop = {});

  // The last error of a replicator (nullopt when none or unknown id).
  std::optional<ReplicatorError> LastError(std::string_view id) const;

  const ReplicatorPluginOptions& options() const { return options_; }

 private:
  ReplicatorPluginOptions options_;
  std::unique_ptr<internal::Engine> engine_;
};

// Registers the drivers built into the library (s3db, and those of src/drivers/* that are
// compiled in). Called automatically by the driver registry; safe to call again.
void RegisterBuiltinDrivers();

}  // namespace s3db::replicator

namespace s3db {
using replicator::ReplicatorPlugin;
using replicator::ReplicatorPluginOptions;
}  // namespace s3db
