// ISO 8601 date-times to microseconds since the Unix epoch (UTC).
#pragma once

#include <cstdint>
#include <string_view>

#include "s3db/error.h"

namespace s3db::formats {

// Accepts "YYYY-MM-DD" (midnight UTC) and "YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][offset]"
// where offset is "Z", "+HH:MM", "+HHMM" or "+HH" (or '-'); no offset means UTC. Years
// 0000..9999. The fraction may have up to 9 digits, but digits past microseconds must be
// zero (the value would change otherwise). Error kInvalidArgument says what is wrong.
Result<std::int64_t> ParseIso8601Micros(std::string_view text);

// Days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t DaysFromCivil(std::int64_t year, unsigned month, unsigned day);

}  // namespace s3db::formats
