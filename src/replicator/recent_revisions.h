// The last delivered revision of each recently delivered record, so that a dispatcher can drop
// a change that reaches the log after a newer change of the same record was delivered.
//
// Bounded by time and by count, not by the number of records ever written: entries live in two
// generations. Remember() starts a new generation (the older one is dropped) once the current
// one is `generation_age` old or holds `generation_limit` keys. So a delivered revision is
// remembered for at least `generation_age`, unless `generation_limit` other records were
// delivered meanwhile, and at most 2 * `generation_limit` keys are ever held.
//
// Not thread-safe: one dispatcher thread owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace s3db::replicator::internal {

class RecentRevisions {
 public:
  using Clock = std::chrono::steady_clock;

  // REQUIRES: generation_limit > 0.
  RecentRevisions(std::size_t generation_limit, Clock::duration generation_age);

  // Records that `revision` of `key` was delivered at `now`.
  void Remember(const std::string& key, std::uint64_t revision, Clock::time_point now);

  // The highest delivered revision of `key` still remembered, or 0.
  std::uint64_t Last(const std::string& key) const;

  // Keys held, in both generations (a key in both counts twice).
  std::size_t size() const { return current_.size() + previous_.size(); }

 private:
  std::size_t generation_limit_;
  Clock::duration generation_age_;
  Clock::time_point current_since_{};
  bool started_ = false;
  std::unordered_map<std::string, std::uint64_t> current_;
  std::unordered_map<std::string, std::uint64_t> previous_;
};

}  // namespace s3db::replicator::internal
