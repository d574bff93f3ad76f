// The prepare journal: an append-only file in front of the SQLite change log.
//
// A writer's Prepare must be durable (per the fsync policy) before its object-store write, and
// a SQLite commit per write costs tens of microseconds. The journal makes it one write(2) of a
// self-checking record instead; a background mover copies the journaled changes into SQLite in
// large transactions and then deletes the journal files it emptied. At the next open, whatever
// a dead process left in journal files is copied into SQLite before anything else.
//
// A file holds records one after another:
//   u32 magic 'S3PJ' | u8 kind | u32 payload length | u32 CRC-32 | payload | u64 sequence
// The CRC covers kind, payload and sequence; the sequence comes last so that a record can be
// encoded and checksummed before the log hands out its sequence number. Integers are
// little-endian. A crash can only tear the last record of a file (records are appended, and a
// failed append is cut off again or ends the file's use), so a reader stops at the first record
// that is incomplete or fails its check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "s3db/error.h"
#include "s3db/plugin.h"

namespace s3db::replicator::internal {

enum class JournalRecordKind : std::uint8_t {
  kPrepare = 1,  // a prepared change
  kAbandon = 2,  // the prepared change with this sequence was abandoned (its write failed)
  kConfirm = 3,  // the prepared change with this sequence was confirmed (its write succeeded)
};

// A prepared change in journal form: the record's text without its sequence number.
class JournalEntry {
 public:
  // `before_json` / `after_json`: the change's records as JSON text (absent: none).
  JournalEntry(const Change& change, const std::optional<std::string>& before_json,
               const std::optional<std::string>& after_json);
  // A record without payload: kAbandon or kConfirm.
  explicit JournalEntry(JournalRecordKind kind);

  // The whole record for `sequence`.
  std::string Finish(std::uint64_t sequence) const;

 private:
  JournalRecordKind kind_;
  std::string payload_;
  std::uint32_t partial_crc_;  // over kind and payload
};

struct JournalRecord {
  JournalRecordKind kind = JournalRecordKind::kPrepare;
  std::uint64_t sequence = 0;
  // kPrepare: the change without its records (resource, id, revision, action, timestamp and
  // write_id), and the records as JSON text.
  Change change;
  std::optional<std::string> before_json;
  std::optional<std::string> after_json;
};

struct JournalContents {
  std::vector<JournalRecord> records;
  bool torn = false;  // the file ended with an incomplete or damaged record (ignored)
};

// Reads every whole record of a journal file, in order.
Result<JournalContents> ReadJournalFile(const std::string& path);

}  // namespace s3db::replicator::internal
