// Our side of bench/compare (the side-by-side run against s3db.js): one phase, one target, one
// writer mode, in one process, reading the same records file and writing the same JSON fields
// as bench/compare/js-side.mjs, so bench/compare/run.sh can put both in one table.
//
//   compare_bench --phase plain|replicate --target s3db-memory|s3db-file|webhook|postgresql
//                 --mode 1w|16w|paced --records FILE --n N --work DIR --out FILE.json
//                 [--webhook URL] [--webhook-batch 0|1] [--pg URL] [--pg-schema S]
//                 [--rate 1000] [--timeout-s 600] [--file-fsync 0|1]
//
// plain: N inserts into a database of the target's source storage with no plugin. replicate:
// the same writes with the ReplicatorPlugin (default options) and one replicator to the
// target, then waits until every record is at the target. Write -> visible runs from the
// moment an insert is issued to the receiver's arrival time (webhook) or to the plugin's
// `replicated` event, which fires once the driver's delivery returned (s3db: record stored;
// PostgreSQL: transaction committed). Times are wall-clock milliseconds, like the receiver's.
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/http_client.h"
#include "s3db/database.h"
#include "s3db/json.h"
#include "s3db/replicator/replicator_plugin.h"

namespace {

using s3db::Json;
using s3db::JsonObject;

struct Options {
  std::string phase = "replicate";
  std::string target = "s3db-memory";
  std::string mode = "1w";
  std::string records;
  std::size_t n = 20000;
  std::string work;
  std::string out;
  std::string webhook;
  bool webhook_batch = false;
  std::string pg;
  std::string pg_schema = "public";
  double rate = 1000;
  double timeout_s = 600;
  bool file_fsync = true;  // our file store's default: fsync every object and its folder
};

[[noreturn]] void Fail(const std::string& message) {
  fmt::print(stderr, "compare_bench: {}\n", message);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  std::map<std::string, std::string*> strings{
      {"--phase", &options.phase},     {"--target", &options.target},
      {"--mode", &options.mode},       {"--records", &options.records},
      {"--work", &options.work},       {"--out", &options.out},
      {"--webhook", &options.webhook}, {"--pg", &options.pg},
      {"--pg-schema", &options.pg_schema}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) Fail(arg + " needs a value (options are --name value)");
    std::string value = argv[++i];
    if (auto found = strings.find(arg); found != strings.end()) {
      *found->second = value;
      continue;
    }
    char* end = nullptr;
    double number = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0' || !std::isfinite(number) || number < 0) {
      Fail(arg + " must be a non-negative number, got '" + value + "'");
    }
    if (arg == "--n") {
      options.n = static_cast<std::size_t>(number);
    } else if (arg == "--rate") {
      options.rate = number;
    } else if (arg == "--timeout-s") {
      options.timeout_s = number;
    } else if (arg == "--file-fsync") {
      options.file_fsync = number != 0;
    } else if (arg == "--webhook-batch") {
      options.webhook_batch = number != 0;
    } else {
      Fail("unknown option " + arg + " (see the comment at the top of bench/compare_bench.cc)");
    }
  }
  for (const auto& [name, value] : {std::pair{"--records", &options.records},
                                    std::pair{"--work", &options.work},
                                    std::pair{"--out", &options.out}}) {
    if (value->empty()) Fail(std::string(name) + " is required");
  }
  if (options.phase != "plain" && options.phase != "replicate") {
    Fail("--phase must be plain or replicate, got '" + options.phase + "'");
  }
  if (options.mode != "1w" && options.mode != "16w" && options.mode != "paced") {
    Fail("--mode must be 1w, 16w or paced, got '" + options.mode + "'");
  }
  if (options.rate <= 0) Fail("--rate must be above 0");
  return options;
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A line of /proc/self/status in MiB: VmHWM (peak RSS) or VmRSS (now).
double StatusMb(std::string_view field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
      return std::stod(line.substr(field.size() + 1)) / 1024.0;
    }
  }
  return -1;
}

double PeakRssMb() { return StatusMb("VmHWM"); }

