#include "formats/csv_writer.h"

#include <utility>

#include "formats/json_text.h"

namespace s3db::formats {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::string_view kRecordEnd = "\r\n";

bool NeedsQuotes(std::string_view text, char delimiter) {
  for (char c : text) {
    if (c == delimiter || c == '"' || c == '\r' || c == '\n') return true;
  }
  return false;
}

bool LooksLikeFormula(std::string_view text) {
  if (text.empty()) return false;
  char first = text.front();
  return first == '=' || first == '+' || first == '-' || first == '@' || first == '\t' ||
         first == '\r';
}

void AppendText(std::string_view text, bool is_string, const CsvOptions& options,
                std::string& out) {
  std::string guarded;
  if (is_string && options.escape_formulas && LooksLikeFormula(text)) {
    guarded.reserve(text.size() + 1);
    guarded.push_back('\'');
    guarded.append(text);
    text = guarded;
  }
  if (is_string && text.empty()) {
    out.append("\"\"");
    return;
  }
  if (!NeedsQuotes(text, options.delimiter)) {
    out.append(text);
    return;
  }
  out.push_back('"');
  for (char c : text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

// Appends `count` empty cells to every record of `records` (CSV text of whole records).
std::string PadRecords(std::string_view records, std::size_t count, char delimiter) {
  std::string padded;
  padded.reserve(records.size() + records.size() / 16 + count);
  std::string padding(count, delimiter);
  bool in_quotes = false;
  std::size_t record_start = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    char c = records[i];
    if (c == '"') {
      in_quotes = !in_quotes;  // a doubled quote toggles twice
    } else if (!in_quotes && c == '\r' && i + 1 < records.size() && records[i + 1] == '\n') {
      padded.append(records.substr(record_start, i - record_start));
      padded.append(padding);
      padded.append(kRecordEnd);
      record_start = i + 2;
      ++i;
    }
  }
  padded.append(records.substr(record_start));
  return padded;
}

}  // namespace

void AppendCsvCell(const Json* value, const CsvOptions& options, std::string& out) {
  if (value == nullptr) return;
  switch (value->kind()) {
    case boost::json::kind::null:
      return;
    case boost::json::kind::bool_:
      out.append(value->get_bool() ? "true" : "false");
      return;
    case boost::json::kind::int64:
      out.append(std::to_string(value->get_int64()));
      return;
    case boost::json::kind::uint64:
      out.append(std::to_string(value->get_uint64()));
      return;
    case boost::json::kind::double_:
      AppendDouble(value->get_double(), out);
      return;
    case boost::json::kind::string: {
      const auto& text = value->get_string();
      AppendText(std::string_view(text.data(), text.size()), true, options, out);
      return;
    }
    case boost::json::kind::array:
    case boost::json::kind::object:
      AppendText(JsonText(*value), false, options, out);
      return;
  }
}

Status ValidateCsvOptions(const CsvOptions& options) {
  char d = options.delimiter;
  if (d == ',' || d == ';' || d == '\t' || d == '|') return Ok();
  return MakeError(ErrorCode::kInvalidArgument,
                   "option `delimiter` must be one of ',', ';', '\\t' or '|'");
}

Result<CsvOptions> CsvOptionsFromJson(const JsonObject& config) {
  CsvOptions options;
  if (const Json* delimiter = config.if_contains("delimiter")) {
    if (!delimiter->is_string() || delimiter->get_string().size() != 1) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "option `delimiter` must be one of ',', ';', '\\t' or '|' (got " +
                           JsonText(*delimiter) + ")");
    }
    options.delimiter = delimiter->get_string()[0];
    S3DB_RETURN_IF_ERROR(ValidateCsvOptions(options).map_error([&](Error error) {
      error.message += " (got " + JsonText(*delimiter) + ")";
      return error;
    }));
  }
  if (const Json* bom = config.if_contains("bom")) {
    if (!bom->is_bool()) {
      return MakeError(ErrorCode::kInvalidArgument, "option `bom` must be a boolean");
    }
    options.bom = bom->get_bool();
  }
  if (const Json* escape = config.if_contains("escapeFormulas")) {
    if (!escape->is_bool()) {
      return MakeError(ErrorCode::kInvalidArgument, "option `escapeFormulas` must be a boolean");
    }
    options.escape_formulas = escape->get_bool();
  }
  return options;
}

