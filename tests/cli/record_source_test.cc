// The CSV reader and the import record sources (JSON array, JSON Lines, CSV), and the
// importer's counting, without the database.
#include "cli/record_source.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "cli/csv_reader.h"
#include "cli/importer.h"
#include "cli/json_input.h"

namespace s3db::cli {
namespace {

std::vector<std::vector<std::string>> ReadCsv(const std::string& text, std::string* error = nullptr,
                                              std::vector<std::size_t>* lines = nullptr) {
  std::istringstream input(text);
  CsvReader reader(input);
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> fields;
  while (true) {
    auto more = reader.Next(fields);
    if (!more) {
      if (error) *error = more.error().message;
      break;
    }
    if (!*more) break;
    records.push_back(fields);
    if (lines) lines->push_back(reader.record_line());
  }
  return records;
}

using Rows = std::vector<std::vector<std::string>>;

TEST(CsvReader, SplitsFieldsAndRecords) {
  EXPECT_EQ(ReadCsv("a,b,c\n1,2,3\n"), (Rows{{"a", "b", "c"}, {"1", "2", "3"}}));
  EXPECT_EQ(ReadCsv("a,b\r\n1,2\r\n"), (Rows{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(ReadCsv("a,b\n1,2"), (Rows{{"a", "b"}, {"1", "2"}}));  // no final line break
  EXPECT_EQ(ReadCsv("a,,c\n,,\n"), (Rows{{"a", "", "c"}, {"", "", ""}}));
}

TEST(CsvReader, QuotedFieldsHoldCommasQuotesAndLineBreaks) {
  std::vector<std::size_t> lines;
  Rows rows = ReadCsv("name,note\n\"Smith, J\",\"said \"\"hi\"\"\"\n\"multi\r\nline\",x\nlast,y\n",
                      nullptr, &lines);
  EXPECT_EQ(
      rows,
      (Rows{{"name", "note"}, {"Smith, J", "said \"hi\""}, {"multi\r\nline", "x"}, {"last", "y"}}));
  EXPECT_EQ(lines, (std::vector<std::size_t>{1, 2, 3, 5}));
}

TEST(CsvReader, SkipsBlankLinesAndByteOrderMark) {
  EXPECT_EQ(ReadCsv("\xEF\xBB\xBF"
                    "a\n\n1\n\r\n2\n"),
            (Rows{{"a"}, {"1"}, {"2"}}));
  EXPECT_EQ(ReadCsv("\xEF\xBC\x81,x\n"), (Rows{{"\xEF\xBC\x81", "x"}}));  // not a BOM
}

TEST(CsvReader, EmptyQuotedFieldIsAField) { EXPECT_EQ(ReadCsv("\"\"\n"), (Rows{{""}})); }

TEST(CsvReader, UnclosedQuoteIsAnErrorNamingItsLine) {
  std::string error;
  ReadCsv("a,b\n1,\"open\nmore\n", &error);
  EXPECT_EQ(error, "line 2: the quoted field that starts here is never closed");
}

TEST(CsvReader, TextAfterClosingQuoteIsAnError) {
  std::string error;
  ReadCsv("a\n\"x\"y\n", &error);
  EXPECT_NE(error.find("line 2: unexpected 'y' after a closing quote"), std::string::npos) << error;
}

struct Collected {
  std::vector<std::string> records;  // compact JSON
  std::vector<std::string> errors;
  std::string fatal;
};

Collected Collect(InputFormat format, const std::string& text, const Schema* schema = nullptr) {
  std::istringstream input(text);
  auto source = NewRecordSource(format, input, schema);
  Collected out;
  while (true) {
    auto next = source->Next();
    if (!next) {
      out.fatal = next.error().message;
      break;
    }
    if (!next->has_value()) break;
    if ((*next)->error.empty()) {
      out.records.push_back(ToJson((*next)->record));
    } else {
      out.errors.push_back((*next)->error);
    }
  }
  return out;
}

TEST(JsonArraySource, ReadsEachElement) {
  Collected c = Collect(InputFormat::kJson,
                        "[\n {\"id\":\"a\",\"n\":[1,{\"x\":\"],}\"}]},\n {\"id\":\"b\"}\n]\n");
  EXPECT_EQ(c.records,
            (std::vector<std::string>{R"({"id":"a","n":[1,{"x":"],}"}]})", R"({"id":"b"})"}));
  EXPECT_TRUE(c.errors.empty());
  EXPECT_TRUE(c.fatal.empty()) << c.fatal;
}

TEST(JsonArraySource, EmptyArraySingleObjectAndTrailingComma) {
  EXPECT_TRUE(Collect(InputFormat::kJson, "  [ ]  ").records.empty());
  EXPECT_EQ(Collect(InputFormat::kJson, "{\"id\":\"x\"}\n").records,
            (std::vector<std::string>{R"({"id":"x"})"}));
  EXPECT_EQ(Collect(InputFormat::kJson, "[{\"a\":1},]").records.size(), 1u);
}

TEST(JsonArraySource, BadElementIsARecordErrorWithItsLine) {
  Collected c = Collect(InputFormat::kJson, "[\n{\"a\":1},\n{\"a\":\n  tru},\n3,\n{\"b\":2}]");
  EXPECT_EQ(c.records.size(), 2u);
  ASSERT_EQ(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[0].rfind("line 4: invalid JSON", 0), 0u) << c.errors[0];
  EXPECT_EQ(c.errors[1].rfind("line 5: expected a JSON object", 0), 0u) << c.errors[1];
}

TEST(JsonArraySource, UnclosedArrayIsFatalAfterEveryElementIsAccountedFor) {
  // The last complete element before the end of the file is still a record.
  Collected c = Collect(InputFormat::kJson, "[\n{\"a\":1},\n{\"a\":2}\n");
  EXPECT_EQ(c.records, (std::vector<std::string>{R"({"a":1})", R"({"a":2})"}));
  EXPECT_TRUE(c.errors.empty());
  EXPECT_NE(c.fatal.find("line 1 is not closed"), std::string::npos) << c.fatal;
  EXPECT_NE(c.fatal.find("truncated"), std::string::npos) << c.fatal;
  // An element cut off by the end of the file is a failed record with its line.
  c = Collect(InputFormat::kJson, "[\n{\"a\":1},\n{\"a\":2,\n \"b\":[1,");
  EXPECT_EQ(c.records, (std::vector<std::string>{R"({"a":1})"}));
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0], "line 3: the element that starts here is cut off by the end of the file");
  EXPECT_NE(c.fatal.find("is not closed"), std::string::npos) << c.fatal;
  // Cut inside a string, and after a comma: nothing to count, only the fatal error.
  c = Collect(InputFormat::kJson, "[{\"a\":\"x");
  EXPECT_EQ(c.errors.size(), 1u);
  c = Collect(InputFormat::kJson, "[{\"a\":1},\n");
  EXPECT_EQ(c.records.size(), 1u);
  EXPECT_TRUE(c.errors.empty());
  EXPECT_NE(c.fatal.find("is not closed"), std::string::npos) << c.fatal;
  EXPECT_NE(Collect(InputFormat::kJson, "{\"a\":[1,")
                .fatal.find("JSON object that starts on "
                            "line 1 is not closed"),
            std::string::npos);
  EXPECT_NE(Collect(InputFormat::kJson, "[{}] x").fatal.find("unexpected text"), std::string::npos);
  EXPECT_NE(Collect(InputFormat::kJson, "nope").fatal.find("line 1:"), std::string::npos);
}

TEST(JsonLinesSource, ReadsLinesAndReportsBadOnes) {
  Collected c = Collect(InputFormat::kJsonLines,
                        "{\"id\":\"a\"}\r\n\n   \n{\"id\":\"b\",\"big\":18446744073709551615}\n"
                        "{broken\n[1]\n");
  EXPECT_EQ(c.records, (std::vector<std::string>{R"({"id":"a"})",
                                                 R"({"id":"b","big":18446744073709551615})"}));
  ASSERT_EQ(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[0].rfind("line 5: invalid JSON", 0), 0u) << c.errors[0];
  EXPECT_EQ(c.errors[1].rfind("line 6: expected a JSON object", 0), 0u) << c.errors[1];
}

TEST(CsvSource, TypesValuesByTheSchema) {
  auto schema = Schema::Parse(ParseJsonObject(R"({"name":"string","zip":"string",)"
                                              R"("age":"number","ok":"boolean",)"
                                              R"("tags":"array|items:string"})")
                                  .value());
  ASSERT_TRUE(schema.has_value()) << schema.error().message;
  Collected c = Collect(InputFormat::kCsv,
                        "id,name,zip,age,ok,tags,extra,other\n"
                        "7,\"Doe, \"\"J\"\"\",01234,42,TRUE,\"[\"\"a\"\"]\",3.5,007\n"
                        "8,Ann,,x,maybe,,,\n",
                        &*schema);
  ASSERT_EQ(c.records.size(), 2u) << c.fatal;
  EXPECT_EQ(c.records[0], R"({"id":"7","name":"Doe, \"J\"","zip":"01234","age":42,"ok":true,)"
                          R"("tags":["a"],"extra":3.5,"other":"007"})");
  EXPECT_EQ(c.records[1], R"({"id":"8","name":"Ann","age":"x","ok":"maybe"})");
}

