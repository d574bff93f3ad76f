// The webhook driver against an HTTPS receiver with a self-signed certificate: refused by
// default, accepted once its certificate is configured as `caFile`, or with verifyTls: false.
// The receiver is cpp-httplib's SSLServer in this process; the certificate is made with the
// openssl command (Debian package openssl).
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "drivers/webhook/webhook_driver.h"
#include "test_util.h"

namespace s3db::replicator {
namespace {

class HttpsReceiver {
 public:
  HttpsReceiver(const std::string& cert, const std::string& key)
      : server_(cert.c_str(), key.c_str()) {
    server_.Post(".*", [this](const httplib::Request& request, httplib::Response& response) {
      bodies_.push_back(request.body);
      ++requests_;
      response.status = 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~HttpsReceiver() {
    server_.stop();
    thread_.join();
  }
  bool valid() { return server_.is_valid() && port_ > 0; }
  std::string Url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  int requests() const { return requests_; }
  const std::vector<std::string>& bodies() const { return bodies_; }

 private:
  httplib::SSLServer server_;
  int port_ = -1;
  std::atomic<int> requests_{0};
  std::vector<std::string> bodies_;  // handled one at a time: requests are sent in sequence
  std::thread thread_;
};

class WebhookTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = dir_.str() + "/receiver.pem";
    key_ = dir_.str() + "/receiver.key";
    std::string command =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1 -keyout " +
        key_ + " -out " + cert_ + " >" + dir_.str() + "/openssl.log 2>&1";
    if (std::system(command.c_str()) != 0) {
      if (testing::InCi()) FAIL() << "openssl could not make a certificate: " << command;
      GTEST_SKIP() << "the openssl command is missing or failed";
    }
    receiver_ = std::make_unique<HttpsReceiver>(cert_, key_);
    ASSERT_TRUE(receiver_->valid()) << "the HTTPS receiver did not start";
  }

  std::vector<DeliveryResult> DeliverOne(JsonObject config) {
    config["url"] = receiver_->Url();
    config["retries"] = 0;
    auto options = ParseWebhookOptions(config);
    EXPECT_TRUE(options.has_value()) << options.error().ToString();
    if (!options) return {};
    WebhookDriver driver(*options, DriverContext{});
    DeliveryItem item;
    item.change_id = "users:u1:1";
    item.source_resource = item.target = "users";
    item.id = "u1";
    item.revision = 1;
    item.action = Action::kInsert;
    item.data = JsonObject{{"id", "u1"}, {"name", "Ana"}};
    item.timestamp_ms = 1760783400000;
    std::vector<DeliveryItem> batch{item};
    return driver.Deliver(batch, std::chrono::milliseconds(5000));
  }

  testing::TempDir dir_;
  std::string cert_;
  std::string key_;
  std::unique_ptr<HttpsReceiver> receiver_;
};

TEST_F(WebhookTlsTest, ASelfSignedReceiverIsRefusedByDefault) {
  auto results = DeliverOne({});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
  EXPECT_NE(results[0].error.find("caFile"), std::string::npos) << results[0].error;
  EXPECT_EQ(receiver_->requests(), 0) << "no request may reach an unverified server";
}

TEST_F(WebhookTlsTest, ItsCertificateAsCaFileLetsChangesThrough) {
  auto results = DeliverOne({{"caFile", cert_}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  ASSERT_EQ(receiver_->requests(), 1);
  auto body = ParseJsonObject(receiver_->bodies()[0]);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->at("action").as_string(), "insert");
  EXPECT_EQ(body->at("data").as_object().at("name").as_string(), "Ana");
}

TEST_F(WebhookTlsTest, AnotherCaStillRefusesIt) {
  std::string other_cert = dir_.str() + "/other.pem";
  std::string command = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other "
                        "-keyout " + dir_.str() + "/other.key -out " + other_cert +
                        " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  auto results = DeliverOne({{"caFile", other_cert}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
  EXPECT_EQ(receiver_->requests(), 0);
}

TEST_F(WebhookTlsTest, VerifyTlsFalseSkipsTheCheck) {
  auto results = DeliverOne({{"verifyTls", false}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered) << results[0].error;
  EXPECT_EQ(receiver_->requests(), 1);
}

}  // namespace
}  // namespace s3db::replicator
