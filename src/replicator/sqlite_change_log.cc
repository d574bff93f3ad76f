// The change log on SQLite (WAL mode) with group commit.
//
// Appends from concurrent writers queue up; one of them (the leader) commits everything
// queued in one transaction while the others wait, so N writers share one commit. Readers use
// their own connections, which WAL lets run beside the writer.
//
// A writer's change costs one commit: Prepare stores the change under its sequence number,
// marked pending, before the object-store write; Append (the write succeeded) only drops the
// mark in memory, and Abandon (it failed) deletes the row. Readers see changes up to the
// first one still pending, so the log's order is the order of the writes and nothing
// unconfirmed is ever delivered. Marks of confirmed changes are cleared with a later commit;
// a change pending longer than intent_timeout (a write that never answered), and every
// change a dead process left pending, moves to the intents table, which the plugin resolves
// against the source at its next start.
//
// With the batch and off fsync policies a Prepare is not a SQLite commit but one write(2) to
// the prepare journal (prepare_journal.h), which survives a process crash like the WAL does;
// the background thread moves journaled changes into SQLite in large transactions every
// journal_move_interval and deletes the journal files it emptied, and Open moves whatever a
// dead process left there first. Until a change is moved, readers get it from the tail kept
// in memory or, past the tail's budget, from the journal's text kept for the move.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "replicator/change_log.h"
#include "replicator/engine_util.h"
#include "replicator/prepare_journal.h"

namespace s3db::replicator {
namespace {

using internal::JournalContents;
using internal::JournalEntry;
using internal::JournalRecord;
using internal::JournalRecordKind;
using internal::ReadJournalFile;

constexpr std::size_t kCompactChunk = 10000;

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS changes(
  seq INTEGER PRIMARY KEY, resource TEXT NOT NULL, record_id TEXT NOT NULL,
  revision INTEGER NOT NULL, action TEXT NOT NULL, before_json TEXT, after_json TEXT,
  ts INTEGER NOT NULL, only_replicator TEXT, only_destination TEXT);
CREATE TABLE IF NOT EXISTS checkpoints(
  replicator TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters(
  id INTEGER PRIMARY KEY AUTOINCREMENT, replicator TEXT NOT NULL, seq INTEGER NOT NULL,
  resource TEXT NOT NULL, record_id TEXT NOT NULL, revision INTEGER NOT NULL,
  action TEXT NOT NULL, before_json TEXT, after_json TEXT, ts INTEGER NOT NULL,
  destination TEXT NOT NULL, reason TEXT NOT NULL, error TEXT NOT NULL,
  attempts INTEGER NOT NULL, failed_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_by_replicator ON dead_letters(replicator, id);
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents(
  resource TEXT NOT NULL, record_id TEXT NOT NULL, revision INTEGER NOT NULL,
  action TEXT NOT NULL, before_json TEXT, after_json TEXT, ts INTEGER NOT NULL,
  write_id TEXT NOT NULL, PRIMARY KEY(resource, record_id, revision));
CREATE TABLE IF NOT EXISTS pending(seq INTEGER PRIMARY KEY, write_id TEXT NOT NULL);
)sql";

const char* kInsertIntent =
    "INSERT OR REPLACE INTO intents(resource, record_id, revision, action, before_json, "
    "after_json, ts, write_id) VALUES(?,?,?,?,?,?,?,?)";
const char* kDeleteIntent =
    "DELETE FROM intents WHERE resource=? AND record_id=? AND revision=?";

// A prepared change whose write has not been confirmed yet sits in `changes` with a row in
// `pending`; these move it to `intents` (a process that died, or a write that never answered).
const char* kPendingToIntents =
    "INSERT OR REPLACE INTO intents(resource, record_id, revision, action, before_json, "
    "after_json, ts, write_id) SELECT c.resource, c.record_id, c.revision, c.action, "
    "c.before_json, c.after_json, c.ts, p.write_id FROM pending p JOIN changes c ON c.seq = p.seq";
const char* kInsertPending = "INSERT OR REPLACE INTO pending(seq, write_id) VALUES(?,?)";
const char* kDeletePending = "DELETE FROM pending WHERE seq=?";
const char* kDeleteChange = "DELETE FROM changes WHERE seq=?";

const char* kInsertChange =
    "INSERT INTO changes(seq, resource, record_id, revision, action, before_json, after_json, "
    "ts, only_replicator, only_destination) VALUES(?,?,?,?,?,?,?,?,?,?)";
const char* kSelectChanges =
    "SELECT seq, resource, record_id, revision, action, before_json, after_json, ts, "
    "only_replicator, only_destination FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq "
    "LIMIT ?";

Error SqliteError(sqlite3* db, const std::string& what) {
  int code = db ? sqlite3_errcode(db) : SQLITE_ERROR;
  if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB) {
    // A damaged file: name it and say what to do, and what that costs.
    const char* name = sqlite3_db_filename(db, "main");
    std::string file = name && *name ? name : "changes.db";
    return Error(ErrorCode::kIo,
                 "the change log " + file + " is damaged (" + sqlite3_errmsg(db) +
                     "). Stop every s3db process that uses it, move it aside together with " +
                     file + "-wal and " + file +
                     "-shm if they exist, and start again: a new, empty change log is created. "
                     "What only the old file held is lost: changes not yet delivered, the dead "
                     "letters and each replicator's position; afterwards run `s3db replicators "
                     "sync ID` for each replicator to copy the current records again");
  }
  ErrorCode kind = ErrorCode::kIo;
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) kind = ErrorCode::kUnavailable;
  return Error(kind, "change log: " + what + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

// A prepared statement that resets itself when it goes out of use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Status Prepare(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      return tl::unexpected(SqliteError(db, "prepare"));
    }
    return Ok();
  }
  sqlite3_stmt* get() const { return stmt_; }
  void Finalize() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

struct ResetOnExit {
  sqlite3_stmt* stmt;
  ~ResetOnExit() {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
};

void BindText(sqlite3_stmt* stmt, int index, std::string_view text) {
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

void BindOptionalText(sqlite3_stmt* stmt, int index, std::string_view text, bool present) {
  if (present) {
    BindText(stmt, index, text);
  } else {
    sqlite3_bind_null(stmt, index);
  }
}

std::string ColumnText(sqlite3_stmt* stmt, int index) {
  const unsigned char* text = sqlite3_column_text(stmt, index);
  if (!text) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt, index)));
}

// A record as the log stores it (JSON text), parsed; nullopt when it is not an object.
std::optional<JsonObject> ParseRecordText(std::string_view text) {
  boost::system::error_code ec;
  Json value = boost::json::parse(text, ec);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.get_object());
}

std::optional<JsonObject> ColumnJson(sqlite3_stmt* stmt, int index) {
  if (sqlite3_column_type(stmt, index) == SQLITE_NULL) return std::nullopt;
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, index));
  return ParseRecordText(
      std::string_view(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, index))));
}

Status Exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    int code = sqlite3_errcode(db) & 0xff;
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return tl::unexpected(SqliteError(db, ""));
    return MakeError(ErrorCode::kIo, std::string("change log: ") + text);
  }
  return Ok();
}

Result<sqlite3*> OpenConnection(const std::string& path, bool writer, FsyncPolicy fsync) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Error error = SqliteError(db, "cannot open " + path);
    sqlite3_close(db);
    return tl::unexpected(error);
  }
  sqlite3_busy_timeout(db, 10000);
  if (!writer) {
    // Readers and the checkpointer read the recent tail of the log: a small page cache each
    // (the default is 2 MiB per connection, and every replicator has its reader).
    if (auto status = Exec(db, "PRAGMA cache_size=-256"); !status) {
      sqlite3_close(db);
      return tl::unexpected(status.error());
    }
  }
  if (writer) {
    const char* sync = fsync == FsyncPolicy::kAlways ? "PRAGMA synchronous=FULL"
                       : fsync == FsyncPolicy::kBatch ? "PRAGMA synchronous=NORMAL"
                                                      : "PRAGMA synchronous=OFF";
    // Checkpoints run on the background thread (SqliteChangeLog::BackgroundLoop), not in the
    // commit of whichever writer crosses the threshold: a checkpoint fsyncs.
    for (const char* sql : {"PRAGMA journal_mode=WAL", sync, "PRAGMA wal_autocheckpoint=0",
                            "PRAGMA journal_size_limit=4194304"}) {
      if (auto status = Exec(db, sql); !status) {
        sqlite3_close(db);
        return tl::unexpected(status.error());
      }
    }
  }
  return db;
}

struct Encoded {
  std::string before;
  std::string after;
  bool has_before = false;
  bool has_after = false;
};

Encoded Encode(const Change& change) {
  Encoded encoded;
  if (change.before) {
    encoded.before = boost::json::serialize(*change.before);
    encoded.has_before = true;
  }
  if (change.after) {
    encoded.after = boost::json::serialize(*change.after);
    encoded.has_after = true;
  }
  return encoded;
}

Action ActionFromText(const std::string& text) {
  return ParseAction(text).value_or(Action::kInsert);
}

