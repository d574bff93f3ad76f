// The ReplicatorPlugin and its engine: the change log, one dispatcher per replicator, the
// replicator_log writer and a housekeeping thread that compacts the log.
#include "s3db/replicator/replicator_plugin.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "drivers/s3db/s3db_driver.h"
#include "replicator/change_log.h"
#include "replicator/dispatcher.h"
#include "replicator/engine_util.h"
#include "replicator/event_bus.h"
#include "replicator/replicator_log.h"
#include "s3db/resource.h"
#include "s3db/storage.h"
#include "storage/url_secrets.h"

namespace s3db::replicator {
namespace internal {
namespace {

constexpr auto kCompactionInterval = std::chrono::seconds(1);
constexpr std::size_t kSyncPageSize = 500;

std::shared_ptr<spdlog::logger> ReplicatorLogger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto existing = spdlog::get("replicator");
    if (existing) return existing;
    auto created = spdlog::default_logger()->clone("replicator");
    try {
      spdlog::register_logger(created);
    } catch (const spdlog::spdlog_ex&) {
      // Registered by someone else meanwhile; ours works the same.
    }
    return created;
  }();
  return logger;
}

tl::unexpected<Error> NotFound(std::string_view id) {
  return MakeError(ErrorCode::kNotFound, "Replicator not found: " + std::string(id));
}

bool IsKeyPathChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '[' ||
         c == ']' || c == '-';
}

// A driver's config error with the option's full path in front, so that a YAML config can
// point at its line: "replicators[0].config.batchSize: unknown option; … (replicator pg,
// driver postgresql)". Drivers say "<option>: …", "config.<option>: …" or
// "<driver>: config.<option>: …"; other messages get the path of the config object.
std::string DriverConfigError(const std::string& path, const std::string& id,
                              const std::string& driver, const std::string& message) {
  std::string_view rest = message;
  if (rest.substr(0, driver.size() + 2) == driver + ": ") rest.remove_prefix(driver.size() + 2);
  // "webhook config.method: …" (the network drivers) names the option like "config.method: …".
  if (rest.substr(0, driver.size() + 8) == driver + " config.") {
    rest.remove_prefix(driver.size() + 1);
  }
  std::string key_path = "config";
  // The format writers say "option `delimiter` must be …": the whole message names the option.
  if (rest.substr(0, 8) == "option `") {
    std::size_t end = rest.find('`', 8);
    std::string_view key = end == std::string_view::npos ? "" : rest.substr(8, end - 8);
    if (!key.empty() && std::all_of(key.begin(), key.end(), IsKeyPathChar)) {
      return path + "." + key_path + "." + std::string(key) + ": " + std::string(rest) +
             " (replicator " + id + ", driver " + driver + ")";
    }
  }
  std::size_t colon = rest.find(": ");
  if (colon != std::string_view::npos && colon > 0 &&
      std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(colon),
                  IsKeyPathChar)) {
    std::string_view key = rest.substr(0, colon);
    if (key.substr(0, 10) == "resources.") {
      // A destination the driver cannot take: the line of its mapping.
      return path + "." + std::string(key) + ": " + std::string(rest.substr(colon + 2)) +
             " (replicator " + id + ", driver " + driver + ")";
    }
    if (key.substr(0, 7) == "config.") key.remove_prefix(7);
    if (!key.empty() && key != "config") key_path += "." + std::string(key);
    rest.remove_prefix(colon + 2);
  } else {
    rest = message;
  }
  return path + "." + key_path + ": " + std::string(rest) + " (replicator " + id + ", driver " +
         driver + ")";
}

// Registers the secrets of every URL or connection string in a driver's config (user-info
// passwords, secret query parameters) before the driver sends any of them: a receiver that
// echoes them back is then masked in logs, lastError and dead letters, whatever the driver.
void RegisterConfigUrlSecrets(const Json& value) {
  if (value.is_string()) {
    std::string_view text = value.get_string();
    if (text.find("://") != std::string_view::npos) RegisterUrlSecrets(text);
  } else if (value.is_object()) {
    for (const auto& entry : value.get_object()) RegisterConfigUrlSecrets(entry.value());
  } else if (value.is_array()) {
    for (const Json& element : value.get_array()) RegisterConfigUrlSecrets(element);
  }
}

std::uint64_t RevisionOf(const JsonObject& record) {
  const Json* rev = record.if_contains(kRevisionField);
  if (rev && rev->is_uint64()) return rev->get_uint64();
  if (rev && rev->is_int64() && rev->get_int64() > 0) {
    return static_cast<std::uint64_t>(rev->get_int64());
  }
  return 0;
}

}  // namespace

