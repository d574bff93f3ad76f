// The S3 object store: AWS S3 (virtual-host style) or any S3-compatible endpoint (path
// style), over the libcurl HTTP client with our own SigV4 signer.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <random>
#include <thread>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "net/http_client.h"
#include "net/sigv4.h"
#include "net/xml.h"
#include "s3db/storage.h"

namespace s3db {
namespace {

// Reads of one GET that may meet a write in progress (see Get).
constexpr int kTornReadAttempts = 12;
constexpr int kStableMismatchReads = 3;

bool IsMd5Hex(std::string_view etag) {
  return etag.size() == 32 && std::all_of(etag.begin(), etag.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string Md5Hex(std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(body.data(), body.size(), digest, &length, EVP_md5(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}


using net::HeaderList;
using net::HttpResponse;
using net::XmlElement;

constexpr std::size_t kMaxKeysPerDelete = 1000;  // S3's limit for one DeleteObjects request
constexpr std::size_t kMaxKeyBytes = 1024;       // S3's limit for an object key
constexpr std::chrono::milliseconds kFirstRetryDelay{100};
constexpr std::chrono::milliseconds kMaxRetryDelay{5000};
constexpr std::string_view kEncodedWordPrefix = "=?UTF-8?B?";
constexpr std::string_view kMetaPrefix = "x-amz-meta-";

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string StripEtagQuotes(std::string_view etag) {
  if (etag.rfind("W/", 0) == 0) etag.remove_prefix(2);
  while (!etag.empty() && etag.front() == '"') etag.remove_prefix(1);
  while (!etag.empty() && etag.back() == '"') etag.remove_suffix(1);
  return std::string(etag);
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "Wed, 21 Oct 2015 07:28:00 GMT" -> ms since the epoch; 0 when unreadable.
std::int64_t ParseHttpDate(const std::string& text) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char month[4] = {0};
  std::tm tm{};
  if (std::sscanf(text.c_str(), "%*3s, %d %3s %d %d:%d:%d", &tm.tm_mday, month, &tm.tm_year,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return 0;
  }
  tm.tm_mon = -1;
  for (int i = 0; i < 12; ++i) {
    if (std::string_view(month) == kMonths[i]) tm.tm_mon = i;
  }
  if (tm.tm_mon < 0) return 0;
  tm.tm_year -= 1900;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

// "2009-10-12T17:50:30.000Z" -> ms since the epoch; 0 when unreadable.
std::int64_t ParseIsoDate(const std::string& text) {
  std::tm tm{};
  int millis = 0;
  int fields = std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%3d", &tm.tm_year, &tm.tm_mon,
                           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis);
  if (fields < 6) return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + (fields == 7 ? millis : 0);
}

// Header values must be printable ASCII; anything else travels as an RFC 2047 encoded word,
// the form S3 itself uses for such values, and is decoded again on the way back.
std::string EncodeMetadataValue(std::string_view value) {
  bool plain = std::all_of(value.begin(), value.end(),
                           [](char c) { return c >= 0x20 && c < 0x7F; });
  bool looks_encoded = value.rfind(kEncodedWordPrefix, 0) == 0;
  // HTTP drops spaces around a header value, so such values are encoded too.
  bool padded = !value.empty() && (value.front() == ' ' || value.back() == ' ');
  if (plain && !looks_encoded && !padded) return std::string(value);
  return std::string(kEncodedWordPrefix) + net::Base64Encode(value) + "?=";
}

std::string DecodeMetadataValue(const std::string& value) {
  if (value.size() < kEncodedWordPrefix.size() + 2) return value;
  if (ToLower(value.substr(0, kEncodedWordPrefix.size())) != ToLower(kEncodedWordPrefix) ||
      value.compare(value.size() - 2, 2, "?=") != 0) {
    return value;
  }
  std::string decoded;
  std::string_view payload(value);
  payload = payload.substr(kEncodedWordPrefix.size(),
                           payload.size() - kEncodedWordPrefix.size() - 2);
  return net::Base64Decode(payload, &decoded) ? decoded : value;
}

bool IsValidMetadataName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::map<std::string, std::string> MetadataFromHeaders(const HttpResponse& response) {
  std::map<std::string, std::string> metadata;
  for (const auto& [name, value] : response.headers) {
    if (name.rfind(kMetaPrefix, 0) == 0 && name.size() > kMetaPrefix.size()) {
      metadata[name.substr(kMetaPrefix.size())] = DecodeMetadataValue(value);
    }
  }
  return metadata;
}

// "bytes" in XML or headers -> number; 0 when unreadable.
std::uint64_t ParseSize(const std::string& text) {
  char* end = nullptr;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  return (end == text.c_str()) ? 0 : static_cast<std::uint64_t>(value);
}

std::chrono::milliseconds RetryDelay(int retry) {
  // Exponential backoff with "equal jitter": half the step is fixed, half is random.
  auto step = kFirstRetryDelay * (1LL << std::min(retry, 16));
  auto capped = std::min<std::chrono::milliseconds>(step, kMaxRetryDelay);
  thread_local std::mt19937_64 random{std::random_device{}()};
  std::uniform_int_distribution<long long> jitter(0, capped.count() / 2);
  return std::chrono::milliseconds(capped.count() / 2 + jitter(random));
}

struct S3ErrorBody {
  std::string code;     // "SignatureDoesNotMatch"
  std::string message;  // S3's explanation
};

S3ErrorBody ParseErrorBody(const std::string& body) {
  S3ErrorBody error;
  if (body.empty()) return error;
  auto root = net::ParseXml(body);
  if (!root || root->name != "Error") return error;
  error.code = root->ChildText("Code");
  error.message = root->ChildText("Message");
  return error;
}

class S3Store final : public ObjectStore {
 public:
  S3Store(const ConnectionString& connection, const ObjectStoreOptions& options)
      : connection_(connection), options_(options), http_(net::NewHttpClient()) {
    credentials_ = {connection.access_key, connection.secret_key, connection.session_token};
    if (auto it = connection.params.find("caFile"); it != connection.params.end()) {
      ca_file_ = it->second;
    }
    if (connection.scheme == ConnectionString::Scheme::kS3) {
      scheme_ = "https";
      // Virtual-host style, except for bucket names with dots: they break the TLS wildcard
      // certificate, so those go path style to the regional endpoint.
      if (connection.bucket.find('.') == std::string::npos) {
        host_ = connection.bucket + ".s3." + connection.region + ".amazonaws.com";
      } else {
        host_ = "s3." + connection.region + ".amazonaws.com";
        bucket_path_ = "/" + connection.bucket;
      }
      description_ = "s3://" + connection.bucket;
    } else {
      scheme_ = connection.scheme == ConnectionString::Scheme::kHttp ? "http" : "https";
      host_ = connection.host;
      if (connection.port != 0) host_ += ":" + std::to_string(connection.port);
      bucket_path_ = "/" + connection.bucket;
      description_ = scheme_ + "://" + host_ + "/" + connection.bucket;
    }
    if (!connection.prefix.empty()) description_ += "/" + connection.prefix;
  }

  Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                         const PutOptions& options) override {
    S3DB_ASSIGN_OR_RETURN(std::string full_key, FullKey(key));
    Call call{"PUT", full_key};
    call.body = std::string(body);
    call.headers.emplace_back("content-type", options.content_type.empty()
                                                  ? "application/octet-stream"
                                                  : options.content_type);
    call.headers.emplace_back("content-md5", net::Base64Encode(net::Md5(body)));
    std::map<std::string, std::string> metadata;
    for (const auto& [name, value] : options.metadata) {
      std::string lower = ToLower(name);
      if (!IsValidMetadataName(lower)) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "metadata name '" + name +
                             "' is not allowed: use a-z, 0-9, '-', '_', '.'");
      }
      call.headers.emplace_back(std::string(kMetaPrefix) + lower, EncodeMetadataValue(value));
      metadata[lower] = value;
    }
    if (options.if_none_match) call.headers.emplace_back("if-none-match", "*");
    if (!options.if_match.empty()) {
      call.headers.emplace_back("if-match", QuoteEtag(options.if_match));
    }

    int attempts = 0;
    S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call, &attempts));
    bool conditional = options.if_none_match || !options.if_match.empty();

    if (response.status == 200) {
      ObjectInfo info;
      info.key = std::string(key);
      info.etag = StripEtagQuotes(response.Header("etag"));
      info.size = body.size();
      info.last_modified_ms = NowMs();
      info.metadata = std::move(metadata);
      return info;
    }
    if (conditional && (response.status == 412 || response.status == 409) && attempts > 1) {
      // An earlier attempt may have written the object and lost only its reply; then the
      // retry fails its own precondition. Our bytes being there means that we won.
      auto current = Head(key);
      if (current && current->etag == net::HexEncode(net::Md5(body))) {
        current->metadata = std::move(metadata);
        return current;
      }
    }
    if (response.status == 412 || response.status == 409) {
      std::string condition = options.if_none_match
                                  ? "the key already exists"
                                  : "the current etag is not '" +
                                        StripEtagQuotes(options.if_match) + "'";
      return MakeError(ErrorCode::kConflict,
                       "conditional put of '" + std::string(key) + "' in " + description_ +
                           " lost: " + condition + " (HTTP " + std::to_string(response.status) +
                           "); re-read and retry");
    }
    if (response.status == 404 && !options.if_match.empty() &&
        ParseErrorBody(response.body).code != "NoSuchBucket") {
      return MakeError(ErrorCode::kNotFound, "conditional put of '" + std::string(key) +
                                                 "' in " + description_ +
                                                 " failed: the key does not exist (If-Match)");
    }
    return tl::unexpected(ResponseError(response, "PUT", key, attempts));
  }

  Result<Object> Get(std::string_view key) override {
    S3DB_ASSIGN_OR_RETURN(std::string full_key, FullKey(key));
    // Some S3-compatible servers answer a GET that races a PUT with the body of one version
    // and the ETag of the other, or with no ETag at all (s3rver reads its ETag file while the
    // PUT rewrites it). An update that used such an ETag as its If-Match condition would
    // overwrite a write it never saw, so the answer is read again until it is consistent: an
    // ETag is there, and a single-part ETag is the body's MD5. ETags that are not MD5s although
    // they look like one (SSE-KMS) stay the same from read to read with the same body, and are
    // taken as they are once that has been seen a few times.
    int stable_reads = 0;
    std::string last_etag, last_md5;
    for (int read = 1;; ++read) {
      int attempts = 0;
      S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(Call{"GET", full_key}, &attempts));
      if (response.status != 200) {
        return tl::unexpected(ResponseError(response, "GET", key, attempts));
      }
      Object object;
      object.info = InfoFromHeaders(key, response);
      object.info.size = response.body.size();
      object.body = std::move(response.body);
      const std::string& etag = object.info.etag;
      if (!etag.empty() && (!IsMd5Hex(etag) || !etags_are_md5s_.load(std::memory_order_relaxed))) {
        return object;
      }
      std::string md5 = Md5Hex(object.body);
      if (md5 == etag) return object;
      stable_reads = etag == last_etag && md5 == last_md5 ? stable_reads + 1 : 1;
      if (stable_reads >= kStableMismatchReads) {
        // The same answer every time: this server sends no ETag (then writes that need one
        // refuse it), or its ETags are not MD5s (SSE-KMS), and later reads skip the check.
        if (!etag.empty() && etags_are_md5s_.exchange(false)) {
          spdlog::info("{}: ETags are not body MD5s (encrypted objects?); reads are no longer "
                       "checked against them",
                       description_);
        }
        return object;
      }
      last_etag = etag;
      last_md5 = std::move(md5);
      if (read >= kTornReadAttempts) {
        return MakeError(ErrorCode::kUnavailable,
                         "S3 GET '" + std::string(key) + "' in " + description_ +
                             ": the server answered " + std::to_string(read) +
                             " reads in a row with " +
                             (etag.empty() ? "no ETag" : "a body that does not match its ETag") +
                             " (a read racing writes); retry");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 * read * read, 100)));
    }
  }

  Result<ObjectInfo> Head(std::string_view key) override {
    S3DB_ASSIGN_OR_RETURN(std::string full_key, FullKey(key));
    int attempts = 0;
    S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(Call{"HEAD", full_key}, &attempts));
    if (response.status != 200) {
      return tl::unexpected(ResponseError(response, "HEAD", key, attempts));
    }
    ObjectInfo info = InfoFromHeaders(key, response);
    info.size = ParseSize(response.Header("content-length"));
    return info;
  }

  Status Delete(std::string_view key) override {
    S3DB_ASSIGN_OR_RETURN(std::string full_key, FullKey(key));
    int attempts = 0;
    S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(Call{"DELETE", full_key}, &attempts));
    if (response.status == 200 || response.status == 204) return Ok();
    if (response.status == 404 && ParseErrorBody(response.body).code != "NoSuchBucket") {
      return Ok();  // already gone: deleting is idempotent, as in S3
    }
    return tl::unexpected(ResponseError(response, "DELETE", key, attempts));
  }

  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    DeleteManyResult result;
    std::optional<Error> first_request_error;
    for (std::size_t start = 0; start < keys.size(); start += kMaxKeysPerDelete) {
      std::size_t end = std::min(keys.size(), start + kMaxKeysPerDelete);
      std::vector<std::string> chunk(keys.begin() + static_cast<std::ptrdiff_t>(start),
                                     keys.begin() + static_cast<std::ptrdiff_t>(end));
      Status status = DeleteChunk(chunk, &result);
      if (!status) {
        // The whole request failed: every key of this chunk failed with its error.
        for (const std::string& key : chunk) result.failed.emplace_back(key, status.error());
        if (!first_request_error) first_request_error = status.error();
      }
    }
    if (first_request_error && result.deleted.empty()) {
      return tl::unexpected(*first_request_error);
    }
    return result;
  }

  Result<ListPage> List(std::string_view prefix, std::string_view continuation_token,
                        int max_keys) override {
    if (max_keys < 1) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "List: max_keys must be at least 1, got " + std::to_string(max_keys));
    }
    Call call{"GET", ""};
    call.query = {{"list-type", "2"},
                  {"max-keys", std::to_string(std::min(max_keys, 1000))},
                  {"prefix", KeyPrefix() + std::string(prefix)}};
    // Tokens are keys, as in the other stores: a page's token is its last key (relative to
    // the store's prefix) and the next page starts after it (ListObjectsV2 start-after). So a
    // cursor means the same on every store, and callers may build one from a key.
    if (!continuation_token.empty()) {
      call.query.emplace_back("start-after", KeyPrefix() + std::string(continuation_token));
    }
    int attempts = 0;
    S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call, &attempts));
    if (response.status != 200) {
      return tl::unexpected(ResponseError(response, "LIST", prefix, attempts));
    }
    auto root = net::ParseXml(response.body);
    if (!root || root->name != "ListBucketResult") {
      return MakeError(ErrorCode::kUnavailable,
                       "LIST '" + std::string(prefix) + "' in " + description_ +
                           ": the reply is not a ListBucketResult document");
    }

    ListPage page;
    std::string key_prefix = KeyPrefix();
    for (const XmlElement* entry : root->Children("Contents")) {
      std::string full_key = entry->ChildText("Key");
      if (full_key.rfind(key_prefix, 0) != 0) continue;
      ObjectInfo info;
      info.key = full_key.substr(key_prefix.size());
      info.etag = StripEtagQuotes(entry->ChildText("ETag"));
      info.size = ParseSize(entry->ChildText("Size"));
      info.last_modified_ms = ParseIsoDate(entry->ChildText("LastModified"));
      page.objects.push_back(std::move(info));
    }
    if (root->ChildText("IsTruncated") == "true") {
      if (page.objects.empty()) {
        return MakeError(ErrorCode::kUnavailable,
                         "LIST '" + std::string(prefix) + "' in " + description_ +
                             ": the page is truncated but lists no key to continue after");
      }
      page.next_token = page.objects.back().key;
    }
    return page;
  }

  Result<ObjectInfo> Copy(std::string_view source_key, std::string_view target_key) override {
    S3DB_ASSIGN_OR_RETURN(std::string full_source, FullKey(source_key));
    S3DB_ASSIGN_OR_RETURN(std::string full_target, FullKey(target_key));
    Call call{"PUT", full_target};
    call.headers.emplace_back(
        "x-amz-copy-source",
        "/" + connection_.bucket + "/" + net::UriEncode(full_source, /*keep_slash=*/true));
    call.error_possible_in_200 = true;
    int attempts = 0;
    S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call, &attempts));
    if (response.status == 404 && ParseErrorBody(response.body).code != "NoSuchBucket") {
      return MakeError(ErrorCode::kNotFound, "copy to '" + std::string(target_key) + "' in " +
                                                 description_ + " failed: source object '" +
                                                 std::string(source_key) + "' not found");
    }
    if (response.status != 200) {
      return tl::unexpected(ResponseError(response, "COPY", source_key, attempts));
    }
    // The copy reply has the new etag but not the size: read both from the object itself.
    return Head(target_key);
  }

  std::string Describe() const override { return description_; }

 private:
  // One S3 request before signing.
  struct Call {
    Call(std::string method_in, std::string object_key_in)
        : method(std::move(method_in)), object_key(std::move(object_key_in)) {}

    std::string method;
    std::string object_key;  // full key (prefix included); empty for bucket-level requests
    std::vector<std::pair<std::string, std::string>> query;
    HeaderList headers;
    std::string body;
    bool error_possible_in_200 = false;  // CopyObject may answer 200 with an <Error> body
  };

  // The key as stored in the bucket: prefix + "/" + key.
  Result<std::string> FullKey(std::string_view key) const {
    if (key.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "object key must not be empty");
    }
    std::string full = KeyPrefix() + std::string(key);
    if (full.size() > kMaxKeyBytes) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "object key is " + std::to_string(full.size()) +
                           " bytes with the prefix; S3 allows at most 1024");
    }
    return full;
  }

  std::string KeyPrefix() const {
    return connection_.prefix.empty() ? std::string() : connection_.prefix + "/";
  }

  static std::string QuoteEtag(const std::string& etag) {
    if (etag == "*" || (!etag.empty() && etag.front() == '"')) return etag;
    return "\"" + etag + "\"";
  }

  ObjectInfo InfoFromHeaders(std::string_view key, const HttpResponse& response) const {
    ObjectInfo info;
    info.key = std::string(key);
    info.etag = StripEtagQuotes(response.Header("etag"));
    info.last_modified_ms = ParseHttpDate(response.Header("last-modified"));
    info.metadata = MetadataFromHeaders(response);
    return info;
  }

  // Sends one call, retrying transient failures (connection errors, timeouts, 500, 502, 503,
  // 504, 429, SlowDown, RequestTimeout) up to options_.max_retries times with backoff.
  // Returns the last response whatever its status; fails only when no response came back.
  Result<HttpResponse> Execute(const Call& call, int* attempts) {
    // Bucket-level requests go to "/bucket" in path style (no trailing slash, as the SDKs
    // send it and as signature-checking servers expect) and to "/" in virtual-host style.
    std::string path = call.object_key.empty()
                           ? (bucket_path_.empty() ? "/" : bucket_path_)
                           : bucket_path_ + "/" + call.object_key;
    std::string url = scheme_ + "://" + host_ + net::SigV4EncodePath(path);
    if (!call.query.empty()) url += "?" + net::CanonicalQueryString(call.query);
    std::string payload_hash = net::Sha256Hex(call.body);

    for (int attempt = 0;; ++attempt) {
      *attempts = attempt + 1;
      net::HttpRequest request;
      request.method = call.method;
      request.url = url;
      request.body = call.body;
      request.timeout = options_.request_timeout;
      request.ca_file = ca_file_;
      request.headers = call.headers;
      request.headers.emplace_back("host", host_);
      if (credentials_.access_key_id.empty()) {
        request.headers.emplace_back("x-amz-content-sha256", payload_hash);
      } else {
        net::SigV4Request signing{call.method, path, call.query, request.headers, payload_hash};
        HeaderList signed_headers = net::SigV4SignedHeaders(
            signing, credentials_, {connection_.region, "s3"},
            net::AmzDate(std::chrono::system_clock::now()));
        request.headers.insert(request.headers.end(), signed_headers.begin(),
                               signed_headers.end());
      }

      Result<HttpResponse> response = http_->Send(request);
      bool last = attempt >= options_.max_retries;
      if (!response) {
        bool transient = response.error().code == ErrorCode::kTimeout ||
                         response.error().code == ErrorCode::kUnavailable;
        if (transient && !last) {
          std::this_thread::sleep_for(RetryDelay(attempt));
          continue;
        }
        Error error = response.error();
        error.message = "S3 " + Scrub(error.message) + AttemptsNote(*attempts);
        return tl::unexpected(std::move(error));
      }
      if (IsTransient(*response, call) && !last) {
        std::this_thread::sleep_for(RetryDelay(attempt));
        continue;
      }
      if (call.error_possible_in_200 && response->status == 200 &&
          ParseErrorBody(response->body).code.size() > 0) {
        response->status = 500;  // S3 failed after sending the 200 status line
      }
      return response;
    }
  }

  static bool IsTransient(const HttpResponse& response, const Call& call) {
    int status = response.status;
    if (status == 500 || status == 502 || status == 503 || status == 504 || status == 429) {
      return true;
    }
    bool may_carry_error = status >= 400 || (status == 200 && call.error_possible_in_200);
    if (!may_carry_error) return false;
    std::string code = ParseErrorBody(response.body).code;
    return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
           code == "ServiceUnavailable";
  }

  // Turns a non-success reply into an error whose code says what to do and whose message
  // says what happened, without secrets.
  Error ResponseError(const HttpResponse& response, std::string_view operation,
                      std::string_view key, int attempts) const {
    S3ErrorBody body = ParseErrorBody(response.body);
    int status = response.status;
    ErrorCode code = ErrorCode::kPermanent;
    if (status == 401 || status == 403) {
      code = ErrorCode::kUnauthorized;
    } else if (status == 404) {
      code = ErrorCode::kNotFound;
    } else if (status == 409 || status == 412) {
      code = ErrorCode::kConflict;
    } else if (status == 429 || status >= 500) {
      code = ErrorCode::kUnavailable;
    } else if (body.code == "RequestTimeout") {
      code = ErrorCode::kTimeout;
    } else if (body.code == "ExpiredToken" || body.code == "InvalidToken" ||
               body.code == "TokenRefreshRequired") {
      code = ErrorCode::kUnauthorized;
    } else if (status == 400) {
      code = ErrorCode::kInvalidArgument;
    }

    std::string message = "S3 " + std::string(operation) + " '" + std::string(key) + "' in " +
                          description_ + " failed: HTTP " + std::to_string(status);
    if (!body.code.empty()) message += " " + body.code;
    if (!body.message.empty()) message += ": " + body.message;
    if (body.code.empty() && status == 404) message += " (not found)";
    message += Hint(status, body.code);
    message += AttemptsNote(attempts);
    return Error(code, Scrub(message));
  }

  std::string Hint(int status, const std::string& code) const {
    if (code == "SignatureDoesNotMatch") {
      return " (check the secret key in the connection string or AWS_SECRET_ACCESS_KEY, "
             "and the region: " + connection_.region + ")";
    }
    if (code == "InvalidAccessKeyId") {
      return " (check the access key in the connection string or AWS_ACCESS_KEY_ID)";
    }
    if (code == "NoSuchBucket") return " (create bucket '" + connection_.bucket + "' first)";
    if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || status == 301) {
      return " (the bucket may be in another region: set ?region= in the connection string)";
    }
    if (code == "ExpiredToken") return " (the session token has expired: renew it)";
    if (code == "AccessDenied") return " (the credentials lack permission for this bucket)";
    if (status == 403 && code.empty()) return " (access denied; HEAD replies carry no detail)";
    return "";
  }

  static std::string AttemptsNote(int attempts) {
    return attempts > 1 ? " (gave up after " + std::to_string(attempts) + " attempts)" : "";
  }

  // Replaces the secret and the session token wherever a server echoed them.
  std::string Scrub(std::string text) const {
    for (const std::string& secret : {credentials_.secret_access_key, credentials_.session_token}) {
      if (secret.size() < 4) continue;
      for (std::size_t at = text.find(secret); at != std::string::npos;
           at = text.find(secret, at + 3)) {
        text.replace(at, secret.size(), "***");
      }
    }
    return RedactSecrets(text);
  }

  // One DeleteObjects request for at most 1000 keys; records each key's outcome.
  Status DeleteChunk(const std::vector<std::string>& keys, DeleteManyResult* result) {
    std::string key_prefix = KeyPrefix();
    std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                      "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                      "<Quiet>false</Quiet>";
    std::map<std::string, std::string> pending;  // full key -> caller's key
    for (const std::string& key : keys) {
      auto full_key = FullKey(key);
      if (!full_key) {
        result->failed.emplace_back(key, full_key.error());
        continue;
      }
      if (!net::IsXmlSafe(*full_key)) {
        result->failed.emplace_back(
            key, Error(ErrorCode::kInvalidArgument,
                       "key has control characters that XML cannot carry; use Delete"));
        continue;
      }
      xml += "<Object><Key>" + net::XmlEscape(*full_key) + "</Key></Object>";
      pending.emplace(*full_key, key);
    }
    xml += "</Delete>";
    if (pending.empty()) return Ok();

    Call call{"POST", ""};
    call.query = {{"delete", ""}};
    call.body = std::move(xml);
    call.headers.emplace_back("content-type", "application/xml");
    call.headers.emplace_back("content-md5", net::Base64Encode(net::Md5(call.body)));
    int attempts = 0;
    S3DB_ASSIGN_OR_RETURN(HttpResponse response, Execute(call, &attempts));
    if (response.status != 200) {
      std::string what = std::to_string(pending.size()) + " keys";
      return tl::unexpected(ResponseError(response, "DELETE-MANY", what, attempts));
    }
    auto root = net::ParseXml(response.body);
    if (!root || root->name != "DeleteResult") {
      return MakeError(ErrorCode::kUnavailable,
                       "DELETE-MANY in " + description_ + ": the reply is not a DeleteResult");
    }

    // The pending entry a reply names. Some S3-compatible servers (the s3rver test peer among
    // them) escape keys twice in a DeleteResult; a second decoding is tried only when the key
    // as decoded once matches nothing.
    auto find_pending = [&pending](const std::string& reply_key) {
      auto it = pending.find(reply_key);
      return it != pending.end() ? it : pending.find(net::XmlUnescape(reply_key));
    };
    for (const XmlElement* deleted : root->Children("Deleted")) {
      auto it = find_pending(deleted->ChildText("Key"));
      if (it == pending.end()) continue;
      result->deleted.push_back(it->second);
      pending.erase(it);
    }
    for (const XmlElement* failed : root->Children("Error")) {
      auto it = find_pending(failed->ChildText("Key"));
      if (it == pending.end()) continue;
      std::string code = failed->ChildText("Code");
      ErrorCode error_code = code == "AccessDenied" ? ErrorCode::kUnauthorized
                             : (code == "InternalError" || code == "SlowDown")
                                 ? ErrorCode::kUnavailable
                                 : ErrorCode::kPermanent;
      result->failed.emplace_back(
          it->second, Error(error_code, Scrub("S3 DELETE '" + it->second + "' in " +
                                              description_ + " failed: " + code + ": " +
                                              failed->ChildText("Message"))));
      pending.erase(it);
    }
    for (const auto& [full_key, key] : pending) {
      result->failed.emplace_back(
          key, Error(ErrorCode::kUnavailable, "S3 DELETE '" + key + "' in " + description_ +
                                                  ": the DeleteResult does not mention the key"));
    }
    return Ok();
  }

  const ConnectionString connection_;
  const ObjectStoreOptions options_;
  const std::unique_ptr<net::HttpClient> http_;  // thread-safe
  net::AwsCredentials credentials_;
  std::string ca_file_;
  std::string scheme_;       // "http" or "https"
  std::string host_;         // the Host header: "bucket.s3.region.amazonaws.com", "h:port"
  std::string bucket_path_;  // "/bucket" in path style, "" in virtual-host style
  std::string description_;  // Describe(), without credentials
  std::atomic<bool> etags_are_md5s_{true};  // false once a stable mismatch was seen (Get)
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> NewS3Store(const ConnectionString& connection,
                                                const ObjectStoreOptions& options) {
  using Scheme = ConnectionString::Scheme;
  if (connection.scheme != Scheme::kS3 && connection.scheme != Scheme::kHttp &&
      connection.scheme != Scheme::kHttps) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "NewS3Store needs an s3://, http:// or https:// connection string");
  }
  if (connection.bucket.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "S3 connection string has no bucket: " + connection.Redacted());
  }
  if (connection.scheme != Scheme::kS3 && connection.host.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "S3 connection string has no host: " + connection.Redacted());
  }
  if (connection.access_key.empty() != connection.secret_key.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "S3 credentials need both an access key and a secret key");
  }
  if (options.max_retries < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "max_retries must not be negative");
  }
  return std::unique_ptr<ObjectStore>(std::make_unique<S3Store>(connection, options));
}

}  // namespace s3db
