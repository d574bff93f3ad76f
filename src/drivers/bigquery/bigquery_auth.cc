#include "drivers/bigquery/bigquery_auth.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "net/sigv4.h"
#include "s3db/storage.h"

namespace s3db::replicator::bigquery {
namespace {

constexpr std::string_view kCredentialsVariable = "GOOGLE_APPLICATION_CREDENTIALS";
constexpr std::string_view kWellKnownFile = "application_default_credentials.json";
constexpr std::size_t kMaxKeyFileBytes = 1 << 20;

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

Result<std::string> RequiredString(const JsonObject& key, std::string_view name,
                                   const std::string& origin, std::string_view what) {
  const Json* value = key.if_contains(name);
  if (value == nullptr || !value->is_string() || value->get_string().empty()) {
    return tl::unexpected(Invalid(origin + ": \"" + std::string(name) + "\" is missing or empty (" +
                                  std::string(what) + ")"));
  }
  return std::string(value->get_string());
}

std::string OptionalString(const JsonObject& key, std::string_view name) {
  const Json* value = key.if_contains(name);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
}

Result<Credentials> ParseText(std::string_view text, const std::string& origin) {
  auto parsed = ParseJsonObject(text);
  // The parser's message may quote the text, which holds secrets: say only where.
  if (!parsed)
    return tl::unexpected(Invalid(origin + ": not a JSON object (a service-account key file "
                                           "or gcloud's application_default_credentials.json)"));
  return ParseCredentials(*parsed, origin);
}

Result<Credentials> LoadFile(const std::string& path, const std::string& origin) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return tl::unexpected(Invalid(origin + ": the file cannot be read"));
  std::ostringstream content;
  content << file.rdbuf();
  std::string text = content.str();
  if (text.size() > kMaxKeyFileBytes) {
    return tl::unexpected(Invalid(origin + ": the file is larger than a credentials file can be"));
  }
  return ParseText(text, origin);
}

bool IsGiven(const Json* credentials) {
  if (credentials == nullptr || credentials->is_null()) return false;
  if (credentials->is_object()) return !credentials->get_object().empty();
  if (credentials->is_string()) return !credentials->get_string().empty();
  return true;
}

// Application Default Credentials without a metadata server: the environment variable, then
// gcloud's well-known file.
Result<Credentials> FromDefaults() {
  const char* path = std::getenv(std::string(kCredentialsVariable).c_str());
  if (path != nullptr && *path != '\0') {
    return LoadFile(path, std::string(kCredentialsVariable) + " file '" + path + "'");
  }
  std::string well_known = WellKnownCredentialsPath();
  std::error_code ec;
  if (!well_known.empty() && std::filesystem::exists(well_known, ec)) {
    return LoadFile(well_known, "gcloud credentials file '" + well_known + "'");
  }
  return tl::unexpected(Invalid(
      "credentials: none found; set credentials to a service-account key (an object, its JSON "
      "text or a key file path), set GOOGLE_APPLICATION_CREDENTIALS to a key file, or run "
      "`gcloud auth application-default login` (it writes " +
      (well_known.empty() ? std::string("application_default_credentials.json") : well_known) +
      ")"));
}

std::string FormEncode(std::string_view text) { return net::UriEncode(text, false); }

}  // namespace

std::string Credentials::Principal() const {
  if (type == CredentialType::kAuthorizedUser)
    return "user credentials (client_id " + client_id + ")";
  return "service account '" + client_email + "'";
}

