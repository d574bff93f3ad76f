// The SQLite change log: appends, group commit, reads, checkpoints, compaction, dead letters.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "replicator/change_log.h"
#include "test_util.h"

namespace s3db::replicator {
namespace {

using s3db::testing::TempDir;

Change MakeChange(std::string resource, std::string id, std::uint64_t revision, Action action) {
  Change change;
  change.resource = std::move(resource);
  change.id = std::move(id);
  change.revision = revision;
  change.action = action;
  change.timestamp_ms = 1700000000000 + static_cast<std::int64_t>(revision);
  JsonObject record;
  record["id"] = change.id;
  record["_rev"] = revision;
  record["name"] = "Ünïcode ✓";
  if (action != Action::kDelete) change.after = record;
  if (action != Action::kInsert) {
    record["_rev"] = revision - 1;
    change.before = record;
  }
  return change;
}

std::unique_ptr<ChangeLog> Open(const TempDir& dir, FsyncPolicy fsync = FsyncPolicy::kBatch) {
  SqliteChangeLogOptions options;
  options.path = dir.str() + "/replicator/changes.db";
  options.fsync = fsync;
  auto log = OpenSqliteChangeLog(options);
  EXPECT_TRUE(log.has_value()) << log.error().ToString();
  return std::move(*log);
}

TEST(SqliteChangeLog, AppendsAndReadsChangesInOrder) {
  TempDir dir;
  auto log = Open(dir);
  auto first = log->Append(MakeChange("users", "u1", 1, Action::kInsert));
  auto second = log->Append(MakeChange("users", "u1", 2, Action::kUpdate));
  auto third = log->Append(MakeChange("users", "u1", 3, Action::kDelete));
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(*first, 1u);
  EXPECT_EQ(*second, 2u);
  EXPECT_EQ(*third, 3u);
  EXPECT_EQ(log->LastSequence(), 3u);

  auto read = log->ReadFrom(0, 10);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 3u);
  const Change& update = (*read)[1].change;
  EXPECT_EQ(update.ChangeId(), "users:u1:2");
  EXPECT_EQ(update.action, Action::kUpdate);
  ASSERT_TRUE(update.before && update.after);
  EXPECT_EQ(update.before->at("_rev").to_number<int>(), 1);
  EXPECT_EQ(update.after->at("name").as_string(), "Ünïcode ✓");
  EXPECT_EQ(update.timestamp_ms, 1700000000002);
  EXPECT_FALSE((*read)[2].change.after.has_value());
  EXPECT_FALSE((*read)[0].change.before.has_value());

  auto tail = log->ReadFrom(2, 10);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ(tail->front().sequence, 3u);
}

TEST(SqliteChangeLog, SurvivesReopenAndNeverReusesSequences) {
  TempDir dir;
  {
    auto log = Open(dir);
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(log->Append(MakeChange("r", "a", i, Action::kInsert)));
    ASSERT_TRUE(log->SetCheckpoint("rep", 5));
    auto removed = log->Compact({"rep"});
    ASSERT_TRUE(removed.has_value());
    EXPECT_EQ(*removed, 4u);  // the newest change is always kept
    ASSERT_TRUE(log->Close());
  }
  auto log = Open(dir);
  EXPECT_EQ(log->LastSequence(), 5u);
  auto next = log->Append(MakeChange("r", "a", 6, Action::kUpdate));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, 6u);
  auto checkpoint = log->GetCheckpoint("rep");
  ASSERT_TRUE(checkpoint && *checkpoint);
  EXPECT_EQ(**checkpoint, 5u);
  EXPECT_FALSE(log->GetCheckpoint("other")->has_value());
}

TEST(SqliteChangeLog, CompactionKeepsWhatAnyReplicatorStillNeeds) {
  TempDir dir;
  auto log = Open(dir);
  for (int i = 1; i <= 100; ++i) ASSERT_TRUE(log->Append(MakeChange("r", "x", i, Action::kInsert)));
  ASSERT_TRUE(log->SetCheckpoint("fast", 90));
  ASSERT_TRUE(log->SetCheckpoint("slow", 40));
  EXPECT_EQ(*log->Compact({"fast", "slow"}), 40u);
  EXPECT_EQ(*log->CountChanges(), 60u);
  auto read = log->ReadFrom(40, 1);
  EXPECT_EQ(read->front().sequence, 41u);
  // A replicator without a checkpoint holds everything back.
  EXPECT_EQ(*log->Compact({"fast", "new"}), 0u);
}

