// File export benchmark: rows/s writing N rows of about 1 KiB (the file drivers' append rows:
// record fields plus _action, _changed_at, _change_id) through the src/formats writers to
// CSV, JSONL, gzip JSONL, Parquet with each compression and Excel; file size; peak RSS of each
// case (run in its own child process); and the ratio to a peer writing the same rows to the
// same format in the same run: DuckDB (COPY ... TO from an in-memory table, via
// @duckdb/node-api) for CSV, JSONL and Parquet, exceljs (its streaming WorkbookWriter,
// bench/files_bench_exceljs.mjs) for Excel, which DuckDB cannot write without an extension
// downloaded at run time.
//
// Usage: files_bench [--rows N] [--dir FOLDER] [--cases csv,jsonl,...] [--flush-every F]
//                    [--duckdb-threads T] [--no-duckdb]
//   F (default 10,000): rows between two Flush calls; small values show what frequent
//   flushes cost (Parquet syncs its open row group's sealed pages at every Flush).
//   N defaults to $S3DB_FILES_BENCH_ROWS, else 1,000,000. FOLDER (default: a fresh folder
//   under /tmp) gets the files, which are removed after each case. The peers (DuckDB,
//   exceljs) need node and scripts/peers/node_modules (scripts/install-deps.sh --test-peers);
//   $S3DB_PEERS_DIR overrides where they are; --no-duckdb skips both. T defaults to 1 (the
//   s3db writers use one thread).
//
// Timing: rows are generated in batches of 10,000 outside the timed part; the time is Add()
// of every row, a Flush() after each batch (as the drivers flush: the rows become a valid,
// fsynced file; Parquet publishes the open row group provisionally, gzip JSONL ends a gzip
// member) and the final Finish(). Excel has no Flush per batch: an .xlsx cannot be appended
// to, so each Flush regenerates the whole workbook (what the excel driver does at every
// flush, O(rows so far)); the case measures writing the workbook once, like exceljs.
// DuckDB's time is the COPY statement alone (loading its table is not counted); exceljs's is
// adding the rows and committing the workbook (reading and parsing its input is not).
#include <fmt/core.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/record_writers.h"
#include "s3db/json.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
using s3db::Json;
using s3db::JsonArray;
using s3db::JsonObject;

constexpr std::size_t kBatch = 10000;

// The folder of the benchmark's node scripts (__FILE__ may be relative to the build folder
// when ccache rewrites paths, so the build passes the source folder).
std::string BenchDir() {
#ifdef S3DB_SOURCE_DIR
  return std::string(S3DB_SOURCE_DIR) + "/bench";
#else
  return fs::absolute(fs::path(__FILE__)).parent_path().string();
#endif
}

struct Case {
  std::string name;
  s3db::formats::FileFormat format;
  const char* config;  // the writer options, as the drivers get them
  bool flush_each_batch = true;
};

const std::vector<Case>& AllCases() {
  static const std::vector<Case> cases{
      {"csv", s3db::formats::FileFormat::kCsv, "{}"},
      {"jsonl", s3db::formats::FileFormat::kJsonl, "{}"},
      {"jsonl-gzip", s3db::formats::FileFormat::kJsonl, R"({"compress": true})"},
      {"parquet-snappy", s3db::formats::FileFormat::kParquet, R"({"compression": "snappy"})"},
      {"parquet-gzip", s3db::formats::FileFormat::kParquet, R"({"compression": "gzip"})"},
      {"parquet-zstd", s3db::formats::FileFormat::kParquet, R"({"compression": "zstd"})"},
      {"parquet-lz4", s3db::formats::FileFormat::kParquet, R"({"compression": "lz4"})"},
      {"parquet-none", s3db::formats::FileFormat::kParquet, R"({"compression": "none"})"},
      {"excel", s3db::formats::FileFormat::kExcel, "{}", false},
  };
  return cases;
}

