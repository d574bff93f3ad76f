#include "drivers/files/file_driver.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_set>

#include "drivers/files/file_options.h"
#include "drivers/files/file_output.h"
#include "drivers/files/table_writer.h"
#include "formats/column_set.h"
#include "formats/time_zone.h"
#include "s3db/schema.h"

namespace s3db::replicator {
namespace {

// How long a replicator pauses after its output could not be written (see StorageFailure).
constexpr std::chrono::milliseconds kStorageRetryPause{1000};


namespace fs = std::filesystem;

// A destination name usable as a file name inside the output folder.
bool IsPlainFileName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (unsigned char c : name) {
    if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}
using files::FileOutput;
using files::TableWriter;
using formats::ColumnSet;
using formats::ColumnSpec;

// Civil date of a day count since 1970-01-01 (proleptic Gregorian).
void CivilFromDays(std::int64_t days, int& year, unsigned& month, unsigned& day) {
  days += 719468;
  std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  auto day_of_era = static_cast<unsigned>(days - era * 146097);
  unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  unsigned shifted_month = (5 * day_of_year + 2) / 153;
  day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  year = static_cast<int>(static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2));
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string DayText(std::int64_t ms) {
  int year;
  unsigned month, day;
  CivilFromDays(FloorDiv(ms, 86400000), year, month, day);
  char text[32];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", year, month, day);
  return text;
}

std::string IsoUtc(std::int64_t ms) {
  std::int64_t in_day = ms - FloorDiv(ms, 86400000) * 86400000;
  char text[48];
  std::snprintf(text, sizeof text, "%sT%02d:%02d:%02d.%03dZ", DayText(ms).c_str(),
                static_cast<int>(in_day / 3600000), static_cast<int>(in_day / 60000 % 60),
                static_cast<int>(in_day / 1000 % 60), static_cast<int>(in_day % 1000));
  return text;
}

bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t wrote = ::write(fd, bytes.data(), bytes.size());
    if (wrote < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(wrote));
  }
  return true;
}

Status SyncFd(int fd, const std::string& path) {
  if (::fsync(fd) != 0) {
    return MakeError(ErrorCode::kIo, "fsync " + path + ": " + std::strerror(errno));
  }
  return Ok();
}

// Replaces `path` durably by `content` (temp file, fsync, rename) and opens it for appending.
Result<int> RewriteAndOpenForAppend(const std::string& path, const std::string& content) {
  std::string temporary = path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return MakeError(ErrorCode::kIo, "open " + temporary + ": " + std::strerror(errno));
  }
  if (!WriteAll(fd, content) || ::fsync(fd) != 0 ||
      std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::string message = std::strerror(errno);
    ::close(fd);
    return MakeError(ErrorCode::kIo, "write " + temporary + ": " + message);
  }
  ::close(fd);
  int append_fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (append_fd < 0) {
    return MakeError(ErrorCode::kIo, "open " + path + ": " + std::strerror(errno));
  }
  return append_fd;
}

enum class Mode { kAppend, kOverwrite };

struct Settings {
  std::string format;  // "csv", "jsonl", "parquet", "excel"
  Mode mode = Mode::kAppend;
  bool rotate_by_date = true;
  formats::TimeZone timezone;  // decides the day of a change
  std::uint64_t rotate_size = 0;  // 0: no size rotation
  // Append with date rotation: a file of another day than today, idle this long, is closed
  // at a flush (it is complete; a late change reopens it from its staging file).
  std::chrono::milliseconds close_after_idle{600000};
  // flushIntervalMs: the least time between two Flush calls; nullopt: the engine's default.
  std::optional<std::chrono::milliseconds> flush_interval;
  std::string extension;
  std::string workbook_stem;  // excel: the file name without ".xlsx"; else empty
  JsonObject config;
};

// The sequence of a staging line written before lines carried one: never below a checkpoint.
constexpr std::uint64_t kUnknownSequence = std::numeric_limits<std::uint64_t>::max();

// Change key -> change-log sequence, to recognise a replayed change. Only changes above the
// checkpoint can be replayed, so entries at or below it are dropped when it moves.
using ReplayIds = std::unordered_map<std::string, std::uint64_t>;

void DropSettled(ReplayIds& ids, std::uint64_t checkpoint) {
  std::erase_if(ids, [checkpoint](const auto& entry) { return entry.second <= checkpoint; });
}

// The staging lines of a continued file (FileDriver::Resumable) around each publish: before
// it, and after it with the published file's size in bytes. The rows above the last
// "published" line whose size the file has are in that file.
constexpr std::string_view kPublishingLine = "{\"publishing\":true}";
constexpr std::string_view kPublishedPrefix = "{\"published\":";

std::string PublishedLine(std::uint64_t size) {
  return std::string(kPublishedPrefix) + std::to_string(size) + "}\n";
}

// The size of a "published" line; nullopt for any other line.
std::optional<std::uint64_t> PublishedSize(std::string_view line) {
  if (!line.starts_with(kPublishedPrefix)) return std::nullopt;
  std::uint64_t value = 0;
  auto begin = line.data() + kPublishedPrefix.size();
  auto [end, error] = std::from_chars(begin, line.data() + line.size(), value);
  if (error != std::errc() || end == begin) return std::nullopt;
  return value;
}

// A continued file's staging is rewritten without the rows of its published file that the
// checkpoint passed once this many can go (and at least as many as stay), so rewriting
// costs a constant share per row.
constexpr std::size_t kPruneAtRows = 512;

// Append mode: one file being written, with the staging copy of its rows.
struct AppendFile {
  std::unique_ptr<TableWriter> writer;
  std::string staging_path;
  int staging_fd = -1;
  ReplayIds change_ids;  // rows of this file above the checkpoint
  bool dirty = false;
  std::string day;   // the day in the name (date rotation), once a row came; else empty
  std::string base;  // the name without part and extension, once a row came
  std::chrono::steady_clock::time_point last_row = std::chrono::steady_clock::now();
  // Continued after a restart from its published content (FileDriver::Resumable): the
  // staging holds only the rows not published yet and those above the checkpoint.
  bool resumable = false;
  std::uint64_t published_size = 0;  // of the published file, after the last publish
  std::size_t staged_rows = 0;       // row lines in the staging file
  ~AppendFile() {
    if (staging_fd >= 0) ::close(staging_fd);
  }
};

