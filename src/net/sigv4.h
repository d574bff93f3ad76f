// AWS Signature Version 4 (header-based, single-chunk payload) and the hashing helpers it
// needs. Every function is pure: same input, same output, no clock, no I/O, thread-safe.
//
// Typical use (S3):
//   SigV4Request request{.method = "PUT", .path = "/bucket/my key.json", .query = {},
//                        .headers = {{"host", "127.0.0.1:4568"}, {"content-type", "text/plain"}},
//                        .payload_hash = Sha256Hex(body)};
//   auto headers = SigV4SignedHeaders(request, credentials, {"us-east-1", "s3"}, AmzDate(now));
//   // send request.headers + headers; path on the wire = SigV4EncodePath(request.path)
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace s3db::net {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;  // never logged, never put into a message
  std::string session_token;      // temporary credentials only; sent as x-amz-security-token
};

struct SigV4Scope {
  std::string region;   // "us-east-1"
  std::string service;  // "s3", "sqs", ...
};

struct SigV4Request {
  std::string method = "GET";
  // The decoded path ("/bucket/a b/ü.json"). The signer encodes each segment once (RFC 3986
  // unreserved characters kept, '/' kept); for services other than "s3" the canonical URI is
  // encoded a second time, as AWS specifies. Dot segments are not normalized.
  std::string path = "/";
  // Decoded query parameters, in any order. A parameter without a value ("?delete") is
  // written with an empty value and signed as "delete=".
  std::vector<std::pair<std::string, std::string>> query;
  // The headers to sign, names in any case. Must contain "host" exactly as sent.
  // x-amz-date, x-amz-content-sha256 and x-amz-security-token are added by SigV4Sign.
  HeaderList headers;
  // Lower-case hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_hash;
};

// Every intermediate value of one signature, so tests can compare each with AWS's examples.
struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string signature;       // lower-case hex
  std::string authorization;   // the Authorization header value
};

// "20130524T000000Z" (UTC).
std::string AmzDate(std::chrono::system_clock::time_point time);

// URI-encodes per AWS: A-Z a-z 0-9 - _ . ~ are kept, every other byte becomes %XX (upper-case
// hex, so a space is %20, never '+'). '/' is kept when `keep_slash` is true.
std::string UriEncode(std::string_view text, bool keep_slash);

// The path as it goes on the wire: each segment UriEncode'd once, '/' kept. Empty -> "/".
std::string SigV4EncodePath(std::string_view decoded_path);

// "a=1&a=2&b=" : names and values UriEncode'd, sorted by name then value, '=' always present.
// This string is also the right query string to send, so the wire and the signature agree.
std::string CanonicalQueryString(const std::vector<std::pair<std::string, std::string>>& query);

// "name:value\n" lines (lower-cased names, trimmed values with inner runs of spaces collapsed,
// repeated names joined with ','), sorted by name; `signed_headers` receives "a;b;c".
std::string CanonicalHeaders(const HeaderList& headers, std::string* signed_headers);

// The canonical request of `request` exactly as it is signed. The headers must already hold
// x-amz-date (and x-amz-content-sha256 for S3); use SigV4Sign for the full procedure.
std::string CanonicalRequest(const SigV4Request& request, std::string_view service);

// "AWS4-HMAC-SHA256\n<amz_date>\n<date>/<region>/<service>/aws4_request\n<hex sha256>".
std::string StringToSign(std::string_view amz_date, const SigV4Scope& scope,
                         std::string_view canonical_request);

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"),
// as raw bytes. `date` is "YYYYMMDD".
std::string DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                             std::string_view region, std::string_view service);

// Signs `request` as is: its headers must already contain every header to sign (including
// x-amz-date). Most callers want SigV4SignedHeaders instead.
SigV4Signature SigV4Sign(const SigV4Request& request, const AwsCredentials& credentials,
                         const SigV4Scope& scope, std::string_view amz_date);

// The full procedure: adds x-amz-date, x-amz-content-sha256 (service "s3" only, where it is
// required) and x-amz-security-token (when a session token is set) to the signed headers,
// signs, and returns the headers to add to the request, Authorization included.
// REQUIRES: request.headers contains "host"; payload_hash is set.
HeaderList SigV4SignedHeaders(const SigV4Request& request, const AwsCredentials& credentials,
                              const SigV4Scope& scope, std::string_view amz_date,
                              SigV4Signature* details = nullptr);

// Hashing helpers (OpenSSL).
std::string Sha256(std::string_view data);                        // raw 32 bytes
std::string Sha256Hex(std::string_view data);                     // lower-case hex
std::string HmacSha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string Md5(std::string_view data);                           // raw 16 bytes
std::string HexEncode(std::string_view bytes);                    // lower-case hex
std::string Base64Encode(std::string_view bytes);                 // standard, with padding
// Standard base64 (padding optional, no whitespace); false on any other character.
bool Base64Decode(std::string_view text, std::string* bytes);

}  // namespace s3db::net
