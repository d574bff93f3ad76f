#include "replicator/dispatcher.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <span>

#include <spdlog/spdlog.h>

#include "replicator/engine_util.h"
#include "s3db/storage.h"

namespace s3db::replicator::internal {
namespace {

constexpr std::size_t kReadChunk = 512;
constexpr std::size_t kLatencySamples = 8192;
// Delivered revisions are remembered for at least a minute (see RecentRevisions): far longer
// than a write may take to reach the log after the changes written after it (intent_timeout,
// 5 s, then the write's own timeout), and bounded by the delivery rate, not by the number of
// records ever written.
constexpr std::size_t kRecentRevisionsPerGeneration = 25000;
constexpr auto kRecentRevisionsAge = std::chrono::seconds(60);
constexpr auto kIdleWait = std::chrono::milliseconds(100);
constexpr auto kIdleCheckpointInterval = std::chrono::milliseconds(10);
constexpr auto kBusyCheckpointInterval = std::chrono::milliseconds(200);
// The driver's own flush interval (file drivers: flushIntervalMs), else `fallback`.
std::chrono::steady_clock::duration FlushEvery(const Driver& driver,
                                               std::chrono::steady_clock::duration fallback) {
  auto configured = driver.FlushInterval();
  return configured ? std::chrono::steady_clock::duration(*configured) : fallback;
}

double Milliseconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

// The record a change is about: the new record, or for deletes the last stored one.
JsonObject SourceData(const Change& change) {
  if (change.action != Action::kDelete && change.after) return *change.after;
  if (change.before) return *change.before;
  if (change.after) return *change.after;
  JsonObject data;
  data["id"] = change.id;
  return data;
}

std::string ItemKey(std::size_t destination_index, const Change& change) {
  std::string key = std::to_string(destination_index);
  key += '\x1f';
  key += change.resource;
  key += '\x1f';
  key += change.id;
  return key;
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::size_t index = static_cast<std::size_t>(std::ceil(fraction * values.size())) - 1;
  index = std::min(index, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return values[index];
}

bool IsRetryableStartError(ErrorCode code) {
  return code == ErrorCode::kUnavailable || code == ErrorCode::kTimeout ||
         code == ErrorCode::kIo || code == ErrorCode::kConflict ||
         code == ErrorCode::kUnauthorized;
}

// A driver that cannot start because its credentials are refused pauses as "unauthorized",
// like a delivery that is refused; any other start failure as "unavailable".
std::string StartPauseReason(ErrorCode code) {
  return code == ErrorCode::kUnauthorized ? "unauthorized" : "unavailable";
}

}  // namespace

Dispatcher::Dispatcher(DispatcherConfig config, const EngineContext& context,
                       std::uint64_t checkpoint)
    : config_(std::move(config)),
      context_(context),
      batch_size_(static_cast<std::size_t>(context.options->batch_size)),
      max_window_(std::max<std::size_t>(1024, batch_size_ * 8)),
      cursor_(checkpoint),
      recent_revisions_(kRecentRevisionsPerGeneration, kRecentRevisionsAge),
      enabled_(config_.enabled),
      persisted_checkpoint_(checkpoint),
      settled_through_(checkpoint) {
  for (const auto& [source, destinations] : config_.routes) {
    auto& options = destination_options_[source];
    for (const Destination& destination : destinations) {
      JsonObject effective = destination.options;
      if (destination.transform) effective["hasTransform"] = true;
      options.push_back(std::move(effective));
    }
  }
  stats_.id = config_.id;
  stats_.driver = config_.driver_name;
  latencies_.reserve(kLatencySamples);
  if (!context_.logger) context_.logger = spdlog::default_logger();
}

Dispatcher::~Dispatcher() { Stop(); }

Status Dispatcher::Start() {
  if (thread_.joinable()) return Ok();
  if (enabled_.load()) {
    auto started = config_.driver->Start();
    if (started) {
      driver_started_ = true;
    } else if (!IsRetryableStartError(started.error().code)) {
      return MakeError(started.error().code, "replicator '" + config_.id + "' (driver " +
                                                 config_.driver_name + "): " +
                                                 RedactSecrets(started.error().message));
    } else {
      ReplicatorError error;
      error.message = "Failed to replicate to " + config_.driver_name + ": " +
                      RedactSecrets(started.error().message);
      error.description =
          std::string(started.error().code == ErrorCode::kUnauthorized
                          ? "The target refused the credentials at start"
                          : "The target could not be reached at start") +
          "; the replicator retries in the background and keeps every change until it succeeds.";
      error.context["replicator"] = config_.id;
      error.context["driver"] = config_.driver_name;
      RecordError(std::move(error));
      Pause(StartPauseReason(started.error().code), PauseBackoff(++start_attempts_));
    }
  }
  stopping_.store(false);
  if (state_.load() != static_cast<int>(ReplicatorState::kPaused)) {
    state_.store(static_cast<int>(ReplicatorState::kRunning));
  }
  {
    std::lock_guard lock(call_.mutex);
    call_.quit = false;
  }
  if (!caller_.joinable()) caller_ = std::thread([this] { CallerLoop(); });
  thread_ = std::thread([this] { Run(); });
  return Ok();
}

void Dispatcher::CallerLoop() {
  std::unique_lock lock(call_.mutex);
  while (true) {
    call_.changed.wait(lock, [&] { return (call_.has_job && !call_.done) || call_.quit; });
    if (call_.quit && !call_.has_job) return;
    const std::chrono::milliseconds timeout = call_.timeout;
    lock.unlock();
    // The dispatcher does not touch call_.batch while has_job is set, and only reads it when it
    // gives up on the call, so the driver may read it without the lock.
    std::vector<DeliveryResult> results;
    try {
      results = config_.driver->Deliver(std::span<const DeliveryItem>(call_.batch), timeout);
    } catch (const std::exception& e) {
      results.assign(call_.batch.size(),
                     DeliveryResult::Retryable("driver " + config_.driver_name +
                                               " threw: " + e.what()));
    } catch (...) {
      results.assign(call_.batch.size(),
                     DeliveryResult::Retryable("driver " + config_.driver_name +
                                               " threw an unknown exception"));
    }
    lock.lock();
    call_.results = std::move(results);
    call_.done = true;
    call_.has_job = false;
    call_.changed.notify_all();
    lock.unlock();
    Notify();  // a dispatcher waiting for an abandoned call carries on
    lock.lock();
  }
}

std::optional<std::vector<DeliveryResult>> Dispatcher::CallDriver(
    std::vector<DeliveryItem>& batch, std::chrono::milliseconds timeout) {
  // A driver that honours its timeout answers right at it; give its answer a moment to arrive
  // before the engine gives up.
  const auto grace = std::clamp(timeout / 10, std::chrono::milliseconds(20),
                                std::chrono::milliseconds(1000));
  std::unique_lock lock(call_.mutex);
  call_.batch = std::move(batch);
  call_.timeout = timeout;
  call_.done = false;
  call_.results.clear();
  call_.has_job = true;
  call_.changed.notify_all();
  if (call_.changed.wait_for(lock, timeout + grace, [&] { return call_.done; })) {
    call_.done = false;
    batch = std::move(call_.batch);
    call_.batch.clear();
    return std::move(call_.results);
  }
  batch = call_.batch;  // a copy: the driver still reads the original
  lock.unlock();
  call_abandoned_ = true;
  call_started_ = Clock::now() - timeout - grace;
  {
    std::lock_guard stats_lock(stats_mutex_);
    pause_reason_ = "timeout";
  }
  state_.store(static_cast<int>(ReplicatorState::kPaused));
  return std::nullopt;
}

bool Dispatcher::CollectAbandonedCall(Clock::time_point until) {
  if (!call_abandoned_) return true;
  std::unique_lock lock(call_.mutex);
  call_.changed.wait_until(lock, until, [&] { return call_.done; });
  if (!call_.done) return false;
  call_.done = false;
  call_.batch.clear();
  call_.results.clear();
  call_abandoned_ = false;
  lock.unlock();
  context_.logger->info("replicator {}: a timed-out driver call returned after {:.0f} ms; its "
                        "changes were already counted as failed and are retried",
                        config_.id, Milliseconds(Clock::now() - call_started_));
  return true;
}

void Dispatcher::Stop() {
  stopping_.store(true);
  {
    std::lock_guard lock(wake_mutex_);
    woken_ = true;
  }
  wake_.notify_all();
  settled_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(call_.mutex);
    call_.quit = true;
  }
  call_.changed.notify_all();
  if (caller_.joinable()) caller_.join();
}

void Dispatcher::SetEnabled(bool enabled) {
  enabled_.store(enabled);
  Notify();
}

void Dispatcher::Notify() {
  {
    std::lock_guard lock(wake_mutex_);
    woken_ = true;
  }
  wake_.notify_one();
}

void Dispatcher::WaitForWork(Clock::time_point until) {
  std::unique_lock lock(wake_mutex_);
  wake_.wait_until(lock, until, [&] { return woken_ || stopping_.load(); });
  woken_ = false;
}

bool Dispatcher::StartDriver() {
  auto started = config_.driver->Start();
  if (started) {
    driver_started_ = true;
    start_attempts_ = 0;
    return true;
  }
  ReplicatorError error;
  error.message = "Failed to replicate to " + config_.driver_name + ": " +
                  RedactSecrets(started.error().message);
  error.description = "The driver could not start; it is retried with backoff.";
  error.context["replicator"] = config_.id;
  error.context["driver"] = config_.driver_name;
  RecordError(std::move(error));
  Pause(StartPauseReason(started.error().code), PauseBackoff(++start_attempts_));
  return false;
}

void Dispatcher::Run() {
  const auto linger = std::chrono::milliseconds(context_.options->linger_ms);
  while (!stopping_.load()) {
    auto now = Clock::now();
    if (!enabled_.load()) {
      state_.store(static_cast<int>(ReplicatorState::kDisabled));
      WaitForWork(now + std::chrono::seconds(1));
      continue;
    }
    if (now < paused_until_) {
      state_.store(static_cast<int>(ReplicatorState::kPaused));
      WaitForWork(paused_until_);
      continue;
    }
    if (!driver_started_ && !StartDriver()) continue;
    if (call_abandoned_ && !CollectAbandonedCall(now)) {
      // A driver call that exceeded the timeout has not returned yet: the driver gets no other
      // call (no delivery, no flush) until it does; routing goes on.
      {
        std::lock_guard lock(stats_mutex_);
        pause_reason_ = "timeout";
      }
      state_.store(static_cast<int>(ReplicatorState::kPaused));
      FillWindow();
      UpdateSettledThrough();
      WaitForWork(now + kIdleWait);
      continue;
    }
    // Between the probes of an outage (or of refused credentials) the replicator stays paused:
    // only a delivery or an answer from the target ends it.
    if (outage_streak_ > 0 && keys_.empty()) outage_streak_ = 0;
    state_.store(static_cast<int>(outage_streak_ > 0 ? ReplicatorState::kPaused
                                                     : ReplicatorState::kRunning));

    // Dead letters that could not be saved earlier hold their changes open.
    for (auto it = unsaved_dead_letters_.begin(); it != unsaved_dead_letters_.end();) {
      if (context_.log->AddDeadLetter(it->second)) {
        {
          std::lock_guard lock(stats_mutex_);
          ++stats_.dead_lettered;
        }
        std::uint64_t sequence = it->first.sequence;
        it = unsaved_dead_letters_.erase(it);
        SettleItem(sequence, ItemOutcome::kDeadLettered);
      } else {
        ++it;
      }
    }

    if (!FillWindow()) {
      WaitForWork(now + kIdleWait);  // the log could not be read; try again shortly
      continue;
    }
    PromoteDueRetries(now);
    UpdateSettledThrough();

    if (ready_.empty()) {
      MaybeCheckpoint(FlushEvery(*config_.driver, kIdleCheckpointInterval));
      if (cursor_ < context_.log->LastSequence() && window_.size() < max_window_) continue;
      Clock::time_point until = now + kIdleWait;
      if (!delayed_.empty()) until = std::min(until, delayed_.begin()->first);
      if (settled_through_.load() > persisted_checkpoint_.load()) {
        until = std::min(until, last_checkpoint_time_ +
                                    FlushEvery(*config_.driver, kIdleCheckpointInterval));
      }
      WaitForWork(until);
      continue;
    }

    // Linger only under sustained load (the last batch was full): at low rates changes go out
    // at once, and batches still grow by themselves while a delivery is in flight.
    if (ready_.size() < batch_size_ && linger.count() > 0 && last_batch_full_) {
      Clock::time_point deadline = ready_since_ + linger;
      while (!stopping_.load() && ready_.size() < batch_size_ && Clock::now() < deadline) {
        if (cursor_ >= context_.log->LastSequence()) WaitForWork(deadline);
        FillWindow();
      }
    }

    DeliverBatch();
    UpdateSettledThrough();
    MaybeCheckpoint(FlushEvery(*config_.driver, kBusyCheckpointInterval));
  }
  if (call_abandoned_) {
    context_.logger->warn("replicator {}: stopping waits for a driver call that exceeded the "
                          "{} ms timeout to return",
                          config_.id, context_.options->timeout_ms);
    while (!CollectAbandonedCall(Clock::now() + std::chrono::seconds(1))) {
    }
  }
  UpdateSettledThrough();
  MaybeCheckpoint(Clock::duration::zero());
  if (driver_started_) config_.driver->Stop();
  driver_started_ = false;
  state_.store(static_cast<int>(ReplicatorState::kStopped));
}

bool Dispatcher::FillWindow() {
  std::uint64_t head = context_.log->LastSequence();
  while (!stopping_.load() && window_.size() < max_window_ && cursor_ < head) {
    std::size_t want = std::min(kReadChunk, max_window_ - window_.size());
    auto changes = context_.log->ReadShared(cursor_, want);
    if (!changes) {
      ReplicatorError error;
      error.message = "cannot read the change log: " + changes.error().message;
      error.description = "The local change log failed; reading is retried.";
      error.context["replicator"] = config_.id;
      RecordError(std::move(error));
      return false;
    }
    if (changes->empty()) {  // nothing stored above the cursor (compacted by another run)
      cursor_ = head;
      return true;
    }
    for (auto& logged : *changes) {
      cursor_ = logged->sequence;
      Route(std::move(logged));
    }
  }
  return true;
}

void Dispatcher::Route(std::shared_ptr<const LoggedChange> logged) {
  const std::uint64_t sequence = logged->sequence;
  if (!logged->only_replicator.empty() && logged->only_replicator != config_.id) {
    SettleEntry(sequence, "skipped");
    return;
  }
  if (!Maps(logged->change.resource)) {
    SettleEntry(sequence, "skipped");
    return;
  }
  const std::vector<Destination>* destinations = nullptr;
  const std::vector<JsonObject>* options = nullptr;
  std::vector<Destination> same_name;  // every_resource: one destination of the same name
  if (auto route = config_.routes.find(logged->change.resource); route != config_.routes.end()) {
    destinations = &route->second;
    options = &destination_options_.find(logged->change.resource)->second;
  } else {
    Destination destination;
    destination.resource = logged->change.resource;
    destination.actions = {Action::kInsert, Action::kUpdate, Action::kDelete};
    same_name.push_back(std::move(destination));
    destinations = &same_name;
  }
  WindowEntry& entry = window_[sequence];
  entry.logged = std::move(logged);
  const Change& change = entry.logged->change;
  entry.open_items = 1;  // held until routing is done
  std::uint64_t filtered = 0;

  for (std::size_t i = 0; i < destinations->size(); ++i) {
    const Destination& destination = (*destinations)[i];
    const std::string& only = entry.logged->only_destination;
    if (!only.empty() && destination.resource != only) continue;
    if (std::find(destination.actions.begin(), destination.actions.end(), change.action) ==
        destination.actions.end()) {
      ++filtered;
      continue;
    }

    WorkItem work;
    DeliveryItem& item = work.item;
    item.change_id = change.ChangeId();
    item.sequence = sequence;
    item.source_resource = change.resource;
    item.target = destination.resource;
    item.id = change.id;
    item.revision = change.revision;
    item.action = change.action;
    item.timestamp_ms = change.timestamp_ms;
    item.destination_options = options ? &(*options)[i] : &no_options_;
    work.key = ItemKey(i, change);
    work.destination_index = i;

    JsonObject data = SourceData(change);
    std::string failure_reason;
    std::string failure;
    bool keep = true;
    if (destination.should_replicate) {
      try {
        keep = destination.should_replicate(data, change.action);
      } catch (const std::exception& e) {
        failure_reason = "should_replicate_error";
        failure = "shouldReplicate function failed for resource '" + change.resource +
                  "': " + e.what();
      } catch (...) {
        failure_reason = "should_replicate_error";
        failure = "shouldReplicate function failed for resource '" + change.resource +
                  "': unknown exception";
      }
    }
    if (failure.empty() && !keep) {
      ++filtered;
      continue;
    }
    std::optional<JsonObject> before;
    if (change.action == Action::kUpdate && change.before) before = *change.before;
    if (failure.empty() && destination.transform) {
      try {
        std::optional<JsonObject> transformed = destination.transform(data);
        if (!transformed) {
          ++filtered;
          continue;
        }
        data = std::move(*transformed);
        if (before) {
          // The previous version is only context: when the transform cannot take it (data
          // that was valid then and is not now), the change goes out without `before` rather
          // than to the dead-letter queue.
          std::string problem;
          try {
            before = destination.transform(*before);
          } catch (const std::exception& e) {
            problem = e.what();
          } catch (...) {
            problem = "unknown exception";
          }
          if (!problem.empty()) {
            before.reset();
            context_.logger->warn(
                "replicator {}: change {}: the transform for resource '{}' failed on the "
                "previous version of the record ({}); the change is sent without 'before'",
                config_.id, change.ChangeId(), change.resource, RedactSecrets(problem));
          }
        }
      } catch (const std::exception& e) {
        failure_reason = "transform_error";
        failure = "Transform function failed for resource '" + change.resource + "': " +
                  e.what();
      } catch (...) {
        failure_reason = "transform_error";
        failure = "Transform function failed for resource '" + change.resource +
                  "': unknown exception";
      }
    }
    if (!failure.empty()) {
      item.data = data;
      EmitFailure(item, data, 0, 0, failure, failure_reason, false);
      ++entry.open_items;
      if (SaveDeadLetter(*entry.logged, destination.resource, failure_reason, failure, 0, true)) {
        --entry.open_items;
        entry.dead_any = true;
      }
      continue;
    }
    if (!data.contains("id")) data["id"] = change.id;
    if (before && !before->contains("id")) (*before)["id"] = change.id;
    item.data = std::move(data);
    item.before = std::move(before);
    ++entry.open_items;
    Enqueue(std::move(work));
  }

  if (filtered) {
    std::lock_guard lock(stats_mutex_);
    stats_.filtered += filtered;
  }
  SettleItem(sequence, ItemOutcome::kFiltered);  // releases the routing hold
}

void Dispatcher::Enqueue(WorkItem work) {
  const std::string key = work.key;
  const std::uint64_t revision = work.item.revision;
  const std::uint64_t sequence = work.item.sequence;
  if (revision > 0) {
    // A change that reached the log after a newer one of the same record was delivered: the
    // target already has newer data, so sending it would go back in time.
    if (revision < recent_revisions_.Last(key)) {
      {
        std::lock_guard lock(stats_mutex_);
        ++stats_.filtered;
      }
      SettleItem(sequence, ItemOutcome::kFiltered);
      return;
    }
  }
  KeyQueue& queue = keys_[key];
  auto position = queue.items.end();
  if (revision > 0) {
    while (position != queue.items.begin()) {
      auto previous = std::prev(position);
      bool head_started = previous == queue.items.begin() &&
                          (queue.in_flight || previous->total_attempts > 0);
      if (head_started || previous->item.revision <= revision) break;
      position = previous;
    }
  }
  queue.items.insert(position, std::move(work));
  if (!queue.in_flight && !queue.scheduled) {
    if (ready_.empty()) ready_since_ = Clock::now();
    ready_.push_back(key);
    queue.scheduled = true;
  }
}

void Dispatcher::PromoteDueRetries(Clock::time_point now) {
  if (now < paused_until_) return;
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    if (ready_.empty()) ready_since_ = now;
    ready_.push_back(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
  }
}

void Dispatcher::DeliverBatch() {
  std::vector<std::string> batch_keys;
  while (!ready_.empty() && batch_keys.size() < batch_size_) {
    std::string key = std::move(ready_.front());
    ready_.pop_front();
    auto it = keys_.find(key);
    if (it == keys_.end() || it->second.items.empty() || it->second.in_flight) continue;
    it->second.scheduled = false;
    it->second.in_flight = true;
    batch_keys.push_back(std::move(key));
  }
  if (!ready_.empty()) ready_since_ = Clock::now();
  if (batch_keys.empty()) return;
  last_batch_full_ = batch_keys.size() >= batch_size_;
  std::sort(batch_keys.begin(), batch_keys.end(), [&](const std::string& a, const std::string& b) {
    return keys_[a].items.front().item.sequence < keys_[b].items.front().item.sequence;
  });
  std::vector<DeliveryItem> batch;
  batch.reserve(batch_keys.size());
  for (const auto& key : batch_keys) batch.push_back(std::move(keys_[key].items.front().item));

  const auto timeout = std::chrono::milliseconds(context_.options->timeout_ms);
  const auto started = Clock::now();
  std::optional<std::vector<DeliveryResult>> answered = CallDriver(batch, timeout);
  const auto now = Clock::now();
  const double duration_ms = Milliseconds(now - started);
  std::vector<DeliveryResult> results;
  if (!answered) {
    // Every change of the batch failed this attempt; the retry goes out once the driver's
    // call has returned. A target that is idempotent per revision (s3db, postgresql) ignores
    // what the late call may still write twice.
    std::string error = "driver " + config_.driver_name + " did not answer within the " +
                        std::to_string(context_.options->timeout_ms) +
                        " ms timeout; the attempt counts as failed and is retried";
    context_.logger->warn("replicator {}: {}", config_.id, error);
    results.assign(batch.size(), DeliveryResult::Retryable(error));
  } else {
    results = std::move(*answered);
  }
  if (results.size() != batch.size()) {
    std::string error = "driver " + config_.driver_name + " returned " +
                        std::to_string(results.size()) + " results for " +
                        std::to_string(batch.size()) + " changes";
    results.assign(batch.size(), DeliveryResult::Retryable(error));
  }

  bool any_delivered = false;
  bool target_answered = false;  // some change was delivered or refused for good
  bool unauthorized = false;
  bool unreachable = false;  // a driver said the target as a whole did not answer
  std::chrono::milliseconds throttle{0};
  for (const auto& result : results) {
    if (result.outcome == Outcome::kRetryable && result.target_unreachable) unreachable = true;
    if (result.outcome == Outcome::kDelivered) any_delivered = true;
    if (result.outcome == Outcome::kDelivered || result.outcome == Outcome::kPermanent) {
      target_answered = true;
    }
    if (result.outcome == Outcome::kUnauthorized) unauthorized = true;
    if (result.outcome == Outcome::kRetryable && result.pause_replicator) {
      throttle = std::max(throttle, result.retry_after);
    }
  }
  // An outage: nothing was answered, and either the driver said the target did not answer at
  // all (connection refused, no answer, 503...) or several different records failed alike.
  // Then the replicator pauses and probes with backoff, and those failures do not use up
  // retries, so an unreachable target never causes dead letters. Otherwise a failing batch of
  // one record is charged to that record: its retries run out and it is dead-lettered after
  // maxRetries.
  std::set<std::pair<std::string_view, std::string_view>> records;
  for (const auto& item : batch) records.emplace(item.source_resource, item.id);
  const bool outage = !target_answered && (unreachable || records.size() >= 2);
  const bool charge_failures = !outage;
  const bool probing = !any_delivered && (outage || unauthorized);
  outage_streak_ = probing ? outage_streak_ + 1 : 0;
  if (unauthorized) {
    Pause("unauthorized", PauseBackoff(std::max(1, outage_streak_)));
  } else if (outage) {
    Pause("unavailable", PauseBackoff(outage_streak_));
  }
  if (throttle.count() > 0) Pause("throttled", throttle);

  const int max_retries = context_.options->max_retries;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::string& key = batch_keys[i];
    KeyQueue& queue = keys_[key];
    WorkItem& work = queue.items.front();
    work.item = std::move(batch[i]);
    ++work.total_attempts;
    const DeliveryResult& result = results[i];
    const int attempt = work.total_attempts;
    std::string error = RedactSecrets(result.error);

    if (result.outcome == Outcome::kDelivered) {
      double latency = static_cast<double>(NowMs() - work.item.timestamp_ms);
      {
        std::lock_guard lock(stats_mutex_);
        ++stats_.delivered;
        if (latencies_.size() < kLatencySamples) {
          latencies_.push_back(latency);
        } else {
          latencies_[latency_next_] = latency;
        }
        latency_next_ = (latency_next_ + 1) % kLatencySamples;
      }
      EmitSuccess(work.item, attempt, duration_ms);
      LogEntry(work.item, "success", "", attempt, false);
      FinishHead(key, true);
      continue;
    }

    {
      std::lock_guard lock(stats_mutex_);
      ++stats_.failed;
    }
    work.last_error = error.empty() ? "delivery failed" : error;
    bool dead = false;
    std::string reason;
    if (result.outcome == Outcome::kPermanent) {
      dead = true;
      reason = result.reason.empty() ? "permanent" : result.reason;
    } else if (result.outcome == Outcome::kRetryable && !result.pause_replicator &&
               charge_failures) {
      ++work.attempts;
      if (work.attempts > max_retries) {
        dead = true;
        reason = "max_retries";
      }
    }

    if (dead) {
      std::string message = work.last_error;
      if (reason == "max_retries") {
        message = "Failed to replicate to " + config_.driver_name + " after " +
                  std::to_string(attempt) + " attempts: " + work.last_error;
      }
      EmitFailure(work.item, work.item.data, attempt, duration_ms, message, reason, false);
      if (SaveDeadLetter(*window_[work.item.sequence].logged, work.item.target, reason, message,
                         attempt, false)) {
        FinishHead(key, false);
        continue;
      }
      // Could not save the dead letter: keep the change and try again later.
      std::lock_guard lock(stats_mutex_);
      ++stats_.retried;
    } else {
      {
        // Counted before the event, so that whoever the event wakes sees it in the stats.
        std::lock_guard lock(stats_mutex_);
        ++stats_.retried;
      }
      EmitFailure(work.item, work.item.data, attempt, duration_ms, work.last_error,
                  result.outcome == Outcome::kUnauthorized ? "unauthorized" : "retryable", true);
    }

    // While the target is down (or refuses the credentials) the next try is the replicator's
    // probe: a driver's own retry delay (webhook retryDelay, doubling) would outgrow probeMaxMs
    // and keep a target that is back waiting.
    Clock::time_point when = paused_until_;
    if (!probing) {
      std::chrono::milliseconds delay = result.retry_after.count() > 0 && !result.pause_replicator
                                            ? result.retry_after
                                            : Backoff(std::max(1, work.attempts));
      when = std::max(now + delay, paused_until_);
    }
    queue.in_flight = false;
    queue.scheduled = true;
    delayed_.emplace(when, key);
  }
}

