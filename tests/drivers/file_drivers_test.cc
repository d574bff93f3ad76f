// The csv, jsonl and parquet drivers: file names, rows, options, publishing at Flush, restart
// from staging, and the spec's multi-format example through the ReplicatorPlugin.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <set>
#include <tuple>

#include "drivers/files/file_driver.h"
#include "drivers/file_drivers_test_util.h"
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

class FileDriverTest : public ::testing::Test {
 protected:
  DriverContext Context() { return UsersContext(dir_.str() + "/state"); }

  std::unique_ptr<Driver> Make(std::string_view format, JsonObject config) {
    return StartedFileDriver(format, config, Context());
  }

  std::string Out() const { return dir_.str() + "/out"; }

  TempDir dir_;
};

TEST_F(FileDriverTest, CsvAppendModeWritesOneRowPerChangeWithMetaColumns) {
  auto driver = Make("csv", Obj(R"({"output": {"driver": "filesystem", "path": ")" + Out() +
                                R"("}})"));
  ASSERT_TRUE(driver);
  std::vector<DeliveryItem> batch{
      Change("u1", 1, Action::kInsert, R"({"id": "u1", "name": "Alice", "extra": 7})"),
      Change("u1", 2, Action::kUpdate, R"({"id": "u1", "name": "Alice, B", "email": "a@x"})"),
      Change("u1", 3, Action::kDelete, R"({"id": "u1", "name": "Alice, B"})")};
  ExpectAllDelivered(driver->Deliver(batch, 5s));
  // Nothing is published before Flush.
  EXPECT_FALSE(std::filesystem::exists(Out() + "/users_2025-10-20.csv"));
  S3DB_ASSERT_OK(driver->Flush());

  auto records = ParseCsv(ReadFileBytes(Out() + "/users_2025-10-20.csv"));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0], (std::vector<std::string>{"id", "name", "email", "_action",
                                                   "_changed_at", "_change_id", "extra"}));
  EXPECT_EQ(records[1], (std::vector<std::string>{"u1", "Alice", "", "insert",
                                                   "2025-10-20T23:30:00.000Z", "users:u1:1",
                                                   "7"}));
  EXPECT_EQ(records[2][1], "Alice, B");
  EXPECT_EQ(records[2][2], "a@x");
  EXPECT_EQ(records[2][3], "update");
  EXPECT_EQ(records[3][3], "delete");
  EXPECT_EQ(records[3][5], "users:u1:3");
  driver->Stop();
  EXPECT_EQ(ParseCsv(ReadFileBytes(Out() + "/users_2025-10-20.csv")).size(), 4u);
}

TEST_F(FileDriverTest, TimezoneOffsetDecidesTheDayOfTheFile) {
  auto driver = Make("jsonl", Obj(R"({"outputPath": ")" + Out() + R"(", "timezone": "+02:00"})"));
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})")}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  // 23:30 UTC is 01:30 the next day at +02:00; _changed_at stays in UTC.
  auto rows = ParseJsonl(ReadFileBytes(Out() + "/users_2025-10-21.jsonl"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("id").as_string(), "u1");  // the record id is added when missing
  EXPECT_EQ(rows[0].at("_changed_at").as_string(), "2025-10-20T23:30:00.000Z");
  EXPECT_FALSE(std::filesystem::exists(Out() + "/users_2025-10-20.jsonl"));
}

TEST_F(FileDriverTest, ANamedTimezoneDecidesTheDayOfTheFile) {
  auto driver =
      Make("csv", Obj(R"({"outputPath": ")" + Out() + R"(", "timezone": "Asia/Tokyo"})"));
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})")}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  // 23:30 UTC is 08:30 the next day in Tokyo (+09:00).
  EXPECT_TRUE(std::filesystem::exists(Out() + "/users_2025-10-21.csv"));
  EXPECT_FALSE(std::filesystem::exists(Out() + "/users_2025-10-20.csv"));
}

