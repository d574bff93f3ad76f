#include "formats/parquet_writer.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "formats/datetime.h"
#include "formats/json_text.h"
#include "formats/parquet_encoding.h"
#include "formats/thrift_compact.h"

namespace s3db::formats {
namespace {

// Parquet enum values (parquet.thrift).
constexpr std::int32_t kTypeBoolean = 0;
constexpr std::int32_t kTypeInt64 = 2;
constexpr std::int32_t kTypeDouble = 5;
constexpr std::int32_t kTypeByteArray = 6;
constexpr std::int32_t kRepetitionOptional = 1;
constexpr std::int32_t kRepetitionRepeated = 2;
constexpr std::int32_t kConvertedUtf8 = 0;
constexpr std::int32_t kConvertedList = 3;
constexpr std::int32_t kConvertedTimestampMicros = 10;
constexpr std::int32_t kConvertedJson = 19;
constexpr std::int16_t kLogicalString = 1;
constexpr std::int16_t kLogicalList = 3;
constexpr std::int16_t kLogicalTimestamp = 8;
constexpr std::int16_t kLogicalJson = 12;
constexpr std::int32_t kEncodingPlain = 0;
constexpr std::int32_t kEncodingRle = 3;
constexpr std::int32_t kEncodingRleDictionary = 8;
constexpr std::int32_t kPageData = 0;
constexpr std::int32_t kPageDictionary = 2;

constexpr std::string_view kMagic = "PAR1";
constexpr std::size_t kMaxStatisticsBytes = 4096;
constexpr std::size_t kMaxLevelsPerPage = 20000;
constexpr std::int64_t kMaxExactDoubleInteger = std::int64_t{1} << 53;

enum class Layout { kUnknown, kScalar, kList };
enum class Leaf { kUnknown, kBoolean, kInt64, kDouble, kString, kJson, kTimestamp };

std::string_view LeafName(Leaf leaf) {
  switch (leaf) {
    case Leaf::kUnknown:
      return "unknown";
    case Leaf::kBoolean:
      return "boolean";
    case Leaf::kInt64:
      return "int64";
    case Leaf::kDouble:
      return "double";
    case Leaf::kString:
      return "string";
    case Leaf::kJson:
      return "json";
    case Leaf::kTimestamp:
      return "timestamp";
  }
  return "unknown";
}

std::int32_t PhysicalType(Leaf leaf) {
  switch (leaf) {
    case Leaf::kBoolean:
      return kTypeBoolean;
    case Leaf::kInt64:
    case Leaf::kTimestamp:
      return kTypeInt64;
    case Leaf::kDouble:
      return kTypeDouble;
    default:
      return kTypeByteArray;
  }
}

std::int32_t CodecId(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return 0;
    case Codec::kSnappy:
      return 1;
    case Codec::kGzip:
      return 2;
    case Codec::kZstd:
      return 6;
    case Codec::kLz4Raw:
      return 7;
  }
  return 0;
}

// What the footer needs to know about one column chunk.
struct ChunkMeta {
  bool written = false;           // false: the row group lacks this column (all null)
  bool null_placeholder = false;  // written by MaterializeNullChunk (only levels, all null)
  Layout written_layout = Layout::kUnknown;
  std::int64_t num_values = 0;  // level entries, nulls included
  std::int64_t data_page_offset = 0;
  std::int64_t dictionary_page_offset = -1;
  std::int64_t total_uncompressed_size = 0;
  std::int64_t total_compressed_size = 0;
  bool dictionary_encoded = false;
  std::int64_t null_count = 0;
  bool has_min_max = false;
  std::string min_value;
  std::string max_value;
};

struct RowGroupMeta {
  std::int64_t num_rows = 0;
  std::vector<ChunkMeta> chunks;  // by column index; may be shorter than the column count
};

// The non-null values of one chunk, converted to the leaf type.
struct LeafValues {
  Leaf leaf = Leaf::kUnknown;
  std::vector<std::uint8_t> booleans;
  std::vector<std::int64_t> integers;  // INT64 and TIMESTAMP
  std::vector<double> doubles;
  std::vector<std::string> bytes;  // STRING and JSON

  std::size_t size() const {
    switch (leaf) {
      case Leaf::kBoolean:
        return booleans.size();
      case Leaf::kInt64:
      case Leaf::kTimestamp:
        return integers.size();
      case Leaf::kDouble:
        return doubles.size();
      default:
        return bytes.size();
    }
  }
  std::size_t PlainSize(std::size_t index) const {
    switch (leaf) {
      case Leaf::kBoolean:
        return 1;
      case Leaf::kInt64:
      case Leaf::kTimestamp:
      case Leaf::kDouble:
        return 8;
      default:
        return 4 + bytes[index].size();
    }
  }
  void AppendPlain(std::size_t begin, std::size_t end, std::string& out) const {
    switch (leaf) {
      case Leaf::kBoolean:
        AppendPlainBooleans(booleans.data() + begin, end - begin, out);
        return;
      case Leaf::kInt64:
      case Leaf::kTimestamp:
        for (std::size_t i = begin; i < end; ++i) AppendInt64LittleEndian(integers[i], out);
        return;
      case Leaf::kDouble:
        for (std::size_t i = begin; i < end; ++i) AppendDoubleLittleEndian(doubles[i], out);
        return;
      default:
        for (std::size_t i = begin; i < end; ++i) {
          AppendInt32LittleEndian(static_cast<std::uint32_t>(bytes[i].size()), out);
          out.append(bytes[i]);
        }
    }
  }
};

// Running statistics over the non-null values of one chunk (or part of one).
struct ValueStats {
  std::size_t count = 0;
  bool any_true = false;
  bool any_false = false;
  std::int64_t integer_min = 0, integer_max = 0;
  double double_min = 0, double_max = 0;
  std::string bytes_min, bytes_max;

  void Add(const LeafValues& values) {
    std::size_t n = values.size();
    if (n == 0) return;
    switch (values.leaf) {
      case Leaf::kBoolean:
        for (std::uint8_t b : values.booleans) (b ? any_true : any_false) = true;
        break;
      case Leaf::kInt64:
      case Leaf::kTimestamp:
        if (count == 0) integer_min = integer_max = values.integers[0];
        for (std::int64_t v : values.integers) {
          integer_min = std::min(integer_min, v);
          integer_max = std::max(integer_max, v);
        }
        break;
      case Leaf::kDouble:
        if (count == 0) double_min = double_max = values.doubles[0];
        for (double v : values.doubles) {
          double_min = std::min(double_min, v);
          double_max = std::max(double_max, v);
        }
        break;
      case Leaf::kString:
      case Leaf::kJson: {
        const std::string* lo = count == 0 ? &values.bytes[0] : &bytes_min;
        const std::string* hi = count == 0 ? &values.bytes[0] : &bytes_max;
        for (const std::string& v : values.bytes) {
          if (v < *lo) lo = &v;  // std::string compares bytes as unsigned char
          if (*hi < v) hi = &v;
        }
        if (lo != &bytes_min) bytes_min = *lo;
        if (hi != &bytes_max) bytes_max = *hi;
        break;
      }
      case Leaf::kUnknown:
        return;
    }
    count += n;
  }

