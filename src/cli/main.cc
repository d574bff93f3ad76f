// The s3db command: CRUD and import on a database, and the replicator service (`s3db run`)
// with its admin API, driven by a YAML config. Everything printed goes through RedactSecrets.
#include <httplib.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "cli/http_thread_pool.h"
#include "cli/importer.h"
#include "cli/json_input.h"
#include "cli/record_source.h"
#include "cli/report.h"
#include "cli/service_state.h"
#include "config/config.h"
#include "core/thread_pool.h"
#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/format_options.h"
#include "formats/record_writers.h"
#include "net/http_client.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/storage.h"

namespace s3db::cli {
namespace {

constexpr const char* kDefaultConnection = "file://./s3db-data";
constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;  // a command line that cannot be parsed

// ---- output ----

// Log lines go to stderr with every connection-string secret replaced by "***".
class RedactingSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    std::string text = RedactSecrets(std::string_view(formatted.data(), formatted.size()));
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

void SetUpLogging(const std::string& level) {
  auto logger = std::make_shared<spdlog::logger>("s3db", std::make_shared<RedactingSink>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

void PrintLine(const Json& value) {
  std::string line = JsonLine(value);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

// For replicator state and dead letters, whose error texts come from drivers.
void PrintRedactedLine(const Json& value) {
  std::string line = RedactSecrets(JsonLine(value));
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
}

void PrintText(const std::string& text) {
  std::string line = RedactSecrets(text) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void PrintError(const std::string& message) {
  std::string line = "s3db: " + RedactSecrets(message) + "\n";
  std::fflush(stdout);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

int Fail(const std::string& message) {
  PrintError(message);
  return kExitError;
}

int Fail(const Error& error) { return Fail(error.message); }

Json ErrorToJson(const Error& error) {
  JsonObject object;
  object["code"] = ErrorCodeName(error.code);
  object["message"] = RedactSecrets(error.message);
  return object;
}

ErrorCode ErrorCodeFromName(std::string_view name) {
  for (ErrorCode code :
       {ErrorCode::kInvalidArgument, ErrorCode::kValidation, ErrorCode::kNotFound,
        ErrorCode::kAlreadyExists, ErrorCode::kConflict, ErrorCode::kUnavailable,
        ErrorCode::kTimeout, ErrorCode::kUnauthorized, ErrorCode::kPermanent, ErrorCode::kIo}) {
    if (ErrorCodeName(code) == name) return code;
  }
  return ErrorCode::kInternal;
}

// "cannot read 'x.json': No such file or directory"
std::string CannotRead(const std::string& path, int error) {
  std::string reason;
  std::error_code ec;
  if (error != 0) {
    reason = std::strerror(error);
  } else if (!std::filesystem::exists(path, ec)) {
    reason = std::strerror(ENOENT);
  } else if (std::filesystem::is_directory(path, ec)) {
    reason = std::strerror(EISDIR);
  } else {
    reason = "cannot be opened";
  }
  return "cannot read '" + path + "': " + reason;
}

Result<std::string> ReadAll(const std::string& path) {
  if (path == "-") {
    std::ostringstream text;
    text << std::cin.rdbuf();
    return text.str();
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return MakeError(ErrorCode::kNotFound, CannotRead(path, errno));
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// A JSON argument: the text itself, or "-" for standard input.
Result<Json> JsonArgument(const std::string& argument, const std::string& what) {
  std::string text = argument;
  if (argument == "-") {
    S3DB_ASSIGN_OR_RETURN(text, ReadAll("-"));
  }
  auto value = ParseJsonInput(text);
  if (!value) {
    return MakeError(ErrorCode::kInvalidArgument, what + ": " + value.error().message);
  }
  return value;
}

Result<JsonObject> JsonObjectArgument(const std::string& argument, const std::string& what) {
  S3DB_ASSIGN_OR_RETURN(Json value, JsonArgument(argument, what));
  if (!value.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, what + ": expected a JSON object");
  }
  return std::move(value.get_object());
}

std::string PercentEncode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// ---- the running service, seen from another process ----

class ServiceClient {
 public:
  explicit ServiceClient(std::string base_url)
      : base_url_(std::move(base_url)), http_(net::NewHttpClient()) {}

  const std::string& url() const { return base_url_; }

  // Sends a request and returns the JSON body of a 2xx answer; other answers become the
  // error the service reported.
  Result<Json> Call(const std::string& method, const std::string& path, const Json* body = nullptr,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    S3DB_ASSIGN_OR_RETURN(net::HttpResponse response, Send(method, path, body, timeout));
    if (response.status < 200 || response.status > 299) return ServiceError(response);
    if (response.body.empty()) return Json(nullptr);
    auto value = ParseJsonInput(response.body);
    if (!value) {
      return MakeError(ErrorCode::kInternal,
                       "the service at " + base_url_ + " sent invalid JSON for " + path);
    }
    return value;
  }

  Result<net::HttpResponse> Send(const std::string& method, const std::string& path,
                                 const Json* body, std::chrono::milliseconds timeout) {
    net::HttpRequest request;
    request.method = method;
    request.url = base_url_ + path;
    request.timeout = timeout;
    if (body) {
      request.body = JsonLine(*body);
      request.headers.emplace_back("Content-Type", "application/json");
    }
    auto response = http_->Send(request);
    if (!response) {
      return MakeError(response.error().code, "the s3db service at " + base_url_ +
                                                  " did not answer: " + response.error().message);
    }
    return response;
  }

  static tl::unexpected<Error> ServiceError(const net::HttpResponse& response) {
    auto body = ParseJsonObjectInput(response.body);
    if (body) {
      if (const Json* error = body->if_contains("error"); error && error->is_object()) {
        const JsonObject& object = error->get_object();
        std::string code = object.contains("code") && object.at("code").is_string()
                               ? std::string(object.at("code").get_string())
                               : "internal";
        std::string message = object.contains("message") && object.at("message").is_string()
                                  ? std::string(object.at("message").get_string())
                                  : "error";
        return MakeError(ErrorCodeFromName(code), message);
      }
    }
    return MakeError(ErrorCode::kInternal,
                     "the service answered HTTP " + std::to_string(response.status));
  }

 private:
  std::string base_url_;
  std::unique_ptr<net::HttpClient> http_;
};

// ---- sessions: the database, the config and (maybe) the replicator plugin ----

struct GlobalOptions {
  std::string connection;
  std::string config_path;
  std::string log_level = "warn";
  int wait_seconds = 60;  // how long writes with a replicator wait for delivery
};

enum class Need {
  kRead,        // the database only, which must exist (a read creates no file:// folder)
  kDatabase,    // the database only
  kWrite,       // the database, and the replicator when the config has one
  kReplicator,  // the replicator is required
  kServe,       // `s3db run`: this process must own the replicator state
};

// What a write prints when the replicators did not deliver within `seconds` (the same text
// whether the replicator runs in this process or in `s3db run`).
std::string ReplicationTimeoutWarning(int seconds, const std::string& why,
                                      const std::string& state_dir, bool service) {
  return "warning: replication did not finish within " + std::to_string(seconds) + " s (" + why +
         "); the changes stay in the change log in " + state_dir +
         (service ? " and the running s3db run keeps delivering them"
                  : " and are delivered by the next s3db process with this config");
}

// One "<id> (<driver>): delivered ..." line per replicator of `plugin`.
std::vector<std::string> ReplicatorSummaries(replicator::ReplicatorPlugin& plugin) {
  std::vector<std::string> lines;
  for (const auto& info : plugin.ListReplicators()) {
    if (auto stats = plugin.GetReplicatorStats(info.id)) {
      lines.push_back(ReplicatorSummaryLine(*stats));
    }
  }
  return lines;
}

struct Session {
  std::optional<config::Config> config;
  std::unique_ptr<Database> database;
  std::shared_ptr<replicator::ReplicatorPlugin> plugin;
  ServiceLock lock;
  std::string state_dir;                   // where the lock and the change log live
  std::unique_ptr<ServiceClient> service;  // set when a running `s3db run` owns the state

  ~Session() {
    if (database) (void)database->Close();
  }

  bool remote() const { return service != nullptr; }

  // Waits for the replicators to deliver what was written, here or through the running
  // service (POST /replication/wait), and warns the same way in both cases when they did not
  // within `seconds`. Returns one summary line per replicator.
  std::vector<std::string> WaitForReplication(int seconds) {
    seconds = std::max(seconds, 0);
    if (service) {
      auto answer = service->Call("POST", "/replication/wait?seconds=" + std::to_string(seconds),
                                  nullptr, std::chrono::seconds(seconds + 30));
      std::vector<std::string> lines;
      if (!answer || !answer->is_object()) {
        PrintError("warning: cannot tell whether replication finished: " +
                   (answer ? std::string("the service sent no object") : answer.error().message));
        return lines;
      }
      const JsonObject& body = answer->get_object();
      if (const Json* warning = body.if_contains("warning"); warning && warning->is_string()) {
        PrintError(std::string(warning->get_string()));
      }
      if (const Json* list = body.if_contains("replicators"); list && list->is_array()) {
        for (const Json& line : list->get_array()) {
          if (line.is_string()) lines.emplace_back(line.get_string());
        }
      }
      return lines;
    }
    if (!plugin) return {};
    auto idle = plugin->WaitIdle(std::chrono::seconds(seconds));
    if (!idle)
      PrintError(ReplicationTimeoutWarning(seconds, idle.error().message, state_dir, false));
    return ReplicatorSummaries(*plugin);
  }
};

Result<std::unique_ptr<Session>> OpenSession(const GlobalOptions& global, Need need) {
  auto session = std::make_unique<Session>();
  if (!global.config_path.empty()) {
    S3DB_ASSIGN_OR_RETURN(session->config, config::LoadConfigFile(global.config_path));
  }
  const config::Config* config = session->config ? &*session->config : nullptr;
  bool has_replicator = config && config->replicator.has_value();
  if (need == Need::kReplicator && !has_replicator) {
    return MakeError(ErrorCode::kInvalidArgument,
                     global.config_path.empty()
                         ? "this command needs a config file with a replicator section: -c FILE"
                         : global.config_path + " has no 'replicator' section");
  }

  std::string connection = global.connection;
  if (connection.empty() && config) connection = config->connection;
  if (connection.empty()) connection = kDefaultConnection;
  if (need == Need::kRead && (!config || config->resources.empty())) {
    // Opening a file:// database creates its folder: a read with a mistyped path would leave
    // an empty database behind and answer as if the resource did not exist. (A config's
    // resources are created before every command, reads included.)
    auto parsed = ConnectionString::Parse(connection);
    std::error_code ec;
    if (parsed && parsed->scheme == ConnectionString::Scheme::kFile &&
        !std::filesystem::is_directory(parsed->path, ec)) {
      return MakeError(ErrorCode::kNotFound,
                       "the database " + connection + " does not exist (there is no folder '" +
                           parsed->path +
                           "'); check --connection, S3DB_CONNECTION or the config's "
                           "connection (reads create nothing)");
    }
  }
  DatabaseOptions options;
  if (config) options.state_dir = config->state_dir;
  auto database = Database::Connect(connection, options);
  if (!database) {
    return MakeError(database.error().code,
                     "cannot open the database " + connection + ": " + database.error().message);
  }
  session->database = std::move(*database);

  if (config) {
    for (const ResourceDefinition& definition : config->resources) {
      auto created = session->database->CreateResource(definition);
      if (!created) {
        return MakeError(created.error().code,
                         config->Locate("resources." + definition.name, created.error().message));
      }
    }
  }

  bool wants_plugin =
      need == Need::kServe || (has_replicator && need != Need::kDatabase && need != Need::kRead);
  if (!wants_plugin) return session;

  std::optional<replicator::ReplicatorPluginOptions> plugin_options;
  session->state_dir = session->database->state_dir();
  if (has_replicator) {
    S3DB_ASSIGN_OR_RETURN(plugin_options, config->BuildReplicatorOptions());
    if (!plugin_options->state_dir.empty()) session->state_dir = plugin_options->state_dir;
  }

  JsonObject holder;
  S3DB_ASSIGN_OR_RETURN(auto lock, ServiceLock::TryAcquire(session->state_dir, &holder));
  if (!lock) {
    std::string pid = holder.contains("pid") ? ToJson(holder.at("pid")) : "unknown";
    std::string url = holder.contains("url") && holder.at("url").is_string()
                          ? std::string(holder.at("url").get_string())
                          : "";
    if (need != Need::kServe && !url.empty()) {
      session->service = std::make_unique<ServiceClient>(url);
      return session;
    }
    return MakeError(
        ErrorCode::kConflict,
        "another s3db process (pid " + pid + (url.empty() ? "" : ", " + url) +
            ") runs the replicator on " + session->state_dir +
            (need == Need::kServe ? "; stop it first" : "; try again when it has finished"));
  }
  session->lock = std::move(*lock);

  if (plugin_options) {
    S3DB_ASSIGN_OR_RETURN(auto overrides, LoadReplicatorOverrides(session->state_dir));
    ApplyReplicatorOverrides(overrides, *plugin_options);
    session->plugin = std::make_shared<replicator::ReplicatorPlugin>(std::move(*plugin_options));
    auto installed = session->database->UsePlugin(session->plugin);
    if (!installed) {
      session->plugin.reset();
      const std::string& message = installed.error().message;
      // The engine's messages start with the option path ("replicators[0].config.schema: …"):
      // point at its line in the YAML.
      std::size_t separator = message.find(": ");
      std::string path = separator == std::string::npos ? "" : message.substr(0, separator);
      if ((path.rfind("replicators[", 0) == 0 || path == "replicatorLogResource") &&
          path.find(' ') == std::string::npos) {
        return MakeError(installed.error().code,
                         config->Locate("replicator." + path, "cannot start the replicator: " +
                                                                  message.substr(separator + 2)));
      }
      return MakeError(installed.error().code,
                       config->Locate("replicator", "cannot start the replicator: " + message));
    }
  }
  return session;
}

// ---- resources and records ----

int ResourceCreate(const GlobalOptions& global, const std::string& name,
                   const std::string& attributes, bool timestamps, int id_size, bool replace) {
  auto session = OpenSession(global, Need::kDatabase);
  if (!session) return Fail(session.error());
  if (!replace && (*session)->database->FindResource(name)) {
    // A new definition applies to records written from now on; the stored ones keep their
    // fields, so replacing it by accident makes their next update fail validation.
    return Fail("resource '" + name +
                "' already exists; to replace its definition, run the same command with "
                "--replace (stored records are not changed and must satisfy the new "
                "definition when they are next updated); `s3db resource list` shows the "
                "current one");
  }
  ResourceDefinition definition;
  definition.name = name;
  definition.timestamps = timestamps;
  definition.id_size = id_size;
  if (!attributes.empty()) {
    auto object = JsonObjectArgument(attributes, "--attributes");
    if (!object) return Fail(object.error());
    definition.attributes = std::move(*object);
  }
  auto resource = (*session)->database->CreateResource(std::move(definition));
  if (!resource) return Fail(resource.error());
  auto described = (*session)->database->ResourceDefinitionJson(name);
  JsonObject out;
  out["name"] = name;
  if (described) {
    for (const auto& field : *described) out[field.key()] = field.value();
  }
  PrintLine(out);
  return kExitOk;
}

int ResourceList(const GlobalOptions& global) {
  auto session = OpenSession(global, Need::kRead);
  if (!session) return Fail(session.error());
  Database& database = *(*session)->database;
  for (const std::string& name : database.ListResources()) {
    JsonObject out;
    out["name"] = name;
    if (auto described = database.ResourceDefinitionJson(name)) {
      for (const auto& field : *described) out[field.key()] = field.value();
    }
    PrintLine(out);
  }
  return kExitOk;
}

Result<Resource*> FindResource(Session& session, const std::string& name) {
  return session.database->GetResource(name);
}

std::string RecordPath(const std::string& resource, const std::string& id = "") {
  std::string path = "/resources/" + PercentEncode(resource) + "/records";
  if (!id.empty()) path += "/" + PercentEncode(id);
  return path;
}

int Insert(const GlobalOptions& global, const std::string& resource_name, const std::string& data) {
  auto input = JsonArgument(data, "record");
  if (!input) return Fail(input.error());
  if (!input->is_object() && !input->is_array()) {
    return Fail("record: expected a JSON object (or an array of objects)");
  }
  auto session = OpenSession(global, Need::kWrite);
  if (!session) return Fail(session.error());
  Session& s = **session;

  if (s.remote()) {
    auto answer = s.service->Call("POST", RecordPath(resource_name), &*input);
    if (!answer) return Fail(answer.error());
    int exit_code = kExitOk;
    if (!answer->is_array()) {
      PrintLine(*answer);
    } else {
      for (const Json& item : answer->get_array()) {
        PrintLine(item);
        if (item.is_object() && item.get_object().contains("error")) exit_code = kExitError;
      }
    }
    s.WaitForReplication(global.wait_seconds);
    return exit_code;
  }

  auto resource = FindResource(s, resource_name);
  if (!resource) return Fail(resource.error());
  int exit_code = kExitOk;
  if (input->is_object()) {
    auto record = (*resource)->Insert(std::move(input->get_object()));
    if (!record) return Fail(record.error());
    PrintLine(*record);
  } else {
    std::vector<JsonObject> records;
    for (Json& item : input->get_array()) {
      if (!item.is_object()) return Fail("record: every array element must be an object");
      records.push_back(std::move(item.get_object()));
    }
    for (auto& result :
         WriteRecordBatch(**resource, false, &s.database->pool(), std::move(records))) {
      if (result) {
        PrintLine(*result);
      } else {
        JsonObject failed;
        failed["error"] = ErrorToJson(result.error());
        PrintLine(failed);
        exit_code = kExitError;
      }
    }
  }
  s.WaitForReplication(global.wait_seconds);
  return exit_code;
}

int Get(const GlobalOptions& global, const std::string& resource_name, const std::string& id) {
  auto session = OpenSession(global, Need::kRead);
  if (!session) return Fail(session.error());
  auto resource = FindResource(**session, resource_name);
  if (!resource) return Fail(resource.error());
  auto record = (*resource)->Get(id);
  if (!record) return Fail(record.error());
  PrintLine(*record);
  return kExitOk;
}

int Update(const GlobalOptions& global, const std::string& resource_name, const std::string& id,
           const std::string& data) {
  auto changes = JsonObjectArgument(data, "changes");
  if (!changes) return Fail(changes.error());
  auto session = OpenSession(global, Need::kWrite);
  if (!session) return Fail(session.error());
  Session& s = **session;
  if (s.remote()) {
    Json body = *changes;
    auto answer = s.service->Call("PATCH", RecordPath(resource_name, id), &body);
    if (!answer) return Fail(answer.error());
    PrintLine(*answer);
    s.WaitForReplication(global.wait_seconds);
    return kExitOk;
  }
  auto resource = FindResource(s, resource_name);
  if (!resource) return Fail(resource.error());
  auto record = (*resource)->Update(id, *changes);
  if (!record) return Fail(record.error());
  PrintLine(*record);
  s.WaitForReplication(global.wait_seconds);
  return kExitOk;
}

int Delete(const GlobalOptions& global, const std::string& resource_name, const std::string& id) {
  auto session = OpenSession(global, Need::kWrite);
  if (!session) return Fail(session.error());
  Session& s = **session;
  JsonObject out;
  out["id"] = id;
  out["deleted"] = true;
  if (s.remote()) {
    auto answer = s.service->Call("DELETE", RecordPath(resource_name, id));
    if (!answer) return Fail(answer.error());
    PrintLine(out);
    s.WaitForReplication(global.wait_seconds);
    return kExitOk;
  }
  auto resource = FindResource(s, resource_name);
  if (!resource) return Fail(resource.error());
  auto deleted = (*resource)->Delete(id);
  if (!deleted) return Fail(deleted.error());
  PrintLine(out);
  s.WaitForReplication(global.wait_seconds);
  return kExitOk;
}

int List(const GlobalOptions& global, const std::string& resource_name, std::size_t limit,
         std::size_t offset) {
  auto session = OpenSession(global, Need::kRead);
  if (!session) return Fail(session.error());
  auto resource = FindResource(**session, resource_name);
  if (!resource) return Fail(resource.error());
  // Page by page, so a large resource is never held in memory at once.
  std::string cursor;
  std::size_t skipped = 0;
  std::size_t printed = 0;
  while (limit == 0 || printed < limit) {
    auto page = (*resource)->GetPage(cursor, 500);
    if (!page) return Fail(page.error());
    for (const JsonObject& record : page->items) {
      if (skipped < offset) {
        ++skipped;
        continue;
      }
      if (limit != 0 && printed >= limit) break;
      PrintLine(record);
      ++printed;
    }
    if (page->next_cursor.empty()) break;
    cursor = page->next_cursor;
  }
  return kExitOk;
}

int Query(const GlobalOptions& global, const std::string& resource_name,
          const std::string& filter_text, std::size_t limit, std::size_t offset) {
  auto filter = JsonObjectArgument(filter_text, "filter");
  if (!filter) return Fail(filter.error());
  auto session = OpenSession(global, Need::kRead);
  if (!session) return Fail(session.error());
  auto resource = FindResource(**session, resource_name);
  if (!resource) return Fail(resource.error());
  ListOptions options;
  options.limit = limit;
  options.offset = offset;
  auto records = (*resource)->Query(*filter, options);
  if (!records) return Fail(records.error());
  for (const JsonObject& record : *records) PrintLine(record);
  return kExitOk;
}

// ---- import ----

class ProgressBar {
 public:
  ProgressBar(bool enabled, std::uint64_t total_bytes)
      : enabled_(enabled), total_bytes_(total_bytes), started_(Clock::now()) {}

  void Update(const ImportProgress& progress, bool force = false) {
    if (!enabled_) return;
    auto now = Clock::now();
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    double seconds = std::chrono::duration<double>(now - started_).count();
    double rate = seconds > 0 ? progress.imported / seconds : 0;
    char line[200];
    if (total_bytes_ > 0) {
      double fraction = std::min(1.0, double(progress.bytes_read) / double(total_bytes_));
      int filled = static_cast<int>(fraction * 30);
      std::string bar(filled, '#');
      bar.resize(30, '.');
      std::snprintf(line, sizeof line, "\r%3.0f%% [%s] %llu imported, %llu failed, %.0f/s ",
                    fraction * 100, bar.c_str(), static_cast<unsigned long long>(progress.imported),
                    static_cast<unsigned long long>(progress.failed), rate);
    } else {
      std::snprintf(line, sizeof line, "\r%llu imported, %llu failed, %.0f/s ",
                    static_cast<unsigned long long>(progress.imported),
                    static_cast<unsigned long long>(progress.failed), rate);
    }
    std::fputs(line, stderr);
    std::fflush(stderr);
    drawn_ = true;
  }

  void Finish() {
    if (drawn_) std::fputs("\n", stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_;
  std::uint64_t total_bytes_;
  Clock::time_point started_;
  Clock::time_point last_draw_{};
  bool drawn_ = false;
};

struct ImportCommand {
  std::string file;
  std::string resource;
  std::string format;
  bool upsert = false;
  std::size_t batch_size = 500;
  bool no_progress = false;
};

// Sends batches to a running service: POST /resources/R/records with an array.
BatchSink ServiceSink(ServiceClient& service, const std::string& resource, bool upsert) {
  return [&service, resource, upsert](std::vector<JsonObject> records) {
    std::vector<Status> statuses(records.size());
    JsonArray body;
    body.reserve(records.size());
    for (auto& record : records) body.emplace_back(std::move(record));
    Json request = std::move(body);
    std::string path = RecordPath(resource) + (upsert ? "?upsert=true" : "");
    auto answer = service.Call("POST", path, &request, std::chrono::minutes(10));
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      if (!answer) {
        statuses[i] = tl::unexpected(answer.error());
      } else if (!answer->is_array() || i >= answer->get_array().size()) {
        statuses[i] = MakeError(ErrorCode::kInternal, "the service sent no result");
      } else if (const Json& item = answer->get_array()[i];
                 item.is_object() && item.get_object().contains("error")) {
        const Json& error = item.get_object().at("error");
        std::string code = "internal", message = "failed";
        if (error.is_object()) {
          if (auto* c = error.get_object().if_contains("code"); c && c->is_string()) {
            code = std::string(c->get_string());
          }
          if (auto* m = error.get_object().if_contains("message"); m && m->is_string()) {
            message = std::string(m->get_string());
          }
        }
        statuses[i] = MakeError(ErrorCodeFromName(code), message);
      }
    }
    return statuses;
  };
}

int Import(const GlobalOptions& global, const ImportCommand& command) {
  std::optional<InputFormat> format;
  if (!command.format.empty()) {
    auto parsed = ParseInputFormat(command.format);
    if (!parsed) return Fail(parsed.error());
    format = *parsed;
  } else {
    format = FormatFromPath(command.file);
    if (!format) {
      return Fail(command.file +
                  ": cannot tell the format from the name; use --format "
                  "json|jsonl|csv");
    }
  }

  std::ifstream file;
  std::istream* input = &std::cin;
  std::uint64_t total_bytes = 0;
  if (command.file != "-") {
    errno = 0;
    file.open(command.file, std::ios::binary);
    if (!file) return Fail(CannotRead(command.file, errno));
    if (std::error_code ec; std::filesystem::is_directory(command.file, ec)) {
      return Fail(CannotRead(command.file, EISDIR));
    }
    input = &file;
    std::error_code ec;
    if (std::filesystem::is_regular_file(command.file, ec)) {
      total_bytes = std::filesystem::file_size(command.file, ec);
    }
  }

  auto session = OpenSession(global, Need::kWrite);
  if (!session) return Fail(session.error());
  Session& s = **session;

  BatchSink sink;
  const Schema* schema = nullptr;
  if (s.remote()) {
    sink = ServiceSink(*s.service, command.resource, command.upsert);
  } else {
    auto resource = FindResource(s, command.resource);
    if (!resource) return Fail(resource.error());
    sink = ResourceSink(**resource, command.upsert, &s.database->pool());
    schema = &(*resource)->schema();
  }
  if (s.remote() && *format == InputFormat::kCsv) {
    // CSV typing needs the schema: read it from the catalogue.
    if (auto resource = FindResource(s, command.resource)) schema = &(*resource)->schema();
  }

  auto source = NewRecordSource(*format, *input, schema);
  ProgressBar bar(!command.no_progress && ::isatty(STDERR_FILENO) != 0, total_bytes);
  ImportOptions options;
  options.batch_size = command.batch_size;
  options.on_progress = [&bar](const ImportProgress& progress) { bar.Update(progress); };
  ImportSummary summary = ImportRecords(*source, sink, options);
  bar.Update({summary.imported, summary.failed, source->bytes_read()}, true);
  bar.Finish();

  std::string where = command.file == "-" ? "stdin" : command.file;
  for (const ImportError& error : summary.first_errors) PrintError(where + ": " + error.message);
  if (summary.failed > summary.first_errors.size()) {
    PrintError(where + ": ... and " + std::to_string(summary.failed - summary.first_errors.size()) +
               " more errors");
  }
  if (!summary.fatal_error.empty()) {
    PrintError(where + ": " + summary.fatal_error + " (import stopped here)");
  }

  std::vector<std::string> replicators = s.WaitForReplication(global.wait_seconds);
  PrintText(summary.SummaryLine());
  for (const std::string& line : replicators) PrintText("replicator " + line);
  return summary.failed == 0 && summary.fatal_error.empty() ? kExitOk : kExitError;
}

// ---- replicators and dead letters ----

// ---- export ----

struct ExportCommand {
  std::string resource;
  std::string format;
  std::string output;
  std::string options = "{}";
};

// The format named by --format, else by the output's extension.
Result<formats::FileFormat> ExportFormat(const ExportCommand& command) {
  if (!command.format.empty()) {
    auto parsed = formats::ParseFileFormat(command.format);
    if (!parsed) {
      return MakeError(ErrorCode::kInvalidArgument, "--format: " + parsed.error().message);
    }
    return *parsed;
  }
  const std::string& out = command.output;
  for (auto [ending, format] :
       std::vector<std::pair<std::string_view, formats::FileFormat>>{
           {".csv", formats::FileFormat::kCsv},
           {".jsonl", formats::FileFormat::kJsonl},
           {".ndjson", formats::FileFormat::kJsonl},
           {".jsonl.gz", formats::FileFormat::kJsonl},
           {".parquet", formats::FileFormat::kParquet},
           {".xlsx", formats::FileFormat::kExcel}}) {
    if (out.size() > ending.size() && out.ends_with(ending)) return format;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "--output: cannot tell the format from '" + out +
                       "' (.csv, .jsonl, .jsonl.gz, .parquet, .xlsx); use --format "
                       "csv|jsonl|parquet|excel");
}

// Writes every current record of a resource to one file, page by page, through the file
// writers of src/formats (the file drivers' lifecycle: Add each record, Finish; the file
// appears complete at --output by an atomic rename, or not at all).
int Export(const GlobalOptions& global, const ExportCommand& command) {
  auto format = ExportFormat(command);
  if (!format) return Fail(format.error());
  auto options = JsonObjectArgument(command.options, "--options");
  if (!options) return Fail(options.error());
  if (options->contains("compress") && *format != formats::FileFormat::kJsonl) {
    return Fail("--options: compress applies to jsonl only");
  }
  if (auto known = formats::RefuseUnknownFormatOptions(*format, *options); !known) {
    return Fail("--options: " + known.error().message);
  }
  if (*format == formats::FileFormat::kJsonl && command.output.ends_with(".gz") &&
      !options->contains("compress")) {
    (*options)["compress"] = true;  // users.jsonl.gz
  }
  if (*format == formats::FileFormat::kExcel && !options->contains("sheetName")) {
    (*options)["sheetName"] = command.resource;
  }
  if (command.output == "-" || command.output.empty() || command.output.ends_with("/")) {
    return Fail("--output: a file path, like ./exports/" + command.resource +
                formats::FileExtension(*format, *options));
  }
  {
    // Check the options before anything is opened, so a bad one leaves no file behind.
    auto probe = formats::MakeRecordWriter(*format, formats::ColumnSet(), *options,
                                           std::make_unique<formats::MemoryByteSink>());
    if (!probe) return Fail("--options: " + probe.error().message);
    (*probe)->Abandon();
  }
  auto session = OpenSession(global, Need::kRead);
  if (!session) return Fail(session.error());
  auto resource = FindResource(**session, command.resource);
  if (!resource) return Fail(resource.error());

  // Columns: id, the attributes in definition order, then other fields in first-seen order.
  std::vector<formats::ColumnSpec> declared{{"id", formats::ColumnType::kString}};
  formats::ColumnSet from_schema = formats::ColumnSet::FromSchema((*resource)->schema());
  for (const formats::ColumnSpec& spec : from_schema.columns()) {
    if (spec.name != "id") declared.push_back(spec);
  }
  auto columns = formats::ColumnSet::Make(std::move(declared));
  if (!columns) return Fail(columns.error());
  auto sink = formats::FileByteSink::Open(command.output);
  if (!sink) return Fail("--output: " + sink.error().message);
  auto writer = formats::MakeRecordWriter(*format, std::move(*columns), *options,
                                          std::move(*sink));
  if (!writer) return Fail(command.output + ": " + writer.error().message);

  auto started = std::chrono::steady_clock::now();
  std::uint64_t written = 0, skipped = 0;
  std::string cursor;
  while (true) {
    auto page = (*resource)->GetPage(cursor, 500);
    if (!page) {
      (*writer)->Abandon();
      return Fail(page.error());
    }
    for (const JsonObject& record : page->items) {
      Status added = (*writer)->Add(record);
      if (added) {
        ++written;
        continue;
      }
      if (added.error().code != ErrorCode::kInvalidArgument) {
        (*writer)->Abandon();
        return Fail(command.output + ": " + added.error().message);
      }
      // A record the format cannot hold as it is (e.g. a string in a Parquet INT64 column).
      if (++skipped <= 5) {
        const Json* id = record.if_contains("id");
        PrintError(command.output + ": record " + (id ? ToJson(*id) : std::string("?")) +
                   " skipped: " + added.error().message);
      }
    }
    if (page->next_cursor.empty()) break;
    cursor = page->next_cursor;
  }
  Status finished = (*writer)->Finish();
  if (!finished) return Fail(command.output + ": " + finished.error().message);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::error_code size_error;
  auto bytes = std::filesystem::file_size(command.output, size_error);
  JsonObject report;
  report["resource"] = command.resource;
  static const char* const kNames[] = {"csv", "jsonl", "parquet", "excel"};
  report["format"] = kNames[static_cast<int>(*format)];
  report["file"] = command.output;
  report["records"] = written;
  report["skipped"] = skipped;
  report["bytes"] = size_error ? 0 : static_cast<std::uint64_t>(bytes);
  report["seconds"] = std::round(seconds * 1000) / 1000;
  PrintLine(report);
  return skipped == 0 ? kExitOk : kExitError;
}

struct ReplicatorCommand {
  std::string action;  // list | stats | enable | disable | sync | tail | dlq-list | ...
  std::string id;
  std::size_t limit = 100;
  std::size_t count = 0;    // tail: stop after this many changes (0 = never)
  int timeout_seconds = 0;  // tail: stop after this long (0 = never)
};

int PrintServiceAnswer(const Result<Json>& answer) {
  if (!answer) return Fail(answer.error());
  if (answer->is_array()) {
    for (const Json& item : answer->get_array()) PrintRedactedLine(item);
  } else {
    PrintRedactedLine(*answer);
  }
  return kExitOk;
}

// Prints the answer of a sync, and on stderr what a sync that ran out of time leaves behind.
int PrintSyncAnswer(const Result<Json>& answer, int seconds, bool service) {
  if (!answer) return Fail(answer.error());
  PrintRedactedLine(*answer);
  const Json* done = answer->is_object() ? answer->get_object().if_contains("done") : nullptr;
  if (done && *done == Json(false)) {
    PrintError("warning: the sync did not finish within " + std::to_string(seconds) +
               " s (--wait); the records it queued stay in the change log and " +
               (service ? "the running s3db run keeps delivering them"
                        : "are delivered by the next s3db process with this config") +
               "; run the sync again to wait for the rest (it continues where it stopped)");
  }
  return kExitOk;
}

int Tail(ServiceClient& service, const ReplicatorCommand& command) {
  auto started = std::chrono::steady_clock::now();
  auto first = service.Send("GET", "/changes", nullptr, std::chrono::seconds(10));
  if (!first) return Fail(first.error());
  if (first->status != 200) return Fail(ServiceClient::ServiceError(*first).value());
  std::string after = first->Header("x-s3db-head");
  if (after.empty()) after = "0";
  std::size_t printed = 0;
  while (command.count == 0 || printed < command.count) {
    int wait_ms = 20000;
    if (command.timeout_seconds > 0) {
      auto left = std::chrono::seconds(command.timeout_seconds) -
                  (std::chrono::steady_clock::now() - started);
      wait_ms =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count());
      if (wait_ms <= 0) break;
      wait_ms = std::min(wait_ms, 20000);
    }
    auto response =
        service.Send("GET", "/changes?after=" + after + "&timeoutMs=" + std::to_string(wait_ms),
                     nullptr, std::chrono::milliseconds(wait_ms + 10000));
    if (!response) return Fail(response.error());
    if (response->status != 200) return Fail(ServiceClient::ServiceError(*response).value());
    std::istringstream lines(response->body);
    std::string line;
    while (std::getline(lines, line) && (command.count == 0 || printed < command.count)) {
      if (line.empty()) continue;
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      ++printed;
    }
    std::fflush(stdout);
    std::string head = response->Header("x-s3db-head");
    if (!head.empty()) after = head;
  }
  return kExitOk;
}

int RemoteReplicatorCommand(Session& session, const ReplicatorCommand& command, int wait_seconds) {
  ServiceClient& service = *session.service;
  std::string id = PercentEncode(command.id);
  const std::string& action = command.action;
  if (action == "list") return PrintServiceAnswer(service.Call("GET", "/replicators"));
  if (action == "stats") {
    return PrintServiceAnswer(
        service.Call("GET", command.id.empty() ? "/stats" : "/replicators/" + id + "/stats"));
  }
  if (action == "enable" || action == "disable") {
    return PrintServiceAnswer(service.Call("POST", "/replicators/" + id + "/" + action));
  }
  if (action == "sync") {
    int seconds = std::max(wait_seconds, 0);
    auto answer =
        service.Call("POST", "/replicators/" + id + "/sync?seconds=" + std::to_string(seconds),
                     nullptr, std::chrono::seconds(seconds + 30));
    return PrintSyncAnswer(answer, seconds, true);
  }
  if (action == "tail") return Tail(service, command);
  if (action == "dlq-list") {
    return PrintServiceAnswer(
        service.Call("GET", "/dlq/" + id + "?limit=" + std::to_string(command.limit)));
  }
  if (action == "dlq-replay")
    return PrintServiceAnswer(service.Call("POST", "/dlq/" + id + "/replay"));
  if (action == "dlq-purge")
    return PrintServiceAnswer(service.Call("POST", "/dlq/" + id + "/purge"));
  return Fail("unknown command " + action);
}

// Enables or disables a replicator and remembers it in the state dir for later starts.
Result<Json> SetReplicatorEnabled(replicator::ReplicatorPlugin& plugin,
                                  const std::string& state_dir, const std::string& id,
                                  bool enabled) {
  S3DB_RETURN_IF_ERROR(enabled ? plugin.EnableReplicator(id) : plugin.DisableReplicator(id));
  S3DB_RETURN_IF_ERROR(SaveReplicatorOverride(state_dir, id, enabled));
  JsonObject out;
  out["id"] = id;
  out["enabled"] = enabled;
  return Json(out);
}

// Runs SyncAllData for up to `seconds`: {"replicator","enqueued","settled","done"}, where done
// is false when the time ran out (the rest stays queued in the change log and a later sync
// continues where this one stopped). A stop request through `stop` is an error (kUnavailable).
Result<Json> SyncReplicator(replicator::ReplicatorPlugin& plugin, const std::string& id,
                            bool show_progress, int seconds, std::stop_token stop = {}) {
  replicator::SyncProgress last;
  last.replicator = id;
  auto synced = plugin.SyncAllData(
      id,
      [&](const replicator::SyncProgress& progress) {
        last = progress;
        if (show_progress) {
          std::fprintf(stderr, "\rsync %s: %llu of %llu settled (reading %s) ", id.c_str(),
                       static_cast<unsigned long long>(progress.settled),
                       static_cast<unsigned long long>(progress.enqueued),
                       progress.resource.c_str());
          std::fflush(stderr);
        }
      },
      std::chrono::seconds(std::max(seconds, 0)), stop);
  if (show_progress) std::fputs("\n", stderr);
  if (!synced && synced.error().code != ErrorCode::kTimeout) return tl::unexpected(synced.error());
  JsonObject out;
  out["replicator"] = id;
  out["enqueued"] = last.enqueued;
  out["settled"] = synced ? last.enqueued : last.settled;
  out["done"] = synced.has_value();
  return Json(out);
}

int ReplicatorCommandMain(const GlobalOptions& global, const ReplicatorCommand& command) {
  auto session = OpenSession(global, Need::kReplicator);
  if (!session) return Fail(session.error());
  Session& s = **session;
  if (s.remote()) return RemoteReplicatorCommand(s, command, global.wait_seconds);

  replicator::ReplicatorPlugin& plugin = *s.plugin;
  const std::string& action = command.action;
  if (action == "tail") {
    return Fail(
        "replicators tail follows a running `s3db run` for this config, and none is "
        "running on " +
        s.state_dir + "; start one with: s3db run -c " + global.config_path);
  }
  if (action == "list") {
    for (const auto& info : plugin.ListReplicators()) PrintRedactedLine(ReplicatorInfoToJson(info));
    return kExitOk;
  }
  if (action == "stats") {
    // No `s3db run` owns this state: the counters of deliveries live in that process only.
    // What the change log keeps (checkpoint, head, lag, dead letters) is real; the counters
    // are null rather than a misleading 0.
    PrintError("note: no `s3db run` is running for " + global.config_path +
               ", so delivered/filtered/retried/failed/deadLettered are unknown (null) and "
               "the state is this process's; checkpoint, head, lag and dead letters are read "
               "from the change log in " + s.state_dir +
               ". Live counters need a running `s3db run -c " + global.config_path + "`.");
    std::vector<std::string> ids;
    if (!command.id.empty()) {
      ids.push_back(command.id);
    } else {
      for (const auto& info : plugin.ListReplicators()) ids.push_back(info.id);
    }
    for (const std::string& id : ids) {
      auto stats = plugin.GetReplicatorStats(id);
      if (!stats) return Fail(stats.error());
      Json out = ReplicatorStatsToJson(*stats);
      JsonObject& object = out.get_object();
      for (const char* counter :
           {"delivered", "filtered", "retried", "failed", "deadLettered", "latencyP50Ms",
            "latencyP99Ms"}) {
        object[counter] = nullptr;
      }
      object["live"] = false;
      PrintRedactedLine(out);
    }
    return kExitOk;
  }
  if (action == "enable" || action == "disable") {
    auto out = SetReplicatorEnabled(plugin, s.state_dir, command.id, action == "enable");
    if (!out) return Fail(out.error());
    PrintRedactedLine(*out);
    return kExitOk;
  }
  if (action == "sync") {
    return PrintSyncAnswer(
        SyncReplicator(plugin, command.id, ::isatty(STDERR_FILENO) != 0, global.wait_seconds),
        global.wait_seconds, false);
  }
  if (action == "dlq-list") {
    auto letters = plugin.ListDeadLetters(command.id, command.limit);
    if (!letters) return Fail(letters.error());
    for (const auto& letter : *letters) PrintRedactedLine(DeadLetterToJson(letter));
    return kExitOk;
  }
  if (action == "dlq-replay" || action == "dlq-purge") {
    bool replay = action == "dlq-replay";
    auto count =
        replay ? plugin.ReplayDeadLetters(command.id) : plugin.PurgeDeadLetters(command.id);
    if (!count) return Fail(count.error());
    JsonObject out;
    out["replicator"] = command.id;
    out[replay ? "replayed" : "purged"] = *count;
    if (replay) s.WaitForReplication(global.wait_seconds);
    PrintRedactedLine(out);
    return kExitOk;
  }
  return Fail("unknown command " + action);
}

// ---- s3db run ----

// Keeps the most recent changes appended to the change log, for GET /changes (`s3db
// replicators tail`). Each line carries the change's sequence number in the change log
// ("seq"); the feed's own position (X-S3db-Head, `after`) only pages, since concurrent writers
// may append out of order. Changes no replicator records, such as those of the replicator log
// resource, never reach it.
class ChangeFeed {
 public:
  static constexpr std::size_t kKept = 10000;

  // Positions go on from `position` (the change log's head at start), so that a client that
  // resumes with `after` from an earlier run never skips the changes of this one.
  explicit ChangeFeed(std::uint64_t position = 0) : head_(position) {}

  void Add(std::uint64_t sequence, const Change& change) {
    std::string line = JsonLine(ChangeToJson(change, sequence));
    std::lock_guard lock(mutex_);
    ++head_;
    entries_.emplace_back(head_, std::move(line));
    if (entries_.size() > kKept) entries_.pop_front();
    appended_.notify_all();
  }

  std::uint64_t head() const {
    std::lock_guard lock(mutex_);
    return head_;
  }

  // Lines of the changes after position `after` (at most head()), waiting up to `timeout` for
  // the first one.
  std::string Wait(std::uint64_t after, std::chrono::milliseconds timeout,
                   std::uint64_t* new_head) {
    std::unique_lock lock(mutex_);
    appended_.wait_for(lock, timeout, [&] { return head_ > after || stopping_; });
    std::string out;
    for (const auto& [sequence, line] : entries_) {
      if (sequence <= after) continue;
      out += line;
      out += '\n';
    }
    *new_head = head_;
    return out;
  }

  void Wake() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    appended_.notify_all();
  }

 private:
  mutable std::mutex mutex_;  // guards head_, entries_ and stopping_
  std::condition_variable appended_;
  std::uint64_t head_ = 0;
  std::deque<std::pair<std::uint64_t, std::string>> entries_;
  bool stopping_ = false;
};

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kValidation:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SendJson(httplib::Response& response, const Json& body, int status = 200) {
  response.status = status;
  response.set_content(JsonLine(body) + "\n", "application/json");
}

// For replicator state and dead letters, whose error texts come from drivers.
void SendRedactedJson(httplib::Response& response, const Json& body, int status = 200) {
  response.status = status;
  response.set_content(RedactSecrets(JsonLine(body)) + "\n", "application/json");
}

void SendError(httplib::Response& response, const Error& error) {
  JsonObject body;
  body["error"] = ErrorToJson(error);
  SendJson(response, body, HttpStatusFor(error.code));
}

class Service {
 public:
  Service(Session& session, ChangeFeed& feed) : session_(session), feed_(feed) {}

  // Makes every request that waits (sync, /replication/wait, the /changes long poll) answer
  // soon, so that the HTTP server's threads can be joined.
  void Stop() {
    stopping_.request_stop();
    feed_.Wake();
  }

  void Route(httplib::Server& server) {
    // cpp-httplib answers a POST without Content-Length (`curl -X POST URL`) with a bare 400
    // before any handler runs; such a request has no body, so say so.
    server.set_pre_routing_handler([](const httplib::Request& request, httplib::Response&) {
      if (!request.has_header("Content-Length") && !request.has_header("Transfer-Encoding")) {
        const_cast<httplib::Request&>(request).set_header("Content-Length", "0");
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Every 4xx and 5xx carries a JSON error body, also those cpp-httplib makes itself.
    httplib::Server::HandlerWithResponse error_body = [](const httplib::Request& request,
                                                         httplib::Response& response) {
      if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      ErrorCode code = ErrorCode::kInvalidArgument;
      std::string message = "bad request: " + request.method + " " + request.path;
      if (response.status == 404) {
        code = ErrorCode::kNotFound;
        message = "no such endpoint: " + request.method + " " + request.path +
                  " (the admin API is listed in docs/cli.md)";
      } else if (response.status == 413) {
        message = "the request body is too large";
      } else if (response.status >= 500) {
        code = ErrorCode::kInternal;
        message = "internal error (HTTP " + std::to_string(response.status) + ")";
      }
      JsonObject body;
      body["error"] = ErrorToJson(Error(code, message));
      response.set_content(JsonLine(body) + "\n", "application/json");
      return httplib::Server::HandlerResponse::Handled;
    };
    server.set_error_handler(error_body);
    server.Get("/health", [this](const auto&, auto& response) { Health(response); });
    server.Get("/metrics", [this](const auto&, auto& response) {
      response.set_content(RenderPrometheus(AllStats()), "text/plain; version=0.0.4");
    });
    server.Get("/replicators", [this](const auto&, auto& response) {
      if (!RequirePlugin(response)) return;
      JsonArray out;
      for (const auto& info : plugin()->ListReplicators()) {
        out.push_back(ReplicatorInfoToJson(info));
      }
      SendRedactedJson(response, out);
    });
    server.Get("/stats", [this](const auto&, auto& response) {
      JsonArray out;
      for (const auto& stats : AllStats()) out.push_back(ReplicatorStatsToJson(stats));
      SendRedactedJson(response, out);
    });
    server.Get(R"(/replicators/([^/]+)/stats)", [this](const auto& request, auto& response) {
      if (!RequirePlugin(response)) return;
      auto stats = plugin()->GetReplicatorStats(request.matches[1].str());
      if (!stats) return SendError(response, stats.error());
      SendRedactedJson(response, ReplicatorStatsToJson(*stats));
    });
    server.Post(
        R"(/replicators/([^/]+)/(enable|disable))", [this](const auto& request, auto& response) {
          if (!RequirePlugin(response)) return;
          auto out = SetReplicatorEnabled(*plugin(), session_.state_dir, request.matches[1].str(),
                                          request.matches[2].str() == "enable");
          if (!out) return SendError(response, out.error());
          SendRedactedJson(response, *out);
        });
    server.Post(R"(/replicators/([^/]+)/sync)", [this](const auto& request, auto& response) {
      if (!RequirePlugin(response)) return;
      std::uint64_t seconds = 86400;
      if (request.has_param("seconds")) {
        auto parsed = ParseCountParameter("seconds", request.get_param_value("seconds"), 86400);
        if (!parsed) return SendError(response, parsed.error());
        seconds = *parsed;
      }
      auto out = SyncReplicator(*plugin(), request.matches[1].str(), false,
                                static_cast<int>(seconds), stopping_.get_token());
      if (!out) return SendError(response, out.error());
      SendRedactedJson(response, *out);
    });
    server.Get(R"(/dlq/([^/]+))", [this](const auto& request, auto& response) {
      if (!RequirePlugin(response)) return;
      std::uint64_t limit = 100;
      if (request.has_param("limit")) {
        auto parsed = ParseCountParameter("limit", request.get_param_value("limit"));
        if (!parsed) return SendError(response, parsed.error());
        limit = *parsed;
      }
      auto letters = plugin()->ListDeadLetters(request.matches[1].str(), limit);
      if (!letters) return SendError(response, letters.error());
      JsonArray out;
      for (const auto& letter : *letters) out.push_back(DeadLetterToJson(letter));
      SendRedactedJson(response, out);
    });
    server.Post(R"(/dlq/([^/]+)/(replay|purge))", [this](const auto& request, auto& response) {
      if (!RequirePlugin(response)) return;
      std::string id = request.matches[1].str();
      bool replay = request.matches[2].str() == "replay";
      auto count = replay ? plugin()->ReplayDeadLetters(id) : plugin()->PurgeDeadLetters(id);
      if (!count) return SendError(response, count.error());
      JsonObject out;
      out["replicator"] = id;
      out[replay ? "replayed" : "purged"] = *count;
      SendRedactedJson(response, out);
    });
    server.Get("/changes",
               [this](const auto& request, auto& response) { Changes(request, response); });
    server.Post("/replication/wait", [this](const auto& request, auto& response) {
      WaitForReplication(request, response);
    });
    server.Post(R"(/resources/([^/]+)/records)",
                [this](const auto& request, auto& response) { WriteRecords(request, response); });
    server.Get(R"(/resources/([^/]+)/records/([^/]+))",
               [this](const auto& request, auto& response) {
                 auto resource = session_.database->GetResource(request.matches[1].str());
                 if (!resource) return SendError(response, resource.error());
                 auto record = (*resource)->Get(request.matches[2].str());
                 if (!record) return SendError(response, record.error());
                 SendJson(response, *record);
               });
    server.Patch(R"(/resources/([^/]+)/records/([^/]+))",
                 [this](const auto& request, auto& response) {
                   auto resource = session_.database->GetResource(request.matches[1].str());
                   if (!resource) return SendError(response, resource.error());
                   if (request.body.empty()) return SendEmptyBody(response, "a JSON object");
                   auto changes = ParseJsonObjectInput(request.body);
                   if (!changes) return SendError(response, changes.error());
                   auto record = (*resource)->Update(request.matches[2].str(), *changes);
                   if (!record) return SendError(response, record.error());
                   SendJson(response, *record);
                 });
    server.Delete(R"(/resources/([^/]+)/records/([^/]+))",
                  [this](const auto& request, auto& response) {
                    auto resource = session_.database->GetResource(request.matches[1].str());
                    if (!resource) return SendError(response, resource.error());
                    auto deleted = (*resource)->Delete(request.matches[2].str());
                    if (!deleted) return SendError(response, deleted.error());
                    JsonObject out;
                    out["id"] = request.matches[2].str();
                    out["deleted"] = true;
                    SendJson(response, out);
                  });
    server.set_exception_handler([](const auto&, auto& response, std::exception_ptr failure) {
      std::string what = "internal error";
      try {
        if (failure) std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      SendError(response, Error(ErrorCode::kInvalidArgument, what));
    });
  }

 private:
  replicator::ReplicatorPlugin* plugin() const { return session_.plugin.get(); }

  static void SendEmptyBody(httplib::Response& response, const std::string& expected) {
    SendError(response,
              Error(ErrorCode::kInvalidArgument, "the request body is empty; send " + expected));
  }

  bool RequirePlugin(httplib::Response& response) {
    if (plugin()) return true;
    SendError(response, Error(ErrorCode::kNotFound, "no replicator is configured"));
    return false;
  }

  std::vector<replicator::ReplicatorStats> AllStats() const {
    std::vector<replicator::ReplicatorStats> out;
    if (!plugin()) return out;
    for (const auto& info : plugin()->ListReplicators()) {
      if (auto stats = plugin()->GetReplicatorStats(info.id)) out.push_back(std::move(*stats));
    }
    return out;
  }

  void Health(httplib::Response& response) {
    std::vector<replicator::ReplicatorStats> stats = AllStats();
    Json body = HealthToJson(stats);
    bool healthy = body.get_object().at("status") == Json("ok");
    SendRedactedJson(response, body, healthy ? 200 : 503);
  }

  void Changes(const httplib::Request& request, httplib::Response& response) {
    response.status = 200;
    if (!request.has_param("after")) {
      response.set_header("X-S3db-Head", std::to_string(feed_.head()));
      response.set_content("", "application/x-ndjson");
      return;
    }
    auto after_parsed = ParseCountParameter("after", request.get_param_value("after"));
    if (!after_parsed) return SendError(response, after_parsed.error());
    std::uint64_t after = *after_parsed;
    if (std::uint64_t head = feed_.head(); after > head) {
      // Echoing it back as the head would have the client skip the changes up to `after`.
      return SendError(
          response, Error(ErrorCode::kInvalidArgument,
                          "after: " + std::to_string(after) + " is beyond the feed's head " +
                              std::to_string(head) + "; resume with after=" + std::to_string(head) +
                              " or less (GET /changes without after gives the head)"));
    }
    long timeout_ms = 20000;
    if (request.has_param("timeoutMs")) {
      auto parsed = ParseCountParameter("timeoutMs", request.get_param_value("timeoutMs"));
      if (!parsed) return SendError(response, parsed.error());
      timeout_ms = static_cast<long>(std::min<std::uint64_t>(*parsed, 60000));
    }
    std::uint64_t head = after;
    std::string lines = feed_.Wait(after, std::chrono::milliseconds(timeout_ms), &head);
    response.set_header("X-S3db-Head", std::to_string(head));
    response.set_content(lines, "application/x-ndjson");
  }

  // POST /replication/wait?seconds=N: what a CLI write waits for after writing through the
  // service. {"idle":bool, "warning":"..." when not idle, "replicators":["<summary line>"...]}
  void WaitForReplication(const httplib::Request& request, httplib::Response& response) {
    std::uint64_t seconds = 60;
    if (request.has_param("seconds")) {
      auto parsed = ParseCountParameter("seconds", request.get_param_value("seconds"), 86400);
      if (!parsed) return SendError(response, parsed.error());
      seconds = *parsed;
    }
    JsonObject out;
    out["idle"] = true;
    JsonArray lines;
    if (plugin()) {
      auto idle = plugin()->WaitIdle(std::chrono::seconds(seconds), stopping_.get_token());
      if (!idle) {
        out["idle"] = false;
        out["warning"] = ReplicationTimeoutWarning(static_cast<int>(seconds), idle.error().message,
                                                   session_.state_dir, true);
      }
      for (const std::string& line : ReplicatorSummaries(*plugin())) lines.emplace_back(line);
    }
    out["replicators"] = std::move(lines);
    SendRedactedJson(response, out);
  }

  void WriteRecords(const httplib::Request& request, httplib::Response& response) {
    auto resource = session_.database->GetResource(request.matches[1].str());
    if (!resource) return SendError(response, resource.error());
    bool upsert = false;
    if (request.has_param("upsert")) {
      auto parsed = ParseBoolParameter("upsert", request.get_param_value("upsert"));
      if (!parsed) return SendError(response, parsed.error());
      upsert = *parsed;
    }
    if (request.body.empty()) {
      return SendEmptyBody(response, "a JSON object or an array of objects");
    }
    auto body = ParseJsonInput(request.body);
    if (!body) return SendError(response, body.error());
    if (body->is_object()) {
      auto record = upsert ? (*resource)->Upsert(std::move(body->get_object()))
                           : (*resource)->Insert(std::move(body->get_object()));
      if (!record) return SendError(response, record.error());
      return SendJson(response, *record, 201);
    }
    if (!body->is_array()) {
      return SendError(response, Error(ErrorCode::kInvalidArgument,
                                       "expected a JSON object or an array of objects"));
    }
    std::vector<JsonObject> records;
    std::vector<std::size_t> positions;  // index in the request of each object
    JsonArray results(body->get_array().size());
    for (std::size_t i = 0; i < body->get_array().size(); ++i) {
      Json& item = body->get_array()[i];
      if (!item.is_object()) {
        JsonObject failed;
        failed["error"] = ErrorToJson(Error(ErrorCode::kInvalidArgument, "not an object"));
        results[i] = std::move(failed);
        continue;
      }
      records.push_back(std::move(item.get_object()));
      positions.push_back(i);
    }
    // Each element answers with the stored record, as a local `s3db insert` prints it.
    std::vector<Result<JsonObject>> written =
        WriteRecordBatch(**resource, upsert, &session_.database->pool(), std::move(records));
    for (std::size_t k = 0; k < positions.size(); ++k) {
      if (k < written.size() && written[k]) {
        results[positions[k]] = std::move(*written[k]);
      } else {
        JsonObject entry;
        entry["error"] = ErrorToJson(k < written.size() ? written[k].error()
                                                        : Error(ErrorCode::kInternal, "lost"));
        results[positions[k]] = std::move(entry);
      }
    }
    SendJson(response, results);
  }

  Session& session_;
  ChangeFeed& feed_;
  std::stop_source stopping_;
};

int Run(const GlobalOptions& global, const std::string& listen_override) {
  // Block the stop signals in every thread; this thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  if (global.config_path.empty()) return Fail("s3db run needs a config file: s3db run -c FILE");
  auto opened = OpenSession(global, Need::kServe);
  if (!opened) return Fail(opened.error());
  Session& session = **opened;

  config::HttpSettings http = session.config->http;
  if (!listen_override.empty()) {
    auto parsed = config::ParseConfig("http: { listen: \"" + listen_override + "\" }", "--listen");
    if (!parsed) return Fail(parsed.error());
    int threads = http.threads;
    http = parsed->http;
    http.threads = threads;
  }

  std::uint64_t log_head = 0;
  if (session.plugin) {
    for (const auto& info : session.plugin->ListReplicators()) {
      auto stats = session.plugin->GetReplicatorStats(info.id);
      if (stats) log_head = std::max(log_head, stats->head);
    }
  }
  auto feed = std::make_shared<ChangeFeed>(log_head);
  std::size_t feed_handle = 0;
  if (session.plugin) {
    feed_handle = session.plugin->OnAppend(
        [feed](std::uint64_t sequence, const Change& change) { feed->Add(sequence, change); });
  }

  httplib::Server server;
  // cpp-httplib's default pool (8 threads here) is smaller than the clients a writer fleet
  // keeps open: with 16 keep-alive clients, requests queued behind idle connections for up to
  // the 5 s keep-alive timeout. HttpThreadPool starts threads as connections need them and
  // reuses the last idle one, so the memory they keep follows the clients, not the uptime.
  server.new_task_queue = [threads = http.threads] {
    return new HttpThreadPool(static_cast<std::size_t>(threads));
  };
  server.set_keep_alive_max_count(1000);  // cpp-httplib closes after 5 requests by default
  // cpp-httplib sets SO_REUSEPORT by default, with which a second `s3db run` binds the same
  // port and the kernel splits the connections (and so the writes) between two databases.
  // SO_REUSEADDR alone still lets a restart bind while old connections are in TIME_WAIT.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  Service service(session, *feed);
  service.Route(server);
  int port = http.port;
  if (port == 0) {
    port = server.bind_to_any_port(http.host);
  } else if (!server.bind_to_port(http.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return Fail("cannot listen on " + http.Listen() +
                " (in use, or not an address of this "
                "machine); change http.listen in " +
                global.config_path + " or use --listen");
  }
  std::string url = "http://" + http.host + ":" + std::to_string(port);
  JsonObject lock_info;
  lock_info["pid"] = static_cast<std::int64_t>(::getpid());
  lock_info["url"] = url;
  if (auto described = session.lock.Describe(lock_info); !described) {
    return Fail(described.error());
  }
  std::thread server_thread([&server] { server.listen_after_bind(); });

  std::size_t replicators = session.plugin ? session.plugin->ListReplicators().size() : 0;
  spdlog::info("serving {} (/metrics, /health, admin API) for {} with {} replicator(s)", url,
               session.database->Describe(), replicators);
  std::string warning = UnauthenticatedListenWarning(
      http.host, url,
      listen_override.empty() ? "http.listen in " + global.config_path : "--listen");
  if (!warning.empty()) PrintError(warning);
  PrintText("s3db run: listening on " + url);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received signal {}; stopping", signal_number);
  // Stopping waits for in-flight batches and the drivers' flushes; a second signal is the
  // operator saying not to wait. The change log keeps what was not delivered.
  std::thread([stop_signals] {
    int again = 0;
    sigwait(&stop_signals, &again);
    PrintError("received signal " + std::to_string(again) +
               " while stopping; exiting without waiting (undelivered changes stay in the "
               "change log)");
    std::_Exit(kExitError);
  }).detach();

  service.Stop();
  server.stop();
  server_thread.join();
  if (session.plugin) session.plugin->OffAppend(feed_handle);
  Status closed = session.database->Close();  // stops the replicators: flush, checkpoints
  if (!closed) return Fail("stopping: " + closed.error().message);
  PrintText("s3db run: stopped");
  return kExitOk;
}

// ---- command line ----

// A count option (--limit, --offset, ...): digits only, as the admin API takes them. CLI11
// would read "-1" into a std::size_t as the largest value.
const CLI::Validator kNonNegativeInteger(
    [](std::string& text) -> std::string {
      bool digits =
          !text.empty() && text.size() <= 19 &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
      return digits ? "" : "'" + text + "' is not a non-negative integer";
    },
    "NON-NEGATIVE INTEGER");

// "s3db: <message>" with exit code 2, for a command line that cannot be parsed.
int Usage(const std::string& message) {
  Fail(message);
  return kExitUsage;
}

// CLI11 reports `s3db frobnicate` as "A subcommand is required". When the deepest command
// given has subcommands and the first word left over is not an option, that word is an
// unknown command: name it and list the known ones. "" otherwise.
std::string UnknownCommandMessage(CLI::App& app, const CLI::ParseError& error) {
  if (!dynamic_cast<const CLI::RequiredError*>(&error) &&
      !dynamic_cast<const CLI::ExtrasError*>(&error)) {
    return "";  // --help, --version, a bad option value: CLI11's own message
  }
  CLI::App* at = &app;
  std::string path;  // "" or "replicators", "dlq", ...
  while (true) {
    std::vector<CLI::App*> parsed = at->get_subcommands();
    if (parsed.empty()) break;
    at = parsed.front();
    path += (path.empty() ? "" : " ") + at->get_name();
  }
  std::vector<CLI::App*> known = at->get_subcommands({});
  if (known.empty() || at->get_require_subcommand_min() == 0) return "";
  std::vector<std::string> left = app.remaining(true);
  if (!left.empty() && left.front().rfind('-', 0) == 0) return "";
  std::string names;
  for (const CLI::App* command : known) {
    names += (names.empty() ? "" : ", ") + command->get_name();
  }
  std::string command = path.empty() ? "s3db" : "s3db " + path;
  std::string problem =
      left.empty() ? "a command is required" : "unknown command '" + left.front() + "'";
  return (path.empty() ? "" : path + ": ") + problem + "; commands: " + names + " (see " + command +
         " --help)";
}

int Main(int argc, char** argv) {
  CLI::App app{
      "s3db: a document database on S3-compatible storage, with replication.\n"
      "JSON goes in as an argument (or - for standard input) and comes out as one\n"
      "compact JSON document per line."};
  app.require_subcommand(1);
  app.fallthrough();

  GlobalOptions global;
  app.add_option("--connection", global.connection,
                 "Database connection string (default: the config's connection, else " +
                     std::string(kDefaultConnection) + ")")
      ->envname("S3DB_CONNECTION");
  app.add_option("-c,--config", global.config_path, "YAML config file (see docs/configuration.md)")
      ->envname("S3DB_CONFIG");
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn (default), error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--wait", global.wait_seconds,
                 "Seconds a write waits for its replication (default 60)")
      ->check(CLI::NonNegativeNumber);

  std::function<int()> run;

  // resource create | list
  auto* resource = app.add_subcommand("resource", "Create and list resources");
  resource->require_subcommand(1);
  std::string resource_name, attributes;
  bool timestamps = false;
  int id_size = 22;
  auto* create = resource->add_subcommand(
      "create", "Create a resource (--replace: replace the definition of an existing one)");
  create->add_option("name", resource_name, "Resource name")->required();
  create->add_option("--attributes", attributes,
                     "Attributes as JSON, e.g. '{\"name\":\"string|required\"}' (or -)");
  create->add_flag("--timestamps", timestamps, "Maintain createdAt and updatedAt");
  bool replace = false;
  create->add_flag("--replace", replace,
                   "Replace the definition of an existing resource (its records are kept)");
  create->add_option("--id-size", id_size, "Length of generated ids (default 22)")
      ->check(CLI::Range(4, 255));
  create->callback([&] {
    run = [&] {
      return ResourceCreate(global, resource_name, attributes, timestamps, id_size, replace);
    };
  });
  resource->add_subcommand("list", "List resources with their definitions")->callback([&] {
    run = [&] { return ResourceList(global); };
  });

  // records
  std::string name, id, data;
  std::size_t limit = 0, offset = 0;
  auto* insert = app.add_subcommand("insert", "Insert a record (or an array of records)");
  insert->add_option("resource", name, "Resource name")->required();
  insert->add_option("json", data, "The record as JSON, or - for standard input")->required();
  insert->callback([&] { run = [&] { return Insert(global, name, data); }; });

  auto* get = app.add_subcommand("get", "Print a record");
  get->add_option("resource", name)->required();
  get->add_option("id", id)->required();
  get->callback([&] { run = [&] { return Get(global, name, id); }; });

  auto* update = app.add_subcommand("update", "Deep-merge changes into a record");
  update->add_option("resource", name)->required();
  update->add_option("id", id)->required();
  update->add_option("json", data, "The changes as JSON, or -")->required();
  update->callback([&] { run = [&] { return Update(global, name, id, data); }; });

  auto* remove = app.add_subcommand("delete", "Delete a record");
  remove->add_option("resource", name)->required();
  remove->add_option("id", id)->required();
  remove->callback([&] { run = [&] { return Delete(global, name, id); }; });

  auto* list = app.add_subcommand("list", "Print records in id order, one per line");
  list->add_option("resource", name)->required();
  list->add_option("--limit", limit, "At most this many (0 = all)")->check(kNonNegativeInteger);
  list->add_option("--offset", offset, "Skip this many first")->check(kNonNegativeInteger);
  list->callback([&] { run = [&] { return List(global, name, limit, offset); }; });

  std::string filter;
  auto* query = app.add_subcommand("query", "Print records matching a filter");
  query->add_option("resource", name)->required();
  query->add_option("filter", filter, "Filter as JSON, e.g. '{\"age\":{\"$gte\":18}}' (or -)")
      ->required();
  query->add_option("--limit", limit, "At most this many (0 = all)")->check(kNonNegativeInteger);
  query->add_option("--offset", offset, "Skip this many first")->check(kNonNegativeInteger);
  query->callback([&] { run = [&] { return Query(global, name, filter, limit, offset); }; });

  // import
  ImportCommand import_command;
  auto* import = app.add_subcommand(
      "import", "Import a JSON array, JSON Lines or CSV file (with a config: and replicate it)");
  import->add_option("file", import_command.file, "File to read, or - for standard input")
      ->required();
  import->add_option("-r,--resource", import_command.resource, "Target resource")->required();
  import->add_option("--format", import_command.format,
                     "json, jsonl (ndjson) or csv (default: by the file extension)");
  import->add_flag("--upsert", import_command.upsert,
                   "Upsert (insert or merge by id) instead of insert");
  import->add_option("--batch-size", import_command.batch_size, "Records per batch (default 500)")
      ->check(CLI::Range(1, 100000));
  import->add_flag("--no-progress", import_command.no_progress, "No progress bar");
  import->callback([&] { run = [&] { return Import(global, import_command);
};
}  // namespace
);

// export
ExportCommand export_command;
auto* export_files = app.add_subcommand(
    "export", "Write a resource's current records to a CSV, JSON Lines, Parquet or Excel file");
export_files->add_option("-r,--resource", export_command.resource, "The resource")->required();
export_files->add_option("-o,--output", export_command.output,
                         "The file to write (replaced atomically when complete)")
    ->required();
export_files->add_option("--format", export_command.format,
                         "csv, jsonl, parquet or excel (default: by the output's extension)");
export_files->add_option("--options", export_command.options,
                         "Format options as JSON, as the file drivers take them, e.g. "
                         "'{\"delimiter\":\";\"}' or '{\"compression\":\"zstd\"}' (or -)");
export_files->callback([&] { run = [&] { return Export(global, export_command); }; });

// run
std::string listen;
auto* serve = app.add_subcommand(
    "run",
    "Run the database's replicators as a service with /metrics, /health and an admin "
    "API, until SIGINT or SIGTERM");
serve->add_option("--listen", listen,
                  "host:port (default: the config's http.listen, else "
                  "127.0.0.1:9464; port 0 picks a free one)");
serve->callback([&] { run = [&] { return Run(global, listen); }; });

// replicators
ReplicatorCommand replicator_command;
auto* replicators =
    app.add_subcommand("replicators",
                       "Inspect and control the config's replicators (talks to a running "
                       "`s3db run` when there is one)");
replicators->require_subcommand(1);
auto add_replicator_command = [&](CLI::App* parent, const std::string& command,
                                  const std::string& action, const std::string& help, bool needs_id,
                                  bool optional_id = false) {
  auto* sub = parent->add_subcommand(command, help);
  if (needs_id || optional_id) {
    auto* option = sub->add_option("id", replicator_command.id, "Replicator id");
    if (needs_id) option->required();
  }
  sub->callback([&, action] {
    replicator_command.action = action;
    run = [&] { return ReplicatorCommandMain(global, replicator_command); };
  });
  return sub;
};
add_replicator_command(replicators, "list", "list", "List the replicators", false);
add_replicator_command(replicators, "stats", "stats", "Statistics of one or every replicator",
                       false, true);
add_replicator_command(replicators, "enable", "enable", "Enable a replicator (remembered)", true);
add_replicator_command(replicators, "disable", "disable",
                       "Disable a replicator (remembered; its backlog is kept)", true);
add_replicator_command(replicators, "sync", "sync",
                       "Send every record of the mapped resources through the replicator", true);
auto* tail = add_replicator_command(replicators, "tail", "tail",
                                    "Print changes as they happen in the running service", false);
tail->add_option("--count", replicator_command.count, "Stop after this many changes")
    ->check(kNonNegativeInteger);
tail->add_option("--timeout", replicator_command.timeout_seconds, "Stop after this many seconds")
    ->check(kNonNegativeInteger);

auto* dlq = app.add_subcommand("dlq", "The dead-letter queue of a replicator");
dlq->require_subcommand(1);
auto* dlq_list = add_replicator_command(dlq, "list", "dlq-list", "List dead letters", true);
dlq_list->add_option("--limit", replicator_command.limit, "At most this many (default 100)")
    ->check(kNonNegativeInteger);
add_replicator_command(dlq, "replay", "dlq-replay", "Send every dead letter again", true);
add_replicator_command(dlq, "purge", "dlq-purge", "Delete every dead letter", true);

try {
  app.parse(argc, argv);
} catch (const CLI::ParseError& error) {
  if (std::string unknown = UnknownCommandMessage(app, error); !unknown.empty())
    return Usage(unknown);
  std::ostringstream out, err;
  int code = app.exit(error, out, err);
  if (code != 0) code = kExitUsage;  // CLI11's own codes (106, 109, ...) mean nothing to users
  std::string printed = RedactSecrets(out.str());
  std::fwrite(printed.data(), 1, printed.size(), stdout);
  printed = RedactSecrets(err.str());
  std::fwrite(printed.data(), 1, printed.size(), stderr);
  return code;
}

SetUpLogging(global.log_level == "warn" && serve->parsed() ? "info" : global.log_level);
if (!run) return Fail("no command given; see s3db --help");
return run();
}  // namespace s3db::cli

}  // namespace
}  // namespace s3db::cli

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  try {
    return s3db::cli::Main(argc, argv);
  } catch (const std::exception& e) {
    std::string message = "s3db: internal error: " + s3db::RedactSecrets(e.what()) + "\n";
    std::fwrite(message.data(), 1, message.size(), stderr);
    return 1;
  }
}
