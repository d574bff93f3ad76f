// The ReplicatorPlugin end to end: the spec's usage journey, resource syntaxes, transforms,
// filters, retries, dead letters, pauses, ordering, restarts, outages, events and methods.
#include <gtest/gtest.h>

#include <sqlite3.h>

#include <set>
#include <stdexcept>

#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::FastOptions;
using s3db::testing::MemoryDatabase;
using s3db::testing::RecordsById;
using s3db::testing::TempDir;
using s3db::testing::TestReplicator;
using s3db::testing::TestSink;
using s3db::testing::UniqueToken;
using s3db::testing::WaitFor;

JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ReplicatorPluginTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = MemoryDatabase(dir_.str() + "/state"); }
  void TearDown() override {
    if (db_) (void)db_->Close();
  }

  Resource& MakeResource(const std::string& name, std::string_view attributes = "{}") {
    ResourceDefinition definition;
    definition.name = name;
    definition.attributes = Obj(attributes);
    auto resource = db_->CreateResource(std::move(definition));
    EXPECT_TRUE(resource.has_value()) << resource.error().ToString();
    return **resource;
  }

  Status Install(ReplicatorPluginOptions options) {
    plugin_ = std::make_shared<ReplicatorPlugin>(std::move(options));
    return db_->UsePlugin(plugin_);
  }

  // A memory database at a shared bucket, as the s3db driver sees it.
  static std::string NewBucket() { return "memory://backup-" + UniqueToken(); }
  static std::unique_ptr<Database> OpenTarget(const std::string& connection) {
    auto database = Database::Connect(connection);
    EXPECT_TRUE(database.has_value());
    return std::move(*database);
  }

  ReplicatorConfig S3dbReplicator(ResourceMapping mapping, const std::string& connection) {
    ReplicatorConfig config;
    config.driver = "s3db";
    config.resources = std::move(mapping);
    config.config["connectionString"] = connection;
    return config;
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::shared_ptr<ReplicatorPlugin> plugin_;
};

// ---- Usage journey -------------------------------------------------------------------------

TEST_F(ReplicatorPluginTest, Level1SimpleBackupCopiesEveryChangeToAnotherDatabase) {
  Resource& users = MakeResource("users", R"({"name": "string|required", "email": "email"})");
  std::string bucket = NewBucket();
  auto options = FastOptions();
  auto parsed = ResourceMapping::FromJson(Json(JsonArray{"users"}));
  options.replicators.push_back(S3dbReplicator(*parsed, bucket));
  S3DB_ASSERT_OK(Install(options));

  auto john = users.Insert(Obj(R"({"name": "John", "email": "john@example.com"})"));
  ASSERT_TRUE(john.has_value());
  std::string id(john->at("id").get_string());
  auto jane = users.Insert(Obj(R"({"id": "jane", "name": "Jane", "email": "jane@example.com"})"));
  ASSERT_TRUE(jane.has_value());
  ASSERT_TRUE(users.Update("jane", Obj(R"({"name": "Jane Doe"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  auto target = OpenTarget(bucket);
  auto backup = target->GetResource("users");
  ASSERT_TRUE(backup.has_value());
  auto copy = (*backup)->Get(id);
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->at("name").as_string(), "John");
  EXPECT_EQ(copy->at("email").as_string(), "john@example.com");
  EXPECT_EQ(copy->at("_sourceRev").to_number<int>(), 1);
  EXPECT_EQ((*backup)->Get("jane")->at("name").as_string(), "Jane Doe");
  // The target resource was created from the source definition.
  EXPECT_EQ(target->ResourceDefinitionJson("users")->at("attributes"),
            db_->ResourceDefinitionJson("users")->at("attributes"));

  ASSERT_TRUE(users.Delete("jane"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_FALSE((*backup)->Exists("jane").value());
}

TEST_F(ReplicatorPluginTest, Level2TransformRenamesDropsFieldsAndSkipsDeletes) {
  Resource& users = MakeResource("users");
  auto target = MemoryDatabase(dir_.str() + "/target-state");
  Destination backup;
  backup.resource = "users_backup";
  backup.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["id"] = data.at("id");
    out["name"] = data.at("name");
    out["email"] = data.at("email");
    out["created_at"] = "2025-01-01T00:00:00.000Z";
    return out;
  };
  backup.actions = {Action::kInsert, Action::kUpdate};
  ReplicatorConfig config;
  config.driver = "s3db";
  config.resources.Add("users", backup);
  config.target_database = target.get();
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));

  ASSERT_TRUE(users.Insert(
      Obj(R"({"id": "u1", "name": "John", "email": "j@x.io", "password": "hunter2"})")));
  ASSERT_TRUE(users.Update("u1", Obj(R"({"email": "john@x.io"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  ASSERT_TRUE(users.Delete("u1"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  auto copy = target->GetResource("users_backup").value()->Get("u1");
  ASSERT_TRUE(copy.has_value()) << "deletes are not replicated";
  EXPECT_EQ(copy->at("email").as_string(), "john@x.io");
  EXPECT_EQ(copy->at("created_at").as_string(), "2025-01-01T00:00:00.000Z");
  EXPECT_FALSE(copy->contains("password"));
  EXPECT_FALSE(target->FindResource("users"));
  auto stats = plugin_->GetReplicatorStats("s3db-0");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->delivered, 2u);
  EXPECT_EQ(stats->filtered, 1u);
}

TEST_F(ReplicatorPluginTest, Level4ErrorsAndSuccessesAreObservableAndPersisted) {
  Resource& orders = MakeResource("orders");
  Resource& users = MakeResource("users");
  const std::int64_t started_ms = NowMs();
  auto options = FastOptions();
  options.verbose = true;
  options.persist_replicator_log = true;
  options.max_retries = 3;
  ReplicatorConfig failing;
  auto sink = TestReplicator(failing, ResourceMapping().Add("orders"), "pg");
  sink->SetBehaviour([](const DeliveryItem&) {
    return DeliveryResult::Permanent("http_400", "Failed to replicate to test: rejected");
  });
  options.replicators.push_back(failing);
  ReplicatorConfig backup;
  auto backup_sink = TestReplicator(backup, ResourceMapping().Add("users"), "backup");
  options.replicators.push_back(backup);
  S3DB_ASSERT_OK(Install(options));

  std::mutex mutex;
  std::vector<JsonObject> errors;
  std::vector<JsonObject> successes;
  db_->On("replicator:error", [&](const Json& payload) {
    std::lock_guard lock(mutex);
    errors.push_back(payload.as_object());
  });
  db_->On("replicator:success", [&](const Json& payload) {
    std::lock_guard lock(mutex);
    successes.push_back(payload.as_object());
  });

  ASSERT_TRUE(orders.Insert(Obj(R"({"id": "o1", "total": 10})")));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].at("resource").as_string(), "orders");
    EXPECT_EQ(errors[0].at("error").at("message").as_string(),
              "Failed to replicate to test: rejected");
    EXPECT_EQ(errors[0].at("error").at("name").as_string(), "ReplicatorError");
    EXPECT_EQ(errors[0].at("data").at("id").as_string(), "o1");
    EXPECT_EQ(errors[0].at("replicator").as_string(), "pg");
    ASSERT_EQ(successes.size(), 1u);
    EXPECT_EQ(successes[0].at("resource").as_string(), "users");
    EXPECT_EQ(successes[0].at("destination").as_string(), "users");
    EXPECT_EQ(successes[0].at("changeId").as_string(), "users:u1:1");
  }

  auto logs = db_->GetResource("replicator_log");
  ASSERT_TRUE(logs.has_value());
  auto failed = (*logs)->Query(Obj(R"({"status": "error"})"));
  ASSERT_TRUE(failed.has_value());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].at("replicator").as_string(), "pg");
  EXPECT_EQ((*failed)[0].at("recordId").as_string(), "o1");
  JsonObject recent = Obj(R"({"status": "error"})");
  recent["timestamp"] = JsonObject{{"$gte", started_ms}};
  EXPECT_EQ((*logs)->Query(recent)->size(), 1u);
  recent["timestamp"] = JsonObject{{"$gte", NowMs() + 3600000}};
  EXPECT_EQ((*logs)->Query(recent)->size(), 0u);
  auto ok = (*logs)->Query(Obj(R"({"status": "success"})"));
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].at("changeId").as_string(), "users:u1:1");
  EXPECT_EQ(backup_sink->DeliveredCount(), 1u);
  S3DB_EXPECT_OK(db_->Close());  // no more events into this test's handlers
}

