// Byte sinks: where a file writer's bytes go (a local file, or memory for an upload).
//
// A sink holds one object being built. Its content is a *body* that only grows by Append
// (or is emptied by Reset) plus a *trailer* that each Sync replaces: Parquet's footer is a
// trailer, CSV and JSONL have none. Sync makes body + trailer a complete, durable object;
// the next Append continues the body after the old body (the old trailer is overwritten).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "s3db/error.h"

namespace s3db::formats {

class ByteSink {
 public:
  virtual ~ByteSink() = default;

  // Appends `bytes` to the body. On error (kIo) the sink is unusable.
  virtual Status Append(std::string_view bytes) = 0;

  // Makes body + `trailer` a complete object, durably (see each sink for where).
  virtual Status Sync(std::string_view trailer) = 0;

  // Final Sync: body + `trailer` become the finished object. No call is allowed afterwards
  // except Abandon (which then does nothing).
  virtual Status Close(std::string_view trailer) = 0;

  // Discards everything not yet published. Never fails; safe to call more than once.
  virtual void Abandon() = 0;

  // The body as appended so far (used to rewrite a file, e.g. a CSV header change).
  virtual Result<std::string> ReadBody() const = 0;

  // `length` bytes of the body from `offset` (fewer at its end). The default reads the body.
  virtual Result<std::string> ReadBodyRange(std::uint64_t offset, std::uint64_t length) const;

  // Empties the body; the last published object stays as it was until the next Sync.
  virtual Status Reset() = 0;

  // Cuts the body to its first `size` bytes (a writer dropping a torn record of a file it
  // continues); the last published object stays as it was until the next Sync. Sinks that
  // cannot fail with kInternal.
  virtual Status TruncateBody(std::uint64_t size);

  // Bytes in the body.
  virtual std::uint64_t BodySize() const = 0;
};

struct FileSinkOptions {
  // When true, every Sync also publishes a complete copy at the final path, atomically
  // (written to "<path>.publish.tmp", fsynced, renamed, directory fsynced), so readers of
  // the final path always see a complete file with every synced row. Cost: one in-kernel copy
  // of the file per Sync. When false, the final path appears only at Close; each Sync leaves
  // "<path>.tmp" complete and durable.
  bool publish_on_sync = false;
  // Permission bits of the created file (before umask).
  int file_mode = 0644;
};

// Writes the object to "<path>.tmp" and renames it to `path` at Close (fsync file, rename,
// fsync directory), so `path` never holds a partial file. The parent directory must exist.
// Not thread-safe.
class FileByteSink : public ByteSink {
 public:
  // Creates (truncates) "<path>.tmp". Error kIo names the path and the system error.
  static Result<std::unique_ptr<FileByteSink>> Open(std::string path, FileSinkOptions options = {});
  // Continues the finished or published file `path`: a copy of it in "<path>.tmp" is the body,
  // so appends and the next Sync add to what readers already have. Error kNotFound when
  // `path` does not exist, kIo for other failures.
  static Result<std::unique_ptr<FileByteSink>> Resume(std::string path,
                                                      FileSinkOptions options = {});
  ~FileByteSink() override;

  Status Append(std::string_view bytes) override;
  Status Sync(std::string_view trailer) override;
  Status Close(std::string_view trailer) override;
  void Abandon() override;
  Result<std::string> ReadBody() const override;
  Result<std::string> ReadBodyRange(std::uint64_t offset, std::uint64_t length) const override;
  Status Reset() override;
  Status TruncateBody(std::uint64_t size) override;
  std::uint64_t BodySize() const override { return body_size_; }

  const std::string& path() const { return path_; }
  std::string staging_path() const { return path_ + ".tmp"; }

 private:
  FileByteSink(std::string path, FileSinkOptions options, int fd);
  Status WriteTrailerAndFlush(std::string_view trailer);
  Status Publish();
  Status CheckOpen() const;

  std::string path_;
  FileSinkOptions options_;
  int fd_ = -1;
  std::uint64_t body_size_ = 0;
  bool closed_ = false;
};

// Keeps the object in memory. Every Sync/Close takes a snapshot (body + trailer) that
// Snapshot() returns, and calls `on_publish` with it when one is given (for an upload: an
// error it returns fails the Sync). Not thread-safe.
class MemoryByteSink : public ByteSink {
 public:
  using PublishFunction = std::function<Status(std::string_view object)>;

  explicit MemoryByteSink(PublishFunction on_publish = nullptr);
  // Continues an object: `body` (its published content) is the body already appended.
  MemoryByteSink(PublishFunction on_publish, std::string body);

  Status Append(std::string_view bytes) override;
  Status Sync(std::string_view trailer) override;
  Status Close(std::string_view trailer) override;
  void Abandon() override;
  Result<std::string> ReadBody() const override { return body_; }
  Status Reset() override;
  Status TruncateBody(std::uint64_t size) override;
  std::uint64_t BodySize() const override { return body_.size(); }

  // The complete object as of the last Sync or Close; empty before the first.
  const std::string& Snapshot() const { return snapshot_; }
  // True after a successful Close.
  bool closed() const { return closed_; }
  // How many times Sync or Close published a snapshot.
  int publish_count() const { return publish_count_; }

 private:
  Status PublishSnapshot(std::string_view trailer);

  PublishFunction on_publish_;
  std::string body_;
  std::string snapshot_;
  bool closed_ = false;
  bool abandoned_ = false;
  int publish_count_ = 0;
};

}  // namespace s3db::formats
