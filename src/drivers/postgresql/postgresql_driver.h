// The PostgreSQL driver ("postgresql", alias "postgres"): replicates changes into tables with
// revision-guarded upserts and deletes, creating and widening tables as records need.
//
// Every batch is one transaction sent in one round trip (pipeline mode); several changes of one
// record collapse to the latest. A value that does not fit its column fails only its own change
// ("schema_mismatch"); connection trouble makes the batch retryable; refused credentials
// make it unauthorized. See docs/drivers/postgresql.md for the table layout and every policy.
//
// Thread safety: all methods may be called from any thread; calls are serialized (the driver
// owns one connection, which can serve one call at a time).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "drivers/postgresql/postgresql_types.h"
#include "s3db/replicator/driver.h"

namespace s3db::replicator {

namespace postgresql {
class Connection;
class DefinitionCache;
struct Failure;
struct TablePlan;
}  // namespace postgresql

// Registers the driver as "postgresql" and "postgres". Idempotent.
void RegisterPostgresqlDriver();

enum class PostgresqlWriteMode {
  kUnnest,  // one INSERT … SELECT FROM unnest($arrays) … ON CONFLICT per column set (default)
  kCopy,    // COPY into a temporary table, then INSERT … SELECT … ON CONFLICT
};

// The replicator's "config" object. Unknown keys are refused.
struct PostgresqlOptions {
  // "connectionString" (required): libpq URI or key/value string. Never logged unredacted.
  std::string connection_string;
  // "schema": where tables are created; empty means the server's current_schema().
  // A destination may override it with its own "schema" option.
  std::string schema;
  // "revisionColumn": the bigint column holding the record revision that guards writes.
  std::string revision_column = "_s3db_rev";
  // "nulCharacters": "reject" (default; the change fails with "invalid_value") or "strip".
  postgresql::NulPolicy nul_policy = postgresql::NulPolicy::kReject;
  // "exactNumbers": attributes of type number become numeric instead of double precision.
  bool exact_numbers = false;
  // "tombstones": remember deleted ids and revisions so that a replayed older write cannot
  // bring a deleted row back (default true).
  bool tombstones = true;
  // "attributeColumns": "all" (default) creates a column for every attribute of the resource
  // when the table is created; "present" only for fields that records carry.
  bool create_all_attribute_columns = true;
  // "writeMode": "unnest" (default, measured faster) or "copy".
  PostgresqlWriteMode write_mode = PostgresqlWriteMode::kUnnest;
  // "connectTimeoutMs": bound for opening a connection (default 10000).
  std::chrono::milliseconds connect_timeout{10000};
};

// Validates the config; errors name the option and the fix.
Result<PostgresqlOptions> ParsePostgresqlOptions(const JsonObject& config);

class PostgresqlDriver final : public Driver {
 public:
  struct Stats {
    std::uint64_t batches = 0;            // Deliver calls that reached the server
    std::uint64_t rows_upserted = 0;      // rows sent as upserts (stale ones included)
    std::uint64_t rows_deleted = 0;       // deletes sent (stale ones included)
    std::uint64_t changes_collapsed = 0;  // changes superseded by a later one in their batch
    std::uint64_t nul_characters_stripped = 0;
    std::uint64_t row_by_row_fallbacks = 0;  // batches retried change by change after an error
    std::uint64_t connections_opened = 0;
    std::uint64_t columns_added = 0;  // by CREATE TABLE and ALTER TABLE together
    std::uint64_t tables_created = 0;
  };

  PostgresqlDriver(PostgresqlOptions options, DriverContext context);
  ~PostgresqlDriver() override;

  // Connects, checks the server version, creates the configured schema when missing and the
  // tombstone table. Errors: kUnauthorized (credentials), kInvalidArgument (connection string
  // or missing database), kUnavailable (server unreachable; try again later).
  Status Start() override;

  // Upserts and deletes the batch in one transaction. Deliver may be called without Start: it
  // connects on demand, and reconnects after any connection failure.
  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds timeout) override;

  // Closes the connection; a later Deliver reconnects.
  void Stop() override;

  Stats stats() const;

  // The Stats above by name ("batches", "row_by_row_fallbacks", ...), for the replicator's
  // ReplicatorStats::driver_counters.
  std::map<std::string, std::uint64_t> Counters() const override;

 private:
  using TableInfo = postgresql::TableInfo;
  using TablePlan = postgresql::TablePlan;
  using DefinitionCache = postgresql::DefinitionCache;
  using Failure = postgresql::Failure;
  using Deadline = std::chrono::steady_clock::time_point;
  using TableKey = std::pair<std::string, std::string>;  // schema, table

  // Opens the connection unless a usable one exists.
  tl::expected<void, Failure> Connect(Deadline deadline);
  DeliveryResult ConnectFailureResult(const Failure& failure) const;
  // Makes sure `schema` and its tombstone table exist (once per schema).
  std::optional<DeliveryResult> EnsureSchema(const std::string& schema, Deadline deadline);
  // Groups the batch by table and record, collapses each record's changes and refuses the
  // changes that can never be stored (their results are set in `results` or in the chain).
  std::vector<TablePlan> PlanBatch(std::span<const DeliveryItem> batch,
                                   std::vector<DeliveryResult>& results);
  // Creates or widens the table for `plan`. A failure applies to the whole table, or, when
  // `whole_batch` comes back true, to the whole batch (connection or credentials trouble).
  std::optional<DeliveryResult> EnsureTable(TablePlan& plan, DefinitionCache& definitions,
                                            Deadline deadline, bool& whole_batch);
  tl::expected<TableInfo, Failure> LoadTable(const TableKey& key, Deadline deadline);
  void EncodeRows(TablePlan& plan);
  // The fast paths: every valid change of the batch in one transaction.
  tl::expected<void, Failure> WriteAll(std::vector<TablePlan>& plans, Deadline deadline);
  tl::expected<void, Failure> WriteWithCopy(std::vector<TablePlan>& plans, Deadline deadline);
  // After a data error: one savepoint per record, so only the bad changes fail. Returns a
  // result for the whole batch when it cannot finish.
  std::optional<DeliveryResult> WriteChangeByChange(std::vector<TablePlan>& plans,
                                                    Deadline deadline);
  void RollbackIfNeeded(Deadline deadline);
  void InvalidateTables(const std::vector<TablePlan>& plans);

  const PostgresqlOptions options_;
  const DriverContext context_;
  const std::string redacted_connection_string_;
  const std::vector<std::string> secrets_;

  // Guards every member below; held for a whole call because the connection serves one
  // statement stream at a time.
  mutable std::mutex mutex_;
  std::unique_ptr<postgresql::Connection> connection_;
  bool connection_fresh_ = false;  // opened during the current call
  std::string default_schema_;
  std::set<std::string> ready_schemas_;  // schemas known to exist, with their tombstone table
  std::map<TableKey, TableInfo> tables_;

  mutable std::mutex stats_mutex_;  // guards stats_ only, so stats() never waits for I/O
  Stats stats_;
};

}  // namespace s3db::replicator
