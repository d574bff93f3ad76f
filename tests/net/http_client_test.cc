// The libcurl HTTP client against a scripted local server.
#include "net/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "net/local_http_server.h"
#include "test_util.h"

namespace s3db::net {
namespace {

using ::s3db::testing::LocalHttpServer;
using ::s3db::testing::LocalRequest;
using ::s3db::testing::LocalResponse;

TEST(HttpClientTest, SendsMethodHeadersAndBodyAndReadsTheResponse) {
  LocalHttpServer server([](const LocalRequest& request, LocalResponse& response) {
    response.headers = {{"X-Method", request.method},
                        {"X-Target", request.target},
                        {"X-Custom-Seen", request.Header("x-custom")},
                        {"X-Had-Content-Type", request.HasHeader("content-type") ? "1" : "0"},
                        {"X-Had-Expect", request.HasHeader("expect") ? "1" : "0"},
                        {"X-Repeated", "one"},
                        {"x-repeated", "two"},
                        {"Content-Type", "text/plain"}};
    response.status = 201;
    response.body = "got:" + request.body;
  });
  auto client = NewHttpClient();
  HttpRequest request;
  request.method = "PUT";
  request.url = server.Url("/echo?a=1&b=%2F");
  request.headers = {{"X-Custom", "value 1"}};
  request.body = std::string(2 * 1024 * 1024, 'b');  // large enough for curl to want Expect

  auto response = client->Send(request);

  S3DB_ASSERT_OK(response);
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "got:" + request.body);
  EXPECT_EQ(response->Header("x-method"), "PUT");
  EXPECT_EQ(response->Header("x-target"), "/echo?a=1&b=%2F");  // sent exactly as given
  EXPECT_EQ(response->Header("X-CUSTOM-SEEN"), "value 1");
  EXPECT_EQ(response->Header("x-had-content-type"), "0");  // no form type added by curl
  EXPECT_EQ(response->Header("x-had-expect"), "0");
  EXPECT_EQ(response->headers.count("x-repeated"), 2u);
  EXPECT_TRUE(response->HasHeader("Content-Type"));
  EXPECT_EQ(response->Header("nope"), "");
  for (const auto& [name, value] : response->headers) {
    for (char c : name) EXPECT_FALSE(std::isupper(static_cast<unsigned char>(c))) << name;
  }
}

TEST(HttpClientTest, SendsAnEmptyBodyForPutAndNoBodyForGet) {
  LocalHttpServer server([](const LocalRequest& request, LocalResponse& response) {
    response.body = request.method + " length=" + request.Header("content-length");
  });
  auto client = NewHttpClient();

  auto put = client->Send({.method = "PUT", .url = server.Url("/x")});
  auto get = client->Send({.method = "GET", .url = server.Url("/x")});
  auto del = client->Send({.method = "DELETE", .url = server.Url("/x")});

  S3DB_ASSERT_OK(put);
  EXPECT_EQ(put->body, "PUT length=0");
  S3DB_ASSERT_OK(get);
  EXPECT_EQ(get->body, "GET length=");
  S3DB_ASSERT_OK(del);
  EXPECT_EQ(del->body, "DELETE length=");
}

TEST(HttpClientTest, HeadReturnsHeadersWithoutBodyAndErrorStatusesAreResponses) {
  LocalHttpServer server([](const LocalRequest&, LocalResponse& response) {
    response.status = 404;
    response.headers = {{"X-Kind", "missing"}};
    response.body = "<Error/>";
  });
  auto client = NewHttpClient();

  auto head = client->Send({.method = "HEAD", .url = server.Url("/missing")});
  auto get = client->Send({.method = "GET", .url = server.Url("/missing")});

  S3DB_ASSERT_OK(head);
  EXPECT_EQ(head->status, 404);
  EXPECT_EQ(head->Header("x-kind"), "missing");
  EXPECT_EQ(head->body, "");
  S3DB_ASSERT_OK(get);
  EXPECT_EQ(get->status, 404);
  EXPECT_EQ(get->body, "<Error/>");
  EXPECT_EQ(server.connections(), 1);  // HEAD left the connection reusable
}

TEST(HttpClientTest, ReusesTheConnectionForSequentialRequests) {
  LocalHttpServer server([](const LocalRequest&, LocalResponse& response) {
    response.body = "ok";
  });
  auto client = NewHttpClient();

  for (int i = 0; i < 5; ++i) S3DB_ASSERT_OK(client->Send({.url = server.Url("/k")}));

  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClientTest, IsSafeToUseFromManyThreads) {
  LocalHttpServer server([](const LocalRequest& request, LocalResponse& response) {
    response.body = request.body;
  });
  auto client = NewHttpClient({.max_idle_connections = 4});
  std::atomic<int> correct{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        std::string body = std::to_string(t) + "-" + std::to_string(i);
        auto response = client->Send({.method = "POST", .url = server.Url("/count"),
                                      .body = body});
        if (response && response->status == 200 && response->body == body) ++correct;
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(correct.load(), 90);
  EXPECT_EQ(server.requests(), 90);
  EXPECT_LE(server.connections(), 10);  // idle connections were reused, not reopened
}

TEST(HttpClientTest, ATooSlowServerGivesTimeout) {
  LocalHttpServer server([](const LocalRequest&, LocalResponse& response) {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    response.body = "late";
  });
  auto client = NewHttpClient();

  auto start = std::chrono::steady_clock::now();
  auto response = client->Send({.url = server.Url("/slow"),
                                .timeout = std::chrono::milliseconds(150)});
  auto elapsed = std::chrono::steady_clock::now() - start;

  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kTimeout) << response.error().ToString();
  EXPECT_LT(elapsed, std::chrono::milliseconds(600));
}

TEST(HttpClientTest, AConnectionClosedWithoutReplyGivesUnavailable) {
  LocalHttpServer server([](const LocalRequest&, LocalResponse& response) {
    response.hang_up = true;
  });
  auto client = NewHttpClient();

  auto response = client->Send({.url = server.Url("/")});

  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable) << response.error().ToString();
}

TEST(HttpClientTest, AClosedPortGivesUnavailableWithoutUserInfoOrQueryInTheMessage) {
  auto client = NewHttpClient();

  auto response =
      client->Send({.url = "http://user:hunter2-secret@127.0.0.1:1/path?token=abc123"});

  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(response.error().message.find("http://127.0.0.1:1/path"), std::string::npos)
      << response.error().message;
  EXPECT_EQ(response.error().message.find("hunter2"), std::string::npos);
  EXPECT_EQ(response.error().message.find("abc123"), std::string::npos);
}

TEST(HttpClientTest, RejectsUrlsThatAreNotHttp) {
  auto client = NewHttpClient();
  auto response = client->Send({.url = "file:///etc/passwd"});
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kInvalidArgument);
}

TEST(HttpClientTest, RedactUrlDropsUserInfoQueryAndFragment) {
  EXPECT_EQ(RedactUrl("https://k:s@host:9000/a/b?x=1#f"), "https://host:9000/a/b");
  EXPECT_EQ(RedactUrl("http://host?x=1"), "http://host");
  EXPECT_EQ(RedactUrl("http://host/p"), "http://host/p");
  EXPECT_EQ(RedactUrl("http://a@b@host/p"), "http://host/p");
}

}  // namespace
}  // namespace s3db::net
