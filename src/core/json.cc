#include "s3db/json.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/json_type_name.h"
#include "formats/json_text.h"

namespace s3db {
namespace {

namespace bj = boost::json;

// Builds a value like boost::json::parser, but refuses integers that would turn into doubles.
class StrictHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  bj::value_stack stack;
  std::string number_text;  // parts of the number being parsed
  std::string problem;      // set when the handler stopped the parse

  bool on_document_begin(bj::error_code&) { return true; }
  bool on_document_end(bj::error_code&) { return true; }
  bool on_array_begin(bj::error_code&) { return true; }
  bool on_array_end(std::size_t n, bj::error_code&) {
    stack.push_array(n);
    return true;
  }
  bool on_object_begin(bj::error_code&) { return true; }
  bool on_object_end(std::size_t n, bj::error_code&) {
    stack.push_object(n);
    return true;
  }
  bool on_string_part(bj::string_view s, std::size_t, bj::error_code&) {
    stack.push_chars(s);
    return true;
  }
  bool on_string(bj::string_view s, std::size_t, bj::error_code&) {
    stack.push_string(s);
    return true;
  }
  bool on_key_part(bj::string_view s, std::size_t, bj::error_code&) {
    stack.push_chars(s);
    return true;
  }
  bool on_key(bj::string_view s, std::size_t, bj::error_code&) {
    stack.push_key(s);
    return true;
  }
  bool on_number_part(bj::string_view s, bj::error_code&) {
    number_text.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, bj::string_view, bj::error_code&) {
    number_text.clear();
    stack.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, bj::string_view, bj::error_code&) {
    number_text.clear();
    stack.push_uint64(u);
    return true;
  }
  bool on_double(double d, bj::string_view s, bj::error_code& ec) {
    number_text.append(s.data(), s.size());
    bool is_integer_literal = number_text.find_first_of(".eE") == std::string::npos;
    if (is_integer_literal && d != 0.0) {
      problem = "integer " + Shorten(number_text) +
                " is outside the 64-bit range (-2^63 .. 2^64-1); send it as a string";
      ec = bj::error::exception;
      return false;
    }
    // Boost.JSON 1.81 rounds long mantissas inexactly (off by an ulp); from_chars rounds
    // correctly, so the value is the one the text names and survives a round trip.
    double exact = 0;
    auto [end, error] =
        std::from_chars(number_text.data(), number_text.data() + number_text.size(), exact);
    if (error == std::errc() && end == number_text.data() + number_text.size()) d = exact;
    if (!std::isfinite(d)) {
      // JSON has no infinity: the number would change (and not serialize back).
      problem = "number " + Shorten(number_text) +
                " is beyond the range of a 64-bit float (about 1.8e308); send it as a string";
      ec = bj::error::exception;
      return false;
    }
    number_text.clear();
    stack.push_double(d);
    return true;
  }
  bool on_bool(bool b, bj::error_code&) {
    stack.push_bool(b);
    return true;
  }
  bool on_null(bj::error_code&) {
    stack.push_null();
    return true;
  }
  bool on_comment_part(bj::string_view, bj::error_code&) { return true; }
  bool on_comment(bj::string_view, bj::error_code&) { return true; }

 private:
  static std::string Shorten(const std::string& text) {
    return text.size() <= 40 ? text : text.substr(0, 40) + "…";
  }
};

}  // namespace

Result<Json> ParseJson(std::string_view text, const JsonParseOptions& options) {
  bj::parse_options parse_options;
  parse_options.max_depth = options.max_depth;
  bj::basic_parser<StrictHandler> parser(parse_options);
  parser.handler().stack.reset();

  bj::error_code ec;
  std::size_t consumed = parser.write_some(false, text.data(), text.size(), ec);
  if (ec) {
    if (!parser.handler().problem.empty()) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "invalid JSON at byte " + std::to_string(consumed) + ": " + parser.handler().problem);
    }
    std::string what = ec.message();
    if (ec == bj::error::too_deep) {
      what = "nesting deeper than " + std::to_string(options.max_depth) + " levels";
    } else if (ec == bj::error::syntax && !IsValidUtf8(text)) {
      what = "text is not valid UTF-8";
    }
    return MakeError(ErrorCode::kInvalidArgument,
                     "invalid JSON at byte " + std::to_string(consumed) + ": " + what);
  }
  for (std::size_t i = consumed; i < text.size(); ++i) {
    char c = text[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      return MakeError(ErrorCode::kInvalidArgument, "invalid JSON at byte " + std::to_string(i) +
                                                        ": unexpected text after the value");
    }
  }
  return parser.handler().stack.release();
}

std::string_view JsonTypeName(const Json& value) {
  switch (value.kind()) {
    case bj::kind::object:
      return "an object";
    case bj::kind::array:
      return "an array";
    case bj::kind::string:
      return "a string";
    case bj::kind::int64:
    case bj::kind::uint64:
    case bj::kind::double_:
      return "a number";
    case bj::kind::bool_:
      return "a boolean";
    case bj::kind::null:
      break;
  }
  return "null";
}

Result<JsonObject> ParseJsonObject(std::string_view text, const JsonParseOptions& options) {
  S3DB_ASSIGN_OR_RETURN(Json value, ParseJson(text, options));
  if (!value.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "expected a JSON object, got " + std::string(JsonTypeName(value)));
  }
  return std::move(value.get_object());
}

// Every JSON text s3db writes (stored records, replicated payloads, API answers, messages) goes
// through the export writer: doubles in their shortest round-trip form (1.5, not 1.5E0) and
// integers with every digit, so what a user reads is what they wrote.
std::string ToJson(const Json& value) { return formats::JsonText(value); }
std::string ToJson(const JsonObject& value) {
  std::string out;
  formats::AppendJsonText(value, out);
  return out;
}

void DeepMerge(JsonObject& target, const JsonObject& patch) {
  for (const auto& [key, value] : patch) {
    auto it = target.find(key);
    if (it != target.end() && it->value().is_object() && value.is_object()) {
      DeepMerge(it->value().get_object(), value.get_object());
    } else {
      target[key] = value;
    }
  }
}

const Json* FindPath(const JsonObject& object, std::string_view dotted_path) {
  const JsonObject* current = &object;
  while (true) {
    std::size_t dot = dotted_path.find('.');
    std::string_view head = dotted_path.substr(0, dot);
    auto it = current->find(head);
    if (it == current->end()) return nullptr;
    if (dot == std::string_view::npos) return &it->value();
    if (!it->value().is_object()) return nullptr;
    current = &it->value().get_object();
    dotted_path.remove_prefix(dot + 1);
  }
}

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    // Most text is ASCII: skip it eight bytes at a time.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, sizeof word);
      if (word & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p == end) break;
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int length;
    std::uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      length = 2;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      length = 3;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      length = 4;
      code = c & 0x07;
    } else {
      return false;
    }
    if (end - p < length) return false;
    for (int i = 1; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    bool overlong = (length == 2 && code < 0x80) || (length == 3 && code < 0x800) ||
                    (length == 4 && code < 0x10000);
    if (overlong || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    p += length;
  }
  return true;
}

}  // namespace s3db
