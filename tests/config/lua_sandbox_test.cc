// The Lua sandbox: semantics of transforms and filters, refused escapes, limits, and exact
// JSON <-> Lua conversion.
#include "config/lua_sandbox.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace s3db::config {
namespace {

std::shared_ptr<LuaFunction> MustCompile(const std::string& source, const LuaLimits& limits = {}) {
  auto function = LuaFunction::Compile(source, "test.fn", limits);
  EXPECT_TRUE(function.has_value()) << (function ? "" : function.error().message);
  return function ? *function : nullptr;
}

Json Parse(const std::string& text) {
  auto value = ParseJson(text);
  EXPECT_TRUE(value.has_value()) << text;
  return value ? *value : Json();
}

// Runs `source` with `argument` and returns the result or the error message.
std::string RunToText(const std::string& source, const Json& argument = Json(nullptr),
                      const LuaLimits& limits = {}) {
  auto function = LuaFunction::Compile(source, "test.fn", limits);
  if (!function) return "compile error: " + function.error().message;
  auto result = (*function)->Call({argument});
  if (!result) return "error: " + result.error().message;
  if (!result->has_value()) return "nil";
  return ToJson(**result);
}

TEST(LuaSandbox, TransformAddsFieldsAndKeepsTheRest) {
  auto transform =
      CompileLuaTransform(Json("function(data) data.full = data.name .. '!' return data end"), "t");
  ASSERT_TRUE(transform.has_value()) << transform.error().message;
  auto out = (*transform)(Parse(R"({"id":"u1","name":"Ann","age":30})").get_object());
  ASSERT_TRUE(out.has_value());
  // Kept keys stay in the input's order; new keys follow.
  EXPECT_EQ(ToJson(*out), R"({"id":"u1","name":"Ann","age":30,"full":"Ann!"})");
}

TEST(LuaSandbox, TransformReturningNilSkipsTheChange) {
  auto transform = CompileLuaTransform(
      Json("function(data) if data.skip then return nil end return data end"), "t");
  ASSERT_TRUE(transform.has_value());
  EXPECT_FALSE((*transform)(Parse(R"({"skip":true})").get_object()).has_value());
  EXPECT_TRUE((*transform)(Parse(R"({"skip":false})").get_object()).has_value());
}

TEST(LuaSandbox, TransformErrorThrowsWithTheLuaMessage) {
  auto transform =
      CompileLuaTransform(Json("function(data) error('boom: ' .. data.id) end"), "t.path");
  ASSERT_TRUE(transform.has_value());
  try {
    (void)(*transform)(Parse(R"({"id":"u9"})").get_object());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("boom: u9"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.path:1:"), std::string::npos) << e.what();
  }
}

TEST(LuaSandbox, TransformReturningANonTableIsAnError) {
  auto transform = CompileLuaTransform(Json("function(data) return 42 end"), "t");
  ASSERT_TRUE(transform.has_value());
  EXPECT_THROW((void)(*transform)(JsonObject{}), std::runtime_error);
}

TEST(LuaSandbox, ShouldReplicateSeesDataAndAction) {
  auto filter =
      CompileLuaShouldReplicate(Json("function(data, action) return action ~= 'delete' and "
                                     "(data.age == nil or data.age >= 18) end"),
                                "f");
  ASSERT_TRUE(filter.has_value()) << filter.error().message;
  EXPECT_TRUE((*filter)(Parse(R"({"age":20})").get_object(), Action::kInsert));
  EXPECT_FALSE((*filter)(Parse(R"({"age":17})").get_object(), Action::kUpdate));
  EXPECT_TRUE((*filter)(Parse(R"({})").get_object(), Action::kUpdate));
  EXPECT_FALSE((*filter)(Parse(R"({"age":20})").get_object(), Action::kDelete));
}

TEST(LuaSandbox, ShouldReplicateUsesLuaTruthiness) {
  auto filter = CompileLuaShouldReplicate(Json("function(data) return data.flag end"), "f");
  ASSERT_TRUE(filter.has_value());
  EXPECT_FALSE((*filter)(JsonObject{}, Action::kInsert));                        // nil
  EXPECT_TRUE((*filter)(Parse(R"({"flag":0})").get_object(), Action::kInsert));  // 0 is true
}

TEST(LuaSandbox, SyntaxErrorsAreReportedWithTheName) {
  auto function = LuaFunction::Compile("function(data) return data +", "replicators[0].x");
  ASSERT_FALSE(function.has_value());
  EXPECT_NE(function.error().message.find("replicators[0].x"), std::string::npos)
      << function.error().message;
}

TEST(LuaSandbox, SourceThatIsNotAFunctionIsRefused) {
  EXPECT_FALSE(LuaFunction::Compile("return 1", "x").has_value());
  EXPECT_FALSE(LuaFunction::Compile("function(d) return d end print(1)", "x").has_value());
  EXPECT_FALSE(IsLuaFunctionSource(Json("functional")));
  EXPECT_FALSE(IsLuaFunctionSource(Json(1)));
  EXPECT_TRUE(IsLuaFunctionSource(Json("  function(d) return d end")));
  EXPECT_TRUE(IsLuaFunctionSource(Json("function (d)\n return d end")));
}

TEST(LuaSandbox, DangerousLibrariesAreAbsent) {
  EXPECT_EQ(RunToText("function() return type(io) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(require) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(load) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(loadstring) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(dofile) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(loadfile) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(package) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(debug) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(collectgarbage) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(string.dump) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(os.execute) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(os.getenv) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(os.remove) end"), R"("nil")");
  EXPECT_EQ(RunToText("function() return type(os.time()) end"), R"("number")");
  EXPECT_EQ(RunToText("function() return type(os.clock()) end"), R"("number")");
  EXPECT_EQ(RunToText("function() return os.date('!%Y', 0) end"), R"("1970")");
}

TEST(LuaSandbox, EscapeAttemptsFail) {
  EXPECT_NE(RunToText("function() return io.open('/etc/passwd') end").find("error:"),
            std::string::npos);
  EXPECT_NE(RunToText("function() return os.execute('true') end").find("error:"),
            std::string::npos);
  EXPECT_NE(RunToText("function() return require('os') end").find("error:"), std::string::npos);
  EXPECT_NE(RunToText("function() return load('return 1')() end").find("error:"),
            std::string::npos);
  EXPECT_NE(RunToText("function() return string.dump(print) end").find("error:"),
            std::string::npos);
  // The string metatable leads back to the same reduced string table.
  EXPECT_EQ(RunToText("function() return type(('x').dump) end"), R"("nil")");
}

TEST(LuaSandbox, InfiniteLoopHitsTheInstructionLimit) {
  LuaLimits limits;
  limits.instruction_limit = 100000;
  std::string out = RunToText("function() while true do end end", Json(nullptr), limits);
  EXPECT_NE(out.find("instruction limit exceeded"), std::string::npos) << out;
}

TEST(LuaSandbox, PcallCannotSwallowTheInstructionLimit) {
  LuaLimits limits;
  limits.instruction_limit = 100000;
  std::string out =
      RunToText("function() while true do pcall(function() while true do end end) end end",
                Json(nullptr), limits);
  EXPECT_NE(out.find("instruction limit exceeded"), std::string::npos) << out;
  out = RunToText(
      "function() local ok = xpcall(function() while true do end end, function(m) return m end)"
      " return ok end",
      Json(nullptr), limits);
  EXPECT_NE(out.find("instruction limit exceeded"), std::string::npos) << out;
}

TEST(LuaSandbox, MemoryBombHitsTheMemoryLimit) {
  LuaLimits limits;
  limits.memory_limit_bytes = 8 * 1024 * 1024;
  std::string out = RunToText(
      "function() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end end",
      Json(nullptr), limits);
  EXPECT_NE(out.find("memory limit exceeded"), std::string::npos) << out;
  out = RunToText("function() return pcall(string.rep, 'x', 100000000) end", Json(nullptr), limits);
  EXPECT_NE(out.find("memory limit exceeded"), std::string::npos) << out;
}

TEST(LuaSandbox, StateRecoversAfterALimitError) {
  LuaLimits limits;
  limits.instruction_limit = 100000;
  auto function =
      MustCompile("function(n) if n > 0 then while true do end end return n end", limits);
  ASSERT_TRUE(function);
  EXPECT_FALSE(function->Call({Json(1)}).has_value());
  auto again = function->Call({Json(0)});
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(ToJson(**again), "0");
}

TEST(LuaSandbox, Int64ValuesStayExact) {
  std::string max = std::to_string(std::numeric_limits<std::int64_t>::max());
  std::string min = std::to_string(std::numeric_limits<std::int64_t>::min());
  Json input = Parse("{\"max\":" + max + ",\"min\":" + min + ",\"big\":9007199254740993}");
  EXPECT_EQ(RunToText("function(d) return d end", input),
            "{\"big\":9007199254740993,\"max\":" + max + ",\"min\":" + min + "}");
  EXPECT_EQ(RunToText("function(d) return {v = d.max - 1} end", input),
            "{\"v\":" + std::to_string(std::numeric_limits<std::int64_t>::max() - 1) + "}");
  EXPECT_EQ(RunToText("function(d) return {i = math.type(d.max), f = math.type(1.5)} end", input),
            R"({"f":"float","i":"integer"})");
}

TEST(LuaSandbox, NestedArraysObjectsAndNullsRoundTrip) {
  Json input = Parse(
      R"({"a":[1,[2,[3,{"b":null}]],[]],"o":{},"n":null,"s":"x","t":true,"d":1.5,"e":[null]})");
  Json sorted = Parse(R"({"a":[1,[2,[3,{"b":null}]],[]],"d":1.5,"e":[null],"n":null,"o":{},)"
                      R"("s":"x","t":true})");
  EXPECT_EQ(RunToText("function(d) return d end", input), ToJson(sorted));
  EXPECT_EQ(RunToText("function(d) return {f = math.type(d.d), v = d.d * 2} end", input),
            ToJson(Parse(R"({"f":"float","v":3.0})")));
}

TEST(LuaSandbox, EmptyTablesAreObjectsUnlessMarked) {
  EXPECT_EQ(RunToText("function() return {x = {}, y = json.array(), z = json.array({})} end"),
            R"({"x":{},"y":[],"z":[]})");
  EXPECT_EQ(RunToText("function() return {list = {'a', 'b'}, sparse = {[1] = 'a', [3] = 'c'}} end"),
            R"({"list":["a","b"],"sparse":{"1":"a","3":"c"}})");
}

TEST(LuaSandbox, UnicodeStringsSurvive) {
  Json input = Parse(R"({"name":"São Tomé 🇸🇹 \u00e9\u4e2d"})");
  EXPECT_EQ(RunToText("function(d) return d end", input), ToJson(input));
  EXPECT_EQ(RunToText("function(d) return {n = utf8.len(d.name)} end", input), R"({"n":14})");
}

TEST(LuaSandbox, InvalidResultsAreErrors) {
  EXPECT_NE(RunToText("function() return {f = print} end").find("no JSON form"), std::string::npos);
  EXPECT_NE(RunToText("function() return {x = 0/0} end").find("NaN"), std::string::npos);
  EXPECT_NE(RunToText("function() local t = {} t.self = t return t end").find("cycle"),
            std::string::npos);
  EXPECT_NE(RunToText("function() return {s = '\\xff'} end").find("UTF-8"), std::string::npos);
}

TEST(LuaSandbox, JsonHelpersEncodeAndDecode) {
  EXPECT_EQ(RunToText("function() return json.decode('{\"a\":[1,2,{\"b\":9223372036854775807}]}')"
                      " end"),
            R"({"a":[1,2,{"b":9223372036854775807}]})");
  EXPECT_EQ(RunToText("function() return {s = json.encode({1, 2, json.null})} end"),
            R"({"s":"[1,2,null]"})");
  EXPECT_NE(RunToText("function() return json.decode('{bad') end").find("json.decode"),
            std::string::npos);
  EXPECT_EQ(RunToText("function() return {n = json.decode('null') == json.null} end"),
            R"({"n":true})");
}

TEST(LuaSandbox, HashAndTimeHelpers) {
  EXPECT_EQ(RunToText("function() return {m = md5('abc'), s = sha256('abc')} end"),
            R"({"m":"900150983cd24fb0d6963f7d28e17f72",)"
            R"("s":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})");
  std::string out = RunToText("function() return {iso = now_iso(), ms = now_ms()} end");
  EXPECT_NE(out.find("\"iso\":\"20"), std::string::npos) << out;
  EXPECT_NE(out.find("Z\""), std::string::npos) << out;
  EXPECT_EQ(RunToText("function() return {t = math.type(now_ms())} end"), R"({"t":"integer"})");
}

TEST(LuaSandbox, MappingFunctionsCompileLua) {
  replicator::MappingFunctions functions = LuaMappingFunctions();
  ASSERT_TRUE(functions.is_function && functions.compile_transform &&
              functions.compile_should_replicate);
  EXPECT_TRUE(functions.is_function(Json("function(d) return d end")));
  EXPECT_FALSE(functions.is_function(Json("people")));
  auto transform = functions.compile_transform(Json(42), "replicators[0].resources.users");
  ASSERT_FALSE(transform.has_value());
  EXPECT_NE(transform.error().message.find("replicators[0].resources.users"), std::string::npos);
}

}  // namespace
}  // namespace s3db::config