Result<std::unique_ptr<CsvWriter>> CsvWriter::Make(ColumnSet columns, CsvOptions options,
                                                   std::unique_ptr<ByteSink> sink) {
  S3DB_RETURN_IF_ERROR(ValidateCsvOptions(options));
  if (sink == nullptr) return MakeError(ErrorCode::kInvalidArgument, "csv writer: no sink");
  return std::unique_ptr<CsvWriter>(new CsvWriter(std::move(columns), options, std::move(sink)));
}

Result<std::unique_ptr<CsvWriter>> CsvWriter::Resume(ColumnSet declared, CsvOptions options,
                                                     std::unique_ptr<ByteSink> sink) {
  S3DB_ASSIGN_OR_RETURN(auto writer, Make(declared, options, std::move(sink)));
  if (writer->sink_->BodySize() > 0) S3DB_RETURN_IF_ERROR(writer->ResumeBody(declared));
  return writer;
}

Status CsvWriter::ResumeBody(const ColumnSet& declared) {
  constexpr std::uint64_t kChunk = 1 << 20;
  const std::uint64_t size = sink_->BodySize();
  std::uint64_t start = 0;
  if (options_.bom) {
    S3DB_ASSIGN_OR_RETURN(std::string head, sink_->ReadBodyRange(0, kBom.size()));
    if (head == kBom) start = kBom.size();
  }
  // Cells of the header record, up to its CRLF (names may hold quoted CRLFs).
  std::vector<std::string> names(1);
  bool in_quotes = false;
  bool quote_in_quotes = false;  // a quote inside quotes: the end, or the first of two
  bool carriage_return = false;
  bool header_done = false;
  std::uint64_t at = start;
  while (!header_done && at < size) {
    S3DB_ASSIGN_OR_RETURN(std::string chunk, sink_->ReadBodyRange(at, kChunk));
    for (std::size_t i = 0; i < chunk.size() && !header_done; ++i) {
      char c = chunk[i];
      ++at;
      if (in_quotes) {
        if (quote_in_quotes) {
          quote_in_quotes = false;
          if (c == '"') {
            names.back().push_back('"');
            continue;
          }
          in_quotes = false;  // that quote closed the cell: `c` follows it
        } else {
          if (c == '"') {
            quote_in_quotes = true;
          } else {
            names.back().push_back(c);
          }
          continue;
        }
      }
      if (c == '"') {
        in_quotes = true;
      } else if (c == options_.delimiter) {
        names.emplace_back();
      } else if (c == '\r') {
        carriage_return = true;
      } else if (c == '\n' && carriage_return) {
        header_done = true;
      } else {
        names.back().push_back(c);
      }
    }
  }
  if (!header_done) {
    return MakeError(ErrorCode::kInvalidArgument, "csv file to continue has no header row");
  }
  std::vector<ColumnSpec> specs;
  for (std::string& name : names) {
    if (options_.escape_formulas && name.size() > 1 && name[0] == '\'' &&
        LooksLikeFormula(std::string_view(name).substr(1))) {
      name.erase(0, 1);
    }
    ColumnSpec spec{name, ColumnType::kAny};
    if (auto index = declared.IndexOf(name)) spec.type = declared[*index].type;
    specs.push_back(std::move(spec));
  }
  S3DB_ASSIGN_OR_RETURN(columns_, ColumnSet::Make(std::move(specs)));
  header_written_ = true;

  // A torn last record: cut the body after the last CRLF outside quotes.
  S3DB_ASSIGN_OR_RETURN(std::string tail, sink_->ReadBodyRange(size - 2, 2));
  if (tail == kRecordEnd) return Ok();
  std::uint64_t record_end = at;  // after the header
  in_quotes = false;
  char previous = 0;
  while (at < size) {
    S3DB_ASSIGN_OR_RETURN(std::string chunk, sink_->ReadBodyRange(at, kChunk));
    for (char c : chunk) {
      ++at;
      if (c == '"') in_quotes = !in_quotes;
      if (!in_quotes && c == '\n' && previous == '\r') record_end = at;
      previous = c;
    }
  }
  return sink_->TruncateBody(record_end);
}

