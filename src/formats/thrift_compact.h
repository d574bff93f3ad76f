// A writer for the Thrift compact protocol, enough for Parquet's metadata structures
// (FileMetaData, PageHeader): structs, i32/i64/bool/binary fields, lists.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace s3db::formats {

class ThriftCompactWriter {
 public:
  // Compact protocol type ids.
  static constexpr std::uint8_t kBoolTrue = 1;
  static constexpr std::uint8_t kBoolFalse = 2;
  static constexpr std::uint8_t kI8 = 3;
  static constexpr std::uint8_t kI16 = 4;
  static constexpr std::uint8_t kI32 = 5;
  static constexpr std::uint8_t kI64 = 6;
  static constexpr std::uint8_t kDouble = 7;
  static constexpr std::uint8_t kBinary = 8;
  static constexpr std::uint8_t kList = 9;
  static constexpr std::uint8_t kStruct = 12;

  // Fields of the current struct must be written in increasing id order.
  void FieldI8(std::int16_t id, std::int8_t value);
  void FieldI32(std::int16_t id, std::int32_t value);
  void FieldI64(std::int16_t id, std::int64_t value);
  void FieldBool(std::int16_t id, bool value);
  void FieldBinary(std::int16_t id, std::string_view value);

  // Starts a struct-valued field; close it with StructEnd().
  void FieldStructBegin(std::int16_t id);
  // Starts a list field of `size` elements of `element_type`; then write the elements
  // with ListI32 / ListBinary / ListStructBegin+StructEnd.
  void FieldListBegin(std::int16_t id, std::uint8_t element_type, std::size_t size);

  void ListI32(std::int32_t value);
  void ListBinary(std::string_view value);
  void ListStructBegin();

  // Ends the current struct (writes the stop byte). Call once more at the very end for the
  // top-level struct.
  void StructEnd();

  const std::string& bytes() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void FieldHeader(std::int16_t id, std::uint8_t type);
  void Varint(std::uint64_t value);
  void ZigzagVarint(std::int64_t value);

  std::string out_;
  std::int16_t last_field_id_ = 0;
  std::vector<std::int16_t> enclosing_field_ids_;
};

}  // namespace s3db::formats
