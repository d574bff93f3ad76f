#include "drivers/bigquery/bigquery_schema.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>

namespace s3db::replicator::bigquery {
namespace {

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Decodes one code point of valid UTF-8 at `text[*pos]` and advances `*pos`.
char32_t NextCodePoint(std::string_view text, std::size_t* pos) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(*pos);
  if (lead < 0x80) {
    *pos += 1;
    return lead;
  }
  int length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  char32_t value = lead & (0x7F >> (length + 1));
  for (int i = 1; i < length; ++i) value = (value << 6) | (byte(*pos + i) & 0x3F);
  *pos += length;
  return value;
}

bool IsScalarType(AttributeType type) {
  switch (type) {
    case AttributeType::kString:
    case AttributeType::kEmail:
    case AttributeType::kUrl:
    case AttributeType::kUuid:
    case AttributeType::kNumber:
    case AttributeType::kInteger:
    case AttributeType::kBoolean:
    case AttributeType::kDatetime:
      return true;
    default:
      return false;
  }
}

FieldType ScalarFieldType(AttributeType type, const TypeOptions& options) {
  switch (type) {
    case AttributeType::kNumber:
      return options.exact_numbers ? FieldType::kNumeric : FieldType::kFloat64;
    case AttributeType::kInteger:
      return FieldType::kInt64;
    case AttributeType::kBoolean:
      return FieldType::kBool;
    case AttributeType::kDatetime:
      return FieldType::kTimestamp;
    default:
      return FieldType::kString;
  }
}

// Adds inferred sub-fields for keys of `value` that the RECORD `field` lacks.
void CompleteRecord(Field& field, const Json& value, const TypeOptions& options) {
  if (field.type != FieldType::kRecord || field.repeated || !value.is_object()) return;
  for (const auto& [key, sub_value] : value.get_object()) {
    Field* existing = nullptr;
    for (Field& sub : field.fields) {
      if (sub.name == key) existing = &sub;
    }
    if (existing != nullptr) {
      CompleteRecord(*existing, sub_value, options);
    } else if (auto inferred = InferField(key, sub_value, options)) {
      field.fields.push_back(std::move(*inferred));
    }
  }
}

void CollectInvalidNames(const std::vector<Field>& fields, const std::string& prefix,
                         std::vector<std::string>& out) {
  for (const Field& field : fields) {
    std::string name = prefix.empty() ? field.name : prefix + "." + field.name;
    if (!IsValidColumnName(field.name)) out.push_back(name);
    CollectInvalidNames(field.fields, name, out);
  }
}

void MergeInto(std::vector<Field>& existing, const std::vector<Field>& wanted,
               const std::string& prefix, std::vector<std::string>& added) {
  for (const Field& field : wanted) {
    std::string name = prefix.empty() ? field.name : prefix + "." + field.name;
    auto found = std::find_if(existing.begin(), existing.end(),
                              [&](const Field& f) { return f.name == field.name; });
    if (found == existing.end()) {
      Field copy = field;
      copy.required = false;
      existing.push_back(std::move(copy));
      added.push_back(std::move(name));
    } else if (found->type == FieldType::kRecord && field.type == FieldType::kRecord &&
               found->repeated == field.repeated) {
      MergeInto(found->fields, field.fields, name, added);
    }
  }
}

}  // namespace

bool IsValidProjectId(std::string_view id) {
  std::size_t colon = id.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view domain = id.substr(0, colon);
    if (domain.empty()) return false;
    for (char c : domain) {
      if (!(IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || c == '.' || c == '-')) return false;
    }
    id = id.substr(colon + 1);
  }
  if (id.size() < 6 || id.size() > 30) return false;
  if (!(id.front() >= 'a' && id.front() <= 'z') || id.back() == '-') return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || IsAsciiDigit(c) || c == '-'; });
}

bool IsValidDatasetId(std::string_view id) {
  if (id.empty() || id.size() > 1024) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_'; });
}

bool IsValidTableId(std::string_view id) {
  if (id.empty() || id.size() > 1024 || !IsValidUtf8(id)) return false;
  std::size_t pos = 0;
  while (pos < id.size()) {
    if (!IsTableNameCodePoint(NextCodePoint(id, &pos))) return false;
  }
  return true;
}

bool IsValidColumnName(std::string_view name) {
  if (name.empty() || name.size() > 300) return false;
  if (!(IsAsciiLetter(name.front()) || name.front() == '_')) return false;
  bool characters_ok = std::all_of(name.begin(), name.end(), [](char c) {
    return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_';
  });
  if (!characters_ok) return false;
  static constexpr std::array<std::string_view, 6> kReservedPrefixes = {
      "_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP", "__ROOT__", "_COLIDENTIFIER"};
  std::string upper = Upper(name);
  return std::none_of(kReservedPrefixes.begin(), kReservedPrefixes.end(),
                      [&](std::string_view prefix) { return upper.rfind(prefix, 0) == 0; });
}

