// The SQS driver against the SQS-protocol server of PEERS.md (local-aws-sqs, at
// S3DB_TEST_SQS_ENDPOINT), plus an in-process fake (tests/net/local_http_server.h) for replies that
// server never gives (retryable entry failures, throttling, refused credentials), and through the
// ReplicatorPlugin with a memory:// database.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "drivers/sqs/sqs_driver.h"
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

// A minimal SQS client for the tests (JSON 1.0, unsigned: the local server checks nothing).
class SqsClient {
 public:
  explicit SqsClient(std::string endpoint)
      : endpoint_(std::move(endpoint)), client_(net::NewHttpClient()) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }

  const std::string& endpoint() const { return endpoint_; }

  JsonObject Call(const std::string& action, const JsonObject& body) {
    net::HttpRequest request;
    request.method = "POST";
    request.url = endpoint_ + "/";
    request.headers = {{"Content-Type", "application/x-amz-json-1.0"},
                       {"X-Amz-Target", "AmazonSQS." + action}};
    request.body = ToJson(body);
    auto response = client_->Send(request);
    EXPECT_TRUE(response.has_value()) << response.error().ToString();
    if (!response) return {};
    EXPECT_EQ(response->status, 200) << action << ": " << response->body;
    auto reply = ParseJsonObject(response->body.empty() ? "{}" : response->body);
    EXPECT_TRUE(reply.has_value());
    return reply ? *reply : JsonObject();
  }

  // Creates a queue named `name` plus a unique suffix (".fifo" names stay FIFO).
  std::string CreateQueue(std::string name, JsonObject attributes = {}) {
    bool fifo = name.size() > 5 && name.substr(name.size() - 5) == ".fifo";
    if (fifo) name = name.substr(0, name.size() - 5);
    name += "-" + testing::UniqueToken() + (fifo ? ".fifo" : "");
    if (fifo) attributes["FifoQueue"] = "true";
    JsonObject body{{"QueueName", name}};
    if (!attributes.empty()) body["Attributes"] = attributes;
    JsonObject reply = Call("CreateQueue", body);
    const Json* url = reply.if_contains("QueueUrl");
    EXPECT_TRUE(url != nullptr && url->is_string());
    return url ? std::string(url->get_string()) : "";
  }

  // Receives (and deletes) messages until `count` arrived or `wait` passed.
  std::vector<JsonObject> Receive(const std::string& queue_url, std::size_t count,
                                  milliseconds wait = milliseconds(5000)) {
    std::vector<JsonObject> messages;
    auto until = std::chrono::steady_clock::now() + wait;
    while (messages.size() < count && std::chrono::steady_clock::now() < until) {
      JsonObject reply = Call("ReceiveMessage", {{"QueueUrl", queue_url},
                                                 {"MaxNumberOfMessages", 10},
                                                 {"WaitTimeSeconds", 1},
                                                 {"AttributeNames", JsonArray{"All"}},
                                                 {"MessageAttributeNames", JsonArray{"All"}}});
      const Json* received = reply.if_contains("Messages");
      if (received == nullptr || !received->is_array()) continue;
      for (const Json& message : received->get_array()) {
        messages.push_back(message.get_object());
        Call("DeleteMessage",
             {{"QueueUrl", queue_url}, {"ReceiptHandle", message.at("ReceiptHandle")}});
      }
    }
    return messages;
  }

 private:
  std::string endpoint_;
  std::unique_ptr<net::HttpClient> client_;
};

DeliveryItem Item(std::string resource, std::string id, std::uint64_t revision, Action action,
                  JsonObject data, std::optional<JsonObject> before = std::nullopt) {
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

DeliveryItem Insert(std::string id, std::string resource = "users", std::uint64_t revision = 1) {
  JsonObject data{{"id", id}, {"name", "name of " + id}};
  return Item(std::move(resource), std::move(id), revision, Action::kInsert, std::move(data));
}

DeliveryItem Sized(std::string id, std::size_t bytes) {
  DeliveryItem item = Insert(std::move(id));
  item.data["blob"] = std::string(bytes, 'x');
  return item;
}

JsonObject BodyOf(const JsonObject& message) {
  auto body = ParseJsonObject(message.at("Body").get_string());
  EXPECT_TRUE(body.has_value());
  return body ? *body : JsonObject();
}

std::string Attribute(const JsonObject& message, const std::string& name) {
  const Json* attributes = message.if_contains("Attributes");
  if (attributes == nullptr) return "";
  const Json* value = attributes->get_object().if_contains(name);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
}

class SqsDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    S3DB_REQUIRE_SERVER("S3DB_TEST_SQS_ENDPOINT");
    sqs_ = std::make_unique<SqsClient>(testing::EnvOrEmpty("S3DB_TEST_SQS_ENDPOINT"));
  }

  // A started driver for `config`, with this server's endpoint and test credentials.
  std::unique_ptr<SqsDriver> MakeDriver(JsonObject config) {
    config["endpoint"] = sqs_->endpoint();
    if (!config.contains("credentials")) {
      config["credentials"] = {{"accessKeyId", "test"}, {"secretAccessKey", "test"}};
    }
    auto options = ParseSqsOptions(config);
    EXPECT_TRUE(options.has_value()) << options.error().ToString();
    if (!options) return nullptr;
    auto driver = std::make_unique<SqsDriver>(*options, DriverContext{});
    auto started = driver->Start();
    EXPECT_TRUE(started.has_value()) << started.error().ToString();
    return driver;
  }

  std::vector<DeliveryResult> Deliver(SqsDriver& driver, std::vector<DeliveryItem> items) {
    return driver.Deliver(items, milliseconds(20000));
  }

  std::unique_ptr<SqsClient> sqs_;
};