TEST_F(ReplicatorPluginTest, Level5ShouldReplicateFiltersByDataAndAction) {
  Resource& orders = MakeResource("orders");
  Destination analytics;
  analytics.should_replicate = [](const JsonObject& data, Action action) {
    if (action == Action::kDelete) return false;
    if (data.at("status").as_string() != "completed") return false;
    if (data.at("total").to_number<double>() < 100) return false;
    return true;
  };
  analytics.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["id"] = data.at("id");
    out["total"] = data.at("total");
    out["status"] = data.at("status");
    return out;
  };
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("orders", analytics));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));

  ASSERT_TRUE(orders.Insert(Obj(R"({"id": "a", "status": "completed", "total": 150})")));
  ASSERT_TRUE(orders.Insert(Obj(R"({"id": "b", "status": "pending", "total": 500})")));
  ASSERT_TRUE(orders.Insert(Obj(R"({"id": "c", "status": "completed", "total": 50})")));
  ASSERT_TRUE(orders.Delete("a"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  auto delivered = sink->Delivered();
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].id, "a");
  EXPECT_EQ(delivered[0].action, Action::kInsert);
  EXPECT_EQ(delivered[0].data.at("total").to_number<int>(), 150);
  EXPECT_EQ(plugin_->GetReplicatorStats("test-0")->filtered, 3u);
}

// ---- Resource configuration syntaxes with the s3db driver -----------------------------------

