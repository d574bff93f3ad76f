// Tests of the BigQuery driver against a FAKE BigQuery REST API and OAuth token endpoint
// (tests/fakes/bigquery_fake.h): no BigQuery server runs locally. The driver is driven
// directly (construct, Start, Deliver) and through the ReplicatorPlugin with a memory://
// database.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "drivers/bigquery/bigquery_auth.h"
#include "drivers/bigquery/bigquery_driver.h"
#include "drivers/bigquery/bigquery_schema.h"
#include "fakes/bigquery_fake.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"
#include "test_util.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using Batch = std::vector<DeliveryItem>;
using bigquery::Field;
using bigquery::FieldType;
using testing::FakeBigQuery;
using testing::FakeBigQueryReply;

constexpr const char* kProject = "test-project";
constexpr const char* kDataset = "analytics";

JsonObject Obj(std::string_view text) {
  auto parsed = ParseJsonObject(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed ? *parsed : JsonObject{};
}

std::string Text(const JsonObject& object, std::string_view key) {
  const Json* value = object.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
}

DeliveryItem Item(const std::string& id, std::uint64_t revision, Action action, JsonObject data,
                  const std::string& target = "users", const std::string& resource = "users") {
  static std::uint64_t sequence = 0;
  DeliveryItem item;
  item.source_resource = resource;
  item.target = target;
  item.id = id;
  item.revision = revision;
  item.action = action;
  item.change_id = resource + ":" + id + ":" + std::to_string(revision);
  item.sequence = ++sequence;
  item.timestamp_ms = 1700000000000 + static_cast<std::int64_t>(revision);
  data["id"] = id;
  item.data = std::move(data);
  return item;
}

bool WaitUntil(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

std::map<std::string, JsonObject> RowsByChangeId(const std::vector<JsonObject>& rows) {
  std::map<std::string, JsonObject> out;
  for (const JsonObject& row : rows) out[Text(row, "_change_id")] = row;
  return out;
}

// Lines the driver logs, captured for the duration of a test.
class LogCapture {
 public:
  LogCapture() {
    SetBigqueryLogObserver([this](std::string_view line) {
      std::lock_guard lock(mutex_);
      text_ += std::string(line) + "\n";
    });
  }
  ~LogCapture() { SetBigqueryLogObserver({}); }
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  std::mutex mutex_;
  std::string text_;
};

// The base64 body of the PEM key: any piece of it in a message is a leak.
std::vector<std::string> KeyFragments() {
  std::vector<std::string> fragments;
  std::string pem = FakeBigQuery::PrivateKeyPem();
  std::size_t start = pem.find('\n') + 1;
  for (std::size_t at = start; at + 40 < pem.size() && fragments.size() < 20; at += 64) {
    fragments.push_back(pem.substr(at, 40));
  }
  return fragments;
}

void ExpectNoSecret(const std::string& text, const JsonObject* user_credentials = nullptr) {
  if (user_credentials != nullptr) {
    for (const char* secret : {"client_secret", "refresh_token"}) {
      std::string value = Text(*user_credentials, secret);
      ASSERT_FALSE(value.empty());
      EXPECT_EQ(text.find(value), std::string::npos) << secret << " leaked: " << text;
    }
  }
  EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos) << text;
  EXPECT_EQ(text.find("ya29."), std::string::npos) << text;
  for (const std::string& fragment : KeyFragments()) {
    EXPECT_EQ(text.find(fragment), std::string::npos) << text;
  }
}

// Sets (value) or removes (nullptr) an environment variable until the end of the scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = std::string(old);
    Set(value);
  }
  ~ScopedEnv() { Set(old_ ? old_->c_str() : nullptr); }
  void Set(const char* value) {
    if (value != nullptr) {
      ::setenv(name_.c_str(), value, 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// Application Default Credentials sources pointed at an empty private folder: no
// GOOGLE_APPLICATION_CREDENTIALS, no CLOUDSDK_CONFIG, HOME without a gcloud folder.
struct IsolatedDefaults {
  testing::TempDir dir;
  ScopedEnv variable{"GOOGLE_APPLICATION_CREDENTIALS", nullptr};
  ScopedEnv cloudsdk{"CLOUDSDK_CONFIG", nullptr};
  ScopedEnv home{"HOME", dir.str().c_str()};

  // Writes `content` to a file under the private folder and returns its path.
  std::string Write(const std::string& name, const JsonObject& content) {
    std::filesystem::path path = std::filesystem::path(dir.str()) / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << ToJson(content);
    return path.string();
  }
};

class BigqueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.Start());
    fake_.CreateDataset(kProject, kDataset);
  }

  JsonObject Config(JsonObject extra = {}) {
    JsonObject config;
    config["projectId"] = kProject;
    config["datasetId"] = kDataset;
    config["endpoint"] = fake_.endpoint();
    config["credentials"] = fake_.ServiceAccountKey();
    config["jobPollIntervalMs"] = 5;
    for (auto& [key, value] : extra) config[key] = value;
    return config;
  }

  // A driver for exactly `config` (no defaults added), on the fake's clock.
  std::unique_ptr<BigqueryDriver> DriverFor(const JsonObject& config) {
    auto options = ParseBigqueryOptions(config);
    EXPECT_TRUE(options.has_value()) << options.error().ToString();
    if (!options) return nullptr;
    options->clock = [this] { return fake_.Now(); };
    DriverContext context;
    context.replicator_id = "bq-test";
    return std::make_unique<BigqueryDriver>(std::move(*options), std::move(context));
  }

  // Config() without "credentials": the driver looks for Application Default Credentials.
  JsonObject ConfigWithoutCredentials(JsonObject extra = {}) {
    JsonObject config = Config(std::move(extra));
    config.erase("credentials");
    return config;
  }

  // Starts `driver`, delivers two inserts and checks that they arrived.
  void ExpectRowsArrive(BigqueryDriver& driver, const std::string& table) {
    S3DB_ASSERT_OK(driver.Start());
    auto results = driver.Deliver(Batch{Item("u1", 1, Action::kInsert, {{"name", "Ann"}}, table),
                                        Item("u2", 1, Action::kInsert, {{"name", "Bob"}}, table)},
                                  10s);
    for (const auto& result : results) {
      EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
    }
    EXPECT_EQ(Rows(table).size(), 2u);
  }

  std::unique_ptr<BigqueryDriver> Driver(JsonObject extra = {}, DriverContext context = {}) {
    auto options = ParseBigqueryOptions(Config(std::move(extra)));
    EXPECT_TRUE(options.has_value()) << options.error().ToString();
    if (!options) return nullptr;
    options->clock = [this] { return fake_.Now(); };
    if (context.replicator_id.empty()) context.replicator_id = "bq-test";
    return std::make_unique<BigqueryDriver>(std::move(*options), std::move(context));
  }

  std::unique_ptr<BigqueryDriver> Started(JsonObject extra = {}, DriverContext context = {}) {
    auto driver = Driver(std::move(extra), std::move(context));
    if (!driver) return nullptr;
    auto started = driver->Start();
    EXPECT_TRUE(started.has_value()) << started.error().ToString();
    return driver;
  }

  static DriverContext WithAttributes(const std::string& attributes_json) {
    DriverContext context;
    context.replicator_id = "bq-test";
    JsonObject definition;
    definition["attributes"] = Obj(attributes_json);
    context.resource_definition =
        [definition](std::string_view resource) -> std::optional<JsonObject> {
      if (resource != "users") return std::nullopt;
      return definition;
    };
    return context;
  }

  std::vector<JsonObject> Rows(const std::string& table = "users") {
    return fake_.Rows(kProject, kDataset, table);
  }

  std::vector<Field> TableFields(const std::string& table = "users") {
    auto resource = fake_.Table(kProject, kDataset, table);
    EXPECT_TRUE(resource.has_value()) << table;
    if (!resource) return {};
    auto fields = bigquery::FieldsFromJson(resource->at("schema").at("fields"));
    EXPECT_TRUE(fields.has_value());
    return fields ? *fields : std::vector<Field>{};
  }

  FakeBigQuery fake_;
};

// ---------------------------------------------------------------------------------------------
// Options

