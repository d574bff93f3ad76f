#include "formats/compression.h"

#include <lz4.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>

namespace s3db::formats {

std::string_view CodecName(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return "none";
    case Codec::kSnappy:
      return "snappy";
    case Codec::kGzip:
      return "gzip";
    case Codec::kZstd:
      return "zstd";
    case Codec::kLz4Raw:
      return "lz4_raw";
  }
  return "none";
}

Result<Codec> ParseCodec(std::string_view name) {
  if (name == "snappy") return Codec::kSnappy;
  if (name == "gzip") return Codec::kGzip;
  if (name == "zstd") return Codec::kZstd;
  if (name == "lz4" || name == "lz4_raw") return Codec::kLz4Raw;
  if (name == "none" || name == "uncompressed") return Codec::kNone;
  return MakeError(ErrorCode::kInvalidArgument,
                   "option `compression` must be one of snappy, gzip, zstd, lz4, none (got '" +
                       std::string(name) + "')");
}

Result<std::string> GzipCompress(std::string_view data, int level) {
  z_stream stream{};
  constexpr int kGzipWindowBits = 15 + 16;  // +16: write a gzip header and trailer
  if (deflateInit2(&stream, level, Z_DEFLATED, kGzipWindowBits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return MakeError(ErrorCode::kInternal, "gzip: deflateInit2 failed");
  }
  std::string out;
  out.reserve(data.size() / 3 + 64);
  char buffer[1 << 16];
  std::size_t offset = 0;
  int rc = Z_OK;
  do {
    // zlib counts in uInt: feed the input in pieces; the output stays one member.
    std::size_t piece = std::min<std::size_t>(data.size() - offset, std::size_t{1} << 30);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + offset));
    stream.avail_in = static_cast<uInt>(piece);
    offset += piece;
    int flush = offset == data.size() ? Z_FINISH : Z_NO_FLUSH;
    do {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof buffer;
      rc = deflate(&stream, flush);
      out.append(buffer, sizeof buffer - stream.avail_out);
    } while (stream.avail_out == 0);
  } while (offset < data.size());
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) return MakeError(ErrorCode::kInternal, "gzip: deflate failed");
  return out;
}

Result<std::string> Compress(Codec codec, std::string_view data) {
  switch (codec) {
    case Codec::kNone:
      return std::string(data);
    case Codec::kGzip:
      return GzipCompress(data);
    case Codec::kSnappy: {
      std::size_t length = snappy_max_compressed_length(data.size());
      std::string out(length, '\0');
      if (snappy_compress(data.data(), data.size(), out.data(), &length) != SNAPPY_OK) {
        return MakeError(ErrorCode::kInternal, "snappy: compression failed");
      }
      out.resize(length);
      return out;
    }
    case Codec::kZstd: {
      std::string out(ZSTD_compressBound(data.size()), '\0');
      std::size_t length = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
      if (ZSTD_isError(length)) {
        return MakeError(ErrorCode::kInternal, std::string("zstd: ") + ZSTD_getErrorName(length));
      }
      out.resize(length);
      return out;
    }
    case Codec::kLz4Raw: {
      if (data.size() > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) {
        return MakeError(ErrorCode::kInvalidArgument, "lz4: page larger than LZ4's 2 GB limit");
      }
      int bound = LZ4_compressBound(static_cast<int>(data.size()));
      std::string out(static_cast<std::size_t>(bound), '\0');
      int length =
          LZ4_compress_default(data.data(), out.data(), static_cast<int>(data.size()), bound);
      if (length <= 0 && !data.empty()) {
        return MakeError(ErrorCode::kInternal, "lz4: compression failed");
      }
      out.resize(static_cast<std::size_t>(length));
      return out;
    }
  }
  return MakeError(ErrorCode::kInternal, "unknown codec");
}

}  // namespace s3db::formats
