#include "formats/json_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace s3db::formats {
namespace {

// True when one of the eight bytes at `p` is a control character, '"' or '\\' (exact: the
// bit tricks below have no false negatives and are only ever asked "any of the eight?").
bool NeedsEscapeIn8(const char* p) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  std::uint64_t word;
  std::memcpy(&word, p, sizeof word);
  auto has_zero = [](std::uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  std::uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighs;
  return (below_space | has_zero(word ^ (kOnes * '"')) | has_zero(word ^ (kOnes * '\\'))) != 0;
}

void AppendEscapedString(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t plain_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    // Most text needs no escaping: skip eight such bytes at a time.
    while (text.size() - i >= 8 && !NeedsEscapeIn8(text.data() + i)) i += 8;
    if (i == text.size()) break;
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.substr(plain_start, i - plain_start));
    plain_start = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(text.substr(plain_start));
  out.push_back('"');
}

std::string_view View(const boost::json::string& text) {
  return std::string_view(text.data(), text.size());
}

}  // namespace

void AppendDouble(double value, std::string& out) {
  if (!std::isfinite(value)) {
    // JSON has no NaN or infinity; parsing refuses them, so only a computed value gets here.
    out.append("null");
    return;
  }
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (error != std::errc()) {
    out.append("null");
    return;
  }
  std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
  out.append(text);
  if (text.find_first_of(".eEn") == std::string_view::npos) out.append(".0");
}

void AppendJsonText(const JsonObject& object, std::string& out) {
  out.push_back('{');
  bool first = true;
  for (const auto& field : object) {
    if (!first) out.push_back(',');
    first = false;
    AppendEscapedString(std::string_view(field.key().data(), field.key().size()), out);
    out.push_back(':');
    AppendJsonText(field.value(), out);
  }
  out.push_back('}');
}

void AppendJsonText(const Json& value, std::string& out) {
  switch (value.kind()) {
    case boost::json::kind::null:
      out.append("null");
      return;
    case boost::json::kind::bool_:
      out.append(value.get_bool() ? "true" : "false");
      return;
    case boost::json::kind::int64:
      out.append(std::to_string(value.get_int64()));
      return;
    case boost::json::kind::uint64:
      out.append(std::to_string(value.get_uint64()));
      return;
    case boost::json::kind::double_:
      AppendDouble(value.get_double(), out);
      return;
    case boost::json::kind::string:
      AppendEscapedString(View(value.get_string()), out);
      return;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const Json& item : value.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonText(item, out);
      }
      out.push_back(']');
      return;
    }
    case boost::json::kind::object:
      AppendJsonText(value.get_object(), out);
      return;
  }
}

std::string JsonText(const Json& value) {
  std::string out;
  AppendJsonText(value, out);
  return out;
}

Status CheckExportable(const Json& value, std::string_view column) {
  auto fail = [&](std::string problem) {
    std::string message =
        column.empty() ? problem : "column '" + std::string(column) + "': " + problem;
    return MakeError(ErrorCode::kInvalidArgument, std::move(message));
  };
  switch (value.kind()) {
    case boost::json::kind::double_:
      if (!std::isfinite(value.get_double())) {
        return fail("a non-finite number (NaN or infinity) cannot be exported");
      }
      return Ok();
    case boost::json::kind::string:
      if (!IsValidUtf8(View(value.get_string()))) return fail("a string is not valid UTF-8");
      return Ok();
    case boost::json::kind::array:
      for (const Json& item : value.get_array()) {
        S3DB_RETURN_IF_ERROR(CheckExportable(item, column));
      }
      return Ok();
    case boost::json::kind::object:
      for (const auto& field : value.get_object()) {
        if (!IsValidUtf8(std::string_view(field.key().data(), field.key().size()))) {
          return fail("a field name is not valid UTF-8");
        }
        S3DB_RETURN_IF_ERROR(CheckExportable(field.value(), column));
      }
      return Ok();
    default:
      return Ok();
  }
}

}  // namespace s3db::formats
