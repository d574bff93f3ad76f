// Configuration checks of the engine: destination keys per driver, replicators without
// "resources" (every resource), and the warning for a mapped resource that does not exist.
#include <gtest/gtest.h>

#include <set>

#include "replicator/replicator_log.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/storage.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::FastOptions;
using s3db::testing::MemoryDatabase;
using s3db::testing::RegisterTestDriver;
using s3db::testing::TempDir;
using s3db::testing::TestReplicator;
using s3db::testing::WaitFor;

JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

// The error of parsing {"replicators": [<replicator>]}, or "" when it parses.
std::string ParseError(std::string_view replicator) {
  RegisterTestDriver();
  auto parsed = ReplicatorPluginOptions::FromJson(
      Obj("{\"replicators\": [" + std::string(replicator) + "]}"));
  return parsed ? "" : parsed.error().message;
}

// ---- 1. unknown keys of a destination object ----------------------------------------------

TEST(DestinationKeys, AMisspeltKeyFailsWithItsPathAndTheKnownKeys) {
  EXPECT_EQ(ParseError(R"({"driver": "s3db", "config": {"connectionString": "memory://x"},
                           "resources": {"users": {"resource": "people", "tranform": "x"}}})"),
            "replicators[0].resources.users.tranform: unknown key; expected one of resource, "
            "transform, actions, shouldReplicate (did you mean 'transform'?)");
  // In an array of destinations too, with the index in the path.
  EXPECT_EQ(ParseError(R"({"driver": "s3db", "config": {"connectionString": "memory://x"},
                           "resources": {"users": ["a",
                                                   {"resource": "b", "action": ["insert"]}]}})"),
            "replicators[0].resources.users[1].action: unknown key; expected one of resource, "
            "transform, actions, shouldReplicate (did you mean 'actions'?)");
  // A key far from every known one gets no suggestion.
  EXPECT_EQ(ParseError(R"({"driver": "webhook", "config": {"url": "http://localhost:1"},
                           "resources": {"users": {"colour": "red"}}})"),
            "replicators[0].resources.users.colour: unknown key; expected one of resource, "
            "transform, actions, shouldReplicate");
}

TEST(DestinationKeys, EachDriverAcceptsTheKeysItDeclares) {
  // postgresql (and its alias postgres): table, schema.
  EXPECT_EQ(ParseError(R"({"driver": "postgresql", "config": {"connectionString": "host=h"},
                           "resources": {"users": {"table": "people", "schema": "audit"}}})"),
            "");
  EXPECT_EQ(ParseError(R"({"driver": "postgres", "config": {"connectionString": "host=h"},
                           "resources": {"users": {"table": "people"}}})"),
            "");
  EXPECT_EQ(ParseError(R"({"driver": "postgresql", "config": {"connectionString": "host=h"},
                           "resources": {"users": {"tabel": "people"}}})"),
            "replicators[0].resources.users.tabel: unknown key; expected one of resource, table, "
            "schema, transform, actions, shouldReplicate (did you mean 'table'?)");
  // bigquery: table, dataset.
  EXPECT_EQ(ParseError(R"({"driver": "bigquery", "config": {"projectId": "p", "datasetId": "d"},
                           "resources": {"users": {"table": "t", "dataset": "other"}}})"),
            "");
  EXPECT_NE(ParseError(R"({"driver": "bigquery", "config": {"projectId": "p", "datasetId": "d"},
                           "resources": {"users": {"schema": "x"}}})")
                .find("users.schema: unknown key; expected one of resource, table, dataset,"),
            std::string::npos);
  // sqs: queueUrl.
  EXPECT_EQ(ParseError(R"({"driver": "sqs", "config": {"queueUrl": "http://q"},
                           "resources": {"orders": {"queueUrl": "http://other"}}})"),
            "");
  // s3db and the file drivers name their destination with "resource" only.
  EXPECT_NE(ParseError(R"({"driver": "s3db", "config": {"connectionString": "memory://x"},
                           "resources": {"users": {"table": "people"}}})")
                .find("users.table: unknown key; expected one of resource, transform"),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"driver": "csv", "config": {"outputPath": "/tmp/x"},
                           "resources": {"users": {"table": "people"}}})")
                .find("users.table: unknown key"),
            std::string::npos);
}

