// The "csv", "jsonl", "parquet" and "excel" drivers: export every change to files.
//
// Config (the replicator's "config" object):
//   output       where the files go (see file_output.h): {driver: 'filesystem', path},
//                {driver: 's3', path} (the source database's store, under
//                "plugin=replicator/files/<path>/"), {driver: 's3', connectionString, path};
//                the short form `outputPath: <folder>` works too.
//   mode         'append' (default): one row per change. 'overwrite': the file holds the
//                current state, one row per live record (see below).
//   rotateBy     'date' (default in append mode): files "<target>_<YYYY-MM-DD>.<ext>", the
//                day of the change time in `timezone`; null: one file "<target>.<ext>", never
//                split (CSV and JSONL are continued after a restart, see below);
//                'size': daily names with rotateSize defaulting to 100 MiB. Overwrite mode
//                always writes "<target>.<ext>" (rotateBy must be null or absent).
//   rotateSize   daily files ('date' or 'size'; not excel): a day continues in
//                "<target>_<date>_0002.<ext>"… once a flushed file has reached this many bytes.
//   flushIntervalMs  the least time between two Flush calls (FlushInterval()); absent: the
//                engine's default (10 ms idle, 200 ms busy).
//   closeAfterIdleMs  append with daily files: a past day's file reopened by a late change
//                and idle this long (default 10 minutes) is closed at a flush.
//   timezone     'UTC' (default), 'Z', a fixed offset '+HH:MM' / '-HH:MM' / '+HHMM', or an
//                IANA zone name ('Europe/Paris'; its offset follows daylight saving time).
//                Decides the day of a change and when a day ends: the first delivery or
//                flush after midnight in this zone finishes every open file of an earlier
//                day (staging synced, writer finished); a late change of that day reopens
//                it from its staging file.
//   format keys  passed to the writer (see src/formats/record_writers.h): delimiter, bom,
//                escapeFormulas (csv); compress, gzipLevel (jsonl); compression,
//                rowGroupSize, dictionary (parquet); freezeHeaders, autoFilter (excel).
//   filename     excel: the workbook, e.g. 'report.xlsx' (default 'export.xlsx'); with date
//                rotation the day is added ('report_2025-10-20.xlsx'). One worksheet per
//                target; the whole workbook is regenerated at each Flush. Cells cut to
//                Excel's 32,767 characters are counted in Counters()["truncated_cells"].
// Rows (append): the record's fields plus "_action", "_changed_at" (ISO 8601 UTC,
// milliseconds) and "_change_id". Columns: "id", the source resource's attributes in
// definition order, the three meta columns, then other fields in first-seen order.
// Rows (overwrite): the record's fields only, one row per live record, ordered by id.
//
// Durability, append: Flush() publishes every open file completely (rename, or one upload),
// so a reader never sees a broken file. Each accepted row is also appended to a staging file
// "<state_dir>/file-staging/<file name>.jsonl" (fsynced at Flush, before publishing). After a
// restart, the first change for a file rebuilds it from its staging rows, and a change whose
// _change_id is already staged is acknowledged without writing it again. Staging lines carry
// the change's sequence: ids at or below the checkpoint (CheckpointSaved) are forgotten, and
// the staging files of finished files (earlier size parts, closed past days) are deleted once
// the checkpoint passed all their rows; a late change of a pruned day goes to its next part.
// rotateBy null, CSV and JSONL: after a restart the published file is continued (its content,
// then the staged rows not in it). Around each publish the staging gets a "publishing" line
// (fsynced before the publish) and a "published" line with the file's size (after it), so
// the rows the file holds are known after a kill at any point; the staging then keeps only
// rows not published yet and rows above the checkpoint (rewritten once enough can go).
// Parquet and Excel files cannot be continued: their staging keeps every row.
// Durability, overwrite: every change is appended to "<state_dir>/file-state/<file>.jsonl"
// (id, revision, row or delete; fsynced at Flush); Flush rebuilds the whole file from the
// records in memory and publishes it; Start() loads the logs and republishes every file. A
// change whose revision is not newer than the one held for its record is ignored (replays).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "s3db/replicator/driver.h"

namespace s3db::replicator {

// Milliseconds since the Unix epoch: what the driver takes as now to know today's date.
using WallClockMs = std::function<std::int64_t()>;

// `format`: "csv", "jsonl", "parquet" or "excel". `now`: the wall clock (empty: the system's;
// tests pass their own to cross midnight).
Result<std::unique_ptr<Driver>> NewFileDriver(std::string_view format, const JsonObject& config,
                                              const DriverContext& context, WallClockMs now = {});

// Registers the file formats in the driver registry.
void RegisterFileDrivers();

}  // namespace s3db::replicator
