#include "drivers/s3db/s3db_driver.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>

#include <boost/json/serialize.hpp>

#include "core/thread_pool.h"
#include "replicator/engine_util.h"
#include "s3db/storage.h"

namespace s3db::replicator {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t UnsignedField(const JsonObject& object, std::string_view field) {
  const Json* value = object.if_contains(field);
  if (value && value->is_uint64()) return value->get_uint64();
  if (value && value->is_int64() && value->get_int64() > 0) {
    return static_cast<std::uint64_t>(value->get_int64());
  }
  if (value && value->is_double() && value->get_double() > 0) {
    return static_cast<std::uint64_t>(value->get_double());
  }
  return 0;
}

DeliveryResult FromError(const Error& error) {
  std::string message = "Failed to replicate to s3db: " + RedactSecrets(error.message);
  switch (error.code) {
    case ErrorCode::kUnauthorized:
      return DeliveryResult::Unauthorized(std::move(message));
    case ErrorCode::kValidation:
      return DeliveryResult::Permanent("validation", std::move(message));
    case ErrorCode::kInvalidArgument:
      return DeliveryResult::Permanent("invalid_record", std::move(message));
    case ErrorCode::kPermanent:
      return DeliveryResult::Permanent("rejected", std::move(message));
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
      return DeliveryResult::Unreachable(std::move(message));
    default:
      return DeliveryResult::Retryable(std::move(message));
  }
}

class S3dbDriver : public Driver {
 public:
  S3dbDriver(std::string connection_string, bool create_resources, DriverContext context,
             Database* target)
      : connection_string_(std::move(connection_string)),
        create_resources_(create_resources),
        context_(std::move(context)),
        target_(target) {}