TEST(DestinationKeys, DriverRegistryDeclarationsAreUsed) {
  RegisterTestDriver();
  DeclareDestinationKeys("test", {"partition"});
  EXPECT_EQ(DestinationKeys("test"), std::vector<std::string>{"partition"});
  EXPECT_EQ(ParseError(R"({"driver": "test", "config": {"sink": "s"},
                           "resources": {"users": {"partition": 3}}})"),
            "");
  DeclareDestinationKeys("test", {});
  EXPECT_NE(ParseError(R"({"driver": "test", "config": {"sink": "s"},
                           "resources": {"users": {"partition": 3}}})")
                .find("users.partition: unknown key"),
            std::string::npos);
}

TEST(DestinationKeys, CppDestinationOptionsAreCheckedAtValidate) {
  ReplicatorPluginOptions options = FastOptions();
  ReplicatorConfig config;
  Destination destination;
  destination.options["tabel"] = "people";
  TestReplicator(config, ResourceMapping().Add("users", destination), "pg");
  options.replicators.push_back(config);
  auto invalid = options.Validate();
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().message,
            "replicators[0].resources.users.tabel: unknown key; expected one of resource, "
            "transform, actions, shouldReplicate (Destination::options)");
  // A custom driver that reads the key says so.
  options.replicators[0].destination_keys = {"tabel"};
  S3DB_EXPECT_OK(options.Validate());
}

TEST(ReplicatorIds, AnIdThatIsNotAPlainNameIsRefused) {
  // The id names a folder under the state folder; "../" would put it elsewhere.
  for (std::string id : {"../../../../escaped-id", "a/b", "with space", ".", ""}) {
    std::string error = ParseError(R"({"id": ")" + id + R"(", "driver": "test"})");
    if (id.empty()) {
      EXPECT_EQ(error, "") << "an empty id means the default <driver>-<index>";
      continue;
    }
    EXPECT_NE(error.find("replicators[0].id: '" + id +
                         "' is not a valid replicator id; use 1 "
                         "to 100 letters, digits, '_' and '-'"),
              std::string::npos)
        << id << ": " << error;
  }
  EXPECT_EQ(ParseError(R"({"id": "Backup_2-eu", "driver": "test"})"), "");
}

// ---- 2. a replicator without "resources" takes every resource -------------------------------

class EngineConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = MemoryDatabase(dir_.str() + "/state"); }
  void TearDown() override {
    if (db_) (void)db_->Close();
  }
  Resource& MakeResource(const std::string& name) {
    ResourceDefinition definition;
    definition.name = name;
    auto resource = db_->CreateResource(std::move(definition));
    EXPECT_TRUE(resource.has_value()) << resource.error().ToString();
    return **resource;
  }
  Status Install(ReplicatorPluginOptions options) {
    plugin_ = std::make_shared<ReplicatorPlugin>(std::move(options));
    return db_->UsePlugin(plugin_);
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
  std::shared_ptr<ReplicatorPlugin> plugin_;
};

