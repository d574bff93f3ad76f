// Excel writer tests. Workbooks are read back by exceljs (npm) through
// tests/formats/read_xlsx.mjs, and converted to CSV by LibreOffice (soffice --headless) to
// check that it opens them with the same values.
#include "formats/xlsx_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/byte_sink.h"
#include "formats/json_text.h"
#include "formats/record_writers.h"
#include "formats_test_util.h"
#include "test_util.h"

namespace s3db::formats {
namespace {

using testing::ParquetReaders;
using testing::ReadFileBytes;
using testing::RunReader;
using testing::ShellQuote;
using testing::TempFolder;

// exceljs is found like the Parquet readers: $S3DB_PEERS_DIR/node_modules, else
// scripts/peers/node_modules.
std::optional<ParquetReaders> FindXlsxReader(std::string& why_not) {
  return testing::FindReaderScript({"exceljs", "jszip"}, "read_xlsx.mjs", why_not);
}

// Skips the test when node or exceljs is missing, except under CI=true where it fails.
#define S3DB_REQUIRE_XLSX_READER(reader)                                     \
  std::string reader##_why_not;                                              \
  auto reader##_found = FindXlsxReader(reader##_why_not);                    \
  if (!reader##_found) {                                                     \
    if (::s3db::formats::testing::RunningInCi()) FAIL() << reader##_why_not; \
    GTEST_SKIP() << reader##_why_not;                                        \
  }                                                                          \
  const ParquetReaders& reader = *reader##_found

// Skips the test when LibreOffice (soffice) is missing, except under CI=true where it fails.
#define S3DB_REQUIRE_SOFFICE()                                                            \
  do {                                                                                    \
    if (std::system("command -v soffice >/dev/null 2>&1") != 0) {                         \
      if (::s3db::formats::testing::RunningInCi()) FAIL() << "soffice is not installed";  \
      GTEST_SKIP() << "soffice is not installed (Debian package libreoffice-calc-nogui)"; \
    }                                                                                     \
  } while (0)

ColumnSet Columns(std::vector<ColumnSpec> declared) {
  auto columns = ColumnSet::Make(std::move(declared));
  EXPECT_TRUE(columns);
  return columns ? std::move(*columns) : ColumnSet();
}

JsonObject Row(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed) << json;
  return parsed ? *parsed : JsonObject();
}

// A workbook at `path` published at every Flush, staging in `folder`.
std::unique_ptr<XlsxWorkbookWriter> OpenBook(const TempFolder& folder, const std::string& path,
                                             XlsxOptions options = {}) {
  options.staging_dir = folder.path();
  FileSinkOptions sink_options;
  sink_options.publish_on_sync = true;
  auto sink = FileByteSink::Open(path, sink_options);
  EXPECT_TRUE(sink) << sink.error().message;
  if (!sink) return nullptr;
  auto book = XlsxWorkbookWriter::Open(std::move(options), std::move(*sink));
  EXPECT_TRUE(book) << book.error().message;
  return book ? std::move(*book) : nullptr;
}

// A workbook kept in memory, staging in `folder`.
std::unique_ptr<XlsxWorkbookWriter> MemoryBook(const TempFolder& folder, XlsxOptions options = {}) {
  options.staging_dir = folder.path();
  auto book = XlsxWorkbookWriter::Open(std::move(options), std::make_unique<MemoryByteSink>());
  EXPECT_TRUE(book) << book.error().message;
  return book ? std::move(*book) : nullptr;
}

// The reader's description of every worksheet, or an empty array (and a failure).
JsonArray ReadSheets(const ParquetReaders& reader, const std::string& file) {
  Json result = RunReader(reader, "rows", file);
  if (!result.is_object()) return JsonArray();
  EXPECT_EQ(result.at("formulas").to_number<std::int64_t>(), 0) << "a cell became a formula";
  EXPECT_FALSE(result.at("sharedStrings").as_bool());
  return result.at("sheets").as_array();
}

const Json& CellAt(const JsonArray& sheets, std::size_t sheet, std::size_t row,
                   std::size_t column) {
  static const Json kMissing = "missing";
  if (sheet >= sheets.size()) return kMissing;
  const JsonArray& rows = sheets[sheet].at("rows").as_array();
  if (row >= rows.size() || column >= rows[row].as_array().size()) return kMissing;
  return rows[row].as_array()[column];
}

std::string Describe(const Json& cell) { return JsonText(cell); }

void ExpectText(const Json& cell, std::string_view text) {
  ASSERT_TRUE(cell.is_object()) << Describe(cell);
  EXPECT_EQ(cell.at("t").as_string(), "s") << Describe(cell);
  EXPECT_EQ(std::string_view(cell.at("v").as_string()), text) << Describe(cell);
}

void ExpectNumber(const Json& cell, double number) {
  ASSERT_TRUE(cell.is_object()) << Describe(cell);
  EXPECT_EQ(cell.at("t").as_string(), "n") << Describe(cell);
  EXPECT_EQ(cell.at("v").to_number<double>(), number) << Describe(cell);
}

void ExpectBoolean(const Json& cell, bool value) {
  ASSERT_TRUE(cell.is_object()) << Describe(cell);
  EXPECT_EQ(cell.at("t").as_string(), "b") << Describe(cell);
  EXPECT_EQ(cell.at("v").as_bool(), value) << Describe(cell);
}

void ExpectDate(const Json& cell, std::string_view iso) {
  ASSERT_TRUE(cell.is_object()) << Describe(cell);
  EXPECT_EQ(cell.at("t").as_string(), "d") << Describe(cell);
  EXPECT_EQ(std::string_view(cell.at("v").as_string()), iso) << Describe(cell);
  EXPECT_EQ(std::string_view(cell.at("fmt").as_string()), "yyyy-mm-dd hh:mm:ss.000");
}

void ExpectEmpty(const Json& cell) { EXPECT_TRUE(cell.is_null()) << Describe(cell); }

std::vector<std::string> HeaderValues(const Json& sheet) {
  std::vector<std::string> names;
  for (const Json& cell : sheet.at("header").as_array()) {
    names.emplace_back(cell.at("value").is_string() ? cell.at("value").as_string().c_str() : "");
  }
  return names;
}

std::size_t Utf16Units(std::string_view text) {
  std::size_t units = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) units += c >= 0xF0 ? 2 : 1;
  }
  return units;
}

