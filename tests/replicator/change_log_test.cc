// The SQLite change log: appends, group commit, reads, checkpoints, compaction, dead letters.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "replicator/change_log.h"
#include "replicator/prepare_journal.h"
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

// The log in `dir` with the default options, changed by `tune`.
std::unique_ptr<ChangeLog> OpenTuned(const TempDir& dir,
                                     const std::function<void(SqliteChangeLogOptions&)>& tune) {
  SqliteChangeLogOptions options;
  options.path = dir.str() + "/replicator/changes.db";
  tune(options);
  auto log = OpenSqliteChangeLog(options);
  EXPECT_TRUE(log.has_value()) << log.error().ToString();
  return log ? std::move(*log) : nullptr;
}

std::unique_ptr<ChangeLog> Open(const TempDir& dir, FsyncPolicy fsync = FsyncPolicy::kBatch) {
  return OpenTuned(dir, [&](SqliteChangeLogOptions& options) { options.fsync = fsync; });
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

// A writer's change: prepared (stored, pending) before the object-store write, confirmed by
// Append after it.
Change Prepared(std::string id, std::uint64_t revision, std::string write_id) {
  Change change = MakeChange("users", std::move(id), revision, Action::kInsert);
  change.write_id = std::move(write_id);
  return change;
}

std::vector<std::string> ReadIds(ChangeLog& log) {
  auto read = log.ReadFrom(0, 100);
  EXPECT_TRUE(read.has_value());
  std::vector<std::string> ids;
  for (const LoggedChange& logged : *read) {
    ids.push_back(std::to_string(logged.sequence) + ":" + logged.change.id);
  }
  return ids;
}

TEST(SqliteChangeLog, APreparedChangeIsReadOnlyOnceConfirmedAndHoldsBackLaterOnes) {
  TempDir dir;
  auto log = Open(dir);
  Change a = Prepared("a", 1, "w-a");
  S3DB_ASSERT_OK(log->Prepare(a));
  auto b = log->Append(MakeChange("users", "b", 1, Action::kInsert));  // not prepared
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*b, 2u) << "a took sequence 1 when it was prepared";
  EXPECT_EQ(log->LastSequence(), 0u) << "nothing is readable while a's write is unconfirmed";
  EXPECT_TRUE(ReadIds(*log).empty());

  auto confirmed = log->Append(a);
  ASSERT_TRUE(confirmed.has_value());
  EXPECT_EQ(*confirmed, 1u) << "confirming keeps the prepared sequence";
  EXPECT_EQ(log->LastSequence(), 2u);
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a", "2:b"}));
  EXPECT_EQ(*log->CountChanges(), 2u);
}

TEST(SqliteChangeLog, AnAbandonedPreparedChangeIsNeverRead) {
  TempDir dir;
  auto log = Open(dir);
  Change a = Prepared("a", 1, "w-a");
  Change c = Prepared("c", 1, "w-c");
  S3DB_ASSERT_OK(log->Prepare(a));
  S3DB_ASSERT_OK(log->Prepare(c));
  S3DB_ASSERT_OK(log->Abandon(a));
  EXPECT_TRUE(ReadIds(*log).empty()) << "c is still unconfirmed";
  ASSERT_TRUE(log->Append(c).has_value());
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"2:c"}));
  EXPECT_EQ(*log->CountChanges(), 1u);
  EXPECT_TRUE(log->WaitForAppend(1, std::chrono::milliseconds(0)));
}

