// Every "resources" syntax of the spec, normalized; option parsing and its error messages.
#include <gtest/gtest.h>

#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using s3db::testing::RegisterTestDriver;

Json Parse(std::string_view text) {
  auto value = ParseJson(text);
  EXPECT_TRUE(value.has_value()) << text;
  return value ? *value : Json();
}

std::map<std::string, std::vector<Destination>, std::less<>> Normalized(
    std::string_view json, const std::vector<std::string>& driver_keys = {}) {
  auto mapping = ResourceMapping::FromJson(Parse(json), "resources", nullptr, driver_keys);
  EXPECT_TRUE(mapping.has_value()) << (mapping ? "" : mapping.error().message);
  auto normalized = mapping->Normalize();
  EXPECT_TRUE(normalized.has_value());
  return *normalized;
}

const std::vector<Action> kAllActions = {Action::kInsert, Action::kUpdate, Action::kDelete};

TEST(ResourceMapping, ArrayOfNamesReplicatesEachResourceToItself) {
  auto routes = Normalized(R"(["users", "products", "orders"])");
  ASSERT_EQ(routes.size(), 3u);
  for (const char* name : {"users", "products", "orders"}) {
    ASSERT_EQ(routes[name].size(), 1u);
    EXPECT_EQ(routes[name][0].resource, name);
    EXPECT_EQ(routes[name][0].actions, kAllActions);
    EXPECT_FALSE(routes[name][0].transform);
  }
}

TEST(ResourceMapping, ObjectOfNamesRenamesResources) {
  auto routes = Normalized(R"({"users": "people", "products": "items",
                               "orders": "order_history"})");
  EXPECT_EQ(routes["users"][0].resource, "people");
  EXPECT_EQ(routes["products"][0].resource, "items");
  EXPECT_EQ(routes["orders"][0].resource, "order_history");
}

TEST(ResourceMapping, TrueKeepsTheNameAndEveryAction) {
  auto routes = Normalized(R"({"orders": true, "users": true})");
  EXPECT_EQ(routes["orders"][0].resource, "orders");
  EXPECT_EQ(routes["users"][0].actions, kAllActions);
}

TEST(ResourceMapping, ObjectFormKeepsResourceActionsAndDriverOptions) {
  auto routes = Normalized(
      R"({"users": {"resource": "people", "actions": ["insert", "update"], "table": "t1"}})",
      {"table"});
  const Destination& destination = routes["users"][0];
  EXPECT_EQ(destination.resource, "people");
  EXPECT_EQ(destination.actions, (std::vector<Action>{Action::kInsert, Action::kUpdate}));
  EXPECT_EQ(destination.options.at("table").as_string(), "t1");
}

TEST(ResourceMapping, ObjectWithoutResourceUsesTheSourceName) {
  auto routes = Normalized(R"({"payments": {"actions": ["delete"]}})");
  EXPECT_EQ(routes["payments"][0].resource, "payments");
  EXPECT_EQ(routes["payments"][0].actions, std::vector<Action>{Action::kDelete});
}

TEST(ResourceMapping, ArrayOfDestinationsGivesSeveralDestinations) {
  auto routes = Normalized(
      R"({"users": ["people", {"resource": "user_analytics"}, {"resource": "audit_trail",
          "actions": ["insert"]}]})");
  ASSERT_EQ(routes["users"].size(), 3u);
  EXPECT_EQ(routes["users"][0].resource, "people");
  EXPECT_EQ(routes["users"][1].resource, "user_analytics");
  EXPECT_EQ(routes["users"][2].resource, "audit_trail");
  EXPECT_EQ(routes["users"][2].actions, std::vector<Action>{Action::kInsert});
}

TEST(ResourceMapping, BuildersExpressFunctionsAndMultipleDestinations) {
  ResourceMapping mapping;
  Destination people;
  people.resource = "people";
  people.transform = [](const JsonObject& data) -> std::optional<JsonObject> { return data; };
  people.should_replicate = [](const JsonObject&, Action) { return true; };
  mapping.Add("users", people);
  mapping.Add("users", "audit");
  mapping.Add("orders", [](const JsonObject& data) -> std::optional<JsonObject> { return data; });
  mapping.Add("products");
  auto routes = mapping.Normalize();
  ASSERT_TRUE(routes.has_value());
  ASSERT_EQ((*routes)["users"].size(), 2u);
  EXPECT_TRUE((*routes)["users"][0].transform);
  EXPECT_TRUE((*routes)["users"][0].should_replicate);
  EXPECT_EQ((*routes)["users"][1].resource, "audit");
  EXPECT_EQ((*routes)["orders"][0].resource, "orders");  // function-only keeps the name
  EXPECT_TRUE((*routes)["orders"][0].transform);
  EXPECT_EQ((*routes)["products"][0].actions, kAllActions);
}

