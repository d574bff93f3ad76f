#include "s3db/json.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace s3db {
namespace {

TEST(JsonTest, IntegersKeepEveryDigit) {
  auto parsed =
      ParseJson(R"({"a":9007199254740993,"b":18446744073709551615,"c":-9223372036854775808})");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->at("a").as_int64(), 9007199254740993LL);
  EXPECT_EQ(parsed->at("b").as_uint64(), 18446744073709551615ULL);
  EXPECT_EQ(ToJson(*parsed),
            R"({"a":9007199254740993,"b":18446744073709551615,"c":-9223372036854775808})");
}

TEST(JsonTest, IntegersBeyond64BitsAreRejectedNotRounded) {
  auto parsed = ParseJson(R"({"big":18446744073709551616})");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("outside the 64-bit range"), std::string::npos)
      << parsed.error().message;
  EXPECT_FALSE(ParseJson("-9223372036854775809"));
  auto fractional = ParseJson("1.5e300");
  S3DB_ASSERT_OK(fractional);
  S3DB_ASSERT_OK(ParseJson("-0"));
}

TEST(JsonTest, TextAfterTheValueIsRejected) {
  EXPECT_FALSE(ParseJson("007"));
  EXPECT_FALSE(ParseJson(R"({"a":1} xyz)"));
  EXPECT_FALSE(ParseJson("1 2"));
  S3DB_EXPECT_OK(ParseJson("{\"a\":1}  \n"));
}

TEST(JsonTest, InvalidUtf8IsRejected) {
  auto parsed = ParseJson("{\"a\":\"\xff\xfe\"}");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("UTF-8"), std::string::npos) << parsed.error().message;
}

TEST(JsonTest, DeepNestingUpToTheLimitParses) {
  std::string deep(1000, '[');
  deep += std::string(1000, ']');
  S3DB_ASSERT_OK(ParseJson(deep));
  std::string too_deep(3000, '[');
  too_deep += std::string(3000, ']');
  auto parsed = ParseJson(too_deep);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message.find("nesting deeper"), std::string::npos);
}

TEST(JsonTest, DeepMergeMergesObjectsAndReplacesTheRest) {
  auto target = ParseJsonObject(R"({"a":{"x":1,"y":2},"list":[1,2],"keep":true})");
  auto patch = ParseJsonObject(R"({"a":{"y":3,"z":4},"list":[9],"new":null})");
  S3DB_ASSERT_OK(target);
  S3DB_ASSERT_OK(patch);
  DeepMerge(*target, *patch);
  EXPECT_EQ(ToJson(*target), R"({"a":{"x":1,"y":3,"z":4},"list":[9],"keep":true,"new":null})");
}

TEST(JsonTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain ✓ 😀 e\xcc\x81"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
}

TEST(JsonTest, Utf8ValidationFindsABadByteAtEveryPosition) {
  // The validator skips ASCII eight bytes at a time: a bad byte must be found wherever it is.
  for (std::size_t length = 1; length <= 40; ++length) {
    for (std::size_t at = 0; at < length; ++at) {
      std::string text(length, 'a');
      EXPECT_TRUE(IsValidUtf8(text));
      text[at] = '\xff';
      EXPECT_FALSE(IsValidUtf8(text)) << "length " << length << ", bad byte at " << at;
      text[at] = 'a';
      if (at + 2 <= length) {
        text.replace(at, 2, "\xc3\xa9");  // é
        EXPECT_TRUE(IsValidUtf8(text)) << "length " << length << ", é at " << at;
      }
    }
  }
}

TEST(JsonTest, EveryCharacterThatNeedsEscapingIsEscapedAtEveryPosition) {
  // Strings are copied eight plain bytes at a time: each special character, at each position
  // of strings around that width, must come out escaped and parse back to the same text.
  std::vector<std::string> specials = {
      "\"", "\\", "\n", "\r", "\t", "\b", "\f", std::string(1, '\0'), "\x01", "\x1f", "\x7f", "é"};
  for (const std::string& special : specials) {
    for (std::size_t length = 1; length <= 24; ++length) {
      for (std::size_t at = 0; at < length; ++at) {
        std::string text(length, 'x');
        text.replace(at, 1, special);
        JsonObject record;
        record["s"] = text;
        std::string json = ToJson(record);
        for (unsigned char c : json) {
          EXPECT_GE(c, 0x20) << "a raw control character in " << json;
        }
        auto parsed = ParseJsonObject(json);
        ASSERT_TRUE(parsed.has_value()) << json;
        EXPECT_EQ(std::string(parsed->at("s").as_string()), text) << json;
      }
    }
  }
}

}  // namespace
}  // namespace s3db
