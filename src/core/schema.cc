#include "s3db/schema.h"

#include <boost/json/serialize.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace s3db {
namespace {

std::optional<AttributeType> TypeFromName(std::string_view name) {
  if (name == "string" || name == "secret") return AttributeType::kString;
  if (name == "number") return AttributeType::kNumber;
  if (name == "integer") return AttributeType::kInteger;
  if (name == "boolean") return AttributeType::kBoolean;
  if (name == "email") return AttributeType::kEmail;
  if (name == "url") return AttributeType::kUrl;
  if (name == "uuid") return AttributeType::kUuid;
  if (name == "datetime" || name == "date") return AttributeType::kDatetime;
  if (name == "array") return AttributeType::kArray;
  if (name == "object") return AttributeType::kObject;
  if (name == "json") return AttributeType::kJson;
  if (name == "any") return AttributeType::kAny;
  return std::nullopt;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    std::size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

Result<double> ParseNumber(std::string_view text, const std::string& where) {
  std::string copy(text);
  char* end = nullptr;
  double value = std::strtod(copy.c_str(), &end);
  if (copy.empty() || *end != '\0' || !std::isfinite(value)) {
    return MakeError(ErrorCode::kInvalidArgument, where + ": '" + copy + "' is not a number");
  }
  return value;
}

Result<Attribute> ParseShorthand(const std::string& path, std::string_view name,
                                 std::string_view text) {
  Attribute attribute;
  attribute.name = std::string(name);
  auto parts = Split(text, '|');
  std::string type_name(parts[0]);
  auto type = TypeFromName(type_name);
  if (!type) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "attribute '" + path + "': unknown type '" + type_name +
                         "' (known: string, number, integer, boolean, email, url, uuid, datetime, "
                         "array, object, json, any)");
  }
  attribute.type = *type;
  std::string min_rule, max_rule;  // as written, for the error below
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view rule = parts[i];
    std::size_t colon = rule.find(':');
    std::string_view key = rule.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : rule.substr(colon + 1);
    std::string where = "attribute '" + path + "' rule '" + std::string(rule) + "'";
    if (key == "required") {
      attribute.required = true;
    } else if (key == "optional") {
      attribute.required = false;
    } else if (key == "min" || key == "max") {
      S3DB_ASSIGN_OR_RETURN(double number, ParseNumber(value, where));
      (key == "min" ? attribute.min : attribute.max) = number;
      (key == "min" ? min_rule : max_rule) = std::string(rule);
    } else if (key == "minlength" || key == "maxlength" || key == "length") {
      S3DB_ASSIGN_OR_RETURN(double number, ParseNumber(value, where));
      if (number < 0 || number != std::floor(number)) {
        return MakeError(ErrorCode::kInvalidArgument, where + ": needs a whole number >= 0");
      }
      auto length = static_cast<std::uint64_t>(number);
      if (key != "maxlength") attribute.min_length = length;
      if (key != "minlength") attribute.max_length = length;
    } else if (key == "items") {
      auto items = TypeFromName(value);
      if (!items) {
        return MakeError(ErrorCode::kInvalidArgument,
                         where + ": unknown item type '" + std::string(value) + "'");
      }
      attribute.items = items;
    } else if (key == "default") {
      auto parsed = ParseJson(value);
      attribute.default_value = parsed ? *parsed : Json(std::string(value));
    } else if (key == "trim" || key == "lowercase" || key == "uppercase" || key == "unique" ||
               key == "integer" || key == "positive" || key == "empty" || key == "convert") {
      // Accepted for compatibility; "integer" and "positive" tighten numbers.
      if (key == "integer") attribute.type = AttributeType::kInteger;
      if (key == "positive") attribute.min = 0;
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "attribute '" + path + "': unknown rule '" + std::string(key) + "'");
    }
  }
  // No value could pass: refuse the rules rather than every record.
  if (attribute.min && attribute.max && *attribute.min > *attribute.max) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "attribute '" + path + "': '" + (min_rule.empty() ? "positive" : min_rule) +
                         "' is above '" + max_rule + "'; no value could pass");
  }
  if (attribute.min_length && attribute.max_length &&
      *attribute.min_length > *attribute.max_length) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "attribute '" + path + "': minlength " +
                         std::to_string(*attribute.min_length) + " is above maxlength " +
                         std::to_string(*attribute.max_length) + "; no value could pass");
  }
  return attribute;
}

