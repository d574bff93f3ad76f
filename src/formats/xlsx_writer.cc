#include "formats/xlsx_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xlsxwriter.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "formats/datetime.h"
#include "formats/json_text.h"

namespace s3db::formats {
namespace {

// Excel shows (and keeps on edit) 15 significant digits: longer integers are written as text.
constexpr std::int64_t kMaxExcelInteger = 999999999999999;
constexpr std::size_t kSpoolBufferBytes = 4u << 20;
constexpr std::size_t kSpoolReadBytes = 1u << 20;
constexpr std::uint64_t kZip64Threshold = std::uint64_t{1} << 30;
constexpr double kDefaultColumnWidth = 8.43;
// Days from Excel's epoch (1899-12-30, as the 1900 date system counts after February 1900)
// to 1970-01-01, and the serial of 1900-03-01, the first day Excel's calendar gets right.
constexpr std::int64_t kExcelUnixEpochDays = 25569;
constexpr std::int64_t kExcelFirstExactSerial = 61;
constexpr std::int64_t kMicrosPerDay = 86400LL * 1000000;
constexpr const char* kDateFormat = "yyyy-mm-dd hh:mm:ss.000";
constexpr const char* kIntegerFormat = "0";
constexpr lxw_color_t kHeaderFill = 0xD9E1F2;
constexpr std::size_t kDateWidth = 23;
constexpr std::size_t kBooleanWidth = 5;
constexpr std::size_t kMaxNumberWidth = 12;

// Record kinds in the spool.
//   row:    varint sheet, varint cell count, cells: varint column, u8 width, u8 tag, value
//   sheet:  varint key length, key, varint column count, columns: varint length, name, u8 type
//   column: varint sheet, varint name length, name (a column first seen in a row)
//   flush:  nothing; the records before it are in a published workbook
enum Kind : std::uint8_t {
  kRecordRow = 0,
  kRecordSheet = 1,
  kRecordColumn = 2,
  kRecordFlush = 3,
};

// Cell tags in the spool.
enum Tag : std::uint8_t {
  kTagFalse = 0,
  kTagTrue = 1,
  kTagDouble = 2,
  kTagInteger = 3,
  kTagText = 4,
  kTagDate = 5,
};

Error IoError(std::string what) {
  return Error(ErrorCode::kIo, std::move(what) + ": " + std::strerror(errno));
}

// ---- UTF-8 and cell text ----------------------------------------------------------------

// Decodes the code point at `text[i]` and advances `i`. REQUIRES: valid UTF-8.
char32_t NextCodePoint(std::string_view text, std::size_t& i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) {
    i += 1;
    return lead;
  }
  if (lead < 0xE0) {
    char32_t cp = ((lead & 0x1Fu) << 6) | (byte(i + 1) & 0x3Fu);
    i += 2;
    return cp;
  }
  if (lead < 0xF0) {
    char32_t cp = ((lead & 0x0Fu) << 12) | ((byte(i + 1) & 0x3Fu) << 6) | (byte(i + 2) & 0x3Fu);
    i += 3;
    return cp;
  }
  char32_t cp = ((lead & 0x07u) << 18) | ((byte(i + 1) & 0x3Fu) << 12) |
                ((byte(i + 2) & 0x3Fu) << 6) | (byte(i + 3) & 0x3Fu);
  i += 4;
  return cp;
}

bool IsHexDigit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

// True when `text` at `i` reads "_xHHHH_", which readers would decode as an escape.
bool StartsLikeEscape(std::string_view text, std::size_t i) {
  if (i + 7 > text.size() || text[i] != '_' || text[i + 1] != 'x' || text[i + 6] != '_') {
    return false;
  }
  for (std::size_t k = i + 2; k < i + 6; ++k) {
    if (!IsHexDigit(text[k])) return false;
  }
  return true;
}

// Code points XML 1.0 cannot hold as they are (or, for CR, would not keep: XML parsers turn
// CR and CRLF into LF).
bool NeedsEscape(char32_t cp) {
  return (cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0xFFFE || cp == 0xFFFF;
}

void AppendEscape(char32_t cp, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.append("_x");
  for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(cp >> shift) & 0xF]);
  out.push_back('_');
}

// Display width of a code point in a cell, roughly: wide East Asian and emoji count 2,
// combining marks 0.
std::size_t CharWidth(char32_t cp) {
  if ((cp >= 0x300 && cp <= 0x36F) || (cp >= 0x200B && cp <= 0x200F) || cp == 0xFE0F) return 0;
  if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
      (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
      (cp >= 0xFF00 && cp <= 0xFF60) || (cp >= 0x1F300 && cp <= 0x1FAFF) || cp >= 0x20000) {
    return 2;
  }
  return 1;
}

struct CellText {
  std::string stored;      // escaped (and maybe truncated) text for libxlsxwriter
  std::size_t width = 0;   // widest line, in display columns
  bool truncated = false;  // cut at max_chars
};

// True for a byte that stands for itself, costs 1 and is 1 column wide.
bool IsPlainAscii(char c) { return c >= 0x20 && c < 0x7F && c != '_'; }

