// The BigQuery driver ("bigquery"): replicates changes into BigQuery tables over the REST API
// (v2), authenticated as a service account (OAuth 2.0 JWT bearer flow, RS256) or with gcloud
// user credentials (refresh-token grant); see bigquery_auth.h for where credentials come from.
//
// Modes:
//   changelog (default)  every change is appended as a row carrying _action, _changed_at,
//                        _change_id and _rev, so a table is the complete change history of its
//                        records; the latest state is a view (docs/drivers/bigquery.md).
//                        Rows go by tabledata.insertAll ("streaming", insertId = change id, so
//                        retried requests do not duplicate rows) or by load jobs ("batch",
//                        newline-delimited JSON, job id derived from the change ids).
//   merge (alias dml)    the table holds the current state: one MERGE statement per batch
//                        (jobs.query) upserts and deletes rows by id, guarded by _rev.
//
// Tables are created when missing from the source resource's attributes (plus the fields
// records carry), with optional time partitioning and clustering; fields that appear later
// are added as NULLABLE columns by a schema patch. Outcomes per change: delivered; rows the
// API refuses are permanent with the API's reason; transient errors, rate limits and quota
// errors are retryable; refused credentials are unauthorized. See docs/drivers/bigquery.md.
//
// Thread safety: every method may be called from any thread; Deliver calls may overlap. No
// lock is held during a request.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "drivers/bigquery/bigquery_api.h"
#include "drivers/bigquery/bigquery_auth.h"
#include "drivers/bigquery/bigquery_schema.h"
#include "net/http_client.h"
#include "s3db/replicator/driver.h"

namespace s3db::replicator {

namespace bigquery {
class DefinitionCache;
struct TableGroup;
}  // namespace bigquery

// Registers the driver as "bigquery". Idempotent.
void RegisterBigqueryDriver();

enum class BigqueryInsertMethod { kStreaming, kBatch };
enum class BigqueryMode { kChangelog, kMerge };

// The replicator's "config" object. Unknown keys are refused.
struct BigqueryOptions {
  // "projectId": the project of the tables and the one billed for jobs. Default: the
  // service-account key's project_id (required with user credentials, which carry none).
  std::string project_id;
  // "datasetId" (required): the dataset of the tables. A destination may name another with its
  // "dataset" option or as "dataset.table".
  std::string dataset_id;
  // "location": where jobs run ("US", "EU", "europe-west1", …); sent on jobs.insert, jobs.get
  // and jobs.query. Empty: the location of the job's dataset (read with datasets.get). Start
  // refuses a location other than datasetId's.
  std::string location;
  // "credentials": a service-account key or authorized_user credentials: an object, its JSON
  // text or a file path; absent, "" or {}: GOOGLE_APPLICATION_CREDENTIALS, then gcloud's
  // application_default_credentials.json (bigquery::LoadCredentials). Secrets are never
  // logged or put into a message.
  bigquery::Credentials credentials;
  // "tokenUri": the OAuth token endpoint; empty: the credentials' token_uri, else Google's.
  std::string token_uri;
  // "insertMethod": "streaming" (tabledata.insertAll, default) or "batch" (load jobs).
  BigqueryInsertMethod insert_method = BigqueryInsertMethod::kStreaming;
  // "mode": "changelog" (default) or "merge" (alias "dml").
  BigqueryMode mode = BigqueryMode::kChangelog;
  // "ignoreUnknownValues": the service drops fields the table lacks instead of refusing the
  // row; the driver then adds no columns to existing tables.
  bool ignore_unknown_values = false;
  // "skipInvalidRows": the valid rows of a request are stored even when others are invalid.
  bool skip_invalid_rows = false;
  // "maxRetries": retryable failures of one change after which the driver answers it
  // permanent ("max_retries"); the engine's plugin-wide maxRetries applies too (the smaller
  // wins). Failures while nothing is delivered (an outage) do not spend it. nullopt: only the
  // engine's limit.
  std::optional<int> max_retries;
  // "endpoint": the API root (default "https://bigquery.googleapis.com"); for emulators and
  // tests, e.g. "http://127.0.0.1:9050".
  std::string endpoint = "https://bigquery.googleapis.com";
  // "tableOptions": {"timePartitioning": {"type": "DAY"|"HOUR"|"MONTH"|"YEAR", "field": name,
  // "expirationMs": n}, "clustering": ["field", …] (at most 4)}; used when creating tables.
  std::optional<JsonObject> time_partitioning;
  std::vector<std::string> clustering;
  // "createTables": create missing tables (default true); false: a missing table makes its
  // changes permanent failures ("table_not_found").
  bool create_tables = true;
  // "exactNumbers": number attributes and decimal values become NUMERIC instead of FLOAT64.
  bool exact_numbers = false;
  // "attributeColumns": "all" (default) creates a column for every attribute when creating a
  // table; "present" only for the fields records carry.
  bool create_all_attribute_columns = true;
  // "maxRowsPerRequest": rows per insertAll request or load job (default 500, at most 10000).
  std::size_t max_rows_per_request = 500;
  // "maxRequestBytes": request body bound (default 9 MiB, below the 10 MB API limit).
  std::size_t max_request_bytes = 9 * 1024 * 1024;
  // "jobPollIntervalMs": first wait between job status polls (default 200, doubling to 5 s).
  std::chrono::milliseconds job_poll_interval{200};