std::vector<JsonObject> ReadRecords(const std::string& path, std::size_t count) {
  std::ifstream in(path);
  if (!in) Fail("cannot read the records file " + path + " (make it with workload.mjs)");
  std::vector<JsonObject> records;
  records.reserve(count);
  std::string line;
  while (records.size() < count && std::getline(in, line)) {
    if (line.empty()) continue;
    auto parsed = s3db::ParseJsonObject(line);
    if (!parsed) Fail(path + ": record " + std::to_string(records.size() + 1) + ": " +
                      parsed.error().ToString());
    records.push_back(std::move(*parsed));
  }
  if (records.size() < count) {
    Fail(fmt::format("{} has {} records, fewer than the {} asked for: regenerate it", path,
                     records.size(), count));
  }
  return records;
}

JsonObject Attributes() {
  auto parsed = s3db::ParseJsonObject(R"({
    "name": "string", "email": "string", "age": "number", "phone": "string",
    "company": "string", "score": "number", "active": "boolean", "createdAt": "string",
    "address": {"street": "string", "city": "string", "zip": "string", "country": "string",
                "region": "string"},
    "tags": "array|items:string", "bio": "string"})");
  return *parsed;
}

std::unique_ptr<s3db::Database> OpenDatabase(const Options& options, const std::string& role,
                                             bool file) {
  std::string tag = fmt::format("cpp-{}-{}-{}-{}", options.phase, options.target, options.mode,
                                ::getpid());
  s3db::DatabaseOptions database_options;
  database_options.state_dir = options.work + "/" + tag + "-state";
  std::string url = file ? "file://" + options.work + "/" + tag + "-" + role +
                               (options.file_fsync ? "" : "?fsync=off")
                         : "memory://" + tag + "-" + role;
  auto database = s3db::Database::Connect(url, database_options);
  if (!database) Fail("open " + url + ": " + database.error().ToString());
  return std::move(*database);
}

s3db::Resource* CreateCustomers(s3db::Database& database) {
  s3db::ResourceDefinition definition;
  definition.name = "customers";
  definition.attributes = Attributes();
  auto resource = database.CreateResource(definition);
  if (!resource) Fail("create resource customers: " + resource.error().ToString());
  return *resource;
}

struct Written {
  double started_ms = 0;
  double seconds = 0;
  std::size_t failures = 0;
  std::string first_error;
};

// Writes every record: `writers` threads as fast as they can, or one thread issuing the i-th
// insert at started + i / rate (paced). `issued[i]` is when insert i was issued.
Written WriteAll(const Options& options, s3db::Resource& resource,
                 const std::vector<JsonObject>& records, std::vector<double>& issued) {
  Written written;
  std::mutex mutex;
  auto insert = [&](std::size_t index) {
    issued[index] = NowMs();
    auto inserted = resource.Insert(records[index]);
    if (!inserted) {
      std::lock_guard lock(mutex);
      if (written.failures++ == 0) written.first_error = inserted.error().ToString();
    }
  };
  written.started_ms = NowMs();
  auto started = std::chrono::steady_clock::now();
  if (options.mode == "paced") {
    for (std::size_t i = 0; i < records.size(); ++i) {
      std::this_thread::sleep_until(
          started + std::chrono::microseconds(static_cast<std::int64_t>(i * 1e6 / options.rate)));
      insert(i);
    }
  } else {
    int writers = options.mode == "16w" ? 16 : 1;
    std::atomic<std::size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < writers; ++t) {
      threads.emplace_back([&] {
        for (std::size_t i = next++; i < records.size(); i = next++) insert(i);
      });
    }
    for (auto& thread : threads) thread.join();
  }
  written.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return written;
}

JsonObject LatencySummary(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  auto at = [&](double fraction) -> Json {
    if (values.empty()) return nullptr;
    auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(values.size())));
    return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  return JsonObject{{"count", values.size()}, {"p50", at(0.5)},  {"p95", at(0.95)},
                    {"p99", at(0.99)},        {"max", at(1.0)}};
}