class Engine {
 public:
  explicit Engine(const ReplicatorPluginOptions& options) : options_(options) {}
  ~Engine() { (void)Stop(); }

  Status Install(Database& database) {
    if (database_) {
      return MakeError(ErrorCode::kInvalidArgument, "the replicator plugin is already installed");
    }
    S3DB_RETURN_IF_ERROR(options_.Validate());
    database_ = &database;
    if (!options_.enabled) return Ok();

    std::string state_dir = options_.state_dir.empty() ? database.state_dir() : options_.state_dir;
    S3DB_ASSIGN_OR_RETURN(FsyncPolicy fsync, ParseFsyncPolicy(options_.fsync));
    ChangeLogContext log_context;
    log_context.state_dir = state_dir;
    log_context.path = (std::filesystem::path(state_dir) / "replicator" / "changes.db").string();
    log_context.fsync = fsync;
    if (options_.change_log) {
      auto opened = options_.change_log(log_context);
      if (!opened) {
        return MakeError(opened.error().code,
                         "replicator: the change log factory failed: " + opened.error().message);
      }
      if (!*opened) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "replicator: the change log factory returned no change log");
      }
      log_ = std::move(*opened);
    } else {
      SqliteChangeLogOptions log_options;
      log_options.path = log_context.path;
      log_options.fsync = fsync;
      S3DB_ASSIGN_OR_RETURN(log_, OpenSqliteChangeLog(log_options));
    }

    if (options_.persist_replicator_log) {
      log_writer_ = std::make_unique<ReplicatorLogWriter>(
          database, options_.replicator_log_resource, events_);
    }
    context_.options = &options_;
    context_.log = log_.get();
    context_.database = &database;
    context_.events = &events_;
    context_.log_writer = log_writer_.get();
    context_.logger = ReplicatorLogger();

    // Intents now in the log were left by a process that died; this one has written nothing.
    S3DB_ASSIGN_OR_RETURN(unresolved_intents_, log_->ListIntents());

    const std::uint64_t head = log_->LastSequence();
    for (std::size_t i = 0; i < options_.replicators.size(); ++i) {
      const ReplicatorConfig& replicator = options_.replicators[i];
      std::string path = "replicators[" + std::to_string(i) + "]";
      std::string id = EffectiveId(replicator, i);
      const bool every_resource = replicator.resources.every_resource();
      Routes routes;
      if (every_resource) {
        every_resource_ = true;
      } else {
        S3DB_ASSIGN_OR_RETURN(routes, replicator.resources.Normalize(path + ".resources"));
      }
      for (const auto& [source, destinations] : routes) mapped_resources_.insert(source);
      // The log resource is never replicated, so a replicator that maps it, or takes every
      // resource while an application resource has its name, would silently get nothing of it.
      bool takes_log_resource = routes.count(options_.replicator_log_resource) > 0;
      if (every_resource) {
        Resource* existing = database.FindResource(options_.replicator_log_resource);
        takes_log_resource = existing && !IsReplicatorLogDefinition(existing->definition());
      }
      if (takes_log_resource) {
        return MakeError(
            ErrorCode::kInvalidArgument,
            "replicatorLogResource: '" + options_.replicator_log_resource +
                "' is a resource that " + path + " replicates" +
                (every_resource ? " (without resources it takes every resource)" : "") +
                "; give the replicator log a resource of its own "
                "(the default is replicator_log)");
      }

      DriverContext driver_context;
      driver_context.replicator_id = id;
      driver_context.every_resource = every_resource;
      for (const auto& [source, destinations] : routes) {
        for (const Destination& destination : destinations) {
          driver_context.destinations.push_back(
              {source, destination.resource.empty() ? source : destination.resource,
               destination.options});
        }
      }
      driver_context.source = &database;
      driver_context.max_retry_delay = std::chrono::milliseconds(options_.max_backoff_ms);
      driver_context.state_dir =
          (std::filesystem::path(state_dir) / "replicator" / "drivers" / id).string();
      std::error_code ec;
      std::filesystem::create_directories(driver_context.state_dir, ec);
      Database* source = &database;
      driver_context.resource_definition =
          [source](std::string_view name) -> std::optional<JsonObject> {
        auto definition = source->ResourceDefinitionJson(name);
        if (!definition) return std::nullopt;
        return std::move(*definition);
      };

      DriverFactory factory = replicator.factory;
      if (!factory && replicator.target_database &&
          (replicator.driver == "s3db")) {
        Database* target = replicator.target_database;
        factory = [target](const JsonObject& config, const DriverContext& context) {
          return NewS3dbDriver(config, context, target);
        };
      }
      if (!factory) {
        auto found = FindDriverByName(replicator.driver);
        if (!found) {
          return MakeError(ErrorCode::kInvalidArgument,
                           path + ".driver: unknown driver '" + replicator.driver + "'");
        }
        factory = *found;
      }
      for (const auto& entry : replicator.config) RegisterConfigUrlSecrets(entry.value());
      auto driver = factory(replicator.config, driver_context);
      if (!driver) {
        return MakeError(driver.error().code,
                         DriverConfigError(path, id, replicator.driver,
                                           RedactSecrets(driver.error().message)));
      }

      S3DB_ASSIGN_OR_RETURN(std::optional<std::uint64_t> checkpoint, log_->GetCheckpoint(id));
      if (!checkpoint) {
        // A new replicator starts with the changes made from now on (SyncAllData backfills).
        S3DB_RETURN_IF_ERROR(log_->SetCheckpoint(id, head));
        checkpoint = head;
      }
      DispatcherConfig config;
      config.id = id;
      config.driver_name = replicator.driver;
      config.routes = std::move(routes);
      config.every_resource = every_resource;
      config.excluded_resource = options_.replicator_log_resource;
      config.enabled = replicator.enabled;
      config.driver = std::move(*driver);
      dispatchers_.push_back(std::make_unique<Dispatcher>(std::move(config), context_,
                                                          *checkpoint));
    }
    return Ok();
  }

  Status Start() {
    if (!log_ || started_) return Ok();
    S3DB_RETURN_IF_ERROR(ResolveIntents());
    WarnAboutMissingSources();
    for (std::size_t i = 0; i < dispatchers_.size(); ++i) {
      if (auto status = dispatchers_[i]->Start(); !status) {
        for (std::size_t j = 0; j < i; ++j) dispatchers_[j]->Stop();
        return status;
      }
    }
    stopping_ = false;
    housekeeper_ = std::thread([this] { Housekeep(); });
    started_ = true;
    return Ok();
  }

  Status Stop() {
    if (!log_ || stopped_.exchange(true)) return Ok();
    {
      std::lock_guard lock(housekeeper_mutex_);
      stopping_ = true;
    }
    housekeeper_wake_.notify_all();
    if (housekeeper_.joinable()) housekeeper_.join();
    for (auto& dispatcher : dispatchers_) dispatcher->Stop();
    if (log_writer_) log_writer_->Stop();
    Compact();
    auto closed = log_->Close();
    if (!closed) {
      JsonObject event;
      event["replicator"] = "all";
      event["error"] = closed.error().message;
      events_.Emit("replicator_cleanup_error", Json(std::move(event)));
    }
    started_ = false;
    return closed;
  }

  // Whether some replicator takes changes of this resource.
  bool Mapped(std::string_view resource) const {
    if (resource == options_.replicator_log_resource) return false;
    return every_resource_ || mapped_resources_.count(resource) > 0;
  }

  bool Records(const Change& change) const { return log_ && Mapped(change.resource); }

  // The source resources a replicator reads now: its mapping's, or (no "resources" given)
  // every resource of the database but the replicator log.
  std::vector<std::string> SourcesOf(const Dispatcher& dispatcher) const {
    std::vector<std::string> sources;
    if (dispatcher.every_resource()) {
      for (std::string& name : database_->ListResources()) {
        if (name != options_.replicator_log_resource) sources.push_back(std::move(name));
      }
      return sources;
    }
    for (const auto& [source, destinations] : dispatcher.routes()) sources.push_back(source);
    return sources;
  }

  // A mapped source resource that does not exist yet is not an error (it may be created
  // later), but often a misspelling: log a warning and emit "replicator_warning".
  void WarnAboutMissingSources() {
    for (const auto& dispatcher : dispatchers_) {
      if (dispatcher->every_resource()) continue;
      for (const auto& [source, destinations] : dispatcher->routes()) {
        if (database_->FindResource(source)) continue;
        std::string message = "source resource '" + source + "' does not exist (yet); its "
                              "changes are replicated once it is created. Check the name in "
                              "the replicator's resources if that is not expected.";
        ReplicatorLogger()->warn("replicator {}: {}", dispatcher->id(), message);
        JsonObject event;
        event["replicator"] = dispatcher->id();
        event["driver"] = dispatcher->driver_name();
        event["resource"] = source;
        event["warning"] = "missing_resource";
        event["message"] = message;
        events_.Emit("replicator_warning", Json(std::move(event)));
      }
    }
  }

  Status OnPrepare(const Change& change) {
    if (!Records(change)) return Ok();
    if (stopped_.load()) {
      return MakeError(ErrorCode::kUnavailable,
                       "the replicator plugin is stopped; change " + change.ChangeId() +
                           " was not written, because it could not be recorded for replication");
    }
    auto prepared = log_->Prepare(change);
    if (!prepared) {
      return MakeError(prepared.error().code, "replicator: cannot record the intent of change " +
                                                  change.ChangeId() +
                                                  " in the change log (nothing was written): " +
                                                  prepared.error().message);
    }
    return Ok();
  }

  void OnAbandon(const Change& change) {
    if (!Records(change) || stopped_.load()) return;
    if (auto forgotten = log_->Abandon(change); !forgotten) {
      // The intent stays; the next start finds the write absent and forgets it then.
      ReplicatorLogger()->warn("change {}: cannot forget its intent: {}", change.ChangeId(),
                               forgotten.error().message);
    }
    NotifyDispatchers();
  }

  // Every dispatcher, not only those of the change's resource: confirming or abandoning one
  // change may make later changes of any resource readable (the log shows changes up to the
  // first one whose write is still unconfirmed).
  void NotifyDispatchers() {
    for (auto& dispatcher : dispatchers_) dispatcher->Notify();
  }

  void OnResourceCreated() {
    if (!log_) return;
    if (auto status = ResolveIntents(); !status) {
      ReplicatorLogger()->warn("resolving intents of a previous process: {}",
                               status.error().message);
    }
  }

  // Appends the intents a dead process left whose write the source holds; forgets the others.
  // Intents of resources that do not exist yet wait for them. Several intents of one record
  // (concurrent writers) form a chain: an older one is held when the next one is held and
  // was written on top of it (its `before` is the older one's `after`).
  Status ResolveIntents() {
    std::lock_guard lock(intents_mutex_);
    std::sort(unresolved_intents_.begin(), unresolved_intents_.end(),
              [](const Change& a, const Change& b) {
                return std::tie(a.resource, a.id, a.revision) <
                       std::tie(b.resource, b.id, b.revision);
              });
    std::vector<Change> waiting;
    std::size_t begin = 0;
    while (begin < unresolved_intents_.size()) {
      std::size_t end = begin + 1;
      while (end < unresolved_intents_.size() &&
             unresolved_intents_[end].resource == unresolved_intents_[begin].resource &&
             unresolved_intents_[end].id == unresolved_intents_[begin].id) {
        ++end;
      }
      Resource* resource = database_->FindResource(unresolved_intents_[begin].resource);
      if (!resource) {
        for (std::size_t i = begin; i < end; ++i) waiting.push_back(unresolved_intents_[i]);
        begin = end;
        continue;
      }
      std::vector<bool> held(end - begin, false);
      for (std::size_t i = end; i-- > begin;) {
        const Change& intent = unresolved_intents_[i];
        if (i + 1 < end && held[i + 1 - begin]) {
          const Change& next = unresolved_intents_[i + 1];
          held[i - begin] = next.revision == intent.revision + 1 && next.before &&
                            intent.after && *next.before == *intent.after;
          if (held[i - begin]) continue;
        }
        auto stored = resource->HoldsChange(intent);
        if (!stored) {
          return MakeError(stored.error().code,
                           "replicator: cannot tell whether change " + intent.ChangeId() +
                               " of a previous process was stored: " + stored.error().message);
        }
        held[i - begin] = *stored;
      }
      std::vector<LoggedChange> recorded;
      for (std::size_t i = begin; i < end; ++i) {
        const Change& intent = unresolved_intents_[i];
        if (held[i - begin]) {
          recorded.push_back(LoggedChange{0, intent, {}, {}});
          ReplicatorLogger()->info(
              "change {} was stored by a process that stopped before recording it; recorded now",
              intent.ChangeId());
        } else {
          S3DB_RETURN_IF_ERROR(log_->Abandon(intent));
        }
      }
      if (!recorded.empty()) {
        auto appended = log_->AppendMany(recorded);
        if (!appended) return tl::unexpected(appended.error());
      }
      begin = end;
    }
    unresolved_intents_ = std::move(waiting);
    return Ok();
  }

  Status OnChange(const Change& change) {
    if (!log_) return Ok();
    if (!Mapped(change.resource)) return Ok();
    if (stopped_.load()) {
      return MakeError(ErrorCode::kUnavailable,
                       "the replicator plugin is stopped; change " + change.ChangeId() +
                           " was stored but not recorded for replication");
    }
    auto sequence = log_->Append(change);
    if (!sequence) {
      return MakeError(sequence.error().code,
                       "replicator: cannot record change " + change.ChangeId() +
                           " in the change log: " + sequence.error().message);
    }
    NotifyDispatchers();
    if (has_append_observers_.load(std::memory_order_relaxed)) {
      std::vector<ReplicatorPlugin::AppendObserver> observers;
      {
        std::lock_guard lock(append_observers_mutex_);
        for (const auto& [handle, observer] : append_observers_) observers.push_back(observer);
      }
      for (const auto& observer : observers) observer(*sequence, change);
    }
    return Ok();
  }

  std::size_t OnAppend(ReplicatorPlugin::AppendObserver observer) {
    std::lock_guard lock(append_observers_mutex_);
    std::size_t handle = next_append_observer_++;
    append_observers_.emplace(handle, std::move(observer));
    has_append_observers_.store(true);
    return handle;
  }

  void OffAppend(std::size_t handle) {
    std::lock_guard lock(append_observers_mutex_);
    append_observers_.erase(handle);
    has_append_observers_.store(!append_observers_.empty());
  }

  EventBus& events() { return events_; }

  Result<Dispatcher*> Find(std::string_view id) const {
    for (const auto& dispatcher : dispatchers_) {
      if (dispatcher->id() == id) return dispatcher.get();
    }
    return NotFound(id);
  }

  std::vector<ReplicatorInfo> List() const {
    std::vector<ReplicatorInfo> list;
    for (const auto& dispatcher : dispatchers_) {
      ReplicatorInfo info;
      info.id = dispatcher->id();
      info.driver = dispatcher->driver_name();
      info.enabled = dispatcher->enabled();
      info.state = dispatcher->State();
      info.resources = SourcesOf(*dispatcher);
      list.push_back(std::move(info));
    }
    return list;
  }

  Status SyncAllData(std::string_view id, const SyncProgressCallback& progress,
                     std::chrono::milliseconds timeout, const std::stop_token& stop) {
    S3DB_ASSIGN_OR_RETURN(Dispatcher * dispatcher, Find(id));
    if (!dispatcher->enabled()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "Replicator " + std::string(id) + " is disabled; enable it before syncing");
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string key = "sync:" + std::string(id);

    // Resume an interrupted sync: which resource, where in it, and the last change queued.
    std::size_t index = 0;
    std::string cursor;
    std::uint64_t enqueued = 0;
    std::uint64_t last_sequence = 0;
    bool all_queued = false;
    S3DB_ASSIGN_OR_RETURN(std::optional<std::string> saved, log_->GetState(key));
    if (saved) {
      boost::system::error_code ec;
      Json state = boost::json::parse(*saved, ec);
      if (!ec && state.is_object()) {
        const JsonObject& object = state.get_object();
        if (auto* v = object.if_contains("index")) index = v->to_number<std::size_t>();
        if (auto* v = object.if_contains("cursor")) cursor = std::string(v->get_string());
        if (auto* v = object.if_contains("enqueued")) enqueued = v->to_number<std::uint64_t>();
        if (auto* v = object.if_contains("lastSequence")) {
          last_sequence = v->to_number<std::uint64_t>();
        }
        if (auto* v = object.if_contains("done")) all_queued = v->as_bool();
      }
    }
    std::vector<std::string> resources = SourcesOf(*dispatcher);

    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // queued in this call
    auto report = [&](const std::string& resource, bool done) {
      if (!progress) return;
      SyncProgress p;
      p.replicator = std::string(id);
      p.resource = resource;
      p.enqueued = enqueued;
      std::uint64_t through = dispatcher->SettledThrough();
      std::uint64_t settled = 0;
      for (const auto& [first, last] : ranges) {
        if (through >= last) {
          settled += last - first + 1;
        } else if (through >= first) {
          settled += through - first + 1;
        }
      }
      p.settled = done ? enqueued : std::min(enqueued, settled + (enqueued - QueuedNow(ranges)));
      p.done = done;
      progress(p);
    };
    auto save = [&] {
      JsonObject state;
      state["index"] = index;
      state["cursor"] = cursor;
      state["enqueued"] = enqueued;
      state["lastSequence"] = last_sequence;
      state["done"] = all_queued;
      return log_->SetState(key, boost::json::serialize(state));
    };

    while (!all_queued) {
      if (index >= resources.size()) {
        all_queued = true;
        S3DB_RETURN_IF_ERROR(save());
        break;
      }
      const std::string& name = resources[index];
      Resource* resource = database_->FindResource(name);
      if (!resource) {
        ++index;
        cursor.clear();
        continue;
      }
      S3DB_ASSIGN_OR_RETURN(Page page, resource->GetPage(cursor, kSyncPageSize));
      std::vector<LoggedChange> changes;
      changes.reserve(page.items.size());
      for (auto& record : page.items) {
        LoggedChange logged;
        logged.change.resource = name;
        if (const Json* rid = record.if_contains(kIdField); rid && rid->is_string()) {
          logged.change.id = std::string(rid->get_string());
        }
        logged.change.revision = RevisionOf(record);
        logged.change.action = Action::kInsert;
        logged.change.timestamp_ms = NowMs();
        logged.change.after = std::move(record);
        logged.only_replicator = std::string(id);
        changes.push_back(std::move(logged));
      }
      if (!changes.empty()) {
        S3DB_ASSIGN_OR_RETURN(std::vector<std::uint64_t> sequences, log_->AppendMany(changes));
        ranges.emplace_back(sequences.front(), sequences.back());
        last_sequence = sequences.back();
        enqueued += sequences.size();
        dispatcher->Notify();
      }
      cursor = page.next_cursor;
      if (cursor.empty()) ++index;
      S3DB_RETURN_IF_ERROR(save());
      report(name, false);
      if (stop.stop_requested()) return SyncStopped(id);
      if (std::chrono::steady_clock::now() > deadline) {
        return MakeError(ErrorCode::kTimeout, "sync of replicator " + std::string(id) +
                                                  " did not finish in time; call SyncAllData "
                                                  "again to continue");
      }
    }

    while (!dispatcher->WaitSettled(
        last_sequence, std::min(deadline, std::chrono::steady_clock::now() +
                                              std::chrono::milliseconds(200)))) {
      report("", false);
      if (stop.stop_requested()) return SyncStopped(id);
      if (std::chrono::steady_clock::now() >= deadline) {
        return MakeError(ErrorCode::kTimeout,
                         "sync of replicator " + std::string(id) + ": every record is queued (" +
                             std::to_string(enqueued) + ") but not all are delivered yet");
      }
    }
    S3DB_RETURN_IF_ERROR(log_->DeleteState(key));
    report("", true);
    return Ok();
  }

  Result<ReplicateBatchResult> ReplicateBatch(std::string_view resource,
                                              const std::vector<JsonObject>& records,
                                              std::chrono::milliseconds timeout) {
    ReplicateBatchResult result;
    result.records = records.size();
    std::vector<LoggedChange> changes;
    for (std::size_t i = 0; i < records.size(); ++i) {
      const Json* rid = records[i].if_contains(kIdField);
      if (!rid || !rid->is_string() || rid->get_string().empty()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "records[" + std::to_string(i) + "]: a record needs a string id");
      }
      LoggedChange logged;
      logged.change.resource = std::string(resource);
      logged.change.id = std::string(rid->get_string());
      logged.change.revision = RevisionOf(records[i]);
      logged.change.action = Action::kInsert;
      logged.change.after = records[i];
      logged.change.timestamp_ms = NowMs();
      changes.push_back(std::move(logged));
    }
    if (!log_) return result;
    std::vector<Dispatcher*> targets;
    for (const auto& dispatcher : dispatchers_) {
      if (dispatcher->enabled() && dispatcher->Maps(resource)) targets.push_back(dispatcher.get());
    }
    if (targets.empty() || changes.empty()) return result;

    struct Collected {
      std::mutex mutex;
      std::condition_variable changed;
      std::vector<std::map<std::uint64_t, std::string>> statuses;
    } collected;
    collected.statuses.resize(targets.size());
    const std::uint64_t lowest = log_->LastSequence() + 1;
    std::vector<std::size_t> handles;
    for (std::size_t t = 0; t < targets.size(); ++t) {
      handles.push_back(targets[t]->AddObserver(
          [&collected, t, lowest](std::uint64_t sequence, std::string_view status) {
            if (sequence < lowest) return;
            {
              std::lock_guard lock(collected.mutex);
              collected.statuses[t][sequence] = std::string(status);
            }
            collected.changed.notify_all();
          }));
    }
    auto sequences = log_->AppendMany(changes);
    if (!sequences) {
      for (std::size_t t = 0; t < targets.size(); ++t) targets[t]->RemoveObserver(handles[t]);
      return tl::unexpected(sequences.error());
    }
    for (Dispatcher* target : targets) target->Notify();
    {
      std::unique_lock lock(collected.mutex);
      collected.changed.wait_for(lock, timeout, [&] {
        for (const auto& statuses : collected.statuses) {
          for (std::uint64_t sequence : *sequences) {
            if (!statuses.count(sequence)) return false;
          }
        }
        return true;
      });
    }
    for (std::size_t t = 0; t < targets.size(); ++t) targets[t]->RemoveObserver(handles[t]);
    std::lock_guard lock(collected.mutex);
    for (std::size_t i = 0; i < changes.size(); ++i) {
      for (std::size_t t = 0; t < targets.size(); ++t) {
        RecordOutcome outcome;
        outcome.replicator = targets[t]->id();
        outcome.id = changes[i].change.id;
        auto found = collected.statuses[t].find((*sequences)[i]);
        outcome.status = found == collected.statuses[t].end() ? "pending" : found->second;
        result.outcomes.push_back(std::move(outcome));
      }
    }
    return result;
  }

  Status WaitIdle(std::chrono::milliseconds timeout, const std::stop_token& stop) {
    if (!log_) return Ok();
    const std::uint64_t head = log_->LastSequence();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const auto& dispatcher : dispatchers_) {
      if (!dispatcher->enabled() || !dispatcher->Running()) continue;
      // In slices, so that a stop request is seen within kStopCheckInterval.
      bool settled = false;
      while (
          !(settled = dispatcher->WaitSettled(
                head, std::min(deadline, std::chrono::steady_clock::now() + kStopCheckInterval)))) {
        if (stop.stop_requested()) {
          return MakeError(
              ErrorCode::kUnavailable,
              "stopped waiting for replicator " + dispatcher->id() + ": the process is stopping");
        }
        if (std::chrono::steady_clock::now() >= deadline) break;
      }
      if (!settled) {
        return MakeError(ErrorCode::kTimeout,
                         "replicator " + dispatcher->id() + " is not caught up: checkpoint " +
                             std::to_string(dispatcher->PersistedCheckpoint()) + " of " +
                             std::to_string(head) + " (state " +
                             std::string(ReplicatorStateName(dispatcher->State())) + ")");
      }
    }
    return Ok();
  }

  ChangeLog* log() const { return log_.get(); }
  void FlushReplicatorLog() {
    if (log_writer_) log_writer_->FlushNow();
  }

 private:
  static constexpr std::chrono::milliseconds kStopCheckInterval{100};

  static tl::unexpected<Error> SyncStopped(std::string_view id) {
    return MakeError(ErrorCode::kUnavailable, "sync of replicator " + std::string(id) +
                                                  " stopped: the process is stopping; call "
                                                  "SyncAllData again to continue");
  }

  static std::uint64_t QueuedNow(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& r) {
    std::uint64_t total = 0;
    for (const auto& [first, last] : r) total += last - first + 1;
    return total;
  }

  void Compact() {
    std::vector<std::string> ids;
    for (const auto& dispatcher : dispatchers_) ids.push_back(dispatcher->id());
    auto removed = log_->Compact(ids);
    if (!removed) {
      JsonObject event;
      event["replicator"] = "all";
      event["error"] = "change log compaction failed: " + removed.error().message;
      events_.Emit("replicator_cleanup_error", Json(std::move(event)));
    }
  }

  void Housekeep() {
    std::unique_lock lock(housekeeper_mutex_);
    while (!stopping_) {
      housekeeper_wake_.wait_for(lock, kCompactionInterval, [&] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      Compact();
      lock.lock();
    }
  }

  const ReplicatorPluginOptions& options_;
  Database* database_ = nullptr;
  std::unique_ptr<ChangeLog> log_;
  EventBus events_;
  std::unique_ptr<ReplicatorLogWriter> log_writer_;
  EngineContext context_;
  std::vector<std::unique_ptr<Dispatcher>> dispatchers_;  // fixed after Install
  std::set<std::string, std::less<>> mapped_resources_;   // fixed after Install
  bool every_resource_ = false;  // some replicator takes every resource; fixed after Install
  std::mutex append_observers_mutex_;  // guards append_observers_, next_append_observer_
  std::map<std::size_t, ReplicatorPlugin::AppendObserver> append_observers_;
  std::size_t next_append_observer_ = 1;
  std::atomic<bool> has_append_observers_{false};
  std::mutex intents_mutex_;                 // guards unresolved_intents_
  std::vector<Change> unresolved_intents_;   // left by a dead process, resolved at Start
  bool started_ = false;
  std::atomic<bool> stopped_{false};

  std::mutex housekeeper_mutex_;  // guards stopping_
  std::condition_variable housekeeper_wake_;
  bool stopping_ = false;
  std::thread housekeeper_;
};

}  // namespace internal

