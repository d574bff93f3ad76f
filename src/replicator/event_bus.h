// Plugin-level event handlers ("replicated", "replicator_error", ...).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "s3db/database.h"

namespace s3db::replicator::internal {

// Thread-safe. Handlers run on the emitting thread, outside the lock.
class EventBus {
 public:
  std::size_t On(std::string event, EventHandler handler) {
    std::lock_guard lock(mutex_);
    std::size_t handle = next_handle_++;
    handlers_.emplace(handle, std::make_pair(std::move(event), std::move(handler)));
    return handle;
  }

  void Off(std::size_t handle) {
    std::lock_guard lock(mutex_);
    handlers_.erase(handle);
  }

  bool HasHandlers(std::string_view event) const {
    std::lock_guard lock(mutex_);
    for (const auto& [handle, entry] : handlers_) {
      if (entry.first == event) return true;
    }
    return false;
  }

  void Emit(std::string_view event, const Json& payload) const {
    std::vector<EventHandler> matching;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [handle, entry] : handlers_) {
        if (entry.first == event) matching.push_back(entry.second);
      }
    }
    for (const auto& handler : matching) handler(payload);
  }

 private:
  mutable std::mutex mutex_;  // guards handlers_ and next_handle_
  std::map<std::size_t, std::pair<std::string, EventHandler>> handlers_;
  std::size_t next_handle_ = 1;
};

}  // namespace s3db::replicator::internal
