// Error values and Result<T>, used by every s3db API instead of exceptions.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace s3db {

// What the caller should do about an error.
enum class ErrorCode {
  kInvalidArgument,     // bad input: fix the call or the config; never retry
  kValidation,          // a record does not satisfy its resource's schema
  kNotFound,            // the record, resource or object does not exist
  kAlreadyExists,       // insert of an id that exists
  kConflict,            // a concurrent writer won (precondition failed): re-read and retry
  kUnavailable,         // transient: server down, 5xx, timeout, throttled; retry with backoff
  kTimeout,             // an attempt took longer than its limit; retry with backoff
  kUnauthorized,        // credentials rejected (401/403): fix credentials, retry later
  kPermanent,           // the target refused the change for good (dead letter)
  kIo,                  // local file system error (disk full, permission)
  kInternal,            // a bug in s3db
};

std::string_view ErrorCodeName(ErrorCode code);

// True for errors where trying the same thing again later can succeed.
bool IsRetryable(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  Error() = default;
  Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}

  // "not_found: record 'u1' not found in resource 'users'"
  std::string ToString() const;
};

template <typename T>
using Result = tl::expected<T, Error>;

// Result of an operation that produces no value.
using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}

inline Status Ok() { return {}; }

}  // namespace s3db

// Propagates the error of a Result/Status expression out of the enclosing function.
#define S3DB_RETURN_IF_ERROR(expr)                              \
  do {                                                          \
    auto s3db_status_ = (expr);                                 \
    if (!s3db_status_) return tl::unexpected(s3db_status_.error()); \
  } while (0)

#define S3DB_CONCAT_INNER_(a, b) a##b
#define S3DB_CONCAT_(a, b) S3DB_CONCAT_INNER_(a, b)
#define S3DB_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp) return tl::unexpected(tmp.error());     \
  lhs = std::move(*tmp)

// S3DB_ASSIGN_OR_RETURN(auto value, ComputeResult());
#define S3DB_ASSIGN_OR_RETURN(lhs, expr) \
  S3DB_ASSIGN_OR_RETURN_IMPL_(S3DB_CONCAT_(s3db_result_, __LINE__), lhs, expr)
