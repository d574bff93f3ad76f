// Resource behaviour on every store: memory, file and S3.
#include <gtest/gtest.h>

#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "fault_store.h"
#include "s3db/s3db.h"
#include "store_factory.h"
#include "test_util.h"

namespace s3db {
namespace {

using testing::TempDir;

JsonObject Object(std::string_view text) {
  auto parsed = ParseJsonObject(text);
  EXPECT_TRUE(parsed) << parsed.error().ToString();
  return parsed ? *parsed : JsonObject();
}

// Records every change it sees.
class RecordingPlugin : public Plugin {
 public:
  std::string_view Name() const override { return "recording"; }
  Status OnChange(const Change& change) override {
    std::lock_guard lock(mutex);
    changes.push_back(change);
    return Ok();
  }
  std::vector<Change> Snapshot() {
    std::lock_guard lock(mutex);
    return changes;
  }
  std::mutex mutex;  // guards changes
  std::vector<Change> changes;
};

class ResourceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    S3DB_SKIP_UNLESS_STORE(GetParam());
    connection_ = testing::FreshConnectionString(GetParam(), dir_);
    DatabaseOptions options;
    options.state_dir = dir_.str() + "/state";
    auto db = Database::Connect(connection_, options);
    ASSERT_TRUE(db) << db.error().ToString();
    db_ = std::move(*db);
    plugin_ = std::make_shared<RecordingPlugin>();
    S3DB_ASSERT_OK(db_->UsePlugin(plugin_));
    ResourceDefinition users;
    users.name = "users";
    users.attributes = Object(R"({"name": "string|required", "email": "email",
                                  "age": "number|min:0", "address": {"city": "string"}})");
    auto created = db_->CreateResource(users);
    ASSERT_TRUE(created) << created.error().ToString();
    users_ = *created;
  }

  TempDir dir_;
  std::string connection_;
  std::unique_ptr<Database> db_;
  std::shared_ptr<RecordingPlugin> plugin_;
  Resource* users_ = nullptr;
};

TEST_P(ResourceTest, InsertGeneratesIdAndRevision) {
  auto inserted = users_->Insert(Object(R"({"name": "Ann", "email": "ann@example.com"})"));
  S3DB_ASSERT_OK(inserted);
  std::string id(inserted->at("id").as_string());
  EXPECT_EQ(id.size(), 22u);
  for (char c : id)
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
  EXPECT_EQ(inserted->at("_rev").to_number<std::uint64_t>(), 1u);
  auto got = users_->Get(id);
  S3DB_ASSERT_OK(got);
  EXPECT_EQ(got->at("name").as_string(), "Ann");
}

TEST_P(ResourceTest, InsertOfExistingIdFails) {
  S3DB_ASSERT_OK(users_->Insert(Object(R"({"id": "u1", "name": "Ann"})")));
  S3DB_EXPECT_ERROR(users_->Insert(Object(R"({"id": "u1", "name": "Bob"})")),
                    ErrorCode::kAlreadyExists);
  EXPECT_EQ(users_->Get("u1")->at("name").as_string(), "Ann");
}

TEST_P(ResourceTest, UpdateDeepMergesAndIncrementsRevision) {
  S3DB_ASSERT_OK(users_->Insert(
      Object(R"({"id": "u1", "name": "Ann", "address": {"city": "Rio", "zip": "1"}})")));
  auto updated = users_->Update("u1", Object(R"({"address": {"city": "Oslo"}})"));
  S3DB_ASSERT_OK(updated);
  EXPECT_EQ(updated->at("address").at("city").as_string(), "Oslo");
  EXPECT_EQ(updated->at("address").at("zip").as_string(), "1");
  EXPECT_EQ(updated->at("_rev").to_number<std::uint64_t>(), 2u);
  S3DB_EXPECT_ERROR(users_->Update("missing", Object(R"({"name": "x"})")), ErrorCode::kNotFound);
}