// Reads change columns starting at `first` in the order resource, record_id, revision,
// action, before_json, after_json, ts.
Change ReadChangeColumns(sqlite3_stmt* stmt, int first) {
  Change change;
  change.resource = ColumnText(stmt, first);
  change.id = ColumnText(stmt, first + 1);
  change.revision = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, first + 2));
  change.action = ActionFromText(ColumnText(stmt, first + 3));
  change.before = ColumnJson(stmt, first + 4);
  change.after = ColumnJson(stmt, first + 5);
  change.timestamp_ms = sqlite3_column_int64(stmt, first + 6);
  return change;
}

struct Reader {
  sqlite3* db = nullptr;
  Statement select_changes;
};

class SqliteChangeLog : public ChangeLog {
 public:
  explicit SqliteChangeLog(SqliteChangeLogOptions options) : options_(std::move(options)) {}

  ~SqliteChangeLog() override { (void)Close(); }

  Status Open() {
    std::error_code ec;
    std::filesystem::path folder = std::filesystem::path(options_.path).parent_path();
    if (!folder.empty()) std::filesystem::create_directories(folder, ec);
    if (ec) {
      return MakeError(ErrorCode::kIo, "change log: cannot create folder " + folder.string() +
                                           ": " + ec.message());
    }
    S3DB_ASSIGN_OR_RETURN(writer_, OpenConnection(options_.path, true, options_.fsync));
    S3DB_RETURN_IF_ERROR(Exec(writer_, kSchema));
    S3DB_RETURN_IF_ERROR(insert_change_.Prepare(writer_, kInsertChange));
    S3DB_RETURN_IF_ERROR(insert_intent_.Prepare(writer_, kInsertIntent));
    S3DB_RETURN_IF_ERROR(delete_intent_.Prepare(writer_, kDeleteIntent));
    S3DB_RETURN_IF_ERROR(insert_pending_.Prepare(writer_, kInsertPending));
    S3DB_RETURN_IF_ERROR(delete_pending_.Prepare(writer_, kDeletePending));
    S3DB_RETURN_IF_ERROR(delete_change_.Prepare(writer_, kDeleteChange));
    S3DB_RETURN_IF_ERROR(begin_.Prepare(writer_, "BEGIN IMMEDIATE"));
    S3DB_RETURN_IF_ERROR(commit_.Prepare(writer_, "COMMIT"));
    S3DB_RETURN_IF_ERROR(set_checkpoint_.Prepare(
        writer_,
        "INSERT INTO checkpoints(replicator, seq, updated_ms) VALUES(?,?,?) "
        "ON CONFLICT(replicator) DO UPDATE SET seq = excluded.seq, "
        "updated_ms = excluded.updated_ms"));

    journal_enabled_ = options_.fsync != FsyncPolicy::kAlways;
    S3DB_RETURN_IF_ERROR(MoveJournalsOfPreviousProcess());
    S3DB_ASSIGN_OR_RETURN(std::int64_t high, QueryInt(
        "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM changes UNION ALL "
        "SELECT MAX(seq) FROM checkpoints UNION ALL SELECT MAX(seq) FROM dead_letters)"));
    next_sequence_ = std::max(static_cast<std::uint64_t>(high), journal_high_) + 1;
    S3DB_RETURN_IF_ERROR(ResolvePendingOfPreviousProcess());
    last_sequence_.store(next_sequence_ - 1);
    tail_floor_ = next_sequence_ - 1;

    S3DB_ASSIGN_OR_RETURN(checkpointer_, OpenConnection(options_.path, false, options_.fsync));
    S3DB_RETURN_IF_ERROR(Exec(checkpointer_, options_.fsync == FsyncPolicy::kOff
                                                 ? "PRAGMA synchronous=OFF"
                                                 : "PRAGMA synchronous=NORMAL"));
    open_ = true;
    background_thread_ = std::thread([this] { BackgroundLoop(); });
    return Ok();
  }

  // Changes a dead process left pending: those some replicator's checkpoint has passed were
  // confirmed (only confirmed changes are read); the others become intents, for the plugin to
  // resolve against the source.
  Status ResolvePendingOfPreviousProcess() {
    S3DB_ASSIGN_OR_RETURN(std::int64_t count, QueryInt("SELECT COUNT(*) FROM pending"));
    if (count == 0) return Ok();
    S3DB_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    Status status = Exec(writer_,
                         "DELETE FROM pending WHERE seq <= "
                         "(SELECT COALESCE(MAX(seq), 0) FROM checkpoints)");
    if (status) status = Exec(writer_, kPendingToIntents);
    if (status) {
      status = Exec(writer_, "DELETE FROM changes WHERE seq IN (SELECT seq FROM pending)");
    }
    if (status) status = Exec(writer_, "DELETE FROM pending");
    if (status) status = Exec(writer_, "COMMIT");
    if (!status) (void)Exec(writer_, "ROLLBACK");
    return status;
  }

  Result<std::uint64_t> Append(const Change& change) override {
    if (!change.write_id.empty()) {
      // A journaled confirmation keeps a restart from taking the change for an unconfirmed
      // one (which the plugin would check against the source and append anew). When it cannot
      // be written, that is what happens, and nothing is lost.
      std::unique_lock journal_lock(journal_mutex_, std::defer_lock);
      if (journal_enabled_) journal_lock.lock();
      std::lock_guard lock(pending_mutex_);
      if (auto found = pending_by_key_.find(PendingKey(change)); found != pending_by_key_.end()) {
        // Prepared: the change is stored already; confirming it is a memory operation.
        std::uint64_t sequence = found->second;
        if (journal_enabled_) {
          (void)AppendToJournal(JournalEntry(JournalRecordKind::kConfirm).Finish(sequence));
        }
        auto entry = pending_.find(sequence);
        // A change still in the journal has no pending row to clear.
        if (entry != pending_.end() && entry->second.in_sqlite) {
          confirmed_marks_.push_back(sequence);
        }
        if (entry != pending_.end()) pending_.erase(entry);
        pending_by_key_.erase(found);
        PublishVisible();
        return sequence;
      }
    }
    Job job;
    job.single = &change;
    S3DB_RETURN_IF_ERROR(Submit(job));
    return job.sequences.front();
  }

  Result<std::vector<std::uint64_t>> AppendMany(
      const std::vector<LoggedChange>& changes) override {
    if (changes.empty()) return std::vector<std::uint64_t>{};
    Job job;
    job.many = &changes;
    S3DB_RETURN_IF_ERROR(Submit(job));
    return std::move(job.sequences);
  }

  Status Prepare(const Change& change) override {
    if (journal_enabled_) return PrepareInJournal(change);
    Job job;
    job.prepare = &change;
    return Submit(job);
  }

  Status Abandon(const Change& change) override {
    Job job;
    job.abandon = &change;
    if (!change.write_id.empty()) {
      std::unique_lock journal_lock(journal_mutex_, std::defer_lock);
      if (journal_enabled_) journal_lock.lock();
      {
        std::lock_guard lock(pending_mutex_);
        if (auto found = pending_by_key_.find(PendingKey(change));
            found != pending_by_key_.end()) {
          job.abandon_sequence = found->second;
        }
      }
      if (journal_enabled_ && job.abandon_sequence) {
        // Its journal record may outlive this process (journal files go a little after the
        // move): the abandon is journaled too, so that a restart does not bring it back. When
        // that write fails, a restart finds the change pending and resolves it against the
        // source like any intent, where the failed write is not.
        std::string record = JournalEntry(JournalRecordKind::kAbandon).Finish(job.abandon_sequence);
        if (auto noted = AppendToJournal(record); !noted) {
          auto logger = spdlog::get("replicator");
          (logger ? logger : spdlog::default_logger())
              ->warn("{}; the next start checks change {} against the source",
                     noted.error().message, change.ChangeId());
        }
        bool unmoved = unmoved_.count(job.abandon_sequence) > 0;
        if (unmoved || moving_.count(job.abandon_sequence) > 0) {
          unmoved_.erase(job.abandon_sequence);
          moving_.erase(job.abandon_sequence);  // the move skips it from now on
          {
            std::lock_guard tail_lock(tail_mutex_);
            EraseFromTail(job.abandon_sequence);  // still pending, so nobody has read it
          }
          if (unmoved) {  // not in SQLite: forgetting it is a memory operation
            std::lock_guard lock(pending_mutex_);
            ErasePending(job.abandon_sequence);
            PublishVisible();
            return Ok();
          }
          // Being moved: the commit below deletes whatever the move stored of it.
        }
      }
    }
    return Submit(job);
  }

