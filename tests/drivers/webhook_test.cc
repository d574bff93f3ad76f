// The webhook driver against the project's webhook sink (scripts/peers/webhook-sink.mjs, at
// S3DB_TEST_WEBHOOK_URL), driven directly and through the ReplicatorPlugin.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "drivers/webhook/change_payload.h"
#include "drivers/webhook/webhook_driver.h"
#include "formats/datetime.h"
#include "net/http_client.h"
#include "net/local_http_server.h"
#include "net/sigv4.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"
#include "test_util.h"

namespace s3db::replicator {
namespace {

using std::chrono::milliseconds;

constexpr std::int64_t kChangeTimeMs = 1760783400000;  // 2025-10-18T10:30:00.000Z

// The sink's control endpoints.
class Sink {
 public:
  explicit Sink(std::string base) : base_(std::move(base)), client_(net::NewHttpClient()) {
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
  }

  std::string Url(const std::string& path) const { return base_ + path; }

  // Scopes Reset and Script to requests under `path`, so tests running in parallel against the
  // one shared sink never consume or clear each other's scripted replies.
  void SetScope(std::string path) { scope_ = std::move(path); }

  void Reset() {
    JsonObject body;
    if (!scope_.empty()) body["path"] = scope_;
    Post("/__reset", ToJson(body));
  }

  // Queues scripted replies, e.g. {{"status", 500}} or {{"status", 429}, {"headers", {...}}}.
  void Script(const JsonArray& responses) {
    JsonObject body;
    if (!scope_.empty()) body["path"] = scope_;
    body["responses"] = responses;
    Post("/__script", ToJson(body));
  }

  // Recorded requests to `path`, oldest first.
  std::vector<JsonObject> Requests(const std::string& path) const {
    net::HttpRequest request;
    request.url = base_ + "/__requests";
    auto response = client_->Send(request);
    EXPECT_TRUE(response.has_value() && response->status == 200);
    std::vector<JsonObject> out;
    if (!response) return out;
    auto all = ParseJson(response->body);
    EXPECT_TRUE(all.has_value());
    if (!all || !all->is_array()) return out;
    for (const Json& entry : all->get_array()) {
      if (entry.at("path").get_string() == path) out.push_back(entry.get_object());
    }
    return out;
  }

  // Waits until `count` requests to `path` were recorded (or `timeout` passed).
  std::vector<JsonObject> WaitForRequests(const std::string& path, std::size_t count,
                                          milliseconds timeout = milliseconds(10000)) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    std::vector<JsonObject> requests = Requests(path);
    while (requests.size() < count && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(milliseconds(20));
      requests = Requests(path);
    }
    return requests;
  }

 private:
  void Post(const std::string& path, std::string body) {
    net::HttpRequest request;
    request.method = "POST";
    request.url = base_ + path;
    request.headers = {{"Content-Type", "application/json"}};
    request.body = std::move(body);
    auto response = client_->Send(request);
    ASSERT_TRUE(response.has_value()) << response.error().ToString();
    ASSERT_EQ(response->status, 200) << response->body;
  }

  std::string scope_;  // "" = the whole sink
  std::string base_;
  std::unique_ptr<net::HttpClient> client_;
};

JsonObject Reply(int status, JsonObject extra = {}) {
  JsonObject reply = std::move(extra);
  reply["status"] = status;
  return reply;
}

DeliveryItem Item(std::string id, std::uint64_t revision, Action action, JsonObject data,
                  std::optional<JsonObject> before = std::nullopt, std::string resource = "users") {
  DeliveryItem item;
  item.change_id = resource + ":" + id + ":" + std::to_string(revision);
  item.source_resource = resource;
  item.target = resource;
  item.id = std::move(id);
  item.revision = revision;
  item.action = action;
  item.data = std::move(data);
  item.before = std::move(before);
  item.timestamp_ms = kChangeTimeMs;
  return item;
}

DeliveryItem Insert(std::string id, std::uint64_t revision = 1) {
  JsonObject data;
  data["id"] = id;
  data["name"] = "name of " + id;
  return Item(std::move(id), revision, Action::kInsert, std::move(data));
}

JsonObject Body(const JsonObject& request) {
  auto body = ParseJsonObject(request.at("body").get_string());
  EXPECT_TRUE(body.has_value()) << request.at("body").get_string();
  return body ? *body : JsonObject();
}

std::string Header(const JsonObject& request, const std::string& name) {
  const Json* value = request.at("headers").get_object().if_contains(name);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
}

std::string HttpDate(std::chrono::system_clock::time_point when) {
  std::time_t time = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return buffer;
}

class WebhookDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    S3DB_REQUIRE_SERVER("S3DB_TEST_WEBHOOK_URL");
    sink_ = std::make_unique<Sink>(testing::EnvOrEmpty("S3DB_TEST_WEBHOOK_URL"));
    path_ = "/hooks/" + testing::UniqueToken();
    sink_->SetScope(path_);
    sink_->Reset();
  }

  // A driver for `config` (url filled in unless given).
  std::unique_ptr<WebhookDriver> MakeDriver(JsonObject config = {}) {
    if (!config.contains("url")) config["url"] = sink_->Url(path_);
    auto options = ParseWebhookOptions(config);
    EXPECT_TRUE(options.has_value()) << options.error().ToString();
    if (!options) return nullptr;
    return std::make_unique<WebhookDriver>(*options, DriverContext{});
  }

  std::vector<DeliveryResult> Deliver(WebhookDriver& driver, std::vector<DeliveryItem> items,
                                      milliseconds timeout = milliseconds(10000)) {
    return driver.Deliver(items, timeout);
  }

  std::unique_ptr<Sink> sink_;
  std::string path_;

 public:
  const std::string& path() const { return path_; }
};

TEST_F(WebhookDriverTest, SendsTheSpecPayloadForInsertUpdateAndDelete) {
  auto driver = MakeDriver({{"concurrency", 1}});
  ASSERT_TRUE(driver);
  S3DB_ASSERT_OK(driver->Start());
  JsonObject before{{"id", "u2"}, {"name", "Jane"}};
  JsonObject after{{"id", "u2"}, {"name", "Jane Doe"}};
  JsonObject deleted{{"id", "u3"}, {"name", "Gone"}};
  auto results = Deliver(*driver, {Insert("u1"), Item("u2", 2, Action::kUpdate, after, before),
                                   Item("u3", 4, Action::kDelete, deleted)});

  ASSERT_EQ(results.size(), 3u);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].at("body").get_string(),
            "{\"resource\":\"users\",\"action\":\"insert\",\"timestamp\":"
            "\"2025-10-18T10:30:00.000Z\",\"source\":\"s3db-webhook-replicator\",\"data\":"
            "{\"id\":\"u1\",\"name\":\"name of u1\"}}");
  JsonObject update = Body(requests[1]);
  EXPECT_EQ(update.at("action"), "update");
  EXPECT_EQ(update.at("before"), before);
  EXPECT_EQ(update.at("data"), after);
  EXPECT_EQ(update.size(), 6u);
  JsonObject removal = Body(requests[2]);
  EXPECT_EQ(removal.at("action"), "delete");
  EXPECT_EQ(removal.at("data"), deleted);
  EXPECT_FALSE(removal.contains("before"));
  for (const auto& request : requests) {
    EXPECT_EQ(request.at("method"), "POST");
    EXPECT_EQ(Header(request, "content-type"), "application/json");
  }
  EXPECT_EQ(driver->stats().requests, 3u);
}