// Escapes `text` as described in the header and cuts it so that it costs at most `max_chars`
// (UTF-16 units of the text, escapes counted at their stored length). REQUIRES: valid UTF-8.
void EncodeCellText(std::string_view text, std::size_t max_chars, CellText& cell) {
  auto cost_at = [&](std::size_t i, char32_t cp) -> std::size_t {
    if (NeedsEscape(cp) || StartsLikeEscape(text, i)) return 7;
    return cp >= 0x10000 ? 2 : 1;
  };

  // No byte costs more than 7, so a short text needs no count.
  constexpr std::size_t kMaxCostPerByte = 7;
  std::size_t total = 0;
  if (text.size() * kMaxCostPerByte > max_chars) {
    for (std::size_t i = 0; i < text.size();) {
      if (IsPlainAscii(text[i])) {
        ++total;
        ++i;
        continue;
      }
      std::size_t at = i;
      total += cost_at(at, NextCodePoint(text, i));
    }
  }
  constexpr std::size_t kMarkerCost = 12;  // "…[truncated]": 12 UTF-16 units
  cell.truncated = total > max_chars;
  std::size_t budget = cell.truncated ? max_chars - kMarkerCost : max_chars;

  cell.stored.clear();
  cell.stored.reserve(std::min(text.size(), max_chars * 4) + kXlsxTruncationMarker.size());
  cell.width = 0;
  std::size_t spent = 0;
  std::size_t line_width = 0;
  for (std::size_t i = 0; i < text.size();) {
    // A run of plain ASCII at once.
    std::size_t run_end = i;
    while (run_end < text.size() && IsPlainAscii(text[run_end])) ++run_end;
    if (run_end > i) {
      std::size_t take = std::min(run_end - i, budget - spent);
      cell.stored.append(text.substr(i, take));
      spent += take;
      line_width += take;
      cell.width = std::max(cell.width, line_width);
      i += take;
      if (i < run_end) break;  // out of budget
      continue;
    }

    std::size_t at = i;
    char32_t cp = NextCodePoint(text, i);
    std::size_t cost = cost_at(at, cp);
    if (spent + cost > budget) break;
    spent += cost;
    if (NeedsEscape(cp)) {
      AppendEscape(cp, cell.stored);
    } else {
      if (cp == '_' && StartsLikeEscape(text, at)) cell.stored.append("_x005F");
      cell.stored.append(text.substr(at, i - at));
    }
    if (cp == '\n') {
      line_width = 0;
    } else {
      line_width += CharWidth(cp);
      cell.width = std::max(cell.width, line_width);
    }
  }
  if (cell.truncated) {
    cell.stored.append(kXlsxTruncationMarker);
    cell.width = std::max(cell.width, line_width + kMarkerCost);
  }
}

// ---- sheet names -------------------------------------------------------------------------

// The longest prefix of `text` (at a code point) of at most `max_units` UTF-16 units.
std::string_view Utf16Prefix(std::string_view text, std::size_t max_units) {
  std::size_t units = 0;
  std::size_t end = 0;
  for (std::size_t i = 0; i < text.size();) {
    units += NextCodePoint(text, i) >= 0x10000 ? 2 : 1;
    if (units > max_units) break;
    end = i;
  }
  return text.substr(0, end);
}

std::string AsciiLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

// `base` cut so that `base + suffix` fits in a sheet name, then `suffix`.
std::string WithSuffix(std::string_view base, std::string_view suffix) {
  std::string name(Utf16Prefix(base, kXlsxMaxSheetNameChars - suffix.size()));
  // A cut may leave a trailing apostrophe, which Excel refuses.
  if (!name.empty() && name.back() == '\'') name.back() = '_';
  return name + std::string(suffix);
}

// ---- spool encoding ----------------------------------------------------------------------

void PutVarint(std::uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void PutDouble(double value, std::string& out) {
  char bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  out.append(bytes, sizeof value);
}

// Reads the spool's records: each is a u32 length, then that many bytes (kind + payload).
class SpoolReader {
 public:
  SpoolReader(int fd, std::uint64_t size) : fd_(fd), size_(size) {}

  // Sets `record` to the next record's bytes; false at the end.
  Result<bool> Next(std::string_view& record) {
    S3DB_ASSIGN_OR_RETURN(bool more, Ensure(4));
    if (!more) {
      torn_ = buffer_.size() > position_;
      return false;
    }
    std::uint32_t length;
    std::memcpy(&length, buffer_.data() + position_, 4);
    position_ += 4;
    S3DB_ASSIGN_OR_RETURN(bool whole, Ensure(length));
    if (!whole) {
      torn_ = true;
      return false;
    }
    record = std::string_view(buffer_).substr(position_, length);
    position_ += length;
    return true;
  }

  // Bytes of the spool consumed by the records returned so far.
  std::uint64_t consumed() const { return read_offset_ - (buffer_.size() - position_); }
  // True when the spool ended inside a record (a write cut short).
  bool torn() const { return torn_; }

 private:
  // Makes `count` bytes available at position_; false when the spool ends first.
  Result<bool> Ensure(std::size_t count) {
    if (buffer_.size() - position_ >= count) return true;
    buffer_.erase(0, position_);
    position_ = 0;
    std::size_t want = std::max(count, kSpoolReadBytes);
    std::size_t have = buffer_.size();
    while (have < count && read_offset_ < size_) {
      std::size_t chunk =
          static_cast<std::size_t>(std::min<std::uint64_t>(want - have, size_ - read_offset_));
      buffer_.resize(have + chunk);
      ssize_t got = ::pread(fd_, buffer_.data() + have, chunk, static_cast<off_t>(read_offset_));
      if (got < 0) {
        if (errno == EINTR) continue;
        return tl::unexpected(IoError("cannot read the xlsx row spool"));
      }
      if (got == 0) break;
      have += static_cast<std::size_t>(got);
      read_offset_ += static_cast<std::uint64_t>(got);
    }
    buffer_.resize(have);
    return have >= count;
  }

  int fd_;
  std::uint64_t size_;
  std::uint64_t read_offset_ = 0;
  std::string buffer_;
  std::size_t position_ = 0;
  bool torn_ = false;
};

// Decoding one record.
class RecordCursor {
 public:
  explicit RecordCursor(std::string_view bytes) : bytes_(bytes) {}
  bool Varint(std::uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= bytes_.size()) return false;
      auto byte = static_cast<unsigned char>(bytes_[at_++]);
      value |= std::uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool Byte(std::uint8_t& value) {
    if (at_ >= bytes_.size()) return false;
    value = static_cast<std::uint8_t>(bytes_[at_++]);
    return true;
  }
  bool Double(double& value) {
    if (bytes_.size() - at_ < sizeof value) return false;
    std::memcpy(&value, bytes_.data() + at_, sizeof value);
    at_ += sizeof value;
    return true;
  }
  bool Bytes(std::size_t count, std::string_view& value) {
    if (bytes_.size() - at_ < count) return false;
    value = bytes_.substr(at_, count);
    at_ += count;
    return true;
  }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
};

// Removes a file when it goes out of scope.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

 private:
  std::string path_;
};