// A small deterministic generator (the same rows in every run and for DuckDB).
struct Random {
  std::uint64_t state;
  std::uint64_t Next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

const char* const kWords[] = {
    "alpha",  "bravo",   "charlie", "delta", "echo",    "foxtrot", "golf",   "hotel",
    "india",  "juliett", "kilo",    "lima",  "mike",    "november", "oscar", "papa",
    "quebec", "romeo",   "sierra",  "tango", "uniform", "victor",  "whiskey", "xray",
    "yankee", "zulu",    "data",    "store", "object",  "replica", "bucket", "change"};

// Row `index`: about 1 KiB as compact JSON.
JsonObject MakeRow(std::uint64_t index) {
  Random random{index * 0x9E3779B97F4A7C15ull + 1};
  JsonObject row;
  row["id"] = fmt::format("user-{:010d}", index);
  row["name"] = fmt::format("{} {}", kWords[random.Next() % 32], kWords[random.Next() % 32]);
  row["email"] = fmt::format("user{}@example.com", index);
  row["age"] = static_cast<std::int64_t>(18 + random.Next() % 70);
  row["score"] = static_cast<double>(random.Next() % 1000000) / 1000.0;
  row["active"] = random.Next() % 2 == 0;
  std::int64_t seconds = 1700000000 + static_cast<std::int64_t>(index % 30000000);
  std::time_t time = static_cast<std::time_t>(seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char when[40];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &parts);
  row["created_at"] = fmt::format("{}.{:03d}Z", when, index % 1000);
  JsonArray tags;
  for (int t = 0; t < 3; ++t) tags.emplace_back(kWords[random.Next() % 32]);
  row["tags"] = std::move(tags);
  std::string bio;
  bio.reserve(760);
  while (bio.size() < 720) {
    bio += kWords[random.Next() % 32];
    bio += ' ';
  }
  row["bio"] = std::move(bio);
  row["_action"] = index % 10 == 0 ? "update" : "insert";
  row["_changed_at"] = fmt::format("{}.{:03d}Z", when, index % 1000);
  row["_change_id"] = fmt::format("users:user-{:010d}:1", index);
  return row;
}

s3db::formats::ColumnSet Columns() {
  using s3db::formats::ColumnType;
  auto columns = s3db::formats::ColumnSet::Make({{"id", ColumnType::kString},
                                                 {"name", ColumnType::kString},
                                                 {"email", ColumnType::kString},
                                                 {"age", ColumnType::kInteger},
                                                 {"score", ColumnType::kNumber},
                                                 {"active", ColumnType::kBoolean},
                                                 {"created_at", ColumnType::kDatetime},
                                                 {"tags", ColumnType::kArray},
                                                 {"bio", ColumnType::kString},
                                                 {"_action", ColumnType::kString},
                                                 {"_changed_at", ColumnType::kString},
                                                 {"_change_id", ColumnType::kString}});
  return std::move(*columns);
}

struct Measured {
  double seconds = 0;
  std::uint64_t bytes = 0;
  double peak_rss_mb = 0;
  std::string error;
};

// Runs one case in this (child) process; prints "seconds bytes" or "error <text>" to `fd`.
void RunCaseChild(const Case& c, std::uint64_t rows, std::uint64_t flush_every,
                  const std::string& dir, int fd) {
  auto report = [&](const std::string& text) {
    (void)!::write(fd, text.data(), text.size());
  };
  std::string path = dir + "/s3db-" + c.name;
  auto sink = s3db::formats::FileByteSink::Open(path);
  if (!sink) return report("error " + sink.error().ToString());
  auto config = s3db::ParseJsonObject(c.config);
  auto writer =
      s3db::formats::MakeRecordWriter(c.format, Columns(), *config, std::move(*sink));
  if (!writer) return report("error " + writer.error().ToString());
  std::vector<JsonObject> batch;
  Clock::duration spent{};
  for (std::uint64_t start = 0; start < rows; start += kBatch) {
    batch.clear();
    for (std::uint64_t i = start; i < std::min(rows, start + kBatch); ++i) {
      batch.push_back(MakeRow(i));
    }
    auto begin = Clock::now();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto added = (*writer)->Add(batch[i]);
      if (!added) return report("error " + added.error().ToString());
      // As the drivers do: a Flush now and then makes the rows durable (and bounds memory).
      if (c.flush_each_batch && (start + i + 1) % flush_every == 0) {
        auto flushed = (*writer)->Flush();
        if (!flushed) return report("error " + flushed.error().ToString());
      }
    }
    spent += Clock::now() - begin;
  }
  batch.clear();
  batch.shrink_to_fit();
  auto begin = Clock::now();
  auto finished = (*writer)->Finish();
  spent += Clock::now() - begin;
  if (!finished) return report("error " + finished.error().ToString());
  std::uint64_t bytes = fs::file_size(path);
  fs::remove(path);
  report(fmt::format("{} {}", std::chrono::duration<double>(spent).count(), bytes));
}

// Reads the child's output from `fd` to the end, waits for it, and gives its exit status and
// peak RSS (MB).
std::string CollectChild(pid_t pid, int fd, int& status, double& rss_mb) {
  std::string output;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read(fd, buffer, sizeof buffer)) > 0) output.append(buffer, got);
  ::close(fd);
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  rss_mb = usage.ru_maxrss / 1024.0;
  return output;
}