  void Merge(const ValueStats& other) {
    if (other.count == 0) return;
    if (count == 0) {
      *this = other;
      return;
    }
    any_true |= other.any_true;
    any_false |= other.any_false;
    integer_min = std::min(integer_min, other.integer_min);
    integer_max = std::max(integer_max, other.integer_max);
    double_min = std::min(double_min, other.double_min);
    double_max = std::max(double_max, other.double_max);
    if (other.bytes_min < bytes_min) bytes_min = other.bytes_min;
    if (bytes_max < other.bytes_max) bytes_max = other.bytes_max;
    count += other.count;
  }

  // Sets the chunk's min_value / max_value (PLAIN-encoded), if it has any.
  void Write(Leaf leaf, ChunkMeta& chunk) const {
    if (count == 0) return;
    std::string min, max;
    switch (leaf) {
      case Leaf::kBoolean:
        min.push_back(any_false ? 0 : 1);
        max.push_back(any_true ? 1 : 0);
        break;
      case Leaf::kInt64:
      case Leaf::kTimestamp:
        AppendInt64LittleEndian(integer_min, min);
        AppendInt64LittleEndian(integer_max, max);
        break;
      case Leaf::kDouble: {
        // The specification asks for -0.0 as a zero minimum and +0.0 as a zero maximum.
        double lo = double_min == 0.0 ? -0.0 : double_min;
        double hi = double_max == 0.0 ? 0.0 : double_max;
        AppendDoubleLittleEndian(lo, min);
        AppendDoubleLittleEndian(hi, max);
        break;
      }
      case Leaf::kString:
      case Leaf::kJson:
        if (bytes_min.size() > kMaxStatisticsBytes || bytes_max.size() > kMaxStatisticsBytes) {
          return;
        }
        min = bytes_min;
        max = bytes_max;
        break;
      case Leaf::kUnknown:
        return;
    }
    chunk.has_min_max = true;
    chunk.min_value = std::move(min);
    chunk.max_value = std::move(max);
  }
};

// Encoded data pages of one chunk (or of its provisional tail): headers and compressed bodies.
struct EncodedPages {
  std::string bytes;
  std::int64_t uncompressed_size = 0;  // headers + uncompressed bodies
  std::int64_t num_values = 0;         // level entries, nulls included
  std::int64_t null_count = 0;
  bool uses_dictionary = false;  // some page is RLE_DICTIONARY
  ValueStats stats;
};

// The dictionary of one chunk: distinct values in first-seen order. It only grows by
// appending, so the indices of pages already encoded stay valid while later pages add
// entries; once it would grow past the size limit (or hold mostly unique values), the chunk
// falls back to PLAIN pages for good.
struct ChunkDictionary {
  bool initialized = false;
  bool active = false;  // later pages may still use it
  LeafValues entries;
  std::unordered_map<std::string, std::uint32_t> byte_index;   // STRING and JSON
  std::unordered_map<std::uint64_t, std::uint32_t> bit_index;  // INT64, TIMESTAMP, DOUBLE
  std::size_t plain_bytes = 0;
  std::size_t sealed_values = 0;  // non-null values of the chunk's sealed pages
  // The dictionary page as last encoded (header + compressed body), for `page_entries`.
  std::string page;
  std::int64_t page_uncompressed_size = 0;
  std::size_t page_entries = 0;

  // Looks up or appends every value; fills `indices`. False (and nothing changed) when the
  // dictionary would pass `size_limit` bytes, or, with `check_ratio`, hold more entries than
  // half of `total_values`.
  bool Extend(const LeafValues& values, std::size_t size_limit, bool check_ratio,
              std::size_t total_values, std::vector<std::uint32_t>& indices) {
    std::size_t before = entries.size();
    std::size_t bytes_before = plain_bytes;
    std::size_t max_entries =
        check_ratio ? total_values / 2 : std::numeric_limits<std::size_t>::max();
    bool is_bytes = values.leaf == Leaf::kString || values.leaf == Leaf::kJson;
    indices.clear();
    indices.reserve(values.size());
    bool fits = true;
    for (std::size_t i = 0; i < values.size() && fits; ++i) {
      std::uint32_t next = static_cast<std::uint32_t>(entries.size());
      bool inserted;
      std::uint32_t index;
      if (is_bytes) {
        auto [it, added] = byte_index.try_emplace(values.bytes[i], next);
        inserted = added;
        index = it->second;
        if (added) {
          entries.bytes.push_back(values.bytes[i]);
          plain_bytes += 4 + values.bytes[i].size();
        }
      } else {
        std::uint64_t key;
        if (values.leaf == Leaf::kDouble) {
          std::memcpy(&key, &values.doubles[i], sizeof key);  // keeps -0.0 apart from 0.0
        } else {
          key = static_cast<std::uint64_t>(values.integers[i]);
        }
        auto [it, added] = bit_index.try_emplace(key, next);
        inserted = added;
        index = it->second;
        if (added) {
          if (values.leaf == Leaf::kDouble) {
            entries.doubles.push_back(values.doubles[i]);
          } else {
            entries.integers.push_back(values.integers[i]);
          }
          plain_bytes += 8;
        }
      }
      if (inserted && (plain_bytes > size_limit || entries.size() > max_entries)) fits = false;
      indices.push_back(index);
    }
    if (fits) return true;
    // Undo this batch's entries.
    for (std::size_t e = before; e < entries.size(); ++e) {
      if (is_bytes) {
        byte_index.erase(entries.bytes[e]);
      } else if (values.leaf == Leaf::kDouble) {
        std::uint64_t key;
        std::memcpy(&key, &entries.doubles[e], sizeof key);
        bit_index.erase(key);
      } else {
        bit_index.erase(static_cast<std::uint64_t>(entries.integers[e]));
      }
    }
    entries.bytes.resize(is_bytes ? before : entries.bytes.size());
    entries.doubles.resize(values.leaf == Leaf::kDouble ? before : entries.doubles.size());
    entries.integers.resize(!is_bytes && values.leaf != Leaf::kDouble ? before
                                                                      : entries.integers.size());
    plain_bytes = bytes_before;
    indices.clear();
    return false;
  }

