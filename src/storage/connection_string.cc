#include <algorithm>
#include <cctype>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/sigv4.h"
#include "s3db/storage.h"
#include "storage/url_secrets.h"

namespace s3db {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> PercentDecode(std::string_view text, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    int high = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
    int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
    if (high < 0 || low < 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "connection string: bad percent-encoding in the " + std::string(what) +
                           "; write '%' as %25");
    }
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::string Trim(std::string_view text, char c) {
  while (!text.empty() && text.front() == c) text.remove_prefix(1);
  while (!text.empty() && text.back() == c) text.remove_suffix(1);
  return std::string(text);
}

bool IsValidS3BucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
      return false;
    }
  }
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

// RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), and short.
bool LooksLikeScheme(std::string_view text) {
  if (text.empty() || text.size() > 16 || !std::isalpha(static_cast<unsigned char>(text[0]))) {
    return false;
  }
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

const char* kForms =
    "expected one of s3://KEY:SECRET@bucket/prefix, http(s)://KEY:SECRET@host:port/bucket/prefix, "
    "file:///absolute/path, file://./relative/path, memory://bucket/prefix";

// The whole text is one connection string, so (unlike RedactSecrets on free text, which stops
// at white space and quotes) everything between the first ':' after "://" and the last '@' is
// the secret, whatever it holds.
std::string RedactConnectionString(std::string_view text) {
  std::size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos || !LooksLikeScheme(text.substr(0, scheme_end))) {
    // A mangled start ("s3:/KEY:SECRET@bucket"): whatever lies between the first ':' and the
    // last '@' may be a secret.
    std::size_t colon = text.find(':');
    std::size_t at = text.rfind('@');
    if (colon == std::string_view::npos || at == std::string_view::npos || colon > at) {
      return RedactSecrets(text);
    }
    return std::string(text.substr(0, colon + 1)) + "***" + RedactSecrets(text.substr(at));
  }
  std::size_t authority = scheme_end + 3;
  std::size_t at = text.rfind('@');
  std::size_t colon = text.find(':', authority);
  if (at == std::string_view::npos || at < authority || colon == std::string_view::npos ||
      colon > at) {
    return RedactSecrets(text);
  }
  return std::string(text.substr(0, colon + 1)) + "***" + RedactSecrets(text.substr(at));
}

tl::unexpected<Error> Invalid(std::string_view text, const std::string& problem) {
  return MakeError(ErrorCode::kInvalidArgument,
                   "connection string '" + RedactConnectionString(text) + "': " + problem);
}

}  // namespace

namespace {

std::string RedactUserInfo(std::string_view text);
std::string RedactSecretQueryValues(std::string_view text);

// The registered secrets, longest first so that a secret holding another is masked whole. Kept
// bounded: minted access tokens are added every hour for as long as the process runs.
constexpr std::size_t kMaxRegisteredSecrets = 4096;

struct SecretRegistry {
  std::shared_mutex mutex;
  std::vector<std::string> by_length;  // longest first
  std::deque<std::string> by_age;      // oldest first, to drop when full
};

SecretRegistry& Registry() {
  static SecretRegistry* registry = new SecretRegistry();  // never destroyed: used at exit
  return *registry;
}

std::string MaskRegistered(std::string text) {
  SecretRegistry& registry = Registry();
  std::shared_lock lock(registry.mutex);
  for (const std::string& secret : registry.by_length) {
    for (std::size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + 3)) {
      text.replace(at, secret.size(), "***");
    }
  }
  return text;
}

}  // namespace

void RegisterSecret(std::string_view secret) {
  if (secret.size() < kMinRegisteredSecret) return;
  SecretRegistry& registry = Registry();
  std::unique_lock lock(registry.mutex);
  auto& list = registry.by_length;
  if (std::find(list.begin(), list.end(), secret) != list.end()) return;
  if (registry.by_age.size() >= kMaxRegisteredSecrets) {
    list.erase(std::find(list.begin(), list.end(), registry.by_age.front()));
    registry.by_age.pop_front();
  }
  registry.by_age.emplace_back(secret);
  auto at = std::find_if(list.begin(), list.end(),
                         [&](const std::string& other) { return other.size() < secret.size(); });
  list.emplace(at, secret);
}

std::string RedactSecrets(std::string_view text) {
  return MaskRegistered(RedactSecretQueryValues(RedactUserInfo(text)));
}

