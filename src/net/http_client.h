// A small HTTP/1.1 client for the S3 store and the drivers (SQS, webhook, BigQuery).
//
// Errors: a request that got any HTTP status back is a success at this level (the caller
// decides what 404 or 503 means). Transport failures are errors: kTimeout when the request
// took longer than its timeout, kUnavailable when the server could not be reached or the
// connection broke, kInvalidArgument for a malformed URL or a TLS certificate that does not
// verify. Error messages name the method and the URL without user info and query string,
// and never contain header values or bodies.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "s3db/error.h"

namespace s3db::net {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE, PATCH, ...
  std::string url;             // absolute http:// or https:// URL, already percent-encoded
  // Sent as given. A "Host" header replaces the one derived from the URL. The client adds no
  // Content-Type and no "Expect: 100-continue" on its own.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent whenever non-empty, and for PUT/POST/PATCH always (maybe empty)
  std::chrono::milliseconds timeout{30000};  // whole request, connect included
  bool follow_redirects = false;
  bool verify_tls = true;
  std::string ca_file;  // PEM bundle to verify the server with; empty: the system's
};

struct HttpResponse {
  int status = 0;
  // Names lower-cased, values trimmed; repeated headers keep every value. Only the headers
  // of the final response (after 100-continue or redirects).
  std::multimap<std::string, std::string> headers;
  std::string body;

  // The first value of a header (name in any case), or "" when absent.
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
};

struct HttpClientOptions {
  std::string user_agent = "s3db/0.1";
  std::size_t max_idle_connections = 16;  // idle handles (each with its open connection) kept
};

// Thread-safe: any number of threads may call Send at once. Connections are kept alive and
// reused by later requests to the same host; DNS results and TLS sessions are shared.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

// The libcurl implementation.
std::unique_ptr<HttpClient> NewHttpClient(const HttpClientOptions& options = {});

// "https://host:port/path": the URL without user info, query string and fragment, for
// messages and logs.
std::string RedactUrl(std::string_view url);

}  // namespace s3db::net
