// The columns of an exported file: the declared ones first, then fields seen in rows.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/schema.h"

namespace s3db::formats {

// What a column is declared to hold. kAny: decided by the values (see each writer).
enum class ColumnType { kAny, kString, kInteger, kNumber, kBoolean, kDatetime, kArray, kJson };

std::string_view ColumnTypeName(ColumnType type);

// Parses "string", "integer", "number", "boolean", "datetime", "array", "object", "json",
// "any". Error kInvalidArgument names the value.
Result<ColumnType> ParseColumnType(std::string_view name);

struct ColumnSpec {
  std::string name;
  ColumnType type = ColumnType::kAny;
};

// An ordered set of column names. Starts with the declared columns (for a resource: its
// attributes in definition order) and grows with fields first seen in rows, in first-seen
// order. Columns are never removed or reordered. Not thread-safe.
class ColumnSet {
 public:
  ColumnSet() = default;

  // Error kInvalidArgument when a name is declared twice.
  static Result<ColumnSet> Make(std::vector<ColumnSpec> declared);

  // Declared columns from a resource schema: string/email/url/uuid -> kString, number ->
  // kNumber, integer -> kInteger, boolean, datetime, array, object/json/nested -> kJson.
  static ColumnSet FromSchema(const Schema& schema);

  // Appends the fields of `row` that are not columns yet; returns how many were added.
  std::size_t AddFieldsOf(const JsonObject& row);

  std::size_t size() const { return columns_.size(); }
  const ColumnSpec& operator[](std::size_t index) const { return columns_[index]; }
  const std::vector<ColumnSpec>& columns() const { return columns_; }
  std::optional<std::size_t> IndexOf(std::string_view name) const;

  // For every column, the row's value or nullptr (missing). The row's fields must all be
  // columns already (call AddFieldsOf first).
  void Lookup(const JsonObject& row, std::vector<const Json*>& cells) const;

 private:
  void Append(ColumnSpec spec);

  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>()(name);
    }
  };

  std::vector<ColumnSpec> columns_;
  std::unordered_map<std::string, std::size_t, NameHash, std::equal_to<>> index_;
};

}  // namespace s3db::formats
