// Inputs found by the libFuzzer targets in fuzz/ (scripts/fuzz.sh), kept as tests so that the
// bugs they showed stay fixed. Each test names the target that found it.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/csv_reader.h"
#include "formats/byte_sink.h"
#include "formats/csv_writer.h"
#include "s3db/json.h"
#include "s3db/storage.h"
#include "test_util.h"

namespace s3db {
namespace {

// fuzz_json_record: "1841e308" parsed as infinity, which ToJson then wrote as "Infinity"
// (not JSON): a silent change. Numbers beyond the double range are now refused.
TEST(FuzzRegression, JsonNumberBeyondTheDoubleRangeIsRefused) {
  for (const char* text : {R"({"n":1841e308})", "[1e400]", "-1e400", "[123123e100000]"}) {
    auto parsed = ParseJson(text);
    ASSERT_FALSE(parsed.has_value()) << text << " gave " << ToJson(*parsed);
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find("64-bit float"), std::string::npos)
        << parsed.error().message;
  }
  // The largest finite double and an underflow to zero stay accepted.
  auto largest = ParseJson("1.7976931348623157e308");
  ASSERT_TRUE(largest.has_value());
  EXPECT_EQ(ToJson(*ParseJson(ToJson(*largest))), ToJson(*largest));
  EXPECT_TRUE(ParseJson("1e-400").has_value());
}

// fuzz_csv_writer: a first row without fields, then a row adding two columns, gave the
// first record three cells under a two-column header (padding assumed at least one cell).
TEST(FuzzRegression, CsvRowsWrittenBeforeTheFirstColumnGetTheRightWidth) {
  for (bool flush_between : {false, true}) {
    auto sink = std::make_unique<formats::MemoryByteSink>();
    formats::MemoryByteSink* memory = sink.get();
    auto writer = formats::CsvWriter::Make({}, {}, std::move(sink));
    ASSERT_TRUE(writer.has_value());
    S3DB_ASSERT_OK((*writer)->Add(JsonObject{}));
    if (flush_between) S3DB_ASSERT_OK((*writer)->Flush());
    S3DB_ASSERT_OK((*writer)->Add(JsonObject{{"id", nullptr}, {"", nullptr}}));
    S3DB_ASSERT_OK((*writer)->Add(JsonObject{{"id", "a"}, {"x", 1}}));
    S3DB_ASSERT_OK((*writer)->Finish());

    std::istringstream input(memory->Snapshot());
    cli::CsvReader reader(input);
    std::vector<std::vector<std::string>> records;
    std::vector<std::string> fields;
    while (true) {
      auto next = reader.Next(fields);
      ASSERT_TRUE(next.has_value()) << next.error().message;
      if (!*next) break;
      records.push_back(fields);
    }
    ASSERT_EQ(records.size(), 4u) << memory->Snapshot();
    EXPECT_EQ(records[0], (std::vector<std::string>{"id", "", "x"}));
    for (const auto& record : records) EXPECT_EQ(record.size(), 3u) << memory->Snapshot();
    EXPECT_EQ(records[3], (std::vector<std::string>{"a", "", "1"}));
  }
}

// fuzz_json_record: a double with a long mantissa was rounded off by an ulp (Boost.JSON's fast
// path), so it came back from ToJson + ParseJson as another number. Now rounded correctly.
TEST(FuzzRegression, LongMantissaDoublesAreRoundedCorrectly) {
  std::string text = std::string(96, '7') + "0.0";
  auto parsed = ParseJson(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_TRUE(parsed->is_double());
  EXPECT_EQ(parsed->as_double(), std::strtod(text.c_str(), nullptr));
  auto again = ParseJson(ToJson(*parsed));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->as_double(), parsed->as_double()) << ToJson(*parsed);
  for (const char* more : {"0.30000000000000004441", "123456789012345678901234567890.5e-3",
                           "-2.2250738585072011e-308", "9007199254740993.0"}) {
    auto value = ParseJson(more);
    ASSERT_TRUE(value.has_value()) << more;
    EXPECT_EQ(value->as_double(), std::strtod(more, nullptr)) << more;
  }
}

// fuzz_connection_string: the error for an invalid connection string quoted it through
// RedactSecrets, which (made for free text) stops at white space, so a key holding a space or
// a CR left the secret after it visible in the message.
TEST(FuzzRegression, ConnectionStringErrorsHideTheSecretWhateverTheKeyHolds) {
  for (const char* text : {"s3://my key:SuperSecret123@Not_A_Bucket",
                           "s3://a\rb:SuperSecret123@Not_A_Bucket",
                           "http://k\"ey:SuperSecret123@host:notaport/bucket"}) {
    auto parsed = ConnectionString::Parse(text);
    ASSERT_FALSE(parsed.has_value()) << text;
    EXPECT_EQ(parsed.error().message.find("SuperSecret123"), std::string::npos)
        << parsed.error().message;
    EXPECT_NE(parsed.error().message.find("***"), std::string::npos) << parsed.error().message;
  }
}

// fuzz_connection_string: "unknown scheme" quoted everything before the first "://" in lower
// case. In a mangled string that part held a key and secret, and its lower-case copy matched a
// secret typed later in the text. The part is now quoted only when it has a scheme's shape, and
// as typed; a string without a well-formed "scheme://" start is quoted with everything between
// its first ':' and its last '@' redacted.
TEST(FuzzRegression, UnknownSchemeErrorsNeverQuoteUserInfo) {
  for (const char* text : {"https:/\325/k:9003Aret@mittps://k:9003aret@min(cket",
                           "s3:/AKID:TopSecret99@x://bucket", "s3:/AKID:TopSecret99@bucket"}) {
    auto parsed = ConnectionString::Parse(text);
    ASSERT_FALSE(parsed.has_value()) << text;
    std::string lower = parsed.error().message;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(lower.find("9003aret"), std::string::npos) << parsed.error().message;
    EXPECT_EQ(lower.find("topsecret99"), std::string::npos) << parsed.error().message;
    EXPECT_NE(parsed.error().message.find("***"), std::string::npos) << parsed.error().message;
  }
  auto ftp = ConnectionString::Parse("FTP://x/y");
  ASSERT_FALSE(ftp.has_value());
  EXPECT_NE(ftp.error().message.find("unknown scheme 'FTP'"), std::string::npos)
      << ftp.error().message;
}

}  // namespace
}  // namespace s3db
