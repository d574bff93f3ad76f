#include "s3db/resource.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <ctime>
#include <random>
#include <thread>

#include "core/query.h"
#include "core/thread_pool.h"
#include "s3db/database.h"

namespace s3db {
namespace {

constexpr std::size_t kMaxRecordBytes = 32 * 1024 * 1024;
constexpr std::size_t kMaxIdBytes = 255;
constexpr std::string_view kDeletedField = "_deleted";
constexpr std::string_view kDeletedAtField = "_deletedAt";
constexpr std::string_view kBeforeField = "_before";
// The write id of a change: object metadata of records and markers, a field of tombstones.
constexpr const char* kWriteIdMetadata = "s3db-write";
constexpr std::string_view kWriteIdField = "_write";
// A delete marker older than this belongs to a writer that died; others finish its delete.
constexpr std::int64_t kStaleMarkerMs = 5000;

// 64 random bits as hex: unique enough to tell one write from another of the same record.
std::string NewWriteId() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(generator()));
  return text;
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string IsoFromMs(std::int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buffer + n, sizeof buffer - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buffer;
}

// Finds a string (key or value) that is not valid UTF-8; returns its path.
// The path of the first string (value or field name) below `value` that is not valid UTF-8,
// relative to `value` ("" for `value` itself, "a.b", "[2].c"). Paths are built only on the
// way back from a bad string, so a valid record costs one scan of its text and no allocation.
std::optional<std::string> FindInvalidUtf8(const Json& value);

// Joins a step ("a" or "[2]") and the path below it.
std::string JoinPath(std::string step, const std::string& below) {
  if (below.empty()) return step;
  if (below.front() != '[') step.push_back('.');
  return step + below;
}

std::optional<std::string> FindInvalidUtf8(const JsonObject& object) {
  for (const auto& field : object) {
    std::string_view key(field.key().data(), field.key().size());
    if (!IsValidUtf8(key)) return std::string(key) + " (the field name)";
    if (auto bad = FindInvalidUtf8(field.value())) return JoinPath(std::string(key), *bad);
  }
  return std::nullopt;
}

std::optional<std::string> FindInvalidUtf8(const Json& value) {
  if (value.is_string()) {
    if (!IsValidUtf8(value.get_string())) return std::string();
  } else if (value.is_object()) {
    return FindInvalidUtf8(value.get_object());
  } else if (value.is_array()) {
    const auto& array = value.get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      if (auto bad = FindInvalidUtf8(array[i])) {
        return JoinPath("[" + std::to_string(i) + "]", *bad);
      }
    }
  }
  return std::nullopt;
}

std::uint64_t RevisionOf(const JsonObject& record) {
  const Json* rev = record.if_contains(kRevisionField);
  if (rev && rev->is_uint64()) return rev->get_uint64();
  if (rev && rev->is_int64() && rev->get_int64() > 0)
    return static_cast<std::uint64_t>(rev->get_int64());
  return 0;
}

// Waits a random time that grows with each lost race, so contending writers spread out.
void BackOff(int attempt) {
  thread_local std::mt19937 generator{std::random_device{}()};
  int ceiling_us = 200 << std::min(attempt, 7);
  std::uniform_int_distribution<int> jitter(0, ceiling_us);
  std::this_thread::sleep_for(std::chrono::microseconds(jitter(generator)));
}

bool IsDeletionMarker(const JsonObject& record) {
  const Json* deleted = record.if_contains(kDeletedField);
  return deleted && deleted->is_bool() && deleted->get_bool();
}

// The error of a read or write of a record that is not there.
tl::unexpected<Error> NotFound(std::string_view id, const std::string& resource) {
  return MakeError(ErrorCode::kNotFound,
                   "record '" + std::string(id) + "' not found in resource '" + resource + "'");
}

}  // namespace

Resource::Resource(Database& database, ResourceDefinition definition, Schema schema)
    : database_(database),
      store_(database.store()),
      definition_(std::move(definition)),
      schema_(std::move(schema)) {}