TEST_F(EngineConfigTest, WithoutResourcesEveryResourceIsReplicatedIncludingNewOnes) {
  RegisterTestDriver();
  auto parsed = ReplicatorPluginOptions::FromJson(Obj(
      R"({"persistReplicatorLog": true, "retryBaseMs": 5, "maxBackoffMs": 50,
          "replicators": [{"id": "all", "driver": "test", "config": {"sink": "every-)" +
      s3db::testing::UniqueToken() + R"("}}]})"));
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_TRUE(parsed->replicators[0].resources.every_resource());
  auto sink =
      s3db::testing::Sink(std::string(parsed->replicators[0].config.at("sink").get_string()));

  Resource& users = MakeResource("users");
  S3DB_ASSERT_OK(Install(std::move(*parsed)));
  ASSERT_TRUE(users.Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  // A resource created after the start is replicated too.
  Resource& orders = MakeResource("orders");
  ASSERT_TRUE(orders.Insert(Obj(R"({"id": "o1", "total": 3})")));
  ASSERT_TRUE(orders.Update("o1", Obj(R"({"total": 4})")));
  ASSERT_TRUE(users.Delete("u1"));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));

  std::set<std::string> delivered;
  for (const auto& item : sink->Delivered()) {
    EXPECT_EQ(item.target, item.source_resource);  // same name
    EXPECT_NE(item.source_resource, "replicator_log");
    delivered.insert(item.source_resource + "/" + item.id + "/" +
                     std::string(ActionName(item.action)));
  }
  EXPECT_EQ(delivered, (std::set<std::string>{"users/u1/insert", "orders/o1/insert",
                                              "orders/o1/update", "users/u1/delete"}));

  // The replicator log was written (so its resource exists) but never replicated.
  ASSERT_TRUE(WaitFor([&] { return db_->FindResource("replicator_log") != nullptr; }));
  auto list = plugin_->ListReplicators();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].resources, (std::vector<std::string>{"orders", "users"}));

  // SyncAllData reads every resource too.
  std::size_t before = sink->DeliveredCount();
  S3DB_ASSERT_OK(plugin_->SyncAllData("all"));
  EXPECT_EQ(sink->DeliveredCount(), before + 1);  // o1 (u1 was deleted)
}

TEST_F(EngineConfigTest, ExplicitlyEmptyMappingIsStillAnError) {
  ReplicatorPluginOptions options = FastOptions();
  ReplicatorConfig config;
  auto mapping = ResourceMapping::FromJson(Obj(R"({"users": false})"));
  ASSERT_TRUE(mapping.has_value());
  TestReplicator(config, *mapping);
  options.replicators.push_back(config);
  auto invalid = options.Validate();
  ASSERT_FALSE(invalid.has_value());
  EXPECT_NE(invalid.error().message.find("replicators[0].resources: no resources"),
            std::string::npos);
}

TEST_F(EngineConfigTest, ALogResourceNamingAResourceThatEveryResourceTakesIsRefused) {
  // Without resources a replicator takes every resource except the log's: naming an existing
  // resource as the log would stop its replication without a word.
  MakeResource("users");
  ReplicatorPluginOptions options = FastOptions();
  options.persist_replicator_log = true;
  options.replicator_log_resource = "users";
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping(), "all");
  ASSERT_TRUE(config.resources.every_resource());
  options.replicators.push_back(config);
  auto installed = Install(options);
  ASSERT_FALSE(installed.has_value());
  EXPECT_NE(installed.error().message.find("replicatorLogResource: 'users' is a resource that "
                                           "replicators[0] replicates"),
            std::string::npos)
      << installed.error().message;
}

TEST_F(EngineConfigTest, ALogResourceThePluginCreatedEarlierIsNotRefused) {
  // The log resource left by an earlier run has the log's fields: it is the log, not a
  // resource of the application.
  S3DB_ASSERT_OK(db_->CreateResource(internal::ReplicatorLogDefinition("replicator_log")));
  ReplicatorPluginOptions options = FastOptions();
  options.persist_replicator_log = true;
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping(), "all");
  options.replicators.push_back(config);
  S3DB_EXPECT_OK(Install(options));
}

