#include "s3db/storage.h"

namespace s3db {

std::unique_ptr<ObjectStore> NewSharedMemoryStore(const ConnectionString& connection);

Result<std::vector<ObjectInfo>> ObjectStore::ListAll(std::string_view prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  while (true) {
    S3DB_ASSIGN_OR_RETURN(ListPage page, List(prefix, token, 1000));
    for (auto& info : page.objects) all.push_back(std::move(info));
    if (page.next_token.empty()) break;
    token = std::move(page.next_token);
  }
  return all;
}

Result<std::unique_ptr<ObjectStore>> OpenObjectStore(const ConnectionString& connection,
                                                     const ObjectStoreOptions& options) {
  switch (connection.scheme) {
    case ConnectionString::Scheme::kMemory:
      return NewSharedMemoryStore(connection);
    case ConnectionString::Scheme::kFile: {
      bool fsync = options.fsync;
      if (auto it = connection.params.find("fsync"); it != connection.params.end()) {
        fsync = !(it->second == "off" || it->second == "false" || it->second == "0");
      }
      return NewFileStore(connection.path, fsync);
    }
    case ConnectionString::Scheme::kS3:
    case ConnectionString::Scheme::kHttp:
    case ConnectionString::Scheme::kHttps:
      return NewS3Store(connection, options);
  }
  return MakeError(ErrorCode::kInternal, "unknown connection scheme");
}

Result<std::unique_ptr<ObjectStore>> OpenObjectStore(std::string_view connection_string,
                                                     const ObjectStoreOptions& options) {
  S3DB_ASSIGN_OR_RETURN(ConnectionString connection, ConnectionString::Parse(connection_string));
  return OpenObjectStore(connection, options);
}

}  // namespace s3db
