#include "formats/parquet_encoding.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "formats/datetime.h"
#include "formats/thrift_compact.h"

namespace s3db::formats {
namespace {

std::uint64_t ReadVarint(const std::string& data, std::size_t& position) {
  std::uint64_t value = 0;
  int shift = 0;
  while (true) {
    auto byte = static_cast<unsigned char>(data.at(position++));
    value |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return value;
    shift += 7;
  }
}

// An independent decoder of the RLE / bit-packed hybrid, written from the specification.
std::vector<std::uint32_t> DecodeHybrid(const std::string& data, int bit_width, std::size_t count) {
  std::vector<std::uint32_t> values;
  std::size_t position = 0;
  while (values.size() < count) {
    std::uint64_t header = ReadVarint(data, position);
    if ((header & 1) == 0) {
      std::uint64_t run = header >> 1;
      std::uint32_t value = 0;
      for (int i = 0; i < (bit_width + 7) / 8; ++i) {
        value |= static_cast<std::uint32_t>(static_cast<unsigned char>(data.at(position++)))
                 << (8 * i);
      }
      values.insert(values.end(), run, value);
    } else {
      std::uint64_t total = (header >> 1) * 8;
      std::uint64_t bit = 0;
      for (std::uint64_t k = 0; k < total; ++k) {
        std::uint32_t value = 0;
        for (int b = 0; b < bit_width; ++b, ++bit) {
          auto byte = static_cast<unsigned char>(data.at(position + bit / 8));
          value |= static_cast<std::uint32_t>((byte >> (bit % 8)) & 1) << b;
        }
        values.push_back(value);
      }
      position += static_cast<std::size_t>(total * bit_width / 8);
    }
  }
  EXPECT_EQ(position, data.size()) << "trailing bytes after the encoded values";
  values.resize(count);  // the last bit-packed group may be padded
  return values;
}

TEST(ParquetRleHybrid, RoundTripsRandomRunsAndLiteralsAtEveryBitWidth) {
  std::mt19937 random(42);
  for (int bit_width : {1, 2, 3, 7, 8, 12, 20, 31, 32}) {
    std::uint64_t limit = bit_width == 32 ? 0xFFFFFFFFull : ((1ull << bit_width) - 1);
    for (int trial = 0; trial < 30; ++trial) {
      std::vector<std::uint32_t> values;
      std::size_t target = random() % 3000;
      while (values.size() < target) {
        std::uint32_t value = static_cast<std::uint32_t>(random() % (limit + 1));
        std::size_t run = random() % 4 == 0 ? random() % 40 : 1;
        values.insert(values.end(), run, value);
      }
      std::string encoded;
      AppendRleHybrid(values.data(), values.size(), bit_width, encoded);
      EXPECT_EQ(DecodeHybrid(encoded, bit_width, values.size()), values)
          << "bit width " << bit_width << " trial " << trial;
    }
  }
}

TEST(ParquetRleHybrid, UsesOneRleRunForAConstantSequence) {
  std::vector<std::uint32_t> ones(10000, 1);
  std::string encoded;
  AppendRleHybrid(ones.data(), ones.size(), 1, encoded);
  EXPECT_EQ(encoded, std::string("\xA0\x9C\x01\x01", 4));  // varint(20000), value 1
}

TEST(ParquetRleHybrid, BitPacksShortSequencesLsbFirst) {
  std::vector<std::uint32_t> values = {0, 1, 2, 3, 4, 5, 6, 7};
  std::string encoded;
  AppendRleHybrid(values.data(), values.size(), 3, encoded);
  // Example from the Parquet encodings document: header 0x03, then 0x88 0xC6 0xFA.
  EXPECT_EQ(encoded, std::string("\x03\x88\xC6\xFA", 4));
}

TEST(ParquetPlainBooleans, PacksLsbFirst) {
  std::vector<std::uint8_t> values = {1, 0, 1, 1, 0, 0, 0, 0, 1};
  std::string out;
  AppendPlainBooleans(values.data(), values.size(), out);
  EXPECT_EQ(out, std::string("\x0D\x01", 2));
}

TEST(ParquetThriftCompact, EncodesFieldDeltasZigzagAndLists) {
  ThriftCompactWriter w;
  w.FieldI32(1, 2);         // delta 1, i32: 0x15, zigzag(2)=4
  w.FieldI64(3, -1);        // delta 2, i64: 0x26, zigzag(-1)=1
  w.FieldBool(4, true);     // delta 1, true: 0x11
  w.FieldBinary(20, "ab");  // delta 16: long form 0x08, zigzag(20)=40, len 2
  w.FieldListBegin(21, ThriftCompactWriter::kI32, 2);  // 0x19, 0x25
  w.ListI32(1);
  w.ListI32(-2);
  w.FieldStructBegin(22);  // 0x1C
  w.FieldI32(1, 0);        // 0x15 0x00 (ids restart in the nested struct)
  w.StructEnd();
  w.FieldI32(23, 1);  // delta 1 from 22 again: 0x15 0x02
  w.StructEnd();
  EXPECT_EQ(w.bytes(), std::string("\x15\x04\x26\x01\x11\x08\x28\x02"
                                   "ab"
                                   "\x19\x25\x02\x03\x1C\x15\x00\x00\x15\x02\x00",
                                   21));
}

TEST(ParquetThriftCompact, LongListsUseTheSizeVarint) {
  ThriftCompactWriter w;
  w.FieldListBegin(1, ThriftCompactWriter::kBinary, 300);
  EXPECT_EQ(w.bytes(), std::string("\x19\xF8\xAC\x02", 4));
}

TEST(FormatsIso8601, ParsesOffsetsFractionsAndDates) {
  EXPECT_EQ(*ParseIso8601Micros("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseIso8601Micros("1970-01-01"), 0);
  EXPECT_EQ(*ParseIso8601Micros("2024-02-29T12:30:45.123456Z"), 1709209845123456);
  EXPECT_EQ(*ParseIso8601Micros("2024-02-29T14:30:45.123456+02:00"), 1709209845123456);
  EXPECT_EQ(*ParseIso8601Micros("2024-02-29T07:00:45.123456-0530"), 1709209845123456);
  EXPECT_EQ(*ParseIso8601Micros("2024-02-29 12:30:45.1"), 1709209845100000);
  EXPECT_EQ(*ParseIso8601Micros("2024-02-29T12:30:45.123456000Z"), 1709209845123456);
  EXPECT_EQ(*ParseIso8601Micros("2024-02-29T12:30Z"), 1709209800000000);
  EXPECT_EQ(*ParseIso8601Micros("1969-12-31T23:59:59.999999Z"), -1);
  EXPECT_EQ(*ParseIso8601Micros("0001-01-01T00:00:00Z"), -62135596800000000);
  EXPECT_EQ(*ParseIso8601Micros("9999-12-31T23:59:59Z"), 253402300799000000);
}

TEST(FormatsIso8601, RejectsInvalidDatesAndLostPrecision) {
  for (const char* text : {"", "2024", "2024-13-01", "2023-02-29", "2024-01-01T24:00:00Z",
                           "2024-01-01T10:00:00.1234567Z", "2024-01-01T10:00:00Zjunk", "01/02/2024",
                           "2024-01-01T10:00:00+25:00", "2024-01-01X10:00"}) {
    auto parsed = ParseIso8601Micros(text);
    EXPECT_FALSE(parsed) << text;
    if (!parsed) EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace s3db::formats
