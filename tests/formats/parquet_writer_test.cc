// Parquet writer tests. Files are read back by the real readers (DuckDB and hyparquet, from
// npm) through tests/formats/read_parquet.mjs; see formats_test_util.h for how they are found.
#include "formats/parquet_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/json_text.h"
#include "formats_test_util.h"

namespace s3db::formats {
namespace {

using testing::RunReader;

JsonObject Row(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed) << json;
  return parsed ? *parsed : JsonObject();
}

ColumnSet Columns(std::vector<ColumnSpec> declared) {
  auto columns = ColumnSet::Make(std::move(declared));
  EXPECT_TRUE(columns);
  return columns ? std::move(*columns) : ColumnSet();
}

// Writes `rows` to `path` and finishes the file; returns the writer for inspection.
std::unique_ptr<ParquetWriter> WriteFile(const std::string& path, ColumnSet columns,
                                         const std::vector<JsonObject>& rows,
                                         ParquetOptions options = {}) {
  auto sink = FileByteSink::Open(path);
  EXPECT_TRUE(sink) << sink.error().message;
  if (!sink) return nullptr;
  auto writer = ParquetWriter::Make(std::move(columns), options, std::move(*sink));
  EXPECT_TRUE(writer) << writer.error().message;
  if (!writer) return nullptr;
  for (const JsonObject& row : rows) {
    auto added = (*writer)->Add(row);
    EXPECT_TRUE(added) << added.error().message;
  }
  auto finished = (*writer)->Finish();
  EXPECT_TRUE(finished) << finished.error().message;
  return std::move(*writer);
}

JsonArray Rows(const Json& result) {
  if (!result.is_array()) {
    ADD_FAILURE() << "reader output is not an array: " << JsonText(result);
    return JsonArray();
  }
  return result.get_array();
}

Json Field(const Json& row, std::string_view name) {
  if (!row.is_object()) return nullptr;
  const Json* value = row.get_object().if_contains(name);
  if (value == nullptr) {
    ADD_FAILURE() << "no field " << name << " in " << JsonText(row);
    return nullptr;
  }
  return *value;
}

Json J(std::string_view text) {
  auto parsed = ParseJson(text);
  EXPECT_TRUE(parsed) << text;
  return parsed ? *parsed : Json();
}

// Metadata rows of row group 0, by column path.
std::map<std::string, Json> ChunkMetadata(const testing::ParquetReaders& readers,
                                          const std::string& path, int row_group = 0) {
  Json result = RunReader(readers, "duckdb-sql", path,
                          "SELECT path_in_schema, type, encodings, compression, stats_min_value, "
                          "stats_max_value, stats_null_count, num_values, dictionary_page_offset "
                          "FROM parquet_metadata($FILE) WHERE row_group_id = " +
                              std::to_string(row_group));
  std::map<std::string, Json> by_path;
  for (const Json& row : Rows(result)) {
    by_path[std::string(row.at("path_in_schema").as_string())] = row;
  }
  return by_path;
}

TEST(ParquetWriter, EveryTypeRoundTripsThroughDuckDbAndHyparquet) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("types.parquet");
  ColumnSet columns = Columns({{"id", ColumnType::kString},
                               {"count", ColumnType::kInteger},
                               {"price", ColumnType::kNumber},
                               {"active", ColumnType::kBoolean},
                               {"at", ColumnType::kDatetime},
                               {"tags", ColumnType::kArray},
                               {"meta", ColumnType::kJson}});
  std::vector<JsonObject> rows = {
      Row(R"({"id":"a","count":1,"price":9.5,"active":true,"at":"2024-01-02T03:04:05.123456Z",)"
          R"("tags":["x","y"],"meta":{"k":[1,2]},"note":"hello","n":5,"ratio":1,)"
          R"("flags":[true,false],"payload":{"a":1},"mixed":"s"})"),
      Row(R"({"id":"b","count":-7,"price":0,"active":false,"at":"2024-06-30T23:59:59+02:00",)"
          R"("tags":[],"meta":"text","note":"","n":-9223372036854775808,"ratio":2.5,)"
          R"("flags":[null],"payload":{"b":[true]},"mixed":42})"),
      Row(R"({"id":"c","count":null,"tags":null})"),
  };
  auto writer = WriteFile(path, std::move(columns), rows);
  ASSERT_NE(writer, nullptr);
  std::vector<std::string> types;
  for (std::size_t c = 0; c < writer->columns().size(); ++c) {
    types.push_back(writer->columns()[c].name + ":" + writer->ColumnTypeDescription(c));
  }
  EXPECT_EQ(types, (std::vector<std::string>{
                       "id:string", "count:int64", "price:double", "active:boolean", "at:timestamp",
                       "tags:list<string>", "meta:json", "note:string", "n:int64", "ratio:double",
                       "flags:list<boolean>", "payload:json", "mixed:string"}));

  Json duck =
      RunReader(readers, "duckdb-sql", path,
                R"(SELECT * EXCLUDE ("at"), epoch_us("at") AS at_us FROM read_parquet($FILE))");
  const JsonArray& d = Rows(duck);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(Field(d[0], "id"), "a");
  EXPECT_EQ(Field(d[0], "count"), "1");
  EXPECT_EQ(Field(d[0], "price"), J("9.5"));
  EXPECT_EQ(Field(d[0], "active"), true);
  EXPECT_EQ(Field(d[0], "at_us"), "1704164645123456");
  EXPECT_EQ(Field(d[0], "tags"), J(R"(["x","y"])"));
  EXPECT_EQ(Field(d[0], "meta"), R"({"k":[1,2]})");
  EXPECT_EQ(Field(d[0], "note"), "hello");
  EXPECT_EQ(Field(d[0], "n"), "5");
  EXPECT_EQ(Field(d[0], "ratio").to_number<double>(), 1.0);
  EXPECT_EQ(Field(d[0], "flags"), J("[true,false]"));
  EXPECT_EQ(Field(d[0], "payload"), R"({"a":1})");
  EXPECT_EQ(Field(d[0], "mixed"), "s");