JsonObject Numbers() {
  return {{"id", "n1"},
          {"price", 1.5},
          {"p2", 100.25},
          {"p4", 12345678.9},
          {"huge", 1e300},
          {"tiny", 5e-324},
          {"negzero", -0.0},
          {"big", std::int64_t{9007199254740993}},
          {"ubig", std::uint64_t{18446744073709551615u}}};
}

constexpr std::string_view kNumbersText =
    R"("price":1.5,"p2":100.25,"p4":12345678.9,"huge":1e+300,"tiny":5e-324,"negzero":-0.0,)"
    R"("big":9007199254740993,"ubig":18446744073709551615)";

// Doubles go out in their shortest round-trip form (not Boost's 1.5E0) and integers beyond 2^53
// with every digit: the bytes the receiver gets.
TEST_F(WebhookDriverTest, NumbersAreSentInShortestDecimalForm) {
  auto driver = MakeDriver();
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Item("n1", 1, Action::kInsert, Numbers())});
  ASSERT_EQ(results.at(0).outcome, Outcome::kDelivered) << results[0].error;
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 1u);
  std::string body(requests[0].at("body").get_string());
  EXPECT_NE(body.find(kNumbersText), std::string::npos) << body;
  EXPECT_EQ(body.find("E0"), std::string::npos) << body;
}

TEST_F(WebhookDriverTest, BearerAuthSendsTheToken) {
  auto driver = MakeDriver({{"auth", {{"type", "bearer"}, {"token", "tok-123"}}}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Insert("u1")});
  EXPECT_EQ(results.at(0).outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Header(requests[0], "authorization"), "Bearer tok-123");
}

TEST_F(WebhookDriverTest, BasicAuthSendsUserAndPassword) {
  auto driver = MakeDriver(
      {{"auth", {{"type", "basic"}, {"username", "api_user"}, {"password", "p@ss:word"}}}});
  ASSERT_TRUE(driver);
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(Header(requests[0], "authorization"),
            "Basic " + net::Base64Encode("api_user:p@ss:word"));
}

TEST_F(WebhookDriverTest, ApiKeyAuthSendsTheConfiguredHeader) {
  auto driver = MakeDriver(
      {{"auth", {{"type", "apikey"}, {"header", "X-Custom-Key"}, {"value", "key-456"}}}});
  ASSERT_TRUE(driver);
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kDelivered);
  auto other = MakeDriver({{"auth", {{"type", "apikey"}, {"value", "key-789"}}}});
  ASSERT_TRUE(other);
  EXPECT_EQ(Deliver(*other, {Insert("u2")}).at(0).outcome, Outcome::kDelivered);

  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(Header(requests[0], "x-custom-key"), "key-456");
  EXPECT_EQ(Header(requests[1], "x-api-key"), "key-789");  // the default header name
  EXPECT_EQ(Header(requests[1], "authorization"), "");
}

TEST_F(WebhookDriverTest, CustomHeadersAndMethodAreSent) {
  auto driver = MakeDriver(
      {{"method", "put"},
       {"headers", {{"X-Environment", "test"}, {"Content-Type", "application/vnd+json"}}}});
  ASSERT_TRUE(driver);
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].at("method"), "PUT");
  EXPECT_EQ(Header(requests[0], "x-environment"), "test");
  EXPECT_EQ(Header(requests[0], "content-type"), "application/vnd+json");
}

TEST_F(WebhookDriverTest, BatchModeSendsBatchesOfAtMostBatchSize) {
  auto driver = MakeDriver({{"batch", true}, {"batchSize", 3}});
  ASSERT_TRUE(driver);
  std::vector<DeliveryItem> items;
  for (int i = 0; i < 7; ++i) items.push_back(Insert("u" + std::to_string(i)));
  auto results = Deliver(*driver, items);

  ASSERT_EQ(results.size(), 7u);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 3u);
  std::vector<std::string> ids;
  std::vector<std::size_t> sizes;
  for (const auto& request : requests) {
    JsonObject body = Body(request);
    ASSERT_EQ(body.size(), 1u);
    const JsonArray& entries = body.at("batch").get_array();
    sizes.push_back(entries.size());
    for (const Json& entry : entries) {
      EXPECT_EQ(entry.at("source"), "s3db-webhook-replicator");
      EXPECT_EQ(entry.at("timestamp"), "2025-10-18T10:30:00.000Z");
      ids.push_back(std::string(entry.at("data").at("id").get_string()));
    }
  }
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{1, 3, 3}));
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"u0", "u1", "u2", "u3", "u4", "u5", "u6"}));
}

TEST_F(WebhookDriverTest, AFailedBatchRequestFailsAllItsChanges) {
  auto driver = MakeDriver({{"batch", true}, {"batchSize", 2}, {"concurrency", 1}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(200), Reply(503)});
  auto results = Deliver(*driver, {Insert("a"), Insert("b"), Insert("c"), Insert("d")});
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[2].outcome, Outcome::kRetryable);
  EXPECT_EQ(results[3].outcome, Outcome::kRetryable);
  EXPECT_NE(results[3].error.find("503"), std::string::npos) << results[3].error;
}

// Each round: the failing change A and a fresh change that succeeds, so the receiver is up.
void ExpectRetryDelaysThenGiveUp(WebhookDriverTest* test, WebhookDriver& driver, Sink& sink,
                                 const std::vector<std::int64_t>& delays_ms) {
  DeliveryItem failing = Insert("a");
  for (std::size_t round = 0; round <= delays_ms.size(); ++round) {
    sink.Script({Reply(500), Reply(200)});
    auto results =
        driver.Deliver(std::vector<DeliveryItem>{failing, Insert("ok" + std::to_string(round))},
                       milliseconds(10000));
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
    if (round < delays_ms.size()) {
      EXPECT_EQ(results[0].outcome, Outcome::kRetryable) << "round " << round;
      EXPECT_EQ(results[0].retry_after.count(), delays_ms[round]) << "round " << round;
      EXPECT_FALSE(results[0].pause_replicator);
    } else {
      EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
      EXPECT_EQ(results[0].reason, "max_retries");
      EXPECT_NE(results[0].error.find("4 failed attempts (retries: 3)"), std::string::npos)
          << results[0].error;
    }
  }
  (void)test;
}

TEST_F(WebhookDriverTest, ExponentialStrategyDoublesTheDelayAndStopsAfterRetries) {
  auto driver = MakeDriver(
      {{"retries", 3}, {"retryDelay", 100}, {"retryStrategy", "exponential"}, {"concurrency", 1}});
  ASSERT_TRUE(driver);
  ExpectRetryDelaysThenGiveUp(this, *driver, *sink_, {100, 200, 400});
  std::size_t failing_requests = 0;
  for (const auto& request : sink_->Requests(path_)) {
    if (Body(request).at("data").at("id") == "a") ++failing_requests;
  }
  EXPECT_EQ(failing_requests, 4u);  // the first attempt and 3 retries
  EXPECT_EQ(driver->stats().given_up, 1u);
}

TEST_F(WebhookDriverTest, FixedStrategyKeepsTheDelayAndStopsAfterRetries) {
  auto driver = MakeDriver(
      {{"retries", 3}, {"retryDelay", 150}, {"retryStrategy", "fixed"}, {"concurrency", 1}});
  ASSERT_TRUE(driver);
  ExpectRetryDelaysThenGiveUp(this, *driver, *sink_, {150, 150, 150});
}

TEST_F(WebhookDriverTest, DuringAnOutageChangesStayRetryable) {
  auto driver = MakeDriver({{"retries", 1}, {"retryDelay", 50}});
  ASSERT_TRUE(driver);
  for (int attempt = 1; attempt <= 4; ++attempt) {
    sink_->Script({Reply(503)});
    auto results = Deliver(*driver, {Insert("a")});
    ASSERT_EQ(results.at(0).outcome, Outcome::kRetryable) << "attempt " << attempt;
  }
  // The receiver is back: the change is delivered, not given up.
  EXPECT_EQ(Deliver(*driver, {Insert("a")}).at(0).outcome, Outcome::kDelivered);
}

