#include "drivers/files/file_driver.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <unordered_set>

#include "formats/byte_sink.h"
#include "formats/column_set.h"
#include "formats/record_writers.h"
#include "s3db/schema.h"

namespace s3db::replicator {
namespace {

namespace fs = std::filesystem;
using formats::ColumnSet;
using formats::ColumnSpec;
using formats::FileFormat;
using formats::RecordWriter;

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

// "UTC", "Z", "+HH:MM", "-HH:MM", "+HHMM", "+HH" -> offset in minutes.
Result<int> ParseTimezone(std::string_view text) {
  if (text == "UTC" || text == "utc" || text == "Z" || text == "Etc/UTC") return 0;
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     "timezone: '" + std::string(text) +
                         "' is not supported; use 'UTC' or a fixed offset like '+02:00'");
  };
  if (text.size() < 3 || (text[0] != '+' && text[0] != '-')) return bad();
  std::string digits;
  for (char c : text.substr(1)) {
    if (c == ':') continue;
    if (c < '0' || c > '9') return bad();
    digits.push_back(c);
  }
  if (digits.size() != 2 && digits.size() != 4) return bad();
  int hours = std::stoi(digits.substr(0, 2));
  int minutes = digits.size() == 4 ? std::stoi(digits.substr(2, 2)) : 0;
  if (hours > 18 || minutes > 59) return bad();
  int total = hours * 60 + minutes;
  return text[0] == '-' ? -total : total;
}

Status SyncFd(int fd, const std::string& path) {
  if (::fsync(fd) != 0) {
    return MakeError(ErrorCode::kIo, "fsync " + path + ": " + std::strerror(errno));
  }
  return Ok();
}

struct OpenFile {
  std::unique_ptr<RecordWriter> writer;
  std::string staging_path;
  int staging_fd = -1;
  std::unordered_set<std::string> change_ids;
  bool dirty = false;
  ~OpenFile() {
    if (staging_fd >= 0) ::close(staging_fd);
  }
};

class FileDriver final : public Driver {
 public:
  FileDriver(FileFormat format, JsonObject config, DriverContext context, std::string folder,
             bool rotate_by_date, int offset_minutes, std::uint64_t rotate_size)
      : format_(format),
        config_(std::move(config)),
        context_(std::move(context)),
        folder_(std::move(folder)),
        rotate_by_date_(rotate_by_date),
        offset_minutes_(offset_minutes),
        rotate_size_(rotate_size) {
    extension_ = formats::FileExtension(format_, config_);
    staging_folder_ = context_.state_dir.empty() ? folder_ + "/.s3db-staging"
                                                 : context_.state_dir + "/file-staging";
  }