TEST_F(BigqueryTest, ParsesEveryOption) {
  auto options = ParseBigqueryOptions(Config(Obj(R"({
      "location": "EU", "tokenUri": "http://127.0.0.1:1/token", "insertMethod": "batch",
      "mode": "dml", "ignoreUnknownValues": true, "skipInvalidRows": true, "maxRetries": 2,
      "tableOptions": {"timePartitioning": {"type": "DAY", "field": "_changed_at",
                                            "expirationMs": 86400000},
                       "clustering": ["id", "_action"]},
      "createTables": false, "exactNumbers": true, "attributeColumns": "present",
      "maxRowsPerRequest": 250, "maxRequestBytes": 100000, "jobPollIntervalMs": 50})")));
  ASSERT_TRUE(options.has_value()) << options.error().ToString();
  EXPECT_EQ(options->project_id, kProject);
  EXPECT_EQ(options->dataset_id, kDataset);
  EXPECT_EQ(options->location, "EU");
  EXPECT_EQ(options->token_uri, "http://127.0.0.1:1/token");
  EXPECT_EQ(options->insert_method, BigqueryInsertMethod::kBatch);
  EXPECT_EQ(options->mode, BigqueryMode::kMerge);
  EXPECT_TRUE(options->ignore_unknown_values);
  EXPECT_TRUE(options->skip_invalid_rows);
  ASSERT_TRUE(options->max_retries.has_value());
  EXPECT_EQ(*options->max_retries, 2);
  ASSERT_TRUE(options->time_partitioning.has_value());
  EXPECT_EQ(Text(*options->time_partitioning, "type"), "DAY");
  EXPECT_EQ(Text(*options->time_partitioning, "expirationMs"), "86400000");
  EXPECT_EQ(options->clustering, (std::vector<std::string>{"id", "_action"}));
  EXPECT_FALSE(options->create_tables);
  EXPECT_TRUE(options->exact_numbers);
  EXPECT_FALSE(options->create_all_attribute_columns);
  EXPECT_EQ(options->max_rows_per_request, 250u);
  EXPECT_EQ(options->max_request_bytes, 100000u);
  EXPECT_EQ(options->job_poll_interval, 50ms);
  EXPECT_EQ(options->credentials.client_email, "replicator@test-project.iam.gserviceaccount.com");
}

TEST_F(BigqueryTest, DefaultsAreStreamingChangelogWithTheKeysProject) {
  JsonObject config;
  config["credentials"] = fake_.ServiceAccountKey("from-the-key");
  config["datasetId"] = kDataset;
  auto options = ParseBigqueryOptions(config);
  ASSERT_TRUE(options.has_value()) << options.error().ToString();
  EXPECT_EQ(options->project_id, "from-the-key");
  EXPECT_EQ(options->insert_method, BigqueryInsertMethod::kStreaming);
  EXPECT_EQ(options->mode, BigqueryMode::kChangelog);
  EXPECT_EQ(options->endpoint, "https://bigquery.googleapis.com");
  EXPECT_FALSE(options->max_retries.has_value());
  EXPECT_EQ(options->max_rows_per_request, 500u);
  EXPECT_EQ(options->max_request_bytes, 9u * 1024 * 1024);
  EXPECT_TRUE(options->create_tables);
  EXPECT_FALSE(options->ignore_unknown_values);
  EXPECT_FALSE(options->skip_invalid_rows);
}

TEST_F(BigqueryTest, RefusesBadConfigsNamingTheOption) {
  struct Case {
    const char* extra;
    const char* option;
  };
  const Case cases[] = {
      {R"({"insertMethod": "bulk"})", "insertMethod"},
      {R"({"mode": "upsert"})", "mode"},
      {R"({"maxRetries": -1})", "maxRetries"},
      {R"({"maxRowsPerRequest": 10001})", "maxRowsPerRequest"},
      {R"({"maxRequestBytes": 20000000})", "maxRequestBytes"},
      {R"({"endpoint": "ftp://x"})", "endpoint"},
      {R"({"datasetId": "my-dataset"})", "datasetId"},
      {R"({"projectId": "Bad_Project"})", "projectId"},
      {R"({"location": "us east"})", "location"},
      {R"({"tableOptions": {"clustering": ["a", "b", "c", "d", "e"]}})", "clustering"},
      {R"({"tableOptions": {"timePartitioning": {"type": "WEEK"}}})", "timePartitioning.type"},
      {R"({"tableOptions": {"timePartitioning": {"field": "x"}}})", "timePartitioning.type"},
      {R"({"ignoreUnknownValues": "yes"})", "ignoreUnknownValues"},
      {R"({"attributeColumns": "some"})", "attributeColumns"},
      {R"({"batchSize": 10})", "batchSize"},
  };
  for (const Case& test : cases) {
    auto options = ParseBigqueryOptions(Config(Obj(test.extra)));
    ASSERT_FALSE(options.has_value()) << test.extra;
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(options.error().message.find(test.option), std::string::npos)
        << test.extra << " -> " << options.error().message;
  }
}

TEST_F(BigqueryTest, CredentialsComeInlineAsTextFromAFileOrFromTheEnvironment) {
  IsolatedDefaults defaults;
  std::string path = defaults.Write("key.json", fake_.ServiceAccountKey());
  std::string text = ToJson(fake_.ServiceAccountKey());

  for (const Json& credentials : {Json(text), Json(path)}) {
    JsonObject config = Config();
    config["credentials"] = credentials;
    auto options = ParseBigqueryOptions(config);
    ASSERT_TRUE(options.has_value()) << options.error().ToString();
    EXPECT_EQ(options->credentials.private_key_pem, FakeBigQuery::PrivateKeyPem());
  }

  defaults.variable.Set(path.c_str());
  for (const Json& not_given : {Json(nullptr), Json(JsonObject{}), Json("")}) {
    JsonObject config = ConfigWithoutCredentials();
    if (!not_given.is_null()) config["credentials"] = not_given;
    auto options = ParseBigqueryOptions(config);
    ASSERT_TRUE(options.has_value()) << options.error().ToString();
    EXPECT_EQ(options->credentials.origin, "GOOGLE_APPLICATION_CREDENTIALS file '" + path + "'");
  }
  defaults.variable.Set(nullptr);
  auto missing = ParseBigqueryOptions(ConfigWithoutCredentials());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kInvalidArgument);
  for (const char* source :
       {"GOOGLE_APPLICATION_CREDENTIALS", "gcloud auth application-default login",
        "application_default_credentials.json"}) {
    EXPECT_NE(missing.error().message.find(source), std::string::npos) << missing.error().message;
  }
  // A variable naming a missing file is an error naming it (the well-known file is not tried).
  defaults.variable.Set("/no/such/key.json");
  auto unreadable = ParseBigqueryOptions(ConfigWithoutCredentials());
  ASSERT_FALSE(unreadable.has_value());
  EXPECT_NE(
      unreadable.error().message.find("GOOGLE_APPLICATION_CREDENTIALS file '/no/such/key.json'"),
      std::string::npos)
      << unreadable.error().message;
}

TEST_F(BigqueryTest, GoogleApplicationCredentialsKeyFileSignsTheTokenExchange) {
  IsolatedDefaults defaults;
  JsonObject key = fake_.ServiceAccountKey();
  key["private_key_id"] = "key-from-the-variable";
  defaults.variable.Set(defaults.Write("sa/key.json", key).c_str());

  // No inline credentials: the driver reads the file, signs the JWT with its key and the fake
  // verifies the signature against the test key's public key before it issues a token.
  auto driver = DriverFor(ConfigWithoutCredentials());
  ASSERT_NE(driver, nullptr);
  ExpectRowsArrive(*driver, "users");
  auto grants = fake_.token_grants();
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].grant_type, "urn:ietf:params:oauth:grant-type:jwt-bearer");
  EXPECT_EQ(grants[0].key_id, "key-from-the-variable");
  EXPECT_EQ(grants[0].subject, Text(key, "client_email"));
  EXPECT_TRUE(grants[0].accepted) << grants[0].error;

  // The same variable naming a key signed by another private key: the fake's signature check
  // refuses it, and Start says so.
  defaults.variable.Set(
      defaults.Write("sa/other.json", fake_.UntrustedServiceAccountKey()).c_str());
  auto refused = DriverFor(ConfigWithoutCredentials());
  ASSERT_NE(refused, nullptr);
  auto started = refused->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kUnauthorized);
  EXPECT_NE(started.error().message.find("Invalid JWT Signature"), std::string::npos)
      << started.error().message;
  grants = fake_.token_grants();
  ASSERT_EQ(grants.size(), 2u);
  EXPECT_FALSE(grants[1].accepted);
  EXPECT_EQ(grants[1].key_id, "fake-key-unknown");
}

// The refresh-token grants the fake accepted, by client_id.
int AcceptedRefreshGrants(const FakeBigQuery& fake) {
  int count = 0;
  for (const auto& grant : fake.token_grants()) {
    if (grant.grant_type == "refresh_token" && grant.accepted) ++count;
  }
  return count;
}

TEST_F(BigqueryTest, AuthorizedUserCredentialsUseTheRefreshTokenGrant) {
  IsolatedDefaults defaults;
  JsonObject user = fake_.AuthorizedUserCredentials();
  std::string path = defaults.Write("user.json", user);
  int expected_grants = 0;
  for (const Json& credentials : {Json(user), Json(ToJson(user)), Json(path)}) {
    fake_.CreateDataset(kProject, kDataset);
    JsonObject config = Config();
    config["credentials"] = credentials;
    auto options = ParseBigqueryOptions(config);
    ASSERT_TRUE(options.has_value()) << options.error().ToString();
    EXPECT_EQ(options->credentials.type, bigquery::CredentialType::kAuthorizedUser);
    auto driver = DriverFor(config);
    ASSERT_NE(driver, nullptr);
    std::string table = "users_" + std::to_string(expected_grants);
    ExpectRowsArrive(*driver, table);
    EXPECT_EQ(AcceptedRefreshGrants(fake_), ++expected_grants);
  }
  for (const auto& grant : fake_.token_grants()) {
    EXPECT_EQ(grant.grant_type, "refresh_token");  // no JWT for user credentials
    EXPECT_EQ(grant.subject, Text(user, "client_id"));
  }
  EXPECT_TRUE(fake_.violations().empty());

  // User credentials carry no project: projectId is required with them.
  JsonObject config = Config();
  config.erase("projectId");
  config["credentials"] = user;
  auto no_project = ParseBigqueryOptions(config);
  ASSERT_FALSE(no_project.has_value());
  EXPECT_NE(no_project.error().message.find("projectId: is required: authorized_user credentials"),
            std::string::npos)
      << no_project.error().message;
}

TEST_F(BigqueryTest, AuthorizedUserCredentialsFromGoogleApplicationCredentials) {
  IsolatedDefaults defaults;
  // As gcloud writes them: no token_uri, so the tokenUri option points at the fake.
  JsonObject user = fake_.AuthorizedUserCredentials(/*with_token_uri=*/false);
  defaults.variable.Set(defaults.Write("adc.json", user).c_str());
  auto driver = DriverFor(ConfigWithoutCredentials({{"tokenUri", fake_.token_uri()}}));
  ASSERT_NE(driver, nullptr);
  EXPECT_EQ(driver->options().credentials.type, bigquery::CredentialType::kAuthorizedUser);
  ExpectRowsArrive(*driver, "users");
  EXPECT_EQ(AcceptedRefreshGrants(fake_), 1);

  // Without tokenUri the driver would go to Google's endpoint: show it is the one chosen.
  auto options = ParseBigqueryOptions(ConfigWithoutCredentials());
  ASSERT_TRUE(options.has_value()) << options.error().ToString();
  auto http = net::NewHttpClient();
  auto tokens = bigquery::TokenSource::Create(options->credentials, *http, "");
  ASSERT_TRUE(tokens.has_value());
  EXPECT_EQ((*tokens)->token_uri(), "https://oauth2.googleapis.com/token");
}

TEST_F(BigqueryTest, AuthorizedUserCredentialsFromTheGcloudWellKnownFile) {
  IsolatedDefaults defaults;
  JsonObject user = fake_.AuthorizedUserCredentials(/*with_token_uri=*/false);
  std::string home_file =
      defaults.Write(".config/gcloud/application_default_credentials.json", user);
  EXPECT_EQ(bigquery::WellKnownCredentialsPath(), home_file);
  auto options = ParseBigqueryOptions(ConfigWithoutCredentials());
  ASSERT_TRUE(options.has_value()) << options.error().ToString();
  EXPECT_EQ(options->credentials.origin, "gcloud credentials file '" + home_file + "'");
  auto driver = DriverFor(ConfigWithoutCredentials({{"tokenUri", fake_.token_uri()}}));
  ASSERT_NE(driver, nullptr);
  ExpectRowsArrive(*driver, "users");
  EXPECT_EQ(AcceptedRefreshGrants(fake_), 1);

  // CLOUDSDK_CONFIG moves gcloud's folder: the file under HOME is no longer read.
  std::string sdk_dir = defaults.dir.str() + "/sdk";
  defaults.cloudsdk.Set(sdk_dir.c_str());
  EXPECT_EQ(bigquery::WellKnownCredentialsPath(),
            sdk_dir + "/application_default_credentials.json");
  auto nothing = ParseBigqueryOptions(ConfigWithoutCredentials());
  ASSERT_FALSE(nothing.has_value());
  EXPECT_NE(nothing.error().message.find(sdk_dir + "/application_default_credentials.json"),
            std::string::npos)
      << nothing.error().message;
  std::string sdk_file = defaults.Write("sdk/application_default_credentials.json", user);
  auto from_sdk = ParseBigqueryOptions(ConfigWithoutCredentials());
  ASSERT_TRUE(from_sdk.has_value()) << from_sdk.error().ToString();
  EXPECT_EQ(from_sdk->credentials.origin, "gcloud credentials file '" + sdk_file + "'");
  fake_.CreateDataset(kProject, kDataset);
  auto sdk_driver = DriverFor(ConfigWithoutCredentials({{"tokenUri", fake_.token_uri()}}));
  ASSERT_NE(sdk_driver, nullptr);
  ExpectRowsArrive(*sdk_driver, "users_sdk");
  EXPECT_EQ(AcceptedRefreshGrants(fake_), 2);
}

TEST_F(BigqueryTest, CredentialSourcesFollowTheirPrecedence) {
  IsolatedDefaults defaults;
  JsonObject inline_key = fake_.ServiceAccountKey();
  inline_key["private_key_id"] = "inline";
  JsonObject variable_key = fake_.ServiceAccountKey();
  variable_key["private_key_id"] = "variable";
  defaults.variable.Set(defaults.Write("variable.json", variable_key).c_str());
  defaults.Write(".config/gcloud/application_default_credentials.json",
                 fake_.AuthorizedUserCredentials());

  auto origin = [&](const JsonObject& config) {
    auto options = ParseBigqueryOptions(config);
    EXPECT_TRUE(options.has_value()) << options.error().ToString();
    return options ? options->credentials.origin : "";
  };
  // 1. the credentials option, 2. GOOGLE_APPLICATION_CREDENTIALS, 3. gcloud's file.
  EXPECT_EQ(origin(Config({{"credentials", inline_key}})), "credentials");
  EXPECT_EQ(origin(ConfigWithoutCredentials()).rfind("GOOGLE_APPLICATION_CREDENTIALS file", 0), 0u);
  for (const JsonObject& config :
       {Config({{"credentials", inline_key}}), ConfigWithoutCredentials()}) {
    auto driver = DriverFor(config);
    ASSERT_NE(driver, nullptr);
    S3DB_ASSERT_OK(driver->Start());
  }
  defaults.variable.Set(nullptr);
  EXPECT_EQ(origin(ConfigWithoutCredentials()).rfind("gcloud credentials file", 0), 0u);
  auto user_driver = DriverFor(ConfigWithoutCredentials());
  ASSERT_NE(user_driver, nullptr);
  S3DB_ASSERT_OK(user_driver->Start());

  auto grants = fake_.token_grants();
  ASSERT_EQ(grants.size(), 3u);
  EXPECT_EQ(grants[0].key_id, "inline");
  EXPECT_EQ(grants[1].key_id, "variable");
  EXPECT_EQ(grants[2].grant_type, "refresh_token");
  for (const auto& grant : grants) EXPECT_TRUE(grant.accepted) << grant.error;
}