TEST_F(ReplicatorPluginTest, SyntaxObjectOfNamesRenamesTargets) {
  Resource& users = MakeResource("users");
  Resource& products = MakeResource("products");
  std::string bucket = NewBucket();
  auto mapping = ResourceMapping::FromJson(*ParseJson(R"({"users": "people",
                                                          "products": "items"})"));
  auto options = FastOptions();
  options.replicators.push_back(S3dbReplicator(*mapping, bucket));
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  ASSERT_TRUE(products.Insert(Obj(R"({"id": "p1", "title": "Pen"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto target = OpenTarget(bucket);
  EXPECT_EQ(target->GetResource("people").value()->Get("u1")->at("name").as_string(), "Ann");
  EXPECT_EQ(target->GetResource("items").value()->Get("p1")->at("title").as_string(), "Pen");
  EXPECT_FALSE(target->FindResource("users"));
}

TEST_F(ReplicatorPluginTest, SyntaxObjectWithTransformWritesTheTransformedRecord) {
  Resource& users = MakeResource("users", R"({"firstName": "string|required"})");
  std::string bucket = NewBucket();
  Destination people;
  people.resource = "people";
  people.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out = data;
    out["fullName"] = std::string(data.at("firstName").as_string()) + " " +
                      std::string(data.at("lastName").as_string());
    out["source_system"] = "production";
    return out;
  };
  people.actions = {Action::kInsert, Action::kUpdate, Action::kDelete};
  auto options = FastOptions();
  options.replicators.push_back(S3dbReplicator(ResourceMapping().Add("users", people), bucket));
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "firstName": "Ada", "lastName": "Lovelace"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto target = OpenTarget(bucket);
  auto copy = target->GetResource("people").value()->Get("u1");
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->at("fullName").as_string(), "Ada Lovelace");
  EXPECT_EQ(copy->at("source_system").as_string(), "production");
}

TEST_F(ReplicatorPluginTest, SyntaxFunctionOnlyTransformKeepsTheName) {
  Resource& users = MakeResource("users");
  std::string bucket = NewBucket();
  auto options = FastOptions();
  options.replicators.push_back(S3dbReplicator(
      ResourceMapping().Add("users",
                            Transform([](const JsonObject& data) -> std::optional<JsonObject> {
                              JsonObject out = data;
                              out["processed"] = true;
                              return out;
                            })),
      bucket));
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto copy = OpenTarget(bucket)->GetResource("users").value()->Get("u1");
  ASSERT_TRUE(copy.has_value());
  EXPECT_TRUE(copy->at("processed").as_bool());
  EXPECT_EQ(copy->at("name").as_string(), "Ann");
}

TEST_F(ReplicatorPluginTest, SyntaxMultiDestinationWritesEveryDestination) {
  Resource& users = MakeResource("users");
  std::string bucket = NewBucket();
  ResourceMapping mapping;
  mapping.Add("users", "people");
  Destination analytics;
  analytics.resource = "user_analytics";
  analytics.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["id"] = data.at("id");
    out["user_type"] = data.contains("role") ? data.at("role") : Json("standard");
    return out;
  };
  mapping.Add("users", analytics);
  Destination audit;
  audit.resource = "audit_trail";
  audit.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["user_id"] = data.at("id");  // drops "id": the engine keeps it
    out["action"] = "user_replicated";
    return out;
  };
  mapping.Add("users", audit);
  auto options = FastOptions();
  options.replicators.push_back(S3dbReplicator(mapping, bucket));
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto target = OpenTarget(bucket);
  EXPECT_EQ(target->GetResource("people").value()->Get("u1")->at("name").as_string(), "Ann");
  EXPECT_EQ(target->GetResource("user_analytics").value()->Get("u1")->at("user_type").as_string(),
            "standard");
  auto trail = target->GetResource("audit_trail").value()->Get("u1");
  ASSERT_TRUE(trail.has_value());
  EXPECT_EQ(trail->at("user_id").as_string(), "u1");
  EXPECT_EQ(plugin_->GetReplicatorStats("s3db-0")->delivered, 3u);
}

TEST_F(ReplicatorPluginTest, SyntaxArrayAndTrueReplicateEverything) {
  Resource& users = MakeResource("users");
  Resource& orders = MakeResource("orders");
  std::string bucket = NewBucket();
  auto mapping = ResourceMapping::FromJson(*ParseJson(R"({"users": true, "orders": true})"));
  auto options = FastOptions();
  options.replicators.push_back(S3dbReplicator(*mapping, bucket));
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1"})")));
  ASSERT_TRUE(orders.Insert(Obj(R"({"id": "o1"})")));
  ASSERT_TRUE(orders.Delete("o1"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto target = OpenTarget(bucket);
  EXPECT_TRUE(target->GetResource("users").value()->Exists("u1").value());
  EXPECT_FALSE(target->GetResource("orders").value()->Exists("o1").value());
}

// ---- Transforms and filters -----------------------------------------------------------------

TEST_F(ReplicatorPluginTest, TransformReturningNullIsFilteredAndNeverDelivered) {
  Resource& products = MakeResource("products");
  Destination validated;
  validated.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    if (!data.contains("price")) return std::nullopt;
    return data;
  };
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("products", validated));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(products.Insert(Obj(R"({"id": "draft"})")));
  ASSERT_TRUE(products.Insert(Obj(R"({"id": "pen", "price": 2})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto delivered = sink->Delivered();
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].id, "pen");
  auto stats = plugin_->GetReplicatorStats("test-0");
  EXPECT_EQ(stats->filtered, 1u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(ReplicatorPluginTest, ThrowingTransformDeadLettersWithTheSpecMessage) {
  Resource& users = MakeResource("users");
  Destination broken;
  broken.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    if (data.at("id").as_string() == "bad") throw std::runtime_error("boom");
    return data;
  };
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users", broken), "crm");
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  std::vector<std::string> plugin_errors;
  std::mutex mutex;
  plugin_->On("replicator_error", [&](const Json& payload) {
    std::lock_guard lock(mutex);
    plugin_errors.push_back(std::string(payload.at("error").as_string()));
  });
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "bad"})")));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "good"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  const std::string expected = "Transform function failed for resource 'users': boom";
  auto letters = plugin_->ListDeadLetters("crm");
  ASSERT_TRUE(letters.has_value());
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].error, expected);
  EXPECT_EQ((*letters)[0].reason, "transform_error");
  EXPECT_EQ((*letters)[0].change.ChangeId(), "users:bad:1");
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(plugin_errors.size(), 1u);
    EXPECT_EQ(plugin_errors[0], expected);
  }
  auto last = plugin_->LastError("crm");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->name, "ReplicatorError");
  EXPECT_EQ(last->message, expected);
  EXPECT_FALSE(last->description.empty());
  EXPECT_EQ(last->context.at("recordId").as_string(), "bad");
  EXPECT_EQ(sink->DeliveredCount(), 1u);
  S3DB_EXPECT_OK(db_->Close());
}

