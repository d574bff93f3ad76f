// Small helpers shared by the replication engine's files.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator::internal {

// "<driver>-<index>" unless the replicator has an id.
std::string EffectiveId(const ReplicatorConfig& replicator, std::size_t index);

// The registry entry for a driver name; "postgres" is an alias of "postgresql".
std::optional<DriverFactory> FindDriverByName(std::string_view name);

// [A-Za-z0-9_-]{1,100}: resource names, and replicator ids (a folder name, never a path).
bool IsPlainName(std::string_view name);
Status ValidateResourceName(std::string_view name);

std::int64_t NowMs();

}  // namespace s3db::replicator::internal