TEST_F(BigqueryTest, RefusedUserCredentialsAreUnauthorizedWithoutLeakingSecrets) {
  LogCapture log;
  JsonObject user = fake_.AuthorizedUserCredentials();
  std::vector<std::string> messages;

  JsonObject wrong_secret = user;
  wrong_secret["client_secret"] = "not-the-secret";
  auto wrong = DriverFor(Config({{"credentials", wrong_secret}}));
  auto refused = wrong->Start();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kUnauthorized);
  EXPECT_NE(refused.error().message.find("invalid_client"), std::string::npos)
      << refused.error().message;
  messages.push_back(refused.error().message);

  auto driver = DriverFor(Config({{"credentials", user}}));
  S3DB_ASSERT_OK(driver->Start());
  auto delivered = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"n", 1}})}, 10s);
  EXPECT_EQ(delivered[0].outcome, Outcome::kDelivered) << delivered[0].error;
  // The refresh token is revoked and the access token too: the 401 refresh fails.
  fake_.RevokeRefreshToken();
  fake_.RevokeTokens();
  auto results = driver->Deliver(Batch{Item("u2", 1, Action::kInsert, {{"n", 2}})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
  EXPECT_NE(results[0].error.find("Token has been expired or revoked"), std::string::npos)
      << results[0].error;
  EXPECT_NE(results[0].error.find("gcloud auth application-default login"), std::string::npos)
      << results[0].error;
  messages.push_back(results[0].error);
  auto restarted = DriverFor(Config({{"credentials", user}}));
  auto again = restarted->Start();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kUnauthorized);
  messages.push_back(again.error().message);

  for (const std::string& message : messages) ExpectNoSecret(message, &user);
  ExpectNoSecret(log.text(), &user);
  EXPECT_NE(log.text().find("user credentials (client_id " + Text(user, "client_id") + ")"),
            std::string::npos)
      << log.text();
}

TEST_F(BigqueryTest, QuotaProjectOfUserCredentialsIsSentAsXGoogUserProject) {
  JsonObject user = fake_.AuthorizedUserCredentials();
  user["quota_project_id"] = "billing-project";
  auto driver = DriverFor(Config({{"credentials", user}}));
  ExpectRowsArrive(*driver, "users");
  int api_calls = 0;
  for (const auto& request : fake_.requests()) {
    if (request.path == "/token") continue;
    ++api_calls;
    EXPECT_EQ(request.user_project, "billing-project") << request.method << " " << request.path;
  }
  EXPECT_GE(api_calls, 3);  // datasets.get, tables.get/insert, insertAll
}

TEST_F(BigqueryTest, AnEmptyDatasetIdIsRefusedAtParseAndAMissingOneIsLeftToTheDestinations) {
  JsonObject config = Config();
  config["datasetId"] = "";
  auto empty = ParseBigqueryOptions(config);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(empty.error().message.find("datasetId: is empty"), std::string::npos)
      << empty.error().message;
  EXPECT_NE(empty.error().message.find("bq mk --dataset test-project:DATASET"),
            std::string::npos)
      << empty.error().message;
  // Left out: allowed here; the driver factory requires it unless every destination names
  // its dataset (BigqueryReplicationTest below).
  config.erase("datasetId");
  auto missing = ParseBigqueryOptions(config);
  ASSERT_TRUE(missing.has_value()) << missing.error().ToString();
  EXPECT_TRUE(missing->dataset_id.empty());
}