TEST(SqliteChangeLog, ConcurrentWritersGetUniqueSequencesAndLoseNothing) {
  TempDir dir;
  auto log = Open(dir);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 300;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::uint64_t>> sequences(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 1; i <= kPerThread; ++i) {
        auto sequence = log->Append(MakeChange("r", "t" + std::to_string(t), i, Action::kInsert));
        ASSERT_TRUE(sequence.has_value());
        sequences[t].push_back(*sequence);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<std::uint64_t> all;
  for (const auto& list : sequences) {
    EXPECT_TRUE(std::is_sorted(list.begin(), list.end()));  // each writer's order is kept
    all.insert(list.begin(), list.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.rbegin(), static_cast<std::uint64_t>(kThreads * kPerThread));
  auto read = log->ReadFrom(0, kThreads * kPerThread + 10);
  EXPECT_EQ(read->size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(SqliteChangeLog, EveryFsyncPolicyStoresChanges) {
  for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kBatch, FsyncPolicy::kOff}) {
    TempDir dir;
    {
      auto log = Open(dir, policy);
      ASSERT_TRUE(log->Append(MakeChange("r", "a", 1, Action::kInsert)));
    }
    auto log = Open(dir, policy);
    EXPECT_EQ(log->LastSequence(), 1u);
  }
  EXPECT_FALSE(ParseFsyncPolicy("sometimes").has_value());
}

TEST(SqliteChangeLog, WaitForAppendWakesOnNewChanges) {
  TempDir dir;
  auto log = Open(dir);
  EXPECT_FALSE(log->WaitForAppend(0, std::chrono::milliseconds(20)));
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    (void)log->Append(MakeChange("r", "a", 1, Action::kInsert));
  });
  EXPECT_TRUE(log->WaitForAppend(0, std::chrono::seconds(5)));
  writer.join();
}

TEST(SqliteChangeLog, DeadLettersAreListedRequeuedAndPurged) {
  TempDir dir;
  auto log = Open(dir);
  for (int i = 0; i < 3; ++i) {
    DeadLetter letter;
    letter.replicator = i < 2 ? "a" : "b";
    letter.sequence = 10 + i;
    letter.change = MakeChange("users", "u" + std::to_string(i), 4, Action::kUpdate);
    letter.destination = "people";
    letter.reason = "max_retries";
    letter.error = "boom";
    letter.attempts = 4;
    ASSERT_TRUE(log->AddDeadLetter(letter).has_value());
  }
  auto listed = log->ListDeadLetters("a", 10);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].change.ChangeId(), "users:u0:4");
  EXPECT_EQ((*listed)[0].reason, "max_retries");
  EXPECT_EQ((*listed)[0].attempts, 4);
  ASSERT_TRUE((*listed)[0].change.before.has_value());
  EXPECT_EQ(*log->CountDeadLetters("b"), 1u);

  auto requeued = log->RequeueDeadLetters("a");
  ASSERT_TRUE(requeued.has_value());
  ASSERT_EQ(requeued->size(), 2u);
  EXPECT_EQ(*log->CountDeadLetters("a"), 0u);
  auto read = log->ReadFrom(0, 10);
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].only_replicator, "a");
  EXPECT_EQ((*read)[0].only_destination, "people");
  EXPECT_EQ((*read)[1].change.ChangeId(), "users:u1:4");

  EXPECT_EQ(*log->PurgeDeadLetters("b"), 1u);
  EXPECT_EQ(*log->CountDeadLetters("b"), 0u);
}

TEST(SqliteChangeLog, KeepsStateValues) {
  TempDir dir;
  auto log = Open(dir);
  EXPECT_FALSE(log->GetState("k")->has_value());
  ASSERT_TRUE(log->SetState("k", "v1"));
  ASSERT_TRUE(log->SetState("k", "v2"));
  EXPECT_EQ(**log->GetState("k"), "v2");
  ASSERT_TRUE(log->DeleteState("k"));
  EXPECT_FALSE(log->GetState("k")->has_value());
}

TEST(SqliteChangeLog, FailsCleanlyAfterClose) {
  TempDir dir;
  auto log = Open(dir);
  ASSERT_TRUE(log->Close());
  auto appended = log->Append(MakeChange("r", "a", 1, Action::kInsert));
  ASSERT_FALSE(appended.has_value());
  EXPECT_EQ(appended.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace s3db::replicator
