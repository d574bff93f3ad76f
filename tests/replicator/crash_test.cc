// Crash test: a child process writes 10,000 changes through a database with an s3db
// replicator and is killed with SIGKILL at random points, then restarted, until it has
// written everything. An operation the kill interrupted after it reached the source is not
// done again, so its change can only arrive through the change log's intents. At the end the
// target must equal the source and every change must be settled: the checkpoint at the head
// of the log and no dead letters.
//
// The child is this test binary, re-executed with a disabled test enabled.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "crash_child.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::TempDir;

constexpr int kOperations = 10000;
constexpr int kStepsPerRecord = 10;  // insert, 6 updates, delete, insert, update
constexpr const char* kDirVariable = "S3DB_CRASH_TEST_DIR";

DatabaseOptions CrashDatabaseOptions(const std::string& dir) {
  DatabaseOptions options;
  options.state_dir = dir + "/state";
  options.store.fsync = false;  // SIGKILL keeps the page cache: no fsync needed
  return options;
}

int ReadProgress(const std::string& path) {
  std::ifstream in(path);
  int done = -1;
  if (in >> done) return done;
  return -1;
}

void WriteProgress(const std::string& path, int done) {
  std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << done;
  }
  std::rename(temp.c_str(), path.c_str());
}

// Whether operation `index` reached the source before the kill (its call may not have
// returned, so the progress file does not say). Such an operation is not done again: its
// change must reach the target through the change log's intents, or the target ends up
// different from the source.
Result<bool> AlreadyApplied(Resource& items, int index) {
  std::string id = "r" + std::to_string(index / kStepsPerRecord);
  S3DB_ASSIGN_OR_RETURN(auto record, items.GetOrNull(id));
  if (index % kStepsPerRecord == 7) return !record.has_value();  // the delete
  if (!record) return false;
  const Json* value = record->if_contains("value");
  return value && value->is_int64() && value->get_int64() == index;
}

Status Operate(Resource& items, int index) {
  int record = index / kStepsPerRecord;
  int step = index % kStepsPerRecord;
  std::string id = "r" + std::to_string(record);
  JsonObject data;
  data["id"] = id;
  data["step"] = step;
  data["value"] = index;
  if (step == 0 || step == 8) return items.Insert(data).map([](auto&&) {});
  if (step == 7) return items.Delete(id);
  JsonObject changes;
  changes["step"] = step;
  changes["value"] = index;
  return items.Update(id, changes).map([](auto&&) {});
}

TEST(ReplicatorCrashChild, DISABLED_WritesChanges) {
  const char* dir_value = std::getenv(kDirVariable);
  ASSERT_NE(dir_value, nullptr) << "run by ReplicatorCrash.EveryChangeSurvivesRandomKills";
  std::string dir = dir_value;
  auto db = Database::Connect("file://" + dir + "/source", CrashDatabaseOptions(dir));
  ASSERT_TRUE(db.has_value()) << db.error().ToString();
  ResourceDefinition definition;
  definition.name = "items";
  definition.attributes["step"] = "number";
  auto items = (*db)->CreateResource(definition);
  ASSERT_TRUE(items.has_value()) << items.error().ToString();

  ReplicatorPluginOptions options;
  options.retry_base_ms = 5;
  options.max_backoff_ms = 100;
  ReplicatorConfig replicator;
  replicator.id = "backup";
  replicator.driver = "s3db";
  replicator.resources.Add("items");
  replicator.config["connectionString"] = "file://" + dir + "/target";
  options.replicators.push_back(replicator);
  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  S3DB_ASSERT_OK((*db)->UsePlugin(plugin));

  const std::string progress = dir + "/progress";
  int done = ReadProgress(progress);
  if (done + 1 < kOperations) {
    auto applied = AlreadyApplied(**items, done + 1);
    ASSERT_TRUE(applied.has_value()) << applied.error().ToString();
    if (*applied) WriteProgress(progress, ++done);
  }
  for (int index = done + 1; index < kOperations; ++index) {
    auto status = Operate(**items, index);
    ASSERT_TRUE(status.has_value()) << "operation " << index << ": " << status.error().ToString();
    WriteProgress(progress, index);
  }
  S3DB_ASSERT_OK(plugin->WaitIdle(120s));
  S3DB_ASSERT_OK((*db)->Close());
}

int RunChild(const std::string& dir, std::chrono::milliseconds kill_after) {
  return s3db::testing::RunCrashChild("ReplicatorCrashChild.DISABLED_WritesChanges", kDirVariable,
                                      dir, kill_after);
}

std::int64_t QueryInt(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sql;
  std::int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return value;
}

TEST(ReplicatorCrash, EveryChangeSurvivesRandomKills) {
  TempDir dir;
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(150, 700);
  int kills = 0;
  int finished = -2;
  for (int run = 0; run < 200 && finished != 0; ++run) {
    int progress_before = ReadProgress(dir.str() + "/progress");
    bool kill_this_run = kills < 15;
    finished = RunChild(dir.str(), kill_this_run ? std::chrono::milliseconds(delay_ms(random))
                                                 : std::chrono::milliseconds(0));
    if (finished == -1) {
      ++kills;
    } else {
      ASSERT_EQ(finished, 0) << "the child failed on its own (run " << run << ", progress "
                             << progress_before << ")";
    }
  }
  ASSERT_EQ(finished, 0);
  EXPECT_GE(kills, 5) << "the child finished before it could be killed often";
  EXPECT_EQ(ReadProgress(dir.str() + "/progress"), kOperations - 1);

  auto source = Database::Connect("file://" + dir.str() + "/source",
                                  CrashDatabaseOptions(dir.str() + "/check"));
  auto target = Database::Connect("file://" + dir.str() + "/target",
                                  CrashDatabaseOptions(dir.str() + "/check"));
  ASSERT_TRUE(source && target);
  auto source_records = s3db::testing::RecordsById(*(*source)->GetResource("items").value());
  auto target_resource = (*target)->GetResource("items");
  ASSERT_TRUE(target_resource.has_value());
  auto target_records = s3db::testing::RecordsById(**target_resource);
  ASSERT_EQ(source_records.size(), static_cast<std::size_t>(kOperations / kStepsPerRecord));
  ASSERT_EQ(target_records.size(), source_records.size());
  for (const auto& [id, record] : source_records) {
    auto copy = target_records.find(id);
    ASSERT_NE(copy, target_records.end()) << id;
    EXPECT_EQ(copy->second.at("_sourceRev"), record.at("_rev")) << id;
    EXPECT_EQ(copy->second.at("step"), record.at("step")) << id;
    EXPECT_EQ(copy->second.at("value"), record.at("value")) << id;
  }

  sqlite3* log = nullptr;
  std::string path = dir.str() + "/state/replicator/changes.db";
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &log, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  EXPECT_EQ(QueryInt(log, "SELECT COUNT(*) FROM dead_letters"), 0);
  std::int64_t head = QueryInt(log, "SELECT MAX(seq) FROM changes");
  EXPECT_GE(head, kOperations);
  EXPECT_EQ(QueryInt(log, "SELECT seq FROM checkpoints WHERE replicator='backup'"), head);
  sqlite3_close(log);
  std::cout << "[ crash    ] " << kills << " kills, " << head << " changes logged\n";
}

}  // namespace
}  // namespace s3db::replicator