TEST_F(BigqueryTest, CredentialErrorsNeverQuoteThePrivateKey) {
  JsonObject wrong_type = fake_.ServiceAccountKey();
  wrong_type["type"] = "external_account";
  JsonObject user_without_token = fake_.AuthorizedUserCredentials();
  user_without_token.erase("refresh_token");
  JsonObject no_email = fake_.ServiceAccountKey();
  no_email.erase("client_email");
  std::string broken_text = ToJson(fake_.ServiceAccountKey());
  broken_text.pop_back();  // not JSON any more, and full of key material
  for (const Json& credentials : {Json(wrong_type), Json(no_email), Json(broken_text),
                                  Json("/no/such/key.json"), Json(user_without_token)}) {
    JsonObject config = Config();
    config["credentials"] = credentials;
    auto options = ParseBigqueryOptions(config);
    ASSERT_FALSE(options.has_value());
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
    ExpectNoSecret(options.error().message);
  }

  // A key whose PEM is damaged fails at Start, without quoting it.
  JsonObject damaged = fake_.ServiceAccountKey();
  std::string pem = FakeBigQuery::PrivateKeyPem();
  pem[pem.size() / 2] = '!';
  damaged["private_key"] = pem;
  auto options = ParseBigqueryOptions(Config({{"credentials", damaged}}));
  ASSERT_TRUE(options.has_value());
  BigqueryDriver driver(std::move(*options), {});
  auto started = driver.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
  ExpectNoSecret(started.error().message);
  EXPECT_NE(started.error().message.find("private_key"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Identifiers, types and encoding

TEST(BigqueryIdentifiersTest, TableIdsFollowTheDocumentedCategories) {
  // The examples of BigQuery's table naming documentation.
  const std::vector<std::string> documented = {"table 01", "ग्राहक", "00_お客様", "étudiant-01",
                                               "user_profiles"};
  for (const std::string& name : documented) {
    EXPECT_TRUE(bigquery::IsValidTableId(name)) << name;
  }
  for (const char* name : {"", "a.b", "a/b", "a$b", "a:b", "a`b", "tab\tle", "\xff\xfe"}) {
    EXPECT_FALSE(bigquery::IsValidTableId(name)) << name;
  }
  EXPECT_TRUE(bigquery::IsValidTableId(std::string(1024, 't')));
  EXPECT_FALSE(bigquery::IsValidTableId(std::string(1025, 't')));
  std::string long_unicode;  // 342 x 3 bytes = 1026 bytes
  for (int i = 0; i < 342; ++i) long_unicode += "ग";
  EXPECT_FALSE(bigquery::IsValidTableId(long_unicode));
}

TEST(BigqueryIdentifiersTest, DatasetColumnProjectAndJobNames) {
  EXPECT_TRUE(bigquery::IsValidDatasetId("production_data"));
  EXPECT_TRUE(bigquery::IsValidDatasetId(std::string(1024, 'd')));
  for (const char* name : {"", "my-dataset", "a b", "données"}) {
    EXPECT_FALSE(bigquery::IsValidDatasetId(name)) << name;
  }
  EXPECT_FALSE(bigquery::IsValidDatasetId(std::string(1025, 'd')));

  for (const char* name : {"id", "_action", "createdAt", "a1_b2"}) {
    EXPECT_TRUE(bigquery::IsValidColumnName(name)) << name;
  }
  for (const char* name : {"", "1a", "bad-name", "with space", "_TABLE_x", "_partitiontime",
                           "__root__x", "_File_name"}) {
    EXPECT_FALSE(bigquery::IsValidColumnName(name)) << name;
  }
  EXPECT_TRUE(bigquery::IsValidColumnName(std::string(300, 'c')));
  EXPECT_FALSE(bigquery::IsValidColumnName(std::string(301, 'c')));

  for (const char* name : {"my-analytics-project", "test-project", "example.com:my-project"}) {
    EXPECT_TRUE(bigquery::IsValidProjectId(name)) << name;
  }
  for (const char* name : {"short", "Upper-case", "ends-with-", "1starts-with-digit"}) {
    EXPECT_FALSE(bigquery::IsValidProjectId(name)) << name;
  }
  EXPECT_TRUE(bigquery::IsValidJobId("s3db_0123abc-def"));
  EXPECT_FALSE(bigquery::IsValidJobId("job id"));
}

TEST(BigquerySchemaTest, MapsAttributeShorthandsToColumnTypes) {
  auto schema = Schema::Parse(Obj(R"({
      "name": "string|maxlength:10", "email": "email", "score": "number", "age": "integer",
      "active": "boolean", "born": "datetime", "meta": "object", "doc": "json",
      "tags": "array|items:string", "mixed": "array", "address": {"city": "string",
      "zip": "integer"}})"));
  ASSERT_TRUE(schema.has_value()) << schema.error().ToString();
  std::map<std::string, Field> fields;
  for (const Attribute& attribute : schema->attributes()) {
    fields[attribute.name] = bigquery::FieldFromAttribute(attribute, {});
  }
  EXPECT_EQ(fields["name"].type, FieldType::kString);
  EXPECT_EQ(fields["email"].type, FieldType::kString);
  EXPECT_EQ(fields["score"].type, FieldType::kFloat64);
  EXPECT_EQ(fields["age"].type, FieldType::kInt64);
  EXPECT_EQ(fields["active"].type, FieldType::kBool);
  EXPECT_EQ(fields["born"].type, FieldType::kTimestamp);
  EXPECT_EQ(fields["meta"].type, FieldType::kJson);
  EXPECT_EQ(fields["doc"].type, FieldType::kJson);
  EXPECT_EQ(fields["tags"].type, FieldType::kString);
  EXPECT_TRUE(fields["tags"].repeated);
  EXPECT_EQ(fields["mixed"].type, FieldType::kJson);
  ASSERT_EQ(fields["address"].type, FieldType::kRecord);
  ASSERT_EQ(fields["address"].fields.size(), 2u);
  EXPECT_EQ(fields["address"].fields[1].type, FieldType::kInt64);

  const Attribute& score = schema->attributes()[2];
  EXPECT_EQ(bigquery::FieldFromAttribute(score, {.exact_numbers = true}).type, FieldType::kNumeric);
  const Attribute& address = schema->attributes().back();
  EXPECT_EQ(bigquery::FieldFromAttribute(address, {.nested_as_json = true}).type, FieldType::kJson);
}

TEST(BigquerySchemaTest, InfersTypesAndMergesNewFieldsAsNullable) {
  JsonObject record = Obj(R"({"s": "x", "i": 3, "d": 1.5, "b": true, "o": {"a": 1},
                              "l": [1, 2], "n": null})");
  std::vector<Field> fields = bigquery::FieldsForRecord(record, nullptr, {});
  ASSERT_EQ(fields.size(), 6u);  // the null has no column
  EXPECT_EQ(fields[0].type, FieldType::kString);
  EXPECT_EQ(fields[1].type, FieldType::kInt64);
  EXPECT_EQ(fields[2].type, FieldType::kFloat64);
  EXPECT_EQ(fields[3].type, FieldType::kBool);
  EXPECT_EQ(fields[4].type, FieldType::kJson);
  EXPECT_EQ(fields[5].type, FieldType::kJson);

  std::vector<Field> existing = {fields[0]};
  existing[0].required = true;
  Field record_field;
  record_field.name = "address";
  record_field.type = FieldType::kRecord;
  record_field.fields = {fields[0]};
  existing.push_back(record_field);
  Field wanted_record = record_field;
  wanted_record.fields.push_back(fields[1]);
  auto added = bigquery::MergeFields(existing, {fields[0], fields[2], wanted_record});
  EXPECT_EQ(added, (std::vector<std::string>{"d", "address.i"}));
  EXPECT_EQ(existing.size(), 3u);
  EXPECT_FALSE(existing[2].required);
  EXPECT_EQ(existing[1].fields.size(), 2u);
}

TEST(BigquerySchemaTest, EncodesValuesForEachInterface) {
  Field json;
  json.name = "doc";
  json.type = FieldType::kJson;
  Field numeric;
  numeric.name = "price";
  numeric.type = FieldType::kNumeric;
  Field timestamp;
  timestamp.name = "at";
  timestamp.type = FieldType::kTimestamp;
  JsonObject record = Obj(R"({"doc": {"a": [1, 2]}, "price": 12.25, "at": 1700000000123,
                              "other": "kept", "gone": null})");
  JsonObject streaming =
      bigquery::EncodeRecord(record, {json, numeric, timestamp}, bigquery::Encoding::kStreaming);
  EXPECT_EQ(streaming.at("doc"), Json(R"({"a":[1,2]})"));
  EXPECT_EQ(streaming.at("price"), Json("12.25"));
  EXPECT_EQ(streaming.at("at"), Json("2023-11-14T22:13:20.123Z"));
  EXPECT_EQ(streaming.at("other"), Json("kept"));
  EXPECT_FALSE(streaming.contains("gone"));
  JsonObject load =
      bigquery::EncodeRecord(record, {json, numeric, timestamp}, bigquery::Encoding::kLoad);
  EXPECT_TRUE(load.at("doc").is_object());
  EXPECT_EQ(bigquery::FormatTimestampMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(bigquery::FormatTimestampMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(bigquery::FormatTimestampMillis(951782400000), "2000-02-29T00:00:00.000Z");
}

// ---------------------------------------------------------------------------------------------
// Authentication

TEST_F(BigqueryTest, JwtAssertionIsRs256WithGoogleClaims) {
  auto signer = bigquery::RsaSigner::FromPem(FakeBigQuery::PrivateKeyPem());
  ASSERT_TRUE(signer.has_value());
  auto key = bigquery::ParseCredentials(fake_.ServiceAccountKey(), "test");
  ASSERT_TRUE(key.has_value());
  auto assertion = bigquery::MakeJwtAssertion(**signer, *key, bigquery::kBigqueryScope,
                                              fake_.token_uri(), 1700000000);
  ASSERT_TRUE(assertion.has_value());
  std::size_t first = assertion->find('.');
  std::size_t second = assertion->find('.', first + 1);
  auto header = ParseJsonObject(*bigquery::Base64UrlDecode(assertion->substr(0, first)));
  auto claims =
      ParseJsonObject(*bigquery::Base64UrlDecode(assertion->substr(first + 1, second - first - 1)));
  ASSERT_TRUE(header && claims);
  EXPECT_EQ(Text(*header, "alg"), "RS256");
  EXPECT_EQ(Text(*header, "typ"), "JWT");
  EXPECT_EQ(Text(*header, "kid"), "fake-key-1");
  EXPECT_EQ(Text(*claims, "iss"), key->client_email);
  EXPECT_EQ(Text(*claims, "aud"), fake_.token_uri());
  EXPECT_EQ(Text(*claims, "scope"), "https://www.googleapis.com/auth/bigquery");
  EXPECT_EQ(claims->at("iat").as_int64(), 1700000000);
  EXPECT_EQ(claims->at("exp").as_int64(), 1700003600);
  EXPECT_EQ(bigquery::Base64UrlDecode(assertion->substr(second + 1))->size(), 256u);
}

TEST_F(BigqueryTest, TokenIsCachedUntilFiveMinutesBeforeExpiry) {
  auto key = bigquery::ParseCredentials(fake_.ServiceAccountKey(), "test");
  ASSERT_TRUE(key.has_value());
  auto http = net::NewHttpClient();
  auto tokens = bigquery::TokenSource::Create(*key, *http, "", [this] { return fake_.Now(); });
  ASSERT_TRUE(tokens.has_value()) << tokens.error().ToString();
  EXPECT_EQ((*tokens)->token_uri(), fake_.token_uri());
  auto first = (*tokens)->Token(5s);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  fake_.AdvanceClock(3600 - 301);  // 5 min 1 s before expiry: still cached
  EXPECT_EQ(*(*tokens)->Token(5s), *first);
  EXPECT_EQ((*tokens)->fetches(), 1u);
  fake_.AdvanceClock(2);  // inside the last five minutes: a new token
  auto second = (*tokens)->Token(5s);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_NE(*second, *first);
  EXPECT_EQ((*tokens)->fetches(), 2u);
  EXPECT_EQ(fake_.counters().token_requests, 2);
  (*tokens)->Invalidate(*first);  // an old token: the newer one stays
  EXPECT_EQ(*(*tokens)->Token(5s), *second);
  EXPECT_EQ((*tokens)->fetches(), 2u);
}

// A 403 body may quote the access token back: every minted and refreshed token, the refresh
// token and the client secret are masked in every message that goes through RedactSecrets
// (log lines, lastError, dead-letter errors).
TEST_F(BigqueryTest, MintedTokensAndUserCredentialsAreRedactedEverywhere) {
  auto credentials = bigquery::ParseCredentials(fake_.AuthorizedUserCredentials(), "test");
  ASSERT_TRUE(credentials.has_value()) << credentials.error().ToString();
  auto http = net::NewHttpClient();
  auto tokens =
      bigquery::TokenSource::Create(*credentials, *http, "", [this] { return fake_.Now(); });
  ASSERT_TRUE(tokens.has_value()) << tokens.error().ToString();
  for (const std::string* secret : {&credentials->refresh_token, &credentials->client_secret}) {
    std::string echoed = RedactSecrets("HTTP 400: bad grant " + *secret + ".");
    EXPECT_EQ(echoed, "HTTP 400: bad grant ***.");
  }
  auto first = (*tokens)->Token(5s);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  fake_.AdvanceClock(3600);
  auto second = (*tokens)->Token(5s);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  ASSERT_NE(*first, *second);
  for (const std::string* token : {&*first, &*second}) {
    EXPECT_EQ(RedactSecrets("HTTP 403 PERMISSION_DENIED: Access Denied: " + *token),
              "HTTP 403 PERMISSION_DENIED: Access Denied: ***");
  }
}

TEST_F(BigqueryTest, UserTokensAreCachedAndRefreshedLikeServiceAccountTokens) {
  auto credentials = bigquery::ParseCredentials(fake_.AuthorizedUserCredentials(), "test");
  ASSERT_TRUE(credentials.has_value()) << credentials.error().ToString();
  auto http = net::NewHttpClient();
  auto tokens =
      bigquery::TokenSource::Create(*credentials, *http, "", [this] { return fake_.Now(); });
  ASSERT_TRUE(tokens.has_value()) << tokens.error().ToString();
  auto first = (*tokens)->Token(5s);
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  fake_.AdvanceClock(3600 - 301);
  EXPECT_EQ(*(*tokens)->Token(5s), *first);
  fake_.AdvanceClock(2);
  auto second = (*tokens)->Token(5s);
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  EXPECT_NE(*second, *first);
  EXPECT_EQ((*tokens)->fetches(), 2u);
  auto grants = fake_.token_grants();
  ASSERT_EQ(grants.size(), 2u);
  for (const auto& grant : grants) {
    EXPECT_EQ(grant.grant_type, "refresh_token");
    EXPECT_TRUE(grant.accepted) << grant.error;
  }
}

TEST_F(BigqueryTest, AKeyTheTokenEndpointRefusesIsUnauthorizedAtStart) {
  LogCapture log;
  auto driver = Driver({{"credentials", fake_.UntrustedServiceAccountKey()}});
  auto started = driver->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kUnauthorized);
  EXPECT_NE(started.error().message.find("Invalid JWT Signature"), std::string::npos)
      << started.error().message;
  EXPECT_EQ(fake_.counters().tokens_refused, 1);
  ExpectNoSecret(started.error().message);
  ExpectNoSecret(log.text());
}

TEST_F(BigqueryTest, StartFailsWhenTheDatasetIsMissing) {
  auto driver = Driver({{"datasetId", "missing_dataset"}});
  auto started = driver->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(started.error().message.find("datasetId"), std::string::npos);
  EXPECT_NE(started.error().message.find("test-project:missing_dataset"), std::string::npos);
}

TEST_F(BigqueryTest, AnUnreachableTokenEndpointIsRetryableAtStart) {
  auto driver = Driver({{"tokenUri", "http://127.0.0.1:1/token"}});
  auto started = driver->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_TRUE(IsRetryable(started.error().code)) << started.error().ToString();
}

TEST_F(BigqueryTest, TokenUriOverridesTheKeysTokenUri) {
  JsonObject key = fake_.ServiceAccountKey();
  key["token_uri"] = "http://127.0.0.1:1/token";  // nothing listens there
  auto broken = Driver({{"credentials", key}});
  EXPECT_FALSE(broken->Start().has_value());
  auto driver = Driver({{"credentials", key}, {"tokenUri", fake_.token_uri()}});
  S3DB_EXPECT_OK(driver->Start());
  EXPECT_EQ(fake_.counters().token_requests, 1);
}

TEST_F(BigqueryTest, AnExpiredTokenIsRefreshedOnceWithinTheDelivery) {
  auto driver = Started();
  fake_.RevokeTokens();
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann"})"))};
  auto results = driver->Deliver(batch, 10s);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(driver->token_fetches(), 2u);
  EXPECT_GE(fake_.counters().unauthorized_replies, 1);
  EXPECT_EQ(Rows().size(), 1u);
}

TEST_F(BigqueryTest, A401AfterTheRefreshIsUnauthorized) {
  auto driver = Started();
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann"})"))};
  ASSERT_EQ(driver->Deliver(batch, 10s)[0].outcome, Outcome::kDelivered);  // table exists now
  fake_.FailNext("POST", "/insertAll", {.status = 401, .reason = "authError"}, 2);
  auto results = driver->Deliver(Batch{Item("u2", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
  EXPECT_EQ(driver->token_fetches(), 2u);
}

TEST_F(BigqueryTest, ThePrivateKeyAndTokensNeverAppearInLogsOrErrors) {
  LogCapture log;
  std::vector<std::string> errors;
  auto driver = Started({{"maxRequestBytes", 4096}});
  std::vector<DeliveryItem> batch = {
      Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann"})")),
      Item("u2", 1, Action::kInsert, {{"big", std::string(5000, 'x')}})};
  fake_.RevokeTokens();
  for (const auto& result : driver->Deliver(batch, 10s)) errors.push_back(result.error);
  fake_.FailNext("POST", "/insertAll", {.status = 401, .reason = "authError"}, 2);
  fake_.FailNext("PATCH", "/tables/", {.status = 400, .reason = "invalid"});
  for (const auto& result :
       driver->Deliver(Batch{Item("u3", 1, Action::kInsert, {{"extra", 1}})}, 10s)) {
    errors.push_back(result.error);
  }
  fake_.FailNext("POST", "/insertAll", {.status = 403, .reason = "accessDenied"});
  for (const auto& result : driver->Deliver(Batch{Item("u4", 1, Action::kInsert, {})}, 10s)) {
    errors.push_back(result.error);
  }
  BigqueryDriver refused(
      *ParseBigqueryOptions(Config({{"credentials", fake_.UntrustedServiceAccountKey()}})), {});
  auto started = refused.Start();
  ASSERT_FALSE(started.has_value());
  errors.push_back(started.error().message);
  EXPECT_GE(errors.size(), 5u);
  for (const std::string& error : errors) ExpectNoSecret(error);
  ExpectNoSecret(log.text());
  EXPECT_FALSE(log.text().empty());
}

