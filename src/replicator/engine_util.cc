#include "replicator/engine_util.h"

#include <algorithm>

namespace s3db::replicator::internal {

std::string EffectiveId(const ReplicatorConfig& replicator, std::size_t index) {
  if (!replicator.id.empty()) return replicator.id;
  return replicator.driver + "-" + std::to_string(index);
}

std::optional<DriverFactory> FindDriverByName(std::string_view name) {
  if (auto factory = FindDriver(name)) return factory;
  if (name == "postgres") return FindDriver("postgresql");
  if (name == "postgresql") return FindDriver("postgres");
  return std::nullopt;
}

bool IsPlainName(std::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

Status ValidateResourceName(std::string_view name) {
  if (name.empty() || name.size() > 100) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "resource name must be 1 to 100 characters of A-Z a-z 0-9 _ -");
  }
  if (!IsPlainName(name)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "resource name '" + std::string(name) + "' may only hold A-Z a-z 0-9 _ -");
  }
  return Ok();
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace s3db::replicator::internal
