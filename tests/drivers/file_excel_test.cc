// The "excel" driver: the day's workbook named after `filename`, one worksheet per target,
// regenerated at every Flush, rebuilt from staging after a restart, truncated cells counted.
#include <gtest/gtest.h>

#include <filesystem>

#include "drivers/file_drivers_test_util.h"
#include "drivers/files/file_driver.h"
#include "formats/formats_test_util.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using namespace file_testing;
using formats::testing::ReadFileBytes;
using formats::testing::RunReader;
using s3db::testing::TempDir;

class FileExcelTest : public ::testing::Test {
 protected:
  std::unique_ptr<Driver> Make(const std::string& extra) {
    std::string json = R"({"outputPath": ")" + Out() + R"(")" + extra + "}";
    return StartedFileDriver("excel", Obj(json), UsersContext(dir_.str() + "/state"));
  }
  std::string Out() const { return dir_.str() + "/out"; }
  TempDir dir_;
};

// One change mapped to two destinations of one workbook (resources: {users: ['a', 'b']})
// has one change id: each sheet gets its row, and a replay adds to neither.
TEST_F(FileExcelTest, OneChangeToTwoSheetsOfOneWorkbookLandsInBoth) {
  auto driver = Make("");
  ASSERT_TRUE(driver);
  DeliveryItem to_a = Change("u1", 1, Action::kInsert, R"({"name": "Alice"})");
  to_a.target = "a";
  DeliveryItem to_b = to_a;
  to_b.target = "b";
  ExpectAllDelivered(driver->Deliver(std::vector<DeliveryItem>{to_a, to_b}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  ExpectAllDelivered(driver->Deliver(std::vector<DeliveryItem>{to_b, to_a}, 5s));  // replays
  S3DB_ASSERT_OK(driver->Flush());
  auto book = ReadWorkbook(Out() + "/export_2025-10-20.xlsx");
  if (!book) GTEST_SKIP() << "exceljs missing";
  ASSERT_EQ(book->size(), 2u);
  for (const char* sheet : {"a", "b"}) {
    const auto& rows = (*book)[sheet];
    ASSERT_EQ(rows.size(), 2u) << sheet;
    EXPECT_EQ(rows[1][0].as_string(), "u1") << sheet;
    EXPECT_EQ(rows[1][1].as_string(), "Alice") << sheet;
  }
}

TEST_F(FileExcelTest, OneWorksheetPerTargetInTheDaysWorkbookRegeneratedAtEachFlush) {
  auto driver = Make(R"(, "filename": "report.xlsx")");
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{
          Change("u1", 1, Action::kInsert, R"({"name": "Alice", "email": "a@x"})"),
          Change("o1", 1, Action::kInsert, R"({"total": 12.5, "paid": true})",
                 kOct20At2330Utc, "orders")},
      5s));
  std::string file = Out() + "/report_2025-10-20.xlsx";
  EXPECT_FALSE(std::filesystem::exists(file));
  S3DB_ASSERT_OK(driver->Flush());
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_EQ(ReadFileBytes(file).substr(0, 2), "PK");  // a zip archive

  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u2", 1, Action::kInsert, R"({"name": "=1+1"})")}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  auto book = ReadWorkbook(file);
  if (!book) GTEST_SKIP() << "exceljs missing; checked the zip magic only";
  ASSERT_EQ(book->size(), 2u);
  const auto& users = (*book)["users"];
  ASSERT_EQ(users.size(), 3u);
  EXPECT_EQ(users[0][0].as_string(), "id");
  EXPECT_EQ(users[0][1].as_string(), "name");
  EXPECT_EQ(users[1][0].as_string(), "u1");
  EXPECT_EQ(users[1][1].as_string(), "Alice");
  EXPECT_EQ(users[2][1].as_string(), "=1+1");  // text, never a formula
  const auto& orders = (*book)["orders"];
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0][0].as_string(), "id");
  bool found_total = false;
  for (std::size_t c = 0; c < orders[0].size(); ++c) {
    if (orders[0][c].is_string() && orders[0][c].as_string() == "total") {
      EXPECT_EQ(orders[1][c].to_number<double>(), 12.5);
      found_total = true;
    }
  }
  EXPECT_TRUE(found_total);
}

