// SQS driver throughput and latency against a local SQS-protocol server (local-aws-sqs).
//
//   sqs_bench [seconds]     (default 5 per phase)
//
// Server: S3DB_BENCH_SQS_ENDPOINT, else S3DB_TEST_SQS_ENDPOINT (start it with
// scripts/test-services.sh, or `SQS_PORT=4577 node scripts/peers/sqs-local.mjs`).
// Phases:
//   1. the driver alone: Deliver calls of 100 changes to a standard queue (10 requests of 10,
//      concurrency 4), then the same to a FIFO queue;
//   2. write -> received latency through the ReplicatorPlugin on a memory:// database at
//      1,000 writes/s: two consumer threads poll the queue (ReceiveMessage, 10 at a time,
//      then DeleteMessageBatch) and compare the receive time with the change's timestamp.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "drivers/sqs/sqs_driver.h"
#include "formats/datetime.h"
#include "net/http_client.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"

namespace {

using s3db::Json;
using s3db::JsonArray;
using s3db::JsonObject;
using Clock = std::chrono::steady_clock;
using s3db::replicator::DeliveryItem;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SqsClient {
 public:
  explicit SqsClient(std::string endpoint)
      : endpoint_(std::move(endpoint)), client_(s3db::net::NewHttpClient()) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }
  const std::string& endpoint() const { return endpoint_; }

  s3db::Result<JsonObject> Call(const std::string& action, const JsonObject& body) {
    s3db::net::HttpRequest request;
    request.method = "POST";
    request.url = endpoint_ + "/";
    request.headers = {{"Content-Type", "application/x-amz-json-1.0"},
                       {"X-Amz-Target", "AmazonSQS." + action}};
    request.body = s3db::ToJson(body);
    request.timeout = std::chrono::seconds(30);
    auto response = client_->Send(request);
    if (!response) return tl::unexpected(response.error());
    if (response->status != 200) {
      return s3db::MakeError(
          s3db::ErrorCode::kUnavailable,
          action + " answered " + std::to_string(response->status) + ": " + response->body);
    }
    return s3db::ParseJsonObject(response->body.empty() ? "{}" : response->body);
  }

  std::string CreateQueue(const std::string& name, bool fifo) {
    JsonObject body{{"QueueName", name + (fifo ? ".fifo" : "")}};
    if (fifo) body["Attributes"] = JsonObject{{"FifoQueue", "true"}};
    auto reply = Call("CreateQueue", body);
    if (!reply) {
      fmt::print(stderr, "CreateQueue: {}\n", reply.error().ToString());
      std::exit(2);
    }
    return std::string(reply->at("QueueUrl").get_string());
  }

 private:
  std::string endpoint_;
  std::unique_ptr<s3db::net::HttpClient> client_;
};

DeliveryItem MakeItem(std::uint64_t n) {
  DeliveryItem item;
  item.id = "r" + std::to_string(n);
  item.change_id = "bench:" + item.id + ":1";
  item.source_resource = item.target = "bench";
  item.revision = 1;
  item.data = {{"id", item.id}, {"name", "record number " + std::to_string(n)}, {"n", n}};
  item.timestamp_ms = NowMs();
  return item;
}

JsonObject DriverConfig(const std::string& endpoint, const std::string& queue) {
  return {{"endpoint", endpoint},
          {"queueUrl", queue},
          {"credentials", {{"accessKeyId", "bench"}, {"secretAccessKey", "bench"}}}};
}

struct Throughput {
  double messages_per_second = 0;
  double requests_per_second = 0;
  std::uint64_t failed = 0;
};