// ---- the values every round trip uses ------------------------------------------------

constexpr std::string_view kEmoji =
    "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD";                     // 😀👍🏽
constexpr std::string_view kCombining = "e\xCC\x81le\xCC\x80ve n\xCC\x83";  // e + acute ...

std::string ControlText() {
  std::string text = "a";
  text.push_back('\0');
  text += "b\x01\x07\x1F|tab\there|cr\rlf\n|crlf\r\n|del\x7F";
  return text;
}

ColumnSet EveryTypeColumns() {
  return Columns({{"id", ColumnType::kString},
                  {"age", ColumnType::kInteger},
                  {"score", ColumnType::kNumber},
                  {"active", ColumnType::kBoolean},
                  {"born", ColumnType::kDatetime},
                  {"tags", ColumnType::kArray},
                  {"profile", ColumnType::kJson}});
}

std::vector<JsonObject> EveryTypeRows() {
  std::vector<JsonObject> rows;
  rows.push_back(Row(R"json({"id":"u1","age":42,"score":1.5,"active":true,
      "born":"2025-10-20T12:34:56.789Z","tags":["a","b"],"profile":{"x":1,"y":[true,null]},
      "big":1152921504606846977,"huge":18446744073709551615,"negative":-9007199254740993,
      "exact":9007199254740992,"fifteen":-999999999999999,"formula":"=1+1","plus":"+1",
      "at":"@SUM(A1)","minus":"-2",
      "quote":"say \"hi\", ok","lines":"one\ntwo\nthree","tiny":1e-300,"neg_zero":-0.0,
      "empty":"","nothing":null,"escape_like":"_x0041_ and _x005f_"})json"));
  JsonObject unicode;
  unicode["id"] = "u2";
  unicode["age"] = -7;
  unicode["score"] = 0.1;
  unicode["active"] = false;
  unicode["born"] = "2025-10-20T14:00:00+02:00";
  unicode["emoji"] = kEmoji;
  unicode["combining"] = kCombining;
  unicode["control"] = ControlText();
  unicode["cjk"] = "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E";
  rows.push_back(std::move(unicode));
  rows.push_back(Row(R"({"id":"u3","born":"2024-02-29","tags":[],"profile":{}})"));
  rows.push_back(Row(R"({"id":"u4","born":"1850-01-01T00:00:00Z","age":null})"));
  rows.push_back(Row(R"({"id":"u5","born":"not a date","score":1e300})"));
  return rows;
}

// Expected exceljs cells for EveryTypeRows, by column name.
void ExpectEveryTypeSheet(const JsonArray& sheets, std::size_t s) {
  ASSERT_LT(s, sheets.size());
  const Json& sheet = sheets[s];
  std::vector<std::string> header = HeaderValues(sheet);
  std::vector<std::string> expected_header = {
      "id",      "age",         "score",    "active",    "born",    "tags",     "profile",
      "big",     "huge",        "negative", "exact",     "fifteen", "formula",  "plus",
      "at",      "minus",       "quote",    "lines",     "tiny",    "neg_zero", "empty",
      "nothing", "escape_like", "emoji",    "combining", "control", "cjk"};
  ASSERT_EQ(header, expected_header);
  auto col = [&](std::string_view name) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return i;
    }
    ADD_FAILURE() << "no column " << name;
    return std::size_t{0};
  };
  auto cell = [&](std::size_t row, std::string_view name) -> const Json& {
    return CellAt(sheets, s, row, col(name));
  };
  ASSERT_EQ(sheet.at("rows").as_array().size(), 5u);

  ExpectText(cell(0, "id"), "u1");
  ExpectNumber(cell(0, "age"), 42);
  EXPECT_EQ(std::string_view(cell(0, "age").at("fmt").as_string()), "0");
  ExpectNumber(cell(0, "score"), 1.5);
  ExpectBoolean(cell(0, "active"), true);
  ExpectDate(cell(0, "born"), "2025-10-20T12:34:56.789Z");
  ExpectText(cell(0, "tags"), R"(["a","b"])");
  ExpectText(cell(0, "profile"), R"({"x":1,"y":[true,null]})");
  ExpectText(cell(0, "big"), "1152921504606846977");
  ExpectText(cell(0, "huge"), "18446744073709551615");
  ExpectText(cell(0, "negative"), "-9007199254740993");
  ExpectText(cell(0, "exact"), "9007199254740992");  // Excel would show 9007199254740990
  ExpectNumber(cell(0, "fifteen"), -999999999999999.0);
  ExpectText(cell(0, "formula"), "=1+1");
  ExpectText(cell(0, "plus"), "+1");
  ExpectText(cell(0, "at"), "@SUM(A1)");
  ExpectText(cell(0, "minus"), "-2");
  ExpectText(cell(0, "quote"), "say \"hi\", ok");
  ExpectText(cell(0, "lines"), "one\ntwo\nthree");
  ExpectNumber(cell(0, "tiny"), 1e-300);
  ExpectNumber(cell(0, "neg_zero"), 0.0);
  ExpectEmpty(cell(0, "empty"));
  ExpectEmpty(cell(0, "nothing"));
  ExpectText(cell(0, "escape_like"), "_x0041_ and _x005f_");
  ExpectEmpty(cell(0, "emoji"));

  ExpectText(cell(1, "id"), "u2");
  ExpectNumber(cell(1, "age"), -7);
  ExpectNumber(cell(1, "score"), 0.1);
  ExpectBoolean(cell(1, "active"), false);
  ExpectDate(cell(1, "born"), "2025-10-20T12:00:00.000Z");
  ExpectText(cell(1, "emoji"), kEmoji);
  ExpectText(cell(1, "combining"), kCombining);
  ExpectText(cell(1, "control"), ControlText());
  ExpectText(cell(1, "cjk"), "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
  ExpectEmpty(cell(1, "tags"));
  ExpectEmpty(cell(1, "big"));

  ExpectDate(cell(2, "born"), "2024-02-29T00:00:00.000Z");
  ExpectText(cell(2, "tags"), "[]");
  ExpectText(cell(2, "profile"), "{}");
  ExpectEmpty(cell(2, "age"));

  ExpectText(cell(3, "born"), "1850-01-01T00:00:00Z");  // before Excel's calendar: text
  ExpectEmpty(cell(3, "age"));

  ExpectText(cell(4, "born"), "not a date");
  ExpectNumber(cell(4, "score"), 1e300);
}

