// Object stores: the one interface through which s3db reads and writes objects, and the
// connection strings that choose one.
//
// Forms:
//   s3://KEY:SECRET@bucket/prefix?region=eu-west-1        AWS S3 (virtual-host style)
//   http(s)://KEY:SECRET@host:port/bucket/prefix          any S3-compatible endpoint (path style)
//   file:///abs/path   file://./relative/path             local folder (embedded default)
//   memory://bucket/prefix                                process memory (tests)
// KEY and SECRET may be percent-encoded. Without them, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are used.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"

namespace s3db {

struct ConnectionString {
  enum class Scheme { kS3, kHttp, kHttps, kFile, kMemory };

  Scheme scheme = Scheme::kMemory;
  std::string access_key;     // decoded
  std::string secret_key;     // decoded; never printed
  std::string session_token;  // from AWS_SESSION_TOKEN or ?sessionToken=
  std::string host;           // http(s): host; s3: empty (AWS endpoint derived from region)
  int port = 0;               // 0 = scheme default
  std::string bucket;         // s3, http(s), memory
  std::string prefix;         // key prefix inside the bucket, no leading or trailing '/'
  std::string path;           // file: the folder (absolute, or relative to the cwd)
  std::string region = "us-east-1";
  std::map<std::string, std::string> params;  // every ?key=value, decoded

  // Parses and validates; errors name the part that is wrong and how to fix it.
  static Result<ConnectionString> Parse(std::string_view text);

  // The same connection string with the secret (and session token) replaced by "***".
  std::string Redacted() const;
};

// Replaces the secret in any connection-string-like text ("scheme://key:secret@...") by "***",
// and every value passed to RegisterSecret wherever it appears. Safe on arbitrary text: used on
// every message, log line, lastError and dead-letter error that may carry a secret.
std::string RedactSecrets(std::string_view text);

// Registers a secret value (a password, token, API key, a base64 "user:pass", a minted access
// token...) for RedactSecrets to mask from now on, process-wide and thread-safe. Drivers call it
// for every secret they hold and every form they send it in, because receivers echo them back.
// Values shorter than kMinRegisteredSecret characters are ignored (masking "ab" everywhere would
// mangle every message); the drivers mask those in their own replies.
inline constexpr std::size_t kMinRegisteredSecret = 8;
void RegisterSecret(std::string_view secret);

struct ObjectInfo {
  std::string key;       // relative to the store's prefix
  std::string etag;      // opaque; quotes stripped
  std::uint64_t size = 0;
  std::int64_t last_modified_ms = 0;
  std::map<std::string, std::string> metadata;  // user metadata, lower-case names (Head/Get only)
};

struct Object {
  std::string body;
  ObjectInfo info;
};

struct PutOptions {
  std::map<std::string, std::string> metadata;  // x-amz-meta-*; names are lower-cased
  std::string content_type = "application/json";
  bool if_none_match = false;  // fail with kConflict when the key already exists
  std::string if_match;        // non-empty: fail with kConflict unless the current etag matches
};

struct ListPage {
  std::vector<ObjectInfo> objects;  // metadata is empty in listings
  std::string next_token;           // empty: last page
};

struct DeleteManyResult {
  std::vector<std::string> deleted;
  std::vector<std::pair<std::string, Error>> failed;
};

// Every method is thread-safe. Keys are relative to the prefix of the connection string.
// Conditional puts that lose fail with ErrorCode::kConflict; missing keys give kNotFound.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  virtual Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                                 const PutOptions& options = {}) = 0;
  virtual Result<Object> Get(std::string_view key) = 0;
  virtual Result<ObjectInfo> Head(std::string_view key) = 0;
  // Deleting a missing key succeeds (as in S3).
  virtual Status Delete(std::string_view key) = 0;
  // Deletes in requests of at most 1000 keys; reports each key's outcome.
  virtual Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) = 0;
  // One page of keys starting with `prefix`, in lexicographic order.
  virtual Result<ListPage> List(std::string_view prefix, std::string_view continuation_token = {},
                                int max_keys = 1000) = 0;
  virtual Result<ObjectInfo> Copy(std::string_view source_key, std::string_view target_key) = 0;

  // A human-readable location without secrets, e.g. "file:///var/data" or "s3://bucket/p".
  virtual std::string Describe() const = 0;

  // Every key under `prefix`, following continuation tokens (stores may do it in one pass).
  virtual Result<std::vector<ObjectInfo>> ListAll(std::string_view prefix);
};

struct ObjectStoreOptions {
  std::chrono::milliseconds request_timeout{30000};
  int max_retries = 4;          // for 500/503/SlowDown/timeouts, with exponential backoff
  bool fsync = true;            // file store: fsync each object and its directory
};

// Opens the store named by the connection string.
Result<std::unique_ptr<ObjectStore>> OpenObjectStore(std::string_view connection_string,
                                                     const ObjectStoreOptions& options = {});
Result<std::unique_ptr<ObjectStore>> OpenObjectStore(const ConnectionString& connection,
                                                     const ObjectStoreOptions& options = {});

// Factories for the individual stores (also used by tests).
std::unique_ptr<ObjectStore> NewMemoryStore(std::string description = "memory://");
Result<std::unique_ptr<ObjectStore>> NewFileStore(std::string root_folder, bool fsync = true);
Result<std::unique_ptr<ObjectStore>> NewS3Store(const ConnectionString& connection,
                                                const ObjectStoreOptions& options);

}  // namespace s3db
