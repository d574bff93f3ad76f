#include "formats/thrift_compact.h"

namespace s3db::formats {

void ThriftCompactWriter::Varint(std::uint64_t value) {
  while (value >= 0x80) {
    out_.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out_.push_back(static_cast<char>(value));
}

void ThriftCompactWriter::ZigzagVarint(std::int64_t value) {
  std::uint64_t zigzag =
      (static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63);
  Varint(zigzag);
}

void ThriftCompactWriter::FieldHeader(std::int16_t id, std::uint8_t type) {
  int delta = id - last_field_id_;
  if (delta > 0 && delta <= 15) {
    out_.push_back(static_cast<char>((delta << 4) | type));
  } else {
    out_.push_back(static_cast<char>(type));
    ZigzagVarint(id);
  }
  last_field_id_ = id;
}

void ThriftCompactWriter::FieldI8(std::int16_t id, std::int8_t value) {
  FieldHeader(id, kI8);
  out_.push_back(static_cast<char>(value));
}

void ThriftCompactWriter::FieldI32(std::int16_t id, std::int32_t value) {
  FieldHeader(id, kI32);
  ZigzagVarint(value);
}

void ThriftCompactWriter::FieldI64(std::int16_t id, std::int64_t value) {
  FieldHeader(id, kI64);
  ZigzagVarint(value);
}

void ThriftCompactWriter::FieldBool(std::int16_t id, bool value) {
  FieldHeader(id, value ? kBoolTrue : kBoolFalse);
}

void ThriftCompactWriter::FieldBinary(std::int16_t id, std::string_view value) {
  FieldHeader(id, kBinary);
  Varint(value.size());
  out_.append(value);
}

void ThriftCompactWriter::FieldStructBegin(std::int16_t id) {
  FieldHeader(id, kStruct);
  enclosing_field_ids_.push_back(last_field_id_);
  last_field_id_ = 0;
}

void ThriftCompactWriter::FieldListBegin(std::int16_t id, std::uint8_t element_type,
                                         std::size_t size) {
  FieldHeader(id, kList);
  if (size < 15) {
    out_.push_back(static_cast<char>((size << 4) | element_type));
  } else {
    out_.push_back(static_cast<char>(0xF0 | element_type));
    Varint(size);
  }
}

void ThriftCompactWriter::ListI32(std::int32_t value) { ZigzagVarint(value); }

void ThriftCompactWriter::ListBinary(std::string_view value) {
  Varint(value.size());
  out_.append(value);
}

void ThriftCompactWriter::ListStructBegin() {
  enclosing_field_ids_.push_back(last_field_id_);
  last_field_id_ = 0;
}

void ThriftCompactWriter::StructEnd() {
  out_.push_back(0);
  if (!enclosing_field_ids_.empty()) {
    last_field_id_ = enclosing_field_ids_.back();
    enclosing_field_ids_.pop_back();
  } else {
    last_field_id_ = 0;
  }
}

}  // namespace s3db::formats