  EXPECT_EQ(Field(d[1], "count"), "-7");
  EXPECT_EQ(Field(d[1], "price").to_number<double>(), 0.0);
  EXPECT_EQ(Field(d[1], "active"), false);
  EXPECT_EQ(Field(d[1], "at_us"), "1719784799000000");
  EXPECT_EQ(Field(d[1], "tags"), J("[]"));
  EXPECT_EQ(Field(d[1], "meta"), "\"text\"");
  EXPECT_EQ(Field(d[1], "note"), "");
  EXPECT_EQ(Field(d[1], "n"), "-9223372036854775808");
  EXPECT_EQ(Field(d[1], "ratio"), J("2.5"));
  EXPECT_EQ(Field(d[1], "flags"), J("[null]"));
  EXPECT_EQ(Field(d[1], "mixed"), "42");

  for (const char* name : {"count", "price", "active", "at_us", "tags", "meta", "note", "n",
                           "ratio", "flags", "payload", "mixed"}) {
    EXPECT_TRUE(Field(d[2], name).is_null()) << name;
  }

  Json hyper = RunReader(readers, "hyparquet-rows", path);
  const JsonArray& h = Rows(hyper);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(Field(h[0], "count"), 1);
  EXPECT_EQ(Field(h[0], "at"), "2024-01-02T03:04:05.123Z");  // JS Date: milliseconds
  EXPECT_EQ(Field(h[0], "tags"), J(R"(["x","y"])"));
  EXPECT_EQ(Field(h[0], "meta"), J(R"({"k":[1,2]})"));
  EXPECT_EQ(Field(h[0], "payload"), J(R"({"a":1})"));
  EXPECT_EQ(Field(h[1], "n"), J("-9223372036854775808"));
  EXPECT_EQ(Field(h[1], "meta"), "text");
  EXPECT_EQ(Field(h[1], "at"), "2024-06-30T21:59:59.000Z");
  EXPECT_TRUE(Field(h[2], "count").is_null());
  EXPECT_TRUE(Field(h[2], "tags").is_null());

  Json schema = RunReader(readers, "duckdb-sql", path,
                          "SELECT name, type, converted_type FROM parquet_schema($FILE)");
  std::map<std::string, std::string> converted;
  for (const Json& element : Rows(schema)) {
    const Json& type = element.at("converted_type");
    converted[std::string(element.at("name").as_string())] =
        type.is_string() ? std::string(type.as_string()) : "";
  }
  EXPECT_EQ(converted["at"], "TIMESTAMP_MICROS");
  EXPECT_EQ(converted["meta"], "JSON");
  EXPECT_EQ(converted["tags"], "LIST");
  EXPECT_EQ(converted["id"], "UTF8");
}

TEST(ParquetWriter, KeepsEveryDigitOfInt64ExtremesAndUint64Max) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("ints.parquet");
  std::vector<JsonObject> rows = {
      Row(R"({"i":-9223372036854775808,"u":18446744073709551615,"near":9007199254740993})"),
      Row(R"({"i":9223372036854775807,"u":1,"near":-9007199254740993})"),
      Row(R"({"i":0,"u":9223372036854775808,"near":0})"),
  };
  auto writer = WriteFile(path, Columns({{"i", ColumnType::kInteger}}), rows);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->ColumnTypeDescription(1), "string");  // u: a uint64 above 2^63-1
  EXPECT_EQ(writer->ColumnTypeDescription(2), "int64");

  const JsonArray& d = Rows(RunReader(readers, "duckdb-rows", path));
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(Field(d[0], "i"), "-9223372036854775808");
  EXPECT_EQ(Field(d[1], "i"), "9223372036854775807");
  EXPECT_EQ(Field(d[0], "u"), "18446744073709551615");
  EXPECT_EQ(Field(d[1], "u"), "1");
  EXPECT_EQ(Field(d[2], "u"), "9223372036854775808");
  EXPECT_EQ(Field(d[0], "near"), "9007199254740993");
  EXPECT_EQ(Field(d[1], "near"), "-9007199254740993");

  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(Field(h[0], "i"), Json(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(Field(h[1], "i"), Json(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(Field(h[0], "near"), Json(std::int64_t{9007199254740993}));
  EXPECT_EQ(Field(h[0], "u"), "18446744073709551615");

  auto stats = ChunkMetadata(readers, path);
  EXPECT_EQ(stats["i"].at("stats_min_value"), "-9223372036854775808");
  EXPECT_EQ(stats["i"].at("stats_max_value"), "9223372036854775807");
}

TEST(ParquetWriter, NullsAndMissingFieldsReadAsNull) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("nulls.parquet");
  std::vector<JsonObject> rows = {Row(R"({"a":1,"b":"x"})"), Row(R"({"a":null})"),
                                  Row(R"({"b":null,"c":true})"), Row(R"({})")};
  auto writer = WriteFile(path, Columns({{"declared_never_seen", ColumnType::kAny}}), rows);
  ASSERT_NE(writer, nullptr);
  const JsonArray& d = Rows(RunReader(readers, "duckdb-rows", path));
  ASSERT_EQ(d.size(), 4u);
  EXPECT_TRUE(Field(d[0], "declared_never_seen").is_null());
  EXPECT_EQ(Field(d[0], "a"), "1");
  EXPECT_TRUE(Field(d[1], "a").is_null());
  EXPECT_TRUE(Field(d[1], "b").is_null());
  EXPECT_EQ(Field(d[2], "c"), true);
  EXPECT_TRUE(Field(d[3], "a").is_null());
  EXPECT_TRUE(Field(d[3], "c").is_null());
  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(h.size(), 4u);
  EXPECT_TRUE(Field(h[3], "b").is_null());
  EXPECT_EQ(Field(h[0], "b"), "x");

  auto stats = ChunkMetadata(readers, path);
  EXPECT_EQ(stats["a"].at("stats_null_count"), "3");
  EXPECT_EQ(stats["declared_never_seen"].at("stats_null_count"), "4");
}

TEST(ParquetWriter, UnicodeControlCharactersQuotesAndNewlinesRoundTrip) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("text.parquet");
  std::vector<std::string> texts = {
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",
      "combining e\xCC\x81 a\xCC\x8A\xCC\x81",
      "cjk \xE4\xB8\xAD\xE6\x96\x87 rtl \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",
      std::string("controls \x01\x02\x1f\x7f tab\t nul-free"),  // 27 bytes
      "quotes \"double\" 'single' `back`",
      "new\nlines\r\nand\rreturns",
      "",
  };
  std::vector<JsonObject> rows;
  for (const std::string& text : texts) {
    JsonObject row;
    row["s"] = text;
    rows.push_back(row);
  }
  ASSERT_NE(WriteFile(path, Columns({}), rows), nullptr);
  const JsonArray& d = Rows(RunReader(readers, "duckdb-rows", path));
  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(d.size(), texts.size());
  ASSERT_EQ(h.size(), texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(Field(d[i], "s"), Json(texts[i])) << i;
    EXPECT_EQ(Field(h[i], "s"), Json(texts[i])) << i;
  }
}

TEST(ParquetWriter, VeryLongStringsUsePlainPagesAndSkipMinMax) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("long.parquet");
  std::vector<JsonObject> rows;
  for (int i = 0; i < 30; ++i) {
    JsonObject row;
    std::string text(100 * 1024, static_cast<char>('a' + i % 26));
    text += std::to_string(i);
    row["big"] = text;
    row["i"] = i;
    rows.push_back(row);
  }
  ParquetOptions options;
  options.compression = Codec::kZstd;
  ASSERT_NE(WriteFile(path, Columns({}), rows, options), nullptr);
  Json lengths = RunReader(readers, "duckdb-sql", path,
                           "SELECT i, length(big) AS n, big = repeat(chr(97 + (i % 26)::INT), "
                           "102400) || i::VARCHAR AS same FROM read_parquet($FILE)");
  const JsonArray& d = Rows(lengths);
  ASSERT_EQ(d.size(), 30u);
  for (const Json& row : d) {
    EXPECT_EQ(Field(row, "same"), true) << JsonText(row);
  }
  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(h.size(), 30u);
  EXPECT_EQ(Field(h[29], "big"), rows[29]["big"]);
  auto stats = ChunkMetadata(readers, path);
  EXPECT_TRUE(stats["big"].at("stats_min_value").is_null());
  EXPECT_EQ(stats["big"].at("stats_null_count"), "0");
  EXPECT_EQ(stats["big"].at("encodings"), "PLAIN, RLE");
}

