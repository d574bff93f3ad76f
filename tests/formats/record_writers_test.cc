#include "formats/record_writers.h"

#include <gtest/gtest.h>

#include "formats/byte_sink.h"

namespace s3db::formats {
namespace {

JsonObject Config(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed) << json;
  return parsed ? *parsed : JsonObject();
}

TEST(RecordWriters, MakesEachFormatFromItsConfig) {
  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  auto format = ParseFileFormat("csv");
  ASSERT_TRUE(format);
  auto writer = MakeRecordWriter(*format, ColumnSet(),
                                 Config(R"({"delimiter":";","mode":"append"})"), std::move(sink));
  ASSERT_TRUE(writer) << writer.error().message;
  ASSERT_TRUE((*writer)->Add(Config(R"({"a":1,"b":"x;y"})")));
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_EQ(memory->Snapshot(), "a;b\r\n1;\"x;y\"\r\n");

  auto parquet_sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* parquet_memory = parquet_sink.get();
  auto parquet = MakeRecordWriter(FileFormat::kParquet, ColumnSet(),
                                  Config(R"({"compression":"gzip","rowGroupSize":5000})"),
                                  std::move(parquet_sink));
  ASSERT_TRUE(parquet) << parquet.error().message;
  ASSERT_TRUE((*parquet)->Add(Config(R"({"a":1})")));
  ASSERT_TRUE((*parquet)->Finish());
  const std::string& bytes = parquet_memory->Snapshot();
  ASSERT_GT(bytes.size(), 12u);
  EXPECT_EQ(bytes.substr(0, 4), "PAR1");
  EXPECT_EQ(bytes.substr(bytes.size() - 4), "PAR1");
}

TEST(RecordWriters, NamesBadFormatsAndOptions) {
  auto format = ParseFileFormat("xml");
  ASSERT_FALSE(format);
  EXPECT_NE(format.error().message.find("xml"), std::string::npos);
  auto writer = MakeRecordWriter(FileFormat::kJsonl, ColumnSet(), Config(R"({"compress":1})"),
                                 std::make_unique<MemoryByteSink>());
  ASSERT_FALSE(writer);
  EXPECT_NE(writer.error().message.find("`compress`"), std::string::npos);
  EXPECT_EQ(FileExtension(FileFormat::kJsonl, Config(R"({"compress":true})")), ".jsonl.gz");
  EXPECT_EQ(FileExtension(FileFormat::kParquet, JsonObject()), ".parquet");
}

}  // namespace
}  // namespace s3db::formats