  // Falls back to PLAIN for the rest of the chunk: no more entries will be looked up.
  void Freeze() {
    active = false;
    byte_index = {};
    bit_index = {};
  }
};

// The open row group's chunk of one column with a decided type: the rows sealed into data
// pages so far (encoded and compressed once) and the dictionary they use.
struct OpenChunk {
  EncodedPages sealed;
  ChunkDictionary dictionary;
  std::size_t rows = 0;
};

struct ColumnState {
  Layout layout = Layout::kUnknown;
  Leaf leaf = Leaf::kUnknown;
  // This row group's values not sealed into `open` yet, null for missing. A column without a
  // decided type keeps all of its row group's values here.
  std::vector<Json> buffered;
  std::size_t buffered_bytes = 0;  // estimated size of `buffered`
  int provisional_publishes = 0;   // flushes that published `buffered` without sealing it
  OpenChunk open;
};

// A column whose values can be encoded: its layout and leaf type are known.
bool Decided(const ColumnState& state) {
  return state.layout == Layout::kScalar ||
         (state.layout == Layout::kList && state.leaf != Leaf::kUnknown);
}

bool HasValue(const std::vector<Json>& values) {
  for (const Json& value : values) {
    if (!value.is_null()) return true;
  }
  return false;
}

tl::unexpected<Error> DoesNotFit(std::string_view column, const Json& value, Leaf leaf,
                                 std::string_view advice) {
  std::string shown = JsonText(value);
  if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
  std::string message = "column '" + std::string(column) + "' holds " +
                        std::string(LeafName(leaf)) + " values; " + shown + " does not fit";
  if (!advice.empty()) message += " (" + std::string(advice) + ")";
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

bool IsIntegral(const Json& value) { return value.is_int64() || value.is_uint64(); }

bool FitsInt64(const Json& value) {
  if (value.is_int64()) return true;
  if (value.is_uint64()) {
    return value.get_uint64() <=
           static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  }
  if (value.is_double()) {
    double d = value.get_double();
    return std::trunc(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
  }
  return false;
}

bool FitsDoubleExactly(const Json& value) {
  if (value.is_double()) return true;
  if (value.is_int64()) {
    std::int64_t i = value.get_int64();
    return i >= -kMaxExactDoubleInteger && i <= kMaxExactDoubleInteger;
  }
  if (value.is_uint64()) return value.get_uint64() <= std::uint64_t{1} << 53;
  return false;
}

std::string_view StringView(const Json& value) {
  const auto& text = value.get_string();
  return std::string_view(text.data(), text.size());
}

// Checks a non-null value against a decided leaf type.
Status CheckLeafFits(Leaf leaf, const Json& value, std::string_view column) {
  switch (leaf) {
    case Leaf::kUnknown:
    case Leaf::kString:
    case Leaf::kJson:
      return Ok();
    case Leaf::kBoolean:
      if (value.is_bool()) return Ok();
      return DoesNotFit(column, value, leaf, "");
    case Leaf::kInt64:
      if (FitsInt64(value)) return Ok();
      if (value.is_uint64()) {
        return DoesNotFit(column, value, leaf, "above 2^63-1; declare the column as string");
      }
      if (value.is_double()) return DoesNotFit(column, value, leaf, "declare it as number");
      return DoesNotFit(column, value, leaf, "");
    case Leaf::kDouble:
      if (FitsDoubleExactly(value)) return Ok();
      if (IsIntegral(value)) {
        return DoesNotFit(column, value, leaf, "beyond 2^53 a double would lose digits");
      }
      return DoesNotFit(column, value, leaf, "");
    case Leaf::kTimestamp: {
      if (!value.is_string()) return DoesNotFit(column, value, leaf, "expected ISO 8601 text");
      auto parsed = ParseIso8601Micros(StringView(value));
      if (!parsed) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "column '" + std::string(column) + "': " + parsed.error().message);
      }
      return Ok();
    }
  }
  return Ok();
}

Status CheckFits(const ColumnState& state, const Json& value, std::string_view column) {
  if (value.is_null()) return Ok();
  switch (state.layout) {
    case Layout::kUnknown:
      return Ok();
    case Layout::kScalar:
      return CheckLeafFits(state.leaf, value, column);
    case Layout::kList:
      if (!value.is_array()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "column '" + std::string(column) + "' holds lists; " +
                             JsonText(value).substr(0, 60) + " is not an array");
      }
      for (const Json& element : value.get_array()) {
        if (element.is_null()) continue;
        S3DB_RETURN_IF_ERROR(CheckLeafFits(state.leaf, element, column));
      }
      return Ok();
  }
  return Ok();
}

// The leaf type that holds every value of `values` (non-null) without changing any.
Leaf InferLeaf(const std::vector<const Json*>& values) {
  bool all_bool = true, all_string = true, all_integer = true, all_number = true;
  bool any_nested = false, any_big_unsigned = false, all_exact = true;
  for (const Json* value : values) {
    all_bool &= value->is_bool();
    all_string &= value->is_string();
    all_integer &= IsIntegral(*value);
    all_number &= value->is_number();
    any_nested |= value->is_array() || value->is_object();
    if (value->is_uint64() && !FitsInt64(*value)) any_big_unsigned = true;
    if (IsIntegral(*value) && !FitsDoubleExactly(*value)) all_exact = false;
  }
  if (values.empty()) return Leaf::kUnknown;
  if (any_nested) return Leaf::kJson;
  if (all_bool) return Leaf::kBoolean;
  if (all_string) return Leaf::kString;
  if (all_integer) return any_big_unsigned ? Leaf::kString : Leaf::kInt64;
  if (all_number) return all_exact ? Leaf::kDouble : Leaf::kString;
  return Leaf::kString;
}

// Decides the layout (and leaf, if possible) of an undecided column from its buffered values.
void InferColumn(ColumnState& state) {
  std::vector<const Json*> values;
  bool all_arrays = true;
  for (const Json& value : state.buffered) {
    if (value.is_null()) continue;
    values.push_back(&value);
    all_arrays &= value.is_array();
  }
  if (values.empty()) return;
  if (!all_arrays) {
    state.layout = Layout::kScalar;
    state.leaf = InferLeaf(values);
    return;
  }
  state.layout = Layout::kList;
  std::vector<const Json*> elements;
  for (const Json* value : values) {
    for (const Json& element : value->get_array()) {
      if (!element.is_null()) elements.push_back(&element);
    }
  }
  state.leaf = InferLeaf(elements);
}

void InferListLeaf(ColumnState& state) {
  std::vector<const Json*> elements;
  for (const Json& value : state.buffered) {
    if (!value.is_array()) continue;
    for (const Json& element : value.get_array()) {
      if (!element.is_null()) elements.push_back(&element);
    }
  }
  state.leaf = InferLeaf(elements);
}

