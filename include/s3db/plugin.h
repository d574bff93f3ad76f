// Changes and plugins: every write produces one Change per record, delivered synchronously to
// every installed plugin before the write call returns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db {

class Database;
class Resource;

enum class Action { kInsert, kUpdate, kDelete };

std::string_view ActionName(Action action);           // "insert" | "update" | "delete"
std::optional<Action> ParseAction(std::string_view name);

struct Change {
  std::string resource;
  std::string id;
  std::uint64_t revision = 0;      // the record's _rev after this change (deletes: last rev + 1)
  Action action = Action::kInsert;
  std::optional<JsonObject> before;  // the stored record before the write (none on insert)
  std::optional<JsonObject> after;   // the stored record after the write (none on delete)
  std::int64_t timestamp_ms = 0;     // wall clock at the write
  // An opaque token of the store write (kept as object metadata), telling this write from an
  // identical one by another writer; empty when unknown (changes from a backfill or replay).
  std::string write_id;

  // "resource:id:rev": stable across retries, restarts and replays.
  std::string ChangeId() const;
};

// A plugin extends a Database. Lifecycle: Install (once, when added with UsePlugin), Start
// (after Install, or at Database::Start), Stop (at Database::Close or explicitly).
// Thread safety: OnChange is called concurrently from every writing thread.
class Plugin {
 public:
  virtual ~Plugin() = default;

  virtual std::string_view Name() const = 0;

  virtual Status Install(Database& database) { (void)database; return Ok(); }
  virtual Status Start() { return Ok(); }
  virtual Status Stop() { return Ok(); }

  // Called before the object store is asked to store `change` (its `after` is the exact record
  // about to be written, its timestamp final). A plugin that must not miss a change whose
  // write completes while the process dies records the intent here. An error aborts the write
  // (nothing is stored).
  virtual Status OnPrepare(const Change& change) { (void)change; return Ok(); }
  // Called when a prepared change was not stored (the write failed or lost a race).
  virtual void OnAbandon(const Change& change) { (void)change; }
  // Called after the object store accepted the write and before the write call returns.
  // An error makes the write call return that error (the stored record stays written).
  virtual Status OnChange(const Change& change) { (void)change; return Ok(); }

  // Called for each resource, including those created after the plugin was installed.
  virtual void OnResourceCreated(Resource& resource) { (void)resource; }
};

}  // namespace s3db
