// The per-attempt `timeout` option: a driver call that exceeds it counts as a failed attempt
// (retryable), the replicator carries on, and an idempotent target (s3db) ends up right.
#include <gtest/gtest.h>

#include <thread>

#include "drivers/s3db/s3db_driver.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::FastOptions;
using s3db::testing::MemoryDatabase;
using s3db::testing::TempDir;
using s3db::testing::UniqueToken;
using s3db::testing::WaitFor;

JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

// How the "slow-s3db" driver behaves: its first `slow_calls` Deliver calls sleep `delay`
// before they deliver through the real s3db driver.
struct Slowness {
  std::atomic<int> slow_calls{0};
  std::chrono::milliseconds delay{0};
  std::atomic<int> calls{0};
  std::atomic<int> late_returns{0};  // slow calls that have returned
};

Slowness& SlownessOf(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Slowness>> all;
  std::lock_guard lock(mutex);
  auto& slot = all[name];
  if (!slot) slot = std::make_unique<Slowness>();
  return *slot;
}

class SlowDriver : public Driver {
 public:
  SlowDriver(std::unique_ptr<Driver> inner, Slowness& slowness)
      : inner_(std::move(inner)), slowness_(slowness) {}
  Status Start() override { return inner_->Start(); }
  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds timeout) override {
    ++slowness_.calls;
    bool slow = slowness_.slow_calls.fetch_sub(1) > 0;
    if (slow) std::this_thread::sleep_for(slowness_.delay);
    auto results = inner_->Deliver(batch, timeout);
    if (slow) ++slowness_.late_returns;
    return results;
  }
  Status Flush() override { return inner_->Flush(); }
  void Stop() override { inner_->Stop(); }

 private:
  std::unique_ptr<Driver> inner_;
  Slowness& slowness_;
};

// Registered through the driver registry like any driver: config {"connectionString": …,
// "slowness": "<name>"}.
void RegisterSlowDriver() {
  static std::once_flag once;
  std::call_once(once, [] {
    RegisterDriver(
        "slow-s3db",
        [](const JsonObject& config,
           const DriverContext& context) -> Result<std::unique_ptr<Driver>> {
          JsonObject inner_config = config;
          std::string name(config.at("slowness").get_string());
          inner_config.erase("slowness");
          S3DB_ASSIGN_OR_RETURN(std::unique_ptr<Driver> inner,
                                NewS3dbDriver(inner_config, context, nullptr));
          return std::unique_ptr<Driver>(new SlowDriver(std::move(inner), SlownessOf(name)));
        });
  });
}