Status AppendLeafValue(const Json& value, LeafValues& out) {
  switch (out.leaf) {
    case Leaf::kBoolean:
      out.booleans.push_back(value.get_bool() ? 1 : 0);
      return Ok();
    case Leaf::kInt64:
      if (value.is_int64()) {
        out.integers.push_back(value.get_int64());
      } else if (value.is_uint64()) {
        out.integers.push_back(static_cast<std::int64_t>(value.get_uint64()));
      } else {
        out.integers.push_back(static_cast<std::int64_t>(value.get_double()));
      }
      return Ok();
    case Leaf::kDouble:
      if (value.is_double()) {
        out.doubles.push_back(value.get_double());
      } else if (value.is_int64()) {
        out.doubles.push_back(static_cast<double>(value.get_int64()));
      } else {
        out.doubles.push_back(static_cast<double>(value.get_uint64()));
      }
      return Ok();
    case Leaf::kString:
      if (value.is_string()) {
        out.bytes.emplace_back(StringView(value));
      } else {
        out.bytes.push_back(JsonText(value));
      }
      return Ok();
    case Leaf::kJson:
      out.bytes.push_back(JsonText(value));
      return Ok();
    case Leaf::kTimestamp: {
      S3DB_ASSIGN_OR_RETURN(std::int64_t micros, ParseIso8601Micros(StringView(value)));
      out.integers.push_back(micros);
      return Ok();
    }
    case Leaf::kUnknown:
      break;
  }
  return MakeError(ErrorCode::kInternal, "parquet: value for a column without a type");
}

std::string PageHeader(std::int32_t page_type, std::size_t uncompressed, std::size_t compressed,
                       std::int32_t num_values, std::int32_t encoding) {
  ThriftCompactWriter w;
  w.FieldI32(1, page_type);
  w.FieldI32(2, static_cast<std::int32_t>(uncompressed));
  w.FieldI32(3, static_cast<std::int32_t>(compressed));
  if (page_type == kPageDictionary) {
    w.FieldStructBegin(7);
    w.FieldI32(1, num_values);
    w.FieldI32(2, kEncodingPlain);
    w.StructEnd();
  } else {
    w.FieldStructBegin(5);
    w.FieldI32(1, num_values);
    w.FieldI32(2, encoding);
    w.FieldI32(3, kEncodingRle);
    w.FieldI32(4, kEncodingRle);
    w.StructEnd();
  }
  w.StructEnd();
  return w.Take();
}

void AppendLevels(const std::vector<std::uint32_t>& levels, std::size_t begin, std::size_t end,
                  int max_level, std::string& out) {
  std::string encoded;
  AppendRleHybrid(levels.data() + begin, end - begin,
                  BitWidth(static_cast<std::uint32_t>(max_level)), encoded);
  AppendInt32LittleEndian(static_cast<std::uint32_t>(encoded.size()), out);
  out.append(encoded);
}

}  // namespace

// See PrepareFlushTrailer.
constexpr std::uint64_t kReencodeBudget = 16;
// A Flush seals the rows a column buffered since its last sealed page into data pages once
// they reach kSealRows rows or kSealBytes bytes, or were published provisionally
// kMaxProvisionalPublishes times: so no value is encoded more than kMaxProvisionalPublishes
// + 1 times, and each Flush re-encodes at most about that much per column.
constexpr std::size_t kSealRows = 1024;
constexpr std::size_t kSealBytes = 64u << 10;
constexpr int kMaxProvisionalPublishes = 8;
// Below this many values a chunk keeps its dictionary even if most values are distinct (the
// ratio says little yet); only the size limit applies.
constexpr std::size_t kDictionaryTrialValues = 1000;

struct ParquetWriter::State {
  ColumnSet columns;
  ParquetOptions options;
  std::unique_ptr<ByteSink> sink;
  StickyError sticky;
  std::vector<ColumnState> column_states;
  std::vector<RowGroupMeta> row_groups;
  std::size_t buffered_rows = 0;   // rows of the open row group (sealed or not)
  std::size_t buffered_bytes = 0;  // estimated size of the open row group's values
  std::int64_t total_rows = 0;
  std::size_t published_trailer = 0;  // bytes of the last Flush's trailer (rows still buffered)
  std::uint64_t reencoded_rows = 0;   // rows encoded provisionally for undecided columns
  bool finished = false;
  bool abandoned = false;
  std::vector<const Json*> cells;

  Status EnsureMagic() {
    if (sink->BodySize() == 0) return sink->Append(kMagic);
    return Ok();
  }

