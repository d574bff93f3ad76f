// mode: 'overwrite' of the file drivers: the file holds the current state (one row per live
// record), rebuilt at every Flush from a durable log that survives restarts.
#include <gtest/gtest.h>

#include <filesystem>

#include "drivers/file_drivers_test_util.h"
#include "drivers/files/file_driver.h"
#include "formats/formats_test_util.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using namespace file_testing;
using formats::testing::FindParquetReaders;
using formats::testing::ReadFileBytes;
using formats::testing::RunReader;
using s3db::testing::TempDir;

class FileOverwriteTest : public ::testing::Test {
 protected:
  std::unique_ptr<Driver> Make(std::string_view format, const std::string& extra = "") {
    std::string json = R"({"outputPath": ")" + Out() + R"(", "mode": "overwrite")" + extra + "}";
    return StartedFileDriver(format, Obj(json), UsersContext(dir_.str() + "/state"));
  }
  std::string Out() const { return dir_.str() + "/out"; }

  TempDir dir_;
};

TEST_F(FileOverwriteTest, CsvHoldsOneRowPerLiveRecordAfterUpdatesAndDeletes) {
  auto driver = Make("csv");
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{
          Change("u2", 1, Action::kInsert, R"({"id": "u2", "name": "Bob"})"),
          Change("u1", 1, Action::kInsert, R"({"id": "u1", "name": "Alice"})"),
          Change("u1", 2, Action::kUpdate, R"({"id": "u1", "name": "Alice B", "email": "a@x"})"),
          Change("u3", 1, Action::kInsert, R"({"id": "u3", "name": "Carol"})"),
          Change("u2", 2, Action::kDelete, R"({"id": "u2", "name": "Bob"})")},
      5s));
  EXPECT_FALSE(std::filesystem::exists(Out() + "/users.csv"));  // nothing before Flush
  S3DB_ASSERT_OK(driver->Flush());

  auto records = ParseCsv(ReadFileBytes(Out() + "/users.csv"));
  ASSERT_EQ(records.size(), 3u);
  // No meta columns: the file is the state, ordered by id.
  EXPECT_EQ(records[0], (std::vector<std::string>{"id", "name", "email"}));
  EXPECT_EQ(records[1], (std::vector<std::string>{"u1", "Alice B", "a@x"}));
  EXPECT_EQ(records[2], (std::vector<std::string>{"u3", "Carol", ""}));

  // A replayed older change does not bring an old state back (not even after the delete).
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "Alice"})"),
                                Change("u2", 1, Action::kInsert, R"({"name": "Bob"})")},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  records = ParseCsv(ReadFileBytes(Out() + "/users.csv"));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1][1], "Alice B");
  EXPECT_EQ(records[2][0], "u3");
}

TEST_F(FileOverwriteTest, RestartRepublishesTheStateAndKeepsRevisionGuards) {
  {
    auto first = Make("jsonl");
    ASSERT_TRUE(first);
    ExpectAllDelivered(first->Deliver(
        std::vector<DeliveryItem>{Change("a", 1, Action::kInsert, R"({"name": "A"})"),
                                  Change("b", 1, Action::kInsert, R"({"name": "B"})"),
                                  Change("b", 2, Action::kDelete, R"({"name": "B"})")},
        5s));
    S3DB_ASSERT_OK(first->Flush());
    // Crash: no Stop. The published file is lost too (e.g. the upload never happened).
  }
  std::filesystem::remove(Out() + "/users.jsonl");
  auto second = Make("jsonl");
  ASSERT_TRUE(second);
  // Start rebuilt the file from the durable log.
  EXPECT_EQ(Column(ParseJsonl(ReadFileBytes(Out() + "/users.jsonl")), "id"),
            std::vector<std::string>{"a"});
  ExpectAllDelivered(second->Deliver(
      std::vector<DeliveryItem>{Change("b", 1, Action::kInsert, R"({"name": "B"})"),  // replay
                                Change("a", 2, Action::kUpdate, R"({"name": "A2"})"),
                                Change("c", 1, Action::kInsert, R"({"name": "C"})")},
      5s));
  S3DB_ASSERT_OK(second->Flush());
  auto rows = ParseJsonl(ReadFileBytes(Out() + "/users.jsonl"));
  EXPECT_EQ(Column(rows, "id"), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Column(rows, "name"), (std::vector<std::string>{"A2", "C"}));
}

