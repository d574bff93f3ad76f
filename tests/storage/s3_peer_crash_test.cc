// The S3 test peer (scripts/peers/s3-peer.js) itself: killed with SIGKILL while eight clients
// write, then started again on the same folder, it must answer every key it lists with one
// whole body that was written, and an ETag that is that body's MD5. The reliability suite stops
// and restarts this peer mid-stream, and a torn object there (HTTP 500 on every GET, or an ETag
// of another version) made its outage step fail at random.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "net/sigv4.h"
#include "s3db/storage.h"
#include "test_util.h"

namespace s3db {
namespace {

using ::s3db::testing::EnvOrEmpty;
using ::s3db::testing::TempDir;

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

// One running s3-peer.js on `folder` and `port`; SIGKILLed when destroyed.
class PeerProcess {
 public:
  PeerProcess(const std::string& script, const std::string& folder, int port) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::FILE* null = std::fopen("/dev/null", "w");
      if (null != nullptr) {
        ::dup2(::fileno(null), 1);
        ::dup2(::fileno(null), 2);
      }
      ::setenv("S3_DIR", folder.c_str(), 1);
      ::setenv("S3_PORT", std::to_string(port).c_str(), 1);
      ::setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
      ::execlp("node", "node", script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!Accepts(port) && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    listening_ = Accepts(port);
  }
  ~PeerProcess() { Kill(); }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  bool listening() const { return listening_; }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  bool listening_ = false;
};

// A body that says which version it is and can be checked whole: "writer version size\n" and
// then bytes that follow from those three numbers.
char FillByte(int writer, int version, std::size_t at) {
  return static_cast<char>('a' + (writer * 7 + version * 13 + at) % 26);
}

std::string BodyOf(int writer, int version, std::size_t size) {
  std::string body =
      std::to_string(writer) + " " + std::to_string(version) + " " + std::to_string(size) + "\n";
  for (std::size_t at = body.size(); at < size; ++at) body += FillByte(writer, version, at);
  return body;
}

// Empty when `body` is one that BodyOf wrote, else what is wrong with it.
std::string WhatIsWrongWith(const std::string& body) {
  int writer = 0, version = 0;
  std::size_t size = 0;
  if (std::sscanf(body.c_str(), "%d %d %zu\n", &writer, &version, &size) != 3) {
    return "no header in its first " + std::to_string(std::min<std::size_t>(body.size(), 40)) +
           " bytes";
  }
  if (body.size() != size) {
    return "torn: " + std::to_string(body.size()) + " of " + std::to_string(size) + " bytes";
  }
  if (body != BodyOf(writer, version, size)) return "bytes of another version";
  return "";
}

TEST(S3PeerCrashTest, AKilledPeerServesOnlyWholeObjectsWithTheirOwnEtagAfterRestart) {
  S3DB_REQUIRE_SERVER("S3DB_TEST_S3_URL");  // set where the peer's npm packages are installed
  std::string peers = EnvOrEmpty("S3DB_PEERS_DIR");
  if (peers.empty()) peers = std::string(S3DB_SOURCE_DIR) + "/scripts/peers";
  const std::string script = peers + "/s3-peer.js";
  ASSERT_TRUE(std::filesystem::exists(peers + "/node_modules/@20minutes/s3rver"))
      << "run npm ci in " << peers;

  TempDir folder;
  std::filesystem::create_directories(folder.path() / "crash-bucket");
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  auto connection = ConnectionString::Parse(
      "http://S3RVER:S3RVER@127.0.0.1:" + std::to_string(port) + "/crash-bucket");
  ASSERT_TRUE(connection.has_value()) << connection.error().ToString();
  ObjectStoreOptions options;
  options.max_retries = 0;  // a write to the killed peer fails at once
  options.request_timeout = std::chrono::milliseconds(10000);

  constexpr int kWriters = 8, kKeysPerWriter = 6, kRounds = 4;
  std::mt19937 random(20261204);
  std::atomic<int> version{0};
  int written = 0;
  for (int round = 0; round <= kRounds; ++round) {
    PeerProcess peer(script, folder.path().string(), port);
    ASSERT_TRUE(peer.listening()) << "s3-peer.js did not start on port " << port;
    auto store = NewS3Store(*connection, options);
    ASSERT_TRUE(store.has_value()) << store.error().ToString();

    // Everything written before this round's kill is readable, whole, with its own ETag.
    auto listed = (*store)->ListAll("");
    ASSERT_TRUE(listed.has_value()) << listed.error().ToString();
    EXPECT_EQ(listed->size() > 0, round > 0);
    for (const auto& info : *listed) {
      auto object = (*store)->Get(info.key);
      ASSERT_TRUE(object.has_value())
          << "round " << round << ", key " << info.key << ": " << object.error().ToString();
      EXPECT_EQ(WhatIsWrongWith(object->body), "") << "round " << round << ", key " << info.key;
      // Checked here too: the store stops comparing after a few ETags that are not MD5s.
      EXPECT_EQ(object->info.etag, net::HexEncode(net::Md5(object->body)))
          << "round " << round << ", key " << info.key;
    }

    if (round == kRounds) break;

    std::atomic<bool> stop{false};
    std::atomic<int> round_written{0};
    std::vector<std::thread> writers;
    for (int writer = 0; writer < kWriters; ++writer) {
      writers.emplace_back([&, writer] {
        std::mt19937 sizes(static_cast<unsigned>(writer * 1000 + round));
        for (int i = 0; !stop.load(); ++i) {
          std::size_t size = 16 * 1024 + sizes() % (768 * 1024);
          std::string key =
              "w" + std::to_string(writer) + "/k" + std::to_string(i % kKeysPerWriter);
          if (!(*store)->Put(key, BodyOf(writer, ++version, size))) return;  // the peer is gone
          ++round_written;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 700));
    peer.Kill();
    stop = true;
    for (auto& thread : writers) thread.join();
    written += round_written.load();
  }
  EXPECT_GT(written, kWriters) << "too few writes reached the peer to test anything";
}

}  // namespace
}  // namespace s3db