TEST(ResourceMapping, FunctionHooksCompileTransformsFromConfigText) {
  MappingFunctions functions;
  int compiled = 0;
  functions.compile_transform = [&](const Json& code, const std::string& path)
      -> Result<Transform> {
    ++compiled;
    EXPECT_TRUE(code.is_string());
    EXPECT_FALSE(path.empty());
    return Transform([](const JsonObject& data) -> std::optional<JsonObject> { return data; });
  };
  functions.compile_should_replicate = [&](const Json&, const std::string&)
      -> Result<ShouldReplicate> {
    return ShouldReplicate([](const JsonObject&, Action) { return true; });
  };
  functions.is_function = [](const Json& value) {
    return value.is_string() && value.get_string().starts_with("function");
  };
  auto mapping = ResourceMapping::FromJson(
      Parse(R"({"users": "function(data) return data end",
                "orders": {"resource": "o", "transform": "function(d) return d end",
                           "shouldReplicate": "function(d, a) return true end"}})"),
      "resources", &functions);
  ASSERT_TRUE(mapping.has_value()) << mapping.error().message;
  auto routes = mapping->Normalize();
  EXPECT_EQ(compiled, 2);
  EXPECT_EQ((*routes)["users"][0].resource, "users");
  EXPECT_TRUE((*routes)["users"][0].transform);
  EXPECT_TRUE((*routes)["orders"][0].should_replicate);
}

TEST(ResourceMapping, UnknownActionNamesTheFullPath) {
  auto mapping = ResourceMapping::FromJson(
      Parse(R"({"users": ["a", "b", {"resource": "c", "actions": ["insert", "upsert"]}]})"),
      "replicators[1].resources");
  ASSERT_FALSE(mapping.has_value());
  EXPECT_EQ(mapping.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(mapping.error().message,
            "replicators[1].resources.users[2].actions: unknown action 'upsert' "
            "(known: insert, update, delete)");
}

TEST(ResourceMapping, RejectsTransformsInPlainJson) {
  auto mapping = ResourceMapping::FromJson(Parse(R"({"users": {"transform": "x"}})"));
  ASSERT_FALSE(mapping.has_value());
  EXPECT_NE(mapping.error().message.find("resources.users.transform"), std::string::npos);
}

TEST(ResourceMapping, RejectsWrongShapes) {
  EXPECT_FALSE(ResourceMapping::FromJson(Parse("42")).has_value());
  EXPECT_FALSE(ResourceMapping::FromJson(Parse(R"([1])")).has_value());
  EXPECT_FALSE(ResourceMapping::FromJson(Parse(R"({"users": 3})")).has_value());
  EXPECT_FALSE(ResourceMapping::FromJson(Parse(R"({"users": []})")).has_value());
  auto empty_actions = ResourceMapping::FromJson(Parse(R"({"users": {"actions": []}})"));
  ASSERT_FALSE(empty_actions.has_value());
  EXPECT_NE(empty_actions.error().message.find("resources.users.actions"), std::string::npos);
}

TEST(ReplicatorPluginOptions, ParsesTheSpecNamesAndDefaults) {
  RegisterTestDriver();
  auto parsed = ReplicatorPluginOptions::FromJson(Parse(R"({
      "verbose": true, "persistReplicatorLog": true, "replicatorLogResource": "logs",
      "logErrors": false, "batchSize": 50, "maxRetries": 5, "timeout": 60000,
      "replicators": [
        {"driver": "test", "resources": ["users"], "config": {"sink": "x"}},
        {"id": "second", "driver": "test", "resources": {"orders": true},
         "config": {"sink": "y"}, "enabled": false}]})").as_object());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_TRUE(parsed->verbose);
  EXPECT_TRUE(parsed->persist_replicator_log);
  EXPECT_EQ(parsed->replicator_log_resource, "logs");
  EXPECT_FALSE(parsed->log_errors);
  EXPECT_EQ(parsed->batch_size, 50);
  EXPECT_EQ(parsed->max_retries, 5);
  EXPECT_EQ(parsed->timeout_ms, 60000);
  ASSERT_EQ(parsed->replicators.size(), 2u);
  EXPECT_EQ(parsed->replicators[1].id, "second");
  EXPECT_FALSE(parsed->replicators[1].enabled);

  ReplicatorPluginOptions defaults;
  EXPECT_TRUE(defaults.enabled);
  EXPECT_FALSE(defaults.verbose);
  EXPECT_FALSE(defaults.persist_replicator_log);
  EXPECT_EQ(defaults.replicator_log_resource, "replicator_log");
  EXPECT_TRUE(defaults.log_errors);
  EXPECT_EQ(defaults.batch_size, 100);
  EXPECT_EQ(defaults.max_retries, 3);
  EXPECT_EQ(defaults.timeout_ms, 30000);
  EXPECT_EQ(defaults.fsync, "batch");
  EXPECT_EQ(defaults.max_backoff_ms, 30000);
  EXPECT_EQ(defaults.probe_max_ms, 5000);
  auto probe = ReplicatorPluginOptions::FromJson(Parse(R"({"probeMaxMs": 2000})").as_object());
  ASSERT_TRUE(probe.has_value()) << probe.error().message;
  EXPECT_EQ(probe->probe_max_ms, 2000);
  auto zero = ReplicatorPluginOptions::FromJson(Parse(R"({"probeMaxMs": 0})").as_object());
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().message, "probeMaxMs: must be at least 1");
}

