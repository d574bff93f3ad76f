#include "drivers/files/file_output.h"

#include <filesystem>

#include "s3db/database.h"

namespace s3db::replicator::files {
namespace {

namespace fs = std::filesystem;

std::string TrimSlashes(std::string_view text) {
  while (!text.empty() && text.front() == '/') text.remove_prefix(1);
  while (!text.empty() && text.back() == '/') text.remove_suffix(1);
  return std::string(text);
}

class FolderOutput final : public FileOutput {
 public:
  explicit FolderOutput(std::string folder) : folder_(std::move(folder)) {}

  Status Prepare() override {
    std::error_code error;
    fs::create_directories(folder_, error);
    if (error) {
      return MakeError(ErrorCode::kIo,
                       "output.path: cannot create " + folder_ + ": " + error.message());
    }
    return Ok();
  }

  Result<std::unique_ptr<formats::ByteSink>> OpenSink(const std::string& name,
                                                      bool publish_each_sync) override {
    formats::FileSinkOptions options;
    options.publish_on_sync = publish_each_sync;
    S3DB_ASSIGN_OR_RETURN(auto sink, formats::FileByteSink::Open(folder_ + "/" + name, options));
    return std::unique_ptr<formats::ByteSink>(std::move(sink));
  }

  Result<std::unique_ptr<formats::ByteSink>> ResumeSink(const std::string& name) override {
    formats::FileSinkOptions options;
    options.publish_on_sync = true;
    S3DB_ASSIGN_OR_RETURN(auto sink, formats::FileByteSink::Resume(folder_ + "/" + name, options));
    return std::unique_ptr<formats::ByteSink>(std::move(sink));
  }

  Result<bool> Exists(const std::string& name) override {
    std::error_code error;
    bool found = fs::exists(folder_ + "/" + name, error);
    if (error) {
      return MakeError(ErrorCode::kIo, "stat " + folder_ + "/" + name + ": " + error.message());
    }
    return found;
  }

  std::string Describe(const std::string& name) const override { return folder_ + "/" + name; }
  bool IsLocal() const override { return true; }
  std::string LocalFolder() const override { return folder_; }

 private:
  std::string folder_;
};

// Files as objects: each publish is one PUT of the complete file.
class StoreOutput final : public FileOutput {
 public:
  // `source`: the database whose store is used (null when a connection string is given).
  StoreOutput(Database* source, std::string connection_string, std::string key_prefix)
      : source_(source),
        connection_string_(std::move(connection_string)),
        key_prefix_(std::move(key_prefix)) {}

  Status Prepare() override {
    if (store_ != nullptr) return Ok();
    if (connection_string_.empty()) {
      if (source_ == nullptr) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "output: {driver: 's3'} without connectionString writes to the source "
                         "database's store, which this replicator has none of; add "
                         "output.connectionString");
      }
      store_ = &source_->store();
      return Ok();
    }
    auto parsed = ConnectionString::Parse(connection_string_);
    if (!parsed) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output.connectionString: " + Redact(parsed.error().message));
    }
    secret_ = parsed->secret_key;
    session_token_ = parsed->session_token;
    auto opened = OpenObjectStore(*parsed);
    if (!opened) {
      return MakeError(opened.error().code,
                       "output.connectionString: " + Redact(opened.error().message));
    }
    owned_ = std::move(*opened);
    store_ = owned_.get();
    return Ok();
  }

  Result<std::unique_ptr<formats::ByteSink>> OpenSink(const std::string& name,
                                                      bool /*publish_each_sync*/) override {
    return MakeSink(name, "");
  }

  Result<std::unique_ptr<formats::ByteSink>> ResumeSink(const std::string& name) override {
    if (store_ == nullptr) return MakeError(ErrorCode::kInternal, "file output not prepared");
    auto object = store_->Get(key_prefix_ + name);
    if (!object) {
      if (object.error().code == ErrorCode::kNotFound) return tl::unexpected(object.error());
      return MakeError(object.error().code,
                       "GET " + Describe(name) + ": " + Redact(object.error().message));
    }
    return MakeSink(name, std::move(object->body));
  }

 private:
  // A sink that uploads the whole object at each Sync / Close, starting from `body`.
  Result<std::unique_ptr<formats::ByteSink>> MakeSink(const std::string& name, std::string body) {
    if (store_ == nullptr) return MakeError(ErrorCode::kInternal, "file output not prepared");
    std::string key = key_prefix_ + name;
    ObjectStore* store = store_;
    PutOptions options;
    options.content_type = ContentTypeForFile(name);
    // Each Sync / Close of the sink uploads the whole file: an object is always complete.
    auto upload = [this, store, key, options](std::string_view object) -> Status {
      auto put = store->Put(key, object, options);
      if (!put) {
        return MakeError(put.error().code,
                         "upload " + Describe(key.substr(key_prefix_.size())) + ": " +
                             Redact(put.error().message));
      }
      return Ok();
    };
    return std::unique_ptr<formats::ByteSink>(
        std::make_unique<formats::MemoryByteSink>(std::move(upload), std::move(body)));
  }

 public:
  Result<bool> Exists(const std::string& name) override {
    if (store_ == nullptr) return MakeError(ErrorCode::kInternal, "file output not prepared");
    auto head = store_->Head(key_prefix_ + name);
    if (head) return true;
    if (head.error().code == ErrorCode::kNotFound) return false;
    return MakeError(head.error().code,
                     "HEAD " + Describe(name) + ": " + Redact(head.error().message));
  }

  std::string Describe(const std::string& name) const override {
    std::string where = store_ != nullptr ? Redact(store_->Describe()) : "output store";
    if (!where.empty() && where.back() != '/') where += "/";
    return where + key_prefix_ + name;
  }

  bool IsLocal() const override { return false; }

  std::string Redact(std::string_view text) const override {
    std::string redacted = RedactSecrets(text);
    for (const std::string* secret : {&secret_, &session_token_}) {
      if (secret->size() < 4) continue;  // too short to search for safely
      for (std::size_t at = redacted.find(*secret); at != std::string::npos;
           at = redacted.find(*secret, at)) {
        redacted.replace(at, secret->size(), "***");
      }
    }
    return redacted;
  }

 private:
  Database* source_;
  std::string connection_string_;
  std::string key_prefix_;  // "" or "<path>/"
  std::string secret_;
  std::string session_token_;
  std::unique_ptr<ObjectStore> owned_;
  ObjectStore* store_ = nullptr;
};

}  // namespace