TEST(ParquetWriter, WritesOverAThousandColumns) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("wide.parquet");
  constexpr int kColumns = 1200;
  std::vector<JsonObject> rows;
  for (int r = 0; r < 5; ++r) {
    JsonObject row;
    for (int c = 0; c < kColumns; ++c) {
      if ((c + r) % 7 == 0) continue;  // some missing fields
      if (c % 3 == 0) {
        row["c" + std::to_string(c)] = c * 1000 + r;
      } else if (c % 3 == 1) {
        row["c" + std::to_string(c)] = "v" + std::to_string(r);
      } else {
        row["c" + std::to_string(c)] = r % 2 == 0;
      }
    }
    rows.push_back(row);
  }
  auto writer = WriteFile(path, Columns({}), rows);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->columns().size(), static_cast<std::size_t>(kColumns));
  Json count =
      RunReader(readers, "duckdb-sql", path, "SELECT count(*) AS n FROM parquet_schema($FILE)");
  EXPECT_EQ(Field(Rows(count).at(0), "n"), Json(std::to_string(kColumns + 1)));
  const JsonArray& d = Rows(RunReader(readers, "duckdb-rows", path));
  ASSERT_EQ(d.size(), 5u);
  for (int r = 0; r < 5; ++r) {
    for (int c : {0, 1, 2, 600, 1197, 1198, 1199}) {
      std::string name = "c" + std::to_string(c);
      Json value = Field(d[r], name);
      if ((c + r) % 7 == 0) {
        EXPECT_TRUE(value.is_null()) << name;
      } else if (c % 3 == 0) {
        EXPECT_EQ(value, Json(std::to_string(c * 1000 + r))) << name;
      } else if (c % 3 == 1) {
        EXPECT_EQ(value, Json("v" + std::to_string(r))) << name;
      } else {
        EXPECT_EQ(value, r % 2 == 0) << name;
      }
    }
  }
  EXPECT_EQ(Rows(RunReader(readers, "hyparquet-rows", path)).size(), 5u);
}

TEST(ParquetWriter, EveryCodecIsReadableByBothReaders) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::vector<JsonObject> rows;
  for (int i = 0; i < 500; ++i) {
    JsonObject row;
    row["i"] = i;
    row["group"] = "g" + std::to_string(i % 5);
    row["text"] = "row number " + std::to_string(i) + " with some repeated text text text";
    row["x"] = i * 0.25;
    rows.push_back(row);
  }
  const std::map<Codec, std::string> expected = {{Codec::kNone, "UNCOMPRESSED"},
                                                 {Codec::kSnappy, "SNAPPY"},
                                                 {Codec::kGzip, "GZIP"},
                                                 {Codec::kZstd, "ZSTD"},
                                                 {Codec::kLz4Raw, "LZ4_RAW"}};
  std::vector<testing::ReaderJob> jobs;
  for (const auto& [codec, name] : expected) {
    std::string path = folder.File(std::string(CodecName(codec)) + ".parquet");
    ParquetOptions options;
    options.compression = codec;
    options.row_group_size = 200;
    ASSERT_NE(WriteFile(path, Columns({}), rows, options), nullptr);
    jobs.push_back({"duckdb-sql", path,
                    "SELECT count(*) AS n, sum(i) AS s, sum(x) AS x, count(DISTINCT \"group\") "
                    "AS g, max(text) AS t FROM read_parquet($FILE)"});
    jobs.push_back(
        {"duckdb-sql", path, "SELECT DISTINCT compression FROM parquet_metadata($FILE)"});
    jobs.push_back({"hyparquet-rows", path, ""});
  }
  std::vector<Json> results = testing::RunReaders(readers, jobs, folder.File("jobs.json"));
  ASSERT_EQ(results.size(), jobs.size());
  std::size_t next = 0;
  for (const auto& [codec, name] : expected) {
    const JsonArray& d = Rows(results[next++]);
    ASSERT_EQ(d.size(), 1u) << name;
    EXPECT_EQ(Field(d[0], "n"), "500") << name;
    EXPECT_EQ(Field(d[0], "s"), "124750") << name;
    EXPECT_EQ(Field(d[0], "x").to_number<double>(), 31187.5) << name;
    EXPECT_EQ(Field(d[0], "g"), "5") << name;
    EXPECT_EQ(Field(d[0], "t"), "row number 99 with some repeated text text text") << name;
    const JsonArray& codecs = Rows(results[next++]);
    ASSERT_EQ(codecs.size(), 1u) << name;
    EXPECT_EQ(Field(codecs[0], "compression"), Json(name));
    const JsonArray& h = Rows(results[next++]);
    ASSERT_EQ(h.size(), 500u) << name;
    EXPECT_EQ(Field(h[499], "i"), 499) << name;
    EXPECT_EQ(Field(h[499], "group"), "g4") << name;
  }
}