TEST_P(ResourceTest, ReplacePatchUpsertAndDelete) {
  S3DB_ASSERT_OK(users_->Upsert(Object(R"({"id": "u1", "name": "Ann", "age": 3})")));
  S3DB_ASSERT_OK(users_->Upsert(Object(R"({"id": "u1", "age": 4})")));
  EXPECT_EQ(users_->Get("u1")->at("name").as_string(), "Ann");
  S3DB_ASSERT_OK(users_->Patch("u1", Object(R"({"address": {"zip": "9"}})")));
  EXPECT_FALSE(users_->Get("u1")->at("address").as_object().contains("city"));
  S3DB_ASSERT_OK(users_->Replace("u1", Object(R"({"name": "Zed"})")));
  auto replaced = users_->Get("u1");
  S3DB_ASSERT_OK(replaced);
  EXPECT_FALSE(replaced->contains("age"));
  EXPECT_EQ(replaced->at("_rev").to_number<std::uint64_t>(), 4u);
  S3DB_ASSERT_OK(users_->Delete("u1"));
  EXPECT_FALSE(*users_->Exists("u1"));
  S3DB_EXPECT_ERROR(users_->Delete("u1"), ErrorCode::kNotFound);
  S3DB_EXPECT_ERROR(users_->Patch("u1", Object("{}")), ErrorCode::kNotFound);
}

TEST_P(ResourceTest, EveryWriteEmitsOneChangeWithBeforeAndAfter) {
  S3DB_ASSERT_OK(users_->Insert(Object(R"({"id": "u1", "name": "Ann"})")));
  S3DB_ASSERT_OK(users_->Update("u1", Object(R"({"name": "Anna"})")));
  S3DB_ASSERT_OK(users_->Delete("u1"));
  S3DB_ASSERT_OK(users_->Insert(Object(R"({"id": "u1", "name": "Again"})")));
  auto changes = plugin_->Snapshot();
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].action, Action::kInsert);
  EXPECT_FALSE(changes[0].before);
  EXPECT_EQ(changes[0].ChangeId(), "users:u1:1");
  EXPECT_EQ(changes[1].action, Action::kUpdate);
  EXPECT_EQ(changes[1].before->at("name").as_string(), "Ann");
  EXPECT_EQ(changes[1].after->at("name").as_string(), "Anna");
  EXPECT_EQ(changes[2].action, Action::kDelete);
  EXPECT_EQ(changes[2].before->at("name").as_string(), "Anna");
  EXPECT_FALSE(changes[2].after);
  EXPECT_EQ(changes[2].revision, 3u);
  // A re-insert after a delete continues the revision, so change ids never repeat.
  EXPECT_EQ(changes[3].ChangeId(), "users:u1:4");
}

TEST_P(ResourceTest, ManyCallsAndDeleteAllEmitOneChangePerRecord) {
  std::vector<JsonObject> records;
  for (int i = 0; i < 40; ++i) {
    records.push_back(Object(R"({"name": "n"})"));
    records.back()["id"] = "id" + std::to_string(i);
  }
  records.push_back(Object(R"({"id": "bad"})"));  // name is required
  auto results = users_->InsertMany(records);
  ASSERT_EQ(results.size(), 41u);
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(results[i]) << results[i].error().ToString();
  EXPECT_EQ(results[40].error().code, ErrorCode::kValidation);

  auto many = users_->GetMany({"id1", "nope", "id2"});
  EXPECT_TRUE(many[0]);
  EXPECT_EQ(many[1].error().code, ErrorCode::kNotFound);
  EXPECT_EQ(*users_->Count(), 40u);

  auto deleted = users_->DeleteMany({"id0", "id1"});
  EXPECT_TRUE(deleted[0] && deleted[1]);
  S3DB_EXPECT_ERROR(users_->DeleteAll(false), ErrorCode::kInvalidArgument);
  auto all = users_->DeleteAll(true);
  S3DB_ASSERT_OK(all);
  EXPECT_EQ(*all, 38u);
  EXPECT_EQ(*users_->Count(), 0u);
  EXPECT_EQ(plugin_->Snapshot().size(), 80u);
}

