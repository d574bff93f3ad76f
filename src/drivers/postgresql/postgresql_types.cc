#include "drivers/postgresql/postgresql_types.h"

#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace s3db::replicator::postgresql {
namespace {

constexpr std::int64_t kMaxVarcharLength = 10485760;    // PostgreSQL's limit for varchar(n)
constexpr double kMaxExactDouble = 9007199254740992.0;  // 2^53

std::string FormatDouble(double number) {
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, number);
  return std::string(buffer, end);
}

std::size_t CountCodePoints(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

const char* KindName(const Json& value) {
  switch (value.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return "an integer";
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "a value";
}

std::string Mismatch(const Json& value, const ColumnType& type, std::string_view detail = {}) {
  std::string message =
      std::string(KindName(value)) + " does not fit a column of type " + type.sql_name;
  if (!detail.empty()) message += ": " + std::string(detail);
  return message;
}

// The value as an integer in [low, high], if it is one exactly.
std::optional<std::int64_t> ExactInteger(const Json& value, std::int64_t low, std::int64_t high) {
  if (value.is_int64()) {
    std::int64_t number = value.get_int64();
    if (number >= low && number <= high) return number;
    return std::nullopt;
  }
  if (value.is_uint64()) {
    std::uint64_t number = value.get_uint64();
    if (number <= static_cast<std::uint64_t>(high)) return static_cast<std::int64_t>(number);
    return std::nullopt;
  }
  if (value.is_double()) {
    double number = value.get_double();
    if (number != std::floor(number) || std::fabs(number) > kMaxExactDouble) return std::nullopt;
    if (number < static_cast<double>(low) || number > static_cast<double>(high)) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(number);
  }
  return std::nullopt;
}

std::string NumberText(const Json& value) {
  if (value.is_int64()) return std::to_string(value.get_int64());
  if (value.is_uint64()) return std::to_string(value.get_uint64());
  return FormatDouble(value.get_double());
}

bool IsDigits(std::string_view text, std::size_t begin, std::size_t count) {
  if (begin + count > text.size()) return false;
  for (std::size_t i = begin; i < begin + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

int Number(std::string_view text, std::size_t begin, std::size_t count) {
  int result = 0;
  for (std::size_t i = begin; i < begin + count; ++i) result = result * 10 + (text[i] - '0');
  return result;
}

// Most text is ASCII, which is valid UTF-8: checked eight bytes at a time.
bool IsAscii(std::string_view text) {
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if ((word & 0x8080808080808080ull) != 0) return false;
  }
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0x80) != 0) return false;
  }
  return true;
}

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

// Checks YYYY-MM-DD at the start of `text`.
bool HasIsoDatePrefix(std::string_view text) {
  if (!IsDigits(text, 0, 4) || text.size() < 10 || text[4] != '-' || !IsDigits(text, 5, 2) ||
      text[7] != '-' || !IsDigits(text, 8, 2)) {
    return false;
  }
  int year = Number(text, 0, 4);
  int month = Number(text, 5, 2);
  int day = Number(text, 8, 2);
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  int days = kDaysInMonth[month - 1] + (month == 2 && IsLeapYear(year) ? 1 : 0);
  return day <= days;
}

}  // namespace

std::optional<std::string> IdentifierProblem(std::string_view name) {
  if (name.empty()) return "an empty name cannot be a PostgreSQL identifier";
  if (name.size() > kMaxIdentifierBytes) {
    return "name is " + std::to_string(name.size()) + " bytes long; PostgreSQL identifiers " +
           "hold at most " + std::to_string(kMaxIdentifierBytes) + " bytes";
  }
  if (name.find('\0') != std::string_view::npos) return "name contains a NUL character";
  if (!IsValidUtf8(name)) return "name is not valid UTF-8";
  return std::nullopt;
}