TEST(ParquetWriter, SplitsRowsIntoRowGroupsOfTheConfiguredSize) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("groups.parquet");
  std::vector<JsonObject> rows;
  for (int i = 0; i < 1050; ++i) {
    JsonObject row;
    row["i"] = i;
    rows.push_back(row);
  }
  ParquetOptions options;
  options.row_group_size = 100;
  auto writer = WriteFile(path, Columns({}), rows, options);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->row_group_count(), 11u);
  Json groups = RunReader(readers, "duckdb-sql", path,
                          "SELECT row_group_id, row_group_num_rows, stats_min_value, "
                          "stats_max_value FROM parquet_metadata($FILE) ORDER BY row_group_id");
  const JsonArray& g = Rows(groups);
  ASSERT_EQ(g.size(), 11u);
  EXPECT_EQ(Field(g[0], "row_group_num_rows"), "100");
  EXPECT_EQ(Field(g[3], "stats_min_value"), "300");
  EXPECT_EQ(Field(g[3], "stats_max_value"), "399");
  EXPECT_EQ(Field(g[10], "row_group_num_rows"), "50");
  Json meta = RunReader(readers, "hyparquet-meta", path);
  EXPECT_EQ(meta.at("row_groups"), 11);
  EXPECT_EQ(meta.at("num_rows"), 1050);
  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(h.size(), 1050u);
  for (int i = 0; i < 1050; i += 149) EXPECT_EQ(Field(h[i], "i"), i);
}

TEST(ParquetWriter, UsesDictionaryPagesForRepeatedValuesAndPlainForUniqueOnes) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("dictionary.parquet");
  std::vector<JsonObject> rows;
  for (int i = 0; i < 3000; ++i) {
    JsonObject row;
    row["status"] = i % 3 == 0 ? "active" : (i % 3 == 1 ? "blocked" : "new");
    row["unique"] = "id-" + std::to_string(i);
    row["level"] = i % 4;
    row["score"] = (i % 2) * 0.5;
    rows.push_back(row);
  }
  ASSERT_NE(WriteFile(path, Columns({}), rows), nullptr);
  auto metadata = ChunkMetadata(readers, path);
  EXPECT_EQ(metadata["status"].at("encodings"), "PLAIN, RLE, RLE_DICTIONARY");
  EXPECT_FALSE(metadata["status"].at("dictionary_page_offset").is_null());
  EXPECT_EQ(metadata["level"].at("encodings"), "PLAIN, RLE, RLE_DICTIONARY");
  EXPECT_EQ(metadata["score"].at("encodings"), "PLAIN, RLE, RLE_DICTIONARY");
  EXPECT_EQ(metadata["unique"].at("encodings"), "PLAIN, RLE");
  EXPECT_TRUE(metadata["unique"].at("dictionary_page_offset").is_null());

  Json counts = RunReader(readers, "duckdb-sql", path,
                          "SELECT status, count(*) AS n, sum(level) AS l, sum(score) AS s "
                          "FROM read_parquet($FILE) GROUP BY status ORDER BY status");
  const JsonArray& d = Rows(counts);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(Field(d[0], "status"), "active");
  EXPECT_EQ(Field(d[0], "n"), "1000");
  EXPECT_EQ(Field(d[1], "status"), "blocked");
  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(h.size(), 3000u);
  EXPECT_EQ(Field(h[2999], "status"), "new");
  EXPECT_EQ(Field(h[2999], "unique"), "id-2999");
  EXPECT_EQ(Field(h[2998], "score").to_number<double>(), 0.0);
  EXPECT_EQ(Field(h[2997], "score").to_number<double>(), 0.5);

  ParquetOptions plain;
  plain.dictionary = false;
  std::string plain_path = folder.File("plain.parquet");
  ASSERT_NE(WriteFile(plain_path, Columns({}), rows, plain), nullptr);
  EXPECT_EQ(ChunkMetadata(readers, plain_path)["status"].at("encodings"), "PLAIN, RLE");
}

TEST(ParquetWriter, StatisticsAreVisibleInDuckDbMetadata) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("stats.parquet");
  std::vector<JsonObject> rows = {
      Row(R"({"n":5,"d":-0.5,"s":"pear","b":true,"t":"2024-01-01T00:00:00Z","l":[3,1]})"),
      Row(R"({"n":-2,"d":3.25,"s":"apple","b":true,"t":"2023-06-01T12:00:00Z","l":[]})"),
      Row(R"({"n":null,"d":null,"s":"\u00e9clair","b":null,"t":null,"l":[null,9]})"),
  };
  ASSERT_NE(WriteFile(path, Columns({{"t", ColumnType::kDatetime}}), rows), nullptr);
  auto stats = ChunkMetadata(readers, path);
  EXPECT_EQ(stats["n"].at("stats_min_value"), "-2");
  EXPECT_EQ(stats["n"].at("stats_max_value"), "5");
  EXPECT_EQ(stats["n"].at("stats_null_count"), "1");
  EXPECT_EQ(stats["d"].at("stats_min_value"), "-0.5");
  EXPECT_EQ(stats["d"].at("stats_max_value"), "3.25");
  EXPECT_EQ(stats["s"].at("stats_min_value"), "apple");
  EXPECT_EQ(stats["s"].at("stats_max_value"),
            "\xC3\xA9"
            "clair");  // bytewise order
  EXPECT_EQ(stats["s"].at("stats_null_count"), "0");
  EXPECT_EQ(stats["b"].at("stats_min_value"), "true");
  EXPECT_EQ(stats["b"].at("stats_null_count"), "1");
  EXPECT_EQ(stats["t"].at("stats_null_count"), "1");
  EXPECT_EQ(stats["l, list, element"].at("stats_min_value"), "1");
  EXPECT_EQ(stats["l, list, element"].at("stats_max_value"), "9");

  // Queries over the statistics' range give the right answers.
  Json filtered = RunReader(readers, "duckdb-sql", path,
                            "SELECT count(*) AS n FROM read_parquet($FILE) WHERE n > 100");
  EXPECT_EQ(Field(Rows(filtered).at(0), "n"), "0");
  Json range = RunReader(readers, "duckdb-sql", path,
                         "SELECT epoch_us(min(t)) AS lo, epoch_us(max(t)) AS hi "
                         "FROM read_parquet($FILE)");
  EXPECT_EQ(Field(Rows(range).at(0), "lo"), "1685620800000000");
  EXPECT_EQ(Field(Rows(range).at(0), "hi"), "1704067200000000");
}

