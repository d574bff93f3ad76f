#include "s3db/database.h"

#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "core/thread_pool.h"

namespace s3db {
namespace {

constexpr std::string_view kCatalogueKey = "s3db.json";
constexpr int kCatalogueFormat = 1;

std::string NowIso() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

Status ValidateResourceName(std::string_view name) {
  if (name.empty() || name.size() > 100) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "resource name must have 1 to 100 characters, got " + std::to_string(name.size()));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "resource name '" + std::string(name) +
                           "' may only contain letters, digits, '_' and '-'");
    }
  }
  return Ok();
}

JsonObject DefinitionToJson(const ResourceDefinition& definition) {
  JsonObject out;
  out["attributes"] = definition.attributes;
  out["timestamps"] = definition.timestamps;
  out["idSize"] = definition.id_size;
  return out;
}

std::string DefaultStateDir(const ObjectStore& store) {
  std::string description = store.Describe();
  if (description.rfind("file://", 0) == 0) return description.substr(7) + "/.s3db-state";
  std::string name;
  for (char c : description.substr(
           description.find("://") == std::string::npos ? 0 : description.find("://") + 3)) {
    name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  }
  if (description.rfind("memory://", 0) == 0) {
    return (std::filesystem::temp_directory_path() /
            ("s3db-state-" + std::to_string(::getpid()) + "-" + name))
        .string();
  }
  return "./.s3db-state/" + name;
}

}  // namespace

Database::Database(std::unique_ptr<ObjectStore> store, DatabaseOptions options)
    : store_(std::move(store)), options_(std::move(options)) {
  state_dir_ = options_.state_dir.empty() ? DefaultStateDir(*store_) : options_.state_dir;
  pool_ = std::make_unique<ThreadPool>(options_.parallelism > 1 ? options_.parallelism - 1 : 0);
}

Database::~Database() { (void)Close(); }

Result<std::unique_ptr<Database>> Database::Connect(std::string_view connection_string,
                                                    DatabaseOptions options) {
  S3DB_ASSIGN_OR_RETURN(auto store, OpenObjectStore(connection_string, options.store));
  return Open(std::move(store), std::move(options));
}

Result<std::unique_ptr<Database>> Database::Open(std::unique_ptr<ObjectStore> store,
                                                 DatabaseOptions options) {
  if (!store) return MakeError(ErrorCode::kInvalidArgument, "Database::Open: store is null");
  std::unique_ptr<Database> database(new Database(std::move(store), std::move(options)));
  S3DB_RETURN_IF_ERROR(database->LoadCatalogue());
  return database;
}

Status Database::LoadCatalogue() {
  auto object = store_->Get(kCatalogueKey);
  if (!object) {
    if (object.error().code == ErrorCode::kNotFound) return Ok();
    return MakeError(object.error().code, "cannot read the catalogue " +
                                              std::string(kCatalogueKey) + " at " + Describe() +
                                              ": " + object.error().message);
  }
  auto parsed = ParseJsonObject(object->body);
  if (!parsed) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the catalogue " + std::string(kCatalogueKey) + " at " + Describe() +
                         " is not valid JSON: " + parsed.error().message);
  }
  std::unique_lock lock(resources_mutex_);
  catalogue_ = std::move(*parsed);
  auto* resources = catalogue_.if_contains("resources");
  if (!resources || !resources->is_object()) return Ok();
  for (const auto& [name, entry] : resources->get_object()) {
    if (!entry.is_object()) continue;
    const auto& resource = entry.get_object();
    const auto* current = resource.if_contains("currentVersion");
    const auto* versions = resource.if_contains("versions");
    if (!current || !current->is_string() || !versions || !versions->is_object()) continue;
    const auto* version = versions->get_object().if_contains(current->get_string());
    if (!version || !version->is_object()) continue;
    const auto& body = version->get_object();
    ResourceDefinition definition;
    definition.name = std::string(name);
    if (auto* a = body.if_contains("attributes"); a && a->is_object())
      definition.attributes = a->get_object();
    if (auto* t = body.if_contains("timestamps"); t && t->is_bool())
      definition.timestamps = t->get_bool();
    if (auto* s = body.if_contains("idSize"); s && s->is_int64())
      definition.id_size = static_cast<int>(s->get_int64());
    auto schema = Schema::Parse(definition.attributes);
    if (!schema) {
      return MakeError(ErrorCode::kInvalidArgument, "the catalogue entry of resource '" +
                                                        std::string(name) +
                                                        "' is invalid: " + schema.error().message);
    }
    std::string key = definition.name;
    resources_.emplace(std::move(key), std::make_unique<Resource>(*this, std::move(definition),
                                                                  std::move(*schema)));
  }
  return Ok();
}