// ---------------------------------------------------------------------------------------------
// Streaming (tabledata.insertAll)

TEST_F(BigqueryTest, StreamsChangeRowsWithTheChangeIdAsInsertId) {
  auto driver = Started();
  std::vector<DeliveryItem> batch = {
      Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann", "age": 31})")),
      Item("u1", 2, Action::kUpdate, Obj(R"({"name": "Ann B", "age": 32})")),
      Item("u1", 3, Action::kDelete, Obj(R"({"name": "Ann B", "age": 32})"))};
  auto results = driver->Deliver(batch, 10s);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;

  EXPECT_EQ(fake_.insert_ids(),
            (std::vector<std::string>{"users:u1:1", "users:u1:2", "users:u1:3"}));
  EXPECT_TRUE(fake_.violations().empty());
  auto rows = RowsByChangeId(Rows());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(Text(rows["users:u1:1"], "_action"), "insert");
  EXPECT_EQ(Text(rows["users:u1:2"], "_action"), "update");
  EXPECT_EQ(Text(rows["users:u1:3"], "_action"), "delete");
  EXPECT_EQ(rows["users:u1:2"].at("_rev").as_int64(), 2);
  EXPECT_EQ(Text(rows["users:u1:2"], "id"), "u1");
  EXPECT_EQ(Text(rows["users:u1:2"], "name"), "Ann B");
  EXPECT_EQ(Text(rows["users:u1:1"], "_changed_at"), "2023-11-14T22:13:20.001Z");
  EXPECT_EQ(fake_.counters().insert_all_requests, 1);
}

TEST_F(BigqueryTest, CreatesMissingTablesFromTheResourceAttributes) {
  auto driver = Started({}, WithAttributes(R"({"name": "string|maxlength:10", "score": "number",
      "age": "integer", "active": "boolean", "born": "datetime", "meta": "object",
      "doc": "json", "tags": "array|items:string", "address": {"city": "string"}})"));
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann",
      "born": "1990-05-01T10:00:00.000Z", "meta": {"k": 1}, "tags": ["a", "b"],
      "address": {"city": "Lisbon"}})"))},
                                 10s);
  ASSERT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  std::map<std::string, Field> fields;
  for (const Field& field : TableFields()) fields[field.name] = field;
  EXPECT_EQ(fields["id"].type, FieldType::kString);
  EXPECT_EQ(fields["_action"].type, FieldType::kString);
  EXPECT_EQ(fields["_changed_at"].type, FieldType::kTimestamp);
  EXPECT_EQ(fields["_change_id"].type, FieldType::kString);
  EXPECT_EQ(fields["_rev"].type, FieldType::kInt64);
  EXPECT_EQ(fields["name"].type, FieldType::kString);
  EXPECT_EQ(fields["score"].type, FieldType::kFloat64);
  EXPECT_EQ(fields["age"].type, FieldType::kInt64);
  EXPECT_EQ(fields["active"].type, FieldType::kBool);
  EXPECT_EQ(fields["born"].type, FieldType::kTimestamp);
  EXPECT_EQ(fields["meta"].type, FieldType::kJson);
  EXPECT_EQ(fields["doc"].type, FieldType::kJson);
  EXPECT_EQ(fields["tags"].type, FieldType::kString);
  EXPECT_TRUE(fields["tags"].repeated);
  EXPECT_EQ(fields["address"].type, FieldType::kRecord);
  for (const auto& [name, field] : fields) EXPECT_FALSE(field.required) << name;
  EXPECT_EQ(driver->stats().tables_created, 1u);
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("meta"), Json(Obj(R"({"k": 1})")));  // JSON text became a JSON value
}

TEST_F(BigqueryTest, AttributeColumnsPresentCreatesOnlyTheFieldsRecordsCarry) {
  auto driver = Started({{"attributeColumns", "present"}},
                        WithAttributes(R"({"name": "string", "unused": "integer"})"));
  ASSERT_EQ(
      driver->Deliver(Batch{Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann"})"))}, 10s)[0]
          .outcome,
      Outcome::kDelivered);
  std::set<std::string> names;
  for (const Field& field : TableFields()) names.insert(field.name);
  EXPECT_EQ(names.count("name"), 1u);
  EXPECT_EQ(names.count("unused"), 0u);
}

TEST_F(BigqueryTest, NewFieldsAreAddedAsNullableColumnsByASchemaPatch) {
  auto driver = Started({}, WithAttributes(R"({"name": "string"})"));
  ASSERT_EQ(
      driver->Deliver(Batch{Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann"})"))}, 10s)[0]
          .outcome,
      Outcome::kDelivered);
  auto results =
      driver->Deliver(Batch{Item("u2", 1, Action::kInsert,
                                 Obj(R"({"name": "Bob", "nickname": "b", "visits": 4})"))},
                      10s);
  ASSERT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  std::map<std::string, Field> fields;
  for (const Field& field : TableFields()) fields[field.name] = field;
  EXPECT_EQ(fields["nickname"].type, FieldType::kString);
  EXPECT_EQ(fields["visits"].type, FieldType::kInt64);
  EXPECT_EQ(fields["name"].type, FieldType::kString);
  EXPECT_EQ(fake_.counters().tables_patched, 1);
  EXPECT_EQ(driver->stats().tables_patched, 1u);
  EXPECT_EQ(Rows().size(), 2u);
}

TEST_F(BigqueryTest, NoSuchFieldRightAfterASchemaPatchIsRetryable) {
  fake_.SetStreamingSchemaDelay(120);
  auto driver = Started();
  ASSERT_EQ(driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  std::vector<DeliveryItem> batch = {Item("u2", 1, Action::kInsert, {{"late_field", 1}})};
  auto results = driver->Deliver(batch, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable) << results[0].error;
  EXPECT_NE(results[0].error.find("no such field"), std::string::npos) << results[0].error;
  fake_.AdvanceClock(121);
  results = driver->Deliver(batch, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(fake_.counters().tables_patched, 1);
}

TEST_F(BigqueryTest, APatchRefusedForAStaleSchemaIsRetriedFromTheCurrentTable) {
  auto driver = Started();
  ASSERT_EQ(driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  // Another writer adds a column behind the driver's back: the cached schema is stale.
  auto other = Started();
  ASSERT_EQ(other->Deliver(Batch{Item("u2", 1, Action::kInsert, {{"b", 1}})}, 10s)[0].outcome,
            Outcome::kDelivered);
  auto results = driver->Deliver(Batch{Item("u3", 1, Action::kInsert, {{"c", 1}})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  std::set<std::string> names;
  for (const Field& field : TableFields()) names.insert(field.name);
  EXPECT_EQ(names.count("b"), 1u);
  EXPECT_EQ(names.count("c"), 1u);
}

TEST_F(BigqueryTest, ARefusedSchemaPatchFailsOnlyTheChangesThatNeedIt) {
  auto driver = Started();
  ASSERT_EQ(driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailNext("PATCH", "/tables/users", {.status = 400, .reason = "invalid"}, 2);
  auto results = driver->Deliver(
      Batch{Item("u2", 1, Action::kInsert, {{"extra", 1}}), Item("u3", 1, Action::kInsert, {})},
      10s);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "schema_update_failed");
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered) << results[1].error;
}

TEST_F(BigqueryTest, TablesGetTimePartitioningAndClusteringFromTableOptions) {
  auto driver = Started(Obj(R"({"tableOptions": {
      "timePartitioning": {"type": "DAY", "field": "_changed_at", "expirationMs": 7776000000},
      "clustering": {"fields": ["id", "_action"]}}})"));
  ASSERT_EQ(driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  auto table = fake_.Table(kProject, kDataset, "users");
  ASSERT_TRUE(table.has_value());
  EXPECT_EQ(Text(table->at("timePartitioning").as_object(), "type"), "DAY");
  EXPECT_EQ(Text(table->at("timePartitioning").as_object(), "field"), "_changed_at");
  EXPECT_EQ(Text(table->at("timePartitioning").as_object(), "expirationMs"), "7776000000");
  EXPECT_EQ(table->at("clustering").at("fields"), Json({"id", "_action"}));
}

TEST_F(BigqueryTest, AMissingTableWithCreateTablesOffIsPermanent) {
  auto driver = Started({{"createTables", false}});
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "table_not_found");
  EXPECT_FALSE(fake_.Table(kProject, kDataset, "users").has_value());
}

TEST_F(BigqueryTest, ARetriedBatchDoesNotDuplicateRows) {
  auto driver = Started();
  std::vector<DeliveryItem> batch;
  for (int i = 0; i < 20; ++i) {
    batch.push_back(Item("u" + std::to_string(i), 1, Action::kInsert, {{"n", i}}));
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    for (const auto& result : driver->Deliver(batch, 10s)) {
      EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
    }
  }
  EXPECT_EQ(Rows().size(), 20u);
  EXPECT_EQ(fake_.counters().duplicates_dropped, 40);
}

TEST_F(BigqueryTest, InsertIdDedupHoldsOnlyInsideTheServiceWindow) {
  // BigQuery's insertId dedup is best effort within a window (the fake: 60 s). A retry inside
  // it is dropped; a replay after it is stored again, which the changelog view removes
  // (same _change_id, same _rev).
  auto driver = Started();
  Batch batch = {Item("u1", 1, Action::kInsert, {{"n", 1}})};
  ASSERT_EQ(driver->Deliver(batch, 10s)[0].outcome, Outcome::kDelivered);
  fake_.AdvanceClock(59);
  ASSERT_EQ(driver->Deliver(batch, 10s)[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(Rows().size(), 1u);
  EXPECT_EQ(fake_.counters().duplicates_dropped, 1);
  fake_.AdvanceClock(62);
  ASSERT_EQ(driver->Deliver(batch, 10s)[0].outcome, Outcome::kDelivered);
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(Text(rows[0], "_change_id"), Text(rows[1], "_change_id"));
  EXPECT_EQ(rows[0].at("_rev"), rows[1].at("_rev"));
}

TEST_F(BigqueryTest, ATimedOutRequestIsRetryableAndItsRetryDoesNotDuplicate) {
  auto driver = Started();
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, {}),
                                     Item("u2", 1, Action::kInsert, {})};
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  // The fake answers after the client gave up, but stores the rows anyway.
  fake_.FailNext("POST", "/insertAll", {.status = 0, .delay_ms = 1500});
  auto results = driver->Deliver(batch, 500ms);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kRetryable);
  ASSERT_TRUE(WaitUntil([&] { return Rows().size() == 3u; }, 5s));
  results = driver->Deliver(batch, 10s);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  EXPECT_EQ(Rows().size(), 3u);
  EXPECT_EQ(fake_.counters().duplicates_dropped, 2);
}

TEST_F(BigqueryTest, RequestsAreSplitByRowCount) {
  auto driver = Started({{"maxRowsPerRequest", 3}});
  std::vector<DeliveryItem> batch;
  for (int i = 0; i < 10; ++i)
    batch.push_back(Item("u" + std::to_string(i), 1, Action::kInsert, {}));
  for (const auto& result : driver->Deliver(batch, 10s)) {
    EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  }
  std::vector<std::size_t> sizes;
  for (const auto& request : fake_.requests()) {
    if (request.path.find("/insertAll") != std::string::npos) sizes.push_back(request.rows);
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 3, 1}));
  EXPECT_EQ(Rows().size(), 10u);
}