TEST_F(FileDriverTest, RotateByNullWritesOneFilePerTargetAndChangesSplitByDay) {
  auto driver = Make("jsonl", Obj(R"({"outputPath": ")" + Out() + R"(", "rotateBy": null})"));
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{
          Change("u1", 1, Action::kInsert, R"({"name": "A"})"),
          Change("u2", 1, Action::kInsert, R"({"name": "B"})", kOct20At2330Utc + 3600000)},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  EXPECT_EQ(ParseJsonl(ReadFileBytes(Out() + "/users.jsonl")).size(), 2u);

  auto dated = Make("csv", Obj(R"({"outputPath": ")" + Out() + R"("})"));
  ASSERT_TRUE(dated);
  ExpectAllDelivered(dated->Deliver(
      std::vector<DeliveryItem>{
          Change("u1", 1, Action::kInsert, R"({"name": "A"})"),
          Change("u2", 1, Action::kInsert, R"({"name": "B"})", kOct20At2330Utc + 3600000)},
      5s));
  S3DB_ASSERT_OK(dated->Flush());
  EXPECT_EQ(ParseCsv(ReadFileBytes(Out() + "/users_2025-10-20.csv")).size(), 2u);
  EXPECT_EQ(ParseCsv(ReadFileBytes(Out() + "/users_2025-10-21.csv")).size(), 2u);
}

TEST_F(FileDriverTest, RestartRebuildsTheFileFromStagingWithoutDuplicatingReplayedChanges) {
  std::string config = R"({"outputPath": ")" + Out() + R"("})";
  {
    auto first = Make("jsonl", Obj(config));
    ASSERT_TRUE(first);
    ExpectAllDelivered(first->Deliver(
        std::vector<DeliveryItem>{Change("a", 1, Action::kInsert, R"({"name": "A"})"),
                                  Change("b", 1, Action::kInsert, R"({"name": "B"})")},
        5s));
    S3DB_ASSERT_OK(first->Flush());
    // Crash: no Stop, and the checkpoint did not move past "b".
  }
  auto second = Make("jsonl", Obj(config));
  ASSERT_TRUE(second);
  ExpectAllDelivered(second->Deliver(
      std::vector<DeliveryItem>{Change("b", 1, Action::kInsert, R"({"name": "B"})"),
                                Change("c", 1, Action::kInsert, R"({"name": "C"})")},
      5s));
  S3DB_ASSERT_OK(second->Flush());
  auto rows = ParseJsonl(ReadFileBytes(Out() + "/users_2025-10-20.jsonl"));
  std::vector<std::string> ids;
  for (const auto& row : rows) ids.emplace_back(row.at("_change_id").as_string());
  EXPECT_EQ(ids, (std::vector<std::string>{"users:a:1", "users:b:1", "users:c:1"}));
}

TEST_F(FileDriverTest, IdleFilesOfPastDaysAreClosedAndALateChangeReopensThem) {
  for (const char* format : {"jsonl", "csv"}) {
    SCOPED_TRACE(format);
    std::string folder = Out() + "/" + format;
    auto driver = Make(format, Obj(R"({"outputPath": ")" + folder +
                                   R"(", "closeAfterIdleMs": 0, "rotateBy": "size",
                                      "rotateSize": 1})"));
    ASSERT_TRUE(driver);
    auto ids_in = [&](const std::string& name) {
      std::vector<std::string> ids;
      if (std::string(format) == "jsonl") {
        for (const auto& row : ParseJsonl(ReadFileBytes(folder + "/" + name))) {
          ids.emplace_back(row.at("_change_id").as_string());
        }
      } else {
        auto rows = ParseCsv(ReadFileBytes(folder + "/" + name));
        if (rows.empty()) return ids;
        auto column = std::find(rows[0].begin(), rows[0].end(), "_change_id") - rows[0].begin();
        for (std::size_t row = 1; row < rows.size(); ++row) ids.push_back(rows[row].at(column));
      }
      return ids;
    };
    // The change's day (2025-10-20) is not today: once flushed and idle, its file is closed.
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{Change("a", 1, Action::kInsert, R"({"name": "A"})")}, 5s));
    S3DB_ASSERT_OK(driver->Flush());
    EXPECT_EQ(driver->Counters().at("files_open"), 0u);
    EXPECT_EQ(driver->Counters().at("files_closed"), 1u);
    std::string ext = std::string(".") + format;
    EXPECT_EQ(ids_in("users_2025-10-20" + ext), (std::vector<std::string>{"users:a:1"}));
    // A late change of that day, and a replay of the first: reopened from staging, the first
    // change stays once, and the size rotation goes on where it was.
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{Change("a", 1, Action::kInsert, R"({"name": "A"})"),
                                  Change("b", 1, Action::kInsert, R"({"name": "B"})")},
        5s));
    S3DB_ASSERT_OK(driver->Flush());
    EXPECT_EQ(driver->Counters().at("files_closed"), 2u);
    EXPECT_EQ(ids_in("users_2025-10-20" + ext), (std::vector<std::string>{"users:a:1"}));
    EXPECT_EQ(ids_in("users_2025-10-20_0002" + ext), (std::vector<std::string>{"users:b:1"}));
    driver->Stop();
  }
}

