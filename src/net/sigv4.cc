#include "net/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

namespace s3db::net {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims both ends and collapses every run of spaces/tabs inside into a single space.
std::string TrimAndCollapse(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

bool HasHeader(const HeaderList& headers, std::string_view lower_name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& header) { return ToLower(header.first) == lower_name; });
}

}  // namespace

std::string AmzDate(std::chrono::system_clock::time_point time) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y%m%dT%H%M%SZ", &utc);
  return buffer;
}

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

std::string SigV4EncodePath(std::string_view decoded_path) {
  if (decoded_path.empty()) return "/";
  std::string encoded = UriEncode(decoded_path, /*keep_slash=*/true);
  if (encoded.front() != '/') encoded.insert(encoded.begin(), '/');
  return encoded;
}

std::string CanonicalQueryString(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(UriEncode(name, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string CanonicalHeaders(const HeaderList& headers, std::string* signed_headers) {
  std::map<std::string, std::string> merged;  // sorted by lower-case name
  for (const auto& [name, value] : headers) {
    std::string lower = ToLower(TrimAndCollapse(name));
    std::string clean = TrimAndCollapse(value);
    auto [it, inserted] = merged.emplace(lower, clean);
    if (!inserted) it->second += "," + clean;
  }
  std::string out;
  std::string names;
  for (const auto& [name, value] : merged) {
    out += name + ":" + value + "\n";
    if (!names.empty()) names.push_back(';');
    names += name;
  }
  if (signed_headers != nullptr) *signed_headers = std::move(names);
  return out;
}

std::string CanonicalRequest(const SigV4Request& request, std::string_view service) {
  std::string canonical_uri = SigV4EncodePath(request.path);
  // Every service but S3 signs the already-encoded path encoded once more.
  if (service != "s3") canonical_uri = UriEncode(canonical_uri, /*keep_slash=*/true);

  std::string signed_headers;
  std::string canonical_headers = CanonicalHeaders(request.headers, &signed_headers);

  std::string out;
  out += request.method + "\n";
  out += canonical_uri + "\n";
  out += CanonicalQueryString(request.query) + "\n";
  out += canonical_headers + "\n";
  out += signed_headers + "\n";
  out += request.payload_hash;
  return out;
}

std::string StringToSign(std::string_view amz_date, const SigV4Scope& scope,
                         std::string_view canonical_request) {
  std::string date(amz_date.substr(0, 8));
  std::string out(kAlgorithm);
  out += "\n";
  out += amz_date;
  out += "\n" + date + "/" + scope.region + "/" + scope.service + "/aws4_request\n";
  out += Sha256Hex(canonical_request);
  return out;
}

std::string DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                             std::string_view region, std::string_view service) {
  std::string secret = "AWS4";
  secret += secret_access_key;
  std::string date_key = HmacSha256(secret, date);
  std::fill(secret.begin(), secret.end(), '\0');
  std::string region_key = HmacSha256(date_key, region);
  std::string service_key = HmacSha256(region_key, service);
  return HmacSha256(service_key, "aws4_request");
}

SigV4Signature SigV4Sign(const SigV4Request& request, const AwsCredentials& credentials,
                         const SigV4Scope& scope, std::string_view amz_date) {
  SigV4Signature result;
  result.canonical_request = CanonicalRequest(request, scope.service);
  CanonicalHeaders(request.headers, &result.signed_headers);
  result.string_to_sign = StringToSign(amz_date, scope, result.canonical_request);

  std::string date(amz_date.substr(0, 8));
  std::string key =
      DeriveSigningKey(credentials.secret_access_key, date, scope.region, scope.service);
  result.signature = HexEncode(HmacSha256(key, result.string_to_sign));

  result.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id +
                         "/" + date + "/" + scope.region + "/" + scope.service +
                         "/aws4_request, SignedHeaders=" + result.signed_headers +
                         ", Signature=" + result.signature;
  return result;
}

HeaderList SigV4SignedHeaders(const SigV4Request& request, const AwsCredentials& credentials,
                              const SigV4Scope& scope, std::string_view amz_date,
                              SigV4Signature* details) {
  HeaderList added;
  if (!HasHeader(request.headers, "x-amz-date")) {
    added.emplace_back("x-amz-date", std::string(amz_date));
  }
  if (scope.service == "s3" && !HasHeader(request.headers, "x-amz-content-sha256")) {
    added.emplace_back("x-amz-content-sha256", request.payload_hash);
  }
  if (!credentials.session_token.empty() &&
      !HasHeader(request.headers, "x-amz-security-token")) {
    added.emplace_back("x-amz-security-token", credentials.session_token);
  }

  SigV4Request complete = request;
  complete.headers.insert(complete.headers.end(), added.begin(), added.end());
  SigV4Signature signature = SigV4Sign(complete, credentials, scope, amz_date);

  added.emplace_back("authorization", signature.authorization);
  if (details != nullptr) *details = std::move(signature);
  return added;
}

std::string Sha256(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<char*>(digest), sizeof(digest));
}

std::string Sha256Hex(std::string_view data) { return HexEncode(Sha256(data)); }

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return std::string(reinterpret_cast<char*>(digest), length);
}

std::string Md5(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), length);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0F]);
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

bool Base64Decode(std::string_view text, std::string* bytes) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return false;
  std::string padded(text);
  padded.append((4 - padded.size() % 4) % 4, '=');
  std::string out(padded.size() / 4 * 3, '\0');
  int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(padded.data()),
                                static_cast<int>(padded.size()));
  if (written < 0) return false;
  // EVP_DecodeBlock counts the bytes that padding stands for; drop them.
  out.resize(static_cast<std::size_t>(written) - (padded.size() - text.size()));
  *bytes = std::move(out);
  return true;
}

}  // namespace s3db::net
