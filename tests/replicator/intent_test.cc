// Intents: a change whose write reached the source while its process died (or failed in a way
// that hid the write) is still recorded and replicated, exactly once; an intent whose write
// never happened is forgotten.
#include <gtest/gtest.h>

#include "fault_store.h"
#include "replicator/change_log.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::TempDir;

// Stands for a process that dies after the store write and before the change is recorded:
// installed ahead of the replicator, it fails every OnChange, so the replicator never sees it.
class DiesBeforeRecording : public Plugin {
 public:
  std::string_view Name() const override { return "dies-before-recording"; }
  Status OnChange(const Change& change) override {
    return MakeError(ErrorCode::kUnavailable, "gone before recording " + change.ChangeId());
  }
};

class IntentTest : public ::testing::Test {
 protected:
  std::unique_ptr<Database> Open() {
    DatabaseOptions options;
    options.state_dir = dir_.str() + "/state";
    auto database = Database::Connect("file://" + dir_.str() + "/source", options);
    EXPECT_TRUE(database.has_value()) << database.error().ToString();
    ResourceDefinition definition;
    definition.name = "items";
    EXPECT_TRUE((*database)->CreateResource(definition).has_value());
    return std::move(*database);
  }

  std::shared_ptr<ReplicatorPlugin> Replicator() {
    s3db::testing::RegisterTestDriver();
    ReplicatorPluginOptions options = s3db::testing::FastOptions();
    ReplicatorConfig config;
    config.id = "copy";
    config.driver = "test";
    config.resources.Add("items");
    config.config["sink"] = sink_name_;
    options.replicators.push_back(config);
    return std::make_shared<ReplicatorPlugin>(options);
  }

  std::vector<std::string> DeliveredIds() {
    std::vector<std::string> ids;
    for (const auto& item : sink_->Delivered()) ids.push_back(item.change_id);
    return ids;
  }

  TempDir dir_;
  std::string sink_name_ = "intents-" + s3db::testing::UniqueToken();
  std::shared_ptr<s3db::testing::TestSink> sink_ = s3db::testing::Sink(sink_name_);
};

TEST_F(IntentTest, AWriteStoredButNeverRecordedIsReplicatedAfterTheRestart) {
  {
    auto database = Open();
    S3DB_ASSERT_OK(database->UsePlugin(std::make_shared<DiesBeforeRecording>()));
    auto plugin = Replicator();
    S3DB_ASSERT_OK(database->UsePlugin(plugin));
    Resource& items = *database->FindResource("items");
    // Every write is stored, and "the process dies" before each is recorded.
    EXPECT_FALSE(items.Insert({{"id", "a"}, {"n", 1}}).has_value());
    EXPECT_FALSE(items.Insert({{"id", "b"}, {"n", 2}}).has_value());
    EXPECT_FALSE(items.Update("a", {{"n", 3}}).has_value());
    EXPECT_FALSE(items.Delete("b").has_value());
    S3DB_ASSERT_OK(plugin->WaitIdle(10s));
    EXPECT_EQ(DeliveredIds(), std::vector<std::string>{}) << "nothing was recorded yet";
    (void)database->Close();
  }
  auto database = Open();
  auto plugin = Replicator();
  S3DB_ASSERT_OK(database->UsePlugin(plugin));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  auto ids = DeliveredIds();
  std::sort(ids.begin(), ids.end());
  // "items:a:1" was never recorded either: DiesBeforeRecording refused every change.
  EXPECT_EQ(ids, (std::vector<std::string>{"items:a:1", "items:a:2", "items:b:1", "items:b:2"}));
  for (const auto& item : sink_->Delivered()) {
    if (item.change_id == "items:a:2") {
      EXPECT_EQ(item.action, Action::kUpdate);
      EXPECT_EQ(item.data.at("n").to_number<std::int64_t>(), 3);
    }
    if (item.change_id == "items:b:2") EXPECT_EQ(item.action, Action::kDelete);
  }
  // Resolved intents are gone: another restart replicates nothing twice.
  (void)database->Close();
  auto again = Open();
  auto plugin_again = Replicator();
  S3DB_ASSERT_OK(again->UsePlugin(plugin_again));
  S3DB_ASSERT_OK(plugin_again->WaitIdle(10s));
  EXPECT_EQ(sink_->DeliveredCount(), 4u);
  (void)again->Close();
}