bool IsValidJobId(std::string_view id) {
  if (id.empty() || id.size() > 1024) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return IsAsciiLetter(c) || IsAsciiDigit(c) || c == '_' || c == '-';
  });
}

std::string_view FieldTypeName(FieldType type) {
  switch (type) {
    case FieldType::kString:
      return "STRING";
    case FieldType::kInt64:
      return "INT64";
    case FieldType::kFloat64:
      return "FLOAT64";
    case FieldType::kNumeric:
      return "NUMERIC";
    case FieldType::kBool:
      return "BOOL";
    case FieldType::kTimestamp:
      return "TIMESTAMP";
    case FieldType::kJson:
      return "JSON";
    case FieldType::kRecord:
      return "RECORD";
    case FieldType::kOther:
      return "OTHER";
  }
  return "STRING";
}

FieldType ParseFieldType(std::string_view name) {
  std::string upper = Upper(name);
  if (upper == "STRING") return FieldType::kString;
  if (upper == "INT64" || upper == "INTEGER") return FieldType::kInt64;
  if (upper == "FLOAT64" || upper == "FLOAT") return FieldType::kFloat64;
  if (upper == "NUMERIC") return FieldType::kNumeric;
  if (upper == "BOOL" || upper == "BOOLEAN") return FieldType::kBool;
  if (upper == "TIMESTAMP") return FieldType::kTimestamp;
  if (upper == "JSON") return FieldType::kJson;
  if (upper == "RECORD" || upper == "STRUCT") return FieldType::kRecord;
  return FieldType::kOther;
}

Json FieldsToJson(const std::vector<Field>& fields) {
  JsonArray array;
  for (const Field& field : fields) {
    JsonObject object;
    object["name"] = field.name;
    object["type"] = field.type == FieldType::kOther ? std::string_view(field.type_name)
                                                     : FieldTypeName(field.type);
    object["mode"] = field.repeated ? "REPEATED" : field.required ? "REQUIRED" : "NULLABLE";
    if (field.type == FieldType::kRecord) object["fields"] = FieldsToJson(field.fields);
    array.push_back(std::move(object));
  }
  return array;
}

Result<std::vector<Field>> FieldsFromJson(const Json& fields) {
  std::vector<Field> out;
  if (fields.is_null()) return out;
  if (!fields.is_array()) return MakeError(ErrorCode::kInvalidArgument, "schema: not an array");
  for (const Json& item : fields.get_array()) {
    const JsonObject* object = item.if_object();
    const Json* name = object ? object->if_contains("name") : nullptr;
    const Json* type = object ? object->if_contains("type") : nullptr;
    if (name == nullptr || !name->is_string() || type == nullptr || !type->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument, "schema: a field without name or type");
    }
    Field field;
    field.name = std::string(name->get_string());
    field.type = ParseFieldType(type->get_string());
    if (field.type == FieldType::kOther) field.type_name = std::string(type->get_string());
    if (const Json* mode = object->if_contains("mode"); mode && mode->is_string()) {
      field.repeated = mode->get_string() == "REPEATED";
      field.required = mode->get_string() == "REQUIRED";
    }
    if (const Json* sub = object->if_contains("fields"); sub != nullptr) {
      S3DB_ASSIGN_OR_RETURN(field.fields, FieldsFromJson(*sub));
    }
    out.push_back(std::move(field));
  }
  return out;
}

