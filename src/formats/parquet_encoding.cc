#include "formats/parquet_encoding.h"

#include <algorithm>
#include <cstring>

namespace s3db::formats {
namespace {

// Literal runs are cut at 63 groups (504 values): every reader accepts that header size.
constexpr std::size_t kMaxLiteralValuesPerRun = 63 * 8;

void AppendVarint(std::uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void AppendBitPacked(const std::vector<std::uint32_t>& literals, int bit_width, std::string& out) {
  std::size_t position = 0;
  while (position < literals.size()) {
    std::size_t count = std::min(literals.size() - position, kMaxLiteralValuesPerRun);
    std::size_t groups = (count + 7) / 8;
    AppendVarint((groups << 1) | 1, out);
    std::uint64_t accumulator = 0;
    int bits = 0;
    for (std::size_t k = 0; k < groups * 8; ++k) {
      std::uint64_t value = k < count ? literals[position + k] : 0;
      accumulator |= value << bits;
      bits += bit_width;
      while (bits >= 8) {
        out.push_back(static_cast<char>(accumulator & 0xFF));
        accumulator >>= 8;
        bits -= 8;
      }
    }
    position += count;
  }
}

void AppendRleRun(std::uint32_t value, std::size_t count, int bit_width, std::string& out) {
  AppendVarint(static_cast<std::uint64_t>(count) << 1, out);
  int bytes = (bit_width + 7) / 8;
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

}  // namespace

int BitWidth(std::uint32_t max_value) {
  int width = 0;
  while (width < 32 && (max_value >> width) != 0) ++width;
  return width;
}

void AppendRleHybrid(const std::uint32_t* values, std::size_t count, int bit_width,
                     std::string& out) {
  std::vector<std::uint32_t> literals;
  std::size_t i = 0;
  while (i < count) {
    std::size_t run_end = i;
    while (run_end < count && values[run_end] == values[i]) ++run_end;
    std::size_t run = run_end - i;
    if (run < 8) {
      literals.insert(literals.end(), values + i, values + run_end);
      i = run_end;
      continue;
    }
    // A bit-packed run may only be padded at the very end: complete its last group first.
    std::size_t missing = (8 - literals.size() % 8) % 8;
    if (missing > 0) {
      literals.insert(literals.end(), missing, values[i]);
      i += missing;
      run -= missing;
      if (run < 8) {
        literals.insert(literals.end(), run, values[i]);
        i = run_end;
        continue;
      }
    }
    AppendBitPacked(literals, bit_width, out);
    literals.clear();
    AppendRleRun(values[i], run, bit_width, out);
    i = run_end;
  }
  AppendBitPacked(literals, bit_width, out);
}

void AppendInt64LittleEndian(std::int64_t value, std::string& out) {
  std::uint64_t bits = static_cast<std::uint64_t>(value);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

void AppendInt32LittleEndian(std::uint32_t value, std::string& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void AppendDoubleLittleEndian(double value, std::string& out) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  AppendInt64LittleEndian(static_cast<std::int64_t>(bits), out);
}

void AppendPlainBooleans(const std::uint8_t* values, std::size_t count, std::string& out) {
  std::uint8_t current = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (values[i] != 0) current |= static_cast<std::uint8_t>(1u << (i % 8));
    if (i % 8 == 7) {
      out.push_back(static_cast<char>(current));
      current = 0;
    }
  }
  if (count % 8 != 0) out.push_back(static_cast<char>(current));
}

}  // namespace s3db::formats
