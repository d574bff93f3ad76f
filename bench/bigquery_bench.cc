// BigQuery driver throughput against the in-process FAKE BigQuery server
// (tests/fakes/bigquery_fake.h; no BigQuery server runs locally), and the cost of encoding.
//
//   bigquery_bench [--rows N] [--batch N] [--max-request-bytes N] [--max-rows-per-request N]
//                  [--method streaming|batch]
//
// Phases:
//   1. encode: building and serializing the insertAll row of a 1 KiB record (changelog
//      columns, insertId), per row, single thread, no I/O;
//   2. deliver: Deliver calls of --batch changes of 1 KiB records to the fake, with requests
//      split by --max-request-bytes (default 256 KiB, so every call is split into several
//      requests). The rate includes the fake's own work (JSON parsing, schema checks, dedup)
//      on the same machine, so it is a lower bound of the driver's ceiling, not BigQuery's.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "../tests/fakes/bigquery_fake.cc"  // the fake is test code; compiled into the bench
#include "drivers/bigquery/bigquery_driver.h"

namespace {

using Clock = std::chrono::steady_clock;
using s3db::Json;
using s3db::JsonObject;
using s3db::replicator::DeliveryItem;

// A record of about 1 KiB of JSON.
JsonObject MakeRecord(int i) {
  JsonObject record;
  record["id"] = fmt::format("rec-{:08d}", i);
  record["name"] = fmt::format("User {}", i);
  record["email"] = fmt::format("user{}@example.com", i);
  record["age"] = 20 + i % 60;
  record["score"] = 0.5 + i % 100;
  record["active"] = i % 2 == 0;
  record["createdAt"] = "2024-05-01T10:00:00.000Z";
  JsonObject address;
  address["street"] = "1 Long Street";
  address["city"] = "Lisbon";
  address["zip"] = "1000-001";
  record["address"] = std::move(address);
  s3db::JsonArray tags;
  for (const char* tag : {"alpha", "beta", "gamma"}) tags.emplace_back(tag);
  record["tags"] = std::move(tags);
  std::string notes;
  while (notes.size() < 720) notes += "lorem ipsum dolor sit amet ";
  record["notes"] = notes.substr(0, 720);
  return record;
}

DeliveryItem MakeItem(int i) {
  DeliveryItem item;
  item.source_resource = "users";
  item.target = "users";
  item.data = MakeRecord(i);
  item.id = std::string(item.data.at("id").get_string());
  item.revision = 1;
  item.change_id = "users:" + item.id + ":1";
  item.sequence = static_cast<std::uint64_t>(i) + 1;
  item.timestamp_ms = 1714557600000 + i;
  return item;
}

long Flag(int argc, char** argv, const std::string& name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::atol(argv[i + 1]);
  }
  return fallback;
}

