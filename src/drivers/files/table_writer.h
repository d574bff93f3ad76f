// One output file of the file drivers, whatever its format: a CSV / JSONL / Parquet file
// holds one table (the rows of one target), an Excel workbook holds one sheet per target.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "s3db/json.h"

namespace s3db::replicator::files {

class TableWriter {
 public:
  virtual ~TableWriter() = default;
  // Makes sure the table `target` exists (a workbook's sheet), even without rows.
  virtual Status Declare(const std::string& target, const std::string& source) = 0;
  // Adds a row of `target` (changes of the source resource `source`). The writer lifecycle
  // of formats/writer.h: kInvalidArgument rejects only this row; other errors stick.
  virtual Status Add(const std::string& target, const std::string& source,
                     const JsonObject& row) = 0;
  virtual Status Flush() = 0;
  virtual Status Finish() = 0;
  virtual void Abandon() = 0;
  virtual std::uint64_t BytesWritten() const = 0;
  // Cells shortened to fit the format (Excel's 32,767 characters), in this file so far.
  virtual std::uint64_t TruncatedCells() const { return 0; }
};

// The declared columns of a source resource's table.
using ColumnsForResource = std::function<formats::ColumnSet(const std::string& resource)>;

// The formats the file drivers are registered under.
std::vector<std::string> TableFormats();

// Error kInvalidArgument unless `format` is one of TableFormats().
Status CheckTableFormat(const std::string& format);

// ".csv", ".jsonl", ".jsonl.gz", ".parquet", ".xlsx".
Result<std::string> TableFileExtension(const std::string& format, const JsonObject& config);

// Excel: the workbook's name without ".xlsx", from `filename` (default "export").
Result<std::string> WorkbookStem(const JsonObject& config);

// Makes the writer of one file. The format options are read from `config`. `scratch_dir`:
// where a workbook spools its rows and builds the file (an existing folder; empty: /tmp).
Result<std::unique_ptr<TableWriter>> MakeTableWriter(const std::string& format,
                                                     const JsonObject& config,
                                                     ColumnsForResource columns,
                                                     std::unique_ptr<formats::ByteSink> sink,
                                                     const std::string& scratch_dir = "");

// Like MakeTableWriter, for a sink whose body is a published file to continue (see
// formats::ResumeRecordWriter): CSV and JSONL only, else kInvalidArgument.
Result<std::unique_ptr<TableWriter>> ResumeTableWriter(const std::string& format,
                                                       const JsonObject& config,
                                                       ColumnsForResource columns,
                                                       std::unique_ptr<formats::ByteSink> sink);

// A sink that keeps nothing but the size (for checking rows against a format).
class DiscardByteSink final : public formats::ByteSink {
 public:
  Status Append(std::string_view bytes) override {
    size_ += bytes.size();
    return Ok();
  }
  Status Sync(std::string_view) override { return Ok(); }
  Status Close(std::string_view) override { return Ok(); }
  void Abandon() override {}
  Result<std::string> ReadBody() const override {
    return MakeError(ErrorCode::kInternal, "a discarding sink keeps no bytes");
  }
  Status Reset() override {
    size_ = 0;
    return Ok();
  }
  std::uint64_t BodySize() const override { return size_; }

 private:
  std::uint64_t size_ = 0;
};

}  // namespace s3db::replicator::files