Status Resource::ValidateId(std::string_view id) {
  if (id.empty()) return MakeError(ErrorCode::kInvalidArgument, "id is empty");
  if (id.size() > kMaxIdBytes) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "id is " + std::to_string(id.size()) + " bytes; the limit is 255");
  }
  if (!IsValidUtf8(id)) return MakeError(ErrorCode::kInvalidArgument, "id is not valid UTF-8");
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7F || c == '/' || c == '\\' || c == '=' || c == '%') {
      std::string shown =
          c < 0x20 || c == 0x7F ? "a control character" : std::string("'") + char(c) + "'";
      return MakeError(ErrorCode::kInvalidArgument,
                       "id '" + std::string(id.substr(0, 80)) + "' contains " + shown +
                           "; ids may not contain '/', '\\', '=', '%' or control characters");
    }
  }
  if (id == "." || id == "..") {
    return MakeError(ErrorCode::kInvalidArgument, "id may not be '.' or '..'");
  }
  return Ok();
}

std::string Resource::DataKey(std::string_view id) const {
  std::string key = "resource=" + definition_.name + "/data/id=";
  key += id;
  return key;
}

std::string Resource::TombstoneKey(std::string_view id) const {
  std::string key = "resource=" + definition_.name + "/tombstones/id=";
  key += id;
  return key;
}

std::string Resource::NewId() const {
  if (definition_.id_generator) return definition_.id_generator();
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
  thread_local std::mt19937_64 generator{std::random_device{}()};
  std::string id;
  id.reserve(static_cast<std::size_t>(definition_.id_size));
  std::uint64_t bits = 0;
  int available = 0;
  for (int i = 0; i < definition_.id_size; ++i) {
    if (available < 6) {
      bits = generator();
      available = 64;
    }
    id += kAlphabet[bits & 63];
    bits >>= 6;
    available -= 6;
  }
  return id;
}

// Validates a record about to be stored; sets timestamps. `previous` is the stored record.
Result<JsonObject> Resource::Prepare(JsonObject record, const JsonObject* previous) const {
  if (auto bad = FindInvalidUtf8(record)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "resource '" + name() + "': field " + *bad + " is not valid UTF-8");
  }
  schema_.ApplyDefaults(record);
  if (definition_.timestamps) {
    std::string now = IsoFromMs(NowMs());
    if (previous && previous->contains("createdAt")) {
      record["createdAt"] = previous->at("createdAt");
    } else if (!record.contains("createdAt")) {
      record["createdAt"] = now;
    }
    record["updatedAt"] = now;
  }
  auto valid = schema_.Validate(record);
  if (!valid) {
    return MakeError(ErrorCode::kValidation, "resource '" + name() + "': " + valid.error().message);
  }
  return record;
}

Result<std::pair<Object, JsonObject>> Resource::ReadRecord(std::string_view id) {
  // Some S3-compatible servers serve a partly written object while a PUT is in flight; a
  // later read sees the whole one, so a body that does not parse is read again a few times.
  Object object;
  Result<JsonObject> record = MakeError(ErrorCode::kInternal, "");
  for (int attempt = 0;; ++attempt) {
    S3DB_ASSIGN_OR_RETURN(object, store_.Get(DataKey(id)));
    record = ParseJsonObject(object.body);
    if (record || attempt == 4) break;
    BackOff(attempt);
  }
  if (!record) {
    return MakeError(ErrorCode::kInternal, "record '" + std::string(id) + "' of resource '" +
                                               name() + "' is not valid JSON: " +
                                               record.error().message);
  }
  return std::make_pair(std::move(object), std::move(*record));
}

Result<std::pair<JsonObject, std::string>> Resource::Load(std::string_view id) {
  S3DB_ASSIGN_OR_RETURN(auto read, ReadRecord(id));
  auto& [object, record] = read;
  if (IsDeletionMarker(record)) {
    // A delete is half done: readers see no record, writers wait for the delete to finish.
    return MakeError(ErrorCode::kConflict, "record '" + std::string(id) + "' of resource '" +
                                               name() + "' is being deleted");
  }
  if (object.info.etag.empty()) {
    // Writes are conditional on this ETag; without one an update could not tell that another
    // writer came first.
    return MakeError(ErrorCode::kUnavailable, "record '" + std::string(id) + "' of resource '" +
                                                  name() + "': the store answered without an "
                                                  "ETag; retry");
  }
  return std::make_pair(std::move(record), std::move(object.info.etag));
}