// ---- options and names ---------------------------------------------------------------

TEST(XlsxOptions, DefaultsAreExcelLimits) {
  XlsxOptions options;
  EXPECT_EQ(options.max_rows_per_sheet, 1048576u);
  EXPECT_EQ(options.max_cell_chars, 32767u);
  EXPECT_TRUE(options.freeze_headers);
  EXPECT_TRUE(options.auto_filter);
  S3DB_EXPECT_OK(ValidateXlsxOptions(options));

  options.max_rows_per_sheet = 1048577;
  S3DB_EXPECT_ERROR(ValidateXlsxOptions(options), ErrorCode::kInvalidArgument);
  options.max_rows_per_sheet = 1;
  S3DB_EXPECT_ERROR(ValidateXlsxOptions(options), ErrorCode::kInvalidArgument);
  options = {};
  options.max_cell_chars = 32768;
  S3DB_EXPECT_ERROR(ValidateXlsxOptions(options), ErrorCode::kInvalidArgument);
}

TEST(XlsxOptions, FromJsonReadsItsKeysAndNamesBadOnes) {
  auto options = XlsxOptionsFromJson(Row(R"({"freezeHeaders":false,"autoFilter":false,
                                              "filename":"x.xlsx","other":3})"));
  S3DB_ASSERT_OK(options);
  EXPECT_FALSE(options->freeze_headers);
  EXPECT_FALSE(options->auto_filter);

  auto bad = XlsxOptionsFromJson(Row(R"({"autoFilter":"yes"})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message.find("autoFilter"), std::string::npos) << bad.error().message;
  auto bad_freeze = XlsxOptionsFromJson(Row(R"({"freezeHeaders":1})"));
  ASSERT_FALSE(bad_freeze);
  EXPECT_NE(bad_freeze.error().message.find("freezeHeaders"), std::string::npos);
}

TEST(XlsxSheetNames, FollowExcelRules) {
  EXPECT_EQ(SanitizeSheetName("users"), "users");
  EXPECT_EQ(SanitizeSheetName("a[b]c:d*e?f/g\\h"), "a_b_c_d_e_f_g_h");
  EXPECT_EQ(SanitizeSheetName(""), "Sheet");
  EXPECT_EQ(SanitizeSheetName("'quoted'"), "_quoted_");
  EXPECT_EQ(SanitizeSheetName("History"), "History_");
  EXPECT_EQ(SanitizeSheetName("tab\there"), "tab_here");
  EXPECT_EQ(SanitizeSheetName(std::string(40, 'x')), std::string(31, 'x'));
  // 16 emoji are 32 UTF-16 units: only 15 fit.
  std::string emoji;
  for (int i = 0; i < 16; ++i) emoji += "\xF0\x9F\x98\x80";
  EXPECT_EQ(SanitizeSheetName(emoji), emoji.substr(0, 15 * 4));
}

TEST(XlsxWorkbookWriter, SheetNamesAreUniqueAndContinuationsDoNotCollide) {
  TempFolder folder;
  XlsxOptions options;
  options.max_rows_per_sheet = 3;  // header + 2 rows
  auto book = MemoryBook(folder, options);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("a/b", ColumnSet()));
  S3DB_ASSERT_OK(book->AddSheet("A_B", ColumnSet()));
  S3DB_ASSERT_OK(book->AddSheet("a_b (3)", ColumnSet()));
  S3DB_EXPECT_ERROR(book->AddSheet("a/b", ColumnSet()), ErrorCode::kAlreadyExists);
  S3DB_EXPECT_ERROR(book->Add("nope", Row(R"({"x":1})")), ErrorCode::kNotFound);
  for (int i = 0; i < 5; ++i) S3DB_ASSERT_OK(book->Add("a/b", Row(R"({"x":1})")));
  std::vector<std::string> expected = {"a_b", "a_b (4)", "a_b (5)", "A_B (2)", "a_b (3)"};
  EXPECT_EQ(book->WorksheetNames(), expected);
  EXPECT_EQ(book->RowCount("a/b"), 5u);
  std::string long_name(40, 'n');
  S3DB_ASSERT_OK(book->AddSheet(long_name, ColumnSet()));
  S3DB_ASSERT_OK(book->AddSheet(long_name + "2", ColumnSet()));
  auto names = book->WorksheetNames();
  EXPECT_EQ(names[names.size() - 2], std::string(31, 'n'));
  EXPECT_EQ(names.back(), std::string(27, 'n') + " (2)");
  S3DB_EXPECT_OK(book->Flush());
}

// ---- round trips through exceljs -----------------------------------------------------

TEST(XlsxWorkbookWriter, EveryTypeRoundTripsThroughExceljs) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("types.xlsx");
  auto book = OpenBook(folder, path);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("users", EveryTypeColumns()));
  for (const JsonObject& row : EveryTypeRows()) S3DB_ASSERT_OK(book->Add("users", row));
  S3DB_ASSERT_OK(book->Finish());
  EXPECT_EQ(book->truncated_cells(), 0u);

  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  EXPECT_EQ(sheets[0].at("name").as_string(), "users");
  ExpectEveryTypeSheet(sheets, 0);

  // Header: bold, filled; frozen; autofilter over header + data.
  for (const Json& cell : sheets[0].at("header").as_array()) {
    EXPECT_TRUE(cell.at("bold").as_bool()) << JsonText(cell);
    EXPECT_EQ(cell.at("fill"), Json("FFD9E1F2")) << JsonText(cell);
  }
  const JsonArray& views = sheets[0].at("views").as_array();
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].at("state").as_string(), "frozen");
  EXPECT_EQ(views[0].at("ySplit").to_number<int>(), 1);
  EXPECT_EQ(sheets[0].at("autoFilter"), Json("A1:AA6"));

  // Widths follow content, between 8.43 and 60.
  const JsonArray& widths = sheets[0].at("widths").as_array();
  ASSERT_EQ(widths.size(), 27u);
  for (const Json& width : widths) {
    EXPECT_GE(width.to_number<double>(), 8.43);
    EXPECT_LE(width.to_number<double>(), 60);
  }
  // libxlsxwriter stores a width with Excel's cell padding: 8.43 becomes 9.14.
  EXPECT_LT(widths[0].to_number<double>(), 9.5);  // "id", "u1"...
  EXPECT_GE(widths[4].to_number<double>(), 23);   // a date with milliseconds
}