ReplicatorPlugin::ReplicatorPlugin(ReplicatorPluginOptions options)
    : options_(std::move(options)), engine_(std::make_unique<internal::Engine>(options_)) {}

ReplicatorPlugin::~ReplicatorPlugin() { (void)Stop(); }

Status ReplicatorPlugin::Install(Database& database) { return engine_->Install(database); }
Status ReplicatorPlugin::Start() { return engine_->Start(); }
Status ReplicatorPlugin::Stop() { return engine_->Stop(); }
Status ReplicatorPlugin::OnChange(const Change& change) { return engine_->OnChange(change); }
Status ReplicatorPlugin::OnPrepare(const Change& change) { return engine_->OnPrepare(change); }
void ReplicatorPlugin::OnAbandon(const Change& change) { engine_->OnAbandon(change); }
void ReplicatorPlugin::OnResourceCreated(Resource& resource) {
  (void)resource;
  engine_->OnResourceCreated();
}

std::size_t ReplicatorPlugin::On(std::string event, EventHandler handler) {
  return engine_->events().On(std::move(event), std::move(handler));
}

void ReplicatorPlugin::Off(std::size_t handle) { engine_->events().Off(handle); }

std::size_t ReplicatorPlugin::OnAppend(AppendObserver observer) {
  return engine_->OnAppend(std::move(observer));
}

