// Parquet's low-level encodings: the RLE / bit-packing hybrid (levels, dictionary indices)
// and PLAIN values. See the Parquet format's Encodings.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace s3db::formats {

// Bits needed to store `max_value` (0 for 0).
int BitWidth(std::uint32_t max_value);

// Appends `values` in the RLE / bit-packed hybrid encoding with `bit_width` bits per value
// (no length prefix). Runs of 8 or more equal values become RLE runs; the rest are packed in
// groups of 8 (only the last group is padded). REQUIRES: every value fits in bit_width bits,
// bit_width <= 32.
void AppendRleHybrid(const std::uint32_t* values, std::size_t count, int bit_width,
                     std::string& out);

// PLAIN: little-endian fixed-width values.
void AppendInt64LittleEndian(std::int64_t value, std::string& out);
void AppendInt32LittleEndian(std::uint32_t value, std::string& out);
void AppendDoubleLittleEndian(double value, std::string& out);

// PLAIN booleans: one bit per value, least significant bit first.
void AppendPlainBooleans(const std::uint8_t* values, std::size_t count, std::string& out);

}  // namespace s3db::formats