TEST_F(FileExcelTest, RestartRebuildsTheWorkbookAndTruncatedCellsAreCounted) {
  std::string long_text(40000, 'x');
  {
    auto first = Make(R"(, "rotateBy": null)");
    ASSERT_TRUE(first);
    ExpectAllDelivered(first->Deliver(
        std::vector<DeliveryItem>{
            Change("a", 1, Action::kInsert, R"({"name": "A"})"),
            Change("b", 1, Action::kInsert, R"({"name": ")" + long_text + R"("})")},
        5s));
    S3DB_ASSERT_OK(first->Flush());
    EXPECT_EQ(first->Counters().at("truncated_cells"), 1u);
  }
  auto second = Make(R"(, "rotateBy": null)");
  ASSERT_TRUE(second);
  ExpectAllDelivered(second->Deliver(
      std::vector<DeliveryItem>{Change("b", 1, Action::kInsert, R"({"name": "B"})"),  // replay
                                Change("c", 1, Action::kInsert, R"({"name": "C"})")},
      5s));
  S3DB_ASSERT_OK(second->Flush());
  EXPECT_EQ(second->Counters().at("truncated_cells"), 1u);
  auto book = ReadWorkbook(Out() + "/export.xlsx");
  if (!book) GTEST_SKIP() << "exceljs missing";
  const auto& users = (*book)["users"];
  ASSERT_EQ(users.size(), 4u);
  EXPECT_EQ(users[1][0].as_string(), "a");
  EXPECT_EQ(users[2][0].as_string(), "b");
  EXPECT_LT(users[2][1].as_string().size(), long_text.size());
  EXPECT_EQ(users[3][0].as_string(), "c");
}

TEST_F(FileExcelTest, OverwriteModeKeepsTheStatePerSheet) {
  auto driver = Make(R"(, "mode": "overwrite", "filename": "state.xlsx")");
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})"),
                                Change("u2", 1, Action::kInsert, R"({"name": "B"})"),
                                Change("u1", 2, Action::kDelete, R"({"name": "A"})")},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  auto book = ReadWorkbook(Out() + "/state.xlsx");
  if (!book) GTEST_SKIP() << "exceljs missing";
  const auto& users = (*book)["users"];
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[1][0].as_string(), "u2");
}

TEST_F(FileExcelTest, BadOptionsNameTheOption) {
  for (const char* bad : {R"(, "filename": "a/b.xlsx")", R"(, "filename": 5)",
                          R"(, "rotateBy": "size")", R"(, "freezeHeaders": "yes")"}) {
    std::string json = R"({"outputPath": ")" + Out() + R"(")" + bad + "}";
    auto driver = NewFileDriver("excel", Obj(json), UsersContext(dir_.str() + "/state"));
    ASSERT_FALSE(driver.has_value()) << bad;
    std::string option = std::string(bad).substr(3, std::string(bad).find('"', 3) - 3);
    EXPECT_NE(driver.error().message.find(option), std::string::npos)
        << driver.error().message;
  }
}

TEST(FileExcelPluginTest, TruncatedCellsAppearInTheReplicatorStats) {
  TempDir dir;
  auto db = s3db::testing::MemoryDatabase(dir.str() + "/state");
  ASSERT_TRUE(db);
  ResourceDefinition definition;
  definition.name = "notes";
  definition.attributes = Obj(R"({"text": "string"})");
  auto notes = db->CreateResource(std::move(definition));
  ASSERT_TRUE(notes.has_value()) << notes.error().ToString();
  auto options = s3db::testing::FastOptions();
  ReplicatorConfig config;
  config.id = "book";
  config.driver = "excel";
  config.resources.Add("notes");
  config.config["outputPath"] = dir.str() + "/exports";
  config.config["filename"] = "notes.xlsx";
  options.replicators.push_back(std::move(config));
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK(db->UsePlugin(plugin));

  JsonObject record;
  record["id"] = "n1";
  record["text"] = std::string(33000, 'y');
  ASSERT_TRUE((*notes)->Insert(record));
  record["id"] = "n2";
  record["text"] = "short";
  ASSERT_TRUE((*notes)->Insert(record));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  auto stats = plugin->GetReplicatorStats("book");
  ASSERT_TRUE(stats.has_value()) << stats.error().ToString();
  EXPECT_EQ(stats->delivered, 2u);
  ASSERT_EQ(stats->driver_counters.count("truncated_cells"), 1u);
  EXPECT_EQ(stats->driver_counters.at("truncated_cells"), 1u);
  (void)db->Close();
}

}  // namespace
}  // namespace s3db::replicator
