// Regression: s3db/s3db.h ("includes them all", README) left out the replicator API, so a
// program written from docs/replicator.md with only this include did not compile.
#include <gtest/gtest.h>

#include <memory>
#include <type_traits>

#include "s3db/s3db.h"

namespace s3db {
namespace {

TEST(S3dbHeaderTest, IncludesTheReplicatorApi) {
  ReplicatorPluginOptions options;
  replicator::ReplicatorConfig target;
  target.driver = "s3db";
  options.replicators.push_back(target);
  auto plugin = std::make_shared<ReplicatorPlugin>(options);
  EXPECT_EQ(plugin->Name(), "replicator");
  EXPECT_TRUE((std::is_abstract_v<replicator::Driver>));
  EXPECT_TRUE((std::is_abstract_v<replicator::ChangeLog>));
}

}  // namespace
}  // namespace s3db