Status Database::SaveCatalogueEntry(const ResourceDefinition& definition) {
  for (int attempt = 0; attempt <= options_.max_conflict_retries; ++attempt) {
    JsonObject catalogue;
    std::string etag;
    auto object = store_->Get(kCatalogueKey);
    if (object) {
      S3DB_ASSIGN_OR_RETURN(catalogue, ParseJsonObject(object->body));
      etag = object->info.etag;
    } else if (object.error().code != ErrorCode::kNotFound) {
      return tl::unexpected(object.error());
    }
    catalogue["format"] = kCatalogueFormat;
    catalogue["s3dbVersion"] = "0.1.0";
    auto& resources = catalogue["resources"];
    if (!resources.is_object()) resources = JsonObject();
    auto& entry = resources.get_object()[definition.name];
    if (!entry.is_object()) entry = JsonObject();
    auto& versions = entry.get_object()["versions"];
    if (!versions.is_object()) versions = JsonObject();
    std::string version = "v" + std::to_string(versions.get_object().size() + 1);
    JsonObject body = DefinitionToJson(definition);
    body["createdAt"] = NowIso();
    versions.get_object()[version] = std::move(body);
    entry.get_object()["currentVersion"] = version;

    PutOptions options;
    if (etag.empty()) {
      options.if_none_match = true;
    } else {
      options.if_match = etag;
    }
    auto put = store_->Put(kCatalogueKey, ToJson(catalogue), options);
    if (put) {
      catalogue_ = std::move(catalogue);
      return Ok();
    }
    if (put.error().code != ErrorCode::kConflict) return tl::unexpected(put.error());
  }
  return MakeError(ErrorCode::kConflict,
                   "the catalogue kept changing under concurrent writers; retry CreateResource");
}

Result<Resource*> Database::CreateResource(ResourceDefinition definition) {
  S3DB_RETURN_IF_ERROR(ValidateResourceName(definition.name));
  if (definition.id_size < 8 || definition.id_size > 255) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "resource '" + definition.name + "': idSize must be between 8 and 255");
  }
  auto schema = Schema::Parse(definition.attributes);
  if (!schema) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "resource '" + definition.name + "': " + schema.error().message);
  }
  Resource* created = nullptr;
  {
    std::unique_lock lock(resources_mutex_);
    auto it = resources_.find(definition.name);
    if (it != resources_.end()) {
      const auto& existing = it->second->definition();
      bool same = existing.attributes == definition.attributes &&
                  existing.timestamps == definition.timestamps &&
                  existing.id_size == definition.id_size;
      if (same) {
        if (definition.id_generator) {
          // The generator is not stored in the catalogue; keep the caller's.
          auto replacement =
              std::make_unique<Resource>(*this, std::move(definition), std::move(*schema));
          it->second.swap(replacement);
          retired_resources_.push_back(std::move(replacement));
        }
        return it->second.get();
      }
    }
    S3DB_RETURN_IF_ERROR(SaveCatalogueEntry(definition));
    auto resource = std::make_unique<Resource>(*this, std::move(definition), std::move(*schema));
    created = resource.get();
    if (it != resources_.end()) {
      it->second.swap(resource);
      retired_resources_.push_back(std::move(resource));
    } else {
      resources_.emplace(created->name(), std::move(resource));
    }
  }
  for (const auto& plugin : Plugins()) plugin->OnResourceCreated(*created);
  JsonObject payload;
  payload["resource"] = created->name();
  Emit("resource:created", payload);
  return created;
}