TEST(CsvSource, EmbeddedNewlinesKeepLineNumbers) {
  Collected c = Collect(InputFormat::kCsv, "id,text\n1,\"a\nb\nc\"\n2,x,extra\n3,y\n");
  EXPECT_EQ(c.records, (std::vector<std::string>{R"({"id":"1","text":"a\nb\nc"})",
                                                 R"({"id":"3","text":"y"})"}));
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0], "line 5: 3 fields, but the header has 2");
}

TEST(CsvSource, HeaderProblemsAreFatal) {
  EXPECT_NE(Collect(InputFormat::kCsv, "").fatal.find("empty"), std::string::npos);
  EXPECT_NE(Collect(InputFormat::kCsv, "a,a\n1,2\n").fatal.find("repeats the name 'a'"),
            std::string::npos);
  EXPECT_NE(Collect(InputFormat::kCsv, "a,,b\n").fatal.find("column 2 is empty"),
            std::string::npos);
}

TEST(InputFormats, ByNameAndExtension) {
  EXPECT_EQ(*FormatFromPath("x/data.JSON"), InputFormat::kJson);
  EXPECT_EQ(*FormatFromPath("a.ndjson"), InputFormat::kJsonLines);
  EXPECT_EQ(*FormatFromPath("a.jsonl"), InputFormat::kJsonLines);
  EXPECT_EQ(*FormatFromPath("a.csv"), InputFormat::kCsv);
  EXPECT_FALSE(FormatFromPath("a.txt").has_value());
  EXPECT_FALSE(ParseInputFormat("xml").has_value());
}

