#include "drivers/webhook/webhook_driver.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/thread_pool.h"
#include "drivers/webhook/change_payload.h"
#include "formats/datetime.h"
#include "net/sigv4.h"
#include "s3db/storage.h"
#include "storage/url_secrets.h"

namespace s3db::replicator {
namespace {

constexpr std::string_view kPath = "webhook config";
constexpr std::string_view kSource = "s3db-webhook-replicator";
// Failure counters kept at most; past it they start over (a change then gets fresh retries).
constexpr std::size_t kMaxTrackedChanges = 100000;
constexpr std::chrono::milliseconds kMaxRetryDelay = std::chrono::hours(24);

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::string(kPath) + "." + std::move(message));
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsHeaderName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return std::isalnum(byte) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string::npos;
  });
}

bool IsHeaderValue(std::string_view value) {
  return std::none_of(value.begin(), value.end(),
                      [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

Status ParseUrl(const JsonObject& config, WebhookOptions& options) {
  S3DB_ASSIGN_OR_RETURN(auto url, network::ReadString(config, "url", kPath));
  if (!url || url->empty()) {
    return Invalid("url: required; give the receiver's address, e.g. https://api.example.com/hook");
  }
  std::string lower = Lower(*url);
  std::size_t host_at = lower.rfind("https://", 0) == 0  ? 8
                        : lower.rfind("http://", 0) == 0 ? 7
                                                         : 0;
  if (host_at == 0 || url->size() == host_at || (*url)[host_at] == '/') {
    return Invalid("url: '" + net::RedactUrl(*url) + "' is not an http:// or https:// URL");
  }
  if (!IsHeaderValue(*url) || url->find(' ') != std::string::npos) {
    return Invalid("url: contains spaces or control characters; percent-encode them");
  }
  options.url = std::move(*url);
  return Ok();
}

Status ParseHeaders(const JsonObject& config, WebhookOptions& options) {
  S3DB_ASSIGN_OR_RETURN(const JsonObject* headers, network::ReadObject(config, "headers", kPath));
  if (headers == nullptr) return Ok();
  for (const auto& entry : *headers) {
    std::string name(entry.key());
    if (!IsHeaderName(name)) return Invalid("headers: '" + name + "' is not a header name");
    std::string value;
    if (entry.value().is_string()) {
      value = std::string(entry.value().get_string());
    } else if (entry.value().is_number() || entry.value().is_bool()) {
      value = ToJson(entry.value());
    } else {
      return Invalid("headers." + name + ": expected a string");
    }
    if (!IsHeaderValue(value)) return Invalid("headers." + name + ": contains a line break");
    options.headers.emplace_back(std::move(name), std::move(value));
  }
  return Ok();
}

Status ParseRetries(const JsonObject& config, WebhookOptions& options) {
  S3DB_ASSIGN_OR_RETURN(auto retries, network::ReadInteger(config, "retries", kPath, 0, 100));
  if (retries) options.retries = static_cast<int>(*retries);
  S3DB_ASSIGN_OR_RETURN(auto delay, network::ReadInteger(config, "retryDelay", kPath, 0, 3600000));
  if (delay) options.retry_delay = std::chrono::milliseconds(*delay);
  S3DB_ASSIGN_OR_RETURN(auto strategy, network::ReadString(config, "retryStrategy", kPath));
  if (strategy) {
    if (*strategy == "exponential") {
      options.retry_strategy = WebhookRetryStrategy::kExponential;
    } else if (*strategy == "fixed") {
      options.retry_strategy = WebhookRetryStrategy::kFixed;
    } else {
      return Invalid("retryStrategy: '" + *strategy + "' is not 'exponential' or 'fixed'");
    }
  }
  if (const Json* statuses = config.if_contains("retryOnStatus");
      statuses != nullptr && !statuses->is_null()) {
    if (!statuses->is_array()) {
      return Invalid("retryOnStatus: expected an array of HTTP statuses, e.g. [429, 500, 502, "
                     "503, 504]");
    }
    std::set<int> listed;
    const JsonArray& array = statuses->get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      const Json& status = array[i];
      const std::string where = "retryOnStatus[" + std::to_string(i) + "]: ";
      if (!status.is_int64() || status.get_int64() < 100 || status.get_int64() > 599) {
        std::string shown = ToJson(status);
        if (status.is_double()) {
          char text[32];
          std::snprintf(text, sizeof text, "%.17g", status.get_double());
          shown = text;
        }
        return Invalid(where + shown + " is not an HTTP status (an integer 100-599)");
      }
      int code = static_cast<int>(status.get_int64());
      if (code >= 200 && code < 300) {
        return Invalid(where + std::to_string(code) +
                       " is a success and is never retried; remove it");
      }
      if (code == 401 || code == 403) {
        return Invalid(where + std::to_string(code) +
                       " always pauses the replicator until the credentials work; remove it");
      }
      listed.insert(code);
    }
    options.retry_on_status = std::move(listed);
  }
  S3DB_ASSIGN_OR_RETURN(auto cap,
                        network::ReadInteger(config, "maxRetryAfter", kPath, 0, 86400000));
  if (cap) options.max_retry_after = std::chrono::milliseconds(*cap);
  return Ok();
}

Result<std::string> RequiredAuthString(const JsonObject& auth, std::string_view key,
                                       std::string_view type) {
  S3DB_ASSIGN_OR_RETURN(auto value, network::ReadString(auth, key, "webhook config.auth"));
  if (!value || value->empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "webhook config.auth." + std::string(key) +
                                                      ": required for type '" + std::string(type) +
                                                      "'");
  }
  if (!IsHeaderValue(*value)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "webhook config.auth." + std::string(key) + ": contains a line break");
  }
  return *value;
}

