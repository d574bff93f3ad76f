#include "formats/jsonl_writer.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <memory>
#include <string>

#include "formats/byte_sink.h"
#include "formats/json_text.h"
#include "formats_test_util.h"

namespace s3db::formats {
namespace {

JsonObject Row(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed) << json;
  return parsed ? *parsed : JsonObject();
}

// Inflates every gzip member of `data`; counts the members. Fails the test on bad data.
std::string Gunzip(const std::string& data, int* members) {
  std::string out;
  *members = 0;
  std::size_t offset = 0;
  while (offset < data.size()) {
    z_stream stream{};
    EXPECT_EQ(inflateInit2(&stream, 15 + 16), Z_OK);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + offset));
    stream.avail_in = static_cast<uInt>(data.size() - offset);
    int rc;
    char buffer[4096];
    do {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof buffer;
      rc = inflate(&stream, Z_NO_FLUSH);
      out.append(buffer, sizeof buffer - stream.avail_out);
    } while (rc == Z_OK);
    EXPECT_EQ(rc, Z_STREAM_END) << "gzip member " << *members << " is broken";
    offset += stream.total_in;
    inflateEnd(&stream);
    ++*members;
    if (rc != Z_STREAM_END) break;
  }
  return out;
}

TEST(JsonlWriter, WritesOneCompactObjectPerLineKeepingEveryDigit) {
  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  auto writer = JsonlWriter::Make(JsonlOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Add(
      Row(R"({"id": "u1", "n": 18446744073709551615, "m": -9223372036854775808, "d": 0.1,)"
          R"( "w": 3.0, "nested": {"a": [1, null, true]}})")));
  ASSERT_TRUE((*writer)->Add(Row(R"({"id":"u2"})")));
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_EQ(memory->Snapshot(),
            R"({"id":"u1","n":18446744073709551615,"m":-9223372036854775808,"d":0.1,)"
            R"("w":3.0,"nested":{"a":[1,null,true]}})"
            "\n"
            R"({"id":"u2"})"
            "\n");
}

