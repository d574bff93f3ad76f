#include "formats/datetime.h"

#include <string>

namespace s3db::formats {

std::int64_t DaysFromCivil(std::int64_t year, unsigned month, unsigned day) {
  // Count from 0000-03-01 so that the leap day is the last day of a "year".
  year -= month <= 2 ? 1 : 0;
  std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  std::int64_t year_of_era = year - era * 400;
  unsigned shifted_month = month > 2 ? month - 3 : month + 9;
  std::int64_t day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
  std::int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

namespace {

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool AtEnd() const { return position_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[position_]; }
  bool Take(char expected) {
    if (Peek() != expected) return false;
    ++position_;
    return true;
  }
  // Reads exactly `count` digits.
  bool Digits(int count, int& value) {
    value = 0;
    for (int i = 0; i < count; ++i) {
      char c = Peek();
      if (c < '0' || c > '9') return false;
      value = value * 10 + (c - '0');
      ++position_;
    }
    return true;
  }
  std::size_t position() const { return position_; }

 private:
  std::string_view text_;
  std::size_t position_ = 0;
};

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[month - 1];
}

tl::unexpected<Error> Invalid(std::string_view text, std::string_view problem) {
  std::string shown(text.substr(0, 64));
  return MakeError(ErrorCode::kInvalidArgument,
                   "'" + shown + "' is not an ISO 8601 date-time: " + std::string(problem));
}

}  // namespace

Result<std::int64_t> ParseIso8601Micros(std::string_view text) {
  Cursor in(text);
  int year = 0, month = 0, day = 0;
  if (!in.Digits(4, year) || !in.Take('-') || !in.Digits(2, month) || !in.Take('-') ||
      !in.Digits(2, day)) {
    return Invalid(text, "expected YYYY-MM-DD");
  }
  if (month < 1 || month > 12) return Invalid(text, "month out of range");
  if (day < 1 || day > DaysInMonth(year, month)) return Invalid(text, "day out of range");

  int hour = 0, minute = 0, second = 0;
  std::int64_t micros = 0;
  std::int64_t offset_minutes = 0;
  if (!in.AtEnd()) {
    if (!in.Take('T') && !in.Take('t') && !in.Take(' ')) {
      return Invalid(text, "expected 'T' between date and time");
    }
    if (!in.Digits(2, hour) || !in.Take(':') || !in.Digits(2, minute)) {
      return Invalid(text, "expected HH:MM");
    }
    if (in.Take(':')) {
      if (!in.Digits(2, second)) return Invalid(text, "expected seconds");
      if (in.Take('.') || in.Take(',')) {
        int digits = 0;
        while (in.Peek() >= '0' && in.Peek() <= '9') {
          int digit = in.Peek() - '0';
          in.Take(in.Peek());
          ++digits;
          if (digits <= 6) {
            micros = micros * 10 + digit;
          } else if (digit != 0) {
            return Invalid(text, "sub-microsecond precision cannot be stored");
          }
          if (digits > 9) return Invalid(text, "more than 9 fraction digits");
        }
        if (digits == 0) return Invalid(text, "expected fraction digits");
        for (int i = digits; i < 6; ++i) micros *= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return Invalid(text, "time out of range");

    if (in.Take('Z') || in.Take('z')) {
      offset_minutes = 0;
    } else if (in.Peek() == '+' || in.Peek() == '-') {
      int sign = in.Peek() == '-' ? -1 : 1;
      in.Take(in.Peek());
      int offset_hours = 0, offset_mins = 0;
      if (!in.Digits(2, offset_hours)) return Invalid(text, "expected offset hours");
      if (!in.AtEnd()) {
        in.Take(':');
        if (!in.Digits(2, offset_mins)) return Invalid(text, "expected offset minutes");
      }
      if (offset_hours > 23 || offset_mins > 59) return Invalid(text, "offset out of range");
      offset_minutes = sign * (offset_hours * 60 + offset_mins);
    }
    if (!in.AtEnd()) return Invalid(text, "unexpected text after the time");
  }

  std::int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return seconds * 1000000 + micros;
}

}  // namespace s3db::formats
