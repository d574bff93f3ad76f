#include "formats/csv_writer.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats_test_util.h"

namespace s3db::formats {
namespace {

using Records = std::vector<std::vector<std::string>>;

// Strict: CRLF record ends, no bare LF or stray quote, the last record ended.
Records ParseCsv(std::string_view text, char delimiter) {
  return testing::ParseCsv(text, {.delimiter = delimiter, .strict = true});
}

JsonObject Row(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed) << json;
  return parsed ? *parsed : JsonObject();
}

struct CsvRun {
  std::unique_ptr<CsvWriter> writer;
  MemoryByteSink* sink = nullptr;
};

CsvRun MakeCsv(std::vector<ColumnSpec> declared = {}, CsvOptions options = {}) {
  auto sink = std::make_unique<MemoryByteSink>();
  CsvRun run;
  run.sink = sink.get();
  auto columns = ColumnSet::Make(std::move(declared));
  EXPECT_TRUE(columns);
  auto writer = CsvWriter::Make(std::move(*columns), options, std::move(sink));
  EXPECT_TRUE(writer) << writer.error().message;
  run.writer = std::move(*writer);
  return run;
}

TEST(CsvWriter, QuotesOnlyFieldsWithDelimiterQuoteCrOrLf) {
  CsvRun run = MakeCsv({{"a"}, {"b"}, {"c"}, {"d"}, {"e"}});
  ASSERT_TRUE(run.writer->Add(
      Row(R"({"a":"plain","b":"x,y","c":"say \"hi\"","d":"line1\nline2","e":"cr\rhere"})")));
  ASSERT_TRUE(run.writer->Finish());

  EXPECT_EQ(run.sink->Snapshot(),
            "a,b,c,d,e\r\n"
            "plain,\"x,y\",\"say \"\"hi\"\"\",\"line1\nline2\",\"cr\rhere\"\r\n");
  Records records = ParseCsv(run.sink->Snapshot(), ',');
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1],
            (std::vector<std::string>{"plain", "x,y", "say \"hi\"", "line1\nline2", "cr\rhere"}));
}

TEST(CsvWriter, HeaderHasDeclaredColumnsThenNewFieldsInFirstSeenOrder) {
  CsvRun run = MakeCsv({{"id"}, {"name"}});
  ASSERT_TRUE(run.writer->Add(Row(R"({"zeta":1,"id":"u1","alpha":2})")));
  ASSERT_TRUE(run.writer->Add(Row(R"({"name":"Bo","beta":3})")));
  ASSERT_TRUE(run.writer->Finish());

  Records records = ParseCsv(run.sink->Snapshot(), ',');
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], (std::vector<std::string>{"id", "name", "zeta", "alpha", "beta"}));
  EXPECT_EQ(records[1], (std::vector<std::string>{"u1", "", "1", "2", ""}));
  EXPECT_EQ(records[2], (std::vector<std::string>{"", "Bo", "", "", "3"}));
}

TEST(CsvWriter, NullAndMissingAreEmptyButEmptyStringIsQuoted) {
  CsvRun run = MakeCsv({{"a"}, {"b"}, {"c"}});
  ASSERT_TRUE(run.writer->Add(Row(R"({"a":null,"b":""})")));
  ASSERT_TRUE(run.writer->Finish());
  EXPECT_EQ(run.sink->Snapshot(), "a,b,c\r\n,\"\",\r\n");
}

TEST(CsvWriter, WritesScalarsExactlyAndNestedValuesAsCompactJson) {
  CsvRun run = MakeCsv();
  ASSERT_TRUE(run.writer->Add(
      Row(R"({"big":18446744073709551615,"min":-9223372036854775808,"d":0.1,"whole":2.0,)"
          R"("t":true,"f":false,"arr":[1,"x",null],"obj":{"k":{"n":1.5}}})")));
  ASSERT_TRUE(run.writer->Finish());
  Records records = ParseCsv(run.sink->Snapshot(), ',');
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1],
            (std::vector<std::string>{"18446744073709551615", "-9223372036854775808", "0.1", "2.0",
                                      "true", "false", R"([1,"x",null])", R"({"k":{"n":1.5}})"}));
}

TEST(CsvWriter, KeepsUnicodeAndControlCharactersUnchanged) {
  CsvRun run = MakeCsv({{"s"}});
  std::string text = "emoji \xF0\x9F\x98\x80 e\xCC\x81 \xE4\xB8\xAD tab\t bell\x07";
  JsonObject row;
  row["s"] = text;
  ASSERT_TRUE(run.writer->Add(row));
  ASSERT_TRUE(run.writer->Finish());
  Records records = ParseCsv(run.sink->Snapshot(), ',');
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1][0], text);
}