TEST_F(ReplicatorPluginTest, AnUpdateWhosePreviousVersionFailsTheTransformGoesWithoutBefore) {
  // The previous version trips the transform; the new one is fine. The update is delivered
  // (without `before`), not dead-lettered for what the record used to hold.
  Resource& users = MakeResource("users");
  Destination picky;
  picky.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    if (data.at("name").as_string() == "boom") throw std::runtime_error("no boom");
    return data;
  };
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users", picky), "crm");
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "r", "name": "boom"})")));
  ASSERT_TRUE(users.Update("r", Obj(R"({"name": "fine"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  auto letters = plugin_->ListDeadLetters("crm");
  ASSERT_TRUE(letters.has_value());
  ASSERT_EQ(letters->size(), 1u) << "only the insert, whose own data fails";
  EXPECT_EQ((*letters)[0].change.ChangeId(), "users:r:1");
  auto delivered = sink->Delivered();
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].action, Action::kUpdate);
  EXPECT_EQ(delivered[0].data.at("name").as_string(), "fine");
  EXPECT_FALSE(delivered[0].before.has_value());
  S3DB_EXPECT_OK(db_->Close());
}

TEST_F(ReplicatorPluginTest, AReplicatorLogResourceThatIsAlsoReplicatedIsRefused) {
  MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"), "mirror");
  auto options = FastOptions();
  options.replicator_log_resource = "users";
  options.replicators.push_back(config);
  auto installed = Install(options);
  ASSERT_FALSE(installed.has_value());
  EXPECT_EQ(installed.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(installed.error().message.find(
                "replicatorLogResource: 'users' is a resource that replicators[0] replicates"),
            std::string::npos)
      << installed.error().message;
}

TEST_F(ReplicatorPluginTest, ActionsListSkipsOtherActions) {
  Resource& users = MakeResource("users");
  Destination inserts_only;
  inserts_only.actions = {Action::kInsert};
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users", inserts_only));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1"})")));
  ASSERT_TRUE(users.Update("u1", Obj(R"({"x": 1})")));
  ASSERT_TRUE(users.Delete("u1"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto delivered = sink->Delivered();
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].action, Action::kInsert);
  EXPECT_EQ(plugin_->GetReplicatorStats("test-0")->filtered, 2u);
}

