#include "cli/csv_reader.h"

namespace s3db::cli {

void CharReader::SkipByteOrderMark() {
  if (!buffer_ || buffer_->sgetc() != 0xEF) return;
  buffer_->sbumpc();
  if (buffer_->sgetc() != 0xBB) {
    buffer_->sputbackc('\xEF');
    return;
  }
  buffer_->sbumpc();
  if (buffer_->sgetc() != 0xBF) {
    buffer_->sputbackc('\xBB');
    buffer_->sputbackc('\xEF');
    return;
  }
  buffer_->sbumpc();
  bytes_ += 3;
}

CsvReader::CsvReader(std::istream& input) : reader_(input) { reader_.SkipByteOrderMark(); }

Result<bool> CsvReader::Next(std::vector<std::string>& fields) {
  constexpr int kEnd = CharReader::kEnd;
  while (true) {
    fields.clear();
    if (reader_.Peek() == kEnd) return false;
    record_line_ = reader_.line();
    bool record_has_text = false;

    while (true) {  // one field per turn
      std::string field;
      int c = reader_.Peek();
      if (c == '"') {
        record_has_text = true;
        std::size_t opened_at = reader_.line();
        reader_.Get();
        while (true) {
          c = reader_.Get();
          if (c == kEnd) {
            return MakeError(ErrorCode::kInvalidArgument,
                             "line " + std::to_string(opened_at) +
                                 ": the quoted field that starts here is never closed");
          }
          if (c == '"') {
            if (reader_.Peek() != '"') break;
            reader_.Get();
          }
          field += static_cast<char>(c);
        }
        c = reader_.Peek();
        if (c != ',' && c != '\n' && c != '\r' && c != kEnd) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "line " + std::to_string(reader_.line()) + ": unexpected '" +
                               std::string(1, static_cast<char>(c)) +
                               "' after a closing quote (write a quote inside a quoted field "
                               "as \"\")");
        }
      } else {
        while (c != ',' && c != '\n' && c != '\r' && c != kEnd) {
          field += static_cast<char>(reader_.Get());
          c = reader_.Peek();
        }
        record_has_text = record_has_text || !field.empty();
      }
      fields.push_back(std::move(field));

      c = reader_.Get();
      if (c == ',') {
        record_has_text = true;
        continue;
      }
      if (c == '\r' && reader_.Peek() == '\n') reader_.Get();
      break;  // end of line or of input
    }
    if (record_has_text) return true;  // otherwise a blank line: read on
  }
}

}  // namespace s3db::cli