bool IsSecretQueryName(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view word :
       {"token", "key", "secret", "sig", "pass", "auth", "credential", "session", "cookie"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

std::vector<std::string> UrlSecrets(std::string_view url) {
  std::vector<std::string> secrets;
  auto add = [&](std::string_view value) {
    if (value.empty()) return;
    secrets.emplace_back(value);
    std::string decoded = PercentDecode(value, "").value_or(std::string(value));
    if (decoded != value) secrets.push_back(std::move(decoded));
  };
  std::size_t scheme_end = url.find("://");
  std::size_t authority = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::size_t authority_end = url.find_first_of("/?#", authority);
  if (authority_end == std::string_view::npos) authority_end = url.size();
  std::string_view user_info = url.substr(authority, authority_end - authority);
  if (std::size_t at = user_info.rfind('@'); at != std::string_view::npos) {
    user_info = user_info.substr(0, at);
    if (std::size_t colon = user_info.find(':'); colon != std::string_view::npos) {
      add(user_info.substr(colon + 1));
      // HTTP clients send it as basic auth: "Authorization: Basic base64(user:password)".
      std::string user = PercentDecode(user_info.substr(0, colon), "").value_or("");
      std::string password = PercentDecode(user_info.substr(colon + 1), "").value_or("");
      std::string basic = net::Base64Encode(user + ":" + password);
      secrets.push_back("Basic " + basic);
      secrets.push_back(std::move(basic));
    }
  }
  std::size_t question = url.find('?', authority_end);
  if (question == std::string_view::npos) return secrets;
  std::string_view query = url.substr(question + 1);
  query = query.substr(0, query.find('#'));
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name = PercentDecode(pair.substr(0, eq), "").value_or(std::string(pair));
    if (IsSecretQueryName(name)) add(pair.substr(eq + 1));
  }
  return secrets;
}

void RegisterUrlSecrets(std::string_view url) {
  for (const std::string& secret : UrlSecrets(url)) RegisterSecret(secret);
}

namespace {

// "?token=abc" and "&api_key=abc" anywhere in the text: the value becomes "***".
std::string RedactSecretQueryValues(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t mark = text.find_first_of("?&", pos);
    if (mark == std::string_view::npos) break;
    std::size_t name_end = mark + 1;
    while (name_end < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[name_end])) || text[name_end] == '_' ||
            text[name_end] == '-' || text[name_end] == '.' || text[name_end] == '%')) {
      ++name_end;
    }
    out.append(text.substr(pos, name_end - pos));
    pos = name_end;
    if (name_end == mark + 1 || name_end >= text.size() || text[name_end] != '=' ||
        !IsSecretQueryName(text.substr(mark + 1, name_end - mark - 1))) {
      continue;
    }
    std::size_t value_end = text.find_first_of("&#\"' \t\r\n<>)", name_end + 1);
    if (value_end == std::string_view::npos) value_end = text.size();
    out += '=';
    if (value_end > name_end + 1) out += "***";
    pos = value_end;
  }
  out.append(text.substr(pos));
  return out;
}

std::string RedactUserInfo(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t scheme_end = text.find("://", pos);
    if (scheme_end == std::string_view::npos) break;
    std::size_t authority = scheme_end + 3;
    // The user-info ends at the last '@' before whitespace, a quote or the end.
    std::size_t stop = authority;
    while (stop < text.size() && !std::isspace(static_cast<unsigned char>(text[stop])) &&
           text[stop] != '\'' && text[stop] != '"' && text[stop] != '>') {
      ++stop;
    }
    std::size_t at = text.rfind('@', stop == 0 ? 0 : stop - 1);
    out.append(text.substr(pos, authority - pos));
    if (at != std::string_view::npos && at >= authority && at < stop) {
      std::string_view user_info = text.substr(authority, at - authority);
      std::size_t colon = user_info.find(':');
      if (colon != std::string_view::npos) {
        out.append(user_info.substr(0, colon));
        out.append(":***");
      } else {
        out.append(user_info);
      }
      pos = at;
    } else {
      pos = authority;
    }
  }
  out.append(text.substr(pos));
  return out;
}

}  // namespace

