#include "formats/jsonl_writer.h"

#include <utility>

#include "formats/compression.h"
#include "formats/json_text.h"

namespace s3db::formats {

Result<JsonlOptions> JsonlOptionsFromJson(const JsonObject& config) {
  JsonlOptions options;
  if (const Json* compress = config.if_contains("compress")) {
    if (!compress->is_bool()) {
      return MakeError(ErrorCode::kInvalidArgument, "option `compress` must be a boolean");
    }
    options.compress = compress->get_bool();
  }
  if (const Json* level = config.if_contains("gzipLevel")) {
    if (!level->is_int64() || level->get_int64() < -1 || level->get_int64() > 9) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "option `gzipLevel` must be an integer from -1 to 9");
    }
    options.gzip_level = static_cast<int>(level->get_int64());
  }
  return options;
}

Result<std::unique_ptr<JsonlWriter>> JsonlWriter::Make(JsonlOptions options,
                                                       std::unique_ptr<ByteSink> sink) {
  if (options.gzip_level < -1 || options.gzip_level > 9) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "option `gzipLevel` must be an integer from -1 to 9");
  }
  if (sink == nullptr) return MakeError(ErrorCode::kInvalidArgument, "jsonl writer: no sink");
  return std::unique_ptr<JsonlWriter>(new JsonlWriter(options, std::move(sink)));
}

Result<std::unique_ptr<JsonlWriter>> JsonlWriter::Resume(JsonlOptions options,
                                                         std::unique_ptr<ByteSink> sink) {
  S3DB_ASSIGN_OR_RETURN(auto writer, Make(options, std::move(sink)));
  ByteSink& body = *writer->sink_;
  if (options.compress || body.BodySize() == 0) return writer;
  constexpr std::uint64_t kChunk = 64 * 1024;
  std::uint64_t end = body.BodySize();
  while (end > 0) {
    std::uint64_t from = end > kChunk ? end - kChunk : 0;
    S3DB_ASSIGN_OR_RETURN(std::string chunk, body.ReadBodyRange(from, end - from));
    std::size_t newline = chunk.rfind('\n');
    if (newline != std::string::npos) {
      end = from + newline + 1;
      break;
    }
    end = from;
  }
  if (end < body.BodySize()) S3DB_RETURN_IF_ERROR(body.TruncateBody(end));
  return writer;
}

JsonlWriter::JsonlWriter(JsonlOptions options, std::unique_ptr<ByteSink> sink)
    : options_(options), sink_(std::move(sink)) {}

JsonlWriter::~JsonlWriter() {
  if (!finished_) Abandon();
}

Status JsonlWriter::CheckUsable() const {
  S3DB_RETURN_IF_ERROR(sticky_.Check());
  if (finished_) return MakeError(ErrorCode::kInternal, "jsonl writer is finished");
  if (abandoned_) return MakeError(ErrorCode::kInternal, "jsonl writer was abandoned");
  return Ok();
}

Status JsonlWriter::Add(const JsonObject& row) {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  for (const auto& field : row) {
    std::string_view key(field.key().data(), field.key().size());
    if (!IsValidUtf8(key)) {
      return MakeError(ErrorCode::kInvalidArgument, "a field name is not valid UTF-8");
    }
    S3DB_RETURN_IF_ERROR(CheckExportable(field.value(), key));
  }
  AppendJsonText(row, pending_);
  pending_.push_back('\n');
  return Ok();
}

Status JsonlWriter::WritePending() {
  if (!options_.compress) {
    if (pending_.empty()) return Ok();
    S3DB_RETURN_IF_ERROR(sink_->Append(pending_));
    pending_.clear();
    return Ok();
  }
  // An empty member is only written so that a file with no rows yet is valid gzip.
  if (pending_.empty() && sink_->BodySize() != 0) return Ok();
  S3DB_ASSIGN_OR_RETURN(std::string member, GzipCompress(pending_, options_.gzip_level));
  S3DB_RETURN_IF_ERROR(sink_->Append(member));
  pending_.clear();
  return Ok();
}

Status JsonlWriter::Flush() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  S3DB_RETURN_IF_ERROR(sticky_.Keep(WritePending()));
  return sticky_.Keep(sink_->Sync({}));
}

Status JsonlWriter::Finish() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  S3DB_RETURN_IF_ERROR(sticky_.Keep(WritePending()));
  S3DB_RETURN_IF_ERROR(sticky_.Keep(sink_->Close({})));
  finished_ = true;
  return Ok();
}

void JsonlWriter::Abandon() {
  if (abandoned_ || finished_) return;
  abandoned_ = true;
  pending_.clear();
  sink_->Abandon();
}

}  // namespace s3db::formats