TEST_F(WebhookDriverTest, ServerErrorThenSuccessDeliversOnTheRetry) {
  auto driver = MakeDriver();
  ASSERT_TRUE(driver);
  sink_->Script({Reply(500)});
  auto first = Deliver(*driver, {Insert("u1")});
  EXPECT_EQ(first.at(0).outcome, Outcome::kRetryable);
  EXPECT_EQ(first.at(0).retry_after.count(), 1000);  // retryDelay's default
  auto second = Deliver(*driver, {Insert("u1")});
  EXPECT_EQ(second.at(0).outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].at("status"), 500);
  EXPECT_EQ(requests[1].at("status"), 200);
  EXPECT_EQ(requests[0].at("body"), requests[1].at("body"));
}

// Sends one change per status (scripted in that order) and checks each outcome.
void ExpectOutcomes(WebhookDriverTest* test, WebhookDriver& driver, Sink& sink,
                    const std::vector<std::pair<int, Outcome>>& cases) {
  JsonArray script;
  std::vector<DeliveryItem> items;
  for (const auto& [status, outcome] : cases) {
    script.push_back(Reply(status));
    items.push_back(Insert("s" + std::to_string(status)));
  }
  sink.Script(script);
  auto results = driver.Deliver(items, milliseconds(10000));
  ASSERT_EQ(results.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(results[i].outcome, cases[i].second) << "status " << cases[i].first;
    if (cases[i].second == Outcome::kPermanent) {
      EXPECT_EQ(results[i].reason, "http_" + std::to_string(cases[i].first));
    }
  }
  // Every change was sent once and got its scripted status.
  auto requests = sink.WaitForRequests(test->path(), cases.size());
  ASSERT_EQ(requests.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(requests[i].at("status"), cases[i].first);
    EXPECT_EQ(std::string(Body(requests[i]).at("data").at("id").get_string()),
              "s" + std::to_string(cases[i].first));
  }
}

TEST_F(WebhookDriverTest, StatusesAreClassifiedAsTheSpecSays) {
  // No retryOnStatus: 408, 425, 429 and every 5xx are retried.
  auto driver = MakeDriver({{"concurrency", 1}});
  ASSERT_TRUE(driver);
  ExpectOutcomes(this, *driver, *sink_,
                 {{408, Outcome::kRetryable},
                  {425, Outcome::kRetryable},
                  {429, Outcome::kRetryable},
                  {500, Outcome::kRetryable},
                  {502, Outcome::kRetryable},
                  {599, Outcome::kRetryable},
                  {409, Outcome::kPermanent},
                  {401, Outcome::kUnauthorized},
                  {403, Outcome::kUnauthorized},
                  {400, Outcome::kPermanent},
                  {404, Outcome::kPermanent},
                  {422, Outcome::kPermanent},
                  {204, Outcome::kDelivered},
                  {201, Outcome::kDelivered}});
}

TEST_F(WebhookDriverTest, ConfiguredRetryOnStatusIsTheExactRetryableSet) {
  // [409, 503]: only those are retried; the other 5xx, 408, 425 and 429 are now permanent,
  // and 401/403 still pause.
  auto driver = MakeDriver({{"concurrency", 1}, {"retryOnStatus", JsonArray{409, 503}}});
  ASSERT_TRUE(driver);
  ExpectOutcomes(this, *driver, *sink_,
                 {{409, Outcome::kRetryable},
                  {503, Outcome::kRetryable},
                  {500, Outcome::kPermanent},
                  {502, Outcome::kPermanent},
                  {504, Outcome::kPermanent},
                  {429, Outcome::kPermanent},
                  {408, Outcome::kPermanent},
                  {425, Outcome::kPermanent},
                  {401, Outcome::kUnauthorized},
                  {403, Outcome::kUnauthorized},
                  {400, Outcome::kPermanent},
                  {200, Outcome::kDelivered}});
}

TEST_F(WebhookDriverTest, AnEmptyRetryOnStatusRetriesNoStatus) {
  auto driver = MakeDriver({{"concurrency", 1}, {"retryOnStatus", JsonArray{}}});
  ASSERT_TRUE(driver);
  ExpectOutcomes(this, *driver, *sink_,
                 {{503, Outcome::kPermanent},
                  {429, Outcome::kPermanent},
                  {401, Outcome::kUnauthorized},
                  {200, Outcome::kDelivered}});
}

TEST_F(WebhookDriverTest, BadRequestIsPermanentWithoutLeakingSecrets) {
  auto driver = MakeDriver({{"auth", {{"type", "bearer"}, {"token", "sekret-token-1"}}}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(400, {{"body", "invalid payload, token sekret-token-1 ignored"}})});
  auto results = Deliver(*driver, {Insert("u1")});
  ASSERT_EQ(results.at(0).outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "http_400");
  EXPECT_NE(results[0].error.find("answered 400: invalid payload"), std::string::npos)
      << results[0].error;
  EXPECT_EQ(results[0].error.find("sekret-token-1"), std::string::npos) << results[0].error;
}

TEST_F(WebhookDriverTest, UnauthorizedThenRecovery) {
  auto driver = MakeDriver();
  ASSERT_TRUE(driver);
  sink_->Script({Reply(401), Reply(403)});
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kUnauthorized);
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kUnauthorized);
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kDelivered);
}

TEST_F(WebhookDriverTest, RetryAfterSecondsPausesTheReplicator) {
  auto driver = MakeDriver();
  ASSERT_TRUE(driver);
  sink_->Script({Reply(429, {{"headers", {{"Retry-After", "2"}}}})});
  auto results = Deliver(*driver, {Insert("u1")});
  ASSERT_EQ(results.at(0).outcome, Outcome::kRetryable);
  EXPECT_TRUE(results[0].pause_replicator);
  EXPECT_EQ(results[0].retry_after.count(), 2000);
}

TEST_F(WebhookDriverTest, RetryAfterHttpDatePausesTheReplicator) {
  auto driver = MakeDriver();
  ASSERT_TRUE(driver);
  auto when = std::chrono::system_clock::now() + std::chrono::seconds(5);
  sink_->Script({Reply(503, {{"headers", {{"Retry-After", HttpDate(when)}}}})});
  auto results = Deliver(*driver, {Insert("u1")});
  ASSERT_EQ(results.at(0).outcome, Outcome::kRetryable);
  EXPECT_TRUE(results[0].pause_replicator);
  EXPECT_GT(results[0].retry_after.count(), 3000);
  EXPECT_LE(results[0].retry_after.count(), 5000);
}

TEST_F(WebhookDriverTest, RetryAfterIsCapped) {
  auto driver = MakeDriver({{"maxRetryAfter", 1500}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(503, {{"headers", {{"Retry-After", "3600"}}}})});
  auto results = Deliver(*driver, {Insert("u1")});
  ASSERT_EQ(results.at(0).outcome, Outcome::kRetryable);
  EXPECT_TRUE(results[0].pause_replicator);
  EXPECT_EQ(results[0].retry_after.count(), 1500);
}

TEST_F(WebhookDriverTest, SlowReceiverHitsTheTimeout) {
  auto driver = MakeDriver({{"timeout", 300}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(200, {{"delayMs", 2000}})});
  auto started = std::chrono::steady_clock::now();
  auto results = Deliver(*driver, {Insert("u1")});
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(results.at(0).outcome, Outcome::kRetryable);
  EXPECT_NE(results[0].error.find("timeout"), std::string::npos) << results[0].error;
  EXPECT_LT(took, milliseconds(1500));
  EXPECT_GE(took, milliseconds(250));
}

