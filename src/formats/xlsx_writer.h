// Excel workbooks (.xlsx, Office Open XML), written with libxlsxwriter.
//
//   auto sink = FileByteSink::Open("/exports/day.xlsx", {.publish_on_sync = true});
//   auto book = XlsxWorkbookWriter::Open(options, std::move(*sink));
//   book->AddSheet("users", ColumnSet::FromSchema(schema));
//   book->Add("users", row) ... book->Flush() ... book->Add("users", row) ... book->Finish();
//
// One workbook, one worksheet per sheet added (one per resource). Every worksheet starts with
// a header row (bold, filled, bottom border) holding every column: the declared ones, then the
// fields first seen in rows, in first-seen order. Options: freeze the header row, put an
// autofilter on header + data. Column widths follow the content (header and values), between
// 8.43 (Excel's default) and `max_column_width` characters.
//
// Cells are typed by value:
//   null, missing, ""       -> empty cell (Excel has no empty-string cell)
//   true / false            -> boolean
//   integer of <= 15 digits -> number, format "0" (every digit shown)
//   longer integer          -> text of its decimal digits: an Excel number is a double, and
//                              Excel shows and keeps only 15 significant digits, so
//                              9007199254740993 (beyond 2^53) would lose its last digit and
//                              even 9007199254740992 would show as 9007199254740990
//   double                  -> number (General format)
//   string                  -> text, always: written with worksheet_write_string, never as a
//                              formula, so "=1+1" stays the literal text "=1+1"
//   array / object          -> compact JSON text
// A column declared `datetime` turns ISO 8601 strings (see datetime.h) into Excel dates
// (serial day numbers in UTC, format "yyyy-mm-dd hh:mm:ss.000"); a string that does not parse,
// or a date before 1900-03-01 (Excel's calendar is wrong before that day), stays text.
//
// Text: Excel cells hold at most 32,767 characters. A longer text is cut at a code point and
// ends with kXlsxTruncationMarker ("…[truncated]"); truncated_cells() counts them (column names
// too). Characters are counted as Excel counts them, in UTF-16 units, and a character that XML
// cannot hold (controls other than TAB and LF, CR, U+FFFE, U+FFFF) counts as its 7-character
// escape "_xHHHH_" (ECMA-376 ST_Xstring), which is how it is stored; a literal "_xHHHH_" in the
// text is stored as "_x005F_xHHHH_" so that readers give back the original text.
//
// Errors, as for every writer (writer.h): a row that cannot be written as it is (invalid UTF-8
// in a value or field name, a non-finite double, a 16,385th column) is rejected by Add with
// kInvalidArgument naming the column, changes nothing, and the writer stays usable. I/O and
// libxlsxwriter errors are sticky.
//
// Rows and regeneration: an .xlsx file is a zip archive whose parts cannot be appended to, so
// every Flush writes the WHOLE workbook again from every row added so far. Rows are therefore
// spooled, already encoded (about the size of their values, a few bytes per cell more), to an
// unlinked temporary file in `staging_dir`; memory stays bounded by the number of sheets and
// columns, plus a 4 MiB write buffer. Each Flush reads the spool once and streams it through
// libxlsxwriter in constant-memory mode (its own temporary files also go to `staging_dir`;
// strings are inline strings, not a shared-strings table), into a scratch workbook file in
// `staging_dir`, which is then copied into the sink (Reset, Append, Sync) and removed. Cost
// per Flush: O(all rows so far) CPU and about 2x the workbook's size in disk writes, plus what
// the sink does (FileByteSink with publish_on_sync copies once more, atomically). Flush with
// nothing added since the last one does nothing. The unlinked spool goes away with Finish,
// Abandon, the destructor, or the process.
//
// Restarts: with `spool_path` set, the spool is that named file instead, and it survives the
// writer: each Flush, after publishing, appends a flush record and fdatasyncs it. Open on an
// existing spool resumes: it rebuilds the sheets (columns, widths, row counts) from the records
// up to the last flush record and cuts off the rest (rows added after the last published
// workbook, or a write torn by a crash), so the next Flush writes a workbook with every row
// that was published before plus the new ones, each once. Sheets that were resumed are there
// already (HasSheet); AddSheet on them fails with kAlreadyExists. Abandon and the destructor
// keep the spool up to its last flush record; Finish deletes it. Delete the file to start
// afresh. A spool that cannot be read back fails Open with kIo naming the file.
//
// Sheets past Excel's row limit: a worksheet holds at most `max_rows_per_sheet` rows including
// the header (1,048,576); the rows after that continue on "<name> (2)", "<name> (3)", ... (each
// with its own header row), placed right after the sheet they continue.
//
// Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/writer.h"

