#include "drivers/bigquery/bigquery_api.h"

#include <algorithm>
#include <cstdlib>

#include "net/sigv4.h"

namespace s3db::replicator::bigquery {
namespace {

// A request is not started with less time than this left: it could not get an answer.
constexpr std::chrono::milliseconds kMinimumRequestTime{50};

ApiReply ToReply(const net::HttpResponse& response) {
  ApiReply reply;
  reply.status = response.status;
  if (!response.body.empty()) {
    auto parsed = ParseJson(response.body);
    if (parsed) reply.body = std::move(*parsed);
  }
  if (const JsonObject* object = reply.body.if_object()) {
    const JsonObject* error = nullptr;
    if (const Json* value = object->if_contains("error")) error = value->if_object();
    if (error != nullptr) {
      if (const Json* message = error->if_contains("message"); message && message->is_string()) {
        reply.message = std::string(message->get_string());
      }
      const Json* errors = error->if_contains("errors");
      if (errors != nullptr && errors->is_array() && !errors->get_array().empty()) {
        const JsonObject* first = errors->get_array()[0].if_object();
        const Json* reason = first ? first->if_contains("reason") : nullptr;
        if (reason != nullptr && reason->is_string()) {
          reply.reason = std::string(reason->get_string());
        }
      }
      if (reply.reason.empty()) {
        if (const Json* status = error->if_contains("status"); status && status->is_string()) {
          reply.reason = std::string(status->get_string());
        }
      }
    }
  }
  std::string retry_after = response.Header("retry-after");
  if (!retry_after.empty()) {
    char* end = nullptr;
    long seconds = std::strtol(retry_after.c_str(), &end, 10);
    if (end != retry_after.c_str() && seconds > 0 && seconds < 3600) {
      reply.retry_after = std::chrono::seconds(seconds);
    }
  }
  return reply;
}

bool IsRateLimit(std::string_view reason) {
  return reason == "rateLimitExceeded" || reason == "quotaExceeded" ||
         reason == "userRateLimitExceeded" || reason == "RESOURCE_EXHAUSTED";
}

}  // namespace

std::chrono::milliseconds Remaining(Deadline deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
}

std::string ApiReply::Describe() const {
  std::string text = "HTTP " + std::to_string(status);
  if (!reason.empty()) text += " " + reason;
  if (!message.empty()) text += ": " + message;
  return text;
}

DeliveryResult ClassifyReply(const ApiReply& reply, std::string_view what) {
  std::string message = std::string(what) + ": " + reply.Describe();
  int status = reply.status;
  if (status == 401) {
    return DeliveryResult::Unauthorized(message + " (after a token refresh)");
  }
  if ((status == 403 && IsRateLimit(reply.reason)) || status == 408 || status == 429 ||
      status >= 500) {
    DeliveryResult result = DeliveryResult::Retryable(message, reply.retry_after);
    // A quota or rate limit holds for the whole replicator, not this change only.
    result.pause_replicator = reply.retry_after.count() > 0;
    return result;
  }
  if (status == 403) {
    return DeliveryResult::Unauthorized(
        message +
        "; grant the account (service account or user) the BigQuery "
        "Data Editor and Job User roles");
  }
  std::string reason = reply.reason.empty() ? "http_" + std::to_string(status) : reply.reason;
  return DeliveryResult::Permanent(reason, message);
}

DeliveryResult ClassifyError(const Error& error, std::string_view what) {
  std::string message = std::string(what) + ": " + error.message;
  if (error.code == ErrorCode::kUnauthorized) return DeliveryResult::Unauthorized(message);
  if (error.code == ErrorCode::kUnavailable || error.code == ErrorCode::kTimeout) {
    return DeliveryResult::Unreachable(message);
  }
  return DeliveryResult::Retryable(message);
}

std::string EncodeSegment(std::string_view segment) { return net::UriEncode(segment, false); }

Api::Api(net::HttpClient& http, TokenSource& tokens, std::string endpoint)
    : http_(http), tokens_(tokens), endpoint_(std::move(endpoint)) {
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
}

Result<ApiReply> Api::Send(std::string_view method, const std::string& path, std::string body,
                           std::string content_type, Deadline deadline) {
  net::HttpRequest request;
  request.method = std::string(method);
  request.url = endpoint_ + path;
  request.headers = {{"Authorization", ""}, {"Accept", "application/json"}};
  if (!content_type.empty()) request.headers.emplace_back("Content-Type", content_type);
  // User credentials name the project billed for quota, as Google's client libraries send it.
  const std::string& quota_project = tokens_.credentials().quota_project_id;
  if (!quota_project.empty()) request.headers.emplace_back("x-goog-user-project", quota_project);
  request.body = std::move(body);
  for (int attempt = 0;; ++attempt) {
    std::chrono::milliseconds remaining = Remaining(deadline);
    if (remaining < kMinimumRequestTime) {
      return MakeError(ErrorCode::kTimeout, std::string(method) + " " + endpoint_ + path +
                                                ": the delivery deadline has passed");
    }
    S3DB_ASSIGN_OR_RETURN(std::string token, tokens_.Token(remaining));
    request.headers[0].second = "Bearer " + token;
    request.timeout = std::max(Remaining(deadline), kMinimumRequestTime);
    S3DB_ASSIGN_OR_RETURN(net::HttpResponse response, http_.Send(request));
    if (response.status == 401 && attempt == 0) {
      tokens_.Invalidate(token);
      continue;
    }
    return ToReply(response);
  }
}

}  // namespace s3db::replicator::bigquery