  // Appends one page (header + compressed body) to `out`; adds its uncompressed size
  // (header included) to `uncompressed_size`.
  Status AppendPage(std::int32_t page_type, const std::string& body, std::int32_t num_values,
                    std::int32_t encoding, std::string& out, std::int64_t& uncompressed_size) {
    S3DB_ASSIGN_OR_RETURN(std::string compressed, Compress(options.compression, body));
    if (body.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()) ||
        compressed.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      return MakeError(ErrorCode::kInvalidArgument, "parquet: a page is larger than 2 GiB");
    }
    std::string header =
        PageHeader(page_type, body.size(), compressed.size(), num_values, encoding);
    out.append(header);
    out.append(compressed);
    uncompressed_size += static_cast<std::int64_t>(header.size() + body.size());
    return Ok();
  }

  // Encodes the buffered values of a decided column as data pages appended to `out`, with
  // `dictionary` while it is active (it grows by this batch's new values, or falls back to
  // PLAIN for good if it cannot take them). `whole_chunk`: these are all the chunk's rows, so
  // the dictionary must pay off (at most half as many entries as values). `seal`: the pages
  // become part of the chunk (counted for the dictionary's entries-to-values ratio).
  Status EncodePages(const ColumnState& state, ChunkDictionary& dictionary, bool whole_chunk,
                     bool seal, EncodedPages& out) {
    bool is_list = state.layout == Layout::kList;
    int max_definition = is_list ? 3 : 1;
    std::vector<std::uint32_t> definition, repetition;
    std::vector<std::size_t> row_level_end, row_value_end;
    LeafValues values;
    values.leaf = state.leaf;
    definition.reserve(state.buffered.size());
    for (const Json& value : state.buffered) {
      if (!is_list) {
        definition.push_back(value.is_null() ? 0 : 1);
        if (!value.is_null()) S3DB_RETURN_IF_ERROR(AppendLeafValue(value, values));
      } else if (value.is_null()) {
        repetition.push_back(0);
        definition.push_back(0);
      } else if (value.get_array().empty()) {
        repetition.push_back(0);
        definition.push_back(1);
      } else {
        bool first = true;
        for (const Json& element : value.get_array()) {
          repetition.push_back(first ? 0 : 1);
          first = false;
          definition.push_back(element.is_null() ? 2 : 3);
          if (!element.is_null()) S3DB_RETURN_IF_ERROR(AppendLeafValue(element, values));
        }
      }
      row_level_end.push_back(definition.size());
      row_value_end.push_back(values.size());
    }

    out.num_values += static_cast<std::int64_t>(definition.size());
    for (std::uint32_t level : definition) {
      if (static_cast<int>(level) < max_definition) ++out.null_count;
    }
    out.stats.Add(values);

    if (!dictionary.initialized) {
      dictionary.initialized = true;
      dictionary.active = options.dictionary && state.leaf != Leaf::kBoolean;
      dictionary.entries.leaf = state.leaf;
    }
    std::vector<std::uint32_t> indices;
    bool use_dictionary = false;
    if (dictionary.active && values.size() > 0) {
      std::size_t total = dictionary.sealed_values + values.size();
      bool check_ratio = whole_chunk || total >= kDictionaryTrialValues;
      use_dictionary =
          dictionary.Extend(values, options.dictionary_size_limit, check_ratio, total, indices);
      if (!use_dictionary) dictionary.Freeze();
    }
    if (seal && use_dictionary) dictionary.sealed_values += values.size();
    out.uses_dictionary |= use_dictionary;
    int index_bit_width =
        use_dictionary
            ? std::max(1, BitWidth(static_cast<std::uint32_t>(dictionary.entries.size() - 1)))
            : 0;

    std::size_t row = 0;
    std::size_t level_begin = 0, value_begin = 0;
    while (row < row_level_end.size()) {
      // Cut pages at row boundaries once the values reach the page size.
      std::size_t page_bytes = 0;
      std::size_t level_end = level_begin, value_end = value_begin;
      while (row < row_level_end.size()) {
        for (std::size_t v = value_end; v < row_value_end[row]; ++v) {
          page_bytes += use_dictionary ? 4 : values.PlainSize(v);
        }
        level_end = row_level_end[row];
        value_end = row_value_end[row];
        ++row;
        if (page_bytes >= options.page_size || level_end - level_begin >= kMaxLevelsPerPage) {
          break;
        }
      }
      std::string body;
      if (is_list) AppendLevels(repetition, level_begin, level_end, 1, body);
      AppendLevels(definition, level_begin, level_end, max_definition, body);
      if (use_dictionary) {
        body.push_back(static_cast<char>(index_bit_width));
        AppendRleHybrid(indices.data() + value_begin, value_end - value_begin, index_bit_width,
                        body);
      } else {
        values.AppendPlain(value_begin, value_end, body);
      }
      S3DB_RETURN_IF_ERROR(AppendPage(kPageData, body,
                                      static_cast<std::int32_t>(level_end - level_begin),
                                      use_dictionary ? kEncodingRleDictionary : kEncodingPlain,
                                      out.bytes, out.uncompressed_size));
      level_begin = level_end;
      value_begin = value_end;
    }
    return Ok();
  }

  // Seals the column's buffered values into its open chunk's pages. `closing`: the row
  // group is being closed (no more rows will come).
  Status Seal(ColumnState& state, bool closing) {
    if (state.buffered.empty()) return Ok();
    OpenChunk& open = state.open;
    bool whole_chunk = closing && open.rows == 0;
    S3DB_RETURN_IF_ERROR(EncodePages(state, open.dictionary, whole_chunk, true, open.sealed));
    open.rows += state.buffered.size();
    state.buffered.clear();
    state.buffered_bytes = 0;
    state.provisional_publishes = 0;
    return Ok();
  }

  // Appends the chunk of `state` to `out`, which starts at file offset `base`: the dictionary
  // page (encoded again only when entries were added since), the sealed pages, then `tail`
  // (pages of rows not sealed yet) if given.
  Result<ChunkMeta> EmitChunk(const ColumnState& state, OpenChunk& open, const EncodedPages* tail,
                              std::uint64_t base, std::string& out) {
    ChunkMeta chunk;
    chunk.written = true;
    chunk.written_layout = state.layout;
    ChunkDictionary& dictionary = open.dictionary;
    bool uses_dictionary = open.sealed.uses_dictionary || (tail && tail->uses_dictionary);
    std::size_t start = out.size();
    if (uses_dictionary) {
      if (dictionary.page_entries != dictionary.entries.size() || dictionary.page.empty()) {
        std::string body;
        dictionary.entries.AppendPlain(0, dictionary.entries.size(), body);
        dictionary.page.clear();
        dictionary.page_uncompressed_size = 0;
        S3DB_RETURN_IF_ERROR(
            AppendPage(kPageDictionary, body, static_cast<std::int32_t>(dictionary.entries.size()),
                       kEncodingPlain, dictionary.page, dictionary.page_uncompressed_size));
        dictionary.page_entries = dictionary.entries.size();
      }
      chunk.dictionary_page_offset = static_cast<std::int64_t>(base);
      chunk.dictionary_encoded = true;
      out.append(dictionary.page);
      chunk.total_uncompressed_size += dictionary.page_uncompressed_size;
    }
    chunk.data_page_offset = static_cast<std::int64_t>(base + (out.size() - start));
    out.append(open.sealed.bytes);
    chunk.total_uncompressed_size += open.sealed.uncompressed_size;
    chunk.num_values = open.sealed.num_values;
    chunk.null_count = open.sealed.null_count;
    ValueStats stats = open.sealed.stats;
    if (tail) {
      out.append(tail->bytes);
      chunk.total_uncompressed_size += tail->uncompressed_size;
      chunk.num_values += tail->num_values;
      chunk.null_count += tail->null_count;
      stats.Merge(tail->stats);
    }
    chunk.total_compressed_size = static_cast<std::int64_t>(out.size() - start);
    stats.Write(state.leaf, chunk);
    return chunk;
  }

  // Writes an all-null chunk of `num_rows` rows for a column (levels only: valid for any
  // leaf type).
  Result<ChunkMeta> MaterializeNullChunk(Layout layout, std::int64_t num_rows,
                                         std::string* provisional = nullptr) {
    ChunkMeta chunk;
    chunk.written = true;
    chunk.null_placeholder = true;
    chunk.written_layout = layout;
    chunk.num_values = num_rows;
    chunk.null_count = num_rows;
    chunk.data_page_offset =
        static_cast<std::int64_t>(sink->BodySize() + (provisional ? provisional->size() : 0));
    // All levels are 0: one RLE run (header, then the value in one byte: the bit widths
    // of these levels are 1 and 2).
    std::string levels;
    std::uint64_t header = static_cast<std::uint64_t>(num_rows) << 1;
    while (header >= 0x80) {
      levels.push_back(static_cast<char>((header & 0x7F) | 0x80));
      header >>= 7;
    }
    levels.push_back(static_cast<char>(header));
    levels.push_back(0);
    std::string body;
    int sections = layout == Layout::kList ? 2 : 1;  // repetition levels, then definition
    for (int i = 0; i < sections; ++i) {
      AppendInt32LittleEndian(static_cast<std::uint32_t>(levels.size()), body);
      body.append(levels);
    }
    std::string out;
    S3DB_RETURN_IF_ERROR(AppendPage(kPageData, body, static_cast<std::int32_t>(num_rows),
                                    kEncodingPlain, out, chunk.total_uncompressed_size));
    chunk.total_compressed_size = static_cast<std::int64_t>(out.size());
    if (provisional) {
      provisional->append(out);
    } else {
      S3DB_RETURN_IF_ERROR(sink->Append(out));
    }
    return chunk;
  }

  Status CloseRowGroup() {
    if (buffered_rows == 0) return Ok();
    S3DB_RETURN_IF_ERROR(EnsureMagic());
    RowGroupMeta group;
    group.num_rows = static_cast<std::int64_t>(buffered_rows);
    group.chunks.resize(column_states.size());
    for (std::size_t c = 0; c < column_states.size(); ++c) {
      ColumnState& state = column_states[c];
      if (state.layout == Layout::kUnknown) InferColumn(state);
      if (state.layout == Layout::kList && state.leaf == Leaf::kUnknown) InferListLeaf(state);
      if (state.layout != Layout::kUnknown) {
        S3DB_RETURN_IF_ERROR(Seal(state, true));
        std::string out;
        S3DB_ASSIGN_OR_RETURN(group.chunks[c],
                              EmitChunk(state, state.open, nullptr, sink->BodySize(), out));
        S3DB_RETURN_IF_ERROR(sink->Append(out));
      }  // else: all null so far; written at the next footer, once the layout is known
      state.buffered.clear();
      state.buffered_bytes = 0;
      state.provisional_publishes = 0;
      state.open = OpenChunk();
    }
    row_groups.push_back(std::move(group));
    total_rows += static_cast<std::int64_t>(buffered_rows);
    published_trailer = 0;  // the rows it held are in the body now
    reencoded_rows = 0;
    buffered_rows = 0;
    buffered_bytes = 0;
    return Ok();
  }

  // Gives every row group a chunk for every column, in the column's current layout.
  Status MaterializeMissingChunks() {
    for (RowGroupMeta& group : row_groups) {
      group.chunks.resize(column_states.size());
      for (std::size_t c = 0; c < column_states.size(); ++c) {
        Layout layout = column_states[c].layout == Layout::kList ? Layout::kList : Layout::kScalar;
        ChunkMeta& chunk = group.chunks[c];
        bool stale = chunk.null_placeholder && chunk.written_layout != layout;
        if (chunk.written && !stale) continue;
        S3DB_ASSIGN_OR_RETURN(chunk, MaterializeNullChunk(layout, group.num_rows));
      }
    }
    return Ok();
  }

  void WriteLeafSchema(ThriftCompactWriter& w, Leaf leaf, std::string_view name) {
    w.ListStructBegin();
    w.FieldI32(1, PhysicalType(leaf));
    w.FieldI32(3, kRepetitionOptional);
    w.FieldBinary(4, name);
    switch (leaf) {
      case Leaf::kUnknown:
      case Leaf::kString:
        w.FieldI32(6, kConvertedUtf8);
        w.FieldStructBegin(10);
        w.FieldStructBegin(kLogicalString);
        w.StructEnd();
        w.StructEnd();
        break;
      case Leaf::kJson:
        w.FieldI32(6, kConvertedJson);
        w.FieldStructBegin(10);
        w.FieldStructBegin(kLogicalJson);
        w.StructEnd();
        w.StructEnd();
        break;
      case Leaf::kTimestamp:
        w.FieldI32(6, kConvertedTimestampMicros);
        w.FieldStructBegin(10);
        w.FieldStructBegin(kLogicalTimestamp);
        w.FieldBool(1, true);   // isAdjustedToUTC
        w.FieldStructBegin(2);  // unit
        w.FieldStructBegin(2);  // MICROS
        w.StructEnd();
        w.StructEnd();
        w.StructEnd();
        w.StructEnd();
        break;
      default:
        break;
    }
    w.StructEnd();
  }

  std::string BuildFooter() {
    ThriftCompactWriter w;
    w.FieldI32(1, 2);  // version

    std::size_t schema_elements = 1;
    for (const ColumnState& state : column_states) {
      schema_elements += state.layout == Layout::kList ? 3 : 1;
    }
    w.FieldListBegin(2, ThriftCompactWriter::kStruct, schema_elements);
    w.ListStructBegin();
    w.FieldBinary(4, "schema");
    w.FieldI32(5, static_cast<std::int32_t>(column_states.size()));
    w.StructEnd();
    for (std::size_t c = 0; c < column_states.size(); ++c) {
      const ColumnState& state = column_states[c];
      const std::string& name = columns[c].name;
      if (state.layout != Layout::kList) {
        WriteLeafSchema(w, state.leaf, name);
        continue;
      }
      w.ListStructBegin();
      w.FieldI32(3, kRepetitionOptional);
      w.FieldBinary(4, name);
      w.FieldI32(5, 1);
      w.FieldI32(6, kConvertedList);
      w.FieldStructBegin(10);
      w.FieldStructBegin(kLogicalList);
      w.StructEnd();
      w.StructEnd();
      w.StructEnd();
      w.ListStructBegin();
      w.FieldI32(3, kRepetitionRepeated);
      w.FieldBinary(4, "list");
      w.FieldI32(5, 1);
      w.StructEnd();
      WriteLeafSchema(w, state.leaf, "element");
    }

    w.FieldI64(3, total_rows);

    w.FieldListBegin(4, ThriftCompactWriter::kStruct, row_groups.size());
    for (const RowGroupMeta& group : row_groups) {
      w.ListStructBegin();
      w.FieldListBegin(1, ThriftCompactWriter::kStruct, group.chunks.size());
      std::int64_t total_uncompressed = 0, total_compressed = 0;
      for (std::size_t c = 0; c < group.chunks.size(); ++c) {
        const ChunkMeta& chunk = group.chunks[c];
        const ColumnState& state = column_states[c];
        total_uncompressed += chunk.total_uncompressed_size;
        total_compressed += chunk.total_compressed_size;
        std::int64_t first_page = chunk.dictionary_page_offset >= 0 ? chunk.dictionary_page_offset
                                                                    : chunk.data_page_offset;
        w.ListStructBegin();  // ColumnChunk
        w.FieldI64(2, first_page);
        w.FieldStructBegin(3);  // ColumnMetaData
        w.FieldI32(1, PhysicalType(state.leaf));
        if (chunk.dictionary_encoded) {
          w.FieldListBegin(2, ThriftCompactWriter::kI32, 3);
          w.ListI32(kEncodingPlain);
          w.ListI32(kEncodingRle);
          w.ListI32(kEncodingRleDictionary);
        } else {
          w.FieldListBegin(2, ThriftCompactWriter::kI32, 2);
          w.ListI32(kEncodingPlain);
          w.ListI32(kEncodingRle);
        }
        if (state.layout == Layout::kList) {
          w.FieldListBegin(3, ThriftCompactWriter::kBinary, 3);
          w.ListBinary(columns[c].name);
          w.ListBinary("list");
          w.ListBinary("element");
        } else {
          w.FieldListBegin(3, ThriftCompactWriter::kBinary, 1);
          w.ListBinary(columns[c].name);
        }
        w.FieldI32(4, CodecId(options.compression));
        w.FieldI64(5, chunk.num_values);
        w.FieldI64(6, chunk.total_uncompressed_size);
        w.FieldI64(7, chunk.total_compressed_size);
        w.FieldI64(9, chunk.data_page_offset);
        if (chunk.dictionary_page_offset >= 0) w.FieldI64(11, chunk.dictionary_page_offset);
        w.FieldStructBegin(12);  // Statistics
        w.FieldI64(3, chunk.null_count);
        if (chunk.has_min_max) {
          w.FieldBinary(5, chunk.max_value);
          w.FieldBinary(6, chunk.min_value);
        }
        w.StructEnd();
        w.StructEnd();  // ColumnMetaData
        w.StructEnd();  // ColumnChunk
      }
      w.FieldI64(2, total_uncompressed);
      w.FieldI64(3, group.num_rows);
      w.FieldI64(6, total_compressed);
      w.StructEnd();
    }

    w.FieldBinary(6, options.created_by);
    w.FieldListBegin(7, ThriftCompactWriter::kStruct, column_states.size());
    for (std::size_t c = 0; c < column_states.size(); ++c) {
      w.ListStructBegin();
      w.FieldStructBegin(1);  // TYPE_ORDER
      w.StructEnd();
      w.StructEnd();
    }
    w.StructEnd();

    std::string footer = w.Take();
    std::uint32_t length = static_cast<std::uint32_t>(footer.size());
    AppendInt32LittleEndian(length, footer);
    footer.append(kMagic);
    return footer;
  }

  Result<std::string> PrepareFooter() {
    S3DB_RETURN_IF_ERROR(CloseRowGroup());
    S3DB_RETURN_IF_ERROR(EnsureMagic());
    S3DB_RETURN_IF_ERROR(MaterializeMissingChunks());
    return BuildFooter();
  }

  // The trailer of a Flush: the open row group as a provisional last row group, then a
  // footer listing it. Nothing of it enters the body: the row group keeps filling up to
  // rowGroupSize rows. For a column with a decided type, the rows already sealed into pages
  // are copied as they are; its newer rows are sealed now or, while few, encoded for this
  // publish only (see kSealRows). A column whose type is still undecided is typed for this
  // publish only and encoded whole, within a budget: once those publishes would add up to
  // more than kReencodeBudget row groups' worth of rows, its type is decided from the rows
  // so far, for good, and its rows are sealed like any other's.
  Result<std::string> PrepareFlushTrailer() {
    if (buffered_rows == 0) return PrepareFooter();
    S3DB_RETURN_IF_ERROR(EnsureMagic());
    // Committed row groups get their missing chunks in the body, as at any footer.
    S3DB_RETURN_IF_ERROR(MaterializeMissingChunks());

    bool any_undecided = false;
    for (const ColumnState& state : column_states) {
      any_undecided |= !Decided(state) && HasValue(state.buffered);
    }
    if (any_undecided) {
      if (reencoded_rows + buffered_rows > kReencodeBudget * options.row_group_size) {
        for (ColumnState& state : column_states) {
          if (state.layout == Layout::kUnknown) InferColumn(state);
          if (state.layout == Layout::kList && state.leaf == Leaf::kUnknown) {
            InferListLeaf(state);
          }
        }
      } else {
        reencoded_rows += buffered_rows;
      }
    }

    std::vector<std::pair<std::size_t, std::pair<Layout, Leaf>>> provisional_types;
    auto restore_types = [&] {
      for (const auto& [c, type] : provisional_types) {
        column_states[c].layout = type.first;
        column_states[c].leaf = type.second;
      }
    };
    std::string tail;
    RowGroupMeta group;
    group.num_rows = static_cast<std::int64_t>(buffered_rows);
    group.chunks.resize(column_states.size());
    for (std::size_t c = 0; c < column_states.size(); ++c) {
      ColumnState& state = column_states[c];
      std::uint64_t base = sink->BodySize() + tail.size();
      if (Decided(state)) {
        if (state.buffered.empty()) {
          S3DB_ASSIGN_OR_RETURN(group.chunks[c], EmitChunk(state, state.open, nullptr, base, tail));
        } else if (state.buffered.size() >= kSealRows || state.buffered_bytes >= kSealBytes ||
                   state.provisional_publishes >= kMaxProvisionalPublishes) {
          S3DB_RETURN_IF_ERROR(Seal(state, false));
          S3DB_ASSIGN_OR_RETURN(group.chunks[c], EmitChunk(state, state.open, nullptr, base, tail));
        } else {
          EncodedPages pages;
          S3DB_RETURN_IF_ERROR(EncodePages(state, state.open.dictionary, false, false, pages));
          ++state.provisional_publishes;
          S3DB_ASSIGN_OR_RETURN(group.chunks[c], EmitChunk(state, state.open, &pages, base, tail));
        }
        continue;
      }
      // Typed for this publish only: the state is restored after the footer.
      provisional_types.emplace_back(c, std::make_pair(state.layout, state.leaf));
      if (state.layout == Layout::kUnknown) InferColumn(state);
      if (state.layout == Layout::kList && state.leaf == Leaf::kUnknown) InferListLeaf(state);
      Result<ChunkMeta> chunk;
      if (state.layout == Layout::kUnknown) {
        chunk = MaterializeNullChunk(Layout::kScalar, group.num_rows, &tail);
      } else {  // a list whose elements are all null so far encodes only levels
        OpenChunk whole;
        Status encoded = EncodePages(state, whole.dictionary, true, true, whole.sealed);
        chunk = encoded ? EmitChunk(state, whole, nullptr, base, tail)
                        : Result<ChunkMeta>(tl::unexpected(encoded.error()));
      }
      if (!chunk) {
        restore_types();
        return tl::unexpected(chunk.error());
      }
      group.chunks[c] = std::move(*chunk);
    }
    row_groups.push_back(std::move(group));
    total_rows += static_cast<std::int64_t>(buffered_rows);
    tail += BuildFooter();
    row_groups.pop_back();
    total_rows -= static_cast<std::int64_t>(buffered_rows);
    restore_types();
    return tail;
  }
};