Status ParseAuth(const JsonObject& config, WebhookOptions& options) {
  S3DB_ASSIGN_OR_RETURN(const JsonObject* auth, network::ReadObject(config, "auth", kPath));
  if (auth == nullptr) return Ok();
  const std::string path = "webhook config.auth";
  S3DB_ASSIGN_OR_RETURN(auto type, network::ReadString(*auth, "type", path));
  std::string kind = type ? Lower(*type) : "";
  if (kind == "bearer") {
    S3DB_RETURN_IF_ERROR(network::RefuseUnknownKeys(*auth, {"type", "token"}, path));
    options.auth_type = WebhookAuthType::kBearer;
    S3DB_ASSIGN_OR_RETURN(options.auth_token, RequiredAuthString(*auth, "token", kind));
  } else if (kind == "basic") {
    S3DB_RETURN_IF_ERROR(network::RefuseUnknownKeys(*auth, {"type", "username", "password"}, path));
    options.auth_type = WebhookAuthType::kBasic;
    S3DB_ASSIGN_OR_RETURN(options.auth_username, RequiredAuthString(*auth, "username", kind));
    S3DB_ASSIGN_OR_RETURN(auto password, network::ReadString(*auth, "password", path));
    options.auth_password = password.value_or("");
  } else if (kind == "apikey") {
    S3DB_RETURN_IF_ERROR(network::RefuseUnknownKeys(*auth, {"type", "header", "value"}, path));
    options.auth_type = WebhookAuthType::kApiKey;
    S3DB_ASSIGN_OR_RETURN(auto header, network::ReadString(*auth, "header", path));
    if (header) {
      if (!IsHeaderName(*header)) return Invalid("auth.header: '" + *header + "' is not a name");
      options.auth_header = *header;
    }
    S3DB_ASSIGN_OR_RETURN(options.auth_value, RequiredAuthString(*auth, "value", kind));
  } else {
    return Invalid("auth.type: expected 'bearer', 'basic' or 'apikey'" +
                   (type ? ", got '" + *type + "'" : std::string()));
  }
  return Ok();
}

Status ParseSigning(const JsonObject& config, WebhookOptions& options) {
  S3DB_ASSIGN_OR_RETURN(auto secret, network::ReadString(config, "signingSecret", kPath));
  S3DB_ASSIGN_OR_RETURN(const JsonObject* signing, network::ReadObject(config, "signing", kPath));
  if (signing != nullptr) {
    if (secret) return Invalid("signing: give either signingSecret or signing.secret, not both");
    S3DB_RETURN_IF_ERROR(
        network::RefuseUnknownKeys(*signing, {"secret"}, "webhook config.signing"));
    S3DB_ASSIGN_OR_RETURN(secret,
                          network::ReadString(*signing, "secret", "webhook config.signing"));
    if (!secret) return Invalid("signing.secret: required");
  }
  if (!secret) return Ok();
  if (secret->empty()) return Invalid("signingSecret: empty; give a whsec_... secret or remove it");
  if (secret->rfind("whsec_", 0) == 0) {
    if (!net::Base64Decode(std::string_view(*secret).substr(6), &options.signing_key) ||
        options.signing_key.empty()) {
      return Invalid("signingSecret: the part after 'whsec_' is not base64");
    }
  } else {
    options.signing_key = *secret;
  }
  return Ok();
}