TEST(SqliteChangeLog, ChangesLeftPendingByAProcessBecomeIntentsAtTheNextOpen) {
  TempDir dir;
  {
    auto log = Open(dir);
    S3DB_ASSERT_OK(log->Prepare(Prepared("confirmed", 1, "w-1")));
    ASSERT_TRUE(log->Append(Prepared("confirmed", 1, "w-1")).has_value());
    S3DB_ASSERT_OK(log->Prepare(Prepared("unknown", 1, "w-2")));
    S3DB_ASSERT_OK(log->Close());
  }
  auto log = Open(dir);
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:confirmed"}));
  auto intents = log->ListIntents();
  ASSERT_TRUE(intents.has_value());
  ASSERT_EQ(intents->size(), 1u);
  EXPECT_EQ(intents->front().id, "unknown");
  EXPECT_EQ(intents->front().write_id, "w-2");
  auto next = log->Append(MakeChange("users", "later", 1, Action::kInsert));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, 3u) << "the sequence of the change moved to the intents is not reused";
}

TEST(SqliteChangeLog, AWriteThatNeverAnswersStopsHoldingBackLaterChanges) {
  TempDir dir;
  auto opened = OpenTuned(dir, [](SqliteChangeLogOptions& options) {
    options.intent_timeout = std::chrono::milliseconds(200);
  });
  ASSERT_NE(opened, nullptr);
  ChangeLog& log = *opened;
  Change slow = Prepared("slow", 1, "w-slow");
  S3DB_ASSERT_OK(log.Prepare(slow));
  ASSERT_TRUE(log.Append(MakeChange("users", "b", 1, Action::kInsert)).has_value());
  EXPECT_FALSE(log.WaitForAppend(1, std::chrono::milliseconds(50)));
  ASSERT_TRUE(log.WaitForAppend(1, std::chrono::seconds(10)))
      << "the unanswered write no longer holds b back";
  EXPECT_EQ(ReadIds(log), (std::vector<std::string>{"2:b"}));
  ASSERT_EQ(log.ListIntents()->size(), 1u) << "the slow write waits as an intent";

  // Its answer comes after all: the change is appended anew and its intent forgotten.
  auto late = log.Append(slow);
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(*late, 3u);
  EXPECT_TRUE(log.ListIntents()->empty());
  EXPECT_EQ(ReadIds(log), (std::vector<std::string>{"2:b", "3:slow"}));
}

TEST(SqliteChangeLog, ConcurrentPreparedWritersAreReadInSequenceWithNoGap) {
  TempDir dir;
  auto log = Open(dir);
  constexpr int kWriters = 8;
  constexpr int kEach = 200;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) {
        Change change = Prepared("r" + std::to_string(w) + "-" + std::to_string(i), 1,
                                 "w" + std::to_string(w) + "-" + std::to_string(i));
        ASSERT_TRUE(log->Prepare(change).has_value());
        if (i % 10 == 3) {
          ASSERT_TRUE(log->Abandon(change).has_value());
        } else {
          ASSERT_TRUE(log->Append(change).has_value());
        }
      }
    });
  }
  for (auto& writer : writers) writer.join();
  auto read = log->ReadFrom(0, 100000);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->size(), static_cast<std::size_t>(kWriters * kEach * 9 / 10));
  std::set<std::string> ids;
  for (std::size_t i = 0; i < read->size(); ++i) {
    if (i > 0) EXPECT_LT((*read)[i - 1].sequence, (*read)[i].sequence);
    ids.insert((*read)[i].change.id);
  }
  EXPECT_EQ(ids.size(), read->size());
  EXPECT_EQ(log->LastSequence(), static_cast<std::uint64_t>(kWriters * kEach));
}

TEST(SqliteChangeLog, TheBackgroundThreadCheckpointsTheWal) {
  // Writers never checkpoint (a checkpoint fsyncs); the background thread must, or the WAL
  // would grow without end and the database file would stay empty.
  TempDir dir;
  auto log = Open(dir);
  const std::string path = dir.str() + "/replicator/changes.db";
  std::string text(1000, 'x');
  for (int i = 0; i < 5000; ++i) {
    Change change = MakeChange("users", "u" + std::to_string(i), 1, Action::kInsert);
    (*change.after)["text"] = text;
    ASSERT_TRUE(log->Append(change).has_value());
  }
  bool copied = false;
  for (int i = 0; i < 100 && !copied; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    copied = std::filesystem::file_size(path) > 5000u * 1000u;
  }
  EXPECT_TRUE(copied) << "the changes reached the database file: "
                      << std::filesystem::file_size(path);
  // And the WAL restarts from its beginning once copied: new commits do not grow it further.
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(log->Append(MakeChange("users", "v" + std::to_string(i), 1, Action::kInsert))
                    .has_value());
  }
  EXPECT_LT(std::filesystem::file_size(path + "-wal"), 64u << 20);
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

