#include "formats/byte_sink.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "formats_test_util.h"

namespace s3db::formats {
namespace {

TEST(FileByteSink, WritesToTmpAndRenamesAtClose) {
  testing::TempFolder folder;
  std::string path = folder.File("out.bin");
  auto sink = FileByteSink::Open(path);
  ASSERT_TRUE(sink) << sink.error().message;
  ASSERT_TRUE((*sink)->Append("hello "));
  ASSERT_TRUE((*sink)->Sync("TRAILER-LONG"));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(testing::ReadFileBytes(path + ".tmp"), "hello TRAILER-LONG");

  // The next append overwrites the old trailer; a shorter trailer leaves no stale bytes.
  ASSERT_TRUE((*sink)->Append("world"));
  ASSERT_TRUE((*sink)->Close("T2"));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(testing::ReadFileBytes(path), "hello worldT2");
  EXPECT_FALSE((*sink)->Append("late"));
}

TEST(FileByteSink, PublishOnSyncKeepsACompleteCopyAtThePath) {
  testing::TempFolder folder;
  std::string path = folder.File("live.bin");
  FileSinkOptions options;
  options.publish_on_sync = true;
  auto sink = FileByteSink::Open(path, options);
  ASSERT_TRUE(sink);
  ASSERT_TRUE((*sink)->Append("abc"));
  ASSERT_TRUE((*sink)->Sync("|1"));
  EXPECT_EQ(testing::ReadFileBytes(path), "abc|1");
  ASSERT_TRUE((*sink)->Append("def"));
  EXPECT_EQ(testing::ReadFileBytes(path), "abc|1");  // unchanged until the next Sync
  ASSERT_TRUE((*sink)->Sync("|2"));
  EXPECT_EQ(testing::ReadFileBytes(path), "abcdef|2");
  EXPECT_FALSE(std::filesystem::exists(path + ".publish.tmp"));
  ASSERT_TRUE((*sink)->Close("|3"));
  EXPECT_EQ(testing::ReadFileBytes(path), "abcdef|3");
}

TEST(FileByteSink, AbandonRemovesTheStagedFile) {
  testing::TempFolder folder;
  std::string path = folder.File("gone.bin");
  auto sink = FileByteSink::Open(path);
  ASSERT_TRUE(sink);
  ASSERT_TRUE((*sink)->Append("data"));
  (*sink)->Abandon();
  (*sink)->Abandon();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE((*sink)->Append("more"));
}

TEST(FileByteSink, ResetAndReadBodyRewriteTheStagedFile) {
  testing::TempFolder folder;
  std::string path = folder.File("rewrite.bin");
  auto sink = FileByteSink::Open(path);
  ASSERT_TRUE(sink);
  ASSERT_TRUE((*sink)->Append("0123456789"));
  auto body = (*sink)->ReadBody();
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "0123456789");
  ASSERT_TRUE((*sink)->Reset());
  EXPECT_EQ((*sink)->BodySize(), 0u);
  ASSERT_TRUE((*sink)->Append("ab"));
  ASSERT_TRUE((*sink)->Close(""));
  EXPECT_EQ(testing::ReadFileBytes(path), "ab");
}

TEST(FileByteSink, MissingDirectoryIsAnIoErrorNamingThePath) {
  auto sink = FileByteSink::Open("/nonexistent-dir-s3db/x.csv");
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.error().code, ErrorCode::kIo);
  EXPECT_NE(sink.error().message.find("/nonexistent-dir-s3db/x.csv.tmp"), std::string::npos);
}

TEST(MemoryByteSink, SnapshotIsTheLastSyncedObjectAndPublishCanFail) {
  std::vector<std::string> uploads;
  bool fail_next = false;
  MemoryByteSink sink([&](std::string_view object) -> Status {
    if (fail_next) return MakeError(ErrorCode::kUnavailable, "503");
    uploads.emplace_back(object);
    return Ok();
  });
  ASSERT_TRUE(sink.Append("ab"));
  ASSERT_TRUE(sink.Sync("!"));
  ASSERT_TRUE(sink.Append("cd"));
  EXPECT_EQ(sink.Snapshot(), "ab!");
  fail_next = true;
  EXPECT_FALSE(sink.Sync("?"));
  EXPECT_EQ(sink.Snapshot(), "ab!");
  fail_next = false;
  ASSERT_TRUE(sink.Close("."));
  EXPECT_EQ(sink.Snapshot(), "abcd.");
  EXPECT_EQ(uploads, (std::vector<std::string>{"ab!", "abcd."}));
  EXPECT_TRUE(sink.closed());
  EXPECT_EQ(sink.publish_count(), 2);
}

}  // namespace
}  // namespace s3db::formats