Result<std::uint64_t> Resource::TombstoneRevision(std::string_view id) {
  auto object = store_.Get(TombstoneKey(id));
  if (!object) {
    if (object.error().code == ErrorCode::kNotFound) return 0;
    return tl::unexpected(object.error());
  }
  auto record = ParseJsonObject(object->body);
  return record ? RevisionOf(*record) : 0;
}

Status Resource::Emit(Change& change) {
  change.resource = name();
  if (change.timestamp_ms == 0) change.timestamp_ms = NowMs();
  return database_.DeliverChange(change);
}

Status Resource::PrepareChange(Change& change, PutOptions& options) {
  change.resource = name();
  change.timestamp_ms = NowMs();
  change.write_id = NewWriteId();
  options.metadata[kWriteIdMetadata] = change.write_id;
  return database_.PrepareChange(change);
}

Result<bool> Resource::StoredDespite(const Change& change, const Error& error) {
  // The write may have reached the store even though the call failed (a lost answer, then a
  // retry that met our own object). Only a read tells; when the read fails too, the intent
  // stays with the plugins, which resolve it at their next start.
  auto held = HoldsChange(change);
  if (!held) return tl::unexpected(error);
  if (!*held) database_.AbandonChange(change);
  return *held;
}

Result<bool> Resource::HoldsChange(const Change& change) {
  auto read = ReadRecord(change.id);
  std::optional<JsonObject> stored;
  std::optional<Object> object;
  std::string stored_write_id;
  if (read) {
    object = std::move(read->first);
    stored = std::move(read->second);
    if (auto found = object->info.metadata.find(kWriteIdMetadata);
        found != object->info.metadata.end()) {
      stored_write_id = found->second;
    }
  } else if (read.error().code != ErrorCode::kNotFound) {
    return tl::unexpected(read.error());
  }
  const bool same_write = change.write_id.empty() || stored_write_id == change.write_id;

  if (change.action == Action::kDelete) {
    if (stored && IsDeletionMarker(*stored)) {
      if (RevisionOf(*stored) != change.revision || !same_write) return false;
      const Json* at = stored->if_contains(kDeletedAtField);
      if (at && at->is_int64() && at->get_int64() == 0) return true;  // being finished
      // Claimed by the write this change describes and never finished: finish it now.
      return FinishClaimedDelete(change.id, object->info.etag, *stored, stored_write_id);
    }
    if (stored) return false;  // not deleted, or deleted and written again since
    auto tombstone = store_.Get(TombstoneKey(change.id));
    if (!tombstone) {
      if (tombstone.error().code == ErrorCode::kNotFound) return false;
      return tl::unexpected(tombstone.error());
    }
    auto body = ParseJsonObject(tombstone->body);
    if (!body || RevisionOf(*body) != change.revision) return false;
    const Json* write_id = body->if_contains(kWriteIdField);
    return change.write_id.empty() ||
           (write_id && write_id->is_string() && write_id->get_string() == change.write_id);
  }
  if (!stored || !change.after) return false;
  if (IsDeletionMarker(*stored)) {
    // Stored, then claimed by a delete that kept the record as its pre-image.
    const Json* before = stored->if_contains(kBeforeField);
    return before && before->is_object() && before->get_object() == *change.after;
  }
  return same_write && RevisionOf(*stored) == change.revision && *stored == *change.after;
}

Status Resource::CheckOpen() const {
  if (database_.IsClosed()) {
    return MakeError(ErrorCode::kUnavailable,
                     "resource '" + name() + "': the database is closed; writes are refused");
  }
  return Ok();
}

Result<bool> Resource::FinishStaleDelete(std::string_view id) {
  auto object = store_.Get(DataKey(id));
  if (!object) {
    if (object.error().code == ErrorCode::kNotFound) return true;
    return tl::unexpected(object.error());
  }
  auto marker = ParseJsonObject(object->body);
  if (!marker || !IsDeletionMarker(*marker)) return true;
  const Json* at = marker->if_contains(kDeletedAtField);
  std::int64_t claimed_at = at && at->is_int64() ? at->get_int64() : 0;
  if (NowMs() - claimed_at < kStaleMarkerMs) return false;  // its writer may still finish

  std::string write_id;
  if (auto found = object->info.metadata.find(kWriteIdMetadata);
      found != object->info.metadata.end()) {
    write_id = found->second;
  }
  S3DB_ASSIGN_OR_RETURN(bool finished,
                        FinishClaimedDelete(id, object->info.etag, *marker, write_id));
  if (!finished) return false;
  Change change;
  change.id = std::string(id);
  change.revision = RevisionOf(*marker);
  change.action = Action::kDelete;
  if (const Json* before = marker->if_contains(kBeforeField); before && before->is_object()) {
    change.before = before->get_object();
  }
  S3DB_RETURN_IF_ERROR(Emit(change));
  return true;
}

