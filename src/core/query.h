// Record filters for Resource::Query: {"field": value} or {"field": {"$op": operand}}, with
// $eq $ne $gt $gte $lt $lte $in $nin $exists, and $and / $or over lists of filters.
#pragma once

#include <optional>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db {

// Checks operators and operand types once; errors name the field and the operator.
Status ValidateFilter(const JsonObject& filter);

// REQUIRES: ValidateFilter(filter) succeeded.
bool MatchesFilter(const JsonObject& record, const JsonObject& filter);

// Orders two JSON scalars: numbers numerically (exact across int64/uint64/double), strings by
// bytes, booleans false < true. nullopt when they cannot be ordered.
std::optional<int> CompareJson(const Json& a, const Json& b);

// Equality with numbers compared by value (1 == 1.0).
bool JsonEquals(const Json& a, const Json& b);

}  // namespace s3db