namespace s3db::formats {

// Rows in an Excel worksheet, including the header row.
inline constexpr std::uint32_t kXlsxMaxRows = 1048576;
// Columns in an Excel worksheet.
inline constexpr std::size_t kXlsxMaxColumns = 16384;
// Characters (UTF-16 units) in an Excel cell.
inline constexpr std::size_t kXlsxMaxCellChars = 32767;
// Characters (UTF-16 units) in a worksheet name.
inline constexpr std::size_t kXlsxMaxSheetNameChars = 31;
// What a truncated text ends with.
inline constexpr std::string_view kXlsxTruncationMarker = "\xE2\x80\xA6[truncated]";

struct XlsxOptions {
  // Freeze the header row so it stays visible when scrolling (config option `freezeHeaders`).
  bool freeze_headers = true;
  // Put an autofilter on the header row, over all data rows (config option `autoFilter`).
  bool auto_filter = true;
  // Rows per worksheet including the header, 2..1,048,576. Lower it only in tests.
  std::uint32_t max_rows_per_sheet = kXlsxMaxRows;
  // Characters per cell, 64..32,767, truncation marker included. Lower it only in tests.
  std::size_t max_cell_chars = kXlsxMaxCellChars;
  // Widest column, in characters (Excel's width unit), 9..255.
  double max_column_width = 60;
  // Folder for the row spool, libxlsxwriter's temporary files and the scratch workbook; it
  // must exist. Empty: $TMPDIR, else /tmp. Put it on the output's file system for big files.
  std::string staging_dir;
  // A named, durable row spool from which a restarted writer resumes (see above). Empty: an
  // unlinked temporary file in `staging_dir`.
  std::string spool_path;
};

// Error kInvalidArgument naming the option.
Status ValidateXlsxOptions(const XlsxOptions& options);

// Reads `freezeHeaders` (bool) and `autoFilter` (bool); other keys are ignored. Error
// kInvalidArgument names the key.
Result<XlsxOptions> XlsxOptionsFromJson(const JsonObject& config);

// A name Excel accepts for a worksheet: each of [ ] : * ? / \ and control characters becomes
// '_', a leading or trailing apostrophe becomes '_', "History" (reserved by Excel) becomes
// "History_", empty becomes "Sheet", and it is cut to 31 UTF-16 units at a code point.
// REQUIRES: `name` is valid UTF-8.
std::string SanitizeSheetName(std::string_view name);

class XlsxWorkbookWriter {
 public:
  // Error kInvalidArgument for invalid options or no sink; kIo when `staging_dir` is not a
  // folder or `spool_path` holds a spool that cannot be read back. Resumes from an existing
  // `spool_path`. Creates no file until rows are spooled or the first Flush.
  static Result<std::unique_ptr<XlsxWorkbookWriter>> Open(XlsxOptions options,
                                                          std::unique_ptr<ByteSink> sink);
  // Abandons the workbook unless it was finished.
  ~XlsxWorkbookWriter();
  XlsxWorkbookWriter(const XlsxWorkbookWriter&) = delete;
  XlsxWorkbookWriter& operator=(const XlsxWorkbookWriter&) = delete;

  // Adds a worksheet named after `sheet` (SanitizeSheetName; when another sheet already has
  // that name, compared case-insensitively as Excel does for ASCII letters, " (2)", " (3)" ...
  // is appended). `sheet` stays the key for Add. Worksheets appear in the order added.
  // Error kAlreadyExists when `sheet` was added before; kInvalidArgument when `sheet` is not
  // valid UTF-8 or `columns` has more than 16,384 columns.
  Status AddSheet(std::string_view sheet, ColumnSet columns);
  bool HasSheet(std::string_view sheet) const;

  // Adds one row to `sheet`. Fields that are not columns yet become new columns. Error
  // kNotFound when `sheet` was not added; kInvalidArgument as described above.
  Status Add(std::string_view sheet, const JsonObject& row);

  // Writes the whole workbook with every row added so far and publishes it through the sink
  // (Reset, Append, Sync), so a reader never sees a broken file.
  Status Flush();
  // Flushes and closes the sink: the file is finished. Later calls fail.
  Status Finish();
  // Stops writing and discards what was not published, removes the spool. Never fails.
  void Abandon();

  // Text cells (and column names) cut at max_cell_chars so far.
  std::uint64_t truncated_cells() const;
  // Bytes of the workbook last handed to the sink.
  std::uint64_t BytesWritten() const;
  // Bytes in the row spool.
  std::uint64_t SpooledBytes() const;
  // Rows added to `sheet` (0 for an unknown sheet).
  std::uint64_t RowCount(std::string_view sheet) const;
  // The columns of `sheet`, or nullptr for an unknown sheet.
  const ColumnSet* Columns(std::string_view sheet) const;
  // The worksheet names of the workbook that the next Flush writes, in order (continuation
  // sheets included).
  std::vector<std::string> WorksheetNames() const;

  struct State;

 private:
  explicit XlsxWorkbookWriter(std::unique_ptr<State> state);
  Status CheckUsable() const;
  Status Publish(bool close);

  std::unique_ptr<State> state_;
};

// The RecordWriter for one sheet (MakeRecordWriter, the CLI export): a workbook with a single
// worksheet named `sheet_name` (sanitized), continued on "<name> (2)" ... past the row limit.
class XlsxWriter : public RecordWriter {
 public:
  static Result<std::unique_ptr<XlsxWriter>> Make(ColumnSet columns, XlsxOptions options,
                                                  std::unique_ptr<ByteSink> sink,
                                                  std::string sheet_name = "Sheet1");

  Status Add(const JsonObject& row) override;
  Status Flush() override;
  Status Finish() override;
  void Abandon() override;
  std::uint64_t BytesWritten() const override;

  std::uint64_t truncated_cells() const { return workbook_->truncated_cells(); }
  XlsxWorkbookWriter& workbook() { return *workbook_; }

 private:
  XlsxWriter(std::unique_ptr<XlsxWorkbookWriter> workbook, std::string sheet);

  std::unique_ptr<XlsxWorkbookWriter> workbook_;
  std::string sheet_;
};

}  // namespace s3db::formats