  Status Start() override {
    std::error_code error;
    fs::create_directories(folder_, error);
    if (error) {
      return MakeError(ErrorCode::kIo, "output.path: cannot create " + folder_ + ": " +
                                           error.message());
    }
    fs::create_directories(staging_folder_, error);
    if (error) {
      return MakeError(ErrorCode::kIo, "cannot create staging folder " + staging_folder_ +
                                           ": " + error.message());
    }
    return Ok();
  }

  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds) override {
    std::lock_guard lock(mutex_);
    std::vector<DeliveryResult> results;
    results.reserve(batch.size());
    for (const auto& item : batch) results.push_back(DeliverOne(item));
    return results;
  }

  Status Flush() override {
    std::lock_guard lock(mutex_);
    for (auto it = files_.begin(); it != files_.end();) {
      OpenFile& file = *it->second;
      if (!file.dirty) {
        ++it;
        continue;
      }
      Status status = SyncFd(file.staging_fd, file.staging_path);
      if (status) status = file.writer->Flush();
      if (!status) {
        // Rebuilt from the staging rows at the next change for this file.
        file.writer->Abandon();
        it = files_.erase(it);
        return status;
      }
      file.dirty = false;
      ++it;
    }
    return Ok();
  }

  void Stop() override {
    std::lock_guard lock(mutex_);
    for (auto& [name, file] : files_) {
      if (file->dirty) continue;  // not flushed: leave the published file as it is
      (void)file->writer->Finish();
    }
    files_.clear();
  }

 private:
  // "<target>_<day>" (or "<target>" without date rotation): the name without part or ext.
  std::string BaseName(const DeliveryItem& item) const {
    if (!rotate_by_date_) return item.target;
    std::int64_t local_ms = item.timestamp_ms + std::int64_t{offset_minutes_} * 60000;
    return item.target + "_" + DayText(local_ms);
  }

  std::string PartName(const std::string& base, int part) const {
    if (part <= 1) return base + extension_;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "_%04d", part);
    return base + suffix + extension_;
  }

  // The part being written for `base`: after a restart, the highest one that has staging.
  int CurrentPart(const std::string& base) {
    auto found = parts_.find(base);
    if (found != parts_.end()) return found->second;
    int part = 1;
    if (rotate_size_ > 0) {
      while (fs::exists(staging_folder_ + "/" + PartName(base, part + 1) + ".jsonl")) ++part;
    }
    parts_[base] = part;
    return part;
  }

  ColumnSet ColumnsFor(const std::string& resource) const {
    std::vector<ColumnSpec> declared{{"id", formats::ColumnType::kString}};
    if (context_.resource_definition) {
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
    for (const char* meta : {"_action", "_changed_at", "_change_id"}) {
      declared.push_back({meta, formats::ColumnType::kString});
    }
    auto columns = ColumnSet::Make(std::move(declared));
    return columns ? std::move(*columns) : ColumnSet();
  }

  // Opens the writer of `name`, re-adding the rows staged before a restart.
  Result<OpenFile*> Open(const std::string& name, const std::string& resource) {
    auto found = files_.find(name);
    if (found != files_.end()) return found->second.get();
    auto file = std::make_unique<OpenFile>();
    file->staging_path = staging_folder_ + "/" + name + ".jsonl";
    formats::FileSinkOptions sink_options;
    sink_options.publish_on_sync = true;
    auto sink = formats::FileByteSink::Open(folder_ + "/" + name, sink_options);
    if (!sink) return tl::unexpected(sink.error());
    auto writer = formats::MakeRecordWriter(format_, ColumnsFor(resource), config_,
                                            std::move(*sink));
    if (!writer) return tl::unexpected(writer.error());
    file->writer = std::move(*writer);

    // Rebuild from staging; drop a torn last line and duplicate change ids.
    std::string kept;
    {
      std::ifstream in(file->staging_path, std::ios::binary);
      std::string line;
      while (std::getline(in, line)) {
        auto row = ParseJsonObject(line);
        if (!row) continue;
        const Json* id = row->if_contains("_change_id");
        if (!id || !id->is_string()) continue;
        std::string change_id(id->get_string());
        if (!file->change_ids.insert(change_id).second) continue;
        Status added = file->writer->Add(*row);
        if (!added) {
          if (added.error().code == ErrorCode::kInvalidArgument) continue;
          return tl::unexpected(added.error());
        }
        kept += line + "\n";
      }
    }
    // Rewrite the staging file with the clean rows, then append to it.
    std::string temporary = file->staging_path + ".tmp";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return MakeError(ErrorCode::kIo, "open " + temporary + ": " + std::strerror(errno));
    }
    if (!WriteAll(fd, kept) || ::fsync(fd) != 0 ||
        std::rename(temporary.c_str(), file->staging_path.c_str()) != 0) {
      std::string message = std::strerror(errno);
      ::close(fd);
      return MakeError(ErrorCode::kIo, "write " + temporary + ": " + message);
    }
    ::close(fd);
    file->staging_fd =
        ::open(file->staging_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (file->staging_fd < 0) {
      return MakeError(ErrorCode::kIo,
                       "open " + file->staging_path + ": " + std::strerror(errno));
    }
    // Republish the rebuilt file now (same rows as before the restart), so the sizes that
    // decide a rotation count them.
    if (!kept.empty()) {
      Status flushed = file->writer->Flush();
      if (!flushed) return tl::unexpected(flushed.error());
    }
    OpenFile* raw = file.get();
    files_.emplace(name, std::move(file));
    return raw;
  }

  static bool WriteAll(int fd, std::string_view bytes) {
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

  DeliveryResult DeliverOne(const DeliveryItem& item) {
    std::string base = BaseName(item);
    std::string name = PartName(base, CurrentPart(base));
    auto file = Open(name, item.source_resource);
    if (!file) return DeliveryResult::Retryable(file.error().ToString());
    // Size rotation, only at a flushed state: the full part is finished, the next one opened.
    if (rotate_size_ > 0 && !(*file)->dirty && (*file)->writer->BytesWritten() >= rotate_size_ &&
        (*file)->change_ids.count(item.change_id) == 0) {
      Status finished = (*file)->writer->Finish();
      if (!finished) {
        files_.erase(name);
        return DeliveryResult::Retryable(finished.error().ToString());
      }
      auto seen = std::move((*file)->change_ids);
      files_.erase(name);
      name = PartName(base, ++parts_[base]);
      file = Open(name, item.source_resource);
      if (!file) return DeliveryResult::Retryable(file.error().ToString());
      (*file)->change_ids.merge(seen);
    }
    OpenFile& open = **file;
    if (open.change_ids.count(item.change_id) != 0) return DeliveryResult::Delivered();

    JsonObject row;
    if (!item.data.contains("id")) row["id"] = item.id;
    for (const auto& field : item.data) row[field.key()] = field.value();
    row["_action"] = ActionName(item.action);
    row["_changed_at"] = IsoUtc(item.timestamp_ms);
    row["_change_id"] = item.change_id;

    Status added = open.writer->Add(row);
    if (!added) {
      if (added.error().code == ErrorCode::kInvalidArgument) {
        return DeliveryResult::Permanent("invalid_value", added.error().message);
      }
      std::string error = added.error().ToString();
      open.writer->Abandon();
      files_.erase(name);
      return DeliveryResult::Retryable(error);
    }
    if (!WriteAll(open.staging_fd, ToJson(row) + "\n")) {
      std::string error = "write " + open.staging_path + ": " + std::strerror(errno);
      open.writer->Abandon();
      files_.erase(name);
      return DeliveryResult::Retryable(error);
    }
    open.change_ids.insert(item.change_id);
    open.dirty = true;
    return DeliveryResult::Delivered();
  }

  FileFormat format_;
  JsonObject config_;
  DriverContext context_;
  std::string folder_;
  bool rotate_by_date_;
  int offset_minutes_;
  std::uint64_t rotate_size_;  // 0: no size rotation
  std::map<std::string, int> parts_;  // base name -> part being written
  std::string extension_;
  std::string staging_folder_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<OpenFile>> files_;
};

Result<std::string> OutputFolder(const JsonObject& config) {
  if (const Json* output = config.if_contains("output"); output && !output->is_null()) {
    if (!output->is_object()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output: must be an object like {driver: 'filesystem', path: './out'}");
    }
    const JsonObject& object = output->get_object();
    const Json* driver = object.if_contains("driver");
    std::string name = driver && driver->is_string() ? std::string(driver->get_string())
                                                     : "filesystem";
    if (name != "filesystem") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output.driver: '" + name +
                           "' is not supported yet; use 'filesystem' with output.path");
    }
    const Json* path = object.if_contains("path");
    if (!path || !path->is_string() || path->get_string().empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "output.path: required (a folder)");
    }
    return std::string(path->get_string());
  }
  const Json* path = config.if_contains("outputPath");
  if (!path || !path->is_string() || path->get_string().empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "output: required: {driver: 'filesystem', path} or outputPath");
  }
  return std::string(path->get_string());
}

}  // namespace