std::string LxwError(lxw_error error) { return lxw_strerror(error); }

}  // namespace

// ---- options -----------------------------------------------------------------------------

Status ValidateXlsxOptions(const XlsxOptions& options) {
  if (options.max_rows_per_sheet < 2 || options.max_rows_per_sheet > kXlsxMaxRows) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "xlsx option max_rows_per_sheet must be 2..1,048,576");
  }
  if (options.max_cell_chars < 64 || options.max_cell_chars > kXlsxMaxCellChars) {
    return MakeError(ErrorCode::kInvalidArgument, "xlsx option max_cell_chars must be 64..32,767");
  }
  if (!(options.max_column_width >= 9 && options.max_column_width <= 255)) {
    return MakeError(ErrorCode::kInvalidArgument, "xlsx option max_column_width must be 9..255");
  }
  return Ok();
}

Result<XlsxOptions> XlsxOptionsFromJson(const JsonObject& config) {
  XlsxOptions options;
  auto read_bool = [&](const char* key, bool& target) -> Status {
    const Json* value = config.if_contains(key);
    if (value == nullptr || value->is_null()) return Ok();
    if (!value->is_bool()) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          std::string("option `") + key + "` must be a boolean (got " + JsonText(*value) + ")");
    }
    target = value->get_bool();
    return Ok();
  };
  S3DB_RETURN_IF_ERROR(read_bool("freezeHeaders", options.freeze_headers));
  S3DB_RETURN_IF_ERROR(read_bool("autoFilter", options.auto_filter));
  return options;
}

std::string SanitizeSheetName(std::string_view name) {
  std::string clean;
  clean.reserve(name.size());
  for (std::size_t i = 0; i < name.size();) {
    std::size_t at = i;
    char32_t cp = NextCodePoint(name, i);
    bool bad = cp < 0x20 || cp == 0x7F || cp == '[' || cp == ']' || cp == ':' || cp == '*' ||
               cp == '?' || cp == '/' || cp == '\\';
    if (bad) {
      clean.push_back('_');
    } else {
      clean.append(name.substr(at, i - at));
    }
  }
  clean = std::string(Utf16Prefix(clean, kXlsxMaxSheetNameChars));
  if (clean.empty()) return "Sheet";
  if (clean.front() == '\'') clean.front() = '_';
  if (clean.back() == '\'') clean.back() = '_';
  if (AsciiLower(clean) == "history") clean.push_back('_');
  return clean;
}

// ---- the workbook writer -----------------------------------------------------------------

struct XlsxWorkbookWriter::State {
  struct Sheet {
    std::string key;
    std::string name;  // worksheet name of the first part
    ColumnSet columns;
    std::vector<std::string> headers;   // stored (escaped, maybe truncated) column names
    std::vector<std::uint16_t> widths;  // widest content per column, in characters
    std::uint64_t rows = 0;
  };
  struct Part {
    std::size_t sheet = 0;
    std::string name;
    std::uint64_t rows = 0;  // data rows, header not counted
  };

  XlsxOptions options;
  std::unique_ptr<ByteSink> sink;
  StickyError sticky;
  std::vector<Sheet> sheets;
  std::unordered_map<std::string, std::size_t> sheet_index;
  std::set<std::string> base_names;  // lower-cased names of the sheets' first parts

  int spool_fd = -1;
  std::uint64_t spool_size = 0;      // bytes written to spool_fd
  std::uint64_t committed_size = 0;  // bytes up to the last flush record
  std::string spool_buffer;          // records not written to spool_fd yet
  std::string record;                // the record being encoded
  std::vector<const Json*> cells;
  CellText text;

  std::uint64_t truncated = 0;
  std::uint64_t bytes_written = 0;
  bool dirty = true;  // something changed since this writer last published the workbook
  bool finished = false;
  bool abandoned = false;

  ~State() { CloseSpool(); }

  bool NamedSpool() const { return !options.spool_path.empty(); }

  // Closes the spool. A named spool keeps what its last flush record covers.
  void CloseSpool() {
    if (spool_fd >= 0) {
      if (NamedSpool() && spool_size > committed_size) {
        (void)::ftruncate(spool_fd, static_cast<off_t>(committed_size));
      }
      ::close(spool_fd);
    }
    spool_fd = -1;
    spool_buffer.clear();
    spool_buffer.shrink_to_fit();
  }

  Status OpenSpool() {
    if (spool_fd >= 0) return Ok();
    if (NamedSpool()) {
      int fd = ::open(options.spool_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0)
        return tl::unexpected(IoError("cannot create the xlsx spool " + options.spool_path));
      spool_fd = fd;
      return Ok();
    }
    std::string pattern = options.staging_dir + "/.s3db-xlsx-rows-XXXXXX";
    int fd = ::mkstemp(pattern.data());
    if (fd < 0) {
      return tl::unexpected(IoError("cannot create the xlsx row spool in " + options.staging_dir));
    }
    ::unlink(pattern.c_str());  // the spool lives only as long as the descriptor
    spool_fd = fd;
    return Ok();
  }

  std::string SpoolName() const {
    return NamedSpool() ? options.spool_path : "in " + options.staging_dir;
  }

