// output: {driver: 's3', ...} of the file drivers: the source database's own store (under the
// plugin prefix), another store by connection string (memory://, file://, the S3 test
// server), complete uploads only, and no secret in any error.
#include <gtest/gtest.h>

#include "drivers/file_drivers_test_util.h"
#include "drivers/files/file_driver.h"
#include "drivers/files/file_output.h"
#include "formats/formats_test_util.h"
#include "replicator/replicator_test_util.h"
#include "s3db/database.h"
#include "s3db/storage.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using namespace file_testing;
using formats::testing::FindParquetReaders;
using formats::testing::RunReader;
using formats::testing::WriteFileBytes;
using s3db::testing::TempDir;
using s3db::testing::UniqueToken;

std::string Body(ObjectStore& store, const std::string& key) {
  auto object = store.Get(key);
  EXPECT_TRUE(object.has_value()) << key << ": " << object.error().ToString();
  return object ? object->body : std::string();
}

TEST(FileS3OutputTest, WithoutConnectionStringFilesGoToTheSourceStoreUnderThePluginPrefix) {
  TempDir dir;
  auto db = s3db::testing::MemoryDatabase(dir.str() + "/db-state");
  ASSERT_TRUE(db);
  DriverContext context = UsersContext(dir.str() + "/state");
  context.source = db.get();
  auto driver = StartedFileDriver(
      "csv", Obj(R"({"output": {"driver": "s3", "path": "exports/csv"}})"), context);
  ASSERT_TRUE(driver);
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "Alice"})")}, 5s));
  const std::string key = "plugin=replicator/files/exports/csv/users_2025-10-20.csv";
  EXPECT_EQ(db->store().Head(key).error().code, ErrorCode::kNotFound);  // only at Flush
  S3DB_ASSERT_OK(driver->Flush());
  auto records = ParseCsv(Body(db->store(), key));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1][0], "u1");
  EXPECT_EQ(records[1][1], "Alice");
  EXPECT_EQ(db->store().Head(key)->size, Body(db->store(), key).size());

  // A second flush uploads the whole file again, with both rows.
  ExpectAllDelivered(driver->Deliver(
      std::vector<DeliveryItem>{Change("u2", 1, Action::kInsert, R"({"name": "Bob"})")}, 5s));
  S3DB_ASSERT_OK(driver->Flush());
  EXPECT_EQ(ParseCsv(Body(db->store(), key)).size(), 3u);
  driver->Stop();

  // Without a source database the error names what to add.
  auto lonely = NewFileDriver("csv", Obj(R"({"output": {"driver": "s3", "path": "x"}})"),
                              UsersContext(dir.str() + "/state2"));
  ASSERT_TRUE(lonely.has_value());
  auto started = (*lonely)->Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_NE(started.error().message.find("output.connectionString"), std::string::npos);
}

TEST(FileS3OutputTest, ConnectionStringMemoryAndFileStoresGetCompleteObjects) {
  TempDir dir;
  std::string bucket = "files-" + UniqueToken();
  DriverContext context = UsersContext(dir.str() + "/state");
  auto jsonl = StartedFileDriver(
      "jsonl",
      Obj(R"({"output": {"driver": "s3", "connectionString": "memory://)" + bucket +
          R"(/exports", "path": "daily"}, "compress": true})"),
      context);
  ASSERT_TRUE(jsonl);
  ExpectAllDelivered(jsonl->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})")}, 5s));
  S3DB_ASSERT_OK(jsonl->Flush());
  auto reader = OpenObjectStore("memory://" + bucket + "/exports");
  ASSERT_TRUE(reader.has_value());
  auto object = (*reader)->Get("daily/users_2025-10-20.jsonl.gz");
  ASSERT_TRUE(object.has_value()) << object.error().ToString();
  ASSERT_GE(object->body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(object->body[0]), 0x1f);  // a gzip stream
  EXPECT_EQ(object->info.metadata.size(), 0u);

  // file:// and overwrite mode: the object is the state file, replaced at each Flush.
  std::string folder = dir.str() + "/bucket";
  auto csv = StartedFileDriver(
      "csv",
      Obj(R"({"output": {"driver": "s3", "connectionString": "file://)" + folder +
          R"("}, "mode": "overwrite"})"),
      UsersContext(dir.str() + "/state-csv"));
  ASSERT_TRUE(csv);
  ExpectAllDelivered(csv->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})"),
                                Change("u2", 1, Action::kInsert, R"({"name": "B"})")},
      5s));
  S3DB_ASSERT_OK(csv->Flush());
  ExpectAllDelivered(csv->Deliver(
      std::vector<DeliveryItem>{Change("u1", 2, Action::kDelete, R"({"name": "A"})")}, 5s));
  S3DB_ASSERT_OK(csv->Flush());
  auto files = OpenObjectStore("file://" + folder);
  ASSERT_TRUE(files.has_value());
  auto records = ParseCsv(Body(**files, "users.csv"));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1][0], "u2");
  EXPECT_EQ((*files)->Head("users.csv").value().size, Body(**files, "users.csv").size());
}