TEST_F(FileDriverTest, SizeRotationStartsNumberedPartsOnceAFlushedFileReachesRotateSize) {
  std::string config =
      R"({"outputPath": ")" + Out() + R"(", "rotateBy": "size", "rotateSize": 1})";
  auto driver = Make("jsonl", Obj(config));
  ASSERT_TRUE(driver);
  for (const char* id : {"a", "b"}) {
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{Change(id, 1, Action::kInsert, R"({"name": "N"})")}, 5s));
    S3DB_ASSERT_OK(driver->Flush());
  }
  // Restart: writing continues in the last part, then rotates again.
  driver = Make("jsonl", Obj(config));
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("b", 1, Action::kInsert, R"({"name": "N"})"),
                                Change("c", 1, Action::kInsert, R"({"name": "N"})")},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  auto ids_in = [&](const std::string& name) {
    std::vector<std::string> ids;
    for (const auto& row : ParseJsonl(ReadFileBytes(Out() + "/" + name))) {
      ids.emplace_back(row.at("id").as_string());
    }
    return ids;
  };
  EXPECT_EQ(ids_in("users_2025-10-20.jsonl"), std::vector<std::string>{"a"});
  EXPECT_EQ(ids_in("users_2025-10-20_0002.jsonl"), std::vector<std::string>{"b"});
  EXPECT_EQ(ids_in("users_2025-10-20_0003.jsonl"), std::vector<std::string>{"c"});
}

