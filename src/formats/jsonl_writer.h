// JSON Lines files: one compact JSON object per line ("\n" after each), optionally gzip.
//
// Rows are buffered until Flush. With `compress`, every Flush appends one complete gzip
// member holding the rows since the last Flush; concatenated members are one valid gzip
// stream (RFC 1952), so the file is valid after every Flush. A file with no rows is an empty
// file, or with `compress` one empty gzip member.
#pragma once

#include <memory>
#include <string>

#include "formats/byte_sink.h"
#include "formats/writer.h"

namespace s3db::formats {

struct JsonlOptions {
  // gzip the file (config option `compress`); name the file "*.jsonl.gz".
  bool compress = false;
  // zlib level 0..9, or -1 for zlib's default (6).
  int gzip_level = -1;
};

// Reads `compress` (bool) and `gzipLevel` (integer -1..9) from a config object.
Result<JsonlOptions> JsonlOptionsFromJson(const JsonObject& config);

class JsonlWriter : public RecordWriter {
 public:
  // Error kInvalidArgument for a gzip level outside -1..9.
  static Result<std::unique_ptr<JsonlWriter>> Make(JsonlOptions options,
                                                   std::unique_ptr<ByteSink> sink);
  // Continues the file that is `sink`'s body (written with the same options, e.g. from
  // FileByteSink::Resume). Plain: a torn last line (no "\n" after it) is cut off. gzip: new
  // rows go into new members after the existing ones (members are written whole).
  static Result<std::unique_ptr<JsonlWriter>> Resume(JsonlOptions options,
                                                     std::unique_ptr<ByteSink> sink);
  ~JsonlWriter() override;

  Status Add(const JsonObject& row) override;
  Status Flush() override;
  Status Finish() override;
  void Abandon() override;
  std::uint64_t BytesWritten() const override { return sink_->BodySize(); }

 private:
  JsonlWriter(JsonlOptions options, std::unique_ptr<ByteSink> sink);
  Status CheckUsable() const;
  Status WritePending();

  JsonlOptions options_;
  std::unique_ptr<ByteSink> sink_;
  StickyError sticky_;
  std::string pending_;
  bool finished_ = false;
  bool abandoned_ = false;
};

}  // namespace s3db::formats