TEST(ParquetWriter, ListsKeepEmptyListsNullListsAndNullElements) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("lists.parquet");
  std::vector<JsonObject> rows = {
      Row(R"({"l":[1,2,3],"s":["a"],"nested":[[1],[2,3]]})"),
      Row(R"({"l":[],"s":[],"nested":[]})"),
      Row(R"({"l":null,"s":[null,"b",null],"nested":[{"k":1}]})"),
      Row(R"({"s":["c","d"]})"),
  };
  auto writer = WriteFile(path, Columns({}), rows);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->ColumnTypeDescription(0), "list<int64>");
  EXPECT_EQ(writer->ColumnTypeDescription(2), "list<json>");
  const JsonArray& d = Rows(RunReader(readers, "duckdb-rows", path));
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(Field(d[0], "l"), J(R"(["1","2","3"])"));
  EXPECT_EQ(Field(d[1], "l"), J("[]"));
  EXPECT_TRUE(Field(d[2], "l").is_null());
  EXPECT_TRUE(Field(d[3], "l").is_null());
  EXPECT_EQ(Field(d[2], "s"), J(R"([null,"b",null])"));
  EXPECT_EQ(Field(d[3], "s"), J(R"(["c","d"])"));
  EXPECT_EQ(Field(d[0], "nested"), J(R"(["[1]","[2,3]"])"));
  const JsonArray& h = Rows(RunReader(readers, "hyparquet-rows", path));
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(Field(h[0], "l"), J("[1,2,3]"));
  EXPECT_EQ(Field(h[1], "s"), J("[]"));
  EXPECT_EQ(Field(h[2], "s"), J(R"([null,"b",null])"));
  EXPECT_EQ(Field(h[2], "nested"), J(R"([{"k":1}])"));
}

TEST(ParquetWriter, ChunksSpanningManyPagesReadBack) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("pages.parquet");
  std::vector<JsonObject> rows;
  for (int i = 0; i < 50000; ++i) {
    JsonObject row;
    row["i"] = i;
    row["l"] = JsonArray{i, i + 1, i % 7 == 0 ? Json(nullptr) : Json(i + 2)};
    row["s"] = "s" + std::to_string(i % 1000);
    rows.push_back(row);
  }
  ParquetOptions options;
  options.row_group_size = 100000;
  ASSERT_NE(WriteFile(path, Columns({}), rows, options), nullptr);
  std::vector<Json> results = testing::RunReaders(
      readers,
      {{"duckdb-sql", path,
        "SELECT count(*) AS n, sum(i) AS s, sum(len(l)) AS elements, "
        "sum(list_sum(l)) AS total, count(DISTINCT s) AS d FROM read_parquet($FILE)"},
       {"duckdb-sql", path, "SELECT count(*) AS groups FROM parquet_metadata($FILE)"},
       {"hyparquet-rows", path, ""}},
      folder.File("jobs.json"));
  ASSERT_EQ(results.size(), 3u);
  const JsonArray& d = Rows(results[0]);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(Field(d[0], "n"), "50000");
  EXPECT_EQ(Field(d[0], "s"), "1249975000");
  EXPECT_EQ(Field(d[0], "elements"), "150000");
  EXPECT_EQ(Field(d[0], "d"), "1000");
  // 3 * sum(i) + 3 * 50000, less the (i + 2) of every seventh row, which is null.
  std::int64_t total = 3 * std::int64_t{1249975000} + 3 * 50000;
  for (int i = 0; i < 50000; i += 7) total -= i + 2;
  EXPECT_EQ(Field(d[0], "total"), Json(std::to_string(total)));
  EXPECT_EQ(Field(Rows(results[1]).at(0), "groups"), "3");  // one row group, 3 chunks
  const JsonArray& h = Rows(results[2]);
  ASSERT_EQ(h.size(), 50000u);
  EXPECT_EQ(Field(h[49999], "l"), J("[49999,50000,50001]"));
  EXPECT_EQ(Field(h[49994], "l"), J("[49994,49995,null]"));
}