void Dispatcher::FinishHead(const std::string& key, bool delivered) {
  auto it = keys_.find(key);
  KeyQueue& queue = it->second;
  WorkItem work = std::move(queue.items.front());
  queue.items.pop_front();
  queue.in_flight = false;
  if (delivered && work.item.revision > 0) {
    recent_revisions_.Remember(key, work.item.revision, Clock::now());
  }
  if (queue.items.empty()) {
    keys_.erase(it);
  } else {
    if (ready_.empty()) ready_since_ = Clock::now();
    ready_.push_back(key);
    queue.scheduled = true;
  }
  SettleItem(work.item.sequence, delivered ? ItemOutcome::kDelivered : ItemOutcome::kDeadLettered);
}

void Dispatcher::SettleItem(std::uint64_t sequence, ItemOutcome outcome) {
  auto it = window_.find(sequence);
  if (it == window_.end()) return;
  WindowEntry& entry = it->second;
  if (outcome == ItemOutcome::kDelivered) entry.delivered_any = true;
  if (outcome == ItemOutcome::kDeadLettered) entry.dead_any = true;
  if (--entry.open_items > 0) return;
  std::string_view status = entry.dead_any        ? "dead_letter"
                            : entry.delivered_any ? "delivered"
                                                  : "filtered";
  SettleEntry(sequence, status);
  window_.erase(it);
}

