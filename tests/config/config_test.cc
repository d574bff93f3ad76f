// The YAML configuration loader: YAML -> JSON typing, environment substitution, sections,
// and error messages that name the file, line and key path.
#include "config/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace s3db::config {
namespace {

std::string ErrorOf(const std::string& yaml) {
  auto config = ParseConfig(yaml, "test.yaml");
  if (config) return "(no error)";
  return config.error().message;
}

Json RootOf(const std::string& yaml) {
  auto document = ParseYaml(yaml, "test.yaml");
  EXPECT_TRUE(document.has_value()) << (document ? "" : document.error().message);
  return document ? document->root : Json();
}

TEST(YamlToJson, ScalarsAreTypedByTheCoreSchema) {
  Json root = RootOf(
      "a: 12\nb: -7\nc: 9223372036854775807\nd: 18446744073709551615\ne: 1.5\nf: true\n"
      "g: False\nh: ~\ni:\nj: '12'\nk: \"true\"\nl: yes\nm: 0x1F\nn: 0o17\no: 1e3\n"
      "p: !!str 5\nq: hello world\n");
  ASSERT_TRUE(root.is_object());
  const JsonObject& o = root.get_object();
  EXPECT_EQ(o.at("a"), Json(12));
  EXPECT_EQ(o.at("b"), Json(-7));
  EXPECT_TRUE(o.at("c").is_int64());
  EXPECT_EQ(o.at("c").get_int64(), INT64_MAX);
  EXPECT_TRUE(o.at("d").is_uint64());
  EXPECT_EQ(o.at("d").get_uint64(), UINT64_MAX);
  EXPECT_TRUE(o.at("e").is_double());
  EXPECT_EQ(o.at("e").get_double(), 1.5);
  EXPECT_EQ(o.at("f"), Json(true));
  EXPECT_EQ(o.at("g"), Json(false));
  EXPECT_TRUE(o.at("h").is_null());
  EXPECT_TRUE(o.at("i").is_null());
  EXPECT_EQ(o.at("j"), Json("12"));
  EXPECT_EQ(o.at("k"), Json("true"));
  EXPECT_EQ(o.at("l"), Json("yes"));  // YAML 1.2: yes is a string
  EXPECT_EQ(o.at("m"), Json(31));
  EXPECT_EQ(o.at("n"), Json(15));
  EXPECT_EQ(o.at("o"), Json(1000.0));
  EXPECT_EQ(o.at("p"), Json("5"));
  EXPECT_EQ(o.at("q"), Json("hello world"));
}

TEST(YamlToJson, IntegersBeyond64BitsAreAnErrorWithAFix) {
  auto document = ParseYaml("big: 123456789012345678901234567890\n", "x.yaml");
  ASSERT_FALSE(document.has_value());
  EXPECT_NE(document.error().message.find("x.yaml:1:"), std::string::npos);
  EXPECT_NE(document.error().message.find("big"), std::string::npos);
  EXPECT_NE(document.error().message.find("quote it"), std::string::npos);
}

TEST(YamlToJson, BlockScalarsNestingAndMergeKeys) {
  Json root = RootOf(
      "base: &base { retries: 3, on: [a, b] }\n"
      "item:\n  <<: *base\n  retries: 5\n"
      "code: |\n  line one\n  line two\n"
      "list:\n  - {x: 1}\n  - [2, 3]\n");
  const JsonObject& o = root.get_object();
  EXPECT_EQ(ToJson(o.at("item")), R"({"retries":5,"on":["a","b"]})");
  EXPECT_EQ(o.at("code"), Json("line one\nline two\n"));
  EXPECT_EQ(ToJson(o.at("list")), R"([{"x":1},[2,3]])");
}

TEST(YamlToJson, DuplicateKeysAreRefused) {
  auto document = ParseYaml("a: 1\nb: 2\na: 3\n", "d.yaml");
  ASSERT_FALSE(document.has_value());
  EXPECT_NE(document.error().message.find("d.yaml:3:1: a: the key is given twice"),
            std::string::npos)
      << document.error().message;
}

TEST(YamlToJson, SyntaxErrorsNameTheLine) {
  auto document = ParseYaml("a: [1, 2\nb: 3\n", "s.yaml");
  ASSERT_FALSE(document.has_value());
  EXPECT_NE(document.error().message.find("s.yaml:"), std::string::npos);
  EXPECT_NE(document.error().message.find("YAML syntax error"), std::string::npos);
}

TEST(YamlToJson, MarksPointAtKeys) {
  auto document = ParseYaml("top:\n  inner:\n    - one\n    - two\n", "m.yaml");
  ASSERT_TRUE(document.has_value());
  EXPECT_EQ(document->marks.at("top.inner").line, 2);
  EXPECT_EQ(document->marks.at("top.inner[1]").line, 4);
}

TEST(EnvironmentSubstitution, ReplacesVariablesAndDefaults) {
  ::setenv("S3DB_TEST_SUBST", "value", 1);
  ::unsetenv("S3DB_TEST_UNSET");
  EXPECT_EQ(*SubstituteEnvironment("a-${S3DB_TEST_SUBST}-b"), "a-value-b");
  EXPECT_EQ(*SubstituteEnvironment("${S3DB_TEST_UNSET:-fallback}"), "fallback");
  EXPECT_EQ(*SubstituteEnvironment("$${S3DB_TEST_SUBST} costs $5"), "${S3DB_TEST_SUBST} costs $5");
  auto missing = SubstituteEnvironment("${S3DB_TEST_UNSET}");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("S3DB_TEST_UNSET is not set"), std::string::npos);
  EXPECT_FALSE(SubstituteEnvironment("${not valid}").has_value());
  EXPECT_FALSE(SubstituteEnvironment("${OPEN").has_value());
}

