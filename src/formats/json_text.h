// Compact JSON text for export files, and the checks every exported value passes.
#pragma once

#include <string>
#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db::formats {

// Appends `value` as compact JSON: integers with every digit, doubles in their shortest
// round-trip form (an integral double keeps a ".0": 1.0 stays 1.0), strings with only the
// escapes JSON requires (UTF-8 is copied as is). REQUIRES: CheckExportable(value) passed.
void AppendJsonText(const Json& value, std::string& out);
std::string JsonText(const Json& value);
void AppendJsonText(const JsonObject& object, std::string& out);

// Appends a double as AppendJsonText does.
void AppendDouble(double value, std::string& out);

// Checks that `value` can be exported without change: every string and key is valid UTF-8
// and every double is finite. Error kInvalidArgument names `column` (may be empty).
Status CheckExportable(const Json& value, std::string_view column);

}  // namespace s3db::formats