  Status WriteSpoolBuffer() {
    if (spool_buffer.empty()) return Ok();
    S3DB_RETURN_IF_ERROR(OpenSpool());
    std::size_t done = 0;
    while (done < spool_buffer.size()) {
      ssize_t wrote = ::pwrite(spool_fd, spool_buffer.data() + done, spool_buffer.size() - done,
                               static_cast<off_t>(spool_size + done));
      if (wrote < 0) {
        if (errno == EINTR) continue;
        return tl::unexpected(IoError("cannot write the xlsx spool " + SpoolName()));
      }
      done += static_cast<std::size_t>(wrote);
    }
    spool_size += spool_buffer.size();
    spool_buffer.clear();
    return Ok();
  }

  // Appends one record (kind + `payload`) to the spool buffer.
  void AppendRecord(Kind kind, std::string_view payload) {
    auto length = static_cast<std::uint32_t>(payload.size() + 1);
    char length_bytes[4];
    std::memcpy(length_bytes, &length, 4);
    spool_buffer.append(length_bytes, 4);
    spool_buffer.push_back(static_cast<char>(kind));
    spool_buffer.append(payload);
  }

  // After a publish: a named spool gets a flush record and is made durable.
  Status Commit() {
    if (!NamedSpool()) return Ok();
    AppendRecord(kRecordFlush, {});
    S3DB_RETURN_IF_ERROR(WriteSpoolBuffer());
    if (::fdatasync(spool_fd) != 0) {
      return tl::unexpected(IoError("cannot sync the xlsx spool " + options.spool_path));
    }
    committed_size = spool_size;
    return Ok();
  }

  void AddHeader(Sheet& sheet, std::size_t column) {
    EncodeCellText(sheet.columns[column].name, options.max_cell_chars, text);
    if (text.truncated) ++truncated;
    // Bold text is a little wider; the autofilter button takes about two characters.
    std::size_t width = text.width + 1 + (options.auto_filter ? 2 : 0);
    sheet.headers.push_back(text.stored);
    sheet.widths.push_back(static_cast<std::uint16_t>(std::min<std::size_t>(width, 255)));
  }

  static void Widen(Sheet& sheet, std::size_t column, std::size_t width) {
    auto capped = static_cast<std::uint16_t>(std::min<std::size_t>(width, 255));
    if (sheet.widths[column] < capped) sheet.widths[column] = capped;
  }

  // Makes the sheet `key` (not added yet) with `columns`; returns its index.
  std::size_t MakeSheet(const std::string& key, ColumnSet columns) {
    Sheet added;
    added.key = key;
    std::string base = SanitizeSheetName(key);
    added.name = base;
    for (std::uint64_t suffix = 2; base_names.count(AsciiLower(added.name)) > 0; ++suffix) {
      added.name = WithSuffix(base, " (" + std::to_string(suffix) + ")");
    }
    added.columns = std::move(columns);
    for (std::size_t c = 0; c < added.columns.size(); ++c) AddHeader(added, c);
    base_names.insert(AsciiLower(added.name));
    sheet_index.emplace(key, sheets.size());
    sheets.push_back(std::move(added));
    return sheets.size() - 1;
  }

  // Appends one cell of column `column` to `record`.
  void EncodeCell(Sheet& sheet, std::size_t column, const Json& value) {
    auto put_head = [&](Tag tag, std::size_t width) {
      PutVarint(column, record);
      record.push_back(static_cast<char>(std::min<std::size_t>(width, 255)));
      record.push_back(static_cast<char>(tag));
      Widen(sheet, column, width);
    };
    auto put_number = [&](Tag tag, double number, std::size_t width) {
      put_head(tag, width);
      PutDouble(number, record);
    };
    auto put_text = [&](std::string_view plain) {
      if (plain.empty()) return;  // Excel has no empty-string cell: leave it empty
      EncodeCellText(plain, options.max_cell_chars, text);
      if (text.truncated) ++truncated;
      put_head(kTagText, text.width);
      PutVarint(text.stored.size(), record);
      record.append(text.stored);
    };

    switch (value.kind()) {
      case boost::json::kind::null:
        return;
      case boost::json::kind::bool_:
        put_head(value.get_bool() ? kTagTrue : kTagFalse, kBooleanWidth);
        return;
      case boost::json::kind::int64: {
        std::int64_t number = value.get_int64();
        std::string digits = std::to_string(number);
        if (number >= -kMaxExcelInteger && number <= kMaxExcelInteger) {
          put_number(kTagInteger, static_cast<double>(number), digits.size());
        } else {
          put_text(digits);
        }
        return;
      }
      case boost::json::kind::uint64: {
        std::uint64_t number = value.get_uint64();
        std::string digits = std::to_string(number);
        if (number <= static_cast<std::uint64_t>(kMaxExcelInteger)) {
          put_number(kTagInteger, static_cast<double>(number), digits.size());
        } else {
          put_text(digits);
        }
        return;
      }
      case boost::json::kind::double_: {
        std::string shown;
        AppendDouble(value.get_double(), shown);
        put_number(kTagDouble, value.get_double(), std::min(shown.size(), kMaxNumberWidth));
        return;
      }
      case boost::json::kind::string: {
        const auto& string = value.get_string();
        std::string_view plain(string.data(), string.size());
        if (sheet.columns[column].type == ColumnType::kDatetime) {
          if (auto serial = ExcelSerial(plain)) {
            put_number(kTagDate, *serial, kDateWidth);
            return;
          }
        }
        put_text(plain);
        return;
      }
      case boost::json::kind::array:
      case boost::json::kind::object:
        put_text(JsonText(value));
        return;
    }
  }

  // The Excel serial day number of an ISO 8601 date-time, when Excel's calendar has it.
  static std::optional<double> ExcelSerial(std::string_view iso) {
    auto micros = ParseIso8601Micros(iso);
    if (!micros) return std::nullopt;
    std::int64_t days = *micros / kMicrosPerDay;
    std::int64_t rest = *micros % kMicrosPerDay;
    if (rest < 0) {
      rest += kMicrosPerDay;
      --days;
    }
    std::int64_t serial_day = days + kExcelUnixEpochDays;
    if (serial_day < kExcelFirstExactSerial) return std::nullopt;
    return static_cast<double>(serial_day) +
           static_cast<double>(rest) / static_cast<double>(kMicrosPerDay);
  }