TEST(ReplicatorPluginOptions, ErrorsNameTheOption) {
  RegisterTestDriver();
  auto unknown_driver = ReplicatorPluginOptions::FromJson(
      Parse(R"({"replicators": [{"driver": "nope", "resources": ["users"]}]})").as_object());
  ASSERT_FALSE(unknown_driver.has_value());
  EXPECT_NE(unknown_driver.error().message.find("replicators[0].driver: unknown driver 'nope'"),
            std::string::npos)
      << unknown_driver.error().message;
  EXPECT_NE(unknown_driver.error().message.find("s3db"), std::string::npos);

  auto bad_type = ReplicatorPluginOptions::FromJson(Parse(R"({"batchSize": "big"})").as_object());
  ASSERT_FALSE(bad_type.has_value());
  EXPECT_EQ(bad_type.error().message, "batchSize: expected a number");

  auto unknown_key = ReplicatorPluginOptions::FromJson(Parse(R"({"retries": 3})").as_object());
  ASSERT_FALSE(unknown_key.has_value());
  EXPECT_NE(unknown_key.error().message.find("retries: unknown option"), std::string::npos);

  auto bad_action = ReplicatorPluginOptions::FromJson(Parse(R"({"replicators": [
      {"driver": "test", "resources": ["a"], "config": {"sink": "x"}},
      {"driver": "test", "config": {"sink": "x"},
       "resources": {"users": ["a", "b", {"actions": ["upsert"]}]}}]})").as_object());
  ASSERT_FALSE(bad_action.has_value());
  EXPECT_EQ(bad_action.error().message,
            "replicators[1].resources.users[2].actions: unknown action 'upsert' "
            "(known: insert, update, delete)");

  auto duplicate = ReplicatorPluginOptions::FromJson(Parse(R"({"replicators": [
      {"id": "a", "driver": "test", "resources": ["x"]},
      {"id": "a", "driver": "test", "resources": ["y"]}]})").as_object());
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_NE(duplicate.error().message.find("replicators[1].id"), std::string::npos);

  auto empty_resources = ReplicatorPluginOptions::FromJson(
      Parse(R"({"replicators": [{"driver": "test", "resources": []}]})").as_object());
  ASSERT_FALSE(empty_resources.has_value());
  EXPECT_EQ(empty_resources.error().message,
            "replicators[0].resources: is empty; leave 'resources' out to replicate every "
            "resource");

  auto fsync = ReplicatorPluginOptions::FromJson(Parse(R"({"fsync": "sometimes"})").as_object());
  ASSERT_FALSE(fsync.has_value());
  EXPECT_NE(fsync.error().message.find("fsync"), std::string::npos);
}

TEST(DriverRegistry, ListsBuiltinAndRegisteredDrivers) {
  RegisterTestDriver();
  auto names = RegisteredDrivers();
  EXPECT_NE(std::find(names.begin(), names.end(), "s3db"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "test"), names.end());
  EXPECT_TRUE(FindDriver("s3db").has_value());
  EXPECT_FALSE(FindDriver("no-such-driver").has_value());
}

}  // namespace
}  // namespace s3db::replicator
