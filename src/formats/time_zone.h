// The time zone that decides which day a change belongs to (the file drivers' `timezone`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "s3db/error.h"

namespace s3db::formats {

class TimeZone {
 public:
  // UTC.
  TimeZone() = default;

  // "UTC", "Z", a fixed offset ("+02:00", "-0330", "+05"), or an IANA zone name
  // ("Europe/Paris", "America/Sao_Paulo") from the system's time zone database, whose offset
  // follows daylight saving time. Error kInvalidArgument names the option and what works.
  static Result<TimeZone> Parse(std::string_view text);

  // Milliseconds since the epoch shifted by this zone's offset at `utc_ms`: the local wall
  // clock read as if it were UTC, so that its UTC calendar day is the local day.
  std::int64_t LocalMs(std::int64_t utc_ms) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_ = "UTC";
  int fixed_offset_minutes_ = 0;
  const void* zone_ = nullptr;  // a date::time_zone of the system's database, or fixed
};

}  // namespace s3db::formats
