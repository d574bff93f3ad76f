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

  // Called after the object store accepted the write and before the write call returns.
  // An error makes the write call return that error (the stored record stays written).
  virtual Status OnChange(const Change& change) { (void)change; return Ok(); }

  // Called for each resource, including those created after the plugin was installed.
  virtual void OnResourceCreated(Resource& resource) { (void)resource; }
};

}  // namespace s3db
