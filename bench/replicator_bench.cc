// Replication engine benchmarks.
//
//   replicator_bench appends    [N]   change-log appends/s, 1 and 16 threads, per fsync policy
//   replicator_bench latency    [N]   write -> delivered p50/p99 at 1,000 writes/s (s3db driver,
//                                     memory and file stores); N writes (default 5,000)
//   replicator_bench throughput [N]   max write -> delivered throughput, N records of 1 KiB
//                                     (default 100,000) from 16 writer threads
//   replicator_bench backlog    [N]   peak RSS with an N-change backlog (default 1,000,000)
//                                     while the target is down, then the drain time
//   replicator_bench all              every benchmark with its default N
// Options: --fsync (file stores fsync every object; off by default), --record-bytes B.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "replicator/change_log.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/storage.h"

namespace {

using namespace s3db;
using namespace s3db::replicator;
using Clock = std::chrono::steady_clock;

bool g_file_fsync = false;
std::size_t g_record_bytes = 1024;

std::string TempFolder(const std::string& name) {
  std::random_device random;
  auto path = std::filesystem::temp_directory_path() /
              ("s3db-bench-" + name + "-" + std::to_string(random()));
  std::filesystem::create_directories(path);
  return path.string();
}

JsonObject Payload(std::size_t index, std::size_t bytes) {
  JsonObject record;
  record["id"] = "r" + std::to_string(index);
  record["n"] = index;
  std::string filler(bytes > 60 ? bytes - 60 : 1, 'x');
  record["payload"] = filler;
  return record;
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  std::size_t index = static_cast<std::size_t>(fraction * (values.size() - 1));
  return values[index];
}

long PeakRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

long CurrentRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// ---- change log appends ---------------------------------------------------------------------

void BenchAppends(std::size_t total) {
  fmt::print("change log appends ({} B records, {} appends per run)\n", g_record_bytes, total);
  for (const char* policy : {"batch", "always", "off"}) {
    for (int threads : {1, 16}) {
      std::string folder = TempFolder("log");
      SqliteChangeLogOptions options;
      options.path = folder + "/changes.db";
      options.fsync = *ParseFsyncPolicy(policy);
      auto log = OpenSqliteChangeLog(options);
      if (!log) {
        fmt::print("  cannot open the log: {}\n", log.error().ToString());
        return;
      }
      std::size_t count = std::string(policy) == "always" ? std::min<std::size_t>(total, 2000)
                                                          : total;
      std::size_t per_thread = count / static_cast<std::size_t>(threads);
      auto started = Clock::now();
      std::vector<std::thread> workers;
      std::atomic<std::size_t> failures{0};
      for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
          for (std::size_t i = 0; i < per_thread; ++i) {
            Change change;
            change.resource = "items";
            change.id = "t" + std::to_string(t) + "-" + std::to_string(i);
            change.revision = 1;
            change.action = Action::kInsert;
            change.after = Payload(i, g_record_bytes);
            change.timestamp_ms = 1;
            if (!(*log)->Append(change)) ++failures;
          }
        });
      }
      for (auto& worker : workers) worker.join();
      double elapsed = Seconds(Clock::now() - started);
      fmt::print("  fsync={:<6} threads={:<2} {:>9.0f} appends/s ({} appends in {:.2f} s, {} "
                 "failed)\n",
                 policy, threads, static_cast<double>(per_thread * threads) / elapsed,
                 per_thread * threads, elapsed, failures.load());
      (void)(*log)->Close();
      std::filesystem::remove_all(folder);
    }
  }
}

// ---- s3db driver set-up -------------------------------------------------------------------------

struct Setup {
  std::string folder;
  std::unique_ptr<Database> source;
  std::unique_ptr<Database> target;
  std::shared_ptr<ReplicatorPlugin> plugin;
  Resource* items = nullptr;
};

Setup MakeSetup(const std::string& store_kind, int batch_size = 100) {
  Setup setup;
  setup.folder = TempFolder(store_kind);
  DatabaseOptions options;
  options.state_dir = setup.folder + "/state";
  options.store.fsync = g_file_fsync;
  if (store_kind == "memory") {
    setup.source = std::move(*Database::Open(NewMemoryStore(), options));
    setup.target = std::move(*Database::Open(NewMemoryStore(), options));
  } else {
    setup.source = std::move(*Database::Connect("file://" + setup.folder + "/source", options));
    setup.target = std::move(*Database::Connect("file://" + setup.folder + "/target", options));
  }
  ResourceDefinition definition;
  definition.name = "items";
  setup.items = *setup.source->CreateResource(definition);

  ReplicatorPluginOptions plugin_options;
  plugin_options.batch_size = batch_size;
  ReplicatorConfig replicator;
  replicator.id = "backup";
  replicator.driver = "s3db";
  replicator.resources.Add("items");
  replicator.target_database = setup.target.get();
  plugin_options.replicators.push_back(replicator);
  setup.plugin = std::make_shared<ReplicatorPlugin>(plugin_options);
  auto used = setup.source->UsePlugin(setup.plugin);
  if (!used) fmt::print("  UsePlugin failed: {}\n", used.error().ToString());
  return setup;
}

