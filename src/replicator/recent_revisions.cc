#include "replicator/recent_revisions.h"

#include <algorithm>
#include <utility>

namespace s3db::replicator::internal {

RecentRevisions::RecentRevisions(std::size_t generation_limit, Clock::duration generation_age)
    : generation_limit_(generation_limit), generation_age_(generation_age) {}

void RecentRevisions::Remember(const std::string& key, std::uint64_t revision,
                               Clock::time_point now) {
  if (!started_) {
    started_ = true;
    current_since_ = now;
  }
  if (now - current_since_ >= generation_age_ || current_.size() >= generation_limit_) {
    // A new map rather than clear(): clear() keeps the bucket array of the largest size seen.
    previous_ = std::exchange(current_, {});
    current_since_ = now;
  }
  std::uint64_t& last = current_[key];
  last = std::max({last, revision, Last(key)});
}

std::uint64_t RecentRevisions::Last(const std::string& key) const {
  std::uint64_t last = 0;
  if (auto found = current_.find(key); found != current_.end()) last = found->second;
  if (auto found = previous_.find(key); found != previous_.end()) {
    last = std::max(last, found->second);
  }
  return last;
}

}  // namespace s3db::replicator::internal
