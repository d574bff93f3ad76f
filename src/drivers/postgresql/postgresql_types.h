// Identifiers, column types and value encoding for the PostgreSQL driver.
//
// Values never enter SQL text: they are encoded to PostgreSQL's text input form and bound as
// elements of array parameters. The functions here decide, before anything is sent, whether a
// JSON value fits a column, so one bad value fails only its own change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

#include "s3db/json.h"
#include "s3db/schema.h"

namespace s3db::replicator::postgresql {

// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1), so they are refused.
inline constexpr std::size_t kMaxIdentifierBytes = 63;

// Why `name` cannot be a table, schema or column name (empty, longer than 63 bytes, invalid
// UTF-8 or holding a NUL), or nullopt when it can.
std::optional<std::string> IdentifierProblem(std::string_view name);

// `name` in double quotes with embedded quotes doubled: safe for any valid identifier.
// REQUIRES: IdentifierProblem(name) is nullopt.
std::string QuoteIdentifier(std::string_view name);
std::string QualifiedName(std::string_view schema, std::string_view table);

// Builds a one-dimensional array in PostgreSQL's binary format, bound as one binary parameter
// ($1::text[] or $1::bigint[]): the bytes go as they are, with no quoting for the server to
// parse.
class BinaryArray {
 public:
  enum class Element : std::uint32_t { kBigint = 20, kText = 25 };  // pg_type OIDs

  explicit BinaryArray(Element element);
  void Add(std::string_view text);  // REQUIRES: Element::kText
  void Add(std::int64_t number);    // REQUIRES: Element::kBigint
  void AddNull();
  std::string Finish() &&;

 private:
  void PutInt32(std::uint32_t value);

  Element element_;
  std::string data_;
  std::uint32_t count_ = 0;
  bool has_null_ = false;
};

enum class ColumnKind {
  kText,     // text
  kVarchar,  // character varying / character, with or without a length
  kBigint,
  kInteger,
  kSmallint,
  kNumeric,
  kDouble,
  kReal,
  kBoolean,
  kTimestamptz,
  kTimestamp,  // without time zone: the instant is stored as its UTC wall clock
  kDate,
  kJsonb,
  kJson,
  kOther,  // anything else (uuid, arrays, domains…): text is sent, the server decides
};

struct ColumnType {
  ColumnKind kind = ColumnKind::kOther;
  std::int64_t max_length = -1;  // varchar(n) and char(n): n characters; -1 when unlimited
  std::string sql_name;          // as declared, e.g. "character varying(255)"
  std::string cast_name;         // the type without modifiers, used to cast bound text
};

// What the catalog says about a target table.
struct TableInfo {
  bool exists = false;     // a table (or partitioned table) of that name exists
  bool id_unique = false;  // a unique index on "id" alone exists, which ON CONFLICT (id) needs
  std::map<std::string, ColumnType, std::less<>> columns;
};

// A type for a column the driver creates.
ColumnType MakeColumnType(ColumnKind kind, std::int64_t max_length = -1);

// A type read from the catalog: `type_name` is pg_type.typname, `declared` and `base` are
// format_type(atttypid, atttypmod) and format_type(atttypid, NULL), `type_modifier` atttypmod.
ColumnType ColumnTypeFromCatalog(std::string_view type_name, std::string_view declared,
                                 std::string_view base, int type_modifier);

// The column type for a resource attribute, or nullopt when the attribute does not fix one
// (type any), in which case the values decide. `exact_numbers` maps "number" to numeric.
std::optional<ColumnType> ColumnTypeForAttribute(const Attribute& attribute, bool exact_numbers);

// The column kind a value suggests, or nullopt for null (which needs no column yet).
std::optional<ColumnKind> InferColumnKind(const Json& value);

// The narrowest kind that holds values of both kinds (bigint + double → double precision,
// anything + numeric → numeric, string + scalar → text, object/array + anything → jsonb).
ColumnKind WidenInferredKind(ColumnKind a, ColumnKind b);

// The SQL expression that turns the bound text `operand` into a value for a column of `type`.
// Lengths and scales are left to the assignment, which refuses instead of truncating.
std::string CastExpression(std::string_view operand, const ColumnType& type);

// What to do with NUL characters, which PostgreSQL text and jsonb cannot store.
enum class NulPolicy {
  kReject,  // the change fails for good with reason "invalid_value"
  kStrip,   // NUL characters are removed and counted
};

struct ValueCheck {
  std::optional<std::string> problem;  // set when the value can never be stored
  bool has_nul = false;                // only with NulPolicy::kStrip: the value needs StripNul
};

// Checks strings (and object keys) at any depth for invalid UTF-8 and NUL characters, and
// numbers for NaN and infinities. Cheap when the value is clean: nothing is copied.
ValueCheck CheckValue(const Json& value, NulPolicy policy);

// Removes NUL characters from every string and key in `value`; returns how many were removed.
std::size_t StripNul(Json& value);

// The text input form of `value` for a column of `type`, nullopt for SQL NULL, or an
// explanation of why the value does not fit the column (a schema mismatch).
// REQUIRES: CheckValue(value) found no problem and no NUL.
tl::expected<std::optional<std::string>, std::string> EncodeValue(const Json& value,
                                                                  const ColumnType& type);

// Strict ISO 8601: YYYY-MM-DD, optionally followed by [T| ]HH:MM[:SS[.fraction]] and an
// offset (Z or ±HH[:MM]). PostgreSQL accepts much more ("now", "epoch", "tomorrow"), which
// would silently change the value, so anything else is refused.
bool IsIsoTimestamp(std::string_view text);
bool IsIsoDate(std::string_view text);

}  // namespace s3db::replicator::postgresql