TEST_F(FileOverwriteTest, ManyUpdatesCompactTheLogAndTheFileStaysTheState) {
  auto driver = Make("jsonl");
  ASSERT_TRUE(driver);
  for (std::uint64_t rev = 1; rev <= 300; ++rev) {
    ExpectAllDelivered(driver->Deliver(
        std::vector<DeliveryItem>{Change("a", rev, Action::kUpdate,
                                         R"({"n": )" + std::to_string(rev) + "}")},
        5s));
    if (rev % 50 == 0) S3DB_ASSERT_OK(driver->Flush());
  }
  auto rows = ParseJsonl(ReadFileBytes(Out() + "/users.jsonl"));
  EXPECT_EQ(Column(rows, "n"), std::vector<std::string>{"300"});
  // The log was compacted: far fewer lines than changes.
  std::string log = ReadFileBytes(dir_.str() + "/state/file-state/users.jsonl.jsonl");
  EXPECT_LT(std::count(log.begin(), log.end(), '\n'), 100);
  driver.reset();
  auto again = Make("jsonl");
  ASSERT_TRUE(again);
  EXPECT_EQ(Column(ParseJsonl(ReadFileBytes(Out() + "/users.jsonl")), "n"),
            std::vector<std::string>{"300"});
}

TEST_F(FileOverwriteTest, ParquetStateFileIsReadBackByDuckDb) {
  auto driver = Make("parquet", R"(, "compression": "zstd")");
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{
          Change("u1", 1, Action::kInsert, R"({"name": "Ünïcødé 🎉", "age": 30})"),
          Change("u2", 1, Action::kInsert, R"({"name": "Bob", "age": 9007199254740993})"),
          Change("u1", 2, Action::kUpdate, R"({"name": "Alice", "age": 31})")},
      5s));
  S3DB_ASSERT_OK(driver->Flush());
  std::string file = Out() + "/users.parquet";
  std::string bytes = ReadFileBytes(file);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 4), "PAR1");
  std::string why_not;
  auto readers = FindParquetReaders(why_not);
  if (!readers) {
    if (s3db::testing::InCi()) FAIL() << why_not;
    GTEST_SKIP() << "parquet readers missing (" << why_not << ")";
  }
  Json rows = RunReader(*readers, "duckdb-rows", file);
  ASSERT_TRUE(rows.is_array()) << ToJson(rows);
  ASSERT_EQ(rows.as_array().size(), 2u);
  EXPECT_EQ(rows.as_array()[0].as_object().at("name").as_string(), "Alice");
  // DuckDB's JSON rows give BIGINT as text: every digit must be there either way.
  const Json& age = rows.as_array()[1].as_object().at("age");
  EXPECT_EQ(age.is_string() ? std::string(age.as_string()) : ToJson(age), "9007199254740993");
}

TEST_F(FileOverwriteTest, ARowTheFormatCannotHoldIsAPermanentFailure) {
  auto driver = Make("parquet", R"(, "rowGroupSize": 1)");
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("a", 1, Action::kInsert, R"({"n": 1})")}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  auto results = driver->Deliver(
      std::vector<DeliveryItem>{Change("b", 1, Action::kInsert, R"({"n": 2})"),
                                Change("c", 1, Action::kInsert, R"({"n": 2.5})")},
      5s);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(results[1].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[1].reason, "invalid_value");
  EXPECT_NE(results[1].error.find("'n'"), std::string::npos) << results[1].error;
  S3DB_ASSERT_OK(driver->Flush());
}

TEST_F(FileOverwriteTest, RotationCannotBeCombinedWithOverwrite) {
  for (const char* rotate : {R"("date")", R"("size")"}) {
    std::string json = R"({"outputPath": ")" + Out() + R"(", "mode": "overwrite", "rotateBy": )" +
                       rotate + "}";
    auto driver = NewFileDriver("csv", Obj(json), UsersContext(dir_.str() + "/state"));
    ASSERT_FALSE(driver.has_value());
    EXPECT_NE(driver.error().message.find("rotateBy"), std::string::npos)
        << driver.error().message;
  }
  auto allowed = NewFileDriver(
      "csv", Obj(R"({"outputPath": "x", "mode": "overwrite", "rotateBy": null})"),
      UsersContext(dir_.str() + "/state"));
  EXPECT_TRUE(allowed.has_value());
}

}  // namespace
}  // namespace s3db::replicator
