#include "drivers/files/table_writer.h"

#include "formats/record_writers.h"
#include "formats/xlsx_writer.h"

namespace s3db::replicator::files {
namespace {

// CSV, JSONL and Parquet: one RecordWriter; the columns come from the first row's resource.
class RecordTableWriter final : public TableWriter {
 public:
  // `resume`: the sink's body is a file to continue (formats::ResumeRecordWriter).
  RecordTableWriter(formats::FileFormat format, JsonObject config, ColumnsForResource columns,
                    std::unique_ptr<formats::ByteSink> sink, bool resume = false)
      : format_(format),
        config_(std::move(config)),
        columns_(std::move(columns)),
        sink_(std::move(sink)),
        resume_(resume) {}

  Status Declare(const std::string&, const std::string& source) override { return Open(source); }

  Status Add(const std::string&, const std::string& source, const JsonObject& row) override {
    S3DB_RETURN_IF_ERROR(Open(source));
    return writer_->Add(row);
  }
  Status Flush() override {
    S3DB_RETURN_IF_ERROR(Open(""));
    return writer_->Flush();
  }
  Status Finish() override {
    S3DB_RETURN_IF_ERROR(Open(""));
    return writer_->Finish();
  }
  void Abandon() override {
    if (writer_) {
      writer_->Abandon();
    } else if (sink_) {
      sink_->Abandon();
    }
  }
  std::uint64_t BytesWritten() const override { return writer_ ? writer_->BytesWritten() : 0; }

 private:
  Status Open(const std::string& source) {
    if (writer_) return Ok();
    formats::ColumnSet columns = columns_ ? columns_(source) : formats::ColumnSet();
    if (resume_) {
      S3DB_ASSIGN_OR_RETURN(writer_, formats::ResumeRecordWriter(format_, std::move(columns),
                                                                 config_, std::move(sink_)));
      return Ok();
    }
    S3DB_ASSIGN_OR_RETURN(writer_, formats::MakeRecordWriter(format_, std::move(columns),
                                                             config_, std::move(sink_)));
    return Ok();
  }

  formats::FileFormat format_;
  JsonObject config_;
  ColumnsForResource columns_;
  std::unique_ptr<formats::ByteSink> sink_;  // until the writer is made
  bool resume_;
  std::unique_ptr<formats::RecordWriter> writer_;
};

// Excel: one workbook, one worksheet per target (regenerated completely at every Flush).
class WorkbookTableWriter final : public TableWriter {
 public:
  WorkbookTableWriter(std::unique_ptr<formats::XlsxWorkbookWriter> book,
                      ColumnsForResource columns)
      : book_(std::move(book)), columns_(std::move(columns)) {}

  Status Declare(const std::string& target, const std::string& source) override {
    if (book_->HasSheet(target)) return Ok();
    return book_->AddSheet(target, columns_ ? columns_(source) : formats::ColumnSet());
  }
  Status Add(const std::string& target, const std::string& source,
             const JsonObject& row) override {
    S3DB_RETURN_IF_ERROR(Declare(target, source));
    return book_->Add(target, row);
  }
  Status Flush() override { return book_->Flush(); }
  Status Finish() override { return book_->Finish(); }
  void Abandon() override { book_->Abandon(); }
  std::uint64_t BytesWritten() const override { return book_->BytesWritten(); }
  std::uint64_t TruncatedCells() const override { return book_->truncated_cells(); }

 private:
  std::unique_ptr<formats::XlsxWorkbookWriter> book_;
  ColumnsForResource columns_;
};

}  // namespace

std::vector<std::string> TableFormats() { return {"csv", "jsonl", "parquet", "excel"}; }

Status CheckTableFormat(const std::string& format) {
  for (const std::string& known : TableFormats()) {
    if (format == known) return Ok();
  }
  std::string list;
  for (const std::string& known : TableFormats()) list += (list.empty() ? "" : ", ") + known;
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown file format '" + format + "' (use " + list + ")");
}

Result<std::string> TableFileExtension(const std::string& format, const JsonObject& config) {
  S3DB_RETURN_IF_ERROR(CheckTableFormat(format));
  S3DB_ASSIGN_OR_RETURN(formats::FileFormat parsed, formats::ParseFileFormat(format));
  return formats::FileExtension(parsed, config);
}

Result<std::string> WorkbookStem(const JsonObject& config) {
  const Json* filename = config.if_contains("filename");
  if (filename == nullptr || filename->is_null()) return std::string("export");
  if (!filename->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "filename: must be a string like 'report.xlsx'");
  }
  std::string name(filename->get_string());
  if (name.ends_with(".xlsx")) name.resize(name.size() - 5);
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "filename: '" + std::string(filename->get_string()) +
                         "' must be a file name like 'report.xlsx' (no folders)");
  }
  return name;
}

Result<std::unique_ptr<TableWriter>> MakeTableWriter(const std::string& format,
                                                     const JsonObject& config,
                                                     ColumnsForResource columns,
                                                     std::unique_ptr<formats::ByteSink> sink,
                                                     const std::string& scratch_dir) {
  S3DB_RETURN_IF_ERROR(CheckTableFormat(format));
  if (format == "excel") {
    S3DB_ASSIGN_OR_RETURN(formats::XlsxOptions options, formats::XlsxOptionsFromJson(config));
    options.staging_dir = scratch_dir;
    S3DB_ASSIGN_OR_RETURN(auto book,
                          formats::XlsxWorkbookWriter::Open(std::move(options), std::move(sink)));
    return std::unique_ptr<TableWriter>(
        std::make_unique<WorkbookTableWriter>(std::move(book), std::move(columns)));
  }
  S3DB_ASSIGN_OR_RETURN(formats::FileFormat parsed, formats::ParseFileFormat(format));
  {
    // The writer itself is made at the first row (its columns depend on the resource):
    // check the options now.
    S3DB_ASSIGN_OR_RETURN(auto check, formats::MakeRecordWriter(
                                          parsed, formats::ColumnSet(), config,
                                          std::make_unique<formats::MemoryByteSink>()));
    check->Abandon();
  }
  auto writer = std::make_unique<RecordTableWriter>(parsed, config, std::move(columns),
                                                    std::move(sink));
  return std::unique_ptr<TableWriter>(std::move(writer));
}

Result<std::unique_ptr<TableWriter>> ResumeTableWriter(const std::string& format,
                                                       const JsonObject& config,
                                                       ColumnsForResource columns,
                                                       std::unique_ptr<formats::ByteSink> sink) {
  S3DB_RETURN_IF_ERROR(CheckTableFormat(format));
  S3DB_ASSIGN_OR_RETURN(formats::FileFormat parsed, formats::ParseFileFormat(format));
  if (parsed != formats::FileFormat::kCsv && parsed != formats::FileFormat::kJsonl) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "a " + format + " file cannot be continued (it ends with a footer)");
  }
  auto writer = std::make_unique<RecordTableWriter>(parsed, config, std::move(columns),
                                                    std::move(sink), true);
  return std::unique_ptr<TableWriter>(std::move(writer));
}

}  // namespace s3db::replicator::files
