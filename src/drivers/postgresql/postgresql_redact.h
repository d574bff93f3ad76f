// Keeping PostgreSQL passwords out of every message the driver produces.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace s3db::replicator::postgresql {

// Returns `conninfo` with every password replaced by "***". Handles both libpq forms:
//   URI:        postgresql://user:secret@host/db?password=x&sslpassword=y
//   key/value:  host=h password=secret   or   password = 'se\'cret'
// Everything else is kept so the result still tells an operator which server and user it is.
// When the text cannot be parsed (an unterminated quote), everything from the first password
// keyword on is replaced. Never fails.
std::string RedactConnectionString(std::string_view conninfo);

// The secret values (passwords) found in `conninfo`, in either form, for ScrubSecrets.
std::vector<std::string> ConnectionSecrets(std::string_view conninfo);

// ConnectionSecrets, each also registered with s3db::RegisterSecret so that log lines,
// lastError and dead-letter errors mask the password wherever a server echoes it.
std::vector<std::string> RegisteredConnectionSecrets(std::string_view conninfo);

// Replaces every occurrence of each secret of 3 or more bytes in `message` by "***".
// Used on messages that come from libpq or the server, which may echo parts of the input.
std::string ScrubSecrets(std::string message, const std::vector<std::string>& secrets);

}  // namespace s3db::replicator::postgresql