Result<Resource*> Database::GetResource(std::string_view name) {
  if (Resource* resource = FindResource(name)) return resource;
  std::string known;
  for (const auto& each : ListResources()) known += (known.empty() ? "" : ", ") + each;
  return MakeError(ErrorCode::kNotFound,
                   "resource '" + std::string(name) + "' does not exist" +
                       (known.empty() ? " (no resources yet)" : " (known: " + known + ")"));
}

Resource* Database::FindResource(std::string_view name) {
  std::shared_lock lock(resources_mutex_);
  auto it = resources_.find(name);
  return it == resources_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Database::ListResources() const {
  std::shared_lock lock(resources_mutex_);
  std::vector<std::string> names;
  for (const auto& [name, unused] : resources_) names.push_back(name);
  return names;
}

Result<JsonObject> Database::ResourceDefinitionJson(std::string_view name) const {
  std::shared_lock lock(resources_mutex_);
  auto it = resources_.find(name);
  if (it == resources_.end()) {
    return MakeError(ErrorCode::kNotFound, "resource '" + std::string(name) + "' does not exist");
  }
  return DefinitionToJson(it->second->definition());
}

Status Database::UsePlugin(std::shared_ptr<Plugin> plugin) {
  if (!plugin) return MakeError(ErrorCode::kInvalidArgument, "UsePlugin: plugin is null");
  S3DB_RETURN_IF_ERROR(plugin->Install(*this));
  {
    std::shared_lock lock(resources_mutex_);
    for (const auto& [name, resource] : resources_) plugin->OnResourceCreated(*resource);
  }
  S3DB_RETURN_IF_ERROR(plugin->Start());
  std::unique_lock lock(plugins_mutex_);
  plugins_.push_back(std::move(plugin));
  closed_ = false;
  return Ok();
}

std::vector<std::shared_ptr<Plugin>> Database::Plugins() const {
  std::shared_lock lock(plugins_mutex_);
  return plugins_;
}

Status Database::Close() {
  std::vector<std::shared_ptr<Plugin>> plugins;
  {
    std::unique_lock lock(plugins_mutex_);
    if (closed_) return Ok();
    closed_ = true;
    plugins = plugins_;
  }
  Status first = Ok();
  for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) {
    auto status = (*it)->Stop();
    if (!status && first) first = status;
  }
  return first;
}

bool Database::IsClosed() const {
  std::shared_lock lock(plugins_mutex_);
  return closed_;
}

std::size_t Database::On(std::string event, EventHandler handler) {
  std::lock_guard lock(events_mutex_);
  std::size_t handle = next_handle_++;
  handlers_.emplace(handle, std::make_pair(std::move(event), std::move(handler)));
  return handle;
}

void Database::Off(std::size_t handle) {
  std::lock_guard lock(events_mutex_);
  handlers_.erase(handle);
}

void Database::Emit(std::string_view event, const Json& payload) {
  std::vector<EventHandler> matching;
  {
    std::lock_guard lock(events_mutex_);
    for (const auto& [handle, entry] : handlers_) {
      if (entry.first == event) matching.push_back(entry.second);
    }
  }
  for (const auto& handler : matching) handler(payload);
}

ThreadPool& Database::pool() { return *pool_; }

Status Database::PrepareChange(const Change& change) {
  std::shared_lock lock(plugins_mutex_);
  for (std::size_t i = 0; i < plugins_.size(); ++i) {
    if (auto status = plugins_[i]->OnPrepare(change); !status) {
      for (std::size_t j = 0; j < i; ++j) plugins_[j]->OnAbandon(change);
      return status;
    }
  }
  return Ok();
}

void Database::AbandonChange(const Change& change) {
  std::shared_lock lock(plugins_mutex_);
  for (const auto& plugin : plugins_) plugin->OnAbandon(change);
}

Status Database::DeliverChange(const Change& change) {
  std::shared_lock lock(plugins_mutex_);
  for (const auto& plugin : plugins_) {
    S3DB_RETURN_IF_ERROR(plugin->OnChange(change));
  }
  return Ok();
}

}  // namespace s3db
