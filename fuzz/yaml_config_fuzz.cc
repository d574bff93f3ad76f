// Fuzzes YAML configuration loading: ParseYaml, ParseConfig and, for a document that parses,
// BuildReplicatorOptions (which also compiles its Lua functions). No crash, no hang, and every
// error is kInvalidArgument (or kNotFound for a missing replicator section) starting with the
// file name, so the user knows where to look.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "fuzz_util.h"

namespace {

void CheckError(const s3db::Error& error) {
  FUZZ_CHECK(error.code == s3db::ErrorCode::kInvalidArgument ||
                 error.code == s3db::ErrorCode::kNotFound,
             error.ToString());
  FUZZ_CHECK(error.message.find("fuzz.yaml") != std::string::npos, error.message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  auto document = s3db::config::ParseYaml(text, "fuzz.yaml");
  if (!document) CheckError(document.error());

  auto config = s3db::config::ParseConfig(text, "fuzz.yaml");
  if (!config) {
    CheckError(config.error());
    return 0;
  }
  FUZZ_CHECK(document.has_value(), "ParseConfig accepted what ParseYaml refused");
  // Small Lua limits keep a fuzzed transform from running long.
  config->lua.instruction_limit = 100000;
  config->lua.memory_limit_bytes = 8u << 20;
  auto options = config->BuildReplicatorOptions();
  if (!options) CheckError(options.error());
  (void)config->Locate("resources.x.attributes", "message");
  return 0;
}