TEST_P(ResourceTest, ModifyWritesWhatItsFunctionReturnsOrLeavesTheRecordAndEmitsNothing) {
  S3DB_ASSERT_OK(users_->Insert(Object(R"({"id": "u1", "name": "Ann", "age": 30})")));
  std::vector<std::optional<JsonObject>> seen;
  auto keep = users_->Modify(
      "u1", [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
        seen.push_back(current);
        return std::nullopt;
      });
  S3DB_ASSERT_OK(keep);
  EXPECT_FALSE(keep->has_value());
  ASSERT_EQ(seen.size(), 1u);
  ASSERT_TRUE(seen[0].has_value());
  EXPECT_EQ(seen[0]->at("name").as_string(), "Ann");
  EXPECT_EQ(plugin_->Snapshot().size(), 1u);  // the insert only
  EXPECT_EQ(users_->Get("u1")->at("_rev").to_number<std::uint64_t>(), 1u);

  auto older = users_->Modify(
      "u1", [](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
        JsonObject next = *current;
        next["age"] = 31;
        return next;
      });
  S3DB_ASSERT_OK(older);
  ASSERT_TRUE(older->has_value());
  EXPECT_EQ((*older)->at("_rev").to_number<std::uint64_t>(), 2u);
  EXPECT_EQ(users_->Get("u1")->at("age").to_number<int>(), 31);
  auto changes = plugin_->Snapshot();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].action, Action::kUpdate);
  EXPECT_EQ(changes[1].after->at("age").to_number<int>(), 31);
  EXPECT_EQ(*changes[1].after, **older);  // what it returns is what was stored and emitted

  // A missing record: the function sees nullopt, and what it returns is inserted.
  auto created = users_->Modify(
      "u2", [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
        EXPECT_FALSE(current.has_value());
        return Object(R"({"name": "Bo"})");
      });
  S3DB_ASSERT_OK(created);
  EXPECT_EQ(plugin_->Snapshot().back().action, Action::kInsert);
  EXPECT_EQ(users_->Get("u2")->at("name").as_string(), "Bo");

  // Its errors are the call's, and nothing is written.
  auto refused = users_->Modify(
      "u2", [](const std::optional<JsonObject>&) -> Result<std::optional<JsonObject>> {
        return MakeError(ErrorCode::kInvalidArgument, "no thanks");
      });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "no thanks");
  EXPECT_EQ(plugin_->Snapshot().size(), 3u);
}

TEST_P(ResourceTest, ModifyCallsItsFunctionAgainWithTheWinnerAfterALostRace) {
  S3DB_ASSERT_OK(users_->Insert(Object(R"({"id": "u1", "name": "Ann", "age": 1})")));
  int calls = 0;
  auto result = users_->Modify(
      "u1", [&](const std::optional<JsonObject>& current) -> Result<std::optional<JsonObject>> {
        if (++calls == 1) {
          // Another writer stores a newer version between this read and this write.
          EXPECT_TRUE(users_->Update("u1", Object(R"({"age": 2})")).has_value());
        }
        JsonObject next = *current;
        next["age"] = current->at("age").to_number<int>() * 10;
        return next;
      });
  S3DB_ASSERT_OK(result);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(users_->Get("u1")->at("age").to_number<int>(), 20);
  EXPECT_EQ(users_->Get("u1")->at("_rev").to_number<std::uint64_t>(), 3u);
}

TEST_P(ResourceTest, ListPagesAndQueries) {
  for (int i = 0; i < 12; ++i) {
    JsonObject record = Object(R"({"name": "n", "address": {"city": "c"}})");
    record["id"] = "r" + std::to_string(10 + i);
    record["age"] = i;
    record["name"] = i % 2 ? "odd" : "even";
    S3DB_ASSERT_OK(users_->Insert(record));
  }
  auto ids = users_->ListIds();
  S3DB_ASSERT_OK(ids);
  EXPECT_EQ(ids->size(), 12u);
  EXPECT_EQ(users_->List({.limit = 5, .offset = 10})->size(), 2u);

  std::vector<std::string> paged;
  std::string cursor;
  int pages = 0;
  do {
    auto page = users_->GetPage(cursor, 5);
    S3DB_ASSERT_OK(page);
    for (const auto& record : page->items) paged.emplace_back(record.at("id").as_string());
    cursor = page->next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(paged, *ids);

  auto adults = users_->Query(Object(R"({"age": {"$gte": 5, "$lt": 9}, "name": "odd"})"));
  S3DB_ASSERT_OK(adults);
  EXPECT_EQ(adults->size(), 2u);  // 5 and 7
  EXPECT_EQ(users_->Query(Object(R"({"age": {"$in": [1, 2, 300]}})"))->size(), 2u);
  EXPECT_EQ(users_->Query(Object(R"({"age": {"$nin": [1, 2]}})"))->size(), 10u);
  EXPECT_EQ(users_->Query(Object(R"({"email": {"$exists": false}})"))->size(), 12u);
  EXPECT_EQ(users_->Query(Object(R"({"address.city": {"$eq": "c"}})"))->size(), 12u);
  EXPECT_EQ(users_->Query(Object(R"({"age": {"$ne": 3}})"), {.limit = 4})->size(), 4u);
  auto bad = users_->Query(Object(R"({"age": {"$regex": "x"}})"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("unknown operator '$regex' for field 'age'"),
            std::string::npos);
}

TEST_P(ResourceTest, ConcurrentUpdatesNeverLoseAWrite) {
  S3DB_ASSERT_OK(users_->Insert(Object(R"({"id": "counter", "name": "c", "age": 0})")));
  constexpr int kThreads = 4, kEach = 5;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        JsonObject patch;
        patch["w" + std::to_string(t) + "_" + std::to_string(i)] = true;
        auto updated = users_->Update("counter", patch);
        if (!updated) {
          ++failures;
          ADD_FAILURE() << updated.error().ToString();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  auto record = users_->Get("counter");
  S3DB_ASSERT_OK(record);
  EXPECT_EQ(record->at("_rev").to_number<std::uint64_t>(), 1u + kThreads * kEach);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      EXPECT_TRUE(record->contains("w" + std::to_string(t) + "_" + std::to_string(i)));
    }
  }
}

TEST_P(ResourceTest, ANewProcessFindsEveryResourceInTheCatalogue) {
  ResourceDefinition orders;
  orders.name = "orders";
  orders.attributes = Object(R"({"total": "number|required"})");
  orders.timestamps = true;
  S3DB_ASSERT_OK(db_->CreateResource(orders));
  auto again = Database::Connect(connection_);
  S3DB_ASSERT_OK(again);
  EXPECT_EQ((*again)->ListResources(), (std::vector<std::string>{"orders", "users"}));
  auto reopened = (*again)->GetResource("orders");
  S3DB_ASSERT_OK(reopened);
  EXPECT_TRUE((*reopened)->definition().timestamps);
  S3DB_EXPECT_ERROR((*reopened)->Insert(Object(R"({"total": "x"})")), ErrorCode::kValidation);
  auto inserted = (*reopened)->Insert(Object(R"({"total": 5})"));
  S3DB_ASSERT_OK(inserted);
  EXPECT_TRUE(inserted->contains("createdAt"));
  auto missing = (*again)->GetResource("nope");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("known: orders, users"), std::string::npos);
}

