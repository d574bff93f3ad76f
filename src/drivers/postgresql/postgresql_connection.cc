#include "drivers/postgresql/postgresql_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>

#include "drivers/postgresql/postgresql_redact.h"

namespace s3db::replicator::postgresql {
namespace {

constexpr int kMinimumServerVersion = 110000;  // pg_index.indnkeyatts, ADD COLUMN IF NOT EXISTS

std::string Trim(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  return std::string(text);
}

bool Contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Waits for `events` on `socket` until `deadline`; returns the events seen, 0 on timeout and
// -1 when the socket is invalid.
int WaitFor(int socket, short events, Clock::time_point deadline) {
  if (socket < 0) return -1;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    pollfd entry{socket, events, 0};
    int ready = ::poll(&entry, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60000)));
    if (ready > 0) return entry.revents == 0 ? events : entry.revents;
    if (ready < 0 && errno != EINTR) return -1;
  }
}

}  // namespace

SqlStateClass ClassifySqlState(std::string_view sqlstate) {
  std::string_view category = sqlstate.substr(0, 2);
  if (category == "08" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    return SqlStateClass::kReconnect;
  }
  if (category == "28" || sqlstate == "42501") return SqlStateClass::kUnauthorized;
  if (category == "22" || category == "23" || category == "54" || sqlstate == "42804") {
    return SqlStateClass::kData;
  }
  if (sqlstate == "42P01" || sqlstate == "42703" || sqlstate == "42P10" || sqlstate == "3F000") {
    return SqlStateClass::kSchemaChanged;
  }
  // 40001 serialization_failure, 40P01 deadlock, 53xxx resources, 55P03 lock timeout,
  // 57014 statement timeout, 25006 read-only (a failover in progress), 58xxx, XX000 and
  // anything unknown: trying again later is the safe answer.
  return SqlStateClass::kRetry;
}

FailureKind ClassifyConnectMessage(std::string_view message) {
  if (Contains(message, "authentication failed") || Contains(message, "pg_hba.conf") ||
      Contains(message, "no password supplied") || Contains(message, "password is required") ||
      (Contains(message, "role \"") && Contains(message, "does not exist")) ||
      Contains(message, "permission denied for database") ||
      Contains(message, "not permitted to log in")) {
    return FailureKind::kAuthentication;
  }
  if ((Contains(message, "database \"") && Contains(message, "does not exist")) ||
      Contains(message, "invalid connection option") || Contains(message, "invalid URI") ||
      Contains(message, "missing \"=\"") || Contains(message, "invalid sslmode")) {
    return FailureKind::kConfiguration;
  }
  return FailureKind::kConnection;
}

QueryResult::QueryResult(PGresult* result) : result_(result) {}

void QueryResult::Deleter::operator()(PGresult* result) const { PQclear(result); }

int QueryResult::rows() const { return result_ ? PQntuples(result_.get()) : 0; }