TEST_F(SqsDriverTest, StandardQueueReceivesTheSpecBody) {
  std::string queue = sqs_->CreateQueue("standard");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  JsonObject before{{"id", "u2"}, {"name", "Jane"}};
  JsonObject after{{"id", "u2"}, {"name", "Jane Doe"}};
  auto results =
      Deliver(*driver, {Insert("u1"), Item("users", "u2", 2, Action::kUpdate, after, before),
                        Item("users", "u3", 3, Action::kDelete, {{"id", "u3"}})});
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);

  auto messages = sqs_->Receive(queue, 3);
  ASSERT_EQ(messages.size(), 3u);
  std::map<std::string, JsonObject> by_action;
  for (const auto& message : messages) {
    JsonObject body = BodyOf(message);
    by_action[std::string(body.at("action").get_string())] = body;
  }
  JsonObject insert = by_action["insert"];
  EXPECT_EQ(insert, (JsonObject{{"resource", "users"},
                                {"action", "insert"},
                                {"timestamp", "2025-10-18T10:30:00.000Z"},
                                {"source", "s3db-replicator"},
                                {"data", {{"id", "u1"}, {"name", "name of u1"}}}}));
  EXPECT_EQ(by_action["update"].at("before"), before);
  EXPECT_EQ(by_action["update"].at("data"), after);
  EXPECT_FALSE(by_action["delete"].contains("before"));
  EXPECT_EQ(by_action["delete"].at("data"), (JsonObject{{"id", "u3"}}));
  EXPECT_EQ(driver->stats().requests, 1u);
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

// The message body holds doubles in their shortest round-trip form and big integers exactly.
TEST_F(SqsDriverTest, NumbersAreSentInShortestDecimalForm) {
  std::string queue = sqs_->CreateQueue("numbers");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Item("users", "n1", 1, Action::kInsert, Numbers())});
  ASSERT_EQ(results.at(0).outcome, Outcome::kDelivered) << results[0].error;
  auto messages = sqs_->Receive(queue, 1);
  ASSERT_EQ(messages.size(), 1u);
  std::string body(messages[0].at("Body").get_string());
  EXPECT_NE(body.find(kNumbersText), std::string::npos) << body;
}

TEST_F(SqsDriverTest, FifoQueueGroupsByRecordAndDeduplicatesByChangeId) {
  std::string queue = sqs_->CreateQueue("events.fifo");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Insert("u1"), Insert("o9", "orders", 4)});
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);
  auto messages = sqs_->Receive(queue, 2);
  ASSERT_EQ(messages.size(), 2u);
  std::map<std::string, std::string> dedup_by_group;
  for (const auto& message : messages) {
    dedup_by_group[Attribute(message, "MessageGroupId")] =
        Attribute(message, "MessageDeduplicationId");
  }
  EXPECT_EQ(dedup_by_group, (std::map<std::string, std::string>{{"users:u1", "users:u1:1"},
                                                                {"orders:o9", "orders:o9:4"}}));
}

TEST_F(SqsDriverTest, AConfiguredMessageGroupIdIsUsedForEveryMessage) {
  std::string queue = sqs_->CreateQueue("static.fifo");
  auto driver = MakeDriver({{"queueUrl", queue}, {"messageGroupId", "s3db-events"}});
  ASSERT_TRUE(driver);
  Deliver(*driver, {Insert("a"), Insert("b")});
  auto messages = sqs_->Receive(queue, 2);
  ASSERT_EQ(messages.size(), 2u);
  for (const auto& message : messages) {
    EXPECT_EQ(Attribute(message, "MessageGroupId"), "s3db-events");
  }
  EXPECT_EQ(BodyOf(messages[0]).at("data").at("id"), "a");  // one group: in order
  EXPECT_EQ(BodyOf(messages[1]).at("data").at("id"), "b");
}