Throughput RunDriver(const std::string& endpoint, const std::string& queue, int seconds) {
  auto options = s3db::replicator::ParseSqsOptions(DriverConfig(endpoint, queue));
  if (!options) {
    fmt::print(stderr, "{}\n", options.error().ToString());
    std::exit(1);
  }
  s3db::replicator::SqsDriver driver(*options, {});
  if (auto started = driver.Start(); !started) {
    fmt::print(stderr, "{}\n", started.error().ToString());
    std::exit(1);
  }
  static std::uint64_t next = 0;
  Throughput result;
  std::uint64_t delivered = 0;
  auto started = Clock::now();
  while (Clock::now() - started < std::chrono::seconds(seconds)) {
    std::vector<DeliveryItem> items;
    for (int i = 0; i < 100; ++i) items.push_back(MakeItem(next++));
    for (const auto& outcome : driver.Deliver(items, std::chrono::seconds(30))) {
      if (outcome.outcome == s3db::replicator::Outcome::kDelivered) {
        ++delivered;
      } else {
        ++result.failed;
      }
    }
  }
  double elapsed = Seconds(Clock::now() - started);
  result.messages_per_second = static_cast<double>(delivered) / elapsed;
  result.requests_per_second = static_cast<double>(driver.stats().requests) / elapsed;
  return result;
}

double Percentile(std::vector<double>& values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1))];
}