bool QueryResult::IsNull(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string_view QueryResult::Get(int row, int column) const {
  return std::string_view(PQgetvalue(result_.get(), row, column),
                          static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

Connection::Connection(PGconn* connection, std::vector<std::string> secrets)
    : connection_(connection), secrets_(std::move(secrets)) {}

Connection::~Connection() { PQfinish(connection_); }

tl::expected<std::unique_ptr<Connection>, Failure> Connection::Open(
    const std::string& conninfo, std::vector<std::string> secrets, Clock::time_point deadline) {
  // Later keywords override what the connection string says: the driver sends UTF-8.
  const char* keys[] = {"dbname", "client_encoding", "fallback_application_name", nullptr};
  const char* values[] = {conninfo.c_str(), "UTF8", "s3db-replicator", nullptr};
  PGconn* raw = PQconnectStartParams(keys, values, 1);
  if (raw == nullptr) {
    return tl::unexpected(Failure{FailureKind::kConnection, "", "out of memory", ""});
  }
  std::unique_ptr<Connection> connection(new Connection(raw, std::move(secrets)));
  // Notices ("relation already exists, skipping") would go to stderr otherwise.
  PQsetNoticeProcessor(
      raw, [](void*, const char*) {}, nullptr);

  auto failed = [&](FailureKind kind) {
    std::string message = Trim(PQerrorMessage(raw));
    if (kind == FailureKind::kConnection) kind = ClassifyConnectMessage(message);
    return tl::unexpected(Failure{kind, "", ScrubSecrets(message, connection->secrets_), ""});
  };
  if (PQstatus(raw) == CONNECTION_BAD) return failed(FailureKind::kConnection);

  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK) {
    if (state == PGRES_POLLING_FAILED) return failed(FailureKind::kConnection);
    short events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    int seen = WaitFor(PQsocket(raw), events, deadline);
    if (seen == 0) {
      return tl::unexpected(Failure{FailureKind::kTimeout, "", "timed out while connecting", ""});
    }
    state = PQconnectPoll(raw);
  }
  if (PQsetnonblocking(raw, 1) != 0) return failed(FailureKind::kConnection);

  if (PQserverVersion(raw) < kMinimumServerVersion) {
    return tl::unexpected(Failure{
        FailureKind::kConfiguration, "",
        "PostgreSQL 11 or later is needed; the server runs " + std::to_string(PQserverVersion(raw)),
        ""});
  }
  auto session = connection->Execute(
      {"SELECT set_config('TimeZone', 'UTC', false), current_schema()", {}}, deadline);
  if (!session) return tl::unexpected(session.error());
  if (session->rows() == 1 && !session->IsNull(0, 1)) {
    connection->current_schema_ = std::string(session->Get(0, 1));
  }
  return connection;
}

bool Connection::usable() const { return !broken_ && PQstatus(connection_) == CONNECTION_OK; }

int Connection::server_version() const { return PQserverVersion(connection_); }

bool Connection::InTransaction() const {
  PGTransactionStatusType status = PQtransactionStatus(connection_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

Failure Connection::ConnectionFailure(FailureKind kind, std::string_view context) {
  broken_ = true;
  std::string message(context);
  std::string detail = Trim(PQerrorMessage(connection_));
  if (!detail.empty()) message += ": " + detail;
  return Failure{kind, "", ScrubSecrets(std::move(message), secrets_), ""};
}

Failure Connection::ResultFailure(PGresult* result) {
  Failure failure;
  const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const char* column = PQresultErrorField(result, PG_DIAG_COLUMN_NAME);
  if (sqlstate != nullptr) failure.sqlstate = sqlstate;
  failure.message = Trim(primary != nullptr ? primary : PQresultErrorMessage(result));
  if (failure.message.empty()) failure.message = Trim(PQerrorMessage(connection_));
  failure.message = ScrubSecrets(std::move(failure.message), secrets_);
  if (column != nullptr) failure.column = column;
  if (PQstatus(connection_) == CONNECTION_BAD || failure.sqlstate.empty() ||
      ClassifySqlState(failure.sqlstate) == SqlStateClass::kReconnect) {
    broken_ = true;
    failure.kind = FailureKind::kConnection;
  }
  return failure;
}

bool Connection::WaitSocket(bool want_write, Clock::time_point deadline) {
  short events = POLLIN;
  if (want_write) events |= POLLOUT;
  return WaitFor(PQsocket(connection_), events, deadline) != 0;
}

tl::expected<void, Failure> Connection::Flush(Clock::time_point deadline) {
  while (true) {
    int pending = PQflush(connection_);
    if (pending == 0) return {};
    if (pending < 0) return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "send"));
    if (!WaitSocket(true, deadline)) {
      return tl::unexpected(ConnectionFailure(FailureKind::kTimeout, "timed out while sending"));
    }
    // Read what the server already answered, so neither side blocks on a full buffer.
    if (PQconsumeInput(connection_) == 0) {
      return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "receive"));
    }
  }
}

tl::expected<PGresult*, Failure> Connection::NextResult(Clock::time_point deadline) {
  while (PQisBusy(connection_) != 0) {
    if (!WaitSocket(false, deadline)) {
      return tl::unexpected(
          ConnectionFailure(FailureKind::kTimeout, "timed out waiting for the server"));
    }
    if (PQconsumeInput(connection_) == 0) {
      return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "receive"));
    }
  }
  return PQgetResult(connection_);
}

