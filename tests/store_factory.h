// Opens a fresh, empty store of a given kind for behaviour suites run on every store.
#pragma once

#include <memory>
#include <string>

#include "s3db/storage.h"
#include "test_util.h"

namespace s3db::testing {

// kind: "memory", "file" or "s3". For "s3" the server comes from S3DB_TEST_S3_URL and an
// unused prefix is appended. Returns the connection string in `connection`.
inline std::string FreshConnectionString(const std::string& kind, const TempDir& dir) {
  if (kind == "memory") return "memory://test-" + UniqueToken() + "/db";
  if (kind == "file") return "file://" + dir.str() + "/db";
  std::string base = EnvOrEmpty("S3DB_TEST_S3_URL");
  if (base.empty()) return "";
  return base + "/run-" + UniqueToken();
}

}  // namespace s3db::testing

#define S3DB_SKIP_UNLESS_STORE(kind)                                              \
  do {                                                                            \
    if ((kind) == "s3") S3DB_REQUIRE_SERVER("S3DB_TEST_S3_URL");                  \
  } while (0)
