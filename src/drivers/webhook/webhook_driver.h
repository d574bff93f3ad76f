// The webhook driver ("webhook"): sends each change to an HTTP endpoint as the spec's JSON
// payload, one request per change or, with "batch": true, {"batch": [...]} requests of at most
// "batchSize" changes. The engine owns retries; this driver classifies each response:
//
//   2xx                                   delivered
//   retryOnStatus when given, else        retryable, after the retryStrategy delay; with a
//   408, 425, 429 and 5xx                 Retry-After header (seconds or HTTP date) the whole
//                                         replicator pauses for that long (capped)
//   401, 403                              unauthorized: the engine pauses and probes
//   other statuses (3xx unless redirects  permanent, reason "http_<status>" (dead letter)
//   are followed, other 4xx)
//   no answer in `timeout`, no connection retryable
//
// "retries" is enforced here with the engine's rule: once a change has failed more than
// `retries` times while the receiver accepted other requests, it fails for good
// ("max_retries"); while the receiver accepts nothing (an outage) it stays retryable and the
// engine pauses instead. The engine's maxRetries applies as well: the lower of the two wins.
// See docs/drivers/webhook.md for every option and policy.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "net/http_client.h"
#include "s3db/replicator/driver.h"

namespace s3db {
class ThreadPool;
}

namespace s3db::replicator {

// Registers the driver as "webhook". Idempotent.
void RegisterWebhookDriver();

enum class WebhookAuthType { kNone, kBearer, kBasic, kApiKey };
enum class WebhookRetryStrategy { kExponential, kFixed };

// The replicator's "config" object. Unknown keys are refused.
struct WebhookOptions {
  std::string url;              // "url" (required): http:// or https://
  std::string method = "POST";  // "method": POST, PUT or PATCH
  // "headers": sent with every request. Content-Type defaults to application/json.
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{5000};      // "timeout": one request, connect included
  int retries = 3;                              // "retries": retryable failures before giving up
  std::chrono::milliseconds retry_delay{1000};  // "retryDelay": first retry delay; 0 = engine's
  WebhookRetryStrategy retry_strategy = WebhookRetryStrategy::kExponential;  // "retryStrategy"
  // "retryOnStatus": when given, exactly the statuses that are retried (any other non-2xx
  // status except 401/403 is permanent). Not given (nullopt): 408, 425, 429 and every 5xx,
  // which covers the spec's default [429, 500, 502, 503, 504].
  std::optional<std::set<int>> retry_on_status;
  // "auth": {"type": "bearer", "token"} | {"type": "basic", "username", "password"} |
  // {"type": "apikey", "header" (default X-API-Key), "value"}.
  WebhookAuthType auth_type = WebhookAuthType::kNone;
  std::string auth_token;                 // bearer
  std::string auth_username;              // basic
  std::string auth_password;              // basic
  std::string auth_header = "X-API-Key";  // apikey
  std::string auth_value;                 // apikey
  bool batch = false;                     // "batch"
  int batch_size = 100;                   // "batchSize": most changes in one batch request
  // "signingSecret" (or "signing": {"secret"}): Standard Webhooks signing key. "whsec_<base64>"
  // is decoded; any other string is used as its bytes. Empty = no signature headers.
  std::string signing_key;
  int concurrency = 8;            // "concurrency": requests in flight at once (different records)
  bool follow_redirects = false;  // "followRedirects"
  bool verify_tls = true;         // "verifyTls"
  std::string ca_file;            // "caFile": PEM bundle for https
  std::chrono::milliseconds max_retry_after{300000};  // "maxRetryAfter": cap of Retry-After
};

// Validates the config; errors (kInvalidArgument) name the option and the fix.
Result<WebhookOptions> ParseWebhookOptions(const JsonObject& config);

// Standard Webhooks signature header value: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>".
std::string StandardWebhookSignature(std::string_view key, std::string_view id,
                                     std::string_view timestamp, std::string_view body);

// Parses a Retry-After value: delay-seconds or an HTTP date (IMF-fixdate, RFC 850 or asctime)
// relative to `now`. nullopt when it is neither; a date in the past gives 0.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

class WebhookDriver final : public Driver {
 public:
  struct Stats {
    std::uint64_t requests = 0;      // HTTP requests sent (answered or not)
    std::uint64_t changes_sent = 0;  // changes carried by those requests
    std::uint64_t delivered = 0;     // changes answered with 2xx
    std::uint64_t given_up = 0;      // changes failed for good after `retries`
  };

  // `client`: the HTTP client to use; nullptr makes a libcurl client.
  WebhookDriver(WebhookOptions options, DriverContext context,
                std::shared_ptr<net::HttpClient> client = nullptr);
  ~WebhookDriver() override;

  // Checks nothing over the network (a receiver need not answer probes); always Ok.
  Status Start() override;

  // Sends the batch (see the file comment). Changes of one record go out one after another,
  // in order; a change whose earlier change of the same record failed in this call is not sent
  // and comes back retryable.
  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds timeout) override;

  Stats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  // Failures of one change so far.
  struct Attempt {
    int failures = 0;
    Clock::time_point first_failure{};
  };
  // The answer to one change in one Deliver call, before Settle.
  struct Answer {
    DeliveryResult result = DeliveryResult::Retryable("not sent");
    bool attempted = false;  // false: held back or out of time; never counts as a failure
  };

  // Sends one request carrying `items` (indices into `batch`) and classifies the answer.
  DeliveryResult SendRequest(std::span<const DeliveryItem> batch,
                             const std::vector<std::size_t>& items, Clock::time_point deadline);
  net::HttpRequest BuildRequest(std::string body, const std::string& webhook_id,
                                std::chrono::milliseconds timeout) const;
  DeliveryResult Classify(const Result<net::HttpResponse>& response,
                          std::chrono::milliseconds timeout) const;
  // Turns the answers of this call into the results the engine gets: counts failures,
  // computes retry delays and gives up after `retries`.
  std::vector<DeliveryResult> Settle(std::span<const DeliveryItem> batch,
                                     const std::vector<Answer>& answers);
  std::string RedactSecrets(std::string text) const;
  static std::vector<std::string> Secrets(const WebhookOptions& options);

  const WebhookOptions options_;
  const DriverContext context_;
  const std::string redacted_url_;
  const std::vector<std::string> secrets_;
  std::shared_ptr<net::HttpClient> client_;
  std::unique_ptr<ThreadPool> pool_;

  // Guards attempts_ and last_success_.
  std::mutex attempts_mutex_;
  // change id -> its failures so far (retryable ones without a Retry-After pause).
  std::unordered_map<std::string, Attempt> attempts_;
  Clock::time_point last_success_{};

  mutable std::mutex stats_mutex_;  // guards stats_
  Stats stats_;
};

}  // namespace s3db::replicator
