// Google service-account authentication for the BigQuery driver: the OAuth 2.0 JWT bearer
// flow (RFC 7523) as Google's token endpoint implements it. A JWT signed with the account's
// RSA key (RS256) is exchanged at the key's token_uri for an access token, which is cached
// and replaced about five minutes before it expires.
//
// Secrets: the private key and access tokens never appear in an error message or a log line.
// Messages name the key by its origin and client_email only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "net/http_client.h"
#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db::replicator::bigquery {

inline constexpr std::string_view kBigqueryScope = "https://www.googleapis.com/auth/bigquery";
inline constexpr std::string_view kJwtBearerGrantType =
    "urn:ietf:params:oauth:grant-type:jwt-bearer";
inline constexpr std::string_view kDefaultTokenUri = "https://oauth2.googleapis.com/token";

// A service-account key file ({"type": "service_account", ...}).
struct ServiceAccountKey {
  std::string client_email;
  std::string private_key_id;   // sent as the JWT "kid"
  std::string private_key_pem;  // secret: never logged, never in a message
  std::string token_uri;        // empty: kDefaultTokenUri
  std::string project_id;
  std::string origin;  // for messages: "credentials", "credentials file '/k.json'", …
};

// Reads a key object. Errors (kInvalidArgument) name `origin` and the missing or wrong field,
// never a field's value.
Result<ServiceAccountKey> ParseServiceAccountKey(const JsonObject& key, const std::string& origin);

// The key from the replicator's "credentials" option: an object (the key itself), a string
// holding the key's JSON text, or a string naming a key file. Absent (nullptr) or an empty
// object: the file named by GOOGLE_APPLICATION_CREDENTIALS.
Result<ServiceAccountKey> LoadServiceAccountKey(const Json* credentials);

// RFC 4648 base64url without padding.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

// An RSA private key for RS256 signatures. Thread-safe.
class RsaSigner {
 public:
  // kInvalidArgument when the PEM text is not an RSA private key (the message quotes nothing
  // of it).
  static Result<std::unique_ptr<RsaSigner>> FromPem(std::string_view pem);
  ~RsaSigner();
  RsaSigner(const RsaSigner&) = delete;
  RsaSigner& operator=(const RsaSigner&) = delete;

  // RSASSA-PKCS1-v1_5 with SHA-256 over `data`.
  Result<std::string> Sign(std::string_view data) const;

 private:
  struct Key;
  explicit RsaSigner(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
};

// The signed assertion "header.claims.signature" with iss = client_email, scope, aud =
// `audience`, iat = now and exp = now + lifetime (Google accepts at most one hour).
Result<std::string> MakeJwtAssertion(const RsaSigner& signer, const ServiceAccountKey& key,
                                     std::string_view scope, std::string_view audience,
                                     std::int64_t now_seconds,
                                     std::int64_t lifetime_seconds = 3600);

// Unix time in seconds; replaceable in tests.
using SecondsClock = std::function<std::int64_t()>;
std::int64_t SystemSeconds();

// Fetches and caches access tokens. Thread-safe; the lock is never held during a request
// (two threads may both fetch when the cache is empty; either token is fine).
class TokenSource {
 public:
  // `token_uri` empty: the key's token_uri, else kDefaultTokenUri. kInvalidArgument when the
  // private key does not load.
  static Result<std::unique_ptr<TokenSource>> Create(ServiceAccountKey key, net::HttpClient& http,
                                                     std::string token_uri,
                                                     SecondsClock clock = {});

  // A token valid for at least five more minutes (half its lifetime for tokens shorter than
  // ten minutes); fetches one when needed. Errors: kUnauthorized when the token endpoint
  // refuses the key, kUnavailable/kTimeout when it cannot be reached or fails (5xx).
  Result<std::string> Token(std::chrono::milliseconds timeout);

  // Drops `token` from the cache (the API answered 401 with it); a newer token is kept.
  void Invalidate(const std::string& token);

  std::uint64_t fetches() const;
  const std::string& token_uri() const { return token_uri_; }
  const ServiceAccountKey& key() const { return key_; }

 private:
  TokenSource(ServiceAccountKey key, std::unique_ptr<RsaSigner> signer, net::HttpClient& http,
              std::string token_uri, SecondsClock clock);
  Result<std::pair<std::string, std::int64_t>> Fetch(std::chrono::milliseconds timeout);

  ServiceAccountKey key_;
  std::unique_ptr<RsaSigner> signer_;
  net::HttpClient& http_;
  std::string token_uri_;
  SecondsClock clock_;

  mutable std::mutex mutex_;  // guards token_, refresh_at_, fetches_
  std::string token_;
  std::int64_t refresh_at_ = 0;  // Unix seconds after which token_ is not handed out
  std::uint64_t fetches_ = 0;
};

}  // namespace s3db::replicator::bigquery
