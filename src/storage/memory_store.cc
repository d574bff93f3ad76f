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

struct MemoryObject {
  std::string body;
  ObjectInfo info;
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

std::string NextEtag() {
  static std::atomic<std::uint64_t> counter{1};
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "m%016llx",
                static_cast<unsigned long long>(counter.fetch_add(1)));
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
      if (it->second.info.etag != options.if_match) {
        return MakeError(ErrorCode::kConflict,
                         "object '" + std::string(key) + "' changed (etag mismatch)");
      }
    }
    MemoryObject object;
    object.body.assign(body);
    object.info.key.assign(key);
    object.info.etag = NextEtag();
    object.info.size = body.size();
    object.info.last_modified_ms = NowMs();
    for (const auto& [name, value] : options.metadata) object.info.metadata[Lower(name)] = value;
    ObjectInfo info = object.info;
    bucket_->objects.insert_or_assign(std::move(full), std::move(object));
    return info;
  }

  Result<Object> Get(std::string_view key) override {
    std::shared_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(key));
    if (it == bucket_->objects.end()) return Missing(key);
    return Object{it->second.body, it->second.info};
  }

  Result<ObjectInfo> Head(std::string_view key) override {
    std::shared_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(key));
    if (it == bucket_->objects.end()) return Missing(key);
    return it->second.info;
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
      ObjectInfo info = it->second.info;
      info.metadata.clear();
      page.objects.push_back(std::move(info));
    }
    return page;
  }

  Result<ObjectInfo> Copy(std::string_view source_key, std::string_view target_key) override {
    std::unique_lock lock(bucket_->mutex);
    auto it = bucket_->objects.find(Full(source_key));
    if (it == bucket_->objects.end()) return Missing(source_key);
    MemoryObject copy = it->second;
    copy.info.key.assign(target_key);
    copy.info.etag = NextEtag();
    copy.info.last_modified_ms = NowMs();
    ObjectInfo info = copy.info;
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