void Dispatcher::SettleEntry(std::uint64_t sequence, std::string_view status) {
  std::lock_guard lock(observers_mutex_);
  for (const auto& [handle, observer] : observers_) observer(sequence, status);
}

bool Dispatcher::SaveDeadLetter(const LoggedChange& logged, const std::string& destination,
                                const std::string& reason, const std::string& error,
                                int attempts, bool queue_if_unsaved) {
  ::s3db::replicator::DeadLetter letter;
  letter.replicator = config_.id;
  letter.sequence = logged.sequence;
  letter.change = logged.change;
  letter.destination = destination;
  letter.reason = reason;
  letter.error = error;
  letter.attempts = attempts;
  letter.failed_at_ms = NowMs();
  if (context_.log->AddDeadLetter(letter)) {
    std::lock_guard lock(stats_mutex_);
    ++stats_.dead_lettered;
    return true;
  }
  context_.logger->error("replicator {}: cannot save a dead letter for change {}; retrying",
                         config_.id, logged.change.ChangeId());
  if (queue_if_unsaved) unsaved_dead_letters_.emplace_back(logged, std::move(letter));
  return false;
}

void Dispatcher::UpdateSettledThrough() {
  std::uint64_t candidate = window_.empty() ? cursor_ : window_.begin()->first - 1;
  settled_through_.store(candidate);
  oldest_unsettled_ms_.store(window_.empty() ? 0
                                             : window_.begin()->second.logged->change.timestamp_ms);
}

