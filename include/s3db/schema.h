// Resource schemas in the spec's shorthand: "string|required|maxlength:255", "number|min:0",
// "boolean", "email", "url", "uuid", "datetime", "array|items:string", "json", "object",
// and nested objects of attributes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db {

enum class AttributeType {
  kString, kNumber, kInteger, kBoolean, kEmail, kUrl, kUuid, kDatetime, kArray, kObject, kJson,
  kAny,
};

std::string_view AttributeTypeName(AttributeType type);

struct Attribute {
  std::string name;
  AttributeType type = AttributeType::kAny;
  bool required = false;
  std::optional<double> min;             // numbers: value; strings/arrays: not used
  std::optional<double> max;
  std::optional<std::uint64_t> min_length;  // strings (UTF-8 code points) and arrays (items)
  std::optional<std::uint64_t> max_length;
  std::optional<AttributeType> items;       // arrays: the type of each item
  std::vector<Attribute> children;          // nested objects: their attributes, in order
  Json default_value;                       // "default:x" (null when absent)
};

// A parsed attribute tree. Attribute order is the definition order.
class Schema {
 public:
  // Parses `attributes` (name -> shorthand string or nested object). Errors name the
  // attribute path and the unknown rule or type.
  static Result<Schema> Parse(const JsonObject& attributes);

  const std::vector<Attribute>& attributes() const { return attributes_; }

  // Checks `record` and reports every failing field at once (kValidation), e.g.
  // "validation failed for 2 fields: email: 'x' is not an email; age: -1 is below min 0".
  Status Validate(const JsonObject& record) const;

  // Fills defaults for missing attributes.
  void ApplyDefaults(JsonObject& record) const;

 private:
  std::vector<Attribute> attributes_;
};

}  // namespace s3db