  Result<std::vector<Change>> ListIntents() override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(
        writer_,
        "SELECT resource, record_id, revision, action, before_json, after_json, ts, write_id "
        "FROM intents ORDER BY ts, resource, record_id, revision"));
    std::vector<Change> intents;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      intents.push_back(ReadChangeColumns(stmt.get(), 0));
      intents.back().write_id = ColumnText(stmt.get(), 7);
    }
    if (rc != SQLITE_DONE) return tl::unexpected(SqliteError(writer_, "list intents"));
    return intents;
  }

  Result<std::vector<LoggedChange>> ReadFrom(std::uint64_t after, std::size_t limit) override {
    return Read<LoggedChange>(after, limit);
  }

  Result<std::vector<std::shared_ptr<const LoggedChange>>> ReadShared(std::uint64_t after,
                                                                      std::size_t limit) override {
    return Read<std::shared_ptr<const LoggedChange>>(after, limit);
  }

  // ReadFrom (Out = LoggedChange: the tail's changes copied) and ReadShared (Out = a shared
  // pointer: the tail's changes as they are).
  template <typename Out>
  Result<std::vector<Out>> Read(std::uint64_t after, std::size_t limit) {
    auto from_tail = [](std::vector<std::shared_ptr<const LoggedChange>> shared) {
      if constexpr (std::is_same_v<Out, LoggedChange>) {
        std::vector<LoggedChange> copies;
        copies.reserve(shared.size());
        for (const auto& change : shared) copies.push_back(*change);
        return copies;
      } else {
        return shared;
      }
    };
    while (true) {
      std::uint64_t visible = last_sequence_.load();
      std::uint64_t floor;
      if (auto recent = ReadFromTail(after, limit, visible, floor)) {
        return from_tail(std::move(*recent));
      }
      // Below the tail's floor a change is in SQLite or still in the journal (its text), so
      // that part is read from both, and the tail gives the rest.
      S3DB_ASSIGN_OR_RETURN(auto stored, ReadBelowTail(after, std::min(visible, floor), limit));
      std::vector<Out> out;
      out.reserve(stored.size());
      for (LoggedChange& logged : stored) {
        if constexpr (std::is_same_v<Out, LoggedChange>) {
          out.push_back(std::move(logged));
        } else {
          out.push_back(std::make_shared<const LoggedChange>(std::move(logged)));
        }
      }
      if (out.size() >= limit || floor >= visible) return out;
      std::uint64_t new_floor;
      if (auto recent = ReadFromTail(floor, limit - out.size(), visible, new_floor)) {
        for (auto& logged : from_tail(std::move(*recent))) out.push_back(std::move(logged));
        return out;
      }
      if (!out.empty()) return out;
      // The floor rose meanwhile (what it passed is in SQLite now): read again.
    }
  }

  // The changes above `after` up to `through` (at most `limit`, by sequence) that are in
  // SQLite or in the journal, whose changes the tail may have let go before their move.
  // Journaled changes are collected first: one that leaves the journal maps meanwhile has
  // been committed to SQLite (the move drops it from moving_ only after its commit), so
  // the SQLite read that follows has it.
  Result<std::vector<LoggedChange>> ReadBelowTail(std::uint64_t after, std::uint64_t through,
                                                  std::size_t limit) {
    std::vector<std::pair<std::uint64_t, Journaled>> journaled;
    if (journal_enabled_) {
      std::lock_guard journal_lock(journal_mutex_);
      for (const auto* map : {&moving_, &unmoved_}) {
        std::size_t taken = 0;
        for (auto it = map->upper_bound(after);
             it != map->end() && it->first <= through && taken < limit; ++it, ++taken) {
          journaled.emplace_back(it->first, it->second);
        }
      }
    }
    S3DB_ASSIGN_OR_RETURN(auto stored, ReadFromSqlite(after, through, limit));
    if (journaled.empty()) return stored;
    std::map<std::uint64_t, LoggedChange> merged;
    for (LoggedChange& logged : stored) merged.emplace(logged.sequence, std::move(logged));
    for (const auto& [sequence, entry] : journaled) {
      if (merged.count(sequence)) continue;  // moved meanwhile: SQLite's copy is the same
      LoggedChange logged;
      logged.sequence = sequence;
      logged.change = *entry.header;
      if (entry.encoded->has_before) logged.change.before = ParseRecordText(entry.encoded->before);
      if (entry.encoded->has_after) logged.change.after = ParseRecordText(entry.encoded->after);
      merged.emplace(sequence, std::move(logged));
    }
    std::vector<LoggedChange> out;
    for (auto& [sequence, logged] : merged) {
      if (out.size() >= limit) break;
      out.push_back(std::move(logged));
    }
    return out;
  }

  Result<std::vector<LoggedChange>> ReadFromSqlite(std::uint64_t after, std::uint64_t through,
                                                   std::size_t limit) {
    S3DB_ASSIGN_OR_RETURN(Reader * reader, AcquireReader());
    std::vector<LoggedChange> out;
    Status status = Ok();
    {
      sqlite3_stmt* stmt = reader->select_changes.get();
      ResetOnExit reset{stmt};
      sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(after));
      sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(through));
      sqlite3_bind_int64(stmt, 3, static_cast<sqlite3_int64>(limit));
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        LoggedChange logged;
        logged.sequence = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0));
        logged.change = ReadChangeColumns(stmt, 1);
        logged.only_replicator = ColumnText(stmt, 8);
        logged.only_destination = ColumnText(stmt, 9);
        out.push_back(std::move(logged));
      }
      if (rc != SQLITE_DONE) status = tl::unexpected(SqliteError(reader->db, "read"));
    }
    ReleaseReader(reader);
    if (!status) return tl::unexpected(status.error());
    return out;
  }

  std::uint64_t LastSequence() const override { return last_sequence_.load(); }

  bool WaitForAppend(std::uint64_t after, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(appended_mutex_);
    return appended_.wait_for(lock, timeout, [&] { return last_sequence_.load() > after; });
  }

  Result<std::optional<std::uint64_t>> GetCheckpoint(std::string_view replicator) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, "SELECT seq FROM checkpoints WHERE replicator=?"));
    BindText(stmt.get(), 1, replicator);
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
      return std::optional<std::uint64_t>(
          static_cast<std::uint64_t>(sqlite3_column_int64(stmt.get(), 0)));
    }
    if (rc == SQLITE_DONE) return std::optional<std::uint64_t>();
    return tl::unexpected(SqliteError(writer_, "read checkpoint"));
  }

  Status SetCheckpoint(std::string_view replicator, std::uint64_t sequence) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    sqlite3_stmt* stmt = set_checkpoint_.get();
    ResetOnExit reset{stmt};
    BindText(stmt, 1, replicator);
    sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(sequence));
    sqlite3_bind_int64(stmt, 3, internal::NowMs());
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "save checkpoint"));
    }
    MarkWritten();
    return Ok();
  }

  Result<std::uint64_t> Compact(const std::vector<std::string>& replicators) override {
    if (replicators.empty()) return 0;
    std::uint64_t lowest = UINT64_MAX;
    for (const auto& replicator : replicators) {
      S3DB_ASSIGN_OR_RETURN(auto checkpoint, GetCheckpoint(replicator));
      if (!checkpoint) return 0;
      lowest = std::min(lowest, *checkpoint);
    }
    std::uint64_t removed = 0;
    while (true) {
      std::lock_guard lock(write_mutex_);  // released between chunks so appends go on
      S3DB_RETURN_IF_ERROR(CheckOpen());
      S3DB_ASSIGN_OR_RETURN(std::int64_t first, QueryInt("SELECT MIN(seq) FROM changes"));
      S3DB_ASSIGN_OR_RETURN(std::int64_t last, QueryInt("SELECT MAX(seq) FROM changes"));
      std::uint64_t bound = std::min<std::uint64_t>(
          {lowest, static_cast<std::uint64_t>(last) - (last > 0 ? 1 : 0),
           static_cast<std::uint64_t>(first) + kCompactChunk});
      if (first == 0 || static_cast<std::uint64_t>(first) > bound) break;
      Statement stmt;
      S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, "DELETE FROM changes WHERE seq <= ?"));
      sqlite3_bind_int64(stmt.get(), 1, static_cast<sqlite3_int64>(bound));
      if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
        return tl::unexpected(SqliteError(writer_, "compact"));
      }
      removed += static_cast<std::uint64_t>(sqlite3_changes(writer_));
      MarkWritten();
      ForgetTailThrough(bound);
    }
    return removed;
  }

  Result<std::uint64_t> CountChanges() override {
    S3DB_RETURN_IF_ERROR(MoveJournal());  // count what is stored, wherever it is
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    S3DB_ASSIGN_OR_RETURN(std::int64_t count, QueryInt("SELECT COUNT(*) FROM changes"));
    return static_cast<std::uint64_t>(count);
  }

  Result<std::int64_t> AddDeadLetter(const DeadLetter& letter) override {
    Encoded encoded = Encode(letter.change);
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(
        writer_,
        "INSERT INTO dead_letters(replicator, seq, resource, record_id, revision, action, "
        "before_json, after_json, ts, destination, reason, error, attempts, failed_at) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    sqlite3_stmt* s = stmt.get();
    BindText(s, 1, letter.replicator);
    sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(letter.sequence));
    BindText(s, 3, letter.change.resource);
    BindText(s, 4, letter.change.id);
    sqlite3_bind_int64(s, 5, static_cast<sqlite3_int64>(letter.change.revision));
    BindText(s, 6, ActionName(letter.change.action));
    BindOptionalText(s, 7, encoded.before, encoded.has_before);
    BindOptionalText(s, 8, encoded.after, encoded.has_after);
    sqlite3_bind_int64(s, 9, letter.change.timestamp_ms);
    BindText(s, 10, letter.destination);
    BindText(s, 11, letter.reason);
    BindText(s, 12, letter.error);
    sqlite3_bind_int(s, 13, letter.attempts);
    sqlite3_bind_int64(s, 14, letter.failed_at_ms ? letter.failed_at_ms : internal::NowMs());
    if (sqlite3_step(s) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "add dead letter"));
    }
    MarkWritten();
    return static_cast<std::int64_t>(sqlite3_last_insert_rowid(writer_));
  }

  Result<std::vector<DeadLetter>> ListDeadLetters(std::string_view replicator,
                                                  std::size_t limit) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    return SelectDeadLetters(replicator, limit);
  }

  Result<std::uint64_t> CountDeadLetters(std::string_view replicator) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(
        stmt.Prepare(writer_, "SELECT COUNT(*) FROM dead_letters WHERE replicator=?"));
    BindText(stmt.get(), 1, replicator);
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
      return tl::unexpected(SqliteError(writer_, "count dead letters"));
    }
    return static_cast<std::uint64_t>(sqlite3_column_int64(stmt.get(), 0));
  }

  Result<std::vector<std::uint64_t>> RequeueDeadLetters(std::string_view replicator) override {
    Job job;
    job.requeue_replicator = std::string(replicator);
    S3DB_RETURN_IF_ERROR(Submit(job));
    return std::move(job.sequences);
  }

  Result<std::uint64_t> PurgeDeadLetters(std::string_view replicator) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, "DELETE FROM dead_letters WHERE replicator=?"));
    BindText(stmt.get(), 1, replicator);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "purge dead letters"));
    }
    MarkWritten();
    return static_cast<std::uint64_t>(sqlite3_changes(writer_));
  }

  Result<std::optional<std::string>> GetState(std::string_view key) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, "SELECT value FROM state WHERE key=?"));
    BindText(stmt.get(), 1, key);
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) return std::optional<std::string>(ColumnText(stmt.get(), 0));
    if (rc == SQLITE_DONE) return std::optional<std::string>();
    return tl::unexpected(SqliteError(writer_, "read state"));
  }

  Status SetState(std::string_view key, std::string_view value) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(
        writer_, "INSERT INTO state(key, value) VALUES(?,?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    BindText(stmt.get(), 1, key);
    BindText(stmt.get(), 2, value);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "save state"));
    }
    MarkWritten();
    return Ok();
  }

  Status DeleteState(std::string_view key) override {
    std::lock_guard lock(write_mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, "DELETE FROM state WHERE key=?"));
    BindText(stmt.get(), 1, key);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "delete state"));
    }
    return Ok();
  }

  Status Close() override {
    {
      std::lock_guard lock(fsync_mutex_);
      stopping_ = true;
    }
    fsync_wake_.notify_all();
    if (background_thread_.joinable()) background_thread_.join();
    bool journal_moved = true;
    if (open_) {
      journal_moved = MoveJournal().has_value();
      Job flush;  // clears the marks of confirmed changes, so the next start has less to do
      (void)Submit(flush);
    }

    std::lock_guard lock(write_mutex_);
    if (!open_) return Ok();
    open_ = false;
    {
      std::lock_guard readers_lock(readers_mutex_);
      for (auto& reader : readers_) {
        reader->select_changes.Finalize();
        sqlite3_close(reader->db);
      }
      readers_.clear();
      idle_readers_.clear();
    }
    insert_change_.Finalize();
    insert_intent_.Finalize();
    delete_intent_.Finalize();
    sqlite3_close(checkpointer_);
    checkpointer_ = nullptr;
    insert_pending_.Finalize();
    delete_pending_.Finalize();
    delete_change_.Finalize();
    begin_.Finalize();
    commit_.Finalize();
    set_checkpoint_.Finalize();
    if (wal_fd_ >= 0) {
      ::close(wal_fd_);
      wal_fd_ = -1;
    }
    int rc = sqlite3_close(writer_);
    writer_ = nullptr;
    {
      std::lock_guard journal_lock(journal_mutex_);
      if (journal_fd_ >= 0) ::close(journal_fd_);
      journal_fd_ = -1;
      // Closing the database copied its WAL into it; what the journals held is in there now.
      // A journal that could not be moved stays for the next start.
      if (journal_moved && rc == SQLITE_OK && unmoved_.empty()) {
        for (const std::string& file : JournalFiles()) ::unlink(file.c_str());
      }
    }
    if (rc != SQLITE_OK) return MakeError(ErrorCode::kIo, "change log: close failed");
    return Ok();
  }

 private:
  struct PendingEntry {
    std::string key;  // PendingKey
    std::chrono::steady_clock::time_point since;
    bool in_sqlite = false;  // stored in SQLite with a pending row (not only in the journal)
  };

  // A prepared change written to the journal and not yet moved into SQLite.
  // Only its text and identity: the records themselves live in the tail, which may let them
  // go before the move.
  struct Journaled {
    std::shared_ptr<const Change> header;  // the change without its before/after records
    std::shared_ptr<const Encoded> encoded;
  };

  // One caller's appends, waiting for a group commit.
  struct Job {
    const Change* single = nullptr;
    const Change* prepare = nullptr;  // record an intent
    const Change* abandon = nullptr;  // forget an intent
    std::uint64_t abandon_sequence = 0;  // abandon: its pending change, if it was prepared here
    const std::vector<LoggedChange>* many = nullptr;
    std::string requeue_replicator;      // non-empty: move these dead letters back into the log
    std::vector<LoggedChange> requeued;  // requeue: the changes it stored
    const std::vector<std::pair<std::uint64_t, Journaled>>* move = nullptr;  // into SQLite
    std::vector<std::uint64_t> sequences;
    Status status = Ok();
    bool done = false;  // guarded by queue_mutex_
  };

  Status CheckOpen() const {
    if (!open_ || !writer_) return MakeError(ErrorCode::kUnavailable, "change log is closed");
    return Ok();
  }

  // REQUIRES: write_mutex_ held.
  Result<std::int64_t> QueryInt(const char* sql) {
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, sql));
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) return tl::unexpected(SqliteError(writer_, "read"));
    return static_cast<std::int64_t>(sqlite3_column_int64(stmt.get(), 0));
  }

  Status Submit(Job& job) {
    std::unique_lock lock(queue_mutex_);
    queue_.push_back(&job);
    while (!job.done) {
      if (committing_) {
        queue_changed_.wait(lock);
        continue;
      }
      committing_ = true;
      std::vector<Job*> group;
      group.swap(queue_);
      lock.unlock();
      CommitGroup(group);
      lock.lock();
      for (Job* member : group) member->done = true;
      committing_ = false;
      queue_changed_.notify_all();
    }
    return job.status;
  }

  // Binds resource, id, revision, action, before, after and time to the 7 parameters from
  // `first` on (the same columns in the changes and intents tables).
  static void BindChange(sqlite3_stmt* stmt, int first, const Change& change,
                         const Encoded& encoded) {
    BindText(stmt, first, change.resource);
    BindText(stmt, first + 1, change.id);
    sqlite3_bind_int64(stmt, first + 2, static_cast<sqlite3_int64>(change.revision));
    BindText(stmt, first + 3, ActionName(change.action));
    BindOptionalText(stmt, first + 4, encoded.before, encoded.has_before);
    BindOptionalText(stmt, first + 5, encoded.after, encoded.has_after);
    sqlite3_bind_int64(stmt, first + 6, change.timestamp_ms);
  }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status InsertChange(std::uint64_t sequence, const Change& change, std::string_view replicator,
                      std::string_view destination) {
    return InsertEncoded(sequence, change, Encode(change), replicator, destination);
  }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status InsertEncoded(std::uint64_t sequence, const Change& change, const Encoded& encoded,
                       std::string_view replicator, std::string_view destination) {
    sqlite3_stmt* stmt = insert_change_.get();
    ResetOnExit reset{stmt};
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(sequence));
    BindChange(stmt, 2, change, encoded);
    BindOptionalText(stmt, 9, replicator, !replicator.empty());
    BindOptionalText(stmt, 10, destination, !destination.empty());
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "append"));
    }
    return Ok();
  }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status InsertIntent(const Change& change) { return InsertIntentEncoded(change, Encode(change)); }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status InsertIntentEncoded(const Change& change, const Encoded& encoded) {
    sqlite3_stmt* stmt = insert_intent_.get();
    ResetOnExit reset{stmt};
    BindChange(stmt, 1, change, encoded);
    BindText(stmt, 8, change.write_id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "record intent"));
    }
    return Ok();
  }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status DeleteIntent(const Change& change) {
    sqlite3_stmt* stmt = delete_intent_.get();
    ResetOnExit reset{stmt};
    BindText(stmt, 1, change.resource);
    BindText(stmt, 2, change.id);
    sqlite3_bind_int64(stmt, 3, static_cast<sqlite3_int64>(change.revision));
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "forget intent"));
    }
    return Ok();
  }

  // REQUIRES: write_mutex_ held.
  Result<std::vector<DeadLetter>> SelectDeadLetters(std::string_view replicator,
                                                    std::size_t limit) {
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(
        writer_,
        "SELECT id, replicator, seq, resource, record_id, revision, action, before_json, "
        "after_json, ts, destination, reason, error, attempts, failed_at FROM dead_letters "
        "WHERE replicator=? ORDER BY id LIMIT ?"));
    BindText(stmt.get(), 1, replicator);
    sqlite3_bind_int64(stmt.get(), 2,
                       limit ? static_cast<sqlite3_int64>(limit) : INT64_MAX);
    std::vector<DeadLetter> letters;
    int rc;
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      sqlite3_stmt* s = stmt.get();
      DeadLetter letter;
      letter.id = sqlite3_column_int64(s, 0);
      letter.replicator = ColumnText(s, 1);
      letter.sequence = static_cast<std::uint64_t>(sqlite3_column_int64(s, 2));
      letter.change = ReadChangeColumns(s, 3);
      letter.destination = ColumnText(s, 10);
      letter.reason = ColumnText(s, 11);
      letter.error = ColumnText(s, 12);
      letter.attempts = sqlite3_column_int(s, 13);
      letter.failed_at_ms = sqlite3_column_int64(s, 14);
      letters.push_back(std::move(letter));
    }
    if (rc != SQLITE_DONE) return tl::unexpected(SqliteError(writer_, "list dead letters"));
    return letters;
  }

  // Runs a statement prepared on the writer that takes at most one integer parameter.
  // REQUIRES: write_mutex_ held.
  Status Step(Statement& statement, const char* what, std::optional<std::uint64_t> value = {}) {
    sqlite3_stmt* stmt = statement.get();
    ResetOnExit reset{stmt};
    if (value) sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(*value));
    if (sqlite3_step(stmt) != SQLITE_DONE) return tl::unexpected(SqliteError(writer_, what));
    return Ok();
  }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status InsertPending(std::uint64_t sequence, const Change& change) {
    sqlite3_stmt* stmt = insert_pending_.get();
    ResetOnExit reset{stmt};
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(sequence));
    BindText(stmt, 2, change.write_id);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "record pending change"));
    }
    return Ok();
  }

  // Moves a pending change to the intents table. REQUIRES: write_mutex_ held, in a transaction.
  Status PendingToIntent(std::uint64_t sequence) {
    Statement stmt;
    S3DB_RETURN_IF_ERROR(
        stmt.Prepare(writer_, (std::string(kPendingToIntents) + " WHERE p.seq = ?").c_str()));
    S3DB_RETURN_IF_ERROR(Step(stmt, "move a pending change to the intents", sequence));
    S3DB_RETURN_IF_ERROR(Step(delete_change_, "move a pending change", sequence));
    return Step(delete_pending_, "move a pending change", sequence);
  }

  // Commits every job of the group in one transaction and fills in their results.
  void CommitGroup(std::vector<Job*>& group) {
    std::lock_guard lock(write_mutex_);
    Status status = CheckOpen();
    allocated_.clear();
    std::vector<std::uint64_t> marks;
    {
      std::lock_guard pending_lock(pending_mutex_);
      marks.swap(confirmed_marks_);
    }
    // Held from choosing the stale pending changes until they are gone from pending_, so that
    // no Append confirms one of them in between.
    std::unique_lock stale_lock(pending_mutex_, std::defer_lock);
    std::vector<std::uint64_t> stale;
    if (status) status = Step(begin_, "begin");
    if (status) {
      for (Job* job : group) {
        job->sequences.clear();
        if (job->single) {
          std::uint64_t sequence = AllocateSequence();
          status = InsertChange(sequence, *job->single, {}, {});
          if (status) status = DeleteIntent(*job->single);
          job->sequences.push_back(sequence);
        } else if (job->prepare) {
          std::uint64_t sequence = AllocateSequence();
          status = InsertChange(sequence, *job->prepare, {}, {});
          if (status) status = InsertPending(sequence, *job->prepare);
          job->sequences.push_back(sequence);
        } else if (job->abandon) {
          status = DeleteIntent(*job->abandon);
          if (status && job->abandon_sequence) {
            status = Step(delete_change_, "abandon", job->abandon_sequence);
            if (status) status = Step(delete_pending_, "abandon", job->abandon_sequence);
          }
        } else if (job->many) {
          for (const LoggedChange& logged : *job->many) {
            std::uint64_t sequence = AllocateSequence();
            status = InsertChange(sequence, logged.change, logged.only_replicator,
                                  logged.only_destination);
            if (status && logged.only_replicator.empty()) status = DeleteIntent(logged.change);
            if (!status) break;
            job->sequences.push_back(sequence);
          }
        } else if (!job->requeue_replicator.empty()) {
          status = RequeueInTransaction(*job);
        } else if (job->move) {
          status = MoveInTransaction(*job->move);
        }
        if (!status) break;
      }
      for (std::size_t i = 0; status && i < marks.size(); ++i) {
        status = Step(delete_pending_, "clear a confirmed change", marks[i]);
      }
      if (status) {
        // Only a commit that moves stale changes holds pending_mutex_ through COMMIT; every
        // other commit leaves Append's confirmations free to run meanwhile.
        auto now = std::chrono::steady_clock::now();
        stale_lock.lock();
        if (HasStale(now)) {
          for (const auto& [sequence, entry] : pending_) {
            if (IsStale(entry, now)) stale.push_back(sequence);
          }
          for (std::size_t i = 0; status && i < stale.size(); ++i) {
            status = PendingToIntent(stale[i]);
          }
        }
        if (!status || stale.empty()) stale_lock.unlock();
      }
      if (status) status = Step(commit_, "commit");
      if (!status) (void)Exec(writer_, "ROLLBACK");
    }
    if (!status) {
      // Nothing of the group was stored: its sequence numbers stay unused (gaps are allowed).
      for (Job* job : group) {
        job->status = status;
        job->sequences.clear();
      }
      // stale_lock may hold pending_mutex_ already (the commit itself failed, e.g. disk full).
      if (!stale_lock.owns_lock()) stale_lock.lock();
      confirmed_marks_.insert(confirmed_marks_.end(), marks.begin(), marks.end());
      for (std::uint64_t sequence : allocated_) inflight_.erase(sequence);
      PublishVisible();
      return;
    }
    for (Job* job : group) job->status = Ok();
    RememberCommitted(group, stale);
    {
      if (!stale_lock.owns_lock()) stale_lock.lock();
      for (std::uint64_t sequence : stale) {
        ErasePending(sequence);
        auto logger = spdlog::get("replicator");
        (logger ? logger : spdlog::default_logger())->warn(
            "change log: change at sequence {} waited {} ms for its write to be confirmed; "
            "it is kept as an intent, resolved against the source at the next start",
            sequence, options_.intent_timeout.count());
      }
      for (Job* job : group) {
        if (job->prepare) {
          std::string key = PendingKey(*job->prepare);
          pending_by_key_[key] = job->sequences.front();
          pending_.emplace(job->sequences.front(),
                           PendingEntry{std::move(key), std::chrono::steady_clock::now(), true});
        } else if (job->abandon_sequence) {
          ErasePending(job->abandon_sequence);
        }
      }
      for (std::uint64_t sequence : allocated_) inflight_.erase(sequence);
      PublishVisible();
    }
    MarkWritten();
  }

  static std::string PendingKey(const Change& change) {
    std::string key;
    key.reserve(change.resource.size() + change.id.size() + change.write_id.size() + 24);
    key.append(change.resource).push_back('\x1f');
    key.append(change.id).push_back('\x1f');
    key.append(std::to_string(change.revision)).push_back('\x1f');
    key.append(change.write_id);
    return key;
  }

  // REQUIRES: pending_mutex_ held.
  void ErasePending(std::uint64_t sequence) {
    auto found = pending_.find(sequence);
    if (found == pending_.end()) return;
    pending_by_key_.erase(found->second.key);
    pending_.erase(found);
  }

  // Readers see every change up to the first one still pending or being committed.
  // REQUIRES: pending_mutex_ held.
  void PublishVisible() {
    std::uint64_t visible = next_sequence_ - 1;
    if (!pending_.empty()) visible = std::min(visible, pending_.begin()->first - 1);
    if (!inflight_.empty()) visible = std::min(visible, *inflight_.begin() - 1);
    if (visible <= last_sequence_.load()) return;
    {
      std::lock_guard appended_lock(appended_mutex_);
      last_sequence_.store(visible);
    }
    appended_.notify_all();
  }

  // REQUIRES: write_mutex_ held, inside a transaction.
  Status RequeueInTransaction(Job& job) {
    S3DB_ASSIGN_OR_RETURN(std::vector<DeadLetter> letters,
                          SelectDeadLetters(job.requeue_replicator, 0));
    for (DeadLetter& letter : letters) {
      std::uint64_t sequence = AllocateSequence();
      S3DB_RETURN_IF_ERROR(
          InsertChange(sequence, letter.change, letter.replicator, letter.destination));
      job.sequences.push_back(sequence);
      job.requeued.push_back(
          LoggedChange{sequence, std::move(letter.change), letter.replicator, letter.destination});
    }
    Statement stmt;
    S3DB_RETURN_IF_ERROR(stmt.Prepare(writer_, "DELETE FROM dead_letters WHERE replicator=? "
                                               "AND id <= ?"));
    BindText(stmt.get(), 1, job.requeue_replicator);
    sqlite3_bind_int64(stmt.get(), 2, letters.empty() ? 0 : letters.back().id);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
      return tl::unexpected(SqliteError(writer_, "requeue dead letters"));
    }
    return Ok();
  }

  Result<Reader*> AcquireReader() {
    {
      std::lock_guard lock(readers_mutex_);
      if (!open_) return MakeError(ErrorCode::kUnavailable, "change log is closed");
      if (!idle_readers_.empty()) {
        Reader* reader = idle_readers_.back();
        idle_readers_.pop_back();
        return reader;
      }
    }
    auto reader = std::make_unique<Reader>();
    S3DB_ASSIGN_OR_RETURN(reader->db, OpenConnection(options_.path, false, options_.fsync));
    if (auto status = reader->select_changes.Prepare(reader->db, kSelectChanges); !status) {
      sqlite3_close(reader->db);
      return tl::unexpected(status.error());
    }
    std::lock_guard lock(readers_mutex_);
    readers_.push_back(std::move(reader));
    return readers_.back().get();
  }

  void ReleaseReader(Reader* reader) {
    std::lock_guard lock(readers_mutex_);
    if (open_) idle_readers_.push_back(reader);
  }

  // kBatch: commits are in the WAL file (safe from a process crash); this makes them safe from
  // an OS crash within fsync_interval. Every policy: checkpoints (copying the WAL into the
  // database, with their fsyncs) run here, off the writers' path; and a commit now and then
  // clears the marks of confirmed changes and moves changes pending past intent_timeout to the
  // intents, even when no writer commits.
  void BackgroundLoop() {
    std::string wal_path = options_.path + "-wal";
    auto interval = options_.fsync == FsyncPolicy::kBatch ? options_.fsync_interval
                                                          : std::chrono::milliseconds(50);
    interval = std::clamp(interval, std::chrono::milliseconds(1), std::chrono::milliseconds(50));
    auto last_housekeeping = std::chrono::steady_clock::now();
    auto last_move = last_housekeeping;
    std::unique_lock lock(fsync_mutex_);
    while (!stopping_) {
      fsync_wake_.wait_for(lock, interval, [&] { return stopping_; });
      if (stopping_) break;
      auto now = std::chrono::steady_clock::now();
      if (now - last_housekeeping >= std::chrono::milliseconds(250)) {
        last_housekeeping = now;
        bool commit = false;
        {
          std::lock_guard pending_lock(pending_mutex_);
          commit = !confirmed_marks_.empty() || HasStale(now);
        }
        if (commit) {
          lock.unlock();
          Job housekeeping;
          (void)Submit(housekeeping);
          lock.lock();
        }
      }
      if (journal_enabled_) {
        if (move_soon_.load() || now - last_move >= options_.journal_move_interval) {
          last_move = now;
          lock.unlock();
          (void)MoveJournal();  // a failure keeps the changes journaled; tried again next time
          lock.lock();
        }
        if (options_.fsync == FsyncPolicy::kBatch) SyncJournal();
      }
      if (wal_grown_.exchange(false)) {
        // PASSIVE: copies what no reader still needs and never blocks the writer; the WAL
        // restarts from its beginning once everything in it was copied.
        int rc = sqlite3_wal_checkpoint_v2(checkpointer_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           nullptr, nullptr);
        if (rc != SQLITE_OK) wal_grown_.store(true);  // busy or failed: again next time
      }
      if (options_.fsync == FsyncPolicy::kBatch && dirty_.exchange(false)) {
        if (wal_fd_ < 0) wal_fd_ = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (wal_fd_ >= 0 && ::fdatasync(wal_fd_) != 0) {
          ::close(wal_fd_);
          wal_fd_ = -1;
          dirty_.store(true);
        }
      }
      // A journal file goes once what it held is on disk in SQLite: with kBatch when no commit
      // happened since the WAL's last fsync.
      if (journal_enabled_ && (options_.fsync == FsyncPolicy::kOff || !dirty_.load())) {
        RemoveMovedJournals();
      }
    }
    if (options_.fsync == FsyncPolicy::kBatch && wal_fd_ >= 0 && dirty_.exchange(false)) {
      (void)::fdatasync(wal_fd_);
    }
  }

  // kBatch: journal records survive a process crash at once (they are written); this makes
  // them survive an OS crash within the fsync interval. Background thread only.
  void SyncJournal() {
    if (journal_dirty_.exchange(false)) {
      int fd = -1;
      {
        std::lock_guard journal_lock(journal_mutex_);
        if (journal_fd_ >= 0) fd = ::dup(journal_fd_);  // synced outside the lock
      }
      if (fd >= 0) {
        if (::fdatasync(fd) != 0) journal_dirty_.store(true);
        ::close(fd);
      }
    }
    if (journal_new_file_.exchange(false)) {
      std::filesystem::path folder = std::filesystem::path(options_.path).parent_path();
      int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd >= 0) {
        if (::fsync(fd) != 0) journal_new_file_.store(true);
        ::close(fd);
      }
    }
  }

  // Hands out the next sequence number to a change being committed to SQLite; readers stop
  // below it until the commit is over. REQUIRES: write_mutex_ held (CommitGroup).
  std::uint64_t AllocateSequence() {
    std::lock_guard lock(pending_mutex_);
    std::uint64_t sequence = next_sequence_++;
    inflight_.insert(sequence);
    allocated_.push_back(sequence);
    return sequence;
  }

  // The journal's part of Prepare: the change is pending under its sequence number as soon as
  // its record is written, and reaches SQLite with the next move.
  Status PrepareInJournal(const Change& change) {
    auto encoded = std::make_shared<Encoded>(Encode(change));
    std::optional<std::string> before_json;
    std::optional<std::string> after_json;
    if (encoded->has_before) before_json = encoded->before;
    if (encoded->has_after) after_json = encoded->after;
    JournalEntry entry(change, before_json, after_json);
    auto logged = std::make_shared<LoggedChange>();
    logged->change = change;
    std::string key = PendingKey(change);

    std::uint64_t sequence;
    {
      std::lock_guard journal_lock(journal_mutex_);
      S3DB_RETURN_IF_ERROR(CheckOpen());
      {
        std::lock_guard lock(pending_mutex_);
        sequence = next_sequence_++;
        pending_by_key_[key] = sequence;
        pending_.emplace(sequence, PendingEntry{key, std::chrono::steady_clock::now(), false});
      }
      if (auto written = AppendToJournal(entry.Finish(sequence)); !written) {
        std::lock_guard lock(pending_mutex_);
        ErasePending(sequence);
        PublishVisible();
        return written;
      }
      logged->sequence = sequence;
      auto header = std::make_shared<Change>();
      header->resource = change.resource;
      header->id = change.id;
      header->revision = change.revision;
      header->action = change.action;
      header->timestamp_ms = change.timestamp_ms;
      header->write_id = change.write_id;
      unmoved_.emplace(sequence, Journaled{std::move(header), std::move(encoded)});
      if (unmoved_.size() >= kMoveBatch) move_soon_.store(true);
    }
    AddToTail(sequence, std::move(logged));
    if (move_soon_.load()) fsync_wake_.notify_one();
    return Ok();
  }

  static constexpr std::size_t kMoveBatch = 1024;  // a move is due at once past this many

  std::string JournalPath(std::uint64_t generation) const {
    return options_.path + "-prepared-" + std::to_string(generation);
  }

  // Every journal file next to the database, oldest first.
  std::vector<std::string> JournalFiles() const {
    std::filesystem::path database(options_.path);
    std::string prefix = database.filename().string() + "-prepared-";
    std::vector<std::pair<std::uint64_t, std::string>> found;
    std::error_code ec;
    std::filesystem::path folder = database.parent_path().empty() ? "." : database.parent_path();
    for (const auto& item : std::filesystem::directory_iterator(folder, ec)) {
      std::string name = item.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      std::string number = name.substr(prefix.size());
      if (number.empty() || number.find_first_not_of("0123456789") != std::string::npos) continue;
      found.emplace_back(std::stoull(number), item.path().string());
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> files;
    for (auto& [generation, path] : found) files.push_back(std::move(path));
    return files;
  }

  // Writes one record at the end of the current journal file, opening a new file first when
  // there is none (or the last write failed part way). REQUIRES: journal_mutex_ held.
  Status AppendToJournal(const std::string& record) {
    if (journal_fd_ < 0) {
      std::string path = JournalPath(journal_generation_ + 1);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) {
        return MakeError(ErrorCode::kIo, "change log: cannot create the prepare journal " + path +
                                             ": " + std::strerror(errno));
      }
      journal_fd_ = fd;
      ++journal_generation_;
      journal_size_ = 0;
      journal_new_file_.store(true);
    }
    std::size_t written = 0;
    while (written < record.size()) {
      ssize_t n = ::write(journal_fd_, record.data() + written, record.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int error = n < 0 ? errno : ENOSPC;
        // Cut the partial record off again; when that fails too, the file ends here (a torn
        // record is only ever the last of a file) and the next record starts a new one.
        if (::ftruncate(journal_fd_, journal_size_) != 0) {
          ::close(journal_fd_);
          journal_fd_ = -1;
        }
        return MakeError(ErrorCode::kIo, "change log: cannot write to the prepare journal " +
                                             JournalPath(journal_generation_) + ": " +
                                             std::strerror(error));
      }
      written += static_cast<std::size_t>(n);
    }
    journal_size_ += static_cast<off_t>(record.size());
    journal_dirty_.store(true);
    return Ok();
  }

  // Moves every journaled change into SQLite in one commit; afterwards the journal files that
  // held only moved changes are deleted (once the WAL holding them is on disk).
  Status MoveJournal() {
    if (!journal_enabled_) return Ok();
    std::lock_guard move_lock(move_mutex_);
    std::vector<std::pair<std::uint64_t, Journaled>> batch;
    int finished_fd = -1;
    std::uint64_t first_kept_generation;
    {
      std::lock_guard journal_lock(journal_mutex_);
      move_soon_.store(false);
      if (unmoved_.empty()) return Ok();
      batch.assign(unmoved_.begin(), unmoved_.end());
      moving_.merge(unmoved_);
      // New records go to a new file from now on; the ones before are all in this batch.
      finished_fd = journal_fd_;
      journal_fd_ = -1;
      first_kept_generation = journal_generation_ + 1;
    }
    if (finished_fd >= 0) {
      if (options_.fsync == FsyncPolicy::kBatch) (void)::fdatasync(finished_fd);
      ::close(finished_fd);
    }
    Job job;
    job.move = &batch;
    Status status = Submit(job);
    {
      std::lock_guard journal_lock(journal_mutex_);
      if (status) {
        for (const auto& [sequence, journaled] : batch) moving_.erase(sequence);
        removable_below_ = std::max(removable_below_, first_kept_generation);
      } else {
        std::lock_guard lock(pending_mutex_);
        for (const auto& [sequence, journaled] : moving_) {
          if (auto found = pending_.find(sequence); found != pending_.end()) {
            found->second.in_sqlite = false;
          }
        }
        unmoved_.merge(moving_);  // tried again with the next move
        moving_.clear();
      }
    }
    return status;
  }

  // Deletes the journal files whose changes are all in SQLite, once SQLite has them on disk
  // (kBatch: the WAL was just fsynced). Background thread only.
  void RemoveMovedJournals() {
    std::uint64_t below;
    {
      std::lock_guard journal_lock(journal_mutex_);
      below = removable_below_;
    }
    if (below <= removed_below_) return;
    for (std::uint64_t generation = removed_below_; generation < below; ++generation) {
      if (generation > 0) ::unlink(JournalPath(generation).c_str());
    }
    removed_below_ = below;
  }

  // The move job of a commit. REQUIRES: write_mutex_ held, inside a transaction.
  Status MoveInTransaction(const std::vector<std::pair<std::uint64_t, Journaled>>& batch) {
    for (const auto& [sequence, journaled] : batch) {
      bool pending = false;
      {
        std::lock_guard journal_lock(journal_mutex_);
        if (!moving_.count(sequence)) continue;  // abandoned meanwhile
        std::lock_guard lock(pending_mutex_);
        if (auto found = pending_.find(sequence); found != pending_.end()) {
          found->second.in_sqlite = true;
          pending = true;
        }
      }
      S3DB_RETURN_IF_ERROR(
          InsertEncoded(sequence, *journaled.header, *journaled.encoded, {}, {}));
      if (pending) S3DB_RETURN_IF_ERROR(InsertPending(sequence, *journaled.header));
    }
    return Ok();
  }

  // What a dead process left in journal files goes into SQLite before anything else: changes
  // confirmed in the journal as changes, the others (but the abandoned ones) as intents, which
  // the plugin resolves against the source.
  Status MoveJournalsOfPreviousProcess() {
    std::vector<std::string> files = JournalFiles();
    if (files.empty()) return Ok();
    std::vector<JournalRecord> prepared;
    std::set<std::uint64_t> abandoned;
    std::set<std::uint64_t> confirmed;
    for (const std::string& file : files) {
      S3DB_ASSIGN_OR_RETURN(JournalContents contents, ReadJournalFile(file));
      if (contents.torn) {
        auto logger = spdlog::get("replicator");
        (logger ? logger : spdlog::default_logger())
            ->info("change log: {} ends with a record cut short by a crash; it is ignored "
                   "(its write had not returned)",
                   file);
      }
      for (JournalRecord& record : contents.records) {
        journal_high_ = std::max(journal_high_, record.sequence);
        if (record.kind == JournalRecordKind::kAbandon) {
          abandoned.insert(record.sequence);
        } else if (record.kind == JournalRecordKind::kConfirm) {
          confirmed.insert(record.sequence);
        } else {
          prepared.push_back(std::move(record));
        }
      }
    }
    Statement exists;
    S3DB_RETURN_IF_ERROR(exists.Prepare(writer_, "SELECT 1 FROM changes WHERE seq=?"));
    S3DB_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    Status status = Ok();
    for (const JournalRecord& record : prepared) {
      std::uint64_t sequence = record.sequence;
      if (abandoned.count(sequence)) continue;  // settled below
      sqlite3_stmt* check = exists.get();
      bool stored;
      {
        ResetOnExit reset{check};
        sqlite3_bind_int64(check, 1, static_cast<sqlite3_int64>(sequence));
        stored = sqlite3_step(check) == SQLITE_ROW;
      }
      if (stored) continue;  // moved before the process died; its pending row is settled below
      Encoded encoded;
      encoded.has_before = record.before_json.has_value();
      encoded.has_after = record.after_json.has_value();
      if (encoded.has_before) encoded.before = *record.before_json;
      if (encoded.has_after) encoded.after = *record.after_json;
      // Not confirmed in the journal (its write had not answered, or the confirmation or the
      // abandon could not be written): only the source can tell, so it is an intent.
      status = confirmed.count(sequence) ? InsertEncoded(sequence, record.change, encoded, {}, {})
                                         : InsertIntentEncoded(record.change, encoded);
      if (!status) break;
    }
    // A change moved into SQLite before its write answered has a pending row there, which its
    // confirmation or abandon settles, whether or not its own record is still in a journal.
    for (std::uint64_t sequence : confirmed) {
      if (!status) break;
      status = Step(delete_pending_, "clear a confirmed change", sequence);
    }
    for (std::uint64_t sequence : abandoned) {
      if (!status) break;
      status = Exec(writer_, ("DELETE FROM changes WHERE seq=" + std::to_string(sequence) +
                              " AND seq IN (SELECT seq FROM pending)")
                                 .c_str());
      if (status) status = Step(delete_pending_, "forget an abandoned change", sequence);
    }
    if (status) status = Step(commit_, "commit the prepare journal");
    if (!status) {
      (void)Exec(writer_, "ROLLBACK");
      return status;
    }
    // On disk before the journals go: a checkpoint copies the WAL into the database file and
    // syncs it.
    if (sqlite3_wal_checkpoint_v2(writer_, nullptr, SQLITE_CHECKPOINT_FULL, nullptr, nullptr) !=
        SQLITE_OK) {
      return tl::unexpected(SqliteError(writer_, "checkpoint after moving the prepare journal"));
    }
    for (const std::string& file : files) ::unlink(file.c_str());
    return Ok();
  }

  // The tail: the changes stored lately, kept in memory so that dispatchers, which mostly
  // read what was just appended, need no SQLite read and no JSON parse. It holds every
  // stored change above tail_floor_ (a read from at or above the floor is answered from it
  // alone); the oldest are dropped past kTailBytes, and settled ones at compaction. Below
  // the floor a change is in SQLite or, not moved yet, in the journal maps as text
  // (ReadBelowTail), so the tail's memory stays bounded while the move falls behind a burst.
  static constexpr std::size_t kTailBytes = 8 << 20;

  static std::size_t ApproximateBytes(const Change& change) {
    // A parsed record takes a few times its text; this only bounds the tail roughly.
    std::size_t bytes = 256 + change.resource.size() + change.id.size();
    for (const auto* record : {&change.before, &change.after}) {
      if (*record) bytes += 4 * ApproximateTextBytes(**record);
    }
    return bytes;
  }

  static std::size_t ApproximateTextBytes(const JsonObject& object) {
    std::size_t bytes = 2;
    for (const auto& field : object) {
      bytes += field.key().size() + 4;
      const Json& value = field.value();
      if (value.is_string()) {
        bytes += value.get_string().size();
      } else if (value.is_object()) {
        bytes += ApproximateTextBytes(value.get_object());
      } else if (value.is_array()) {
        for (const Json& element : value.get_array()) {
          bytes += element.is_string()   ? element.get_string().size() + 3
                   : element.is_object() ? ApproximateTextBytes(element.get_object())
                                         : 16;
        }
      } else {
        bytes += 16;
      }
    }
    return bytes;
  }

  // Changes above `after` up to `visible` from the tail, or nullopt when the tail does not hold
  // them all; `floor` is set to the tail's floor either way.
  std::optional<std::vector<std::shared_ptr<const LoggedChange>>> ReadFromTail(
      std::uint64_t after, std::size_t limit, std::uint64_t visible, std::uint64_t& floor) {
    std::vector<std::shared_ptr<const LoggedChange>> found;
    std::lock_guard lock(tail_mutex_);
    floor = tail_floor_;
    if (after < tail_floor_) return std::nullopt;
    for (auto it = tail_.upper_bound(after);
         it != tail_.end() && it->first <= visible && found.size() < limit; ++it) {
      found.push_back(it->second.change);
    }
    return found;
  }

  // After a successful commit, before its changes become visible: the tail gets what the
  // group stored and loses what it removed.
  void RememberCommitted(const std::vector<Job*>& group, const std::vector<std::uint64_t>& stale) {
    std::vector<std::pair<std::uint64_t, TailEntry>> added;
    auto add = [&](std::uint64_t sequence, LoggedChange logged) {
      std::size_t bytes = ApproximateBytes(logged.change);
      added.emplace_back(sequence,
                         TailEntry{std::make_shared<const LoggedChange>(std::move(logged)), bytes});
    };
    for (const Job* job : group) {
      if (job->single || job->prepare) {
        const Change& change = job->single ? *job->single : *job->prepare;
        add(job->sequences.front(), LoggedChange{job->sequences.front(), change, {}, {}});
      } else if (job->many) {
        for (std::size_t i = 0; i < job->sequences.size(); ++i) {
          LoggedChange logged = (*job->many)[i];
          logged.sequence = job->sequences[i];
          add(logged.sequence, std::move(logged));
        }
      } else if (!job->requeued.empty()) {
        for (const LoggedChange& logged : job->requeued) add(logged.sequence, logged);
      }
    }
    std::lock_guard lock(tail_mutex_);
    for (auto& [sequence, entry] : added) {
      tail_bytes_ += entry.bytes;
      tail_.insert_or_assign(sequence, std::move(entry));
    }
    for (const Job* job : group) {
      if (job->abandon_sequence) EraseFromTail(job->abandon_sequence);
    }
    for (std::uint64_t sequence : stale) EraseFromTail(sequence);
    TrimTail();
  }

  // Adds a journaled change. REQUIRES: it is not visible yet (it is pending).
  void AddToTail(std::uint64_t sequence, std::shared_ptr<const LoggedChange> logged) {
    std::size_t bytes = ApproximateBytes(logged->change);
    std::lock_guard lock(tail_mutex_);
    tail_bytes_ += bytes;
    tail_.insert_or_assign(sequence, TailEntry{std::move(logged), bytes});
    TrimTail();
  }

  // Drops the oldest changes past kTailBytes (ReadBelowTail finds them in SQLite or the
  // journal). REQUIRES: tail_mutex_ held.
  void TrimTail() {
    while (tail_bytes_ > kTailBytes && !tail_.empty()) {
      tail_floor_ = std::max(tail_floor_, tail_.begin()->first);
      tail_bytes_ -= tail_.begin()->second.bytes;
      tail_.erase(tail_.begin());
    }
  }

  // REQUIRES: tail_mutex_ held.
  void EraseFromTail(std::uint64_t sequence) {
    auto found = tail_.find(sequence);
    if (found == tail_.end()) return;
    tail_bytes_ -= found->second.bytes;
    tail_.erase(found);
  }

  // Compaction removed the changes at or below `bound` from the log.
  void ForgetTailThrough(std::uint64_t bound) {
    std::lock_guard lock(tail_mutex_);
    while (!tail_.empty() && tail_.begin()->first <= bound) {
      tail_bytes_ -= tail_.begin()->second.bytes;
      tail_.erase(tail_.begin());
    }
    tail_floor_ = std::max(tail_floor_, bound);
  }

  // After a commit: the WAL needs an fsync (kBatch) and a checkpoint.
  void MarkWritten() {
    dirty_.store(true);
    wal_grown_.store(true);
  }

  // True when some prepared change has waited intent_timeout. REQUIRES: pending_mutex_ held.
  bool HasStale(std::chrono::steady_clock::time_point now) const {
    for (const auto& [sequence, entry] : pending_) {
      if (IsStale(entry, now)) return true;
    }
    return false;
  }

  // Only a change in SQLite can move to the intents; one still in the journal waits for the
  // move, at most journal_move_interval.
  bool IsStale(const PendingEntry& entry, std::chrono::steady_clock::time_point now) const {
    return entry.in_sqlite && now - entry.since >= options_.intent_timeout;
  }

  SqliteChangeLogOptions options_;

  std::mutex write_mutex_;  // guards writer_, its statements, open_ (writes)
  sqlite3* writer_ = nullptr;
  Statement insert_change_;
  Statement insert_intent_;
  Statement delete_intent_;
  Statement insert_pending_;
  Statement delete_pending_;
  Statement delete_change_;
  Statement begin_;
  Statement commit_;
  Statement set_checkpoint_;
  std::atomic<bool> open_{false};

  std::mutex queue_mutex_;  // guards queue_, committing_ and Job::done
  std::condition_variable queue_changed_;
  std::vector<Job*> queue_;
  bool committing_ = false;

  std::mutex appended_mutex_;  // pairs with appended_ for WaitForAppend
  std::condition_variable appended_;
  std::atomic<std::uint64_t> last_sequence_{0};  // visible: below the first pending change

  std::mutex pending_mutex_;  // guards what follows; taken after write_mutex_, never before
  std::map<std::uint64_t, PendingEntry> pending_;  // prepared, neither confirmed nor abandoned
  std::unordered_map<std::string, std::uint64_t> pending_by_key_;
  std::vector<std::uint64_t> confirmed_marks_;  // pending rows to delete with the next commit
  std::set<std::uint64_t> inflight_;  // handed out to a SQLite commit that is not over
  std::uint64_t next_sequence_ = 1;
  std::vector<std::uint64_t> allocated_;  // CommitGroup (write_mutex_): this group's numbers

  // The prepare journal (kBatch and kOff). Lock order: write_mutex_, journal_mutex_,
  // pending_mutex_, tail_mutex_; nobody waits for a commit while holding journal_mutex_.
  bool journal_enabled_ = false;
  std::mutex move_mutex_;     // one move at a time
  std::mutex journal_mutex_;  // guards what follows up to journal_dirty_
  int journal_fd_ = -1;       // the file new records go to; -1: open a new one first
  std::uint64_t journal_generation_ = 0;  // of the newest file (names end in -prepared-<n>)
  off_t journal_size_ = 0;                // of journal_fd_'s file
  std::map<std::uint64_t, Journaled> unmoved_;  // journaled, not in SQLite
  std::map<std::uint64_t, Journaled> moving_;   // in the move being committed
  std::uint64_t removable_below_ = 0;  // files of older generations hold only moved changes
  std::atomic<bool> journal_dirty_{false};     // kBatch: the current file needs an fsync
  std::atomic<bool> journal_new_file_{false};  // kBatch: the folder needs an fsync
  std::atomic<bool> move_soon_{false};
  std::uint64_t removed_below_ = 1;  // background thread: files below this are gone
  std::uint64_t journal_high_ = 0;   // Open: the highest sequence found in old journals

  struct TailEntry {
    std::shared_ptr<const LoggedChange> change;
    std::size_t bytes = 0;  // ApproximateBytes
  };
  std::mutex tail_mutex_;  // guards tail_, tail_bytes_, tail_floor_; taken after the others
  std::map<std::uint64_t, TailEntry> tail_;
  std::size_t tail_bytes_ = 0;
  std::uint64_t tail_floor_ = 0;  // the tail holds every stored change above this

  std::mutex readers_mutex_;  // guards readers_ and idle_readers_
  std::vector<std::unique_ptr<Reader>> readers_;
  std::vector<Reader*> idle_readers_;

  std::mutex fsync_mutex_;  // guards stopping_ and wal_fd_
  std::condition_variable fsync_wake_;
  bool stopping_ = false;
  int wal_fd_ = -1;
  std::atomic<bool> dirty_{false};
  std::atomic<bool> wal_grown_{false};  // commits since the last checkpoint
  sqlite3* checkpointer_ = nullptr;     // the background thread's connection for checkpoints
  std::thread background_thread_;
};

}  // namespace

