// Crash test of the file drivers: a child process writes changes through a database with file
// replicators (JSONL append with size rotation, an Excel workbook, one CSV file continued
// after each restart, CSV overwrite) that flush all the time,
// and is killed with SIGKILL at random points (so, often during a flush), then restarted
// until it has written everything. Afterwards: every change is in exactly one finished
// append file (no duplicate, none lost but changes whose write was cut by a kill before it
// was logged), and the overwrite file equals the source.
//
// The child is this test binary, re-executed with a disabled test enabled.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "crash_child.h"
#include "drivers/file_drivers_test_util.h"
#include "formats/formats_test_util.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using namespace file_testing;
using formats::testing::ReadFileBytes;
using s3db::testing::TempDir;

constexpr int kRecords = 300;
constexpr int kStepsPerRecord = 7;  // insert, 3 updates, delete, insert, update
constexpr int kOperations = kRecords * kStepsPerRecord;
constexpr const char* kDirVariable = "S3DB_FILE_CRASH_TEST_DIR";

DatabaseOptions ChildDatabaseOptions(const std::string& dir) {
  DatabaseOptions options;
  options.state_dir = dir + "/state";
  options.store.fsync = false;  // SIGKILL keeps the page cache
  return options;
}

int ReadDone(const std::string& path) {
  std::ifstream in(path);
  int done = -1;
  if (in >> done) return done;
  return -1;
}

void WriteDone(const std::string& path, int done) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << done;
  }
  std::rename(temporary.c_str(), path.c_str());
}

// A delete cut by the kill leaves the core's deletion marker at the data key; finish it the
// way the core would (tombstone at the claimed revision, then remove the marker).
void CompleteCutDelete(Database& db, const std::string& id) {
  std::string key = "resource=items/data/id=" + id;
  auto object = db.store().Get(key);
  if (!object) return;
  auto marker = ParseJsonObject(object->body);
  if (!marker || !marker->contains("_deleted")) return;
  JsonObject tombstone;
  tombstone["_rev"] = marker->at("_rev");
  tombstone["deletedAt"] = 0;
  ASSERT_TRUE(db.store().Put("resource=items/tombstones/id=" + id, ToJson(tombstone)));
  ASSERT_TRUE(db.store().Delete(key));
}

// Operation `index`. `again`: it may have been done already (the kill came before its
// progress was saved): redo it so that a change at least as new is recorded.
Status Operate(Database& db, Resource& items, int index, bool again) {
  int step = index % kStepsPerRecord;
  std::string id = "r" + std::to_string(index / kStepsPerRecord);
  JsonObject data;
  data["id"] = id;
  data["step"] = step;
  data["text"] = "value " + std::to_string(index) + ", with \"quotes\"\nand a line break";
  if (again) CompleteCutDelete(db, id);
  if (step == 0 || step == 5) {
    if (again) return items.Replace(id, data).map([](auto&&) {});
    return items.Insert(data).map([](auto&&) {});
  }
  if (step == 4) {
    if (again) {
      S3DB_ASSIGN_OR_RETURN(bool exists, items.Exists(id));
      if (!exists) S3DB_RETURN_IF_ERROR(items.Replace(id, data).map([](auto&&) {}));
    }
    return items.Delete(id);
  }
  JsonObject changes;
  changes["step"] = step;
  changes["text"] = data["text"];
  return items.Update(id, changes).map([](auto&&) {});
}