Result<std::vector<Attribute>> ParseAttributes(const JsonObject& attributes,
                                               const std::string& parent) {
  std::vector<Attribute> out;
  for (const auto& [key, value] : attributes) {
    std::string name(key);
    if (name == "$$type") continue;
    std::string path = parent.empty() ? name : parent + "." + name;
    if (name.empty()) return MakeError(ErrorCode::kInvalidArgument, "attribute name is empty");
    if (value.is_string()) {
      S3DB_ASSIGN_OR_RETURN(Attribute attribute, ParseShorthand(path, name, value.get_string()));
      out.push_back(std::move(attribute));
    } else if (value.is_object()) {
      Attribute attribute;
      attribute.name = name;
      attribute.type = AttributeType::kObject;
      const auto& nested = value.get_object();
      if (auto* type = nested.if_contains("$$type"); type && type->is_string()) {
        S3DB_ASSIGN_OR_RETURN(Attribute head, ParseShorthand(path, name, type->get_string()));
        attribute.required = head.required;
      }
      S3DB_ASSIGN_OR_RETURN(attribute.children, ParseAttributes(nested, path));
      out.push_back(std::move(attribute));
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "attribute '" + path +
                           "': expected a type string such as "
                           "'string|required' or an object of nested attributes");
    }
  }
  return out;
}

std::uint64_t CodePoints(std::string_view text) {
  std::uint64_t count = 0;
  for (unsigned char c : text) count += (c & 0xC0) != 0x80;
  return count;
}

std::string Show(const Json& value) {
  std::string text = ToJson(value);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// A min/max as the user wrote it: "0", "2.5" (shortest round-trip form, no ".0" added).
std::string ShowLimit(double limit) {
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, limit);
  if (error != std::errc()) return Show(Json(limit));
  return std::string(buffer, end);
}

bool IsEmail(std::string_view text) {
  std::size_t at = text.find('@');
  if (at == std::string_view::npos || at == 0 || at != text.rfind('@')) return false;
  std::string_view domain = text.substr(at + 1);
  std::size_t dot = domain.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= domain.size()) return false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsUrl(std::string_view text) {
  std::size_t scheme = text.find("://");
  if (scheme == std::string_view::npos || scheme == 0) return false;
  for (std::size_t i = 0; i < scheme; ++i) {
    if (!std::isalpha(static_cast<unsigned char>(text[i])) && text[i] != '+') return false;
  }
  if (scheme + 3 >= text.size()) return false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !std::isxdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  return true;
}

// YYYY-MM-DD, optionally followed by THH:MM[:SS[.fraction]] and Z or ±HH:MM.
bool IsDatetime(std::string_view t) {
  auto digits = [&](std::size_t at, std::size_t n) {
    if (at + n > t.size()) return false;
    for (std::size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(t[i]))) return false;
    }
    return true;
  };
  if (!digits(0, 4) || t.size() < 10 || t[4] != '-' || !digits(5, 2) || t[7] != '-' ||
      !digits(8, 2)) {
    return false;
  }
  int month = std::atoi(std::string(t.substr(5, 2)).c_str());
  int day = std::atoi(std::string(t.substr(8, 2)).c_str());
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  if (t.size() == 10) return true;
  if ((t[10] != 'T' && t[10] != ' ') || !digits(11, 2) || t.size() < 16 || t[13] != ':' ||
      !digits(14, 2)) {
    return false;
  }
  std::size_t i = 16;
  if (i < t.size() && t[i] == ':') {
    if (!digits(i + 1, 2)) return false;
    i += 3;
    if (i < t.size() && t[i] == '.') {
      ++i;
      std::size_t start = i;
      while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
      if (i == start) return false;
    }
  }
  if (i == t.size()) return true;
  if (t[i] == 'Z' && i + 1 == t.size()) return true;
  if ((t[i] == '+' || t[i] == '-') && digits(i + 1, 2) && i + 6 == t.size() && t[i + 3] == ':' &&
      digits(i + 4, 2)) {
    return true;
  }
  return false;
}

double AsDouble(const Json& value) {
  if (value.is_int64()) return static_cast<double>(value.get_int64());
  if (value.is_uint64()) return static_cast<double>(value.get_uint64());
  return value.get_double();
}

std::optional<std::string> CheckType(AttributeType type, const Json& value) {
  switch (type) {
    case AttributeType::kString:
      if (!value.is_string()) return Show(value) + " is not a string";
      return std::nullopt;
    case AttributeType::kNumber:
      if (!value.is_number()) return Show(value) + " is not a number";
      return std::nullopt;
    case AttributeType::kInteger:
      if (!value.is_int64() && !value.is_uint64()) return Show(value) + " is not an integer";
      return std::nullopt;
    case AttributeType::kBoolean:
      if (!value.is_bool()) return Show(value) + " is not a boolean";
      return std::nullopt;
    case AttributeType::kEmail:
      if (!value.is_string() || !IsEmail(value.get_string()))
        return Show(value) + " is not an email";
      return std::nullopt;
    case AttributeType::kUrl:
      if (!value.is_string() || !IsUrl(value.get_string())) return Show(value) + " is not a URL";
      return std::nullopt;
    case AttributeType::kUuid:
      if (!value.is_string() || !IsUuid(value.get_string())) return Show(value) + " is not a UUID";
      return std::nullopt;
    case AttributeType::kDatetime:
      if (!value.is_string() || !IsDatetime(value.get_string())) {
        return Show(value) + " is not an ISO 8601 date-time";
      }
      return std::nullopt;
    case AttributeType::kArray:
      if (!value.is_array()) return Show(value) + " is not an array";
      return std::nullopt;
    case AttributeType::kObject:
      if (!value.is_object()) return Show(value) + " is not an object";
      return std::nullopt;
    case AttributeType::kJson:
    case AttributeType::kAny:
      return std::nullopt;
  }
  return std::nullopt;
}