std::string WellKnownCredentialsPath() {
  const char* config = std::getenv("CLOUDSDK_CONFIG");
  if (config != nullptr && *config != '\0') {
    return (std::filesystem::path(config) / kWellKnownFile).string();
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return "";
  return (std::filesystem::path(home) / ".config" / "gcloud" / kWellKnownFile).string();
}

Result<Credentials> ParseCredentials(const JsonObject& object, const std::string& origin) {
  std::string type = OptionalString(object, "type");
  Credentials out;
  out.origin = origin;
  out.token_uri = OptionalString(object, "token_uri");
  if (type == "service_account") {
    out.type = CredentialType::kServiceAccount;
    const char* what = "service-account key";
    S3DB_ASSIGN_OR_RETURN(out.client_email, RequiredString(object, "client_email", origin, what));
    S3DB_ASSIGN_OR_RETURN(out.private_key_pem, RequiredString(object, "private_key", origin, what));
    out.private_key_id = OptionalString(object, "private_key_id");
    out.project_id = OptionalString(object, "project_id");
  } else if (type == "authorized_user") {
    out.type = CredentialType::kAuthorizedUser;
    const char* what = "authorized_user credentials";
    S3DB_ASSIGN_OR_RETURN(out.client_id, RequiredString(object, "client_id", origin, what));
    S3DB_ASSIGN_OR_RETURN(out.client_secret, RequiredString(object, "client_secret", origin, what));
    S3DB_ASSIGN_OR_RETURN(out.refresh_token, RequiredString(object, "refresh_token", origin, what));
    out.quota_project_id = OptionalString(object, "quota_project_id");
  } else {
    return tl::unexpected(
        Invalid(origin +
                ": \"type\" must be \"service_account\" (a service-account key) or "
                "\"authorized_user\" (gcloud user credentials)" +
                (type.empty() ? std::string(", and it is missing") : ", not '" + type + "'")));
  }
  if (!out.token_uri.empty() && out.token_uri.rfind("https://", 0) != 0 &&
      out.token_uri.rfind("http://", 0) != 0) {
    return tl::unexpected(Invalid(origin + ": \"token_uri\" must be an http(s) URL"));
  }
  return out;
}

Result<Credentials> LoadCredentials(const Json* credentials) {
  if (!IsGiven(credentials)) return FromDefaults();
  if (credentials->is_object()) return ParseCredentials(credentials->get_object(), "credentials");
  if (credentials->is_string()) {
    std::string_view text = credentials->get_string();
    std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && text[first] == '{') {
      return ParseText(text, "credentials (JSON text)");
    }
    std::string path(text);
    return LoadFile(path, "credentials file '" + path + "'");
  }
  return tl::unexpected(
      Invalid("credentials: must be a service-account key or authorized_user object, its JSON "
              "text or a file path"));
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string text = net::Base64Encode(bytes);
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return text;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;
    }
  }
  while (standard.size() % 4 != 0) standard.push_back('=');
  std::string bytes;
  if (!net::Base64Decode(standard, &bytes)) return std::nullopt;
  return bytes;
}

struct RsaSigner::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

RsaSigner::RsaSigner(std::unique_ptr<Key> key) : key_(std::move(key)) {}
RsaSigner::~RsaSigner() = default;

Result<std::unique_ptr<RsaSigner>> RsaSigner::FromPem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return MakeError(ErrorCode::kInternal, "out of memory reading a key");
  auto key = std::make_unique<Key>();
  key->pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key->pkey == nullptr || EVP_PKEY_base_id(key->pkey) != EVP_PKEY_RSA) {
    return MakeError(ErrorCode::kInvalidArgument, "the private_key is not a PEM RSA private key");
  }
  return std::unique_ptr<RsaSigner>(new RsaSigner(std::move(key)));
}

Result<std::string> RsaSigner::Sign(std::string_view data) const {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  if (context == nullptr) return MakeError(ErrorCode::kInternal, "out of memory signing");
  std::string signature;
  std::size_t length = 0;
  bool ok = EVP_DigestSignInit(context, nullptr, EVP_sha256(), nullptr, key_->pkey) == 1 &&
            EVP_DigestSign(context, nullptr, &length,
                           reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  if (ok) {
    signature.resize(length);
    ok = EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length,
                        reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
    signature.resize(length);
  }
  EVP_MD_CTX_free(context);
  if (!ok) return MakeError(ErrorCode::kInternal, "RS256 signing failed");
  return signature;
}

Result<std::string> MakeJwtAssertion(const RsaSigner& signer, const Credentials& key,
                                     std::string_view scope, std::string_view audience,
                                     std::int64_t now_seconds, std::int64_t lifetime_seconds) {
  JsonObject header;
  header["alg"] = "RS256";
  header["typ"] = "JWT";
  if (!key.private_key_id.empty()) header["kid"] = key.private_key_id;
  JsonObject claims;
  claims["iss"] = key.client_email;
  claims["scope"] = scope;
  claims["aud"] = audience;
  claims["iat"] = now_seconds;
  claims["exp"] = now_seconds + lifetime_seconds;
  std::string signing_input =
      Base64UrlEncode(ToJson(header)) + "." + Base64UrlEncode(ToJson(claims));
  S3DB_ASSIGN_OR_RETURN(std::string signature, signer.Sign(signing_input));
  return signing_input + "." + Base64UrlEncode(signature);
}

std::int64_t SystemSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::unique_ptr<TokenSource>> TokenSource::Create(Credentials key, net::HttpClient& http,
                                                         std::string token_uri,
                                                         SecondsClock clock) {
  // A token endpoint or the API may echo any of these back in an error body.
  for (const std::string* secret : {&key.private_key_pem, &key.client_secret, &key.refresh_token}) {
    RegisterSecret(*secret);
    // A PEM can come back one base64 line at a time.
    if (secret == &key.private_key_pem) {
      std::istringstream lines(*secret);
      for (std::string line; std::getline(lines, line);) {
        if (line.size() >= 16 && line.find("-----") == std::string::npos) RegisterSecret(line);
      }
    }
  }
  std::unique_ptr<RsaSigner> signer;
  if (key.type == CredentialType::kServiceAccount) {
    auto loaded = RsaSigner::FromPem(key.private_key_pem);
    if (!loaded) {
      return MakeError(ErrorCode::kInvalidArgument,
                       key.origin + ": " + loaded.error().message + " (" + key.Principal() + ")");
    }
    signer = std::move(*loaded);
  }
  if (token_uri.empty()) token_uri = key.token_uri;
  if (token_uri.empty()) token_uri = std::string(kDefaultTokenUri);
  if (!clock) clock = SystemSeconds;
  return std::unique_ptr<TokenSource>(new TokenSource(std::move(key), std::move(signer), http,
                                                      std::move(token_uri), std::move(clock)));
}

TokenSource::TokenSource(Credentials key, std::unique_ptr<RsaSigner> signer, net::HttpClient& http,
                         std::string token_uri, SecondsClock clock)
    : key_(std::move(key)),
      signer_(std::move(signer)),
      http_(http),
      token_uri_(std::move(token_uri)),
      clock_(std::move(clock)) {}

Result<std::string> TokenSource::Token(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    if (!token_.empty() && clock_() < refresh_at_) return token_;
  }
  S3DB_ASSIGN_OR_RETURN(auto fetched, Fetch(timeout));
  RegisterSecret(fetched.first);  // before anyone sends it: a 403 body may quote it back
  std::lock_guard lock(mutex_);
  token_ = fetched.first;
  refresh_at_ = fetched.second;
  ++fetches_;
  return token_;
}

