// BigQuery identifiers, table schemas and the encoding of record values for BigQuery's JSON
// interfaces (tabledata.insertAll rows, newline-delimited JSON load files, query parameters).
//
// The naming rules and type mappings are documented, with their sources, in
// docs/drivers/bigquery.md. Everything here is pure (no I/O) and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/schema.h"

namespace s3db::replicator::bigquery {

// Project ids: 6 to 30 lowercase letters, digits or hyphens, starting with a letter and not
// ending with a hyphen; optionally prefixed by a domain ("example.com:my-project").
bool IsValidProjectId(std::string_view id);
// Dataset ids: 1 to 1,024 letters (a-z, A-Z), digits or underscores.
bool IsValidDatasetId(std::string_view id);
// Table ids: valid UTF-8 of 1 to 1,024 bytes whose characters are all of the Unicode general
// categories L, M, N, Pc, Pd or Zs.
bool IsValidTableId(std::string_view id);
// Column names: a letter or underscore, then letters, digits or underscores; at most 300
// characters; none of the reserved prefixes (_TABLE_, _FILE_, _PARTITION, _ROW_TIMESTAMP,
// __ROOT__, _COLIDENTIFIER, in any case).
bool IsValidColumnName(std::string_view name);
// Job ids: 1 to 1,024 letters, digits, underscores or dashes.
bool IsValidJobId(std::string_view id);
// True for the code points allowed in table ids (generated table, bigquery_unicode.cc).
bool IsTableNameCodePoint(char32_t code_point);

enum class FieldType {
  kString,
  kInt64,
  kFloat64,
  kNumeric,
  kBool,
  kTimestamp,
  kJson,
  kRecord,
  kOther
};

// The GoogleSQL name: "STRING", "INT64", "FLOAT64", "NUMERIC", "BOOL", "TIMESTAMP", "JSON",
// "RECORD".
std::string_view FieldTypeName(FieldType type);
// Accepts GoogleSQL and legacy names (INTEGER, FLOAT, BOOLEAN, STRUCT); other types of existing
// tables (DATE, BYTES, …) are kOther and are written as they are.
FieldType ParseFieldType(std::string_view name);

// One column (or a sub-field of a RECORD column).
struct Field {
  std::string name;
  FieldType type = FieldType::kString;
  std::string type_name;      // as the table reports it, for kOther; empty otherwise
  bool repeated = false;      // mode REPEATED
  bool required = false;      // mode REQUIRED (only ever read from existing tables)
  std::vector<Field> fields;  // RECORD sub-fields
};

// The "fields" array of a TableSchema.
Json FieldsToJson(const std::vector<Field>& fields);
// Reads the "fields" array of a TableSchema. kInvalidArgument when it is malformed.
Result<std::vector<Field>> FieldsFromJson(const Json& fields);
const Field* FindField(const std::vector<Field>& fields, std::string_view name);

struct TypeOptions {
  bool exact_numbers = false;   // "number" attributes and inferred decimals become NUMERIC
  bool nested_as_json = false;  // objects and arrays become JSON columns (merge mode)
};

// The column for a resource attribute: string/email/url/uuid STRING, integer INT64, number
// FLOAT64 (NUMERIC with exact_numbers), boolean BOOL, datetime TIMESTAMP, json/any JSON,
// object with attributes RECORD (JSON without), array of scalars REPEATED, other arrays JSON.
Field FieldFromAttribute(const Attribute& attribute, const TypeOptions& options);
// The column for a value with no attribute: string STRING, integer INT64, other number FLOAT64
// (NUMERIC with exact_numbers), boolean BOOL, object and array JSON. Null: nullopt.
std::optional<Field> InferField(std::string_view name, const Json& value,
                                const TypeOptions& options);

// The columns a record needs: attributes where the record's field has one (sub-attributes
// completed from the value), inferred types for the others. Null values without an attribute
// need no column. Keys listed in `skip` are left out.
std::vector<Field> FieldsForRecord(const JsonObject& record,
                                   const std::vector<Attribute>* attributes,
                                   const TypeOptions& options,
                                   const std::vector<std::string_view>& skip = {});

// Adds to `existing` the fields of `wanted` it lacks, as NULLABLE (or REPEATED) columns, also
// inside RECORD columns. Fields present with another type are left alone (the service reports
// the rows that do not fit). Returns the dotted names added ("email", "address.zip").
std::vector<std::string> MergeFields(std::vector<Field>& existing,
                                     const std::vector<Field>& wanted);

// Dotted names of fields in `wanted` (recursively) that are not valid column names.
std::vector<std::string> InvalidColumnNames(const std::vector<Field>& wanted);

enum class Encoding {
  kStreaming,  // tabledata.insertAll: JSON columns as JSON text strings
  kLoad,       // newline-delimited JSON load files: JSON columns as JSON values
  kQuery,      // merge mode's JSON parameter: JSON columns as JSON values
};

// Encodes a record for a table: NUMERIC values as decimal strings, TIMESTAMP numbers (epoch
// milliseconds) as ISO 8601 strings, JSON columns per `encoding`, RECORD and REPEATED values
// field by field. Null values are left out. Fields the table does not have are copied as
// they are (the service ignores or refuses them, per ignoreUnknownValues).
JsonObject EncodeRecord(const JsonObject& record, const std::vector<Field>& schema,
                        Encoding encoding);
Json EncodeValue(const Field& field, const Json& value, Encoding encoding);

// "2024-01-02T03:04:05.678Z" for milliseconds since the Unix epoch.
std::string FormatTimestampMillis(std::int64_t millis);

// Shortest decimal text that reads back as `value` (no exponent for NUMERIC's range).
std::string DecimalText(double value);

}  // namespace s3db::replicator::bigquery
