// File drivers over a long run: the flush interval (flushIntervalMs), Parquet row groups of
// rowGroupSize rows however often the file is flushed, size rotation of daily files, staging
// files pruned once the checkpoint passed them, and replay ids released as the checkpoint
// moves (memory bounded by the open files, not by the run's length).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "drivers/file_drivers_test_util.h"
#include "drivers/files/file_driver.h"
#include "formats/formats_test_util.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using formats::testing::FindParquetReaders;
using formats::testing::ReadFileBytes;
using formats::testing::RunningInCi;
using formats::testing::RunReader;
using s3db::testing::FastOptions;
using s3db::testing::MemoryDatabase;
using s3db::testing::TempDir;

using namespace file_testing;

constexpr std::int64_t kDayMs = 86400000;

class FileLifecycleTest : public ::testing::Test {
 protected:
  DriverContext Context() { return UsersContext(dir_.str() + "/state"); }

  std::unique_ptr<Driver> Make(std::string_view format, const std::string& extra) {
    return StartedFileDriver(
        format,
        Obj(R"({"outputPath": ")" + Out() + "\"" + (extra.empty() ? "" : ", ") + extra + "}"),
        Context());
  }

  std::string Out() const { return dir_.str() + "/out"; }

  // The staging files of append mode on disk.
  std::set<std::string> StagingFiles() const {
    std::set<std::string> names;
    std::error_code error;
    for (const auto& entry :
         std::filesystem::directory_iterator(dir_.str() + "/state/file-staging", error)) {
      std::string name = entry.path().filename().string();
      if (name.ends_with(".jsonl")) names.insert(name);
    }
    return names;
  }

  // The "_change_id"s (or another column) of a JSONL file, in order.
  std::vector<std::string> Ids(const std::string& name, const std::string& column = "id") const {
    return Column(ParseJsonl(ReadFileBytes(Out() + "/" + name)), column);
  }

  static DeliveryItem At(const std::string& id, std::uint64_t sequence, std::int64_t at) {
    DeliveryItem item = Change(id, 1, Action::kInsert, R"({"name": "N"})", at);
    item.sequence = sequence;
    return item;
  }

  TempDir dir_;
};

// ---- 1. flushIntervalMs ----

