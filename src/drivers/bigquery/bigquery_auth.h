// Google authentication for the BigQuery driver. Service accounts use the OAuth 2.0 JWT
// bearer flow (RFC 7523) as Google's token endpoint implements it: a JWT signed with the
// account's RSA key (RS256) is exchanged at the key's token_uri for an access token. User
// credentials (Application Default Credentials from `gcloud auth application-default login`)
// use the refresh-token grant (RFC 6749 section 6). Tokens are cached and replaced about five
// minutes before they expire.
//
// Secrets: the private key, client_secret, refresh_token and access tokens never appear in an
// error message or a log line. Messages name the credentials by origin and client_email or
// client_id only.
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
inline constexpr std::string_view kRefreshTokenGrantType = "refresh_token";
inline constexpr std::string_view kDefaultTokenUri = "https://oauth2.googleapis.com/token";

// Where a token comes from: a service-account key ({"type": "service_account"}: the JWT bearer
// grant, RS256-signed) or user credentials ({"type": "authorized_user"}, as written by
// `gcloud auth application-default login`: the refresh-token grant).
enum class CredentialType { kServiceAccount, kAuthorizedUser };

struct Credentials {
  CredentialType type = CredentialType::kServiceAccount;
  // service_account
  std::string client_email;
  std::string private_key_id;   // sent as the JWT "kid"
  std::string private_key_pem;  // secret: never logged, never in a message
  // authorized_user
  std::string client_id;
  std::string client_secret;  // secret
  std::string refresh_token;  // secret
  std::string quota_project_id;
  // both
  std::string token_uri;   // empty: kDefaultTokenUri
  std::string project_id;  // service accounts only; user credentials carry no project
  std::string origin;      // for messages: "credentials", "credentials file '/k.json'", …

  // Names the principal in messages without a secret: "service account 'a@p.iam…'" or
  // "user credentials (client_id 764086051850-…)".
  std::string Principal() const;
};

// Reads a credentials object of either type. Errors (kInvalidArgument) name `origin` and the
// missing or wrong field, never a field's value.
Result<Credentials> ParseCredentials(const JsonObject& object, const std::string& origin);

// The credentials of the replicator's "credentials" option, else Application Default
// Credentials, first found wins:
//   1. "credentials": an object (the key itself), a string holding its JSON text, or a string
//      naming a file holding it;
//   2. the file named by GOOGLE_APPLICATION_CREDENTIALS;
//   3. gcloud's well-known file: $CLOUDSDK_CONFIG/application_default_credentials.json when
//      CLOUDSDK_CONFIG is set, else $HOME/.config/gcloud/application_default_credentials.json.
// Absent (nullptr), null, "" and {} mean "not given". A source that is given but unreadable
// or invalid is an error (the next source is not tried).
Result<Credentials> LoadCredentials(const Json* credentials);

// The path of gcloud's well-known credentials file (it may not exist); empty when neither
// CLOUDSDK_CONFIG nor HOME is set.
std::string WellKnownCredentialsPath();

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
Result<std::string> MakeJwtAssertion(const RsaSigner& signer, const Credentials& key,
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
  // `token_uri` empty: the credentials' token_uri, else kDefaultTokenUri. kInvalidArgument when
  // a service account's private key does not load.
  static Result<std::unique_ptr<TokenSource>> Create(Credentials key, net::HttpClient& http,
                                                     std::string token_uri,
                                                     SecondsClock clock = {});

  // A token valid for at least five more minutes (half its lifetime for tokens shorter than
  // ten minutes); fetches one when needed (JWT bearer grant for a service account, refresh
  // token grant for user credentials). Errors: kUnauthorized when the token endpoint refuses
  // the credentials, kUnavailable/kTimeout when it cannot be reached or fails (5xx).
  Result<std::string> Token(std::chrono::milliseconds timeout);

  // Drops `token` from the cache (the API answered 401 with it); a newer token is kept.
  void Invalidate(const std::string& token);

  std::uint64_t fetches() const;
  const std::string& token_uri() const { return token_uri_; }
  const Credentials& credentials() const { return key_; }

 private:
  TokenSource(Credentials key, std::unique_ptr<RsaSigner> signer, net::HttpClient& http,
              std::string token_uri, SecondsClock clock);
  Result<std::pair<std::string, std::int64_t>> Fetch(std::chrono::milliseconds timeout);

  Credentials key_;
  std::unique_ptr<RsaSigner> signer_;  // service accounts only
  net::HttpClient& http_;
  std::string token_uri_;
  SecondsClock clock_;

  mutable std::mutex mutex_;  // guards token_, refresh_at_, fetches_
  std::string token_;
  std::int64_t refresh_at_ = 0;  // Unix seconds after which token_ is not handed out
  std::uint64_t fetches_ = 0;
};

}  // namespace s3db::replicator::bigquery