TEST_F(WebhookDriverTest, TheDeliverTimeoutBoundsTheWholeCall) {
  auto driver = MakeDriver({{"timeout", 5000}, {"concurrency", 1}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(200, {{"delayMs", 3000}}), Reply(200, {{"delayMs", 3000}})});
  auto started = std::chrono::steady_clock::now();
  auto results = Deliver(*driver, {Insert("u1"), Insert("u2")}, milliseconds(400));
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(2000));
  EXPECT_EQ(results.at(0).outcome, Outcome::kRetryable);
  EXPECT_EQ(results.at(1).outcome, Outcome::kRetryable);
}

TEST_F(WebhookDriverTest, RedirectsAreNotFollowedUnlessConfigured) {
  JsonObject redirect = Reply(307, {{"headers", {{"Location", sink_->Url(path_ + "/moved")}}}});
  auto driver = MakeDriver();
  ASSERT_TRUE(driver);
  sink_->Script({redirect});
  auto results = Deliver(*driver, {Insert("u1")});
  ASSERT_EQ(results.at(0).outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "http_307");
  EXPECT_TRUE(sink_->Requests(path_ + "/moved").empty());

  auto following = MakeDriver({{"followRedirects", true}});
  ASSERT_TRUE(following);
  sink_->Script({redirect});
  EXPECT_EQ(Deliver(*following, {Insert("u1")}).at(0).outcome, Outcome::kDelivered);
  EXPECT_EQ(sink_->Requests(path_ + "/moved").size(), 1u);
}

TEST_F(WebhookDriverTest, SignsWithStandardWebhooksAndKeepsTheIdAcrossRetries) {
  const std::string key = "0123456789abcdef-signing-key";
  auto driver = MakeDriver({{"signingSecret", "whsec_" + net::Base64Encode(key)}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(500)});
  DeliveryItem item = Insert("u1", 7);
  EXPECT_EQ(Deliver(*driver, {item}).at(0).outcome, Outcome::kRetryable);
  EXPECT_EQ(Deliver(*driver, {item}).at(0).outcome, Outcome::kDelivered);

  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 2u);
  auto now_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  for (const auto& request : requests) {
    EXPECT_EQ(Header(request, "webhook-id"), "users:u1:7");
    std::string timestamp = Header(request, "webhook-timestamp");
    ASSERT_FALSE(timestamp.empty());
    EXPECT_LE(std::abs(std::stoll(timestamp) - now_seconds), 5);
    std::string content =
        "users:u1:7." + timestamp + "." + std::string(request.at("body").get_string());
    EXPECT_EQ(Header(request, "webhook-signature"),
              "v1," + net::Base64Encode(net::HmacSha256(key, content)));
  }
}

TEST_F(WebhookDriverTest, SignedBatchesGetAStableIdOfTheirChanges) {
  auto driver = MakeDriver({{"signing", {{"secret", "plain-secret"}}}, {"batch", true}});
  ASSERT_TRUE(driver);
  sink_->Script({Reply(503)});
  std::vector<DeliveryItem> items = {Insert("a"), Insert("b")};
  EXPECT_EQ(Deliver(*driver, items).at(0).outcome, Outcome::kRetryable);
  EXPECT_EQ(Deliver(*driver, items).at(0).outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 2u);
  std::string id = Header(requests[0], "webhook-id");
  EXPECT_EQ(id.rfind("batch_", 0), 0u) << id;
  EXPECT_EQ(Header(requests[1], "webhook-id"), id);
  std::string content = id + "." + Header(requests[1], "webhook-timestamp") + "." +
                        std::string(requests[1].at("body").get_string());
  EXPECT_EQ(Header(requests[1], "webhook-signature"),
            StandardWebhookSignature("plain-secret", id, Header(requests[1], "webhook-timestamp"),
                                     requests[1].at("body").get_string()));
  EXPECT_EQ(Header(requests[1], "webhook-signature"),
            "v1," + net::Base64Encode(net::HmacSha256("plain-secret", content)));
}

TEST_F(WebhookDriverTest, AFailedChangeHoldsBackLaterChangesOfTheSameRecord) {
  auto driver = MakeDriver({{"concurrency", 1}});
  ASSERT_TRUE(driver);
  JsonObject v2{{"id", "a"}, {"v", 2}};
  JsonObject v1{{"id", "a"}, {"v", 1}};
  std::vector<DeliveryItem> items = {Insert("a", 1), Item("a", 2, Action::kUpdate, v2, v1),
                                     Insert("b", 1)};
  sink_->Script({Reply(500)});
  auto results = Deliver(*driver, items);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_EQ(results[1].outcome, Outcome::kRetryable);
  EXPECT_NE(results[1].error.find("earlier change"), std::string::npos) << results[1].error;
  EXPECT_EQ(results[2].outcome, Outcome::kDelivered);
  EXPECT_EQ(sink_->Requests(path_).size(), 2u);  // a:1 (refused) and b:1; a:2 was held back

  results = Deliver(*driver, {items[0], items[1]});
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(Body(requests[2]).at("action"), "insert");
  EXPECT_EQ(Body(requests[3]).at("action"), "update");
}

TEST_F(WebhookDriverTest, ManyRecordsGoOutConcurrently) {
  auto driver = MakeDriver({{"concurrency", 8}});
  ASSERT_TRUE(driver);
  JsonArray slow;
  for (int i = 0; i < 8; ++i) slow.push_back(Reply(200, {{"delayMs", 300}}));
  sink_->Script(slow);
  std::vector<DeliveryItem> items;
  for (int i = 0; i < 8; ++i) items.push_back(Insert("c" + std::to_string(i)));
  auto started = std::chrono::steady_clock::now();
  auto results = Deliver(*driver, items);
  auto took = std::chrono::steady_clock::now() - started;
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);
  EXPECT_LT(took, milliseconds(1500));  // sequentially it would take 2.4 s
}

TEST_F(WebhookDriverTest, AnUnreachableReceiverIsRetryable) {
  auto driver = MakeDriver({{"url", "http://127.0.0.1:9/nothing-listens-here"}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Insert("u1")});
  EXPECT_EQ(results.at(0).outcome, Outcome::kRetryable);
}

TEST(WebhookTransportTest, ConnectionsAreKeptAliveAndReused) {
  testing::LocalHttpServer server([](const testing::LocalRequest&,
                                     testing::LocalResponse& response) { response.status = 204; });
  auto options = ParseWebhookOptions({{"url", server.Url("/hook")}, {"concurrency", 1}});
  S3DB_ASSERT_OK(options);
  WebhookDriver driver(*options, DriverContext{});
  for (int i = 0; i < 5; ++i) {
    std::vector<DeliveryItem> items = {Insert("a" + std::to_string(i)),
                                       Insert("b" + std::to_string(i))};
    for (const auto& result : driver.Deliver(items, milliseconds(5000))) {
      EXPECT_EQ(result.outcome, Outcome::kDelivered);
    }
  }
  EXPECT_EQ(server.requests(), 10);
  EXPECT_EQ(server.connections(), 1);
}

// Options and parsing (no server needed).