// What a reader gets, field by field, so that reads answered from memory can be compared with
// reads answered by SQLite.
std::vector<LoggedChange> Unshared(
    const Result<std::vector<std::shared_ptr<const LoggedChange>>>& shared) {
  EXPECT_TRUE(shared.has_value());
  std::vector<LoggedChange> out;
  if (shared) {
    for (const auto& logged : *shared) out.push_back(*logged);
  }
  return out;
}

std::vector<std::string> Describe(const std::vector<LoggedChange>& changes) {
  std::vector<std::string> out;
  for (const LoggedChange& logged : changes) {
    const Change& change = logged.change;
    out.push_back(std::to_string(logged.sequence) + "|" + change.ChangeId() + "|" +
                  std::string(ActionName(change.action)) + "|" +
                  (change.before ? ToJson(*change.before) : "-") + "|" +
                  (change.after ? ToJson(*change.after) : "-") + "|" +
                  std::to_string(change.timestamp_ms) + "|" + logged.only_replicator + "|" +
                  logged.only_destination);
  }
  return out;
}

TEST(SqliteChangeLog, RecentChangesReadFromMemoryEqualWhatSqliteStored) {
  TempDir dir;
  std::vector<std::string> before_reopen;
  {
    auto log = Open(dir);
    ASSERT_TRUE(log->Append(MakeChange("users", "u1", 1, Action::kInsert)));
    Change prepared = Prepared("u2", 1, "w-u2");
    S3DB_ASSERT_OK(log->Prepare(prepared));
    Change abandoned = Prepared("u3", 1, "w-u3");
    S3DB_ASSERT_OK(log->Prepare(abandoned));
    S3DB_ASSERT_OK(log->Abandon(abandoned));
    ASSERT_TRUE(log->Append(prepared));
    std::vector<LoggedChange> many(2);
    many[0].change = MakeChange("users", "u1", 2, Action::kUpdate);
    many[1].change = MakeChange("users", "u1", 3, Action::kDelete);
    many[1].only_replicator = "sync-me";
    ASSERT_TRUE(log->AppendMany(many));
    DeadLetter letter;
    letter.replicator = "a";
    letter.sequence = 1;
    letter.change = MakeChange("users", "u9", 7, Action::kUpdate);
    letter.destination = "people";
    letter.reason = "max_retries";
    letter.error = "boom";
    ASSERT_TRUE(log->AddDeadLetter(letter));
    ASSERT_TRUE(log->RequeueDeadLetters("a"));

    auto read = log->ReadFrom(0, 100);
    ASSERT_TRUE(read.has_value());
    before_reopen = Describe(*read);
    ASSERT_EQ(before_reopen.size(), 5u) << "the abandoned change is never read";
    EXPECT_EQ(Describe(*log->ReadFrom(2, 2)),
              (std::vector<std::string>{before_reopen[2], before_reopen[3]}));
    // ReadShared hands out the same changes (here from memory) without copying them.
    EXPECT_EQ(Describe(Unshared(log->ReadShared(0, 100))), before_reopen);
    EXPECT_EQ(Describe(Unshared(log->ReadShared(2, 2))),
              (std::vector<std::string>{before_reopen[2], before_reopen[3]}));
  }
  auto reopened = Open(dir);  // a new process reads everything from SQLite
  auto read = reopened->ReadFrom(0, 100);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(Describe(*read), before_reopen);
  EXPECT_EQ(Describe(Unshared(reopened->ReadShared(0, 100))), before_reopen);
}

