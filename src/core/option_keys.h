// Refusing misspelt option names: the first unknown key of an options object, with the known
// keys and the closest of them ("did you mean 'mode'?").
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db {

// The name of `known` closest to `name` (case-insensitive edit distance below 3), or "".
std::string ClosestName(std::string_view name, std::span<const std::string_view> known);

// kInvalidArgument "<path>.<key>: unknown option (known: a, b, c) (did you mean 'b'?)" for the
// first key of `object` that is not in `known` ("<key>: ..." when `path` is empty).
Status RefuseUnknownOptions(const JsonObject& object, std::span<const std::string_view> known,
                            std::string_view path);

}  // namespace s3db
