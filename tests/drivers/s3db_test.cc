// The s3db driver: idempotent, revision-guarded writes into another s3db database.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "drivers/s3db/s3db_driver.h"
#include "replicator/replicator_test_util.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::MemoryDatabase;
using s3db::testing::SwitchableStore;
using s3db::testing::TempDir;

JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

class S3dbDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = MemoryDatabase(dir_.str() + "/target");
    context_.replicator_id = "s3db-0";
    context_.resource_definition = [this](std::string_view name) -> std::optional<JsonObject> {
      if (name != "users") return std::nullopt;
      return source_definition_;
    };
    auto driver = NewS3dbDriver(JsonObject{}, context_, target_.get());
    ASSERT_TRUE(driver.has_value()) << driver.error().ToString();
    driver_ = std::move(*driver);
    ASSERT_TRUE(driver_->Start());
  }

  DeliveryItem Item(std::string id, std::uint64_t revision, Action action,
                    std::string_view data = "{}") {
    DeliveryItem item;
    item.source_resource = "users";
    item.target = "users";
    item.id = std::move(id);
    item.revision = revision;
    item.action = action;
    item.data = Obj(data);
    item.data["id"] = item.id;
    item.data["_rev"] = revision;
    item.change_id = "users:" + item.id + ":" + std::to_string(revision);
    return item;
  }

  std::vector<DeliveryResult> Deliver(std::vector<DeliveryItem> items) {
    return driver_->Deliver(items, 5s);
  }

  void ExpectDelivered(std::vector<DeliveryItem> items) {
    auto results = Deliver(std::move(items));
    for (const auto& result : results) {
      EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
    }
  }

  std::optional<JsonObject> TargetRecord(const std::string& resource, const std::string& id) {
    Resource* found = target_->FindResource(resource);
    if (!found) return std::nullopt;
    auto record = found->GetOrNull(id);
    EXPECT_TRUE(record.has_value());
    return record ? *record : std::nullopt;
  }

  TempDir dir_;
  std::unique_ptr<Database> target_;
  JsonObject source_definition_ =
      Obj(R"({"attributes": {"name": "string|required"}, "timestamps": true, "idSize": 22})");
  DriverContext context_;
  std::unique_ptr<Driver> driver_;
};

TEST_F(S3dbDriverTest, CreatesTheTargetFromTheSourceDefinitionAndStoresTheSourceRevision) {
  ExpectDelivered({Item("u1", 1, Action::kInsert, R"({"name": "Ann", "createdAt": "x"})")});
  auto record = TargetRecord("users", "u1");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->at("name").as_string(), "Ann");
  EXPECT_EQ(record->at("_sourceRev").to_number<int>(), 1);
  EXPECT_EQ(record->at("createdAt").as_string(), "x");  // copied, not re-stamped
  auto definition = target_->ResourceDefinitionJson("users");
  ASSERT_TRUE(definition.has_value());
  EXPECT_EQ(definition->at("attributes"), source_definition_.at("attributes"));
}

TEST_F(S3dbDriverTest, OlderAndReplayedChangesNeverOverwriteNewerData) {
  ExpectDelivered({Item("u1", 3, Action::kUpdate, R"({"name": "three"})")});
  auto written = TargetRecord("users", "u1");
  ExpectDelivered({Item("u1", 2, Action::kUpdate, R"({"name": "two"})")});
  ExpectDelivered({Item("u1", 3, Action::kUpdate, R"({"name": "three again"})")});
  auto record = TargetRecord("users", "u1");
  EXPECT_EQ(record->at("name").as_string(), "three");
  EXPECT_EQ(record->at("_rev"), written->at("_rev")) << "a replay must not write at all";
  ExpectDelivered({Item("u1", 4, Action::kUpdate, R"({"name": "four"})")});
  EXPECT_EQ(TargetRecord("users", "u1")->at("name").as_string(), "four");
}

