// ReplicatorPluginOptions: parsing of the spec's option names and validation at start-up.
#include <cmath>
#include <set>

#include "replicator/engine_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

tl::unexpected<Error> Invalid(const std::string& path, const std::string& message) {
  return MakeError(ErrorCode::kInvalidArgument, path + ": " + message);
}

Result<bool> GetBool(const Json& value, const std::string& path) {
  if (!value.is_bool()) return Invalid(path, "expected true or false");
  return value.get_bool();
}

Result<int> GetInt(const Json& value, const std::string& path) {
  if (value.is_int64()) {
    std::int64_t v = value.get_int64();
    if (v < INT32_MIN || v > INT32_MAX) return Invalid(path, "number out of range");
    return static_cast<int>(v);
  }
  if (value.is_uint64()) {
    if (value.get_uint64() > INT32_MAX) return Invalid(path, "number out of range");
    return static_cast<int>(value.get_uint64());
  }
  if (value.is_double()) {
    double v = value.get_double();
    if (std::floor(v) != v || v < INT32_MIN || v > INT32_MAX) {
      return Invalid(path, "expected a whole number");
    }
    return static_cast<int>(v);
  }
  return Invalid(path, "expected a number");
}

Result<std::string> GetString(const Json& value, const std::string& path) {
  if (!value.is_string()) return Invalid(path, "expected a string");
  return std::string(value.get_string());
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out.empty() ? "none" : out;
}

std::string UnknownDriverMessage(const std::string& driver) {
  return "unknown driver '" + driver + "' (known: " + JoinNames(RegisteredDrivers()) + ")";
}

Result<ReplicatorConfig> ParseReplicator(const Json& value, const std::string& path,
                                         const MappingFunctions* functions) {
  if (!value.is_object()) return Invalid(path, "expected an object {driver, resources, config}");
  ReplicatorConfig replicator;
  const Json* resources = nullptr;
  for (const auto& [key, field] : value.get_object()) {
    std::string field_path = path + "." + std::string(key);
    if (key == "id") {
      S3DB_ASSIGN_OR_RETURN(replicator.id, GetString(field, field_path));
    } else if (key == "driver") {
      S3DB_ASSIGN_OR_RETURN(replicator.driver, GetString(field, field_path));
    } else if (key == "resources") {
      resources = &field;  // parsed once the driver (and so its destination keys) is known
    } else if (key == "config") {
      if (!field.is_object()) return Invalid(field_path, "expected an object");
      replicator.config = field.get_object();
    } else if (key == "enabled") {
      S3DB_ASSIGN_OR_RETURN(replicator.enabled, GetBool(field, field_path));
    } else {
      return Invalid(field_path, "unknown option (known: id, driver, resources, config, enabled)");
    }
  }
  if (replicator.driver.empty()) return Invalid(path + ".driver", "is required");
  if (!internal::FindDriverByName(replicator.driver)) {
    return Invalid(path + ".driver", UnknownDriverMessage(replicator.driver));
  }
  // Without "resources" the replicator takes every resource (ResourceMapping::every_resource).
  if (resources) {
    S3DB_ASSIGN_OR_RETURN(replicator.resources,
                          ResourceMapping::FromJson(*resources, path + ".resources", functions,
                                                    DestinationKeys(replicator.driver)));
  }
  return replicator;
}

}  // namespace

Result<ReplicatorPluginOptions> ReplicatorPluginOptions::FromJson(
    const JsonObject& object, const MappingFunctions* functions) {
  ReplicatorPluginOptions options;
  for (const auto& [key, value] : object) {
    std::string path(key);
    if (key == "enabled") {
      S3DB_ASSIGN_OR_RETURN(options.enabled, GetBool(value, path));
    } else if (key == "replicators") {
      if (!value.is_array()) return Invalid(path, "expected an array of replicators");
      const auto& array = value.get_array();
      for (std::size_t i = 0; i < array.size(); ++i) {
        S3DB_ASSIGN_OR_RETURN(
            ReplicatorConfig replicator,
            ParseReplicator(array[i], "replicators[" + std::to_string(i) + "]", functions));
        options.replicators.push_back(std::move(replicator));
      }
    } else if (key == "verbose") {
      S3DB_ASSIGN_OR_RETURN(options.verbose, GetBool(value, path));
    } else if (key == "persistReplicatorLog") {
      S3DB_ASSIGN_OR_RETURN(options.persist_replicator_log, GetBool(value, path));
    } else if (key == "replicatorLogResource") {
      S3DB_ASSIGN_OR_RETURN(options.replicator_log_resource, GetString(value, path));
    } else if (key == "logErrors") {
      S3DB_ASSIGN_OR_RETURN(options.log_errors, GetBool(value, path));
    } else if (key == "batchSize") {
      S3DB_ASSIGN_OR_RETURN(options.batch_size, GetInt(value, path));
    } else if (key == "maxRetries") {
      S3DB_ASSIGN_OR_RETURN(options.max_retries, GetInt(value, path));
    } else if (key == "timeout") {
      S3DB_ASSIGN_OR_RETURN(options.timeout_ms, GetInt(value, path));
    } else if (key == "fsync") {
      S3DB_ASSIGN_OR_RETURN(options.fsync, GetString(value, path));
    } else if (key == "lingerMs") {
      S3DB_ASSIGN_OR_RETURN(options.linger_ms, GetInt(value, path));
    } else if (key == "retryBaseMs") {
      S3DB_ASSIGN_OR_RETURN(options.retry_base_ms, GetInt(value, path));
    } else if (key == "maxBackoffMs") {
      S3DB_ASSIGN_OR_RETURN(options.max_backoff_ms, GetInt(value, path));
    } else if (key == "probeMaxMs") {
      S3DB_ASSIGN_OR_RETURN(options.probe_max_ms, GetInt(value, path));
    } else if (key == "stateDir") {
      S3DB_ASSIGN_OR_RETURN(options.state_dir, GetString(value, path));
    } else {
      return Invalid(path,
                     "unknown option (known: enabled, replicators, verbose, persistReplicatorLog, "
                     "replicatorLogResource, logErrors, batchSize, maxRetries, timeout, fsync, "
                     "lingerMs, retryBaseMs, maxBackoffMs, probeMaxMs, stateDir)");
    }
  }
  S3DB_RETURN_IF_ERROR(options.Validate());
  return options;
}