TEST(EnvironmentSubstitution, PlainScalarsAreTypedAfterSubstitution) {
  ::setenv("S3DB_TEST_PORT", "9000", 1);
  Json root = RootOf("port: ${S3DB_TEST_PORT}\nquoted: '${S3DB_TEST_PORT}'\n");
  EXPECT_EQ(root.get_object().at("port"), Json(9000));
  EXPECT_EQ(root.get_object().at("quoted"), Json("9000"));
  auto error = ParseYaml("a:\n  b: ${S3DB_TEST_UNSET}\n", "e.yaml");
  ASSERT_FALSE(error.has_value());
  EXPECT_NE(error.error().message.find("e.yaml:2:3: a.b: the environment variable"),
            std::string::npos)
      << error.error().message;
}

TEST(ConfigFile, ReadsEverySection) {
  auto config = ParseConfig(R"(
connection: file://./data
stateDir: ./state
resources:
  users: { attributes: { name: "string|required", email: email }, timestamps: true }
  tags:
http: { listen: 127.0.0.1:9500 }
lua: { instructionLimit: 5000, memoryLimitMb: 8 }
replicator:
  verbose: true
  batchSize: 10
  replicators: []
)",
                            "full.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->connection, "file://./data");
  EXPECT_EQ(config->state_dir, "./state");
  ASSERT_EQ(config->resources.size(), 2u);
  EXPECT_EQ(config->resources[0].name, "users");
  EXPECT_TRUE(config->resources[0].timestamps);
  EXPECT_EQ(ToJson(config->resources[0].attributes),
            R"({"name":"string|required","email":"email"})");
  EXPECT_EQ(config->resources[1].name, "tags");
  EXPECT_EQ(config->http.host, "127.0.0.1");
  EXPECT_EQ(config->http.port, 9500);
  EXPECT_EQ(config->http.threads, 64);
  EXPECT_EQ(config->lua.instruction_limit, 5000u);
  EXPECT_EQ(config->lua.memory_limit_bytes, 8u * 1024 * 1024);
  ASSERT_TRUE(config->replicator.has_value());
  EXPECT_EQ(config->replicator->at("batchSize"), Json(10));
}

