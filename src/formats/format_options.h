// The option keys each file format reads (CsvOptionsFromJson, JsonlOptionsFromJson, ...), so
// that callers can refuse a misspelt one instead of ignoring it.
#pragma once

#include <span>
#include <string_view>

#include "formats/record_writers.h"

namespace s3db::formats {

// The keys MakeRecordWriter reads for `format` (for excel: also sheetName).
std::span<const std::string_view> FormatOptionKeys(FileFormat format);

// kInvalidArgument naming the first key of `options` that `format` does not read, with the
// known keys and the closest one.
Status RefuseUnknownFormatOptions(FileFormat format, const JsonObject& options);

}  // namespace s3db::formats