  Status Start() override {
    if (target_) return Ok();
    auto opened = Database::Connect(connection_string_);
    if (!opened) {
      return MakeError(opened.error().code,
                       "cannot open the target database " + RedactSecrets(connection_string_) +
                           ": " + RedactSecrets(opened.error().message));
    }
    owned_ = std::move(*opened);
    target_ = owned_.get();
    return Ok();
  }

  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds timeout) override {
    std::vector<DeliveryResult> results(batch.size());
    if (!target_) {
      results.assign(batch.size(),
                     DeliveryResult::Retryable("Failed to replicate to s3db: not started"));
      return results;
    }
    const Clock::time_point deadline = Clock::now() + timeout;

    // Changes of one record stay in order; different records are written in parallel.
    std::map<std::pair<std::string_view, std::string_view>, std::vector<std::size_t>> by_record;
    std::vector<std::vector<std::size_t>*> groups;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto [it, inserted] = by_record.try_emplace({batch[i].target, batch[i].id});
      if (inserted) groups.push_back(&it->second);
      it->second.push_back(i);
    }
    auto deliver_group = [&](std::size_t g) {
      bool failed = false;
      for (std::size_t index : *groups[g]) {
        if (failed) {
          results[index] = DeliveryResult::Retryable(
              "Failed to replicate to s3db: an earlier change of this record failed");
        } else if (Clock::now() > deadline) {
          results[index] = DeliveryResult::Retryable(
              "Failed to replicate to s3db: timeout after " + std::to_string(timeout.count()) +
              " ms");
          failed = true;
        } else {
          results[index] = Apply(batch[index]);
          failed = results[index].outcome != Outcome::kDelivered;
        }
      }
    };
    if (groups.size() == 1) {
      deliver_group(0);
    } else {
      target_->pool().ParallelFor(groups.size(), deliver_group);
    }
    return results;
  }

  void Stop() override {
    std::lock_guard lock(resources_mutex_);
    resources_.clear();
    if (owned_) {
      (void)owned_->Close();
      owned_.reset();
      target_ = nullptr;
    }
  }

 private:
  Result<Resource*> TargetResource(const DeliveryItem& item) {
    std::lock_guard lock(resources_mutex_);  // also serializes resource creation
    auto cached = resources_.find(item.target);
    if (cached != resources_.end()) return cached->second;
    if (Resource* existing = target_->FindResource(item.target)) {
      resources_.emplace(item.target, existing);
      return existing;
    }
    if (!create_resources_) {
      return MakeError(ErrorCode::kPermanent, "the target resource '" + item.target +
                                                  "' does not exist and createResources is "
                                                  "false");
    }
    ResourceDefinition definition;
    definition.name = item.target;
    bool transformed = false;
    if (item.destination_options) {
      const Json* flag = item.destination_options->if_contains("hasTransform");
      transformed = flag && flag->is_bool() && flag->get_bool();
    }
    // A transformed record need not match the source schema, so its target has none.
    if (!transformed && context_.resource_definition) {
      if (auto source = context_.resource_definition(item.source_resource)) {
        if (const Json* attributes = source->if_contains("attributes");
            attributes && attributes->is_object()) {
          definition.attributes = attributes->get_object();
        }
        if (const Json* id_size = source->if_contains("idSize"); id_size && id_size->is_number()) {
          definition.id_size = id_size->to_number<int>();
        }
      }
    }
    // The replicated record carries its own createdAt/updatedAt: copy them as they are.
    definition.timestamps = false;
    S3DB_ASSIGN_OR_RETURN(Resource * created, target_->CreateResource(std::move(definition)));
    resources_.emplace(item.target, created);
    return created;
  }

  static std::string DeletedMarkerKey(std::string_view resource, std::string_view id) {
    std::string key = "plugin=replicator/deleted/resource=";
    key += resource;
    key += "/id=";
    key += id;
    return key;
  }

  Result<std::uint64_t> DeletedRevision(std::string_view resource, std::string_view id) {
    auto object = target_->store().Get(DeletedMarkerKey(resource, id));
    if (!object) {
      if (object.error().code == ErrorCode::kNotFound) return 0;
      return tl::unexpected(object.error());
    }
    auto marker = ParseJsonObject(object->body);
    return marker ? UnsignedField(*marker, "rev") : 0;
  }

  DeliveryResult Apply(const DeliveryItem& item) {
    auto resource = TargetResource(item);
    if (!resource) return FromError(resource.error());
    if (item.action == Action::kDelete) return ApplyDelete(**resource, item);

    // One read of the target's record per attempt: a record that already has this revision of
    // the source's, or a newer one, stays, and so does a record deleted at a newer revision.
    auto next = [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
      if (item.revision > 0) {
        if (current) {
          if (UnsignedField(*current, kSourceRevisionField) >= item.revision) return std::nullopt;
        } else {
          S3DB_ASSIGN_OR_RETURN(std::uint64_t deleted, DeletedRevision(item.target, item.id));
          if (deleted >= item.revision) return std::nullopt;
        }
      }
      JsonObject record = item.data;
      record.erase(kRevisionField);
      record[kIdField] = item.id;
      record[kSourceRevisionField] = item.revision;
      return record;
    };
    auto written = resource.value()->Modify(item.id, next);
    if (!written && written.error().code == ErrorCode::kConflict &&
        RemoveAbandonedDeletion(item.target, item.id)) {
      written = resource.value()->Modify(item.id, next);
    }
    if (!written) return FromError(written.error());
    return DeliveryResult::Delivered();
  }

  DeliveryResult ApplyDelete(Resource& resource, const DeliveryItem& item) {
    auto current = resource.GetOrNull(item.id);
    if (!current) return FromError(current.error());
    if (item.revision > 0) {
      if (*current && UnsignedField(**current, kSourceRevisionField) > item.revision) {
        return DeliveryResult::Delivered();
      }
      auto deleted = DeletedRevision(item.target, item.id);
      if (!deleted) return FromError(deleted.error());
      if (*deleted < item.revision) {
        JsonObject marker;
        marker["rev"] = item.revision;
        marker["deletedAt"] = item.timestamp_ms;
        auto put = target_->store().Put(DeletedMarkerKey(item.target, item.id), ToJson(marker));
        if (!put) return FromError(put.error());
      }
    }
    if (!*current) return DeliveryResult::Delivered();
    auto deleted = resource.Delete(item.id);
    if (!deleted && deleted.error().code != ErrorCode::kNotFound) {
      return FromError(deleted.error());
    }
    return DeliveryResult::Delivered();
  }

  // A delete at the target that was interrupted (a crash between its steps) leaves a deletion
  // marker at the record's data key ("resource=<name>/data/id=<id>", see resource.h) that
  // blocks every later write. The record reads as deleted, so finishing the delete is safe.
  bool RemoveAbandonedDeletion(std::string_view resource, std::string_view id) {
    std::string key = "resource=" + std::string(resource) + "/data/id=" + std::string(id);
    auto object = target_->store().Get(key);
    if (!object) return false;
    auto marker = ParseJsonObject(object->body);
    if (!marker) return false;
    const Json* deleted = marker->if_contains("_deleted");
    if (!deleted || !deleted->is_bool() || !deleted->get_bool()) return false;
    return target_->store().Delete(key).has_value();
  }

  const std::string connection_string_;
  const bool create_resources_;
  const DriverContext context_;
  Database* target_;                  // not owned unless it is owned_
  std::unique_ptr<Database> owned_;   // opened from connectionString

  std::mutex resources_mutex_;  // guards resources_
  std::map<std::string, Resource*, std::less<>> resources_;
};

