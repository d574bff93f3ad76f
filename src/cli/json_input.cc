#include "cli/json_input.h"

#include <boost/json/basic_parser_impl.hpp>
#include <cctype>
#include <string>

#include "core/json_type_name.h"

namespace s3db::cli {
namespace {

// A handler that accepts everything: used only to find where the first value ends.
struct NullHandler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  bool on_document_begin(boost::json::error_code&) { return true; }
  bool on_document_end(boost::json::error_code&) { return true; }
  bool on_object_begin(boost::json::error_code&) { return true; }
  bool on_object_end(std::size_t, boost::json::error_code&) { return true; }
  bool on_array_begin(boost::json::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::json::error_code&) { return true; }
  bool on_key_part(boost::json::string_view, std::size_t, boost::json::error_code&) { return true; }
  bool on_key(boost::json::string_view, std::size_t, boost::json::error_code&) { return true; }
  bool on_string_part(boost::json::string_view, std::size_t, boost::json::error_code&) {
    return true;
  }
  bool on_string(boost::json::string_view, std::size_t, boost::json::error_code&) { return true; }
  bool on_number_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_int64(std::int64_t, boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_bool(bool, boost::json::error_code&) { return true; }
  bool on_null(boost::json::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::json::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::json::error_code&) { return true; }
};

}  // namespace

Result<Json> ParseJsonInput(std::string_view text) {
  S3DB_ASSIGN_OR_RETURN(Json value, ParseJson(text));
  boost::json::basic_parser<NullHandler> parser(boost::json::parse_options{});
  boost::json::error_code ec;
  std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  std::size_t rest = text.find_first_not_of(" \t\r\n", consumed);
  if (!ec && rest != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "invalid JSON at byte " + std::to_string(rest) +
                                                      ": unexpected text after the value");
  }
  return value;
}

Result<JsonObject> ParseJsonObjectInput(std::string_view text) {
  S3DB_ASSIGN_OR_RETURN(Json value, ParseJsonInput(text));
  if (!value.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected a JSON object, got " + std::string(JsonTypeName(value)));
  }
  return std::move(value.get_object());
}

Result<std::uint64_t> ParseCountParameter(std::string_view name, std::string_view text,
                                          std::uint64_t max) {
  auto fail = [&](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string(name) + ": '" + std::string(text) + "' " + why);
  };
  if (text.empty()) return fail("is not a non-negative integer (the value is empty)");
  std::uint64_t value = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return fail("is not a non-negative integer");
    unsigned digit = static_cast<unsigned>(c - '0');
    if (value > (max - digit) / 10)
      return fail("is too large (at most " + std::to_string(max) + ")");
    value = value * 10 + digit;
  }
  return value;
}

Result<bool> ParseBoolParameter(std::string_view name, std::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return MakeError(ErrorCode::kInvalidArgument,
                   std::string(name) + ": '" + std::string(text) + "' is not true or false");
}

bool IsJsonNumber(std::string_view text) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    return i - start;
  };
  if (i < text.size() && text[i] == '-') ++i;
  if (i < text.size() && text[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == text.size();
}

}  // namespace s3db::cli