TEST_F(SqsDriverTest, ARetriedSendIsNotDuplicated) {
  std::string queue = sqs_->CreateQueue("dedup.fifo");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  DeliveryItem item = Insert("u1");
  // The engine sends a change again when an answer was lost: the queue keeps one message.
  EXPECT_EQ(Deliver(*driver, {item}).at(0).outcome, Outcome::kDelivered);
  EXPECT_EQ(Deliver(*driver, {item}).at(0).outcome, Outcome::kDelivered);
  auto messages = sqs_->Receive(queue, 2, milliseconds(2500));
  EXPECT_EQ(messages.size(), 1u);
}

TEST_F(SqsDriverTest, TwoUpdatesOfOneRecordBothArriveInOrder) {
  std::string queue = sqs_->CreateQueue("order.fifo");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  JsonObject v1{{"id", "u1"}, {"v", 1}};
  JsonObject v2{{"id", "u1"}, {"v", 2}};
  JsonObject v3{{"id", "u1"}, {"v", 3}};
  // Same content twice would be collapsed by content-based dedup; the change id keeps both.
  auto results = Deliver(*driver, {Item("users", "u1", 2, Action::kUpdate, v2, v1),
                                   Item("users", "u1", 3, Action::kUpdate, v3, v2)});
  EXPECT_EQ(results.at(0).outcome, Outcome::kDelivered);
  EXPECT_EQ(results.at(1).outcome, Outcome::kDelivered);
  EXPECT_EQ(driver->stats().requests, 2u);  // never two changes of a record in one request
  auto messages = sqs_->Receive(queue, 2);
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(BodyOf(messages[0]).at("data").at("v"), 2);
  EXPECT_EQ(BodyOf(messages[1]).at("data").at("v"), 3);
}

TEST_F(SqsDriverTest, RoutesPerResourceThenDefaultQueue) {
  std::string users_queue = sqs_->CreateQueue("users");
  std::string default_queue = sqs_->CreateQueue("general");
  std::string override_queue = sqs_->CreateQueue("override");
  auto driver =
      MakeDriver({{"queues", {{"users", users_queue}}}, {"defaultQueueUrl", default_queue}});
  ASSERT_TRUE(driver);
  DeliveryItem special = Insert("p1", "payments");
  JsonObject destination{{"queueUrl", override_queue}};
  special.destination_options = &destination;
  auto results = Deliver(*driver, {Insert("u1"), Insert("o1", "orders"), special});
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);

  auto users = sqs_->Receive(users_queue, 1);
  auto general = sqs_->Receive(default_queue, 1);
  auto overridden = sqs_->Receive(override_queue, 1);
  ASSERT_EQ(users.size(), 1u);
  ASSERT_EQ(general.size(), 1u);
  ASSERT_EQ(overridden.size(), 1u);
  EXPECT_EQ(BodyOf(users[0]).at("resource"), "users");
  EXPECT_EQ(BodyOf(general[0]).at("resource"), "orders");
  EXPECT_EQ(BodyOf(overridden[0]).at("resource"), "payments");
}

TEST_F(SqsDriverTest, MessageAttributesAreSentAsGiven) {
  std::string queue = sqs_->CreateQueue("attributes");
  JsonObject attributes{{"source", {{"DataType", "String"}, {"StringValue", "production-db"}}},
                        {"version", {{"DataType", "Number"}, {"StringValue", "1"}}}};
  auto driver = MakeDriver({{"queueUrl", queue}, {"messageAttributes", attributes}});
  ASSERT_TRUE(driver);
  EXPECT_EQ(Deliver(*driver, {Insert("u1")}).at(0).outcome, Outcome::kDelivered);
  auto messages = sqs_->Receive(queue, 1);
  ASSERT_EQ(messages.size(), 1u);
  const JsonObject& received = messages[0].at("MessageAttributes").get_object();
  EXPECT_EQ(received.at("source").at("StringValue"), "production-db");
  EXPECT_EQ(received.at("source").at("DataType"), "String");
  EXPECT_EQ(received.at("version").at("StringValue"), "1");
  EXPECT_EQ(received.at("version").at("DataType"), "Number");
}

TEST_F(SqsDriverTest, ARecordOverTheLimitFailsForGoodWithItsSize) {
  std::string queue = sqs_->CreateQueue("large");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Sized("big", 1363149), Insert("small")});  // 1.3 MiB
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "payload_too_large");
  EXPECT_NE(results[0].error.find("is 1363"), std::string::npos) << results[0].error;
  EXPECT_NE(results[0].error.find("1048576"), std::string::npos) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  EXPECT_EQ(sqs_->Receive(queue, 1).size(), 1u);
}

TEST_F(SqsDriverTest, BatchesAreSplitByBytes) {
  std::string queue = sqs_->CreateQueue("bytes");
  auto driver = MakeDriver({{"queueUrl", queue}, {"maxBatchBytes", 262144}});
  ASSERT_TRUE(driver);
  std::vector<DeliveryItem> items;
  for (int i = 0; i < 6; ++i) items.push_back(Sized("r" + std::to_string(i), 100000));
  auto results = Deliver(*driver, items);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);
  EXPECT_EQ(driver->stats().requests, 3u);  // two 100 kB messages per 256 KiB request
  EXPECT_EQ(sqs_->Receive(queue, 6).size(), 6u);
}

