// Helpers shared by the tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "s3db/error.h"

namespace s3db::testing {

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("s3db-test-" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// A unique short token for key prefixes and names.
inline std::string UniqueToken() {
  static std::mt19937_64 generator{std::random_device{}()};
  static const char* alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  for (int i = 0; i < 10; ++i) out += alphabet[generator() % 36];
  return out;
}

// The value of a test-server variable; empty when unset.
inline std::string EnvOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

}  // namespace s3db::testing

// Skips the test when the server variable is unset, except in CI where it fails.
#define S3DB_REQUIRE_SERVER(variable)                                              \
  do {                                                                             \
    if (::s3db::testing::EnvOrEmpty(variable).empty()) {                           \
      if (::s3db::testing::InCi()) FAIL() << variable << " is not set in CI";      \
      GTEST_SKIP() << variable << " is not set; start scripts/test-services.sh";   \
    }                                                                              \
  } while (0)

#define S3DB_ASSERT_OK(expr)                                                \
  do {                                                                      \
    auto&& s3db_ok_ = (expr);                                               \
    ASSERT_TRUE(s3db_ok_.has_value()) << s3db_ok_.error().ToString();       \
  } while (0)

#define S3DB_EXPECT_OK(expr)                                                \
  do {                                                                      \
    auto&& s3db_ok_ = (expr);                                               \
    EXPECT_TRUE(s3db_ok_.has_value()) << s3db_ok_.error().ToString();       \
  } while (0)

#define S3DB_EXPECT_ERROR(expr, error_code)                                 \
  do {                                                                      \
    auto&& s3db_err_ = (expr);                                              \
    ASSERT_FALSE(s3db_err_.has_value()) << "expected an error";            \
    EXPECT_EQ(s3db_err_.error().code, error_code) << s3db_err_.error().ToString(); \
  } while (0)