std::string QuoteIdentifier(std::string_view name) {
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string QualifiedName(std::string_view schema, std::string_view table) {
  return QuoteIdentifier(schema) + "." + QuoteIdentifier(table);
}

namespace {
constexpr std::size_t kArrayHeaderBytes = 20;  // ndim, has-null, element type, size, lower bound

void WriteInt32(char* out, std::uint32_t value) {
  out[0] = static_cast<char>(value >> 24);
  out[1] = static_cast<char>(value >> 16);
  out[2] = static_cast<char>(value >> 8);
  out[3] = static_cast<char>(value);
}
}  // namespace

BinaryArray::BinaryArray(Element element) : element_(element), data_(kArrayHeaderBytes, '\0') {}

void BinaryArray::PutInt32(std::uint32_t value) {
  char bytes[4];
  WriteInt32(bytes, value);
  data_.append(bytes, 4);
}

void BinaryArray::Add(std::string_view text) {
  PutInt32(static_cast<std::uint32_t>(text.size()));
  data_.append(text);
  ++count_;
}

void BinaryArray::Add(std::int64_t number) {
  auto bits = static_cast<std::uint64_t>(number);
  PutInt32(8);
  PutInt32(static_cast<std::uint32_t>(bits >> 32));
  PutInt32(static_cast<std::uint32_t>(bits));
  ++count_;
}

void BinaryArray::AddNull() {
  PutInt32(0xFFFFFFFFu);  // length -1
  has_null_ = true;
  ++count_;
}

std::string BinaryArray::Finish() && {
  if (count_ == 0) {  // an empty array has no dimensions
    std::string empty(12, '\0');
    WriteInt32(empty.data() + 8, static_cast<std::uint32_t>(element_));
    return empty;
  }
  WriteInt32(data_.data(), 1);
  WriteInt32(data_.data() + 4, has_null_ ? 1 : 0);
  WriteInt32(data_.data() + 8, static_cast<std::uint32_t>(element_));
  WriteInt32(data_.data() + 12, count_);
  WriteInt32(data_.data() + 16, 1);
  return std::move(data_);
}

ColumnType MakeColumnType(ColumnKind kind, std::int64_t max_length) {
  ColumnType type;
  type.kind = kind;
  switch (kind) {
    case ColumnKind::kText:
      type.sql_name = "text";
      break;
    case ColumnKind::kVarchar:
      if (max_length > 0 && max_length <= kMaxVarcharLength) {
        type.max_length = max_length;
        type.sql_name = "character varying(" + std::to_string(max_length) + ")";
      } else {
        type.sql_name = "character varying";
      }
      type.cast_name = "character varying";
      return type;
    case ColumnKind::kBigint:
      type.sql_name = "bigint";
      break;
    case ColumnKind::kInteger:
      type.sql_name = "integer";
      break;
    case ColumnKind::kSmallint:
      type.sql_name = "smallint";
      break;
    case ColumnKind::kNumeric:
      type.sql_name = "numeric";
      break;
    case ColumnKind::kDouble:
      type.sql_name = "double precision";
      break;
    case ColumnKind::kReal:
      type.sql_name = "real";
      break;
    case ColumnKind::kBoolean:
      type.sql_name = "boolean";
      break;
    case ColumnKind::kTimestamptz:
      type.sql_name = "timestamp with time zone";
      break;
    case ColumnKind::kTimestamp:
      type.sql_name = "timestamp without time zone";
      break;
    case ColumnKind::kDate:
      type.sql_name = "date";
      break;
    case ColumnKind::kJsonb:
      type.sql_name = "jsonb";
      break;
    case ColumnKind::kJson:
      type.sql_name = "json";
      break;
    case ColumnKind::kOther:
      type.sql_name = "text";
      break;
  }
  type.cast_name = type.sql_name;
  return type;
}

ColumnType ColumnTypeFromCatalog(std::string_view type_name, std::string_view declared,
                                 std::string_view base, int type_modifier) {
  ColumnType type;
  type.sql_name = std::string(declared);
  type.cast_name = std::string(base);
  if (type_name == "text") {
    type.kind = ColumnKind::kText;
  } else if (type_name == "varchar" || type_name == "bpchar") {
    type.kind = ColumnKind::kVarchar;
    // For character types atttypmod is the length plus the 4-byte header, or -1.
    if (type_modifier >= 4) type.max_length = type_modifier - 4;
  } else if (type_name == "int8") {
    type.kind = ColumnKind::kBigint;
  } else if (type_name == "int4") {
    type.kind = ColumnKind::kInteger;
  } else if (type_name == "int2") {
    type.kind = ColumnKind::kSmallint;
  } else if (type_name == "numeric") {
    type.kind = ColumnKind::kNumeric;
  } else if (type_name == "float8") {
    type.kind = ColumnKind::kDouble;
  } else if (type_name == "float4") {
    type.kind = ColumnKind::kReal;
  } else if (type_name == "bool") {
    type.kind = ColumnKind::kBoolean;
  } else if (type_name == "timestamptz") {
    type.kind = ColumnKind::kTimestamptz;
  } else if (type_name == "timestamp") {
    type.kind = ColumnKind::kTimestamp;
  } else if (type_name == "date") {
    type.kind = ColumnKind::kDate;
  } else if (type_name == "jsonb") {
    type.kind = ColumnKind::kJsonb;
  } else if (type_name == "json") {
    type.kind = ColumnKind::kJson;
  } else {
    type.kind = ColumnKind::kOther;
  }
  return type;
}

std::optional<ColumnType> ColumnTypeForAttribute(const Attribute& attribute, bool exact_numbers) {
  if (!attribute.children.empty()) return MakeColumnType(ColumnKind::kJsonb);
  switch (attribute.type) {
    case AttributeType::kString:
    case AttributeType::kEmail:
    case AttributeType::kUrl:
    case AttributeType::kUuid:
      if (attribute.max_length && *attribute.max_length > 0 &&
          *attribute.max_length <= static_cast<std::uint64_t>(kMaxVarcharLength)) {
        return MakeColumnType(ColumnKind::kVarchar,
                              static_cast<std::int64_t>(*attribute.max_length));
      }
      return MakeColumnType(ColumnKind::kText);
    case AttributeType::kNumber:
      return MakeColumnType(exact_numbers ? ColumnKind::kNumeric : ColumnKind::kDouble);
    case AttributeType::kInteger:
      return MakeColumnType(ColumnKind::kBigint);
    case AttributeType::kBoolean:
      return MakeColumnType(ColumnKind::kBoolean);
    case AttributeType::kDatetime:
      return MakeColumnType(ColumnKind::kTimestamptz);
    case AttributeType::kArray:
    case AttributeType::kObject:
    case AttributeType::kJson:
      return MakeColumnType(ColumnKind::kJsonb);
    case AttributeType::kAny:
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<ColumnKind> InferColumnKind(const Json& value) {
  switch (value.kind()) {
    case boost::json::kind::null:
      return std::nullopt;
    case boost::json::kind::bool_:
      return ColumnKind::kBoolean;
    case boost::json::kind::int64:
      return ColumnKind::kBigint;
    case boost::json::kind::uint64:
      if (value.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) return ColumnKind::kBigint;
      return ColumnKind::kNumeric;
    case boost::json::kind::double_:
      return ColumnKind::kDouble;
    case boost::json::kind::string:
      return ColumnKind::kText;
    case boost::json::kind::array:
    case boost::json::kind::object:
      return ColumnKind::kJsonb;
  }
  return ColumnKind::kJsonb;
}

ColumnKind WidenInferredKind(ColumnKind a, ColumnKind b) {
  if (a == b) return a;
  if (a == ColumnKind::kJsonb || b == ColumnKind::kJsonb) return ColumnKind::kJsonb;
  auto is_number = [](ColumnKind kind) {
    return kind == ColumnKind::kBigint || kind == ColumnKind::kDouble ||
           kind == ColumnKind::kNumeric;
  };
  if (is_number(a) && is_number(b)) {
    if (a == ColumnKind::kNumeric || b == ColumnKind::kNumeric) return ColumnKind::kNumeric;
    return ColumnKind::kDouble;
  }
  if (a == ColumnKind::kText || b == ColumnKind::kText) return ColumnKind::kText;
  return ColumnKind::kJsonb;  // boolean mixed with numbers
}

std::string CastExpression(std::string_view operand, const ColumnType& type) {
  std::string expression(operand);
  switch (type.kind) {
    case ColumnKind::kText:
    case ColumnKind::kVarchar:
      return expression;  // the assignment checks the length
    case ColumnKind::kTimestamp:
      return expression + "::timestamptz::timestamp";
    default:
      return expression + "::" + type.cast_name;
  }
}

ValueCheck CheckValue(const Json& value, NulPolicy policy) {
  ValueCheck check;
  auto check_text = [&](std::string_view text) {
    if (!IsAscii(text) && !IsValidUtf8(text)) {
      check.problem = "a string is not valid UTF-8";
    } else if (text.find('\0') != std::string_view::npos) {
      if (policy == NulPolicy::kReject) {
        check.problem = "a string contains a NUL character, which PostgreSQL cannot store";
      } else {
        check.has_nul = true;
      }
    }
  };
  switch (value.kind()) {
    case boost::json::kind::string:
      check_text(value.get_string());
      break;
    case boost::json::kind::double_:
      if (!std::isfinite(value.get_double())) check.problem = "a number is NaN or infinite";
      break;
    case boost::json::kind::array:
      for (const Json& item : value.get_array()) {
        ValueCheck inner = CheckValue(item, policy);
        check.has_nul = check.has_nul || inner.has_nul;
        if (inner.problem) return inner;
      }
      break;
    case boost::json::kind::object:
      for (const auto& member : value.get_object()) {
        check_text(member.key());
        if (check.problem) return check;
        ValueCheck inner = CheckValue(member.value(), policy);
        check.has_nul = check.has_nul || inner.has_nul;
        if (inner.problem) return inner;
      }
      break;
    default:
      break;
  }
  return check;
}

std::size_t StripNul(Json& value) {
  std::size_t removed = 0;
  auto strip = [&](std::string_view text) {
    std::string clean;
    clean.reserve(text.size());
    for (char c : text) {
      if (c == '\0') {
        ++removed;
      } else {
        clean += c;
      }
    }
    return clean;
  };
  if (value.is_string()) {
    if (value.get_string().find('\0') != boost::json::string::npos) {
      value = boost::json::string(strip(value.get_string()));
    }
  } else if (value.is_array()) {
    for (Json& item : value.get_array()) removed += StripNul(item);
  } else if (value.is_object()) {
    JsonObject& object = value.get_object();
    JsonObject cleaned;
    bool keys_changed = false;
    for (auto& member : object) {
      removed += StripNul(member.value());
      if (member.key().find('\0') != std::string_view::npos) keys_changed = true;
    }
    if (keys_changed) {
      for (auto& member : object) cleaned[strip(member.key())] = std::move(member.value());
      object = std::move(cleaned);
    }
  }
  return removed;
}

tl::expected<std::optional<std::string>, std::string> EncodeValue(const Json& value,
                                                                  const ColumnType& type) {
  using Unexpected = tl::unexpected<std::string>;
  if (value.is_null()) return std::nullopt;
  bool is_number = value.is_int64() || value.is_uint64() || value.is_double();

  switch (type.kind) {
    case ColumnKind::kText:
    case ColumnKind::kVarchar: {
      std::string text;
      if (value.is_string()) {
        text = std::string(value.get_string());
      } else if (is_number) {
        text = NumberText(value);
      } else if (value.is_bool()) {
        text = value.get_bool() ? "true" : "false";
      } else {
        return Unexpected(Mismatch(value, type));
      }
      if (type.max_length >= 0 &&
          CountCodePoints(text) > static_cast<std::size_t>(type.max_length)) {
        return Unexpected(Mismatch(
            value, type, "longer than " + std::to_string(type.max_length) + " characters"));
      }
      return text;
    }
    case ColumnKind::kBigint:
    case ColumnKind::kInteger:
    case ColumnKind::kSmallint: {
      std::int64_t low = INT64_MIN;
      std::int64_t high = INT64_MAX;
      if (type.kind == ColumnKind::kInteger) {
        low = INT32_MIN;
        high = INT32_MAX;
      } else if (type.kind == ColumnKind::kSmallint) {
        low = INT16_MIN;
        high = INT16_MAX;
      }
      if (!is_number) return Unexpected(Mismatch(value, type));
      auto number = ExactInteger(value, low, high);
      if (!number) {
        return Unexpected(
            Mismatch(value, type, NumberText(value) + " is not a whole number in range"));
      }
      return std::to_string(*number);
    }
    case ColumnKind::kNumeric:
      if (!is_number) return Unexpected(Mismatch(value, type));
      return NumberText(value);
    case ColumnKind::kDouble:
    case ColumnKind::kReal:
      if (!is_number) return Unexpected(Mismatch(value, type));
      if (type.kind == ColumnKind::kDouble && (value.is_int64() || value.is_uint64()) &&
          !ExactInteger(value, -(std::int64_t{1} << 53), std::int64_t{1} << 53)) {
        return Unexpected(Mismatch(value, type,
                                   NumberText(value) + " cannot be stored exactly (beyond 2^53);"
                                                       " use a numeric column"));
      }
      return NumberText(value);
    case ColumnKind::kBoolean:
      if (!value.is_bool()) return Unexpected(Mismatch(value, type));
      return std::string(value.get_bool() ? "true" : "false");
    case ColumnKind::kTimestamptz:
    case ColumnKind::kTimestamp:
      if (!value.is_string() || !IsIsoTimestamp(value.get_string())) {
        return Unexpected(Mismatch(value, type, "expected an ISO 8601 timestamp"));
      }
      return std::string(value.get_string());
    case ColumnKind::kDate:
      if (!value.is_string() || !IsIsoDate(value.get_string())) {
        return Unexpected(Mismatch(value, type, "expected an ISO 8601 date (YYYY-MM-DD)"));
      }
      return std::string(value.get_string());
    case ColumnKind::kJsonb:
    case ColumnKind::kJson:
      return ToJson(value);
    case ColumnKind::kOther:
      if (value.is_string()) return std::string(value.get_string());
      return ToJson(value);
  }
  return Unexpected(Mismatch(value, type));
}

bool IsIsoDate(std::string_view text) { return text.size() == 10 && HasIsoDatePrefix(text); }

bool IsIsoTimestamp(std::string_view text) {
  if (!HasIsoDatePrefix(text)) return false;
  if (text.size() == 10) return true;
  char separator = text[10];
  if (separator != 'T' && separator != 't' && separator != ' ') return false;

  std::size_t i = 11;
  if (!IsDigits(text, i, 2) || i + 2 >= text.size() || text[i + 2] != ':' ||
      !IsDigits(text, i + 3, 2)) {
    return false;
  }
  if (Number(text, i, 2) > 23 || Number(text, i + 3, 2) > 59) return false;
  i += 5;
  if (i < text.size() && text[i] == ':') {
    if (!IsDigits(text, i + 1, 2) || Number(text, i + 1, 2) > 60) return false;
    i += 3;
    if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
      std::size_t digits = 0;
      while (i + 1 + digits < text.size() && IsDigits(text, i + 1 + digits, 1)) ++digits;
      if (digits == 0) return false;
      i += 1 + digits;
    }
  }
  if (i == text.size()) return true;

  if (text[i] == 'Z' || text[i] == 'z') return i + 1 == text.size();
  if (text[i] != '+' && text[i] != '-') return false;
  ++i;
  if (!IsDigits(text, i, 2) || Number(text, i, 2) > 15) return false;
  i += 2;
  if (i == text.size()) return true;
  if (text[i] == ':') ++i;
  if (!IsDigits(text, i, 2) || Number(text, i, 2) > 59) return false;
  return i + 2 == text.size();
}

}  // namespace s3db::replicator::postgresql