TEST_F(SqsDriverTest, BatchesHoldAtMostTenMessages) {
  std::string queue = sqs_->CreateQueue("ten");
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  std::vector<DeliveryItem> items;
  for (int i = 0; i < 25; ++i) items.push_back(Insert("r" + std::to_string(i)));
  auto results = Deliver(*driver, items);
  for (const auto& result : results) EXPECT_EQ(result.outcome, Outcome::kDelivered);
  EXPECT_EQ(driver->stats().requests, 3u);
  EXPECT_EQ(driver->stats().delivered, 25u);
  EXPECT_EQ(sqs_->Receive(queue, 25).size(), 25u);
}

TEST_F(SqsDriverTest, AnEntryTheQueueRefusesFailsAloneAndForGood) {
  std::string queue = sqs_->CreateQueue("small", {{"MaximumMessageSize", "1024"}});
  // Without the start-up check the driver does not know the queue's limit.
  auto driver = MakeDriver({{"queueUrl", queue}, {"checkQueues", false}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Insert("a"), Sized("big", 2000), Insert("c")});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "sqs_InvalidParameterValue");
  EXPECT_EQ(results[2].outcome, Outcome::kDelivered);
  EXPECT_EQ(sqs_->Receive(queue, 2).size(), 2u);
}

TEST_F(SqsDriverTest, StartReadsTheQueuesMaximumMessageSize) {
  std::string queue = sqs_->CreateQueue("limit", {{"MaximumMessageSize", "1024"}});
  auto driver = MakeDriver({{"queueUrl", queue}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Insert("a"), Sized("big", 2000)});
  EXPECT_EQ(results.at(0).outcome, Outcome::kDelivered);
  EXPECT_EQ(results.at(1).outcome, Outcome::kPermanent);
  EXPECT_EQ(results.at(1).reason, "payload_too_large");
  EXPECT_EQ(driver->stats().messages_sent, 1u);
}

TEST_F(SqsDriverTest, StartFailsForAMissingQueueNamingTheOption) {
  auto options =
      ParseSqsOptions({{"queues", {{"users", sqs_->endpoint() + "/123456789012/no-such-queue"}}},
                       {"endpoint", sqs_->endpoint()}});
  S3DB_ASSERT_OK(options);
  SqsDriver driver(*options, DriverContext{});
  auto started = driver.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(started.error().message.find("sqs config.queues.users"), std::string::npos)
      << started.error().message;
  EXPECT_NE(started.error().message.find("does not exist"), std::string::npos);
}

TEST_F(SqsDriverTest, AMissingQueueAtDeliveryPausesInsteadOfDeadLettering) {
  auto driver =
      MakeDriver({{"queueUrl", sqs_->endpoint() + "/123456789012/gone-" + testing::UniqueToken()},
                  {"checkQueues", false}});
  ASSERT_TRUE(driver);
  auto results = Deliver(*driver, {Insert("a"), Insert("b")});
  for (const auto& result : results) {
    EXPECT_EQ(result.outcome, Outcome::kUnauthorized);
    EXPECT_NE(result.error.find("QueueDoesNotExist"), std::string::npos) << result.error;
  }
}

// An in-process stand-in for SQS replies the local server never gives. It records every
// request and answers with `reply` (called with the parsed request body).
class FakeSqs {
 public:
  using Reply = std::function<void(const JsonObject& request, testing::LocalResponse& response)>;

  explicit FakeSqs(Reply reply)
      : reply_(std::move(reply)),
        server_([this](const testing::LocalRequest& request, testing::LocalResponse& response) {
          auto body = ParseJsonObject(request.body);
          {
            std::lock_guard lock(mutex_);
            requests_.push_back(request);
          }
          reply_(body ? *body : JsonObject(), response);
        }) {}

  std::string endpoint() const { return server_.Url(""); }
  std::vector<JsonObject> requests() {
    std::lock_guard lock(mutex_);
    std::vector<JsonObject> bodies;
    for (const auto& request : requests_) {
      auto body = ParseJsonObject(request.body);
      bodies.push_back(body ? *body : JsonObject());
    }
    return bodies;
  }
  testing::LocalRequest request(std::size_t i) {
    std::lock_guard lock(mutex_);
    return requests_.at(i);
  }

 private:
  Reply reply_;
  std::mutex mutex_;  // guards requests_
  std::vector<testing::LocalRequest> requests_;
  testing::LocalHttpServer server_;  // last: stops first, before what its handler uses
};

