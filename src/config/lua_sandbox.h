// Lua 5.4 functions for configuration files: the `transform` and `shouldReplicate` of a
// replicator mapping written as Lua source, run in a sandbox.
//
// The sandbox: each compiled function owns its lua_State, guarded by a mutex (calls are
// serialized). Available: the base library without load, loadstring, dofile, loadfile,
// require, collectgarbage (and print logs to stderr); string (without string.dump), table,
// math, utf8; os.time, os.date and os.clock only. Not available: io, os.execute/getenv/…,
// package, debug, coroutine. Each call may run at most `instruction_limit` VM instructions
// ("instruction limit exceeded") and the state may hold at most `memory_limit_bytes`
// ("memory limit exceeded"); pcall/xpcall inside the function cannot catch these two.
//
// Helpers: json.encode(v), json.decode(s), json.null, json.array(t), md5(s), sha256(s)
// (lower-case hex), now_iso() ("2024-05-01T12:00:00.123Z"), now_ms() (integer).
//
// JSON <-> Lua: null <-> json.null; booleans; integers <-> Lua integers (int64 exact; a uint64
// above 2^63-1 becomes a Lua float); doubles <-> Lua floats; strings (must be valid UTF-8 on
// the way back); arrays <-> sequences 1..n marked with the json.array metatable (so an empty
// array stays an array); objects <-> tables with string keys. Back from Lua, a table is an
// array when it carries the json.array metatable or its keys are exactly 1..n (n > 0); an
// empty unmarked table is an object {}. Integer keys of other tables become decimal strings;
// object keys come out sorted, except that a transform's result keeps the input record's key
// order for the keys it kept. NaN, infinities, functions and other types are errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::config {

struct LuaLimits {
  std::uint64_t instruction_limit = 10'000'000;       // VM instructions per call
  std::size_t memory_limit_bytes = 64 * 1024 * 1024;  // bytes held by one function's state
};

class LuaState;  // private: the lua_State and its accounting

// One compiled Lua function. Thread-safe: concurrent calls are serialized.
class LuaFunction {
 public:
  // Compiles `source`, which must be an anonymous function expression
  // ("function(data) ... end"). `name` appears in error messages (for example the config
  // path). Errors: kInvalidArgument with the Lua syntax error.
  static Result<std::shared_ptr<LuaFunction>> Compile(std::string_view source, std::string name,
                                                      const LuaLimits& limits = {});
  ~LuaFunction();
  LuaFunction(const LuaFunction&) = delete;
  LuaFunction& operator=(const LuaFunction&) = delete;

  // Calls the function with `arguments` converted to Lua and returns its first result
  // converted to JSON (nullopt when it returned nil or nothing). A Lua error, a limit hit or
  // a result that has no JSON form is an error (kInvalidArgument) with the Lua message.
  Result<std::optional<Json>> Call(const std::vector<Json>& arguments);

  // Calls the function and returns the truthiness of its first result (nil and false are
  // false, anything else true).
  Result<bool> CallPredicate(const std::vector<Json>& arguments);

  const std::string& name() const { return name_; }

 private:
  LuaFunction(std::unique_ptr<LuaState> state, std::string name);
  // Pushes the function and the arguments and runs it; leaves the first result on the stack.
  Status Invoke(const std::vector<Json>& arguments);

  std::mutex mutex_;  // guards state_ (one call at a time)
  std::unique_ptr<LuaState> state_;
  std::string name_;
};

// True when `value` is a string holding a Lua function ("function(...) ... end"), after
// leading white space: the function-only syntax of a resource mapping.
bool IsLuaFunctionSource(const Json& value);

// A transform that runs the Lua function. The Transform throws std::runtime_error with the
// Lua message when the function fails or returns something other than a table or nil (the
// engine reports "Transform function failed for resource '<name>': <message>").
Result<replicator::Transform> CompileLuaTransform(const Json& code, const std::string& path,
                                                  const LuaLimits& limits = {});
// shouldReplicate(data, action) with action "insert" | "update" | "delete"; throws like the
// transform on errors.
Result<replicator::ShouldReplicate> CompileLuaShouldReplicate(const Json& code,
                                                              const std::string& path,
                                                              const LuaLimits& limits = {});

// MappingFunctions whose compilers and is_function use the functions above.
replicator::MappingFunctions LuaMappingFunctions(const LuaLimits& limits = {});

}  // namespace s3db::config