  // C++ only: the clock for tokens and JWTs (tests); empty: the system clock.
  bigquery::SecondsClock clock;
};

// Validates the config; errors (kInvalidArgument) name the option and the fix.
Result<BigqueryOptions> ParseBigqueryOptions(const JsonObject& config);

// Sees every line the driver logs (tests check that no secret is logged). Process-wide;
// pass {} to remove.
void SetBigqueryLogObserver(std::function<void(std::string_view line)> observer);

// The row a change becomes in changelog mode: the record's fields encoded for `schema`, the
// record id as "id", and _action, _changed_at, _change_id and _rev.
JsonObject BigqueryChangelogRow(const DeliveryItem& item,
                                const std::vector<bigquery::Field>& schema,
                                bigquery::Encoding encoding);

class BigqueryDriver final : public Driver {
 public:
  struct Stats {
    std::uint64_t insert_requests = 0;  // tabledata.insertAll calls
    std::uint64_t rows_sent = 0;        // rows in insertAll calls and load jobs
    std::uint64_t load_jobs = 0;        // jobs.insert calls for load jobs
    std::uint64_t queries = 0;          // jobs.query calls (merge mode)
    std::uint64_t tables_created = 0;
    std::uint64_t tables_patched = 0;
  };

  // `http` empty: a libcurl client.
  BigqueryDriver(BigqueryOptions options, DriverContext context,
                 std::unique_ptr<net::HttpClient> http = nullptr);
  ~BigqueryDriver() override;

  // Loads the key, fetches a token and checks that the dataset exists (in `location`, when
  // set). Errors: kInvalidArgument (key, missing dataset, other location), kUnauthorized
  // (refused credentials or no access), kUnavailable/kTimeout (unreachable).
  Status Start() override;
  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds timeout) override;
  void Stop() override;

  Stats stats() const;
  std::uint64_t token_fetches() const;
  const BigqueryOptions& options() const { return options_; }

 private:
  struct RetryState {
    int attempts = 0;
    std::chrono::steady_clock::time_point first_failure;
  };

  void DeliverGroup(bigquery::TableGroup& group, bigquery::Deadline deadline,
                    std::vector<DeliveryResult>& results);
  void DeliverChangelog(bigquery::TableGroup& group, bigquery::Deadline deadline,
                        std::vector<DeliveryResult>& results);
  void DeliverMerge(bigquery::TableGroup& group, bigquery::Deadline deadline,
                    std::vector<DeliveryResult>& results);
  void StreamRows(bigquery::TableGroup& group, const std::vector<std::size_t>& positions,
                  const std::vector<std::string>& rows, bigquery::Deadline deadline,
                  std::vector<DeliveryResult>& results);
  void LoadRows(bigquery::TableGroup& group, const std::vector<std::size_t>& positions,
                const std::vector<std::string>& rows, bigquery::Deadline deadline,
                std::vector<DeliveryResult>& results);
  void MergeRows(bigquery::TableGroup& group, const std::vector<std::size_t>& positions,
                 const std::vector<std::string>& rows, bigquery::Deadline deadline,
                 std::vector<DeliveryResult>& results);

  // Makes sure the table exists (created with `create_fields`) and has `wanted`'s fields.
  // Fills `schema` with the table's columns. On failure returns the outcome for every change
  // of the group; when the service refuses the schema patch, the fields it would have added
  // are put in `refused_fields` instead (the changes that carry them fail alone).
  std::optional<DeliveryResult> EnsureTable(bigquery::TableGroup& group,
                                            const std::vector<bigquery::Field>& create_fields,
                                            const std::vector<bigquery::Field>& wanted,
                                            bigquery::Deadline deadline,
                                            std::vector<bigquery::Field>& schema,
                                            std::vector<std::string>& refused_fields);
  std::optional<std::vector<bigquery::Field>> CachedSchema(const std::string& table_key);
  void CacheSchema(const std::string& table_key, std::vector<bigquery::Field> schema);
  void ForgetTable(const std::string& table_key);
  bool RecentlyPatched(const std::string& table_key) const;

  // The location jobs on `dataset` run in: the "location" option, else the dataset's own
  // (datasets.get, cached). Empty when it cannot be read (the service then decides).
  std::string JobLocation(const std::string& dataset, bigquery::Deadline deadline);

  void ApplyRetryBudget(std::vector<DeliveryResult>& results, std::span<const DeliveryItem> batch);
  void Log(int level, const std::string& line) const;

  BigqueryOptions options_;
  DriverContext context_;
  std::unique_ptr<net::HttpClient> http_;
  std::unique_ptr<bigquery::TokenSource> tokens_;
  std::unique_ptr<bigquery::Api> api_;
  std::atomic<bool> started_{false};

  std::atomic<bool> stopping_{false};

  // guards tables_, patched_at_, dataset_locations_, retries_, last_success_, stats_
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<bigquery::Field>, std::less<>> tables_;
  std::map<std::string, std::chrono::steady_clock::time_point, std::less<>> patched_at_;
  std::map<std::string, std::string, std::less<>> dataset_locations_;  // dataset -> location
  std::unordered_map<std::string, RetryState> retries_;
  std::chrono::steady_clock::time_point last_success_{};
  Stats stats_;
};

}  // namespace s3db::replicator