Result<bool> Resource::FinishClaimedDelete(std::string_view id, const std::string& etag,
                                           const JsonObject& marker,
                                           const std::string& write_id) {
  std::uint64_t revision = RevisionOf(marker);
  JsonObject tombstone;
  tombstone[kRevisionField] = revision;
  tombstone["deletedAt"] = NowMs();
  if (!write_id.empty()) tombstone[kWriteIdField] = write_id;
  S3DB_RETURN_IF_ERROR(store_.Put(TombstoneKey(id), ToJson(tombstone)));
  // Remove the marker only if it is still the same one (a racing finisher may have won).
  PutOptions same;
  same.if_match = etag;
  if (!write_id.empty()) same.metadata[kWriteIdMetadata] = write_id;
  JsonObject finished = marker;
  finished[kDeletedAtField] = std::int64_t{0};
  auto claimed = store_.Put(DataKey(id), ToJson(finished), same);
  if (!claimed) {
    if (claimed.error().code == ErrorCode::kConflict) return false;
    if (claimed.error().code == ErrorCode::kNotFound) return false;
    return tl::unexpected(claimed.error());
  }
  S3DB_RETURN_IF_ERROR(store_.Delete(DataKey(id)));
  return true;
}

Result<JsonObject> Resource::Write(std::string_view id, const Rewrite& next) {
  S3DB_ASSIGN_OR_RETURN(std::optional<JsonObject> written, Modify(id, next));
  if (!written) {
    return MakeError(ErrorCode::kInternal, "record '" + std::string(id) + "' of resource '" +
                                               name() + "': the write was skipped");
  }
  return std::move(*written);
}

Result<std::optional<JsonObject>> Resource::Modify(std::string_view id, const Rewrite& modify) {
  S3DB_RETURN_IF_ERROR(ValidateId(id));
  S3DB_RETURN_IF_ERROR(CheckOpen());
  int retries = database_.options().max_conflict_retries;
  for (int attempt = 0; attempt <= retries; ++attempt) {
    std::optional<JsonObject> current;
    std::string etag;
    auto loaded = Load(id);
    if (loaded) {
      current = std::move(loaded->first);
      etag = std::move(loaded->second);
    } else if (loaded.error().code == ErrorCode::kConflict) {
      // A delete is in progress: wait for it, or finish it when its writer died.
      S3DB_ASSIGN_OR_RETURN(bool gone, FinishStaleDelete(id));
      if (!gone) BackOff(attempt);
      continue;
    } else if (loaded.error().code != ErrorCode::kNotFound) {
      return tl::unexpected(loaded.error());
    }

    S3DB_ASSIGN_OR_RETURN(std::optional<JsonObject> wanted, modify(current));
    if (!wanted) return std::optional<JsonObject>();  // the stored record stays
    JsonObject next = std::move(*wanted);
    std::uint64_t revision;
    if (current) {
      revision = RevisionOf(*current) + 1;
    } else {
      S3DB_ASSIGN_OR_RETURN(std::uint64_t last, TombstoneRevision(id));
      revision = last + 1;
    }
    next[kIdField] = id;
    next[kRevisionField] = revision;
    S3DB_ASSIGN_OR_RETURN(next, Prepare(std::move(next), current ? &*current : nullptr));
    std::string body = ToJson(next);
    if (body.size() > kMaxRecordBytes) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "record '" + std::string(id) + "' is " + std::to_string(body.size()) +
                           " bytes; the limit is " + std::to_string(kMaxRecordBytes));
    }
    PutOptions options;
    if (current) {
      options.if_match = etag;
    } else {
      options.if_none_match = true;
    }
    Change change;
    change.id = std::string(id);
    change.revision = revision;
    change.action = current ? Action::kUpdate : Action::kInsert;
    change.before = std::move(current);
    change.after = std::move(next);
    S3DB_RETURN_IF_ERROR(PrepareChange(change, options));
    auto put = store_.Put(DataKey(id), body, options);
    if (!put) {
      S3DB_ASSIGN_OR_RETURN(bool stored, StoredDespite(change, put.error()));
      if (!stored) {
        if (put.error().code == ErrorCode::kConflict ||
            put.error().code == ErrorCode::kNotFound) {
          BackOff(attempt);
          continue;  // another writer won: re-read and apply again
        }
        return tl::unexpected(put.error());
      }
    }
    S3DB_RETURN_IF_ERROR(Emit(change));
    return std::move(change.after);
  }
  return MakeError(ErrorCode::kConflict, "record '" + std::string(id) + "' of resource '" + name() +
                                             "' kept changing under concurrent writers (" +
                                             std::to_string(retries + 1) + " attempts); retry");
}

