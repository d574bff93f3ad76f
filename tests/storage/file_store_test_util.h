// Helpers for the file store's tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "s3db/storage.h"
#include "storage/file_store_internal.h"

namespace s3db::testing {

// Makes one create under `root` ("probe/p"): where O_TMPFILE or /proc do not work, that turns
// the store's unnamed files off. Returns whether they were still on, and leaves the switch at
// `enabled`.
inline bool ProbeUnnamedFiles(const std::string& root, bool enabled) {
  auto store = NewFileStore(root);
  PutOptions create;
  create.if_none_match = true;
  if (!store || !(*store)->Put("probe/p", "x", create)) ADD_FAILURE() << "probe create failed";
  return storage_internal::SetFileStoreUnnamedFiles(enabled);
}

}  // namespace s3db::testing
