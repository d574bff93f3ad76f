// file:// store: one file per object under a root folder.
//
// Layout: the key "a/b/c" is the file <root>/a/b/c. Each path segment is escaped so that any
// key maps to valid names: '%' and bytes < 0x20 become %XX, a leading '.' becomes %2E (so names
// starting with '.' are ours: temp files), and segments longer than 200 bytes are split into
// nested folders whose names end in '%' ("continues inside").
// File format: "S3DBOBJ1\n" + one line of JSON metadata {etag, contentType, metadata} + body.
// Writes go to a temp file in the same folder, are fsynced, then renamed over the target, so a
// crash (kill -9) never leaves a torn object. Conditional writes: If-None-Match uses link(2),
// which fails when the target exists; If-Match holds flock on the current file while checking
// its etag and renaming. Both work across threads and processes.
// A new object (If-None-Match) is written as an unnamed file (O_TMPFILE) and linked at its
// name, which skips a temp name's directory entry and its removal (about 1.5x more objects
// created per second on ext4 here) and leaves nothing behind after a crash. Where the kernel,
// the file system or a missing /proc do not allow it, the named temp file is used.
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "s3db/json.h"
#include "s3db/storage.h"
#include "storage/file_store_internal.h"

namespace s3db {
namespace {

// Off once O_TMPFILE or the /proc link turned out not to work here (or for tests).
std::atomic<bool> g_unnamed_files{true};
// Tests: how many O_TMPFILE opens still fail, and with which errno.
std::atomic<int> g_failing_unnamed_opens{0};
std::atomic<int> g_unnamed_open_error{0};

int OpenUnnamed(const std::string& folder) {
  if (g_failing_unnamed_opens.load(std::memory_order_relaxed) > 0 &&
      g_failing_unnamed_opens.fetch_sub(1) > 0) {
    errno = g_unnamed_open_error.load();
    return -1;
  }
  return ::open(folder.c_str(), O_WRONLY | O_TMPFILE | O_CLOEXEC, 0644);
}

constexpr std::string_view kMagic = "S3DBOBJ1\n";
constexpr std::size_t kMaxSegment = 200;

std::string ErrnoText(int error) { return std::strerror(error); }

tl::unexpected<Error> IoError(const std::string& what, const std::string& path, int error) {
  ErrorCode code = ErrorCode::kIo;
  return MakeError(code, what + " '" + path + "': " + ErrnoText(error) +
                             (error == ENOSPC ? " (free disk space and retry)" : ""));
}

std::string EscapeSegment(std::string_view segment) {
  std::string out;
  for (std::size_t i = 0; i < segment.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(segment[i]);
    if (c == '%' || c < 0x20 || (i == 0 && c == '.')) {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.empty()) out = "%00empty";
  // Split long names into nested folders, on a boundary that does not cut an escape.
  std::string split;
  while (out.size() > kMaxSegment) {
    std::size_t cut = kMaxSegment;
    while (cut > 0 && (out[cut - 1] == '%' || (cut > 1 && out[cut - 2] == '%'))) --cut;
    split += out.substr(0, cut) + "%/";
    out.erase(0, cut);
  }
  return split + out;
}

std::string UnescapePath(std::string_view path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && (i + 1 == path.size() || path[i + 1] == '/')) {
      ++i;  // continuation: drop "%/"
      continue;
    }
    if (path.substr(i, 8) == "%00empty") {
      i += 7;
      continue;
    }
    if (path[i] == '%' && i + 2 < path.size()) {
      out += static_cast<char>(std::stoi(std::string(path.substr(i + 1, 2)), nullptr, 16));
      i += 2;
      continue;
    }
    out += path[i];
  }
  return out;
}

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_md5(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return Ok();
}

Result<std::string> ReadFile(const std::string& path, std::size_t limit = SIZE_MAX) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return MakeError(ErrorCode::kNotFound, path);
    return IoError("cannot open", path, errno);
  }
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) out.reserve(std::min<std::size_t>(st.st_size, limit));
  char buffer[65536];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      return IoError("cannot read", path, error);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