// rotateBy null on a store: after a restart without Stop the object is downloaded and
// continued, and its staging pruned once the checkpoint passed its rows.
TEST(FileS3OutputTest, AnUnrotatedObjectIsContinuedAfterARestart) {
  TempDir dir;
  std::string folder = dir.str() + "/bucket";
  JsonObject config = Obj(R"({"output": {"driver": "s3", "connectionString": "file://)" + folder +
                          R"("}, "rotateBy": null})");
  std::vector<DeliveryItem> first, second;
  for (int i = 0; i < 600; ++i) {
    first.push_back(Change("a" + std::to_string(i), 1, Action::kInsert, R"({"name": "A"})"));
    first.back().sequence = i + 1;
  }
  second.push_back(Change("b", 1, Action::kInsert, R"({"name": "B"})"));
  second.back().sequence = 601;
  auto csv = StartedFileDriver("csv", config, UsersContext(dir.str() + "/state"));
  ASSERT_TRUE(csv);
  ExpectAllDelivered(csv->Deliver(first, 5s));
  S3DB_ASSERT_OK(csv->Flush());
  csv->CheckpointSaved(600);
  EXPECT_EQ(csv->Counters().at("staging_rows_pruned"), 600u);
  ExpectAllDelivered(csv->Deliver(second, 5s));
  S3DB_ASSERT_OK(csv->Flush());
  csv.reset();  // no Stop

  csv = StartedFileDriver("csv", config, UsersContext(dir.str() + "/state"));
  ASSERT_TRUE(csv);
  second.push_back(Change("c", 1, Action::kInsert, R"({"name": "C"})"));
  second.back().sequence = 602;
  ExpectAllDelivered(csv->Deliver(second, 5s));  // "b" replayed
  S3DB_ASSERT_OK(csv->Flush());
  csv->Stop();
  auto files = OpenObjectStore("file://" + folder);
  ASSERT_TRUE(files.has_value());
  auto records = ParseCsv(Body(**files, "users.csv"));
  ASSERT_EQ(records.size(), 603u);  // the header, 600 + 2 rows
  EXPECT_EQ(records[0][0], "id");
  EXPECT_EQ(records[600][0], "a599");
  EXPECT_EQ(records[601][0], "b");
  EXPECT_EQ(records[602][0], "c");
}

