#include "net/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>

namespace s3db::net {
namespace {

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

bool HasHeaderNamed(const std::vector<std::pair<std::string, std::string>>& headers,
                    std::string_view lower_name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& header) { return ToLower(header.first) == lower_name; });
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  response->body.append(data, size * count);
  return size * count;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line: an interim (100) or redirect response came before; start over.
    response->headers.clear();
    return size * count;
  }
  std::size_t colon = line.find(':');
  if (colon != std::string_view::npos && colon > 0) {
    response->headers.emplace(ToLower(Trim(line.substr(0, colon))),
                              std::string(Trim(line.substr(colon + 1))));
  }
  return size * count;
}

ErrorCode CodeForCurlError(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return ErrorCode::kTimeout;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return ErrorCode::kInvalidArgument;
    case CURLE_OUT_OF_MEMORY:
      return ErrorCode::kInternal;
    default:
      // Resolve/connect failures, resets, empty replies, TLS handshake failures, ...
      return ErrorCode::kUnavailable;
  }
}

// Owns a curl_slist.
struct HeaderListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlHeaderList = std::unique_ptr<curl_slist, HeaderListDeleter>;

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(const HttpClientOptions& options) : options_(options) {
    InitCurlOnce();
    share_ = curl_share_init();
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlHttpClient::Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlHttpClient::Unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    // DNS answers and TLS sessions are shared by all handles. Connections are not: libcurl
    // does not support one connection cache used by concurrent threads. Each pooled handle
    // keeps its own open connections instead, so reuse comes from reusing handles.
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  ~CurlHttpClient() override {
    for (CURL* handle : idle_) curl_easy_cleanup(handle);
    curl_share_cleanup(share_);
  }

  Result<HttpResponse> Send(const HttpRequest& request) override {
    if (request.url.rfind("http://", 0) != 0 && request.url.rfind("https://", 0) != 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "HTTP URL must start with http:// or https://: '" +
                           RedactUrl(request.url) + "'");
    }

    CURL* handle = Acquire();
    HttpResponse response;
    char error_text[CURL_ERROR_SIZE] = {0};
    CurlHeaderList headers = BuildHeaders(request);
    Configure(handle, request, headers.get(), &response, error_text);

    CURLcode code = curl_easy_perform(handle);
    long status = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    // Never keep pointers into this call's stack in a pooled handle.
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr);
    Release(handle);

    if (code != CURLE_OK) {
      std::string detail = error_text[0] != '\0' ? error_text : curl_easy_strerror(code);
      std::string message = request.method + " " + RedactUrl(request.url) + " failed: " +
                            std::string(Trim(detail));
      if (code == CURLE_OPERATION_TIMEDOUT) {
        message += " (timeout " + std::to_string(request.timeout.count()) + " ms)";
      }
      return MakeError(CodeForCurlError(code), std::move(message));
    }
    response.status = static_cast<int>(status);
    return response;
  }

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<CurlHttpClient*>(user)->share_locks_[Slot(data)].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<CurlHttpClient*>(user)->share_locks_[Slot(data)].unlock();
  }
  static std::size_t Slot(curl_lock_data data) {
    return std::min<std::size_t>(static_cast<std::size_t>(data), kLockSlots - 1);
  }

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(idle_mutex_);
      if (!idle_.empty()) {
        CURL* handle = idle_.back();
        idle_.pop_back();
        return handle;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* handle) {
    std::lock_guard<std::mutex> lock(idle_mutex_);
    if (idle_.size() < options_.max_idle_connections) {
      idle_.push_back(handle);
    } else {
      curl_easy_cleanup(handle);
    }
  }

  static CurlHeaderList BuildHeaders(const HttpRequest& request) {
    curl_slist* list = nullptr;
    for (const auto& [name, value] : request.headers) {
      // "Name;" is libcurl's way to send a header with an empty value.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      list = curl_slist_append(list, line.c_str());
    }
    // No "Expect: 100-continue" round trip, and no form content type for raw bodies.
    if (!HasHeaderNamed(request.headers, "expect")) list = curl_slist_append(list, "Expect:");
    if (!HasHeaderNamed(request.headers, "content-type")) {
      list = curl_slist_append(list, "Content-Type:");
    }
    return CurlHeaderList(list);
  }

  void Configure(CURL* handle, const HttpRequest& request, curl_slist* headers,
                 HttpResponse* response, char* error_text) {
    // Keeps live connections, DNS and session caches; clears every option.
    curl_easy_reset(handle);
    curl_easy_setopt(handle, CURLOPT_SHARE, share_);
    curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(handle, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(handle, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, response);

    long timeout_ms = std::max<long>(1, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(timeout_ms, 10000));

    curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
    curl_easy_setopt(handle, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, request.verify_tls ? 1L : 0L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, request.verify_tls ? 2L : 0L);
    if (!request.ca_file.empty()) curl_easy_setopt(handle, CURLOPT_CAINFO, request.ca_file.c_str());

    const std::string& method = request.method;
    bool sends_body =
        !request.body.empty() || method == "PUT" || method == "POST" || method == "PATCH";
    if (method == "HEAD") {
      curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (sends_body) {
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
      if (method != "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    } else if (method == "GET") {
      curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
  }

  static constexpr std::size_t kLockSlots = 16;

  const HttpClientOptions options_;
  CURLSH* share_ = nullptr;
  std::array<std::mutex, kLockSlots> share_locks_;  // one per curl_lock_data kind

  std::mutex idle_mutex_;   // guards idle_
  std::vector<CURL*> idle_;  // easy handles not in use, most recently used last
};

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(ToLower(name));
  return it == headers.end() ? std::string() : it->second;
}

bool HttpResponse::HasHeader(std::string_view name) const {
  return headers.find(ToLower(name)) != headers.end();
}

std::unique_ptr<HttpClient> NewHttpClient(const HttpClientOptions& options) {
  return std::make_unique<CurlHttpClient>(options);
}

std::string RedactUrl(std::string_view url) {
  std::size_t scheme_end = url.find("://");
  std::size_t authority_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::size_t authority_end = url.find_first_of("/?#", authority_start);
  if (authority_end == std::string_view::npos) authority_end = url.size();
  std::string_view authority = url.substr(authority_start, authority_end - authority_start);
  std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority.remove_prefix(at + 1);

  std::size_t path_end = url.find_first_of("?#", authority_end);
  if (path_end == std::string_view::npos) path_end = url.size();

  std::string out(url.substr(0, authority_start));
  out += authority;
  out += url.substr(authority_end, path_end - authority_end);
  return out;
}

}  // namespace s3db::net