namespace {

std::size_t EstimateBytes(const Json& value) {
  switch (value.kind()) {
    case boost::json::kind::string:
      return 24 + value.get_string().size();
    case boost::json::kind::array: {
      std::size_t total = 24;
      for (const Json& item : value.get_array()) total += EstimateBytes(item);
      return total;
    }
    case boost::json::kind::object: {
      std::size_t total = 24;
      for (const auto& field : value.get_object()) {
        total += field.key().size() + EstimateBytes(field.value());
      }
      return total;
    }
    default:
      return 24;
  }
}

ColumnState StateForDeclared(ColumnType type) {
  ColumnState state;
  switch (type) {
    case ColumnType::kAny:
      break;
    case ColumnType::kString:
      state.layout = Layout::kScalar;
      state.leaf = Leaf::kString;
      break;
    case ColumnType::kInteger:
      state.layout = Layout::kScalar;
      state.leaf = Leaf::kInt64;
      break;
    case ColumnType::kNumber:
      state.layout = Layout::kScalar;
      state.leaf = Leaf::kDouble;
      break;
    case ColumnType::kBoolean:
      state.layout = Layout::kScalar;
      state.leaf = Leaf::kBoolean;
      break;
    case ColumnType::kDatetime:
      state.layout = Layout::kScalar;
      state.leaf = Leaf::kTimestamp;
      break;
    case ColumnType::kArray:
      state.layout = Layout::kList;
      break;
    case ColumnType::kJson:
      state.layout = Layout::kScalar;
      state.leaf = Leaf::kJson;
      break;
  }
  return state;
}

}  // namespace