TEST_F(FileDriverTest, FormatOptionsPassThroughToTheWriter) {
  auto driver = Make("csv", Obj(R"({"outputPath": ")" + Out() +
                                R"(", "delimiter": ";", "bom": true, "escapeFormulas": true})"));
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"j({"name": "=SUM(A1)"})j")},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  std::string text = ReadFileBytes(Out() + "/users_2025-10-20.csv");
  EXPECT_EQ(text.substr(0, 3), "\xEF\xBB\xBF");
  EXPECT_NE(text.find("id;name;email;_action"), std::string::npos) << text;
  EXPECT_NE(text.find("u1;'=SUM(A1);"), std::string::npos) << text;

  auto gz = Make("jsonl", Obj(R"({"outputPath": ")" + Out() + R"(", "compress": true})"));
  ASSERT_TRUE(gz);
  ExpectAllDelivered(gz->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})")}, 5s));
  S3DB_ASSERT_OK(gz->Flush());
  std::string compressed = ReadFileBytes(Out() + "/users_2025-10-20.jsonl.gz");
  ASSERT_GE(compressed.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(compressed[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(compressed[1]), 0x8b);
}

TEST_F(FileDriverTest, InvalidOrUnsupportedOptionsFailNamingTheOption) {
  std::string out = Out();
  auto message = [&](std::string_view format, const std::string& json) {
    auto driver = NewFileDriver(format, Obj(json), Context());
    EXPECT_FALSE(driver.has_value()) << json;
    return driver ? std::string() : driver.error().message;
  };
  EXPECT_NE(message("csv", "{}").find("output"), std::string::npos);
  EXPECT_NE(message("csv", R"({"output": {"driver": "ftp", "path": "x"}})").find("output.driver"),
            std::string::npos);
  EXPECT_NE(message("csv", R"({"outputPath": "x", "mode": "replace"})").find("mode"),
            std::string::npos);
  EXPECT_NE(message("csv", R"({"outputPath": "x", "rotateBy": "week"})").find("rotateBy"),
            std::string::npos);
  EXPECT_NE(message("csv", R"({"outputPath": "x", "timezone": "Mars/Base"})").find("timezone"),
            std::string::npos);
  EXPECT_NE(message("csv", R"({"outputPath": "x", "delimiter": "#"})").find("delimiter"),
            std::string::npos);
  EXPECT_NE(message("parquet", R"({"outputPath": "x", "compression": "rar"})")
                .find("compression"),
            std::string::npos);
}

TEST_F(FileDriverTest, MisspeltOptionsAreRefusedWithTheClosestKnownKey) {
  // Before: every unknown key was ignored, so `mdoe: overwrite` wrote an append file.
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"csv", R"({"outputPath": "x", "mdoe": "overwrite"})", "mdoe: unknown option"},
      {"csv", R"({"outputPath": "x", "delimeter": ";"})", "(did you mean 'delimiter'?)"},
      {"csv", R"({"outputPath": "x", "rotate": "date"})", "(did you mean 'rotateBy'?)"},
      {"jsonl", R"({"outputPath": "x", "compres": true})", "(did you mean 'compress'?)"},
      {"parquet", R"({"outputPath": "x", "compresion": "zstd"})", "(did you mean 'compression'?)"},
      {"parquet", R"({"outputPath": "x", "rowGroupSiz": 10})", "(did you mean 'rowGroupSize'?)"},
      {"excel", R"({"outputPath": "x", "freezeHeader": true})", "(did you mean 'freezeHeaders'?)"},
      {"csv", R"({"output": {"driver": "s3", "conectionString": "memory://b"}})",
       "output.conectionString: unknown option (known: driver, path, connectionString) (did you "
       "mean 'connectionString'?)"},
      // A key of another format is unknown too.
      {"csv", R"({"outputPath": "x", "compression": "zstd"})", "compression: unknown option"},
  };
  for (const auto& [format, json, expected] : cases) {
    auto driver = NewFileDriver(format, Obj(json), Context());
    ASSERT_FALSE(driver.has_value()) << format << " " << json;
    EXPECT_NE(driver.error().message.find(expected), std::string::npos)
        << format << " " << json << ": " << driver.error().message;
  }
  // Every documented key is known.
  const std::vector<std::pair<std::string, std::string>> accepted = {
      {"csv", R"({"outputPath": "x", "mode": "append", "rotateBy": "date", "rotateSize": 1000,
                  "flushIntervalMs": 10, "closeAfterIdleMs": 10, "timezone": "UTC",
                  "delimiter": ";", "bom": true, "escapeFormulas": true})"},
      {"jsonl", R"({"outputPath": "x", "compress": true, "gzipLevel": 5})"},
      {"parquet", R"({"outputPath": "x", "compression": "zstd", "rowGroupSize": 10,
                      "dictionary": false})"},
      {"excel", R"({"outputPath": "x", "filename": "r.xlsx", "freezeHeaders": true,
                    "autoFilter": false})"},
  };
  for (const auto& [format, json] : accepted) {
    JsonObject config = Obj(json);
    config["outputPath"] = Out();
    auto driver = NewFileDriver(format, config, Context());
    EXPECT_TRUE(driver.has_value()) << format << " " << json << ": " << driver.error().message;
  }
}

std::string UtcDayNow() {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  ::gmtime_r(&now, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &parts);
  return text;
}

