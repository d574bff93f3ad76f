// Fuzzes the CSV writer with random rows, flushes and options. No crash; a rejected row
// changes nothing; and (with the default delimiter) the finished file, read back by the
// CLI's RFC 4180 reader, holds the header and exactly the accepted rows, every string cell
// byte for byte.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/csv_reader.h"
#include "formats/byte_sink.h"
#include "formats/csv_writer.h"
#include "fuzz_util.h"

using namespace s3db;
using namespace s3db::formats;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  CsvOptions options;
  static const char kDelimiters[] = {',', ';', '\t', '|'};
  bool plain = data.ConsumeBool();  // default options: the file can be read back and compared
  if (!plain) {
    options.delimiter = kDelimiters[data.ConsumeIntegralInRange<int>(0, 3)];
    options.bom = data.ConsumeBool();
    options.escape_formulas = data.ConsumeBool();
  }
  std::vector<ColumnSpec> declared;
  if (data.ConsumeBool()) declared.push_back({"id", ColumnType::kString});
  if (data.ConsumeBool()) declared.push_back({"age", ColumnType::kInteger});
  auto columns = ColumnSet::Make(declared);
  FUZZ_CHECK(columns.has_value(), "declared columns");

  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  auto made = CsvWriter::Make(*columns, options, std::move(sink));
  FUZZ_CHECK(made.has_value(), made.error().message);
  CsvWriter& writer = **made;

  std::vector<JsonObject> accepted;
  int rows = data.ConsumeIntegralInRange<int>(0, 40);
  for (int i = 0; i < rows && data.remaining_bytes() > 0; ++i) {
    JsonObject row = fuzz::Row(data);
    std::size_t columns_before = writer.columns().size();
    auto added = writer.Add(row);
    if (added) {
      accepted.push_back(std::move(row));
    } else {
      FUZZ_CHECK(added.error().code == ErrorCode::kInvalidArgument, added.error().ToString());
      FUZZ_CHECK(writer.columns().size() == columns_before, "a rejected row added columns");
    }
    if (data.ConsumeIntegralInRange<int>(0, 7) == 0) {
      auto flushed = writer.Flush();
      FUZZ_CHECK(flushed.has_value(), flushed.error().ToString());
    }
  }
  auto finished = writer.Finish();
  FUZZ_CHECK(finished.has_value(), finished.error().ToString());
  FUZZ_CHECK(memory->closed(), "sink not closed");
  if (!plain) return 0;

  const std::vector<ColumnSpec>& names = writer.columns().columns();
  // A record of one empty cell is an empty line, which readers skip: nothing to compare.
  if (names.size() == 1) return 0;
  // A leading byte order mark in the first column's name is dropped by readers.
  if (!names.empty() && names[0].name.rfind("\xEF\xBB\xBF", 0) == 0) return 0;

  std::istringstream input(memory->Snapshot());
  cli::CsvReader reader(input);
  std::vector<std::string> fields;
  auto header = reader.Next(fields);
  FUZZ_CHECK(header.has_value(), header.error().message);
  if (names.empty()) {
    // No columns at all: every record is empty.
    return 0;
  }
  FUZZ_CHECK(*header, "no header record");
  FUZZ_CHECK(fields.size() == names.size(), "header width");
  for (std::size_t i = 0; i < names.size(); ++i) {
    FUZZ_CHECK(fields[i] == names[i].name, "header cell " + std::to_string(i));
  }
  for (std::size_t r = 0; r < accepted.size(); ++r) {
    auto next = reader.Next(fields);
    FUZZ_CHECK(next.has_value(), next.error().message);
    FUZZ_CHECK(*next, "missing record " + std::to_string(r));
    FUZZ_CHECK(fields.size() == names.size(),
               "record width " + std::to_string(r) + " in file:\n" + memory->Snapshot());
    for (std::size_t c = 0; c < names.size(); ++c) {
      const Json* value = accepted[r].if_contains(names[c].name);
      if (value == nullptr || value->is_null()) {
        FUZZ_CHECK(fields[c].empty(), "null cell not empty");
      } else if (value->is_string()) {
        FUZZ_CHECK(fields[c] == std::string(value->as_string()), "string cell changed");
      } else if (value->is_bool()) {
        FUZZ_CHECK(fields[c] == (value->as_bool() ? "true" : "false"), "boolean cell");
      } else if (value->is_int64()) {
        FUZZ_CHECK(fields[c] == std::to_string(value->as_int64()), "integer cell");
      } else if (value->is_uint64()) {
        FUZZ_CHECK(fields[c] == std::to_string(value->as_uint64()), "integer cell");
      }
    }
  }
  auto end = reader.Next(fields);
  FUZZ_CHECK(end.has_value() && !*end, "records after the last row");
  return 0;
}