void TokenSource::Invalidate(const std::string& token) {
  std::lock_guard lock(mutex_);
  if (token_ == token) {
    token_.clear();
    refresh_at_ = 0;
  }
}

std::uint64_t TokenSource::fetches() const {
  std::lock_guard lock(mutex_);
  return fetches_;
}

Result<std::pair<std::string, std::int64_t>> TokenSource::Fetch(std::chrono::milliseconds timeout) {
  std::int64_t now = clock_();
  net::HttpRequest request;
  request.method = "POST";
  request.url = token_uri_;
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                     {"Accept", "application/json"}};
  if (key_.type == CredentialType::kAuthorizedUser) {
    // RFC 6749 section 6; the scopes are those granted at login (cloud-platform for gcloud's
    // application-default login), so none is sent.
    request.body = "grant_type=" + FormEncode(kRefreshTokenGrantType) +
                   "&client_id=" + FormEncode(key_.client_id) +
                   "&client_secret=" + FormEncode(key_.client_secret) +
                   "&refresh_token=" + FormEncode(key_.refresh_token);
  } else {
    S3DB_ASSIGN_OR_RETURN(std::string assertion,
                          MakeJwtAssertion(*signer_, key_, kBigqueryScope, token_uri_, now));
    request.body = "grant_type=" + FormEncode(kJwtBearerGrantType) + "&assertion=" + assertion;
  }
  request.timeout = timeout;
  std::string where = "token endpoint " + net::RedactUrl(token_uri_) + " for " + key_.Principal();
  auto response = http_.Send(request);
  if (!response)
    return tl::unexpected(Error(response.error().code, where + ": " + response.error().message));

  auto body = ParseJsonObject(response->body);
  std::string detail;
  if (body) {
    const Json* error = body->if_contains("error");
    const Json* description = body->if_contains("error_description");
    if (error != nullptr && error->is_string()) detail = std::string(error->get_string());
    if (description != nullptr && description->is_string()) {
      detail += (detail.empty() ? "" : ": ") + std::string(description->get_string());
    }
  }
  if (response->status != 200) {
    std::string message = where + " answered HTTP " + std::to_string(response->status) +
                          (detail.empty() ? "" : " (" + detail + ")");
    if (response->status == 429 || response->status >= 500) {
      return MakeError(ErrorCode::kUnavailable, message);
    }
    return MakeError(ErrorCode::kUnauthorized,
                     message + (key_.type == CredentialType::kAuthorizedUser
                                    ? "; the user credentials were refused (a revoked or expired "
                                      "refresh token, or a wrong client_id/client_secret): run "
                                      "`gcloud auth application-default login` again"
                                    : "; check the key, its client_email and that it is not "
                                      "revoked"));
  }
  const Json* token = body ? body->if_contains("access_token") : nullptr;
  if (token == nullptr || !token->is_string() || token->get_string().empty()) {
    return MakeError(ErrorCode::kUnavailable, where + ": the reply has no access_token");
  }
  std::int64_t lifetime = 3600;
  if (const Json* expires = body->if_contains("expires_in"); expires != nullptr) {
    if (expires->is_int64()) lifetime = expires->get_int64();
    if (expires->is_uint64()) lifetime = static_cast<std::int64_t>(expires->get_uint64());
    if (expires->is_string()) lifetime = std::atoll(std::string(expires->get_string()).c_str());
  }
  std::int64_t margin = lifetime >= 600 ? 300 : lifetime / 2;
  return std::make_pair(std::string(token->get_string()), now + lifetime - margin);
}

}  // namespace s3db::replicator::bigquery
