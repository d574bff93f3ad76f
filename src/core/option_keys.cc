#include "core/option_keys.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace s3db {
namespace {

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string ClosestName(std::string_view name, std::span<const std::string_view> known) {
  std::string best;
  std::size_t best_distance = 3;  // suggest only close names
  for (std::string_view candidate : known) {
    std::size_t distance = EditDistance(name, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best;
}

Status RefuseUnknownOptions(const JsonObject& object, std::span<const std::string_view> known,
                            std::string_view path) {
  for (const auto& entry : object) {
    if (std::find(known.begin(), known.end(), entry.key()) != known.end()) continue;
    std::string message = path.empty() ? "" : std::string(path) + ".";
    message += std::string(entry.key()) + ": unknown option (known: ";
    for (std::size_t i = 0; i < known.size(); ++i) {
      if (i) message += ", ";
      message += known[i];
    }
    message += ")";
    if (std::string best = ClosestName(entry.key(), known); !best.empty()) {
      message += " (did you mean '" + best + "'?)";
    }
    return MakeError(ErrorCode::kInvalidArgument, std::move(message));
  }
  return Ok();
}

}  // namespace s3db
