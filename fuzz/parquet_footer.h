// A reader of the Thrift compact protocol, only to check the Parquet files the writer makes:
// it decodes any struct into a tree and fails (returns false) on malformed bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace s3db::fuzz {

struct ThriftValue {
  int type = 0;              // compact type id (1/2 bool, 3..6 ints, 7 double, 8 binary, ...)
  std::int64_t integer = 0;  // ints and booleans
  std::string binary;
  std::vector<ThriftValue> elements;          // list and set
  std::map<int, ThriftValue> fields;          // struct
};

class ThriftReader {
 public:
  explicit ThriftReader(std::string_view bytes) : bytes_(bytes) {}

  bool ReadStruct(ThriftValue& out, int depth = 0) {
    out.type = 12;
    if (depth > 32) return false;
    int last_id = 0;
    while (true) {
      std::uint8_t header;
      if (!Byte(header)) return false;
      if (header == 0) return true;
      int type = header & 0x0f;
      int delta = header >> 4;
      int id;
      if (delta != 0) {
        id = last_id + delta;
      } else {
        std::int64_t wide;
        if (!ZigZag(wide)) return false;
        id = static_cast<int>(wide);
      }
      last_id = id;
      ThriftValue& field = out.fields[id];
      if (type == 1 || type == 2) {
        field.type = type;
        field.integer = type == 1;
      } else if (!ReadValue(type, field, depth)) {
        return false;
      }
    }
  }

  std::size_t position() const { return position_; }

 private:
  bool ReadValue(int type, ThriftValue& out, int depth) {
    out.type = type;
    switch (type) {
      case 3: {
        std::uint8_t b;
        if (!Byte(b)) return false;
        out.integer = static_cast<std::int8_t>(b);
        return true;
      }
      case 4:
      case 5:
      case 6: return ZigZag(out.integer);
      case 7: {
        if (bytes_.size() - position_ < 8) return false;
        position_ += 8;
        return true;
      }
      case 8: {
        std::uint64_t length;
        if (!Varint(length) || length > bytes_.size() - position_) return false;
        out.binary = std::string(bytes_.substr(position_, length));
        position_ += length;
        return true;
      }
      case 9:
      case 10: {
        std::uint8_t header;
        if (!Byte(header)) return false;
        std::uint64_t size = header >> 4;
        if (size == 15 && !Varint(size)) return false;
        if (size > bytes_.size()) return false;
        int element_type = header & 0x0f;
        for (std::uint64_t i = 0; i < size; ++i) {
          ThriftValue element;
          if (element_type == 1 || element_type == 2) {
            std::uint8_t b;
            if (!Byte(b)) return false;
            element.type = 1;
            element.integer = b == 1;
          } else if (!ReadValue(element_type, element, depth + 1)) {
            return false;
          }
          out.elements.push_back(std::move(element));
        }
        return true;
      }
      case 12: return ReadStruct(out, depth + 1);
      default: return false;  // maps are not used by the writer
    }
  }

  bool Byte(std::uint8_t& out) {
    if (position_ >= bytes_.size()) return false;
    out = static_cast<std::uint8_t>(bytes_[position_++]);
    return true;
  }
  bool Varint(std::uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      std::uint8_t b;
      if (!Byte(b)) return false;
      out |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool ZigZag(std::int64_t& out) {
    std::uint64_t raw;
    if (!Varint(raw)) return false;
    out = static_cast<std::int64_t>(raw >> 1) ^ -static_cast<std::int64_t>(raw & 1);
    return true;
  }

  std::string_view bytes_;
  std::size_t position_ = 0;
};

}  // namespace s3db::fuzz