Result<JsonObject> Resource::Insert(JsonObject data) {
  std::string id;
  bool generated = false;
  if (const Json* given = data.if_contains(kIdField); given && !given->is_null()) {
    if (!given->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "resource '" + name() + "': id must be a string");
    }
    id = std::string(given->get_string());
  } else {
    id = NewId();
    generated = true;
  }
  S3DB_RETURN_IF_ERROR(ValidateId(id));
  S3DB_RETURN_IF_ERROR(CheckOpen());

  std::uint64_t revision = 1;
  if (!generated) {
    S3DB_ASSIGN_OR_RETURN(std::uint64_t last, TombstoneRevision(id));
    revision = last + 1;
  }
  data[kIdField] = id;
  data[kRevisionField] = revision;
  data.erase(kDeletedField);
  S3DB_ASSIGN_OR_RETURN(JsonObject record, Prepare(std::move(data), nullptr));
  std::string body = ToJson(record);
  if (body.size() > kMaxRecordBytes) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "record '" + id + "' is " + std::to_string(body.size()) +
                         " bytes; the limit is " + std::to_string(kMaxRecordBytes));
  }
  PutOptions options;
  options.if_none_match = true;
  Change change;
  change.id = id;
  change.revision = revision;
  change.action = Action::kInsert;
  change.after = std::move(record);
  S3DB_RETURN_IF_ERROR(PrepareChange(change, options));
  auto put = store_.Put(DataKey(id), body, options);
  if (!put) {
    S3DB_ASSIGN_OR_RETURN(bool stored, StoredDespite(change, put.error()));
    if (stored) put = ObjectInfo{};
  }
  if (!put && put.error().code == ErrorCode::kConflict && !generated) {
    // The key may hold the marker of an unfinished delete rather than a record.
    auto existing = Load(id);
    if (!existing && existing.error().code == ErrorCode::kConflict) {
      S3DB_ASSIGN_OR_RETURN(bool gone, FinishStaleDelete(id));
      if (gone) {
        data = std::move(*change.after);
        data.erase(kRevisionField);
        return Insert(std::move(data));
      }
      return MakeError(ErrorCode::kConflict,
                       "record '" + id + "' of resource '" + name() + "' is being deleted; retry");
    }
  }
  if (!put) {
    if (put.error().code == ErrorCode::kConflict) {
      return MakeError(ErrorCode::kAlreadyExists,
                       "record '" + id + "' already exists in resource '" + name() + "'");
    }
    return tl::unexpected(put.error());
  }
  S3DB_RETURN_IF_ERROR(Emit(change));
  return std::move(*change.after);
}

Result<JsonObject> Resource::Get(std::string_view id) {
  S3DB_RETURN_IF_ERROR(ValidateId(id));
  auto loaded = Load(id);
  if (!loaded) {
    if (loaded.error().code == ErrorCode::kNotFound ||
        loaded.error().code == ErrorCode::kConflict) {
      return NotFound(id, name());
    }
    return tl::unexpected(loaded.error());
  }
  return std::move(loaded->first);
}

Result<std::optional<JsonObject>> Resource::GetOrNull(std::string_view id) {
  auto record = Get(id);
  if (record) return std::optional<JsonObject>(std::move(*record));
  if (record.error().code == ErrorCode::kNotFound) return std::optional<JsonObject>();
  return tl::unexpected(record.error());
}