TEST(FileDriversPluginTest, MultiFormatExportOneInsertCreatesFourFiles) {
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  ASSERT_TRUE(db);
  ResourceDefinition definition;
  definition.name = "users";
  definition.attributes = Obj(R"({"name": "string|required", "email": "email"})");
  auto users = db->CreateResource(std::move(definition));
  ASSERT_TRUE(users.has_value()) << users.error().ToString();

  RegisterFileDrivers();  // also done by the plugin's built-in registration
  std::string exports = dir.str() + "/exports";
  auto options = FastOptions();
  for (const char* driver : {"csv", "jsonl", "parquet", "excel"}) {
    ReplicatorConfig config;
    config.driver = driver;
    config.resources = *ResourceMapping::FromJson(Json(JsonArray{"users"}));
    config.config["outputPath"] = exports;
    if (std::string(driver) == "excel") config.config["filename"] = "report.xlsx";
    options.replicators.push_back(std::move(config));
  }
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK(db->UsePlugin(plugin));

  std::string day_before = UtcDayNow();
  ASSERT_TRUE((*users)->Insert(
      Obj(R"({"id": "u1", "name": "Alice", "email": "alice@example.com"})")));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  std::string day = UtcDayNow();
  if (day != day_before && std::filesystem::exists(exports + "/users_" + day_before + ".csv")) {
    day = day_before;
  }
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(exports)) {
    std::string name = entry.path().filename().string();
    // "<file>.tmp" is the open writer's staging copy; readers use the published files.
    if (!name.ends_with(".tmp")) names.insert(name);
  }
  EXPECT_EQ(names, (std::set<std::string>{"users_" + day + ".csv", "users_" + day + ".jsonl",
                                          "users_" + day + ".parquet",
                                          "report_" + day + ".xlsx"}));
  EXPECT_EQ(ReadFileBytes(exports + "/report_" + day + ".xlsx").substr(0, 2), "PK");

  auto csv = ParseCsv(ReadFileBytes(exports + "/users_" + day + ".csv"));
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[1][0], "u1");
  EXPECT_EQ(csv[1][1], "Alice");
  EXPECT_EQ(csv[1][2], "alice@example.com");
  EXPECT_EQ(csv[1][3], "insert");

  auto jsonl = ParseJsonl(ReadFileBytes(exports + "/users_" + day + ".jsonl"));
  ASSERT_EQ(jsonl.size(), 1u);
  EXPECT_EQ(jsonl[0].at("name").as_string(), "Alice");
  EXPECT_EQ(jsonl[0].at("_action").as_string(), "insert");
  EXPECT_EQ(std::string(jsonl[0].at("_change_id").as_string()).substr(0, 9), "users:u1:");

  if (auto book = ReadWorkbook(exports + "/report_" + day + ".xlsx")) {
    ASSERT_EQ(book->size(), 1u);
    const auto& sheet = (*book)["users"];
    ASSERT_EQ(sheet.size(), 2u);
    EXPECT_EQ(sheet[0][1].as_string(), "name");
    EXPECT_EQ(sheet[1][0].as_string(), "u1");
    EXPECT_EQ(sheet[1][1].as_string(), "Alice");
    EXPECT_EQ(sheet[1][2].as_string(), "alice@example.com");
    EXPECT_EQ(sheet[1][3].as_string(), "insert");
  }

  std::string parquet = ReadFileBytes(exports + "/users_" + day + ".parquet");
  ASSERT_GE(parquet.size(), 8u);
  EXPECT_EQ(parquet.substr(0, 4), "PAR1");
  EXPECT_EQ(parquet.substr(parquet.size() - 4), "PAR1");
  std::string why_not;
  auto readers = FindParquetReaders(why_not);
  if (!readers) {
    if (RunningInCi()) FAIL() << "parquet readers missing: " << why_not;
    GTEST_SKIP() << "parquet readers missing (" << why_not << "); checked magic bytes only";
  }
  Json rows = RunReader(*readers, "duckdb-rows", exports + "/users_" + day + ".parquet");
  ASSERT_TRUE(rows.is_array()) << ToJson(rows);
  ASSERT_EQ(rows.as_array().size(), 1u);
  const JsonObject& row = rows.as_array()[0].as_object();
  EXPECT_EQ(row.at("id").as_string(), "u1");
  EXPECT_EQ(row.at("name").as_string(), "Alice");
  EXPECT_EQ(row.at("email").as_string(), "alice@example.com");
  EXPECT_EQ(row.at("_action").as_string(), "insert");
  (void)db->Close();
}

}  // namespace
}  // namespace s3db::replicator