// A store location in one form for comparison: the ObjectStore::Describe form
// ("file:///abs/folder", "s3://bucket/prefix", "http://host:9000/bucket/prefix",
// "memory://bucket/prefix") without query, file folders absolute and with symlinks resolved.
std::string NormalizedLocation(std::string_view described) {
  std::string text(described.substr(0, described.find('?')));
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  if (text.rfind("file://", 0) == 0) {
    std::error_code error;
    std::filesystem::path folder = std::filesystem::absolute(text.substr(7), error);
    if (!error) {
      std::filesystem::path resolved = std::filesystem::weakly_canonical(folder, error);
      folder = error ? folder.lexically_normal() : resolved;
    }
    text = "file://" + folder.string();
    while (text.size() > 8 && text.back() == '/') text.pop_back();
  }
  return text;
}

std::string StoreLocation(const ConnectionString& connection) {
  std::string prefix = connection.prefix.empty() ? "" : "/" + connection.prefix;
  switch (connection.scheme) {
    case ConnectionString::Scheme::kFile:
      return "file://" + connection.path;
    case ConnectionString::Scheme::kMemory:
      return "memory://" + connection.bucket + prefix;
    case ConnectionString::Scheme::kS3:
      return "s3://" + connection.bucket + prefix;
    case ConnectionString::Scheme::kHttp:
    case ConnectionString::Scheme::kHttps:
      return std::string(connection.scheme == ConnectionString::Scheme::kHttp ? "http://"
                                                                              : "https://") +
             connection.host + (connection.port ? ":" + std::to_string(connection.port) : "") +
             "/" + connection.bucket + prefix;
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<Driver>> NewS3dbDriver(const JsonObject& config,
                                              const DriverContext& context, Database* target) {
  std::string connection_string;
  bool create_resources = true;
  for (const auto& [key, value] : config) {
    if (key == "connectionString") {
      if (!value.is_string() || value.get_string().empty()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "connectionString: expected a connection string such as "
                         "s3://KEY:SECRET@bucket/prefix, file:///path or memory://bucket");
      }
      connection_string = std::string(value.get_string());
    } else if (key == "createResources") {
      if (!value.is_bool()) {
        return MakeError(ErrorCode::kInvalidArgument, "createResources: expected true or false");
      }
      create_resources = value.get_bool();
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       std::string(key) + ": unknown option of the s3db driver (known: "
                                          "connectionString, createResources)");
    }
  }
  // Each destination names a resource of the target: refuse a name it cannot take now, rather
  // than dead-lettering every change sent to it.
  for (const auto& destination : context.destinations) {
    if (!internal::IsPlainName(destination.target)) {
      return MakeError(ErrorCode::kInvalidArgument, "resources." + destination.source +
                                                        ": destination '" + destination.target +
                                                        "' is not a resource name; use 1 to 100 "
                                                        "letters, digits, '_' and '-'");
    }
  }
  if (!target && connection_string.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "connectionString: required; name the target database, e.g. "
                     "s3://KEY:SECRET@backup-bucket/backup or file:///var/backup");
  }
  // Every change written into the source would come back as a new change: a loop.
  const auto itself = [&](const std::string& option, const std::string& location) {
    return MakeError(ErrorCode::kInvalidArgument,
                     option + ": " + location +
                         " is the source database itself; replicating "
                         "into it would write every record again and again; name another database");
  };
  if (!target) {
    auto parsed = ConnectionString::Parse(connection_string);
    if (!parsed) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "connectionString: " + RedactSecrets(parsed.error().message));
    }
    if (context.source != nullptr) {
      std::string location = NormalizedLocation(StoreLocation(*parsed));
      if (location == NormalizedLocation(context.source->Describe())) {
        return itself("connectionString", location);
      }
    }
  } else if (context.source != nullptr) {
    // Private memory stores all describe themselves as "memory://": only folders compare.
    std::string location = NormalizedLocation(context.source->Describe());
    if (target == context.source ||
        (location.rfind("file://", 0) == 0 && NormalizedLocation(target->Describe()) == location)) {
      return itself("target_database", location);
    }
  }
  return std::unique_ptr<Driver>(
      new S3dbDriver(std::move(connection_string), create_resources, context, target));
}

void RegisterS3dbDriver() {
  RegisterDriver("s3db", [](const JsonObject& config, const DriverContext& context) {
    return NewS3dbDriver(config, context, nullptr);
  });
}

}  // namespace s3db::replicator
