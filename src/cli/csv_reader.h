// A streaming CSV reader for RFC 4180 text: comma-separated fields, records ended by CRLF,
// LF or CR, fields in double quotes may hold commas, line breaks and doubled quotes ("").
// Lenient where the RFC is silent: a quote inside an unquoted field is kept as a character,
// a UTF-8 byte order mark at the start is skipped, and blank lines are skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "s3db/error.h"

namespace s3db::cli {

// Counts bytes and lines while reading characters from a stream buffer.
class CharReader {
 public:
  explicit CharReader(std::istream& input) : buffer_(input.rdbuf()) {}

  static constexpr int kEnd = std::char_traits<char>::eof();

  int Peek() { return buffer_ ? buffer_->sgetc() : kEnd; }
  int Get() {
    int c = buffer_ ? buffer_->sbumpc() : kEnd;
    if (c != kEnd) {
      ++bytes_;
      // A line ends at LF, or at a CR that no LF follows.
      if (c == '\n' || (c == '\r' && Peek() != '\n')) ++line_;
    }
    return c;
  }
  // Skips a UTF-8 byte order mark at the current position (only call at the start).
  void SkipByteOrderMark();

  std::uint64_t bytes() const { return bytes_; }
  std::size_t line() const { return line_; }  // 1-based line of the next character

 private:
  std::streambuf* buffer_;
  std::uint64_t bytes_ = 0;
  std::size_t line_ = 1;
};

// Not thread-safe. The stream must outlive the reader.
class CsvReader {
 public:
  explicit CsvReader(std::istream& input);

  // Reads the next record into `fields` (cleared first). Returns false at the end of input.
  // Errors (kInvalidArgument) are fatal and name the line: "line 7: the quoted field that
  // starts here is never closed", "line 3: unexpected 'x' after a closing quote".
  Result<bool> Next(std::vector<std::string>& fields);

  std::size_t record_line() const { return record_line_; }  // line where the last record began
  std::uint64_t bytes_read() const { return reader_.bytes(); }

 private:
  CharReader reader_;
  std::size_t record_line_ = 0;
};

}  // namespace s3db::cli
