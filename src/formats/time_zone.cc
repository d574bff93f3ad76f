#include "formats/time_zone.h"

#include <date/tz.h>

#include <chrono>
#include <exception>

namespace s3db::formats {
namespace {

tl::unexpected<Error> Unsupported(std::string_view text, const std::string& why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   "timezone: '" + std::string(text) + "' " + why +
                       "; use 'UTC', a fixed offset like '+02:00', or a zone name like "
                       "'Europe/Paris'");
}

// "+HH:MM", "-HHMM", "+HH" -> minutes.
Result<int> ParseOffset(std::string_view text) {
  std::string digits;
  for (char c : text.substr(1)) {
    if (c == ':') continue;
    if (c < '0' || c > '9') return Unsupported(text, "is not an offset");
    digits.push_back(c);
  }
  if (digits.size() != 2 && digits.size() != 4) return Unsupported(text, "is not an offset");
  int hours = (digits[0] - '0') * 10 + (digits[1] - '0');
  int minutes = digits.size() == 4 ? (digits[2] - '0') * 10 + (digits[3] - '0') : 0;
  if (hours > 18 || minutes > 59) return Unsupported(text, "is out of range");
  int total = hours * 60 + minutes;
  return text[0] == '-' ? -total : total;
}

}  // namespace

Result<TimeZone> TimeZone::Parse(std::string_view text) {
  TimeZone zone;
  zone.name_ = std::string(text);
  if (text == "UTC" || text == "utc" || text == "Z") return zone;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    S3DB_ASSIGN_OR_RETURN(zone.fixed_offset_minutes_, ParseOffset(text));
    return zone;
  }
  try {
    zone.zone_ = date::locate_zone(std::string(text));
  } catch (const std::exception&) {
    return Unsupported(text, "is not in the time zone database (/usr/share/zoneinfo)");
  }
  return zone;
}

std::int64_t TimeZone::LocalMs(std::int64_t utc_ms) const {
  if (zone_ == nullptr) return utc_ms + std::int64_t{fixed_offset_minutes_} * 60000;
  const auto* zone = static_cast<const date::time_zone*>(zone_);
  date::sys_time<std::chrono::milliseconds> instant{std::chrono::milliseconds(utc_ms)};
  auto offset = zone->get_info(instant).offset;
  return utc_ms + std::chrono::duration_cast<std::chrono::milliseconds>(offset).count();
}

}  // namespace s3db::formats
