#include "replicator/prepare_journal.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace s3db::replicator::internal {
namespace {

constexpr std::uint32_t kMagic = 0x4A503353;  // "S3PJ" read as little-endian bytes
constexpr std::size_t kHeaderBytes = 4 + 1 + 4 + 4;
constexpr std::size_t kSequenceBytes = 8;
constexpr std::uint32_t kMaxPayload = 1u << 30;

void PutInteger(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

std::uint64_t GetInteger(const char* in, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return value;
}

void PutText(std::string& out, const std::string& text) {
  PutInteger(out, text.size(), 4);
  out.append(text);
}

std::uint32_t Crc(std::uint32_t crc, const void* data, std::size_t size) {
  return static_cast<std::uint32_t>(
      crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(size)));
}

// Reads the prepared change in `payload`; false when it does not parse.
bool DecodePrepare(std::string_view payload, JournalRecord& record) {
  std::size_t at = 0;
  auto take = [&](std::size_t bytes) -> const char* {
    if (payload.size() - at < bytes) return nullptr;
    const char* where = payload.data() + at;
    at += bytes;
    return where;
  };
  auto take_text = [&](std::string& text) {
    const char* length = take(4);
    if (!length) return false;
    const char* bytes = take(GetInteger(length, 4));
    if (!bytes) return false;
    text.assign(bytes, GetInteger(length, 4));
    return true;
  };
  const char* fixed = take(3 + 8 + 8);
  if (!fixed) return false;
  auto action = static_cast<unsigned char>(fixed[0]);
  if (action > static_cast<unsigned char>(Action::kDelete)) return false;
  record.change.action = static_cast<Action>(action);
  bool has_before = fixed[1] != 0;
  bool has_after = fixed[2] != 0;
  record.change.revision = GetInteger(fixed + 3, 8);
  record.change.timestamp_ms = static_cast<std::int64_t>(GetInteger(fixed + 11, 8));
  std::string before;
  std::string after;
  if (!take_text(record.change.resource) || !take_text(record.change.id) ||
      !take_text(record.change.write_id) || !take_text(before) || !take_text(after)) {
    return false;
  }
  if (has_before) record.before_json = std::move(before);
  if (has_after) record.after_json = std::move(after);
  return at == payload.size();
}

}  // namespace

JournalEntry::JournalEntry(const Change& change, const std::optional<std::string>& before_json,
                           const std::optional<std::string>& after_json)
    : kind_(JournalRecordKind::kPrepare) {
  static const std::string kNone;
  payload_.reserve(64 + change.resource.size() + change.id.size() + change.write_id.size() +
                   (before_json ? before_json->size() : 0) +
                   (after_json ? after_json->size() : 0));
  payload_.push_back(static_cast<char>(change.action));
  payload_.push_back(before_json ? 1 : 0);
  payload_.push_back(after_json ? 1 : 0);
  PutInteger(payload_, change.revision, 8);
  PutInteger(payload_, static_cast<std::uint64_t>(change.timestamp_ms), 8);
  PutText(payload_, change.resource);
  PutText(payload_, change.id);
  PutText(payload_, change.write_id);
  PutText(payload_, before_json ? *before_json : kNone);
  PutText(payload_, after_json ? *after_json : kNone);
  auto kind = static_cast<std::uint8_t>(kind_);
  partial_crc_ = Crc(Crc(0, &kind, 1), payload_.data(), payload_.size());
}

JournalEntry::JournalEntry(JournalRecordKind kind) : kind_(kind) {
  auto byte = static_cast<std::uint8_t>(kind_);
  partial_crc_ = Crc(0, &byte, 1);
}

std::string JournalEntry::Finish(std::uint64_t sequence) const {
  std::string sequence_bytes;
  PutInteger(sequence_bytes, sequence, 8);
  std::uint32_t crc = Crc(partial_crc_, sequence_bytes.data(), sequence_bytes.size());
  std::string record;
  record.reserve(kHeaderBytes + payload_.size() + kSequenceBytes);
  PutInteger(record, kMagic, 4);
  record.push_back(static_cast<char>(kind_));
  PutInteger(record, payload_.size(), 4);
  PutInteger(record, crc, 4);
  record.append(payload_);
  record.append(sequence_bytes);
  return record;
}

Result<JournalContents> ReadJournalFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return MakeError(ErrorCode::kIo,
                     "change log: cannot read the prepare journal " + path + ": " +
                         std::strerror(errno));
  }
  std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) {
    return MakeError(ErrorCode::kIo, "change log: cannot read the prepare journal " + path);
  }
  JournalContents contents;
  std::size_t at = 0;
  while (at < bytes.size()) {
    const char* header = bytes.data() + at;
    if (bytes.size() - at < kHeaderBytes || GetInteger(header, 4) != kMagic) {
      contents.torn = true;
      break;
    }
    auto kind = static_cast<std::uint8_t>(header[4]);
    std::uint64_t length = GetInteger(header + 5, 4);
    auto crc = static_cast<std::uint32_t>(GetInteger(header + 9, 4));
    if (length > kMaxPayload || bytes.size() - at - kHeaderBytes < length + kSequenceBytes) {
      contents.torn = true;
      break;
    }
    const char* payload = header + kHeaderBytes;
    std::uint32_t actual = Crc(Crc(Crc(0, &kind, 1), payload, length), payload + length,
                               kSequenceBytes);
    if (actual != crc) {
      contents.torn = true;
      break;
    }
    JournalRecord record;
    record.sequence = GetInteger(payload + length, 8);
    if (kind == static_cast<std::uint8_t>(JournalRecordKind::kPrepare)) {
      record.kind = JournalRecordKind::kPrepare;
      if (!DecodePrepare(std::string_view(payload, length), record)) {
        contents.torn = true;
        break;
      }
    } else if ((kind == static_cast<std::uint8_t>(JournalRecordKind::kAbandon) ||
                kind == static_cast<std::uint8_t>(JournalRecordKind::kConfirm)) &&
               length == 0) {
      record.kind = static_cast<JournalRecordKind>(kind);
    } else {
      contents.torn = true;
      break;
    }
    contents.records.push_back(std::move(record));
    at += kHeaderBytes + length + kSequenceBytes;
  }
  return contents;
}

}  // namespace s3db::replicator::internal