// Overwrite mode: the records of one file, and the log they are rebuilt from.
struct RecordState {
  std::uint64_t revision = 0;
  bool live = false;
  JsonObject row;
};
struct StateTable {
  std::string source;  // source resource (decides the declared columns)
  std::map<std::string, RecordState> records;  // by id
};
struct StateFile {
  std::map<std::string, StateTable> tables;  // by target
  std::string log_path;
  int log_fd = -1;
  std::size_t log_lines = 0;
  bool dirty = false;
  std::unique_ptr<TableWriter> probe;  // checks rows as the format would, writes nowhere
  ~StateFile() {
    if (log_fd >= 0) ::close(log_fd);
  }
  std::size_t RecordCount() const {
    std::size_t count = 0;
    for (const auto& [target, table] : tables) count += table.records.size();
    return count;
  }
};

// A staging line: {"t": target, "s": source resource, "r": row}. Lines written by earlier
// versions hold the row itself.
struct StagedRow {
  std::string target;
  std::string source;
  JsonObject row;
  std::uint64_t sequence = kUnknownSequence;  // "q": the change's position in the change log
};

// A staging file of append mode, for pruning: which file it stages and up to which change.
struct StagingInfo {
  std::string base;  // the file name without part or extension
  std::string day;   // the day in the name (date rotation), else empty
  int part = 1;
  std::uint64_t max_sequence = 0;  // highest sequence staged (kUnknownSequence: not known)
};

// The "q" of a staging line, read without parsing the line (it is written first).
std::uint64_t LineSequence(std::string_view line) {
  constexpr std::string_view kPrefix = "{\"q\":";
  if (!line.starts_with(kPrefix)) return kUnknownSequence;
  std::uint64_t value = 0;
  auto begin = line.data() + kPrefix.size();
  auto [end, error] = std::from_chars(begin, line.data() + line.size(), value);
  if (error != std::errc() || end == begin) return kUnknownSequence;
  return value;
}

std::optional<StagedRow> ParseStagedRow(std::string_view line) {
  auto parsed = ParseJsonObject(line);
  if (!parsed) return std::nullopt;
  StagedRow staged;
  if (const Json* q = parsed->if_contains("q"); q && q->is_uint64()) {
    staged.sequence = q->get_uint64();
  } else if (q && q->is_int64() && q->get_int64() >= 0) {
    staged.sequence = static_cast<std::uint64_t>(q->get_int64());
  }
  if (const Json* row = parsed->if_contains("r"); row && row->is_object()) {
    staged.row = row->get_object();
    if (const Json* t = parsed->if_contains("t"); t && t->is_string()) {
      staged.target = std::string(t->get_string());
    }
    if (const Json* s = parsed->if_contains("s"); s && s->is_string()) {
      staged.source = std::string(s->get_string());
    }
  } else {
    staged.row = std::move(*parsed);
  }
  return staged;
}

class FileDriver final : public Driver {
 public:
  FileDriver(Settings settings, std::unique_ptr<FileOutput> output, DriverContext context,
             WallClockMs now)
      : settings_(std::move(settings)),
        output_(std::move(output)),
        context_(std::move(context)),
        now_ms_(std::move(now)) {
    const char* leaf = settings_.mode == Mode::kAppend ? "file-staging" : "file-state";
    if (!context_.state_dir.empty()) {
      staging_folder_ = context_.state_dir + "/" + leaf;
    } else if (output_->IsLocal()) {
      // Without a state folder (a driver used on its own), next to the files.
      staging_folder_ = output_->LocalFolder() + "/.s3db-staging" +
                        (settings_.mode == Mode::kAppend ? "" : "/file-state");
    }
  }

