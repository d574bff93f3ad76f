// The option keys of the file drivers (csv, jsonl, parquet, excel), checked when a driver is
// created so that a misspelt key fails at start instead of being ignored.
#pragma once

#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db::replicator::files {

// kInvalidArgument "<key>: unknown option (known: ...) (did you mean '...'?)" for the first key
// of `config` (or "output.<key>" of its output object) that the driver of `format` does not
// read.
Status RefuseUnknownFileDriverOptions(std::string_view format, const JsonObject& config);

}  // namespace s3db::replicator::files