std::string TextFlag(int argc, char** argv, const std::string& name, std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const long rows = Flag(argc, argv, "--rows", 20000);
  const long batch_size = Flag(argc, argv, "--batch", 1000);
  const long max_bytes = Flag(argc, argv, "--max-request-bytes", 256 * 1024);
  const long max_rows = Flag(argc, argv, "--max-rows-per-request", 10000);
  const std::string method = TextFlag(argc, argv, "--method", "streaming");

  // 1. Encoding.
  std::vector<s3db::replicator::bigquery::Field> schema;
  {
    const int samples = 20000;
    std::vector<DeliveryItem> items;
    items.reserve(samples);
    for (int i = 0; i < samples; ++i) items.push_back(MakeItem(i));
    auto fields = s3db::replicator::bigquery::FieldsForRecord(items[0].data, nullptr, {});
    schema = fields;
    std::size_t bytes = 0;
    auto start = Clock::now();
    for (const DeliveryItem& item : items) {
      JsonObject wrapper;
      wrapper["insertId"] = item.change_id;
      wrapper["json"] = s3db::replicator::BigqueryChangelogRow(
          item, schema, s3db::replicator::bigquery::Encoding::kStreaming);
      bytes += s3db::ToJson(wrapper).size();
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    fmt::print("encode: {:.2f} us/row ({:.0f} rows/s), {} bytes per insertAll row\n",
               seconds * 1e6 / samples, samples / seconds, bytes / samples);
  }

  // 2. Delivery to the fake.
  s3db::testing::FakeBigQuery fake;
  if (!fake.Start()) {
    fmt::print(stderr, "the fake BigQuery server did not start\n");
    return 1;
  }
  fake.CreateDataset("bench-project", "bench");
  JsonObject config;
  config["projectId"] = "bench-project";
  config["datasetId"] = "bench";
  config["endpoint"] = fake.endpoint();
  config["credentials"] = fake.ServiceAccountKey("bench-project");
  config["maxRequestBytes"] = max_bytes;
  config["maxRowsPerRequest"] = max_rows;
  config["insertMethod"] = method;
  config["jobPollIntervalMs"] = 5;
  auto options = s3db::replicator::ParseBigqueryOptions(config);
  if (!options) {
    fmt::print(stderr, "{}\n", options.error().ToString());
    return 1;
  }
  s3db::replicator::DriverContext context;
  context.replicator_id = "bench";
  s3db::replicator::BigqueryDriver driver(std::move(*options), context);
  if (auto started = driver.Start(); !started) {
    fmt::print(stderr, "{}\n", started.error().ToString());
    return 1;
  }
  // Creates the table outside the measurement.
  std::vector<DeliveryItem> warm = {MakeItem(-1)};
  driver.Deliver(warm, std::chrono::seconds(30));

  std::vector<DeliveryItem> all;
  all.reserve(static_cast<std::size_t>(rows));
  for (long i = 0; i < rows; ++i) all.push_back(MakeItem(static_cast<int>(i)));
  std::size_t before_requests = fake.requests().size();
  long delivered = 0;
  auto start = Clock::now();
  for (long offset = 0; offset < rows; offset += batch_size) {
    long end = std::min(rows, offset + batch_size);
    std::span<const DeliveryItem> batch(all.data() + offset,
                                        static_cast<std::size_t>(end - offset));
    for (const auto& result : driver.Deliver(batch, std::chrono::seconds(60))) {
      if (result.outcome == s3db::replicator::Outcome::kDelivered) {
        ++delivered;
      } else {
        fmt::print(stderr, "not delivered: {}\n", result.error);
        return 1;
      }
    }
  }
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  auto requests = fake.requests();
  std::size_t data_requests = 0;
  std::size_t largest = 0;
  std::size_t total_bytes = 0;
  for (std::size_t i = before_requests; i < requests.size(); ++i) {
    const auto& request = requests[i];
    if (request.path.find("/insertAll") == std::string::npos &&
        request.path.find("/upload/") == std::string::npos) {
      continue;
    }
    ++data_requests;
    largest = std::max(largest, request.body_bytes);
    total_bytes += request.body_bytes;
  }
  fmt::print(
      "deliver ({}): {} rows of ~1 KiB in {:.2f} s = {:.0f} rows/s ({:.1f} MB/s), "
      "batch {}, {} requests (limit {} bytes, largest {}, mean {})\n",
      method, delivered, seconds, delivered / seconds, total_bytes / seconds / 1e6, batch_size,
      data_requests, max_bytes, largest, data_requests ? total_bytes / data_requests : 0);
  auto stored = fake.Rows("bench-project", "bench", "users").size();
  if (stored != static_cast<std::size_t>(rows) + 1) {
    fmt::print(stderr, "the fake stored {} rows, expected {}\n", stored, rows + 1);
    return 1;
  }
  fmt::print("token fetches: {}, fake stored {} rows, duplicates {}\n", driver.token_fetches(),
             stored, fake.counters().duplicates_dropped);
  return 0;
}
