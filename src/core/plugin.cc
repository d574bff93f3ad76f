#include "s3db/plugin.h"

namespace s3db {

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kInsert:
      return "insert";
    case Action::kUpdate:
      return "update";
    case Action::kDelete:
      return "delete";
  }
  return "unknown";
}

std::optional<Action> ParseAction(std::string_view name) {
  if (name == "insert") return Action::kInsert;
  if (name == "update") return Action::kUpdate;
  if (name == "delete") return Action::kDelete;
  return std::nullopt;
}

std::string Change::ChangeId() const {
  std::string out;
  out.reserve(resource.size() + id.size() + 24);
  out += resource;
  out += ':';
  out += id;
  out += ':';
  out += std::to_string(revision);
  return out;
}

}  // namespace s3db
