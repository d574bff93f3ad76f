#include "formats/byte_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace s3db::formats {
namespace {

tl::unexpected<Error> IoError(std::string_view what, const std::string& path, int error_number) {
  return MakeError(ErrorCode::kIo,
                   std::string(what) + " '" + path + "': " + std::strerror(error_number));
}

Status WriteAllAt(int fd, std::string_view bytes, std::uint64_t offset, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", path, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
    offset += static_cast<std::uint64_t>(written);
  }
  return Ok();
}

std::string ParentDirectory(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status SyncDirectoryOf(const std::string& path) {
  std::string directory = ParentDirectory(path);
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open directory", directory, errno);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) return IoError("cannot fsync directory", directory, saved);
  return Ok();
}

// Copies `length` bytes of `from_fd` (from offset 0) to `to_fd`, in the kernel when it can.
Status CopyFileContent(int from_fd, int to_fd, std::uint64_t length, const std::string& path) {
  loff_t in_offset = 0;
  loff_t out_offset = 0;
  std::uint64_t left = length;
  while (left > 0) {
    ssize_t copied = ::copy_file_range(from_fd, &in_offset, to_fd, &out_offset, left, 0);
    if (copied > 0) {
      left -= static_cast<std::uint64_t>(copied);
      continue;
    }
    if (copied < 0 && errno == EINTR) continue;
    if (copied == 0 || errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
        errno == EOPNOTSUPP) {
      break;  // fall back to read/write below
    }
    return IoError("cannot copy to", path, errno);
  }
  std::string buffer(1 << 20, '\0');
  while (left > 0) {
    std::size_t want = left < buffer.size() ? static_cast<std::size_t>(left) : buffer.size();
    ssize_t got = ::pread(from_fd, buffer.data(), want, in_offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return IoError("cannot read back", path, got < 0 ? errno : EIO);
    S3DB_RETURN_IF_ERROR(WriteAllAt(to_fd, std::string_view(buffer.data(), got),
                                    static_cast<std::uint64_t>(out_offset), path));
    in_offset += got;
    out_offset += got;
    left -= static_cast<std::uint64_t>(got);
  }
  return Ok();
}

}  // namespace

Result<std::string> ByteSink::ReadBodyRange(std::uint64_t offset, std::uint64_t length) const {
  S3DB_ASSIGN_OR_RETURN(std::string body, ReadBody());
  if (offset >= body.size()) return std::string();
  return body.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
}

Status ByteSink::TruncateBody(std::uint64_t) {
  return MakeError(ErrorCode::kInternal, "this sink cannot cut its body");
}

// ---- FileByteSink ----

Result<std::unique_ptr<FileByteSink>> FileByteSink::Open(std::string path,
                                                         FileSinkOptions options) {
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "file sink: empty path");
  std::string staging = path + ".tmp";
  int fd = ::open(staging.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, options.file_mode);
  if (fd < 0) return IoError("cannot create", staging, errno);
  return std::unique_ptr<FileByteSink>(new FileByteSink(std::move(path), options, fd));
}

Result<std::unique_ptr<FileByteSink>> FileByteSink::Resume(std::string path,
                                                           FileSinkOptions options) {
  int published = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (published < 0) {
    if (errno == ENOENT) return MakeError(ErrorCode::kNotFound, "no file '" + path + "'");
    return IoError("cannot open", path, errno);
  }
  struct stat info;
  if (::fstat(published, &info) != 0) {
    int saved = errno;
    ::close(published);
    return IoError("cannot stat", path, saved);
  }
  auto sink = Open(path, options);
  if (!sink) {
    ::close(published);
    return sink;
  }
  auto size = static_cast<std::uint64_t>(info.st_size);
  Status copied = CopyFileContent(published, (*sink)->fd_, size, (*sink)->staging_path());
  ::close(published);
  if (!copied) {
    (*sink)->Abandon();
    return tl::unexpected(copied.error());
  }
  (*sink)->body_size_ = size;
  return sink;
}

FileByteSink::FileByteSink(std::string path, FileSinkOptions options, int fd)
    : path_(std::move(path)), options_(options), fd_(fd) {}

FileByteSink::~FileByteSink() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileByteSink::CheckOpen() const {
  if (closed_) return MakeError(ErrorCode::kInternal, "file sink '" + path_ + "' is closed");
  if (fd_ < 0) return MakeError(ErrorCode::kInternal, "file sink '" + path_ + "' was abandoned");
  return Ok();
}

Status FileByteSink::Append(std::string_view bytes) {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  S3DB_RETURN_IF_ERROR(WriteAllAt(fd_, bytes, body_size_, staging_path()));
  body_size_ += bytes.size();
  return Ok();
}

Status FileByteSink::WriteTrailerAndFlush(std::string_view trailer) {
  S3DB_RETURN_IF_ERROR(WriteAllAt(fd_, trailer, body_size_, staging_path()));
  // A shorter trailer than the previous one must not leave stale bytes at the end.
  off_t total = static_cast<off_t>(body_size_ + trailer.size());
  if (::ftruncate(fd_, total) != 0) return IoError("cannot truncate", staging_path(), errno);
  if (::fsync(fd_) != 0) return IoError("cannot fsync", staging_path(), errno);
  return Ok();
}

