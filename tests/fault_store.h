// An ObjectStore wrapper that injects faults, for error-path tests.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "s3db/storage.h"

namespace s3db::testing {

// kLostAnswer: the put reaches the store, then its answer is lost (the call fails).
// kNoEtag: a get answers without the object's ETag.
enum class Fault {
  kNone,
  kFailPut,
  kTimeout,
  kUnavailable,
  kTornWrite,
  kFailGet,
  kLostAnswer,
  kNoEtag
};

class FaultInjectingStore final : public ObjectStore {
 public:
  explicit FaultInjectingStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}

  // The next `count` matching operations fail with `fault`.
  void Inject(Fault fault, int count = 1) {
    fault_ = fault;
    remaining_ = count;
  }
  int puts() const { return puts_; }

  Result<ObjectInfo> Put(std::string_view key, std::string_view body,
                         const PutOptions& options) override {
    ++puts_;
    if (Take(Fault::kFailPut)) return MakeError(ErrorCode::kIo, "injected: put failed");
    if (Take(Fault::kTimeout)) return MakeError(ErrorCode::kTimeout, "injected: timeout");
    if (Take(Fault::kUnavailable)) return MakeError(ErrorCode::kUnavailable, "injected: 503");
    if (Take(Fault::kTornWrite)) {
      // Half the bytes reach the store, then the connection drops.
      (void)inner_->Put(key, body.substr(0, body.size() / 2), options);
      return MakeError(ErrorCode::kUnavailable, "injected: connection reset mid-body");
    }
    if (Take(Fault::kLostAnswer)) {
      auto stored = inner_->Put(key, body, options);
      if (!stored) return stored;
      return MakeError(ErrorCode::kUnavailable, "injected: the answer was lost");
    }
    return inner_->Put(key, body, options);
  }
  Result<Object> Get(std::string_view key) override {
    if (Take(Fault::kFailGet)) return MakeError(ErrorCode::kUnavailable, "injected: get failed");
    auto object = inner_->Get(key);
    if (object && Take(Fault::kNoEtag)) object->info.etag.clear();
    return object;
  }
  Result<ObjectInfo> Head(std::string_view key) override { return inner_->Head(key); }
  Status Delete(std::string_view key) override { return inner_->Delete(key); }
  Result<DeleteManyResult> DeleteMany(const std::vector<std::string>& keys) override {
    return inner_->DeleteMany(keys);
  }
  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    return inner_->List(prefix, token, max_keys);
  }
  Result<ObjectInfo> Copy(std::string_view source, std::string_view target) override {
    return inner_->Copy(source, target);
  }
  std::string Describe() const override { return "fault+" + inner_->Describe(); }

 private:
  bool Take(Fault fault) {
    if (fault_ != fault || remaining_ <= 0) return false;
    --remaining_;
    return true;
  }
  std::unique_ptr<ObjectStore> inner_;
  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> remaining_{0};
  std::atomic<int> puts_{0};
};

}  // namespace s3db::testing