TEST(WebhookOptionsTest, DefaultsAreTheSpecs) {
  auto options = ParseWebhookOptions({{"url", "https://api.example.com/webhook"}});
  S3DB_ASSERT_OK(options);
  EXPECT_EQ(options->method, "POST");
  EXPECT_EQ(options->timeout.count(), 5000);
  EXPECT_EQ(options->retries, 3);
  EXPECT_EQ(options->retry_delay.count(), 1000);
  EXPECT_EQ(options->retry_strategy, WebhookRetryStrategy::kExponential);
  EXPECT_FALSE(options->retry_on_status.has_value());  // 408, 425, 429 and every 5xx
  auto listed = ParseWebhookOptions(
      {{"url", "https://x"}, {"retryOnStatus", JsonArray{429, 500, 502, 503, 504, 503}}});
  S3DB_ASSERT_OK(listed);
  EXPECT_EQ(listed->retry_on_status, (std::set<int>{429, 500, 502, 503, 504}));
  EXPECT_FALSE(options->batch);
  EXPECT_EQ(options->batch_size, 100);
  EXPECT_FALSE(options->follow_redirects);
  EXPECT_TRUE(options->verify_tls);
  EXPECT_TRUE(options->signing_key.empty());
}

// A caFile that cannot be used is refused at start-up, naming the option and the file, instead
// of failing every delivery with curl's "error setting certificate file".
TEST(WebhookOptionsTest, RefusesACaFileThatCannotBeUsed) {
  testing::TempDir dir;
  std::string not_pem = dir.str() + "/not.pem";
  std::ofstream(not_pem) << "hello\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/nonexistent.pem",
       "webhook config.caFile: cannot read '/nonexistent.pem' (No such file or directory)"},
      {dir.str(), "webhook config.caFile: '" + dir.str() + "' is a directory"},
      {not_pem, "webhook config.caFile: '" + not_pem + "' holds no PEM certificate"},
  };
  for (const auto& [file, expected] : cases) {
    auto options = ParseWebhookOptions({{"url", "https://x"}, {"caFile", file}});
    ASSERT_FALSE(options) << file;
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(options.error().message.find(expected), std::string::npos)
        << options.error().message;
  }
}

TEST(WebhookOptionsTest, RefusesBadConfigsNamingTheOption) {
  const std::vector<std::pair<JsonObject, std::string>> cases = {
      {{}, "webhook config.url: required"},
      {{{"url", "ftp://example.com"}}, "webhook config.url"},
      {{{"url", "https://x"}, {"retryStrategy", "linear"}}, "webhook config.retryStrategy"},
      {{{"url", "https://x"}, {"timeout", 0}}, "webhook config.timeout"},
      {{{"url", "https://x"}, {"retries", -1}}, "webhook config.retries"},
      {{{"url", "https://x"}, {"method", "GET"}}, "webhook config.method"},
      {{{"url", "https://x"}, {"retryOnStatus", JsonArray{503, 700}}},
       "webhook config.retryOnStatus[1]: 700 is not an HTTP status (an integer 100-599)"},
      {{{"url", "https://x"}, {"retryOnStatus", JsonArray{99}}},
       "webhook config.retryOnStatus[0]: 99 is not an HTTP status"},
      {{{"url", "https://x"}, {"retryOnStatus", JsonArray{"503"}}},
       "webhook config.retryOnStatus[0]: \"503\" is not an HTTP status"},
      {{{"url", "https://x"}, {"retryOnStatus", JsonArray{503.5}}},
       "webhook config.retryOnStatus[0]: 503.5 is not an HTTP status"},
      {{{"url", "https://x"}, {"retryOnStatus", 503}},
       "webhook config.retryOnStatus: expected an array of HTTP statuses"},
      {{{"url", "https://x"}, {"retryOnStatus", JsonArray{200}}},
       "webhook config.retryOnStatus[0]: 200 is a success and is never retried"},
      {{{"url", "https://x"}, {"retryOnStatus", JsonArray{500, 401}}},
       "webhook config.retryOnStatus[1]: 401 always pauses the replicator"},
      {{{"url", "https://x"}, {"auth", {{"type", "digest"}}}}, "webhook config.auth.type"},
      {{{"url", "https://x"}, {"auth", {{"type", "bearer"}}}}, "webhook config.auth.token"},
      {{{"url", "https://x"}, {"auth", {{"type", "apikey"}}}}, "webhook config.auth.value"},
      {{{"url", "https://x"}, {"signingSecret", "whsec_***"}}, "webhook config.signingSecret"},
      {{{"url", "https://x"}, {"signingSecret", "a"}, {"signing", {{"secret", "b"}}}},
       "webhook config.signing"},
      {{{"url", "https://x"}, {"batchSize", 0}}, "webhook config.batchSize"},
      {{{"url", "https://x"}, {"retry", 3}}, "webhook config.retry: unknown option"},
  };
  for (const auto& [config, expected] : cases) {
    auto options = ParseWebhookOptions(config);
    ASSERT_FALSE(options.has_value()) << ToJson(config);
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(options.error().message.find(expected), std::string::npos) << options.error().message;
  }
}

TEST(WebhookOptionsTest, RegisteredUnderItsName) {
  RegisterWebhookDriver();
  auto factory = FindDriver("webhook");
  ASSERT_TRUE(factory.has_value());
  auto driver = (*factory)({{"url", "http://127.0.0.1:9/x"}}, DriverContext{});
  S3DB_EXPECT_OK(driver);
  auto refused = (*factory)({{"url", 5}}, DriverContext{});
  S3DB_EXPECT_ERROR(refused, ErrorCode::kInvalidArgument);
}

TEST(WebhookOptionsTest, ASecretOfTheWrongTypeIsNeverPrinted) {
  // YAML reads `token: 12345` as a number; the error said "got 12345".
  const std::vector<std::pair<JsonObject, std::string>> cases = {
      {{{"url", "https://x"}, {"auth", {{"type", "bearer"}, {"token", 12345}}}},
       "webhook config.auth.token: expected a string, got a number (quote the value)"},
      {{{"url", "https://x"}, {"auth", {{"type", "apikey"}, {"value", 12345}}}},
       "webhook config.auth.value: expected a string, got a number"},
      {{{"url", "https://x"}, {"signingSecret", 12345}},
       "webhook config.signingSecret: expected a string, got a number"},
  };
  for (const auto& [config, expected] : cases) {
    auto options = ParseWebhookOptions(config);
    ASSERT_FALSE(options.has_value()) << ToJson(config);
    EXPECT_NE(options.error().message.find(expected), std::string::npos) << options.error().message;
    EXPECT_EQ(options.error().message.find("12345"), std::string::npos) << options.error().message;
  }
}

TEST(WebhookOptionsTest, AMisspeltOptionGetsTheClosestKnownOne) {
  auto options = ParseWebhookOptions({{"url", "https://x"}, {"retryDelai", 10}});
  ASSERT_FALSE(options.has_value());
  EXPECT_NE(options.error().message.find("webhook config.retryDelai: unknown option (known: "),
            std::string::npos)
      << options.error().message;
  EXPECT_NE(options.error().message.find("(did you mean 'retryDelay'?)"), std::string::npos)
      << options.error().message;
}

