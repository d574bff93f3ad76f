// A ChangeLog in process memory (NewMemoryChangeLog): the same contract as the SQLite log,
// without durability. One mutex guards everything; appends are cheap map inserts.
#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <tuple>

#include "replicator/change_log.h"
#include "replicator/engine_util.h"

namespace s3db::replicator {
namespace {

using IntentKey = std::tuple<std::string, std::string, std::uint64_t>;

IntentKey KeyOf(const Change& change) { return {change.resource, change.id, change.revision}; }

class MemoryChangeLog final : public ChangeLog {
 public:
  Result<std::uint64_t> Append(const Change& change) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    std::uint64_t sequence = Store(LoggedChange{0, change, {}, {}});
    intents_.erase(KeyOf(change));
    Published();
    return sequence;
  }

  Status Prepare(const Change& change) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    intents_[KeyOf(change)] = change;
    return Ok();
  }

  Status Abandon(const Change& change) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    intents_.erase(KeyOf(change));
    return Ok();
  }

  Result<std::vector<Change>> ListIntents() override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    std::vector<Change> out;
    for (const auto& [key, change] : intents_) out.push_back(change);
    return out;
  }

  Result<std::vector<std::uint64_t>> AppendMany(const std::vector<LoggedChange>& changes) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    std::vector<std::uint64_t> sequences;
    sequences.reserve(changes.size());
    for (const LoggedChange& logged : changes) {
      sequences.push_back(Store(logged));
      if (logged.only_replicator.empty()) intents_.erase(KeyOf(logged.change));
    }
    if (!changes.empty()) Published();
    return sequences;
  }

  Result<std::vector<LoggedChange>> ReadFrom(std::uint64_t after, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    std::vector<LoggedChange> out;
    for (auto it = changes_.upper_bound(after); it != changes_.end() && out.size() < limit; ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  std::uint64_t LastSequence() const override {
    std::lock_guard lock(mutex_);
    return next_sequence_ - 1;
  }

  bool WaitForAppend(std::uint64_t after, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    return appended_.wait_for(lock, timeout, [&] { return next_sequence_ - 1 > after; });
  }

  Result<std::optional<std::uint64_t>> GetCheckpoint(std::string_view replicator) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    auto it = checkpoints_.find(replicator);
    if (it == checkpoints_.end()) return std::optional<std::uint64_t>();
    return std::optional<std::uint64_t>(it->second);
  }

  Status SetCheckpoint(std::string_view replicator, std::uint64_t sequence) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    checkpoints_[std::string(replicator)] = sequence;
    return Ok();
  }

  Result<std::uint64_t> Compact(const std::vector<std::string>& replicators) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    if (replicators.empty() || changes_.empty()) return 0;
    std::uint64_t lowest = UINT64_MAX;
    for (const auto& replicator : replicators) {
      auto it = checkpoints_.find(replicator);
      if (it == checkpoints_.end()) return 0;
      lowest = std::min(lowest, it->second);
    }
    // The newest change is always kept.
    std::uint64_t bound = std::min(lowest, changes_.rbegin()->first - 1);
    std::uint64_t removed = 0;
    while (!changes_.empty() && changes_.begin()->first <= bound) {
      changes_.erase(changes_.begin());
      ++removed;
    }
    return removed;
  }

  Result<std::uint64_t> CountChanges() override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    return static_cast<std::uint64_t>(changes_.size());
  }

  Result<std::int64_t> AddDeadLetter(const DeadLetter& letter) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    DeadLetter stored = letter;
    stored.id = next_dead_letter_id_++;
    if (stored.failed_at_ms == 0) stored.failed_at_ms = internal::NowMs();
    dead_letters_.push_back(std::move(stored));
    return dead_letters_.back().id;
  }

  Result<std::vector<DeadLetter>> ListDeadLetters(std::string_view replicator,
                                                  std::size_t limit) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    std::vector<DeadLetter> out;
    for (const DeadLetter& letter : dead_letters_) {
      if (limit != 0 && out.size() >= limit) break;
      if (letter.replicator == replicator) out.push_back(letter);
    }
    return out;
  }

  Result<std::uint64_t> CountDeadLetters(std::string_view replicator) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    return static_cast<std::uint64_t>(
        std::count_if(dead_letters_.begin(), dead_letters_.end(),
                      [&](const DeadLetter& letter) { return letter.replicator == replicator; }));
  }

  Result<std::vector<std::uint64_t>> RequeueDeadLetters(std::string_view replicator) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    std::vector<std::uint64_t> sequences;
    std::vector<DeadLetter> kept;
    for (DeadLetter& letter : dead_letters_) {
      if (letter.replicator != replicator) {
        kept.push_back(std::move(letter));
        continue;
      }
      sequences.push_back(
          Store(LoggedChange{0, std::move(letter.change), letter.replicator, letter.destination}));
    }
    dead_letters_ = std::move(kept);
    if (!sequences.empty()) Published();
    return sequences;
  }

  Result<std::uint64_t> PurgeDeadLetters(std::string_view replicator) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    auto removed = std::erase_if(
        dead_letters_, [&](const DeadLetter& letter) { return letter.replicator == replicator; });
    return static_cast<std::uint64_t>(removed);
  }

  Result<std::optional<std::string>> GetState(std::string_view key) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    auto it = state_.find(key);
    if (it == state_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Status SetState(std::string_view key, std::string_view value) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    state_[std::string(key)] = std::string(value);
    return Ok();
  }

  Status DeleteState(std::string_view key) override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(CheckOpen());
    if (auto it = state_.find(key); it != state_.end()) state_.erase(it);
    return Ok();
  }

  Status Close() override {
    std::lock_guard lock(mutex_);
    open_ = false;
    appended_.notify_all();
    return Ok();
  }

 private:
  // REQUIRES: mutex_ held.
  Status CheckOpen() const {
    if (!open_) return MakeError(ErrorCode::kUnavailable, "change log is closed");
    return Ok();
  }
  // REQUIRES: mutex_ held.
  std::uint64_t Store(LoggedChange logged) {
    logged.sequence = next_sequence_++;
    std::uint64_t sequence = logged.sequence;
    changes_.emplace(sequence, std::move(logged));
    return sequence;
  }
  // REQUIRES: mutex_ held.
  void Published() { appended_.notify_all(); }

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable appended_;
  bool open_ = true;
  std::uint64_t next_sequence_ = 1;
  std::map<std::uint64_t, LoggedChange> changes_;
  std::map<IntentKey, Change> intents_;
  std::map<std::string, std::uint64_t, std::less<>> checkpoints_;
  std::vector<DeadLetter> dead_letters_;
  std::int64_t next_dead_letter_id_ = 1;
  std::map<std::string, std::string, std::less<>> state_;
};

}  // namespace

std::unique_ptr<ChangeLog> NewMemoryChangeLog() { return std::make_unique<MemoryChangeLog>(); }

}  // namespace s3db::replicator
