// The Lua sandbox. Lua reports errors with longjmp, which skips C++ destructors: every frame a
// Lua error can cross holds only trivially destructible locals, and C++ values that must
// survive a Lua call live in userdata boxes that Lua's garbage collector destroys.
#include "config/lua_sandbox.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <lua.hpp>
#include <new>
#include <stdexcept>
#include <utility>

namespace s3db::config {

class LuaState {
 public:
  lua_State* lua = nullptr;
  std::size_t used_bytes = 0;
  std::size_t memory_limit = 0;
  std::uint64_t instructions = 0;
  std::uint64_t instruction_limit = 0;
  bool instruction_limit_hit = false;  // set by the count hook, cleared per call
  bool memory_limit_hit = false;       // set when an allocation error reaches a pcall
  int function_ref = LUA_NOREF;
  int array_metatable_ref = LUA_NOREF;
  std::string name;

  ~LuaState() {
    if (lua) lua_close(lua);
  }
};

namespace {

constexpr int kHookEvery = 1000;          // instructions between two count-hook calls
constexpr int kMaxConversionDepth = 200;  // nested tables accepted from Lua (cycles stop here)
constexpr const char* kArrayMetatable = "s3db.json.array";
char null_sentinel;  // its address is json.null

LuaState* StateOf(lua_State* lua) { return *static_cast<LuaState**>(lua_getextraspace(lua)); }

// Counts every byte the state holds and refuses growth past the limit.
void* Allocate(void* user_data, void* block, std::size_t old_size, std::size_t new_size) {
  auto* state = static_cast<LuaState*>(user_data);
  std::size_t old_bytes = block ? old_size : 0;
  if (new_size == 0) {
    std::free(block);
    state->used_bytes -= old_bytes;
    return nullptr;
  }
  if (new_size > old_bytes && state->used_bytes - old_bytes + new_size > state->memory_limit) {
    return nullptr;  // Lua collects garbage and tries again before it raises "not enough memory"
  }
  void* grown = std::realloc(block, new_size);
  if (grown) state->used_bytes = state->used_bytes - old_bytes + new_size;
  return grown;
}

void CountHook(lua_State* lua, lua_Debug*) {
  LuaState* state = StateOf(lua);
  state->instructions += kHookEvery;
  if (state->instructions > state->instruction_limit) {
    state->instruction_limit_hit = true;
    luaL_error(lua, "instruction limit exceeded (%I instructions)",
               static_cast<lua_Integer>(state->instruction_limit));
  }
}

// pcall/xpcall that cannot swallow the sandbox's limits: the limit errors are raised again.
int SafePcall(lua_State* lua) {
  luaL_checkany(lua, 1);
  int status = lua_pcall(lua, lua_gettop(lua) - 1, LUA_MULTRET, 0);
  LuaState* state = StateOf(lua);
  if (status == LUA_ERRMEM) state->memory_limit_hit = true;
  if (state->instruction_limit_hit || state->memory_limit_hit) return lua_error(lua);
  lua_pushboolean(lua, status == LUA_OK);
  lua_insert(lua, 1);
  return lua_gettop(lua);
}

int SafeXpcall(lua_State* lua) {
  int arguments = lua_gettop(lua) - 2;
  luaL_checktype(lua, 2, LUA_TFUNCTION);
  lua_pushvalue(lua, 1);  // the function
  lua_copy(lua, 2, 1);    // the handler goes below it
  lua_replace(lua, 2);
  int status = lua_pcall(lua, arguments, LUA_MULTRET, 1);
  LuaState* state = StateOf(lua);
  if (status == LUA_ERRMEM) state->memory_limit_hit = true;
  if (state->instruction_limit_hit || state->memory_limit_hit) return lua_error(lua);
  lua_pushboolean(lua, status == LUA_OK);
  lua_replace(lua, 1);  // replaces the handler
  return lua_gettop(lua);
}

int Print(lua_State* lua) {
  luaL_Buffer buffer;
  luaL_buffinit(lua, &buffer);
  int count = lua_gettop(lua);
  for (int i = 1; i <= count; ++i) {
    if (i > 1) luaL_addchar(&buffer, '\t');
    luaL_tolstring(lua, i, nullptr);
    luaL_addvalue(&buffer);
  }
  luaL_pushresult(&buffer);
  spdlog::info("lua {}: {}", StateOf(lua)->name, lua_tostring(lua, -1));
  return 0;
}

// ---- JSON -> Lua (may raise Lua errors: only trivially destructible locals) ----

void PushJson(lua_State* lua, const Json& value, int depth) {
  if (depth > kMaxConversionDepth) luaL_error(lua, "JSON nested deeper than %d", depth);
  luaL_checkstack(lua, 4, "JSON nested too deeply");
  switch (value.kind()) {
    case boost::json::kind::null:
      lua_pushlightuserdata(lua, &null_sentinel);
      return;
    case boost::json::kind::bool_:
      lua_pushboolean(lua, value.get_bool());
      return;
    case boost::json::kind::int64:
      lua_pushinteger(lua, static_cast<lua_Integer>(value.get_int64()));
      return;
    case boost::json::kind::uint64: {
      std::uint64_t number = value.get_uint64();
      if (number <= static_cast<std::uint64_t>(LUA_MAXINTEGER)) {
        lua_pushinteger(lua, static_cast<lua_Integer>(number));
      } else {
        lua_pushnumber(lua, static_cast<lua_Number>(number));
      }
      return;
    }
    case boost::json::kind::double_:
      lua_pushnumber(lua, value.get_double());
      return;
    case boost::json::kind::string: {
      const auto& text = value.get_string();
      lua_pushlstring(lua, text.data(), text.size());
      return;
    }
    case boost::json::kind::array: {
      const auto& array = value.get_array();
      lua_createtable(lua, static_cast<int>(array.size()), 0);
      lua_Integer index = 1;
      for (const Json& item : array) {
        PushJson(lua, item, depth + 1);
        lua_rawseti(lua, -2, index++);
      }
      luaL_setmetatable(lua, kArrayMetatable);
      return;
    }
    case boost::json::kind::object: {
      const auto& object = value.get_object();
      lua_createtable(lua, 0, static_cast<int>(object.size()));
      for (const auto& field : object) {
        lua_pushlstring(lua, field.key().data(), field.key().size());
        PushJson(lua, field.value(), depth + 1);
        lua_rawset(lua, -3);
      }
      return;
    }
  }
}

// ---- Lua -> JSON (calls no Lua function that can raise) ----

const char* LuaTypeName(lua_State* lua, int index) {
  return lua_typename(lua, lua_type(lua, index));
}

Result<Json> ToJsonValue(lua_State* lua, int index, int depth, const std::string& where);

tl::unexpected<Error> ConversionError(const std::string& where, const std::string& message) {
  return MakeError(ErrorCode::kInvalidArgument,
                   (where.empty() ? std::string("value") : where) + ": " + message);
}

std::string ChildPath(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

Result<Json> TableToJson(lua_State* lua, int index, int depth, const std::string& where) {
  if (depth > kMaxConversionDepth) {
    return ConversionError(
        where, "tables nested deeper than " + std::to_string(kMaxConversionDepth) + " (a cycle?)");
  }
  if (!lua_checkstack(lua, 6)) return ConversionError(where, "Lua stack exhausted");
  index = lua_absindex(lua, index);

  bool marked_array = false;
  if (lua_getmetatable(lua, index)) {
    lua_rawgeti(lua, LUA_REGISTRYINDEX, StateOf(lua)->array_metatable_ref);  // cannot raise
    marked_array = lua_rawequal(lua, -1, -2);
    lua_pop(lua, 2);
  }

  // One pass: convert every entry, remembering integer and string keys.
  std::vector<std::pair<lua_Integer, Json>> integer_entries;
  std::vector<std::pair<std::string, Json>> string_entries;
  lua_pushnil(lua);
  while (lua_next(lua, index) != 0) {
    int key_type = lua_type(lua, -2);
    if (key_type == LUA_TNUMBER && lua_isinteger(lua, -2)) {
      lua_Integer key = lua_tointeger(lua, -2);
      auto item = ToJsonValue(lua, -1, depth + 1, where + "[" + std::to_string(key) + "]");
      if (!item) {
        lua_pop(lua, 2);
        return item;
      }
      integer_entries.emplace_back(key, std::move(*item));
    } else if (key_type == LUA_TSTRING) {
      std::size_t length = 0;
      const char* data = lua_tolstring(lua, -2, &length);  // a string key: no conversion
      std::string key(data, length);
      if (!IsValidUtf8(key)) {
        lua_pop(lua, 2);
        return ConversionError(where, "a table key is not valid UTF-8");
      }
      auto item = ToJsonValue(lua, -1, depth + 1, ChildPath(where, key));
      if (!item) {
        lua_pop(lua, 2);
        return item;
      }
      string_entries.emplace_back(std::move(key), std::move(*item));
    } else {
      std::string type = LuaTypeName(lua, -2);
      lua_pop(lua, 2);
      return ConversionError(where, "a table key of type " + type + " has no JSON form");
    }
    lua_pop(lua, 1);
  }

  std::sort(integer_entries.begin(), integer_entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  bool sequence = string_entries.empty() && !integer_entries.empty() &&
                  integer_entries.front().first == 1 &&
                  integer_entries.back().first == static_cast<lua_Integer>(integer_entries.size());
  if (marked_array || sequence) {
    if (!string_entries.empty()) {
      return ConversionError(
          where, "an array (json.array) has the string key '" + string_entries.front().first + "'");
    }
    lua_Integer size = integer_entries.empty() ? 0 : integer_entries.back().first;
    if (!integer_entries.empty() && integer_entries.front().first < 1) {
      return ConversionError(where, "an array (json.array) has the index " +
                                        std::to_string(integer_entries.front().first));
    }
    if (size > static_cast<lua_Integer>(integer_entries.size()) * 2 + 1024) {
      return ConversionError(
          where, "an array with index " + std::to_string(size) + " is too sparse to convert");
    }
    JsonArray array;
    array.resize(static_cast<std::size_t>(size));  // holes stay null
    for (auto& [key, item] : integer_entries) {
      array[static_cast<std::size_t>(key - 1)] = std::move(item);
    }
    return Json(std::move(array));
  }

  for (auto& [key, item] : integer_entries) {
    string_entries.emplace_back(std::to_string(key), std::move(item));
  }
  std::sort(string_entries.begin(), string_entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  JsonObject object;
  object.reserve(string_entries.size());
  for (std::size_t i = 0; i < string_entries.size(); ++i) {
    if (i > 0 && string_entries[i].first == string_entries[i - 1].first) {
      return ConversionError(where, "the key '" + string_entries[i].first +
                                        "' is given both as a number and as a string");
    }
    object[string_entries[i].first] = std::move(string_entries[i].second);
  }
  return Json(std::move(object));
}

Result<Json> ToJsonValue(lua_State* lua, int index, int depth, const std::string& where) {
  switch (lua_type(lua, index)) {
    case LUA_TNIL:
      return Json(nullptr);
    case LUA_TBOOLEAN:
      return Json(lua_toboolean(lua, index) != 0);
    case LUA_TNUMBER: {
      if (lua_isinteger(lua, index)) {
        return Json(static_cast<std::int64_t>(lua_tointeger(lua, index)));
      }
      double number = lua_tonumber(lua, index);
      if (!std::isfinite(number))
        return ConversionError(where, "NaN and infinities have no JSON form");
      return Json(number);
    }
    case LUA_TSTRING: {
      std::size_t length = 0;
      const char* data = lua_tolstring(lua, index, &length);
      std::string_view text(data, length);
      if (!IsValidUtf8(text)) return ConversionError(where, "the string is not valid UTF-8");
      return Json(boost::json::string(text));
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(lua, index) == &null_sentinel) return Json(nullptr);
      break;
    case LUA_TTABLE:
      return TableToJson(lua, index, depth, where);
    default:
      break;
  }
  return ConversionError(where,
                         std::string("a ") + LuaTypeName(lua, index) + " value has no JSON form");
}

// ---- boxes: C++ values owned by Lua userdata, destroyed by the garbage collector ----

template <typename T>
int DestroyBox(lua_State* lua) {
  static_cast<T*>(lua_touserdata(lua, 1))->~T();
  return 0;
}

// Pushes a userdata holding a default-constructed T; the caller keeps it on the stack.
template <typename T>
T* PushBox(lua_State* lua, const char* metatable) {
  void* memory = lua_newuserdatauv(lua, sizeof(T), 0);
  if (luaL_newmetatable(lua, metatable)) {
    lua_pushcfunction(lua, &DestroyBox<T>);
    lua_setfield(lua, -2, "__gc");
  }
  lua_setmetatable(lua, -2);
  return new (memory) T();
}

int JsonEncode(lua_State* lua) {
  luaL_checkany(lua, 1);
  lua_settop(lua, 1);
  auto* text = PushBox<std::string>(lua, "s3db.box.string");
  bool ok = true;
  {  // C++ temporaries end with this block, before any Lua call that can raise
    auto value = ToJsonValue(lua, 1, 0, "");
    ok = value.has_value();
    *text = ok ? ToJson(*value) : "json.encode: " + value.error().message;
  }
  lua_pushlstring(lua, text->data(), text->size());
  return ok ? 1 : lua_error(lua);
}

int JsonDecode(lua_State* lua) {
  std::size_t length = 0;
  const char* data = luaL_checklstring(lua, 1, &length);
  auto* value = PushBox<Json>(lua, "s3db.box.json");
  auto* message = PushBox<std::string>(lua, "s3db.box.string");
  {  // C++ temporaries end with this block, before any Lua call that can raise
    auto parsed = ParseJson(std::string_view(data, length));
    if (parsed) {
      *value = std::move(*parsed);
    } else {
      *message = "json.decode: " + parsed.error().message;
    }
  }
  if (!message->empty()) {
    lua_pushlstring(lua, message->data(), message->size());
    return lua_error(lua);
  }
  PushJson(lua, *value, 0);
  return 1;
}

int JsonArrayMark(lua_State* lua) {
  if (lua_isnoneornil(lua, 1)) {
    lua_settop(lua, 0);
    lua_newtable(lua);
  }
  luaL_checktype(lua, 1, LUA_TTABLE);
  lua_settop(lua, 1);
  luaL_setmetatable(lua, kArrayMetatable);
  return 1;
}

int HexDigest(lua_State* lua, const EVP_MD* algorithm) {
  std::size_t length = 0;
  const char* data = luaL_checklstring(lua, 1, &length);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (EVP_Digest(data, length, digest, &digest_length, algorithm, nullptr) != 1) {
    return luaL_error(lua, "digest failed");
  }
  char hex[EVP_MAX_MD_SIZE * 2 + 1];
  static const char* const kDigits = "0123456789abcdef";
  for (unsigned int i = 0; i < digest_length; ++i) {
    hex[2 * i] = kDigits[digest[i] >> 4];
    hex[2 * i + 1] = kDigits[digest[i] & 0x0f];
  }
  lua_pushlstring(lua, hex, digest_length * 2);
  return 1;
}

int Md5(lua_State* lua) { return HexDigest(lua, EVP_md5()); }
int Sha256(lua_State* lua) { return HexDigest(lua, EVP_sha256()); }

std::int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int NowMsFunction(lua_State* lua) {
  lua_pushinteger(lua, static_cast<lua_Integer>(NowMs()));
  return 1;
}

int NowIso(lua_State* lua) {
  std::int64_t ms = NowMs();
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms % 1000));
  lua_pushstring(lua, text);
  return 1;
}

void RemoveField(lua_State* lua, const char* name) {
  lua_pushnil(lua);
  lua_setfield(lua, -2, name);
}

// Opens the allowed libraries and installs the helpers. Runs under lua_pcall.
int SetUpSandbox(lua_State* lua) {
  luaL_requiref(lua, LUA_GNAME, luaopen_base, 1);
  for (const char* name :
       {"dofile", "loadfile", "load", "loadstring", "require", "collectgarbage", "warn"}) {
    RemoveField(lua, name);
  }
  lua_pushcfunction(lua, SafePcall);
  lua_setfield(lua, -2, "pcall");
  lua_pushcfunction(lua, SafeXpcall);
  lua_setfield(lua, -2, "xpcall");
  lua_pushcfunction(lua, Print);
  lua_setfield(lua, -2, "print");
  lua_pop(lua, 1);

  luaL_requiref(lua, LUA_STRLIBNAME, luaopen_string, 1);
  RemoveField(lua, "dump");
  lua_pop(lua, 1);
  luaL_requiref(lua, LUA_TABLIBNAME, luaopen_table, 1);
  lua_pop(lua, 1);
  luaL_requiref(lua, LUA_MATHLIBNAME, luaopen_math, 1);
  lua_pop(lua, 1);
  luaL_requiref(lua, LUA_UTF8LIBNAME, luaopen_utf8, 1);
  lua_pop(lua, 1);

  // os: only the clock functions. The full library is loaded without registering it globally.
  luaL_requiref(lua, LUA_OSLIBNAME, luaopen_os, 0);
  lua_createtable(lua, 0, 3);
  for (const char* name : {"time", "date", "clock"}) {
    lua_getfield(lua, -2, name);
    lua_setfield(lua, -2, name);
  }
  lua_setglobal(lua, "os");
  lua_pop(lua, 1);

  luaL_newmetatable(lua, kArrayMetatable);
  StateOf(lua)->array_metatable_ref = luaL_ref(lua, LUA_REGISTRYINDEX);
  lua_createtable(lua, 0, 4);
  lua_pushcfunction(lua, JsonEncode);
  lua_setfield(lua, -2, "encode");
  lua_pushcfunction(lua, JsonDecode);
  lua_setfield(lua, -2, "decode");
  lua_pushcfunction(lua, JsonArrayMark);
  lua_setfield(lua, -2, "array");
  lua_pushlightuserdata(lua, &null_sentinel);
  lua_setfield(lua, -2, "null");
  lua_setglobal(lua, "json");

  lua_pushcfunction(lua, Md5);
  lua_setglobal(lua, "md5");
  lua_pushcfunction(lua, Sha256);
  lua_setglobal(lua, "sha256");
  lua_pushcfunction(lua, NowIso);
  lua_setglobal(lua, "now_iso");
  lua_pushcfunction(lua, NowMsFunction);
  lua_setglobal(lua, "now_ms");
  return 0;
}

struct InvokeContext {
  const std::vector<Json>* arguments;
  int function_ref;
};

// Converts the arguments and calls the function, leaving one result. Runs under lua_pcall.
int ProtectedInvoke(lua_State* lua) {
  auto* context = static_cast<InvokeContext*>(lua_touserdata(lua, 1));
  lua_settop(lua, 0);
  luaL_checkstack(lua, static_cast<int>(context->arguments->size()) + 2, "too many arguments");
  lua_rawgeti(lua, LUA_REGISTRYINDEX, context->function_ref);
  for (const Json& argument : *context->arguments) PushJson(lua, argument, 0);
  lua_call(lua, static_cast<int>(context->arguments->size()), 1);
  return 1;
}

std::string ErrorText(lua_State* lua) {
  if (lua_type(lua, -1) == LUA_TSTRING) return lua_tostring(lua, -1);
  return std::string("(error object is a ") + LuaTypeName(lua, -1) + " value)";
}

std::unique_ptr<LuaState> NewState(const std::string& name, const LuaLimits& limits) {
  auto state = std::make_unique<LuaState>();
  state->name = name;
  state->memory_limit = limits.memory_limit_bytes;
  state->instruction_limit = limits.instruction_limit;
  state->lua = lua_newstate(Allocate, state.get());
  if (!state->lua) return nullptr;
  *static_cast<LuaState**>(lua_getextraspace(state->lua)) = state.get();
  lua_atpanic(state->lua, [](lua_State* lua) -> int {
    spdlog::critical("unprotected Lua error: {}", lua_tostring(lua, -1));
    std::abort();
  });
  return state;
}

}  // namespace

LuaFunction::LuaFunction(std::unique_ptr<LuaState> state, std::string name)
    : state_(std::move(state)), name_(std::move(name)) {}

LuaFunction::~LuaFunction() = default;

Result<std::shared_ptr<LuaFunction>> LuaFunction::Compile(std::string_view source, std::string name,
                                                          const LuaLimits& limits) {
  std::size_t start = source.find_first_not_of(" \t\r\n");
  std::string_view trimmed = start == std::string_view::npos ? "" : source.substr(start);
  if (!IsLuaFunctionSource(Json(boost::json::string(trimmed)))) {
    return MakeError(ErrorCode::kInvalidArgument, name +
                                                      ": expected a Lua function, written as "
                                                      "'function(data) ... return data end'");
  }
  std::unique_ptr<LuaState> state = NewState(name, limits);
  if (!state) return MakeError(ErrorCode::kInternal, name + ": cannot create a Lua state");
  lua_State* lua = state->lua;

  lua_pushcfunction(lua, SetUpSandbox);
  if (lua_pcall(lua, 0, 0, 0) != LUA_OK) {
    return MakeError(ErrorCode::kInternal, name + ": sandbox set-up failed: " + ErrorText(lua));
  }

  // "return " keeps the user's line numbers; mode "t" refuses precompiled binary chunks.
  std::string chunk = "return " + std::string(source);
  std::string chunk_name = "=" + name;
  if (luaL_loadbufferx(lua, chunk.data(), chunk.size(), chunk_name.c_str(), "t") != LUA_OK) {
    // "<name>:3: unexpected symbol" -> "<name>: Lua syntax error at line 3: unexpected symbol"
    std::string message = ErrorText(lua);
    if (message.rfind(name + ":", 0) == 0) {
      message = message.substr(name.size() + 1);
      std::size_t colon = message.find(": ");
      if (colon != std::string::npos) {
        message = "at line " + message.substr(0, colon) + ": " + message.substr(colon + 2);
      }
    }
    return MakeError(ErrorCode::kInvalidArgument, name + ": Lua syntax error " + message);
  }
  state->instructions = 0;
  lua_sethook(lua, CountHook, LUA_MASKCOUNT, kHookEvery);
  if (lua_pcall(lua, 0, 1, 0) != LUA_OK) {
    return MakeError(ErrorCode::kInvalidArgument, name + ": Lua error: " + ErrorText(lua));
  }
  if (lua_type(lua, -1) != LUA_TFUNCTION) {
    return MakeError(ErrorCode::kInvalidArgument, name + ": the Lua code is not a function");
  }
  state->function_ref = luaL_ref(lua, LUA_REGISTRYINDEX);
  lua_settop(lua, 0);
  return std::shared_ptr<LuaFunction>(new LuaFunction(std::move(state), std::move(name)));
}

Status LuaFunction::Invoke(const std::vector<Json>& arguments) {
  lua_State* lua = state_->lua;
  lua_settop(lua, 0);
  state_->instructions = 0;
  state_->instruction_limit_hit = false;
  state_->memory_limit_hit = false;

  InvokeContext context{&arguments, state_->function_ref};
  lua_pushcfunction(lua, ProtectedInvoke);
  lua_pushlightuserdata(lua, &context);
  int status = lua_pcall(lua, 1, 1, 0);
  if (status == LUA_OK) return Ok();

  std::string message;
  if (status == LUA_ERRMEM || state_->memory_limit_hit) {
    message = "memory limit exceeded (" + std::to_string(state_->memory_limit) + " bytes)";
  } else {
    message = ErrorText(lua);
  }
  lua_settop(lua, 0);
  lua_gc(lua, LUA_GCCOLLECT);
  return MakeError(ErrorCode::kInvalidArgument, message);
}

Result<std::optional<Json>> LuaFunction::Call(const std::vector<Json>& arguments) {
  std::lock_guard lock(mutex_);
  S3DB_RETURN_IF_ERROR(Invoke(arguments));
  lua_State* lua = state_->lua;
  if (lua_isnil(lua, -1)) {
    lua_settop(lua, 0);
    return std::optional<Json>();
  }
  auto value = ToJsonValue(lua, -1, 0, "result");
  lua_settop(lua, 0);
  if (!value) return tl::unexpected(value.error());
  return std::optional<Json>(std::move(*value));
}

Result<bool> LuaFunction::CallPredicate(const std::vector<Json>& arguments) {
  std::lock_guard lock(mutex_);
  S3DB_RETURN_IF_ERROR(Invoke(arguments));
  bool truth = lua_toboolean(state_->lua, -1) != 0;
  lua_settop(state_->lua, 0);
  return truth;
}

bool IsLuaFunctionSource(const Json& value) {
  if (!value.is_string()) return false;
  std::string_view text = value.get_string();
  std::size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return false;
  text.remove_prefix(start);
  constexpr std::string_view kKeyword = "function";
  if (text.substr(0, kKeyword.size()) != kKeyword) return false;
  if (text.size() == kKeyword.size()) return false;
  char next = text[kKeyword.size()];
  return next == '(' || next == ' ' || next == '\t' || next == '\r' || next == '\n';
}

namespace {

Result<std::shared_ptr<LuaFunction>> CompileCode(const Json& code, const std::string& path,
                                                 const LuaLimits& limits) {
  if (!code.is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, path +
                                                      ": expected Lua source text such as "
                                                      "'function(data) return data end'");
  }
  return LuaFunction::Compile(code.get_string(), path, limits);
}

std::string KindName(const Json& value) {
  switch (value.kind()) {
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::null:
      return "json.null";
    default:
      return "a number";
  }
}

// Lua tables have no order: keys the input had come first, in the input's order, then the
// new ones (sorted).
JsonObject InInputOrder(const JsonObject& input, JsonObject output) {
  JsonObject ordered;
  ordered.reserve(output.size());
  for (const auto& field : input) {
    if (auto* value = output.if_contains(field.key())) ordered[field.key()] = std::move(*value);
  }
  for (auto& field : output) {
    if (!input.contains(field.key())) ordered[field.key()] = std::move(field.value());
  }
  return ordered;
}

}  // namespace

Result<replicator::Transform> CompileLuaTransform(const Json& code, const std::string& path,
                                                  const LuaLimits& limits) {
  S3DB_ASSIGN_OR_RETURN(std::shared_ptr<LuaFunction> function, CompileCode(code, path, limits));
  return replicator::Transform([function](const JsonObject& data) -> std::optional<JsonObject> {
    auto result = function->Call({Json(data)});
    if (!result) throw std::runtime_error(result.error().message);
    if (!result->has_value()) return std::nullopt;
    Json& value = **result;
    if (value.is_object()) return InInputOrder(data, std::move(value.get_object()));
    throw std::runtime_error("the transform must return a table (the record) or nil, not " +
                             KindName(value));
  });
}

Result<replicator::ShouldReplicate> CompileLuaShouldReplicate(const Json& code,
                                                              const std::string& path,
                                                              const LuaLimits& limits) {
  S3DB_ASSIGN_OR_RETURN(std::shared_ptr<LuaFunction> function, CompileCode(code, path, limits));
  return replicator::ShouldReplicate([function](const JsonObject& data, Action action) {
    auto result = function->CallPredicate({Json(data), Json(ActionName(action))});
    if (!result) throw std::runtime_error(result.error().message);
    return *result;
  });
}

replicator::MappingFunctions LuaMappingFunctions(const LuaLimits& limits) {
  replicator::MappingFunctions functions;
  functions.compile_transform = [limits](const Json& code, const std::string& path) {
    return CompileLuaTransform(code, path, limits);
  };
  functions.compile_should_replicate = [limits](const Json& code, const std::string& path) {
    return CompileLuaShouldReplicate(code, path, limits);
  };
  functions.is_function = [](const Json& value) { return IsLuaFunctionSource(value); };
  return functions;
}

}  // namespace s3db::config