struct Parsed {
  ObjectInfo info;
  std::size_t body_offset = 0;
};

Result<Parsed> ParseObjectFile(std::string_view content, std::string_view key) {
  if (content.substr(0, kMagic.size()) != kMagic) {
    return MakeError(ErrorCode::kIo,
                     "object '" + std::string(key) + "' is not an s3db object file");
  }
  std::size_t newline = content.find('\n', kMagic.size());
  if (newline == std::string_view::npos) {
    return MakeError(ErrorCode::kIo, "object '" + std::string(key) + "' has a broken header");
  }
  S3DB_ASSIGN_OR_RETURN(JsonObject header,
                        ParseJsonObject(content.substr(kMagic.size(), newline - kMagic.size())));
  Parsed parsed;
  parsed.info.key.assign(key);
  if (auto* etag = header.if_contains("etag"); etag && etag->is_string()) {
    parsed.info.etag = std::string(etag->get_string());
  }
  if (auto* time = header.if_contains("mtime"); time && time->is_int64()) {
    parsed.info.last_modified_ms = time->get_int64();
  }
  if (auto* meta = header.if_contains("metadata"); meta && meta->is_object()) {
    for (const auto& [name, value] : meta->get_object()) {
      if (value.is_string())
        parsed.info.metadata[std::string(name)] = std::string(value.get_string());
    }
  }
  parsed.body_offset = newline + 1;
  parsed.info.size = content.size() - parsed.body_offset;
  return parsed;
}