Status ValidateParquetOptions(const ParquetOptions& options) {
  if (options.row_group_size < 1 || options.row_group_size > 10'000'000) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "option `rowGroupSize` must be between 1 and 10000000 rows");
  }
  if (options.page_size < 1024) {
    return MakeError(ErrorCode::kInvalidArgument, "parquet page size must be at least 1024");
  }
  if (options.row_group_bytes < options.page_size) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "parquet row group byte limit must be at least the page size");
  }
  return Ok();
}

Result<ParquetOptions> ParquetOptionsFromJson(const JsonObject& config) {
  ParquetOptions options;
  if (const Json* compression = config.if_contains("compression")) {
    if (!compression->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "option `compression` must be a string: snappy, gzip, zstd, lz4, none");
    }
    S3DB_ASSIGN_OR_RETURN(options.compression, ParseCodec(StringView(*compression)));
  }
  if (const Json* size = config.if_contains("rowGroupSize")) {
    if (!size->is_int64() && !size->is_uint64()) {
      return MakeError(ErrorCode::kInvalidArgument, "option `rowGroupSize` must be an integer");
    }
    std::int64_t rows = size->is_int64() ? size->get_int64() : -1;
    if (rows < 1 || rows > 10'000'000) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "option `rowGroupSize` must be between 1 and 10000000 rows");
    }
    options.row_group_size = static_cast<std::size_t>(rows);
  }
  if (const Json* dictionary = config.if_contains("dictionary")) {
    if (!dictionary->is_bool()) {
      return MakeError(ErrorCode::kInvalidArgument, "option `dictionary` must be a boolean");
    }
    options.dictionary = dictionary->get_bool();
  }
  return options;
}