TEST_F(S3dbDriverTest, ADeleteIsNotUndoneByAnOlderReplayedInsert) {
  ExpectDelivered({Item("u1", 1, Action::kInsert, R"({"name": "Ann"})")});
  ExpectDelivered({Item("u1", 2, Action::kDelete, R"({"name": "Ann"})")});
  EXPECT_FALSE(TargetRecord("users", "u1").has_value());
  ExpectDelivered({Item("u1", 1, Action::kInsert, R"({"name": "Ann"})")});
  EXPECT_FALSE(TargetRecord("users", "u1").has_value()) << "replay resurrected a deleted record";
  ExpectDelivered({Item("u1", 3, Action::kInsert, R"({"name": "Ann again"})")});
  EXPECT_EQ(TargetRecord("users", "u1")->at("name").as_string(), "Ann again");
}

TEST_F(S3dbDriverTest, AnOlderDeleteDoesNotRemoveANewerRecord) {
  ExpectDelivered({Item("u1", 5, Action::kInsert, R"({"name": "Ann"})")});
  ExpectDelivered({Item("u1", 4, Action::kDelete)});
  EXPECT_TRUE(TargetRecord("users", "u1").has_value());
  ExpectDelivered({Item("missing", 2, Action::kDelete)});  // deleting a missing record is fine
}

TEST_F(S3dbDriverTest, AppliesSeveralChangesOfOneRecordInBatchOrder) {
  ExpectDelivered({Item("u1", 1, Action::kInsert, R"({"name": "a"})"),
                   Item("u2", 1, Action::kInsert, R"({"name": "b"})"),
                   Item("u1", 2, Action::kUpdate, R"({"name": "c"})"),
                   Item("u2", 2, Action::kDelete, R"({"name": "b"})")});
  EXPECT_EQ(TargetRecord("users", "u1")->at("name").as_string(), "c");
  EXPECT_FALSE(TargetRecord("users", "u2").has_value());
}

TEST_F(S3dbDriverTest, RenamedAndTransformedTargetsGetASchemalessResource) {
  JsonObject options;
  options["hasTransform"] = true;
  DeliveryItem item = Item("u1", 1, Action::kInsert, R"({"label": "no name field"})");
  item.target = "people";
  item.destination_options = &options;
  ExpectDelivered({item});
  auto record = TargetRecord("people", "u1");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->at("label").as_string(), "no name field");
  EXPECT_TRUE(target_->ResourceDefinitionJson("people")->at("attributes").as_object().empty());
}

TEST_F(S3dbDriverTest, InvalidRecordsArePermanentFailures) {
  auto results = Deliver({Item("u1", 1, Action::kInsert, R"({"name": 42})")});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "validation");
  EXPECT_NE(results[0].error.find("Failed to replicate to s3db"), std::string::npos);
}

TEST_F(S3dbDriverTest, RevisionZeroIsAppliedUnconditionally) {
  ExpectDelivered({Item("u1", 7, Action::kInsert, R"({"name": "seven"})")});
  ExpectDelivered({Item("u1", 0, Action::kInsert, R"({"name": "manual"})")});
  EXPECT_EQ(TargetRecord("users", "u1")->at("name").as_string(), "manual");
}

TEST_F(S3dbDriverTest, FinishesAnInterruptedDeleteAtTheTarget) {
  ExpectDelivered({Item("u1", 1, Action::kInsert, R"({"name": "Ann"})")});
  // What a crash between the steps of a delete leaves behind.
  ASSERT_TRUE(target_->store().Put("resource=users/data/id=u1",
                                   R"({"id":"u1","_rev":2,"_deleted":true})"));
  EXPECT_FALSE(TargetRecord("users", "u1").has_value());
  ExpectDelivered({Item("u1", 3, Action::kInsert, R"({"name": "back"})")});
  EXPECT_EQ(TargetRecord("users", "u1")->at("name").as_string(), "back");
}