void Dispatcher::MaybeCheckpoint(Clock::duration min_interval) {
  if (call_abandoned_) return;  // no Flush while the driver is still in a call
  std::uint64_t candidate = settled_through_.load();
  if (candidate <= persisted_checkpoint_.load()) return;
  auto now = Clock::now();
  if (now - last_checkpoint_time_ < min_interval) return;
  last_checkpoint_time_ = now;
  if (driver_started_) {
    auto flushed = config_.driver->Flush();
    if (!flushed) {
      ReplicatorError error;
      error.message = "Failed to replicate to " + config_.driver_name + ": flush failed: " +
                      RedactSecrets(flushed.error().message);
      error.description = "The driver could not make delivered changes durable; the "
                          "checkpoint stays where it was and the flush is retried.";
      error.context["replicator"] = config_.id;
      RecordError(std::move(error));
      return;
    }
  }
  auto saved = context_.log->SetCheckpoint(config_.id, candidate);
  if (!saved) {
    ReplicatorError error;
    error.message = "cannot save the checkpoint: " + saved.error().message;
    error.description = "The local change log failed; saving is retried.";
    error.context["replicator"] = config_.id;
    RecordError(std::move(error));
    return;
  }
  {
    std::lock_guard lock(wake_mutex_);
    persisted_checkpoint_.store(candidate);
  }
  if (driver_started_) config_.driver->CheckpointSaved(candidate);
  settled_.notify_all();
}