void ReplicatorPlugin::OffAppend(std::size_t handle) { engine_->OffAppend(handle); }

std::vector<ReplicatorInfo> ReplicatorPlugin::ListReplicators() const { return engine_->List(); }

Result<ReplicatorStats> ReplicatorPlugin::GetReplicatorStats(std::string_view id) const {
  S3DB_ASSIGN_OR_RETURN(internal::Dispatcher * dispatcher, engine_->Find(id));
  return dispatcher->Stats();
}

Status ReplicatorPlugin::DisableReplicator(std::string_view id) {
  S3DB_ASSIGN_OR_RETURN(internal::Dispatcher * dispatcher, engine_->Find(id));
  dispatcher->SetEnabled(false);
  return Ok();
}

Status ReplicatorPlugin::EnableReplicator(std::string_view id) {
  S3DB_ASSIGN_OR_RETURN(internal::Dispatcher * dispatcher, engine_->Find(id));
  dispatcher->SetEnabled(true);
  return Ok();
}

Status ReplicatorPlugin::SyncAllData(std::string_view id, SyncProgressCallback progress,
                                     std::chrono::milliseconds timeout, std::stop_token stop) {
  return engine_->SyncAllData(id, progress, timeout, stop);
}

Result<ReplicateBatchResult> ReplicatorPlugin::ReplicateBatch(
    std::string_view resource, const std::vector<JsonObject>& records,
    std::chrono::milliseconds timeout) {
  return engine_->ReplicateBatch(resource, records, timeout);
}

