// Helpers for the replicator tests: a controllable "test" driver, a store that can be taken
// down, and database/plugin set-up with fast retry settings.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "s3db/database.h"
#include "s3db/replicator/driver.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/storage.h"
#include "test_util.h"

namespace s3db::testing {

// What a test driver received, and how it answers.
struct TestSink {
  std::mutex mutex;  // guards delivered, batches, behaviour
  std::vector<replicator::DeliveryItem> delivered;   // items answered "delivered", in order
  std::vector<std::vector<std::string>> batches;     // change ids of every Deliver call
  // Answer for one item; unset: delivered.
  std::function<replicator::DeliveryResult(const replicator::DeliveryItem&)> behaviour;
  std::atomic<int> deliver_calls{0};
  std::atomic<int> flushes{0};
  std::atomic<int> starts{0};

  void SetBehaviour(
      std::function<replicator::DeliveryResult(const replicator::DeliveryItem&)> answer) {
    std::lock_guard lock(mutex);
    behaviour = std::move(answer);
  }
  std::vector<replicator::DeliveryItem> Delivered() {
    std::lock_guard lock(mutex);
    return delivered;
  }
  std::size_t DeliveredCount() {
    std::lock_guard lock(mutex);
    return delivered.size();
  }
};

class TestDriver : public replicator::Driver {
 public:
  explicit TestDriver(std::shared_ptr<TestSink> sink) : sink_(std::move(sink)) {}
  Status Start() override {
    ++sink_->starts;
    return Ok();
  }
  std::vector<replicator::DeliveryResult> Deliver(std::span<const replicator::DeliveryItem> batch,
                                                  std::chrono::milliseconds) override {
    ++sink_->deliver_calls;
    std::vector<replicator::DeliveryResult> results;
    std::lock_guard lock(sink_->mutex);
    std::vector<std::string> ids;
    for (const auto& item : batch) {
      ids.push_back(item.change_id);
      auto result = sink_->behaviour ? sink_->behaviour(item)
                                     : replicator::DeliveryResult::Delivered();
      if (result.outcome == replicator::Outcome::kDelivered) sink_->delivered.push_back(item);
      results.push_back(std::move(result));
    }
    sink_->batches.push_back(std::move(ids));
    return results;
  }
  Status Flush() override {
    ++sink_->flushes;
    return Ok();
  }

 private:
  std::shared_ptr<TestSink> sink_;
};

// Sinks by name, for the registered "test" driver (config {"sink": "<name>"}).
inline std::shared_ptr<TestSink> Sink(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<TestSink>> sinks;
  std::lock_guard lock(mutex);
  auto& sink = sinks[name];
  if (!sink) sink = std::make_shared<TestSink>();
  return sink;
}

inline void RegisterTestDriver() {
  static std::once_flag once;
  std::call_once(once, [] {
    replicator::RegisterDriver(
        "test", [](const JsonObject& config, const replicator::DriverContext&)
                    -> Result<std::unique_ptr<replicator::Driver>> {
          const Json* name = config.if_contains("sink");
          if (!name || !name->is_string()) {
            return MakeError(ErrorCode::kInvalidArgument, "sink: required");
          }
          return std::unique_ptr<replicator::Driver>(
              new TestDriver(Sink(std::string(name->get_string()))));
        });
  });
}

// A replicator config for the "test" driver with a fresh sink; returns the sink.
inline std::shared_ptr<TestSink> TestReplicator(replicator::ReplicatorConfig& config,
                                                replicator::ResourceMapping mapping,
                                                std::string id = "") {
  RegisterTestDriver();
  std::string name = "sink-" + UniqueToken();
  config.driver = "test";
  config.id = std::move(id);
  config.resources = std::move(mapping);
  config.config["sink"] = name;
  return Sink(name);
}

// Options with fast retries for tests.
inline replicator::ReplicatorPluginOptions FastOptions() {
  replicator::ReplicatorPluginOptions options;
  options.retry_base_ms = 5;
  options.max_backoff_ms = 50;
  options.linger_ms = 1;
  return options;
}

// A memory database whose state lives in `state_dir`.
inline std::unique_ptr<Database> MemoryDatabase(const std::string& state_dir) {
  DatabaseOptions options;
  options.state_dir = state_dir;
  auto database = Database::Open(NewMemoryStore(), options);
  EXPECT_TRUE(database.has_value()) << database.error().ToString();
  return std::move(*database);
}

// Records of a resource by id, without the fields s3db manages.
inline std::map<std::string, JsonObject> RecordsById(Resource& resource) {
  std::map<std::string, JsonObject> out;
  auto records = resource.List();
  EXPECT_TRUE(records.has_value());
  if (!records) return out;
  for (auto& record : *records) {
    std::string id(record.at("id").get_string());
    out[id] = std::move(record);
  }
  return out;
}

// Waits until `predicate` holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& predicate,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return predicate();
}

// An object store that can be switched off: every call then fails with kUnavailable.
class SwitchableStore final : public ObjectStore {
 public:
  explicit SwitchableStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  void SetDown(bool down) { down_.store(down); }
  std::atomic<int> failed_calls{0};
  std::atomic<int> gets{0};  // Get calls, down or not

  Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                         const PutOptions& options) override {
    if (Down()) return Unavailable();
    return inner_->Put(key, body, options);
  }
  Result<Object> Get(std::string_view key) override {
    ++gets;
    if (Down()) return Unavailable();
    return inner_->Get(key);
  }
  Result<ObjectInfo> Head(std::string_view key) override {
    if (Down()) return Unavailable();
    return inner_->Head(key);
  }
  Status Delete(std::string_view key) override {
    if (Down()) return Unavailable();
    return inner_->Delete(key);
  }
  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    if (Down()) return Unavailable();
    return inner_->DeleteMany(keys);
  }
  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    if (Down()) return Unavailable();
    return inner_->List(prefix, token, max_keys);
  }
  Result<ObjectInfo> Copy(std::string_view source, std::string_view target) override {
    if (Down()) return Unavailable();
    return inner_->Copy(source, target);
  }
  std::string Describe() const override { return "switchable+" + inner_->Describe(); }

 private:
  bool Down() {
    if (!down_.load()) return false;
    ++failed_calls;
    return true;
  }
  static tl::unexpected<Error> Unavailable() {
    return MakeError(ErrorCode::kUnavailable, "Connection failed (injected outage)");
  }
  std::unique_ptr<ObjectStore> inner_;
  std::atomic<bool> down_{false};
};

}  // namespace s3db::testing
