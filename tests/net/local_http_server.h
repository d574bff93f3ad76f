// A tiny scripted HTTP/1.1 server on 127.0.0.1 for client tests (HTTP client, S3 store,
// drivers). Each connection gets its own thread and may carry many requests (keep-alive), so
// tests can count requests and connections exactly. Bodies need Content-Length (no chunked
// requests). Only for tests: no TLS, no limits worth the name.
//
//   LocalHttpServer server([](const LocalRequest& request, LocalResponse& response) {
//     response.status = 503;
//   });
//   client->Send({.url = server.Url("/path")});
//   EXPECT_EQ(server.requests(), 1);
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace s3db::testing {

struct LocalRequest {
  std::string method;
  std::string target;  // as sent: "/bucket/key?x=1"
  std::string path;    // target before '?', still percent-encoded
  std::string query;   // target after '?', still percent-encoded; "" when none
  std::multimap<std::string, std::string> headers;  // lower-case names
  std::string body;
  int connection = 0;  // 1 for the first connection the server accepted, 2 for the next, ...

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool HasHeader(const std::string& lower_name) const { return headers.count(lower_name) > 0; }
};

struct LocalResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close_connection = false;
  bool hang_up = false;  // close the connection without answering at all
};

class LocalHttpServer {
 public:
  using Handler = std::function<void(const LocalRequest&, LocalResponse&)>;

  explicit LocalHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;  // any free port
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      throw std::runtime_error("LocalHttpServer: cannot listen on 127.0.0.1");
    }
    socklen_t length = sizeof(address);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~LocalHttpServer() {
    stop_ = true;
    accept_thread_.join();
    ::close(listen_fd_);
    std::lock_guard<std::mutex> lock(threads_mutex_);
    for (auto& thread : connection_threads_) thread.join();
  }

  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  int port() const { return port_; }
  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd poll_fd{listen_fd_, POLLIN, 0};
      if (::poll(&poll_fd, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      int connection = ++connections_;
      std::lock_guard<std::mutex> lock(threads_mutex_);
      connection_threads_.emplace_back([this, fd, connection] { Serve(fd, connection); });
    }
  }

  // Reads until `buffer` holds `wanted` bytes; false when the peer closed or we stop.
  bool ReadAtLeast(int fd, std::string* buffer, std::size_t wanted) {
    char chunk[16384];
    while (buffer->size() < wanted) {
      pollfd poll_fd{fd, POLLIN, 0};
      int ready = ::poll(&poll_fd, 1, 20);
      if (stop_) return false;
      if (ready <= 0) continue;
      ssize_t got = ::recv(fd, chunk, sizeof(chunk), 0);
      if (got <= 0) return false;
      buffer->append(chunk, static_cast<std::size_t>(got));
    }
    return true;
  }

  void Serve(int fd, int connection) {
    std::string buffer;
    while (!stop_) {
      std::size_t header_end;
      while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (!ReadAtLeast(fd, &buffer, buffer.size() + 1)) {
          ::close(fd);
          return;
        }
      }
      LocalRequest request = ParseHead(buffer.substr(0, header_end));
      request.connection = connection;
      buffer.erase(0, header_end + 4);
      std::size_t length = std::strtoul(request.Header("content-length").c_str(), nullptr, 10);
      if (!ReadAtLeast(fd, &buffer, length)) break;
      request.body = buffer.substr(0, length);
      buffer.erase(0, length);

      ++requests_;
      LocalResponse response;
      handler_(request, response);
      if (response.hang_up) break;
      if (!Write(fd, request, response) || response.close_connection ||
          request.Header("connection") == "close") {
        break;
      }
    }
    ::close(fd);
  }

  static LocalRequest ParseHead(const std::string& head) {
    LocalRequest request;
    std::size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    std::size_t space1 = request_line.find(' ');
    std::size_t space2 = request_line.find(' ', space1 + 1);
    request.method = request_line.substr(0, space1);
    request.target = request_line.substr(space1 + 1, space2 - space1 - 1);
    std::size_t question = request.target.find('?');
    request.path = request.target.substr(0, question);
    if (question != std::string::npos) request.query = request.target.substr(question + 1);

    std::size_t at = line_end == std::string::npos ? head.size() : line_end + 2;
    while (at < head.size()) {
      std::size_t end = head.find("\r\n", at);
      if (end == std::string::npos) end = head.size();
      std::string line = head.substr(at, end - at);
      std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::size_t value_start = line.find_first_not_of(' ', colon + 1);
        request.headers.emplace(name, value_start == std::string::npos
                                          ? std::string()
                                          : line.substr(value_start));
      }
      at = end + 2;
    }
    return request;
  }

  static bool Write(int fd, const LocalRequest& request, const LocalResponse& response) {
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " Scripted\r\n";
    bool has_length = false;
    for (const auto& [name, value] : response.headers) {
      out += name + ": " + value + "\r\n";
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      has_length = has_length || lower == "content-length";
    }
    if (!has_length) out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
    if (response.close_connection) out += "Connection: close\r\n";
    out += "\r\n";
    if (request.method != "HEAD") out += response.body;
    std::size_t sent = 0;
    while (sent < out.size()) {
      ssize_t wrote = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (wrote <= 0) return false;  // the client went away (e.g. it timed out)
      sent += static_cast<std::size_t>(wrote);
    }
    return true;
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  std::mutex threads_mutex_;  // guards connection_threads_
  std::vector<std::thread> connection_threads_;
};

}  // namespace s3db::testing