void TearDown(Setup& setup) {
  (void)setup.source->Close();
  setup.plugin.reset();
  setup.source.reset();
  setup.target.reset();
  std::filesystem::remove_all(setup.folder);
}

// ---- latency at a fixed rate --------------------------------------------------------------------

void BenchLatency(std::size_t writes) {
  fmt::print("write -> delivered latency at 1,000 writes/s ({} writes of {} B, s3db driver)\n",
             writes, g_record_bytes);
  for (const char* kind : {"memory", "file"}) {
    Setup setup = MakeSetup(kind);
    std::vector<Clock::time_point> written(writes);
    std::vector<double> latencies;
    std::mutex mutex;
    setup.plugin->On("replicated", [&](const Json& event) {
      auto now = Clock::now();
      std::string id(event.at("recordId").as_string());
      std::size_t index = std::stoul(id.substr(1));
      std::lock_guard lock(mutex);
      latencies.push_back(std::chrono::duration<double, std::milli>(now - written[index]).count());
    });
    auto started = Clock::now();
    for (std::size_t i = 0; i < writes; ++i) {
      std::this_thread::sleep_until(started + std::chrono::microseconds(1000 * i));
      {
        std::lock_guard lock(mutex);
        written[i] = Clock::now();
      }
      (void)setup.items->Insert(Payload(i, g_record_bytes));
    }
    (void)setup.plugin->WaitIdle(std::chrono::minutes(5));
    std::lock_guard lock(mutex);
    fmt::print("  {:<6} store: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms ({} delivered)\n",
               kind, Percentile(latencies, 0.50), Percentile(latencies, 0.99),
               Percentile(latencies, 1.0), latencies.size());
    TearDown(setup);
  }
}

// ---- maximum throughput -------------------------------------------------------------------------

void BenchThroughput(std::size_t records) {
  fmt::print("max throughput, s3db driver ({} records of {} B, 16 writers, file fsync {})\n",
             records, g_record_bytes, g_file_fsync ? "on" : "off");
  for (const char* kind : {"memory", "file"}) {
    Setup setup = MakeSetup(kind);
    auto started = Clock::now();
    std::vector<std::thread> writers;
    std::atomic<std::size_t> next{0};
    for (int t = 0; t < 16; ++t) {
      writers.emplace_back([&] {
        for (std::size_t i = next++; i < records; i = next++) {
          (void)setup.items->Insert(Payload(i, g_record_bytes));
        }
      });
    }
    for (auto& writer : writers) writer.join();
    double write_seconds = Seconds(Clock::now() - started);
    auto idle = setup.plugin->WaitIdle(std::chrono::minutes(30));
    double total_seconds = Seconds(Clock::now() - started);
    auto stats = setup.plugin->GetReplicatorStats("backup");
    fmt::print("  {:<6} store: writes {:.0f}/s; delivered {} in {:.2f} s = {:.0f}/s "
               "(p50 {:.1f} ms, p99 {:.1f} ms){}\n",
               kind, static_cast<double>(records) / write_seconds, stats->delivered,
               total_seconds, static_cast<double>(stats->delivered) / total_seconds,
               stats->latency_p50_ms, stats->latency_p99_ms, idle ? "" : " NOT IDLE");
    TearDown(setup);
  }
}

// ---- backlog memory -----------------------------------------------------------------------------

// A store that refuses everything: the target is down.
class DownStore final : public ObjectStore {
 public:
  explicit DownStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> down{false};
  Result<ObjectInfo> Put(std::string_view k, std::string_view b, const PutOptions& o) override {
    if (down) return Fail();
    return inner_->Put(k, b, o);
  }
  Result<Object> Get(std::string_view k) override {
    if (down) return Fail();
    return inner_->Get(k);
  }
  Result<ObjectInfo> Head(std::string_view k) override {
    if (down) return Fail();
    return inner_->Head(k);
  }
  Status Delete(std::string_view k) override {
    if (down) return Fail();
    return inner_->Delete(k);
  }
  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    if (down) return Fail();
    return inner_->DeleteMany(keys);
  }
  Result<ListPage> List(std::string_view p, std::string_view t, int m) override {
    if (down) return Fail();
    return inner_->List(p, t, m);
  }
  Result<ObjectInfo> Copy(std::string_view s, std::string_view t) override {
    if (down) return Fail();
    return inner_->Copy(s, t);
  }
  std::string Describe() const override { return "down+" + inner_->Describe(); }

 private:
  static tl::unexpected<Error> Fail() {
    return MakeError(ErrorCode::kUnavailable, "Connection failed");
  }
  std::unique_ptr<ObjectStore> inner_;
};