// Days since 1970-01-01 from a parsed HTTP date; nullopt when a field is out of range.
std::optional<std::int64_t> HttpDateSeconds(int year, const char* month_name, int day, int hour,
                                            int minute, int second) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  unsigned month = 0;
  for (unsigned i = 0; i < 12; ++i) {
    if (kMonths[i] == month_name) month = i + 1;
  }
  if (month == 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || hour < 0 ||
      minute < 0 || second < 0) {
    return std::nullopt;
  }
  std::int64_t days = formats::DaysFromCivil(year, month, static_cast<unsigned>(day));
  return days * 86400 + hour * 3600 + minute * 60 + second;
}

std::optional<std::int64_t> ParseHttpDate(const std::string& text) {
  char weekday[16] = {};
  char month[4] = {};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  int consumed = 0;
  std::size_t comma = text.find(',');
  if (comma != std::string::npos) {
    std::string rest = text.substr(comma + 1);
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (std::sscanf(rest.c_str(), " %2d %3s %4d %2d:%2d:%2d GMT%n", &day, month, &year, &hour,
                    &minute, &second, &consumed) == 6 &&
        consumed == static_cast<int>(rest.size())) {
      return HttpDateSeconds(year, month, day, hour, minute, second);
    }
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years ahead
    // means the previous century.
    consumed = 0;
    if (std::sscanf(rest.c_str(), " %2d-%3s-%2d %2d:%2d:%2d GMT%n", &day, month, &year, &hour,
                    &minute, &second, &consumed) == 6 &&
        consumed == static_cast<int>(rest.size())) {
      year += year < 70 ? 2000 : 1900;
      return HttpDateSeconds(year, month, day, hour, minute, second);
    }
    return std::nullopt;
  }
  // asctime: "Sun Nov  6 08:49:37 1994"
  if (std::sscanf(text.c_str(), "%15s %3s %2d %2d:%2d:%2d %4d%n", weekday, month, &day, &hour,
                  &minute, &second, &year, &consumed) == 7 &&
      consumed == static_cast<int>(text.size())) {
    return HttpDateSeconds(year, month, day, hour, minute, second);
  }
  return std::nullopt;
}

std::string Trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

// A webhook-id: the change id when it is a plain header token, else a hash of it.
std::string SafeWebhookId(std::string_view id) {
  bool plain = !id.empty() && id.size() <= 200 &&
               std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (plain) return std::string(id);
  return "chg_" + net::Sha256Hex(id).substr(0, 40);
}

// Without retryOnStatus: 1xx (never a final answer from a sane receiver), 408, 425, 429 and
// every 5xx. With it: exactly the listed statuses.
bool IsRetryableStatus(int status, const std::optional<std::set<int>>& configured) {
  if (configured) return configured->count(status) > 0;
  return status < 200 || status == 408 || status == 425 || status == 429 || status >= 500;
}

}  // namespace