// Forks, runs the case in the child, and reads its peak RSS from wait4.
Measured RunCase(const Case& c, std::uint64_t rows, std::uint64_t flush_every,
                 const std::string& dir) {
  Measured measured;
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    measured.error = "pipe failed";
    return measured;
  }
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    RunCaseChild(c, rows, flush_every, dir, pipe_fds[1]);
    ::close(pipe_fds[1]);
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  int status = 0;
  std::string output = CollectChild(pid, pipe_fds[0], status, measured.peak_rss_mb);
  if (output.rfind("error ", 0) == 0 || output.empty()) {
    measured.error = output.empty() ? "the case crashed" : output.substr(6);
    return measured;
  }
  std::sscanf(output.c_str(), "%lf %lu", &measured.seconds,
              reinterpret_cast<unsigned long*>(&measured.bytes));
  return measured;
}

// Runs a node script (`args` after "node"); returns its JSON and its peak RSS.
std::optional<JsonObject> RunNode(std::vector<std::string> args, double& rss_mb,
                                  std::string& error) {
  args.insert(args.begin(), "node");
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return std::nullopt;
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execvp("node", argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  int status = 0;
  std::string output = CollectChild(pid, pipe_fds[0], status, rss_mb);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    error = fmt::format("node exited with status {}", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return std::nullopt;
  }
  auto parsed = s3db::ParseJsonObject(output);
  if (!parsed) {
    error = "unreadable output of " + args[1] + ": " + output.substr(0, 200);
    return std::nullopt;
  }
  return *parsed;
}

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) parts.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t rows = 1000000;
  if (const char* env = std::getenv("S3DB_FILES_BENCH_ROWS"); env && *env) {
    rows = std::strtoull(env, nullptr, 10);
  }
  std::string dir;
  std::vector<std::string> selected;
  int duckdb_threads = 1;
  std::uint64_t flush_every = kBatch;
  bool duckdb = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--rows") {
      rows = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--dir") {
      dir = value();
    } else if (arg == "--cases") {
      selected = Split(value());
    } else if (arg == "--duckdb-threads") {
      duckdb_threads = std::atoi(value().c_str());
    } else if (arg == "--flush-every") {
      flush_every = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--no-duckdb") {
      duckdb = false;
    } else {
      std::fprintf(stderr,
                   "usage: files_bench [--rows N] [--dir FOLDER] [--cases a,b] "
                   "[--flush-every F] [--duckdb-threads T] [--no-duckdb]\n");
      return 2;
    }
  }
  if (rows == 0) {
    std::fprintf(stderr, "--rows: must be a positive number\n");
    return 2;
  }
  if (flush_every == 0) {
    std::fprintf(stderr, "--flush-every: must be a positive number of rows\n");
    return 2;
  }
  std::vector<Case> cases;
  for (const Case& c : AllCases()) {
    if (selected.empty() || std::find(selected.begin(), selected.end(), c.name) != selected.end()) {
      cases.push_back(c);
    }
  }
  if (cases.empty()) {
    std::fprintf(stderr,
                 "--cases: none of the names is a case (csv, jsonl, jsonl-gzip, parquet-snappy, "
                 "parquet-gzip, parquet-zstd, parquet-lz4, parquet-none, excel)\n");
    return 2;
  }
  bool own_dir = dir.empty();
  if (own_dir) {
    char pattern[] = "/tmp/s3db-files-bench-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return 1;
    dir = pattern;
  }
  fs::create_directories(dir);

  std::uint64_t sample_bytes = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) sample_bytes += s3db::ToJson(MakeRow(i)).size() + 1;
  fmt::print("files_bench: {} rows, {:.0f} bytes per row as JSON, 12 columns, a Flush every "
             "{} rows (not excel)\n",
             rows, sample_bytes / 1000.0, flush_every);

  std::map<std::string, Measured> ours;
  for (const Case& c : cases) {
    ours[c.name] = RunCase(c, rows, flush_every, dir);
    const Measured& m = ours[c.name];
    if (!m.error.empty()) {
      fmt::print("  s3db {:<15} error: {}\n", c.name, m.error);
    } else {
      fmt::print("  s3db {:<15} {:>10.0f} rows/s  {:>8.1f} MB  peak RSS {:.0f} MB\n", c.name,
                 rows / m.seconds, m.bytes / 1e6, m.peak_rss_mb);
    }
    std::fflush(stdout);
  }

  std::optional<JsonObject> theirs, excel_peer;
  double duck_rss = 0, excel_rss = 0;
  std::string duck_error = "skipped (--no-duckdb)", excel_error = "skipped (--no-duckdb)";
  std::vector<std::string> duck_cases;
  bool excel_case = false;
  for (const Case& c : cases) {
    if (c.format == s3db::formats::FileFormat::kExcel) {
      excel_case = true;
    } else {
      duck_cases.push_back(c.name);
    }
  }
  if (duckdb) {
    const char* peers_env = std::getenv("S3DB_PEERS_DIR");
    std::string peers = peers_env && *peers_env
                            ? std::string(peers_env)
                            : fs::path(BenchDir()).parent_path().string() + "/scripts/peers";
    // The same rows, as JSON Lines, for the peers to load (untimed).
    std::string rows_file = dir + "/rows.jsonl";
    {
      std::FILE* out = std::fopen(rows_file.c_str(), "wb");
      if (out == nullptr) return 1;
      for (std::uint64_t i = 0; i < rows; ++i) {
        std::string line = s3db::ToJson(MakeRow(i));
        line.push_back('\n');
        std::fwrite(line.data(), 1, line.size(), out);
      }
      std::fclose(out);
    }
    if (duck_cases.empty()) {
      duck_error = "no case for DuckDB";
    } else if (!fs::exists(peers + "/node_modules/@duckdb/node-api/package.json")) {
      duck_error =
          "@duckdb/node-api missing in " + peers + " (scripts/install-deps.sh --test-peers)";
    } else {
      std::vector<std::string> args{BenchDir() + "/files_bench_duckdb.mjs", peers, rows_file,
                                    dir, std::to_string(duckdb_threads)};
      args.insert(args.end(), duck_cases.begin(), duck_cases.end());
      theirs = RunNode(args, duck_rss, duck_error);
    }
    if (!excel_case) {
      excel_error = "no excel case";
    } else if (!fs::exists(peers + "/node_modules/exceljs/package.json")) {
      excel_error = "exceljs missing in " + peers + " (scripts/install-deps.sh --test-peers)";
    } else {
      excel_peer = RunNode({BenchDir() + "/files_bench_exceljs.mjs", peers, rows_file,
                            dir + "/exceljs.xlsx"},
                           excel_rss, excel_error);
    }
    fs::remove(rows_file);
  }

  fmt::print("\n{:<15} {:>12} {:>9} {:>9} {:>8} {:>12} {:>9} {:>11}\n", "case", "s3db rows/s",
             "s3db MB", "RSS MB", "peer", "peer rows/s", "peer MB", "s3db/peer");
  for (const Case& c : cases) {
    const Measured& m = ours[c.name];
    std::string our_rate = m.error.empty() ? fmt::format("{:.0f}", rows / m.seconds) : "error";
    bool excel = c.format == s3db::formats::FileFormat::kExcel;
    const std::optional<JsonObject>& peer = excel ? excel_peer : theirs;
    std::string peer_rate = "-", peer_mb = "-", ratio = "-";
    if (peer) {
      if (const Json* entry = peer->if_contains(c.name); entry && entry->is_object()) {
        double seconds = entry->as_object().at("seconds").to_number<double>();
        double bytes = entry->as_object().at("bytes").to_number<double>();
        peer_rate = fmt::format("{:.0f}", rows / seconds);
        peer_mb = fmt::format("{:.1f}", bytes / 1e6);
        if (m.error.empty()) ratio = fmt::format("{:.2f}x", seconds / m.seconds);
      }
    }
    fmt::print("{:<15} {:>12} {:>9.1f} {:>9.0f} {:>8} {:>12} {:>9} {:>11}\n", c.name, our_rate,
               m.bytes / 1e6, m.peak_rss_mb, excel ? "exceljs" : "duckdb", peer_rate, peer_mb,
               ratio);
  }
  if (theirs) {
    fmt::print("DuckDB: {} thread(s), peak RSS {:.0f} MB (node process, all its cases, table "
               "loaded in {:.1f} s untimed)\n",
               duckdb_threads, duck_rss, theirs->at("load_seconds").to_number<double>());
  } else {
    fmt::print("DuckDB: {}\n", duck_error);
  }
  if (excel_peer) {
    fmt::print("exceljs: streaming WorkbookWriter, peak RSS {:.0f} MB (node process)\n",
               excel_rss);
  } else if (excel_case) {
    fmt::print("exceljs: {}\n", excel_error);
  }
  fmt::print("s3db/peer > 1 means s3db is faster.\n");
  if (own_dir) fs::remove_all(dir);
  return 0;
}