Result<std::unique_ptr<ParquetWriter>> ParquetWriter::Make(ColumnSet columns,
                                                           ParquetOptions options,
                                                           std::unique_ptr<ByteSink> sink) {
  S3DB_RETURN_IF_ERROR(ValidateParquetOptions(options));
  if (sink == nullptr) return MakeError(ErrorCode::kInvalidArgument, "parquet writer: no sink");
  auto state = std::make_unique<State>();
  state->options = std::move(options);
  state->sink = std::move(sink);
  for (const ColumnSpec& spec : columns.columns()) {
    state->column_states.push_back(StateForDeclared(spec.type));
  }
  state->columns = std::move(columns);
  return std::unique_ptr<ParquetWriter>(new ParquetWriter(std::move(state)));
}

ParquetWriter::ParquetWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

ParquetWriter::~ParquetWriter() {
  if (!state_->finished) Abandon();
}

Status ParquetWriter::CheckUsable() const {
  S3DB_RETURN_IF_ERROR(state_->sticky.Check());
  if (state_->finished) return MakeError(ErrorCode::kInternal, "parquet writer is finished");
  if (state_->abandoned) return MakeError(ErrorCode::kInternal, "parquet writer was abandoned");
  return Ok();
}

Status ParquetWriter::Add(const JsonObject& row) {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  State& s = *state_;

  // Check everything first: a rejected row changes nothing.
  for (const auto& field : row) {
    std::string_view key(field.key().data(), field.key().size());
    if (!IsValidUtf8(key)) {
      return MakeError(ErrorCode::kInvalidArgument, "a field name is not valid UTF-8");
    }
    S3DB_RETURN_IF_ERROR(CheckExportable(field.value(), key));
    if (auto index = s.columns.IndexOf(key)) {
      S3DB_RETURN_IF_ERROR(CheckFits(s.column_states[*index], field.value(), key));
    }
  }

  std::size_t known = s.columns.size();
  if (s.columns.AddFieldsOf(row) > 0) {
    for (std::size_t c = known; c < s.columns.size(); ++c) {
      ColumnState state;
      state.buffered.resize(s.buffered_rows);  // earlier rows of this group: null
      s.column_states.push_back(std::move(state));
    }
  }
  s.columns.Lookup(row, s.cells);
  for (std::size_t c = 0; c < s.cells.size(); ++c) {
    if (s.cells[c] == nullptr) {
      s.column_states[c].buffered.emplace_back();
    } else {
      std::size_t bytes = EstimateBytes(*s.cells[c]);
      s.column_states[c].buffered.push_back(*s.cells[c]);
      s.column_states[c].buffered_bytes += bytes;
      s.buffered_bytes += bytes;
    }
  }
  ++s.buffered_rows;
  if (s.buffered_rows >= s.options.row_group_size ||
      s.buffered_bytes >= s.options.row_group_bytes) {
    return s.sticky.Keep(s.CloseRowGroup());
  }
  return Ok();
}

Status ParquetWriter::Flush() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  auto trailer = state_->PrepareFlushTrailer();
  if (!trailer) return state_->sticky.Keep(tl::unexpected(trailer.error()));
  S3DB_RETURN_IF_ERROR(state_->sticky.Keep(state_->sink->Sync(*trailer)));
  state_->published_trailer = trailer->size();
  return Ok();
}

Status ParquetWriter::Finish() {
  S3DB_RETURN_IF_ERROR(CheckUsable());
  auto footer = state_->PrepareFooter();
  if (!footer) return state_->sticky.Keep(tl::unexpected(footer.error()));
  S3DB_RETURN_IF_ERROR(state_->sticky.Keep(state_->sink->Close(*footer)));
  state_->finished = true;
  return Ok();
}

void ParquetWriter::Abandon() {
  if (state_->abandoned || state_->finished) return;
  state_->abandoned = true;
  for (ColumnState& column : state_->column_states) {
    column.buffered.clear();
    column.open = OpenChunk();
  }
  state_->sink->Abandon();
}

std::uint64_t ParquetWriter::BytesWritten() const {
  return state_->sink->BodySize() + state_->published_trailer;
}

const ColumnSet& ParquetWriter::columns() const { return state_->columns; }

std::size_t ParquetWriter::row_group_count() const { return state_->row_groups.size(); }

std::string ParquetWriter::ColumnTypeDescription(std::size_t index) const {
  const ColumnState& state = state_->column_states.at(index);
  if (state.layout == Layout::kUnknown) return "unknown";
  if (state.layout == Layout::kList) return "list<" + std::string(LeafName(state.leaf)) + ">";
  return std::string(LeafName(state.leaf));
}

}  // namespace s3db::formats