TEST(FileDriverCrashChild, DISABLED_WritesChanges) {
  const char* dir_value = std::getenv(kDirVariable);
  ASSERT_NE(dir_value, nullptr)
      << "run by FileDriverCrash.KilledDuringFlushesLosesAndDuplicatesNothing";
  std::string dir = dir_value;
  auto db = Database::Connect("file://" + dir + "/source", ChildDatabaseOptions(dir));
  ASSERT_TRUE(db.has_value()) << db.error().ToString();
  ResourceDefinition definition;
  definition.name = "items";
  definition.attributes["step"] = "number";
  definition.attributes["text"] = "string";
  auto items = (*db)->CreateResource(definition);
  ASSERT_TRUE(items.has_value()) << items.error().ToString();

  ReplicatorPluginOptions options = s3db::testing::FastOptions();
  ReplicatorConfig append;
  append.id = "append";
  append.driver = "jsonl";
  append.resources.Add("items");
  append.config = Obj(R"({"rotateBy": "size", "rotateSize": 40000})");
  append.config["outputPath"] = dir + "/append";
  options.replicators.push_back(append);
  ReplicatorConfig workbook;  // one workbook, regenerated from its spool at every flush
  workbook.id = "workbook";
  workbook.driver = "excel";
  workbook.resources.Add("items");
  workbook.config = Obj(R"({"rotateBy": null, "filename": "items.xlsx"})");
  workbook.config["outputPath"] = dir + "/workbook";
  options.replicators.push_back(workbook);
  ReplicatorConfig single;  // one CSV file, continued from what it published at each restart
  single.id = "single";
  single.driver = "csv";
  single.resources.Add("items");
  single.config = Obj(R"({"rotateBy": null})");
  single.config["outputPath"] = dir + "/single";
  options.replicators.push_back(single);
  ReplicatorConfig state;
  state.id = "state";
  state.driver = "csv";
  state.resources.Add("items");
  state.config = Obj(R"({"mode": "overwrite"})");
  state.config["outputPath"] = dir + "/state-file";
  options.replicators.push_back(state);
  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  S3DB_ASSERT_OK((*db)->UsePlugin(plugin));

  const std::string progress = dir + "/progress";
  int done = ReadDone(progress);
  for (int index = done + 1; index < kOperations; ++index) {
    auto status = Operate(**db, **items, index, index == done + 1);
    ASSERT_TRUE(status.has_value()) << "operation " << index << ": " << status.error().ToString();
    WriteDone(progress, index);
  }
  S3DB_ASSERT_OK(plugin->WaitIdle(120s));
  S3DB_ASSERT_OK((*db)->Close());
}

int RunChild(const std::string& dir, std::chrono::milliseconds kill_after) {
  return s3db::testing::RunCrashChild("FileDriverCrashChild.DISABLED_WritesChanges", kDirVariable,
                                      dir, kill_after);
}