  Status Start() override {
    std::lock_guard lock(mutex_);
    S3DB_RETURN_IF_ERROR(output_->Prepare());
    if (staging_folder_.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "file driver '" + settings_.format +
                           "': no state folder for the staging files (run it inside the "
                           "ReplicatorPlugin, which gives each replicator one)");
    }
    std::error_code error;
    fs::create_directories(staging_folder_, error);
    if (error) {
      return MakeError(ErrorCode::kIo, "cannot create staging folder " + staging_folder_ +
                                           ": " + error.message());
    }
    day_seen_ = Today();
    if (settings_.mode == Mode::kOverwrite) {
      // Republish every state file: a crash may have come between the log and the upload.
      for (const auto& entry : fs::directory_iterator(staging_folder_, error)) {
        std::string file = entry.path().filename().string();
        if (!file.ends_with(".jsonl")) continue;
        std::string name = file.substr(0, file.size() - 6);
        S3DB_ASSIGN_OR_RETURN(StateFile * state, OpenState(name));
        if (state->RecordCount() > 0) S3DB_RETURN_IF_ERROR(Rebuild(name, *state));
      }
    } else if (Prunable()) {
      // Which staging files exist and up to which change they reach, for pruning.
      for (const auto& entry : fs::directory_iterator(staging_folder_, error)) {
        std::string file = entry.path().filename().string();
        if (!file.ends_with(".jsonl")) continue;
        std::string name = file.substr(0, file.size() - 6);
        auto info = ParseStagingName(name);
        if (!info) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::string line;
        while (std::getline(in, line)) {
          if (!line.empty()) info->max_sequence = std::max(info->max_sequence, LineSequence(line));
        }
        staged_[name] = std::move(*info);
      }
      staging_files_ = staged_.size();
    }
    return Ok();
  }

  std::optional<std::chrono::milliseconds> FlushInterval() const override {
    return settings_.flush_interval;
  }

  // Drops the replay ids the checkpoint passed, then the staging files of finished files
  // that hold no change above it.
  void CheckpointSaved(std::uint64_t sequence) override {
    std::lock_guard lock(mutex_);
    if (settings_.mode != Mode::kAppend) return;
    checkpoint_ = std::max(checkpoint_, sequence);
    for (auto& [name, file] : files_) DropSettled(file->change_ids, checkpoint_);
    for (auto it = earlier_ids_.begin(); it != earlier_ids_.end();) {
      DropSettled(it->second, checkpoint_);
      it = it->second.empty() ? earlier_ids_.erase(it) : std::next(it);
    }
    replay_ids_ = ReplayIdCount();
    PruneStaging();
    for (auto& [name, file] : files_) {
      if (file->resumable) PruneContinuedStaging(*file);
    }
  }

  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds) override {
    std::lock_guard lock(mutex_);
    FinishEndedDays();
    std::vector<DeliveryResult> results;
    results.reserve(batch.size());
    for (const auto& item : batch) {
      // The destination name becomes a file name: it must not lead out of the output folder.
      if (!Workbook() && !IsPlainFileName(item.target)) {
        results.push_back(DeliveryResult::Permanent(
            "invalid_target", "destination name '" + item.target +
                                  "' is not a plain file name (no '/', '\\', '..' or control "
                                  "characters); rename it in the replicator's resources mapping"));
        continue;
      }
      results.push_back(settings_.mode == Mode::kAppend ? DeliverAppend(item)
                                                        : DeliverOverwrite(item));
    }
    return results;
  }

  Status Flush() override {
    std::lock_guard lock(mutex_);
    return settings_.mode == Mode::kAppend ? FlushAppend() : FlushOverwrite();
  }

  void Stop() override {
    std::lock_guard lock(mutex_);
    for (auto& [name, file] : files_) {
      if (file->dirty) continue;  // not flushed: leave the published file as it is
      (void)file->writer->Finish();
      NoteTruncated(name, *file->writer);
    }
    files_.clear();
    states_.clear();
  }

  std::map<std::string, std::uint64_t> Counters() const override {
    std::map<std::string, std::uint64_t> counters;
    counters["truncated_cells"] = truncated_total_.load();
    counters["rows_skipped"] = rows_skipped_.load();
    counters["files_open"] = files_open_.load();
    counters["files_closed"] = files_closed_.load();
    counters["files_finished_at_midnight"] = files_finished_at_midnight_.load();
    counters["replay_ids"] = replay_ids_.load();
    counters["files_published"] = files_published_.load();
    counters["staging_files"] = staging_files_.load();
    counters["staging_pruned"] = staging_pruned_.load();
    counters["staging_rows_pruned"] = staging_rows_pruned_.load();
    return counters;
  }

 private:
  // ---- names and columns ----

  bool Workbook() const { return settings_.format == "excel"; }

  // The name without part or extension: "<target>_<day>", "<target>", or the workbook stem.
  std::string BaseName(const DeliveryItem& item) const {
    std::string stem = Workbook() ? settings_.workbook_stem : item.target;
    if (settings_.mode == Mode::kOverwrite || !settings_.rotate_by_date) return stem;
    return stem + "_" + DayText(settings_.timezone.LocalMs(item.timestamp_ms));
  }

  std::string PartName(const std::string& base, int part) const {
    if (part <= 1) return base + settings_.extension;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "_%04d", part);
    return base + suffix + settings_.extension;
  }

  // Today's date in the configured time zone.
  std::string Today() const {
    std::int64_t now_ms = now_ms_ ? now_ms_()
                                  : std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count();
    return DayText(settings_.timezone.LocalMs(now_ms));
  }

  // Append mode with daily files or size rotation: finished files' staging can be pruned.
  bool Prunable() const {
    return settings_.mode == Mode::kAppend &&
           (settings_.rotate_by_date || settings_.rotate_size > 0);
  }

  // rotateBy null, CSV and JSONL (plain or gzip): the one file never finishes, but it can be
  // continued after a restart (its published content, then the staged rows not in it yet),
  // so the staging need not keep the rows the file already holds.
  bool Resumable() const {
    return settings_.mode == Mode::kAppend && !settings_.rotate_by_date &&
           settings_.rotate_size == 0 && (settings_.format == "csv" || settings_.format == "jsonl");
  }

  // What a staging file name says: base, part and day. Nullopt for another extension.
  std::optional<StagingInfo> ParseStagingName(const std::string& name) const {
    if (!name.ends_with(settings_.extension) || name.size() == settings_.extension.size()) {
      return std::nullopt;
    }
    StagingInfo info;
    info.base = name.substr(0, name.size() - settings_.extension.size());
    const std::string& stem = info.base;
    if (stem.size() > 5 && stem[stem.size() - 5] == '_' &&
        std::all_of(stem.end() - 4, stem.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      int part = std::stoi(stem.substr(stem.size() - 4));
      if (part >= 2) {
        info.part = part;
        info.base = stem.substr(0, stem.size() - 5);
      }
    }
    if (settings_.rotate_by_date && info.base.size() > 11 &&
        info.base[info.base.size() - 11] == '_') {
      std::string day = info.base.substr(info.base.size() - 10);
      bool date = day[4] == '-' && day[7] == '-';
      for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) date &= day[i] >= '0' && day[i] <= '9';
      if (date) info.day = day;
    }
    return info;
  }

  // The key under which a change is remembered in a file: its change id (a workbook holds
  // several targets, and one change may go to two of them).
  std::string ReplayKey(const std::string& target, const std::string& change_id) const {
    return Workbook() ? target + '\x1f' + change_id : change_id;
  }

  // Whether a change of sequence `sequence` may still be replayed.
  bool AboveCheckpoint(std::uint64_t sequence) const {
    return checkpoint_ == 0 || sequence > checkpoint_;
  }

  std::uint64_t ReplayIdCount() const {
    std::uint64_t count = 0;
    for (const auto& [name, file] : files_) count += file->change_ids.size();
    for (const auto& [base, ids] : earlier_ids_) count += ids.size();
    return count;
  }

  // The part being written for `base`: the highest one that has staging. Without staging
  // (a new day, or a day whose files were all finished and their staging pruned), the part
  // after the highest one already published, so a late change never overwrites a finished
  // file.
  Result<int> CurrentPart(const std::string& base) {
    auto found = parts_.find(base);
    if (found != parts_.end()) return found->second;
    int part = 0;
    for (auto it = staged_.lower_bound(base); it != staged_.end() && it->first.starts_with(base);
         ++it) {
      if (it->second.base == base) part = std::max(part, it->second.part);
    }
    if (part == 0) {
      part = 1;
      // Only a past day's files can have lost their staging to pruning (today's last part
      // always keeps it), so only they are looked for in the output.
      auto info = ParseStagingName(PartName(base, 1));
      if (Prunable() && info && !info->day.empty() && info->day < Today()) {
        while (true) {
          S3DB_ASSIGN_OR_RETURN(bool exists, output_->Exists(PartName(base, part)));
          if (!exists) break;
          ++part;
        }
      }
    }
    // A replay may hold changes that went into earlier (finished) parts: remember the ids of
    // those above the checkpoint.
    for (int earlier = 1; earlier < part; ++earlier) {
      std::ifstream in(staging_folder_ + "/" + PartName(base, earlier) + ".jsonl",
                       std::ios::binary);
      std::string line;
      while (std::getline(in, line)) {
        auto staged = ParseStagedRow(line);
        const Json* id = staged ? staged->row.if_contains("_change_id") : nullptr;
        if (!id || !id->is_string() || !AboveCheckpoint(staged->sequence)) continue;
        earlier_ids_[base][ReplayKey(staged->target, std::string(id->get_string()))] =
            staged->sequence;
      }
    }
    parts_[base] = part;
    return part;
  }

  // Deletes the staging files of files that can take no more rows (an earlier size part, or
  // a past day's file that is closed) once the checkpoint passed all their changes: their
  // rows are in finished, published files. A late change of such a day goes to the next part.
  void PruneStaging() {
    if (!Prunable() || checkpoint_ == 0) return;
    std::string today = Today();
    std::map<std::string, int> last_part;
    for (const auto& [name, info] : staged_) {
      int& last = last_part[info.base];
      last = std::max(last, info.part);
    }
    for (const auto& [base, part] : parts_) {
      int& last = last_part[base];
      last = std::max(last, part);
    }
    for (auto it = staged_.begin(); it != staged_.end();) {
      const auto& [name, info] = *it;
      bool finished = info.part < last_part[info.base];
      bool past = !info.day.empty() && info.day < today;
      if (files_.count(name) != 0 || unpublished_.count(name) != 0 ||
          info.max_sequence > checkpoint_ || (!finished && !past)) {
        ++it;
        continue;
      }
      std::error_code error;
      fs::remove(staging_folder_ + "/" + name + ".jsonl", error);
      if (error) {
        ++it;
        continue;
      }
      // The base's current part no longer has staging: the next change finds the part anew.
      if (auto current = parts_.find(info.base);
          current != parts_.end() && files_.count(PartName(info.base, current->second)) == 0) {
        parts_.erase(current);
        earlier_ids_.erase(info.base);
      }
      truncated_by_file_.erase(name);  // never reopened: a late change goes to the next part
      it = staged_.erase(it);
      ++staging_pruned_;
    }
    staging_files_ = staged_.size();
    replay_ids_ = ReplayIdCount();
  }
  ColumnSet ColumnsFor(const std::string& resource) const {
    std::vector<ColumnSpec> declared{{"id", formats::ColumnType::kString}};
    if (context_.resource_definition && !resource.empty()) {
      auto definition = context_.resource_definition(resource);
      const Json* attributes = definition ? definition->if_contains("attributes") : nullptr;
      if (attributes && attributes->is_object()) {
        auto schema = Schema::Parse(attributes->get_object());
        if (schema) {
          ColumnSet from_schema = ColumnSet::FromSchema(*schema);
          for (const auto& spec : from_schema.columns()) {
            if (spec.name != "id") declared.push_back(spec);
          }
        }
      }
    }
    if (settings_.mode == Mode::kAppend) {
      for (const char* meta : {"_action", "_changed_at", "_change_id"}) {
        declared.push_back({meta, formats::ColumnType::kString});
      }
    }
    auto columns = ColumnSet::Make(std::move(declared));
    return columns ? std::move(*columns) : ColumnSet();
  }

  Result<std::unique_ptr<TableWriter>> MakeWriter(std::unique_ptr<formats::ByteSink> sink) {
    auto columns = [this](const std::string& resource) { return ColumnsFor(resource); };
    return files::MakeTableWriter(settings_.format, settings_.config, std::move(columns),
                                  std::move(sink), staging_folder_);
  }

  void NoteTruncated(const std::string& name, const TableWriter& writer) {
    std::uint64_t now = writer.TruncatedCells();
    std::uint64_t& before = truncated_by_file_[name];
    if (now != before) {
      truncated_total_ += now - before;  // unsigned wrap handles a smaller count
      before = now;
    }
  }

  // A failure to stage or publish (a full disk, an I/O error, an upload that failed) is the
  // output's, not the change's: it pauses the replicator briefly and never uses up the change's
  // retries, so a full disk never dead-letters anything.
  static DeliveryResult StorageFailure(std::string error) {
    DeliveryResult result = DeliveryResult::Retryable(std::move(error), kStorageRetryPause);
    result.pause_replicator = true;
    return result;
  }

  std::string Redact(const Error& error) const { return output_->Redact(error.ToString()); }

  // ---- append mode ----

  // Opens the writer of `name`, re-adding the rows staged before a restart.
  Result<AppendFile*> OpenAppend(const std::string& name) {
    auto found = files_.find(name);
    if (found != files_.end()) return found->second.get();
    if (Resumable()) {
      S3DB_ASSIGN_OR_RETURN(auto continued, OpenContinued(name));
      AppendFile* raw = continued.get();
      files_.emplace(name, std::move(continued));
      return raw;
    }
    auto file = std::make_unique<AppendFile>();
    file->staging_path = staging_folder_ + "/" + name + ".jsonl";
    S3DB_ASSIGN_OR_RETURN(auto sink, output_->OpenSink(name, true));
    S3DB_ASSIGN_OR_RETURN(file->writer, MakeWriter(std::move(sink)));

    // Rebuild from staging; drop a torn last line and duplicate change ids.
    std::string kept;
    std::uint64_t max_sequence = 0;
    {
      std::unordered_set<std::string> seen;
      std::ifstream in(file->staging_path, std::ios::binary);
      std::string line;
      while (std::getline(in, line)) {
        auto staged = ParseStagedRow(line);
        if (!staged) continue;
        const Json* id = staged->row.if_contains("_change_id");
        if (!id || !id->is_string()) continue;
        std::string key = ReplayKey(staged->target, std::string(id->get_string()));
        if (!seen.insert(key).second) continue;
        Status added = file->writer->Add(staged->target, staged->source, staged->row);
        if (!added) {
          if (added.error().code == ErrorCode::kInvalidArgument) continue;
          return tl::unexpected(added.error());
        }
        if (AboveCheckpoint(staged->sequence)) file->change_ids[key] = staged->sequence;
        max_sequence = std::max(max_sequence, staged->sequence);
        kept += line + "\n";
      }
    }
    // Rewrite the staging file with the clean rows, then append to it.
    S3DB_ASSIGN_OR_RETURN(file->staging_fd, RewriteAndOpenForAppend(file->staging_path, kept));
    if (auto info = ParseStagingName(name); info && settings_.rotate_by_date) {
      // Known now, so a file reopened only for replays is closed when idle too.
      file->day = info->day;
      file->base = info->base;
    }
    if (Prunable()) {
      if (auto info = ParseStagingName(name)) {
        info->max_sequence = max_sequence;
        staged_[name] = std::move(*info);
        staging_files_ = staged_.size();
      }
    }
    // Republish the rebuilt file now (same rows as before the restart), so the sizes that
    // decide a rotation count them.
    if (!kept.empty()) {
      S3DB_RETURN_IF_ERROR(file->writer->Flush());
      NoteTruncated(name, *file->writer);
    }
    AppendFile* raw = file.get();
    files_.emplace(name, std::move(file));
    return raw;
  }

  // Opens the file `name` of a Resumable driver: its published content continued with the
  // staged rows not in it yet. Which rows it holds: those above the last "published" line
  // when the file has that size; when it has grown, the crash came between a publish and its
  // "published" line, and the rows above the "publishing" line after it are in the file too.
  // A staging file without such lines (a new file, or one staged by an earlier version, which
  // holds every row) rebuilds the file from its rows, as does a file that was removed.
  Result<std::unique_ptr<AppendFile>> OpenContinued(const std::string& name) {
    auto file = std::make_unique<AppendFile>();
    file->resumable = true;
    file->staging_path = staging_folder_ + "/" + name + ".jsonl";
    struct Row {
      std::string line;
      StagedRow staged;
      std::string key;
    };
    std::vector<Row> rows;
    std::optional<std::uint64_t> confirmed_size;  // of the last "published" line
    std::size_t confirmed_rows = 0;               // rows above it
    std::optional<std::size_t> publishing_rows;   // rows above a "publishing" line after it
    {
      std::unordered_set<std::string> seen;
      std::ifstream in(file->staging_path, std::ios::binary);
      std::string line;
      while (std::getline(in, line)) {
        if (line == kPublishingLine) {
          publishing_rows = rows.size();
          continue;
        }
        if (auto size = PublishedSize(line)) {
          confirmed_size = size;
          confirmed_rows = rows.size();
          publishing_rows.reset();
          continue;
        }
        auto staged = ParseStagedRow(line);
        const Json* id = staged ? staged->row.if_contains("_change_id") : nullptr;
        if (!id || !id->is_string()) continue;  // a torn last line
        std::string key = ReplayKey(staged->target, std::string(id->get_string()));
        if (!seen.insert(key).second) continue;
        rows.push_back({std::move(line), std::move(*staged), std::move(key)});
      }
    }

    std::unique_ptr<formats::ByteSink> sink;
    std::uint64_t published = 0;
    std::size_t in_file = 0;
    if (confirmed_size) {
      auto resumed = output_->ResumeSink(name);
      if (!resumed && resumed.error().code != ErrorCode::kNotFound) {
        return tl::unexpected(resumed.error());
      }
      if (resumed) {
        published = (*resumed)->BodySize();
        if (published == *confirmed_size) {
          in_file = confirmed_rows;
        } else if (publishing_rows && published > *confirmed_size) {
          in_file = *publishing_rows;
        } else {
          (*resumed)->Abandon();
          return MakeError(ErrorCode::kIo,
                           output_->Describe(name) + " has " + std::to_string(published) +
                               " bytes where its staging expects " +
                               std::to_string(*confirmed_size) +
                               ": it was changed outside s3db; move it away to start the file "
                               "anew from the staged rows");
        }
        sink = std::move(*resumed);
      }
    }
    const bool continued = sink != nullptr;
    if (continued) {
      auto columns = [this](const std::string& resource) { return ColumnsFor(resource); };
      S3DB_ASSIGN_OR_RETURN(file->writer,
                            files::ResumeTableWriter(settings_.format, settings_.config,
                                                     std::move(columns), std::move(sink)));
      // Read the header (CSV) and cut a torn last line now, not at the first change.
      const Row* first = rows.empty() ? nullptr : &rows.front();
      S3DB_RETURN_IF_ERROR(file->writer->Declare(first ? first->staged.target : "",
                                                 first ? first->staged.source : ""));
    } else {
      S3DB_ASSIGN_OR_RETURN(auto fresh, output_->OpenSink(name, true));
      S3DB_ASSIGN_OR_RETURN(file->writer, MakeWriter(std::move(fresh)));
    }

    // The staging anew: the file's rows still above the checkpoint (to recognise replays),
    // its size, then the rows added to it now.
    std::string in_file_lines, added_lines;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Row& row = rows[i];
      if (i >= in_file) {
        Status added = file->writer->Add(row.staged.target, row.staged.source, row.staged.row);
        if (!added) {
          if (added.error().code == ErrorCode::kInvalidArgument) continue;
          return tl::unexpected(added.error());
        }
      } else if (!AboveCheckpoint(row.staged.sequence)) {
        continue;
      }
      file->change_ids[row.key] = row.staged.sequence;
      (i < in_file ? in_file_lines : added_lines) += row.line + "\n";
      ++file->staged_rows;
    }
    std::string content = in_file_lines;
    if (continued) content += PublishedLine(published);
    content += added_lines;
    S3DB_ASSIGN_OR_RETURN(file->staging_fd, RewriteAndOpenForAppend(file->staging_path, content));
    file->published_size = published;
    // Publish the rows added now (and a cut torn line), so the file's size is on record.
    if (!added_lines.empty() || (continued && file->writer->BytesWritten() != published)) {
      S3DB_RETURN_IF_ERROR(PublishFile(*file));
      NoteTruncated(name, *file->writer);
    }
    return file;
  }

  // Makes the staging of `file` durable, then publishes the file (complete, for readers). A
  // continued file records the publish in its staging around it (see OpenContinued).
  Status PublishFile(AppendFile& file) {
    if (file.resumable && !WriteAll(file.staging_fd, std::string(kPublishingLine) + "\n")) {
      return MakeError(ErrorCode::kIo, "write " + file.staging_path + ": " + std::strerror(errno));
    }
    S3DB_RETURN_IF_ERROR(SyncFd(file.staging_fd, file.staging_path));
    S3DB_RETURN_IF_ERROR(file.writer->Flush());
    if (file.resumable) {
      file.published_size = file.writer->BytesWritten();
      if (!WriteAll(file.staging_fd, PublishedLine(file.published_size))) {
        return MakeError(ErrorCode::kIo,
                         "write " + file.staging_path + ": " + std::strerror(errno));
      }
    }
    return Ok();
  }

  // Rewrites a continued file's staging without the rows that are in the published file and
  // at or below the checkpoint, once enough of them can go. Rows not published yet stay. A
  // failure leaves the staging as it was (tried again at the next checkpoint).
  void PruneContinuedStaging(AppendFile& file) {
    std::size_t above = std::min(file.staged_rows, file.change_ids.size());
    std::size_t settled = file.staged_rows - above;
    if (settled < kPruneAtRows || settled < above) return;
    std::vector<std::string> lines;
    {
      std::ifstream in(file.staging_path, std::ios::binary);
      std::string line;
      while (std::getline(in, line)) lines.push_back(std::move(line));
    }
    std::size_t last_published = lines.size();
    for (std::size_t i = lines.size(); i-- > 0;) {
      if (PublishedSize(lines[i])) {
        last_published = i;
        break;
      }
    }
    if (last_published == lines.size()) return;
    std::string content;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      if (i < last_published) {
        if (line == kPublishingLine || PublishedSize(line)) continue;
        if (!AboveCheckpoint(LineSequence(line))) continue;
      }
      if (i != last_published && line != kPublishingLine) ++kept;
      content += line;
      content += '\n';
    }
    auto rewritten = RewriteAndOpenForAppend(file.staging_path, content);
    if (!rewritten) return;
    ::close(file.staging_fd);
    file.staging_fd = *rewritten;
    staging_rows_pruned_ += file.staged_rows - std::min(file.staged_rows, kept);
    file.staged_rows = kept;
  }

  Status FlushAppend() {
    FinishEndedDays();
    // Files whose publish failed earlier: rebuild them from staging and publish again.
    for (auto it = unpublished_.begin(); it != unpublished_.end();) {
      auto file = OpenAppend(*it);
      if (!file) return tl::unexpected(file.error());
      it = unpublished_.erase(it);
    }
    Status result = Ok();
    for (auto it = files_.begin(); it != files_.end();) {
      AppendFile& file = *it->second;
      if (!file.dirty) {
        ++it;
        continue;
      }
      Status status = PublishFile(file);
      if (!status) {
        // Durable in staging; rebuilt and published again at the next Flush.
        file.writer->Abandon();
        unpublished_.insert(it->first);
        it = files_.erase(it);
        if (result) result = tl::unexpected(Error(status.error().code, Redact(status.error())));
        continue;
      }
      NoteTruncated(it->first, *file.writer);
      file.dirty = false;
      ++files_published_;
      ++it;
    }
    CloseIdlePastDays();
    files_open_ = files_.size();
    replay_ids_ = ReplayIdCount();
    return result;
  }

  // At the first delivery or flush of a new day (in `timezone`), every open file of an earlier
  // day is finished: its staging synced, then its writer's Finish publishes the final file
  // (rows delivered but not flushed yet included). A late change of that day reopens it from
  // its staging file, and CloseIdlePastDays releases it again. A file that fails to finish
  // is left to the next Flush, which rebuilds and publishes it from its staging file.
  void FinishEndedDays() {
    if (!settings_.rotate_by_date || settings_.mode != Mode::kAppend) return;
    std::string today = Today();
    if (today == day_seen_) return;
    day_seen_ = today;
    for (auto it = files_.begin(); it != files_.end();) {
      AppendFile& file = *it->second;
      if (file.day.empty() || file.day >= today) {
        ++it;
        continue;
      }
      Status status = SyncFd(file.staging_fd, file.staging_path);
      if (status) status = file.writer->Finish();
      if (status) {
        NoteTruncated(it->first, *file.writer);
        ++files_finished_at_midnight_;
      } else {
        file.writer->Abandon();
        unpublished_.insert(it->first);
      }
      // A late change reopens it as after a restart: parts and ids from the staging files.
      parts_.erase(file.base);
      earlier_ids_.erase(file.base);
      it = files_.erase(it);
    }
    files_open_ = files_.size();
    replay_ids_ = ReplayIdCount();
  }

  // Files of past days reopened by a late change stay complete where they were published;
  // keeping them open would hold their writers and change ids for ever.
  void CloseIdlePastDays() {
    if (!settings_.rotate_by_date || settings_.mode != Mode::kAppend) return;
    std::string today = Today();
    auto now = std::chrono::steady_clock::now();
    for (auto it = files_.begin(); it != files_.end();) {
      AppendFile& file = *it->second;
      if (file.dirty || file.day.empty() || file.day == today ||
          now - file.last_row < settings_.close_after_idle) {
        ++it;
        continue;
      }
      file.writer->Abandon();  // its working copy; the published file is complete
      // A late change reopens it as after a restart: parts and ids from the staging files.
      parts_.erase(file.base);
      earlier_ids_.erase(file.base);
      it = files_.erase(it);
      ++files_closed_;
    }
  }

  DeliveryResult DeliverAppend(const DeliveryItem& item) {
    std::string base = BaseName(item);
    auto part = CurrentPart(base);
    if (!part) return StorageFailure(Redact(part.error()));
    std::string name = PartName(base, *part);
    auto file = OpenAppend(name);
    if (!file) return StorageFailure(Redact(file.error()));
    std::string key = ReplayKey(item.target, item.change_id);
    if ((*file)->change_ids.count(key) != 0) return DeliveryResult::Delivered();
    if (auto earlier = earlier_ids_.find(base);
        earlier != earlier_ids_.end() && earlier->second.count(key) != 0) {
      return DeliveryResult::Delivered();
    }
    // Size rotation, only at a flushed state: the full part is finished and released (its
    // replay ids move to the base's earlier ids, dropped as the checkpoint passes them), the
    // next one opened.
    if (settings_.rotate_size > 0 && !(*file)->dirty &&
        (*file)->writer->BytesWritten() >= settings_.rotate_size) {
      Status finished = (*file)->writer->Finish();
      if (!finished) {
        files_.erase(name);
        return StorageFailure(Redact(finished.error()));
      }
      NoteTruncated(name, *(*file)->writer);
      earlier_ids_[base].merge((*file)->change_ids);
      files_.erase(name);
      name = PartName(base, ++parts_[base]);
      file = OpenAppend(name);
      if (!file) return StorageFailure(Redact(file.error()));
    }
    AppendFile& open = **file;

    JsonObject row;
    if (!item.data.contains("id")) row["id"] = item.id;
    for (const auto& field : item.data) row[field.key()] = field.value();
    row["_action"] = ActionName(item.action);
    row["_changed_at"] = IsoUtc(item.timestamp_ms);
    row["_change_id"] = item.change_id;

    Status added = open.writer->Add(item.target, item.source_resource, row);
    if (!added) {
      if (added.error().code == ErrorCode::kInvalidArgument) {
        return DeliveryResult::Permanent("invalid_value", added.error().message);
      }
      std::string error = Redact(added.error());
      open.writer->Abandon();
      files_.erase(name);
      return StorageFailure(error);
    }
    JsonObject staged;
    staged["q"] = item.sequence;  // first: LineSequence reads it without parsing the line
    staged["t"] = item.target;
    staged["s"] = item.source_resource;
    staged["r"] = std::move(row);
    if (!WriteAll(open.staging_fd, ToJson(staged) + "\n")) {
      std::string error = "write " + open.staging_path + ": " + std::strerror(errno);
      open.writer->Abandon();
      files_.erase(name);
      return StorageFailure(error);
    }
    open.change_ids[key] = item.sequence;
    ++open.staged_rows;
    if (auto info = staged_.find(name); info != staged_.end()) {
      info->second.max_sequence = std::max(info->second.max_sequence, item.sequence);
    }
    open.dirty = true;
    open.last_row = std::chrono::steady_clock::now();
    if (settings_.rotate_by_date) {
      open.day = DayText(settings_.timezone.LocalMs(item.timestamp_ms));
      open.base = base;
    }
    return DeliveryResult::Delivered();
  }
  // ---- overwrite mode ----

  static JsonObject LogLine(const std::string& target, const std::string& source,
                            const std::string& id, const RecordState& record) {
    JsonObject line;
    line["t"] = target;
    line["s"] = source;
    line["id"] = id;
    line["rev"] = record.revision;
    line["row"] = record.live ? Json(record.row) : Json(nullptr);
    return line;
  }

  // Loads the state of `name` from its log (a torn last line is dropped).
  Result<StateFile*> OpenState(const std::string& name) {
    auto found = states_.find(name);
    if (found != states_.end()) return found->second.get();
    auto state = std::make_unique<StateFile>();
    state->log_path = staging_folder_ + "/" + name + ".jsonl";
    {
      std::ifstream in(state->log_path, std::ios::binary);
      std::string line;
      while (std::getline(in, line)) {
        auto parsed = ParseJsonObject(line);
        if (!parsed) continue;
        const Json* target = parsed->if_contains("t");
        const Json* id = parsed->if_contains("id");
        const Json* rev = parsed->if_contains("rev");
        const Json* row = parsed->if_contains("row");
        if (!target || !target->is_string() || !id || !id->is_string() || !rev ||
            !row) {
          continue;
        }
        StateTable& table = state->tables[std::string(target->get_string())];
        if (const Json* s = parsed->if_contains("s"); s && s->is_string() && table.source.empty()) {
          table.source = std::string(s->get_string());
        }
        RecordState& record = table.records[std::string(id->get_string())];
        std::uint64_t revision = rev->is_uint64() ? rev->get_uint64()
                                 : rev->is_int64() && rev->get_int64() >= 0
                                     ? static_cast<std::uint64_t>(rev->get_int64())
                                     : 0;
        if (record.revision != 0 && revision != 0 && revision <= record.revision) continue;
        record.revision = revision;
        record.live = row->is_object();
        record.row = record.live ? row->get_object() : JsonObject();
      }
    }
    S3DB_RETURN_IF_ERROR(CompactLog(*state));
    StateFile* raw = state.get();
    states_.emplace(name, std::move(state));
    return raw;
  }

  // Checks that the format can hold `row` (kInvalidArgument names the column). Parquet keeps
  // one probe per file (a value's column type depends on the earlier rows); CSV and JSONL
  // refuse only values that no file can hold, so a fresh probe checks each row. Workbooks
  // take every value.
  Status CheckRow(StateFile& state, const std::string& target, const std::string& source,
                  const JsonObject& row) {
    if (Workbook()) return Ok();
    if (settings_.format == "parquet" && state.probe) {
      Status checked = state.probe->Add(target, source, row);
      if (checked || checked.error().code == ErrorCode::kInvalidArgument) return checked;
      state.probe.reset();  // broken (it writes nowhere): made again below
    }
    auto probe = MakeWriter(std::make_unique<files::DiscardByteSink>());
    if (!probe) return Ok();
    Status checked = (*probe)->Add(target, source, row);
    if (settings_.format == "parquet" && !state.probe) {
      state.probe = std::move(*probe);
    } else {
      (*probe)->Abandon();
    }
    if (!checked && checked.error().code == ErrorCode::kInvalidArgument) return checked;
    return Ok();
  }

  // Rewrites the log with one line per record (deleted ones keep their revision).
  Status CompactLog(StateFile& state) {
    if (state.log_fd >= 0) {
      ::close(state.log_fd);
      state.log_fd = -1;
    }
    std::string content;
    std::size_t lines = 0;
    for (const auto& [target, table] : state.tables) {
      for (const auto& [id, record] : table.records) {
        content += ToJson(LogLine(target, table.source, id, record));
        content += '\n';
        ++lines;
      }
    }
    S3DB_ASSIGN_OR_RETURN(state.log_fd, RewriteAndOpenForAppend(state.log_path, content));
    state.log_lines = lines;
    return Ok();
  }

  // Writes the whole file from the records and publishes it (rename or one upload).
  Status Rebuild(const std::string& name, StateFile& state) {
    S3DB_ASSIGN_OR_RETURN(auto sink, output_->OpenSink(name, false));
    S3DB_ASSIGN_OR_RETURN(auto writer, MakeWriter(std::move(sink)));
    for (const auto& [target, table] : state.tables) {
      writer->Declare(target, table.source);
      for (const auto& [id, record] : table.records) {
        if (!record.live) continue;
        Status added = writer->Add(target, table.source, record.row);
        if (!added) {
          if (added.error().code != ErrorCode::kInvalidArgument) {
            writer->Abandon();
            return tl::unexpected(Error(added.error().code, Redact(added.error())));
          }
          ++rows_skipped_;  // passed the probe at delivery, refused in this file's order
        }
      }
    }
    Status finished = writer->Finish();
    if (!finished) {
      writer->Abandon();
      return tl::unexpected(Error(finished.error().code, Redact(finished.error())));
    }
    NoteTruncated(name, *writer);
    return Ok();
  }

  Status FlushOverwrite() {
    Status result = Ok();
    for (auto& [name, state] : states_) {
      if (!state->dirty) continue;
      Status status = SyncFd(state->log_fd, state->log_path);
      if (status && state->log_lines > 2 * state->RecordCount() + 64) {
        status = CompactLog(*state);
      }
      if (status) status = Rebuild(name, *state);
      if (!status) {
        if (result) result = status;
        continue;  // stays dirty: rebuilt again at the next Flush (and at Start)
      }
      state->dirty = false;
      ++files_published_;
    }
    return result;
  }

  DeliveryResult DeliverOverwrite(const DeliveryItem& item) {
    std::string name = BaseName(item) + settings_.extension;
    auto opened = OpenState(name);
    if (!opened) return StorageFailure(Redact(opened.error()));
    StateFile& state = **opened;
    StateTable& table = state.tables[item.target];
    if (table.source.empty()) table.source = item.source_resource;
    auto found = table.records.find(item.id);
    if (found != table.records.end() && item.revision != 0 &&
        found->second.revision >= item.revision) {
      return DeliveryResult::Delivered();  // a replay, or older than what the file holds
    }
    RecordState next;
    next.revision = item.revision;
    next.live = item.action != Action::kDelete;
    if (next.live) {
      if (!item.data.contains("id")) next.row["id"] = item.id;
      for (const auto& field : item.data) next.row[field.key()] = field.value();
      Status checked = CheckRow(state, item.target, table.source, next.row);
      if (!checked) return DeliveryResult::Permanent("invalid_value", checked.error().message);
    }
    if (!WriteAll(state.log_fd,
                  ToJson(LogLine(item.target, table.source, item.id, next)) + "\n")) {
      return StorageFailure("write " + state.log_path + ": " + std::strerror(errno));
    }
    ++state.log_lines;
    table.records[item.id] = std::move(next);
    state.dirty = true;
    return DeliveryResult::Delivered();
  }

  Settings settings_;
  std::unique_ptr<FileOutput> output_;
  DriverContext context_;
  WallClockMs now_ms_;  // empty: the system clock
  std::string staging_folder_;
  std::mutex mutex_;
  std::string day_seen_;  // append with date rotation: today, as of the last delivery or flush
  std::map<std::string, int> parts_;  // base name -> part being written
  // base name -> change ids in its finished parts, loaded after a restart
  std::map<std::string, ReplayIds> earlier_ids_;
  std::map<std::string, std::unique_ptr<AppendFile>> files_;
  std::set<std::string> unpublished_;  // append files whose last publish failed
  std::map<std::string, std::unique_ptr<StateFile>> states_;
  std::map<std::string, std::uint64_t> truncated_by_file_;
  std::atomic<std::uint64_t> truncated_total_{0};
  std::atomic<std::uint64_t> rows_skipped_{0};
  std::atomic<std::uint64_t> files_open_{0};    // append mode, after the last flush
  std::atomic<std::uint64_t> files_closed_{0};  // past-day files closed when idle
  std::atomic<std::uint64_t> files_finished_at_midnight_{0};  // by FinishEndedDays
  std::atomic<std::uint64_t> replay_ids_{0};     // change ids held to recognise replays
  std::atomic<std::uint64_t> files_published_{0};  // file publishes by Flush
  std::atomic<std::uint64_t> staging_files_{0};  // append staging files on disk
  std::atomic<std::uint64_t> staging_pruned_{0};
  std::atomic<std::uint64_t> staging_rows_pruned_{0};  // by PruneContinuedStaging
  std::uint64_t checkpoint_ = 0;  // the last checkpoint saved (0: none told yet)
  std::map<std::string, StagingInfo> staged_;  // append staging files by file name, if Prunable
};

}  // namespace