TEST(ReplicatorTimeout, ASlowDriverCallCountsAsAFailedAttemptAndIsRetried) {
  RegisterSlowDriver();
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  ResourceDefinition definition;
  definition.name = "users";
  auto users = db->CreateResource(definition);
  ASSERT_TRUE(users.has_value());

  const std::string slowness_name = "slow-" + UniqueToken();
  Slowness& slowness = SlownessOf(slowness_name);
  slowness.slow_calls = 1;
  slowness.delay = 1500ms;

  const std::string bucket = "memory://timeout-" + UniqueToken();
  auto options = FastOptions();
  options.timeout_ms = 200;
  options.max_retries = 3;
  ReplicatorConfig config;
  config.id = "slow";
  config.driver = "slow-s3db";
  config.resources.Add("users");
  config.config["connectionString"] = bucket;
  config.config["slowness"] = slowness_name;
  options.replicators.push_back(config);
  auto plugin = std::make_shared<ReplicatorPlugin>(options);

  std::mutex mutex;
  std::vector<JsonObject> errors;
  std::vector<JsonObject> successes;
  plugin->On("replicator_error", [&](const Json& event) {
    std::lock_guard lock(mutex);
    errors.push_back(event.as_object());
  });
  plugin->On("replicated", [&](const Json& event) {
    std::lock_guard lock(mutex);
    successes.push_back(event.as_object());
  });
  S3DB_ASSERT_OK(db->UsePlugin(plugin));

  const auto inserted_at = std::chrono::steady_clock::now();
  ASSERT_TRUE((*users)->Insert(Obj(R"({"id": "u1", "name": "Ann"})")));

  // The engine gives up on the call after the timeout, long before the driver returns.
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard lock(mutex);
        return !errors.empty();
      },
      5s));
  const auto gave_up_after = std::chrono::steady_clock::now() - inserted_at;
  EXPECT_LT(gave_up_after, 1200ms);
  EXPECT_EQ(slowness.late_returns.load(), 0);  // the driver is still in its call
  {
    std::lock_guard lock(mutex);
    const JsonObject& error = errors.front();
    EXPECT_EQ(error.at("replicator").as_string(), "slow");
    EXPECT_EQ(error.at("recordId").as_string(), "u1");
    EXPECT_EQ(error.at("attempt").to_number<int>(), 1);
    EXPECT_TRUE(error.at("willRetry").as_bool());
    EXPECT_EQ(error.at("reason").as_string(), "retryable");
    EXPECT_NE(
        std::string(error.at("error").as_string()).find("did not answer within the 200 ms timeout"),
        std::string::npos)
        << error.at("error");
  }
  // The replicator carries on: its stats answer at once and show the failed attempt, and
  // changes made meanwhile are read.
  auto stats = plugin->GetReplicatorStats("slow");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->failed, 1u);
  EXPECT_EQ(stats->retried, 1u);
  EXPECT_EQ(stats->dead_lettered, 0u);
  EXPECT_EQ(stats->pause_reason, "timeout");
  ASSERT_TRUE((*users)->Update("u1", Obj(R"({"name": "Ann B"})")));

  // Once the late call has returned, the retry and the update are delivered.
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));
  EXPECT_EQ(slowness.late_returns.load(), 1);
  stats = plugin->GetReplicatorStats("slow");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->delivered, 2u);  // the insert (attempt 2) and the update
  EXPECT_EQ(stats->dead_letter_count, 0u);
  EXPECT_EQ(stats->state, ReplicatorState::kRunning);
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(successes.size(), 2u);
    EXPECT_EQ(successes[0].at("attempt").to_number<int>(), 2);
  }

  // The target holds the newest revision once: the late write of revision 1 and its retry
  // did not go back in time.
  auto target = Database::Connect(bucket);
  ASSERT_TRUE(target.has_value());
  auto copy = (*target)->GetResource("users");
  ASSERT_TRUE(copy.has_value());
  auto records = (*copy)->List();
  ASSERT_TRUE(records.has_value());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ(records->at(0).at("name").as_string(), "Ann B");
  EXPECT_EQ(records->at(0).at("_sourceRev").to_number<int>(), 2);
  S3DB_ASSERT_OK(db->Close());
}

TEST(ReplicatorTimeout, AnAlwaysSlowDriverDeadLettersAfterMaxRetries) {
  RegisterSlowDriver();
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  ResourceDefinition definition;
  definition.name = "users";
  auto users = db->CreateResource(definition);
  ASSERT_TRUE(users.has_value());

  const std::string slowness_name = "slow-" + UniqueToken();
  Slowness& slowness = SlownessOf(slowness_name);
  slowness.slow_calls = 1000;
  slowness.delay = 150ms;

  auto options = FastOptions();
  options.timeout_ms = 50;
  options.max_retries = 1;
  ReplicatorConfig config;
  config.id = "slow";
  config.driver = "slow-s3db";
  config.resources.Add("users");
  config.config["connectionString"] = "memory://timeout-" + UniqueToken();
  config.config["slowness"] = slowness_name;
  options.replicators.push_back(config);
  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  S3DB_ASSERT_OK(db->UsePlugin(plugin));

  ASSERT_TRUE((*users)->Insert(Obj(R"({"id": "u1"})")));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto stats = plugin->GetReplicatorStats("slow");
        return stats && stats->dead_letter_count == 1;
      },
      10s));
  auto letters = plugin->ListDeadLetters("slow");
  ASSERT_TRUE(letters.has_value());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ(letters->at(0).reason, "max_retries");
  EXPECT_EQ(letters->at(0).attempts, 2);
  EXPECT_NE(letters->at(0).error.find("timeout"), std::string::npos) << letters->at(0).error;
  // The second call is still sleeping: closing waits for it before stopping the driver.
  S3DB_ASSERT_OK(db->Close());
  EXPECT_EQ(slowness.calls.load(), 2);
  EXPECT_EQ(slowness.late_returns.load(), 2);
}

}  // namespace
}  // namespace s3db::replicator