TEST_F(BigqueryTest, RequestsAreSplitByBytesUnderTheLimit) {
  auto driver = Started({{"maxRequestBytes", 64 * 1024}});
  std::vector<DeliveryItem> batch;
  for (int i = 0; i < 300; ++i) {
    batch.push_back(Item("u" + std::to_string(i), 1, Action::kInsert,
                         {{"payload", std::string(1024, 'a' + i % 26)}}));
  }
  for (const auto& result : driver->Deliver(batch, 20s)) {
    EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  }
  int requests = 0;
  std::size_t rows = 0;
  for (const auto& request : fake_.requests()) {
    if (request.path.find("/insertAll") == std::string::npos) continue;
    ++requests;
    rows += request.rows;
    EXPECT_LE(request.body_bytes, 64u * 1024);
  }
  EXPECT_GE(requests, 5);
  EXPECT_EQ(rows, 300u);
  EXPECT_EQ(Rows().size(), 300u);
}

TEST_F(BigqueryTest, DefaultLimitsKeepRequestsUnderTheServiceLimits) {
  // 12 rows of about 1.5 MB: one request would exceed 10 MB, which the fake refuses.
  auto driver = Started();
  std::vector<DeliveryItem> batch;
  for (int i = 0; i < 12; ++i) {
    batch.push_back(Item("big" + std::to_string(i), 1, Action::kInsert,
                         {{"blob", std::string(1500 * 1024, 'z')}}));
  }
  for (const auto& result : driver->Deliver(batch, 60s)) {
    EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  }
  int requests = 0;
  for (const auto& request : fake_.requests()) {
    if (request.path.find("/insertAll") == std::string::npos) continue;
    ++requests;
    EXPECT_LE(request.body_bytes, 9u * 1024 * 1024);
  }
  EXPECT_GE(requests, 2);
  EXPECT_EQ(Rows().size(), 12u);

  // 12,000 small rows with maxRowsPerRequest at its maximum: the fake refuses > 10,000 rows.
  auto wide = Started({{"maxRowsPerRequest", 10000}});
  std::vector<DeliveryItem> many;
  for (int i = 0; i < 12000; ++i) {
    many.push_back(Item("m" + std::to_string(i), 1, Action::kInsert, {}, "many"));
  }
  for (const auto& result : wide->Deliver(many, 60s)) {
    ASSERT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  }
  EXPECT_EQ(Rows("many").size(), 12000u);
}

TEST_F(BigqueryTest, ARowOverTheRequestLimitIsPayloadTooLarge) {
  auto driver = Started({{"maxRequestBytes", 8192}});
  auto results =
      driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {}),
                            Item("u2", 1, Action::kInsert, {{"big", std::string(9000, 'x')}}),
                            Item("u3", 1, Action::kInsert, {})},
                      10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "payload_too_large");
  EXPECT_EQ(results[2].outcome, Outcome::kDelivered) << results[2].error;
  EXPECT_EQ(Rows().size(), 2u);
}

TEST_F(BigqueryTest, AnInvalidRowIsPermanentWithTheApiReasonAndTheOthersRetryable) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_action", "type": "STRING"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "_change_id", "type": "STRING"},
      {"name": "_rev", "type": "INTEGER"}, {"name": "age", "type": "INTEGER"}]})")
                             .at("f")));
  auto driver = Started();
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, {{"age", 30}}),
                                     Item("u2", 1, Action::kInsert, {{"age", "thirty"}}),
                                     Item("u3", 1, Action::kInsert, {{"age", 40}})};
  auto results = driver->Deliver(batch, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_NE(results[0].error.find("stopped"), std::string::npos) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "invalid");
  EXPECT_NE(results[1].error.find("age"), std::string::npos) << results[1].error;
  EXPECT_EQ(results[2].outcome, Outcome::kRetryable);
  EXPECT_TRUE(Rows().empty());

  auto retried = driver->Deliver(Batch{batch[0], batch[2]}, 10s);
  for (const auto& result : retried) EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  EXPECT_EQ(Rows().size(), 2u);
}

TEST_F(BigqueryTest, SkipInvalidRowsStoresTheValidRowsOfTheRequest) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_action", "type": "STRING"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "_change_id", "type": "STRING"},
      {"name": "_rev", "type": "INTEGER"}, {"name": "age", "type": "INTEGER"}]})")
                             .at("f")));
  auto driver = Started({{"skipInvalidRows", true}});
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"age", 30}}),
                                       Item("u2", 1, Action::kInsert, {{"age", "thirty"}})},
                                 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "invalid");
  EXPECT_EQ(Rows().size(), 1u);
}

TEST_F(BigqueryTest, IgnoreUnknownValuesDropsUnknownFieldsWithoutASchemaChange) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_action", "type": "STRING"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "_change_id", "type": "STRING"},
      {"name": "_rev", "type": "INTEGER"}]})")
                             .at("f")));
  auto driver = Started({{"ignoreUnknownValues", true}});
  auto results = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, {{"unknown", 1}, {"bad-name", 2}})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(fake_.counters().tables_patched, 0);
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_FALSE(rows[0].contains("unknown"));

  // Without the option the column is added.
  auto strict = Started();
  auto added = strict->Deliver(Batch{Item("u2", 1, Action::kInsert, {{"unknown", 1}})}, 10s);
  EXPECT_EQ(added[0].outcome, Outcome::kDelivered) << added[0].error;
  EXPECT_EQ(fake_.counters().tables_patched, 1);
}

TEST_F(BigqueryTest, IgnoreUnknownValuesAppliesToLoadJobsToo) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_action", "type": "STRING"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "_change_id", "type": "STRING"},
      {"name": "_rev", "type": "INTEGER"}]})")
                             .at("f")));
  auto driver = Started({{"ignoreUnknownValues", true}, {"insertMethod", "batch"}});
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"unknown", 1}})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(fake_.counters().tables_patched, 0);
  auto rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_FALSE(rows[0].contains("unknown"));
  EXPECT_EQ(fake_.counters().jobs_inserted, 1);
}

TEST_F(BigqueryTest, ATransientRowErrorIsRetryable) {
  auto driver = Started();
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailRow("users:u2:1", "backendError");
  auto results = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, {}), Item("u2", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kRetryable);
  EXPECT_NE(results[1].error.find("backendError"), std::string::npos);
  EXPECT_EQ(driver->Deliver(Batch{Item("u2", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  EXPECT_EQ(Rows().size(), 3u);
}

TEST_F(BigqueryTest, RateLimitsQuotaAndServerErrorsAreRetryable) {
  auto driver = Started();
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  for (auto [status, reason] :
       std::vector<std::pair<int, std::string>>{{403, "rateLimitExceeded"},
                                                {403, "quotaExceeded"},
                                                {500, "backendError"},
                                                {503, "backendError"},
                                                {429, "rateLimitExceeded"}}) {
    fake_.FailNext("POST", "/insertAll", {.status = status, .reason = reason});
    auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s);
    EXPECT_EQ(results[0].outcome, Outcome::kRetryable) << status << " " << reason;
    EXPECT_FALSE(results[0].pause_replicator);
    EXPECT_NE(results[0].error.find(reason), std::string::npos) << results[0].error;
  }
  fake_.FailNext("POST", "/insertAll",
                 {.status = 403, .reason = "rateLimitExceeded", .retry_after_seconds = 7});
  auto throttled = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(throttled[0].outcome, Outcome::kRetryable);
  EXPECT_EQ(throttled[0].retry_after, 7s);
  EXPECT_TRUE(throttled[0].pause_replicator);
}

TEST_F(BigqueryTest, BadRequestIsPermanentAndAccessDeniedIsUnauthorized) {
  auto driver = Started();
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailNext("POST", "/insertAll", {.status = 400, .reason = "invalid"});
  auto bad = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(bad[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(bad[0].reason, "invalid");
  fake_.FailNext("POST", "/insertAll", {.status = 403, .reason = "accessDenied"});
  auto denied = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, {}), Item("u2", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(denied[0].outcome, Outcome::kUnauthorized);
  EXPECT_EQ(denied[1].outcome, Outcome::kUnauthorized);
}

TEST_F(BigqueryTest, InvalidTableAndColumnNamesArePermanent) {
  auto driver = Started();
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {}, "bad/table"),
                                       Item("u2", 1, Action::kInsert, {{"bad-name", 1}}),
                                       Item("u3", 1, Action::kInsert, {{"good_name", 1}})},
                                 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "invalid_identifier");
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "invalid_column_name");
  EXPECT_NE(results[1].error.find("bad-name"), std::string::npos);
  EXPECT_EQ(results[2].outcome, Outcome::kDelivered) << results[2].error;
}

TEST_F(BigqueryTest, DestinationsMayNameTheirDatasetAndTable) {
  fake_.CreateDataset(kProject, "other");
  auto driver = Started();
  JsonObject options = Obj(R"({"table": "from_options", "dataset": "other"})");
  DeliveryItem with_options = Item("u2", 1, Action::kInsert, {});
  with_options.destination_options = &options;
  auto results =
      driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {}, "other.orders"), with_options,
                            Item("u3", 1, Action::kInsert, {}, "user profiles")},
                      10s);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  EXPECT_EQ(fake_.Rows(kProject, "other", "orders").size(), 1u);
  EXPECT_EQ(fake_.Rows(kProject, "other", "from_options").size(), 1u);
  EXPECT_EQ(fake_.Rows(kProject, kDataset, "user profiles").size(), 1u);
}

TEST_F(BigqueryTest, ExactNumbersUseNumericColumnsAndDecimalText) {
  auto driver = Started({{"exactNumbers", true}}, WithAttributes(R"({"price": "number"})"));
  auto results = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, Obj(R"({"price": 19.99, "ratio": 0.125})"))}, 10s);
  ASSERT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  std::map<std::string, Field> fields;
  for (const Field& field : TableFields()) fields[field.name] = field;
  EXPECT_EQ(fields["price"].type, FieldType::kNumeric);
  EXPECT_EQ(fields["ratio"].type, FieldType::kNumeric);
  EXPECT_EQ(Rows()[0].at("price"), Json("19.99"));
}

TEST_F(BigqueryTest, DriverMaxRetriesGivesUpWhileTheTargetAcceptsOtherChanges) {
  auto driver = Started({{"maxRetries", 1}});
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailRow("users:u1:1", "backendError", 10);
  std::vector<Outcome> outcomes;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto results =
        driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {}),
                              Item("ok" + std::to_string(attempt), 1, Action::kInsert, {})},
                        10s);
    outcomes.push_back(results[0].outcome);
    EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
    if (attempt == 1) {
      EXPECT_EQ(results[0].reason, "max_retries");
      EXPECT_NE(results[0].error.find("backendError"), std::string::npos);
    }
  }
  EXPECT_EQ(outcomes, (std::vector<Outcome>{Outcome::kRetryable, Outcome::kPermanent}));
}

TEST_F(BigqueryTest, DriverMaxRetriesIsNotSpentDuringAnOutage) {
  auto driver = Started({{"maxRetries", 1}});
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailNext("POST", "/insertAll", {.status = 503}, 5);
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s);
    EXPECT_EQ(results[0].outcome, Outcome::kRetryable) << attempt;
  }
  EXPECT_EQ(driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
}

TEST_F(BigqueryTest, TheDeadlineLeavesUnsentChangesRetryable) {
  auto driver = Started({{"maxRowsPerRequest", 1}});
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailNext("POST", "/insertAll", {.status = 0, .delay_ms = 400});
  auto start = std::chrono::steady_clock::now();
  auto results = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, {}), Item("u2", 1, Action::kInsert, {})}, 300ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_EQ(results[1].outcome, Outcome::kRetryable);
}

// ---------------------------------------------------------------------------------------------
// Batch (load jobs)

