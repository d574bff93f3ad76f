// CSV and JSONL files read back by DuckDB (the validator in PEERS.md, @duckdb/node-api through
// tests/formats/read_parquet.mjs): every attribute type of a resource schema (integers beyond
// 2^53 keep every digit), a record of 200 fields, and a 1 MiB string. Plus the CSV writer's
// sticky error.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/csv_writer.h"
#include "formats/record_writers.h"
#include "formats_test_util.h"
#include "s3db/schema.h"

namespace s3db::formats {
namespace {

JsonObject Row(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed) << json;
  return parsed ? *parsed : JsonObject();
}

// The columns of a resource with one attribute of every type (and a nested object).
ColumnSet EveryTypeColumns() {
  auto schema = Schema::Parse(Row(R"({
      "name": "string", "email": "email", "site": "url", "uid": "uuid", "score": "number",
      "count": "integer", "ok": "boolean", "at": "datetime", "tags": "array",
      "meta": "object", "doc": "json", "anything": "any",
      "address": {"city": "string", "zip": "integer"}})"));
  EXPECT_TRUE(schema) << schema.error().message;
  std::vector<ColumnSpec> declared{{"id", ColumnType::kString}};
  ColumnSet from_schema = ColumnSet::FromSchema(*schema);
  for (const ColumnSpec& spec : from_schema.columns()) declared.push_back(spec);
  auto columns = ColumnSet::Make(std::move(declared));
  EXPECT_TRUE(columns);
  return columns ? std::move(*columns) : ColumnSet();
}

// name (with an emoji and a combining mark), 2^53 + 1, 2^64 - 1 and -(2^63 - 1), nested values.
const char* kEveryTypeRow = R"({
    "id": "r1", "name": "Zoe\u0308 \u00f1 \ud83d\ude00, \"quoted\"\nline",
    "email": "a@b.co", "site": "https://x.example/?q=1,2", "uid":
    "550e8400-e29b-41d4-a716-446655440000", "score": 0.1, "count": 9007199254740993,
    "ok": true, "at": "2025-10-20T23:30:00.123Z", "tags": ["a", 1, null],
    "meta": {"k": "v", "n": 12345678901234567890}, "doc": {"deep": [1, {"x": null}]},
    "anything": 18446744073709551615, "address": {"city": "Paris", "zip": 75001},
    "neg": -9223372036854775807})";

// What DuckDB gives back for kEveryTypeRow, column by column, as text.
std::vector<std::pair<std::string, std::string>> EveryTypeExpected() {
  return {{"id", "r1"},
          {"name", "Zo\x65\xCC\x88 \xC3\xB1 \xF0\x9F\x98\x80, \"quoted\"\nline"},
          {"email", "a@b.co"},
          {"site", "https://x.example/?q=1,2"},
          {"uid", "550e8400-e29b-41d4-a716-446655440000"},
          {"score", "0.1"},
          {"count", "9007199254740993"},
          {"ok", "true"},
          {"at", "2025-10-20T23:30:00.123Z"},
          {"tags", R"(["a",1,null])"},
          {"meta", R"({"k":"v","n":12345678901234567890})"},
          {"doc", R"({"deep":[1,{"x":null}]})"},
          {"anything", "18446744073709551615"},
          {"address", R"({"city":"Paris","zip":75001})"},
          {"neg", "-9223372036854775807"}};
}

// A pattern with a delimiter, quotes, a newline and multi-byte characters, repeated past 1 MiB.
constexpr std::string_view kPattern = "ab,\"c\"\n\xE2\x82\xAC\xF0\x9F\x98\x80 ";
constexpr int kPatternRepeats = 69906;  // 15 bytes each: 1,048,590 bytes

std::string WriteFile(FileFormat format, const std::string& path, ColumnSet columns,
                      const std::vector<JsonObject>& rows) {
  auto sink = FileByteSink::Open(path);
  EXPECT_TRUE(sink);
  if (!sink) return path;
  auto writer = MakeRecordWriter(format, std::move(columns), JsonObject(), std::move(*sink));
  EXPECT_TRUE(writer) << writer.error().message;
  if (!writer) return path;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto added = (*writer)->Add(rows[i]);
    EXPECT_TRUE(added) << added.error().message;
    if (i == 0) EXPECT_TRUE((*writer)->Flush());  // the later rows after a flush
  }
  auto finished = (*writer)->Finish();
  EXPECT_TRUE(finished) << finished.error().message;
  return path;
}