Result<std::unique_ptr<Driver>> NewFileDriver(std::string_view format, const JsonObject& config,
                                              const DriverContext& context, WallClockMs now) {
  Settings settings;
  settings.format = std::string(format);
  settings.config = config;
  S3DB_RETURN_IF_ERROR(files::CheckTableFormat(settings.format));
  S3DB_RETURN_IF_ERROR(files::RefuseUnknownFileDriverOptions(settings.format, config));
  for (const auto& destination : context.destinations) {
    if (settings.format != "excel" && !IsPlainFileName(destination.target)) {
      return MakeError(ErrorCode::kInvalidArgument, "resources." + destination.source +
                                                        ": destination name '" +
                                                        destination.target +
                                                        "' is not a plain file name (no '/', '\\', "
                                                        "'..' or control characters)");
    }
  }
  S3DB_ASSIGN_OR_RETURN(auto output, FileOutput::FromConfig(config, context));

  if (const Json* mode = config.if_contains("mode"); mode && !mode->is_null()) {
    if (mode->is_string() && mode->get_string() == "overwrite") {
      settings.mode = Mode::kOverwrite;
    } else if (!mode->is_string() || mode->get_string() != "append") {
      return MakeError(ErrorCode::kInvalidArgument, "mode: use 'append' or 'overwrite'");
    }
  }
  if (const Json* rotate = config.if_contains("rotateBy"); rotate) {
    if (settings.mode == Mode::kOverwrite && !rotate->is_null()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "rotateBy: mode 'overwrite' keeps one file per target (the current "
                       "state), so it cannot rotate; remove rotateBy or set it to null");
    }
    if (rotate->is_null()) {
      settings.rotate_by_date = false;
    } else if (rotate->is_string() && rotate->get_string() == "size") {
      if (settings.format == "excel") {
        return MakeError(ErrorCode::kInvalidArgument,
                         "rotateBy: 'size' is not supported by the excel driver (a sheet "
                         "continues on a new sheet instead); use 'date' or null");
      }
      settings.rotate_size = 100ull * 1024 * 1024;
    } else if (!rotate->is_string() || rotate->get_string() != "date") {
      return MakeError(ErrorCode::kInvalidArgument, "rotateBy: use 'date', 'size' or null");
    }
  }
  // rotateSize also applies to daily files (rotateBy 'date', the default in append mode): a
  // day's file that has reached it continues in "<target>_<date>_0002.<ext>".
  if (const Json* size = config.if_contains("rotateSize"); size && !size->is_null()) {
    if (!size->is_int64() || size->get_int64() <= 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "rotateSize: must be a positive integer (bytes)");
    }
    if (settings.mode == Mode::kOverwrite || !settings.rotate_by_date) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "rotateSize: applies to daily files only (mode 'append' with rotateBy "
                       "'date' or 'size'); remove rotateSize or set rotateBy");
    }
    if (settings.format == "excel") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "rotateSize: not supported by the excel driver (the day's workbook is "
                       "one file; a sheet continues on a new sheet instead); remove rotateSize");
    }
    settings.rotate_size = static_cast<std::uint64_t>(size->get_int64());
  }
  if (const Json* interval = config.if_contains("flushIntervalMs");
      interval && !interval->is_null()) {
    if (!interval->is_int64() || interval->get_int64() < 0 ||
        interval->get_int64() > 3'600'000) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "flushIntervalMs: must be a whole number of milliseconds from 0 to "
                       "3600000 (leave it out for the default: 10 ms when idle, 200 ms under "
                       "load)");
    }
    settings.flush_interval = std::chrono::milliseconds(interval->get_int64());
  }
  if (const Json* idle = config.if_contains("closeAfterIdleMs"); idle && !idle->is_null()) {
    if (!idle->is_int64() || idle->get_int64() < 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "closeAfterIdleMs: must be a whole number of milliseconds, 0 or more");
    }
    settings.close_after_idle = std::chrono::milliseconds(idle->get_int64());
  }
  if (const Json* zone = config.if_contains("timezone"); zone && !zone->is_null()) {
    if (!zone->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "timezone: must be a string like 'UTC', '+02:00' or 'Europe/Paris'");
    }
    S3DB_ASSIGN_OR_RETURN(settings.timezone, formats::TimeZone::Parse(zone->get_string()));
  }
  S3DB_ASSIGN_OR_RETURN(settings.extension, files::TableFileExtension(settings.format, config));
  if (settings.format == "excel") {
    S3DB_ASSIGN_OR_RETURN(settings.workbook_stem, files::WorkbookStem(config));
  }
  // Check the format options now, so a bad option fails at start, not at the first change.
  {
    auto probe = files::MakeTableWriter(
        settings.format, config, [](const std::string&) { return ColumnSet(); },
        std::make_unique<formats::MemoryByteSink>());
    if (!probe) return tl::unexpected(probe.error());
    (*probe)->Abandon();
  }
  return std::unique_ptr<Driver>(
      new FileDriver(std::move(settings), std::move(output), context, std::move(now)));
}

void RegisterFileDrivers() {
  for (const std::string& format : files::TableFormats()) {
    RegisterDriver(format, [format](const JsonObject& config, const DriverContext& context) {
      return NewFileDriver(format, config, context);
    });
  }
}

}  // namespace s3db::replicator