Result<WebhookOptions> ParseWebhookOptions(const JsonObject& config) {
  S3DB_RETURN_IF_ERROR(network::RefuseUnknownKeys(
      config,
      {"url", "method", "headers", "timeout", "retries", "retryDelay", "retryStrategy",
       "retryOnStatus", "auth", "batch", "batchSize", "signingSecret", "signing", "concurrency",
       "followRedirects", "verifyTls", "caFile", "maxRetryAfter"},
      kPath));
  WebhookOptions options;
  S3DB_RETURN_IF_ERROR(ParseUrl(config, options));

  S3DB_ASSIGN_OR_RETURN(auto method, network::ReadString(config, "method", kPath));
  if (method) {
    std::string upper = *method;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper != "POST" && upper != "PUT" && upper != "PATCH") {
      return Invalid("method: '" + *method + "' is not POST, PUT or PATCH");
    }
    options.method = upper;
  }
  S3DB_RETURN_IF_ERROR(ParseHeaders(config, options));
  S3DB_ASSIGN_OR_RETURN(auto timeout, network::ReadInteger(config, "timeout", kPath, 1, 600000));
  if (timeout) options.timeout = std::chrono::milliseconds(*timeout);
  S3DB_RETURN_IF_ERROR(ParseRetries(config, options));
  S3DB_RETURN_IF_ERROR(ParseAuth(config, options));

  S3DB_ASSIGN_OR_RETURN(auto batch, network::ReadBool(config, "batch", kPath));
  options.batch = batch.value_or(false);
  S3DB_ASSIGN_OR_RETURN(auto batch_size,
                        network::ReadInteger(config, "batchSize", kPath, 1, 10000));
  if (batch_size) options.batch_size = static_cast<int>(*batch_size);
  S3DB_RETURN_IF_ERROR(ParseSigning(config, options));
  S3DB_ASSIGN_OR_RETURN(auto concurrency,
                        network::ReadInteger(config, "concurrency", kPath, 1, 64));
  if (concurrency) options.concurrency = static_cast<int>(*concurrency);
  S3DB_ASSIGN_OR_RETURN(auto follow, network::ReadBool(config, "followRedirects", kPath));
  options.follow_redirects = follow.value_or(false);
  S3DB_ASSIGN_OR_RETURN(auto verify, network::ReadBool(config, "verifyTls", kPath));
  options.verify_tls = verify.value_or(true);
  S3DB_ASSIGN_OR_RETURN(auto ca_file, network::ReadString(config, "caFile", kPath));
  options.ca_file = ca_file.value_or("");
  if (!options.ca_file.empty()) {
    S3DB_RETURN_IF_ERROR(network::CheckCertificateFile(options.ca_file, "caFile", kPath));
  }
  return options;
}

std::string StandardWebhookSignature(std::string_view key, std::string_view id,
                                     std::string_view timestamp, std::string_view body) {
  std::string content;
  content.reserve(id.size() + timestamp.size() + body.size() + 2);
  content.append(id).append(".").append(timestamp).append(".").append(body);
  return "v1," + net::Base64Encode(net::HmacSha256(key, content));
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  std::string text = Trimmed(value);
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (text.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24 * 365 * 30));
    return std::chrono::milliseconds(std::stoll(text) * 1000);
  }
  std::optional<std::int64_t> seconds = ParseHttpDate(text);
  if (!seconds) return std::nullopt;
  auto when = std::chrono::system_clock::time_point(std::chrono::seconds(*seconds));
  if (when <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(when - now);
}

// Every secret of the options in every form a receiver may echo back: the auth values, the
// Authorization header as sent, the values of sensitive custom headers and the signing key.
std::vector<std::string> WebhookDriver::Secrets(const WebhookOptions& options) {
  std::vector<std::string> secrets = {options.auth_token, options.auth_password,
                                      options.auth_value, options.signing_key};
  if (!options.signing_key.empty()) secrets.push_back(net::Base64Encode(options.signing_key));
  if (options.auth_type == WebhookAuthType::kBasic) {
    network::AddHeaderSecrets(
        "Basic " + net::Base64Encode(options.auth_username + ":" + options.auth_password),
        secrets);
  }
  if (options.auth_type == WebhookAuthType::kBearer) {
    network::AddHeaderSecrets("Bearer " + options.auth_token, secrets);
  }
  for (const auto& [name, value] : options.headers) {
    if (network::IsSensitiveHeader(name)) network::AddHeaderSecrets(value, secrets);
  }
  // The URL's user-info password (sent as basic auth) and its secret query values.
  for (std::string& secret : UrlSecrets(options.url)) secrets.push_back(std::move(secret));
  return network::RegisterSecrets(std::move(secrets));
}