std::string Text(const Json& value) {
  if (value.is_null()) return "<null>";
  if (value.is_string()) return std::string(value.get_string());
  return ToJson(value);
}

TEST(DuckDbReadBack, CsvAndJsonlKeepEveryAttributeTypeWideRecordsAndLongStrings) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;

  JsonObject wide;
  wide["id"] = "w1";
  for (int i = 0; i < 200; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "f%03d", i);
    if (i % 2 == 0) {
      wide[name] = "value " + std::to_string(i);
    } else {
      wide[name] = std::int64_t{9007199254740993} + i;
    }
  }
  std::string long_text;
  for (int i = 0; i < kPatternRepeats; ++i) long_text += kPattern;
  JsonObject long_row;
  long_row["id"] = "l1";
  long_row["text"] = long_text;
  long_row["after"] = "end";

  std::string long_check = "(SELECT text = repeat('" + std::string(kPattern) + "', " +
                           std::to_string(kPatternRepeats) + ") AND strlen(text) = " +
                           std::to_string(kPatternRepeats * kPattern.size()) +
                           " AND after = 'end' FROM ";
  std::vector<testing::ReaderJob> jobs;
  for (FileFormat format : {FileFormat::kCsv, FileFormat::kJsonl}) {
    bool csv = format == FileFormat::kCsv;
    std::string ext = csv ? ".csv" : ".jsonl";
    std::string types = WriteFile(format, folder.File("types" + ext), EveryTypeColumns(),
                                  {Row(kEveryTypeRow), Row(R"({"id": "r2", "count": null})")});
    std::string wide_file = WriteFile(format, folder.File("wide" + ext), ColumnSet(),
                                      {Row(R"({"id": "w0"})"), wide});
    std::string long_file = WriteFile(format, folder.File("long" + ext), ColumnSet(),
                                      {Row(R"({"id": "l0"})"), long_row});
    if (csv) {
      // Every cell as DuckDB's CSV reader gives it back as text.
      jobs.push_back({"duckdb-sql", types,
                      "SELECT * FROM read_csv($FILE, header=true, all_varchar=true) ORDER BY id"});
      jobs.push_back({"duckdb-sql", wide_file,
                      "SELECT * FROM read_csv($FILE, header=true, all_varchar=true) "
                      "WHERE id = 'w1'"});
      jobs.push_back({"duckdb-sql", long_file,
                      "SELECT " + long_check +
                          "read_csv($FILE, header=true, all_varchar=true, "
                          "max_line_size=4000000) WHERE id = 'l1') AS same"});
    } else {
      // Each value's JSON as DuckDB parses it (strings unescaped, numbers and nested values
      // as JSON text, so every digit shows), and the typed integer compared exactly.
      std::string select = "SELECT ";
      for (const auto& [column, expected] : EveryTypeExpected()) {
        select += (column == "id" ? "" : ", ") +
                  std::string("coalesce(json_extract_string(json, '$.") + column +
                  "'), '<null>') AS \"" + column + "\"";
      }
      jobs.push_back({"duckdb-sql", types,
                      select + " FROM read_ndjson_objects($FILE) ORDER BY 1"});
      jobs.push_back({"duckdb-sql", types,
                      "SELECT count = 9007199254740993 AS exact, typeof(count) AS type, "
                      "anything = 18446744073709551615::UBIGINT AS exact_u64 FROM "
                      "read_json($FILE, format='newline_delimited') WHERE id = 'r1'"});
      jobs.push_back({"duckdb-sql", wide_file,
                      "SELECT * FROM read_json($FILE, format='newline_delimited') "
                      "WHERE id = 'w1'"});
      jobs.push_back({"duckdb-sql", long_file,
                      "SELECT " + long_check +
                          "read_json($FILE, format='newline_delimited') WHERE id = 'l1') AS same"});
    }
  }
  std::vector<Json> results = testing::RunReaders(readers, jobs, folder.File("jobs.json"));
  ASSERT_EQ(results.size(), 7u);
  for (const Json& result : results) ASSERT_TRUE(result.is_array()) << ToJson(result);

  // CSV: every type.
  const auto& csv_types = results[0].as_array();
  ASSERT_EQ(csv_types.size(), 2u);
  for (const auto& [column, expected] : EveryTypeExpected()) {
    EXPECT_EQ(Text(csv_types[0].at(column)), expected) << "csv column " << column;
  }
  EXPECT_EQ(Text(csv_types[1].at("count")), "<null>");
  EXPECT_EQ(Text(csv_types[1].at("name")), "<null>");
  // CSV: 200 fields (plus id), in order, every digit.
  const auto& csv_wide = results[1].as_array();
  ASSERT_EQ(csv_wide.size(), 1u);
  ASSERT_EQ(csv_wide[0].as_object().size(), 201u);
  EXPECT_EQ(Text(csv_wide[0].at("f000")), "value 0");
  EXPECT_EQ(Text(csv_wide[0].at("f199")), "9007199254741192");
  EXPECT_EQ(Text(csv_wide[0].at("f198")), "value 198");
  // CSV: the 1 MiB string, byte for byte.
  ASSERT_EQ(results[2].as_array().size(), 1u);
  EXPECT_EQ(results[2].as_array()[0].at("same"), Json(true));

  // JSONL: every type.
  const auto& jsonl_types = results[3].as_array();
  ASSERT_EQ(jsonl_types.size(), 2u);
  for (const auto& [column, expected] : EveryTypeExpected()) {
    EXPECT_EQ(Text(jsonl_types[0].at(column)), expected) << "jsonl column " << column;
  }
  EXPECT_EQ(Text(jsonl_types[1].at("count")), "<null>");
  const auto& typed = results[4].as_array();
  ASSERT_EQ(typed.size(), 1u);
  EXPECT_EQ(typed[0].at("exact"), Json(true));
  EXPECT_EQ(typed[0].at("type"), Json("BIGINT"));
  EXPECT_EQ(typed[0].at("exact_u64"), Json(true));
  const auto& jsonl_wide = results[5].as_array();
  ASSERT_EQ(jsonl_wide.size(), 1u);
  ASSERT_EQ(jsonl_wide[0].as_object().size(), 201u);
  EXPECT_EQ(Text(jsonl_wide[0].at("f000")), "value 0");
  EXPECT_EQ(Text(jsonl_wide[0].at("f199")), "9007199254741192");
  ASSERT_EQ(results[6].as_array().size(), 1u);
  EXPECT_EQ(results[6].as_array()[0].at("same"), Json(true));
}