TEST(S3dbDriver, TargetUnavailableIsRetryable) {
  auto switchable = std::make_unique<SwitchableStore>(NewMemoryStore());
  SwitchableStore* store = switchable.get();
  auto target = Database::Open(std::move(switchable));
  ASSERT_TRUE(target.has_value());
  auto driver = NewS3dbDriver(JsonObject{}, DriverContext{}, target->get());
  ASSERT_TRUE(driver && (*driver)->Start());
  store->SetDown(true);
  DeliveryItem item;
  item.target = item.source_resource = "users";
  item.id = "u1";
  item.revision = 1;
  std::vector<DeliveryItem> batch = {item};
  auto results = (*driver)->Deliver(batch, 5s);
  EXPECT_EQ(results.at(0).outcome, Outcome::kRetryable);
  EXPECT_NE(results[0].error.find("Connection failed"), std::string::npos);
  store->SetDown(false);
  results = (*driver)->Deliver(batch, 5s);
  EXPECT_EQ(results.at(0).outcome, Outcome::kDelivered) << results[0].error;
}

// The target's record is read once per delivery (it was read twice: once to compare revisions,
// once more by the write), and a change the target already has is not written again.
TEST(S3dbDriver, AnUpdateReadsTheTargetRecordOnceAndAReplayWritesNothing) {
  TempDir dir;
  auto switchable = std::make_unique<SwitchableStore>(NewMemoryStore());
  SwitchableStore* store = switchable.get();
  DatabaseOptions options;
  options.state_dir = dir.str();
  auto target = Database::Open(std::move(switchable), options);
  ASSERT_TRUE(target.has_value());
  auto driver = NewS3dbDriver(JsonObject{}, DriverContext{}, target->get());
  ASSERT_TRUE(driver && (*driver)->Start());
  auto deliver = [&](std::uint64_t revision, Action action, std::string_view name,
                     std::string id = "u1") {
    DeliveryItem item;
    item.target = item.source_resource = "users";
    item.id = id;
    item.revision = revision;
    item.action = action;
    item.data["id"] = id;
    item.data["_rev"] = revision;
    item.data["name"] = name;
    std::vector<DeliveryItem> batch = {item};
    store->gets = 0;
    auto results = (*driver)->Deliver(batch, 5s);
    EXPECT_EQ(results.at(0).outcome, Outcome::kDelivered) << results[0].error;
    return store->gets.load();
  };
  deliver(1, Action::kInsert, "first", "u0");  // creates the target resource
  // An insert reads the record, the target's deleted-revision marker and its tombstone.
  EXPECT_EQ(deliver(1, Action::kInsert, "one"), 3);
  EXPECT_EQ(deliver(2, Action::kUpdate, "two"), 1);
  EXPECT_EQ(deliver(2, Action::kUpdate, "replayed"), 1);
  EXPECT_EQ(deliver(1, Action::kInsert, "older"), 1);
  auto record = (*target)->FindResource("users")->Get("u1");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->at("name").as_string(), "two");
  EXPECT_EQ(record->at("_rev").to_number<std::uint64_t>(), 2u);  // two writes, not four
}

TEST(S3dbDriver, MissingTargetResourceWithoutCreationIsPermanent) {
  TempDir dir;
  auto target = MemoryDatabase(dir.str());
  JsonObject config;
  config["createResources"] = false;
  auto driver = NewS3dbDriver(config, DriverContext{}, target.get());
  ASSERT_TRUE(driver && (*driver)->Start());
  DeliveryItem item;
  item.target = item.source_resource = "users";
  item.id = "u1";
  item.revision = 1;
  std::vector<DeliveryItem> batch = {item};
  EXPECT_EQ((*driver)->Deliver(batch, 5s).at(0).outcome, Outcome::kPermanent);
}