TEST(WebhookRetryAfterTest, ParsesSecondsAndTheThreeHttpDateForms) {
  // 1994-11-06T08:49:37Z
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(784111777));
  EXPECT_EQ(ParseRetryAfter("120", now), milliseconds(120000));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now), milliseconds(10000));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:50:37 GMT", now), milliseconds(60000));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:39 1994", now), milliseconds(2000));
  EXPECT_EQ(ParseRetryAfter("Sat, 05 Nov 1994 08:49:37 GMT", now), milliseconds(0));  // past
  EXPECT_FALSE(ParseRetryAfter("soon", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("-5", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("Sun, 06 Foo 1994 08:49:37 GMT", now).has_value());
}

TEST(WebhookPayloadTest, TimestampsAreIsoWithMilliseconds) {
  EXPECT_EQ(network::IsoTimestampMs(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(network::IsoTimestampMs(kChangeTimeMs + 7), "2025-10-18T10:30:00.007Z");
  EXPECT_EQ(network::IsoTimestampMs(951782400000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(network::IsoTimestampMs(-1), "1969-12-31T23:59:59.999Z");
}

TEST(WebhookPayloadTest, SignatureMatchesTheStandardWebhooksExample) {
  // The example of the Standard Webhooks specification.
  std::string key;
  ASSERT_TRUE(net::Base64Decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key));
  EXPECT_EQ(StandardWebhookSignature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                     "{\"test\": 2432232314}"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

// Through the ReplicatorPlugin with a memory:// database.

class WebhookReplicationTest : public WebhookDriverTest {
 protected:
  void SetUp() override {
    WebhookDriverTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    RegisterWebhookDriver();
    database_url_ = "memory://webhook-" + testing::UniqueToken();
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  // Opens (or, after Close, reopens) the database and its users resource; the memory:// store
  // and the state folder outlive a close, as a bucket and a disk would.
  void Open() {
    DatabaseOptions options;
    options.state_dir = state_.str();
    auto database = Database::Connect(database_url_, options);
    ASSERT_TRUE(database.has_value()) << database.error().ToString();
    database_ = std::move(*database);
    ResourceDefinition users;
    users.name = "users";
    users.attributes = {{"name", "string"}};
    auto created = database_->CreateResource(users);
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
    users_ = *created;
  }

  void TearDown() override {
    if (database_) S3DB_EXPECT_OK(database_->Close());
  }

 public:
  std::shared_ptr<ReplicatorPlugin> Install(
      JsonObject config, int max_retries = 3, int retry_base_ms = 20,
      const std::function<void(ReplicatorPluginOptions&)>& tune = {}) {
    if (!config.contains("url")) config["url"] = sink_->Url(path_);
    ReplicatorPluginOptions options;
    options.max_retries = max_retries;
    options.retry_base_ms = retry_base_ms;
    options.max_backoff_ms = 2000;
    if (tune) tune(options);
    ReplicatorConfig replicator;
    replicator.id = "hook";
    replicator.driver = "webhook";
    replicator.resources.Add("users");
    replicator.config = std::move(config);
    options.replicators.push_back(std::move(replicator));
    auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
    auto used = database_->UsePlugin(plugin);
    EXPECT_TRUE(used.has_value()) << used.error().ToString();
    return plugin;
  }

 protected:
  JsonObject Record(const std::string& id, const std::string& name) {
    return {{"id", id}, {"name", name}};
  }

  testing::TempDir state_;
  std::string database_url_;
  std::unique_ptr<Database> database_;
  Resource* users_ = nullptr;
};

TEST_F(WebhookReplicationTest, LiveChangesAreBatched) {
  auto plugin = Install({{"batch", true}, {"batchSize", 25}});
  // Hold the first request so that the next changes pile up behind it.
  sink_->Script({Reply(200, {{"delayMs", 300}})});
  for (int i = 0; i < 60; ++i) {
    S3DB_ASSERT_OK(users_->Insert(Record("u" + std::to_string(i), "n")));
  }
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  std::size_t entries = 0;
  std::size_t largest = 0;
  for (const auto& request : requests) {
    std::size_t size = Body(request).at("batch").get_array().size();
    EXPECT_LE(size, 25u);
    entries += size;
    largest = std::max(largest, size);
  }
  EXPECT_EQ(entries, 60u);
  EXPECT_LT(requests.size(), 20u);
  EXPECT_GT(largest, 1u);
}

TEST_F(WebhookReplicationTest, ServerErrorThenSuccessIsDeliveredOnce) {
  auto plugin = Install({{"retryDelay", 50}});
  sink_->Script({Reply(500)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].at("status"), 500);
  EXPECT_EQ(requests[1].at("status"), 200);
  auto stats = plugin->GetReplicatorStats("hook");
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->delivered, 1u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(WebhookReplicationTest, TheOnlyChangeDuringAnOutageIsNeverDeadLettered) {
  // One change, a receiver answering 503 far more often than maxRetries allows: an outage of
  // the whole target, so the replicator pauses and probes, and the change arrives once the
  // receiver is back. (Before: with a single record in the batch, the engine charged every
  // 503 to the change and dead-lettered it after maxRetries.)
  auto plugin = Install({{"retryDelay", 20}}, /*max_retries=*/1, /*retry_base_ms=*/20);
  JsonArray outage;
  for (int i = 0; i < 6; ++i) outage.push_back(Reply(503));
  sink_->Script(outage);
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(30000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 7u);
  EXPECT_EQ(requests.back().at("status"), 200);
  auto stats = plugin->GetReplicatorStats("hook");
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->delivered, 1u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(WebhookReplicationTest, AnUnreachableReceiverPausesInsteadOfDeadLettering) {
  // Nothing listens on the port: connection refused, the driver says unreachable.
  auto plugin = Install({{"url", "http://127.0.0.1:1/hooks"}, {"retryDelay", 20}},
                        /*max_retries=*/1, /*retry_base_ms=*/20);
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  Result<ReplicatorStats> stats = plugin->GetReplicatorStats("hook");
  while (std::chrono::steady_clock::now() < deadline) {
    stats = plugin->GetReplicatorStats("hook");
    S3DB_ASSERT_OK(stats);
    if (stats->state == ReplicatorState::kPaused && stats->failed >= 3) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->state, ReplicatorState::kPaused);
  EXPECT_EQ(stats->pause_reason, "unavailable");
  EXPECT_GE(stats->failed, 3u) << "attempts went on past maxRetries (1)";
  EXPECT_EQ(stats->dead_letter_count, 0u);
  EXPECT_EQ(stats->dead_lettered, 0u);
}

// Gaps in milliseconds between the recorded requests.
std::vector<std::int64_t> GapsMs(const std::vector<JsonObject>& requests) {
  std::vector<std::int64_t> gaps;
  for (std::size_t i = 1; i < requests.size(); ++i) {
    auto a = formats::ParseIso8601Micros(requests[i - 1].at("time").get_string());
    auto b = formats::ParseIso8601Micros(requests[i].at("time").get_string());
    EXPECT_TRUE(a && b);
    if (a && b) gaps.push_back((*b - *a) / 1000);
  }
  return gaps;
}

TEST_F(WebhookReplicationTest, AnOutageOfOneChangeStaysPausedAndProbesWithinProbeMaxMs) {
  // retryDelay doubles (100, 200, ... 3200 ms) but the target is down (503): the engine's
  // probes, at most probeMaxMs apart, decide when to try again, the replicator stays paused
  // between them, and the change goes out at the first probe after the receiver is back.
  // (Before: the driver's doubling delay set every retry, and the replicator showed running.)
  auto plugin = Install({{"retryDelay", 100}}, /*max_retries=*/3, /*retry_base_ms=*/20,
                        [](ReplicatorPluginOptions& options) { options.probe_max_ms = 300; });
  JsonArray outage;
  for (int i = 0; i < 8; ++i) outage.push_back(Reply(503));
  sink_->Script(outage);
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));

  ASSERT_GE(sink_->WaitForRequests(path_, 2).size(), 2u);
  int samples = 0;
  while (sink_->Requests(path_).size() < 8) {
    auto stats = plugin->GetReplicatorStats("hook");
    S3DB_ASSERT_OK(stats);
    ASSERT_EQ(stats->state, ReplicatorState::kPaused) << "sample " << samples;
    EXPECT_EQ(stats->pause_reason, "unavailable");
    ++samples;
    std::this_thread::sleep_for(milliseconds(30));
  }
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 9u);
  EXPECT_EQ(requests.back().at("status"), 200);
  for (std::int64_t gap : GapsMs(requests)) EXPECT_LE(gap, 600) << "probeMaxMs is 300";
  auto stats = plugin->GetReplicatorStats("hook");
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->state, ReplicatorState::kRunning);
  EXPECT_EQ(stats->delivered, 1u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(WebhookReplicationTest, RetryDelaysOfTheDriverAreCappedAtMaxBackoffMs) {
  // A 500 for one record is charged to it; retryDelay 1000 exponential would wait 1, 2 and 4 s.
  auto plugin = Install({{"retryDelay", 1000}}, /*max_retries=*/3, /*retry_base_ms=*/20,
                        [](ReplicatorPluginOptions& options) { options.max_backoff_ms = 250; });
  sink_->Script({Reply(500), Reply(500), Reply(500)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 4u);
  for (std::int64_t gap : GapsMs(requests)) EXPECT_LE(gap, 700) << "maxBackoffMs is 250";
}

TEST_F(WebhookReplicationTest, BadRequestGoesToTheDeadLetterQueue) {
  auto plugin = Install({});
  sink_->Script({Reply(400)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto letters = plugin->ListDeadLetters("hook");
  S3DB_ASSERT_OK(letters);
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].reason, "http_400");
  EXPECT_EQ((*letters)[0].change.id, "u1");
  EXPECT_EQ(sink_->Requests(path_).size(), 1u);
}

// Receivers echo credentials back in error bodies. Every form the driver sends a secret in
// (the Basic header's base64, a Bearer token given as a plain header, a sensitive custom
// header) is masked in the log, in lastError and in the dead-letter error.
void ExpectEchoedSecretsMasked(WebhookReplicationTest* test, Sink& sink, JsonObject config,
                               const std::vector<std::string>& secrets, Resource& users) {
  // The engine logs through its "replicator" logger, made from the default one on first use
  // unless one is registered already.
  auto logger = spdlog::get("replicator");
  if (!logger) {
    logger = spdlog::default_logger()->clone("replicator");
    spdlog::register_logger(logger);
  }
  auto capture = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  logger->sinks().push_back(capture);
  auto plugin = test->Install(std::move(config), 0);
  std::string body = "invalid credentials:";
  for (const std::string& secret : secrets) body += " " + secret;
  sink.Script({Reply(400, {{"body", body}})});
  S3DB_ASSERT_OK(users.Insert({{"id", "u1"}, {"name", "Ann"}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  // The warning may be written just after the dead letter is saved.
  std::string logged;
  auto until = std::chrono::steady_clock::now() + milliseconds(5000);
  while (logged.find("dead-lettered") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(20));
    logged.clear();
    for (const std::string& line : capture->last_formatted()) logged += line;
  }
  auto& sinks = logger->sinks();
  sinks.erase(std::find(sinks.begin(), sinks.end(), capture));

  auto letters = plugin->ListDeadLetters("hook");
  S3DB_ASSERT_OK(letters);
  ASSERT_EQ(letters->size(), 1u);
  const std::string& letter = (*letters)[0].error;
  auto stats = plugin->GetReplicatorStats("hook");
  S3DB_ASSERT_OK(stats);
  ASSERT_TRUE(stats->last_error.has_value());
  const std::string& last_error = stats->last_error->message;
  EXPECT_NE(letter.find("answered 400: invalid credentials: ***"), std::string::npos) << letter;
  EXPECT_NE(last_error.find("invalid credentials: ***"), std::string::npos) << last_error;
  EXPECT_NE(logged.find("invalid credentials: ***"), std::string::npos) << logged;
  for (const std::string& secret : secrets) {
    EXPECT_EQ(letter.find(secret), std::string::npos) << letter;
    EXPECT_EQ(last_error.find(secret), std::string::npos) << last_error;
    EXPECT_EQ(logged.find(secret), std::string::npos) << logged;
  }
}

TEST_F(WebhookReplicationTest, EchoedBasicAuthHeaderIsMasked) {
  // base64("bob:BasicEcho456")
  ExpectEchoedSecretsMasked(
      this, *sink_,
      {{"auth", {{"type", "basic"}, {"username", "bob"}, {"password", "BasicEcho456"}}}},
      {"Basic Ym9iOkJhc2ljRWNobzQ1Ng==", "Ym9iOkJhc2ljRWNobzQ1Ng==", "BasicEcho456"}, *users_);
}

TEST_F(WebhookReplicationTest, EchoedSecretsOfTheUrlAreMasked) {
  // The URL's user-info password and a token in its query string are sent with every request
  // (the password as basic auth); a receiver echoing them must not put them in the log,
  // lastError or the dead-letter queue.
  std::string url = sink_->Url(path_);
  url.insert(url.find("://") + 3, "hookuser:UrlPassw0rdXYZ@");
  url += "?token=QueryTok3nABC&page=2";
  ExpectEchoedSecretsMasked(this, *sink_, {{"url", url}},
                            {"UrlPassw0rdXYZ", "QueryTok3nABC",
                             "aG9va3VzZXI6VXJsUGFzc3cwcmRYWVo="},  // base64 of user:password
                            *users_);
}

TEST_F(WebhookReplicationTest, EchoedTokensOfSensitiveHeadersAreMasked) {
  ExpectEchoedSecretsMasked(this, *sink_,
                            {{"headers",
                              {{"Authorization", "Bearer CrmTok321"},
                               {"X-Shop-Access-Token", "ShopTok777"},
                               {"Cookie", "session=CookieVal99"}}}},
                            {"CrmTok321", "ShopTok777", "session=CookieVal99"}, *users_);
}

TEST_F(WebhookReplicationTest, RetryOnStatusNarrowsWhatIsRetried) {
  auto plugin = Install({{"retryOnStatus", JsonArray{503}}, {"retryDelay", 50}});
  // A 500 is not in the list: dead-lettered after its one attempt.
  sink_->Script({Reply(500, {{"body", "boom"}})});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto letters = plugin->ListDeadLetters("hook");
  S3DB_ASSERT_OK(letters);
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].reason, "http_500");
  EXPECT_EQ((*letters)[0].change.id, "u1");
  EXPECT_EQ((*letters)[0].attempts, 1);
  EXPECT_NE((*letters)[0].error.find("answered 500: boom"), std::string::npos)
      << (*letters)[0].error;
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].at("status"), 500);

  // A 503 is in the list: retried, then delivered.
  sink_->Script({Reply(503), Reply(503)});
  S3DB_ASSERT_OK(users_->Insert(Record("u2", "Bob")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 4u);
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(Body(requests[i]).at("data").at("id"), "u2") << "request " << i;
    EXPECT_EQ(requests[i].at("status"), i < 3 ? 503 : 200) << "request " << i;
  }
  auto stats = plugin->GetReplicatorStats("hook");
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->delivered, 1u);
  EXPECT_EQ(stats->dead_letter_count, 1u);
}

TEST_F(WebhookReplicationTest, ABadRetryOnStatusIsRefusedWithItsConfigPath) {
  ReplicatorPluginOptions options;
  ReplicatorConfig replicator;
  replicator.id = "hook";
  replicator.driver = "webhook";
  replicator.resources.Add("users");
  replicator.config = {{"url", sink_->Url(path_)}, {"retryOnStatus", JsonArray{503, 600}}};
  options.replicators.push_back(std::move(replicator));
  auto used = database_->UsePlugin(std::make_shared<ReplicatorPlugin>(std::move(options)));
  ASSERT_FALSE(used.has_value());
  EXPECT_EQ(used.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(used.error().message.find("replicators[0].config"), std::string::npos)
      << used.error().message;
  EXPECT_NE(used.error().message.find(
                "retryOnStatus[1]: 600 is not an HTTP status (an integer 100-599)"),
            std::string::npos)
      << used.error().message;
}

TEST_F(WebhookReplicationTest, UnauthorizedPausesThenRecovers) {
  // Pauses of 200-400 ms, long enough to be seen by polling on a busy machine.
  auto plugin = Install({}, 3, 400);
  sink_->Script({Reply(401), Reply(401)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  // Poll the plugin itself, not the sink: reading a busy sink's log can take longer than the
  // pause lasts.
  auto stats = plugin->GetReplicatorStats("hook");
  for (int i = 0; i < 2000 && stats && stats->state != ReplicatorState::kPaused; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    stats = plugin->GetReplicatorStats("hook");
  }
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->state, ReplicatorState::kPaused);
  EXPECT_EQ(stats->pause_reason, "unauthorized");
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].at("status"), 200);
  stats = plugin->GetReplicatorStats("hook");
  EXPECT_EQ(stats->delivered, 1u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(WebhookReplicationTest, RetryAfterPausesThenTrafficResumes) {
  auto plugin = Install({});
  sink_->Script({Reply(503, {{"headers", {{"Retry-After", "1"}}}})});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  ASSERT_EQ(sink_->WaitForRequests(path_, 1).size(), 1u);
  // Written during the pause: held back until it ends, like the retry of u1.
  S3DB_ASSERT_OK(users_->Insert(Record("u2", "Bob")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].at("status"), 503);
  auto paused_at = formats::ParseIso8601Micros(requests[0].at("time").get_string());
  ASSERT_TRUE(paused_at.has_value());
  std::set<std::string> delivered;
  for (std::size_t i = 1; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].at("status"), 200);
    auto sent_at = formats::ParseIso8601Micros(requests[i].at("time").get_string());
    ASSERT_TRUE(sent_at.has_value());
    EXPECT_GE(*sent_at - *paused_at, 900000) << "request " << i;
    delivered.insert(std::string(Body(requests[i]).at("data").at("id").get_string()));
  }
  EXPECT_EQ(delivered, (std::set<std::string>{"u1", "u2"}));
  auto stats = plugin->GetReplicatorStats("hook");
  EXPECT_EQ(stats->delivered, 2u);
  EXPECT_EQ(stats->state, ReplicatorState::kRunning);
}

TEST_F(WebhookReplicationTest, RetryAfterHttpDatePausesThenTrafficResumes) {
  auto plugin = Install({});
  // An HTTP date 2 s ahead: with its whole-second precision the pause is 1 to 2 s.
  std::string date = HttpDate(std::chrono::system_clock::now() + std::chrono::seconds(2));
  sink_->Script({Reply(429, {{"headers", {{"Retry-After", date}}}})});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  // Poll the plugin itself, not the sink: reading a busy sink's log can take longer than the
  // pause lasts.
  auto stats = plugin->GetReplicatorStats("hook");
  for (int i = 0; i < 2000 && stats && stats->state != ReplicatorState::kPaused; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    stats = plugin->GetReplicatorStats("hook");
  }
  S3DB_ASSERT_OK(stats);
  EXPECT_EQ(stats->state, ReplicatorState::kPaused);
  EXPECT_EQ(stats->pause_reason, "throttled");
  S3DB_ASSERT_OK(users_->Insert(Record("u2", "Bob")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].at("status"), 429);
  auto paused_at = formats::ParseIso8601Micros(requests[0].at("time").get_string());
  ASSERT_TRUE(paused_at.has_value());
  for (std::size_t i = 1; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].at("status"), 200);
    auto sent_at = formats::ParseIso8601Micros(requests[i].at("time").get_string());
    ASSERT_TRUE(sent_at.has_value());
    EXPECT_GE(*sent_at - *paused_at, 900000) << "request " << i;
    EXPECT_LT(*sent_at - *paused_at, 10000000) << "request " << i;
  }
  stats = plugin->GetReplicatorStats("hook");
  EXPECT_EQ(stats->delivered, 2u);
  EXPECT_EQ(stats->dead_letter_count, 0u);
}

TEST_F(WebhookReplicationTest, TheWebhookIdOfAChangeSurvivesARestart) {
  const std::string secret = "restart-signing-secret";
  // A long retryDelay: the retry happens after the restart, not before.
  JsonObject config{{"signingSecret", secret}, {"retryDelay", 60000}};
  auto plugin = Install(config);
  sink_->Script({Reply(500)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  ASSERT_EQ(sink_->WaitForRequests(path_, 1).size(), 1u);
  S3DB_ASSERT_OK(database_->Close());
  plugin.reset();
  database_.reset();

  ASSERT_NO_FATAL_FAILURE(Open());
  plugin = Install(config);
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].at("status"), 500);
  EXPECT_EQ(requests[1].at("status"), 200);
  std::string id = Header(requests[0], "webhook-id");
  EXPECT_EQ(id.rfind("users:u1:", 0), 0u) << id;
  EXPECT_EQ(Header(requests[1], "webhook-id"), id);
  EXPECT_EQ(requests[0].at("body"), requests[1].at("body"));
  for (const auto& request : requests) {
    EXPECT_EQ(Header(request, "webhook-signature"),
              StandardWebhookSignature(secret, id, Header(request, "webhook-timestamp"),
                                       request.at("body").get_string()));
  }
}

TEST_F(WebhookReplicationTest, ExponentialRetriesAreSpacedByRetryDelay) {
  auto plugin = Install({{"retryDelay", 200}, {"retryStrategy", "exponential"}});
  sink_->Script({Reply(500), Reply(500), Reply(500)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "Ann")));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto requests = sink_->Requests(path_);
  ASSERT_EQ(requests.size(), 4u);
  std::vector<std::int64_t> gaps_ms;
  for (std::size_t i = 1; i < requests.size(); ++i) {
    auto a = formats::ParseIso8601Micros(requests[i - 1].at("time").get_string());
    auto b = formats::ParseIso8601Micros(requests[i].at("time").get_string());
    ASSERT_TRUE(a && b);
    gaps_ms.push_back((*b - *a) / 1000);
  }
  EXPECT_GE(gaps_ms[0], 190);
  EXPECT_GE(gaps_ms[1], 390);
  EXPECT_GE(gaps_ms[2], 790);
  EXPECT_LT(gaps_ms[2], 3000);
}

TEST_F(WebhookReplicationTest, OrderPerRecordHoldsUnderRetries) {
  auto plugin = Install({{"retryDelay", 50}});
  sink_->Script({Reply(500), Reply(503)});
  S3DB_ASSERT_OK(users_->Insert(Record("u1", "v1")));
  for (int v = 2; v <= 5; ++v) {
    S3DB_ASSERT_OK(users_->Update("u1", {{"name", "v" + std::to_string(v)}}));
  }
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  std::vector<std::string> delivered;
  for (const auto& request : sink_->Requests(path_)) {
    if (request.at("status") != 200) continue;
    delivered.push_back(std::string(Body(request).at("data").at("name").get_string()));
  }
  ASSERT_FALSE(delivered.empty());
  EXPECT_EQ(delivered.back(), "v5");
  EXPECT_TRUE(std::is_sorted(delivered.begin(), delivered.end()))
      << ToJson(Json(JsonArray(delivered.begin(), delivered.end())));
}

}  // namespace
}  // namespace s3db::replicator
