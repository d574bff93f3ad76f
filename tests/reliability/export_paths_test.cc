// Regression test from the reliability suite (scripts/reliability.sh, security checks): a file
// driver's destination name becomes a file name, so a mapping like {"items": "../../x"} wrote
// outside outputPath (and outside the staging folder). Such names are now refused when the
// plugin starts, naming the mapping, and nothing is written outside the output folder.
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
  std::string out = dir.str() + "/out/deep";
  auto plugin_for = [&](const char* driver, const char* destination) {
    ReplicatorPluginOptions options = FastOptions();
    ReplicatorConfig config;
    config.driver = driver;
    config.id = driver;
    JsonObject resources;
    resources["items"] = destination;
    auto mapping = ResourceMapping::FromJson(Json(resources));
    EXPECT_TRUE(mapping.has_value()) << mapping.error().ToString();
    config.resources = *mapping;
    config.config["outputPath"] = out;
    config.config["rotateBy"] = nullptr;
    options.replicators.push_back(std::move(config));
    return std::make_shared<ReplicatorPlugin>(std::move(options));
  };
  for (const char* driver : {"jsonl", "csv"}) {
    // A name that is not a plain file name is refused when the plugin starts, by its path.
    for (const char* bad : {"../../escape", "/tmp/abs-escape", "a\\b", ".."}) {
      auto db = MemoryDatabase(dir.str() + "/state-" + driver);
      ASSERT_TRUE(db);
      ResourceDefinition definition;
      definition.name = "items";
      ASSERT_TRUE(db->CreateResource(std::move(definition)).has_value());
      auto started = db->UsePlugin(plugin_for(driver, bad));
      ASSERT_FALSE(started.has_value()) << driver << " " << bad;
      EXPECT_NE(started.error().message.find("is not a plain file name"), std::string::npos)
          << started.error().message;
      EXPECT_NE(started.error().message.find("resources.items"), std::string::npos)
          << started.error().message;
    }
    // A plain name is written inside the output folder.
    auto db = MemoryDatabase(dir.str() + "/state-fine-" + driver);
    ASSERT_TRUE(db);
    ResourceDefinition definition;
    definition.name = "items";
    auto items = db->CreateResource(std::move(definition));
    ASSERT_TRUE(items.has_value());
    auto plugin = plugin_for(driver, "fine");
    S3DB_ASSERT_OK(db->UsePlugin(plugin));
    ASSERT_TRUE((*items)->Insert(*ParseJsonObject(R"({"id": "r1", "n": 1})")));
    S3DB_ASSERT_OK(plugin->WaitIdle(10s));
    S3DB_ASSERT_OK(plugin->Stop());
    EXPECT_TRUE(std::filesystem::exists(out + "/fine." + std::string(driver)));
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
