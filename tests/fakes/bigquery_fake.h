// A FAKE of Google BigQuery's REST API (v2) and of Google's OAuth 2.0 token endpoint, for
// tests and benchmarks. No BigQuery server runs locally, so the driver is tested against this
// fake; it is not BigQuery and passing against it proves only the parts of the public
// contract it enforces:
//
//   POST /token               JWT bearer grant: form encoding, grant_type, RS256 signature
//                             checked against the test key's public key, iss/aud/scope/iat/exp
//                             claims; refresh_token grant (authorized_user credentials):
//                             client_id, client_secret and refresh_token checked, with Google's
//                             invalid_client / invalid_grant replies; tokens expire after
//                             token_lifetime_seconds
//   any API call              "Authorization: Bearer" with a live token, else 401
//   GET  …/datasets/{d}       datasets.get
//   POST …/datasets/{d}/tables, GET/PATCH …/tables/{t}
//                             tables.insert/get/patch: column names and types, modes,
//                             duplicates (case-insensitive), timePartitioning, clustering; a
//                             patch may only add NULLABLE/REPEATED fields
//   POST …/tables/{t}/insertAll
//                             rows[].json objects, insertId required, at most 10,000 rows and
//                             10 MB per request (400), per-row errors for values that do not fit
//                             the schema ("invalid"; others "stopped" unless skipInvalidRows),
//                             unknown fields unless ignoreUnknownValues, insertId dedup within a
//                             window (default 60 s), JSON columns as JSON text
//   POST /upload/bigquery/v2/projects/{p}/jobs?uploadType=multipart
//                             load jobs: multipart/related (JSON configuration, then the data),
//                             NEWLINE_DELIMITED_JSON only, maxBadRecords, errors naming the byte
//                             position of bad rows, job ids unique (409), RUNNING for a number of
//                             polls before DONE
//   GET  …/jobs/{j}           jobs.get: ?location must name the job's location; without it
//                             the job is looked up in US (404 "Not found: Job p:j" otherwise)
//   locations                 datasets have one (CreateDataset); a job without
//                             jobReference.location / "location" runs in its dataset's; a job
//                             sent to another location than its dataset's fails "Not found:
//                             Dataset p:d was not found in location L" (load jobs: errorResult
//                             notFound; jobs.query: HTTP 404)
//   POST …/queries            jobs.query for the one MERGE statement shape the BigQuery driver
//                             emits (recognised by its structure, not by a SQL engine), with
//                             useLegacySql=false required, requestId dedup, casts checked per
//                             column type, at most one source row per target row, and no
//                             UPDATE/DELETE of rows still in the streaming buffer
//
// Failures can be programmed: HTTP replies (5xx, 403 rateLimitExceeded, delays), per-row
// errors by insertId, failed jobs, revoked tokens and a clock that can be moved forward.
// The RSA key is generated at run time (EVP_RSA_gen); no key is stored in the tree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "s3db/json.h"

namespace s3db::testing {

struct FakeBigQueryReply {
  int status = 500;
  std::string reason = "backendError";
  std::string message = "fake: programmed failure";
  int retry_after_seconds = 0;  // sent as Retry-After when > 0
  int delay_ms = 0;             // wait this long before answering
};

class FakeBigQuery {
 public:
  struct Options {
    int token_lifetime_seconds = 3600;
    int dedup_window_seconds = 60;
    std::size_t max_rows_per_request = 10000;
    std::size_t max_request_bytes = 10 * 1024 * 1024;
    int job_polls_until_done = 0;            // jobs.get calls a job stays RUNNING
    int streaming_schema_delay_seconds = 0;  // see SetStreamingSchemaDelay
    std::string client_email = "replicator@test-project.iam.gserviceaccount.com";
  };

  struct Counters {
    int token_requests = 0;
    int tokens_refused = 0;
    int api_requests = 0;
    int unauthorized_replies = 0;
    int insert_all_requests = 0;
    int rows_received = 0;
    int rows_stored = 0;
    int duplicates_dropped = 0;
    int tables_inserted = 0;
    int tables_patched = 0;
    int jobs_inserted = 0;
    int job_polls = 0;
    int queries = 0;
    int programmed_failures = 0;
  };

