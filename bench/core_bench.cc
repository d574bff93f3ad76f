// Core benchmark: insert / get / update records per second for 1 KiB records on each store with
// 1 and 16 writer threads, peak RSS, and (when an S3 server is given) the S3 store's PUT rate as
// a ratio to raw `curl` PUTs of the same bytes to the same server in the same run.
//
// Usage: core_bench [--records N] [--s3 URL] [--stores memory,file,s3]
//   URL: http://KEY:SECRET@127.0.0.1:4568/bucket (defaults to $S3DB_TEST_S3_URL)
#include <fmt/core.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "s3db/s3db.h"

namespace {

using Clock = std::chrono::steady_clock;

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

s3db::JsonObject MakeRecord(int i) {
  s3db::JsonObject record;
  record["id"] = fmt::format("rec-{:08d}", i);
  record["name"] = fmt::format("User {}", i);
  record["email"] = fmt::format("user{}@example.com", i);
  s3db::JsonObject address;
  address["street"] = "1 Long Street";
  address["city"] = "Lisbon";
  address["zip"] = "1000-001";
  record["address"] = std::move(address);
  record["tags"] = s3db::JsonArray{"a", "b", "c"};
  record["bio"] = std::string(760, static_cast<char>('a' + i % 26));
  return record;
}

// Runs `work(i)` for i in [0, n) on `threads` threads; returns operations per second.
template <typename Work>
double Run(int n, int threads, Work work, std::atomic<int>& failures) {
  std::atomic<int> next{0};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        if (!work(i)) ++failures;
      }
    });
  }
  for (auto& thread : pool) thread.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return n / seconds;
}

void BenchStore(const std::string& label, const std::string& connection, int n) {
  for (int threads : {1, 16}) {
    auto db = s3db::Database::Connect(connection + (connection.back() == '/' ? "" : "/") +
                                      fmt::format("bench-{}-{}", threads, getpid()));
    if (!db) {
      fmt::print(stderr, "{}: {}\n", label, db.error().ToString());
      return;
    }
    s3db::ResourceDefinition definition;
    definition.name = "users";
    auto resource = (*db)->CreateResource(definition);
    if (!resource) {
      fmt::print(stderr, "{}: {}\n", label, resource.error().ToString());
      return;
    }
    std::atomic<int> failures{0};
    double inserts = Run(
        n, threads, [&](int i) { return (*resource)->Insert(MakeRecord(i)).has_value(); },
        failures);
    double gets = Run(
        n, threads,
        [&](int i) { return (*resource)->Get(fmt::format("rec-{:08d}", i)).has_value(); },
        failures);
    s3db::JsonObject patch;
    patch["name"] = "Changed";
    double updates = Run(
        n, threads,
        [&](int i) { return (*resource)->Update(fmt::format("rec-{:08d}", i), patch).has_value(); },
        failures);
    fmt::print("{:<8} {:>7} {:>12.0f} {:>12.0f} {:>12.0f} {:>9} {:>10.1f}\n", label, threads,
               inserts, gets, updates, failures.load(), PeakRssMb());
  }
}

// Raw PUTs of the same bytes with curl (one process, connection reuse via --next) as the limit.
double CurlPutRate(const s3db::ConnectionString& s3, int n) {
  std::string dir = std::filesystem::temp_directory_path() / fmt::format("core-bench-{}", getpid());
  std::filesystem::create_directories(dir);
  std::string body = s3db::ToJson(MakeRecord(1));
  std::string body_path = dir + "/body.json";
  FILE* file = std::fopen(body_path.c_str(), "wb");
  std::fwrite(body.data(), 1, body.size(), file);
  std::fclose(file);
  // sha256 of the body for x-amz-content-sha256 (curl does not add it).
  std::string hash_cmd = "sha256sum " + body_path + " | cut -d' ' -f1";
  FILE* pipe = popen(hash_cmd.c_str(), "r");
  char hash[80] = {0};
  if (!pipe || !std::fgets(hash, sizeof hash, pipe)) return 0;
  pclose(pipe);
  std::string sha(hash);
  while (!sha.empty() && (sha.back() == '\n')) sha.pop_back();

  std::string config_path = dir + "/curl.cfg";
  file = std::fopen(config_path.c_str(), "w");
  std::string base = fmt::format("http://{}:{}/{}/{}curl-{}/", s3.host, s3.port, s3.bucket,
                                 s3.prefix.empty() ? "" : s3.prefix + "/", getpid());
  for (int i = 0; i < n; ++i) {
    if (i) std::fputs("next\n", file);
    fmt::print(
        file,
        "url = \"{}{}\"\nrequest = PUT\nupload-file = \"{}\"\nsilent\noutput = /dev/null\n"
        "aws-sigv4 = \"aws:amz:{}:s3\"\nuser = \"{}:{}\"\nheader = \"x-amz-content-sha256: {}\"\n",
        base, i, body_path, s3.region, s3.access_key, s3.secret_key, sha);
  }
  std::fclose(file);
  auto start = Clock::now();
  int rc = std::system(("curl --config " + config_path).c_str());
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::filesystem::remove_all(dir);
  return rc == 0 ? n / seconds : 0;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 5000;
  std::string s3_url = std::getenv("S3DB_TEST_S3_URL") ? std::getenv("S3DB_TEST_S3_URL") : "";
  std::string stores = "memory,file,s3";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--records") n = std::atoi(argv[i + 1]);
    if (flag == "--s3") s3_url = argv[i + 1];
    if (flag == "--stores") stores = argv[i + 1];
  }
  std::string file_root =
      std::filesystem::temp_directory_path() / fmt::format("core-bench-data-{}", getpid());

  fmt::print("core_bench: {} records of ~1 KiB per run\n", n);
  fmt::print("{:<8} {:>7} {:>12} {:>12} {:>12} {:>9} {:>10}\n", "store", "threads", "insert/s",
             "get/s", "update/s", "failures", "peakRSS MB");
  if (stores.find("memory") != std::string::npos) BenchStore("memory", "memory://bench", n);
  if (stores.find("file") != std::string::npos) BenchStore("file", "file://" + file_root, n);
  if (stores.find("s3") != std::string::npos && !s3_url.empty()) {
    BenchStore("s3", s3_url, n);
    auto parsed = s3db::ConnectionString::Parse(s3_url);
    if (parsed) {
      // Our single-thread PUT rate versus curl's, same bytes, same server, same run.
      auto store = s3db::OpenObjectStore(*parsed);
      std::string body = s3db::ToJson(MakeRecord(1));
      int puts = std::min(n, 2000);
      auto start = Clock::now();
      for (int i = 0; i < puts; ++i)
        (void)(*store)->Put(fmt::format("raw-{}/{}", getpid(), i), body);
      double ours = puts / std::chrono::duration<double>(Clock::now() - start).count();
      double curl = CurlPutRate(*parsed, puts);
      fmt::print(
          "\nS3 PUT, 1 thread, {} objects of {} bytes: s3db {:.0f}/s, curl {:.0f}/s, "
          "ratio {:.2f}\n",
          puts, body.size(), ours, curl, curl > 0 ? ours / curl : 0);
    }
  }
  std::filesystem::remove_all(file_root);
  return 0;
}