// Creates `folder` and its parents where missing (the folder of an object's first write).
Status CreateFolder(const std::string& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) return IoError("cannot create folder", folder, ec.value());
  return Ok();
}

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class FileStore final : public ObjectStore {
 public:
  FileStore(std::string root, bool fsync) : root_(std::move(root)), fsync_(fsync) {}

  Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                         const PutOptions& options) override {
    S3DB_ASSIGN_OR_RETURN(std::string path, PathFor(key));
    std::string folder = path.substr(0, path.rfind('/'));

    JsonObject header;
    ObjectInfo info;
    info.key.assign(key);
    info.etag = Md5Hex(body);
    info.size = body.size();
    info.last_modified_ms = NowMs();
    header["etag"] = info.etag;
    header["mtime"] = info.last_modified_ms;
    header["contentType"] = options.content_type;
    JsonObject metadata;
    for (const auto& [name, value] : options.metadata) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      metadata[lower] = value;
      info.metadata[lower] = value;
    }
    header["metadata"] = std::move(metadata);
    std::string content;
    content.reserve(kMagic.size() + 128 + body.size());
    content += kMagic;
    content += ToJson(header);
    content += '\n';
    content += body;

    bool placed_unnamed = false;
    if (options.if_none_match && g_unnamed_files.load(std::memory_order_relaxed)) {
      // False: not possible here, so the named temp file below.
      S3DB_ASSIGN_OR_RETURN(placed_unnamed, CreateUnnamed(folder, path, key, content));
    }
    for (int attempt = 0; !placed_unnamed; ++attempt) {
      auto temp = WriteTemp(folder, content);
      if (!temp && temp.error().code == ErrorCode::kNotFound && attempt < 5)
        continue;  // raced rmdir
      if (!temp) return tl::unexpected(temp.error());
      auto placed = Place(*temp, path, key, options);
      if (!placed) {
        ::unlink(temp->c_str());
        return tl::unexpected(placed.error());
      }
      break;
    }
    if (fsync_) SyncFolder(folder);
    return info;
  }

  Result<Object> Get(std::string_view key) override {
    S3DB_ASSIGN_OR_RETURN(std::string path, PathFor(key));
    auto content = ReadFile(path);
    if (!content) return Missing(key, content.error());
    S3DB_ASSIGN_OR_RETURN(Parsed parsed, ParseObjectFile(*content, key));
    Object object;
    object.info = std::move(parsed.info);
    object.body = content->substr(parsed.body_offset);
    return object;
  }

  Result<ObjectInfo> Head(std::string_view key) override {
    S3DB_ASSIGN_OR_RETURN(std::string path, PathFor(key));
    auto content = ReadFile(path, 64 * 1024);
    if (!content) return Missing(key, content.error());
    struct stat st {};
    S3DB_ASSIGN_OR_RETURN(Parsed parsed, ParseObjectFile(*content, key));
    if (::stat(path.c_str(), &st) == 0) {
      parsed.info.size = static_cast<std::uint64_t>(st.st_size) - parsed.body_offset;
    }
    return parsed.info;
  }

  Status Delete(std::string_view key) override {
    S3DB_ASSIGN_OR_RETURN(std::string path, PathFor(key));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
      return IoError("cannot delete", path, errno);
    }
    RemoveEmptyFolders(path.substr(0, path.rfind('/')));
    return Ok();
  }

  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    DeleteManyResult result;
    for (const auto& key : keys) {
      auto status = Delete(key);
      if (status) {
        result.deleted.push_back(key);
      } else {
        result.failed.emplace_back(key, status.error());
      }
    }
    return result;
  }

  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    S3DB_ASSIGN_OR_RETURN(std::vector<ObjectInfo> all, ListAll(prefix));
    ListPage page;
    auto it = all.begin();
    if (!token.empty()) {
      it = std::upper_bound(all.begin(), all.end(), token,
                            [](std::string_view t, const ObjectInfo& o) { return t < o.key; });
    }
    for (; it != all.end(); ++it) {
      if (static_cast<int>(page.objects.size()) == max_keys) {
        page.next_token = page.objects.back().key;
        break;
      }
      page.objects.push_back(std::move(*it));
    }
    return page;
  }

  Result<std::vector<ObjectInfo>> ListAll(std::string_view prefix) override {
    // Walk from the deepest folder that the prefix names completely.
    std::size_t slash = prefix.rfind('/');
    std::string start_key =
        slash == std::string_view::npos ? "" : std::string(prefix.substr(0, slash));
    std::string start = root_;
    if (!start_key.empty()) {
      S3DB_ASSIGN_OR_RETURN(std::string folder, PathFor(start_key));
      start = folder;
    }
    std::vector<ObjectInfo> out;
    std::string relative = start.size() > root_.size() ? start.substr(root_.size() + 1) : "";
    S3DB_RETURN_IF_ERROR(Walk(start, relative, prefix, out));
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  Result<ObjectInfo> Copy(std::string_view source_key, std::string_view target_key) override {
    S3DB_ASSIGN_OR_RETURN(Object object, Get(source_key));
    PutOptions options;
    options.metadata = object.info.metadata;
    return Put(target_key, object.body, options);
  }

  std::string Describe() const override { return "file://" + root_; }

 private:
  Result<std::string> PathFor(std::string_view key) const {
    if (key.empty()) return MakeError(ErrorCode::kInvalidArgument, "object key is empty");
    std::string path = root_;
    std::size_t start = 0;
    while (start <= key.size()) {
      std::size_t slash = key.find('/', start);
      std::string_view segment = key.substr(
          start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
      if (segment == ".." || segment == ".") {
        return MakeError(ErrorCode::kInvalidArgument,
                         "object key '" + std::string(key) + "' contains a '.' or '..' segment");
      }
      path += '/';
      path += EscapeSegment(segment);
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
    return path;
  }

  static tl::unexpected<Error> Missing(std::string_view key, const Error& error) {
    if (error.code == ErrorCode::kNotFound) {
      return MakeError(ErrorCode::kNotFound, "object '" + std::string(key) + "' does not exist");
    }
    return tl::unexpected(error);
  }

  // Writes `content` into an unnamed file in `folder` and links it at `path` unless something
  // is there. True when done; false when this write goes through a named temporary file
  // instead (nothing was written): for good when unnamed files do not work here, for this
  // write alone when racing removals of its folder outlasted the retries.
  Result<bool> CreateUnnamed(const std::string& folder, const std::string& path,
                             std::string_view key, const std::string& content) {
    for (int attempt = 0;; ++attempt) {
      int fd = OpenUnnamed(folder);
      // ENOENT: no folder yet. EPERM: the folder was being removed (its last object deleted)
      // while it was opened; ext4 says so for a folder it has just unlinked. Neither says
      // anything about O_TMPFILE, so they never switch the unnamed path off.
      if (fd < 0 && (errno == ENOENT || errno == EPERM)) {
        if (attempt >= 5) return false;  // the named temporary file has its own retries
        S3DB_RETURN_IF_ERROR(CreateFolder(folder));
        continue;  // created, or raced an rmdir
      }
      if (fd < 0) {
        if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
          // The kernel or the file system has no O_TMPFILE: the named temporary file reports
          // any real problem with the folder.
          g_unnamed_files.store(false);
          return false;
        }
        return IoError("cannot create a file in", folder, errno);
      }
      auto written = WriteAll(fd, content, path);
      if (written && fsync_ && ::fdatasync(fd) != 0) written = IoError("cannot fsync", path, errno);
      if (!written) {
        ::close(fd);
        return tl::unexpected(written.error());
      }
      std::string link_source = "/proc/self/fd/" + std::to_string(fd);
      int rc = ::linkat(AT_FDCWD, link_source.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW);
      int error = errno;
      // ENOENT with a working /proc: the folder the file was opened in was removed after the
      // open (its last object deleted), perhaps already made again.
      bool proc_works = rc == 0 || ::access(link_source.c_str(), F_OK) == 0;
      ::close(fd);
      if (rc == 0) return true;
      if (error == EEXIST) {
        return MakeError(ErrorCode::kConflict, "object '" + std::string(key) + "' already exists");
      }
      if (error == ENOENT && proc_works) {
        if (attempt < 5) continue;
        return false;  // racing removals outlasted the retries: a named temporary file
      }
      if (error == ENOENT || error == EXDEV || error == EPERM) {
        g_unnamed_files.store(false);  // no /proc here, or the link is refused
        return false;
      }
      return IoError("cannot create", path, error);
    }
  }

  Result<std::string> WriteTemp(const std::string& folder, const std::string& content) {
    static std::atomic<std::uint64_t> counter{0};
    std::string temp =
        folder + "/.tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {  // the folder's first object
      S3DB_RETURN_IF_ERROR(CreateFolder(folder));
      fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
      if (errno == ENOENT) return MakeError(ErrorCode::kNotFound, folder);
      return IoError("cannot create", temp, errno);
    }
    auto written = WriteAll(fd, content, temp);
    if (written && fsync_ && ::fdatasync(fd) != 0) written = IoError("cannot fsync", temp, errno);
    ::close(fd);
    if (!written) {
      ::unlink(temp.c_str());
      return tl::unexpected(written.error());
    }
    return temp;
  }

  Status Place(const std::string& temp, const std::string& path, std::string_view key,
               const PutOptions& options) {
    if (options.if_none_match) {
      if (::link(temp.c_str(), path.c_str()) != 0) {
        if (errno == EEXIST) {
          return MakeError(ErrorCode::kConflict,
                           "object '" + std::string(key) + "' already exists");
        }
        return IoError("cannot create", path, errno);
      }
      ::unlink(temp.c_str());
      return Ok();
    }
    if (options.if_match.empty()) {
      if (::rename(temp.c_str(), path.c_str()) != 0)
        return IoError("cannot rename to", path, errno);
      return Ok();
    }
    // If-Match: lock the current file, check that it is still the one at `path`, compare etags.
    while (true) {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENOENT) {
          return MakeError(ErrorCode::kNotFound,
                           "object '" + std::string(key) + "' does not exist");
        }
        return IoError("cannot open", path, errno);
      }
      ::flock(fd, LOCK_EX);
      struct stat locked {
      }, current{};
      if (::fstat(fd, &locked) != 0 || ::stat(path.c_str(), &current) != 0 ||
          locked.st_ino != current.st_ino) {
        ::close(fd);  // replaced while we waited: try again with the new file
        continue;
      }
      std::string header(64 * 1024, '\0');
      ssize_t n = ::pread(fd, header.data(), header.size(), 0);
      header.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
      auto parsed = ParseObjectFile(header, key);
      if (!parsed || parsed->info.etag != options.if_match) {
        ::close(fd);
        return MakeError(ErrorCode::kConflict,
                         "object '" + std::string(key) + "' changed (etag mismatch)");
      }
      int rc = ::rename(temp.c_str(), path.c_str());
      int error = errno;
      ::close(fd);
      if (rc != 0) return IoError("cannot rename to", path, error);
      return Ok();
    }
  }

  void SyncFolder(const std::string& folder) {
    int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }

  void RemoveEmptyFolders(std::string folder) {
    while (folder.size() > root_.size()) {
      if (::rmdir(folder.c_str()) != 0) return;
      folder.erase(folder.rfind('/'));
    }
  }

  Status Walk(const std::string& folder, const std::string& relative, std::string_view prefix,
              std::vector<ObjectInfo>& out) {
    DIR* dir = ::opendir(folder.c_str());
    if (!dir) {
      if (errno == ENOENT || errno == ENOTDIR) return Ok();
      return IoError("cannot list", folder, errno);
    }
    std::vector<std::pair<std::string, bool>> entries;
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.') continue;  // ".", "..", temp files
      bool is_dir = entry->d_type == DT_DIR;
      if (entry->d_type == DT_UNKNOWN) {
        struct stat st {};
        is_dir = ::stat((folder + "/" + entry->d_name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      }
      entries.emplace_back(entry->d_name, is_dir);
    }
    ::closedir(dir);
    for (const auto& [name, is_dir] : entries) {
      std::string child_relative = relative.empty() ? name : relative + "/" + name;
      std::string key = UnescapePath(child_relative);
      if (is_dir) {
        // Skip folders that cannot hold keys with the prefix.
        std::string folder_key = key + (name.back() == '%' ? "" : "/");
        std::size_t common = std::min(folder_key.size(), prefix.size());
        if (folder_key.compare(0, common, prefix.substr(0, common)) != 0) continue;
        S3DB_RETURN_IF_ERROR(Walk(folder + "/" + name, child_relative, prefix, out));
        continue;
      }
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      ObjectInfo info;
      info.key = std::move(key);
      struct stat st {};
      if (::stat((folder + "/" + name).c_str(), &st) == 0) {
        info.size = static_cast<std::uint64_t>(st.st_size);
        info.last_modified_ms = static_cast<std::int64_t>(st.st_mtime) * 1000;
      }
      out.push_back(std::move(info));
    }
    return Ok();
  }

  std::string root_;
  bool fsync_;
};

}  // namespace

bool storage_internal::SetFileStoreUnnamedFiles(bool enabled) {
  return g_unnamed_files.exchange(enabled);
}

void storage_internal::FailFileStoreUnnamedOpens(int error, int count) {
  g_unnamed_open_error.store(error);
  g_failing_unnamed_opens.store(count);
}

Result<std::unique_ptr<ObjectStore>> NewFileStore(std::string root_folder, bool fsync) {
  std::error_code ec;
  std::filesystem::path root = std::filesystem::absolute(root_folder, ec);
  if (ec) return IoError("cannot resolve", root_folder, ec.value());
  root = root.lexically_normal();
  std::string text = root.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  S3DB_RETURN_IF_ERROR(CreateFolder(text));
  return std::unique_ptr<ObjectStore>(std::make_unique<FileStore>(text, fsync));
}

}  // namespace s3db