TEST(S3dbDriver, ConnectionStringOpensTheTargetDatabase) {
  std::string bucket = "memory://driver-" + s3db::testing::UniqueToken();
  JsonObject config;
  config["connectionString"] = bucket;
  auto driver = NewS3dbDriver(config, DriverContext{});
  ASSERT_TRUE(driver.has_value()) << driver.error().ToString();
  ASSERT_TRUE((*driver)->Start());
  DeliveryItem item;
  item.target = item.source_resource = "users";
  item.id = "u1";
  item.revision = 1;
  item.data = Obj(R"({"id": "u1", "name": "Ann"})");
  std::vector<DeliveryItem> batch = {item};
  EXPECT_EQ((*driver)->Deliver(batch, 5s).at(0).outcome, Outcome::kDelivered);
  (*driver)->Stop();
  auto opened = Database::Connect(bucket);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ((*opened)->GetResource("users").value()->Get("u1")->at("name").as_string(), "Ann");
}

TEST(S3dbDriver, ConfigErrorsNameTheOptionAndHideSecrets) {
  auto missing = NewS3dbDriver(JsonObject{}, DriverContext{});
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("connectionString: required"), std::string::npos);

  JsonObject unknown;
  unknown["connectionString"] = "memory://x";
  unknown["bucket"] = "y";
  auto bad_key = NewS3dbDriver(unknown, DriverContext{});
  ASSERT_FALSE(bad_key.has_value());
  EXPECT_NE(bad_key.error().message.find("bucket: unknown option"), std::string::npos);

  JsonObject broken;
  broken["connectionString"] = "ftp://KEY:VERYSECRET@host/bucket";
  auto parsed = NewS3dbDriver(broken, DriverContext{});
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().message.find("VERYSECRET"), std::string::npos)
      << parsed.error().message;

  JsonObject unreachable;
  unreachable["connectionString"] = "http://KEY:VERYSECRET@127.0.0.1:1/bucket";
  auto driver = NewS3dbDriver(unreachable, DriverContext{});
  ASSERT_TRUE(driver.has_value());
  auto started = (*driver)->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().message.find("VERYSECRET"), std::string::npos)
      << started.error().message;
}

TEST(S3dbDriver, TheSourceDatabaseItselfIsRefusedAsTheTarget) {
  // Before: every record was written back into the source, replicated again, in a loop.
  TempDir dir;
  auto source = Database::Connect("file://" + dir.str() + "/src");
  ASSERT_TRUE(source.has_value()) << source.error().ToString();
  DriverContext context;
  context.source = source->get();
  for (const std::string& same : {"file://" + dir.str() + "/src", "file://" + dir.str() + "/src/",
                                  "file://" + dir.str() + "/other/../src"}) {
    JsonObject config;
    config["connectionString"] = same;
    auto driver = NewS3dbDriver(config, context);
    ASSERT_FALSE(driver.has_value()) << same;
    EXPECT_NE(driver.error().message.find("connectionString: file://"), std::string::npos);
    EXPECT_NE(driver.error().message.find("/src is the source database itself"), std::string::npos)
        << driver.error().message;
  }
  JsonObject other;
  other["connectionString"] = "file://" + dir.str() + "/backup";
  EXPECT_TRUE(NewS3dbDriver(other, context).has_value());
  auto itself = NewS3dbDriver(JsonObject{}, context, source->get());
  ASSERT_FALSE(itself.has_value());
  EXPECT_NE(itself.error().message.find("target_database: "), std::string::npos);

  std::string bucket = "memory://self-" + s3db::testing::UniqueToken();
  auto memory = Database::Connect(bucket);
  ASSERT_TRUE(memory.has_value());
  context.source = memory->get();
  JsonObject same_bucket;
  same_bucket["connectionString"] = bucket;
  EXPECT_FALSE(NewS3dbDriver(same_bucket, context).has_value());
  JsonObject other_bucket;
  other_bucket["connectionString"] = bucket + "-backup";
  EXPECT_TRUE(NewS3dbDriver(other_bucket, context).has_value());
}

TEST(S3dbDriver, IsRegisteredAsS3db) {
  auto factory = FindDriver("s3db");
  ASSERT_TRUE(factory.has_value());
  JsonObject config;
  config["connectionString"] = "memory://registered";
  EXPECT_TRUE((*factory)(config, DriverContext{}).has_value());
}

}  // namespace
}  // namespace s3db::replicator