TEST(XlsxWorkbookWriter, OptionsTurnFreezeAndFilterOff) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("plain.xlsx");
  XlsxOptions options;
  options.freeze_headers = false;
  options.auto_filter = false;
  auto book = OpenBook(folder, path, options);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("s", ColumnSet()));
  S3DB_ASSERT_OK(book->Add("s", Row(R"({"a":1,"b":"x"})")));
  S3DB_ASSERT_OK(book->Finish());
  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  EXPECT_TRUE(sheets[0].at("autoFilter").is_null()) << JsonText(sheets[0]);
  for (const Json& view : sheets[0].at("views").as_array()) {
    EXPECT_NE(view.at("state"), Json("frozen"));
  }
  ExpectNumber(CellAt(sheets, 0, 0, 0), 1);
  ExpectText(CellAt(sheets, 0, 0, 1), "x");
}

TEST(XlsxWorkbookWriter, LongTextIsTruncatedWithAMarkerAndCounted) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("long.xlsx");
  auto book = OpenBook(folder, path);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("s", ColumnSet()));

  std::string exact(32767, 'e');  // fits exactly
  std::string ascii(40000, 'a');  // cut
  std::string emoji;              // 20,000 x 2 UTF-16 units: cut
  for (int i = 0; i < 20000; ++i) emoji += "\xF0\x9F\x98\x80";
  std::string controls(10000, '\x01');  // each stored as _x0001_: cut
  std::string long_name(33000, 'c');    // a column name: cut too
  JsonObject row;
  row["exact"] = exact;
  row["ascii"] = ascii;
  row["emoji"] = emoji;
  row["controls"] = controls;
  row[long_name] = "v";
  S3DB_ASSERT_OK(book->Add("s", row));
  EXPECT_EQ(book->truncated_cells(), 4u);
  S3DB_ASSERT_OK(book->Finish());

  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  std::string marker(kXlsxTruncationMarker);
  ExpectText(CellAt(sheets, 0, 0, 0), exact);
  ExpectText(CellAt(sheets, 0, 0, 1), std::string(32767 - 12, 'a') + marker);
  std::string emoji_cut;
  for (int i = 0; i < (32767 - 12) / 2; ++i) emoji_cut += "\xF0\x9F\x98\x80";
  ExpectText(CellAt(sheets, 0, 0, 2), emoji_cut + marker);
  ExpectText(CellAt(sheets, 0, 0, 3), std::string((32767 - 12) / 7, '\x01') + marker);
  std::vector<std::string> header = HeaderValues(sheets[0]);
  ASSERT_EQ(header.size(), 5u);
  EXPECT_EQ(header[4], std::string(32767 - 12, 'c') + marker);
  for (std::size_t c = 0; c < 4; ++c) {
    const Json& cell = CellAt(sheets, 0, 0, c);
    if (cell.is_object()) EXPECT_LE(Utf16Units(cell.at("v").as_string()), 32767u);
  }
}

TEST(XlsxWorkbookWriter, ThousandsOfColumns) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("wide.xlsx");
  auto book = OpenBook(folder, path);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("wide", ColumnSet()));
  constexpr int kColumns = 1200;
  for (int r = 0; r < 3; ++r) {
    JsonObject row;
    for (int c = 0; c < kColumns; ++c) {
      if ((c + r) % 3 == 0) continue;  // sparse: some cells missing
      if (c % 2 == 0) {
        row["c" + std::to_string(c)] = r * 10000 + c;
      } else {
        row["c" + std::to_string(c)] = "r" + std::to_string(r) + "c" + std::to_string(c);
      }
    }
    S3DB_ASSERT_OK(book->Add("wide", row));
  }
  S3DB_ASSERT_OK(book->Finish());

  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  std::vector<std::string> header = HeaderValues(sheets[0]);
  ASSERT_EQ(header.size(), static_cast<std::size_t>(kColumns));
  // Columns in first-seen order: row 0 skips c0, c3, ...; row 1 adds them.
  std::map<std::string, std::size_t> position;
  for (std::size_t i = 0; i < header.size(); ++i) position[header[i]] = i;
  ASSERT_EQ(position.size(), static_cast<std::size_t>(kColumns));
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < kColumns; ++c) {
      const Json& cell = CellAt(sheets, 0, r, position["c" + std::to_string(c)]);
      if ((c + r) % 3 == 0) {
        ExpectEmpty(cell);
      } else if (c % 2 == 0) {
        ExpectNumber(cell, r * 10000 + c);
      } else {
        ExpectText(cell, "r" + std::to_string(r) + "c" + std::to_string(c));
      }
    }
  }
  EXPECT_EQ(sheets[0].at("autoFilter"), Json("A1:ATD4"));
}

