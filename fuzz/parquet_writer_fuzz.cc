// Fuzzes the Parquet writer with random rows, declared column types, options and flushes.
// No crash; a rejected row changes nothing; every published snapshot is a self-consistent
// file: "PAR1" at both ends, a footer that decodes as Thrift, num_rows equal to the rows
// accepted so far (and to the sum of the row groups), every column chunk inside the body.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/parquet_writer.h"
#include "fuzz_util.h"
#include "parquet_footer.h"

using namespace s3db;
using namespace s3db::formats;

namespace {

void CheckFile(const std::string& file, std::int64_t expected_rows) {
  FUZZ_CHECK(file.size() >= 12, "file too short");
  FUZZ_CHECK(file.compare(0, 4, "PAR1") == 0, "no leading magic");
  FUZZ_CHECK(file.compare(file.size() - 4, 4, "PAR1") == 0, "no trailing magic");
  std::uint32_t footer_length;
  std::memcpy(&footer_length, file.data() + file.size() - 8, 4);  // little-endian host
  FUZZ_CHECK(footer_length <= file.size() - 12, "footer length out of range");
  std::size_t footer_start = file.size() - 8 - footer_length;
  std::string_view footer(file.data() + footer_start, footer_length);
  fuzz::ThriftReader reader(footer);
  fuzz::ThriftValue metadata;
  FUZZ_CHECK(reader.ReadStruct(metadata), "footer does not decode");
  FUZZ_CHECK(reader.position() == footer.size(), "bytes after the footer struct");
  FUZZ_CHECK(metadata.fields.count(2) && metadata.fields.count(3) && metadata.fields.count(4),
             "FileMetaData lacks schema, num_rows or row_groups");
  FUZZ_CHECK(metadata.fields[3].integer == expected_rows,
             "num_rows " + std::to_string(metadata.fields[3].integer) + " != " +
                 std::to_string(expected_rows));
  std::size_t leaf_columns = 0;
  for (const auto& element : metadata.fields[2].elements) {
    if (!element.fields.count(5)) ++leaf_columns;  // no num_children: a leaf
  }
  std::int64_t sum = 0;
  for (const auto& group : metadata.fields[4].elements) {
    FUZZ_CHECK(group.fields.count(1) && group.fields.count(3), "row group lacks columns/rows");
    sum += group.fields.at(3).integer;
    FUZZ_CHECK(group.fields.at(1).elements.size() == leaf_columns, "chunks != leaf columns");
    for (const auto& chunk : group.fields.at(1).elements) {
      FUZZ_CHECK(chunk.fields.count(3), "column chunk without metadata");
      const auto& meta = chunk.fields.at(3).fields;
      FUZZ_CHECK(meta.count(7) && meta.count(9), "chunk lacks size or data page offset");
      std::int64_t start = meta.at(9).integer;
      if (meta.count(11)) start = std::min(start, meta.at(11).integer);
      std::int64_t end = start + meta.at(7).integer;
      FUZZ_CHECK(start >= 4 && end <= static_cast<std::int64_t>(footer_start),
                 "column chunk outside the body");
    }
  }
  FUZZ_CHECK(sum == expected_rows, "row groups do not add up to num_rows");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  ParquetOptions options;
  static const Codec kCodecs[] = {Codec::kNone, Codec::kSnappy, Codec::kGzip, Codec::kZstd,
                                  Codec::kLz4Raw};
  options.compression = kCodecs[data.ConsumeIntegralInRange<int>(0, 4)];
  options.row_group_size = data.ConsumeIntegralInRange<std::size_t>(1, 16);
  options.page_size = data.ConsumeIntegralInRange<std::size_t>(1, 4096);
  options.dictionary_size_limit = data.ConsumeIntegralInRange<std::size_t>(0, 4096);
  options.dictionary = data.ConsumeBool();

  static const ColumnType kTypes[] = {ColumnType::kAny,     ColumnType::kString,
                                      ColumnType::kInteger, ColumnType::kNumber,
                                      ColumnType::kBoolean, ColumnType::kDatetime,
                                      ColumnType::kArray,   ColumnType::kJson};
  std::vector<ColumnSpec> declared;
  static const char* const kDeclared[] = {"id", "age", "tags", "at"};
  for (const char* name : kDeclared) {
    if (data.ConsumeBool()) declared.push_back({name, kTypes[data.ConsumeIntegralInRange(0, 7)]});
  }
  auto columns = ColumnSet::Make(declared);
  FUZZ_CHECK(columns.has_value(), "declared columns");

  std::int64_t accepted = 0;
  auto sink = std::make_unique<MemoryByteSink>([&](std::string_view object) -> Status {
    CheckFile(std::string(object), accepted);
    return Ok();
  });
  MemoryByteSink* memory = sink.get();
  auto made = ParquetWriter::Make(*columns, options, std::move(sink));
  if (!made) {
    FUZZ_CHECK(made.error().code == ErrorCode::kInvalidArgument, made.error().ToString());
    return 0;
  }
  ParquetWriter& writer = **made;

  int rows = data.ConsumeIntegralInRange<int>(0, 48);
  for (int i = 0; i < rows && data.remaining_bytes() > 0; ++i) {
    JsonObject row = fuzz::Row(data);
    std::size_t columns_before = writer.columns().size();
    auto added = writer.Add(row);
    if (added) {
      ++accepted;
    } else {
      FUZZ_CHECK(added.error().code == ErrorCode::kInvalidArgument, added.error().ToString());
      FUZZ_CHECK(writer.columns().size() == columns_before, "a rejected row added columns");
    }
    if (data.ConsumeIntegralInRange<int>(0, 9) == 0) {
      auto flushed = writer.Flush();
      FUZZ_CHECK(flushed.has_value(), flushed.error().ToString());
    }
  }
  auto finished = writer.Finish();
  FUZZ_CHECK(finished.has_value(), finished.error().ToString());
  FUZZ_CHECK(memory->closed(), "sink not closed");
  CheckFile(memory->Snapshot(), accepted);
  return 0;
}
