// Helpers for the file-format tests: temporary folders, file reading, and running the real
// Parquet/CSV readers (DuckDB, hyparquet) through tests/formats/read_parquet.mjs.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "s3db/json.h"

namespace s3db::formats::testing {

// A fresh folder under /tmp, removed at destruction.
class TempFolder {
 public:
  TempFolder() {
    std::string pattern = "/tmp/s3db-formats-XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    if (made != nullptr) path_ = made;
  }
  ~TempFolder() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

inline void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

inline std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted.push_back(c);
    }
  }
  return quoted + "'";
}

// Where the validators are: S3DB_PEERS_DIR, else <repo>/scripts/peers.
struct ParquetReaders {
  std::string peers_dir;
  std::string script;
};

inline std::optional<ParquetReaders> FindParquetReaders(std::string& why_not) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) {
    why_not = "node is not installed";
    return std::nullopt;
  }
  const char* from_env = std::getenv("S3DB_PEERS_DIR");
  std::string peers = from_env != nullptr && *from_env != '\0'
                          ? std::string(from_env)
                          : std::string(S3DB_SOURCE_DIR) + "/scripts/peers";
  for (const char* package : {"@duckdb/node-api", "hyparquet", "hyparquet-compressors"}) {
    std::string path = peers + "/node_modules/" + package + "/package.json";
    if (!std::filesystem::exists(path)) {
      why_not = std::string("npm package ") + package + " not found in " + peers +
                "/node_modules (set S3DB_PEERS_DIR or run npm ci in scripts/peers)";
      return std::nullopt;
    }
  }
  return ParquetReaders{peers, std::string(S3DB_SOURCE_DIR) + "/tests/formats/read_parquet.mjs"};
}

inline bool RunningInCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Runs a reader and parses its JSON output. Fails (returns null and adds a failure) when the
// reader rejects the file.
inline Json RunReader(const ParquetReaders& readers, const std::string& mode,
                      const std::string& file, const std::string& sql = "") {
  std::string error_file = file + ".reader-stderr";
  std::string command = "node " + ShellQuote(readers.script) + " " + ShellQuote(readers.peers_dir) +
                        " " + ShellQuote(mode) + " " + ShellQuote(file);
  if (!sql.empty()) command += " " + ShellQuote(sql);
  command += " 2>" + ShellQuote(error_file);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return nullptr;
  }
  std::string output;
  char buffer[65536];
  std::size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, got);
  int status = ::pclose(pipe);
  std::string errors = ReadFileBytes(error_file);
  std::filesystem::remove(error_file);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << mode << " rejected " << file << ": " << errors;
    return nullptr;
  }
  auto parsed = ParseJson(output);
  if (!parsed) {
    ADD_FAILURE() << mode << " printed invalid JSON: " << parsed.error().message << "\n"
                  << output.substr(0, 2000);
    return nullptr;
  }
  return *parsed;
}

struct ReaderJob {
  std::string mode;  // duckdb-rows, duckdb-sql, hyparquet-rows, hyparquet-meta
  std::string file;
  std::string sql;  // duckdb-sql only
};

// Runs several reader jobs in one node process (much faster than one process each). A job
// the reader rejects adds a failure and gives null.
inline std::vector<Json> RunReaders(const ParquetReaders& readers,
                                    const std::vector<ReaderJob>& jobs,
                                    const std::string& jobs_file) {
  JsonArray list;
  for (const ReaderJob& job : jobs) {
    JsonObject entry;
    entry["mode"] = job.mode;
    entry["file"] = job.file;
    entry["sql"] = job.sql;
    list.push_back(std::move(entry));
  }
  WriteFileBytes(jobs_file, ToJson(Json(std::move(list))));
  Json output = RunReader(readers, "batch", jobs_file);
  std::filesystem::remove(jobs_file);
  std::vector<Json> results;
  if (!output.is_array() || output.as_array().size() != jobs.size()) {
    ADD_FAILURE() << "batch reader gave no result list";
    results.resize(jobs.size());
    return results;
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const Json& entry = output.as_array()[i];
    if (entry.at("ok").as_bool()) {
      results.push_back(entry.at("result"));
    } else {
      ADD_FAILURE() << jobs[i].mode << " rejected " << jobs[i].file << ": "
                    << entry.at("error").as_string();
      results.emplace_back(nullptr);
    }
  }
  return results;
}

}  // namespace s3db::formats::testing

// Skips the test when node or the npm validators are missing, except under CI=true where
// it fails. Declares `readers` (ParquetReaders).
#define S3DB_REQUIRE_PARQUET_READERS(readers)                                             \
  std::string readers##_why_not;                                                          \
  auto readers##_found = ::s3db::formats::testing::FindParquetReaders(readers##_why_not); \
  if (!readers##_found) {                                                                 \
    if (::s3db::formats::testing::RunningInCi()) FAIL() << readers##_why_not;             \
    GTEST_SKIP() << readers##_why_not;                                                    \
  }                                                                                       \
  const ::s3db::formats::testing::ParquetReaders& readers = *readers##_found
