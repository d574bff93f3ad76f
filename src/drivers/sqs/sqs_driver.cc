#include "drivers/sqs/sqs_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

#include "core/thread_pool.h"
#include "drivers/webhook/change_payload.h"

namespace s3db::replicator {
namespace {

constexpr std::string_view kPath = "sqs config";
constexpr std::string_view kSource = "s3db-replicator";
constexpr std::chrono::milliseconds kStartTimeout{10000};

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::string(kPath) + "." + std::move(message));
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

bool IsHttpUrl(std::string_view url) {
  std::size_t host_at = url.rfind("https://", 0) == 0 ? 8 : url.rfind("http://", 0) == 0 ? 7 : 0;
  return host_at > 0 && url.size() > host_at && url[host_at] != '/' &&
         std::none_of(url.begin(), url.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

// "sqs.us-east-2.amazonaws.com" or "us-east-2.queue.amazonaws.com" -> "us-east-2".
std::string RegionOfQueueUrl(std::string_view url) {
  std::size_t start = url.find("://");
  if (start == std::string_view::npos) return "";
  std::string_view host = url.substr(start + 3);
  host = host.substr(0, host.find('/'));
  if (host.size() < 15 || host.substr(host.size() - 14) != ".amazonaws.com") return "";
  host.remove_suffix(14);
  if (host.rfind("sqs.", 0) == 0) return std::string(host.substr(4));
  if (host.size() > 6 && host.substr(host.size() - 6) == ".queue") {
    return std::string(host.substr(0, host.size() - 6));
  }
  return "";
}

bool IsFifoQueue(std::string_view url) {
  url = url.substr(0, url.find('?'));
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return url.size() >= 5 && url.substr(url.size() - 5) == ".fifo";
}

Status ParseQueueUrl(const JsonObject& config, std::string_view key, std::string& out) {
  S3DB_ASSIGN_OR_RETURN(auto url, network::ReadString(config, key, kPath));
  if (!url) return Ok();
  if (!IsHttpUrl(*url)) {
    return Invalid(std::string(key) + ": '" + net::RedactUrl(*url) +
                   "' is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)");
  }
  out = std::move(*url);
  return Ok();
}

Status ParseCredentials(const JsonObject& config, SqsOptions& options) {
  S3DB_ASSIGN_OR_RETURN(const JsonObject* credentials,
                        network::ReadObject(config, "credentials", kPath));
  if (credentials == nullptr) {
    options.credentials.access_key_id = Env("AWS_ACCESS_KEY_ID");
    options.credentials.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
    options.credentials.session_token = Env("AWS_SESSION_TOKEN");
    if (options.credentials.access_key_id.empty() !=
        options.credentials.secret_access_key.empty()) {
      return Invalid(
          "credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
    }
    return Ok();
  }
  const std::string path = "sqs config.credentials";
  S3DB_RETURN_IF_ERROR(network::RefuseUnknownKeys(
      *credentials, {"accessKeyId", "secretAccessKey", "sessionToken"}, path));
  S3DB_ASSIGN_OR_RETURN(auto key_id, network::ReadString(*credentials, "accessKeyId", path));
  S3DB_ASSIGN_OR_RETURN(auto secret, network::ReadString(*credentials, "secretAccessKey", path));
  S3DB_ASSIGN_OR_RETURN(auto token, network::ReadString(*credentials, "sessionToken", path));
  if (!key_id || key_id->empty() || !secret || secret->empty()) {
    return Invalid("credentials: give both accessKeyId and secretAccessKey");
  }
  options.credentials = {*key_id, *secret, token.value_or("")};
  return Ok();
}

bool IsAttributeName(std::string_view name) {
  return !name.empty() && name.size() <= 256 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

Status ParseMessageAttributes(const JsonObject& config, SqsOptions& options) {
  S3DB_ASSIGN_OR_RETURN(const JsonObject* attributes,
                        network::ReadObject(config, "messageAttributes", kPath));
  if (attributes == nullptr) return Ok();
  if (attributes->size() > 10) return Invalid("messageAttributes: SQS allows at most 10");
  for (const auto& entry : *attributes) {
    std::string name = "messageAttributes." + std::string(entry.key());
    if (!IsAttributeName(entry.key())) {
      return Invalid(name + ": names use letters, digits, '_', '-' and '.' (at most 256)");
    }
    if (!entry.value().is_object()) {
      return Invalid(name + ": expected {\"DataType\": \"String\", \"StringValue\": \"...\"}");
    }
    const JsonObject& attribute = entry.value().get_object();
    const std::string path = "sqs config." + name;
    S3DB_RETURN_IF_ERROR(
        network::RefuseUnknownKeys(attribute, {"DataType", "StringValue", "BinaryValue"}, path));
    S3DB_ASSIGN_OR_RETURN(auto type, network::ReadString(attribute, "DataType", path));
    if (!type || !(type->rfind("String", 0) == 0 || type->rfind("Number", 0) == 0 ||
                   type->rfind("Binary", 0) == 0)) {
      return Invalid(name + ".DataType: expected String, Number or Binary (optionally .label)");
    }
    bool binary = type->rfind("Binary", 0) == 0;
    const char* value_key = binary ? "BinaryValue" : "StringValue";
    S3DB_ASSIGN_OR_RETURN(auto value, network::ReadString(attribute, value_key, path));
    if (!value || value->empty()) return Invalid(name + "." + value_key + ": required");
    std::string decoded;
    if (binary && !net::Base64Decode(*value, &decoded)) {
      return Invalid(name + ".BinaryValue: not base64");
    }
  }
  options.message_attributes = *attributes;
  return Ok();
}

// Bytes that the attributes add to every message, as SQS counts them.
std::size_t AttributesSize(const JsonObject& attributes) {
  std::size_t size = 0;
  for (const auto& entry : attributes) {
    const JsonObject& attribute = entry.value().get_object();
    std::string type(attribute.at("DataType").get_string());
    size += entry.key().size() + type.size();
    if (const Json* text = attribute.if_contains("StringValue"); text && text->is_string()) {
      size += text->get_string().size();
    }
    if (const Json* bytes = attribute.if_contains("BinaryValue"); bytes && bytes->is_string()) {
      std::string decoded;
      net::Base64Decode(bytes->get_string(), &decoded);
      size += decoded.size();
    }
  }
  return size;
}

// The short error code of a refused request: "QueueDoesNotExist", "AccessDenied", ...
std::string ErrorCodeOf(const net::HttpResponse& response, std::string* message) {
  std::string code;
  auto body = ParseJsonObject(response.body);
  if (body) {
    if (const Json* type = body->if_contains("__type"); type && type->is_string()) {
      std::string_view text = type->get_string();
      code = std::string(text.substr(text.rfind('#') + 1));
    }
    for (const char* key : {"message", "Message"}) {
      if (const Json* text = body->if_contains(key); text && text->is_string()) {
        *message = network::BodySnippet(text->get_string());
      }
    }
  }
  std::string query_error = response.Header("x-amzn-query-error");
  if (code.empty() && !query_error.empty()) code = query_error.substr(0, query_error.find(';'));
  if (code.empty() && !body && message->empty()) *message = network::BodySnippet(response.body);
  return code;
}

bool IsAuthCode(std::string_view code) {
  static const std::set<std::string_view> kCodes = {"AccessDenied",
                                                    "AccessDeniedException",
                                                    "InvalidClientTokenId",
                                                    "SignatureDoesNotMatch",
                                                    "ExpiredToken",
                                                    "ExpiredTokenException",
                                                    "UnrecognizedClientException",
                                                    "MissingAuthenticationToken",
                                                    "IncompleteSignature",
                                                    "InvalidSecurity",
                                                    "AuthFailure",
                                                    "OptInRequired",
                                                    "KMS.AccessDeniedException",
                                                    "KmsAccessDenied"};
  return kCodes.count(code) > 0;
}

bool IsThrottleCode(std::string_view code) {
  static const std::set<std::string_view> kCodes = {"ThrottlingException",
                                                    "Throttling",
                                                    "RequestThrottled",
                                                    "KmsThrottled",
                                                    "KMS.ThrottlingException",
                                                    "ServiceUnavailable",
                                                    "InternalError",
                                                    "InternalFailure",
                                                    "RequestTimeout",
                                                    "RequestTimeoutException",
                                                    "OverLimit"};
  return kCodes.count(code) > 0;
}

bool IsMissingQueueCode(std::string_view code) {
  return code == "QueueDoesNotExist" || code == "NonExistentQueue" ||
         code == "AWS.SimpleQueueService.NonExistentQueue";
}

}  // namespace

struct SqsDriver::Entry {
  std::size_t index = 0;  // in the batch
  std::string queue_url;
  std::string json;      // the entry object without "Id", serialized
  std::size_t size = 0;  // message size as SQS counts it
  DeliveryResult result = DeliveryResult::Retryable("sqs: not sent");
};

Result<SqsOptions> ParseSqsOptions(const JsonObject& config) {
  S3DB_RETURN_IF_ERROR(network::RefuseUnknownKeys(
      config,
      {"region", "credentials", "endpoint", "queueUrl", "queues", "defaultQueueUrl",
       "messageGroupId", "deduplicationId", "messageAttributes", "maxMessageBytes", "maxBatchBytes",
       "concurrency", "checkQueues", "verifyTls", "caFile"},
      kPath));
  SqsOptions options;
  S3DB_RETURN_IF_ERROR(ParseQueueUrl(config, "queueUrl", options.queue_url));
  S3DB_RETURN_IF_ERROR(ParseQueueUrl(config, "defaultQueueUrl", options.default_queue_url));
  S3DB_ASSIGN_OR_RETURN(const JsonObject* queues, network::ReadObject(config, "queues", kPath));
  if (queues != nullptr) {
    for (const auto& entry : *queues) {
      std::string key = "queues." + std::string(entry.key());
      if (!entry.value().is_string() || !IsHttpUrl(entry.value().get_string())) {
        return Invalid(key + ": expected a queue URL string");
      }
      options.queues.emplace(std::string(entry.key()), std::string(entry.value().get_string()));
    }
  }
  if (options.queue_url.empty() && options.default_queue_url.empty() && options.queues.empty()) {
    return Invalid("queueUrl: required (or queues / defaultQueueUrl): give the queue's URL");
  }

  S3DB_ASSIGN_OR_RETURN(auto region, network::ReadString(config, "region", kPath));
  options.region = region.value_or("");
  if (options.region.empty()) options.region = Env("AWS_REGION");
  if (options.region.empty()) options.region = Env("AWS_DEFAULT_REGION");
  for (const std::string* url : {&options.queue_url, &options.default_queue_url}) {
    if (options.region.empty()) options.region = RegionOfQueueUrl(*url);
  }
  for (const auto& [resource, url] : options.queues) {
    if (options.region.empty()) options.region = RegionOfQueueUrl(url);
  }
  if (options.region.empty()) options.region = "us-east-1";
  if (!std::all_of(options.region.begin(), options.region.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
      })) {
    return Invalid("region: '" + options.region + "' is not a region name such as us-east-1");
  }

  S3DB_RETURN_IF_ERROR(ParseCredentials(config, options));
  S3DB_ASSIGN_OR_RETURN(auto endpoint, network::ReadString(config, "endpoint", kPath));
  if (endpoint) {
    if (!IsHttpUrl(*endpoint)) {
      return Invalid("endpoint: '" + net::RedactUrl(*endpoint) +
                     "' is not an http:// or https:// URL");
    }
    options.endpoint = *endpoint;
  } else if (options.credentials.access_key_id.empty()) {
    return Invalid(
        "credentials: required for AWS; give config.credentials {accessKeyId, "
        "secretAccessKey} or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }

  S3DB_ASSIGN_OR_RETURN(auto group, network::ReadString(config, "messageGroupId", kPath));
  if (group) {
    if (group->empty() || group->size() > 128) {
      return Invalid("messageGroupId: 1 to 128 characters");
    }
    options.message_group_id = *group;
  }
  S3DB_ASSIGN_OR_RETURN(auto dedup, network::ReadBool(config, "deduplicationId", kPath));
  options.deduplication_id = dedup.value_or(true);
  S3DB_RETURN_IF_ERROR(ParseMessageAttributes(config, options));
  S3DB_ASSIGN_OR_RETURN(auto message_bytes,
                        network::ReadInteger(config, "maxMessageBytes", kPath, 1024,
                                             static_cast<std::int64_t>(kSqsMaxBytes)));
  if (message_bytes) options.max_message_bytes = static_cast<std::size_t>(*message_bytes);
  S3DB_ASSIGN_OR_RETURN(auto batch_bytes,
                        network::ReadInteger(config, "maxBatchBytes", kPath, 1024,
                                             static_cast<std::int64_t>(kSqsMaxBytes)));
  if (batch_bytes) options.max_batch_bytes = static_cast<std::size_t>(*batch_bytes);
  S3DB_ASSIGN_OR_RETURN(auto concurrency,
                        network::ReadInteger(config, "concurrency", kPath, 1, 64));
  if (concurrency) options.concurrency = static_cast<int>(*concurrency);
  S3DB_ASSIGN_OR_RETURN(auto check, network::ReadBool(config, "checkQueues", kPath));
  options.check_queues = check.value_or(true);
  S3DB_ASSIGN_OR_RETURN(auto verify, network::ReadBool(config, "verifyTls", kPath));
  options.verify_tls = verify.value_or(true);
  S3DB_ASSIGN_OR_RETURN(auto ca_file, network::ReadString(config, "caFile", kPath));
  options.ca_file = ca_file.value_or("");
  if (!options.ca_file.empty()) {
    S3DB_RETURN_IF_ERROR(network::CheckCertificateFile(options.ca_file, "caFile", kPath));
  }
  return options;
}

std::string SqsDriver::SafeMessageToken(std::string_view value) {
  bool accepted =
      !value.empty() && value.size() <= 128 && std::all_of(value.begin(), value.end(), [](char c) {
        return c > 0x20 && c < 0x7f;  // letters, digits and ASCII punctuation
      });
  if (accepted) return std::string(value);
  return "h-" + net::Sha256Hex(value);
}

SqsDriver::SqsDriver(SqsOptions options, DriverContext context,
                     std::shared_ptr<net::HttpClient> client)
    : options_(std::move(options)),
      context_(std::move(context)),
      secrets_(network::RegisterSecrets(
          {options_.credentials.secret_access_key, options_.credentials.session_token})),
      client_(client ? std::move(client) : std::shared_ptr<net::HttpClient>(net::NewHttpClient())),
      pool_(std::make_unique<ThreadPool>(static_cast<std::size_t>(options_.concurrency - 1))) {
  std::string endpoint = options_.endpoint.empty()
                             ? "https://sqs." + options_.region + ".amazonaws.com"
                             : options_.endpoint;
  std::size_t authority_at = endpoint.find("://") + 3;
  std::size_t path_at = endpoint.find('/', authority_at);
  std::string authority = endpoint.substr(authority_at, path_at - authority_at);
  if (std::size_t at = authority.rfind('@'); at != std::string::npos) {
    authority = authority.substr(at + 1);
  }
  endpoint_host_ = authority;
  endpoint_path_ = path_at == std::string::npos ? "/" : endpoint.substr(path_at);
  endpoint_url_ = endpoint.substr(0, authority_at) + authority + endpoint_path_;
}

SqsDriver::~SqsDriver() = default;

SqsDriver::Stats SqsDriver::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

Result<net::HttpResponse> SqsDriver::Call(std::string_view action, std::string body,
                                          std::chrono::milliseconds timeout) {
  net::HttpRequest request;
  request.method = "POST";
  request.url = endpoint_url_;
  request.timeout = std::max(std::chrono::milliseconds(1), timeout);
  request.verify_tls = options_.verify_tls;
  request.ca_file = options_.ca_file;
  request.headers = {{"host", endpoint_host_},
                     {"content-type", "application/x-amz-json-1.0"},
                     {"x-amz-target", "AmazonSQS." + std::string(action)}};
  if (!options_.credentials.access_key_id.empty()) {
    net::SigV4Request signing{.method = "POST",
                              .path = endpoint_path_,
                              .query = {},
                              .headers = request.headers,
                              .payload_hash = net::Sha256Hex(body)};
    net::HeaderList signed_headers =
        net::SigV4SignedHeaders(signing, options_.credentials, {options_.region, "sqs"},
                                net::AmzDate(std::chrono::system_clock::now()));
    for (auto& header : signed_headers) request.headers.push_back(std::move(header));
  }
  request.body = std::move(body);
  return client_->Send(request);
}

Status SqsDriver::Start() {
  if (!options_.check_queues) return Ok();
  std::vector<std::pair<std::string, std::string>> to_check;  // option name, URL
  if (!options_.queue_url.empty()) to_check.emplace_back("queueUrl", options_.queue_url);
  if (!options_.default_queue_url.empty()) {
    to_check.emplace_back("defaultQueueUrl", options_.default_queue_url);
  }
  for (const auto& [resource, url] : options_.queues) {
    to_check.emplace_back("queues." + resource, url);
  }
  std::set<std::string> checked;
  for (const auto& [option, url] : to_check) {
    if (!checked.insert(url).second) continue;
    JsonObject body;
    body["QueueUrl"] = url;
    body["AttributeNames"] = JsonArray{"FifoQueue", "MaximumMessageSize"};
    auto response = Call("GetQueueAttributes", ToJson(body), kStartTimeout);
    const std::string where = std::string(kPath) + "." + option + ": queue " + url;
    if (!response) {
      return MakeError(response.error().code == ErrorCode::kInvalidArgument
                           ? ErrorCode::kInvalidArgument
                           : ErrorCode::kUnavailable,
                       "sqs: cannot reach endpoint " + net::RedactUrl(endpoint_url_) + ": " +
                           network::RedactValues(response.error().message, secrets_));
    }
    if (response->status == 200) {
      auto reply = ParseJsonObject(response->body);
      const Json* attributes = reply ? reply->if_contains("Attributes") : nullptr;
      const Json* size = attributes && attributes->is_object()
                             ? attributes->get_object().if_contains("MaximumMessageSize")
                             : nullptr;
      if (size != nullptr && size->is_string()) {
        std::size_t limit = std::strtoull(std::string(size->get_string()).c_str(), nullptr, 10);
        if (limit >= 1024) {
          std::lock_guard lock(limits_mutex_);
          queue_limits_[url] = limit;
        }
      }
      continue;
    }
    std::string message;
    std::string code = ErrorCodeOf(*response, &message);
    std::string detail = " (HTTP " + std::to_string(response->status) +
                         (code.empty() ? "" : " " + code) +
                         (message.empty() ? "" : ": " + message) + ")";
    if (IsMissingQueueCode(code)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       where + " does not exist" + detail + "; create it or fix the URL");
    }
    if (code == "AccessDenied" || code == "AccessDeniedException") {
      spdlog::warn("replicator {}: sqs: may not read the attributes of {}; skipping the check",
                   context_.replicator_id, url);
      continue;
    }
    if (IsAuthCode(code) || response->status == 401 || response->status == 403) {
      return MakeError(ErrorCode::kUnauthorized,
                       where + ": credentials refused" + detail + "; fix config.credentials");
    }
    if (response->status >= 500 || IsThrottleCode(code)) {
      return MakeError(ErrorCode::kUnavailable, where + ": not available now" + detail);
    }
    return MakeError(ErrorCode::kInvalidArgument, where + ": refused" + detail);
  }
  return Ok();
}

std::string SqsDriver::QueueFor(const DeliveryItem& item) const {
  if (item.destination_options != nullptr) {
    const Json* url = item.destination_options->if_contains("queueUrl");
    if (url != nullptr && url->is_string()) return std::string(url->get_string());
  }
  if (auto found = options_.queues.find(item.target); found != options_.queues.end()) {
    return found->second;
  }
  if (auto found = options_.queues.find(item.source_resource); found != options_.queues.end()) {
    return found->second;
  }
  if (!options_.queue_url.empty()) return options_.queue_url;
  return options_.default_queue_url;
}

std::size_t SqsDriver::MessageLimit(const std::string& queue_url) const {
  std::lock_guard lock(limits_mutex_);
  auto found = queue_limits_.find(queue_url);
  if (found == queue_limits_.end()) return options_.max_message_bytes;
  return std::min(found->second, options_.max_message_bytes);
}

void SqsDriver::SendBatch(const std::string& queue_url, std::span<Entry* const> entries,
                          Clock::time_point deadline) {
  const auto remaining =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (remaining.count() <= 0) {
    for (Entry* entry : entries) {
      entry->result = DeliveryResult::Retryable("sqs: not sent: the delivery call ran out of time");
    }
    return;
  }
  std::string body = "{\"QueueUrl\":" + ToJson(Json(queue_url)) + ",\"Entries\":[";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) body += ',';
    body += "{\"Id\":\"m" + std::to_string(i) + "\",";
    body.append(entries[i]->json, 1);  // the entry object without its opening brace
  }
  body += "]}";
  {
    std::lock_guard lock(stats_mutex_);
    ++stats_.requests;
    stats_.messages_sent += entries.size();
  }

  const std::string target = "sqs: SendMessageBatch to " + queue_url;
  auto response = Call("SendMessageBatch", std::move(body), remaining);
  if (!response) {
    std::string error = network::RedactValues(response.error().message, secrets_);
    for (Entry* entry : entries) {
      entry->result = response.error().code == ErrorCode::kInvalidArgument
                          ? DeliveryResult::Unauthorized(error + " (check endpoint and caFile)")
                          : DeliveryResult::Unreachable(error);
    }
    return;
  }

  if (response->status == 200) {
    auto reply = ParseJsonObject(response->body);
    std::vector<bool> answered(entries.size(), false);
    auto entry_of = [&](const Json& item) -> Entry* {
      if (!item.is_object()) return nullptr;
      const Json* id = item.get_object().if_contains("Id");
      if (id == nullptr || !id->is_string() || id->get_string().size() < 2) return nullptr;
      std::size_t position = std::strtoull(id->get_string().c_str() + 1, nullptr, 10);
      if (position >= entries.size() || answered[position]) return nullptr;
      answered[position] = true;
      return entries[position];
    };
    std::uint64_t delivered = 0;
    if (reply) {
      if (const Json* ok = reply->if_contains("Successful"); ok && ok->is_array()) {
        for (const Json& item : ok->get_array()) {
          if (Entry* entry = entry_of(item)) {
            entry->result = DeliveryResult::Delivered();
            ++delivered;
          }
        }
      }
      if (const Json* failed = reply->if_contains("Failed"); failed && failed->is_array()) {
        for (const Json& item : failed->get_array()) {
          Entry* entry = entry_of(item);
          if (entry == nullptr) continue;
          const JsonObject& fields = item.get_object();
          const Json* code = fields.if_contains("Code");
          const Json* text = fields.if_contains("Message");
          const Json* sender = fields.if_contains("SenderFault");
          std::string code_text = code && code->is_string() ? std::string(code->get_string()) : "";
          std::string error =
              target + " refused the message" + (code_text.empty() ? "" : " (" + code_text + ")") +
              (text && text->is_string() ? ": " + network::BodySnippet(text->get_string()) : "");
          bool sender_fault = sender && sender->is_bool() && sender->get_bool();
          entry->result =
              sender_fault && !IsThrottleCode(code_text)
                  ? DeliveryResult::Permanent(
                        "sqs_" + (code_text.empty() ? "sender_fault" : code_text), std::move(error))
                  : DeliveryResult::Retryable(std::move(error));
        }
      }
    }
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (!answered[i]) {
        entries[i]->result = DeliveryResult::Retryable(target + ": no result for the message");
      }
    }
    std::lock_guard lock(stats_mutex_);
    stats_.delivered += delivered;
    return;
  }

  std::string message;
  std::string code = ErrorCodeOf(*response, &message);
  std::string error = target + " answered " + std::to_string(response->status) +
                      (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message);
  error = network::RedactValues(std::move(error), secrets_);
  DeliveryResult shared;
  if (IsMissingQueueCode(code)) {
    shared = DeliveryResult::Unauthorized(error + "; create the queue or fix the queue URL");
  } else if (IsAuthCode(code) || response->status == 401 || response->status == 403) {
    shared = DeliveryResult::Unauthorized(error + "; check credentials and the queue policy");
  } else if (response->status == 502 || response->status == 503 || response->status == 504) {
    shared = DeliveryResult::Unreachable(error);
  } else if (IsThrottleCode(code) || response->status >= 500 || response->status == 429) {
    shared = DeliveryResult::Retryable(error);
  } else if (entries.size() > 1) {
    // Refused as a whole: find out which messages are at fault by sending them one by one.
    {
      std::lock_guard lock(stats_mutex_);
      ++stats_.split_requests;
    }
    for (Entry* entry : entries) SendBatch(queue_url, std::span<Entry* const>(&entry, 1), deadline);
    return;
  } else {
    shared = DeliveryResult::Permanent(
        "sqs_" + (code.empty() ? "http_" + std::to_string(response->status) : code), error);
  }
  for (Entry* entry : entries) entry->result = shared;
}

std::vector<DeliveryResult> SqsDriver::Deliver(std::span<const DeliveryItem> batch,
                                               std::chrono::milliseconds timeout) {
  const Clock::time_point deadline =
      Clock::now() + (timeout.count() > 0 ? timeout : std::chrono::milliseconds(30000));
  const std::size_t extra_bytes = AttributesSize(options_.message_attributes);

  // Prepare every message; those that can never be sent fail now.
  std::vector<Entry> entries(batch.size());
  std::vector<std::vector<std::size_t>> chains;  // per record: entries in batch order
  std::map<std::string, std::size_t> chain_of_record;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const DeliveryItem& item = batch[i];
    Entry& entry = entries[i];
    entry.index = i;
    entry.queue_url = QueueFor(item);
    if (entry.queue_url.empty()) {
      entry.result = DeliveryResult::Permanent(
          "no_queue", "sqs: no queue for resource '" + item.target + "': set config.queues." +
                          item.target + ", queueUrl or defaultQueueUrl");
      continue;
    }
    std::string message_body = ToJson(network::ChangePayload(item, kSource));
    entry.size = message_body.size() + extra_bytes;
    std::size_t limit = MessageLimit(entry.queue_url);
    if (entry.size > limit) {
      entry.result = DeliveryResult::Permanent(
          "payload_too_large", "sqs: the message for " + item.target + "/" + item.id + " is " +
                                   std::to_string(entry.size) + " bytes, over the limit of " +
                                   std::to_string(limit) +
                                   " bytes (maxMessageBytes or the queue's MaximumMessageSize)");
      continue;
    }
    JsonObject object;
    object["MessageBody"] = std::move(message_body);
    if (!options_.message_attributes.empty()) {
      object["MessageAttributes"] = options_.message_attributes;
    }
    if (IsFifoQueue(entry.queue_url)) {
      object["MessageGroupId"] = options_.message_group_id
                                     ? *options_.message_group_id
                                     : SafeMessageToken(item.target + ":" + item.id);
      if (options_.deduplication_id) {
        object["MessageDeduplicationId"] = SafeMessageToken(item.change_id);
      }
    }
    entry.json = ToJson(object);
    auto [found, added] = chain_of_record.emplace(network::RecordKey(item), chains.size());
    if (added) chains.emplace_back();
    chains[found->second].push_back(i);
  }