Result<std::vector<DeadLetter>> ReplicatorPlugin::ListDeadLetters(std::string_view id,
                                                                  std::size_t limit) {
  S3DB_RETURN_IF_ERROR(engine_->Find(id));
  return engine_->log()->ListDeadLetters(id, limit);
}

Result<std::size_t> ReplicatorPlugin::ReplayDeadLetters(std::string_view id) {
  S3DB_ASSIGN_OR_RETURN(internal::Dispatcher * dispatcher, engine_->Find(id));
  S3DB_ASSIGN_OR_RETURN(std::vector<std::uint64_t> sequences,
                        engine_->log()->RequeueDeadLetters(id));
  dispatcher->Notify();
  return sequences.size();
}

Result<std::size_t> ReplicatorPlugin::PurgeDeadLetters(std::string_view id) {
  S3DB_RETURN_IF_ERROR(engine_->Find(id));
  S3DB_ASSIGN_OR_RETURN(std::uint64_t removed, engine_->log()->PurgeDeadLetters(id));
  return static_cast<std::size_t>(removed);
}

Status ReplicatorPlugin::WaitIdle(std::chrono::milliseconds timeout, std::stop_token stop) {
  auto idle = engine_->WaitIdle(timeout, stop);
  engine_->FlushReplicatorLog();
  return idle;
}

std::optional<ReplicatorError> ReplicatorPlugin::LastError(std::string_view id) const {
  auto dispatcher = engine_->Find(id);
  if (!dispatcher) return std::nullopt;
  return (*dispatcher)->LastError();
}

}  // namespace s3db::replicator
