// The "csv", "jsonl" and "parquet" drivers: append every change as one row to a local file.
//
// Config (the replicator's "config" object):
//   output       {driver: 'filesystem', path}; the short form `outputPath: <path>` works too.
//                The folder is created when missing. (driver 's3' is not supported yet.)
//   mode         'append' (default): one row per change. ('overwrite' is not supported yet.)
//   rotateBy     'date' (default): files "<target>_<YYYY-MM-DD>.<ext>", the day of the
//                change time in `timezone`; null: one file "<target>.<ext>"; 'size': daily
//                names, continued in "<target>_<date>_0002.<ext>"… once a flushed file has
//                reached `rotateSize` bytes (default 100 MiB).
//   timezone     'UTC' (default), 'Z', or a fixed offset '+HH:MM' / '-HH:MM' / '+HHMM'.
//   format keys  passed to the writer (see src/formats/record_writers.h): delimiter, bom,
//                escapeFormulas (csv); compress, gzipLevel (jsonl); compression,
//                rowGroupSize, dictionary (parquet).
// Rows: the record's fields plus "_action", "_changed_at" (ISO 8601 UTC, milliseconds) and
// "_change_id". Columns: "id", the source resource's attributes in definition order, the
// three meta columns, then other fields in first-seen order.
//
// Durability: Flush() publishes every open file atomically (a complete file by rename), so a
// reader never sees a broken file. Each accepted row is also appended to a staging file
// "<state_dir>/file-staging/<file name>.jsonl" (fsynced at Flush). After a restart, the first
// change for a file rebuilds it from its staging rows, and a change whose _change_id is
// already staged is acknowledged without writing it again: replays never duplicate rows.
#pragma once

#include <memory>

#include "s3db/replicator/driver.h"

namespace s3db::replicator {

// `format`: "csv", "jsonl" or "parquet".
Result<std::unique_ptr<Driver>> NewFileDriver(std::string_view format, const JsonObject& config,
                                              const DriverContext& context);

// Registers "csv", "jsonl" and "parquet" in the driver registry.
void RegisterFileDrivers();

}  // namespace s3db::replicator
