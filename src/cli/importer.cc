#include "cli/importer.h"

#include <chrono>
#include <cstdio>
#include <string>
#include <unordered_map>

#include "core/thread_pool.h"
#include "s3db/resource.h"

namespace s3db::cli {

std::vector<Result<JsonObject>> WriteRecordBatch(Resource& resource, bool upsert, ThreadPool* pool,
                                                 std::vector<JsonObject> records) {
  std::vector<Result<JsonObject>> results(records.size(), MakeError(ErrorCode::kInternal, ""));

  // Records that share an id are written one after the other in input order (so the last
  // upsert wins, and an insert after the first fails with "already exists"); different ids
  // are written in parallel.
  std::vector<std::vector<std::size_t>> groups;
  std::unordered_map<std::string, std::size_t> group_of_id;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Json* id = records[i].if_contains(kIdField);
    if (!id) {
      groups.push_back({i});
      continue;
    }
    auto [found, added] = group_of_id.try_emplace(ToJson(*id), groups.size());
    if (added) groups.emplace_back();
    groups[found->second].push_back(i);
  }

  auto write_one = [&](std::size_t i) {
    if (!upsert) {
      results[i] = resource.Insert(std::move(records[i]));
    } else if (!records[i].contains(kIdField)) {
      results[i] = MakeError(ErrorCode::kInvalidArgument, "upsert needs an \"id\" field");
    } else {
      results[i] = resource.Upsert(std::move(records[i]));
    }
  };
  auto write_group = [&](std::size_t g) {
    for (std::size_t i : groups[g]) write_one(i);
  };
  if (pool) {
    pool->ParallelFor(groups.size(), write_group);
  } else {
    for (std::size_t g = 0; g < groups.size(); ++g) write_group(g);
  }
  return results;
}

BatchSink ResourceSink(Resource& resource, bool upsert, ThreadPool* pool) {
  return [&resource, upsert, pool](std::vector<JsonObject> records) {
    std::vector<Result<JsonObject>> results =
        WriteRecordBatch(resource, upsert, pool, std::move(records));
    std::vector<Status> statuses(results.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (!results[i]) statuses[i] = tl::unexpected(results[i].error());
    }
    return statuses;
  };
}

std::string ImportSummary::SummaryLine() const {
  char text[160];
  std::snprintf(text, sizeof text, "imported %llu, failed %llu in %.2f s (%.0f records/s)",
                static_cast<unsigned long long>(imported), static_cast<unsigned long long>(failed),
                seconds, RecordsPerSecond());
  return text;
}

ImportSummary ImportRecords(RecordSource& source, const BatchSink& sink,
                            const ImportOptions& options) {
  auto started = std::chrono::steady_clock::now();
  ImportSummary summary;
  std::size_t batch_size = options.batch_size == 0 ? 1 : options.batch_size;

  auto note_error = [&](std::size_t line, std::string message) {
    ++summary.failed;
    if (summary.first_errors.size() < options.errors_kept) {
      summary.first_errors.push_back({line, std::move(message)});
    }
  };

  std::vector<JsonObject> batch;
  std::vector<std::size_t> lines;
  auto flush = [&] {
    if (batch.empty()) return;
    std::vector<Status> statuses = sink(std::move(batch));
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i < statuses.size() && statuses[i]) {
        ++summary.imported;
      } else {
        std::string why = i < statuses.size() ? statuses[i].error().ToString() : "no result";
        note_error(lines[i], "line " + std::to_string(lines[i]) + ": " + why);
      }
    }
    batch.clear();
    lines.clear();
    if (options.on_progress) {
      options.on_progress({summary.imported, summary.failed, source.bytes_read()});
    }
  };

  while (true) {
    auto next = source.Next();
    if (!next) {
      summary.fatal_error = next.error().message;
      break;
    }
    if (!next->has_value()) break;
    SourceRecord& record = **next;
    if (!record.error.empty()) {
      note_error(record.line, std::move(record.error));
      continue;
    }
    batch.push_back(std::move(record.record));
    lines.push_back(record.line);
    if (batch.size() >= batch_size) flush();
  }
  flush();

  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

}  // namespace s3db::cli