  struct Request {
    std::string method;
    std::string path;
    std::size_t body_bytes = 0;
    std::size_t rows = 0;  // insertAll rows or load-job lines
    bool authorized = false;
    // The location the request named: jobs.get ?location=, jobs.insert jobReference.location,
    // jobs.query "location". Empty when it named none.
    std::string location;
    std::string user_project;  // the x-goog-user-project header
  };

  // One request to the token endpoint.
  struct TokenGrant {
    std::string grant_type;  // "urn:ietf:params:oauth:grant-type:jwt-bearer" or "refresh_token"
    std::string key_id;      // JWT header "kid" (jwt-bearer)
    std::string subject;     // JWT "iss" (jwt-bearer) or client_id (refresh_token)
    bool accepted = false;
    std::string error;  // the OAuth error when refused
  };

  FakeBigQuery();
  explicit FakeBigQuery(Options options);
  ~FakeBigQuery();
  FakeBigQuery(const FakeBigQuery&) = delete;
  FakeBigQuery& operator=(const FakeBigQuery&) = delete;

  // Listens on 127.0.0.1 at a free port. False when it cannot.
  bool Start();
  void Stop();

  std::string endpoint() const;   // "http://127.0.0.1:PORT"
  std::string token_uri() const;  // endpoint() + "/token"

  // A service-account key whose token_uri points at this fake and whose private key is the
  // fake's test key (generated once per process).
  JsonObject ServiceAccountKey(const std::string& project_id = "test-project") const;
  // The PEM text of the test key, so tests can check it never leaks.
  static std::string PrivateKeyPem();
  // A key with the same client_email but another private key: the token endpoint refuses it.
  JsonObject UntrustedServiceAccountKey() const;
  // authorized_user credentials as `gcloud auth application-default login` writes them
  // (type, client_id, client_secret, refresh_token), valid at this fake's token endpoint.
  // With `with_token_uri`, also "token_uri" pointing at this fake (gcloud writes none).
  JsonObject AuthorizedUserCredentials(bool with_token_uri = true) const;
  // The refresh token of AuthorizedUserCredentials stops working (invalid_grant).
  void RevokeRefreshToken();

  void CreateDataset(const std::string& project, const std::string& dataset,
                     const std::string& location = "US");
  // Creates a table directly (no API call); `fields` is a TableSchema "fields" array.
  void CreateTable(const std::string& project, const std::string& dataset, const std::string& table,
                   const Json& fields);

  // The table resource as tables.get returns it.
  std::optional<JsonObject> Table(const std::string& project, const std::string& dataset,
                                  const std::string& table) const;
  // The stored rows (JSON columns hold their JSON value).
  std::vector<JsonObject> Rows(const std::string& project, const std::string& dataset,
                               const std::string& table) const;

  // The next `count` requests with `method` whose path contains `path_part` get `reply`.
  void FailNext(const std::string& method, const std::string& path_part, FakeBigQueryReply reply,
                int count = 1);
  // The row with this insertId fails with `reason` in the next `count` insertAll requests.
  void FailRow(const std::string& insert_id, const std::string& reason, int count = 1);
  // The next `count` load jobs finish with errorResult `reason`, loading nothing.
  void FailNextJob(const std::string& reason, int count = 1);
  void SetJobPollsUntilDone(int polls);
  // After a schema patch, insertAll keeps checking rows against the old schema for this many
  // seconds (BigQuery's streaming sees schema updates only after a while).
  void SetStreamingSchemaDelay(int seconds);
  // Every token issued so far stops working (401).
  void RevokeTokens();
  void AdvanceClock(std::int64_t seconds);
  std::int64_t Now() const;

  Counters counters() const;
  std::vector<Request> requests() const;
  std::vector<std::string> insert_ids() const;  // every insertId received, in order
  std::vector<TokenGrant> token_grants() const;
  // Contract violations the fake refused, e.g. "insertAll row 3 has no insertId".
  std::vector<std::string> violations() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace s3db::testing