void Dispatcher::Pause(std::string reason, std::chrono::milliseconds duration) {
  Clock::time_point until = Clock::now() + duration;
  if (until > paused_until_) paused_until_ = until;
  {
    std::lock_guard lock(stats_mutex_);
    pause_reason_ = std::move(reason);
  }
  state_.store(static_cast<int>(ReplicatorState::kPaused));
}

std::chrono::milliseconds Dispatcher::Backoff(int attempt) {
  // Full jitter: uniform in [1, min(cap, base * 2^(attempt-1))].
  double base = context_.options->retry_base_ms;
  double cap = std::min<double>(context_.options->max_backoff_ms,
                                base * std::pow(2.0, std::min(attempt - 1, 30)));
  std::uniform_real_distribution<double> pick(1.0, std::max(1.0, cap));
  return std::chrono::milliseconds(static_cast<std::int64_t>(pick(random_)));
}

std::chrono::milliseconds Dispatcher::PauseBackoff(int streak) {
  // Pauses keep half of the delay fixed so probes do not hammer a target that is down; the
  // cap (probeMaxMs, 5 s) bounds how long a target that is back waits for the next probe.
  double base = context_.options->retry_base_ms;
  double cap = std::min<double>(
      std::min(context_.options->max_backoff_ms, context_.options->probe_max_ms),
      base * std::pow(2.0, std::min(std::max(streak, 1) - 1, 30)));
  std::uniform_real_distribution<double> pick(cap / 2, std::max(cap / 2 + 1, cap));
  return std::chrono::milliseconds(static_cast<std::int64_t>(pick(random_)));
}

