// Helpers for the file-format tests: temporary folders, file reading, and running the real
// Parquet/CSV readers (DuckDB, hyparquet) through tests/formats/read_parquet.mjs.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
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

// Reads CSV text for checking output: RFC 4180 quoting, records ending in CRLF (also LF when
// `any_line_end`, as LibreOffice writes). `strict` also fails the test on a bare LF or a quote
// outside a quoted field, and on a last record without its line end.
struct CsvReading {
  char delimiter = ',';
  bool any_line_end = false;
  bool strict = false;
};
inline std::vector<std::vector<std::string>> ParseCsv(std::string_view text,
                                                      CsvReading how = {}) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool field_started = false;
  auto end_record = [&] {
    record.push_back(std::move(field));
    field.clear();
    records.push_back(std::move(record));
    record.clear();
    field_started = false;
  };
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '"' && field.empty() && !field_started) {
      field_started = true;
      for (++i; i < text.size(); ++i) {
        if (text[i] == '"' && i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else if (text[i] == '"') {
          break;
        } else {
          field.push_back(text[i]);
        }
      }
      ++i;
      continue;
    }
    if (c == how.delimiter) {
      record.push_back(std::move(field));
      field.clear();
      field_started = false;
      ++i;
    } else if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      end_record();
      i += 2;
    } else if (how.any_line_end && (c == '\n' || c == '\r')) {
      end_record();
      ++i;
    } else {
      if (how.strict) {
        EXPECT_NE(c, '\n') << "bare LF outside quotes at byte " << i;
        EXPECT_NE(c, '"') << "quote inside an unquoted field at byte " << i;
      }
      field.push_back(c);
      field_started = true;
      ++i;
    }
  }
  bool unterminated = !field.empty() || !record.empty() || field_started;
  if (how.strict) EXPECT_FALSE(unterminated) << "last record does not end with CRLF";
  if (unterminated) end_record();
  return records;
}

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

// The reader script tests/formats/<script> with the npm `packages` it needs.
inline std::optional<ParquetReaders> FindReaderScript(std::initializer_list<const char*> packages,
                                                      const std::string& script,
                                                      std::string& why_not) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) {
    why_not = "node is not installed";
    return std::nullopt;
  }
  const char* from_env = std::getenv("S3DB_PEERS_DIR");
  std::string peers = from_env != nullptr && *from_env != '\0'
                          ? std::string(from_env)
                          : std::string(S3DB_SOURCE_DIR) + "/scripts/peers";
  for (const char* package : packages) {
    std::string path = peers + "/node_modules/" + package + "/package.json";
    if (!std::filesystem::exists(path)) {
      why_not = std::string("npm package ") + package + " not found in " + peers +
                "/node_modules (set S3DB_PEERS_DIR or run npm ci in scripts/peers)";
      return std::nullopt;
    }
  }
  return ParquetReaders{peers, std::string(S3DB_SOURCE_DIR) + "/tests/formats/" + script};
}

inline std::optional<ParquetReaders> FindParquetReaders(std::string& why_not) {
  return FindReaderScript({"@duckdb/node-api", "hyparquet", "hyparquet-compressors"},
                          "read_parquet.mjs", why_not);
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