void ValidateAttributes(const std::vector<Attribute>& attributes, const JsonObject& record,
                        const std::string& parent, std::vector<std::string>& problems) {
  for (const auto& attribute : attributes) {
    // Built only for a problem or a nested object: a valid record needs no path strings.
    auto path = [&] { return parent.empty() ? attribute.name : parent + "." + attribute.name; };
    const Json* value = record.if_contains(attribute.name);
    if (!value || value->is_null()) {
      if (attribute.required) problems.push_back(path() + ": is required");
      continue;
    }
    if (auto problem = CheckType(attribute.type, *value)) {
      problems.push_back(path() + ": " + *problem);
      continue;
    }
    if (value->is_number()) {
      double number = AsDouble(*value);
      if (attribute.min && number < *attribute.min) {
        problems.push_back(path() + ": " + Show(*value) + " is below min " +
                           ShowLimit(*attribute.min));
      }
      if (attribute.max && number > *attribute.max) {
        problems.push_back(path() + ": " + Show(*value) + " is above max " +
                           ShowLimit(*attribute.max));
      }
    }
    std::optional<std::uint64_t> length;
    if (attribute.min_length || attribute.max_length) {  // counting code points walks the text
      if (value->is_string()) length = CodePoints(value->get_string());
      if (value->is_array()) length = value->get_array().size();
    }
    if (length && attribute.min_length && *length < *attribute.min_length) {
      problems.push_back(path() + ": length " + std::to_string(*length) + " is below minlength " +
                         std::to_string(*attribute.min_length));
    }
    if (length && attribute.max_length && *length > *attribute.max_length) {
      problems.push_back(path() + ": length " + std::to_string(*length) + " is above maxlength " +
                         std::to_string(*attribute.max_length));
    }
    if (value->is_array() && attribute.items) {
      const auto& items = value->get_array();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (auto problem = CheckType(*attribute.items, items[i])) {
          problems.push_back(path() + "[" + std::to_string(i) + "]: " + *problem);
        }
      }
    }
    if (value->is_object() && !attribute.children.empty()) {
      ValidateAttributes(attribute.children, value->get_object(), path(), problems);
    }
  }
}

void FillDefaults(const std::vector<Attribute>& attributes, JsonObject& record) {
  for (const auto& attribute : attributes) {
    auto* value = record.if_contains(attribute.name);
    if (!value && !attribute.default_value.is_null()) {
      record[attribute.name] = attribute.default_value;
    } else if (value && value->is_object() && !attribute.children.empty()) {
      FillDefaults(attribute.children, value->get_object());
    }
  }
}

}  // namespace

std::string_view AttributeTypeName(AttributeType type) {
  switch (type) {
    case AttributeType::kString:
      return "string";
    case AttributeType::kNumber:
      return "number";
    case AttributeType::kInteger:
      return "integer";
    case AttributeType::kBoolean:
      return "boolean";
    case AttributeType::kEmail:
      return "email";
    case AttributeType::kUrl:
      return "url";
    case AttributeType::kUuid:
      return "uuid";
    case AttributeType::kDatetime:
      return "datetime";
    case AttributeType::kArray:
      return "array";
    case AttributeType::kObject:
      return "object";
    case AttributeType::kJson:
      return "json";
    case AttributeType::kAny:
      return "any";
  }
  return "any";
}

Result<Schema> Schema::Parse(const JsonObject& attributes) {
  Schema schema;
  S3DB_ASSIGN_OR_RETURN(schema.attributes_, ParseAttributes(attributes, ""));
  return schema;
}

Status Schema::Validate(const JsonObject& record) const {
  std::vector<std::string> problems;
  ValidateAttributes(attributes_, record, "", problems);
  if (problems.empty()) return Ok();
  std::string message = "validation failed for " + std::to_string(problems.size()) +
                        (problems.size() == 1 ? " field: " : " fields: ");
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i) message += "; ";
    message += problems[i];
  }
  return MakeError(ErrorCode::kValidation, message);
}

void Schema::ApplyDefaults(JsonObject& record) const { FillDefaults(attributes_, record); }

}  // namespace s3db
