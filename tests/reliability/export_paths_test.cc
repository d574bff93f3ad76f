// Regression test from the reliability suite (scripts/reliability.sh, security checks): a file
// driver's destination name becomes a file name, so a mapping like {"items": "../../x"} wrote
// outside outputPath (and outside the staging folder). Such names are now dead-lettered with a
// clear reason, and nothing is written outside the output folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "replicator/replicator_test_util.h"
#include "s3db/replicator/replicator_plugin.h"
#include "test_util.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using namespace s3db::testing;

TEST(ReliabilityExportPathsTest, DestinationNamesCannotLeaveTheOutputFolder) {
  TempDir dir;
  auto db = MemoryDatabase(dir.str() + "/state");
  ASSERT_TRUE(db);
  ResourceDefinition definition;
  definition.name = "items";
  auto items = db->CreateResource(std::move(definition));
  ASSERT_TRUE(items.has_value()) << items.error().ToString();

  std::string out = dir.str() + "/out/deep";
  auto options = FastOptions();
  options.max_retries = 0;
  for (const char* driver : {"jsonl", "csv"}) {
    ReplicatorConfig config;
    config.driver = driver;
    config.id = driver;
    auto mapping = ResourceMapping::FromJson(*ParseJson(
        R"({"items": ["../../escape", "/tmp/abs-escape", "a\\b", "..", "fine"]})"));
    ASSERT_TRUE(mapping.has_value()) << mapping.error().ToString();
    config.resources = *mapping;
    config.config["outputPath"] = out;
    config.config["rotateBy"] = nullptr;
    options.replicators.push_back(std::move(config));
  }
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK(db->UsePlugin(plugin));
  ASSERT_TRUE((*items)->Insert(*ParseJsonObject(R"({"id": "r1", "n": 1})")));
  S3DB_ASSERT_OK(plugin->WaitIdle(10s));

  // The plain name is written; every other one went to the dead-letter queue, by name.
  EXPECT_TRUE(std::filesystem::exists(out + "/fine.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(out + "/fine.csv"));
  for (const char* driver : {"jsonl", "csv"}) {
    auto letters = plugin->ListDeadLetters(driver, 100);
    ASSERT_TRUE(letters.has_value()) << letters.error().ToString();
    ASSERT_EQ(letters->size(), 4u) << driver;
    for (const auto& letter : *letters) {
      EXPECT_EQ(letter.reason, "invalid_target");
      EXPECT_NE(letter.error.find("is not a plain file name"), std::string::npos) << letter.error;
    }
  }
  // Nothing anywhere in the test folder (or /tmp) but inside the output folder and the state.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    std::string path = entry.path().string();
    EXPECT_EQ(path.find("escape"), std::string::npos) << path;
  }
  EXPECT_FALSE(std::filesystem::exists("/tmp/abs-escape.jsonl"));
  EXPECT_FALSE(std::filesystem::exists("/tmp/abs-escape.csv"));
}

}  // namespace
}  // namespace s3db::replicator
