// The process-wide driver registry. The built-in drivers are registered on first use, before
// any registration by the program, so a program can replace a built-in driver.
#include <map>
#include <mutex>

#include "s3db/replicator/driver.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

struct Registry {
  std::mutex mutex;  // guards factories and destination_keys
  std::map<std::string, DriverFactory, std::less<>> factories;
  std::map<std::string, std::vector<std::string>, std::less<>> destination_keys;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();  // never destroyed: used until exit
  return *registry;
}

// True on the thread that is registering the built-in drivers (they call RegisterDriver).
thread_local bool registering_builtins = false;

void EnsureBuiltinDrivers() {
  if (registering_builtins) return;
  static std::once_flag once;
  std::call_once(once, [] {
    registering_builtins = true;
    RegisterBuiltinDrivers();
    registering_builtins = false;
  });
}

}  // namespace

void RegisterDriver(std::string name, DriverFactory factory) {
  EnsureBuiltinDrivers();
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  registry.factories[std::move(name)] = std::move(factory);
}

std::optional<DriverFactory> FindDriver(std::string_view name) {
  EnsureBuiltinDrivers();
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  auto it = registry.factories.find(name);
  if (it == registry.factories.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> RegisteredDrivers() {
  EnsureBuiltinDrivers();
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  std::vector<std::string> names;
  for (const auto& [name, factory] : registry.factories) names.push_back(name);
  return names;
}

void DeclareDestinationKeys(std::string driver, std::vector<std::string> keys) {
  EnsureBuiltinDrivers();
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  registry.destination_keys[std::move(driver)] = std::move(keys);
}

std::vector<std::string> DestinationKeys(std::string_view driver) {
  EnsureBuiltinDrivers();
  Registry& registry = GetRegistry();
  std::lock_guard lock(registry.mutex);
  auto it = registry.destination_keys.find(driver);
  if (it == registry.destination_keys.end()) return {};
  return it->second;
}

}  // namespace s3db::replicator