WebhookDriver::WebhookDriver(WebhookOptions options, DriverContext context,
                             std::shared_ptr<net::HttpClient> client)
    : options_(std::move(options)),
      context_(std::move(context)),
      redacted_url_(net::RedactUrl(options_.url)),
      secrets_(Secrets(options_)),
      client_(client ? std::move(client)
                     : std::shared_ptr<net::HttpClient>(net::NewHttpClient(
                           {.max_idle_connections =
                                static_cast<std::size_t>(std::max(16, options_.concurrency))}))),
      pool_(std::make_unique<ThreadPool>(static_cast<std::size_t>(options_.concurrency - 1))) {}

WebhookDriver::~WebhookDriver() = default;

Status WebhookDriver::Start() { return Ok(); }

WebhookDriver::Stats WebhookDriver::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

std::string WebhookDriver::RedactSecrets(std::string text) const {
  return network::RedactValues(std::move(text), secrets_);
}

net::HttpRequest WebhookDriver::BuildRequest(std::string body, const std::string& webhook_id,
                                             std::chrono::milliseconds timeout) const {
  net::HttpRequest request;
  request.method = options_.method;
  request.url = options_.url;
  request.timeout = timeout;
  request.follow_redirects = options_.follow_redirects;
  request.verify_tls = options_.verify_tls;
  request.ca_file = options_.ca_file;

  auto set_header = [&](std::string name, std::string value) {
    std::string lower = Lower(name);
    std::erase_if(request.headers,
                  [&](const auto& header) { return Lower(header.first) == lower; });
    request.headers.emplace_back(std::move(name), std::move(value));
  };
  request.headers.emplace_back("Content-Type", "application/json");
  for (const auto& [name, value] : options_.headers) set_header(name, value);
  switch (options_.auth_type) {
    case WebhookAuthType::kNone:
      break;
    case WebhookAuthType::kBearer:
      set_header("Authorization", "Bearer " + options_.auth_token);
      break;
    case WebhookAuthType::kBasic:
      set_header("Authorization", "Basic " + net::Base64Encode(options_.auth_username + ":" +
                                                               options_.auth_password));
      break;
    case WebhookAuthType::kApiKey:
      set_header(options_.auth_header, options_.auth_value);
      break;
  }
  if (!options_.signing_key.empty()) {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    std::string timestamp =
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count());
    set_header("webhook-id", webhook_id);
    set_header("webhook-timestamp", timestamp);
    set_header("webhook-signature",
               StandardWebhookSignature(options_.signing_key, webhook_id, timestamp, body));
  }
  request.body = std::move(body);
  return request;
}

DeliveryResult WebhookDriver::Classify(const Result<net::HttpResponse>& response,
                                       std::chrono::milliseconds timeout) const {
  const std::string target = "webhook: " + options_.method + " " + redacted_url_;
  if (!response) {
    const Error& error = response.error();
    switch (error.code) {
      case ErrorCode::kTimeout:
        return DeliveryResult::Unreachable(target + ": no answer within " +
                                           std::to_string(timeout.count()) + " ms (timeout)");
      case ErrorCode::kInvalidArgument:
        // A certificate that does not verify: nothing gets through until someone fixes it.
        return DeliveryResult::Unauthorized(RedactSecrets(error.message) +
                                            " (check url, caFile and verifyTls)");
      default:
        return DeliveryResult::Unreachable(RedactSecrets(error.message));
    }
  }
  const int status = response->status;
  if (status >= 200 && status < 300) return DeliveryResult::Delivered();
  std::string answered = target + " answered " + std::to_string(status);
  std::string snippet = RedactSecrets(network::BodySnippet(response->body));
  if (!snippet.empty()) answered += ": " + snippet;

  if (IsRetryableStatus(status, options_.retry_on_status)) {
    // 502, 503 and 504 speak for the whole receiver (or the proxy in front of it).
    DeliveryResult result = status == 502 || status == 503 || status == 504
                                ? DeliveryResult::Unreachable(std::move(answered))
                                : DeliveryResult::Retryable(std::move(answered));
    std::string retry_after = response->Header("retry-after");
    if (!retry_after.empty()) {
      auto delay = ParseRetryAfter(retry_after, std::chrono::system_clock::now());
      if (delay && delay->count() > 0) {
        result.retry_after = std::min(*delay, options_.max_retry_after);
        result.pause_replicator = result.retry_after.count() > 0;
        result.error += " (Retry-After: " + Trimmed(retry_after) + ")";
      }
    }
    return result;
  }
  if (status == 401 || status == 403) {
    return DeliveryResult::Unauthorized(answered + "; check auth");
  }
  if (status >= 300 && status < 400) {
    answered += options_.follow_redirects ? "; too many redirects"
                                          : "; redirects are not followed: fix url or set "
                                            "followRedirects";
  }
  return DeliveryResult::Permanent("http_" + std::to_string(status), std::move(answered));
}

