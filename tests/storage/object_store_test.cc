// One behaviour suite for every ObjectStore: memory, file and S3 (the S3 peer server).
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "s3db/storage.h"
#include "store_factory.h"
#include "test_util.h"

namespace s3db {
namespace {

using testing::TempDir;

class ObjectStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    S3DB_SKIP_UNLESS_STORE(GetParam());
    auto opened = OpenObjectStore(testing::FreshConnectionString(GetParam(), dir_));
    ASSERT_TRUE(opened) << opened.error().ToString();
    store_ = std::move(*opened);
  }
  TempDir dir_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_P(ObjectStoreTest, PutThenGetReturnsBodyAndMetadata) {
  PutOptions options;
  options.metadata["Run-Id"] = "42";
  auto put = store_->Put("a/b/hello.json", "{\"x\":1}", options);
  S3DB_ASSERT_OK(put);
  EXPECT_FALSE(put->etag.empty());

  auto got = store_->Get("a/b/hello.json");
  S3DB_ASSERT_OK(got);
  EXPECT_EQ(got->body, "{\"x\":1}");
  EXPECT_EQ(got->info.etag, put->etag);
  EXPECT_EQ(got->info.metadata["run-id"], "42");

  auto head = store_->Head("a/b/hello.json");
  S3DB_ASSERT_OK(head);
  EXPECT_EQ(head->size, 7u);
  EXPECT_EQ(head->metadata["run-id"], "42");
}

TEST_P(ObjectStoreTest, MissingKeysAreNotFound) {
  S3DB_EXPECT_ERROR(store_->Get("nope"), ErrorCode::kNotFound);
  S3DB_EXPECT_ERROR(store_->Head("nope"), ErrorCode::kNotFound);
  S3DB_EXPECT_OK(store_->Delete("nope"));
}

TEST_P(ObjectStoreTest, IfNoneMatchRefusesExistingKey) {
  PutOptions create;
  create.if_none_match = true;
  S3DB_ASSERT_OK(store_->Put("k", "one", create));
  S3DB_EXPECT_ERROR(store_->Put("k", "two", create), ErrorCode::kConflict);
  EXPECT_EQ(store_->Get("k")->body, "one");
}

TEST_P(ObjectStoreTest, IfMatchWritesOnlyOverTheSameVersion) {
  auto first = store_->Put("k", "one");
  S3DB_ASSERT_OK(first);
  PutOptions match;
  match.if_match = first->etag;
  auto second = store_->Put("k", "two", match);
  S3DB_ASSERT_OK(second);
  S3DB_EXPECT_ERROR(store_->Put("k", "three", match), ErrorCode::kConflict);  // stale etag
  EXPECT_EQ(store_->Get("k")->body, "two");
  S3DB_EXPECT_ERROR(store_->Put("missing", "x", match), ErrorCode::kNotFound);
}

TEST_P(ObjectStoreTest, RacingCreatesHaveExactlyOneWinner) {
  std::atomic<int> winners{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      PutOptions create;
      create.if_none_match = true;
      auto put = store_->Put("race", "writer" + std::to_string(i), create);
      if (put) {
        ++winners;
      } else if (put.error().code == ErrorCode::kConflict) {
        ++conflicts;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(conflicts.load(), 7);
}

TEST_P(ObjectStoreTest, ListPagesInKeyOrderUnderPrefix) {
  std::set<std::string> expected;
  for (int i = 0; i < 25; ++i) {
    std::string key = "p/item" + std::to_string(100 + i);
    S3DB_ASSERT_OK(store_->Put(key, "x"));
    expected.insert(key);
  }
  S3DB_ASSERT_OK(store_->Put("other/item", "x"));
  S3DB_ASSERT_OK(store_->Put("p2", "x"));

  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->List("p/", token, 10);
    S3DB_ASSERT_OK(page);
    for (const auto& object : page->objects) seen.push_back(object.key);
    token = page->next_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(std::vector<std::string>(expected.begin(), expected.end()), seen);

  auto all = store_->ListAll("p");
  S3DB_ASSERT_OK(all);
  EXPECT_EQ(all->size(), 26u);  // p/… and p2
}

TEST_P(ObjectStoreTest, DeleteManyAndCopy) {
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) {
    keys.push_back("d/" + std::to_string(i));
    S3DB_ASSERT_OK(store_->Put(keys.back(), "v" + std::to_string(i)));
  }
  auto copied = store_->Copy("d/3", "copy/3");
  S3DB_ASSERT_OK(copied);
  EXPECT_EQ(store_->Get("copy/3")->body, "v3");

  auto deleted = store_->DeleteMany(keys);
  S3DB_ASSERT_OK(deleted);
  EXPECT_EQ(deleted->deleted.size(), 30u);
  EXPECT_TRUE(deleted->failed.empty());
  EXPECT_TRUE(store_->ListAll("d/")->empty());
}

TEST_P(ObjectStoreTest, UnusualKeysRoundTrip) {
  std::vector<std::string> keys = {"resource=users/data/id=a b c", "x/ünïcødé ✓", "x/%41%",
                                   "x/.hidden",
                                   // The S3 test server keeps each segment as a file name plus
                                   // a suffix, so it cannot hold 240-byte segments.
                                   "x/" + std::string(GetParam() == "s3" ? 150 : 240, 'L')};
  for (const auto& key : keys) {
    S3DB_ASSERT_OK(store_->Put(key, key));
    auto got = store_->Get(key);
    S3DB_ASSERT_OK(got);
    EXPECT_EQ(got->body, key);
  }
  auto listed = store_->ListAll("x/");
  S3DB_ASSERT_OK(listed);
  std::set<std::string> names;
  for (const auto& object : *listed) names.insert(object.key);
  for (std::size_t i = 1; i < keys.size(); ++i) EXPECT_TRUE(names.count(keys[i])) << keys[i];
}

INSTANTIATE_TEST_SUITE_P(AllStores, ObjectStoreTest, ::testing::Values("memory", "file", "s3"),
                         [](const auto& info) { return info.param; });

TEST(MemoryStoreTest, StoresWithTheSameBucketShareObjects) {
  std::string url = "memory://shared-" + testing::UniqueToken() + "/x";
  auto a = OpenObjectStore(url);
  auto b = OpenObjectStore(url);
  auto other_prefix = OpenObjectStore(url + "/deeper");
  S3DB_ASSERT_OK(a);
  S3DB_ASSERT_OK(b);
  S3DB_ASSERT_OK(other_prefix);
  S3DB_ASSERT_OK((*a)->Put("k", "v"));
  EXPECT_EQ((*b)->Get("k")->body, "v");
  S3DB_EXPECT_ERROR((*other_prefix)->Get("k"), ErrorCode::kNotFound);
}

TEST(FileStoreTest, DotDotSegmentsAreRejected) {
  TempDir dir;
  auto store = NewFileStore(dir.str());
  S3DB_ASSERT_OK(store);
  S3DB_EXPECT_ERROR((*store)->Put("a/../../etc/passwd", "x"), ErrorCode::kInvalidArgument);
  S3DB_EXPECT_ERROR((*store)->Put("..", "x"), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace s3db