Status ReplicatorPluginOptions::Validate() const {
  if (batch_size < 1 || batch_size > 100000) {
    return Invalid("batchSize", std::to_string(batch_size) + " is outside 1..100000");
  }
  if (max_retries < 0 || max_retries > 1000) {
    return Invalid("maxRetries", std::to_string(max_retries) + " is outside 0..1000");
  }
  if (timeout_ms < 1) return Invalid("timeout", "must be at least 1 (milliseconds)");
  if (fsync != "always" && fsync != "batch" && fsync != "off") {
    return Invalid("fsync", "'" + fsync + "' is not one of always, batch, off");
  }
  if (linger_ms < 0) return Invalid("lingerMs", "must be 0 or more");
  if (retry_base_ms < 1) return Invalid("retryBaseMs", "must be at least 1");
  if (max_backoff_ms < retry_base_ms) {
    return Invalid("maxBackoffMs", "must be at least retryBaseMs (" +
                                       std::to_string(retry_base_ms) + ")");
  }
  if (probe_max_ms < 1) return Invalid("probeMaxMs", "must be at least 1");
  if (auto valid = internal::ValidateResourceName(replicator_log_resource); !valid) {
    return Invalid("replicatorLogResource", valid.error().message);
  }

  std::set<std::string> ids;
  for (std::size_t i = 0; i < replicators.size(); ++i) {
    const ReplicatorConfig& replicator = replicators[i];
    std::string path = "replicators[" + std::to_string(i) + "]";
    if (replicator.driver.empty()) return Invalid(path + ".driver", "is required");
    bool has_factory = static_cast<bool>(replicator.factory);
    if (!has_factory && !internal::FindDriverByName(replicator.driver)) {
      return Invalid(path + ".driver", UnknownDriverMessage(replicator.driver));
    }
    std::string id = internal::EffectiveId(replicator, i);
    // The id names the replicator's folder under the state folder: a plain name only.
    if (!internal::IsPlainName(id)) {
      return Invalid(path + ".id", "'" + id +
                                       "' is not a valid replicator id; use 1 to 100 "
                                       "letters, digits, '_' and '-' (like resource names)");
    }
    if (!ids.insert(id).second) {
      return Invalid(path + ".id", "'" + id + "' is used by another replicator; ids are unique");
    }
    if (replicator.resources.every_resource()) continue;
    if (replicator.resources.empty()) {
      return Invalid(path + ".resources",
                     "no resources; name at least one source resource, or leave 'resources' "
                     "out to replicate every resource");
    }
    std::vector<std::string> keys = DestinationKeys(replicator.driver);
    keys.insert(keys.end(), replicator.destination_keys.begin(),
                replicator.destination_keys.end());
    S3DB_RETURN_IF_ERROR(replicator.resources.CheckDestinationKeys(path + ".resources", keys));
    auto normalized = replicator.resources.Normalize(path + ".resources");
    if (!normalized) return tl::unexpected(normalized.error());
  }
  return Ok();
}

Json ReplicatorError::ToJson() const {
  JsonObject object;
  object["name"] = name;
  object["message"] = message;
  object["description"] = description;
  object["context"] = context;
  return object;
}

std::string_view ReplicatorStateName(ReplicatorState state) {
  switch (state) {
    case ReplicatorState::kRunning: return "running";
    case ReplicatorState::kPaused: return "paused";
    case ReplicatorState::kDisabled: return "disabled";
    case ReplicatorState::kStopped: return "stopped";
  }
  return "unknown";
}

}  // namespace s3db::replicator