TEST(SqliteChangeLog, ReadsPastWhatMemoryHoldsComeFromSqliteInOrder) {
  TempDir dir;
  auto log = Open(dir);
  // About 20 MiB of changes: more than the log keeps in memory.
  JsonObject big;
  big["text"] = std::string(20000, 'x');
  const int count = 1000;
  for (int i = 1; i <= count; ++i) {
    Change change = MakeChange("r", "id" + std::to_string(i), 1, Action::kInsert);
    (*change.after)["blob"] = big;
    ASSERT_TRUE(log->Append(change));
  }
  std::uint64_t after = 0;
  int seen = 0;
  for (int call = 0;; ++call) {
    // ReadFrom and ReadShared in turn: both read across memory and SQLite alike.
    auto read = call % 2 == 0
                    ? log->ReadFrom(after, 64)
                    : Result<std::vector<LoggedChange>>(Unshared(log->ReadShared(after, 64)));
    ASSERT_TRUE(read.has_value());
    if (read->empty()) break;
    for (const LoggedChange& logged : *read) {
      ++seen;
      ASSERT_EQ(logged.sequence, after + 1);
      ASSERT_EQ(logged.change.id, "id" + std::to_string(logged.sequence));
      ASSERT_EQ(logged.change.after->at("blob").as_object().at("text").as_string().size(), 20000u);
      after = logged.sequence;
    }
  }
  EXPECT_EQ(seen, count);

  // After compaction, a read from below what was removed starts at the oldest change kept.
  ASSERT_TRUE(log->SetCheckpoint("only", 990));
  ASSERT_TRUE(log->Compact({"only"}));
  auto rest = log->ReadFrom(0, 100);
  ASSERT_TRUE(rest.has_value());
  ASSERT_EQ(rest->size(), 10u);
  EXPECT_EQ(rest->front().sequence, 991u);
}

std::unique_ptr<ChangeLog> OpenHoldingTheJournal(const TempDir& dir) {
  return OpenTuned(dir, [](SqliteChangeLogOptions& options) {
    options.journal_move_interval = std::chrono::hours(1);  // moved only when asked (or at Close)
  });
}