const Field* FindField(const std::vector<Field>& fields, std::string_view name) {
  for (const Field& field : fields) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

Field FieldFromAttribute(const Attribute& attribute, const TypeOptions& options) {
  Field field;
  field.name = attribute.name;
  if (IsScalarType(attribute.type)) {
    field.type = ScalarFieldType(attribute.type, options);
    return field;
  }
  field.type = FieldType::kJson;
  if (options.nested_as_json) return field;
  if (attribute.type == AttributeType::kObject && !attribute.children.empty()) {
    field.type = FieldType::kRecord;
    for (const Attribute& child : attribute.children) {
      field.fields.push_back(FieldFromAttribute(child, options));
    }
  } else if (attribute.type == AttributeType::kArray && attribute.items &&
             IsScalarType(*attribute.items)) {
    field.type = ScalarFieldType(*attribute.items, options);
    field.repeated = true;
  }
  return field;
}

std::optional<Field> InferField(std::string_view name, const Json& value,
                                const TypeOptions& options) {
  Field field;
  field.name = std::string(name);
  switch (value.kind()) {
    case boost::json::kind::null:
      return std::nullopt;
    case boost::json::kind::string:
      field.type = FieldType::kString;
      break;
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      field.type = FieldType::kInt64;
      break;
    case boost::json::kind::double_:
      field.type = options.exact_numbers ? FieldType::kNumeric : FieldType::kFloat64;
      break;
    case boost::json::kind::bool_:
      field.type = FieldType::kBool;
      break;
    case boost::json::kind::object:
    case boost::json::kind::array:
      field.type = FieldType::kJson;
      break;
  }
  return field;
}

std::vector<Field> FieldsForRecord(const JsonObject& record,
                                   const std::vector<Attribute>* attributes,
                                   const TypeOptions& options,
                                   const std::vector<std::string_view>& skip) {
  std::vector<Field> fields;
  for (const auto& [key, value] : record) {
    if (std::find(skip.begin(), skip.end(), std::string_view(key)) != skip.end()) continue;
    const Attribute* attribute = nullptr;
    if (attributes != nullptr) {
      for (const Attribute& candidate : *attributes) {
        if (candidate.name == key) attribute = &candidate;
      }
    }
    if (attribute != nullptr) {
      Field field = FieldFromAttribute(*attribute, options);
      CompleteRecord(field, value, options);
      fields.push_back(std::move(field));
    } else if (auto inferred = InferField(key, value, options)) {
      fields.push_back(std::move(*inferred));
    }
  }
  return fields;
}

std::vector<std::string> MergeFields(std::vector<Field>& existing,
                                     const std::vector<Field>& wanted) {
  std::vector<std::string> added;
  MergeInto(existing, wanted, "", added);
  return added;
}

std::vector<std::string> InvalidColumnNames(const std::vector<Field>& wanted) {
  std::vector<std::string> out;
  CollectInvalidNames(wanted, "", out);
  return out;
}

std::string DecimalText(double value) {
  std::array<char, 400> buffer{};
  auto result =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::fixed);
  if (result.ec != std::errc()) return std::to_string(value);
  return std::string(buffer.data(), result.ptr);
}

std::string FormatTimestampMillis(std::int64_t millis) {
  std::int64_t seconds = millis / 1000;
  std::int64_t fraction = millis % 1000;
  if (fraction < 0) {
    fraction += 1000;
    seconds -= 1;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    days -= 1;
  }
  // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras).
  std::int64_t shifted = days + 719468;
  std::int64_t era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
  std::int64_t day_of_era = shifted - era * 146097;
  std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  std::int64_t month_index = (5 * day_of_year + 2) / 153;
  std::int64_t day = day_of_year - (153 * month_index + 2) / 5 + 1;
  std::int64_t month = month_index < 10 ? month_index + 3 : month_index - 9;
  std::int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);

  char text[64];
  std::snprintf(text, sizeof text, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(rest / 3600),
                static_cast<long long>(rest % 3600 / 60), static_cast<long long>(rest % 60),
                static_cast<long long>(fraction));
  return text;
}

Json EncodeValue(const Field& field, const Json& value, Encoding encoding) {
  if (field.repeated && value.is_array()) {
    Field element = field;
    element.repeated = false;
    JsonArray out;
    out.reserve(value.get_array().size());
    for (const Json& item : value.get_array()) out.push_back(EncodeValue(element, item, encoding));
    return out;
  }
  switch (field.type) {
    case FieldType::kNumeric:
      if (value.is_double()) return Json(DecimalText(value.get_double()));
      if (value.is_int64()) return Json(std::to_string(value.get_int64()));
      if (value.is_uint64()) return Json(std::to_string(value.get_uint64()));
      return value;
    case FieldType::kTimestamp:
      if (value.is_int64()) return Json(FormatTimestampMillis(value.get_int64()));
      if (value.is_uint64() && value.get_uint64() <= INT64_MAX) {
        return Json(FormatTimestampMillis(static_cast<std::int64_t>(value.get_uint64())));
      }
      if (value.is_double() && std::isfinite(value.get_double()) &&
          std::fabs(value.get_double()) < 9.2e18) {
        return Json(FormatTimestampMillis(static_cast<std::int64_t>(value.get_double())));
      }
      return value;
    case FieldType::kJson:
      if (encoding == Encoding::kStreaming) return Json(ToJson(value));
      return value;
    case FieldType::kRecord:
      if (value.is_object() && !field.repeated) {
        return EncodeRecord(value.get_object(), field.fields, encoding);
      }
      return value;
    default:
      return value;
  }
}

JsonObject EncodeRecord(const JsonObject& record, const std::vector<Field>& schema,
                        Encoding encoding) {
  JsonObject out;
  out.reserve(record.size());
  for (const auto& [key, value] : record) {
    if (value.is_null()) continue;
    const Field* field = FindField(schema, key);
    out.emplace(key, field != nullptr ? EncodeValue(*field, value, encoding) : value);
  }
  return out;
}

}  // namespace s3db::replicator::bigquery