std::size_t LineCount(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return 0;
  std::string text = ReadFileBytes(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(FileFlushIntervalTest, ALongerIntervalPublishesLessAndKeepsTheCheckpointBehind) {
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  ASSERT_TRUE(db);
  ResourceDefinition definition;
  definition.name = "users";
  definition.attributes = Obj(R"({"name": "string|required"})");
  auto users = db->CreateResource(std::move(definition));
  ASSERT_TRUE(users.has_value()) << users.error().ToString();

  RegisterFileDrivers();
  std::string exports = dir.str() + "/exports";
  auto options = FastOptions();
  for (const char* id : {"slow", "default"}) {
    ReplicatorConfig config;
    config.id = id;
    config.driver = "jsonl";
    config.resources = *ResourceMapping::FromJson(Json(JsonArray{"users"}));
    config.config["outputPath"] = exports + "/" + id;
    config.config["rotateBy"] = nullptr;
    if (std::string(id) == "slow") config.config["flushIntervalMs"] = 1500;
    options.replicators.push_back(std::move(config));
  }
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK(db->UsePlugin(plugin));
  auto stats = [&](const char* id) {
    auto got = plugin->GetReplicatorStats(id);
    EXPECT_TRUE(got.has_value());
    return got ? *got : ReplicatorStats();
  };
  const std::uint64_t start = stats("slow").checkpoint;
  const std::string slow_file = exports + "/slow/users.jsonl";

  // 20 inserts 50 ms apart (about one second). While they run, the slow replicator's
  // checkpoint never passes a change that is not in its published file.
  constexpr int kInserts = 20;
  std::size_t checks = 0, behind = 0;
  for (int i = 0; i < kInserts; ++i) {
    ASSERT_TRUE((*users)->Insert(Obj(R"({"id": "u)" + std::to_string(i) + R"(", "name": "N"})")));
    for (auto until = std::chrono::steady_clock::now() + 50ms;
         std::chrono::steady_clock::now() < until;) {
      std::uint64_t checkpoint = stats("slow").checkpoint;  // first the checkpoint, then the file
      std::size_t published = LineCount(slow_file);
      EXPECT_GE(published, checkpoint - start) << "checkpoint " << checkpoint;
      ++checks;
      if (published < static_cast<std::size_t>(i + 1)) ++behind;
      std::this_thread::sleep_for(5ms);
    }
  }
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  EXPECT_GT(checks, 50u);
  EXPECT_GT(behind, 0u) << "the slow replicator published every change at once";

  ReplicatorStats slow = stats("slow");
  ReplicatorStats fast = stats("default");
  EXPECT_EQ(LineCount(slow_file), static_cast<std::size_t>(kInserts));
  EXPECT_EQ(LineCount(exports + "/default/users.jsonl"), static_cast<std::size_t>(kInserts));
  // The default (10 ms when idle) publishes nearly every insert on its own; 1.5 s between
  // flushes groups the second's inserts into a few publishes.
  EXPECT_GE(fast.driver_counters.at("files_published"), 10u);
  EXPECT_LE(slow.driver_counters.at("files_published"), 3u);
  EXPECT_GE(slow.driver_counters.at("files_published"), 1u);
  // Everything is below the checkpoint: no change id is held to recognise replays.
  EXPECT_EQ(slow.driver_counters.at("replay_ids"), 0u);
  EXPECT_EQ(fast.driver_counters.at("replay_ids"), 0u);
  (void)db->Close();
}

TEST(FileFlushIntervalTest, BadFlushIntervalFailsNamingTheOptionAndItsPath) {
  TempDir dir;
  DriverContext context = UsersContext(dir.str() + "/state");
  for (const char* bad : {"-1", "\"1s\"", "1.5", "3600001"}) {
    auto driver = NewFileDriver(
        "csv", Obj(R"({"outputPath": "x", "flushIntervalMs": )" + std::string(bad) + "}"), context);
    ASSERT_FALSE(driver.has_value()) << bad;
    EXPECT_EQ(driver.error().message,
              "flushIntervalMs: must be a whole number of milliseconds from 0 to 3600000 (leave "
              "it out for the default: 10 ms when idle, 200 ms under load)");
  }
  auto fine = NewFileDriver("csv", Obj(R"({"outputPath": "x", "flushIntervalMs": 5000})"), context);
  ASSERT_TRUE(fine.has_value());
  EXPECT_EQ((*fine)->FlushInterval(), std::optional<std::chrono::milliseconds>(5000ms));
  auto default_interval = NewFileDriver("csv", Obj(R"({"outputPath": "x"})"), context);
  ASSERT_TRUE(default_interval.has_value());
  EXPECT_FALSE((*default_interval)->FlushInterval().has_value());

  // Through the plugin, the message carries the replicator's config path.
  auto db = MemoryDatabase(dir.str() + "/db");
  ASSERT_TRUE(db);
  RegisterFileDrivers();
  auto options = FastOptions();
  ReplicatorConfig config;
  config.driver = "csv";
  config.resources = *ResourceMapping::FromJson(Json(JsonArray{"users"}));
  config.config = Obj(R"({"outputPath": "x", "flushIntervalMs": -5})");
  options.replicators.push_back(std::move(config));
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  auto used = db->UsePlugin(plugin);
  ASSERT_FALSE(used.has_value());
  EXPECT_NE(used.error().message.find("replicators[0].config.flushIntervalMs: must be"),
            std::string::npos)
      << used.error().message;
  (void)db->Close();
}

// ---- 2. Parquet row groups ----

TEST_F(FileLifecycleTest, ParquetFilesKeepRowGroupsOfRowGroupSizeAcrossFrequentFlushes) {
  std::string why_not;
  auto readers = FindParquetReaders(why_not);
  if (!readers) {
    if (RunningInCi()) FAIL() << "parquet readers missing: " << why_not;
    GTEST_SKIP() << "parquet readers missing: " << why_not;
  }
  const std::string sql =
      "SELECT row_group_id, row_group_num_rows FROM parquet_metadata($FILE) "
      "WHERE column_id = 0 ORDER BY row_group_id";
  // 20,000 changes with rowGroupSize 5000, flushed every 200 rows (100 flushes), then every
  // 66 (304 flushes) and every 2 (the first 2,000 changes, 1,000 flushes): each flush encodes
  // only the rows added since the last one, so every cadence gives 4 row groups of 5,000
  // rows. Before, each flush closed a row group (100 and 304 row groups), and later a
  // re-encoding budget closed groups of about sqrt(32 * 5000 * rows per flush) rows.
  for (int per_flush : {200, 66, 2}) {
    SCOPED_TRACE(per_flush);
    std::string target = "t" + std::to_string(per_flush);
    auto driver = Make("parquet", R"("rowGroupSize": 5000, "rotateBy": null)");
    ASSERT_TRUE(driver);
    std::vector<DeliveryItem> batch;
    for (int i = 0; i < 20000; ++i) {
      DeliveryItem item = Change("u" + std::to_string(i), 1, Action::kInsert,
                                 R"({"name": "N)" + std::to_string(i % 97) + R"("})");
      item.target = target;
      batch.push_back(std::move(item));
      int flush_every = per_flush == 2 && i >= 2000 ? 500 : per_flush;
      if (static_cast<int>(batch.size()) == flush_every || i == 19999) {
        ExpectAllDelivered(driver->Deliver(batch, 5s));
        batch.clear();
        S3DB_ASSERT_OK(driver->Flush());
      }
    }
    // The published file (the writer still open) and the finished one.
    std::string file = Out() + "/" + target + ".parquet";
    std::string published = Out() + "/published-" + target + ".parquet";
    std::filesystem::copy_file(file, published);
    driver->Stop();
    for (const std::string& path : {published, file}) {
      SCOPED_TRACE(path);
      Json groups = RunReader(*readers, "duckdb-sql", path, sql);
      ASSERT_TRUE(groups.is_array()) << ToJson(groups);
      const JsonArray& g = groups.as_array();
      ASSERT_EQ(g.size(), 4u) << ToJson(groups);
      for (const Json& group : g) EXPECT_EQ(group.at("row_group_num_rows"), Json("5000"));
      Json count = RunReader(*readers, "duckdb-sql", path,
                             "SELECT count(DISTINCT id) AS n FROM read_parquet($FILE)");
      ASSERT_TRUE(count.is_array()) << ToJson(count);
      EXPECT_EQ(count.as_array().at(0).at("n"), Json("20000"));
    }
  }
}

// ---- 3. rotateSize with daily files ----

TEST_F(FileLifecycleTest, RotateSizeAlsoSplitsDailyFiles) {
  // The spec's CSV example: rotateBy 'date' with rotateSize.
  auto driver = Make("csv", R"("rotateBy": "date", "rotateSize": 150)");
  ASSERT_TRUE(driver);
  std::uint64_t sequence = 0;
  for (int i = 0; i < 9; ++i) {
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{At("u" + std::to_string(i), ++sequence, kOct20At2330Utc)}, 5s));
    S3DB_ASSERT_OK(driver->Flush());
  }
  // The next day starts again at part 1.
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{At("next", ++sequence, kOct20At2330Utc + kDayMs)}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  driver->Stop();

  std::vector<std::string> ids;
  int parts = 0;
  for (int part = 1;; ++part) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "_%04d", part);
    std::string path = Out() + "/users_2025-10-20" + (part == 1 ? "" : suffix) + ".csv";
    if (!std::filesystem::exists(path)) break;
    ++parts;
    auto rows = ParseCsv(ReadFileBytes(path));
    ASSERT_GE(rows.size(), 2u) << path;
    EXPECT_EQ(rows[0][0], "id") << path;  // every part has its header
    // A part may pass rotateSize by one flush's rows only.
    EXPECT_LT(std::filesystem::file_size(path), 150u + 120u) << path;
    for (std::size_t r = 1; r < rows.size(); ++r) ids.push_back(rows[r][0]);
  }
  EXPECT_GE(parts, 3);
  EXPECT_EQ(ids, (std::vector<std::string>{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"}));
  auto next = ParseCsv(ReadFileBytes(Out() + "/users_2025-10-21.csv"));
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[1][0], "next");
  EXPECT_FALSE(std::filesystem::exists(Out() + "/users_2025-10-21_0002.csv"));
}

TEST_F(FileLifecycleTest, RotateSizeErrorsNameTheOption) {
  auto message = [&](std::string_view format, const std::string& extra) {
    auto driver = NewFileDriver(format, Obj(R"({"outputPath": "x", )" + extra + "}"), Context());
    EXPECT_FALSE(driver.has_value()) << extra;
    return driver ? std::string() : driver.error().message;
  };
  EXPECT_EQ(message("csv", R"("rotateBy": null, "rotateSize": 100)"),
            "rotateSize: applies to daily files only (mode 'append' with rotateBy 'date' or "
            "'size'); remove rotateSize or set rotateBy");
  EXPECT_EQ(message("csv", R"("mode": "overwrite", "rotateSize": 100)"),
            "rotateSize: applies to daily files only (mode 'append' with rotateBy 'date' or "
            "'size'); remove rotateSize or set rotateBy");
  EXPECT_EQ(message("excel", R"("rotateSize": 100)"),
            "rotateSize: not supported by the excel driver (the day's workbook is one file; a "
            "sheet continues on a new sheet instead); remove rotateSize");
  EXPECT_EQ(message("jsonl", R"("rotateSize": 0)"),
            "rotateSize: must be a positive integer (bytes)");
}

// ---- 4. staging pruned ----

TEST_F(FileLifecycleTest, StagingOfPastDaysIsPrunedOnceTheCheckpointPassedIt) {
  auto driver = Make("jsonl", R"("closeAfterIdleMs": 0)");
  ASSERT_TRUE(driver);
  std::uint64_t sequence = 0;
  // Ten days of changes, each day flushed and checkpointed: the staging folder never holds
  // more than the day being written.
  for (int day = 0; day < 10; ++day) {
    std::vector<DeliveryItem> batch;
    for (int i = 0; i < 3; ++i) {
      batch.push_back(At("d" + std::to_string(day) + "-" + std::to_string(i), ++sequence,
                         kOct20At2330Utc + day * kDayMs));
    }
    ExpectAllDelivered(driver->Deliver(batch, 5s));
    EXPECT_EQ(StagingFiles().size(), 1u);
    S3DB_ASSERT_OK(driver->Flush());  // published, and closed (a past day, idle)
    driver->CheckpointSaved(sequence);
    EXPECT_TRUE(StagingFiles().empty()) << "day " << day;
    EXPECT_EQ(driver->Counters().at("staging_pruned"), static_cast<std::uint64_t>(day + 1));
    EXPECT_EQ(driver->Counters().at("staging_files"), 0u);
  }
  EXPECT_EQ(Ids("users_2025-10-20.jsonl"), (std::vector<std::string>{"d0-0", "d0-1", "d0-2"}));
  EXPECT_EQ(Ids("users_2025-10-29.jsonl"), (std::vector<std::string>{"d9-0", "d9-1", "d9-2"}));

  // A late change of the first day cannot reopen its pruned staging: it goes to the next
  // part, and the finished file stays as it was.
  ExpectAllDelivered(
      driver->Deliver(std::vector<DeliveryItem>{At("late", ++sequence, kOct20At2330Utc)}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  EXPECT_EQ(Ids("users_2025-10-20.jsonl"), (std::vector<std::string>{"d0-0", "d0-1", "d0-2"}));
  EXPECT_EQ(Ids("users_2025-10-20_0002.jsonl"), std::vector<std::string>{"late"});
  // Not checkpointed yet: a replay (after a crash) is recognised from its staging.
  EXPECT_EQ(StagingFiles(), std::set<std::string>{"users_2025-10-20_0002.jsonl.jsonl"});
  ExpectAllDelivered(
      driver->Deliver(std::vector<DeliveryItem>{At("late", sequence, kOct20At2330Utc)}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  EXPECT_EQ(Ids("users_2025-10-20_0002.jsonl"), std::vector<std::string>{"late"});
  driver->CheckpointSaved(sequence);
  EXPECT_TRUE(StagingFiles().empty());
  driver->Stop();

  // After a restart, leftover staging of past days is pruned at the first checkpoint, and
  // today's file keeps its staging.
  std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  driver = Make("jsonl", R"("closeAfterIdleMs": 600000)");
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{At("old", ++sequence, kOct20At2330Utc + 20 * kDayMs),
                                At("today", ++sequence, now_ms)},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  driver->Stop();
  driver = Make("jsonl", R"("closeAfterIdleMs": 600000)");
  ASSERT_TRUE(driver);
  EXPECT_EQ(driver->Counters().at("staging_files"), 2u);
  driver->CheckpointSaved(sequence);
  EXPECT_EQ(driver->Counters().at("staging_files"), 1u);
  ASSERT_EQ(StagingFiles().size(), 1u);
  EXPECT_EQ(StagingFiles().begin()->find("2025-11-09"), std::string::npos);
}

// The ids of the one file of rotateBy null: CSV parsed (exactly one header row), JSONL as
// lines, gzip JSONL through the system's gzip (every member must be valid).
std::vector<std::string> UnrotatedIds(const std::string& path) {
  std::string text;
  if (path.ends_with(".gz")) {
    FILE* pipe = ::popen(("gzip -dc '" + path + "' 2>&1").c_str(), "r");
    char buffer[65536];
    std::size_t got;
    while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, got);
    EXPECT_EQ(::pclose(pipe), 0) << "gzip -dc " << path << ": " << text.substr(0, 200);
  } else {
    text = ReadFileBytes(path);
  }
  std::vector<std::string> ids;
  if (path.ends_with(".csv")) {
    auto records = ParseCsv(text);
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (i == 0) {
        EXPECT_EQ(records[i].at(0), "id");
      } else {
        EXPECT_NE(records[i].at(0), "id") << "a second header at record " << i;
        ids.push_back(records[i].at(0));
      }
    }
    return ids;
  }
  return Column(ParseJsonl(text), "id");
}

// With rotateBy null, a CSV or JSONL file is continued after a restart from what it
// published, so the staging of the rows it holds is pruned once the checkpoint passed them:
// the staging no longer grows with the file, and the file is never split. A restart without
// Stop (as after kill -9), with changes published but above the checkpoint and changes not
// flushed, then replays: every change is in the file exactly once. Parquet and Excel files
// cannot be continued: their staging keeps every row.
TEST_F(FileLifecycleTest, UnrotatedCsvAndJsonlFilesAreContinuedAndTheirStagingPruned) {
  struct Case {
    const char* format;
    const char* extra;
    const char* file;
    bool prunable;
  };
  const Case cases[] = {
      {"csv", "", "users.csv", true},
      {"jsonl", "", "users.jsonl", true},
      {"jsonl", R"(, "compress": true)", "users.jsonl.gz", true},
      {"parquet", "", "users.parquet", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.format) + c.extra);
    std::filesystem::remove_all(Out());
    std::filesystem::remove_all(dir_.str() + "/state");
    const std::string config = std::string(R"("rotateBy": null)") + c.extra;
    const std::string staging = dir_.str() + "/state/file-staging/" + c.file + ".jsonl";
    auto driver = Make(c.format, config);
    ASSERT_TRUE(driver);
    std::uint64_t sequence = 0;
    std::vector<std::string> expected;
    auto batch_of = [&](const std::string& prefix, int count) {
      std::vector<DeliveryItem> batch;
      for (int i = 0; i < count; ++i) {
        expected.push_back(prefix + std::to_string(i));
        batch.push_back(At(expected.back(), ++sequence, kOct20At2330Utc));
      }
      return batch;
    };
    for (int round = 0; round < 4; ++round) {
      ExpectAllDelivered(driver->Deliver(batch_of("r" + std::to_string(round) + "-", 600), 5s));
      S3DB_ASSERT_OK(driver->Flush());
      driver->CheckpointSaved(sequence);
      if (c.prunable) {
        EXPECT_LE(LineCount(staging), 1u) << "round " << round;  // the published size
      } else {
        EXPECT_EQ(LineCount(staging), expected.size());
      }
    }
    EXPECT_EQ(driver->Counters().at("staging_rows_pruned"), c.prunable ? 2400u : 0u);

    // Published but above the checkpoint, then delivered but not flushed; the process dies.
    std::vector<DeliveryItem> replay = batch_of("published-", 3);
    ExpectAllDelivered(driver->Deliver(replay, 5s));
    S3DB_ASSERT_OK(driver->Flush());
    std::vector<DeliveryItem> unflushed = batch_of("unflushed-", 2);
    ExpectAllDelivered(driver->Deliver(unflushed, 5s));
    driver.reset();

    driver = Make(c.format, config);
    ASSERT_TRUE(driver);
    replay.insert(replay.end(), unflushed.begin(), unflushed.end());
    std::vector<DeliveryItem> after = batch_of("after-", 1);
    replay.insert(replay.end(), after.begin(), after.end());
    ExpectAllDelivered(driver->Deliver(replay, 5s));
    S3DB_ASSERT_OK(driver->Flush());
    driver->CheckpointSaved(sequence);
    driver->Stop();

    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(Out())) {
      files.push_back(entry.path().filename().string());
    }
    EXPECT_EQ(files, std::vector<std::string>{c.file});  // one file, no part, no working copy
    if (std::string(c.format) == "parquet") {
      std::string why_not;
      auto readers = FindParquetReaders(why_not);
      if (!readers) continue;
      Json count =
          RunReader(*readers, "duckdb-sql", Out() + "/" + c.file,
                    "SELECT count(*) AS n, count(DISTINCT id) AS d FROM read_parquet($FILE)");
      ASSERT_TRUE(count.is_array()) << ToJson(count);
      EXPECT_EQ(count.as_array().at(0).at("n"), Json(std::to_string(expected.size())));
      EXPECT_EQ(count.as_array().at(0).at("d"), Json(std::to_string(expected.size())));
      continue;
    }
    std::vector<std::string> ids = UnrotatedIds(Out() + "/" + c.file);
    EXPECT_EQ(std::multiset<std::string>(ids.begin(), ids.end()),
              std::multiset<std::string>(expected.begin(), expected.end()));
    EXPECT_EQ(ids.size(), expected.size());
  }
}

// The crash windows of a publish of a continued file: killed after the staging said
// "publishing" but before the file was published (the rows are added at restart), and after
// the publish but before the staging recorded its size (the rows are not added again).
TEST_F(FileLifecycleTest, AContinuedFileKnowsWhichRowsItHoldsAfterACrashDuringAPublish) {
  for (bool published : {false, true}) {
    SCOPED_TRACE(published ? "killed after the publish" : "killed before the publish");
    std::filesystem::remove_all(Out());
    std::filesystem::remove_all(dir_.str() + "/state");
    const std::string staging = dir_.str() + "/state/file-staging/users.csv.jsonl";
    auto driver = Make("csv", R"("rotateBy": null)");
    ASSERT_TRUE(driver);
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{At("a", 1, kOct20At2330Utc), At("b", 2, kOct20At2330Utc)}, 5s));
    S3DB_ASSERT_OK(driver->Flush());
    std::vector<DeliveryItem> last{At("c", 3, kOct20At2330Utc)};
    ExpectAllDelivered(driver->Deliver(last, 5s));
    if (published) S3DB_ASSERT_OK(driver->Flush());
    driver.reset();
    std::string lines = ReadFileBytes(staging);
    if (published) {
      // The size line after the publish never reached the disk.
      ASSERT_TRUE(lines.ends_with("}\n"));
      std::size_t cut = lines.rfind('\n', lines.size() - 2);
      ASSERT_NE(lines.find("{\"published\":", cut), std::string::npos);
      lines.resize(cut + 1);
    } else {
      lines += "{\"publishing\":true}\n";  // the publish itself never happened
    }
    {
      std::ofstream out(staging, std::ios::binary | std::ios::trunc);
      out << lines;
    }
    driver = Make("csv", R"("rotateBy": null)");
    ASSERT_TRUE(driver);
    ExpectAllDelivered(driver->Deliver(last, 5s));  // the replay
    S3DB_ASSERT_OK(driver->Flush());
    driver->Stop();
    EXPECT_EQ(UnrotatedIds(Out() + "/users.csv"), (std::vector<std::string>{"a", "b", "c"}));
  }
}

