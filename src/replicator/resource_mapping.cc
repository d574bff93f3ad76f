// ResourceMapping: parses every "resources" syntax of the spec and normalizes it to
// source resource -> destinations.
#include <algorithm>
#include <cctype>
#include <iterator>

#include "core/option_keys.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

std::string KindOf(const Json& value) {
  switch (value.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: return "a number";
    case boost::json::kind::string: return "a string";
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
  }
  return "a value";
}

tl::unexpected<Error> Invalid(const std::string& path, const std::string& message) {
  return MakeError(ErrorCode::kInvalidArgument, path + ": " + message);
}

Result<std::vector<Action>> ParseActions(const Json& value, const std::string& path) {
  if (!value.is_array()) {
    return Invalid(path, "expected an array of actions (insert, update, delete), got " +
                             KindOf(value));
  }
  const auto& array = value.get_array();
  if (array.empty()) {
    return Invalid(path, "is empty; leave it out to replicate insert, update and delete");
  }
  std::vector<Action> actions;
  for (std::size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_string()) {
      return Invalid(path + "[" + std::to_string(i) + "]",
                     "expected an action name, got " + KindOf(array[i]));
    }
    std::string_view name = array[i].get_string();
    auto action = ParseAction(name);
    if (!action) {
      return Invalid(path, "unknown action '" + std::string(name) +
                               "' (known: insert, update, delete)");
    }
    if (std::find(actions.begin(), actions.end(), *action) == actions.end()) {
      actions.push_back(*action);
    }
  }
  return actions;
}

constexpr const char* kEngineKeys[] = {"resource", "transform", "actions", "shouldReplicate"};

// "unknown key; expected one of resource, table, transform, actions, shouldReplicate (did you
// mean 'transform'?)"
std::string UnknownKeyMessage(std::string_view key, const std::vector<std::string>& driver_keys,
                              std::string_view driver_note) {
  std::vector<std::string> known = {kEngineKeys[0]};
  known.insert(known.end(), driver_keys.begin(), driver_keys.end());
  known.insert(known.end(), std::begin(kEngineKeys) + 1, std::end(kEngineKeys));
  std::string message = "unknown key; expected one of ";
  std::vector<std::string_view> names;
  for (std::size_t i = 0; i < known.size(); ++i) {
    if (i) message += ", ";
    message += known[i];
    names.push_back(known[i]);
  }
  std::string best = ClosestName(key, names);
  message += driver_note;
  if (!best.empty()) message += " (did you mean '" + best + "'?)";
  return message;
}

bool IsDriverKey(std::string_view key, const std::vector<std::string>& driver_keys) {
  return std::find(driver_keys.begin(), driver_keys.end(), key) != driver_keys.end();
}

Result<Destination> ParseDestinationObject(const JsonObject& object, const std::string& path,
                                           const MappingFunctions* functions,
                                           const std::vector<std::string>& driver_keys) {
  Destination destination;
  for (const auto& [key, value] : object) {
    std::string key_path = path + "." + std::string(key);
    if (key == "resource") {
      if (!value.is_string() || value.get_string().empty()) {
        return Invalid(key_path, "expected a non-empty resource name, got " + KindOf(value));
      }
      destination.resource = std::string(value.get_string());
    } else if (key == "actions") {
      S3DB_ASSIGN_OR_RETURN(destination.actions, ParseActions(value, key_path));
    } else if (key == "transform") {
      if (!functions || !functions->compile_transform) {
        return Invalid(key_path,
                       "a transform function cannot be given in JSON; use ResourceMapping::Add "
                       "in C++ or a Lua function in a YAML config");
      }
      S3DB_ASSIGN_OR_RETURN(destination.transform, functions->compile_transform(value, key_path));
    } else if (key == "shouldReplicate") {
      if (!functions || !functions->compile_should_replicate) {
        return Invalid(key_path,
                       "a shouldReplicate function cannot be given in JSON; use "
                       "ResourceMapping::Add in C++ or a Lua function in a YAML config");
      }
      S3DB_ASSIGN_OR_RETURN(destination.should_replicate,
                            functions->compile_should_replicate(value, key_path));
    } else if (IsDriverKey(key, driver_keys)) {
      destination.options[key] = value;  // declared by the driver ("table", ...)
    } else {
      return Invalid(key_path, UnknownKeyMessage(key, driver_keys, ""));
    }
  }
  return destination;
}

bool IsFunction(const MappingFunctions* functions, const Json& value) {
  return functions && functions->is_function && functions->is_function(value);
}

Result<Transform> CompileFunctionOnly(const MappingFunctions* functions, const Json& value,
                                      const std::string& path) {
  if (!functions->compile_transform) {
    return Invalid(path, "a function was given but no transform compiler is configured");
  }
  return functions->compile_transform(value, path);
}

}  // namespace

ResourceMapping& ResourceMapping::Add(std::string source) {
  given_ = true;
  entries_.emplace_back(std::move(source), Destination{});
  return *this;
}

ResourceMapping& ResourceMapping::Add(std::string source, std::string destination_resource) {
  given_ = true;
  Destination destination;
  destination.resource = std::move(destination_resource);
  entries_.emplace_back(std::move(source), std::move(destination));
  return *this;
}

