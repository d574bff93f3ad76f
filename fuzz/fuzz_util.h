// Helpers shared by the libFuzzer targets: a check that aborts with a message (so libFuzzer
// records the input as a crash), and a generator of JSON rows from fuzz bytes.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "s3db/json.h"

// Aborts when `condition` is false: a broken invariant is a finding, like a crash.
#define FUZZ_CHECK(condition, message)                                                    \
  do {                                                                                    \
    if (!(condition)) {                                                                   \
      std::fprintf(stderr, "fuzz check failed: %s: %s\n", #condition,                     \
                   std::string(message).c_str());                                         \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace s3db::fuzz {

// A field name: mostly from a few fixed names (so rows share columns), sometimes any bytes.
inline std::string FieldName(FuzzedDataProvider& data) {
  static const char* const kNames[] = {"id", "name", "age", "tags", "meta", "at", "x", ""};
  if (data.ConsumeBool()) return kNames[data.ConsumeIntegralInRange<int>(0, 7)];
  return data.ConsumeRandomLengthString(24);
}

// One JSON value of any kind; `depth` bounds the nesting.
inline Json Value(FuzzedDataProvider& data, int depth) {
  switch (data.ConsumeIntegralInRange<int>(0, depth > 0 ? 9 : 6)) {
    case 0: return nullptr;
    case 1: return data.ConsumeBool();
    case 2: return data.ConsumeIntegral<std::int64_t>();
    case 3: return data.ConsumeIntegral<std::uint64_t>();
    case 4: return data.ConsumeFloatingPoint<double>();
    case 5: {
      // An ISO 8601-looking text now and then, for datetime columns.
      if (data.ConsumeBool()) return "2024-05-01T12:00:00.123Z";
      return Json(data.ConsumeRandomLengthString(64));
    }
    case 6: return Json(data.ConsumeRandomLengthString(8));
    case 7:
    case 8: {
      JsonArray array;
      int count = data.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < count; ++i) array.push_back(Value(data, depth - 1));
      return array;
    }
    default: {
      JsonObject object;
      int count = data.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < count; ++i) object[FieldName(data)] = Value(data, depth - 1);
      return object;
    }
  }
}

inline JsonObject Row(FuzzedDataProvider& data) {
  JsonObject row;
  int fields = data.ConsumeIntegralInRange<int>(0, 6);
  for (int i = 0; i < fields; ++i) row[FieldName(data)] = Value(data, 2);
  return row;
}

}  // namespace s3db::fuzz