// Published files of a folder (not the writers' "*.tmp" working copies).
std::vector<std::string> PublishedFiles(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && !name.ends_with(".tmp")) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(FileDriverCrash, KilledDuringFlushesLosesAndDuplicatesNothing) {
  TempDir dir;
  std::mt19937 random(std::random_device{}());
  // Short enough that a fast, idle machine still gets killed mid-run several times.
  std::uniform_int_distribution<int> delay_ms(40, 300);
  int kills = 0;
  int finished = -2;
  for (int run = 0; run < 200 && finished != 0; ++run) {
    bool kill_this_run = kills < 12;
    finished = RunChild(dir.str(), kill_this_run ? std::chrono::milliseconds(delay_ms(random))
                                                 : std::chrono::milliseconds(0));
    if (finished == -1) {
      ++kills;
    } else {
      ASSERT_EQ(finished, 0) << "the child failed on its own (run " << run << ")";
    }
  }
  ASSERT_EQ(finished, 0);
  EXPECT_GE(kills, 4) << "the child finished before it could be killed often";
  ASSERT_EQ(ReadDone(dir.str() + "/progress"), kOperations - 1);

  auto source = Database::Connect("file://" + dir.str() + "/source",
                                  ChildDatabaseOptions(dir.str() + "/check"));
  ASSERT_TRUE(source.has_value());
  auto records = s3db::testing::RecordsById(*(*source)->GetResource("items").value());
  ASSERT_EQ(records.size(), static_cast<std::size_t>(kRecords));

  // Append: every change id once, over all parts.
  std::map<std::string, std::set<std::uint64_t>> revisions;  // record -> revisions in files
  std::size_t rows = 0;
  std::vector<std::string> parts = PublishedFiles(dir.str() + "/append");
  EXPECT_GE(parts.size(), 3u) << "size rotation did not happen";
  for (const std::string& name : parts) {
    for (const JsonObject& row : ParseJsonl(ReadFileBytes(dir.str() + "/append/" + name))) {
      ++rows;
      std::string change_id(row.at("_change_id").as_string());
      std::string id(row.at("id").as_string());
      std::uint64_t revision = std::stoull(change_id.substr(change_id.rfind(':') + 1));
      EXPECT_TRUE(revisions[id].insert(revision).second)
          << change_id << " twice (in " << name << ")";
    }
  }
  // Every revision 1..last of every record is there: a write that reached the source was
  // logged, even when a kill came between the write and the log (its intent is resolved at the
  // next start).
  std::size_t missing = 0;
  for (const auto& [id, record] : records) {
    std::uint64_t last = record.at("_rev").to_number<std::uint64_t>();
    const auto& seen = revisions[id];
    for (std::uint64_t rev = 1; rev <= last; ++rev) {
      if (seen.count(rev) == 0) {
        ++missing;
        ADD_FAILURE() << id << " revision " << rev << " is in no file";
      }
    }
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_GE(rows, static_cast<std::size_t>(kOperations));

  // Excel, killed during its flushes too: the published workbook holds every change id once.
  EXPECT_EQ(PublishedFiles(dir.str() + "/workbook"), std::vector<std::string>{"items.xlsx"});
  if (auto book = ReadWorkbook(dir.str() + "/workbook/items.xlsx")) {
    ASSERT_EQ(book->count("items"), 1u);
    const auto& sheet = book->at("items");
    ASSERT_FALSE(sheet.empty());
    std::size_t change_column =
        std::find(sheet[0].begin(), sheet[0].end(), Json("_change_id")) - sheet[0].begin();
    ASSERT_LT(change_column, sheet[0].size());
    std::set<std::string> in_workbook;
    for (std::size_t row = 1; row < sheet.size(); ++row) {
      std::string change_id(sheet[row].at(change_column).as_string());
      EXPECT_TRUE(in_workbook.insert(change_id).second) << change_id << " twice in the workbook";
    }
    std::size_t in_jsonl = 0;
    for (const auto& [id, seen] : revisions) {
      in_jsonl += seen.size();
      for (std::uint64_t revision : seen) {
        std::string change_id = "items:" + id + ":" + std::to_string(revision);
        EXPECT_TRUE(in_workbook.count(change_id)) << change_id << " is in no workbook row";
      }
    }
    EXPECT_EQ(in_workbook.size(), in_jsonl);
  }

  // rotateBy null CSV, continued after each kill: one file, one header, every change id once,
  // and its staging pruned (not a copy of every row).
  EXPECT_EQ(PublishedFiles(dir.str() + "/single"), std::vector<std::string>{"items.csv"});
  {
    auto records_in_file = ParseCsv(ReadFileBytes(dir.str() + "/single/items.csv"));
    ASSERT_FALSE(records_in_file.empty());
    const auto& header = records_in_file[0];
    std::size_t change_column =
        std::find(header.begin(), header.end(), "_change_id") - header.begin();
    ASSERT_LT(change_column, header.size());
    std::set<std::string> in_single;
    for (std::size_t row = 1; row < records_in_file.size(); ++row) {
      const std::string& change_id = records_in_file[row].at(change_column);
      EXPECT_TRUE(in_single.insert(change_id).second) << change_id << " twice in items.csv";
    }
    std::size_t in_jsonl = 0;
    for (const auto& [id, seen] : revisions) in_jsonl += seen.size();
    EXPECT_EQ(in_single.size(), in_jsonl);
    std::string staging =
        dir.str() + "/state/replicator/drivers/single/file-staging/items.csv.jsonl";
    if (std::filesystem::exists(staging)) {
      std::string lines = ReadFileBytes(staging);
      EXPECT_LT(static_cast<std::size_t>(std::count(lines.begin(), lines.end(), '\n')),
                in_single.size() / 2)
          << "the staging of the continued file was not pruned";
    }
  }

  // Overwrite: the state file equals the source.
  EXPECT_EQ(PublishedFiles(dir.str() + "/state-file"), std::vector<std::string>{"items.csv"});
  auto csv = ParseCsv(ReadFileBytes(dir.str() + "/state-file/items.csv"));
  ASSERT_EQ(csv.size(), records.size() + 1);
  const auto& header = csv[0];
  auto column = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  ASSERT_LT(column("text"), header.size());
  ASSERT_LT(column("_rev"), header.size());
  std::size_t row_index = 1;
  for (const auto& [id, record] : records) {
    const auto& line = csv[row_index++];
    EXPECT_EQ(line[column("id")], id);
    EXPECT_EQ(line[column("text")], record.at("text").as_string()) << id;
    EXPECT_EQ(line[column("step")], ToJson(record.at("step"))) << id;
    EXPECT_EQ(line[column("_rev")], ToJson(record.at("_rev"))) << id;
  }
  std::cout << "[ crash    ] " << kills << " kills, " << rows << " append rows in " << parts.size()
            << " files\n";
}

}  // namespace
}  // namespace s3db::replicator