DeliveryResult WebhookDriver::SendRequest(std::span<const DeliveryItem> batch,
                                          const std::vector<std::size_t>& items,
                                          Clock::time_point deadline) {
  std::string body;
  std::string webhook_id;
  if (options_.batch) {
    JsonArray entries;
    entries.reserve(items.size());
    std::string ids;
    for (std::size_t index : items) {
      entries.push_back(network::ChangePayload(batch[index], kSource));
      ids += batch[index].change_id;
      ids += '\n';
    }
    JsonObject payload;
    payload["batch"] = std::move(entries);
    body = ToJson(payload);
    webhook_id = "batch_" + net::Sha256Hex(ids).substr(0, 40);
  } else {
    body = ToJson(network::ChangePayload(batch[items.front()], kSource));
    webhook_id = SafeWebhookId(batch[items.front()].change_id);
  }

  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  std::chrono::milliseconds timeout =
      std::max(std::chrono::milliseconds(1), std::min(options_.timeout, remaining));
  net::HttpRequest request = BuildRequest(std::move(body), webhook_id, timeout);
  Result<net::HttpResponse> response = client_->Send(request);
  DeliveryResult result = Classify(response, timeout);
  {
    std::lock_guard lock(stats_mutex_);
    ++stats_.requests;
    stats_.changes_sent += items.size();
  }
  if (result.outcome == Outcome::kDelivered) {
    std::lock_guard lock(attempts_mutex_);
    last_success_ = Clock::now();
  }
  return result;
}

std::vector<DeliveryResult> WebhookDriver::Deliver(std::span<const DeliveryItem> batch,
                                                   std::chrono::milliseconds timeout) {
  if (batch.empty()) return {};
  std::vector<Answer> answers(batch.size());
  const Clock::time_point deadline =
      Clock::now() + (timeout.count() > 0 ? timeout : std::chrono::milliseconds(30000));
  const auto out_of_time = [&] {
    return DeliveryResult::Retryable("webhook: not sent: the delivery call ran out of time (" +
                                     std::to_string(timeout.count()) + " ms)");
  };
  const auto held_back = [&](const DeliveryItem& item) {
    return DeliveryResult::Retryable("webhook: not sent: an earlier change of record '" + item.id +
                                     "' failed in the same batch");
  };

  // Changes in groups, each group one request: one change each, or up to batchSize.
  std::vector<std::vector<std::size_t>> groups;
  if (options_.batch) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (groups.empty() || groups.back().size() >= static_cast<std::size_t>(options_.batch_size)) {
        groups.emplace_back();
      }
      groups.back().push_back(i);
    }
  } else {
    for (std::size_t i = 0; i < batch.size(); ++i) groups.push_back({i});
  }

  // Chains of groups: the groups of a chain go out one after another, chains in parallel.
  // Unbatched, a chain is one record's changes. Batched, each group is its own chain unless a
  // record has changes in several groups; then every group joins one chain, in order.
  std::vector<std::vector<std::size_t>> chains;  // group indices
  if (options_.batch) {
    std::map<std::string, std::size_t> group_of_record;
    bool record_spans_groups = false;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      for (std::size_t index : groups[g]) {
        auto [found, added] = group_of_record.emplace(network::RecordKey(batch[index]), g);
        if (!added && found->second != g) record_spans_groups = true;
      }
    }
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (record_spans_groups && !chains.empty()) {
        chains.front().push_back(g);
      } else {
        chains.push_back({g});
      }
    }
  } else {
    std::map<std::string, std::size_t> chain_of_record;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      auto [found, added] =
          chain_of_record.emplace(network::RecordKey(batch[groups[g].front()]), chains.size());
      if (added) chains.emplace_back();
      chains[found->second].push_back(g);
    }
  }

  auto run_chain = [&](std::size_t c) {
    std::set<std::string> failed_records;
    for (std::size_t g : chains[c]) {
      std::vector<std::size_t> items;
      for (std::size_t index : groups[g]) {
        if (failed_records.count(network::RecordKey(batch[index])) > 0) {
          answers[index].result = held_back(batch[index]);
        } else {
          items.push_back(index);
        }
      }
      if (items.empty()) continue;
      if (Clock::now() >= deadline) {
        for (std::size_t index : items) answers[index].result = out_of_time();
        continue;
      }
      DeliveryResult result = SendRequest(batch, items, deadline);
      for (std::size_t index : items) {
        answers[index].result = result;
        answers[index].attempted = true;
        // A dead-lettered change does not hold back the next one; a pending one does.
        if (result.outcome == Outcome::kRetryable || result.outcome == Outcome::kUnauthorized) {
          failed_records.insert(network::RecordKey(batch[index]));
        }
      }
    }
  };
  pool_->ParallelFor(chains.size(), run_chain);
  return Settle(batch, answers);
}