std::vector<std::string> JournalFiles(const TempDir& dir) {
  std::vector<std::string> files;
  for (const auto& item : std::filesystem::directory_iterator(dir.str() + "/replicator")) {
    std::string name = item.path().filename().string();
    if (name.find("-prepared-") != std::string::npos) files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Runs `work` on a log in a child process that then dies without closing it (no destructors,
// no final move): what a crash leaves behind. The child's exit code says whether `work` held.
void CrashAfter(const TempDir& dir, const std::function<bool(ChangeLog&)>& work) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SqliteChangeLogOptions options;
    options.path = dir.str() + "/replicator/changes.db";
    options.journal_move_interval = std::chrono::hours(1);
    auto log = OpenSqliteChangeLog(options);
    bool ok = log.has_value() && work(**log);
    _exit(ok ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child's work failed";
}

std::vector<std::string> IntentIds(ChangeLog& log) {
  auto intents = log.ListIntents();
  EXPECT_TRUE(intents.has_value());
  std::vector<std::string> ids;
  for (const Change& change : *intents) ids.push_back(change.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

// A burst the journal move has not caught up with: the tail keeps only its newest changes
// in memory (its budget is a few MB), and the older ones are read from the journal's text,
// whole and in order, before and after the move. Before, the tail held every unmoved change,
// so a burst's memory grew with the move's lag.
TEST(SqliteChangeLog, ABurstBeyondTheTailIsReadFromTheJournalWholeAndInOrder) {
  TempDir dir;
  auto log = OpenHoldingTheJournal(dir);
  const std::string text(10000, 'x');  // 600 of these are well past the tail's budget
  for (int i = 1; i <= 600; ++i) {
    Change change = Prepared("r" + std::to_string(i), 1, "w" + std::to_string(i));
    change.after = JsonObject{{"id", change.id}, {"n", i}, {"text", text}};
    S3DB_ASSERT_OK(log->Prepare(change));
    ASSERT_TRUE(log->Append(change).has_value());
  }
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    std::vector<LoggedChange> all;
    while (all.size() < 600) {
      auto read = log->ReadFrom(all.empty() ? 0 : all.back().sequence, 64);
      ASSERT_TRUE(read.has_value()) << read.error().ToString();
      ASSERT_FALSE(read->empty()) << "stopped after " << all.size() << " changes";
      for (auto& logged : *read) all.push_back(std::move(logged));
    }
    ASSERT_EQ(all.size(), 600u);
    for (int i = 1; i <= 600; ++i) {
      const LoggedChange& logged = all[i - 1];
      ASSERT_EQ(logged.sequence, static_cast<std::uint64_t>(i));
      ASSERT_EQ(logged.change.id, "r" + std::to_string(i));
      ASSERT_TRUE(logged.change.after.has_value());
      ASSERT_EQ(logged.change.after->at("n").to_number<int>(), i);
      ASSERT_EQ(logged.change.after->at("text").as_string(), text);
    }
  };
  check("only journaled");
  EXPECT_EQ(*log->CountChanges(), 600u) << "counting moves the journal into SQLite";
  check("moved into SQLite");
}

// The same while it happens: writers outrun a reader past the tail's budget and the
// background thread moves the journal every 2 ms, so the reader's chunks come from the tail,
// the journal's text and SQLite, with changes leaving the journal in between. It must see
// every change once, in sequence order, each with its own record.
TEST(SqliteChangeLog, AReaderBehindTheTailSeesEveryChangeOnceWhileTheJournalMoves) {
  TempDir dir;
  auto opened = OpenTuned(dir, [](SqliteChangeLogOptions& options) {
    options.journal_move_interval = std::chrono::milliseconds(2);
  });
  ASSERT_NE(opened, nullptr);
  ChangeLog& log = *opened;
  constexpr int kWriters = 4;
  constexpr int kEach = 750;
  const std::string text(4000, 'y');
  std::atomic<bool> failed{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kEach && !failed; ++i) {
        std::string id = "w" + std::to_string(w) + "-" + std::to_string(i);
        Change change = Prepared(id, 1, "write-" + id);
        change.after = JsonObject{{"id", id}, {"text", text}};
        if (!log.Prepare(change) || !log.Append(change)) failed = true;
      }
    });
  }
  std::vector<LoggedChange> seen;
  std::string read_error;  // asserted after the writers are joined
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (seen.size() < kWriters * kEach && std::chrono::steady_clock::now() < deadline &&
         !failed) {
    auto read = log.ReadFrom(seen.empty() ? 0 : seen.back().sequence, 50);
    if (!read) {
      read_error = read.error().ToString();
      failed = true;  // stops the writers
      break;
    }
    for (auto& logged : *read) seen.push_back(std::move(logged));
    if (read->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& writer : writers) writer.join();
  ASSERT_TRUE(read_error.empty()) << read_error;
  ASSERT_FALSE(failed) << "a Prepare or Append failed";
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kWriters * kEach));
  std::set<std::string> ids;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i].sequence, i + 1) << "sequence numbers run without a gap or a repeat";
    ASSERT_TRUE(seen[i].change.after.has_value()) << "change " << seen[i].sequence;
    ASSERT_EQ(seen[i].change.after->at("id").as_string(), seen[i].change.id);
    ASSERT_EQ(seen[i].change.after->at("text").as_string().size(), text.size());
    ids.insert(seen[i].change.id);
  }
  EXPECT_EQ(ids.size(), seen.size()) << "every change once";
}

