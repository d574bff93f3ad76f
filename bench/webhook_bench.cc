// Webhook driver throughput and latency against a local receiver (the project's webhook sink).
//
//   webhook_bench [seconds]     (default 5 per phase)
//
// Receiver: S3DB_BENCH_WEBHOOK_URL, else S3DB_TEST_WEBHOOK_URL (start it with
// scripts/test-services.sh, or `HOOK_PORT=18081 node scripts/peers/webhook-sink.mjs`).
// Phases, all against the same receiver in the same run:
//   1. wrk (Debian package `wrk`): 2 threads, 8 connections, POSTing one change payload: the
//      receiver's own ceiling;
//   2. the driver unbatched (concurrency 8), Deliver calls of 100 changes;
//   3. the driver batched (batchSize 100);
//   4. write -> received latency through the ReplicatorPlugin on a memory:// database at
//      1,000 writes/s, unbatched and batched (receive time as the sink records it, in ms).
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "drivers/webhook/change_payload.h"
#include "drivers/webhook/webhook_driver.h"
#include "formats/datetime.h"
#include "net/http_client.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"

namespace {

using s3db::Json;
using s3db::JsonObject;
using Clock = std::chrono::steady_clock;
using s3db::replicator::DeliveryItem;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

// The sink's control endpoints, limited to the paths under `scope`, so that the bench never
// clears the recorded requests or scripts of tests that share the sink.
class Sink {
 public:
  Sink(std::string base, std::string scope)
      : base_(std::move(base)), scope_(std::move(scope)), client_(s3db::net::NewHttpClient()) {
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
  }
  // `path` under the scope.
  std::string Path(const std::string& path) const { return scope_ + path; }
  std::string Url(const std::string& path) const { return base_ + Path(path); }
  bool Reset() {
    s3db::net::HttpRequest request{.method = "POST",
                                   .url = base_ + "/__reset",
                                   .headers = {{"Content-Type", "application/json"}},
                                   .body = s3db::ToJson(JsonObject{{"path", scope_}})};
    auto response = client_->Send(request);
    return response && response->status == 200;
  }
  s3db::Result<Json> Requests() {
    auto response = client_->Send({.url = base_ + "/__requests?path=" + scope_});
    if (!response) return tl::unexpected(response.error());
    return s3db::ParseJson(response->body);
  }