struct Latency {
  double achieved_writes_per_second = 0;
  std::size_t received = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

Latency RunLatency(SqsClient& sqs, const std::string& queue, int seconds) {
  const std::string state_dir = "/tmp/s3db-sqs-bench-state-" + std::to_string(::getpid());
  s3db::DatabaseOptions database_options;
  database_options.state_dir = state_dir;
  auto database = s3db::Database::Connect("memory://sqs-bench", database_options);
  if (!database) {
    fmt::print(stderr, "{}\n", database.error().ToString());
    std::exit(1);
  }
  s3db::ResourceDefinition definition;
  definition.name = "bench";
  definition.attributes = {{"name", "string"}, {"n", "number"}};
  auto resource = (*database)->CreateResource(definition);
  if (!resource) {
    fmt::print(stderr, "{}\n", resource.error().ToString());
    std::exit(1);
  }
  s3db::replicator::RegisterSqsDriver();
  s3db::ReplicatorPluginOptions options;
  s3db::replicator::ReplicatorConfig replicator;
  replicator.id = "bench";
  replicator.driver = "sqs";
  replicator.resources.Add("bench");
  replicator.config = DriverConfig(sqs.endpoint(), queue);
  options.replicators.push_back(std::move(replicator));
  auto plugin = std::make_shared<s3db::ReplicatorPlugin>(std::move(options));
  if (auto used = (*database)->UsePlugin(plugin); !used) {
    fmt::print(stderr, "{}\n", used.error().ToString());
    std::exit(1);
  }

  const int writes = 1000 * seconds;
  std::atomic<bool> done{false};
  std::mutex values_mutex;  // guards values
  std::vector<double> values;
  auto consume = [&] {
    SqsClient consumer(sqs.endpoint());
    while (true) {
      {
        std::lock_guard lock(values_mutex);
        if (values.size() >= static_cast<std::size_t>(writes)) return;
      }
      if (done.load()) return;
      auto reply =
          consumer.Call("ReceiveMessage",
                        {{"QueueUrl", queue}, {"MaxNumberOfMessages", 10}, {"WaitTimeSeconds", 0}});
      std::int64_t received = NowMs();
      if (!reply) continue;
      const Json* messages = reply->if_contains("Messages");
      if (messages == nullptr || !messages->is_array() || messages->get_array().empty()) {
        // Short polls: a long poll of local-aws-sqs may answer only when its wait ends, which
        // would measure the poll and not the delivery.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      JsonArray deletes;
      for (const Json& message : messages->get_array()) {
        auto body = s3db::ParseJsonObject(message.at("Body").get_string());
        if (body) {
          auto written = s3db::formats::ParseIso8601Micros(body->at("timestamp").get_string());
          if (written) {
            std::lock_guard lock(values_mutex);
            values.push_back(static_cast<double>(received) - static_cast<double>(*written / 1000));
          }
        }
        deletes.push_back(JsonObject{{"Id", "d" + std::to_string(deletes.size())},
                                     {"ReceiptHandle", message.at("ReceiptHandle")}});
      }
      if (!deletes.empty()) {
        (void)consumer.Call("DeleteMessageBatch", {{"QueueUrl", queue}, {"Entries", deletes}});
      }
    }
  };
  std::vector<std::thread> consumers;
  for (int i = 0; i < 2; ++i) consumers.emplace_back(consume);

  Latency latency;
  auto started = Clock::now();
  for (int i = 0; i < writes; ++i) {
    std::this_thread::sleep_until(started + std::chrono::microseconds(1000 * i));
    auto inserted = (*resource)->Insert(
        {{"id", "w" + std::to_string(i)}, {"name", "write " + std::to_string(i)}, {"n", i}});
    if (!inserted) {
      fmt::print(stderr, "insert: {}\n", inserted.error().ToString());
      std::exit(1);
    }
  }
  latency.achieved_writes_per_second = writes / Seconds(Clock::now() - started);
  (void)plugin->WaitIdle(std::chrono::seconds(60));
  auto until = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < until) {
    {
      std::lock_guard lock(values_mutex);
      if (values.size() >= static_cast<std::size_t>(writes)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  done = true;
  for (auto& consumer : consumers) consumer.join();

  latency.received = values.size();
  latency.p50_ms = Percentile(values, 0.50);
  latency.p99_ms = Percentile(values, 0.99);
  latency.max_ms = values.empty() ? 0 : values.back();
  (void)(*database)->Close();
  std::error_code ignored;
  std::filesystem::remove_all(state_dir, ignored);
  return latency;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = Env("S3DB_BENCH_SQS_ENDPOINT");
  if (endpoint.empty()) endpoint = Env("S3DB_TEST_SQS_ENDPOINT");
  if (endpoint.empty()) {
    fmt::print(stderr,
               "set S3DB_BENCH_SQS_ENDPOINT (or S3DB_TEST_SQS_ENDPOINT) to an SQS server, e.g.\n"
               "  SQS_PORT=4577 node scripts/peers/sqs-local.mjs &\n"
               "  S3DB_BENCH_SQS_ENDPOINT=http://127.0.0.1:4577 sqs_bench\n");
    return 2;
  }
  const int seconds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  SqsClient sqs(endpoint);
  const std::string suffix = std::to_string(::getpid());
  fmt::print("sqs bench: server {}, {} s per phase\n", endpoint, seconds);

  const std::vector<std::string> queues = {sqs.CreateQueue("bench-" + suffix, false),
                                           sqs.CreateQueue("bench-" + suffix, true),
                                           sqs.CreateQueue("bench-live-" + suffix, false)};
  Throughput standard = RunDriver(endpoint, queues[0], seconds);
  Throughput fifo = RunDriver(endpoint, queues[1], seconds);
  Latency live = RunLatency(sqs, queues[2], seconds);
  // The server is shared with the tests: drop the bench's queues and their messages.
  for (const std::string& queue : queues) {
    if (auto deleted = sqs.Call("DeleteQueue", {{"QueueUrl", queue}}); !deleted) {
      fmt::print(stderr, "DeleteQueue {}: {}\n", queue, deleted.error().ToString());
    }
  }

  fmt::print("driver, standard queue  {:>8.0f} messages/s ({:.0f} requests/s, {} failed)\n",
             standard.messages_per_second, standard.requests_per_second, standard.failed);
  fmt::print("driver, FIFO queue      {:>8.0f} messages/s ({:.0f} requests/s, {} failed)\n",
             fifo.messages_per_second, fifo.requests_per_second, fifo.failed);
  fmt::print(
      "latency at {:.0f} writes/s: {} received, p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} "
      "ms\n",
      live.achieved_writes_per_second, live.received, live.p50_ms, live.p99_ms, live.max_ms);
  return 0;
}