TEST(XlsxWorkbookWriter, TwoSheetsInOneWorkbook) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("two.xlsx");
  auto book = OpenBook(folder, path);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("users", EveryTypeColumns()));
  S3DB_ASSERT_OK(book->AddSheet(
      "orders", Columns({{"order", ColumnType::kString}, {"total", ColumnType::kNumber}})));
  std::vector<JsonObject> rows = EveryTypeRows();
  // Interleave the sheets' rows.
  for (std::size_t i = 0; i < rows.size(); ++i) {
    S3DB_ASSERT_OK(book->Add("users", rows[i]));
    JsonObject order;
    order["order"] = "o" + std::to_string(i);
    order["total"] = 10.25 * static_cast<double>(i);
    S3DB_ASSERT_OK(book->Add("orders", order));
  }
  S3DB_ASSERT_OK(book->Finish());

  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 2u);
  EXPECT_EQ(sheets[0].at("name").as_string(), "users");
  EXPECT_EQ(sheets[1].at("name").as_string(), "orders");
  ExpectEveryTypeSheet(sheets, 0);
  EXPECT_EQ(HeaderValues(sheets[1]), (std::vector<std::string>{"order", "total"}));
  ASSERT_EQ(sheets[1].at("rows").as_array().size(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ExpectText(CellAt(sheets, 1, i, 0), "o" + std::to_string(i));
    if (i == 0) {
      ExpectNumber(CellAt(sheets, 1, i, 1), 0);
    } else {
      ExpectNumber(CellAt(sheets, 1, i, 1), 10.25 * static_cast<double>(i));
    }
  }
}

TEST(XlsxWorkbookWriter, RowsPastTheLimitContinueOnNewSheets) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("overflow.xlsx");
  XlsxOptions options;
  options.max_rows_per_sheet = 4;  // header + 3 rows
  auto book = OpenBook(folder, path, options);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("events", Columns({{"n", ColumnType::kInteger}})));
  S3DB_ASSERT_OK(book->AddSheet("other", ColumnSet()));
  for (int n = 0; n < 10; ++n) {
    JsonObject row;
    row["n"] = n;
    if (n == 7) row["late"] = "new column";
    S3DB_ASSERT_OK(book->Add("events", row));
  }
  S3DB_ASSERT_OK(book->Add("other", Row(R"({"x":"only"})")));
  S3DB_ASSERT_OK(book->Finish());

  JsonArray sheets = ReadSheets(reader, path);
  std::vector<std::string> names;
  for (const Json& sheet : sheets) names.emplace_back(sheet.at("name").as_string().c_str());
  EXPECT_EQ(names, (std::vector<std::string>{"events", "events (2)", "events (3)", "events (4)",
                                             "other"}));
  ASSERT_EQ(sheets.size(), 5u);
  int n = 0;
  for (std::size_t s = 0; s < 4; ++s) {
    // Every part has the header with every column, and its own filter and frozen header.
    EXPECT_EQ(HeaderValues(sheets[s]), (std::vector<std::string>{"n", "late"}));
    EXPECT_EQ(sheets[s].at("views").as_array().at(0).at("state"), Json("frozen"));
    const JsonArray& rows = sheets[s].at("rows").as_array();
    ASSERT_EQ(rows.size(), s < 3 ? 3u : 1u);
    EXPECT_EQ(sheets[s].at("autoFilter"), Json(s < 3 ? "A1:B4" : "A1:B2"));
    for (std::size_t r = 0; r < rows.size(); ++r, ++n) {
      ExpectNumber(CellAt(sheets, s, r, 0), n);
      if (n == 7) {
        ExpectText(CellAt(sheets, s, r, 1), "new column");
      } else {
        ExpectEmpty(CellAt(sheets, s, r, 1));
      }
    }
  }
  EXPECT_EQ(n, 10);
  ExpectText(CellAt(sheets, 4, 0, 0), "only");
}

TEST(XlsxWorkbookWriter, TheDefaultLimitIsExcelsRowCount) {
  TempFolder folder;
  auto book = MemoryBook(folder);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("big", ColumnSet()));
  JsonObject row;
  row["n"] = 1;
  // 1,048,575 data rows + the header fill the first worksheet exactly.
  for (std::uint32_t i = 0; i < kXlsxMaxRows - 1; ++i) S3DB_ASSERT_OK(book->Add("big", row));
  EXPECT_EQ(book->WorksheetNames(), std::vector<std::string>{"big"});
  S3DB_ASSERT_OK(book->Add("big", row));
  EXPECT_EQ(book->WorksheetNames(), (std::vector<std::string>{"big", "big (2)"}));
  book->Abandon();
}

TEST(XlsxWorkbookWriter, EveryFlushPublishesACompleteWorkbook) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("flushes.xlsx");
  auto book = OpenBook(folder, path);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("s", Columns({{"n", ColumnType::kInteger}})));
  S3DB_ASSERT_OK(book->Add("s", Row(R"({"n":1})")));
  S3DB_ASSERT_OK(book->Add("s", Row(R"({"n":2})")));
  S3DB_ASSERT_OK(book->Flush());
  std::string first = ReadFileBytes(path);
  {
    JsonArray sheets = ReadSheets(reader, path);
    ASSERT_EQ(sheets.size(), 1u);
    ASSERT_EQ(sheets[0].at("rows").as_array().size(), 2u);
    ExpectNumber(CellAt(sheets, 0, 1, 0), 2);
  }

  // A Flush without new rows changes nothing.
  S3DB_ASSERT_OK(book->Flush());
  EXPECT_EQ(ReadFileBytes(path), first);

  S3DB_ASSERT_OK(book->Add("s", Row(R"({"n":3,"extra":"e3"})")));
  S3DB_ASSERT_OK(book->AddSheet("t", ColumnSet()));
  S3DB_ASSERT_OK(book->Add("t", Row(R"({"x":true})")));
  EXPECT_EQ(ReadFileBytes(path), first) << "nothing is published before Flush";
  S3DB_ASSERT_OK(book->Flush());
  {
    JsonArray sheets = ReadSheets(reader, path);
    ASSERT_EQ(sheets.size(), 2u);
    EXPECT_EQ(HeaderValues(sheets[0]), (std::vector<std::string>{"n", "extra"}));
    ASSERT_EQ(sheets[0].at("rows").as_array().size(), 3u);
    ExpectNumber(CellAt(sheets, 0, 0, 0), 1);
    ExpectEmpty(CellAt(sheets, 0, 0, 1));
    ExpectText(CellAt(sheets, 0, 2, 1), "e3");
    ExpectBoolean(CellAt(sheets, 1, 0, 0), true);
  }

  S3DB_ASSERT_OK(book->Add("s", Row(R"({"n":4})")));
  S3DB_ASSERT_OK(book->Finish());
  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 2u);
  ASSERT_EQ(sheets[0].at("rows").as_array().size(), 4u);
  ExpectNumber(CellAt(sheets, 0, 3, 0), 4);
  EXPECT_EQ(book->BytesWritten(), std::filesystem::file_size(path));

  // Nothing is left behind in the staging folder: no spool, no scratch workbook.
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(folder.path())) {
    left.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"flushes.xlsx"});
  S3DB_EXPECT_ERROR(book->Add("s", Row(R"({"n":5})")), ErrorCode::kInternal);
}

