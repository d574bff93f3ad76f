// Internal switches of the file:// store, for tests.
#pragma once

namespace s3db::storage_internal {

// New objects (If-None-Match writes) are written as unnamed files (O_TMPFILE) and linked into
// place, where the kernel and the file system allow it; otherwise through a named temporary
// file. Tests turn the unnamed path off to cover the other one. Returns the previous setting.
bool SetFileStoreUnnamedFiles(bool enabled);

// The next `count` O_TMPFILE opens of the file store fail with `error` (an errno value), as a
// file system or a racing folder removal would make them; count 0 ends it.
void FailFileStoreUnnamedOpens(int error, int count);

}  // namespace s3db::storage_internal
