// `s3db import`: reads records from a RecordSource and writes them in batches through a
// sink (the local resource, or a running `s3db run` service), counting what failed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cli/record_source.h"
#include "s3db/error.h"
#include "s3db/json.h"

namespace s3db {
class Resource;
class ThreadPool;
}  // namespace s3db

namespace s3db::cli {

// Writes a batch and returns one status per record, in order.
using BatchSink = std::function<std::vector<Status>(std::vector<JsonObject> records)>;

// Insert or upsert each record, as WriteRecordBatch does.
BatchSink ResourceSink(Resource& resource, bool upsert, ThreadPool* pool);

// Inserts (or upserts) each record and returns the stored record (or the error) of each, in
// order. Records with different ids are written in parallel on `pool` (when given); records
// that share an id are written one after the other in input order, so the last upsert of an
// id wins and, without upsert, the first insert of an id wins and the others fail with
// kAlreadyExists.
std::vector<Result<JsonObject>> WriteRecordBatch(Resource& resource, bool upsert, ThreadPool* pool,
                                                 std::vector<JsonObject> records);

struct ImportProgress {
  std::uint64_t imported = 0;
  std::uint64_t failed = 0;
  std::uint64_t bytes_read = 0;
};

struct ImportError {
  std::size_t line = 0;
  std::string message;  // already names the line
};

struct ImportOptions {
  std::size_t batch_size = 500;  // records per sink call
  std::size_t errors_kept = 5;   // first errors kept for the summary
  // Called after every batch, on the importing thread.
  std::function<void(const ImportProgress&)> on_progress;
};

struct ImportSummary {
  std::uint64_t imported = 0;
  std::uint64_t failed = 0;  // records that could not be read or written
  double seconds = 0;
  std::vector<ImportError> first_errors;
  std::string fatal_error;  // non-empty: the input stopped being readable here

  double RecordsPerSecond() const { return seconds > 0 ? imported / seconds : 0; }
  // "imported 250, failed 0 in 1.20 s (208 records/s)"
  std::string SummaryLine() const;
};

ImportSummary ImportRecords(RecordSource& source, const BatchSink& sink,
                            const ImportOptions& options = {});

}  // namespace s3db::cli
