#include "cli/service_state.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/json_input.h"

namespace s3db::cli {
namespace {

constexpr const char* kLockFile = "s3db-cli.lock";
constexpr const char* kOverridesFile = "s3db-cli-replicators.json";

std::string PathIn(const std::string& state_dir, const char* name) {
  return (std::filesystem::path(state_dir) / name).string();
}

}  // namespace

ServiceLock::ServiceLock(ServiceLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

ServiceLock& ServiceLock::operator=(ServiceLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

ServiceLock::~ServiceLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

Result<std::optional<ServiceLock>> ServiceLock::TryAcquire(const std::string& state_dir,
                                                           JsonObject* holder) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kIo,
                     "cannot create the state dir '" + state_dir + "': " + ec.message());
  }
  std::string path = PathIn(state_dir, kLockFile);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return MakeError(ErrorCode::kIo, "cannot open '" + path + "': " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    if (error == EWOULDBLOCK && holder) {
      std::string text(4096, '\0');
      ssize_t got = ::pread(fd, text.data(), text.size(), 0);
      text.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
      auto info = ParseJsonObjectInput(text);
      if (info) *holder = std::move(*info);
    }
    ::close(fd);
    if (error == EWOULDBLOCK) return std::optional<ServiceLock>();
    return MakeError(ErrorCode::kIo, "cannot lock '" + path + "': " + std::strerror(error));
  }
  ServiceLock lock;
  lock.fd_ = fd;
  JsonObject info;
  info["pid"] = static_cast<std::int64_t>(::getpid());
  S3DB_RETURN_IF_ERROR(lock.Describe(info));
  return std::optional<ServiceLock>(std::move(lock));
}

Status ServiceLock::Describe(const JsonObject& info) {
  std::string text = ToJson(info);
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return MakeError(ErrorCode::kIo,
                     std::string("cannot write the lock file: ") + std::strerror(errno));
  }
  return Ok();
}

Result<std::map<std::string, bool>> LoadReplicatorOverrides(const std::string& state_dir) {
  std::map<std::string, bool> overrides;
  std::string path = PathIn(state_dir, kOverridesFile);
  std::ifstream file(path);
  if (!file) return overrides;
  std::stringstream text;
  text << file.rdbuf();
  auto object = ParseJsonObjectInput(text.str());
  if (!object) {
    return MakeError(ErrorCode::kInvalidArgument,
                     path + ": " + object.error().message + " (delete the file to reset)");
  }
  for (const auto& [id, value] : *object) {
    if (value.is_bool()) overrides[std::string(id)] = value.get_bool();
  }
  return overrides;
}

Status SaveReplicatorOverride(const std::string& state_dir, const std::string& id, bool enabled) {
  S3DB_ASSIGN_OR_RETURN(auto overrides, LoadReplicatorOverrides(state_dir));
  overrides[id] = enabled;
  JsonObject object;
  for (const auto& [name, value] : overrides) object[name] = value;
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  std::string path = PathIn(state_dir, kOverridesFile);
  std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    file << ToJson(object) << "\n";
    if (!file) return MakeError(ErrorCode::kIo, "cannot write '" + temporary + "'");
  }
  std::filesystem::rename(temporary, path, ec);
  if (ec) return MakeError(ErrorCode::kIo, "cannot replace '" + path + "': " + ec.message());
  return Ok();
}

std::string EffectiveReplicatorId(const replicator::ReplicatorConfig& config, std::size_t index) {
  return config.id.empty() ? config.driver + "-" + std::to_string(index) : config.id;
}

void ApplyReplicatorOverrides(const std::map<std::string, bool>& overrides,
                              replicator::ReplicatorPluginOptions& options) {
  for (std::size_t i = 0; i < options.replicators.size(); ++i) {
    auto found = overrides.find(EffectiveReplicatorId(options.replicators[i], i));
    if (found != overrides.end()) options.replicators[i].enabled = found->second;
  }
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  in_addr address{};
  std::string text(host);
  if (::inet_pton(AF_INET, text.c_str(), &address) == 1) {
    return (ntohl(address.s_addr) >> 24) == 127;
  }
  return false;
}

std::string UnauthenticatedListenWarning(std::string_view host, const std::string& url,
                                         const std::string& where) {
  if (IsLoopbackHost(host)) return "";
  return "warning: listening on " + url +
         ", which is not a loopback address: the admin API has no authentication, so anyone "
         "who can reach it can read, write and delete records and drive the replicators; "
         "listen on 127.0.0.1 (" +
         where + ") or put an authenticating proxy in front";
}

}  // namespace s3db::cli