TEST_F(BigqueryTest, BatchModeLoadsRowsWithAPolledJob) {
  fake_.SetJobPollsUntilDone(2);
  auto driver = Started({{"insertMethod", "batch"}, {"location", "US"}},
                        WithAttributes(R"({"name": "string", "meta": "object"})"));
  std::vector<DeliveryItem> batch = {
      Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann", "meta": {"a": 1}, "list": [1, 2]})")),
      Item("u1", 2, Action::kDelete, Obj(R"({"name": "Ann"})"))};
  auto results = driver->Deliver(batch, 10s);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  auto counters = fake_.counters();
  EXPECT_EQ(counters.jobs_inserted, 1);
  EXPECT_GE(counters.job_polls, 2);
  EXPECT_EQ(counters.insert_all_requests, 0);
  EXPECT_TRUE(fake_.violations().empty());
  auto rows = RowsByChangeId(Rows());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows["users:u1:1"].at("meta"), Json(Obj(R"({"a": 1})")));
  EXPECT_EQ(rows["users:u1:1"].at("list"), Json({1, 2}));  // an inferred JSON column
  EXPECT_EQ(Text(rows["users:u1:2"], "_action"), "delete");
  EXPECT_EQ(driver->stats().load_jobs, 1u);
}

TEST_F(BigqueryTest, BatchModeInvalidRowIsPermanentAndTheOthersRetryable) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_action", "type": "STRING"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "_change_id", "type": "STRING"},
      {"name": "_rev", "type": "INTEGER"}, {"name": "age", "type": "INTEGER"}]})")
                             .at("f")));
  auto driver = Started({{"insertMethod", "batch"}});
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, {{"age", 1}}),
                                     Item("u2", 1, Action::kInsert, {{"age", "two"}}),
                                     Item("u3", 1, Action::kInsert, {{"age", 3}})};
  auto results = driver->Deliver(batch, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "invalid");
  EXPECT_NE(results[1].error.find("age"), std::string::npos) << results[1].error;
  EXPECT_EQ(results[2].outcome, Outcome::kRetryable);
  EXPECT_TRUE(Rows().empty());
  for (const auto& result : driver->Deliver(Batch{batch[0], batch[2]}, 10s)) {
    EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  }
  EXPECT_EQ(Rows().size(), 2u);

  auto skipping = Started({{"insertMethod", "batch"}, {"skipInvalidRows", true}});
  auto skipped = skipping->Deliver(Batch{Item("u4", 1, Action::kInsert, {{"age", "four"}}),
                                         Item("u5", 1, Action::kInsert, {{"age", 5}})},
                                   10s);
  EXPECT_EQ(skipped[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(skipped[1].outcome, Outcome::kDelivered) << skipped[1].error;
  EXPECT_EQ(Rows().size(), 3u);
}

TEST_F(BigqueryTest, BatchJobStillRunningAtTheDeadlineIsCheckedAgainWithoutDuplicates) {
  auto driver = Started({{"insertMethod", "batch"}, {"jobPollIntervalMs", 100}});
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.SetJobPollsUntilDone(4);  // more polls than fit in 300 ms
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, {})};
  auto results = driver->Deliver(batch, 300ms);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_NE(results[0].error.find("still"), std::string::npos) << results[0].error;
  EXPECT_EQ(Rows().size(), 1u);
  auto jobs_before = fake_.counters().jobs_inserted;
  // The same changes get the same job id: the service says it exists; the driver polls it.
  results = driver->Deliver(batch, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(fake_.counters().jobs_inserted, jobs_before + 1);  // refused as a duplicate
  EXPECT_EQ(Rows().size(), 2u);
}

TEST_F(BigqueryTest, BatchJobThatFailedTransientlyIsRunAgainUnderANewJobId) {
  auto driver = Started({{"insertMethod", "batch"}});
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailNextJob("backendError");
  std::vector<DeliveryItem> batch = {Item("u1", 1, Action::kInsert, {})};
  auto first = driver->Deliver(batch, 10s);
  EXPECT_EQ(first[0].outcome, Outcome::kRetryable);
  EXPECT_NE(first[0].error.find("backendError"), std::string::npos);
  auto second = driver->Deliver(batch, 10s);
  EXPECT_EQ(second[0].outcome, Outcome::kDelivered) << second[0].error;
  EXPECT_EQ(Rows().size(), 2u);
}

TEST_F(BigqueryTest, BatchJobWithoutRowPositionsIsBisectedToTheBadRow) {
  auto driver = Started({{"insertMethod", "batch"}});
  ASSERT_EQ(driver->Deliver(Batch{Item("u0", 1, Action::kInsert, {})}, 10s)[0].outcome,
            Outcome::kDelivered);
  fake_.FailNextJob("invalid");  // an error that names no row
  auto results = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, {}), Item("u2", 1, Action::kInsert, {})}, 10s);
  // The first job failed without naming a row; each half loads on its own.
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered) << results[1].error;
  EXPECT_EQ(Rows().size(), 3u);
}

// ---------------------------------------------------------------------------------------------
// Merge (DML) mode

TEST_F(BigqueryTest, MergeModeKeepsTheCurrentStateGuardedByRevision) {
  auto driver = Started({{"mode", "merge"}}, WithAttributes(R"({"name": "string", "age": "integer",
                                           "address": {"city": "string"}})"));
  auto deliver = [&](std::vector<DeliveryItem> batch) {
    for (const auto& result : driver->Deliver(batch, 10s)) {
      EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
    }
  };
  deliver({Item("u1", 1, Action::kInsert, Obj(R"({"name": "Ann", "age": 30,
                                                 "address": {"city": "Lisbon"}})")),
           Item("u2", 1, Action::kInsert, Obj(R"({"name": "Bob", "age": 40})"))});
  deliver({Item("u1", 2, Action::kUpdate, Obj(R"({"name": "Ann B", "age": 31})")),
           Item("u2", 2, Action::kDelete, Obj(R"({"name": "Bob"})"))});
  deliver({Item("u1", 1, Action::kInsert, Obj(R"({"name": "stale", "age": 1})"))});  // replay

  auto rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(Text(rows[0], "id"), "u1");
  EXPECT_EQ(Text(rows[0], "name"), "Ann B");
  EXPECT_EQ(rows[0].at("age").as_int64(), 31);
  EXPECT_EQ(rows[0].at("_rev").as_int64(), 2);
  EXPECT_FALSE(rows[0].contains("address"));  // the update replaced the record
  std::map<std::string, Field> fields;
  for (const Field& field : TableFields()) fields[field.name] = field;
  EXPECT_EQ(fields["address"].type, FieldType::kJson);  // nested values are JSON in merge mode
  EXPECT_EQ(fields.count("_action"), 0u);
  EXPECT_EQ(fake_.counters().insert_all_requests, 0);
  EXPECT_EQ(driver->stats().queries, 3u);
}

TEST_F(BigqueryTest, MergeModeCollapsesTheChangesOfARecordInABatch) {
  auto driver = Started({{"mode", "dml"}});
  auto results = driver->Deliver(
      Batch{Item("u1", 1, Action::kInsert, {{"n", 1}}), Item("u1", 2, Action::kUpdate, {{"n", 2}}),
            Item("u2", 1, Action::kInsert, {{"n", 5}}), Item("u1", 3, Action::kUpdate, {{"n", 3}})},
      10s);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  std::map<std::string, JsonObject> rows;
  for (const JsonObject& row : Rows()) rows[Text(row, "id")] = row;
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows["u1"].at("n").as_int64(), 3);
  EXPECT_EQ(rows["u1"].at("_rev").as_int64(), 3);
  EXPECT_EQ(fake_.counters().queries, 1);
}

TEST_F(BigqueryTest, MergeModeBadValueFailsOnlyItsChange) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_rev", "type": "INTEGER"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "age", "type": "INTEGER"}]})")
                             .at("f")));
  auto driver = Started({{"mode", "merge"}});
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"age", 1}}),
                                       Item("u2", 1, Action::kInsert, {{"age", "two"}}),
                                       Item("u3", 1, Action::kInsert, {{"age", 3}}),
                                       Item("u4", 1, Action::kInsert, {{"age", 4}})},
                                 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "invalidQuery");
  EXPECT_NE(results[1].error.find("two"), std::string::npos) << results[1].error;
  EXPECT_EQ(results[2].outcome, Outcome::kDelivered) << results[2].error;
  EXPECT_EQ(results[3].outcome, Outcome::kDelivered) << results[3].error;
  EXPECT_EQ(Rows().size(), 3u);
}

TEST_F(BigqueryTest, MergeModePollsAQueryJobThatIsNotCompleteYet) {
  fake_.CreateDataset(kProject, kDataset, "EU");
  fake_.SetJobPollsUntilDone(2);
  auto driver = Started({{"mode", "merge"}, {"location", "EU"}});
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"n", 1}})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_GE(fake_.counters().job_polls, 2);
  EXPECT_EQ(Rows().size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Locations

// The locations named by the job calls the fake received (jobs.insert, jobs.get, jobs.query).
std::vector<std::string> JobCallLocations(const FakeBigQuery& fake, int* calls = nullptr) {
  std::vector<std::string> locations;
  for (const auto& request : fake.requests()) {
    bool job_call = request.path.find("/jobs") != std::string::npos ||
                    request.path.find("/queries") != std::string::npos;
    if (job_call) locations.push_back(request.location);
  }
  if (calls != nullptr) *calls = static_cast<int>(locations.size());
  return locations;
}

TEST_F(BigqueryTest, TheLocationIsSentOnEveryJobCall) {
  fake_.CreateDataset(kProject, kDataset, "EU");
  fake_.SetJobPollsUntilDone(2);
  for (const char* mode : {"changelog", "merge"}) {
    auto driver = Started({{"location", "EU"}, {"insertMethod", "batch"}, {"mode", mode}});
    auto results = driver->Deliver(
        Batch{Item("u1", 1, Action::kInsert, {{"n", 1}}, std::string("t_") + mode)}, 10s);
    EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << mode << ": " << results[0].error;
    EXPECT_EQ(Rows(std::string("t_") + mode).size(), 1u) << mode;
  }
  int calls = 0;
  auto locations = JobCallLocations(fake_, &calls);
  EXPECT_GE(calls, 6);  // load: insert + 2 polls; merge: query + 2 polls
  for (const std::string& location : locations) EXPECT_EQ(location, "EU");
  // Streaming calls take no location and work the same.
  auto streaming = Started({{"location", "EU"}});
  auto results = streaming->Deliver(Batch{Item("u1", 1, Action::kInsert, {})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
}

TEST_F(BigqueryTest, WithoutLocationJobsRunAndArePolledWhereTheirDatasetIs) {
  // A single-region dataset: a jobs.get without ?location looks in US and finds nothing.
  fake_.CreateDataset(kProject, kDataset, "europe-west1");
  fake_.SetJobPollsUntilDone(2);
  auto driver = Started({{"insertMethod", "batch"}});
  auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"n", 1}})}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(Rows().size(), 1u);
  int calls = 0;
  for (const std::string& location : JobCallLocations(fake_, &calls)) {
    EXPECT_EQ(location, "europe-west1");
  }
  EXPECT_GE(calls, 3);
}