TEST(ConfigFile, ConnectionStringIsAnAlias) {
  auto config = ParseConfig("connectionString: memory://b\n", "a.yaml");
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->connection, "memory://b");
  EXPECT_NE(ErrorOf("connection: a\nconnectionString: b\n").find("not both"), std::string::npos);
}

TEST(ConfigFile, ErrorsNameFileLineAndPath) {
  EXPECT_EQ(ErrorOf("connection: file://./d\nconection: x\n"),
            "test.yaml:2:1: conection: unknown key (known: connection, connectionString, "
            "stateDir, resources, replicator, http, lua)");
  std::string error = ErrorOf("resources:\n  users:\n    attributes:\n      age: numbr\n");
  EXPECT_NE(error.find("test.yaml:3:5: resources.users.attributes: "), std::string::npos) << error;
  error = ErrorOf("resources:\n  users: { timestamps: 1 }\n");
  EXPECT_NE(error.find("test.yaml:2:12: resources.users.timestamps: expected true or false"),
            std::string::npos)
      << error;
  error = ErrorOf("http:\n  listen: nowhere\n");
  EXPECT_NE(error.find("test.yaml:2:3: http.listen: 'nowhere' is not host:port"), std::string::npos)
      << error;
  error = ErrorOf("http: { threads: 0 }\n");
  EXPECT_NE(error.find("http.threads: 0 is outside 1..1024"), std::string::npos) << error;
  auto threads = ParseConfig("http: { threads: 16 }\n", "t.yaml");
  ASSERT_TRUE(threads.has_value()) << threads.error().message;
  EXPECT_EQ(threads->http.threads, 16);
  EXPECT_NE(ErrorOf("").find("empty"), std::string::npos);
  EXPECT_NE(ErrorOf("- a\n- b\n").find("must be a map"), std::string::npos);
}

TEST(ConfigFile, MissingFileIsNotFound) {
  auto config = LoadConfigFile("/nonexistent/s3db.yaml");
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ErrorCode::kNotFound);
  EXPECT_NE(config.error().message.find("/nonexistent/s3db.yaml"), std::string::npos);
}

TEST(ConfigFile, WithoutReplicatorSectionBuildIsNotFound) {
  auto config = ParseConfig("connection: memory://x\n", "n.yaml");
  ASSERT_TRUE(config.has_value());
  auto options = config->BuildReplicatorOptions();
  ASSERT_FALSE(options.has_value());
  EXPECT_EQ(options.error().code, ErrorCode::kNotFound);
}

TEST(ConfigFile, BuildsReplicatorOptionsWithLuaFunctions) {
  auto config = ParseConfig(R"(
replicator:
  verbose: true
  persistReplicatorLog: true
  batchSize: 50
  maxRetries: 2
  timeout: 1000
  replicators:
    - driver: s3db
      id: backup
      resources:
        users:
          resource: people
          actions: [insert, update]
          transform: |
            function(data) data.full = data.name .. "!" return data end
          shouldReplicate: |
            function(data, action) return data.age == nil or data.age >= 18 end
        orders: "function(data) return { id = data.id, total = data.total } end"
        tags: true
      config: { connectionString: file://./backup }
)",
                            "r.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  auto options = config->BuildReplicatorOptions();
  ASSERT_TRUE(options.has_value()) << options.error().message;
  EXPECT_TRUE(options->verbose);
  EXPECT_TRUE(options->persist_replicator_log);
  EXPECT_EQ(options->batch_size, 50);
  EXPECT_EQ(options->max_retries, 2);
  EXPECT_EQ(options->timeout_ms, 1000);
  ASSERT_EQ(options->replicators.size(), 1u);
  const auto& replicator = options->replicators[0];
  EXPECT_EQ(replicator.id, "backup");
  EXPECT_EQ(replicator.config.at("connectionString"), Json("file://./backup"));

  auto mapping = replicator.resources.Normalize();
  ASSERT_TRUE(mapping.has_value()) << mapping.error().message;
  const auto& users = mapping->at("users");
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].resource, "people");
  EXPECT_EQ(users[0].actions, (std::vector<Action>{Action::kInsert, Action::kUpdate}));
  ASSERT_TRUE(users[0].transform && users[0].should_replicate);
  JsonObject adult = ParseJsonObject(R"({"id":"u1","name":"Ann","age":30})").value();
  JsonObject child = ParseJsonObject(R"({"id":"u2","name":"Bo","age":9})").value();
  EXPECT_EQ(users[0].transform(adult)->at("full"), Json("Ann!"));
  EXPECT_TRUE(users[0].should_replicate(adult, Action::kInsert));
  EXPECT_FALSE(users[0].should_replicate(child, Action::kInsert));

  const auto& orders = mapping->at("orders");
  ASSERT_EQ(orders.size(), 1u);
  ASSERT_TRUE(orders[0].transform);
  JsonObject order = ParseJsonObject(R"({"id":"o1","total":12,"secret":"x"})").value();
  EXPECT_EQ(ToJson(*orders[0].transform(order)), R"({"id":"o1","total":12})");
  EXPECT_EQ(mapping->at("tags").size(), 1u);
}

