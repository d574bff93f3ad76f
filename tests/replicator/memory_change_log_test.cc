// The pluggable change log: the in-memory ChangeLog keeps the contract, and the plugin runs end
// to end on it through ReplicatorPluginOptions::change_log.
#include <gtest/gtest.h>

#include <filesystem>

#include "replicator/change_log.h"
#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using s3db::testing::FastOptions;
using s3db::testing::MemoryDatabase;
using s3db::testing::TempDir;
using s3db::testing::TestReplicator;
using s3db::testing::UniqueToken;

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
  if (action != Action::kDelete) change.after = record;
  return change;
}

JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

TEST(MemoryChangeLog, AppendsReadsCompactsAndNeverReusesSequences) {
  auto log = NewMemoryChangeLog();
  for (int i = 1; i <= 100; ++i) {
    auto sequence = log->Append(MakeChange("r", "x", i, Action::kInsert));
    ASSERT_TRUE(sequence.has_value());
    EXPECT_EQ(*sequence, static_cast<std::uint64_t>(i));
  }
  EXPECT_EQ(log->LastSequence(), 100u);
  auto read = log->ReadFrom(10, 5);
  ASSERT_TRUE(read.has_value());
  ASSERT_EQ(read->size(), 5u);
  EXPECT_EQ(read->front().sequence, 11u);
  EXPECT_EQ(read->front().change.ChangeId(), "r:x:11");
  auto shared = log->ReadShared(10, 5);  // the default, through ReadFrom
  ASSERT_TRUE(shared.has_value());
  ASSERT_EQ(shared->size(), 5u);
  EXPECT_EQ(shared->front()->sequence, 11u);
  EXPECT_EQ(shared->back()->change.ChangeId(), "r:x:15");

  ASSERT_TRUE(log->SetCheckpoint("fast", 90));
  ASSERT_TRUE(log->SetCheckpoint("slow", 40));
  EXPECT_EQ(*log->Compact({"fast", "new"}), 0u);  // no checkpoint yet: keeps everything
  EXPECT_EQ(*log->Compact({"fast", "slow"}), 40u);
  EXPECT_EQ(*log->CountChanges(), 60u);
  ASSERT_TRUE(log->SetCheckpoint("slow", 100));
  ASSERT_TRUE(log->SetCheckpoint("fast", 100));
  EXPECT_EQ(*log->Compact({"fast", "slow"}), 59u);  // the newest change is kept
  auto next = log->Append(MakeChange("r", "x", 101, Action::kInsert));
  EXPECT_EQ(*next, 101u);
  EXPECT_TRUE(log->WaitForAppend(100, 10ms));
  EXPECT_FALSE(log->WaitForAppend(101, 10ms));
}

TEST(MemoryChangeLog, IntentsDeadLettersStateAndClose) {
  auto log = NewMemoryChangeLog();
  Change intent = MakeChange("users", "u1", 1, Action::kInsert);
  ASSERT_TRUE(log->Prepare(intent));
  ASSERT_TRUE(log->Prepare(MakeChange("users", "u2", 1, Action::kInsert)));
  EXPECT_EQ(log->ListIntents()->size(), 2u);
  ASSERT_TRUE(log->Append(intent));  // forgets its intent
  ASSERT_TRUE(log->Abandon(MakeChange("users", "u2", 1, Action::kInsert)));
  EXPECT_TRUE(log->ListIntents()->empty());

  for (int i = 0; i < 3; ++i) {
    DeadLetter letter;
    letter.replicator = i < 2 ? "a" : "b";
    letter.change = MakeChange("users", "u" + std::to_string(i), 4, Action::kUpdate);
    letter.destination = "people";
    letter.reason = "max_retries";
    ASSERT_TRUE(log->AddDeadLetter(letter).has_value());
  }
  EXPECT_EQ(*log->CountDeadLetters("a"), 2u);
  EXPECT_EQ(log->ListDeadLetters("a", 1)->size(), 1u);
  auto requeued = log->RequeueDeadLetters("a");
  ASSERT_EQ(requeued->size(), 2u);
  auto read = log->ReadFrom(requeued->front() - 1, 10);
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].only_replicator, "a");
  EXPECT_EQ((*read)[0].only_destination, "people");
  EXPECT_EQ(*log->CountDeadLetters("a"), 0u);
  EXPECT_EQ(*log->PurgeDeadLetters("b"), 1u);

  ASSERT_TRUE(log->SetState("k", "v"));
  EXPECT_EQ(**log->GetState("k"), "v");
  ASSERT_TRUE(log->DeleteState("k"));
  EXPECT_FALSE(log->GetState("k")->has_value());

  ASSERT_TRUE(log->Close());
  auto appended = log->Append(intent);
  ASSERT_FALSE(appended.has_value());
  EXPECT_EQ(appended.error().code, ErrorCode::kUnavailable);
}

