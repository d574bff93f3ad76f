// CSV files (RFC 4180) with a header row.
//
// Cells: null or missing -> empty; an empty string -> "" (so it differs from null); true /
// false; integers with every digit; doubles in shortest round-trip form; strings as they are;
// arrays and objects as compact JSON text. A cell is quoted when it holds the delimiter, a
// double quote, CR or LF; quotes inside are doubled. Records end with CRLF.
//
// Header: every file starts with a header row holding every column (declared columns, then
// fields in first-seen order). Rows are buffered until Flush; the header is written with the
// first Flush. A field first seen after that forces a rewrite of the staged file (read back,
// new header, every earlier record padded with empty cells); the published file stays the old
// complete one until the next Flush. Declare the columns to avoid rewrites.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/writer.h"

namespace s3db::formats {

struct CsvOptions {
  // Field separator: one of ',', ';', '\t', '|' (config option `delimiter`).
  char delimiter = ',';
  // Start the file with a UTF-8 byte order mark (helps Excel detect UTF-8).
  bool bom = false;
  // Spreadsheet safety: prefix a single quote to string cells (and header names) that start
  // with '=', '+', '-', '@', TAB or CR, so a spreadsheet does not run them as formulas.
  // Numbers are never changed.
  bool escape_formulas = false;
};

// Error kInvalidArgument naming the option `delimiter` unless it is one of , ; \t |.
Status ValidateCsvOptions(const CsvOptions& options);

// Reads `delimiter` (a one-character string: ",", ";", "\t", "|"), `bom` (bool) and
// `escapeFormulas` (bool) from a config object; absent keys keep their defaults.
Result<CsvOptions> CsvOptionsFromJson(const JsonObject& config);

class CsvWriter : public RecordWriter {
 public:
  // Error kInvalidArgument for invalid options.
  static Result<std::unique_ptr<CsvWriter>> Make(ColumnSet columns, CsvOptions options,
                                                 std::unique_ptr<ByteSink> sink);
  // Continues the CSV file that is `sink`'s body (written with the same options, e.g. from
  // FileByteSink::Resume): the columns are its header's, typed as in `declared` where the
  // names match; a torn last record (no CRLF after it) is cut off. An empty body starts a
  // new file, as Make does. Error kInvalidArgument when the body has no complete header.
  static Result<std::unique_ptr<CsvWriter>> Resume(ColumnSet declared, CsvOptions options,
                                                   std::unique_ptr<ByteSink> sink);
  ~CsvWriter() override;

  Status Add(const JsonObject& row) override;
  Status Flush() override;
  Status Finish() override;
  void Abandon() override;
  std::uint64_t BytesWritten() const override;

  const ColumnSet& columns() const { return columns_; }

 private:
  CsvWriter(ColumnSet columns, CsvOptions options, std::unique_ptr<ByteSink> sink);
  Status CheckUsable() const;
  Status ResumeBody(const ColumnSet& declared);
  Status WritePending();
  Status AddColumnsToWrittenRecords(std::size_t added);
  std::string HeaderRecord() const;

  ColumnSet columns_;
  CsvOptions options_;
  std::unique_ptr<ByteSink> sink_;
  StickyError sticky_;
  std::string pending_;          // encoded records not given to the sink yet
  bool header_written_ = false;  // the sink's body starts with the header
  bool finished_ = false;
  bool abandoned_ = false;
  std::vector<const Json*> cells_;
};

// Encodes one CSV cell into `out` as CsvWriter does (exposed for tests and the CLI).
void AppendCsvCell(const Json* value, const CsvOptions& options, std::string& out);

}  // namespace s3db::formats
