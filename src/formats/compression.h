// Compression codecs for export files: gzip (zlib), snappy, zstd, LZ4 raw blocks.
#pragma once

#include <string>
#include <string_view>

#include "s3db/error.h"

namespace s3db::formats {

enum class Codec { kNone, kSnappy, kGzip, kZstd, kLz4Raw };

std::string_view CodecName(Codec codec);

// "snappy", "gzip", "zstd", "lz4" or "lz4_raw" (both LZ4_RAW), "none" or "uncompressed".
// Error kInvalidArgument names the option `compression` and the accepted values.
Result<Codec> ParseCodec(std::string_view name);

// One complete gzip member (RFC 1952) holding `data`; concatenated members are a valid gzip
// stream. `level` 0..9 (zlib's), -1 for zlib's default. Error kInternal on zlib failure.
Result<std::string> GzipCompress(std::string_view data, int level = -1);

// Compresses `data` with `codec` the way Parquet pages need it: snappy raw format, gzip
// member, zstd frame, LZ4 raw block (LZ4_RAW). kNone returns the data unchanged.
Result<std::string> Compress(Codec codec, std::string_view data);

}  // namespace s3db::formats