TEST_P(ResourceTest, BadInputIsRejectedWithTheFieldNamed) {
  for (const char* id : {"a/b", "a\\b", "a=b", "50%", "tab\there", ".."}) {
    JsonObject record = Object(R"({"name": "x"})");
    record["id"] = id;
    S3DB_EXPECT_ERROR(users_->Insert(record), ErrorCode::kInvalidArgument);
  }
  JsonObject long_id = Object(R"({"name": "x"})");
  long_id["id"] = std::string(256, 'a');
  S3DB_EXPECT_ERROR(users_->Insert(long_id), ErrorCode::kInvalidArgument);
  // 255 bytes is the limit; the S3 test server cannot store file names that long (its own
  // limit, not S3's), so it gets a shorter valid id.
  long_id["id"] = std::string(GetParam() == "s3" ? 150 : 255, 'a');
  S3DB_EXPECT_OK(users_->Insert(long_id));

  JsonObject bad_utf8 = Object(R"({"name": "x", "address": {}})");
  bad_utf8["address"].as_object()["city"] = std::string("\xff\xfe");
  auto rejected = users_->Insert(bad_utf8);
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().message.find("address.city is not valid UTF-8"), std::string::npos)
      << rejected.error().message;

  JsonObject huge = Object(R"({"name": "x"})");
  huge["blob"] = std::string(33 * 1024 * 1024, 'x');
  auto too_big = users_->Insert(huge);
  ASSERT_FALSE(too_big);
  EXPECT_NE(too_big.error().message.find("the limit is"), std::string::npos);
  EXPECT_EQ(plugin_->Snapshot().size(), 1u);  // only the valid 255-byte id
}