  // Rounds: the next change of every record whose earlier changes were delivered, so that a
  // request never holds two changes of one record and a failure holds back the later ones.
  std::vector<std::size_t> next(chains.size(), 0);
  while (true) {
    std::vector<Entry*> round;
    for (std::size_t c = 0; c < chains.size(); ++c) {
      if (next[c] < chains[c].size()) round.push_back(&entries[chains[c][next[c]]]);
    }
    if (round.empty()) break;
    std::sort(round.begin(), round.end(), [](Entry* a, Entry* b) { return a->index < b->index; });

    // Requests: per queue, in batch order, up to 10 entries and maxBatchBytes.
    std::vector<std::pair<std::string, std::vector<Entry*>>> requests;
    std::map<std::string, std::pair<std::size_t, std::size_t>> open;  // queue -> request, bytes
    for (Entry* entry : round) {
      auto found = open.find(entry->queue_url);
      if (found == open.end() ||
          requests[found->second.first].second.size() >= kSqsMaxEntriesPerBatch ||
          found->second.second + entry->size > options_.max_batch_bytes) {
        requests.push_back({entry->queue_url, {}});
        found = open.insert_or_assign(entry->queue_url, std::pair{requests.size() - 1, 0}).first;
      }
      requests[found->second.first].second.push_back(entry);
      found->second.second += entry->size;
    }
    pool_->ParallelFor(requests.size(), [&](std::size_t r) {
      SendBatch(requests[r].first, requests[r].second, deadline);
    });

    for (std::size_t c = 0; c < chains.size(); ++c) {
      if (next[c] >= chains[c].size()) continue;
      const Entry& sent = entries[chains[c][next[c]]];
      bool go_on =
          sent.result.outcome == Outcome::kDelivered || sent.result.outcome == Outcome::kPermanent;
      if (go_on) {
        ++next[c];
        continue;
      }
      for (std::size_t k = next[c] + 1; k < chains[c].size(); ++k) {
        entries[chains[c][k]].result =
            DeliveryResult::Retryable("sqs: not sent: an earlier change of record '" +
                                      batch[chains[c][k]].id + "' failed in the same batch");
      }
      next[c] = chains[c].size();
    }
  }

  std::vector<DeliveryResult> results;
  results.reserve(batch.size());
  for (Entry& entry : entries) results.push_back(std::move(entry.result));
  return results;
}

void RegisterSqsDriver() {
  RegisterDriver(
      "sqs",
      [](const JsonObject& config,
         const DriverContext& context) -> Result<std::unique_ptr<Driver>> {
        S3DB_ASSIGN_OR_RETURN(SqsOptions options, ParseSqsOptions(config));
        return std::unique_ptr<Driver>(std::make_unique<SqsDriver>(std::move(options), context));
      });
}

}  // namespace s3db::replicator