TEST(CsvWriter, WritesUtf8BomOnlyWhenAsked) {
  CsvOptions with_bom;
  with_bom.bom = true;
  CsvRun run = MakeCsv({{"a"}}, with_bom);
  ASSERT_TRUE(run.writer->Add(Row(R"({"a":"x"})")));
  ASSERT_TRUE(run.writer->Finish());
  EXPECT_EQ(run.sink->Snapshot(),
            "\xEF\xBB\xBF"
            "a\r\nx\r\n");

  CsvRun plain = MakeCsv({{"a"}});
  ASSERT_TRUE(plain.writer->Add(Row(R"({"a":"x"})")));
  ASSERT_TRUE(plain.writer->Finish());
  EXPECT_EQ(plain.sink->Snapshot(), "a\r\nx\r\n");
}

TEST(CsvWriter, EscapeFormulasPrefixesAQuoteToRiskyStringsButNotNumbers) {
  CsvOptions options;
  options.escape_formulas = true;
  CsvRun run = MakeCsv({{"a"}, {"b"}, {"c"}, {"d"}, {"e"}, {"n"}, {"ok"}}, options);
  ASSERT_TRUE(run.writer->Add(Row(
      R"json({"a":"=1+2","b":"+cmd","c":"-2+3","d":"@SUM(A1)","e":"\tx","n":-5,"ok":"a=b"})json")));
  ASSERT_TRUE(run.writer->Finish());
  Records records = ParseCsv(run.sink->Snapshot(), ',');
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1], (std::vector<std::string>{"'=1+2", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx",
                                                  "-5", "a=b"}));

  CsvRun unescaped = MakeCsv({{"a"}});
  ASSERT_TRUE(unescaped.writer->Add(Row(R"({"a":"=1+2"})")));
  ASSERT_TRUE(unescaped.writer->Finish());
  EXPECT_EQ(ParseCsv(unescaped.sink->Snapshot(), ',')[1][0], "=1+2");
}

TEST(CsvWriter, SupportsEveryAllowedDelimiter) {
  for (char delimiter : {',', ';', '\t', '|'}) {
    CsvOptions options;
    options.delimiter = delimiter;
    CsvRun run = MakeCsv({{"a"}, {"b"}}, options);
    JsonObject row;
    row["a"] = std::string("has") + delimiter + "it";
    row["b"] = "x,y;z|w";
    ASSERT_TRUE(run.writer->Add(row));
    ASSERT_TRUE(run.writer->Finish());
    Records records = ParseCsv(run.sink->Snapshot(), delimiter);
    ASSERT_EQ(records.size(), 2u) << "delimiter " << delimiter;
    EXPECT_EQ(records[1][0], std::string("has") + delimiter + "it");
    EXPECT_EQ(records[1][1], "x,y;z|w");
    EXPECT_EQ(run.sink->Snapshot().substr(0, 4), std::string("a") + delimiter + "b\r");
  }
}

TEST(CsvWriter, RejectsOtherDelimitersNamingTheOption) {
  CsvOptions options;
  options.delimiter = ':';
  auto writer = CsvWriter::Make(ColumnSet(), options, std::make_unique<MemoryByteSink>());
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(writer.error().message.find("`delimiter`"), std::string::npos);

  auto from_json = CsvOptionsFromJson(Row(R"({"delimiter":"::"})"));
  ASSERT_FALSE(from_json);
  EXPECT_NE(from_json.error().message.find("`delimiter`"), std::string::npos);
  auto tab = CsvOptionsFromJson(Row(R"({"delimiter":"\t","bom":true,"escapeFormulas":true})"));
  ASSERT_TRUE(tab);
  EXPECT_EQ(tab->delimiter, '\t');
  EXPECT_TRUE(tab->bom);
  EXPECT_TRUE(tab->escape_formulas);
}

TEST(CsvWriter, NewFieldAfterFlushRewritesHeaderAndPadsEarlierRecords) {
  CsvOptions options;
  options.bom = true;
  CsvRun run = MakeCsv({{"id"}}, options);
  ASSERT_TRUE(run.writer->Add(Row(R"({"id":"a","note":"multi\r\nline, \"q\""})")));
  ASSERT_TRUE(run.writer->Flush());
  std::string first_snapshot = run.sink->Snapshot();

  ASSERT_TRUE(run.writer->Add(Row(R"({"id":"b","extra":7})")));
  // The published object stays the old complete file until the next Flush.
  EXPECT_EQ(run.sink->Snapshot(), first_snapshot);
  ASSERT_TRUE(run.writer->Add(Row(R"({"id":"c"})")));
  ASSERT_TRUE(run.writer->Flush());
  ASSERT_TRUE(run.writer->Finish());

  std::string text = run.sink->Snapshot();
  ASSERT_EQ(text.substr(0, 3), "\xEF\xBB\xBF");
  Records records = ParseCsv(std::string_view(text).substr(3), ',');
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0], (std::vector<std::string>{"id", "note", "extra"}));
  EXPECT_EQ(records[1], (std::vector<std::string>{"a", "multi\r\nline, \"q\"", ""}));
  EXPECT_EQ(records[2], (std::vector<std::string>{"b", "", "7"}));
  EXPECT_EQ(records[3], (std::vector<std::string>{"c", "", ""}));
}