TEST_P(ResourceTest, InvalidUtf8IsNamedByItsFullPath) {
  struct Case {
    const char* record;  // "BAD" is replaced by an invalid byte sequence
    const char* path;
  };
  for (const Case& bad : {Case{R"({"name": "x", "note": "BAD"})", "field note is"},
                          Case{R"({"name": "x", "tags": ["ok", "BAD"]})", "field tags[1] is"},
                          Case{R"({"name": "x", "m": [[1], ["a", "BAD"]]})", "field m[1][1] is"},
                          Case{R"({"name": "x", "items": [{"k": "BAD"}]})", "field items[0].k is"},
                          Case{R"({"name": "x", "a": {"b": {"c": "BAD"}}})", "field a.b.c is"},
                          Case{R"({"name": "x", "a": {"BAD": 1}})", "(the field name)"}}) {
    std::string text = bad.record;
    text.replace(text.find("BAD"), 3, "\\u00ff");
    JsonObject record = Object(text);
    // Make the marked string invalid UTF-8 (JSON text itself cannot carry such bytes).
    std::function<void(Json&)> spoil = [&](Json& value) {
      if (value.is_string() && value.as_string() == "\xc3\xbf") value = "\xff\xfe";
      if (value.is_array()) {
        for (Json& element : value.as_array()) spoil(element);
      }
      if (value.is_object()) {
        JsonObject& object = value.as_object();
        if (object.contains("\xc3\xbf")) {
          Json moved = object.at("\xc3\xbf");
          object.erase("\xc3\xbf");
          object["\xff\xfe"] = moved;
        }
        for (auto& field : object) spoil(field.value());
      }
    };
    Json wrapped = record;
    spoil(wrapped);
    auto rejected = users_->Insert(wrapped.as_object());
    ASSERT_FALSE(rejected) << bad.record;
    EXPECT_NE(rejected.error().message.find(std::string(bad.path)), std::string::npos)
        << rejected.error().message;
    EXPECT_NE(rejected.error().message.find("not valid UTF-8"), std::string::npos);
  }
  EXPECT_TRUE(plugin_->Snapshot().empty());
}

TEST_P(ResourceTest, DeepAndWideRecordsRoundTrip) {
  JsonObject record = Object(R"({"id": "deep", "name": "x"})");
  Json nested = JsonObject();
  for (int i = 0; i < 500; ++i) {
    JsonObject wrapper;
    wrapper["n"] = std::move(nested);
    nested = std::move(wrapper);
  }
  record["nested"] = std::move(nested);
  for (int i = 0; i < 2000; ++i) record["f" + std::to_string(i)] = i;
  record["big"] = 18446744073709551615ULL;
  S3DB_ASSERT_OK(users_->Insert(record));
  auto got = users_->Get("deep");
  S3DB_ASSERT_OK(got);
  EXPECT_EQ(got->at("big").as_uint64(), 18446744073709551615ULL);
  EXPECT_EQ(got->at("f1999").as_int64(), 1999);
}

INSTANTIATE_TEST_SUITE_P(AllStores, ResourceTest, ::testing::Values("memory", "file", "s3"),
                         [](const auto& info) { return info.param; });

TEST(DatabaseTest, PluginsSeeResourcesCreatedLater) {
  auto db = Database::Connect("memory://late-" + testing::UniqueToken());
  S3DB_ASSERT_OK(db);
  struct Seen : Plugin {
    std::string_view Name() const override { return "seen"; }
    void OnResourceCreated(Resource& resource) override { names.push_back(resource.name()); }
    Status OnChange(const Change& change) override {
      ++changes;
      return Ok();
    }
    std::vector<std::string> names;
    int changes = 0;
  };
  auto plugin = std::make_shared<Seen>();
  S3DB_ASSERT_OK((*db)->UsePlugin(plugin));
  ResourceDefinition later;
  later.name = "later";
  auto created = (*db)->CreateResource(later);
  S3DB_ASSERT_OK(created);
  S3DB_ASSERT_OK((*created)->Insert(JsonObject()));
  EXPECT_EQ(plugin->names, std::vector<std::string>{"later"});
  EXPECT_EQ(plugin->changes, 1);
}

TEST(DatabaseTest, EventsReachTheirSubscribers) {
  auto db = Database::Connect("memory://events-" + testing::UniqueToken());
  S3DB_ASSERT_OK(db);
  std::vector<std::string> seen;
  auto handle = (*db)->On("resource:created", [&](const Json& payload) {
    seen.emplace_back(payload.at("resource").as_string());
  });
  ResourceDefinition a;
  a.name = "a";
  S3DB_ASSERT_OK((*db)->CreateResource(a));
  (*db)->Off(handle);
  a.name = "b";
  S3DB_ASSERT_OK((*db)->CreateResource(a));
  EXPECT_EQ(seen, std::vector<std::string>{"a"});
}