TEST(ConfigFile, ReplicatorErrorsNameTheYamlLine) {
  std::string yaml =
      "replicator:\n  replicators:\n    - driver: nosuchdriver\n"
      "      resources: [users]\n";
  auto config = ParseConfig(yaml, "bad.yaml");
  ASSERT_TRUE(config.has_value());
  auto options = config->BuildReplicatorOptions();
  ASSERT_FALSE(options.has_value());
  EXPECT_NE(options.error().message.find("bad.yaml:3:7: replicator.replicators[0].driver: "),
            std::string::npos)
      << options.error().message;
  EXPECT_NE(options.error().message.find("nosuchdriver"), std::string::npos);

  config = ParseConfig(
      "replicator:\n  batchSize: 0\n  replicators: [{driver: s3db, resources: [a], "
      "config: {connectionString: 'memory://x'}}]\n",
      "b.yaml");
  ASSERT_TRUE(config.has_value());
  options = config->BuildReplicatorOptions();
  ASSERT_FALSE(options.has_value());
  EXPECT_NE(options.error().message.find("b.yaml:2:3: replicator.batchSize:"), std::string::npos)
      << options.error().message;
}

TEST(ConfigFile, LuaSyntaxErrorsNameTheYamlLine) {
  auto config = ParseConfig(R"(replicator:
  replicators:
    - driver: s3db
      resources:
        users:
          transform: |
            function(data) return data +
      config: { connectionString: "memory://x" }
)",
                            "lua.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  auto options = config->BuildReplicatorOptions();
  ASSERT_FALSE(options.has_value());
  EXPECT_NE(options.error().message.find(
                "lua.yaml:6:11: replicator.replicators[0].resources.users.transform"),
            std::string::npos)
      << options.error().message;
  EXPECT_NE(options.error().message.find("Lua syntax error"), std::string::npos);
}

}  // namespace
}  // namespace s3db::config

namespace s3db::config {
namespace {

TEST(ConfigFile, ExampleConfigsLoad) {
  ::setenv("CRM_TOKEN", "example-token", 1);
  for (const char* name : {"quickstart.yaml", "demo.yaml", "webhook.yaml"}) {
    std::string path = std::string(S3DB_SOURCE_DIR) + "/examples/config/" + name;
    auto config = LoadConfigFile(path);
    ASSERT_TRUE(config.has_value()) << config.error().message;
    EXPECT_FALSE(config->connection.empty()) << name;
    ASSERT_TRUE(config->replicator.has_value()) << name;
    if (std::string(name) == "webhook.yaml" && !replicator::FindDriver("webhook")) continue;
    auto options = config->BuildReplicatorOptions();
    EXPECT_TRUE(options.has_value()) << name << ": " << options.error().message;
  }
}

}  // namespace
}  // namespace s3db::config
