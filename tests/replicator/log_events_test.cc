// The plugin events of the replicator's own bookkeeping, provoked for real:
// replicator_log_error (writing the replicator_log resource fails),
// replicator_log_resource_creation_error (creating it fails), and replicator_cleanup_error
// (compacting or closing the change log fails).
#include <gtest/gtest.h>

#include "replicator/change_log.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::FastOptions;
using s3db::testing::TempDir;
using s3db::testing::TestReplicator;
using s3db::testing::WaitFor;

JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

// A memory store whose puts fail, while switched on, for keys with a given prefix.
class PrefixFaultStore final : public ObjectStore {
 public:
  explicit PrefixFaultStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  void FailPuts(std::string prefix) {
    std::lock_guard lock(mutex_);
    prefix_ = std::move(prefix);
  }
  std::atomic<int> failed{0};

  Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                         const PutOptions& options) override {
    {
      std::lock_guard lock(mutex_);
      if (!prefix_.empty() && key.substr(0, prefix_.size()) == prefix_) {
        ++failed;
        return MakeError(ErrorCode::kIo, "injected: disk full writing " + std::string(key));
      }
    }
    return inner_->Put(key, body, options);
  }
  Result<Object> Get(std::string_view key) override { return inner_->Get(key); }
  Result<ObjectInfo> Head(std::string_view key) override { return inner_->Head(key); }
  Status Delete(std::string_view key) override { return inner_->Delete(key); }
  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    return inner_->DeleteMany(keys);
  }
  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    return inner_->List(prefix, token, max_keys);
  }
  Result<ObjectInfo> Copy(std::string_view source, std::string_view target) override {
    return inner_->Copy(source, target);
  }
  std::string Describe() const override { return "prefix-fault+" + inner_->Describe(); }

 private:
  std::unique_ptr<ObjectStore> inner_;
  std::mutex mutex_;  // guards prefix_
  std::string prefix_;
};

// Collects the payloads of plugin events by name.
struct Events {
  std::mutex mutex;
  std::map<std::string, std::vector<JsonObject>> by_name;

  void Listen(ReplicatorPlugin& plugin, const std::string& name) {
    plugin.On(name, [this, name](const Json& event) {
      std::lock_guard lock(mutex);
      by_name[name].push_back(event.as_object());
    });
  }
  std::vector<JsonObject> Of(const std::string& name) {
    std::lock_guard lock(mutex);
    return by_name[name];
  }
};

class LogEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = std::make_unique<PrefixFaultStore>(NewMemoryStore());
    store_ = store.get();
    DatabaseOptions options;
    options.state_dir = dir_.str() + "/state";
    auto database = Database::Open(std::move(store), options);
    ASSERT_TRUE(database.has_value()) << database.error().ToString();
    db_ = std::move(*database);
    ResourceDefinition definition;
    definition.name = "users";
    auto users = db_->CreateResource(definition);
    ASSERT_TRUE(users.has_value());
    users_ = *users;
  }
  void TearDown() override {
    if (db_) (void)db_->Close();
  }

  void Install(ReplicatorPluginOptions options) {
    plugin_ = std::make_shared<ReplicatorPlugin>(std::move(options));
    for (const char* name : {"replicator_log_error", "replicator_log_resource_creation_error",
                             "replicator_cleanup_error"}) {
      events_.Listen(*plugin_, name);
    }
    S3DB_ASSERT_OK(db_->UsePlugin(plugin_));
  }

  ReplicatorPluginOptions PersistingOptions() {
    auto options = FastOptions();
    options.persist_replicator_log = true;
    ReplicatorConfig config;
    TestReplicator(config, ResourceMapping().Add("users"), "audit");
    options.replicators.push_back(config);
    return options;
  }

  TempDir dir_;
  PrefixFaultStore* store_ = nullptr;
  std::unique_ptr<Database> db_;
  Resource* users_ = nullptr;
  std::shared_ptr<ReplicatorPlugin> plugin_;
  Events events_;
};