TEST(FileS3OutputTest, SecretsNeverAppearInErrors) {
  TempDir dir;
  const std::string secret = "TopSecretValue42";
  // A malformed connection string.
  auto bad = NewFileDriver(
      "csv",
      Obj(R"({"output": {"driver": "s3", "connectionString": "s3://KEY:)" + secret +
          R"(@/no-bucket"}})"),
      UsersContext(dir.str() + "/state"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("output.connectionString"), std::string::npos);
  EXPECT_EQ(bad.error().message.find(secret), std::string::npos) << bad.error().message;

  // A store nobody listens on. The change is of a past day (2025-10-20), so the driver first
  // looks whether that day's file was already finished (a HEAD): that fails at delivery,
  // retryably and pausing the replicator, without the secret.
  auto driver = StartedFileDriver(
      "jsonl",
      Obj(R"({"output": {"driver": "s3", "connectionString": "http://KEY:)" + secret +
          R"(@127.0.0.1:1/bucket/prefix"}})"),
      UsersContext(dir.str() + "/state2"));
  ASSERT_TRUE(driver);
  auto results = driver->Deliver(
      std::vector<DeliveryItem>{Change("u1", 1, Action::kInsert, R"({"name": "A"})")}, 5s);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_TRUE(results[0].pause_replicator);
  EXPECT_EQ(results[0].error.find(secret), std::string::npos) << results[0].error;
  EXPECT_NE(results[0].error.find("HEAD "), std::string::npos) << results[0].error;
  EXPECT_NE(results[0].error.find("users_2025-10-20.jsonl"), std::string::npos)
      << results[0].error;

  // A change of today needs no look-up: it is staged, and the upload fails at Flush, without
  // the secret.
  DeliveryItem today = Change("u2", 1, Action::kInsert, R"({"name": "B"})");
  today.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  ExpectAllDelivered(driver->Deliver(std::vector<DeliveryItem>{today}, 5s));
  auto flushed = driver->Flush();
  ASSERT_FALSE(flushed.has_value());
  std::string message = flushed.error().ToString();
  EXPECT_EQ(message.find(secret), std::string::npos) << message;
  EXPECT_NE(message.find("upload "), std::string::npos) << message;
  // The change stays durable in staging: once the store answers, the next Flush publishes it.
}

TEST(FileS3OutputTest, RealS3ServerReceivesParquetAndStateFiles) {
  S3DB_REQUIRE_SERVER("S3DB_TEST_S3_URL");
  std::string url = s3db::testing::EnvOrEmpty("S3DB_TEST_S3_URL");
  std::string prefix = "file-drivers-" + UniqueToken();
  TempDir dir;
  auto parquet = StartedFileDriver(
      "parquet",
      Obj(R"({"output": {"driver": "s3", "connectionString": ")" + url + R"(", "path": ")" +
          prefix + R"("}, "compression": "gzip"})"),
      UsersContext(dir.str() + "/state"));
  ASSERT_TRUE(parquet);
  auto overwrite = StartedFileDriver(
      "csv",
      Obj(R"({"output": {"driver": "s3", "connectionString": ")" + url + R"(", "path": ")" +
          prefix + R"("}, "mode": "overwrite"})"),
      UsersContext(dir.str() + "/state-csv"));
  ASSERT_TRUE(overwrite);
  std::vector<DeliveryItem> batch{
      Change("u1", 1, Action::kInsert, R"({"name": "Alice", "email": "a@x"})"),
      Change("u2", 1, Action::kInsert, R"({"name": "Bob"})"),
      Change("u1", 2, Action::kUpdate, R"({"name": "Alice 2", "email": "a@x"})")};
  ExpectAllDelivered(parquet->Deliver(batch, 5s));
  ExpectAllDelivered(overwrite->Deliver(batch, 5s));
  S3DB_ASSERT_OK(parquet->Flush());
  S3DB_ASSERT_OK(overwrite->Flush());

  auto store = OpenObjectStore(url);
  ASSERT_TRUE(store.has_value()) << store.error().ToString();
  auto records = ParseCsv(Body(**store, prefix + "/users.csv"));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1], (std::vector<std::string>{"u1", "Alice 2", "a@x"}));
  EXPECT_EQ(records[2][0], "u2");

  std::string bytes = Body(**store, prefix + "/users_2025-10-20.parquet");
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 4), "PAR1");
  EXPECT_EQ(bytes.substr(bytes.size() - 4), "PAR1");
  std::string why_not;
  if (auto readers = FindParquetReaders(why_not)) {
    std::string local = dir.str() + "/copy.parquet";
    WriteFileBytes(local, bytes);
    Json rows = RunReader(*readers, "duckdb-rows", local);
    ASSERT_TRUE(rows.is_array()) << ToJson(rows);
    ASSERT_EQ(rows.as_array().size(), 3u);
    EXPECT_EQ(rows.as_array()[2].as_object().at("_action").as_string(), "update");
  }
  for (const char* key : {"/users.csv", "/users_2025-10-20.parquet"}) {
    (void)(*store)->Delete(prefix + key);
  }
}

}  // namespace
}  // namespace s3db::replicator