std::unique_ptr<SqsDriver> FakeDriver(const FakeSqs& fake, JsonObject config = {}) {
  config["endpoint"] = fake.endpoint();
  config["queueUrl"] = "https://sqs.eu-west-1.amazonaws.com/123456789012/events";
  config["checkQueues"] = false;
  if (!config.contains("credentials")) {
    config["credentials"] = {{"accessKeyId", "AKIDEXAMPLE"},
                             {"secretAccessKey", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}};
  }
  auto options = ParseSqsOptions(config);
  EXPECT_TRUE(options.has_value()) << options.error().ToString();
  return std::make_unique<SqsDriver>(*options, DriverContext{});
}

void JsonReply(testing::LocalResponse& response, int status, const JsonObject& body) {
  response.status = status;
  response.headers.emplace_back("Content-Type", "application/x-amz-json-1.0");
  response.body = ToJson(body);
}

TEST(SqsOptionsTest, RefusesACaFileThatCannotBeRead) {
  auto options = ParseSqsOptions({{"queueUrl", "https://sqs.us-east-1.amazonaws.com/1/q"},
                                  {"credentials", {{"accessKeyId", "k"}, {"secretAccessKey", "s"}}},
                                  {"caFile", "/nonexistent.pem"}});
  ASSERT_FALSE(options);
  EXPECT_NE(options.error().message.find(
                "sqs config.caFile: cannot read '/nonexistent.pem' (No such file or directory)"),
            std::string::npos)
      << options.error().message;
}

TEST(SqsDriverFakeTest, RequestsAreSignedWithSigV4ForSqs) {
  FakeSqs fake([](const JsonObject& request, testing::LocalResponse& response) {
    JsonArray ok;
    for (const Json& entry : request.at("Entries").get_array()) {
      ok.push_back(JsonObject{{"Id", entry.at("Id")}, {"MessageId", "x"}});
    }
    JsonReply(response, 200, {{"Successful", ok}, {"Failed", JsonArray{}}});
  });
  auto driver = FakeDriver(fake);
  std::vector<DeliveryItem> items = {Insert("u1")};
  EXPECT_EQ(driver->Deliver(items, milliseconds(5000)).at(0).outcome, Outcome::kDelivered);

  testing::LocalRequest received = fake.request(0);
  EXPECT_EQ(received.Header("x-amz-target"), "AmazonSQS.SendMessageBatch");
  EXPECT_EQ(received.Header("content-type"), "application/x-amz-json-1.0");
  std::string authorization = received.Header("authorization");
  std::string amz_date = received.Header("x-amz-date");
  ASSERT_EQ(amz_date.size(), 16u);
  EXPECT_EQ(authorization.rfind("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" + amz_date.substr(0, 8) +
                                    "/eu-west-1/sqs/aws4_request, ",
                                0),
            0u)
      << authorization;
  // The signature is the one our signer gives for exactly what the server received.
  net::SigV4Request signing{.method = "POST",
                            .path = received.path,
                            .query = {},
                            .headers = {{"host", received.Header("host")},
                                        {"content-type", received.Header("content-type")},
                                        {"x-amz-target", received.Header("x-amz-target")},
                                        {"x-amz-date", amz_date}},
                            .payload_hash = net::Sha256Hex(received.body)};
  auto expected =
      net::SigV4Sign(signing, {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""},
                     {"eu-west-1", "sqs"}, amz_date);
  EXPECT_EQ(authorization, expected.authorization);
  EXPECT_EQ(received.path, "/");
  // The queue URL travels in the body only.
  EXPECT_EQ(fake.requests().at(0).at("QueueUrl"),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/events");
}

TEST(SqsDriverFakeTest, OnlyTheFailedEntriesAreRetried) {
  int calls = 0;
  FakeSqs fake([&calls](const JsonObject& request, testing::LocalResponse& response) {
    const JsonArray& entries = request.at("Entries").get_array();
    JsonArray ok;
    JsonArray failed;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      JsonObject id{{"Id", entries[i].at("Id")}};
      if (calls == 0 && i == 1) {
        failed.push_back(JsonObject{{"Id", entries[i].at("Id")},
                                    {"SenderFault", false},
                                    {"Code", "InternalError"},
                                    {"Message", "try again"}});
      } else if (calls == 0 && i == 2) {
        failed.push_back(JsonObject{{"Id", entries[i].at("Id")},
                                    {"SenderFault", true},
                                    {"Code", "InvalidMessageContents"},
                                    {"Message", "bad"}});
      } else {
        ok.push_back(id);
      }
    }
    ++calls;
    JsonReply(response, 200, {{"Successful", ok}, {"Failed", failed}});
  });
  auto driver = FakeDriver(fake);
  std::vector<DeliveryItem> items = {Insert("a"), Insert("b"), Insert("c")};
  auto results = driver->Deliver(items, milliseconds(5000));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kRetryable);
  EXPECT_NE(results[1].error.find("InternalError"), std::string::npos);
  EXPECT_EQ(results[2].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[2].reason, "sqs_InvalidMessageContents");

  // The engine hands back only the retryable change.
  std::vector<DeliveryItem> retry = {items[1]};
  EXPECT_EQ(driver->Deliver(retry, milliseconds(5000)).at(0).outcome, Outcome::kDelivered);
  auto requests = fake.requests();
  ASSERT_EQ(requests.size(), 2u);
  ASSERT_EQ(requests[1].at("Entries").get_array().size(), 1u);
  EXPECT_EQ(ParseJsonObject(requests[1].at("Entries").get_array()[0].at("MessageBody").get_string())
                ->at("data")
                .at("id"),
            "b");
}