TEST_F(LogEventsTest, FailedReplicatorLogWritesEmitReplicatorLogError) {
  Install(PersistingOptions());
  // First a delivery whose entry is written, so the replicator_log resource exists.
  ASSERT_TRUE(users_->Insert(Obj(R"({"id": "u0"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  ASSERT_NE(db_->FindResource("replicator_log"), nullptr);

  store_->FailPuts("resource=replicator_log/");
  ASSERT_TRUE(users_->Insert(Obj(R"({"id": "u1"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));  // also flushes the replicator log writer
  ASSERT_TRUE(WaitFor([&] { return !events_.Of("replicator_log_error").empty(); }));
  auto errors = events_.Of("replicator_log_error");
  ASSERT_EQ(errors.size(), 1u);
  const JsonObject& event = errors[0];
  EXPECT_EQ(event.at("replicator").as_string(), "audit");
  EXPECT_EQ(event.at("resource").as_string(), "users");
  EXPECT_EQ(event.at("recordId").as_string(), "u1");
  EXPECT_EQ(event.at("changeId").as_string(), "users:u1:1");
  EXPECT_NE(std::string(event.at("logError").as_string()).find("injected: disk full"),
            std::string::npos)
      << event.at("logError");
  EXPECT_GE(store_->failed.load(), 1);
  // Replication itself was not disturbed.
  EXPECT_EQ(plugin_->GetReplicatorStats("audit")->delivered, 2u);
  EXPECT_TRUE(events_.Of("replicator_log_resource_creation_error").empty());
}

TEST_F(LogEventsTest, FailedCreationOfTheLogResourceEmitsItsEventAndIsRetried) {
  Install(PersistingOptions());
  store_->FailPuts("s3db.json");  // the catalogue: creating any resource fails
  ASSERT_TRUE(users_->Insert(Obj(R"({"id": "u1"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  ASSERT_TRUE(
      WaitFor([&] { return !events_.Of("replicator_log_resource_creation_error").empty(); }));
  auto creation = events_.Of("replicator_log_resource_creation_error");
  ASSERT_EQ(creation.size(), 1u);
  EXPECT_EQ(creation[0].at("resource").as_string(), "replicator_log");
  EXPECT_NE(std::string(creation[0].at("error").as_string()).find("injected: disk full"),
            std::string::npos)
      << creation[0].at("error");
  // The entries of that batch are dropped, and said so.
  ASSERT_TRUE(WaitFor([&] { return !events_.Of("replicator_log_error").empty(); }));
  auto dropped = events_.Of("replicator_log_error");
  EXPECT_EQ(dropped[0].at("resource").as_string(), "replicator_log");
  EXPECT_EQ(dropped[0].at("logError").as_string(),
            "1 replicator log entries dropped: the resource 'replicator_log' is not available");
  EXPECT_EQ(db_->FindResource("replicator_log"), nullptr);

  // Once the store works again the creation is retried (every 5 s) and entries are stored.
  store_->FailPuts("");
  ASSERT_TRUE(WaitFor(
      [&] {
        (void)users_->Upsert(Obj(R"({"id": "u2"})"));
        (void)plugin_->WaitIdle(1s);
        Resource* log = db_->FindResource("replicator_log");
        if (!log) return false;
        auto entries = log->List();
        return entries && !entries->empty();
      },
      15s));
  EXPECT_EQ(events_.Of("replicator_log_resource_creation_error").size(), 1u);
}

// Forwards to an in-memory change log; compaction and close fail once switched on.
class FailingCleanupLog final : public ChangeLog {
 public:
  explicit FailingCleanupLog(std::atomic<bool>& fail) : inner_(NewMemoryChangeLog()), fail_(fail) {}
  Result<std::uint64_t> Append(const Change& c) override { return inner_->Append(c); }
  Status Prepare(const Change& c) override { return inner_->Prepare(c); }
  Status Abandon(const Change& c) override { return inner_->Abandon(c); }
  Result<std::vector<Change>> ListIntents() override { return inner_->ListIntents(); }
  Result<std::vector<std::uint64_t>> AppendMany(const std::vector<LoggedChange>& c) override {
    return inner_->AppendMany(c);
  }
  Result<std::vector<LoggedChange>> ReadFrom(std::uint64_t after, std::size_t limit) override {
    return inner_->ReadFrom(after, limit);
  }
  std::uint64_t LastSequence() const override { return inner_->LastSequence(); }
  bool WaitForAppend(std::uint64_t after, std::chrono::milliseconds timeout) override {
    return inner_->WaitForAppend(after, timeout);
  }
  Result<std::optional<std::uint64_t>> GetCheckpoint(std::string_view r) override {
    return inner_->GetCheckpoint(r);
  }
  Status SetCheckpoint(std::string_view r, std::uint64_t s) override {
    return inner_->SetCheckpoint(r, s);
  }
  Result<std::uint64_t> Compact(const std::vector<std::string>& replicators) override {
    if (fail_.load()) return MakeError(ErrorCode::kIo, "injected: compaction I/O error");
    return inner_->Compact(replicators);
  }
  Result<std::uint64_t> CountChanges() override { return inner_->CountChanges(); }
  Result<std::int64_t> AddDeadLetter(const DeadLetter& l) override {
    return inner_->AddDeadLetter(l);
  }
  Result<std::vector<DeadLetter>> ListDeadLetters(std::string_view r, std::size_t n) override {
    return inner_->ListDeadLetters(r, n);
  }
  Result<std::uint64_t> CountDeadLetters(std::string_view r) override {
    return inner_->CountDeadLetters(r);
  }
  Result<std::vector<std::uint64_t>> RequeueDeadLetters(std::string_view r) override {
    return inner_->RequeueDeadLetters(r);
  }
  Result<std::uint64_t> PurgeDeadLetters(std::string_view r) override {
    return inner_->PurgeDeadLetters(r);
  }
  Result<std::optional<std::string>> GetState(std::string_view k) override {
    return inner_->GetState(k);
  }
  Status SetState(std::string_view k, std::string_view v) override {
    return inner_->SetState(k, v);
  }
  Status DeleteState(std::string_view k) override { return inner_->DeleteState(k); }
  Status Close() override {
    (void)inner_->Close();
    if (fail_.load()) return MakeError(ErrorCode::kIo, "injected: close failed");
    return Ok();
  }

 private:
  std::unique_ptr<ChangeLog> inner_;
  std::atomic<bool>& fail_;
};

TEST_F(LogEventsTest, FailedCompactionAndCloseEmitReplicatorCleanupError) {
  std::atomic<bool> fail{false};
  auto options = FastOptions();
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping().Add("users"), "audit");
  options.replicators.push_back(config);
  options.change_log = [&fail](const ChangeLogContext&) -> Result<std::unique_ptr<ChangeLog>> {
    return std::unique_ptr<ChangeLog>(new FailingCleanupLog(fail));
  };
  Install(std::move(options));
  ASSERT_TRUE(users_->Insert(Obj(R"({"id": "u1"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  fail = true;
  // The housekeeper compacts every second.
  ASSERT_TRUE(WaitFor([&] { return !events_.Of("replicator_cleanup_error").empty(); }, 5s));
  auto compaction = events_.Of("replicator_cleanup_error").front();
  EXPECT_EQ(compaction.at("replicator").as_string(), "all");
  EXPECT_EQ(compaction.at("error").as_string(),
            "change log compaction failed: injected: compaction I/O error");

  auto stopped = db_->Close();
  EXPECT_FALSE(stopped.has_value());
  auto all = events_.Of("replicator_cleanup_error");
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all.back().at("replicator").as_string(), "all");
  EXPECT_EQ(all.back().at("error").as_string(), "injected: close failed");
  db_.reset();
}

}  // namespace
}  // namespace s3db::replicator
