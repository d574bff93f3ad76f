// Fuzzes the strict JSON parser every record goes through (ParseJson), then a record's
// schema validation: no crash, accepted documents survive a round trip unchanged, rejected
// ones get a kInvalidArgument error that says where.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "s3db/json.h"
#include "s3db/schema.h"

namespace {

const s3db::Schema& FixedSchema() {
  static const s3db::Schema schema = [] {
    auto attributes = s3db::ParseJsonObject(R"({
      "name": "string|required|min:1|max:40", "email": "email", "age": "number|min:0",
      "count": "integer", "active": "boolean", "at": "datetime", "tags": "array",
      "meta": "object", "site": "url", "key": "uuid", "role": "string|default:user"})");
    if (!attributes) std::abort();
    auto parsed = s3db::Schema::Parse(*attributes);
    if (!parsed) {
      std::fprintf(stderr, "schema: %s\n", parsed.error().ToString().c_str());
      std::abort();
    }
    return *parsed;
  }();
  return schema;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(bytes), size);
  auto value = s3db::ParseJson(text);
  if (!value) {
    FUZZ_CHECK(value.error().code == s3db::ErrorCode::kInvalidArgument, value.error().message);
    FUZZ_CHECK(!value.error().message.empty(), "empty error message");
    return 0;
  }
  // The compact text parses back to the same value, and is itself stable.
  std::string compact = s3db::ToJson(*value);
  FUZZ_CHECK(s3db::IsValidUtf8(compact), compact);
  auto reparsed = s3db::ParseJson(compact);
  FUZZ_CHECK(reparsed.has_value(), compact + ": " + reparsed.error().message);
  FUZZ_CHECK(*reparsed == *value, compact);
  FUZZ_CHECK(s3db::ToJson(*reparsed) == compact, compact);

  if (!value->is_object()) return 0;
  s3db::JsonObject record = value->as_object();
  const s3db::Schema& schema = FixedSchema();
  auto valid = schema.Validate(record);
  if (!valid) FUZZ_CHECK(!valid.error().message.empty(), "empty validation message");
  s3db::JsonObject with_defaults = record;
  schema.ApplyDefaults(with_defaults);
  // Defaults only add fields; they never change one that was given.
  for (const auto& field : record) {
    const auto* kept = with_defaults.if_contains(field.key());
    FUZZ_CHECK(kept != nullptr && *kept == field.value(), std::string(field.key()));
  }
  // The document used as attribute definitions: parsing them must not crash either.
  auto schema_from_input = s3db::Schema::Parse(record);
  if (schema_from_input) (void)schema_from_input->Validate(record);
  (void)s3db::FindPath(record, "meta.a.b");
  return 0;
}