TEST(ParquetWriter, FlushLeavesACompleteFileAfterEveryBatch) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::vector<std::string> uploads;
  auto sink = std::make_unique<MemoryByteSink>([&](std::string_view object) -> Status {
    uploads.emplace_back(object);
    return Ok();
  });
  auto writer = ParquetWriter::Make(Columns({{"id", ColumnType::kString}}), ParquetOptions(),
                                    std::move(sink));
  ASSERT_TRUE(writer);
  ParquetWriter& w = **writer;

  ASSERT_TRUE(w.Add(Row(R"({"id":"a","later":null,"tags":null})")));
  ASSERT_TRUE(w.Flush());  // "later" and "tags" have no type yet
  ASSERT_TRUE(w.Add(Row(R"({"id":"b","later":42,"extra":"new column"})")));
  ASSERT_TRUE(w.Flush());
  ASSERT_TRUE(w.Add(Row(R"({"id":"c","tags":["x"]})")));  // "tags" becomes a list
  ASSERT_TRUE(w.Flush());
  ASSERT_TRUE(w.Finish());
  ASSERT_EQ(uploads.size(), 4u);

  std::vector<std::size_t> expected_rows = {1, 2, 3, 3};
  std::vector<testing::ReaderJob> jobs;
  for (std::size_t i = 0; i < uploads.size(); ++i) {
    std::string path = folder.File("snapshot" + std::to_string(i) + ".parquet");
    testing::WriteFileBytes(path, uploads[i]);
    jobs.push_back({"duckdb-rows", path, ""});
    jobs.push_back({"hyparquet-rows", path, ""});
  }
  std::vector<Json> results = testing::RunReaders(readers, jobs, folder.File("jobs.json"));
  ASSERT_EQ(results.size(), 2 * uploads.size());
  for (std::size_t i = 0; i < uploads.size(); ++i) {
    EXPECT_EQ(Rows(results[2 * i]).size(), expected_rows[i]) << i;
    EXPECT_EQ(Rows(results[2 * i + 1]).size(), expected_rows[i]) << i;
  }
  const JsonArray& d = Rows(results[6]);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_TRUE(Field(d[0], "later").is_null());
  EXPECT_EQ(Field(d[1], "later"), "42");
  EXPECT_EQ(Field(d[1], "extra"), "new column");
  EXPECT_TRUE(Field(d[0], "extra").is_null());
  EXPECT_TRUE(Field(d[0], "tags").is_null());
  EXPECT_EQ(Field(d[2], "tags"), J(R"(["x"])"));
  EXPECT_EQ(w.ColumnTypeDescription(1), "int64");
  EXPECT_EQ(w.ColumnTypeDescription(2), "list<string>");
  // The three flushes published provisional row groups; the finished file has one.
  EXPECT_EQ(w.row_group_count(), 1u);
}

// Flushes publish the buffered rows without cutting row groups: 2,000 rows flushed every
// 20 rows (at least rowGroupSize / 32 apart) with rowGroupSize 500 give 4 row groups of 500
// rows, and every published snapshot holds every row added before its flush.
TEST(ParquetWriter, FrequentFlushesKeepRowGroupsOfTheConfiguredSize) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("flushed.parquet");
  FileSinkOptions sink_options;
  sink_options.publish_on_sync = true;
  auto sink = FileByteSink::Open(path, sink_options);
  ASSERT_TRUE(sink);
  ParquetOptions options;
  options.row_group_size = 500;
  auto writer =
      ParquetWriter::Make(Columns({{"id", ColumnType::kString}}), options, std::move(*sink));
  ASSERT_TRUE(writer);
  std::vector<testing::ReaderJob> jobs;
  for (int i = 0; i < 2000; ++i) {
    JsonObject row;
    row["id"] = "r" + std::to_string(i);
    row["n"] = i;
    if (i % 3 == 0) row["tags"] = JsonArray{Json(i), Json("x")};
    ASSERT_TRUE((*writer)->Add(row));
    if (i % 20 == 19) ASSERT_TRUE((*writer)->Flush());
    if (i == 1203) {  // a snapshot in the middle of the third row group
      ASSERT_TRUE((*writer)->Flush());
      EXPECT_EQ((*writer)->row_group_count(), 2u);
      std::string copy = folder.File("middle.parquet");
      std::filesystem::copy_file(path, copy);
      jobs.push_back({"duckdb-sql", copy,
                      "SELECT count(*) AS n, sum(n) AS s, count(tags) AS t, "
                      "(SELECT count(*) FROM parquet_metadata($FILE) WHERE column_id = 0) AS g "
                      "FROM read_parquet($FILE)"});
    }
  }
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_EQ((*writer)->row_group_count(), 4u);
  jobs.push_back({"duckdb-sql", path,
                  "SELECT row_group_id, row_group_num_rows FROM parquet_metadata($FILE) "
                  "WHERE column_id = 0 ORDER BY row_group_id"});
  jobs.push_back({"duckdb-sql", path,
                  "SELECT count(*) AS n, sum(n) AS s, count(tags) AS t FROM read_parquet($FILE)"});
  jobs.push_back({"hyparquet-rows", path, ""});
  std::vector<Json> results = testing::RunReaders(readers, jobs, folder.File("jobs.json"));
  ASSERT_EQ(results.size(), 4u);
  const JsonArray& middle = Rows(results[0]);
  ASSERT_EQ(middle.size(), 1u);
  EXPECT_EQ(Field(middle[0], "n"), "1204");
  EXPECT_EQ(Field(middle[0], "s"), Json(std::to_string(1203 * 1204 / 2)));
  EXPECT_EQ(Field(middle[0], "t"), "402");
  EXPECT_EQ(Field(middle[0], "g"), "3");  // two full groups and the provisional one
  const JsonArray& groups = Rows(results[1]);
  ASSERT_EQ(groups.size(), 4u);
  for (const Json& group : groups) EXPECT_EQ(Field(group, "row_group_num_rows"), "500");
  const JsonArray& totals = Rows(results[2]);
  ASSERT_EQ(totals.size(), 1u);
  EXPECT_EQ(Field(totals[0], "n"), "2000");
  EXPECT_EQ(Field(totals[0], "s"), Json(std::to_string(1999 * 2000 / 2)));
  EXPECT_EQ(Field(totals[0], "t"), "667");
  EXPECT_EQ(Rows(results[3]).size(), 2000u);
}

