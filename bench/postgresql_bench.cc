// PostgreSQL driver throughput and latency, next to psql's \copy of the same rows.
//
//   postgresql_bench [CHANGES] [--pg URL] [--config JSON] [--latency-seconds S]
//
// CHANGES (default 100000) changes of about 1 KiB each are delivered to a fresh table in
// batches of 100 and of 1000, once per write mode (unnest, copy); then the same rows are loaded
// with psql's \copy into a table of the same shape. Then writes arrive at 1,000 per second for
// S seconds (default 5) and the time from the write to the commit (visible to every reader) is
// measured per change: p50 and p99, for the driver alone and for the whole path from
// Resource::Insert through the replicator engine to a row another connection sees. The server comes
// from --pg, S3DB_BENCH_PG or S3DB_TEST_PG.
// --config adds driver options (e.g. '{"tombstones":false}'). Needs psql on PATH. Everything it
// creates lives in a schema that it drops at the end.
#include <fmt/core.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "drivers/postgresql/postgresql_connection.h"
#include "drivers/postgresql/postgresql_driver.h"
#include "s3db/database.h"
#include "s3db/json.h"
#include "s3db/replicator/replicator_plugin.h"

namespace {

using s3db::Json;
using s3db::JsonArray;
using s3db::JsonObject;
using s3db::replicator::DeliveryItem;
using s3db::replicator::Outcome;
using s3db::replicator::PostgresqlDriver;
using Clock = std::chrono::steady_clock;

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// Runs one psql command; returns its output, or exits on failure.
std::string Psql(const std::string& url, const std::string& command) {
  std::string line = "psql " + ShellQuote(url) + " -X -q -t -A -v ON_ERROR_STOP=1 -c " +
                     ShellQuote(command) + " 2>&1";
  FILE* pipe = popen(line.c_str(), "r");
  if (pipe == nullptr) {
    fmt::print(stderr, "cannot run psql\n");
    std::exit(1);
  }
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (pclose(pipe) != 0) {
    fmt::print(stderr, "psql failed: {}\n{}\n", command, output);
    std::exit(1);
  }
  while (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

// Record number `n`: about 1 KiB of JSON with the usual kinds of fields.
JsonObject MakeRecord(std::size_t n) {
  static const std::string kWords =
      "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
      "ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation "
      "ullamco laboris nisi ut aliquip ex ea commodo consequat duis aute irure dolor in "
      "reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur excepteur "
      "sint occaecat cupidatat non proident sunt in culpa qui officia deserunt mollit anim id "
      "est laborum sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium "
      "doloremque laudantium totam rem aperiam eaque ipsa quae ab illo inventore veritatis et "
      "quasi architecto beatae vitae dicta sunt explicabo nemo enim ipsam voluptatem quia "
      "voluptas sit aspernatur aut odit aut fugit sed quia consequuntur magni dolores eos qui";
  std::size_t offset = n % 97;
  JsonObject record;
  record["name"] = fmt::format("Customer {:07}", n);
  record["email"] = fmt::format("customer{}@example.com", n);
  record["age"] = static_cast<std::int64_t>(18 + n % 70);
  record["score"] = static_cast<double>(n % 1000) / 7.0;
  record["active"] = n % 3 != 0;
  record["createdAt"] =
      fmt::format("2024-{:02}-{:02}T{:02}:{:02}:00.000Z", 1 + n % 12, 1 + n % 28, n % 24, n % 60);
  record["tags"] = JsonArray{"retail", n % 2 == 0 ? "vip" : "standard"};
  record["address"] = JsonObject{{"city", "Lisbon"}, {"zip", fmt::format("{:05}", n % 99999)}};
  record["notes"] = (kWords + kWords).substr(offset, 790);
  return record;
}

DeliveryItem MakeChange(std::size_t n, const std::string& table) {
  DeliveryItem item;
  item.id = fmt::format("id{:09}", n);
  item.revision = 1;
  item.change_id = "customers:" + item.id + ":1";
  item.sequence = n;
  item.source_resource = "customers";
  item.target = table;
  item.action = s3db::Action::kInsert;
  item.data = MakeRecord(n);
  return item;
}

JsonObject extra_config;  // --config: more driver options, e.g. {"tombstones":false}

std::unique_ptr<PostgresqlDriver> MakeDriver(const std::string& url, const std::string& schema,
                                             const std::string& mode) {
  JsonObject config{{"connectionString", url}, {"schema", schema}, {"writeMode", mode}};
  for (const auto& member : extra_config) config[member.key()] = member.value();
  auto options = s3db::replicator::ParsePostgresqlOptions(config);
  if (!options) {
    fmt::print(stderr, "{}\n", options.error().ToString());
    std::exit(1);
  }
  s3db::replicator::DriverContext context;
  context.replicator_id = "bench";
  auto driver = std::make_unique<PostgresqlDriver>(std::move(*options), context);
  if (auto started = driver->Start(); !started) {
    fmt::print(stderr, "{}\n", started.error().ToString());
    std::exit(1);
  }
  return driver;
}

void CheckDelivered(const std::vector<s3db::replicator::DeliveryResult>& results) {
  for (const auto& result : results) {
    if (result.outcome != Outcome::kDelivered) {
      fmt::print(stderr, "delivery failed: {} {}\n", result.reason, result.error);
      std::exit(1);
    }
  }
}

// Seconds spent in Deliver for `changes` changes in batches of `batch_size`.
struct Timing {
  double seconds = 0;      // wall clock spent in Deliver
  double cpu_seconds = 0;  // this process's CPU time spent in Deliver
};

// Time spent in Deliver for `changes` changes in batches of `batch_size`.
Timing TimeDriver(PostgresqlDriver& driver, const std::string& table, std::size_t changes,
                  std::size_t batch_size) {
  Timing timing;
  std::vector<DeliveryItem> batch;
  for (std::size_t start = 0; start < changes; start += batch_size) {
    batch.clear();
    for (std::size_t n = start; n < std::min(changes, start + batch_size); ++n) {
      batch.push_back(MakeChange(n, table));
    }
    auto began = Clock::now();
    std::clock_t cpu_began = std::clock();
    auto results = driver.Deliver(batch, std::chrono::seconds(120));
    timing.cpu_seconds += static_cast<double>(std::clock() - cpu_began) / CLOCKS_PER_SEC;
    timing.seconds += std::chrono::duration<double>(Clock::now() - began).count();
    CheckDelivered(results);
  }
  return timing;
}

std::string CsvField(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string TextOf(const Json& value) {
  if (value.is_string()) return std::string(value.get_string());
  if (value.is_bool()) return value.get_bool() ? "true" : "false";
  return boost::json::serialize(value);
}

// Writes the rows as CSV in the driver table's column layout; returns the column list.
std::string WriteCsv(const std::string& path, std::size_t changes) {
  std::ofstream out(path, std::ios::binary);
  std::string columns = "id,_s3db_rev";
  for (const auto& member : MakeRecord(0)) {
    columns += ",\"" + std::string(member.key()) + "\"";
  }
  std::string line;
  for (std::size_t n = 0; n < changes; ++n) {
    line = CsvField(fmt::format("id{:09}", n)) + ",1";
    for (const auto& member : MakeRecord(n)) line += "," + CsvField(TextOf(member.value()));
    line += '\n';
    out << line;
  }
  return columns;
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1));
  return values[index];
}

// Writes arrive at `rate` per second; the delivery loop sends whatever has arrived (up to 1000)
// as one batch. Returns the write-to-commit latency of each change in milliseconds.
std::vector<double> MeasureLatency(PostgresqlDriver& driver, const std::string& table, int rate,
                                   double seconds) {
  struct Pending {
    DeliveryItem item;
    Clock::time_point written;
  };
  std::mutex mutex;  // guards queue and producing
  std::deque<Pending> queue;
  bool producing = true;
  std::size_t total = static_cast<std::size_t>(rate * seconds);

  std::thread producer([&] {
    auto start = Clock::now();
    for (std::size_t n = 0; n < total; ++n) {
      auto due = start + std::chrono::microseconds(static_cast<std::int64_t>(n * 1e6 / rate));
      std::this_thread::sleep_until(due);
      DeliveryItem item = MakeChange(10'000'000 + n, table);
      std::lock_guard lock(mutex);
      queue.push_back(Pending{std::move(item), Clock::now()});
    }
    std::lock_guard lock(mutex);
    producing = false;
  });

  std::vector<double> latencies;
  std::vector<DeliveryItem> batch;
  std::vector<Clock::time_point> written;
  while (true) {
    batch.clear();
    written.clear();
    bool done = false;
    {
      std::lock_guard lock(mutex);
      while (!queue.empty() && batch.size() < 1000) {
        batch.push_back(std::move(queue.front().item));
        written.push_back(queue.front().written);
        queue.pop_front();
      }
      done = !producing && queue.empty();
    }
    if (batch.empty()) {
      if (done) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    CheckDelivered(driver.Deliver(batch, std::chrono::seconds(30)));
    auto visible = Clock::now();
    for (auto at : written) {
      latencies.push_back(std::chrono::duration<double, std::milli>(visible - at).count());
    }
  }
  producer.join();
  return latencies;
}

// The whole path: Resource::Insert at `rate` per second into an in-memory s3db database, the
// replicator engine (change log, dispatcher, batching) and the driver, until another
// connection sees the row. Returns the latency of each write in milliseconds.
std::vector<double> MeasureEndToEnd(const std::string& url, const std::string& schema, int rate,
                                    double seconds) {
  namespace pg = s3db::replicator::postgresql;
  std::string folder = fmt::format("/tmp/s3db-pg-bench-{}", schema);
  s3db::DatabaseOptions options;
  options.state_dir = folder + "/state";
  auto database = s3db::Database::Open(s3db::NewMemoryStore(), options);
  if (!database) {
    fmt::print(stderr, "{}\n", database.error().ToString());
    std::exit(1);
  }
  s3db::ResourceDefinition definition;
  definition.name = "events";
  definition.attributes = JsonObject{{"n", "integer"}, {"payload", "string"}};
  auto resource = (*database)->CreateResource(definition);
  if (!resource) {
    fmt::print(stderr, "{}\n", resource.error().ToString());
    std::exit(1);
  }

  s3db::replicator::ReplicatorPluginOptions plugin_options;
  s3db::replicator::ReplicatorConfig replicator;
  replicator.id = "pg";
  replicator.driver = "postgresql";
  replicator.resources.Add("events", "end_to_end");
  replicator.config = JsonObject{{"connectionString", url}, {"schema", schema}};
  replicator.factory = [](const JsonObject& config, const s3db::replicator::DriverContext& context)
      -> s3db::Result<std::unique_ptr<s3db::replicator::Driver>> {
    S3DB_ASSIGN_OR_RETURN(auto parsed, s3db::replicator::ParsePostgresqlOptions(config));
    return std::unique_ptr<s3db::replicator::Driver>(
        std::make_unique<PostgresqlDriver>(std::move(parsed), context));
  };
  plugin_options.replicators.push_back(std::move(replicator));
  auto plugin = std::make_shared<s3db::replicator::ReplicatorPlugin>(plugin_options);
  if (auto used = (*database)->UsePlugin(plugin); !used) {
    fmt::print(stderr, "{}\n", used.error().ToString());
    std::exit(1);
  }

  std::size_t total = static_cast<std::size_t>(rate * seconds);
  std::vector<Clock::time_point> written(total);
  std::vector<Clock::time_point> visible(total);
  std::thread writer([&] {
    auto start = Clock::now();
    std::string payload(900, 'x');
    for (std::size_t n = 0; n < total; ++n) {
      std::this_thread::sleep_until(
          start + std::chrono::microseconds(static_cast<std::int64_t>(n * 1e6 / rate)));
      written[n] = Clock::now();
      auto inserted = (*resource)->Insert(JsonObject{{"id", fmt::format("e{:07}", n)},
                                                     {"n", static_cast<std::int64_t>(n)},
                                                     {"payload", payload}});
      if (!inserted) {
        fmt::print(stderr, "insert failed: {}\n", inserted.error().ToString());
        std::exit(1);
      }
    }
  });

  // Batches commit in change-log order, so max(n) tells which writes are visible.
  auto connection = pg::Connection::Open(url, {}, Clock::now() + std::chrono::seconds(10));
  if (!connection) {
    fmt::print(stderr, "poller: {}\n", connection.error().message);
    std::exit(1);
  }
  pg::Statement poll("SELECT coalesce(max(n), -1) FROM " + pg::QualifiedName(schema, "end_to_end"));
  std::int64_t seen = -1;
  auto give_up = Clock::now() + std::chrono::duration<double>(seconds + 60);
  while (seen + 1 < static_cast<std::int64_t>(total) && Clock::now() < give_up) {
    auto result = (*connection)->Execute(poll, Clock::now() + std::chrono::seconds(5));
    auto now = Clock::now();
    if (result && result->rows() == 1) {
      std::int64_t max = std::stoll(std::string(result->Get(0, 0)));
      for (std::int64_t n = seen + 1; n <= max; ++n) visible[n] = now;
      seen = std::max(seen, max);
    } else if (!(*connection)->usable()) {
      fmt::print(stderr, "the poller lost its connection\n");
      std::exit(1);
    }  // else the table does not exist yet
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  writer.join();
  (void)(*database)->Close();
  std::filesystem::remove_all(folder);

  if (seen + 1 != static_cast<std::int64_t>(total)) {
    fmt::print(stderr, "only {} of {} writes became visible\n", seen + 1, total);
    std::exit(1);
  }
  std::vector<double> latencies;
  for (std::size_t n = 0; n < total; ++n) {
    latencies.push_back(std::chrono::duration<double, std::milli>(visible[n] - written[n]).count());
  }
  return latencies;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t changes = 100'000;
  double latency_seconds = 5;
  std::string url;
  if (const char* value = std::getenv("S3DB_BENCH_PG")) url = value;
  if (url.empty()) {
    if (const char* value = std::getenv("S3DB_TEST_PG")) url = value;
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--pg" && i + 1 < argc) {
      url = argv[++i];
    } else if (arg == "--config" && i + 1 < argc) {
      auto parsed = s3db::ParseJsonObject(argv[++i]);
      if (!parsed) {
        fmt::print(stderr, "--config: {}\n", parsed.error().ToString());
        return 2;
      }
      extra_config = std::move(*parsed);
    } else if (arg == "--latency-seconds" && i + 1 < argc) {
      latency_seconds = std::stod(argv[++i]);
    } else if (!arg.empty() && arg[0] != '-') {
      changes = std::stoul(arg);
    } else {
      fmt::print(stderr, "usage: {} [CHANGES] [--pg URL] [--config JSON] [--latency-seconds S]\n",
                 argv[0]);
      return 2;
    }
  }
  if (url.empty()) {
    fmt::print(stderr, "set --pg, S3DB_BENCH_PG or S3DB_TEST_PG to a PostgreSQL URL\n");
    return 2;
  }

  std::string schema = fmt::format("bench_{}", std::random_device{}() % 1000000);
  Psql(url, "CREATE SCHEMA " + schema);
  std::size_t bytes = boost::json::serialize(MakeRecord(1)).size();
  fmt::print("PostgreSQL driver benchmark: {} changes of {} bytes of JSON each\n", changes, bytes);
  fmt::print("server: {}\n\n", Psql(url, "SELECT version()"));

  struct Row {
    std::string mode;
    std::size_t batch;
    Timing timing;
  };
  std::vector<Row> rows;
  for (const std::string mode : {"unnest", "copy"}) {
    for (std::size_t batch_size : {100, 1000}) {
      std::string table = fmt::format("{}_{}", mode, batch_size);
      auto driver = MakeDriver(url, schema, mode);
      Timing timing = TimeDriver(*driver, table, changes, batch_size);
      std::string count = Psql(url, "SELECT count(*) FROM " + schema + "." + table);
      if (count != std::to_string(changes)) {
        fmt::print(stderr, "{} rows in {}, expected {}\n", count, table, changes);
        return 1;
      }
      rows.push_back(Row{mode, batch_size, timing});
    }
  }

  // psql \copy of the same rows into a table of the same shape.
  std::string csv = fmt::format("/tmp/s3db-pg-bench-{}.csv", schema);
  std::string columns = WriteCsv(csv, changes);
  Psql(url, "CREATE TABLE " + schema + ".copied (LIKE " + schema + ".unnest_1000 INCLUDING ALL)");
  auto began = Clock::now();
  Psql(url, "\\copy " + schema + ".copied (" + columns + ") FROM '" + csv + "' WITH (FORMAT csv)");
  double copy_seconds = std::chrono::duration<double>(Clock::now() - began).count();
  std::remove(csv.c_str());
  double copy_rate = static_cast<double>(changes) / copy_seconds;

  fmt::print("{:<8} {:>6} {:>10} {:>12} {:>10} {:>12}\n", "mode", "batch", "seconds", "rows/s",
             "vs \\copy", "client us/row");
  for (const Row& row : rows) {
    double rate = static_cast<double>(changes) / row.timing.seconds;
    fmt::print("{:<8} {:>6} {:>10.2f} {:>12.0f} {:>9.0f}% {:>12.1f}\n", row.mode, row.batch,
               row.timing.seconds, rate, 100.0 * rate / copy_rate,
               1e6 * row.timing.cpu_seconds / static_cast<double>(changes));
  }
  fmt::print("{:<8} {:>6} {:>10.2f} {:>12.0f} {:>9.0f}%\n", "\\copy", "-", copy_seconds, copy_rate,
             100.0);

  auto driver = MakeDriver(url, schema, "unnest");
  std::vector<double> latencies = MeasureLatency(*driver, "latency", 1000, latency_seconds);
  fmt::print(
      "\nwrite -> visible at 1000 writes/s for {:.0f} s ({} changes): p50 {:.2f} ms, "
      "p99 {:.2f} ms, max {:.2f} ms\n",
      latency_seconds, latencies.size(), Percentile(latencies, 0.5), Percentile(latencies, 0.99),
      Percentile(latencies, 1.0));
  fmt::print("(driver only: from the change entering the queue to its commit returning)\n");

  std::vector<double> end_to_end = MeasureEndToEnd(url, schema, 1000, latency_seconds);
  fmt::print(
      "Resource::Insert -> row visible in PostgreSQL (engine + driver), 1000 writes/s: "
      "p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n",
      Percentile(end_to_end, 0.5), Percentile(end_to_end, 0.99), Percentile(end_to_end, 1.0));

  driver.reset();
  Psql(url, "DROP SCHEMA " + schema + " CASCADE");
  return 0;
}
