// Resources: named collections of JSON records with a schema.
//
// Records are stored at "resource=<name>/data/id=<id>" as JSON. Each record carries "id" and a
// revision "_rev" incremented by every write under a conditional PUT, so two writers never
// silently overwrite each other: the loser re-reads and retries, up to a limit, then gets
// ErrorCode::kConflict. Every write emits one Change per record to the database's plugins.
// All methods are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/plugin.h"
#include "s3db/schema.h"

namespace s3db {

class Database;
class ObjectStore;
struct Object;
struct PutOptions;

struct ResourceDefinition {
  std::string name;            // [A-Za-z0-9_-]{1,100}
  JsonObject attributes;       // the spec's shorthand; see schema.h
  bool timestamps = false;     // maintain createdAt / updatedAt (ISO 8601, UTC)
  int id_size = 22;            // length of generated ids (URL-safe alphabet)
  std::function<std::string()> id_generator;  // overrides id_size when set
};

struct ListOptions {
  std::size_t limit = 0;   // 0 = no limit
  std::size_t offset = 0;
};

struct Page {
  std::vector<JsonObject> items;
  std::string next_cursor;  // empty on the last page
};

// Field names of records that s3db manages.
inline constexpr std::string_view kIdField = "id";
inline constexpr std::string_view kRevisionField = "_rev";

class Resource {
 public:
  Resource(Database& database, ResourceDefinition definition, Schema schema);
  Resource(const Resource&) = delete;
  Resource& operator=(const Resource&) = delete;

  const std::string& name() const { return definition_.name; }
  const ResourceDefinition& definition() const { return definition_; }
  const Schema& schema() const { return schema_; }

  // Creates a record; generates an id when `data` has none. kAlreadyExists if the id exists.
  Result<JsonObject> Insert(JsonObject data);
  Result<JsonObject> Get(std::string_view id);          // kNotFound when missing
  Result<std::optional<JsonObject>> GetOrNull(std::string_view id);
  Result<bool> Exists(std::string_view id);
  // Deep-merges `changes` into the record; kNotFound when missing.
  Result<JsonObject> Update(std::string_view id, const JsonObject& changes);
  // Inserts `data` (which must carry an id) or deep-merges it into the existing record.
  Result<JsonObject> Upsert(JsonObject data);
  // Replaces the whole record (creating it when missing).
  Result<JsonObject> Replace(std::string_view id, JsonObject data);
  // Sets top-level fields only (no deep merge); kNotFound when missing.
  Result<JsonObject> Patch(std::string_view id, const JsonObject& fields);
  // kNotFound when missing.
  Status Delete(std::string_view id);

  // Read-modify-write for callers that decide from the stored record (a replication target
  // that keeps a newer revision, say): `next` gets the current record (nullopt when missing)
  // and returns the record to store, nullopt to leave the stored one as it is, or an error.
  // Stored under If-Match / If-None-Match like Update, and `next` is called again after a
  // lost race. Returns the record as stored, or nullopt when `next` left it (nothing written,
  // no change emitted).
  using Rewrite =
      std::function<Result<std::optional<JsonObject>>(const std::optional<JsonObject>& current)>;
  Result<std::optional<JsonObject>> Modify(std::string_view id, const Rewrite& next);

  // Parallel; one result per input, in input order.
  std::vector<Result<JsonObject>> InsertMany(std::vector<JsonObject> records);
  std::vector<Result<JsonObject>> GetMany(const std::vector<std::string>& ids);
  std::vector<Status> DeleteMany(const std::vector<std::string>& ids);
  // Deletes every record (one change each). Refused unless `confirm` is true.
  Result<std::size_t> DeleteAll(bool confirm);

  Result<std::vector<std::string>> ListIds();
  Result<std::vector<JsonObject>> List(const ListOptions& options = {});
  Result<std::size_t> Count();
  // Records in id order, `size` at a time; pass the previous page's next_cursor.
  Result<Page> GetPage(std::string_view cursor, std::size_t size);
  // Filter: {"field": value} (equality), {"field": {"$gt": 1, "$in": [..]}}; dotted paths reach
  // nested fields. Operators: $eq $ne $gt $gte $lt $lte $in $nin $exists.
  Result<std::vector<JsonObject>> Query(const JsonObject& filter, const ListOptions& options = {});

  // Checks an id: 1..255 bytes of valid UTF-8, no '/', '\', '=', '%' and no control characters.
  static Status ValidateId(std::string_view id);

  // Whether the store holds the write `change` describes (for plugins resolving the intents
  // of a process that died between the write and its change record): an insert or update
  // whose record has that revision and exactly that content, or a delete whose revision the
  // tombstone holds. A delete claimed by that write but left unfinished is finished here.
  // Emits nothing.
  Result<bool> HoldsChange(const Change& change);

 private:
  std::string DataKey(std::string_view id) const;
  std::string TombstoneKey(std::string_view id) const;
  std::string NewId() const;
  Result<JsonObject> Prepare(JsonObject record, const JsonObject* previous) const;
  // The stored object at the record's key and its parsed body (markers included).
  Result<std::pair<Object, JsonObject>> ReadRecord(std::string_view id);
  Result<std::pair<JsonObject, std::string>> Load(std::string_view id);
  Result<std::uint64_t> TombstoneRevision(std::string_view id);
  // Modify for the methods that always write: a `next` that returns nullopt is an error.
  Result<JsonObject> Write(std::string_view id, const Rewrite& next);
  // Hands `change` to the plugins (OnChange); `change` itself is left as it was.
  Status Emit(Change& change);
  Status CheckOpen() const;
  // Finishes a delete whose process died after claiming the revision (marker older than a
  // few seconds): writes the tombstone, removes the marker and emits the delete change.
  // Returns true when the marker is gone (finished here or by someone else).
  Result<bool> FinishStaleDelete(std::string_view id);
  // Writes the tombstone of a claimed delete and removes its marker (`etag` is the marker's).
  // False when another finisher got there first.
  Result<bool> FinishClaimedDelete(std::string_view id, const std::string& etag,
                                   const JsonObject& marker, const std::string& write_id);
  // Sets the change's resource, final timestamp and write id (also into `options`' metadata)
  // and tells the plugins (OnPrepare).
  Status PrepareChange(Change& change, PutOptions& options);
  // After a failed store call for a prepared change: true when the write is stored anyway;
  // false (and the plugins told it was abandoned) when it is not; the store call's error when
  // that cannot be told.
  Result<bool> StoredDespite(const Change& change, const Error& error);

  Database& database_;
  ObjectStore& store_;
  ResourceDefinition definition_;
  Schema schema_;
};

}  // namespace s3db