TEST(SqsDriverFakeTest, ARefusedBatchIsResentEntryByEntry) {
  FakeSqs fake([](const JsonObject& request, testing::LocalResponse& response) {
    const JsonArray& entries = request.at("Entries").get_array();
    bool has_bad = false;
    for (const Json& entry : entries) {
      has_bad =
          has_bad || entry.at("MessageBody").get_string().find("\"bad\"") != std::string::npos;
    }
    if (has_bad) {
      JsonReply(response, 400,
                {{"__type", "com.amazonaws.sqs#InvalidParameterValue"}, {"message", "nope"}});
      return;
    }
    JsonReply(response, 200, {{"Successful", JsonArray{JsonObject{{"Id", entries[0].at("Id")}}}}});
  });
  auto driver = FakeDriver(fake);
  std::vector<DeliveryItem> items = {Insert("good"), Insert("bad")};
  auto results = driver->Deliver(items, milliseconds(5000));
  EXPECT_EQ(results.at(0).outcome, Outcome::kDelivered);
  EXPECT_EQ(results.at(1).outcome, Outcome::kPermanent);
  EXPECT_EQ(results.at(1).reason, "sqs_InvalidParameterValue");
  EXPECT_EQ(driver->stats().split_requests, 1u);
  EXPECT_EQ(fake.requests().size(), 3u);
}

TEST(SqsDriverFakeTest, ThrottlingIsRetryableAndRefusedCredentialsPause) {
  int calls = 0;
  FakeSqs fake([&calls](const JsonObject&, testing::LocalResponse& response) {
    if (calls++ == 0) {
      JsonReply(
          response, 400,
          {{"__type", "com.amazonaws.sqs#ThrottlingException"}, {"message", "Rate exceeded"}});
    } else {
      response.headers.emplace_back("x-amzn-query-error", "InvalidClientTokenId;Sender");
      JsonReply(response, 403,
                {{"__type", "com.amazon.coral.service#InvalidClientTokenId"},
                 {"message",
                  "The security token included in the request is "
                  "invalid."}});
    }
  });
  auto driver = FakeDriver(fake);
  std::vector<DeliveryItem> items = {Insert("a"), Insert("b")};
  auto throttled = driver->Deliver(items, milliseconds(5000));
  EXPECT_EQ(throttled.at(0).outcome, Outcome::kRetryable);
  EXPECT_EQ(throttled.at(1).outcome, Outcome::kRetryable);
  auto refused = driver->Deliver(items, milliseconds(5000));
  EXPECT_EQ(refused.at(0).outcome, Outcome::kUnauthorized);
  EXPECT_EQ(refused.at(1).outcome, Outcome::kUnauthorized);
  EXPECT_EQ(refused.at(0).error.find("wJalrXUtnFEMI"), std::string::npos);
  EXPECT_EQ(fake.requests().size(), 2u);  // neither was split
}

TEST(SqsDriverFakeTest, AnUnreachableEndpointIsRetryable) {
  auto options =
      ParseSqsOptions({{"endpoint", "http://127.0.0.1:9"}, {"queueUrl", "http://127.0.0.1:9/1/q"}});
  S3DB_ASSERT_OK(options);
  SqsDriver driver(*options, DriverContext{});
  auto started = driver.Start();
  S3DB_EXPECT_ERROR(started, ErrorCode::kUnavailable);
  std::vector<DeliveryItem> items = {Insert("a")};
  EXPECT_EQ(driver.Deliver(items, milliseconds(5000)).at(0).outcome, Outcome::kRetryable);
}

// Options (no server needed).