Result<std::unique_ptr<Driver>> NewFileDriver(std::string_view format, const JsonObject& config,
                                              const DriverContext& context) {
  auto parsed_format = formats::ParseFileFormat(format);
  if (!parsed_format) return tl::unexpected(parsed_format.error());
  auto folder = OutputFolder(config);
  if (!folder) return tl::unexpected(folder.error());

  if (const Json* mode = config.if_contains("mode"); mode && !mode->is_null()) {
    if (!mode->is_string() || mode->get_string() != "append") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "mode: only 'append' is supported yet ('overwrite' is not)");
    }
  }
  bool rotate_by_date = true;
  std::uint64_t rotate_size = 0;
  if (const Json* rotate = config.if_contains("rotateBy"); rotate) {
    if (rotate->is_null()) {
      rotate_by_date = false;
    } else if (rotate->is_string() && rotate->get_string() == "size") {
      rotate_size = 100ull * 1024 * 1024;
      if (const Json* size = config.if_contains("rotateSize"); size && !size->is_null()) {
        if (!size->is_int64() || size->get_int64() <= 0) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "rotateSize: must be a positive integer (bytes)");
        }
        rotate_size = static_cast<std::uint64_t>(size->get_int64());
      }
    } else if (!rotate->is_string() || rotate->get_string() != "date") {
      return MakeError(ErrorCode::kInvalidArgument, "rotateBy: use 'date', 'size' or null");
    }
  }
  int offset_minutes = 0;
  if (const Json* zone = config.if_contains("timezone"); zone && !zone->is_null()) {
    if (!zone->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument, "timezone: must be a string like 'UTC'");
    }
    auto offset = ParseTimezone(zone->get_string());
    if (!offset) return tl::unexpected(offset.error());
    offset_minutes = *offset;
  }
  // Check the format options now, so a bad option fails at start, not at the first change.
  {
    auto probe = formats::MakeRecordWriter(*parsed_format, ColumnSet(), config,
                                           std::make_unique<formats::MemoryByteSink>());
    if (!probe) return tl::unexpected(probe.error());
    (*probe)->Abandon();
  }
  return std::unique_ptr<Driver>(new FileDriver(*parsed_format, config, context, *folder,
                                                rotate_by_date, offset_minutes, rotate_size));
}

void RegisterFileDrivers() {
  for (const char* format : {"csv", "jsonl", "parquet"}) {
    std::string name = format;
    RegisterDriver(name, [name](const JsonObject& config, const DriverContext& context) {
      return NewFileDriver(name, config, context);
    });
  }
}

}  // namespace s3db::replicator