TEST(JsonlWriter, EscapesControlCharactersAndKeepsUnicode) {
  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  auto writer = JsonlWriter::Make(JsonlOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  JsonObject row;
  row["s"] = std::string("q\"b\\n\nr\rt\t\x01\x1f \xF0\x9F\x98\x80 e\xCC\x81");
  ASSERT_TRUE((*writer)->Add(row));
  ASSERT_TRUE((*writer)->Finish());
  std::string line = memory->Snapshot();
  EXPECT_EQ(line, "{\"s\":\"q\\\"b\\\\n\\nr\\rt\\t\\u0001\\u001f \xF0\x9F\x98\x80 e\xCC\x81\"}\n");
  auto back = ParseJsonObject(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, row);
}

TEST(JsonlWriter, GzipFlushAppendsCompleteMembersThatDecompressToTheLines) {
  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  JsonlOptions options;
  options.compress = true;
  auto writer = JsonlWriter::Make(options, std::move(sink));
  ASSERT_TRUE(writer);

  ASSERT_TRUE((*writer)->Add(Row(R"({"i":1})")));
  ASSERT_TRUE((*writer)->Add(Row(R"({"i":2})")));
  ASSERT_TRUE((*writer)->Flush());
  int members = 0;
  EXPECT_EQ(Gunzip(memory->Snapshot(), &members), "{\"i\":1}\n{\"i\":2}\n");
  EXPECT_EQ(members, 1);

  ASSERT_TRUE((*writer)->Add(Row(R"({"i":3,"big":9223372036854775807})")));
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_EQ(Gunzip(memory->Snapshot(), &members),
            "{\"i\":1}\n{\"i\":2}\n{\"i\":3,\"big\":9223372036854775807}\n");
  EXPECT_EQ(members, 2);
  EXPECT_EQ(static_cast<unsigned char>(memory->Snapshot()[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(memory->Snapshot()[1]), 0x8b);
}

TEST(JsonlWriter, GzipFileWithNoRowsIsStillValidGzip) {
  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  JsonlOptions options;
  options.compress = true;
  auto writer = JsonlWriter::Make(options, std::move(sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Flush());
  ASSERT_FALSE(memory->Snapshot().empty());
  ASSERT_TRUE((*writer)->Finish());
  int members = 0;
  EXPECT_EQ(Gunzip(memory->Snapshot(), &members), "");
  EXPECT_EQ(members, 1);
}

TEST(JsonlWriter, GzipFileOnDiskDecompressesWithZlib) {
  testing::TempFolder folder;
  std::string path = folder.File("events.jsonl.gz");
  auto sink = FileByteSink::Open(path);
  ASSERT_TRUE(sink);
  JsonlOptions options;
  options.compress = true;
  auto writer = JsonlWriter::Make(options, std::move(*sink));
  ASSERT_TRUE(writer);
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    JsonObject row;
    row["i"] = i;
    row["text"] = std::string(static_cast<std::size_t>(i % 50), 'x');
    ASSERT_TRUE((*writer)->Add(row));
    expected += JsonText(Json(row)) + "\n";
    if (i % 300 == 299) ASSERT_TRUE((*writer)->Flush());
  }
  ASSERT_TRUE((*writer)->Finish());
  int members = 0;
  EXPECT_EQ(Gunzip(testing::ReadFileBytes(path), &members), expected);
  EXPECT_EQ(members, 4);
}

TEST(JsonlWriter, RejectsNonFiniteNumbersAndBadUtf8WithoutWritingThem) {
  auto sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* memory = sink.get();
  auto writer = JsonlWriter::Make(JsonlOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  JsonObject nan_row;
  nan_row["x"] = std::nan("");
  auto rejected = (*writer)->Add(nan_row);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(rejected.error().message.find("'x'"), std::string::npos);

  JsonObject bad_key;
  bad_key[std::string("\xFF")] = 1;
  EXPECT_FALSE((*writer)->Add(bad_key));

  ASSERT_TRUE((*writer)->Add(Row(R"({"ok":true})")));
  ASSERT_TRUE((*writer)->Finish());
  EXPECT_EQ(memory->Snapshot(), "{\"ok\":true}\n");
}

TEST(JsonlWriter, UploadFailureIsStickyAndNamedByEveryLaterCall) {
  int attempts = 0;
  auto sink = std::make_unique<MemoryByteSink>([&](std::string_view) -> Status {
    ++attempts;
    return MakeError(ErrorCode::kUnavailable, "upload failed: 503");
  });
  auto writer = JsonlWriter::Make(JsonlOptions(), std::move(sink));
  ASSERT_TRUE(writer);
  ASSERT_TRUE((*writer)->Add(Row(R"({"a":1})")));
  auto flushed = (*writer)->Flush();
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().code, ErrorCode::kUnavailable);
  auto added = (*writer)->Add(Row(R"({"a":2})"));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().message, "upload failed: 503");
  EXPECT_FALSE((*writer)->Finish());
  EXPECT_EQ(attempts, 1);
}

// A continued file: plain JSONL loses only a torn last line; gzip JSONL gets new members
// after the old ones, and the whole file stays one valid gzip stream.
TEST(JsonlWriter, ResumeContinuesPlainAndGzipFiles) {
  auto plain_sink = std::make_unique<MemoryByteSink>(nullptr, "{\"id\":\"1\"}\n{\"id\":\"2");
  MemoryByteSink* plain_memory = plain_sink.get();
  auto plain = JsonlWriter::Resume(JsonlOptions(), std::move(plain_sink));
  ASSERT_TRUE(plain);
  ASSERT_TRUE((*plain)->Add(Row(R"({"id": "3"})")));
  ASSERT_TRUE((*plain)->Flush());
  EXPECT_EQ(plain_memory->Snapshot(), "{\"id\":\"1\"}\n{\"id\":\"3\"}\n");

  JsonlOptions gzip;
  gzip.compress = true;
  auto first_sink = std::make_unique<MemoryByteSink>();
  MemoryByteSink* first_memory = first_sink.get();
  auto first = JsonlWriter::Make(gzip, std::move(first_sink));
  ASSERT_TRUE(first);
  ASSERT_TRUE((*first)->Add(Row(R"({"id": "1"})")));
  ASSERT_TRUE((*first)->Flush());
  auto sink = std::make_unique<MemoryByteSink>(nullptr, first_memory->Snapshot());
  MemoryByteSink* memory = sink.get();
  auto second = JsonlWriter::Resume(gzip, std::move(sink));
  ASSERT_TRUE(second);
  ASSERT_TRUE((*second)->Add(Row(R"({"id": "2"})")));
  ASSERT_TRUE((*second)->Flush());
  ASSERT_TRUE((*second)->Add(Row(R"({"id": "3"})")));
  ASSERT_TRUE((*second)->Finish());
  int members = 0;
  EXPECT_EQ(Gunzip(memory->Snapshot(), &members),
            "{\"id\":\"1\"}\n{\"id\":\"2\"}\n{\"id\":\"3\"}\n");
  EXPECT_EQ(members, 3);
}

TEST(JsonlWriter, ParsesConfigOptions) {
  auto options = JsonlOptionsFromJson(Row(R"({"compress":true,"gzipLevel":9})"));
  ASSERT_TRUE(options);
  EXPECT_TRUE(options->compress);
  EXPECT_EQ(options->gzip_level, 9);
  auto bad = JsonlOptionsFromJson(Row(R"({"compress":"yes"})"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("`compress`"), std::string::npos);
}

}  // namespace
}  // namespace s3db::formats
