// Fuzzes ConnectionString::Parse, Redacted and RedactSecrets: no crash, and a secret typed
// in the text never comes back in an error message or in the redacted form.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "s3db/storage.h"

namespace {

// The raw secret between "://KEY:" and the last '@' of the authority, if the text has one.
std::string TypedSecret(std::string_view text) {
  std::size_t scheme = text.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view rest = text.substr(scheme + 3);
  std::size_t at = rest.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string_view user_info = rest.substr(0, at);
  std::size_t colon = user_info.find(':');
  if (colon == std::string_view::npos) return "";
  std::string_view secret = user_info.substr(colon + 1);
  for (char c : secret) {
    // Only simple secrets: the redaction scan stops at white space and quotes, and a secret
    // holding '/', '@' or ':' is not one the parser reads as such.
    bool simple = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!simple) return "";
  }
  return std::string(secret);
}

// True when `needle` occurs in `text` more than once (then it is also elsewhere than in the
// secret, e.g. as the bucket name, and finding it proves nothing).
bool OccursMoreThanOnce(std::string_view text, std::string_view needle) {
  std::size_t first = text.find(needle);
  return first != std::string_view::npos && text.find(needle, first + 1) != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  std::string secret = TypedSecret(text);
  bool check_secret = secret.size() >= 8 && !OccursMoreThanOnce(text, secret) &&
                      text.find(secret) > text.find("://");

  // RedactSecrets reads free text: the user info ends at white space, a quote or '>'.
  std::size_t scheme = text.find("://");
  bool free_text_form = true;
  for (std::size_t i = scheme + 3; check_secret && i < text.rfind('@'); ++i) {
    char c = text[i];
    if (std::isspace(static_cast<unsigned char>(c)) || c == '\'' || c == '"' || c == '>') {
      free_text_form = false;
    }
  }
  std::string redacted_text = s3db::RedactSecrets(text);
  if (check_secret && free_text_form) {
    FUZZ_CHECK(redacted_text.find(secret) == std::string::npos, redacted_text);
  }

  auto parsed = s3db::ConnectionString::Parse(text);
  if (!parsed) {
    FUZZ_CHECK(parsed.error().code == s3db::ErrorCode::kInvalidArgument, parsed.error().message);
    FUZZ_CHECK(!parsed.error().message.empty(), "empty error message");
    if (check_secret) {
      FUZZ_CHECK(parsed.error().message.find(secret) == std::string::npos,
                 parsed.error().message);
    }
    return 0;
  }
  // Redacted() does not depend on the secret or the session token at all.
  std::string redacted = parsed->Redacted();
  s3db::ConnectionString other = *parsed;
  other.secret_key = other.secret_key == "x" ? "y" : "x";
  other.session_token = other.session_token == "x" ? "y" : "x";
  if (auto token = other.params.find("sessionToken"); token != other.params.end()) {
    token->second = token->second == "x" ? "y" : "x";
  }
  FUZZ_CHECK(other.Redacted() == redacted, "Redacted() depends on the secret: " + redacted);
  // Parsing is deterministic.
  auto again = s3db::ConnectionString::Parse(text);
  FUZZ_CHECK(again.has_value() && again->Redacted() == redacted, "second parse differs");
  return 0;
}
