// Fuzzes SigV4 canonicalization and signing with arbitrary paths, query parameters and
// headers: no crash; UriEncode keeps only unreserved bytes and decodes back to its input;
// the canonical query string does not depend on the parameters' order; signing is
// deterministic and yields 64 lower-case hex digits.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "net/sigv4.h"

namespace {

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes UriEncode's output, checking its form on the way.
std::string CheckedDecode(std::string_view encoded, bool keep_slash) {
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '%') {
      FUZZ_CHECK(i + 2 < encoded.size() && Hex(encoded[i + 1]) >= 0 &&
                     Hex(encoded[i + 2]) >= 0,
                 std::string(encoded));
      out.push_back(static_cast<char>(Hex(encoded[i + 1]) * 16 + Hex(encoded[i + 2])));
      i += 2;
    } else {
      FUZZ_CHECK(IsUnreserved(c) || (keep_slash && c == '/'), std::string(encoded));
      out.push_back(c);
    }
  }
  return out;
}

bool IsLowerHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  using namespace s3db::net;

  SigV4Request request;
  static const char* const kMethods[] = {"GET", "PUT", "POST", "DELETE", "HEAD"};
  request.method = kMethods[data.ConsumeIntegralInRange<int>(0, 4)];
  request.path = data.ConsumeRandomLengthString(64);
  int parameters = data.ConsumeIntegralInRange<int>(0, 5);
  for (int i = 0; i < parameters; ++i) {
    std::string name = data.ConsumeRandomLengthString(16);
    request.query.emplace_back(name, data.ConsumeRandomLengthString(16));
  }
  request.headers.emplace_back("host", data.ConsumeRandomLengthString(24));
  int headers = data.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < headers; ++i) {
    std::string name = data.ConsumeRandomLengthString(12);
    request.headers.emplace_back(name, data.ConsumeRandomLengthString(24));
  }
  request.headers.emplace_back("x-amz-date", "20240501T120000Z");
  std::string body = data.ConsumeRandomLengthString(64);
  request.payload_hash = data.ConsumeBool() ? Sha256Hex(body) : "UNSIGNED-PAYLOAD";
  AwsCredentials credentials{data.ConsumeRandomLengthString(20),
                             data.ConsumeRandomLengthString(40),
                             data.ConsumeBool() ? data.ConsumeRandomLengthString(20) : ""};
  SigV4Scope scope{data.ConsumeRandomLengthString(12), data.ConsumeBool() ? "s3" : "sqs"};
  std::string rest = data.ConsumeRemainingBytesAsString();

  // UriEncode: only unreserved bytes and %XX, and it decodes back exactly.
  for (bool keep_slash : {false, true}) {
    std::string encoded = UriEncode(rest, keep_slash);
    FUZZ_CHECK(CheckedDecode(encoded, keep_slash) == rest, encoded);
  }
  std::string wire_path = SigV4EncodePath(request.path);
  FUZZ_CHECK(!wire_path.empty(), "empty wire path");
  (void)CheckedDecode(wire_path, true);

  // The canonical query string ignores the order of the parameters.
  std::string query = CanonicalQueryString(request.query);
  auto reversed = request.query;
  std::reverse(reversed.begin(), reversed.end());
  FUZZ_CHECK(CanonicalQueryString(reversed) == query, query);

  std::string signed_headers;
  std::string canonical_headers = CanonicalHeaders(request.headers, &signed_headers);
  FUZZ_CHECK(signed_headers.find("host") != std::string::npos, signed_headers);
  (void)canonical_headers;

  SigV4Signature first = SigV4Sign(request, credentials, scope, "20240501T120000Z");
  SigV4Signature second = SigV4Sign(request, credentials, scope, "20240501T120000Z");
  FUZZ_CHECK(first.signature == second.signature, "signing is not deterministic");
  FUZZ_CHECK(first.canonical_request == second.canonical_request, "canonical request differs");
  FUZZ_CHECK(first.signature.size() == 64 && IsLowerHex(first.signature), first.signature);
  // The Authorization header is made of public parts and the signature only, so no secret
  // material reaches it but through the HMAC. (A search for the secret's text would also hit
  // secrets like "=====" that happen to span "Credential=" and the key.)
  FUZZ_CHECK(first.authorization == "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id +
                                        "/20240501/" + scope.region + "/" + scope.service +
                                        "/aws4_request, SignedHeaders=" + signed_headers +
                                        ", Signature=" + first.signature,
             first.authorization);

  SigV4Request unsigned_request = request;
  unsigned_request.headers.pop_back();  // x-amz-date: SigV4SignedHeaders adds it
  HeaderList added = SigV4SignedHeaders(unsigned_request, credentials, scope, "20240501T120000Z");
  bool has_authorization = false;
  for (const auto& [name, value] : added) has_authorization |= name == "Authorization" ||
                                                                 name == "authorization";
  FUZZ_CHECK(has_authorization, "no Authorization header");

  std::string decoded;
  (void)Base64Decode(rest, &decoded);
  std::string round;
  FUZZ_CHECK(Base64Decode(Base64Encode(rest), &round) && round == rest, "base64 round trip");
  return 0;
}
