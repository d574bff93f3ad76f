// The secrets that URLs and connection strings carry, for the redaction registry
// (s3db::RegisterSecret, s3db::RedactSecrets in s3db/storage.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace s3db {

// Whether a query parameter of this name carries a secret: its name holds token, key, secret,
// sig, pass, auth, credential, session or cookie (any case). RedactSecrets masks the values of
// such parameters wherever "?name=" or "&name=" appears.
bool IsSecretQueryName(std::string_view name);

// The secrets a URL or connection string sends: the password of its user info (as written and
// percent-decoded), the "Basic <base64 user:password>" an HTTP client makes of it, and the
// values of its secret query parameters (IsSecretQueryName).
std::vector<std::string> UrlSecrets(std::string_view url);

// RegisterSecret for each of UrlSecrets(url), so that a receiver echoing them is masked too.
void RegisterUrlSecrets(std::string_view url);

}  // namespace s3db