Result<ConnectionString> ConnectionString::Parse(std::string_view text) {
  ConnectionString result;
  std::size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos)
    return Invalid(text, "no scheme; " + std::string(kForms));
  std::string_view typed_scheme = text.substr(0, scheme_end);
  std::string scheme(typed_scheme);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = text.substr(scheme_end + 3);

  // Query parameters.
  std::size_t question = rest.find('?');
  if (question != std::string_view::npos) {
    std::string_view query = rest.substr(question + 1);
    rest = rest.substr(0, question);
    while (!query.empty()) {
      std::size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      std::size_t eq = pair.find('=');
      S3DB_ASSIGN_OR_RETURN(std::string key, PercentDecode(pair.substr(0, eq), "query"));
      std::string value;
      if (eq != std::string_view::npos) {
        S3DB_ASSIGN_OR_RETURN(value, PercentDecode(pair.substr(eq + 1), "query"));
      }
      if (!key.empty()) result.params[key] = value;
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }

  if (scheme == "file") {
    result.scheme = Scheme::kFile;
    if (rest.empty()) return Invalid(text, "missing path; " + std::string(kForms));
    if (rest.front() == '/') {
      result.path = std::string(rest);
    } else if (rest.substr(0, 2) == "./" || rest == "." || rest.substr(0, 3) == "../") {
      result.path = std::string(rest);
    } else {
      return Invalid(text, "file paths are file:///absolute/path or file://./relative/path");
    }
    S3DB_ASSIGN_OR_RETURN(result.path, PercentDecode(result.path, "path"));
    return result;
  }

  // User info: up to the last '@' so that unencoded '/' in secrets still works.
  std::size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view user_info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    std::size_t colon = user_info.find(':');
    S3DB_ASSIGN_OR_RETURN(result.access_key, PercentDecode(user_info.substr(0, colon), "key"));
    if (colon != std::string_view::npos) {
      S3DB_ASSIGN_OR_RETURN(result.secret_key,
                            PercentDecode(user_info.substr(colon + 1), "secret"));
    }
  }

  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  S3DB_ASSIGN_OR_RETURN(path, PercentDecode(path, "path"));

  if (scheme == "memory") {
    result.scheme = Scheme::kMemory;
    result.bucket = std::string(authority);
    if (result.bucket.empty()) return Invalid(text, "missing bucket name: memory://bucket/prefix");
    result.prefix = Trim(path, '/');
    return result;
  }

  if (scheme == "s3") {
    result.scheme = Scheme::kS3;
    result.bucket = std::string(authority);
    result.prefix = Trim(path, '/');
    if (result.bucket.empty())
      return Invalid(text, "missing bucket name: s3://KEY:SECRET@bucket/prefix");
    if (!IsValidS3BucketName(result.bucket)) {
      return Invalid(text,
                     "'" + result.bucket +
                         "' is not a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')");
    }
  } else if (scheme == "http" || scheme == "https") {
    result.scheme = scheme == "http" ? Scheme::kHttp : Scheme::kHttps;
    std::size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
      result.host = std::string(authority.substr(0, colon));
      std::string port_text(authority.substr(colon + 1));
      char* end = nullptr;
      long port = std::strtol(port_text.c_str(), &end, 10);
      if (port_text.empty() || *end != '\0' || port <= 0 || port > 65535) {
        return Invalid(text, "port '" + port_text + "' is not a number between 1 and 65535");
      }
      result.port = static_cast<int>(port);
    } else {
      result.host = std::string(authority);
    }
    if (result.host.empty())
      return Invalid(text, "missing host: http(s)://KEY:SECRET@host:port/bucket/prefix");
    std::string trimmed = Trim(path, '/');
    std::size_t bucket_end = trimmed.find('/');
    result.bucket = trimmed.substr(0, bucket_end);
    result.prefix =
        bucket_end == std::string::npos ? "" : Trim(trimmed.substr(bucket_end + 1), '/');
    if (result.bucket.empty()) {
      return Invalid(text,
                     "missing bucket after the host: http(s)://KEY:SECRET@host:port/bucket/prefix");
    }
  } else {
    // The text before "://" is quoted only when it has the shape of a scheme: in a mangled
    // string it may hold a key and secret, and it is quoted as typed (folding its case could
    // turn it into a copy of the secret typed later).
    if (!LooksLikeScheme(typed_scheme)) {
      return Invalid(text, "the text before '://' is not a scheme name; " + std::string(kForms));
    }
    return Invalid(text, "unknown scheme '" + std::string(typed_scheme) + "'; " +
                             std::string(kForms));
  }

  if (auto it = result.params.find("region"); it != result.params.end() && !it->second.empty()) {
    result.region = it->second;
  } else if (const char* region = std::getenv("AWS_REGION"); region && *region) {
    result.region = region;
  }
  if (auto it = result.params.find("sessionToken"); it != result.params.end()) {
    result.session_token = it->second;
  }
  if (result.access_key.empty()) {
    const char* key = std::getenv("AWS_ACCESS_KEY_ID");
    const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
    if (key && secret) {
      result.access_key = key;
      result.secret_key = secret;
      if (const char* token = std::getenv("AWS_SESSION_TOKEN");
          token && result.session_token.empty()) {
        result.session_token = token;
      }
    }
  }
  if (result.access_key.empty() || result.secret_key.empty()) {
    return Invalid(text,
                   "no credentials: put KEY:SECRET@ in the connection string or set "
                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  return result;
}

std::string ConnectionString::Redacted() const {
  std::string query;
  for (const auto& [key, value] : params) {
    query += query.empty() ? "?" : "&";
    query += key + "=" + (key == "sessionToken" ? std::string("***") : value);
  }
  std::string user = access_key.empty() ? "" : access_key + ":***@";
  switch (scheme) {
    case Scheme::kFile:
      return "file://" + path + query;
    case Scheme::kMemory:
      return "memory://" + bucket + (prefix.empty() ? "" : "/" + prefix) + query;
    case Scheme::kS3:
      return "s3://" + user + bucket + (prefix.empty() ? "" : "/" + prefix) + query;
    case Scheme::kHttp:
    case Scheme::kHttps: {
      std::string out = scheme == Scheme::kHttp ? "http://" : "https://";
      out += user + host + (port ? ":" + std::to_string(port) : "") + "/" + bucket;
      if (!prefix.empty()) out += "/" + prefix;
      return out + query;
    }
  }
  return "";
}

}  // namespace s3db
