// How messages name the type of a JSON value.
#pragma once

#include <string_view>

#include "s3db/json.h"

namespace s3db {

// "an object", "an array", "a string", "a number" (integer or not), "a boolean" or "null",
// as in "expected a JSON object, got a number".
std::string_view JsonTypeName(const Json& value);

}  // namespace s3db
