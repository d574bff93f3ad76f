// Local state the CLI keeps next to the replicator's change log (in the database state dir):
//
//   <state dir>/s3db-cli.lock         held (flock) by the one process that runs the replicator
//                                     plugin on this state dir; holds {"pid":…,"url":…}, where
//                                     "url" is the admin API of a running `s3db run`
//   <state dir>/s3db-cli-replicators.json   {"<id>": false, …}: replicators disabled with
//                                     `s3db replicators disable`, applied at every start
//
// The change log must have one writer process: each process keeps its own sequence counter and
// dispatchers. The lock makes a second process either talk to the running service over HTTP
// or stop with a message, never open the same log.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::cli {

// An exclusive, advisory lock on the state dir; released by the destructor (or process exit).
class ServiceLock {
 public:
  ServiceLock() = default;
  ServiceLock(ServiceLock&& other) noexcept;
  ServiceLock& operator=(ServiceLock&& other) noexcept;
  ~ServiceLock();

  // Takes the lock without waiting. Returns nullopt when another process holds it; `holder`
  // then receives what it wrote (may be empty). Creates the folder when missing.
  static Result<std::optional<ServiceLock>> TryAcquire(const std::string& state_dir,
                                                       JsonObject* holder);
  // Replaces what the lock file says about this process.
  Status Describe(const JsonObject& info);

  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Replicator ids the operator disabled (false) or enabled (true) from the CLI.
Result<std::map<std::string, bool>> LoadReplicatorOverrides(const std::string& state_dir);
Status SaveReplicatorOverride(const std::string& state_dir, const std::string& id, bool enabled);
// Applies the overrides to `options` (by effective id "<driver>-<index>" when no id is given).
void ApplyReplicatorOverrides(const std::map<std::string, bool>& overrides,
                              replicator::ReplicatorPluginOptions& options);

// True for a host that only this machine can reach: 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(std::string_view host);

// The warning `s3db run` prints when it listens on `host`, "" for a loopback host: the admin
// API has no authentication. `where` says how to change the address.
std::string UnauthenticatedListenWarning(std::string_view host, const std::string& url,
                                         const std::string& where);

// The effective id of the replicator at `index`, as the engine names it.
std::string EffectiveReplicatorId(const replicator::ReplicatorConfig& config, std::size_t index);

}  // namespace s3db::cli