CsvWriter::CsvWriter(ColumnSet columns, CsvOptions options, std::unique_ptr<ByteSink> sink)
    : columns_(std::move(columns)), options_(options), sink_(std::move(sink)) {}

CsvWriter::~CsvWriter() {
  if (!finished_) Abandon();
}

Status CsvWriter::CheckUsable() const {
  S3DB_RETURN_IF_ERROR(sticky_.Check());
  if (finished_) return MakeError(ErrorCode::kInternal, "csv writer is finished");
  if (abandoned_) return MakeError(ErrorCode::kInternal, "csv writer was abandoned");
  return Ok();
}

std::string CsvWriter::HeaderRecord() const {
  std::string header;
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    if (i > 0) header.push_back(options_.delimiter);
    AppendText(columns_[i].name, true, options_, header);
  }
  header.append(kRecordEnd);
  return header;
}

Status CsvWriter::AddColumnsToWrittenRecords(std::size_t added) {
  // n cells are separated by n - 1 delimiters, so a record of no cells (no columns before)
  // gets one delimiter fewer than the cells added.
  if (columns_.size() == added) --added;
  if (!pending_.empty()) pending_ = PadRecords(pending_, added, options_.delimiter);
  if (!header_written_) return Ok();

  S3DB_ASSIGN_OR_RETURN(std::string body, sink_->ReadBody());
  std::string_view rest(body);
  if (options_.bom) rest.remove_prefix(kBom.size());
  // Skip the old header record: column names may hold quoted CRLFs too.
  bool in_quotes = false;
  std::size_t header_end = rest.size();
  for (std::size_t i = 0; i + 1 < rest.size(); ++i) {
    if (rest[i] == '"') in_quotes = !in_quotes;
    if (!in_quotes && rest[i] == '\r' && rest[i + 1] == '\n') {
      header_end = i + 2;
      break;
    }
  }
  rest.remove_prefix(header_end);

  std::string rewritten;
  if (options_.bom) rewritten.append(kBom);
  rewritten.append(HeaderRecord());
  rewritten.append(PadRecords(rest, added, options_.delimiter));
  S3DB_RETURN_IF_ERROR(sink_->Reset());
  return sink_->Append(rewritten);
}

Status CsvWriter::Add(const JsonObject& row) {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  for (const auto& field : row) {
    S3DB_RETURN_IF_ERROR(
        CheckExportable(field.value(), std::string_view(field.key().data(), field.key().size())));
    if (!IsValidUtf8(std::string_view(field.key().data(), field.key().size()))) {
      return MakeError(ErrorCode::kInvalidArgument, "a field name is not valid UTF-8");
    }
  }

  std::size_t added = columns_.AddFieldsOf(row);
  if (added > 0) S3DB_RETURN_IF_ERROR(sticky_.Keep(AddColumnsToWrittenRecords(added)));

  columns_.Lookup(row, cells_);
  for (std::size_t i = 0; i < cells_.size(); ++i) {
    if (i > 0) pending_.push_back(options_.delimiter);
    AppendCsvCell(cells_[i], options_, pending_);
  }
  pending_.append(kRecordEnd);
  return Ok();
}

Status CsvWriter::WritePending() {
  if (!header_written_) {
    std::string start;
    if (options_.bom) start.append(kBom);
    start.append(HeaderRecord());
    S3DB_RETURN_IF_ERROR(sink_->Append(start));
    header_written_ = true;
  }
  if (!pending_.empty()) {
    S3DB_RETURN_IF_ERROR(sink_->Append(pending_));
    pending_.clear();
  }
  return Ok();
}

Status CsvWriter::Flush() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  S3DB_RETURN_IF_ERROR(sticky_.Keep(WritePending()));
  return sticky_.Keep(sink_->Sync({}));
}

Status CsvWriter::Finish() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  S3DB_RETURN_IF_ERROR(sticky_.Keep(WritePending()));
  S3DB_RETURN_IF_ERROR(sticky_.Keep(sink_->Close({})));
  finished_ = true;
  return Ok();
}

void CsvWriter::Abandon() {
  if (abandoned_ || finished_) return;
  abandoned_ = true;
  pending_.clear();
  sink_->Abandon();
}

std::uint64_t CsvWriter::BytesWritten() const { return sink_->BodySize(); }

}  // namespace s3db::formats