tl::expected<std::vector<QueryResult>, PipelineFailure> Connection::Pipeline(
    std::span<const Statement> statements, Clock::time_point deadline) {
  auto fail = [](Failure failure, std::size_t index = 0) {
    return tl::unexpected(PipelineFailure{std::move(failure), index});
  };
  if (!usable()) return fail(ConnectionFailure(FailureKind::kConnection, "connection lost"));
  if (PQenterPipelineMode(connection_) != 1) {
    return fail(ConnectionFailure(FailureKind::kConnection, "cannot enter pipeline mode"));
  }

  // Queue every statement and a Sync, then send them together.
  std::vector<const char*> values;
  std::vector<int> lengths;
  for (const Statement& statement : statements) {
    values.clear();
    lengths.clear();
    for (const std::string& param : statement.params) {
      values.push_back(param.data());
      lengths.push_back(static_cast<int>(param.size()));
    }
    const int* formats = statement.formats.empty() ? nullptr : statement.formats.data();
    if (PQsendQueryParams(connection_, statement.sql.c_str(), static_cast<int>(values.size()),
                          nullptr, values.data(), lengths.data(), formats, 0) != 1) {
      return fail(ConnectionFailure(FailureKind::kConnection, "send"));
    }
  }
  if (PQpipelineSync(connection_) != 1) {
    return fail(ConnectionFailure(FailureKind::kConnection, "send"));
  }
  if (auto flushed = Flush(deadline); !flushed) return fail(flushed.error());

  // One result (then a null) per statement, then the Sync's result.
  std::vector<QueryResult> results;
  std::optional<PipelineFailure> first_failure;
  for (std::size_t index = 0; index < statements.size(); ++index) {
    auto next = NextResult(deadline);
    if (!next) return fail(next.error(), index);
    if (*next == nullptr) {
      return fail(ConnectionFailure(FailureKind::kConnection, "result missing"), index);
    }
    QueryResult result(*next);
    ExecStatusType status = PQresultStatus(*next);
    if (status == PGRES_FATAL_ERROR) {
      Failure failure = ResultFailure(*next);
      if (failure.kind == FailureKind::kConnection) return fail(std::move(failure), index);
      if (!first_failure) first_failure = PipelineFailure{std::move(failure), index};
    } else if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
               status != PGRES_PIPELINE_ABORTED) {
      return fail(ConnectionFailure(FailureKind::kConnection, "unexpected result"), index);
    }
    results.push_back(std::move(result));
    while (true) {  // the null that ends this statement's results
      auto end = NextResult(deadline);
      if (!end) return fail(end.error(), index);
      if (*end == nullptr) break;
      PQclear(*end);
    }
  }
  auto sync = NextResult(deadline);
  if (!sync) return fail(sync.error(), statements.size());
  bool synced = *sync != nullptr && PQresultStatus(*sync) == PGRES_PIPELINE_SYNC;
  if (*sync != nullptr) PQclear(*sync);
  if (!synced || PQexitPipelineMode(connection_) != 1) {
    return fail(ConnectionFailure(FailureKind::kConnection, "pipeline out of step"),
                statements.size());
  }
  if (first_failure) return tl::unexpected(std::move(*first_failure));
  return results;
}

tl::expected<QueryResult, Failure> Connection::Execute(const Statement& statement,
                                                       Clock::time_point deadline) {
  auto results = Pipeline(std::span<const Statement>(&statement, 1), deadline);
  if (!results) return tl::unexpected(std::move(results.error().failure));
  return std::move(results->front());
}

tl::expected<void, Failure> Connection::CopyIn(const std::string& copy_sql, std::string_view data,
                                               Clock::time_point deadline) {
  if (!usable()) return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "lost"));
  if (PQsendQueryParams(connection_, copy_sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) !=
      1) {
    return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "send"));
  }
  if (auto flushed = Flush(deadline); !flushed) return flushed;

  // Reads results up to the null that ends them; keeps the first failure.
  auto drain = [&](std::optional<Failure>& failure) -> tl::expected<void, Failure> {
    while (true) {
      auto next = NextResult(deadline);
      if (!next) return tl::unexpected(next.error());
      if (*next == nullptr) return {};
      if (PQresultStatus(*next) == PGRES_FATAL_ERROR && !failure) {
        failure = ResultFailure(*next);
      }
      PQclear(*next);
    }
  };

  auto started = NextResult(deadline);
  if (!started) return tl::unexpected(started.error());
  if (*started == nullptr || PQresultStatus(*started) != PGRES_COPY_IN) {
    std::optional<Failure> failure;
    if (*started != nullptr) {
      failure = ResultFailure(*started);
      PQclear(*started);
      if (auto drained = drain(failure); !drained) return drained;
    }
    if (!failure) failure = ConnectionFailure(FailureKind::kConnection, "COPY did not start");
    return tl::unexpected(*failure);
  }
  PQclear(*started);

  constexpr std::size_t kChunk = 256 * 1024;
  for (std::size_t offset = 0; offset < data.size();) {
    std::size_t size = std::min(kChunk, data.size() - offset);
    int sent = PQputCopyData(connection_, data.data() + offset, static_cast<int>(size));
    if (sent < 0) return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "COPY"));
    if (sent == 0) {
      if (!WaitSocket(true, deadline)) {
        return tl::unexpected(ConnectionFailure(FailureKind::kTimeout, "timed out in COPY"));
      }
      if (PQconsumeInput(connection_) == 0) {
        return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "COPY"));
      }
      continue;
    }
    offset += size;
  }
  while (true) {
    int ended = PQputCopyEnd(connection_, nullptr);
    if (ended < 0) return tl::unexpected(ConnectionFailure(FailureKind::kConnection, "COPY"));
    if (ended == 1) break;
    if (!WaitSocket(true, deadline)) {
      return tl::unexpected(ConnectionFailure(FailureKind::kTimeout, "timed out in COPY"));
    }
  }
  if (auto flushed = Flush(deadline); !flushed) return flushed;
  std::optional<Failure> failure;
  if (auto drained = drain(failure); !drained) return drained;
  if (failure) return tl::unexpected(*failure);
  return {};
}

}  // namespace s3db::replicator::postgresql