TEST(SqsOptionsTest, ReadsTheSpecsOptions) {
  auto options = ParseSqsOptions(
      {{"region", "eu-central-1"},
       {"credentials", {{"accessKeyId", "AK"}, {"secretAccessKey", "SK"}}},
       {"queues", {{"orders", "https://sqs.eu-central-1.amazonaws.com/1/orders.fifo"}}},
       {"defaultQueueUrl", "https://sqs.eu-central-1.amazonaws.com/1/general.fifo"},
       {"messageGroupId", "s3db-replicator"},
       {"deduplicationId", true},
       {"messageAttributes", {{"env", {{"DataType", "String"}, {"StringValue", "prod"}}}}}});
  S3DB_ASSERT_OK(options);
  EXPECT_EQ(options->region, "eu-central-1");
  EXPECT_EQ(options->credentials.access_key_id, "AK");
  EXPECT_EQ(options->queues.at("orders"), "https://sqs.eu-central-1.amazonaws.com/1/orders.fifo");
  EXPECT_EQ(options->message_group_id.value_or(""), "s3db-replicator");
  EXPECT_EQ(options->max_message_bytes, 1048576u);
  EXPECT_EQ(options->max_batch_bytes, 1048576u);
  EXPECT_TRUE(options->endpoint.empty());
}

TEST(SqsOptionsTest, TakesRegionAndCredentialsFromTheEnvironmentAndQueueUrl) {
  ::setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
  ::unsetenv("AWS_REGION");
  ::unsetenv("AWS_DEFAULT_REGION");
  auto options = ParseSqsOptions({{"queueUrl", "https://sqs.ap-south-1.amazonaws.com/1/q"}});
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  S3DB_ASSERT_OK(options);
  EXPECT_EQ(options->region, "ap-south-1");
  EXPECT_EQ(options->credentials.access_key_id, "ENVKEY");
  EXPECT_EQ(options->credentials.secret_access_key, "ENVSECRET");
}

TEST(SqsOptionsTest, ASecretOfTheWrongTypeIsNeverPrinted) {
  JsonObject config{{"queueUrl", "https://sqs.us-east-1.amazonaws.com/1/q"},
                    {"credentials", {{"accessKeyId", "AKIDEXAMPLE"}, {"secretAccessKey", 12345}}}};
  auto options = ParseSqsOptions(config);
  ASSERT_FALSE(options.has_value());
  EXPECT_NE(options.error().message.find(
                "sqs config.credentials.secretAccessKey: expected a string, got a number"),
            std::string::npos)
      << options.error().message;
  EXPECT_EQ(options.error().message.find("12345"), std::string::npos) << options.error().message;
}

TEST(SqsOptionsTest, RefusesBadConfigsNamingTheOption) {
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  const std::string url = "https://sqs.us-east-1.amazonaws.com/1/q";
  const JsonObject keys{{"accessKeyId", "a"}, {"secretAccessKey", "b"}};
  const std::vector<std::pair<JsonObject, std::string>> cases = {
      {{{"credentials", keys}}, "sqs config.queueUrl: required"},
      {{{"queueUrl", url}}, "sqs config.credentials: required"},
      {{{"queueUrl", "not a url"}, {"credentials", keys}}, "sqs config.queueUrl"},
      {{{"queues", {{"users", 5}}}, {"credentials", keys}}, "sqs config.queues.users"},
      {{{"queueUrl", url}, {"credentials", {{"accessKeyId", "a"}}}}, "sqs config.credentials"},
      {{{"queueUrl", url}, {"credentials", keys}, {"maxMessageBytes", 2000000}},
       "sqs config.maxMessageBytes"},
      {{{"queueUrl", url}, {"credentials", keys}, {"maxBatchBytes", 10}},
       "sqs config.maxBatchBytes"},
      {{{"queueUrl", url}, {"credentials", keys}, {"messageAttributes", {{"a", "b"}}}},
       "sqs config.messageAttributes.a"},
      {{{"queueUrl", url},
        {"credentials", keys},
        {"messageAttributes", {{"a", {{"DataType", "Blob"}, {"StringValue", "x"}}}}}},
       "sqs config.messageAttributes.a.DataType"},
      {{{"queueUrl", url}, {"credentials", keys}, {"messageGroupId", ""}},
       "sqs config.messageGroupId"},
      {{{"queueUrl", url}, {"credentials", keys}, {"queueURL", url}},
       "sqs config.queueURL: unknown option"},
  };
  for (const auto& [config, expected] : cases) {
    auto options = ParseSqsOptions(config);
    ASSERT_FALSE(options.has_value()) << ToJson(config);
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(options.error().message.find(expected), std::string::npos) << options.error().message;
  }
}

TEST(SqsOptionsTest, MessageTokensAreKeptOrHashed) {
  EXPECT_EQ(SqsDriver::SafeMessageToken("users:u1:3"), "users:u1:3");
  std::string hashed = SqsDriver::SafeMessageToken("users:üser one:3");
  EXPECT_EQ(hashed.rfind("h-", 0), 0u);
  EXPECT_EQ(hashed.size(), 66u);
  EXPECT_EQ(hashed, SqsDriver::SafeMessageToken("users:üser one:3"));
  EXPECT_EQ(SqsDriver::SafeMessageToken(std::string(129, 'a')).rfind("h-", 0), 0u);
}

