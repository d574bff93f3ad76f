#include "formats/record_writers.h"

#include <utility>

#include "formats/csv_writer.h"
#include "formats/jsonl_writer.h"
#include "formats/parquet_writer.h"
#include "formats/xlsx_writer.h"

namespace s3db::formats {

Result<FileFormat> ParseFileFormat(std::string_view name) {
  if (name == "csv") return FileFormat::kCsv;
  if (name == "jsonl" || name == "ndjson") return FileFormat::kJsonl;
  if (name == "parquet") return FileFormat::kParquet;
  if (name == "excel" || name == "xlsx") return FileFormat::kExcel;
  return MakeError(ErrorCode::kInvalidArgument, "unknown file format '" + std::string(name) +
                                                    "' (use csv, jsonl, parquet or excel)");
}

std::string FileExtension(FileFormat format, const JsonObject& config) {
  switch (format) {
    case FileFormat::kCsv:
      return ".csv";
    case FileFormat::kJsonl: {
      const Json* compress = config.if_contains("compress");
      bool gzip = compress != nullptr && compress->is_bool() && compress->get_bool();
      return gzip ? ".jsonl.gz" : ".jsonl";
    }
    case FileFormat::kParquet:
      return ".parquet";
    case FileFormat::kExcel:
      return ".xlsx";
  }
  return "";
}

Result<std::unique_ptr<RecordWriter>> MakeRecordWriter(FileFormat format, ColumnSet columns,
                                                       const JsonObject& config,
                                                       std::unique_ptr<ByteSink> sink) {
  switch (format) {
    case FileFormat::kCsv: {
      S3DB_ASSIGN_OR_RETURN(CsvOptions options, CsvOptionsFromJson(config));
      S3DB_ASSIGN_OR_RETURN(auto writer,
                            CsvWriter::Make(std::move(columns), options, std::move(sink)));
      return std::unique_ptr<RecordWriter>(std::move(writer));
    }
    case FileFormat::kJsonl: {
      S3DB_ASSIGN_OR_RETURN(JsonlOptions options, JsonlOptionsFromJson(config));
      S3DB_ASSIGN_OR_RETURN(auto writer, JsonlWriter::Make(options, std::move(sink)));
      return std::unique_ptr<RecordWriter>(std::move(writer));
    }
    case FileFormat::kParquet: {
      S3DB_ASSIGN_OR_RETURN(ParquetOptions options, ParquetOptionsFromJson(config));
      S3DB_ASSIGN_OR_RETURN(auto writer, ParquetWriter::Make(std::move(columns), std::move(options),
                                                             std::move(sink)));
      return std::unique_ptr<RecordWriter>(std::move(writer));
    }
    case FileFormat::kExcel: {
      S3DB_ASSIGN_OR_RETURN(XlsxOptions options, XlsxOptionsFromJson(config));
      std::string sheet_name = "Sheet1";
      if (const Json* name = config.if_contains("sheetName"); name && !name->is_null()) {
        if (!name->is_string() || name->get_string().empty()) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "option `sheetName` must be a non-empty string");
        }
        sheet_name = std::string(name->get_string());
      }
      S3DB_ASSIGN_OR_RETURN(auto writer, XlsxWriter::Make(std::move(columns), std::move(options),
                                                          std::move(sink), sheet_name));
      return std::unique_ptr<RecordWriter>(std::move(writer));
    }
  }
  return MakeError(ErrorCode::kInternal, "unknown file format");
}

Result<std::unique_ptr<RecordWriter>> ResumeRecordWriter(FileFormat format, ColumnSet columns,
                                                         const JsonObject& config,
                                                         std::unique_ptr<ByteSink> sink) {
  if (format == FileFormat::kCsv) {
    S3DB_ASSIGN_OR_RETURN(CsvOptions options, CsvOptionsFromJson(config));
    S3DB_ASSIGN_OR_RETURN(auto writer,
                          CsvWriter::Resume(std::move(columns), options, std::move(sink)));
    return std::unique_ptr<RecordWriter>(std::move(writer));
  }
  if (format == FileFormat::kJsonl) {
    S3DB_ASSIGN_OR_RETURN(JsonlOptions options, JsonlOptionsFromJson(config));
    S3DB_ASSIGN_OR_RETURN(auto writer, JsonlWriter::Resume(options, std::move(sink)));
    return std::unique_ptr<RecordWriter>(std::move(writer));
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "only CSV and JSONL files can be continued (Parquet and Excel files end "
                   "with a footer)");
}

}  // namespace s3db::formats