TEST_F(ReplicatorPluginTest, UpdatesCarryTheRealBeforeImageTransformedToo) {
  Resource& users = MakeResource("users");
  Destination upper;
  upper.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["label"] = "name:" + std::string(data.at("name").as_string());
    return out;  // no id: the engine puts it back
  };
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users", upper).Add("users", "raw"));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  ASSERT_TRUE(users.Update("u1", Obj(R"({"name": "Anna"})")));
  ASSERT_TRUE(users.Delete("u1"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  std::vector<DeliveryItem> transformed, raw;
  for (auto& item : sink->Delivered()) (item.target == "raw" ? raw : transformed).push_back(item);
  ASSERT_EQ(transformed.size(), 3u);
  ASSERT_EQ(raw.size(), 3u);
  EXPECT_FALSE(transformed[0].before.has_value());
  ASSERT_TRUE(transformed[1].before.has_value());
  EXPECT_EQ(transformed[1].before->at("label").as_string(), "name:Ann");
  EXPECT_EQ(transformed[1].data.at("label").as_string(), "name:Anna");
  EXPECT_EQ(transformed[1].data.at("id").as_string(), "u1");
  EXPECT_EQ(raw[1].before->at("name").as_string(), "Ann");
  EXPECT_EQ(raw[1].before->at("_rev").to_number<int>(), 1);
  EXPECT_EQ(raw[1].data.at("name").as_string(), "Anna");
  EXPECT_EQ(raw[2].action, Action::kDelete);
  EXPECT_EQ(raw[2].data.at("name").as_string(), "Anna");  // deletes carry the last record
  EXPECT_EQ(raw[2].change_id, "users:u1:3");
}

// ---- Retries, dead letters, pauses ------------------------------------------------------------

TEST_F(ReplicatorPluginTest, RetryableFailuresAreRetriedThenDelivered) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  std::atomic<int> failures{0};
  sink->SetBehaviour([&](const DeliveryItem& item) {
    if (item.id == "x" && failures < 2) {
      ++failures;
      return DeliveryResult::Retryable("Failed to replicate to test: 503");
    }
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "x"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  auto stats = plugin_->GetReplicatorStats("test-0");
  EXPECT_EQ(stats->delivered, 1u);
  EXPECT_EQ(stats->retried, 2u);
  EXPECT_EQ(stats->failed, 2u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
  EXPECT_EQ(stats->lag_changes, 0u);
}

TEST_F(ReplicatorPluginTest, ExhaustedRetriesGoToTheDeadLetterQueue) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  std::atomic<int> attempts{0};
  sink->SetBehaviour([&](const DeliveryItem& item) {
    if (item.id == "x") {
      ++attempts;
      return DeliveryResult::Retryable("Failed to replicate to test: 500");
    }
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.max_retries = 2;
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.InsertMany({Obj(R"({"id": "x"})"), Obj(R"({"id": "y"})")})[0]);
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(attempts.load(), 3);  // the first attempt and two retries
  auto letters = plugin_->ListDeadLetters("test-0");
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].reason, "max_retries");
  EXPECT_EQ((*letters)[0].attempts, 3);
  EXPECT_NE((*letters)[0].error.find("500"), std::string::npos);
  EXPECT_EQ(sink->DeliveredCount(), 1u);
}

TEST_F(ReplicatorPluginTest, MaxRetriesZeroMeansOneAttempt) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  std::atomic<int> attempts{0};
  sink->SetBehaviour([&](const DeliveryItem& item) {
    if (item.id == "x") {
      ++attempts;
      return DeliveryResult::Retryable("503");
    }
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.max_retries = 0;
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.InsertMany({Obj(R"({"id": "x"})"), Obj(R"({"id": "y"})")})[0]);
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(attempts.load(), 1);
  EXPECT_EQ(plugin_->GetReplicatorStats("test-0")->dead_letter_count, 1u);
}

TEST_F(ReplicatorPluginTest, DeadLettersCanBeReplayedAndPurged) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users").Add("users", "copy"));
  std::atomic<bool> reject{true};
  sink->SetBehaviour([&](const DeliveryItem& item) {
    if (reject && item.target == "users") return DeliveryResult::Permanent("http_422", "bad");
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "a"})")));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "b"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(plugin_->ListDeadLetters("test-0")->size(), 2u);
  EXPECT_EQ(plugin_->ListDeadLetters("test-0", 1)->size(), 1u);
  EXPECT_EQ(sink->DeliveredCount(), 2u);  // the "copy" destination

  reject = false;
  auto replayed = plugin_->ReplayDeadLetters("test-0");
  ASSERT_TRUE(replayed.has_value());
  EXPECT_EQ(*replayed, 2u);
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(plugin_->ListDeadLetters("test-0")->size(), 0u);
  auto delivered = sink->Delivered();
  ASSERT_EQ(delivered.size(), 4u);  // replays go only to the failed destination
  EXPECT_EQ(delivered[2].target, "users");
  EXPECT_EQ(delivered[3].target, "users");

  reject = true;
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "c"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(*plugin_->PurgeDeadLetters("test-0"), 1u);
  EXPECT_EQ(plugin_->GetReplicatorStats("test-0")->dead_letter_count, 0u);
}

