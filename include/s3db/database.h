// The s3db database: resources on an object store, a catalogue of their definitions
// ("s3db.json" under the prefix), plugins and database-level events.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/plugin.h"
#include "s3db/resource.h"
#include "s3db/storage.h"

namespace s3db {

class ThreadPool;

struct DatabaseOptions {
  ObjectStoreOptions store;
  // Folder for local state that plugins keep (the replicator's change log). Empty: for
  // file:// databases "<path>/.s3db-state", otherwise "./.s3db-state/<bucket>".
  std::string state_dir;
  // Threads used by InsertMany / GetMany / DeleteMany / List / Query.
  std::size_t parallelism = 16;
  // Conflicting conditional writes are retried this many times (with a growing random
  // back-off) before kConflict.
  int max_conflict_retries = 30;
};

using EventHandler = std::function<void(const Json& payload)>;

class Database {
 public:
  // Opens the store and loads the catalogue.
  static Result<std::unique_ptr<Database>> Connect(std::string_view connection_string,
                                                   DatabaseOptions options = {});
  // Uses an already opened store (tests, fault injection).
  static Result<std::unique_ptr<Database>> Open(std::unique_ptr<ObjectStore> store,
                                                DatabaseOptions options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Creates a resource, or updates its definition (a new catalogue version) when it differs.
  Result<Resource*> CreateResource(ResourceDefinition definition);
  // kNotFound with the list of known resources.
  Result<Resource*> GetResource(std::string_view name);
  Resource* FindResource(std::string_view name);
  std::vector<std::string> ListResources() const;
  // The catalogue entry of a resource: {"attributes":…, "timestamps":…, "idSize":…}.
  Result<JsonObject> ResourceDefinitionJson(std::string_view name) const;

  // Installs and starts a plugin. Plugins see every resource, also those created later.
  Status UsePlugin(std::shared_ptr<Plugin> plugin);
  std::vector<std::shared_ptr<Plugin>> Plugins() const;
  // Stops every plugin (in reverse order). Later writes fail with kUnavailable, so no change
  // is made that the plugins would miss. Called by the destructor too.
  Status Close();
  bool IsClosed() const;

  // Database-level events ("resource:created", "replicator:success", …).
  // Returns a handle for Off.
  std::size_t On(std::string event, EventHandler handler);
  void Off(std::size_t handle);
  void Emit(std::string_view event, const Json& payload);

  ObjectStore& store() { return *store_; }
  const DatabaseOptions& options() const { return options_; }
  const std::string& state_dir() const { return state_dir_; }
  // The store description without secrets.
  std::string Describe() const { return store_->Describe(); }

  ThreadPool& pool();
  // Delivers one change to every plugin; first error wins. Used by Resource.
  Status DeliverChange(const Change& change);
  // Tells every plugin a change is about to be stored (OnPrepare); on an error, the plugins
  // already told are told it was abandoned. Used by Resource.
  Status PrepareChange(const Change& change);
  // Tells every plugin a prepared change was not stored. Used by Resource.
  void AbandonChange(const Change& change);

 private:
  Database(std::unique_ptr<ObjectStore> store, DatabaseOptions options);
  Status LoadCatalogue();
  Status SaveCatalogueEntry(const ResourceDefinition& definition);

  std::unique_ptr<ObjectStore> store_;
  DatabaseOptions options_;
  std::string state_dir_;
  std::unique_ptr<ThreadPool> pool_;

  mutable std::shared_mutex resources_mutex_;  // guards resources_ and catalogue_
  std::map<std::string, std::unique_ptr<Resource>, std::less<>> resources_;
  // Resources replaced by a newer definition stay alive: callers may still hold pointers.
  std::vector<std::unique_ptr<Resource>> retired_resources_;
  JsonObject catalogue_;

  mutable std::shared_mutex plugins_mutex_;  // guards plugins_
  std::vector<std::shared_ptr<Plugin>> plugins_;

  mutable std::mutex events_mutex_;  // guards handlers_ and next_handle_
  std::map<std::size_t, std::pair<std::string, EventHandler>> handlers_;
  std::size_t next_handle_ = 1;
  bool closed_ = false;
};

}  // namespace s3db