Result<bool> Resource::Exists(std::string_view id) {
  S3DB_ASSIGN_OR_RETURN(auto record, GetOrNull(id));
  return record.has_value();
}

Result<JsonObject> Resource::Update(std::string_view id, const JsonObject& changes) {
  return Write(
      id, [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
        if (!current) return NotFound(id, name());
        JsonObject next = *current;
        DeepMerge(next, changes);
        return next;
      });
}

Result<JsonObject> Resource::Upsert(JsonObject data) {
  const Json* given = data.if_contains(kIdField);
  if (!given || !given->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "resource '" + name() + "': upsert needs a string id in the record");
  }
  std::string id(given->get_string());
  return Write(id,
               [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
                 if (!current) return data;
                 JsonObject next = *current;
                 DeepMerge(next, data);
                 return next;
               });
}

Result<JsonObject> Resource::Replace(std::string_view id, JsonObject data) {
  return Write(id, [&](const std::optional<JsonObject>&) -> Result<std::optional<JsonObject>> {
    return data;  // a copy: a lost race calls this again
  });
}

Result<JsonObject> Resource::Patch(std::string_view id, const JsonObject& fields) {
  return Write(
      id, [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
        if (!current) return NotFound(id, name());
        JsonObject next = *current;
        for (const auto& [key, value] : fields) next[key] = value;
        return next;
      });
}

Status Resource::Delete(std::string_view id) {
  S3DB_RETURN_IF_ERROR(ValidateId(id));
  S3DB_RETURN_IF_ERROR(CheckOpen());
  int retries = database_.options().max_conflict_retries;
  for (int attempt = 0; attempt <= retries; ++attempt) {
    auto loaded = Load(id);
    if (!loaded && loaded.error().code == ErrorCode::kConflict) {
      S3DB_ASSIGN_OR_RETURN(bool gone, FinishStaleDelete(id));
      if (!gone) {
        BackOff(attempt);
        continue;
      }
    }
    if (!loaded) {
      if (loaded.error().code == ErrorCode::kNotFound ||
          loaded.error().code == ErrorCode::kConflict) {
        return NotFound(id, name());
      }
      return tl::unexpected(loaded.error());
    }
    auto& [current, etag] = *loaded;
    std::uint64_t revision = RevisionOf(current) + 1;

    // Claim the revision atomically with a marker, so a concurrent update cannot take it.
    JsonObject marker;
    marker[kIdField] = id;
    marker[kRevisionField] = revision;
    marker[kDeletedField] = true;
    marker[kDeletedAtField] = NowMs();
    marker[kBeforeField] = current;
    PutOptions claim;
    claim.if_match = etag;
    Change change;
    change.id = std::string(id);
    change.revision = revision;
    change.action = Action::kDelete;
    change.before = current;
    S3DB_RETURN_IF_ERROR(PrepareChange(change, claim));
    auto claimed = store_.Put(DataKey(id), ToJson(marker), claim);
    if (!claimed) {
      // A claim that reached the store despite the error is found by the next writer (it
      // finishes stale markers) and by the plugins' intent check at their next start.
      if (claimed.error().code == ErrorCode::kConflict ||
          claimed.error().code == ErrorCode::kNotFound) {
        database_.AbandonChange(change);
        BackOff(attempt);
        continue;
      }
      return tl::unexpected(claimed.error());
    }
    JsonObject tombstone;
    tombstone[kRevisionField] = revision;
    tombstone["deletedAt"] = NowMs();
    tombstone[kWriteIdField] = change.write_id;
    // From here on the delete is claimed: if it stops half-way, readers already see no
    // record, the next writer finishes it, and the intent stays with the plugins.
    S3DB_RETURN_IF_ERROR(store_.Put(TombstoneKey(id), ToJson(tombstone)));
    S3DB_RETURN_IF_ERROR(store_.Delete(DataKey(id)));
    return Emit(change);
  }
  return MakeError(ErrorCode::kConflict,
                   "record '" + std::string(id) + "' kept changing while being deleted; retry");
}