 private:
  std::string base_;
  std::string scope_;
  std::unique_ptr<s3db::net::HttpClient> client_;
};

DeliveryItem MakeItem(std::uint64_t n) {
  DeliveryItem item;
  item.id = "r" + std::to_string(n);
  item.change_id = "bench:" + item.id + ":1";
  item.source_resource = item.target = "bench";
  item.revision = 1;
  item.data = {{"id", item.id}, {"name", "record number " + std::to_string(n)}, {"n", n}};
  item.timestamp_ms = 1760783400000;
  return item;
}

// wrk's requests/s for POSTing `body` to `url`, or a negative number when wrk failed.
double RunWrk(const std::string& url, const std::string& body, int seconds) {
  const std::string script = "/tmp/s3db-webhook-bench-" + std::to_string(::getpid()) + ".lua";
  {
    std::ofstream lua(script);
    std::string quoted;
    for (char c : body) {
      if (c == '\\' || c == '"') quoted += '\\';
      quoted += c;
    }
    lua << "wrk.method = \"POST\"\nwrk.body = \"" << quoted << "\"\n"
        << "wrk.headers[\"Content-Type\"] = \"application/json\"\n";
  }
  std::string command = fmt::format("wrk -t2 -c8 -d{}s -s {} {} 2>&1", seconds, script, url);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  int status = ::pclose(pipe);
  std::remove(script.c_str());
  std::size_t at = output.find("Requests/sec:");
  if (status != 0 || at == std::string::npos) {
    fmt::print(stderr, "wrk failed:\n{}\n", output);
    return -1;
  }
  return std::strtod(output.c_str() + at + 13, nullptr);
}

struct Throughput {
  double changes_per_second = 0;
  double requests_per_second = 0;
  std::uint64_t failed = 0;
};

Throughput RunDriver(const std::string& url, bool batch, int seconds) {
  JsonObject config{{"url", url}, {"concurrency", 8}};
  if (batch) {
    config["batch"] = true;
    config["batchSize"] = 100;
  }
  auto options = s3db::replicator::ParseWebhookOptions(config);
  if (!options) {
    fmt::print(stderr, "{}\n", options.error().ToString());
    std::exit(1);
  }
  s3db::replicator::WebhookDriver driver(*options, {});
  std::uint64_t next = 0;
  std::uint64_t delivered = 0;
  Throughput result;
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
  result.changes_per_second = static_cast<double>(delivered) / elapsed;
  result.requests_per_second = static_cast<double>(driver.stats().requests) / elapsed;
  return result;
}

struct Latency {
  double achieved_writes_per_second = 0;
  std::size_t received = 0;
  std::size_t requests = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

double Percentile(std::vector<double>& values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
  return values[index];
}

Latency RunLatency(Sink& sink, const std::string& path, bool batch, int seconds) {
  Latency latency;
  sink.Reset();
  const std::string state_dir =
      "/tmp/s3db-webhook-bench-state-" + std::to_string(::getpid()) + (batch ? "-b" : "-u");
  s3db::DatabaseOptions database_options;
  database_options.state_dir = state_dir;
  auto database = s3db::Database::Connect(
      std::string("memory://webhook-bench-") + (batch ? "batched" : "unbatched"), database_options);
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

  s3db::replicator::RegisterWebhookDriver();
  s3db::ReplicatorPluginOptions options;
  s3db::replicator::ReplicatorConfig replicator;
  replicator.id = "bench";
  replicator.driver = "webhook";
  replicator.resources.Add("bench");
  replicator.config = {{"url", sink.Url(path)}};
  if (batch) replicator.config["batch"] = true;
  options.replicators.push_back(std::move(replicator));
  auto plugin = std::make_shared<s3db::ReplicatorPlugin>(std::move(options));
  if (auto used = (*database)->UsePlugin(plugin); !used) {
    fmt::print(stderr, "{}\n", used.error().ToString());
    std::exit(1);
  }

  const int writes = 1000 * seconds;
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
  if (auto idle = plugin->WaitIdle(std::chrono::seconds(60)); !idle) {
    fmt::print(stderr, "not idle: {}\n", idle.error().ToString());
  }

  auto requests = sink.Requests();
  std::vector<double> values;
  if (requests && requests->is_array()) {
    for (const Json& request : requests->get_array()) {
      if (request.at("path").get_string() != sink.Path(path)) continue;
      ++latency.requests;
      auto received = s3db::formats::ParseIso8601Micros(request.at("time").get_string());
      auto body = s3db::ParseJsonObject(request.at("body").get_string());
      if (!received || !body) continue;
      std::vector<const JsonObject*> entries;
      if (batch) {
        for (const Json& entry : body->at("batch").get_array())
          entries.push_back(&entry.get_object());
      } else {
        entries.push_back(&*body);
      }
      for (const JsonObject* entry : entries) {
        auto written = s3db::formats::ParseIso8601Micros(entry->at("timestamp").get_string());
        if (!written) continue;
        values.push_back(static_cast<double>(*received - *written) / 1000.0);
      }
    }
  }
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
  std::string base = Env("S3DB_BENCH_WEBHOOK_URL");
  if (base.empty()) base = Env("S3DB_TEST_WEBHOOK_URL");
  if (base.empty()) {
    fmt::print(stderr,
               "set S3DB_BENCH_WEBHOOK_URL (or S3DB_TEST_WEBHOOK_URL) to a webhook sink, e.g.\n"
               "  HOOK_PORT=18081 node scripts/peers/webhook-sink.mjs &\n"
               "  S3DB_BENCH_WEBHOOK_URL=http://127.0.0.1:18081 webhook_bench\n");
    return 2;
  }
  const int seconds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  Sink sink(base, "/bench-" + std::to_string(::getpid()));
  if (!sink.Reset()) {
    fmt::print(stderr, "the sink at {} does not answer POST /__reset\n", base);
    return 2;
  }
  const std::string body = s3db::ToJson(
      s3db::replicator::network::ChangePayload(MakeItem(1), "s3db-webhook-replicator"));
  fmt::print("webhook bench: receiver {}, {} s per phase, payload {} bytes\n", base, seconds,
             body.size());

  double wrk = RunWrk(sink.Url("/bench/wrk"), body, seconds);
  sink.Reset();
  Throughput unbatched = RunDriver(sink.Url("/bench/unbatched"), false, seconds);
  sink.Reset();
  Throughput batched = RunDriver(sink.Url("/bench/batched"), true, seconds);
  sink.Reset();
  Latency live = RunLatency(sink, "/bench/live", false, seconds);
  Latency live_batched = RunLatency(sink, "/bench/live-batched", true, seconds);
  sink.Reset();

  fmt::print("wrk (2 threads, 8 connections)  {:>10.0f} requests/s\n", wrk);
  fmt::print(
      "driver unbatched (8 in flight)  {:>10.0f} changes/s  ({:.0f} requests/s, {:.0f}% "
      "of wrk, {} failed)\n",
      unbatched.changes_per_second, unbatched.requests_per_second,
      wrk > 0 ? 100 * unbatched.requests_per_second / wrk : 0.0, unbatched.failed);
  fmt::print(
      "driver batched (100 a request)  {:>10.0f} changes/s  ({:.0f} requests/s, {} "
      "failed)\n",
      batched.changes_per_second, batched.requests_per_second, batched.failed);
  for (const auto& [name, latency] :
       {std::pair{"unbatched", live}, std::pair{"batched", live_batched}}) {
    fmt::print(
        "latency {:<9} at {:.0f} writes/s: {} received in {} requests, p50 {:.1f} ms, "
        "p99 {:.1f} ms, max {:.1f} ms\n",
        name, latency.achieved_writes_per_second, latency.received, latency.requests,
        latency.p50_ms, latency.p99_ms, latency.max_ms);
  }
  return 0;
}