TEST(DatabaseTest, StoreFaultsSurfaceAsErrorsAndWriteNothingHalfway) {
  auto faulty = std::make_unique<testing::FaultInjectingStore>(NewMemoryStore());
  auto* store = faulty.get();
  auto db = Database::Open(std::move(faulty));
  S3DB_ASSERT_OK(db);
  ResourceDefinition items;
  items.name = "items";
  auto resource = (*db)->CreateResource(items);
  S3DB_ASSERT_OK(resource);
  auto plugin = std::make_shared<RecordingPlugin>();
  S3DB_ASSERT_OK((*db)->UsePlugin(plugin));

  store->Inject(testing::Fault::kUnavailable);
  S3DB_EXPECT_ERROR((*resource)->Insert(Object(R"({"id": "a"})")), ErrorCode::kUnavailable);
  store->Inject(testing::Fault::kTimeout);
  S3DB_EXPECT_ERROR((*resource)->Insert(Object(R"({"id": "a"})")), ErrorCode::kTimeout);
  store->Inject(testing::Fault::kFailPut);
  S3DB_EXPECT_ERROR((*resource)->Insert(Object(R"({"id": "a"})")), ErrorCode::kIo);
  EXPECT_TRUE(plugin->Snapshot().empty());  // a failed write emits no change
  S3DB_ASSERT_OK((*resource)->Insert(Object(R"({"id": "a", "v": 1})")));
  store->Inject(testing::Fault::kFailGet);
  S3DB_EXPECT_ERROR((*resource)->Update("a", Object(R"({"v": 2})")), ErrorCode::kUnavailable);
  EXPECT_EQ((*resource)->Get("a")->at("v").as_int64(), 1);
  EXPECT_EQ(plugin->Snapshot().size(), 1u);
  // A read without an ETag cannot guard the write that follows it: refused, not written
  // unconditionally over a version it never saw.
  store->Inject(testing::Fault::kNoEtag);
  S3DB_EXPECT_ERROR((*resource)->Update("a", Object(R"({"v": 3})")), ErrorCode::kUnavailable);
  store->Inject(testing::Fault::kNoEtag);
  S3DB_EXPECT_ERROR((*resource)->Delete("a"), ErrorCode::kUnavailable);
  EXPECT_EQ((*resource)->Get("a")->at("v").as_int64(), 1);
  EXPECT_EQ(plugin->Snapshot().size(), 1u);
}

}  // namespace
}  // namespace s3db

namespace s3db {
namespace {

TEST(ResourceDeleteTest, ADeleteInterruptedByACrashIsFinishedByTheNextWriter) {
  auto memory = NewMemoryStore();
  ObjectStore* store = memory.get();
  auto db = Database::Open(std::move(memory));
  S3DB_ASSERT_OK(db);
  ResourceDefinition items;
  items.name = "items";
  auto resource = (*db)->CreateResource(items);
  S3DB_ASSERT_OK(resource);
  auto plugin = std::make_shared<RecordingPlugin>();
  S3DB_ASSERT_OK((*db)->UsePlugin(plugin));
  S3DB_ASSERT_OK((*resource)->Insert(Object(R"({"id": "a", "v": 1})")));

  // What a process killed in the middle of Delete leaves: the marker claiming revision 2.
  S3DB_ASSERT_OK(store->Put("resource=items/data/id=a",
                            R"({"id":"a","_rev":2,"_deleted":true,"_deletedAt":0,)"
                            R"("_before":{"id":"a","v":1,"_rev":1}})"));
  EXPECT_FALSE(*(*resource)->Exists("a"));

  auto again = (*resource)->Insert(Object(R"({"id": "a", "v": 2})"));
  S3DB_ASSERT_OK(again);
  EXPECT_EQ(again->at("_rev").to_number<std::uint64_t>(), 3u);
  auto changes = plugin->Snapshot();
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[1].action, Action::kDelete);
  EXPECT_EQ(changes[1].ChangeId(), "items:a:2");
  EXPECT_EQ(changes[1].before->at("v").as_int64(), 1);
  EXPECT_EQ(changes[2].ChangeId(), "items:a:3");
}

TEST(ResourceDeleteTest, WritesAfterCloseAreRefused) {
  auto db = Database::Connect("memory://closed-" + testing::UniqueToken());
  S3DB_ASSERT_OK(db);
  ResourceDefinition items;
  items.name = "items";
  auto resource = (*db)->CreateResource(items);
  S3DB_ASSERT_OK(resource);
  S3DB_ASSERT_OK((*db)->Close());
  S3DB_EXPECT_ERROR((*resource)->Insert(Object(R"({"id": "a"})")), ErrorCode::kUnavailable);
  S3DB_EXPECT_ERROR((*resource)->Update("a", Object("{}")), ErrorCode::kUnavailable);
  S3DB_EXPECT_ERROR((*resource)->Delete("a"), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace s3db