TEST_F(BigqueryTest, StartRefusesALocationOtherThanTheDatasets) {
  fake_.CreateDataset(kProject, kDataset, "US");
  auto driver = Driver({{"location", "EU"}});
  auto started = driver->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
  const std::string& message = started.error().message;
  EXPECT_NE(message.find("dataset test-project:analytics is in location US, not in EU"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("location: set it to US"), std::string::npos) << message;
  // Location names are not case-sensitive.
  S3DB_EXPECT_OK(Driver({{"location", "us"}})->Start());
}

TEST_F(BigqueryTest, AJobForADatasetInAnotherLocationIsPermanentLocationMismatch) {
  fake_.CreateDataset(kProject, kDataset, "EU");
  fake_.CreateDataset(kProject, "us_data", "US");
  for (const char* mode : {"changelog", "merge"}) {
    auto driver = Started({{"location", "EU"}, {"insertMethod", "batch"}, {"mode", mode}});
    std::string target = std::string("us_data.events_") + mode;
    auto results = driver->Deliver(Batch{Item("u1", 1, Action::kInsert, {{"n", 1}}, target)}, 10s);
    EXPECT_EQ(results[0].outcome, Outcome::kPermanent) << mode << ": " << results[0].error;
    EXPECT_EQ(results[0].reason, "location_mismatch") << mode;
    EXPECT_NE(results[0].error.find("Not found: Dataset test-project:us_data was not found in "
                                    "location EU"),
              std::string::npos)
        << results[0].error;
    EXPECT_TRUE(fake_.Rows(kProject, "us_data", std::string("events_") + mode).empty());
  }
  // Streaming into the same dataset takes no location and is delivered.
  auto streaming = Started({{"location", "EU"}});
  auto results =
      streaming->Deliver(Batch{Item("u1", 1, Action::kInsert, {}, "us_data.stream")}, 10s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
}

// ---------------------------------------------------------------------------------------------
// Through the ReplicatorPlugin with a memory:// database

class BigqueryReplicationTest : public BigqueryTest {
 protected:
  void SetUp() override {
    BigqueryTest::SetUp();
    if (HasFatalFailure()) return;
    RegisterBigqueryDriver();
    DatabaseOptions options;
    options.state_dir = state_.str();
    auto database = Database::Connect("memory://bigquery-" + testing::UniqueToken(), options);
    ASSERT_TRUE(database.has_value()) << database.error().ToString();
    database_ = std::move(*database);
    ResourceDefinition users;
    users.name = "users";
    users.attributes = Obj(R"({"name": "string", "age": "integer"})");
    auto created = database_->CreateResource(users);
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
    users_ = *created;
  }

  void TearDown() override {
    if (database_) S3DB_EXPECT_OK(database_->Close());
  }

  std::shared_ptr<ReplicatorPlugin> Install(JsonObject extra, ResourceMapping mapping) {
    ReplicatorPluginOptions options;
    options.retry_base_ms = 20;
    options.max_backoff_ms = 500;
    options.linger_ms = 1;
    ReplicatorConfig replicator;
    replicator.id = "bq";
    replicator.driver = "bigquery";
    replicator.resources = std::move(mapping);
    replicator.config = Config(std::move(extra));
    options.replicators.push_back(std::move(replicator));
    auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
    auto used = database_->UsePlugin(plugin);
    EXPECT_TRUE(used.has_value()) << used.error().ToString();
    return plugin;
  }

  testing::TempDir state_;
  std::unique_ptr<Database> database_;
  Resource* users_ = nullptr;
};

TEST_F(BigqueryReplicationTest, WritesBecomeChangeRowsInTheMappedTable) {
  ResourceMapping mapping;
  mapping.Add("users", "user_profiles");  // the spec's example mapping
  auto plugin = Install({}, mapping);
  S3DB_ASSERT_OK(users_->Insert({{"id", "u1"}, {"name", "Ann"}, {"age", 30}}));
  S3DB_ASSERT_OK(users_->Update("u1", {{"age", 31}}));
  S3DB_ASSERT_OK(users_->Delete("u1"));
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));

  auto rows = fake_.Rows(kProject, kDataset, "user_profiles");
  ASSERT_EQ(rows.size(), 3u);
  std::vector<std::string> actions;
  std::set<std::string> change_ids;
  for (const JsonObject& row : rows) {
    actions.push_back(Text(row, "_action"));
    change_ids.insert(Text(row, "_change_id"));
    EXPECT_EQ(Text(row, "id"), "u1");
  }
  std::sort(actions.begin(), actions.end());
  EXPECT_EQ(actions, (std::vector<std::string>{"delete", "insert", "update"}));
  EXPECT_EQ(change_ids.size(), 3u);
  EXPECT_EQ(change_ids.count("users:u1:1"), 1u);
  std::map<std::string, Field> fields;
  for (const Field& field : TableFields("user_profiles")) fields[field.name] = field;
  EXPECT_EQ(fields["age"].type, FieldType::kInt64);
  EXPECT_EQ(fields["name"].type, FieldType::kString);
  auto stats = plugin->GetReplicatorStats("bq");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->delivered, 3u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(BigqueryReplicationTest, MergeModeWithATransformHoldsTheCurrentState) {
  ResourceMapping mapping;
  Destination destination;
  destination.resource = "user_analytics";
  destination.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["id"] = data.at("id");
    out["user_name"] = data.contains("name") ? data.at("name") : Json(nullptr);
    out["age_next_year"] =
        data.contains("age") ? Json(data.at("age").as_int64() + 1) : Json(nullptr);
    return out;
  };
  mapping.Add("users", std::move(destination));
  auto plugin = Install({{"mode", "merge"}}, mapping);
  S3DB_ASSERT_OK(users_->Insert({{"id", "u1"}, {"name", "Ann"}, {"age", 30}}));
  S3DB_ASSERT_OK(users_->Insert({{"id", "u2"}, {"name", "Bob"}, {"age", 50}}));
  S3DB_ASSERT_OK(users_->Update("u1", {{"age", 31}}));
  S3DB_ASSERT_OK(users_->Delete("u2"));
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));

  auto rows = fake_.Rows(kProject, kDataset, "user_analytics");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(Text(rows[0], "id"), "u1");
  EXPECT_EQ(Text(rows[0], "user_name"), "Ann");
  EXPECT_EQ(rows[0].at("age_next_year").as_int64(), 32);
}

TEST_F(BigqueryReplicationTest, AnInvalidRowIsDeadLetteredWithTheApiReason) {
  fake_.CreateTable(kProject, kDataset, "users",
                    Json(Obj(R"({"f": [
      {"name": "id", "type": "STRING"}, {"name": "_action", "type": "STRING"},
      {"name": "_changed_at", "type": "TIMESTAMP"}, {"name": "_change_id", "type": "STRING"},
      {"name": "_rev", "type": "INTEGER"}, {"name": "name", "type": "INTEGER"},
      {"name": "age", "type": "INTEGER"}]})")
                             .at("f")));
  ResourceMapping mapping;
  mapping.Add("users");
  auto plugin = Install({}, mapping);
  S3DB_ASSERT_OK(users_->Insert({{"id", "u1"}, {"name", "not a number"}}));
  S3DB_ASSERT_OK(users_->Insert({{"id", "u2"}, {"age", 5}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));
  auto dead = plugin->ListDeadLetters("bq");
  ASSERT_TRUE(dead.has_value());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].reason, "invalid");
  EXPECT_EQ((*dead)[0].change.id, "u1");
  ASSERT_EQ(Rows().size(), 1u);
  EXPECT_EQ(Text(Rows()[0], "id"), "u2");
}

TEST_F(BigqueryReplicationTest, InsertOnlyActionsWithATransformSendOnlyInserts) {
  // Two replicators, streaming and batch, each with actions [insert] and a transform.
  ReplicatorPluginOptions options;
  options.retry_base_ms = 20;
  options.max_backoff_ms = 500;
  options.linger_ms = 1;
  for (const char* method : {"streaming", "batch"}) {
    Destination destination;
    destination.resource = std::string("signups_") + method;
    destination.actions = {Action::kInsert};
    destination.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
      JsonObject out;
      out["id"] = data.at("id");
      out["signup_name"] = data.contains("name") ? data.at("name") : Json(nullptr);
      return out;
    };
    ReplicatorConfig replicator;
    replicator.id = std::string("bq_") + method;
    replicator.driver = "bigquery";
    replicator.resources.Add("users", std::move(destination));
    replicator.config = Config({{"insertMethod", method}});
    options.replicators.push_back(std::move(replicator));
  }
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK(database_->UsePlugin(plugin));
  S3DB_ASSERT_OK(users_->Insert({{"id", "u1"}, {"name", "Ann"}, {"age", 30}}));
  S3DB_ASSERT_OK(users_->Update("u1", {{"age", 31}}));
  S3DB_ASSERT_OK(users_->Delete("u1"));
  S3DB_ASSERT_OK(users_->Insert({{"id", "u2"}, {"name", "Bob"}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));

  for (const char* method : {"streaming", "batch"}) {
    auto stats = plugin->GetReplicatorStats(std::string("bq_") + method);
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ(stats->delivered, 2u) << method;
    EXPECT_EQ(stats->filtered, 2u) << method;  // the update and the delete
    // Only the inserts reached BigQuery, transformed: no update or delete row, no raw field.
    std::string table = std::string("signups_") + method;
    auto rows = fake_.Rows(kProject, kDataset, table);
    ASSERT_EQ(rows.size(), 2u) << method;
    std::map<std::string, std::string> names;
    for (const JsonObject& row : rows) {
      EXPECT_EQ(Text(row, "_action"), "insert");
      EXPECT_FALSE(row.contains("name"));
      EXPECT_FALSE(row.contains("age"));
      names[Text(row, "id")] = Text(row, "signup_name");
    }
    EXPECT_EQ(names, (std::map<std::string, std::string>{{"u1", "Ann"}, {"u2", "Bob"}}));
  }
  EXPECT_EQ(fake_.insert_ids(), (std::vector<std::string>{"users:u1:1", "users:u2:1"}));
  EXPECT_GE(fake_.counters().jobs_inserted, 1);  // the inserts, alone or together
  EXPECT_LE(fake_.counters().jobs_inserted, 2);
}

TEST_F(BigqueryReplicationTest, TheSpecsMultiRegionExampleNeedsNoDatasetId) {
  // Spec, "Level 6": resources: {orders: {resource: 'analytics.orders', transform}} and a
  // config with projectId and credentials only: the destination names its dataset.
  ResourceDefinition orders;
  orders.name = "orders";
  orders.attributes = Obj(R"({"total": "string", "customerId": "string"})");
  Resource* source = *database_->CreateResource(orders);
  Destination destination;
  destination.resource = std::string(kDataset) + ".orders";
  destination.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["order_id"] = data.at("id");
    out["total_usd"] = std::stod(std::string(data.at("total").as_string()));
    out["customer_id"] = data.at("customerId");
    return out;
  };
  ResourceMapping mapping;
  mapping.Add("orders", destination);
  ReplicatorPluginOptions options;
  options.retry_base_ms = 20;
  options.linger_ms = 1;
  ReplicatorConfig replicator;
  replicator.id = "bq";
  replicator.driver = "bigquery";
  replicator.resources = std::move(mapping);
  replicator.config = Config();
  replicator.config.erase("datasetId");
  options.replicators.push_back(std::move(replicator));
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK(database_->UsePlugin(plugin));
  S3DB_ASSERT_OK(source->Insert({{"id", "o1"}, {"total", "19.90"}, {"customerId", "c7"}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));
  auto rows = fake_.Rows(kProject, kDataset, "orders");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(Text(rows[0], "order_id"), "o1");
  EXPECT_EQ(Text(rows[0], "customer_id"), "c7");
  EXPECT_EQ(plugin->GetReplicatorStats("bq")->dead_letter_count, 0u);
}

TEST_F(BigqueryReplicationTest, AMissingDatasetIdIsRefusedWhenThePluginIsInstalled) {
  ReplicatorPluginOptions options;
  ReplicatorConfig replicator;
  replicator.id = "bq";
  replicator.driver = "bigquery";
  replicator.resources.Add("users", "user_profiles");
  replicator.config = Config();
  replicator.config.erase("datasetId");
  options.replicators.push_back(std::move(replicator));
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  auto used = database_->UsePlugin(plugin);
  ASSERT_FALSE(used.has_value());
  EXPECT_EQ(used.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(used.error().message.find("replicators[0].config"), std::string::npos)
      << used.error().message;
  EXPECT_NE(used.error().message.find("datasetId: is required"), std::string::npos)
      << used.error().message;
  EXPECT_EQ(fake_.counters().api_requests, 0);
}

}  // namespace
}  // namespace s3db::replicator
