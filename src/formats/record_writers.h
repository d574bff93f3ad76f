// Opens the writer for a format by name, with its options from a driver / CLI config object.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/writer.h"

namespace s3db::formats {

enum class FileFormat { kCsv, kJsonl, kParquet, kExcel };

// "csv", "jsonl" (or "ndjson"), "parquet", "excel" (or "xlsx"). Error kInvalidArgument names
// the value.
Result<FileFormat> ParseFileFormat(std::string_view name);

// ".csv", ".jsonl" (".jsonl.gz" when `config` has compress: true), ".parquet", ".xlsx".
std::string FileExtension(FileFormat format, const JsonObject& config);

// Reads the format's options from `config` (keys of other concerns are ignored: see
// CsvOptionsFromJson, JsonlOptionsFromJson, ParquetOptionsFromJson, XlsxOptionsFromJson) and
// makes the writer. Excel: a workbook with one worksheet named after `sheetName` (a string,
// default "Sheet1"); a multi-sheet workbook is XlsxWorkbookWriter (xlsx_writer.h).
Result<std::unique_ptr<RecordWriter>> MakeRecordWriter(FileFormat format, ColumnSet columns,
                                                       const JsonObject& config,
                                                       std::unique_ptr<ByteSink> sink);

// Like MakeRecordWriter, for a sink whose body is a file of this format to continue (see
// CsvWriter::Resume, JsonlWriter::Resume). CSV and JSONL only: a Parquet or Excel file ends
// with a footer or an archive directory and cannot be continued (error kInvalidArgument).
Result<std::unique_ptr<RecordWriter>> ResumeRecordWriter(FileFormat format, ColumnSet columns,
                                                         const JsonObject& config,
                                                         std::unique_ptr<ByteSink> sink);

}  // namespace s3db::formats