std::vector<DeliveryResult> WebhookDriver::Settle(std::span<const DeliveryItem> batch,
                                                  const std::vector<Answer>& answers) {
  std::vector<DeliveryResult> results;
  results.reserve(batch.size());
  const bool any_delivered = std::any_of(answers.begin(), answers.end(), [](const Answer& a) {
    return a.result.outcome == Outcome::kDelivered;
  });
  const Clock::time_point now = Clock::now();
  std::uint64_t delivered = 0;
  std::uint64_t given_up = 0;

  std::lock_guard lock(attempts_mutex_);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Answer& answer = answers[i];
    DeliveryResult result = answer.result;
    const std::string& change_id = batch[i].change_id;
    if (!answer.attempted) {
      results.push_back(std::move(result));
      continue;
    }
    switch (result.outcome) {
      case Outcome::kDelivered:
        ++delivered;
        attempts_.erase(change_id);
        break;
      case Outcome::kPermanent:
        attempts_.erase(change_id);
        break;
      case Outcome::kUnauthorized:
        break;
      case Outcome::kRetryable: {
        if (result.pause_replicator) break;  // the receiver asked to wait: not a failure
        if (attempts_.size() >= kMaxTrackedChanges && attempts_.count(change_id) == 0) {
          attempts_.clear();
        }
        Attempt& attempt = attempts_[change_id];
        if (attempt.failures == 0) attempt.first_failure = now;
        ++attempt.failures;
        bool receiver_up = any_delivered || (last_success_ != Clock::time_point{} &&
                                             last_success_ >= attempt.first_failure);
        if (attempt.failures > options_.retries && receiver_up) {
          result = DeliveryResult::Permanent(
              "max_retries", "webhook: gave up after " + std::to_string(attempt.failures) +
                                 " failed attempts (retries: " + std::to_string(options_.retries) +
                                 "): " + result.error);
          attempts_.erase(change_id);
          ++given_up;
          break;
        }
        if (options_.retry_delay.count() > 0) {
          double factor = options_.retry_strategy == WebhookRetryStrategy::kFixed
                              ? 1.0
                              : std::pow(2.0, std::min(attempt.failures - 1, 30));
          double delay =
              std::min<double>(static_cast<double>(options_.retry_delay.count()) * factor,
                               static_cast<double>(kMaxRetryDelay.count()));
          result.retry_after = std::chrono::milliseconds(static_cast<std::int64_t>(delay));
          if (context_.max_retry_delay.count() > 0) {
            result.retry_after = std::min(result.retry_after, context_.max_retry_delay);
          }
        }
        break;
      }
    }
    results.push_back(std::move(result));
  }
  std::lock_guard stats_lock(stats_mutex_);
  stats_.delivered += delivered;
  stats_.given_up += given_up;
  return results;
}

void RegisterWebhookDriver() {
  RegisterDriver("webhook",
                 [](const JsonObject& config,
                    const DriverContext& context) -> Result<std::unique_ptr<Driver>> {
                   S3DB_ASSIGN_OR_RETURN(WebhookOptions options, ParseWebhookOptions(config));
                   return std::unique_ptr<Driver>(
                       std::make_unique<WebhookDriver>(std::move(options), context));
                 });
}

}  // namespace s3db::replicator
