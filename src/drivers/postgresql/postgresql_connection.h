// One libpq connection driven with deadlines: every call returns by its deadline, even when the
// server or the network stops answering. Statements run in pipeline mode, so a list of
// statements costs one round trip.
//
// Thread safety: none; one thread uses a connection at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

typedef struct pg_conn PGconn;      // NOLINT: libpq's own declarations, repeated
typedef struct pg_result PGresult;  // NOLINT

namespace s3db::replicator::postgresql {

using Clock = std::chrono::steady_clock;

// What went wrong, sorted by what the caller should do about it.
enum class FailureKind {
  kConnection,      // the connection failed or broke: reconnect and retry
  kTimeout,         // the deadline passed; the connection is unusable
  kAuthentication,  // credentials or grants refused: pause until an operator fixes them
  kConfiguration,   // the connection string is wrong (bad syntax, missing database)
  kServer,          // the server refused a statement: see sqlstate
};

struct Failure {
  FailureKind kind = FailureKind::kServer;
  std::string sqlstate;  // five characters for server errors, else empty
  std::string message;   // primary message only (no DETAIL, which may quote row data)
  std::string column;    // column the server blamed, when it says
};

// What the driver does about a server error, decided by its SQLSTATE.
enum class SqlStateClass {
  kRetry,          // serialization failure, deadlock, shutdown, lack of resources…
  kReconnect,      // the connection is gone (class 08, 57P01–57P03)
  kUnauthorized,   // class 28, 42501 insufficient_privilege
  kData,           // the values of one change (classes 22, 23, 54, 42804)
  kSchemaChanged,  // a table or column vanished under us (42P01, 42703, 42P10)
};
SqlStateClass ClassifySqlState(std::string_view sqlstate);

// Sorts a connection failure message from libpq into kAuthentication, kConfiguration or
// kConnection. libpq does not expose the SQLSTATE of a failed connection attempt.
FailureKind ClassifyConnectMessage(std::string_view message);

// An owned PGresult.
class QueryResult {
 public:
  QueryResult() = default;
  explicit QueryResult(PGresult* result);
  int rows() const;
  bool IsNull(int row, int column) const;
  std::string_view Get(int row, int column) const;

 private:
  struct Deleter {
    void operator()(PGresult* result) const;
  };
  std::unique_ptr<PGresult, Deleter> result_;
};

// A statement with parameters ($1, $2…), none of them NULL.
struct Statement {
  Statement() = default;
  Statement(std::string text, std::vector<std::string> values = {}, std::vector<int> kinds = {})
      : sql(std::move(text)), params(std::move(values)), formats(std::move(kinds)) {}

  std::string sql;
  std::vector<std::string> params;
  std::vector<int> formats;  // per parameter: 0 text, 1 binary; empty means all text
};

struct PipelineFailure {
  Failure failure;
  std::size_t statement = 0;  // index of the failing statement (meaningless for kConnection)
};

class Connection {
 public:
  // Connects with libpq (client_encoding UTF8, TimeZone UTC). `secrets` are scrubbed from
  // every message this connection produces.
  static tl::expected<std::unique_ptr<Connection>, Failure> Open(const std::string& conninfo,
                                                                 std::vector<std::string> secrets,
                                                                 Clock::time_point deadline);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends all statements and one Sync, then reads every result: one round trip. Statements
  // after a failing one are skipped by the server. On kConnection or kTimeout the connection is
  // unusable (usable() turns false).
  tl::expected<std::vector<QueryResult>, PipelineFailure> Pipeline(
      std::span<const Statement> statements, Clock::time_point deadline);

  tl::expected<QueryResult, Failure> Execute(const Statement& statement,
                                             Clock::time_point deadline);

  // Runs `copy_sql` (COPY … FROM STDIN) and streams `data` in COPY text format.
  tl::expected<void, Failure> CopyIn(const std::string& copy_sql, std::string_view data,
                                     Clock::time_point deadline);

  // Inside a transaction block (idle or failed)?
  bool InTransaction() const;

  bool usable() const;
  const std::string& current_schema() const { return current_schema_; }
  int server_version() const;

 private:
  Connection(PGconn* connection, std::vector<std::string> secrets);
  Failure ConnectionFailure(FailureKind kind, std::string_view context);
  Failure ResultFailure(PGresult* result);
  // Waits until the socket is readable (and writable when `want_write`); false on timeout.
  bool WaitSocket(bool want_write, Clock::time_point deadline);
  tl::expected<void, Failure> Flush(Clock::time_point deadline);
  // The next result, waiting as needed; nullptr ends the results of one statement.
  tl::expected<PGresult*, Failure> NextResult(Clock::time_point deadline);

  PGconn* connection_;
  std::vector<std::string> secrets_;
  std::string current_schema_;
  bool broken_ = false;
};

}  // namespace s3db::replicator::postgresql