void Dispatcher::RecordError(ReplicatorError error) {
  std::lock_guard lock(stats_mutex_);
  last_error_ = std::move(error);
}

JsonObject Dispatcher::BasePayload(const DeliveryItem& item, int attempt,
                                   double duration_ms) const {
  JsonObject payload;
  payload.reserve(20);  // the fields below and the callers' few: no rehash while filling
  payload["replicator"] = config_.id;
  payload["driver"] = config_.driver_name;
  payload["resource"] = item.source_resource;
  payload["resourceName"] = item.source_resource;
  payload["destination"] = item.target;
  payload["action"] = ActionName(item.action);
  payload["operation"] = ActionName(item.action);
  payload["recordId"] = item.id;
  payload["changeId"] = item.change_id;
  payload["sequence"] = item.sequence;
  payload["revision"] = item.revision;
  payload["attempt"] = attempt;
  payload["durationMs"] = duration_ms;
  return payload;
}

void Dispatcher::EmitSuccess(const DeliveryItem& item, int attempt, double duration_ms) {
  JsonObject payload = BasePayload(item, attempt, duration_ms);
  payload["success"] = true;
  Json value(std::move(payload));
  context_.events->Emit("replicated", value);
  context_.database->Emit("replicator:success", value);
  if (context_.options->verbose) {
    context_.logger->info("replicator {}: delivered {} {}/{} to {} (change {}, attempt {}, "
                          "{:.1f} ms)",
                          config_.id, ActionName(item.action), item.source_resource, item.id,
                          item.target, item.change_id, attempt, duration_ms);
  }
}