TEST(MemoryChangeLog, ThePluginRunsEndToEndOnIt) {
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  ResourceDefinition definition;
  definition.name = "users";
  auto users = db->CreateResource(definition);
  ASSERT_TRUE(users.has_value());

  auto options = FastOptions();
  options.max_retries = 0;
  int factory_calls = 0;
  ChangeLog* opened = nullptr;
  options.change_log = [&](const ChangeLogContext& context) -> Result<std::unique_ptr<ChangeLog>> {
    ++factory_calls;
    EXPECT_EQ(context.state_dir, dir.str() + "/state");
    EXPECT_EQ(context.path, dir.str() + "/state/replicator/changes.db");
    EXPECT_EQ(context.fsync, FsyncPolicy::kBatch);
    auto log = NewMemoryChangeLog();
    opened = log.get();
    return log;
  };
  // A copy to another database (the s3db driver) and a test sink that refuses one record.
  const std::string bucket = "memory://memlog-" + UniqueToken();
  ReplicatorConfig copy;
  copy.id = "copy";
  copy.driver = "s3db";
  copy.resources.Add("users", "people");
  copy.config["connectionString"] = bucket;
  options.replicators.push_back(copy);
  ReplicatorConfig picky;
  auto sink = TestReplicator(picky, ResourceMapping().Add("users"), "picky");
  sink->SetBehaviour([](const DeliveryItem& item) {
    return item.id == "bad" ? DeliveryResult::Permanent("refused", "no bad ones")
                            : DeliveryResult::Delivered();
  });
  options.replicators.push_back(picky);

  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  S3DB_ASSERT_OK(db->UsePlugin(plugin));
  EXPECT_EQ(factory_calls, 1);
  ASSERT_NE(opened, nullptr);

  ASSERT_TRUE((*users)->Insert(Obj(R"({"id": "u1", "name": "Ann"})")));
  ASSERT_TRUE((*users)->Insert(Obj(R"({"id": "bad", "name": "Bob"})")));
  ASSERT_TRUE((*users)->Update("u1", Obj(R"({"name": "Ann B"})")));
  ASSERT_TRUE((*users)->Delete("bad"));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));

  // Every change went through the memory log, none to a SQLite file.
  EXPECT_EQ(opened->LastSequence(), 4u);
  EXPECT_FALSE(std::filesystem::exists(dir.str() + "/state/replicator/changes.db"));

  auto target = Database::Connect(bucket);
  ASSERT_TRUE(target.has_value());
  auto people = (*target)->GetResource("people");
  ASSERT_TRUE(people.has_value());
  EXPECT_EQ((*people)->Get("u1")->at("name").as_string(), "Ann B");
  EXPECT_FALSE((*people)->Exists("bad").value());

  // Dead letters live in the memory log, and replay through it.
  auto letters = plugin->ListDeadLetters("picky");
  ASSERT_TRUE(letters.has_value());
  ASSERT_EQ(letters->size(), 2u);  // insert and delete of "bad"
  EXPECT_EQ(letters->front().reason, "refused");
  sink->SetBehaviour({});
  EXPECT_EQ(*plugin->ReplayDeadLetters("picky"), 2u);
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));
  EXPECT_EQ(plugin->GetReplicatorStats("picky")->dead_letter_count, 0u);

  // Backfill state and checkpoints too.
  S3DB_ASSERT_OK(plugin->SyncAllData("copy"));
  auto stats = plugin->GetReplicatorStats("copy");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->checkpoint, opened->LastSequence());
  EXPECT_EQ(stats->lag_changes, 0u);
  S3DB_ASSERT_OK(db->Close());
}

TEST(MemoryChangeLog, AFailingFactoryFailsInstallWithItsMessage) {
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  auto options = FastOptions();
  options.change_log = [](const ChangeLogContext&) -> Result<std::unique_ptr<ChangeLog>> {
    return MakeError(ErrorCode::kUnavailable, "cluster unreachable");
  };
  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  auto installed = db->UsePlugin(plugin);
  ASSERT_FALSE(installed.has_value());
  EXPECT_EQ(installed.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(installed.error().message,
            "replicator: the change log factory failed: cluster unreachable");
}

}  // namespace
}  // namespace s3db::replicator