std::vector<Result<JsonObject>> Resource::InsertMany(std::vector<JsonObject> records) {
  std::vector<Result<JsonObject>> results(records.size(), MakeError(ErrorCode::kInternal, ""));
  database_.pool().ParallelFor(records.size(),
                               [&](std::size_t i) { results[i] = Insert(std::move(records[i])); });
  return results;
}

std::vector<Result<JsonObject>> Resource::GetMany(const std::vector<std::string>& ids) {
  std::vector<Result<JsonObject>> results(ids.size(), MakeError(ErrorCode::kInternal, ""));
  database_.pool().ParallelFor(ids.size(), [&](std::size_t i) { results[i] = Get(ids[i]); });
  return results;
}

std::vector<Status> Resource::DeleteMany(const std::vector<std::string>& ids) {
  std::vector<Status> results(ids.size());
  database_.pool().ParallelFor(ids.size(), [&](std::size_t i) { results[i] = Delete(ids[i]); });
  return results;
}

Result<std::size_t> Resource::DeleteAll(bool confirm) {
  if (!confirm) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "DeleteAll on resource '" + name() + "' deletes every record; call it with confirm = true");
  }
  S3DB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListIds());
  auto results = DeleteMany(ids);
  std::size_t deleted = 0;
  for (const auto& status : results) {
    if (status) {
      ++deleted;
    } else if (status.error().code != ErrorCode::kNotFound) {
      return tl::unexpected(status.error());
    }
  }
  return deleted;
}

Result<std::vector<std::string>> Resource::ListIds() {
  std::string prefix = DataKey("");
  S3DB_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, store_.ListAll(prefix));
  std::vector<std::string> ids;
  ids.reserve(objects.size());
  for (const auto& object : objects) ids.push_back(object.key.substr(prefix.size()));
  return ids;
}

namespace {

// Loads records by id in parallel, dropping those deleted meanwhile.
Result<std::vector<JsonObject>> LoadAll(Resource& resource, const std::vector<std::string>& ids) {
  auto results = resource.GetMany(ids);
  std::vector<JsonObject> records;
  records.reserve(results.size());
  for (auto& result : results) {
    if (result) {
      records.push_back(std::move(*result));
    } else if (result.error().code != ErrorCode::kNotFound) {
      return tl::unexpected(result.error());
    }
  }
  return records;
}

}  // namespace

Result<std::vector<JsonObject>> Resource::List(const ListOptions& options) {
  S3DB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListIds());
  std::size_t begin = std::min(options.offset, ids.size());
  std::size_t end = options.limit ? std::min(ids.size(), begin + options.limit) : ids.size();
  std::vector<std::string> slice(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                 ids.begin() + static_cast<std::ptrdiff_t>(end));
  return LoadAll(*this, slice);
}

Result<std::size_t> Resource::Count() {
  S3DB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListIds());
  return ids.size();
}

Result<Page> Resource::GetPage(std::string_view cursor, std::size_t size) {
  if (size == 0) return MakeError(ErrorCode::kInvalidArgument, "page size must be at least 1");
  std::string prefix = DataKey("");
  std::string token = cursor.empty() ? "" : DataKey(cursor);
  S3DB_ASSIGN_OR_RETURN(ListPage listed, store_.List(prefix, token, static_cast<int>(size)));
  std::vector<std::string> ids;
  for (const auto& object : listed.objects) ids.push_back(object.key.substr(prefix.size()));
  Page page;
  S3DB_ASSIGN_OR_RETURN(page.items, LoadAll(*this, ids));
  if (!listed.next_token.empty() && !ids.empty()) page.next_cursor = ids.back();
  return page;
}

Result<std::vector<JsonObject>> Resource::Query(const JsonObject& filter,
                                                const ListOptions& options) {
  S3DB_RETURN_IF_ERROR(ValidateFilter(filter));
  S3DB_ASSIGN_OR_RETURN(std::vector<JsonObject> all, List());
  std::vector<JsonObject> matched;
  std::size_t skipped = 0;
  for (auto& record : all) {
    if (!MatchesFilter(record, filter)) continue;
    if (skipped < options.offset) {
      ++skipped;
      continue;
    }
    matched.push_back(std::move(record));
    if (options.limit && matched.size() == options.limit) break;
  }
  return matched;
}

}  // namespace s3db