TEST_F(ReplicatorPluginTest, UnauthorizedPausesWithoutDeadLetteringThenRecovers) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  std::atomic<bool> locked{true};
  sink->SetBehaviour([&](const DeliveryItem&) {
    if (locked) return DeliveryResult::Unauthorized("Failed to replicate to test: HTTP 401");
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.max_retries = 1;
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(users.Insert(Obj(R"({})")));
  ASSERT_TRUE(WaitFor([&] {
    auto stats = plugin_->GetReplicatorStats("test-0");
    return stats->state == ReplicatorState::kPaused && stats->pause_reason == "unauthorized";
  }));
  ASSERT_TRUE(WaitFor([&] { return sink->deliver_calls.load() >= 4; }));  // it keeps probing
  auto stats = plugin_->GetReplicatorStats("test-0");
  EXPECT_EQ(stats->dead_letter_count, 0u);
  EXPECT_EQ(stats->delivered, 0u);
  EXPECT_EQ(stats->lag_changes, 5u);
  EXPECT_NE(stats->last_error->message.find("401"), std::string::npos);

  locked = false;
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(sink->DeliveredCount(), 5u);
  EXPECT_EQ(plugin_->GetReplicatorStats("test-0")->dead_letter_count, 0u);
  // The dispatcher leaves the pause on its next turn after the last delivery settled.
  EXPECT_TRUE(WaitFor([&] {
    return plugin_->GetReplicatorStats("test-0")->state == ReplicatorState::kRunning;
  }));
}

TEST_F(ReplicatorPluginTest, RetryOfOneRecordHoldsBackOnlyThatRecord) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  std::atomic<int> failures{0};
  sink->SetBehaviour([&](const DeliveryItem& item) {
    if (item.change_id == "users:a:2" && failures < 3) {
      ++failures;
      return DeliveryResult::Retryable("busy", 150ms);
    }
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "a", "v": 1})")));
  for (int v = 2; v <= 5; ++v) {
    JsonObject changes;
    changes["v"] = v;
    ASSERT_TRUE(users.Update("a", changes));
  }
  ASSERT_TRUE(WaitFor([&] { return failures.load() >= 1; }));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "b"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  auto delivered = sink->Delivered();
  std::vector<std::uint64_t> a_revisions;
  std::size_t b_position = 0, a2_position = 0;
  for (std::size_t i = 0; i < delivered.size(); ++i) {
    if (delivered[i].id == "a") a_revisions.push_back(delivered[i].revision);
    if (delivered[i].id == "b") b_position = i;
    if (delivered[i].change_id == "users:a:2") a2_position = i;
  }
  EXPECT_EQ(a_revisions, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_LT(b_position, a2_position) << "b must not wait for a's retries";
  EXPECT_EQ(failures.load(), 3);
  EXPECT_EQ(plugin_->GetReplicatorStats("test-0")->dead_letter_count, 0u);
}

TEST_F(ReplicatorPluginTest, RetryAfterHintIsHonoured) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  std::vector<std::chrono::steady_clock::time_point> attempts;
  sink->SetBehaviour([&](const DeliveryItem&) {
    attempts.push_back(std::chrono::steady_clock::now());
    if (attempts.size() == 1) return DeliveryResult::Retryable("429", 300ms);
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "a"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_GE(attempts[1] - attempts[0], 290ms);
}

TEST_F(ReplicatorPluginTest, AFailingReplicatorDoesNotSlowAnother) {
  Resource& users = MakeResource("users");
  ReplicatorConfig slow;
  auto slow_sink = TestReplicator(slow, ResourceMapping().Add("users"), "slow");
  slow_sink->SetBehaviour([](const DeliveryItem&) {
    std::this_thread::sleep_for(2ms);
    return DeliveryResult::Retryable("Connection failed");
  });
  ReplicatorConfig fast;
  auto fast_sink = TestReplicator(fast, ResourceMapping().Add("users"), "fast");
  auto options = FastOptions();
  options.replicators = {slow, fast};
  S3DB_ASSERT_OK(Install(options));
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(users.Insert(Obj("{}")));
  ASSERT_TRUE(WaitFor([&] { return fast_sink->DeliveredCount() == 50; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  EXPECT_EQ(slow_sink->DeliveredCount(), 0u);
  S3DB_ASSERT_OK(plugin_->DisableReplicator("slow"));  // lets the fixture stop quickly
}

// ---- Methods ----------------------------------------------------------------------------------

TEST_F(ReplicatorPluginTest, ListsReplicatorsWithDefaultIdsAndStats) {
  MakeResource("users");
  ReplicatorConfig first, second;
  TestReplicator(first, ResourceMapping().Add("users"));
  TestReplicator(second, ResourceMapping().Add("orders").Add("users"), "named");
  second.enabled = false;
  auto options = FastOptions();
  options.replicators = {first, second};
  S3DB_ASSERT_OK(Install(options));
  auto list = plugin_->ListReplicators();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "test-0");
  EXPECT_EQ(list[0].driver, "test");
  EXPECT_TRUE(list[0].enabled);
  EXPECT_EQ(list[1].id, "named");
  EXPECT_FALSE(list[1].enabled);
  EXPECT_EQ(list[1].state, ReplicatorState::kDisabled);
  EXPECT_EQ(list[1].resources, (std::vector<std::string>{"orders", "users"}));
}

TEST_F(ReplicatorPluginTest, DisabledReplicatorKeepsItsBacklogUntilEnabled) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  S3DB_ASSERT_OK(plugin_->DisableReplicator("test-0"));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(users.Insert(Obj("{}")));
  std::this_thread::sleep_for(100ms);
  auto stats = plugin_->GetReplicatorStats("test-0");
  EXPECT_EQ(stats->state, ReplicatorState::kDisabled);
  EXPECT_EQ(stats->lag_changes, 10u);
  EXPECT_GT(stats->lag_seconds, 0.05);
  EXPECT_EQ(sink->DeliveredCount(), 0u);
  S3DB_ASSERT_OK(plugin_->EnableReplicator("test-0"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  EXPECT_EQ(sink->DeliveredCount(), 10u);
  stats = plugin_->GetReplicatorStats("test-0");
  EXPECT_EQ(stats->lag_changes, 0u);
  EXPECT_GT(stats->latency_p99_ms, 0);
  EXPECT_GE(stats->latency_p99_ms, stats->latency_p50_ms);
}

TEST_F(ReplicatorPluginTest, UnknownReplicatorIdGivesReplicatorNotFound) {
  MakeResource("users");
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping().Add("users"));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  auto expect_not_found = [](const Error& error) {
    EXPECT_EQ(error.code, ErrorCode::kNotFound);
    EXPECT_EQ(error.message, "Replicator not found: nonexistent-id");
  };
  expect_not_found(plugin_->GetReplicatorStats("nonexistent-id").error());
  expect_not_found(plugin_->SyncAllData("nonexistent-id").error());
  expect_not_found(plugin_->DisableReplicator("nonexistent-id").error());
  expect_not_found(plugin_->EnableReplicator("nonexistent-id").error());
  expect_not_found(plugin_->ListDeadLetters("nonexistent-id").error());
  expect_not_found(plugin_->ReplayDeadLetters("nonexistent-id").error());
  expect_not_found(plugin_->PurgeDeadLetters("nonexistent-id").error());
  EXPECT_FALSE(plugin_->LastError("nonexistent-id").has_value());
}

TEST_F(ReplicatorPluginTest, SyncAllDataBackfillsExistingRecordsAndResumes) {
  Resource& users = MakeResource("users");
  std::vector<JsonObject> records;
  for (int i = 0; i < 1200; ++i) {
    JsonObject record;
    record["id"] = "u" + std::to_string(10000 + i);
    records.push_back(record);
  }
  for (auto& result : users.InsertMany(records)) ASSERT_TRUE(result.has_value());
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  EXPECT_EQ(sink->DeliveredCount(), 0u);  // a new replicator starts at the head of the log

  // A deadline that passes after the first page interrupts the sync; the next call resumes.
  auto interrupted = plugin_->SyncAllData("test-0", {}, 0ms);
  ASSERT_FALSE(interrupted.has_value());
  EXPECT_EQ(interrupted.error().code, ErrorCode::kTimeout);
  std::vector<SyncProgress> reports;
  S3DB_ASSERT_OK(plugin_->SyncAllData(
      "test-0", [&](const SyncProgress& progress) { reports.push_back(progress); }, 30s));
  ASSERT_FALSE(reports.empty());
  EXPECT_TRUE(reports.back().done);
  EXPECT_EQ(reports.back().enqueued, 1200u);
  EXPECT_EQ(reports.back().settled, 1200u);
  auto delivered = sink->Delivered();
  std::set<std::string> ids;
  for (const auto& item : delivered) ids.insert(item.id);
  EXPECT_EQ(delivered.size(), 1200u) << "no page may be queued twice";
  EXPECT_EQ(ids.size(), 1200u);
  EXPECT_EQ(delivered[0].revision, 1u);
}

TEST_F(ReplicatorPluginTest, ReplicateBatchReportsEachRecord) {
  MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  sink->SetBehaviour([](const DeliveryItem& item) {
    if (item.id == "bad") return DeliveryResult::Permanent("http_400", "rejected");
    return DeliveryResult::Delivered();
  });
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  auto result = plugin_->ReplicateBatch(
      "users", {Obj(R"({"id": "a", "n": 1})"), Obj(R"({"id": "bad"})")}, 10s);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->records, 2u);
  ASSERT_EQ(result->outcomes.size(), 2u);
  EXPECT_EQ(result->outcomes[0].status, "delivered");
  EXPECT_EQ(result->outcomes[0].replicator, "test-0");
  EXPECT_EQ(result->outcomes[1].status, "dead_letter");
  EXPECT_EQ(sink->Delivered().at(0).data.at("n").to_number<int>(), 1);
  EXPECT_FALSE(plugin_->ReplicateBatch("users", {Obj(R"({"n": 1})")}).has_value());
}

TEST_F(ReplicatorPluginTest, PluginEventsCarryIdsAttemptsAndDurations) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping().Add("users", "people"), "events");
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  std::mutex mutex;
  std::vector<JsonObject> events;
  plugin_->On("replicated", [&](const Json& payload) {
    std::lock_guard lock(mutex);
    events.push_back(payload.as_object());
  });
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  S3DB_ASSERT_OK(db_->Close());
  std::lock_guard lock(mutex);
  ASSERT_EQ(events.size(), 1u);
  const JsonObject& event = events[0];
  EXPECT_EQ(event.at("replicator").as_string(), "events");
  EXPECT_EQ(event.at("driver").as_string(), "test");
  EXPECT_EQ(event.at("resource").as_string(), "users");
  EXPECT_EQ(event.at("resourceName").as_string(), "users");
  EXPECT_EQ(event.at("destination").as_string(), "people");
  EXPECT_EQ(event.at("action").as_string(), "insert");
  EXPECT_EQ(event.at("operation").as_string(), "insert");
  EXPECT_EQ(event.at("recordId").as_string(), "u1");
  EXPECT_EQ(event.at("changeId").as_string(), "users:u1:1");
  EXPECT_EQ(event.at("attempt").to_number<int>(), 1);
  EXPECT_GE(event.at("durationMs").to_number<double>(), 0);
}

TEST_F(ReplicatorPluginTest, InvalidDriverConfigFailsInstallWithThePath) {
  MakeResource("users");
  ReplicatorConfig config;
  config.driver = "s3db";
  config.resources.Add("users");
  auto options = FastOptions();
  options.replicators.push_back(config);
  auto status = Install(options);
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().message.find("replicators[0].config.connectionString: "), 0u)
      << status.error().message;
  EXPECT_NE(status.error().message.find("(replicator s3db-0, driver s3db)"), std::string::npos)
      << status.error().message;
}