TEST(ParquetWriter, FileSinkNeverExposesAPartialFile) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("live.parquet");
  FileSinkOptions sink_options;
  sink_options.publish_on_sync = true;
  auto sink = FileByteSink::Open(path, sink_options);
  ASSERT_TRUE(sink);
  auto writer = ParquetWriter::Make(ColumnSet(), ParquetOptions(), std::move(*sink));
  ASSERT_TRUE(writer);
  for (int batch = 0; batch < 3; ++batch) {
    for (int i = 0; i < 10; ++i) {
      JsonObject row;
      row["batch"] = batch;
      row["i"] = i;
      ASSERT_TRUE((*writer)->Add(row));
    }
    ASSERT_TRUE((*writer)->Flush());
    Json count =
        RunReader(readers, "duckdb-sql", path, "SELECT count(*) AS n FROM read_parquet($FILE)");
    EXPECT_EQ(Field(Rows(count).at(0), "n"), Json(std::to_string((batch + 1) * 10)));
  }
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// Flushes every 2 rows with rowGroupSize 300, for every codec: each Flush seals or
// re-encodes only the rows added since the last sealed page, so the row groups stay full
// (300, 300, 300, then 100) instead of being closed early, and every value, null and
// Unicode string reads back in DuckDB and hyparquet, from the finished file and from a
// snapshot published in the middle of a row group. A small dictionary limit makes the
// `note` chunks fall back from dictionary pages to PLAIN pages part way through.
TEST(ParquetWriter, ManyTinyFlushesKeepFullRowGroupsWithEveryCodec) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  const std::vector<std::string> cities = {"Zürich", "東京", "😀 emoji", "e\u0301 combining",
                                           "quote \" and\nnewline"};
  auto make_row = [&](int i) {
    JsonObject row;
    row["id"] = "r" + std::to_string(i);
    row["n"] = i;
    if (i % 7 != 0) row["x"] = i * 0.5;
    row["city"] = cities[i % cities.size()];
    row["note"] = "note-" + std::to_string(i) + "-ñ";
    if (i % 3 == 0) row["tags"] = JsonArray{Json(std::to_string(i)), Json("x")};
    row["flag"] = i % 2 == 0;
    return row;
  };
  constexpr int kRows = 1000;
  const std::vector<Codec> codecs = {Codec::kNone, Codec::kSnappy, Codec::kGzip, Codec::kZstd,
                                     Codec::kLz4Raw};
  std::vector<testing::ReaderJob> jobs;
  for (Codec codec : codecs) {
    std::string name(CodecName(codec));
    std::string path = folder.File(name + ".parquet");
    std::string middle = folder.File(name + "-middle.parquet");
    auto sink = std::make_unique<MemoryByteSink>();
    MemoryByteSink& memory = *sink;
    ParquetOptions options;
    options.compression = codec;
    options.row_group_size = 300;
    options.dictionary_size_limit = 4096;
    auto writer =
        ParquetWriter::Make(Columns({{"id", ColumnType::kString}}), options, std::move(sink));
    ASSERT_TRUE(writer);
    for (int i = 0; i < kRows; ++i) {
      ASSERT_TRUE((*writer)->Add(make_row(i)));
      if (i % 2 == 1) ASSERT_TRUE((*writer)->Flush());
      if (i == 451) testing::WriteFileBytes(middle, memory.Snapshot());
    }
    ASSERT_TRUE((*writer)->Finish());
    EXPECT_EQ((*writer)->row_group_count(), 4u) << name;
    testing::WriteFileBytes(path, memory.Snapshot());
    jobs.push_back({"duckdb-sql", path,
                    "SELECT row_group_num_rows AS r FROM parquet_metadata($FILE) "
                    "WHERE column_id = 0 ORDER BY row_group_id"});
    jobs.push_back({"duckdb-sql", path,
                    "SELECT row_group_id AS g, encodings AS e, stats_min_value AS lo, "
                    "stats_max_value AS hi, stats_null_count AS z FROM parquet_metadata($FILE) "
                    "WHERE path_in_schema IN ('n', 'x', 'note') ORDER BY path_in_schema, g"});
    jobs.push_back({"duckdb-rows", path, ""});
    jobs.push_back({"hyparquet-rows", path, ""});
    jobs.push_back({"duckdb-rows", middle, ""});
    jobs.push_back({"hyparquet-rows", middle, ""});
  }
  std::vector<Json> results = testing::RunReaders(readers, jobs, folder.File("jobs.json"));
  ASSERT_EQ(results.size(), jobs.size());

  // Compares what a reader returned with the rows written; DuckDB gives BIGINT as text.
  auto check_rows = [&](const Json& result, int count, bool duckdb, const std::string& what) {
    const JsonArray& rows = Rows(result);
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(count)) << what;
    for (int i = 0; i < count; ++i) {
      JsonObject expected = make_row(i);
      const Json& row = rows[i];
      SCOPED_TRACE(what + " row " + std::to_string(i));
      EXPECT_EQ(Field(row, "id"), expected["id"]);
      EXPECT_EQ(Field(row, "n"), duckdb ? Json(std::to_string(i)) : Json(i));
      if (i % 7 == 0) {
        EXPECT_TRUE(Field(row, "x").is_null());
      } else {
        EXPECT_EQ(Field(row, "x").to_number<double>(), i * 0.5);
      }
      EXPECT_EQ(Field(row, "city"), expected["city"]);
      EXPECT_EQ(Field(row, "note"), expected["note"]);
      EXPECT_EQ(Field(row, "flag"), expected["flag"]);
      if (i % 3 == 0) {
        EXPECT_EQ(Field(row, "tags"), expected["tags"]);
      } else {
        EXPECT_TRUE(Field(row, "tags").is_null());
      }
    }
  };
  std::size_t next = 0;
  for (Codec codec : codecs) {
    std::string name(CodecName(codec));
    const JsonArray& groups = Rows(results[next++]);
    ASSERT_EQ(groups.size(), 4u) << name;
    EXPECT_EQ(Field(groups[0], "r"), "300") << name;
    EXPECT_EQ(Field(groups[1], "r"), "300") << name;
    EXPECT_EQ(Field(groups[2], "r"), "300") << name;
    EXPECT_EQ(Field(groups[3], "r"), "100") << name;
    // Statistics cover every page of a chunk. Rows: n (4 groups), note (4), x (4).
    const JsonArray& stats = Rows(results[next++]);
    ASSERT_EQ(stats.size(), 12u) << name;
    EXPECT_EQ(Field(stats[1], "lo"), "300") << name;
    EXPECT_EQ(Field(stats[1], "hi"), "599") << name;
    EXPECT_EQ(Field(stats[4], "lo"), "note-0-ñ") << name;
    EXPECT_EQ(Field(stats[4], "hi"), "note-99-ñ") << name;
    EXPECT_EQ(Field(stats[4], "e"), "PLAIN, RLE, RLE_DICTIONARY") << name;  // then PLAIN
    EXPECT_EQ(Field(stats[8], "z"), "43") << name;  // x is null for 0, 7, ..., 294
    EXPECT_EQ(Field(stats[9], "lo"), "150.0") << name;
    EXPECT_EQ(Field(stats[9], "hi"), "299.5") << name;
    check_rows(results[next++], kRows, true, name + " duckdb");
    check_rows(results[next++], kRows, false, name + " hyparquet");
    check_rows(results[next++], 452, true, name + " middle duckdb");
    check_rows(results[next++], 452, false, name + " middle hyparquet");
  }
}