// ---- restarts from a named spool -------------------------------------------------------

TEST(XlsxWorkbookWriter, ARestartedWriterResumesFromItsSpool) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("day.xlsx");
  XlsxOptions options;
  options.spool_path = folder.File("day.xlsx.spool");
  std::string wide(100, 'w');
  {
    auto book = OpenBook(folder, path, options);
    ASSERT_NE(book, nullptr);
    S3DB_ASSERT_OK(book->AddSheet(
        "users", Columns({{"id", ColumnType::kString}, {"at", ColumnType::kDatetime}})));
    S3DB_ASSERT_OK(book->Add("users", Row(R"({"id":"u1","at":"2025-10-20T08:00:00Z"})")));
    JsonObject row;
    row["id"] = "u2";
    row["note"] = wide;
    S3DB_ASSERT_OK(book->Add("users", row));
    S3DB_ASSERT_OK(book->Flush());
    // Not flushed: gone after the restart (the caller sends these again).
    S3DB_ASSERT_OK(book->Add("users", Row(R"({"id":"lost","late":1})")));
    S3DB_ASSERT_OK(book->AddSheet("later", ColumnSet()));
  }
  // A crash can also leave half a record at the end.
  {
    std::ofstream spool(options.spool_path, std::ios::binary | std::ios::app);
    spool << std::string("\x40\x00\x00\x00\x00\x01", 6);
  }

  auto book = OpenBook(folder, path, options);
  ASSERT_NE(book, nullptr);
  EXPECT_TRUE(book->HasSheet("users"));
  EXPECT_FALSE(book->HasSheet("later"));
  EXPECT_EQ(book->RowCount("users"), 2u);
  ASSERT_NE(book->Columns("users"), nullptr);
  EXPECT_EQ(book->Columns("users")->size(), 3u);  // id, at, note: not "late"
  S3DB_EXPECT_ERROR(book->AddSheet("users", ColumnSet()), ErrorCode::kAlreadyExists);
  S3DB_ASSERT_OK(book->Add("users", Row(R"({"id":"u3","at":"2025-10-21","extra":true})")));
  S3DB_ASSERT_OK(book->Finish());
  EXPECT_FALSE(std::filesystem::exists(options.spool_path)) << "Finish deletes the spool";

  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  EXPECT_EQ(HeaderValues(sheets[0]), (std::vector<std::string>{"id", "at", "note", "extra"}));
  ASSERT_EQ(sheets[0].at("rows").as_array().size(), 3u);
  ExpectText(CellAt(sheets, 0, 0, 0), "u1");
  ExpectDate(CellAt(sheets, 0, 0, 1), "2025-10-20T08:00:00.000Z");
  ExpectText(CellAt(sheets, 0, 1, 2), wide);
  ExpectText(CellAt(sheets, 0, 2, 0), "u3");
  ExpectDate(CellAt(sheets, 0, 2, 1), "2025-10-21T00:00:00.000Z");  // the type came back
  ExpectBoolean(CellAt(sheets, 0, 2, 3), true);
  // The width of "note" came back from the spool too.
  EXPECT_GE(sheets[0].at("widths").as_array()[2].to_number<double>(), 60);
}

TEST(XlsxWorkbookWriter, ADamagedSpoolFailsOpenNamingTheFile) {
  TempFolder folder;
  XlsxOptions options;
  options.staging_dir = folder.path();
  options.spool_path = folder.File("bad.spool");
  // A record of an unknown kind (9), then a flush record.
  testing::WriteFileBytes(options.spool_path,
                          std::string("\x01\x00\x00\x00\x09\x01\x00\x00\x00\x03", 10));
  auto book = XlsxWorkbookWriter::Open(options, std::make_unique<MemoryByteSink>());
  ASSERT_FALSE(book);
  EXPECT_EQ(book.error().code, ErrorCode::kIo);
  EXPECT_NE(book.error().message.find(options.spool_path), std::string::npos)
      << book.error().message;
}

// ---- errors ---------------------------------------------------------------------------

TEST(XlsxWorkbookWriter, BadRowsAreRejectedNamingTheColumnAndTheWriterStaysUsable) {
  S3DB_REQUIRE_XLSX_READER(reader);
  TempFolder folder;
  std::string path = folder.File("bad.xlsx");
  auto book = OpenBook(folder, path);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("s", ColumnSet()));

  JsonObject bad_value;
  bad_value["good"] = "fine";
  bad_value["broken"] = std::string("abc\xC3\x28", 5);
  auto rejected = book->Add("s", bad_value);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(rejected.error().message.find("broken"), std::string::npos) << rejected.error().message;

  JsonObject nested;
  nested["deep"] = JsonObject{{"inner", std::string("\xFF", 1)}};
  S3DB_EXPECT_ERROR(book->Add("s", nested), ErrorCode::kInvalidArgument);
  JsonObject bad_key;
  bad_key[std::string("k\xFE", 2)] = 1;
  S3DB_EXPECT_ERROR(book->Add("s", bad_key), ErrorCode::kInvalidArgument);
  JsonObject not_finite;
  not_finite["nan"] = std::nan("");
  S3DB_EXPECT_ERROR(book->Add("s", not_finite), ErrorCode::kInvalidArgument);

  S3DB_ASSERT_OK(book->Add("s", Row(R"({"ok":1})")));
  EXPECT_EQ(book->RowCount("s"), 1u);
  S3DB_ASSERT_OK(book->Finish());
  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  EXPECT_EQ(HeaderValues(sheets[0]), std::vector<std::string>{"ok"});  // no rejected column
  ASSERT_EQ(sheets[0].at("rows").as_array().size(), 1u);
  ExpectNumber(CellAt(sheets, 0, 0, 0), 1);
}