TEST_F(ReplicatorPluginTest, UnreachableTargetKeepsRetryingWithoutLeakingTheSecret) {
  MakeResource("users");
  auto options = FastOptions();
  options.replicators.push_back(S3dbReplicator(
      ResourceMapping().Add("users"), "http://AKIDEXAMPLE:TOPSECRETVALUE@127.0.0.1:1/bucket"));
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(WaitFor([&] { return plugin_->LastError("s3db-0").has_value(); }, 30s));
  auto error = plugin_->LastError("s3db-0");
  EXPECT_EQ(error->message.find("TOPSECRETVALUE"), std::string::npos) << error->message;
  EXPECT_NE(error->message.find("Failed to replicate to s3db"), std::string::npos);
  EXPECT_EQ(plugin_->GetReplicatorStats("s3db-0")->state, ReplicatorState::kPaused);
  S3DB_ASSERT_OK(plugin_->DisableReplicator("s3db-0"));
}

TEST_F(ReplicatorPluginTest, DisabledPluginRecordsNothing) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users"));
  auto options = FastOptions();
  options.enabled = false;
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  ASSERT_TRUE(users.Insert(Obj("{}")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(1s));
  EXPECT_EQ(sink->DeliveredCount(), 0u);
  EXPECT_TRUE(plugin_->ListReplicators().empty());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "state" / "replicator" / "changes.db"));
}

