// One lifecycle for every file writer (CSV, JSONL, Parquet, later Excel).
//
//   auto sink = FileByteSink::Open("/exports/users.parquet");
//   ParquetWriter writer(columns, options, std::move(*sink));
//   writer.Add(row) ... writer.Flush() ... writer.Add(row) ... writer.Finish();
//
// Errors: a row that cannot be written as it is (a value that does not fit its column,
// invalid UTF-8, a number JSON cannot hold) is rejected by Add with kInvalidArgument naming
// the column; it changes nothing and the writer stays usable. Any other error (I/O,
// compression, an upload) is sticky: the writer keeps it and every later call returns it.
#pragma once

#include <cstdint>

#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db::formats {

class RecordWriter {
 public:
  virtual ~RecordWriter() = default;

  // Adds one row. Fields not among the columns yet become new columns (first-seen order).
  // Missing fields and nulls are written as the format's null.
  virtual Status Add(const JsonObject& row) = 0;

  // Makes every row added so far readable in a complete, valid file at the sink and durable
  // (the sink decides where: see byte_sink.h). A reader never sees a broken file.
  virtual Status Flush() = 0;

  // Flushes and closes the sink: the file is finished. Later calls fail.
  virtual Status Finish() = 0;

  // Stops writing and discards what was not published. Never fails.
  virtual void Abandon() = 0;

  // Bytes handed to the sink so far (rows still buffered in memory are not counted).
  virtual std::uint64_t BytesWritten() const = 0;
};
// Destroying a writer that was not finished abandons it.

// Keeps the first sticky error of a writer.
class StickyError {
 public:
  // Returns `status`; remembers it when it is the first error.
  Status Keep(Status status) {
    if (!status && !failed_) {
      failed_ = true;
      error_ = status.error();
    }
    return status;
  }
  // The kept error, or Ok.
  Status Check() const {
    if (failed_) return tl::unexpected(error_);
    return Ok();
  }
  bool failed() const { return failed_; }

 private:
  bool failed_ = false;
  Error error_;
};

}  // namespace s3db::formats
