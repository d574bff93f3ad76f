// The change log: the durable outbox between the write path and the dispatchers.
//
// Writers Append each change before their write call returns; every replicator reads the log
// from its checkpoint. The log also keeps per-replicator checkpoints, the dead-letter queue
// and a little key/value state (backfill progress). Dispatchers and drivers see only this
// interface, so a clustered log (NATS JetStream) can replace the SQLite one: give its factory
// as ReplicatorPluginOptions::change_log.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/plugin.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {

struct LoggedChange {
  std::uint64_t sequence = 0;    // assigned by Append; strictly increasing, never reused
  Change change;
  std::string only_replicator;   // non-empty: only this replicator handles it (sync, replay)
  std::string only_destination;  // non-empty: only this destination resource (replay)
};

enum class FsyncPolicy {
  kAlways,  // every commit is fsynced before Append returns
  kBatch,   // commits survive a process crash at once; the file is fsynced every <= 100 ms
  kOff,     // no fsync; an OS crash may lose recent changes
};

Result<FsyncPolicy> ParseFsyncPolicy(std::string_view name);

// Thread safety: every method may be called from any thread.
class ChangeLog {
 public:
  virtual ~ChangeLog() = default;

  // Appends one change; returns its sequence number once durable per the fsync policy.
  // Concurrent callers share commits (group commit). Forgets the change's intent, if any.
  virtual Result<std::uint64_t> Append(const Change& change) = 0;

  // Intents close the gap between a source write and its Append: a writer records the change
  // it is about to store (Prepare, durable per the fsync policy) before the object-store write,
  // and Append or Abandon forgets it. Intents left by a process that died are resolved at the
  // next start: appended when the source holds the write, forgotten when it does not.
  // Intents are keyed by (resource, id, revision). An implementation may give a prepared
  // change its sequence number at Prepare (Append then returns that number), as long as
  // readers never see it before Append and never see a change after it before it is settled.
  virtual Status Prepare(const Change& change) = 0;
  virtual Status Abandon(const Change& change) = 0;
  virtual Result<std::vector<Change>> ListIntents() = 0;
  // Appends several changes in one commit, in order; returns their sequence numbers. Changes
  // for every replicator (no only_replicator) forget their intents too.
  virtual Result<std::vector<std::uint64_t>> AppendMany(
      const std::vector<LoggedChange>& changes) = 0;

  // Up to `limit` changes with sequence > `after`, in order.
  virtual Result<std::vector<LoggedChange>> ReadFrom(std::uint64_t after, std::size_t limit) = 0;
  // ReadFrom for readers that only look: a log that keeps recent changes in memory hands out
  // those without copying them. The default wraps ReadFrom.
  virtual Result<std::vector<std::shared_ptr<const LoggedChange>>> ReadShared(std::uint64_t after,
                                                                              std::size_t limit);
  // The highest sequence number appended so far (0: none).
  virtual std::uint64_t LastSequence() const = 0;
  // Blocks until LastSequence() > after or the timeout passes; true when there is more.
  virtual bool WaitForAppend(std::uint64_t after, std::chrono::milliseconds timeout) = 0;

  virtual Result<std::optional<std::uint64_t>> GetCheckpoint(std::string_view replicator) = 0;
  virtual Status SetCheckpoint(std::string_view replicator, std::uint64_t sequence) = 0;
  // Removes the changes every listed replicator has settled (below the lowest of their
  // checkpoints). The newest change is always kept. Returns how many were removed.
  virtual Result<std::uint64_t> Compact(const std::vector<std::string>& replicators) = 0;
  // Number of changes stored (for tests and stats).
  virtual Result<std::uint64_t> CountChanges() = 0;

  // Dead letters. `letter.id` is assigned.
  virtual Result<std::int64_t> AddDeadLetter(const DeadLetter& letter) = 0;
  virtual Result<std::vector<DeadLetter>> ListDeadLetters(std::string_view replicator,
                                                          std::size_t limit) = 0;
  virtual Result<std::uint64_t> CountDeadLetters(std::string_view replicator) = 0;
  // Moves every dead letter of the replicator back into the log (only for that replicator
  // and destination), in one commit. Returns the new sequence numbers.
  virtual Result<std::vector<std::uint64_t>> RequeueDeadLetters(std::string_view replicator) = 0;
  virtual Result<std::uint64_t> PurgeDeadLetters(std::string_view replicator) = 0;

  // Small durable key/value state.
  virtual Result<std::optional<std::string>> GetState(std::string_view key) = 0;
  virtual Status SetState(std::string_view key, std::string_view value) = 0;
  virtual Status DeleteState(std::string_view key) = 0;

  // Flushes and closes. Later calls fail.
  virtual Status Close() = 0;
};

struct SqliteChangeLogOptions {
  std::string path;  // the database file; its folder is created
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  std::chrono::milliseconds fsync_interval{50};  // kBatch: how often the WAL is fsynced
  // The SQLite log stores a prepared change at once, under its sequence number, and shows it
  // to readers once Append confirms it; readers stop at the first unconfirmed one. A prepared
  // change whose write is neither confirmed nor abandoned within this long stops holding back
  // the changes after it: it becomes an intent, resolved at the next start (and appended anew
  // if its Append comes later).
  std::chrono::milliseconds intent_timeout{5000};
  // With the batch and off policies a Prepare is written to the prepare journal (a file next
  // to the database, <path>-prepared-<n>) instead of being committed to SQLite on its own;
  // the background thread moves journaled changes into SQLite this often, in one commit.
  std::chrono::milliseconds journal_move_interval{50};
};

// SQLite in WAL mode; group commit for concurrent appends. The default change log.
Result<std::unique_ptr<ChangeLog>> OpenSqliteChangeLog(const SqliteChangeLogOptions& options);

// What the plugin hands a ChangeLogFactory (ReplicatorPluginOptions::change_log).
struct ChangeLogContext {
  std::string state_dir;  // the plugin's state folder (stateDir or Database::state_dir())
  std::string path;       // where the SQLite log would be: <state_dir>/replicator/changes.db
  FsyncPolicy fsync = FsyncPolicy::kBatch;  // the "fsync" option
};

// A change log in process memory. Not durable: whatever is not delivered when the process
// ends is lost, and a new process starts empty (every replicator at the head). For tests,
// and for programs whose source database is itself in memory.
std::unique_ptr<ChangeLog> NewMemoryChangeLog();

}  // namespace s3db::replicator