TEST_F(IntentTest, AnIntentWhoseWriteNeverHappenedIsForgotten) {
  {
    auto database = Open();
    Resource& items = *database->FindResource("items");
    S3DB_ASSERT_OK(items.Insert({{"id", "a"}, {"n", 1}}).map([](auto&&) {}));
    (void)database->Close();
  }
  {
    // A process recorded these intents and died before its writes reached the store.
    SqliteChangeLogOptions options;
    options.path = dir_.str() + "/state/replicator/changes.db";
    auto log = OpenSqliteChangeLog(options);
    ASSERT_TRUE(log.has_value()) << log.error().ToString();
    Change insert;
    insert.resource = "items";
    insert.id = "never";
    insert.revision = 1;
    insert.after = JsonObject{{"id", "never"}, {"_rev", 1}};
    insert.timestamp_ms = 1;
    Change update = insert;
    update.id = "a";
    update.revision = 2;
    update.action = Action::kUpdate;
    update.after = JsonObject{{"id", "a"}, {"_rev", 2}, {"n", 9}};
    Change remove;
    remove.resource = "items";
    remove.id = "b";
    remove.revision = 1;
    remove.action = Action::kDelete;
    remove.timestamp_ms = 1;
    for (const Change& change : {insert, update, remove}) S3DB_ASSERT_OK((*log)->Prepare(change));
    S3DB_ASSERT_OK((*log)->Close());
  }
  auto database = Open();
  auto plugin = Replicator();
  S3DB_ASSERT_OK(database->UsePlugin(plugin));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  EXPECT_EQ(sink_->DeliveredCount(), 0u);
  EXPECT_EQ(database->FindResource("items")->Get("a")->at("n").to_number<std::int64_t>(), 1);
  (void)database->Close();

  SqliteChangeLogOptions options;
  options.path = dir_.str() + "/state/replicator/changes.db";
  auto log = OpenSqliteChangeLog(options);
  ASSERT_TRUE(log.has_value());
  auto intents = (*log)->ListIntents();
  ASSERT_TRUE(intents.has_value());
  EXPECT_TRUE(intents->empty());
}

TEST_F(IntentTest, AWriteWhoseAnswerWasLostSucceedsAndIsReplicatedOnce) {
  DatabaseOptions options;
  options.state_dir = dir_.str() + "/state";
  auto faulty = std::make_unique<s3db::testing::FaultInjectingStore>(NewMemoryStore());
  auto* faults = faulty.get();
  auto database = Database::Open(std::move(faulty), options);
  ASSERT_TRUE(database.has_value());
  ResourceDefinition definition;
  definition.name = "items";
  Resource* items = *(*database)->CreateResource(definition);
  auto plugin = Replicator();
  S3DB_ASSERT_OK((*database)->UsePlugin(plugin));

  faults->Inject(s3db::testing::Fault::kLostAnswer);
  auto inserted = items->Insert({{"id", "a"}, {"n", 1}});
  ASSERT_TRUE(inserted.has_value()) << inserted.error().ToString();
  faults->Inject(s3db::testing::Fault::kLostAnswer);
  auto updated = items->Update("a", {{"n", 2}});
  ASSERT_TRUE(updated.has_value()) << updated.error().ToString();
  EXPECT_EQ(updated->at("_rev").to_number<std::int64_t>(), 2) << "the update is not applied twice";
  faults->Inject(s3db::testing::Fault::kFailPut);
  EXPECT_FALSE(items->Update("a", {{"n", 3}}).has_value()) << "a put that failed fails";

  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  EXPECT_EQ(DeliveredIds(), (std::vector<std::string>{"items:a:1", "items:a:2"}));
  (void)(*database)->Close();
}

}  // namespace
}  // namespace s3db::replicator