ResourceMapping& ResourceMapping::Add(std::string source, Destination destination) {
  given_ = true;
  entries_.emplace_back(std::move(source), std::move(destination));
  return *this;
}

ResourceMapping& ResourceMapping::Add(std::string source, Transform transform) {
  given_ = true;
  Destination destination;
  destination.transform = std::move(transform);
  entries_.emplace_back(std::move(source), std::move(destination));
  return *this;
}

Result<ResourceMapping> ResourceMapping::FromJson(const Json& value, const std::string& path,
                                                  const MappingFunctions* functions,
                                                  const std::vector<std::string>& driver_keys) {
  ResourceMapping mapping;
  mapping.given_ = true;
  if (value.is_array()) {  // 1. ["users", "orders"]
    const auto& array = value.get_array();
    if (array.empty()) {
      return Invalid(path, "is empty; leave 'resources' out to replicate every resource");
    }
    for (std::size_t i = 0; i < array.size(); ++i) {
      if (!array[i].is_string() || array[i].get_string().empty()) {
        return Invalid(path + "[" + std::to_string(i) + "]",
                       "expected a resource name, got " + KindOf(array[i]));
      }
      mapping.Add(std::string(array[i].get_string()));
    }
    return mapping;
  }
  if (!value.is_object()) {
    return Invalid(path, "expected an array of resource names or an object mapping each "
                         "source resource to its destinations, got " + KindOf(value));
  }

  if (value.get_object().empty()) {
    return Invalid(path, "is empty; leave 'resources' out to replicate every resource");
  }
  for (const auto& [key, destination_value] : value.get_object()) {
    std::string source(key);
    std::string source_path = path + "." + source;
    if (source.empty()) return Invalid(path, "a source resource name is empty");

    if (IsFunction(functions, destination_value)) {  // 4. function-only transform
      S3DB_ASSIGN_OR_RETURN(Transform transform,
                            CompileFunctionOnly(functions, destination_value, source_path));
      mapping.Add(source, std::move(transform));
    } else if (destination_value.is_string()) {  // 2. "users": "people"
      if (destination_value.get_string().empty()) {
        return Invalid(source_path, "the destination resource name is empty");
      }
      mapping.Add(source, std::string(destination_value.get_string()));
    } else if (destination_value.is_bool()) {  // 6. "users": true (false: not replicated)
      if (destination_value.get_bool()) mapping.Add(source);
    } else if (destination_value.is_object()) {  // 3. {resource, transform, actions, ...}
      S3DB_ASSIGN_OR_RETURN(
          Destination destination,
          ParseDestinationObject(destination_value.get_object(), source_path, functions,
                                 driver_keys));
      mapping.Add(source, std::move(destination));
    } else if (destination_value.is_array()) {  // 5. several destinations
      const auto& array = destination_value.get_array();
      if (array.empty()) return Invalid(source_path, "the list of destinations is empty");
      for (std::size_t i = 0; i < array.size(); ++i) {
        std::string item_path = source_path + "[" + std::to_string(i) + "]";
        const Json& item = array[i];
        if (IsFunction(functions, item)) {
          S3DB_ASSIGN_OR_RETURN(Transform transform,
                                CompileFunctionOnly(functions, item, item_path));
          mapping.Add(source, std::move(transform));
        } else if (item.is_string() && !item.get_string().empty()) {
          mapping.Add(source, std::string(item.get_string()));
        } else if (item.is_object()) {
          S3DB_ASSIGN_OR_RETURN(Destination destination,
                                ParseDestinationObject(item.get_object(), item_path, functions,
                                                       driver_keys));
          mapping.Add(source, std::move(destination));
        } else {
          return Invalid(item_path, "expected a destination resource name or an object, got " +
                                        KindOf(item));
        }
      }
    } else {
      return Invalid(source_path,
                     "expected a destination resource name, true, an object or an array, got " +
                         KindOf(destination_value));
    }
  }
  return mapping;
}

Status ResourceMapping::CheckDestinationKeys(const std::string& path,
                                             const std::vector<std::string>& driver_keys) const {
  for (const auto& [source, destination] : entries_) {
    for (const auto& [key, value] : destination.options) {
      if (IsDriverKey(key, driver_keys)) continue;
      return Invalid(path + "." + source + "." + std::string(key),
                     UnknownKeyMessage(key, driver_keys, " (Destination::options)"));
    }
  }
  return Ok();
}

Result<std::map<std::string, std::vector<Destination>, std::less<>>> ResourceMapping::Normalize(
    const std::string& path) const {
  std::map<std::string, std::vector<Destination>, std::less<>> normalized;
  for (const auto& [source, given] : entries_) {
    if (source.empty()) return Invalid(path, "a source resource name is empty");
    Destination destination = given;
    if (destination.resource.empty()) destination.resource = source;
    if (destination.actions.empty()) {
      destination.actions = {Action::kInsert, Action::kUpdate, Action::kDelete};
    }
    normalized[source].push_back(std::move(destination));
  }
  return normalized;
}

}  // namespace s3db::replicator