TEST_F(ReplicatorPluginTest, CompactionRemovesSettledChanges) {
  Resource& users = MakeResource("users");
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping().Add("users"));
  auto options = FastOptions();
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(users.Insert(Obj("{}")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  std::this_thread::sleep_for(1500ms);  // one compaction round
  sqlite3* db = nullptr;
  std::string path = (dir_.path() / "state" / "replicator" / "changes.db").string();
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM changes", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_LE(sqlite3_column_int(stmt, 0), 1);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

// ---- Restarts and outages ---------------------------------------------------------------------

TEST(ReplicatorRestart, ResumesFromTheCheckpointAfterAReopen) {
  TempDir dir;
  std::string source = "file://" + dir.str() + "/source";
  DatabaseOptions database_options;
  database_options.state_dir = dir.str() + "/state";
  database_options.store.fsync = false;
  std::shared_ptr<TestSink> first_sink, second_sink;
  {
    auto db = Database::Connect(source, database_options);
    ASSERT_TRUE(db.has_value());
    ResourceDefinition definition;
    definition.name = "users";
    Resource* users = *(*db)->CreateResource(definition);
    ReplicatorConfig config;
    first_sink = TestReplicator(config, ResourceMapping().Add("users"), "backup");
    auto options = FastOptions();
    options.replicators.push_back(config);
    auto plugin = std::make_shared<ReplicatorPlugin>(options);
    S3DB_ASSERT_OK((*db)->UsePlugin(plugin));
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(users->Insert(Obj("{}")));
    S3DB_ASSERT_OK(plugin->WaitIdle(10s));
    S3DB_ASSERT_OK(plugin->DisableReplicator("backup"));
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(users->Insert(Obj(R"({"late": true})")));
    S3DB_ASSERT_OK((*db)->Close());
  }
  EXPECT_EQ(first_sink->DeliveredCount(), 20u);
  {
    auto db = Database::Connect(source, database_options);
    ASSERT_TRUE(db.has_value());
    ReplicatorConfig config;
    second_sink = TestReplicator(config, ResourceMapping().Add("users"), "backup");
    auto options = FastOptions();
    options.replicators.push_back(config);
    auto plugin = std::make_shared<ReplicatorPlugin>(options);
    S3DB_ASSERT_OK((*db)->UsePlugin(plugin));
    S3DB_ASSERT_OK(plugin->WaitIdle(10s));
    S3DB_ASSERT_OK((*db)->Close());
  }
  auto delivered = second_sink->Delivered();
  ASSERT_EQ(delivered.size(), 30u) << "exactly the changes not delivered before the restart";
  for (const auto& item : delivered) EXPECT_TRUE(item.data.at("late").as_bool());
}

TEST(ReplicatorOutage, TargetDownForAWhileLosesNothingAndDeadLettersNothing) {
  TempDir dir;
  auto source = MemoryDatabase(dir.str() + "/state");
  auto switchable = std::make_unique<s3db::testing::SwitchableStore>(NewMemoryStore());
  auto* target_store = switchable.get();
  auto target = Database::Open(std::move(switchable));
  ASSERT_TRUE(target.has_value());
  ResourceDefinition definition;
  definition.name = "orders";
  Resource* orders = *source->CreateResource(definition);

  ReplicatorConfig config;
  config.driver = "s3db";
  config.resources.Add("orders");
  config.target_database = target->get();
  auto options = FastOptions();
  options.max_retries = 2;  // low: an outage must not use up retries
  options.max_backoff_ms = 100;
  options.replicators.push_back(config);
  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  S3DB_ASSERT_OK(source->UsePlugin(plugin));

  for (int i = 0; i < 20; ++i) ASSERT_TRUE(orders->Insert(Obj(R"({"phase": "before"})")));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  target_store->SetDown(true);
  for (int i = 0; i < 100; ++i) {
    JsonObject record;
    record["id"] = "o" + std::to_string(i);
    record["phase"] = "during";
    ASSERT_TRUE(orders->Insert(record));
    if (i % 3 == 0) ASSERT_TRUE(orders->Update(record.at("id").as_string(), Obj(R"({"n": 1})")));
    if (i % 10 == 0) ASSERT_TRUE(orders->Delete(record.at("id").as_string()));
  }
  ASSERT_TRUE(WaitFor([&] {
    return plugin->GetReplicatorStats("s3db-0")->state == ReplicatorState::kPaused;
  }));
  std::this_thread::sleep_for(1500ms);
  auto during = plugin->GetReplicatorStats("s3db-0");
  EXPECT_EQ(during->pause_reason, "unavailable");
  EXPECT_GT(during->failed, 0u);
  EXPECT_GT(during->lag_changes, 0u);
  EXPECT_GT(target_store->failed_calls.load(), 0);
  target_store->SetDown(false);
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));

  auto stats = plugin->GetReplicatorStats("s3db-0");
  EXPECT_EQ(stats->dead_letter_count, 0u);
  EXPECT_EQ(stats->dead_lettered, 0u);
  auto source_records = RecordsById(*orders);
  auto target_records = RecordsById(**(*target)->GetResource("orders"));
  ASSERT_EQ(source_records.size(), 110u);
  ASSERT_EQ(target_records.size(), source_records.size());
  for (auto& [id, record] : source_records) {
    auto copy = target_records.find(id);
    ASSERT_NE(copy, target_records.end()) << id;
    EXPECT_EQ(copy->second.at("_sourceRev"), record.at("_rev")) << id;
    EXPECT_EQ(copy->second.at("phase"), record.at("phase"));
  }
  S3DB_ASSERT_OK(source->Close());
}

}  // namespace
}  // namespace s3db::replicator