std::string ContentTypeForFile(std::string_view name) {
  if (name.ends_with(".csv")) return "text/csv; charset=utf-8";
  if (name.ends_with(".jsonl")) return "application/x-ndjson";
  if (name.ends_with(".gz")) return "application/gzip";
  if (name.ends_with(".parquet")) return "application/vnd.apache.parquet";
  if (name.ends_with(".xlsx")) {
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
  }
  return "application/octet-stream";
}

Result<std::unique_ptr<FileOutput>> FileOutput::FromConfig(const JsonObject& config,
                                                           const DriverContext& context) {
  const Json* output = config.if_contains("output");
  if (output == nullptr || output->is_null()) {
    const Json* path = config.if_contains("outputPath");
    if (!path || !path->is_string() || path->get_string().empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output: required: {driver: 'filesystem', path}, {driver: 's3', path}, "
                       "{driver: 's3', connectionString, path} or outputPath");
    }
    return std::unique_ptr<FileOutput>(
        std::make_unique<FolderOutput>(std::string(path->get_string())));
  }
  if (!output->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "output: must be an object like {driver: 'filesystem', path: './out'}");
  }
  const JsonObject& object = output->get_object();
  std::string driver = "filesystem";
  if (const Json* name = object.if_contains("driver"); name && !name->is_null()) {
    if (!name->is_string()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output.driver: must be 'filesystem' or 's3'");
    }
    driver = std::string(name->get_string());
  }
  const Json* path = object.if_contains("path");
  if (path != nullptr && !path->is_null() && !path->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "output.path: must be a string");
  }
  std::string path_text = path && path->is_string() ? std::string(path->get_string()) : "";

  if (driver == "filesystem") {
    if (path_text.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "output.path: required (a folder)");
    }
    return std::unique_ptr<FileOutput>(std::make_unique<FolderOutput>(path_text));
  }
  if (driver != "s3") {
    return MakeError(ErrorCode::kInvalidArgument,
                     "output.driver: '" + driver + "' is not supported; use 'filesystem' or 's3'");
  }
  std::string relative = TrimSlashes(path_text);
  if (relative.find("..") != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "output.path: '" + relative + "' must not contain '..'");
  }
  std::string connection;
  if (const Json* text = object.if_contains("connectionString"); text && !text->is_null()) {
    if (!text->is_string() || text->get_string().empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output.connectionString: must be a non-empty string like "
                       "'s3://KEY:SECRET@bucket/prefix'");
    }
    connection = std::string(text->get_string());
    auto parsed = ConnectionString::Parse(connection);
    if (!parsed) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "output.connectionString: " + RedactSecrets(parsed.error().message));
    }
    std::string prefix = relative.empty() ? "" : relative + "/";
    return std::unique_ptr<FileOutput>(
        std::make_unique<StoreOutput>(nullptr, std::move(connection), std::move(prefix)));
  }
  std::string prefix = std::string(kPluginPrefix) + (relative.empty() ? "" : relative + "/");
  return std::unique_ptr<FileOutput>(
      std::make_unique<StoreOutput>(context.source, "", std::move(prefix)));
}

}  // namespace s3db::replicator::files
