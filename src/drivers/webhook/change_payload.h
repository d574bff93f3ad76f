// What the network drivers (webhook, sqs) send for one change, and the small helpers both use
// to read their "config" object.
//
// The change payload is the spec's:
//   {"resource": "users", "action": "update", "timestamp": "2025-10-18T10:30:00.000Z",
//    "source": "s3db-webhook-replicator", "before": {...}, "data": {...}}
// "resource" is the destination name (after mapping), "timestamp" the time of the write in
// UTC with milliseconds, and "before" is present only on updates that carry a pre-image.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/replicator/driver.h"

namespace s3db::replicator::network {

// "2025-10-18T10:30:00.000Z" for milliseconds since the Unix epoch (UTC). Times before 1970
// and after 9999 are formatted too (the year is then padded or widened, never wrapped).
std::string IsoTimestampMs(std::int64_t unix_ms);

// The payload object of one change, with `source` as its "source" value.
JsonObject ChangePayload(const DeliveryItem& item, std::string_view source);

// The record key used for per-record order inside one Deliver call: destination and id.
std::string RecordKey(const DeliveryItem& item);

// Readers for one key of a driver's config object. A missing key (or JSON null) gives
// nullopt; a value of the wrong type or out of range gives kInvalidArgument naming
// "<path>.<key>", what was expected and how to fix it. `path` is e.g. "webhook config".
Result<std::optional<std::string>> ReadString(const JsonObject& config, std::string_view key,
                                              std::string_view path);
Result<std::optional<bool>> ReadBool(const JsonObject& config, std::string_view key,
                                     std::string_view path);
Result<std::optional<std::int64_t>> ReadInteger(const JsonObject& config, std::string_view key,
                                                std::string_view path, std::int64_t min,
                                                std::int64_t max);
Result<const JsonObject*> ReadObject(const JsonObject& config, std::string_view key,
                                     std::string_view path);  // nullptr when absent

// kInvalidArgument naming the first key of `config` that is not in `known`, with the list of
// known keys.
Status RefuseUnknownKeys(const JsonObject& config, std::initializer_list<std::string_view> known,
                         std::string_view path);

// Replaces every occurrence of each non-empty secret in `text` by "***", then applies
// s3db::RedactSecrets (connection-string user info and every registered secret).
std::string RedactValues(std::string text, const std::vector<std::string>& secrets);

// Checks at start-up that `file` (the value of option `key`) is a readable PEM file of
// certificates, so that a wrong caFile is refused once with its path instead of failing every
// delivery with curl's "error setting certificate file". kInvalidArgument naming path.key.
Status CheckCertificateFile(const std::string& file, std::string_view key, std::string_view path);

// True for a header whose value is a credential: Authorization, Proxy-Authorization, X-API-Key
// and any name containing token, key, secret, auth, signature, password or cookie.
bool IsSensitiveHeader(std::string_view name);

// The forms in which a header value may come back in a reply: the whole value and, for
// "Scheme credential" values ("Bearer abc", "Basic Ym9i..."), the credential alone.
void AddHeaderSecrets(std::string_view value, std::vector<std::string>& out);

// Registers every secret with s3db::RegisterSecret (so logs, lastError and dead letters mask
// it too) and returns them, empty ones dropped, for the driver's own masking.
std::vector<std::string> RegisterSecrets(std::vector<std::string> secrets);

// At most `limit` bytes of a reply body for an error message: control characters become
// spaces and a cut is marked with "...".
std::string BodySnippet(std::string_view body, std::size_t limit = 200);

}  // namespace s3db::replicator::network