TEST(CsvWriter, RejectsInvalidUtf8WithoutChangingTheFile) {
  CsvRun run = MakeCsv({{"a"}});
  JsonObject bad;
  bad["a"] = std::string("\xC3\x28");
  auto added = run.writer->Add(bad);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(added.error().message.find("'a'"), std::string::npos);
  ASSERT_TRUE(run.writer->Add(Row(R"({"a":"fine"})")));
  ASSERT_TRUE(run.writer->Finish());
  EXPECT_EQ(run.sink->Snapshot(), "a\r\nfine\r\n");
}

// A file continued after a restart keeps its header (names with quotes, delimiters, CRLF and
// a formula guard read back), gets no second header, and loses only its torn last record.
TEST(CsvWriter, ResumeContinuesTheFileAndCutsATornLastRecord) {
  CsvOptions options;
  options.escape_formulas = true;
  options.bom = true;
  CsvRun first = MakeCsv({{"id", ColumnType::kString}}, options);
  ASSERT_TRUE(first.writer->Add(Row(R"({"id": "1", "say \"hi\", you": "a\r\nb", "=x": 1})")));
  ASSERT_TRUE(first.writer->Flush());
  std::string published = first.sink->Snapshot();
  first.writer->Abandon();

  for (const std::string& torn :
       {std::string(), std::string("2,\"half\r\nof a quoted"), std::string("2,plain")}) {
    SCOPED_TRACE(torn);
    auto sink = std::make_unique<MemoryByteSink>(nullptr, published + torn);
    MemoryByteSink* memory = sink.get();
    auto columns = ColumnSet::Make({{"id", ColumnType::kString}});
    auto writer = CsvWriter::Resume(std::move(*columns), options, std::move(sink));
    ASSERT_TRUE(writer) << writer.error().message;
    ASSERT_TRUE((*writer)->Add(Row(R"({"id": "3", "=x": 2, "say \"hi\", you": "c"})")));
    ASSERT_TRUE((*writer)->Finish());
    std::string text = memory->Snapshot();
    ASSERT_TRUE(text.starts_with("\xEF\xBB\xBF"));
    EXPECT_EQ(ParseCsv(text.substr(3), ','),
              (Records{{"id", "say \"hi\", you", "'=x"}, {"1", "a\r\nb", "1"}, {"3", "c", "2"}}));
  }
}

TEST(CsvWriter, ResumeOfAnEmptyBodyStartsANewFile) {
  auto sink = std::make_unique<MemoryByteSink>(nullptr, "");
  MemoryByteSink* memory = sink.get();
  auto writer = CsvWriter::Resume(ColumnSet(), CsvOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Add(Row(R"({"id": "1"})")));
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_EQ(memory->Snapshot(), "id\r\n1\r\n");
}

TEST(CsvWriter, FileSinkPublishesAtomicallyAtFinish) {
  testing::TempFolder folder;
  std::string path = folder.File("users.csv");
  auto sink = FileByteSink::Open(path);
  ASSERT_TRUE(sink);
  auto writer = CsvWriter::Make(ColumnSet(), CsvOptions(), std::move(*sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Add(Row(R"({"id":1})")));
  ASSERT_TRUE((*writer)->Flush());
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(testing::ReadFileBytes(path + ".tmp"), "id\r\n1\r\n");
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(testing::ReadFileBytes(path), "id\r\n1\r\n");
  EXPECT_EQ((*writer)->BytesWritten(), 7u);
  EXPECT_FALSE((*writer)->Add(Row(R"({"id":2})")));
}

TEST(CsvWriter, DuckDbReadsQuotedFieldsBack) {
  S3DB_REQUIRE_PARQUET_READERS(readers);
  testing::TempFolder folder;
  std::string path = folder.File("tricky.csv");
  auto sink = FileByteSink::Open(path);
  ASSERT_TRUE(sink);
  auto writer = CsvWriter::Make(ColumnSet(), CsvOptions(), std::move(*sink));
  ASSERT_TRUE(writer);
  JsonObject row;
  row["id"] = "r1";
  row["text"] = "comma, \"quote\"\nnewline \xF0\x9F\x98\x80";
  row["n"] = std::uint64_t{18446744073709551615u};
  ASSERT_TRUE((*writer)->Add(row));
  ASSERT_TRUE((*writer)->Add(Row(R"({"id":"r2","text":"","n":null})")));
  ASSERT_TRUE((*writer)->Finish());

  Json rows = testing::RunReader(
      readers, "duckdb-sql", path,
      "SELECT id, text, n FROM read_csv($FILE, header=true, all_varchar=true) ORDER BY id");
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.as_array().size(), 2u);
  EXPECT_EQ(rows.as_array()[0].at("text"), row["text"]);
  EXPECT_EQ(rows.as_array()[0].at("n"), "18446744073709551615");
  EXPECT_TRUE(rows.as_array()[1].at("n").is_null());
}

}  // namespace
}  // namespace s3db::formats