TEST(XlsxWorkbookWriter, AColumnPastTheExcelLimitIsRejected) {
  TempFolder folder;
  auto book = MemoryBook(folder);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("s", ColumnSet()));
  JsonObject full;
  for (std::size_t c = 0; c < kXlsxMaxColumns; ++c) full["c" + std::to_string(c)] = 1;
  S3DB_ASSERT_OK(book->Add("s", full));
  auto rejected = book->Add("s", Row(R"({"c0":2,"one_more":3})"));
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(rejected.error().message.find("one_more"), std::string::npos);
  S3DB_EXPECT_OK(book->Add("s", Row(R"({"c0":2})")));
  EXPECT_EQ(book->Columns("s")->size(), kXlsxMaxColumns);
}

TEST(XlsxWorkbookWriter, ASinkErrorSticks) {
  TempFolder folder;
  XlsxOptions options;
  options.staging_dir = folder.path();
  int calls = 0;
  auto sink = std::make_unique<MemoryByteSink>([&](std::string_view) -> Status {
    ++calls;
    return MakeError(ErrorCode::kUnavailable, "upload failed");
  });
  auto book = XlsxWorkbookWriter::Open(options, std::move(sink));
  S3DB_ASSERT_OK(book);
  S3DB_ASSERT_OK((*book)->AddSheet("s", ColumnSet()));
  S3DB_ASSERT_OK((*book)->Add("s", Row(R"({"a":1})")));
  S3DB_EXPECT_ERROR((*book)->Flush(), ErrorCode::kUnavailable);
  S3DB_EXPECT_ERROR((*book)->Add("s", Row(R"({"a":2})")), ErrorCode::kUnavailable);
  S3DB_EXPECT_ERROR((*book)->Finish(), ErrorCode::kUnavailable);
  EXPECT_EQ(calls, 1);
}

TEST(XlsxWorkbookWriter, AbandonPublishesNothingAndRemovesTheSpool) {
  TempFolder folder;
  std::string path = folder.File("gone.xlsx");
  XlsxOptions options;
  options.staging_dir = folder.path();
  {
    auto book = OpenBook(folder, path, options);
    ASSERT_NE(book, nullptr);
    S3DB_ASSERT_OK(book->AddSheet("s", ColumnSet()));
    S3DB_ASSERT_OK(book->Add("s", Row(R"({"a":1})")));
    EXPECT_GT(book->SpooledBytes(), 0u);
    book->Abandon();
    S3DB_EXPECT_ERROR(book->Flush(), ErrorCode::kInternal);
  }
  EXPECT_TRUE(std::filesystem::is_empty(folder.path()));

  options.staging_dir = folder.File("missing");
  auto missing = XlsxWorkbookWriter::Open(options, std::make_unique<MemoryByteSink>());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("missing"), std::string::npos);
}

// ---- through MakeRecordWriter (the CLI's export) --------------------------------------

TEST(XlsxRecordWriter, MakeRecordWriterMakesAOneSheetWorkbook) {
  S3DB_REQUIRE_XLSX_READER(reader);
  auto excel = ParseFileFormat("excel");
  S3DB_ASSERT_OK(excel);
  EXPECT_EQ(*excel, FileFormat::kExcel);
  auto xlsx = ParseFileFormat("xlsx");
  S3DB_ASSERT_OK(xlsx);
  EXPECT_EQ(*xlsx, FileFormat::kExcel);
  EXPECT_EQ(FileExtension(FileFormat::kExcel, JsonObject()), ".xlsx");

  auto bad = MakeRecordWriter(FileFormat::kExcel, ColumnSet(), Row(R"({"freezeHeaders":"no"})"),
                              std::make_unique<MemoryByteSink>());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("freezeHeaders"), std::string::npos);

  TempFolder folder;
  std::string path = folder.File("export.xlsx");
  auto sink = FileByteSink::Open(path);
  S3DB_ASSERT_OK(sink);
  auto writer =
      MakeRecordWriter(FileFormat::kExcel, EveryTypeColumns(),
                       Row(R"({"sheetName":"users","autoFilter":false})"), std::move(*sink));
  S3DB_ASSERT_OK(writer);
  for (const JsonObject& row : EveryTypeRows()) S3DB_ASSERT_OK((*writer)->Add(row));
  S3DB_ASSERT_OK((*writer)->Finish());
  EXPECT_EQ((*writer)->BytesWritten(), std::filesystem::file_size(path));

  JsonArray sheets = ReadSheets(reader, path);
  ASSERT_EQ(sheets.size(), 1u);
  EXPECT_EQ(sheets[0].at("name").as_string(), "users");
  EXPECT_TRUE(sheets[0].at("autoFilter").is_null());
  ExpectEveryTypeSheet(sheets, 0);
}

// ---- LibreOffice ----------------------------------------------------------------------

// CSV as LibreOffice writes it (RFC 4180 quoting, LF or CRLF line ends).
std::vector<std::vector<std::string>> ParseCsv(std::string_view text) {
  return testing::ParseCsv(text, {.any_line_end = true});
}

