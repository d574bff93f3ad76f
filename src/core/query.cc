#include "core/query.h"

#include <cmath>
#include <string>

namespace s3db {
namespace {

bool IsOperatorObject(const Json& value) {
  if (!value.is_object() || value.get_object().empty()) return false;
  for (const auto& [key, unused] : value.get_object()) {
    if (key.empty() || key[0] != '$') return false;
  }
  return true;
}

// Compares an integer held as int64/uint64 with a double without losing precision.
int CompareIntegerWithDouble(long double integer, double d) {
  long double other = d;
  return integer < other ? -1 : (integer > other ? 1 : 0);
}

bool OperatorMatches(const Json* value, std::string_view op, const Json& operand) {
  if (op == "$exists") return (value != nullptr) == operand.as_bool();
  if (op == "$eq") return value && JsonEquals(*value, operand);
  if (op == "$ne") return !value || !JsonEquals(*value, operand);
  if (op == "$in" || op == "$nin") {
    bool found = false;
    if (value) {
      for (const auto& candidate : operand.get_array()) {
        if (JsonEquals(*value, candidate)) {
          found = true;
          break;
        }
      }
    }
    return op == "$in" ? found : !found;
  }
  if (!value) return false;
  auto order = CompareJson(*value, operand);
  if (!order) return false;
  if (op == "$gt") return *order > 0;
  if (op == "$gte") return *order >= 0;
  if (op == "$lt") return *order < 0;
  if (op == "$lte") return *order <= 0;
  return false;
}

}  // namespace

std::optional<int> CompareJson(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int64() && b.is_int64()) {
      return a.get_int64() < b.get_int64() ? -1 : (a.get_int64() > b.get_int64() ? 1 : 0);
    }
    if (a.is_uint64() && b.is_uint64()) {
      return a.get_uint64() < b.get_uint64() ? -1 : (a.get_uint64() > b.get_uint64() ? 1 : 0);
    }
    if (a.is_double() && b.is_double()) {
      double x = a.get_double(), y = b.get_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    auto integer = [](const Json& v) -> long double {
      return v.is_int64() ? static_cast<long double>(v.get_int64())
                          : static_cast<long double>(v.get_uint64());
    };
    if (a.is_double()) return -CompareIntegerWithDouble(integer(b), a.get_double());
    if (b.is_double()) return CompareIntegerWithDouble(integer(a), b.get_double());
    // int64 vs uint64
    if (a.is_int64()) {
      if (a.get_int64() < 0) return -1;
      auto x = static_cast<std::uint64_t>(a.get_int64());
      return x < b.get_uint64() ? -1 : (x > b.get_uint64() ? 1 : 0);
    }
    if (b.get_int64() < 0) return 1;
    auto y = static_cast<std::uint64_t>(b.get_int64());
    return a.get_uint64() < y ? -1 : (a.get_uint64() > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    int c = a.get_string().subview().compare(b.get_string().subview());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_bool() && b.is_bool())
    return static_cast<int>(a.get_bool()) - static_cast<int>(b.get_bool());
  return std::nullopt;
}

bool JsonEquals(const Json& a, const Json& b) {
  if (a.is_number() && b.is_number()) return CompareJson(a, b) == 0;
  return a == b;
}

Status ValidateFilter(const JsonObject& filter) {
  for (const auto& [key, condition] : filter) {
    std::string field(key);
    if (field == "$and" || field == "$or") {
      if (!condition.is_array()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "query: " + field + " needs a list of filters");
      }
      for (const auto& part : condition.get_array()) {
        if (!part.is_object()) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "query: " + field + " entries must be objects");
        }
        S3DB_RETURN_IF_ERROR(ValidateFilter(part.get_object()));
      }
      continue;
    }
    if (!field.empty() && field[0] == '$') {
      return MakeError(ErrorCode::kInvalidArgument,
                       "query: unknown top-level operator '" + field + "'");
    }
    if (!IsOperatorObject(condition)) continue;
    for (const auto& [op_key, operand] : condition.get_object()) {
      std::string op(op_key);
      bool known = op == "$eq" || op == "$ne" || op == "$gt" || op == "$gte" || op == "$lt" ||
                   op == "$lte" || op == "$in" || op == "$nin" || op == "$exists";
      if (!known) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "query: unknown operator '" + op + "' for field '" + field +
                             "' (known: $eq $ne $gt $gte $lt $lte $in $nin $exists)");
      }
      if ((op == "$in" || op == "$nin") && !operand.is_array()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "query: " + op + " for field '" + field + "' needs an array");
      }
      if (op == "$exists" && !operand.is_bool()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "query: $exists for field '" + field + "' needs true or false");
      }
    }
  }
  return Ok();
}

bool MatchesFilter(const JsonObject& record, const JsonObject& filter) {
  for (const auto& [key, condition] : filter) {
    if (key == "$and") {
      for (const auto& part : condition.get_array()) {
        if (!MatchesFilter(record, part.get_object())) return false;
      }
      continue;
    }
    if (key == "$or") {
      bool any = false;
      for (const auto& part : condition.get_array()) {
        if (MatchesFilter(record, part.get_object())) {
          any = true;
          break;
        }
      }
      if (!any) return false;
      continue;
    }
    const Json* value = FindPath(record, key);
    if (IsOperatorObject(condition)) {
      for (const auto& [op, operand] : condition.get_object()) {
        if (!OperatorMatches(value, op, operand)) return false;
      }
    } else if (!value || !JsonEquals(*value, condition)) {
      return false;
    }
  }
  return true;
}

}  // namespace s3db