  // Rebuilds the sheets from a named spool, up to its last flush record, and cuts off what
  // follows it (rows added after the last publish).
  Status Resume();
  // Applies one spool record to the sheets (Resume).
  Status Replay(std::string_view bytes);

  // The worksheets the next Flush writes: every sheet, each followed by its continuations.
  std::vector<Part> PlanParts() const {
    std::vector<Part> parts;
    std::set<std::string> taken = base_names;
    std::uint64_t per_part = options.max_rows_per_sheet - 1;
    for (std::size_t s = 0; s < sheets.size(); ++s) {
      const Sheet& sheet = sheets[s];
      std::uint64_t count = sheet.rows == 0 ? 1 : (sheet.rows + per_part - 1) / per_part;
      std::uint64_t next_suffix = 2;
      for (std::uint64_t p = 0; p < count; ++p) {
        Part part;
        part.sheet = s;
        part.rows = std::min(per_part, sheet.rows - std::min(sheet.rows, p * per_part));
        if (p == 0) {
          part.name = sheet.name;
        } else {
          do {
            part.name = WithSuffix(sheet.name, " (" + std::to_string(next_suffix++) + ")");
          } while (taken.count(AsciiLower(part.name)) > 0);
          taken.insert(AsciiLower(part.name));
        }
        parts.push_back(std::move(part));
      }
    }
    return parts;
  }

  // Writes the whole workbook to `path`.
  Status Generate(const std::string& path);
};

Status XlsxWorkbookWriter::State::Replay(std::string_view bytes) {
  auto damaged = [&](std::string_view what) {
    return MakeError(ErrorCode::kIo, "xlsx spool " + options.spool_path + " is damaged (" +
                                         std::string(what) + "); delete it to start afresh");
  };
  RecordCursor cursor(bytes);
  std::uint8_t kind = 0;
  if (!cursor.Byte(kind)) return damaged("empty record");
  switch (kind) {
    case kRecordFlush:
      return Ok();
    case kRecordSheet: {
      std::uint64_t length = 0;
      std::uint64_t count = 0;
      std::string_view key;
      if (!cursor.Varint(length) || !cursor.Bytes(length, key) || !cursor.Varint(count)) {
        return damaged("sheet record");
      }
      std::vector<ColumnSpec> declared;
      for (std::uint64_t c = 0; c < count; ++c) {
        std::string_view name;
        std::uint8_t type = 0;
        if (!cursor.Varint(length) || !cursor.Bytes(length, name) || !cursor.Byte(type) ||
            type > static_cast<std::uint8_t>(ColumnType::kJson)) {
          return damaged("sheet column");
        }
        declared.push_back(ColumnSpec{std::string(name), static_cast<ColumnType>(type)});
      }
      auto columns = ColumnSet::Make(std::move(declared));
      if (!columns || sheet_index.count(std::string(key)) > 0) return damaged("sheet record");
      MakeSheet(std::string(key), std::move(*columns));
      return Ok();
    }
    case kRecordColumn: {
      std::uint64_t sheet = 0;
      std::uint64_t length = 0;
      std::string_view name;
      if (!cursor.Varint(sheet) || sheet >= sheets.size() || !cursor.Varint(length) ||
          !cursor.Bytes(length, name)) {
        return damaged("column record");
      }
      JsonObject field;
      field[name] = nullptr;
      if (sheets[sheet].columns.AddFieldsOf(field) != 1) return damaged("column record");
      AddHeader(sheets[sheet], sheets[sheet].columns.size() - 1);
      return Ok();
    }
    case kRecordRow: {
      std::uint64_t sheet = 0;
      std::uint64_t count = 0;
      if (!cursor.Varint(sheet) || sheet >= sheets.size() || !cursor.Varint(count)) {
        return damaged("row record");
      }
      Sheet& target = sheets[sheet];
      for (std::uint64_t k = 0; k < count; ++k) {
        std::uint64_t column = 0;
        std::uint8_t width = 0;
        std::uint8_t tag = 0;
        double number = 0;
        std::uint64_t length = 0;
        std::string_view value;
        if (!cursor.Varint(column) || column >= target.columns.size() || !cursor.Byte(width) ||
            !cursor.Byte(tag)) {
          return damaged("row cell");
        }
        bool ok = tag == kTagFalse || tag == kTagTrue ||
                  ((tag == kTagDouble || tag == kTagInteger || tag == kTagDate) &&
                   cursor.Double(number)) ||
                  (tag == kTagText && cursor.Varint(length) && cursor.Bytes(length, value));
        if (!ok) return damaged("row cell");
        Widen(target, column, width);
      }
      ++target.rows;
      return Ok();
    }
    default:
      return damaged("unknown record kind");
  }
}

Status XlsxWorkbookWriter::State::Resume() {
  int fd = ::open(options.spool_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(IoError("cannot open the xlsx spool " + options.spool_path));
  spool_fd = fd;
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return tl::unexpected(IoError("cannot read the xlsx spool " + options.spool_path));
  }

  // Pass 1: where the last flush record ends.
  std::uint64_t committed = 0;
  {
    SpoolReader reader(fd, static_cast<std::uint64_t>(info.st_size));
    std::string_view bytes;
    while (true) {
      S3DB_ASSIGN_OR_RETURN(bool more, reader.Next(bytes));
      if (!more) break;
      if (!bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kRecordFlush) {
        committed = reader.consumed();
      }
    }
  }
  if (static_cast<std::uint64_t>(info.st_size) > committed &&
      ::ftruncate(fd, static_cast<off_t>(committed)) != 0) {
    return tl::unexpected(IoError("cannot cut the xlsx spool " + options.spool_path));
  }

  // Pass 2: rebuild sheets, columns, widths and row counts. Truncations are not counted again.
  std::uint64_t counted = truncated;
  SpoolReader reader(fd, committed);
  std::string_view bytes;
  while (true) {
    S3DB_ASSIGN_OR_RETURN(bool more, reader.Next(bytes));
    if (!more) break;
    S3DB_RETURN_IF_ERROR(Replay(bytes));
  }
  truncated = counted;
  spool_size = committed_size = committed;
  return Ok();
}