void Dispatcher::EmitFailure(const DeliveryItem& item, const JsonObject& data, int attempt,
                             double duration_ms, const std::string& error,
                             const std::string& reason, bool will_retry) {
  JsonObject base = BasePayload(item, attempt, duration_ms);
  base["success"] = false;
  base["reason"] = reason;
  base["willRetry"] = will_retry;

  ReplicatorError replicator_error;
  replicator_error.message = error;
  if (reason == "transform_error" || reason == "should_replicate_error") {
    replicator_error.description =
        "A function of destination '" + item.target + "' threw; the change is in the "
        "dead-letter queue. Fix the function, then replay the dead letters.";
  } else if (reason == "unauthorized") {
    replicator_error.description =
        "The target rejected the credentials; the replicator is paused and probes until they "
        "work. Nothing is dead-lettered.";
  } else if (will_retry) {
    replicator_error.description = "Delivery to " + config_.driver_name +
                                   " failed; it is retried with exponential backoff.";
  } else {
    replicator_error.description =
        "The change is in the dead-letter queue (reason " + reason +
        "). Fix the cause, then replay the dead letters.";
  }
  replicator_error.context = base;
  RecordError(replicator_error);

  JsonObject plugin_payload = base;
  plugin_payload["error"] = error;
  context_.events->Emit("replicator_error", Json(std::move(plugin_payload)));
  JsonObject database_payload = std::move(base);
  database_payload["error"] = replicator_error.ToJson();
  database_payload["data"] = data;
  context_.database->Emit("replicator:error", Json(std::move(database_payload)));

  if (context_.options->log_errors || context_.options->verbose) {
    auto now = Clock::now();
    if (context_.options->verbose || now - last_error_log_ >= std::chrono::seconds(1)) {
      std::string suppressed =
          suppressed_error_logs_ ? " (" + std::to_string(suppressed_error_logs_) +
                                       " similar errors not shown)"
                                 : "";
      context_.logger->warn("replicator {}: {} {}/{} to {} failed (change {}, attempt {}{}): "
                            "{}{}",
                            config_.id, ActionName(item.action), item.source_resource, item.id,
                            item.target, item.change_id, attempt,
                            will_retry ? ", will retry" : ", dead-lettered", error, suppressed);
      last_error_log_ = now;
      suppressed_error_logs_ = 0;
    } else {
      ++suppressed_error_logs_;
    }
  }
  if (context_.options->log_errors) {
    LogEntry(item, "error", error, attempt, !will_retry);
  }
}