Result<std::vector<std::shared_ptr<const LoggedChange>>> ChangeLog::ReadShared(std::uint64_t after,
                                                                               std::size_t limit) {
  S3DB_ASSIGN_OR_RETURN(auto changes, ReadFrom(after, limit));
  std::vector<std::shared_ptr<const LoggedChange>> shared;
  shared.reserve(changes.size());
  for (LoggedChange& logged : changes) {
    shared.push_back(std::make_shared<const LoggedChange>(std::move(logged)));
  }
  return shared;
}

Result<FsyncPolicy> ParseFsyncPolicy(std::string_view name) {
  if (name == "always") return FsyncPolicy::kAlways;
  if (name == "batch") return FsyncPolicy::kBatch;
  if (name == "off") return FsyncPolicy::kOff;
  return MakeError(ErrorCode::kInvalidArgument,
                   "fsync: '" + std::string(name) + "' is not one of always, batch, off");
}

Result<std::unique_ptr<ChangeLog>> OpenSqliteChangeLog(const SqliteChangeLogOptions& options) {
  auto log = std::make_unique<SqliteChangeLog>(options);
  S3DB_RETURN_IF_ERROR(log->Open());
  return std::unique_ptr<ChangeLog>(std::move(log));
}

}  // namespace s3db::replicator