TEST(CsvWriter, FirstErrorSticksAndEveryLaterCallReturnsIt) {
  int attempts = 0;
  auto sink = std::make_unique<MemoryByteSink>([&](std::string_view) -> Status {
    ++attempts;
    return MakeError(ErrorCode::kUnavailable, "upload users.csv: 503 Slow Down");
  });
  auto writer = CsvWriter::Make(ColumnSet(), CsvOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Add(Row(R"({"a": 1})")));
  auto flushed = (*writer)->Flush();
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(flushed.error().message, "upload users.csv: 503 Slow Down");
  // Every later call fails with that same error, and none reaches the sink again: a row, a
  // row with a new column (which would rewrite the header), a flush, and the finish.
  for (const char* row : {R"({"a": 2})", R"({"b": "new column"})"}) {
    auto added = (*writer)->Add(Row(row));
    ASSERT_FALSE(added) << row;
    EXPECT_EQ(added.error().code, ErrorCode::kUnavailable);
    EXPECT_EQ(added.error().message, "upload users.csv: 503 Slow Down");
  }
  auto again = (*writer)->Flush();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "upload users.csv: 503 Slow Down");
  auto finished = (*writer)->Finish();
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.error().message, "upload users.csv: 503 Slow Down");
  EXPECT_EQ(attempts, 1);
  (*writer)->Abandon();  // never fails
}

TEST(CsvWriter, AFailedAppendSticksToo) {
  // A sink that refuses its first append (a full disk): the writer keeps that error.
  class FullDisk final : public MemoryByteSink {
   public:
    Status Append(std::string_view) override {
      ++appends;
      return MakeError(ErrorCode::kIo, "write /exports/users.csv.tmp: No space left on device");
    }
    int appends = 0;
  };
  auto owned = std::make_unique<FullDisk>();
  FullDisk* sink = owned.get();
  auto writer = CsvWriter::Make(ColumnSet(), CsvOptions(), std::move(owned));
  ASSERT_TRUE(writer);
  Status first = (*writer)->Add(Row(R"({"a": 1})"));
  if (first) first = (*writer)->Flush();  // the writer may buffer until the flush
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, ErrorCode::kIo);
  int appends = sink->appends;
  EXPECT_EQ((*writer)->Add(Row(R"({"a": 2})")).error().message, first.error().message);
  EXPECT_EQ((*writer)->Flush().error().message, first.error().message);
  EXPECT_EQ((*writer)->Finish().error().message, first.error().message);
  EXPECT_EQ(sink->appends, appends);
}

}  // namespace
}  // namespace s3db::formats