void Dispatcher::LogEntry(const DeliveryItem& item, std::string status, std::string error,
                          int attempts, bool dead_lettered) {
  if (!context_.log_writer) return;
  ReplicatorLogEntry entry;
  entry.replicator = config_.id;
  entry.resource = item.source_resource;
  entry.destination = item.target;
  entry.action = std::string(ActionName(item.action));
  entry.record_id = item.id;
  entry.change_id = item.change_id;
  entry.status = std::move(status);
  entry.error = std::move(error);
  entry.attempts = attempts;
  entry.dead_lettered = dead_lettered;
  entry.timestamp_ms = NowMs();
  context_.log_writer->Add(std::move(entry));
}

ReplicatorState Dispatcher::State() const {
  if (!thread_.joinable()) return ReplicatorState::kStopped;
  if (!enabled_.load()) return ReplicatorState::kDisabled;
  return static_cast<ReplicatorState>(state_.load());
}

std::optional<ReplicatorError> Dispatcher::LastError() const {
  std::lock_guard lock(stats_mutex_);
  return last_error_;
}

ReplicatorStats Dispatcher::Stats() const {
  ReplicatorStats stats;
  std::vector<double> latencies;
  {
    std::lock_guard lock(stats_mutex_);
    stats = stats_;
    stats.last_error = last_error_;
    latencies = latencies_;
    stats.pause_reason = pause_reason_;
  }
  stats.state = State();
  if (stats.state != ReplicatorState::kPaused) stats.pause_reason.clear();
  stats.checkpoint = persisted_checkpoint_.load();
  stats.head = context_.log->LastSequence();
  stats.lag_changes = stats.head > stats.checkpoint ? stats.head - stats.checkpoint : 0;
  std::int64_t oldest = oldest_unsettled_ms_.load();
  if (oldest == 0 && stats.lag_changes > 0) {
    if (auto next = context_.log->ReadFrom(settled_through_.load(), 1); next && !next->empty()) {
      oldest = next->front().change.timestamp_ms;
    }
  }
  if (oldest > 0 && stats.lag_changes > 0) {
    stats.lag_seconds = std::max<double>(0, static_cast<double>(NowMs() - oldest) / 1000.0);
  }
  if (auto count = context_.log->CountDeadLetters(config_.id)) stats.dead_letter_count = *count;
  stats.latency_p50_ms = Percentile(latencies, 0.50);
  stats.latency_p99_ms = Percentile(latencies, 0.99);
  if (config_.driver) stats.driver_counters = config_.driver->Counters();
  return stats;
}

bool Dispatcher::WaitSettled(std::uint64_t sequence, Clock::time_point deadline) const {
  std::unique_lock lock(wake_mutex_);
  settled_.wait_until(lock, deadline, [&] {
    return persisted_checkpoint_.load() >= sequence || stopping_.load();
  });
  return persisted_checkpoint_.load() >= sequence;
}

std::size_t Dispatcher::AddObserver(Observer observer) {
  std::lock_guard lock(observers_mutex_);
  std::size_t handle = next_observer_++;
  observers_.emplace(handle, std::move(observer));
  return handle;
}

void Dispatcher::RemoveObserver(std::size_t handle) {
  std::lock_guard lock(observers_mutex_);
  observers_.erase(handle);
}

}  // namespace s3db::replicator::internal