Status FileByteSink::Publish() {
  struct stat info;
  if (::fstat(fd_, &info) != 0) return IoError("cannot stat", staging_path(), errno);
  std::string publishing = path_ + ".publish.tmp";
  int out =
      ::open(publishing.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, options_.file_mode);
  if (out < 0) return IoError("cannot create", publishing, errno);
  Status copied = CopyFileContent(fd_, out, static_cast<std::uint64_t>(info.st_size), publishing);
  if (copied && ::fsync(out) != 0) copied = IoError("cannot fsync", publishing, errno);
  ::close(out);
  if (copied && ::rename(publishing.c_str(), path_.c_str()) != 0) {
    copied = IoError("cannot rename to", path_, errno);
  }
  if (!copied) {
    ::unlink(publishing.c_str());
    return copied;
  }
  return SyncDirectoryOf(path_);
}

Status FileByteSink::Sync(std::string_view trailer) {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  S3DB_RETURN_IF_ERROR(WriteTrailerAndFlush(trailer));
  if (options_.publish_on_sync) return Publish();
  return Ok();
}

Status FileByteSink::Close(std::string_view trailer) {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  S3DB_RETURN_IF_ERROR(WriteTrailerAndFlush(trailer));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return IoError("cannot close", staging_path(), errno);
  if (::rename(staging_path().c_str(), path_.c_str()) != 0) {
    return IoError("cannot rename to", path_, errno);
  }
  closed_ = true;
  return SyncDirectoryOf(path_);
}

void FileByteSink::Abandon() {
  if (closed_ || fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(staging_path().c_str());
}

Result<std::string> FileByteSink::ReadBody() const {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  std::string body(body_size_, '\0');
  std::uint64_t done = 0;
  while (done < body_size_) {
    ssize_t got = ::pread(fd_, body.data() + done, body_size_ - done, static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return IoError("cannot read back", staging_path(), got < 0 ? errno : EIO);
    done += static_cast<std::uint64_t>(got);
  }
  return body;
}

Result<std::string> FileByteSink::ReadBodyRange(std::uint64_t offset, std::uint64_t length) const {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  if (offset >= body_size_) return std::string();
  std::string bytes(static_cast<std::size_t>(std::min(length, body_size_ - offset)), '\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t got =
        ::pread(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return IoError("cannot read back", staging_path(), got < 0 ? errno : EIO);
    done += static_cast<std::size_t>(got);
  }
  return bytes;
}

Status FileByteSink::Reset() {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  body_size_ = 0;
  return Ok();
}

Status FileByteSink::TruncateBody(std::uint64_t size) {
  S3DB_RETURN_IF_ERROR(CheckOpen());
  body_size_ = std::min(body_size_, size);  // the next Sync cuts the file there
  return Ok();
}

// ---- MemoryByteSink ----

MemoryByteSink::MemoryByteSink(PublishFunction on_publish) : on_publish_(std::move(on_publish)) {}

MemoryByteSink::MemoryByteSink(PublishFunction on_publish, std::string body)
    : on_publish_(std::move(on_publish)), body_(std::move(body)) {}

Status MemoryByteSink::TruncateBody(std::uint64_t size) {
  if (closed_ || abandoned_) {
    return MakeError(ErrorCode::kInternal, "memory sink is closed or abandoned");
  }
  if (size < body_.size()) body_.resize(static_cast<std::size_t>(size));
  return Ok();
}

Status MemoryByteSink::Append(std::string_view bytes) {
  if (closed_ || abandoned_) {
    return MakeError(ErrorCode::kInternal, "memory sink is closed or abandoned");
  }
  body_.append(bytes);
  return Ok();
}

Status MemoryByteSink::PublishSnapshot(std::string_view trailer) {
  if (closed_ || abandoned_) {
    return MakeError(ErrorCode::kInternal, "memory sink is closed or abandoned");
  }
  std::string object;
  object.reserve(body_.size() + trailer.size());
  object.append(body_);
  object.append(trailer);
  if (on_publish_) S3DB_RETURN_IF_ERROR(on_publish_(object));
  snapshot_ = std::move(object);
  ++publish_count_;
  return Ok();
}

Status MemoryByteSink::Sync(std::string_view trailer) { return PublishSnapshot(trailer); }

Status MemoryByteSink::Close(std::string_view trailer) {
  S3DB_RETURN_IF_ERROR(PublishSnapshot(trailer));
  closed_ = true;
  return Ok();
}

void MemoryByteSink::Abandon() {
  if (closed_) return;
  abandoned_ = true;
  body_.clear();
}

Status MemoryByteSink::Reset() {
  if (closed_ || abandoned_) {
    return MakeError(ErrorCode::kInternal, "memory sink is closed or abandoned");
  }
  body_.clear();
  return Ok();
}

}  // namespace s3db::formats