Status XlsxWorkbookWriter::State::Generate(const std::string& path) {
  S3DB_RETURN_IF_ERROR(WriteSpoolBuffer());

  lxw_workbook_options book_options{};
  book_options.constant_memory = LXW_TRUE;
  book_options.tmpdir = options.staging_dir.data();
  book_options.use_zip64 = spool_size > kZip64Threshold ? LXW_TRUE : LXW_FALSE;
  lxw_workbook* book = workbook_new_opt(path.c_str(), &book_options);
  if (book == nullptr) {
    return MakeError(ErrorCode::kIo, "cannot create the xlsx workbook " + path);
  }

  // Every path below ends in workbook_close, which also frees the workbook.
  Status status = Ok();
  auto fail = [&](Error error) {
    if (status) status = tl::unexpected(std::move(error));
  };

  lxw_format* header_format = workbook_add_format(book);
  format_set_bold(header_format);
  format_set_pattern(header_format, LXW_PATTERN_SOLID);
  format_set_bg_color(header_format, kHeaderFill);
  format_set_bottom(header_format, LXW_BORDER_THIN);
  lxw_format* date_format = workbook_add_format(book);
  format_set_num_format(date_format, kDateFormat);
  lxw_format* integer_format = workbook_add_format(book);
  format_set_num_format(integer_format, kIntegerFormat);

  std::vector<std::vector<lxw_worksheet*>> sheet_parts(sheets.size());
  for (const Part& part : PlanParts()) {
    const Sheet& sheet = sheets[part.sheet];
    lxw_worksheet* worksheet = workbook_add_worksheet(book, part.name.c_str());
    if (worksheet == nullptr) {
      fail(Error(ErrorCode::kInternal,
                 "libxlsxwriter refused the worksheet name '" + part.name + "'"));
      break;
    }
    sheet_parts[part.sheet].push_back(worksheet);
    std::size_t column_count = sheet.columns.size();
    for (std::size_t c = 0; c < column_count; ++c) {
      double width = std::clamp(static_cast<double>(sheet.widths[c]) + 1, kDefaultColumnWidth,
                                options.max_column_width);
      auto column = static_cast<lxw_col_t>(c);
      worksheet_set_column(worksheet, column, column, width, nullptr);
    }
    for (std::size_t c = 0; c < column_count; ++c) {
      lxw_error error = worksheet_write_string(worksheet, 0, static_cast<lxw_col_t>(c),
                                               sheet.headers[c].c_str(), header_format);
      if (error != LXW_NO_ERROR) {
        fail(Error(ErrorCode::kInternal, "cannot write the header of column '" +
                                             sheet.columns[c].name + "': " + LxwError(error)));
      }
    }
    if (options.freeze_headers) worksheet_freeze_panes(worksheet, 1, 0);
    if (options.auto_filter && column_count > 0) {
      worksheet_autofilter(worksheet, 0, 0, static_cast<lxw_row_t>(part.rows),
                           static_cast<lxw_col_t>(column_count - 1));
    }
  }
  if (sheets.empty()) workbook_add_worksheet(book, nullptr);  // a workbook needs a worksheet

  // Stream the spool's rows in the order added, each to its sheet's current part.
  std::vector<std::uint64_t> next_row(sheets.size(), 0);
  std::uint64_t per_part = options.max_rows_per_sheet - 1;
  SpoolReader reader(spool_fd, spool_size);
  std::string cell_text;
  std::string_view record_bytes;
  auto malformed = [&](std::string_view what) {
    fail(Error(ErrorCode::kInternal, "xlsx spool holds a malformed " + std::string(what)));
  };
  while (status && spool_fd >= 0) {
    auto more = reader.Next(record_bytes);
    if (!more) {
      fail(more.error());
      break;
    }
    if (!*more) {
      if (reader.torn()) malformed("end");
      break;
    }
    RecordCursor cursor(record_bytes);
    std::uint8_t kind = 0;
    if (!cursor.Byte(kind)) {
      malformed("record");
      break;
    }
    if (kind != kRecordRow) continue;
    std::uint64_t sheet_number = 0;
    std::uint64_t cell_count = 0;
    if (!cursor.Varint(sheet_number) || sheet_number >= sheets.size() ||
        !cursor.Varint(cell_count)) {
      malformed("row");
      break;
    }
    std::uint64_t index = next_row[sheet_number]++;
    if (index / per_part >= sheet_parts[sheet_number].size()) {
      malformed("row count");
      break;
    }
    lxw_worksheet* worksheet = sheet_parts[sheet_number][index / per_part];
    auto row = static_cast<lxw_row_t>(index % per_part + 1);
    for (std::uint64_t k = 0; k < cell_count && status; ++k) {
      std::uint64_t column = 0;
      std::uint8_t width = 0;
      std::uint8_t tag = 0;
      if (!cursor.Varint(column) || !cursor.Byte(width) || !cursor.Byte(tag)) {
        malformed("cell");
        break;
      }
      auto col = static_cast<lxw_col_t>(column);
      lxw_error error = LXW_NO_ERROR;
      double number = 0;
      std::uint64_t length = 0;
      std::string_view bytes;
      switch (tag) {
        case kTagFalse:
        case kTagTrue:
          error = worksheet_write_boolean(worksheet, row, col, tag == kTagTrue, nullptr);
          break;
        case kTagDouble:
        case kTagInteger:
        case kTagDate:
          if (!cursor.Double(number)) {
            malformed("number");
            break;
          }
          error = worksheet_write_number(worksheet, row, col, number,
                                         tag == kTagDouble ? nullptr
                                         : tag == kTagDate ? date_format
                                                           : integer_format);
          break;
        case kTagText:
          if (!cursor.Varint(length) || !cursor.Bytes(length, bytes)) {
            malformed("text");
            break;
          }
          cell_text.assign(bytes);  // libxlsxwriter wants a NUL-terminated string
          error = worksheet_write_string(worksheet, row, col, cell_text.c_str(), nullptr);
          break;
        default:
          malformed("cell tag");
          break;
      }
      if (error != LXW_NO_ERROR) {
        const Sheet& sheet = sheets[sheet_number];
        fail(Error(ErrorCode::kInternal, "cannot write a cell of column '" +
                                             sheet.columns[column].name + "' of sheet '" +
                                             sheet.name + "': " + LxwError(error)));
      }
    }
  }

  lxw_error closed = workbook_close(book);
  if (closed != LXW_NO_ERROR) {
    fail(Error(ErrorCode::kIo, "cannot write the xlsx workbook " + path + ": " + LxwError(closed)));
  }
  return status;
}

