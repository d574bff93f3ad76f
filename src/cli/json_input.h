// Strict parsing of JSON given to the CLI (arguments, stdin, import files).
#pragma once

#include <cstdint>
#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db::cli {

// ParseJson, and also refuses text after the value ("{} x", "007"): the error names the byte.
Result<Json> ParseJsonInput(std::string_view text);
Result<JsonObject> ParseJsonObjectInput(std::string_view text);

// A parameter that must be a non-negative decimal integer no larger than `max`. Errors name
// the parameter and the expected form: "limit: 'abc' is not a non-negative integer".
Result<std::uint64_t> ParseCountParameter(std::string_view name, std::string_view text,
                                          std::uint64_t max = UINT64_MAX);
// A parameter that must be "true" or "false": "upsert: 'yes' is not true or false".
Result<bool> ParseBoolParameter(std::string_view name, std::string_view text);

// True when `text` is exactly a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view text);

}  // namespace s3db::cli
