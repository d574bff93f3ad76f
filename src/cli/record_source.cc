#include "cli/record_source.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

#include "cli/csv_reader.h"
#include "cli/json_input.h"

namespace s3db::cli {
namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool IsSpace(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// "invalid JSON at byte 17: ..." -> the line of that byte, counted from `first_line`.
std::string LocateJsonError(const std::string& message, std::string_view text,
                            std::size_t first_line) {
  std::size_t line = first_line;
  constexpr std::string_view kAtByte = "at byte ";
  std::size_t at = message.find(kAtByte);
  if (at != std::string::npos) {
    std::size_t offset = std::strtoull(message.c_str() + at + kAtByte.size(), nullptr, 10);
    offset = std::min(offset, text.size());
    line += static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  }
  return "line " + std::to_string(line) + ": " + message;
}

SourceRecord ParseRecord(std::string_view text, std::size_t line) {
  SourceRecord out;
  out.line = line;
  auto parsed = ParseJsonObjectInput(text);
  if (parsed) {
    out.record = std::move(*parsed);
  } else {
    out.error = LocateJsonError(parsed.error().message, text, line);
  }
  return out;
}

// A JSON array of objects, split into elements without parsing the whole document.
class JsonArraySource : public RecordSource {
 public:
  explicit JsonArraySource(std::istream& input) : reader_(input) { reader_.SkipByteOrderMark(); }

  Result<std::optional<SourceRecord>> Next() override {
    constexpr int kEnd = CharReader::kEnd;
    if (state_ == State::kDone) return std::optional<SourceRecord>();
    if (state_ == State::kUnclosed) return Fatal(UnclosedMessage());
    SkipSpace();
    if (state_ == State::kStart) {
      int c = reader_.Peek();
      if (c == kEnd) return Fatal("the file is empty; expected a JSON array of objects");
      if (c == '{') {
        state_ = State::kSingleObject;
      } else if (c == '[') {
        reader_.Get();
        state_ = State::kInArray;
        SkipSpace();
        if (reader_.Peek() == ']') {
          reader_.Get();
          return Finish();
        }
      } else {
        return Fatal("expected a JSON array of objects ('[') or one object ('{')");
      }
    }

    std::size_t line = reader_.line();
    std::string text;
    int depth = 0;
    bool in_string = false;
    while (true) {
      int c = reader_.Peek();
      if (c == kEnd) {
        if (state_ == State::kSingleObject && depth == 0) break;
        if (state_ == State::kSingleObject) {
          return Fatal("the JSON object that starts on line " + std::to_string(line) +
                       " is not closed (unexpected end of file)");
        }
        return EndInsideArray(std::move(text), line, depth == 0 && !in_string);
      }
      if (in_string) {
        text += static_cast<char>(reader_.Get());
        if (c == '\\') {
          int escaped = reader_.Get();
          if (escaped != kEnd) text += static_cast<char>(escaped);
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (depth == 0 && state_ == State::kInArray && (c == ',' || c == ']')) break;
      reader_.Get();
      text += static_cast<char>(c);
      if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && depth > 0) {
        --depth;
        if (depth == 0 && state_ == State::kSingleObject) break;
      }
    }

    if (state_ == State::kSingleObject) {
      SourceRecord record = ParseRecord(text, line);
      auto finished = Finish();
      if (!finished) return finished;
      return std::optional<SourceRecord>(std::move(record));
    }
    int separator = reader_.Get();  // ',' or ']'
    std::size_t end = text.find_last_not_of(" \t\r\n");
    text.resize(end == std::string::npos ? 0 : end + 1);
    if (separator == ']') {
      auto finished = Finish();
      if (!finished) return finished;
      if (text.empty()) return std::optional<SourceRecord>();  // a trailing comma
    }
    if (text.empty()) {
      SourceRecord empty;
      empty.line = line;
      empty.error = "line " + std::to_string(line) + ": empty array element (two commas)";
      return std::optional<SourceRecord>(std::move(empty));
    }
    return std::optional<SourceRecord>(ParseRecord(text, line));
  }

  std::uint64_t bytes_read() const override { return reader_.bytes(); }

 private:
  // kUnclosed: the file ended inside the array after an element; Next reports it once.
  enum class State { kStart, kInArray, kSingleObject, kUnclosed, kDone };

  void SkipSpace() {
    while (IsSpace(reader_.Peek())) reader_.Get();
    if (state_ == State::kStart) array_line_ = reader_.line();
  }

  std::string UnclosedMessage() const {
    return "the JSON array that starts on line " + std::to_string(array_line_) +
           " is not closed (unexpected end of file); the file looks truncated";
  }

  // The file ends inside the array. The element read so far is still returned, so every
  // element is either written or counted as failed with its line: a complete one is parsed as
  // usual, a cut-off one is a failed record. The next call reports the missing ']'.
  Result<std::optional<SourceRecord>> EndInsideArray(std::string text, std::size_t line,
                                                     bool complete) {
    std::size_t end = text.find_last_not_of(" \t\r\n");
    text.resize(end == std::string::npos ? 0 : end + 1);
    if (text.empty()) return Fatal(UnclosedMessage());
    state_ = State::kUnclosed;
    if (complete) return std::optional<SourceRecord>(ParseRecord(text, line));
    SourceRecord cut;
    cut.line = line;
    cut.error = "line " + std::to_string(line) +
                ": the element that starts here is cut off by the end of the file";
    return std::optional<SourceRecord>(std::move(cut));
  }

  tl::unexpected<Error> Fatal(const std::string& message) {
    state_ = State::kDone;
    return MakeError(ErrorCode::kInvalidArgument,
                     "line " + std::to_string(reader_.line()) + ": " + message);
  }

  // After the closing bracket (or the single object) only white space may follow.
  Result<std::optional<SourceRecord>> Finish() {
    state_ = State::kDone;
    while (IsSpace(reader_.Peek())) reader_.Get();
    if (reader_.Peek() != CharReader::kEnd) {
      return Fatal("unexpected text after the end of the JSON document");
    }
    return std::optional<SourceRecord>();
  }

  CharReader reader_;
  State state_ = State::kStart;
  std::size_t array_line_ = 1;
};

class JsonLinesSource : public RecordSource {
 public:
  explicit JsonLinesSource(std::istream& input) : input_(input) {}

  Result<std::optional<SourceRecord>> Next() override {
    std::string line;
    while (std::getline(input_, line)) {
      ++line_number_;
      bytes_ += line.size() + 1;
      if (line_number_ == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      return std::optional<SourceRecord>(ParseRecord(line, line_number_));
    }
    if (input_.bad()) {
      return MakeError(ErrorCode::kIo, "line " + std::to_string(line_number_ + 1) + ": read error");
    }
    return std::optional<SourceRecord>();
  }

  std::uint64_t bytes_read() const override { return bytes_; }

 private:
  std::istream& input_;
  std::size_t line_number_ = 0;
  std::uint64_t bytes_ = 0;
};

class CsvSource : public RecordSource {
 public:
  CsvSource(std::istream& input, const Schema* schema) : reader_(input), schema_(schema) {}

  Result<std::optional<SourceRecord>> Next() override {
    if (!header_read_) {
      S3DB_RETURN_IF_ERROR(ReadHeader());
      header_read_ = true;
    }
    std::vector<std::string> fields;
    S3DB_ASSIGN_OR_RETURN(bool more, reader_.Next(fields));
    if (!more) return std::optional<SourceRecord>();

    SourceRecord out;
    out.line = reader_.record_line();
    if (fields.size() != header_.size()) {
      out.error = "line " + std::to_string(out.line) + ": " + std::to_string(fields.size()) +
                  " fields, but the header has " + std::to_string(header_.size());
      return std::optional<SourceRecord>(std::move(out));
    }
    for (std::size_t i = 0; i < fields.size(); ++i) {
      std::optional<Json> value = CsvValue(fields[i], header_[i], schema_);
      if (!value) continue;
      if (value->is_string() && !IsValidUtf8(value->get_string())) {
        out.error = "line " + std::to_string(out.line) + ": column '" + header_[i] +
                    "' is not valid UTF-8 (save the file as UTF-8)";
        break;
      }
      out.record[header_[i]] = std::move(*value);
    }
    return std::optional<SourceRecord>(std::move(out));
  }

  std::uint64_t bytes_read() const override { return reader_.bytes_read(); }

 private:
  Status ReadHeader() {
    S3DB_ASSIGN_OR_RETURN(bool found, reader_.Next(header_));
    if (!found) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "line 1: the CSV file is empty; its first row must name the fields");
    }
    std::set<std::string> seen;
    for (std::size_t i = 0; i < header_.size(); ++i) {
      const std::string& name = header_[i];
      std::string where = "line " + std::to_string(reader_.record_line()) + ": header column " +
                          std::to_string(i + 1);
      if (name.empty()) {
        return MakeError(ErrorCode::kInvalidArgument, where + " is empty; name every column");
      }
      if (!seen.insert(name).second) {
        return MakeError(ErrorCode::kInvalidArgument,
                         where + " repeats the name '" + name + "'; names must be unique");
      }
    }
    return Ok();
  }

  CsvReader reader_;
  const Schema* schema_;
  bool header_read_ = false;
  std::vector<std::string> header_;
};

const Attribute* FindAttribute(const Schema* schema, std::string_view name) {
  if (!schema) return nullptr;
  for (const Attribute& attribute : schema->attributes()) {
    if (attribute.name == name) return &attribute;
  }
  return nullptr;
}

std::optional<Json> ParsedOrText(std::string_view text, bool (*accept)(const Json&)) {
  auto parsed = ParseJsonInput(text);
  if (parsed && accept(*parsed)) return std::move(*parsed);
  return Json(boost::json::string(text));
}

}  // namespace

Result<InputFormat> ParseInputFormat(std::string_view name) {
  std::string lower = Lower(name);
  if (lower == "json") return InputFormat::kJson;
  if (lower == "jsonl" || lower == "ndjson") return InputFormat::kJsonLines;
  if (lower == "csv") return InputFormat::kCsv;
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown format '" + std::string(name) + "' (known: json, jsonl, ndjson, csv)");
}

std::optional<InputFormat> FormatFromPath(std::string_view path) {
  std::size_t dot = path.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string extension = Lower(path.substr(dot + 1));
  if (extension == "json" || extension == "jsonl" || extension == "ndjson" || extension == "csv") {
    return *ParseInputFormat(extension);
  }
  return std::nullopt;
}

std::string_view InputFormatName(InputFormat format) {
  switch (format) {
    case InputFormat::kJson:
      return "json";
    case InputFormat::kJsonLines:
      return "jsonl";
    case InputFormat::kCsv:
      return "csv";
  }
  return "json";
}

std::optional<Json> CsvValue(std::string_view text, std::string_view column, const Schema* schema) {
  if (text.empty()) return std::nullopt;
  if (column == "id") return Json(boost::json::string(text));
  const Attribute* attribute = FindAttribute(schema, column);
  AttributeType type = attribute ? attribute->type : AttributeType::kAny;
  switch (type) {
    case AttributeType::kString:
    case AttributeType::kEmail:
    case AttributeType::kUrl:
    case AttributeType::kUuid:
    case AttributeType::kDatetime:
      return Json(boost::json::string(text));
    case AttributeType::kBoolean: {
      std::string lower = Lower(text);
      if (lower == "true") return Json(true);
      if (lower == "false") return Json(false);
      return Json(boost::json::string(text));
    }
    case AttributeType::kArray:
      return ParsedOrText(text, [](const Json& v) { return v.is_array(); });
    case AttributeType::kObject:
      return ParsedOrText(text, [](const Json& v) { return v.is_object(); });
    case AttributeType::kJson:
      return ParsedOrText(text, [](const Json&) { return true; });
    case AttributeType::kNumber:
    case AttributeType::kInteger:
    case AttributeType::kAny:
      if (!IsJsonNumber(text)) return Json(boost::json::string(text));
      return ParsedOrText(text, [](const Json& v) { return v.is_number(); });
  }
  return Json(boost::json::string(text));
}

std::unique_ptr<RecordSource> NewRecordSource(InputFormat format, std::istream& input,
                                              const Schema* schema) {
  switch (format) {
    case InputFormat::kJson:
      return std::make_unique<JsonArraySource>(input);
    case InputFormat::kJsonLines:
      return std::make_unique<JsonLinesSource>(input);
    case InputFormat::kCsv:
      return std::make_unique<CsvSource>(input, schema);
  }
  return nullptr;
}

}  // namespace s3db::cli