TEST(SqsOptionsTest, RegisteredUnderItsName) {
  RegisterSqsDriver();
  auto factory = FindDriver("sqs");
  ASSERT_TRUE(factory.has_value());
  auto driver =
      (*factory)({{"queueUrl", "http://127.0.0.1:9/1/q"}, {"endpoint", "http://127.0.0.1:9"}},
                 DriverContext{});
  S3DB_EXPECT_OK(driver);
}

// Through the ReplicatorPlugin with a memory:// database.

class SqsReplicationTest : public SqsDriverTest {
 protected:
  void SetUp() override {
    SqsDriverTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    RegisterSqsDriver();
    DatabaseOptions options;
    options.state_dir = state_.str();
    auto database = Database::Connect("memory://sqs-" + testing::UniqueToken(), options);
    ASSERT_TRUE(database.has_value()) << database.error().ToString();
    database_ = std::move(*database);
    for (const char* name : {"users", "orders"}) {
      ResourceDefinition definition;
      definition.name = name;
      definition.attributes = {{"name", "string|optional"}, {"blob", "string|optional"}};
      auto created = database_->CreateResource(definition);
      ASSERT_TRUE(created.has_value()) << created.error().ToString();
    }
  }

  void TearDown() override {
    if (database_) S3DB_EXPECT_OK(database_->Close());
  }

  std::shared_ptr<ReplicatorPlugin> Install(JsonObject config, ResourceMapping resources) {
    config["endpoint"] = sqs_->endpoint();
    config["credentials"] = {{"accessKeyId", "test"}, {"secretAccessKey", "test"}};
    ReplicatorPluginOptions options;
    options.retry_base_ms = 20;
    ReplicatorConfig replicator;
    replicator.id = "queue";
    replicator.driver = "sqs";
    replicator.resources = std::move(resources);
    replicator.config = std::move(config);
    options.replicators.push_back(std::move(replicator));
    auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
    auto used = database_->UsePlugin(plugin);
    EXPECT_TRUE(used.has_value()) << used.error().ToString();
    return plugin;
  }

  Resource* resource(const char* name) { return *database_->GetResource(name); }

  testing::TempDir state_;
  std::unique_ptr<Database> database_;
};

TEST_F(SqsReplicationTest, OnlyTheConfiguredResourcesAreSent) {
  std::string queue = sqs_->CreateQueue("only");
  auto plugin = Install({{"queueUrl", queue}}, ResourceMapping().Add("users"));
  S3DB_ASSERT_OK(resource("users")->Insert({{"id", "u1"}, {"name", "Ann"}}));
  S3DB_ASSERT_OK(resource("orders")->Insert({{"id", "o1"}, {"name", "Order"}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto messages = sqs_->Receive(queue, 2, milliseconds(2500));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(BodyOf(messages[0]).at("resource"), "users");
}

TEST_F(SqsReplicationTest, UpdatesOfOneRecordArriveInOrderOnAFifoQueue) {
  std::string queue = sqs_->CreateQueue("live.fifo");
  auto plugin = Install({{"queueUrl", queue}}, ResourceMapping().Add("users"));
  Resource* users = resource("users");
  S3DB_ASSERT_OK(users->Insert({{"id", "u1"}, {"name", "v1"}}));
  S3DB_ASSERT_OK(users->Update("u1", {{"name", "v2"}}));
  S3DB_ASSERT_OK(users->Update("u1", {{"name", "v3"}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto messages = sqs_->Receive(queue, 3);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(BodyOf(messages[0]).at("data").at("name"), "v1");
  EXPECT_EQ(BodyOf(messages[1]).at("data").at("name"), "v2");
  EXPECT_EQ(BodyOf(messages[2]).at("data").at("name"), "v3");
  EXPECT_EQ(BodyOf(messages[2]).at("before").at("name"), "v2");
}

TEST_F(SqsReplicationTest, ARecordOverTheLimitIsDeadLettered) {
  std::string queue = sqs_->CreateQueue("dlq");
  auto plugin = Install({{"queueUrl", queue}}, ResourceMapping().Add("users"));
  S3DB_ASSERT_OK(resource("users")->Insert({{"id", "big"}, {"blob", std::string(1363149, 'x')}}));
  S3DB_ASSERT_OK(resource("users")->Insert({{"id", "small"}, {"name", "ok"}}));
  S3DB_ASSERT_OK(plugin->WaitIdle(milliseconds(20000)));
  auto letters = plugin->ListDeadLetters("queue");
  S3DB_ASSERT_OK(letters);
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_EQ((*letters)[0].reason, "payload_too_large");
  EXPECT_EQ((*letters)[0].change.id, "big");
  EXPECT_NE((*letters)[0].error.find("bytes"), std::string::npos);
  auto messages = sqs_->Receive(queue, 1);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(BodyOf(messages[0]).at("data").at("id"), "small");
}

}  // namespace
}  // namespace s3db::replicator
