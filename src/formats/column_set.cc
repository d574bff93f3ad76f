#include "formats/column_set.h"

#include <utility>

namespace s3db::formats {

std::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kAny:
      return "any";
    case ColumnType::kString:
      return "string";
    case ColumnType::kInteger:
      return "integer";
    case ColumnType::kNumber:
      return "number";
    case ColumnType::kBoolean:
      return "boolean";
    case ColumnType::kDatetime:
      return "datetime";
    case ColumnType::kArray:
      return "array";
    case ColumnType::kJson:
      return "json";
  }
  return "any";
}

Result<ColumnType> ParseColumnType(std::string_view name) {
  if (name == "any") return ColumnType::kAny;
  if (name == "string") return ColumnType::kString;
  if (name == "integer") return ColumnType::kInteger;
  if (name == "number") return ColumnType::kNumber;
  if (name == "boolean") return ColumnType::kBoolean;
  if (name == "datetime") return ColumnType::kDatetime;
  if (name == "array") return ColumnType::kArray;
  if (name == "object" || name == "json") return ColumnType::kJson;
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown column type '" + std::string(name) +
                       "' (use string, integer, number, boolean, datetime, array, object, json "
                       "or any)");
}

Result<ColumnSet> ColumnSet::Make(std::vector<ColumnSpec> declared) {
  ColumnSet set;
  for (ColumnSpec& spec : declared) {
    if (set.index_.count(spec.name) != 0) {
      return MakeError(ErrorCode::kInvalidArgument, "column '" + spec.name + "' is declared twice");
    }
    set.Append(std::move(spec));
  }
  return set;
}

namespace {

ColumnType ColumnTypeOf(const Attribute& attribute) {
  if (!attribute.children.empty()) return ColumnType::kJson;
  switch (attribute.type) {
    case AttributeType::kString:
    case AttributeType::kEmail:
    case AttributeType::kUrl:
    case AttributeType::kUuid:
      return ColumnType::kString;
    case AttributeType::kNumber:
      return ColumnType::kNumber;
    case AttributeType::kInteger:
      return ColumnType::kInteger;
    case AttributeType::kBoolean:
      return ColumnType::kBoolean;
    case AttributeType::kDatetime:
      return ColumnType::kDatetime;
    case AttributeType::kArray:
      return ColumnType::kArray;
    case AttributeType::kObject:
    case AttributeType::kJson:
      return ColumnType::kJson;
    case AttributeType::kAny:
      return ColumnType::kAny;
  }
  return ColumnType::kAny;
}

}  // namespace

ColumnSet ColumnSet::FromSchema(const Schema& schema) {
  ColumnSet set;
  for (const Attribute& attribute : schema.attributes()) {
    if (set.index_.count(attribute.name) != 0) continue;
    set.Append(ColumnSpec{attribute.name, ColumnTypeOf(attribute)});
  }
  return set;
}

void ColumnSet::Append(ColumnSpec spec) {
  index_.emplace(spec.name, columns_.size());
  columns_.push_back(std::move(spec));
}

std::size_t ColumnSet::AddFieldsOf(const JsonObject& row) {
  std::size_t added = 0;
  for (const auto& field : row) {
    std::string_view key(field.key().data(), field.key().size());
    if (index_.find(key) != index_.end()) continue;
    Append(ColumnSpec{std::string(key), ColumnType::kAny});
    ++added;
  }
  return added;
}

std::optional<std::size_t> ColumnSet::IndexOf(std::string_view name) const {
  auto found = index_.find(name);
  if (found == index_.end()) return std::nullopt;
  return found->second;
}

void ColumnSet::Lookup(const JsonObject& row, std::vector<const Json*>& cells) const {
  cells.assign(columns_.size(), nullptr);
  for (const auto& field : row) {
    auto found = index_.find(std::string_view(field.key().data(), field.key().size()));
    if (found != index_.end()) cells[found->second] = &field.value();
  }
}

}  // namespace s3db::formats