Result<std::unique_ptr<XlsxWorkbookWriter>> XlsxWorkbookWriter::Open(
    XlsxOptions options, std::unique_ptr<ByteSink> sink) {
  S3DB_RETURN_IF_ERROR(ValidateXlsxOptions(options));
  if (sink == nullptr) return MakeError(ErrorCode::kInvalidArgument, "xlsx writer: no sink");
  if (options.staging_dir.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    options.staging_dir = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
  }
  std::error_code error;
  if (!std::filesystem::is_directory(options.staging_dir, error)) {
    return MakeError(ErrorCode::kIo, "xlsx staging folder '" + options.staging_dir +
                                         "' does not exist or is not a folder");
  }
  auto state = std::make_unique<State>();
  state->options = std::move(options);
  state->sink = std::move(sink);
  if (state->NamedSpool() && std::filesystem::exists(state->options.spool_path, error)) {
    auto resumed = state->Resume();
    if (!resumed) {
      state->sink->Abandon();
      return tl::unexpected(resumed.error());
    }
  }
  return std::unique_ptr<XlsxWorkbookWriter>(new XlsxWorkbookWriter(std::move(state)));
}

XlsxWorkbookWriter::XlsxWorkbookWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

XlsxWorkbookWriter::~XlsxWorkbookWriter() {
  if (!state_->finished) Abandon();
}

Status XlsxWorkbookWriter::CheckUsable() const {
  S3DB_RETURN_IF_ERROR(state_->sticky.Check());
  if (state_->finished) return MakeError(ErrorCode::kInternal, "xlsx writer is finished");
  if (state_->abandoned) return MakeError(ErrorCode::kInternal, "xlsx writer was abandoned");
  return Ok();
}

Status XlsxWorkbookWriter::AddSheet(std::string_view sheet, ColumnSet columns) {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  State& s = *state_;
  if (!IsValidUtf8(sheet)) {
    return MakeError(ErrorCode::kInvalidArgument, "an xlsx sheet name is not valid UTF-8");
  }
  std::string key(sheet);
  if (s.sheet_index.count(key) > 0) {
    return MakeError(ErrorCode::kAlreadyExists, "xlsx sheet '" + key + "' was already added");
  }
  if (columns.size() > kXlsxMaxColumns) {
    return MakeError(ErrorCode::kInvalidArgument, "xlsx sheet '" + key + "' has " +
                                                      std::to_string(columns.size()) +
                                                      " columns; a worksheet holds at most 16,384");
  }
  for (const ColumnSpec& column : columns.columns()) {
    if (!IsValidUtf8(column.name)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "a column name of xlsx sheet '" + key + "' is not valid UTF-8");
    }
  }

  s.record.clear();
  PutVarint(key.size(), s.record);
  s.record.append(key);
  PutVarint(columns.size(), s.record);
  for (const ColumnSpec& column : columns.columns()) {
    PutVarint(column.name.size(), s.record);
    s.record.append(column.name);
    s.record.push_back(static_cast<char>(column.type));
  }
  s.AppendRecord(kRecordSheet, s.record);
  s.MakeSheet(key, std::move(columns));
  s.dirty = true;
  return Ok();
}

bool XlsxWorkbookWriter::HasSheet(std::string_view sheet) const {
  return state_->sheet_index.count(std::string(sheet)) > 0;
}

Status XlsxWorkbookWriter::Add(std::string_view sheet, const JsonObject& row) {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  State& s = *state_;
  auto found = s.sheet_index.find(std::string(sheet));
  if (found == s.sheet_index.end()) {
    return MakeError(ErrorCode::kNotFound,
                     "xlsx sheet '" + std::string(sheet) + "' was not added (call AddSheet)");
  }
  std::size_t sheet_number = found->second;
  State::Sheet& target = s.sheets[sheet_number];

  // Check the whole row before changing anything.
  std::size_t new_columns = 0;
  for (const auto& field : row) {
    std::string_view key(field.key().data(), field.key().size());
    if (!IsValidUtf8(key)) {
      return MakeError(ErrorCode::kInvalidArgument, "a field name is not valid UTF-8");
    }
    S3DB_RETURN_IF_ERROR(CheckExportable(field.value(), key));
    if (!target.columns.IndexOf(key)) {
      if (target.columns.size() + ++new_columns > kXlsxMaxColumns) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "column '" + std::string(key) + "' would be column 16,385 of sheet '" +
                             target.name + "'; a worksheet holds at most 16,384");
      }
    }
  }

  std::size_t old_size = target.columns.size();
  target.columns.AddFieldsOf(row);
  for (std::size_t c = old_size; c < target.columns.size(); ++c) {
    s.AddHeader(target, c);
    const std::string& name = target.columns[c].name;
    s.record.clear();
    PutVarint(sheet_number, s.record);
    PutVarint(name.size(), s.record);
    s.record.append(name);
    s.AppendRecord(kRecordColumn, s.record);
  }

  target.columns.Lookup(row, s.cells);
  s.record.clear();
  std::uint64_t present = 0;
  for (std::size_t c = 0; c < s.cells.size(); ++c) {
    if (s.cells[c] == nullptr) continue;
    std::size_t before = s.record.size();
    s.EncodeCell(target, c, *s.cells[c]);
    if (s.record.size() != before) ++present;
  }
  std::string head;
  PutVarint(sheet_number, head);
  PutVarint(present, head);
  s.AppendRecord(kRecordRow, head + s.record);
  ++target.rows;
  s.dirty = true;

  if (s.spool_buffer.size() >= kSpoolBufferBytes) {
    S3DB_RETURN_IF_ERROR(s.sticky.Keep(s.WriteSpoolBuffer()));
  }
  return Ok();
}