s3db::Result<Json> GetJson(s3db::net::HttpClient& client, const std::string& url) {
  auto response = client.Send({.url = url});
  if (!response) return tl::unexpected(response.error());
  if (response->status != 200) {
    return s3db::MakeError(s3db::ErrorCode::kUnavailable,
                           fmt::format("GET {}: HTTP {}", url, response->status));
  }
  return s3db::ParseJson(response->body);
}

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  std::filesystem::create_directories(options.work);
  std::vector<JsonObject> records = ReadRecords(options.records, options.n);
  // The harness's own share of the peak: the parsed records (both phases hold them throughout).
  const double records_rss_mb = StatusMb("VmRSS");
  const bool file = options.target == "s3db-file";
  const int writers = options.mode == "16w" ? 16 : 1;
  JsonObject result{{"system", "s3db (C++)"}, {"phase", options.phase},
                    {"target", options.target}, {"mode", options.mode},
                    {"n", options.n},           {"writers", writers}};
  std::vector<double> issued(records.size());

  if (options.phase == "plain") {
    auto database = OpenDatabase(options, "plain", file);
    s3db::Resource* resource = CreateCustomers(*database);
    Written written = WriteAll(options, *resource, records, issued);
    result["writeSeconds"] = written.seconds;
    result["writesPerSecond"] = static_cast<double>(records.size()) / written.seconds;
    result["writeFailures"] = written.failures;
    result["firstError"] = written.first_error;
    result["peakRssMb"] = PeakRssMb();
    result["rssWithRecordsMb"] = records_rss_mb;
    (void)database->Close();
  } else {
    s3db::replicator::RegisterBuiltinDrivers();
    auto source = OpenDatabase(options, "source", file);
    s3db::Resource* resource = CreateCustomers(*source);
    std::unique_ptr<s3db::Database> target;
    s3db::replicator::ReplicatorConfig replicator;
    replicator.id = "compare";
    if (options.target == "s3db-memory" || options.target == "s3db-file") {
      target = OpenDatabase(options, "target", file);
      CreateCustomers(*target);
      replicator.driver = "s3db";
      replicator.resources.Add("customers");
      replicator.target_database = target.get();
    } else if (options.target == "webhook") {
      if (options.webhook.empty()) Fail("--webhook URL is required for the webhook target");
      replicator.driver = "webhook";
      replicator.resources.Add("customers");
      replicator.config = JsonObject{{"url", options.webhook}};
      if (options.webhook_batch) replicator.config["batch"] = true;
    } else if (options.target == "postgresql") {
      if (options.pg.empty()) Fail("--pg URL is required for the postgresql target");
      replicator.driver = "postgresql";
      replicator.resources.Add("customers", "cpp_customers");
      replicator.config =
          JsonObject{{"connectionString", options.pg}, {"schema", options.pg_schema}};
    } else {
      Fail("unknown --target '" + options.target +
           "' (s3db-memory, s3db-file, webhook, postgresql)");
    }
    s3db::ReplicatorPluginOptions plugin_options;
    plugin_options.replicators.push_back(std::move(replicator));
    auto plugin = std::make_shared<s3db::ReplicatorPlugin>(std::move(plugin_options));

    std::mutex mutex;  // guards arrivals, duplicates, errors
    std::unordered_map<std::string, double> arrivals;
    std::size_t duplicates = 0;
    std::size_t replicator_errors = 0;
    std::string first_replicator_error;
    const bool by_event = options.target != "webhook";
    plugin->On("replicated", [&](const Json& event) {
      if (!by_event) return;
      double at = NowMs();
      std::string id(event.at("recordId").as_string());
      std::lock_guard lock(mutex);
      if (!arrivals.emplace(std::move(id), at).second) ++duplicates;
    });
    plugin->On("replicator_error", [&](const Json& event) {
      std::lock_guard lock(mutex);
      if (replicator_errors++ == 0) first_replicator_error = s3db::ToJson(event);
    });
    if (auto used = source->UsePlugin(plugin); !used) Fail("UsePlugin: " + used.error().ToString());

    Written written = WriteAll(options, *resource, records, issued);
    double writes_done = NowMs();

    auto client = s3db::net::NewHttpClient();
    // The receiver's control endpoints live at the root of the webhook URL's origin.
    std::string base = options.webhook;
    if (auto scheme = base.find("://"); scheme != std::string::npos) {
      if (auto path = base.find('/', scheme + 3); path != std::string::npos) base.resize(path);
    }
    Json receiver = nullptr;
    auto visible_count = [&]() -> std::size_t {
      if (by_event) {
        std::lock_guard lock(mutex);
        return arrivals.size();
      }
      auto summary = GetJson(*client, base + "/__summary");
      if (!summary) Fail("receiver: " + summary.error().ToString());
      receiver = *summary;
      return static_cast<std::size_t>(receiver.at("unique").to_number<double>());
    };
    double deadline = writes_done + options.timeout_s * 1000;
    double last_progress = NowMs();
    std::size_t last_count = 0;
    while (NowMs() < deadline && NowMs() - last_progress < 30000) {
      std::size_t count = visible_count();
      if (count >= records.size()) break;
      if (count != last_count) {
        last_count = count;
        last_progress = NowMs();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    double poll_done = NowMs();
    if (!by_event) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      visible_count();
      duplicates = static_cast<std::size_t>(receiver.at("duplicates").to_number<double>());
      auto times = GetJson(*client, base + "/__arrivals");
      if (!times) Fail("receiver: " + times.error().ToString());
      std::lock_guard lock(mutex);
      for (const auto& member : times->as_object()) {
        arrivals[std::string(member.key())] = member.value().to_number<double>();
      }
    }
    std::vector<double> latencies;
    double last_visible = written.started_ms;
    {
      std::lock_guard lock(mutex);
      for (std::size_t i = 0; i < records.size(); ++i) {
        auto found = arrivals.find(std::string(records[i].at("id").as_string()));
        if (found == arrivals.end()) continue;
        latencies.push_back(found->second - issued[i]);
        last_visible = std::max(last_visible, found->second);
      }
    }
    Json at_target = nullptr;
    if (target) {
      auto count = (*target->GetResource("customers"))->Count();
      if (count) at_target = *count;
    }
    double all_visible_seconds = (last_visible - written.started_ms) / 1000;
    std::size_t visible = latencies.size();
    result["writeSeconds"] = written.seconds;
    result["writesPerSecond"] = static_cast<double>(records.size()) / written.seconds;
    result["writeFailures"] = written.failures;
    result["firstError"] = written.first_error;
    result["allVisibleSeconds"] =
        visible == records.size() ? Json(all_visible_seconds) : Json(nullptr);
    result["replicationPerSecond"] = static_cast<double>(visible) / all_visible_seconds;
    result["visible"] = visible;
    result["missing"] = records.size() - visible;
    result["duplicates"] = duplicates;
    result["atTarget"] = at_target;
    result["receiver"] = receiver;
    result["replicatorErrors"] = replicator_errors;
    result["firstReplicatorError"] = first_replicator_error;
    result["waitedSeconds"] = (poll_done - writes_done) / 1000;
    result["webhookBatch"] = options.webhook_batch;
    result["fileFsync"] = options.file_fsync;
    result["peakRssMb"] = PeakRssMb();
    result["rssWithRecordsMb"] = records_rss_mb;
    std::string latency_path = options.out;
    if (latency_path.size() > 5 && latency_path.ends_with(".json")) {
      latency_path.resize(latency_path.size() - 5);
    }
    std::ofstream latency_file(latency_path + ".latencies");
    for (double value : latencies) latency_file << fmt::format("{:.3f}\n", value);
    result["latencyMs"] = LatencySummary(std::move(latencies));
    (void)source->Close();
  }
  std::ofstream(options.out) << s3db::ToJson(result) << "\n";
  fmt::print("{}\n", s3db::ToJson(result));
  std::fflush(stdout);
  // The databases (and their stores) are torn down by the OS: a memory target holding N
  // records takes a while to free and is not part of the measurement.
  std::_Exit(0);
}