TEST_F(EngineConfigTest, ADestinationNameTheDriverCannotUseIsRefusedAtStart) {
  // Before: the replicators started, then every change was dead-lettered at delivery.
  MakeResource("users");
  struct Case {
    std::string driver;
    JsonObject config;
    std::string mapping;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"s3db", Obj(R"({"connectionString": "memory://escape-target"})"), R"({"users": "../x"})",
       "replicators[0].resources.users: destination '../x' is not a resource name; use 1 to "
       "100 letters, digits, '_' and '-' (replicator s3db-0, driver s3db)"},
      {"jsonl", Obj(R"({"outputPath": ")" + dir_.str() + R"(/out"})"),
       R"({"users": "../../evil3"})",
       "replicators[0].resources.users: destination name '../../evil3' is not a plain file "
       "name"},
  };
  for (const Case& test : cases) {
    ReplicatorPluginOptions options = FastOptions();
    ReplicatorConfig config;
    config.driver = test.driver;
    config.config = test.config;
    auto mapping = ResourceMapping::FromJson(Obj(test.mapping));
    ASSERT_TRUE(mapping.has_value()) << mapping.error().message;
    config.resources = *mapping;
    options.replicators.push_back(config);
    auto installed = Install(options);
    ASSERT_FALSE(installed.has_value()) << test.driver;
    EXPECT_NE(installed.error().message.find(test.expected), std::string::npos)
        << installed.error().message;
    db_ = MemoryDatabase(dir_.str() + "/state-" + test.driver);
    MakeResource("users");
  }
}

TEST_F(EngineConfigTest, SecretsOfUrlsInAnyDriversConfigAreMaskedOnceInstalled) {
  // Whatever the driver, a URL's password and secret query values in its config are sent to
  // the target, which may echo them: the engine registers them before the driver starts.
  MakeResource("users");
  ReplicatorPluginOptions options = FastOptions();
  ReplicatorConfig config;
  TestReplicator(config, ResourceMapping().Add("users"), "t");
  config.config["nested"] =
      Obj(R"({"endpoint": "https://svc:EngineUrlPass42@host/x?api_key=EngineQueryKey42"})");
  options.replicators.push_back(config);
  S3DB_ASSERT_OK(Install(options));
  EXPECT_EQ(RedactSecrets("echo EngineUrlPass42 EngineQueryKey42"), "echo *** ***");
}

// ---- 3. a mapped source resource that does not exist ----------------------------------------

TEST_F(EngineConfigTest, MissingSourceResourceWarnsButStarts) {
  MakeResource("users");
  ReplicatorPluginOptions options = FastOptions();
  ReplicatorConfig config;
  auto sink = TestReplicator(config, ResourceMapping().Add("users").Add("userz"), "typo");
  options.replicators.push_back(config);
  plugin_ = std::make_shared<ReplicatorPlugin>(std::move(options));
  std::vector<JsonObject> warnings;
  std::mutex mutex;
  plugin_->On("replicator_warning", [&](const Json& event) {
    std::lock_guard lock(mutex);
    warnings.push_back(event.as_object());
  });
  S3DB_ASSERT_OK(db_->UsePlugin(plugin_));
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0].at("replicator").as_string(), "typo");
    EXPECT_EQ(warnings[0].at("driver").as_string(), "test");
    EXPECT_EQ(warnings[0].at("resource").as_string(), "userz");
    EXPECT_EQ(warnings[0].at("warning").as_string(), "missing_resource");
    EXPECT_NE(std::string(warnings[0].at("message").as_string())
                  .find("source resource 'userz' does not exist"),
              std::string::npos);
  }
  // It still replicates, and picks the resource up once it exists.
  Resource& userz = MakeResource("userz");
  ASSERT_TRUE(userz.Insert(Obj(R"({"id": "z1"})")));
  S3DB_ASSERT_OK(plugin_->WaitIdle(10s));
  ASSERT_EQ(sink->DeliveredCount(), 1u);
  EXPECT_EQ(sink->Delivered()[0].source_resource, "userz");
}

}  // namespace
}  // namespace s3db::replicator