Status XlsxWorkbookWriter::Publish(bool close) {
  State& s = *state_;
  if (s.dirty) {
    std::string path = s.options.staging_dir + "/.s3db-xlsx-book-XXXXXX.xlsx";
    int fd = ::mkstemps(path.data(), 5);
    if (fd < 0) {
      return tl::unexpected(
          IoError("cannot create a scratch workbook in " + s.options.staging_dir));
    }
    ::close(fd);
    RemoveOnExit remove(path);
    S3DB_RETURN_IF_ERROR(s.Generate(path));

    int book = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (book < 0) return tl::unexpected(IoError("cannot read the scratch workbook " + path));
    S3DB_RETURN_IF_ERROR(s.sink->Reset().map_error([&](Error error) {
      ::close(book);
      return error;
    }));
    std::string chunk(kSpoolReadBytes, '\0');
    std::uint64_t total = 0;
    Status copied = Ok();
    while (copied) {
      ssize_t got = ::read(book, chunk.data(), chunk.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        copied = tl::unexpected(IoError("cannot read the scratch workbook " + path));
        break;
      }
      if (got == 0) break;
      copied = s.sink->Append(std::string_view(chunk.data(), static_cast<std::size_t>(got)));
      total += static_cast<std::uint64_t>(got);
    }
    ::close(book);
    S3DB_RETURN_IF_ERROR(copied);
    s.bytes_written = total;
  } else if (!close) {
    return Ok();  // the published workbook already holds every row
  }
  S3DB_RETURN_IF_ERROR(close ? s.sink->Close({}) : s.sink->Sync({}));
  s.dirty = false;
  return close ? Ok() : s.Commit();
}

Status XlsxWorkbookWriter::Flush() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  return state_->sticky.Keep(Publish(false));
}

Status XlsxWorkbookWriter::Finish() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  S3DB_RETURN_IF_ERROR(state_->sticky.Keep(Publish(true)));
  state_->finished = true;
  if (state_->spool_fd >= 0) ::close(state_->spool_fd);
  state_->spool_fd = -1;
  if (state_->NamedSpool()) ::unlink(state_->options.spool_path.c_str());
  state_->CloseSpool();
  return Ok();
}

void XlsxWorkbookWriter::Abandon() {
  if (state_->abandoned || state_->finished) return;
  state_->abandoned = true;
  state_->CloseSpool();
  state_->sink->Abandon();
}

std::uint64_t XlsxWorkbookWriter::truncated_cells() const { return state_->truncated; }
std::uint64_t XlsxWorkbookWriter::BytesWritten() const { return state_->bytes_written; }
std::uint64_t XlsxWorkbookWriter::SpooledBytes() const {
  return state_->spool_size + state_->spool_buffer.size();
}

std::uint64_t XlsxWorkbookWriter::RowCount(std::string_view sheet) const {
  auto found = state_->sheet_index.find(std::string(sheet));
  return found == state_->sheet_index.end() ? 0 : state_->sheets[found->second].rows;
}

const ColumnSet* XlsxWorkbookWriter::Columns(std::string_view sheet) const {
  auto found = state_->sheet_index.find(std::string(sheet));
  return found == state_->sheet_index.end() ? nullptr : &state_->sheets[found->second].columns;
}

std::vector<std::string> XlsxWorkbookWriter::WorksheetNames() const {
  std::vector<std::string> names;
  for (auto& part : state_->PlanParts()) names.push_back(std::move(part.name));
  if (names.empty()) names.emplace_back("Sheet1");
  return names;
}

// ---- the single-sheet RecordWriter -------------------------------------------------------

Result<std::unique_ptr<XlsxWriter>> XlsxWriter::Make(ColumnSet columns, XlsxOptions options,
                                                     std::unique_ptr<ByteSink> sink,
                                                     std::string sheet_name) {
  S3DB_ASSIGN_OR_RETURN(auto workbook,
                        XlsxWorkbookWriter::Open(std::move(options), std::move(sink)));
  S3DB_RETURN_IF_ERROR(workbook->AddSheet(sheet_name, std::move(columns)));
  return std::unique_ptr<XlsxWriter>(new XlsxWriter(std::move(workbook), std::move(sheet_name)));
}

XlsxWriter::XlsxWriter(std::unique_ptr<XlsxWorkbookWriter> workbook, std::string sheet)
    : workbook_(std::move(workbook)), sheet_(std::move(sheet)) {}

Status XlsxWriter::Add(const JsonObject& row) { return workbook_->Add(sheet_, row); }
Status XlsxWriter::Flush() { return workbook_->Flush(); }
Status XlsxWriter::Finish() { return workbook_->Finish(); }
void XlsxWriter::Abandon() { workbook_->Abandon(); }
std::uint64_t XlsxWriter::BytesWritten() const { return workbook_->BytesWritten(); }

}  // namespace s3db::formats