TEST(ParquetWriter, RejectsValuesThatDoNotFitTheirColumnAndStaysUsable) {
  auto sink = std::make_unique<MemoryByteSink>();
  ParquetOptions options;
  options.row_group_size = 1;  // every accepted row completes a row group (types decided)
  auto writer = ParquetWriter::Make(Columns({{"age", ColumnType::kInteger},
                                             {"score", ColumnType::kNumber},
                                             {"at", ColumnType::kDatetime},
                                             {"ok", ColumnType::kBoolean},
                                             {"tags", ColumnType::kArray}}),
                                    options, std::move(sink));
  ASSERT_TRUE(writer);
  ParquetWriter& w = **writer;

  struct Case {
    const char* row;
    const char* column;
  };
  for (const Case& bad : std::vector<Case>{
           {R"({"age":"41"})", "'age'"},
           {R"({"age":2.5})", "'age'"},
           {R"({"age":18446744073709551615})", "'age'"},
           {R"({"score":1152921504606846976})", "'score'"},
           {R"({"at":"yesterday"})", "'at'"},
           {R"({"at":1700000000})", "'at'"},
           {R"({"ok":"true"})", "'ok'"},
           {R"({"tags":"x"})", "'tags'"},
       }) {
    auto added = w.Add(Row(bad.row));
    ASSERT_FALSE(added) << bad.row;
    EXPECT_EQ(added.error().code, ErrorCode::kInvalidArgument) << bad.row;
    EXPECT_NE(added.error().message.find(bad.column), std::string::npos) << added.error().message;
  }
  JsonObject not_finite;
  not_finite["score"] = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(w.Add(not_finite));

  // Inferred types are enforced once decided (by the first full row group; a Flush alone
  // decides nothing).
  ASSERT_TRUE(w.Add(Row(R"({"age":3.0,"score":2,"n":1,"tags":[1]})")));
  ASSERT_TRUE(w.Flush());
  EXPECT_EQ(w.ColumnTypeDescription(5), "int64");
  auto mismatch = w.Add(Row(R"({"n":"one"})"));
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message.find("'n'"), std::string::npos);
  auto element_mismatch = w.Add(Row(R"({"tags":["a"]})"));
  ASSERT_FALSE(element_mismatch);
  EXPECT_NE(element_mismatch.error().message.find("'tags'"), std::string::npos);

  ASSERT_TRUE(w.Add(Row(R"({"age":4,"n":2})")));
  EXPECT_TRUE(w.Finish());
}

TEST(ParquetWriter, StringColumnsTakeNumbersAsTheirJsonText) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("strings.parquet");
  std::vector<JsonObject> rows = {Row(R"({"s":"text"})"), Row(R"({"s":12})"), Row(R"({"s":0.5})"),
                                  Row(R"({"s":true})"), Row(R"({"s":{"a":1}})")};
  ParquetOptions options;
  options.row_group_size = 1;  // "s" is decided as string by the first row alone
  ASSERT_NE(WriteFile(path, Columns({}), rows, options), nullptr);
  const JsonArray& d = Rows(RunReader(readers, "duckdb-rows", path));
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(Field(d[1], "s"), "12");
  EXPECT_EQ(Field(d[2], "s"), "0.5");
  EXPECT_EQ(Field(d[3], "s"), "true");
  EXPECT_EQ(Field(d[4], "s"), R"({"a":1})");
}

TEST(ParquetWriter, EmptyFileWithDeclaredColumnsIsValid) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("empty.parquet");
  ASSERT_NE(
      WriteFile(path, Columns({{"id", ColumnType::kString}, {"n", ColumnType::kInteger}}), {}),
      nullptr);
  EXPECT_EQ(Rows(RunReader(readers, "duckdb-rows", path)).size(), 0u);
  Json meta = RunReader(readers, "hyparquet-meta", path);
  EXPECT_EQ(meta.at("num_rows"), 0);
  EXPECT_EQ(meta.at("schema").as_array().size(), 3u);
}

TEST(ParquetWriter, SinkFailureIsStickyAndAbandonRemovesTheFile) {
  auto sink = std::make_unique<MemoryByteSink>(
      [](std::string_view) -> Status { return MakeError(ErrorCode::kIo, "disk full"); });
  auto writer = ParquetWriter::Make(ColumnSet(), ParquetOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Add(Row(R"({"a":1})")));
  auto flushed = (*writer)->Flush();
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().message, "disk full");
  auto later = (*writer)->Add(Row(R"({"a":2})"));
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().message, "disk full");

  testing::TempFolder folder;
  std::string path = folder.File("abandoned.parquet");
  auto file_sink = FileByteSink::Open(path);
  ASSERT_TRUE(file_sink);
  auto abandoned = ParquetWriter::Make(ColumnSet(), ParquetOptions(), std::move(*file_sink));
  ASSERT_TRUE(abandoned);
  ASSERT_TRUE((*abandoned)->Add(Row(R"({"a":1})")));
  ASSERT_TRUE((*abandoned)->Flush());
  (*abandoned)->Abandon();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE((*abandoned)->Add(Row(R"({"a":1})")));
}

TEST(ParquetWriter, ParsesConfigOptionsAndNamesBadOnes) {
  auto options = ParquetOptionsFromJson(Row(R"({"compression":"lz4","rowGroupSize":5000})"));
  ASSERT_TRUE(options);
  EXPECT_EQ(options->compression, Codec::kLz4Raw);
  EXPECT_EQ(options->row_group_size, 5000u);
  EXPECT_EQ(ParquetOptions().row_group_size, 10000u);
  EXPECT_EQ(ParquetOptions().compression, Codec::kSnappy);

  auto bad_codec = ParquetOptionsFromJson(Row(R"({"compression":"brotli"})"));
  ASSERT_FALSE(bad_codec);
  EXPECT_NE(bad_codec.error().message.find("`compression`"), std::string::npos);
  auto bad_size = ParquetOptionsFromJson(Row(R"({"rowGroupSize":0})"));
  ASSERT_FALSE(bad_size);
  EXPECT_NE(bad_size.error().message.find("`rowGroupSize`"), std::string::npos);
}

}  // namespace
}  // namespace s3db::formats
