// Apache Parquet files, written to the format specification (no Parquet library).
//
// Layout: "PAR1", row groups, footer (Thrift compact FileMetaData), footer length, "PAR1".
// Every column is OPTIONAL. Data pages are v1 with RLE definition (and repetition) levels;
// values are dictionary encoded (dictionary page + RLE_DICTIONARY indices) when the chunk's
// dictionary stays under `dictionary_size_limit` and has at most half as many entries as
// values, else PLAIN (a chunk written across flushes may switch to PLAIN part way, see
// Flush below). Chunks carry statistics (null_count, min_value / max_value; strings
// longer than 4 KiB get no min/max) and the file declares TYPE_ORDER column orders.
//
// Column types (decided once per file, from the declared type, else from the values of the
// first row group in which the column has a non-null value; see Flush below):
//   boolean                -> BOOLEAN
//   integer                -> INT64 (int64 and uint64 up to 2^63-1)
//   number                 -> DOUBLE (integers must be within +-2^53 to convert exactly)
//   string                 -> BYTE_ARRAY STRING (UTF8)
//   datetime               -> INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true), ISO 8601 input
//   array                  -> LIST (3-level: <name>.list.element) of an inferred element type
//   object / json          -> BYTE_ARRAY JSON: compact JSON text
// Inference from values: all booleans -> boolean; all integers -> INT64, but a uint64 above
// 2^63-1 makes the column a string of decimal text; integers mixed with doubles -> DOUBLE
// when every integer is within +-2^53, else string; all strings -> string; all arrays ->
// LIST; any object, or arrays mixed with other values -> JSON; other mixes -> string, with
// numbers and booleans as their JSON text. A column with only nulls so far has no type yet:
// its chunks hold only levels (valid for any type) and the footer calls it a string until a
// value decides.
//
// Values that do not fit the column's type are never changed silently: Add rejects the row
// with kInvalidArgument naming the column (e.g. a string in an INT64 column, 2.5 in an INT64
// column, 2^60 in a DOUBLE column, a non-ISO string in a datetime column). A string column
// takes any value: numbers, booleans, arrays and objects become their JSON text.
//
// Flush writes all-null chunks for columns that a row group lacks and publishes body + a
// trailer through the sink, so the file is complete after every Flush. The trailer holds the
// open row group as a provisional last row group, and the footer. A row group enters the
// body only once it has rowGroupSize rows (or ~128 MiB), or at Finish, so flushes never cut
// row groups: a finished file has row groups of rowGroupSize rows, the last one smaller.
// The work of a Flush stays bounded: a column chunk holds many data pages, and the rows
// already published are sealed into finished pages (encoded and compressed once, kept as
// bytes) that each trailer copies as they are; a Flush encodes only the rows added since the
// last sealed page, sealing them once they reach 1,024 rows or 64 KiB or were published 8
// times (no value is encoded more than 9 times). The dictionary only grows by appending
// (earlier pages' indices stay valid) and its page is written again when it grew; once it
// would pass dictionary_size_limit (or, past 1,000 values, hold more entries than half the
// values) the rest of the chunk is PLAIN. Statistics cover every page of a chunk.
// A column whose type is still undecided is typed for each publish only and encoded whole,
// within a budget: once those publishes would add up to more than 16 row groups' worth of
// rows, its type is decided from the row group's rows so far, for good.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/compression.h"
#include "formats/writer.h"

namespace s3db::formats {

struct ParquetOptions {
  // Page compression (config option `compression`): snappy, gzip, zstd, lz4 (LZ4_RAW), none.
  Codec compression = Codec::kSnappy;
  // Rows per row group (config option `rowGroupSize`).
  std::size_t row_group_size = 10000;
  // A row group is also closed once its buffered values reach about this many bytes.
  std::size_t row_group_bytes = 128u << 20;
  // Target size of one data page's values, before compression.
  std::size_t page_size = 1u << 20;
  // A chunk whose dictionary would be larger than this (PLAIN-encoded) is written PLAIN.
  std::size_t dictionary_size_limit = 1u << 20;
  // Use dictionary encoding where it pays off.
  bool dictionary = true;
  // The file's created_by.
  std::string created_by = "s3db version 0.1.0";
};

// Error kInvalidArgument naming the option (rowGroupSize must be 1..10,000,000, ...).
Status ValidateParquetOptions(const ParquetOptions& options);

// Reads `compression` (string), `rowGroupSize` (integer) and `dictionary` (bool).
Result<ParquetOptions> ParquetOptionsFromJson(const JsonObject& config);

class ParquetWriter : public RecordWriter {
 public:
  // Error kInvalidArgument for invalid options.
  static Result<std::unique_ptr<ParquetWriter>> Make(ColumnSet columns, ParquetOptions options,
                                                     std::unique_ptr<ByteSink> sink);
  ~ParquetWriter() override;

  Status Add(const JsonObject& row) override;
  Status Flush() override;
  Status Finish() override;
  void Abandon() override;
  // The body, plus the last Flush's trailer while its rows are still buffered: about the
  // size of the file as last published.
  std::uint64_t BytesWritten() const override;

  const ColumnSet& columns() const;
  // The type decided for column `index`: "unknown", "boolean", "int64", "double", "string",
  // "json", "timestamp", "list<element type>".
  std::string ColumnTypeDescription(std::size_t index) const;
  // Row groups in the body so far (the provisional one of a Flush is not counted).
  std::size_t row_group_count() const;

  struct State;

 private:
  explicit ParquetWriter(std::unique_ptr<State> state);
  Status CheckUsable() const;

  std::unique_ptr<State> state_;
};

}  // namespace s3db::formats
