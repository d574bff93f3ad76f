// Fuzzes the Lua sandbox of configuration transforms: the input is the body of
// "function(data, action) ... end" (or, when it starts with "function", the whole source).
// It is compiled and called with a record under small instruction and memory limits. No
// crash, no hang (the limits stop it), and errors are kInvalidArgument. A sandbox state, as
// created, lacks io, os.execute, require, load and debug (checked once at start-up);
// scripts/fuzz.sh runs this target in an empty folder and fails if a file appears in it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/lua_sandbox.h"
#include "fuzz_util.h"

using namespace s3db;

namespace {

const config::LuaLimits kLimits{/*instruction_limit=*/200000,
                                /*memory_limit_bytes=*/8u << 20};

// A function that reports which escape hatches exist in the sandbox it runs in.
constexpr std::string_view kProbe =
    "\nlocal found = {}\n"
    "if io ~= nil then found[#found + 1] = 'io' end\n"
    "if os ~= nil and os.execute ~= nil then found[#found + 1] = 'os.execute' end\n"
    "if os ~= nil and os.getenv ~= nil then found[#found + 1] = 'os.getenv' end\n"
    "if os ~= nil and os.remove ~= nil then found[#found + 1] = 'os.remove' end\n"
    "if require ~= nil then found[#found + 1] = 'require' end\n"
    "if load ~= nil then found[#found + 1] = 'load' end\n"
    "if dofile ~= nil then found[#found + 1] = 'dofile' end\n"
    "if loadfile ~= nil then found[#found + 1] = 'loadfile' end\n"
    "if debug ~= nil then found[#found + 1] = 'debug' end\n"
    "if package ~= nil then found[#found + 1] = 'package' end\n"
    "if string.dump ~= nil then found[#found + 1] = 'string.dump' end\n"
    "return table.concat(found, ',')\n";

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto probe = config::LuaFunction::Compile("function()" + std::string(kProbe) + "end", "probe",
                                            kLimits);
  FUZZ_CHECK(probe.has_value(), probe.error().ToString());
  auto found = (*probe)->Call({});
  FUZZ_CHECK(found.has_value() && *found && (*found)->is_string(), "probe result");
  FUZZ_CHECK((*found)->as_string().empty(),
             "escape hatch reachable: " + std::string((*found)->as_string()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  std::string source;
  bool whole = text.substr(0, 8) == "function";
  if (whole) {
    source = std::string(text);
  } else {
    source = "function(data, action)\n" + std::string(text) + "\nend";
  }
  auto function = config::LuaFunction::Compile(source, "fuzz", kLimits);
  if (!function) {
    FUZZ_CHECK(function.error().code == ErrorCode::kInvalidArgument, function.error().ToString());
    return 0;
  }
  JsonObject record;
  record["id"] = "r1";
  record["n"] = 42;
  record["big"] = std::uint64_t{18446744073709551615u};
  record["tags"] = JsonArray{"a", nullptr, 1.5};
  record["nested"] = JsonObject{{"k", JsonObject{{"deep", true}}}};
  for (int call = 0; call < 2; ++call) {
    auto result = (*function)->Call({record, Json("insert")});
    if (!result) {
      FUZZ_CHECK(result.error().code == ErrorCode::kInvalidArgument, result.error().ToString());
    } else if (*result) {
      // Whatever came back is JSON that serializes.
      (void)ToJson(**result);
    }
    auto predicate = (*function)->CallPredicate({record, Json("delete")});
    if (!predicate) {
      FUZZ_CHECK(predicate.error().code == ErrorCode::kInvalidArgument,
                 predicate.error().ToString());
    }
  }
  return 0;
}
