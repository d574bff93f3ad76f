// The attributes of a source resource, as the drivers that build target schemas need them.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "s3db/replicator/driver.h"
#include "s3db/schema.h"

namespace s3db::replicator {

// The resource's attributes in definition order, plus createdAt / updatedAt (datetime) when
// the resource keeps timestamps and does not declare them itself. nullopt when the context
// has no definition for the resource or the definition does not parse.
std::optional<std::vector<Attribute>> LoadSourceAttributes(const DriverContext& context,
                                                           std::string_view resource);

}  // namespace s3db::replicator