// ---- 4b. a day's file finished at midnight ----

// The ids of a finished file of `format`, read back by DuckDB and hyparquet (parquet), exceljs
// (excel, sheet "users") or our CSV parser; nullopt when the reader is missing.
std::optional<std::vector<std::string>> FinishedIds(const std::string& format,
                                                    const std::string& path) {
  if (format == "parquet") {
    std::string why_not;
    auto readers = FindParquetReaders(why_not);
    if (!readers) {
      if (RunningInCi()) ADD_FAILURE() << why_not;
      return std::nullopt;
    }
    Json duckdb =
        RunReader(*readers, "duckdb-sql", path, "SELECT id FROM read_parquet($FILE) ORDER BY id");
    Json hyparquet = RunReader(*readers, "hyparquet-rows", path);
    std::vector<std::string> ids, hyparquet_ids;
    if (duckdb.is_array()) {
      for (const Json& row : duckdb.as_array()) ids.emplace_back(row.at("id").as_string());
    }
    if (hyparquet.is_array()) {
      for (const Json& row : hyparquet.as_array()) {
        hyparquet_ids.emplace_back(row.at("id").as_string());
      }
    }
    std::sort(hyparquet_ids.begin(), hyparquet_ids.end());
    EXPECT_EQ(hyparquet_ids, ids) << ToJson(hyparquet);
    return ids;
  }
  std::vector<std::string> ids;
  if (format == "excel") {
    auto book = ReadWorkbook(path);
    if (!book) return std::nullopt;
    const auto& rows = (*book)["users"];
    for (std::size_t i = 1; i < rows.size(); ++i) ids.emplace_back(rows[i].at(0).as_string());
  } else {
    auto records = ParseCsv(ReadFileBytes(path));
    for (std::size_t i = 1; i < records.size(); ++i) ids.push_back(records[i].at(0));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The first change after midnight in `timezone` finishes the day's file at once, without
// waiting closeAfterIdleMs: the final file (no working copy left) holds every row of the day,
// the last ones delivered but not flushed yet included. A late change of that day reopens
// the file from its staging, and the idle release still closes it then.
TEST_F(FileLifecycleTest, ADaysFileIsFinishedAtTheFirstChangeAfterMidnight) {
  constexpr std::int64_t kMinute = 60000;
  constexpr std::int64_t kUtcMidnight = kOct20At2330Utc + 30 * kMinute;  // 2025-10-21T00:00Z
  struct Case {
    const char* format;
    const char* timezone;
    std::int64_t midnight;  // 2025-10-21T00:00 in the zone, as UTC milliseconds
    const char* file;
    const char* extra;
  };
  const Case cases[] = {
      {"parquet", "UTC", kUtcMidnight, "users_2025-10-20.parquet", ""},
      {"excel", "America/Sao_Paulo", kUtcMidnight + 3 * 60 * kMinute, "export_2025-10-20.xlsx", ""},
      {"csv", "Asia/Tokyo", kUtcMidnight - 9 * 60 * kMinute, "users_2025-10-20.csv",
       R"(, "closeAfterIdleMs": 0)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.format) + " " + c.timezone);
    std::filesystem::remove_all(Out());
    std::filesystem::remove_all(dir_.str() + "/state");
    std::int64_t now = c.midnight - 40 * kMinute;
    auto made = NewFileDriver(c.format,
                              Obj(R"({"outputPath": ")" + Out() + R"(", "timezone": ")" +
                                  c.timezone + "\"" + c.extra + "}"),
                              Context(), [&now] { return now; });
    ASSERT_TRUE(made.has_value()) << made.error().ToString();
    std::unique_ptr<Driver> driver = std::move(*made);
    S3DB_ASSERT_OK(driver->Start());
    std::uint64_t sequence = 0;
    auto deliver = [&](const std::string& id, std::int64_t at) {
      ExpectAllDelivered(driver->Deliver(std::vector<DeliveryItem>{At(id, ++sequence, at)}, 5s));
    };
    deliver("a1", c.midnight - 30 * kMinute);
    deliver("a2", c.midnight - 30 * kMinute);
    S3DB_ASSERT_OK(driver->Flush());
    now = c.midnight - kMinute;
    deliver("a3", now);  // not flushed before midnight
    EXPECT_EQ(driver->Counters().at("files_finished_at_midnight"), 0u);

    now = c.midnight + 1;
    deliver("b1", now);
    EXPECT_EQ(driver->Counters().at("files_finished_at_midnight"), 1u);
    EXPECT_EQ(driver->Counters().at("files_closed"), 0u);
    const std::string path = Out() + "/" + c.file;
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp")) << "not finished";
    auto ids = FinishedIds(c.format, path);
    if (ids) EXPECT_EQ(*ids, (std::vector<std::string>{"a1", "a2", "a3"}));
    S3DB_ASSERT_OK(driver->Flush());
    EXPECT_EQ(driver->Counters().at("files_finished_at_midnight"), 1u);

    // A late change of the ended day: the file is rebuilt from its staging with it.
    deliver("a4", c.midnight - 1);
    S3DB_ASSERT_OK(driver->Flush());
    bool idle_release = std::string_view(c.extra).find("closeAfterIdleMs") != std::string::npos;
    EXPECT_EQ(driver->Counters().at("files_closed"), idle_release ? 1u : 0u);
    EXPECT_EQ(driver->Counters().at("files_open"), idle_release ? 1u : 2u);
    driver->Stop();
    ids = FinishedIds(c.format, path);
    if (ids) EXPECT_EQ(*ids, (std::vector<std::string>{"a1", "a2", "a3", "a4"}));
  }
}

// ---- 5. memory: finished parts and replay ids released ----

TEST_F(FileLifecycleTest, FinishedSizePartsAndSettledReplayIdsAreReleased) {
  auto driver = Make("jsonl", R"("rotateSize": 1)");
  ASSERT_TRUE(driver);
  // Every change after a flush starts a new part (rotateSize 1 byte).
  for (std::uint64_t sequence = 1; sequence <= 20; ++sequence) {
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{At("u" + std::to_string(sequence), sequence, kOct20At2330Utc)},
        5s));
    S3DB_ASSERT_OK(driver->Flush());
  }
  auto counters = driver->Counters();
  EXPECT_EQ(counters.at("files_open"), 1u);   // only the part being written
  EXPECT_EQ(counters.at("replay_ids"), 20u);  // nothing checkpointed yet: all may be replayed
  EXPECT_EQ(counters.at("staging_files"), 20u);
  // A replay of a change in a finished part is recognised.
  ExpectAllDelivered(driver->Deliver(std::vector<DeliveryItem>{At("u3", 3, kOct20At2330Utc)}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  EXPECT_EQ(Ids("users_2025-10-20_0003.jsonl"), std::vector<std::string>{"u3"});
  EXPECT_EQ(Ids("users_2025-10-20_0020.jsonl"), std::vector<std::string>{"u20"});

  driver->CheckpointSaved(18);
  counters = driver->Counters();
  EXPECT_EQ(counters.at("replay_ids"), 2u);     // 19 and 20
  EXPECT_EQ(counters.at("staging_files"), 2u);  // parts 19 (finished, above) and 20 (open)
  EXPECT_EQ(counters.at("staging_pruned"), 18u);

  // Changes above the checkpoint are still recognised when replayed.
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{At("u19", 19, kOct20At2330Utc), At("u21", 21, kOct20At2330Utc),
                                At("u22", 22, kOct20At2330Utc)},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  ExpectAllDelivered(
      driver->Deliver(std::vector<DeliveryItem>{At("u22", 22, kOct20At2330Utc)}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  EXPECT_EQ(Ids("users_2025-10-20_0019.jsonl"), std::vector<std::string>{"u19"});
  EXPECT_EQ(Ids("users_2025-10-20_0021.jsonl"), (std::vector<std::string>{"u21", "u22"}));
  driver->CheckpointSaved(22);
  counters = driver->Counters();
  EXPECT_EQ(counters.at("replay_ids"), 0u);
  EXPECT_EQ(counters.at("files_open"), 1u);
  EXPECT_EQ(counters.at("staging_files"), 1u);  // the open part only
  driver->Stop();
}

}  // namespace
}  // namespace s3db::replicator