TEST(SqliteChangeLog, PreparedChangesAreJournaledThenMovedIntoSqlite) {
  TempDir dir;
  auto log = OpenHoldingTheJournal(dir);
  Change a = Prepared("a", 1, "w-a");
  Change b = Prepared("b", 1, "w-b");
  S3DB_ASSERT_OK(log->Prepare(a));
  S3DB_ASSERT_OK(log->Prepare(b));
  EXPECT_EQ(JournalFiles(dir), (std::vector<std::string>{"changes.db-prepared-1"}));
  ASSERT_TRUE(log->Append(a));
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a"})) << "read from memory";
  EXPECT_EQ(*log->CountChanges(), 2u) << "counting moves the journal into SQLite first";
  ASSERT_TRUE(log->Append(b));
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a", "2:b"}));
  S3DB_ASSERT_OK(log->Close());
  EXPECT_TRUE(JournalFiles(dir).empty()) << "a closed log leaves no journal behind";

  auto reopened = Open(dir);
  EXPECT_EQ(ReadIds(*reopened), (std::vector<std::string>{"1:a", "2:b"}));
  EXPECT_TRUE(IntentIds(*reopened).empty());
}

TEST(SqliteChangeLog, TheBackgroundThreadMovesTheJournalAndDeletesItsFiles) {
  TempDir dir;
  SqliteChangeLogOptions options;
  options.path = dir.str() + "/replicator/changes.db";
  options.journal_move_interval = std::chrono::milliseconds(5);
  auto log = OpenSqliteChangeLog(options);
  ASSERT_TRUE(log.has_value());
  for (int i = 0; i < 50; ++i) {
    Change change = Prepared("r" + std::to_string(i), 1, "w" + std::to_string(i));
    S3DB_ASSERT_OK((*log)->Prepare(change));
    ASSERT_TRUE((*log)->Append(change));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!JournalFiles(dir).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(JournalFiles(dir).empty());
  EXPECT_EQ(ReadIds(**log).size(), 50u);
}

TEST(SqliteChangeLog, ACrashBeforeTheMoveLosesNoPreparedChange) {
  TempDir dir;
  CrashAfter(dir, [](ChangeLog& log) {
    Change a = Prepared("a", 1, "w-a");  // confirmed and passed by a checkpoint
    Change b = Prepared("b", 1, "w-b");  // confirmed, not yet delivered
    Change c = Prepared("c", 1, "w-c");  // its write never answered
    Change d = Prepared("d", 1, "w-d");  // its write failed
    return log.Prepare(a) && log.Append(a) && log.Prepare(b) && log.Append(b) &&
           log.Prepare(c) && log.Prepare(d) && log.Abandon(d) && log.SetCheckpoint("r", 1);
  });
  ASSERT_EQ(JournalFiles(dir).size(), 1u) << "the dead process left its journal";

  auto log = Open(dir);
  EXPECT_TRUE(JournalFiles(dir).empty()) << "opening moved it into SQLite";
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a", "2:b"}));
  // c may or may not be in the source: the plugin resolves it there.
  EXPECT_EQ(IntentIds(*log), (std::vector<std::string>{"c"}));
  Change next = Prepared("e", 1, "w-e");
  S3DB_ASSERT_OK(log->Prepare(next));
  auto appended = log->Append(next);
  ASSERT_TRUE(appended.has_value());
  EXPECT_EQ(*appended, 5u) << "sequence numbers of the journal are never reused";
}

TEST(SqliteChangeLog, ACrashAfterAMoveKeepsWhatWasMovedAndWhatCameAfter) {
  TempDir dir;
  CrashAfter(dir, [](ChangeLog& log) {
    Change a = Prepared("a", 1, "w-a");
    Change b = Prepared("b", 1, "w-b");
    Change c = Prepared("c", 1, "w-c");
    Change d = Prepared("d", 1, "w-d");
    if (!log.Prepare(a) || !log.Append(a) || !log.Prepare(b) || !log.Prepare(d)) return false;
    if (!log.CountChanges()) return false;  // moves a (confirmed), b and d (pending)
    // d is abandoned after its move, c is only journaled.
    return log.Abandon(d) && log.Prepare(c) && log.Append(b) && log.SetCheckpoint("r", 2);
  });
  auto log = Open(dir);
  EXPECT_TRUE(JournalFiles(dir).empty());
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a", "2:b"}));
  EXPECT_EQ(IntentIds(*log), (std::vector<std::string>{"c"}));
}

// A change moved into SQLite while its write was still running has a pending row there; its
// confirmation (or abandon) goes to a newer journal file, and the file of the change itself
// may be deleted before that row is cleared. A crash then must not make it an intent (which
// the plugin would forget once a later change of the record exists).
TEST(SqliteChangeLog, AConfirmationWhoseChangeFileIsGoneStillSettlesTheChange) {
  TempDir dir;
  CrashAfter(dir, [](ChangeLog& log) {
    Change a = Prepared("a", 1, "w-a");
    Change d = Prepared("d", 1, "w-d");
    return log.Prepare(a) && log.Prepare(d) && log.CountChanges();  // both moved, pending
  });
  std::string folder = dir.str() + "/replicator/";
  // The dead process left its first journal file, unless its background thread already
  // deleted it (all moved; a slow run gives it the time): the state the remove below makes.
  auto left = JournalFiles(dir);
  ASSERT_TRUE(left.empty() || left == std::vector<std::string>{"changes.db-prepared-1"})
      << left.size() << " journal files";
  // What the dead process did next: a's write succeeded, d's failed (journaled in the next
  // file), and the background thread deleted the first file, all moved.
  std::filesystem::remove(folder + "changes.db-prepared-1");
  std::ofstream(folder + "changes.db-prepared-2", std::ios::binary)
      << internal::JournalEntry(internal::JournalRecordKind::kConfirm).Finish(1)
      << internal::JournalEntry(internal::JournalRecordKind::kAbandon).Finish(2);

  auto log = Open(dir);
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a"}));
  EXPECT_TRUE(IntentIds(*log).empty());
  EXPECT_EQ(*log->CountChanges(), 1u);
}

TEST(SqliteChangeLog, ARecordTornByACrashIsIgnoredAndTheRestIsKept) {
  TempDir dir;
  CrashAfter(dir, [](ChangeLog& log) {
    Change a = Prepared("a", 1, "w-a");
    Change b = Prepared("b", 1, "w-b");
    return log.Prepare(a) && log.Append(a) && log.Prepare(b);
  });
  auto files = JournalFiles(dir);
  ASSERT_EQ(files.size(), 1u);
  std::string path = dir.str() + "/replicator/" + files[0];
  // The process died inside b's write (so b's Prepare never returned): its record is cut.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);

  auto log = Open(dir);
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a"}));
  EXPECT_TRUE(IntentIds(*log).empty());
  Change next = Prepared("c", 1, "w-c");
  S3DB_ASSERT_OK(log->Prepare(next));
  ASSERT_TRUE(log->Append(next));
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"1:a", "2:c"}));
}

