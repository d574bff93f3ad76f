// JSON documents (Boost.JSON) and the strict parser every s3db input goes through.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "s3db/error.h"

namespace s3db {

using Json = boost::json::value;
using JsonObject = boost::json::object;
using JsonArray = boost::json::array;

struct JsonParseOptions {
  // Deepest nesting accepted; deeper input is rejected, never truncated.
  std::size_t max_depth = 2000;
};

// Parses one JSON text. Unlike boost::json::parse it never changes a value silently:
// integers outside [-2^63, 2^64) are rejected (they would become doubles), invalid UTF-8
// is rejected, and the error names the byte offset. The error code is kInvalidArgument.
Result<Json> ParseJson(std::string_view text, const JsonParseOptions& options = {});

// Parses a JSON text that must be an object.
Result<JsonObject> ParseJsonObject(std::string_view text, const JsonParseOptions& options = {});

// Compact serialization; integers keep every digit.
std::string ToJson(const Json& value);
std::string ToJson(const JsonObject& value);

// Deep merge: objects in `patch` merge into objects in `target` key by key; any other
// value (including arrays and null) replaces the target's value.
void DeepMerge(JsonObject& target, const JsonObject& patch);

// Returns nullptr when `path` ("a.b.c") does not resolve.
const Json* FindPath(const JsonObject& object, std::string_view dotted_path);

// True when `text` is valid UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view text);

}  // namespace s3db
