// The BigQuery REST calls the driver makes (API v2), authenticated with a TokenSource, and the
// classification of their replies into the engine's outcomes.
//
// Thread-safe: Api holds no mutable state of its own.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "drivers/bigquery/bigquery_auth.h"
#include "net/http_client.h"
#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/replicator/driver.h"

namespace s3db::replicator::bigquery {

using SteadyClock = std::chrono::steady_clock;
using Deadline = SteadyClock::time_point;

std::chrono::milliseconds Remaining(Deadline deadline);

// A reply that came back with an HTTP status.
struct ApiReply {
  int status = 0;
  Json body;            // the parsed JSON body; null when empty or not JSON
  std::string reason;   // error.errors[0].reason (e.g. "invalid", "rateLimitExceeded")
  std::string message;  // error.message
  std::chrono::milliseconds retry_after{0};  // Retry-After, when given

  bool ok() const { return status >= 200 && status < 300; }
  // "HTTP 403 rateLimitExceeded: Exceeded rate limits: …"
  std::string Describe() const;
};

// The outcome for a failed reply, per Google's error table: 401 unauthorized (the token was
// already refreshed once); 403 rateLimitExceeded/quotaExceeded and 408, 429, 5xx retryable;
// other 403s unauthorized; 400 and other 4xx permanent with the API's reason ("http_<status>"
// when it gives none). `what` prefixes the message ("insertAll into p:d.t").
DeliveryResult ClassifyReply(const ApiReply& reply, std::string_view what);
// The outcome for a request that got no reply: kUnauthorized (token endpoint refused)
// unauthorized, anything else retryable.
DeliveryResult ClassifyError(const Error& error, std::string_view what);

// Percent-encodes one path segment (RFC 3986 unreserved characters kept).
std::string EncodeSegment(std::string_view segment);

class Api {
 public:
  // `endpoint`: the API root, e.g. "https://bigquery.googleapis.com" (no trailing slash).
  Api(net::HttpClient& http, TokenSource& tokens, std::string endpoint);

  // Sends a request to `endpoint + path` with "Authorization: Bearer <token>" (and
  // "x-goog-user-project" when the credentials name a quota project). A 401 makes it
  // drop the token, fetch a new one and send once more. Transport and token errors are
  // errors; any HTTP status is a reply. kTimeout when the deadline has passed.
  Result<ApiReply> Send(std::string_view method, const std::string& path, std::string body,
                        std::string content_type, Deadline deadline);

  const std::string& endpoint() const { return endpoint_; }

 private:
  net::HttpClient& http_;
  TokenSource& tokens_;
  std::string endpoint_;
};

}  // namespace s3db::replicator::bigquery