TEST(SqliteChangeLog, AJournalWriteThatFailsFailsThePrepareAndTheNextOneWorks) {
  TempDir dir;
  auto log = OpenHoldingTheJournal(dir);
  // The first journal file is a device that is always full.
  std::filesystem::create_symlink("/dev/full", dir.str() + "/replicator/changes.db-prepared-1");
  Change a = Prepared("a", 1, "w-a");
  auto failed = log->Prepare(a);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, ErrorCode::kIo);
  EXPECT_NE(failed.error().message.find("changes.db-prepared-1"), std::string::npos)
      << failed.error().message;
  EXPECT_NE(failed.error().message.find("No space left on device"), std::string::npos)
      << failed.error().message;
  EXPECT_TRUE(ReadIds(*log).empty());

  Change b = Prepared("b", 1, "w-b");
  S3DB_ASSERT_OK(log->Prepare(b));
  ASSERT_TRUE(log->Append(b));
  EXPECT_EQ(ReadIds(*log), (std::vector<std::string>{"2:b"}));
  S3DB_ASSERT_OK(log->Close());
  auto reopened = Open(dir);
  EXPECT_EQ(ReadIds(*reopened), (std::vector<std::string>{"2:b"}));
}

TEST(SqliteChangeLog, ReadsAcrossJournaledAndCompactedChangesMissNothing) {
  TempDir dir;
  auto log = OpenHoldingTheJournal(dir);
  for (int i = 1; i <= 20; ++i) {
    Change change = Prepared("r" + std::to_string(i), 1, "w" + std::to_string(i));
    S3DB_ASSERT_OK(log->Prepare(change));
    ASSERT_TRUE(log->Append(change));
    if (i == 10) ASSERT_TRUE(log->CountChanges());  // 1-10 in SQLite, 11-20 only journaled
  }
  ASSERT_TRUE(log->SetCheckpoint("only", 5));
  ASSERT_TRUE(log->Compact({"only"}));
  std::vector<std::string> ids = ReadIds(*log);
  ASSERT_EQ(ids.size(), 15u);
  EXPECT_EQ(ids.front(), "6:r6");
  EXPECT_EQ(ids.back(), "20:r20");
}

