// memory://bucket/prefix: objects in process memory. Stores opened with the same bucket name
// share their objects, so two databases in one process can replicate to each other.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "s3db/storage.h"

namespace s3db {
namespace {

// What an ObjectInfo says, without what the map's key already holds: a memory store keeps
// every object it is given, so each one is kept small (its key once, its etag as a number).
struct MemoryObject {
  std::string body;
  std::uint64_t etag = 0;  // shown as "m" and 16 hex digits
  std::int64_t last_modified_ms = 0;
  std::map<std::string, std::string> metadata;
};

struct MemoryBucket {
  std::shared_mutex mutex;  // guards objects
  std::map<std::string, MemoryObject, std::less<>> objects;
};

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t NextEtag() {
  static std::atomic<std::uint64_t> counter{1};
  return counter.fetch_add(1);
}

std::string EtagText(std::uint64_t etag) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "m%016llx", static_cast<unsigned long long>(etag));
  return buffer;
}

class MemoryStore final : public ObjectStore {
 public:
  MemoryStore(std::shared_ptr<MemoryBucket> bucket, std::string prefix, std::string description)
      : bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        description_(std::move(description)) {}

  Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                         const PutOptions& options) override {
    std::string full = Full(key);
    std::unique_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(full);
    if (options.if_none_match && it != bucket_->objects.end()) {
      return MakeError(ErrorCode::kConflict, "object '" + std::string(key) + "' already exists");
    }
    if (!options.if_match.empty()) {
      if (it == bucket_->objects.end()) {
        return MakeError(ErrorCode::kNotFound, "object '" + std::string(key) + "' does not exist");
      }
      if (EtagText(it->second.etag) != options.if_match) {
        return MakeError(ErrorCode::kConflict,
                         "object '" + std::string(key) + "' changed (etag mismatch)");
      }
    }
    MemoryObject object;
    object.body.assign(body);
    object.etag = NextEtag();
    object.last_modified_ms = NowMs();
    for (const auto& [name, value] : options.metadata) object.metadata[Lower(name)] = value;
    ObjectInfo info = Info(key, object);
    bucket_->objects.insert_or_assign(std::move(full), std::move(object));
    return info;
  }

  Result<Object> Get(std::string_view key) override {
    std::shared_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(key));
    if (it == bucket_->objects.end()) return Missing(key);
    return Object{it->second.body, Info(key, it->second)};
  }

  Result<ObjectInfo> Head(std::string_view key) override {
    std::shared_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(key));
    if (it == bucket_->objects.end()) return Missing(key);
    return Info(key, it->second);
  }

  Status Delete(std::string_view key) override {
    std::unique_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(key));
    if (it != bucket_->objects.end()) bucket_->objects.erase(it);
    return Ok();
  }

  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    DeleteManyResult result;
    std::unique_lock lock(bucket_->mutex);
    for (const auto& key : keys) {
      auto it = bucket_->objects.find(Full(key));
      if (it != bucket_->objects.end()) bucket_->objects.erase(it);
      result.deleted.push_back(key);
    }
    return result;
  }

  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    ListPage page;
    std::string full_prefix = Full(prefix);
    std::shared_lock lock(bucket_->mutex);
    auto it = token.empty() ? bucket_->objects.lower_bound(full_prefix)
                            : bucket_->objects.upper_bound(Full(token));
    for (; it != bucket_->objects.end(); ++it) {
      if (it->first.compare(0, full_prefix.size(), full_prefix) != 0) break;
      if (static_cast<int>(page.objects.size()) == max_keys) {
        page.next_token = page.objects.back().key;
        break;
      }
      page.objects.push_back(Info(Relative(it->first), it->second, /*with_metadata=*/false));
    }
    return page;
  }

  Result<ObjectInfo> Copy(std::string_view source_key, std::string_view target_key) override {
    std::unique_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(source_key));
    if (it == bucket_->objects.end()) return Missing(source_key);
    MemoryObject copy = it->second;
    copy.etag = NextEtag();
    copy.last_modified_ms = NowMs();
    ObjectInfo info = Info(target_key, copy);
    bucket_->objects.insert_or_assign(Full(target_key), std::move(copy));
    return info;
  }

  std::string Describe() const override { return description_; }

 private:
  std::string Full(std::string_view key) const {
    if (prefix_.empty()) return std::string(key);
    std::string out = prefix_;
    out += '/';
    out += key;
    return out;
  }
  // The key without the store's prefix (and its '/').
  std::string_view Relative(std::string_view full) const {
    return prefix_.empty() ? full : full.substr(prefix_.size() + 1);
  }
  // List leaves metadata out, as S3's listing does.
  static ObjectInfo Info(std::string_view key, const MemoryObject& object,
                         bool with_metadata = true) {
    ObjectInfo info;
    info.key.assign(key);
    info.etag = EtagText(object.etag);
    info.size = object.body.size();
    info.last_modified_ms = object.last_modified_ms;
    if (with_metadata) info.metadata = object.metadata;
    return info;
  }
  static std::string Lower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }
  static tl::unexpected<Error> Missing(std::string_view key) {
    return MakeError(ErrorCode::kNotFound, "object '" + std::string(key) + "' does not exist");
  }

  std::shared_ptr<MemoryBucket> bucket_;
  std::string prefix_;
  std::string description_;
};

std::shared_ptr<MemoryBucket> SharedBucket(const std::string& name) {
  static std::mutex mutex;  // guards buckets
  static std::unordered_map<std::string, std::shared_ptr<MemoryBucket>> buckets;
  std::lock_guard lock(mutex);
  auto& bucket = buckets[name];
  if (!bucket) bucket = std::make_shared<MemoryBucket>();
  return bucket;
}

}  // namespace

std::unique_ptr<ObjectStore> NewMemoryStore(std::string description) {
  return std::make_unique<MemoryStore>(std::make_shared<MemoryBucket>(), "",
                                       std::move(description));
}

std::unique_ptr<ObjectStore> NewSharedMemoryStore(const ConnectionString& connection) {
  return std::make_unique<MemoryStore>(SharedBucket(connection.bucket), connection.prefix,
                                       connection.Redacted());
}

}  // namespace s3db