void BenchBacklog(std::size_t changes) {
  std::size_t bytes = g_record_bytes;
  fmt::print("backlog of {} changes ({} B records) while the target is down\n", changes, bytes);
  std::string folder = TempFolder("backlog");
  DatabaseOptions options;
  options.state_dir = folder + "/state";
  auto source = std::move(*Database::Open(NewMemoryStore(), options));
  auto down_store = std::make_unique<DownStore>(NewMemoryStore());
  DownStore* store = down_store.get();
  auto target = std::move(*Database::Open(std::move(down_store), options));
  ResourceDefinition definition;
  definition.name = "items";
  (void)source->CreateResource(definition);

  ReplicatorPluginOptions plugin_options;
  plugin_options.max_backoff_ms = 1000;
  ReplicatorConfig replicator;
  replicator.id = "backup";
  replicator.driver = "s3db";
  replicator.resources.Add("items");
  replicator.target_database = target.get();
  plugin_options.replicators.push_back(replicator);
  auto plugin = std::make_shared<ReplicatorPlugin>(plugin_options);
  (void)source->UsePlugin(plugin);
  long rss_before = CurrentRssKb();
  store->down = true;

  // Changes go straight to the plugin (as Resource writes would deliver them), so the source
  // store's memory does not count.
  auto started = Clock::now();
  std::vector<std::thread> writers;
  std::atomic<std::size_t> next{0};
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      for (std::size_t i = next++; i < changes; i = next++) {
        Change change;
        change.resource = "items";
        change.id = "r" + std::to_string(i);
        change.revision = 1;
        change.action = Action::kInsert;
        change.after = Payload(i, bytes);
        change.timestamp_ms = 1;
        (void)plugin->OnChange(change);
      }
    });
  }
  for (auto& writer : writers) writer.join();
  double append_seconds = Seconds(Clock::now() - started);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto stats = plugin->GetReplicatorStats("backup");
  long rss_backlog = CurrentRssKb();
  fmt::print("  appended in {:.1f} s; lag {} changes, state {}; RSS before {} MiB, with backlog "
             "{} MiB, peak so far {} MiB\n",
             append_seconds, stats->lag_changes, ReplicatorStateName(stats->state),
             rss_before / 1024, rss_backlog / 1024, PeakRssKb() / 1024);

  store->down = false;
  auto drain_started = Clock::now();
  auto idle = plugin->WaitIdle(std::chrono::minutes(60));
  double drain_seconds = Seconds(Clock::now() - drain_started);
  stats = plugin->GetReplicatorStats("backup");
  fmt::print("  target back: drained {} deliveries in {:.1f} s ({:.0f}/s){}; dead letters {}; "
             "peak RSS {} MiB\n",
             stats->delivered, drain_seconds,
             static_cast<double>(stats->delivered) / drain_seconds, idle ? "" : " NOT IDLE",
             stats->dead_letter_count, PeakRssKb() / 1024);
  (void)source->Close();
  plugin.reset();
  std::filesystem::remove_all(folder);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--fsync") {
      g_file_fsync = true;
    } else if (arg == "--record-bytes" && i + 1 < argc) {
      g_record_bytes = std::stoul(argv[++i]);
    } else {
      args.push_back(arg);
    }
  }
  std::string mode = args.empty() ? "all" : args[0];
  std::size_t n = args.size() > 1 ? std::stoul(args[1]) : 0;
  if (mode == "appends" || mode == "all") BenchAppends(n ? n : 100000);
  if (mode == "latency" || mode == "all") BenchLatency(n ? n : 5000);
  if (mode == "throughput" || mode == "all") BenchThroughput(n ? n : 100000);
  if (mode == "backlog" || mode == "all") BenchBacklog(n ? n : 1000000);
  if (mode != "all" && mode != "appends" && mode != "latency" && mode != "throughput" &&
      mode != "backlog") {
    std::fprintf(stderr, "usage: replicator_bench [appends|latency|throughput|backlog|all] [N]\n");
    return 2;
  }
  return 0;
}
