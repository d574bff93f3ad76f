// formats::TimeZone: UTC, fixed offsets and IANA zone names (with daylight saving time).
#include "formats/time_zone.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "formats/datetime.h"

namespace s3db::formats {
namespace {

std::int64_t Ms(const char* iso) {
  auto micros = ParseIso8601Micros(iso);
  EXPECT_TRUE(micros.has_value()) << iso;
  return micros ? *micros / 1000 : 0;
}

std::int64_t LocalOf(const char* zone, const char* iso) {
  auto parsed = TimeZone::Parse(zone);
  EXPECT_TRUE(parsed.has_value()) << zone << ": " << parsed.error().message;
  return parsed ? parsed->LocalMs(Ms(iso)) : 0;
}

TEST(TimeZone, UtcAndFixedOffsets) {
  EXPECT_EQ(TimeZone().LocalMs(Ms("2025-10-20T23:30:00Z")), Ms("2025-10-20T23:30:00Z"));
  EXPECT_EQ(LocalOf("UTC", "2025-10-20T23:30:00Z"), Ms("2025-10-20T23:30:00Z"));
  EXPECT_EQ(LocalOf("Z", "2025-10-20T23:30:00Z"), Ms("2025-10-20T23:30:00Z"));
  EXPECT_EQ(LocalOf("+02:00", "2025-10-20T23:30:00Z"), Ms("2025-10-21T01:30:00Z"));
  EXPECT_EQ(LocalOf("-0330", "2025-10-20T02:00:00Z"), Ms("2025-10-19T22:30:00Z"));
  EXPECT_EQ(LocalOf("+05", "2025-10-20T20:00:00Z"), Ms("2025-10-21T01:00:00Z"));
}

TEST(TimeZone, NamedZonesFollowDaylightSavingTime) {
  // Paris: +01:00 until 2025-03-30T01:00Z, then +02:00.
  EXPECT_EQ(LocalOf("Europe/Paris", "2025-03-30T00:30:00Z"), Ms("2025-03-30T01:30:00Z"));
  EXPECT_EQ(LocalOf("Europe/Paris", "2025-03-30T01:30:00Z"), Ms("2025-03-30T03:30:00Z"));
  // New York: -05:00 in January, -04:00 in July; both cross midnight back to the day before.
  EXPECT_EQ(LocalOf("America/New_York", "2025-01-15T03:00:00Z"), Ms("2025-01-14T22:00:00Z"));
  EXPECT_EQ(LocalOf("America/New_York", "2025-07-15T03:00:00Z"), Ms("2025-07-14T23:00:00Z"));
  EXPECT_EQ(LocalOf("Asia/Kolkata", "2025-10-20T20:00:00Z"), Ms("2025-10-21T01:30:00Z"));
  auto sao_paulo = TimeZone::Parse("America/Sao_Paulo");
  ASSERT_TRUE(sao_paulo.has_value());
  EXPECT_EQ(sao_paulo->name(), "America/Sao_Paulo");
}

TEST(TimeZone, UnknownZonesAndBadOffsetsSayWhatWorks) {
  for (const char* bad : {"Mars/Base", "+25:00", "+2", "+02:0x", "", "utc+2"}) {
    auto parsed = TimeZone::Parse(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find("timezone: '" + std::string(bad) + "'"),
              std::string::npos)
        << parsed.error().message;
    EXPECT_NE(parsed.error().message.find("'Europe/Paris'"), std::string::npos)
        << parsed.error().message;
  }
}

}  // namespace
}  // namespace s3db::formats