// Converts every worksheet of `xlsx` to CSV with LibreOffice; returns file name -> CSV text.
std::map<std::string, std::string> ConvertWithLibreOffice(const std::string& xlsx,
                                                          const TempFolder& folder) {
  std::string out_dir = folder.File("csv");
  std::filesystem::create_directories(out_dir);
  // UTF-8, comma, double quotes, cells as shown (with their number formats), every sheet to
  // its own file.
  std::string filter =
      "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,"
      "false,-1";
  std::string command = "soffice --headless --norestore -env:UserInstallation=file://" +
                        folder.File("lo-profile") + " --convert-to " + ShellQuote(filter) +
                        " --outdir " + ShellQuote(out_dir) + " " + ShellQuote(xlsx) + " >" +
                        ShellQuote(folder.File("soffice.log")) + " 2>&1";
  int status = std::system(command.c_str());
  EXPECT_EQ(status, 0) << command << "\n" << ReadFileBytes(folder.File("soffice.log"));
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(out_dir)) {
    files[entry.path().filename().string()] = ReadFileBytes(entry.path().string());
  }
  return files;
}

TEST(XlsxWorkbookWriter, LibreOfficeOpensTheWorkbookWithTheSameValues) {
  S3DB_REQUIRE_SOFFICE();
  TempFolder folder;
  std::string path = folder.File("book.xlsx");
  XlsxOptions options;
  options.max_rows_per_sheet = 4;  // so "users" continues on "users (2)"
  auto book = OpenBook(folder, path, options);
  ASSERT_NE(book, nullptr);
  S3DB_ASSERT_OK(book->AddSheet("users", EveryTypeColumns()));
  S3DB_ASSERT_OK(book->AddSheet("orders", ColumnSet()));
  for (const JsonObject& row : EveryTypeRows()) S3DB_ASSERT_OK(book->Add("users", row));
  S3DB_ASSERT_OK(book->Add("orders", Row(R"({"order":"o1","total":12.5,"paid":true})")));
  S3DB_ASSERT_OK(book->Finish());

  std::map<std::string, std::string> files = ConvertWithLibreOffice(path, folder);
  ASSERT_EQ(files.size(), 3u) << "one CSV per worksheet";
  ASSERT_EQ(files.count("book-users.csv"), 1u);
  ASSERT_EQ(files.count("book-users (2).csv"), 1u);
  ASSERT_EQ(files.count("book-orders.csv"), 1u);

  auto users = ParseCsv(files["book-users.csv"]);
  auto users2 = ParseCsv(files["book-users (2).csv"]);
  ASSERT_EQ(users.size(), 4u);   // header + 3 rows
  ASSERT_EQ(users2.size(), 3u);  // header + 2 rows
  EXPECT_EQ(users[0], users2[0]);
  std::vector<std::string> header = users[0];
  ASSERT_EQ(header.size(), 27u);
  auto col = [&](std::string_view name) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return i;
    }
    ADD_FAILURE() << "no column " << name;
    return std::size_t{0};
  };
  const auto& u1 = users[1];
  const auto& u2 = users[2];
  ASSERT_EQ(u1.size(), 27u);
  EXPECT_EQ(u1[col("id")], "u1");
  EXPECT_EQ(u1[col("age")], "42");
  EXPECT_EQ(u1[col("score")], "1.5");
  EXPECT_EQ(u1[col("active")], "TRUE");
  EXPECT_EQ(u1[col("born")], "2025-10-20 12:34:56.789");
  EXPECT_EQ(u1[col("tags")], R"(["a","b"])");
  EXPECT_EQ(u1[col("profile")], R"({"x":1,"y":[true,null]})");
  EXPECT_EQ(u1[col("big")], "1152921504606846977");
  EXPECT_EQ(u1[col("huge")], "18446744073709551615");
  EXPECT_EQ(u1[col("negative")], "-9007199254740993");
  EXPECT_EQ(u1[col("exact")], "9007199254740992");
  EXPECT_EQ(u1[col("fifteen")], "-999999999999999");
  EXPECT_EQ(u1[col("tiny")], "1E-300");
  EXPECT_EQ(u1[col("formula")], "=1+1");
  EXPECT_EQ(u1[col("plus")], "+1");
  EXPECT_EQ(u1[col("at")], "@SUM(A1)");
  EXPECT_EQ(u1[col("minus")], "-2");
  EXPECT_EQ(u1[col("quote")], "say \"hi\", ok");
  EXPECT_EQ(u1[col("lines")], "one\ntwo\nthree");
  EXPECT_EQ(u1[col("empty")], "");
  EXPECT_EQ(u1[col("nothing")], "");
  EXPECT_EQ(u1[col("escape_like")], "_x0041_ and _x005f_");
  ASSERT_EQ(u2.size(), 27u);
  EXPECT_EQ(u2[col("score")], "0.1");
  EXPECT_EQ(u2[col("active")], "FALSE");
  EXPECT_EQ(u2[col("born")], "2025-10-20 12:00:00.000");
  EXPECT_EQ(u2[col("emoji")], kEmoji);
  EXPECT_EQ(u2[col("combining")], kCombining);
  // LibreOffice keeps line breaks in a cell as LF: CR and CRLF come out as LF.
  std::string control = ControlText();
  for (std::size_t at; (at = control.find("\r\n")) != std::string::npos;) control.erase(at, 1);
  std::replace(control.begin(), control.end(), '\r', '\n');
  EXPECT_EQ(u2[col("control")], control);
  EXPECT_EQ(u2[col("cjk")], "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
  EXPECT_EQ(users[3][col("born")], "2024-02-29 00:00:00.000");
  EXPECT_EQ(users2[1][col("born")], "1850-01-01T00:00:00Z");
  EXPECT_EQ(users2[2][col("born")], "not a date");
  EXPECT_EQ(users2[2][col("id")], "u5");

  auto orders = ParseCsv(files["book-orders.csv"]);
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0], (std::vector<std::string>{"order", "total", "paid"}));
  EXPECT_EQ(orders[1], (std::vector<std::string>{"o1", "12.5", "TRUE"}));
}

}  // namespace
}  // namespace s3db::formats