TEST(Importer, BatchesAndCountsFailures) {
  std::istringstream input("{\"id\":\"1\"}\n{\"id\":\"2\"}\nbad\n{\"id\":\"3\"}\n{\"id\":\"4\"}\n");
  auto source = NewRecordSource(InputFormat::kJsonLines, input, nullptr);
  std::vector<std::size_t> batch_sizes;
  BatchSink sink = [&](std::vector<JsonObject> records) {
    batch_sizes.push_back(records.size());
    std::vector<Status> statuses(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (records[i].at("id") == Json("3")) {
        statuses[i] = MakeError(ErrorCode::kAlreadyExists, "id 3 exists");
      }
    }
    return statuses;
  };
  ImportOptions options;
  options.batch_size = 2;
  int progress_calls = 0;
  options.on_progress = [&](const ImportProgress&) { ++progress_calls; };
  ImportSummary summary = ImportRecords(*source, sink, options);
  EXPECT_EQ(summary.imported, 3u);
  EXPECT_EQ(summary.failed, 2u);
  EXPECT_EQ(batch_sizes, (std::vector<std::size_t>{2, 2}));
  EXPECT_EQ(progress_calls, 2);
  ASSERT_EQ(summary.first_errors.size(), 2u);
  EXPECT_EQ(summary.first_errors[0].line, 3u);
  EXPECT_EQ(summary.first_errors[1].line, 4u);
  EXPECT_NE(summary.first_errors[1].message.find("id 3 exists"), std::string::npos);
  EXPECT_NE(summary.SummaryLine().find("imported 3, failed 2 in"), std::string::npos);
}

}  // namespace
}  // namespace s3db::cli

namespace s3db::cli {
namespace {

TEST(JsonInput, RefusesTextAfterTheValue) {
  EXPECT_TRUE(ParseJsonInput(" {\"a\":1} \n").has_value());
  EXPECT_FALSE(ParseJsonInput("{\"a\":1} x").has_value());
  EXPECT_FALSE(ParseJsonInput("[1]]").has_value());
  EXPECT_FALSE(ParseJsonInput("007").has_value());
  EXPECT_FALSE(ParseJsonObjectInput("[1]").has_value());
  EXPECT_TRUE(IsJsonNumber("-0.5e+3"));
  EXPECT_TRUE(IsJsonNumber("12"));
  EXPECT_FALSE(IsJsonNumber("007"));
  EXPECT_FALSE(IsJsonNumber("1."));
  EXPECT_FALSE(IsJsonNumber("+1"));
  EXPECT_FALSE(IsJsonNumber(""));
}

TEST(JsonInput, ParametersNameThemselvesAndTheExpectedForm) {
  EXPECT_EQ(*ParseCountParameter("limit", "0"), 0u);
  EXPECT_EQ(*ParseCountParameter("after", "18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(ParseCountParameter("limit", "abc").error().message,
            "limit: 'abc' is not a non-negative integer");
  EXPECT_EQ(ParseCountParameter("limit", "-1").error().message,
            "limit: '-1' is not a non-negative integer");
  EXPECT_FALSE(ParseCountParameter("limit", " 1").has_value());
  EXPECT_NE(ParseCountParameter("after", "18446744073709551616").error().message.find("too large"),
            std::string::npos);
  EXPECT_NE(ParseCountParameter("n", "11", 10).error().message.find("at most 10"),
            std::string::npos);
  EXPECT_EQ(*ParseCountParameter("n", "10", 10), 10u);
  EXPECT_TRUE(*ParseBoolParameter("upsert", "true"));
  EXPECT_FALSE(*ParseBoolParameter("upsert", "false"));
  EXPECT_EQ(ParseBoolParameter("upsert", "1").error().message, "upsert: '1' is not true or false");
}

}  // namespace
}  // namespace s3db::cli
