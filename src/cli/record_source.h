// Records read one at a time from a JSON array, JSON Lines or CSV input, for `s3db import`.
// Only the record being read is held in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/schema.h"

namespace s3db::cli {

enum class InputFormat {
  kJson,       // one array of objects (or one object)
  kJsonLines,  // one object per line; blank lines are skipped
  kCsv,        // RFC 4180 with a header row of field names
};

// "json" | "jsonl" | "ndjson" | "csv" (kInvalidArgument otherwise).
Result<InputFormat> ParseInputFormat(std::string_view name);
// By extension: .json, .jsonl, .ndjson, .csv (any case); nullopt for others.
std::optional<InputFormat> FormatFromPath(std::string_view path);
std::string_view InputFormatName(InputFormat format);

struct SourceRecord {
  std::size_t line = 0;  // 1-based line where the record starts
  JsonObject record;     // meaningful when `error` is empty
  std::string error;     // what is wrong with this record alone; reading goes on
};

// Not thread-safe.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  // The next record, or nullopt at the end. An error (kInvalidArgument, naming the line) means
  // the rest of the input cannot be read.
  virtual Result<std::optional<SourceRecord>> Next() = 0;
  virtual std::uint64_t bytes_read() const = 0;
};

// CSV values become JSON by the resource's attribute types, per column: string types keep
// the text; number and integer parse it as a JSON number; boolean takes true/false (any
// case); array, object and json parse it as JSON; a column without an attribute becomes a
// number when the text is a JSON number and stays a string otherwise. The "id" column is
// always a string. An empty field leaves the field out. A text that does not parse as its
// type is kept as a string, so validation names the field.
// `schema` may be null (no attributes); it must outlive the source.
std::unique_ptr<RecordSource> NewRecordSource(InputFormat format, std::istream& input,
                                              const Schema* schema);

// The CSV rule above for one value; nullopt means "leave the field out".
std::optional<Json> CsvValue(std::string_view text, std::string_view column, const Schema* schema);

}  // namespace s3db::cli