TEST(PrepareJournal, RecordsReadBackExactlyAndADamagedOneEndsTheFile) {
  TempDir dir;
  Change update = MakeChange("users", "ü/1", 7, Action::kUpdate);
  update.write_id = "w-7";
  std::string before = ToJson(*update.before);
  std::string after = ToJson(*update.after);
  std::string bytes = internal::JournalEntry(update, before, after).Finish(41) +
                      internal::JournalEntry(internal::JournalRecordKind::kConfirm).Finish(41) +
                      internal::JournalEntry(MakeChange("users", "x", 1, Action::kDelete),
                                             std::nullopt, std::nullopt)
                          .Finish(42) +
                      internal::JournalEntry(internal::JournalRecordKind::kAbandon).Finish(42);
  std::string path = dir.str() + "/journal";
  auto write = [&](const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  };
  write(bytes);
  auto read = internal::ReadJournalFile(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_FALSE(read->torn);
  ASSERT_EQ(read->records.size(), 4u);
  const auto& first = read->records[0];
  EXPECT_EQ(first.kind, internal::JournalRecordKind::kPrepare);
  EXPECT_EQ(first.sequence, 41u);
  EXPECT_EQ(first.change.ChangeId(), "users:ü/1:7");
  EXPECT_EQ(first.change.action, Action::kUpdate);
  EXPECT_EQ(first.change.timestamp_ms, update.timestamp_ms);
  EXPECT_EQ(first.change.write_id, "w-7");
  EXPECT_EQ(first.before_json, before);
  EXPECT_EQ(first.after_json, after);
  EXPECT_EQ(read->records[1].kind, internal::JournalRecordKind::kConfirm);
  EXPECT_FALSE(read->records[2].before_json.has_value());
  EXPECT_FALSE(read->records[2].after_json.has_value());
  EXPECT_EQ(read->records[3].kind, internal::JournalRecordKind::kAbandon);
  EXPECT_EQ(read->records[3].sequence, 42u);

  // One flipped byte in the third record: the first two are kept, the rest is not trusted.
  std::string damaged = bytes;
  std::size_t third = bytes.find(internal::JournalEntry(MakeChange("users", "x", 1,
                                                                   Action::kDelete),
                                                        std::nullopt, std::nullopt)
                                     .Finish(42));
  ASSERT_NE(third, std::string::npos);
  damaged[third + 20] ^= 0x40;
  write(damaged);
  read = internal::ReadJournalFile(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_TRUE(read->torn);
  EXPECT_EQ(read->records.size(), 2u);
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
